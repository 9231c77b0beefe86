/* SPDX-License-Identifier: Apache-2.0 */
/* test_outbox_pg.c -- the outbox on a real PostgreSQL server, shared by gateways: what the
 * SQLite outbox does it does (checkpoint, recovery, order, retry, park, bound, lanes), a row
 * goes only once its writer's store has committed it, two gateways' senders never hold one
 * row together, and a dead gateway's claims pass to another when their lease runs out. */
#include <criterion/criterion.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gateway/store.h"
#include "outbox.h"
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

TestSuite(outbox_pg, .init = up, .fini = down, .timeout = 30);

/* A gateway: its store (whose checkpoint releases its rows) and its outbox. */
typedef struct gw {
    mwi_store *store;
    outbox_t *ob;
} gw;

static gw gateway(const char *id, uint64_t max)
{
    gw g = {0};
    mw_error_detail_t d;
    memset(&d, 0, sizeof d);
    cr_assert_eq(mwi_store_open_as(pg.url, id, &g.store, &d), MW_OK, "%s", d.reason);
    char why[300] = "";
    g.ob = outbox_open_shared(pg.url, id, "hl7", max, why, sizeof why);
    cr_assert_not_null(g.ob, "%s", why);
    return g;
}

static void gateway_close(gw *g)
{
    outbox_close(&g->ob);
    mwi_store_close(&g->store);
}

/* The store commits @p ck as the gateway's checkpoint, as mw_gateway_poll does after the
 * outbox's commit. */
static void store_commit(gw *g, uint64_t ck)
{
    cr_assert_eq(mwi_store_begin(g->store), MW_OK);
    cr_assert_eq(mwi_store_commit(g->store, ck), MW_OK);
    outbox_release(g->ob);
}

static void stage(outbox_t *ob, const char *device, const char *text)
{
    cr_assert_eq(outbox_stage(ob, device, text, strlen(text)), MW_OK);
}

static uint64_t commit(outbox_t *ob)
{
    uint64_t ck = 0;
    cr_assert_eq(outbox_commit(ob, &ck), MW_OK);
    return ck;
}

/* What psql prints for @p sql, its first line. */
static void assert_query(const char *sql, const char *want)
{
    char out[200];
    snprintf(out, sizeof out, "%s/q.out", pg.dir);
    cr_assert_eq(mwt_pg_sql(&pg, sql, out), 0, "%s", sql);
    char *text = mwt_read_file(out);
    cr_assert_not_null(text);
    text[strcspn(text, "\n")] = '\0';
    cr_expect_str_eq(text, want, "%s", sql);
    free(text);
}

Test(outbox_pg, commit_recover_and_send_order)
{
    gw a = gateway("gw-a", 100);
    uint64_t ck = 99;
    cr_expect_eq(outbox_commit(a.ob, &ck), MW_OK);
    cr_expect_eq(ck, 0u, "nothing staged, nothing committed");
    stage(a.ob, "a", "m1");
    stage(a.ob, "b", "m2");
    ck = commit(a.ob);
    cr_expect_eq(ck, 2u, "the checkpoint is the last row's id");
    outbox_row_t row;
    cr_expect_not(outbox_next(a.ob, 0, &row), "not offered: the store has not committed");
    store_commit(&a, ck);
    /* Committed in the outbox but not in the store, then rolled back: never offered. */
    stage(a.ob, "a", "m3");
    cr_expect_eq(commit(a.ob), 3u);
    cr_assert_eq(outbox_recover(a.ob, ck), MW_OK);
    cr_assert(outbox_next(a.ob, 0, &row));
    cr_expect_eq(row.id, 1);
    cr_expect_str_eq(row.device, "a");
    cr_expect(row.len == 2 && memcmp(row.payload, "m1", 2) == 0);
    cr_expect_eq(outbox_retry(a.ob, row.id, 1, 12345), MW_OK);
    outbox_row_free(&row);
    cr_assert(outbox_next(a.ob, 0, &row));
    cr_expect_eq(row.id, 1, "its own claim is the sender's to take again");
    cr_expect_eq(row.attempts, 1u, "attempts are kept");
    cr_expect_eq(outbox_delivered(a.ob, row.id), MW_OK);
    outbox_row_free(&row);
    cr_assert(outbox_next(a.ob, 0, &row));
    cr_expect_eq(row.id, 2);
    cr_expect_eq(outbox_park(a.ob, row.id), MW_OK);
    outbox_row_free(&row);
    cr_expect_not(outbox_next(a.ob, 0, &row), "parked rows are not offered, m3 was rolled back");
    outbox_stats_t st;
    outbox_stats(a.ob, &st);
    cr_expect_eq(st.depth, 1u);
    cr_expect_eq(st.parked, 1u);
    cr_expect_eq(st.oldest_ms, 0u, "no unparked row");
    stage(a.ob, "c", "m4");
    cr_expect_eq(commit(a.ob), 4u, "ids are never reused");
    assert_query("SELECT id, origin, lane, claimed_by IS NULL FROM outbox ORDER BY id",
                 "2|gw-a|hl7|t");
    gateway_close(&a);
    /* Reopened, the gateway's last row is its checkpoint again (nothing staged to commit). */
    a = gateway("gw-a", 100);
    cr_expect_eq(commit(a.ob), 4u);
    gateway_close(&a);
}

