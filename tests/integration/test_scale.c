/* SPDX-License-Identifier: Apache-2.0 */
/* test_scale.c -- thousands of devices on one gateway loop: exactly-once delivery, 5,000
 * concurrent sessions, idle reaping, and the batched receive over real UDP. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "medwire/medwire.h"

#include "support/fake_clock.h"
#include "support/mem_transport.h"
#include "support/pki.h"

#define GW_ADDR "127.0.0.1:5684"
/* Sequence numbers 1..64 per device: one bit each in fleet.seen. */
#define MAX_SEQ 64

typedef struct fleet {
    mwt_pki pki;
    mwt_net *net;
    mwt_clock clk;
    mwt_rng rng;
    mw_transport_t gw_tp; /* the gateway's endpoint on the in-memory net */
    mw_gateway_t *gw;
    int n;
    mw_client_t **cs;
    uint64_t *seen;   /* per device: which sequence numbers the sink got */
    uint32_t *count;  /* per device: messages the sink got */
    uint64_t got;     /* all messages */
    uint64_t dups;    /* a (device, seq) offered twice: must stay 0 */
    uint64_t strange; /* a device id or seq the test never made: must stay 0 */
    uint64_t recv_many_calls; /* batched receives the gateway asked for */
} fleet;

static double wall_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void device_id(int i, char *out, size_t cap)
{
    snprintf(out, cap, "scale-%d", i + 1); /* as medwire-pki issue --count names them */
}

/* Counts per device and refuses nothing: a second copy of a (device, seq)
 * would be a broken exactly-once promise, counted in dups. */
static mw_err sink(void *ctx, const mw_message_t *m)
{
    fleet *f = ctx;
    char *end = NULL;
    if (strncmp(m->device_id, "scale-", 6) != 0) {
        f->strange++;
        return MW_OK;
    }
    long i = strtol(m->device_id + 6, &end, 10) - 1; /* scale-1 is device 0 */
    if (end == NULL || *end != '\0' || i < 0 || i >= f->n || m->seq == 0 || m->seq > MAX_SEQ) {
        f->strange++;
        return MW_OK;
    }
    uint64_t bit = 1ull << (m->seq - 1);
    if (f->seen[i] & bit) {
        f->dups++;
        return MW_OK;
    }
    f->seen[i] |= bit;
    f->count[i]++;
    f->got++;
    return MW_OK;
}

/* The gateway's endpoint seen through a batched receive built on its recv, so
 * that the gateway's recv_many path runs here too, deterministically. */
static mw_err batched_recv(void *ctx, mw_datagram_t *slots, size_t max, size_t *out_n)
{
    fleet *f = ctx;
    size_t n = 0;
    *out_n = 0;
    f->recv_many_calls++;
    while (n < max) {
        mw_err e =
            f->gw_tp.recv(f->gw_tp.ctx, &slots[n].from, slots[n].buf, slots[n].cap, &slots[n].len);
        if (e == MW_EAGAIN)
            break;
        if (e != MW_OK)
            return e;
        n++;
    }
    *out_n = n;
    return n ? MW_OK : MW_EAGAIN;
}

static mw_err batched_send(void *ctx, const mw_addr_t *to, const uint8_t *buf, size_t len)
{
    fleet *f = ctx;
    return f->gw_tp.send(f->gw_tp.ctx, to, buf, len);
}

static mw_err single_recv(void *ctx, mw_addr_t *from, uint8_t *buf, size_t cap, size_t *len)
{
    fleet *f = ctx;
    return f->gw_tp.recv(f->gw_tp.ctx, from, buf, cap, len);
}

