/* SPDX-License-Identifier: Apache-2.0 */
/* test_store.c -- the SQLite store keeps a device's pending commands with its replay state, so
 * that a restarted gateway sends them; an older store gains the place for them at open; and
 * the bytes they are kept as are read back only when every length and command checks. */
#include <criterion/criterion.h>
#include <sqlite3.h>
#include <stdio.h>
#include <string.h>

#include "gateway/store.h"
#include "gateway/store_codec.h"
#include "support/proc.h"

static mwi_store *open_file(const char *path)
{
    mwi_store *s = NULL;
    mw_error_detail_t d;
    memset(&d, 0, sizeof d);
    cr_assert_eq(mwi_store_open(path, &s, &d), MW_OK, "%s", d.reason);
    return s;
}

static const mw_command_t SENT[3] = {
    {.id = 0x0123456789abull << 16 | 1,
     .expires_ms = 1700000060000ull,
     .kind = MW_CMD_SET_INTERVAL,
     .u.interval_ms = 86400000u},
    {.id = 0x0123456789abull << 16 | 2,
     .expires_ms = 1700000060001ull,
     .kind = MW_CMD_ACK_ALARM,
     .u.alarm_seq = 0x8000000000000002ull},
    {.id = UINT64_MAX, .expires_ms = UINT64_MAX, .kind = MW_CMD_ROTATE_KEYS},
};

static void assert_same(const mw_command_t *got, const mw_command_t *want, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        cr_assert_eq(got[i].id, want[i].id, "command %zu", i);
        cr_assert_eq(got[i].expires_ms, want[i].expires_ms, "command %zu", i);
        cr_assert_eq(got[i].kind, want[i].kind, "command %zu", i);
        if (want[i].kind == MW_CMD_SET_INTERVAL)
            cr_assert_eq(got[i].u.interval_ms, want[i].u.interval_ms);
        if (want[i].kind == MW_CMD_ACK_ALARM)
            cr_assert_eq(got[i].u.alarm_seq, want[i].u.alarm_seq);
    }
}

Test(store, pending_commands_outlive_the_gateway_that_queued_them)
{
    char path[300];
    snprintf(path, sizeof path, "%s/gw.db", mwt_tmpdir());
    mwi_store *s = open_file(path);
    mwi_replay r;
    mwi_replay_init(&r);
    mwi_replay_enter(&r, 9);
    cr_assert_eq(mwi_store_begin(s), MW_OK);
    cr_assert_eq(mwi_store_put_device(s, "pump-1", &r, 44, SENT, 3), MW_OK);
    cr_assert_eq(mwi_store_put_device(s, "pump-2", &r, 45, NULL, 0), MW_OK);
    cr_assert_eq(mwi_store_commit(s, 1), MW_OK);
    mwi_store_close(&s);

    s = open_file(path);
    mw_command_t got[MWI_MAX_COMMANDS];
    uint8_t n = 0;
    uint64_t next = 0;
    bool found = false;
    mwi_replay back;
    cr_assert_eq(mwi_store_load_device(s, "pump-1", &back, &next, got, &n, &found), MW_OK);
    cr_assert(found);
    cr_assert_eq(next, 44);
    cr_assert_eq(n, 3);
    assert_same(got, SENT, 3);
    n = 9;
    cr_assert_eq(mwi_store_load_device(s, "pump-2", &back, &next, got, &n, &found), MW_OK);
    cr_assert_eq(n, 0);
    mw_command_t five[5] = {SENT[0], SENT[0], SENT[0], SENT[0], SENT[0]};
    cr_assert_eq(mwi_store_begin(s), MW_OK);
    cr_assert_eq(mwi_store_put_device(s, "pump-1", &r, 44, five, 5), MW_EINVAL,
                 "more than an Ack carries");
    mw_command_t bad = SENT[0];
    bad.id = 0;
    cr_assert_eq(mwi_store_put_device(s, "pump-1", &r, 44, &bad, 1), MW_EINVAL, "id 0");
    mwi_store_rollback(s);
    mwi_store_close(&s);
}

/* A store made before commands were kept (schema 2): its devices keep their state and have
 * none pending; then it keeps them like a new one. */
