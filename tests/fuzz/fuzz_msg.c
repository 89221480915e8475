/*
 * Copyright (C) ngx_tunnel developers
 *
 * libFuzzer target for the control message codec.
 *
 * Every input is decoded as a sequence of messages.  What decodes is checked
 * against the protocol as PROTOCOL.md states it (the table below is written
 * from the document, not from the codec), re-encoded, decoded again and
 * compared field by field; the re-encoding must be canonical (encoding it
 * again gives the same bytes), and every cut of it must ask for more bytes.
 *
 * The input is also read as a message to encode: a type, integers and
 * strings taken from the input, of any length.  The encoder must refuse
 * exactly the strings over their bound, and what it writes must decode.
 */

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "tunnel_msg.h"


#define FZ_INT          0
#define FZ_STR          1
#define B(tag)          (1u << (tag))


typedef struct {
    uint8_t      tag;
    uint8_t      kind;
    uint16_t     max;
    size_t       offset;
} fz_field_t;


typedef struct {
    uint32_t     fields;
    uint32_t     required;
} fz_type_t;


/* PROTOCOL.md, section 3 */
static const fz_field_t  fz_fields[] = {
    { TUNNEL_T_VERSION, FZ_INT, 0, offsetof(tunnel_msg_t, version) },
    { TUNNEL_T_HEARTBEAT_MS, FZ_INT, 0,
      offsetof(tunnel_msg_t, heartbeat_ms) },
    { TUNNEL_T_CODE, FZ_INT, 0, offsetof(tunnel_msg_t, code) },
    { TUNNEL_T_REQUEST_ID, FZ_INT, 0, offsetof(tunnel_msg_t, request_id) },
    { TUNNEL_T_KIND, FZ_INT, 0, offsetof(tunnel_msg_t, kind) },
    { TUNNEL_T_PORT, FZ_INT, 0, offsetof(tunnel_msg_t, port) },
    { TUNNEL_T_TUNNEL_ID, FZ_INT, 0, offsetof(tunnel_msg_t, tunnel_id) },
    { TUNNEL_T_REMOTE_PORT, FZ_INT, 0,
      offsetof(tunnel_msg_t, remote_port) },
    { TUNNEL_T_MAX_STREAMS, FZ_INT, 0,
      offsetof(tunnel_msg_t, max_streams) },
    { TUNNEL_T_TOKEN, FZ_STR, 512, offsetof(tunnel_msg_t, token) },
    { TUNNEL_T_CLIENT_NAME, FZ_STR, 64,
      offsetof(tunnel_msg_t, client_name) },
    { TUNNEL_T_CLIENT_VERSION, FZ_STR, 64,
      offsetof(tunnel_msg_t, client_version) },
    { TUNNEL_T_SESSION_ID, FZ_STR, 64, offsetof(tunnel_msg_t, session_id) },
    { TUNNEL_T_MESSAGE, FZ_STR, 1024, offsetof(tunnel_msg_t, message) },
    { TUNNEL_T_NAME, FZ_STR, 253, offsetof(tunnel_msg_t, name) },
    { TUNNEL_T_URL, FZ_STR, 1024, offsetof(tunnel_msg_t, url) },
    { TUNNEL_T_REMOTE_ADDR, FZ_STR, 128,
      offsetof(tunnel_msg_t, remote_addr) },
    { TUNNEL_T_SERVER_NAME, FZ_STR, 253,
      offsetof(tunnel_msg_t, server_name) },
    { TUNNEL_T_INSTANCE, FZ_STR, 64, offsetof(tunnel_msg_t, instance) },
};

#define FZ_NFIELDS  (sizeof(fz_fields) / sizeof(fz_fields[0]))


