/* SPDX-License-Identifier: Apache-2.0 */
/* store_pg.c -- the gateway's durable store on PostgreSQL (libpq), which several gateways
 * share: the same journal, replay states and retired spaces as the SQLite store, a sink
 * checkpoint per gateway, and each device's row locked by the transaction that takes its
 * batch in, so that two gateways never both deliver one number. */
#include <libpq-fe.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/detail.h"
#include "gateway/store.h"
#include "gateway/store_codec.h"
#include "gateway/store_pg.h"

/* Every migration in order; schema_version holds the number of the last one applied. A store
 * whose schema is newer than this list was written by a newer medwire and is refused. */
static const char *const MIGRATIONS[] = {
    /* 1: the journal keyed by (device, space, seq); a device's replay state (NULL until its
     * first commit: the row exists earlier only to be locked) and command id counter; the
     * spaces devices left; each gateway's sink checkpoint. */
    "CREATE TABLE devices(id text PRIMARY KEY, replay bytea,"
    " next_command bigint NOT NULL DEFAULT 0,"
    " updated_at timestamptz NOT NULL DEFAULT now());"
    "CREATE TABLE messages(device text NOT NULL, space bigint NOT NULL, seq bigint NOT NULL,"
    " received_ms bigint NOT NULL, type integer NOT NULL, batch bytea NOT NULL,"
    " PRIMARY KEY(device, space, seq));"
    "CREATE TABLE spaces(device text NOT NULL, space bigint NOT NULL,"
    " retired_ms bigint NOT NULL, PRIMARY KEY(device, space));"
    "CREATE TABLE checkpoints(gateway text PRIMARY KEY, sink_checkpoint bigint NOT NULL,"
    " updated_at timestamptz NOT NULL DEFAULT now());",
    /* 2: the commands waiting for a device's answer, so that whichever gateway the device
     * talks to next sends them (NULL: none). */
    "ALTER TABLE devices ADD COLUMN commands bytea;",
    /* 3: the certificates the gateways issued over EST, whichever gateway the device renewed
     * through. */
    "CREATE TABLE certificates(device text NOT NULL, serial text NOT NULL,"
    " replaces text NOT NULL, not_before bigint NOT NULL, not_after bigint NOT NULL,"
    " issued_ms bigint NOT NULL, cert bytea NOT NULL, PRIMARY KEY(device, serial));",
};
#define SCHEMA_VERSION ((int)(sizeof MIGRATIONS / sizeof MIGRATIONS[0]))

/* The advisory lock that serialises migrations between gateways starting together: "mwst". */
#define MIGRATION_LOCK "1836544884"

/* Each gateway's checkpoint row is keyed by a name of at most this many bytes. */
#define INSTANCE_MAX 128

/* Journal rows staged for one INSERT: a statement per message would cost a round trip to the
 * server each, which a commit of many devices' batches cannot afford. */
#define PENDING_MAX 512u
#define ROW_PARAMS  6u
/* Device rows likewise: id, replay state, command counter, pending commands. */
#define DEVICE_PARAMS 4u

typedef struct pending_row {
    char device[MW_ID_MAX + 1];
    uint64_t space, seq, received_ms, type;
    uint8_t batch[MWI_JOURNAL_MAX];
    size_t len;
} pending_row;

typedef struct pg_batch pg_batch;

/* A parameter in PostgreSQL's binary array format, built by arr_*: a buffer kept (and grown)
 * across commits. */
typedef struct pg_array {
    uint8_t *buf;
    size_t len, cap;
    uint32_t n;  /* elements */
    bool failed; /* out of memory: the statement is not sent */
} pg_array;

struct mwi_pg_store {
    PGconn *conn;
    pg_batch *batch; /* journal rows staged in the open transaction, and the statement's room */
    size_t nrows, ndevices;
    bool txn;
    bool begin_pending; /* BEGIN goes with the transaction's first statement, in one round trip */
    size_t piped;       /* statements sent in the open pipeline */
    bool pipe_failed;   /* one of them could not be sent */
    bool was_reset;     /* the last pipeline found the connection gone and made it again */
    bool conflict;      /* a statement of the open transaction failed with SQLSTATE class 40 */
    char instance[INSTANCE_MAX + 1];
    char where[160]; /* the URL without its password, for error messages */
};

/* One line of libpq's message, which names the server but never the password. */
static mw_err fail(const mwi_pg_store *s, mw_error_detail_t *d, const char *what)
{
    const char *msg = s->conn ? PQerrorMessage(s->conn) : "out of memory";
    size_t n = strcspn(msg, "\n");
    return mwi_detail_firstf(d, MW_EIO, 0, "gateway store %s: %s: %.*s", s->where, what,
                             (int)(n > 120 ? 120 : n), msg);
}

/* A statement whose result is not needed; false unless it did what it says. */
static bool exec_ok(PGconn *c, const char *sql)
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

/* Every session: a commit returns once it is durable (whatever the server's default), and
 * READ COMMITTED, under which a row lock waits for the holder's commit and then reads what it
 * committed (docs/deployment.md). */
static bool session_setup(PGconn *c)
{
    return PQstatus(c) == CONNECTION_OK &&
           exec_ok(c, "SET synchronous_commit = on;"
                      " SET default_transaction_isolation = 'read committed'");
}

