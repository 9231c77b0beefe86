/* SPDX-License-Identifier: Apache-2.0 */
/* ram_storage.h -- a storage region in RAM that can lose power at any write, tear writes, flip
 * bits. */
#ifndef MWT_RAM_STORAGE_H
#define MWT_RAM_STORAGE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "medwire/storage.h"

/*
 * The model: a durable image (what survived the last sync) and the writes and erases issued
 * since, in order. Reads see the durable image with every pending operation applied, as a
 * page cache would show them. A power cut keeps the durable image and then, for each pending
 * operation in issue order, whatever the test chooses: applied, dropped, or torn after k
 * bytes (the rest of its range keeps the bytes it had before). That covers lost, reordered
 * and torn writes. Nothing allocates after mwt_ram_create (the pending log is preallocated),
 * so a test can count the allocations of the code above it.
 */

typedef struct mwt_ram mwt_ram;

typedef enum mwt_fate_kind {
    MWT_FATE_APPLY = 0,
    MWT_FATE_DROP = 1,
    MWT_FATE_TEAR = 2,
} mwt_fate_kind;

/** What a power cut does to one pending operation. */
typedef struct mwt_fate {
    mwt_fate_kind kind;
    uint32_t tear_at; /**< MWT_FATE_TEAR: bytes [0, tear_at) of the operation are applied */
} mwt_fate;

/** A region of @p size bytes, all erased (0xFF). NULL on bad geometry. */
mwt_ram *mwt_ram_create(uint32_t size, uint32_t erase_unit, uint32_t write_unit);
void mwt_ram_destroy(mwt_ram *r);
/** The storage table of @p r. */
mw_storage_t mwt_ram_storage(mwt_ram *r);

/** Power fails just after operation number @p index (writes and erases, from 0) is issued:
 *  that one is accepted as pending, every later call fails with MW_EIO until
 *  mwt_ram_power_cut(). UINT64_MAX (the default) never cuts. */
void mwt_ram_cut_after(mwt_ram *r, uint64_t index);
bool mwt_ram_is_dead(const mwt_ram *r);
/** Writes and erases issued so far, and syncs completed. */
uint64_t mwt_ram_ops(const mwt_ram *r);
uint64_t mwt_ram_syncs(const mwt_ram *r);

/** Pending (unsynced) operations, in issue order. */
size_t mwt_ram_pending(const mwt_ram *r);
uint32_t mwt_ram_pending_len(const mwt_ram *r, size_t i);
bool mwt_ram_pending_is_erase(const mwt_ram *r, size_t i);

/** The power cut: durable image plus fates[i] for pending operation i (NULL: all dropped).
 *  Afterwards the region is alive, nothing is pending, and the cut point is cleared. */
void mwt_ram_power_cut(mwt_ram *r, const mwt_fate *fates);

/** The image mwt_ram_power_cut(@p fates) would leave, written to @p out (size bytes), without
 *  changing @p r: lets a test try many fates for one cut. */
void mwt_ram_cut_image(const mwt_ram *r, const mwt_fate *fates, uint8_t *out);

/** The current image (durable when nothing is pending). Bytes a test changes here are lost
 *  by the next power cut unless it uses mwt_ram_poke. */
const uint8_t *mwt_ram_image(const mwt_ram *r);
/** Changes bytes in the durable and the current image alike (damage at rest). */
void mwt_ram_poke(mwt_ram *r, uint32_t off, const uint8_t *data, size_t len);
void mwt_ram_flip_bit(mwt_ram *r, uint32_t off, unsigned bit);
/** Copies the durable image out / replaces both images and clears pending. */
void mwt_ram_save(const mwt_ram *r, uint8_t *out);
void mwt_ram_load(mwt_ram *r, const uint8_t *img);

/** Flash rules: count writes to bytes that are not erased, and writes or erases not aligned
 *  to their unit (off by default). */
void mwt_ram_strict(mwt_ram *r, bool on);
uint64_t mwt_ram_violations(const mwt_ram *r);

/** Called for every accepted write, with its bytes (to collect nonces, for instance). */
typedef void mwt_ram_write_hook(void *ctx, uint32_t off, const uint8_t *data, size_t len);
void mwt_ram_on_write(mwt_ram *r, mwt_ram_write_hook *fn, void *ctx);

#endif
