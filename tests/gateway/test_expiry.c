/* SPDX-License-Identifier: Apache-2.0 */
/* test_expiry.c -- when medwire-gateway warns about a credential's expiry
 * (examples/gateway/expiry.c), with the times given by the test. */
#include <criterion/criterion.h>

#include "expiry.h"

#define DAY_S  86400
#define DAY_MS (86400u * 1000u)

Test(expiry, a_credential_is_warned_about_inside_its_window_then_once_a_day)
{
    expiry_watch w = {{0}, {0}};
    const int64_t now = 1800000000, at = now + 10 * DAY_S, window = 30 * DAY_S;
    cr_assert_not(expiry_due(&w, EXPIRY_CERT, at, now, 1000, 5 * DAY_S), "10 days, window 5");
    cr_assert(expiry_due(&w, EXPIRY_CERT, at, now, 1000, window), "10 days, window 30");
    cr_assert_not(expiry_due(&w, EXPIRY_CERT, at, now + 3600, 1000 + 3600000, window),
                  "said an hour ago");
    cr_assert(expiry_due(&w, EXPIRY_CERT, at, now + DAY_S, 1000 + DAY_MS, window),
              "said a day ago");
    cr_assert(expiry_due(&w, EXPIRY_CRL, at, now + DAY_S, 1000 + DAY_MS, window),
              "each credential on its own");
    /* A reload brings another date: said at once, whenever the last warning was. */
    cr_assert(
        expiry_due(&w, EXPIRY_CERT, at + DAY_S, now + DAY_S + 60, 1000 + DAY_MS + 60000, window));
    /* Past: still said, once a day. */
    cr_assert(expiry_due(&w, EXPIRY_CA, now - DAY_S, now, 5000, window));
    cr_assert_not(expiry_due(&w, EXPIRY_CA, now - DAY_S, now + 60, 65000, window));
}

Test(expiry, nothing_is_said_without_a_date_or_with_the_warning_off)
{
    expiry_watch w = {{0}, {0}};
    cr_assert_not(expiry_due(&w, EXPIRY_CRL, 0, 1800000000, 0, 30 * DAY_S), "no CRL");
    cr_assert_not(expiry_due(&w, EXPIRY_CERT, 1800000000, 1800000000, 0, 0),
                  "--expiry-warning-days 0");
}
