/*
 * Copyright (C) ngx_tunnel developers
 *
 * The connection to the server: TCP, or TLS with OpenSSL, non-blocking.
 */

#ifndef _CONN_H_INCLUDED_
#define _CONN_H_INCLUDED_


#include <stddef.h>
#include <sys/types.h>
#include <sys/uio.h>

#include <openssl/ssl.h>


#define CONN_AGAIN     (-2)
#define CONN_ERROR     (-1)


typedef enum {
    CONN_IDLE = 0,
    CONN_CONNECTING,
    CONN_HANDSHAKE,
    CONN_READY,
    CONN_CLOSED
} conn_state_e;


typedef struct {
    int            fd;
    conn_state_e   state;
    SSL           *ssl;
    int            readable;      /* edge-triggered: ready until EAGAIN */
    int            rdhup;         /* the server's FIN waits behind data */
    int            writable;

    /* TLS: bytes taken from the caller, not yet through SSL_write */
    unsigned char  tbuf[16384];
    size_t         tlen;

    /* TLS: the records SSL_write made, obuf[opos, olen) not yet sent */
    unsigned char *obuf;
    size_t         opos;
    size_t         olen;

    int            fatal;         /* trying again cannot help */
    char           error[320];    /* what went wrong, for a person */
} conn_t;


/*
 * The TLS settings: certificates checked against the system store, or
 * "cafile" alone; "insecure" checks nothing.  NULL and "err" on failure.
 */
SSL_CTX *conn_tls_context(const char *cafile, int insecure, char *err,
    size_t errlen);

/* starts connecting; TLS when "ctx" is set, checking the name "host" */
int conn_start(conn_t *c, const char *host, const char *port, SSL_CTX *ctx);

/* drives connect and handshake: 1 ready, 0 not yet, -1 failed */
int conn_progress(conn_t *c);

ssize_t conn_read(conn_t *c, void *buf, size_t len);

/* takes what it can of "iov"; returns the count, or CONN_AGAIN/ERROR */
ssize_t conn_writev(conn_t *c, const struct iovec *iov, int n);

/* bytes taken but still in the TLS buffers: 0 when none */
#define conn_buffered(c)  ((c)->tlen + (c)->olen - (c)->opos)

/* sends what the TLS buffers hold: 0 when empty, CONN_AGAIN or CONN_ERROR */
int conn_flush(conn_t *c);

void conn_close(conn_t *c);


#endif /* _CONN_H_INCLUDED_ */
