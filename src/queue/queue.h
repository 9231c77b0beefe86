/* SPDX-License-Identifier: Apache-2.0 */
/* queue.h -- the device's persistent, encrypted, prioritised offline queue and the sequence store.
 */
#ifndef MWI_QUEUE_QUEUE_H
#define MWI_QUEUE_QUEUE_H

/*
 * Both objects are sans-I/O: they reach the medium only through an mw_storage_t, never read a
 * clock (the caller passes now_ms) and take randomness only from the caller's mw_random_t.
 * Neither is thread-safe.
 * docs/queue.md describes the on-storage format, the crypto and the recovery algorithm.
 *
 * Typical use by the client (error handling elided):
 *
 *     mwi_seq seqs;                          // message sequence numbers, own region
 *     mwi_seq_open(&seq_region, 1024, 1, &seqs, &why);
 *     mwi_queue_config qc;
 *     mwi_queue_config_init(&qc);
 *     qc.storage = &queue_region; qc.key = key; qc.key_len = 32; qc.capacity = 256;
 *     qc.random = rnd;                       // salts a new queue's key (creation, format)
 *     qc.on_event = on_queue_event;          // evictions, corrupt records -> audit + gap
 *     mwi_queue *q;
 *     mwi_queue_open(&qc, &q, &why);
 *
 *     // send: a number only if the message can be kept, then a durable append
 *     if (mwi_queue_accepts(q, MW_PRIORITY_OBSERVATION)) {
 *         mwi_seq_next(&seqs, &msg.seq);
 *         mwi_queue_append(q, &msg, now_ms);  // MW_OK: durable (default mode)
 *     }
 *     // flush: alarms first, then observations, then status, oldest first
 *     mw_message_t batch[MWI_MAX_BATCH]; size_t n;
 *     mwi_queue_peek(q, batch, MWI_MAX_BATCH, &n);
 *     // ... on the gateway's custody acknowledgement:
 *     mwi_queue_ack(q, ranges, n_ranges, now_ms, &removed);
 *     // every poll: group-commit deadline, and gap records still owed to the gateway
 *     mwi_queue_flush(q, now_ms);
 *     mwi_queue_gap gaps[MWI_QUEUE_GAP_SLOTS]; size_t g = mwi_queue_gaps(q, gaps, 8);
 *     // ... once a gap record is acknowledged: mwi_queue_gaps_clear(q, gaps, g);
 *     mwi_queue_close(&q);
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "medwire/err.h"
#include "medwire/io.h"
#include "medwire/message.h"
#include "medwire/storage.h"
#include "session/codec.h"

/* ---- sequence-number reservation store --------------------------------------------------- */

/**
 * A counter that never hands out the same number twice over the life of its storage region,
 * across power cuts and restarts. Before handing out numbers below a ceiling it makes the
 * ceiling durable (write, sync), one block ahead, so a restart costs at most one block of
 * numbers. The ceiling lives in two slots (A/B, each with a write counter, a CRC and a
 * trailer byte) written alternately, so a torn write never loses the last durable ceiling.
 * Plain data: the caller owns it; nothing to free.
 */
/** Bytes of caller data kept beside the ceiling in every slot (the client's sequence space). */
#define MWI_SEQ_AUX 16

typedef struct mwi_seq {
    mw_storage_t st;       /**< copy of the region table */
    uint32_t slot_size;    /**< bytes per slot (erase and write aligned) */
    uint64_t block;        /**< numbers reserved per durable write */
    uint64_t next;         /**< the number mwi_seq_next() returns next */
    uint64_t ceiling;      /**< numbers below this are covered by a durable slot */
    uint64_t counter;      /**< write counter of the newest slot */
    uint8_t write_slot;    /**< the slot the next reservation overwrites (0 = A, 1 = B) */
    bool fresh;            /**< no slot was ever written: the first reservation writes both */
    bool broken;           /**< a storage error happened: reopen */
    uint8_t torn_slots;    /**< bit i: slot i held an interrupted write at open */
    uint8_t corrupt_slots; /**< bit i: slot i held damaged complete data at open */
    uint8_t aux[MWI_SEQ_AUX]; /**< caller data of the newest valid slot (zero when fresh) */
} mwi_seq;

/** Bytes a sequence store needs on a medium with these units (two slots). */
uint32_t mwi_seq_region_size(uint32_t erase_unit, uint32_t write_unit);

