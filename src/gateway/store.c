/* SPDX-License-Identifier: Apache-2.0 */
/* store.c -- the gateway's durable store (SQLite, WAL): accepted-message journal, per-device replay
 * state and pending commands, sink checkpoint. A store opened with a PostgreSQL URL is handed to
 * store_pg.c. */
#include <errno.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/detail.h"
#include "gateway/store.h"
#include "gateway/store_codec.h"
#include "port/posix/owned_file.h"
#ifdef MW_HAVE_LIBPQ
#include "gateway/store_pg.h"
#endif

/* 1: journal keyed by (device, seq). 2: messages keyed by (device, space, seq), retired
 * spaces, replay blob 2 with digests. 3: devices' pending commands. 4: certificates issued over
 * EST. An older store is upgraded in place at open: a version-1 journal stays as it was
 * (read-only history), its replay states read as space 0; a device row without commands has
 * none pending. An older gateway refuses a store of a newer version: it would not record what
 * the newer one does. */
#define SCHEMA_VERSION 4
struct mwi_store {
    sqlite3 *db;
    int lock_fd; /* holds the file's lock while the store is open; -1: in memory */
    sqlite3_stmt *get_dev, *put_dev, *put_msg, *get_meta, *put_meta, *put_space, *get_space,
        *put_cert;
    bool txn;
#ifdef MW_HAVE_LIBPQ
    mwi_pg_store *pg; /* a PostgreSQL store: every call goes there */
#endif
};

#ifdef MW_HAVE_LIBPQ
#define PG_OR(s, call)                                                                             \
    do {                                                                                           \
        if ((s)->pg)                                                                               \
            return call;                                                                           \
    } while (0)
#else
#define PG_OR(s, call) ((void)0)
#endif

static const char SCHEMA[] =
    "CREATE TABLE IF NOT EXISTS meta(key TEXT PRIMARY KEY, value INTEGER NOT NULL);"
    "CREATE TABLE IF NOT EXISTS devices(id TEXT PRIMARY KEY, replay BLOB NOT NULL,"
    " next_command INTEGER NOT NULL, updated_ms INTEGER NOT NULL, commands BLOB);"
    "CREATE TABLE IF NOT EXISTS messages(device TEXT NOT NULL, space INTEGER NOT NULL,"
    " seq INTEGER NOT NULL, received_ms INTEGER NOT NULL, type INTEGER NOT NULL,"
    " batch BLOB NOT NULL, PRIMARY KEY(device, space, seq)) WITHOUT ROWID;"
    "CREATE TABLE IF NOT EXISTS spaces(device TEXT NOT NULL, space INTEGER NOT NULL,"
    " retired_ms INTEGER NOT NULL, PRIMARY KEY(device, space)) WITHOUT ROWID;"
    "CREATE TABLE IF NOT EXISTS certificates(device TEXT NOT NULL, serial TEXT NOT NULL,"
    " replaces TEXT NOT NULL, not_before INTEGER NOT NULL, not_after INTEGER NOT NULL,"
    " issued_ms INTEGER NOT NULL, cert BLOB NOT NULL, PRIMARY KEY(device, serial));";

/* A store made before schema 3 has no column for pending commands. */
static bool has_commands_column(sqlite3 *db)
{
    sqlite3_stmt *st = NULL;
    bool has =
        sqlite3_prepare_v2(db, "SELECT commands FROM devices LIMIT 0", -1, &st, NULL) == SQLITE_OK;
    sqlite3_finalize(st);
    return has;
}

static mw_err fail(mwi_store *s, mw_error_detail_t *d, const char *what)
{
    char why[160];
    snprintf(why, sizeof why, "gateway store: %s: %.90s", what,
             s && s->db ? sqlite3_errmsg(s->db) : "cannot open");
    mwi_detail_first(d, MW_EIO, s && s->db ? sqlite3_errcode(s->db) : 0, why);
    return MW_EIO;
}

bool mwi_store_is_pg(const char *path)
{
    return path &&
           (strncmp(path, "postgresql://", 13) == 0 || strncmp(path, "postgres://", 11) == 0);
}

