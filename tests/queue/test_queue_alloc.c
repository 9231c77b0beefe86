/* SPDX-License-Identifier: Apache-2.0 */
/* test_queue_alloc.c -- after open, the queue's steady state allocates nothing (counting
 * allocator). */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

#include "qtest.h"
#include "queue/queue.h"
#include "support/ram_storage.h"

/*
 * malloc, calloc and realloc are replaced for this whole process (glibc lets a program
 * interpose them and offers the originals as __libc_*). Unlike a --wrap linker flag, this also
 * sees allocations inside shared libraries: wolfCrypt's AES-GCM and nanopb run inside the
 * counted region. Only allocations of the thread that turned counting on are counted, so
 * Criterion's own threads cannot disturb the result.
 */
extern void *__libc_malloc(size_t n);
extern void *__libc_calloc(size_t n, size_t m);
extern void *__libc_realloc(void *p, size_t n);
extern void __libc_free(void *p);

/* volatile, and the target is built with -fno-builtin-malloc: the compiler's model of malloc
 * says it touches no program variable, which is exactly what this one does. */
static _Thread_local volatile bool counting;
static _Thread_local volatile unsigned long allocations;

void *malloc(size_t n);
void *calloc(size_t n, size_t m);
void *realloc(void *p, size_t n);
void free(void *p);

void *malloc(size_t n)
{
    if (counting) {
        allocations++;
    }
    return __libc_malloc(n);
}

void *calloc(size_t n, size_t m)
{
    if (counting) {
        allocations++;
    }
    return __libc_calloc(n, m);
}

void *realloc(void *p, size_t n)
{
    if (counting) {
        allocations++;
    }
    return __libc_realloc(p, n);
}

void free(void *p)
{
    __libc_free(p);
}

Test(alloc, the_counting_allocator_sees_allocations)
{
    void *volatile p; /* volatile: the compiler may not elide the pair */
    counting = true;
    allocations = 0;
    p = malloc(16);
    counting = false;
    free(p);
    cr_assert_eq(allocations, 1, "the interposed malloc is the one in use");
}

/* @req IEC62443-CR7.2 MDS2-SAHD */
Test(alloc, append_peek_ack_flush_compact_and_eviction_allocate_nothing_after_open)
{
    const uint32_t cap = 64;
    mwt_ram *ram = mwt_ram_create(qt_region(cap, 1, 1, 1), 1, 1);
    mw_storage_t st = mwt_ram_storage(ram);
    mwi_queue_config c = qt_config(&st, cap, NULL);
    mwi_queue *q = NULL;
    mw_message_t batch[16];
    mwi_queue_stats s;
    mwi_queue_gap g[MWI_QUEUE_GAP_SLOTS];
    unsigned long counted;
    int failures = 0, failed_round = -1;
    mw_err first_failure = MW_OK;
    mw_err e;
#define CHECK(call)                                                                                \
    do {                                                                                           \
        e = (call);                                                                                \
        if (e != MW_OK && failures++ == 0) {                                                       \
            first_failure = e;                                                                     \
            failed_round = round;                                                                  \
        }                                                                                          \
    } while (0)
    uint64_t next = 1;

    c.nonce_block = 16; /* reservations (slot writes) happen inside the counted region too */
    cr_assert_eq(mwi_queue_open(&c, &q, NULL), MW_OK);

    counting = true;
    allocations = 0;
    for (int round = 0; round < 3000; round++) {
        mw_message_t m = qt_msg(next, (mw_priority)(1 + round % 3), 0);
        size_t n = 0;
        /* Offline for a while every 500 rounds: the queue fills and evicts. */
        bool offline = (round / 500) % 2 == 1;
        if (mwi_queue_accepts(q, m.priority)) { /* as the client does before taking a number */
            CHECK(mwi_queue_append(q, &m, next));
        }
        next++;
        if (!offline && round % 4 == 3) {
            CHECK(mwi_queue_peek(q, batch, 16, &n));
            if (n > 0) {
                mwi_seq_range r = {batch[0].seq, batch[0].seq};
                CHECK(mwi_queue_ack(q, &r, 1, next, NULL));
            }
            if (n > 1) {
                /* The rest of the batch, as the client builds an Ack: sorted ranges. */
                uint64_t seqs[16];
                mwi_seq_range r[4];
                size_t nr;
                for (size_t k = 1; k < n; k++) {
                    seqs[k - 1] = batch[k].seq;
                }
                nr = mwi_ranges_from_seqs(seqs, n - 1, r, 4);
                CHECK(mwi_queue_ack(q, r, nr, next, NULL));
            }
        }
        CHECK(mwi_queue_flush(q, next));
        if (round % 700 == 0) {
            CHECK(mwi_queue_compact(q));
        }
        if (round % 900 == 0) {
            size_t k = mwi_queue_gaps(q, g, MWI_QUEUE_GAP_SLOTS);
            CHECK(mwi_queue_gaps_clear(q, g, k));
        }
        mwi_queue_stats_get(q, next, &s);
    }
    counting = false;
    counted = allocations;

    cr_assert_eq(failures, 0, "%d failures, the first in round %d: %s", failures, failed_round,
                 mw_strerror(first_failure));
    cr_assert_gt(s.compactions, 5, "compaction ran inside the counted region");
    cr_assert_gt(s.evicted, 100, "eviction ran inside the counted region");
    cr_assert_eq(counted, 0, "%lu allocations after open", counted);
    printf("alloc: %llu appends, %llu acks, %llu evictions, %llu compactions, %llu syncs after "
           "open: %lu allocations\n",
           (unsigned long long)s.appended, (unsigned long long)s.acked,
           (unsigned long long)s.evicted, (unsigned long long)s.compactions,
           (unsigned long long)s.syncs, counted);
    mwi_queue_close(&q);
    mwt_ram_destroy(ram);
}