/* The statements every poll runs, parsed and planned once per connection (the tables exist
 * from the migration on): the device rows' locks, and the checkpoint. */
#define LOCK_DEVICE    "mw_lock_device"
#define LOCK_DEVICES   "mw_lock_devices"
#define PUT_CHECKPOINT "mw_put_checkpoint"
#define PUT_MESSAGES   "mw_put_messages"
#define PUT_DEVICES    "mw_put_devices"

static bool prepared(PGconn *c, const char *name, const char *sql, int n)
{
    PGresult *r = PQprepare(c, name, sql, n, NULL);
    bool ok = PQresultStatus(r) == PGRES_COMMAND_OK;
    PQclear(r);
    return ok;
}

static bool prepare(PGconn *c)
{
    return prepared(c, LOCK_DEVICE,
                    "SELECT replay, next_command, commands FROM devices WHERE id = $1 FOR UPDATE",
                    1) &&
           prepared(c, LOCK_DEVICES,
                    "SELECT id, replay, next_command, commands FROM devices"
                    " WHERE id = ANY($1::text[]) ORDER BY id FOR UPDATE",
                    1) &&
           prepared(c, PUT_CHECKPOINT,
                    "INSERT INTO checkpoints(gateway, sink_checkpoint) VALUES($1, $2)"
                    " ON CONFLICT (gateway) DO UPDATE SET"
                    " sink_checkpoint = excluded.sink_checkpoint, updated_at = now()",
                    2) &&
           /* Staged rows go as one array per column: the statement is the same whatever their
            * number, parsed and planned once per connection rather than once per commit. */
           prepared(c, PUT_MESSAGES,
                    "INSERT INTO messages(device, space, seq, received_ms, type, batch)"
                    " SELECT * FROM unnest($1::text[], $2::int8[], $3::int8[], $4::int8[],"
                    " $5::int4[], $6::bytea[]) ON CONFLICT DO NOTHING",
                    ROW_PARAMS) &&
           prepared(c, PUT_DEVICES,
                    "INSERT INTO devices(id, replay, next_command, commands)"
                    " SELECT * FROM unnest($1::text[], $2::bytea[], $3::int8[], $4::bytea[])"
                    " ON CONFLICT (id) DO UPDATE SET replay = excluded.replay,"
                    " next_command = excluded.next_command, commands = excluded.commands,"
                    " updated_at = now()",
                    DEVICE_PARAMS);
}

/* A new connection (at open, after the migration; after a reset). */
static bool session_ready(PGconn *c)
{
    return session_setup(c) && prepare(c);
}

/* After the server went away: one reconnection, made when the next transaction starts (so a
 * gateway recovers without restarting; until then its commits fail and nothing is
 * acknowledged). */
static bool connected(mwi_pg_store *s)
{
    if (PQstatus(s->conn) == CONNECTION_OK)
        return true;
    PQreset(s->conn);
    return session_ready(s->conn);
}

/* Integers travel as text both ways in parameters; 64-bit numbers above 2^63 keep their bit
 * pattern in a bigint. */
typedef struct param {
    char text[24];
} param;

/* Per store, not static: a process may run several gateways, each with its store. */
/* Device rows (replay state, command counter, pending commands) staged likewise, written at
 * the commit. */
#define DEVICES_MAX 256u

typedef struct pending_device {
    char id[MW_ID_MAX + 1];
    uint8_t replay[MWI_REPLAY_BLOB_MAX];
    size_t len;
    uint64_t next_command;
    uint8_t commands[MWI_COMMANDS_BLOB_MAX];
    size_t commands_len; /* 0: none pending, NULL in the row */
} pending_device;

struct pg_batch {
    pending_row rows[PENDING_MAX];
    pending_device devices[DEVICES_MAX];
    /* The statements' parameters: one array per column, the journal's then the devices'
     * (both may be in one pipeline, whose parameters libpq copies as each is sent). */
    pg_array cols[ROW_PARAMS + DEVICE_PARAMS];
};

/* PostgreSQL's OIDs of the element types (catalog/pg_type.h, stable across versions). */
enum { OID_BYTEA = 17, OID_INT8 = 20, OID_INT4 = 23, OID_TEXT = 25 };

static void arr_bytes(pg_array *a, const void *p, size_t n)
{
    if (a->failed)
        return;
    if (a->len + n > a->cap) {
        size_t cap = a->cap ? a->cap : 4096;
        while (cap < a->len + n)
            cap *= 2;
        uint8_t *buf = cap <= INT32_MAX ? realloc(a->buf, cap) : NULL;
        if (buf == NULL) {
            a->failed = true;
            return;
        }
        a->buf = buf;
        a->cap = cap;
    }
    memcpy(a->buf + a->len, p, n);
    a->len += n;
}

static void be32(uint8_t *b, uint32_t v)
{
    b[0] = (uint8_t)(v >> 24);
    b[1] = (uint8_t)(v >> 16);
    b[2] = (uint8_t)(v >> 8);
    b[3] = (uint8_t)v;
}

static void arr_u32(pg_array *a, uint32_t v)
{
    uint8_t b[4];
    be32(b, v);
    arr_bytes(a, b, sizeof b);
}

