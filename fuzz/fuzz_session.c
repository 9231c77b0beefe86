/* SPDX-License-Identifier: Apache-2.0 */
/* fuzz_session.c -- the gateway's input after a real handshake: every input reaches CoAP, batch decoding, identity and duplicate rules, and none may end the session. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "medwire/medwire.h"

#include "coap/coap.h"
#include "session/protocol.h"
#include "dtls/dtls.h"
#include "port/posix/read_file.h"
#include "session/codec.h"
#include "support/fake_clock.h"
#include "support/mem_transport.h"

#include "fuzz_support.h"

#define GATEWAY_ADDR "127.0.0.1:5684"
#define CLIENT_ADDR "127.0.0.2:40000"
#define CLIENT_ID "dev-1"

static mwt_net *net;
static mwt_clock clk;
static mw_transport_t gw_tp, cl_tp;
static mw_addr_t gw_addr;
static mw_gateway_t *gw;
static mwi_dtls_ctx *cl_ctx;
static mwi_dtls_conn *cl;
static mwi_coap_parser *parser;
static uint64_t delivered;

/* Every sequence number the sink was given, in any space: an Ack may cover only these
 * (acknowledged implies delivered, now or as the duplicate of an earlier delivery). Open
 * addressing; once it is nearly full the check stops rather than guess. */
#define SEEN_SLOTS (1u << 20)
static uint64_t *seen;
static size_t nseen;

static bool seen_has(uint64_t seq)
{
    for (size_t i = (size_t)(seq * 0x9E3779B97F4A7C15ull >> 44);; i = (i + 1) & (SEEN_SLOTS - 1)) {
        if (seen[i] == seq)
            return true;
        if (seen[i] == 0)
            return false;
    }
}

static void seen_add(uint64_t seq)
{
    if (seq == 0 || nseen >= SEEN_SLOTS / 2 || seen_has(seq))
        return;
    size_t i = (size_t)(seq * 0x9E3779B97F4A7C15ull >> 44);
    while (seen[i] != 0)
        i = (i + 1) & (SEEN_SLOTS - 1);
    seen[i] = seq;
    nseen++;
}

/* The gateway's sink: everything it delivers was sent by the authenticated device, for itself,
 * and passed the codec's rules. */
static mw_err sink(void *ctx, const mw_message_t *m)
{
    (void)ctx;
    MWF_CHECK(strcmp(m->device_id, CLIENT_ID) == 0, "delivered a message of '%s' from %s",
              m->device_id, CLIENT_ID);
    MWF_CHECK(m->type == MW_MSG_UNKNOWN || mwi_message_check(m) == MW_OK,
              "delivered an invalid message, seq %llu", (unsigned long long)m->seq);
    seen_add(m->seq);
    delivered++;
    return MW_OK;
}

/* Acknowledged implies delivered: a number an Ack covers was given to the sink, or the device
 * would forget a message the hospital never received. */
static void check_ack(const mwi_coap_msg *m)
{
    mwi_seq_range r[MWI_MAX_ACK_RANGES];
    size_t n = 0;
    if (m->code != MWI_COAP_CHANGED || m->content_format != MWI_COAP_CF_MEDWIRE_ACK ||
        mwi_ack_decode_full(m->payload, m->payload_len, r, MWI_MAX_ACK_RANGES, &n, NULL, 0, NULL,
                            NULL, NULL) != MW_OK)
        return;
    for (size_t i = 0; i < n && nseen < SEEN_SLOTS / 2; i++) {
        MWF_CHECK(r[i].last - r[i].first < MWI_MAX_BATCH, "an Ack range of %llu numbers",
                  (unsigned long long)(r[i].last - r[i].first + 1));
        for (uint64_t s = r[i].first; s <= r[i].last; s++)
            MWF_CHECK(seen_has(s), "seq %llu acknowledged but never delivered",
                      (unsigned long long)s);
    }
}

