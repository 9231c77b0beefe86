/* SPDX-License-Identifier: Apache-2.0 */
/* gateway.c -- many devices on one socket: stateless cookie exchange, one DTLS session per address,
 * identity-checked delivery. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "medwire/gateway.h"

#include "coap/coap.h"
#include "coap/server.h"
#include "core/detail.h"
#include "dtls/dtls.h"
#include "gateway/store.h"
#include "session/codec.h"
#include "session/replay.h"

#define BATCH_PATH      "batch"
#define WELL_KNOWN_PATH ".well-known/core"
/* RFC 6690 link-format, Content-Format 40. */
#define CF_LINK_FORMAT 40
#define LINKS          "</batch>;ct=65100;rt=\"medwire.batch\";if=\"medwire.v1\""
/* Datagrams handled per poll before timers get their turn. */
#define RX_BURST 256
/* Datagrams per batched receive (transport recv_many, recvmmsg on POSIX). */
#define RX_BATCH 32
/* mw_gateway_config_t.idle_timeout_ms by default: 10 minutes. */
#define IDLE_TIMEOUT_DEFAULT_MS (10u * 60u * 1000u)
/* The peer table is swept (idle sessions, stalled handshakes) at least this often;
 * between sweeps a poll costs nothing per peer, only per datagram. */
#define SWEEP_MS 1000u
/* A handshake with a valid cookie that has not completed in this time is
 * dropped: it holds state for a peer that proved only its address. */
#define HALF_OPEN_MAX_MS 30000u
/* Audit lines per second for handshakes refused before the cookie exchange. */
#define UNVERIFIED_AUDIT_PER_S 10u
/* Largest response payload sent in one message; larger ones go block-wise. */
#define RESPONSE_BLOCK_MAX 1024u
/* Responses (and devices touched) held per commit; a full list commits early. */
#define DEFER_MAX RX_BURST

struct mw_gateway;

/* Where a DTLS connection's output goes: the socket and the peer's address. */
struct route {
    struct mw_gateway *gw;
    mw_addr_t addr;
};

struct peer {
    struct route route;
    mwi_dtls_conn *conn; /* the current session, established or handshaking */
    mwi_dtls_conn *next; /* a new handshake from the same address (a reboot, a rekey) */
    uint64_t last_rx_ms;
    char text[64];
    mwi_coap_dedup dedup; /* responses by MID, for duplicates (RFC 7252 4.5) */
    mwi_coap_block1 b1;   /* a Block1 body being reassembled */
    uint8_t *b1_buf;      /* max_body bytes while a transfer runs, else NULL */
    struct device *dv;    /* once the peer has sent a batch */
    uint64_t conn_started_ms, next_started_ms; /* to reap handshakes that never finish */
    double tokens;        /* rate limit: datagrams it may still send now */
    uint64_t tokens_ms;
    struct peer *hnext;
};

/* Replay state per authenticated device, not per address: a device that
 * reconnects from another port is the same device. */
struct device {
    char id[MW_ID_MAX + 1];
    mwi_replay rp;                       /* which sequence numbers were delivered */
    uint64_t next_command;               /* ids increase over the device's life, across restarts */
    mw_command_t cmds[MWI_MAX_COMMANDS]; /* sent in every Ack until answered or expired */
    uint8_t ncmds;
    uint64_t last_seen_ms;      /* monotonic: for the communication-loss condition */
    bool lost;                  /* a communication_loss was delivered, no restore yet */
    struct device *hnext;
};

struct mw_gateway {
    mwi_dtls_ctx *dtls;
    mw_transport_t tp;
    bool own_tp;
    mw_clock_t clock;
    mw_sink_fn *sink;
    void *sink_ctx;
    mw_audit_fn *audit;
    void *audit_ctx;
    uint32_t max_peers;
    uint32_t npeers;
    struct peer **peers;
    uint32_t peer_buckets;
    struct device **devices;
    uint32_t device_buckets;
    mwi_coap_parser *parser;
    uint16_t next_mid;
    uint64_t comm_loss_ms;
    uint64_t next_loss_scan_ms;
    uint32_t max_half_open;
    uint32_t half_open;       /* recounted every sweep, incremented on each accept */
    uint64_t idle_timeout_ms; /* 0: sessions are never reaped for silence */
    /* No timer of any peer is due before this (it may be earlier than needed, never
     * later): lowered as datagrams arm handshake timers, recomputed by each sweep. */
    uint64_t timers_at;
    mw_datagram_t *rxv; /* RX_BATCH slots when the transport has recv_many, else NULL */
    double rate_per_s, rate_burst;
    mwi_coap_params params;
    size_t max_body;
    uint64_t now_ms; /* the time of the datagram being handled */
    uint64_t audit_window_ms;
    uint32_t audit_in_window;
    mw_gateway_stats_t st;
    /* What mw_gateway_reload_credentials reads again (copies: the caller's
     * configuration strings need not outlive mw_gateway_create). */
    char *ca_path, *cert_path, *key_path, *crl_path;
    uint64_t (*now_us)(void *ctx); /* times commits */

    /* Custody transfer, batched per poll: responses wait here until the
     * sink and the store have committed what they acknowledge. */
    mwi_store *store;
    mw_sink_commit_fn *sink_commit;
    mw_sink_recover_fn *sink_recover;
    uint64_t checkpoint; /* of the last successful commit */
    bool dirty;          /* something was staged since the last commit */
    bool txn_failed;
    struct deferred {
        mw_addr_t addr;
        size_t len;
        uint8_t bytes[MWI_DTLS_MAX_PLAINTEXT];
    } * deferred;
    size_t ndeferred;
    struct undo {
        struct device *dv;
        mwi_replay before;
    } * undo;
    size_t nundo;

    /* per-record scratch, reused: the gateway decodes one batch at a time */
    struct peer *cur;
    mw_message_t batch[MWI_MAX_BATCH];
    uint8_t rx[MWI_DTLS_MAX_DATAGRAM + 1];
};

static uint64_t now_ms(const mw_gateway_t *gw)
{
    return gw->clock.now_ms(gw->clock.ctx);
}

/* An injected clock without a microsecond source still times commits, at
 * its own resolution: a test's fake clock then sees exact durations. */
static uint64_t ms_clock_as_us(const mw_gateway_t *gw)
{
    return gw->clock.now_ms(gw->clock.ctx) * 1000u;
}

static uint64_t now_us(const mw_gateway_t *gw)
{
    return gw->now_us ? gw->now_us(gw->clock.ctx) : ms_clock_as_us(gw);
}

static char *copy_str(const char *s)
{
    if (s == NULL)
        return NULL;
    size_t n = strlen(s) + 1;
    char *c = malloc(n);
    if (c)
        memcpy(c, s, n);
    return c;
}

static const char *const HS_REASON_NAMES[MW_GATEWAY_HSR_COUNT] = {
    "other",        "certificate_expired", "certificate_not_yet_valid", "certificate_untrusted",
    "certificate_revoked", "no_certificate", "certificate_role",     "certificate_identity",
    "no_common_cipher",    "peer_alert",     "timeout",
};

const char *mw_gateway_hs_reason_name(mw_gateway_hs_reason r)
{
    return (unsigned)r < MW_GATEWAY_HSR_COUNT ? HS_REASON_NAMES[r] : "other";
}

