
/*
 * Copyright (C) ngx_tunnel developers
 *
 * The registry: which session, in which worker, serves a name or a port.
 * It lives in the "tunnel_zone" shared memory zone, so that every worker
 * sees it, and it survives "nginx -s reload": the new workers find the
 * sessions that the old ones still drain.
 *
 *   sh->names   rbtree of entries (http, tls), keyed by the crc32 of the
 *               kind and the name, compared in full on equal keys;
 *   sh->ports   rbtree of entries (tcp), keyed by the port;
 *   sh->sessions  queue of sessions; each holds its members.
 *
 * An entry is a name or a port with the pool of members serving it, all of
 * one token (the entry's owner).  A member is one tunnel of one session and
 * belongs to that session: it is freed by its worker, or by the reaper once
 * that worker is gone.  Everything is done under the slab mutex.
 *
 * A session whose connection broke is "lost": it belongs to no worker any
 * more, and its members hold their names and ports, routing nowhere, until
 * another session of the token takes them over or its grace ends (then the
 * reaper, in any worker, frees it).
 */


#include <ngx_config.h>
#include <ngx_core.h>

#include <openssl/rand.h>

#include "ngx_tunnel.h"


#define NGX_TUNNEL_LABEL_LEN      10
#define NGX_TUNNEL_LABEL_TRIES    8

/* what status says of a tunnel, the best first */
#define NGX_TUNNEL_STATE_ONLINE        0
#define NGX_TUNNEL_STATE_DRAINING      1
#define NGX_TUNNEL_STATE_RECONNECTING  2
#define NGX_TUNNEL_STATE_REPLACED      3


/* what status shows of a session, copied under the mutex */
typedef struct {
    uint64_t                   id;
    ngx_pid_t                  pid;
    time_t                     since;
    ngx_uint_t                 draining;
    ngx_uint_t                 lost;
    time_t                     lost_since;
    ngx_atomic_uint_t          streams;
    ngx_atomic_uint_t          streams_total;
    ngx_atomic_uint_t          bytes_in;
    ngx_atomic_uint_t          bytes_out;
    ngx_str_t                  account;
    ngx_str_t                  client;
    ngx_str_t                  addr;
    ngx_uint_t                 first;       /* its tunnels in the array */
    ngx_uint_t                 ntunnels;
} ngx_tunnel_status_session_t;


/* and of a member */
typedef struct {
    uint32_t                   id;
    ngx_uint_t                 kind;
    time_t                     since;
    in_port_t                  port;
    ngx_uint_t                 replaced;
    ngx_uint_t                 state;       /* NGX_TUNNEL_STATE_* */
    ngx_atomic_uint_t          conns;
    ngx_atomic_uint_t          conns_total;
    ngx_atomic_uint_t          bytes_in;
    ngx_atomic_uint_t          bytes_out;
    ngx_str_t                  name;        /* tcp: the port */
    ngx_str_t                  account;
    ngx_str_t                  url;
} ngx_tunnel_status_tunnel_t;


/* Prometheus series are sums over the sessions of an account... */
typedef struct {
    ngx_str_t                  account;
    ngx_uint_t                 sessions;
    ngx_atomic_uint_t          streams;
    ngx_atomic_uint_t          streams_total;
    ngx_atomic_uint_t          bytes_in;
    ngx_atomic_uint_t          bytes_out;
} ngx_tunnel_status_account_t;


/* ...and over the members of a tunnel */
typedef struct {
    ngx_str_t                  name;
    ngx_str_t                  account;
    ngx_str_t                  url;         /* that of its best member */
    ngx_uint_t                 state;       /*   and its state */
    ngx_uint_t                 kind;
    ngx_uint_t                 members;
    ngx_atomic_uint_t          conns;
    ngx_atomic_uint_t          conns_total;
    ngx_atomic_uint_t          bytes_in;
    ngx_atomic_uint_t          bytes_out;
} ngx_tunnel_status_group_t;


typedef struct {
    ngx_pool_t                *pool;
    ngx_chain_t               *out;
    ngx_chain_t              **last;
    ngx_buf_t                 *buf;
} ngx_tunnel_writer_t;


static uint32_t ngx_tunnel_registry_hash(ngx_uint_t kind, u_char *name,
    size_t len);
static void ngx_tunnel_registry_insert_name(ngx_rbtree_node_t *temp,
    ngx_rbtree_node_t *node, ngx_rbtree_node_t *sentinel);
static ngx_int_t ngx_tunnel_registry_cmp(ngx_uint_t kind, u_char *name,
    size_t len, ngx_tunnel_entry_t *e);
static ngx_tunnel_entry_t *ngx_tunnel_registry_find_name(
    ngx_tunnel_registry_sh_t *sh, ngx_uint_t kind, u_char *name, size_t len);
static ngx_tunnel_entry_t *ngx_tunnel_registry_find_port(
    ngx_tunnel_registry_sh_t *sh, in_port_t port);
static ngx_tunnel_entry_t *ngx_tunnel_registry_entry_add(
    ngx_tunnel_registry_t *reg, ngx_tunnel_shm_session_t *s, ngx_uint_t kind,
    ngx_str_t *name, in_port_t port);
static ngx_tunnel_member_t *ngx_tunnel_registry_member_add(
    ngx_tunnel_registry_t *reg, ngx_tunnel_shm_session_t *s,
    ngx_tunnel_entry_t *e, uint32_t tunnel_id);
static uint64_t ngx_tunnel_registry_take_over(ngx_tunnel_registry_t *reg,
    ngx_tunnel_entry_t *e, ngx_tunnel_member_t *m, ngx_uint_t *lost);
static void ngx_tunnel_registry_detach(ngx_tunnel_registry_t *reg,
    ngx_tunnel_member_t *m);
static void ngx_tunnel_registry_unbind_locked(ngx_tunnel_registry_t *reg,
    ngx_tunnel_member_t *m);
static void ngx_tunnel_registry_session_remove_locked(
    ngx_tunnel_registry_t *reg, ngx_tunnel_shm_session_t *s);
static ngx_int_t ngx_tunnel_registry_lose_locked(ngx_tunnel_registry_t *reg,
    ngx_tunnel_shm_session_t *s);
static ngx_int_t ngx_tunnel_registry_expired(ngx_tunnel_shm_session_t *s);
static ngx_uint_t ngx_tunnel_registry_reap_locked(ngx_tunnel_registry_t *reg,
    ngx_log_t *log);
static ngx_uint_t ngx_tunnel_registry_token_tunnels(
    ngx_tunnel_registry_t *reg, ngx_tunnel_shm_session_t *s);
static ngx_uint_t ngx_tunnel_registry_over_limit(ngx_tunnel_registry_t *reg,
    ngx_tunnel_shm_session_t *s, ngx_uint_t max);
static ngx_uint_t ngx_tunnel_registry_replaces(ngx_tunnel_entry_t *e,
    ngx_tunnel_shm_session_t *s);
static ngx_int_t ngx_tunnel_registry_same_instance(
    ngx_tunnel_shm_session_t *a, ngx_tunnel_shm_session_t *b);
static ngx_int_t ngx_tunnel_registry_alive(ngx_pid_t pid);
static ngx_int_t ngx_tunnel_registry_label(u_char *p);
static void ngx_tunnel_registry_full(ngx_shm_zone_t *zone);
static void ngx_tunnel_registry_copy(u_char *dst, size_t *dst_len,
    size_t max, ngx_str_t *src, ngx_uint_t printable);

static ngx_int_t ngx_tunnel_status_json(ngx_tunnel_writer_t *w,
    ngx_tunnel_status_session_t *ss, ngx_uint_t ns,
    ngx_tunnel_status_tunnel_t *st);
static ngx_int_t ngx_tunnel_status_prometheus(ngx_tunnel_writer_t *w,
    ngx_tunnel_status_session_t *ss, ngx_uint_t ns,
    ngx_tunnel_status_tunnel_t *st, ngx_uint_t nt);
static int ngx_libc_cdecl ngx_tunnel_status_cmp_session(const void *one,
    const void *two);
static int ngx_libc_cdecl ngx_tunnel_status_cmp_tunnel(const void *one,
    const void *two);
static ngx_int_t ngx_tunnel_json_str(ngx_pool_t *pool, ngx_str_t *s);
static ngx_int_t ngx_tunnel_prometheus_str(ngx_pool_t *pool, ngx_str_t *s);
static ngx_int_t ngx_libc_cdecl ngx_tunnel_write(ngx_tunnel_writer_t *w,
    size_t len, const char *fmt, ...);


static char  *ngx_tunnel_kind_names[] = { "", "http", "tls", "tcp" };

static char  *ngx_tunnel_state_names[] = {
    "online", "draining", "reconnecting", "replaced"
};


