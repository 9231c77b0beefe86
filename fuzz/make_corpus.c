/* SPDX-License-Identifier: Apache-2.0 */
/* make_corpus.c -- writes the fuzz seed corpora from medwire's own encoders and from a real handshake recorded on the in-memory network. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "medwire/medwire.h"

#include "coap/coap.h"
#include "session/protocol.h"
#include "dtls/dtls.h"
#include "port/posix/read_file.h"
#include "queue/queue.h"
#include "session/codec.h"
#include "support/fake_clock.h"
#include "support/mem_transport.h"
#include "support/ram_storage.h"

#include "fuzz_support.h"
#include "hl7.h"

/* Usage: make_corpus OUTDIR. Writes OUTDIR/<target>/<name> for every target. The files are
 * committed (fuzz/corpus/); run this again only when a wire format changes. */

static const char *outdir;

static void die(const char *what)
{
    fprintf(stderr, "make_corpus: %s\n", what);
    exit(1);
}

static void put(const char *target, const char *name, const uint8_t *data, size_t len)
{
    char path[512];
    snprintf(path, sizeof path, "%s/%s", outdir, target);
    if (mkdir(path, 0755) != 0 && errno != EEXIST)
        die(strerror(errno));
    snprintf(path, sizeof path, "%s/%s/%s", outdir, target, name);
    FILE *f = fopen(path, "wb");
    if (f == NULL || (len > 0 && fwrite(data, 1, len, f) != len) || fclose(f) != 0)
        die(path);
    printf("%s (%zu bytes)\n", path, len);
}

/* ---- messages ---- */

static mw_message_t obs(const char *id, uint64_t seq, int64_t mantissa)
{
    mw_message_t m;
    memset(&m, 0, sizeof m);
    snprintf(m.device_id, sizeof m.device_id, "%s", id);
    m.seq = seq;
    m.device_time_ms = 1790000000000ull + seq;
    m.time_synced = true;
    m.priority = MW_PRIORITY_OBSERVATION;
    m.type = MW_MSG_OBSERVATION;
    m.u.observation.mdc_code = MW_MDC_PULS_OXIM_SAT_O2;
    m.u.observation.mantissa = mantissa;
    m.u.observation.exponent = -1;
    snprintf(m.u.observation.unit, sizeof m.u.observation.unit, "%%");
    m.u.observation.status = MW_MEAS_VALID;
    m.u.observation.time_ms = m.device_time_ms;
    return m;
}

static mw_message_t alarm_msg(const char *id, uint64_t seq)
{
    mw_message_t m;
    memset(&m, 0, sizeof m);
    snprintf(m.device_id, sizeof m.device_id, "%s", id);
    m.seq = seq;
    m.priority = MW_PRIORITY_ALARM;
    m.type = MW_MSG_ALARM;
    m.u.alarm.mdc_code = MW_MDC_EVT_LO;
    m.u.alarm.priority = MW_ALARM_HIGH;
    m.u.alarm.state = MW_ALARM_ACTIVE;
    m.u.alarm.time_ms = 1790000000000ull;
    snprintf(m.u.alarm.text, sizeof m.u.alarm.text, "SpO2 \"low\" \\ 85%%");
    return m;
}

static mw_message_t status_msg(const char *id, uint64_t seq)
{
    mw_message_t m;
    memset(&m, 0, sizeof m);
    snprintf(m.device_id, sizeof m.device_id, "%s", id);
    m.seq = seq;
    m.priority = MW_PRIORITY_STATUS;
    m.type = MW_MSG_STATUS;
    m.u.status.battery_pct = 87;
    m.u.status.on_mains = true;
    m.u.status.uptime_s = 86400;
    m.u.status.queue_depth = 3;
    return m;
}

static size_t batch(const mw_message_t *msgs, size_t n, uint64_t low_water, uint8_t *out,
                    size_t cap)
{
    size_t len = 0, count = 0;
    if (mwi_batch_encode(msgs, n, low_water, out, cap, &len, &count) != MW_OK || count != n)
        die("mwi_batch_encode");
    return len;
}

/* fuzz_queue: whole regions (capacity 8, the fuzzer's key) in the states recovery meets. */
static const uint8_t QUEUE_KEY[32] = {0x6d, 0x65, 0x64, 0x77, 0x69, 0x72, 0x65, 0x2d,
                                      0x66, 0x75, 0x7a, 0x7a, 0x2d, 0x71, 0x75, 0x65,
                                      0x75, 0x65, 0x2d, 0x6b, 0x65, 0x79, 0x2d, 0x30,
                                      0x31, 0x32, 0x33, 0x34, 0x35, 0x36, 0x37, 0x38};

