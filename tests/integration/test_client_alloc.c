/* SPDX-License-Identifier: Apache-2.0 */
/* test_client_alloc.c -- after open, the device's steady state (send, poll, flush, acks) allocates
 * nothing: a counting allocator sees every allocation the client makes, wolfSSL's included. */
#include <criterion/criterion.h>
#include <stdbool.h>
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

void *malloc(size_t n);
void *calloc(size_t n, size_t m);
void *realloc(void *p, size_t n);
void free(void *p);

void *malloc(size_t n)
{
    if (counting)
        allocations++;
    return __libc_malloc(n);
}

void *calloc(size_t n, size_t m)
{
    if (counting)
        allocations++;
    return __libc_calloc(n, m);
}

void *realloc(void *p, size_t n)
{
    if (counting)
        allocations++;
    return __libc_realloc(p, n);
}

void free(void *p)
{
    __libc_free(p);
}

static const uint8_t KEY[32] = {7};

/* One round of the device's loop: a reading, then poll; the gateway answers outside the
 * counted region. */
static void round_trip(mwt_h *h, mw_client_t *c, int i, bool count)
{
    mw_observation_t o = {.mdc_code = MW_MDC_PULS_OXIM_SAT_O2, .mantissa = 90 + i % 10,
                          .unit = "%"};
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
