/* SPDX-License-Identifier: Apache-2.0 */
/* test_queue_index.c -- the queue's in-memory index and gap table (src/queue/index.c), driven
 * directly: flush order, lookup, removal by position and by range, the eviction policy, and the
 * gap bookkeeping that tells the gateway what it will never receive. No storage, no crypto. */
#include <criterion/criterion.h>
#include <string.h>

#include "queue/index.h"

#define SLOTS 16u

typedef struct ix {
    mwi_idx_entry ent[SLOTS];
    mwi_idx x;
} ix;

static void ix_init(ix *t)
{
    memset(t, 0, sizeof *t);
    t->x.ent = t->ent;
    t->x.slots = SLOTS;
}

static void put(ix *t, uint64_t seq, unsigned prio, uint64_t t_ms)
{
    mwi_idx_entry e;
    memset(&e, 0, sizeof e);
    e.seq = seq;
    e.prio = (uint8_t)prio;
    e.t_ms = t_ms;
    e.off = (uint32_t)(1000u + seq);
    e.len = 64;
    mwi_idx_insert(&t->x, &e);
}

/* Asserts the index holds exactly these (seq, prio) pairs, in this order. */
static void expect_order(const ix *t, const uint64_t *seqs, const unsigned *prios, uint32_t n)
{
    cr_assert_eq(t->x.n, n, "entries held: %u, want %u", t->x.n, n);
    for (uint32_t i = 0; i < n; i++) {
        cr_assert_eq(t->x.ent[i].seq, seqs[i], "entry %u: seq %llu, want %llu", i,
                     (unsigned long long)t->x.ent[i].seq, (unsigned long long)seqs[i]);
        cr_assert_eq(t->x.ent[i].prio, prios[i], "entry %u: priority %u, want %u", i,
                     t->x.ent[i].prio, prios[i]);
    }
}

/* Seven messages appended out of order: alarms 2 3 7, observations 4 9, status 1 5. */
static void seven(ix *t)
{
    ix_init(t);
    put(t, 5, MW_PRIORITY_STATUS, 500);
    put(t, 3, MW_PRIORITY_ALARM, 300);
    put(t, 9, MW_PRIORITY_OBSERVATION, 900);
    put(t, 1, MW_PRIORITY_STATUS, 100);
    put(t, 7, MW_PRIORITY_ALARM, 700);
    put(t, 4, MW_PRIORITY_OBSERVATION, 50); /* the oldest by the clock, not by number */
    put(t, 2, MW_PRIORITY_ALARM, 200);
}

static const unsigned A = MW_PRIORITY_ALARM, O = MW_PRIORITY_OBSERVATION, S = MW_PRIORITY_STATUS;

Test(queue_index, insertion_keeps_flush_order_alarms_first_then_ascending_numbers)
{
    ix t;
    seven(&t);
    expect_order(&t, (const uint64_t[]){2, 3, 7, 4, 9, 1, 5},
                 (const unsigned[]){A, A, A, O, O, S, S}, 7);
    cr_assert_eq(t.x.count[0], 0);
    cr_assert_eq(t.x.count[S], 2);
    cr_assert_eq(t.x.count[O], 2);
    cr_assert_eq(t.x.count[A], 3);
    cr_assert_eq(mwi_idx_seg_start(&t.x, A), 0);
    cr_assert_eq(mwi_idx_seg_start(&t.x, O), 3);
    cr_assert_eq(mwi_idx_seg_start(&t.x, S), 5);
    cr_assert_eq(mwi_idx_seg_end(&t.x, A), 3);
    cr_assert_eq(mwi_idx_seg_end(&t.x, O), 5);
    cr_assert_eq(mwi_idx_seg_end(&t.x, S), 7);
    /* The entry is copied whole. */
    cr_assert_eq(t.x.ent[3].t_ms, 50);
    cr_assert_eq(t.x.ent[3].off, 1004);
    cr_assert_eq(t.x.ent[3].len, 64);
}