static mw_message_t queue_msg(uint64_t seq, mw_priority prio)
{
    mw_message_t m;
    memset(&m, 0, sizeof m);
    snprintf(m.device_id, sizeof m.device_id, "oxi-000042");
    m.seq = seq;
    m.device_time_ms = 1700000000000ull + seq;
    m.priority = prio;
    if (prio == MW_PRIORITY_ALARM) {
        m.type = MW_MSG_ALARM;
        m.u.alarm.mdc_code = MW_MDC_EVT_LO;
        m.u.alarm.priority = MW_ALARM_HIGH;
        m.u.alarm.state = MW_ALARM_ACTIVE;
        snprintf(m.u.alarm.text, sizeof m.u.alarm.text, "SpO2 low");
    } else if (prio == MW_PRIORITY_OBSERVATION) {
        m.type = MW_MSG_OBSERVATION;
        m.u.observation.mdc_code = MW_MDC_PULS_OXIM_SAT_O2;
        m.u.observation.mantissa = 97;
        snprintf(m.u.observation.unit, sizeof m.u.observation.unit, "%%");
    } else {
        m.type = MW_MSG_STATUS;
        m.u.status.battery_pct = 80;
    }
    return m;
}

static mwt_ram *queue_ram(int appends, int acks, bool compact, bool torn, uint32_t *out_size)
{
    uint32_t size = 0;
    if (mwi_queue_region_min(8, 1, 1, &size) != MW_OK)
        die("mwi_queue_region_min");
    mwt_ram *ram = mwt_ram_create(size, 1, 1);
    mw_storage_t st = mwt_ram_storage(ram);
    mwi_queue_config c;
    mwi_queue_config_init(&c);
    c.storage = &st;
    c.key = QUEUE_KEY;
    c.key_len = sizeof QUEUE_KEY;
    c.capacity = 8;
    mwt_rng rng = {0x51A7u}; /* deterministic: the same seeds on every run */
    c.random = mwt_rng_table(&rng);
    mwi_queue *q = NULL;
    if (mwi_queue_open(&c, &q, NULL) != MW_OK)
        die("mwi_queue_open");
    for (int i = 0; i < appends; i++) {
        mw_message_t m = queue_msg((uint64_t)i + 1, (mw_priority)(1 + i % 3));
        if (mwi_queue_accepts(q, m.priority) && mwi_queue_append(q, &m, (uint64_t)i) != MW_OK)
            die("mwi_queue_append");
    }
    for (int i = 0; i < acks; i++) {
        mwi_seq_range r = {(uint64_t)i * 2 + 1, (uint64_t)i * 2 + 1};
        if (mwi_queue_ack(q, &r, 1, 100, NULL) != MW_OK)
            die("mwi_queue_ack");
    }
    if (compact && mwi_queue_compact(q) != MW_OK)
        die("mwi_queue_compact");
    if (torn) {
        /* The next append is cut by a power loss halfway through its write. */
        mwt_ram_cut_after(ram, mwt_ram_ops(ram));
        mw_message_t m = queue_msg(1000, MW_PRIORITY_ALARM);
        mw_err cut = mwi_queue_append(q, &m, 200); /* fails: the power is gone */
        (void)cut;
        mwt_fate fates[8];
        memset(fates, 0, sizeof fates);
        for (size_t i = 0; i < mwt_ram_pending(ram) && i < 8; i++) {
            fates[i].kind = MWT_FATE_TEAR;
            fates[i].tear_at = mwt_ram_pending_len(ram, i) / 2;
        }
        mwi_queue_close(&q);
        mwt_ram_power_cut(ram, fates);
    } else {
        mwi_queue_close(&q);
    }
    *out_size = size;
    return ram;
}

static void queue_image(const char *name, int appends, int acks, bool compact, bool torn)
{
    uint32_t size;
    mwt_ram *ram = queue_ram(appends, acks, compact, torn, &size);
    put("fuzz_queue", name, mwt_ram_image(ram), size);
    mwt_ram_destroy(ram);
}

/* What the fuzzer once found, in the current format: nothing left of the queue but its nonce
 * store, one slot of which was damaged after it was complete. Every open reported the slot
 * again until the queue rewrote it. */
static void queue_damaged_slot(void)
{
    uint32_t size, store = mwi_seq_region_size(1, 1);
    mwt_ram *ram = queue_ram(1, 0, false, false, &size);
    uint8_t *ff = malloc(size - store);
    if (ff == NULL)
        die("out of memory");
    memset(ff, 0xFF, size - store);
    mwt_ram_poke(ram, store, ff, size - store);
    mwt_ram_flip_bit(ram, store / 2 + 16, 0); /* slot B's ceiling: its CRC no longer matches */
    put("fuzz_queue", "repro-damaged-nonce-slot-without-a-half", mwt_ram_image(ram), size);
    free(ff);
    mwt_ram_destroy(ram);
}

static void corpus_queue(void)
{
    queue_image("empty-queue", 0, 0, false, false);
    queue_image("five-mixed", 5, 0, false, false);
    queue_image("full-with-evictions", 14, 0, false, false);
    queue_image("acked-and-compacted", 8, 3, true, false);
    queue_image("torn-last-append", 4, 1, false, true);
    queue_damaged_slot();
}