/**
 * Reads the two slots of @p storage and positions the counter; writes nothing (the first
 * mwi_seq_next() reserves). A fresh (erased) region starts at @p first (0 means 1). If one
 * slot is damaged (torn or corrupt) and the other valid, the counter resumes one block past
 * the valid ceiling: the damaged slot may have held that ceiling, and numbers below it may
 * have been handed out.
 * @param block numbers per reservation, >= 1 (e.g. 1024)
 * @return ::MW_OK; ::MW_EINVAL (NULL, block 0, region smaller than mwi_seq_region_size or
 *         not aligned); ::MW_EIO (read failed, or both slots damaged: the next safe number is
 *         unknown, so nothing is handed out; @p out_detail says so).
 */
MW_NODISCARD mw_err mwi_seq_open(const mw_storage_t *storage, uint64_t block, uint64_t first,
                                 mwi_seq *out_seq, mw_error_detail_t *out_detail);

/**
 * Hands out the next number. May write and sync a slot first (once per block).
 * @return ::MW_OK; ::MW_EIO (storage failed; the store is broken and returns ::MW_ECLOSED
 *         from then on); ::MW_EFULL (the 64-bit space is exhausted).
 */
MW_NODISCARD mw_err mwi_seq_next(mwi_seq *s, uint64_t *out_value);

/**
 * Starts a store whose slots mwi_seq_open() found damaged afresh at @p first, for a caller that
 * knows from elsewhere that every number it used is below @p first (the queue knows the
 * nonces its records carry). The first mwi_seq_next() rewrites both slots.
 */
void mwi_seq_restart(mwi_seq *s, uint64_t first);

/**
 * Replaces the caller data kept with the ceiling and makes it durable now (one slot written and
 * synced, or both on a fresh store), without handing out a number.
 * @return ::MW_OK; ::MW_EIO (storage failed: the store is broken); ::MW_ECLOSED (broken before).
 */
MW_NODISCARD mw_err mwi_seq_set_aux(mwi_seq *s, const uint8_t aux[MWI_SEQ_AUX]);

/** The caller data of the newest slot (all zero for a fresh store); never NULL for a store. */
const uint8_t *mwi_seq_aux(const mwi_seq *s);

/** Raises the next number to at least @p floor (never lowers it). No I/O. */
void mwi_seq_raise(mwi_seq *s, uint64_t floor);

/** The number mwi_seq_next() would return now. */
uint64_t mwi_seq_peek(const mwi_seq *s);

/* ---- the offline queue ------------------------------------------------------------------- */

typedef struct mwi_queue mwi_queue;

/** AES key lengths accepted (AES-128-GCM, AES-256-GCM). */
#define MWI_QUEUE_KEY_128 16
#define MWI_QUEUE_KEY_256 32

/** What recovery or the queue had to report. */
typedef enum mwi_queue_event_kind {
    /** A message was removed unsent to make room for a new one (queue full). */
    MWI_QUEUE_EVICTED = 1,
    /** Complete data failed its checksum or authentication (damage or tampering at rest). It
     *  is never delivered; seq and priority are given when its header was intact (0 if not). */
    MWI_QUEUE_CORRUPT = 2,
    /** Recovery cut off a write that a power loss interrupted; what it held was never
     *  acknowledged as durable (or lies in the group-commit window). */
    MWI_QUEUE_TORN = 3,
} mwi_queue_event_kind;

/** Why a message will never reach the gateway (the "why" of a gap record). */
typedef enum mwi_queue_gap_reason {
    MWI_QUEUE_GAP_EVICTED = 1, /**< removed to make room */
    MWI_QUEUE_GAP_CORRUPT = 2, /**< damaged at rest */
} mwi_queue_gap_reason;

/** One report. Strings are static. */
typedef struct mwi_queue_event {
    mwi_queue_event_kind kind;
    uint64_t seq;         /**< the message concerned, 0 if unknown or not a message */
    mw_priority priority; /**< its priority, 0 if unknown */
    uint32_t offset;      /**< where in the region (for the audit record) */
    uint32_t length;      /**< bytes concerned */
    const char *reason;   /**< a sentence for the audit log */
} mwi_queue_event;

/** Receives reports, during open and during the call that caused them. Must not call back
 *  into the queue. */
