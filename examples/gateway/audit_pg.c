/* SPDX-License-Identifier: Apache-2.0 */
/* audit_pg.c -- the audit trail in a PostgreSQL database: a row per event, with the gateway
 * that saw it, the server's time and the event as jsonb (the same object as an --audit FILE
 * line, so that the trail can be queried by its fields). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "audit_pg.h"
#include "pg_schema.h"

static const char *const MIGRATIONS[] = {
    /* 1: the events in the order the database took them. */
    "CREATE TABLE audit(id bigserial PRIMARY KEY, gateway text NOT NULL,"
    " at timestamptz NOT NULL DEFAULT now(), event jsonb NOT NULL);"
    "CREATE INDEX audit_at ON audit(at);",
};

/* Serialises the audit table's migrations between gateways: "mwau". */
#define MIGRATION_LOCK 1836540277

/* Seconds between reconnection attempts while the server is unreachable. */
#define RETRY_S 10

struct audit_pg {
    PGconn *conn;
    char gateway[256];
    time_t retry_at;
};

audit_pg_t *audit_pg_open(const char *url, const char *gateway, char *why, size_t why_size)
{
    audit_pg_t *a = calloc(1, sizeof *a);
    if (a == NULL) {
        snprintf(why, why_size, "out of memory");
        return NULL;
    }
    snprintf(a->gateway, sizeof a->gateway, "%s", gateway);
    a->conn = pgs_connect(url);
    if (a->conn == NULL || PQstatus(a->conn) != CONNECTION_OK)
        pgs_why(a->conn, "audit on PostgreSQL: cannot connect", why, why_size);
    else if (!pgs_migrate(a->conn, "audit_schema_version", MIGRATION_LOCK, MIGRATIONS,
                          (int)(sizeof MIGRATIONS / sizeof MIGRATIONS[0])))
        pgs_why(a->conn,
                "audit on PostgreSQL: cannot set up the audit table (or it was made by a newer "
                "medwire)",
                why, why_size);
    else if (!pgs_session(a->conn))
        pgs_why(a->conn, "audit on PostgreSQL: cannot set up the session", why, why_size);
    else
        return a;
    audit_pg_close(&a);
    return NULL;
}

static bool ready(audit_pg_t *a)
{
    if (PQstatus(a->conn) == CONNECTION_OK)
        return true;
    time_t now = time(NULL);
    if (now < a->retry_at)
        return false;
    PQreset(a->conn);
    if (pgs_session(a->conn))
        return true;
    a->retry_at = now + RETRY_S;
    return false;
}

bool audit_pg_write(audit_pg_t *a, const char *json)
{
    if (!ready(a))
        return false;
    const char *val[] = {a->gateway, json};
    PGresult *r = PQexecParams(a->conn, "INSERT INTO audit(gateway, event) VALUES($1, $2::jsonb)",
                               2, NULL, val, NULL, NULL, 0);
    bool ok = PQresultStatus(r) == PGRES_COMMAND_OK;
    PQclear(r);
    return ok;
}

void audit_pg_close(audit_pg_t **pa)
{
    if (*pa == NULL)
        return;
    PQfinish((*pa)->conn);
    free(*pa);
    *pa = NULL;
}
