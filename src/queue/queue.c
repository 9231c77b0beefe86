/* SPDX-License-Identifier: Apache-2.0 */
/* queue.c -- the offline queue: an encrypted append-only log in two alternating halves. This
 * file holds the queue object and the operations of queue.h; the parts live beside it:
 *   record.c    one record: header, nonce, associated data, seal/unseal, bodies
 *   aead.c      AES-GCM and HKDF from wolfCrypt (the only file here that includes wolfSSL)
 *   index.c     the in-memory index in flush order, and the gap table (pure functions)
 *   log.c       the log on storage: geometry, staged writes, half headers, label, compaction
 *   recovery.c  open: the region's checks, the scan that rebuilds the index, the repairs
 * docs/queue.md has the byte-level format and the reasoning behind it. */
#include <stdlib.h>
#include <string.h>

#include "core/wipe.h"
#include "queue/log.h"
#include "queue/recovery.h"

#define DEFAULT_CAPACITY 256u
#define DEFAULT_GC_MS    100u

/* ---- the queue object -------------------------------------------------------------------- */

mw_err(mwi_q_fail)(mwi_queue *q, mw_err e, const char *reason)
{
    q->broken = true;
    mwi_detail_first(&q->err, e, 0, reason);
    return e;
}

void(mwi_q_emit)(mwi_queue *q, mwi_queue_event_kind kind, uint64_t seq, unsigned prio, uint32_t off,
                 uint32_t len, const char *reason)
{
    mwi_queue_event ev;

    if (kind == MWI_QUEUE_CORRUPT) {
        q->st_counters.corrupt++;
    } else if (kind == MWI_QUEUE_TORN) {
        q->st_counters.torn++;
    } else {
        q->st_counters.evicted++;
    }
    if (q->on_event == NULL) {
        return;
    }
    ev.kind = kind;
    ev.seq = seq;
    ev.priority = (mw_priority)prio;
    ev.offset = off;
    ev.length = len;
    ev.reason = reason;
    q->on_event(q->event_ctx, &ev);
}

/* ---- configuration and sizes ------------------------------------------------------------- */

mw_err mwi_queue_region_min(uint32_t capacity, uint32_t erase_unit, uint32_t write_unit,
                            uint32_t *out_size)
{
    mwi_geo g;
    uint64_t half;
    uint64_t total;

    if (out_size == NULL || capacity == 0 || !mwi_log_units(erase_unit, write_unit, &g)) {
        return MW_EINVAL;
    }
    half = mwi_log_half_need(&g, capacity);
    half = (half + g.unit - 1u) / g.unit * g.unit;
    total = (uint64_t)g.hbase + 2u * half + g.label_bytes;
    if (total > UINT32_MAX) {
        return MW_ECONFIG;
    }
    *out_size = (uint32_t)total;
    return MW_OK;
}

void mwi_queue_config_init(mwi_queue_config *cfg)
{
    if (cfg == NULL) {
        return;
    }
    memset(cfg, 0, sizeof *cfg);
    cfg->capacity = DEFAULT_CAPACITY;
    cfg->nonce_block = MWI_QUEUE_DEFAULT_NONCE_BLOCK;
}

/* Sub-blocks of one memory block, each aligned for any type wolfCrypt's Aes needs. */
#define MEM_ALIGN 64u
static size_t mem_round(size_t v)
{
    return (v + MEM_ALIGN - 1u) / MEM_ALIGN * MEM_ALIGN;
}

mw_err mwi_queue_mem_size(const mwi_queue_config *cfg, size_t *out_size)
{
    mwi_geo g;

    if (cfg == NULL || out_size == NULL || cfg->storage == NULL) {
        return MW_EINVAL;
    }
    if (cfg->capacity == 0 ||
        !mwi_log_units(cfg->storage->erase_unit, cfg->storage->write_unit, &g)) {
        return MW_ECONFIG;
    }
    *out_size = mem_round(sizeof(struct mwi_queue)) + mem_round(mwi_aead_size()) +
                mem_round(2u * (size_t)cfg->capacity * sizeof(mwi_idx_entry)) +
                2u * mem_round(mwi_log_io_size(&g)) + mem_round(MWI_BODY_MAX);
    return MW_OK;
}

