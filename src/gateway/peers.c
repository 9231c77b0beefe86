/* SPDX-License-Identifier: Apache-2.0 */
/* peers.c -- the gateway's peers (one per address) and devices (one per identity): the hash
 * tables, the sweep that runs their timers and reaps stalled handshakes and idle sessions, and
 * the communication-loss condition of devices gone silent. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/limits.h"
#include "gateway/gateway_internal.h"

/* The peer table is swept (idle sessions, stalled handshakes) at least this often;
 * between sweeps a poll costs nothing per peer, only per datagram. */
#define SWEEP_MS 1000u

static uint32_t hash_bytes(const void *p, size_t n)
{
    const uint8_t *b = p;
    uint32_t h = 2166136261u; /* FNV-1a */
    for (size_t i = 0; i < n; i++)
        h = (h ^ b[i]) * 16777619u;
    return h;
}

static uint32_t pow2_at_least(uint32_t n)
{
    uint32_t p = 64;
    while (p < n && p < (1u << 24))
        p <<= 1;
    return p;
}

mw_err mwi_gw_peers_init(mw_gateway_t *gw)
{
    gw->peer_buckets = pow2_at_least(gw->max_peers * 2);
    gw->device_buckets = gw->peer_buckets;
    gw->peers = calloc(gw->peer_buckets, sizeof(struct peer *));
    gw->devices = calloc(gw->device_buckets, sizeof(struct device *));
    return gw->peers && gw->devices ? MW_OK : MW_ENOMEM;
}

struct peer **mwi_gw_peer_slot(mw_gateway_t *gw, const mw_addr_t *a)
{
    uint32_t b = hash_bytes(a->data, a->len) & (gw->peer_buckets - 1);
    struct peer **pp = &gw->peers[b];
    while (*pp && ((*pp)->route.addr.len != a->len ||
                   memcmp((*pp)->route.addr.data, a->data, a->len) != 0))
        pp = &(*pp)->hnext;
    return pp;
}

static void peer_free(mw_gateway_t *gw, struct peer *p)
{
    if (p->dv != NULL && p->dv->peer == p)
        p->dv->peer = NULL;
    if (mwi_dtls_conn_established(p->link.conn) && gw->st.sessions > 0)
        gw->st.sessions--;
    /* The half-open count must not wait for the next sweep: it gates new handshakes. */
    gw->half_open -=
        (uint32_t)(p->link.conn && !mwi_dtls_conn_established(p->link.conn) && gw->half_open);
    gw->half_open -=
        (uint32_t)(p->link.next && !mwi_dtls_conn_established(p->link.next) && gw->half_open);
    mwi_link_clear(&p->link);
    free(p->b1_buf);
    free(p);
    gw->npeers--;
}

void mwi_gw_peer_remove(mw_gateway_t *gw, struct peer *p)
{
    struct peer **pp = mwi_gw_peer_slot(gw, &p->route.addr);
    if (*pp == p)
        *pp = p->hnext;
    peer_free(gw, p);
}

void mwi_gw_peers_fini(mw_gateway_t *gw)
{
    if (gw->peers) {
        for (uint32_t b = 0; b < gw->peer_buckets; b++) {
            struct peer *p = gw->peers[b];
            while (p) {
                struct peer *nx = p->hnext;
                /* Draining: devices learn at once, and reconnect (with
                 * backoff and jitter) to whoever listens next. */
                mwi_dtls_conn_close(p->link.conn);
                peer_free(gw, p);
                p = nx;
            }
        }
        free(gw->peers);
        gw->peers = NULL;
    }
    if (gw->devices) {
        for (uint32_t b = 0; b < gw->device_buckets; b++) {
            struct device *dv = gw->devices[b];
            while (dv) {
                struct device *nx = dv->hnext;
                free(dv);
                dv = nx;
            }
        }
        free(gw->devices);
        gw->devices = NULL;
    }
}