/* A one-dimensional array in the binary format the server reads (array_recv): dimensions,
 * whether any element is NULL, the element type, the length and lower bound; then each
 * element as its length (-1: NULL) and its bytes; all integers big-endian. */
static void arr_start(pg_array *a, uint32_t oid)
{
    a->len = 0;
    a->n = 0;
    a->failed = false;
    arr_u32(a, 1);   /* dimensions */
    arr_u32(a, 0);   /* has NULLs: set by arr_null */
    arr_u32(a, oid); /* element type */
    arr_u32(a, 0);   /* length: set by arr_end */
    arr_u32(a, 1);   /* lower bound */
}

static void arr_put(pg_array *a, const void *p, size_t n)
{
    arr_u32(a, (uint32_t)n);
    arr_bytes(a, p, n);
    a->n++;
}

static void arr_null(pg_array *a)
{
    arr_u32(a, UINT32_MAX);
    if (!a->failed)
        be32(a->buf + 4, 1);
    a->n++;
}

static void arr_i64(pg_array *a, uint64_t v)
{
    uint8_t b[8];
    be32(b, (uint32_t)(v >> 32));
    be32(b + 4, (uint32_t)v);
    arr_put(a, b, sizeof b);
}

static void arr_i32(pg_array *a, uint32_t v)
{
    uint8_t b[4];
    be32(b, v);
    arr_put(a, b, sizeof b);
}

/* False when memory ran out on the way. */
static bool arr_end(pg_array *a)
{
    if (a->failed)
        return false;
    be32(a->buf + 12, a->n);
    return true;
}

/* The parameters of a statement taking @p n of the arrays from @p first. */
static bool arr_params(pg_array *first, size_t n, const char **val, int *lens, int *fmts)
{
    for (size_t i = 0; i < n; i++) {
        if (!arr_end(&first[i]))
            return false;
        val[i] = (const char *)first[i].buf;
        lens[i] = (int)first[i].len;
        fmts[i] = 1;
    }
    return true;
}

static const char *u64p(param *p, uint64_t v)
{
    snprintf(p->text, sizeof p->text, "%lld", (long long)(int64_t)v);
    return p->text;
}

/* Results come in binary: an int8 is exactly 8 bytes, big endian; anything else is refused. */
static bool get_u64(const PGresult *r, int row, int col, uint64_t *out)
{
    if (PQgetisnull(r, row, col) || PQgetlength(r, row, col) != 8)
        return false;
    const uint8_t *p = (const uint8_t *)PQgetvalue(r, row, col);
    uint64_t v = 0;
    for (int i = 0; i < 8; i++)
        v = (v << 8) | p[i];
    *out = v;
    return true;
}

/* Class 40, transaction rollback: the server broke the transaction off to resolve a conflict
 * with another session (40P01 deadlock, 40001 serialization failure). */
static void note_conflict(mwi_pg_store *s, const PGresult *r)
{
    const char *state = PQresultErrorField(r, PG_DIAG_SQLSTATE);
    if (PQresultStatus(r) == PGRES_FATAL_ERROR && state && strncmp(state, "40", 2) == 0)
        s->conflict = true;
}

/* A pipeline (libpq's pipeline mode): statements sent one after the other without waiting,
 * answered together after one sync -- one round trip where a statement each would take one
 * each, which a transaction per poll cannot afford. The transaction's BEGIN, when it is still
 * to be sent, goes first. */
static void pipe_open(mwi_pg_store *s)
{
    s->piped = 0;
    s->pipe_failed = PQenterPipelineMode(s->conn) != 1;
    if (!s->pipe_failed && s->begin_pending) {
        s->begin_pending = false;
        if (PQsendQueryParams(s->conn, "BEGIN", 0, NULL, NULL, NULL, NULL, 1) == 1)
            s->piped++;
        else
            s->pipe_failed = true;
    }
}

/* A statement prepared at connection (prepare) goes by its name, which starts "mw_"; any
 * other is SQL. */
static bool is_prepared(const char *sql_or_name)
{
    return strncmp(sql_or_name, "mw_", 3) == 0;
}

static void pipe_send(mwi_pg_store *s, const char *sql, int n, const char *const *values,
                      const int *lengths, const int *formats)
{
    if (s->pipe_failed)
        return;
    int sent = is_prepared(sql)
                   ? PQsendQueryPrepared(s->conn, sql, n, values, lengths, formats, 1)
                   : PQsendQueryParams(s->conn, sql, n, NULL, values, lengths, formats, 1);
    if (sent == 1)
        s->piped++;
    else
        s->pipe_failed = true;
}

/* Syncs and reads every answer in order: *ok false unless each statement before the last
 * succeeded; returns the last one's result (the caller clears it), NULL if none came. After a
 * failed statement the server skips the rest (PGRES_PIPELINE_ABORTED) up to the sync. */