/* ---- open and close ---------------------------------------------------------------------- */

static void release(mwi_queue *q)
{
    void *mem = q->mem;
    bool owns = q->owns_mem;

    if (q->keys.aead != NULL) {
        mwi_aead_free(q->keys.aead);
    }
    if (q->pt != NULL) {
        mwi_wipe(q->pt, MWI_BODY_MAX);
    }
    mwi_wipe(q, sizeof *q);
    if (owns) {
        free(mem);
    }
}

/* The configuration copied into the object, and the AES context set up, before recovery. */
static mw_err setup(mwi_queue *q, const mwi_queue_config *cfg, mw_error_detail_t *d)
{
    q->st = *cfg->storage;
    q->capacity = cfg->capacity;
    q->idx.slots = 2u * cfg->capacity;
    q->keys.len = (uint8_t)cfg->key_len;
    q->gc_n = cfg->group_commit_n;
    q->gc_ms = cfg->group_commit_ms == 0 ? DEFAULT_GC_MS : cfg->group_commit_ms;
    q->on_event = cfg->on_event;
    q->event_ctx = cfg->event_ctx;
    q->st_counters.capacity = cfg->capacity;
    q->st_counters.bytes_half = q->g.half;

    if (mwi_aead_init(q->keys.aead) != MW_OK) {
        return mwi_detail_fail(d, MW_EINTERNAL, "queue: wolfCrypt could not set up AES");
    }
    return MW_OK;
}

mw_err mwi_queue_open(const mwi_queue_config *cfg, mwi_queue **out_q, mw_error_detail_t *out_detail)
{
    size_t need = 0;
    uint8_t *mem;
    mwi_queue *q;
    mwi_geo g;
    const char *why;
    mw_err e;

    if (out_q != NULL) {
        *out_q = NULL;
    }
    if (cfg == NULL || out_q == NULL || cfg->storage == NULL) {
        return mwi_detail_fail(out_detail, MW_EINVAL,
                               "queue: configuration, storage or output missing");
    }
    if (cfg->key == NULL || cfg->key_len == 0) {
        return mwi_detail_fail(
            out_detail, MW_ECONFIG,
            "queue: storage key missing (the vendor must configure 16 or 32 bytes)");
    }
    if (cfg->key_len != MWI_QUEUE_KEY_128 && cfg->key_len != MWI_QUEUE_KEY_256) {
        return mwi_detail_fail(out_detail, MW_ECONFIG, "queue: storage key must be 16 or 32 bytes");
    }
    if (cfg->capacity == 0 || cfg->capacity > 1000000u) {
        return mwi_detail_fail(out_detail, MW_ECONFIG, "queue: capacity must be 1..1000000");
    }
    if (cfg->storage->read == NULL || cfg->storage->write == NULL || cfg->storage->erase == NULL ||
        cfg->storage->sync == NULL) {
        return mwi_detail_fail(out_detail, MW_EINVAL, "queue: storage table incomplete");
    }
    why = mwi_log_geometry(cfg->storage, cfg->capacity, &g);
    if (why != NULL) {
        return mwi_detail_fail(out_detail, MW_ECONFIG, why);
    }
    e = mwi_queue_mem_size(cfg, &need);
    if (e != MW_OK) {
        return mwi_detail_fail(out_detail, e, "queue: invalid configuration");
    }
    if (cfg->mem != NULL) {
        if (cfg->mem_size < need || ((uintptr_t)cfg->mem % 16u) != 0) {
            return mwi_detail_fail(out_detail, MW_ECONFIG,
                                   "queue: caller memory smaller than mwi_queue_mem_size() or not "
                                   "16-byte aligned");
        }
        mem = cfg->mem;
        memset(mem, 0, need);
    } else {
        mem = calloc(1, need);
        if (mem == NULL) {
            return mwi_detail_fail(out_detail, MW_ENOMEM, "queue: out of memory");
        }
    }
    q = (mwi_queue *)(void *)mem;
    q->mem = mem;
    q->owns_mem = cfg->mem == NULL;
    q->g = g;
    q->io_size = mwi_log_io_size(&g);
    mem += mem_round(sizeof(struct mwi_queue));
    q->keys.aead = (mwi_aead *)(void *)mem;
    mem += mem_round(mwi_aead_size());
    q->idx.ent = (mwi_idx_entry *)(void *)mem;
    mem += mem_round(2u * (size_t)cfg->capacity * sizeof(mwi_idx_entry));
    q->rbuf = mem;
    mem += mem_round(q->io_size);
    q->wbuf = mem;
    mem += mem_round(q->io_size);
    q->pt = mem;

    e = setup(q, cfg, out_detail);
    if (e == MW_OK) {
        e = mwi_recover(q, cfg, out_detail);
    }
    if (e != MW_OK) {
        release(q);
        return e;
    }
    *out_q = q;
    return MW_OK;
}

