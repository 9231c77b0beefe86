/* SPDX-License-Identifier: Apache-2.0 */
/* queue_internal.h -- the queue object, shared by queue.c (operations), log.c (the log on
 * storage) and recovery.c (open). Private to src/queue: callers use queue.h. */
#ifndef MWI_QUEUE_QUEUE_INTERNAL_H
#define MWI_QUEUE_QUEUE_INTERNAL_H

#include <stdbool.h>
#include <stdint.h>

#include "core/detail.h"
#include "queue/format.h"
#include "queue/index.h"
#include "queue/queue.h"
#include "queue/record.h"

#define MWI_QUEUE_DEFAULT_NONCE_BLOCK 65536u

/** Where things lie in the region (log.c computes it from the size and the medium's units). */
typedef struct mwi_geo {
    uint32_t wu, eu, align, unit;    /* write unit, erase unit, record alignment, half alignment */
    uint32_t store_bytes;            /* nonce store at offset 0 */
    uint32_t hbase, half, hdr_area;  /* half 0 at hbase, half 1 at hbase + half */
    uint32_t label_off, label_bytes; /* the region label, last */
} mwi_geo;

struct mwi_queue {
    mw_storage_t st;
    mwi_geo g;
    mwi_seq nonces;
    mw_storage_slice_t nonce_slice;
    mwi_rec_keys keys; /* AES-GCM context, key length, key check value, salt */

    uint8_t active; /* 0 or 1 */
    uint64_t gen;   /* generation of the active half */
    uint32_t head;  /* where the next record goes (region offset) */

    mwi_idx idx; /* flush order; room for twice the capacity (see recovery.c, overflow()) */
    uint32_t capacity;
    mwi_queue_gap gaps[MWI_QUEUE_GAP_SLOTS];

    uint32_t gc_n, gc_ms, unsynced;
    uint64_t unsynced_since, last_now;

    uint8_t *rbuf, *wbuf, *pt;
    uint32_t io_size;
    uint32_t win_off, win_len; /* rbuf caches [win_off, win_off + win_len) */
    uint32_t stage_off, stage_len;

    mwi_queue_stats st_counters;
    mwi_queue_event_fn *on_event;
    void *event_ctx;
    void *mem;
    bool owns_mem;
    bool broken;
    mw_error_detail_t err;
};

/** A storage failure leaves RAM and medium out of step; the only safe continuation is a
 *  reopen, which rebuilds RAM from the medium. Marks @p q broken, keeps the first reason, and
 *  returns @p e. */
mw_err mwi_q_fail(mwi_queue *q, mw_err e, const char *reason);

/** Counts an event in the statistics and reports it to the caller's callback. */
void mwi_q_emit(mwi_queue *q, mwi_queue_event_kind kind, uint64_t seq, unsigned prio, uint32_t off,
                uint32_t len, const char *reason);

#if !MW_ERROR_REASONS /* core/detail.h: the sentences are left out of this build */
#define mwi_q_fail(q, e, reason) mwi_q_fail(q, e, MWI_REASON(reason))
#define mwi_q_emit(q, kind, seq, prio, off, len, reason)                                           \
    mwi_q_emit(q, kind, seq, prio, off, len, MWI_REASON(reason))
#endif

#endif