static PGresult *pipe_close(mwi_pg_store *s, bool *ok)
{
    PGresult *last = NULL;
    bool in_step = !s->pipe_failed && PQpipelineSync(s->conn) == 1;
    *ok = in_step;
    for (size_t i = 0; in_step && i < s->piped; i++) {
        PGresult *r = PQgetResult(s->conn);
        if (r == NULL) {
            in_step = false;
            break;
        }
        note_conflict(s, r);
        while (PQgetResult(s->conn) != NULL) /* each statement's answer ends with a NULL */
            ;
        if (i + 1 == s->piped) {
            last = r;
        } else {
            ExecStatusType st = PQresultStatus(r);
            *ok = *ok && (st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK);
            PQclear(r);
        }
    }
    if (in_step) {
        PGresult *sync = PQgetResult(s->conn);
        in_step = sync != NULL && PQresultStatus(sync) == PGRES_PIPELINE_SYNC;
        PQclear(sync);
    }
    in_step = in_step && PQexitPipelineMode(s->conn) == 1;
    if (!in_step) {
        /* Out of step with the server (or no longer connected): the connection is made again
         * now, and what this transaction held the server rolls back as the old one goes. */
        *ok = false;
        PQclear(last);
        last = NULL;
        PQreset(s->conn);
        s->was_reset = session_ready(s->conn);
    }
    s->piped = 0;
    return last;
}

/* One statement. The first of a transaction carries its BEGIN in a pipeline; if that finds the
 * connection gone (the server restarted since the last transaction), nothing was in the
 * transaction yet, so it is made again once and the statement sent again. */
static PGresult *run(mwi_pg_store *s, const char *sql, int n, const char *const *values,
                     const int *lengths, const int *formats)
{
    if (!s->begin_pending) {
        PGresult *r = is_prepared(sql)
                          ? PQexecPrepared(s->conn, sql, n, values, lengths, formats, 1)
                          : PQexecParams(s->conn, sql, n, NULL, values, lengths, formats, 1);
        note_conflict(s, r);
        return r;
    }
    for (int attempt = 0;; attempt++) {
        s->was_reset = false;
        pipe_open(s);
        pipe_send(s, sql, n, values, lengths, formats);
        bool ok = false;
        PGresult *r = pipe_close(s, &ok);
        if (r != NULL || attempt == 1 || !s->was_reset)
            return r ? r : PQmakeEmptyPGresult(s->conn, PGRES_FATAL_ERROR);
        s->begin_pending = true;
    }
}

bool mwi_pg_take_conflict(mwi_pg_store *s)
{
    bool c = s->conflict;
    s->conflict = false;
    return c;
}

static bool command_ok(PGresult *r)
{
    bool ok = PQresultStatus(r) == PGRES_COMMAND_OK;
    PQclear(r);
    return ok;
}

/* Brings the schema up to SCHEMA_VERSION in one transaction. The advisory lock makes a second
 * gateway starting at the same moment wait, then find the work done. */
static mw_err migrate(mwi_pg_store *s, mw_error_detail_t *d)
{
    if (!exec_ok(s->conn, "BEGIN") ||
        !exec_ok(s->conn, "SELECT pg_advisory_xact_lock(" MIGRATION_LOCK ")") ||
        !exec_ok(s->conn, "CREATE TABLE IF NOT EXISTS schema_version(version integer PRIMARY KEY,"
                          " applied_at timestamptz NOT NULL DEFAULT now())")) {
        mw_err e = fail(s, d, "cannot set up the schema");
        (void)exec_ok(s->conn, "ROLLBACK");
        return e;
    }
    PGresult *r =
        run(s, "SELECT coalesce(max(version), 0)::int8 FROM schema_version", 0, NULL, NULL, NULL);
    uint64_t have = 0;
    bool ok = PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) == 1 && get_u64(r, 0, 0, &have);
    PQclear(r);
    if (!ok) {
        mw_err e = fail(s, d, "cannot read the schema version");
        (void)exec_ok(s->conn, "ROLLBACK");
        return e;
    }
    if (have > (uint64_t)SCHEMA_VERSION) {
        (void)exec_ok(s->conn, "ROLLBACK");
        return mwi_detail_firstf(d, MW_EIO, 0,
                                 "gateway store %s: its schema (version %llu) was written by a "
                                 "newer medwire, which knows version %d at most: run that one",
                                 s->where, (unsigned long long)have, SCHEMA_VERSION);
    }
    /* Migration i brings the schema to version i + 1. */
    for (size_t i = (size_t)have; i < (size_t)SCHEMA_VERSION; i++) {
        param p = {{0}};
        const char *val[] = {u64p(&p, (uint64_t)i + 1)};
        if (!exec_ok(s->conn, MIGRATIONS[i]) ||
            !command_ok(run(s, "INSERT INTO schema_version(version) VALUES($1::int)", 1, val, NULL,
                            NULL))) {
            char what[48];
            snprintf(what, sizeof what, "cannot apply schema migration %zu", i + 1);
            mw_err e = fail(s, d, what);
            (void)exec_ok(s->conn, "ROLLBACK");
            return e;
        }
    }
    r = PQexec(s->conn, "COMMIT");
    ok = PQresultStatus(r) == PGRES_COMMAND_OK && strcmp(PQcmdStatus(r), "COMMIT") == 0;
    PQclear(r);
    return ok ? MW_OK : fail(s, d, "cannot commit the schema");
}

