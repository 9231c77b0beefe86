/* SPDX-License-Identifier: Apache-2.0 */
/* flash_storage.c -- medwire's storage on a NOR flash region (storage.h's contract): erased bytes
 * read 0xFF, erase is per sector, a program only clears bits. RAM stands in for the flash here;
 * a driver replaces the memory accesses with the vendor's flash calls. */
#include <string.h>

#include "port.h"

static int in_region(const mw_bm_flash *f, uint32_t off, size_t len)
{
    return off <= f->size && len <= f->size - off;
}

static mw_err flash_read(void *ctx, uint32_t off, uint8_t *buf, size_t len)
{
    const mw_bm_flash *f = ctx;
    if (!in_region(f, off, len))
        return MW_EINVAL;
    memcpy(buf, f->mem + off, len);
    return MW_OK;
}

static mw_err flash_write(void *ctx, uint32_t off, const uint8_t *buf, size_t len)
{
    mw_bm_flash *f = ctx;
    if (!in_region(f, off, len) || off % f->write_unit != 0 || len % f->write_unit != 0)
        return MW_EINVAL;
    /* NOR programming clears bits only: what a real part does to a byte not erased first. */
    for (size_t i = 0; i < len; i++)
        f->mem[off + i] &= buf[i];
    return MW_OK;
}

static mw_err flash_erase(void *ctx, uint32_t off, uint32_t len)
{
    mw_bm_flash *f = ctx;
    if (!in_region(f, off, len) || off % f->sector_size != 0 || len % f->sector_size != 0)
        return MW_EINVAL;
    memset(f->mem + off, 0xFF, len);
    return MW_OK;
}

static mw_err flash_sync(void *ctx)
{
    (void)ctx; /* programming and erasing complete before the calls return on this part */
    return MW_OK;
}

mw_storage_t mw_bm_flash_storage(mw_bm_flash *flash)
{
    mw_storage_t s = {.ctx = flash,
                      .read = flash_read,
                      .write = flash_write,
                      .erase = flash_erase,
                      .sync = flash_sync,
                      .size = flash->size,
                      .erase_unit = flash->sector_size,
                      .write_unit = flash->write_unit};
    return s;
}
