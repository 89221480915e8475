/*
 * Copyright (C) ngx_tunnel developers
 *
 * The connection to the server.  With TLS, small writes are gathered into
 * one record: yamux output comes as many small iovecs (headers, control
 * frames), and a record each would cost 29 bytes each.  The records go to
 * our own buffer, not straight to the socket: OpenSSL would make a write()
 * of each (16 KiB at most), where one write() takes four.
 */

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/x509v3.h>

#include "conn.h"


static int conn_handshake(conn_t *c);
static int conn_seal(conn_t *c);
static int conn_push(conn_t *c);
static int conn_bio_write(BIO *b, const char *data, size_t n, size_t *done);
static long conn_bio_ctrl(BIO *b, int cmd, long num, void *ptr);
static int conn_io_error(conn_t *c, int *ready, const char *what);
static void conn_ssl_error(conn_t *c, const char *what, int rc);


#define CONN_TLS_READ_AHEAD  (64 * 1024)
#define CONN_TLS_RECORD      (16384 + 256)      /* a record, sealed */
#define CONN_TLS_OUT         (4 * CONN_TLS_RECORD)


static BIO_METHOD  *conn_bio_method;


SSL_CTX *
conn_tls_context(const char *cafile, int insecure, char *err, size_t errlen)
{
    SSL_CTX  *ctx;

    ctx = SSL_CTX_new(TLS_client_method());
    if (ctx == NULL) {
        snprintf(err, errlen, "cannot set up TLS (OpenSSL failed)");
        return NULL;
    }

    SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);

    if (conn_bio_method == NULL) {
        conn_bio_method = BIO_meth_new(BIO_get_new_index()
                                       | BIO_TYPE_SOURCE_SINK, "tunnel out");
        if (conn_bio_method == NULL
            || BIO_meth_set_write_ex(conn_bio_method, conn_bio_write) != 1
            || BIO_meth_set_ctrl(conn_bio_method, conn_bio_ctrl) != 1)
        {
            snprintf(err, errlen, "cannot set up TLS (OpenSSL failed)");
            SSL_CTX_free(ctx);
            return NULL;
        }
    }

    /*
     * AES-128-GCM first, as Go's crypto/tls and OpenSSH's aes128-gcm: as
     * safe for a session's life and a third cheaper than OpenSSL's
     * AES-256 default, on every byte of the tunnel.
     */
    (void) SSL_CTX_set_ciphersuites(ctx, "TLS_AES_128_GCM_SHA256:"
                                         "TLS_AES_256_GCM_SHA384:"
                                         "TLS_CHACHA20_POLY1305_SHA256");
    SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE
                          | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER
                          | SSL_MODE_RELEASE_BUFFERS);

    /* records are read ahead, up to 64 KiB a read(): one read() for each
       record's header and one for its body cost more than decrypting it */
    SSL_CTX_set_read_ahead(ctx, 1);
    SSL_CTX_set_default_read_buffer_len(ctx, CONN_TLS_READ_AHEAD);

    if (insecure) {
        SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL);
        return ctx;
    }

    SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);

    if (cafile && *cafile) {
        if (SSL_CTX_load_verify_locations(ctx, cafile, NULL) != 1) {
            snprintf(err, errlen,
                     "cannot read the CA certificate \"%s\": it should be a "
                     "PEM file (--cacert)", cafile);
            SSL_CTX_free(ctx);
            return NULL;
        }

    } else if (SSL_CTX_set_default_verify_paths(ctx) != 1) {
        snprintf(err, errlen, "cannot load the system's CA certificates");
        SSL_CTX_free(ctx);
        return NULL;
    }

    return ctx;
}


int
conn_start(conn_t *c, const char *host, const char *port, SSL_CTX *ctx)
{
    int                     fd, rc, one;
    BIO                    *rbio, *wbio;
    struct addrinfo         hints, *res;
    struct in6_addr         a6;

    memset(c, 0, sizeof(conn_t));
    c->fd = -1;

    memset(&hints, 0, sizeof(hints));
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;

    rc = getaddrinfo(host, port, &hints, &res);
    if (rc != 0) {
        snprintf(c->error, sizeof(c->error),
                 "cannot resolve the server name \"%s\": %s", host,
                 gai_strerror(rc));
        return -1;
    }

    fd = socket(res->ai_family,
                res->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd == -1) {
        snprintf(c->error, sizeof(c->error), "socket() failed: %s",
                 strerror(errno));
        freeaddrinfo(res);
        return -1;
    }

    one = 1;
    (void) setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    (void) setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &one, sizeof(one));

    rc = connect(fd, res->ai_addr, res->ai_addrlen);
    freeaddrinfo(res);

    if (rc == -1 && errno != EINPROGRESS) {
        snprintf(c->error, sizeof(c->error), "cannot connect to %s:%s: %s",
                 host, port, strerror(errno));
        close(fd);
        return -1;
    }

    c->fd = fd;
    c->state = CONN_CONNECTING;

    if (ctx == NULL) {
        return 0;
    }

    /* records are read from the socket, written to c->obuf */
    c->ssl = SSL_new(ctx);
    c->obuf = malloc(CONN_TLS_OUT);
    rbio = BIO_new_socket(fd, BIO_NOCLOSE);
    wbio = BIO_new(conn_bio_method);

    if (c->ssl == NULL || c->obuf == NULL || rbio == NULL || wbio == NULL) {
        snprintf(c->error, sizeof(c->error), "cannot set up TLS");
        BIO_free(rbio);
        BIO_free(wbio);
        conn_close(c);
        return -1;
    }

    BIO_set_data(wbio, c);
    BIO_set_init(wbio, 1);
    SSL_set_bio(c->ssl, rbio, wbio);

    /* a name gets SNI and a name check, an address an address check */
    if (inet_pton(AF_INET, host, &a6) == 1
        || inet_pton(AF_INET6, host, &a6) == 1)
    {
        X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(c->ssl), host);

    } else {
        SSL_set_tlsext_host_name(c->ssl, host);
        SSL_set1_host(c->ssl, host);
    }

    return 0;
}


