/* SPDX-License-Identifier: Apache-2.0 */
/* outbox_pg.c -- the outbox's rows in the gateways' shared PostgreSQL database: every gateway
 * writes its own rows (origin), and any gateway's sender may deliver any row, once the store
 * of the gateway that wrote it has committed the checkpoint covering it, and once no other
 * gateway holds an unexpired claim on it. */
#include <libpq-fe.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "outbox_pg.h"
#include "pg_schema.h"

/* Every migration in order; outbox_schema_version holds the number of the last one applied.
 * The outbox's versions are its own: the store's schema_version moves independently. */
static const char *const MIGRATIONS[] = {
    /* 1: one row per message and destination; id from one sequence for all gateways, so that
     * a gateway's ids grow with its commits and its checkpoint covers its rows up to one. */
    "CREATE TABLE outbox(id bigserial PRIMARY KEY, lane text NOT NULL, origin text NOT NULL,"
    " device text NOT NULL, payload bytea NOT NULL, attempts integer NOT NULL DEFAULT 0,"
    " next_try_ms bigint NOT NULL DEFAULT 0, parked boolean NOT NULL DEFAULT false,"
    " created_ms bigint NOT NULL, claimed_by text, claimed_until timestamptz);"
    "CREATE INDEX outbox_lane ON outbox(lane, parked, id);"
    "CREATE INDEX outbox_origin ON outbox(origin, id);",
    /* 2: a device's earlier rows, looked up by each claim (a device is sent in order). */
    "CREATE INDEX outbox_device ON outbox(lane, device, id);",
};
#define SCHEMA_VERSION ((int)(sizeof MIGRATIONS / sizeof MIGRATIONS[0]))

/* The advisory lock that serialises the outbox's migrations between gateways: "mwob". */
#define MIGRATION_LOCK 1836543842

/* The session lock a writer holds on its gateway's name, so that two gateways given the same
 * --gateway-id do not delete each other's rows at recovery. */
#define OWNER_LOCK "pg_try_advisory_lock(1836543842, hashtext($1))"
#define OWNER_UNLOCK "pg_advisory_unlock(1836543842, hashtext($1))"

struct obpg {
    PGconn *conn;
    bool writer;
    bool owner; /* this session holds the gateway's name (OWNER_LOCK) */
    char gateway[256];
};

bool obpg_is_url(const char *s)
{
    return s && (strncmp(s, "postgresql://", 13) == 0 || strncmp(s, "postgres://", 11) == 0);
}

/* Results come in binary: integers big endian, of exactly their width. */
static bool get_int(const PGresult *r, int row, int col, int64_t *out)
{
    int n = PQgetlength(r, row, col);
    if (PQgetisnull(r, row, col) || (n != 8 && n != 4))
        return false;
    const unsigned char *p = (const unsigned char *)PQgetvalue(r, row, col);
    uint64_t v = 0;
    for (int i = 0; i < n; i++)
        v = (v << 8) | p[i];
    *out = n == 8 ? (int64_t)v : (int64_t)(int32_t)(uint32_t)v;
    return true;
}

typedef struct param {
    char text[24];
} param;

static const char *i64p(param *p, int64_t v)
{
    snprintf(p->text, sizeof p->text, "%lld", (long long)v);
    return p->text;
}

static PGresult *run(obpg_t *c, const char *sql, int n, const char *const *values,
                     const int *lengths, const int *formats)
{
    return PQexecParams(c->conn, sql, n, NULL, values, lengths, formats, 1);
}

static bool command_ok(PGresult *r)
{
    bool ok = PQresultStatus(r) == PGRES_COMMAND_OK;
    PQclear(r);
    return ok;
}

static bool take_owner(obpg_t *c)
{
    const char *val[] = {c->gateway};
    PGresult *r = run(c, "SELECT " OWNER_LOCK, 1, val, NULL, NULL);
    bool ok = PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) == 1 &&
              PQgetlength(r, 0, 0) == 1 && PQgetvalue(r, 0, 0)[0] == 1;
    PQclear(r);
    c->owner = ok;
    return ok;
}

/* As the store's sessions: a commit returns once durable, and READ COMMITTED, under which a
 * locking read rechecks a row another session changed and committed. */
static bool session_setup(obpg_t *c)
{
    return pgs_session(c->conn) && (!c->writer || take_owner(c));
}

/* A connection the server cut is made again before the next statement: until it is, the
 * gateway's commits fail (nothing is acknowledged) and its senders wait. */
static bool ready(obpg_t *c)
{
    if (PQstatus(c->conn) == CONNECTION_OK)
        return true;
    c->owner = false; /* the lock went with the session */
    PQreset(c->conn);
    return session_setup(c);
}