/* Certificates (made once per build tree), the net, the gateway; no devices yet. */
static void fleet_init(fleet *f, int n, uint64_t seed, uint64_t idle_timeout_ms)
{
    memset(f, 0, sizeof *f);
    cr_assert(mwt_pki_fleet(&f->pki), "medwire-pki must make the fleet's PKI");
    double t0 = wall_s();
    cr_assert(mwt_pki_devices(&f->pki, "scale", n), "%d device certificates", n);
    double t1 = wall_s();
    if (t1 - t0 > 1.0)
        printf("scale: %d device certificates issued in %.1f s\n", n, t1 - t0);
    f->n = n;
    f->net = mwt_net_create(seed);
    f->clk.now_ms = 1000;
    f->clk.wall_ms = 1790000000000ull;
    f->rng.state = seed * 7919u + 1;
    f->gw_tp = mwt_net_endpoint(f->net, GW_ADDR);
    f->cs = calloc((size_t)n, sizeof *f->cs);
    f->seen = calloc((size_t)n, sizeof *f->seen);
    f->count = calloc((size_t)n, sizeof *f->count);
    cr_assert(f->cs && f->seen && f->count);

    mw_gateway_config_t cfg;
    mw_gateway_config_init(&cfg);
    cfg.ca_file = mwt_pki_ca(&f->pki);
    cfg.cert_file = mwt_pki_crt(&f->pki, "gateway");
    cfg.key_file = mwt_pki_key(&f->pki, "gateway");
    cfg.transport.ctx = f;
    cfg.transport.send = batched_send;
    cfg.transport.recv = single_recv;
    cfg.transport.recv_many = batched_recv;
    cfg.transport.fd = -1;
    cfg.clock = mwt_clock_table(&f->clk);
    cfg.sink = sink;
    cfg.sink_ctx = f;
    cfg.max_peers = 8192;
    cfg.idle_timeout_ms = idle_timeout_ms;
    mw_error_detail_t d;
    cr_assert_eq(mw_gateway_create(&cfg, &f->gw, &d), MW_OK, "gateway: %s", d.reason);
}

static void fleet_open(fleet *f, int i)
{
    char id[32], addr[40];
    device_id(i, id, sizeof id);
    mw_client_config_t cc;
    mw_client_config_init(&cc);
    cc.ca_file = mwt_pki_ca(&f->pki);
    cc.cert_file = mwt_pki_crt(&f->pki, id);
    cc.key_file = mwt_pki_key(&f->pki, id);
    cc.gateway_name = "gateway";
    cc.gateway = GW_ADDR;
    /* One address per device, as a real fleet has. */
    snprintf(addr, sizeof addr, "127.1.%d.%d:%d", i / 250, 1 + i % 250, 5000 + i % 7);
    cc.transport = mwt_net_endpoint(f->net, addr);
    cc.clock = mwt_clock_table(&f->clk);
    cc.random = mwt_rng_table(&f->rng);
    cc.queue_capacity = 8; /* thousands of clients in one process */
    mw_error_detail_t d;
    cr_assert_eq(mw_client_open(&cc, &f->cs[i], &d), MW_OK, "%s: %s", id, d.reason);
}

static void fleet_fini(fleet *f)
{
    for (int i = 0; i < f->n; i++)
        mw_client_close(&f->cs[i]);
    mw_gateway_destroy(&f->gw);
    mwt_net_destroy(f->net);
    free(f->cs);
    free(f->seen);
    free(f->count);
}

static void send_obs(mw_client_t *c, int k, int base)
{
    for (int j = 0; j < k; j++) {
        mw_observation_t o;
        memset(&o, 0, sizeof o);
        o.mdc_code = MW_MDC_PULS_OXIM_SAT_O2;
        o.mantissa = base + j;
        snprintf(o.unit, sizeof o.unit, "%%");
        o.status = MW_MEAS_VALID;
        cr_assert_eq(mw_client_send_observation(c, &o, NULL), MW_OK);
    }
}

/* One turn of the loop: the gateway, then every device. Returns whether anything happened. */
static bool fleet_turn(fleet *f, bool clients)
{
    mw_err e = mw_gateway_poll(f->gw, 0);
    cr_assert(e == MW_OK || e == MW_EAGAIN, "gateway: %s", mw_strerror(e));
    bool did = e == MW_OK;
    for (int i = 0; clients && i < f->n; i++) {
        if (f->cs[i] == NULL)
            continue;
        e = mw_client_poll(f->cs[i], 0);
        cr_assert(e == MW_OK || e == MW_EAGAIN, "device %d: %s", i, mw_strerror(e));
        did = did || e == MW_OK;
    }
    return did;
}