ngx_int_t
ngx_tunnel_registry_init_zone(ngx_shm_zone_t *zone, void *data)
{
    ngx_tunnel_registry_t *oreg = data;

    size_t                  len;
    uint64_t                start;
    ngx_tunnel_registry_t  *reg;

    reg = zone->data;

    if (oreg) {
        /* a reload: the sessions of the old workers are kept */
        reg->sh = oreg->sh;
        reg->shpool = oreg->shpool;
        return NGX_OK;
    }

    reg->shpool = (ngx_slab_pool_t *) zone->shm.addr;

    if (zone->shm.exists) {
        reg->sh = reg->shpool->data;
        return NGX_OK;
    }

    reg->sh = ngx_slab_calloc(reg->shpool, sizeof(ngx_tunnel_registry_sh_t));
    if (reg->sh == NULL) {
        return NGX_ERROR;
    }

    reg->shpool->data = reg->sh;

    ngx_rbtree_init(&reg->sh->names, &reg->sh->names_sentinel,
                    ngx_tunnel_registry_insert_name);
    ngx_rbtree_init(&reg->sh->ports, &reg->sh->ports_sentinel,
                    ngx_rbtree_insert_value);
    ngx_queue_init(&reg->sh->sessions);

    /*
     * Session ids count up from a random start below 2^46, so that they
     * are unique while the zone lives (the count cannot wrap) and unlikely
     * to repeat those of an earlier run in the logs.  They are the count
     * shifted left: even, because a worker gives its sessions odd ids of
     * its own until they say hello.
     */

    if (RAND_bytes((u_char *) &start, sizeof(uint64_t)) != 1) {
        start = (uint64_t) ngx_time() << 16;
    }

    reg->sh->next_session = start & 0x3fffffffffffULL;

    len = sizeof(" in tunnel_zone \"\"") + zone->shm.name.len;

    reg->shpool->log_ctx = ngx_slab_alloc(reg->shpool, len);
    if (reg->shpool->log_ctx == NULL) {
        return NGX_ERROR;
    }

    ngx_sprintf(reg->shpool->log_ctx, " in tunnel_zone \"%V\"%Z",
                &zone->shm.name);

    /* ngx_tunnel_registry_full() says it in words an operator can act on */
    reg->shpool->log_nomem = 0;

    return NGX_OK;
}


ngx_tunnel_shm_session_t *
ngx_tunnel_registry_session_add(ngx_shm_zone_t *zone,
    ngx_tunnel_session_info_t *info)
{
    ngx_tunnel_registry_t     *reg;
    ngx_tunnel_shm_session_t  *s;

    reg = zone->data;

    ngx_shmtx_lock(&reg->shpool->mutex);

    s = ngx_slab_calloc_locked(reg->shpool, sizeof(ngx_tunnel_shm_session_t));
    if (s == NULL) {
        ngx_shmtx_unlock(&reg->shpool->mutex);
        ngx_tunnel_registry_full(zone);
        return NULL;
    }

    s->id = ++reg->sh->next_session << 1;
    s->pid = ngx_pid;
    s->since = ngx_time();
    s->grace = info->grace;
    ngx_queue_init(&s->members);

    ngx_memcpy(s->hash, info->hash, NGX_TUNNEL_HASH_LEN);

    ngx_tunnel_registry_copy(s->account, &s->account_len,
                             NGX_TUNNEL_ACCOUNT_MAX, &info->account, 1);
    ngx_tunnel_registry_copy(s->instance, &s->instance_len,
                             NGX_TUNNEL_INSTANCE_MAX, &info->instance, 0);
    ngx_tunnel_registry_copy(s->addr, &s->addr_len,
                             NGX_TUNNEL_ADDR_MAX, &info->addr, 1);
    ngx_tunnel_registry_copy(s->client, &s->client_len,
                             NGX_TUNNEL_ACCOUNT_MAX, &info->client, 1);

    ngx_queue_insert_tail(&reg->sh->sessions, &s->queue);
    reg->sh->nsessions++;

    ngx_shmtx_unlock(&reg->shpool->mutex);

    ngx_log_debug2(NGX_LOG_DEBUG_CORE, ngx_cycle->log, 0,
                   "tunnel registry: session %016xL added, pid %P",
                   s->id, s->pid);

    return s;
}


void
ngx_tunnel_registry_session_remove(ngx_shm_zone_t *zone,
    ngx_tunnel_shm_session_t *s)
{
    ngx_tunnel_registry_t  *reg;

    reg = zone->data;

    ngx_log_debug1(NGX_LOG_DEBUG_CORE, ngx_cycle->log, 0,
                   "tunnel registry: session %016xL removed", s->id);

    ngx_shmtx_lock(&reg->shpool->mutex);

    ngx_tunnel_registry_session_remove_locked(reg, s);

    ngx_shmtx_unlock(&reg->shpool->mutex);
}


ngx_int_t
ngx_tunnel_registry_session_lose(ngx_shm_zone_t *zone,
    ngx_tunnel_shm_session_t *s)
{
    ngx_int_t               rc;
    ngx_tunnel_registry_t  *reg;

    reg = zone->data;

    ngx_shmtx_lock(&reg->shpool->mutex);

    rc = ngx_tunnel_registry_lose_locked(reg, s);

    ngx_shmtx_unlock(&reg->shpool->mutex);

    return rc;
}


/*
 * Members already taken over route nowhere and are freed now; the others
 * stay.  Its counters of open connections are those of a session that has
 * none (a dead worker's may be left as they were).
 */
static ngx_int_t
ngx_tunnel_registry_lose_locked(ngx_tunnel_registry_t *reg,
    ngx_tunnel_shm_session_t *s)
{
    ngx_uint_t            n;
    ngx_queue_t          *q, *next;
    ngx_tunnel_member_t  *m;

    n = 0;

    for (q = ngx_queue_head(&s->members);
         q != ngx_queue_sentinel(&s->members);
         q = next)
    {
        next = ngx_queue_next(q);
        m = ngx_queue_data(q, ngx_tunnel_member_t, session_link);

        if (m->entry == NULL) {
            ngx_tunnel_registry_unbind_locked(reg, m);
            continue;
        }

        m->conns = 0;
        n++;
    }

    if (n == 0 || s->grace == 0 || s->draining) {
        ngx_tunnel_registry_session_remove_locked(reg, s);
        return NGX_DECLINED;
    }

    s->lost = 1;
    s->lost_at = ngx_current_msec;
    s->lost_since = ngx_time();
    s->streams = 0;

    return NGX_OK;
}


static ngx_int_t
ngx_tunnel_registry_expired(ngx_tunnel_shm_session_t *s)
{
    return s->lost
           && (ngx_msec_int_t) (ngx_current_msec - s->lost_at)
              >= (ngx_msec_int_t) s->grace;
}


static void
ngx_tunnel_registry_session_remove_locked(ngx_tunnel_registry_t *reg,
    ngx_tunnel_shm_session_t *s)
{
    ngx_queue_t          *q;
    ngx_tunnel_member_t  *m;

    while (!ngx_queue_empty(&s->members)) {
        q = ngx_queue_head(&s->members);
        m = ngx_queue_data(q, ngx_tunnel_member_t, session_link);
        ngx_tunnel_registry_unbind_locked(reg, m);
    }

    ngx_queue_remove(&s->queue);
    reg->sh->nsessions--;

    ngx_slab_free_locked(reg->shpool, s);
}