mw_err mwi_pg_open(const char *url, const char *instance, mwi_pg_store **out, mw_error_detail_t *d)
{
    *out = NULL;
    if (instance == NULL)
        instance = "";
    if (strlen(instance) > INSTANCE_MAX)
        return mwi_detail_fail(d, MW_EINVAL, "gateway store: the gateway id is too long");
    mwi_pg_store *s = calloc(1, sizeof *s);
    if (s == NULL)
        return MW_ENOMEM;
    s->batch = calloc(1, sizeof *s->batch);
    if (s->batch == NULL) {
        free(s);
        return MW_ENOMEM;
    }
    snprintf(s->instance, sizeof s->instance, "%s", instance);
    mwi_store_redact(url, s->where, sizeof s->where);
    /* Defaults the URL may override (it comes after them): a server that does not answer
     * fails a connection within seconds rather than hanging the gateway. */
    const char *const keys[] = {"connect_timeout", "application_name", "dbname", NULL};
    const char *const vals[] = {"5", "medwire-gateway", url, NULL};
    s->conn = PQconnectdbParams(keys, vals, 1);
    if (s->conn != NULL)
        (void)PQsetNoticeProcessor(s->conn, no_notices, NULL);
    mw_err e = MW_OK;
    if (s->conn == NULL || PQstatus(s->conn) != CONNECTION_OK)
        e = fail(s, d, "cannot connect");
    else if (!session_setup(s->conn))
        e = fail(s, d, "cannot set up the session");
    else if ((e = migrate(s, d)) == MW_OK && !prepare(s->conn))
        e = fail(s, d, "cannot prepare statements");
    if (e != MW_OK) {
        mwi_pg_close(&s);
        return e;
    }
    *out = s;
    return MW_OK;
}

void mwi_pg_close(mwi_pg_store **ps)
{
    if (ps == NULL || *ps == NULL)
        return;
    mwi_pg_store *s = *ps;
    if (s->txn)
        mwi_pg_rollback(s);
    PQfinish(s->conn);
    for (size_t i = 0; i < ROW_PARAMS + DEVICE_PARAMS; i++)
        free(s->batch->cols[i].buf);
    free(s->batch);
    free(s);
    *ps = NULL;
}

/* The device's row: its replay state decoded and checked, its command id counter, its pending
 * commands. */
/* Row @p row's replay state (column @p col, NULL: none yet, *found false), command id
 * counter and pending commands (the two columns after it), each checked before use. */
static mw_err read_row(const PGresult *r, int row, int col, mwi_replay *out,
                       uint64_t *out_next_command, mw_command_t cmds[MWI_MAX_COMMANDS],
                       uint8_t *ncmds, bool *found)
{
    *found = false;
    if (PQgetisnull(r, row, col))
        return MW_OK; /* locked by a gateway that had not committed its state yet */
    uint64_t next = 0;
    if (!get_u64(r, row, col + 1, &next))
        return MW_EIO;
    mw_command_t c[MWI_MAX_COMMANDS];
    uint8_t nc = 0;
    int cn = PQgetlength(r, row, col + 2);
    if (!PQgetisnull(r, row, col + 2) &&
        (cn <= 0 || cn > MWI_COMMANDS_BLOB_MAX ||
         !mwi_commands_blob_decode((const uint8_t *)PQgetvalue(r, row, col + 2), (size_t)cn, c,
                                   &nc)))
        return MW_EIO;
    mwi_replay *rp = malloc(sizeof *rp);
    if (rp == NULL)
        return MW_ENOMEM;
    int n = PQgetlength(r, row, col);
    bool ok = n > 0 && n <= MWI_REPLAY_BLOB_MAX &&
              mwi_replay_blob_decode((const uint8_t *)PQgetvalue(r, row, col), (size_t)n, rp);
    if (ok) {
        *out = *rp;
        *out_next_command = next;
        if (cmds) {
            memcpy(cmds, c, nc * sizeof c[0]);
            *ncmds = nc;
        }
        *found = true;
    }
    free(rp);
    return ok ? MW_OK : MW_EIO;
}

/* The device's row (or none: a new device). */
static mw_err read_device(PGresult *r, mwi_replay *out, uint64_t *out_next_command,
                          mw_command_t cmds[MWI_MAX_COMMANDS], uint8_t *ncmds, bool *found)
{
    *found = false;
    if (PQresultStatus(r) != PGRES_TUPLES_OK || PQnfields(r) != 3)
        return MW_EIO;
    if (PQntuples(r) == 0)
        return MW_OK;
    return read_row(r, 0, 0, out, out_next_command, cmds, ncmds, found);
}

static mw_err flush_devices(mwi_pg_store *s, bool piped);

mw_err mwi_pg_load_device(mwi_pg_store *s, const char *id, mwi_replay *out,
                          uint64_t *out_next_command, mw_command_t cmds[MWI_MAX_COMMANDS],
                          uint8_t *ncmds, bool *found)
{
    *found = false;
    if (!s->txn && !connected(s))
        return MW_EIO;
    if (flush_devices(s, false) != MW_OK) /* what this transaction staged is what it must read */
        return MW_EIO;
    const char *val[] = {id};
    PGresult *r = run(s, "SELECT replay, next_command, commands FROM devices WHERE id = $1", 1, val,
                      NULL, NULL);
    mw_err e = read_device(r, out, out_next_command, cmds, ncmds, found);
    PQclear(r);
    return e;
}

