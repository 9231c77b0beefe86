/* SPDX-License-Identifier: Apache-2.0 */
/* test_store_pg.c -- the gateway's store on a real PostgreSQL server: what the SQLite store
 * keeps it keeps (journal, replay states, retired spaces, checkpoint), its schema migrates
 * once and refuses a newer one, two gateways' handles serialise on a device's row, and a
 * server that restarts or goes away costs commits, never data. */
#include <criterion/criterion.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gateway/store.h"
#include "gateway/store_codec.h"
#include "support/pg.h"
#include "support/proc.h"

static mwt_pg pg;

static void up(void)
{
#ifndef MW_HAVE_LIBPQ
    cr_skip_test("this build has no libpq (Debian package libpq-dev)");
#endif
    if (!mwt_pg_available())
        cr_skip_test("PostgreSQL's server is not installed (Debian package postgresql)");
    cr_assert(mwt_pg_start(&pg), "the server starts");
}

static void down(void)
{
    mwt_pg_stop(&pg);
}

static mwi_store *open_as(const char *instance)
{
    mwi_store *s = NULL;
    mw_error_detail_t d;
    memset(&d, 0, sizeof d);
    cr_assert_eq(mwi_store_open_as(pg.url, instance, &s, &d), MW_OK, "%s", d.reason);
    return s;
}

/* What psql prints for @p sql, trimmed of its newline. */
static char *query(const char *sql)
{
    char out[200];
    snprintf(out, sizeof out, "%s/q.out", pg.dir);
    cr_assert_eq(mwt_pg_sql(&pg, sql, out), 0, "%s", sql);
    char *text = mwt_read_file(out);
    cr_assert_not_null(text);
    text[strcspn(text, "\n")] = '\0';
    return text;
}

static void assert_query(const char *sql, const char *want)
{
    char *got = query(sql);
    cr_assert_str_eq(got, want, "%s", sql);
    free(got);
}

static mw_message_t observation(const char *device, uint64_t space, uint64_t seq)
{
    mw_message_t m;
    memset(&m, 0, sizeof m);
    snprintf(m.device_id, sizeof m.device_id, "%s", device);
    m.space = space;
    m.seq = seq;
    m.type = MW_MSG_OBSERVATION;
    m.priority = MW_PRIORITY_OBSERVATION;
    m.u.observation.mdc_code = 150456;
    m.u.observation.mantissa = 97;
    snprintf(m.u.observation.unit, sizeof m.u.observation.unit, "%%");
    return m;
}

/* A replay state with @p n numbers delivered from 1 in @p space. */
static mwi_replay delivered(uint64_t space, uint64_t n)
{
    mwi_replay r;
    mwi_replay_init(&r);
    mwi_replay_enter(&r, space);
    for (uint64_t i = 1; i <= n; i++)
        cr_assert_eq(mwi_replay_mark(&r, i, 1000 + i), MW_OK);
    return r;
}

TestSuite(store_pg, .init = up, .fini = down, .timeout = 30);