static mw_gateway_hs_reason hs_reason_of(mw_err e)
{
    switch (e) {
    case MW_ECERT_EXPIRED:
        return MW_GATEWAY_HSR_EXPIRED;
    case MW_ECERT_NOT_YET_VALID:
        return MW_GATEWAY_HSR_NOT_YET_VALID;
    case MW_ECERT_UNTRUSTED:
        return MW_GATEWAY_HSR_UNTRUSTED;
    case MW_ECERT_REVOKED:
        return MW_GATEWAY_HSR_REVOKED;
    case MW_ENO_PEER_CERT:
        return MW_GATEWAY_HSR_NO_CERT;
    case MW_ECERT_ROLE:
        return MW_GATEWAY_HSR_ROLE;
    case MW_ECERT_IDENTITY:
    case MW_ECERT_NAME:
        return MW_GATEWAY_HSR_IDENTITY;
    case MW_ECIPHER:
        return MW_GATEWAY_HSR_CIPHER;
    case MW_EPEER_ALERT:
        return MW_GATEWAY_HSR_PEER_ALERT;
    case MW_EHANDSHAKE_TIMEOUT:
    case MW_ETIMEDOUT:
        return MW_GATEWAY_HSR_TIMEOUT;
    default:
        return MW_GATEWAY_HSR_OTHER;
    }
}

/* Every failed handshake is counted once, in the total and by its reason. */
static void count_hs_failure(mw_gateway_t *gw, mw_err e)
{
    gw->st.handshakes_failed++;
    gw->st.handshake_failures_by_reason[hs_reason_of(e)]++;
}

static uint32_t hash_bytes(const void *p, size_t n)
{
    const uint8_t *b = p;
    uint32_t h = 2166136261u; /* FNV-1a */
    for (size_t i = 0; i < n; i++)
        h = (h ^ b[i]) * 16777619u;
    return h;
}

static void audit(mw_gateway_t *gw, const char *event, const char *peer, const char *device,
                  mw_err e, int foreign, const char *reason)
{
    if (gw->audit == NULL)
        return;
    mw_audit_event_t ev = {
        .event = event,
        .peer = peer ? peer : "",
        .device = device ? device : "",
        .err = e,
        .foreign = foreign,
        .reason = reason ? reason : "",
    };
    gw->audit(gw->audit_ctx, &ev);
}

static void route_send(void *ctx, const uint8_t *buf, size_t len)
{
    struct route *r = ctx;
    /* A full socket buffer loses the datagram, as the network may: DTLS
     * and CoAP retransmit. */
    if (r->gw->tp.send(r->gw->tp.ctx, &r->addr, buf, len) == MW_OK) {
        r->gw->st.datagrams_sent++;
        r->gw->st.bytes_sent += len;
    }
}

void mw_gateway_config_init(mw_gateway_config_t *cfg)
{
    if (cfg == NULL)
        return;
    memset(cfg, 0, sizeof *cfg);
    cfg->transport.fd = -1;
    cfg->max_peers = 4096;
    cfg->idle_timeout_ms = IDLE_TIMEOUT_DEFAULT_MS;
}

static mw_err fail_create(mw_error_detail_t *d, mw_err e, const char *reason)
{
    mwi_detail_first(d, e, 0, reason);
    return e;
}

static uint32_t pow2_at_least(uint32_t n)
{
    uint32_t p = 64;
    while (p < n && p < (1u << 24))
        p <<= 1;
    return p;
}

mw_err mw_gateway_create(const mw_gateway_config_t *cfg, mw_gateway_t **out, mw_error_detail_t *d)
{
    if (d)
        memset(d, 0, sizeof *d);
    if (cfg == NULL || out == NULL)
        return fail_create(d, MW_EINVAL, "a configuration and an output pointer are required");
    *out = NULL;
    if (cfg->ca_file == NULL || cfg->cert_file == NULL || cfg->key_file == NULL)
        return fail_create(d, MW_ECONFIG,
                           "a CA file, a gateway certificate and its key are all required");
    if (cfg->sink == NULL)
        return fail_create(d, MW_ECONFIG, "a sink for delivered messages is required");
    if (cfg->transport.send == NULL && cfg->listen == NULL)
        return fail_create(d, MW_ECONFIG, "a listen address (HOST:PORT) is required");

    mw_err e;
    mw_gateway_t *gw = calloc(1, sizeof *gw);
    if (gw == NULL)
        return fail_create(d, MW_ENOMEM, "out of memory");
    gw->tp.fd = -1;
    gw->max_peers = cfg->max_peers ? cfg->max_peers : 4096;
    gw->peer_buckets = pow2_at_least(gw->max_peers * 2);
    gw->device_buckets = gw->peer_buckets;
    gw->peers = calloc(gw->peer_buckets, sizeof(struct peer *));
    gw->devices = calloc(gw->device_buckets, sizeof(struct device *));
    if (gw->peers == NULL || gw->devices == NULL) {
        e = fail_create(d, MW_ENOMEM, "out of memory for the peer table");
        goto fail;
    }
    mwi_dtls_config dc = {
        .role = MWI_DTLS_SERVER,
        .ca_file = cfg->ca_file,
        .cert_file = cfg->cert_file,
        .key_file = cfg->key_file,
        .crl_file = cfg->crl_file,
    };
    e = mwi_dtls_ctx_create(&dc, &gw->dtls, d);
    if (e != MW_OK)
        goto fail;
    e = mwi_coap_parser_create(MWI_DTLS_MAX_DATAGRAM, &gw->parser);
    if (e != MW_OK) {
        e = fail_create(d, e, "cannot create the CoAP parser");
        goto fail;
    }
    gw->clock = cfg->clock.now_ms ? cfg->clock : mw_clock_system();
    if (mwi_dtls_random(gw->dtls, (uint8_t *)&gw->next_mid, sizeof gw->next_mid) != MW_OK) {
        e = fail_create(d, MW_EINTERNAL, "the random source failed");
        goto fail;
    }
    if (cfg->transport.send) {
        gw->tp = cfg->transport;
    } else {
        e = mw_udp_open(cfg->listen, &gw->tp);
        if (e != MW_OK) {
            char why[160];
            snprintf(why, sizeof why,
                     "cannot listen on '%.80s': %s (is the address local and the port free?)",
                     cfg->listen, mw_strerror(e));
            e = fail_create(d, e, why);
            goto fail;
        }
        gw->own_tp = true;
    }
    gw->sink = cfg->sink;
    gw->sink_ctx = cfg->sink_ctx;
    mwi_coap_params_default(&gw->params);
    gw->max_body = cfg->max_body ? cfg->max_body : 4096;
    gw->comm_loss_ms = cfg->comm_loss_ms;
    gw->idle_timeout_ms = cfg->idle_timeout_ms;
    gw->max_half_open = cfg->max_half_open ? cfg->max_half_open : 256;
    gw->rate_per_s = cfg->rate_limit_per_s ? cfg->rate_limit_per_s : 200;
    gw->rate_burst = 2 * gw->rate_per_s;
    gw->sink_commit = cfg->sink_commit;
    gw->sink_recover = cfg->sink_recover;
    gw->deferred = calloc(DEFER_MAX, sizeof *gw->deferred);
    gw->undo = calloc(DEFER_MAX, sizeof *gw->undo);
    if (gw->deferred == NULL || gw->undo == NULL) {
        e = fail_create(d, MW_ENOMEM, "out of memory");
        goto fail;
    }
    if (gw->tp.recv_many != NULL) {
        /* One block: the slots, then their buffers. A byte more than the largest
         * datagram we use, so that a longer one shows as truncated. */
        size_t cap = MWI_DTLS_MAX_DATAGRAM + 1;
        gw->rxv = malloc(RX_BATCH * (sizeof *gw->rxv + cap));
        if (gw->rxv == NULL) {
            e = fail_create(d, MW_ENOMEM, "out of memory");
            goto fail;
        }
        uint8_t *bufs = (uint8_t *)(gw->rxv + RX_BATCH);
        for (size_t i = 0; i < RX_BATCH; i++) {
            gw->rxv[i].buf = bufs + i * cap;
            gw->rxv[i].cap = cap;
        }
    }
    if (cfg->store_path) {
        e = mwi_store_open(cfg->store_path, &gw->store, d);
        if (e != MW_OK)
            goto fail;
        e = mwi_store_checkpoint(gw->store, &gw->checkpoint);
        if (e != MW_OK) {
            e = fail_create(d, e, "gateway store: cannot read the sink checkpoint");
            goto fail;
        }
    }
    /* Output written after the last commit was never acknowledged: the
     * devices will send it again, so it must go (exactly once, not twice). */
    if (gw->sink_recover) {
        e = gw->sink_recover(gw->sink_ctx, gw->checkpoint);
        if (e != MW_OK) {
            e = fail_create(d, e, "the sink could not return to its last committed state");
            goto fail;
        }
    }
    gw->audit = cfg->audit;
    gw->audit_ctx = cfg->audit_ctx;
    gw->now_us = cfg->now_us ? cfg->now_us : cfg->clock.now_ms ? NULL : mw_clock_monotonic_us;
    gw->ca_path = copy_str(cfg->ca_file);
    gw->cert_path = copy_str(cfg->cert_file);
    gw->key_path = copy_str(cfg->key_file);
    gw->crl_path = copy_str(cfg->crl_file);
    if (!gw->ca_path || !gw->cert_path || !gw->key_path || (cfg->crl_file && !gw->crl_path)) {
        e = fail_create(d, MW_ENOMEM, "out of memory");
        goto fail;
    }
    *out = gw;
    return MW_OK;
fail:
    mw_gateway_destroy(&gw);
    return e;
}

