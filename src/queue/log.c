/* SPDX-License-Identifier: Apache-2.0 */
/* log.c -- the queue's log on storage: an append-only log in two alternating halves (log.h). */
#include <string.h>

#include "core/detail.h"
#include "queue/log.h"

/*
 * Layout (docs/queue.md has the byte-level format). The region is [nonce store][half 0]
 * [half 1][label]. Each half is a log: a header (written last, two copies) and then records
 * appended one after another. The half with the valid header of the highest generation is the
 * active one; the other is either erased, dead, or an unfinished compaction that recovery
 * ignores. The label, written once, is last so that a region cut short (a truncated file) is
 * recognised as such; the nonce store is first, where truncation reaches last.
 *
 * Why two halves and not a circular log of sectors: compaction copies the live records into
 * the erased half and then commits it with ONE header write. Before that write the old half
 * is the truth, after it the new one; there is no state in between for recovery to repair,
 * and each half is only ever appended to between two erases, which is all NOR flash allows.
 * A circular log would use more of the medium but needs per-sector state, a moving tail, and
 * a recovery that reconciles them. The price of halves -- half the region holds the log --
 * is paid in flash, which a device has; correctness after any power cut is what it lacks.
 * Sizing keeps compaction rare: a half holds at least the whole queue at its largest plus one
 * operation (mwi_queue_region_min), and twice that makes each compaction free half a half.
 */

#define HALF_MAGIC     0x4851574Du /* "MWQH" */
#define LABEL_MAGIC    0x4C51574Du /* "MWQL" */
#define LABEL_LEN      48u
#define LABEL_CRC_AT   40u
#define HALF_COPY      80u
#define HALF_CRC_AT    76u
#define FORMAT_VERSION 2u
#define REC_ALIGN_MIN  8u
#define IO_BUF_MIN     4096u

/* Format 1 (before salts): recognised only to refuse it with a sentence. */
#define V1_VERSION     1u
#define V1_LABEL_LEN   32u
#define V1_LABEL_CRC   24u
#define V1_HALF_COPY   64u
#define V1_HALF_CRC_AT 60u

/* ---- geometry and sizes ------------------------------------------------------------------ */

static bool pow2(uint32_t v)
{
    return v != 0 && (v & (v - 1)) == 0;
}

static uint32_t live_max(const mwi_geo *g, uint32_t capacity)
{
    return capacity * mwi_rec_size(g->align, MWI_MSG_BODY_MAX) +
           mwi_rec_size(g->align, MWI_GAPS_BODY_MAX);
}

/* The largest single write after a compaction: an eviction plus an append, an Ack, or a gap
 * table; a half must hold the whole queue and this. */
static uint32_t op_max(const mwi_geo *g)
{
    uint32_t app =
        mwi_rec_size(g->align, 1u + MWI_DROP_ENTRY) + mwi_rec_size(g->align, MWI_MSG_BODY_MAX);
    uint32_t ack = mwi_rec_size(g->align, MWI_DROP_BODY_MAX);
    uint32_t gap = mwi_rec_size(g->align, MWI_GAPS_BODY_MAX);
    return MWI_MAX2(app, MWI_MAX2(ack, gap));
}

bool mwi_log_units(uint32_t erase_unit, uint32_t write_unit, mwi_geo *g)
{
    memset(g, 0, sizeof *g);
    g->wu = write_unit == 0 ? 1u : write_unit;
    g->eu = erase_unit == 0 ? 1u : erase_unit;
    if (!pow2(g->wu) || !pow2(g->eu) || g->wu > MWI_WRITE_UNIT_MAX) {
        return false;
    }
    g->align = MWI_MAX2(REC_ALIGN_MIN, g->wu);
    g->unit = MWI_MAX2(g->eu, g->align);
    g->hdr_area = mwi_align_up(2u * HALF_COPY, g->align);
    g->store_bytes = mwi_seq_region_size(g->eu, g->wu);
    g->hbase = mwi_align_up(g->store_bytes, g->unit);
    g->label_bytes = mwi_align_up(LABEL_LEN, MWI_MAX2(g->eu, g->wu));
    return true;
}

