/* SPDX-License-Identifier: Apache-2.0 */
/* storage.h -- the one way a region (a file, a slice of another region) fills its mw_storage_t:
 * its kind's functions, its context and its geometry, every other field zero. */
#ifndef MWI_CORE_STORAGE_H
#define MWI_CORE_STORAGE_H

#include <stdint.h>

#include "medwire/storage.h"

/* The functions of one kind of region. */
typedef struct mwi_storage_ops {
    mw_storage_read_fn *read;
    mw_storage_write_fn *write;
    mw_storage_erase_fn *erase;
    mw_storage_sync_fn *sync;
} mwi_storage_ops;

/* The table of region @p ctx, of @p size bytes, erased and written in the given units. */
static inline mw_storage_t mwi_storage_table(void *ctx, const mwi_storage_ops *ops, uint32_t size,
                                             uint32_t erase_unit, uint32_t write_unit)
{
    mw_storage_t st = {.ctx = ctx,
                       .read = ops->read,
                       .write = ops->write,
                       .erase = ops->erase,
                       .sync = ops->sync,
                       .size = size,
                       .erase_unit = erase_unit,
                       .write_unit = write_unit};
    return st;
}

#endif
