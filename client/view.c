/*
 * Copyright (C) ngx_tunnel developers
 *
 * What a person sees.
 *
 * On a terminal (--log-format auto): a live view in the manner of ngrok's,
 * on the alternate screen, redrawn in place at most four times a second
 * (and once a second anyway, for the latency).  Errors show in it, and the
 * last one is printed again once the view is gone, so it is not lost.
 *
 * Otherwise one line per event on stdout, errors included, so that a log
 * file has everything in order:
 *
 *   text:  2026-11-25T10:00:00.123Z INFO  bound Forwarding http://x -> ...
 *   json:  {"time":"...","level":"info","event":"bound","tunnel":"web",...}
 *
 * Everything that came from the network (server messages, request paths)
 * is cleaned of control characters before it reaches a terminal, and
 * escaped (as valid UTF-8) in JSON.
 */

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/ioctl.h>

#include "client.h"


#define VIEW_INTERVAL    250        /* ms between two frames, at least */
#define VIEW_REFRESH     1000       /* ms: a frame anyway */
#define VIEW_EVENTS      8          /* event lines kept for the view */
#define VIEW_SHOW_EVENTS 5
#define VIEW_SHOW_REQS   10
#define VIEW_LABEL       30         /* the width of "Session Status  " */
#define VIEW_TIME_COLS   9          /* "10:00:00 " before an event */
#define VIEW_FRAME       65536
#define VIEW_MSG         1024

#define ESC_RED          "\033[31m"
#define ESC_GREEN        "\033[32m"
#define ESC_YELLOW       "\033[33m"
#define ESC_BOLD         "\033[1m"
#define ESC_DIM          "\033[2m"
#define ESC_RESET        "\033[0m"


typedef enum {
    VIEW_TEXT = 0,
    VIEW_JSON,
    VIEW_TERM
} view_mode_e;


typedef struct {
    time_t       when;
    log_level_e  level;
    char         text[256];
} view_line_t;


typedef struct {
    char        *buf;
    size_t       len;
    unsigned     width;
    unsigned     rows;
    unsigned     max;
} view_frame_t;


static struct {
    client_t     *cl;
    view_mode_e   mode;
    int           screen;           /* the alternate screen is ours */
    int           done;
    uint64_t      last;             /* ms, the last frame */
    time_t        started;

    view_line_t   events[VIEW_EVENTS];
    unsigned      nevents;          /* total; the last VIEW_EVENTS kept */
    view_line_t   error;            /* the last error, for after the view */
    int           has_error;
    loop_post_t   flush;            /* lines go out once per loop round */
} view;


static view_mode_e view_mode(client_t *cl);
static void view_flush_later(client_t *cl);
static void view_flush(void *data);
static void view_timer(void *data);
static void view_draw(client_t *cl);
static void view_text(client_t *cl, log_level_e level, const char *event,
    tunnel_t *t, const char *msg);
static void view_json(client_t *cl, log_level_e level, const char *event,
    tunnel_t *t, const char *msg, request_log_t *r);
static void view_remember(log_level_e level, const char *msg);
static const char *view_target(tunnel_t *t, char *buf, size_t size);
static void view_time(char *buf, size_t size);
static void view_clean(char *s);
static size_t view_json_str(char *out, size_t size, const char *s);
static const char *view_bytes(uint64_t n, char *buf, size_t size);
static unsigned view_event_rows(view_line_t *e, unsigned width);
static unsigned view_event_cols(unsigned width);
static void frame_add(view_frame_t *f, const char *s, size_t n);
static void frame_line(view_frame_t *f, const char *label, const char *color,
    const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));


static const char  *view_levels[] = { "ERROR", "INFO", "DEBUG" };
static const char  *view_levels_json[] = { "error", "info", "debug" };


void
view_init(client_t *cl)
{
    view.cl = cl;
    view.started = time(NULL);
    view.mode = view_mode(cl);

    cl->redraw.handler = view_timer;
    cl->redraw.data = cl;

    if (view.mode != VIEW_TERM) {
        return;
    }

    /* the alternate screen, as less and ngrok do: the shell comes back */
    fputs("\033[?1049h\033[?25l\033[H\033[2J", stdout);
    fflush(stdout);
    view.screen = 1;

    view_draw(cl);
}


