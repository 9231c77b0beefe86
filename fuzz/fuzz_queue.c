/* SPDX-License-Identifier: Apache-2.0 */
/* fuzz_queue.c -- the offline queue's recovery from arbitrary storage contents: the input is the
 * whole region (a queue of capacity 8 with a fixed key; shorter inputs are padded with erased
 * bytes). Recovery must never crash or leak, never return a message that fails the codec's
 * checks or a number twice, and a recovered queue must work and reopen to the same state
 * without reporting anything again. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "queue/queue.h"
#include "support/fake_clock.h"
#include "support/ram_storage.h"

#include "fuzz_support.h"

#define CAPACITY 8u

static const uint8_t KEY[32] = {0x6d, 0x65, 0x64, 0x77, 0x69, 0x72, 0x65, 0x2d,
                                0x66, 0x75, 0x7a, 0x7a, 0x2d, 0x71, 0x75, 0x65,
                                0x75, 0x65, 0x2d, 0x6b, 0x65, 0x79, 0x2d, 0x30,
                                0x31, 0x32, 0x33, 0x34, 0x35, 0x36, 0x37, 0x38};

static size_t events;
/* Reseeded for every input: an erased region gets the same salt on every run. */
static mwt_rng rng;

static void on_event(void *ctx, const mwi_queue_event *ev)
{
    (void)ctx;
    MWF_CHECK(ev->kind >= MWI_QUEUE_EVICTED && ev->kind <= MWI_QUEUE_TORN, "event kind %d",
              (int)ev->kind);
    MWF_CHECK(ev->reason != NULL, "an event without a reason");
    if (getenv("MWF_DEBUG") != NULL) /* triage: what recovery reported */
        fprintf(stderr, "event %d seq %llu prio %d at %u len %u: %s\n", (int)ev->kind,
                (unsigned long long)ev->seq, (int)ev->priority, (unsigned)ev->offset,
                (unsigned)ev->length, ev->reason);
    events++;
}

static mw_err open_queue(mw_storage_t *st, mwi_queue **q)
{
    mwi_queue_config c;
    mwi_queue_config_init(&c);
    c.storage = st;
    c.key = KEY;
    c.key_len = sizeof KEY;
    c.capacity = CAPACITY;
    c.random = mwt_rng_table(&rng);
    c.on_event = on_event;
    return mwi_queue_open(&c, q, NULL);
}

/* Every message in flush order: valid, each number once, priorities never increasing. */
static size_t drain_order(mwi_queue *q, uint64_t *seqs, size_t cap)
{
    mwi_queue_cursor cur;
    mwi_queue_cursor_init(&cur);
    mw_message_t m;
    size_t n = 0;
    unsigned last_prio = MW_PRIORITY_ALARM;
    for (;;) {
        mw_err e = mwi_queue_next(q, &cur, &m);
        if (e == MW_EAGAIN)
            break;
        MWF_CHECK(e == MW_OK, "mwi_queue_next: %s", mw_strerror(e));
        MWF_CHECK(mwi_message_check(&m) == MW_OK, "recovery returned an invalid message, seq %llu",
                  (unsigned long long)m.seq);
        MWF_CHECK((unsigned)m.priority <= last_prio, "flush order broken at seq %llu",
                  (unsigned long long)m.seq);
        last_prio = (unsigned)m.priority;
        for (size_t i = 0; i < n; i++)
            MWF_CHECK(seqs[i] != m.seq, "seq %llu returned twice", (unsigned long long)m.seq);
        MWF_CHECK(n < cap, "more messages than the queue can hold");
        seqs[n++] = m.seq;
    }
    return n;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static uint32_t region;
    if (region == 0)
        MWF_CHECK(mwi_queue_region_min(CAPACITY, 1, 1, &region) == MW_OK, "region size");
    mwt_ram *ram = mwt_ram_create(region, 1, 1);
    MWF_CHECK(ram != NULL, "mwt_ram_create");
    mwt_ram_poke(ram, 0, data, size < region ? size : region);
    mw_storage_t st = mwt_ram_storage(ram);

    mwi_queue *q = NULL;
    events = 0;
    rng.state = 0x51A7u;
    mw_err e = open_queue(&st, &q);
    if (e != MW_OK) {
        /* Refused whole: a foreign region or another key. Nothing was written. */
        MWF_CHECK(e == MW_EIO || e == MW_ECONFIG, "open: %s", mw_strerror(e));
        MWF_CHECK(q == NULL, "a failed open returned a queue");
        mwt_ram_destroy(ram);
        return 0;
    }
    uint64_t seqs[2 * CAPACITY + 2], again[2 * CAPACITY + 2];
    size_t n = drain_order(q, seqs, 2 * CAPACITY + 2);
    mwi_queue_stats s;
    mwi_queue_stats_get(q, 0, &s);
    MWF_CHECK(s.depth >= n, "depth %u but %zu messages returned", s.depth, n);
    mwi_queue_gap gaps[MWI_QUEUE_GAP_SLOTS];
    size_t ng = mwi_queue_gaps(q, gaps, MWI_QUEUE_GAP_SLOTS);
    for (size_t i = 0; i < ng; i++)
        MWF_CHECK(gaps[i].count > 0 && gaps[i].first_seq <= gaps[i].last_seq, "gap entry %zu", i);
    mwi_queue_close(&q);

    /* Reopen: the same messages, nothing reported again (recovery rewrote what it cut). */
    events = 0;
    e = open_queue(&st, &q);
    MWF_CHECK(e == MW_OK, "a recovered queue does not reopen: %s", mw_strerror(e));
    MWF_CHECK(events == 0, "the second open reported %zu events again", events);
    size_t n2 = drain_order(q, again, 2 * CAPACITY + 2);
    MWF_CHECK(n2 == n && memcmp(seqs, again, n * sizeof seqs[0]) == 0,
              "the second open found %zu messages, the first %zu", n2, n);

    /* It still works: a new message, numbered above all, then its acknowledgement. */
    uint64_t top = 0;
    for (size_t i = 0; i < n; i++)
        top = seqs[i] > top ? seqs[i] : top;
    mw_message_t m;
    memset(&m, 0, sizeof m);
    snprintf(m.device_id, sizeof m.device_id, "fuzz-dev");
    m.seq = top + 1;
    m.type = MW_MSG_ALARM;
    m.priority = MW_PRIORITY_ALARM;
    m.u.alarm.mdc_code = MW_MDC_EVT_LO;
    snprintf(m.u.alarm.text, sizeof m.u.alarm.text, "fuzz");
    e = mwi_queue_append(q, &m, 1);
    MWF_CHECK(e == MW_OK || e == MW_EFULL, "append after recovery: %s", mw_strerror(e));
    if (e == MW_OK) {
        mwi_seq_range r = {m.seq, m.seq};
        size_t removed = 0;
        MWF_CHECK(mwi_queue_ack(q, &r, 1, 2, &removed) == MW_OK && removed == 1,
                  "ack after recovery");
    }
    mwi_queue_close(&q);
    mwt_ram_destroy(ram);
    return 0;
}
