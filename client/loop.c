/*
 * Copyright (C) ngx_tunnel developers
 *
 * The event loop on epoll.  Timers are few (a ping per session, a
 * reconnect, the screen): a sorted list is enough.
 */

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <time.h>
#include <unistd.h>

#include "loop.h"


#define LOOP_EVENTS  256


struct loop_s {
    int                  ep;
    int                  stop;
    struct epoll_event  *batch;        /* events being handled */
    int                  nbatch;
    loop_timer_t        *timers;
    loop_post_t         *posted;
    loop_post_t         *round;        /* posted work being run now */
    loop_post_t        **posted_last;
};


uint64_t
loop_now(void)
{
    struct timespec  ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);

    return (uint64_t) ts.tv_sec * 1000 + (uint64_t) ts.tv_nsec / 1000000;
}


loop_t *
loop_new(void)
{
    loop_t  *l;

    l = calloc(1, sizeof(loop_t));
    if (l == NULL) {
        return NULL;
    }

    l->ep = epoll_create1(EPOLL_CLOEXEC);
    if (l->ep == -1) {
        free(l);
        return NULL;
    }

    l->posted_last = &l->posted;

    return l;
}


void
loop_free(loop_t *l)
{
    close(l->ep);
    free(l);
}


int
loop_add(loop_t *l, loop_io_t *io)
{
    struct epoll_event  ev;

    ev.events = EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET;
    ev.data.ptr = io;

    return epoll_ctl(l->ep, EPOLL_CTL_ADD, io->fd, &ev);
}


static void
loop_forget(loop_t *l, loop_io_t *io)
{
    int  i;

    /* a handler may free another io whose event is still to come */
    for (i = 0; i < l->nbatch; i++) {
        if (l->batch[i].data.ptr == io) {
            l->batch[i].data.ptr = NULL;
        }
    }
}


void
loop_del(loop_t *l, loop_io_t *io)
{
    (void) epoll_ctl(l->ep, EPOLL_CTL_DEL, io->fd, NULL);
    loop_forget(l, io);
}


/* closing the descriptor, never shared, takes it out of epoll */
void
loop_close(loop_t *l, loop_io_t *io)
{
    loop_forget(l, io);
    (void) close(io->fd);
    io->fd = -1;
}


void
loop_timer(loop_t *l, loop_timer_t *t, uint64_t after_ms)
{
    loop_timer_t  **pp;

    loop_timer_cancel(l, t);

    t->when = loop_now() + after_ms;
    t->armed = 1;

    for (pp = &l->timers; *pp && (*pp)->when <= t->when; pp = &(*pp)->next) {
        /* void */
    }

    t->next = *pp;
    *pp = t;
}


void
loop_timer_cancel(loop_t *l, loop_timer_t *t)
{
    loop_timer_t  **pp;

    if (!t->armed) {
        return;
    }

    for (pp = &l->timers; *pp; pp = &(*pp)->next) {
        if (*pp == t) {
            *pp = t->next;
            break;
        }
    }

    t->armed = 0;
}


void
loop_post(loop_t *l, loop_post_t *p)
{
    if (p->posted) {
        return;
    }

    p->posted = 1;
    p->next = NULL;
    *l->posted_last = p;
    l->posted_last = &p->next;
}


void
loop_unpost(loop_t *l, loop_post_t *p)
{
    loop_post_t  **pp;

    if (!p->posted) {
        return;
    }

    for (pp = &l->posted; *pp; pp = &(*pp)->next) {
        if (*pp == p) {
            *pp = p->next;

            if (l->posted_last == &p->next) {
                l->posted_last = pp;
            }

            p->posted = 0;
            return;
        }
    }

    for (pp = &l->round; *pp; pp = &(*pp)->next) {
        if (*pp == p) {
            *pp = p->next;
            break;
        }
    }

    p->posted = 0;
}


void
loop_stop(loop_t *l)
{
    l->stop = 1;
}


int
loop_run(loop_t *l)
{
    int                  i, n, timeout;
    uint64_t             now;
    unsigned             events;
    loop_io_t           *io;
    loop_post_t         *p;
    loop_timer_t        *t;
    struct epoll_event   ev[LOOP_EVENTS];

    while (!l->stop) {

        timeout = -1;

        if (l->posted) {
            timeout = 0;

        } else if (l->timers) {
            now = loop_now();
            timeout = l->timers->when > now ? (int) (l->timers->when - now)
                                            : 0;
        }

        n = epoll_wait(l->ep, ev, LOOP_EVENTS, timeout);

        if (n == -1) {
            if (errno == EINTR) {
                continue;
            }

            return -1;
        }

        l->batch = ev;
        l->nbatch = n;

        for (i = 0; i < n; i++) {
            io = ev[i].data.ptr;
            if (io == NULL) {
                continue;
            }

            events = 0;

            if (ev[i].events & (EPOLLIN | EPOLLRDHUP)) {
                events |= LOOP_READ;
            }

            if (ev[i].events & EPOLLRDHUP) {
                events |= LOOP_RDHUP;
            }

            if (ev[i].events & EPOLLOUT) {
                events |= LOOP_WRITE;
            }

            if (ev[i].events & (EPOLLERR | EPOLLHUP)) {
                events |= LOOP_HUP | LOOP_RDHUP | LOOP_READ | LOOP_WRITE;
            }

            io->handler(io->data, events);
        }

        l->nbatch = 0;

        now = loop_now();

        while (l->timers && l->timers->when <= now) {
            t = l->timers;
            l->timers = t->next;
            t->armed = 0;
            t->handler(t->data);
        }

        /*
         * Work posted by handlers.  What it posts in turn waits for the
         * next round, after the descriptors had their say: a reader that
         * posts itself to come back cannot starve everything else.
         */
        l->round = l->posted;
        l->posted = NULL;
        l->posted_last = &l->posted;

        while (l->round) {
            p = l->round;
            l->round = p->next;

            p->posted = 0;
            p->handler(p->data);
        }
    }

    return 0;
}