static void corpus_batch(void)
{
    uint8_t buf[4096];
    size_t len;
    mw_message_t one = obs("pulseox-1", 1, 975);
    put("fuzz_batch", "observation", buf, batch(&one, 1, 1, buf, sizeof buf));
    mw_message_t a = alarm_msg("pulseox-1", 7);
    put("fuzz_batch", "alarm", buf, batch(&a, 1, 5, buf, sizeof buf));
    mw_message_t mixed[3] = {obs("dev-1", 10, -42), alarm_msg("dev-1", 11), status_msg("dev-1", 12)};
    mixed[0].time_synced = false;
    mixed[0].u.observation.exponent = MWI_EXPONENT_MIN;
    put("fuzz_batch", "mixed", buf, batch(mixed, 3, 9, buf, sizeof buf));
    /* Behind a bridge: each reading names the legacy device it came from. */
    mw_message_t bridged[2] = {obs("bridge-1", 20, 980), alarm_msg("bridge-1", 21)};
    strcpy(bridged[0].u.observation.source, "MON-7");
    strcpy(bridged[1].u.alarm.source, "ACME-ICU4-BED7");
    put("fuzz_batch", "bridged", buf, batch(bridged, 2, 20, buf, sizeof buf));
    mw_message_t gap = queue_msg(12, MW_PRIORITY_ALARM);
    gap.type = MW_MSG_GAP;
    memset(&gap.u, 0, sizeof gap.u);
    gap.u.gap = (mw_gap_t){.priority = MW_PRIORITY_OBSERVATION, .reason = MW_GAP_EVICTED,
                           .count = 12, .first_seq = 3, .last_seq = 11};
    put("fuzz_batch", "gap", buf, batch(&gap, 1, 3, buf, sizeof buf));
    mwi_seq_range r[3] = {{1, 1}, {3, 9}, {12, 4000000000ull}};
    if (mwi_ack_encode(r, 3, buf, sizeof buf, &len) != MW_OK)
        die("mwi_ack_encode");
    put("fuzz_batch", "ack", buf, len);
}

/* ---- CoAP ---- */

static size_t coap(const mwi_coap_msg *m, uint8_t *out, size_t cap)
{
    size_t len = 0;
    if (mwi_coap_encode(m, out, cap, &len) != MW_OK)
        die("mwi_coap_encode");
    return len;
}

static mwi_coap_msg request(uint8_t type, uint8_t code, uint16_t mid, const char *path)
{
    static const uint8_t token[8] = {0x5e, 0xc7, 0x01, 0x42, 0x99, 0x10, 0xaa, 0x03};
    mwi_coap_msg m;
    mwi_coap_msg_init(&m);
    m.type = type;
    m.code = code;
    m.mid = mid;
    m.token_len = sizeof token;
    memcpy(m.token, token, sizeof token);
    snprintf(m.uri_path, sizeof m.uri_path, "%s", path);
    return m;
}

/* A POST of a batch, as the client sends it (client.c). */
/* A batch POST in sequence space @p space, declaring low-water mark @p low. */
static size_t post_batch_in(const mw_message_t *msgs, size_t n, uint64_t space, uint64_t low,
                            uint16_t mid, uint8_t *out, size_t cap)
{
    uint8_t payload[1200];
    const mw_message_t *ptrs[MWI_MAX_BATCH];
    size_t len = 0, count = 0;
    for (size_t i = 0; i < n && i < MWI_MAX_BATCH; i++)
        ptrs[i] = &msgs[i];
    mwi_batch_head h = {.low_water = low, .space = space};
    if (mwi_batch_encode_in(ptrs, n, &h, payload, sizeof payload, &len, &count) != MW_OK ||
        count != n)
        die("mwi_batch_encode_in");
    mwi_coap_msg m = request(MWI_COAP_CON, MWI_COAP_POST, mid, "batch");
    m.content_format = MWI_COAP_CF_MEDWIRE_BATCH;
    m.payload = payload;
    m.payload_len = len;
    return coap(&m, out, cap);
}

static size_t post_batch(const mw_message_t *msgs, size_t n, uint16_t mid, uint8_t *out,
                         size_t cap)
{
    uint8_t payload[1200];
    mwi_coap_msg m = request(MWI_COAP_CON, MWI_COAP_POST, mid, "batch");
    m.content_format = MWI_COAP_CF_MEDWIRE_BATCH;
    m.payload = payload;
    m.payload_len = batch(msgs, n, msgs[0].seq, payload, sizeof payload);
    return coap(&m, out, cap);
}

