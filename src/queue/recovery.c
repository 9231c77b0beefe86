/* SPDX-License-Identifier: Apache-2.0 */
/* recovery.c -- opening a queue: the region's checks, the scan of the active half that
 * rebuilds the index and gap table, and the repairs that follow (recovery.h). */
#include <string.h>

#include "queue/log.h"
#include "queue/recovery.h"

/*
 * Recovery (open). Pick the active half; check the key against its key check value before
 * writing anything; replay its records in order. A complete record that fails its checks is
 * reported CORRUPT and skipped (the header length is trusted only when its CRC is valid;
 * otherwise the scan resynchronises on the next valid header). An interrupted write is cut
 * off as TORN. If anything was cut or skipped, the live records are compacted into the other
 * half at once, so the next open finds a clean log and reports nothing twice.
 */

/* How far above every nonce found a lost nonce store restarts (record.c, nonces, 3). */
#define STORE_JUMP (UINT64_C(1) << 40)

/* ---- reading the log --------------------------------------------------------------------- */

/* First non-erased byte in [from, to), or @p to. */
static mw_err first_written(mwi_queue *q, uint32_t from, uint32_t to, uint32_t *out)
{
    while (from < to) {
        uint32_t n = to - from < q->io_size ? to - from : q->io_size;
        const uint8_t *p;
        if (mwi_log_read(q, from, n, to, &p) != MW_OK) {
            return MW_EIO;
        }
        for (uint32_t i = 0; i < n; i++) {
            if (p[i] != MWI_ERASED) {
                *out = from + i;
                return MW_OK;
            }
        }
        from += n;
    }
    *out = to;
    return MW_OK;
}

/* Offset of the next position after @p from (aligned) that holds a valid record header, or
 * @p end. Used after damage, so that one bad record does not hide the ones behind it. */
static mw_err resync(mwi_queue *q, uint32_t from, uint32_t end, uint32_t *out)
{
    mwi_rec_hdr h;
    for (uint32_t pos = from; pos + MWI_REC_HDR <= end; pos += q->g.align) {
        const uint8_t *p;
        if (mwi_log_read(q, pos, MWI_REC_HDR, end, &p) != MW_OK) {
            return MW_EIO;
        }
        if (p[0] == MWI_REC_MAGIC && mwi_rec_parse(q->g.align, p, end - pos, &h)) {
            *out = pos;
            return MW_OK;
        }
    }
    *out = end;
    return MW_OK;
}

/* Torn or corrupt, for bytes [from, to) that hold no valid record: a power cut leaves a short
 * prefix of a header (< MWI_REC_HDR bytes written) or a record without its trailer; damage to a
 * complete record leaves its trailer in place as the last written byte, at a record's end
 * (records are aligned). A torn header prefix can end in a byte that happens to be 0x5A (a CRC
 * byte), and in group commit erased bytes of a lost write can precede it; it cannot end where a
 * record ends, since the header bytes there (7, 15, 23) are zero. */
static mw_err classify_span(mwi_queue *q, uint32_t from, uint32_t to, bool *out_corrupt)
{
    uint32_t last = to;
    uint32_t pos = from;
    *out_corrupt = false;
    /* Find the last written byte of the span. */
    while (pos < to) {
        uint32_t nz;
        if (first_written(q, pos, to, &nz) != MW_OK) {
            return MW_EIO;
        }
        if (nz == to) {
            break;
        }
        last = nz;
        pos = nz + 1u;
        /* Skip written bytes quickly. */
        while (pos < to) {
            const uint8_t *p;
            if (mwi_log_read(q, pos, 1, to, &p) != MW_OK) {
                return MW_EIO;
            }
            if (*p == MWI_ERASED) {
                break;
            }
            last = pos++;
        }
    }
    if (last != to && last - from + 1u >= MWI_REC_HDR && (last + 1u) % q->g.align == 0) {
        const uint8_t *p;
        if (mwi_log_read(q, last, 1, to, &p) != MW_OK) {
            return MW_EIO;
        }
        *out_corrupt = *p == MWI_TRAILER;
    }
    return MW_OK;
}

/* ---- replaying records into the index ---------------------------------------------------- */

