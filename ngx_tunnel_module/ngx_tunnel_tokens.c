
/*
 * Copyright (C) ngx_tunnel developers
 *
 * The token file ("tunnel_tokens"), read when nginx reads its configuration,
 * and the checks made with it when a client registers.
 *
 * Format
 *
 *   UTF-8 text (a leading byte order mark is skipped), one token per line,
 *   LF or CRLF line ends.  Blank lines are ignored.  A word that begins
 *   with "#" starts a comment that runs to the end of its line, so a token
 *   cannot begin with "#".  Words are separated by spaces or tabs.
 *
 *   The first word of a line is the token: 16 to 512 printable ASCII
 *   characters (0x21-0x7e).  The words after it are options, key=value,
 *   each at most once except "names":
 *
 *     id=<account>     the account name in logs and in tunnel_status:
 *                      1-64 characters of A-Z a-z 0-9 . _ -, unique in the
 *                      file; default "line<N>", N being the line number.
 *     names=<rules>    the names the token may bind, comma-separated:
 *                        api.example.com   this name (lowercase)
 *                        *.example.com     any name with one label or more
 *                                          before ".example.com"
 *                        ~regex            a PCRE2 regular expression
 *                                          for the lowercase name; it
 *                                          matches anywhere in the name
 *                                          unless anchored, so write
 *                                          ^...$ (nginx -t warns if not).
 *                                          A regex runs to the end of the
 *                                          word, commas included, so it
 *                                          comes last; give "names=" again
 *                                          for more than one.
 *                      Without "names", the token may bind any name of
 *                      one label directly under tunnel_domain.
 *     ports=<lo>-<hi>  the tcp ports the token may bind, within
 *     ports=<n>        tunnel_tcp_ports; 1024-65535.  Default: any port of
 *                      tunnel_tcp_ports.
 *     tunnels=<n>      at most n tunnels at once, counted over all the
 *                      token's sessions (1-1000000); default: no limit.
 *     streams=<n>      at most n streams (public connections) open at
 *                      once, over all its sessions (1-1000000); default:
 *                      no limit.
 *
 *   Example:
 *
 *     # laptop of the web team
 *     3hU0yVq8x2Jd7kQpL1mZ9aRt id=web names=*.dev.example.com,example.net
 *     vN4cE8sW2qYh6TbK0pXz5LmA id=ci ports=30000-30099 tunnels=4
 *     Q7rD1fG5jK9lZ3xC8vB2nM6w id=tls names=~^api-[a-z0-9]+\.example\.com$
 *
 * Any mistake (an unknown option, a bad value, a token given twice, an id
 * given twice, a file without tokens) is a configuration error that names
 * the file and the line; "nginx -t" shows it.  The master process reads the
 * file as root, so it can be mode 0600; nginx warns when others may read
 * it.  The tokens themselves are never kept in memory after
 * the file is read, nor logged: only their SHA-256 is kept, and a client's
 * token is hashed and compared with every hash in constant time.
 */


#include <ngx_config.h>
#include <ngx_core.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>

#include "ngx_tunnel.h"


#define NGX_TUNNEL_TOKEN_MIN      16
#define NGX_TUNNEL_TOKEN_MAX      512
#define NGX_TUNNEL_TOKENS_FILE_MAX  (64 * 1024 * 1024)
#define NGX_TUNNEL_LIMIT_MAX      1000000


typedef struct {
    ngx_conf_t                *cf;
    ngx_str_t                 *file;
    ngx_uint_t                 line;
    ngx_array_t               *tokens;  /* ngx_tunnel_token_t */
    ngx_array_t               *lines;   /* ngx_uint_t, line of each token */
} ngx_tunnel_tokens_ctx_t;


/* a token and its line, to find duplicates */
typedef struct {
    ngx_tunnel_token_t        *token;
    ngx_uint_t                 line;
} ngx_tunnel_token_ref_t;


static ngx_int_t ngx_tunnel_tokens_parse(ngx_tunnel_tokens_ctx_t *ctx,
    u_char *p, u_char *end);
static ngx_int_t ngx_tunnel_tokens_line(ngx_tunnel_tokens_ctx_t *ctx,
    u_char *p, u_char *end);