/* Quiet: the fake clock jumps to the next timer (1 ms to 1 s). */
static void fleet_idle(fleet *f)
{
    uint64_t step = UINT64_MAX;
    int t = mw_gateway_next_timeout_ms(f->gw);
    if (t >= 0)
        step = (uint64_t)t;
    for (int i = 0; i < f->n; i++) {
        t = f->cs[i] ? mw_client_next_timeout_ms(f->cs[i]) : -1;
        if (t >= 0 && (uint64_t)t < step)
            step = (uint64_t)t;
    }
    step = step == 0 ? 1 : step > 1000 ? 1000 : step;
    mwt_clock_advance(&f->clk, step);
}

static bool all_sessions_up(fleet *f)
{
    mw_gateway_stats_t gs;
    mw_gateway_stats(f->gw, &gs);
    if (gs.sessions != (uint64_t)f->n)
        return false;
    for (int i = 0; i < f->n; i++) {
        mw_client_stats_t st;
        mw_client_stats(f->cs[i], &st);
        if (!st.connected)
            return false;
    }
    return true;
}

static bool all_acked(fleet *f)
{
    for (int i = 0; i < f->n; i++)
        if (mw_client_pending(f->cs[i]) > 0)
            return false;
    return true;
}

/* Runs the loop until @p done, at most @p max_ms of fake time. */
static bool fleet_run(fleet *f, bool (*done)(fleet *), uint64_t max_ms)
{
    uint64_t end = f->clk.now_ms + max_ms;
    while (f->clk.now_ms <= end) {
        if (done(f))
            return true;
        if (!fleet_turn(f, true) && mwt_net_in_flight(f->net) == 0)
            fleet_idle(f);
    }
    return done(f);
}

static void expect_each(fleet *f, uint32_t per)
{
    cr_assert_eq(f->strange, 0);
    cr_assert_eq(f->dups, 0, "%llu messages offered twice", (unsigned long long)f->dups);
    for (int i = 0; i < f->n; i++)
        cr_assert_eq(f->count[i], per, "device %d: %u messages, not %u", i, f->count[i], per);
    cr_assert_eq(f->got, (uint64_t)f->n * per);
}

Test(scale, two_thousand_devices_each_deliver_every_observation_exactly_once, .timeout = 900)
{
    enum { N = 2000, PER = 3 };
    fleet f;
    fleet_init(&f, N, 2000, 0);
    double t0 = wall_s();
    for (int i = 0; i < N; i++) {
        fleet_open(&f, i);
        send_obs(f.cs[i], PER, 90);
    }
    double t1 = wall_s();
    cr_assert(fleet_run(&f, all_acked, 600000), "every device acknowledged within 10 min");
    double t2 = wall_s();
    expect_each(&f, PER);
    mw_gateway_stats_t gs;
    mw_gateway_stats(f.gw, &gs);
    cr_assert_eq(gs.messages_delivered, (uint64_t)N * PER);
    cr_assert_eq(gs.sessions, (uint64_t)N);
    uint64_t hs = 0;
    for (int i = 0; i < N; i++) {
        mw_client_stats_t st;
        mw_client_stats(f.cs[i], &st);
        hs += st.handshakes;
    }
    printf("scale: %d devices x %d observations, each once; %llu handshakes (%llu started at "
           "the gateway, %llu ClientHellos over the handshake limit), %.2f s to open the "
           "clients, %.2f s of wall time to deliver (%.2f ms per device, both ends)\n",
           N, PER, (unsigned long long)hs, (unsigned long long)gs.handshakes_started,
           (unsigned long long)gs.peer_limit_drops, t1 - t0, t2 - t1, (t2 - t1) * 1000.0 / N);
    fleet_fini(&f);
}

