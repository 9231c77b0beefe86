/* SPDX-License-Identifier: Apache-2.0 */
/* expiry.h -- medwire-gateway's warnings before its credentials expire: its certificate, its CA
 * certificates and its CRL's nextUpdate (mw_gateway_stats_t), each warned about when it comes
 * within --expiry-warning-days, again once a day, and at once when a reload changes it. */
#ifndef MW_GATEWAY_EXPIRY_H
#define MW_GATEWAY_EXPIRY_H

#include <stdbool.h>
#include <stdint.h>

typedef enum { EXPIRY_CERT, EXPIRY_CA, EXPIRY_CRL, EXPIRY_KINDS } expiry_kind;

/** What was said last, per credential. */
typedef struct expiry_watch {
    int64_t warned_for[EXPIRY_KINDS]; /* the date last warned about, 0: none */
    uint64_t warned_at[EXPIRY_KINDS]; /* when, monotonic ms */
} expiry_watch;

/**
 * Whether to warn now that credential @p kind expires at @p at (seconds since the epoch, 0: none
 * or unknown): at @p now_s (wall clock) and @p mono_ms (monotonic), with a window of
 * @p window_s seconds (0: never warn). True, and remembered, when @p at is within the window
 * (or past) and either nothing was said about this date or the last warning is a day old.
 */
bool expiry_due(expiry_watch *w, expiry_kind kind, int64_t at, int64_t now_s, uint64_t mono_ms,
                int64_t window_s);

#endif