mw_err mwi_pg_lock_device(mwi_pg_store *s, const char *id, mwi_replay *out,
                          uint64_t *out_next_command, mw_command_t cmds[MWI_MAX_COMMANDS],
                          uint8_t *ncmds, bool *found)
{
    *found = false;
    mw_err e = mwi_pg_begin(s);
    if (e == MW_OK && flush_devices(s, false) != MW_OK)
        e = MW_EIO;
    if (e != MW_OK)
        return e;
    const char *val[] = {id};
    static const char lock[] = LOCK_DEVICE;
    PGresult *r = run(s, lock, 1, val, NULL, NULL);
    if (PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) == 0) {
        /* A device no gateway has seen: its row is made now, empty, so that there is something
         * to lock; a second gateway's insert waits for this transaction, then does nothing. */
        PQclear(r);
        if (!command_ok(run(s, "INSERT INTO devices(id) VALUES($1) ON CONFLICT (id) DO NOTHING", 1,
                            val, NULL, NULL)))
            return MW_EIO;
        r = run(s, lock, 1, val, NULL, NULL);
    }
    e = read_device(r, out, out_next_command, cmds, ncmds, found);
    PQclear(r);
    return e;
}

/* {"id1","id2",...}: ids in a text array literal, each quoted (device ids are checked before
 * they get here, but a quote or a backslash would still be escaped). */
static bool id_array(const char *const *ids, size_t n, char *out, size_t cap)
{
    size_t at = 0;
    if (cap < 3)
        return false;
    out[at++] = '{';
    for (size_t i = 0; i < n; i++) {
        if (i && at < cap)
            out[at++] = ',';
        if (at < cap)
            out[at++] = '"';
        for (const char *c = ids[i]; *c && at + 2 < cap; c++) {
            if (*c == '"' || *c == '\\')
                out[at++] = '\\';
            out[at++] = *c;
        }
        if (at < cap)
            out[at++] = '"';
    }
    if (at + 2 > cap)
        return false;
    out[at++] = '}';
    out[at] = '\0';
    return true;
}

mw_err mwi_pg_lock_devices(mwi_pg_store *s, const char *const *ids, size_t n, mwi_store_row_fn *row,
                           void *ctx)
{
    if (n == 0)
        return MW_OK;
    if (n > MWI_STORE_LOCK_MAX)
        return MW_EINVAL;
    mw_err e = mwi_pg_begin(s);
    if (e == MW_OK && flush_devices(s, false) != MW_OK)
        e = MW_EIO;
    if (e != MW_OK)
        return e;
    /* Each id at most MW_ID_MAX bytes, doubled if every one were escaped, quoted, a comma. */
    enum { ARRAY_MAX = 2 + MWI_STORE_LOCK_MAX * (2 * MW_ID_MAX + 3) };
    char *array = malloc(ARRAY_MAX);
    if (array == NULL)
        return MW_ENOMEM;
    if (!id_array(ids, n, array, ARRAY_MAX)) {
        free(array);
        return MW_EINVAL;
    }
    const char *val[] = {array};
    PGresult *r = run(s, LOCK_DEVICES, 1, val, NULL, NULL);
    free(array);
    e = PQresultStatus(r) == PGRES_TUPLES_OK && PQnfields(r) == 4 ? MW_OK : MW_EIO;
    mwi_replay *rp = e == MW_OK ? malloc(sizeof *rp) : NULL;
    if (e == MW_OK && rp == NULL)
        e = MW_ENOMEM;
    for (int i = 0; e == MW_OK && i < PQntuples(r); i++) {
        const char *id = PQgetvalue(r, i, 0);
        size_t k = 0;
        while (k < n && strcmp(ids[k], id) != 0)
            k++;
        if (k == n) {
            e = MW_EIO; /* a row the statement was not asked for */
            break;
        }
        mw_command_t cmds[MWI_MAX_COMMANDS];
        uint8_t ncmds = 0;
        uint64_t next = 0;
        bool found = false;
        e = read_row(r, i, 1, rp, &next, cmds, &ncmds, &found);
        if (e == MW_OK)
            row(ctx, k, found ? rp : NULL, next, cmds, ncmds);
    }
    free(rp);
    PQclear(r);
    return e;
}

mw_err mwi_pg_checkpoint(mwi_pg_store *s, uint64_t *out)
{
    *out = 0;
    if (!s->txn && !connected(s))
        return MW_EIO;
    const char *val[] = {s->instance};
    PGresult *r =
        run(s, "SELECT sink_checkpoint FROM checkpoints WHERE gateway = $1", 1, val, NULL, NULL);
    bool ok = PQresultStatus(r) == PGRES_TUPLES_OK &&
              (PQntuples(r) == 0 || (PQntuples(r) == 1 && get_u64(r, 0, 0, out)));
    PQclear(r);
    return ok ? MW_OK : MW_EIO;
}

mw_err mwi_pg_begin(mwi_pg_store *s)
{
    if (s->txn)
        return MW_OK;
    s->conflict = false;
    /* Sent with the first statement (run, mwi_pg_commit), which also notices a server that
     * restarted since the last transaction. */
    if (!connected(s))
        return MW_EIO;
    s->txn = true;
    s->begin_pending = true;
    return MW_OK;
}

