/* SPDX-License-Identifier: Apache-2.0 */
/* test_client_alloc.c -- after open, the device's steady state (send, poll, flush, acks) allocates
 * nothing: a counting allocator sees every allocation the client makes, wolfSSL's included. */
#include <criterion/criterion.h>
#include <malloc.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "harness.h"
#include "support/ram_storage.h"

/* As in tests/queue/test_queue_alloc.c: malloc and friends replaced for the whole process,
 * counting only while this thread is inside a client call. The gateway, which shares the
 * process and the thread, runs outside the counted region. */
extern void *__libc_malloc(size_t n);
extern void *__libc_calloc(size_t n, size_t m);
extern void *__libc_realloc(void *p, size_t n);
extern void __libc_free(void *p);

static _Thread_local volatile bool counting;
static _Thread_local volatile unsigned long allocations;

/* Live bytes: every block allocated while counting is remembered with its size (an
 * open-addressing set) until it is freed, whoever frees it, so that what the client holds can
 * be told from what the gateway in the same process holds. */
#define LIVE_SLOTS (1u << 16)
#define TOMBSTONE  ((void *)1)
static struct live {
    void *p;
    size_t n;
} live_set[LIVE_SLOTS];
static size_t live_bytes, live_blocks;

static size_t slot_of(const void *p)
{
    return (size_t)(((uintptr_t)p >> 4) * 0x9e3779b97f4a7c15ull >> 48) & (LIVE_SLOTS - 1);
}

static void live_add(void *p, size_t n)
{
    if (p == NULL)
        return;
    size_t i = slot_of(p);
    while (live_set[i].p != NULL && live_set[i].p != TOMBSTONE)
        i = (i + 1) & (LIVE_SLOTS - 1);
    live_set[i].p = p;
    live_set[i].n = n;
    live_bytes += n;
    live_blocks++;
}

/* Forgets @p if it was counted; its size, or 0. */
static size_t live_remove(void *p)
{
    if (p == NULL || live_blocks == 0)
        return 0;
    for (size_t i = slot_of(p); live_set[i].p != NULL; i = (i + 1) & (LIVE_SLOTS - 1))
        if (live_set[i].p == p) {
            size_t n = live_set[i].n;
            live_set[i].p = TOMBSTONE;
            live_bytes -= n;
            live_blocks--;
            return n;
        }
    return 0;
}

void *malloc(size_t n);
void *calloc(size_t n, size_t m);
void *realloc(void *p, size_t n);
void free(void *p);

void *malloc(size_t n)
{
    void *p = __libc_malloc(n);
    if (counting) {
        allocations++;
        live_add(p, n);
    }
    return p;
}

void *calloc(size_t n, size_t m)
{
    void *p = __libc_calloc(n, m);
    if (counting) {
        allocations++;
        live_add(p, n * m);
    }
    return p;
}

void *realloc(void *p, size_t n)
{
    if (counting)
        allocations++;
    size_t was = live_remove(p);
    void *q = __libc_realloc(p, n);
    if (q == NULL && n != 0) {
        if (was)
            live_add(p, was); /* p is still allocated */
    } else if (counting || was) {
        live_add(q, n);
    }
    return q;
}

void free(void *p)
{
    live_remove(p);
    __libc_free(p);
}

static const uint8_t KEY[32] = {7};

/* One round of the device's loop: a reading, then poll; the gateway answers outside the
 * counted region. */
static void round_trip(mwt_h *h, mw_client_t *c, int i, bool count)
{
    mw_observation_t o = {
        .mdc_code = MW_MDC_PULS_OXIM_SAT_O2, .mantissa = 90 + i % 10, .unit = "%"};
    counting = count;
    mw_err e = mw_client_send_observation(c, &o, NULL);
    counting = false;
    cr_assert_eq(e, MW_OK);
    for (int k = 0; k < 8; k++) {
        mw_err ge = mw_gateway_poll(h->gw, 0);
        (void)ge;
        counting = count;
        e = mw_client_poll(c, 0);
        counting = false;
        cr_assert(e == MW_OK || e == MW_EAGAIN, "poll: %s", mw_strerror(e));
        mwt_clock_advance(&h->clk, 1);
    }
}

static void steady_state(bool persistent, uint32_t group_commit)
{
    mwt_h h;
    mwt_h_init(&h, 91);
    uint32_t size = 0;
    cr_assert_eq(mw_client_storage_size(64, 1, 1, &size), MW_OK);
    mwt_ram *ram = mwt_ram_create(size, 1, 1);
    mw_storage_t st = mwt_ram_storage(ram);
    mw_client_config_t q;
    mw_client_config_init(&q);
    q.queue_capacity = 64;
    if (persistent) {
        q.storage = &st;
        q.queue_key = KEY;
        q.queue_key_len = sizeof KEY;
        q.group_commit_n = group_commit;
    }
    mw_client_t *c = mwt_h_client_with(&h, "dev-1", "gateway", &q, NULL);
    cr_assert_not_null(c, "%s", h.last_open_error);
    /* Warm-up: the handshake and the first exchanges (wolfSSL builds its session then). */
    for (int i = 0; i < 50; i++)
        round_trip(&h, c, i, false);
    cr_assert(mwt_h_drain(&h, 60000));
    size_t before = mwt_h_count(&h, "dev-1");
    allocations = 0;
    for (int i = 0; i < 1000; i++)
        round_trip(&h, c, i, true);
    unsigned long counted = allocations;
    cr_assert(mwt_h_drain(&h, 60000));
    cr_assert_eq(mwt_h_count(&h, "dev-1"), before + 1000, "the counted rounds did deliver");
    cr_assert_eq(counted, 0, "%lu allocations in 1000 rounds of send and poll", counted);
    mwt_h_client_close(&h, &c);
    mwt_h_fini(&h);
    mwt_ram_destroy(ram);
}