int
conn_progress(conn_t *c)
{
    int        err;
    socklen_t  len;

    if (c->state == CONN_CONNECTING) {
        len = sizeof(err);

        if (getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len) == -1) {
            err = errno;
        }

        if (err == EINPROGRESS || err == EALREADY) {
            return 0;
        }

        if (err != 0) {
            snprintf(c->error, sizeof(c->error), "cannot connect: %s%s",
                     strerror(err),
                     err == ECONNREFUSED ? " (is the server running, and "
                                           "is this its registration port?)"
                                         : "");
            return -1;
        }

        c->state = c->ssl ? CONN_HANDSHAKE : CONN_READY;
    }

    if (c->state == CONN_HANDSHAKE) {
        return conn_handshake(c);
    }

    return c->state == CONN_READY ? 1 : -1;
}


static int
conn_handshake(conn_t *c)
{
    int   rc, e;
    long  verify;

    ERR_clear_error();

    rc = SSL_connect(c->ssl);

    /* what it wrote (a hello, a finished) goes out now */
    if (conn_push(c) == CONN_ERROR) {
        return -1;
    }

    if (rc == 1) {
        c->state = CONN_READY;
        return 1;
    }

    e = SSL_get_error(c->ssl, rc);

    if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) {
        return 0;
    }

    verify = SSL_get_verify_result(c->ssl);

    if (verify != X509_V_OK) {
        snprintf(c->error, sizeof(c->error),
                 "the server's certificate cannot be trusted (%s). "
                 "If the server uses its own certificate authority, pass "
                 "its certificate with --cacert FILE; for a throwaway test "
                 "server only, --insecure skips the check",
                 X509_verify_cert_error_string(verify));
        c->fatal = 1;
        return -1;
    }

    conn_ssl_error(c, "the TLS handshake with the server failed", rc);

    return -1;
}


/* after read() or write() failed: CONN_AGAIN when it would block */
static int
conn_io_error(conn_t *c, int *ready, const char *what)
{
    if (errno == EAGAIN || errno == EINTR) {
        *ready = 0;
        return CONN_AGAIN;
    }

    snprintf(c->error, sizeof(c->error), "%s the server: %s", what,
             strerror(errno));

    return CONN_ERROR;
}


static void
conn_ssl_error(conn_t *c, const char *what, int rc)
{
    unsigned long  e;
    char           buf[160];

    e = ERR_peek_last_error();

    if (e) {
        ERR_error_string_n(e, buf, sizeof(buf));
        snprintf(c->error, sizeof(c->error), "%s: %s%s", what, buf,
                 ERR_GET_REASON(e) == SSL_R_WRONG_VERSION_NUMBER
                 ? " (does the server speak TLS on this port? --plain "
                   "connects without TLS)" : "");

    } else if (rc == 0 || errno == 0) {
        snprintf(c->error, sizeof(c->error),
                 "%s: the server closed the connection", what);

    } else {
        snprintf(c->error, sizeof(c->error), "%s: %s", what,
                 strerror(errno));
    }
}


ssize_t
conn_read(conn_t *c, void *buf, size_t len)
{
    int      rc, e;
    ssize_t  n;

    if (c->ssl == NULL) {
        n = read(c->fd, buf, len);

        if (n >= 0) {
            if (n > 0 && (size_t) n < len && !c->rdhup) {
                /* drained (loop.h): the next bytes bring an event */
                c->readable = 0;
            }

            return n;
        }

        return conn_io_error(c, &c->readable, "reading from");
    }

    /*
     * SSL_read() gives one record (16 KiB at most) a call: the records
     * OpenSSL already holds (read ahead) are taken together, so that yamux
     * sees whole frames and the local services get them in one write each.
     */
    n = 0;

    do {
        ERR_clear_error();

        rc = SSL_read(c->ssl, (uint8_t *) buf + n,
                      (int) (len - n > 1 << 30 ? 1 << 30 : len - n));
        if (rc <= 0) {
            break;
        }

        n += rc;

    } while ((size_t) n < len && SSL_has_pending(c->ssl));

    if (rc > 0) {
        return n;
    }

    e = SSL_get_error(c->ssl, rc);

    if (n) {
        if (e == SSL_ERROR_WANT_READ) {
            c->readable = 0;
        }

        /* the rest, an error included, comes with the next call */
        return n;
    }

    switch (e) {

    case SSL_ERROR_WANT_READ:
        c->readable = 0;
        return CONN_AGAIN;

    case SSL_ERROR_WANT_WRITE:
        c->writable = 0;
        return CONN_AGAIN;

    case SSL_ERROR_ZERO_RETURN:
        return 0;

    default:
        conn_ssl_error(c, "reading from the server", rc);
        return CONN_ERROR;
    }
}