static view_mode_e
view_mode(client_t *cl)
{
    const char  *term;

    if (cl->opt->log_format == FORMAT_JSON) {
        return VIEW_JSON;
    }

    if (cl->opt->log_format == FORMAT_TEXT) {
        return VIEW_TEXT;
    }

    term = getenv("TERM");

    if (isatty(STDOUT_FILENO) && term && *term && strcmp(term, "dumb") != 0)
    {
        return VIEW_TERM;
    }

    return VIEW_TEXT;
}


void
view_event(client_t *cl, log_level_e level, const char *event, tunnel_t *t,
    const char *fmt, ...)
{
    va_list  args;
    char     msg[VIEW_MSG], target[320];

    if (level > cl->opt->log_level) {
        return;
    }

    if (strcmp(event, "bound") == 0 && t && t->url[0]) {
        /* the line a person looks for first: where the service is now */
        snprintf(msg, sizeof(msg), "Forwarding %.600s -> %.300s", t->url,
                 view_target(t, target, sizeof(target)));

    } else {
        va_start(args, fmt);
        vsnprintf(msg, sizeof(msg), fmt, args);
        va_end(args);
    }

    if (view.cl == NULL) {
        /* before view_init(), e.g. while starting: a plain line */
        view.mode = (cl->opt->log_format == FORMAT_JSON) ? VIEW_JSON
                                                         : VIEW_TEXT;
    }

    switch (view.mode) {

    case VIEW_JSON:
        view_json(cl, level, event, t, msg, NULL);
        break;

    case VIEW_TERM:
        if (view.screen) {
            view_clean(msg);
            view_remember(level, msg);
            view_redraw(cl);
            break;
        }

        /* fall through */

    default:
        view_text(cl, level, event, t, msg);
    }
}


void
view_request(client_t *cl, tunnel_t *t, request_log_t *r)
{
    char  msg[VIEW_MSG];

    if (view.mode == VIEW_TERM && view.screen) {
        view_redraw(cl);
        return;
    }

    if (LOG_INFO > cl->opt->log_level) {
        return;
    }

    if (r->status) {
        snprintf(msg, sizeof(msg), "%s %s %d %llu ms", r->method, r->path,
                 r->status, (unsigned long long) r->duration);
    } else {
        snprintf(msg, sizeof(msg), "%s %s (no response)", r->method,
                 r->path);
    }

    if (view.mode == VIEW_JSON) {
        view_json(cl, LOG_INFO, "request", t, msg, r);
    } else {
        view_text(cl, LOG_INFO, "request", t, msg);
    }
}


void
view_redraw(client_t *cl)
{
    uint64_t  now, wait;

    if (view.mode != VIEW_TERM || !view.screen) {
        return;
    }

    now = loop_now();

    if (now - view.last >= VIEW_INTERVAL || cl->loop == NULL) {
        view_draw(cl);
        return;
    }

    /* too soon: one frame later gathers whatever else happens till then */
    wait = VIEW_INTERVAL - (now - view.last);

    if (!cl->redraw.armed || cl->redraw.when > now + wait) {
        loop_timer(cl->loop, &cl->redraw, wait);
    }
}


static void
view_timer(void *data)
{
    client_t  *cl = data;

    if (view.mode == VIEW_TERM && view.screen) {
        view_draw(cl);
    }
}


void
view_done(client_t *cl)
{
    int        i;
    char       in[32], out[32], msg[256];
    uint64_t   total, bin, bout;
    long       up;

    if (view.done) {
        return;
    }

    view.done = 1;

    if (cl->loop) {
        loop_timer_cancel(cl->loop, &cl->redraw);
    }

    total = bin = bout = 0;

    for (i = 0; i < cl->opt->ntunnels; i++) {
        total += cl->opt->tunnels[i].conns_total;
        bin += cl->opt->tunnels[i].bytes_in;
        bout += cl->opt->tunnels[i].bytes_out;
    }

    up = (long) (time(NULL) - view.started);

    snprintf(msg, sizeof(msg), "stopped after %ld:%02ld:%02ld: %llu "
             "connection%s, %s in, %s out", up / 3600, up / 60 % 60,
             up % 60, (unsigned long long) total, total == 1 ? "" : "s",
             view_bytes(bin, in, sizeof(in)),
             view_bytes(bout, out, sizeof(out)));

    if (view.mode == VIEW_TERM && view.screen) {
        fputs("\033[?25h\033[?1049l", stdout);
        fflush(stdout);
        view.screen = 0;

        /* the view is gone: what made the client stop must stay seen */
        if (view.has_error && cl->exit_code > 0) {
            fprintf(stderr, "tunnel: %s\n", view.error.text);
        }

        printf("tunnel: %s\n", msg);
        fflush(stdout);
        return;
    }

    view_event(cl, LOG_INFO, "stopped", NULL, "%s", msg);

    if (cl->loop) {
        loop_unpost(cl->loop, &view.flush);
    }

    fflush(stdout);
}