ngx_uint_t
ngx_tunnel_registry_bind_name(ngx_shm_zone_t *zone,
    ngx_tunnel_shm_session_t *s, ngx_uint_t kind, ngx_str_t *name,
    ngx_str_t *domain, uint32_t tunnel_id, ngx_uint_t max_tunnels,
    ngx_pool_t *pool, ngx_tunnel_member_t **member)
{
    u_char                    *p;
    uint64_t                   replaced;
    ngx_uint_t                 i, k, n, reaped, code, lost;
    ngx_queue_t               *q;
    ngx_tunnel_entry_t        *e, *other;
    ngx_tunnel_member_t       *m, *pm;
    ngx_tunnel_registry_t     *reg;
    ngx_tunnel_registry_sh_t  *sh;

    if (kind != TUNNEL_KIND_HTTP && kind != TUNNEL_KIND_TLS) {
        return TUNNEL_E_KIND;
    }

    reg = zone->data;
    sh = reg->sh;
    reaped = 0;

    if (name->len == 0) {

        /* a random label: "<label>.<domain>", label filled in below */

        if (domain->len == 0
            || NGX_TUNNEL_LABEL_LEN + 1 + domain->len > NGX_TUNNEL_NAME_MAX)
        {
            return TUNNEL_E_NAME_INVALID;
        }

        p = ngx_pnalloc(pool, NGX_TUNNEL_LABEL_LEN + 1 + domain->len);
        if (p == NULL) {
            return TUNNEL_E_INTERNAL;
        }

        p[NGX_TUNNEL_LABEL_LEN] = '.';
        ngx_memcpy(p + NGX_TUNNEL_LABEL_LEN + 1, domain->data, domain->len);

        name->data = p;
        name->len = NGX_TUNNEL_LABEL_LEN + 1 + domain->len;

        for (i = 0; i < NGX_TUNNEL_LABEL_TRIES; i++) {

            if (ngx_tunnel_registry_label(p) != NGX_OK) {
                ngx_log_error(NGX_LOG_ALERT, ngx_cycle->log, 0,
                              "tunnel: RAND_bytes() failed");
                ngx_str_null(name);
                return TUNNEL_E_INTERNAL;
            }

            ngx_shmtx_lock(&reg->shpool->mutex);

            if (ngx_tunnel_registry_over_limit(reg, s, max_tunnels))
            {
                ngx_str_null(name);
                code = TUNNEL_E_LIMIT;
                goto failed;
            }

            /* another kind of tunnel may hold it: then it is not ours */
            if (ngx_tunnel_registry_find_name(sh, TUNNEL_KIND_HTTP, p,
                                              name->len)
                == NULL
                && ngx_tunnel_registry_find_name(sh, TUNNEL_KIND_TLS, p,
                                                 name->len)
                   == NULL)
            {
                goto add;
            }

            ngx_shmtx_unlock(&reg->shpool->mutex);
        }

        /* 36^10 names: this means a broken RAND_bytes() or a full domain */
        ngx_log_error(NGX_LOG_ALERT, ngx_cycle->log, 0,
                      "tunnel: %ui random names in a row were taken",
                      (ngx_uint_t) NGX_TUNNEL_LABEL_TRIES);
        ngx_str_null(name);
        return TUNNEL_E_INTERNAL;
    }

    ngx_shmtx_lock(&reg->shpool->mutex);

again:

    /* a name belongs to one token, whatever the kind of its tunnels */

    for (k = TUNNEL_KIND_HTTP; k <= TUNNEL_KIND_TLS; k++) {
        other = ngx_tunnel_registry_find_name(sh, k, name->data, name->len);

        if (other && ngx_memcmp(other->owner, s->hash, NGX_TUNNEL_HASH_LEN)
                     != 0)
        {
            /* unless the holder's worker is gone and has not been reaped */
            if (!reaped) {
                reaped = 1;

                if (ngx_tunnel_registry_reap_locked(reg, ngx_cycle->log)) {
                    goto again;
                }
            }

            code = TUNNEL_E_NAME_TAKEN;
            goto failed;
        }
    }

    e = ngx_tunnel_registry_find_name(sh, kind, name->data, name->len);

    if (e == NULL) {
        goto add;
    }

    for (q = ngx_queue_head(&e->members);
         q != ngx_queue_sentinel(&e->members);
         q = ngx_queue_next(q))
    {
        pm = ngx_queue_data(q, ngx_tunnel_member_t, link);

        if (pm->session == s) {
            code = TUNNEL_E_NAME_TAKEN;
            goto failed;
        }
    }

    /* joining a pool is one more tunnel, taking a name over is not */
    if (max_tunnels
        && !ngx_tunnel_registry_replaces(e, s)
        && ngx_tunnel_registry_over_limit(reg, s, max_tunnels))
    {
        code = TUNNEL_E_LIMIT;
        goto failed;
    }

    m = ngx_tunnel_registry_member_add(reg, s, e, tunnel_id);
    if (m == NULL) {
        goto full;
    }

    /* a reconnected client takes its names over; other instances pool */
    replaced = ngx_tunnel_registry_take_over(reg, e, m, &lost);
    n = e->nmembers;

    ngx_shmtx_unlock(&reg->shpool->mutex);

    if (replaced) {
        ngx_log_error(NGX_LOG_INFO, ngx_cycle->log, 0,
                      "tunnel: %s \"%V\" taken over by session %016xL "
                      "from session %016xL%s", ngx_tunnel_kind_names[kind],
                      name, s->id, replaced,
                      lost ? ", which was reconnecting" : "");

    } else {
        ngx_log_debug4(NGX_LOG_DEBUG_CORE, ngx_cycle->log, 0,
                       "tunnel registry: %s \"%V\" session %016xL joins a "
                       "pool of %ui", ngx_tunnel_kind_names[kind], name,
                       s->id, n - 1);
    }

    *member = m;

    return 0;

add:

    /* the mutex is held */

    if (ngx_tunnel_registry_over_limit(reg, s, max_tunnels))
    {
        ngx_str_null(name);
        code = TUNNEL_E_LIMIT;
        goto failed;
    }

    e = ngx_tunnel_registry_entry_add(reg, s, kind, name, 0);
    if (e == NULL) {
        goto full;
    }

    m = ngx_tunnel_registry_member_add(reg, s, e, tunnel_id);
    if (m == NULL) {
        ngx_rbtree_delete(&sh->names, &e->node);
        ngx_slab_free_locked(reg->shpool, e);
        goto full;
    }

    ngx_shmtx_unlock(&reg->shpool->mutex);

    ngx_log_debug3(NGX_LOG_DEBUG_CORE, ngx_cycle->log, 0,
                   "tunnel registry: %s \"%V\" bound by session %016xL",
                   ngx_tunnel_kind_names[kind], name, s->id);

    *member = m;

    return 0;

full:

    ngx_shmtx_unlock(&reg->shpool->mutex);
    ngx_tunnel_registry_full(zone);

    return TUNNEL_E_INTERNAL;

failed:

    ngx_shmtx_unlock(&reg->shpool->mutex);

    return code;
}


ngx_uint_t
ngx_tunnel_registry_bind_port(ngx_shm_zone_t *zone,
    ngx_tunnel_shm_session_t *s, in_port_t want, in_port_t lo, in_port_t hi,
    ngx_array_t *busy, uint32_t tunnel_id, ngx_uint_t max_tunnels,
    ngx_tunnel_member_t **member)
{
    in_port_t                 port, *bp;
    uint64_t                  replaced;
    ngx_uint_t                i, j, n, reaped, code, lost;
    ngx_queue_t              *q;
    ngx_tunnel_entry_t       *e;
    ngx_tunnel_member_t      *m, *pm;
    ngx_tunnel_registry_t    *reg;
    ngx_tunnel_registry_sh_t  *sh;

    reg = zone->data;
    sh = reg->sh;
    reaped = 0;
    port = 0;

    if (want == 0 && (lo == 0 || lo > hi)) {
        return TUNNEL_E_PORTS_FULL;
    }

    ngx_shmtx_lock(&reg->shpool->mutex);

again:

    if (want) {
        e = ngx_tunnel_registry_find_port(sh, want);

        if (e == NULL) {
            port = want;
            goto add;
        }

        /*
         * tcp has no pools: only the same client may take a port over, or
         * the same token one kept for its reconnecting client
         */

        code = 0;

        if (ngx_memcmp(e->owner, s->hash, NGX_TUNNEL_HASH_LEN) != 0) {
            code = TUNNEL_E_PORT_TAKEN;

        } else {
            for (q = ngx_queue_head(&e->members);
                 q != ngx_queue_sentinel(&e->members);
                 q = ngx_queue_next(q))
            {
                pm = ngx_queue_data(q, ngx_tunnel_member_t, link);

                if (pm->session == s
                    || (!pm->session->lost
                        && ngx_tunnel_registry_same_instance(pm->session, s)
                           != NGX_OK))
                {
                    code = TUNNEL_E_PORT_TAKEN;
                    break;
                }
            }
        }

        if (code) {
            if (!reaped) {
                reaped = 1;

                if (ngx_tunnel_registry_reap_locked(reg, ngx_cycle->log)) {
                    goto again;
                }
            }

            goto failed;
        }

        m = ngx_tunnel_registry_member_add(reg, s, e, tunnel_id);
        if (m == NULL) {
            goto full;
        }

        replaced = ngx_tunnel_registry_take_over(reg, e, m, &lost);

        ngx_shmtx_unlock(&reg->shpool->mutex);

        ngx_log_error(NGX_LOG_INFO, ngx_cycle->log, 0,
                      "tunnel: tcp port %d taken over by session %016xL "
                      "from session %016xL%s", (int) want, s->id, replaced,
                      lost ? ", which was reconnecting" : "");

        *member = m;

        return 0;
    }

    /*
     * A cursor shared by the workers walks the range, so that a port just
     * given up is the last to be given again: a public client that still
     * knows it does not reach someone else's tunnel at once.
     */

    n = (ngx_uint_t) hi - lo + 1;
    port = sh->port_cursor;

    if (port < lo || port > hi) {
        port = lo;
    }

    for (i = 0; i < n; i++) {

        if (ngx_tunnel_registry_find_port(sh, port) == NULL) {

            bp = busy ? busy->elts : NULL;

            for (j = 0; busy && j < busy->nelts; j++) {
                if (bp[j] == port) {
                    break;
                }
            }

            if (busy == NULL || j == busy->nelts) {
                sh->port_cursor = (port == hi) ? lo : port + 1;
                goto add;
            }
        }

        port = (port == hi) ? lo : port + 1;
    }

    if (!reaped) {
        reaped = 1;

        if (ngx_tunnel_registry_reap_locked(reg, ngx_cycle->log)) {
            goto again;
        }
    }

    code = TUNNEL_E_PORTS_FULL;
    goto failed;

add:

    /* a port taken over (above) is no more tunnels than before */
    if (ngx_tunnel_registry_over_limit(reg, s, max_tunnels))
    {
        code = TUNNEL_E_LIMIT;
        goto failed;
    }

    e = ngx_tunnel_registry_entry_add(reg, s, TUNNEL_KIND_TCP, NULL, port);
    if (e == NULL) {
        goto full;
    }

    m = ngx_tunnel_registry_member_add(reg, s, e, tunnel_id);
    if (m == NULL) {
        ngx_rbtree_delete(&sh->ports, &e->node);
        ngx_slab_free_locked(reg->shpool, e);
        goto full;
    }

    ngx_shmtx_unlock(&reg->shpool->mutex);

    ngx_log_debug2(NGX_LOG_DEBUG_CORE, ngx_cycle->log, 0,
                   "tunnel registry: tcp port %d bound by session %016xL",
                   (int) port, s->id);

    *member = m;

    return 0;

full:

    ngx_shmtx_unlock(&reg->shpool->mutex);
    ngx_tunnel_registry_full(zone);

    return TUNNEL_E_INTERNAL;

failed:

    ngx_shmtx_unlock(&reg->shpool->mutex);

    return code;
}


/*
 * The tunnels a token holds, as far as its limit goes: every binding that
 * still routes, over all the token's sessions but draining ones, and those
 * kept for a reconnecting client (a client that drops its connection again
 * and again does not hold more names each time, see over_limit()).  A
 * binding that a newer session of the same client took over (detached) no
 * longer counts, the newer one does: so however many sessions a client
 * opens with one instance id, they share the limit.
 */
