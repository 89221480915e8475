
/*
 * Copyright (C) ngx_tunnel developers
 *
 * A session's TLS output.  OpenSSL writes each record (16 KiB at most) to
 * its BIO at once, and with the socket's BIO that is a write() a record.
 * Our BIO gathers the records and writes up to four at a time: when it is
 * full, at the end of each flush of the session, and when OpenSSL asks
 * (alerts, close_notify).  It fails with "retry" only when the socket
 * would block, so nginx's SSL functions see what they would see with the
 * socket itself.  The buffer grows with the output and is freed while the
 * session is idle.
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_event.h>
#include <ngx_stream.h>

#include "ngx_tunnel_session.h"


#if (NGX_STREAM_SSL)

#define NGX_TUNNEL_TLS_OUT  (4 * (16384 + 256))     /* four sealed records */
#define NGX_TUNNEL_TLS_MIN  4096                    /* a few small ones */


typedef struct {
    ngx_socket_t   fd;
    u_char        *buf;
    size_t         len;
    size_t         size;        /* grows up to NGX_TUNNEL_TLS_OUT */
    ngx_err_t      err;
} ngx_tunnel_tls_out_t;


static ngx_int_t ngx_tunnel_tls_push(ngx_tunnel_tls_out_t *out);
static int ngx_tunnel_tls_write(BIO *b, const char *data, size_t n,
    size_t *done);
static long ngx_tunnel_tls_ctrl(BIO *b, int cmd, long num, void *ptr);
static int ngx_tunnel_tls_destroy(BIO *b);


static BIO_METHOD  *ngx_tunnel_tls_method;
static int          ngx_tunnel_tls_type;


/* after the handshake: the session's records go through our buffer */
ngx_int_t
ngx_tunnel_tls_attach(ngx_connection_t *c)
{
    BIO                   *b;
    ngx_tunnel_tls_out_t  *out;

    if (ngx_tunnel_tls_method == NULL) {
        ngx_tunnel_tls_type = BIO_get_new_index() | BIO_TYPE_SOURCE_SINK;
        ngx_tunnel_tls_method = BIO_meth_new(ngx_tunnel_tls_type,
                                             "tunnel session out");
        if (ngx_tunnel_tls_method == NULL
            || BIO_meth_set_write_ex(ngx_tunnel_tls_method,
                                     ngx_tunnel_tls_write) != 1
            || BIO_meth_set_ctrl(ngx_tunnel_tls_method, ngx_tunnel_tls_ctrl)
               != 1
            || BIO_meth_set_destroy(ngx_tunnel_tls_method,
                                    ngx_tunnel_tls_destroy) != 1)
        {
            ngx_ssl_error(NGX_LOG_ALERT, c->log, 0, "BIO_meth_new() failed");
            return NGX_ERROR;
        }
    }

    out = ngx_calloc(sizeof(ngx_tunnel_tls_out_t), c->log);
    if (out == NULL) {
        return NGX_ERROR;
    }

    b = BIO_new(ngx_tunnel_tls_method);
    if (b == NULL) {
        ngx_ssl_error(NGX_LOG_ALERT, c->log, 0, "BIO_new() failed");
        ngx_free(out);
        return NGX_ERROR;
    }

    out->fd = c->fd;
    BIO_set_data(b, out);
    BIO_set_init(b, 1);

    /* the socket's BIO stays for reading */
    SSL_set0_wbio(c->ssl->connection, b);

    return NGX_OK;
}


static ngx_tunnel_tls_out_t *
ngx_tunnel_tls_out(ngx_connection_t *c)
{
    BIO  *b;

    b = SSL_get_wbio(c->ssl->connection);

    if (b == NULL || BIO_method_type(b) != ngx_tunnel_tls_type) {
        return NULL;
    }

    return BIO_get_data(b);
}


/*
 * What the buffer holds goes to the socket: NGX_OK when all of it went,
 * NGX_AGAIN (and the write event not ready) when the socket is full.
 */
