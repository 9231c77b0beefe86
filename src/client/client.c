/* SPDX-License-Identifier: Apache-2.0 */
/* client.c -- the device SDK: queue, batch, send over CoAP/DTLS, forget only what the gateway
 * acknowledged. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "medwire/client.h"

#include "coap/coap.h"
#include "core/detail.h"
#include "dtls/dtls.h"
#include "queue/queue.h"
#include "session/codec.h"
#include "session/command.h"

/* The batch resource (docs/protocol.md). */
#define BATCH_PATH "batch"
/* Bytes a CoAP request adds around the batch: header 4, token 8, Uri-Path
 * 1+5, Content-Format 1+2, payload marker 1, rounded up. */
#define COAP_OVERHEAD 32
#define BATCH_CAP     (MWI_DTLS_MAX_PLAINTEXT - COAP_OVERHEAD)
/* A handshake that has not completed after wolfSSL's first five timers
 * (1+2+4+8+16 s) is abandoned and retried with backoff, rather than waiting
 * the full 127 s wolfSSL would. */
#define HANDSHAKE_MAX_MS 31000u
/* Sequence numbers reserved per durable write of the sequence store: a power cut costs at
 * most this many unused numbers. */
#define SEQ_BLOCK 1024u
/* Requests in flight at once (NSTART, RFC 7252 4.7); the configured value is capped here. */
#define NSTART_MAX 4
/* A batch body that does not fit one record goes block-wise (RFC 7959) in
 * blocks of 1024 bytes (SZX 6), up to this size. */
#define BODY_MAX   4096
#define BLOCK_SZX  6
#define BLOCK_SIZE 1024u

enum state { ST_IDLE, ST_HANDSHAKE, ST_READY, ST_FAILED };

/* One outstanding CON: a batch (or one block of it) or a keepalive ping. */
struct req {
    mwi_coap_request r;
    bool used;
    bool ping;
    bool block; /* carries c->body in Block1 pieces */
    uint32_t block_num;
    uint8_t buf[MWI_DTLS_MAX_PLAINTEXT]; /* the bytes sent, for retransmission */
    size_t len;
    uint8_t nseq;
    uint64_t seqs[MWI_MAX_BATCH]; /* the messages it carries */
};

struct mw_client {
    mwi_dtls_ctx *dtls;
    mwi_dtls_conn *conn;
    /* Make-before-break: a fresh full handshake beside the current session
     * (key rotation, or a gateway that stopped answering); it replaces the
     * current one only once it is up. */
    mwi_dtls_conn *next;
    uint64_t next_started_ms;
    uint64_t session_started_ms;
    uint64_t session_records, session_bytes;
    uint64_t rekey_after_ms, rekey_after_records, rekey_after_bytes;
    uint8_t rekey_after_retransmits;
    bool rekey_requested;
    mwi_cmd_guard cmd_guard;
    mwi_dtls_session *saved; /* the last session, resumed by ID on reconnection */
    mw_command_fn *on_command;
    void *on_command_ctx;
    mw_transport_t tp;
    bool own_tp;
    mw_clock_t clock;
    mw_random_t rnd;
    mw_addr_t gw;
    char gw_text[64];
    mw_audit_fn *audit;
    void *audit_ctx;

    enum state state;
    uint64_t handshake_started_ms;
    uint64_t reconnect_at_ms;
    uint32_t reconnect_min_ms, reconnect_max_ms;
    uint32_t attempts; /* consecutive failed connection attempts */

    mwi_coap_parser *parser;
    mwi_coap_ids ids;
    mwi_coap_params params;
    struct req reqs[NSTART_MAX];
    uint32_t nstart;
    /* One block-wise body at a time; its request has block = true. */
    uint8_t body[BODY_MAX];
    size_t body_len;
    bool body_busy;
    bool no_block1; /* the gateway refused a block-wise body: keep batches to one record */
    uint32_t keepalive_ms;
    uint64_t last_rx_ms;

    /* The offline queue and the sequence numbers, in the vendor's region or in RAM. */
    mwi_queue *queue;
    mwi_seq seqs;
    mw_storage_t region;
    bool own_region;
    mw_storage_slice_t seq_slice, q_slice;
    mw_storage_t seq_st, q_st;
    uint32_t q_cap;
    mw_message_t batch[MWI_MAX_BATCH]; /* the messages of the batch being encoded */

    mw_client_stats_t st;
    mw_error_detail_t last;
    mw_err fatal;
    bool progressed;
    bool drop_requested; /* set inside a record callback, acted on after it */
    bool reconnect_requested; /* mw_client_reconnect: connect even with nothing to send */

    uint8_t rx[MWI_DTLS_MAX_DATAGRAM + 1];
};

static uint64_t now_ms(const mw_client_t *c)
{
    return c->clock.now_ms(c->clock.ctx);
}

static void set_last(mw_client_t *c, mw_err e, int foreign, const char *reason)
{
    mwi_detail_set(&c->last, e, foreign, reason);
}

static void audit(mw_client_t *c, const char *event, mw_err e, int foreign, const char *reason)
{
    if (c->audit == NULL)
        return;
    mw_audit_event_t ev = {
        .event = event,
        .peer = c->gw_text,
        .device = mwi_dtls_conn_peer_id(c->conn),
        .err = e,
        .foreign = foreign,
        .reason = reason ? reason : "",
    };
    c->audit(c->audit_ctx, &ev);
}

static void dtls_out(void *ctx, const uint8_t *buf, size_t len)
{
    mw_client_t *c = ctx;
    /* A send that would block is a lost datagram: DTLS and CoAP retransmit. */
    if (c->tp.send(c->tp.ctx, &c->gw, buf, len) == MW_OK) {
        c->st.datagrams_sent++;
        c->st.bytes_sent += len;
        c->session_records++;
        c->session_bytes += len;
    }
}

static mw_err default_random(void *ctx, uint8_t *out, size_t len)
{
    return mwi_dtls_random(ctx, out, len);
}

void mw_client_config_init(mw_client_config_t *cfg)
{
    if (cfg == NULL)
        return;
    memset(cfg, 0, sizeof *cfg);
    cfg->transport.fd = -1;
    cfg->queue_capacity = 256;
    cfg->ack_timeout_ms = 2000;
    cfg->max_retransmit = 4;
    cfg->rekey_after_retransmits = 2;
    cfg->reconnect_min_ms = 1000;
    cfg->reconnect_max_ms = 60000;
}

static mw_err fail_open(mw_error_detail_t *d, mw_err e, const char *reason)
{
    mwi_detail_first(d, e, 0, reason);
    return e;
}

mw_err mw_client_storage_size(uint32_t capacity, uint32_t erase_unit, uint32_t write_unit,
                              uint32_t *out_size)
{
    uint32_t q = 0;
    if (out_size == NULL || mwi_queue_region_min(capacity, erase_unit, write_unit, &q) != MW_OK)
        return MW_EINVAL;
    uint64_t total = (uint64_t)mwi_seq_region_size(erase_unit, write_unit) + 2u * (uint64_t)q;
    if (total > UINT32_MAX)
        return MW_EINVAL;
    *out_size = (uint32_t)total;
    return MW_OK;
}