void mwi_store_redact(const char *path, char *out, size_t size)
{
    snprintf(out, size, "%s", path);
    if (!mwi_store_is_pg(path))
        return;
    const char *start = strstr(path, "://") + 3;
    const char *at = strchr(start, '@');
    const char *slash = strchr(start, '/');
    const char *colon = strchr(start, ':');
    if (at && (slash == NULL || at < slash) && colon && colon < at)
        snprintf(out, size, "%.*s:***%s", (int)(colon - path), path, at);
    /* A password may also come as a parameter: the query goes. */
    char *q = strchr(out, '?');
    if (q && strstr(q, "password") != NULL)
        snprintf(q, size - (size_t)(q - out), "?***");
}

mw_err mwi_store_open(const char *path, mwi_store **out, mw_error_detail_t *d)
{
    return mwi_store_open_as(path, NULL, out, d);
}

mw_err mwi_store_open_as(const char *path, const char *instance, mwi_store **out,
                         mw_error_detail_t *d)
{
    if (path == NULL || out == NULL)
        return MW_EINVAL;
    *out = NULL;
    mwi_store *s = calloc(1, sizeof *s);
    if (s == NULL)
        return MW_ENOMEM;
    s->lock_fd = -1;
    mw_err e = MW_OK;
    if (mwi_store_is_pg(path)) {
#ifdef MW_HAVE_LIBPQ
        e = mwi_pg_open(path, instance, &s->pg, d);
#else
        (void)instance;
        e = mwi_detail_fail(d, MW_EIO,
                            "gateway store: PostgreSQL is not built in (rebuild medwire with "
                            "libpq: apt install libpq-dev)");
#endif
        if (e != MW_OK) {
            free(s);
            return e;
        }
        *out = s;
        return MW_OK;
    }
    /* An SQLite built with SQLITE_USE_URI (Debian's is) reads a name starting "file:" as a
     * URI; a store is a file, and the file locked below must be the one SQLite opens. */
    char name[4096];
    if (snprintf(name, sizeof name, "%s%s", strncmp(path, "file:", 5) == 0 ? "./" : "", path) >=
        (int)sizeof name) {
        mwi_detail_first(d, MW_EINVAL, 0, "gateway store: path too long");
        free(s);
        return MW_EINVAL;
    }
    /* Two gateways on one store would each acknowledge what the other's replay state does not
     * know: the lock refuses the second one before it reads anything. Creating the file here
     * also gives it mode 0600, and SQLite gives its -wal and -shm files the database's mode. */
    if (strcmp(name, ":memory:") != 0 && name[0] != '\0') {
        mw_error_detail_t od;
        memset(&od, 0, sizeof od);
        e = mwi_owned_file_acquire(name, "gateway store", &s->lock_fd, &od);
        if (e != MW_OK) {
            char why[sizeof od.reason];
            if (od.foreign == EAGAIN)
                snprintf(why, sizeof why,
                         "gateway store %.68s is in use by another gateway: stop it, or give "
                         "this one a store of its own",
                         name);
            mwi_detail_first(d, e, od.foreign, od.foreign == EAGAIN ? why : od.reason);
            free(s);
            return e;
        }
    }
    if (sqlite3_open_v2(name, &s->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, NULL) !=
        SQLITE_OK) {
        e = fail(s, d, "cannot open the database");
        goto out;
    }
    /* WAL with synchronous=FULL: a commit is on disk when it returns, and
     * readers (an operator's sqlite3 shell) never block the gateway. */
    if (sqlite3_exec(s->db, "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL;", NULL, NULL,
                     NULL) != SQLITE_OK ||
        sqlite3_exec(s->db, SCHEMA, NULL, NULL, NULL) != SQLITE_OK) {
        e = fail(s, d, "cannot set up the database (is it a medwire store?)");
        goto out;
    }
    sqlite3_busy_timeout(s->db, 5000);
    if (!has_commands_column(s->db) &&
        sqlite3_exec(s->db, "ALTER TABLE devices ADD COLUMN commands BLOB", NULL, NULL, NULL) !=
            SQLITE_OK) {
        e = fail(s, d, "cannot add the devices' pending commands to an older store");
        goto out;
    }
    if (sqlite3_prepare_v2(s->db,
                           "SELECT replay, next_command, commands FROM devices WHERE id = ?1", -1,
                           &s->get_dev, NULL) != SQLITE_OK ||
        sqlite3_prepare_v2(s->db,
                           "INSERT OR REPLACE INTO devices(id, replay, next_command, updated_ms,"
                           " commands) VALUES(?1,?2,?3,?4,?5)",
                           -1, &s->put_dev, NULL) != SQLITE_OK ||
        sqlite3_prepare_v2(s->db,
                           "INSERT OR IGNORE INTO messages(device, space, seq, received_ms, type,"
                           " batch) VALUES(?1,?2,?3,?4,?5,?6)",
                           -1, &s->put_msg, NULL) != SQLITE_OK ||
        sqlite3_prepare_v2(s->db,
                           "INSERT OR IGNORE INTO spaces(device, space, retired_ms)"
                           " VALUES(?1,?2,?3)",
                           -1, &s->put_space, NULL) != SQLITE_OK ||
        sqlite3_prepare_v2(s->db, "SELECT 1 FROM spaces WHERE device = ?1 AND space = ?2", -1,
                           &s->get_space, NULL) != SQLITE_OK ||
        sqlite3_prepare_v2(s->db,
                           "INSERT OR IGNORE INTO certificates(device, serial, replaces,"
                           " not_before, not_after, issued_ms, cert) VALUES(?1,?2,?3,?4,?5,?6,?7)",
                           -1, &s->put_cert, NULL) != SQLITE_OK ||
        sqlite3_prepare_v2(s->db, "SELECT value FROM meta WHERE key = ?1", -1, &s->get_meta,
                           NULL) != SQLITE_OK ||
        sqlite3_prepare_v2(s->db, "INSERT OR REPLACE INTO meta(key, value) VALUES(?1, ?2)", -1,
                           &s->put_meta, NULL) != SQLITE_OK) {
        e = fail(s, d, "cannot prepare statements");
        goto out;
    }
    /* The schema version guards against a newer gateway's store. */
    sqlite3_bind_text(s->get_meta, 1, "schema", -1, SQLITE_STATIC);
    int rc = sqlite3_step(s->get_meta);
    int64_t version = rc == SQLITE_ROW ? sqlite3_column_int64(s->get_meta, 0) : 0;
    sqlite3_reset(s->get_meta);
    if (version > SCHEMA_VERSION) {
        mwi_detail_first(d, MW_EIO, 0,
                         "gateway store: written by a newer medwire (schema version too high)");
        e = MW_EIO;
        goto out;
    }
    if (version < SCHEMA_VERSION) {
        sqlite3_bind_text(s->put_meta, 1, "schema", -1, SQLITE_STATIC);
        sqlite3_bind_int64(s->put_meta, 2, SCHEMA_VERSION);
        rc = sqlite3_step(s->put_meta);
        sqlite3_reset(s->put_meta);
        if (rc != SQLITE_DONE) {
            e = fail(s, d, "cannot write the schema version");
            goto out;
        }
    }
out:
    if (e != MW_OK) {
        mwi_store_close(&s);
        return e;
    }
    *out = s;
    return MW_OK;
}