typedef struct scan_result {
    bool anomaly;    /* something was cut off or skipped: compact */
    bool any_record; /* some record header was seen (the half was used) */
    uint64_t max_nonce;
    uint32_t end; /* end of the last good record */
} scan_result;

static mw_err apply_drop(mwi_queue *q, const uint8_t *b, uint32_t len)
{
    uint32_t n = b[0];

    if (n == 0 || n > MWI_MAX_ACK_RANGES || len != 1u + n * MWI_DROP_ENTRY) {
        return MW_EDECODE;
    }
    /* All or nothing: check every entry before applying any. */
    for (uint32_t k = 0; k < n; k++) {
        const uint8_t *p = b + 1 + k * MWI_DROP_ENTRY;
        uint64_t first = mwi_get64(p), last = mwi_get64(p + 8);
        if (first == 0 || first > last || p[16] > MWI_DROP_EVICTED || p[17] > MW_PRIORITY_ALARM) {
            return MW_EDECODE;
        }
    }
    for (uint32_t k = 0; k < n; k++) {
        const uint8_t *p = b + 1 + k * MWI_DROP_ENTRY;
        uint64_t first = mwi_get64(p);
        (void)mwi_idx_remove_range(&q->idx, first, mwi_get64(p + 8));
        if (p[16] == MWI_DROP_EVICTED) {
            mwi_gap_add(q->gaps, p[17], MWI_QUEUE_GAP_EVICTED, first);
        }
    }
    return MW_OK;
}

/* More messages than the capacity can be stored: damage to a DROP record brings back what it
 * removed (acknowledged messages, harmless since the gateway deduplicates, or evicted ones), a
 * power cut in group-commit mode can lose an eviction but keep the append after it, and the
 * capacity may have been configured smaller since. The index has room for twice the capacity
 * so that none of this costs an intact message its place; appends then evict one message
 * each, and the surplus drains as the gateway acknowledges. Only beyond twice the capacity
 * does the eviction policy run here. */
static bool overflow(mwi_queue *q, const mwi_rec_hdr *h, uint32_t off)
{
    const mwi_idx_entry *v;
    uint32_t i;

    if (!mwi_idx_pick_victim(&q->idx, h->prio, &i)) {
        mwi_gap_add(q->gaps, h->prio, MWI_QUEUE_GAP_EVICTED, h->seq);
        mwi_q_emit(q, MWI_QUEUE_EVICTED, h->seq, h->prio, off, h->total,
                   "queue: over capacity after damage to a stored acknowledgement; evicted");
        return false;
    }
    v = &q->idx.ent[i];
    if (v->ghost) {
        mwi_gap_add(q->gaps, v->prio, MWI_QUEUE_GAP_CORRUPT, v->seq);
    } else {
        mwi_gap_add(q->gaps, v->prio, MWI_QUEUE_GAP_EVICTED, v->seq);
        mwi_q_emit(q, MWI_QUEUE_EVICTED, v->seq, v->prio, v->off, v->len,
                   "queue: over capacity after damage to a stored acknowledgement; evicted");
    }
    mwi_idx_remove(&q->idx, i, 1);
    return true;
}

static void insert_entry(mwi_queue *q, const mwi_rec_hdr *h, uint32_t off, uint64_t t_ms,
                         bool ghost)
{
    mwi_idx_entry e;

    memset(&e, 0, sizeof e);
    e.seq = h->seq;
    e.t_ms = t_ms;
    e.off = off;
    e.len = (uint16_t)h->total;
    e.prio = h->prio;
    e.ghost = ghost ? 1u : 0u;
    mwi_idx_insert(&q->idx, &e);
}

static mw_err apply_record(mwi_queue *q, const mwi_rec_hdr *h, uint32_t off, const uint8_t *body,
                           const char **why)
{
    switch (h->type) {
    case MWI_REC_MSG:
        if (mwi_idx_find(&q->idx, h->seq, NULL)) {
            *why = MWI_REASON("queue: a second record for a queued sequence number");
            return MW_EDECODE;
        }
        if (q->idx.n >= q->idx.slots && !overflow(q, h, off)) {
            return MW_OK;
        }
        insert_entry(q, h, off, mwi_get64(body), false);
        return MW_OK;
    case MWI_REC_DROP:
        *why = MWI_REASON("queue: malformed drop record");
        return apply_drop(q, body, h->len);
    case MWI_REC_GAPS:
        *why = MWI_REASON("queue: malformed gap record");
        return mwi_rec_gaps_decode(body, h->len, q->gaps) ? MW_OK : MW_EDECODE;
    default:
        *why = MWI_REASON("queue: unknown record type");
        return MW_EDECODE;
    }
}

