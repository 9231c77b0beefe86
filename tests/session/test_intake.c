/* SPDX-License-Identifier: Apache-2.0 */
/* test_intake.c -- the gateway's judgement of a batch (session/intake.h), driven directly
 * without DTLS, CoAP or a store: another identity's messages, sequence spaces, duplicates,
 * conflicts, forged low-water marks, and the exact ranges an Ack would carry. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

#include "session/intake.h"

/* The digest of "the message numbered s" in these tests; other content gets another. */
static uint64_t dg(uint64_t s)
{
    return s * 0x9E3779B97F4A7C15ull + 1;
}

static uint64_t other(uint64_t s)
{
    return dg(s) ^ 0xFFu;
}

/* A replay state in space 0xA, as after a device's first batch named it. */
static void in_space_a(mwi_replay *rp)
{
    mwi_replay_init(rp);
    cr_assert_eq(mwi_intake_space(rp, 0xA), MWI_SPACE_NEW);
    mwi_replay_enter(rp, 0xA);
}

/* @p seq is judged new, and recorded as delivered. */
static void delivers(mwi_intake *in, uint64_t seq, uint64_t digest)
{
    cr_assert_eq(mwi_intake_judge(in, seq, digest), MWI_INTAKE_DELIVER, "seq %llu is new",
                 (unsigned long long)seq);
    cr_assert_eq(mwi_intake_delivered(in, seq, digest), MW_OK, "seq %llu recorded",
                 (unsigned long long)seq);
}

/* A whole batch of seqs[0..n), each with its own content, every new one delivered. */
static mwi_intake_outcome take(mwi_replay *rp, uint64_t low_water, const uint64_t *seqs, size_t n,
                               mwi_intake *in)
{
    mwi_intake_begin(in, rp, low_water);
    for (size_t i = 0; i < n; i++) {
        mwi_intake_action a = mwi_intake_judge(in, seqs[i], dg(seqs[i]));
        if (a == MWI_INTAKE_STOP)
            break;
        if (a == MWI_INTAKE_DELIVER)
            cr_assert_eq(mwi_intake_delivered(in, seqs[i], dg(seqs[i])), MW_OK);
    }
    return mwi_intake_end(in);
}

/* Space 0xA with 1, 2 and 3 delivered. */
static void with_1_to_3(mwi_replay *rp)
{
    mwi_intake in;
    const uint64_t seqs[] = {1, 2, 3};
    in_space_a(rp);
    cr_assert_eq(take(rp, 1, seqs, 3, &in), MWI_INTAKE_ACK);
}

static void assert_ranges(const mwi_intake *in, const mwi_seq_range *want, size_t n)
{
    cr_assert_eq(in->nranges, n, "%zu ranges, not %zu", in->nranges, n);
    for (size_t i = 0; i < n; i++) {
        cr_assert_eq(in->ranges[i].first, want[i].first, "range %zu first", i);
        cr_assert_eq(in->ranges[i].last, want[i].last, "range %zu last", i);
    }
}

static void message(mw_message_t *m, const char *id, uint64_t seq)
{
    memset(m, 0, sizeof *m);
    snprintf(m->device_id, sizeof m->device_id, "%s", id);
    m->seq = seq;
}

Test(intake, a_batch_of_the_sessions_own_device_has_no_foreign_message)
{
    mw_message_t b[3];
    for (size_t i = 0; i < 3; i++)
        message(&b[i], "pump-7", i + 1);
    cr_assert_eq(mwi_intake_foreign(b, 3, "pump-7"), 3);
    cr_assert_eq(mwi_intake_foreign(b, 0, "pump-7"), 0);
}

/* @req IEC62443-CR2.1 */
Test(intake, the_first_message_of_another_identity_is_found_whatever_follows)
{
    mw_message_t b[4];
    message(&b[0], "pump-7", 1);
    message(&b[1], "pump-7", 2);
    message(&b[2], "pump-70", 3); /* the certificate's id is a prefix of it: still another */
    message(&b[3], "pump-8", 4);
    cr_assert_eq(mwi_intake_foreign(b, 4, "pump-7"), 2);
    message(&b[2], "PUMP-7", 3); /* ids are compared exactly, case included */
    cr_assert_eq(mwi_intake_foreign(b, 4, "pump-7"), 2);
    message(&b[0], "pump", 1);
    cr_assert_eq(mwi_intake_foreign(b, 4, "pump-7"), 0);
}