void mwi_store_close(mwi_store **ps)
{
    if (ps == NULL || *ps == NULL)
        return;
    mwi_store *s = *ps;
#ifdef MW_HAVE_LIBPQ
    if (s->pg) {
        mwi_pg_close(&s->pg);
        free(s);
        *ps = NULL;
        return;
    }
#endif
    if (s->txn)
        mwi_store_rollback(s);
    sqlite3_finalize(s->get_dev);
    sqlite3_finalize(s->put_dev);
    sqlite3_finalize(s->put_msg);
    sqlite3_finalize(s->get_meta);
    sqlite3_finalize(s->put_meta);
    sqlite3_finalize(s->put_space);
    sqlite3_finalize(s->get_space);
    sqlite3_finalize(s->put_cert);
    sqlite3_close(s->db);
    /* Only now: SQLite's own locks are fcntl locks, which closing any descriptor of the file
     * would drop while SQLite still held it open. */
    mwi_owned_file_release(&s->lock_fd);
    free(s);
    *ps = NULL;
}

mw_err mwi_store_load_device(mwi_store *s, const char *id, mwi_replay *out,
                             uint64_t *out_next_command, mw_command_t cmds[MWI_MAX_COMMANDS],
                             uint8_t *ncmds, bool *found)
{
    PG_OR(s, mwi_pg_load_device(s->pg, id, out, out_next_command, cmds, ncmds, found));
    *found = false;
    sqlite3_bind_text(s->get_dev, 1, id, -1, SQLITE_TRANSIENT);
    int rc = sqlite3_step(s->get_dev);
    mw_err e = MW_OK;
    if (rc == SQLITE_ROW) {
        const uint8_t *b = sqlite3_column_blob(s->get_dev, 0);
        int n = sqlite3_column_bytes(s->get_dev, 0);
        mwi_replay *r = malloc(sizeof *r);
        bool ok = r != NULL && n >= 0 && mwi_replay_blob_decode(b, (size_t)n, r);
        mw_command_t c[MWI_MAX_COMMANDS];
        uint8_t nc = 0;
        const uint8_t *cb = sqlite3_column_blob(s->get_dev, 2);
        int cn = sqlite3_column_bytes(s->get_dev, 2);
        ok = ok && (cb == NULL || (cn > 0 && mwi_commands_blob_decode(cb, (size_t)cn, c, &nc)));
        if (ok) {
            *out = *r;
            *out_next_command = (uint64_t)sqlite3_column_int64(s->get_dev, 1);
            if (cmds) {
                memcpy(cmds, c, nc * sizeof c[0]);
                *ncmds = nc;
            }
            *found = true;
        } else {
            e = r == NULL ? MW_ENOMEM : MW_EIO;
        }
        free(r);
    } else if (rc != SQLITE_DONE) {
        e = MW_EIO;
    }
    sqlite3_reset(s->get_dev);
    sqlite3_clear_bindings(s->get_dev);
    return e;
}

