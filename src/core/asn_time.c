/* SPDX-License-Identifier: Apache-2.0 */
/* asn_time.c -- X.509 times as seconds since the epoch (asn_time.h). The civil-to-days
 * conversion is the proleptic Gregorian one (days before 1970-01-01 are negative). */
#include "core/asn_time.h"

/* @p n decimal digits at @p p as a number; false if one is not a digit. */
static bool digits(const uint8_t *p, size_t n, int *out)
{
    int v = 0;
    for (size_t i = 0; i < n; i++) {
        if (p[i] < '0' || p[i] > '9')
            return false;
        v = v * 10 + (p[i] - '0');
    }
    *out = v;
    return true;
}

static int64_t days_from_civil(int y, int m, int d)
{
    y -= m <= 2;
    int64_t era = (y >= 0 ? y : y - 399) / 400;
    int64_t yoe = y - era * 400;
    int64_t doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + doe - 719468;
}

bool mwi_asn_time(const uint8_t *p, size_t n, int64_t *out_unix_s)
{
    if (p == NULL || out_unix_s == NULL)
        return false;
    if (n >= 2 && (p[0] == 0x17 || p[0] == 0x18) && p[1] == n - 2) {
        p += 2;
        n -= 2;
    }
    int y, mo, d, h, mi, s;
    size_t yl = n == 13 ? 2 : n == 15 ? 4 : 0;
    if (yl == 0 || p[n - 1] != 'Z' || !digits(p, yl, &y) || !digits(p + yl, 2, &mo) ||
        !digits(p + yl + 2, 2, &d) || !digits(p + yl + 4, 2, &h) || !digits(p + yl + 6, 2, &mi) ||
        !digits(p + yl + 8, 2, &s))
        return false;
    if (yl == 2)
        y += y < 50 ? 2000 : 1900;
    static const int mdays[12] = {31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    bool leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    if (mo < 1 || mo > 12 || d < 1 || d > mdays[mo - 1] || (mo == 2 && d == 29 && !leap) ||
        h > 23 || mi > 59 || s > 59)
        return false;
    *out_unix_s = days_from_civil(y, mo, d) * 86400 + h * 3600 + mi * 60 + s;
    return true;
}
