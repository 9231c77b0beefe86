/* SPDX-License-Identifier: Apache-2.0 */
/* seqstore.c -- numbers that never repeat across power cuts: a durable ceiling reserved in blocks.
 */
#include <string.h>

#include "core/detail.h"
#include "queue/format.h"
#include "queue/queue.h"

/*
 * Why this is safe (the invariant every path below keeps):
 *
 *   I1. A number n is handed out only if a slot holding a ceiling > n has been synced.
 *   I2. A reservation overwrites only the slot that does NOT hold the newest durable ceiling,
 *       and erases it, syncs, writes, syncs, in that order.
 *
 * After a power cut, by I2 at most one slot is being changed and the other still holds the
 * newest durable ceiling C, or the one before it. Three cases on reopen:
 *   - both slots valid: resume at the larger ceiling. By I1 no number >= it was handed out.
 *   - one valid, the other erased or damaged (torn write, torn erase, bit flip): the other
 *     slot may have been the newer one, holding valid+block, with numbers up to it handed out
 *     (a bit flip after the fact; or such a damaged slot whose repair was interrupted after
 *     its erase). Resume at valid + block. After a power cut alone this skips one block, never
 *     more: the interrupted reservation was for the block above the valid ceiling, and
 *     nothing in it was handed out because its sync never returned. (Exception: the intact
 *     slot is the very first write, counter 1; the other can then only be its twin, which
 *     holds the same ceiling.)
 *   - neither valid: a torn first initialisation (one torn slot, the other erased: nothing was
 *     ever handed out) starts afresh; anything else is damage to both slots, and the next safe
 *     number is unknown: open refuses rather than guess.
 * Erase and write are synced separately so that a write is torn only over erased bytes: its
 * trailer then reads 0xFF, which tells a power cut from a bit flip (format.h).
 */

#define SLOT_MAGIC      0x3253574Du /* "MWS2" */
#define SLOT_MAGIC_V1   0x3153574Du /* "MWS1": 32-byte slots without caller data */
#define SLOT_BYTES      48u
#define SLOT_AUX_AT     24u
#define SLOT_CRC_AT     40u
#define SLOT_TRAILER_AT 47u

enum slot_state { SLOT_ERASED, SLOT_VALID, SLOT_TORN, SLOT_CORRUPT };

typedef struct slot {
    enum slot_state state;
    uint32_t block;
    uint64_t counter;
    uint64_t ceiling;
    uint8_t aux[MWI_SEQ_AUX];
} slot;

static uint32_t unit_of(uint32_t u)
{
    return u == 0 ? 1u : u;
}

uint32_t mwi_seq_region_size(uint32_t erase_unit, uint32_t write_unit)
{
    uint32_t w = unit_of(write_unit);
    uint32_t e = unit_of(erase_unit);
    return 2u * mwi_align_up(mwi_align_up(SLOT_BYTES, w), e);
}

static void slot_parse(const uint8_t *p, slot *out)
{
    memset(out, 0, sizeof *out);
    if (mwi_all_erased(p, SLOT_BYTES)) {
        out->state = SLOT_ERASED;
        return;
    }
    if (mwi_get32(p) == SLOT_MAGIC && mwi_get32(p + SLOT_CRC_AT) == mwi_crc32c(0, p, SLOT_CRC_AT) &&
        p[44] == 0 && p[45] == 0 && p[46] == 0 && p[SLOT_TRAILER_AT] == MWI_TRAILER) {
        out->state = SLOT_VALID;
        out->block = mwi_get32(p + 4);
        out->counter = mwi_get64(p + 8);
        out->ceiling = mwi_get64(p + 16);
        memcpy(out->aux, p + SLOT_AUX_AT, MWI_SEQ_AUX);
        return;
    }
    /* A torn write leaves its end erased, a torn erase its start; a bit flip in a complete
     * slot can do neither (0x4D and 0x5A are not one flip away from 0xFF). */
    out->state =
        (p[0] == MWI_ERASED || p[SLOT_TRAILER_AT] == MWI_ERASED) ? SLOT_TORN : SLOT_CORRUPT;
}

static bool geometry_ok(const mw_storage_t *st)
{
    uint32_t w = unit_of(st->write_unit);
    uint32_t e = unit_of(st->erase_unit);
    return w <= MWI_WRITE_UNIT_MAX && e % w == 0 && st->read != NULL && st->write != NULL &&
           st->erase != NULL && st->sync != NULL && st->size >= mwi_seq_region_size(e, w);
}