mw_err mwi_store_lock_device(mwi_store *s, const char *id, mwi_replay *out,
                             uint64_t *out_next_command, mw_command_t cmds[MWI_MAX_COMMANDS],
                             uint8_t *ncmds, bool *found)
{
    PG_OR(s, mwi_pg_lock_device(s->pg, id, out, out_next_command, cmds, ncmds, found));
    (void)s;
    (void)id;
    (void)out;
    (void)out_next_command;
    (void)cmds;
    (void)ncmds;
    *found = false;
    return MW_OK;
}

mw_err mwi_store_lock_devices(mwi_store *s, const char *const *ids, size_t n, mwi_store_row_fn *row,
                              void *ctx)
{
    PG_OR(s, mwi_pg_lock_devices(s->pg, ids, n, row, ctx));
    (void)s;
    (void)ids;
    (void)n;
    (void)row;
    (void)ctx;
    return MW_OK;
}

bool mwi_store_shared(const mwi_store *s)
{
#ifdef MW_HAVE_LIBPQ
    return s->pg != NULL;
#else
    (void)s;
    return false;
#endif
}

bool mwi_store_take_conflict(mwi_store *s)
{
    PG_OR(s, mwi_pg_take_conflict(s->pg));
    (void)s;
    return false;
}

bool mwi_store_healthy(mwi_store *s)
{
    PG_OR(s, mwi_pg_healthy(s->pg));
    (void)s;
    return true;
}