static struct peer **peer_slot(mw_gateway_t *gw, const mw_addr_t *a)
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
    if (mwi_dtls_conn_established(p->conn) && gw->st.sessions > 0)
        gw->st.sessions--;
    /* The half-open count must not wait for the next sweep: it gates new handshakes. */
    gw->half_open -= (uint32_t)(p->conn && !mwi_dtls_conn_established(p->conn) && gw->half_open);
    gw->half_open -= (uint32_t)(p->next && !mwi_dtls_conn_established(p->next) && gw->half_open);
    mwi_dtls_conn_destroy(&p->conn);
    mwi_dtls_conn_destroy(&p->next);
    free(p->b1_buf);
    free(p);
    gw->npeers--;
}

static void peer_remove(mw_gateway_t *gw, struct peer *p)
{
    struct peer **pp = peer_slot(gw, &p->route.addr);
    if (*pp == p)
        *pp = p->hnext;
    peer_free(gw, p);
}

static struct device *device_get(mw_gateway_t *gw, const char *id)
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
        mwi_store_load_device(gw->store, id, &dv->rp, &dv->next_command, &found) != MW_OK) {
        /* Never guess replay state: a wrong one loses or repeats messages. */
        char why[160];
        snprintf(why, sizeof why, "the stored replay state of '%.64s' is unreadable", id);
        audit(gw, MW_AUDIT_STORE_FAILED, "", id, MW_EIO, 0, why);
        free(dv);
        return NULL;
    }
    dv->hnext = gw->devices[b];
    gw->devices[b] = dv;
    return dv;
}

/* Responses and resets are best effort: if the record cannot go out, the
 * peer's retransmission asks again. */
static void write_lossy(mwi_dtls_conn *c, const uint8_t *buf, size_t len)
{
    mw_err e = mwi_dtls_conn_write(c, buf, len);
    (void)e;
}

static void commit(mw_gateway_t *gw);

/* Holds a response until what it acknowledges is committed (custody
 * transfer): it leaves at the end of the poll's burst, after the commit. */
static void defer(mw_gateway_t *gw, struct peer *p, const uint8_t *bytes, size_t len)
{
    if (gw->ndeferred == DEFER_MAX)
        commit(gw);
    struct deferred *d = &gw->deferred[gw->ndeferred++];
    d->addr = p->route.addr;
    d->len = len;
    memcpy(d->bytes, bytes, len);
}

/* Remembers a device's replay state as it was before this commit's changes. */
static bool touch(mw_gateway_t *gw, struct device *dv)
{
    for (size_t i = 0; i < gw->nundo; i++)
        if (gw->undo[i].dv == dv)
            return true;
    if (gw->nundo == DEFER_MAX)
        commit(gw);
    gw->undo[gw->nundo].dv = dv;
    gw->undo[gw->nundo].before = dv->rp;
    gw->nundo++;
    return true;
}

/* Options a response may carry besides Content-Format. */
struct resp_opts {
    uint8_t flags; /* MWI_COAP_F_BLOCK1 / _SIZE1 */
    uint32_t block1, size1;
};

/* Sends the response to @p req and remembers it by MID, so that a duplicate
 * of the request gets these very bytes (RFC 7252 4.5). A payload larger than
 * a block, or a request asking for Block2, is served block by block
 * (RFC 7959 2.2); each block request is a request of its own. */
static void respond_opts(mw_gateway_t *gw, struct peer *p, const mwi_coap_msg *req, uint8_t code,
                         int32_t cf, const uint8_t *payload, size_t len, const struct resp_opts *o)
{
    mwi_coap_msg r;
    uint8_t out[MWI_DTLS_MAX_PLAINTEXT];
    size_t n;
    if (req->type == MWI_COAP_CON) {
        if (mwi_coap_response_for(req, code, &r) != MW_OK)
            return;
    } else {
        /* A NON request gets a NON response with its own MID (RFC 7252 5.2.3). */
        mwi_coap_msg_init(&r);
        r.type = MWI_COAP_NON;
        r.code = code;
        r.mid = gw->next_mid++;
        r.token_len = req->token_len;
        memcpy(r.token, req->token, req->token_len);
    }
    size_t off = 0, slice = len;
    uint32_t b2 = 0;
    bool bad = false;
    if (mwi_coap_block2_slice((req->flags & MWI_COAP_F_BLOCK2) != 0, req->block2, len,
                              RESPONSE_BLOCK_MAX, &off, &slice, &b2, &bad)) {
        if (bad) {
            r.code = MWI_COAP_BAD_OPTION;
            off = slice = 0;
            cf = -1;
        } else {
            r.flags |= MWI_COAP_F_BLOCK2;
            r.block2 = b2;
        }
    }
    if (o) {
        r.flags |= o->flags;
        r.block1 = o->block1;
        r.size1 = o->size1;
    }
    r.content_format = cf;
    r.payload = slice > 0 && payload != NULL ? payload + off : NULL;
    r.payload_len = slice;
    if (mwi_coap_encode(&r, out, sizeof out, &n) != MW_OK)
        return;
    mwi_coap_dedup_store(&p->dedup, req->type, req->mid, out, n, gw->now_ms, &gw->params);
    defer(gw, p, out, n);
}

static void respond(mw_gateway_t *gw, struct peer *p, const mwi_coap_msg *req, uint8_t code,
                    int32_t cf, const uint8_t *payload, size_t len)
{
    respond_opts(gw, p, req, code, cf, payload, len, NULL);
}

static void refuse(mw_gateway_t *gw, struct peer *p, const mwi_coap_msg *req, uint8_t code,
                   const char *diag)
{
    /* RFC 7252 5.5.2: a diagnostic payload in plain text says why. */
    respond(gw, p, req, code, -1, (const uint8_t *)diag, strlen(diag));
}

static uint64_t wall_ms(const mw_gateway_t *gw)
{
    int synced;
    return gw->clock.wall_ms ? gw->clock.wall_ms(gw->clock.ctx, &synced) : 0;
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

/* The device was heard from: if it had been declared lost, say it is back. */
static void seen(mw_gateway_t *gw, struct device *dv)
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
static void scan_comm_loss(mw_gateway_t *gw, uint64_t now)
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
                audit(gw, MW_AUDIT_COMM_LOSS, "", dv->id, MW_ETIMEDOUT, 0, why);
            }
}