/* Two gateways: each recovers its own rows only, a row goes only once its writer's store has
 * committed it, whichever gateway delivers it, and a name is held by one gateway at a time. */
Test(outbox_pg, each_gateway_recovers_its_own_rows_and_any_delivers_what_a_store_committed)
{
    gw a = gateway("gw-a", 100), b = gateway("gw-b", 100);
    char why[300] = "";
    outbox_t *twin = outbox_open_shared(pg.url, "gw-a", "hl7", 100, why, sizeof why);
    cr_expect_null(twin, "a second gateway named gw-a");
    cr_expect_not_null(strstr(why, "in use"), "%s", why);
    stage(a.ob, "a", "A1");
    uint64_t cka = commit(a.ob);
    stage(b.ob, "b", "B1");
    uint64_t ckb = commit(b.ob);
    stage(a.ob, "a", "A2");
    uint64_t cka2 = commit(a.ob);
    cr_expect(cka < ckb && ckb < cka2, "one sequence for every gateway");
    outbox_row_t rows[4];
    cr_expect_eq(outbox_next_batch(b.ob, 0, rows, 4), 0u, "no store has committed");
    store_commit(&a, cka);
    size_t n = outbox_next_batch(b.ob, 0, rows, 4);
    cr_assert_eq(n, 1u, "gw-b delivers gw-a's committed row, not the rest");
    cr_expect(memcmp(rows[0].payload, "A1", 2) == 0);
    cr_expect_eq(outbox_delivered(b.ob, rows[0].id), MW_OK);
    outbox_row_free(&rows[0]);
    /* gw-a's poll fails after its outbox committed A2: only its own row after its checkpoint
     * goes, B1 above that number stays. */
    cr_assert_eq(outbox_recover(a.ob, cka), MW_OK);
    outbox_stats_t st;
    outbox_stats(a.ob, &st);
    cr_expect_eq(st.depth, 1u, "B1 is left");
    store_commit(&b, ckb);
    n = outbox_next_batch(a.ob, 0, rows, 4);
    cr_assert_eq(n, 1u);
    cr_expect(memcmp(rows[0].payload, "B1", 2) == 0);
    outbox_row_free(&rows[0]);
    gateway_close(&b);
    gateway_close(&a);
    twin = outbox_open_shared(pg.url, "gw-a", "hl7", 100, why, sizeof why);
    cr_expect_not_null(twin, "the name is free once its gateway is gone: %s", why);
    outbox_close(&twin);
}

