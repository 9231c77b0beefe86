/* SPDX-License-Identifier: Apache-2.0 */
/* client.c -- the device SDK: queue, batch, send over CoAP/DTLS, forget only what the gateway
 * acknowledged. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "medwire/client.h"

#include "coap/coap.h"
#include "core/detail.h"
#include "core/limits.h"
#include "core/u64.h"
#include "core/wipe.h"
#include "dtls/dtls.h"
#include "dtls/link.h"
#ifdef MW_PORT_POSIX
/* The POSIX port gives the defaults (a UDP socket, the system clock, HOST:PORT names, waiting on
 * the descriptor, credential files and their permissions); without it (MW_PORT=none) the
 * application gives the transport, clock, random source, address and credentials itself. */
#include "port/posix/key_file.h"
#include "port/posix/read_file.h"
#define PORT_READ_FILE mwi_file_read
#else
#define PORT_READ_FILE NULL
#endif
#include "queue/queue.h"
#include "session/codec.h"
#include "session/command.h"
#include "session/protocol.h"

#define BATCH_CAP (MWI_DTLS_MAX_PLAINTEXT - MWI_COAP_REQUEST_OVERHEAD)
_Static_assert(MWI_COAP_BLOCK_SIZE(MWI_BLOCK_SZX) == MWI_BLOCK_SIZE, "Block1 SZX and size agree");
_Static_assert(MWI_MAX_ACK_RANGES >= MWI_MAX_BATCH, "a batch's numbers always fit the ranges");
/* Sequence numbers reserved per durable write of the sequence store: a power cut costs at
 * most this many unused numbers. */
#define SEQ_BLOCK 1024u

enum state { ST_IDLE, ST_HANDSHAKE, ST_READY, ST_FAILED };

/* One outstanding CON: a batch (or one block of it) or a keepalive ping. */
struct req {
    mwi_coap_request r;
    bool used;
    bool ping;
    bool est;                            /* POST /.well-known/est/sren (mw_client_renew) */
    bool crl;                            /* GET /crl, one block of it (crl_refresh_s) */
    bool block;                          /* carries c->body in Block1 pieces (c->b1 says which) */
    uint8_t buf[MWI_DTLS_MAX_PLAINTEXT]; /* the bytes sent, for retransmission */
    size_t len;
    uint8_t nseq;
    uint64_t seqs[MWI_MAX_BATCH];                       /* the messages it carries */
    uint8_t types[MWI_MAX_BATCH], prios[MWI_MAX_BATCH]; /* theirs, for the fate reports */
    uint64_t space;                                     /* the sequence space it was sent in */
    uint64_t sent_ms;                                   /* first transmission (monotonic) */
};

struct mw_client {
    mwi_dtls_ctx *dtls;
    /* The session, and make-before-break: a fresh full handshake beside it (key rotation, or a
     * gateway that stopped answering) replaces it only once it is up (dtls/link.h). */
    mwi_link link;
    uint64_t next_started_ms;
    uint64_t session_started_ms;
    uint64_t session_records, session_bytes;
    uint64_t rekey_after_ms, rekey_after_records, rekey_after_bytes;
    uint8_t rekey_after_retransmits;
    bool rekey_requested;
    mwi_cmd_guard cmd_guard;
    /* The gateway's clock (Ack.gateway_time_ms) as an offset from clock_base(): what this
     * device stamps its messages with while its own wall clock is not synchronised. */
    bool gw_time_valid;
    int64_t gw_offset_ms;
    mwi_dtls_session *saved; /* the last session, resumed by ID on reconnection */
    mw_command_fn *on_command;
    void *on_command_ctx;
    mw_fate_fn *on_fate;
    void *on_fate_ctx;
    /* The certificate request of mw_client_renew waiting for its answer (heap, NULL: none), and
     * whether it is in flight on this session. */
    mw_renewal_fn *on_renewal;
    void *on_renewal_ctx;
    uint8_t *renew_csr;
    uint16_t renew_len;
    bool renew_sent;
    uint64_t renew_at_ms; /* not before: the Max-Age of a 5.03 (the CA has not decided yet) */
    /* The CA's CRL fetched from the gateway every crl_refresh_ms (0: never): when next, whether
     * a block request is in flight, and the blocks so far (heap, NULL between fetches). */
    uint64_t crl_refresh_ms, crl_due_ms;
    bool crl_sent;
    uint32_t crl_block;
    uint8_t *crl_body;
    size_t crl_len;
    mw_crl_fn *on_crl;
    void *on_crl_ctx;
    /* A renewed pair waiting to take over (mw_client_use_credentials), and whether the
     * handshake beside the session is made with it; the renewal on the device's schedule. */
    mwi_dtls_ctx *next_dtls;
    bool next_is_renewed;
    bool allow_shared_key_file;
    uint8_t renew_pct;
    mw_make_csr_fn *make_csr;
    void *make_csr_ctx;
    uint64_t renew_try_at_ms;
    mw_transport_t tp;
    bool own_tp;
    mw_clock_t clock;
    mw_random_t rnd;
    mw_addr_t gw; /* the gateway used now */
    char gw_text[64];
    /* The gateways to fail over between (mw_client_config_t.gateways), resolved at open; NULL
     * with a single gateway. gw is gws[gw_i]. */
    mw_addr_t *gws;
    uint8_t n_gws, gw_i;
    mw_audit_fn *audit;
    void *audit_ctx;

    enum state state;
    uint64_t handshake_started_ms;
    uint64_t reconnect_at_ms;
    uint32_t reconnect_min_ms, reconnect_max_ms;
    uint32_t attempts; /* consecutive failed connection attempts */
    /* Answers in a row that settled nothing (an RST, an Ack that does not decode or covers
     * none of the request's messages), and when the next batch may go. */
    uint32_t useless;
    uint64_t resend_at_ms;

    mwi_coap_parser *parser;
    mwi_coap_ids ids;
    mwi_coap_params params;
    /* The requests in flight: nstart of them, allocated at open, as are the buffers below, so
     * that their sizes follow the configuration (nstart, body_max, batch_max). */
    struct req *reqs;
    uint32_t nstart;
    /* One block-wise body at a time; its request has block = true. NULL (body_cap 0): each
     * batch goes in one record. */
    uint8_t *body;
    size_t body_cap;
    mwi_coap_block1_sender b1; /* active while a request carries it */
    bool no_block1; /* the gateway refused a block-wise body: keep batches to one record */
    uint32_t keepalive_ms;
    uint64_t last_rx_ms;

    /* The offline queue and the sequence numbers, in the vendor's region or in RAM. The
     * sequence space and the first number taken in it are kept with the numbers (the store's
     * caller data): a message numbered below space_start was numbered in an earlier space and
     * may have been delivered under it, so it goes out marked as a possible duplicate. */
    mwi_queue *queue;
    mwi_seq seqs;
    uint64_t space, space_start;
    mw_storage_t region;
    bool own_region;
    mw_storage_slice_t seq_slice, q_slice;
    mw_storage_t seq_st, q_st;
    uint32_t q_cap;
    mw_message_t *batch; /* the messages of the batch being encoded: batch_max of them */
    uint8_t batch_max;
    /* The command results queued and not yet acknowledged, by sequence number: at most
     * results_max at once (see result_room). */
    uint64_t *results;
    uint32_t nresults, results_max;

    mw_client_stats_t st;
    mw_error_detail_t last;
    mw_err fatal;
    bool progressed;
    bool drop_requested;      /* set inside a record callback, acted on after it */
    bool reconnect_requested; /* mw_client_reconnect: connect even with nothing to send */

    uint8_t *rx; /* RX_CAP bytes */
};

/* A datagram read whole, with a byte to spare to tell a longer one. */
#define RX_CAP (MWI_DTLS_MAX_DATAGRAM + 1)

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
        .device = mwi_dtls_conn_peer_id(c->link.conn),
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

static void report_fate(mw_client_t *c, uint64_t seq, mw_msg_type type, unsigned prio, mw_fate f,
                        mw_err e, const char *reason)
{
    if (c->on_fate == NULL)
        return;
    mw_fate_report_t r = {.seq = seq,
                          .type = type,
                          .priority = (mw_priority)prio,
                          .fate = f,
                          .err = e,
                          .reason = reason ? reason : ""};
    c->on_fate(c->on_fate_ctx, &r);
}

/* A command result left the queue (acknowledged, evicted, found damaged). */
static void result_gone(mw_client_t *c, uint64_t seq)
{
    for (uint32_t i = 0; i < c->nresults; i++)
        if (c->results[i] == seq) {
            c->results[i] = c->results[--c->nresults];
            return;
        }
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
    char why[240], n1[MWI_U64_TEXT];
    MWI_TEXTF(why, sizeof why, "%s (seq %s, priority %u, at byte %lu, %lu bytes)",
              ev->reason ? ev->reason : "", mwi_u64_dec(ev->seq, n1), (unsigned)ev->priority,
              (unsigned long)ev->offset, (unsigned long)ev->length);
    audit(c, name, e, 0, why);
    if (ev->kind == MWI_QUEUE_EVICTED || ev->kind == MWI_QUEUE_CORRUPT)
        result_gone(c, ev->seq);
    if (ev->seq != 0 && (ev->kind == MWI_QUEUE_EVICTED || ev->kind == MWI_QUEUE_CORRUPT))
        report_fate(c, ev->seq, MW_MSG_UNKNOWN, ev->priority,
                    ev->kind == MWI_QUEUE_EVICTED ? MW_FATE_EVICTED : MW_FATE_DAMAGED, e, why);
}

/* A new sequence space: random, never 0, and durable before any number is sent in it. Every
 * message numbered before it may have been delivered under the old one. */
static mw_err new_space(mw_client_t *c)
{
    uint64_t sp = 0;
    uint8_t aux[MWI_SEQ_AUX];
    while (sp == 0 || sp == c->space)
        if (c->rnd.fill(c->rnd.ctx, (uint8_t *)&sp, sizeof sp) != MW_OK)
            return MW_EINTERNAL;
    uint64_t start = mwi_seq_peek(&c->seqs);
    for (int i = 0; i < 8; i++) {
        aux[i] = (uint8_t)(sp >> (8 * i));
        aux[8 + i] = (uint8_t)(start >> (8 * i));
    }
    mw_err e = mwi_seq_set_aux(&c->seqs, aux);
    if (e != MW_OK)
        return e;
    c->space = sp;
    c->space_start = start;
    c->st.space = sp;
    return MW_OK;
}