/*
 * A busy http tunnel logs a line per request: one write for all the lines
 * of a loop round, not one each (the client's system calls would double).
 */
static void
view_flush_later(client_t *cl)
{
    if (cl == NULL || cl->loop == NULL || view.done) {
        fflush(stdout);
        return;
    }

    view.flush.handler = view_flush;
    view.flush.data = NULL;
    loop_post(cl->loop, &view.flush);
}


static void
view_flush(void *data)
{
    (void) data;
    fflush(stdout);
}


/* the terminal view */

static void
view_draw(client_t *cl)
{
    int              i, k, n, rows_left, nreq, nev, http, pw, ev_rows,
                     budget;
    unsigned         j, first, len, cols;
    tunnel_t        *t;
    options_t       *o;
    request_log_t   *r, *reqs[MAX_TUNNELS * MAX_REQUESTS];
    tunnel_t        *req_t[MAX_TUNNELS * MAX_REQUESTS];
    view_frame_t     f;
    struct winsize   ws;
    struct tm        tm;
    uint64_t         open, total, bin, bout;
    const char      *color, *status;
    char             a[32], b[32], target[320], when[16];

    static char      buf[VIEW_FRAME];

    o = cl->opt;
    view.last = loop_now();

    f.buf = buf;
    f.len = 0;
    f.rows = 0;
    f.width = 80;
    f.max = 24;

    if (ioctl(STDOUT_FILENO, TIOCGWINSZ, &ws) == 0 && ws.ws_col > 0) {
        f.width = ws.ws_col;
        f.max = ws.ws_row;
    }

    /* the last row stays empty: a newline there would scroll the screen */
    f.max = f.max > 1 ? f.max - 1 : 1;

    frame_add(&f, "\033[H", 3);

    n = (int) f.width - (int) sizeof("tunnel(Ctrl+C to quit)") + 1;
    frame_line(&f, NULL, ESC_BOLD, "tunnel%*s%s", n > 1 ? n : 1, "",
               "(Ctrl+C to quit)");
    frame_line(&f, NULL, NULL, "%s", "");

    status = cl->status[0] ? cl->status : "starting";

    if (strcmp(status, "online") == 0) {
        color = ESC_GREEN;
    } else if (strstr(status, "connect") || strcmp(status, "starting") == 0)
    {
        color = ESC_YELLOW;
    } else {
        color = ESC_RED;
    }

    frame_line(&f, "Session Status", color, "%s", status);

    frame_line(&f, "Server", o->insecure && !o->plain ? ESC_YELLOW : NULL,
               "%s%s%s:%s%s", strchr(o->server_host, ':') ? "[" : "",
               o->server_host, strchr(o->server_host, ':') ? "]" : "",
               o->server_port,
               o->plain ? " (no TLS)"
               : o->insecure ? " (TLS, certificate not verified)" : "");

    if (strcmp(status, "online") == 0) {
        frame_line(&f, "Latency", NULL, "%llu ms",
                   (unsigned long long) cl->rtt);
    } else {
        frame_line(&f, "Latency", NULL, "-");
    }

    frame_line(&f, "Version", NULL, "%s", TUNNEL_CLIENT_VERSION);

    open = total = bin = bout = 0;
    http = 0;

    for (i = 0; i < o->ntunnels; i++) {
        t = &o->tunnels[i];

        open += t->conns_open;
        total += t->conns_total;
        bin += t->bytes_in;
        bout += t->bytes_out;
        http |= (t->kind == TUNNEL_KIND_HTTP);

        view_target(t, target, sizeof(target));

        if (t->bound) {
            frame_line(&f, "Forwarding", NULL, "%s -> %s%s%s%s", t->url,
                       target, o->ntunnels > 1 ? "  (" : "",
                       o->ntunnels > 1 ? t->label : "",
                       o->ntunnels > 1 ? ")" : "");

        } else {
            frame_line(&f, "Forwarding", t->failed ? ESC_RED : ESC_DIM,
                       "%s -> %s%s%s%s",
                       t->failed ? "(refused, see below)"
                       : t->url[0] ? "(rebinding)" : "(waiting for the edge)",
                       target, o->ntunnels > 1 ? "  (" : "",
                       o->ntunnels > 1 ? t->label : "",
                       o->ntunnels > 1 ? ")" : "");
        }
    }

    frame_line(&f, NULL, NULL, "%s", "");
    frame_line(&f, "Connections", NULL, "%-10s%-10s%-12s%s", "open", "total",
               "in", "out");
    frame_line(&f, "", NULL, "%-10llu%-10llu%-12s%s",
               (unsigned long long) open, (unsigned long long) total,
               view_bytes(bin, a, sizeof(a)), view_bytes(bout, b, sizeof(b)));

    /* what is left goes to the events first, then to the requests */

    rows_left = (int) f.max - (int) f.rows;

    /* the newest events that fit, each wrapped on up to three rows */
    ev_rows = 0;
    budget = rows_left - 2 < VIEW_SHOW_EVENTS + 3 ? rows_left - 2
                                                  : VIEW_SHOW_EVENTS + 3;

    for (nev = 0; nev < VIEW_SHOW_EVENTS && (unsigned) nev < view.nevents;
         nev++)
    {
        n = view_event_rows(&view.events[(view.nevents - nev - 1)
                                         % VIEW_EVENTS], f.width);

        if (ev_rows + n > budget) {
            break;
        }

        ev_rows += n;
    }

    rows_left -= nev ? ev_rows + 2 : 0;

    nreq = 0;

    if (http) {
        for (i = 0; i < o->ntunnels; i++) {
            t = &o->tunnels[i];

            if (t->kind != TUNNEL_KIND_HTTP) {
                continue;
            }

            first = t->nrequests > MAX_REQUESTS
                    ? t->nrequests - MAX_REQUESTS : 0;

            for (j = first; j < t->nrequests; j++) {
                r = &t->requests[j % MAX_REQUESTS];

                /* newest first: insertion by start time */
                for (k = nreq; k > 0 && reqs[k - 1]->start < r->start; k--) {
                    reqs[k] = reqs[k - 1];
                    req_t[k] = req_t[k - 1];
                }

                reqs[k] = r;
                req_t[k] = t;
                nreq++;
            }
        }

        /* the path column: what the width leaves, within reason */
        pw = (int) f.width - 32;
        pw = pw < 10 ? 10 : pw > 60 ? 60 : pw;

        /* a blank row, the title, its underline, then the requests */
        n = rows_left - 3;
        n = n < VIEW_SHOW_REQS ? n : VIEW_SHOW_REQS;
        nreq = nreq < n ? nreq : (n > 0 ? n : 0);

        if (n > 0) {
            frame_line(&f, NULL, NULL, "%s", "");
            frame_line(&f, NULL, ESC_BOLD, "HTTP Requests");
            frame_line(&f, NULL, NULL, "-------------");
        }

        for (k = 0; k < nreq; k++) {
            r = reqs[k];

            color = r->status >= 500 || r->status == 0 ? ESC_RED
                  : r->status >= 400 ? ESC_YELLOW : NULL;

            if (r->status) {
                snprintf(a, sizeof(a), "%d", r->status);
                snprintf(b, sizeof(b), "%llu ms",
                         (unsigned long long) r->duration);
            } else {
                snprintf(a, sizeof(a), "-");
                snprintf(b, sizeof(b), "...");
            }

            frame_line(&f, NULL, color, "%-7s %-*.*s %4s %9s%s%s",
                       r->method, pw, pw, r->path, a, b,
                       o->ntunnels > 1 ? "  " : "",
                       o->ntunnels > 1 ? req_t[k]->label : "");
        }
    }

    if (nev) {
        frame_line(&f, NULL, NULL, "%s", "");
        frame_line(&f, NULL, ESC_BOLD, "Events");

        for (k = nev; k > 0; k--) {
            view_line_t  *e;

            e = &view.events[(view.nevents - k) % VIEW_EVENTS];
            localtime_r(&e->when, &tm);
            strftime(when, sizeof(when), "%H:%M:%S", &tm);

            color = e->level == LOG_ERROR ? ESC_RED : NULL;
            len = strlen(e->text);
            cols = view_event_cols(f.width);

            frame_line(&f, NULL, color, "%s %.*s", when, (int) cols,
                       e->text);

            for (j = cols; j < len && j < 3 * cols; j += cols) {
                frame_line(&f, NULL, color, "%*s%.*s", VIEW_TIME_COLS, "",
                           (int) cols, e->text + j);
            }
        }
    }

    frame_add(&f, "\033[J", 3);

    (void) fwrite(f.buf, 1, f.len, stdout);
    fflush(stdout);

    if (cl->loop && !cl->quitting) {
        loop_timer(cl->loop, &cl->redraw, VIEW_REFRESH);
    }
}