/* What the default suite runs of reaping: a few devices, the rule exactly. */
Test(scale, idle_sessions_are_reaped_and_their_devices_reconnect_and_deliver)
{
    enum { N = 6 };
    fleet f;
    fleet_init(&f, N, 6, 30000);
    for (int i = 0; i < N; i++) {
        fleet_open(&f, i);
        send_obs(f.cs[i], 1, 0);
    }
    cr_assert(fleet_run(&f, all_acked, 60000));
    mw_gateway_stats_t gs;
    mw_gateway_stats(f.gw, &gs);
    cr_assert_eq(gs.sessions, N);
    /* Devices 0-2 keep talking every 10 s; 3-5 fall silent. */
    uint64_t start = f.clk.now_ms;
    int base = 1;
    while (f.clk.now_ms - start < 45000) {
        if ((f.clk.now_ms - start) / 10000 >= (uint64_t)base) {
            for (int i = 0; i < 3; i++)
                send_obs(f.cs[i], 1, base);
            base++;
        }
        if (!fleet_turn(&f, true))
            mwt_clock_advance(&f.clk, 50);
    }
    mw_gateway_stats(f.gw, &gs);
    cr_assert_eq(gs.idle_reaped, 3, "the three silent sessions, and only those");
    cr_assert_eq(gs.sessions, 3, "the three talking; the reaped ones have nothing to send");
    for (int i = 0; i < N; i++) {
        mw_client_stats_t st;
        mw_client_stats(f.cs[i], &st);
        /* The talking ones were never reaped; the silent ones learnt of the close from the
         * close_notify and do not call back while they have nothing to say. */
        cr_assert_eq(st.handshakes, 1, "device %d: %llu handshakes", i,
                     (unsigned long long)st.handshakes);
        cr_assert_eq(st.connected, i < 3, "device %d", i);
    }
    /* The reaped ones deliver again: they reconnect when they have something to send. */
    for (int i = 3; i < N; i++)
        send_obs(f.cs[i], 2, 10);
    cr_assert(fleet_run(&f, all_acked, 60000));
    for (int i = 0; i < 3; i++)
        cr_assert_eq(f.count[i], (uint32_t)base, "device %d", i);
    for (int i = 3; i < N; i++)
        cr_assert_eq(f.count[i], 3u, "device %d delivered after it was reaped", i);
    cr_assert_eq(f.dups, 0);
    fleet_fini(&f);
}

Test(scale, silent_sessions_are_gone_once_the_idle_timeout_passes)
{
    fleet f;
    fleet_init(&f, 3, 8, 30000);
    for (int i = 0; i < 3; i++) {
        fleet_open(&f, i);
        send_obs(f.cs[i], 1, 0);
    }
    cr_assert(fleet_run(&f, all_acked, 60000));
    uint64_t quiet = f.clk.now_ms;
    mw_gateway_stats_t gs;
    /* Only the gateway runs: the devices stay silent. */
    while (f.clk.now_ms - quiet < 29000) {
        mwt_clock_advance(&f.clk, 250);
        (void)fleet_turn(&f, false);
    }
    mw_gateway_stats(f.gw, &gs);
    cr_assert_eq(gs.sessions, 3, "not before the timeout");
    while (f.clk.now_ms - quiet < 32000) {
        mwt_clock_advance(&f.clk, 250);
        (void)fleet_turn(&f, false);
    }
    mw_gateway_stats(f.gw, &gs);
    cr_assert_eq(gs.sessions, 0);
    cr_assert_eq(gs.peers, 0);
    cr_assert_eq(gs.idle_reaped, 3);
    fleet_fini(&f);
}

Test(scale, no_session_is_reaped_when_the_idle_timeout_is_zero)
{
    fleet f;
    fleet_init(&f, 2, 7, 0);
    for (int i = 0; i < 2; i++) {
        fleet_open(&f, i);
        send_obs(f.cs[i], 1, 0);
    }
    cr_assert(fleet_run(&f, all_acked, 60000));
    for (int k = 0; k < 30; k++) { /* an hour of silence, the gateway polled each 2 min */
        mwt_clock_advance(&f.clk, 120000);
        (void)fleet_turn(&f, false);
    }
    mw_gateway_stats_t gs;
    mw_gateway_stats(f.gw, &gs);
    cr_assert_eq(gs.sessions, 2);
    cr_assert_eq(gs.idle_reaped, 0);
    fleet_fini(&f);
}

/* Each batched receive is a system call: one that came back short emptied the socket, so the
 * gateway does not ask again in the same poll; a full one may have left more, so it does. */