static ngx_uint_t
ngx_tunnel_registry_token_tunnels(ngx_tunnel_registry_t *reg,
    ngx_tunnel_shm_session_t *s)
{
    ngx_uint_t                 n;
    ngx_queue_t               *q, *mq;
    ngx_tunnel_member_t       *m;
    ngx_tunnel_shm_session_t  *o;

    n = 0;

    for (q = ngx_queue_head(&reg->sh->sessions);
         q != ngx_queue_sentinel(&reg->sh->sessions);
         q = ngx_queue_next(q))
    {
        o = ngx_queue_data(q, ngx_tunnel_shm_session_t, queue);

        if (o != s
            && (o->draining
                || ngx_memcmp(o->hash, s->hash, NGX_TUNNEL_HASH_LEN) != 0))
        {
            continue;
        }

        for (mq = ngx_queue_head(&o->members);
             mq != ngx_queue_sentinel(&o->members);
             mq = ngx_queue_next(mq))
        {
            m = ngx_queue_data(mq, ngx_tunnel_member_t, session_link);

            if (m->entry) {
                n++;
            }
        }
    }

    return n;
}


/*
 * Whether one tunnel more is beyond the token's limit (0: none).  Names
 * kept for a reconnecting client of the token count, unless the room is
 * needed: a client of the token binding other names is back, and they give
 * way to it.
 */
static ngx_uint_t
ngx_tunnel_registry_over_limit(ngx_tunnel_registry_t *reg,
    ngx_tunnel_shm_session_t *s, ngx_uint_t max)
{
    ngx_uint_t                 n;
    ngx_queue_t               *q, *next;
    ngx_tunnel_shm_session_t  *o;

    if (max == 0 || ngx_tunnel_registry_token_tunnels(reg, s) < max) {
        return 0;
    }

    n = 0;

    for (q = ngx_queue_head(&reg->sh->sessions);
         q != ngx_queue_sentinel(&reg->sh->sessions);
         q = next)
    {
        next = ngx_queue_next(q);
        o = ngx_queue_data(q, ngx_tunnel_shm_session_t, queue);

        if (o->lost && ngx_memcmp(o->hash, s->hash, NGX_TUNNEL_HASH_LEN) == 0)
        {
            ngx_tunnel_registry_session_remove_locked(reg, o);
            n++;
        }
    }

    return n == 0 || ngx_tunnel_registry_token_tunnels(reg, s) >= max;
}


/* a bind of "e" by "s" replaces a binding of the same client: no more
 * tunnels than before */
static ngx_uint_t
ngx_tunnel_registry_replaces(ngx_tunnel_entry_t *e,
    ngx_tunnel_shm_session_t *s)
{
    ngx_queue_t          *q;
    ngx_tunnel_member_t  *pm;

    for (q = ngx_queue_head(&e->members);
         q != ngx_queue_sentinel(&e->members);
         q = ngx_queue_next(q))
    {
        pm = ngx_queue_data(q, ngx_tunnel_member_t, link);

        if (pm->session != s
            && (pm->session->lost
                || ngx_tunnel_registry_same_instance(pm->session, s)
                   == NGX_OK))
        {
            return 1;
        }
    }

    return 0;
}


ngx_uint_t
ngx_tunnel_registry_token_streams(ngx_shm_zone_t *zone,
    ngx_tunnel_shm_session_t *s)
{
    ngx_uint_t                 n;
    ngx_queue_t               *q;
    ngx_tunnel_shm_session_t  *o;
    ngx_tunnel_registry_t     *reg;

    reg = zone->data;
    n = 0;

    ngx_shmtx_lock(&reg->shpool->mutex);

    for (q = ngx_queue_head(&reg->sh->sessions);
         q != ngx_queue_sentinel(&reg->sh->sessions);
         q = ngx_queue_next(q))
    {
        o = ngx_queue_data(q, ngx_tunnel_shm_session_t, queue);

        if (ngx_memcmp(o->hash, s->hash, NGX_TUNNEL_HASH_LEN) == 0) {
            n += o->streams;
        }
    }

    ngx_shmtx_unlock(&reg->shpool->mutex);

    return n;
}


void
ngx_tunnel_registry_unbind(ngx_shm_zone_t *zone, ngx_tunnel_member_t *m)
{
    ngx_tunnel_registry_t  *reg;

    reg = zone->data;

    ngx_log_debug2(NGX_LOG_DEBUG_CORE, ngx_cycle->log, 0,
                   "tunnel registry: session %016xL unbinds tunnel %uD",
                   m->session->id, m->tunnel_id);

    ngx_shmtx_lock(&reg->shpool->mutex);

    ngx_tunnel_registry_unbind_locked(reg, m);

    ngx_shmtx_unlock(&reg->shpool->mutex);
}


static void
ngx_tunnel_registry_unbind_locked(ngx_tunnel_registry_t *reg,
    ngx_tunnel_member_t *m)
{
    ngx_tunnel_entry_t  *e;

    e = m->entry;

    if (e) {
        ngx_tunnel_registry_detach(reg, m);

        if (e->nmembers == 0) {
            ngx_rbtree_delete(e->kind == TUNNEL_KIND_TCP ? &reg->sh->ports
                                                         : &reg->sh->names,
                              &e->node);
            ngx_slab_free_locked(reg->shpool, e);
        }
    }

    ngx_queue_remove(&m->session_link);
    m->session->tunnels--;

    if (m->url) {
        ngx_slab_free_locked(reg->shpool, m->url);
    }

    ngx_slab_free_locked(reg->shpool, m);
}


void
ngx_tunnel_registry_set_url(ngx_shm_zone_t *zone, ngx_tunnel_member_t *m,
    ngx_str_t *url)
{
    u_char                 *p;
    size_t                  len;
    ngx_tunnel_registry_t  *reg;

    reg = zone->data;
    len = ngx_min(url->len, NGX_TUNNEL_URL_MAX);

    if (len == 0) {
        return;
    }

    ngx_shmtx_lock(&reg->shpool->mutex);

    p = ngx_slab_alloc_locked(reg->shpool, len);

    if (p) {
        if (m->url) {
            ngx_slab_free_locked(reg->shpool, m->url);
        }

        m->url = ngx_cpymem(p, url->data, len) - len;
        m->url_len = len;
    }

    ngx_shmtx_unlock(&reg->shpool->mutex);

    if (p == NULL) {
        ngx_tunnel_registry_full(zone);
    }
}


ngx_int_t
ngx_tunnel_registry_route(ngx_shm_zone_t *zone, ngx_uint_t kind,
    ngx_str_t *name, in_port_t port, ngx_tunnel_route_t *route)
{
    ngx_int_t                  rc;
    ngx_uint_t                 i, n, start, dead;
    ngx_queue_t               *q;
    ngx_tunnel_entry_t        *e;
    ngx_tunnel_member_t       *m, *pick, *spare, *lost;
    ngx_tunnel_registry_t     *reg;
    ngx_tunnel_shm_session_t  *s;

    reg = zone->data;

    ngx_shmtx_lock(&reg->shpool->mutex);

    if (kind == TUNNEL_KIND_TCP) {
        e = ngx_tunnel_registry_find_port(reg->sh, port);

    } else {
        e = ngx_tunnel_registry_find_name(reg->sh, kind, name->data,
                                          name->len);
    }

    if (e == NULL || e->nmembers == 0) {
        ngx_shmtx_unlock(&reg->shpool->mutex);
        return NGX_DECLINED;
    }

    /* from the member after the last one picked, once round the pool */

    n = e->nmembers;
    start = e->rr % n;

    q = ngx_queue_head(&e->members);

    for (i = 0; i < start; i++) {
        q = ngx_queue_next(q);
    }

    pick = NULL;
    spare = NULL;
    lost = NULL;
    dead = 0;

    for (i = 0; i < n; i++) {

        if (q == ngx_queue_sentinel(&e->members)) {
            q = ngx_queue_head(&e->members);
        }

        m = ngx_queue_data(q, ngx_tunnel_member_t, link);
        q = ngx_queue_next(q);

        /* kept for a client that is reconnecting: the latest to go says */
        if (m->session->lost) {
            if (!ngx_tunnel_registry_expired(m->session)
                && (lost == NULL
                    || (ngx_msec_int_t) (m->session->lost_at
                                         - lost->session->lost_at) > 0))
            {
                lost = m;
            }

            continue;
        }

        if (ngx_tunnel_registry_alive(m->session->pid) != NGX_OK) {
            dead = 1;
            continue;
        }

        /* a draining session serves only when no other can */
        if (m->session->draining) {
            if (spare == NULL) {
                spare = m;
                e->rr = start + i + 1;
            }

            continue;
        }

        pick = m;
        e->rr = start + i + 1;
        break;
    }

    if (pick == NULL) {
        pick = spare;
    }

    if (pick == NULL) {
        if (lost) {
            /* another worker's clock may have been read a bit later */
            s = lost->session;
            route->lost = ngx_max((ngx_msec_int_t) (ngx_current_msec
                                                    - s->lost_at), 0);
            route->grace_left = s->grace - route->lost;
            rc = NGX_AGAIN;

        } else {
            /* only a grace that has just ended: as good as gone */
            rc = dead ? NGX_BUSY : NGX_DECLINED;
        }

        ngx_shmtx_unlock(&reg->shpool->mutex);
        return rc;
    }

    s = pick->session;

    route->pid = s->pid;
    route->session_id = s->id;
    route->tunnel_id = pick->tunnel_id;
    route->kind = pick->kind;
    route->nmembers = n;
    route->member = pick;
    route->addr_len = s->addr_len;
    ngx_memcpy(route->addr, s->addr, s->addr_len);

    ngx_shmtx_unlock(&reg->shpool->mutex);

    return NGX_OK;
}


