/* SPDX-License-Identifier: Apache-2.0 */
/* store.c -- the gateway's durable store (SQLite, WAL): accepted-message journal, per-device replay
 * state, sink checkpoint. */
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/detail.h"
#include "gateway/store.h"
#include "session/codec.h"

#define SCHEMA_VERSION 1
/* Replay state blob: version(1) low(8) done(8) n(1) n * (first(8) last(8)), little endian. */
#define REPLAY_BLOB_VERSION 1
#define REPLAY_BLOB_MAX     (1 + 8 + 8 + 1 + MWI_REPLAY_MAX_RANGES * 16)

struct mwi_store {
    sqlite3 *db;
    sqlite3_stmt *get_dev, *put_dev, *put_msg, *get_meta, *put_meta;
    bool txn;
};

static const char SCHEMA[] =
    "CREATE TABLE IF NOT EXISTS meta(key TEXT PRIMARY KEY, value INTEGER NOT NULL);"
    "CREATE TABLE IF NOT EXISTS devices(id TEXT PRIMARY KEY, replay BLOB NOT NULL,"
    " next_command INTEGER NOT NULL, updated_ms INTEGER NOT NULL);"
    "CREATE TABLE IF NOT EXISTS journal(device TEXT NOT NULL, seq INTEGER NOT NULL,"
    " received_ms INTEGER NOT NULL, type INTEGER NOT NULL, batch BLOB NOT NULL,"
    " PRIMARY KEY(device, seq)) WITHOUT ROWID;";

static mw_err fail(mwi_store *s, mw_error_detail_t *d, const char *what)
{
    char why[160];
    snprintf(why, sizeof why, "gateway store: %s: %.90s", what,
             s && s->db ? sqlite3_errmsg(s->db) : "cannot open");
    mwi_detail_first(d, MW_EIO, s && s->db ? sqlite3_errcode(s->db) : 0, why);
    return MW_EIO;
}

static void put64(uint8_t *p, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

static uint64_t get64(const uint8_t *p)
{
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--)
        v = (v << 8) | p[i];
    return v;
}