/* The staged journal rows, in one statement; with @p piped, sent into the open pipeline. */
static mw_err flush_rows(mwi_pg_store *s, bool piped)
{
    if (s->nrows == 0)
        return MW_OK;
    pg_array *c = s->batch->cols;
    static const uint32_t oids[ROW_PARAMS] = {OID_TEXT, OID_INT8, OID_INT8,
                                              OID_INT8, OID_INT4, OID_BYTEA};
    for (size_t j = 0; j < ROW_PARAMS; j++)
        arr_start(&c[j], oids[j]);
    for (size_t i = 0; i < s->nrows; i++) {
        const pending_row *r = &s->batch->rows[i];
        arr_put(&c[0], r->device, strlen(r->device));
        arr_i64(&c[1], r->space);
        arr_i64(&c[2], r->seq);
        arr_i64(&c[3], r->received_ms);
        arr_i32(&c[4], (uint32_t)r->type);
        arr_put(&c[5], r->batch, r->len);
    }
    const char *val[ROW_PARAMS];
    int lens[ROW_PARAMS], fmts[ROW_PARAMS];
    if (!arr_params(c, ROW_PARAMS, val, lens, fmts))
        return MW_ENOMEM;
    if (piped) { /* still staged: the commit may send them again */
        pipe_send(s, PUT_MESSAGES, ROW_PARAMS, val, lens, fmts);
        return MW_OK;
    }
    s->nrows = 0;
    return command_ok(run(s, PUT_MESSAGES, ROW_PARAMS, val, lens, fmts)) ? MW_OK : MW_EIO;
}

mw_err mwi_pg_put_message(mwi_pg_store *s, const mw_message_t *m, uint64_t received_ms)
{
    /* Staged rows are written by the commit of a transaction; one is begun here so that a row
     * is never staged where no commit will write it (a commit without a transaction succeeds
     * and writes nothing). */
    if (mwi_pg_begin(s) != MW_OK)
        return MW_EIO;
    if (s->nrows == PENDING_MAX && flush_rows(s, false) != MW_OK)
        return MW_EIO;
    pending_row *r = &s->batch->rows[s->nrows];
    if (mwi_journal_encode(m, r->batch, &r->len) != MW_OK)
        return MW_EINVAL;
    snprintf(r->device, sizeof r->device, "%s", m->device_id);
    r->space = m->space;
    r->seq = m->seq;
    r->received_ms = received_ms;
    r->type = (uint64_t)m->type;
    s->nrows++;
    return MW_OK;
}

/* The staged device rows, in one statement (each device at most once: a second put of the
 * same device replaces its staged row); with @p piped, sent into the open pipeline. */
static mw_err flush_devices(mwi_pg_store *s, bool piped)
{
    if (s->ndevices == 0)
        return MW_OK;
    pg_array *c = s->batch->cols + ROW_PARAMS;
    arr_start(&c[0], OID_TEXT);
    arr_start(&c[1], OID_BYTEA);
    arr_start(&c[2], OID_INT8);
    arr_start(&c[3], OID_BYTEA);
    for (size_t i = 0; i < s->ndevices; i++) {
        const pending_device *d = &s->batch->devices[i];
        arr_put(&c[0], d->id, strlen(d->id));
        arr_put(&c[1], d->replay, d->len);
        arr_i64(&c[2], d->next_command);
        if (d->commands_len) /* none pending: NULL */
            arr_put(&c[3], d->commands, d->commands_len);
        else
            arr_null(&c[3]);
    }
    const char *val[DEVICE_PARAMS];
    int lens[DEVICE_PARAMS], fmts[DEVICE_PARAMS];
    if (!arr_params(c, DEVICE_PARAMS, val, lens, fmts))
        return MW_ENOMEM;
    if (piped) { /* as flush_rows */
        pipe_send(s, PUT_DEVICES, DEVICE_PARAMS, val, lens, fmts);
        return MW_OK;
    }
    s->ndevices = 0;
    return command_ok(run(s, PUT_DEVICES, DEVICE_PARAMS, val, lens, fmts)) ? MW_OK : MW_EIO;
}

mw_err mwi_pg_put_device(mwi_pg_store *s, const char *id, const mwi_replay *r,
                         uint64_t next_command, const mw_command_t *cmds, size_t ncmds)
{
    uint8_t cb[MWI_COMMANDS_BLOB_MAX];
    size_t clen = ncmds ? mwi_commands_blob_encode(cmds, ncmds, cb) : 0;
    if (ncmds && clen == 0)
        return MW_EINVAL;
    if (mwi_pg_begin(s) != MW_OK) /* as mwi_pg_put_message */
        return MW_EIO;
    pending_device *d = NULL;
    for (size_t i = 0; i < s->ndevices && d == NULL; i++)
        if (strcmp(s->batch->devices[i].id, id) == 0)
            d = &s->batch->devices[i];
    if (d == NULL) {
        if (s->ndevices == DEVICES_MAX && flush_devices(s, false) != MW_OK)
            return MW_EIO;
        d = &s->batch->devices[s->ndevices++];
        snprintf(d->id, sizeof d->id, "%s", id);
    }
    d->len = mwi_replay_blob_encode(r, d->replay);
    d->next_command = next_command;
    memcpy(d->commands, cb, clen);
    d->commands_len = clen;
    return MW_OK;
}