static ngx_int_t ngx_tunnel_tokens_option(ngx_tunnel_tokens_ctx_t *ctx,
    ngx_tunnel_token_t *t, ngx_uint_t *seen, ngx_uint_t n, ngx_str_t *word);
static ngx_int_t ngx_tunnel_tokens_names(ngx_tunnel_tokens_ctx_t *ctx,
    ngx_tunnel_token_t *t, ngx_str_t *value);
static ngx_int_t ngx_tunnel_tokens_regex(ngx_tunnel_tokens_ctx_t *ctx,
    ngx_tunnel_name_rule_t *rule, u_char *p, size_t len);
static ngx_int_t ngx_tunnel_tokens_ports(ngx_tunnel_tokens_ctx_t *ctx,
    ngx_tunnel_token_t *t, ngx_str_t *value);
static ngx_int_t ngx_tunnel_tokens_unique(ngx_tunnel_tokens_ctx_t *ctx);
static int ngx_libc_cdecl ngx_tunnel_tokens_cmp_hash(const void *one,
    const void *two);
static int ngx_libc_cdecl ngx_tunnel_tokens_cmp_account(const void *one,
    const void *two);
static ngx_int_t ngx_tunnel_tokens_hash(u_char *p, size_t len, u_char *hash);
static void ngx_libc_cdecl ngx_tunnel_tokens_error(
    ngx_tunnel_tokens_ctx_t *ctx, ngx_uint_t level, ngx_uint_t line,
    const char *fmt, ...);


static ngx_str_t  ngx_tunnel_token_options[] = {
    ngx_string("id"),
    ngx_string("names"),
    ngx_string("ports"),
    ngx_string("tunnels"),
    ngx_string("streams"),
    ngx_null_string
};


ngx_array_t *
ngx_tunnel_tokens_read(ngx_conf_t *cf, ngx_str_t *file)
{
    u_char                   *buf, *name;
    size_t                    size;
    ssize_t                   n;
    ngx_int_t                 rc;
    ngx_fd_t                  fd;
    ngx_file_t                f;
    ngx_file_info_t           fi;
    ngx_tunnel_tokens_ctx_t   ctx;

    /* configuration words end in a NUL, but make sure */
    name = ngx_pnalloc(cf->temp_pool, file->len + 1);
    if (name == NULL) {
        return NULL;
    }

    (void) ngx_cpystrn(name, file->data, file->len + 1);

    fd = ngx_open_file(name, NGX_FILE_RDONLY, NGX_FILE_OPEN, 0);
    if (fd == NGX_INVALID_FILE) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, ngx_errno,
                           "tunnel_tokens: " ngx_open_file_n " \"%V\" failed",
                           file);
        return NULL;
    }

    buf = NULL;
    size = 0;
    rc = NGX_ERROR;

    if (ngx_fd_info(fd, &fi) == NGX_FILE_ERROR) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, ngx_errno,
                           "tunnel_tokens: " ngx_fd_info_n " \"%V\" failed",
                           file);
        goto done;
    }

    if (!ngx_is_file(&fi)) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "tunnel_tokens \"%V\" is not a file", file);
        goto done;
    }

    if (ngx_file_size(&fi) > NGX_TUNNEL_TOKENS_FILE_MAX) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "tunnel_tokens \"%V\" is larger than %d MiB",
                           file, NGX_TUNNEL_TOKENS_FILE_MAX / 1024 / 1024);
        goto done;
    }

    if (ngx_file_access(&fi) & (S_IROTH|S_IWOTH)) {
        /* the master reads it as root: it need not be readable by all */
        ngx_conf_log_error(NGX_LOG_WARN, cf, 0,
                           "tunnel_tokens \"%V\" can be read by any user "
                           "of this machine (chmod o-rw)", file);
    }

    size = (size_t) ngx_file_size(&fi);

    buf = ngx_pnalloc(cf->temp_pool, size + 1);
    if (buf == NULL) {
        goto done;
    }

    ngx_memzero(&f, sizeof(ngx_file_t));
    f.fd = fd;
    f.name = *file;
    f.log = cf->log;

    n = ngx_read_file(&f, buf, size, 0);

    if (n == NGX_ERROR) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, ngx_errno,
                           "tunnel_tokens: " ngx_read_file_n " \"%V\" failed",
                           file);
        goto done;
    }

    if ((size_t) n != size) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "tunnel_tokens: " ngx_read_file_n " \"%V\" "
                           "returned only %z bytes instead of %uz",
                           file, n, size);
        goto done;
    }

    ngx_memzero(&ctx, sizeof(ngx_tunnel_tokens_ctx_t));
    ctx.cf = cf;
    ctx.file = file;

    ctx.tokens = ngx_array_create(cf->pool, 8, sizeof(ngx_tunnel_token_t));
    ctx.lines = ngx_array_create(cf->temp_pool, 8, sizeof(ngx_uint_t));

    if (ctx.tokens == NULL || ctx.lines == NULL) {
        goto done;
    }

    rc = ngx_tunnel_tokens_parse(&ctx, buf, buf + size);

