/* SPDX-License-Identifier: Apache-2.0 */
/* pg_schema.c -- sessions and migrations of the gateway program's tables in the shared
 * PostgreSQL database. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pg_schema.h"

bool pgs_exec(PGconn *c, const char *sql)
{
    PGresult *r = PQexec(c, sql);
    bool ok = PQresultStatus(r) == PGRES_COMMAND_OK || PQresultStatus(r) == PGRES_TUPLES_OK;
    PQclear(r);
    return ok;
}

/* The server's notices ("relation already exists, skipping") are not the gateway's to print. */
static void no_notices(void *arg, const char *message)
{
    (void)arg;
    (void)message;
}

PGconn *pgs_connect(const char *url)
{
    /* Defaults the URL may override: a server that does not answer fails the connection
     * within seconds rather than hanging the gateway. */
    const char *const keys[] = {"connect_timeout", "application_name", "dbname", NULL};
    const char *const vals[] = {"5", "medwire-gateway", url, NULL};
    PGconn *c = PQconnectdbParams(keys, vals, 1);
    if (c != NULL)
        (void)PQsetNoticeProcessor(c, no_notices, NULL);
    return c;
}

bool pgs_session(PGconn *c)
{
    return PQstatus(c) == CONNECTION_OK &&
           pgs_exec(c, "SET synchronous_commit = on;"
                       " SET default_transaction_isolation = 'read committed'");
}

bool pgs_migrate(PGconn *c, const char *version_table, long long lock,
                 const char *const *migrations, int count)
{
    char sql[256];
    snprintf(sql, sizeof sql, "SELECT pg_advisory_xact_lock(%lld)", lock);
    bool ok = pgs_exec(c, "BEGIN") && pgs_exec(c, sql);
    snprintf(sql, sizeof sql,
             "CREATE TABLE IF NOT EXISTS %s(version integer PRIMARY KEY,"
             " applied_at timestamptz NOT NULL DEFAULT now())",
             version_table);
    ok = ok && pgs_exec(c, sql);
    snprintf(sql, sizeof sql, "SELECT coalesce(max(version), 0) FROM %s", version_table);
    PGresult *r = ok ? PQexec(c, sql) : NULL;
    long have = -1;
    if (r && PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) == 1)
        have = strtol(PQgetvalue(r, 0, 0), NULL, 10);
    PQclear(r);
    ok = ok && have >= 0 && have <= count;
    for (long i = have; ok && i < count; i++) {
        snprintf(sql, sizeof sql, "INSERT INTO %s(version) VALUES(%ld)", version_table, i + 1);
        ok = pgs_exec(c, migrations[i]) && pgs_exec(c, sql);
    }
    if (!ok) {
        (void)pgs_exec(c, "ROLLBACK");
        return false;
    }
    /* A transaction that failed earlier "commits" as a ROLLBACK: only COMMIT is one. */
    r = PQexec(c, "COMMIT");
    ok = PQresultStatus(r) == PGRES_COMMAND_OK && strcmp(PQcmdStatus(r), "COMMIT") == 0;
    PQclear(r);
    return ok;
}

void pgs_why(PGconn *c, const char *what, char *why, size_t why_size)
{
    const char *msg = c ? PQerrorMessage(c) : "out of memory";
    int n = (int)strcspn(msg, "\n");
    snprintf(why, why_size, "%s: %.*s", what, n > 160 ? 160 : n, msg);
}