Test(intake, messages_are_sorted_by_sequence_number_with_their_content)
{
    mw_message_t b[4];
    const uint64_t seqs[4] = {5, 1, 3, 2};
    for (size_t i = 0; i < 4; i++) {
        message(&b[i], "pump-7", seqs[i]);
        b[i].device_time_ms = seqs[i] * 1000;
    }
    mwi_intake_sort(b, 4);
    const uint64_t want[4] = {1, 2, 3, 5};
    for (size_t i = 0; i < 4; i++) {
        cr_assert_eq(b[i].seq, want[i]);
        cr_assert_eq(b[i].device_time_ms, want[i] * 1000);
    }
}

Test(intake, new_messages_are_delivered_and_acknowledged_as_exact_ranges)
{
    mwi_replay rp;
    in_space_a(&rp);
    mwi_intake in;
    const uint64_t seqs[] = {1, 2, 3, 5, 7, 8};
    mwi_intake_begin(&in, &rp, 1);
    for (size_t i = 0; i < 6; i++) {
        delivers(&in, seqs[i], dg(seqs[i]));
    }
    cr_assert_eq(mwi_intake_end(&in), MWI_INTAKE_ACK);
    const mwi_seq_range want[] = {{1, 3}, {5, 5}, {7, 8}};
    assert_ranges(&in, want, 3);
    cr_assert_eq(in.resync, MWI_RESYNC_NONE);
    cr_assert_eq(in.duplicates + in.conflicts + in.unjudged, 0);
    cr_assert_eq(in.held, 0);
    cr_assert_eq(rp.top, 8);
    cr_assert_eq(rp.done, 4);
}

Test(intake, duplicates_are_acknowledged_again_and_never_delivered_again)
{
    mwi_replay rp;
    mwi_intake in;
    with_1_to_3(&rp);
    /* The Ack was lost: the device sends the same batch again. */
    mwi_intake_begin(&in, &rp, 1);
    for (uint64_t s = 1; s <= 3; s++)
        cr_assert_eq(mwi_intake_judge(&in, s, dg(s)), MWI_INTAKE_ACK_AGAIN);
    cr_assert_eq(mwi_intake_end(&in), MWI_INTAKE_ACK);
    const mwi_seq_range want[] = {{1, 3}};
    assert_ranges(&in, want, 1);
    cr_assert_eq(in.duplicates, 3);
    cr_assert_eq(rp.top, 3);
    /* A number twice in one batch: delivered once, acknowledged once. */
    mwi_intake_begin(&in, &rp, 1);
    delivers(&in, 4, dg(4));
    cr_assert_eq(mwi_intake_judge(&in, 4, dg(4)), MWI_INTAKE_ACK_AGAIN);
    cr_assert_eq(mwi_intake_end(&in), MWI_INTAKE_ACK);
    const mwi_seq_range four[] = {{4, 4}};
    assert_ranges(&in, four, 1);
    cr_assert_eq(in.duplicates, 1);
}

/* @req IEC62443-CR3.8 */
Test(intake, a_number_again_with_other_content_is_held_and_asks_for_a_resynchronisation)
{
    mwi_replay rp;
    mwi_intake in;
    with_1_to_3(&rp);
    mwi_intake_begin(&in, &rp, 1);
    cr_assert_eq(mwi_intake_judge(&in, 2, other(2)), MWI_INTAKE_HOLD);
    cr_assert_eq(mwi_intake_judge(&in, 3, dg(3)), MWI_INTAKE_ACK_AGAIN);
    delivers(&in, 4, dg(4));
    cr_assert_eq(mwi_intake_end(&in), MWI_INTAKE_RESYNC);
    cr_assert_eq(in.resync, MWI_RESYNC_CONFLICT);
    cr_assert_eq(in.conflicts, 1);
    cr_assert_eq(in.held, 1);
    cr_assert_eq(in.first_held, 2);
    const mwi_seq_range want[] = {{3, 4}}; /* 2 is not among them */
    assert_ranges(&in, want, 1);
}