/* One destination full refuses the commit for all, counting every gateway's rows. */
Test(outbox_pg, a_full_lane_refuses_the_whole_commit)
{
    gw a = gateway("gw-a", 2), b = gateway("gw-b", 2);
    char why[300] = "";
    outbox_t *fhir = outbox_add_lane(a.ob, "fhir", why, sizeof why);
    cr_assert_not_null(fhir, "%s", why);
    stage(a.ob, "a", "H1");
    stage(fhir, "a", "F1");
    cr_expect_eq(commit(fhir), 2u, "a commit through any lane commits all");
    stage(b.ob, "b", "H2");
    uint64_t ckb = commit(b.ob);
    store_commit(&b, ckb);
    stage(a.ob, "a", "H3");
    stage(fhir, "a", "F3");
    uint64_t ck = 0;
    cr_expect_eq(outbox_commit(a.ob, &ck), MW_EFULL, "gw-b's row fills the HL7 lane");
    outbox_stats_t hs, fs;
    outbox_stats(a.ob, &hs);
    outbox_stats(fhir, &fs);
    cr_expect_eq(hs.depth, 2u, "nothing of a refused commit is kept");
    cr_expect_eq(fs.depth, 1u);
    cr_expect(hs.refused);
    cr_expect_not(fs.refused);
    cr_expect_eq(hs.full, 1u);
    cr_expect_gt(hs.oldest_ms, 0u);
    /* gw-b's sender delivers its row: there is room again. */
    outbox_row_t row;
    cr_assert(outbox_next(b.ob, 0, &row));
    cr_expect(memcmp(row.payload, "H2", 2) == 0);
    cr_expect_eq(outbox_delivered(b.ob, row.id), MW_OK);
    outbox_row_free(&row);
    stage(a.ob, "a", "H3");
    stage(fhir, "a", "F3");
    cr_expect_eq(outbox_commit(a.ob, &ck), MW_OK);
    outbox_stats(fhir, &fs);
    cr_expect_eq(fs.depth, 2u);
    cr_expect_eq(outbox_unclaimed(a.ob), 0u);
    outbox_close(&fhir);
    cr_expect_eq(outbox_unclaimed(a.ob), 2u, "the FHIR rows wait for a FHIR destination");
    gateway_close(&b);
    gateway_close(&a);
}

/* The rows are @p want, in order; delivered. */
static void expect_payloads(outbox_t *ob, outbox_row_t *rows, size_t n, const char *const want[])
{
    size_t nw = 0;
    while (want[nw] != NULL)
        nw++;
    for (size_t i = 0; i < n; i++) {
        const char *w = i < nw ? want[i] : NULL;
        cr_expect(w && rows[i].len == strlen(w) && memcmp(rows[i].payload, w, rows[i].len) == 0,
                  "row %zu: %.*s, not %s", i, (int)rows[i].len, rows[i].payload, w ? w : "(none)");
        cr_expect_eq(outbox_delivered(ob, rows[i].id), MW_OK);
        outbox_row_free(&rows[i]);
    }
}

/* A device's rows go in order, one gateway at a time: while gw-a's sender holds x's first row,
 * gw-b takes y's row and none of x's later ones (not even the one it wrote itself), and takes
 * them, in order, once the first is delivered. A parked earlier row, or one not released (its
 * writer's store did not commit it: it goes at recovery), holds nothing up. */
Test(outbox_pg, a_device_is_sent_in_order_by_one_gateway_at_a_time)
{
    gw a = gateway("gw-a", 100), b = gateway("gw-b", 100);
    stage(a.ob, "x", "X1");
    stage(a.ob, "x", "X2");
    stage(a.ob, "y", "Y1");
    store_commit(&a, commit(a.ob));
    outbox_row_t first, rows[4];
    cr_assert(outbox_next(a.ob, 0, &first));
    cr_expect(memcmp(first.payload, "X1", 2) == 0);
    stage(b.ob, "x", "X3"); /* the device moved to gw-b */
    store_commit(&b, commit(b.ob));
    size_t n = outbox_next_batch(b.ob, 0, rows, 4);
    cr_expect_eq(n, 1u, "y's row only: gw-a holds x's first");
    expect_payloads(b.ob, rows, n, (const char *const[]){"Y1", NULL});
    cr_expect_eq(outbox_delivered(a.ob, first.id), MW_OK);
    outbox_row_free(&first);
    n = outbox_next_batch(b.ob, 0, rows, 4);
    cr_expect_eq(n, 2u);
    expect_payloads(b.ob, rows, n, (const char *const[]){"X2", "X3", NULL});
    assert_query("SELECT count(*) FROM outbox", "0");

    /* Parked: the next goes. */
    stage(a.ob, "x", "X4");
    stage(a.ob, "x", "X5");
    uint64_t ck = commit(a.ob);
    store_commit(&a, ck);
    cr_assert(outbox_next(a.ob, 0, &first));
    cr_expect_eq(outbox_park(a.ob, first.id), MW_OK);
    outbox_row_free(&first);
    n = outbox_next_batch(b.ob, 0, rows, 4);
    cr_expect_eq(n, 1u);
    expect_payloads(b.ob, rows, n, (const char *const[]){"X5", NULL});
    /* Not released: gw-a's outbox committed X6, its store did not; gw-b's X7 goes. */
    stage(a.ob, "x", "X6");
    (void)commit(a.ob);
    stage(b.ob, "x", "X7");
    store_commit(&b, commit(b.ob));
    n = outbox_next_batch(b.ob, 0, rows, 4);
    cr_expect_eq(n, 1u);
    expect_payloads(b.ob, rows, n, (const char *const[]){"X7", NULL});
    cr_assert_eq(outbox_recover(a.ob, ck), MW_OK);
    assert_query("SELECT count(*) FROM outbox WHERE payload = 'X6'", "0");
    gateway_close(&b);
    gateway_close(&a);
}