Test(queue_index, find_gives_the_position_of_a_queued_number_and_nothing_else)
{
    static const uint64_t order[] = {2, 3, 7, 4, 9, 1, 5};
    ix t;
    uint32_t at = 99;

    seven(&t);
    for (uint32_t i = 0; i < 7; i++) {
        cr_assert(mwi_idx_find(&t.x, order[i], &at), "seq %llu is queued",
                  (unsigned long long)order[i]);
        cr_assert_eq(at, i, "seq %llu at %u, want %u", (unsigned long long)order[i], at, i);
    }
    at = 99;
    cr_assert_not(mwi_idx_find(&t.x, 6, &at));
    cr_assert_not(mwi_idx_find(&t.x, 0, &at));
    cr_assert_not(mwi_idx_find(&t.x, 10, &at));
    cr_assert_not(mwi_idx_find(&t.x, UINT64_MAX, &at));
    cr_assert_eq(at, 99, "a miss leaves the position alone");
    cr_assert(mwi_idx_find(&t.x, 9, NULL), "the position is optional");
}

Test(queue_index, lower_bound_and_cursor_position_within_a_segment)
{
    ix t;
    seven(&t);
    cr_assert_eq(mwi_idx_seg_lower(&t.x, A, 0), 0);
    cr_assert_eq(mwi_idx_seg_lower(&t.x, A, 3), 1);
    cr_assert_eq(mwi_idx_seg_lower(&t.x, A, 4), 2);
    cr_assert_eq(mwi_idx_seg_lower(&t.x, A, 8), 3, "past the segment: its end");
    cr_assert_eq(mwi_idx_seg_lower(&t.x, O, 5), 4);
    cr_assert_eq(mwi_idx_seg_lower(&t.x, S, 1), 5);

    cr_assert_eq(mwi_idx_after(&t.x, A, 0), 0, "a fresh cursor starts at the first alarm");
    cr_assert_eq(mwi_idx_after(&t.x, A, 2), 1);
    cr_assert_eq(mwi_idx_after(&t.x, A, 6), 2, "a number no longer queued is passed over");
    cr_assert_eq(mwi_idx_after(&t.x, A, 7), 3);
    cr_assert_eq(mwi_idx_after(&t.x, S, 4), 6);
    cr_assert_eq(mwi_idx_after(&t.x, S, 5), 7);
    cr_assert_eq(mwi_idx_after(&t.x, S, UINT64_MAX), 7, "UINT64_MAX is past the end");
    cr_assert_eq(mwi_idx_after(&t.x, O, UINT64_MAX), 5);
}

Test(queue_index, removal_by_position_closes_the_gap_and_keeps_the_counts)
{
    ix t;
    seven(&t);
    mwi_idx_remove(&t.x, 1, 2); /* alarms 3 and 7 */
    expect_order(&t, (const uint64_t[]){2, 4, 9, 1, 5}, (const unsigned[]){A, O, O, S, S}, 5);
    cr_assert_eq(t.x.count[A], 1);
    cr_assert_eq(t.x.count[O], 2);
    cr_assert_eq(t.x.count[S], 2);
    mwi_idx_remove(&t.x, 0, 0);
    expect_order(&t, (const uint64_t[]){2, 4, 9, 1, 5}, (const unsigned[]){A, O, O, S, S}, 5);
    mwi_idx_remove(&t.x, 4, 1); /* the last entry */
    expect_order(&t, (const uint64_t[]){2, 4, 9, 1}, (const unsigned[]){A, O, O, S}, 4);
    cr_assert_eq(t.x.count[S], 1);
    /* An insert after removals lands in place. */
    put(&t, 8, O, 0);
    expect_order(&t, (const uint64_t[]){2, 4, 8, 9, 1}, (const unsigned[]){A, O, O, O, S}, 5);
}