/* @req IEC62443-CR3.8 */
Test(intake, a_forged_low_water_mark_settles_only_what_was_delivered)
{
    mwi_replay rp;
    in_space_a(&rp);
    mwi_intake in;
    /* Nothing delivered yet: a mark far ahead settles nothing. */
    mwi_intake_begin(&in, &rp, 1000);
    cr_assert_eq(rp.low, 1);
    delivers(&in, 1, dg(1));
    delivers(&in, 2, dg(2));
    cr_assert_eq(mwi_intake_end(&in), MWI_INTAKE_ACK);
    cr_assert_eq(rp.low, 3, "bounded by the highest number delivered + 1, not %llu",
                 (unsigned long long)rp.low);
    const mwi_seq_range first[] = {{1, 2}};
    assert_ranges(&in, first, 1);
    /* The numbers above are still delivered, not taken as settled. */
    const uint64_t next[] = {3, 4};
    cr_assert_eq(take(&rp, UINT64_MAX, next, 2, &in), MWI_INTAKE_ACK);
    const mwi_seq_range second[] = {{3, 4}};
    assert_ranges(&in, second, 1);
    cr_assert_eq(rp.low, 5);
    /* Below the mark no digest is left: a settled number is held, never acknowledged unjudged. */
    mwi_intake_begin(&in, &rp, 1);
    cr_assert_eq(mwi_intake_judge(&in, 1, dg(1)), MWI_INTAKE_HOLD);
    cr_assert_eq(mwi_intake_end(&in), MWI_INTAKE_RESYNC);
    cr_assert_eq(in.resync, MWI_RESYNC_UNKNOWN);
    cr_assert_eq(in.unjudged, 1);
    cr_assert_eq(in.nranges, 0);
}

Test(intake, a_conflict_outweighs_a_number_beyond_judgement_as_the_reason)
{
    mwi_replay rp;
    in_space_a(&rp);
    mwi_intake in;
    const uint64_t seqs[] = {1, 2, 3, 4, 5};
    cr_assert_eq(take(&rp, 4, seqs, 5, &in), MWI_INTAKE_ACK);
    cr_assert_eq(rp.low, 4);
    mwi_intake_begin(&in, &rp, 4);
    cr_assert_eq(mwi_intake_judge(&in, 1, dg(1)), MWI_INTAKE_HOLD);    /* settled, no digest */
    cr_assert_eq(mwi_intake_judge(&in, 4, other(4)), MWI_INTAKE_HOLD); /* other content */
    cr_assert_eq(mwi_intake_judge(&in, 5, dg(5)), MWI_INTAKE_ACK_AGAIN);
    cr_assert_eq(mwi_intake_end(&in), MWI_INTAKE_RESYNC);
    cr_assert_eq(in.resync, MWI_RESYNC_CONFLICT);
    cr_assert_eq(in.held, 2);
    cr_assert_eq(in.first_held, 1);
    cr_assert_eq(in.unjudged, 1);
    cr_assert_eq(in.conflicts, 1);
    const mwi_seq_range want[] = {{5, 5}};
    assert_ranges(&in, want, 1);
    /* Whatever the order they are judged in. */
    mwi_intake_begin(&in, &rp, 4);
    cr_assert_eq(mwi_intake_judge(&in, 4, other(4)), MWI_INTAKE_HOLD);
    cr_assert_eq(mwi_intake_judge(&in, 1, dg(1)), MWI_INTAKE_HOLD);
    cr_assert_eq(mwi_intake_end(&in), MWI_INTAKE_RESYNC);
    cr_assert_eq(in.resync, MWI_RESYNC_CONFLICT);
    cr_assert_eq(in.first_held, 4, "the first held as judged");
    cr_assert_eq(in.nranges, 0);
}

Test(intake, a_sequence_space_change_starts_numbering_afresh_and_the_old_space_is_never_reopened)
{
    mwi_replay rp;
    mwi_replay_init(&rp);
    /* A fresh state takes the first space named, even 0. */
    cr_assert_eq(mwi_intake_space(&rp, 0), MWI_SPACE_NEW);
    mwi_replay_enter(&rp, 0xA);
    cr_assert_eq(mwi_intake_space(&rp, 0xA), MWI_SPACE_CURRENT);
    mwi_intake in;
    const uint64_t seqs[] = {1, 2, 3};
    cr_assert_eq(take(&rp, 1, seqs, 3, &in), MWI_INTAKE_ACK);
    cr_assert_eq(mwi_intake_space(&rp, 0xB), MWI_SPACE_NEW);
    mwi_replay_enter(&rp, 0xB);
    cr_assert_eq(mwi_intake_space(&rp, 0xB), MWI_SPACE_CURRENT);
    cr_assert_eq(mwi_intake_space(&rp, 0xA), MWI_SPACE_RETIRED);
    /* Numbers of the new space are its own: 1 is new again there. */
    mwi_intake_begin(&in, &rp, 1);
    delivers(&in, 1, other(1));
    cr_assert_eq(mwi_intake_end(&in), MWI_INTAKE_ACK);
    const mwi_seq_range want[] = {{1, 1}};
    assert_ranges(&in, want, 1);
    cr_assert_eq(rp.space, 0xB);
}

