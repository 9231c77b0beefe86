/* SPDX-License-Identifier: Apache-2.0 */
/* admission.h -- what one source host or one identity may take of the gateway: handshakes in
 * progress and per second per host, audit lines per identity and event. */
#ifndef MWI_GATEWAY_ADMISSION_H
#define MWI_GATEWAY_ADMISSION_H

#include <stdbool.h>
#include <stdint.h>

#include "medwire/err.h"
#include "medwire/io.h"

/** A token bucket: @c tokens refill at a rate up to a burst. */
typedef struct mwi_bucket {
    double tokens;
    uint64_t at_ms;
} mwi_bucket;

/** Starts full. */
void mwi_bucket_init(mwi_bucket *b, double burst, uint64_t now_ms);
/** Takes one token if there is one after refilling at @p per_s up to @p burst. */
bool mwi_bucket_take(mwi_bucket *b, double per_s, double burst, uint64_t now_ms);
/** Whether mwi_bucket_take would take a token now; takes none and changes nothing. */
bool mwi_bucket_has(const mwi_bucket *b, double per_s, double burst, uint64_t now_ms);

/** One source host: an IPv4 address, or an IPv6 /64 (one customer's prefix), whatever the
 *  port. Handshakes that passed the cookie exchange prove only the address: a host may hold a
 *  bounded share of the half-open pool and start a bounded number per second, so that a flood
 *  from one host never delays a device from another. */
typedef struct mwi_host {
    mw_addr_t key;
    uint32_t half_open; /**< recounted every sweep, incremented on each accept */
    mwi_bucket handshakes;
    uint64_t last_ms;
    uint64_t audit_since_ms; /**< the start of this minute of its refusals' audit lines */
    uint32_t audited, held;  /**< ... lines written in it, and refusals not written */
    struct mwi_host *hnext;
} mwi_host;

typedef struct mwi_hosts {
    mwi_host **b;
    uint32_t nb; /**< a power of two */
    uint32_t n;
} mwi_hosts;

MW_NODISCARD mw_err mwi_hosts_init(mwi_hosts *h, uint32_t buckets);
void mwi_hosts_fini(mwi_hosts *h);
/** The host of @p addr, created (with a full handshake bucket of @p burst) if new; NULL when
 *  out of memory. */
mwi_host *mwi_hosts_get(mwi_hosts *h, const mw_addr_t *addr, double burst, uint64_t now_ms);
/** The host of @p addr if it is in the table, else NULL: nothing is created. */
mwi_host *mwi_hosts_find(mwi_hosts *h, const mw_addr_t *addr);
/** Sets every host's half-open count to 0 before a sweep recounts them. */
void mwi_hosts_clear_counts(mwi_hosts *h);
/** Frees hosts with nothing in progress that were last seen @p idle_ms ago or longer. */
void mwi_hosts_reap(mwi_hosts *h, uint64_t now_ms, uint64_t idle_ms);

/** Audit lines per (event, identity) and interval: repeated events of one kind from one
 *  identity (a device cycling handshakes) become a count per interval, not a line each. */
#define MWI_AUDIT_SLOTS 512

typedef struct mwi_audit_slot {
    const char *event; /**< one of the MW_AUDIT_* constants; NULL: free */
    char device[65];
    uint64_t window_ms;
    uint32_t count, suppressed;
} mwi_audit_slot;

typedef struct mwi_audit_limiter {
    uint32_t per_window;
    uint64_t window_ms;
    mwi_audit_slot slot[MWI_AUDIT_SLOTS];
} mwi_audit_limiter;

void mwi_audit_limiter_init(mwi_audit_limiter *l, uint32_t per_window, uint64_t window_ms);
/** Should this line be written? When a window closes on lines that were held back, their
 *  count is returned in @p out_held (and @p out_slot, to report them) before the new line. */
bool mwi_audit_limit(mwi_audit_limiter *l, const char *event, const char *device, uint64_t now_ms,
                     uint32_t *out_held, const mwi_audit_slot **out_slot);
/** The next slot (from @p *pos) whose window closed with lines held back; its count is reset.
 *  NULL when none is left. */
const mwi_audit_slot *mwi_audit_limiter_due(mwi_audit_limiter *l, uint64_t now_ms, uint32_t *pos,
                                            uint32_t *out_held);

#endif