done:

    if (buf) {
        /* the temporary pool is freed, not wiped: wipe the tokens */
        OPENSSL_cleanse(buf, size);
    }

    if (ngx_close_file(fd) == NGX_FILE_ERROR) {
        ngx_log_error(NGX_LOG_ALERT, cf->log, ngx_errno,
                      ngx_close_file_n " \"%V\" failed", file);
    }

    if (rc != NGX_OK) {
        return NULL;
    }

    if (ctx.tokens->nelts == 0) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "tunnel_tokens \"%V\" has no tokens", file);
        return NULL;
    }

    if (ngx_tunnel_tokens_unique(&ctx) != NGX_OK) {
        return NULL;
    }

    return ctx.tokens;
}


static ngx_int_t
ngx_tunnel_tokens_parse(ngx_tunnel_tokens_ctx_t *ctx, u_char *p, u_char *end)
{
    u_char  *eol;

    /* a byte order mark, as some editors write */
    if (end - p >= 3 && p[0] == 0xef && p[1] == 0xbb && p[2] == 0xbf) {
        p += 3;
    }

    while (p < end) {
        ctx->line++;

        eol = ngx_strlchr(p, end, LF);
        if (eol == NULL) {
            eol = end;
        }

        if (ngx_tunnel_tokens_line(ctx, p, eol) != NGX_OK) {
            return NGX_ERROR;
        }

        p = eol + 1;
    }

    return NGX_OK;
}


