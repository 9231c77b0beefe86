/* SPDX-License-Identifier: Apache-2.0 */
/* test_offline.c -- the device's persistent offline queue through the client API, end to end in
 * memory: durability when send returns, power cuts, wrong keys, eviction with gap records,
 * damage at rest, and the sequence numbers across restarts. */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"
#include "queue/queue.h"
#include "support/ram_storage.h"

static const uint8_t KEY_A[32] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16,
                                  17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 30, 31, 32};
static const uint8_t KEY_B[32] = {32, 31, 30, 29, 28, 27, 26, 25, 24, 23, 22, 21, 20, 19, 18, 17,
                                  16, 15, 14, 13, 12, 11, 10, 9,  8,  7,  6,  5,  4,  3,  2,  1};

typedef struct dev_audit {
    size_t evicted, corrupt, torn;
} dev_audit;

static void on_audit(void *ctx, const mw_audit_event_t *ev)
{
    dev_audit *a = ctx;
    a->evicted += strcmp(ev->event, MW_AUDIT_QUEUE_EVICTED) == 0;
    a->corrupt += strcmp(ev->event, MW_AUDIT_QUEUE_CORRUPT) == 0;
    a->torn += strcmp(ev->event, MW_AUDIT_QUEUE_TORN) == 0;
}

typedef struct fixture {
    mwt_h h;
    mwt_ram *ram;
    mw_storage_t st;
    mw_client_config_t q;
    dev_audit audit;
} fixture;

static void setup(fixture *f, uint64_t seed, uint32_t capacity)
{
    memset(f, 0, sizeof *f);
    mwt_h_init(&f->h, seed);
    uint32_t size = 0;
    cr_assert_eq(mw_client_storage_size(capacity, 1, 1, &size), MW_OK);
    f->ram = mwt_ram_create(size, 1, 1);
    cr_assert_not_null(f->ram);
    f->st = mwt_ram_storage(f->ram);
    mw_client_config_init(&f->q);
    f->q.queue_capacity = capacity;
    f->q.storage = &f->st;
    f->q.queue_key = KEY_A;
    f->q.queue_key_len = sizeof KEY_A;
    f->q.audit = on_audit;
    f->q.audit_ctx = &f->audit;
}

static void teardown(fixture *f)
{
    mwt_h_fini(&f->h);
    mwt_ram_destroy(f->ram);
}

static mw_client_t *open_dev(fixture *f)
{
    mw_err e = MW_OK;
    mw_client_t *c = mwt_h_client_with(&f->h, "dev-1", "gateway", &f->q, &e);
    cr_assert_not_null(c, "open: %s (%s)", mw_strerror(e), f->h.last_open_error);
    return c;
}

/* The device loses power: nothing it writes from now on reaches the medium, then the medium
 * keeps only what was synced. */
static void power_cut(fixture *f, mw_client_t **c)
{
    mwt_ram_cut_after(f->ram, mwt_ram_ops(f->ram));
    mwt_h_client_close(&f->h, c);
    mwt_ram_power_cut(f->ram, NULL);
}

/* How often each sequence number of dev-1 reached the gateway's sink, and the gap records. */
typedef struct tally {
    size_t messages, observations, alarms, gaps;
    uint64_t gap_count;
    uint64_t max_seq;
} tally;

static tally count(const fixture *f)
{
    tally t = {0};
    for (size_t i = 0; i < f->h.ngot; i++) {
        const mw_message_t *m = &f->h.got[i];
        if (strcmp(m->device_id, "dev-1") != 0)
            continue;
        for (size_t j = 0; j < i; j++)
            cr_assert(strcmp(f->h.got[j].device_id, "dev-1") != 0 || f->h.got[j].seq != m->seq,
                      "seq %llu delivered twice", (unsigned long long)m->seq);
        t.messages++;
        t.observations += m->type == MW_MSG_OBSERVATION;
        t.alarms += m->type == MW_MSG_ALARM;
        if (m->type == MW_MSG_GAP) {
            t.gaps++;
            t.gap_count += m->u.gap.count;
        }
        t.max_seq = m->seq > t.max_seq ? m->seq : t.max_seq;
    }
    return t;
}