Test(store_pg, keeps_journal_states_spaces_and_checkpoints_as_the_sqlite_store_does)
{
    mwi_store *s = open_as("gw-a");
    uint64_t ck = 99, n = 99;
    cr_assert_eq(mwi_store_checkpoint(s, &ck), MW_OK);
    cr_assert_eq(ck, 0, "no commit yet");

    mwi_replay r = delivered(0xfeedfacecafebeefull, 2), got;
    mw_message_t m1 = observation("pump-1", r.space, 1), m2 = observation("pump-1", r.space, 2);
    cr_assert_eq(mwi_store_begin(s), MW_OK);
    cr_assert(mwi_store_in_txn(s));
    cr_assert_eq(mwi_store_put_message(s, &m1, 1700000000000ull), MW_OK);
    cr_assert_eq(mwi_store_put_message(s, &m2, 1700000000001ull), MW_OK);
    cr_assert_eq(mwi_store_put_message(s, &m2, 1700000000002ull), MW_OK, "a repeat is ignored");
    cr_assert_eq(mwi_store_put_device(s, "pump-1", &r, 0x8000000000000001ull, NULL, 0), MW_OK);
    cr_assert_eq(mwi_store_retire_space(s, "pump-1", 7, 1700000000003ull), MW_OK);
    cr_assert_eq(mwi_store_commit(s, 4242), MW_OK);
    cr_assert_not(mwi_store_in_txn(s));

    cr_assert_eq(mwi_store_count(s, &n), MW_OK);
    cr_assert_eq(n, 2);
    cr_assert_eq(mwi_store_checkpoint(s, &ck), MW_OK);
    cr_assert_eq(ck, 4242);
    bool found = false, retired = false;
    uint64_t next = 0;
    cr_assert_eq(mwi_store_load_device(s, "pump-1", &got, &next, NULL, NULL, &found), MW_OK);
    cr_assert(found);
    cr_assert_eq(next, 0x8000000000000001ull, "above 2^63 the bit pattern is kept");
    cr_assert_eq(got.space, r.space);
    cr_assert_eq(got.top, 2);
    cr_assert_eq(mwi_replay_check(&got, 2, 1002), MWI_REPLAY_DUPLICATE);
    cr_assert_eq(mwi_replay_check(&got, 3, 1003), MWI_REPLAY_NEW);
    cr_assert_eq(mwi_store_load_device(s, "pump-2", &got, &next, NULL, NULL, &found), MW_OK);
    cr_assert_not(found);
    cr_assert_eq(mwi_store_space_retired(s, "pump-1", 7, &retired), MW_OK);
    cr_assert(retired);
    cr_assert_eq(mwi_store_space_retired(s, "pump-1", 8, &retired), MW_OK);
    cr_assert_not(retired);
    assert_query("SELECT seq, received_ms, type FROM messages WHERE seq = 2", "2|1700000000001|1");

    /* What is rolled back is not there. */
    mw_message_t m3 = observation("pump-1", r.space, 3);
    cr_assert_eq(mwi_store_begin(s), MW_OK);
    cr_assert_eq(mwi_store_put_message(s, &m3, 0), MW_OK);
    mwi_store_rollback(s);
    cr_assert_eq(mwi_store_count(s, &n), MW_OK);
    cr_assert_eq(n, 2);

    /* Each gateway has its own checkpoint in one database. */
    mwi_store *b = open_as("gw-b");
    cr_assert_eq(mwi_store_checkpoint(b, &ck), MW_OK);
    cr_assert_eq(ck, 0);
    cr_assert_eq(mwi_store_begin(b), MW_OK);
    cr_assert_eq(mwi_store_commit(b, 17), MW_OK);
    cr_assert_eq(mwi_store_checkpoint(b, &ck), MW_OK);
    cr_assert_eq(ck, 17);
    cr_assert_eq(mwi_store_checkpoint(s, &ck), MW_OK);
    cr_assert_eq(ck, 4242);
    mwi_store_close(&b);
    mwi_store_close(&s);
    cr_assert_null(s);
}

Test(store_pg, refuses_a_state_it_cannot_read)
{
    mwi_store *s = open_as("gw");
    mwi_replay r = delivered(5, 3), got;
    cr_assert_eq(mwi_store_begin(s), MW_OK);
    cr_assert_eq(mwi_store_put_device(s, "d", &r, 9, NULL, 0), MW_OK);
    cr_assert_eq(mwi_store_commit(s, 0), MW_OK);
    /* Cut short by one byte, then a blob of an unknown version. */
    cr_assert_eq(mwt_pg_sql(&pg,
                            "UPDATE devices SET replay = substring(replay from 1 for "
                            "length(replay) - 1)",
                            NULL),
                 0);
    bool found = true;
    uint64_t next = 0;
    cr_assert_eq(mwi_store_load_device(s, "d", &got, &next, NULL, NULL, &found), MW_EIO);
    cr_assert_not(found);
    cr_assert_eq(mwt_pg_sql(&pg, "UPDATE devices SET replay = '\\x09'", NULL), 0);
    cr_assert_eq(mwi_store_load_device(s, "d", &got, &next, NULL, NULL, &found), MW_EIO);
    mwi_store_close(&s);
}