/* The space the store keeps; a store that keeps none (created now) gets a new one. */
static mw_err load_space(mw_client_t *c)
{
    const uint8_t *aux = mwi_seq_aux(&c->seqs);
    uint64_t sp = 0, start = 0;
    for (int i = 7; i >= 0; i--) {
        sp = (sp << 8) | aux[i];
        start = (start << 8) | aux[8 + i];
    }
    if (sp == 0)
        return new_space(c);
    c->space = sp;
    c->space_start = start;
    c->st.space = sp;
    return MW_OK;
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
            return mwi_detail_fail(
                d, MW_ECONFIG, "a queue key of 16 or 32 bytes is required with persistent storage");
        c->region = *cfg->storage;
    } else {
        uint32_t size = 0;
        if (mw_client_storage_size(c->q_cap, 1, 1, &size) != MW_OK)
            return mwi_detail_fail(d, MW_ECONFIG, "queue capacity too large");
        e = mwi_mem_region_open(size, &c->region);
        if (e != MW_OK)
            return mwi_detail_fail(d, e, "out of memory for the queue");
        c->own_region = true;
    }
    uint32_t need = 0, seq_size = mwi_seq_region_size(c->region.erase_unit, c->region.write_unit);
    if (mwi_queue_region_min(c->q_cap, c->region.erase_unit, c->region.write_unit, &need) !=
            MW_OK ||
        (uint64_t)seq_size + need > c->region.size) {
        char why[200], n1[MWI_U64_TEXT];
        MWI_TEXTF(why, sizeof why,
                  "the storage region (%lu bytes) is too small for %lu messages: it needs at "
                  "least %s bytes (mw_client_storage_size gives the recommended size)",
                  (unsigned long)c->region.size, (unsigned long)c->q_cap,
                  mwi_u64_dec((uint64_t)seq_size + need, n1));
        return mwi_detail_fail(d, MW_ECONFIG, why);
    }
    e = mw_storage_slice(&c->region, 0, seq_size, &c->seq_slice, &c->seq_st);
    if (e == MW_OK)
        e = mw_storage_slice(&c->region, seq_size, c->region.size - seq_size, &c->q_slice,
                             &c->q_st);
    if (e != MW_OK)
        return mwi_detail_fail(
            d, MW_ECONFIG,
            "the storage region's geometry does not allow splitting it (erase unit)");
    e = mwi_seq_open(&c->seq_st, SEQ_BLOCK, cfg->first_seq, &c->seqs, d);
    if (e != MW_OK)
        return e;
    mwi_seq_raise(&c->seqs, cfg->first_seq);
    e = load_space(c);
    if (e != MW_OK)
        return mwi_detail_fail(d, e, "cannot record a new sequence space in the storage region");
    /* Made only now, so that no early return above leaves a key on the stack. */
    if (cfg->storage == NULL) {
        k = key;
        klen = sizeof key;
        if (c->rnd.fill(c->rnd.ctx, key, sizeof key) != MW_OK) {
            mwi_wipe(key, sizeof key);
            return mwi_detail_fail(d, MW_EINTERNAL, "the random source failed");
        }
    }
    mwi_queue_config qc;
    mwi_queue_config_init(&qc);
    qc.storage = &c->q_st;
    qc.key = k;
    qc.key_len = klen;
    qc.capacity = c->q_cap;
    qc.random = c->rnd;
    qc.group_commit_n = cfg->group_commit_n;
    qc.group_commit_ms = cfg->group_commit_ms;
    qc.on_event = on_queue_event;
    qc.event_ctx = c;
    e = mwi_queue_open(&qc, &c->queue, d);
    mwi_wipe(key, sizeof key);
    return e;
}

/* The command results a recovered queue holds (they travel with alarm priority, so they are
 * among the first read): they count against the share of the queue results may take. */
static mw_err count_results(mw_client_t *c, mw_error_detail_t *d)
{
    mwi_queue_cursor cur;
    mwi_queue_cursor_init(&cur);
    for (;;) {
        mw_err e = mwi_queue_next(c->queue, &cur, &c->batch[0]);
        if (e == MW_EAGAIN || (e == MW_OK && c->batch[0].priority != MW_PRIORITY_ALARM))
            return MW_OK;
        if (e != MW_OK) {
            mwi_queue_last_error(c->queue, d);
            return e;
        }
        if (c->batch[0].type == MW_MSG_COMMAND_RESULT && c->nresults < c->results_max)
            c->results[c->nresults++] = c->batch[0].seq;
    }
}

/* What the POSIX port would supply and this build lacks (MW_PORT=none): each missing seam named
 * with the field that fills it. With the port, nothing is missing. */
static mw_err port_defaults_missing(const mw_client_config_t *cfg, mw_error_detail_t *d)
{
#ifdef MW_PORT_POSIX
    (void)cfg;
    (void)d;
    return MW_OK;
#else
    if (cfg->transport.send == NULL || cfg->transport.recv == NULL)
        return mwi_detail_fail(d, MW_ECONFIG,
                               "no transport: set cfg.transport; this build has no POSIX port "
                               "(MW_PORT=none)");
    if (cfg->clock.now_ms == NULL)
        return mwi_detail_fail(d, MW_ECONFIG,
                               "no clock: set cfg.clock; this build has no POSIX port "
                               "(MW_PORT=none)");
    if (cfg->random.fill == NULL)
        return mwi_detail_fail(d, MW_ECONFIG,
                               "no random source: set cfg.random (the device's TRNG); this build "
                               "has no POSIX port (MW_PORT=none)");
    if (cfg->gateway != NULL || cfg->gateways != NULL || cfg->gateway_addr.len == 0)
        return mwi_detail_fail(d, MW_ECONFIG,
                               "no gateway address: set cfg.gateway_addr (cfg.gateway and "
                               "cfg.gateways, HOST:PORT names, need the POSIX port; "
                               "MW_PORT=none)");
    if (cfg->bind != NULL)
        return mwi_detail_fail(d, MW_ECONFIG,
                               "cfg.bind needs the POSIX port's UDP socket (MW_PORT=none): "
                               "bind in your transport");
    return MW_OK;
#endif
}

#ifdef MW_PORT_POSIX
static void format_gateway(mw_client_t *c)
{
    if (mw_addr_format(&c->gw, c->gw_text, sizeof c->gw_text) != MW_OK)
        snprintf(c->gw_text, sizeof c->gw_text, "?");
}

/* Every gateway's address, resolved now: a bad one is named at open rather than at the first
 * failover, and no name is looked up (which may block) while polling. A list of one keeps no
 * array. */
static mw_err resolve_gateways(mw_client_t *c, const mw_client_config_t *cfg, mw_error_detail_t *d)
{
    const char *const *list = cfg->gateways ? cfg->gateways : &cfg->gateway;
    size_t n = cfg->gateways ? cfg->n_gateways : 1;
    if (list[0] == NULL) { /* gateway_addr */
        c->gw = cfg->gateway_addr;
        format_gateway(c);
        return MW_OK;
    }
    if (n > 1) {
        c->gws = calloc(n, sizeof c->gws[0]);
        if (c->gws == NULL)
            return mwi_detail_fail(d, MW_ENOMEM, "out of memory");
    }
    for (size_t i = 0; i < n; i++) {
        mw_err e = list[i] ? mw_addr_parse(list[i], &c->gw) : MW_EADDR;
        if (e != MW_OK) {
            char why[160];
            char which[32] = "";
            if (n > 1)
                snprintf(which, sizeof which, ", gateway %u of %u", (unsigned)i + 1, (unsigned)n);
            MWI_TEXTF(why, sizeof why, "cannot resolve the gateway address '%.80s' (HOST:PORT%s)",
                      list[i] ? list[i] : "(null)", which);
            return mwi_detail_fail(d, e, why);
        }
        if (c->gws)
            c->gws[i] = c->gw;
    }
    c->n_gws = (uint8_t)n;
    c->gw = c->gws ? c->gws[0] : c->gw;
    format_gateway(c);
    return MW_OK;
}
#endif

