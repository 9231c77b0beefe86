/* SPDX-License-Identifier: Apache-2.0 */
/* u64.c -- 64-bit numbers as text for device-side messages, where printf has no "%llu". */
#include "core/u64.h"

const char *mwi_u64_dec(uint64_t v, char out[MWI_U64_TEXT])
{
    char rev[MWI_U64_TEXT];
    int n = 0;
    do {
        rev[n++] = (char)('0' + (int)(v % 10u));
        v /= 10u;
    } while (v != 0);
    for (int i = 0; i < n; i++)
        out[i] = rev[n - 1 - i];
    out[n] = '\0';
    return out;
}

const char *mwi_u64_hex16(uint64_t v, char out[MWI_U64_TEXT])
{
    static const char digits[] = "0123456789abcdef";
    for (int i = 15; i >= 0; i--) {
        out[i] = digits[v & 0xFu];
        v >>= 4;
    }
    out[16] = '\0';
    return out;
}
