/* SPDX-License-Identifier: Apache-2.0 */
/* queue.c -- the offline queue: an encrypted append-only log in two alternating halves. */
/* Only src/dtls and src/queue include wolfSSL: the queue needs wolfCrypt's AES-GCM. */
#include <wolfssl/options.h> /* first: without it struct layouts differ from the library's */
#include <wolfssl/wolfcrypt/aes.h>
#include <wolfssl/wolfcrypt/error-crypt.h>

#include <stdlib.h>
#include <string.h>

#include <pb_decode.h>
#include <pb_encode.h>

#include "core/detail.h"
#include "queue/format.h"
#include "queue/queue.h"

/*
 * Design (docs/queue.md has the byte-level format).
 *
 * Layout. The region is [nonce store][half 0][half 1][label]. Each half is a log: a header
 * (written last, two copies) and then records appended one after another. The half with the
 * valid header of the highest generation is the active one; the other is either erased,
 * dead, or an unfinished compaction that recovery ignores. The label, written once, is last
 * so that a region cut short (a truncated file) is recognised as such; the nonce store is
 * first, where truncation reaches last.
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
 *
 * Records. Each record is a plaintext header (magic, type, length, priority, sequence number,
 * nonce counter, CRC-32C), an AES-GCM ciphertext and tag, zero padding, and a trailer byte.
 * The header CRC lets recovery trust the length and skip a damaged body; the GCM tag
 * authenticates everything; the trailer tells a write that a power cut interrupted (trailer
 * still erased) from complete data that was damaged later (trailer present, tag wrong).
 * Acknowledgements and evictions are DROP records; the gap table is a GAPS record written at
 * each compaction and each change by the client. Replaying the active half in order rebuilds
 * the queue.
 *
 * Nonces (AES-GCM fails catastrophically when a nonce repeats under one key).
 *   nonce = 'R' 0 0 0 || counter (64-bit, big-endian), counter from a sequence store
 *   (seqstore.c) at the start of the region. Proof that no two encryptions share one:
 *   1. Every record takes a fresh counter from the store, and the key check uses 'K' 0...0,
 *      a nonce no record can have.
 *   2. The store never hands out a value twice across power cuts: before handing out values
 *      below a ceiling it makes the ceiling durable, and after a restart it resumes at or
 *      above the last durable ceiling (seqstore.c states the cases).
 *   3. If the store itself is lost (both slots damaged, or erased while the halves show it
 *      was used), open restarts it 2^40 above every counter, generation and recorded floor
 *      found in any record header and half header in either half.
 *   Hence (key, nonce) pairs are unique as long as the key is used for one region only.
 *
 * Associated data = "MWQ1" || record header || generation || record offset. The generation is
 * also a fresh store value, drawn for each compaction attempt, so a record cannot be moved
 * to another position or half, nor survive from an abandoned compaction into the next one.
 *
 * Recovery (open). Pick the active half; check the key against its key check value before
 * writing anything; replay its records in order. A complete record that fails its checks is
 * reported CORRUPT and skipped (the header length is trusted only when its CRC is valid;
 * otherwise the scan resynchronises on the next valid header). An interrupted write is cut
 * off as TORN. If anything was cut or skipped, the live records are compacted into the other
 * half at once, so the next open finds a clean log and reports nothing twice.
 */

/* Not 0xFF, 0x00, the trailer, nor the first byte of any other structure ('M'). */
#define REC_MAGIC  0xC3u
#define REC_HDR    28u
#define REC_CRC_AT 24u
#define TAG_LEN    16u
#define REC_MSG    1u
#define REC_DROP   2u
#define REC_GAPS   3u

#define DROP_ACKED   0u
#define DROP_EVICTED 1u
#define DROP_ENTRY   18u
#define GAPS_ENTRY   26u

#define MSG_BODY_MAX  (8u + (uint32_t)medwire_v1_Envelope_size)
#define DROP_BODY_MAX (1u + MWI_MAX_ACK_RANGES * DROP_ENTRY)
#define GAPS_BODY_MAX (1u + MWI_QUEUE_GAP_SLOTS * GAPS_ENTRY)
#define MAX2(a, b)    ((a) > (b) ? (a) : (b))
#define BODY_MAX      MAX2(MSG_BODY_MAX, MAX2(DROP_BODY_MAX, GAPS_BODY_MAX))

#define HALF_MAGIC          0x4851574Du /* "MWQH" */
#define LABEL_MAGIC         0x4C51574Du /* "MWQL" */
#define LABEL_LEN           32u
#define HALF_COPY           64u
#define HALF_CRC_AT         60u
#define FORMAT_VERSION      1u
#define AAD_LEN             40u
#define NONCE_LEN           12u
#define NONCE_RECORD        0x52u /* 'R' */
#define NONCE_KEYCHECK      0x4Bu /* 'K' */
#define REC_ALIGN_MIN       8u
#define WRITE_UNIT_MAX      512u
#define IO_BUF_MIN          4096u
#define STORE_JUMP          (UINT64_C(1) << 40)
#define DEFAULT_CAPACITY    256u
#define DEFAULT_GC_MS       100u
#define DEFAULT_NONCE_BLOCK 65536u

_Static_assert(BODY_MAX < 65536u, "record body length fits the 16-bit header field");
_Static_assert(MW_PRIORITY_ALARM == 3 && MW_PRIORITY_STATUS == 1, "priority is an index 1..3");

static const uint8_t AAD_LABEL[4] = {'M', 'W', 'Q', '1'};
static const char KEYCHECK_LABEL[] = "medwire offline queue key check v1";

typedef struct entry {
    uint64_t seq;
    uint64_t t_ms; /* the caller's now_ms at append, for the age statistic */
    uint32_t off;  /* record offset in the region */
    uint16_t len;  /* record bytes */
    uint8_t prio;
    uint8_t ghost; /* recovery only: a damaged record that a later DROP may still cover */
} entry;

typedef struct geo {
    uint32_t wu, eu, align, unit;    /* write unit, erase unit, record alignment, half alignment */
    uint32_t store_bytes;            /* nonce store at offset 0 */
    uint32_t hbase, half, hdr_area;  /* half 0 at hbase, half 1 at hbase + half */
    uint32_t label_off, label_bytes; /* the region label, last */
} geo;

typedef struct rec_hdr {
    uint8_t type;
    uint8_t prio;
    uint16_t len;
    uint32_t total;
    uint64_t seq;
    uint64_t nonce;
} rec_hdr;

typedef struct half_hdr {
    bool valid;
    uint8_t key_len, index;
    uint64_t gen, floor;
    uint32_t size, half, align, eu;
    uint8_t kcv[TAG_LEN];
} half_hdr;

struct mwi_queue {
    mw_storage_t st;
    geo g;
    mwi_seq nonces;
    mw_storage_slice_t nonce_slice;
    Aes *aes;
    uint8_t key_len;
    uint8_t kcv[TAG_LEN];

    uint8_t active; /* 0 or 1 */
    uint64_t gen;   /* generation of the active half */
    uint32_t head;  /* where the next record goes (region offset) */

    entry *ent; /* sorted: priority descending, then seq ascending (flush order) */
    uint32_t n, capacity;
    uint32_t slots;    /* entries ent[] can hold: twice the capacity (see overflow()) */
    uint32_t count[4]; /* entries per priority */
    mwi_queue_gap gaps[MWI_QUEUE_GAP_SLOTS];

    uint32_t gc_n, gc_ms, unsynced;
    uint64_t unsynced_since, last_now;

    uint8_t *rbuf, *wbuf, *pt;
    uint32_t io_size;
    uint32_t win_off, win_len; /* rbuf caches [win_off, win_off + win_len) */
    uint32_t stage_off, stage_len;

    mwi_queue_stats st_counters;
    mwi_queue_event_fn *on_event;
    void *event_ctx;
    void *mem;
    bool owns_mem;
    bool broken;
    mw_error_detail_t err;
};

/* ---- small helpers ----------------------------------------------------------------------- */

static void wipe(void *p, size_t n)
{
    volatile uint8_t *v = p;
    while (n-- > 0) {
        *v++ = 0;
    }
}

static bool pow2(uint32_t v)
{
    return v != 0 && (v & (v - 1)) == 0;
}

/* Header, ciphertext, tag, zero padding, trailer: a multiple of the record alignment. */
static uint32_t rec_size_g(const geo *g, uint32_t body_len)
{
    return mwi_align_up(REC_HDR + body_len + TAG_LEN + 1u, g->align);
}

static uint32_t rec_size(const mwi_queue *q, uint32_t body_len)
{
    return rec_size_g(&q->g, body_len);
}

static unsigned gap_slot(unsigned prio, unsigned reason)
{
    return prio * 2u + (reason - 1u);
}