int
conn_flush(conn_t *c)
{
    int  rc;

    for ( ;; ) {
        rc = conn_push(c);
        if (rc != 0 || c->tlen == 0) {
            return rc;
        }

        rc = conn_seal(c);

        if (rc == CONN_ERROR || (rc == CONN_AGAIN && c->olen == c->opos)) {
            return rc;
        }
    }
}


ssize_t
conn_writev(conn_t *c, const struct iovec *iov, int n)
{
    int      i, rc;
    size_t   k, off, taken;
    ssize_t  w;

    if (c->ssl == NULL) {
        w = writev(c->fd, iov, n);

        if (w >= 0) {
            return w;
        }

        return conn_io_error(c, &c->writable, "writing to");
    }

    rc = conn_flush(c);
    if (rc != 0) {
        return rc;
    }

    /* records of 16 KiB, as many as c->obuf holds; the bytes are ours */
    taken = 0;
    i = 0;
    off = 0;

    while (i < n && c->olen + CONN_TLS_RECORD <= CONN_TLS_OUT) {

        while (i < n && c->tlen < sizeof(c->tbuf)) {
            k = iov[i].iov_len - off;

            if (k > sizeof(c->tbuf) - c->tlen) {
                k = sizeof(c->tbuf) - c->tlen;
            }

            memcpy(c->tbuf + c->tlen, (unsigned char *) iov[i].iov_base + off,
                   k);
            c->tlen += k;
            taken += k;
            off += k;

            if (off == iov[i].iov_len) {
                i++;
                off = 0;
            }
        }

        rc = conn_seal(c);

        if (rc == CONN_ERROR) {
            return CONN_ERROR;
        }

        if (rc == CONN_AGAIN) {
            break;
        }
    }

    if (conn_push(c) == CONN_ERROR) {
        return CONN_ERROR;
    }

    return (ssize_t) taken;
}


/* c->tbuf through SSL_write into c->obuf: 0, CONN_AGAIN or CONN_ERROR */
static int
conn_seal(conn_t *c)
{
    int  rc, e;

    while (c->tlen) {
        ERR_clear_error();

        rc = SSL_write(c->ssl, c->tbuf, (int) c->tlen);

        if (rc > 0) {
            memmove(c->tbuf, c->tbuf + rc, c->tlen - rc);
            c->tlen -= rc;
            continue;
        }

        e = SSL_get_error(c->ssl, rc);

        if (e == SSL_ERROR_WANT_WRITE) {
            return CONN_AGAIN;      /* c->obuf is full */
        }

        if (e == SSL_ERROR_WANT_READ) {
            c->readable = 0;
            return CONN_AGAIN;
        }

        conn_ssl_error(c, "writing to the server", rc);
        return CONN_ERROR;
    }

    return 0;
}


/* c->obuf to the socket: 0 when empty, CONN_AGAIN or CONN_ERROR */
static int
conn_push(conn_t *c)
{
    ssize_t  w;

    while (c->opos < c->olen) {
        w = write(c->fd, c->obuf + c->opos, c->olen - c->opos);

        if (w >= 0) {
            c->opos += (size_t) w;
            continue;
        }

        return conn_io_error(c, &c->writable, "writing to");
    }

    c->opos = 0;
    c->olen = 0;

    return 0;
}


/* OpenSSL's output: into c->obuf, as a socket would take it */
static int
conn_bio_write(BIO *b, const char *data, size_t n, size_t *done)
{
    conn_t  *c;

    c = BIO_get_data(b);

    BIO_clear_retry_flags(b);

    if (c->olen == CONN_TLS_OUT) {
        BIO_set_retry_write(b);
        return 0;
    }

    if (n > CONN_TLS_OUT - c->olen) {
        n = CONN_TLS_OUT - c->olen;
    }

    memcpy(c->obuf + c->olen, data, n);
    c->olen += n;
    *done = n;

    return 1;
}


static long
conn_bio_ctrl(BIO *b, int cmd, long num, void *ptr)
{
    (void) b;
    (void) num;
    (void) ptr;

    return cmd == BIO_CTRL_FLUSH;
}


void
conn_close(conn_t *c)
{
    if (c->ssl) {
        SSL_free(c->ssl);
        c->ssl = NULL;
    }

    free(c->obuf);
    c->obuf = NULL;
    c->opos = 0;
    c->olen = 0;

    if (c->fd != -1) {
        close(c->fd);
        c->fd = -1;
    }

    c->state = CONN_CLOSED;
}
