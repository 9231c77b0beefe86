/* SPDX-License-Identifier: Apache-2.0 */
/* bench_sqlite.c -- baseline for the durable queue: SQLite (WAL, synchronous=FULL) inserting the
 * same observation records, one transaction per record and per group. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <sqlite3.h>

/*
 * Usage: bench-sqlite DIR RECORD_BYTES [GROUP]
 * Inserts (seq, priority, time, record) rows for 2 s, where record is RECORD_BYTES bytes (the
 * size of one encrypted queue record, which bench-queue prints), each INSERT its own
 * transaction (GROUP 1: durable when sqlite3_step returns, as the queue's default mode), or
 * GROUP inserts per transaction (as group commit). Prints "inserts_per_s X".
 */

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void check(sqlite3 *db, int rc, const char *what)
{
    if (rc != SQLITE_OK && rc != SQLITE_DONE && rc != SQLITE_ROW) {
        fprintf(stderr, "bench-sqlite: %s: %s\n", what, sqlite3_errmsg(db));
        exit(1);
    }
}

int main(int argc, char **argv)
{
    if (argc < 3) {
        fprintf(stderr, "usage: bench-sqlite DIR RECORD_BYTES [GROUP]\n");
        return 2;
    }
    char path[1024], wal[1100], shm[1100];
    int len = atoi(argv[2]);
    int group = argc > 3 ? atoi(argv[3]) : 1;
    unsigned char rec[4096];
    sqlite3 *db = NULL;
    sqlite3_stmt *ins = NULL;

    if (len <= 0 || len > (int)sizeof rec || group < 1) {
        return 2;
    }
    snprintf(path, sizeof path, "%s/bench-sqlite.db", argv[1]);
    snprintf(wal, sizeof wal, "%s-wal", path);
    snprintf(shm, sizeof shm, "%s-shm", path);
    (void)unlink(path);
    (void)unlink(wal);
    (void)unlink(shm);
    check(db, sqlite3_open(path, &db), "open");
    check(db, sqlite3_exec(db, "PRAGMA journal_mode=WAL", NULL, NULL, NULL), "WAL");
    check(db, sqlite3_exec(db, "PRAGMA synchronous=FULL", NULL, NULL, NULL), "FULL");
    check(db,
          sqlite3_exec(db,
                       "CREATE TABLE queue (seq INTEGER PRIMARY KEY, priority INTEGER NOT NULL, "
                       "time_ms INTEGER NOT NULL, record BLOB NOT NULL)",
                       NULL, NULL, NULL),
          "create");
    check(db, sqlite3_prepare_v2(db, "INSERT INTO queue VALUES (?, ?, ?, ?)", -1, &ins, NULL),
          "prepare");
    for (int i = 0; i < len; i++) {
        rec[i] = (unsigned char)(i * 131u + 7u); /* ciphertext-like, incompressible enough */
    }
    long long n = 0;
    double t0 = now_s(), t;
    do {
        if (group > 1) {
            check(db, sqlite3_exec(db, "BEGIN", NULL, NULL, NULL), "begin");
        }
        for (int g = 0; g < group; g++) {
            n++;
            rec[0] = (unsigned char)n;
            sqlite3_bind_int64(ins, 1, n);
            sqlite3_bind_int(ins, 2, 2);
            sqlite3_bind_int64(ins, 3, 1790000000000ll + n);
            sqlite3_bind_blob(ins, 4, rec, len, SQLITE_STATIC);
            check(db, sqlite3_step(ins), "insert");
            sqlite3_reset(ins);
        }
        if (group > 1) {
            check(db, sqlite3_exec(db, "COMMIT", NULL, NULL, NULL), "commit");
        }
        t = now_s() - t0;
    } while (t < 2.0);
    printf("inserts_per_s %.1f\n", (double)n / t);
    sqlite3_finalize(ins);
    sqlite3_close(db);
    (void)unlink(path);
    (void)unlink(wal);
    (void)unlink(shm);
    return 0;
}
