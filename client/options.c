/*
 * Copyright (C) ngx_tunnel developers
 *
 * The command line, the environment and the config file.
 *
 * argv is read first, as a list of flags, since it names the config file;
 * then the settings are applied from the weakest source to the strongest:
 * defaults, the config file, the environment, the flags.  Every setting
 * goes through one function, opt_set(), whatever its source, so a value
 * means the same everywhere and its error reads the same; the caller adds
 * where the value came from.
 *
 * The config file is INI-like (see "tunnel config --help" and
 * examples/tunnel.conf): KEY = VALUE lines, where a key is a long option's
 * name, first for the whole client, then in [tunnel LABEL] sections.
 */

#include <ctype.h>
#include <errno.h>
#include <netdb.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "client.h"
#include "options.h"
#include "tunnel_ctl.h"


#define OPT_MAX_ERRORS   20
#define OPT_LINE_MAX     4096
#define OPT_WINDOW_MIN   (256 * 1024)
#define OPT_WINDOW_MAX   0x7fffffffu


typedef enum {
    CMD_NONE = 0,
    CMD_HTTP,
    CMD_TLS,
    CMD_TCP,
    CMD_START,
    CMD_CONFIG
} opt_cmd_e;


typedef enum {
    O_SERVER = 0,
    O_TOKEN,
    O_CACERT,
    O_INSECURE,
    O_PLAIN,
    O_WINDOW,
    O_NAME,
    O_SUBDOMAIN,
    O_HOSTNAME,
    O_REMOTE_PORT,
    O_HOST_HEADER,
    O_PROXY_PROTOCOL,
    O_LOG_LEVEL,
    O_VERBOSE,
    O_LOG_FORMAT,
    O_CONFIG,
    O_HELP,
    O_VERSION,
    O_KIND,
    O_LOCAL,
    O_COUNT
} opt_id_e;


/* where a setting may be given, and what it applies to */
#define OPT_GLOBAL   0x01           /* options_t */
#define OPT_TUNNEL   0x02           /* tunnel_t */
#define OPT_FLAG     0x04           /* on the command line */
#define OPT_KEY      0x08           /* in the config file */
#define OPT_HTTP     0x10           /* tunnel kinds it makes sense for */
#define OPT_TLS      0x20
#define OPT_TCP      0x40
#define OPT_KINDS    (OPT_HTTP | OPT_TLS | OPT_TCP)


typedef struct {
    opt_id_e     id;
    const char  *name;              /* long option and config key */
    const char  *alias;             /* another long option */
    char         letter;            /* a short option */
    const char  *arg;               /* the value's placeholder; NULL: none */
    const char  *env;
    unsigned     flags;
    const char  *help;
} opt_def_t;


static const opt_def_t  opt_defs[] = {

    /* the connection to the edge */
    { O_SERVER, "server", NULL, 0, "HOST[:PORT]", "TUNNEL_SERVER",
      OPT_GLOBAL | OPT_FLAG | OPT_KEY,
      "the edge to connect to (port 4443 if none)" },
    { O_TOKEN, "token", NULL, 0, "TOKEN", "TUNNEL_TOKEN",
      OPT_GLOBAL | OPT_FLAG | OPT_KEY,
      "your token, from the edge's operator" },
    { O_CACERT, "cacert", "ca", 0, "FILE", "TUNNEL_CA",
      OPT_GLOBAL | OPT_FLAG | OPT_KEY,
      "trust the CAs in FILE, not the system's" },
    { O_INSECURE, "insecure", NULL, 'k', NULL, NULL,
      OPT_GLOBAL | OPT_FLAG | OPT_KEY,
      "do not verify the edge's certificate (tests only)" },
    { O_PLAIN, "plain", NULL, 0, NULL, NULL,
      OPT_GLOBAL | OPT_FLAG | OPT_KEY,
      "no TLS to the edge at all (local tests only)" },
    { O_WINDOW, "window", NULL, 0, "SIZE", NULL,
      OPT_GLOBAL | OPT_FLAG | OPT_KEY,
      "receive window per connection, 256k-2047m (8m)" },

    /* one tunnel */
    { O_NAME, "name", NULL, 0, "NAME", NULL,
      OPT_TUNNEL | OPT_FLAG | OPT_KEY | OPT_HTTP | OPT_TLS,
      "a label (NAME.<edge domain>) or a full hostname" },
    { O_SUBDOMAIN, "subdomain", NULL, 0, "LABEL", NULL,
      OPT_TUNNEL | OPT_FLAG | OPT_KEY | OPT_HTTP | OPT_TLS,
      "LABEL.<edge domain>: --name, one label only" },
    { O_HOSTNAME, "hostname", NULL, 0, "FQDN", NULL,
      OPT_TUNNEL | OPT_FLAG | OPT_KEY | OPT_HTTP | OPT_TLS,
      "a full public hostname (app.example.com)" },
    { O_REMOTE_PORT, "remote-port", NULL, 0, "PORT", NULL,
      OPT_TUNNEL | OPT_FLAG | OPT_KEY | OPT_TCP,
      "the public port to ask for (else any free one)" },
    { O_HOST_HEADER, "host-header", NULL, 0, "VALUE", NULL,
      OPT_TUNNEL | OPT_FLAG | OPT_KEY | OPT_HTTP,
      "Host for the service; rewrite: its own host:port" },
    { O_PROXY_PROTOCOL, "proxy-protocol", NULL, 0, "1|2", NULL,
      OPT_TUNNEL | OPT_FLAG | OPT_KEY | OPT_KINDS,
      "PROXY protocol header (v1 or v2) to the service" },

    /* what the client says */
    { O_LOG_LEVEL, "log-level", NULL, 0, "LEVEL", "TUNNEL_LOG_LEVEL",
      OPT_GLOBAL | OPT_FLAG | OPT_KEY,
      "error, info or debug (info)" },
    { O_VERBOSE, "verbose", NULL, 'v', NULL, NULL,
      OPT_GLOBAL | OPT_FLAG,
      "the same as --log-level debug" },
    { O_LOG_FORMAT, "log-format", NULL, 0, "FORMAT", "TUNNEL_LOG_FORMAT",
      OPT_GLOBAL | OPT_FLAG | OPT_KEY,
      "auto (live view on a terminal), text or json" },
    { O_CONFIG, "config", NULL, 0, "FILE", "TUNNEL_CONFIG",
      OPT_FLAG,
      "the config file (~/.config/tunnel/tunnel.conf)" },
    { O_HELP, "help", NULL, 'h', NULL, NULL,
      OPT_FLAG,
      "this help (tunnel COMMAND --help: a command's)" },
    { O_VERSION, "version", NULL, 'V', NULL, NULL,
      OPT_FLAG,
      "the version" },

    /* only in [tunnel] sections: the command line has them as words */
    { O_KIND, "kind", NULL, 0, "KIND", NULL,
      OPT_TUNNEL | OPT_KEY | OPT_KINDS, NULL },
    { O_LOCAL, "local", NULL, 0, "TARGET", NULL,
      OPT_TUNNEL | OPT_KEY | OPT_KINDS, NULL },
};

#define OPT_NDEFS  (sizeof(opt_defs) / sizeof(opt_defs[0]))


/* a flag from argv, applied once the config file is read */
typedef struct {
    const opt_def_t  *def;
    const char       *value;
    char              as[40];       /* as typed, for messages: "--ca" */
} opt_flag_t;


/* a tunnel of the config file: where its settings were */
typedef struct {
    unsigned     line;              /* of its [tunnel LABEL] */
    unsigned     key[O_COUNT];      /* of each key */
    char         local[300];        /* "local" as given */
    int          local_bare;        /* a port alone: 127.0.0.1 */
} opt_section_t;


typedef struct {
    options_t      *o;
    opt_cmd_e       cmd;
    const char     *word;           /* the command, for "tunnel X --help" */
    int             check;          /* "config check" */
    int             status;         /* the worst yet: 0, 1 or 2 */
    unsigned        errors;

    opt_flag_t     *flags;
    int             nflags;
    const char    **args;           /* the words after the command */
    int             nargs;

    char            path[1024];     /* the config file */
    const char     *path_from;      /* NULL: the default place */
    int             file_read;
    int             file_tunnels;   /* sections seen, even past the max */
    int             file_token;     /* the file holds the token */

    char            src[O_COUNT][80];  /* where each global came from */
    opt_section_t   sec[MAX_TUNNELS];
    opt_section_t   cli;            /* the command line's tunnel */
} opt_ctx_t;


/* the unit tests point these at memory */
static FILE  *opt_out;
static FILE  *opt_err;

#define OUT  (opt_out ? opt_out : stdout)
#define ERR  (opt_err ? opt_err : stderr)


static int opt_parse_argv(opt_ctx_t *ctx, int argc, char **argv);
static int opt_parse_long(opt_ctx_t *ctx, const char *a, int argc,
    char **argv, int *i);
static int opt_parse_short(opt_ctx_t *ctx, const char *a);
static const opt_def_t *opt_find(const char *name, size_t len);
static const opt_def_t *opt_by_id(opt_id_e id);
static int opt_command(opt_ctx_t *ctx, const char *a);
static const char *opt_suggest(const char *typed, const char **words,
    int n);
static int opt_distance(const char *a, const char *b);

static void opt_config_path(opt_ctx_t *ctx);
static int opt_read_file(opt_ctx_t *ctx);
static void opt_file_line(opt_ctx_t *ctx, char *line, unsigned lineno,
    tunnel_t **t, opt_section_t **sec);
static void opt_file_section(opt_ctx_t *ctx, char *p, unsigned lineno,
    tunnel_t **t, opt_section_t **sec);
static int opt_file_value(opt_ctx_t *ctx, char *p, unsigned lineno,
    char **value);
static void opt_apply_env(opt_ctx_t *ctx);
static void opt_apply_flags(opt_ctx_t *ctx, int tunnel);

static int opt_set(opt_ctx_t *ctx, const opt_def_t *d, tunnel_t *t,
    opt_section_t *sec, const char *v, char *err, size_t len);