static void
view_remember(log_level_e level, const char *msg)
{
    view_line_t  *e;

    e = &view.events[view.nevents++ % VIEW_EVENTS];
    e->when = time(NULL);
    e->level = level;
    snprintf(e->text, sizeof(e->text), "%.*s", (int) sizeof(e->text) - 1,
             msg);

    if (level == LOG_ERROR) {
        view.error = *e;
        view.has_error = 1;
    }
}


/* the text columns of an event row, after its time */
static unsigned
view_event_cols(unsigned width)
{
    return width > VIEW_TIME_COLS + 10 ? width - VIEW_TIME_COLS : 10;
}


static unsigned
view_event_rows(view_line_t *e, unsigned width)
{
    unsigned  cols, rows;

    cols = view_event_cols(width);
    rows = (strlen(e->text) + cols - 1) / cols;

    return rows < 1 ? 1 : rows > 3 ? 3 : rows;
}


static void
frame_add(view_frame_t *f, const char *s, size_t n)
{
    if (f->len + n < VIEW_FRAME) {
        memcpy(f->buf + f->len, s, n);
        f->len += n;
    }
}


/*
 * One row: an optional label in its column, then the value, cut to the
 * terminal's width (a wrapped row would push the whole view down).
 */
static void
frame_line(view_frame_t *f, const char *label, const char *color,
    const char *fmt, ...)
{
    va_list  args;
    size_t   used, n;
    char     line[VIEW_MSG];

    if (f->rows >= f->max) {
        return;
    }

    used = 0;

    if (label) {
        n = snprintf(line, sizeof(line), "%-*s", VIEW_LABEL, label);
        used = n < f->width ? n : f->width;
        frame_add(f, line, used);
    }

    va_start(args, fmt);
    vsnprintf(line, sizeof(line), fmt, args);
    va_end(args);

    view_clean(line);

    n = strlen(line);

    if (used + n > f->width) {
        n = f->width - used;
    }

    if (color && n) {
        frame_add(f, color, strlen(color));
    }

    frame_add(f, line, n);

    if (color && n) {
        frame_add(f, ESC_RESET, sizeof(ESC_RESET) - 1);
    }

    frame_add(f, "\033[K\n", 4);
    f->rows++;
}


