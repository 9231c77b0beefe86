/* SPDX-License-Identifier: Apache-2.0 */
/* bench_mw_load.c -- acknowledged messages per second over loopback UDP: a medwire gateway
 * process, and N devices (mw_client) in another. */
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "medwire/medwire.h"

/*
 * bench-mw-load gateway --listen HOST:PORT --dir PKI [--store FILE|postgresql://...]
 *                       [--gateway-id NAME] --port-file FILE --stats FILE
 *     Runs a gateway (PKI/ca/ca.crt, PKI/gateway.crt, PKI/gateway.key) until SIGTERM, then
 *     writes "delivered N cpu_s S sessions N handshakes N bytes_in N bytes_out N" to FILE.
 *     The per-peer rate limit is raised so that it does not cap one busy device. Gateways
 *     that share one PostgreSQL store each need a --gateway-id of their own.
 * bench-mw-load devices --gateway HOST:PORT --dir PKI --n N --window W --seconds S
 *                       [--warmup S] [--prefix dev-]
 *     Opens N clients (PKI/dev-000.crt ...), waits until every one is connected, keeps W
 *     observations unacknowledged per device for a warm-up and then S seconds, and prints
 *     one line: "acked_per_s X bytes_per_ack Y datagrams_per_ack Z".
 * bench-mw-load handshakes --gateway HOST:PORT --dir PKI --count K
 *     K sessions one after the other (device dev-000): full handshake, one observation
 *     acknowledged, close; prints "handshakes_per_s X bytes_per_handshake Y
 *     datagrams_per_handshake Z" (the observation and its acknowledgement included).
 * A benchmark, not a test: it prints figures and asserts nothing about them.
 */

static volatile sig_atomic_t stop;

