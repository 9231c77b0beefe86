/* SPDX-License-Identifier: Apache-2.0 */
/* record.c -- the queue's record format: header, nonce, associated data, seal and unseal, and
 * the MSG, DROP and GAPS bodies (docs/queue.md, 6 and 7). */
#include <string.h>

#include <pb_decode.h>
#include <pb_encode.h>

#include "core/detail.h"
#include "queue/format.h"
#include "queue/index.h"
#include "queue/record.h"

/*
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
 *      found in any record header and half header in either half (recovery.c).
 *   Hence (key, nonce) pairs are unique while the store survives. It does not survive a wiped
 *   region (a factory reset, a deleted or truncated file), so the store alone would let a
 *   new queue in the same place count from 1 again under the same vendor key, and two tags
 *   under one nonce give away GCM's hash key. So each incarnation of a region -- each
 *   creation on an erased region, each mwi_queue_format() -- draws a random 16-byte salt,
 *   and records are sealed under HKDF-SHA256(vendor key, salt): a new incarnation has a new
 *   key, and so does every other region sharing the vendor key.
 *
 * Associated data = "MWQ2" || record header || salt || generation || record offset. The
 * generation is a fresh store value, drawn at creation and for each compaction attempt, so a
 * record cannot be moved to another position or half, survive from an abandoned compaction
 * into the next one, or from before a format into the queue after it.
 */

#define AAD_LEN        (4u + MWI_REC_CRC_AT + MWI_SALT_LEN + 8u + 4u)
#define NONCE_LEN      MWI_AEAD_NONCE_LEN
#define TAG_LEN        MWI_AEAD_TAG_LEN
#define NONCE_RECORD   0x52u /* 'R' */
#define NONCE_KEYCHECK 0x4Bu /* 'K' */

_Static_assert(MW_PRIORITY_ALARM == 3 && MW_PRIORITY_STATUS == 1, "priority is an index 1..3");

static const uint8_t AAD_LABEL[4] = {'M', 'W', 'Q', '2'};
static const char KEYCHECK_LABEL[] = "medwire offline queue key check v2";
static const char KDF_INFO[] = "medwire queue record key v2";

