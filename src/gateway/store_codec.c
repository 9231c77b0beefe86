/* SPDX-License-Identifier: Apache-2.0 */
/* store_codec.c -- what the stores keep as bytes (store_codec.h). */
#include <string.h>

#include "gateway/store_codec.h"
#include "session/codec.h"

/* Blob 1 (a version-1 SQLite store): version(1) low(8) done(8) n(1) n * (first(8) last(8)). */
#define REPLAY_BLOB_V1      1
#define REPLAY_BLOB_VERSION 2

static void put64(uint8_t *p, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

static uint64_t get64(const uint8_t *p)
{
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--)
        v = (v << 8) | p[i];
    return v;
}

/* Blob 1: one space, 0, no digests. What it settled stays settled. */
static bool parse_v1(const uint8_t *b, size_t n, mwi_replay *r)
{
    if (n < 18 || b[17] > MWI_REPLAY_MAX_RANGES || n != 18 + 16u * b[17])
        return false;
    mwi_replay_init(r);
    r->fresh = false;
    r->low = get64(b + 1);
    r->done = get64(b + 9);
    r->n = b[17];
    r->top = r->done - 1;
    for (uint32_t i = 0; i < r->n; i++) {
        r->r[i].first = get64(b + 18 + 16 * i);
        r->r[i].last = get64(b + 26 + 16 * i);
        r->top = r->r[i].last;
    }
    return true;
}

static bool parse_v2(const uint8_t *b, size_t n, mwi_replay *r)
{
    if (n < MWI_REPLAY_BLOB_HEAD || (b[1] & ~1u) != 0 || b[34] != 0 || b[35] != 0 || b[36] != 0)
        return false;
    uint32_t nr = b[37], nd = b[38], nt = b[39];
    if (nr > MWI_REPLAY_MAX_RANGES || nd > MWI_REPLAY_DIGESTS || nt > MWI_REPLAY_RETIRED ||
        n != MWI_REPLAY_BLOB_HEAD + 16u * nr + 16u * nd + 8u * nt)
        return false;
    memset(r, 0, sizeof *r);
    r->fresh = (b[1] & 1u) != 0;
    r->space = get64(b + 2);
    r->low = get64(b + 10);
    r->done = get64(b + 18);
    r->top = get64(b + 26);
    const uint8_t *p = b + MWI_REPLAY_BLOB_HEAD;
    r->n = nr;
    for (uint32_t i = 0; i < nr; i++, p += 16) {
        r->r[i].first = get64(p);
        r->r[i].last = get64(p + 8);
    }
    r->nd = nd;
    for (uint32_t i = 0; i < nd; i++, p += 16) {
        r->d[i].seq = get64(p);
        r->d[i].digest = get64(p + 8);
    }
    r->nretired = nt;
    for (uint32_t i = 0; i < nt; i++, p += 8)
        r->retired[i] = get64(p);
    return true;
}

/* The invariants mwi_replay relies on; a state that breaks them is never used: a wrong one
 * loses or repeats messages. */
static bool replay_sound(const mwi_replay *r)
{
    if (r->low == 0 || r->done < r->low)
        return false;
    for (uint32_t i = 0; i < r->n; i++)
        if (r->r[i].first > r->r[i].last || r->r[i].first <= r->done ||
            (i > 0 && r->r[i].first <= r->r[i - 1].last + 1) || r->r[i].last > r->top)
            return false;
    for (uint32_t i = 0; i < r->nd; i++)
        if (r->d[i].seq < r->low || r->d[i].seq > r->top)
            return false;
    return true;
}

bool mwi_replay_blob_decode(const uint8_t *b, size_t n, mwi_replay *out)
{
    /* Length-checked field by field: the database is outside our control. */
    return b != NULL && n >= 1 &&
           ((b[0] == REPLAY_BLOB_V1 && parse_v1(b, n, out)) ||
            (b[0] == REPLAY_BLOB_VERSION && parse_v2(b, n, out))) &&
           replay_sound(out);
}

size_t mwi_replay_blob_encode(const mwi_replay *r, uint8_t out[MWI_REPLAY_BLOB_MAX])
{
    uint8_t *b = out;
    b[0] = REPLAY_BLOB_VERSION;
    b[1] = r->fresh ? 1u : 0u;
    put64(b + 2, r->space);
    put64(b + 10, r->low);
    put64(b + 18, r->done);
    put64(b + 26, r->top);
    b[34] = b[35] = b[36] = 0;
    b[37] = (uint8_t)r->n;
    b[38] = (uint8_t)r->nd;
    b[39] = (uint8_t)r->nretired;
    uint8_t *p = b + MWI_REPLAY_BLOB_HEAD;
    for (uint32_t i = 0; i < r->n; i++, p += 16) {
        put64(p, r->r[i].first);
        put64(p + 8, r->r[i].last);
    }
    for (uint32_t i = 0; i < r->nd; i++, p += 16) {
        put64(p, r->d[i].seq);
        put64(p + 8, r->d[i].digest);
    }
    for (uint32_t i = 0; i < r->nretired; i++, p += 8)
        put64(p, r->retired[i]);
    return (size_t)(p - b);
}

mw_err mwi_journal_encode(const mw_message_t *m, uint8_t out[MWI_JOURNAL_MAX], size_t *out_len)
{
    size_t count = 0;
    const mw_message_t *one = m;
    mwi_batch_head h = {.low_water = m->seq, .space = m->space};
    return mwi_batch_encode_in(&one, 1, &h, out, MWI_JOURNAL_MAX, out_len, &count) == MW_OK
               ? MW_OK
               : MW_EINVAL;
}

#define COMMANDS_BLOB_VERSION 1

size_t mwi_commands_blob_encode(const mw_command_t *c, size_t n, uint8_t out[MWI_COMMANDS_BLOB_MAX])
{
    if (n > MWI_MAX_COMMANDS)
        return 0;
    out[0] = COMMANDS_BLOB_VERSION;
    out[1] = (uint8_t)n;
    size_t at = 2;
    for (size_t i = 0; i < n; i++) {
        size_t len = 0;
        if (mwi_command_encode(&c[i], out + at + 1, 64, &len) != MW_OK)
            return 0;
        out[at] = (uint8_t)len;
        at += 1 + len;
    }
    return at;
}

bool mwi_commands_blob_decode(const uint8_t *b, size_t len, mw_command_t out[MWI_MAX_COMMANDS],
                              uint8_t *n)
{
    if (len < 2 || b[0] != COMMANDS_BLOB_VERSION || b[1] > MWI_MAX_COMMANDS)
        return false;
    size_t at = 2;
    for (uint8_t i = 0; i < b[1]; i++) {
        if (at >= len || b[at] == 0 || b[at] > 64 || len - at - 1 < b[at])
            return false;
        mw_command_t *c = &out[i];
        if (mwi_command_decode(b + at + 1, b[at], c) != MW_OK ||
            (c->kind != MW_CMD_SET_INTERVAL && c->kind != MW_CMD_ACK_ALARM &&
             c->kind != MW_CMD_ROTATE_KEYS))
            return false;
        at += 1 + b[at];
    }
    if (at != len)
        return false;
    *n = b[1];
    return true;
}