mw_err mwi_store_open(const char *path, mwi_store **out, mw_error_detail_t *d)
{
    if (path == NULL || out == NULL)
        return MW_EINVAL;
    *out = NULL;
    mwi_store *s = calloc(1, sizeof *s);
    if (s == NULL)
        return MW_ENOMEM;
    mw_err e = MW_OK;
    if (sqlite3_open_v2(path, &s->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, NULL) !=
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
    if (sqlite3_prepare_v2(s->db, "SELECT replay, next_command FROM devices WHERE id = ?1", -1,
                           &s->get_dev, NULL) != SQLITE_OK ||
        sqlite3_prepare_v2(s->db,
                           "INSERT OR REPLACE INTO devices(id, replay, next_command, updated_ms)"
                           " VALUES(?1,?2,?3,?4)",
                           -1, &s->put_dev, NULL) != SQLITE_OK ||
        sqlite3_prepare_v2(s->db,
                           "INSERT OR IGNORE INTO journal(device, seq, received_ms, type, batch)"
                           " VALUES(?1,?2,?3,?4,?5)",
                           -1, &s->put_msg, NULL) != SQLITE_OK ||
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
    if (version == 0) {
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
    if (s->txn)
        mwi_store_rollback(s);
    sqlite3_finalize(s->get_dev);
    sqlite3_finalize(s->put_dev);
    sqlite3_finalize(s->put_msg);
    sqlite3_finalize(s->get_meta);
    sqlite3_finalize(s->put_meta);
    sqlite3_close(s->db);
    free(s);
    *ps = NULL;
}

mw_err mwi_store_load_device(mwi_store *s, const char *id, mwi_replay *out,
                             uint64_t *out_next_command, bool *found)
{
    *found = false;
    sqlite3_bind_text(s->get_dev, 1, id, -1, SQLITE_TRANSIENT);
    int rc = sqlite3_step(s->get_dev);
    mw_err e = MW_OK;
    if (rc == SQLITE_ROW) {
        const uint8_t *b = sqlite3_column_blob(s->get_dev, 0);
        int n = sqlite3_column_bytes(s->get_dev, 0);
        mwi_replay r;
        memset(&r, 0, sizeof r);
        /* Length-checked field by field: the file is outside our control. */
        if (b == NULL || n < 18 || b[0] != REPLAY_BLOB_VERSION || b[17] > MWI_REPLAY_MAX_RANGES ||
            n != 18 + 16 * b[17]) {
            e = MW_EIO;
        } else {
            r.low = get64(b + 1);
            r.done = get64(b + 9);
            r.n = b[17];
            for (uint32_t i = 0; i < r.n; i++) {
                r.r[i].first = get64(b + 18 + 16 * i);
                r.r[i].last = get64(b + 26 + 16 * i);
                if (r.r[i].first > r.r[i].last || r.r[i].first <= r.done ||
                    (i > 0 && r.r[i].first <= r.r[i - 1].last + 1))
                    e = MW_EIO;
            }
            if (r.low == 0 || r.done < r.low)
                e = MW_EIO;
        }
        if (e == MW_OK) {
            *out = r;
            *out_next_command = (uint64_t)sqlite3_column_int64(s->get_dev, 1);
            *found = true;
        }
    } else if (rc != SQLITE_DONE) {
        e = MW_EIO;
    }
    sqlite3_reset(s->get_dev);
    sqlite3_clear_bindings(s->get_dev);
    return e;
}

mw_err mwi_store_checkpoint(mwi_store *s, uint64_t *out)
{
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
    if (s->txn)
        return MW_OK;
    if (sqlite3_exec(s->db, "BEGIN IMMEDIATE", NULL, NULL, NULL) != SQLITE_OK)
        return MW_EIO;
    s->txn = true;
    return MW_OK;
}

mw_err mwi_store_put_message(mwi_store *s, const mw_message_t *m, uint64_t now_ms)
{
    uint8_t buf[512];
    size_t len = 0, count = 0;
    if (mwi_batch_encode(m, 1, m->seq, buf, sizeof buf, &len, &count) != MW_OK)
        return MW_EINVAL;
    sqlite3_bind_text(s->put_msg, 1, m->device_id, -1, SQLITE_TRANSIENT);
    sqlite3_bind_int64(s->put_msg, 2, (sqlite3_int64)m->seq); /* bit pattern kept above 2^63 */
    sqlite3_bind_int64(s->put_msg, 3, (sqlite3_int64)now_ms);
    sqlite3_bind_int(s->put_msg, 4, (int)m->type);
    sqlite3_bind_blob(s->put_msg, 5, buf, (int)len, SQLITE_TRANSIENT);
    int rc = sqlite3_step(s->put_msg);
    sqlite3_reset(s->put_msg);
    sqlite3_clear_bindings(s->put_msg);
    return rc == SQLITE_DONE ? MW_OK : MW_EIO;
}

mw_err mwi_store_put_device(mwi_store *s, const char *id, const mwi_replay *r,
                            uint64_t next_command)
{
    uint8_t b[REPLAY_BLOB_MAX];
    b[0] = REPLAY_BLOB_VERSION;
    put64(b + 1, r->low);
    put64(b + 9, r->done);
    b[17] = (uint8_t)r->n;
    for (uint32_t i = 0; i < r->n; i++) {
        put64(b + 18 + 16 * i, r->r[i].first);
        put64(b + 26 + 16 * i, r->r[i].last);
    }
    sqlite3_bind_text(s->put_dev, 1, id, -1, SQLITE_TRANSIENT);
    sqlite3_bind_blob(s->put_dev, 2, b, (int)(18 + 16 * r->n), SQLITE_TRANSIENT);
    sqlite3_bind_int64(s->put_dev, 3, (sqlite3_int64)next_command);
    sqlite3_bind_int64(s->put_dev, 4, 0);
    int rc = sqlite3_step(s->put_dev);
    sqlite3_reset(s->put_dev);
    sqlite3_clear_bindings(s->put_dev);
    return rc == SQLITE_DONE ? MW_OK : MW_EIO;
}

mw_err mwi_store_commit(mwi_store *s, uint64_t sink_checkpoint)
{
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
    if (s->txn) {
        int rc = sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);
        (void)rc; /* after a failed COMMIT SQLite may have rolled back already */
    }
    s->txn = false;
}

bool mwi_store_in_txn(const mwi_store *s)
{
    return s && s->txn;
}

mw_err mwi_store_count(mwi_store *s, uint64_t *out)
{
    sqlite3_stmt *st = NULL;
    *out = 0;
    if (sqlite3_prepare_v2(s->db, "SELECT count(*) FROM journal", -1, &st, NULL) != SQLITE_OK)
        return MW_EIO;
    mw_err e = sqlite3_step(st) == SQLITE_ROW ? MW_OK : MW_EIO;
    if (e == MW_OK)
        *out = (uint64_t)sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    return e;
}