/* Two senders of two gateways taking batches at the same time. */
struct sender {
    outbox_t *ob;
    int64_t ids[400];
    unsigned long when[400]; /* the order of each delivery among both senders' */
    size_t n;
};

static atomic_ulong deliveries;

static void *drain(void *arg)
{
    struct sender *s = arg;
    outbox_row_t rows[7];
    for (;;) {
        size_t n = outbox_next_batch(s->ob, 0, rows, 7);
        if (n == 0)
            break;
        for (size_t i = 0; i < n; i++) {
            /* The send is stamped before the row is marked delivered, as a sender sends before
             * it records: a device's next row can be claimed only once this one is deleted, so
             * its stamp is later. Stamped after, a thread paused between the two (ASan on two
             * cores) let the other gateway's later rows be stamped first. */
            if (s->n < sizeof s->ids / sizeof s->ids[0]) {
                s->when[s->n] = atomic_fetch_add(&deliveries, 1);
                s->ids[s->n++] = rows[i].id;
            }
            (void)outbox_delivered(s->ob, rows[i].id);
            outbox_row_free(&rows[i]);
        }
    }
    return NULL;
}

static int by_id(const void *x, const void *y)
{
    int64_t a = *(const int64_t *)x, b = *(const int64_t *)y;
    return (a > b) - (a < b);
}

Test(outbox_pg, two_gateways_claiming_together_never_take_the_same_row)
{
    gw a = gateway("gw-a", 1000), b = gateway("gw-b", 1000);
    char text[16];
    for (int i = 0; i < 150; i++) {
        snprintf(text, sizeof text, "A%d", i);
        stage(a.ob, "a", text);
        snprintf(text, sizeof text, "B%d", i);
        stage(b.ob, "b", text);
    }
    store_commit(&a, commit(a.ob));
    store_commit(&b, commit(b.ob));
    /* A claim holds without a delivery: the other gateway takes the next rows it may, those of
     * the other device (a device's later rows wait behind its earlier ones). */
    outbox_row_t ra[5], rb[5];
    cr_assert_eq(outbox_next_batch(a.ob, 0, ra, 5), 5u);
    cr_assert_eq(outbox_next_batch(b.ob, 0, rb, 5), 5u);
    for (size_t i = 0; i < 5; i++) {
        cr_expect_eq(ra[i].id, (int64_t)i + 1);
        cr_expect_eq(rb[i].id, (int64_t)i + 151, "gw-a's claimed rows and device a's are skipped");
        outbox_row_free(&ra[i]);
        outbox_row_free(&rb[i]);
    }
    struct sender sa = {.ob = a.ob}, sb = {.ob = b.ob};
    pthread_t ta, tb;
    cr_assert_eq(pthread_create(&ta, NULL, drain, &sa), 0);
    cr_assert_eq(pthread_create(&tb, NULL, drain, &sb), 0);
    pthread_join(ta, NULL);
    pthread_join(tb, NULL);
    int64_t all[800];
    size_t n = 0;
    for (size_t i = 0; i < sa.n; i++)
        all[n++] = sa.ids[i];
    for (size_t i = 0; i < sb.n; i++)
        all[n++] = sb.ids[i];
    cr_assert_eq(n, 300u, "every row delivered (a: %zu, b: %zu)", sa.n, sb.n);
    /* Each device's rows (ids 1-150: a, 151-300: b) delivered in order, whoever sent them. */
    int64_t by_when[800] = {0};
    for (size_t i = 0; i < sa.n; i++)
        by_when[sa.when[i]] = sa.ids[i];
    for (size_t i = 0; i < sb.n; i++)
        by_when[sb.when[i]] = sb.ids[i];
    int64_t last[2] = {0, 150};
    for (size_t i = 0; i < n; i++) {
        int dev = by_when[i] > 150;
        cr_expect_gt(by_when[i], last[dev], "row %lld after %lld", (long long)by_when[i],
                     (long long)last[dev]);
        last[dev] = by_when[i];
    }
    qsort(all, n, sizeof all[0], by_id);
    for (size_t i = 0; i < n; i++)
        cr_assert_eq(all[i], (int64_t)i + 1, "each row once, by one gateway");
    outbox_stats_t st;
    outbox_stats(a.ob, &st);
    cr_expect_eq(st.depth, 0u);
    gateway_close(&b);
    gateway_close(&a);
}

