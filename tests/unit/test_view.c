/*
 * Copyright (C) ngx_tunnel developers
 *
 * Unit tests for the client's event lines (view.c, not on a terminal):
 * the text format, JSON that always parses (escapes, invalid UTF-8),
 * level filtering, the "Forwarding URL -> target" line, request lines,
 * and no control character reaching the output in text.
 *
 * view.c is compiled in here with the event loop stubbed; stdout goes to
 * a temporary file that each check reads back.
 */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../../client/view.c"
#include "check.h"


/* the loop, as view.c uses it */

uint64_t
loop_now(void)
{
    return 1000;
}


void
loop_timer(loop_t *l, loop_timer_t *t, uint64_t after_ms)
{
    (void) l;
    t->armed = 1;
    t->when = loop_now() + after_ms;
}


void
loop_timer_cancel(loop_t *l, loop_timer_t *t)
{
    (void) l;
    t->armed = 0;
}


/* posted work runs at once: the lines are there when the test looks */
void
loop_post(loop_t *l, loop_post_t *p)
{
    (void) l;
    p->handler(p->data);
}


void
loop_unpost(loop_t *l, loop_post_t *p)
{
    (void) l;
    p->posted = 0;
}


static options_t  opt;
static client_t   cl;
static char       out[65536];
static FILE      *capture;


/* what view.c wrote since the last call */
static const char *
output(void)
{
    size_t  n;

    fflush(stdout);
    rewind(capture);
    n = fread(out, 1, sizeof(out) - 1, capture);
    out[n] = '\0';

    if (ftruncate(fileno(capture), 0) != 0) {
        perror("ftruncate");
    }

    rewind(capture);

    return out;
}


static void
setup(log_format_e format, log_level_e level)
{
    memset(&opt, 0, sizeof(opt));
    memset(&cl, 0, sizeof(cl));
    memset(&view, 0, sizeof(view));

    opt.log_format = format;
    opt.log_level = level;
    snprintf(opt.server_host, sizeof(opt.server_host), "edge.example.com");
    snprintf(opt.server_port, sizeof(opt.server_port), "4443");

    opt.ntunnels = 1;
    snprintf(opt.tunnels[0].label, sizeof(opt.tunnels[0].label), "web");
    opt.tunnels[0].kind = TUNNEL_KIND_HTTP;
    snprintf(opt.tunnels[0].target.text, sizeof(opt.tunnels[0].target.text),
             "localhost:3000");

    cl.opt = &opt;
    cl.exit_code = -1;

    view_init(&cl);
}


/* a minimal check that a line is one JSON object of strings and numbers */
static int
json_ok(const char *s)
{
    int  in_str;

    if (*s != '{') {
        return 0;
    }

    in_str = 0;

    for ( /* void */ ; *s && *s != '\n'; s++) {
        if ((unsigned char) *s < 0x20) {
            return 0;
        }

        if (in_str && *s == '\\') {
            s++;

            if (strchr("\"\\/bfnrtu", *s) == NULL) {
                return 0;
            }

            continue;
        }

        if (*s == '"') {
            in_str = !in_str;
        }
    }

    return !in_str && s[-1] == '}' && *s == '\n' && s[1] == '\0';
}


static void
test_text(void)
{
    const char  *o;
    tunnel_t    *t;

    setup(FORMAT_TEXT, LOG_INFO);
    t = &opt.tunnels[0];

    view_event(&cl, LOG_INFO, "connected", NULL, "connected to %s",
               "edge.example.com:4443");
    o = output();
    CHECK(strlen(o) == 24 + 1 + 5 + 1 + 9 + 1 + 34 + 1,
          "length %zu: %s", strlen(o), o);
    CHECK(o[4] == '-' && o[10] == 'T' && o[19] == '.' && o[23] == 'Z',
          "time: %s", o);
    CHECK(strstr(o, "Z INFO  connected connected to edge.example.com:4443\n")
          != NULL, "line: %s", o);

    /* below the level: nothing */
    view_event(&cl, LOG_DEBUG, "stream-open", t, "stream 2");
    CHECK(output()[0] == '\0', "a debug line at info: %s", out);

    view_event(&cl, LOG_ERROR, "error", NULL, "it failed");
    CHECK(strstr(output(), "Z ERROR error it failed\n") != NULL, "%s", out);

    /* "bound": the URL and the local service, whatever the message */
    snprintf(t->url, sizeof(t->url), "http://myapp.tun.example.com");
    t->bound = 1;
    view_event(&cl, LOG_INFO, "bound", t, "%s -> %s", t->url, t->label);
    CHECK(strstr(output(), " INFO  bound Forwarding "
                 "http://myapp.tun.example.com -> http://localhost:3000\n")
          != NULL, "%s", out);

    /* control characters from the network never reach a terminal */
    view_event(&cl, LOG_INFO, "notice", NULL, "server: %s",
               "a\033[2Jb\nc\rd");
    o = output();
    CHECK(strstr(o, "server: a?[2Jb?c?d\n") != NULL, "%s", o);

    /* a label when there are several tunnels */
    opt.ntunnels = 2;
    view_event(&cl, LOG_INFO, "unbound", t, "gone");
    CHECK(strstr(output(), " INFO  unbound [web] gone\n") != NULL, "%s",
          out);
    opt.ntunnels = 1;

    /* requests */
    snprintf(t->requests[0].method, sizeof(t->requests[0].method), "GET");
    snprintf(t->requests[0].path, sizeof(t->requests[0].path), "/a?b=1");
    t->requests[0].status = 200;
    t->requests[0].duration = 12;
    t->nrequests = 1;
    view_request(&cl, t, &t->requests[0]);
    CHECK(strstr(output(), " INFO  request GET /a?b=1 200 12 ms\n") != NULL,
          "%s", out);

    opt.log_level = LOG_ERROR;
    view_request(&cl, t, &t->requests[0]);
    CHECK(output()[0] == '\0', "a request at error level: %s", out);
    opt.log_level = LOG_INFO;

    t->conns_total = 3;
    t->bytes_in = 2048;
    view_done(&cl);
    CHECK(strstr(output(), " INFO  stopped stopped after 0:00:0") != NULL
          && strstr(out, ": 3 connections, 2.0 KiB in, 0 B out\n") != NULL,
          "%s", out);

    /* once only */
    view_done(&cl);
    CHECK(output()[0] == '\0', "view_done twice: %s", out);
}


