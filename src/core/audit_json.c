/* SPDX-License-Identifier: Apache-2.0 */
/* audit_json.c -- one audit record as one JSON object. */
#include <stdio.h>
#include <string.h>

#include "medwire/audit.h"

/* TEMPORARY escape until the JSON writer is shared. */
static size_t esc(char *o, size_t cap, const char *s)
{
    static const char hex[] = "0123456789abcdef";
    size_t n = 0;
#define PUT(ch) do { if (n + 1 < cap) o[n] = (ch); n++; } while (0)
    PUT('"');
    for (; s && *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\') { PUT('\\'); PUT((char)c); }
        else if (c < 0x20 || c > 0x7e) { PUT('\\'); PUT('u'); PUT('0'); PUT('0'); PUT(hex[c >> 4]); PUT(hex[c & 15]); }
        else PUT((char)c);
    }
    PUT('"');
    if (cap) o[n < cap ? n : cap - 1] = 0;
#undef PUT
    return n;
}

MW_API mw_err mw_audit_to_json(const mw_audit_event_t *ev, char *out, size_t out_size, size_t *out_len)
{
    char a[4][400];
    if (!ev || !out) return MW_EINVAL;
    esc(a[0], sizeof a[0], ev->event);
    esc(a[1], sizeof a[1], ev->peer);
    esc(a[2], sizeof a[2], ev->device);
    esc(a[3], sizeof a[3], ev->reason);
    int n = snprintf(out, out_size, "{\"event\":%s,\"peer\":%s,\"device\":%s,\"reason\":%s,\"error\":\"%s\",\"code\":%d}",
                     a[0], a[1], a[2], a[3], mw_strerror(ev->err), ev->foreign);
    if (n < 0 || (size_t)n >= out_size) return MW_ENOSPC;
    if (out_len) *out_len = (size_t)n;
    return MW_OK;
}
