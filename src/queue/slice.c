/* SPDX-License-Identifier: Apache-2.0 */
/* slice.c -- a sub-region of a storage region, so one partition or file can hold several stores. */
#include <stdbool.h>
#include <string.h>

#include "medwire/storage.h"

static mw_storage_read_fn slice_read;
static mw_storage_write_fn slice_write;
static mw_storage_erase_fn slice_erase;
static mw_storage_sync_fn slice_sync;

/* Checked here as well as by the parent: a store that strays out of its slice would corrupt
 * its neighbour, which the parent cannot know is a different store. */
static bool in_slice(const mw_storage_slice_t *s, uint32_t off, size_t len)
{
    return s != NULL && off <= s->size && len <= (size_t)(s->size - off);
}

static mw_err slice_read(void *ctx, uint32_t off, uint8_t *buf, size_t len)
{
    mw_storage_slice_t *s = ctx;
    if (!in_slice(s, off, len)) {
        return MW_EINVAL;
    }
    return s->parent.read(s->parent.ctx, s->base + off, buf, len);
}

static mw_err slice_write(void *ctx, uint32_t off, const uint8_t *buf, size_t len)
{
    mw_storage_slice_t *s = ctx;
    if (!in_slice(s, off, len)) {
        return MW_EINVAL;
    }
    return s->parent.write(s->parent.ctx, s->base + off, buf, len);
}

static mw_err slice_erase(void *ctx, uint32_t off, uint32_t len)
{
    mw_storage_slice_t *s = ctx;
    if (!in_slice(s, off, len)) {
        return MW_EINVAL;
    }
    return s->parent.erase(s->parent.ctx, s->base + off, len);
}

static mw_err slice_sync(void *ctx)
{
    mw_storage_slice_t *s = ctx;
    return s->parent.sync(s->parent.ctx);
}

MW_API mw_err mw_storage_slice(const mw_storage_t *parent, uint32_t off, uint32_t size,
                               mw_storage_slice_t *out_slice, mw_storage_t *out_storage)
{
    uint32_t eu;

    if (parent == NULL || out_slice == NULL || out_storage == NULL || size == 0 ||
        off > parent->size || size > parent->size - off) {
        return MW_EINVAL;
    }
    eu = parent->erase_unit == 0 ? 1u : parent->erase_unit;
    if (off % eu != 0 || size % eu != 0) {
        return MW_EINVAL;
    }
    out_slice->parent = *parent;
    out_slice->base = off;
    out_slice->size = size;
    memset(out_storage, 0, sizeof *out_storage);
    out_storage->ctx = out_slice;
    out_storage->read = slice_read;
    out_storage->write = slice_write;
    out_storage->erase = slice_erase;
    out_storage->sync = slice_sync;
    out_storage->size = size;
    out_storage->erase_unit = parent->erase_unit;
    out_storage->write_unit = parent->write_unit;
    return MW_OK;
}
