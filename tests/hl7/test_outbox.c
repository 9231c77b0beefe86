/* SPDX-License-Identifier: Apache-2.0 */
/* test_outbox.c -- the HL7 outbox: a commit's checkpoint, recovery to it, the bound, the
 * sender's view (released rows only, oldest first), and the file's lock and mode. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "outbox.h"
#include "support/proc.h"

static outbox_t *open_in(char *path, size_t size, uint64_t max)
{
    snprintf(path, size, "%s/test.outbox", mwt_tmpdir());
    char why[300] = "";
    outbox_t *ob = outbox_open(path, "hl7", max, why, sizeof why);
    cr_assert_not_null(ob, "%s", why);
    return ob;
}

static void stage(outbox_t *ob, const char *device, const char *text)
{
    cr_assert_eq(outbox_stage(ob, device, text, strlen(text)), MW_OK);
}

Test(outbox, commit_recover_and_send_order)
{
    char path[400];
    outbox_t *ob = open_in(path, sizeof path, 100);
    uint64_t ck = 99;
    cr_expect_eq(outbox_commit(ob, &ck), MW_OK);
    cr_expect_eq(ck, 0u, "nothing staged, nothing committed");
    stage(ob, "a", "m1");
    stage(ob, "b", "m2");
    cr_assert_eq(outbox_commit(ob, &ck), MW_OK);
    cr_expect_eq(ck, 2u, "the checkpoint is the last row's id");
    outbox_row_t row;
    cr_expect_not(outbox_next(ob, 0, &row), "not released yet: the store has not committed");
    outbox_release(ob);
    /* Staged after the release, committed, then rolled back: never offered. */
    stage(ob, "a", "m3");
    uint64_t ck2 = 0;
    cr_assert_eq(outbox_commit(ob, &ck2), MW_OK);
    cr_expect_eq(ck2, 3u);
    cr_assert_eq(outbox_recover(ob, ck), MW_OK);
    cr_assert(outbox_next(ob, 0, &row));
    cr_expect_eq(row.id, 1);
    cr_expect_str_eq(row.device, "a");
    cr_expect_eq(row.len, 2u);
    cr_expect(memcmp(row.payload, "m1", 2) == 0);
    cr_expect_eq(outbox_retry(ob, row.id, 1, 12345), MW_OK);
    outbox_row_free(&row);
    cr_assert(outbox_next(ob, 0, &row));
    cr_expect_eq(row.attempts, 1u, "attempts are kept");
    cr_expect_eq(outbox_delivered(ob, row.id), MW_OK);
    outbox_row_free(&row);
    cr_assert(outbox_next(ob, 0, &row));
    cr_expect_eq(row.id, 2);
    cr_expect_eq(outbox_park(ob, row.id), MW_OK);
    outbox_row_free(&row);
    cr_expect_not(outbox_next(ob, 0, &row), "parked rows are not offered, m3 was rolled back");
    outbox_stats_t st;
    outbox_stats(ob, &st);
    cr_expect_eq(st.depth, 1u);
    cr_expect_eq(st.parked, 1u);
    cr_expect_eq(st.oldest_ms, 0u, "no unparked row");
    /* Ids are never reused: a checkpoint after a rollback is above every earlier one. */
    stage(ob, "c", "m4");
    cr_assert_eq(outbox_commit(ob, &ck), MW_OK);
    cr_expect_eq(ck, 4u);
    outbox_close(&ob);
    struct stat fs;
    cr_assert_eq(stat(path, &fs), 0);
    cr_expect_eq(fs.st_mode & 0777, 0600, "owner-only");
}

Test(outbox, bound_and_lock)
{
    char path[400];
    outbox_t *ob = open_in(path, sizeof path, 3);
    stage(ob, "a", "1");
    stage(ob, "a", "2");
    uint64_t ck = 0;
    cr_assert_eq(outbox_commit(ob, &ck), MW_OK);
    stage(ob, "a", "3");
    stage(ob, "a", "4");
    uint64_t ck2 = 0;
    cr_expect_eq(outbox_commit(ob, &ck2), MW_EFULL, "two more would pass the bound of 3");
    outbox_stats_t st;
    outbox_stats(ob, &st);
    cr_expect_eq(st.depth, 2u, "nothing of a refused commit is kept");
    cr_expect_eq(st.full, 1u);
    cr_expect_gt(st.oldest_ms, 0u);
    char why[300] = "";
    outbox_t *second = outbox_open(path, "hl7", 3, why, sizeof why);
    cr_expect_null(second, "a second gateway on the same outbox");
    cr_expect_not_null(strstr(why, "in use"), "%s", why);
    outbox_close(&ob);
    /* Reopened: the rows and their count are still there. */
    ob = outbox_open(path, "hl7", 3, why, sizeof why);
    cr_assert_not_null(ob, "%s", why);
    outbox_stats(ob, &st);
    cr_expect_eq(st.depth, 2u);
    cr_expect_eq(outbox_recover(ob, 0), MW_OK);
    outbox_stats(ob, &st);
    cr_expect_eq(st.depth, 2u, "a store with no checkpoint keeps what the outbox holds");
    cr_expect_eq(outbox_recover(ob, 1), MW_OK);
    outbox_stats(ob, &st);
    cr_expect_eq(st.depth, 1u, "rows after the checkpoint go");
    outbox_close(&ob);
}