static ngx_int_t
ngx_tunnel_tokens_line(ngx_tunnel_tokens_ctx_t *ctx, u_char *p, u_char *end)
{
    u_char              *start;
    ngx_str_t            word, *opt;
    ngx_uint_t           n, seen, *line;
    ngx_tunnel_token_t  *t;

    t = NULL;
    seen = 0;

    for (n = 0; /* void */; n++) {

        while (p < end && (*p == ' ' || *p == '\t' || *p == CR)) {
            p++;
        }

        if (p == end || *p == '#') {
            break;
        }

        start = p;

        while (p < end && *p != ' ' && *p != '\t' && *p != CR) {
            p++;
        }

        word.data = start;
        word.len = p - start;

        if (n > 0) {
            if (ngx_tunnel_tokens_option(ctx, t, &seen, n, &word) != NGX_OK) {
                return NGX_ERROR;
            }

            continue;
        }

        /*
         * The token.  It is never logged: the messages below say what is
         * wrong with it, not what it is.
         */

        for (opt = ngx_tunnel_token_options; opt->len; opt++) {
            if (word.len > opt->len
                && word.data[opt->len] == '='
                && ngx_strncmp(word.data, opt->data, opt->len) == 0)
            {
                ngx_tunnel_tokens_error(ctx, NGX_LOG_EMERG, ctx->line,
                                        "the first word must be the token, "
                                        "not option \"%V\"", opt);
                return NGX_ERROR;
            }
        }

        if (word.len < NGX_TUNNEL_TOKEN_MIN) {
            ngx_tunnel_tokens_error(ctx, NGX_LOG_EMERG, 0,
                                    "token on line %ui is too short "
                                    "(at least %d characters)",
                                    ctx->line, NGX_TUNNEL_TOKEN_MIN);
            return NGX_ERROR;
        }

        if (word.len > NGX_TUNNEL_TOKEN_MAX) {
            ngx_tunnel_tokens_error(ctx, NGX_LOG_EMERG, 0,
                                    "token on line %ui is too long "
                                    "(at most %d characters)",
                                    ctx->line, NGX_TUNNEL_TOKEN_MAX);
            return NGX_ERROR;
        }

        for (start = word.data; start < p; start++) {
            if (*start < 0x21 || *start > 0x7e) {
                ngx_tunnel_tokens_error(ctx, NGX_LOG_EMERG, 0,
                                        "token on line %ui has a character "
                                        "that is not printable ASCII at "
                                        "position %uz", ctx->line,
                                        (size_t) (start - word.data) + 1);
                return NGX_ERROR;
            }
        }

        t = ngx_array_push(ctx->tokens);
        line = ngx_array_push(ctx->lines);

        if (t == NULL || line == NULL) {
            return NGX_ERROR;
        }

        ngx_memzero(t, sizeof(ngx_tunnel_token_t));
        *line = ctx->line;

        if (ngx_tunnel_tokens_hash(word.data, word.len, t->hash) != NGX_OK) {
            ngx_tunnel_tokens_error(ctx, NGX_LOG_EMERG, ctx->line,
                                    "SHA-256 failed");
            return NGX_ERROR;
        }
    }

    if (t == NULL) {
        /* blank or comment */
        return NGX_OK;
    }

    if (t->account.len == 0) {
        t->account.data = ngx_pnalloc(ctx->cf->pool, sizeof("line") - 1
                                                     + NGX_INT_T_LEN);
        if (t->account.data == NULL) {
            return NGX_ERROR;
        }

        t->account.len = ngx_sprintf(t->account.data, "line%ui", ctx->line)
                         - t->account.data;
    }

    return NGX_OK;
}