mw_err mwi_store_checkpoint(mwi_store *s, uint64_t *out)
{
    PG_OR(s, mwi_pg_checkpoint(s->pg, out));
    *out = 0;
    sqlite3_bind_text(s->get_meta, 1, "sink_checkpoint", -1, SQLITE_STATIC);
    int rc = sqlite3_step(s->get_meta);
    if (rc == SQLITE_ROW)
        *out = (uint64_t)sqlite3_column_int64(s->get_meta, 0);
    sqlite3_reset(s->get_meta);
    return rc == SQLITE_ROW || rc == SQLITE_DONE ? MW_OK : MW_EIO;
}

mw_err mwi_store_begin(mwi_store *s)
{
    PG_OR(s, mwi_pg_begin(s->pg));
    if (s->txn)
        return MW_OK;
    if (sqlite3_exec(s->db, "BEGIN IMMEDIATE", NULL, NULL, NULL) != SQLITE_OK)
        return MW_EIO;
    s->txn = true;
    return MW_OK;
}

mw_err mwi_store_put_message(mwi_store *s, const mw_message_t *m, uint64_t received_ms)
{
    PG_OR(s, mwi_pg_put_message(s->pg, m, received_ms));
    uint8_t buf[MWI_JOURNAL_MAX];
    size_t len = 0;
    if (mwi_journal_encode(m, buf, &len) != MW_OK)
        return MW_EINVAL;
    sqlite3_bind_text(s->put_msg, 1, m->device_id, -1, SQLITE_TRANSIENT);
    /* Bit patterns kept above 2^63. */
    sqlite3_bind_int64(s->put_msg, 2, (sqlite3_int64)m->space);
    sqlite3_bind_int64(s->put_msg, 3, (sqlite3_int64)m->seq);
    sqlite3_bind_int64(s->put_msg, 4, (sqlite3_int64)received_ms);
    sqlite3_bind_int(s->put_msg, 5, (int)m->type);
    sqlite3_bind_blob(s->put_msg, 6, buf, (int)len, SQLITE_TRANSIENT);
    int rc = sqlite3_step(s->put_msg);
    sqlite3_reset(s->put_msg);
    sqlite3_clear_bindings(s->put_msg);
    return rc == SQLITE_DONE ? MW_OK : MW_EIO;
}

mw_err mwi_store_put_device(mwi_store *s, const char *id, const mwi_replay *r,
                            uint64_t next_command, const mw_command_t *cmds, size_t ncmds)
{
    PG_OR(s, mwi_pg_put_device(s->pg, id, r, next_command, cmds, ncmds));
    uint8_t b[MWI_REPLAY_BLOB_MAX], cb[MWI_COMMANDS_BLOB_MAX];
    size_t len = mwi_replay_blob_encode(r, b);
    size_t clen = ncmds ? mwi_commands_blob_encode(cmds, ncmds, cb) : 0;
    if (ncmds && clen == 0)
        return MW_EINVAL;
    sqlite3_bind_text(s->put_dev, 1, id, -1, SQLITE_TRANSIENT);
    sqlite3_bind_blob(s->put_dev, 2, b, (int)len, SQLITE_TRANSIENT);
    sqlite3_bind_int64(s->put_dev, 3, (sqlite3_int64)next_command);
    sqlite3_bind_int64(s->put_dev, 4, 0);
    if (clen) /* none pending: NULL */
        sqlite3_bind_blob(s->put_dev, 5, cb, (int)clen, SQLITE_TRANSIENT);
    int rc = sqlite3_step(s->put_dev);
    sqlite3_reset(s->put_dev);
    sqlite3_clear_bindings(s->put_dev);
    return rc == SQLITE_DONE ? MW_OK : MW_EIO;
}

mw_err mwi_store_retire_space(mwi_store *s, const char *id, uint64_t space, uint64_t retired_ms)
{
    PG_OR(s, mwi_pg_retire_space(s->pg, id, space, retired_ms));
    sqlite3_bind_text(s->put_space, 1, id, -1, SQLITE_TRANSIENT);
    sqlite3_bind_int64(s->put_space, 2, (sqlite3_int64)space);
    sqlite3_bind_int64(s->put_space, 3, (sqlite3_int64)retired_ms);
    int rc = sqlite3_step(s->put_space);
    sqlite3_reset(s->put_space);
    sqlite3_clear_bindings(s->put_space);
    return rc == SQLITE_DONE ? MW_OK : MW_EIO;
}

