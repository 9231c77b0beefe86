/* SPDX-License-Identifier: Apache-2.0 */
/* outbox_pg.h -- the outbox's rows in the gateways' shared PostgreSQL database (libpq): the
 * statements outbox.c runs there instead of SQLite's, one connection each. */
#ifndef MW_EXAMPLE_OUTBOX_PG_H
#define MW_EXAMPLE_OUTBOX_PG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "outbox.h"

typedef struct obpg obpg_t;

/** True for a libpq connection URL (postgresql:// or postgres://). */
bool obpg_is_url(const char *s);

/**
 * Connects to @p url as gateway @p gateway. The writer (@p writer true) also brings the
 * outbox's schema up to date and holds the gateway's name (a second gateway with the same
 * --gateway-id is refused). NULL, with @p why filled, on failure.
 */
obpg_t *obpg_open(const char *url, const char *gateway, bool writer, char *why, size_t why_size);
void obpg_close(obpg_t **c);

/* The writer (the gateway's loop). */
bool obpg_begin(obpg_t *c);
bool obpg_insert(obpg_t *c, const char *lane, const char *device, const char *payload, size_t len,
                 uint64_t created_ms, uint64_t *out_id);
bool obpg_commit(obpg_t *c);
void obpg_rollback(obpg_t *c);
/** The last row this gateway wrote that is still there (0: none). */
uint64_t obpg_last_id(obpg_t *c);
/** Deletes this gateway's rows after @p checkpoint. */
bool obpg_forget_after(obpg_t *c, uint64_t checkpoint);
/** Rows of @p lane (NULL: of every lane), all gateways' together; parked ones only if
 *  @p parked. */
uint64_t obpg_count(obpg_t *c, const char *lane, bool parked);
/** Unix ms the oldest unparked row of @p lane was committed; 0: none. */
uint64_t obpg_oldest(obpg_t *c, const char *lane);

/* A lane's sender. */

/** Claims up to @p max rows of @p lane for @p lease_ms, oldest first, into @p out; none of a
 *  device whose earlier row another gateway holds (a device goes in order). */
size_t obpg_claim(obpg_t *c, const char *lane, uint32_t lease_ms, outbox_row_t *out, size_t max);
/** Deletes row @p id; *out_gone tells whether it was there. */
bool obpg_delete(obpg_t *c, int64_t id, bool *out_gone);
bool obpg_retry(obpg_t *c, int64_t id, unsigned attempts, uint64_t next_try_ms, uint32_t lease_ms);
/** Renews this gateway's claim on row @p id of @p lane for @p lease_ms, in turn with the
 *  lane's claims: 1 renewed, 0 another gateway holds it (or it is gone), -1 the database did
 *  not answer. */
int obpg_hold(obpg_t *c, const char *lane, int64_t id, uint32_t lease_ms);
bool obpg_park(obpg_t *c, int64_t id);

#endif
