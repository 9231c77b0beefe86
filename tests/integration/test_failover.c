/* SPDX-License-Identifier: Apache-2.0 */
/* test_failover.c -- a device given several gateways, in memory under the fake clock: the order
 * it tries them in, the backoff between attempts, what it says about the one it left, and that
 * nothing queued or in flight is lost on the way. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

#include "harness.h"

#define NOBODY_A "127.0.0.1:6001" /* no endpoint: every datagram is lost */
#define NOBODY_B "127.0.0.1:6002"
#define SILENT   "127.0.0.1:6003" /* completes handshakes, never acknowledges */

/* What the device did, as the harness loop saw it between two steps of the fake clock. */
typedef struct watch {
    mw_client_t *c;
    uint64_t sent;        /* datagrams_sent at the last look */
    uint64_t failovers;   /* failovers at the last look */
    uint64_t first_tx_ms; /* when the very first datagram went */
    size_t n;             /* failovers recorded */
    uint64_t next_ms[8];  /* when the first datagram after it went (0: not yet) */
    uint32_t index[8];    /* the gateway it moved to */
    char reason[8][160];  /* mw_client_last_error then */
    size_t want;          /* failovers to wait for */
    char audit_peer[8][64];
    uint64_t audit_ms[8]; /* when each failover was made (the audit event is raised then) */
    size_t naudit;
    const mwt_clock *clk;
} watch;

static void on_audit(void *ctx, const mw_audit_event_t *ev)
{
    watch *w = ctx;
    if (strcmp(ev->event, MW_AUDIT_FAILOVER) != 0 || w->naudit == 8)
        return;
    snprintf(w->audit_peer[w->naudit], sizeof w->audit_peer[0], "%s", ev->peer);
    w->audit_ms[w->naudit] = w->clk->now_ms;
    w->naudit++;
}

static void look(mwt_h *h, watch *w)
{
    mw_client_stats_t st;
    mw_client_stats(w->c, &st);
    if (st.datagrams_sent > w->sent) {
        if (w->sent == 0)
            w->first_tx_ms = h->clk.now_ms;
        if (w->n > 0 && w->next_ms[w->n - 1] == 0)
            w->next_ms[w->n - 1] = h->clk.now_ms;
    }
    w->sent = st.datagrams_sent;
    if (st.failovers > w->failovers && w->n < 8) {
        cr_assert_eq(st.failovers, w->failovers + 1, "one failover per step");
        w->index[w->n] = st.gateway_index;
        mw_error_detail_t d;
        mw_client_last_error(w->c, &d);
        snprintf(w->reason[w->n], sizeof w->reason[0], "%s", d.reason);
        w->n++;
    }
    w->failovers = st.failovers;
}

static bool watched(mwt_h *h, void *arg)
{
    watch *w = arg;
    look(h, w);
    return w->n >= w->want && w->next_ms[w->want - 1] != 0;
}

static mw_client_t *open_with(mwt_h *h, watch *w, const char *const *gws, size_t n)
{
    mw_client_config_t cfg;
    mw_client_config_init(&cfg);
    cfg.ca_file = mwt_pki_ca(&h->pki);
    cfg.cert_file = mwt_pki_crt(&h->pki, "dev-1");
    cfg.key_file = mwt_pki_key(&h->pki, "dev-1");
    cfg.gateways = gws;
    cfg.n_gateways = n;
    cfg.reconnect_min_ms = 1000;
    cfg.reconnect_max_ms = 4000;
    cfg.audit = on_audit;
    cfg.audit_ctx = w;
    mw_err e;
    mw_client_t *c = mwt_h_client_cfg(h, &cfg, &e);
    cr_assert_not_null(c, "open: %s (%s)", mw_strerror(e), h->last_open_error);
    w->c = c;
    w->clk = &h->clk;
    return c;
}

/* Two gateways that cannot be reached: each attempt that gets no handshake done moves to the
 * next address, round robin (1, 0, 1, 0), after the reconnection backoff of full jitter whose
 * ceiling doubles with each failed attempt up to reconnect_max_ms; the error names the gateway
 * left and the one tried next. */
