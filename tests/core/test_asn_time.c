/* SPDX-License-Identifier: Apache-2.0 */
/* test_asn_time.c -- X.509 times as seconds since the epoch (src/core/asn_time.c), against
 * values worked out independently (Python's calendar.timegm). */
#include <criterion/criterion.h>
#include <string.h>

#include "core/asn_time.h"

static bool read_time(const char *s, int64_t *t)
{
    return mwi_asn_time((const uint8_t *)s, strlen(s), t);
}

Test(asn_time, utc_and_generalized_times_read_as_seconds_since_the_epoch)
{
    int64_t t = 0;
    cr_assert(read_time("20261206225800Z", &t));
    cr_assert_eq(t, 1796597880);
    cr_assert(read_time("491231235959Z", &t), "UTCTime 49 is 2049");
    cr_assert_eq(t, 2524607999);
    cr_assert(read_time("500101000000Z", &t), "UTCTime 50 is 1950");
    cr_assert_eq(t, -631152000);
    cr_assert(read_time("19700101000000Z", &t));
    cr_assert_eq(t, 0);
    cr_assert(read_time("20240229120000Z", &t), "a leap day");
    cr_assert_eq(t, 1709208000);
    cr_assert(read_time("21000301000000Z", &t));
    cr_assert_eq(t, 4107542400);
}

Test(asn_time, the_der_tag_and_length_may_come_with_it)
{
    static const uint8_t utc[] = {0x17, 13,  '4', '9', '1', '2', '3', '1',
                                  '2',  '3', '5', '9', '5', '9', 'Z'};
    int64_t t = 0;
    cr_assert(mwi_asn_time(utc, sizeof utc, &t));
    cr_assert_eq(t, 2524607999);
    static const uint8_t bad_len[] = {0x18, 14,  '2', '0', '2', '6', '1', '2', '0',
                                      '6',  '2', '2', '5', '8', '0', '0', 'Z'};
    cr_assert_not(mwi_asn_time(bad_len, sizeof bad_len, &t), "a length that does not match");
}

Test(asn_time, anything_but_a_valid_time_is_refused)
{
    static const char *const bad[] = {
        "20250229000000Z",                       /* not a leap year */
        "20260431000000Z",                       /* April has 30 days */
        "20261306000000Z",                       /* month 13 */
        "20261200000000Z",                       /* day 0 */
        "20261206240000Z",                       /* hour 24 */
        "20261206236000Z",                       /* minute 60 */
        "20261206225800",                        /* no Z */
        "20261206225800+0100", "2026120622580Z", /* 14 characters */
        "2026-2-06225800Z",    "",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        int64_t t = 42;
        cr_assert_not(read_time(bad[i], &t), "'%s' was read", bad[i]);
        cr_assert_eq(t, 42, "'%s': nothing is written", bad[i]);
    }
    cr_assert_not(mwi_asn_time(NULL, 0, NULL));
}
