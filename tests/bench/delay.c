/*
 * Copyright (C) ngx_tunnel developers
 *
 * delay: a TCP relay that adds latency, for the benchmark's "50 ms RTT"
 * workload (this kernel has no netem).
 *
 *     delay LISTEN_PORT TARGET_PORT [-d MS] [-b BYTES] [-a ADDR]
 *
 * Accepts on ADDR:LISTEN_PORT (127.0.0.1), connects each connection to
 * ADDR:TARGET_PORT and copies both ways; every byte leaves MS (25)
 * milliseconds after it arrived, in each direction, so a request and its
 * answer see a round trip of 2 x MS.
 *
 * Bounded buffering.  A relay ACKs what it reads at once, so the TCP
 * endpoints would not see the delay in their own flow control at all.  To
 * give a connection through the relay the limit it would have over a real
 * path, each direction holds at most BYTES "in flight", and a byte counts
 * from when it is read until one round trip (2 x MS) later, as in a TCP
 * window: one connection gets at most BYTES / RTT.  The default BYTES is
 * the kernel's largest TCP receive buffer (net.ipv4.tcp_rmem, third value),
 * the most a direct connection could use.  A tunnel's own window (yamux's
 * per-stream window, whose updates travel back through the relay) then
 * shows up as the limit if it is smaller.
 *
 * Two threads per connection, one per direction; every wait is a poll()
 * with a timeout.  Loopback use only; exits on SIGTERM.
 */

#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <arpa/inet.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>


#define CHUNK_MAX  (256 * 1024)


typedef struct chunk_s  chunk_t;

struct chunk_s {
    chunk_t   *next;
    uint64_t   t;           /* us, when it was read */
    size_t     len;         /* 0: end of stream */
    size_t     off;         /* sent so far */
    uint8_t    data[];
};


typedef struct pair_s  pair_t;

typedef struct {
    int        src, dst;
    pair_t    *pair;
} dir_t;

struct pair_s {
    dir_t            dir[2];
    int              done;      /* directions finished: the second closes */
    pthread_mutex_t  lock;
};


static uint64_t   delay_us = 25000;
static size_t     bound;
static struct sockaddr_in  target;


static uint64_t
now_us(void)
{
    struct timespec  ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t) ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}


static void *
pump(void *arg)
{
    int            n, timeout, eof, failed, fin_sent, last;
    dir_t         *d = arg;
    size_t         inflight, want;
    ssize_t        r;
    uint64_t       now, due;
    chunk_t       *head, *tail, *wr, *c;
    struct pollfd  pfd[2];

    head = tail = wr = NULL;
    inflight = 0;
    eof = failed = fin_sent = 0;

    for ( ;; ) {
        now = now_us();

        /* bytes sent one round trip ago no longer count */
        while (head && head != wr && head->t + 2 * delay_us <= now) {
            c = head;
            head = c->next;
            inflight -= c->len;
            free(c);
        }

        if (head == NULL) {
            tail = NULL;
        }

        /* send what is due */
        while (wr && wr->t + delay_us <= now && !failed) {
            if (wr->len == 0) {
                shutdown(d->dst, SHUT_WR);
                fin_sent = 1;
                wr = wr->next;
                continue;
            }

            r = send(d->dst, wr->data + wr->off, wr->len - wr->off,
                     MSG_DONTWAIT | MSG_NOSIGNAL);
            if (r < 0) {
                if (errno == EAGAIN || errno == EINTR) {
                    break;
                }

                failed = 1;
                break;
            }

            wr->off += r;
            if (wr->off < wr->len) {
                break;
            }

            wr = wr->next;
        }

        if (failed || (fin_sent && wr == NULL)) {
            break;
        }

        n = 0;
        timeout = -1;

        /* a negative fd is not watched: no POLLHUP spinning either */
        pfd[0].fd = (!eof && inflight < bound) ? d->src : -1;
        pfd[0].events = POLLIN;
        pfd[0].revents = 0;
        pfd[1].fd = -1;
        pfd[1].events = POLLOUT;
        pfd[1].revents = 0;

        if (wr) {
            due = wr->t + delay_us;
            if (due <= now) {
                pfd[1].fd = d->dst;
            } else {
                timeout = (int) ((due - now + 999) / 1000);
            }
        }

        if (head && head != wr) {
            due = head->t + 2 * delay_us;
            n = due > now ? (int) ((due - now + 999) / 1000) : 0;
            if (timeout < 0 || n < timeout) {
                timeout = n;
            }
        }

        if (timeout < 0 || timeout > 1000) {
            timeout = 1000;         /* bounded: look again each second */
        }

        if (poll(pfd, 2, timeout) < 0 && errno != EINTR) {
            break;
        }

        if (pfd[0].revents & (POLLIN | POLLHUP | POLLERR)) {
            want = bound - inflight;
            if (want > CHUNK_MAX) {
                want = CHUNK_MAX;
            }

            c = malloc(sizeof(chunk_t) + want);
            if (c == NULL) {
                break;
            }

            r = recv(d->src, c->data, want, MSG_DONTWAIT);
            if (r < 0 && (errno == EAGAIN || errno == EINTR)) {
                free(c);
                continue;
            }

            if (r <= 0) {
                r = 0;
                eof = 1;            /* an error ends it as a FIN would */
            }

            c->next = NULL;
            c->t = now_us();
            c->len = r;
            c->off = 0;
            inflight += r;

            if (tail) {
                tail->next = c;
            } else {
                head = c;
            }

            tail = c;
            if (wr == NULL) {
                wr = c;
            }
        }

        if (pfd[1].revents & (POLLERR | POLLHUP)) {
            failed = 1;
        }
    }

    while (head) {
        c = head;
        head = c->next;
        free(c);
    }

    if (failed) {
        shutdown(d->src, SHUT_RDWR);
        shutdown(d->dst, SHUT_RDWR);
    }

    pthread_mutex_lock(&d->pair->lock);
    last = ++d->pair->done == 2;
    pthread_mutex_unlock(&d->pair->lock);

    if (last) {
        close(d->src);
        close(d->dst);
        pthread_mutex_destroy(&d->pair->lock);
        free(d->pair);
    }

    return NULL;
}