/* What one gateway queued for a device, another reads with the device's row, and what that one
 * settled the first reads back; a list that does not decode is refused, never half read. */
Test(store_pg, pending_commands_are_shared_with_the_device_row)
{
    mwi_store *a = open_as("gw-a"), *b = open_as("gw-b");
    mwi_replay r = delivered(21, 1), got;
    mw_command_t sent[2] = {
        {.id = 0x0123456789abull << 16 | 7,
         .expires_ms = 1700000060000ull,
         .kind = MW_CMD_SET_INTERVAL,
         .u.interval_ms = 5000},
        {.id = 0x0123456789abull << 16 | 8,
         .expires_ms = 1700000060001ull,
         .kind = MW_CMD_ACK_ALARM,
         .u.alarm_seq = 0x8000000000000002ull},
    };
    cr_assert_eq(mwi_store_begin(a), MW_OK);
    cr_assert_eq(mwi_store_put_device(a, "pump-c", &r, sent[1].id + 1, sent, 2), MW_OK);
    cr_assert_eq(mwi_store_commit(a, 0), MW_OK);

    mw_command_t cmds[MWI_MAX_COMMANDS];
    uint8_t n = 0;
    uint64_t next = 0;
    bool found = false;
    cr_assert_eq(mwi_store_lock_device(b, "pump-c", &got, &next, cmds, &n, &found), MW_OK);
    cr_assert(found);
    cr_assert_eq(n, 2);
    cr_assert_eq(next, sent[1].id + 1);
    for (int i = 0; i < 2; i++) {
        cr_assert_eq(cmds[i].id, sent[i].id);
        cr_assert_eq(cmds[i].expires_ms, sent[i].expires_ms);
        cr_assert_eq(cmds[i].kind, sent[i].kind);
    }
    cr_assert_eq(cmds[0].u.interval_ms, 5000);
    cr_assert_eq(cmds[1].u.alarm_seq, 0x8000000000000002ull);
    /* b's device answered the first. */
    cr_assert_eq(mwi_store_put_device(b, "pump-c", &got, next, &cmds[1], 1), MW_OK);
    cr_assert_eq(mwi_store_commit(b, 0), MW_OK);
    cr_assert_eq(mwi_store_load_device(a, "pump-c", &got, &next, cmds, &n, &found), MW_OK);
    cr_assert_eq(n, 1);
    cr_assert_eq(cmds[0].id, sent[1].id);
    cr_assert_eq(mwi_store_begin(b), MW_OK);
    cr_assert_eq(mwi_store_put_device(b, "pump-c", &got, next, NULL, 0), MW_OK);
    cr_assert_eq(mwi_store_commit(b, 0), MW_OK);
    assert_query("SELECT commands IS NULL FROM devices WHERE id = 'pump-c'", "t");

    /* Five commands, one more than an Ack carries, or one cut short: refused. */
    mw_command_t five[5] = {sent[0], sent[0], sent[0], sent[0], sent[0]};
    cr_assert_eq(mwi_store_put_device(b, "pump-c", &got, next, five, 5), MW_EINVAL);
    mwi_store_rollback(b);
    cr_assert_eq(mwt_pg_sql(&pg, "UPDATE devices SET commands = '\\x010105'", NULL), 0);
    n = 7;
    found = true;
    cr_assert_eq(mwi_store_load_device(a, "pump-c", &got, &next, cmds, &n, &found), MW_EIO);
    cr_assert_not(found);
    cr_assert_eq(n, 7, "nothing half read");
    mwi_store_close(&b);
    mwi_store_close(&a);
}

/* More journal rows and devices in one transaction than the store sends in one statement of
 * each (it sends several): every row is there, byte for byte, NULL and pending commands mixed. */