ngx_uint_t
ngx_tunnel_registry_reap(ngx_shm_zone_t *zone, ngx_log_t *log)
{
    ngx_uint_t              n;
    ngx_tunnel_registry_t  *reg;

    reg = zone->data;

    ngx_shmtx_lock(&reg->shpool->mutex);

    n = ngx_tunnel_registry_reap_locked(reg, log);

    ngx_shmtx_unlock(&reg->shpool->mutex);

    return n;
}


/*
 * A worker that exits normally removes its sessions itself; one that
 * crashed leaves them here.  "kill(pid, 0)" tells whether it is still
 * there; it cannot tell a pid that another process took in the meantime,
 * whose sessions then stay until that process is gone too.  A crash broke
 * the sessions' connections: their names are kept for their grace, as for
 * any connection that breaks.  Lost sessions belong to no worker: they go
 * when their grace ends.
 */
static ngx_uint_t
ngx_tunnel_registry_reap_locked(ngx_tunnel_registry_t *reg, ngx_log_t *log)
{
    uint64_t                   id;
    ngx_pid_t                  pid;
    ngx_uint_t                 n, tunnels;
    ngx_queue_t               *q, *next;
    ngx_tunnel_shm_session_t  *s;

    n = 0;

    for (q = ngx_queue_head(&reg->sh->sessions);
         q != ngx_queue_sentinel(&reg->sh->sessions);
         q = next)
    {
        next = ngx_queue_next(q);
        s = ngx_queue_data(q, ngx_tunnel_shm_session_t, queue);

        if (s->lost) {
            if (!ngx_tunnel_registry_expired(s)) {
                continue;
            }

            id = s->id;
            tunnels = s->tunnels;

            ngx_tunnel_registry_session_remove_locked(reg, s);
            n++;

            ngx_log_error(NGX_LOG_INFO, log, 0,
                          "tunnel: session %016xL did not come back within "
                          "tunnel_reconnect_grace, %ui tunnels released",
                          id, tunnels);
            continue;
        }

        if (ngx_tunnel_registry_alive(s->pid) == NGX_OK) {
            continue;
        }

        n++;
        id = s->id;
        pid = s->pid;

        if (ngx_tunnel_registry_lose_locked(reg, s) == NGX_OK) {
            ngx_log_error(NGX_LOG_INFO, log, 0,
                          "tunnel: reaped session %016xL of exited worker "
                          "%P, its %ui tunnels kept for %M ms for its "
                          "client to reconnect", id, pid, s->tunnels,
                          s->grace);
            continue;
        }

        /* "s" is gone */
        ngx_log_error(NGX_LOG_INFO, log, 0,
                      "tunnel: reaped session %016xL of exited worker %P",
                      id, pid);
    }

    return n;
}


ngx_chain_t *
ngx_tunnel_registry_status(ngx_shm_zone_t *zone, ngx_pool_t *pool,
    ngx_uint_t format)
{
    u_char                       *p;
    ngx_int_t                     rc;
    ngx_uint_t                    ns, nt, i;
    ngx_queue_t                  *q, *mq;
    ngx_tunnel_member_t          *m;
    ngx_tunnel_writer_t           w;
    ngx_tunnel_registry_t        *reg;
    ngx_tunnel_shm_session_t     *s;
    ngx_tunnel_status_tunnel_t   *st;
    ngx_tunnel_status_session_t  *ss;

    reg = zone->data;

    /* a copy is taken under the mutex, the text is made without it */

    ngx_shmtx_lock(&reg->shpool->mutex);

    ns = 0;
    nt = 0;

    for (q = ngx_queue_head(&reg->sh->sessions);
         q != ngx_queue_sentinel(&reg->sh->sessions);
         q = ngx_queue_next(q))
    {
        s = ngx_queue_data(q, ngx_tunnel_shm_session_t, queue);
        ns++;

        for (mq = ngx_queue_head(&s->members);
             mq != ngx_queue_sentinel(&s->members);
             mq = ngx_queue_next(mq))
        {
            nt++;
        }
    }

    ss = ngx_palloc(pool, (ns ? ns : 1) * sizeof(ngx_tunnel_status_session_t));
    st = ngx_palloc(pool, (nt ? nt : 1) * sizeof(ngx_tunnel_status_tunnel_t));

    if (ss == NULL || st == NULL) {
        goto failed;
    }

    ns = 0;
    nt = 0;

    for (q = ngx_queue_head(&reg->sh->sessions);
         q != ngx_queue_sentinel(&reg->sh->sessions);
         q = ngx_queue_next(q))
    {
        s = ngx_queue_data(q, ngx_tunnel_shm_session_t, queue);

        p = ngx_pnalloc(pool, s->account_len + s->client_len + s->addr_len);
        if (p == NULL) {
            goto failed;
        }

        ss[ns].id = s->id;
        ss[ns].pid = s->pid;
        ss[ns].since = s->since;
        ss[ns].draining = s->draining;
        ss[ns].lost = s->lost;
        ss[ns].lost_since = s->lost_since;
        ss[ns].streams = s->streams;
        ss[ns].streams_total = s->streams_total;
        ss[ns].bytes_in = s->bytes_in;
        ss[ns].bytes_out = s->bytes_out;

        ss[ns].account.data = p;
        ss[ns].account.len = s->account_len;
        p = ngx_cpymem(p, s->account, s->account_len);

        ss[ns].client.data = p;
        ss[ns].client.len = s->client_len;
        p = ngx_cpymem(p, s->client, s->client_len);

        ss[ns].addr.data = p;
        ss[ns].addr.len = s->addr_len;
        ngx_memcpy(p, s->addr, s->addr_len);

        ss[ns].first = nt;
        ss[ns].ntunnels = 0;

        for (mq = ngx_queue_head(&s->members);
             mq != ngx_queue_sentinel(&s->members);
             mq = ngx_queue_next(mq))
        {
            m = ngx_queue_data(mq, ngx_tunnel_member_t, session_link);

            st[nt].id = m->tunnel_id;
            st[nt].kind = m->kind;
            st[nt].since = m->since;
            st[nt].port = m->port;
            st[nt].replaced = (m->entry == NULL);
            st[nt].state = (m->entry == NULL)
                           ? NGX_TUNNEL_STATE_REPLACED
                           : s->lost ? NGX_TUNNEL_STATE_RECONNECTING
                           : s->draining ? NGX_TUNNEL_STATE_DRAINING
                           : NGX_TUNNEL_STATE_ONLINE;
            st[nt].conns = m->conns;
            st[nt].conns_total = m->conns_total;
            st[nt].bytes_in = m->bytes_in;
            st[nt].bytes_out = m->bytes_out;
            st[nt].account = ss[ns].account;

            if (m->kind == TUNNEL_KIND_TCP) {
                p = ngx_pnalloc(pool, NGX_INT_T_LEN);
                if (p == NULL) {
                    goto failed;
                }

                st[nt].name.data = p;
                st[nt].name.len = ngx_sprintf(p, "%d", (int) m->port) - p;

            } else {
                st[nt].name.data = ngx_pnalloc(pool, m->len);
                if (st[nt].name.data == NULL) {
                    goto failed;
                }

                st[nt].name.len = m->len;
                ngx_memcpy(st[nt].name.data, m->name, m->len);
            }

            st[nt].url.len = m->url_len;
            st[nt].url.data = NULL;

            if (m->url_len) {
                st[nt].url.data = ngx_pnalloc(pool, m->url_len);
                if (st[nt].url.data == NULL) {
                    goto failed;
                }

                ngx_memcpy(st[nt].url.data, m->url, m->url_len);
            }

            nt++;
            ss[ns].ntunnels++;
        }

        ns++;
    }

    ngx_shmtx_unlock(&reg->shpool->mutex);

    ngx_memzero(&w, sizeof(ngx_tunnel_writer_t));
    w.pool = pool;
    w.last = &w.out;

    if (format == NGX_TUNNEL_STATUS_PROMETHEUS) {
        rc = ngx_tunnel_status_prometheus(&w, ss, ns, st, nt);

    } else {
        for (i = 0; i < ns; i++) {
            if (ngx_tunnel_json_str(pool, &ss[i].account) != NGX_OK
                || ngx_tunnel_json_str(pool, &ss[i].client) != NGX_OK
                || ngx_tunnel_json_str(pool, &ss[i].addr) != NGX_OK)
            {
                return NULL;
            }
        }

        for (i = 0; i < nt; i++) {
            if (ngx_tunnel_json_str(pool, &st[i].name) != NGX_OK
                || ngx_tunnel_json_str(pool, &st[i].url) != NGX_OK)
            {
                return NULL;
            }
        }

        rc = ngx_tunnel_status_json(&w, ss, ns, st);
    }

    if (rc != NGX_OK) {
        return NULL;
    }

    return w.out;

failed:

    ngx_shmtx_unlock(&reg->shpool->mutex);

    return NULL;
}