static void drop_command(struct device *dv, uint64_t id)
{
    for (uint8_t i = 0; i < dv->ncmds; i++)
        if (dv->cmds[i].id == id) {
            memmove(&dv->cmds[i], &dv->cmds[i + 1],
                    (size_t)(dv->ncmds - i - 1) * sizeof dv->cmds[0]);
            dv->ncmds--;
            return;
        }
}

/* A command past its expiry would only be refused: stop sending it. */
static void expire_commands(mw_gateway_t *gw, struct device *dv)
{
    if (dv->ncmds == 0)
        return;
    uint64_t now = wall_ms(gw);
    for (uint8_t i = 0; i < dv->ncmds;) {
        if (dv->cmds[i].expires_ms != 0 && now >= dv->cmds[i].expires_ms) {
            char why[120];
            snprintf(why, sizeof why, "command %llu expired before the device answered",
                     (unsigned long long)dv->cmds[i].id);
            audit(gw, MW_AUDIT_COMMAND_EXPIRED, "", dv->id, MW_ETIMEDOUT, 0, why);
            drop_command(dv, dv->cmds[i].id);
        } else {
            i++;
        }
    }
}

static int cmp_seq(const void *a, const void *b)
{
    uint64_t x = ((const mw_message_t *)a)->seq, y = ((const mw_message_t *)b)->seq;
    return x < y ? -1 : x > y;
}

static void handle_batch(mw_gateway_t *gw, struct peer *p, const mwi_coap_msg *req,
                         const struct resp_opts *o)
{
    const char *id = mwi_dtls_conn_peer_id(p->conn);
    size_t n = 0;
    uint64_t low_water = 0;
    char why[200];
    if (req->code != MWI_COAP_POST) {
        refuse(gw, p, req, MWI_COAP_METHOD_NOT_ALLOWED, "use POST");
        return;
    }
    if (req->content_format != MWI_COAP_CF_MEDWIRE_BATCH) {
        refuse(gw, p, req, MWI_COAP_UNSUPPORTED_CONTENT_FORMAT,
               "Content-Format must be 65100 (medwire batch)");
        return;
    }
    mw_err e =
        mwi_batch_decode(req->payload, req->payload_len, gw->batch, MWI_MAX_BATCH, &n, &low_water);
    if (e != MW_OK) {
        gw->st.refused++;
        snprintf(why, sizeof why, "batch refused: %s", mw_strerror(e));
        audit(gw, MW_AUDIT_BAD_MESSAGE, p->text, id, e, 0, why);
        refuse(gw, p, req, MWI_COAP_BAD_REQUEST, why);
        return;
    }
    /* A device speaks only for itself: one foreign id refuses the batch. */
    for (size_t i = 0; i < n; i++) {
        if (strcmp(gw->batch[i].device_id, id) != 0) {
            gw->st.refused++;
            snprintf(why, sizeof why,
                     "envelope seq %llu claims device '%.64s' but the certificate says '%.64s'",
                     (unsigned long long)gw->batch[i].seq, gw->batch[i].device_id, id);
            audit(gw, MW_AUDIT_IDENTITY_MISMATCH, p->text, id, MW_EIDENTITY, 0, why);
            refuse(gw, p, req, MWI_COAP_CODE(4, 3), "device id does not match the certificate");
            return;
        }
    }
    struct device *dv = device_get(gw, id);
    if (dv == NULL) {
        refuse(gw, p, req, MWI_COAP_SERVICE_UNAVAILABLE, "out of memory");
        return;
    }
    p->dv = dv;
    seen(gw, dv);
    qsort(gw->batch, n, sizeof gw->batch[0], cmp_seq);
    touch(gw, dv);
    gw->dirty = true;
    /* The device holds nothing below its low-water mark: numbers there are
     * settled, and one that arrives again is a replay (docs/protocol.md 5). */
    mwi_replay_advance(&dv->rp, low_water);
    uint64_t acked[MWI_MAX_BATCH];
    size_t nacked = 0;
    for (size_t i = 0; i < n; i++) {
        mw_message_t *m = &gw->batch[i];
        mwi_replay_verdict v = mwi_replay_check(&dv->rp, m->seq);
        if (v == MWI_REPLAY_OLD) {
            /* Never delivered; acknowledged as settled, so that a device whose queue brought
             * back numbers it had already been acknowledged for (damage at rest) forgets them
             * instead of sending them forever. An Ack gives an attacker nothing. */
            gw->st.replays++;
            acked[nacked++] = m->seq;
            snprintf(why, sizeof why,
                     "seq %llu is below the device's low-water mark %llu: refused as a replay",
                     (unsigned long long)m->seq, (unsigned long long)dv->rp.low);
            audit(gw, MW_AUDIT_REPLAY, p->text, id, MW_EREPLAY, 0, why);
            continue;
        }
        if (v == MWI_REPLAY_DUPLICATE) {
            /* Already delivered: acknowledge again, deliver never again. */
            gw->st.duplicates++;
            acked[nacked++] = m->seq;
            continue;
        }
        if (!mwi_replay_has_room(&dv->rp, m->seq))
            break; /* too many holes: wait until the low-water mark moves */
        if (gw->store && (mwi_store_begin(gw->store) != MW_OK ||
                          mwi_store_put_message(gw->store, m, gw->now_ms) != MW_OK)) {
            gw->txn_failed = true; /* the commit will fail and undo this poll */
            break;
        }
        if (gw->sink(gw->sink_ctx, m) != MW_OK)
            break; /* not stored: not acknowledged; the device sends it again */
        if (mwi_replay_mark(&dv->rp, m->seq) != MW_OK)
            break; /* cannot happen after has_room; never acknowledge unrecorded */
        if (m->type == MW_MSG_COMMAND_RESULT)
            drop_command(dv, m->u.command_result.command_id);
        gw->st.messages_delivered++;
        if (m->type == MW_MSG_GAP) {
            /* What devices had to drop is an availability signal of its own. */
            gw->st.gap_records++;
            if (m->u.gap.reason == MW_GAP_EVICTED)
                gw->st.evictions_reported += m->u.gap.count;
        }
        acked[nacked++] = m->seq;
    }
    if (nacked == 0) {
        refuse(gw, p, req, MWI_COAP_SERVICE_UNAVAILABLE, "cannot store messages now");
        return;
    }
    mwi_seq_range ranges[MWI_MAX_ACK_RANGES];
    size_t nr = mwi_ranges_from_seqs(acked, nacked, ranges, MWI_MAX_ACK_RANGES);
    uint8_t ack[MWI_MAX_ACK_RANGES * 24 + MWI_MAX_COMMANDS * 32];
    size_t alen = 0;
    expire_commands(gw, dv);
    if (mwi_ack_encode_cmds(ranges, nr, dv->cmds, dv->ncmds, ack, sizeof ack, &alen) != MW_OK)
        return;
    respond_opts(gw, p, req, MWI_COAP_CHANGED, MWI_COAP_CF_MEDWIRE_ACK, ack, alen, o);
}

/* A POST whose body comes in Block1 pieces (RFC 7959 2.5): reassembled up to
 * max_body, never further; the batch is handled when the last block arrives. */