/* lines */

static void
view_text(client_t *cl, log_level_e level, const char *event, tunnel_t *t,
    const char *msg)
{
    char  when[40], line[VIEW_MSG + 200];
    int   label;

    view_time(when, sizeof(when));

    label = (t && cl->opt->ntunnels > 1);

    snprintf(line, sizeof(line), "%s %-5s %s%s%s%s %s", when,
             view_levels[level], event, label ? " [" : "",
             label ? t->label : "", label ? "]" : "", msg);

    view_clean(line);

    fputs(line, stdout);
    fputc('\n', stdout);
    view_flush_later(cl);
}


static void
view_json(client_t *cl, log_level_e level, const char *event, tunnel_t *t,
    const char *msg, request_log_t *r)
{
    size_t  n, cap;
    char    when[40], target[320], line[4 * VIEW_MSG + 2048];

    view_time(when, sizeof(when));

    cap = sizeof(line);
    n = snprintf(line, cap, "{\"time\":\"%s\",\"level\":\"%s\",\"event\":",
                 when, view_levels_json[level]);
    n += view_json_str(line + n, cap - n, event);

    if (t) {
        n += snprintf(line + n, cap - n, ",\"tunnel\":");
        n += view_json_str(line + n, cap - n, t->label);
        n += snprintf(line + n, cap - n, ",\"kind\":\"%s\"",
                      tunnel_kind_name(t->kind));

        if (t->url[0]) {
            n += snprintf(line + n, cap - n, ",\"url\":");
            n += view_json_str(line + n, cap - n, t->url);
        }

        n += snprintf(line + n, cap - n, ",\"target\":");
        n += view_json_str(line + n, cap - n,
                           view_target(t, target, sizeof(target)));
    }

    if (r) {
        n += snprintf(line + n, cap - n, ",\"method\":");
        n += view_json_str(line + n, cap - n, r->method);
        n += snprintf(line + n, cap - n, ",\"path\":");
        n += view_json_str(line + n, cap - n, r->path);
        n += snprintf(line + n, cap - n,
                      ",\"status\":%d,\"duration_ms\":%llu", r->status,
                      (unsigned long long) r->duration);
    }

    n += snprintf(line + n, cap - n, ",\"msg\":");
    n += view_json_str(line + n, cap - n, msg);

    if (n + 3 > cap) {
        return;         /* cannot happen with the sizes above */
    }

    memcpy(line + n, "}\n", 3);

    fputs(line, stdout);
    view_flush_later(cl);
}


