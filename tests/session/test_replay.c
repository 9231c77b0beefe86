/* SPDX-License-Identifier: Apache-2.0 */
/* test_replay.c -- the per-device replay state: spaces, digests, a bounded low-water mark, and a
 * brute-force model in random arrival orders. */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#include "session/replay.h"
#include "support/fake_clock.h"

/* The digest of "the message numbered s" in these tests; other content gets another. */
static uint64_t dg(uint64_t s)
{
    return s * 0x9E3779B97F4A7C15ull + 1;
}

Test(replay, in_order_delivery_keeps_no_ranges)
{
    mwi_replay r;
    mwi_replay_init(&r);
    for (uint64_t s = 1; s <= 1000; s++) {
        cr_assert_eq(mwi_replay_check(&r, s, dg(s)), MWI_REPLAY_NEW);
        cr_assert_eq(mwi_replay_mark(&r, s, dg(s)), MW_OK);
    }
    cr_assert_eq(r.n, 0);
    cr_assert_eq(r.done, 1001);
    cr_assert_eq(r.top, 1000);
    cr_assert_eq(mwi_replay_check(&r, 999, dg(999)), MWI_REPLAY_DUPLICATE);
}

Test(replay, an_alarm_sent_ahead_of_older_observations_does_not_hide_them)
{
    /* The bug a single high-water mark has: seq 50 first, then 16..49. */
    mwi_replay r;
    mwi_replay_init(&r);
    for (uint64_t s = 1; s <= 15; s++)
        cr_assert_eq(mwi_replay_mark(&r, s, dg(s)), MW_OK);
    cr_assert_eq(mwi_replay_mark(&r, 50, dg(50)), MW_OK);
    for (uint64_t s = 16; s <= 49; s++)
        cr_assert_eq(mwi_replay_check(&r, s, dg(s)), MWI_REPLAY_NEW, "seq %llu",
                     (unsigned long long)s);
    cr_assert_eq(mwi_replay_check(&r, 50, dg(50)), MWI_REPLAY_DUPLICATE);
}

/* @req IEC62443-CR3.8 MDS2-IGAU */
Test(replay, a_number_below_the_low_water_mark_is_never_acknowledged_unjudged)
{
    mwi_replay r;
    mwi_replay_init(&r);
    for (uint64_t s = 1; s <= 20; s++)
        cr_assert_eq(mwi_replay_mark(&r, s, dg(s)), MW_OK);
    mwi_replay_advance(&r, 10);
    /* Below the mark: no digest kept, so no verdict that would let an Ack drop it. */
    cr_assert_eq(mwi_replay_check(&r, 5, dg(5)), MWI_REPLAY_UNKNOWN);
    cr_assert_eq(mwi_replay_check(&r, 9, dg(9)), MWI_REPLAY_UNKNOWN);
    cr_assert_eq(mwi_replay_check(&r, 10, dg(10)), MWI_REPLAY_DUPLICATE);
    cr_assert_eq(mwi_replay_check(&r, 21, dg(21)), MWI_REPLAY_NEW);
    mwi_replay_advance(&r, 3); /* a lower mark changes nothing */
    cr_assert_eq(r.low, 10);
}

Test(replay, a_forged_low_water_mark_settles_only_what_was_delivered)
{
    mwi_replay r;
    mwi_replay_init(&r);
    for (uint64_t s = 1; s <= 5; s++)
        cr_assert_eq(mwi_replay_mark(&r, s, dg(s)), MW_OK);
    mwi_replay_advance(&r, UINT64_MAX);
    cr_assert_eq(r.low, 6, "bounded by the highest number delivered + 1");
    for (uint64_t s = 6; s <= 10; s++)
        cr_assert_eq(mwi_replay_check(&r, s, dg(s)), MWI_REPLAY_NEW, "seq %llu still delivered",
                     (unsigned long long)s);
    mwi_replay fresh;
    mwi_replay_init(&fresh);
    mwi_replay_advance(&fresh, 1000);
    cr_assert_eq(fresh.low, 1, "nothing delivered: nothing settled");
}

Test(replay, a_number_used_again_with_other_content_is_a_conflict_and_the_same_a_duplicate)
{
    mwi_replay r;
    mwi_replay_init(&r);
    for (uint64_t s = 1; s <= 40; s++)
        cr_assert_eq(mwi_replay_mark(&r, s, dg(s)), MW_OK);
    mwi_replay_advance(&r, 30);
    cr_assert_eq(mwi_replay_check(&r, 35, dg(35)), MWI_REPLAY_DUPLICATE);
    cr_assert_eq(mwi_replay_check(&r, 35, dg(35) + 1), MWI_REPLAY_CONFLICT);
    cr_assert_eq(mwi_replay_check(&r, 29, dg(29)), MWI_REPLAY_UNKNOWN);
}

