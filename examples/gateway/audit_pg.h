/* SPDX-License-Identifier: Apache-2.0 */
/* audit_pg.h -- the audit trail as rows of a PostgreSQL database (--audit postgresql://...),
 * one per event, named by the gateway that saw it, so that a site's gateways keep one trail. */
#ifndef MW_EXAMPLE_AUDIT_PG_H
#define MW_EXAMPLE_AUDIT_PG_H

#include <stdbool.h>
#include <stddef.h>

typedef struct audit_pg audit_pg_t;

/** Connects to @p url and brings the audit table up to date; events are recorded under
 *  @p gateway. NULL, with @p why filled, on failure. */
audit_pg_t *audit_pg_open(const char *url, const char *gateway, char *why, size_t why_size);
/**
 * Records one event, @p json (a JSON object), durably. False when the database did not take it
 * (the caller writes it elsewhere): while the server is unreachable, a reconnection is tried at
 * most every 10 s, so that a gateway with its audit database down does not wait on each event.
 * One thread at a time (the gateway's loop).
 */
bool audit_pg_write(audit_pg_t *a, const char *json);
void audit_pg_close(audit_pg_t **a);

#endif
