/* SPDX-License-Identifier: Apache-2.0 */
/* index.c -- the queue's in-memory index in flush order, and its gap table (index.h). */
#include <string.h>

#include "queue/index.h"

_Static_assert(MW_PRIORITY_ALARM == 3 && MW_PRIORITY_STATUS == 1, "priority is an index 1..3");

/* ---- the index (flush order) ------------------------------------------------------------- */

uint32_t mwi_idx_seg_start(const mwi_idx *x, unsigned p)
{
    uint32_t s = 0;
    for (unsigned k = MW_PRIORITY_ALARM; k > p; k--) {
        s += x->count[k];
    }
    return s;
}

uint32_t mwi_idx_seg_end(const mwi_idx *x, unsigned p)
{
    return mwi_idx_seg_start(x, p) + x->count[p];
}

uint32_t mwi_idx_seg_lower(const mwi_idx *x, unsigned p, uint64_t seq)
{
    uint32_t lo = mwi_idx_seg_start(x, p);
    uint32_t hi = lo + x->count[p];
    while (lo < hi) {
        uint32_t mid = lo + (hi - lo) / 2u;
        if (x->ent[mid].seq < seq) {
            lo = mid + 1u;
        } else {
            hi = mid;
        }
    }
    return lo;
}

uint32_t mwi_idx_after(const mwi_idx *x, unsigned p, uint64_t after)
{
    return after == UINT64_MAX ? mwi_idx_seg_end(x, p) : mwi_idx_seg_lower(x, p, after + 1u);
}

bool mwi_idx_find(const mwi_idx *x, uint64_t seq, uint32_t *out_i)
{
    for (unsigned p = MW_PRIORITY_STATUS; p <= MW_PRIORITY_ALARM; p++) {
        uint32_t i = mwi_idx_seg_lower(x, p, seq);
        if (i < mwi_idx_seg_end(x, p) && x->ent[i].seq == seq) {
            if (out_i != NULL) {
                *out_i = i;
            }
            return true;
        }
    }
    return false;
}

void mwi_idx_insert(mwi_idx *x, const mwi_idx_entry *e)
{
    uint32_t i = mwi_idx_seg_lower(x, e->prio, e->seq);
    memmove(&x->ent[i + 1u], &x->ent[i], (size_t)(x->n - i) * sizeof(mwi_idx_entry));
    x->ent[i] = *e;
    x->n++;
    x->count[e->prio]++;
}

void mwi_idx_remove(mwi_idx *x, uint32_t i, uint32_t k)
{
    if (k == 0) {
        return;
    }
    x->count[x->ent[i].prio] -= k;
    memmove(&x->ent[i], &x->ent[i + k], (size_t)(x->n - i - k) * sizeof(mwi_idx_entry));
    x->n -= k;
}

uint32_t mwi_idx_seg_range(const mwi_idx *x, unsigned p, uint64_t first, uint64_t last,
                           uint32_t *out_i)
{
    uint32_t lo = mwi_idx_seg_lower(x, p, first);
    uint32_t hi = last == UINT64_MAX ? mwi_idx_seg_end(x, p) : mwi_idx_seg_lower(x, p, last + 1u);
    *out_i = lo;
    return hi - lo;
}

uint32_t mwi_idx_count_range(const mwi_idx *x, uint64_t first, uint64_t last)
{
    uint32_t hits = 0;
    for (unsigned p = MW_PRIORITY_STATUS; p <= MW_PRIORITY_ALARM; p++) {
        uint32_t at;
        hits += mwi_idx_seg_range(x, p, first, last, &at);
    }
    return hits;
}

uint32_t mwi_idx_remove_range(mwi_idx *x, uint64_t first, uint64_t last)
{
    uint32_t removed = 0;
    for (unsigned p = MW_PRIORITY_STATUS; p <= MW_PRIORITY_ALARM; p++) {
        uint32_t at;
        uint32_t c = mwi_idx_seg_range(x, p, first, last, &at);
        mwi_idx_remove(x, at, c);
        removed += c;
    }
    return removed;
}

bool mwi_idx_pick_victim(const mwi_idx *x, unsigned prio, uint32_t *out_i)
{
    for (unsigned p = MW_PRIORITY_STATUS; p <= prio; p++) {
        if (x->count[p] > 0) {
            *out_i = mwi_idx_seg_start(x, p);
            return true;
        }
    }
    return false;
}

uint64_t mwi_idx_low_water(const mwi_idx *x)
{
    uint64_t low = 0;
    /* Each priority's segment is sorted: its first entry is its lowest number. */
    for (unsigned p = MW_PRIORITY_STATUS; p <= MW_PRIORITY_ALARM; p++) {
        if (x->count[p] > 0) {
            uint64_t s = x->ent[mwi_idx_seg_start(x, p)].seq;
            low = (low == 0 || s < low) ? s : low;
        }
    }
    return low;
}

uint64_t mwi_idx_oldest_ms(const mwi_idx *x)
{
    uint64_t oldest = UINT64_MAX;
    for (uint32_t i = 0; i < x->n; i++) {
        if (x->ent[i].t_ms < oldest) {
            oldest = x->ent[i].t_ms;
        }
    }
    return oldest;
}

/* ---- the gap table ----------------------------------------------------------------------- */

void mwi_gap_add(mwi_queue_gap *gaps, unsigned prio, unsigned reason, uint64_t seq)
{
    mwi_queue_gap *g = &gaps[mwi_gap_slot(prio, reason)];

    if (g->count == 0) {
        g->priority = (mw_priority)prio;
        g->reason = (mwi_queue_gap_reason)reason;
        g->first_seq = seq;
        g->last_seq = seq;
    } else if (seq != 0) {
        if (g->first_seq == 0 || seq < g->first_seq) {
            g->first_seq = seq;
        }
        if (seq > g->last_seq) {
            g->last_seq = seq;
        }
    }
    g->count++;
}

size_t mwi_gap_list(const mwi_queue_gap *gaps, mwi_queue_gap *out, size_t cap)
{
    size_t n = 0;
    for (unsigned i = 0; i < MWI_QUEUE_GAP_SLOTS; i++) {
        if (gaps[i].count == 0) {
            continue;
        }
        if (out != NULL && n < cap) {
            out[n] = gaps[i];
        }
        n++;
    }
    return out == NULL ? n : (n < cap ? n : cap);
}

mw_err mwi_gap_subtract(mwi_queue_gap *gaps, const mwi_queue_gap *done, size_t n)
{
    mwi_queue_gap t[MWI_QUEUE_GAP_SLOTS];

    memcpy(t, gaps, sizeof t);
    for (size_t i = 0; i < n; i++) {
        unsigned prio = (unsigned)done[i].priority, reason = (unsigned)done[i].reason;
        mwi_queue_gap *g;
        if (!mwi_gap_valid(prio, reason)) {
            return MW_EINVAL;
        }
        g = &t[mwi_gap_slot(prio, reason)];
        if (g->count <= done[i].count) {
            memset(g, 0, sizeof *g);
            continue;
        }
        /* Evictions of one priority go oldest first, so what was added since the caller's copy
         * has numbers above its last one. */
        g->count -= done[i].count;
        if (done[i].last_seq != 0 && done[i].last_seq < g->last_seq &&
            done[i].last_seq >= g->first_seq) {
            g->first_seq = done[i].last_seq + 1u;
        }
    }
    memcpy(gaps, t, sizeof t);
    return MW_OK;
}