Test(outbox, batch_takes_released_unparked_rows_in_order)
{
    char path[400];
    outbox_t *ob = open_in(path, sizeof path, 100);
    stage(ob, "a", "m1");
    stage(ob, "b", "m2");
    stage(ob, "a", "m3");
    uint64_t ck = 0;
    cr_assert_eq(outbox_commit(ob, &ck), MW_OK);
    outbox_row_t rows[4];
    cr_expect_eq(outbox_next_batch(ob, 0, rows, 4), 0u, "not released yet");
    outbox_release(ob);
    stage(ob, "c", "m4"); /* committed after the release: not offered */
    uint64_t ck2 = 0;
    cr_assert_eq(outbox_commit(ob, &ck2), MW_OK);
    size_t n = outbox_next_batch(ob, 0, rows, 2);
    cr_assert_eq(n, 2u, "at most the batch size");
    cr_expect_eq(rows[0].id, 1);
    cr_expect_eq(rows[1].id, 2);
    cr_expect_eq(outbox_park(ob, rows[1].id), MW_OK);
    cr_expect_eq(outbox_delivered(ob, rows[0].id), MW_OK);
    for (size_t i = 0; i < n; i++)
        outbox_row_free(&rows[i]);
    n = outbox_next_batch(ob, 0, rows, 4);
    cr_assert_eq(n, 1u, "the parked row and the unreleased one are left out");
    cr_expect_eq(rows[0].id, 3);
    cr_expect_str_eq(rows[0].device, "a");
    cr_expect(rows[0].len == 2 && memcmp(rows[0].payload, "m3", 2) == 0);
    outbox_row_free(&rows[0]);
    outbox_close(&ob);
}

/* Two destinations in one file: one transaction writes a row for each, each sender sees its
 * own rows only, and what one acknowledges or parks leaves the other's alone. */
Test(outbox, two_lanes_share_the_commit_and_keep_their_rows_apart)
{
    char path[400], why[300] = "";
    outbox_t *hl7 = open_in(path, sizeof path, 100);
    outbox_t *fhir = outbox_add_lane(hl7, "fhir", why, sizeof why);
    cr_assert_not_null(fhir, "%s", why);
    cr_expect_null(outbox_add_lane(hl7, "fhir", why, sizeof why), "a destination once only");
    stage(hl7, "a", "H1");
    stage(fhir, "a", "F1");
    stage(hl7, "b", "H2");
    uint64_t ck = 0;
    cr_assert_eq(outbox_commit(fhir, &ck), MW_OK, "a commit through any lane commits all");
    cr_expect_eq(ck, 3u);
    outbox_release(hl7);
    outbox_stats_t hs, fs;
    outbox_stats(hl7, &hs);
    outbox_stats(fhir, &fs);
    cr_expect_eq(hs.depth, 2u);
    cr_expect_eq(fs.depth, 1u);
    outbox_row_t rows[4];
    size_t n = outbox_next_batch(fhir, 0, rows, 4);
    cr_assert_eq(n, 1u, "the FHIR sender sees its row only");
    cr_expect(memcmp(rows[0].payload, "F1", 2) == 0);
    cr_expect_eq(outbox_delivered(fhir, rows[0].id), MW_OK);
    outbox_row_free(&rows[0]);
    n = outbox_next_batch(hl7, 0, rows, 4);
    cr_assert_eq(n, 2u, "the HL7 rows are all there after the FHIR one was delivered");
    cr_expect(memcmp(rows[0].payload, "H1", 2) == 0 && memcmp(rows[1].payload, "H2", 2) == 0);
    cr_expect_eq(outbox_park(hl7, rows[0].id), MW_OK);
    for (size_t i = 0; i < n; i++)
        outbox_row_free(&rows[i]);
    outbox_stats(hl7, &hs);
    outbox_stats(fhir, &fs);
    cr_expect_eq(hs.depth, 2u);
    cr_expect_eq(hs.parked, 1u);
    cr_expect_eq(fs.depth, 0u);
    cr_expect_eq(fs.parked, 0u);
    /* Rolled back: both lanes' rows after the checkpoint go. */
    stage(hl7, "a", "H3");
    stage(fhir, "a", "F3");
    uint64_t ck2 = 0;
    cr_assert_eq(outbox_commit(hl7, &ck2), MW_OK);
    cr_assert_eq(outbox_recover(hl7, ck), MW_OK);
    outbox_stats(hl7, &hs);
    outbox_stats(fhir, &fs);
    cr_expect_eq(hs.depth, 2u);
    cr_expect_eq(fs.depth, 0u);
    outbox_close(&hl7);
    cr_expect_null(hl7);
}