struct device *mwi_gw_device_get(mw_gateway_t *gw, const char *id)
{
    uint32_t b = hash_bytes(id, strlen(id)) & (gw->device_buckets - 1);
    for (struct device *dv = gw->devices[b]; dv; dv = dv->hnext)
        if (strcmp(dv->id, id) == 0)
            return dv;
    struct device *dv = calloc(1, sizeof *dv);
    if (dv == NULL)
        return NULL;
    snprintf(dv->id, sizeof dv->id, "%s", id);
    mwi_replay_init(&dv->rp);
    dv->next_command = 1;
    bool found = false;
    if (gw->store &&
        mwi_store_load_device(gw->store, id, &dv->rp, &dv->next_command, dv->cmds, &dv->ncmds,
                              &found) != MW_OK) {
        /* Never guess replay state: a wrong one loses or repeats messages. */
        char why[160];
        snprintf(why, sizeof why, "the stored replay state of '%.64s' is unreadable", id);
        mwi_gw_audit(gw, MW_AUDIT_STORE_FAILED, "", id, MW_EIO, 0, why);
        free(dv);
        return NULL;
    }
    dv->hnext = gw->devices[b];
    gw->devices[b] = dv;
    return dv;
}

void mwi_gw_bind(struct peer *p, struct device *dv)
{
    if (p->dv != NULL && p->dv != dv && p->dv->peer == p)
        p->dv->peer = NULL;
    p->dv = dv;
    dv->peer = p;
}

/* One identity, one session (plus the one rotating in beside it at the same address): a newer
 * authenticated session replaces the older, so a device that moved address is never locked
 * out by its own stale session, and one stolen key on many ports holds one slot and one rate
 * limit, never more. Its handshakes are limited per minute, whatever the address. */
bool mwi_gw_admit_identity(mw_gateway_t *gw, struct peer *p, uint64_t now)
{
    const char *id = mwi_dtls_conn_peer_id(p->link.conn);
    struct device *dv = mwi_gw_device_get(gw, id);
    if (dv == NULL)
        return true; /* the store is unreadable: the batch path refuses it with a reason */
    /* Burst: ten seconds' worth, at least 10 (10 at the default of 60 a minute). */
    double burst = gw->identity_hs_per_min / 6.0 > 10.0 ? gw->identity_hs_per_min / 6.0 : 10.0;
    if (!dv->handshakes_init) {
        mwi_bucket_init(&dv->handshakes, burst, now);
        dv->handshakes_init = true;
    }
    if (!dv->rate_init) {
        mwi_bucket_init(&dv->rate, gw->rate_burst, now);
        dv->rate_init = true;
    }
    if (!mwi_bucket_take(&dv->handshakes, gw->identity_hs_per_min / 60.0, burst, now)) {
        gw->st.identity_limit_drops++;
        mwi_gw_audit(gw, MW_AUDIT_PEER_LIMIT, p->text, id, MW_EFULL, 0,
                     "handshakes of this identity exceed the per-minute limit: session closed");
        return false;
    }
    struct peer *old = dv->peer;
    if (old != NULL && old != p) {
        char why[160];
        snprintf(why, sizeof why, "replaced by a newer session of the same identity from %.64s",
                 p->text);
        mwi_gw_audit(gw, MW_AUDIT_SESSION_CLOSED, old->text, id, MW_OK, 0, why);
        gw->st.sessions_replaced++;
        /* Counted here: once closed, peer_free no longer sees it as a session. */
        if (mwi_dtls_conn_established(old->link.conn) && gw->st.sessions > 0)
            gw->st.sessions--;
        mwi_dtls_conn_close(old->link.conn);
        mwi_gw_peer_remove(gw, old);
    } else if (old == NULL && gw->st.sessions >= gw->max_peers) {
        /* Counted before this one: the table holds max_peers sessions already. */
        mwi_gw_audit(gw, MW_AUDIT_PEER_LIMIT, p->text, id, MW_EFULL, 0,
                     "session table full: raise max_peers or reap idle sessions");
        gw->st.peer_limit_drops++;
        return false;
    }
    mwi_gw_bind(p, dv);
    p->admitted = true;
    return true;
}

