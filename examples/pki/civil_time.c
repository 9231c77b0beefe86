/* SPDX-License-Identifier: Apache-2.0 */
/* civil_time.c -- UTC calendar dates and times as certificates, CRLs and index.txt write them. */

#include "civil_time.h"

#include <stdio.h>
#include <string.h>

#include <wolfssl/wolfcrypt/asn.h>

bool pki_leap_year(int y)
{
    return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
}

static int days_in_month(int y, int m)
{
    static const int days[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    return m == 2 && pki_leap_year(y) ? 29 : days[m - 1];
}

bool pki_parse_date(const char *s, bool end_of_day, utc_time *out)
{
    int v[3] = {0, 0, 0};
    static const int widths[3] = {4, 2, 2};
    const char *p = s;
    for (int f = 0; f < 3; f++) {
        for (int k = 0; k < widths[f]; k++, p++) {
            if (*p < '0' || *p > '9')
                return false;
            v[f] = v[f] * 10 + (*p - '0');
        }
        if (*p != (f < 2 ? '-' : '\0'))
            return false;
        p++;
    }
    if (v[0] < 1 || v[1] < 1 || v[1] > 12 || v[2] < 1 || v[2] > days_in_month(v[0], v[1]))
        return false;
    *out =
        (utc_time){v[0], v[1], v[2], end_of_day ? 23 : 0, end_of_day ? 59 : 0, end_of_day ? 59 : 0};
    return true;
}

int pki_time_cmp(const utc_time *a, const utc_time *b)
{
    const int x[6] = {a->year, a->mon, a->day, a->hour, a->min, a->sec};
    const int y[6] = {b->year, b->mon, b->day, b->hour, b->min, b->sec};
    for (int i = 0; i < 6; i++) {
        if (x[i] != y[i])
            return x[i] < y[i] ? -1 : 1;
    }
    return 0;
}

utc_time pki_from_epoch(time_t t)
{
    struct tm tm;
    gmtime_r(&t, &tm);
    return (utc_time){tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday,
                      tm.tm_hour,        tm.tm_min,     tm.tm_sec};
}

time_t pki_epoch_of(const utc_time *t)
{
    long long days = 0;
    for (int y = 1970; y < t->year; y++)
        days += pki_leap_year(y) ? 366 : 365;
    for (int y = t->year; y < 1970; y++)
        days -= pki_leap_year(y) ? 366 : 365;
    for (int m = 1; m < t->mon; m++)
        days += days_in_month(t->year, m);
    days += t->day - 1;
    return (time_t)(days * 86400 + t->hour * 3600 + t->min * 60 + t->sec);
}

int pki_encode_time(const utc_time *t, unsigned char out[CTC_DATE_SIZE])
{
    char text[32];
    bool utc = t->year >= 1950 && t->year <= 2049;
    int n;
    if (utc) {
        n = snprintf(text, sizeof(text), "%02d%02d%02d%02d%02d%02dZ", t->year % 100, t->mon, t->day,
                     t->hour, t->min, t->sec);
    } else {
        n = snprintf(text, sizeof(text), "%04d%02d%02d%02d%02d%02dZ", t->year, t->mon, t->day,
                     t->hour, t->min, t->sec);
    }
    if (n != (utc ? 13 : 15))
        return -1;
    out[0] = utc ? ASN_UTC_TIME : ASN_GENERALIZED_TIME;
    out[1] = (unsigned char)n;
    memcpy(out + 2, text, (size_t)n);
    return n + 2;
}

bool pki_parse_asn1_time(const char *s, size_t n, utc_time *out)
{
    int v[7], k = 0;
    size_t digits = n - 1;
    if ((n != 13 && n != 15) || s[digits] != 'Z')
        return false;
    for (size_t i = 0; i < digits; i++) {
        if (s[i] < '0' || s[i] > '9')
            return false;
    }
    int year;
    size_t i = 0;
    if (n == 13) {
        year = (s[0] - '0') * 10 + (s[1] - '0');
        year += year < 50 ? 2000 : 1900;
        i = 2;
    } else {
        year = ((s[0] - '0') * 10 + (s[1] - '0')) * 100 + (s[2] - '0') * 10 + (s[3] - '0');
        i = 4;
    }
    v[k++] = year;
    for (; i < digits; i += 2)
        v[k++] = (s[i] - '0') * 10 + (s[i + 1] - '0');
    utc_time t = {v[0], v[1], v[2], v[3], v[4], v[5]};
    if (t.mon < 1 || t.mon > 12 || t.day < 1 || t.day > days_in_month(t.year, t.mon) ||
        t.hour > 23 || t.min > 59 || t.sec > 59)
        return false;
    *out = t;
    return true;
}

bool pki_time_text(const utc_time *t, char out[16])
{
    unsigned char enc[CTC_DATE_SIZE];
    int n = pki_encode_time(t, enc);
    if (n < 2 || n - 2 >= 16)
        return false;
    memcpy(out, enc + 2, (size_t)n - 2);
    out[n - 2] = '\0';
    return true;
}

void pki_format_time(const utc_time *t, char *out, size_t cap)
{
    snprintf(out, cap, "%04d-%02d-%02d %02d:%02d:%02dZ", t->year, t->mon, t->day, t->hour, t->min,
             t->sec);
}