void mwi_queue_close(mwi_queue **qp)
{
    mwi_queue *q;

    if (qp == NULL || *qp == NULL) {
        return;
    }
    q = *qp;
    if (!q->broken && q->unsynced > 0) {
        (void)mwi_log_sync(q);
    }
    release(q);
    *qp = NULL;
}

mw_err mwi_queue_format(const mwi_queue_config *cfg, mw_error_detail_t *out_detail)
{
    uint8_t salt[MWI_SALT_LEN];
    uint8_t label[MWI_WRITE_UNIT_MAX];
    const mw_storage_t *st;
    const char *why;
    uint32_t len;
    mwi_geo g;
    mw_err e;

    if (cfg == NULL || cfg->storage == NULL || cfg->storage->write == NULL ||
        cfg->storage->erase == NULL || cfg->storage->sync == NULL) {
        return mwi_detail_fail(out_detail, MW_EINVAL,
                               "queue: configuration or storage table missing");
    }
    st = cfg->storage;
    why = mwi_log_geometry(st, cfg->capacity, &g);
    if (why != NULL) {
        return mwi_detail_fail(out_detail, MW_ECONFIG, why);
    }
    e = mwi_rec_draw_salt(&cfg->random, salt, &why);
    if (e != MW_OK) {
        return mwi_detail_fail(out_detail, e, why);
    }
    /* Halves first, then the label with the new salt: a power cut in between leaves the old
     * salt and an empty region, which the next open starts under a generation the store has
     * never handed out. The nonce store survives, so nonces go on rising either way. */
    len = mwi_log_label_encode(&g, st->size, salt, label);
    if (st->erase(st->ctx, g.hbase, st->size - g.hbase) != MW_OK || st->sync(st->ctx) != MW_OK ||
        st->write(st->ctx, g.label_off, label, len) != MW_OK || st->sync(st->ctx) != MW_OK) {
        return mwi_detail_fail(out_detail, MW_EIO, "queue: storage failed while formatting");
    }
    return MW_OK;
}

/* ---- operations -------------------------------------------------------------------------- */

static mw_err usable(const mwi_queue *q)
{
    if (q == NULL) {
        return MW_EINVAL;
    }
    return q->broken ? MW_ECLOSED : MW_OK;
}

bool mwi_queue_accepts(const mwi_queue *q, mw_priority priority)
{
    uint32_t i;
    if (q == NULL || q->broken || (unsigned)priority < MW_PRIORITY_STATUS ||
        (unsigned)priority > MW_PRIORITY_ALARM) {
        return false;
    }
    return q->idx.n < q->capacity || mwi_idx_pick_victim(&q->idx, (unsigned)priority, &i);
}