uint64_t mwi_log_half_need(const mwi_geo *g, uint32_t capacity)
{
    return (uint64_t)g->hdr_area + live_max(g, capacity) + op_max(g);
}

const char *mwi_log_geometry(const mw_storage_t *st, uint32_t capacity, mwi_geo *g)
{
    if (!mwi_log_units(st->erase_unit, st->write_unit, g)) {
        return MWI_REASON_SET(
            "queue: erase and write units must be powers of two, write unit at most 512");
    }
    if (st->size % g->eu != 0 || st->size <= g->hbase + g->label_bytes) {
        return MWI_REASON_SET("queue: region size must be a multiple of the erase unit and larger "
                              "than the nonce store and label");
    }
    g->label_off = st->size - g->label_bytes;
    g->half = ((g->label_off - g->hbase) / 2u) / g->unit * g->unit;
    if (g->half < mwi_log_half_need(g, capacity)) {
        return MWI_REASON_SET("queue: region too small for this capacity (see "
                              "mwi_queue_region_min)");
    }
    return NULL;
}

uint32_t mwi_log_io_size(const mwi_geo *g)
{
    uint32_t two = 2u * mwi_rec_size(g->align, MWI_BODY_MAX);
    return mwi_align_up(MWI_MAX2(IO_BUF_MIN, MWI_MAX2(two, g->hdr_area)), g->align);
}

uint32_t mwi_log_half_base(const mwi_queue *q, unsigned h)
{
    return q->g.hbase + h * q->g.half;
}

/* ---- storage access through the read window ---------------------------------------------- */

mw_err mwi_log_read(mwi_queue *q, uint32_t off, uint32_t len, uint32_t limit, const uint8_t **out)
{
    uint32_t n;

    if (len > q->io_size || off > limit || len > limit - off) {
        return MW_EINVAL;
    }
    if (q->win_len > 0 && off >= q->win_off && off - q->win_off <= q->win_len &&
        len <= q->win_len - (off - q->win_off)) {
        *out = q->rbuf + (off - q->win_off);
        return MW_OK;
    }
    n = limit - off < q->io_size ? limit - off : q->io_size;
    q->win_len = 0;
    if (q->st.read(q->st.ctx, off, q->rbuf, n) != MW_OK) {
        return MW_EIO;
    }
    q->win_off = off;
    q->win_len = n;
    *out = q->rbuf;
    return MW_OK;
}

static void win_drop(mwi_queue *q, uint32_t off, uint32_t len)
{
    if (q->win_len > 0 && off < q->win_off + q->win_len && q->win_off < off + len) {
        q->win_len = 0;
    }
}

mw_err mwi_log_write(mwi_queue *q, uint32_t off, const uint8_t *p, uint32_t len)
{
    win_drop(q, off, len);
    if (q->st.write(q->st.ctx, off, p, len) != MW_OK) {
        return mwi_q_fail(q, MW_EIO, "queue: storage write failed");
    }
    return MW_OK;
}

mw_err mwi_log_erase(mwi_queue *q, uint32_t off, uint32_t len)
{
    win_drop(q, off, len);
    if (q->st.erase(q->st.ctx, off, len) != MW_OK) {
        return mwi_q_fail(q, MW_EIO, "queue: storage erase failed");
    }
    return MW_OK;
}

mw_err mwi_log_sync(mwi_queue *q)
{
    if (q->st.sync(q->st.ctx) != MW_OK) {
        return mwi_q_fail(q, MW_EIO, "queue: storage sync failed");
    }
    q->st_counters.syncs++;
    q->unsynced = 0;
    return MW_OK;
}

/* ---- staging writes ---------------------------------------------------------------------- */

void mwi_log_stage_begin(mwi_queue *q, uint32_t off)
{
    q->stage_off = off;
    q->stage_len = 0;
}

static mw_err stage_flush(mwi_queue *q)
{
    mw_err e = MW_OK;
    if (q->stage_len > 0) {
        e = mwi_log_write(q, q->stage_off, q->wbuf, q->stage_len);
        q->stage_off += q->stage_len;
        q->stage_len = 0;
    }
    return e;
}