/* @req MDR-17.2 IEC62443-CR7.1 */
Test(offline, a_message_is_durable_when_send_returns_and_survives_a_power_cut)
{
    fixture f;
    setup(&f, 71, 64);
    mw_client_t *c = open_dev(&f);
    /* The gateway is never polled: the device is offline. */
    for (int i = 0; i < 10; i++) {
        mwt_send_obs(c, 1, i);
        cr_assert_eq(mwt_ram_pending(f.ram), 0, "message %d not synced when send returned", i);
    }
    mw_client_stats_t st;
    mw_client_stats(c, &st);
    cr_assert_eq(st.messages_pending, 10);
    power_cut(&f, &c);

    c = open_dev(&f);
    cr_assert_eq(mw_client_pending(c), 10, "every message is back after the power cut");
    cr_assert(mwt_h_drain(&f.h, 60000));
    tally t = count(&f);
    cr_assert_eq(t.observations, 10);
    /* Numbers never come back: a new message gets one above everything used before. */
    uint64_t seq = 0;
    mw_observation_t o = {.mdc_code = MW_MDC_PULS_OXIM_SAT_O2, .mantissa = 97, .unit = "%"};
    cr_assert_eq(mw_client_send_observation(c, &o, &seq), MW_OK);
    cr_assert_gt(seq, t.max_seq);
    cr_assert(mwt_h_drain(&f.h, 60000));
    cr_assert_eq(count(&f).observations, 11);
    teardown(&f);
}

/* @req MDR-17.2 */
Test(offline, group_commit_syncs_every_n_messages_or_after_its_window)
{
    fixture f;
    setup(&f, 72, 64);
    f.q.group_commit_n = 4;
    f.q.group_commit_ms = 100;
    mw_client_t *c = open_dev(&f);
    mwt_send_obs(c, 3, 0);
    cr_assert_gt(mwt_ram_pending(f.ram), 0, "three appends wait for the group's sync");
    mwt_send_obs(c, 1, 3);
    cr_assert_eq(mwt_ram_pending(f.ram), 0, "the fourth completes the group");
    mwt_send_obs(c, 1, 4);
    cr_assert_gt(mwt_ram_pending(f.ram), 0);
    int due = mw_client_next_timeout_ms(c);
    cr_assert(due >= 0 && due <= 100, "the window is a timer of the client (%d)", due);
    mwt_clock_advance(&f.h.clk, 100);
    cr_assert_neq(mw_client_poll(c, 0), MW_ECLOSED);
    cr_assert_eq(mwt_ram_pending(f.ram), 0, "synced once the window passed");
    mwt_h_client_close(&f.h, &c);
    teardown(&f);
}

/* @req MDR-17.2 IEC62443-CR7.1 MDS2-DTBK */
Test(offline, a_full_queue_evicts_the_oldest_observation_and_the_gateway_gets_a_gap_record)
{
    fixture f;
    setup(&f, 73, 8);
    mw_client_t *c = open_dev(&f);
    uint64_t first = 0, seq = 0;
    mw_observation_t o = {.mdc_code = MW_MDC_PULS_OXIM_SAT_O2, .mantissa = 97, .unit = "%"};
    for (int i = 0; i < 20; i++) {
        cr_assert_eq(mw_client_send_observation(c, &o, &seq), MW_OK, "observation %d", i);
        if (i == 0)
            first = seq;
    }
    mw_alarm_t al = {.mdc_code = MW_MDC_EVT_LO, .priority = MW_ALARM_HIGH,
                     .state = MW_ALARM_ACTIVE, .text = "SpO2 low"};
    cr_assert_eq(mw_client_raise_alarm(c, &al, NULL), MW_OK, "an alarm evicts an observation");
    mw_client_stats_t st;
    mw_client_stats(c, &st);
    cr_assert_eq(st.messages_pending, 8);
    cr_assert_eq(st.queue_capacity, 8);
    cr_assert_eq(st.messages_evicted, 13, "21 messages, room for 8");
    cr_assert_eq(f.audit.evicted, 13, "each eviction is an audit event");

    cr_assert(mwt_h_drain(&f.h, 60000));
    tally t = count(&f);
    cr_assert_eq(t.alarms, 1, "alarms are evicted last");
    cr_assert_eq(t.observations, 7, "the seven newest observations");
    cr_assert_geq(t.gaps, 1);
    cr_assert_eq(t.gap_count, 13, "the gateway learns of every lost message");
    for (size_t i = 0; i < f.h.ngot; i++) {
        const mw_message_t *m = &f.h.got[i];
        if (m->type != MW_MSG_GAP)
            continue;
        cr_assert_eq(m->u.gap.reason, MW_GAP_EVICTED);
        cr_assert_eq(m->u.gap.priority, MW_PRIORITY_OBSERVATION);
        cr_assert_eq(m->u.gap.first_seq, first, "the oldest went first");
        cr_assert_eq(m->u.gap.last_seq, first + 12);
    }
    mw_client_stats(c, &st);
    cr_assert_eq(st.gap_records, t.gaps);
    cr_assert_eq(st.messages_pending, 0);
    mwt_h_client_close(&f.h, &c);
    teardown(&f);
}

