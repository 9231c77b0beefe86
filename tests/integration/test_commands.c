/* SPDX-License-Identifier: Apache-2.0 */
/* test_commands.c -- commands from gateway to device: delivery in Acks, results, replay and expiry
 * refused. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

#include "harness.h"

#include "session/command.h"

struct seen {
    int calls;
    mw_command_t last;
};

static mw_command_status on_command(void *ctx, const mw_command_t *cmd)
{
    struct seen *s = ctx;
    s->calls++;
    s->last = *cmd;
    return MW_CMD_DONE;
}

static void device_audit(void *ctx, const mw_audit_event_t *ev);

static mw_client_t *client_holding(mwt_h *h, struct seen *s, const char *port, uint32_t capacity)
{
    mw_client_config_t cfg;
    mw_client_config_init(&cfg);
    cfg.queue_capacity = capacity;
    cfg.ca_file = mwt_pki_ca(&h->pki);
    cfg.cert_file = mwt_pki_crt(&h->pki, "dev-1");
    cfg.key_file = mwt_pki_key(&h->pki, "dev-1");
    cfg.gateway_name = "gateway";
    cfg.gateway = MWT_GATEWAY_ADDR;
    char addr[40];
    snprintf(addr, sizeof addr, "127.0.0.2:%s", port);
    cfg.transport = mwt_net_endpoint(h->net, addr);
    cfg.clock = mwt_clock_table(&h->clk);
    cfg.random = mwt_rng_table(&h->rng);
    cfg.on_command = on_command;
    cfg.on_command_ctx = s;
    cfg.audit = device_audit;
    mw_client_t *c = NULL;
    cr_assert_eq(mw_client_open(&cfg, &c, NULL), MW_OK);
    h->clients[h->nclients++] = c;
    return c;
}

static mw_client_t *client_with_commands(mwt_h *h, struct seen *s, const char *port)
{
    return client_holding(h, s, port, 256);
}

static const mw_message_t *find_result(const mwt_h *h, uint64_t id)
{
    for (size_t i = 0; i < h->ngot; i++)
        if (h->got[i].type == MW_MSG_COMMAND_RESULT && h->got[i].u.command_result.command_id == id)
            return &h->got[i];
    return NULL;
}

static size_t count_results(const mwt_h *h, uint64_t id)
{
    size_t n = 0;
    for (size_t i = 0; i < h->ngot; i++)
        n += h->got[i].type == MW_MSG_COMMAND_RESULT && h->got[i].u.command_result.command_id == id;
    return n;
}

Test(commands, set_interval_reaches_the_device_and_its_result_reaches_the_gateway_once)
{
    mwt_h h;
    mwt_h_init(&h, 40);
    struct seen s = {0};
    mw_client_t *c = client_with_commands(&h, &s, "45000");
    mwt_send_obs(c, 2, 0);
    cr_assert(mwt_h_drain(&h, 60000));
    mw_command_t cmd = {.kind = MW_CMD_SET_INTERVAL, .u.interval_ms = 5000};
    uint64_t id = 0;
    cr_assert_eq(mw_gateway_send_command(h.gw, "dev-1", &cmd, &id), MW_OK);
    cr_assert_eq(id >> 16, h.clk.wall_ms + h.clk.now_ms,
                 "the id carries the gateway's wall clock, not a counter from 1");
    /* Commands ride in Acks: the device's next batch brings it. */
    for (int i = 0; i < 4; i++) {
        mwt_send_obs(c, 1, 10 + i);
        cr_assert(mwt_h_drain(&h, 60000));
    }
    cr_assert_eq(s.calls, 1, "run once, though repeated in Acks until answered");
    cr_assert_eq(s.last.kind, MW_CMD_SET_INTERVAL);
    cr_assert_eq(s.last.u.interval_ms, 5000);
    const mw_message_t *r = find_result(&h, id);
    cr_assert_not_null(r, "the result reached the gateway's sink");
    cr_assert_eq(r->u.command_result.status, MW_CMD_DONE);
    cr_assert_eq(count_results(&h, id), 1);
    mwt_h_fini(&h);
}

