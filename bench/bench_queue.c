/* SPDX-License-Identifier: Apache-2.0 */
/* bench_queue.c -- durable appends per second against the disk's raw fdatasync rate; recovery time.
 */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include "medwire/storage.h"
#include "queue/queue.h"

/*
 * Usage: bench-queue [DIR]   (default: the current directory; put DIR on the disk to measure)
 *
 * 1. raw: pwrite of one record's bytes + fdatasync, in a loop: the ceiling for any durable
 *    append on this disk.
 * 2. default mode: every append is synced before it returns.
 * 3. group commit, N = 16 and 64 (sync every N appends, or 100 ms at the latest).
 * 4. recovery: open (replay, verify, decrypt every record) of a queue holding 10,000 messages,
 *    page cache warm (the file was just written), median of 5.
 * Figures only: nothing here asserts a time.
 */

#define RUN_SECONDS      2.0
#define RECOVERY_RECORDS 10000u

static const uint8_t key[32] = {1,  2,  3,  4,  5,  6,  7,  8,  9,  10, 11, 12, 13, 14, 15, 16,
                                17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 30, 31, 32};

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static mw_message_t observation(uint64_t seq)
{
    mw_message_t m;
    memset(&m, 0, sizeof m);
    strcpy(m.device_id, "oxi-000042");
    m.seq = seq;
    m.device_time_ms = 1790000000000ull + seq * 1000u;
    m.time_synced = true;
    m.priority = MW_PRIORITY_OBSERVATION;
    m.type = MW_MSG_OBSERVATION;
    m.u.observation.mdc_code = MW_MDC_PULS_OXIM_SAT_O2;
    m.u.observation.mantissa = 970 + (int64_t)(seq % 30u);
    m.u.observation.exponent = -1;
    strcpy(m.u.observation.unit, "%");
    m.u.observation.time_ms = m.device_time_ms - 3u;
    return m;
}

/* The salt of each new queue file, from the kernel's CSPRNG. */
static mw_err kernel_random(void *ctx, uint8_t *out, size_t len)
{
    (void)ctx;
    return getrandom(out, len, 0) == (ssize_t)len ? MW_OK : MW_EIO;
}

static void die(const char *what, mw_err e, const mw_error_detail_t *d)
{
    fprintf(stderr, "bench-queue: %s: %s (%s)\n", what, mw_strerror(e), d != NULL ? d->reason : "");
    exit(1);
}

static void path_in(char *out, size_t cap, const char *dir, const char *name)
{
    snprintf(out, cap, "%s/%s", dir, name);
}

static mwi_queue *open_queue(const char *path, uint32_t capacity, uint32_t group_n,
                             mw_storage_t *st)
{
    mwi_queue_config c;
    mwi_queue *q = NULL;
    mw_error_detail_t d = {0};
    uint32_t size = 0;
    mw_err e;

    e = mwi_queue_region_min(capacity, 1, 1, &size);
    if (e != MW_OK) {
        die("region size", e, NULL);
    }
    size *= 2; /* the recommended size: compaction frees at least half a half */
    e = mw_storage_file_open(path, size, st, &d);
    if (e != MW_OK) {
        die(path, e, &d);
    }
    mwi_queue_config_init(&c);
    c.storage = st;
    c.key = key;
    c.key_len = sizeof key;
    c.capacity = capacity;
    c.random.fill = kernel_random;
    c.group_commit_n = group_n;
    c.group_commit_ms = 100;
    e = mwi_queue_open(&c, &q, &d);
    if (e != MW_OK) {
        die("open", e, &d);
    }
    return q;
}

/* Appends for RUN_SECONDS (at most @p max); returns appends per second. */
static double appends_per_s(const char *dir, const char *name, uint32_t group_n, uint32_t max,
                            uint32_t *out_record, uint64_t *out_syncs)
{
    char path[1024];
    mw_storage_t st;
    mwi_queue *q;
    mwi_queue_stats s;
    double t0, t;
    uint32_t n = 0;

    path_in(path, sizeof path, dir, name);
    (void)unlink(path);
    q = open_queue(path, max, group_n, &st);
    t0 = now_s();
    do {
        mw_message_t m = observation(n + 1u);
        mw_err e = mwi_queue_append(q, &m, (uint64_t)((now_s() - t0) * 1000.0));
        if (e != MW_OK) {
            die("append", e, NULL);
        }
        n++;
        e = mwi_queue_flush(q, (uint64_t)((now_s() - t0) * 1000.0));
        if (e != MW_OK) {
            die("flush", e, NULL);
        }
        t = now_s() - t0;
    } while (t < RUN_SECONDS && n < max);
    if (mwi_queue_sync(q) != MW_OK) {
        die("sync", MW_EIO, NULL);
    }
    t = now_s() - t0;
    mwi_queue_stats_get(q, 0, &s);
    *out_record = s.bytes_used / n;
    *out_syncs = s.syncs;
    mwi_queue_close(&q);
    mw_storage_file_close(&st);
    (void)unlink(path);
    return n / t;
}