mw_err mwi_queue_append(mwi_queue *q, const mw_message_t *msg, uint64_t now_ms)
{
    uint8_t drop[1u + MWI_DROP_ENTRY];
    uint32_t len = 0, need, victim = 0, off, total, msg_off, msg_total;
    bool evict = false;
    uint64_t compactions;
    mwi_idx_entry ev = {0}, e_new;
    mw_err e = usable(q);

    if (e != MW_OK) {
        return e;
    }
    if (msg == NULL || mwi_message_check(msg) != MW_OK || mwi_idx_find(&q->idx, msg->seq, NULL)) {
        return MW_EINVAL;
    }
    e = mwi_rec_encode_message(msg, now_ms, q->pt, &len);
    if (e != MW_OK) {
        return e == MW_EINVAL ? e : mwi_q_fail(q, e, "queue: message encoding failed");
    }
    need = mwi_rec_size(q->g.align, len);
    if (q->idx.n >= q->capacity) {
        if (!mwi_idx_pick_victim(&q->idx, (unsigned)msg->priority, &victim)) {
            return MW_EFULL;
        }
        evict = true;
        need += mwi_rec_size(q->g.align, sizeof drop);
    }
    compactions = q->st_counters.compactions;
    e = mwi_log_ensure_room(q, need);
    if (e != MW_OK) {
        return e;
    }
    if (q->st_counters.compactions != compactions) {
        /* Compaction decrypted through the plaintext buffer: encode again. It may also have
         * dropped a decayed record (room now) and moved entries: pick the victim again. */
        e = mwi_rec_encode_message(msg, now_ms, q->pt, &len);
        if (e != MW_OK) {
            return mwi_q_fail(q, e, "queue: message encoding failed");
        }
        evict = evict && q->idx.n >= q->capacity &&
                mwi_idx_pick_victim(&q->idx, (unsigned)msg->priority, &victim);
    }
    mwi_log_stage_begin(q, q->head);
    if (evict) {
        ev = q->idx.ent[victim];
        drop[0] = 1;
        mwi_rec_drop_entry(drop + 1, ev.seq, ev.seq, MWI_DROP_EVICTED, ev.prio);
        e = mwi_log_stage_record(q, q->gen, MWI_REC_DROP, 0, 0, drop, sizeof drop, &off, &total);
        if (e != MW_OK) {
            return e;
        }
    }
    /* Eviction and append in one write: a power cut keeps neither, the eviction alone (the
     * append never returned), or both. */
    e = mwi_log_stage_record(q, q->gen, MWI_REC_MSG, (unsigned)msg->priority, msg->seq, q->pt, len,
                             &msg_off, &msg_total);
    if (e == MW_OK) {
        e = mwi_log_commit(q, now_ms);
    }
    if (e != MW_OK) {
        return e;
    }
    if (evict) {
        mwi_idx_remove(&q->idx, victim, 1);
        mwi_gap_add(q->gaps, ev.prio, MWI_QUEUE_GAP_EVICTED, ev.seq);
    }
    memset(&e_new, 0, sizeof e_new);
    e_new.seq = msg->seq;
    e_new.t_ms = now_ms;
    e_new.off = msg_off;
    e_new.len = (uint16_t)msg_total;
    e_new.prio = (uint8_t)msg->priority;
    mwi_idx_insert(&q->idx, &e_new);
    q->st_counters.appended++;
    if (evict) {
        mwi_q_emit(q, MWI_QUEUE_EVICTED, ev.seq, ev.prio, ev.off, ev.len,
                   "queue full: the oldest message of the lowest priority was evicted to keep a "
                   "new one");
    }
    return MW_OK;
}

mw_err mwi_queue_ack(mwi_queue *q, const mwi_seq_range *ranges, size_t n, uint64_t now_ms,
                     size_t *out_removed)
{
    uint8_t body[MWI_DROP_BODY_MAX];
    uint32_t k = 0;
    size_t removed = 0;
    mw_err e = usable(q);

    if (out_removed != NULL) {
        *out_removed = 0;
    }
    if (e != MW_OK) {
        return e;
    }
    if ((ranges == NULL && n > 0) || n > MWI_MAX_ACK_RANGES) {
        return MW_EINVAL;
    }
    for (size_t i = 0; i < n; i++) {
        if (ranges[i].first == 0 || ranges[i].first > ranges[i].last) {
            return MW_EINVAL;
        }
    }
    /* Persist only ranges that remove something: a repeated Ack costs no write. */
    for (size_t i = 0; i < n; i++) {
        if (mwi_idx_count_range(&q->idx, ranges[i].first, ranges[i].last) > 0) {
            mwi_rec_drop_entry(body + 1 + k * MWI_DROP_ENTRY, ranges[i].first, ranges[i].last,
                               MWI_DROP_ACKED, 0);
            k++;
        }
    }
    if (k == 0) {
        return MW_OK;
    }
    body[0] = (uint8_t)k;
    e = mwi_log_append(q, MWI_REC_DROP, body, 1u + k * MWI_DROP_ENTRY, now_ms);
    if (e != MW_OK) {
        return e;
    }
    for (uint32_t i = 0; i < k; i++) {
        const uint8_t *p = body + 1 + i * MWI_DROP_ENTRY;
        removed += mwi_idx_remove_range(&q->idx, mwi_get64(p), mwi_get64(p + 8));
    }
    q->st_counters.acked += removed;
    if (out_removed != NULL) {
        *out_removed = removed;
    }
    return MW_OK;
}