static void
test_json(void)
{
    const char  *o;
    tunnel_t    *t;
    char         bad[64];

    setup(FORMAT_JSON, LOG_DEBUG);
    t = &opt.tunnels[0];

    view_event(&cl, LOG_INFO, "connected", NULL, "connected");
    o = output();
    CHECK(json_ok(o), "not JSON: %s", o);
    CHECK(strncmp(o, "{\"time\":\"", 9) == 0, "%s", o);
    CHECK(strstr(o, "\",\"level\":\"info\",\"event\":\"connected\","
                 "\"msg\":\"connected\"}\n") != NULL, "%s", o);

    snprintf(t->url, sizeof(t->url), "http://myapp.tun.example.com");
    view_event(&cl, LOG_INFO, "bound", t, "x");
    o = output();
    CHECK(json_ok(o), "not JSON: %s", o);
    CHECK(strstr(o, "\"tunnel\":\"web\",\"kind\":\"http\",\"url\":"
                 "\"http://myapp.tun.example.com\",\"target\":"
                 "\"http://localhost:3000\",\"msg\":\"Forwarding "
                 "http://myapp.tun.example.com -> http://localhost:3000\"")
          != NULL, "%s", o);

    /* escapes */
    view_event(&cl, LOG_ERROR, "error", NULL, "%s",
               "quote \" backslash \\ newline \n tab \t esc \033 del \177");
    o = output();
    CHECK(json_ok(o), "not JSON: %s", o);
    CHECK(strstr(o, "\"level\":\"error\"") != NULL, "%s", o);
    CHECK(strstr(o, "quote \\\" backslash \\\\ newline \\n tab \\t esc "
                 "\\u001b del \\u007f\"") != NULL, "%s", o);

    /* UTF-8 passes, anything else becomes U+FFFD */
    snprintf(bad, sizeof(bad), "ok \xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80 "
             "bad \xff \xc3 \xe0\x80\x80 \xed\xa0\x80 end");
    view_event(&cl, LOG_DEBUG, "x", NULL, "%s", bad);
    o = output();
    CHECK(json_ok(o), "not JSON: %s", o);
    CHECK(strstr(o, "ok \xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80 bad \\ufffd "
                 "\\ufffd \\ufffd\\ufffd\\ufffd \\ufffd\\ufffd\\ufffd end")
          != NULL, "%s", o);

    /* requests carry their fields */
    snprintf(t->requests[0].method, sizeof(t->requests[0].method), "POST");
    snprintf(t->requests[0].path, sizeof(t->requests[0].path), "/\"x\"");
    t->requests[0].status = 502;
    t->requests[0].duration = 3;
    view_request(&cl, t, &t->requests[0]);
    o = output();
    CHECK(json_ok(o), "not JSON: %s", o);
    CHECK(strstr(o, "\"event\":\"request\"") != NULL
          && strstr(o, "\"method\":\"POST\",\"path\":\"/\\\"x\\\"\","
                    "\"status\":502,\"duration_ms\":3,") != NULL, "%s", o);

    /* the longest message still makes one whole line */
    memset(bad, 'a', sizeof(bad));
    view_event(&cl, LOG_INFO, "x", t, "%.*s%2000s", 10, bad, "\"");
    o = output();
    CHECK(json_ok(o), "not JSON: %.200s", o);
}


static void
test_json_str(void)
{
    char    buf[16];
    size_t  n;

    /* cut at a character, never inside an escape, always closed */
    n = view_json_str(buf, sizeof(buf), "abc\"def\"ghijklmnop");
    CHECK(n == strlen(buf) && n < sizeof(buf) && buf[0] == '"'
          && buf[n - 1] == '"', "%s", buf);
    CHECK(strcmp(buf, "\"abc\\\"def\\\"ghi\"") == 0, "%s", buf);

    n = view_json_str(buf, sizeof(buf), "\n\n\n\n\n\n\n");
    CHECK(strcmp(buf, "\"\\n\\n\\n\\n\\n\\n\"") == 0, "%s", buf);

    n = view_json_str(buf, sizeof(buf), "");
    CHECK(n == 2 && strcmp(buf, "\"\"") == 0, "%s", buf);
}


int
main(void)
{
    int  saved;

    fflush(stdout);
    saved = dup(STDOUT_FILENO);
    capture = tmpfile();

    if (saved == -1 || capture == NULL
        || dup2(fileno(capture), STDOUT_FILENO) == -1)
    {
        perror("capture");
        return 1;
    }

    test_text();
    test_json();
    test_json_str();

    /* back to the real stdout for the verdict */
    fflush(stdout);
    dup2(saved, STDOUT_FILENO);

    return check_done("test_view");
}