static void corpus_coap(void)
{
    uint8_t buf[1500], ackp[64];
    size_t alen = 0;
    mw_message_t one = obs("dev-1", 1, 97);
    put("fuzz_coap", "post-batch", buf, post_batch(&one, 1, 0x1234, buf, sizeof buf));
    mwi_coap_msg m = request(MWI_COAP_CON, MWI_COAP_GET, 0x2000, ".well-known/core");
    m.accept = 40;
    put("fuzz_coap", "get-well-known", buf, coap(&m, buf, sizeof buf));

    /* The gateway's piggybacked 2.04 with an Ack, as the client receives it. */
    mwi_coap_msg req = request(MWI_COAP_CON, MWI_COAP_POST, 0x1234, "batch");
    mwi_seq_range r = {1, 1};
    if (mwi_ack_encode(&r, 1, ackp, sizeof ackp, &alen) != MW_OK ||
        mwi_coap_response_for(&req, MWI_COAP_CHANGED, &m) != MW_OK)
        die("ack response");
    m.content_format = MWI_COAP_CF_MEDWIRE_ACK;
    m.payload = ackp;
    m.payload_len = alen;
    put("fuzz_coap", "ack-2.04", buf, coap(&m, buf, sizeof buf));

    if (mwi_coap_make_ack(&req, &m) != MW_OK)
        die("empty ack");
    put("fuzz_coap", "empty-ack", buf, coap(&m, buf, sizeof buf));

    /* Block-wise options (RFC 7959), sizes, a separate NON response. */
    m = request(MWI_COAP_NON, MWI_COAP_CONTENT, 0x3000, "");
    m.flags = MWI_COAP_F_BLOCK1 | MWI_COAP_F_BLOCK2 | MWI_COAP_F_SIZE1 | MWI_COAP_F_SIZE2;
    m.block1 = 0x1E;
    m.block2 = 0x123456;
    m.size1 = 70000;
    m.size2 = 1024;
    put("fuzz_coap", "non-blockwise", buf, coap(&m, buf, sizeof buf));

    /* By hand, what the encoder never writes: Uri-Host (3), Uri-Port (7), Uri-Path (11), two
     * Uri-Query (15), an unknown elective option 2050 (2-byte extended delta) and an unknown
     * critical one 2051. */
    static const uint8_t odd[] = {
        0x44, 0x01, 0x00, 0x07, 't', 'o', 'k', '!',             /* CON GET, token "tok!" */
        0x39, 'g', 'a', 't', 'e', 'w', 'a', 'y', '.', 'h',      /* Uri-Host */
        0x42, 0x16, 0x34,                                       /* Uri-Port 5684 */
        0x42, 'v', '1',                                         /* Uri-Path "v1" */
        0x41, 'q', 0x01, 'r',                                   /* Uri-Query "q", "r" */
        0xE0, 0x06, 0xE6,                                       /* option 2050, empty */
        0x10,                                                   /* option 2051, empty */
        0xFF, 'p'};                                             /* payload */
    put("fuzz_coap", "options-by-hand", odd, sizeof odd);
}

/* ---- a real handshake, recorded as the gateway received it ---- */

#define REC_MAX 16

typedef struct recorder {
    mw_transport_t inner;
    uint8_t data[REC_MAX][1600];
    size_t len[REC_MAX];
    int n;
} recorder;

static mw_err rec_send(void *ctx, const mw_addr_t *to, const uint8_t *buf, size_t len)
{
    recorder *r = ctx;
    return r->inner.send(r->inner.ctx, to, buf, len);
}

static mw_err rec_recv(void *ctx, mw_addr_t *from, uint8_t *buf, size_t cap, size_t *out_len)
{
    recorder *r = ctx;
    mw_err e = r->inner.recv(r->inner.ctx, from, buf, cap, out_len);
    if (e == MW_OK && r->n < REC_MAX && *out_len <= sizeof r->data[0]) {
        memcpy(r->data[r->n], buf, *out_len);
        r->len[r->n++] = *out_len;
    }
    return e;
}

static mw_err sink_any(void *ctx, const mw_message_t *m)
{
    (void)ctx;
    (void)m;
    return MW_OK;
}

static mw_transport_t cl_tp;
static mw_addr_t gw_addr;

static void client_out(void *ctx, const uint8_t *buf, size_t len)
{
    (void)ctx;
    if (cl_tp.send(cl_tp.ctx, &gw_addr, buf, len) != MW_OK)
        die("send");
}

static recorder rec;

static void record_handshake(void)
{
    const mwt_pki *pki = mwf_pki();
    mwt_net *net = mwt_net_create(1);
    mwt_clock clk = {1000, 1790000000000ull};
    rec.inner = mwt_net_endpoint(net, "127.0.0.1:5684");
    gw_addr = mwt_net_addr(&rec.inner);
    cl_tp = mwt_net_endpoint(net, "127.0.0.2:40000");

    mw_gateway_config_t cfg;
    mw_gateway_config_init(&cfg);
    cfg.ca_file = mwt_pki_ca(pki);
    cfg.cert_file = mwt_pki_crt(pki, "gateway");
    cfg.key_file = mwt_pki_key(pki, "gateway");
    cfg.transport.ctx = &rec;
    cfg.transport.send = rec_send;
    cfg.transport.recv = rec_recv;
    cfg.transport.fd = -1;
    cfg.clock = mwt_clock_table(&clk);
    cfg.sink = sink_any;
    mw_gateway_t *gw = NULL;
    mw_error_detail_t d;
    if (mw_gateway_create(&cfg, &gw, &d) != MW_OK)
        die(d.reason);
    mwi_dtls_config dc = {
        .read_file = mwi_file_read,
        .role = MWI_DTLS_CLIENT,
        .ca_file = mwt_pki_ca(pki),
        .cert_file = mwt_pki_crt(pki, "dev-1"),
        .key_file = mwt_pki_key(pki, "dev-1"),
        .peer_name = "gateway",
    };
    mwi_dtls_ctx *ctx = NULL;
    mwi_dtls_conn *c = NULL;
    if (mwi_dtls_ctx_create(&dc, &ctx, &d) != MW_OK ||
        mwi_dtls_conn_create(ctx, &gw_addr, client_out, NULL, &c) != MW_OK ||
        mwi_dtls_conn_start(c, clk.now_ms) != MW_EINPROGRESS)
        die("client");
    for (int i = 0; i < 1000 && !mwi_dtls_conn_established(c); i++) {
        uint8_t buf[2048];
        mw_addr_t from;
        size_t n;
        mw_err e = mw_gateway_poll(gw, 0);
        if (e != MW_OK && e != MW_EAGAIN)
            die("gateway poll");
        while (cl_tp.recv(cl_tp.ctx, &from, buf, sizeof buf, &n) == MW_OK) {
            e = mwi_dtls_conn_input(c, buf, n, clk.now_ms, NULL, NULL);
            if (e != MW_OK && e != MW_EINPROGRESS)
                die("client handshake");
        }
    }
    if (!mwi_dtls_conn_established(c) || rec.n < 3)
        die("the recorded handshake did not complete");
    mwi_dtls_conn_destroy(&c);
    mwi_dtls_ctx_destroy(&ctx);
    mw_gateway_destroy(&gw);
    mwt_net_destroy(net);
}