Test(failover, unreachable_gateways_are_tried_round_robin_on_the_backoff_schedule)
{
    mwt_h h;
    mwt_h_init(&h, 41);
    static const char *const gws[] = {NOBODY_A, NOBODY_B};
    watch w;
    memset(&w, 0, sizeof w);
    mw_client_t *c = open_with(&h, &w, gws, 2);
    mwt_send_obs(c, 3, 90);
    w.want = 4;
    cr_assert(mwt_h_run(&h, watched, &w, 200000), "only %zu failovers", w.n);

    static const uint32_t order[] = {1, 0, 1, 0};
    static const uint64_t cap[] = {1000, 2000, 4000, 4000};
    uint64_t started = w.first_tx_ms;
    for (size_t i = 0; i < 4; i++) {
        cr_assert_eq(w.index[i], order[i], "failover %zu went to gateway %u", i, w.index[i]);
        /* A handshake is given MWI_HANDSHAKE_MAX_MS (31 s) before it counts as unreachable. */
        cr_assert_eq(w.audit_ms[i] - started, 31000, "attempt %zu gave up after %llu ms", i,
                     (unsigned long long)(w.audit_ms[i] - started));
        uint64_t wait = w.next_ms[i] - w.audit_ms[i];
        cr_assert_leq(wait, cap[i], "wait %zu: %llu ms, ceiling %llu", i, (unsigned long long)wait,
                      (unsigned long long)cap[i]);
        const char *left = order[i] == 1 ? NOBODY_A : NOBODY_B;
        const char *next = order[i] == 1 ? NOBODY_B : NOBODY_A;
        char want[80];
        snprintf(want, sizeof want, "; next: %s", next);
        cr_assert(strstr(w.reason[i], left) != NULL && strstr(w.reason[i], want) != NULL,
                  "reason: %s", w.reason[i]);
        cr_assert_str_eq(w.audit_peer[i], left);
        started = w.next_ms[i];
    }
    /* The draws differ: not a fixed delay. */
    cr_assert(w.next_ms[0] - w.audit_ms[0] != w.next_ms[1] - w.audit_ms[1] ||
              w.next_ms[1] - w.audit_ms[1] != w.next_ms[2] - w.audit_ms[2]);
    cr_assert_eq(mw_client_pending(c), 3, "nothing is lost while no gateway answers");
    mwt_h_fini(&h);
}

/* A gateway that completes the handshake and then never acknowledges: CoAP gives up on the
 * batch, the device moves to the next gateway with a full handshake (the first one's session
 * is never offered to it), and what was in flight arrives there, each message once. The
 * session made there is the one resumed afterwards. */