Test(commands, rotate_keys_is_run_by_the_sdk)
{
    mwt_h h;
    mwt_h_init(&h, 41);
    struct seen s = {0};
    mw_client_t *c = client_with_commands(&h, &s, "45001");
    mwt_send_obs(c, 1, 0);
    cr_assert(mwt_h_drain(&h, 60000));
    mw_command_t cmd = {.kind = MW_CMD_ROTATE_KEYS};
    uint64_t id = 0;
    cr_assert_eq(mw_gateway_send_command(h.gw, "dev-1", &cmd, &id), MW_OK);
    for (int i = 0; i < 4; i++) {
        mwt_send_obs(c, 1, 10 + i);
        cr_assert(mwt_h_drain(&h, 60000));
    }
    mw_client_stats_t st;
    mw_client_stats(c, &st);
    cr_assert_eq(st.rotations, 1);
    cr_assert_eq(s.calls, 0, "the application is not asked");
    cr_assert_not_null(find_result(&h, id));
    mwt_h_fini(&h);
}

struct wait_result {
    struct seen *s;
    uint64_t id;
};

static bool ran(mwt_h *h, void *arg)
{
    (void)h;
    return ((struct seen *)arg)->calls > 0;
}

static bool result_in(mwt_h *h, void *arg)
{
    return find_result(h, *(uint64_t *)arg) != NULL;
}

Test(commands, a_connected_device_runs_a_command_within_a_second_without_sending_anything)
{
    mwt_h h;
    mwt_h_init(&h, 43);
    struct seen s = {0};
    mw_client_t *c = client_with_commands(&h, &s, "45003");
    mwt_send_obs(c, 1, 0);
    cr_assert(mwt_h_drain(&h, 60000));
    /* The device is connected and has nothing to send: the command cannot ride in an Ack. */
    uint64_t t0 = h.clk.now_ms;
    mw_command_t cmd = {.kind = MW_CMD_ACK_ALARM, .u.alarm_seq = 1};
    uint64_t id = 0;
    cr_assert_eq(mw_gateway_send_command(h.gw, "dev-1", &cmd, &id), MW_OK);
    cr_assert(mwt_h_run(&h, ran, &s, 1000), "run within a second of fake time");
    cr_log_info("command run %llu ms after it was sent", (unsigned long long)(h.clk.now_ms - t0));
    cr_assert_eq(s.calls, 1);
    cr_assert_eq(s.last.id, id);
    cr_assert(mwt_h_run(&h, result_in, &id, 10000), "its result reaches the gateway");
    cr_assert_eq(count_results(&h, id), 1);
    /* Repeated in the Acks that follow, the command is not run again. */
    mwt_send_obs(c, 2, 1);
    cr_assert(mwt_h_drain(&h, 60000));
    cr_assert_eq(s.calls, 1);
    mwt_h_fini(&h);
}

/* A device clock an hour ahead of the gateway's: every command looks expired to it. */
static uint64_t skew_now(void *ctx)
{
    return ((mwt_h *)ctx)->clk.now_ms;
}

static uint64_t skew_wall(void *ctx, int *synced)
{
    mwt_h *h = ctx;
    *synced = 1;
    return h->clk.wall_ms + h->clk.now_ms + 3600000u;
}

static int refusals;
static char refusal_reason[200];

static void device_audit(void *ctx, const mw_audit_event_t *ev)
{
    (void)ctx;
    if (strcmp(ev->event, MW_AUDIT_COMMAND_REFUSED) == 0) {
        refusals++;
        snprintf(refusal_reason, sizeof refusal_reason, "%s", ev->reason);
    }
}

