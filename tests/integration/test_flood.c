/* SPDX-License-Identifier: Apache-2.0 */
/* test_flood.c -- the gateway under a spoofed ClientHello flood, garbage and a greedy peer: real devices carry on. */
#include <criterion/criterion.h>
#include <malloc.h>
#include <stdio.h>
#include <string.h>

#include "harness.h"
#include "support/proc.h"

/* The first flight of a real device, captured on a spy endpoint. */
static size_t capture_client_hello(mwt_h *h, uint8_t *out, size_t cap)
{
    mw_transport_t spy = mwt_net_endpoint(h->net, "127.0.0.9:9");
    mw_client_config_t cfg;
    mw_client_config_init(&cfg);
    cfg.ca_file = mwt_pki_ca(&h->pki);
    cfg.cert_file = mwt_pki_crt(&h->pki, "dev-3");
    cfg.key_file = mwt_pki_key(&h->pki, "dev-3");
    cfg.gateway_name = "gateway";
    cfg.gateway = "127.0.0.9:9";
    cfg.transport = mwt_net_endpoint(h->net, "127.0.0.8:8");
    cfg.clock = mwt_clock_table(&h->clk);
    cfg.random = mwt_rng_table(&h->rng);
    mw_client_t *c = NULL;
    cr_assert_eq(mw_client_open(&cfg, &c, NULL), MW_OK);
    mw_err e = mw_client_poll(c, 0);
    cr_assert(e == MW_OK || e == MW_EAGAIN);
    mw_addr_t from;
    size_t n = 0;
    cr_assert_eq(spy.recv(spy.ctx, &from, out, cap, &n), MW_OK);
    mw_client_close(&c);
    return n;
}

static size_t heap_in_use(void)
{
    struct mallinfo2 mi = mallinfo2();
    return mi.uordblks;
}

