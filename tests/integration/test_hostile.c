/* SPDX-License-Identifier: Apache-2.0 */
/* test_hostile.c -- a gateway that refuses, answers uselessly or floods the device with commands
 * can neither make it hammer the network nor cost it an observation or an alarm. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

#include "harness.h"

#define FAKE_ADDR "127.0.0.3:5684"
/* Ten minutes of fake time. */
#define SPAN_MS (10u * 60u * 1000u)

/* The fewest and most requests a device may send in @p span_ms when every answer settles
 * nothing, by its schedule: after the n-th such answer in a row it waits between cap / 2 and
 * cap, cap = min(reconnect_max_ms, reconnect_min_ms * 2^(n-1)) (1 s and 60 s by default). The
 * latest schedule allows @p slack_ms per round and for the handshake. */
static void schedule_bounds(uint64_t span_ms, uint64_t slack_ms, uint64_t *fewest, uint64_t *most)
{
    uint64_t early = 0, late = slack_ms;
    *fewest = *most = 0;
    for (uint32_t n = 0; early <= span_ms; n++) {
        (*most)++;
        if (late <= span_ms)
            (*fewest)++;
        uint64_t cap = n >= 6 ? 60000 : 1000u << n;
        if (cap > 60000)
            cap = 60000;
        early += cap / 2;
        late += cap + slack_ms;
    }
}

struct over {
    mwt_fake *fake;
    uint64_t most;
};

/* Stops at once when the device sends more than its schedule allows (without backoff it sends
 * thousands without the fake clock moving). */
static bool over_schedule(mwt_h *h, void *arg)
{
    (void)h;
    struct over *o = arg;
    return mwt_fake_get_stats(o->fake).requests > o->most;
}

static void backs_off_from(mwt_fake_mode mode, uint64_t seed)
{
    mwt_h h;
    mwt_h_init(&h, seed);
    mwt_fake *fake = mwt_h_fake(&h, FAKE_ADDR, mode);
    mw_err e;
    mw_client_t *c = mwt_h_client_to(&h, "dev-1", FAKE_ADDR, NULL, &e);
    cr_assert_not_null(c, "%s", h.last_open_error);
    mwt_send_obs(c, 5, 0);
    uint64_t fewest, most;
    schedule_bounds(SPAN_MS, 1000, &fewest, &most);
    struct over o = {.fake = fake, .most = most};
    uint64_t t0 = h.clk.now_ms;
    cr_assert_not(mwt_h_run(&h, over_schedule, &o, SPAN_MS),
                  "more than %llu requests in %.3f s of fake time", (unsigned long long)most,
                  (double)(h.clk.now_ms - t0) / 1000.0);
    mwt_fake_stats fs = mwt_fake_get_stats(fake);
    mw_client_stats_t st;
    mw_client_stats(c, &st);
    cr_log_info("%llu requests in %u s (schedule: %llu to %llu), %llu useless answers counted",
                (unsigned long long)fs.requests, SPAN_MS / 1000, (unsigned long long)fewest,
                (unsigned long long)most, (unsigned long long)st.useless_answers);
    cr_assert_geq(fs.requests, fewest, "the device kept trying: %llu requests",
                  (unsigned long long)fs.requests);
    cr_assert_eq(fs.handshakes, 1, "the session stayed up: an answer is not a dead link");
    cr_assert_geq(st.useless_answers, fs.requests - 1, "each useless answer is counted");
    cr_assert_leq(st.useless_answers, fs.requests);
    cr_assert_eq(mw_client_pending(c), 5, "nothing was forgotten");
    mwt_h_fini(&h);
}

/* @req MDR-18.8 IEC62443-CR7.1 */
Test(hostile_gateway, an_rst_to_every_request_is_met_with_backoff_not_a_resend_at_once)
{
    backs_off_from(MWT_FAKE_RST, 300);
}

/* @req MDR-18.8 IEC62443-CR7.1 */
Test(hostile_gateway, an_ack_that_does_not_decode_is_met_with_backoff)
{
    backs_off_from(MWT_FAKE_GARBAGE_ACK, 301);
}

/* @req MDR-18.8 IEC62443-CR7.1 */
Test(hostile_gateway, an_ack_that_settles_nothing_is_met_with_backoff)
{
    backs_off_from(MWT_FAKE_EMPTY_ACK, 302);
}

/* A gateway whose store is down answers 5.03 to every batch: the device waits as for any answer
 * that settles nothing, on the session it has, rather than reconnecting at once (a fleet doing
 * that would handshake with the gateway every second while it is least able to bear it). */
/* @req MDR-18.8 IEC62443-CR7.1 */
Test(hostile_gateway, a_503_to_every_request_is_met_with_backoff_on_the_same_session)
{
    backs_off_from(MWT_FAKE_UNAVAILABLE, 303);
}

struct ran {
    uint64_t ids[4096];
    size_t n;
};

static mw_command_status count_run(void *ctx, const mw_command_t *cmd)
{
    struct ran *r = ctx;
    cr_assert_lt(r->n, sizeof r->ids / sizeof r->ids[0]);
    r->ids[r->n++] = cmd->id;
    return MW_CMD_DONE;
}

