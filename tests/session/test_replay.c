/* SPDX-License-Identifier: Apache-2.0 */
/* test_replay.c -- the per-device replay state against a brute-force model, in every arrival order. */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#include "session/replay.h"
#include "support/fake_clock.h"

Test(replay, in_order_delivery_keeps_no_ranges)
{
    mwi_replay r;
    mwi_replay_init(&r);
    for (uint64_t s = 1; s <= 1000; s++) {
        cr_assert_eq(mwi_replay_check(&r, s), MWI_REPLAY_NEW);
        cr_assert_eq(mwi_replay_mark(&r, s), MW_OK);
    }
    cr_assert_eq(r.n, 0);
    cr_assert_eq(r.done, 1001);
    cr_assert_eq(mwi_replay_check(&r, 500), MWI_REPLAY_DUPLICATE);
}

Test(replay, an_alarm_sent_ahead_of_older_observations_does_not_hide_them)
{
    /* The bug a single high-water mark has: seq 50 first, then 16..49. */
    mwi_replay r;
    mwi_replay_init(&r);
    for (uint64_t s = 1; s <= 15; s++)
        cr_assert_eq(mwi_replay_mark(&r, s), MW_OK);
    cr_assert_eq(mwi_replay_mark(&r, 50), MW_OK);
    for (uint64_t s = 16; s <= 49; s++)
        cr_assert_eq(mwi_replay_check(&r, s), MWI_REPLAY_NEW, "seq %llu", (unsigned long long)s);
    cr_assert_eq(mwi_replay_check(&r, 50), MWI_REPLAY_DUPLICATE);
}

/* @req IEC62443-CR3.8 MDS2-IGAU */
Test(replay, rejects_sequence_below_low_water_mark)
{
    mwi_replay r;
    mwi_replay_init(&r);
    cr_assert_eq(mwi_replay_mark(&r, 1), MW_OK);
    mwi_replay_advance(&r, 10);
    cr_assert_eq(mwi_replay_check(&r, 5), MWI_REPLAY_OLD, "given up by the device: a replay");
    cr_assert_eq(mwi_replay_check(&r, 9), MWI_REPLAY_OLD);
    cr_assert_eq(mwi_replay_check(&r, 10), MWI_REPLAY_NEW);
    mwi_replay_advance(&r, 3); /* a lower mark changes nothing */
    cr_assert_eq(mwi_replay_check(&r, 5), MWI_REPLAY_OLD);
}

Test(replay, a_resent_message_at_the_low_water_mark_is_a_duplicate_not_a_replay)
{
    /* Delivered, but the acknowledgement was lost: the device still holds it
     * and declares it as its low-water mark. */
    mwi_replay r;
    mwi_replay_init(&r);
    cr_assert_eq(mwi_replay_mark(&r, 1), MW_OK);
    cr_assert_eq(mwi_replay_mark(&r, 2), MW_OK);
    mwi_replay_advance(&r, 1);
    cr_assert_eq(mwi_replay_check(&r, 1), MWI_REPLAY_DUPLICATE);
    cr_assert_eq(mwi_replay_check(&r, 2), MWI_REPLAY_DUPLICATE);
}

/* @req IEC62443-CR7.2 */
Test(replay, a_far_future_jump_costs_one_range_and_the_bound_is_enforced)
{
    mwi_replay r;
    mwi_replay_init(&r);
    cr_assert_eq(mwi_replay_mark(&r, 1000000000000ull), MW_OK);
    cr_assert_eq(r.n, 1);
    /* Holes: every other number, until the bound. */
    uint64_t s = 10;
    while (mwi_replay_has_room(&r, s)) {
        cr_assert_eq(mwi_replay_mark(&r, s), MW_OK);
        s += 2;
    }
    cr_assert_eq(r.n, MWI_REPLAY_MAX_RANGES);
    cr_assert_eq(mwi_replay_mark(&r, s), MW_EFULL, "never more state than the bound");
    cr_assert_eq(mwi_replay_mark(&r, 11), MW_OK, "filling a hole merges, needs no room");
    mwi_replay_advance(&r, 1000);
    cr_assert_lt(r.n, MWI_REPLAY_MAX_RANGES, "the low-water mark frees ranges");
}

/* Model: a bitmap of delivered numbers and the declared low-water mark. */
Test(replay, matches_a_brute_force_model_in_random_orders)
{
    mwt_rng rng = {.state = 99};
    for (int round = 0; round < 200; round++) {
        enum { N = 300 };
        bool delivered[N + 2];
        memset(delivered, 0, sizeof delivered);
        uint64_t low = 1;
        mwi_replay r;
        mwi_replay_init(&r);
        for (int step = 0; step < 2000; step++) {
            uint64_t s = 1 + mwt_rng_next(&rng) % N;
            if (mwt_rng_next(&rng) % 50 == 0) {
                uint64_t l = 1 + mwt_rng_next(&rng) % N;
                mwi_replay_advance(&r, l);
                if (l > low)
                    low = l;
                continue;
            }
            mwi_replay_verdict v = mwi_replay_check(&r, s);
            mwi_replay_verdict want = s < low ? MWI_REPLAY_OLD
                                     : delivered[s] ? MWI_REPLAY_DUPLICATE
                                                    : MWI_REPLAY_NEW;
            /* Below the mark everything is settled, delivered or not. */
            cr_assert_eq(v, want, "round %d step %d seq %llu", round, step, (unsigned long long)s);
            if (v == MWI_REPLAY_NEW && mwi_replay_has_room(&r, s)) {
                cr_assert_eq(mwi_replay_mark(&r, s), MW_OK);
                delivered[s] = true;
            }
            cr_assert_leq(r.n, MWI_REPLAY_MAX_RANGES);
            for (uint32_t i = 0; i < r.n; i++) {
                cr_assert_leq(r.r[i].first, r.r[i].last);
                cr_assert_gt(r.r[i].first, r.done);
                if (i > 0)
                    cr_assert_gt(r.r[i].first, r.r[i - 1].last + 1, "disjoint, non-adjacent");
            }
        }
    }
}
