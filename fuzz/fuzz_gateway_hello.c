/* SPDX-License-Identifier: Apache-2.0 */
/* fuzz_gateway_hello.c -- the gateway's datagram input before any handshake: spoofable bytes from unverified addresses must cost no state and no amplification. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "medwire/medwire.h"

#include "dtls/dtls.h"

#include "support/fake_clock.h"
#include "support/mem_transport.h"

#include "fuzz_support.h"

#define GATEWAY_ADDR "127.0.0.1:5684"
#define NSOURCES 4

static mwt_net *net;
static mwt_clock clk;
static mw_transport_t gw_tp;
static mw_transport_t sources[NSOURCES];
static mw_addr_t gw_addr;
static mw_gateway_t *gw;

/* Nothing can be delivered without a session. */
static mw_err sink(void *ctx, const mw_message_t *m)
{
    (void)ctx;
    MWF_CHECK(false, "message seq %llu delivered without a handshake", (unsigned long long)m->seq);
    return MW_EINTERNAL;
}

/* Refused ClientHellos are audited (at a bounded rate): the records must print as valid JSON
 * even though part of their reason comes from an unverified peer. */
static void on_audit(void *ctx, const mw_audit_event_t *ev)
{
    static char line[4096];
    size_t n = 0;
    (void)ctx;
    mw_err e = mw_audit_to_json(ev, line, sizeof line, &n);
    MWF_CHECK(e == MW_OK, "mw_audit_to_json: %s", mw_strerror(e));
    MWF_CHECK(mwf_json_valid(line, n), "invalid audit JSON: %s", line);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    static const char *const src_text[NSOURCES] = {"10.0.0.1:40000", "10.0.0.2:5684",
                                                   "[2001:db8::1]:40000", "127.0.0.1:40001"};
    (void)argc;
    (void)argv;
    const mwt_pki *pki = mwf_pki();
    net = mwt_net_create(1);
    clk.now_ms = 1000;
    clk.wall_ms = 1790000000000ull;
    gw_tp = mwt_net_endpoint(net, GATEWAY_ADDR);
    gw_addr = mwt_net_addr(&gw_tp);
    for (int i = 0; i < NSOURCES; i++)
        sources[i] = mwt_net_endpoint(net, src_text[i]);

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
    /* Small, so that a state leak per ClientHello would fill it within one run. */
    cfg.max_peers = 8;
    mw_error_detail_t d;
    mw_err e = mw_gateway_create(&cfg, &gw, &d);
    MWF_CHECK(e == MW_OK, "gateway: %s", d.reason);
    mwf_pki_discard();
    return 0;
}

static void drain(mw_transport_t *t)
{
    uint8_t buf[2048];
    mw_addr_t from;
    size_t n;
    while (t->recv(t->ctx, &from, buf, sizeof buf, &n) == MW_OK)
        ;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    mwf_reader rd;
    mwf_frame f;
    mwf_reader_init(&rd, data, size);
    while (mwf_next_frame(&rd, &f)) {
        /* Tag: bits 0-1 pick the source address, the rest how far the clock moves first (up
         * to about 2 s: across the audit rate window and the handshake timers). */
        mw_transport_t *src = &sources[f.tag & (NSOURCES - 1)];
        mwt_clock_advance(&clk, (uint64_t)(f.tag >> 2) * 33u);
        mwt_counters before = mwt_net_counters(&gw_tp);
        MWF_CHECK(src->send(src->ctx, &gw_addr, f.data, f.len) == MW_OK, "send");
        mw_err e = mw_gateway_poll(gw, 0);
        MWF_CHECK(e == MW_OK || e == MW_EAGAIN, "poll: %s", mw_strerror(e));
        mwt_counters after = mwt_net_counters(&gw_tp);

        /* RFC 6347 4.2.1: to an address it has not verified the gateway sends at most one
         * HelloVerifyRequest, no larger than what it got: no amplification. */
        MWF_CHECK(after.datagrams_out - before.datagrams_out <= 1,
                  "%llu datagrams answered one",
                  (unsigned long long)(after.datagrams_out - before.datagrams_out));
        MWF_CHECK(after.bytes_out - before.bytes_out <= f.len,
                  "%llu bytes answered a %zu-byte datagram",
                  (unsigned long long)(after.bytes_out - before.bytes_out), f.len);

        /* A ClientHello that is not whole and well formed never reaches wolfSSL: no answer. */
        if (mwi_dtls_is_client_hello(f.data, f.len) &&
            !mwi_dtls_client_hello_well_formed(f.data, f.len))
            MWF_CHECK(after.datagrams_out == before.datagrams_out,
                      "a malformed ClientHello of %zu bytes was answered", f.len);
        /* No state for a peer that has not returned a valid cookie, which no input can forge
         * (the cookie secret is random). No handshake, so no timer either. */
        mw_gateway_stats_t st;
        mw_gateway_stats(gw, &st);
        MWF_CHECK(st.sessions == 0 && st.handshakes_started == 0 && st.handshakes_completed == 0,
                  "state kept for an unverified peer: %llu sessions, %llu handshakes",
                  (unsigned long long)st.sessions, (unsigned long long)st.handshakes_started);
        MWF_CHECK(mw_gateway_next_timeout_ms(gw) == -1, "a timer runs for an unverified peer");
        /* The direct observation: the throwaway DTLS object of every probe was freed. */
        MWF_CHECK(mwi_dtls_live_conns() == 0, "%ld DTLS objects kept for unverified peers",
                  mwi_dtls_live_conns());
        drain(src);
    }
    if (getenv("MWF_DEBUG") != NULL) {
        /* For triage: what the gateway made of the input so far. */
        mw_gateway_stats_t st;
        mw_gateway_stats(gw, &st);
        fprintf(stderr, "gateway: %llu HelloVerifyRequests, %llu refused, %llu datagrams in\n",
                (unsigned long long)st.hello_verify_sent,
                (unsigned long long)st.handshakes_failed,
                (unsigned long long)st.datagrams_received);
    }
    return 0;
}