static void on_audit(void *ctx, const mw_audit_event_t *ev)
{
    static char line[4096];
    size_t n = 0;
    (void)ctx;
    mw_err e = mw_audit_to_json(ev, line, sizeof line, &n);
    MWF_CHECK(e == MW_OK && mwf_json_valid(line, n), "audit record: %s", line);
}

static void client_out(void *ctx, const uint8_t *buf, size_t len)
{
    (void)ctx;
    mw_err e = cl_tp.send(cl_tp.ctx, &gw_addr, buf, len);
    (void)e; /* the in-memory net never refuses */
}

/* Every record the gateway sends back is a well-formed CoAP reply: it never sends a request,
 * so never a CON, and an RST is always empty. */
static void on_reply(void *ctx, const uint8_t *data, size_t len)
{
    mwi_coap_msg m;
    (void)ctx;
    mw_err e = mwi_coap_parse(parser, data, len, &m);
    MWF_CHECK(e == MW_OK, "the gateway sent a %zu-byte record that is not CoAP: %s", len,
              mw_strerror(e));
    MWF_CHECK(m.type != MWI_COAP_CON, "the gateway sent a CON");
    MWF_CHECK(m.code == MWI_COAP_EMPTY || MWI_COAP_IS_RESPONSE(m.code),
              "the gateway sent code %u.%02u", m.code >> 5, m.code & 31u);
    check_ack(&m);
}

/* Delivers what the gateway sent to the client; returns false if there was nothing. */
static bool pump_client(bool established)
{
    uint8_t buf[2048];
    mw_addr_t from;
    size_t n;
    bool any = false;
    while (cl_tp.recv(cl_tp.ctx, &from, buf, sizeof buf, &n) == MW_OK) {
        any = true;
        mw_err e = mwi_dtls_conn_input(cl, buf, n, clk.now_ms, on_reply, NULL);
        if (established) {
            mw_error_detail_t d;
            mwi_dtls_conn_error(cl, &d);
            MWF_CHECK(e == MW_OK, "the gateway's reply broke the client's session: %s (%s)",
                      mw_strerror(e), d.reason);
        }
    }
    return any;
}