Test(failover, a_gateway_that_stops_acknowledging_is_left_and_nothing_in_flight_is_lost)
{
    mwt_h h;
    mwt_h_init(&h, 42);
    mwt_fake *silent = mwt_h_fake(&h, SILENT, MWT_FAKE_SILENT);
    static const char *const gws[] = {SILENT, MWT_GATEWAY_ADDR};
    watch w;
    memset(&w, 0, sizeof w);
    mw_client_t *c = open_with(&h, &w, gws, 2);
    mwt_send_obs(c, 5, 90);
    w.want = 1;
    cr_assert(mwt_h_run(&h, watched, &w, 200000));
    mwt_fake_stats fs = mwt_fake_get_stats(silent);
    /* Its first session, and the new sessions tried beside it after two retransmissions
     * (rekey_after_retransmits), which it completes too. */
    cr_assert_geq(fs.handshakes, 2);
    cr_assert_geq(fs.requests, 5, "the batch went and was retransmitted: %llu",
                  (unsigned long long)fs.requests);
    cr_assert_eq(w.index[0], 1);
    cr_assert(strstr(w.reason[0], "the gateway at " SILENT " stopped acknowledging") != NULL &&
                  strstr(w.reason[0], "; next: " MWT_GATEWAY_ADDR) != NULL,
              "reason: %s", w.reason[0]);
    cr_assert(mwt_h_drain(&h, 60000));
    cr_assert_eq(mwt_h_count(&h, "dev-1"), 5, "each message delivered once");
    mw_client_stats_t st;
    mw_client_stats(c, &st);
    cr_assert_eq(st.failovers, 1);
    cr_assert_eq(st.gateway_index, 1);
    cr_assert_eq(st.handshakes, fs.handshakes + 1);
    cr_assert_eq(st.resumptions, 0, "no session of the first gateway offered to the second");
    cr_assert_eq(st.messages_acked, 5);
    mw_error_detail_t d;
    mw_client_last_error(c, &d);
    cr_assert_eq(d.err, MW_OK, "an acknowledgement clears the error: %s", d.reason);

    /* The device stays with the gateway that works, and resumes its session there. */
    cr_assert_eq(mw_client_reconnect(c), MW_OK);
    mwt_send_obs(c, 1, 80);
    cr_assert(mwt_h_drain(&h, 60000));
    mw_client_stats(c, &st);
    cr_assert_eq(st.resumptions, 1);
    cr_assert_eq(st.gateway_index, 1);
    cr_assert_eq(mwt_h_count(&h, "dev-1"), 6);
    cr_assert_eq(mwt_fake_get_stats(silent).handshakes, fs.handshakes);
    mwt_h_fini(&h);
}

static mw_err open_err(mwt_h *h, mw_client_config_t *cfg, char *why, size_t cap)
{
    cfg->ca_file = mwt_pki_ca(&h->pki);
    cfg->cert_file = mwt_pki_crt(&h->pki, "dev-1");
    cfg->key_file = mwt_pki_key(&h->pki, "dev-1");
    cfg->gateway_name = "gateway";
    cfg->clock = mwt_clock_table(&h->clk);
    cfg->random = mwt_rng_table(&h->rng);
    mw_client_t *c = NULL;
    mw_error_detail_t d;
    mw_err e = mw_client_open(cfg, &c, &d);
    snprintf(why, cap, "%s", d.reason);
    mw_client_close(&c);
    return e;
}

/* The list is checked whole at open: not with gateway, not empty, not too long, and each
 * address resolves (the one that does not is named). */
Test(failover, a_bad_list_is_refused_at_open_and_the_bad_address_named)
{
    mwt_h h;
    mwt_h_init(&h, 43);
    char why[200];
    static const char *const two[] = {NOBODY_A, NOBODY_B};
    mw_client_config_t cfg;

    mw_client_config_init(&cfg);
    cfg.gateway = NOBODY_A;
    cfg.gateways = two;
    cfg.n_gateways = 2;
    cr_assert_eq(open_err(&h, &cfg, why, sizeof why), MW_ECONFIG);
    cr_assert(strstr(why, "not both") != NULL, "%s", why);

    mw_client_config_init(&cfg);
    cfg.gateways = two;
    cr_assert_eq(open_err(&h, &cfg, why, sizeof why), MW_ECONFIG);
    cr_assert(strstr(why, "n_gateways") != NULL, "%s", why);

    static const char *const nine[] = {NOBODY_A, NOBODY_A, NOBODY_A, NOBODY_A, NOBODY_A,
                                       NOBODY_A, NOBODY_A, NOBODY_A, NOBODY_A};
    mw_client_config_init(&cfg);
    cfg.gateways = nine;
    cfg.n_gateways = MW_GATEWAYS_MAX + 1;
    cr_assert_eq(open_err(&h, &cfg, why, sizeof why), MW_ECONFIG);

    static const char *const bad[] = {NOBODY_A, "no-port-here"};
    mw_client_config_init(&cfg);
    cfg.gateways = bad;
    cfg.n_gateways = 2;
    cr_assert_eq(open_err(&h, &cfg, why, sizeof why), MW_EADDR);
    cr_assert(strstr(why, "'no-port-here'") != NULL && strstr(why, "gateway 2 of 2") != NULL, "%s",
              why);
    mwt_h_fini(&h);
}