static ngx_int_t
ngx_tunnel_status_json(ngx_tunnel_writer_t *w,
    ngx_tunnel_status_session_t *ss, ngx_uint_t ns,
    ngx_tunnel_status_tunnel_t *st)
{
    ngx_uint_t                   i, j;
    ngx_tunnel_status_tunnel_t  *t;

    if (ngx_tunnel_write(w, 0, "{\"sessions\":[") != NGX_OK) {
        return NGX_ERROR;
    }

    for (i = 0; i < ns; i++) {

        if (ngx_tunnel_write(w, ss[i].account.len + ss[i].client.len
                                + ss[i].addr.len,
                             "%s{\"id\":\"%016xL\",\"pid\":%P,"
                             "\"account\":\"%V\",\"client\":\"%V\","
                             "\"addr\":\"%V\",\"since\":%T,"
                             "\"streams\":%uA,\"streams_total\":%uA,"
                             "\"bytes_in\":%uA,\"bytes_out\":%uA,"
                             "\"draining\":%s,\"state\":\"%s\",",
                             i ? "," : "", ss[i].id, ss[i].pid,
                             &ss[i].account, &ss[i].client, &ss[i].addr,
                             ss[i].since, ss[i].streams, ss[i].streams_total,
                             ss[i].bytes_in, ss[i].bytes_out,
                             ss[i].draining ? "true" : "false",
                             ss[i].lost ? "reconnecting"
                             : ss[i].draining ? "draining" : "online")
            != NGX_OK)
        {
            return NGX_ERROR;
        }

        /* when its client lost its connection */
        if ((ss[i].lost
             ? ngx_tunnel_write(w, 0, "\"lost_since\":%T,\"tunnels\":[",
                                ss[i].lost_since)
             : ngx_tunnel_write(w, 0, "\"lost_since\":null,\"tunnels\":["))
            != NGX_OK)
        {
            return NGX_ERROR;
        }

        for (j = 0; j < ss[i].ntunnels; j++) {
            t = &st[ss[i].first + j];

            if (ngx_tunnel_write(w, 0,
                                 "%s{\"id\":%uD,\"kind\":\"%s\",",
                                 j ? "," : "", t->id,
                                 ngx_tunnel_kind_names[t->kind])
                != NGX_OK)
            {
                return NGX_ERROR;
            }

            if (t->kind == TUNNEL_KIND_TCP) {
                if (ngx_tunnel_write(w, 0, "\"name\":null,\"port\":%d,",
                                     (int) t->port)
                    != NGX_OK)
                {
                    return NGX_ERROR;
                }

            } else if (ngx_tunnel_write(w, t->name.len,
                                        "\"name\":\"%V\",\"port\":null,",
                                        &t->name)
                       != NGX_OK)
            {
                return NGX_ERROR;
            }

            if ((t->url.data
                 ? ngx_tunnel_write(w, t->url.len, "\"url\":\"%V\",",
                                    &t->url)
                 : ngx_tunnel_write(w, 0, "\"url\":null,"))
                != NGX_OK)
            {
                return NGX_ERROR;
            }

            if (ngx_tunnel_write(w, 0,
                                 "\"since\":%T,\"conns\":%uA,"
                                 "\"conns_total\":%uA,\"bytes_in\":%uA,"
                                 "\"bytes_out\":%uA,\"replaced\":%s,"
                                 "\"state\":\"%s\"}",
                                 t->since, t->conns, t->conns_total,
                                 t->bytes_in, t->bytes_out,
                                 t->replaced ? "true" : "false",
                                 ngx_tunnel_state_names[t->state])
                != NGX_OK)
            {
                return NGX_ERROR;
            }
        }

        if (ngx_tunnel_write(w, 0, "]}") != NGX_OK) {
            return NGX_ERROR;
        }
    }

    return ngx_tunnel_write(w, 0, "]}\n");
}


/*
 * Prometheus wants one series per set of labels, so sessions are summed by
 * account and members by tunnel.  The sums are those of the sessions there
 * now: a "_total" goes down when a session leaves, which Prometheus takes
 * for a counter reset.
 */
static ngx_int_t
ngx_tunnel_status_prometheus(ngx_tunnel_writer_t *w,
    ngx_tunnel_status_session_t *ss, ngx_uint_t ns,
    ngx_tunnel_status_tunnel_t *st, ngx_uint_t nt)
{
    ngx_uint_t                    i, na, ng, k, tunnels[TUNNEL_KIND_TCP + 1];
    ngx_tunnel_status_group_t    *g, *gs;
    ngx_tunnel_status_account_t  *a, *as;

    as = ngx_pcalloc(w->pool, (ns ? ns : 1)
                              * sizeof(ngx_tunnel_status_account_t));
    gs = ngx_pcalloc(w->pool, (nt ? nt : 1)
                              * sizeof(ngx_tunnel_status_group_t));

    if (as == NULL || gs == NULL) {
        return NGX_ERROR;
    }

    ngx_qsort(ss, ns, sizeof(ngx_tunnel_status_session_t),
              ngx_tunnel_status_cmp_session);

    na = 0;

    for (i = 0; i < ns; i++) {
        if (na == 0
            || ngx_memn2cmp(as[na - 1].account.data, ss[i].account.data,
                            as[na - 1].account.len, ss[i].account.len)
               != 0)
        {
            as[na++].account = ss[i].account;
        }

        a = &as[na - 1];
        a->sessions++;
        a->streams += ss[i].streams;
        a->streams_total += ss[i].streams_total;
        a->bytes_in += ss[i].bytes_in;
        a->bytes_out += ss[i].bytes_out;
    }

    ngx_qsort(st, nt, sizeof(ngx_tunnel_status_tunnel_t),
              ngx_tunnel_status_cmp_tunnel);

    ng = 0;
    ngx_memzero(tunnels, sizeof(tunnels));

    for (i = 0; i < nt; i++) {
        if (ng == 0
            || ngx_tunnel_status_cmp_tunnel(&st[i - 1], &st[i]) != 0)
        {
            gs[ng].name = st[i].name;
            gs[ng].account = st[i].account;
            gs[ng].kind = st[i].kind;
            gs[ng].url = st[i].url;
            gs[ng].state = st[i].state;
            ng++;
        }

        g = &gs[ng - 1];

        if (st[i].state < g->state
            || (st[i].state == g->state && g->url.len == 0))
        {
            g->state = st[i].state;
            g->url = st[i].url;
        }

        /* members that serve: not those taken over or reconnecting */
        if (st[i].state <= NGX_TUNNEL_STATE_DRAINING) {
            if (g->members++ == 0) {
                tunnels[g->kind]++;
            }
        }

        g->conns += st[i].conns;
        g->conns_total += st[i].conns_total;
        g->bytes_in += st[i].bytes_in;
        g->bytes_out += st[i].bytes_out;
    }

    for (i = 0; i < na; i++) {
        if (ngx_tunnel_prometheus_str(w->pool, &as[i].account) != NGX_OK) {
            return NGX_ERROR;
        }
    }

    for (i = 0; i < ng; i++) {
        if (ngx_tunnel_prometheus_str(w->pool, &gs[i].name) != NGX_OK
            || ngx_tunnel_prometheus_str(w->pool, &gs[i].account) != NGX_OK
            || ngx_tunnel_prometheus_str(w->pool, &gs[i].url) != NGX_OK)
        {
            return NGX_ERROR;
        }
    }

    if (ngx_tunnel_write(w, 0,
            "# HELP ngx_tunnel_sessions Client sessions registered.\n"
            "# TYPE ngx_tunnel_sessions gauge\n"
            "ngx_tunnel_sessions %ui\n"
            "# HELP ngx_tunnel_tunnels Names and ports bound, by kind.\n"
            "# TYPE ngx_tunnel_tunnels gauge\n", ns)
        != NGX_OK)
    {
        return NGX_ERROR;
    }

    for (k = TUNNEL_KIND_HTTP; k <= TUNNEL_KIND_TCP; k++) {
        if (ngx_tunnel_write(w, 0, "ngx_tunnel_tunnels{kind=\"%s\"} %ui\n",
                             ngx_tunnel_kind_names[k], tunnels[k])
            != NGX_OK)
        {
            return NGX_ERROR;
        }
    }

    /* by account */

    if (ngx_tunnel_write(w, 0,
            "# HELP ngx_tunnel_account_sessions Client sessions, by "
            "account.\n"
            "# TYPE ngx_tunnel_account_sessions gauge\n")
        != NGX_OK)
    {
        return NGX_ERROR;
    }

    for (i = 0; i < na; i++) {
        if (ngx_tunnel_write(w, as[i].account.len,
                             "ngx_tunnel_account_sessions{account=\"%V\"} "
                             "%ui\n", &as[i].account, as[i].sessions)
            != NGX_OK)
        {
            return NGX_ERROR;
        }
    }

    if (ngx_tunnel_write(w, 0,
            "# HELP ngx_tunnel_streams Streams open, by account.\n"
            "# TYPE ngx_tunnel_streams gauge\n")
        != NGX_OK)
    {
        return NGX_ERROR;
    }

    for (i = 0; i < na; i++) {
        if (ngx_tunnel_write(w, as[i].account.len,
                             "ngx_tunnel_streams{account=\"%V\"} %uA\n",
                             &as[i].account, as[i].streams)
            != NGX_OK)
        {
            return NGX_ERROR;
        }
    }

    if (ngx_tunnel_write(w, 0,
            "# HELP ngx_tunnel_streams_total Streams opened by the "
            "account's sessions.\n"
            "# TYPE ngx_tunnel_streams_total counter\n")
        != NGX_OK)
    {
        return NGX_ERROR;
    }

    for (i = 0; i < na; i++) {
        if (ngx_tunnel_write(w, as[i].account.len,
                             "ngx_tunnel_streams_total{account=\"%V\"} %uA\n",
                             &as[i].account, as[i].streams_total)
            != NGX_OK)
        {
            return NGX_ERROR;
        }
    }

    if (ngx_tunnel_write(w, 0,
            "# HELP ngx_tunnel_account_bytes_total Bytes carried by the "
            "account's sessions (in: from public peers).\n"
            "# TYPE ngx_tunnel_account_bytes_total counter\n")
        != NGX_OK)
    {
        return NGX_ERROR;
    }

    for (i = 0; i < na; i++) {
        if (ngx_tunnel_write(w, 2 * as[i].account.len,
                             "ngx_tunnel_account_bytes_total{account=\"%V\","
                             "direction=\"in\"} %uA\n"
                             "ngx_tunnel_account_bytes_total{account=\"%V\","
                             "direction=\"out\"} %uA\n",
                             &as[i].account, as[i].bytes_in,
                             &as[i].account, as[i].bytes_out)
            != NGX_OK)
        {
            return NGX_ERROR;
        }
    }

    /* by tunnel: the name, or the port of a tcp tunnel */

    if (ngx_tunnel_write(w, 0,
            "# HELP ngx_tunnel_info A tunnel's public URL and state "
            "(online, draining, reconnecting, replaced), as labels.\n"
            "# TYPE ngx_tunnel_info gauge\n")
        != NGX_OK)
    {
        return NGX_ERROR;
    }

    for (i = 0; i < ng; i++) {
        if (ngx_tunnel_write(w, gs[i].name.len + gs[i].account.len
                                + gs[i].url.len,
                             "ngx_tunnel_info{tunnel=\"%V\",kind=\"%s\","
                             "account=\"%V\",url=\"%V\",state=\"%s\"} 1\n",
                             &gs[i].name, ngx_tunnel_kind_names[gs[i].kind],
                             &gs[i].account, &gs[i].url,
                             ngx_tunnel_state_names[gs[i].state])
            != NGX_OK)
        {
            return NGX_ERROR;
        }
    }

    if (ngx_tunnel_write(w, 0,
            "# HELP ngx_tunnel_members Sessions serving a tunnel (more than "
            "one: a pool).\n"
            "# TYPE ngx_tunnel_members gauge\n")
        != NGX_OK)
    {
        return NGX_ERROR;
    }

    for (i = 0; i < ng; i++) {
        if (ngx_tunnel_write(w, gs[i].name.len + gs[i].account.len,
                             "ngx_tunnel_members{tunnel=\"%V\",kind=\"%s\","
                             "account=\"%V\"} %ui\n",
                             &gs[i].name, ngx_tunnel_kind_names[gs[i].kind],
                             &gs[i].account, gs[i].members)
            != NGX_OK)
        {
            return NGX_ERROR;
        }
    }

    if (ngx_tunnel_write(w, 0,
            "# HELP ngx_tunnel_connections Public connections open, by "
            "tunnel.\n"
            "# TYPE ngx_tunnel_connections gauge\n")
        != NGX_OK)
    {
        return NGX_ERROR;
    }

    for (i = 0; i < ng; i++) {
        if (ngx_tunnel_write(w, gs[i].name.len + gs[i].account.len,
                             "ngx_tunnel_connections{tunnel=\"%V\","
                             "kind=\"%s\",account=\"%V\"} %uA\n",
                             &gs[i].name, ngx_tunnel_kind_names[gs[i].kind],
                             &gs[i].account, gs[i].conns)
            != NGX_OK)
        {
            return NGX_ERROR;
        }
    }

    if (ngx_tunnel_write(w, 0,
            "# HELP ngx_tunnel_connections_total Public connections "
            "carried, by tunnel.\n"
            "# TYPE ngx_tunnel_connections_total counter\n")
        != NGX_OK)
    {
        return NGX_ERROR;
    }

    for (i = 0; i < ng; i++) {
        if (ngx_tunnel_write(w, gs[i].name.len + gs[i].account.len,
                             "ngx_tunnel_connections_total{tunnel=\"%V\","
                             "kind=\"%s\",account=\"%V\"} %uA\n",
                             &gs[i].name, ngx_tunnel_kind_names[gs[i].kind],
                             &gs[i].account, gs[i].conns_total)
            != NGX_OK)
        {
            return NGX_ERROR;
        }
    }

    if (ngx_tunnel_write(w, 0,
            "# HELP ngx_tunnel_bytes_total Bytes carried, by tunnel "
            "(in: from public peers).\n"
            "# TYPE ngx_tunnel_bytes_total counter\n")
        != NGX_OK)
    {
        return NGX_ERROR;
    }

    for (i = 0; i < ng; i++) {
        if (ngx_tunnel_write(w, 2 * (gs[i].name.len + gs[i].account.len),
                             "ngx_tunnel_bytes_total{tunnel=\"%V\","
                             "kind=\"%s\",account=\"%V\",direction=\"in\"} "
                             "%uA\n"
                             "ngx_tunnel_bytes_total{tunnel=\"%V\","
                             "kind=\"%s\",account=\"%V\",direction=\"out\"} "
                             "%uA\n",
                             &gs[i].name, ngx_tunnel_kind_names[gs[i].kind],
                             &gs[i].account, gs[i].bytes_in,
                             &gs[i].name, ngx_tunnel_kind_names[gs[i].kind],
                             &gs[i].account, gs[i].bytes_out)
            != NGX_OK)
        {
            return NGX_ERROR;
        }
    }

    return NGX_OK;
}