mw_err mwi_seq_open(const mw_storage_t *storage, uint64_t block, uint64_t first, mwi_seq *out_seq,
                    mw_error_detail_t *out_detail)
{
    uint8_t raw[SLOT_BYTES];
    slot s[2];
    mwi_seq *q = out_seq;

    if (storage == NULL || out_seq == NULL || block == 0 || block > UINT32_MAX ||
        !geometry_ok(storage)) {
        mwi_detail_first(out_detail, MW_EINVAL, 0,
                         "sequence store: missing storage, block not in 1..2^32-1, or region "
                         "smaller than two slots / not aligned to its units");
        return MW_EINVAL;
    }
    memset(q, 0, sizeof *q);
    q->st = *storage;
    q->block = block;
    q->slot_size = mwi_seq_region_size(storage->erase_unit, storage->write_unit) / 2u;
    for (unsigned i = 0; i < 2; i++) {
        if (storage->read(storage->ctx, i * q->slot_size, raw, sizeof raw) != MW_OK) {
            mwi_detail_first(out_detail, MW_EIO, 0, "sequence store: cannot read a slot");
            return MW_EIO;
        }
        if (i == 0 && mwi_get32(raw) == SLOT_MAGIC_V1) {
            /* Format 1 kept no sequence space: its numbers cannot be told from a later
             * incarnation's, and its geometry differs. Refused rather than misread. */
            mwi_detail_first(out_detail, MW_ECONFIG, 0,
                             "sequence store: written by an older medwire (format 1); deliver "
                             "what it holds with that version, then start from an erased region");
            return MW_ECONFIG;
        }
        slot_parse(raw, &s[i]);
        if (s[i].state == SLOT_TORN) {
            q->torn_slots |= (uint8_t)(1u << i);
        } else if (s[i].state == SLOT_CORRUPT) {
            q->corrupt_slots |= (uint8_t)(1u << i);
        }
    }
    if (first == 0) {
        first = 1;
    }
    if (s[0].state == SLOT_VALID && s[1].state == SLOT_VALID) {
        unsigned newest = s[1].counter > s[0].counter ? 1u : 0u;
        q->counter = s[newest].counter;
        q->next = s[0].ceiling > s[1].ceiling ? s[0].ceiling : s[1].ceiling;
        q->write_slot = (uint8_t)(newest ^ 1u);
        memcpy(q->aux, s[newest].aux, MWI_SEQ_AUX);
    } else if (s[0].state == SLOT_VALID || s[1].state == SLOT_VALID) {
        unsigned v = s[0].state == SLOT_VALID ? 0u : 1u;
        uint64_t step = s[v].block > block ? s[v].block : block;
        q->counter = s[v].counter;
        q->next = s[v].ceiling;
        /* The damaged slot may have held newer caller data (a write cut short, or a later bit
         * flip): the older value comes back. The client keeps its sequence space here, and an
         * older space is safe: the gateway has retired it and asks for a resynchronisation. */
        memcpy(q->aux, s[v].aux, MWI_SEQ_AUX);
        /* Slots alternate from counter 1 (A) and 2 (B, same ceiling): if the intact slot is
         * still A's first write, the other can only be its twin, never a block ahead. */
        if (s[v].counter != 1) {
            if (q->next > UINT64_MAX - step) {
                mwi_detail_first(out_detail, MW_EIO, 0, "sequence store: number space exhausted");
                return MW_EIO;
            }
            q->next += step;
        }
        q->write_slot = (uint8_t)(v ^ 1u);
    } else if ((s[0].state == SLOT_ERASED && s[1].state != SLOT_CORRUPT) ||
               (s[1].state == SLOT_ERASED && s[0].state != SLOT_CORRUPT)) {
        /* Both erased, or a first initialisation torn in slot A before B was touched. */
        q->fresh = true;
        q->next = first;
        q->write_slot = 0;
    } else {
        /* Geometry stays filled in for mwi_seq_restart(); next() refuses until then. */
        q->broken = true;
        mwi_detail_first(out_detail, MW_EIO, 0,
                         "sequence store: both slots are damaged, the next number that was "
                         "never used is unknown; refusing to hand out any");
        return MW_EIO;
    }
    q->ceiling = q->next;
    return MW_OK;
}