Test(scale, a_short_batch_ends_the_receive_and_a_full_one_asks_again)
{
    fleet f;
    fleet_init(&f, 1, 8, 0);
    mw_addr_t from;
    cr_assert_eq(mw_addr_parse("127.9.9.9:999", &from), MW_OK);
    static const uint8_t noise[] = {23, 0xfe, 0xfd, 0, 1}; /* no peer: dropped on arrival */
    /* datagrams waiting -> batched receives one poll makes (32 per batch) */
    static const struct {
        int waiting, calls;
    } cases[] = {{1, 1}, {31, 1}, {40, 2}, {64, 3}};
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        for (int i = 0; i < cases[k].waiting; i++)
            cr_assert_eq(mwt_net_inject(f.net, &from, &f.gw_tp, noise, sizeof noise), MW_OK);
        mw_gateway_stats_t before, after;
        mw_gateway_stats(f.gw, &before);
        f.recv_many_calls = 0;
        mw_err e = mw_gateway_poll(f.gw, 0);
        cr_assert(e == MW_OK || e == MW_EAGAIN);
        mw_gateway_stats(f.gw, &after);
        cr_assert_eq(after.datagrams_received - before.datagrams_received,
                     (uint64_t)cases[k].waiting, "every waiting datagram read in one poll");
        cr_assert_eq(f.recv_many_calls, (uint64_t)cases[k].calls, "%d waiting: %llu calls",
                     cases[k].waiting, (unsigned long long)f.recv_many_calls);
    }
    fleet_fini(&f);
}

/* Labelled "scale" in CMake: 10,000 handshakes, out of the default suite's budget. */
Test(scale5k, five_thousand_sessions_at_once_then_reaped_and_back, .timeout = 1800)
{
    if (getenv("MW_SCALE_5K") == NULL)
        cr_skip_test("run as test_scale_5k (ctest -L scale)");
    enum { N = 5000 };
    fleet f;
    fleet_init(&f, N, 5000, 10u * 60u * 1000u);
    double t0 = wall_s();
    for (int i = 0; i < N; i++)
        fleet_open(&f, i);
    double t1 = wall_s();
    cr_assert(fleet_run(&f, all_sessions_up, 600000), "5000 sessions established");
    double t2 = wall_s();
    mw_gateway_stats_t gs;
    mw_gateway_stats(f.gw, &gs);
    cr_assert_eq(gs.sessions, N);
    cr_assert_eq(gs.peers, N);
    uint64_t completed = gs.handshakes_completed;
    printf("scale: %d sessions established at once: %.1f s to open the clients, %.1f s of wall "
           "time for the handshakes (%.2f ms per full handshake, both ends)\n",
           N, t1 - t0, t2 - t1, (t2 - t1) * 1000.0 / N);

    /* All 5000 at once: a message from each still gets through, on the same session. */
    for (int i = 0; i < N; i++)
        send_obs(f.cs[i], 1, 0);
    cr_assert(fleet_run(&f, all_acked, 600000));
    expect_each(&f, 1);
    mw_gateway_stats(f.gw, &gs);
    cr_assert_eq(gs.sessions, N);
    cr_assert_eq(gs.handshakes_completed, completed, "no session had to be made again");

    /* Ten minutes of silence (the gateway alone runs): every session is reaped. */
    uint64_t quiet = f.clk.now_ms;
    while (f.clk.now_ms - quiet < 10u * 60u * 1000u + 2000u) {
        mwt_clock_advance(&f.clk, 500);
        (void)fleet_turn(&f, false);
    }
    mw_gateway_stats(f.gw, &gs);
    cr_assert_eq(gs.sessions, 0);
    cr_assert_eq(gs.peers, 0);
    cr_assert_eq(gs.idle_reaped, N);

    /* They come back and deliver. */
    double t3 = wall_s();
    for (int i = 0; i < N; i++)
        send_obs(f.cs[i], 1, 1);
    cr_assert(fleet_run(&f, all_acked, 600000));
    double t4 = wall_s();
    expect_each(&f, 2);
    uint64_t resumed = 0;
    for (int i = 0; i < N; i++) {
        mw_client_stats_t st;
        mw_client_stats(f.cs[i], &st);
        resumed += st.resumptions;
    }
    printf("scale: %d reaped sessions back and delivering in %.1f s (%llu resumed by session "
           "ID)\n",
           N, t4 - t3, (unsigned long long)resumed);
    fleet_fini(&f);
}

