/* SPDX-License-Identifier: Apache-2.0 */
/* tick_clock.c -- medwire's monotonic clock from a 32-bit millisecond tick, and its random
 * source from the TRNG (which also seeds wolfCrypt's DRBG: user_settings.h). */
#include "port.h"
#include "vendor.h"

static uint64_t tick_now(void *ctx)
{
    /* The tick wraps every 2^32 ms; count the wraps. Correct as long as the clock is read at
     * least once per wrap, which mw_client_poll's timers ensure. */
    static uint32_t last;
    static uint64_t high;
    (void)ctx;
    uint32_t t = vendor_tick_ms();
    if (t < last)
        high += (uint64_t)1 << 32;
    last = t;
    return high | t;
}

mw_clock_t mw_bm_tick_clock(void)
{
    mw_clock_t c = {.ctx = NULL, .now_ms = tick_now, .wall_ms = NULL};
    return c;
}

static mw_err trng_fill(void *ctx, uint8_t *out, size_t len)
{
    (void)ctx;
    return vendor_trng(out, len) == 0 ? MW_OK : MW_EINTERNAL;
}

mw_random_t mw_bm_trng(void)
{
    mw_random_t r = {.ctx = NULL, .fill = trng_fill};
    return r;
}

/* wolfCrypt's seed (CUSTOM_RAND_GENERATE_SEED in src/port/none/user_settings.h). */
int mw_vendor_seed(unsigned char *out, unsigned int len)
{
    return vendor_trng(out, len) == 0 ? 0 : -1;
}
