/* SPDX-License-Identifier: Apache-2.0 */
/* fake_clock.h -- a clock that moves only when the test says so. */
#ifndef MWT_FAKE_CLOCK_H
#define MWT_FAKE_CLOCK_H

#include <stdint.h>

#include "medwire/io.h"

typedef struct mwt_clock {
    uint64_t now_ms;  /**< monotonic time */
    uint64_t wall_ms; /**< Unix time at now_ms == 0 */
} mwt_clock;

/** A clock table reading @p c. */
mw_clock_t mwt_clock_table(mwt_clock *c);
void mwt_clock_advance(mwt_clock *c, uint64_t ms);

/** A deterministic random source (xorshift) for tokens and jitter in tests. */
typedef struct mwt_rng {
    uint64_t state;
} mwt_rng;
mw_random_t mwt_rng_table(mwt_rng *r);
uint64_t mwt_rng_next(mwt_rng *r);

#endif