/* the local service, as a person would type it in a browser or a client */
static const char *
view_target(tunnel_t *t, char *buf, size_t size)
{
    if (t->kind == TUNNEL_KIND_HTTP && strncmp(t->target.text, "unix:", 5))
    {
        snprintf(buf, size, "http://%s", t->target.text);
    } else {
        snprintf(buf, size, "%s", t->target.text);
    }

    return buf;
}


/* RFC 3339, UTC, milliseconds: sorts as text, parses everywhere */
static void
view_time(char *buf, size_t size)
{
    struct timespec  ts;
    struct tm        tm;
    size_t           n;

    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);

    n = strftime(buf, size, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(buf + n, size - n, ".%03ldZ", ts.tv_nsec / 1000000);
}


/* no control characters reach a terminal: a path could carry escapes */
static void
view_clean(char *s)
{
    for ( /* void */ ; *s; s++) {
        if ((unsigned char) *s < 0x20 || *s == 0x7f) {
            *s = '?';
        }
    }
}


/*
 * A JSON string, quotes included.  Invalid UTF-8 becomes U+FFFD, so a
 * line always parses, whatever bytes the network brought.  Returns the
 * length written (never more than size - 1).
 */
static size_t
view_json_str(char *out, size_t size, const char *s)
{
    size_t               n, k, need;
    const unsigned char  *p;
    unsigned             c, len, i;
    char                 esc[8];

    n = 0;

    if (size < 3) {
        return 0;
    }

    out[n++] = '"';
    p = (const unsigned char *) s;

    while (*p) {
        c = *p;
        len = 1;
        esc[0] = '\0';

        if (c == '"' || c == '\\') {
            snprintf(esc, sizeof(esc), "\\%c", c);

        } else if (c == '\n') {
            snprintf(esc, sizeof(esc), "\\n");

        } else if (c == '\t') {
            snprintf(esc, sizeof(esc), "\\t");

        } else if (c == '\r') {
            snprintf(esc, sizeof(esc), "\\r");

        } else if (c < 0x20 || c == 0x7f) {
            snprintf(esc, sizeof(esc), "\\u%04x", c);

        } else if (c >= 0x80) {
            /* the length of a valid sequence, or 0 */
            len = (c >= 0xc2 && c <= 0xdf) ? 2
                : (c >= 0xe0 && c <= 0xef) ? 3
                : (c >= 0xf0 && c <= 0xf4) ? 4 : 0;

            for (i = 1; i < len; i++) {
                if ((p[i] & 0xc0) != 0x80) {
                    len = 0;
                    break;
                }
            }

            /* overlong forms, surrogates, past U+10FFFF */
            if ((len == 3 && c == 0xe0 && p[1] < 0xa0)
                || (len == 3 && c == 0xed && p[1] >= 0xa0)
                || (len == 4 && c == 0xf0 && p[1] < 0x90)
                || (len == 4 && c == 0xf4 && p[1] >= 0x90))
            {
                len = 0;
            }

            if (len == 0) {
                snprintf(esc, sizeof(esc), "\\ufffd");
                len = 1;
            }
        }

        need = esc[0] ? strlen(esc) : len;

        if (n + need + 2 > size) {
            break;
        }

        if (esc[0]) {
            memcpy(out + n, esc, need);

        } else {
            for (k = 0; k < len; k++) {
                out[n + k] = (char) p[k];
            }
        }

        n += need;
        p += len;
    }

    out[n++] = '"';
    out[n] = '\0';

    return n;
}


static const char *
view_bytes(uint64_t n, char *buf, size_t size)
{
    if (n < 1024) {
        snprintf(buf, size, "%llu B", (unsigned long long) n);

    } else if (n < 1024 * 1024) {
        snprintf(buf, size, "%.1f KiB", n / 1024.0);

    } else if (n < 1024ULL * 1024 * 1024) {
        snprintf(buf, size, "%.1f MiB", n / (1024.0 * 1024));

    } else {
        snprintf(buf, size, "%.2f GiB", n / (1024.0 * 1024 * 1024));
    }

    return buf;
}