static void handle_block1(mw_gateway_t *gw, struct peer *p, const mwi_coap_msg *m)
{
    if (p->b1_buf == NULL) {
        p->b1_buf = malloc(gw->max_body);
        if (p->b1_buf == NULL) {
            refuse(gw, p, m, MWI_COAP_SERVICE_UNAVAILABLE, "out of memory");
            return;
        }
    }
    struct resp_opts o = {.flags = MWI_COAP_F_BLOCK1, .block1 = m->block1};
    mwi_block1_result r =
        mwi_coap_block1_input(&p->b1, p->b1_buf, gw->max_body, m, gw->now_ms, &gw->params);
    switch (r) {
    case MWI_BLOCK1_CONTINUE:
        respond_opts(gw, p, m, MWI_COAP_CONTINUE, -1, NULL, 0, &o);
        return;
    case MWI_BLOCK1_TOO_LARGE: {
        gw->st.bodies_too_large++;
        struct resp_opts big = {.flags = MWI_COAP_F_SIZE1, .size1 = (uint32_t)gw->max_body};
        free(p->b1_buf);
        p->b1_buf = NULL;
        respond_opts(gw, p, m, MWI_COAP_REQUEST_ENTITY_TOO_LARGE, -1,
                     (const uint8_t *)"body larger than the gateway accepts", 36, &big);
        return;
    }
    case MWI_BLOCK1_INCOMPLETE:
        free(p->b1_buf);
        p->b1_buf = NULL;
        refuse(gw, p, m, MWI_COAP_REQUEST_ENTITY_INCOMPLETE, "block out of order");
        return;
    case MWI_BLOCK1_COMPLETE: {
        mwi_coap_msg whole = *m;
        whole.payload = p->b1_buf;
        whole.payload_len = p->b1.len;
        o.block1 = m->block1 & ~8u; /* echo the last block, M = 0 */
        handle_batch(gw, p, &whole, &o);
        free(p->b1_buf);
        p->b1_buf = NULL;
        return;
    }
    }
}

static void on_record(void *ctx, const uint8_t *data, size_t len)
{
    mw_gateway_t *gw = ctx;
    struct peer *p = gw->cur;
    mwi_coap_msg m;
    mw_err e = mwi_coap_parse(gw->parser, data, len, &m);
    if (e != MW_OK) {
        /* A malformed CON is rejected with RST when its MID can be read (RFC 7252 4.2). */
        if (len >= 4 && (data[0] >> 6) == 1 && ((data[0] >> 4) & 3) == MWI_COAP_CON) {
            uint8_t rst[4] = {(uint8_t)(0x40 | (MWI_COAP_RST << 4)), 0, data[2], data[3]};
            write_lossy(p->conn, rst, sizeof rst);
        }
        return;
    }
    if (!MWI_COAP_IS_REQUEST(m.code)) {
        if (m.type == MWI_COAP_CON && m.code == MWI_COAP_EMPTY) {
            /* CoAP ping (RFC 7252 4.3): answer with RST. */
            mwi_coap_msg r;
            uint8_t out[8];
            size_t n;
            if (mwi_coap_make_rst(&m, &r) == MW_OK &&
                mwi_coap_encode(&r, out, sizeof out, &n) == MW_OK)
                write_lossy(p->conn, out, n);
        }
        return; /* the gateway sends no requests, so expects no responses */
    }
    if (m.type == MWI_COAP_CON || m.type == MWI_COAP_NON) {
        const mwi_coap_dedup_entry *dup = mwi_coap_dedup_find(&p->dedup, m.type, m.mid, gw->now_ms);
        if (dup != NULL) {
            /* Processed once already: same answer, no second processing. */
            gw->st.coap_duplicates++;
            if (dup->has_response)
                write_lossy(p->conn, dup->response, dup->len);
            return;
        }
    }
    if (m.unknown_critical) {
        refuse(gw, p, &m, MWI_COAP_BAD_OPTION, "unrecognised critical option");
        return;
    }
    if (strcmp(m.uri_path, BATCH_PATH) == 0) {
        if ((m.flags & MWI_COAP_F_BLOCK1) && m.code == MWI_COAP_POST)
            handle_block1(gw, p, &m);
        else
            handle_batch(gw, p, &m, NULL);
    } else if (strcmp(m.uri_path, WELL_KNOWN_PATH) == 0) {
        if (m.code != MWI_COAP_GET)
            refuse(gw, p, &m, MWI_COAP_METHOD_NOT_ALLOWED, "use GET");
        else
            respond(gw, p, &m, MWI_COAP_CONTENT, CF_LINK_FORMAT, (const uint8_t *)LINKS,
                    strlen(LINKS));
    } else {
        refuse(gw, p, &m, MWI_COAP_NOT_FOUND, "no such resource");
    }
}

static void handshake_failed(mw_gateway_t *gw, struct peer *p, mwi_dtls_conn *c)
{
    mw_error_detail_t d;
    mwi_dtls_conn_error(c, &d);
    if (d.err == MW_OK)
        d.err = MW_EDTLS;
    count_hs_failure(gw, d.err);
    audit(gw, MW_AUDIT_HANDSHAKE_FAILED, p->text, "", d.err, d.foreign, d.reason);
}

static void established(mw_gateway_t *gw, struct peer *p, mwi_dtls_conn *c)
{
    char why[160];
    gw->st.handshakes_completed++;
    snprintf(why, sizeof why, "device authenticated (%.40s)", mwi_dtls_conn_cipher(c));
    audit(gw, MW_AUDIT_SESSION_ESTABLISHED, p->text, mwi_dtls_conn_peer_id(c), MW_OK, 0, why);
}

/* Feeds a datagram to one of the peer's connections; returns false if the
 * peer should be removed (its only connection failed). */
static bool feed(mw_gateway_t *gw, struct peer *p, mwi_dtls_conn **pc, const uint8_t *buf,
                 size_t len, uint64_t now)
{
    mwi_dtls_conn *c = *pc;
    bool was = mwi_dtls_conn_established(c);
    gw->cur = p;
    mw_err e = mwi_dtls_conn_input(c, buf, len, now, on_record, gw);
    gw->cur = NULL;
    /* Completed or failed, it is no longer half-open: a handshake that ends frees its place
     * for the next at once, not at the next sweep (which recounts anyway). */
    if (!was && e != MW_EINPROGRESS && gw->half_open > 0)
        gw->half_open--;
    if (e == MW_OK && !was) {
        established(gw, p, c);
        if (pc == &p->next) {
            /* Make-before-break: the new session replaces the old only now. */
            if (mwi_dtls_conn_established(p->conn) && gw->st.sessions > 0)
                gw->st.sessions--;
            mwi_dtls_conn_destroy(&p->conn);
            p->conn = p->next;
            p->next = NULL;
        }
        gw->st.sessions++;
        return true;
    }
    if (e == MW_OK || e == MW_EINPROGRESS)
        return true;
    if (!was) {
        handshake_failed(gw, p, c);
    } else {
        mw_error_detail_t d;
        mwi_dtls_conn_error(c, &d);
        audit(gw, MW_AUDIT_SESSION_CLOSED, p->text, mwi_dtls_conn_peer_id(c), d.err, d.foreign,
              d.reason);
        if (gw->st.sessions > 0)
            gw->st.sessions--;
    }
    mwi_dtls_conn_destroy(pc);
    if (pc == &p->next)
        return p->conn != NULL;
    if (p->next) {
        p->conn = p->next;
        p->next = NULL;
        return true;
    }
    return false;
}

/* Audit lines about unverified or abusive sources are rate-limited: a flood
 * must not become a flood of audit lines. */
static bool audit_allowed(mw_gateway_t *gw, uint64_t now)
{
    if (now - gw->audit_window_ms >= 1000) {
        gw->audit_window_ms = now;
        gw->audit_in_window = 0;
    }
    if (gw->audit_in_window >= UNVERIFIED_AUDIT_PER_S)
        return false;
    gw->audit_in_window++;
    return true;
}

/* A ClientHello refused before its sender proved its address (for example
 * no cipher suite in common) is audited, but at a bounded rate: the source
 * may be spoofed, and a flood must not become a flood of audit lines. */