uint32_t mwi_rec_size(uint32_t align, uint32_t body_len)
{
    return mwi_align_up(MWI_REC_HDR + body_len + TAG_LEN + 1u, align);
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

static void make_aad(const mwi_rec_keys *k, const uint8_t *hdr, uint64_t gen, uint32_t off,
                     uint8_t aad[AAD_LEN])
{
    uint8_t *p = aad;
    memcpy(p, AAD_LABEL, 4);
    p += 4;
    memcpy(p, hdr, MWI_REC_CRC_AT);
    p += MWI_REC_CRC_AT;
    memcpy(p, k->salt, MWI_SALT_LEN);
    p += MWI_SALT_LEN;
    mwi_put64(p, gen);
    mwi_put32(p + 8, off);
}

/* GMAC of a constant under the key with a nonce no record uses: the same computation every
 * time, so repeating it reveals nothing, and a different key gives a different value. */
static mw_err key_check(mwi_aead *aead, uint8_t out[TAG_LEN])
{
    uint8_t iv[NONCE_LEN];
    uint8_t dummy[1] = {0};

    make_nonce(NONCE_KEYCHECK, 0, iv);
    return mwi_aead_seal(aead, dummy, dummy, 0, iv, (const uint8_t *)KEYCHECK_LABEL,
                         (uint32_t)sizeof KEYCHECK_LABEL - 1, out);
}

/* The record key of this incarnation: HKDF-SHA256(vendor key, salt, info || key length), as
 * long as the vendor key. Only the AES schedule keeps it; the vendor key is not copied. */
mw_err mwi_rec_set_key(mwi_rec_keys *k, const uint8_t *key, size_t key_len)
{
    uint8_t info[sizeof KDF_INFO];

    memcpy(info, KDF_INFO, sizeof KDF_INFO - 1u);
    info[sizeof KDF_INFO - 1u] = (uint8_t)key_len;
    if (mwi_aead_derive_key(k->aead, key, key_len, k->salt, MWI_SALT_LEN, info, sizeof info) !=
            MW_OK ||
        key_check(k->aead, k->kcv) != MW_OK) {
        return MW_EINTERNAL;
    }
    return MW_OK;
}

/* The salt of a new incarnation. Without a random source there is no way to tell this
 * incarnation's key from the last one's, so no queue is created or formatted. */
mw_err mwi_rec_draw_salt(const mw_random_t *rnd, uint8_t salt[MWI_SALT_LEN], const char **why)
{
    if (rnd->fill == NULL) {
        *why = MWI_REASON("queue: creating or formatting a queue needs a random source "
                          "(mwi_queue_config.random) for the region's salt; nothing was written");
        return MW_ECONFIG;
    }
    if (rnd->fill(rnd->ctx, salt, MWI_SALT_LEN) != MW_OK) {
        *why = MWI_REASON(
            "queue: the random source failed to give the region's salt; nothing was written");
        return MW_EINTERNAL;
    }
    return MW_OK;
}

mw_err mwi_rec_seal(const mwi_rec_keys *k, uint32_t align, mwi_rec_hdr *h, const uint8_t *body,
                    uint32_t len, uint32_t off, uint64_t gen, uint8_t *dst)
{
    uint8_t aad[AAD_LEN];
    uint8_t iv[NONCE_LEN];
    uint32_t total = mwi_rec_size(align, len);

    h->len = (uint16_t)len;
    h->total = total;
    dst[0] = MWI_REC_MAGIC;
    dst[1] = h->type;
    mwi_put16(dst + 2, h->len);
    dst[4] = h->prio;
    dst[5] = dst[6] = dst[7] = 0;
    mwi_put64(dst + 8, h->seq);
    mwi_put64(dst + 16, h->nonce);
    mwi_put32(dst + MWI_REC_CRC_AT, mwi_crc32c(0, dst, MWI_REC_CRC_AT));
    make_aad(k, dst, gen, off, aad);
    make_nonce(NONCE_RECORD, h->nonce, iv);
    if (mwi_aead_seal(k->aead, dst + MWI_REC_HDR, body, len, iv, aad, AAD_LEN,
                      dst + MWI_REC_HDR + len) != MW_OK) {
        return MW_EINTERNAL;
    }
    memset(dst + MWI_REC_HDR + len + TAG_LEN, 0, total - (MWI_REC_HDR + len + TAG_LEN) - 1u);
    dst[total - 1u] = MWI_TRAILER;
    return MW_OK;
}

bool mwi_rec_parse(uint32_t align, const uint8_t *p, uint32_t room, mwi_rec_hdr *h)
{
    if (room < MWI_REC_HDR || p[0] != MWI_REC_MAGIC || p[5] != 0 || p[6] != 0 || p[7] != 0 ||
        mwi_get32(p + MWI_REC_CRC_AT) != mwi_crc32c(0, p, MWI_REC_CRC_AT)) {
        return false;
    }
    h->type = p[1];
    h->len = mwi_get16(p + 2);
    h->prio = p[4];
    h->seq = mwi_get64(p + 8);
    h->nonce = mwi_get64(p + 16);
    if (h->len == 0 || h->len > MWI_BODY_MAX) {
        return false;
    }
    h->total = mwi_rec_size(align, h->len);
    if (h->total > room) {
        return false;
    }
    switch (h->type) {
    case MWI_REC_MSG:
        return h->prio >= MW_PRIORITY_STATUS && h->prio <= MW_PRIORITY_ALARM && h->seq != 0 &&
               h->len > 8u && h->len <= MWI_MSG_BODY_MAX;
    case MWI_REC_DROP:
    case MWI_REC_GAPS:
        return h->prio == 0 && h->seq == 0;
    default:
        return false;
    }
}

enum mwi_rec_status mwi_rec_unseal(const mwi_rec_keys *k, const uint8_t *p, const mwi_rec_hdr *h,
                                   uint32_t off, uint64_t gen, uint8_t *body)
{
    uint8_t aad[AAD_LEN];
    uint8_t iv[NONCE_LEN];
    uint32_t pad_from = MWI_REC_HDR + h->len + TAG_LEN;

    if (p[h->total - 1u] == MWI_ERASED) {
        return MWI_REC_TORN;
    }
    if (p[h->total - 1u] != MWI_TRAILER) {
        return MWI_REC_CORRUPT;
    }
    /* Padding is outside the tag; checking it keeps every byte of a record verified. */
    for (uint32_t i = pad_from; i + 1u < h->total; i++) {
        if (p[i] != 0) {
            return MWI_REC_CORRUPT;
        }
    }
    make_aad(k, p, gen, off, aad);
    make_nonce(NONCE_RECORD, h->nonce, iv);
    /* On failure the seam wipes what GCM decrypted before it compared the tag. */
    if (mwi_aead_open(k->aead, body, p + MWI_REC_HDR, h->len, iv, aad, AAD_LEN,
                      p + MWI_REC_HDR + h->len) != MW_OK) {
        return MWI_REC_CORRUPT;
    }
    return MWI_REC_OK;
}

/* ---- bodies ------------------------------------------------------------------------------ */

uint32_t mwi_rec_gaps_encode(const mwi_queue_gap *gaps, uint8_t *out)
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
        p += MWI_GAPS_ENTRY;
        n++;
    }
    out[0] = (uint8_t)n;
    return 1u + n * MWI_GAPS_ENTRY;
}

