/* SPDX-License-Identifier: Apache-2.0 */
/* log.h -- the queue's log on storage: the region's geometry, reads through a window, staged
 * writes and their durability, the two halves and their headers, the region label, and
 * compaction (docs/queue.md, 2, 4, 5 and 8). The byte layout of half headers and the label is
 * known only to log.c. */
#ifndef MWI_QUEUE_LOG_H
#define MWI_QUEUE_LOG_H

#include <stdbool.h>
#include <stdint.h>

#include "queue/queue_internal.h"

/* ---- geometry and sizes ---- */

/** The layout's parts that depend only on the medium's units. False if they are not powers of
 *  two, or the write unit exceeds ::MWI_WRITE_UNIT_MAX. */
bool mwi_log_units(uint32_t erase_unit, uint32_t write_unit, mwi_geo *g);
/** Bytes one half needs for @p capacity messages: header area, the largest live set, and the
 *  largest single operation after a compaction. */
uint64_t mwi_log_half_need(const mwi_geo *g, uint32_t capacity);
/** The whole layout of region @p st; NULL, or why it does not fit @p capacity. */
const char *mwi_log_geometry(const mw_storage_t *st, uint32_t capacity, mwi_geo *g);
/** Bytes of each I/O buffer (read window, staging). */
uint32_t mwi_log_io_size(const mwi_geo *g);
/** Region offset of half @p h. */
uint32_t mwi_log_half_base(const mwi_queue *q, unsigned h);

/* ---- storage access (a failed write, erase or sync breaks the queue) ---- */

/** Bytes [off, off + len) through the read window, which never reads past @p limit.
 *  @return ::MW_OK; ::MW_EINVAL (len larger than the window, or past @p limit); ::MW_EIO. */
MW_NODISCARD mw_err mwi_log_read(mwi_queue *q, uint32_t off, uint32_t len, uint32_t limit,
                                 const uint8_t **out);
MW_NODISCARD mw_err mwi_log_write(mwi_queue *q, uint32_t off, const uint8_t *p, uint32_t len);
MW_NODISCARD mw_err mwi_log_erase(mwi_queue *q, uint32_t off, uint32_t len);
/** Syncs, and counts it. Not MW_NODISCARD: mwi_queue_close() syncs best effort. */
mw_err mwi_log_sync(mwi_queue *q);

/* ---- staged writes: records sealed into the write buffer, written in as few writes as fit ---- */

void mwi_log_stage_begin(mwi_queue *q, uint32_t off);
/** Seals a record under a fresh nonce into the staging buffer (writing out what is staged
 *  first if it would not fit); *out_off is its region offset, *out_total its size. */
MW_NODISCARD mw_err mwi_log_stage_record(mwi_queue *q, uint64_t gen, unsigned type, unsigned prio,
                                         uint64_t seq, const uint8_t *body, uint32_t len,
                                         uint32_t *out_off, uint32_t *out_total);
/** Writes what is staged at the head, makes it durable as one operation (synced now, or
 *  counted for group commit) and moves the head past it. */
MW_NODISCARD mw_err mwi_log_commit(mwi_queue *q, uint64_t now_ms);
/** One operation of one record (a DROP or a GAPS record) at the head: room, seal, commit. */
MW_NODISCARD mw_err mwi_log_append(mwi_queue *q, unsigned type, const uint8_t *body, uint32_t len,
                                   uint64_t now_ms);
/** Makes room for @p need bytes at the head, compacting (and, over capacity, evicting) if the
 *  active half is full. */
MW_NODISCARD mw_err mwi_log_ensure_room(mwi_queue *q, uint32_t need);
/** Rewrites the live records into the other half and commits it with one header write. The
 *  old header's retirement is left unsynced. */
MW_NODISCARD mw_err mwi_log_compact(mwi_queue *q);
/**
 * Reads back the record of @p en from the active half, checks it against the entry, and
 * authenticates and decodes it into @p out_msg (plaintext left in q->pt).
 * @return ::MW_OK; ::MW_EDECODE (it no longer reads back intact); ::MW_EIO (the read failed:
 *         the queue is broken).
 */
MW_NODISCARD mw_err mwi_log_load(mwi_queue *q, const mwi_idx_entry *en, mwi_rec_hdr *out_h,
                                 mw_message_t *out_msg);

/* ---- half headers and the region label ---- */

/** A half header as parsed from either of its two copies. */
typedef struct mwi_half_hdr {
    bool valid;
    uint8_t key_len, index;
    uint64_t gen, floor;
    uint32_t size, half, align, eu;
    uint8_t kcv[MWI_KCV_LEN];
    uint8_t salt[MWI_SALT_LEN];
} mwi_half_hdr;

/** Reads the header of half @p h (invalid if neither copy is intact and for half @p h).
 *  @return ::MW_OK; ::MW_EIO. */
MW_NODISCARD mw_err mwi_log_read_half(mwi_queue *q, unsigned h, mwi_half_hdr *out);
/** Writes the header area of half @p h: generation @p gen, the keys' check value and salt,
 *  the region's geometry and the nonce floor. Not synced. */
MW_NODISCARD mw_err mwi_log_write_half_header(mwi_queue *q, unsigned h, uint64_t gen);

enum mwi_label_state { MWI_LABEL_ERASED, MWI_LABEL_VALID, MWI_LABEL_DAMAGED };

/** Reads the region label: its state, and for a valid one whether it describes this region's
 *  geometry (@p out_match) and its salt. @return ::MW_OK; ::MW_EIO. */
MW_NODISCARD mw_err mwi_log_read_label(mwi_queue *q, enum mwi_label_state *out_state,
                                       bool *out_match, uint8_t out_salt[MWI_SALT_LEN]);
/** The label's bytes, padded with erased bytes to a whole write unit (at most
 *  ::MWI_WRITE_UNIT_MAX); returns that length. */
uint32_t mwi_log_label_encode(const mwi_geo *g, uint32_t size, const uint8_t salt[MWI_SALT_LEN],
                              uint8_t *b);
/** Erases and writes the label with the keys' salt, and syncs. */
MW_NODISCARD mw_err mwi_log_write_label(mwi_queue *q);
/** True in @p out if the region holds a valid label or half header of format 1 (before
 *  salts). @return ::MW_OK; ::MW_EIO. */
MW_NODISCARD mw_err mwi_log_written_by_format1(mwi_queue *q, bool *out);

#endif
