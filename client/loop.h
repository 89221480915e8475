/*
 * Copyright (C) ngx_tunnel developers
 *
 * The client's event loop: descriptors, timers and posted work.
 *
 * Descriptors are watched edge-triggered for both directions from the
 * start, as nginx does: a handler reads or writes until EAGAIN, and
 * remembers readiness in its own flags when it stops early (back-pressure).
 * A read shorter than asked for drained the socket, as nginx assumes with
 * EPOLLRDHUP: new bytes bring a new event, and LOOP_RDHUP says when a FIN
 * is waiting behind the bytes read.
 * The epoll specifics stay in loop.c, so that kqueue can be added there.
 */

#ifndef _LOOP_H_INCLUDED_
#define _LOOP_H_INCLUDED_


#include <stdint.h>


#define LOOP_READ      0x1
#define LOOP_WRITE     0x2
#define LOOP_HUP       0x4
#define LOOP_RDHUP     0x8     /* the peer sent FIN: read on to the end */


typedef struct loop_s   loop_t;

typedef void (*loop_io_pt)(void *data, unsigned events);
typedef void (*loop_fn_pt)(void *data);


typedef struct {
    int            fd;
    loop_io_pt     handler;
    void          *data;
} loop_io_t;


typedef struct loop_timer_s  loop_timer_t;

struct loop_timer_s {
    uint64_t       when;           /* ms, loop_now() clock */
    loop_fn_pt     handler;
    void          *data;
    loop_timer_t  *next;
    int            armed;
};


/* work to run once after this round of events (coalesced flushes) */
typedef struct loop_post_s  loop_post_t;

struct loop_post_s {
    loop_fn_pt     handler;
    void          *data;
    loop_post_t   *next;
    int            posted;
};


loop_t *loop_new(void);
void loop_free(loop_t *l);

int loop_add(loop_t *l, loop_io_t *io);
void loop_del(loop_t *l, loop_io_t *io);
void loop_close(loop_t *l, loop_io_t *io);   /* loop_del() + close(), in
                                                one system call */

void loop_timer(loop_t *l, loop_timer_t *t, uint64_t after_ms);
void loop_timer_cancel(loop_t *l, loop_timer_t *t);

void loop_post(loop_t *l, loop_post_t *p);
void loop_unpost(loop_t *l, loop_post_t *p);

/* runs until loop_stop(); returns -1 on a loop failure */
int loop_run(loop_t *l);
void loop_stop(loop_t *l);

uint64_t loop_now(void);


#endif /* _LOOP_H_INCLUDED_ */