mw_err mwi_log_stage_record(mwi_queue *q, uint64_t gen, unsigned type, unsigned prio, uint64_t seq,
                            const uint8_t *body, uint32_t len, uint32_t *out_off,
                            uint32_t *out_total)
{
    uint32_t total = mwi_rec_size(q->g.align, len);
    mwi_rec_hdr h;
    mw_err e;

    if (q->stage_len + total > q->io_size) {
        e = stage_flush(q);
        if (e != MW_OK) {
            return e;
        }
    }
    *out_off = q->stage_off + q->stage_len;
    memset(&h, 0, sizeof h);
    h.type = (uint8_t)type;
    h.prio = (uint8_t)prio;
    h.seq = seq;
    if (mwi_seq_next(&q->nonces, &h.nonce) != MW_OK) {
        return mwi_q_fail(q, MW_EIO,
                          "queue: nonce store could not reserve (storage failed or "
                          "counter exhausted)");
    }
    if (mwi_rec_seal(&q->keys, q->g.align, &h, body, len, *out_off, gen, q->wbuf + q->stage_len) !=
        MW_OK) {
        return mwi_q_fail(q, MW_EINTERNAL, "queue: AES-GCM encryption failed");
    }
    q->stage_len += total;
    *out_total = total;
    return MW_OK;
}

/* Durability of one operation: synced now (default), or counted for group commit. */
static mw_err commit_op(mwi_queue *q, uint64_t now_ms)
{
    q->last_now = now_ms;
    if (q->gc_n <= 1u) {
        return mwi_log_sync(q);
    }
    if (q->unsynced == 0) {
        q->unsynced_since = now_ms;
    }
    q->unsynced++;
    if (q->unsynced >= q->gc_n) {
        return mwi_log_sync(q);
    }
    return MW_OK;
}

mw_err mwi_log_commit(mwi_queue *q, uint64_t now_ms)
{
    mw_err e = stage_flush(q);

    if (e == MW_OK) {
        e = commit_op(q, now_ms);
    }
    if (e != MW_OK) {
        return e;
    }
    q->head = q->stage_off;
    return MW_OK;
}

mw_err mwi_log_append(mwi_queue *q, unsigned type, const uint8_t *body, uint32_t len,
                      uint64_t now_ms)
{
    uint32_t off, total;
    mw_err e = mwi_log_ensure_room(q, mwi_rec_size(q->g.align, len));

    if (e != MW_OK) {
        return e;
    }
    mwi_log_stage_begin(q, q->head);
    e = mwi_log_stage_record(q, q->gen, type, 0, 0, body, len, &off, &total);
    return e != MW_OK ? e : mwi_log_commit(q, now_ms);
}

/* ---- half headers ------------------------------------------------------------------------ */

static void half_copy_parse(const uint8_t *p, mwi_half_hdr *out)
{
    memset(out, 0, sizeof *out);
    if (mwi_get32(p) != HALF_MAGIC || mwi_get16(p + 4) != FORMAT_VERSION ||
        mwi_get32(p + 72) != 0 || mwi_get32(p + HALF_CRC_AT) != mwi_crc32c(0, p, HALF_CRC_AT)) {
        return;
    }
    out->valid = true;
    out->key_len = p[6];
    out->index = p[7];
    out->gen = mwi_get64(p + 8);
    out->size = mwi_get32(p + 16);
    out->half = mwi_get32(p + 20);
    out->align = mwi_get32(p + 24);
    out->eu = mwi_get32(p + 28);
    memcpy(out->kcv, p + 32, MWI_KCV_LEN);
    out->floor = mwi_get64(p + 48);
    memcpy(out->salt, p + 56, MWI_SALT_LEN);
}

/* Either copy will do: both are written by one write, so a valid one is the committed one. */
static void half_parse(const uint8_t *p, unsigned index, mwi_half_hdr *out)
{
    half_copy_parse(p, out);
    if (!out->valid || out->index != index) {
        half_copy_parse(p + HALF_COPY, out);
        if (out->valid && out->index != index) {
            out->valid = false;
        }
    }
}

mw_err mwi_log_read_half(mwi_queue *q, unsigned h, mwi_half_hdr *out)
{
    uint32_t base = mwi_log_half_base(q, h);
    const uint8_t *p;

    if (mwi_log_read(q, base, q->g.hdr_area, base + q->g.half, &p) != MW_OK) {
        return MW_EIO;
    }
    half_parse(p, h, out);
    return MW_OK;
}