static void corpus_gateway_hello(void)
{
    uint8_t buf[4096];
    size_t pos;
    /* rec.data[0]: the first ClientHello (no cookie); [1]: the one with the cookie; [2]: the
     * client's second flight (certificate, key exchange, verify, CCS, Finished). */
    for (int i = 0; i < 3; i++) {
        static const char *const names[] = {"client-hello", "client-hello-cookie",
                                            "client-flight-2"};
        pos = 0;
        if (!mwf_put_frame(buf, sizeof buf, &pos, 0, rec.data[i], rec.len[i]))
            die("frame");
        put("fuzz_gateway_hello", names[i], buf, pos);
    }
    /* The whole exchange from one source, with a second to 1 s between steps. */
    pos = 0;
    for (int i = 0; i < 3; i++)
        if (!mwf_put_frame(buf, sizeof buf, &pos, (uint8_t)(30u << 2 | 1u), rec.data[i],
                           rec.len[i]))
            die("frame");
    put("fuzz_gateway_hello", "handshake-from-second-source", buf, pos);
}

static void corpus_session(void)
{
    uint8_t buf[4096], m1[1500];
    size_t pos, n;
    mw_message_t one = obs("dev-1", 1, 97);
    mw_message_t three[3] = {obs("dev-1", 2, 96), alarm_msg("dev-1", 3), status_msg("dev-1", 4)};
    mwi_coap_msg m;

    n = post_batch(&one, 1, 0x0100, m1, sizeof m1);
    pos = 0;
    (void)mwf_put_frame(buf, sizeof buf, &pos, 0, m1, n);
    put("fuzz_session", "post-batch", buf, pos);

    /* The same request again (a CoAP duplicate, answered from the cache), the same batch in a
     * new request (a duplicate sequence number), then a batch of three. */
    (void)mwf_put_frame(buf, sizeof buf, &pos, 8, m1, n);
    n = post_batch(&one, 1, 0x0102, m1, sizeof m1);
    (void)mwf_put_frame(buf, sizeof buf, &pos, 8, m1, n);
    n = post_batch(three, 3, 0x0101, m1, sizeof m1);
    (void)mwf_put_frame(buf, sizeof buf, &pos, 0, m1, n);
    put("fuzz_session", "duplicates-then-three", buf, pos);

    /* A batch sent block-wise (RFC 7959 Block1, 32-byte blocks), as a large one would be. */
    mw_message_t later[3] = {obs("dev-1", 5, 95), alarm_msg("dev-1", 6), status_msg("dev-1", 7)};
    uint8_t body[1200];
    size_t blen = batch(later, 3, 5, body, sizeof body);
    pos = 0;
    for (uint32_t num = 0; num * 32u < blen; num++) {
        size_t off = num * 32u, chunk = blen - off < 32 ? blen - off : 32;
        m = request(MWI_COAP_CON, MWI_COAP_POST, (uint16_t)(0x0400 + num), "batch");
        m.content_format = MWI_COAP_CF_MEDWIRE_BATCH;
        m.flags = MWI_COAP_F_BLOCK1 | (num == 0 ? MWI_COAP_F_SIZE1 : 0);
        m.block1 = (num << 4) | (off + chunk < blen ? 8u : 0u) | 1u; /* NUM, M, SZX 1 = 32 */
        m.size1 = (uint32_t)blen;
        m.payload = body + off;
        m.payload_len = chunk;
        (void)mwf_put_frame(buf, sizeof buf, &pos, 0, m1, coap(&m, m1, sizeof m1));
    }
    put("fuzz_session", "block1-batch", buf, pos);

    m = request(MWI_COAP_CON, MWI_COAP_GET, 0x0200, ".well-known/core");
    pos = 0;
    (void)mwf_put_frame(buf, sizeof buf, &pos, 0, m1, coap(&m, m1, sizeof m1));
    /* A CoAP ping (an empty CON) and a NON GET on the same input. */
    static const uint8_t ping[] = {0x40, 0x00, 0x02, 0x01};
    (void)mwf_put_frame(buf, sizeof buf, &pos, 0, ping, sizeof ping);
    m.type = MWI_COAP_NON;
    m.mid = 0x0202;
    (void)mwf_put_frame(buf, sizeof buf, &pos, 0, m1, coap(&m, m1, sizeof m1));
    put("fuzz_session", "well-known-ping-non", buf, pos);

    /* Refusals: another device's batch, a wrong Content-Format, PUT, an unknown path, a
     * critical option the gateway does not know, bytes that are not CoAP. */
    mw_message_t other = obs("dev-2", 1, 90);
    pos = 0;
    (void)mwf_put_frame(buf, sizeof buf, &pos, 0, m1, post_batch(&other, 1, 0x0300, m1, sizeof m1));
    m = request(MWI_COAP_CON, MWI_COAP_POST, 0x0301, "batch");
    m.content_format = 0;
    m.payload = (const uint8_t *)"text";
    m.payload_len = 4;
    (void)mwf_put_frame(buf, sizeof buf, &pos, 0, m1, coap(&m, m1, sizeof m1));
    m = request(MWI_COAP_CON, MWI_COAP_CODE(0, 3), 0x0302, "batch");
    (void)mwf_put_frame(buf, sizeof buf, &pos, 0, m1, coap(&m, m1, sizeof m1));
    m = request(MWI_COAP_CON, MWI_COAP_GET, 0x0303, "v2/nothing");
    (void)mwf_put_frame(buf, sizeof buf, &pos, 0, m1, coap(&m, m1, sizeof m1));
    static const uint8_t critical[] = {0x40, 0x01, 0x03, 0x04, 0x91, 'x'}; /* option 9 */
    (void)mwf_put_frame(buf, sizeof buf, &pos, 0, critical, sizeof critical);
    static const uint8_t not_coap[] = {0x80, 0x02, 0x03, 0x05, 0xFF};
    (void)mwf_put_frame(buf, sizeof buf, &pos, 0, not_coap, sizeof not_coap);
    put("fuzz_session", "refusals", buf, pos);

    /* Sequence spaces (docs/protocol.md 5b): a space opened, a forged low-water mark of 2^64-1,
     * later numbers (delivered: the mark is bounded), a number reused with other content (a
     * conflict), a new space, then the retired one again. */
    mw_message_t s1[2] = {obs("dev-1", 10, 97), obs("dev-1", 11, 96)};
    mw_message_t s2 = obs("dev-1", 12, 95), s3 = obs("dev-1", 11, 50);
    pos = 0;
    (void)mwf_put_frame(buf, sizeof buf, &pos, 0, m1,
                        post_batch_in(s1, 2, 0xA1, 10, 0x0500, m1, sizeof m1));
    (void)mwf_put_frame(buf, sizeof buf, &pos, 8, m1,
                        post_batch_in(&s2, 1, 0xA1, UINT64_MAX, 0x0501, m1, sizeof m1));
    s2.seq = 13;
    (void)mwf_put_frame(buf, sizeof buf, &pos, 8, m1,
                        post_batch_in(&s2, 1, 0xA1, 13, 0x0502, m1, sizeof m1));
    (void)mwf_put_frame(buf, sizeof buf, &pos, 8, m1,
                        post_batch_in(&s3, 1, 0xA1, 11, 0x0503, m1, sizeof m1));
    s3.possible_duplicate = true;
    (void)mwf_put_frame(buf, sizeof buf, &pos, 8, m1,
                        post_batch_in(&s3, 1, 0xB2, 11, 0x0504, m1, sizeof m1));
    (void)mwf_put_frame(buf, sizeof buf, &pos, 8, m1,
                        post_batch_in(s1, 2, 0xA1, 10, 0x0505, m1, sizeof m1));
    put("fuzz_session", "spaces-forged-mark-conflict-retired", buf, pos);

    /* Unencrypted datagrams from the device's own address: a ClientHello (a reboot, or a
     * spoofer) and the recorded second flight replayed. */
    pos = 0;
    (void)mwf_put_frame(buf, sizeof buf, &pos, 7, rec.data[0], rec.len[0]);
    (void)mwf_put_frame(buf, sizeof buf, &pos, 7, rec.data[2], rec.len[2]);
    put("fuzz_session", "raw-datagrams", buf, pos);
}

