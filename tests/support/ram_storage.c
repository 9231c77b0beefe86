/* SPDX-License-Identifier: Apache-2.0 */
/* ram_storage.c -- a storage region in RAM with power cuts, torn writes and bit flips, for tests.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "support/ram_storage.h"

/* The pending log is sized once: a compaction erases and rewrites at most the region, group
 * commit adds a few records; four regions of bytes and 64 Ki operations cover every test. */
#define OPS_MAX 65536u

typedef struct op {
    bool erase;
    uint32_t off, len;
    size_t data; /* offset in the arena (writes) */
} op;

struct mwt_ram {
    uint32_t size, eu, wu;
    uint8_t *durable, *current;
    op *ops;
    size_t nops;
    uint8_t *arena;
    size_t arena_cap, arena_len;
    uint64_t issued, syncs, cut_after, violations;
    bool dead, strict;
    mwt_ram_write_hook *hook;
    void *hook_ctx;
};

static void die(const char *what)
{
    fprintf(stderr, "ram_storage: %s\n", what);
    abort();
}

mwt_ram *mwt_ram_create(uint32_t size, uint32_t erase_unit, uint32_t write_unit)
{
    mwt_ram *r;

    if (size == 0) {
        return NULL;
    }
    r = calloc(1, sizeof *r);
    if (r == NULL) {
        return NULL;
    }
    r->size = size;
    r->eu = erase_unit == 0 ? 1 : erase_unit;
    r->wu = write_unit == 0 ? 1 : write_unit;
    r->durable = malloc(size);
    r->current = malloc(size);
    r->ops = calloc(OPS_MAX, sizeof(op));
    r->arena_cap = (size_t)size * 4u + 65536u;
    r->arena = malloc(r->arena_cap);
    if (r->durable == NULL || r->current == NULL || r->ops == NULL || r->arena == NULL) {
        mwt_ram_destroy(r);
        return NULL;
    }
    memset(r->durable, 0xFF, size);
    memset(r->current, 0xFF, size);
    r->cut_after = UINT64_MAX;
    return r;
}

void mwt_ram_destroy(mwt_ram *r)
{
    if (r == NULL) {
        return;
    }
    free(r->durable);
    free(r->current);
    free(r->ops);
    free(r->arena);
    free(r);
}

static bool in_range(const mwt_ram *r, uint32_t off, size_t len)
{
    return off <= r->size && len <= (size_t)(r->size - off);
}

static mw_err ram_read(void *ctx, uint32_t off, uint8_t *buf, size_t len)
{
    mwt_ram *r = ctx;
    if (r->dead) {
        return MW_EIO;
    }
    if (!in_range(r, off, len)) {
        return MW_EINVAL;
    }
    memcpy(buf, r->current + off, len);
    return MW_OK;
}

/* Logs an accepted operation; power fails after the chosen one. */
static void log_op(mwt_ram *r, bool erase, uint32_t off, uint32_t len, const uint8_t *data)
{
    op *o;
    if (r->nops >= OPS_MAX) {
        die("pending log full: sync more often or raise OPS_MAX");
    }
    o = &r->ops[r->nops++];
    o->erase = erase;
    o->off = off;
    o->len = len;
    o->data = r->arena_len;
    if (!erase) {
        if (r->arena_len + len > r->arena_cap) {
            die("pending arena full");
        }
        memcpy(r->arena + r->arena_len, data, len);
        r->arena_len += len;
    }
    if (r->issued++ == r->cut_after) {
        r->dead = true;
    }
}

static mw_err ram_write(void *ctx, uint32_t off, const uint8_t *buf, size_t len)
{
    mwt_ram *r = ctx;
    if (r->dead) {
        return MW_EIO;
    }
    if (!in_range(r, off, len)) {
        return MW_EINVAL;
    }
    if (r->strict) {
        if (off % r->wu != 0 || len % r->wu != 0) {
            r->violations++;
        }
        for (size_t i = 0; i < len; i++) {
            if (r->current[off + i] != 0xFF) {
                r->violations++;
                break;
            }
        }
    }
    memcpy(r->current + off, buf, len);
    if (r->hook != NULL) {
        r->hook(r->hook_ctx, off, buf, len);
    }
    log_op(r, false, off, (uint32_t)len, buf);
    return MW_OK;
}