mw_err mw_client_open(const mw_client_config_t *cfg, mw_client_t **out, mw_error_detail_t *d)
{
    if (out != NULL)
        *out = NULL;
    if (cfg == NULL || out == NULL)
        return mwi_detail_open_checks(d, 0, false, false, false, "device");
    mw_err e =
        mwi_detail_open_checks(d, 1, cfg->ca_file || cfg->ca_buf.data || cfg->ca_buf.len,
                               cfg->cert_file || cfg->cert_buf.data || cfg->cert_buf.len,
                               cfg->key_file || cfg->key_buf.data || cfg->key_buf.len, "device");
    if (e != MW_OK)
        return e;
    if (cfg->gateway_name == NULL)
        return mwi_detail_fail(d, MW_ECONFIG, "the expected gateway name is required");
    if (cfg->gateway == NULL && cfg->gateway_addr.len == 0 && cfg->gateways == NULL)
        return mwi_detail_fail(d, MW_ECONFIG, "the gateway address (HOST:PORT) is required");
#ifdef MW_PORT_POSIX /* without it, port_defaults_missing refuses any list */
    if (cfg->gateways != NULL && cfg->gateway != NULL)
        return mwi_detail_fail(d, MW_ECONFIG,
                               "set cfg.gateway or cfg.gateways, not both (a single gateway is a "
                               "list of one)");
    if ((cfg->gateways != NULL) != (cfg->n_gateways > 0) || cfg->n_gateways > MW_GATEWAYS_MAX)
        return mwi_detail_fail(d, MW_ECONFIG,
                               "cfg.gateways needs cfg.n_gateways, 1 to MW_GATEWAYS_MAX (8)");
#endif
    if (cfg->queue_capacity == 0 || cfg->max_retransmit == 0 || cfg->ack_timeout_ms == 0)
        return mwi_detail_fail(d, MW_ECONFIG,
                               "queue capacity, ack timeout and max retransmit must be positive");

    mw_client_t *c = calloc(1, sizeof *c);
    if (c == NULL)
        return mwi_detail_fail(d, MW_ENOMEM, "out of memory");
    c->tp.fd = -1;
    c->q_cap = cfg->queue_capacity;
    e = port_defaults_missing(cfg, d);
    if (e != MW_OK)
        goto fail;
#ifdef MW_PORT_POSIX
    e = mwi_key_file_private(cfg->key_file, cfg->allow_shared_key_file, d);
    if (e != MW_OK)
        goto fail;
#endif
    mwi_dtls_config dc = {
        .role = MWI_DTLS_CLIENT,
        .ca_file = cfg->ca_file,
        .cert_file = cfg->cert_file,
        .key_file = cfg->key_file,
        .ca_buf = cfg->ca_buf,
        .cert_buf = cfg->cert_buf,
        .key_buf = cfg->key_buf,
        .crl_file = cfg->crl_file,
        .crl_buf = cfg->crl_buf,
        .read_file = PORT_READ_FILE,
        .peer_name = cfg->gateway_name,
    };
    e = mwi_dtls_ctx_create(&dc, &c->dtls, d);
    if (e != MW_OK)
        goto fail;
#ifdef MW_PORT_POSIX
    e = resolve_gateways(c, cfg, d);
    if (e != MW_OK)
        goto fail;
    c->clock = cfg->clock.now_ms ? cfg->clock : mw_clock_system();
#else
    /* No resolver and no socket address format without the port: the address is the
     * transport's own bytes. */
    c->gw = cfg->gateway_addr;
    snprintf(c->gw_text, sizeof c->gw_text, "gateway_addr");
    c->clock = cfg->clock;
#endif
    if (cfg->random.fill) {
        c->rnd = cfg->random;
    } else {
        c->rnd.fill = default_random;
        c->rnd.ctx = c->dtls;
    }
    if (cfg->transport.send) {
        c->tp = cfg->transport;
    } else {
#ifdef MW_PORT_POSIX
        e = mw_udp_open(cfg->bind ? cfg->bind : "0.0.0.0:0", &c->tp);
        if (e != MW_OK) {
            e = mwi_detail_fail(d, e, "cannot open a UDP socket");
            goto fail;
        }
        c->own_tp = true;
#endif
    }
    mwi_coap_params_default(&c->params);
    c->params.ack_timeout_ms = cfg->ack_timeout_ms;
    c->params.max_retransmit = cfg->max_retransmit;
    e = mwi_coap_parser_create(MWI_DTLS_MAX_DATAGRAM, &c->parser);
    if (e != MW_OK) {
        e = mwi_detail_fail(d, e, "cannot create the CoAP parser");
        goto fail;
    }
    e = mwi_coap_ids_init(&c->ids, c->rnd);
    if (e != MW_OK) {
        e = mwi_detail_fail(d, e, "the random source failed");
        goto fail;
    }
    c->nstart =
        cfg->nstart == 0 ? 1 : (cfg->nstart > MWI_NSTART_MAX ? MWI_NSTART_MAX : cfg->nstart);
    c->batch_max =
        cfg->batch_max == 0 || cfg->batch_max > MWI_MAX_BATCH ? MWI_MAX_BATCH : cfg->batch_max;
    c->body_cap = cfg->body_max == 0 ? MWI_BODY_MAX : cfg->body_max;
    if (c->body_cap <= BATCH_CAP)
        c->body_cap = 0;
    c->reqs = calloc(c->nstart, sizeof *c->reqs);
    c->batch = calloc(c->batch_max, sizeof *c->batch);
    c->rx = malloc(RX_CAP);
    c->body = c->body_cap ? malloc(c->body_cap) : NULL;
    if (c->reqs == NULL || c->batch == NULL || c->rx == NULL || (c->body_cap && !c->body)) {
        e = mwi_detail_fail(d, MW_ENOMEM, "out of memory for the client's buffers");
        goto fail;
    }
    c->rekey_after_ms = cfg->rekey_after_ms;
    c->rekey_after_records = cfg->rekey_after_records;
    c->rekey_after_bytes = cfg->rekey_after_bytes;
    c->rekey_after_retransmits = cfg->rekey_after_retransmits;
    c->on_command = cfg->on_command;
    c->on_command_ctx = cfg->on_command_ctx;
    c->on_fate = cfg->on_fate;
    c->on_fate_ctx = cfg->on_fate_ctx;
    c->on_renewal = cfg->on_renewal;
    c->on_renewal_ctx = cfg->on_renewal_ctx;
    c->crl_refresh_ms = (uint64_t)cfg->crl_refresh_s * 1000u;
    c->on_crl = cfg->on_crl;
    c->on_crl_ctx = cfg->on_crl_ctx;
    c->allow_shared_key_file = cfg->allow_shared_key_file;
    c->renew_pct = cfg->renew_when_left_pct < 100 ? cfg->renew_when_left_pct : 99;
    c->make_csr = cfg->make_csr;
    c->make_csr_ctx = cfg->make_csr_ctx;
    c->keepalive_ms = cfg->keepalive_ms;
    c->reconnect_min_ms = cfg->reconnect_min_ms ? cfg->reconnect_min_ms : 1000;
    c->reconnect_max_ms = cfg->reconnect_max_ms ? cfg->reconnect_max_ms : 60000;
    if (c->reconnect_max_ms < c->reconnect_min_ms)
        c->reconnect_max_ms = c->reconnect_min_ms;
    c->audit = cfg->audit;
    c->audit_ctx = cfg->audit_ctx;
    c->results_max = c->q_cap / 8 ? c->q_cap / 8 : 1;
    c->results = calloc(c->results_max, sizeof c->results[0]);
    if (c->results == NULL) {
        e = mwi_detail_fail(d, MW_ENOMEM, "out of memory");
        goto fail;
    }
    e = open_queue(c, cfg, d);
    if (e == MW_OK)
        e = count_results(c, d);
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
    MWI_TEXTF(why, sizeof why,
              "the offline queue's storage failed (%.150s): close and reopen the client",
              d.reason[0] ? d.reason : mw_strerror(e));
    return fail_fatal(c, e, d.foreign, why);
}

/* What the gateway's time is kept relative to: the device's own wall clock when it has one, even
 * unsynchronised (it does not jump between acknowledgements), else its monotonic clock. */
static uint64_t clock_base(const mw_client_t *c, int *out_synced)
{
    *out_synced = 0;
    if (c->clock.wall_ms != NULL)
        return c->clock.wall_ms(c->clock.ctx, out_synced);
    return now_ms(c);
}

/* The time a message is stamped with: the device's own wall clock while it is synchronised;
 * else the gateway's, kept as an offset, which is synchronised too (the gateway sends its time
 * only while its clock is); else the unsynchronised wall clock, or 0 without one. */
static uint64_t device_now(const mw_client_t *c, int *out_synced, bool *out_by_gateway)
{
    uint64_t base = clock_base(c, out_synced);
    *out_by_gateway = false;
    if (*out_synced)
        return base;
    if (c->gw_time_valid) {
        *out_synced = 1;
        *out_by_gateway = true;
        return (uint64_t)((int64_t)base + c->gw_offset_ms);
    }
    return c->clock.wall_ms != NULL ? base : 0;
}

/* Earliest gateway time believed (2020-01-01): an Ack carrying less is from a gateway whose
 * clock is broken, whatever it claims. */
#define MIN_GATEWAY_TIME_MS 1577836800000ull

/* Takes the gateway's time from an answer to @p q. A device with a synchronised clock of its
 * own keeps using it; the offset is still measured, for mw_client_stats. Half the round trip
 * is added when the request went once (a retransmitted one's round trip is not known). */
static void learn_gateway_time(mw_client_t *c, const struct req *q, uint64_t gw_ms)
{
    if (gw_ms < MIN_GATEWAY_TIME_MS || gw_ms > (uint64_t)INT64_MAX / 2)
        return;
    uint64_t now = now_ms(c);
    uint64_t half_rtt = q->r.retransmits == 0 && now >= q->sent_ms ? (now - q->sent_ms) / 2 : 0;
    int synced;
    uint64_t base = clock_base(c, &synced);
    c->gw_offset_ms = (int64_t)(gw_ms + half_rtt) - (int64_t)base;
    c->gw_time_valid = true;
    c->st.gateway_time_offset_ms = c->gw_offset_ms;
    c->st.gateway_time_updates++;
}

static mw_err enqueue(mw_client_t *c, mw_message_t *m, uint64_t *out_seq)
{
    if (c->fatal != MW_OK)
        return c->fatal;
    int synced = 0;
    m->seq = mwi_seq_peek(&c->seqs);
    snprintf(m->device_id, sizeof m->device_id, "%s", mwi_dtls_ctx_own_id(c->dtls));
    bool by_gateway;
    m->device_time_ms = device_now(c, &synced, &by_gateway);
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
    if (by_gateway)
        c->st.messages_stamped_by_gateway_time++;
    if (out_seq)
        *out_seq = m->seq;
    return MW_OK;
}

static uint64_t stamp(const mw_client_t *c, uint64_t t)
{
    int synced;
    bool by_gateway;
    if (t != 0)
        return t;
    return device_now(c, &synced, &by_gateway);
}

/* What the application hands in: @p body (NULL: refused), @p size bytes of the union member
 * of @p type, goes in a message of its own with @p prio; an observation or an alarm without a
 * time (0) takes the wall clock's now. */
static mw_err submit(mw_client_t *c, mw_msg_type type, mw_priority prio, const void *body,
                     size_t size, uint64_t *out_seq)
{
    if (c == NULL || body == NULL)
        return MW_EINVAL;
    mw_message_t m;
    memset(&m, 0, sizeof m);
    m.type = type;
    m.priority = prio;
    memcpy(&m.u, body, size);
    if (type == MW_MSG_OBSERVATION)
        m.u.observation.time_ms = stamp(c, m.u.observation.time_ms);
    else if (type == MW_MSG_ALARM)
        m.u.alarm.time_ms = stamp(c, m.u.alarm.time_ms);
    return enqueue(c, &m, out_seq);
}

mw_err mw_client_send_observation(mw_client_t *c, const mw_observation_t *obs, uint64_t *out_seq)
{
    return submit(c, MW_MSG_OBSERVATION, MW_PRIORITY_OBSERVATION, obs, sizeof *obs, out_seq);
}