mw_err mwi_log_write_half_header(mwi_queue *q, unsigned h, uint64_t gen)
{
    uint8_t *b = q->wbuf;
    uint8_t *p = b;

    memset(b, MWI_ERASED, q->g.hdr_area);
    memset(p, 0, HALF_COPY);
    mwi_put32(p, HALF_MAGIC);
    mwi_put16(p + 4, FORMAT_VERSION);
    p[6] = q->keys.len;
    p[7] = (uint8_t)h;
    mwi_put64(p + 8, gen);
    mwi_put32(p + 16, q->st.size);
    mwi_put32(p + 20, q->g.half);
    mwi_put32(p + 24, q->g.align);
    mwi_put32(p + 28, q->g.eu);
    memcpy(p + 32, q->keys.kcv, MWI_KCV_LEN);
    mwi_put64(p + 48, mwi_seq_peek(&q->nonces));
    memcpy(p + 56, q->keys.salt, MWI_SALT_LEN);
    mwi_put32(p + HALF_CRC_AT, mwi_crc32c(0, p, HALF_CRC_AT));
    memcpy(b + HALF_COPY, p, HALF_COPY);
    return mwi_log_write(q, mwi_log_half_base(q, h), b, q->g.hdr_area);
}

/* ---- the region label -------------------------------------------------------------------- */

/* Written when the region becomes a queue (creation, mwi_queue_format()), and last in the
 * region: a region cut short (a truncated file) loses it, which is how recovery tells "records
 * at the end are missing" from "the log ends here". It carries the salt that keys the
 * incarnation until the first half header does; the half headers carry it too, so that a
 * truncated file or a flipped bit here does not cost the log its key. */
static enum mwi_label_state label_parse(const uint8_t *p, const mwi_geo *g, uint32_t size,
                                        bool *out_match, uint8_t out_salt[MWI_SALT_LEN])
{
    *out_match = false;
    if (mwi_all_erased(p, LABEL_LEN)) {
        return MWI_LABEL_ERASED;
    }
    if (mwi_get32(p) != LABEL_MAGIC || mwi_get16(p + 4) != FORMAT_VERSION ||
        mwi_get16(p + 6) != 0 || mwi_get32(p + LABEL_CRC_AT) != mwi_crc32c(0, p, LABEL_CRC_AT) ||
        p[44] != 0 || p[45] != 0 || p[46] != 0 || p[47] != MWI_TRAILER) {
        return MWI_LABEL_DAMAGED;
    }
    *out_match = mwi_get32(p + 8) == size && mwi_get32(p + 12) == g->half &&
                 mwi_get32(p + 16) == g->align && mwi_get32(p + 20) == g->eu;
    memcpy(out_salt, p + 24, MWI_SALT_LEN);
    return MWI_LABEL_VALID;
}

mw_err mwi_log_read_label(mwi_queue *q, enum mwi_label_state *out_state, bool *out_match,
                          uint8_t out_salt[MWI_SALT_LEN])
{
    const uint8_t *p;

    if (mwi_log_read(q, q->g.label_off, LABEL_LEN, q->st.size, &p) != MW_OK) {
        return MW_EIO;
    }
    *out_state = label_parse(p, &q->g, q->st.size, out_match, out_salt);
    return MW_OK;
}

uint32_t mwi_log_label_encode(const mwi_geo *g, uint32_t size, const uint8_t salt[MWI_SALT_LEN],
                              uint8_t *b)
{
    uint32_t len = mwi_align_up(LABEL_LEN, g->wu);

    memset(b, MWI_ERASED, len);
    memset(b, 0, LABEL_LEN);
    mwi_put32(b, LABEL_MAGIC);
    mwi_put16(b + 4, FORMAT_VERSION);
    mwi_put32(b + 8, size);
    mwi_put32(b + 12, g->half);
    mwi_put32(b + 16, g->align);
    mwi_put32(b + 20, g->eu);
    memcpy(b + 24, salt, MWI_SALT_LEN);
    mwi_put32(b + LABEL_CRC_AT, mwi_crc32c(0, b, LABEL_CRC_AT));
    b[LABEL_LEN - 1u] = MWI_TRAILER;
    return len;
}