Test(store_pg, a_transaction_larger_than_one_statement_writes_every_row)
{
    enum { DEVICES = 300, EACH = 4 };
    mwi_store *s = open_as("gw-a");
    mwi_replay r = delivered(77, EACH), got;
    mw_command_t cmd = {.id = 41,
                        .expires_ms = 1700000060000ull,
                        .kind = MW_CMD_SET_INTERVAL,
                        .u.interval_ms = 2500};
    cr_assert_eq(mwi_store_begin(s), MW_OK);
    for (uint64_t d = 0; d < DEVICES; d++) {
        char id[16];
        snprintf(id, sizeof id, "d-%03u", (unsigned)d);
        for (uint64_t q = 1; q <= EACH; q++) {
            mw_message_t m = observation(id, 77, q);
            cr_assert_eq(mwi_store_put_message(s, &m, 1700000000000ull + d * 10 + q), MW_OK);
        }
        bool with_cmd = d % 7 == 0;
        cr_assert_eq(mwi_store_put_device(s, id, &r, d, with_cmd ? &cmd : NULL, with_cmd), MW_OK);
    }
    cr_assert_eq(mwi_store_commit(s, 1), MW_OK);
    /* seq: 300 x (1 + 2 + 3 + 4); received_ms - base: 4 x 10 x (0 + ... + 299) + 300 x 10 */
    assert_query("SELECT count(*), count(DISTINCT device), sum(seq),"
                 " sum(received_ms - 1700000000000), min(type), max(type) FROM messages",
                 "1200|300|3000|1797000|1|1");
    assert_query("SELECT count(*), sum(next_command), count(commands) FROM devices",
                 "300|44850|43");
    uint8_t enc[MWI_JOURNAL_MAX];
    size_t len = 0;
    mw_message_t last = observation("d-299", 77, 4);
    cr_assert_eq(mwi_journal_encode(&last, enc, &len), MW_OK);
    char hex[2 * MWI_JOURNAL_MAX + 1] = "";
    for (size_t i = 0; i < len; i++)
        snprintf(hex + 2 * i, 3, "%02x", enc[i]);
    assert_query("SELECT encode(batch, 'hex') FROM messages WHERE device = 'd-299' AND seq = 4",
                 hex);
    mw_command_t cmds[MWI_MAX_COMMANDS];
    uint8_t n = 0;
    uint64_t next = 0;
    bool found = false;
    cr_assert_eq(mwi_store_load_device(s, "d-294", &got, &next, cmds, &n, &found), MW_OK);
    cr_assert(found);
    cr_assert_eq(next, 294);
    cr_assert_eq(got.top, EACH);
    cr_assert_eq(n, 1);
    cr_assert_eq(cmds[0].u.interval_ms, 2500);
    cr_assert_eq(mwi_store_load_device(s, "d-295", &got, &next, cmds, &n, &found), MW_OK);
    cr_assert_eq(n, 0);
    mwi_store_close(&s);
}

Test(store_pg, migrates_once_and_refuses_a_newer_schema)
{
    mwi_store *s = open_as("gw");
    mwi_store_close(&s);
    s = open_as("gw"); /* again: nothing to do */
    mwi_store_close(&s);
    assert_query("SELECT string_agg(version::text, ',' ORDER BY version) FROM schema_version",
                 "1,2,3");
    assert_query("SELECT count(*) FROM information_schema.tables WHERE table_schema = 'public'",
                 "6");

    /* A store of version 1 (no pending commands) with a device in it is brought up to date, and
     * its device has none pending. */
    s = open_as("gw");
    mwi_replay r = delivered(3, 2), got;
    cr_assert_eq(mwi_store_begin(s), MW_OK);
    cr_assert_eq(mwi_store_put_device(s, "old", &r, 5, NULL, 0), MW_OK);
    cr_assert_eq(mwi_store_commit(s, 0), MW_OK);
    mwi_store_close(&s);
    cr_assert_eq(mwt_pg_sql(&pg,
                            "ALTER TABLE devices DROP COLUMN commands;"
                            " DROP TABLE certificates;"
                            " DELETE FROM schema_version WHERE version >= 2",
                            NULL),
                 0);
    s = open_as("gw");
    assert_query("SELECT string_agg(version::text, ',' ORDER BY version) FROM schema_version",
                 "1,2,3");
    mw_command_t cmds[MWI_MAX_COMMANDS];
    uint8_t ncmds = 9;
    bool found = false;
    uint64_t next = 0;
    cr_assert_eq(mwi_store_load_device(s, "old", &got, &next, cmds, &ncmds, &found), MW_OK);
    cr_assert(found);
    cr_assert_eq(next, 5);
    cr_assert_eq(ncmds, 0, "a device of the old schema has no command pending");
    mwi_store_close(&s);

    cr_assert_eq(mwt_pg_sql(&pg, "INSERT INTO schema_version(version) VALUES (4)", NULL), 0);
    mw_error_detail_t d;
    memset(&d, 0, sizeof d);
    cr_assert_eq(mwi_store_open_as(pg.url, "gw", &s, &d), MW_EIO);
    cr_assert_null(s);
    cr_assert_not_null(strstr(d.reason, "newer medwire"), "%s", d.reason);
}

