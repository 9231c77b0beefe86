/* SPDX-License-Identifier: Apache-2.0 */
/* expiry.c -- when medwire-gateway warns about a credential's expiry (expiry.h). */
#include "expiry.h"

#define DAY_MS (24u * 3600u * 1000u)

bool expiry_due(expiry_watch *w, expiry_kind kind, int64_t at, int64_t now_s, uint64_t mono_ms,
                int64_t window_s)
{
    if (at == 0 || window_s <= 0 || at - now_s > window_s)
        return false;
    if (w->warned_for[kind] == at && mono_ms - w->warned_at[kind] < DAY_MS)
        return false;
    w->warned_for[kind] = at;
    w->warned_at[kind] = mono_ms;
    return true;
}