/* A gateway-made message about a device's link (seq 0: not the device's). */
static mw_err link_event(mw_gateway_t *gw, struct device *dv, mw_msg_type type, uint64_t silent)
{
    mw_message_t m;
    memset(&m, 0, sizeof m);
    snprintf(m.device_id, sizeof m.device_id, "%s", dv->id);
    m.type = type;
    m.priority = MW_PRIORITY_ALARM;
    m.device_time_ms = wall_ms(gw);
    m.time_synced = false;
    m.u.link.silent_ms = silent;
    /* When it was last heard, on the wall clock: counted back from now on the monotonic one,
     * so that no message pays for reading the wall clock (a system call with its sync state). */
    uint64_t ago = gw->now_ms - dv->last_seen_ms;
    m.u.link.last_seen_ms = m.device_time_ms > ago ? m.device_time_ms - ago : 0;
    mw_err e = gw->sink(gw->sink_ctx, &m);
    if (e == MW_OK)
        gw->dirty = true; /* committed with the rest of the poll */
    return e;
}

void mwi_gw_seen(mw_gateway_t *gw, struct device *dv)
{
    if (dv->lost && gw->comm_loss_ms) {
        if (link_event(gw, dv, MW_MSG_COMM_RESTORED, gw->now_ms - dv->last_seen_ms) == MW_OK)
            dv->lost = false;
    }
    dv->last_seen_ms = gw->now_ms;
}

/* IEC 60601-1-8 calls a lost link a technical alarm condition: a device
 * silent longer than the configured interval is reported once, and again
 * when it comes back. Scanned at most once a second. */
void mwi_gw_scan_comm_loss(mw_gateway_t *gw, uint64_t now)
{
    if (gw->comm_loss_ms == 0 || now < gw->next_loss_scan_ms)
        return;
    gw->next_loss_scan_ms = now + 1000;
    for (uint32_t b = 0; b < gw->device_buckets; b++)
        for (struct device *dv = gw->devices[b]; dv; dv = dv->hnext)
            if (!dv->lost && dv->last_seen_ms != 0 && now - dv->last_seen_ms > gw->comm_loss_ms &&
                link_event(gw, dv, MW_MSG_COMM_LOSS, now - dv->last_seen_ms) == MW_OK) {
                char why[120];
                dv->lost = true;
                snprintf(why, sizeof why, "no message for %llu s (limit %llu s)",
                         (unsigned long long)((now - dv->last_seen_ms) / 1000),
                         (unsigned long long)(gw->comm_loss_ms / 1000));
                mwi_gw_audit(gw, MW_AUDIT_COMM_LOSS, "", dv->id, MW_ETIMEDOUT, 0, why);
            }
}

static bool reap_half_open(mw_gateway_t *gw, struct peer *p, mwi_dtls_conn **pc, uint64_t started,
                           uint64_t now)
{
    if (*pc == NULL || mwi_dtls_conn_established(*pc) || now - started < MWI_HALF_OPEN_MAX_MS)
        return false;
    mwi_gw_count_hs_failure(gw, MW_EHANDSHAKE_TIMEOUT);
    if (mwi_gw_audit_allowed(gw, now))
        mwi_gw_audit(gw, MW_AUDIT_HANDSHAKE_FAILED, p->text, "", MW_EHANDSHAKE_TIMEOUT, 0,
                     "handshake not completed in 30 s: dropped");
    mwi_dtls_conn_destroy(pc);
    return true;
}

