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
    outbox_t *ob = outbox_open(path, "mllp://127.0.0.1:1", max, why, sizeof why);
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
    outbox_t *second = outbox_open(path, "mllp://127.0.0.1:1", 3, why, sizeof why);
    cr_expect_null(second, "a second gateway on the same outbox");
    cr_expect_not_null(strstr(why, "in use"), "%s", why);
    outbox_close(&ob);
    /* Reopened: the rows and their count are still there. */
    ob = outbox_open(path, "mllp://127.0.0.1:1", 3, why, sizeof why);
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