/* write + fdatasync of @p len bytes at increasing offsets, as the queue appends. */
static double raw_fdatasync_per_s(const char *dir, uint32_t len)
{
    char path[1024];
    uint8_t buf[512];
    uint32_t n = 0;
    double t0, t;
    int fd;

    path_in(path, sizeof path, dir, "bench-queue-raw.bin");
    fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600);
    if (fd < 0) {
        perror(path);
        exit(1);
    }
    /* Preallocated, as the queue file is: overwrites in place, no size change per sync. */
    memset(buf, 0xFF, sizeof buf);
    for (uint32_t off = 0; off < 16u << 20; off += sizeof buf) {
        if (pwrite(fd, buf, sizeof buf, off) != (ssize_t)sizeof buf) {
            perror("pwrite");
            exit(1);
        }
    }
    if (fdatasync(fd) != 0) {
        perror("fdatasync");
        exit(1);
    }
    memset(buf, 0x5A, sizeof buf);
    t0 = now_s();
    do {
        if (pwrite(fd, buf, len, (off_t)n * len) != (ssize_t)len || fdatasync(fd) != 0) {
            perror("pwrite/fdatasync");
            exit(1);
        }
        n++;
        t = now_s() - t0;
    } while (t < RUN_SECONDS && (uint64_t)(n + 1u) * len < (16u << 20));
    close(fd);
    (void)unlink(path);
    return n / t;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static void recovery(const char *dir)
{
    char path[1024];
    mw_storage_t st;
    mwi_queue *q;
    mwi_queue_stats s;
    double ms[5];
    uint32_t size = 0;

    path_in(path, sizeof path, dir, "bench-queue-recovery.bin");
    (void)unlink(path);
    q = open_queue(path, RECOVERY_RECORDS, 256, &st);
    for (uint32_t i = 0; i < RECOVERY_RECORDS; i++) {
        mw_message_t m = observation(i + 1u);
        if (i % 10u == 0) {
            m.priority = MW_PRIORITY_ALARM;
            m.type = MW_MSG_ALARM;
            memset(&m.u, 0, sizeof m.u);
            m.u.alarm.mdc_code = MW_MDC_EVT_LO;
            m.u.alarm.priority = MW_ALARM_HIGH;
            m.u.alarm.state = MW_ALARM_ACTIVE;
            strcpy(m.u.alarm.text, "SpO2 below 85 %");
        }
        if (mwi_queue_append(q, &m, i) != MW_OK) {
            die("append", MW_EIO, NULL);
        }
    }
    mwi_queue_close(&q);
    size = st.size;
    mw_storage_file_close(&st);
    for (int r = 0; r < 5; r++) {
        double t0 = now_s();
        q = open_queue(path, RECOVERY_RECORDS, 0, &st);
        ms[r] = (now_s() - t0) * 1e3;
        mwi_queue_stats_get(q, 0, &s);
        if (s.depth != RECOVERY_RECORDS) {
            fprintf(stderr, "bench-queue: recovered %u of %u\n", s.depth, RECOVERY_RECORDS);
            exit(1);
        }
        mwi_queue_close(&q);
        mw_storage_file_close(&st);
    }
    qsort(ms, 5, sizeof ms[0], cmp_double);
    printf("recovery of %u records (%u bytes of log, region %u bytes): %.1f ms median of 5 "
           "(min %.1f, max %.1f), page cache warm\n",
           RECOVERY_RECORDS, s.bytes_used, size, ms[2], ms[0], ms[4]);
    (void)unlink(path);
}

int main(int argc, char **argv)
{
    const char *dir = argc > 1 ? argv[1] : ".";
    uint32_t rec = 0, rec2 = 0;
    uint64_t syncs = 0;
    double dflt, g16, g64, raw1, raw2, raw;

    /* One append first, to learn the record size the raw loop should write. */
    (void)appends_per_s(dir, "bench-queue-size.bin", 0, 1, &rec, &syncs);
    raw1 = raw_fdatasync_per_s(dir, rec);
    dflt = appends_per_s(dir, "bench-queue-default.bin", 0, 20000, &rec, &syncs);
    raw2 = raw_fdatasync_per_s(dir, rec);
    raw = (raw1 + raw2) / 2.0;
    printf("raw pwrite+fdatasync of %u bytes (one record) on this disk: %.0f/s (%.0f before, "
           "%.0f after the default-mode run)\n",
           rec, raw, raw1, raw2);
    printf("default mode (every append synced before it returns): %.0f appends/s, %.0f%% of "
           "raw, %llu syncs\n",
           dflt, 100.0 * dflt / raw, (unsigned long long)syncs);
    g16 = appends_per_s(dir, "bench-queue-g16.bin", 16, 20000, &rec2, &syncs);
    printf("group commit N=16, M=100 ms: %.0f appends/s, %.1fx raw, %llu syncs\n", g16, g16 / raw,
           (unsigned long long)syncs);
    g64 = appends_per_s(dir, "bench-queue-g64.bin", 64, 20000, &rec2, &syncs);
    printf("group commit N=64, M=100 ms: %.0f appends/s, %.1fx raw, %llu syncs\n", g64, g64 / raw,
           (unsigned long long)syncs);
    recovery(dir);
    return 0;
}