static void stateless_result(mw_gateway_t *gw, const mw_addr_t *from, mw_err e,
                             const mw_error_detail_t *d, uint64_t now)
{
    if (e == MW_EAGAIN) {
        gw->st.hello_verify_sent++;
        return;
    }
    count_hs_failure(gw, e);
    if (!audit_allowed(gw, now))
        return;
    char txt[64], why[240];
    if (mw_addr_format(from, txt, sizeof txt) != MW_OK)
        txt[0] = '\0';
    snprintf(why, sizeof why, "%.180s (before the cookie exchange: address unverified)",
             d->reason[0] ? d->reason : mw_strerror(e));
    audit(gw, MW_AUDIT_HANDSHAKE_FAILED, txt, "", e, d->foreign, why);
}

static void handle_datagram(mw_gateway_t *gw, const mw_addr_t *from, const uint8_t *buf, size_t len,
                            uint64_t now)
{
    bool hello = mwi_dtls_is_client_hello(buf, len);
    if (hello && !mwi_dtls_client_hello_well_formed(buf, len)) {
        /* Kept from wolfSSL's parser (CVE-2026-3547 and its like), whoever sends it. */
        gw->st.hellos_malformed++;
        return;
    }
    struct peer **slot = peer_slot(gw, from);
    struct peer *p = *slot;
    if (p != NULL) {
        /* Token bucket per peer: a device that floods loses its excess
         * datagrams and disturbs no one else. */
        double add = (double)(now - p->tokens_ms) * gw->rate_per_s / 1000.0;
        p->tokens = p->tokens + add > gw->rate_burst ? gw->rate_burst : p->tokens + add;
        p->tokens_ms = now;
        if (p->tokens < 1.0) {
            gw->st.rate_limited++;
            return;
        }
        p->tokens -= 1.0;
        p->last_rx_ms = now;
        if (hello && mwi_dtls_conn_established(p->conn)) {
            /* wolfSSL drops a new ClientHello on an established session: a
             * device that rebooted would be locked out. Run it as a new
             * session beside the old one (DESIGN.md). */
            if (p->next == NULL) {
                mwi_dtls_conn *c = NULL;
                mw_error_detail_t d;
                mw_err e =
                    mwi_dtls_accept(gw->dtls, from, buf, len, now, route_send, &p->route, &c, &d);
                if (e == MW_OK) {
                    gw->st.handshakes_started++;
                    gw->half_open++;
                    p->next = c;
                    p->next_started_ms = now;
                } else {
                    stateless_result(gw, from, e, &d, now);
                }
                return;
            }
            (void)feed(gw, p, &p->next, buf, len, now);
            return;
        }
        /* While a new handshake runs beside an established session, its
         * handshake and CCS records go to it and application data to the old. */
        mwi_dtls_conn **pc = &p->conn;
        if (p->next && (buf[0] == 22 || buf[0] == 20))
            pc = &p->next;
        if (!feed(gw, p, pc, buf, len, now))
            peer_remove(gw, p);
        return;
    }
    /* Unknown address: no state unless the ClientHello carries a valid cookie. */
    if (!hello)
        return;
    if (gw->npeers >= gw->max_peers || gw->half_open >= gw->max_half_open) {
        /* Checked before any work: a full table costs a flood nothing. */
        gw->st.peer_limit_drops++;
        char txt[64];
        if (!audit_allowed(gw, now))
            return;
        if (mw_addr_format(from, txt, sizeof txt) != MW_OK)
            txt[0] = '\0';
        audit(gw, MW_AUDIT_PEER_LIMIT, txt, "", MW_EFULL, 0,
              gw->npeers >= gw->max_peers
                  ? "session table full: raise max_peers or reap idle sessions"
                  : "too many handshakes in progress: new ones wait until some finish");
        return;
    }
    struct peer *np = calloc(1, sizeof *np);
    if (np == NULL)
        return;
    np->route.gw = gw;
    np->route.addr = *from;
    mwi_dtls_conn *c = NULL;
    mw_error_detail_t d;
    mw_err e = mwi_dtls_accept(gw->dtls, from, buf, len, now, route_send, &np->route, &c, &d);
    if (e != MW_OK) {
        free(np);
        stateless_result(gw, from, e, &d, now);
        return;
    }
    gw->st.handshakes_started++;
    gw->half_open++;
    np->conn = c;
    np->conn_started_ms = now;
    np->tokens = gw->rate_burst;
    np->tokens_ms = now;
    np->last_rx_ms = now;
    if (mw_addr_format(from, np->text, sizeof np->text) != MW_OK)
        snprintf(np->text, sizeof np->text, "?");
    np->hnext = NULL;
    *slot = np;
    gw->npeers++;
}

static bool reap_half_open(mw_gateway_t *gw, struct peer *p, mwi_dtls_conn **pc, uint64_t started,
                           uint64_t now)
{
    if (*pc == NULL || mwi_dtls_conn_established(*pc) || now - started < HALF_OPEN_MAX_MS)
        return false;
    count_hs_failure(gw, MW_EHANDSHAKE_TIMEOUT);
    if (audit_allowed(gw, now))
        audit(gw, MW_AUDIT_HANDSHAKE_FAILED, p->text, "", MW_EHANDSHAKE_TIMEOUT, 0,
              "handshake not completed in 30 s: dropped");
    mwi_dtls_conn_destroy(pc);
    return true;
}

static void run_timers(mw_gateway_t *gw, uint64_t now)
{
    uint32_t half_open = 0;
    uint64_t next_at = gw->npeers ? now + SWEEP_MS : UINT64_MAX;
    for (uint32_t b = 0; b < gw->peer_buckets; b++) {
        struct peer *p = gw->peers[b];
        while (p) {
            struct peer *nx = p->hnext;
            bool keep = true;
            (void)reap_half_open(gw, p, &p->conn, p->conn_started_ms, now);
            (void)reap_half_open(gw, p, &p->next, p->next_started_ms, now);
            mwi_dtls_conn **cs[2] = {&p->conn, &p->next};
            for (int i = 0; i < 2; i++) {
                mwi_dtls_conn **pc = cs[i];
                if (*pc == NULL || now < mwi_dtls_conn_deadline(*pc))
                    continue;
                mw_err e = mwi_dtls_conn_timer(*pc, now);
                if (e == MW_EINPROGRESS || e == MW_OK)
                    continue;
                handshake_failed(gw, p, *pc);
                mwi_dtls_conn_destroy(pc);
            }
            if (p->conn == NULL && p->next != NULL) {
                p->conn = p->next;
                p->next = NULL;
            }
            if (p->conn == NULL)
                keep = false;
            else if (gw->idle_timeout_ms != 0 && now - p->last_rx_ms >= gw->idle_timeout_ms) {
                /* Silent sessions hold a wolfSSL object each; a device that comes
                 * back reconnects (close_notify tells it at once, if it listens). */
                audit(gw, MW_AUDIT_SESSION_CLOSED, p->text, mwi_dtls_conn_peer_id(p->conn), MW_OK,
                      0, "idle session reaped");
                /* Counted out here: once closed, peer_free no longer sees it established. */
                if (mwi_dtls_conn_established(p->conn) && gw->st.sessions > 0)
                    gw->st.sessions--;
                mwi_dtls_conn_close(p->conn);
                gw->st.idle_reaped++;
                keep = false;
            }
            if (!keep) {
                peer_remove(gw, p);
            } else {
                half_open += p->conn && !mwi_dtls_conn_established(p->conn);
                half_open += p->next && !mwi_dtls_conn_established(p->next);
                uint64_t d = mwi_dtls_conn_deadline(p->conn), d2 = mwi_dtls_conn_deadline(p->next);
                next_at = d < next_at ? d : next_at;
                next_at = d2 < next_at ? d2 : next_at;
            }
            p = nx;
        }
    }
    gw->half_open = half_open;
    gw->timers_at = next_at;
    gw->st.peers = gw->npeers;
    gw->st.half_open = half_open;
}

/* A datagram may have armed a handshake timer of its peer's: bring the next
 * sweep forward to it. O(1), so a poll's cost does not grow with the table. */