/* @req MDR-18.8 IEC62443-CR7.1 */
Test(flood, a_spoofed_client_hello_flood_keeps_no_state_and_real_devices_complete,
     .timeout = 600)
{
    mwt_h h;
    mwt_h_init(&h, 60);
    uint8_t hello[1500];
    size_t hlen = capture_client_hello(&h, hello, sizeof hello);
    enum { DEVICES = 50, PER_DEVICE = 10, FLOOD = 20000 };
    mw_client_t *cs[DEVICES];
    for (int i = 0; i < DEVICES; i++) {
        char id[32];
        snprintf(id, sizeof id, "bed-%03d", i);
        cr_assert(mwt_pki_device(&h.pki, id));
        mw_client_config_t cfg;
        mw_client_config_init(&cfg);
        cfg.ca_file = mwt_pki_ca(&h.pki);
        cfg.cert_file = mwt_pki_crt(&h.pki, id);
        cfg.key_file = mwt_pki_key(&h.pki, id);
        cfg.gateway_name = "gateway";
        cfg.gateway = MWT_GATEWAY_ADDR;
        char addr[32];
        snprintf(addr, sizeof addr, "127.0.1.%d:5000", i + 1);
        cfg.transport = mwt_net_endpoint(h.net, addr);
        cfg.clock = mwt_clock_table(&h.clk);
        cfg.random = mwt_rng_table(&h.rng);
        cr_assert_eq(mw_client_open(&cfg, &cs[i], NULL), MW_OK);
        mwt_send_obs(cs[i], PER_DEVICE, 0);
    }
    size_t heap0 = heap_in_use();
    size_t peak_extra = 0;
    uint64_t max_peers = 0;
    int sent = 0;
    for (int round = 0; sent < FLOOD || round < 3000; round++) {
        for (int k = 0; k < 100 && sent < FLOOD; k++, sent++) {
            mw_addr_t from;
            char text[40];
            snprintf(text, sizeof text, "127.%d.%d.%d:%d", 10 + (int)(mwt_rng_next(&h.rng) % 200),
                     (int)(mwt_rng_next(&h.rng) % 256), 1 + (int)(mwt_rng_next(&h.rng) % 254),
                     1024 + (int)(mwt_rng_next(&h.rng) % 60000));
            cr_assert_eq(mw_addr_parse(text, &from), MW_OK);
            cr_assert_eq(mwt_net_inject(h.net, &from, &h.gw_tp, hello, hlen), MW_OK);
        }
        mw_err e = mw_gateway_poll(h.gw, 0);
        cr_assert(e == MW_OK || e == MW_EAGAIN);
        for (int i = 0; i < DEVICES; i++) {
            e = mw_client_poll(cs[i], 0);
            cr_assert(e == MW_OK || e == MW_EAGAIN, "device %d: %s", i, mw_strerror(e));
        }
        mw_gateway_stats_t gs;
        mw_gateway_stats(h.gw, &gs);
        if (gs.peers > max_peers)
            max_peers = gs.peers;
        size_t now = heap_in_use();
        if (now > heap0 && now - heap0 > peak_extra)
            peak_extra = now - heap0;
        bool all = true;
        for (int i = 0; i < DEVICES && all; i++)
            all = mw_client_pending(cs[i]) == 0;
        if (all && sent >= FLOOD)
            break;
        mwt_clock_advance(&h.clk, 5);
    }
    for (int i = 0; i < DEVICES; i++)
        cr_assert_eq(mw_client_pending(cs[i]), 0, "device %d was not served during the flood", i);
    cr_assert_eq(h.ngot, (size_t)DEVICES * PER_DEVICE, "every real message delivered once");
    mw_gateway_stats_t gs;
    mw_gateway_stats(h.gw, &gs);
    cr_assert_geq(gs.hello_verify_sent, FLOOD, "each spoofed hello answered statelessly");
    cr_assert_leq(max_peers, DEVICES, "no per-peer state for the flood: %llu peers",
                  (unsigned long long)max_peers);
    /* The bound: what 50 sessions cost (both ends live in this process: a
     * device's and the gateway's DTLS state, at most 512 KiB per pair while
     * handshaking), nothing per spoofed hello (the next test shows that
     * alone: under 64 KiB for 5000). */
    cr_assert_lt(peak_extra, (size_t)DEVICES * (512u << 10),
                 "heap growth %zu bytes during the flood", peak_extra);
    printf("flood: %d spoofed hellos, %llu answered statelessly, peak %llu peers, heap growth %zu "
           "bytes with %d devices connected\n",
           FLOOD, (unsigned long long)gs.hello_verify_sent, (unsigned long long)max_peers,
           peak_extra, DEVICES);
    for (int i = 0; i < DEVICES; i++)
        mw_client_close(&cs[i]);
    mwt_h_fini(&h);
}

/* @req IEC62443-CR7.1 IEC62443-CR7.2 */
Test(flood, spoofed_hellos_alone_leave_the_heap_where_it_was)
{
    mwt_h h;
    mwt_h_init(&h, 63);
    uint8_t hello[1500];
    size_t hlen = capture_client_hello(&h, hello, sizeof hello);
    mw_addr_t from;
    cr_assert_eq(mw_addr_parse("127.44.0.1:999", &from), MW_OK);
    /* Warm up (wolfSSL's lazily made tables), then measure. */
    for (int i = 0; i < 100; i++) {
        cr_assert_eq(mwt_net_inject(h.net, &from, &h.gw_tp, hello, hlen), MW_OK);
        mw_err e = mw_gateway_poll(h.gw, 0);
        cr_assert(e == MW_OK || e == MW_EAGAIN);
    }
    size_t heap0 = heap_in_use();
    for (int i = 0; i < 5000; i++) {
        cr_assert_eq(mwt_net_inject(h.net, &from, &h.gw_tp, hello, hlen), MW_OK);
        mw_err e = mw_gateway_poll(h.gw, 0);
        cr_assert(e == MW_OK || e == MW_EAGAIN);
    }
    size_t heap1 = heap_in_use();
    cr_assert_lt(heap1 > heap0 ? heap1 - heap0 : 0, (size_t)64 << 10,
                 "5000 spoofed hellos must not grow the heap: %zu -> %zu", heap0, heap1);
    mwt_h_fini(&h);
}