mw_err mwi_store_put_certificate(mwi_store *s, const mwi_store_cert *c)
{
    if (c->len == 0 || c->len > INT32_MAX)
        return MW_EINVAL;
    PG_OR(s, mwi_pg_put_certificate(s->pg, c));
    sqlite3_bind_text(s->put_cert, 1, c->device, -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(s->put_cert, 2, c->serial, -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(s->put_cert, 3, c->replaces, -1, SQLITE_TRANSIENT);
    sqlite3_bind_int64(s->put_cert, 4, c->not_before);
    sqlite3_bind_int64(s->put_cert, 5, c->not_after);
    sqlite3_bind_int64(s->put_cert, 6, (sqlite3_int64)c->issued_ms);
    sqlite3_bind_blob(s->put_cert, 7, c->der, (int)c->len, SQLITE_TRANSIENT);
    int rc = sqlite3_step(s->put_cert);
    sqlite3_reset(s->put_cert);
    sqlite3_clear_bindings(s->put_cert);
    return rc == SQLITE_DONE ? MW_OK : MW_EIO;
}

mw_err mwi_store_space_retired(mwi_store *s, const char *id, uint64_t space, bool *out)
{
    PG_OR(s, mwi_pg_space_retired(s->pg, id, space, out));
    *out = false;
    sqlite3_bind_text(s->get_space, 1, id, -1, SQLITE_TRANSIENT);
    sqlite3_bind_int64(s->get_space, 2, (sqlite3_int64)space);
    int rc = sqlite3_step(s->get_space);
    if (rc == SQLITE_ROW)
        *out = true;
    sqlite3_reset(s->get_space);
    sqlite3_clear_bindings(s->get_space);
    return rc == SQLITE_ROW || rc == SQLITE_DONE ? MW_OK : MW_EIO;
}

mw_err mwi_store_commit(mwi_store *s, uint64_t sink_checkpoint)
{
    PG_OR(s, mwi_pg_commit(s->pg, sink_checkpoint));
    if (!s->txn)
        return MW_OK;
    sqlite3_bind_text(s->put_meta, 1, "sink_checkpoint", -1, SQLITE_STATIC);
    sqlite3_bind_int64(s->put_meta, 2, (sqlite3_int64)sink_checkpoint);
    int rc = sqlite3_step(s->put_meta);
    sqlite3_reset(s->put_meta);
    if (rc != SQLITE_DONE || sqlite3_exec(s->db, "COMMIT", NULL, NULL, NULL) != SQLITE_OK) {
        mwi_store_rollback(s);
        return MW_EIO;
    }
    s->txn = false;
    return MW_OK;
}

void mwi_store_rollback(mwi_store *s)
{
#ifdef MW_HAVE_LIBPQ
    if (s->pg) {
        mwi_pg_rollback(s->pg);
        return;
    }
#endif
    if (s->txn) {
        int rc = sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);
        (void)rc; /* after a failed COMMIT SQLite may have rolled back already */
    }
    s->txn = false;
}

bool mwi_store_in_txn(const mwi_store *s)
{
#ifdef MW_HAVE_LIBPQ
    if (s && s->pg)
        return mwi_pg_in_txn(s->pg);
#endif
    return s && s->txn;
}

mw_err mwi_store_count(mwi_store *s, uint64_t *out)
{
    PG_OR(s, mwi_pg_count(s->pg, out));
    sqlite3_stmt *st = NULL;
    *out = 0;
    if (sqlite3_prepare_v2(s->db, "SELECT count(*) FROM messages", -1, &st, NULL) != SQLITE_OK)
        return MW_EIO;
    mw_err e = sqlite3_step(st) == SQLITE_ROW ? MW_OK : MW_EIO;
    if (e == MW_OK)
        *out = (uint64_t)sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    return e;
}