/* ---- credentials and addresses ---- */

static uint8_t *slurp(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    static uint8_t buf[8192];
    if (f == NULL)
        die(path);
    *len = fread(buf, 1, sizeof buf, f);
    fclose(f);
    return buf;
}

static int b64v(int c)
{
    static const char t[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    const char *p = c != 0 ? strchr(t, c) : NULL;
    return p != NULL ? (int)(p - t) : -1;
}

/* PEM body to DER (the first block only). */
static size_t pem_to_der(const uint8_t *pem, size_t len, uint8_t *out)
{
    const char *s = memchr(pem, '\n', len);
    size_t n = 0;
    uint32_t acc = 0;
    int bits = 0;
    if (s == NULL)
        die("PEM");
    for (s++; s < (const char *)pem + len && *s != '-'; s++) {
        int v = b64v(*s);
        if (v < 0)
            continue;
        acc = (acc << 6) | (uint32_t)v;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            out[n++] = (uint8_t)(acc >> bits);
        }
    }
    return n;
}

static void put_file(const char *name, uint8_t how, const uint8_t *body, size_t len)
{
    uint8_t buf[8192];
    buf[0] = how;
    memcpy(buf + 1, body, len);
    put("fuzz_certs", name, buf, len + 1);
}

static void corpus_certs(void)
{
    const mwt_pki *pki = mwf_pki();
    uint8_t copy[8192], der[4096];
    size_t len, dlen;
    const uint8_t *b;
    /* how: bits 0-1 format (0 raw, 1 CERTIFICATE, 2 EC PRIVATE KEY, 3 PRIVATE KEY), bit 2
     * client role, bits 3-4 slot (0 CA, 1 certificate, 2 key, 3 all). */
    b = slurp(mwt_pki_crt(pki, "dev-1"), &len);
    memcpy(copy, b, len);
    put_file("device-cert-pem", 0x04 | (1 << 3), copy, len);
    dlen = pem_to_der(copy, len, der);
    put_file("device-cert-der", 0x05 | (3 << 3), der, dlen);
    /* No private key is ever committed (fuzz/README.md), not even a throwaway one: the key seed is
     * the SEC 1 ECPrivateKey with d = 1, whose public key is the P-256 generator itself. */
    static const uint8_t key_d1[] = {
        0x30, 0x77, 0x02, 0x01, 0x01, 0x04, 0x20, /* ECPrivateKey, version 1, d: */
        0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
        0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1,
        0xa0, 0x0a, 0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07, /* prime256v1 */
        0xa1, 0x44, 0x03, 0x42, 0x00, 0x04,                                     /* Q = G: */
        0x6b, 0x17, 0xd1, 0xf2, 0xe1, 0x2c, 0x42, 0x47, 0xf8, 0xbc, 0xe6, 0xe5, 0x63, 0xa4, 0x40, 0xf2,
        0x77, 0x03, 0x7d, 0x81, 0x2d, 0xeb, 0x33, 0xa0, 0xf4, 0xa1, 0x39, 0x45, 0xd8, 0x98, 0xc2, 0x96,
        0x4f, 0xe3, 0x42, 0xe2, 0xfe, 0x1a, 0x7f, 0x9b, 0x8e, 0xe7, 0xeb, 0x4a, 0x7c, 0x0f, 0x9e, 0x16,
        0x2b, 0xce, 0x33, 0x57, 0x6b, 0x31, 0x5e, 0xce, 0xcb, 0xb6, 0x40, 0x68, 0x37, 0xbf, 0x51, 0xf5};
    put_file("key-d1-der", 0x02 | (2 << 3), key_d1, sizeof key_d1);
    b = slurp(mwt_pki_ca(pki), &len);
    memcpy(copy, b, len);
    put_file("ca-pem", 0x00 | (0 << 3), copy, len);
    b = slurp(mwt_pki_crt(pki, "expired"), &len);
    memcpy(copy, b, len);
    dlen = pem_to_der(copy, len, der);
    put_file("expired-cert-der", 0x01 | (1 << 3), der, dlen);
    static const char *const addrs[] = {"127.0.0.1:5684", "[fe80::1%1]:5684", "[::ffff:10.0.0.1]:1"};
    for (size_t i = 0; i < 3; i++) {
        char name[32];
        snprintf(name, sizeof name, "address-%zu", i);
        put_file(name, 0, (const uint8_t *)addrs[i], strlen(addrs[i]));
    }
}