/* One destination full refuses the commit for all: a message is never acknowledged with a
 * destination left out. */
Test(outbox, a_full_lane_refuses_the_whole_commit)
{
    char path[400], why[300] = "";
    outbox_t *hl7 = open_in(path, sizeof path, 2);
    outbox_t *fhir = outbox_add_lane(hl7, "fhir", why, sizeof why);
    cr_assert_not_null(fhir, "%s", why);
    stage(hl7, "a", "H1");
    stage(fhir, "a", "F1");
    stage(hl7, "a", "H2");
    stage(fhir, "a", "F2");
    uint64_t ck = 0;
    cr_assert_eq(outbox_commit(hl7, &ck), MW_OK);
    outbox_release(hl7);
    outbox_row_t row;
    cr_assert(outbox_next(hl7, 0, &row));
    cr_expect_eq(outbox_delivered(hl7, row.id), MW_OK);
    outbox_row_free(&row);
    /* HL7 has room for one more, FHIR has none. */
    stage(hl7, "a", "H3");
    stage(fhir, "a", "F3");
    uint64_t ck2 = 0;
    cr_expect_eq(outbox_commit(hl7, &ck2), MW_EFULL);
    outbox_stats_t hs, fs;
    outbox_stats(hl7, &hs);
    outbox_stats(fhir, &fs);
    cr_expect_eq(hs.depth, 1u, "nothing written for HL7 either");
    cr_expect_eq(fs.depth, 2u);
    cr_expect_eq(fs.full, 1u, "counted against the full destination");
    cr_expect_eq(hs.full, 0u);
    cr_expect(fs.refused, "the FHIR bound refused it");
    cr_expect_not(hs.refused);
    /* Refused though not at its bound yet: two rows where one fits. */
    stage(hl7, "a", "H4");
    stage(hl7, "a", "H5");
    cr_expect_eq(outbox_commit(hl7, &ck2), MW_EFULL);
    outbox_stats(hl7, &hs);
    outbox_stats(fhir, &fs);
    cr_expect_eq(hs.depth, 1u);
    cr_expect(hs.refused, "the HL7 bound refused it, one row below it");
    cr_expect_not(fs.refused, "no FHIR row was staged");
    outbox_close(&fhir);
    cr_expect_null(fhir);
    outbox_close(&hl7);
}

/* Rows written when the destination column held a URL belong to the lane of its scheme; rows
 * of a destination no longer configured are counted, not lost. */
Test(outbox, rows_named_by_url_join_their_lane_and_unclaimed_rows_are_counted)
{
    char path[400], why[300] = "";
    snprintf(path, sizeof path, "%s/old.outbox", mwt_tmpdir());
    outbox_t *old = outbox_open(path, "mllp://127.0.0.1:1", 10, why, sizeof why);
    cr_assert_not_null(old, "%s", why);
    stage(old, "a", "H1");
    uint64_t ck = 0;
    cr_assert_eq(outbox_commit(old, &ck), MW_OK);
    outbox_close(&old);
    old = outbox_open(path, "http://fhir.example/fhir", 10, why, sizeof why);
    cr_assert_not_null(old, "%s", why);
    outbox_stats_t st;
    outbox_stats(old, &st);
    cr_expect_eq(st.depth, 0u, "the earlier row was renamed hl7, not this URL's");
    stage(old, "a", "F1");
    cr_assert_eq(outbox_commit(old, &ck), MW_OK);
    outbox_close(&old);
    outbox_t *hl7 = outbox_open(path, "hl7", 10, why, sizeof why);
    cr_assert_not_null(hl7, "%s", why);
    outbox_stats(hl7, &st);
    cr_expect_eq(st.depth, 1u);
    cr_expect_eq(outbox_unclaimed(hl7), 1u, "the FHIR row waits for a FHIR destination");
    outbox_t *fhir = outbox_add_lane(hl7, "fhir", why, sizeof why);
    cr_assert_not_null(fhir, "%s", why);
    outbox_stats(fhir, &st);
    cr_expect_eq(st.depth, 1u);
    cr_expect_eq(outbox_unclaimed(hl7), 0u);
    outbox_close(&hl7);
}