mw_err mwi_log_write_label(mwi_queue *q)
{
    uint32_t len = mwi_log_label_encode(&q->g, q->st.size, q->keys.salt, q->wbuf);
    mw_err e = mwi_log_erase(q, q->g.label_off, q->g.label_bytes);

    if (e == MW_OK) {
        e = mwi_log_write(q, q->g.label_off, q->wbuf, len);
    }
    /* Synced on its own: a half header must never be durable without the label before it, or
     * the next open would take the missing label for a truncated region. */
    return e == MW_OK ? mwi_log_sync(q) : e;
}

/* A valid structure of format 1 (records sealed under the vendor key itself, no salt): its
 * label where format 1 put it, or either copy of a half header. */
static bool v1_valid(const uint8_t *p, uint32_t magic, uint32_t crc_at)
{
    return mwi_get32(p) == magic && mwi_get16(p + 4) == V1_VERSION &&
           mwi_get32(p + crc_at) == mwi_crc32c(0, p, crc_at);
}

mw_err mwi_log_written_by_format1(mwi_queue *q, bool *out)
{
    uint32_t v1_label = mwi_align_up(V1_LABEL_LEN, MWI_MAX2(q->g.eu, q->g.wu));
    const uint8_t *p;

    *out = false;
    if (mwi_log_read(q, q->st.size - v1_label, V1_LABEL_LEN, q->st.size, &p) != MW_OK) {
        return MW_EIO;
    }
    *out = v1_valid(p, LABEL_MAGIC, V1_LABEL_CRC);
    for (unsigned h = 0; h < 2 && !*out; h++) {
        uint32_t base = q->g.hbase + h * q->g.half;
        if (mwi_log_read(q, base, 2u * V1_HALF_COPY, base + q->g.half, &p) != MW_OK) {
            return MW_EIO;
        }
        *out = v1_valid(p, HALF_MAGIC, V1_HALF_CRC_AT) ||
               v1_valid(p + V1_HALF_COPY, HALF_MAGIC, V1_HALF_CRC_AT);
    }
    return MW_OK;
}

/* ---- compaction -------------------------------------------------------------------------- */

mw_err mwi_log_load(mwi_queue *q, const mwi_idx_entry *en, mwi_rec_hdr *out_h,
                    mw_message_t *out_msg)
{
    uint32_t end = mwi_log_half_base(q, q->active) + q->g.half;
    const uint8_t *p;

    if (mwi_log_read(q, en->off, en->len, end, &p) != MW_OK) {
        return mwi_q_fail(q, MW_EIO, "queue: storage read failed");
    }
    if (mwi_rec_parse(q->g.align, p, en->len, out_h) && out_h->seq == en->seq &&
        out_h->total == en->len &&
        mwi_rec_unseal(&q->keys, p, out_h, en->off, q->gen, q->pt) == MWI_REC_OK &&
        mwi_rec_decode_message(q->pt, out_h->len, out_h, out_msg)) {
        return MW_OK;
    }
    /* A decode failure means authentic but not a message this code accepts (a rule made
     * stricter since it was stored): it could never be delivered either. */
    return MW_EDECODE;
}