/* What the queue reports (while it recovers at open, and on eviction) goes to the audit log;
 * the gap records follow from the queue's gap table (send_gaps). */
static void on_queue_event(void *ctx, const mwi_queue_event *ev)
{
    mw_client_t *c = ctx;
    const char *name = MW_AUDIT_QUEUE_TORN;
    mw_err e = MW_EIO;
    if (ev->kind == MWI_QUEUE_EVICTED) {
        name = MW_AUDIT_QUEUE_EVICTED;
        e = MW_EFULL;
        c->st.messages_evicted++;
    } else if (ev->kind == MWI_QUEUE_CORRUPT) {
        name = MW_AUDIT_QUEUE_CORRUPT;
        c->st.messages_corrupt++;
    }
    char why[240];
    snprintf(why, sizeof why, "%s (seq %llu, priority %u, at byte %lu, %lu bytes)",
             ev->reason ? ev->reason : "", (unsigned long long)ev->seq, (unsigned)ev->priority,
             (unsigned long)ev->offset, (unsigned long)ev->length);
    audit(c, name, e, 0, why);
}

/* The region: the sequence store first, the queue after it; in RAM when the vendor gave none
 * (with a random key: what RAM holds dies with the process anyway). */
static mw_err open_queue(mw_client_t *c, const mw_client_config_t *cfg, mw_error_detail_t *d)
{
    uint8_t key[MWI_QUEUE_KEY_256];
    const uint8_t *k = cfg->queue_key;
    size_t klen = cfg->queue_key_len;
    mw_err e;
    if (cfg->storage != NULL) {
        if (k == NULL || (klen != MWI_QUEUE_KEY_128 && klen != MWI_QUEUE_KEY_256))
            return fail_open(d, MW_ECONFIG,
                             "a queue key of 16 or 32 bytes is required with persistent storage");
        c->region = *cfg->storage;
    } else {
        uint32_t size = 0;
        if (mw_client_storage_size(c->q_cap, 1, 1, &size) != MW_OK)
            return fail_open(d, MW_ECONFIG, "queue capacity too large");
        e = mwi_mem_region_open(size, &c->region);
        if (e != MW_OK)
            return fail_open(d, e, "out of memory for the queue");
        c->own_region = true;
        if (c->rnd.fill(c->rnd.ctx, key, sizeof key) != MW_OK)
            return fail_open(d, MW_EINTERNAL, "the random source failed");
        k = key;
        klen = sizeof key;
    }
    uint32_t need = 0, seq_size = mwi_seq_region_size(c->region.erase_unit, c->region.write_unit);
    if (mwi_queue_region_min(c->q_cap, c->region.erase_unit, c->region.write_unit, &need) !=
            MW_OK ||
        (uint64_t)seq_size + need > c->region.size) {
        char why[200];
        snprintf(why, sizeof why,
                 "the storage region (%lu bytes) is too small for %lu messages: it needs at "
                 "least %llu bytes (mw_client_storage_size gives the recommended size)",
                 (unsigned long)c->region.size, (unsigned long)c->q_cap,
                 (unsigned long long)seq_size + need);
        return fail_open(d, MW_ECONFIG, why);
    }
    e = mw_storage_slice(&c->region, 0, seq_size, &c->seq_slice, &c->seq_st);
    if (e == MW_OK)
        e = mw_storage_slice(&c->region, seq_size, c->region.size - seq_size, &c->q_slice,
                             &c->q_st);
    if (e != MW_OK)
        return fail_open(d, MW_ECONFIG,
                         "the storage region's geometry does not allow splitting it (erase unit)");
    e = mwi_seq_open(&c->seq_st, SEQ_BLOCK, cfg->first_seq, &c->seqs, d);
    if (e != MW_OK)
        return e;
    mwi_seq_raise(&c->seqs, cfg->first_seq);
    mwi_queue_config qc;
    mwi_queue_config_init(&qc);
    qc.storage = &c->q_st;
    qc.key = k;
    qc.key_len = klen;
    qc.capacity = c->q_cap;
    qc.group_commit_n = cfg->group_commit_n;
    qc.group_commit_ms = cfg->group_commit_ms;
    qc.on_event = on_queue_event;
    qc.event_ctx = c;
    e = mwi_queue_open(&qc, &c->queue, d);
    memset(key, 0, sizeof key);
    return e;
}

mw_err mw_client_open(const mw_client_config_t *cfg, mw_client_t **out, mw_error_detail_t *d)
{
    if (d)
        memset(d, 0, sizeof *d);
    if (cfg == NULL || out == NULL)
        return fail_open(d, MW_EINVAL, "a configuration and an output pointer are required");
    *out = NULL;
    if (cfg->ca_file == NULL || cfg->cert_file == NULL || cfg->key_file == NULL)
        return fail_open(d, MW_ECONFIG,
                         "a CA file, a device certificate and its key are all required");
    if (cfg->gateway_name == NULL)
        return fail_open(d, MW_ECONFIG, "the expected gateway name is required");
    if (cfg->gateway == NULL && cfg->gateway_addr.len == 0)
        return fail_open(d, MW_ECONFIG, "the gateway address (HOST:PORT) is required");
    if (cfg->queue_capacity == 0 || cfg->max_retransmit == 0 || cfg->ack_timeout_ms == 0)
        return fail_open(d, MW_ECONFIG,
                         "queue capacity, ack timeout and max retransmit must be positive");

    mw_err e;
    mw_client_t *c = calloc(1, sizeof *c);
    if (c == NULL)
        return fail_open(d, MW_ENOMEM, "out of memory");
    c->tp.fd = -1;
    c->q_cap = cfg->queue_capacity;
    mwi_dtls_config dc = {
        .role = MWI_DTLS_CLIENT,
        .ca_file = cfg->ca_file,
        .cert_file = cfg->cert_file,
        .key_file = cfg->key_file,
        .peer_name = cfg->gateway_name,
    };
    e = mwi_dtls_ctx_create(&dc, &c->dtls, d);
    if (e != MW_OK)
        goto fail;
    if (cfg->gateway) {
        e = mw_addr_parse(cfg->gateway, &c->gw);
        if (e != MW_OK) {
            char why[160];
            snprintf(why, sizeof why, "cannot resolve the gateway address '%.100s' (HOST:PORT)",
                     cfg->gateway);
            e = fail_open(d, e, why);
            goto fail;
        }
    } else {
        c->gw = cfg->gateway_addr;
    }
    if (mw_addr_format(&c->gw, c->gw_text, sizeof c->gw_text) != MW_OK)
        snprintf(c->gw_text, sizeof c->gw_text, "?");
    c->clock = cfg->clock.now_ms ? cfg->clock : mw_clock_system();
    if (cfg->random.fill) {
        c->rnd = cfg->random;
    } else {
        c->rnd.fill = default_random;
        c->rnd.ctx = c->dtls;
    }
    if (cfg->transport.send) {
        c->tp = cfg->transport;
    } else {
        e = mw_udp_open(cfg->bind ? cfg->bind : "0.0.0.0:0", &c->tp);
        if (e != MW_OK) {
            e = fail_open(d, e, "cannot open a UDP socket");
            goto fail;
        }
        c->own_tp = true;
    }
    mwi_coap_params_default(&c->params);
    c->params.ack_timeout_ms = cfg->ack_timeout_ms;
    c->params.max_retransmit = cfg->max_retransmit;
    e = mwi_coap_parser_create(MWI_DTLS_MAX_DATAGRAM, &c->parser);
    if (e != MW_OK) {
        e = fail_open(d, e, "cannot create the CoAP parser");
        goto fail;
    }
    e = mwi_coap_ids_init(&c->ids, c->rnd);
    if (e != MW_OK) {
        e = fail_open(d, e, "the random source failed");
        goto fail;
    }
    c->nstart = cfg->nstart == 0 ? 1 : (cfg->nstart > NSTART_MAX ? NSTART_MAX : cfg->nstart);
    c->rekey_after_ms = cfg->rekey_after_ms;
    c->rekey_after_records = cfg->rekey_after_records;
    c->rekey_after_bytes = cfg->rekey_after_bytes;
    c->rekey_after_retransmits = cfg->rekey_after_retransmits;
    c->on_command = cfg->on_command;
    c->on_command_ctx = cfg->on_command_ctx;
    c->keepalive_ms = cfg->keepalive_ms;
    c->reconnect_min_ms = cfg->reconnect_min_ms ? cfg->reconnect_min_ms : 1000;
    c->reconnect_max_ms = cfg->reconnect_max_ms ? cfg->reconnect_max_ms : 60000;
    if (c->reconnect_max_ms < c->reconnect_min_ms)
        c->reconnect_max_ms = c->reconnect_min_ms;
    c->audit = cfg->audit;
    c->audit_ctx = cfg->audit_ctx;
    e = open_queue(c, cfg, d);
    if (e != MW_OK)
        goto fail;
    c->state = ST_IDLE;
    *out = c;
    return MW_OK;
fail:
    mw_client_close(&c);
    return e;
}

