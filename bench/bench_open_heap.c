/* SPDX-License-Identifier: Apache-2.0 */
/* bench_open_heap.c -- the heap of mw_client_open on the host: the peak of live bytes during the
 * call, what the client still holds after it, the largest single allocation and the largest
 * one freed again before the call returned (transient allocations at open should stay small on
 * a device). Credentials from files, as a device with
 * a filesystem gives them. Prints figures; asserts nothing. */
#include <libgen.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "medwire/medwire.h"

#include "support/fake_clock.h"
#include "support/mem_transport.h"
#include "support/pki.h"

/* glibc's own allocator, under the replacements below (as tests/integration/test_client_alloc.c
 * does), with a size header to follow live bytes. */
extern void *__libc_malloc(size_t n);
extern void *__libc_realloc(void *p, size_t n);
extern void __libc_free(void *p);

#define HDR 16u
static bool counting;
static size_t live, peak, largest, largest_freed;

static void *track(void *raw, size_t n)
{
    if (raw == NULL)
        return NULL;
    memcpy(raw, &n, sizeof n);
    if (counting) {
        live += n;
        if (live > peak)
            peak = live;
        if (n > largest)
            largest = n;
    }
    return (uint8_t *)raw + HDR;
}

static size_t untrack(void *p)
{
    size_t n;
    memcpy(&n, (uint8_t *)p - HDR, sizeof n);
    if (counting) {
        live = n > live ? 0 : live - n;
        if (n > largest_freed) /* transient: allocated and freed again inside the call */
            largest_freed = n;
    }
    return n;
}

void *malloc(size_t n)
{
    return track(__libc_malloc(n + HDR), n);
}

void *calloc(size_t n, size_t m)
{
    if (m != 0 && n > SIZE_MAX / m - HDR)
        return NULL;
    void *p = malloc(n * m);
    if (p)
        memset(p, 0, n * m);
    return p;
}

void free(void *p)
{
    if (p == NULL)
        return;
    (void)untrack(p);
    __libc_free((uint8_t *)p - HDR);
}

void *realloc(void *p, size_t n)
{
    if (p == NULL)
        return malloc(n);
    size_t old = untrack(p);
    (void)old;
    return track(__libc_realloc((uint8_t *)p - HDR, n + HDR), n);
}

int main(int argc, char **argv)
{
    (void)argc;
    char self[4096];
    snprintf(self, sizeof self, "%s", argv[0]);
    setenv("MW_BIN_DIR", dirname(self), 0);
    static mwt_pki pki;
    if (!mwt_pki_make(&pki))
        return 1;
    mwt_net *net = mwt_net_create(1);
    mwt_clock clk = {.now_ms = 1000, .wall_ms = 1790000000000ull};
    mwt_rng rng = {.state = 1};
    mw_client_config_t cfg;
    mw_client_config_init(&cfg);
    cfg.ca_file = mwt_pki_ca(&pki);
    cfg.cert_file = mwt_pki_crt(&pki, "dev-1");
    cfg.key_file = mwt_pki_key(&pki, "dev-1");
    cfg.gateway_name = "gateway";
    cfg.gateway = "127.0.0.1:5684";
    cfg.transport = mwt_net_endpoint(net, "127.0.0.2:20000");
    cfg.clock = mwt_clock_table(&clk);
    cfg.random = mwt_rng_table(&rng);
    /* Without storage the queue lives in RAM, sized by its capacity: the default, and a small
     * device's. */
    static const struct {
        uint32_t cap;
        uint8_t batch_max;
        uint16_t body_max;
        const char *what;
    } runs[] = {
        {256, 0, 0, "default buffers"},
        {32, 0, 0, "default buffers"},
        /* A small device: 4 messages per batch, each batch in one record (no block-wise). */
        {32, 4, 1024, "batch_max 4, body_max 1024"},
    };
    for (size_t i = 0; i < sizeof runs / sizeof runs[0]; i++) {
        cfg.queue_capacity = runs[i].cap;
        cfg.batch_max = runs[i].batch_max;
        cfg.body_max = runs[i].body_max;
        mw_client_t *c = NULL;
        counting = true;
        live = peak = largest = largest_freed = 0;
        mw_err e = mw_client_open(&cfg, &c, NULL);
        size_t held = live;
        counting = false;
        if (e != MW_OK)
            return 1;
        printf("client open heap, queue capacity %u in RAM, %s: peak %zu bytes, held after open "
               "%zu bytes, largest allocation %zu bytes, largest transient %zu bytes\n",
               (unsigned)runs[i].cap, runs[i].what, peak, held, largest, largest_freed);
        mw_client_close(&c);
    }
    mwt_net_destroy(net);
    return 0;
}