ngx_int_t
ngx_tunnel_tls_flush(ngx_connection_t *c)
{
    ngx_int_t              rc;
    ngx_tunnel_tls_out_t  *out;

    out = ngx_tunnel_tls_out(c);

    if (out == NULL || out->len == 0) {
        return NGX_OK;
    }

    rc = ngx_tunnel_tls_push(out);

    if (rc == NGX_OK && out->size <= NGX_TUNNEL_TLS_MIN) {
        /* control frames only: an idle session keeps nothing */
        ngx_free(out->buf);
        out->buf = NULL;
        out->size = 0;

    } else if (rc == NGX_AGAIN) {
        c->write->ready = 0;

    } else if (rc == NGX_ERROR) {
        ngx_connection_error(c, out->err, "tunnel: write() failed");
    }

    return rc;
}


size_t
ngx_tunnel_tls_pending(ngx_connection_t *c)
{
    ngx_tunnel_tls_out_t  *out;

    out = ngx_tunnel_tls_out(c);

    return out ? out->len : 0;
}


/* an idle session keeps no buffer */
void
ngx_tunnel_tls_idle(ngx_connection_t *c)
{
    ngx_tunnel_tls_out_t  *out;

    out = ngx_tunnel_tls_out(c);

    if (out && out->len == 0 && out->buf) {
        ngx_free(out->buf);
        out->buf = NULL;
        out->size = 0;
    }
}


static ngx_int_t
ngx_tunnel_tls_push(ngx_tunnel_tls_out_t *out)
{
    size_t     off;
    ssize_t    n;
    ngx_err_t  err;

    off = 0;

    while (off < out->len) {
        n = write(out->fd, out->buf + off, out->len - off);

        if (n >= 0) {
            off += n;
            continue;
        }

        err = ngx_socket_errno;

        if (err == NGX_EINTR) {
            continue;
        }

        if (err != NGX_EAGAIN) {
            out->err = err;
            return NGX_ERROR;
        }

        break;
    }

    if (off == out->len) {
        out->len = 0;
        return NGX_OK;
    }

    ngx_memmove(out->buf, out->buf + off, out->len - off);
    out->len -= off;

    return NGX_AGAIN;
}


static int
ngx_tunnel_tls_write(BIO *b, const char *data, size_t n, size_t *done)
{
    size_t                 size;
    u_char                *p;
    ngx_tunnel_tls_out_t  *out;

    out = BIO_get_data(b);

    BIO_clear_retry_flags(b);

    if (out->len == NGX_TUNNEL_TLS_OUT) {
        switch (ngx_tunnel_tls_push(out)) {

        case NGX_AGAIN:
            BIO_set_retry_write(b);
            return 0;

        case NGX_ERROR:
            ngx_set_socket_errno(out->err);
            return 0;
        }
    }

    if (n > out->size - out->len && out->size < NGX_TUNNEL_TLS_OUT) {
        /* small while only control frames go: bulk data grows it */
        size = out->size ? out->size : NGX_TUNNEL_TLS_MIN;

        while (size - out->len < n && size < NGX_TUNNEL_TLS_OUT) {
            size *= 2;
        }

        size = ngx_min(size, NGX_TUNNEL_TLS_OUT);

        p = realloc(out->buf, size);
        if (p == NULL) {
            ngx_log_error(NGX_LOG_ALERT, ngx_cycle->log, ngx_errno,
                          "realloc(%uz) failed", size);
            return 0;
        }

        out->buf = p;
        out->size = size;
    }

    if (n > out->size - out->len) {
        n = out->size - out->len;
    }

    ngx_memcpy(out->buf + out->len, data, n);
    out->len += n;
    *done = n;

    return 1;
}


static long
ngx_tunnel_tls_ctrl(BIO *b, int cmd, long num, void *ptr)
{
    ngx_tunnel_tls_out_t  *out;

    out = BIO_get_data(b);

    switch (cmd) {

    case BIO_CTRL_FLUSH:
        /* an alert or close_notify: out now, if the socket takes it */
        return ngx_tunnel_tls_push(out) != NGX_ERROR;

    case BIO_CTRL_WPENDING:
        return (long) out->len;

    default:
        return 0;
    }
}


static int
ngx_tunnel_tls_destroy(BIO *b)
{
    ngx_tunnel_tls_out_t  *out;

    out = BIO_get_data(b);

    if (out) {
        if (out->buf) {
            ngx_free(out->buf);
        }

        ngx_free(out);
        BIO_set_data(b, NULL);
    }

    return 1;
}

#endif