/* @req IEC62443-CR2.8 MDS2-AUDT */
Test(commands, an_expired_command_is_refused_with_an_audit_line_and_a_result)
{
    mwt_h h;
    mwt_h_init(&h, 42);
    struct seen s = {0};
    mw_client_config_t cfg;
    mw_client_config_init(&cfg);
    cfg.ca_file = mwt_pki_ca(&h.pki);
    cfg.cert_file = mwt_pki_crt(&h.pki, "dev-1");
    cfg.key_file = mwt_pki_key(&h.pki, "dev-1");
    cfg.gateway_name = "gateway";
    cfg.gateway = MWT_GATEWAY_ADDR;
    cfg.transport = mwt_net_endpoint(h.net, "127.0.0.2:45002");
    cfg.clock = (mw_clock_t){.ctx = &h, .now_ms = skew_now, .wall_ms = skew_wall};
    cfg.random = mwt_rng_table(&h.rng);
    cfg.on_command = on_command;
    cfg.on_command_ctx = &s;
    cfg.audit = device_audit;
    mw_client_t *c = NULL;
    cr_assert_eq(mw_client_open(&cfg, &c, NULL), MW_OK);
    h.clients[h.nclients++] = c;
    refusals = 0;
    mwt_send_obs(c, 1, 0);
    cr_assert(mwt_h_drain(&h, 60000));
    mw_command_t cmd = {.kind = MW_CMD_SET_INTERVAL, .u.interval_ms = 100};
    uint64_t id;
    cr_assert_eq(mw_gateway_send_command(h.gw, "dev-1", &cmd, &id), MW_OK);
    for (int i = 0; i < 4; i++) {
        mwt_send_obs(c, 1, 1 + i);
        cr_assert(mwt_h_drain(&h, 60000));
    }
    cr_assert_eq(s.calls, 0, "an expired command is never run");
    cr_assert_eq(refusals, 1, "one audit line, not one per repeat");
    cr_assert(strstr(refusal_reason, "expired") != NULL, "%s", refusal_reason);
    const mw_message_t *r = find_result(&h, id);
    cr_assert_not_null(r);
    cr_assert_eq(r->u.command_result.status, MW_CMD_REFUSED_EXPIRED);
    mwt_h_fini(&h);
}

struct results {
    const uint64_t *ids;
    size_t n;
};

static bool all_results_in(mwt_h *h, void *arg)
{
    const struct results *r = arg;
    for (size_t i = 0; i < r->n; i++)
        if (find_result(h, r->ids[i]) == NULL)
            return false;
    return true;
}

/* Sends @p cmds (at most 4: the gateway's pending limit) and waits for every result. */
static void send_and_wait(mwt_h *h, const mw_command_t *cmds, size_t n, uint64_t *ids)
{
    for (size_t i = 0; i < n; i++)
        cr_assert_eq(mw_gateway_send_command(h->gw, "dev-1", &cmds[i], &ids[i]), MW_OK);
    struct results r = {.ids = ids, .n = n};
    cr_assert(mwt_h_run(h, all_results_in, &r, 60000), "every command is answered");
}

static void assert_refused(const mwt_h *h, uint64_t id, const char *detail)
{
    const mw_message_t *r = find_result(h, id);
    cr_assert_eq(r->u.command_result.status, MW_CMD_FAILED, "%s", detail);
    cr_assert_str_eq(r->u.command_result.detail, detail);
    cr_assert_eq(count_results(h, id), 1);
}

/* @req MDR-18.8 IEC62443-CR3.5 */
Test(commands, an_argument_out_of_its_range_is_refused_with_the_range_and_never_run)
{
    mwt_h h;
    mwt_h_init(&h, 44);
    struct seen s = {0};
    mw_client_t *c = client_with_commands(&h, &s, "45004");
    refusals = 0;
    mwt_send_obs(c, 2, 0); /* numbers 1 and 2; the results below take the next ones */
    cr_assert(mwt_h_drain(&h, 60000));
    mw_command_t bad[] = {
        {.kind = MW_CMD_SET_INTERVAL, .u.interval_ms = 0},
        {.kind = MW_CMD_SET_INTERVAL, .u.interval_ms = UINT32_MAX},
        {.kind = MW_CMD_SET_INTERVAL, .u.interval_ms = MW_CMD_INTERVAL_MAX_MS + 1},
        {.kind = MW_CMD_ACK_ALARM, .u.alarm_seq = 1000},
    };
    uint64_t ids[4];
    send_and_wait(&h, bad, 4, ids);
    cr_assert_eq(s.calls, 0, "the application never sees an argument out of range");
    assert_refused(&h, ids[0], "interval_ms 0 not in 1..86400000");
    assert_refused(&h, ids[1], "interval_ms 4294967295 not in 1..86400000");
    assert_refused(&h, ids[2], "interval_ms 86400001 not in 1..86400000");
    assert_refused(&h, ids[3], "alarm_seq 1000 never issued");
    cr_assert_eq(refusals, 4, "each refusal is audited");
    cr_assert(strstr(refusal_reason, "never issued") != NULL, "%s", refusal_reason);
    /* The bounds themselves are in range. */
    mw_command_t good[] = {
        {.kind = MW_CMD_SET_INTERVAL, .u.interval_ms = MW_CMD_INTERVAL_MIN_MS},
        {.kind = MW_CMD_SET_INTERVAL, .u.interval_ms = MW_CMD_INTERVAL_MAX_MS},
        {.kind = MW_CMD_ACK_ALARM, .u.alarm_seq = 2},
    };
    send_and_wait(&h, good, 3, ids);
    cr_assert_eq(s.calls, 3);
    for (int i = 0; i < 3; i++)
        cr_assert_eq(find_result(&h, ids[i])->u.command_result.status, MW_CMD_DONE);
    mwt_h_fini(&h);
}