/* ---- fuzz_bridge_hl7: what a legacy monitor sends over MLLP ---- */

/* Two bytes that seed the fuzzer's chunking, then @p msgs framed one after another, each
 * between the MLLP start block and end block + CR. */
static void put_mllp(const char *name, uint16_t seed, const char *const *msgs, size_t n)
{
    static uint8_t buf[16384];
    size_t pos = 0;
    buf[pos++] = (uint8_t)(seed >> 8);
    buf[pos++] = (uint8_t)seed;
    for (size_t i = 0; i < n; i++) {
        size_t len = strlen(msgs[i]);
        if (pos + len + 3 > sizeof buf)
            die("bridge seed too large");
        buf[pos++] = 0x0b;
        memcpy(buf + pos, msgs[i], len);
        pos += len;
        buf[pos++] = 0x1c;
        buf[pos++] = 0x0d;
    }
    put("fuzz_bridge_hl7", name, buf, pos);
}

static void append(uint8_t *buf, size_t *pos, const char *s)
{
    memcpy(buf + *pos, s, strlen(s));
    *pos += strlen(s);
}

static void corpus_bridge(void)
{
    /* A monitor's PCD-01: the MDS/VMD/CHAN hierarchy, MDC and LOINC codes, MDC and UCUM units. */
    static const char pcd01[] =
        "MSH|^~\\&|MONITOR^0800ABCD^EUI-64|ICU||MEDWIRE|20261205101500+0100||ORU^R01^ORU_R01|"
        "MSG0001|P|2.6|||NE|AL||UNICODE UTF-8|||IHE_PCD_001^IHE "
        "PCD^1.3.6.1.4.1.19376.1.6.1.1.1^ISO\r"
        "PID|||12345^^^H^MR||DOE^JANE\rPV1||I|ICU^1^A\r"
        "OBR|1|X1^MON|X1^MON|182777000^monitoring of patient^SNOMED-CT|||20261205101400+0100\r"
        "OBX|1||69965^MDC_DEV_MON_PHYSIO_MULTI_PARAM_MDS^MDC|1.0.0.0|||||||X|||||||0800ABCD^EUI-"
        "64\r"
        "OBX|2||69854^MDC_DEV_METER_PRESS_BLD_VMD^MDC|1.1.0.0|||||||X\r"
        "OBX|3|NM|150021^MDC_PRESS_BLD_NONINV_SYS^MDC|1.1.1.1|120|266016^MDC_DIM_MMHG^MDC|||||R|||"
        "20261205101430+0100\r"
        "OBX|4|NM|59408-5^SpO2^LN|1.2.1.1|97.5|%^%^UCUM|||||F\r"
        "OBX|5|NM|8310-5^Body temperature^LN|1.3.1.1|36.85|Cel|||||P|||20261205091500\r"
        "OBX|6|NM|151562^MDC_RESP_RATE^MDC|1.4.1.1||264928^MDC_DIM_RESP_PER_MIN^MDC|||||X\r";
    /* Other delimiters, escapes, LF line ends, an alarm with PCD-04 facets in an R01. */
    static const char other[] =
        "MSH#*@!%#MON!F!1#ICU#####ORU*R01#ID!S!7#T#2.5\n"
        "OBR#1######20261205091500\n"
        "OBX#1#NM#150456*SpO2*MDC#1.1.1.1#97#%*%*UCUM#####F#######BED!F!7!S!A*X\n"
        "OBX#2#ST#196670*MDC_EVT_LO*MDC#1.1.1.2.1#SpO2 !T! !X0D!low###PH@SP###F\n"
        "OBX#3#ST#68482*MDC_ATTR_ALARM_STATE*MDC#1.1.1.2.4#acknowledged######F\n";
    /* Refused: a unit that is not UCUM, an unknown code system, and not HL7 at all. */
    static const char bad_unit[] = "MSH|^~\\&|MON||||||ORU^R01|2|P|2.4\r"
                                   "OBX|1|NM|150456^^MDC|1.1.1.1|98|mmHg|||||F\r"
                                   "OBX|2|NM|0002-4bb8^SpO2^MDIL|1.1.1.1|98|%|||||F\r";
    const char *msgs[] = {pcd01};
    put_mllp("pcd01-monitor", 0x0101, msgs, 1);
    const char *mixed[] = {other, bad_unit, "not hl7 at all", ""};
    put_mllp("delimiters-alarm-refusals", 0x2a2a, mixed, 4);

    /* What the gateway's own encoder writes: an observation (R01) and an alarm (R40). */
    static char obs_hl7[HL7_MAX], alarm_hl7[HL7_MAX];
    size_t n = 0;
    mw_message_t o = obs("oxi-7", 42, 975);
    mw_message_t a = alarm_msg("oxi-7", 43);
    if (hl7_encode(&o, NULL, 1790000001000ull, obs_hl7, sizeof obs_hl7, &n) != MW_OK ||
        hl7_encode(&a, NULL, 1790000001000ull, alarm_hl7, sizeof alarm_hl7, &n) != MW_OK)
        die("hl7_encode");
    const char *gw[] = {obs_hl7, alarm_hl7};
    put_mllp("gateway-encoded", 0x0307, gw, 2);

    /* Garbage around frames, a frame abandoned by a new start block, one longer than the
     * fuzzer's 2048-byte buffer: the deframer's other paths. */
    static uint8_t buf[4096];
    size_t pos = 0;
    buf[pos++] = 0x00;
    buf[pos++] = 0x05;
    append(buf, &pos, "noise\r\n\x0bMSH|cut");
    append(buf, &pos, "\x0bMSH|^~\\&|MON||||||ORU^R01|3|P|2.6\r");
    memset(buf + pos, 'x', 2100);
    pos += 2100;
    append(buf, &pos,
           "\x1c\r\x0bMSH|^~\\&|MON||||||ORU^R01|4|P|2.6\rOBX|1|NM|150456^^MDC||1|%\x1c");
    put("fuzz_bridge_hl7", "garbage-abandoned-oversized", buf, pos);
}

int main(int argc, char **argv)
{
    if (argc != 2 && argc != 3) {
        fprintf(stderr,
                "usage: %s OUTDIR [TARGET]   (e.g. fuzz/corpus; TARGET: that corpus only)\n",
                argv[0]);
        return 2;
    }
    outdir = argv[1];
    if (mkdir(outdir, 0755) != 0 && errno != EEXIST)
        die(strerror(errno));
    /* The bridge's seeds need no PKI and no handshake: they alone can be written again. */
    if (argc == 3 && strcmp(argv[2], "fuzz_bridge_hl7") != 0)
        die("only fuzz_bridge_hl7 can be written alone");
    corpus_bridge();
    if (argc == 3)
        return 0;
    corpus_batch();
    corpus_coap();
    record_handshake();
    corpus_gateway_hello();
    corpus_session();
    corpus_certs();
    corpus_queue();
    mwf_pki_discard();
    return 0;
}