/* Compaction, made durable: it leaves the retired header's erase unsynced. It is also how a
 * record that stopped authenticating after open goes: compaction re-reads every record,
 * reports and drops the ones that fail (mwi_log_compact()), and leaves no damaged bytes in the
 * active half for the next open to report a second time. */
static mw_err compact_synced(mwi_queue *q)
{
    mw_err e = mwi_log_compact(q);
    return e != MW_OK ? e : mwi_log_sync(q);
}

void mwi_queue_cursor_init(mwi_queue_cursor *c)
{
    if (c != NULL) {
        memset(c, 0, sizeof *c);
    }
}

mw_err mwi_queue_next(mwi_queue *q, mwi_queue_cursor *c, mw_message_t *out_msg)
{
    uint64_t bad;
    mw_err e = usable(q);

    if (e != MW_OK) {
        return e;
    }
    if (c == NULL || out_msg == NULL || c->priority > MW_PRIORITY_ALARM) {
        return MW_EINVAL;
    }
    if (c->priority == 0) {
        c->priority = MW_PRIORITY_ALARM;
        c->after_seq = 0;
    }
    for (;;) {
        unsigned p = c->priority;
        uint32_t i = mwi_idx_after(&q->idx, p, c->after_seq);
        const mwi_idx_entry *en;
        mwi_rec_hdr h;

        if (i >= mwi_idx_seg_end(&q->idx, p)) {
            if (p == MW_PRIORITY_STATUS) {
                c->after_seq = UINT64_MAX;
                return MW_EAGAIN;
            }
            c->priority = (uint8_t)(p - 1u);
            c->after_seq = 0;
            continue;
        }
        en = &q->idx.ent[i];
        if (c->skip != NULL && c->skip(c->skip_ctx, en->seq)) {
            c->after_seq = en->seq;
            continue;
        }
        e = mwi_log_load(q, en, &h, out_msg);
        if (e == MW_OK) {
            c->after_seq = en->seq;
            return MW_OK;
        }
        if (e == MW_EIO) {
            return e;
        }
        bad = en->seq;
        e = compact_synced(q);
        if (e != MW_OK) {
            return e;
        }
        /* Compaction applies the same checks; should it ever keep the record, stop rather
         * than loop. */
        if (mwi_idx_find(&q->idx, bad, NULL)) {
            return mwi_q_fail(q, MW_EINTERNAL,
                              "queue: a record fails to read yet survives compaction");
        }
    }
}

mw_err mwi_queue_peek(mwi_queue *q, mw_message_t *out_msgs, size_t cap, size_t *out_n)
{
    mwi_queue_cursor c;
    size_t n = 0;
    mw_err e = usable(q);

    if (out_n != NULL) {
        *out_n = 0;
    }
    if (e != MW_OK) {
        return e;
    }
    if (out_n == NULL || (out_msgs == NULL && cap > 0)) {
        return MW_EINVAL;
    }
    mwi_queue_cursor_init(&c);
    while (n < cap) {
        e = mwi_queue_next(q, &c, &out_msgs[n]);
        if (e == MW_EAGAIN) {
            break;
        }
        if (e != MW_OK) {
            return e;
        }
        n++;
    }
    *out_n = n;
    return MW_OK;
}

mw_err mwi_queue_flush(mwi_queue *q, uint64_t now_ms)
{
    mw_err e = usable(q);
    if (e != MW_OK) {
        return e;
    }
    q->last_now = now_ms;
    if (q->unsynced > 0 && now_ms - q->unsynced_since >= q->gc_ms) {
        return mwi_log_sync(q);
    }
    return MW_OK;
}