/* @req MDR-18.8 IEC62443-CR3.1 MDS2-TXIG */
Test(flood, garbage_and_forged_records_do_not_disturb_an_established_session)
{
    mwt_h h;
    mwt_h_init(&h, 61);
    mw_client_t *c = mwt_h_client(&h, "dev-1", "gateway", NULL);
    mwt_send_obs(c, 5, 0);
    cr_assert(mwt_h_drain(&h, 60000));
    mw_addr_t dev;
    cr_assert_eq(mw_addr_parse("127.0.0.2:40000", &dev), MW_OK);
    /* From the device's own address: random bytes, and records that look
     * like application data of epoch 1 but cannot authenticate. */
    for (int i = 0; i < 150; i++) {
        uint8_t junk[200];
        for (size_t k = 0; k < sizeof junk; k++)
            junk[k] = (uint8_t)mwt_rng_next(&h.rng);
        if (i % 2) {
            junk[0] = 23; /* application_data */
            junk[1] = 0xfe;
            junk[2] = 0xfd;
            junk[3] = 0;
            junk[4] = 1; /* epoch 1 */
            junk[11] = 0;
            junk[12] = 187;
        }
        cr_assert_eq(mwt_net_inject(h.net, &dev, &h.gw_tp, junk, sizeof junk), MW_OK);
        mw_err e = mw_gateway_poll(h.gw, 0);
        cr_assert(e == MW_OK || e == MW_EAGAIN);
    }
    mwt_send_obs(c, 5, 5);
    cr_assert(mwt_h_drain(&h, 60000), "the session carries on");
    cr_assert_eq(mwt_h_count(&h, "dev-1"), 10);
    mw_client_stats_t st;
    mw_client_stats(c, &st);
    cr_assert_eq(st.handshakes, 1, "no reconnection was needed");
    mwt_h_fini(&h);
}

/* @req MDR-18.8 IEC62443-CR7.1 */
Test(flood, a_peer_over_its_rate_limit_loses_the_excess_and_others_are_served)
{
    mwt_h h;
    mwt_h_init(&h, 62);
    mw_client_t *good = mwt_h_client(&h, "dev-2", "gateway", NULL);
    mw_client_t *c = mwt_h_client(&h, "dev-1", "gateway", NULL);
    mwt_send_obs(c, 1, 0);
    mwt_send_obs(good, 1, 0);
    cr_assert(mwt_h_drain(&h, 60000));
    mw_addr_t dev;
    cr_assert_eq(mw_addr_parse("127.0.0.2:40001", &dev), MW_OK);
    uint8_t junk[64] = {23, 0xfe, 0xfd, 0, 1};
    for (int i = 0; i < 2000; i++)
        cr_assert_eq(mwt_net_inject(h.net, &dev, &h.gw_tp, junk, sizeof junk), MW_OK);
    for (int i = 0; i < 20; i++) { /* all within the same millisecond */
        mw_err e = mw_gateway_poll(h.gw, 0);
        cr_assert(e == MW_OK || e == MW_EAGAIN);
    }
    mw_gateway_stats_t gs;
    mw_gateway_stats(h.gw, &gs);
    cr_assert_gt(gs.rate_limited, 0, "the excess of one burst is dropped before any work");
    mwt_send_obs(good, 3, 1);
    cr_assert(mwt_h_drain(&h, 60000));
    cr_assert_eq(mwt_h_count(&h, "dev-2"), 4);
    mwt_h_fini(&h);
}