/* Erase, sync, write, sync: see the invariant at the top. */
static mw_err write_slot(mwi_seq *q, unsigned which, uint64_t counter, uint64_t ceiling)
{
    _Static_assert(SLOT_AUX_AT + MWI_SEQ_AUX == SLOT_CRC_AT, "slot layout");
    uint8_t buf[MWI_WRITE_UNIT_MAX > SLOT_BYTES ? MWI_WRITE_UNIT_MAX : SLOT_BYTES];
    uint32_t len = mwi_align_up(SLOT_BYTES, unit_of(q->st.write_unit));
    uint32_t off = which * q->slot_size;
    mw_err e;

    memset(buf, MWI_ERASED, len);
    mwi_put32(buf, SLOT_MAGIC);
    mwi_put32(buf + 4, (uint32_t)q->block);
    mwi_put64(buf + 8, counter);
    mwi_put64(buf + 16, ceiling);
    memcpy(buf + SLOT_AUX_AT, q->aux, MWI_SEQ_AUX);
    mwi_put32(buf + SLOT_CRC_AT, mwi_crc32c(0, buf, SLOT_CRC_AT));
    buf[44] = buf[45] = buf[46] = 0;
    buf[SLOT_TRAILER_AT] = MWI_TRAILER;
    e = q->st.erase(q->st.ctx, off, q->slot_size);
    if (e == MW_OK) {
        e = q->st.sync(q->st.ctx);
    }
    if (e == MW_OK) {
        e = q->st.write(q->st.ctx, off, buf, len);
    }
    if (e == MW_OK) {
        e = q->st.sync(q->st.ctx);
    }
    return e;
}

/* Makes @p ceiling (and the caller data) durable in the slot that does not hold the newest. */
static mw_err persist(mwi_seq *q, uint64_t ceiling)
{
    mw_err e;
    if (q->fresh) {
        /* Both slots, one after the other: from now on a single damaged slot always has a
         * valid partner, which the recovery rules above rely on. */
        e = write_slot(q, 0, 1, ceiling);
        if (e == MW_OK) {
            e = write_slot(q, 1, 2, ceiling);
        }
        if (e == MW_OK) {
            q->counter = 2;
            q->write_slot = 0;
            q->fresh = false;
        }
    } else {
        e = write_slot(q, q->write_slot, q->counter + 1, ceiling);
        if (e == MW_OK) {
            q->counter++;
            q->write_slot ^= 1u;
        }
    }
    if (e != MW_OK) {
        q->broken = true;
        return MW_EIO;
    }
    q->ceiling = ceiling;
    return MW_OK;
}

mw_err mwi_seq_next(mwi_seq *q, uint64_t *out_value)
{
    if (q == NULL || out_value == NULL) {
        return MW_EINVAL;
    }
    if (q->broken) {
        return MW_ECLOSED;
    }
    if (q->next == UINT64_MAX) {
        return MW_EFULL;
    }
    if (q->next >= q->ceiling) {
        uint64_t ceiling = q->next > UINT64_MAX - q->block ? UINT64_MAX : q->next + q->block;
        mw_err e = persist(q, ceiling);
        if (e != MW_OK) {
            return e;
        }
    }
    *out_value = q->next++;
    return MW_OK;
}

mw_err mwi_seq_set_aux(mwi_seq *q, const uint8_t aux[MWI_SEQ_AUX])
{
    if (q == NULL || aux == NULL) {
        return MW_EINVAL;
    }
    if (q->broken) {
        return MW_ECLOSED;
    }
    memcpy(q->aux, aux, MWI_SEQ_AUX);
    /* The same ceiling again (I1 holds: nothing above it is handed out), with the new data. */
    return persist(q, q->ceiling > q->next ? q->ceiling : q->next);
}

const uint8_t *mwi_seq_aux(const mwi_seq *q)
{
    return q == NULL ? NULL : q->aux;
}

void mwi_seq_restart(mwi_seq *q, uint64_t first)
{
    if (q == NULL) {
        return;
    }
    q->fresh = true;
    q->broken = false;
    q->next = first == 0 ? 1 : first;
    q->ceiling = q->next;
    q->write_slot = 0;
}

void mwi_seq_raise(mwi_seq *q, uint64_t floor)
{
    if (q != NULL && floor > q->next) {
        q->next = floor;
    }
}

uint64_t mwi_seq_peek(const mwi_seq *q)
{
    return q == NULL ? 0 : q->next;
}