/* @req MDR-17.4 IEC62443-CR4.1 MDS2-STCF */
Test(offline, a_wrong_queue_key_is_refused_before_anything_is_written_and_the_queue_is_kept)
{
    fixture f;
    setup(&f, 74, 16);
    mw_client_t *c = open_dev(&f);
    mwt_send_obs(c, 3, 0);
    mwt_h_client_close(&f.h, &c);

    f.q.queue_key = KEY_B;
    mw_err e = MW_OK;
    cr_assert_null(mwt_h_client_with(&f.h, "dev-1", "gateway", &f.q, &e));
    cr_assert_eq(e, MW_ECONFIG);
    cr_assert(strstr(f.h.last_open_error, "key") != NULL, "says why: %s", f.h.last_open_error);
    f.q.queue_key_len = 7;
    cr_assert_null(mwt_h_client_with(&f.h, "dev-1", "gateway", &f.q, &e));
    cr_assert_eq(e, MW_ECONFIG);
    f.q.queue_key = NULL;
    cr_assert_null(mwt_h_client_with(&f.h, "dev-1", "gateway", &f.q, &e));
    cr_assert_eq(e, MW_ECONFIG, "storage without a key");

    f.q.queue_key = KEY_A;
    f.q.queue_key_len = sizeof KEY_A;
    c = open_dev(&f);
    cr_assert_eq(mw_client_pending(c), 3, "nothing was lost to the wrong key");
    cr_assert(mwt_h_drain(&f.h, 60000));
    cr_assert_eq(count(&f).observations, 3);
    mwt_h_client_close(&f.h, &c);
    teardown(&f);
}

Test(offline, a_region_too_small_is_a_configuration_error_that_says_how_much_is_needed)
{
    fixture f;
    setup(&f, 75, 16);
    mwt_ram *small = mwt_ram_create(4096, 1, 1);
    mw_storage_t st = mwt_ram_storage(small);
    f.q.storage = &st;
    mw_err e = MW_OK;
    cr_assert_null(mwt_h_client_with(&f.h, "dev-1", "gateway", &f.q, &e));
    cr_assert_eq(e, MW_ECONFIG);
    cr_assert(strstr(f.h.last_open_error, "needs at least") != NULL, "%s", f.h.last_open_error);
    mwt_ram_destroy(small);
    teardown(&f);
}