static const fz_type_t  fz_types[TUNNEL_MSG_LAST + 1] = {
    [TUNNEL_HELLO] = {
        B(TUNNEL_T_VERSION) | B(TUNNEL_T_TOKEN) | B(TUNNEL_T_CLIENT_NAME)
        | B(TUNNEL_T_CLIENT_VERSION) | B(TUNNEL_T_INSTANCE),
        B(TUNNEL_T_VERSION) | B(TUNNEL_T_TOKEN) },
    [TUNNEL_WELCOME] = {
        B(TUNNEL_T_VERSION) | B(TUNNEL_T_SESSION_ID)
        | B(TUNNEL_T_HEARTBEAT_MS) | B(TUNNEL_T_MAX_STREAMS),
        B(TUNNEL_T_VERSION) | B(TUNNEL_T_SESSION_ID) },
    [TUNNEL_ERROR] = {
        B(TUNNEL_T_CODE) | B(TUNNEL_T_MESSAGE),
        B(TUNNEL_T_CODE) },
    [TUNNEL_BIND] = {
        B(TUNNEL_T_REQUEST_ID) | B(TUNNEL_T_KIND) | B(TUNNEL_T_NAME)
        | B(TUNNEL_T_PORT),
        B(TUNNEL_T_REQUEST_ID) | B(TUNNEL_T_KIND) },
    [TUNNEL_BOUND] = {
        B(TUNNEL_T_REQUEST_ID) | B(TUNNEL_T_TUNNEL_ID) | B(TUNNEL_T_KIND)
        | B(TUNNEL_T_NAME) | B(TUNNEL_T_PORT) | B(TUNNEL_T_URL),
        B(TUNNEL_T_REQUEST_ID) | B(TUNNEL_T_TUNNEL_ID) | B(TUNNEL_T_KIND)
        | B(TUNNEL_T_URL) },
    [TUNNEL_BIND_ERROR] = {
        B(TUNNEL_T_REQUEST_ID) | B(TUNNEL_T_CODE) | B(TUNNEL_T_MESSAGE),
        B(TUNNEL_T_REQUEST_ID) | B(TUNNEL_T_CODE) },
    [TUNNEL_UNBIND] = {
        B(TUNNEL_T_TUNNEL_ID),
        B(TUNNEL_T_TUNNEL_ID) },
    [TUNNEL_UNBOUND] = {
        B(TUNNEL_T_TUNNEL_ID) | B(TUNNEL_T_CODE) | B(TUNNEL_T_MESSAGE),
        B(TUNNEL_T_TUNNEL_ID) | B(TUNNEL_T_CODE) },
    [TUNNEL_NOTICE] = {
        B(TUNNEL_T_CODE) | B(TUNNEL_T_MESSAGE),
        B(TUNNEL_T_CODE) },
    [TUNNEL_STREAM] = {
        B(TUNNEL_T_TUNNEL_ID) | B(TUNNEL_T_KIND) | B(TUNNEL_T_REMOTE_ADDR)
        | B(TUNNEL_T_REMOTE_PORT) | B(TUNNEL_T_SERVER_NAME),
        B(TUNNEL_T_TUNNEL_ID) | B(TUNNEL_T_KIND) },
};


static uint8_t  fz_out[TUNNEL_MSG_MAX];
static uint8_t  fz_out2[TUNNEL_MSG_MAX];


static uint32_t *
fz_int(tunnel_msg_t *m, const fz_field_t *f)
{
    return (uint32_t *) ((uint8_t *) m + f->offset);
}


static tunnel_str_t *
fz_str(tunnel_msg_t *m, const fz_field_t *f)
{
    return (tunnel_str_t *) ((uint8_t *) m + f->offset);
}


/* a decoded message obeys the protocol; its strings lie in "buf" */
static void
fz_check_decoded(tunnel_msg_t *m, const uint8_t *buf, size_t used)
{
    size_t               i;
    tunnel_str_t        *s;
    const fz_type_t     *t;
    const fz_field_t    *f;

    if (m->type == 0 || m->type > TUNNEL_MSG_LAST) {
        abort();
    }

    t = &fz_types[m->type];

    if ((m->present & ~t->fields) || (t->required & ~m->present)) {
        abort();
    }

    for (i = 0; i < FZ_NFIELDS; i++) {
        f = &fz_fields[i];

        if ((m->present & B(f->tag)) != TUNNEL_HAS(m, f->tag)) {
            abort();
        }

        if (f->kind == FZ_INT) {
            if (!(m->present & B(f->tag)) && *fz_int(m, f) != 0) {
                abort();
            }

            continue;
        }

        s = fz_str(m, f);

        if (!(m->present & B(f->tag))) {
            if (s->data != NULL || s->len != 0) {
                abort();
            }

            continue;
        }

        if (s->data == NULL || s->len > f->max || s->data < buf + 5
            || s->data + s->len > buf + used)
        {
            abort();
        }
    }
}


/* two messages carry the same values; "a" may lack integers "b" has 0 in */
static void
fz_compare(tunnel_msg_t *a, tunnel_msg_t *b)
{
    size_t               i;
    tunnel_str_t        *sa, *sb;
    const fz_field_t    *f;

    if (a->type != b->type) {
        abort();
    }

    for (i = 0; i < FZ_NFIELDS; i++) {
        f = &fz_fields[i];

        if (!(fz_types[a->type].fields & B(f->tag))) {
            continue;
        }

        if (f->kind == FZ_INT) {
            if (*fz_int(a, f) != *fz_int(b, f)) {
                abort();
            }

            /* the encoder writes every integer the type carries */
            if (!(b->present & B(f->tag))) {
                abort();
            }

            continue;
        }

        sa = fz_str(a, f);
        sb = fz_str(b, f);

        if ((a->present & B(f->tag)) != (b->present & B(f->tag))
            || sa->len != sb->len
            || (sa->len && memcmp(sa->data, sb->data, sa->len) != 0))
        {
            abort();
        }
    }
}


