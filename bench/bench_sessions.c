/* SPDX-License-Identifier: Apache-2.0 */
/* bench_sessions.c -- the gateway's heap per idle session, at 1,000 and 5,000 sessions, in memory.
 *
 * Devices and gateway share this process, so the gateway's part is isolated by what its
 * destruction gives back: with N sessions idle, the devices are closed and the net emptied,
 * the heap is read, the gateway destroyed (and the close_notify datagrams it sends dropped),
 * the heap read again. The difference, less the same difference for a gateway with no
 * session, divided by N, is what one idle session holds: its peer entry, DTLS connection,
 * wolfSSL object and the device's replay state. Certificates come from the fleet PKI kept in
 * the build tree (made on first use: about 15 ms per device). Run from the build directory,
 * or with MW_BIN_DIR set: build/bin/bench-sessions [N ...]
 */
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "medwire/medwire.h"

#include "support/fake_clock.h"
#include "support/mem_transport.h"
#include "support/pki.h"

#define GW_ADDR "127.0.0.1:5684"

static mwt_pki pki;

static mw_err sink(void *ctx, const mw_message_t *m)
{
    (void)m;
    (*(uint64_t *)ctx)++;
    return MW_OK;
}

static size_t heap_in_use(void)
{
    struct mallinfo2 mi = mallinfo2();
    return mi.uordblks + mi.hblkhd;
}

static double wall_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void drain(mw_transport_t *t)
{
    uint8_t buf[2048];
    mw_addr_t from;
    size_t n;
    while (t->recv(t->ctx, &from, buf, sizeof buf, &n) == MW_OK)
        ;
}

/* Bytes the gateway frees on destruction after @p n devices made a session and went idle. */
static size_t gateway_bytes(int n, double *out_handshake_ms)
{
    mwt_net *net = mwt_net_create(7);
    mwt_clock clk = {.now_ms = 1000, .wall_ms = 1790000000000ull};
    mwt_rng rng = {.state = 99};
    mw_transport_t gw_tp = mwt_net_endpoint(net, GW_ADDR);
    uint64_t delivered = 0;
    mw_gateway_config_t cfg;
    mw_gateway_config_init(&cfg);
    cfg.ca_file = mwt_pki_ca(&pki);
    cfg.cert_file = mwt_pki_crt(&pki, "gateway");
    cfg.key_file = mwt_pki_key(&pki, "gateway");
    cfg.transport = gw_tp;
    cfg.clock = mwt_clock_table(&clk);
    cfg.sink = sink;
    cfg.sink_ctx = &delivered;
    cfg.max_peers = 8192; /* the same table for every n */
    /* Admission limits lifted: these figures are the cost of the work, not of the policy
     * (tests/integration/test_admission.c holds the policy). */
    cfg.max_half_open_per_host = 20000;
    cfg.handshakes_per_host_per_s = 1000000;
    cfg.handshakes_per_identity_per_min = 1000000;
    cfg.rate_limit_per_s = 1000000;
    mw_gateway_t *gw = NULL;
    mw_error_detail_t d;
    if (mw_gateway_create(&cfg, &gw, &d) != MW_OK) {
        fprintf(stderr, "gateway: %s\n", d.reason);
        exit(1);
    }
    mw_client_t **cs = calloc((size_t)n + 1, sizeof *cs);
    mw_transport_t *tps = calloc((size_t)n + 1, sizeof *tps);
    for (int i = 0; i < n; i++) {
        char id[32], addr[40];
        snprintf(id, sizeof id, "scale-%05d", i);
        if (!mwt_pki_device(&pki, id))
            exit(1);
        mw_client_config_t cc;
        mw_client_config_init(&cc);
        cc.ca_file = mwt_pki_ca(&pki);
        cc.cert_file = mwt_pki_crt(&pki, id);
        cc.key_file = mwt_pki_key(&pki, id);
        cc.gateway_name = "gateway";
        cc.gateway = GW_ADDR;
        snprintf(addr, sizeof addr, "127.1.%d.%d:%d", i / 250, 1 + i % 250, 5000 + i % 7);
        tps[i] = mwt_net_endpoint(net, addr);
        cc.transport = tps[i];
        cc.clock = mwt_clock_table(&clk);
        cc.random = mwt_rng_table(&rng);
        cc.queue_capacity = 8;
        if (mw_client_open(&cc, &cs[i], &d) != MW_OK) {
            fprintf(stderr, "%s: %s\n", id, d.reason);
            exit(1);
        }
        /* One observation each: the device's replay state exists, as in service. */
        mw_observation_t o = {.mdc_code = MW_MDC_PULS_OXIM_SAT_O2, .mantissa = 97};
        snprintf(o.unit, sizeof o.unit, "%%");
        if (mw_client_send_observation(cs[i], &o, NULL) != MW_OK)
            exit(1);
    }
    double t0 = wall_s();
    for (long round = 0; delivered < (uint64_t)n || round < 1; round++) {
        bool did = mw_gateway_poll(gw, 0) == MW_OK;
        for (int i = 0; i < n; i++)
            did = mw_client_poll(cs[i], 0) == MW_OK || did;
        if (!did && mwt_net_in_flight(net) == 0)
            mwt_clock_advance(&clk, 10);
        if (round > 10000000) {
            fprintf(stderr, "the devices did not all deliver\n");
            exit(1);
        }
    }
    /* Let the last acknowledgements land, so no retransmission is pending anywhere. */
    for (int k = 0; k < 50; k++) {
        int rc = mw_gateway_poll(gw, 0) == MW_OK;
        for (int i = 0; i < n; i++)
            rc += mw_client_poll(cs[i], 0) == MW_OK;
        (void)rc;
    }
    if (out_handshake_ms)
        *out_handshake_ms = n ? (wall_s() - t0) * 1000.0 / n : 0;
    mw_gateway_stats_t gs;
    mw_gateway_stats(gw, &gs);
    if (gs.sessions != (uint64_t)n) {
        fprintf(stderr, "%llu sessions, not %d\n", (unsigned long long)gs.sessions, n);
        exit(1);
    }
    for (int i = 0; i < n; i++)
        mw_client_close(&cs[i]);
    drain(&gw_tp); /* the devices' close_notify, never read by the gateway */
    malloc_trim(0);
    size_t with = heap_in_use();
    mw_gateway_destroy(&gw);
    for (int i = 0; i < n; i++)
        drain(&tps[i]); /* the gateway's close_notify */
    size_t without = heap_in_use();
    mwt_net_destroy(net);
    free(cs);
    free(tps);
    return with > without ? with - without : 0;
}

int main(int argc, char **argv)
{
    if (!mwt_pki_fleet(&pki))
        return 1;
    int ns[8] = {1000, 5000};
    int count = 2;
    if (argc > 1) {
        count = 0;
        for (int i = 1; i < argc && count < 8; i++)
            ns[count++] = atoi(argv[i]);
    }
    size_t base = gateway_bytes(0, NULL);
    printf("gateway with no session: %zu bytes (tables, buffers, DTLS context)\n", base);
    for (int k = 0; k < count; k++) {
        double hs = 0;
        size_t b = gateway_bytes(ns[k], &hs);
        size_t per = b > base ? (b - base) / (size_t)ns[k] : 0;
        printf("gateway heap per idle session at %d sessions: %zu bytes (%.1f KiB); %zu bytes "
               "in all (%.1f MiB); %.2f ms of wall time per device to connect and deliver, "
               "both ends\n",
               ns[k], per, per / 1024.0, b, b / 1048576.0, hs);
        fflush(stdout);
    }
    return 0;
}