static void say(char *why, size_t why_size, const char *what, const obpg_t *c)
{
    char w[160];
    snprintf(w, sizeof w, "outbox on PostgreSQL: %s", what);
    pgs_why(c->conn, w, why, why_size);
}

obpg_t *obpg_open(const char *url, const char *gateway, bool writer, char *why, size_t why_size)
{
    obpg_t *c = calloc(1, sizeof *c);
    if (c == NULL) {
        snprintf(why, why_size, "out of memory");
        return NULL;
    }
    if (strlen(gateway) >= sizeof c->gateway) {
        snprintf(why, why_size, "outbox on PostgreSQL: the gateway id is too long");
        free(c);
        return NULL;
    }
    snprintf(c->gateway, sizeof c->gateway, "%s", gateway);
    c->writer = writer;
    c->conn = pgs_connect(url);
    if (c->conn == NULL || PQstatus(c->conn) != CONNECTION_OK) {
        say(why, why_size, "cannot connect", c);
    } else if (writer && !pgs_migrate(c->conn, "outbox_schema_version", MIGRATION_LOCK, MIGRATIONS,
                                      SCHEMA_VERSION)) {
        say(why, why_size,
            "cannot set up the outbox's tables (or they were made by a newer "
            "medwire)",
            c);
    } else if (!session_setup(c)) {
        if (writer && PQstatus(c->conn) == CONNECTION_OK)
            snprintf(why, why_size,
                     "the outbox of gateway '%s' is in use by another gateway: give each "
                     "gateway its own --gateway-id",
                     gateway);
        else
            say(why, why_size, "cannot set up the session", c);
    } else {
        return c;
    }
    obpg_close(&c);
    return NULL;
}

void obpg_close(obpg_t **pc)
{
    if (*pc == NULL)
        return;
    /* The name is free when this returns: the server releases a closed session's locks only
     * once its backend has exited, which a gateway started at once with the same
     * --gateway-id could otherwise beat. */
    obpg_t *c = *pc;
    if (c->owner && PQstatus(c->conn) == CONNECTION_OK) {
        const char *val[] = {c->gateway};
        PQclear(run(c, "SELECT " OWNER_UNLOCK, 1, val, NULL, NULL));
    }
    PQfinish(c->conn);
    free(c);
    *pc = NULL;
}

bool obpg_begin(obpg_t *c)
{
    return ready(c) && pgs_exec(c->conn, "BEGIN");
}

bool obpg_insert(obpg_t *c, const char *lane, const char *device, const char *payload, size_t len,
                 uint64_t created_ms, uint64_t *out_id)
{
    param cm = {{0}};
    const char *val[] = {lane, c->gateway, device, payload, i64p(&cm, (int64_t)created_ms)};
    const int lens[] = {0, 0, 0, (int)len, 0};
    const int fmts[] = {0, 0, 0, 1, 0};
    PGresult *r = run(c,
                      "INSERT INTO outbox(lane, origin, device, payload, created_ms)"
                      " VALUES($1, $2, $3, $4, $5) RETURNING id",
                      5, val, lens, fmts);
    int64_t id = 0;
    bool ok = PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) == 1 && get_int(r, 0, 0, &id);
    PQclear(r);
    *out_id = (uint64_t)id;
    return ok;
}

bool obpg_commit(obpg_t *c)
{
    /* A transaction that failed earlier "commits" as a ROLLBACK: only COMMIT is one. */
    PGresult *r = PQexec(c->conn, "COMMIT");
    bool ok = PQresultStatus(r) == PGRES_COMMAND_OK && strcmp(PQcmdStatus(r), "COMMIT") == 0;
    PQclear(r);
    return ok;
}

void obpg_rollback(obpg_t *c)
{
    if (PQstatus(c->conn) == CONNECTION_OK)
        (void)pgs_exec(c->conn, "ROLLBACK");
}

/* One number a query returns; 0 when it fails or returns NULL. */
static uint64_t number(obpg_t *c, const char *sql, int n, const char *const *val)
{
    if (!ready(c))
        return 0;
    PGresult *r = run(c, sql, n, val, NULL, NULL);
    int64_t v = 0;
    if (PQresultStatus(r) != PGRES_TUPLES_OK || PQntuples(r) != 1 || !get_int(r, 0, 0, &v))
        v = 0;
    PQclear(r);
    return (uint64_t)v;
}

uint64_t obpg_last_id(obpg_t *c)
{
    const char *val[] = {c->gateway};
    return number(c, "SELECT max(id) FROM outbox WHERE origin = $1", 1, val);
}

