/* SPDX-License-Identifier: Apache-2.0 */
/* index.h -- the queue's in-memory index (flush order) and gap table: pure functions over
 * caller memory, no storage, no crypto. The queue rebuilds both from the log at open
 * (recovery.c) and keeps them in step with every record it writes (queue.c, log.c).
 * tests/queue/test_queue_index.c drives them directly. */
#ifndef MWI_QUEUE_INDEX_H
#define MWI_QUEUE_INDEX_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "medwire/err.h"
#include "queue/queue.h"

/** One queued message: where its record is, and what the index orders it by. */
typedef struct mwi_idx_entry {
    uint64_t seq;
    uint64_t t_ms; /**< the caller's now_ms at append, for the age statistic */
    uint32_t off;  /**< record offset in the region */
    uint16_t len;  /**< record bytes */
    uint8_t prio;
    uint8_t ghost; /**< recovery only: a damaged record that a later DROP may still cover */
} mwi_idx_entry;

/**
 * The queued messages in flush order: one segment per priority, alarms first, each sorted by
 * ascending sequence number (so a segment's first entry is its oldest). Plain data over the
 * caller's array of @c slots entries; zero @c n and @c count for an empty index.
 */
typedef struct mwi_idx {
    mwi_idx_entry *ent;
    uint32_t n;        /**< entries held */
    uint32_t slots;    /**< entries ent[] can hold; mwi_idx_insert() needs n < slots */
    uint32_t count[4]; /**< entries per priority (indexed by mw_priority, 0 unused) */
} mwi_idx;

/** Index of the first entry of priority @p p's segment. */
uint32_t mwi_idx_seg_start(const mwi_idx *x, unsigned p);
/** Index one past the last entry of priority @p p's segment. */
uint32_t mwi_idx_seg_end(const mwi_idx *x, unsigned p);
/** First index of segment @p p whose seq is >= @p seq (mwi_idx_seg_end() if none). */
uint32_t mwi_idx_seg_lower(const mwi_idx *x, unsigned p, uint64_t seq);
/** First index of segment @p p whose seq is > @p after (a cursor's next position);
 *  @p after UINT64_MAX means past the end. */
uint32_t mwi_idx_after(const mwi_idx *x, unsigned p, uint64_t after);

/** True if @p seq is queued, at *@p out_i (may be NULL). */
bool mwi_idx_find(const mwi_idx *x, uint64_t seq, uint32_t *out_i);
/** Inserts @p e in flush order. Needs room (n < slots) and a seq not queued. */
void mwi_idx_insert(mwi_idx *x, const mwi_idx_entry *e);
/** Removes @p k entries from index @p i on (all of one segment). */
void mwi_idx_remove(mwi_idx *x, uint32_t i, uint32_t k);

/** Number of entries of segment @p p with seq in [first, last], and where they start. */
uint32_t mwi_idx_seg_range(const mwi_idx *x, unsigned p, uint64_t first, uint64_t last,
                           uint32_t *out_i);
/** Number of entries of any priority with seq in [first, last]. */
uint32_t mwi_idx_count_range(const mwi_idx *x, uint64_t first, uint64_t last);
/** Removes every entry with seq in [first, last]; returns how many. */
uint32_t mwi_idx_remove_range(mwi_idx *x, uint64_t first, uint64_t last);

/** The eviction policy: the oldest message of the lowest priority present that is not above
 *  @p prio (alarms last; never a higher priority for a lower one). False if there is none. */
bool mwi_idx_pick_victim(const mwi_idx *x, unsigned prio, uint32_t *out_i);
/** The lowest sequence number held, 0 if none. */
uint64_t mwi_idx_low_water(const mwi_idx *x);
/** The earliest append time held, UINT64_MAX if none. */
uint64_t mwi_idx_oldest_ms(const mwi_idx *x);

/* ---- the gap table: ::MWI_QUEUE_GAP_SLOTS entries, one per (priority 0..3, reason) ---- */

/** The slot of (priority, reason) in a gap table. */
static inline unsigned mwi_gap_slot(unsigned prio, unsigned reason)
{
    return prio * 2u + (reason - 1u);
}

/** True for a priority 0..3 (0: unknown) and a ::mwi_queue_gap_reason. */
static inline bool mwi_gap_valid(unsigned prio, unsigned reason)
{
    return prio <= MW_PRIORITY_ALARM &&
           (reason == MWI_QUEUE_GAP_EVICTED || reason == MWI_QUEUE_GAP_CORRUPT);
}

/** Counts one lost message of @p prio for @p reason (@p seq 0: number unknown), widening the
 *  entry's [first_seq, last_seq] to include @p seq. */
void mwi_gap_add(mwi_queue_gap *gaps, unsigned prio, unsigned reason, uint64_t seq);

/** Copies up to @p cap non-empty entries into @p out (may be NULL: just counts); returns how
 *  many were copied, or with @p out NULL how many there are. */
size_t mwi_gap_list(const mwi_queue_gap *gaps, mwi_queue_gap *out, size_t cap);

/**
 * Subtracts the @p n entries of @p done (copies of earlier entries) from @p gaps, keeping what
 * was added since: an entry whose count is covered is cleared; otherwise its count drops and
 * its first_seq moves past done's last_seq. @return ::MW_OK; ::MW_EINVAL (an entry of @p done
 * with an invalid priority or reason: @p gaps is left unchanged).
 */
MW_NODISCARD mw_err mwi_gap_subtract(mwi_queue_gap *gaps, const mwi_queue_gap *done, size_t n);

#endif