/* An issued certificate is written with the transaction, bytes whole, once per serial. */
Test(store_pg, issued_certificates_are_recorded_with_the_transaction_once_each)
{
    mwi_store *s = open_as("gw");
    uint8_t der[300];
    for (size_t i = 0; i < sizeof der; i++)
        der[i] = (uint8_t)i; /* every byte value, NUL and 0x5c included */
    mwi_store_cert c = {.device = "dev-1",
                        .serial = "0a1b",
                        .replaces = "09ff",
                        .not_before = 1700000000,
                        .not_after = 1800000000,
                        .issued_ms = 1750000000123u,
                        .der = der,
                        .len = sizeof der};
    cr_assert_eq(mwi_store_begin(s), MW_OK);
    cr_assert_eq(mwi_store_put_certificate(s, &c), MW_OK);
    mwi_store_rollback(s);
    assert_query("SELECT count(*) FROM certificates", "0");
    cr_assert_eq(mwi_store_begin(s), MW_OK);
    cr_assert_eq(mwi_store_put_certificate(s, &c), MW_OK);
    cr_assert_eq(mwi_store_commit(s, 0), MW_OK);
    c.issued_ms = 1; /* the same certificate told again keeps its first record */
    cr_assert_eq(mwi_store_begin(s), MW_OK);
    cr_assert_eq(mwi_store_put_certificate(s, &c), MW_OK);
    cr_assert_eq(mwi_store_commit(s, 0), MW_OK);
    mwi_store_close(&s);
    assert_query("SELECT device || ' ' || serial || ' ' || replaces || ' ' || not_before || ' '"
                 " || not_after || ' ' || issued_ms || ' ' || length(cert) || ' '"
                 " || md5(cert) FROM certificates",
                 /* md5 of bytes 0..255, 0..43 */
                 "dev-1 0a1b 09ff 1700000000 1800000000 1750000000123 300 "
                 "17b3839204f7b81a93eb2718b1379e6f");
}

struct opener {
    mwi_store *s;
    mw_err e;
    char url[256];
};

static void *open_thread(void *arg)
{
    struct opener *o = arg;
    mw_error_detail_t d;
    o->e = mwi_store_open_as(o->url, "gw", &o->s, &d);
    return NULL;
}

Test(store_pg, gateways_starting_together_migrate_once)
{
    cr_assert_eq(mwt_pg_sql(&pg, "CREATE DATABASE together", NULL), 0);
    struct opener o[4];
    pthread_t t[4];
    for (int i = 0; i < 4; i++) {
        memset(&o[i], 0, sizeof o[i]);
        snprintf(o[i].url, sizeof o[i].url, "postgresql://postgres@127.0.0.1:%d/together", pg.port);
        cr_assert_eq(pthread_create(&t[i], NULL, open_thread, &o[i]), 0);
    }
    for (int i = 0; i < 4; i++) {
        pthread_join(t[i], NULL);
        cr_assert_eq(o[i].e, MW_OK, "gateway %d", i);
        mwi_store_close(&o[i].s);
    }
}