static ngx_int_t
ngx_tunnel_tokens_option(ngx_tunnel_tokens_ctx_t *ctx, ngx_tunnel_token_t *t,
    ngx_uint_t *seen, ngx_uint_t n, ngx_str_t *word)
{
    u_char      *eq, *p;
    ngx_int_t    v;
    ngx_str_t    key, value, *opt;
    ngx_uint_t   i, printable;

    eq = ngx_strlchr(word->data, word->data + word->len, '=');

    if (eq == NULL) {
        /* perhaps a second token pasted on the line: not shown */
        ngx_tunnel_tokens_error(ctx, NGX_LOG_EMERG, ctx->line,
                                "word %ui is not an option (key=value)",
                                n + 1);
        return NGX_ERROR;
    }

    key.data = word->data;
    key.len = eq - word->data;
    value.data = eq + 1;
    value.len = word->data + word->len - value.data;

    for (i = 0, opt = ngx_tunnel_token_options; opt->len; i++, opt++) {
        if (key.len == opt->len
            && ngx_strncmp(key.data, opt->data, key.len) == 0)
        {
            break;
        }
    }

    if (opt->len == 0) {

        /*
         * Show the key if it looks like one; a word with an "=" may as
         * well be a base64 token put there by mistake.
         */

        printable = (key.len > 0 && key.len <= 16);

        for (p = key.data; p < key.data + key.len; p++) {
            if ((*p < 'a' || *p > 'z') && *p != '_') {
                printable = 0;
            }
        }

        if (printable) {
            ngx_tunnel_tokens_error(ctx, NGX_LOG_EMERG, ctx->line,
                                    "unknown option \"%V\"", &key);

        } else {
            ngx_tunnel_tokens_error(ctx, NGX_LOG_EMERG, ctx->line,
                                    "word %ui is not a known option "
                                    "(id, names, ports, tunnels, streams)",
                                    n + 1);
        }

        return NGX_ERROR;
    }

    /* "names" may come again, to hold several regexes */
    if ((*seen & (1 << i)) && i != 1) {
        ngx_tunnel_tokens_error(ctx, NGX_LOG_EMERG, ctx->line,
                                "option \"%V\" is duplicate", &key);
        return NGX_ERROR;
    }

    *seen |= 1 << i;

    switch (i) {

    case 0:  /* id */

        if (value.len == 0 || value.len > NGX_TUNNEL_ACCOUNT_MAX) {
            goto invalid_id;
        }

        for (p = value.data; p < value.data + value.len; p++) {
            if ((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z')
                || (*p >= '0' && *p <= '9')
                || *p == '.' || *p == '_' || *p == '-')
            {
                continue;
            }

            goto invalid_id;
        }

        t->account.data = ngx_pnalloc(ctx->cf->pool, value.len);
        if (t->account.data == NULL) {
            return NGX_ERROR;
        }

        ngx_memcpy(t->account.data, value.data, value.len);
        t->account.len = value.len;

        return NGX_OK;

    case 1:  /* names */
        return ngx_tunnel_tokens_names(ctx, t, &value);

    case 2:  /* ports */
        return ngx_tunnel_tokens_ports(ctx, t, &value);

    default: /* tunnels, streams */

        v = ngx_atoi(value.data, value.len);

        if (v < 1 || v > NGX_TUNNEL_LIMIT_MAX) {
            ngx_tunnel_tokens_error(ctx, NGX_LOG_EMERG, ctx->line,
                                    "invalid %V \"%V\" (a number from 1 "
                                    "to %d)", &key, &value,
                                    NGX_TUNNEL_LIMIT_MAX);
            return NGX_ERROR;
        }

        if (i == 3) {
            t->max_tunnels = (ngx_uint_t) v;

        } else {
            t->max_streams = (ngx_uint_t) v;
        }

        return NGX_OK;
    }

invalid_id:

    ngx_tunnel_tokens_error(ctx, NGX_LOG_EMERG, ctx->line,
                            "invalid id \"%V\" (1-%d characters of "
                            "A-Z a-z 0-9 . _ -)", &value,
                            NGX_TUNNEL_ACCOUNT_MAX);

    return NGX_ERROR;
}


static ngx_int_t
ngx_tunnel_tokens_names(ngx_tunnel_tokens_ctx_t *ctx, ngx_tunnel_token_t *t,
    ngx_str_t *value)
{
    u_char                  *p, *end, *comma;
    size_t                   len;
    ngx_tunnel_name_rule_t  *rule;

    if (value->len == 0) {
        ngx_tunnel_tokens_error(ctx, NGX_LOG_EMERG, ctx->line,
                                "option \"names\" has no names");
        return NGX_ERROR;
    }

    if (t->names == NULL) {
        t->names = ngx_array_create(ctx->cf->pool, 2,
                                    sizeof(ngx_tunnel_name_rule_t));
        if (t->names == NULL) {
            return NGX_ERROR;
        }
    }

    p = value->data;
    end = value->data + value->len;

    while (p < end) {

        rule = ngx_array_push(t->names);
        if (rule == NULL) {
            return NGX_ERROR;
        }

        ngx_memzero(rule, sizeof(ngx_tunnel_name_rule_t));

        if (*p == '~') {
            /* the regex may hold commas: it takes the rest */
            if (ngx_tunnel_tokens_regex(ctx, rule, p + 1, end - p - 1)
                != NGX_OK)
            {
                return NGX_ERROR;
            }

            break;
        }

        comma = ngx_strlchr(p, end, ',');
        if (comma == NULL) {
            comma = end;
        }

        len = comma - p;

        if (len == 0) {
            ngx_tunnel_tokens_error(ctx, NGX_LOG_EMERG, ctx->line,
                                    "empty name in \"names=%V\"", value);
            return NGX_ERROR;
        }

        if (len > 2 && p[0] == '*' && p[1] == '.') {
            rule->type = NGX_TUNNEL_RULE_SUFFIX;
            rule->name.data = p + 1;                /* ".example.com" */
            rule->name.len = len - 1;

            if (tunnel_name_check(p + 2, len - 2, NULL)
                != TUNNEL_NAME_OK)
            {
                goto invalid;
            }

        } else {
            rule->type = NGX_TUNNEL_RULE_EXACT;
            rule->name.data = p;
            rule->name.len = len;

            if (tunnel_name_check(p, len, NULL) != TUNNEL_NAME_OK) {
                goto invalid;
            }
        }

        rule->name.data = ngx_pstrdup(ctx->cf->pool, &rule->name);
        if (rule->name.data == NULL) {
            return NGX_ERROR;
        }

        p = comma + 1;

        if (comma + 1 == end) {
            ngx_tunnel_tokens_error(ctx, NGX_LOG_EMERG, ctx->line,
                                    "empty name in \"names=%V\"", value);
            return NGX_ERROR;
        }
    }

    return NGX_OK;

invalid:

    ngx_tunnel_tokens_error(ctx, NGX_LOG_EMERG, ctx->line,
                            "invalid name \"%*s\" (a lowercase DNS name, "
                            "\"*.\" and a DNS name, or \"~\" and a regex)",
                            len, p);

    return NGX_ERROR;
}


static ngx_int_t
ngx_tunnel_tokens_regex(ngx_tunnel_tokens_ctx_t *ctx,
    ngx_tunnel_name_rule_t *rule, u_char *p, size_t len)
{
#if (NGX_PCRE)
    u_char               errstr[NGX_MAX_CONF_ERRSTR];
    ngx_regex_compile_t  rc;

    rule->type = NGX_TUNNEL_RULE_REGEX;

    if (len == 0) {
        ngx_tunnel_tokens_error(ctx, NGX_LOG_EMERG, ctx->line,
                                "empty regex after \"~\"");
        return NGX_ERROR;
    }

    rule->name.data = ngx_pnalloc(ctx->cf->pool, len);
    if (rule->name.data == NULL) {
        return NGX_ERROR;
    }

    ngx_memcpy(rule->name.data, p, len);
    rule->name.len = len;

    ngx_memzero(&rc, sizeof(ngx_regex_compile_t));

    rc.pattern = rule->name;
    rc.pool = ctx->cf->pool;
    rc.err.len = NGX_MAX_CONF_ERRSTR;
    rc.err.data = errstr;

    if (ngx_regex_compile(&rc) != NGX_OK) {
        ngx_tunnel_tokens_error(ctx, NGX_LOG_EMERG, ctx->line, "%V",
                                &rc.err);
        return NGX_ERROR;
    }

    rule->regex = rc.regex;

    /* an unanchored "example" would allow "example.attacker.net" */
    if (p[0] != '^' || p[len - 1] != '$') {
        ngx_tunnel_tokens_error(ctx, NGX_LOG_WARN, ctx->line,
                                "regex \"%V\" is not anchored with ^ and $: "
                                "it matches any name that contains a match",
                                &rule->name);
    }

    return NGX_OK;

#else

    ngx_tunnel_tokens_error(ctx, NGX_LOG_EMERG, ctx->line,
                            "regular expressions need nginx built with "
                            "PCRE");
    return NGX_ERROR;

#endif
}


static ngx_int_t
ngx_tunnel_tokens_ports(ngx_tunnel_tokens_ctx_t *ctx, ngx_tunnel_token_t *t,
    ngx_str_t *value)
{
    u_char     *dash;
    ngx_int_t   lo, hi;

    dash = ngx_strlchr(value->data, value->data + value->len, '-');

    if (dash) {
        lo = ngx_atoi(value->data, dash - value->data);
        hi = ngx_atoi(dash + 1, value->data + value->len - dash - 1);

    } else {
        lo = ngx_atoi(value->data, value->len);
        hi = lo;
    }

    if (lo < 1024 || hi > 65535 || lo > hi) {
        ngx_tunnel_tokens_error(ctx, NGX_LOG_EMERG, ctx->line,
                                "invalid ports \"%V\" (a port or a range "
                                "such as 30000-30099, within 1024-65535)",
                                value);
        return NGX_ERROR;
    }

    t->port_min = (in_port_t) lo;
    t->port_max = (in_port_t) hi;

    return NGX_OK;
}


/* the same token twice would give one of its lines' rights at random */
static ngx_int_t
ngx_tunnel_tokens_unique(ngx_tunnel_tokens_ctx_t *ctx)
{
    ngx_uint_t               i, n, *lines, a, b;
    ngx_tunnel_token_t      *t;
    ngx_tunnel_token_ref_t  *refs;

    n = ctx->tokens->nelts;
    t = ctx->tokens->elts;
    lines = ctx->lines->elts;

    refs = ngx_palloc(ctx->cf->temp_pool, n * sizeof(ngx_tunnel_token_ref_t));
    if (refs == NULL) {
        return NGX_ERROR;
    }

    for (i = 0; i < n; i++) {
        refs[i].token = &t[i];
        refs[i].line = lines[i];
    }

    ngx_qsort(refs, n, sizeof(ngx_tunnel_token_ref_t),
              ngx_tunnel_tokens_cmp_hash);

    for (i = 1; i < n; i++) {
        if (ngx_memcmp(refs[i - 1].token->hash, refs[i].token->hash,
                       NGX_TUNNEL_HASH_LEN)
            == 0)
        {
            a = ngx_min(refs[i - 1].line, refs[i].line);
            b = ngx_max(refs[i - 1].line, refs[i].line);

            ngx_tunnel_tokens_error(ctx, NGX_LOG_EMERG, b,
                                    "the same token as on line %ui", a);
            return NGX_ERROR;
        }
    }

    ngx_qsort(refs, n, sizeof(ngx_tunnel_token_ref_t),
              ngx_tunnel_tokens_cmp_account);

    for (i = 1; i < n; i++) {
        if (refs[i - 1].token->account.len == refs[i].token->account.len
            && ngx_memcmp(refs[i - 1].token->account.data,
                          refs[i].token->account.data,
                          refs[i].token->account.len)
               == 0)
        {
            a = ngx_min(refs[i - 1].line, refs[i].line);
            b = ngx_max(refs[i - 1].line, refs[i].line);

            ngx_tunnel_tokens_error(ctx, NGX_LOG_EMERG, b,
                                    "id \"%V\" is already used on line %ui",
                                    &refs[i].token->account, a);
            return NGX_ERROR;
        }
    }

    return NGX_OK;
}


static int ngx_libc_cdecl
ngx_tunnel_tokens_cmp_hash(const void *one, const void *two)
{
    const ngx_tunnel_token_ref_t  *a = one;
    const ngx_tunnel_token_ref_t  *b = two;

    int  rc;

    rc = ngx_memcmp(a->token->hash, b->token->hash, NGX_TUNNEL_HASH_LEN);

    if (rc != 0) {
        return rc;
    }

    /* equal hashes in file order, for the message */
    return (a->line > b->line) - (a->line < b->line);
}


static int ngx_libc_cdecl
ngx_tunnel_tokens_cmp_account(const void *one, const void *two)
{
    const ngx_tunnel_token_ref_t  *a = one;
    const ngx_tunnel_token_ref_t  *b = two;

    int  rc;

    rc = ngx_memn2cmp(a->token->account.data, b->token->account.data,
                      a->token->account.len, b->token->account.len);

    if (rc != 0) {
        return rc;
    }

    return (a->line > b->line) - (a->line < b->line);
}


static ngx_int_t
ngx_tunnel_tokens_hash(u_char *p, size_t len, u_char *hash)
{
    unsigned int  n;

    if (EVP_Digest(p, len, hash, &n, EVP_sha256(), NULL) != 1
        || n != NGX_TUNNEL_HASH_LEN)
    {
        return NGX_ERROR;
    }

    return NGX_OK;
}


/*
 * "tunnel_tokens "/etc/nginx/tunnel.tokens", line 3: unknown option "foo"";
 * ngx_conf_log_error() adds where tunnel_tokens itself is.  A line of 0
 * leaves the line out, for messages that say it themselves.
 */
static void ngx_libc_cdecl
ngx_tunnel_tokens_error(ngx_tunnel_tokens_ctx_t *ctx, ngx_uint_t level,
    ngx_uint_t line, const char *fmt, ...)
{
    u_char   errstr[NGX_MAX_CONF_ERRSTR], *p;
    va_list  args;

    va_start(args, fmt);
    p = ngx_vslprintf(errstr, errstr + NGX_MAX_CONF_ERRSTR, fmt, args);
    va_end(args);

    if (line) {
        ngx_conf_log_error(level, ctx->cf, 0, "tunnel_tokens \"%V\", "
                           "line %ui: %*s", ctx->file, line, p - errstr,
                           errstr);

    } else {
        ngx_conf_log_error(level, ctx->cf, 0, "tunnel_tokens \"%V\": %*s",
                           ctx->file, p - errstr, errstr);
    }
}


ngx_tunnel_token_t *
ngx_tunnel_token_find(ngx_array_t *tokens, u_char *p, size_t len)
{
    u_char               hash[NGX_TUNNEL_HASH_LEN];
    uintptr_t            found, mask;
    ngx_uint_t           i;
    ngx_tunnel_token_t  *t;

    if (tokens == NULL) {
        return NULL;
    }

    if (ngx_tunnel_tokens_hash(p, len, hash) != NGX_OK) {
        return NULL;
    }

    /*
     * Every entry is compared, and the match is picked with a mask rather
     * than a branch, so that the time taken says neither how much of a
     * hash matched nor which entry did.  Hashing first means a guess never
     * meets the stored bytes of a token, only of its hash.
     */

    found = 0;
    t = tokens->elts;

    for (i = 0; i < tokens->nelts; i++) {
        mask = (uintptr_t) 0
               - (uintptr_t) (CRYPTO_memcmp(hash, t[i].hash,
                                            NGX_TUNNEL_HASH_LEN)
                              == 0);
        found |= (uintptr_t) &t[i] & mask;
    }

    OPENSSL_cleanse(hash, NGX_TUNNEL_HASH_LEN);

    return (ngx_tunnel_token_t *) found;
}


u_char *
ngx_tunnel_escape(u_char *buf, const u_char *p, size_t len)
{
    u_char         c;
    static u_char  hex[] = "0123456789abcdef";

    while (len--) {
        c = *p++;

        if (c >= 0x20 && c < 0x7f && c != '"' && c != '\\') {
            *buf++ = c;
            continue;
        }

        *buf++ = '\\';
        *buf++ = 'x';
        *buf++ = hex[c >> 4];
        *buf++ = hex[c & 0xf];
    }

    return buf;
}


ngx_int_t
ngx_tunnel_token_allows_name(ngx_tunnel_token_t *t, ngx_str_t *name,
    ngx_str_t *domain)
{
    size_t                   n;
    ngx_uint_t               i;
    ngx_tunnel_name_rule_t  *rule;

    if (t->names == NULL) {

        /* one label, then "." and the domain */

        if (domain->len == 0 || name->len < domain->len + 2) {
            return NGX_DECLINED;
        }

        n = name->len - domain->len;

        if (name->data[n - 1] != '.'
            || ngx_strncmp(name->data + n, domain->data, domain->len) != 0
            || ngx_strlchr(name->data, name->data + n - 1, '.') != NULL)
        {
            return NGX_DECLINED;
        }

        return NGX_OK;
    }

    rule = t->names->elts;

    for (i = 0; i < t->names->nelts; i++) {

        switch (rule[i].type) {

        case NGX_TUNNEL_RULE_EXACT:
            if (name->len == rule[i].name.len
                && ngx_strncmp(name->data, rule[i].name.data, name->len) == 0)
            {
                return NGX_OK;
            }

            break;

        case NGX_TUNNEL_RULE_SUFFIX:
            /* ".example.com" and a label at least before it */
            if (name->len > rule[i].name.len
                && ngx_strncmp(name->data + name->len - rule[i].name.len,
                               rule[i].name.data, rule[i].name.len)
                   == 0)
            {
                return NGX_OK;
            }

            break;

#if (NGX_PCRE)
        case NGX_TUNNEL_RULE_REGEX:
            if (ngx_regex_exec(rule[i].regex, name, NULL, 0) >= 0) {
                return NGX_OK;
            }

            break;
#endif
        }
    }

    return NGX_DECLINED;
}


ngx_int_t
ngx_tunnel_token_allows_port(ngx_tunnel_token_t *t, in_port_t port)
{
    if (t->port_min == 0) {
        return NGX_OK;
    }

    return (port >= t->port_min && port <= t->port_max) ? NGX_OK
                                                         : NGX_DECLINED;
}