static void note_timers(mw_gateway_t *gw, const mw_addr_t *from)
{
    const struct peer *p = *peer_slot(gw, from);
    if (p == NULL)
        return;
    uint64_t d = mwi_dtls_conn_deadline(p->conn), d2 = mwi_dtls_conn_deadline(p->next);
    if (d < gw->timers_at)
        gw->timers_at = d;
    if (d2 < gw->timers_at)
        gw->timers_at = d2;
}

static uint64_t next_deadline(const mw_gateway_t *gw)
{
    /* Not a walk over the peers: at 5,000 sessions that would cost every poll. */
    return gw->timers_at;
}

static void send_deferred(mw_gateway_t *gw)
{
    for (size_t i = 0; i < gw->ndeferred; i++) {
        struct deferred *d = &gw->deferred[i];
        struct peer *p = *peer_slot(gw, &d->addr);
        if (p != NULL && p->conn != NULL)
            write_lossy(p->conn, d->bytes, d->len);
    }
    gw->ndeferred = 0;
}

/* Makes everything staged since the last commit durable -- the sink's
 * output first, then the store with the sink's checkpoint -- and only then
 * lets the acknowledgements go. If either fails, the poll is undone: replay
 * state restored, the sink rolled back to the last checkpoint, the cached
 * responses forgotten, nothing acknowledged; the devices send again. */
static void record_commit_time(mw_gateway_t *gw, uint64_t us)
{
    static const uint64_t bounds[] = MW_GATEWAY_COMMIT_BOUNDS_US;
    _Static_assert(sizeof bounds / sizeof bounds[0] + 1 == MW_GATEWAY_COMMIT_BUCKETS,
                   "one bucket per bound, and one above the last");
    size_t i = 0;
    while (i < sizeof bounds / sizeof bounds[0] && us > bounds[i])
        i++;
    gw->st.commits++;
    gw->st.commit_us_sum += us;
    gw->st.commit_us_buckets[i]++;
}

static void commit(mw_gateway_t *gw)
{
    if (!gw->dirty) {
        send_deferred(gw);
        gw->nundo = 0;
        return;
    }
    uint64_t ck = gw->checkpoint;
    mw_err e = gw->txn_failed ? MW_EIO : MW_OK;
    uint64_t t0 = now_us(gw);
    if (e == MW_OK && gw->sink_commit)
        e = gw->sink_commit(gw->sink_ctx, &ck);
    if (e == MW_OK && gw->store) {
        for (size_t i = 0; i < gw->nundo && e == MW_OK; i++) {
            e = mwi_store_begin(gw->store);
            if (e == MW_OK)
                e = mwi_store_put_device(gw->store, gw->undo[i].dv->id, &gw->undo[i].dv->rp,
                                         gw->undo[i].dv->next_command);
        }
        if (e == MW_OK)
            e = mwi_store_commit(gw->store, ck);
    }
    /* Custody transfer waits on this: its latency is what devices feel. */
    record_commit_time(gw, now_us(gw) - t0);
    if (e == MW_OK) {
        gw->checkpoint = ck;
        send_deferred(gw);
    } else {
        gw->st.store_failures++;
        if (gw->store)
            mwi_store_rollback(gw->store);
        for (size_t i = 0; i < gw->nundo; i++)
            gw->undo[i].dv->rp = gw->undo[i].before;
        for (size_t i = 0; i < gw->ndeferred; i++) {
            struct peer *p = *peer_slot(gw, &gw->deferred[i].addr);
            if (p)
                memset(&p->dedup, 0, sizeof p->dedup);
        }
        gw->ndeferred = 0;
        if (gw->sink_recover) {
            mw_err r = gw->sink_recover(gw->sink_ctx, gw->checkpoint);
            (void)r;
        }
        audit(gw, MW_AUDIT_STORE_FAILED, "", "", e, 0,
              "could not commit received messages; none was acknowledged, devices will resend");
    }
    gw->nundo = 0;
    gw->dirty = false;
    gw->txn_failed = false;
}

/* One received datagram; @p n is its real length. */
static void receive_one(mw_gateway_t *gw, const mw_addr_t *from, const uint8_t *buf, size_t n,
                        uint64_t now)
{
    gw->st.datagrams_received++;
    gw->st.bytes_received += n;
    if (n == 0 || n > MWI_DTLS_MAX_DATAGRAM)
        return; /* truncated or empty: not a DTLS datagram we can use */
    gw->now_ms = now;
    handle_datagram(gw, from, buf, n, now);
    note_timers(gw, from);
}

/* At most RX_BURST datagrams, then timers get their turn: a steady stream from
 * thousands of devices must not starve retransmissions and reaping. With a
 * batched receive, RX_BATCH of them per call into the transport. */
static mw_err receive_burst(mw_gateway_t *gw, uint64_t now, bool *did)
{
    if (gw->rxv == NULL) {
        for (int i = 0; i < RX_BURST; i++) {
            mw_addr_t from;
            size_t n = 0;
            mw_err e = gw->tp.recv(gw->tp.ctx, &from, gw->rx, sizeof gw->rx, &n);
            if (e == MW_EAGAIN)
                break;
            if (e != MW_OK)
                return e;
            *did = true;
            receive_one(gw, &from, gw->rx, n, now);
        }
        return MW_OK;
    }
    for (size_t left = RX_BURST; left > 0;) {
        size_t n = 0;
        mw_err e = gw->tp.recv_many(gw->tp.ctx, gw->rxv, left < RX_BATCH ? left : RX_BATCH, &n);
        if (e == MW_EAGAIN || (e == MW_OK && n == 0))
            break;
        if (e != MW_OK)
            return e;
        if (n > RX_BATCH)
            n = RX_BATCH; /* a transport that overran its slots is not believed */
        *did = true;
        for (size_t i = 0; i < n; i++)
            receive_one(gw, &gw->rxv[i].from, gw->rxv[i].buf, gw->rxv[i].len, now);
        /* A short batch emptied the socket: asking again would only return EAGAIN, one system
         * call per poll for nothing (what arrives meanwhile wakes the next poll). */
        if (n < (left < RX_BATCH ? left : RX_BATCH))
            break;
        left -= n < left ? n : left;
    }
    return MW_OK;
}

mw_err mw_gateway_poll(mw_gateway_t *gw, int timeout_ms)
{
    if (gw == NULL)
        return MW_EINVAL;
    uint64_t now = now_ms(gw);
    if (timeout_ms > 0) {
        uint64_t wait = (uint64_t)timeout_ms;
        uint64_t at = next_deadline(gw);
        if (at != UINT64_MAX)
            wait = at <= now ? 0 : (at - now < wait ? at - now : wait);
        if (wait > 0 && mw_wait_readable(gw->tp.fd, (int)wait) != MW_OK)
            return MW_ETRANSPORT;
        now = now_ms(gw);
    }
    bool did = false;
    mw_err e = receive_burst(gw, now, &did);
    if (e != MW_OK)
        return e;
    gw->now_ms = now;
    scan_comm_loss(gw, now);
    commit(gw);
    if (now >= gw->timers_at)
        run_timers(gw, now);
    gw->st.peers = gw->npeers;
    gw->st.half_open = gw->half_open;
    return did ? MW_OK : MW_EAGAIN;
}

mw_err mw_gateway_local_addr(const mw_gateway_t *gw, mw_addr_t *out)
{
    if (gw == NULL || out == NULL)
        return MW_EINVAL;
    if (!gw->own_tp)
        return MW_EINVAL;
    return mw_udp_local_addr(&gw->tp, out);
}

void mw_gateway_stats(const mw_gateway_t *gw, mw_gateway_stats_t *out)
{
    if (gw && out)
        *out = gw->st;
}

int mw_gateway_fd(const mw_gateway_t *gw)
{
    return gw ? gw->tp.fd : -1;
}