static void on_signal(int sig)
{
    (void)sig;
    stop = 1;
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static double cpu_s(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
           (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
}

static const char *arg(int argc, char **argv, const char *name, const char *dflt)
{
    for (int i = 2; i + 1 < argc; i++) {
        if (strcmp(argv[i], name) == 0) {
            return argv[i + 1];
        }
    }
    if (dflt == NULL) {
        fprintf(stderr, "bench-mw-load: %s is required\n", name);
        exit(2);
    }
    return dflt;
}

static mw_err sink(void *ctx, const mw_message_t *m)
{
    (void)m;
    (*(uint64_t *)ctx)++;
    return MW_OK;
}

static int run_gateway(int argc, char **argv)
{
    const char *dir = arg(argc, argv, "--dir", NULL);
    const char *store = arg(argc, argv, "--store", "");
    char ca[512], crt[512], key[512];
    uint64_t delivered = 0;
    mw_gateway_config_t cfg;
    mw_gateway_t *gw = NULL;
    mw_error_detail_t why = {0};
    mw_addr_t local;
    char text[64];

    snprintf(ca, sizeof ca, "%s/ca/ca.crt", dir);
    snprintf(crt, sizeof crt, "%s/gateway.crt", dir);
    snprintf(key, sizeof key, "%s/gateway.key", dir);
    mw_gateway_config_init(&cfg);
    cfg.ca_file = ca;
    cfg.cert_file = crt;
    cfg.key_file = key;
    cfg.listen = arg(argc, argv, "--listen", "127.0.0.1:0");
    cfg.sink = sink;
    cfg.sink_ctx = &delivered;
    cfg.store_path = store[0] != '\0' ? store : NULL;
    const char *id = arg(argc, argv, "--gateway-id", "");
    cfg.store_instance = id[0] != '\0' ? id : NULL;
    cfg.rate_limit_per_s = 1000000;
    cfg.max_peers = 20000;
    cfg.max_half_open = 20000;
    /* Admission limits lifted: these figures are the cost of the work, not of the policy
     * (tests/integration/test_admission.c holds the policy). */
    cfg.max_half_open_per_host = 20000;
    cfg.handshakes_per_host_per_s = 1000000;
    cfg.handshakes_per_identity_per_min = 1000000;
    if (mw_gateway_create(&cfg, &gw, &why) != MW_OK) {
        fprintf(stderr, "bench-mw-load: gateway: %s\n", why.reason);
        return 1;
    }
    signal(SIGTERM, on_signal);
    signal(SIGINT, on_signal);
    if (mw_gateway_local_addr(gw, &local) != MW_OK ||
        mw_addr_format(&local, text, sizeof text) != MW_OK) {
        return 1;
    }
    FILE *pf = fopen(arg(argc, argv, "--port-file", NULL), "w");
    if (pf == NULL) {
        return 1;
    }
    fprintf(pf, "%u\n", (unsigned)mw_addr_port(&local));
    fclose(pf);
    while (!stop) {
        mw_err e = mw_gateway_poll(gw, 100);
        if (e != MW_OK && e != MW_EAGAIN) {
            fprintf(stderr, "bench-mw-load: gateway poll: %s\n", mw_strerror(e));
            break;
        }
    }
    mw_gateway_stats_t st;
    mw_gateway_stats(gw, &st);
    FILE *sf = fopen(arg(argc, argv, "--stats", NULL), "w");
    if (sf == NULL) {
        return 1;
    }
    fprintf(sf,
            "delivered %llu cpu_s %.4f sessions %llu handshakes %llu bytes_in %llu bytes_out "
            "%llu commits %llu commit_us_mean %.0f\n",
            (unsigned long long)delivered, cpu_s(), (unsigned long long)st.sessions,
            (unsigned long long)st.handshakes_completed, (unsigned long long)st.bytes_received,
            (unsigned long long)st.bytes_sent, (unsigned long long)st.commits,
            st.commits ? (double)st.commit_us_sum / (double)st.commits : 0.0);
    fclose(sf);
    mw_gateway_destroy(&gw);
    return 0;
}

typedef struct fleet {
    int n;
    mw_client_t **c;
    struct pollfd *pfd;
} fleet;

static void poll_one(fleet *f, int i)
{
    mw_err e = mw_client_poll(f->c[i], 0);
    if (e != MW_OK && e != MW_EAGAIN) {
        mw_error_detail_t d;
        mw_client_last_error(f->c[i], &d);
        fprintf(stderr, "bench-mw-load: device %d: %s (%s)\n", i, mw_strerror(e), d.reason);
        exit(1);
    }
}

static void top_up_one(mw_client_t *c, int window, int64_t *value)
{
    mw_client_stats_t st;
    mw_client_stats(c, &st);
    for (uint64_t p = st.messages_pending; p < (uint64_t)window; p++) {
        mw_observation_t o = {
            .mdc_code = MW_MDC_PULS_OXIM_SAT_O2, .mantissa = 90 + (*value)++ % 10, .unit = "%"};
        if (mw_client_send_observation(c, &o, NULL) != MW_OK) {
            fprintf(stderr, "bench-mw-load: send failed\n");
            exit(1);
        }
    }
}

/* What a device application does: let the client read what arrived, hand it new observations
 * while fewer than @p window are unacknowledged, let it send them, then wait on the sockets
 * (at most 10 ms). */
static void drive(fleet *f, int window, int64_t *value)
{
    int wait_ms = 10;
    for (int i = 0; i < f->n; i++) {
        poll_one(f, i);
        if (window > 0) {
            top_up_one(f->c[i], window, value);
            poll_one(f, i);
        }
        int t = mw_client_next_timeout_ms(f->c[i]);
        if (t >= 0 && t < wait_ms) {
            wait_ms = t;
        }
        f->pfd[i].fd = mw_client_fd(f->c[i]);
        f->pfd[i].events = POLLIN;
    }
    if (wait_ms > 0) {
        (void)poll(f->pfd, (nfds_t)f->n, wait_ms);
    }
}

static void totals(const fleet *f, uint64_t *acked, uint64_t *bytes, uint64_t *dgrams)
{
    *acked = *bytes = *dgrams = 0;
    for (int i = 0; i < f->n; i++) {
        mw_client_stats_t st;
        mw_client_stats(f->c[i], &st);
        *acked += st.messages_acked;
        *bytes += st.bytes_sent + st.bytes_received;
        *dgrams += st.datagrams_sent + st.datagrams_received;
    }
}

static int run_devices(int argc, char **argv)
{
    const char *dir = arg(argc, argv, "--dir", NULL);
    const char *prefix = arg(argc, argv, "--prefix", "dev-");
    int n = atoi(arg(argc, argv, "--n", "1"));
    int window = atoi(arg(argc, argv, "--window", "16"));
    double seconds = atof(arg(argc, argv, "--seconds", "3"));
    double warmup = atof(arg(argc, argv, "--warmup", "1"));
    char ca[512];
    fleet f = {.n = n};
    int64_t value = 0;

    snprintf(ca, sizeof ca, "%s/ca/ca.crt", dir);
    f.c = calloc((size_t)n, sizeof *f.c);
    f.pfd = calloc((size_t)n, sizeof *f.pfd);
    if (f.c == NULL || f.pfd == NULL) {
        return 1;
    }
    for (int i = 0; i < n; i++) {
        char crt[512], key[512];
        mw_client_config_t cfg;
        mw_error_detail_t why = {0};
        snprintf(crt, sizeof crt, "%s/%s%03d.crt", dir, prefix, i);
        snprintf(key, sizeof key, "%s/%s%03d.key", dir, prefix, i);
        mw_client_config_init(&cfg);
        cfg.ca_file = ca;
        cfg.cert_file = crt;
        cfg.key_file = key;
        cfg.gateway = arg(argc, argv, "--gateway", NULL);
        cfg.gateway_name = "gateway";
        cfg.bind = "127.0.0.1:0";
        cfg.queue_capacity = (uint32_t)window * 2u + 8u;
        cfg.nstart = 1;
        /* A sequence start above any earlier run's, as medwire-device does. */
        cfg.first_seq = (uint64_t)time(NULL) * 1000000u;
        if (mw_client_open(&cfg, &f.c[i], &why) != MW_OK) {
            fprintf(stderr, "bench-mw-load: device %d: %s\n", i, why.reason);
            return 1;
        }
    }
    /* Connect everyone, one observation each, before the clock starts. */
    double t0 = now_s();
    for (;;) {
        int up = 0;
        for (int i = 0; i < n; i++) {
            mw_client_stats_t st;
            mw_client_stats(f.c[i], &st);
            up += st.connected && st.messages_acked > 0;
        }
        if (up == n) {
            break;
        }
        drive(&f, 1, &value);
        if (now_s() - t0 > 60) {
            fprintf(stderr, "bench-mw-load: only %d of %d devices connected in 60 s\n", up, n);
            return 1;
        }
    }
    double connect_s = now_s() - t0;
    t0 = now_s();
    while (now_s() - t0 < warmup) {
        drive(&f, window, &value);
    }
    uint64_t a0, b0, d0, a1, b1, d1;
    totals(&f, &a0, &b0, &d0);
    t0 = now_s();
    double t;
    do {
        drive(&f, window, &value);
        t = now_s() - t0;
    } while (t < seconds);
    totals(&f, &a1, &b1, &d1);
    printf("acked_per_s %.1f bytes_per_ack %.2f datagrams_per_ack %.3f connect_s %.3f\n",
           (double)(a1 - a0) / t, (double)(b1 - b0) / (double)(a1 - a0),
           (double)(d1 - d0) / (double)(a1 - a0), connect_s);
    for (int i = 0; i < n; i++) {
        mw_client_close(&f.c[i]);
    }
    free(f.c);
    free(f.pfd);
    return 0;
}

static int run_handshakes(int argc, char **argv)
{
    const char *dir = arg(argc, argv, "--dir", NULL);
    int k = atoi(arg(argc, argv, "--count", "100"));
    char ca[512], crt[512], key[512];
    uint64_t bytes = 0, dgrams = 0;
    int64_t value = 0;

    snprintf(ca, sizeof ca, "%s/ca/ca.crt", dir);
    snprintf(crt, sizeof crt, "%s/dev-000.crt", dir);
    snprintf(key, sizeof key, "%s/dev-000.key", dir);
    double t0 = now_s();
    for (int i = 0; i < k; i++) {
        mw_client_config_t cfg;
        mw_error_detail_t why = {0};
        mw_client_t *c = NULL;
        struct pollfd pfd;
        fleet f = {.n = 1, .c = &c, .pfd = &pfd};
        mw_client_config_init(&cfg);
        cfg.ca_file = ca;
        cfg.cert_file = crt;
        cfg.key_file = key;
        cfg.gateway = arg(argc, argv, "--gateway", NULL);
        cfg.gateway_name = "gateway";
        cfg.bind = "127.0.0.1:0";
        cfg.first_seq = (uint64_t)time(NULL) * 1000000u + (uint64_t)i * 10u;
        if (mw_client_open(&cfg, &c, &why) != MW_OK) {
            fprintf(stderr, "bench-mw-load: %s\n", why.reason);
            return 1;
        }
        top_up_one(c, 1, &value);
        double ts = now_s();
        for (;;) {
            mw_client_stats_t st;
            mw_client_stats(c, &st);
            if (st.messages_acked == 1) {
                bytes += st.bytes_sent + st.bytes_received;
                dgrams += st.datagrams_sent + st.datagrams_received;
                break;
            }
            if (now_s() - ts > 10) {
                fprintf(stderr, "bench-mw-load: handshake %d did not complete\n", i);
                return 1;
            }
            drive(&f, 0, &value);
        }
        mw_client_close(&c);
    }
    double t = now_s() - t0;
    printf("handshakes_per_s %.1f bytes_per_handshake %.1f datagrams_per_handshake %.2f\n", k / t,
           (double)bytes / k, (double)dgrams / k);
    return 0;
}

int main(int argc, char **argv)
{
    if (argc >= 2 && strcmp(argv[1], "handshakes") == 0) {
        return run_handshakes(argc, argv);
    }
    if (argc >= 2 && strcmp(argv[1], "gateway") == 0) {
        return run_gateway(argc, argv);
    }
    if (argc >= 2 && strcmp(argv[1], "devices") == 0) {
        return run_devices(argc, argv);
    }
    fprintf(stderr, "usage: bench-mw-load gateway|devices ... (see the source's header)\n");
    return 2;
}
