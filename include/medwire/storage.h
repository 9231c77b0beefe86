/* SPDX-License-Identifier: Apache-2.0 */
/**
 * @file storage.h
 * @brief The seam below the offline queue and the sequence store: a region of persistent bytes.
 *
 * medwire keeps its durable state (the offline queue, the sequence-number reservation) in a
 * region described by an ::mw_storage_t: a table of four functions and the geometry of the
 * medium. A vendor puts the region on raw NOR flash, an eMMC partition or a file by supplying
 * that table; medwire ships the POSIX file backend (::mw_storage_file_open).
 *
 * @par Contract of an implementation
 * - The region is the bytes [0, size). medwire never asks for anything outside it.
 * - @c read returns the bytes as last written or erased, including writes not yet synced
 *   (as a page cache does). Bytes never written read as the erased value 0xFF.
 * - @c write programs bytes. medwire only writes to bytes that are erased (0xFF) since the
 *   last erase of their erase unit, and every write starts and ends on a multiple of
 *   @c write_unit, so a flash driver may program without read-modify-write.
 * - @c erase sets [off, off+len) to 0xFF. @c off and @c len are multiples of @c erase_unit.
 * - Until @c sync returns ::MW_OK, any write or erase issued since the previous sync may be
 *   lost whole, applied whole, or torn (a prefix applied, the rest left as it was), each
 *   independently of the others and in any order. After @c sync returns ::MW_OK every write
 *   and erase issued before it survives a power cut. A backend must not report ::MW_OK from
 *   @c sync for data that is not on the medium (medwire's durability rests on it).
 * - Errors: ::MW_EIO for a failed medium operation, ::MW_EINVAL for a range outside the region.
 *   medwire treats any error as fatal for the object using the storage (it must be reopened).
 * - The functions may block for the medium; they are called from the thread that uses the
 *   queue or sequence store. A backend need not be thread-safe.
 *
 * @code
 * mw_storage_t st;
 * mw_error_detail_t why = {0};
 * if (mw_storage_file_open("/var/lib/medwire/queue.bin", 1u << 20, &st, &why) != MW_OK)
 *     fprintf(stderr, "queue file: %s\n", why.reason);
 * // ... give &st to the client configuration; after closing the client:
 * mw_storage_file_close(&st);
 * @endcode
 */
#ifndef MEDWIRE_STORAGE_H
#define MEDWIRE_STORAGE_H

#include <stddef.h>
#include <stdint.h>

#include "medwire/err.h"

#ifdef __cplusplus
extern "C" {
#endif

/** Copies @p len bytes at @p off into @p buf. */
typedef mw_err mw_storage_read_fn(void *ctx, uint32_t off, uint8_t *buf, size_t len);
/** Programs @p len bytes at @p off (erased bytes only; aligned to write_unit). */
typedef mw_err mw_storage_write_fn(void *ctx, uint32_t off, const uint8_t *buf, size_t len);
/** Sets [off, off+len) to 0xFF (aligned to erase_unit). */
typedef mw_err mw_storage_erase_fn(void *ctx, uint32_t off, uint32_t len);
/** Makes every write and erase issued so far durable before returning ::MW_OK. */
typedef mw_err mw_storage_sync_fn(void *ctx);

/** A region of persistent storage: functions, their context and the medium's geometry. */
typedef struct mw_storage {
    void *ctx;
    mw_storage_read_fn *read;
    mw_storage_write_fn *write;
    mw_storage_erase_fn *erase;
    mw_storage_sync_fn *sync;
    uint32_t size;       /**< bytes in the region */
    uint32_t erase_unit; /**< bytes erased at once (1 for files, e.g. 4096 for NOR flash) */
    uint32_t write_unit; /**< program granularity (0 or 1: any; e.g. 8 or 32 for ECC flash) */
} mw_storage_t;

/**
 * Opens (creating it if needed, mode 0600) the file @p path as a region of @p size bytes with
 * erase_unit 1 and write_unit 1. A new or shorter file is extended with 0xFF (the erased value)
 * and made durable, directory entry included; a longer file keeps its extra bytes, unused.
 * The file is locked (fcntl) so that a second process cannot open the same region.
 * Writes are pwrite, sync is fdatasync. Blocks on the file system. Allocates a small context.
 * @return ::MW_OK; ::MW_EINVAL (NULL argument or @p size 0); ::MW_EIO (cannot open, lock,
 *         extend or sync the file; @p out_detail says which, with errno as foreign code:
 *         EAGAIN when another process holds the lock); ::MW_ENOMEM.
 */
MW_API MW_NODISCARD mw_err mw_storage_file_open(const char *path, uint32_t size,
                                                mw_storage_t *out_storage,
                                                mw_error_detail_t *out_detail);
/** Closes a region opened by ::mw_storage_file_open and zeroes @p storage. NULL is ignored. */
MW_API void mw_storage_file_close(mw_storage_t *storage);

/** Context of a slice; owned by the caller, must outlive the storage table made from it. */
typedef struct mw_storage_slice {
    mw_storage_t parent;
    uint32_t base;
    uint32_t size;
} mw_storage_slice_t;

/**
 * Makes @p out_storage the sub-region [off, off+size) of @p parent (for example the sequence
 * store and the queue in one flash partition or file). @p off and @p size must be multiples
 * of the parent's erase unit. Sync syncs the whole parent. No allocation.
 * @return ::MW_OK; ::MW_EINVAL for a NULL argument, an empty or out-of-range slice, or a slice
 *         not aligned to the erase unit.
 */
MW_API MW_NODISCARD mw_err mw_storage_slice(const mw_storage_t *parent, uint32_t off, uint32_t size,
                                            mw_storage_slice_t *out_slice,
                                            mw_storage_t *out_storage);

#ifdef __cplusplus
}
#endif
#endif
