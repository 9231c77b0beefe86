/* SPDX-License-Identifier: Apache-2.0 */
/* slice.c -- a sub-region of a storage region, so one partition or file can hold several stores. */
#include <stdbool.h>

#include "medwire/storage.h"

#include "core/storage.h"

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

static const mwi_storage_ops SLICE_OPS = {slice_read, slice_write, slice_erase, slice_sync};

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
    /* The units first: @p parent may be the slice's own copy of its parent. */
    uint32_t eu_parent = parent->erase_unit, wu_parent = parent->write_unit;
    *out_slice = (mw_storage_slice_t){.parent = *parent, .base = off, .size = size};
    *out_storage = mwi_storage_table(out_slice, &SLICE_OPS, size, eu_parent, wu_parent);
    return MW_OK;
}
