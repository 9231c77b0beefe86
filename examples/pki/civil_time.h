/* SPDX-License-Identifier: Apache-2.0 */
/* civil_time.h -- UTC calendar dates and times as certificates, CRLs and index.txt write them. */
#ifndef MW_PKI_CIVIL_TIME_H
#define MW_PKI_CIVIL_TIME_H

#include <stdbool.h>
#include <stddef.h>
#include <time.h>

#include <wolfssl/options.h>
#include <wolfssl/wolfcrypt/settings.h>
#include <wolfssl/wolfcrypt/asn_public.h>

/** A proleptic Gregorian date and time of day in UTC; mon and day count from 1. */
typedef struct {
    int year, mon, day, hour, min, sec;
} utc_time;

/** Whether @p y has a 29 February in the Gregorian calendar. */
bool pki_leap_year(int y);

/**
 * Reads exactly "YYYY-MM-DD" (a real date: 2023-02-29 is refused) into @p out, at 00:00:00,
 * or at 23:59:59 when @p end_of_day is set. Returns false, and leaves @p out alone, on
 * anything else.
 */
bool pki_parse_date(const char *s, bool end_of_day, utc_time *out);

/** Orders two times: negative, zero or positive as @p a is before, equal to or after @p b. */
int pki_time_cmp(const utc_time *a, const utc_time *b);

/** The UTC time of @p t seconds since the epoch. */
utc_time pki_from_epoch(time_t t);

/** Seconds since the epoch of @p t; the inverse of pki_from_epoch() (timegm is not POSIX). */
time_t pki_epoch_of(const utc_time *t);

/**
 * The DER of @p t, tag and length included, as wolfCrypt's Cert.beforeDate wants it: UTCTime
 * for 1950-2049 and GeneralizedTime otherwise (RFC 5280 4.1.2.5). Returns the length written,
 * or -1 when the year takes more than four characters.
 */
int pki_encode_time(const utc_time *t, unsigned char out[CTC_DATE_SIZE]);

/**
 * Reads the text of an ASN.1 time, @p n characters at @p s: UTCTime "YYMMDDHHMMSSZ" (years
 * 1950-2049) or GeneralizedTime "YYYYMMDDHHMMSSZ". False unless the date and time are real.
 */
bool pki_parse_asn1_time(const char *s, size_t n, utc_time *out);

/** The text pki_encode_time() puts after tag and length, NUL-terminated, as index.txt stores
 *  it, so that a CRL made from index.txt encodes the very same bytes. */
bool pki_time_text(const utc_time *t, char out[16]);

/** "YYYY-MM-DD HH:MM:SSZ", for messages to the user. */
void pki_format_time(const utc_time *t, char *out, size_t cap);

#endif