mw_err mw_gateway_send_command(mw_gateway_t *gw, const char *device_id, const mw_command_t *cmd,
                               uint64_t *out_id)
{
    if (gw == NULL || device_id == NULL || cmd == NULL || !mwi_device_id_valid(device_id))
        return MW_EINVAL;
    if (cmd->kind != MW_CMD_SET_INTERVAL && cmd->kind != MW_CMD_ACK_ALARM &&
        cmd->kind != MW_CMD_ROTATE_KEYS)
        return MW_EINVAL;
    struct device *dv = device_get(gw, device_id);
    if (dv == NULL)
        return MW_EIO;
    expire_commands(gw, dv);
    if (dv->ncmds == MWI_MAX_COMMANDS)
        return MW_EFULL;
    mw_command_t c = *cmd;
    c.id = dv->next_command++;
    if (c.expires_ms == 0)
        c.expires_ms = wall_ms(gw) + 60000u;
    dv->cmds[dv->ncmds++] = c;
    /* The id counter is committed with the next poll, before the command can
     * reach the device (it rides in an Ack, which waits for the commit). */
    touch(gw, dv);
    gw->dirty = true;
    if (out_id)
        *out_id = c.id;
    return MW_OK;
}

/* Closes the established sessions whose device certificate @p ctx no longer
 * accepts (revoked by its CRL; with @p chain also another CA or out of its
 * validity). The others carry on: their keys do not depend on it. */
static uint32_t close_invalidated(mw_gateway_t *gw, mwi_dtls_ctx *ctx, bool chain)
{
    uint32_t dropped = 0;
    for (uint32_t b = 0; b < gw->peer_buckets; b++) {
        struct peer *p = gw->peers[b];
        while (p) {
            struct peer *nx = p->hnext;
            if (mwi_dtls_conn_revalidate(p->conn, ctx, chain) != MW_OK) {
                mw_error_detail_t why;
                mwi_dtls_conn_error(p->conn, &why);
                audit(gw, MW_AUDIT_SESSION_CLOSED, p->text, mwi_dtls_conn_peer_id(p->conn),
                      why.err, why.foreign, why.reason);
                /* It was established (revalidate sent close_notify and marked
                 * it failed, so peer_free no longer counts it). */
                if (gw->st.sessions > 0)
                    gw->st.sessions--;
                peer_remove(gw, p);
                gw->st.sessions_invalidated++;
                dropped++;
            }
            p = nx;
        }
    }
    return dropped;
}

mw_err mw_gateway_reload_crl(mw_gateway_t *gw, const char *crl_file, mw_error_detail_t *d)
{
    if (gw == NULL || crl_file == NULL)
        return MW_EINVAL;
    mw_err e = mwi_dtls_ctx_reload_crl(gw->dtls, crl_file, d);
    if (e != MW_OK) {
        audit(gw, MW_AUDIT_CRL_RELOAD_FAILED, "", "", e, d ? d->foreign : 0,
              d ? d->reason : "cannot load the CRL; the previous one stays in force");
        return e;
    }
    /* The CRL in force is what a later credentials reload loads again. */
    char *path = copy_str(crl_file);
    if (path) {
        free(gw->crl_path);
        gw->crl_path = path;
    }
    /* Sessions that stay valid carry on; a revoked device's session ends now,
     * not at its next handshake. Checked against the current context: a
     * session made before a credentials reload holds an older one. */
    uint32_t dropped = close_invalidated(gw, gw->dtls, false);
    char msg[120];
    snprintf(msg, sizeof msg, "CRL reloaded; %u session(s) of revoked devices closed", dropped);
    audit(gw, MW_AUDIT_CRL_RELOADED, "", "", MW_OK, 0, msg);
    return MW_OK;
}

mw_err mw_gateway_reload_credentials(mw_gateway_t *gw, mw_error_detail_t *d)
{
    mw_error_detail_t scratch;
    if (d == NULL)
        d = &scratch;
    memset(d, 0, sizeof *d);
    if (gw == NULL)
        return MW_EINVAL;
    /* A new context for new handshakes, built and checked in full before it
     * replaces anything: a bad, missing or mismatched file leaves the gateway
     * exactly as it was. The old context is not changed in place: wolfSSL
     * objects borrow its certificate and key buffers, and established
     * sessions keep using it until they end (mwi_dtls_ctx is refcounted). */
    mwi_dtls_config dc = {
        .role = MWI_DTLS_SERVER,
        .ca_file = gw->ca_path,
        .cert_file = gw->cert_path,
        .key_file = gw->key_path,
        .crl_file = gw->crl_path,
    };
    mwi_dtls_ctx *fresh = NULL;
    mw_err e = mwi_dtls_ctx_create(&dc, &fresh, d);
    if (e != MW_OK) {
        gw->st.credential_reload_failures++;
        char why[sizeof d->reason + 64];
        snprintf(why, sizeof why, "%s; the previous credentials stay in force", d->reason);
        audit(gw, MW_AUDIT_CREDENTIALS_RELOAD_FAILED, "", "", e, d->foreign, why);
        return e;
    }
    mwi_dtls_ctx_share_cookie_secret(fresh, gw->dtls);
    mwi_dtls_ctx_destroy(&gw->dtls); /* lives on with the sessions made under it */
    gw->dtls = fresh;
    gw->st.credential_reloads++;
    uint32_t dropped = close_invalidated(gw, gw->dtls, true);
    char own[160], msg[300];
    if (mwi_dtls_ctx_own_cert_text(gw->dtls, own, sizeof own) != MW_OK)
        snprintf(own, sizeof own, "certificate");
    snprintf(msg, sizeof msg,
             "credentials reloaded: new handshakes get %s; %u session(s) no longer valid closed, "
             "the others carry on",
             own, dropped);
    audit(gw, MW_AUDIT_CREDENTIALS_RELOADED, "", "", MW_OK, 0, msg);
    if (gw->crl_path) {
        snprintf(msg, sizeof msg, "CRL reloaded with the credentials; %u session(s) closed",
                 dropped);
        audit(gw, MW_AUDIT_CRL_RELOADED, "", "", MW_OK, 0, msg);
    }
    return MW_OK;
}

int mw_gateway_next_timeout_ms(const mw_gateway_t *gw)
{
    if (gw == NULL)
        return -1;
    uint64_t at = next_deadline(gw);
    if (at == UINT64_MAX)
        return -1;
    uint64_t now = now_ms(gw);
    if (at <= now)
        return 0;
    return at - now > 0x7fffffff ? 0x7fffffff : (int)(at - now);
}

void mw_gateway_destroy(mw_gateway_t **pgw)
{
    if (pgw == NULL || *pgw == NULL)
        return;
    mw_gateway_t *gw = *pgw;
    if (gw->deferred && gw->undo)
        commit(gw); /* what was received is committed and acknowledged first */
    if (gw->peers) {
        for (uint32_t b = 0; b < gw->peer_buckets; b++) {
            struct peer *p = gw->peers[b];
            while (p) {
                struct peer *nx = p->hnext;
                /* Draining: devices learn at once, and reconnect (with
                 * backoff and jitter) to whoever listens next. */
                mwi_dtls_conn_close(p->conn);
                peer_free(gw, p);
                p = nx;
            }
        }
        free(gw->peers);
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
    }
    mwi_dtls_ctx_destroy(&gw->dtls);
    mwi_coap_parser_destroy(&gw->parser);
    mwi_store_close(&gw->store);
    free(gw->ca_path);
    free(gw->cert_path);
    free(gw->key_path);
    free(gw->crl_path);
    free(gw->deferred);
    free(gw->undo);
    free(gw->rxv);
    if (gw->own_tp && gw->tp.close)
        gw->tp.close(gw->tp.ctx);
    free(gw);
    *pgw = NULL;
}