static void
relay(int a)
{
    int              b, one;
    pair_t          *p;
    pthread_t        t;
    pthread_attr_t   attr;

    b = socket(AF_INET, SOCK_STREAM, 0);
    if (b < 0 || connect(b, (struct sockaddr *) &target, sizeof(target))) {
        perror("delay: connect");
        close(a);
        if (b >= 0) {
            close(b);
        }
        return;
    }

    one = 1;
    setsockopt(a, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    setsockopt(b, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));

    p = calloc(1, sizeof(pair_t));
    if (p == NULL) {
        abort();
    }

    pthread_mutex_init(&p->lock, NULL);
    p->dir[0] = (dir_t) { a, b, p };
    p->dir[1] = (dir_t) { b, a, p };

    pthread_attr_init(&attr);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    pthread_create(&t, &attr, pump, &p->dir[0]);
    pthread_create(&t, &attr, pump, &p->dir[1]);
    pthread_attr_destroy(&attr);
}


static size_t
tcp_rmem_max(void)
{
    FILE               *f;
    unsigned long long  lo, def, hi;

    f = fopen("/proc/sys/net/ipv4/tcp_rmem", "r");
    if (f && fscanf(f, "%llu %llu %llu", &lo, &def, &hi) == 3) {
        fclose(f);
        return hi;
    }

    if (f) {
        fclose(f);
    }

    return 6 * 1024 * 1024;
}


int
main(int argc, char **argv)
{
    int                 l, a, i, one;
    const char         *addr = "127.0.0.1";
    struct sockaddr_in  sin;

    if (argc < 3) {
        fprintf(stderr, "usage: delay LISTEN_PORT TARGET_PORT [-d MS] "
                        "[-b BYTES] [-a ADDR]\n");
        return 2;
    }

    bound = tcp_rmem_max();

    for (i = 3; i + 1 < argc; i += 2) {
        if (strcmp(argv[i], "-d") == 0) {
            delay_us = strtoull(argv[i + 1], NULL, 10) * 1000;
        } else if (strcmp(argv[i], "-b") == 0) {
            bound = strtoull(argv[i + 1], NULL, 10);
        } else if (strcmp(argv[i], "-a") == 0) {
            addr = argv[i + 1];
        } else {
            fprintf(stderr, "delay: unknown option %s\n", argv[i]);
            return 2;
        }
    }

    if (bound < CHUNK_MAX) {
        bound = CHUNK_MAX;
    }

    signal(SIGPIPE, SIG_IGN);

    memset(&sin, 0, sizeof(sin));
    sin.sin_family = AF_INET;
    sin.sin_port = htons(atoi(argv[1]));
    if (inet_pton(AF_INET, addr, &sin.sin_addr) != 1) {
        fprintf(stderr, "delay: bad address %s\n", addr);
        return 2;
    }

    target = sin;
    target.sin_port = htons(atoi(argv[2]));

    l = socket(AF_INET, SOCK_STREAM, 0);
    one = 1;
    setsockopt(l, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (bind(l, (struct sockaddr *) &sin, sizeof(sin)) || listen(l, 128)) {
        perror("delay: listen");
        return 1;
    }

    fprintf(stderr, "delay: %s:%s -> %s, %llu ms each way, %zu bytes in "
            "flight\n", addr, argv[1], argv[2],
            (unsigned long long) delay_us / 1000, bound);

    for ( ;; ) {
        a = accept(l, NULL, NULL);
        if (a < 0) {
            if (errno == EINTR || errno == ECONNABORTED) {
                continue;
            }
            perror("delay: accept");
            return 1;
        }

        relay(a);
    }
}