Test(store_pg, never_shows_the_password)
{
    mwi_store *s = NULL;
    mw_error_detail_t d;
    memset(&d, 0, sizeof d);
    char url[200];
    /* The server's port plus one: nobody listens there. */
    snprintf(url, sizeof url, "postgresql://postgres:s3cr3t-pw@127.0.0.1:%d/medwire",
             pg.port == 65535 ? 1 : pg.port + 1);
    cr_assert_eq(mwi_store_open_as(url, "gw", &s, &d), MW_EIO);
    cr_assert_null(strstr(d.reason, "s3cr3t"), "%s", d.reason);
    cr_assert_not_null(strstr(d.reason, "postgresql://postgres:***@127.0.0.1"), "%s", d.reason);
}

/* A second gateway takes a batch of the same device while the first holds its row. */
struct locker {
    mwi_store *s;
    mwi_replay r;
    uint64_t next;
    bool found;
    mw_err e;
    atomic_bool done;
};

static void *lock_thread(void *arg)
{
    struct locker *l = arg;
    l->e = mwi_store_lock_device(l->s, "pump-9", &l->r, &l->next, NULL, NULL, &l->found);
    atomic_store(&l->done, true);
    return NULL;
}

Test(store_pg, two_gateways_serialise_on_a_device_and_the_second_reads_what_the_first_committed)
{
    mwi_store *a = open_as("gw-a");
    struct locker b;
    memset(&b, 0, sizeof b);
    b.s = open_as("gw-b");
    mwi_replay ra;
    uint64_t next = 0;
    bool found = true;
    /* Both knew nothing of the device: the row does not exist yet. */
    cr_assert_eq(mwi_store_lock_device(a, "pump-9", &ra, &next, NULL, NULL, &found), MW_OK);
    cr_assert_not(found);
    pthread_t t;
    cr_assert_eq(pthread_create(&t, NULL, lock_thread, &b), 0);
    mwt_sleep_ms(400);
    cr_assert_not(atomic_load(&b.done), "the second waits for the first's commit");
    ra = delivered(11, 3);
    cr_assert_eq(mwi_store_put_device(a, "pump-9", &ra, 77, NULL, 0), MW_OK);
    cr_assert_eq(mwi_store_commit(a, 0), MW_OK);
    pthread_join(t, NULL);
    cr_assert_eq(b.e, MW_OK);
    cr_assert(b.found, "the second reads the first's state, not the one it had");
    cr_assert_eq(b.next, 77);
    cr_assert_eq(mwi_replay_check(&b.r, 3, 1003), MWI_REPLAY_DUPLICATE);
    cr_assert_eq(mwi_replay_check(&b.r, 4, 1004), MWI_REPLAY_NEW);
    mwi_store_rollback(b.s);

    /* A device already known: the same, with the row there from the start. */
    cr_assert_eq(mwi_store_lock_device(a, "pump-9", &ra, &next, NULL, NULL, &found), MW_OK);
    cr_assert(found);
    atomic_store(&b.done, false);
    cr_assert_eq(pthread_create(&t, NULL, lock_thread, &b), 0);
    mwt_sleep_ms(300);
    cr_assert_not(atomic_load(&b.done));
    cr_assert_eq(mwi_replay_mark(&ra, 4, 1004), MW_OK);
    cr_assert_eq(mwi_store_put_device(a, "pump-9", &ra, 78, NULL, 0), MW_OK);
    cr_assert_eq(mwi_store_commit(a, 0), MW_OK);
    pthread_join(t, NULL);
    cr_assert(b.found);
    cr_assert_eq(b.next, 78);
    cr_assert_eq(mwi_replay_check(&b.r, 4, 1004), MWI_REPLAY_DUPLICATE);
    mwi_store_rollback(b.s);
    mwi_store_close(&b.s);
    mwi_store_close(&a);
}

struct rows_seen {
    size_t n, index[8];
    bool has_state[8];
    uint64_t next[8];
    uint8_t ncmds[8];
};

