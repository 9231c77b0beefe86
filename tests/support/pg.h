/* SPDX-License-Identifier: Apache-2.0 */
/* pg.h -- a real PostgreSQL server of a test's own: a fresh cluster in a temporary folder,
 * listening on loopback on a free port, stopped and removed by the test. The first start
 * leaves a template cluster (mwpg-template-*, in /dev/shm or /tmp) that later ones copy. */
#ifndef MWT_PG_H
#define MWT_PG_H

#include <stdbool.h>

typedef struct mwt_pg {
    char bin[256]; /**< the server's bin folder (initdb, pg_ctl, createdb) */
    char dir[128]; /**< the cluster's temporary folder: data/, the socket, the log */
    int port;      /**< its TCP port on 127.0.0.1 */
    char url[256]; /**< postgresql://postgres@127.0.0.1:PORT/medwire */
    bool running;
} mwt_pg;

/** True if PostgreSQL's server programs are installed (else the test skips: say why). */
bool mwt_pg_available(void);

/**
 * Makes a cluster (initdb, trust authentication on its Unix socket in @c dir and on loopback
 * TCP), starts it on a free port of 127.0.0.1 within 20 s and creates the database "medwire".
 * As root, the server runs as the user "nobody" (PostgreSQL refuses to run as root). False,
 * with the reason on stderr, if it did not start.
 */
bool mwt_pg_start(mwt_pg *pg);
/** Stops the server (fast shutdown: sessions are cut, committed work is kept). */
bool mwt_pg_halt(mwt_pg *pg);
/** Starts a halted server again on the same port. */
bool mwt_pg_resume(mwt_pg *pg);
/** Stops and starts the server (pg_ctl restart): every connection is cut. */
bool mwt_pg_restart(mwt_pg *pg);
/** Stops the server and removes its folder. */
void mwt_pg_stop(mwt_pg *pg);
/** Runs one SQL statement with psql on the database; its output (tuples only, unaligned) goes
 *  to @p out_path (may be NULL). The exit code of psql. */
int mwt_pg_sql(const mwt_pg *pg, const char *sql, const char *out_path);
/** Runs @p sql every 100 ms until the first line it prints is @p want, for up to @p ms: whether
 *  it came to that. */
bool mwt_pg_wait_for(const mwt_pg *pg, const char *sql, const char *want, int ms);

#endif