Test(queue_index, ranges_are_counted_and_removed_across_all_priorities)
{
    ix t;
    uint32_t at = 99;

    seven(&t);
    cr_assert_eq(mwi_idx_count_range(&t.x, 2, 5), 4, "2, 3, 4 and 5");
    cr_assert_eq(mwi_idx_count_range(&t.x, 6, 6), 0);
    cr_assert_eq(mwi_idx_count_range(&t.x, 8, UINT64_MAX), 1, "only 9");
    cr_assert_eq(mwi_idx_count_range(&t.x, 1, UINT64_MAX), 7);
    cr_assert_eq(mwi_idx_seg_range(&t.x, A, 3, 100, &at), 2);
    cr_assert_eq(at, 1);
    cr_assert_eq(mwi_idx_seg_range(&t.x, O, 5, 8, &at), 0);
    cr_assert_eq(at, 4, "an empty range starts where it would be");
    cr_assert_eq(t.x.n, 7, "counting removes nothing");

    cr_assert_eq(mwi_idx_remove_range(&t.x, 3, 7), 4, "3, 7, 4 and 5");
    expect_order(&t, (const uint64_t[]){2, 9, 1}, (const unsigned[]){A, O, S}, 3);
    cr_assert_eq(t.x.count[A], 1);
    cr_assert_eq(t.x.count[O], 1);
    cr_assert_eq(t.x.count[S], 1);
    cr_assert_eq(mwi_idx_remove_range(&t.x, 3, 7), 0, "a repeated range removes nothing");
    cr_assert_eq(mwi_idx_remove_range(&t.x, 1, UINT64_MAX), 3);
    cr_assert_eq(t.x.n, 0);
    cr_assert_eq(t.x.count[A] + t.x.count[O] + t.x.count[S], 0);
}

Test(queue_index, the_victim_is_the_oldest_of_the_lowest_priority_not_above_the_newcomer)
{
    ix t;
    uint32_t v = 99;

    seven(&t);
    cr_assert(mwi_idx_pick_victim(&t.x, S, &v));
    cr_assert_eq(v, 5, "status 1");
    cr_assert(mwi_idx_pick_victim(&t.x, A, &v));
    cr_assert_eq(v, 5, "an alarm also evicts the oldest status first");

    mwi_idx_remove(&t.x, 5, 2); /* no status left */
    v = 99;
    cr_assert_not(mwi_idx_pick_victim(&t.x, S, &v), "a status never evicts anything higher");
    cr_assert_eq(v, 99);
    cr_assert(mwi_idx_pick_victim(&t.x, O, &v));
    cr_assert_eq(v, 3, "observation 4");
    cr_assert_eq(t.x.ent[v].seq, 4);

    mwi_idx_remove(&t.x, 3, 2); /* only alarms left */
    cr_assert_not(mwi_idx_pick_victim(&t.x, O, &v));
    cr_assert(mwi_idx_pick_victim(&t.x, A, &v));
    cr_assert_eq(v, 0);
    cr_assert_eq(t.x.ent[v].seq, 2, "alarms go last, oldest first");
}

Test(queue_index, low_water_and_oldest_append_time)
{
    ix t;

    ix_init(&t);
    cr_assert_eq(mwi_idx_low_water(&t.x), 0, "empty: no low water");
    cr_assert_eq(mwi_idx_oldest_ms(&t.x), UINT64_MAX, "empty: no oldest");
    seven(&t);
    cr_assert_eq(mwi_idx_low_water(&t.x), 1);
    cr_assert_eq(mwi_idx_oldest_ms(&t.x), 50, "by append time, whatever the number");
    cr_assert(mwi_idx_remove_range(&t.x, 1, 1) == 1);
    cr_assert_eq(mwi_idx_low_water(&t.x), 2, "the lowest number of any priority");
    cr_assert(mwi_idx_remove_range(&t.x, 2, 4) == 3);
    cr_assert_eq(mwi_idx_low_water(&t.x), 5);
    cr_assert_eq(mwi_idx_oldest_ms(&t.x), 500);
}

/* ---- the gap table ----------------------------------------------------------------------- */