/* @req IEC62443-CR7.3 MDS2-DTBK */
Test(restart, a_gateway_restarted_while_200_devices_send_delivers_every_message_once,
     .timeout = 900)
{
    mwt_h h;
    mwt_h_init(&h, 64);
    char store[300];
    snprintf(store, sizeof store, "%s/store.db", mwt_tmpdir());
    /* The path helpers return rotating buffers: keep copies for the restart. */
    char ca[300], crt[300], key[300];
    snprintf(ca, sizeof ca, "%s", mwt_pki_ca(&h.pki));
    snprintf(crt, sizeof crt, "%s", mwt_pki_crt(&h.pki, "gateway"));
    snprintf(key, sizeof key, "%s", mwt_pki_key(&h.pki, "gateway"));
    mw_gateway_config_t cfg;
    mw_gateway_config_init(&cfg);
    cfg.ca_file = ca;
    cfg.cert_file = crt;
    cfg.key_file = key;
    cfg.transport = h.gw_tp;
    cfg.clock = mwt_clock_table(&h.clk);
    cfg.sink = h.sink_fn;
    cfg.sink_ctx = &h;
    cfg.store_path = store;
    mw_gateway_destroy(&h.gw);
    cr_assert_eq(mw_gateway_create(&cfg, &h.gw, NULL), MW_OK);
    enum { DEVICES = 200, PER = 20 };
    mw_client_t *cs[DEVICES];
    for (int i = 0; i < DEVICES; i++) {
        char id[32], addr[32];
        snprintf(id, sizeof id, "bed-%03d", i);
        cr_assert(mwt_pki_device(&h.pki, id));
        mw_client_config_t cc;
        mw_client_config_init(&cc);
        cc.ca_file = mwt_pki_ca(&h.pki);
        cc.cert_file = mwt_pki_crt(&h.pki, id);
        cc.key_file = mwt_pki_key(&h.pki, id);
        cc.gateway_name = "gateway";
        cc.gateway = MWT_GATEWAY_ADDR;
        snprintf(addr, sizeof addr, "127.0.2.%d:%d", 1 + i % 250, 6000 + i);
        cc.transport = mwt_net_endpoint(h.net, addr);
        cc.clock = mwt_clock_table(&h.clk);
        cc.random = mwt_rng_table(&h.rng);
        cr_assert_eq(mw_client_open(&cc, &cs[i], NULL), MW_OK);
    }
    uint64_t restarted_at = 0;
    int made = 0;
    for (int round = 0; round < 200000; round++) {
        /* Each device measures one value every 100 ms of fake time. */
        if (round % 20 == 0 && made < PER) {
            for (int i = 0; i < DEVICES; i++)
                mwt_send_obs(cs[i], 1, made);
            made++;
        }
        if (made == PER / 2 && restarted_at == 0) {
            /* SIGTERM: drain (commit, close_notify to every device), then
             * a new process on the same store. */
            mw_gateway_destroy(&h.gw);
            mw_error_detail_t d;
            cr_assert_eq(mw_gateway_create(&cfg, &h.gw, &d), MW_OK, "restart: %s", d.reason);
            restarted_at = h.clk.now_ms;
        }
        mw_err e = mw_gateway_poll(h.gw, 0);
        cr_assert(e == MW_OK || e == MW_EAGAIN);
        bool all = made == PER;
        for (int i = 0; i < DEVICES; i++) {
            e = mw_client_poll(cs[i], 0);
            cr_assert(e == MW_OK || e == MW_EAGAIN, "device %d: %s", i, mw_strerror(e));
            all = all && mw_client_pending(cs[i]) == 0;
        }
        if (all)
            break;
        mwt_clock_advance(&h.clk, 5);
    }
    cr_assert_neq(restarted_at, 0);
    for (int i = 0; i < DEVICES; i++) {
        char id[32];
        snprintf(id, sizeof id, "bed-%03d", i);
        cr_assert_eq(mw_client_pending(cs[i]), 0, "%s still has messages", id);
        cr_assert_eq(mwt_h_count(&h, id), PER, "%s: every message exactly once", id);
    }
    uint64_t handshakes = 0;
    for (int i = 0; i < DEVICES; i++) {
        mw_client_stats_t st;
        mw_client_stats(cs[i], &st);
        handshakes += st.handshakes;
        mw_client_close(&cs[i]);
    }
    printf("restart: %d devices x %d messages, all once; %llu handshakes; back within %llu ms "
           "of fake time\n",
           DEVICES, PER, (unsigned long long)handshakes,
           (unsigned long long)(h.clk.now_ms - restarted_at));
    mwt_h_fini(&h);
}
