/* SPDX-License-Identifier: Apache-2.0 */
/* replay.c -- per-device replay state: which sequence numbers were delivered, as a low-water mark
 * and a few ranges. */
#include <string.h>

#include "session/replay.h"

void mwi_replay_init(mwi_replay *r)
{
    memset(r, 0, sizeof *r);
    r->low = r->done = 1; /* sequence numbers start at 1 */
}

mwi_replay_verdict mwi_replay_check(const mwi_replay *r, uint64_t seq)
{
    if (seq < r->low)
        return MWI_REPLAY_OLD;
    if (seq < r->done)
        return MWI_REPLAY_DUPLICATE;
    for (uint32_t i = 0; i < r->n && r->r[i].first <= seq; i++)
        if (seq <= r->r[i].last)
            return MWI_REPLAY_DUPLICATE;
    return MWI_REPLAY_NEW;
}

/* Index of the first range that ends at or after seq - 1 (where seq would
 * join or be inserted). */
static uint32_t position(const mwi_replay *r, uint64_t seq)
{
    uint32_t i = 0;
    while (i < r->n && r->r[i].last + 1 < seq)
        i++;
    return i;
}

bool mwi_replay_has_room(const mwi_replay *r, uint64_t seq)
{
    if (seq == 0 || seq < r->done)
        return false;
    uint32_t i = position(r, seq);
    bool joins = (i < r->n && r->r[i].first <= seq + 1) || seq == r->done;
    return joins || r->n < MWI_REPLAY_MAX_RANGES;
}

/* Ranges that reach the settled prefix fold into it: the common case of
 * in-order delivery keeps zero ranges. */
static void fold_low(mwi_replay *r)
{
    while (r->n > 0 && r->r[0].first <= r->done) {
        if (r->r[0].last + 1 > r->done)
            r->done = r->r[0].last + 1;
        memmove(&r->r[0], &r->r[1], (r->n - 1) * sizeof r->r[0]);
        r->n--;
    }
}

mw_err mwi_replay_mark(mwi_replay *r, uint64_t seq)
{
    if (seq == 0 || seq < r->done || seq == UINT64_MAX)
        return seq != 0 && seq < r->done && seq >= r->low ? MW_OK : MW_EINVAL;
    if (mwi_replay_check(r, seq) == MWI_REPLAY_DUPLICATE)
        return MW_OK;
    if (seq == r->done) {
        r->done++;
        fold_low(r);
        return MW_OK;
    }
    uint32_t i = position(r, seq);
    if (i < r->n && r->r[i].first <= seq + 1) {
        /* Touches range i: extend it, and merge with the next if they meet. */
        if (seq < r->r[i].first)
            r->r[i].first = seq;
        if (seq > r->r[i].last)
            r->r[i].last = seq;
        if (i + 1 < r->n && r->r[i].last + 1 >= r->r[i + 1].first) {
            r->r[i].last = r->r[i + 1].last;
            memmove(&r->r[i + 1], &r->r[i + 2], (r->n - i - 2) * sizeof r->r[0]);
            r->n--;
        }
        return MW_OK;
    }
    if (r->n == MWI_REPLAY_MAX_RANGES)
        return MW_EFULL;
    memmove(&r->r[i + 1], &r->r[i], (r->n - i) * sizeof r->r[0]);
    r->r[i].first = r->r[i].last = seq;
    r->n++;
    return MW_OK;
}

void mwi_replay_advance(mwi_replay *r, uint64_t low_water)
{
    if (low_water <= r->low)
        return;
    r->low = low_water;
    if (r->done >= low_water)
        return;
    r->done = low_water;
    /* Drop ranges wholly below, then fold any that reach the new prefix. */
    uint32_t k = 0;
    while (k < r->n && r->r[k].last < low_water)
        k++;
    memmove(&r->r[0], &r->r[k], (r->n - k) * sizeof r->r[0]);
    r->n -= k;
    fold_low(r);
}