/* The queue's time base: wall time when the clock has it, so that the age of what a restart
 * recovered stays right; the monotonic clock otherwise. */
static uint64_t qnow(const mw_client_t *c)
{
    int synced;
    return c->clock.wall_ms ? c->clock.wall_ms(c->clock.ctx, &synced) : now_ms(c);
}

static uint32_t depth(const mw_client_t *c)
{
    return mwi_queue_depth(c->queue);
}

/* An error the client cannot go on after: polling returns it from now on. */
static mw_err fail_fatal(mw_client_t *c, mw_err e, int foreign, const char *why)
{
    set_last(c, e, foreign, why);
    c->fatal = e;
    c->state = ST_FAILED;
    return e;
}

/* A storage failure ends the client: what is durable stays for the next open. */
static mw_err storage_failed(mw_client_t *c, mw_err e)
{
    mw_error_detail_t d;
    mwi_queue_last_error(c->queue, &d);
    char why[240];
    snprintf(why, sizeof why, "the offline queue's storage failed (%.150s): close and reopen the client",
             d.reason[0] ? d.reason : mw_strerror(e));
    return fail_fatal(c, e, d.foreign, why);
}

static mw_err enqueue(mw_client_t *c, mw_message_t *m, uint64_t *out_seq)
{
    if (c->fatal != MW_OK)
        return c->fatal;
    int synced = 0;
    m->seq = mwi_seq_peek(&c->seqs);
    snprintf(m->device_id, sizeof m->device_id, "%s", mwi_dtls_ctx_own_id(c->dtls));
    m->device_time_ms = c->clock.wall_ms ? c->clock.wall_ms(c->clock.ctx, &synced) : 0;
    m->time_synced = synced != 0;
    /* A message the gateway would refuse must not enter the queue: a batch is
     * accepted or refused whole, so it would block everything behind it. */
    mw_err e = mwi_message_check(m);
    if (e != MW_OK)
        return e;
    /* A number only for a message that can be kept. */
    if (!mwi_queue_accepts(c->queue, m->priority))
        return MW_EFULL;
    e = mwi_seq_next(&c->seqs, &m->seq);
    if (e == MW_EIO || e == MW_ECLOSED)
        return fail_fatal(c, MW_EIO, 0,
                          "the sequence store's storage failed: close and reopen the client");
    if (e != MW_OK)
        return e;
    e = mwi_queue_append(c->queue, m, qnow(c));
    if (e == MW_EIO || e == MW_ECLOSED)
        return storage_failed(c, e);
    if (e != MW_OK)
        return e;
    c->st.messages_queued++;
    if (out_seq)
        *out_seq = m->seq;
    return MW_OK;
}

static uint64_t stamp(const mw_client_t *c, uint64_t t)
{
    int synced;
    if (t != 0 || c->clock.wall_ms == NULL)
        return t;
    return c->clock.wall_ms(c->clock.ctx, &synced);
}

mw_err mw_client_send_observation(mw_client_t *c, const mw_observation_t *obs, uint64_t *out_seq)
{
    if (c == NULL || obs == NULL)
        return MW_EINVAL;
    mw_message_t m;
    memset(&m, 0, sizeof m);
    m.type = MW_MSG_OBSERVATION;
    m.priority = MW_PRIORITY_OBSERVATION;
    m.u.observation = *obs;
    m.u.observation.time_ms = stamp(c, obs->time_ms);
    return enqueue(c, &m, out_seq);
}

mw_err mw_client_raise_alarm(mw_client_t *c, const mw_alarm_t *alarm, uint64_t *out_seq)
{
    if (c == NULL || alarm == NULL)
        return MW_EINVAL;
    mw_message_t m;
    memset(&m, 0, sizeof m);
    m.type = MW_MSG_ALARM;
    m.priority = MW_PRIORITY_ALARM;
    m.u.alarm = *alarm;
    m.u.alarm.time_ms = stamp(c, alarm->time_ms);
    return enqueue(c, &m, out_seq);
}

mw_err mw_client_send_status(mw_client_t *c, const mw_device_status_t *st, uint64_t *out_seq)
{
    if (c == NULL || st == NULL)
        return MW_EINVAL;
    mw_message_t m;
    memset(&m, 0, sizeof m);
    m.type = MW_MSG_STATUS;
    m.priority = MW_PRIORITY_STATUS;
    m.u.status = *st;
    return enqueue(c, &m, out_seq);
}

/* Full jitter (a random delay in [0, min(max, min * 2^attempts)]) so that a
 * fleet that lost its gateway at once does not come back at once. */
static void schedule_reconnect(mw_client_t *c, uint64_t now)
{
    uint64_t cap = c->reconnect_min_ms;
    for (uint32_t i = 0; i < c->attempts && cap < c->reconnect_max_ms; i++)
        cap *= 2;
    if (cap > c->reconnect_max_ms)
        cap = c->reconnect_max_ms;
    uint32_t r = 0;
    if (c->rnd.fill(c->rnd.ctx, (uint8_t *)&r, sizeof r) != MW_OK)
        r = 0;
    c->reconnect_at_ms = now + (cap ? (uint64_t)r % (cap + 1) : 0);
    c->attempts++;
}

