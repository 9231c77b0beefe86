/* SPDX-License-Identifier: Apache-2.0 */
/* clock.c -- the POSIX clock and the one blocking wait, the only code that reads the time. */
/* ntp_adjtime() is a Linux/BSD extension outside POSIX. */
#define _DEFAULT_SOURCE 1

#include <errno.h>
#include <poll.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>
#if defined(__linux__)
#include <sys/timex.h>
#endif

#include "medwire/io.h"

#include "port/posix/clock.h"

static uint64_t ms_of(const struct timespec *ts)
{
    return (uint64_t)ts->tv_sec * 1000u + (uint64_t)ts->tv_nsec / 1000000u;
}

/* Timers use CLOCK_MONOTONIC: wall time jumps when NTP steps it or a user sets
 * it, and a retransmission timer must neither fire early nor stall. */
static uint64_t system_now_ms(void *ctx)
{
    struct timespec ts;
    (void)ctx;
    if (clock_gettime(CLOCK_MONOTONIC, &ts) != 0)
        return 0;
    return ms_of(&ts);
}

/* Whether the kernel believes its wall clock is disciplined by a time source.
 * The envelope carries this as its time-trust flag: a hospital must be able to
 * tell a measurement stamped by a synchronised clock from one stamped by a
 * device that booted in 1970 or drifted for months, instead of trusting both. */
static int wall_clock_synced(void)
{
#if defined(__linux__)
    struct timex tx = {0};
    int state = ntp_adjtime(&tx); /* modes 0: read only, needs no privilege */
    if (state == -1 || state == TIME_ERROR || (tx.status & STA_UNSYNC) != 0)
        return 0;
    return 1;
#else
    /* No portable way to ask; claiming sync we cannot prove would be worse. */
    return 0;
#endif
}

int mwi_sync_cached(mwi_sync_cache *cache, uint64_t now_ms, int (*read)(void))
{
    if (now_ms < atomic_load_explicit(&cache->next_ms, memory_order_acquire))
        return atomic_load_explicit(&cache->state, memory_order_relaxed);
    int state = read();
    atomic_store_explicit(&cache->state, state, memory_order_relaxed);
    atomic_store_explicit(&cache->next_ms, now_ms + MWI_SYNC_CACHE_MS, memory_order_release);
    return state;
}

static mwi_sync_cache sync_cache;

static uint64_t system_wall_ms(void *ctx, int *out_synced)
{
    struct timespec ts;
    (void)ctx;
    if (clock_gettime(CLOCK_REALTIME, &ts) != 0) {
        if (out_synced != NULL)
            *out_synced = 0;
        return 0;
    }
    if (out_synced != NULL)
        *out_synced = mwi_sync_cached(&sync_cache, system_now_ms(NULL), wall_clock_synced);
    return ms_of(&ts);
}

MW_API uint64_t mw_clock_monotonic_us(void *ctx)
{
    struct timespec ts;
    (void)ctx;
    if (clock_gettime(CLOCK_MONOTONIC, &ts) != 0)
        return 0;
    return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

MW_API mw_clock_t mw_clock_system(void)
{
    mw_clock_t c;
    c.ctx = NULL;
    c.now_ms = system_now_ms;
    c.wall_ms = system_wall_ms;
    return c;
}

MW_API mw_err mw_wait_readable(int fd, int timeout_ms)
{
    struct pollfd pfd;
    int n;

    if (fd < 0) {
        /* No descriptor (an in-memory transport, or none yet): the caller only
         * wants to pace its loop. Never sleep forever on a negative timeout. */
        if (timeout_ms <= 0)
            return MW_OK;
        if (poll(NULL, 0, timeout_ms) < 0 && errno != EINTR)
            return MW_ETRANSPORT;
        return MW_OK;
    }

    pfd.fd = fd;
    pfd.events = POLLIN;
    pfd.revents = 0;
    n = poll(&pfd, 1, timeout_ms);
    if (n < 0)
        /* A signal only cuts the wait short; the caller loops on its own deadline. */
        return errno == EINTR ? MW_OK : MW_ETRANSPORT;
    if (n > 0 && (pfd.revents & POLLNVAL) != 0)
        return MW_ETRANSPORT;
    /* POLLERR on a UDP socket is a queued ICMP error, which the next recv
     * consumes; report it as readable so the caller polls its transport. */
    return MW_OK;
}