static int ngx_libc_cdecl
ngx_tunnel_status_cmp_session(const void *one, const void *two)
{
    const ngx_tunnel_status_session_t  *a = one;
    const ngx_tunnel_status_session_t  *b = two;

    return ngx_memn2cmp(a->account.data, b->account.data, a->account.len,
                        b->account.len);
}


static int ngx_libc_cdecl
ngx_tunnel_status_cmp_tunnel(const void *one, const void *two)
{
    const ngx_tunnel_status_tunnel_t  *a = one;
    const ngx_tunnel_status_tunnel_t  *b = two;

    int  rc;

    if (a->kind != b->kind) {
        return (a->kind < b->kind) ? -1 : 1;
    }

    rc = ngx_memn2cmp(a->name.data, b->name.data, a->name.len, b->name.len);

    if (rc != 0) {
        return rc;
    }

    /* a name given up and bound again by another token */
    return ngx_memn2cmp(a->account.data, b->account.data, a->account.len,
                        b->account.len);
}


static ngx_int_t
ngx_tunnel_json_str(ngx_pool_t *pool, ngx_str_t *s)
{
    u_char     *p;
    uintptr_t   n;

    n = ngx_escape_json(NULL, s->data, s->len);

    if (n == 0) {
        return NGX_OK;
    }

    p = ngx_pnalloc(pool, s->len + n);
    if (p == NULL) {
        return NGX_ERROR;
    }

    (void) ngx_escape_json(p, s->data, s->len);

    s->data = p;
    s->len += n;

    return NGX_OK;
}


/* a label value: backslash, double quote and line feed are escaped */
static ngx_int_t
ngx_tunnel_prometheus_str(ngx_pool_t *pool, ngx_str_t *s)
{
    u_char      *p, *src, *end;
    ngx_uint_t   n;

    n = 0;
    end = s->data + s->len;

    for (src = s->data; src < end; src++) {
        if (*src == '\\' || *src == '"' || *src == LF) {
            n++;
        }
    }

    if (n == 0) {
        return NGX_OK;
    }

    p = ngx_pnalloc(pool, s->len + n);
    if (p == NULL) {
        return NGX_ERROR;
    }

    src = s->data;
    s->data = p;
    s->len += n;

    for ( /* void */ ; src < end; src++) {
        if (*src == '\\' || *src == '"') {
            *p++ = '\\';
            *p++ = *src;

        } else if (*src == LF) {
            *p++ = '\\';
            *p++ = 'n';

        } else {
            *p++ = *src;
        }
    }

    return NGX_OK;
}


/*
 * Appends formatted text to the chain.  "len" is the length of the "%V"
 * arguments; every other conversion is taken to need at most
 * NGX_INT64_LEN bytes, "%s" arguments included, so those are short words.
 */
static ngx_int_t ngx_libc_cdecl
ngx_tunnel_write(ngx_tunnel_writer_t *w, size_t len, const char *fmt, ...)
{
    size_t        size;
    va_list       args;
    ngx_buf_t    *b;
    const char   *f;
    ngx_chain_t  *cl;

    size = len;

    for (f = fmt; *f; f++) {
        size += (*f == '%') ? NGX_INT64_LEN : 1;
    }

    b = w->buf;

    if (b == NULL || (size_t) (b->end - b->last) < size) {
        b = ngx_create_temp_buf(w->pool, ngx_max(size, 4096));
        if (b == NULL) {
            return NGX_ERROR;
        }

        cl = ngx_alloc_chain_link(w->pool);
        if (cl == NULL) {
            return NGX_ERROR;
        }

        cl->buf = b;
        cl->next = NULL;

        *w->last = cl;
        w->last = &cl->next;
        w->buf = b;
    }

    va_start(args, fmt);
    b->last = ngx_vslprintf(b->last, b->end, fmt, args);
    va_end(args);

    return NGX_OK;
}


static uint32_t
ngx_tunnel_registry_hash(ngx_uint_t kind, u_char *name, size_t len)
{
    u_char    k;
    uint32_t  crc;

    k = (u_char) kind;

    ngx_crc32_init(crc);
    ngx_crc32_update(&crc, &k, 1);
    ngx_crc32_update(&crc, name, len);
    ngx_crc32_final(crc);

    return crc;
}


