/* SPDX-License-Identifier: Apache-2.0 */
/* u64.h -- 64-bit numbers as text without printf's "%llu", which newlib-nano (the C library of
 * small ARM devices) does not support: it prints "lu" there. Device-side code formats 64-bit
 * numbers with these and "%s". */
#ifndef MWI_CORE_U64_H
#define MWI_CORE_U64_H

#include <stdint.h>

/** Room for any uint64_t in decimal (20 digits) or hexadecimal (16), with the NUL. */
#define MWI_U64_TEXT 21

/** @p v in decimal into @p out; returns @p out. */
const char *mwi_u64_dec(uint64_t v, char out[MWI_U64_TEXT]);
/** @p v as 16 lower-case hexadecimal digits (leading zeros kept) into @p out; returns @p out. */
const char *mwi_u64_hex16(uint64_t v, char out[MWI_U64_TEXT]);

#endif