bool obpg_forget_after(obpg_t *c, uint64_t checkpoint)
{
    param ck = {{0}};
    const char *val[] = {c->gateway, i64p(&ck, (int64_t)checkpoint)};
    if (!ready(c) || !pgs_exec(c->conn, "BEGIN") ||
        !command_ok(
            run(c, "DELETE FROM outbox WHERE origin = $1 AND id > $2", 2, val, NULL, NULL))) {
        obpg_rollback(c);
        return false;
    }
    /* A checkpoint the sequence has not reached yet was counted in another outbox (a file this
     * gateway used before): ids must pass it, or rows written now would count as committed by
     * the store before it commits them. The table lock keeps other gateways' inserts (and so
     * their nextval) out while the sequence moves. */
    PGresult *r = run(c, "SELECT last_value < $1 FROM outbox_id_seq", 1, val + 1, NULL, NULL);
    bool behind = PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) == 1 &&
                  PQgetlength(r, 0, 0) == 1 && PQgetvalue(r, 0, 0)[0] == 1;
    bool ok = PQresultStatus(r) == PGRES_TUPLES_OK;
    PQclear(r);
    if (ok && behind) {
        ok = pgs_exec(c->conn, "LOCK TABLE outbox IN SHARE ROW EXCLUSIVE MODE");
        r = ok ? run(c,
                     "SELECT setval('outbox_id_seq', $1) FROM outbox_id_seq"
                     " WHERE last_value < $1",
                     1, val + 1, NULL, NULL)
               : NULL;
        ok = ok && PQresultStatus(r) == PGRES_TUPLES_OK;
        PQclear(r);
    }
    if (!ok || !obpg_commit(c)) {
        obpg_rollback(c);
        return false;
    }
    return true;
}

uint64_t obpg_count(obpg_t *c, const char *lane, bool parked)
{
    const char *val[] = {lane};
    if (lane == NULL)
        return number(c, "SELECT count(*) FROM outbox", 0, NULL);
    return number(c,
                  parked ? "SELECT count(*) FROM outbox WHERE lane = $1 AND parked"
                         : "SELECT count(*) FROM outbox WHERE lane = $1",
                  1, val);
}

uint64_t obpg_oldest(obpg_t *c, const char *lane)
{
    const char *val[] = {lane};
    return number(c,
                  "SELECT created_ms FROM outbox WHERE lane = $1 AND NOT parked ORDER BY id"
                  " LIMIT 1",
                  1, val);
}

/* A row may go once the store of the gateway that wrote it has committed a checkpoint at or
 * above its id (before that, a crash of that gateway deletes it at recovery and the device
 * sends the message again); it is claimed for a lease, and a row another gateway claimed is
 * skipped until its lease runs out.
 * A device's rows go in order, one gateway at a time: a row is not taken while an earlier row
 * of its device that may go (released, not parked) is held by another gateway. For that to
 * see every other claim, claims and renewals of one lane take turns (CLAIM_LOCK, held to the
 * end of their transaction); delivering, parking and recording a retry need not. */
#define CLAIM_LOCK "SELECT pg_advisory_xact_lock(1836543843, hashtext($1))"
static const char CLAIM[] =
    "WITH c AS (UPDATE outbox o SET claimed_by = $1,"
    " claimed_until = now() + $3::float8 * interval '1 millisecond'"
    " WHERE o.id IN (SELECT r.id FROM outbox r JOIN checkpoints k ON k.gateway = r.origin"
    " WHERE r.lane = $2 AND NOT r.parked AND r.id <= k.sink_checkpoint"
    " AND (r.claimed_by IS NULL OR r.claimed_by = $1 OR r.claimed_until < now())"
    " AND NOT EXISTS (SELECT 1 FROM outbox e JOIN checkpoints ke ON ke.gateway = e.origin"
    " WHERE e.lane = $2 AND e.device = r.device AND e.id < r.id AND NOT e.parked"
    " AND e.id <= ke.sink_checkpoint AND e.claimed_by <> $1 AND e.claimed_until >= now())"
    " ORDER BY r.id LIMIT $4::int8 FOR UPDATE OF r SKIP LOCKED)"
    " RETURNING o.id, o.device, o.payload, o.attempts)"
    " SELECT id, device, payload, attempts FROM c ORDER BY id";

/* BEGIN and this lane's turn to claim. */
static bool claim_turn(obpg_t *c, const char *lane)
{
    const char *val[] = {lane};
    if (!ready(c) || !pgs_exec(c->conn, "BEGIN"))
        return false;
    PGresult *r = run(c, CLAIM_LOCK, 1, val, NULL, NULL);
    bool ok = PQresultStatus(r) == PGRES_TUPLES_OK;
    PQclear(r);
    if (!ok)
        (void)pgs_exec(c->conn, "ROLLBACK");
    return ok;
}