bool mwi_rec_gaps_decode(const uint8_t *b, uint32_t len, mwi_queue_gap *out)
{
    uint32_t n = b[0];
    mwi_queue_gap t[MWI_QUEUE_GAP_SLOTS];

    if (n > MWI_QUEUE_GAP_SLOTS || len != 1u + n * MWI_GAPS_ENTRY) {
        return false;
    }
    memset(t, 0, sizeof t);
    for (uint32_t i = 0; i < n; i++) {
        const uint8_t *p = b + 1 + i * MWI_GAPS_ENTRY;
        unsigned prio = p[0], reason = p[1];
        mwi_queue_gap *g;
        if (!mwi_gap_valid(prio, reason)) {
            return false;
        }
        g = &t[mwi_gap_slot(prio, reason)];
        g->priority = (mw_priority)prio;
        g->reason = (mwi_queue_gap_reason)reason;
        g->count = mwi_get64(p + 2);
        g->first_seq = mwi_get64(p + 10);
        g->last_seq = mwi_get64(p + 18);
    }
    memcpy(out, t, sizeof t);
    return true;
}

void mwi_rec_drop_entry(uint8_t *p, uint64_t first, uint64_t last, unsigned reason, unsigned prio)
{
    mwi_put64(p, first);
    mwi_put64(p + 8, last);
    p[16] = (uint8_t)reason;
    p[17] = (uint8_t)prio;
}

mw_err mwi_rec_encode_message(const mw_message_t *m, uint64_t t_ms, uint8_t *out, uint32_t *out_len)
{
    medwire_v1_Envelope env;
    pb_ostream_t s;
    mw_err e = mwi_envelope_from_message(m, &env);

    if (e != MW_OK) {
        return e;
    }
    mwi_put64(out, t_ms);
    s = pb_ostream_from_buffer(out + 8, MWI_MSG_BODY_MAX - 8u);
    if (!pb_encode(&s, medwire_v1_Envelope_fields, &env)) {
        return MW_EINTERNAL;
    }
    *out_len = 8u + (uint32_t)s.bytes_written;
    return MW_OK;
}

bool mwi_rec_decode_message(const uint8_t *b, uint32_t len, const mwi_rec_hdr *h, mw_message_t *out)
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