Test(outbox_pg, a_dead_gateways_claims_pass_to_another_when_the_lease_runs_out)
{
    gw a = gateway("gw-a", 100), b = gateway("gw-b", 100);
    stage(a.ob, "a", "A1");
    stage(a.ob, "a", "A2");
    store_commit(&a, commit(a.ob));
    outbox_row_t rows[4];
    cr_assert_eq(outbox_next_batch(a.ob, 0, rows, 4), 2u);
    for (size_t i = 0; i < 2; i++)
        outbox_row_free(&rows[i]);
    assert_query("SELECT count(*) FROM outbox WHERE claimed_by = 'gw-a'"
                 " AND claimed_until BETWEEN now() + interval '55 s' AND now() + interval '61 s'",
                 "2");
    /* gw-a dies holding its claims. */
    gateway_close(&a);
    cr_expect_eq(outbox_next_batch(b.ob, 0, rows, 4), 0u, "the lease holds");
    /* The lease runs out (moved back rather than waited for). */
    cr_assert_eq(mwt_pg_sql(&pg, "UPDATE outbox SET claimed_until = now() - interval '1 ms'", NULL),
                 0);
    outbox_set_lease(b.ob, 2000);
    size_t n = outbox_next_batch(b.ob, 0, rows, 4);
    cr_assert_eq(n, 2u, "gw-b takes them over");
    cr_expect(memcmp(rows[0].payload, "A1", 2) == 0 && memcmp(rows[1].payload, "A2", 2) == 0);
    assert_query("SELECT count(*) FROM outbox WHERE claimed_by = 'gw-b'"
                 " AND claimed_until BETWEEN now() + interval '1 s' AND now() + interval '3 s'",
                 "2");
    /* gw-a comes back and retries a row it no longer holds: the row stays gw-b's. */
    a = gateway("gw-a", 100);
    cr_expect_eq(outbox_next_batch(a.ob, 0, rows + 2, 2), 0u, "gw-b's claims hold");
    cr_expect_eq(outbox_retry(a.ob, rows[0].id, 3, 0), MW_OK);
    assert_query("SELECT attempts, claimed_by FROM outbox ORDER BY id LIMIT 1", "0|gw-b");
    cr_expect_eq(outbox_delivered(b.ob, rows[0].id), MW_OK);
    cr_expect_eq(outbox_park(b.ob, rows[1].id), MW_OK);
    for (size_t i = 0; i < n; i++)
        outbox_row_free(&rows[i]);
    assert_query("SELECT count(*), bool_and(parked), count(claimed_by) FROM outbox", "1|t|0");
    gateway_close(&a);
    gateway_close(&b);
}

/* A sender that waited longer than its lease (a destination down) asks before it sends: a row
 * another gateway took over meanwhile is left to it, one nobody took is renewed and sent. */
