/*
 * Copyright (C) ngx_tunnel developers
 *
 * The tunnel command: options, then one event loop until the tunnels end.
 */

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <openssl/rand.h>

#include "client.h"
#include "options.h"


/* signals reach the loop through a pipe: no work in a signal handler */
static int  signal_pipe[2] = { -1, -1 };


static void on_signal(int signo);
static void signal_io(void *data, unsigned events);
static int signals_init(loop_t *loop, loop_io_t *io, client_t *cl);


int
main(int argc, char **argv)
{
    int            rc;
    unsigned int   seed;
    client_t       cl;
    loop_io_t      sig;
    options_t     *o;
    char           err[512];

    o = calloc(1, sizeof(options_t));
    if (o == NULL) {
        fprintf(stderr, "tunnel: out of memory\n");
        return 1;
    }

    rc = options_load(o, argc, argv);
    if (rc >= 0) {
        free(o);
        return rc;
    }

    memset(&cl, 0, sizeof(client_t));
    cl.opt = o;
    cl.exit_code = -1;

    if (RAND_bytes((unsigned char *) &seed, sizeof(seed)) != 1) {
        seed = (unsigned int) time(NULL) ^ (unsigned int) getpid();
    }

    srandom(seed);

    if (!o->plain) {
        cl.tls = conn_tls_context(o->cafile[0] ? o->cafile : NULL,
                                  o->insecure, err, sizeof(err));
        if (cl.tls == NULL) {
            fprintf(stderr, "tunnel: %s\n", err);
            free(o);
            return 1;
        }
    }

    cl.loop = loop_new();
    if (cl.loop == NULL || signals_init(cl.loop, &sig, &cl) != 0) {
        fprintf(stderr, "tunnel: cannot set up the event loop: %s\n",
                strerror(errno));
        return 1;
    }

    view_init(&cl);
    client_connect(&cl);

    if (loop_run(cl.loop) != 0) {
        view_event(&cl, LOG_ERROR, "error", NULL, "the event loop failed: %s",
                   strerror(errno));
        cl.exit_code = 1;
    }

    view_done(&cl);

    if (cl.tls) {
        SSL_CTX_free(cl.tls);
    }

    loop_free(cl.loop);
    free(o);

    return cl.exit_code < 0 ? 0 : cl.exit_code;
}


static int
signals_init(loop_t *loop, loop_io_t *io, client_t *cl)
{
    struct sigaction  sa;

    if (pipe2(signal_pipe, O_NONBLOCK | O_CLOEXEC) != 0) {
        return -1;
    }

    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = SIG_IGN;
    sigaction(SIGPIPE, &sa, NULL);

    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = SA_RESTART;
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);

    io->fd = signal_pipe[0];
    io->handler = signal_io;
    io->data = cl;

    return loop_add(loop, io);
}


static void
on_signal(int signo)
{
    int            saved;
    unsigned char  c;

    saved = errno;
    c = (unsigned char) signo;
    (void) !write(signal_pipe[1], &c, 1);
    errno = saved;
}


/*
 * The first SIGINT or SIGTERM closes the sessions gently (go-away, open
 * connections finish within a short grace); a second one ends at once.
 */
static void
signal_io(void *data, unsigned events)
{
    unsigned char  c;
    client_t      *cl = data;

    (void) events;

    while (read(signal_pipe[0], &c, 1) == 1) {

        if (cl->quitting) {
            view_event(cl, LOG_INFO, "quit", NULL,
                       "second signal: leaving now");
            view_done(cl);
            _exit(cl->exit_code > 0 ? cl->exit_code : 1);
        }

        view_event(cl, LOG_INFO, "quit", NULL,
                   "%s: closing the tunnels (again to leave at once)",
                   c == SIGINT ? "interrupted" : "terminated");
        client_quit(cl, 0);
    }
}