static void ghost_add(mwi_queue *q, const mwi_rec_hdr *h, uint32_t off)
{
    if (h->type != MWI_REC_MSG || mwi_idx_find(&q->idx, h->seq, NULL)) {
        return;
    }
    if (q->idx.n >= q->idx.slots) {
        /* No room to wait for a later DROP: count it lost now. */
        mwi_gap_add(q->gaps, h->prio, MWI_QUEUE_GAP_CORRUPT, h->seq);
        return;
    }
    insert_entry(q, h, off, 0, true);
}

/* Replays the active half into the index. */
static mw_err scan_active(mwi_queue *q, scan_result *r, mw_error_detail_t *d)
{
    uint32_t base = mwi_log_half_base(q, q->active);
    uint32_t end = base + q->g.half;
    uint32_t pos = base + q->g.hdr_area;

    r->end = pos;
    while (pos < end) {
        const uint8_t *p;
        mwi_rec_hdr h;
        uint32_t next;
        bool corrupt;
        uint32_t room = end - pos;

        if (mwi_log_read(q, pos, room < MWI_REC_HDR ? room : MWI_REC_HDR, end, &p) != MW_OK) {
            goto io;
        }
        if (room < MWI_REC_HDR || mwi_all_erased(p, MWI_REC_HDR)) {
            uint32_t nz;
            if (first_written(q, pos, end, &nz) != MW_OK) {
                goto io;
            }
            if (nz == end) {
                break; /* the clean end of the log */
            }
            /* Written bytes after an unwritten gap: a write that was lost while a later one
             * landed (group commit), or damage in free space. */
        } else if (mwi_rec_parse(q->g.align, p, room, &h)) {
            enum mwi_rec_status s;
            r->any_record = true;
            if (h.nonce > r->max_nonce) {
                r->max_nonce = h.nonce;
            }
            if (mwi_log_read(q, pos, h.total, end, &p) != MW_OK) {
                goto io;
            }
            s = mwi_rec_unseal(&q->keys, p, &h, pos, q->gen, q->pt);
            if (s == MWI_REC_OK) {
                const char *why = NULL;
                mw_err e = apply_record(q, &h, pos, q->pt, &why);
                if (e != MW_OK) {
                    /* Authentic but not understood: only a bug or a compromised key writes
                     * that. Report, never deliver. */
                    mwi_q_emit(q, MWI_QUEUE_CORRUPT, h.seq, h.prio, pos, h.total, why);
                    ghost_add(q, &h, pos);
                    r->anomaly = true;
                }
                pos += h.total;
                r->end = pos;
                continue;
            }
            if (s == MWI_REC_TORN) {
                mwi_q_emit(q, MWI_QUEUE_TORN, h.seq, h.prio, pos, h.total,
                           "queue: a write interrupted by a power loss was cut off at recovery");
            } else {
                mwi_q_emit(q, MWI_QUEUE_CORRUPT, h.seq, h.prio, pos, h.total,
                           "queue: a stored record failed authentication (damaged or tampered "
                           "with); it is not delivered");
                ghost_add(q, &h, pos);
            }
            r->anomaly = true;
            pos += h.total;
            continue;
        }
        /* No valid header here: skip to the next one and report what lies between. */
        if (resync(q, pos + q->g.align, end, &next) != MW_OK ||
            classify_span(q, pos, next, &corrupt) != MW_OK) {
            goto io;
        }
        if (corrupt) {
            mwi_q_emit(q, MWI_QUEUE_CORRUPT, 0, 0, pos, next - pos,
                       "queue: damaged bytes where a record header should be; what they held "
                       "is lost");
            mwi_gap_add(q->gaps, 0, MWI_QUEUE_GAP_CORRUPT, 0);
        } else {
            mwi_q_emit(q, MWI_QUEUE_TORN, 0, 0, pos, next - pos,
                       "queue: a write interrupted by a power loss was cut off at recovery");
        }
        r->anomaly = true;
        pos = next;
    }
    /* Damaged records that no later record removed were live: they are lost, and the gateway
     * must hear about them. */
    for (uint32_t i = 0; i < q->idx.n;) {
        if (q->idx.ent[i].ghost) {
            mwi_gap_add(q->gaps, q->idx.ent[i].prio, MWI_QUEUE_GAP_CORRUPT, q->idx.ent[i].seq);
            mwi_idx_remove(&q->idx, i, 1);
        } else {
            i++;
        }
    }
    return MW_OK;
io:
    mwi_detail_first(d, MW_EIO, 0, "queue: cannot read the storage region");
    return MW_EIO;
}