static int opt_server(options_t *o, const char *v, char *err, size_t len);
static int opt_port(const char *v, unsigned *port);
static int opt_size(const char *v, uint32_t *size);
static int opt_bool(const char *v, int *b);
static int opt_dns_name(const char *v, int labels, char *out, size_t size,
    char *err, size_t len);
static int opt_target(const char *v, unsigned kind, char *host,
    char *port, char *text, int *bare, char *err, size_t len);

static void opt_cli_tunnel(opt_ctx_t *ctx);
static void opt_select(opt_ctx_t *ctx);
static int opt_no_tunnel_flags(opt_ctx_t *ctx);
static void opt_finish_tunnel(opt_ctx_t *ctx, tunnel_t *t,
    opt_section_t *sec);
static void opt_resolve(opt_ctx_t *ctx, tunnel_t *t, opt_section_t *sec);
static void opt_finish(opt_ctx_t *ctx);
static void opt_summary(opt_ctx_t *ctx);

static void opt_usage(opt_ctx_t *ctx, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void opt_fail(opt_ctx_t *ctx, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void opt_file_error(opt_ctx_t *ctx, unsigned line,
    const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void opt_tunnel_error(opt_ctx_t *ctx, opt_section_t *sec,
    opt_id_e key, int status, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));
static void opt_vreport(opt_ctx_t *ctx, unsigned line, int status,
    const char *fmt, va_list args);

static void opt_help(opt_cmd_e cmd, FILE *f);
static void opt_help_options(FILE *f, unsigned want, unsigned kind);


int
options_load(options_t *o, int argc, char **argv)
{
    int        rc, i;
    opt_ctx_t  *ctx;

    ctx = calloc(1, sizeof(opt_ctx_t));
    if (ctx == NULL) {
        fprintf(ERR, "tunnel: out of memory\n");
        return 1;
    }

    memset(o, 0, sizeof(options_t));
    snprintf(o->server_port, sizeof(o->server_port), "%s",
             OPTIONS_DEFAULT_PORT);
    o->window = OPTIONS_DEFAULT_WINDOW;
    o->log_level = LOG_INFO;
    o->log_format = FORMAT_AUTO;

    for (i = 0; i < O_COUNT; i++) {
        snprintf(ctx->src[i], sizeof(ctx->src[i]), "default");
    }

    ctx->o = o;

    rc = opt_parse_argv(ctx, argc, argv);
    if (rc != OPTIONS_RUN) {
        goto done;
    }

    opt_config_path(ctx);

    if (opt_read_file(ctx) != 0) {
        rc = ctx->check ? 1 : ctx->status;
        goto done;
    }

    opt_apply_env(ctx);
    opt_apply_flags(ctx, 0);

    switch (ctx->cmd) {

    case CMD_HTTP:
    case CMD_TLS:
    case CMD_TCP:
        opt_cli_tunnel(ctx);
        break;

    case CMD_START:
        opt_select(ctx);
        break;

    default: /* CMD_CONFIG */
        opt_no_tunnel_flags(ctx);
        break;
    }

    if (ctx->errors == 0 || ctx->check) {
        opt_finish(ctx);
    }

    if (ctx->check) {
        opt_summary(ctx);
        rc = ctx->errors ? 1 : 0;
        goto done;
    }

    rc = ctx->errors ? ctx->status : OPTIONS_RUN;

done:

    free(ctx->flags);
    free(ctx->args);
    free(ctx);

    return rc;
}


/* argv */

static int
opt_parse_argv(opt_ctx_t *ctx, int argc, char **argv)
{
    int          i, rest, help;
    const char  *a;

    ctx->flags = calloc(argc + 1, sizeof(opt_flag_t));
    ctx->args = calloc(argc + 1, sizeof(char *));

    if (ctx->flags == NULL || ctx->args == NULL) {
        fprintf(ERR, "tunnel: out of memory\n");
        return 1;
    }

    rest = 0;
    help = 0;

    for (i = 1; i < argc; i++) {
        a = argv[i];

        if (!rest && strcmp(a, "--") == 0) {
            rest = 1;
            continue;
        }

        if (!rest && a[0] == '-' && a[1] != '\0') {

            if (a[1] == '-') {
                if (opt_parse_long(ctx, a, argc, argv, &i) != 0) {
                    return ctx->status;
                }

            } else if (opt_parse_short(ctx, a) != 0) {
                return ctx->status;
            }

            if (ctx->nflags
                && ctx->flags[ctx->nflags - 1].def->id == O_VERSION)
            {
                fprintf(OUT, "tunnel %s\n", TUNNEL_CLIENT_VERSION);
                return 0;
            }

            if (ctx->nflags
                && ctx->flags[ctx->nflags - 1].def->id == O_HELP)
            {
                help = 1;
            }

            continue;
        }

        if (ctx->cmd == CMD_NONE && ctx->word == NULL) {
            if (opt_command(ctx, a) != 0) {
                return ctx->status;
            }

            continue;
        }

        ctx->args[ctx->nargs++] = a;
    }

    if (help) {
        opt_help(ctx->cmd, OUT);
        return 0;
    }

    if (ctx->cmd == CMD_NONE) {
        if (ctx->word) {
            /* "tunnel help [COMMAND]", "tunnel version" */
            if (strcmp(ctx->word, "version") == 0) {
                fprintf(OUT, "tunnel %s\n", TUNNEL_CLIENT_VERSION);
                return 0;
            }

            if (ctx->nargs && opt_command(ctx, ctx->args[0]) == 0) {
                opt_help(ctx->cmd, OUT);
                return 0;
            }

            if (ctx->nargs == 0) {
                opt_help(CMD_NONE, OUT);
                return 0;
            }

            return ctx->status;
        }

        /* a bare "tunnel": what a newcomer types first */
        opt_help(CMD_NONE, ERR);
        return 2;
    }

    switch (ctx->cmd) {

    case CMD_HTTP:
    case CMD_TLS:
    case CMD_TCP:
        if (ctx->nargs == 0) {
            opt_usage(ctx, "say which local service to expose: 'tunnel %s "
                      "3000' (a port on this machine), 'tunnel %s "
                      "host:port' or 'tunnel %s unix:/path'", ctx->word,
                      ctx->word, ctx->word);
            return ctx->status;
        }

        if (ctx->nargs > 1) {
            if (ctx->cmd != CMD_TCP) {
                opt_usage(ctx, "'tunnel %s' exposes one service, \"%s\"; "
                          "\"%s\" is one word too many (to choose the "
                          "public name, use --name %s)", ctx->word,
                          ctx->args[0], ctx->args[1], ctx->args[1]);
            } else {
                opt_usage(ctx, "'tunnel %s' exposes one service, \"%s\"; "
                          "\"%s\" is one word too many (for the public "
                          "port, use --remote-port)", ctx->word,
                          ctx->args[0], ctx->args[1]);
            }

            return ctx->status;
        }

        break;

    case CMD_CONFIG:
        if (ctx->nargs == 0 || strcmp(ctx->args[0], "check") != 0) {
            opt_usage(ctx, "'tunnel config' needs what to do: 'tunnel "
                      "config check' checks the config file");
            return ctx->status;
        }

        if (ctx->nargs > 1) {
            opt_usage(ctx, "'tunnel config check' takes no more words "
                      "(\"%s\"); the file is given by --config FILE",
                      ctx->args[1]);
            return ctx->status;
        }

        ctx->check = 1;
        break;

    default: /* CMD_START */
        break;
    }

    return OPTIONS_RUN;
}


static int
opt_parse_long(opt_ctx_t *ctx, const char *a, int argc, char **argv,
    int *i)
{
    size_t            len;
    const char       *eq, *names[OPT_NDEFS * 2], *hint;
    opt_flag_t       *f;
    const opt_def_t  *d;
    int               n;
    unsigned          k;

    a += 2;
    eq = strchr(a, '=');
    len = eq ? (size_t) (eq - a) : strlen(a);

    d = opt_find(a, len);

    if (d == NULL || !(d->flags & OPT_FLAG)) {
        for (k = 0, n = 0; k < OPT_NDEFS; k++) {
            if (opt_defs[k].flags & OPT_FLAG) {
                names[n++] = opt_defs[k].name;

                if (opt_defs[k].alias) {
                    names[n++] = opt_defs[k].alias;
                }
            }
        }

        hint = opt_suggest(a, names, n);

        if (d && (d->id == O_KIND || d->id == O_LOCAL)) {
            opt_usage(ctx, "--%.*s is for the config file; on the command "
                      "line say 'tunnel http|tls|tcp TARGET'", (int) len,
                      a);

        } else if (hint) {
            opt_usage(ctx, "unknown option --%.*s; did you mean --%s?",
                      (int) len, a, hint);

        } else {
            opt_usage(ctx, "unknown option --%.*s", (int) len, a);
        }

        return -1;
    }

    f = &ctx->flags[ctx->nflags++];
    f->def = d;
    snprintf(f->as, sizeof(f->as), "--%.*s", (int) len, a);

    if (d->arg == NULL) {
        if (eq) {
            opt_usage(ctx, "%s takes no value (\"%s\")", f->as, eq + 1);
            return -1;
        }

        return 0;
    }

    if (eq) {
        f->value = eq + 1;

    } else if (*i + 1 < argc
               && !(argv[*i + 1][0] == '-' && argv[*i + 1][1] == '-'
                    && argv[*i + 1][2] != '\0'))
    {
        f->value = argv[++*i];

    } else {
        opt_usage(ctx, "%s needs a value: %s %s", f->as, f->as, d->arg);
        return -1;
    }

    return 0;
}


/* short options are switches, and may be grouped: -kv */
static int
opt_parse_short(opt_ctx_t *ctx, const char *a)
{
    unsigned     k;
    opt_flag_t  *f;

    for (a++; *a; a++) {

        for (k = 0; k < OPT_NDEFS; k++) {
            if (opt_defs[k].letter && opt_defs[k].letter == *a) {
                break;
            }
        }

        if (k == OPT_NDEFS) {
            opt_usage(ctx, "unknown option -%c (the options: -h, -V, -k, "
                      "-v, and the long ones)", *a);
            return -1;
        }

        f = &ctx->flags[ctx->nflags++];
        f->def = &opt_defs[k];
        snprintf(f->as, sizeof(f->as), "-%c", *a);

        if (f->def->id == O_HELP || f->def->id == O_VERSION) {
            return 0;
        }
    }

    return 0;
}


static const opt_def_t *
opt_find(const char *name, size_t len)
{
    unsigned  k;

    for (k = 0; k < OPT_NDEFS; k++) {
        if ((strlen(opt_defs[k].name) == len
             && strncmp(opt_defs[k].name, name, len) == 0)
            || (opt_defs[k].alias && strlen(opt_defs[k].alias) == len
                && strncmp(opt_defs[k].alias, name, len) == 0))
        {
            return &opt_defs[k];
        }
    }

    return NULL;
}


static const opt_def_t *
opt_by_id(opt_id_e id)
{
    unsigned  k;

    for (k = 0; k < OPT_NDEFS; k++) {
        if (opt_defs[k].id == id) {
            return &opt_defs[k];
        }
    }

    return NULL;
}


static int
opt_command(opt_ctx_t *ctx, const char *a)
{
    const char  *hint;

    static const char  *words[] = {
        "http", "tls", "tcp", "start", "config", "help", "version"
    };

    ctx->word = a;

    if (strcmp(a, "http") == 0) {
        ctx->cmd = CMD_HTTP;

    } else if (strcmp(a, "tls") == 0) {
        ctx->cmd = CMD_TLS;

    } else if (strcmp(a, "tcp") == 0) {
        ctx->cmd = CMD_TCP;

    } else if (strcmp(a, "start") == 0) {
        ctx->cmd = CMD_START;

    } else if (strcmp(a, "config") == 0) {
        ctx->cmd = CMD_CONFIG;

    } else if (strcmp(a, "help") == 0 || strcmp(a, "version") == 0) {
        ctx->cmd = CMD_NONE;

    } else {
        ctx->word = NULL;
        hint = opt_suggest(a, words, sizeof(words) / sizeof(words[0]));

        if (strcmp(a, "https") == 0) {
            opt_usage(ctx, "there is no 'tunnel https': 'tunnel http PORT' "
                      "is reached by https too when the edge has a "
                      "certificate, and 'tunnel tls PORT' passes TLS to "
                      "your own service");

        } else if (a[0] >= '0' && a[0] <= '9') {
            opt_usage(ctx, "say what kind of service %s is first: 'tunnel "
                      "http %s', 'tunnel tls %s' or 'tunnel tcp %s'", a, a,
                      a, a);

        } else if (hint) {
            opt_usage(ctx, "unknown command '%s'; did you mean '%s'?", a,
                      hint);

        } else {
            opt_usage(ctx, "unknown command '%s' (the commands: http, tls, "
                      "tcp, start, config check)", a);
        }

        return -1;
    }

    return 0;
}


/* the closest word, if it is close enough to be a typo */
static const char *
opt_suggest(const char *typed, const char **words, int n)
{
    int          i, d, best;
    const char  *hint;
    char         t[64];

    snprintf(t, sizeof(t), "%s", typed);
    t[strcspn(t, "=")] = '\0';

    best = 3;
    hint = NULL;

    for (i = 0; i < n; i++) {
        d = opt_distance(t, words[i]);

        if (d < best && d <= (int) strlen(words[i]) / 2) {
            best = d;
            hint = words[i];
        }
    }

    return hint;
}


/* Levenshtein, on short words only */
static int
opt_distance(const char *a, const char *b)
{
    size_t  i, j, la, lb;
    int     row[64], prev, cur, best;

    la = strlen(a);
    lb = strlen(b);

    if (la >= 63 || lb >= 63) {
        return 99;
    }

    for (j = 0; j <= lb; j++) {
        row[j] = (int) j;
    }

    for (i = 1; i <= la; i++) {
        prev = row[0];
        row[0] = (int) i;

        for (j = 1; j <= lb; j++) {
            cur = row[j];
            best = prev + (a[i - 1] != b[j - 1]);

            if (row[j] + 1 < best) {
                best = row[j] + 1;
            }

            if (row[j - 1] + 1 < best) {
                best = row[j - 1] + 1;
            }

            row[j] = best;
            prev = cur;
        }
    }

    return row[lb];
}


/* the config file */

static void
opt_config_path(opt_ctx_t *ctx)
{
    int          i;
    const char  *p;

    for (i = ctx->nflags - 1; i >= 0; i--) {
        if (ctx->flags[i].def->id == O_CONFIG) {
            snprintf(ctx->path, sizeof(ctx->path), "%s",
                     ctx->flags[i].value);
            ctx->path_from = "--config";
            return;
        }
    }

    p = getenv("TUNNEL_CONFIG");
    if (p && *p) {
        snprintf(ctx->path, sizeof(ctx->path), "%s", p);
        ctx->path_from = "TUNNEL_CONFIG";
        return;
    }

    /* XDG base directories: a relative XDG_CONFIG_HOME is to be ignored */
    p = getenv("XDG_CONFIG_HOME");
    if (p && p[0] == '/') {
        snprintf(ctx->path, sizeof(ctx->path), "%s/tunnel/tunnel.conf", p);
        return;
    }

    p = getenv("HOME");
    if (p && *p) {
        snprintf(ctx->path, sizeof(ctx->path),
                 "%s/.config/tunnel/tunnel.conf", p);
    }
}


static int
opt_read_file(opt_ctx_t *ctx)
{
    FILE           *f;
    char           *line;
    size_t          cap;
    ssize_t         n;
    unsigned        lineno;
    tunnel_t       *t;
    opt_section_t  *sec;
    struct stat     st;
    mode_t          mode;
    int             e, unreadable;

    if (ctx->path[0] == '\0') {
        return 0;
    }

    f = fopen(ctx->path, "r");
    if (f == NULL) {
        e = errno;

        if (e == ENOENT && ctx->path_from == NULL) {
            /* no default file: flags and the environment are enough */
            return 0;
        }

        if (ctx->path_from) {
            opt_fail(ctx, "cannot read the config file %s (given by %s): "
                     "%s", ctx->path, ctx->path_from, strerror(e));
        } else {
            opt_fail(ctx, "cannot read the config file %s: %s", ctx->path,
                     strerror(e));
        }

        return -1;
    }

    mode = 0;

    if (fstat(fileno(f), &st) == 0) {
        mode = st.st_mode;

        if (S_ISDIR(st.st_mode)) {
            opt_fail(ctx, "the config file %s is a directory; give a file",
                     ctx->path);
            fclose(f);
            return -1;
        }
    }

    ctx->file_read = 1;
    snprintf(ctx->o->config_file, sizeof(ctx->o->config_file), "%s",
             ctx->path);

    line = NULL;
    cap = 0;
    lineno = 0;
    t = NULL;
    sec = NULL;

    while ((n = getline(&line, &cap, f)) != -1) {
        lineno++;

        if (ctx->errors >= OPT_MAX_ERRORS) {
            fprintf(ERR, "%s: too many errors, the rest is not checked\n",
                    ctx->path);
            break;
        }

        if (n > OPT_LINE_MAX) {
            opt_file_error(ctx, lineno, "this line is longer than %d "
                           "characters", OPT_LINE_MAX);
            continue;
        }

        if ((size_t) n != strlen(line)) {
            opt_file_error(ctx, lineno, "this line has a NUL byte: is it "
                           "a text file?");
            continue;
        }

        while (n && (line[n - 1] == '\n' || line[n - 1] == '\r')) {
            line[--n] = '\0';
        }

        opt_file_line(ctx, line, lineno, &t, &sec);
    }

    unreadable = ferror(f);

    if (unreadable) {
        opt_fail(ctx, "cannot read the config file %s: %s", ctx->path,
                 strerror(errno));
    }

    free(line);
    fclose(f);

    if (ctx->file_tunnels > MAX_TUNNELS) {
        opt_usage(ctx, "%s has %d tunnels; one client runs at most %d: "
                  "run a second 'tunnel start' for the others", ctx->path,
                  ctx->file_tunnels, MAX_TUNNELS);
    }

    if (ctx->file_token && (mode & 044)) {
        fprintf(ERR, "tunnel: warning: %s holds your token and others can "
                "read it; make it private: chmod 600 %s\n", ctx->path,
                ctx->path);
    }

    return unreadable ? -1 : 0;
}


static void
opt_file_line(opt_ctx_t *ctx, char *line, unsigned lineno, tunnel_t **t,
    opt_section_t **sec)
{
    int               n;
    char             *p, *key, *end, *value, *slash;
    size_t            klen, k;
    const opt_def_t  *d;
    char              err[512], rel[2048];

    p = line;

    if (lineno == 1 && (unsigned char) p[0] == 0xef
        && (unsigned char) p[1] == 0xbb && (unsigned char) p[2] == 0xbf)
    {
        p += 3;         /* a byte order mark, from some editors */
    }

    while (*p == ' ' || *p == '\t') {
        p++;
    }

    if (*p == '\0' || *p == '#' || *p == ';') {
        return;
    }

    if (*p == '[') {
        opt_file_section(ctx, p, lineno, t, sec);
        return;
    }

    key = p;

    while (*p && *p != '=' && *p != ' ' && *p != '\t') {
        p++;
    }

    klen = p - key;
    end = p;

    while (*p == ' ' || *p == '\t') {
        p++;
    }

    if (*p != '=') {
        opt_file_error(ctx, lineno, "expected KEY = VALUE, as in "
                       "\"server = edge.example.com\", or [tunnel NAME]");
        return;
    }

    *end = '\0';

    /* remote_port as well as remote-port */
    for (k = 0; k < klen; k++) {
        key[k] = (key[k] == '_') ? '-' : tolower((unsigned char) key[k]);
    }

    if (klen == 0) {
        opt_file_error(ctx, lineno, "a line starts with '=': the key is "
                       "missing");
        return;
    }

    if (opt_file_value(ctx, p + 1, lineno, &value) != 0) {
        return;
    }

    d = opt_find(key, klen);

    if (d == NULL || !(d->flags & OPT_KEY)) {
        const char  *names[OPT_NDEFS], *hint;

        /* all keys: a misplaced one then gets its own message */
        for (k = 0, n = 0; k < OPT_NDEFS; k++) {
            if (opt_defs[k].flags & OPT_KEY) {
                names[n++] = opt_defs[k].name;
            }
        }

        hint = opt_suggest(key, names, n);

        if (d && d->id == O_CONFIG) {
            opt_file_error(ctx, lineno, "a config file cannot name "
                           "another one");

        } else if (hint) {
            opt_file_error(ctx, lineno, "unknown setting \"%s\"; did you "
                           "mean \"%s\"?", key, hint);

        } else if (*t == NULL) {
            opt_file_error(ctx, lineno, "unknown setting \"%s\"; before "
                           "the first [tunnel NAME] the settings are: "
                           "server, token, cacert, insecure, plain, "
                           "window, log-level, log-format", key);
        } else {
            opt_file_error(ctx, lineno, "unknown setting \"%s\" in "
                           "[tunnel %s]; a tunnel takes: kind, local, "
                           "name, subdomain, hostname, remote-port, "
                           "host-header, proxy-protocol", key,
                           (*t)->label);
        }

        return;
    }

    if (*t == NULL && (d->flags & OPT_TUNNEL)) {
        opt_file_error(ctx, lineno, "\"%s\" is a setting of one tunnel: "
                       "put it in a [tunnel NAME] section, after the "
                       "settings for all", key);
        return;
    }

    if (*t && (d->flags & OPT_GLOBAL)) {
        opt_file_error(ctx, lineno, "\"%s\" is for the whole client, not "
                       "for [tunnel %s]: put it before the first [tunnel "
                       "...] line", d->name, (*t)->label);
        return;
    }

    if (*t) {
        if ((*sec)->key[d->id]) {
            opt_file_error(ctx, lineno, "\"%s\" is set twice in [tunnel "
                           "%s], first on line %u: keep one", d->name,
                           (*t)->label, (*sec)->key[d->id]);
            return;
        }

        if ((d->id == O_NAME || d->id == O_SUBDOMAIN
             || d->id == O_HOSTNAME)
            && ((*sec)->key[O_NAME] || (*sec)->key[O_SUBDOMAIN]
                || (*sec)->key[O_HOSTNAME]))
        {
            opt_file_error(ctx, lineno, "[tunnel %s] already has a public "
                           "name (name, subdomain and hostname are one "
                           "setting): keep one", (*t)->label);
            return;
        }

        (*sec)->key[d->id] = lineno;

        if (opt_set(ctx, d, *t, *sec, value, err, sizeof(err)) != 0) {
            opt_file_error(ctx, lineno, "%s: %s", d->name, err);
        }

        return;
    }

    if (strcmp(ctx->src[d->id], "default") != 0) {
        opt_file_error(ctx, lineno, "\"%s\" is set twice, first on %s: "
                       "keep one", d->name, ctx->src[d->id]);
        return;
    }

    slash = strrchr(ctx->path, '/');

    if (d->id == O_CACERT && value[0] != '/' && slash) {
        /* relative to the file, wherever the client was started from */
        n = snprintf(rel, sizeof(rel), "%.*s/%s",
                     (int) (slash - ctx->path), ctx->path, value);

        if (n >= (int) sizeof(rel)) {
            opt_file_error(ctx, lineno, "cacert: the path is too long");
            return;
        }

        value = rel;
    }

    if (opt_set(ctx, d, NULL, NULL, value, err, sizeof(err)) != 0) {
        opt_file_error(ctx, lineno, "%s: %s", d->name, err);
        return;
    }

    snprintf(ctx->src[d->id], sizeof(ctx->src[d->id]), "%.60s:%u",
             ctx->path, lineno);

    if (d->id == O_TOKEN) {
        ctx->file_token = 1;
    }
}


static void
opt_file_section(opt_ctx_t *ctx, char *p, unsigned lineno, tunnel_t **t,
    opt_section_t **sec)
{
    char      *end, *label;
    size_t     len, i;
    int        n;
    options_t  *o;

    o = ctx->o;

    /* past here no [tunnel] is open: its keys would land nowhere */
    *t = NULL;
    *sec = NULL;

    end = strchr(p, ']');
    if (end == NULL) {
        opt_file_error(ctx, lineno, "a section line ends with ']': "
                       "[tunnel NAME]");
        return;
    }

    for (i = 1; end[i] == ' ' || end[i] == '\t'; i++) { /* void */ }

    if (end[i] != '\0' && end[i] != '#' && end[i] != ';') {
        opt_file_error(ctx, lineno, "text after ']': a section line is "
                       "[tunnel NAME] alone");
        return;
    }

    *end = '\0';
    p++;

    while (*p == ' ' || *p == '\t') {
        p++;
    }

    if (strncmp(p, "tunnel", 6) != 0 || (p[6] != ' ' && p[6] != '\t')) {
        opt_file_error(ctx, lineno, "unknown section [%s]; a tunnel "
                       "section is [tunnel NAME], e.g. [tunnel web]", p);
        return;
    }

    label = p + 7;

    while (*label == ' ' || *label == '\t') {
        label++;
    }

    len = strlen(label);

    while (len && (label[len - 1] == ' ' || label[len - 1] == '\t')) {
        label[--len] = '\0';
    }

    if (len == 0) {
        opt_file_error(ctx, lineno, "the tunnel has no name: [tunnel NAME], "
                       "e.g. [tunnel web]");
        return;
    }

    for (i = 0; i < len; i++) {
        if (!isalnum((unsigned char) label[i]) && label[i] != '-'
            && label[i] != '_' && label[i] != '.')
        {
            opt_file_error(ctx, lineno, "the tunnel name \"%s\" has '%c' "
                           "in it; use letters, digits, '-', '_' and '.'",
                           label, label[i]);
            return;
        }
    }

    if (len >= sizeof(o->tunnels[0].label)) {
        opt_file_error(ctx, lineno, "the tunnel name \"%.20s...\" is longer "
                       "than %zu characters", label,
                       sizeof(o->tunnels[0].label) - 1);
        return;
    }

    for (n = 0; n < o->ntunnels; n++) {
        if (strcmp(o->tunnels[n].label, label) == 0) {
            opt_file_error(ctx, lineno, "[tunnel %s] again: the first is "
                           "on line %u, and tunnel names are unique",
                           label, ctx->sec[n].line);
            return;
        }
    }

    ctx->file_tunnels++;

    if (o->ntunnels == MAX_TUNNELS) {
        return;
    }

    *t = &o->tunnels[o->ntunnels];
    *sec = &ctx->sec[o->ntunnels];
    o->ntunnels++;

    memset(*t, 0, sizeof(tunnel_t));
    memcpy((*t)->label, label, len + 1);
    (*sec)->line = lineno;
}


/* the value after '=': to the end of the line or a " #", or "quoted" */
static int
opt_file_value(opt_ctx_t *ctx, char *p, unsigned lineno, char **value)
{
    char    *q, *end;
    size_t   len;

    while (*p == ' ' || *p == '\t') {
        p++;
    }

    if (*p == '"') {
        q = strchr(p + 1, '"');
        if (q == NULL) {
            opt_file_error(ctx, lineno, "the quote opened here is not "
                           "closed: add a '\"' at the end of the value");
            return -1;
        }

        for (end = q + 1; *end == ' ' || *end == '\t'; end++) { /* void */ }

        if (*end != '\0' && *end != '#' && *end != ';') {
            opt_file_error(ctx, lineno, "text after the closing quote: "
                           "remove it, or start a comment with '#'");
            return -1;
        }

        *q = '\0';
        *value = p + 1;
        return 0;
    }

    /* a comment begins with '#' after a space, so that "a#b" is a value */
    for (q = p; *q; q++) {
        if ((*q == '#' || *q == ';') && (q == p || q[-1] == ' '
                                         || q[-1] == '\t'))
        {
            *q = '\0';
            break;
        }
    }

    len = strlen(p);

    while (len && (p[len - 1] == ' ' || p[len - 1] == '\t')) {
        p[--len] = '\0';
    }

    if (len == 0) {
        opt_file_error(ctx, lineno, "no value after '=': give one, or "
                       "remove the line for the default");
        return -1;
    }

    *value = p;

    return 0;
}


/* the environment and the flags */

static void
opt_apply_env(opt_ctx_t *ctx)
{
    unsigned          k;
    const char       *v;
    const opt_def_t  *d;
    char              err[512];

    for (k = 0; k < OPT_NDEFS; k++) {
        d = &opt_defs[k];

        if (d->env == NULL || !(d->flags & OPT_GLOBAL)) {
            continue;
        }

        v = getenv(d->env);

        /* VAR= in a shell is a way to unset it for one command */
        if (v == NULL || *v == '\0') {
            continue;
        }

        if (opt_set(ctx, d, NULL, NULL, v, err, sizeof(err)) != 0) {
            opt_usage(ctx, "the environment variable %s: %s (fix or unset "
                      "it)", d->env, err);
            continue;
        }

        snprintf(ctx->src[d->id], sizeof(ctx->src[d->id]), "%s", d->env);
    }
}


/* tunnel: 0 the global flags, 1 the tunnel's (into ctx->o->tunnels[0]) */
static void
opt_apply_flags(opt_ctx_t *ctx, int tunnel)
{
    int          i;
    char         err[512];
    opt_flag_t  *f;

    for (i = 0; i < ctx->nflags; i++) {
        f = &ctx->flags[i];

        if (!(f->def->flags & (tunnel ? OPT_TUNNEL : OPT_GLOBAL))) {
            continue;
        }

        if (tunnel) {
            if (opt_set(ctx, f->def, &ctx->o->tunnels[0], &ctx->cli,
                        f->value, err, sizeof(err))
                != 0)
            {
                opt_usage(ctx, "%s: %s", f->as, err);
                continue;
            }

            ctx->cli.key[f->def->id] = i + 1;
            continue;
        }

        if (opt_set(ctx, f->def, NULL, NULL, f->value, err, sizeof(err))
            != 0)
        {
            opt_usage(ctx, "%s: %s", f->as, err);
            continue;
        }

        snprintf(ctx->src[f->def->id], sizeof(ctx->src[f->def->id]), "%s",
                 f->as);

        if (f->def->id == O_VERBOSE) {
            snprintf(ctx->src[O_LOG_LEVEL], sizeof(ctx->src[O_LOG_LEVEL]),
                     "%s", f->as);
        }
    }
}


/*
 * One setting, from any source.  "v" is NULL for a switch on the command
 * line; in the config file a switch has a value: yes or no.  On an error
 * "err" says what is wrong with the value, and the caller says where it was.
 */
static int
opt_set(opt_ctx_t *ctx, const opt_def_t *d, tunnel_t *t, opt_section_t *sec,
    const char *v, char *err, size_t len)
{
    int         b, kind;
    unsigned    port;
    uint32_t    size;
    options_t  *o;
    char        host[256], sport[8];

    o = ctx->o;

    switch (d->id) {

    case O_SERVER:
        return opt_server(o, v, err, len);

    case O_TOKEN:
        if (strlen(v) >= sizeof(o->token)) {
            snprintf(err, len, "the token is longer than %zu characters: "
                     "is it the whole token, and only the token?",
                     sizeof(o->token) - 1);
            return -1;
        }

        for (b = 0; v[b]; b++) {
            if ((unsigned char) v[b] <= ' ' || v[b] == 0x7f) {
                snprintf(err, len, "the token has a space or a control "
                         "character in it: copy it again");
                return -1;
            }
        }

        memcpy(o->token, v, strlen(v) + 1);
        return 0;

    case O_CACERT:
        if (strlen(v) >= sizeof(o->cafile)) {
            snprintf(err, len, "the path is longer than %zu characters",
                     sizeof(o->cafile) - 1);
            return -1;
        }

        memcpy(o->cafile, v, strlen(v) + 1);
        return 0;

    case O_INSECURE:
    case O_PLAIN:
        b = 1;

        if (v && opt_bool(v, &b) != 0) {
            snprintf(err, len, "\"%s\" is neither yes nor no", v);
            return -1;
        }

        if (d->id == O_INSECURE) {
            o->insecure = b;
        } else {
            o->plain = b;
        }

        return 0;

    case O_WINDOW:
        if (opt_size(v, &size) != 0) {
            snprintf(err, len, "\"%s\" is not a window size: give bytes "
                     "with k or m, from 256k to 2047m (e.g. 8m)", v);
            return -1;
        }

        o->window = size;
        return 0;

    case O_LOG_LEVEL:
        if (strcmp(v, "error") == 0) {
            o->log_level = LOG_ERROR;

        } else if (strcmp(v, "info") == 0) {
            o->log_level = LOG_INFO;

        } else if (strcmp(v, "debug") == 0) {
            o->log_level = LOG_DEBUG;

        } else {
            snprintf(err, len, "\"%s\" is not a log level: use error, info "
                     "or debug", v);
            return -1;
        }

        return 0;

    case O_VERBOSE:
        o->log_level = LOG_DEBUG;
        return 0;

    case O_LOG_FORMAT:
        if (strcmp(v, "auto") == 0) {
            o->log_format = FORMAT_AUTO;

        } else if (strcmp(v, "text") == 0) {
            o->log_format = FORMAT_TEXT;

        } else if (strcmp(v, "json") == 0) {
            o->log_format = FORMAT_JSON;

        } else {
            snprintf(err, len, "\"%s\" is not a log format: use auto (a "
                     "live view on a terminal), text or json", v);
            return -1;
        }

        return 0;

    case O_NAME:
    case O_HOSTNAME:
        /* a name that was refused leaves none, not half of one */
        if (opt_dns_name(v, d->id == O_NAME ? -1 : 2, t->name,
                         sizeof(t->name), err, len)
            != 0)
        {
            t->name[0] = '\0';
            return -1;
        }

        return 0;

    case O_SUBDOMAIN:
        if (strchr(v, '.')) {
            snprintf(err, len, "\"%s\" has a dot: a subdomain is one label "
                     "(myapp); for a full name use --hostname", v);
            return -1;
        }

        if (opt_dns_name(v, 1, t->name, sizeof(t->name), err, len) != 0) {
            t->name[0] = '\0';
            return -1;
        }

        return 0;

    case O_REMOTE_PORT:
        if (opt_port(v, &port) != 0) {
            snprintf(err, len, "\"%s\" is not a port: give a number from 1 "
                     "to 65535", v);
            return -1;
        }

        t->remote_port = port;
        return 0;

    case O_HOST_HEADER:
        if (strlen(v) >= sizeof(t->host_header)) {
            snprintf(err, len, "the value is longer than %zu characters",
                     sizeof(t->host_header) - 1);
            return -1;
        }

        for (b = 0; v[b]; b++) {
            if ((unsigned char) v[b] <= ' ' || v[b] == 0x7f) {
                snprintf(err, len, "\"%s\" cannot be a Host header: it has "
                         "a space or a control character", v);
                return -1;
            }
        }

        memcpy(t->host_header, v, strlen(v) + 1);
        return 0;

    case O_PROXY_PROTOCOL:
        if (strcmp(v, "1") == 0 || strcasecmp(v, "v1") == 0) {
            t->proxy_protocol = 1;

        } else if (strcmp(v, "2") == 0 || strcasecmp(v, "v2") == 0) {
            t->proxy_protocol = 2;

        } else if (strcmp(v, "0") == 0 || opt_bool(v, &b) == 0) {
            if (v[0] != '0' && b) {
                snprintf(err, len, "say which version: 1 (text) or 2 "
                         "(binary)");
                return -1;
            }

            t->proxy_protocol = 0;

        } else {
            snprintf(err, len, "\"%s\" is not a PROXY protocol version: "
                     "use 1 or 2", v);
            return -1;
        }

        return 0;

    case O_KIND:
        kind = tunnel_kind_parse(v, strlen(v));
        if (kind == 0) {
            snprintf(err, len, "\"%s\" is not a tunnel kind: use http, tls "
                     "or tcp", v);
            return -1;
        }

        t->kind = kind;
        return 0;

    case O_LOCAL:
        if (strlen(v) >= sizeof(sec->local)) {
            snprintf(err, len, "the value is longer than %zu characters",
                     sizeof(sec->local) - 1);
            return -1;
        }

        if (opt_target(v, t->kind, host, sport, t->target.text,
                       &sec->local_bare, err, len)
            != 0)
        {
            return -1;
        }

        memcpy(sec->local, v, strlen(v) + 1);
        return 0;

    default:
        snprintf(err, len, "this cannot be set here");
        return -1;
    }
}


/* HOST, HOST:PORT, [IPv6] or [IPv6]:PORT */
static int
opt_server(options_t *o, const char *v, char *err, size_t len)
{
    const char  *host, *port, *p;
    size_t       hlen;
    unsigned     n;

    if (strstr(v, "://")) {
        snprintf(err, len, "give HOST or HOST:PORT without a scheme, e.g. "
                 "edge.example.com:4443 (not \"%s\")", v);
        return -1;
    }

    port = NULL;

    if (v[0] == '[') {
        p = strchr(v, ']');
        if (p == NULL || (p[1] != '\0' && p[1] != ':')) {
            snprintf(err, len, "\"%s\": an IPv6 address is written "
                     "[2001:db8::1] or [2001:db8::1]:4443", v);
            return -1;
        }

        host = v + 1;
        hlen = p - host;
        port = p[1] ? p + 2 : NULL;

    } else {
        host = v;
        p = strchr(v, ':');

        if (p && strchr(p + 1, ':')) {
            snprintf(err, len, "\"%s\": write an IPv6 address in brackets, "
                     "[2001:db8::1]:4443", v);
            return -1;
        }

        hlen = p ? (size_t) (p - v) : strlen(v);
        port = p ? p + 1 : NULL;
    }

    if (hlen == 0) {
        snprintf(err, len, "\"%s\" has no host name: HOST[:PORT], e.g. "
                 "edge.example.com:4443", v);
        return -1;
    }

    if (hlen >= sizeof(o->server_host)) {
        snprintf(err, len, "the host name is longer than %zu characters",
                 sizeof(o->server_host) - 1);
        return -1;
    }

    for (p = host; p < host + hlen; p++) {
        if ((unsigned char) *p <= ' ' || *p == '/' || *p == 0x7f) {
            snprintf(err, len, "\"%s\" is not a host name: '%c' in it; give "
                     "HOST[:PORT], e.g. edge.example.com:4443", v,
                     (unsigned char) *p > ' ' ? *p : '?');
            return -1;
        }
    }

    if (port && opt_port(port, &n) != 0) {
        snprintf(err, len, "\"%s\" is not a port: after the ':' give a "
                 "number from 1 to 65535 (e.g. %.*s:4443)", port, (int) hlen,
                 v);
        return -1;
    }

    memcpy(o->server_host, host, hlen);
    o->server_host[hlen] = '\0';

    if (port) {
        snprintf(o->server_port, sizeof(o->server_port), "%u", n);
    } else {
        snprintf(o->server_port, sizeof(o->server_port), "%s",
                 OPTIONS_DEFAULT_PORT);
    }

    return 0;
}


static int
opt_port(const char *v, unsigned *port)
{
    size_t    i;
    unsigned  n;

    n = 0;

    for (i = 0; v[i]; i++) {
        if (v[i] < '0' || v[i] > '9' || i == 5) {
            return -1;
        }

        n = n * 10 + (v[i] - '0');
    }

    if (i == 0 || n == 0 || n > 65535) {
        return -1;
    }

    *port = n;

    return 0;
}


/* as nginx reads sizes: 8388608, 8192k, 8m; and 1g */
static int
opt_size(const char *v, uint32_t *size)
{
    char      *end;
    uint64_t   n, scale;

    if (*v < '0' || *v > '9') {
        return -1;
    }

    errno = 0;
    n = strtoull(v, &end, 10);

    if (errno) {
        return -1;
    }

    switch (*end) {
    case 'k': case 'K': scale = 1024; end++; break;
    case 'm': case 'M': scale = 1024 * 1024; end++; break;
    case 'g': case 'G': scale = 1024 * 1024 * 1024; end++; break;
    default: scale = 1;
    }

    if (*end != '\0' || n > OPT_WINDOW_MAX) {
        return -1;
    }

    n *= scale;

    if (n < OPT_WINDOW_MIN || n > OPT_WINDOW_MAX) {
        return -1;
    }

    *size = (uint32_t) n;

    return 0;
}


static int
opt_bool(const char *v, int *b)
{
    if (strcasecmp(v, "yes") == 0 || strcasecmp(v, "true") == 0
        || strcasecmp(v, "on") == 0 || strcmp(v, "1") == 0)
    {
        *b = 1;
        return 0;
    }

    if (strcasecmp(v, "no") == 0 || strcasecmp(v, "false") == 0
        || strcasecmp(v, "off") == 0 || strcmp(v, "0") == 0)
    {
        *b = 0;
        return 0;
    }

    return -1;
}


/*
 * A DNS name, as the server accepts it (tunnel_name_check): labels of
 * letters, digits and hyphens, lowercased.  "labels": 1 exactly one,
 * 2 at least two (a hostname), -1 any.
 */
static int
opt_dns_name(const char *v, int labels, char *out, size_t size, char *err,
    size_t len)
{
    size_t  n, i, at;

    n = strlen(v);

    if (n && v[n - 1] == '.' && labels != 1) {
        n--;                    /* app.example.com. is app.example.com */
    }

    if (n == 0) {
        snprintf(err, len, "the name is empty; leave the option out for a "
                 "random name");
        return -1;
    }

    if (n > 253 || n >= size) {
        snprintf(err, len, "\"%.20s...\" is longer than 253 characters, "
                 "the most a DNS name has", v);
        return -1;
    }

    for (i = 0; i < n; i++) {
        out[i] = (char) tolower((unsigned char) v[i]);
    }

    out[n] = '\0';

    switch (tunnel_name_check((const uint8_t *) out, n, &at)) {

    case TUNNEL_NAME_OK:
        break;

    case TUNNEL_NAME_EMPTY_LABEL:
        snprintf(err, len, "\"%s\" is not a valid name: it has an empty "
                 "label (two dots in a row, or a dot first)", v);
        return -1;

    case TUNNEL_NAME_LONG_LABEL:
        snprintf(err, len, "\"%s\" is not a valid name: a label (between "
                 "dots) has at most 63 characters", v);
        return -1;

    case TUNNEL_NAME_HYPHEN:
        snprintf(err, len, "\"%s\" is not a valid name: a label neither "
                 "begins nor ends with '-'", v);
        return -1;

    default: /* TUNNEL_NAME_CHAR: the length was checked above */
        snprintf(err, len, "\"%s\" is not a valid name: '%c' is not "
                 "allowed; use letters, digits and '-'", v,
                 (unsigned char) v[at] > ' ' && v[at] != 0x7f ? v[at] : '?');
        return -1;
    }

    if (labels == 2 && memchr(out, '.', n) == NULL) {
        snprintf(err, len, "\"%s\" is one label: a hostname is a full name "
                 "like %s.example.com; for a name under the edge's domain "
                 "use --name", v, out);
        out[0] = '\0';
        return -1;
    }

    return 0;
}


/*
 * What a tunnel forwards to: PORT (127.0.0.1), HOST:PORT, [IPv6]:PORT or
 * unix:/PATH; for http also http://HOST:PORT/.  Checks the syntax only:
 * "host" and "port" are for getaddrinfo(), "text" is for people.
 */
static int
opt_target(const char *v, unsigned kind, char *host, char *port,
    char *text, int *bare, char *err, size_t len)
{
    const char  *p, *h;
    size_t       n, hlen;
    unsigned     num;
    char         buf[300];

    *bare = 0;
    host[0] = '\0';
    port[0] = '\0';

    n = strlen(v);

    if (n == 0 || n >= sizeof(buf)) {
        snprintf(err, len, "give the local service: a port (3000), "
                 "host:port or unix:/path");
        return -1;
    }

    if (strncmp(v, "unix:", 5) == 0) {
        if (v[5] == '\0') {
            snprintf(err, len, "\"%s\" has no path: unix:/run/app.sock", v);
            return -1;
        }

        if (strlen(v + 5) >= sizeof(((struct sockaddr_un *) 0)->sun_path)) {
            snprintf(err, len, "the socket path \"%s\" is longer than %zu "
                     "characters, the most the system takes", v + 5,
                     sizeof(((struct sockaddr_un *) 0)->sun_path) - 1);
            return -1;
        }

        snprintf(text, 300, "%s", v);
        return 0;
    }

    if (strncmp(v, "https://", 8) == 0) {
        snprintf(err, len, "\"%s\": the client passes bytes and does not "
                 "speak TLS to your service; for a local HTTPS service use "
                 "'tunnel tls %s'", v, v + 8);
        return -1;
    }

    memcpy(buf, v, n + 1);
    h = buf;

    if (strncmp(buf, "http://", 7) == 0) {
        if (kind && kind != TUNNEL_KIND_HTTP) {
            snprintf(err, len, "\"%s\" is an http address, and this is a "
                     "%s tunnel: give host:port", v, tunnel_kind_name(kind));
            return -1;
        }

        h = buf + 7;
        n = strlen(h);

        if (n && h[n - 1] == '/') {
            buf[7 + --n] = '\0';
        }

        if (strchr(h, '/')) {
            snprintf(err, len, "\"%s\": give the service alone, without a "
                     "path (the public URL's path is passed as it is)", v);
            return -1;
        }
    }

    if (opt_port(h, &num) == 0) {
        *bare = 1;
        snprintf(host, 256, "127.0.0.1");
        snprintf(port, 8, "%u", num);
        snprintf(text, 300, "localhost:%u", num);
        return 0;
    }

    if (h[0] == '[') {
        p = strchr(h, ']');
        if (p == NULL || p[1] != ':') {
            snprintf(err, len, "\"%s\": an IPv6 service is written "
                     "[::1]:3000", v);
            return -1;
        }

        hlen = p - h - 1;
        memcpy(host, h + 1, hlen < 255 ? hlen : 255);
        host[hlen < 255 ? hlen : 255] = '\0';
        p += 2;

    } else {
        p = strrchr(h, ':');

        if (p == NULL) {
            if (h[0] >= '0' && h[0] <= '9' && strspn(h, "0123456789") == n)
            {
                snprintf(err, len, "%s is not a port: give a number from 1 "
                         "to 65535", h);
            } else {
                snprintf(err, len, "\"%s\" has no port: give host:port, "
                         "e.g. %s:3000, or just the port", v, h);
            }

            return -1;
        }

        if (memchr(h, ':', p - h)) {
            snprintf(err, len, "\"%s\": write an IPv6 address in brackets, "
                     "[::1]:3000", v);
            return -1;
        }

        hlen = p - h;

        if (hlen == 0) {
            memcpy(host, "127.0.0.1", sizeof("127.0.0.1"));
            hlen = 0;

        } else if (hlen > 255) {
            snprintf(err, len, "the host name in \"%s\" is too long", v);
            return -1;

        } else {
            memcpy(host, h, hlen);
            host[hlen] = '\0';
        }

        p++;
    }

    for (n = 0; host[n]; n++) {
        if ((unsigned char) host[n] <= ' ' || host[n] == '/') {
            snprintf(err, len, "\"%s\" is not a host name", host);
            return -1;
        }
    }

    if (opt_port(p, &num) != 0) {
        snprintf(err, len, "\"%s\" in \"%s\" is not a port: give a number "
                 "from 1 to 65535", p, v);
        return -1;
    }

    snprintf(port, 8, "%u", num);

    if (hlen == 0) {
        *bare = 1;
        snprintf(text, 300, "localhost:%u", num);

    } else {
        snprintf(text, 300, "%s", h);
    }

    return 0;
}


/* the tunnels */

static void
opt_cli_tunnel(opt_ctx_t *ctx)
{
    tunnel_t   *t;
    options_t  *o;
    char        err[512];

    o = ctx->o;

    /* the config file's tunnels are for "tunnel start" */
    o->ntunnels = 1;

    t = &o->tunnels[0];
    memset(t, 0, sizeof(tunnel_t));
    memset(&ctx->cli, 0, sizeof(opt_section_t));

    t->kind = (ctx->cmd == CMD_HTTP) ? TUNNEL_KIND_HTTP
            : (ctx->cmd == CMD_TLS) ? TUNNEL_KIND_TLS : TUNNEL_KIND_TCP;
    snprintf(t->label, sizeof(t->label), "%s", tunnel_kind_name(t->kind));

    if (opt_set(ctx, opt_by_id(O_LOCAL), t, &ctx->cli, ctx->args[0], err,
                sizeof(err))
        != 0)
    {
        opt_usage(ctx, "%s", err);
        return;
    }

    ctx->cli.key[O_LOCAL] = 1;
    ctx->cli.key[O_KIND] = 1;

    opt_apply_flags(ctx, 1);
}


static void
opt_select(opt_ctx_t *ctx)
{
    int          i, j, n, found;
    char         list[512];
    size_t       len;
    options_t   *o;

    o = ctx->o;

    if (opt_no_tunnel_flags(ctx) != 0 || ctx->errors) {
        return;
    }

    if (o->ntunnels == 0) {
        if (!ctx->file_read) {
            opt_usage(ctx, "'tunnel start' runs the tunnels of the config "
                      "file, and there is none%s%s; write one (see 'tunnel "
                      "config --help') or give --config FILE",
                      ctx->path[0] ? " at " : "", ctx->path);
        } else {
            opt_usage(ctx, "%s has no tunnels: add a [tunnel NAME] section "
                      "with kind and local (see 'tunnel config --help')",
                      ctx->path);
        }

        return;
    }

    if (ctx->nargs == 0) {
        return;
    }

    len = 0;
    list[0] = '\0';

    for (i = 0; i < o->ntunnels && len < sizeof(list); i++) {
        len += snprintf(list + len, sizeof(list) - len, "%s%s",
                        i ? ", " : "", o->tunnels[i].label);
    }

    for (j = 0; j < ctx->nargs; j++) {
        for (i = 0, found = 0; i < o->ntunnels; i++) {
            found |= (strcmp(o->tunnels[i].label, ctx->args[j]) == 0);
        }

        if (!found) {
            opt_usage(ctx, "no tunnel \"%s\" in %s; it has: %s",
                      ctx->args[j], ctx->path, list);
        }
    }

    if (ctx->errors) {
        return;
    }

    /* keep the file's order, and each tunnel once */
    for (i = 0, n = 0; i < o->ntunnels; i++) {
        for (j = 0; j < ctx->nargs; j++) {
            if (strcmp(o->tunnels[i].label, ctx->args[j]) == 0) {
                break;
            }
        }

        if (j == ctx->nargs) {
            continue;
        }

        if (n != i) {
            o->tunnels[n] = o->tunnels[i];
            ctx->sec[n] = ctx->sec[i];
        }

        n++;
    }

    o->ntunnels = n;
}


/* the tunnels of the config file have their settings there */
static int
opt_no_tunnel_flags(opt_ctx_t *ctx)
{
    int  i;

    for (i = 0; i < ctx->nflags; i++) {
        if (ctx->flags[i].def->flags & OPT_TUNNEL) {
            opt_usage(ctx, "%s is for the one tunnel of 'tunnel "
                      "http|tls|tcp'; for the config file's tunnels, set "
                      "\"%s = ...\" in their [tunnel NAME] sections",
                      ctx->flags[i].as, ctx->flags[i].def->name);
            return -1;
        }
    }

    return 0;
}


/* what a tunnel needs, and settings that do not fit its kind */
static void
opt_finish_tunnel(opt_ctx_t *ctx, tunnel_t *t, opt_section_t *sec)
{
    const char  *kind;
    const char  *p;
    char         host[256], port[8];
    size_t       n;
    int          bare;
    char         err[256];

    if (sec->key[O_KIND] == 0) {
        opt_tunnel_error(ctx, sec, O_COUNT, 2, "[tunnel %s] has no kind: "
                         "add \"kind = http\" (or tls, tcp)", t->label);
        return;
    }

    if (t->kind == 0) {
        return;                 /* a bad kind, said already */
    }

    kind = tunnel_kind_name(t->kind);

    if (sec->key[O_LOCAL] == 0) {
        opt_tunnel_error(ctx, sec, O_COUNT, 2, "[tunnel %s] has no local "
                         "service: add \"local = 3000\" (a port, "
                         "host:port or unix:/path)", t->label);
        return;
    }

    /* "local" was read before "kind" was known: check it again */
    if (sec != &ctx->cli
        && opt_target(sec->local, t->kind, host, port, t->target.text,
                      &bare, err, sizeof(err))
           != 0)
    {
        opt_tunnel_error(ctx, sec, O_LOCAL, 2, "local: %s", err);
        return;
    }

    if (t->name[0] && t->kind == TUNNEL_KIND_TCP) {
        opt_tunnel_error(ctx, sec, sec->key[O_NAME] ? O_NAME
                         : sec->key[O_SUBDOMAIN] ? O_SUBDOMAIN : O_HOSTNAME,
                         2, "a tcp tunnel has no name, the edge gives it a "
                         "port: leave the name out, or ask for a port with "
                         "%sremote-port", sec == &ctx->cli ? "--" : "");
    }

    if (t->remote_port && t->kind != TUNNEL_KIND_TCP) {
        opt_tunnel_error(ctx, sec, O_REMOTE_PORT, 2, "only a tcp tunnel "
                         "gets a port of its own; a%s %s tunnel is reached "
                         "by its name (%sname)",
                         t->kind == TUNNEL_KIND_HTTP ? "n" : "", kind,
                         sec == &ctx->cli ? "--" : "");
    }

    if (t->host_header[0] && t->kind != TUNNEL_KIND_HTTP) {
        opt_tunnel_error(ctx, sec, O_HOST_HEADER, 2, "a %s tunnel passes "
                         "bytes without reading them: the Host header can "
                         "only be changed in an http tunnel", kind);
    }

    if (strcmp(t->host_header, "rewrite") == 0) {
        /* the service sees the Host it would see if called directly */
        if (strncmp(t->target.text, "unix:", 5) == 0) {
            snprintf(t->host_header, sizeof(t->host_header), "localhost");

        } else {
            p = t->target.text;

            if (strncmp(p, "http://", 7) == 0) {
                p += 7;
            }

            n = strlen(p);
            snprintf(t->host_header, sizeof(t->host_header), "%.*s",
                     (int) n, p);
        }
    }
}


/* the target's address: the name is resolved once, at the start */
static void
opt_resolve(opt_ctx_t *ctx, tunnel_t *t, opt_section_t *sec)
{
    int                  rc, bare;
    char                 host[256], port[8], text[300], err[256];
    struct addrinfo      hints, *res;
    struct sockaddr_un  *sun;

    if (opt_target(sec->local, t->kind, host, port, text, &bare, err,
                   sizeof(err))
        != 0)
    {
        return;             /* said already */
    }

    if (strncmp(sec->local, "unix:", 5) == 0) {
        sun = (struct sockaddr_un *) &t->target.addr;
        memset(sun, 0, sizeof(struct sockaddr_un));
        sun->sun_family = AF_UNIX;
        snprintf(sun->sun_path, sizeof(sun->sun_path), "%s",
                 sec->local + 5);
        t->target.addrlen = offsetof(struct sockaddr_un, sun_path)
                            + strlen(sun->sun_path) + 1;
        return;
    }

    memset(&hints, 0, sizeof(hints));
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_NUMERICSERV;

    rc = getaddrinfo(host, port, &hints, &res);
    if (rc != 0) {
        /* a failure, not a usage error: the name may resolve later */
        opt_tunnel_error(ctx, sec, O_LOCAL, 1, "cannot find the local "
                         "service's host \"%s\": %s; check the name, or "
                         "give an address (127.0.0.1:%s)", host,
                         gai_strerror(rc), port);
        return;
    }

    memcpy(&t->target.addr, res->ai_addr, res->ai_addrlen);
    t->target.addrlen = res->ai_addrlen;
    freeaddrinfo(res);
}


static void
opt_finish(opt_ctx_t *ctx)
{
    int              i, cli;
    options_t       *o;
    opt_section_t   *sec;

    o = ctx->o;
    cli = (ctx->cmd == CMD_HTTP || ctx->cmd == CMD_TLS
           || ctx->cmd == CMD_TCP);

    for (i = 0; i < o->ntunnels; i++) {
        sec = cli ? &ctx->cli : &ctx->sec[i];
        opt_finish_tunnel(ctx, &o->tunnels[i], sec);
    }

    /* "config check" goes on, to say all there is to say */
    if (ctx->errors && !ctx->check) {
        return;
    }

    for (i = 0; i < o->ntunnels; i++) {
        sec = cli ? &ctx->cli : &ctx->sec[i];

        if (sec->key[O_LOCAL] && sec->key[O_KIND]) {
            opt_resolve(ctx, &o->tunnels[i], sec);
        }
    }

    if (o->server_host[0] == '\0') {
        opt_usage(ctx, "no server given: add --server HOST[:PORT], set "
                  "TUNNEL_SERVER, or put \"server = HOST:PORT\" in %s",
                  ctx->path[0] ? ctx->path : "the config file");
    }

    if (o->cafile[0] && !o->plain && access(o->cafile, R_OK) != 0) {
        opt_fail(ctx, "cannot read the CA file %s (given by %s): %s",
                 o->cafile, ctx->src[O_CACERT], strerror(errno));
    }
}


/* "tunnel config check": what the client would do, and from where */
static void
opt_summary(opt_ctx_t *ctx)
{
    int          i;
    tunnel_t    *t;
    options_t   *o;
    FILE        *f;
    char         addr[128];

    static const char  *levels[] = { "error", "info", "debug" };
    static const char  *formats[] = { "auto", "text", "json" };

    o = ctx->o;
    f = OUT;

    if (ctx->file_read) {
        fprintf(f, "config file   %s\n", ctx->path);

    } else if (ctx->path[0]) {
        fprintf(f, "config file   none (%s does not exist: flags and the "
                "environment are enough)\n", ctx->path);

    } else {
        fprintf(f, "config file   none ($HOME is not set)\n");
    }

    if (o->server_host[0]) {
        fprintf(f, "server        %s%s%s:%s, %s  [%s]\n",
                strchr(o->server_host, ':') ? "[" : "", o->server_host,
                strchr(o->server_host, ':') ? "]" : "", o->server_port,
                o->plain ? "no TLS"
                : o->insecure ? "TLS, certificate NOT verified"
                : o->cafile[0] ? "TLS, verified with the CA file"
                : "TLS, verified with the system's CAs",
                ctx->src[O_SERVER]);

    } else {
        fprintf(f, "server        none\n");
    }

    if (o->token[0]) {
        fprintf(f, "token         set (%zu characters)  [%s]\n",
                strlen(o->token), ctx->src[O_TOKEN]);
    } else {
        fprintf(f, "token         none (the edge may ask for one)\n");
    }

    if (o->cafile[0]) {
        fprintf(f, "cacert        %s  [%s]\n", o->cafile,
                ctx->src[O_CACERT]);
    }

    fprintf(f, "window        %u KiB  [%s]\n", o->window / 1024,
            ctx->src[O_WINDOW]);
    fprintf(f, "log           level %s [%s], format %s [%s]\n",
            levels[o->log_level], ctx->src[O_LOG_LEVEL],
            formats[o->log_format], ctx->src[O_LOG_FORMAT]);
    fprintf(f, "tunnels       %d\n", o->ntunnels);

    for (i = 0; i < o->ntunnels; i++) {
        t = &o->tunnels[i];
        addr[0] = '\0';

        if (t->target.addrlen && t->target.addr.ss_family != AF_UNIX) {
            if (getnameinfo((struct sockaddr *) &t->target.addr,
                            t->target.addrlen, addr, sizeof(addr), NULL, 0,
                            NI_NUMERICHOST)
                != 0)
            {
                addr[0] = '\0';
            }
        }

        fprintf(f, "  %-12s %-4s  %s%s%s%s", t->label,
                tunnel_kind_name(t->kind), t->target.text,
                addr[0] ? " (" : "", addr, addr[0] ? ")" : "");

        if (t->name[0]) {
            fprintf(f, ", name %s", t->name);
        }

        if (t->remote_port) {
            fprintf(f, ", remote port %u", t->remote_port);
        }

        if (t->host_header[0]) {
            fprintf(f, ", Host: %s", t->host_header);
        }

        if (t->proxy_protocol) {
            fprintf(f, ", PROXY protocol v%d", t->proxy_protocol);
        }

        fprintf(f, "  (line %u)\n", ctx->sec[i].line);
    }

    if (ctx->errors) {
        fprintf(f, "config check: %u error%s\n", ctx->errors,
                ctx->errors == 1 ? "" : "s");
    } else {
        fprintf(f, "config check: OK\n");
    }
}


/* messages */

/*
 * Every error goes through here: "tunnel: ..." with a hint to the help for
 * a usage error, or "FILE:LINE: ..." as compilers say it, so that editors
 * jump there.  The exit status is the worst seen: usage (2) over failure
 * (1); "config check" says 1 for anything.
 */
static void
opt_vreport(opt_ctx_t *ctx, unsigned line, int status, const char *fmt,
    va_list args)
{
    if (line) {
        fprintf(ERR, "%s:%u: ", ctx->path, line);
    } else {
        fprintf(ERR, "tunnel: ");
    }

    vfprintf(ERR, fmt, args);

    if (line == 0 && status == 2) {
        if (ctx->word && ctx->cmd != CMD_NONE) {
            fprintf(ERR, " (run 'tunnel %s --help')", ctx->word);
        } else {
            fprintf(ERR, " (run 'tunnel --help')");
        }
    }

    fputc('\n', ERR);

    ctx->errors++;

    if (ctx->check) {
        status = 1;
    }

    if (status > ctx->status) {
        ctx->status = status;
    }
}


static void
opt_usage(opt_ctx_t *ctx, const char *fmt, ...)
{
    va_list  args;

    va_start(args, fmt);
    opt_vreport(ctx, 0, 2, fmt, args);
    va_end(args);
}


static void
opt_fail(opt_ctx_t *ctx, const char *fmt, ...)
{
    va_list  args;

    va_start(args, fmt);
    opt_vreport(ctx, 0, 1, fmt, args);
    va_end(args);
}


static void
opt_file_error(opt_ctx_t *ctx, unsigned line, const char *fmt, ...)
{
    va_list  args;

    va_start(args, fmt);
    opt_vreport(ctx, line, 2, fmt, args);
    va_end(args);
}


/*
 * An error about a tunnel: at the line of its key (or of its section), or
 * on the command line for the tunnel of "tunnel http|tls|tcp".
 */
static void
opt_tunnel_error(opt_ctx_t *ctx, opt_section_t *sec, opt_id_e key,
    int status, const char *fmt, ...)
{
    va_list   args;
    unsigned  line;

    if (sec == &ctx->cli) {
        line = 0;
    } else {
        line = (key < O_COUNT && sec->key[key]) ? sec->key[key] : sec->line;
    }

    va_start(args, fmt);
    opt_vreport(ctx, line, status, fmt, args);
    va_end(args);
}


/* help */

static void
opt_help(opt_cmd_e cmd, FILE *f)
{
    unsigned  kind;

    switch (cmd) {

    case CMD_HTTP:
    case CMD_TLS:
    case CMD_TCP:
        kind = (cmd == CMD_HTTP) ? OPT_HTTP
             : (cmd == CMD_TLS) ? OPT_TLS : OPT_TCP;

        fprintf(f, "Usage: tunnel %s PORT|HOST:PORT|unix:/PATH [options]\n"
                "\n", cmd == CMD_HTTP ? "http" : cmd == CMD_TLS ? "tls"
                                                                : "tcp");

        if (cmd == CMD_HTTP) {
            fprintf(f,
"Exposes a local HTTP service at a public URL, http://NAME.<edge domain>\n"
"(https too when the edge has a certificate for it).  The edge (nginx)\n"
"speaks HTTP to the public; your service gets HTTP/1.1 requests.\n"
"\n"
"Examples:\n"
"  tunnel http 3000                          localhost:3000, a random name\n"
"  tunnel http 8080 --name myapp             myapp.<edge domain>\n"
"  tunnel http app.lan:80 --host-header rewrite\n"
"  tunnel http unix:/run/app.sock\n");

        } else if (cmd == CMD_TLS) {
            fprintf(f,
"Exposes a local TLS service by name: the edge reads the TLS server name\n"
"and passes the encrypted bytes through; your service holds the\n"
"certificate for the public name.\n"
"\n"
"Examples:\n"
"  tunnel tls 8443 --hostname app.example.com\n"
"  tunnel tls 443 --name myapp\n");

        } else {
            fprintf(f,
"Exposes any local TCP service on a public port of the edge (from the\n"
"edge's tunnel_tcp_ports range).\n"
"\n"
"Examples:\n"
"  tunnel tcp 22                             any free port\n"
"  tunnel tcp 5432 --remote-port 30432\n");
        }

        fprintf(f, "\nPORT alone means 127.0.0.1:PORT.\n\nOptions:\n");
        opt_help_options(f, OPT_GLOBAL | OPT_TUNNEL, kind);
        break;

    case CMD_START:
        fprintf(f,
"Usage: tunnel start [NAME...] [options]\n"
"\n"
"Runs the tunnels of the config file, all of them or those NAMEd, on one\n"
"connection to the edge.  'tunnel config --help' describes the file.\n"
"\n"
"Examples:\n"
"  tunnel start\n"
"  tunnel start web api --config ./tunnel.conf\n"
"\n"
"Options:\n");
        opt_help_options(f, OPT_GLOBAL, 0);
        break;

    case CMD_CONFIG:
        fprintf(f,
"Usage: tunnel config check [--config FILE] [options]\n"
"\n"
"Reads the config file, resolves the local services, and shows every\n"
"setting with where it came from; errors are shown as FILE:LINE.\n"
"Exit status 0 if all is well, 1 if not.\n"
"\n"
"The file: --config FILE, or $TUNNEL_CONFIG, or else\n"
"$XDG_CONFIG_HOME/tunnel/tunnel.conf (~/.config/tunnel/tunnel.conf).\n"
"Keep it private (chmod 600): it holds your token.\n"
"\n"
"  # first the settings for the whole client: long options' names\n"
"  server = edge.example.com:4443\n"
"  token  = 5f2b9c...\n"
"\n"
"  [tunnel web]            # 'tunnel start web' runs this one\n"
"  kind  = http            # http, tls or tcp\n"
"  local = 3000            # PORT, HOST:PORT or unix:/PATH\n"
"  name  = myapp           # also: subdomain, hostname, host-header,\n"
"                          # proxy-protocol, remote-port (tcp)\n"
"\n"
"One KEY = VALUE a line; '#' starts a comment (after a space); a value\n"
"may be \"quoted\"; switches (insecure, plain) take yes or no.\n"
"Flags win over the environment, which wins over the file.\n"
"\n"
"Options:\n");
        opt_help_options(f, OPT_GLOBAL, 0);
        break;

    default:
        fprintf(f,
"tunnel %s: expose a local service through an ngx_tunnel edge (nginx)\n"
"\n"
"Usage:\n"
"  tunnel http PORT [options]    an HTTP service, at http://NAME.<domain>\n"
"  tunnel tls PORT [options]     a TLS service, passed through by name\n"
"  tunnel tcp PORT [options]     any TCP service, on a public port\n"
"  tunnel start [NAME...]        the tunnels of the config file\n"
"  tunnel config check           check the config file, show the settings\n"
"  tunnel COMMAND --help         more about a command\n"
"\n"
"PORT is 3000 (on this machine), HOST:PORT or unix:/PATH.\n"
"\n"
"Examples:\n"
"  tunnel http 3000 --server edge.example.com --token \"$TOKEN\"\n"
"  tunnel http 8080 --name myapp\n"
"  tunnel tcp 5432 --remote-port 30432\n"
"  tunnel start web api\n"
"\n"
"Options:\n", TUNNEL_CLIENT_VERSION);
        opt_help_options(f, OPT_GLOBAL | OPT_TUNNEL, OPT_KINDS);
        break;
    }

    fprintf(f,
"\n"
"Environment: TUNNEL_SERVER, TUNNEL_TOKEN, TUNNEL_CA, TUNNEL_LOG_LEVEL,\n"
"TUNNEL_LOG_FORMAT, TUNNEL_CONFIG.  Flags win over the environment, which\n"
"wins over the config file.\n"
"Exit status: 0 done, 1 failed (e.g. the token was refused), 2 usage.\n");
}


static void
opt_help_options(FILE *f, unsigned want, unsigned kind)
{
    unsigned          k;
    int               n;
    const opt_def_t  *d;
    char              left[64];

    for (k = 0; k < OPT_NDEFS; k++) {
        d = &opt_defs[k];

        if (!(d->flags & OPT_FLAG) || d->help == NULL) {
            continue;
        }

        if ((d->flags & (OPT_GLOBAL | OPT_TUNNEL))
            && !(d->flags & want))
        {
            continue;
        }

        if ((d->flags & OPT_TUNNEL) && !(d->flags & kind)) {
            continue;
        }

        if (d->letter) {
            n = snprintf(left, sizeof(left), "-%c, ", d->letter);
        } else {
            n = snprintf(left, sizeof(left), "    ");
        }

        n += snprintf(left + n, sizeof(left) - n, "--%s%s%s", d->name,
                      d->arg ? " " : "", d->arg ? d->arg : "");

        if (d->alias) {
            snprintf(left + n, sizeof(left) - n, ", --%s", d->alias);
        }

        fprintf(f, "  %-25s %s\n", left, d->help);
    }
}
