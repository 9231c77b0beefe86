/* SPDX-License-Identifier: Apache-2.0 */
/* replay.c -- per-device replay state: which sequence numbers were delivered in which space, with
 * a digest of each recent one, so that acknowledged always means delivered. */
#include <string.h>

#include "session/replay.h"

static void start(mwi_replay *r, uint64_t space)
{
    r->space = space;
    r->fresh = false;
    r->low = r->done = 1; /* sequence numbers start at 1 */
    r->top = 0;
    r->n = 0;
    r->nd = 0;
}

void mwi_replay_init(mwi_replay *r)
{
    memset(r, 0, sizeof *r);
    start(r, 0);
    r->fresh = true;
}

void mwi_replay_enter(mwi_replay *r, uint64_t space)
{
    if (!r->fresh) {
        /* Most recent first; the oldest falls off the end (a durable store keeps it). */
        uint32_t keep = r->nretired < MWI_REPLAY_RETIRED ? r->nretired : MWI_REPLAY_RETIRED - 1;
        memmove(&r->retired[1], &r->retired[0], keep * sizeof r->retired[0]);
        r->retired[0] = r->space;
        r->nretired = keep + 1;
    }
    start(r, space);
}

bool mwi_replay_retired(const mwi_replay *r, uint64_t space)
{
    for (uint32_t i = 0; i < r->nretired; i++)
        if (r->retired[i] == space)
            return true;
    return false;
}

static bool delivered(const mwi_replay *r, uint64_t seq)
{
    if (seq < r->done)
        return true;
    for (uint32_t i = 0; i < r->n && r->r[i].first <= seq; i++)
        if (seq <= r->r[i].last)
            return true;
    return false;
}

mwi_replay_verdict mwi_replay_check(const mwi_replay *r, uint64_t seq, uint64_t digest)
{
    if (seq >= r->low && !delivered(r, seq))
        return MWI_REPLAY_NEW;
    /* Settled: only the content can tell a repeat from a number used twice (a device whose
     * storage was rolled back, or a forged low-water mark that settled numbers early). */
    for (uint32_t i = 0; i < r->nd; i++)
        if (r->d[i].seq == seq)
            return r->d[i].digest == digest ? MWI_REPLAY_DUPLICATE : MWI_REPLAY_CONFLICT;
    return MWI_REPLAY_UNKNOWN;
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
    if (seq == 0 || seq == UINT64_MAX || seq < r->done)
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

/* A full table gives up the lowest number's digest: the device is least likely to send that
 * one again, and if it does, the gateway asks for a resynchronisation instead of guessing. */
static void keep_digest(mwi_replay *r, uint64_t seq, uint64_t digest)
{
    uint32_t at = r->nd;
    if (r->nd == MWI_REPLAY_DIGESTS) {
        at = 0;
        for (uint32_t i = 1; i < r->nd; i++)
            if (r->d[i].seq < r->d[at].seq)
                at = i;
    } else {
        r->nd++;
    }
    r->d[at].seq = seq;
    r->d[at].digest = digest;
}

static mw_err record(mwi_replay *r, uint64_t seq)
{
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

mw_err mwi_replay_mark(mwi_replay *r, uint64_t seq, uint64_t digest)
{
    if (seq == 0 || seq == UINT64_MAX || seq < r->low || delivered(r, seq))
        return MW_EINVAL;
    mw_err e = record(r, seq);
    if (e != MW_OK)
        return e;
    keep_digest(r, seq, digest);
    if (seq > r->top)
        r->top = seq;
    return MW_OK;
}

void mwi_replay_advance(mwi_replay *r, uint64_t low_water)
{
    /* Never beyond what was delivered: a mark past it would settle numbers the gateway never
     * saw, and the device's later messages would be acknowledged without being delivered. */
    if (r->top == 0)
        return;
    if (low_water > r->top + 1)
        low_water = r->top + 1;
    if (low_water <= r->low)
        return;
    r->low = low_water;
    uint32_t k = 0;
    for (uint32_t i = 0; i < r->nd; i++)
        if (r->d[i].seq >= low_water)
            r->d[k++] = r->d[i];
    r->nd = k;
    if (r->done >= low_water)
        return;
    r->done = low_water;
    /* Drop ranges wholly below, then fold any that reach the new prefix. */
    k = 0;
    while (k < r->n && r->r[k].last < low_water)
        k++;
    memmove(&r->r[0], &r->r[k], (r->n - k) * sizeof r->r[0]);
    r->n -= k;
    fold_low(r);
}