Test(client_alloc, the_counting_allocator_sees_allocations)
{
    void *volatile p;
    counting = true;
    allocations = 0;
    p = malloc(16);
    counting = false;
    free(p);
    cr_assert_eq(allocations, 1);
}

/* @req MDR-17.2 */
Test(client_alloc, send_poll_and_ack_allocate_nothing_after_open_with_the_queue_in_ram)
{
    steady_state(false, 0);
}

Test(client_alloc, send_poll_and_ack_allocate_nothing_after_open_with_persistent_storage)
{
    steady_state(true, 0);
}

Test(client_alloc, the_same_holds_with_group_commit)
{
    steady_state(true, 16);
}

static void poll_counted(mwt_h *h, mw_client_t *c)
{
    bool did = mw_gateway_poll(h->gw, 0) == MW_OK;
    for (size_t i = 0; i < h->nfakes; i++)
        did = mwt_fake_poll(h->fakes[i]) || did;
    counting = true;
    mw_err e = mw_client_poll(c, 0);
    int t = mw_client_next_timeout_ms(c);
    counting = false;
    cr_assert(e == MW_OK || e == MW_EAGAIN, "poll: %s", mw_strerror(e));
    if (e == MW_OK || did || mwt_net_ready(h->net) > 0)
        return;
    /* Quiet: on to the next timer, at most a second. */
    uint64_t step = t >= 0 ? (uint64_t)t : 1000;
    for (size_t i = 0; i < h->nfakes; i++) {
        uint64_t f = mwt_fake_next_ms(h->fakes[i]);
        step = f < step ? f : step;
    }
    mwt_clock_advance(&h->clk, step == 0 ? 1 : step > 1000 ? 1000 : step);
}

/* Sessions the client opened after losing one (not counting the first, nor rotations). */
static uint64_t reconnections(const mw_client_t *c)
{
    mw_client_stats_t st;
    mw_client_stats(c, &st);
    return st.handshakes > st.rotations ? st.handshakes - st.rotations - 1 : 0;
}

/* A gateway that completes every handshake and never acknowledges anything: the device
 * retransmits, tries a new session beside the silent one (a full handshake, more than once),
 * gives up and reconnects (resuming the session), again and again. wolfSSL's process-wide
 * state (its ECC tables are per thread) is part of what the device costs: the heap is counted
 * both ways, what the client's calls allocated and still hold, and everything in use. */
/* @req MDR-17.2 */
Test(client_alloc, a_hundred_reconnections_to_a_gateway_that_never_acknowledges_leave_the_heap_flat)
{
    enum { N = 100 };
    mwt_h h;
    mwt_h_init(&h, 92);
    mwt_h_fake(&h, "127.0.0.3:5684", MWT_FAKE_SILENT);
    mw_client_config_t q;
    mw_client_config_init(&q);
    q.queue_capacity = 64;
    counting = true;
    mw_client_t *c = mwt_h_client_to(&h, "dev-1", "127.0.0.3:5684", &q, NULL);
    counting = false;
    cr_assert_not_null(c, "%s", h.last_open_error);
    mwt_send_obs(c, 5, 0);
    static size_t client[N + 1], total[N + 1];
    for (uint64_t n = 1; n <= N; n++) {
        while (reconnections(c) < n)
            poll_counted(&h, c);
        client[n] = live_bytes;
        total[n] = mallinfo2().uordblks;
    }
    mw_client_stats_t st;
    mw_client_stats(c, &st);
    printf("reconnections to a silent gateway: heap held by the client %zu bytes after 1, %zu "
           "after 5, %zu after %d; in use in the process %zu, %zu, %zu (%llu sessions, %llu full "
           "handshakes)\n",
           client[1], client[5], client[N], N, total[1], total[5], total[N],
           (unsigned long long)st.handshakes, (unsigned long long)(st.handshakes - st.resumptions));
    cr_assert_geq(st.handshakes - st.resumptions, N, "full handshakes among them");
    cr_assert_eq(mw_client_pending(c), 5, "nothing was forgotten");
    /* Flat from the first: wolfSSL's ECC tables filled up within five reconnections (three
     * full handshakes each) and would hide behind a later baseline. */
    for (int n = 2; n <= N; n++) {
        cr_assert_leq(client[n], client[1],
                      "the client's heap grew to %zu bytes by reconnection %d", client[n], n);
        cr_assert_leq(total[n], total[1] + 16384,
                      "the heap in use grew from %zu to %zu bytes by reconnection %d", total[1],
                      total[n], n);
    }
    mwt_h_fini(&h);
}