Test(intake, without_room_for_another_hole_the_batch_stops_and_the_rest_waits)
{
    mwi_replay rp;
    in_space_a(&rp);
    mwi_intake in;
    /* 2, 4, ..., 64: 32 holes, as many ranges as a replay state keeps. */
    uint64_t evens[16];
    for (uint64_t half = 0; half < 2; half++) {
        for (uint64_t i = 0; i < 16; i++)
            evens[i] = 2 + 2 * (16 * half + i);
        cr_assert_eq(take(&rp, 1, evens, 16, &in), MWI_INTAKE_ACK);
        cr_assert_eq(in.nranges, 16);
    }
    cr_assert_eq(rp.n, MWI_REPLAY_MAX_RANGES);
    mwi_intake_begin(&in, &rp, 1);
    delivers(&in, 3, dg(3));     /* it joins two ranges */
    delivers(&in, 100, dg(100)); /* a range was freed */
    cr_assert_eq(mwi_intake_judge(&in, 200, dg(200)), MWI_INTAKE_STOP);
    cr_assert_eq(mwi_intake_end(&in), MWI_INTAKE_ACK);
    const mwi_seq_range want[] = {{3, 3}, {100, 100}};
    assert_ranges(&in, want, 2);
    cr_assert_eq(mwi_replay_check(&rp, 200, dg(200)), MWI_REPLAY_NEW, "not recorded");
}

Test(intake, a_message_whose_delivery_failed_is_not_acknowledged)
{
    mwi_replay rp;
    in_space_a(&rp);
    mwi_intake in;
    mwi_intake_begin(&in, &rp, 1);
    cr_assert_eq(mwi_intake_judge(&in, 1, dg(1)), MWI_INTAKE_DELIVER);
    /* The sink refused it: the caller stops without mwi_intake_delivered. */
    cr_assert_eq(mwi_intake_end(&in), MWI_INTAKE_NOTHING);
    cr_assert_eq(in.nranges, 0);
    cr_assert_eq(rp.top, 0);
    mwi_intake_begin(&in, &rp, 1);
    cr_assert_eq(mwi_intake_judge(&in, 1, dg(1)), MWI_INTAKE_DELIVER, "still new next time");
    /* A number that cannot be recorded is not acknowledged either. */
    cr_assert_eq(mwi_intake_delivered(&in, 0, dg(0)), MW_EINVAL);
    cr_assert_eq(in.nacked, 0);
}

Test(intake, a_batch_takes_at_most_what_one_batch_holds)
{
    mwi_replay rp;
    in_space_a(&rp);
    mwi_intake in;
    mwi_intake_begin(&in, &rp, 1);
    for (uint64_t s = 1; s <= MWI_MAX_BATCH; s++) {
        delivers(&in, s, dg(s));
    }
    cr_assert_eq(mwi_intake_judge(&in, MWI_MAX_BATCH + 1, dg(MWI_MAX_BATCH + 1)), MWI_INTAKE_STOP);
    cr_assert_eq(mwi_intake_end(&in), MWI_INTAKE_ACK);
    const mwi_seq_range want[] = {{1, MWI_MAX_BATCH}};
    assert_ranges(&in, want, 1);
}

Test(intake, the_reasons_read_as_the_end_of_a_sentence_about_a_number)
{
    cr_assert_str_eq(mwi_resync_reason(MWI_RESYNC_CONFLICT),
                     "was delivered before with other content");
    cr_assert_str_eq(mwi_resync_reason(MWI_RESYNC_RETIRED),
                     "belongs to a sequence space the device left");
    cr_assert_str_eq(mwi_resync_reason(MWI_RESYNC_UNKNOWN),
                     "is settled and can no longer be judged");
}