static void on_row(void *ctx, size_t index, const mwi_replay *r, uint64_t next,
                   const mw_command_t *cmds, uint8_t ncmds)
{
    (void)cmds;
    struct rows_seen *seen = ctx;
    cr_assert_lt(seen->n, 8);
    seen->index[seen->n] = index;
    seen->has_state[seen->n] = r != NULL;
    seen->next[seen->n] = next;
    seen->ncmds[seen->n] = ncmds;
    seen->n++;
}

/* The rows of several devices, locked and read in one statement: each device with a row is
 * told once, by its place in the list (whatever its id holds), and a second gateway waits for
 * the commit before it reads any of them. */
Test(store_pg, several_devices_are_locked_and_read_in_one_statement)
{
    mwi_store *a = open_as("gw-a");
    struct locker b;
    memset(&b, 0, sizeof b);
    b.s = open_as("gw-b");
    static const char odd[] = "pump-9\",{}\\x"; /* quote, comma, braces, backslash */
    mwi_replay r = delivered(8, 2);
    mw_command_t cmd = {.id = 77, .expires_ms = 1, .kind = MW_CMD_ROTATE_KEYS};
    cr_assert_eq(mwi_store_begin(a), MW_OK);
    cr_assert_eq(mwi_store_put_device(a, "pump-9", &r, 10, NULL, 0), MW_OK);
    cr_assert_eq(mwi_store_put_device(a, odd, &r, 11, &cmd, 1), MW_OK);
    cr_assert_eq(mwi_store_commit(a, 0), MW_OK);
    cr_assert(mwi_store_shared(a));

    const char *ids[] = {odd, "never-seen", "pump-9"};
    struct rows_seen seen = {0};
    cr_assert_eq(mwi_store_lock_devices(a, ids, 3, on_row, &seen), MW_OK);
    cr_assert_eq(seen.n, 2, "the device without a row is not told");
    for (size_t i = 0; i < seen.n; i++) {
        cr_assert(seen.has_state[i]);
        if (seen.index[i] == 0) {
            cr_assert_eq(seen.next[i], 11);
            cr_assert_eq(seen.ncmds[i], 1);
        } else {
            cr_assert_eq(seen.index[i], 2);
            cr_assert_eq(seen.next[i], 10);
        }
    }
    pthread_t t;
    cr_assert_eq(pthread_create(&t, NULL, lock_thread, &b), 0);
    mwt_sleep_ms(300);
    cr_assert_not(atomic_load(&b.done), "the other gateway waits for this commit");
    cr_assert_eq(mwi_store_put_device(a, "pump-9", &r, 12, NULL, 0), MW_OK);
    cr_assert_eq(mwi_store_commit(a, 0), MW_OK);
    pthread_join(t, NULL);
    cr_assert_eq(b.e, MW_OK);
    cr_assert_eq(b.next, 12, "and then reads what it committed");
    mwi_store_rollback(b.s);
    mwi_store_close(&b.s);

    /* A row that does not read back as a state is refused, not told. */
    cr_assert_eq(mwt_pg_sql(&pg, "UPDATE devices SET replay = '\\x09' WHERE id = 'pump-9'", NULL),
                 0);
    memset(&seen, 0, sizeof seen);
    cr_assert_eq(mwi_store_lock_devices(a, &ids[2], 1, on_row, &seen), MW_EIO);
    cr_assert_eq(seen.n, 0);
    mwi_store_rollback(a);
    mwi_store_close(&a);
}

struct cross {
    mwi_store *s;
    const char *id;
    mw_err e;
};

static void *cross_thread(void *arg)
{
    struct cross *c = arg;
    mwi_replay r;
    uint64_t next = 0;
    bool found = false;
    c->e = mwi_store_lock_device(c->s, c->id, &r, &next, NULL, NULL, &found);
    return NULL;
}

/* Two gateways taking two devices' batches in opposite orders: the server breaks one
 * transaction off (a deadlock), and that gateway counts a conflict, the other none. */