static mw_err ram_erase(void *ctx, uint32_t off, uint32_t len)
{
    mwt_ram *r = ctx;
    if (r->dead) {
        return MW_EIO;
    }
    if (!in_range(r, off, len)) {
        return MW_EINVAL;
    }
    if (r->strict && (off % r->eu != 0 || len % r->eu != 0)) {
        r->violations++;
    }
    memset(r->current + off, 0xFF, len);
    log_op(r, true, off, len, NULL);
    return MW_OK;
}

static mw_err ram_sync(void *ctx)
{
    mwt_ram *r = ctx;
    if (r->dead) {
        return MW_EIO;
    }
    for (size_t i = 0; i < r->nops; i++) {
        memcpy(r->durable + r->ops[i].off, r->current + r->ops[i].off, r->ops[i].len);
    }
    r->nops = 0;
    r->arena_len = 0;
    r->syncs++;
    return MW_OK;
}

mw_storage_t mwt_ram_storage(mwt_ram *r)
{
    mw_storage_t s;
    memset(&s, 0, sizeof s);
    s.ctx = r;
    s.read = ram_read;
    s.write = ram_write;
    s.erase = ram_erase;
    s.sync = ram_sync;
    s.size = r->size;
    s.erase_unit = r->eu;
    s.write_unit = r->wu;
    return s;
}

void mwt_ram_cut_after(mwt_ram *r, uint64_t index)
{
    r->cut_after = index;
}

bool mwt_ram_is_dead(const mwt_ram *r)
{
    return r->dead;
}

uint64_t mwt_ram_ops(const mwt_ram *r)
{
    return r->issued;
}

uint64_t mwt_ram_syncs(const mwt_ram *r)
{
    return r->syncs;
}

size_t mwt_ram_pending(const mwt_ram *r)
{
    return r->nops;
}

uint32_t mwt_ram_pending_len(const mwt_ram *r, size_t i)
{
    return i < r->nops ? r->ops[i].len : 0;
}

bool mwt_ram_pending_is_erase(const mwt_ram *r, size_t i)
{
    return i < r->nops && r->ops[i].erase;
}

void mwt_ram_cut_image(const mwt_ram *r, const mwt_fate *fates, uint8_t *out)
{
    memcpy(out, r->durable, r->size);
    for (size_t i = 0; fates != NULL && i < r->nops; i++) {
        const op *o = &r->ops[i];
        uint32_t n = 0;
        if (fates[i].kind == MWT_FATE_APPLY) {
            n = o->len;
        } else if (fates[i].kind == MWT_FATE_TEAR) {
            n = fates[i].tear_at < o->len ? fates[i].tear_at : o->len;
        }
        if (o->erase) {
            memset(out + o->off, 0xFF, n);
        } else {
            memcpy(out + o->off, r->arena + o->data, n);
        }
    }
}

void mwt_ram_power_cut(mwt_ram *r, const mwt_fate *fates)
{
    mwt_ram_cut_image(r, fates, r->current);
    memcpy(r->durable, r->current, r->size);
    r->nops = 0;
    r->arena_len = 0;
    r->dead = false;
    r->cut_after = UINT64_MAX;
}

const uint8_t *mwt_ram_image(const mwt_ram *r)
{
    return r->current;
}

void mwt_ram_poke(mwt_ram *r, uint32_t off, const uint8_t *data, size_t len)
{
    if (!in_range(r, off, len)) {
        die("poke outside the region");
    }
    memcpy(r->current + off, data, len);
    memcpy(r->durable + off, data, len);
}

void mwt_ram_flip_bit(mwt_ram *r, uint32_t off, unsigned bit)
{
    if (off >= r->size) {
        die("flip outside the region");
    }
    r->current[off] ^= (uint8_t)(1u << (bit & 7u));
    r->durable[off] ^= (uint8_t)(1u << (bit & 7u));
}

void mwt_ram_save(const mwt_ram *r, uint8_t *out)
{
    memcpy(out, r->durable, r->size);
}

void mwt_ram_load(mwt_ram *r, const uint8_t *img)
{
    memcpy(r->durable, img, r->size);
    memcpy(r->current, img, r->size);
    r->nops = 0;
    r->arena_len = 0;
    r->dead = false;
    r->cut_after = UINT64_MAX;
}

void mwt_ram_strict(mwt_ram *r, bool on)
{
    r->strict = on;
}

uint64_t mwt_ram_violations(const mwt_ram *r)
{
    return r->violations;
}

void mwt_ram_on_write(mwt_ram *r, mwt_ram_write_hook *fn, void *ctx)
{
    r->hook = fn;
    r->hook_ctx = ctx;
}
