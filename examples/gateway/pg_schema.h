/* SPDX-License-Identifier: Apache-2.0 */
/* pg_schema.h -- what the gateway program's tables in the shared PostgreSQL database (the
 * outbox, the audit trail) have in common: a session set up as the store's are, and numbered
 * migrations applied once, whichever gateway starts first. */
#ifndef MW_EXAMPLE_PG_SCHEMA_H
#define MW_EXAMPLE_PG_SCHEMA_H

#include <libpq-fe.h>
#include <stdbool.h>
#include <stddef.h>

/** A statement whose rows are not needed; false unless it succeeded. */
bool pgs_exec(PGconn *c, const char *sql);
/** Connects to @p url (libpq's URL) with a connect timeout; NULL, or a connection whose status
 *  is not CONNECTION_OK, on failure (PQfinish it either way). */
PGconn *pgs_connect(const char *url);
/** Every session: commits durable when they return, READ COMMITTED. */
bool pgs_session(PGconn *c);
/**
 * Brings the tables up to version @p count of @p migrations, recorded in @p version_table, in
 * one transaction under the advisory lock @p lock (so that gateways starting together apply
 * each once). False if it failed or if the database's version is newer than @p count.
 */
bool pgs_migrate(PGconn *c, const char *version_table, long long lock,
                 const char *const *migrations, int count);
/** libpq's first line about the failure, which names the server but never the password. */
void pgs_why(PGconn *c, const char *what, char *why, size_t why_size);

#endif