Test(store, an_older_store_gains_pending_commands_at_open)
{
    char path[300];
    snprintf(path, sizeof path, "%s/old.db", mwt_tmpdir());
    mwi_replay r;
    mwi_replay_init(&r);
    mwi_replay_enter(&r, 4);
    uint8_t blob[MWI_REPLAY_BLOB_MAX];
    size_t len = mwi_replay_blob_encode(&r, blob);
    sqlite3 *db = NULL;
    cr_assert_eq(sqlite3_open(path, &db), SQLITE_OK);
    cr_assert_eq(sqlite3_exec(db,
                              "CREATE TABLE meta(key TEXT PRIMARY KEY, value INTEGER NOT NULL);"
                              "INSERT INTO meta VALUES('schema', 2);"
                              "CREATE TABLE devices(id TEXT PRIMARY KEY, replay BLOB NOT NULL,"
                              " next_command INTEGER NOT NULL, updated_ms INTEGER NOT NULL);",
                              NULL, NULL, NULL),
                 SQLITE_OK);
    sqlite3_stmt *st = NULL;
    cr_assert_eq(
        sqlite3_prepare_v2(db, "INSERT INTO devices VALUES('old', ?1, 12, 0)", -1, &st, NULL),
        SQLITE_OK);
    sqlite3_bind_blob(st, 1, blob, (int)len, SQLITE_STATIC);
    cr_assert_eq(sqlite3_step(st), SQLITE_DONE);
    sqlite3_finalize(st);
    sqlite3_close(db);

    mwi_store *s = open_file(path);
    mw_command_t got[MWI_MAX_COMMANDS];
    uint8_t n = 9;
    uint64_t next = 0;
    bool found = false;
    mwi_replay back;
    cr_assert_eq(mwi_store_load_device(s, "old", &back, &next, got, &n, &found), MW_OK);
    cr_assert(found);
    cr_assert_eq(next, 12);
    cr_assert_eq(back.space, 4);
    cr_assert_eq(n, 0, "none pending");
    cr_assert_eq(mwi_store_begin(s), MW_OK);
    cr_assert_eq(mwi_store_put_device(s, "old", &back, 13, SENT, 1), MW_OK);
    cr_assert_eq(mwi_store_commit(s, 0), MW_OK);
    cr_assert_eq(mwi_store_load_device(s, "old", &back, &next, got, &n, &found), MW_OK);
    cr_assert_eq(n, 1);
    assert_same(got, SENT, 1);
    mwi_store_close(&s);

    cr_assert_eq(sqlite3_open(path, &db), SQLITE_OK);
    cr_assert_eq(
        sqlite3_prepare_v2(db, "SELECT value FROM meta WHERE key = 'schema'", -1, &st, NULL),
        SQLITE_OK);
    cr_assert_eq(sqlite3_step(st), SQLITE_ROW);
    cr_assert_eq(sqlite3_column_int(st, 0), 4, "the version says what the store now holds");
    sqlite3_finalize(st);
    cr_assert_eq(sqlite3_prepare_v2(db, "SELECT count(*) FROM certificates", -1, &st, NULL),
                 SQLITE_OK, "it keeps issued certificates now: %s", sqlite3_errmsg(db));
    sqlite3_finalize(st);
    sqlite3_close(db);
}

Test(store_codec, commands_are_read_back_only_when_every_byte_checks)
{
    uint8_t b[MWI_COMMANDS_BLOB_MAX];
    size_t len = mwi_commands_blob_encode(SENT, 3, b);
    cr_assert_gt(len, 2);
    mw_command_t got[MWI_MAX_COMMANDS];
    uint8_t n = 0;
    cr_assert(mwi_commands_blob_decode(b, len, got, &n));
    cr_assert_eq(n, 3);
    assert_same(got, SENT, 3);
    cr_assert_eq(mwi_commands_blob_encode(SENT, 0, b), 2, "none: the header alone");
    cr_assert(mwi_commands_blob_decode(b, 2, got, &n));
    cr_assert_eq(n, 0);

    len = mwi_commands_blob_encode(SENT, 3, b);
    n = 42;
    for (size_t cut = 0; cut < len; cut++)
        cr_assert_not(mwi_commands_blob_decode(b, cut, got, &n), "cut to %zu bytes", cut);
    uint8_t longer[MWI_COMMANDS_BLOB_MAX + 1];
    memcpy(longer, b, len);
    longer[len] = 0;
    cr_assert_not(mwi_commands_blob_decode(longer, len + 1, got, &n), "a byte left over");
    uint8_t v[MWI_COMMANDS_BLOB_MAX];
    memcpy(v, b, len);
    v[0] = 2;
    cr_assert_not(mwi_commands_blob_decode(v, len, got, &n), "an unknown version");
    memcpy(v, b, len);
    v[1] = MWI_MAX_COMMANDS + 1;
    cr_assert_not(mwi_commands_blob_decode(v, len, got, &n), "more than an Ack carries");
    memcpy(v, b, len);
    v[2] = 0;
    cr_assert_not(mwi_commands_blob_decode(v, len, got, &n), "an empty command");
    memcpy(v, b, len);
    v[2] = (uint8_t)(v[2] + 1);
    cr_assert_not(mwi_commands_blob_decode(v, len, got, &n), "a length that overruns");
    /* A command whose kind this gateway does not know: id 1, no kind (field 1 = 1). */
    const uint8_t unknown[] = {1, 1, 2, 0x08, 0x01};
    cr_assert_not(mwi_commands_blob_decode(unknown, sizeof unknown, got, &n), "no known kind");
    cr_assert_eq(n, 42, "nothing half read");
}
