/* SPDX-License-Identifier: Apache-2.0 */
/* outbox.h -- the delivery outbox: encoded messages held durably (in a SQLite file of their own,
 * or in the gateways' shared PostgreSQL database) until the hospital acknowledges them, written
 * by the gateway's loop and read by a sender. */
#ifndef MW_EXAMPLE_OUTBOX_H
#define MW_EXAMPLE_OUTBOX_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "medwire/medwire.h"

typedef struct outbox outbox_t;

/** Default bound of rows held (--outbox-max). */
#define OUTBOX_DEFAULT_MAX 100000u

/** Destinations one outbox serves at most. */
#define OUTBOX_LANES_MAX 4

/** How long a shared outbox's sender holds the rows it took before another gateway may take
 *  them (outbox_set_lease). */
#define OUTBOX_LEASE_MS 60000u

/**
 * Opens (or creates, mode 0600) the outbox at @p path with its first destination (a lane:
 * "hl7", "fhir"), each destination holding at most @p max_rows rows. The file is locked until
 * outbox_close: a second gateway given the same file does not start. Returns NULL and fills
 * @p why on failure. The handle returned is the core: staging, commit, recover and release
 * through any lane act on all of them.
 */
outbox_t *outbox_open(const char *path, const char *destination, uint64_t max_rows, char *why,
                      size_t why_size);
/**
 * The outbox in the PostgreSQL database at @p url, the --store's, shared by every gateway on
 * it: this gateway (@p gateway, its --gateway-id, held while open) writes and recovers its own
 * rows; its senders deliver any gateway's rows whose writer's store has committed them, each
 * row taken by one sender at a time for a lease (docs/deployment.md). The bound counts every
 * gateway's rows. NULL, with @p why filled, when the database cannot be reached, the name is
 * in use, or the program was built without libpq.
 */
outbox_t *outbox_open_shared(const char *url, const char *gateway, const char *destination,
                             uint64_t max_rows, char *why, size_t why_size);
/** How long this outbox's senders hold the rows they take (shared outbox only; default
 *  OUTBOX_LEASE_MS): a sender that dies leaves them to another gateway after that. */
void outbox_set_lease(outbox_t *ob, uint32_t lease_ms);
/**
 * Another destination in the same file: its rows are written in the same transaction as the
 * others' (outbox_stage on this lane), and read, acknowledged and parked by its own sender
 * through this handle. Closed with outbox_close, or with the core.
 */
outbox_t *outbox_add_lane(outbox_t *core, const char *destination, char *why, size_t why_size);
/** Rows in the file for no destination opened now (one configured before and not any more). */
uint64_t outbox_unclaimed(outbox_t *ob);
void outbox_close(outbox_t **ob);

/* The gateway's loop (one thread): staging is the sink, commit and recover are sink_commit
 * and sink_recover. */

/** Keeps @p payload (@p len bytes) for @p device, for this lane's destination, in memory
 *  until outbox_commit. */
mw_err outbox_stage(outbox_t *ob, const char *device, const char *payload, size_t len);
/**
 * Writes every staged payload, of every lane, in one durable transaction and returns the id of
 * the last row, the checkpoint. MW_EFULL (nothing written, the staged payloads dropped) when
 * they would take any lane past its bound.
 */
mw_err outbox_commit(outbox_t *ob, uint64_t *out_checkpoint);
/** Drops what is staged and deletes the rows after @p checkpoint (never acknowledged). */
mw_err outbox_recover(outbox_t *ob, uint64_t checkpoint);
/** Lets the sender have the rows committed so far: call once the gateway's store has committed
 *  the checkpoint too (after mw_gateway_poll returns). */
void outbox_release(outbox_t *ob);

/* The sender (its own thread and its own database connection). */

typedef struct outbox_row {
    int64_t id;
    char device[MW_ID_MAX + 1];
    char *payload; /**< malloc'd; outbox_row_free */
    size_t len;
    unsigned attempts;
    uint64_t held_ms; /**< shared outbox: monotonic ms when its claim was taken or renewed */
} outbox_row_t;

/** The oldest released row not parked; false when there is none (or on an error). Waits up to
 *  @p wait_ms for outbox_release to offer one. */
bool outbox_next(outbox_t *ob, int wait_ms, outbox_row_t *out);
/** Up to @p max of the oldest released rows not parked, in order, into @p out (each to be
 *  freed with outbox_row_free); 0 when there is none after waiting up to @p wait_ms. For
 *  destinations that take several messages in one request (--fhir-server). */
size_t outbox_next_batch(outbox_t *ob, int wait_ms, outbox_row_t *out, size_t max);
void outbox_row_free(outbox_row_t *row);
/**
 * Whether the sender may send @p row now. On a shared outbox (PostgreSQL), a claim is a lease
 * (outbox_set_lease) that another gateway may take over once it runs out, for instance while
 * this sender waited for a destination that was down: true while the claim is this gateway's
 * with at least half its lease to run (renewed here when it has less), false when another
 * gateway took it over, the row is gone, or the database does not answer -- the row is then
 * left alone (not sent, and freed), and is claimed again later if it is still unsent. A
 * local outbox (SQLite) has one sender per destination: always true.
 */
bool outbox_hold(outbox_t *ob, outbox_row_t *row);
/** The hospital has it: the row goes. */
mw_err outbox_delivered(outbox_t *ob, int64_t id);
/** Records one more failed attempt, and when to try again. */
mw_err outbox_retry(outbox_t *ob, int64_t id, unsigned attempts, uint64_t next_try_ms);
/** Keeps the row but sends it no more (parked = 1), for an operator to look at. */
mw_err outbox_park(outbox_t *ob, int64_t id);
/** Wakes a sender waiting in outbox_next (to stop it). */
void outbox_wake(outbox_t *ob);

typedef struct outbox_stats {
    uint64_t depth;     /**< rows not yet acknowledged, parked ones included */
    uint64_t parked;    /**< of which parked */
    uint64_t max_rows;  /**< the bound */
    uint64_t oldest_ms; /**< Unix ms the oldest unparked row was committed; 0: none */
    uint64_t full;      /**< commits refused because the outbox was full */
    bool refused;       /**< the last commit was refused for this destination's bound */
} outbox_stats_t;

/** From the gateway's loop (its connection). */
void outbox_stats(outbox_t *ob, outbox_stats_t *out);
const char *outbox_destination(const outbox_t *ob);

#endif
