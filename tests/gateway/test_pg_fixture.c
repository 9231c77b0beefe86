/* SPDX-License-Identifier: Apache-2.0 */
/* test_pg_fixture.c -- the PostgreSQL server the store's tests run against starts on a free
 * loopback port (as root too), answers, keeps what was committed across a restart, and is
 * gone once stopped. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "support/pg.h"
#include "support/proc.h"

Test(pg_fixture, starts_answers_keeps_data_across_a_restart_and_cleans_up)
{
    if (!mwt_pg_available())
        cr_skip_test("PostgreSQL's server is not installed (Debian package postgresql)");
    mwt_pg pg;
    cr_assert(mwt_pg_start(&pg), "the server starts");
    cr_assert_gt(pg.port, 0);
    char want[64];
    snprintf(want, sizeof want, "@127.0.0.1:%d/medwire", pg.port);
    cr_assert_not_null(strstr(pg.url, want), "%s", pg.url);
    cr_assert_eq(strncmp(pg.url, "postgresql://", 13), 0);

    char out[200];
    snprintf(out, sizeof out, "%s/t.out", pg.dir);
    cr_assert_eq(mwt_pg_sql(&pg, "CREATE TABLE t(v int); INSERT INTO t VALUES (42)", NULL), 0);
    cr_assert(mwt_pg_restart(&pg), "the server restarts");
    cr_assert_eq(mwt_pg_sql(&pg, "SELECT v FROM t", out), 0);
    char *text = mwt_read_file(out);
    cr_assert_not_null(text);
    cr_assert_str_eq(text, "42\n");
    free(text);

    cr_assert(mwt_pg_halt(&pg));
    cr_assert_neq(mwt_pg_sql(&pg, "SELECT 1", NULL), 0, "a halted server does not answer");
    cr_assert(mwt_pg_resume(&pg));
    cr_assert_eq(mwt_pg_sql(&pg, "SELECT 1", NULL), 0);

    char dir[sizeof pg.dir];
    snprintf(dir, sizeof dir, "%s", pg.dir);
    mwt_pg_stop(&pg);
    struct stat st;
    cr_assert_neq(stat(dir, &st), 0, "the cluster's folder is removed");
}