mw_err mw_client_raise_alarm(mw_client_t *c, const mw_alarm_t *alarm, uint64_t *out_seq)
{
    return submit(c, MW_MSG_ALARM, MW_PRIORITY_ALARM, alarm, sizeof *alarm, out_seq);
}

mw_err mw_client_send_status(mw_client_t *c, const mw_device_status_t *st, uint64_t *out_seq)
{
    return submit(c, MW_MSG_STATUS, MW_PRIORITY_STATUS, st, sizeof *st, out_seq);
}

/* The reconnection schedule's ceiling after @p n steps, min(max, min * 2^n), and a random draw
 * below it (@p r: 32 random bits, 0 if the random source fails). */
static uint64_t backoff_cap(mw_client_t *c, uint32_t n, uint32_t *r)
{
    uint64_t cap = c->reconnect_min_ms;
    for (uint32_t i = 0; i < n && cap < c->reconnect_max_ms; i++)
        cap *= 2;
    if (cap > c->reconnect_max_ms)
        cap = c->reconnect_max_ms;
    *r = 0;
    if (c->rnd.fill(c->rnd.ctx, (uint8_t *)r, sizeof *r) != MW_OK)
        *r = 0;
    return cap;
}

/* Full jitter (a random delay in [0, min(max, min * 2^attempts)]) so that a
 * fleet that lost its gateway at once does not come back at once. */
static void schedule_reconnect(mw_client_t *c, uint64_t now)
{
    uint32_t r;
    uint64_t cap = backoff_cap(c, c->attempts, &r);
    c->reconnect_at_ms = now + (cap ? (uint64_t)r % (cap + 1) : 0);
    c->attempts++;
}

/* An answer that settled nothing. Sending the same batch again at once would let a gateway
 * that answers every request that way (broken, or hostile) keep the device busy at thousands
 * of requests a second, draining its battery and radio. The next batch waits instead, on the
 * reconnection schedule with equal jitter: a random delay in [cap / 2, cap], cap =
 * min(max, min * 2^(n-1)) after n such answers in a row. The floor bounds the request rate
 * whatever the random source says; an Ack that settles something ends it. */
static void useless_answer(mw_client_t *c, uint64_t now)
{
    uint32_t r;
    uint64_t cap = backoff_cap(c, c->useless, &r);
    c->resend_at_ms = now + cap - (uint64_t)r % (cap / 2 + 1);
    c->useless++;
    c->st.useless_answers++;
}

static void drop_link(mw_client_t *c, uint64_t now)
{
    mwi_link_clear(&c->link);
    for (size_t i = 0; i < c->nstart; i++)
        c->reqs[i].used = false; /* their messages stay queued and go again */
    c->renew_sent = false;       /* and a certificate request too */
    c->crl_sent = false;         /* a CRL fetch starts again from its first block */
    c->next_is_renewed = false;  /* a switch to a renewed pair, again on the next session */
    c->crl_block = 0;
    free(c->crl_body);
    c->crl_body = NULL;
    c->crl_len = 0;
    mwi_coap_block1_sender_stop(&c->b1);
    c->st.connected = false;
    c->state = ST_IDLE;
    schedule_reconnect(c, now);
}

/* The gateway in use could not be reached (no handshake completed, or CoAP gave up on a
 * request): with a list of gateways, the next attempt goes to the next one, round robin, on the
 * backoff drop_link schedules. The resumable session belongs to the gateway that made it and
 * would mean nothing to another: it is forgotten, and the next gateway gets a full handshake.
 * The queue is untouched: what was in flight goes again to the new gateway. */
static void fail_over(mw_client_t *c)
{
#ifdef MW_PORT_POSIX
    if (c->n_gws < 2)
        return;
    char why[sizeof c->last.reason], next[sizeof c->gw_text];
    c->gw_i = (uint8_t)((c->gw_i + 1u) % c->n_gws);
    if (mw_addr_format(&c->gws[c->gw_i], next, sizeof next) != MW_OK)
        snprintf(next, sizeof next, "?");
    /* The reason says which gateway failed (the audit event's peer), and which one is next. */
    if (strstr(c->last.reason, c->gw_text) != NULL)
        MWI_TEXTF(why, sizeof why, "%.90s; next: %.60s", c->last.reason, next);
    else
        MWI_TEXTF(why, sizeof why, "the gateway at %.40s failed (%.38s); next: %.48s", c->gw_text,
                  c->last.reason, next);
    set_last(c, c->last.err, c->last.foreign, why);
    audit(c, MW_AUDIT_FAILOVER, c->last.err, 0, why);
    c->gw = c->gws[c->gw_i];
    memcpy(c->gw_text, next, sizeof next);
    mwi_dtls_session_free(&c->saved);
    c->st.failovers++;
    c->st.gateway_index = c->gw_i;
#else
    (void)c; /* one gateway_addr: nothing to fail over to */
#endif
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
    mwi_dtls_conn_error(c->link.conn, &d);
    if (d.err == MW_OK)
        d.err = MW_EDTLS;
    c->st.handshake_failures++;
    set_last(c, d.err, d.foreign, d.reason);
    audit(c, MW_AUDIT_HANDSHAKE_FAILED, d.err, d.foreign, d.reason);
    if (is_fatal_handshake(d.err)) {
        /* Retrying cannot fix a certificate or a refusal: say so once, stop. */
        mwi_link_clear(&c->link);
        c->state = ST_FAILED;
        c->fatal = d.err;
        return;
    }
    fail_over(c);
    drop_link(c, now);
}

static void start_handshake(mw_client_t *c, uint64_t now)
{
    mw_err e = mwi_link_connect(&c->link, c->dtls, &c->gw, dtls_out, c);
    if (e != MW_OK) {
        set_last(c, e, 0, "cannot create a DTLS session");
        schedule_reconnect(c, now);
        return;
    }
    /* Reconnection resumes by session ID when it can (cheap, and the gateway
     * re-checks revocation); a rotation never does (start_rekey). */
    if (c->saved != NULL && mwi_dtls_conn_set_session(c->link.conn, c->saved) != MW_OK)
        mwi_dtls_session_free(&c->saved);
    c->state = ST_HANDSHAKE;
    c->handshake_started_ms = now;
    c->progressed = true;
    e = mwi_link_start(&c->link, now);
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
    if (mwi_dtls_conn_resumed(c->link.conn))
        c->st.resumptions++;
    mwi_dtls_session_free(&c->saved);
    c->saved = mwi_dtls_conn_save_session(c->link.conn);
    c->st.handshakes++;
    c->st.connected = true;
    MWI_TEXTF(why, sizeof why, "DTLS 1.2 session with gateway '%.64s' (%.40s)",
              mwi_dtls_conn_peer_id(c->link.conn), mwi_dtls_conn_cipher(c->link.conn));
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
    for (size_t i = 0; i < c->nstart; i++)
        if (c->reqs[i].used && req_carries(&c->reqs[i], seq))
            return true;
    return false;
}

static void release(mw_client_t *c, struct req *q)
{
    if (q->block)
        mwi_coap_block1_sender_stop(&c->b1);
    q->used = false;
    q->block = false;
    q->nseq = 0;
}

/* Forgets the messages of @p q that the gateway acknowledged (custody
 * transfer): only those both carried and covered by a range. Returns how many. */
static size_t apply_ack(mw_client_t *c, struct req *q, const mwi_seq_range *r, size_t n)
{
    uint64_t got[MWI_MAX_BATCH];
    uint8_t gi[MWI_MAX_BATCH];
    size_t k = 0;
    for (uint8_t i = 0; i < q->nseq; i++) {
        bool acked = false;
        for (size_t j = 0; j < n && !acked; j++)
            acked = q->seqs[i] >= r[j].first && q->seqs[i] <= r[j].last;
        if (acked) {
            gi[k] = i;
            got[k++] = q->seqs[i];
        }
    }
    if (k == 0)
        return 0;
    /* In any order; at most MWI_MAX_BATCH numbers make at most as many ranges, so none is left
     * out (asserted at the top of this file). */
    mwi_seq_range ranges[MWI_MAX_ACK_RANGES];
    size_t nr = mwi_ranges_from_seqs(got, k, ranges, MWI_MAX_ACK_RANGES);
    size_t removed = 0;
    mw_err e = mwi_queue_ack(c->queue, ranges, nr, qnow(c), &removed);
    if (e != MW_OK) {
        (void)storage_failed(c, e);
        return 0;
    }
    c->st.messages_acked += removed;
    for (size_t i = 0; i < k; i++)
        if (q->types[gi[i]] == MW_MSG_COMMAND_RESULT)
            result_gone(c, got[i]);
    /* Once the removal is recorded: a storage failure before it sends them again, and they
     * are reported then. */
    for (size_t i = 0; i < k; i++)
        report_fate(c, got[i], (mw_msg_type)q->types[gi[i]], q->prios[gi[i]], MW_FATE_DELIVERED,
                    MW_OK, "");
    return k;
}

static mw_err send_block(mw_client_t *c, struct req *q, uint64_t now);
static void start_rekey(mw_client_t *c, uint64_t now, const char *why);
static void start_switch(mw_client_t *c, uint64_t now);
static void switch_failed(mw_client_t *c, const mw_error_detail_t *d);

/* Whether a command may be handled now. Handling one (running or refusing it) queues its
 * result with alarm priority, and a gateway may send four new commands in every Ack: unbounded,
 * their results would fill the queue and evict the observations and alarms it holds for the
 * hospital. So results take at most an eighth of the queue at once (one at least), and only
 * a free place: never one a message would have to be evicted from. A command that finds no
 * room is neither run nor recorded as handled; the gateway sends it again, in every Ack until
 * its result arrives (docs/protocol.md 7), and it runs once there is room. */
static bool result_room(const mw_client_t *c)
{
    return c->nresults < c->results_max && depth(c) < c->q_cap;
}

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
    uint64_t seq = 0;
    if (enqueue(c, &m, &seq) != MW_OK)
        set_last(c, MW_EFULL, 0, "queue full: a command result was not queued");
    else if (c->nresults < c->results_max)
        c->results[c->nresults++] = seq;
}