mw_err mwi_log_compact(mwi_queue *q)
{
    unsigned target = q->active ^ 1u;
    uint32_t tbase = mwi_log_half_base(q, target);
    uint32_t tend = tbase + q->g.half;
    uint32_t obase = mwi_log_half_base(q, q->active);
    uint64_t gen;
    uint32_t off = 0, total = 0;
    mw_message_t scratch;
    mw_err e;

    /* A fresh generation per attempt: records of an abandoned attempt can never authenticate
     * in a later one at the same offsets. */
    if (mwi_seq_next(&q->nonces, &gen) != MW_OK) {
        return mwi_q_fail(q, MW_EIO, "queue: nonce store could not reserve a generation");
    }
    e = mwi_log_erase(q, tbase, q->g.half);
    if (e != MW_OK) {
        return e;
    }
    mwi_log_stage_begin(q, tbase + q->g.hdr_area);
    if (mwi_gap_list(q->gaps, NULL, 0) > 0) {
        uint8_t body[MWI_GAPS_BODY_MAX];
        uint32_t len = mwi_rec_gaps_encode(q->gaps, body);
        e = mwi_log_stage_record(q, gen, MWI_REC_GAPS, 0, 0, body, len, &off, &total);
        if (e != MW_OK) {
            return e;
        }
    }
    for (uint32_t i = 0; i < q->idx.n;) {
        mwi_idx_entry *en = &q->idx.ent[i];
        mwi_rec_hdr h = {0};

        e = mwi_log_load(q, en, &h, &scratch);
        if (e == MW_EIO) {
            return e;
        }
        if (e != MW_OK) {
            /* It authenticated when it was written or recovered: the medium decayed since. */
            mwi_q_emit(q, MWI_QUEUE_CORRUPT, en->seq, en->prio, en->off, en->len,
                       "queue: a stored record can no longer be read back intact (medium "
                       "damaged); it is not delivered");
            mwi_gap_add(q->gaps, en->prio, MWI_QUEUE_GAP_CORRUPT, en->seq);
            mwi_idx_remove(&q->idx, i, 1);
            continue;
        }
        if (q->stage_off + q->stage_len + h.total > tend) {
            return mwi_q_fail(q, MW_EINTERNAL, "queue: live records do not fit in a half");
        }
        e = mwi_log_stage_record(q, gen, MWI_REC_MSG, h.prio, h.seq, q->pt, h.len, &off, &total);
        if (e != MW_OK) {
            return e;
        }
        en->off = off;
        en->len = (uint16_t)total;
        i++;
    }
    e = stage_flush(q);
    if (e == MW_OK) {
        e = mwi_log_sync(q);
    }
    /* The commit point: before this header is durable the old half is the queue, after it the
     * new one. */
    if (e == MW_OK) {
        e = mwi_log_write_half_header(q, target, gen);
    }
    if (e == MW_OK) {
        e = mwi_log_sync(q);
    }
    if (e != MW_OK) {
        return e;
    }
    q->active = (uint8_t)target;
    q->gen = gen;
    q->head = q->stage_off;
    q->st_counters.compactions++;
    /* Retire the old header so a stale half can never be taken for the queue again (if the new
     * header were ever destroyed, open refuses instead of resurrecting acknowledged messages).
     * Synced with the next operation; until then the generation decides. */
    return mwi_log_erase(q, obase, mwi_align_up(q->g.hdr_area, q->g.eu));
}

/* Sizing guarantees room after compaction for up to capacity messages; only a queue over
 * capacity (after damage, see overflow() in recovery.c) can lack it, and then the eviction
 * policy makes room. */
mw_err mwi_log_ensure_room(mwi_queue *q, uint32_t need)
{
    uint32_t data = q->g.half - q->g.hdr_area;
    uint64_t live = mwi_rec_size(q->g.align, MWI_GAPS_BODY_MAX);
    mw_err e;

    if (q->head + need <= mwi_log_half_base(q, q->active) + q->g.half) {
        return MW_OK;
    }
    for (uint32_t i = 0; i < q->idx.n; i++) {
        live += q->idx.ent[i].len;
    }
    while (q->idx.n > 0 && live + need > data) {
        uint32_t v = 0;
        mwi_idx_entry en;
        (void)mwi_idx_pick_victim(&q->idx, MW_PRIORITY_ALARM, &v);
        en = q->idx.ent[v];
        live -= en.len;
        mwi_idx_remove(&q->idx, v, 1);
        mwi_gap_add(q->gaps, en.prio, MWI_QUEUE_GAP_EVICTED, en.seq);
        mwi_q_emit(q, MWI_QUEUE_EVICTED, en.seq, en.prio, en.off, en.len,
                   "queue: over capacity and out of space; evicted");
    }
    e = mwi_log_compact(q);
    if (e != MW_OK) {
        return e;
    }
    if (q->head + need > mwi_log_half_base(q, q->active) + q->g.half) {
        return mwi_q_fail(q, MW_EINTERNAL, "queue: no room after compaction");
    }
    return MW_OK;
}
