/* SPDX-License-Identifier: Apache-2.0 */
/* test_u64.c -- 64-bit numbers as text without "%llu" (newlib-nano has none): the extremes and
 * the hexadecimal form with its leading zeros. */
#include <criterion/criterion.h>
#include <stdint.h>

#include "core/u64.h"

Test(u64, decimal_from_zero_to_the_largest)
{
    char b[MWI_U64_TEXT];
    cr_assert_str_eq(mwi_u64_dec(0, b), "0");
    cr_assert_str_eq(mwi_u64_dec(7, b), "7");
    cr_assert_str_eq(mwi_u64_dec(1000, b), "1000");
    cr_assert_str_eq(mwi_u64_dec(4294967296ull, b), "4294967296");
    cr_assert_str_eq(mwi_u64_dec(UINT64_MAX, b), "18446744073709551615");
}

Test(u64, hexadecimal_keeps_sixteen_digits)
{
    char b[MWI_U64_TEXT];
    cr_assert_str_eq(mwi_u64_hex16(0, b), "0000000000000000");
    cr_assert_str_eq(mwi_u64_hex16(0xabcull, b), "0000000000000abc");
    cr_assert_str_eq(mwi_u64_hex16(UINT64_MAX, b), "ffffffffffffffff");
}