/* A command's argument outside the range the SDK documents (client.h, docs/protocol.md 7) is
 * refused unrun, whatever the application would do with it: a gateway (compromised, or an
 * operator's slip) must not be able to stop a monitor's measurements with an interval of 0 or
 * of 49 days, nor acknowledge an alarm this device never raised. Says why in @p why (audit) and
 * @p detail (the result the gateway receives). */
static bool args_in_range(const mw_client_t *c, const mw_command_t *cmd, char *why, size_t wcap,
                          char *detail, size_t dcap)
{
    char n1[MWI_U64_TEXT];
    if (cmd->kind == MW_CMD_SET_INTERVAL && (cmd->u.interval_ms < MW_CMD_INTERVAL_MIN_MS ||
                                             cmd->u.interval_ms > MW_CMD_INTERVAL_MAX_MS)) {
        snprintf(detail, dcap, "interval_ms %lu not in %u..%u", (unsigned long)cmd->u.interval_ms,
                 MW_CMD_INTERVAL_MIN_MS, MW_CMD_INTERVAL_MAX_MS);
    } else if (cmd->kind == MW_CMD_ACK_ALARM &&
               (cmd->u.alarm_seq == 0 || cmd->u.alarm_seq >= mwi_seq_peek(&c->seqs))) {
        snprintf(detail, dcap, "alarm_seq %s never issued", mwi_u64_dec(cmd->u.alarm_seq, n1));
    } else {
        return true;
    }
    MWI_TEXTF(why, wcap, "command %s refused: %s", mwi_u64_dec(cmd->id, n1), detail);
    return false;
}

/* Commands ride in Acks (docs/protocol.md 9). Each is checked against
 * replay and expiry, run, and answered with a result message. False if some had to wait for
 * room for their result (result_room). */
