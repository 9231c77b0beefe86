/* SPDX-License-Identifier: Apache-2.0 */
/* mem_region.c -- a storage region in RAM: what the client uses when the vendor gives none. */
#include <stdlib.h>
#include <string.h>

#include "queue/queue.h"
#include "core/storage.h"

typedef struct mem_region {
    uint32_t size;
    uint8_t bytes[];
} mem_region;

static mw_err mem_check(const mem_region *r, uint32_t off, size_t len)
{
    return off <= r->size && len <= (size_t)(r->size - off) ? MW_OK : MW_EINVAL;
}

static mw_err mem_read(void *ctx, uint32_t off, uint8_t *buf, size_t len)
{
    mem_region *r = ctx;
    if (mem_check(r, off, len) != MW_OK) {
        return MW_EINVAL;
    }
    memcpy(buf, r->bytes + off, len);
    return MW_OK;
}

static mw_err mem_write(void *ctx, uint32_t off, const uint8_t *buf, size_t len)
{
    mem_region *r = ctx;
    if (mem_check(r, off, len) != MW_OK) {
        return MW_EINVAL;
    }
    memcpy(r->bytes + off, buf, len);
    return MW_OK;
}

static mw_err mem_erase(void *ctx, uint32_t off, uint32_t len)
{
    mem_region *r = ctx;
    if (mem_check(r, off, len) != MW_OK) {
        return MW_EINVAL;
    }
    memset(r->bytes + off, 0xff, len);
    return MW_OK;
}

static mw_err mem_sync(void *ctx)
{
    (void)ctx;
    return MW_OK;
}

mw_err mwi_mem_region_open(uint32_t size, mw_storage_t *out)
{
    if (out == NULL || size == 0) {
        return MW_EINVAL;
    }
    memset(out, 0, sizeof *out);
    mem_region *r = malloc(sizeof *r + size);
    if (r == NULL) {
        return MW_ENOMEM;
    }
    r->size = size;
    memset(r->bytes, 0xff, size);
    static const mwi_storage_ops mem_ops = {mem_read, mem_write, mem_erase, mem_sync};
    *out = mwi_storage_table(r, &mem_ops, size, 1, 1);
    return MW_OK;
}

void mwi_mem_region_close(mw_storage_t *st)
{
    if (st == NULL) {
        return;
    }
    free(st->ctx);
    memset(st, 0, sizeof *st);
}