/* Over real loopback UDP, so through recvmmsg: every datagram the devices send is received. */
Test(scale, the_batched_receive_over_real_udp_delivers_every_datagram, .timeout = 120)
{
    enum { N = 24, PER = 5 };
    mwt_pki pki;
    cr_assert(mwt_pki_fleet(&pki));
    mw_gateway_config_t cfg;
    mw_gateway_config_init(&cfg);
    char ca[300], crt[300], key[300];
    snprintf(ca, sizeof ca, "%s", mwt_pki_ca(&pki));
    snprintf(crt, sizeof crt, "%s", mwt_pki_crt(&pki, "gateway"));
    snprintf(key, sizeof key, "%s", mwt_pki_key(&pki, "gateway"));
    cfg.ca_file = ca;
    cfg.cert_file = crt;
    cfg.key_file = key;
    cfg.listen = "127.0.0.1:0";
    fleet f;
    memset(&f, 0, sizeof f);
    f.n = N;
    f.seen = calloc(N, sizeof *f.seen);
    f.count = calloc(N, sizeof *f.count);
    cfg.sink = sink;
    cfg.sink_ctx = &f;
    mw_gateway_t *gw = NULL;
    mw_error_detail_t d;
    cr_assert_eq(mw_gateway_create(&cfg, &gw, &d), MW_OK, "%s", d.reason);
    mw_addr_t gw_addr;
    cr_assert_eq(mw_gateway_local_addr(gw, &gw_addr), MW_OK);
    char gw_text[64];
    cr_assert_eq(mw_addr_format(&gw_addr, gw_text, sizeof gw_text), MW_OK);

    mw_client_t *cs[N];
    for (int i = 0; i < N; i++) {
        char id[32];
        device_id(i, id, sizeof id);
        cr_assert(mwt_pki_device(&pki, id));
        mw_client_config_t cc;
        mw_client_config_init(&cc);
        cc.ca_file = mwt_pki_ca(&pki);
        cc.cert_file = mwt_pki_crt(&pki, id);
        cc.key_file = mwt_pki_key(&pki, id);
        cc.gateway_name = "gateway";
        cc.gateway = gw_text;
        cc.bind = "127.0.0.1:0";
        cr_assert_eq(mw_client_open(&cc, &cs[i], &d), MW_OK, "%s", d.reason);
        send_obs(cs[i], PER, 0);
    }
    mw_clock_t real = mw_clock_system();
    uint64_t end = real.now_ms(real.ctx) + 90000;
    bool all = false;
    while (!all && real.now_ms(real.ctx) < end) {
        mw_err e = mw_gateway_poll(gw, 5);
        cr_assert(e == MW_OK || e == MW_EAGAIN, "%s", mw_strerror(e));
        all = true;
        for (int i = 0; i < N; i++) {
            e = mw_client_poll(cs[i], 0);
            cr_assert(e == MW_OK || e == MW_EAGAIN, "device %d: %s", i, mw_strerror(e));
            all = all && mw_client_pending(cs[i]) == 0;
        }
    }
    cr_assert(all, "every device acknowledged");
    expect_each(&f, PER);
    /* Let the last datagrams in flight land, then compare both ends' counts. */
    for (int k = 0; k < 20; k++) {
        mw_err e = mw_gateway_poll(gw, 5);
        cr_assert(e == MW_OK || e == MW_EAGAIN);
    }
    uint64_t sent = 0;
    for (int i = 0; i < N; i++) {
        mw_client_stats_t st;
        mw_client_stats(cs[i], &st);
        sent += st.datagrams_sent;
    }
    mw_gateway_stats_t gs;
    mw_gateway_stats(gw, &gs);
    cr_assert_eq(gs.datagrams_received, sent, "the gateway received %llu of %llu datagrams",
                 (unsigned long long)gs.datagrams_received, (unsigned long long)sent);
    for (int i = 0; i < N; i++)
        mw_client_close(&cs[i]);
    mw_gateway_destroy(&gw);
    free(f.seen);
    free(f.count);
}
