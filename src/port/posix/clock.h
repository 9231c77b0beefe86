/* SPDX-License-Identifier: Apache-2.0 */
/* clock.h -- internal: the cache of the wall clock's synchronisation state. */
#ifndef MWI_CLOCK_H
#define MWI_CLOCK_H

#include <stdatomic.h>
#include <stdint.h>

/** How long a reading of the synchronisation state is reused, milliseconds. The kernel's state
 *  changes on NTP's time scale (polls of 64 s and more); reading it is a system call, which a
 *  device stamping every message paid several times per message. */
#define MWI_SYNC_CACHE_MS 1000u

/** The last reading and when the next is due; zero-initialised means "never read". Shared by
 *  every thread: each field is atomic, and a race costs one extra reading at most. */
typedef struct mwi_sync_cache {
    _Atomic uint64_t next_ms;
    _Atomic int state;
} mwi_sync_cache;

/** The state read by @p read, reused until MWI_SYNC_CACHE_MS after that reading on the
 *  monotonic clock @p now_ms. */
int mwi_sync_cached(mwi_sync_cache *cache, uint64_t now_ms, int (*read)(void));

#endif