static void
fz_decode_all(const uint8_t *data, size_t size)
{
    int            rc;
    size_t         used, n, n2, k;
    const char    *why;
    tunnel_msg_t   m, m2, m3;

    while (size) {
        used = 0;
        rc = tunnel_msg_decode(&m, data, size, &used, &why);

        if (rc == TUNNEL_MSG_AGAIN) {
            if (size >= 2 && size >= 2 + ((size_t) data[0] << 8 | data[1])) {
                abort();        /* it was all there */
            }

            return;
        }

        if (rc == TUNNEL_MSG_INVALID) {
            if (why == NULL || why[0] == '\0') {
                abort();        /* a rejection always says why */
            }

            return;
        }

        if (rc != TUNNEL_MSG_OK || why != NULL
            || used != 2 + ((size_t) data[0] << 8 | data[1]) || used > size)
        {
            abort();
        }

        fz_check_decoded(&m, data, used);

        (void) tunnel_msg_type_name(m.type);
        (void) tunnel_kind_name(m.kind);
        (void) tunnel_error_text(m.code);

        /* re-encode: within every bound, so it must fit */
        n = tunnel_msg_encode(&m, fz_out, sizeof(fz_out));
        if (n == 0 || n > used + 7 * 9) {
            abort();
        }

        if (tunnel_msg_decode(&m2, fz_out, n, &k, &why) != TUNNEL_MSG_OK
            || k != n)
        {
            abort();
        }

        fz_check_decoded(&m2, fz_out, n);
        fz_compare(&m, &m2);

        /* canonical: once re-encoded, the bytes are stable */
        n2 = tunnel_msg_encode(&m2, fz_out2, sizeof(fz_out2));
        if (n2 != n || memcmp(fz_out, fz_out2, n) != 0) {
            abort();
        }

        /* too small a buffer: refused, nothing written past it */
        if (tunnel_msg_encode(&m2, fz_out2, n - 1) != 0) {
            abort();
        }

        /* every cut of a message asks for more */
        for (k = 0; k < n; k += 1 + k / 4) {
            if (tunnel_msg_decode(&m3, fz_out, k, &used, &why)
                != TUNNEL_MSG_AGAIN)
            {
                abort();
            }
        }

        used = 2 + ((size_t) data[0] << 8 | data[1]);
        data += used;
        size -= used;
    }
}


/* the input as a message to encode */
static void
fz_encode(const uint8_t *data, size_t size)
{
    int                  rc;
    size_t               i, n, len, used;
    uint8_t              type;
    uint32_t             over, missing;
    const char          *why;
    tunnel_str_t        *s;
    tunnel_msg_t         m, d;
    const fz_field_t    *f;

    if (size < 2) {
        return;
    }

    memset(&m, 0, sizeof(tunnel_msg_t));
    type = data[0] % (TUNNEL_MSG_LAST + 2);
    m.type = type;
    data++;
    size--;

    over = 0;
    missing = 0;

    for (i = 0; i < FZ_NFIELDS; i++) {
        f = &fz_fields[i];

        if (f->kind == FZ_INT) {
            if (size >= 4) {
                *fz_int(&m, f) = (uint32_t) data[0] << 24
                                 | (uint32_t) data[1] << 16
                                 | (uint32_t) data[2] << 8 | data[3];
                data += 4;
                size -= 4;
            }

            continue;
        }

        /* a length byte: 0 unset, else (b - 1) * 5 bytes of the input */
        if (size == 0 || data[0] == 0) {
            if (size) {
                data++;
                size--;
            }

            if (type && type <= TUNNEL_MSG_LAST
                && (fz_types[type].required & B(f->tag)))
            {
                missing |= B(f->tag);
            }

            continue;
        }

        len = (size_t) (data[0] - 1) * 5;
        data++;
        size--;

        s = fz_str(&m, f);
        s->data = data;
        s->len = len < size ? len : size;

        if (type && type <= TUNNEL_MSG_LAST
            && (fz_types[type].fields & B(f->tag)) && s->len > f->max)
        {
            over |= B(f->tag);
        }
    }

    n = tunnel_msg_encode(&m, fz_out, sizeof(fz_out));

    if (type == 0 || type > TUNNEL_MSG_LAST || over) {
        if (n != 0) {
            abort();
        }

        return;
    }

    if (n == 0) {
        abort();
    }

    rc = tunnel_msg_decode(&d, fz_out, n, &used, &why);

    if (missing) {
        if (rc != TUNNEL_MSG_INVALID || strstr(why, "without") == NULL) {
            abort();
        }

        return;
    }

    if (rc != TUNNEL_MSG_OK || used != n) {
        abort();
    }

    fz_check_decoded(&d, fz_out, n);

    /* only the fields of the type travel */
    for (i = 0; i < FZ_NFIELDS; i++) {
        f = &fz_fields[i];

        if (!(fz_types[type].fields & B(f->tag))) {
            if (f->kind == FZ_INT) {
                *fz_int(&m, f) = 0;

            } else {
                memset(fz_str(&m, f), 0, sizeof(tunnel_str_t));
            }
        }
    }

    m.present = d.present;
    fz_compare(&m, &d);
}


int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);


int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fz_decode_all(data, size);
    fz_encode(data, size);

    (void) tunnel_kind_parse((const char *) data, size < 8 ? size : 8);

    return 0;
}