Test(queue_gaps, slots_and_validity)
{
    cr_assert_eq(mwi_gap_slot(0, MWI_QUEUE_GAP_EVICTED), 0);
    cr_assert_eq(mwi_gap_slot(0, MWI_QUEUE_GAP_CORRUPT), 1);
    cr_assert_eq(mwi_gap_slot(MW_PRIORITY_OBSERVATION, MWI_QUEUE_GAP_EVICTED), 4);
    cr_assert_eq(mwi_gap_slot(MW_PRIORITY_ALARM, MWI_QUEUE_GAP_CORRUPT), 7);
    cr_assert(mwi_gap_valid(0, MWI_QUEUE_GAP_CORRUPT), "priority 0: header unreadable");
    cr_assert(mwi_gap_valid(MW_PRIORITY_ALARM, MWI_QUEUE_GAP_EVICTED));
    cr_assert_not(mwi_gap_valid(MW_PRIORITY_ALARM + 1u, MWI_QUEUE_GAP_EVICTED));
    cr_assert_not(mwi_gap_valid(MW_PRIORITY_STATUS, 0));
    cr_assert_not(mwi_gap_valid(MW_PRIORITY_STATUS, 3));
}

Test(queue_gaps, adding_counts_and_widens_the_range_of_numbers)
{
    mwi_queue_gap g[MWI_QUEUE_GAP_SLOTS];
    const mwi_queue_gap *o = &g[mwi_gap_slot(MW_PRIORITY_OBSERVATION, MWI_QUEUE_GAP_EVICTED)];
    const mwi_queue_gap *u = &g[mwi_gap_slot(0, MWI_QUEUE_GAP_CORRUPT)];

    memset(g, 0, sizeof g);
    mwi_gap_add(g, MW_PRIORITY_OBSERVATION, MWI_QUEUE_GAP_EVICTED, 10);
    cr_assert_eq(o->priority, MW_PRIORITY_OBSERVATION);
    cr_assert_eq(o->reason, MWI_QUEUE_GAP_EVICTED);
    cr_assert_eq(o->count, 1);
    cr_assert_eq(o->first_seq, 10);
    cr_assert_eq(o->last_seq, 10);
    mwi_gap_add(g, MW_PRIORITY_OBSERVATION, MWI_QUEUE_GAP_EVICTED, 7);
    mwi_gap_add(g, MW_PRIORITY_OBSERVATION, MWI_QUEUE_GAP_EVICTED, 12);
    mwi_gap_add(g, MW_PRIORITY_OBSERVATION, MWI_QUEUE_GAP_EVICTED, 0); /* number unknown */
    cr_assert_eq(o->count, 4);
    cr_assert_eq(o->first_seq, 7);
    cr_assert_eq(o->last_seq, 12, "an unknown number counts but does not move the range");

    mwi_gap_add(g, 0, MWI_QUEUE_GAP_CORRUPT, 0);
    cr_assert_eq(u->count, 1);
    cr_assert_eq(u->first_seq, 0);
    cr_assert_eq(u->last_seq, 0);
    mwi_gap_add(g, 0, MWI_QUEUE_GAP_CORRUPT, 5);
    cr_assert_eq(u->count, 2);
    cr_assert_eq(u->first_seq, 5, "a first known number replaces 'unknown'");
    cr_assert_eq(u->last_seq, 5);
    for (unsigned i = 0; i < MWI_QUEUE_GAP_SLOTS; i++) {
        if (&g[i] != o && &g[i] != u) {
            cr_assert_eq(g[i].count, 0, "slot %u untouched", i);
        }
    }
}

Test(queue_gaps, listing_copies_the_non_empty_entries_in_slot_order)
{
    mwi_queue_gap g[MWI_QUEUE_GAP_SLOTS], out[MWI_QUEUE_GAP_SLOTS];

    memset(g, 0, sizeof g);
    cr_assert_eq(mwi_gap_list(g, NULL, 0), 0);
    mwi_gap_add(g, MW_PRIORITY_ALARM, MWI_QUEUE_GAP_CORRUPT, 30);
    mwi_gap_add(g, 0, MWI_QUEUE_GAP_CORRUPT, 0);
    mwi_gap_add(g, MW_PRIORITY_OBSERVATION, MWI_QUEUE_GAP_CORRUPT, 20);
    cr_assert_eq(mwi_gap_list(g, NULL, 0), 3, "without a buffer: how many there are");
    memset(out, 0, sizeof out);
    cr_assert_eq(mwi_gap_list(g, out, 2), 2, "no more than the buffer holds");
    cr_assert_eq(out[0].priority, 0);
    cr_assert_eq(out[1].priority, MW_PRIORITY_OBSERVATION);
    cr_assert_eq(out[1].first_seq, 20);
    cr_assert_eq(out[2].count, 0, "nothing written past the buffer's end");
    cr_assert_eq(mwi_gap_list(g, out, MWI_QUEUE_GAP_SLOTS), 3);
    cr_assert_eq(out[2].priority, MW_PRIORITY_ALARM);
    cr_assert_eq(out[2].reason, MWI_QUEUE_GAP_CORRUPT);
    cr_assert_eq(out[2].last_seq, 30);
}