/* @req MDR-18.8 IEC62443-CR7.2 */
Test(commands, commands_beyond_the_share_of_the_queue_wait_and_each_runs_once_when_sent_again)
{
    mwt_h h;
    mwt_h_init(&h, 45);
    struct seen s = {0};
    /* Eight places: command results may hold one of them at a time. */
    mw_client_t *c = client_holding(&h, &s, "45005", 8);
    mwt_send_obs(c, 1, 0);
    cr_assert(mwt_h_drain(&h, 60000));
    mw_command_t cmds[4];
    for (int i = 0; i < 4; i++)
        cmds[i] = (mw_command_t){.kind = MW_CMD_SET_INTERVAL, .u.interval_ms = 1000u + (uint32_t)i};
    uint64_t ids[4];
    send_and_wait(&h, cmds, 4, ids);
    mw_client_stats_t st;
    mw_client_stats(c, &st);
    cr_assert_gt(st.commands_deferred, 0, "some waited for room for their result");
    cr_assert_eq(s.calls, 4, "each ran once, as the gateway sent them again");
    for (int i = 0; i < 4; i++) {
        cr_assert_eq(count_results(&h, ids[i]), 1);
        cr_assert_eq(find_result(&h, ids[i])->u.command_result.status, MW_CMD_DONE);
    }
    cr_assert_eq(st.messages_evicted, 0);
    mwt_h_fini(&h);
}

/* @req MDR-18.8 IEC62443-CR3.8 MDS2-AUTH */
Test(command_guard, refuses_a_replayed_or_expired_command_and_ignores_a_repeat)
{
    mwi_cmd_guard g;
    memset(&g, 0, sizeof g);
    /* Ids as gateways make them: wall-clock ms << 16 | 16 random bits. */
    uint64_t t = 1700000000000ull;
    mw_command_t c = {.id = t << 16 | 7, .expires_ms = 1000, .kind = MW_CMD_SET_INTERVAL};
    cr_assert_eq(mwi_cmd_check(&g, &c, 500), MWI_CMD_RUN);
    mwi_cmd_done(&g, c.id);
    cr_assert_eq(mwi_cmd_check(&g, &c, 500), MWI_CMD_DUPLICATE, "repeated in the next Ack");
    mw_command_t other = {.id = (t - 60000) << 16 | 3, .expires_ms = 1000,
                          .kind = MW_CMD_SET_INTERVAL};
    cr_assert_eq(mwi_cmd_check(&g, &other, 500), MWI_CMD_RUN,
                 "another gateway's id a minute behind is a new command");
    mw_command_t old = {.id = (t - MWI_CMD_WINDOW_MS - 1) << 16, .expires_ms = 1000,
                        .kind = MW_CMD_SET_INTERVAL};
    cr_assert_eq(mwi_cmd_check(&g, &old, 500), MWI_CMD_REPLAY, "a far older id never run");
    mw_command_t late = {.id = (t + 1) << 16, .expires_ms = 1000, .kind = MW_CMD_SET_INTERVAL};
    cr_assert_eq(mwi_cmd_check(&g, &late, 1000), MWI_CMD_EXPIRED);
    mw_command_t zero = {.id = 0, .kind = MW_CMD_ROTATE_KEYS};
    cr_assert_eq(mwi_cmd_check(&g, &zero, 0), MWI_CMD_REPLAY);
    /* Once more than MWI_CMD_RECENT newer ones ran, c is no longer a remembered repeat; once
     * the newest is past the window, it is a replay. */
    for (uint64_t i = 0; i < MWI_CMD_RECENT; i++)
        mwi_cmd_done(&g, (t + MWI_CMD_WINDOW_MS + 1) << 16 | i);
    cr_assert_eq(mwi_cmd_check(&g, &c, 500), MWI_CMD_REPLAY);
}