/* The highest nonce counter in any header-valid record of half @p h, without the key. */
static mw_err scan_nonces(mwi_queue *q, unsigned h, scan_result *r)
{
    uint32_t base = mwi_log_half_base(q, h);
    uint32_t end = base + q->g.half;
    uint32_t pos = base + q->g.hdr_area;

    while (pos + MWI_REC_HDR <= end) {
        const uint8_t *p;
        mwi_rec_hdr rh;
        if (mwi_log_read(q, pos, MWI_REC_HDR, end, &p) != MW_OK) {
            return MW_EIO;
        }
        if (p[0] == MWI_REC_MAGIC && mwi_rec_parse(q->g.align, p, end - pos, &rh)) {
            r->any_record = true;
            if (rh.nonce > r->max_nonce) {
                r->max_nonce = rh.nonce;
            }
            pos += rh.total;
        } else {
            pos += q->g.align;
        }
    }
    return MW_OK;
}

static bool half_area_erased(mwi_queue *q, unsigned h, uint32_t from_rel, bool *out)
{
    uint32_t nz;
    uint32_t base = mwi_log_half_base(q, h);
    if (first_written(q, base + from_rel, base + q->g.half, &nz) != MW_OK) {
        return false;
    }
    *out = nz == base + q->g.half;
    return true;
}

/* ---- open -------------------------------------------------------------------------------- */