mw_err mwi_pg_retire_space(mwi_pg_store *s, const char *id, uint64_t space, uint64_t retired_ms)
{
    param sp = {{0}}, rm = {{0}};
    const char *val[] = {id, u64p(&sp, space), u64p(&rm, retired_ms)};
    return command_ok(run(s,
                          "INSERT INTO spaces(device, space, retired_ms) VALUES($1, $2, $3)"
                          " ON CONFLICT DO NOTHING",
                          3, val, NULL, NULL))
               ? MW_OK
               : MW_EIO;
}

mw_err mwi_pg_put_certificate(mwi_pg_store *s, const mwi_store_cert *c)
{
    param nb = {{0}}, na = {{0}}, at = {{0}};
    const char *val[] = {c->device,
                         c->serial,
                         c->replaces,
                         u64p(&nb, (uint64_t)c->not_before),
                         u64p(&na, (uint64_t)c->not_after),
                         u64p(&at, c->issued_ms),
                         (const char *)c->der};
    const int len[] = {0, 0, 0, 0, 0, 0, (int)c->len};
    const int fmt[] = {0, 0, 0, 0, 0, 0, 1}; /* the certificate as bytes */
    return command_ok(run(s,
                          "INSERT INTO certificates(device, serial, replaces, not_before,"
                          " not_after, issued_ms, cert) VALUES($1, $2, $3, $4, $5, $6, $7)"
                          " ON CONFLICT DO NOTHING",
                          7, val, len, fmt))
               ? MW_OK
               : MW_EIO;
}

mw_err mwi_pg_space_retired(mwi_pg_store *s, const char *id, uint64_t space, bool *out)
{
    *out = false;
    if (!s->txn && !connected(s))
        return MW_EIO;
    param sp = {{0}};
    const char *val[] = {id, u64p(&sp, space)};
    PGresult *r =
        run(s, "SELECT 1 FROM spaces WHERE device = $1 AND space = $2", 2, val, NULL, NULL);
    bool ok = PQresultStatus(r) == PGRES_TUPLES_OK;
    *out = ok && PQntuples(r) > 0;
    PQclear(r);
    return ok ? MW_OK : MW_EIO;
}

mw_err mwi_pg_commit(mwi_pg_store *s, uint64_t sink_checkpoint)
{
    if (!s->txn)
        return MW_OK;
    param ck = {{0}};
    const char *val[] = {s->instance, u64p(&ck, sink_checkpoint)};
    /* Journal rows, device rows, checkpoint and COMMIT in one round trip. If that carried the
     * BEGIN too and found the connection gone (a server restarted since the last transaction),
     * nothing of it had reached the server: it is sent once more on the new connection. */
    bool began_here = s->begin_pending, ok = false;
    for (int attempt = 0; attempt < (began_here ? 2 : 1) && !ok; attempt++) {
        s->was_reset = false;
        s->begin_pending = began_here;
        pipe_open(s);
        /* Rows it could not send (out of memory building their arrays) fail the whole
         * commit: what is not written must not be acknowledged. */
        if (flush_rows(s, true) != MW_OK || flush_devices(s, true) != MW_OK)
            s->pipe_failed = true;
        pipe_send(s, PUT_CHECKPOINT, 2, val, NULL, NULL);
        pipe_send(s, "COMMIT", 0, NULL, NULL, NULL);
        PGresult *r = pipe_close(s, &ok);
        /* A transaction that failed earlier "commits" as a ROLLBACK: only COMMIT is one. */
        ok = ok && PQresultStatus(r) == PGRES_COMMAND_OK && strcmp(PQcmdStatus(r), "COMMIT") == 0;
        PQclear(r);
        if (!ok && !s->was_reset)
            break;
    }
    s->nrows = 0;
    s->ndevices = 0;
    if (ok)
        s->txn = false;
    if (!ok) {
        mwi_pg_rollback(s);
        return MW_EIO;
    }
    return MW_OK;
}

void mwi_pg_rollback(mwi_pg_store *s)
{
    s->nrows = 0;
    s->ndevices = 0;
    /* A lost connection rolled back already; a BEGIN not sent yet has nothing to undo. */
    if (s->txn && !s->begin_pending && PQstatus(s->conn) == CONNECTION_OK)
        (void)exec_ok(s->conn, "ROLLBACK");
    s->txn = false;
    s->begin_pending = false;
}

bool mwi_pg_in_txn(const mwi_pg_store *s)
{
    return s->txn;
}

mw_err mwi_pg_count(mwi_pg_store *s, uint64_t *out)
{
    *out = 0;
    if (!s->txn && !connected(s))
        return MW_EIO;
    if (s->txn && flush_rows(s, false) != MW_OK)
        return MW_EIO;
    PGresult *r = run(s, "SELECT count(*) FROM messages", 0, NULL, NULL, NULL);
    bool ok = PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) == 1 && get_u64(r, 0, 0, out);
    PQclear(r);
    return ok ? MW_OK : MW_EIO;
}

bool mwi_pg_healthy(mwi_pg_store *s)
{
    if (s->txn)
        return PQstatus(s->conn) == CONNECTION_OK;
    return connected(s) && exec_ok(s->conn, "SELECT 1");
}