/* One peer's turn in the sweep; false if it is to be removed. */
static bool sweep_peer(mw_gateway_t *gw, struct peer *p, uint64_t now)
{
    (void)reap_half_open(gw, p, &p->link.conn, p->conn_started_ms, now);
    (void)reap_half_open(gw, p, &p->link.next, p->next_started_ms, now);
    mwi_dtls_conn **cs[2] = {&p->link.conn, &p->link.next};
    for (int i = 0; i < 2; i++) {
        mwi_dtls_conn **pc = cs[i];
        if (*pc == NULL || now < mwi_dtls_conn_deadline(*pc))
            continue;
        mw_err e = mwi_dtls_conn_timer(*pc, now);
        if (e == MW_EINPROGRESS || e == MW_OK)
            continue;
        mwi_gw_handshake_failed(gw, p, *pc);
        mwi_dtls_conn_destroy(pc);
    }
    if (p->link.conn == NULL)
        (void)mwi_link_drop_current(&p->link); /* a next takes its place */
    mwi_gw_push_timer(gw, p, now);
    if (p->link.conn == NULL)
        return false;
    if (gw->idle_timeout_ms != 0 && now - p->last_rx_ms >= gw->idle_timeout_ms) {
        /* Silent sessions hold a wolfSSL object each; a device that comes
         * back reconnects (close_notify tells it at once, if it listens). */
        mwi_gw_audit(gw, MW_AUDIT_SESSION_CLOSED, p->text, mwi_dtls_conn_peer_id(p->link.conn),
                     MW_OK, 0, "idle session reaped");
        /* Counted out here: once closed, peer_free no longer sees it established. */
        if (mwi_dtls_conn_established(p->link.conn) && gw->st.sessions > 0)
            gw->st.sessions--;
        mwi_dtls_conn_close(p->link.conn);
        gw->st.idle_reaped++;
        return false;
    }
    return true;
}

void mwi_gw_run_timers(mw_gateway_t *gw, uint64_t now)
{
    uint32_t half_open = 0;
    mwi_hosts_clear_counts(&gw->hosts);
    uint64_t next_at = gw->npeers ? now + SWEEP_MS : UINT64_MAX;
    for (uint32_t b = 0; b < gw->peer_buckets; b++) {
        struct peer *p = gw->peers[b];
        while (p) {
            struct peer *nx = p->hnext;
            if (!sweep_peer(gw, p, now)) {
                mwi_gw_peer_remove(gw, p);
            } else {
                uint32_t ho = (p->link.conn && !mwi_dtls_conn_established(p->link.conn)) +
                              (p->link.next && !mwi_dtls_conn_established(p->link.next));
                half_open += ho;
                if (ho > 0) {
                    mwi_host *h =
                        mwi_hosts_get(&gw->hosts, &p->route.addr, 2 * gw->host_hs_per_s, now);
                    if (h != NULL)
                        h->half_open += ho;
                }
                uint64_t d = mwi_link_deadline(&p->link);
                uint64_t d3 = mwi_coap_request_deadline(&p->push.r);
                next_at = d < next_at ? d : next_at;
                next_at = d3 < next_at ? d3 : next_at;
            }
            p = nx;
        }
    }
    gw->half_open = half_open;
    /* A host is forgotten a minute after its last handshake: its bucket is full again by then. */
    mwi_hosts_reap(&gw->hosts, now, 60000);
    uint32_t pos = 0, held = 0;
    const mwi_audit_slot *as;
    while (gw->alim && (as = mwi_audit_limiter_due(gw->alim, now, &pos, &held)) != NULL)
        mwi_gw_audit_held(gw, as, held);
    gw->timers_at = next_at;
    gw->st.peers = gw->npeers;
    gw->st.half_open = half_open;
}

/* O(1), so a poll's cost does not grow with the table. */
void mwi_gw_note_timers(mw_gateway_t *gw, const mw_addr_t *from)
{
    const struct peer *p = *mwi_gw_peer_slot(gw, from);
    if (p == NULL)
        return;
    uint64_t d = mwi_link_deadline(&p->link);
    if (d < gw->timers_at)
        gw->timers_at = d;
}
