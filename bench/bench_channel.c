/* SPDX-License-Identifier: Apache-2.0 */
/* bench_channel.c -- handshake cost and bytes on the wire per acknowledged observation, in memory.
 */
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "medwire/medwire.h"

#include "support/fake_clock.h"
#include "support/mem_transport.h"
#include "support/pki.h"

static mwt_pki pki;
static mwt_clock clk = {.now_ms = 1000, .wall_ms = 1790000000000ull};
static mwt_rng rng = {.state = 42};

static mw_err sink(void *ctx, const mw_message_t *m)
{
    (void)m;
    (*(uint64_t *)ctx)++;
    return MW_OK;
}

static double wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

static mw_gateway_t *gateway(mw_transport_t tp, uint64_t *delivered)
{
    mw_gateway_config_t cfg;
    mw_gateway_config_init(&cfg);
    cfg.ca_file = mwt_pki_ca(&pki);
    cfg.cert_file = mwt_pki_crt(&pki, "gateway");
    cfg.key_file = mwt_pki_key(&pki, "gateway");
    cfg.transport = tp;
    cfg.clock = mwt_clock_table(&clk);
    cfg.sink = sink;
    cfg.sink_ctx = delivered;
    /* Admission limits lifted: these figures are the cost of the work, not of the policy
     * (tests/integration/test_admission.c holds the policy). */
    cfg.max_half_open_per_host = 20000;
    cfg.handshakes_per_host_per_s = 1000000;
    cfg.handshakes_per_identity_per_min = 1000000;
    cfg.rate_limit_per_s = 1000000;
    mw_gateway_t *gw = NULL;
    if (mw_gateway_create(&cfg, &gw, NULL) != MW_OK)
        exit(1);
    return gw;
}

static mw_client_t *client(mw_transport_t tp)
{
    mw_client_config_t cfg;
    mw_client_config_init(&cfg);
    cfg.ca_file = mwt_pki_ca(&pki);
    cfg.cert_file = mwt_pki_crt(&pki, "dev-1");
    cfg.key_file = mwt_pki_key(&pki, "dev-1");
    cfg.gateway_name = "gateway";
    cfg.gateway = "127.0.0.1:5684";
    cfg.transport = tp;
    cfg.clock = mwt_clock_table(&clk);
    cfg.random = mwt_rng_table(&rng);
    mw_client_t *c = NULL;
    if (mw_client_open(&cfg, &c, NULL) != MW_OK)
        exit(1);
    return c;
}

/* Polls both ends until the client is connected with an empty queue. */
static void settle(mw_gateway_t *gw, mw_client_t *c)
{
    for (int i = 0; i < 100000; i++) {
        mw_client_stats_t st;
        mw_client_stats(c, &st);
        if (st.connected && st.messages_pending == 0)
            return;
        mw_err a = mw_gateway_poll(gw, 0), b = mw_client_poll(c, 0);
        if (a != MW_OK && b != MW_OK)
            mwt_clock_advance(&clk, 1);
    }
    fprintf(stderr, "bench: the link did not settle\n");
    exit(1);
}

static void obs(mw_client_t *c, int v)
{
    mw_observation_t o = {.mdc_code = MW_MDC_PULS_OXIM_SAT_O2, .mantissa = v, .unit = "%"};
    if (mw_client_send_observation(c, &o, NULL) != MW_OK)
        exit(1);
}

int main(int argc, char **argv)
{
    (void)argc;
    char self[4096];
    snprintf(self, sizeof self, "%s", argv[0]);
    setenv("MW_BIN_DIR", dirname(self), 0);
    if (!mwt_pki_make(&pki))
        return 1;

    /* 1. Full handshakes: both ends in this process, one core. */
    const int rounds = 200;
    mwt_net *net = mwt_net_create(1);
    uint64_t delivered = 0;
    mw_gateway_t *gw = gateway(mwt_net_endpoint(net, "127.0.0.1:5684"), &delivered);
    uint64_t hs_bytes = 0, hs_dgrams = 0;
    double t0 = wall_ms();
    for (int i = 0; i < rounds; i++) {
        char addr[32];
        snprintf(addr, sizeof addr, "127.0.0.2:%d", 20000 + i);
        mw_transport_t tp = mwt_net_endpoint(net, addr);
        mw_client_t *c = client(tp);
        settle(gw, c);
        mwt_counters k = mwt_net_counters(&tp);
        hs_bytes += k.bytes_out + k.bytes_in;
        hs_dgrams += k.datagrams_out + k.datagrams_in;
        mw_client_close(&c);
        if (i % 50 == 49) {
            /* endpoints are bounded: start a fresh net and gateway */
            mw_gateway_destroy(&gw);
            mwt_net_destroy(net);
            net = mwt_net_create((uint64_t)i);
            gw = gateway(mwt_net_endpoint(net, "127.0.0.1:5684"), &delivered);
        }
    }
    double per_hs = (wall_ms() - t0) / rounds;
    printf("full handshake (device and gateway in one process, one core): %.2f ms\n", per_hs);
    printf("full handshake on the wire: %.0f bytes in %.1f datagrams (both directions)\n",
           (double)hs_bytes / rounds, (double)hs_dgrams / rounds);
    mw_gateway_destroy(&gw);
    mwt_net_destroy(net);

    /* 2. Bytes per acknowledged observation, after the handshake. */
    const int n = 1600;
    for (int batch = 1; batch <= 16; batch *= 16) {
        net = mwt_net_create(7);
        delivered = 0;
        gw = gateway(mwt_net_endpoint(net, "127.0.0.1:5684"), &delivered);
        mw_transport_t tp = mwt_net_endpoint(net, "127.0.0.2:30000");
        mw_client_t *c = client(tp);
        settle(gw, c);
        mwt_net_reset_counters(net);
        for (int i = 0; i < n; i += batch) {
            for (int j = 0; j < batch; j++)
                obs(c, 90 + (i + j) % 10);
            settle(gw, c);
        }
        mwt_counters k = mwt_net_counters(&tp);
        printf("bytes on the wire per acknowledged observation, %2d per request: %.1f "
               "(device->gateway %.1f, gateway->device %.1f; UDP payload, DTLS included)\n",
               batch, (double)(k.bytes_out + k.bytes_in) / n, (double)k.bytes_out / n,
               (double)k.bytes_in / n);
        if (delivered != (uint64_t)n) {
            fprintf(stderr, "bench: %llu delivered of %d\n", (unsigned long long)delivered, n);
            return 1;
        }
        mw_client_close(&c);
        mw_gateway_destroy(&gw);
        mwt_net_destroy(net);
    }
    return 0;
}