Test(queue_gaps, subtracting_a_reported_copy_keeps_what_was_added_since)
{
    mwi_queue_gap g[MWI_QUEUE_GAP_SLOTS], done;
    const mwi_queue_gap *s = &g[mwi_gap_slot(MW_PRIORITY_STATUS, MWI_QUEUE_GAP_EVICTED)];

    memset(g, 0, sizeof g);
    for (uint64_t seq = 10; seq <= 14; seq++) {
        mwi_gap_add(g, MW_PRIORITY_STATUS, MWI_QUEUE_GAP_EVICTED, seq);
    }
    done = *s; /* what the gateway was told: 5 messages, 10..14 */
    mwi_gap_add(g, MW_PRIORITY_STATUS, MWI_QUEUE_GAP_EVICTED, 17);
    mwi_gap_add(g, MW_PRIORITY_STATUS, MWI_QUEUE_GAP_EVICTED, 20);
    cr_assert_eq(mwi_gap_subtract(g, &done, 1), MW_OK);
    cr_assert_eq(s->count, 2);
    cr_assert_eq(s->first_seq, 15, "past the last number reported");
    cr_assert_eq(s->last_seq, 20);
    cr_assert_eq(s->priority, MW_PRIORITY_STATUS);

    /* A report with no numbers lowers the count only. */
    done.count = 1;
    done.first_seq = done.last_seq = 0;
    cr_assert_eq(mwi_gap_subtract(g, &done, 1), MW_OK);
    cr_assert_eq(s->count, 1);
    cr_assert_eq(s->first_seq, 15);

    /* Covering the whole count clears the entry. */
    done.count = 1;
    cr_assert_eq(mwi_gap_subtract(g, &done, 1), MW_OK);
    cr_assert_eq(mwi_gap_list(g, NULL, 0), 0);
    cr_assert_eq(s->first_seq, 0);
    cr_assert_eq(s->last_seq, 0);
    cr_assert_eq(mwi_gap_subtract(g, NULL, 0), MW_OK, "nothing to subtract");
}

Test(queue_gaps, an_invalid_entry_is_refused_and_changes_nothing)
{
    mwi_queue_gap g[MWI_QUEUE_GAP_SLOTS], before[MWI_QUEUE_GAP_SLOTS], done[2];

    memset(g, 0, sizeof g);
    mwi_gap_add(g, MW_PRIORITY_ALARM, MWI_QUEUE_GAP_EVICTED, 3);
    mwi_gap_add(g, MW_PRIORITY_STATUS, MWI_QUEUE_GAP_CORRUPT, 4);
    memcpy(before, g, sizeof g);
    done[0] = g[mwi_gap_slot(MW_PRIORITY_ALARM, MWI_QUEUE_GAP_EVICTED)]; /* valid */
    done[1] = done[0];
    done[1].priority = (mw_priority)(MW_PRIORITY_ALARM + 1);
    cr_assert_eq(mwi_gap_subtract(g, done, 2), MW_EINVAL);
    cr_assert_eq(memcmp(g, before, sizeof g), 0, "the valid entry before it was not applied");
    done[1] = done[0];
    done[1].reason = (mwi_queue_gap_reason)0;
    cr_assert_eq(mwi_gap_subtract(g, done, 2), MW_EINVAL);
    cr_assert_eq(memcmp(g, before, sizeof g), 0);
    cr_assert_eq(mwi_gap_subtract(g, done, 1), MW_OK);
    cr_assert_eq(mwi_gap_list(g, NULL, 0), 1, "only the status entry is left");
}