Test(replay, a_full_digest_table_gives_up_the_lowest_number_first)
{
    mwi_replay r;
    mwi_replay_init(&r);
    uint64_t n = MWI_REPLAY_DIGESTS + 10;
    for (uint64_t s = 1; s <= n; s++)
        cr_assert_eq(mwi_replay_mark(&r, s, dg(s)), MW_OK);
    cr_assert_eq(r.nd, MWI_REPLAY_DIGESTS);
    cr_assert_eq(mwi_replay_check(&r, 10, dg(10)), MWI_REPLAY_UNKNOWN);
    cr_assert_eq(mwi_replay_check(&r, 11, dg(11)), MWI_REPLAY_DUPLICATE);
    cr_assert_eq(mwi_replay_check(&r, n, dg(n)), MWI_REPLAY_DUPLICATE);
}

Test(replay, a_new_space_starts_fresh_and_a_retired_one_is_remembered)
{
    mwi_replay r;
    mwi_replay_init(&r);
    cr_assert(r.fresh);
    mwi_replay_enter(&r, 0xAAAA);
    cr_assert_eq(r.nretired, 0, "the first space retires nothing");
    for (uint64_t s = 1; s <= 100; s++)
        cr_assert_eq(mwi_replay_mark(&r, s, dg(s)), MW_OK);
    mwi_replay_advance(&r, 101);
    mwi_replay_enter(&r, 0xBBBB);
    cr_assert(mwi_replay_retired(&r, 0xAAAA));
    cr_assert(!mwi_replay_retired(&r, 0xBBBB));
    cr_assert_eq(mwi_replay_check(&r, 50, dg(50) + 1), MWI_REPLAY_NEW,
                 "the same number in a new space is new");
    for (uint64_t sp = 1; sp <= MWI_REPLAY_RETIRED + 2; sp++)
        mwi_replay_enter(&r, sp);
    cr_assert_eq(r.nretired, MWI_REPLAY_RETIRED);
    cr_assert(mwi_replay_retired(&r, MWI_REPLAY_RETIRED + 1), "most recent kept");
}

/* @req IEC62443-CR7.2 */
Test(replay, a_far_future_jump_costs_one_range_and_the_bound_is_enforced)
{
    mwi_replay r;
    mwi_replay_init(&r);
    cr_assert_eq(mwi_replay_mark(&r, 1000000000000ull, 1), MW_OK);
    cr_assert_eq(r.n, 1);
    /* Holes: every other number, until the bound. */
    uint64_t s = 10;
    while (mwi_replay_has_room(&r, s)) {
        cr_assert_eq(mwi_replay_mark(&r, s, dg(s)), MW_OK);
        s += 2;
    }
    cr_assert_eq(r.n, MWI_REPLAY_MAX_RANGES);
    cr_assert_eq(mwi_replay_mark(&r, s, dg(s)), MW_EFULL, "never more state than the bound");
    cr_assert_eq(mwi_replay_mark(&r, 11, dg(11)), MW_OK, "filling a hole merges, needs no room");
    mwi_replay_advance(&r, 1000);
    cr_assert_lt(r.n, MWI_REPLAY_MAX_RANGES, "the low-water mark frees ranges");
}

/* Model: what was delivered under each number (its digest), the highest delivered, and the
 * declared low-water mark as the gateway may take it. The invariant checked at every step:
 * DUPLICATE only for a number delivered with that very content; NEW only for one never
 * delivered; nothing else is acknowledged. */
Test(replay, matches_a_brute_force_model_in_random_orders)
{
    mwt_rng rng = {.state = 99};
    for (int round = 0; round < 200; round++) {
        enum { N = 300 };
        uint64_t content[N + 2];
        memset(content, 0, sizeof content);
        uint64_t low = 1, top = 0;
        mwi_replay r;
        mwi_replay_init(&r);
        mwi_replay_enter(&r, 7);
        for (int step = 0; step < 2000; step++) {
            uint64_t s = 1 + mwt_rng_next(&rng) % N;
            uint64_t d = 1 + mwt_rng_next(&rng) % 2; /* two possible contents per number */
            if (mwt_rng_next(&rng) % 50 == 0) {
                uint64_t l = 1 + mwt_rng_next(&rng) % (N + 50);
                mwi_replay_advance(&r, l);
                if (top > 0 && l > top + 1)
                    l = top + 1;
                if (top > 0 && l > low)
                    low = l;
                cr_assert_eq(r.low, low);
                continue;
            }
            mwi_replay_verdict v = mwi_replay_check(&r, s, d);
            if (v == MWI_REPLAY_NEW)
                cr_assert(s >= low && content[s] == 0, "round %d step %d: NEW for settled %llu",
                          round, step, (unsigned long long)s);
            else if (v == MWI_REPLAY_DUPLICATE)
                cr_assert_eq(content[s], d, "round %d step %d: duplicate of other content", round,
                             step);
            else if (v == MWI_REPLAY_CONFLICT)
                cr_assert(content[s] != 0 && content[s] != d);
            else
                cr_assert(s < low || content[s] != 0, "unknown only for a settled number");
            if (s >= low && content[s] != 0)
                cr_assert_neq(v, MWI_REPLAY_UNKNOWN, "digests kept above the mark (%llu)",
                              (unsigned long long)s);
            if (v == MWI_REPLAY_NEW && mwi_replay_has_room(&r, s)) {
                cr_assert_eq(mwi_replay_mark(&r, s, d), MW_OK);
                content[s] = d;
                if (s > top)
                    top = s;
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