int64_t mwi_queue_flush_due_ms(const mwi_queue *q, uint64_t now_ms)
{
    uint64_t due;
    if (q == NULL || q->broken || q->unsynced == 0) {
        return -1;
    }
    due = q->unsynced_since + q->gc_ms;
    return now_ms >= due ? 0 : (int64_t)(due - now_ms);
}

mw_err mwi_queue_sync(mwi_queue *q)
{
    mw_err e = usable(q);
    return e != MW_OK ? e : mwi_log_sync(q);
}

mw_err mwi_queue_compact(mwi_queue *q)
{
    mw_err e = usable(q);
    if (e != MW_OK) {
        return e;
    }
    return compact_synced(q);
}

uint64_t mwi_queue_low_water(const mwi_queue *q)
{
    return q == NULL ? 0 : mwi_idx_low_water(&q->idx);
}

bool mwi_queue_holds(const mwi_queue *q, uint64_t seq)
{
    return q != NULL && mwi_idx_find(&q->idx, seq, NULL);
}

uint32_t mwi_queue_depth(const mwi_queue *q)
{
    return q == NULL ? 0 : q->idx.n;
}

void mwi_queue_stats_get(const mwi_queue *q, uint64_t now_ms, mwi_queue_stats *out)
{
    uint64_t oldest;

    if (q == NULL || out == NULL) {
        return;
    }
    *out = q->st_counters;
    out->depth = q->idx.n;
    for (unsigned p = 0; p < 4; p++) {
        out->depth_by_priority[p] = q->idx.count[p];
    }
    oldest = mwi_idx_oldest_ms(&q->idx);
    out->oldest_age_ms = (q->idx.n == 0 || now_ms < oldest) ? 0 : now_ms - oldest;
    out->unsynced = q->unsynced;
    out->bytes_used = q->head - (mwi_log_half_base(q, q->active) + q->g.hdr_area);
    out->active_offset = mwi_log_half_base(q, q->active);
    out->header_bytes = q->g.hdr_area;
}

size_t mwi_queue_gaps(const mwi_queue *q, mwi_queue_gap *out, size_t cap)
{
    return q == NULL ? 0 : mwi_gap_list(q->gaps, out, cap);
}

mw_err mwi_queue_gaps_clear(mwi_queue *q, const mwi_queue_gap *done, size_t n)
{
    mwi_queue_gap t[MWI_QUEUE_GAP_SLOTS];
    uint8_t body[MWI_GAPS_BODY_MAX];
    uint32_t len;
    mw_err e = usable(q);

    if (e != MW_OK) {
        return e;
    }
    if (done == NULL && n > 0) {
        return MW_EINVAL;
    }
    memcpy(t, q->gaps, sizeof t);
    if (mwi_gap_subtract(t, done, n) != MW_OK) {
        return MW_EINVAL;
    }
    if (memcmp(t, q->gaps, sizeof t) == 0) {
        return MW_OK;
    }
    len = mwi_rec_gaps_encode(t, body);
    e = mwi_log_append(q, MWI_REC_GAPS, body, len, q->last_now);
    if (e != MW_OK) {
        return e;
    }
    memcpy(q->gaps, t, sizeof t);
    return MW_OK;
}

mw_err mwi_queue_locate(const mwi_queue *q, uint64_t seq, uint32_t *out_off, uint32_t *out_len)
{
    uint32_t i;
    if (q == NULL || out_off == NULL || out_len == NULL) {
        return MW_EINVAL;
    }
    if (!mwi_idx_find(&q->idx, seq, &i)) {
        return MW_EAGAIN;
    }
    *out_off = q->idx.ent[i].off;
    *out_len = q->idx.ent[i].len;
    return MW_OK;
}

void mwi_queue_last_error(const mwi_queue *q, mw_error_detail_t *out)
{
    if (out == NULL) {
        return;
    }
    if (q == NULL) {
        memset(out, 0, sizeof *out);
        return;
    }
    *out = q->err;
}