static bool run_commands(mw_client_t *c, const mw_command_t *cmds, size_t n)
{
    bool all = true;
    int synced = 0;
    uint64_t wall = c->clock.wall_ms ? c->clock.wall_ms(c->clock.ctx, &synced) : 0;
    for (size_t i = 0; i < n; i++) {
        const mw_command_t *cmd = &cmds[i];
        char why[160], n1[MWI_U64_TEXT], n2[MWI_U64_TEXT], n3[MWI_U64_TEXT];
        mwi_cmd_verdict v = mwi_cmd_check(&c->cmd_guard, cmd, wall);
        if (v == MWI_CMD_DUPLICATE)
            continue;
        if (!result_room(c)) {
            c->st.commands_deferred++;
            all = false;
            continue;
        }
        switch (v) {
        case MWI_CMD_DUPLICATE:
            continue;
        case MWI_CMD_REPLAY:
            MWI_TEXTF(why, sizeof why, "command %s refused: not above the last one run (%s)",
                      mwi_u64_dec(cmd->id, n1), mwi_u64_dec(c->cmd_guard.last, n2));
            audit(c, MW_AUDIT_COMMAND_REFUSED, MW_EREPLAY, 0, why);
            command_result(c, cmd->id, MW_CMD_REFUSED_REPLAY, "replayed command");
            continue;
        case MWI_CMD_EXPIRED:
            MWI_TEXTF(why, sizeof why, "command %s refused: expired at %s, device time %s%s",
                      mwi_u64_dec(cmd->id, n1), mwi_u64_dec(cmd->expires_ms, n2),
                      mwi_u64_dec(wall, n3), synced ? "" : " (clock not synchronised)");
            audit(c, MW_AUDIT_COMMAND_REFUSED, MW_ETIMEDOUT, 0, why);
            mwi_cmd_done(&c->cmd_guard, cmd->id);
            command_result(c, cmd->id, MW_CMD_REFUSED_EXPIRED, "expired");
            continue;
        case MWI_CMD_RUN:
            break;
        }
        mwi_cmd_done(&c->cmd_guard, cmd->id);
        char detail[MW_COMMAND_DETAIL_MAX + 1];
        if (!args_in_range(c, cmd, why, sizeof why, detail, sizeof detail)) {
            audit(c, MW_AUDIT_COMMAND_REFUSED, MW_EINVAL, 0, why);
            command_result(c, cmd->id, MW_CMD_FAILED, detail);
            continue;
        }
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
    return all;
}

/* The gateway could not judge some of our numbers (docs/protocol.md 5b): move to a new space,
 * where what we hold goes again, marked as possible duplicates. */
static void resynchronise(mw_client_t *c, mwi_resync why)
{
    static const char *const because[] = {"", "a number it delivered came again with other content",
                                          "a number it can no longer judge",
                                          "our sequence space is one we left earlier"};
    uint64_t old = c->space;
    mw_err e = new_space(c);
    if (e != MW_OK) {
        (void)storage_failed(c, e);
        return;
    }
    c->st.resyncs++;
    char text[240], n1[MWI_U64_TEXT], n2[MWI_U64_TEXT], n3[MWI_U64_TEXT];
    MWI_TEXTF(text, sizeof text,
              "the gateway asked for a resynchronisation (%s): sequence space %s replaces "
              "%s; messages numbered below %s go again as possible duplicates",
              because[(unsigned)why <= MWI_RESYNC_RETIRED ? why : MWI_RESYNC_UNKNOWN],
              mwi_u64_hex16(c->space, n1), mwi_u64_hex16(old, n2), mwi_u64_dec(c->space_start, n3));
    audit(c, MW_AUDIT_RESYNC, MW_EREPLAY, 0, text);
}

/* The answer to the certificate request: given to on_renewal, and the request forgotten. */
static void renewal_answered(mw_client_t *c, struct req *q, const mwi_coap_msg *m)
{
    uint8_t cls = (uint8_t)(m->code >> 5);
    if (m->code == MWI_COAP_SERVICE_UNAVAILABLE) {
        /* Not decided yet (the request is with the CA): the same request again after Max-Age
         * (60 s when absent, RFC 7252 5.10.5), between 1 s and an hour. */
        uint32_t wait = (m->flags & MWI_COAP_F_MAX_AGE) ? m->max_age : 60;
        wait = wait < 1 ? 1 : wait > 3600 ? 3600 : wait;
        release(c, q);
        c->renew_sent = false;
        c->renew_at_ms = now_ms(c) + (uint64_t)wait * 1000;
        c->progressed = true;
        return;
    }
    char why[160];
    int dl = (int)(m->payload_len < 100 ? m->payload_len : 100);
    MWI_TEXTF(why, sizeof why, "the gateway answered the certificate request with %u.%02u%s%.*s",
              cls, (unsigned)(m->code & 0x1f), dl ? ": " : "", dl,
              m->payload ? (const char *)m->payload : "");
    mw_err e = cls == 2 ? MW_OK : cls == 5 ? MW_EAGAIN : MW_ECOAP_RESPONSE;
    /* application/pkix-cert (RFC 9148 287), as asked: one DER certificate, a SEQUENCE. */
    if (e == MW_OK && (m->content_format != 287 || m->payload == NULL || m->payload_len < 2 ||
                       m->payload[0] != 0x30)) {
        e = MW_EDECODE;
        MWI_TEXTF(why, sizeof why,
                  "the gateway's answer to the certificate request is not a "
                  "DER certificate (Content-Format 287)");
    }
    release(c, q);
    free(c->renew_csr);
    c->renew_csr = NULL;
    c->renew_sent = false;
    if (e == MW_OK) {
        int synced;
        bool by_gateway;
        c->st.renewals++;
        c->st.last_renewal_ms = device_now(c, &synced, &by_gateway);
    }
    c->progressed = true;
    c->on_renewal(c->on_renewal_ctx, e, e == MW_OK ? m->payload : NULL,
                  e == MW_OK ? m->payload_len : 0, e == MW_OK ? "" : why);
}

/* The fetch is over, taken or not: the next one after crl_refresh_ms. */
static void crl_done(mw_client_t *c, uint64_t now)
{
    free(c->crl_body);
    c->crl_body = NULL;
    c->crl_len = 0;
    c->crl_block = 0;
    c->crl_due_ms = now + c->crl_refresh_ms;
}

/* A whole CRL from the gateway: taken if the CA signed it and it is not older (dtls.h); a
 * gateway it revokes loses its session, and the next handshake with it fails for good. */
static void crl_received(mw_client_t *c, const uint8_t *der, size_t len)
{
    mw_error_detail_t d;
    mw_err e = mwi_dtls_ctx_update_crl(c->dtls, der, len, c->link.conn, &d);
    if (e == MW_OK || e == MW_ECERT_REVOKED) {
        c->st.crls_taken++;
        if (c->on_crl)
            c->on_crl(c->on_crl_ctx, der, len);
    } else {
        c->st.crls_refused++;
    }
    if (e == MW_ECONFIG)
        c->crl_refresh_ms = 0; /* no CRL support in this build: said once, not asked again */
    if (e != MW_OK)
        set_last(c, e, d.foreign, d.reason);
    if (e == MW_ECERT_REVOKED) {
        audit(c, MW_AUDIT_HANDSHAKE_FAILED, e, 0, d.reason);
        mwi_dtls_session_free(&c->saved); /* no resumption: a full handshake, checked */
        mwi_dtls_conn_close(c->link.conn);
        c->drop_requested = true; /* inside the record callback: dropped after it */
    }
}

/* One block of the CRL (RFC 7959 2.4): the next asked for, or the whole CRL taken. */
static void crl_answered(mw_client_t *c, struct req *q, const mwi_coap_msg *m)
{
    uint64_t now = now_ms(c);
    release(c, q);
    c->crl_sent = false;
    c->progressed = true;
    bool more = false;
    const char *bad = NULL;
    if (m->code != MWI_COAP_CONTENT || m->content_format != MWI_COAP_CF_PKIX_CRL)
        bad = "the gateway has no CRL to give (GET /crl was not answered 2.05 "
              "application/pkix-crl)";
    else if ((m->flags & MWI_COAP_F_BLOCK2) && MWI_COAP_BLOCK_NUM(m->block2) != c->crl_block)
        bad = "the gateway's CRL came with a block out of order";
    else if (m->payload_len > MWI_CRL_FETCH_MAX - c->crl_len)
        bad = "the gateway's CRL is larger than a device fetches (16 KB)";
    if (bad == NULL) {
        more = (m->flags & MWI_COAP_F_BLOCK2) && MWI_COAP_BLOCK_MORE(m->block2);
        if (c->crl_body == NULL)
            c->crl_body = malloc(MWI_CRL_FETCH_MAX);
        if (c->crl_body == NULL) {
            bad = "out of memory for the gateway's CRL";
        } else if (m->payload_len) {
            memcpy(c->crl_body + c->crl_len, m->payload, m->payload_len);
            c->crl_len += m->payload_len;
        }
    }
    if (bad != NULL) {
        c->st.crls_refused++;
        set_last(c, MW_ECOAP_RESPONSE, 0, bad);
        crl_done(c, now);
        return;
    }
    if (more) {
        c->crl_block++; /* send_crl_fetch asks for it at once */
        return;
    }
    uint8_t *body = c->crl_body;
    size_t len = c->crl_len;
    c->crl_body = NULL;
    crl_done(c, now);
    crl_received(c, body, len);
    free(body);
}

static void on_response(mw_client_t *c, struct req *q, const mwi_coap_msg *m)
{
    uint8_t cls = (uint8_t)(m->code >> 5);
    if (q->est) {
        renewal_answered(c, q, m);
        return;
    }
    if (q->crl) {
        crl_answered(c, q, m);
        return;
    }
    if (q->block && m->code == MWI_COAP_CONTINUE) {
        /* 2.31: the gateway took this block; send the next (RFC 7959 2.5). */
        if (mwi_coap_block1_sender_next(&c->b1) != MW_OK || send_block(c, q, now_ms(c)) != MW_OK)
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
        mwi_resync resync = MWI_RESYNC_NONE;
        uint64_t gw_time = 0;
        if (m->content_format != MWI_COAP_CF_MEDWIRE_ACK ||
            mwi_ack_decode_full(m->payload, m->payload_len, r, MWI_MAX_ACK_RANGES, &n, cmds,
                                MWI_MAX_COMMANDS, &ncmds, &resync, &gw_time) != MW_OK) {
            /* Without a readable acknowledgement nothing may be forgotten. */
            set_last(c, MW_EDECODE, 0, "the gateway's acknowledgement could not be decoded");
            release(c, q);
            useless_answer(c, now_ms(c));
            return;
        }
        /* The link works: an error met while it did not is no longer the state of things. */
        set_last(c, MW_OK, 0, NULL);
        learn_gateway_time(c, q, gw_time);
        if (apply_ack(c, q, r, n) > 0) {
            c->useless = 0;
            c->resend_at_ms = 0;
        } else if (resync == MWI_RESYNC_NONE) {
            /* A resynchronisation is an answer; an Ack of nothing without one is not. */
            useless_answer(c, now_ms(c));
        }
        /* Only an answer to a request in the current space moves it: a late answer to one sent
         * before the last move asks for what was done already. */
        if (resync != MWI_RESYNC_NONE && q->space == c->space)
            resynchronise(c, resync);
        release(c, q);
        run_commands(c, cmds, ncmds);
        c->progressed = true;
        return;
    }
    char why[160];
    int dl = (int)(m->payload_len < 100 ? m->payload_len : 100);
    MWI_TEXTF(why, sizeof why, "the gateway refused our messages with %u.%02u%s%.*s", cls,
              (unsigned)(m->code & 0x1f), dl ? ": " : "", dl,
              m->payload ? (const char *)m->payload : "");
    set_last(c, MW_ECOAP_RESPONSE, m->code, why);
    if (cls == 5) {
        /* The gateway is alive but cannot take custody now: wait with backoff on the session we
         * have, as for any answer that settles nothing. Reconnecting would add a handshake per
         * device to a gateway that is already struggling. */
        release(c, q);
        useless_answer(c, now_ms(c));
        return;
    }
    if (m->code == MWI_COAP_REQUEST_ENTITY_INCOMPLETE) {
        /* The gateway lost the block-wise transfer: start again on a fresh link, after the
         * record callback returns. */
        release(c, q);
        c->drop_requested = true;
        return;
    }
    for (uint8_t i = 0; i < q->nseq; i++) {
        c->st.messages_refused++;
        report_fate(c, q->seqs[i], (mw_msg_type)q->types[i], q->prios[i], MW_FATE_REFUSED,
                    MW_ECOAP_RESPONSE, why);
    }
    release(c, q);
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
    uint8_t out[MWI_COAP_EMPTY_SIZE];
    size_t n;
    if (mwi_coap_encode_empty(to, type, out, sizeof out, &n) == MW_OK)
        write_lossy(c->link.conn, out, n);
}

/* The gateway's one request: a command POSTed to /cmd (docs/protocol.md 7). It runs through
 * the same guard as a command in an Ack, so a retransmission, or the same command in the next
 * Ack, runs once. Answered piggybacked, 5.03 when it could not run for want of room for its
 * result (it comes again in Acks); anything else gets RST (RFC 7252 4.2, 4.3). */
static void handle_request(mw_client_t *c, const mwi_coap_msg *m)
{
    mw_command_t cmd;
    mwi_coap_msg r;
    uint8_t out[32];
    size_t n;
    if (m->type != MWI_COAP_CON || m->code != MWI_COAP_POST ||
        strcmp(m->uri_path, MWI_PATH_COMMAND) != 0) {
        send_empty(c, m, MWI_COAP_RST);
        return;
    }
    uint8_t code = MWI_COAP_CHANGED;
    if (m->content_format != MWI_COAP_CF_MEDWIRE_COMMAND)
        code = MWI_COAP_UNSUPPORTED_CONTENT_FORMAT;
    else if (mwi_command_decode(m->payload, m->payload_len, &cmd) != MW_OK)
        code = MWI_COAP_BAD_REQUEST;
    else if (!run_commands(c, &cmd, 1))
        code = MWI_COAP_SERVICE_UNAVAILABLE; /* not run: no room for its result yet */
    if (mwi_coap_response_for(m, code, &r) == MW_OK &&
        mwi_coap_encode(&r, out, sizeof out, &n) == MW_OK)
        write_lossy(c->link.conn, out, n);
}

static void on_record(void *ctx, const uint8_t *data, size_t len)
{
    mw_client_t *c = ctx;
    mwi_coap_msg m;
    if (mwi_coap_parse(c->parser, data, len, &m) != MW_OK)
        return; /* not CoAP: nothing to answer (RFC 7252 4.2 allows silence) */
    if (MWI_COAP_IS_REQUEST(m.code)) {
        handle_request(c, &m);
        return;
    }
    for (size_t i = 0; i < c->nstart; i++) {
        struct req *q = &c->reqs[i];
        if (!q->used)
            continue;
        mw_err e = mwi_coap_request_match(&q->r, &m);
        if (e == MW_EAGAIN || e == MW_EINPROGRESS)
            continue; /* not this one, or an empty ACK: the response follows */
        if (e == MW_ECOAP_RESET) {
            bool ping = q->ping;
            if (q->est)
                c->renew_sent = false; /* asked again, after the wait below */
            if (q->crl) {
                c->crl_sent = false;
                crl_done(c, now_ms(c));
            }
            release(c, q); /* a ping's RST is its answer: the gateway is alive */
            if (!ping) {
                set_last(c, MW_ECOAP_RESET, 0, "the gateway reset our request");
                useless_answer(c, now_ms(c));
            }
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
        if (!c->reqs[i].used) {
            c->reqs[i].crl = false; /* the kinds the caller does not name are cleared here */
            return &c->reqs[i];
        }
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
    e = mwi_dtls_conn_write(c->link.conn, q->buf, q->len);
    if (e != MW_OK && e != MW_EAGAIN)
        return e;
    e = mwi_coap_request_start(&q->r, &c->params, c->rnd, m->mid, m->token, m->token_len, now);
    if (e != MW_OK)
        return e;
    q->used = true;
    q->sent_ms = now;
    c->st.requests_sent++;
    c->progressed = true;
    return MW_OK;
}

static void batch_request(mwi_coap_msg *m, const uint8_t *payload, size_t len)
{
    mwi_coap_msg_init(m);
    m->type = MWI_COAP_CON;
    m->code = MWI_COAP_POST;
    snprintf(m->uri_path, sizeof m->uri_path, "%s", MWI_PATH_BATCH);
    m->content_format = MWI_COAP_CF_MEDWIRE_BATCH;
    m->payload = payload;
    m->payload_len = len;
}

/* The current block of c->body (c->b1), Size1 on the first (RFC 7959 2.5, 4). */
static mw_err send_block(mw_client_t *c, struct req *q, uint64_t now)
{
    mwi_coap_msg m;
    mw_err e = mwi_coap_block1_sender_msg(&c->b1, &m);
    return e != MW_OK ? e : transmit(c, q, &m, now);
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
    if (q == NULL || now < c->resend_at_ms)
        return;
    const mw_message_t *ptrs[MWI_MAX_BATCH];
    size_t n = collect(c, ptrs, c->batch_max);
    if (n == 0)
        return;
    /* The low-water mark is the oldest sequence number still held. */
    mwi_batch_head head = {.low_water = mwi_queue_low_water(c->queue), .space = c->space};
    for (size_t i = 0; i < n; i++)
        c->batch[i].possible_duplicate = c->batch[i].seq < c->space_start;
    bool block = !c->b1.active && !c->no_block1 && c->body != NULL;
    uint8_t one[BATCH_CAP];
    uint8_t *payload = block ? c->body : one;
    size_t cap = block ? c->body_cap : sizeof one;
    size_t plen = 0, count = 0;
    mw_err e = mwi_batch_encode_in(ptrs, n, &head, payload, cap, &plen, &count);
    if (e != MW_OK) {
        set_last(c, e, 0, "a queued message cannot be encoded");
        c->fatal = e;
        c->state = ST_FAILED;
        return;
    }
    q->ping = false;
    q->est = false;
    q->nseq = (uint8_t)count;
    q->space = c->space;
    for (size_t i = 0; i < count; i++) {
        q->seqs[i] = ptrs[i]->seq;
        q->types[i] = (uint8_t)ptrs[i]->type;
        q->prios[i] = (uint8_t)ptrs[i]->priority;
    }
    if (block && plen > BATCH_CAP) {
        mwi_coap_msg tpl;
        batch_request(&tpl, NULL, 0);
        e = mwi_coap_block1_sender_start(&c->b1, &tpl, c->body, plen, MWI_BLOCK_SZX);
        q->block = e == MW_OK;
        if (e == MW_OK)
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
    q->est = false;
    q->block = false;
    q->nseq = 0;
    if (transmit(c, q, &m, now) != MW_OK)
        drop_link(c, now);
    else
        c->last_rx_ms = now; /* one ping per interval */
}

/* Sends @p m, a request that carries no messages, in the free slot @p q: the certificate request
 * (@p est) or a block of the CRL. False when the link failed (it is then dropped). */
static bool send_aside(mw_client_t *c, struct req *q, mwi_coap_msg *m, bool est, uint64_t now)
{
    q->ping = false;
    q->est = est;
    q->crl = !est;
    q->block = false;
    q->nseq = 0;
    if (transmit(c, q, m, now) == MW_OK)
        return true;
    drop_link(c, now);
    return false;
}

/* The certificate request of mw_client_renew, once per session, ahead of batches. */
static void send_renewal(mw_client_t *c, uint64_t now)
{
    if (c->renew_csr == NULL || c->renew_sent || c->state != ST_READY || now < c->resend_at_ms ||
        now < c->renew_at_ms)
        return;
    struct req *q = free_req(c);
    if (q == NULL)
        return;
    mwi_coap_msg m;
    mwi_coap_msg_init(&m);
    m.type = MWI_COAP_CON;
    m.code = MWI_COAP_POST;
    snprintf(m.uri_path, sizeof m.uri_path, "%s", ".well-known/est/sren");
    m.content_format = 286; /* application/pkcs10 */
    m.accept = 287;         /* application/pkix-cert: the certificate alone */
    m.payload = c->renew_csr;
    m.payload_len = c->renew_len;
    if (send_aside(c, q, &m, true, now))
        c->renew_sent = true;
}

/* The renewal on the device's schedule (renew_when_left_pct): when the certificate in use is
 * inside its window, make_csr's request goes as mw_client_renew's; an attempt at most hourly. */
static void maybe_renew(mw_client_t *c, uint64_t now)
{
    if (c->renew_pct == 0 || c->make_csr == NULL || c->on_renewal == NULL || c->renew_csr != NULL ||
        c->next_dtls != NULL || c->state != ST_READY || now < c->renew_try_at_ms)
        return;
    mwi_dtls_expiry x;
    mwi_dtls_ctx_expiry(c->dtls, &x);
    int synced;
    bool by_gateway;
    int64_t wall = (int64_t)(device_now(c, &synced, &by_gateway) / 1000u);
    if (x.cert == 0 || x.cert_from == 0 || x.cert <= x.cert_from || wall <= 0 ||
        (x.cert - wall) * 100 > (x.cert - x.cert_from) * (int64_t)c->renew_pct)
        return;
    c->renew_try_at_ms = now + 3600u * 1000u;
    uint8_t csr[MW_CSR_MAX];
    size_t len = 0;
    mw_err e = c->make_csr(c->make_csr_ctx, mwi_dtls_ctx_own_id(c->dtls), csr, sizeof csr, &len);
    if (e == MW_OK && (len == 0 || len > sizeof csr))
        e = MW_EINVAL;
    if (e == MW_OK)
        e = mw_client_renew(c, csr, len);
    if (e != MW_OK)
        set_last(c, e, 0,
                 "the certificate is inside its renewal window, but make_csr gave no request; "
                 "tried again in an hour");
}

/* The next block of the CA's CRL (crl_refresh_s), when it is due. */
static void send_crl_fetch(mw_client_t *c, uint64_t now)
{
    if (c->crl_refresh_ms == 0 || c->crl_sent || c->state != ST_READY || now < c->crl_due_ms ||
        now < c->resend_at_ms)
        return;
    struct req *q = free_req(c);
    if (q == NULL)
        return;
    mwi_coap_msg m;
    mwi_coap_msg_init(&m);
    m.type = MWI_COAP_CON;
    m.code = MWI_COAP_GET;
    snprintf(m.uri_path, sizeof m.uri_path, "%s", MWI_PATH_CRL);
    m.accept = MWI_COAP_CF_PKIX_CRL;
    m.flags = MWI_COAP_F_BLOCK2;
    m.block2 = MWI_COAP_BLOCK_VALUE(c->crl_block, 0, MWI_BLOCK_SZX);
    if (send_aside(c, q, &m, false, now))
        c->crl_sent = true;
}

static bool any_request(const mw_client_t *c)
{
    for (size_t i = 0; i < c->nstart; i++)
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
           depth(c) > 0 || c->renew_csr != NULL || c->next_dtls != NULL;
}

/* A handshake flight timed out unanswered: said at once, not only when the attempt is
 * abandoned, so that mw_client_last_error explains a gateway that cannot be reached. */
static void handshake_unanswered(mw_client_t *c, uint64_t now)
{
    char why[160], n1[MWI_U64_TEXT];
    MWI_TEXTF(why, sizeof why,
              "the gateway at %.60s could not be reached: no answer to the handshake for %s s",
              c->gw_text, mwi_u64_dec((now - c->handshake_started_ms) / 1000u, n1));
    set_last(c, MW_EHANDSHAKE_TIMEOUT, 0, why);
}

static void run_timers(mw_client_t *c, uint64_t now)
{
    if (c->state == ST_IDLE && now >= c->reconnect_at_ms && wants_link(c)) {
        start_handshake(c, now);
        return;
    }
    if (c->state == ST_HANDSHAKE) {
        if (now - c->handshake_started_ms >= MWI_HANDSHAKE_MAX_MS) {
            char why[160];
            MWI_TEXTF(why, sizeof why,
                      "the gateway at %.60s could not be reached: no answer to the handshake "
                      "within %u s",
                      c->gw_text, MWI_HANDSHAKE_MAX_MS / 1000u);
            c->st.handshake_failures++;
            set_last(c, MW_EHANDSHAKE_TIMEOUT, 0, why);
            audit(c, MW_AUDIT_HANDSHAKE_FAILED, MW_EHANDSHAKE_TIMEOUT, 0, why);
            fail_over(c);
            drop_link(c, now);
            return;
        }
        if (now >= mwi_dtls_conn_deadline(c->link.conn)) {
            mw_err e = mwi_dtls_conn_timer(c->link.conn, now);
            c->progressed = true;
            if (e != MW_EINPROGRESS && e != MW_OK)
                handshake_failed(c, now);
            else
                handshake_unanswered(c, now);
        }
        return;
    }
    if (c->state != ST_READY)
        return;
    if (c->link.next != NULL) {
        bool late = now - c->next_started_ms >= MWI_HANDSHAKE_MAX_MS;
        mw_err e = MW_EINPROGRESS;
        if (!late && now >= mwi_dtls_conn_deadline(c->link.next))
            e = mwi_dtls_conn_timer(c->link.next, now);
        if (late || (e != MW_EINPROGRESS && e != MW_OK)) {
            mwi_link_drop_next(&c->link); /* the old session still works, or times out */
            if (c->next_is_renewed) {
                mw_error_detail_t d = {MW_EHANDSHAKE_TIMEOUT, 0,
                                       "no answer to the handshake made with it"};
                switch_failed(c, &d);
            }
        }
    }
    /* Rotation policy (docs/protocol.md 6): age, records, bytes, or asked for. */
    if (c->link.next == NULL) {
        const char *why = NULL;
        if (c->rekey_requested)
            why = MWI_REASON("key rotation requested");
        else if (c->rekey_after_ms && now - c->session_started_ms >= c->rekey_after_ms)
            why = MWI_REASON("key rotation: session age limit");
        else if (c->rekey_after_records && c->session_records >= c->rekey_after_records)
            why = MWI_REASON("key rotation: record limit");
        else if (c->rekey_after_bytes && c->session_bytes >= c->rekey_after_bytes)
            why = MWI_REASON("key rotation: byte limit");
        if (why)
            start_rekey(c, now, why);
        else if (c->next_dtls != NULL && c->state == ST_READY)
            start_switch(c, now);
    }
    for (size_t i = 0; i < c->nstart && c->state == ST_READY; i++) {
        struct req *q = &c->reqs[i];
        if (!q->used || now < mwi_coap_request_deadline(&q->r))
            continue;
        mw_err e = mwi_coap_request_timer(&q->r, &c->params, now);
        if (e == MW_OK) {
            c->st.retransmissions++;
            c->progressed = true;
            if (mwi_dtls_conn_write(c->link.conn, q->buf, q->len) != MW_OK)
                drop_link(c, now);
            else if (c->rekey_after_retransmits && q->r.retransmits >= c->rekey_after_retransmits)
                /* Silence may mean the gateway restarted and forgot our
                 * session: try a new one beside it rather than wait ~90 s for
                 * CoAP to give up. */
                start_rekey(c, now,
                            MWI_REASON("the gateway stopped answering; trying a new session"));
        } else if (e == MW_ECOAP_GIVEUP || e == MW_ETIMEDOUT) {
            char why[160];
            MWI_TEXTF(why, sizeof why, "the gateway at %.60s stopped acknowledging; reconnecting",
                      c->gw_text);
            set_last(c, MW_ECOAP_GIVEUP, 0, why);
            fail_over(c);
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
    if (c->link.next != NULL || c->state != ST_READY)
        return;
    if (mwi_link_connect(&c->link, c->dtls, &c->gw, dtls_out, c) != MW_OK)
        return;
    c->next_started_ms = now;
    c->progressed = true;
    audit(c, MW_AUDIT_REKEY_STARTED, MW_OK, 0, why);
    mw_err e = mwi_link_start(&c->link, now); /* a next that cannot start is dropped */
    (void)e;
}

/* A full handshake with the renewed pair beside the session (mw_client_use_credentials). */
static void start_switch(mw_client_t *c, uint64_t now)
{
    if (mwi_link_connect(&c->link, c->next_dtls, &c->gw, dtls_out, c) != MW_OK)
        return;
    c->next_is_renewed = true;
    c->next_started_ms = now;
    c->progressed = true;
    audit(c, MW_AUDIT_REKEY_STARTED, MW_OK, 0,
          MWI_REASON("a session with the renewed certificate, beside the one in use"));
    mw_err e = mwi_link_start(&c->link, now);
    (void)e;
}

/* The handshake with the renewed pair failed or went unanswered: the pair in use goes on, and
 * the renewed one is forgotten (mw_client_use_credentials may offer it again). */
static void switch_failed(mw_client_t *c, const mw_error_detail_t *d)
{
    char text[sizeof c->last.reason];
    MWI_TEXTF(text, sizeof text,
              "the gateway did not accept the renewed certificate (%.80s); the one in use stays",
              d->reason);
    mwi_dtls_ctx_destroy(&c->next_dtls);
    c->next_is_renewed = false;
    set_last(c, d->err, d->foreign, text);
    audit(c, MW_AUDIT_HANDSHAKE_FAILED, d->err, d->foreign, text);
}

/* The new session is up and has taken over (mwi_link_input destroyed the old one and its keys):
 * what was in flight goes again on the new one (the gateway's duplicate cache and replay state
 * make that safe). */
static void switch_session(mw_client_t *c, uint64_t now)
{
    char why[200];
    c->rekey_requested = false;
    if (c->next_is_renewed) {
        /* Made with the renewed pair: it is the pair from now on. */
        mwi_dtls_ctx_destroy(&c->dtls);
        c->dtls = c->next_dtls;
        c->next_dtls = NULL;
        c->next_is_renewed = false;
        c->st.credential_switches++;
        mwi_dtls_session_free(&c->saved); /* a session of the old pair: not resumed */
    }
    c->st.rotations++;
    c->st.handshakes++;
    c->session_started_ms = now;
    c->session_records = c->session_bytes = 0;
    mwi_dtls_session_free(&c->saved);
    c->saved = mwi_dtls_conn_save_session(c->link.conn);
    MWI_TEXTF(why, sizeof why, "new DTLS session with gateway '%.64s' (%.40s); old keys destroyed",
              mwi_dtls_conn_peer_id(c->link.conn), mwi_dtls_conn_cipher(c->link.conn));
    audit(c, MW_AUDIT_SESSION_ROTATED, MW_OK, 0, why);
    for (size_t i = 0; i < c->nstart; i++)
        if (c->reqs[i].used)
            write_lossy(c->link.conn, c->reqs[i].buf, c->reqs[i].len);
}

/* The handshake beside the session failed (mwi_link_input dropped it): the session goes on. */
static void next_failed(mw_client_t *c, const mw_error_detail_t *why)
{
    mw_error_detail_t d = *why;
    if (c->next_is_renewed) {
        switch_failed(c, &d);
        return;
    }
    set_last(c, d.err, d.foreign, d.reason);
    audit(c, MW_AUDIT_HANDSHAKE_FAILED, d.err, d.foreign, d.reason);
    if (is_fatal_handshake(d.err)) {
        /* The gateway's certificate (or its view of ours) changed for the
         * worse: what failed now would fail every time. */
        c->fatal = d.err;
        c->state = ST_FAILED;
    }
}

static void receive(mw_client_t *c, uint64_t now)
{
    for (int i = 0; i < 64 && c->state != ST_FAILED; i++) {
        mw_addr_t from;
        size_t n = 0;
        mw_err e = c->tp.recv(c->tp.ctx, &from, c->rx, RX_CAP, &n);
        if (e != MW_OK)
            break;
        c->st.datagrams_received++;
        c->st.bytes_received += n;
        c->last_rx_ms = now;
        /* Only the gateway's address is listened to; anything else is noise
         * or an attack and must not reach the DTLS state. */
        if (c->link.conn == NULL || n > MWI_DTLS_MAX_DATAGRAM || from.len != c->gw.len ||
            memcmp(from.data, c->gw.data, from.len) != 0)
            continue;
        bool was_ready = c->state == ST_READY;
        mwi_link_result r;
        mwi_link_event ev = mwi_link_input(&c->link, c->rx, n, now, on_record, c, &r);
        c->progressed = true;
        if (r.to_next) {
            /* Handshake records belong to the session being built. */
            if (ev == MWI_LINK_SWITCHED)
                switch_session(c, now);
            else if (ev == MWI_LINK_NEXT_FAILED)
                next_failed(c, &r.detail);
            continue;
        }
        if (c->state == ST_FAILED || c->link.conn == NULL)
            break;
        if (c->drop_requested) {
            c->drop_requested = false;
            drop_link(c, now);
            break;
        }
        if (ev == MWI_LINK_ESTABLISHED && c->state == ST_HANDSHAKE) {
            established(c);
        } else if (ev == MWI_LINK_FAILED) {
            if (was_ready) {
                set_last(c, r.detail.err, r.detail.foreign, r.detail.reason);
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
        maybe_renew(c, now);
        send_renewal(c, now);
        send_crl_fetch(c, now);
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
#ifdef MW_PORT_POSIX
        if (wait > 0 && mw_wait_readable(c->tp.fd, (int)wait) != MW_OK)
            return MW_ETRANSPORT;
#else
        /* Nothing to wait on without the port: the application calls again when its transport
         * has data or mw_client_next_timeout_ms has passed (docs/porting.md). */
        if (wait > 0)
            break;
#endif
        now = now_ms(c);
    }
    return c->progressed ? MW_OK : MW_EAGAIN;
}

mw_err mw_client_renew(mw_client_t *c, const uint8_t *csr, size_t csr_len)
{
    if (c == NULL || c->on_renewal == NULL || csr == NULL || csr_len == 0)
        return MW_EINVAL;
    if (csr_len > MW_CSR_MAX)
        return MW_ETOOBIG;
    if (c->renew_csr != NULL)
        return MW_EAGAIN;
    c->renew_csr = malloc(csr_len);
    if (c->renew_csr == NULL)
        return MW_ENOMEM;
    memcpy(c->renew_csr, csr, csr_len);
    c->renew_len = (uint16_t)csr_len;
    c->renew_sent = false;
    c->renew_at_ms = 0;
    return MW_OK;
}

mw_err mw_client_use_credentials(mw_client_t *c, const mw_credentials_t *cred)
{
    if (c == NULL || cred == NULL)
        return MW_EINVAL;
    if (c->fatal != MW_OK)
        return c->fatal;
    if (c->next_dtls != NULL)
        return MW_EAGAIN;
    mw_error_detail_t d = {MW_OK, 0, ""};
    mw_err e = MW_OK;
#ifdef MW_PORT_POSIX
    e = mwi_key_file_private(cred->key_file, c->allow_shared_key_file, &d);
#endif
    mwi_dtls_config creds = {
        .cert_file = cred->cert_file,
        .key_file = cred->key_file,
        .cert_buf = cred->cert_buf,
        .key_buf = cred->key_buf,
    };
    if (e == MW_OK)
        e = mwi_dtls_ctx_renewed(c->dtls, &creds, &c->next_dtls, &d);
    if (e != MW_OK) {
        set_last(c, e, d.foreign, d.reason);
        return e;
    }
    c->progressed = true;
    return MW_OK;
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
    if (c->link.conn != NULL)
        mwi_dtls_conn_close(c->link.conn); /* close_notify: the session stays resumable */
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

bool mw_client_holds(const mw_client_t *c, uint64_t seq)
{
    return c != NULL && mwi_queue_holds(c->queue, seq);
}

void mw_client_stats(const mw_client_t *c, mw_client_stats_t *out)
{
    if (c == NULL || out == NULL)
        return;
    *out = c->st;
    mwi_queue_stats qs;
    mwi_queue_stats_get(c->queue, qnow(c), &qs);
    out->messages_pending = qs.depth;
    out->observations_pending = qs.depth_by_priority[MW_PRIORITY_OBSERVATION];
    out->oldest_pending_age_ms = qs.oldest_age_ms;
    out->queue_capacity = qs.capacity;
    out->next_seq = mwi_seq_peek(&c->seqs);
    out->connected = c->state == ST_READY;
    mwi_dtls_expiry x;
    mwi_dtls_ctx_expiry(c->dtls, &x);
    out->cert_not_after_s = x.cert;
    out->crl_next_update_s = x.crl;
}

void mw_client_last_error(const mw_client_t *c, mw_error_detail_t *out)
{
    mwi_detail_copy(out, c ? &c->last : NULL);
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
        at = mwi_dtls_conn_deadline(c->link.conn);
        uint64_t cap = c->handshake_started_ms + MWI_HANDSHAKE_MAX_MS;
        if (cap < at)
            at = cap;
    } else {
        for (size_t i = 0; i < c->nstart; i++)
            if (c->reqs[i].used) {
                uint64_t d = mwi_coap_request_deadline(&c->reqs[i].r);
                if (d < at)
                    at = d;
            }
        if (c->link.next != NULL) {
            uint64_t d = mwi_dtls_conn_deadline(c->link.next);
            at = d < at ? d : at;
        }
        if (c->rekey_after_ms && c->session_started_ms + c->rekey_after_ms < at)
            at = c->session_started_ms + c->rekey_after_ms;
        if (c->resend_at_ms > now && depth(c) > 0 && c->resend_at_ms < at)
            at = c->resend_at_ms;
        if (c->renew_csr != NULL && !c->renew_sent && c->renew_at_ms > now && c->renew_at_ms < at)
            at = c->renew_at_ms;
        if (c->crl_refresh_ms && !c->crl_sent && c->crl_due_ms > now && c->crl_due_ms < at)
            at = c->crl_due_ms;
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
    mwi_dtls_conn_close(c->link.conn); /* the gateway frees our session now */
    mwi_link_clear(&c->link);
    mwi_dtls_session_free(&c->saved);
    free(c->gws);
    mwi_dtls_ctx_destroy(&c->dtls);
    mwi_coap_parser_destroy(&c->parser);
    if (c->own_tp && c->tp.close)
        c->tp.close(c->tp.ctx);
    mwi_queue_close(&c->queue);
    if (c->own_region)
        mwi_mem_region_close(&c->region);
    free(c->results);
    free(c->renew_csr);
    free(c->crl_body);
    free(c->reqs);
    free(c->batch);
    free(c->rx);
    free(c->body);
    mwi_dtls_ctx_destroy(&c->next_dtls);
    free(c);
    *pc = NULL;
}