/* One real handshake, once: random handshakes would stop a fuzzer at the first flight. */
static void handshake(void)
{
    MWF_CHECK(mwi_dtls_conn_start(cl, clk.now_ms) == MW_EINPROGRESS, "client start");
    for (int i = 0; i < 100000 && !mwi_dtls_conn_established(cl); i++) {
        bool did = mw_gateway_poll(gw, 0) == MW_OK;
        did = pump_client(false) || did;
        if (did || mwt_net_in_flight(net) > 0)
            continue;
        /* Quiet: jump to the next handshake timer. */
        uint64_t at = mwi_dtls_conn_deadline(cl);
        int t = mw_gateway_next_timeout_ms(gw);
        if (t >= 0 && clk.now_ms + (uint64_t)t < at)
            at = clk.now_ms + (uint64_t)t;
        mwt_clock_advance(&clk, at != UINT64_MAX && at > clk.now_ms ? at - clk.now_ms : 1);
        if (clk.now_ms >= mwi_dtls_conn_deadline(cl)) {
            mw_err e = mwi_dtls_conn_timer(cl, clk.now_ms);
            MWF_CHECK(e == MW_EINPROGRESS || e == MW_OK, "handshake timer: %s", mw_strerror(e));
        }
    }
    mw_error_detail_t d;
    mwi_dtls_conn_error(cl, &d);
    MWF_CHECK(mwi_dtls_conn_established(cl), "handshake: %s", d.reason);
    mw_gateway_stats_t st;
    mw_gateway_stats(gw, &st);
    MWF_CHECK(st.sessions == 1, "gateway sessions after the handshake: %llu",
              (unsigned long long)st.sessions);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    const mwt_pki *pki = mwf_pki();
    seen = calloc(SEEN_SLOTS, sizeof *seen);
    MWF_CHECK(seen != NULL, "out of memory");
    net = mwt_net_create(1);
    clk.now_ms = 1000;
    clk.wall_ms = 1790000000000ull;
    gw_tp = mwt_net_endpoint(net, GATEWAY_ADDR);
    cl_tp = mwt_net_endpoint(net, CLIENT_ADDR);
    gw_addr = mwt_net_addr(&gw_tp);

    mw_gateway_config_t cfg;
    mw_gateway_config_init(&cfg);
    /* One gateway lives through every input while the inputs move the clock by hours in all:
     * idle reaping would end the session the harness depends on. */
    cfg.idle_timeout_ms = 0;
    cfg.ca_file = mwt_pki_ca(pki);
    cfg.cert_file = mwt_pki_crt(pki, "gateway");
    cfg.key_file = mwt_pki_key(pki, "gateway");
    cfg.transport = gw_tp;
    cfg.clock = mwt_clock_table(&clk);
    cfg.sink = sink;
    cfg.audit = on_audit;
    mw_error_detail_t d;
    MWF_CHECK(mw_gateway_create(&cfg, &gw, &d) == MW_OK, "gateway: %s", d.reason);

    mwi_dtls_config dc = {

        .read_file = mwi_file_read,
        .role = MWI_DTLS_CLIENT,
        .ca_file = mwt_pki_ca(pki),
        .cert_file = mwt_pki_crt(pki, CLIENT_ID),
        .key_file = mwt_pki_key(pki, CLIENT_ID),
        .peer_name = "gateway",
    };
    MWF_CHECK(mwi_dtls_ctx_create(&dc, &cl_ctx, &d) == MW_OK, "client context: %s", d.reason);
    MWF_CHECK(mwi_dtls_conn_create(cl_ctx, &gw_addr, client_out, NULL, &cl) == MW_OK, "client");
    MWF_CHECK(mwi_coap_parser_create(MWI_DTLS_MAX_DATAGRAM, &parser) == MW_OK, "parser");
    mwf_pki_discard();
    handshake();
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    mwf_reader rd;
    mwf_frame f;
    mwf_reader_init(&rd, data, size);
    while (mwf_next_frame(&rd, &f)) {
        /* Tag: low 3 bits 7 sends the bytes as they are, unencrypted, from the device's own
         * address (what an off-path attacker who spoofs it can do); anything else sends them
         * as one record of the established session. The rest moves the clock (ms). */
        mwt_clock_advance(&clk, f.tag >> 3);
        if ((f.tag & 7u) == 7u) {
            MWF_CHECK(cl_tp.send(cl_tp.ctx, &gw_addr, f.data, f.len) == MW_OK, "send");
        } else {
            size_t len = f.len < MWI_DTLS_MAX_PLAINTEXT ? f.len : MWI_DTLS_MAX_PLAINTEXT;
            mw_err e = mwi_dtls_conn_write(cl, f.data, len);
            MWF_CHECK(e == MW_OK || len == 0, "client write of %zu bytes: %s", len,
                      mw_strerror(e));
        }
        mw_err e = mw_gateway_poll(gw, 0);
        MWF_CHECK(e == MW_OK || e == MW_EAGAIN, "poll: %s", mw_strerror(e));
        (void)pump_client(true);

        /* A malformed or hostile request is refused; it never costs the device its session. */
        mw_gateway_stats_t st;
        mw_gateway_stats(gw, &st);
        MWF_CHECK(mwi_dtls_conn_established(cl), "the client's session ended");
        MWF_CHECK(st.sessions == 1, "the gateway holds %llu sessions",
                  (unsigned long long)st.sessions);
        MWF_CHECK(st.messages_delivered == delivered, "stats say %llu delivered, the sink %llu",
                  (unsigned long long)st.messages_delivered, (unsigned long long)delivered);
    }
    if (getenv("MWF_DEBUG") != NULL) {
        /* For triage: what the gateway made of the input so far. */
        mw_gateway_stats_t st;
        mw_gateway_stats(gw, &st);
        fprintf(stderr, "gateway: delivered %llu, duplicates %llu, refused %llu, sent %llu\n",
                (unsigned long long)st.messages_delivered, (unsigned long long)st.duplicates,
                (unsigned long long)st.refused, (unsigned long long)st.datagrams_sent);
    }
    return 0;
}
