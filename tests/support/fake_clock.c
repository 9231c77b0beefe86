/* SPDX-License-Identifier: Apache-2.0 */
/* fake_clock.c -- a clock that moves only when the test says so, and a seeded random source. */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "support/fake_clock.h"

/* xorshift has a fixed point at 0; any non-zero constant makes a zeroed struct usable. */
#define RNG_ZERO_SEED UINT64_C(0x9E3779B97F4A7C15)

static uint64_t clock_now(void *ctx)
{
    const mwt_clock *c = ctx;
    return c->now_ms;
}

/* Always synchronised: tests of the time-trust flag set it on the envelope
 * path they exercise, not by depending on the host's NTP state. */
static uint64_t clock_wall(void *ctx, int *out_synced)
{
    const mwt_clock *c = ctx;
    if (out_synced != NULL)
        *out_synced = 1;
    return c->wall_ms + c->now_ms;
}

mw_clock_t mwt_clock_table(mwt_clock *c)
{
    mw_clock_t t;
    t.ctx = c;
    t.now_ms = clock_now;
    t.wall_ms = clock_wall;
    return t;
}

void mwt_clock_advance(mwt_clock *c, uint64_t ms)
{
    c->now_ms += ms;
}

/* xorshift64* (Vigna 2016): fast, tiny state, good enough statistics for
 * tokens, jitter and fault injection; never for keys. */
uint64_t mwt_rng_next(mwt_rng *r)
{
    uint64_t x = r->state != 0 ? r->state : RNG_ZERO_SEED;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    r->state = x;
    return x * UINT64_C(0x2545F4914F6CDD1D);
}

static mw_err rng_fill(void *ctx, uint8_t *out, size_t len)
{
    mwt_rng *r = ctx;
    while (len > 0) {
        uint64_t v = mwt_rng_next(r);
        size_t n = len < sizeof v ? len : sizeof v;
        memcpy(out, &v, n);
        out += n;
        len -= n;
    }
    return MW_OK;
}

mw_random_t mwt_rng_table(mwt_rng *r)
{
    mw_random_t t;
    t.ctx = r;
    t.fill = rng_fill;
    return t;
}