/* @req MDR-17.4 IEC62443-CR3.4 MDS2-TXIG */
Test(offline, a_record_damaged_at_rest_is_reported_never_delivered_and_gap_recorded)
{
    fixture f;
    setup(&f, 76, 16);
    mw_client_t *c = open_dev(&f);
    uint64_t seqs[5];
    mw_observation_t o = {.mdc_code = MW_MDC_PULS_OXIM_SAT_O2, .mantissa = 97, .unit = "%"};
    for (int i = 0; i < 5; i++)
        cr_assert_eq(mw_client_send_observation(c, &o, &seqs[i]), MW_OK);
    mwt_h_client_close(&f.h, &c);

    /* Where the third message's record lies: the queue region follows the sequence store. */
    uint32_t base = mwi_seq_region_size(1, 1), off = 0, len = 0;
    mw_storage_slice_t sl;
    mw_storage_t qst;
    cr_assert_eq(mw_storage_slice(&f.st, base, f.st.size - base, &sl, &qst), MW_OK);
    mwi_queue_config qc;
    mwi_queue_config_init(&qc);
    qc.storage = &qst;
    qc.key = KEY_A;
    qc.key_len = sizeof KEY_A;
    qc.capacity = 16;
    mwi_queue *q = NULL;
    cr_assert_eq(mwi_queue_open(&qc, &q, NULL), MW_OK);
    cr_assert_eq(mwi_queue_locate(q, seqs[2], &off, &len), MW_OK);
    mwi_queue_close(&q);
    mwt_ram_flip_bit(f.ram, base + off + len - 8, 3); /* inside the ciphertext or tag */

    c = open_dev(&f);
    cr_assert_eq(f.audit.corrupt, 1, "reported while the queue recovers");
    mw_client_stats_t st;
    mw_client_stats(c, &st);
    cr_assert_eq(st.messages_corrupt, 1);
    cr_assert(mwt_h_drain(&f.h, 60000));
    tally t = count(&f);
    cr_assert_eq(t.observations, 4, "the damaged record is never delivered");
    for (size_t i = 0; i < f.h.ngot; i++)
        cr_assert(f.h.got[i].type == MW_MSG_GAP || f.h.got[i].seq != seqs[2]);
    cr_assert_eq(t.gaps, 1);
    cr_assert_eq(t.gap_count, 1);
    for (size_t i = 0; i < f.h.ngot; i++)
        if (f.h.got[i].type == MW_MSG_GAP)
            cr_assert_eq(f.h.got[i].u.gap.reason, MW_GAP_CORRUPT);
    mwt_h_client_close(&f.h, &c);
    teardown(&f);
}

/* @req MDR-17.2 IEC62443-CR7.1 */
Test(offline, power_cuts_at_every_write_of_a_session_lose_nothing_durable_and_repeat_nothing)
{
    /* Each round: the device queues messages and delivers some; power fails just after write
     * number k; the device comes back and drains. Whatever send_observation had returned
     * MW_OK for must arrive, once. */
    for (uint64_t k = 0; k < 60; k += 3) {
        fixture f;
        setup(&f, 100 + k, 16);
        mw_client_t *c = open_dev(&f);
        uint64_t base_ops = mwt_ram_ops(f.ram);
        mwt_ram_cut_after(f.ram, base_ops + k);
        uint64_t ok_seqs[40];
        size_t nok = 0;
        mw_observation_t o = {.mdc_code = MW_MDC_PULS_OXIM_SAT_O2, .mantissa = 97, .unit = "%"};
        for (int i = 0; i < 40 && !mwt_ram_is_dead(f.ram); i++) {
            uint64_t seq = 0;
            if (mw_client_send_observation(c, &o, &seq) == MW_OK)
                ok_seqs[nok++] = seq;
            if (i % 4 == 3) {
                for (int j = 0; j < 50; j++) {
                    mw_err ge = mw_gateway_poll(f.h.gw, 0), ce = mw_client_poll(c, 0);
                    (void)ge;
                    (void)ce;
                    mwt_clock_advance(&f.h.clk, 5);
                }
            }
        }
        mwt_h_client_close(&f.h, &c);
        mwt_ram_power_cut(f.ram, NULL);
        c = open_dev(&f);
        cr_assert(mwt_h_drain(&f.h, 120000), "cut after write %llu: drained",
                  (unsigned long long)k);
        (void)count(&f); /* asserts no number was delivered twice */
        for (size_t i = 0; i < nok; i++) {
            bool found = false;
            for (size_t j = 0; j < f.h.ngot && !found; j++)
                found = f.h.got[j].seq == ok_seqs[i] && f.h.got[j].type == MW_MSG_OBSERVATION;
            cr_assert(found, "cut after write %llu: seq %llu was durable but never arrived",
                      (unsigned long long)k, (unsigned long long)ok_seqs[i]);
        }
        mwt_h_client_close(&f.h, &c);
        teardown(&f);
    }
}