static bool requests_at_least(mwt_h *h, void *arg)
{
    (void)h;
    struct over *o = arg;
    return mwt_fake_get_stats(o->fake).requests >= o->most;
}

static bool drained(mwt_h *h, void *arg)
{
    (void)h;
    return mw_client_pending(arg) == 0;
}

/* Distinct sequence numbers of @p type among what the fake acknowledged. */
static size_t distinct(const mwt_fake *f, mw_msg_type type, uint64_t below)
{
    size_t n = 0, ngot = 0;
    const mw_message_t *got = mwt_fake_got(f, &ngot);
    for (uint64_t seq = 1; seq < below; seq++) {
        bool seen = false;
        for (size_t i = 0; i < ngot && !seen; i++)
            seen = got[i].type == type && got[i].seq == seq;
        n += seen;
    }
    return n;
}

/* @req MDR-18.8 IEC62443-CR7.1 IEC62443-CR7.2 */
Test(hostile_gateway, a_command_flood_in_every_ack_never_evicts_an_observation_or_an_alarm)
{
    enum { CAP = 64, SHARE = CAP / 8, ALARMS = 4, OBS = 56, ROUNDS = 200 };
    mwt_h h;
    mwt_h_init(&h, 303);
    mwt_fake *fake = mwt_h_fake(&h, FAKE_ADDR, MWT_FAKE_ACK_ALL);
    /* A gateway that takes one message per batch and sends four new commands in each Ack. */
    mw_command_t tpl = {.kind = MW_CMD_SET_INTERVAL, .u.interval_ms = 1000};
    mwt_fake_commands(fake, 4, &tpl);
    mwt_fake_ack_limit(fake, 1);
    static struct ran ran;
    ran.n = 0;
    mw_client_config_t q;
    mw_client_config_init(&q);
    q.queue_capacity = CAP;
    q.on_command = count_run;
    q.on_command_ctx = &ran;
    mw_err e;
    mw_client_t *c = mwt_h_client_to(&h, "dev-1", FAKE_ADDR, &q, &e);
    cr_assert_not_null(c, "%s", h.last_open_error);
    /* A queue nearly full: four alarms and 56 observations in 64 places. */
    for (int i = 0; i < ALARMS; i++) {
        mw_alarm_t a = {.mdc_code = 196674, .priority = MW_ALARM_HIGH, .state = MW_ALARM_ACTIVE};
        cr_assert_eq(mw_client_raise_alarm(c, &a, NULL), MW_OK);
    }
    mwt_send_obs(c, OBS, 0);
    struct over o = {.fake = fake, .most = ROUNDS};
    cr_assert(mwt_h_run(&h, requests_at_least, &o, 3600000), "the flood ran");
    mw_client_stats_t st;
    mw_client_stats(c, &st);
    mwt_fake_stats fs = mwt_fake_get_stats(fake);
    size_t answered = distinct(fake, MW_MSG_COMMAND_RESULT, st.next_seq);
    cr_log_info("flood: %llu commands sent, %zu run, %llu deferred, %zu results acknowledged",
                (unsigned long long)fs.commands, ran.n, (unsigned long long)st.commands_deferred,
                answered);
    cr_assert_eq(st.messages_evicted, 0, "no message made room for a command result");
    cr_assert_eq(st.gap_records, 0);
    cr_assert_leq(ran.n, answered + SHARE, "results outstanding never exceed the share");
    cr_assert_lt(ran.n, fs.commands / 2, "commands beyond the share were not run");
    cr_assert_gt(st.commands_deferred, 0);
    /* The flood ends and the gateway takes everything: every observation and alarm arrives. */
    mwt_fake_commands(fake, 0, &tpl);
    mwt_fake_ack_limit(fake, 0);
    cr_assert(mwt_h_run(&h, drained, c, 600000), "the queue drains");
    mw_client_stats(c, &st);
    cr_assert_eq(st.messages_evicted, 0);
    cr_assert_eq(distinct(fake, MW_MSG_ALARM, st.next_seq), ALARMS);
    cr_assert_eq(distinct(fake, MW_MSG_OBSERVATION, st.next_seq), OBS);
    /* Exactly the commands run were answered, each once, and all of them "done". */
    size_t ngot = 0;
    const mw_message_t *got = mwt_fake_got(fake, &ngot);
    size_t results = 0;
    for (size_t i = 0; i < ngot; i++) {
        if (got[i].type != MW_MSG_COMMAND_RESULT)
            continue;
        results++;
        cr_assert_eq(got[i].u.command_result.status, MW_CMD_DONE);
        bool was_run = false;
        for (size_t k = 0; k < ran.n && !was_run; k++)
            was_run = ran.ids[k] == got[i].u.command_result.command_id;
        cr_assert(was_run, "a result only for a command that ran");
    }
    cr_assert_eq(results, ran.n, "one result per command run");
    mwt_h_fini(&h);
}