static void
ngx_tunnel_registry_insert_name(ngx_rbtree_node_t *temp,
    ngx_rbtree_node_t *node, ngx_rbtree_node_t *sentinel)
{
    ngx_rbtree_node_t   **p;
    ngx_tunnel_entry_t   *e;

    e = (ngx_tunnel_entry_t *) node;

    for ( ;; ) {

        if (node->key < temp->key) {
            p = &temp->left;

        } else if (node->key > temp->key) {
            p = &temp->right;

        } else { /* node->key == temp->key */

            p = (ngx_tunnel_registry_cmp(e->kind, e->name, e->len,
                                         (ngx_tunnel_entry_t *) temp)
                 < 0)
                ? &temp->left : &temp->right;
        }

        if (*p == sentinel) {
            break;
        }

        temp = *p;
    }

    *p = node;
    node->parent = temp;
    node->left = sentinel;
    node->right = sentinel;
    ngx_rbt_red(node);
}


static ngx_int_t
ngx_tunnel_registry_cmp(ngx_uint_t kind, u_char *name, size_t len,
    ngx_tunnel_entry_t *e)
{
    if (kind != e->kind) {
        return (kind < e->kind) ? -1 : 1;
    }

    return ngx_memn2cmp(name, e->name, len, e->len);
}


static ngx_tunnel_entry_t *
ngx_tunnel_registry_find_name(ngx_tunnel_registry_sh_t *sh, ngx_uint_t kind,
    u_char *name, size_t len)
{
    uint32_t             hash;
    ngx_int_t            rc;
    ngx_rbtree_node_t   *node, *sentinel;

    hash = ngx_tunnel_registry_hash(kind, name, len);

    node = sh->names.root;
    sentinel = sh->names.sentinel;

    while (node != sentinel) {

        if (hash < node->key) {
            node = node->left;
            continue;
        }

        if (hash > node->key) {
            node = node->right;
            continue;
        }

        /* hash == node->key */

        rc = ngx_tunnel_registry_cmp(kind, name, len,
                                     (ngx_tunnel_entry_t *) node);

        if (rc == 0) {
            return (ngx_tunnel_entry_t *) node;
        }

        node = (rc < 0) ? node->left : node->right;
    }

    return NULL;
}


static ngx_tunnel_entry_t *
ngx_tunnel_registry_find_port(ngx_tunnel_registry_sh_t *sh, in_port_t port)
{
    ngx_rbtree_key_t    key;
    ngx_rbtree_node_t  *node, *sentinel;

    key = port;
    node = sh->ports.root;
    sentinel = sh->ports.sentinel;

    while (node != sentinel) {

        if (key < node->key) {
            node = node->left;
            continue;
        }

        if (key > node->key) {
            node = node->right;
            continue;
        }

        return (ngx_tunnel_entry_t *) node;
    }

    return NULL;
}


static ngx_tunnel_entry_t *
ngx_tunnel_registry_entry_add(ngx_tunnel_registry_t *reg,
    ngx_tunnel_shm_session_t *s, ngx_uint_t kind, ngx_str_t *name,
    in_port_t port)
{
    size_t               len;
    ngx_tunnel_entry_t  *e;

    len = name ? name->len : 0;

    e = ngx_slab_alloc_locked(reg->shpool,
                              offsetof(ngx_tunnel_entry_t, name) + len);
    if (e == NULL) {
        return NULL;
    }

    ngx_memzero(e, offsetof(ngx_tunnel_entry_t, name));

    ngx_queue_init(&e->members);
    ngx_memcpy(e->owner, s->hash, NGX_TUNNEL_HASH_LEN);
    e->kind = kind;
    e->port = port;
    e->len = len;

    if (kind == TUNNEL_KIND_TCP) {
        e->node.key = port;
        ngx_rbtree_insert(&reg->sh->ports, &e->node);

    } else {
        ngx_memcpy(e->name, name->data, len);
        e->node.key = ngx_tunnel_registry_hash(kind, e->name, len);
        ngx_rbtree_insert(&reg->sh->names, &e->node);
    }

    return e;
}


static ngx_tunnel_member_t *
ngx_tunnel_registry_member_add(ngx_tunnel_registry_t *reg,
    ngx_tunnel_shm_session_t *s, ngx_tunnel_entry_t *e, uint32_t tunnel_id)
{
    ngx_tunnel_member_t  *m;

    m = ngx_slab_calloc_locked(reg->shpool,
                               offsetof(ngx_tunnel_member_t, name) + e->len);
    if (m == NULL) {
        return NULL;
    }

    m->entry = e;
    m->session = s;
    m->tunnel_id = tunnel_id;
    m->kind = e->kind;
    m->since = ngx_time();
    m->port = e->port;
    m->len = e->len;
    ngx_memcpy(m->name, e->name, e->len);

    ngx_queue_insert_tail(&e->members, &m->link);
    e->nmembers++;

    ngx_queue_insert_tail(&s->members, &m->session_link);
    s->tunnels++;

    return m;
}


/*
 * Detaches the members of "e" that an older session of the same client
 * instance holds, or a session of the token that lost its connection, now
 * that "m" serves in their place.  Sessions that are there see it as
 * member->entry == NULL; members of lost sessions are freed, and a lost
 * session left with none goes too.  Returns the id of one such session, or
 * 0; "lost" says whether it was a lost one.
 */
static uint64_t
ngx_tunnel_registry_take_over(ngx_tunnel_registry_t *reg,
    ngx_tunnel_entry_t *e, ngx_tunnel_member_t *m, ngx_uint_t *lost)
{
    uint64_t                   id;
    ngx_queue_t               *q, *next;
    ngx_tunnel_member_t       *pm;
    ngx_tunnel_shm_session_t  *o;

    id = 0;
    *lost = 0;

    for (q = ngx_queue_head(&e->members);
         q != ngx_queue_sentinel(&e->members);
         q = next)
    {
        next = ngx_queue_next(q);
        pm = ngx_queue_data(q, ngx_tunnel_member_t, link);
        o = pm->session;

        if (pm == m
            || o == m->session
            || (!o->lost
                && ngx_tunnel_registry_same_instance(o, m->session)
                   != NGX_OK))
        {
            continue;
        }

        id = o->id;
        ngx_tunnel_registry_detach(reg, pm);

        if (o->lost) {
            *lost = 1;

            /* no worker holds a pointer to it any more */
            ngx_tunnel_registry_unbind_locked(reg, pm);

            if (ngx_queue_empty(&o->members)) {
                ngx_tunnel_registry_session_remove_locked(reg, o);
            }
        }
    }

    return id;
}


/* the entry is freed by the caller when it is left empty */
static void
ngx_tunnel_registry_detach(ngx_tunnel_registry_t *reg,
    ngx_tunnel_member_t *m)
{
    ngx_queue_remove(&m->link);
    m->entry->nmembers--;
    m->entry = NULL;
}


/* an instance names one running client; a client that sends none has
 * sessions that are all different */
static ngx_int_t
ngx_tunnel_registry_same_instance(ngx_tunnel_shm_session_t *a,
    ngx_tunnel_shm_session_t *b)
{
    if (a->instance_len == 0
        || a->instance_len != b->instance_len
        || ngx_memcmp(a->hash, b->hash, NGX_TUNNEL_HASH_LEN) != 0
        || ngx_memcmp(a->instance, b->instance, a->instance_len) != 0)
    {
        return NGX_DECLINED;
    }

    return NGX_OK;
}


static ngx_int_t
ngx_tunnel_registry_alive(ngx_pid_t pid)
{
    if (pid == ngx_pid) {
        return NGX_OK;
    }

    /* EPERM: a process is there, if not ours */
    if (kill(pid, 0) == -1 && ngx_errno == NGX_ESRCH) {
        return NGX_DECLINED;
    }

    return NGX_OK;
}


/*
 * 10 characters of [a-z0-9] from RAND_bytes(), about 51 bits: a name that
 * cannot be guessed, so that a tunnel is not found by scanning.  Bytes of
 * 252 and above are dropped, so that each character is equally likely.
 */
static ngx_int_t
ngx_tunnel_registry_label(u_char *p)
{
    u_char      rnd[32];
    ngx_uint_t  i, n;

    static u_char  chars[] = "abcdefghijklmnopqrstuvwxyz0123456789";

    i = sizeof(rnd);
    n = 0;

    while (n < NGX_TUNNEL_LABEL_LEN) {

        if (i == sizeof(rnd)) {
            if (RAND_bytes(rnd, sizeof(rnd)) != 1) {
                return NGX_ERROR;
            }

            i = 0;
        }

        if (rnd[i] < 252) {
            p[n++] = chars[rnd[i] % 36];
        }

        i++;
    }

    return NGX_OK;
}


/*
 * Once a minute per worker at most: a client that binds in a loop must not
 * fill the error log as well (its binds are refused anyway).
 */
static void
ngx_tunnel_registry_full(ngx_shm_zone_t *zone)
{
    static time_t  logged;

    if (ngx_time() - logged < 60) {
        return;
    }

    logged = ngx_time();

    ngx_log_error(NGX_LOG_CRIT, ngx_cycle->log, 0,
                  "tunnel_zone \"%V\" is full: give it more memory, or "
                  "limit tunnels per token (tunnels= in tunnel_tokens)",
                  &zone->shm.name);
}


/* "printable": shown in status, so other bytes become "?" */
static void
ngx_tunnel_registry_copy(u_char *dst, size_t *dst_len, size_t max,
    ngx_str_t *src, ngx_uint_t printable)
{
    size_t  i, n;

    n = ngx_min(src->len, max);

    for (i = 0; i < n; i++) {
        dst[i] = (printable && (src->data[i] < 0x20 || src->data[i] > 0x7e))
                 ? '?' : src->data[i];
    }

    *dst_len = n;
}