/* COMMIT, or ROLLBACK after a failure; false if the transaction did not commit. */
static bool claim_done(obpg_t *c, bool ok)
{
    if (ok && pgs_exec(c->conn, "COMMIT"))
        return true;
    (void)pgs_exec(c->conn, "ROLLBACK");
    return false;
}

size_t obpg_claim(obpg_t *c, const char *lane, uint32_t lease_ms, outbox_row_t *out, size_t max)
{
    if (max == 0 || !claim_turn(c, lane))
        return 0;
    param ls = {{0}}, mx = {{0}};
    const char *val[] = {c->gateway, lane, i64p(&ls, lease_ms), i64p(&mx, (int64_t)max)};
    PGresult *r = run(c, CLAIM, 4, val, NULL, NULL);
    size_t n = 0;
    bool ok = PQresultStatus(r) == PGRES_TUPLES_OK;
    if (ok) {
        int rows = PQntuples(r);
        for (int i = 0; i < rows && n < max; i++) {
            int64_t id = 0, attempts = 0;
            int len = PQgetlength(r, i, 2);
            outbox_row_t *o = &out[n];
            memset(o, 0, sizeof *o);
            if (!get_int(r, i, 0, &id) || !get_int(r, i, 3, &attempts) ||
                (o->payload = malloc(len > 0 ? (size_t)len : 1)) == NULL)
                break;
            o->id = id;
            o->attempts = (unsigned)attempts;
            o->len = (size_t)len;
            memcpy(o->payload, PQgetvalue(r, i, 2), (size_t)len);
            int dl = PQgetlength(r, i, 1);
            snprintf(o->device, sizeof o->device, "%.*s", dl, PQgetvalue(r, i, 1));
            n++;
        }
    }
    PQclear(r);
    if (!claim_done(c, ok)) { /* not claimed after all: another gateway may take them */
        for (size_t i = 0; i < n; i++)
            outbox_row_free(&out[i]);
        return 0;
    }
    return n;
}

bool obpg_delete(obpg_t *c, int64_t id, bool *out_gone)
{
    *out_gone = false;
    param p = {{0}};
    const char *val[] = {i64p(&p, id)};
    if (!ready(c))
        return false;
    PGresult *r = run(c, "DELETE FROM outbox WHERE id = $1", 1, val, NULL, NULL);
    bool ok = PQresultStatus(r) == PGRES_COMMAND_OK;
    *out_gone = ok && strcmp(PQcmdTuples(r), "1") == 0;
    PQclear(r);
    return ok;
}

bool obpg_retry(obpg_t *c, int64_t id, unsigned attempts, uint64_t next_try_ms, uint32_t lease_ms)
{
    /* A sender that retries its row renews its claim; one whose claim another gateway took
     * over leaves the row to it. */
    param pi = {{0}}, pa = {{0}}, pn = {{0}}, pl = {{0}};
    const char *val[] = {i64p(&pi, id), i64p(&pa, attempts), i64p(&pn, (int64_t)next_try_ms),
                         i64p(&pl, lease_ms), c->gateway};
    return ready(c) &&
           command_ok(run(c,
                          "UPDATE outbox SET attempts = $2::int, next_try_ms = $3,"
                          " claimed_until = now() + $4::float8 * interval '1 millisecond'"
                          " WHERE id = $1 AND claimed_by = $5",
                          5, val, NULL, NULL));
}

int obpg_hold(obpg_t *c, const char *lane, int64_t id, uint32_t lease_ms)
{
    if (!claim_turn(c, lane))
        return -1;
    param pi = {{0}}, pl = {{0}};
    const char *val[] = {i64p(&pi, id), i64p(&pl, lease_ms), c->gateway};
    PGresult *r =
        run(c,
            "UPDATE outbox SET claimed_until = now() + $2::float8 * interval '1 millisecond'"
            " WHERE id = $1 AND claimed_by = $3 AND NOT parked",
            3, val, NULL, NULL);
    int held = PQresultStatus(r) != PGRES_COMMAND_OK ? -1 : strcmp(PQcmdTuples(r), "1") == 0;
    PQclear(r);
    return claim_done(c, held >= 0) ? held : -1;
}

bool obpg_park(obpg_t *c, int64_t id)
{
    param p = {{0}};
    const char *val[] = {i64p(&p, id)};
    return ready(c) && command_ok(run(c,
                                      "UPDATE outbox SET parked = true, claimed_by = NULL,"
                                      " claimed_until = NULL WHERE id = $1",
                                      1, val, NULL, NULL));
}