typedef void mwi_queue_event_fn(void *ctx, const mwi_queue_event *ev);

/** Messages lost for one (priority, reason) that the gateway has not been told about yet. */
typedef struct mwi_queue_gap {
    mw_priority priority; /**< 0 for corrupt records whose header was unreadable */
    mwi_queue_gap_reason reason;
    uint64_t count;     /**< how many */
    uint64_t first_seq; /**< lowest and highest sequence number among them (0 if */
    uint64_t last_seq;  /**< unknown); for evictions every message of this priority
                             with a number in [first, last] was either delivered or
                             is counted here */
} mwi_queue_gap;

/** Entries mwi_queue_gaps() can return: 3 priorities and "unknown", times 2 reasons. */
#define MWI_QUEUE_GAP_SLOTS 8

typedef struct mwi_queue_config {
    /** The region (table copied; its context must outlive the queue). */
    const mw_storage_t *storage;
    /** AES key, 16 or 32 bytes, from the vendor. Records are sealed under a key derived from
     *  it and the region's random salt (docs/queue.md, 7), so one vendor key may serve several
     *  regions and incarnations. Read at open only; not kept. */
    const uint8_t *key;
    size_t key_len;
    /** Draws the salt when a region becomes a queue (creation on an erased region,
     *  mwi_queue_format()); both refuse without one (::MW_ECONFIG). Opening an existing queue
     *  does not use it. */
    mw_random_t random;
    /** Messages held (default 256). The queue can hold up to twice as many after damage to a
     *  stored acknowledgement or a smaller capacity than before (see docs/queue.md, 9). */
    uint32_t capacity;
    /** Group commit: 0 or 1 syncs every append and acknowledgement before it returns (the
     *  default); N > 1 syncs once N operations are unsynced, or at the first mwi_queue_flush()
     *  @c group_commit_ms after the oldest unsynced one. */
    uint32_t group_commit_n;
    uint32_t group_commit_ms;     /**< with N > 1; 0 means 100 */
    uint64_t nonce_block;         /**< nonces reserved per durable write (default 65536) */
    mwi_queue_event_fn *on_event; /**< may be NULL */
    void *event_ctx;
    void *mem;       /**< optional caller memory of mwi_queue_mem_size() bytes, */
    size_t mem_size; /**< aligned for any type; NULL: allocated by open */
} mwi_queue_config;

/** Counters and state. */
typedef struct mwi_queue_stats {
    uint32_t capacity;
    uint32_t depth;                /**< messages held (may exceed capacity, see config) */
    uint32_t depth_by_priority[4]; /**< indexed by mw_priority (0 unused) */
    uint64_t oldest_age_ms; /**< now_ms minus the append time of the oldest message, 0 if none */
    uint64_t appended, acked, evicted, corrupt, torn;
    uint64_t compactions, syncs;
    uint32_t unsynced;      /**< operations written but not yet synced (group commit) */
    uint32_t bytes_used;    /**< bytes of the active half in use (live and dead records) */
    uint32_t bytes_half;    /**< bytes of one half */
    uint32_t active_offset; /**< where the active half starts in the region */
    uint32_t header_bytes;  /**< bytes of a half's header area (records follow it) */
} mwi_queue_stats;

/** Defaults: capacity 256, no group commit, nonce block 65536, no memory given. */
void mwi_queue_config_init(mwi_queue_config *cfg);

/** Bytes of memory a queue with this configuration needs (@p cfg->mem may then point to it).
 *  @return ::MW_OK; ::MW_EINVAL (NULL); ::MW_ECONFIG (capacity 0). */
MW_NODISCARD mw_err mwi_queue_mem_size(const mwi_queue_config *cfg, size_t *out_size);

/** Smallest region that holds @p capacity messages of the largest size on a medium with these
 *  units. Twice that keeps compaction rare when the queue is full (see docs/queue.md). */
MW_NODISCARD mw_err mwi_queue_region_min(uint32_t capacity, uint32_t erase_unit,
                                         uint32_t write_unit, uint32_t *out_size);