mw_err mwi_recover(mwi_queue *q, const mwi_queue_config *cfg, mw_error_detail_t *d)
{
    mw_storage_t nst;
    mw_error_detail_t seq_why = {0};
    mwi_half_hdr hh[2];
    scan_result r;
    enum mwi_label_state label;
    uint8_t label_salt[MWI_SALT_LEN] = {0};
    bool label_match = false;
    bool label_ok;
    bool v1 = false;
    bool store_lost = false;
    bool store_used;
    uint64_t floor;
    int active = -1;
    const char *why = NULL;
    mw_err e;

    /* Everything below reads until the key and the geometry have been checked. */
    if (mwi_log_written_by_format1(q, &v1) != MW_OK) {
        return mwi_detail_fail(d, MW_EIO, "queue: cannot read the storage region");
    }
    if (v1) {
        /* Its records are sealed under the vendor key itself; writing anything here (a label,
         * a header) would destroy what the previous version can still deliver. */
        return mwi_detail_fail(
            d, MW_ECONFIG,
            "queue: this region was written by an older medwire (queue format 1); "
            "nothing was changed -- deliver its messages with the previous "
            "version, or erase the region to start over");
    }
    if (mwi_log_read_label(q, &label, &label_match, label_salt) != MW_OK) {
        return mwi_detail_fail(d, MW_EIO, "queue: cannot read the storage region");
    }
    if (label == MWI_LABEL_VALID && !label_match) {
        return mwi_detail_fail(
            d, MW_ECONFIG,
            "queue: the region was created with another size or erase/write unit; "
            "data left untouched");
    }
    if (mw_storage_slice(&q->st, 0, q->g.store_bytes, &q->nonce_slice, &nst) != MW_OK) {
        return mwi_detail_fail(d, MW_ECONFIG, "queue: nonce store does not fit the region");
    }
    e = mwi_seq_open(&nst, cfg->nonce_block == 0 ? MWI_QUEUE_DEFAULT_NONCE_BLOCK : cfg->nonce_block,
                     1, &q->nonces, &seq_why);
    if (e != MW_OK) {
        if (q->nonces.corrupt_slots == 0 && q->nonces.torn_slots == 0) {
            return mwi_detail_fail(d, e, seq_why.reason[0] ? seq_why.reason : "queue: nonce store");
        }
        store_lost = true; /* both slots damaged: restarted above every counter seen, below */
    } else if (q->nonces.fresh) {
        store_lost = true; /* only a problem if the halves show the store was used (below) */
    }
    store_used = !q->nonces.fresh || q->nonces.torn_slots != 0 || q->nonces.corrupt_slots != 0;

    /* Half headers: pick the active half, and check key and geometry before any write. */
    for (unsigned h = 0; h < 2; h++) {
        if (mwi_log_read_half(q, h, &hh[h]) != MW_OK) {
            return mwi_detail_fail(d, MW_EIO, "queue: cannot read the storage region");
        }
        if (hh[h].valid && (active < 0 || hh[h].gen > hh[active].gen)) {
            active = (int)h;
        }
    }
    memset(&r, 0, sizeof r);
    if (active >= 0) {
        const mwi_half_hdr *a = &hh[active];
        if (a->size != q->st.size || a->half != q->g.half || a->align != q->g.align ||
            a->eu != q->g.eu) {
            return mwi_detail_fail(d, MW_ECONFIG,
                                   "queue: the region was created with another size or erase/write "
                                   "unit; data left untouched");
        }
        memcpy(q->keys.salt, a->salt, MWI_SALT_LEN);
        if (a->key_len == q->keys.len &&
            mwi_rec_set_key(&q->keys, cfg->key, cfg->key_len) != MW_OK) {
            return mwi_detail_fail(d, MW_EINTERNAL, "queue: wolfCrypt refused the AES-GCM key");
        }
        if (a->key_len != q->keys.len || memcmp(a->kcv, q->keys.kcv, MWI_KCV_LEN) != 0) {
            return mwi_detail_fail(d, MW_ECONFIG,
                                   "queue: storage key differs from the key this queue was written "
                                   "with (key check value mismatch); data left untouched");
        }
        if (label == MWI_LABEL_VALID && memcmp(label_salt, q->keys.salt, MWI_SALT_LEN) != 0) {
            /* A label from another incarnation (copied in): the header, which the key check
             * ties to the key, decides, and the label is written again. */
            label = MWI_LABEL_DAMAGED;
        }
        q->active = (uint8_t)active;
        q->gen = a->gen;
        e = scan_active(q, &r, d);
        if (e != MW_OK) {
            return e;
        }
        q->head = r.end;
        if (scan_nonces(q, (unsigned)active ^ 1u, &r) != MW_OK) {
            return mwi_detail_fail(d, MW_EIO, "queue: cannot read the storage region");
        }
    } else {
        bool e0 = false, e1 = false;
        /* Creation writes only the label and the header of half 0; anything else written
         * means a queue whose headers are gone, and formatting it would destroy what may
         * still be recoverable. */
        if (!half_area_erased(q, 0, q->g.hdr_area, &e0) || !half_area_erased(q, 1, 0, &e1)) {
            return mwi_detail_fail(d, MW_EIO, "queue: cannot read the storage region");
        }
        if (!e0 || !e1) {
            return mwi_detail_fail(
                d, MW_EIO,
                "queue: the region holds data but no valid queue header (damaged, "
                "truncated, or not a queue); not formatting it -- "
                "mwi_queue_format() starts over");
        }
        if (label == MWI_LABEL_VALID && store_used && !q->nonces.broken) {
            /* Created or formatted, and the store that counts under this salt is there: the
             * first open after mwi_queue_format(), or a creation cut short (the label is
             * written before the store's first reservation, which may be torn). */
            memcpy(q->keys.salt, label_salt, MWI_SALT_LEN);
        } else {
            /* A new incarnation. A valid label beside an erased or lost store means the halves
             * and the store were wiped but the label kept: counting from 1 again under its
             * salt would repeat nonces, so it gets a new one too. */
            e = mwi_rec_draw_salt(&cfg->random, q->keys.salt, &why);
            if (e != MW_OK) {
                return mwi_detail_fail(d, e, why);
            }
        }
        if (mwi_rec_set_key(&q->keys, cfg->key, cfg->key_len) != MW_OK) {
            return mwi_detail_fail(d, MW_EINTERNAL, "queue: wolfCrypt refused the AES-GCM key");
        }
    }
    label_ok = label == MWI_LABEL_VALID && memcmp(label_salt, q->keys.salt, MWI_SALT_LEN) == 0;
    if (label != MWI_LABEL_VALID && (active >= 0 || store_used)) {
        /* The region was in use, yet its last bytes are gone or damaged: a file cut short
         * (whatever its log held past the cut is lost), or a bit flip in the label. */
        mwi_q_emit(q, MWI_QUEUE_CORRUPT, 0, 0, q->g.label_off, q->g.label_bytes,
                   "queue: the end of the region is missing or damaged (truncated file?); "
                   "records that were stored past the cut are lost");
    }

    /* Nonce floor: above every counter, generation and recorded floor found anywhere. */
    floor = r.max_nonce;
    for (unsigned h = 0; h < 2; h++) {
        if (hh[h].valid) {
            floor = MWI_MAX2(floor, MWI_MAX2(hh[h].gen, hh[h].floor));
        }
    }
    floor = floor == UINT64_MAX ? floor : floor + 1u;
    if (store_lost && active >= 0 && (q->gen > 0 || r.any_record)) {
        /* The halves show the store was used, yet it is gone or unreadable. */
        mwi_q_emit(q, MWI_QUEUE_CORRUPT, 0, 0, 0, q->g.store_bytes,
                   "queue: nonce store lost or damaged; nonces restart far above every one "
                   "found");
        floor = floor > UINT64_MAX - STORE_JUMP ? UINT64_MAX : floor + STORE_JUMP;
        mwi_seq_restart(&q->nonces, floor);
    } else if (store_lost && q->nonces.broken) {
        mwi_seq_restart(&q->nonces, floor);
    } else if (q->nonces.corrupt_slots != 0) {
        mwi_q_emit(q, MWI_QUEUE_CORRUPT, 0, 0, 0, q->g.store_bytes,
                   "queue: a nonce store slot was damaged; nonces continue past it");
    }
    mwi_seq_raise(&q->nonces, floor);

    /* From here on the region is written. */
    if (!label_ok) {
        e = mwi_log_write_label(q);
        if (e != MW_OK) {
            return mwi_detail_fail(d, e, "queue: cannot write the region label");
        }
    }
    if (active < 0) {
        /* A new queue: an empty half 0 with the key check, under a generation drawn from the
         * store like every later one, so that no record of an earlier queue in this region
         * (before a format) authenticates in this one. Drawing also rewrites a damaged nonce
         * slot, which every later open would otherwise report again (found by fuzz_queue). A
         * creation interrupted by a power cut may have left part of this header: erase first. */
        q->active = 0;
        q->head = mwi_log_half_base(q, 0) + q->g.hdr_area;
        if (mwi_seq_next(&q->nonces, &q->gen) != MW_OK) {
            return mwi_detail_fail(d, MW_EIO, "queue: nonce store could not reserve a generation");
        }
        e = mwi_log_erase(q, mwi_log_half_base(q, 0), mwi_align_up(q->g.hdr_area, q->g.eu));
        if (e == MW_OK) {
            e = mwi_log_write_half_header(q, 0, q->gen);
        }
        if (e == MW_OK) {
            e = mwi_log_sync(q);
        }
        if (e != MW_OK) {
            return mwi_detail_fail(d, MW_EIO, "queue: cannot write the new queue header");
        }
        return MW_OK;
    }
    if (store_lost || q->nonces.corrupt_slots != 0 || q->nonces.torn_slots != 0) {
        /* Rewrite the store now, so the damage is repaired and reported once. */
        uint64_t unused;
        if (mwi_seq_next(&q->nonces, &unused) != MW_OK) {
            return mwi_detail_fail(d, MW_EIO, "queue: cannot rewrite the nonce store");
        }
    }
    if (r.anomaly) {
        /* Rewrite the log without what was cut or skipped, so it is reported once. */
        e = mwi_log_compact(q);
        if (e == MW_OK) {
            e = mwi_log_sync(q);
        }
        if (e != MW_OK) {
            return mwi_detail_fail(d, e, q->err.reason);
        }
    }
    return MW_OK;
}