static void emit(mwi_queue *q, mwi_queue_event_kind kind, uint64_t seq, unsigned prio, uint32_t off,
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

static void gap_add(mwi_queue *q, unsigned prio, unsigned reason, uint64_t seq)
{
    mwi_queue_gap *g = &q->gaps[gap_slot(prio, reason)];

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

/* A storage failure leaves RAM and medium out of step; the only safe continuation is a
 * reopen, which rebuilds RAM from the medium. */
static mw_err fail(mwi_queue *q, mw_err e, const char *reason)
{
    q->broken = true;
    mwi_detail_first(&q->err, e, 0, reason);
    return e;
}

/* ---- storage access through the read window ---------------------------------------------- */

static mw_err win_get(mwi_queue *q, uint32_t off, uint32_t len, uint32_t limit, const uint8_t **out)
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

static mw_err st_write(mwi_queue *q, uint32_t off, const uint8_t *p, uint32_t len)
{
    win_drop(q, off, len);
    if (q->st.write(q->st.ctx, off, p, len) != MW_OK) {
        return fail(q, MW_EIO, "queue: storage write failed");
    }
    return MW_OK;
}

static mw_err st_erase(mwi_queue *q, uint32_t off, uint32_t len)
{
    win_drop(q, off, len);
    if (q->st.erase(q->st.ctx, off, len) != MW_OK) {
        return fail(q, MW_EIO, "queue: storage erase failed");
    }
    return MW_OK;
}

static mw_err st_sync(mwi_queue *q)
{
    if (q->st.sync(q->st.ctx) != MW_OK) {
        return fail(q, MW_EIO, "queue: storage sync failed");
    }
    q->st_counters.syncs++;
    q->unsynced = 0;
    return MW_OK;
}

/* ---- crypto ------------------------------------------------------------------------------ */

static void make_nonce(uint8_t domain, uint64_t counter, uint8_t iv[NONCE_LEN])
{
    memset(iv, 0, NONCE_LEN);
    iv[0] = domain;
    for (int i = 0; i < 8; i++) {
        iv[4 + i] = (uint8_t)(counter >> (56 - 8 * i));
    }
}

static void make_aad(const uint8_t *hdr, uint64_t gen, uint32_t off, uint8_t aad[AAD_LEN])
{
    memcpy(aad, AAD_LABEL, 4);
    memcpy(aad + 4, hdr, REC_CRC_AT);
    mwi_put64(aad + 28, gen);
    mwi_put32(aad + 36, off);
}

/* GMAC of a constant under the key with a nonce no record uses: the same computation every
 * time, so repeating it reveals nothing, and a different key gives a different value. */
static mw_err key_check(Aes *aes, uint8_t out[TAG_LEN])
{
    uint8_t iv[NONCE_LEN];
    uint8_t dummy[1] = {0};

    make_nonce(NONCE_KEYCHECK, 0, iv);
    if (wc_AesGcmEncrypt(aes, dummy, dummy, 0, iv, NONCE_LEN, out, TAG_LEN,
                         (const uint8_t *)KEYCHECK_LABEL,
                         (uint32_t)sizeof KEYCHECK_LABEL - 1) != 0) {
        return MW_EINTERNAL;
    }
    return MW_OK;
}

/* Writes one complete record for @p body at region offset @p off into @p dst. */
static mw_err seal(mwi_queue *q, uint8_t *dst, uint32_t off, uint64_t gen, unsigned type,
                   unsigned prio, uint64_t seq, const uint8_t *body, uint32_t len,
                   uint32_t *out_total)
{
    uint8_t aad[AAD_LEN];
    uint8_t iv[NONCE_LEN];
    uint32_t total = rec_size(q, len);
    uint64_t counter;

    if (mwi_seq_next(&q->nonces, &counter) != MW_OK) {
        return fail(q, MW_EIO,
                    "queue: nonce store could not reserve (storage failed or "
                    "counter exhausted)");
    }
    dst[0] = REC_MAGIC;
    dst[1] = (uint8_t)type;
    mwi_put16(dst + 2, (uint16_t)len);
    dst[4] = (uint8_t)prio;
    dst[5] = dst[6] = dst[7] = 0;
    mwi_put64(dst + 8, seq);
    mwi_put64(dst + 16, counter);
    mwi_put32(dst + REC_CRC_AT, mwi_crc32c(0, dst, REC_CRC_AT));
    make_aad(dst, gen, off, aad);
    make_nonce(NONCE_RECORD, counter, iv);
    if (wc_AesGcmEncrypt(q->aes, dst + REC_HDR, body, len, iv, NONCE_LEN, dst + REC_HDR + len,
                         TAG_LEN, aad, AAD_LEN) != 0) {
        return fail(q, MW_EINTERNAL, "queue: AES-GCM encryption failed");
    }
    memset(dst + REC_HDR + len + TAG_LEN, 0, total - (REC_HDR + len + TAG_LEN) - 1u);
    dst[total - 1u] = MWI_TRAILER;
    *out_total = total;
    return MW_OK;
}

/* Header checks that need no key: recovery uses them to trust a length, and to find the next
 * record after damage. @p room is the space left in the half. */
static bool hdr_parse(const geo *g, const uint8_t *p, uint32_t room, rec_hdr *h)
{
    if (room < REC_HDR || p[0] != REC_MAGIC || p[5] != 0 || p[6] != 0 || p[7] != 0 ||
        mwi_get32(p + REC_CRC_AT) != mwi_crc32c(0, p, REC_CRC_AT)) {
        return false;
    }
    h->type = p[1];
    h->len = mwi_get16(p + 2);
    h->prio = p[4];
    h->seq = mwi_get64(p + 8);
    h->nonce = mwi_get64(p + 16);
    if (h->len == 0 || h->len > BODY_MAX) {
        return false;
    }
    h->total = rec_size_g(g, h->len);
    if (h->total > room) {
        return false;
    }
    switch (h->type) {
    case REC_MSG:
        return h->prio >= MW_PRIORITY_STATUS && h->prio <= MW_PRIORITY_ALARM && h->seq != 0 &&
               h->len > 8u && h->len <= MSG_BODY_MAX;
    case REC_DROP:
    case REC_GAPS:
        return h->prio == 0 && h->seq == 0;
    default:
        return false;
    }
}

enum rec_status { REC_OK, REC_TORN, REC_CORRUPT };

static enum rec_status unseal(mwi_queue *q, const uint8_t *p, const rec_hdr *h, uint32_t off,
                              uint64_t gen, uint8_t *body)
{
    uint8_t aad[AAD_LEN];
    uint8_t iv[NONCE_LEN];
    uint32_t pad_from = REC_HDR + h->len + TAG_LEN;

    if (p[h->total - 1u] == MWI_ERASED) {
        return REC_TORN;
    }
    if (p[h->total - 1u] != MWI_TRAILER) {
        return REC_CORRUPT;
    }
    /* Padding is outside the tag; checking it keeps every byte of a record verified. */
    for (uint32_t i = pad_from; i + 1u < h->total; i++) {
        if (p[i] != 0) {
            return REC_CORRUPT;
        }
    }
    make_aad(p, gen, off, aad);
    make_nonce(NONCE_RECORD, h->nonce, iv);
    if (wc_AesGcmDecrypt(q->aes, body, p + REC_HDR, h->len, iv, NONCE_LEN, p + REC_HDR + h->len,
                         TAG_LEN, aad, AAD_LEN) != 0) {
        return REC_CORRUPT;
    }
    return REC_OK;
}

/* ---- the index (flush order) ------------------------------------------------------------- */

static uint32_t seg_start(const mwi_queue *q, unsigned p)
{
    uint32_t s = 0;
    for (unsigned k = MW_PRIORITY_ALARM; k > p; k--) {
        s += q->count[k];
    }
    return s;
}

/* First index of segment @p p whose seq is >= @p seq. */
static uint32_t seg_lower(const mwi_queue *q, unsigned p, uint64_t seq)
{
    uint32_t lo = seg_start(q, p);
    uint32_t hi = lo + q->count[p];
    while (lo < hi) {
        uint32_t mid = lo + (hi - lo) / 2u;
        if (q->ent[mid].seq < seq) {
            lo = mid + 1u;
        } else {
            hi = mid;
        }
    }
    return lo;
}

static bool idx_find(const mwi_queue *q, uint64_t seq, uint32_t *out_i)
{
    for (unsigned p = MW_PRIORITY_STATUS; p <= MW_PRIORITY_ALARM; p++) {
        uint32_t i = seg_lower(q, p, seq);
        if (i < seg_start(q, p) + q->count[p] && q->ent[i].seq == seq) {
            if (out_i != NULL) {
                *out_i = i;
            }
            return true;
        }
    }
    return false;
}

static void idx_insert(mwi_queue *q, const entry *e)
{
    uint32_t i = seg_lower(q, e->prio, e->seq);
    memmove(&q->ent[i + 1u], &q->ent[i], (size_t)(q->n - i) * sizeof(entry));
    q->ent[i] = *e;
    q->n++;
    q->count[e->prio]++;
}

static void idx_remove(mwi_queue *q, uint32_t i, uint32_t k)
{
    if (k == 0) {
        return;
    }
    q->count[q->ent[i].prio] -= k;
    memmove(&q->ent[i], &q->ent[i + k], (size_t)(q->n - i - k) * sizeof(entry));
    q->n -= k;
}

/* Number of entries with seq in [first, last] in segment p, and where they start. */
static uint32_t seg_range(const mwi_queue *q, unsigned p, uint64_t first, uint64_t last,
                          uint32_t *out_i)
{
    uint32_t lo = seg_lower(q, p, first);
    uint32_t hi = last == UINT64_MAX ? seg_start(q, p) + q->count[p] : seg_lower(q, p, last + 1u);
    *out_i = lo;
    return hi - lo;
}

/* Oldest message of the lowest priority present that is not above @p prio: the eviction
 * policy (alarms last; never a higher priority for a lower one). */
static bool pick_victim(const mwi_queue *q, unsigned prio, uint32_t *out_i)
{
    for (unsigned p = MW_PRIORITY_STATUS; p <= prio; p++) {
        if (q->count[p] > 0) {
            *out_i = seg_start(q, p);
            return true;
        }
    }
    return false;
}

/* ---- bodies ------------------------------------------------------------------------------ */

static uint32_t gaps_encode(const mwi_queue_gap *gaps, uint8_t *out)
{
    uint32_t n = 0;
    uint8_t *p = out + 1;
    for (unsigned i = 0; i < MWI_QUEUE_GAP_SLOTS; i++) {
        if (gaps[i].count == 0) {
            continue;
        }
        p[0] = (uint8_t)gaps[i].priority;
        p[1] = (uint8_t)gaps[i].reason;
        mwi_put64(p + 2, gaps[i].count);
        mwi_put64(p + 10, gaps[i].first_seq);
        mwi_put64(p + 18, gaps[i].last_seq);
        p += GAPS_ENTRY;
        n++;
    }
    out[0] = (uint8_t)n;
    return 1u + n * GAPS_ENTRY;
}

static bool gaps_decode(const uint8_t *b, uint32_t len, mwi_queue_gap *out)
{
    uint32_t n = b[0];
    mwi_queue_gap t[MWI_QUEUE_GAP_SLOTS];

    if (n > MWI_QUEUE_GAP_SLOTS || len != 1u + n * GAPS_ENTRY) {
        return false;
    }
    memset(t, 0, sizeof t);
    for (uint32_t i = 0; i < n; i++) {
        const uint8_t *p = b + 1 + i * GAPS_ENTRY;
        unsigned prio = p[0], reason = p[1];
        mwi_queue_gap *g;
        if (prio > MW_PRIORITY_ALARM ||
            (reason != MWI_QUEUE_GAP_EVICTED && reason != MWI_QUEUE_GAP_CORRUPT)) {
            return false;
        }
        g = &t[gap_slot(prio, reason)];
        g->priority = (mw_priority)prio;
        g->reason = (mwi_queue_gap_reason)reason;
        g->count = mwi_get64(p + 2);
        g->first_seq = mwi_get64(p + 10);
        g->last_seq = mwi_get64(p + 18);
    }
    memcpy(out, t, sizeof t);
    return true;
}

static void drop_entry(uint8_t *p, uint64_t first, uint64_t last, unsigned reason, unsigned prio)
{
    mwi_put64(p, first);
    mwi_put64(p + 8, last);
    p[16] = (uint8_t)reason;
    p[17] = (uint8_t)prio;
}

static mw_err encode_message(const mw_message_t *m, uint64_t t_ms, uint8_t *out, uint32_t *out_len)
{
    medwire_v1_Envelope env;
    pb_ostream_t s;
    mw_err e = mwi_envelope_from_message(m, &env);

    if (e != MW_OK) {
        return e;
    }
    mwi_put64(out, t_ms);
    s = pb_ostream_from_buffer(out + 8, MSG_BODY_MAX - 8u);
    if (!pb_encode(&s, medwire_v1_Envelope_fields, &env)) {
        return MW_EINTERNAL;
    }
    *out_len = 8u + (uint32_t)s.bytes_written;
    return MW_OK;
}

static bool decode_message(const uint8_t *b, uint32_t len, const rec_hdr *h, mw_message_t *out)
{
    medwire_v1_Envelope env;
    pb_istream_t s = pb_istream_from_buffer(b + 8, len - 8u);

    memset(&env, 0, sizeof env);
    if (!pb_decode(&s, medwire_v1_Envelope_fields, &env) ||
        mwi_message_from_envelope(&env, out) != MW_OK) {
        return false;
    }
    /* The header (authenticated as associated data) and the body must agree. */
    return out->seq == h->seq && (unsigned)out->priority == h->prio;
}

/* ---- staging writes ---------------------------------------------------------------------- */

static void stage_begin(mwi_queue *q, uint32_t off)
{
    q->stage_off = off;
    q->stage_len = 0;
}

static mw_err stage_flush(mwi_queue *q)
{
    mw_err e = MW_OK;
    if (q->stage_len > 0) {
        e = st_write(q, q->stage_off, q->wbuf, q->stage_len);
        q->stage_off += q->stage_len;
        q->stage_len = 0;
    }
    return e;
}

/* Seals a record into the staging buffer; *out_off is its region offset. */
static mw_err stage_record(mwi_queue *q, uint64_t gen, unsigned type, unsigned prio, uint64_t seq,
                           const uint8_t *body, uint32_t len, uint32_t *out_off,
                           uint32_t *out_total)
{
    uint32_t total = rec_size(q, len);
    mw_err e;

    if (q->stage_len + total > q->io_size) {
        e = stage_flush(q);
        if (e != MW_OK) {
            return e;
        }
    }
    *out_off = q->stage_off + q->stage_len;
    e = seal(q, q->wbuf + q->stage_len, *out_off, gen, type, prio, seq, body, len, out_total);
    if (e == MW_OK) {
        q->stage_len += total;
    }
    return e;
}

/* ---- half headers ------------------------------------------------------------------------ */

static uint32_t half_base(const mwi_queue *q, unsigned h)
{
    return q->g.hbase + h * q->g.half;
}

static void half_copy_parse(const uint8_t *p, half_hdr *out)
{
    memset(out, 0, sizeof *out);
    if (mwi_get32(p) != HALF_MAGIC || mwi_get16(p + 4) != FORMAT_VERSION ||
        mwi_get32(p + 56) != 0 || mwi_get32(p + HALF_CRC_AT) != mwi_crc32c(0, p, HALF_CRC_AT)) {
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
    memcpy(out->kcv, p + 32, TAG_LEN);
    out->floor = mwi_get64(p + 48);
}

/* Either copy will do: both are written by one write, so a valid one is the committed one. */
static void half_parse(const uint8_t *p, unsigned index, half_hdr *out)
{
    half_copy_parse(p, out);
    if (!out->valid || out->index != index) {
        half_copy_parse(p + HALF_COPY, out);
        if (out->valid && out->index != index) {
            out->valid = false;
        }
    }
}

static mw_err write_half_header(mwi_queue *q, unsigned h, uint64_t gen)
{
    uint8_t *b = q->wbuf;
    uint8_t *p = b;

    memset(b, MWI_ERASED, q->g.hdr_area);
    memset(p, 0, HALF_COPY);
    mwi_put32(p, HALF_MAGIC);
    mwi_put16(p + 4, FORMAT_VERSION);
    p[6] = q->key_len;
    p[7] = (uint8_t)h;
    mwi_put64(p + 8, gen);
    mwi_put32(p + 16, q->st.size);
    mwi_put32(p + 20, q->g.half);
    mwi_put32(p + 24, q->g.align);
    mwi_put32(p + 28, q->g.eu);
    memcpy(p + 32, q->kcv, TAG_LEN);
    mwi_put64(p + 48, mwi_seq_peek(&q->nonces));
    mwi_put32(p + HALF_CRC_AT, mwi_crc32c(0, p, HALF_CRC_AT));
    memcpy(b + HALF_COPY, p, HALF_COPY);
    return st_write(q, half_base(q, h), b, q->g.hdr_area);
}

/* ---- the region label -------------------------------------------------------------------- */

/* Written once when the region becomes a queue, never erased but by mwi_queue_format(), and
 * last in the region: a region cut short (a truncated file) loses it, which is how recovery
 * tells "records at the end are missing" from "the log ends here". */
enum label_state { LABEL_ERASED, LABEL_VALID, LABEL_DAMAGED };

static enum label_state label_parse(const uint8_t *p, const geo *g, uint32_t size, bool *out_match)
{
    *out_match = false;
    if (mwi_all_erased(p, LABEL_LEN)) {
        return LABEL_ERASED;
    }
    if (mwi_get32(p) != LABEL_MAGIC || mwi_get16(p + 4) != FORMAT_VERSION ||
        mwi_get16(p + 6) != 0 || mwi_get32(p + 24) != mwi_crc32c(0, p, 24) || p[28] != 0 ||
        p[29] != 0 || p[30] != 0 || p[31] != MWI_TRAILER) {
        return LABEL_DAMAGED;
    }
    *out_match = mwi_get32(p + 8) == size && mwi_get32(p + 12) == g->half &&
                 mwi_get32(p + 16) == g->align && mwi_get32(p + 20) == g->eu;
    return LABEL_VALID;
}

static mw_err write_label(mwi_queue *q)
{
    uint8_t *b = q->wbuf;
    uint32_t len = mwi_align_up(LABEL_LEN, q->g.wu);
    mw_err e;

    memset(b, MWI_ERASED, len);
    memset(b, 0, LABEL_LEN);
    mwi_put32(b, LABEL_MAGIC);
    mwi_put16(b + 4, FORMAT_VERSION);
    mwi_put32(b + 8, q->st.size);
    mwi_put32(b + 12, q->g.half);
    mwi_put32(b + 16, q->g.align);
    mwi_put32(b + 20, q->g.eu);
    mwi_put32(b + 24, mwi_crc32c(0, b, 24));
    b[31] = MWI_TRAILER;
    e = st_erase(q, q->g.label_off, q->g.label_bytes);
    if (e == MW_OK) {
        e = st_write(q, q->g.label_off, b, len);
    }
    /* Synced on its own: a half header must never be durable without the label before it, or
     * the next open would take the missing label for a truncated region. */
    return e == MW_OK ? st_sync(q) : e;
}

/* ---- geometry and sizes ------------------------------------------------------------------ */

static uint32_t live_max(const geo *g, uint32_t capacity)
{
    return capacity * rec_size_g(g, MSG_BODY_MAX) + rec_size_g(g, GAPS_BODY_MAX);
}

/* The largest single write after a compaction: an eviction plus an append, an Ack, or a gap
 * table; a half must hold the whole queue and this. */
static uint32_t op_max(const geo *g)
{
    uint32_t app = rec_size_g(g, 1u + DROP_ENTRY) + rec_size_g(g, MSG_BODY_MAX);
    uint32_t ack = rec_size_g(g, DROP_BODY_MAX);
    uint32_t gap = rec_size_g(g, GAPS_BODY_MAX);
    return MAX2(app, MAX2(ack, gap));
}

static bool units(uint32_t erase_unit, uint32_t write_unit, geo *g)
{
    memset(g, 0, sizeof *g);
    g->wu = write_unit == 0 ? 1u : write_unit;
    g->eu = erase_unit == 0 ? 1u : erase_unit;
    if (!pow2(g->wu) || !pow2(g->eu) || g->wu > WRITE_UNIT_MAX) {
        return false;
    }
    g->align = MAX2(REC_ALIGN_MIN, g->wu);
    g->unit = MAX2(g->eu, g->align);
    g->hdr_area = mwi_align_up(2u * HALF_COPY, g->align);
    g->store_bytes = mwi_seq_region_size(g->eu, g->wu);
    g->hbase = mwi_align_up(g->store_bytes, g->unit);
    g->label_bytes = mwi_align_up(LABEL_LEN, MAX2(g->eu, g->wu));
    return true;
}

static const char *geometry(const mw_storage_t *st, uint32_t capacity, geo *g)
{
    uint64_t need;

    if (!units(st->erase_unit, st->write_unit, g)) {
        return "queue: erase and write units must be powers of two, write unit at most 512";
    }
    if (st->size % g->eu != 0 || st->size <= g->hbase + g->label_bytes) {
        return "queue: region size must be a multiple of the erase unit and larger than the "
               "nonce store and label";
    }
    g->label_off = st->size - g->label_bytes;
    g->half = ((g->label_off - g->hbase) / 2u) / g->unit * g->unit;
    need = (uint64_t)g->hdr_area + live_max(g, capacity) + op_max(g);
    if (g->half < need) {
        return "queue: region too small for this capacity (see mwi_queue_region_min)";
    }
    return NULL;
}

mw_err mwi_queue_region_min(uint32_t capacity, uint32_t erase_unit, uint32_t write_unit,
                            uint32_t *out_size)
{
    geo g;
    uint64_t half;
    uint64_t total;

    if (out_size == NULL || capacity == 0 || !units(erase_unit, write_unit, &g)) {
        return MW_EINVAL;
    }
    half = (uint64_t)g.hdr_area + live_max(&g, capacity) + op_max(&g);
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
    cfg->nonce_block = DEFAULT_NONCE_BLOCK;
}

/* Sub-blocks of one memory block, each aligned for any type wolfCrypt's Aes needs. */
#define MEM_ALIGN 64u
static size_t mem_round(size_t v)
{
    return (v + MEM_ALIGN - 1u) / MEM_ALIGN * MEM_ALIGN;
}

static uint32_t io_size_of(const geo *g)
{
    uint32_t two = 2u * rec_size_g(g, BODY_MAX);
    return mwi_align_up(MAX2(IO_BUF_MIN, MAX2(two, g->hdr_area)), g->align);
}

mw_err mwi_queue_mem_size(const mwi_queue_config *cfg, size_t *out_size)
{
    geo g;

    if (cfg == NULL || out_size == NULL || cfg->storage == NULL) {
        return MW_EINVAL;
    }
    if (cfg->capacity == 0 || !units(cfg->storage->erase_unit, cfg->storage->write_unit, &g)) {
        return MW_ECONFIG;
    }
    *out_size = mem_round(sizeof(struct mwi_queue)) + mem_round(sizeof(Aes)) +
                mem_round(2u * (size_t)cfg->capacity * sizeof(entry)) +
                2u * mem_round(io_size_of(&g)) + mem_round(BODY_MAX);
    return MW_OK;
}

/* ---- recovery ---------------------------------------------------------------------------- */

/* First non-erased byte in [from, to), or @p to. */
static mw_err first_written(mwi_queue *q, uint32_t from, uint32_t to, uint32_t *out)
{
    while (from < to) {
        uint32_t n = to - from < q->io_size ? to - from : q->io_size;
        const uint8_t *p;
        if (win_get(q, from, n, to, &p) != MW_OK) {
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
    rec_hdr h;
    for (uint32_t pos = from; pos + REC_HDR <= end; pos += q->g.align) {
        const uint8_t *p;
        if (win_get(q, pos, REC_HDR, end, &p) != MW_OK) {
            return MW_EIO;
        }
        if (p[0] == REC_MAGIC && hdr_parse(&q->g, p, end - pos, &h)) {
            *out = pos;
            return MW_OK;
        }
    }
    *out = end;
    return MW_OK;
}

/* Torn or corrupt, for bytes [from, to) that hold no valid record: a power cut leaves a short
 * prefix of a header (< REC_HDR bytes written) or a record without its trailer; damage to a
 * complete record leaves its trailer in place as the last written byte. */
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
            if (win_get(q, pos, 1, to, &p) != MW_OK) {
                return MW_EIO;
            }
            if (*p == MWI_ERASED) {
                break;
            }
            last = pos++;
        }
    }
    if (last != to && last - from + 1u >= REC_HDR) {
        const uint8_t *p;
        if (win_get(q, last, 1, to, &p) != MW_OK) {
            return MW_EIO;
        }
        *out_corrupt = *p == MWI_TRAILER;
    }
    return MW_OK;
}

typedef struct scan_result {
    bool anomaly;    /* something was cut off or skipped: compact */
    bool any_record; /* some record header was seen (the half was used) */
    uint64_t max_nonce;
    uint32_t end; /* end of the last good record */
} scan_result;

static mw_err apply_drop(mwi_queue *q, const uint8_t *b, uint32_t len)
{
    uint32_t n = b[0];

    if (n == 0 || n > MWI_MAX_ACK_RANGES || len != 1u + n * DROP_ENTRY) {
        return MW_EDECODE;
    }
    /* All or nothing: check every entry before applying any. */
    for (uint32_t k = 0; k < n; k++) {
        const uint8_t *p = b + 1 + k * DROP_ENTRY;
        uint64_t first = mwi_get64(p), last = mwi_get64(p + 8);
        if (first == 0 || first > last || p[16] > DROP_EVICTED || p[17] > MW_PRIORITY_ALARM) {
            return MW_EDECODE;
        }
    }
    for (uint32_t k = 0; k < n; k++) {
        const uint8_t *p = b + 1 + k * DROP_ENTRY;
        uint64_t first = mwi_get64(p), last = mwi_get64(p + 8);
        unsigned reason = p[16], prio = p[17];
        for (unsigned pr = MW_PRIORITY_STATUS; pr <= MW_PRIORITY_ALARM; pr++) {
            uint32_t i;
            uint32_t c = seg_range(q, pr, first, last, &i);
            idx_remove(q, i, c);
        }
        if (reason == DROP_EVICTED) {
            gap_add(q, prio, MWI_QUEUE_GAP_EVICTED, first);
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
static bool overflow(mwi_queue *q, const rec_hdr *h, uint32_t off)
{
    uint32_t v;

    if (!pick_victim(q, h->prio, &v)) {
        gap_add(q, h->prio, MWI_QUEUE_GAP_EVICTED, h->seq);
        emit(q, MWI_QUEUE_EVICTED, h->seq, h->prio, off, h->total,
             "queue: over capacity after damage to a stored acknowledgement; evicted");
        return false;
    }
    if (q->ent[v].ghost) {
        gap_add(q, q->ent[v].prio, MWI_QUEUE_GAP_CORRUPT, q->ent[v].seq);
    } else {
        gap_add(q, q->ent[v].prio, MWI_QUEUE_GAP_EVICTED, q->ent[v].seq);
        emit(q, MWI_QUEUE_EVICTED, q->ent[v].seq, q->ent[v].prio, q->ent[v].off, q->ent[v].len,
             "queue: over capacity after damage to a stored acknowledgement; evicted");
    }
    idx_remove(q, v, 1);
    return true;
}

static mw_err apply_record(mwi_queue *q, const rec_hdr *h, uint32_t off, const uint8_t *body,
                           const char **why)
{
    entry e;

    switch (h->type) {
    case REC_MSG:
        if (idx_find(q, h->seq, NULL)) {
            *why = "queue: a second record for a queued sequence number";
            return MW_EDECODE;
        }
        if (q->n >= q->slots && !overflow(q, h, off)) {
            return MW_OK;
        }
        memset(&e, 0, sizeof e);
        e.seq = h->seq;
        e.t_ms = mwi_get64(body);
        e.off = off;
        e.len = (uint16_t)h->total;
        e.prio = h->prio;
        idx_insert(q, &e);
        return MW_OK;
    case REC_DROP:
        *why = "queue: malformed drop record";
        return apply_drop(q, body, h->len);
    case REC_GAPS:
        *why = "queue: malformed gap record";
        return gaps_decode(body, h->len, q->gaps) ? MW_OK : MW_EDECODE;
    default:
        *why = "queue: unknown record type";
        return MW_EDECODE;
    }
}

static void ghost_add(mwi_queue *q, const rec_hdr *h, uint32_t off)
{
    entry e;
    if (h->type != REC_MSG || idx_find(q, h->seq, NULL)) {
        return;
    }
    if (q->n >= q->slots) {
        /* No room to wait for a later DROP: count it lost now. */
        gap_add(q, h->prio, MWI_QUEUE_GAP_CORRUPT, h->seq);
        return;
    }
    memset(&e, 0, sizeof e);
    e.seq = h->seq;
    e.off = off;
    e.len = (uint16_t)h->total;
    e.prio = h->prio;
    e.ghost = 1;
    idx_insert(q, &e);
}

/* Replays the active half into the index. */
static mw_err scan_active(mwi_queue *q, scan_result *r, mw_error_detail_t *d)
{
    uint32_t base = half_base(q, q->active);
    uint32_t end = base + q->g.half;
    uint32_t pos = base + q->g.hdr_area;

    r->end = pos;
    while (pos < end) {
        const uint8_t *p;
        rec_hdr h;
        uint32_t next;
        bool corrupt;
        uint32_t room = end - pos;

        if (win_get(q, pos, room < REC_HDR ? room : REC_HDR, end, &p) != MW_OK) {
            goto io;
        }
        if (room < REC_HDR || mwi_all_erased(p, REC_HDR)) {
            uint32_t nz;
            if (first_written(q, pos, end, &nz) != MW_OK) {
                goto io;
            }
            if (nz == end) {
                break; /* the clean end of the log */
            }
            /* Written bytes after an unwritten gap: a write that was lost while a later one
             * landed (group commit), or damage in free space. */
        } else if (hdr_parse(&q->g, p, room, &h)) {
            enum rec_status s;
            r->any_record = true;
            if (h.nonce > r->max_nonce) {
                r->max_nonce = h.nonce;
            }
            if (win_get(q, pos, h.total, end, &p) != MW_OK) {
                goto io;
            }
            s = unseal(q, p, &h, pos, q->gen, q->pt);
            if (s == REC_OK) {
                const char *why = NULL;
                mw_err e = apply_record(q, &h, pos, q->pt, &why);
                if (e != MW_OK) {
                    /* Authentic but not understood: only a bug or a compromised key writes
                     * that. Report, never deliver. */
                    emit(q, MWI_QUEUE_CORRUPT, h.seq, h.prio, pos, h.total, why);
                    ghost_add(q, &h, pos);
                    r->anomaly = true;
                }
                pos += h.total;
                r->end = pos;
                continue;
            }
            if (s == REC_TORN) {
                emit(q, MWI_QUEUE_TORN, h.seq, h.prio, pos, h.total,
                     "queue: a write interrupted by a power loss was cut off at recovery");
            } else {
                emit(q, MWI_QUEUE_CORRUPT, h.seq, h.prio, pos, h.total,
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
            emit(q, MWI_QUEUE_CORRUPT, 0, 0, pos, next - pos,
                 "queue: damaged bytes where a record header should be; what they held is "
                 "lost");
            gap_add(q, 0, MWI_QUEUE_GAP_CORRUPT, 0);
        } else {
            emit(q, MWI_QUEUE_TORN, 0, 0, pos, next - pos,
                 "queue: a write interrupted by a power loss was cut off at recovery");
        }
        r->anomaly = true;
        pos = next;
    }
    /* Damaged records that no later record removed were live: they are lost, and the gateway
     * must hear about them. */
    for (uint32_t i = 0; i < q->n;) {
        if (q->ent[i].ghost) {
            gap_add(q, q->ent[i].prio, MWI_QUEUE_GAP_CORRUPT, q->ent[i].seq);
            idx_remove(q, i, 1);
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
    uint32_t base = half_base(q, h);
    uint32_t end = base + q->g.half;
    uint32_t pos = base + q->g.hdr_area;

    while (pos + REC_HDR <= end) {
        const uint8_t *p;
        rec_hdr rh;
        if (win_get(q, pos, REC_HDR, end, &p) != MW_OK) {
            return MW_EIO;
        }
        if (p[0] == REC_MAGIC && hdr_parse(&q->g, p, end - pos, &rh)) {
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
    uint32_t base = half_base(q, h);
    if (first_written(q, base + from_rel, base + q->g.half, &nz) != MW_OK) {
        return false;
    }
    *out = nz == base + q->g.half;
    return true;
}

/* ---- compaction -------------------------------------------------------------------------- */

static mw_err compact(mwi_queue *q)
{
    unsigned target = q->active ^ 1u;
    uint32_t tbase = half_base(q, target);
    uint32_t tend = tbase + q->g.half;
    uint32_t obase = half_base(q, q->active);
    uint32_t oend = obase + q->g.half;
    uint64_t gen;
    uint32_t off, total;
    mw_message_t scratch;
    mw_err e;

    /* A fresh generation per attempt: records of an abandoned attempt can never authenticate
     * in a later one at the same offsets. */
    if (mwi_seq_next(&q->nonces, &gen) != MW_OK) {
        return fail(q, MW_EIO, "queue: nonce store could not reserve a generation");
    }
    e = st_erase(q, tbase, q->g.half);
    if (e != MW_OK) {
        return e;
    }
    stage_begin(q, tbase + q->g.hdr_area);
    if (mwi_queue_gaps(q, NULL, 0) > 0) {
        uint8_t body[GAPS_BODY_MAX];
        uint32_t len = gaps_encode(q->gaps, body);
        e = stage_record(q, gen, REC_GAPS, 0, 0, body, len, &off, &total);
        if (e != MW_OK) {
            return e;
        }
    }
    for (uint32_t i = 0; i < q->n;) {
        entry *en = &q->ent[i];
        const uint8_t *p;
        rec_hdr h;
        enum rec_status s = REC_CORRUPT;

        if (win_get(q, en->off, en->len, oend, &p) != MW_OK) {
            return fail(q, MW_EIO, "queue: storage read failed");
        }
        if (hdr_parse(&q->g, p, en->len, &h) && h.seq == en->seq && h.total == en->len) {
            s = unseal(q, p, &h, en->off, q->gen, q->pt);
        }
        if (s == REC_OK && !decode_message(q->pt, h.len, &h, &scratch)) {
            /* Authentic but not a message this code accepts (a rule made stricter since it
             * was stored): it could never be delivered, so it must not stay queued. */
            s = REC_CORRUPT;
        }
        if (s != REC_OK) {
            /* It authenticated when it was written or recovered: the medium decayed since. */
            emit(q, MWI_QUEUE_CORRUPT, en->seq, en->prio, en->off, en->len,
                 "queue: a stored record can no longer be read back intact (medium damaged); "
                 "it is not delivered");
            gap_add(q, en->prio, MWI_QUEUE_GAP_CORRUPT, en->seq);
            idx_remove(q, i, 1);
            continue;
        }
        if (q->stage_off + q->stage_len + h.total > tend) {
            return fail(q, MW_EINTERNAL, "queue: live records do not fit in a half");
        }
        e = stage_record(q, gen, REC_MSG, h.prio, h.seq, q->pt, h.len, &off, &total);
        if (e != MW_OK) {
            return e;
        }
        en->off = off;
        en->len = (uint16_t)total;
        i++;
    }
    e = stage_flush(q);
    if (e == MW_OK) {
        e = st_sync(q);
    }
    /* The commit point: before this header is durable the old half is the queue, after it the
     * new one. */
    if (e == MW_OK) {
        e = write_half_header(q, target, gen);
    }
    if (e == MW_OK) {
        e = st_sync(q);
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
    return st_erase(q, obase, mwi_align_up(q->g.hdr_area, q->g.eu));
}

/* Makes room for @p need bytes at the head, compacting if the half is full. Sizing guarantees
 * room after compaction for up to capacity messages; only a queue over capacity (after damage,
 * see overflow()) can lack it, and then the eviction policy makes room. */
static mw_err ensure_room(mwi_queue *q, uint32_t need)
{
    uint32_t data = q->g.half - q->g.hdr_area;
    uint64_t live = rec_size(q, GAPS_BODY_MAX);
    mw_err e;

    if (q->head + need <= half_base(q, q->active) + q->g.half) {
        return MW_OK;
    }
    for (uint32_t i = 0; i < q->n; i++) {
        live += q->ent[i].len;
    }
    while (q->n > 0 && live + need > data) {
        uint32_t v = 0;
        entry en;
        (void)pick_victim(q, MW_PRIORITY_ALARM, &v);
        en = q->ent[v];
        live -= en.len;
        idx_remove(q, v, 1);
        gap_add(q, en.prio, MWI_QUEUE_GAP_EVICTED, en.seq);
        emit(q, MWI_QUEUE_EVICTED, en.seq, en.prio, en.off, en.len,
             "queue: over capacity and out of space; evicted");
    }
    e = compact(q);
    if (e != MW_OK) {
        return e;
    }
    if (q->head + need > half_base(q, q->active) + q->g.half) {
        return fail(q, MW_EINTERNAL, "queue: no room after compaction");
    }
    return MW_OK;
}

/* Durability of one operation: synced now (default), or counted for group commit. */
static mw_err commit_op(mwi_queue *q, uint64_t now_ms)
{
    q->last_now = now_ms;
    if (q->gc_n <= 1u) {
        return st_sync(q);
    }
    if (q->unsynced == 0) {
        q->unsynced_since = now_ms;
    }
    q->unsynced++;
    if (q->unsynced >= q->gc_n) {
        return st_sync(q);
    }
    return MW_OK;
}

/* ---- open and close ---------------------------------------------------------------------- */

static mw_err cfg_error(mw_error_detail_t *d, mw_err e, const char *why)
{
    mwi_detail_first(d, e, 0, why);
    return e;
}

static void release(mwi_queue *q)
{
    void *mem = q->mem;
    bool owns = q->owns_mem;

    if (q->aes != NULL) {
        wc_AesFree(q->aes);
        wipe(q->aes, sizeof(Aes));
    }
    if (q->pt != NULL) {
        wipe(q->pt, BODY_MAX);
    }
    wipe(q, sizeof *q);
    if (owns) {
        free(mem);
    }
}

static mw_err open_body(mwi_queue *q, const mwi_queue_config *cfg, mw_error_detail_t *d);

mw_err mwi_queue_open(const mwi_queue_config *cfg, mwi_queue **out_q, mw_error_detail_t *out_detail)
{
    size_t need = 0;
    uint8_t *mem;
    mwi_queue *q;
    geo g;
    const char *why;
    mw_err e;

    if (out_q != NULL) {
        *out_q = NULL;
    }
    if (cfg == NULL || out_q == NULL || cfg->storage == NULL) {
        return cfg_error(out_detail, MW_EINVAL, "queue: configuration, storage or output missing");
    }
    if (cfg->key == NULL || cfg->key_len == 0) {
        return cfg_error(out_detail, MW_ECONFIG,
                         "queue: storage key missing (the vendor must configure 16 or 32 bytes)");
    }
    if (cfg->key_len != MWI_QUEUE_KEY_128 && cfg->key_len != MWI_QUEUE_KEY_256) {
        return cfg_error(out_detail, MW_ECONFIG, "queue: storage key must be 16 or 32 bytes");
    }
    if (cfg->capacity == 0 || cfg->capacity > 1000000u) {
        return cfg_error(out_detail, MW_ECONFIG, "queue: capacity must be 1..1000000");
    }
    if (cfg->storage->read == NULL || cfg->storage->write == NULL || cfg->storage->erase == NULL ||
        cfg->storage->sync == NULL) {
        return cfg_error(out_detail, MW_EINVAL, "queue: storage table incomplete");
    }
    why = geometry(cfg->storage, cfg->capacity, &g);
    if (why != NULL) {
        return cfg_error(out_detail, MW_ECONFIG, why);
    }
    e = mwi_queue_mem_size(cfg, &need);
    if (e != MW_OK) {
        return cfg_error(out_detail, e, "queue: invalid configuration");
    }
    if (cfg->mem != NULL) {
        if (cfg->mem_size < need || ((uintptr_t)cfg->mem % 16u) != 0) {
            return cfg_error(out_detail, MW_ECONFIG,
                             "queue: caller memory smaller than mwi_queue_mem_size() or not "
                             "16-byte aligned");
        }
        mem = cfg->mem;
        memset(mem, 0, need);
    } else {
        mem = calloc(1, need);
        if (mem == NULL) {
            return cfg_error(out_detail, MW_ENOMEM, "queue: out of memory");
        }
    }
    q = (mwi_queue *)(void *)mem;
    q->mem = mem;
    q->owns_mem = cfg->mem == NULL;
    q->g = g;
    q->io_size = io_size_of(&g);
    mem += mem_round(sizeof(struct mwi_queue));
    q->aes = (Aes *)(void *)mem;
    mem += mem_round(sizeof(Aes));
    q->ent = (entry *)(void *)mem;
    mem += mem_round(2u * (size_t)cfg->capacity * sizeof(entry));
    q->rbuf = mem;
    mem += mem_round(q->io_size);
    q->wbuf = mem;
    mem += mem_round(q->io_size);
    q->pt = mem;

    e = open_body(q, cfg, out_detail);
    if (e != MW_OK) {
        release(q);
        return e;
    }
    *out_q = q;
    return MW_OK;
}

static mw_err open_body(mwi_queue *q, const mwi_queue_config *cfg, mw_error_detail_t *d)
{
    mw_storage_t nst;
    mw_error_detail_t seq_why = {0};
    half_hdr hh[2];
    scan_result r;
    enum label_state label;
    bool label_match = false;
    bool store_lost = false;
    bool store_used;
    uint64_t floor;
    int active = -1;
    const uint8_t *p;
    mw_err e;

    q->st = *cfg->storage;
    q->capacity = cfg->capacity;
    q->slots = 2u * cfg->capacity;
    q->key_len = (uint8_t)cfg->key_len;
    q->gc_n = cfg->group_commit_n;
    q->gc_ms = cfg->group_commit_ms == 0 ? DEFAULT_GC_MS : cfg->group_commit_ms;
    q->on_event = cfg->on_event;
    q->event_ctx = cfg->event_ctx;
    q->st_counters.capacity = cfg->capacity;
    q->st_counters.bytes_half = q->g.half;

    if (wc_AesInit(q->aes, NULL, INVALID_DEVID) != 0 ||
        wc_AesGcmSetKey(q->aes, cfg->key, (uint32_t)cfg->key_len) != 0 ||
        key_check(q->aes, q->kcv) != MW_OK) {
        return cfg_error(d, MW_EINTERNAL, "queue: wolfCrypt refused the AES-GCM key");
    }

    /* Everything below reads until the key and the geometry have been checked. */
    if (win_get(q, q->g.label_off, LABEL_LEN, q->st.size, &p) != MW_OK) {
        return cfg_error(d, MW_EIO, "queue: cannot read the storage region");
    }
    label = label_parse(p, &q->g, q->st.size, &label_match);
    if (label == LABEL_VALID && !label_match) {
        return cfg_error(d, MW_ECONFIG,
                         "queue: the region was created with another size or erase/write unit; "
                         "data left untouched");
    }
    if (mw_storage_slice(&q->st, 0, q->g.store_bytes, &q->nonce_slice, &nst) != MW_OK) {
        return cfg_error(d, MW_ECONFIG, "queue: nonce store does not fit the region");
    }
    e = mwi_seq_open(&nst, cfg->nonce_block == 0 ? DEFAULT_NONCE_BLOCK : cfg->nonce_block, 1,
                     &q->nonces, &seq_why);
    if (e != MW_OK) {
        if (q->nonces.corrupt_slots == 0 && q->nonces.torn_slots == 0) {
            return cfg_error(d, e, seq_why.reason[0] ? seq_why.reason : "queue: nonce store");
        }
        store_lost = true; /* both slots damaged: restarted above every counter seen, below */
    } else if (q->nonces.fresh) {
        store_lost = true; /* only a problem if the halves show the store was used (below) */
    }
    store_used = !q->nonces.fresh || q->nonces.torn_slots != 0 || q->nonces.corrupt_slots != 0;

    /* Half headers: pick the active half, and check key and geometry before any write. */
    for (unsigned h = 0; h < 2; h++) {
        if (win_get(q, half_base(q, h), q->g.hdr_area, half_base(q, h) + q->g.half, &p) != MW_OK) {
            return cfg_error(d, MW_EIO, "queue: cannot read the storage region");
        }
        half_parse(p, h, &hh[h]);
        if (hh[h].valid && (active < 0 || hh[h].gen > hh[active].gen)) {
            active = (int)h;
        }
    }
    memset(&r, 0, sizeof r);
    if (active >= 0) {
        const half_hdr *a = &hh[active];
        if (a->size != q->st.size || a->half != q->g.half || a->align != q->g.align ||
            a->eu != q->g.eu) {
            return cfg_error(d, MW_ECONFIG,
                             "queue: the region was created with another size or erase/write "
                             "unit; data left untouched");
        }
        if (a->key_len != q->key_len || memcmp(a->kcv, q->kcv, TAG_LEN) != 0) {
            return cfg_error(d, MW_ECONFIG,
                             "queue: storage key differs from the key this queue was written "
                             "with (key check value mismatch); data left untouched");
        }
        q->active = (uint8_t)active;
        q->gen = a->gen;
        e = scan_active(q, &r, d);
        if (e != MW_OK) {
            return e;
        }
        q->head = r.end;
        if (scan_nonces(q, (unsigned)active ^ 1u, &r) != MW_OK) {
            return cfg_error(d, MW_EIO, "queue: cannot read the storage region");
        }
    } else {
        bool e0 = false, e1 = false;
        /* Creation writes only the label and the header of half 0; anything else written
         * means a queue whose headers are gone, and formatting it would destroy what may
         * still be recoverable. */
        if (!half_area_erased(q, 0, q->g.hdr_area, &e0) || !half_area_erased(q, 1, 0, &e1)) {
            return cfg_error(d, MW_EIO, "queue: cannot read the storage region");
        }
        if (!e0 || !e1) {
            return cfg_error(d, MW_EIO,
                             "queue: the region holds data but no valid queue header (damaged, "
                             "truncated, or not a queue); not formatting it -- "
                             "mwi_queue_format() starts over");
        }
    }
    if (label != LABEL_VALID && (active >= 0 || store_used)) {
        /* The region was in use, yet its last bytes are gone or damaged: a file cut short
         * (whatever its log held past the cut is lost), or a bit flip in the label. */
        emit(q, MWI_QUEUE_CORRUPT, 0, 0, q->g.label_off, q->g.label_bytes,
             "queue: the end of the region is missing or damaged (truncated file?); records "
             "that were stored past the cut are lost");
    }

    /* Nonce floor: above every counter, generation and recorded floor found anywhere. */
    floor = r.max_nonce;
    for (unsigned h = 0; h < 2; h++) {
        if (hh[h].valid) {
            floor = MAX2(floor, MAX2(hh[h].gen, hh[h].floor));
        }
    }
    floor = floor == UINT64_MAX ? floor : floor + 1u;
    if (store_lost && active >= 0 && (q->gen > 0 || r.any_record)) {
        /* The halves show the store was used, yet it is gone or unreadable. */
        emit(q, MWI_QUEUE_CORRUPT, 0, 0, 0, q->g.store_bytes,
             "queue: nonce store lost or damaged; nonces restart far above every one found");
        floor = floor > UINT64_MAX - STORE_JUMP ? UINT64_MAX : floor + STORE_JUMP;
        mwi_seq_restart(&q->nonces, floor);
    } else if (store_lost && q->nonces.broken) {
        mwi_seq_restart(&q->nonces, floor);
    } else if (q->nonces.corrupt_slots != 0) {
        emit(q, MWI_QUEUE_CORRUPT, 0, 0, 0, q->g.store_bytes,
             "queue: a nonce store slot was damaged; nonces continue past it");
    }
    mwi_seq_raise(&q->nonces, floor);

    /* From here on the region is written. */
    if (label != LABEL_VALID) {
        e = write_label(q);
        if (e != MW_OK) {
            return cfg_error(d, e, "queue: cannot write the region label");
        }
    }
    if (active < 0 && q->nonces.corrupt_slots != 0) {
        /* No half survived, but a damaged nonce slot did: rewrite it now, or every later open
         * would report it again (found by fuzz_queue). */
        uint64_t unused;
        if (mwi_seq_next(&q->nonces, &unused) != MW_OK) {
            return cfg_error(d, MW_EIO, "queue: cannot rewrite the nonce store");
        }
    }
    if (active < 0) {
        /* A new queue: an empty half 0 with the key check, generation 0 (no record is ever
         * sealed under generation 0 before this header is durable). A creation interrupted by
         * a power cut may have left part of this header: erase first. */
        q->active = 0;
        q->gen = 0;
        q->head = half_base(q, 0) + q->g.hdr_area;
        e = st_erase(q, half_base(q, 0), mwi_align_up(q->g.hdr_area, q->g.eu));
        if (e == MW_OK) {
            e = write_half_header(q, 0, 0);
        }
        if (e == MW_OK) {
            e = st_sync(q);
        }
        if (e != MW_OK) {
            return cfg_error(d, MW_EIO, "queue: cannot write the new queue header");
        }
        return MW_OK;
    }
    if (store_lost || q->nonces.corrupt_slots != 0 || q->nonces.torn_slots != 0) {
        /* Rewrite the store now, so the damage is repaired and reported once. */
        uint64_t unused;
        if (mwi_seq_next(&q->nonces, &unused) != MW_OK) {
            return cfg_error(d, MW_EIO, "queue: cannot rewrite the nonce store");
        }
    }
    if (r.anomaly) {
        /* Rewrite the log without what was cut or skipped, so it is reported once. */
        e = compact(q);
        if (e == MW_OK) {
            e = st_sync(q);
        }
        if (e != MW_OK) {
            return cfg_error(d, e, q->err.reason);
        }
    }
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
        (void)st_sync(q);
    }
    release(q);
    *qp = NULL;
}

mw_err mwi_queue_format(const mw_storage_t *st)
{
    geo g;
    uint32_t len;

    if (st == NULL || st->erase == NULL || st->sync == NULL ||
        !units(st->erase_unit, st->write_unit, &g) || st->size % g.eu != 0 ||
        st->size <= g.hbase + g.label_bytes) {
        return MW_EINVAL;
    }
    /* The nonce store survives: a queue re-created under the same key must not count its
     * nonces from 1 again. So does the label (the region is still this queue's). */
    len = st->size - g.label_bytes - g.hbase;
    if (st->erase(st->ctx, g.hbase, len) != MW_OK || st->sync(st->ctx) != MW_OK) {
        return MW_EIO;
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
    return q->n < q->capacity || pick_victim(q, (unsigned)priority, &i);
}

mw_err mwi_queue_append(mwi_queue *q, const mw_message_t *msg, uint64_t now_ms)
{
    uint8_t drop[1u + DROP_ENTRY];
    uint32_t len = 0, need, victim = 0, off, total, msg_off, msg_total;
    bool evict = false;
    uint64_t compactions;
    entry ev = {0}, e_new;
    mw_err e = usable(q);

    if (e != MW_OK) {
        return e;
    }
    if (msg == NULL || mwi_message_check(msg) != MW_OK || idx_find(q, msg->seq, NULL)) {
        return MW_EINVAL;
    }
    e = encode_message(msg, now_ms, q->pt, &len);
    if (e != MW_OK) {
        return e == MW_EINVAL ? e : fail(q, e, "queue: message encoding failed");
    }
    need = rec_size(q, len);
    if (q->n >= q->capacity) {
        if (!pick_victim(q, (unsigned)msg->priority, &victim)) {
            return MW_EFULL;
        }
        evict = true;
        need += rec_size(q, sizeof drop);
    }
    compactions = q->st_counters.compactions;
    e = ensure_room(q, need);
    if (e != MW_OK) {
        return e;
    }
    if (q->st_counters.compactions != compactions) {
        /* Compaction decrypted through the plaintext buffer: encode again. It may also have
         * dropped a decayed record (room now) and moved entries: pick the victim again. */
        e = encode_message(msg, now_ms, q->pt, &len);
        if (e != MW_OK) {
            return fail(q, e, "queue: message encoding failed");
        }
        evict = evict && q->n >= q->capacity && pick_victim(q, (unsigned)msg->priority, &victim);
    }
    stage_begin(q, q->head);
    if (evict) {
        ev = q->ent[victim];
        drop[0] = 1;
        drop_entry(drop + 1, ev.seq, ev.seq, DROP_EVICTED, ev.prio);
        e = stage_record(q, q->gen, REC_DROP, 0, 0, drop, sizeof drop, &off, &total);
        if (e != MW_OK) {
            return e;
        }
    }
    /* Eviction and append in one write: a power cut keeps neither, the eviction alone (the
     * append never returned), or both. */
    e = stage_record(q, q->gen, REC_MSG, (unsigned)msg->priority, msg->seq, q->pt, len, &msg_off,
                     &msg_total);
    if (e == MW_OK) {
        e = stage_flush(q);
    }
    if (e == MW_OK) {
        e = commit_op(q, now_ms);
    }
    if (e != MW_OK) {
        return e;
    }
    q->head = q->stage_off;
    if (evict) {
        idx_remove(q, victim, 1);
        gap_add(q, ev.prio, MWI_QUEUE_GAP_EVICTED, ev.seq);
    }
    memset(&e_new, 0, sizeof e_new);
    e_new.seq = msg->seq;
    e_new.t_ms = now_ms;
    e_new.off = msg_off;
    e_new.len = (uint16_t)msg_total;
    e_new.prio = (uint8_t)msg->priority;
    idx_insert(q, &e_new);
    q->st_counters.appended++;
    if (evict) {
        emit(q, MWI_QUEUE_EVICTED, ev.seq, ev.prio, ev.off, ev.len,
             "queue full: the oldest message of the lowest priority was evicted to keep a new "
             "one");
    }
    return MW_OK;
}

mw_err mwi_queue_ack(mwi_queue *q, const mwi_seq_range *ranges, size_t n, uint64_t now_ms,
                     size_t *out_removed)
{
    uint8_t body[DROP_BODY_MAX];
    uint32_t k = 0, len, off, total;
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
        uint32_t hits = 0;
        for (unsigned p = MW_PRIORITY_STATUS; p <= MW_PRIORITY_ALARM; p++) {
            uint32_t at;
            hits += seg_range(q, p, ranges[i].first, ranges[i].last, &at);
        }
        if (hits > 0) {
            drop_entry(body + 1 + k * DROP_ENTRY, ranges[i].first, ranges[i].last, DROP_ACKED, 0);
            k++;
        }
    }
    if (k == 0) {
        return MW_OK;
    }
    body[0] = (uint8_t)k;
    len = 1u + k * DROP_ENTRY;
    e = ensure_room(q, rec_size(q, len));
    if (e != MW_OK) {
        return e;
    }
    stage_begin(q, q->head);
    e = stage_record(q, q->gen, REC_DROP, 0, 0, body, len, &off, &total);
    if (e == MW_OK) {
        e = stage_flush(q);
    }
    if (e == MW_OK) {
        e = commit_op(q, now_ms);
    }
    if (e != MW_OK) {
        return e;
    }
    q->head = q->stage_off;
    for (uint32_t i = 0; i < k; i++) {
        const uint8_t *p = body + 1 + i * DROP_ENTRY;
        for (unsigned pr = MW_PRIORITY_STATUS; pr <= MW_PRIORITY_ALARM; pr++) {
            uint32_t at;
            uint32_t c = seg_range(q, pr, mwi_get64(p), mwi_get64(p + 8), &at);
            idx_remove(q, at, c);
            removed += c;
        }
    }
    q->st_counters.acked += removed;
    if (out_removed != NULL) {
        *out_removed = removed;
    }
    return MW_OK;
}

/* A record that stopped authenticating after open. Compaction re-reads every record, reports
 * and drops the ones that fail (compact() above), and leaves no damaged bytes in the active half
 * for the next open to report a second time. */
static mw_err drop_decayed(mwi_queue *q)
{
    mw_err e = compact(q);
    return e != MW_OK ? e : st_sync(q);
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
        uint32_t i = c->after_seq == UINT64_MAX ? seg_start(q, p) + q->count[p]
                                                : seg_lower(q, p, c->after_seq + 1u);
        const entry *en;
        const uint8_t *raw;
        rec_hdr h;
        uint32_t end = half_base(q, q->active) + q->g.half;

        if (i >= seg_start(q, p) + q->count[p]) {
            if (p == MW_PRIORITY_STATUS) {
                c->after_seq = UINT64_MAX;
                return MW_EAGAIN;
            }
            c->priority = (uint8_t)(p - 1u);
            c->after_seq = 0;
            continue;
        }
        en = &q->ent[i];
        if (c->skip != NULL && c->skip(c->skip_ctx, en->seq)) {
            c->after_seq = en->seq;
            continue;
        }
        if (win_get(q, en->off, en->len, end, &raw) != MW_OK) {
            return fail(q, MW_EIO, "queue: storage read failed");
        }
        if (hdr_parse(&q->g, raw, en->len, &h) && h.seq == en->seq && h.total == en->len &&
            unseal(q, raw, &h, en->off, q->gen, q->pt) == REC_OK &&
            decode_message(q->pt, h.len, &h, out_msg)) {
            c->after_seq = en->seq;
            return MW_OK;
        }
        bad = en->seq;
        e = drop_decayed(q);
        if (e != MW_OK) {
            return e;
        }
        /* Compaction applies the same checks; should it ever keep the record, stop rather
         * than loop. */
        if (idx_find(q, bad, NULL)) {
            return fail(q, MW_EINTERNAL, "queue: a record fails to read yet survives compaction");
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
        return st_sync(q);
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
    return e != MW_OK ? e : st_sync(q);
}

mw_err mwi_queue_compact(mwi_queue *q)
{
    mw_err e = usable(q);
    if (e != MW_OK) {
        return e;
    }
    e = compact(q);
    /* The retired header's erase is the only unsynced write left; make the call durable. */
    return e != MW_OK ? e : st_sync(q);
}

uint64_t mwi_queue_low_water(const mwi_queue *q)
{
    uint64_t low = 0;
    if (q == NULL) {
        return 0;
    }
    /* Each priority's segment is sorted: its first entry is its lowest number. */
    for (unsigned p = MW_PRIORITY_STATUS; p <= MW_PRIORITY_ALARM; p++) {
        if (q->count[p] > 0) {
            uint64_t s = q->ent[seg_start(q, p)].seq;
            low = (low == 0 || s < low) ? s : low;
        }
    }
    return low;
}

uint32_t mwi_queue_depth(const mwi_queue *q)
{
    return q == NULL ? 0 : q->n;
}

void mwi_queue_stats_get(const mwi_queue *q, uint64_t now_ms, mwi_queue_stats *out)
{
    uint64_t oldest = UINT64_MAX;

    if (q == NULL || out == NULL) {
        return;
    }
    *out = q->st_counters;
    out->depth = q->n;
    for (unsigned p = 0; p < 4; p++) {
        out->depth_by_priority[p] = q->count[p];
    }
    for (uint32_t i = 0; i < q->n; i++) {
        if (q->ent[i].t_ms < oldest) {
            oldest = q->ent[i].t_ms;
        }
    }
    out->oldest_age_ms = (q->n == 0 || now_ms < oldest) ? 0 : now_ms - oldest;
    out->unsynced = q->unsynced;
    out->bytes_used = q->head - (half_base(q, q->active) + q->g.hdr_area);
    out->active_offset = half_base(q, q->active);
    out->header_bytes = q->g.hdr_area;
}

size_t mwi_queue_gaps(const mwi_queue *q, mwi_queue_gap *out, size_t cap)
{
    size_t n = 0;
    if (q == NULL) {
        return 0;
    }
    for (unsigned i = 0; i < MWI_QUEUE_GAP_SLOTS; i++) {
        if (q->gaps[i].count == 0) {
            continue;
        }
        if (out != NULL && n < cap) {
            out[n] = q->gaps[i];
        }
        n++;
    }
    return out == NULL ? n : (n < cap ? n : cap);
}

mw_err mwi_queue_gaps_clear(mwi_queue *q, const mwi_queue_gap *done, size_t n)
{
    mwi_queue_gap t[MWI_QUEUE_GAP_SLOTS];
    uint8_t body[GAPS_BODY_MAX];
    uint32_t len, off, total;
    mw_err e = usable(q);

    if (e != MW_OK) {
        return e;
    }
    if (done == NULL && n > 0) {
        return MW_EINVAL;
    }
    memcpy(t, q->gaps, sizeof t);
    for (size_t i = 0; i < n; i++) {
        unsigned prio = (unsigned)done[i].priority, reason = (unsigned)done[i].reason;
        mwi_queue_gap *g;
        if (prio > MW_PRIORITY_ALARM ||
            (reason != MWI_QUEUE_GAP_EVICTED && reason != MWI_QUEUE_GAP_CORRUPT)) {
            return MW_EINVAL;
        }
        g = &t[gap_slot(prio, reason)];
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
    if (memcmp(t, q->gaps, sizeof t) == 0) {
        return MW_OK;
    }
    len = gaps_encode(t, body);
    e = ensure_room(q, rec_size(q, len));
    if (e != MW_OK) {
        return e;
    }
    stage_begin(q, q->head);
    e = stage_record(q, q->gen, REC_GAPS, 0, 0, body, len, &off, &total);
    if (e == MW_OK) {
        e = stage_flush(q);
    }
    if (e == MW_OK) {
        e = commit_op(q, q->last_now);
    }
    if (e != MW_OK) {
        return e;
    }
    q->head = q->stage_off;
    memcpy(q->gaps, t, sizeof t);
    return MW_OK;
}

mw_err mwi_queue_locate(const mwi_queue *q, uint64_t seq, uint32_t *out_off, uint32_t *out_len)
{
    uint32_t i;
    if (q == NULL || out_off == NULL || out_len == NULL) {
        return MW_EINVAL;
    }
    if (!idx_find(q, seq, &i)) {
        return MW_EAGAIN;
    }
    *out_off = q->ent[i].off;
    *out_len = q->ent[i].len;
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