Test(outbox_pg, a_sender_past_its_lease_sends_only_what_it_still_holds)
{
    gw a = gateway("gw-a", 100), b = gateway("gw-b", 100);
    stage(a.ob, "a", "A1");
    stage(a.ob, "a", "A2");
    stage(a.ob, "a", "A3");
    store_commit(&a, commit(a.ob));
    outbox_row_t rows[3], took[3];
    cr_assert_eq(outbox_next_batch(a.ob, 0, rows, 3), 3u);
    cr_assert(outbox_hold(a.ob, &rows[0]), "a fresh claim is held without asking");
    /* A minute later by both clocks: gw-a's claims ran out, and gw-b takes the oldest. */
    for (size_t i = 0; i < 3; i++)
        rows[i].held_ms -= 60000;
    cr_assert_eq(mwt_pg_sql(&pg, "UPDATE outbox SET claimed_until = now() - interval '1 ms'", NULL),
                 0);
    cr_assert_eq(outbox_next_batch(b.ob, 0, took, 1), 1u);
    cr_assert_eq(took[0].id, rows[0].id);
    cr_assert_not(outbox_hold(a.ob, &rows[0]), "gw-b holds A1 now: gw-a must not send it too");
    cr_assert(outbox_hold(a.ob, &rows[1]), "nobody took A2: gw-a renews its claim");
    assert_query("SELECT string_agg(claimed_by, ',' ORDER BY id) FROM outbox"
                 " WHERE claimed_until > now() + interval '55 s'",
                 "gw-b,gw-a");
    outbox_row_free(&took[0]);
    cr_assert_eq(outbox_next_batch(b.ob, 0, took, 3), 1u,
                 "A2 is gw-a's again, and A3 waits behind it (a device goes in order)");
    cr_assert_eq(took[0].id, rows[0].id);
    cr_assert(outbox_hold(a.ob, &rows[2]), "nobody took A3: gw-a renews its claim");
    /* A row another gateway delivered meanwhile is gone: not held either. */
    cr_assert_eq(outbox_delivered(b.ob, took[0].id), MW_OK);
    rows[0].held_ms -= 60000;
    cr_assert_not(outbox_hold(a.ob, &rows[0]));
    for (size_t i = 0; i < 3; i++)
        outbox_row_free(&rows[i]);
    outbox_row_free(&took[0]);
    gateway_close(&a);
    gateway_close(&b);
}

/* A gateway that used an outbox file before comes to the shared outbox with its store's
 * checkpoint counted in that file's ids: the shared ids go past it, so that no row is taken
 * for committed before the store commits it, and the checkpoint does not go back. */
Test(outbox_pg, a_checkpoint_from_an_earlier_outbox_is_passed_not_reused)
{
    gw b = gateway("gw-b", 100);
    stage(b.ob, "b", "B1");
    store_commit(&b, commit(b.ob));
    gw a = gateway("gw-a", 100);
    store_commit(&a, 5000); /* from the file */
    cr_assert_eq(outbox_recover(a.ob, 5000), MW_OK);
    cr_expect_eq(commit(a.ob), 5000u, "nothing staged: the store's checkpoint stays");
    stage(a.ob, "a", "A1");
    uint64_t ck = commit(a.ob);
    cr_expect_eq(ck, 5001u, "the next id is past the checkpoint");
    outbox_row_t rows[4];
    size_t n = outbox_next_batch(b.ob, 0, rows, 4);
    cr_assert_eq(n, 1u, "A1 waits for gw-a's store");
    cr_expect(memcmp(rows[0].payload, "B1", 2) == 0);
    outbox_row_free(&rows[0]);
    store_commit(&a, ck);
    n = outbox_next_batch(b.ob, 0, rows, 4);
    cr_assert_eq(n, 2u);
    cr_expect_eq(rows[1].id, 5001);
    for (size_t i = 0; i < n; i++)
        outbox_row_free(&rows[i]);
    /* A checkpoint the sequence has passed leaves it alone. */
    cr_assert_eq(outbox_recover(a.ob, 3), MW_OK);
    stage(a.ob, "a", "A2");
    cr_expect_eq(commit(a.ob), 5002u);
    gateway_close(&a);
    gateway_close(&b);
}