Test(store_pg, a_deadlock_between_gateways_is_told_as_a_conflict)
{
    mwi_store *a = open_as("gw-a"), *b = open_as("gw-b");
    mwi_replay r;
    uint64_t next = 0;
    bool found = false;
    cr_assert_eq(mwi_store_lock_device(a, "dev-x", &r, &next, NULL, NULL, &found), MW_OK);
    cr_assert_eq(mwi_store_commit(a, 0), MW_OK); /* both rows exist from now on */
    cr_assert_eq(mwi_store_lock_device(b, "dev-y", &r, &next, NULL, NULL, &found), MW_OK);
    cr_assert_eq(mwi_store_commit(b, 0), MW_OK);
    cr_assert_eq(mwi_store_lock_device(a, "dev-x", &r, &next, NULL, NULL, &found), MW_OK);
    cr_assert_eq(mwi_store_lock_device(b, "dev-y", &r, &next, NULL, NULL, &found), MW_OK);
    struct cross bx = {.s = b, .id = "dev-x"};
    pthread_t t;
    cr_assert_eq(pthread_create(&t, NULL, cross_thread, &bx), 0);
    mwt_sleep_ms(300); /* b now waits for a's row */
    mw_err ea = mwi_store_lock_device(a, "dev-y", &r, &next, NULL, NULL, &found);
    bool a_conflict = ea != MW_OK && mwi_store_take_conflict(a);
    if (ea != MW_OK)
        mwi_store_rollback(a); /* a was broken off: b gets its row */
    pthread_join(t, NULL);
    bool b_conflict = bx.e != MW_OK && mwi_store_take_conflict(b);
    cr_assert((ea == MW_OK) != (bx.e == MW_OK), "exactly one of the two is broken off");
    cr_assert(a_conflict || b_conflict, "and it is told as a conflict");
    cr_assert_not(mwi_store_take_conflict(a) || mwi_store_take_conflict(b), "told once");
    mwi_store_rollback(a);
    mwi_store_rollback(b);
    mwi_store_close(&a);
    mwi_store_close(&b);
}

Test(store_pg, a_server_that_goes_away_fails_commits_and_one_that_returns_takes_them_again)
{
    mwi_store *s = open_as("gw");
    mw_message_t m = observation("pump-1", 3, 1);
    cr_assert_eq(mwi_store_begin(s), MW_OK);
    cr_assert_eq(mwi_store_put_message(s, &m, 0), MW_OK);
    cr_assert_eq(mwi_store_commit(s, 1), MW_OK);

    /* Restarted between two transactions: the next one reconnects. */
    cr_assert(mwt_pg_restart(&pg));
    m.seq = 2;
    cr_assert_eq(mwi_store_begin(s), MW_OK);
    cr_assert_eq(mwi_store_put_message(s, &m, 0), MW_OK);
    cr_assert_eq(mwi_store_commit(s, 2), MW_OK);

    /* Gone in the middle of one: that commit fails, and so do those while it is away. */
    m.seq = 3;
    cr_assert_eq(mwi_store_begin(s), MW_OK);
    cr_assert_eq(mwi_store_put_message(s, &m, 0), MW_OK);
    cr_assert(mwt_pg_halt(&pg));
    /* Journal rows are staged and written at the commit, which is where the loss shows. */
    cr_assert_eq(mwi_store_commit(s, 3), MW_EIO, "the server is gone");
    cr_assert_not(mwi_store_in_txn(s));
    cr_assert_neq(mwi_store_begin(s), MW_OK);
    cr_assert_not(mwi_store_healthy(s));

    cr_assert(mwt_pg_resume(&pg));
    cr_assert(mwi_store_healthy(s));
    cr_assert_eq(mwi_store_begin(s), MW_OK);
    cr_assert_eq(mwi_store_put_message(s, &m, 0), MW_OK);
    cr_assert_eq(mwi_store_commit(s, 3), MW_OK);
    uint64_t n = 0, ck = 0;
    cr_assert_eq(mwi_store_count(s, &n), MW_OK);
    cr_assert_eq(n, 3);
    cr_assert_eq(mwi_store_checkpoint(s, &ck), MW_OK);
    cr_assert_eq(ck, 3);
    mwi_store_close(&s);
}