static void drop_link(mw_client_t *c, uint64_t now)
{
    mwi_dtls_conn_destroy(&c->next);
    mwi_dtls_conn_destroy(&c->conn);
    for (size_t i = 0; i < NSTART_MAX; i++)
        c->reqs[i].used = false; /* their messages stay queued and go again */
    c->body_busy = false;
    c->st.connected = false;
    c->state = ST_IDLE;
    schedule_reconnect(c, now);
}

static bool is_fatal_handshake(mw_err e)
{
    switch (e) {
    case MW_ECERT_EXPIRED:
    case MW_ECERT_NOT_YET_VALID:
    case MW_ECERT_UNTRUSTED:
    case MW_ECERT_REVOKED:
    case MW_ECERT_ROLE:
    case MW_ECERT_NAME:
    case MW_ECERT_IDENTITY:
    case MW_ENO_PEER_CERT:
    case MW_ECIPHER:
    case MW_EPEER_ALERT:
        return true;
    default:
        return false;
    }
}

static void handshake_failed(mw_client_t *c, uint64_t now)
{
    mw_error_detail_t d;
    mwi_dtls_conn_error(c->conn, &d);
    if (d.err == MW_OK)
        d.err = MW_EDTLS;
    c->st.handshake_failures++;
    set_last(c, d.err, d.foreign, d.reason);
    audit(c, MW_AUDIT_HANDSHAKE_FAILED, d.err, d.foreign, d.reason);
    if (is_fatal_handshake(d.err)) {
        /* Retrying cannot fix a certificate or a refusal: say so once, stop. */
        mwi_dtls_conn_destroy(&c->conn);
        c->state = ST_FAILED;
        c->fatal = d.err;
        return;
    }
    drop_link(c, now);
}

static void start_handshake(mw_client_t *c, uint64_t now)
{
    mw_err e = mwi_dtls_conn_create(c->dtls, &c->gw, dtls_out, c, &c->conn);
    if (e != MW_OK) {
        set_last(c, e, 0, "cannot create a DTLS session");
        schedule_reconnect(c, now);
        return;
    }
    /* Reconnection resumes by session ID when it can (cheap, and the gateway
     * re-checks revocation); a rotation never does (start_rekey). */
    if (c->saved != NULL && mwi_dtls_conn_set_session(c->conn, c->saved) != MW_OK)
        mwi_dtls_session_free(&c->saved);
    c->state = ST_HANDSHAKE;
    c->handshake_started_ms = now;
    c->progressed = true;
    e = mwi_dtls_conn_start(c->conn, now);
    if (e != MW_EINPROGRESS && e != MW_OK)
        handshake_failed(c, now);
}

static void established(mw_client_t *c)
{
    char why[160];
    c->state = ST_READY;
    c->attempts = 0;
    c->reconnect_requested = false;
    c->last_rx_ms = now_ms(c);
    c->session_started_ms = c->last_rx_ms;
    c->session_records = c->session_bytes = 0;
    if (mwi_dtls_conn_resumed(c->conn))
        c->st.resumptions++;
    mwi_dtls_session_free(&c->saved);
    c->saved = mwi_dtls_conn_save_session(c->conn);
    c->st.handshakes++;
    c->st.connected = true;
    snprintf(why, sizeof why, "DTLS 1.2 session with gateway '%.64s' (%.40s)",
             mwi_dtls_conn_peer_id(c->conn), mwi_dtls_conn_cipher(c->conn));
    audit(c, MW_AUDIT_SESSION_ESTABLISHED, MW_OK, 0, why);
}

static bool req_carries(const struct req *q, uint64_t seq)
{
    for (uint8_t i = 0; i < q->nseq; i++)
        if (q->seqs[i] == seq)
            return true;
    return false;
}

static bool in_flight(const mw_client_t *c, uint64_t seq)
{
    for (size_t i = 0; i < NSTART_MAX; i++)
        if (c->reqs[i].used && req_carries(&c->reqs[i], seq))
            return true;
    return false;
}