/**
 * Opens the queue in @p cfg->storage, recovering it: keeps every intact record, cuts off torn
 * writes, reports damaged records (never delivers them), and rewrites the log into the other
 * half if it found anything to cut or skip, so that nothing is reported twice. A fresh
 * (erased) region becomes an empty queue under a fresh salt from @p cfg->random. The key is
 * checked before anything is written.
 * Events (evictions, damage, torn writes) found while recovering are delivered during the
 * call; afterwards mwi_queue_gaps() lists what the gateway must still be told.
 * @return ::MW_OK; ::MW_EINVAL (NULL); ::MW_ECONFIG (key missing or not 16/32 bytes; key
 *         different from the one the queue was written with; region too small, misaligned, or
 *         of another geometry than when it was created; region written by format 1 (an older
 *         medwire); a new queue to create but no random source; caller memory too small or
 *         not 16-byte aligned) -- in each of these cases nothing was written;
 *         ::MW_EIO (storage failed, or the region holds data but no valid queue header, so
 *         opening would destroy it: use mwi_queue_format() to start over deliberately);
 *         ::MW_ENOMEM. @p out_detail (may be NULL) says which and why.
 */
MW_NODISCARD mw_err mwi_queue_open(const mwi_queue_config *cfg, mwi_queue **out_q,
                                   mw_error_detail_t *out_detail);

/** Syncs what group commit left unsynced (best effort), wipes the key, frees what open
 *  allocated; sets *q to NULL. NULL is ignored. */
void mwi_queue_close(mwi_queue **q);

/** Starts @p cfg->storage over as a new incarnation: erases both halves (every message and the
 *  key check are gone) and writes the label with a fresh salt from @p cfg->random. The nonce
 *  store stays, so the next open's first generation is above every earlier one. For a
 *  deliberate reset: a new key, or a region open refused with MW_EIO. Synced; the next
 *  mwi_queue_open() creates the queue. The key is not used.
 *  @return ::MW_OK; ::MW_EINVAL; ::MW_ECONFIG (no random source, or a geometry the
 *  capacity does not fit: nothing written); ::MW_EIO. @p out_detail (may be NULL) says why. */
MW_NODISCARD mw_err mwi_queue_format(const mwi_queue_config *cfg, mw_error_detail_t *out_detail);

/** True if mwi_queue_append() of a message of @p priority would keep it: there is room, or a
 *  message of the same or lower priority can be evicted. Take a sequence number only then. */
bool mwi_queue_accepts(const mwi_queue *q, mw_priority priority);

/**
 * Encrypts and appends @p msg (its seq is the caller's). When the queue is full it first evicts
 * the oldest message of the lowest priority present that is not above @p msg's (alarms last),
 * reporting it (::MWI_QUEUE_EVICTED) and counting it in the gap table; eviction and append
 * are one write. In default mode the append is durable when this returns ::MW_OK.
 * @param now_ms the caller's clock (one time base for all calls: wall time keeps ages right
 *        across restarts), stored with the message for the age statistic
 * @return ::MW_OK; ::MW_EINVAL (message fails mwi_message_check(), or its seq is queued
 *         already); ::MW_EFULL (full of higher priorities: nothing written); ::MW_EIO and
 *         ::MW_ECLOSED (storage failed now or earlier: reopen to recover).
 */
MW_NODISCARD mw_err mwi_queue_append(mwi_queue *q, const mw_message_t *msg, uint64_t now_ms);

/**
 * Removes every queued message whose seq lies in one of @p ranges (the gateway's custody
 * acknowledgement). One record; synced before returning in default mode. Numbers not queued
 * are ignored (a repeated Ack is harmless).
 * @return ::MW_OK; ::MW_EINVAL (NULL with n > 0, more than ::MWI_MAX_ACK_RANGES ranges, a
 *         range with first > last); ::MW_EIO, ::MW_ECLOSED.
 */
MW_NODISCARD mw_err mwi_queue_ack(mwi_queue *q, const mwi_seq_range *ranges, size_t n,
                                  uint64_t now_ms, size_t *out_removed);

/** Cursor of an iteration in flush order. Survives appends and acks in between (it holds the
 *  position by key, not by index). Zero it, or use mwi_queue_cursor_init(). */
typedef struct mwi_queue_cursor {
    uint8_t priority; /**< 0: not started */
    uint64_t after_seq;
    /** Optional: messages for which this returns true are passed over without being read
     *  or decrypted (the client's messages already in flight). */
    bool (*skip)(void *ctx, uint64_t seq);
    void *skip_ctx;
} mwi_queue_cursor;