static size_t count_type(const mwt_h *h, mw_msg_type t)
{
    size_t n = 0;
    for (size_t i = 0; i < h->ngot; i++)
        n += h->got[i].type == t;
    return n;
}

static bool loss_reported(mwt_h *h, void *arg)
{
    (void)arg;
    return count_type(h, MW_MSG_COMM_LOSS) > 0;
}

/* @req IEC62443-CR6.2 */
Test(comm_loss, a_silent_device_raises_a_communication_loss_and_a_restore_when_heard_again)
{
    mwt_h h;
    mwt_h_init(&h, 43);
    /* The harness's gateway has no limit: make one with 30 s. */
    mw_gateway_destroy(&h.gw);
    mw_gateway_config_t cfg;
    mw_gateway_config_init(&cfg);
    cfg.ca_file = mwt_pki_ca(&h.pki);
    cfg.cert_file = mwt_pki_crt(&h.pki, "gateway");
    cfg.key_file = mwt_pki_key(&h.pki, "gateway");
    cfg.transport = h.gw_tp;
    cfg.clock = mwt_clock_table(&h.clk);
    cfg.sink = h.sink_fn;
    cfg.sink_ctx = &h;
    cfg.comm_loss_ms = 30000;
    cr_assert_eq(mw_gateway_create(&cfg, &h.gw, NULL), MW_OK);
    struct seen s = {0};
    mw_client_t *c = client_with_commands(&h, &s, "45010");
    mwt_send_obs(c, 2, 0);
    cr_assert(mwt_h_drain(&h, 60000));
    cr_assert_eq(count_type(&h, MW_MSG_COMM_LOSS), 0);
    /* Silence: 29 s is fine, past 30 s is a loss -- reported once. */
    uint64_t t0 = h.clk.now_ms;
    cr_assert(mwt_h_run(&h, loss_reported, NULL, 120000));
    cr_assert_geq(h.clk.now_ms - t0, 30000, "not before the interval");
    cr_assert_lt(h.clk.now_ms - t0, 33000, "and soon after it");
    for (int i = 0; i < 60; i++) {
        mwt_clock_advance(&h.clk, 1000);
        mw_err e = mw_gateway_poll(h.gw, 0);
        cr_assert(e == MW_OK || e == MW_EAGAIN);
    }
    cr_assert_eq(count_type(&h, MW_MSG_COMM_LOSS), 1, "once, not every scan");
    const mw_message_t *m = NULL;
    for (size_t i = 0; i < h.ngot; i++)
        if (h.got[i].type == MW_MSG_COMM_LOSS)
            m = &h.got[i];
    cr_assert_str_eq(m->device_id, "dev-1");
    cr_assert_geq(m->u.link.silent_ms, 30000);
    /* Last heard: on the wall clock, before the silence began and as long ago as it says. */
    cr_assert_leq(m->u.link.last_seen_ms, h.clk.wall_ms + t0);
    cr_assert_eq(m->u.link.last_seen_ms, m->device_time_ms - m->u.link.silent_ms);
    /* Heard from again: restored. */
    mwt_send_obs(c, 1, 2);
    cr_assert(mwt_h_drain(&h, 300000));
    cr_assert_eq(count_type(&h, MW_MSG_COMM_RESTORED), 1);
    mwt_h_fini(&h);
}