static void release(mw_client_t *c, struct req *q)
{
    if (q->block)
        c->body_busy = false;
    q->used = false;
    q->block = false;
    q->nseq = 0;
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

/* Forgets the messages of @p q that the gateway acknowledged (custody
 * transfer): only those both carried and covered by a range. */
static void apply_ack(mw_client_t *c, struct req *q, const mwi_seq_range *r, size_t n)
{
    uint64_t got[MWI_MAX_BATCH];
    size_t k = 0;
    for (uint8_t i = 0; i < q->nseq; i++) {
        bool acked = false;
        for (size_t j = 0; j < n && !acked; j++)
            acked = q->seqs[i] >= r[j].first && q->seqs[i] <= r[j].last;
        if (acked)
            got[k++] = q->seqs[i];
    }
    if (k == 0)
        return;
    qsort(got, k, sizeof got[0], cmp_u64);
    mwi_seq_range ranges[MWI_MAX_ACK_RANGES];
    size_t nr = mwi_ranges_from_seqs(got, k, ranges, MWI_MAX_ACK_RANGES);
    size_t removed = 0;
    mw_err e = mwi_queue_ack(c->queue, ranges, nr, qnow(c), &removed);
    if (e != MW_OK) {
        (void)storage_failed(c, e);
        return;
    }
    c->st.messages_acked += removed;
}

static mw_err send_block(mw_client_t *c, struct req *q, uint64_t now);
static void start_rekey(mw_client_t *c, uint64_t now, const char *why);

static void command_result(mw_client_t *c, uint64_t id, mw_command_status st, const char *detail)
{
    mw_message_t m;
    memset(&m, 0, sizeof m);
    m.type = MW_MSG_COMMAND_RESULT;
    /* A result may close an alarm: it travels with alarm priority. */
    m.priority = MW_PRIORITY_ALARM;
    m.u.command_result.command_id = id;
    m.u.command_result.status = st;
    snprintf(m.u.command_result.detail, sizeof m.u.command_result.detail, "%s", detail);
    if (enqueue(c, &m, NULL) != MW_OK)
        set_last(c, MW_EFULL, 0, "queue full: a command result was not queued");
}

/* Commands ride in Acks (docs/protocol.md 9). Each is checked against
 * replay and expiry, run, and answered with a result message. */
static void run_commands(mw_client_t *c, const mw_command_t *cmds, size_t n)
{
    int synced = 0;
    uint64_t wall = c->clock.wall_ms ? c->clock.wall_ms(c->clock.ctx, &synced) : 0;
    for (size_t i = 0; i < n; i++) {
        const mw_command_t *cmd = &cmds[i];
        char why[160];
        switch (mwi_cmd_check(&c->cmd_guard, cmd, wall)) {
        case MWI_CMD_DUPLICATE:
            continue;
        case MWI_CMD_REPLAY:
            snprintf(why, sizeof why, "command %llu refused: not above the last one run (%llu)",
                     (unsigned long long)cmd->id, (unsigned long long)c->cmd_guard.last);
            audit(c, MW_AUDIT_COMMAND_REFUSED, MW_EREPLAY, 0, why);
            command_result(c, cmd->id, MW_CMD_REFUSED_REPLAY, "replayed command");
            continue;
        case MWI_CMD_EXPIRED:
            snprintf(why, sizeof why, "command %llu refused: expired at %llu, device time %llu%s",
                     (unsigned long long)cmd->id, (unsigned long long)cmd->expires_ms,
                     (unsigned long long)wall, synced ? "" : " (clock not synchronised)");
            audit(c, MW_AUDIT_COMMAND_REFUSED, MW_ETIMEDOUT, 0, why);
            mwi_cmd_done(&c->cmd_guard, cmd->id);
            command_result(c, cmd->id, MW_CMD_REFUSED_EXPIRED, "expired");
            continue;
        case MWI_CMD_RUN:
            break;
        }
        mwi_cmd_done(&c->cmd_guard, cmd->id);
        mw_command_status st;
        if (cmd->kind == MW_CMD_ROTATE_KEYS) {
            c->rekey_requested = true;
            st = MW_CMD_DONE;
        } else if ((cmd->kind == MW_CMD_SET_INTERVAL || cmd->kind == MW_CMD_ACK_ALARM) &&
                   c->on_command != NULL) {
            st = c->on_command(c->on_command_ctx, cmd);
        } else {
            st = MW_CMD_UNSUPPORTED;
        }
        command_result(c, cmd->id, st, st == MW_CMD_DONE ? "" : mw_command_status_name(st));
    }
}

static void on_response(mw_client_t *c, struct req *q, const mwi_coap_msg *m)
{
    uint8_t cls = (uint8_t)(m->code >> 5);
    if (q->block && m->code == MWI_COAP_CONTINUE) {
        /* 2.31: the gateway took this block; send the next (RFC 7959 2.5). */
        q->block_num++;
        if (send_block(c, q, now_ms(c)) != MW_OK)
            c->drop_requested = true;
        return;
    }
    if (q->block && m->code == MWI_COAP_REQUEST_ENTITY_TOO_LARGE) {
        /* The gateway takes smaller bodies: fall back to one record per batch. */
        c->no_block1 = true;
        release(c, q);
        return;
    }
    if (cls == 2) {
        mwi_seq_range r[MWI_MAX_ACK_RANGES];
        mw_command_t cmds[MWI_MAX_COMMANDS];
        size_t n = 0, ncmds = 0;
        if (m->content_format != MWI_COAP_CF_MEDWIRE_ACK ||
            mwi_ack_decode_cmds(m->payload, m->payload_len, r, MWI_MAX_ACK_RANGES, &n, cmds,
                                MWI_MAX_COMMANDS, &ncmds) != MW_OK) {
            /* Without a readable acknowledgement nothing may be forgotten. */
            set_last(c, MW_EDECODE, 0, "the gateway's acknowledgement could not be decoded");
            release(c, q);
            return;
        }
        apply_ack(c, q, r, n);
        release(c, q);
        run_commands(c, cmds, ncmds);
        c->progressed = true;
        return;
    }
    char why[160];
    int dl = (int)(m->payload_len < 100 ? m->payload_len : 100);
    snprintf(why, sizeof why, "the gateway refused our messages with %u.%02u%s%.*s", cls,
             (unsigned)(m->code & 0x1f), dl ? ": " : "", dl,
             m->payload ? (const char *)m->payload : "");
    set_last(c, MW_ECOAP_RESPONSE, m->code, why);
    release(c, q);
    if (cls == 5 || m->code == MWI_COAP_REQUEST_ENTITY_INCOMPLETE) {
        /* The gateway is alive but cannot take custody now (or lost the
         * transfer): try again later, after the record callback returns. */
        c->drop_requested = true;
        return;
    }
    c->fatal = MW_ECOAP_RESPONSE;
    c->state = ST_FAILED;
}

static void write_lossy(mwi_dtls_conn *c, const uint8_t *buf, size_t len)
{
    mw_err e = mwi_dtls_conn_write(c, buf, len);
    (void)e;
}

static void send_empty(mw_client_t *c, const mwi_coap_msg *to, uint8_t type)
{
    mwi_coap_msg e;
    uint8_t out[8];
    size_t n;
    mw_err r = type == MWI_COAP_RST ? mwi_coap_make_rst(to, &e) : mwi_coap_make_ack(to, &e);
    if (r == MW_OK && mwi_coap_encode(&e, out, sizeof out, &n) == MW_OK)
        write_lossy(c->conn, out, n);
}

static void on_record(void *ctx, const uint8_t *data, size_t len)
{
    mw_client_t *c = ctx;
    mwi_coap_msg m;
    if (mwi_coap_parse(c->parser, data, len, &m) != MW_OK)
        return; /* not CoAP: nothing to answer (RFC 7252 4.2 allows silence) */
    if (MWI_COAP_IS_REQUEST(m.code)) {
        /* The gateway sends no requests in protocol v1: reject (RFC 7252 4.2, 4.3). */
        send_empty(c, &m, MWI_COAP_RST);
        return;
    }
    for (size_t i = 0; i < NSTART_MAX; i++) {
        struct req *q = &c->reqs[i];
        if (!q->used)
            continue;
        mw_err e = mwi_coap_request_match(&q->r, &m);
        if (e == MW_EAGAIN || e == MW_EINPROGRESS)
            continue; /* not this one, or an empty ACK: the response follows */
        if (e == MW_ECOAP_RESET) {
            if (!q->ping)
                set_last(c, MW_ECOAP_RESET, 0, "the gateway reset our request");
            release(c, q); /* a ping's RST is its answer: the gateway is alive */
            return;
        }
        if (e == MW_OK) {
            if (m.type == MWI_COAP_CON)
                send_empty(c, &m, MWI_COAP_ACK); /* a separate response is acknowledged (5.2.2) */
            if (q->ping)
                release(c, q);
            else
                on_response(c, q, &m);
        }
        return;
    }
}

static struct req *free_req(mw_client_t *c)
{
    for (size_t i = 0; i < c->nstart; i++)
        if (!c->reqs[i].used)
            return &c->reqs[i];
    return NULL;
}

/* Encodes @p m into the request's buffer, writes it and starts its timer. */
static mw_err transmit(mw_client_t *c, struct req *q, mwi_coap_msg *m, uint64_t now)
{
    if (m->code != MWI_COAP_EMPTY) {
        m->token_len = MWI_COAP_MAX_TOKEN;
        if (mwi_coap_ids_next(&c->ids, &m->mid, m->token) != MW_OK)
            return MW_EINTERNAL;
    } else {
        uint8_t unused[MWI_COAP_MAX_TOKEN];
        if (mwi_coap_ids_next(&c->ids, &m->mid, unused) != MW_OK)
            return MW_EINTERNAL;
    }
    mw_err e = mwi_coap_encode(m, q->buf, sizeof q->buf, &q->len);
    if (e != MW_OK)
        return e;
    e = mwi_dtls_conn_write(c->conn, q->buf, q->len);
    if (e != MW_OK && e != MW_EAGAIN)
        return e;
    e = mwi_coap_request_start(&q->r, &c->params, c->rnd, m->mid, m->token, m->token_len, now);
    if (e != MW_OK)
        return e;
    q->used = true;
    c->st.requests_sent++;
    c->progressed = true;
    return MW_OK;
}

static void batch_request(mwi_coap_msg *m, const uint8_t *payload, size_t len)
{
    mwi_coap_msg_init(m);
    m->type = MWI_COAP_CON;
    m->code = MWI_COAP_POST;
    snprintf(m->uri_path, sizeof m->uri_path, "%s", BATCH_PATH);
    m->content_format = MWI_COAP_CF_MEDWIRE_BATCH;
    m->payload = payload;
    m->payload_len = len;
}

/* Block q->block_num of c->body, Size1 on the first (RFC 7959 2.5, 4). */
static mw_err send_block(mw_client_t *c, struct req *q, uint64_t now)
{
    size_t off = (size_t)q->block_num * BLOCK_SIZE;
    if (off >= c->body_len)
        return MW_EINVAL;
    size_t n = c->body_len - off < BLOCK_SIZE ? c->body_len - off : BLOCK_SIZE;
    mwi_coap_msg m;
    batch_request(&m, c->body + off, n);
    m.flags |= MWI_COAP_F_BLOCK1;
    m.block1 = MWI_COAP_BLOCK_VALUE(q->block_num, off + n < c->body_len, BLOCK_SZX);
    if (q->block_num == 0) {
        m.flags |= MWI_COAP_F_SIZE1;
        m.size1 = (uint32_t)c->body_len;
    }
    return transmit(c, q, &m, now);
}

/* in_flight as the queue cursor's skip callback. */
static bool skip_in_flight(void *ctx, uint64_t seq)
{
    return in_flight(ctx, seq);
}

/* The order of the flush: alarms, then observations, then status; oldest
 * first within each (the queue's order); messages already in flight are skipped. */
static size_t collect(mw_client_t *c, const mw_message_t **out, size_t max)
{
    mwi_queue_cursor cur;
    mwi_queue_cursor_init(&cur);
    cur.skip = skip_in_flight; /* passed over unread: no decryption for them */
    cur.skip_ctx = c;
    size_t n = 0;
    while (n < max) {
        mw_err e = mwi_queue_next(c->queue, &cur, &c->batch[n]);
        if (e == MW_EAGAIN)
            break;
        if (e != MW_OK) {
            (void)storage_failed(c, e);
            return 0;
        }
        out[n] = &c->batch[n];
        n++;
    }
    return n;
}

static void send_batch(mw_client_t *c, uint64_t now)
{
    struct req *q = free_req(c);
    if (q == NULL)
        return;
    const mw_message_t *ptrs[MWI_MAX_BATCH];
    size_t n = collect(c, ptrs, MWI_MAX_BATCH);
    if (n == 0)
        return;
    /* The low-water mark is the oldest sequence number still held. */
    uint64_t low = mwi_queue_low_water(c->queue);
    bool block = !c->body_busy && !c->no_block1;
    uint8_t one[BATCH_CAP];
    uint8_t *payload = block ? c->body : one;
    size_t cap = block ? sizeof c->body : sizeof one;
    size_t plen = 0, count = 0;
    mw_err e = mwi_batch_encode_ptrs(ptrs, n, low, payload, cap, &plen, &count);
    if (e != MW_OK) {
        set_last(c, e, 0, "a queued message cannot be encoded");
        c->fatal = e;
        c->state = ST_FAILED;
        return;
    }
    q->ping = false;
    q->nseq = (uint8_t)count;
    for (size_t i = 0; i < count; i++)
        q->seqs[i] = ptrs[i]->seq;
    if (block && plen > BATCH_CAP) {
        c->body_len = plen;
        c->body_busy = true;
        q->block = true;
        q->block_num = 0;
        e = send_block(c, q, now);
    } else {
        if (block && plen > 0 && payload != one)
            memcpy(one, payload, plen);
        q->block = false;
        mwi_coap_msg m;
        batch_request(&m, one, plen);
        e = transmit(c, q, &m, now);
    }
    if (e != MW_OK) {
        release(c, q);
        drop_link(c, now);
    }
}

/* Gap records: what the queue lost (evicted to make room, damaged at rest) goes to the
 * gateway as messages of their own, with alarm priority, so that the hospital knows what it
 * will never receive. Only while there is room without evicting anything: a queue that stays
 * full while offline widens its gap table's entries instead of trading data for reports. A
 * power cut between queueing a record and clearing its entry reports that gap twice, never
 * not at all (docs/queue.md). */
static void send_gaps(mw_client_t *c)
{
    if (c->fatal != MW_OK)
        return;
    mwi_queue_gap g[MWI_QUEUE_GAP_SLOTS];
    size_t n = mwi_queue_gaps(c->queue, g, MWI_QUEUE_GAP_SLOTS);
    if (n == 0)
        return;
    uint32_t held = depth(c);
    size_t done = 0;
    while (done < n && held + done < c->q_cap) {
        const mwi_queue_gap *e = &g[done];
        mw_message_t m;
        memset(&m, 0, sizeof m);
        m.type = MW_MSG_GAP;
        m.priority = MW_PRIORITY_ALARM;
        m.u.gap.priority = (unsigned)e->priority;
        m.u.gap.reason = e->reason == MWI_QUEUE_GAP_CORRUPT ? MW_GAP_CORRUPT : MW_GAP_EVICTED;
        m.u.gap.count = e->count;
        if (e->first_seq != 0 && e->first_seq <= e->last_seq) {
            m.u.gap.first_seq = e->first_seq;
            m.u.gap.last_seq = e->last_seq;
        }
        if (enqueue(c, &m, NULL) != MW_OK)
            break;
        c->st.gap_records++;
        done++;
    }
    if (done > 0) {
        mw_err e = mwi_queue_gaps_clear(c->queue, g, done);
        if (e != MW_OK)
            (void)storage_failed(c, e);
    }
}

/* CoAP ping (RFC 7252 4.3): an empty CON answered by RST proves the
 * gateway still holds our session while nothing else is being sent. */
static void send_ping(mw_client_t *c, uint64_t now)
{
    struct req *q = free_req(c);
    if (q == NULL)
        return;
    mwi_coap_msg m;
    mwi_coap_msg_init(&m);
    m.type = MWI_COAP_CON;
    m.code = MWI_COAP_EMPTY;
    q->ping = true;
    q->block = false;
    q->nseq = 0;
    if (transmit(c, q, &m, now) != MW_OK)
        drop_link(c, now);
    else
        c->last_rx_ms = now; /* one ping per interval */
}

static bool any_request(const mw_client_t *c)
{
    for (size_t i = 0; i < NSTART_MAX; i++)
        if (c->reqs[i].used)
            return true;
    return false;
}

/* Whether an idle client should (re)connect: at first, to be ready; afterwards only with
 * something to send or a keepalive to keep. A gateway that closed an idle session (idle
 * reaping, drain) is not called back by a device with nothing to say. */
static bool wants_link(const mw_client_t *c)
{
    return c->st.handshakes == 0 || c->reconnect_requested || c->keepalive_ms != 0 ||
           depth(c) > 0;
}

static void run_timers(mw_client_t *c, uint64_t now)
{
    if (c->state == ST_IDLE && now >= c->reconnect_at_ms && wants_link(c)) {
        start_handshake(c, now);
        return;
    }
    if (c->state == ST_HANDSHAKE) {
        if (now - c->handshake_started_ms >= HANDSHAKE_MAX_MS) {
            char why[160];
            snprintf(why, sizeof why,
                     "no answer from the gateway at %.60s within %u s; retrying with backoff",
                     c->gw_text, HANDSHAKE_MAX_MS / 1000u);
            c->st.handshake_failures++;
            set_last(c, MW_EHANDSHAKE_TIMEOUT, 0, why);
            audit(c, MW_AUDIT_HANDSHAKE_FAILED, MW_EHANDSHAKE_TIMEOUT, 0, why);
            drop_link(c, now);
            return;
        }
        if (now >= mwi_dtls_conn_deadline(c->conn)) {
            mw_err e = mwi_dtls_conn_timer(c->conn, now);
            c->progressed = true;
            if (e != MW_EINPROGRESS && e != MW_OK)
                handshake_failed(c, now);
        }
        return;
    }
    if (c->state != ST_READY)
        return;
    if (c->next != NULL) {
        if (now - c->next_started_ms >= HANDSHAKE_MAX_MS) {
            mwi_dtls_conn_destroy(&c->next); /* the old session still works, or times out */
        } else if (now >= mwi_dtls_conn_deadline(c->next)) {
            mw_err e = mwi_dtls_conn_timer(c->next, now);
            if (e != MW_EINPROGRESS && e != MW_OK)
                mwi_dtls_conn_destroy(&c->next);
        }
    }
    /* Rotation policy (docs/protocol.md 6): age, records, bytes, or asked for. */
    if (c->next == NULL) {
        const char *why = NULL;
        if (c->rekey_requested)
            why = "key rotation requested";
        else if (c->rekey_after_ms && now - c->session_started_ms >= c->rekey_after_ms)
            why = "key rotation: session age limit";
        else if (c->rekey_after_records && c->session_records >= c->rekey_after_records)
            why = "key rotation: record limit";
        else if (c->rekey_after_bytes && c->session_bytes >= c->rekey_after_bytes)
            why = "key rotation: byte limit";
        if (why)
            start_rekey(c, now, why);
    }
    for (size_t i = 0; i < NSTART_MAX && c->state == ST_READY; i++) {
        struct req *q = &c->reqs[i];
        if (!q->used || now < mwi_coap_request_deadline(&q->r))
            continue;
        mw_err e = mwi_coap_request_timer(&q->r, &c->params, now);
        if (e == MW_OK) {
            c->st.retransmissions++;
            c->progressed = true;
            if (mwi_dtls_conn_write(c->conn, q->buf, q->len) != MW_OK)
                drop_link(c, now);
            else if (c->rekey_after_retransmits && q->r.retransmits >= c->rekey_after_retransmits)
                /* Silence may mean the gateway restarted and forgot our
                 * session: try a new one beside it rather than wait ~90 s for
                 * CoAP to give up. */
                start_rekey(c, now, "the gateway stopped answering; trying a new session");
        } else if (e == MW_ECOAP_GIVEUP || e == MW_ETIMEDOUT) {
            char why[160];
            snprintf(why, sizeof why, "the gateway at %.60s stopped acknowledging; reconnecting",
                     c->gw_text);
            set_last(c, MW_ECOAP_GIVEUP, 0, why);
            drop_link(c, now);
        }
    }
    if (c->state == ST_READY && c->keepalive_ms && !any_request(c) && depth(c) == 0 &&
        now - c->last_rx_ms >= c->keepalive_ms)
        send_ping(c, now);
}

/* Starts a fresh full handshake (new ECDHE keys, never resumption) beside
 * the current session. */
static void start_rekey(mw_client_t *c, uint64_t now, const char *why)
{
    if (c->next != NULL || c->state != ST_READY)
        return;
    if (mwi_dtls_conn_create(c->dtls, &c->gw, dtls_out, c, &c->next) != MW_OK)
        return;
    c->next_started_ms = now;
    c->progressed = true;
    audit(c, MW_AUDIT_REKEY_STARTED, MW_OK, 0, why);
    mw_err e = mwi_dtls_conn_start(c->next, now);
    if (e != MW_EINPROGRESS && e != MW_OK)
        mwi_dtls_conn_destroy(&c->next);
}

/* The new session is up: it takes over, the old one and its keys are
 * destroyed, and what was in flight goes again on the new one (the gateway's
 * duplicate cache and replay state make that safe). */
static void switch_session(mw_client_t *c, uint64_t now)
{
    char why[200];
    mwi_dtls_conn_destroy(&c->conn); /* wolfSSL_free zeroes the old keys */
    c->conn = c->next;
    c->next = NULL;
    c->rekey_requested = false;
    c->st.rotations++;
    c->st.handshakes++;
    c->session_started_ms = now;
    c->session_records = c->session_bytes = 0;
    mwi_dtls_session_free(&c->saved);
    c->saved = mwi_dtls_conn_save_session(c->conn);
    snprintf(why, sizeof why, "new DTLS session with gateway '%.64s' (%.40s); old keys destroyed",
             mwi_dtls_conn_peer_id(c->conn), mwi_dtls_conn_cipher(c->conn));
    audit(c, MW_AUDIT_SESSION_ROTATED, MW_OK, 0, why);
    for (size_t i = 0; i < NSTART_MAX; i++)
        if (c->reqs[i].used)
            write_lossy(c->conn, c->reqs[i].buf, c->reqs[i].len);
}

static void feed_next(mw_client_t *c, const uint8_t *buf, size_t n, uint64_t now)
{
    mw_err e = mwi_dtls_conn_input(c->next, buf, n, now, on_record, c);
    if (e == MW_OK && mwi_dtls_conn_established(c->next)) {
        switch_session(c, now);
    } else if (e != MW_OK && e != MW_EINPROGRESS) {
        mw_error_detail_t d;
        mwi_dtls_conn_error(c->next, &d);
        set_last(c, d.err, d.foreign, d.reason);
        audit(c, MW_AUDIT_HANDSHAKE_FAILED, d.err, d.foreign, d.reason);
        mwi_dtls_conn_destroy(&c->next);
        if (is_fatal_handshake(d.err)) {
            /* The gateway's certificate (or its view of ours) changed for the
             * worse: what failed now would fail every time. */
            c->fatal = d.err;
            c->state = ST_FAILED;
        }
    }
}

static void receive(mw_client_t *c, uint64_t now)
{
    for (int i = 0; i < 64 && c->state != ST_FAILED; i++) {
        mw_addr_t from;
        size_t n = 0;
        mw_err e = c->tp.recv(c->tp.ctx, &from, c->rx, sizeof c->rx, &n);
        if (e != MW_OK)
            break;
        c->st.datagrams_received++;
        c->st.bytes_received += n;
        c->last_rx_ms = now;
        /* Only the gateway's address is listened to; anything else is noise
         * or an attack and must not reach the DTLS state. */
        if (c->conn == NULL || n > MWI_DTLS_MAX_DATAGRAM || from.len != c->gw.len ||
            memcmp(from.data, c->gw.data, from.len) != 0)
            continue;
        if (c->next != NULL && (c->rx[0] == 22 || c->rx[0] == 20)) {
            /* Handshake records belong to the session being built. */
            feed_next(c, c->rx, n, now);
            c->progressed = true;
            continue;
        }
        bool was_ready = c->state == ST_READY;
        e = mwi_dtls_conn_input(c->conn, c->rx, n, now, on_record, c);
        c->progressed = true;
        if (c->state == ST_FAILED || c->conn == NULL)
            break;
        if (c->drop_requested) {
            c->drop_requested = false;
            drop_link(c, now);
            break;
        }
        if (e == MW_OK && c->state == ST_HANDSHAKE) {
            established(c);
        } else if (e != MW_OK && e != MW_EINPROGRESS) {
            if (was_ready) {
                mw_error_detail_t d;
                mwi_dtls_conn_error(c->conn, &d);
                set_last(c, d.err, d.foreign, d.reason);
                drop_link(c, now);
            } else {
                handshake_failed(c, now);
            }
        }
    }
}

mw_err mw_client_poll(mw_client_t *c, int timeout_ms)
{
    if (c == NULL)
        return MW_EINVAL;
    if (c->fatal != MW_OK)
        return c->fatal;
    uint64_t now = now_ms(c);
    uint64_t end = now + (uint64_t)(timeout_ms > 0 ? timeout_ms : 0);
    c->progressed = false;
    for (;;) {
        run_timers(c, now);
        receive(c, now);
        send_gaps(c);
        for (uint32_t k = 0; k < c->nstart && c->state == ST_READY; k++) {
            uint64_t sent = c->st.requests_sent;
            send_batch(c, now);
            if (c->st.requests_sent == sent)
                break;
        }
        if (c->fatal == MW_OK) {
            mw_err fe = mwi_queue_flush(c->queue, qnow(c));
            if (fe != MW_OK)
                (void)storage_failed(c, fe);
        }
        if (c->fatal != MW_OK)
            return c->fatal;
        if (c->progressed || now >= end)
            break;
        int next = mw_client_next_timeout_ms(c);
        uint64_t wait = end - now;
        if (next >= 0 && (uint64_t)next < wait)
            wait = (uint64_t)next;
        if (wait > 0 && mw_wait_readable(c->tp.fd, (int)wait) != MW_OK)
            return MW_ETRANSPORT;
        now = now_ms(c);
    }
    return c->progressed ? MW_OK : MW_EAGAIN;
}

mw_err mw_client_rotate_keys(mw_client_t *c)
{
    if (c == NULL)
        return MW_EINVAL;
    c->rekey_requested = true;
    return MW_OK;
}

mw_err mw_client_reconnect(mw_client_t *c)
{
    if (c == NULL)
        return MW_EINVAL;
    if (c->fatal != MW_OK)
        return c->fatal;
    uint64_t now = now_ms(c);
    if (c->conn != NULL)
        mwi_dtls_conn_close(c->conn); /* close_notify: the session stays resumable */
    drop_link(c, now);
    c->attempts = 0;
    c->reconnect_at_ms = now;
    c->reconnect_requested = true;
    return MW_OK;
}

uint64_t mw_client_pending(const mw_client_t *c)
{
    return c ? depth(c) : 0;
}

void mw_client_stats(const mw_client_t *c, mw_client_stats_t *out)
{
    if (c == NULL || out == NULL)
        return;
    *out = c->st;
    mwi_queue_stats qs;
    mwi_queue_stats_get(c->queue, qnow(c), &qs);
    out->messages_pending = qs.depth;
    out->oldest_pending_age_ms = qs.oldest_age_ms;
    out->queue_capacity = qs.capacity;
    out->next_seq = mwi_seq_peek(&c->seqs);
    out->connected = c->state == ST_READY;
}

void mw_client_last_error(const mw_client_t *c, mw_error_detail_t *out)
{
    if (out == NULL)
        return;
    if (c == NULL) {
        memset(out, 0, sizeof *out);
        return;
    }
    *out = c->last;
}

const char *mw_client_device_id(const mw_client_t *c)
{
    return c ? mwi_dtls_ctx_own_id(c->dtls) : "";
}

int mw_client_fd(const mw_client_t *c)
{
    return c ? c->tp.fd : -1;
}

int mw_client_next_timeout_ms(const mw_client_t *c)
{
    if (c == NULL || c->state == ST_FAILED)
        return -1;
    uint64_t now = now_ms(c);
    uint64_t at = UINT64_MAX;
    if (c->state == ST_IDLE)
        at = wants_link(c) ? c->reconnect_at_ms : UINT64_MAX;
    else if (c->state == ST_HANDSHAKE) {
        at = mwi_dtls_conn_deadline(c->conn);
        uint64_t cap = c->handshake_started_ms + HANDSHAKE_MAX_MS;
        if (cap < at)
            at = cap;
    } else {
        for (size_t i = 0; i < NSTART_MAX; i++)
            if (c->reqs[i].used) {
                uint64_t d = mwi_coap_request_deadline(&c->reqs[i].r);
                if (d < at)
                    at = d;
            }
        if (c->next != NULL) {
            uint64_t d = mwi_dtls_conn_deadline(c->next);
            at = d < at ? d : at;
        }
        if (c->rekey_after_ms && c->session_started_ms + c->rekey_after_ms < at)
            at = c->session_started_ms + c->rekey_after_ms;
        if (c->keepalive_ms && !any_request(c) && depth(c) == 0)
            at = c->last_rx_ms + c->keepalive_ms < at ? c->last_rx_ms + c->keepalive_ms : at;
    }
    int64_t flush = c->queue ? mwi_queue_flush_due_ms(c->queue, qnow(c)) : -1;
    if (flush >= 0 && now + (uint64_t)flush < at)
        at = now + (uint64_t)flush;
    if (at == UINT64_MAX)
        return -1;
    if (at <= now)
        return 0;
    uint64_t d = at - now;
    return d > 0x7fffffff ? 0x7fffffff : (int)d;
}

void mw_client_close(mw_client_t **pc)
{
    if (pc == NULL || *pc == NULL)
        return;
    mw_client_t *c = *pc;
    mwi_dtls_conn_close(c->conn); /* the gateway frees our session now */
    mwi_dtls_conn_destroy(&c->next);
    mwi_dtls_conn_destroy(&c->conn);
    mwi_dtls_session_free(&c->saved);
    mwi_dtls_ctx_destroy(&c->dtls);
    mwi_coap_parser_destroy(&c->parser);
    if (c->own_tp && c->tp.close)
        c->tp.close(c->tp.ctx);
    mwi_queue_close(&c->queue);
    if (c->own_region)
        mwi_mem_region_close(&c->region);
    free(c);
    *pc = NULL;
}