void mwi_queue_cursor_init(mwi_queue_cursor *c);

/**
 * The next message in flush order: alarms, then observations, then status, each by ascending
 * sequence number. Reads and decrypts it from storage. A record that no longer authenticates
 * is reported (::MWI_QUEUE_CORRUPT), dropped (persistently) and skipped, never returned.
 * @return ::MW_OK with @p out_msg filled; ::MW_EAGAIN at the end; ::MW_EIO, ::MW_ECLOSED.
 */
MW_NODISCARD mw_err mwi_queue_next(mwi_queue *q, mwi_queue_cursor *c, mw_message_t *out_msg);

/** The first @p cap messages in flush order (a batch for one request). *out_n may be 0.
 *  @return as mwi_queue_next(), never ::MW_EAGAIN. */
MW_NODISCARD mw_err mwi_queue_peek(mwi_queue *q, mw_message_t *out_msgs, size_t cap, size_t *out_n);

/** Group commit: syncs if N operations or group_commit_ms have passed since the oldest
 *  unsynced one. No-op in default mode. @return ::MW_OK, ::MW_EIO, ::MW_ECLOSED. */
MW_NODISCARD mw_err mwi_queue_flush(mwi_queue *q, uint64_t now_ms);

/** Milliseconds until mwi_queue_flush() has a sync due, or -1 if nothing is unsynced. */
int64_t mwi_queue_flush_due_ms(const mwi_queue *q, uint64_t now_ms);

/** Syncs now. @return ::MW_OK, ::MW_EIO, ::MW_ECLOSED. */
MW_NODISCARD mw_err mwi_queue_sync(mwi_queue *q);

/** Rewrites the live messages into the other half and makes it the active one (also done
 *  automatically when the active half is full). Synced. @return ::MW_OK, ::MW_EIO, ::MW_ECLOSED. */
MW_NODISCARD mw_err mwi_queue_compact(mwi_queue *q);

/** Whether the message numbered @p seq is held (queued, not yet acknowledged). */
bool mwi_queue_holds(const mwi_queue *q, uint64_t seq);

/** Messages held now; O(1) (mwi_queue_stats_get also scans for the oldest). */
uint32_t mwi_queue_depth(const mwi_queue *q);

/** The lowest sequence number queued (the Envelope's low_water), 0 if the queue is empty. */
uint64_t mwi_queue_low_water(const mwi_queue *q);

/** Fills @p out. @p now_ms in the time base given to mwi_queue_append(). */
void mwi_queue_stats_get(const mwi_queue *q, uint64_t now_ms, mwi_queue_stats *out);

/** Copies up to @p cap pending gap entries (count > 0) into @p out; returns how many. */
size_t mwi_queue_gaps(const mwi_queue *q, mwi_queue_gap *out, size_t cap);

/**
 * Forgets gaps the gateway now knows about: subtracts each entry of @p done (as returned by
 * mwi_queue_gaps()) from the current table, keeping what was added since. Persisted (synced
 * in default mode). @return ::MW_OK; ::MW_EINVAL; ::MW_EIO, ::MW_ECLOSED.
 */
MW_NODISCARD mw_err mwi_queue_gaps_clear(mwi_queue *q, const mwi_queue_gap *done, size_t n);

/** Where the record of queued message @p seq lies in the region (tests, audit).
 *  @return ::MW_OK, ::MW_EAGAIN (not queued), ::MW_EINVAL. */
MW_NODISCARD mw_err mwi_queue_locate(const mwi_queue *q, uint64_t seq, uint32_t *out_off,
                                     uint32_t *out_len);

/** The last error met, with a reason (MW_OK if none). */
void mwi_queue_last_error(const mwi_queue *q, mw_error_detail_t *out);

/* ---- a region in RAM --------------------------------------------------------------------- */

/** Makes @p out a region of @p size erased bytes in memory (erase and write unit 1), for a
 *  client configured without persistent storage: the same queue, lost at a power cut.
 *  @return ::MW_OK, ::MW_EINVAL, ::MW_ENOMEM. */
MW_NODISCARD mw_err mwi_mem_region_open(uint32_t size, mw_storage_t *out);
/** Frees a region made by mwi_mem_region_open() and zeroes @p st. NULL is ignored. */
void mwi_mem_region_close(mw_storage_t *st);

#endif
