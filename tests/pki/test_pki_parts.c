/* SPDX-License-Identifier: Apache-2.0 */
/* test_pki_parts.c -- medwire-pki's parts on their own: civil time, DER, the CA index, reasons. */
/* nftw() is an XSI extension. */
#define _XOPEN_SOURCE 700
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <criterion/criterion.h>

#include "ca_index.h"
#include "civil_time.h"
#include "crl_reason.h"
#include "der.h"
#include "support/proc.h"

/* X.690 universal tags of the two ASN.1 time types. */
#define TAG_UTC_TIME         0x17
#define TAG_GENERALIZED_TIME 0x18

static utc_time at(int year, int mon, int day, int hour, int min, int sec)
{
    return (utc_time){year, mon, day, hour, min, sec};
}

static bool same_time(const utc_time *a, const utc_time *b)
{
    return a->year == b->year && a->mon == b->mon && a->day == b->day && a->hour == b->hour &&
           a->min == b->min && a->sec == b->sec;
}

/* --- civil time --------------------------------------------------------------------------- */

/*
 * The C library's calendar (gmtime_r, behind pki_from_epoch) is the reference: walking it a
 * day at a time from 1900 to 2400 shows which years have a 29 February, and every instant it
 * names must map back to the same second through pki_epoch_of.
 */
Test(civil_time, leap_years_and_epoch_seconds_agree_with_the_c_library_from_1900_to_2400)
{
    static bool has_feb29[2402];
    time_t t = 0;
    while (pki_from_epoch(t).year >= 1900)
        t -= 86400;
    t += 86400;
    /* A different time of day every day, so hours, minutes and seconds are covered too. */
    for (long i = 0;; i++, t += 86400) {
        time_t when = t + (i * 3607) % 86400;
        utc_time u = pki_from_epoch(when);
        if (u.year > 2401)
            break;
        if (u.mon == 2 && u.day == 29)
            has_feb29[u.year] = true;
        cr_assert_eq(pki_epoch_of(&u), when, "%04d-%02d-%02d %02d:%02d:%02d", u.year, u.mon, u.day,
                     u.hour, u.min, u.sec);
    }
    for (int y = 1900; y <= 2400; y++)
        cr_assert_eq(pki_leap_year(y), has_feb29[y], "year %d", y);
    /* The century rules, spelled out: */
    cr_assert(pki_leap_year(2000), "divisible by 400");
    cr_assert(!pki_leap_year(2100), "divisible by 100 but not by 400");
    cr_assert(pki_leap_year(2024));
    cr_assert(!pki_leap_year(2023));
}

Test(civil_time, a_date_runs_from_the_first_to_the_last_second_of_its_day)
{
    static const char *const dates[] = {"2024-02-28", "2024-02-29", "2023-12-31",
                                        "2000-02-29", "1970-01-01", "2049-12-31"};
    for (size_t i = 0; i < sizeof(dates) / sizeof(dates[0]); i++) {
        utc_time start, end;
        cr_assert(pki_parse_date(dates[i], false, &start), "%s", dates[i]);
        cr_assert(pki_parse_date(dates[i], true, &end), "%s", dates[i]);
        cr_assert(start.hour == 0 && start.min == 0 && start.sec == 0, "%s", dates[i]);
        cr_assert(end.hour == 23 && end.min == 59 && end.sec == 59, "%s", dates[i]);
        cr_assert_eq(pki_epoch_of(&end) - pki_epoch_of(&start), 86399, "%s", dates[i]);
        /* The second after the end is the start of the next calendar day. */
        utc_time next = pki_from_epoch(pki_epoch_of(&end) + 1);
        cr_assert(next.hour == 0 && next.min == 0 && next.sec == 0, "%s", dates[i]);
        cr_assert_neq(next.day, start.day, "%s", dates[i]);
    }
    utc_time d;
    cr_assert(pki_parse_date("2031-07-04", true, &d));
    cr_assert(d.year == 2031 && d.mon == 7 && d.day == 4);
}

Test(civil_time, dates_that_do_not_exist_or_are_misspelt_are_refused)
{
    static const char *const bad[] = {
        "2023-02-29", "2100-02-29",  "1900-02-29",  "2024-02-30",  "2023-04-31",
        "2023-06-31", "2023-13-01",  "2023-00-10",  "2023-01-00",  "2023-01-32",
        "0000-01-01", "2023-1-01",   "2023-01-1",   "23-01-01",    "20230101",
        "2023/01/01", "2023-01-01x", " 2023-01-01", "2023-01-01 ", "2023-01-01T00:00:00",
        "",           "-023-01-01",  "2023--1-01",  "+023-01-01",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        utc_time out = at(1, 2, 3, 4, 5, 6), before = out;
        cr_expect(!pki_parse_date(bad[i], false, &out), "'%s' was accepted", bad[i]);
        cr_expect(!pki_parse_date(bad[i], true, &out), "'%s' was accepted", bad[i]);
        cr_expect(same_time(&out, &before), "'%s' changed the output", bad[i]);
    }
    utc_time ok;
    cr_assert(pki_parse_date("2024-02-29", false, &ok), "a real 29 February is a date");
    cr_assert(pki_parse_date("2000-02-29", false, &ok), "2000 is a leap year");
}

Test(civil_time, times_compare_as_the_instants_they_name)
{
    /* Pairs across fields: a later year with an earlier month, day, hour... still comes later. */
    uint64_t x = 12345;
    for (int i = 0; i < 20000; i++) {
        x = x * 6364136223846793005u + 1442695040888963407u;
        time_t a = (time_t)((x >> 16) % (4102444800u + 631152000u)) - 631152000; /* 1950-2099 */
        time_t b = (i % 4 == 0) ? a : a + (time_t)((x >> 7) % 200000000) - 100000000;
        if (i % 8 == 1)
            b = a + 1;
        utc_time ua = pki_from_epoch(a), ub = pki_from_epoch(b);
        int want = a < b ? -1 : a > b ? 1 : 0;
        int got = pki_time_cmp(&ua, &ub);
        got = got < 0 ? -1 : got > 0 ? 1 : 0;
        cr_assert_eq(got, want, "%lld vs %lld", (long long)a, (long long)b);
    }
}

/* --- ASN.1 times -------------------------------------------------------------------------- */

static void expect_encoding(utc_time t, int tag, const char *text)
{
    unsigned char enc[CTC_DATE_SIZE];
    size_t n = strlen(text);
    cr_assert_eq(pki_encode_time(&t, enc), (int)n + 2, "%s", text);
    cr_assert_eq(enc[0], tag, "%s", text);
    cr_assert_eq(enc[1], n, "%s", text);
    cr_assert_eq(memcmp(enc + 2, text, n), 0, "%s: got %.*s", text, (int)n, (const char *)enc + 2);
    utc_time back;
    cr_assert(pki_parse_asn1_time(text, n, &back), "%s", text);
    cr_assert(same_time(&back, &t), "%s reads back as another time", text);
}

Test(asn1_time, utctime_runs_from_1950_to_2049_and_generalizedtime_covers_the_rest)
{
    /* RFC 5280 4.1.2.5: the last and first second of each side of both boundaries. */
    expect_encoding(at(2049, 12, 31, 23, 59, 59), TAG_UTC_TIME, "491231235959Z");
    expect_encoding(at(2050, 1, 1, 0, 0, 0), TAG_GENERALIZED_TIME, "20500101000000Z");
    expect_encoding(at(1950, 1, 1, 0, 0, 0), TAG_UTC_TIME, "500101000000Z");
    expect_encoding(at(1949, 12, 31, 23, 59, 59), TAG_GENERALIZED_TIME, "19491231235959Z");
    expect_encoding(at(2000, 2, 29, 12, 30, 7), TAG_UTC_TIME, "000229123007Z");
    expect_encoding(at(2100, 3, 1, 0, 0, 0), TAG_GENERALIZED_TIME, "21000301000000Z");
}

Test(asn1_time, the_text_index_txt_stores_reads_back_as_the_same_time)
{
    for (int year = 1900; year <= 2200; year += 1) {
        utc_time t = at(year, 1 + year % 12, 1 + year % 28, year % 24, year % 60, (year * 7) % 60);
        if (pki_leap_year(year)) {
            t.mon = 2;
            t.day = 29;
        }
        char text[16];
        cr_assert(pki_time_text(&t, text), "%d", year);
        bool utc = year >= 1950 && year <= 2049;
        cr_assert_eq(strlen(text), utc ? 13u : 15u, "%d: %s", year, text);
        utc_time back;
        cr_assert(pki_parse_asn1_time(text, strlen(text), &back), "%s", text);
        cr_assert(same_time(&back, &t), "%s", text);
    }
}

Test(asn1_time, malformed_or_impossible_times_are_refused)
{
    static const char *const bad[] = {
        "491231235959",    /* no Z */
        "4912312359Z",     /* no seconds */
        "4912312359590Z",  /* 14 characters: neither form */
        "491331235959Z",   /* month 13 */
        "490229000000Z",   /* 2049 is not a leap year */
        "21000229000000Z", /* nor is 2100 */
        "491231245959Z",   /* hour 24 */
        "491231236059Z",   /* minute 60 */
        "491231235960Z",   /* second 60 */
        "49123123595aZ",   "4912312359 9Z", "491231235959z", "-91231235959Z", "",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        utc_time t;
        cr_expect(!pki_parse_asn1_time(bad[i], strlen(bad[i]), &t), "'%s' was accepted", bad[i]);
    }
    utc_time t;
    cr_assert(pki_parse_asn1_time("480229000000Z", 13, &t), "2048 is a leap year");
    cr_assert(pki_parse_asn1_time("20000229000000Z", 15, &t), "2000 is a leap year");
    /* The length given counts, not the NUL: a valid time followed by more text is refused. */
    cr_assert(!pki_parse_asn1_time("491231235959Z,keyCompromise", 27, &t));
}

Test(asn1_time, a_year_past_9999_is_not_encoded)
{
    unsigned char enc[CTC_DATE_SIZE];
    char text[16];
    utc_time t = at(10000, 1, 1, 0, 0, 0);
    cr_assert_eq(pki_encode_time(&t, enc), -1);
    cr_assert(!pki_time_text(&t, text));
    t.year = 9999;
    cr_assert_eq(pki_encode_time(&t, enc), 17);
}

/* --- DER ---------------------------------------------------------------------------------- */

Test(der, lengths_take_the_shortest_form_on_each_side_of_every_boundary)
{
    /* X.690 10.1: short form below 128, then as few length octets as the value needs. */
    static const struct {
        size_t n;
        unsigned char head[5];
        size_t head_len;
    } cases[] = {
        {0, {0x04, 0x00}, 2},
        {127, {0x04, 0x7f}, 2},
        {128, {0x04, 0x81, 0x80}, 3},
        {255, {0x04, 0x81, 0xff}, 3},
        {256, {0x04, 0x82, 0x01, 0x00}, 4},
        {65535, {0x04, 0x82, 0xff, 0xff}, 4},
        {65536, {0x04, 0x83, 0x01, 0x00, 0x00}, 5},
    };
    unsigned char *content = malloc(65536);
    cr_assert_not_null(content);
    for (size_t i = 0; i < 65536; i++)
        content[i] = (unsigned char)(i * 7 + 3);
    for (size_t c = 0; c < sizeof(cases) / sizeof(cases[0]); c++) {
        size_t n = cases[c].n, hl = cases[c].head_len;
        dbuf b = {0}, inner = {0}, wrapped = {0};
        pki_db_tlv(&b, 0x04, content, n);
        cr_assert(!b.failed, "%zu", n);
        cr_assert_eq(b.len, hl + n, "%zu", n);
        cr_assert_eq(memcmp(b.p, cases[c].head, hl), 0, "%zu: header %02x %02x %02x", n, b.p[0],
                     b.p[1], hl > 2 ? b.p[2] : 0);
        cr_assert(n == 0 || memcmp(b.p + hl, content, n) == 0, "%zu", n);

        /* Wrapping a buffer is the same TLV. */
        pki_db_put(&inner, content, n);
        pki_db_wrap(&wrapped, 0x04, &inner);
        cr_assert_eq(wrapped.len, b.len, "%zu", n);
        cr_assert_eq(memcmp(wrapped.p, b.p, b.len), 0, "%zu", n);

        /* The fixed-size writer and the reader agree, up to the two octets they handle. */
        if (n <= 0xffff) {
            unsigned char head[4];
            cr_assert_eq(pki_der_put_header(head, 0x04, n), hl, "%zu", n);
            cr_assert_eq(memcmp(head, cases[c].head, hl), 0, "%zu", n);
            cr_assert_eq(pki_der_header_size(n), hl, "%zu", n);
            size_t len = 0;
            cr_assert_eq(pki_der_header(b.p, b.len, &len), hl, "%zu", n);
            cr_assert_eq(len, n);
        }
        pki_db_free(&b);
        pki_db_free(&inner);
        pki_db_free(&wrapped);
    }
    free(content);
}

Test(der, a_header_announcing_more_than_the_input_holds_is_refused)
{
    unsigned char buf[4 + 300];
    size_t hl = pki_der_put_header(buf, 0x30, 300), len;
    memset(buf + hl, 0xab, 300);
    cr_assert_eq(pki_der_header(buf, hl + 300, &len), hl);
    for (size_t avail = 0; avail < hl + 300; avail++)
        cr_assert_eq(pki_der_header(buf, avail, &len), 0, "accepted with %zu bytes", avail);

    static const unsigned char indefinite[] = {0x30, 0x80, 0x00, 0x00};
    static const unsigned char three_octets[] = {0x04, 0x83, 0x00, 0x00, 0x01, 0xff};
    static const unsigned char no_length[] = {0x04, 0x81};
    cr_assert_eq(pki_der_header(indefinite, sizeof(indefinite), &len), 0);
    cr_assert_eq(pki_der_header(three_octets, sizeof(three_octets), &len), 0);
    cr_assert_eq(pki_der_header(no_length, sizeof(no_length), &len), 0);
}

Test(der, der_next_walks_a_sequence_and_refuses_every_truncation)
{
    static const unsigned char five = 5;
    unsigned char octets[200];
    memset(octets, 0x5a, sizeof(octets));
    dbuf body = {0}, seq = {0};
    pki_db_tlv(&body, 0x02, &five, 1);
    pki_db_tlv(&body, 0x04, octets, sizeof(octets));
    pki_db_wrap(&seq, 0x30, &body);
    cr_assert(!seq.failed);

    size_t pos = 0, start, len;
    unsigned char tag;
    cr_assert(pki_der_next(seq.p, seq.len, &pos, &tag, &start, &len));
    cr_assert_eq(tag, 0x30);
    cr_assert_eq(pos, seq.len);
    cr_assert_eq(start + len, seq.len);
    size_t end = start + len, p = start, c, n;
    cr_assert(pki_der_next(seq.p, end, &p, &tag, &c, &n));
    cr_assert(tag == 0x02 && n == 1 && seq.p[c] == 5);
    cr_assert(pki_der_next(seq.p, end, &p, &tag, &c, &n));
    cr_assert(tag == 0x04 && n == sizeof(octets));
    cr_assert(!pki_der_next(seq.p, end, &p, &tag, &c, &n), "read past the last element");

    for (size_t cut = 0; cut < seq.len; cut++) {
        pos = 0;
        cr_assert(!pki_der_next(seq.p, cut, &pos, &tag, &start, &len), "cut at %zu", cut);
    }
    /* Cut inside the second element: the first still reads, the second does not. */
    p = seq.len - body.len;
    cr_assert(pki_der_next(seq.p, seq.len - 1, &p, &tag, &c, &n));
    cr_assert(!pki_der_next(seq.p, seq.len - 1, &p, &tag, &c, &n));
    /* A position already past the end reads nothing, even where a whole element lies. */
    p = seq.len - body.len;
    cr_assert(!pki_der_next(seq.p, 1, &p, &tag, &c, &n));
    pki_db_free(&body);
    pki_db_free(&seq);
}

static void expect_integer(const dbuf *b, const unsigned char *want, size_t want_len)
{
    cr_assert(!b->failed);
    cr_assert_eq(b->len, want_len);
    cr_assert_eq(memcmp(b->p, want, want_len), 0);
}

Test(der, integers_are_minimal_and_stay_positive)
{
    static const struct {
        unsigned char mag[3];
        size_t n;
        unsigned char der[5];
        size_t der_len;
    } cases[] = {
        {{0x00, 0x00, 0x7f}, 3, {0x02, 0x01, 0x7f}, 3}, /* leading zeros dropped */
        {{0x80}, 1, {0x02, 0x02, 0x00, 0x80}, 4},       /* top bit set: a 0x00 first */
        {{0x00}, 1, {0x02, 0x01, 0x00}, 3},             /* zero is one octet */
        {{0x00, 0x00}, 2, {0x02, 0x01, 0x00}, 3},       /* however it is given */
        {{0x01, 0x00}, 2, {0x02, 0x02, 0x01, 0x00}, 4}, /* inner zeros are kept */
        {{0x00, 0xff, 0x01}, 3, {0x02, 0x03, 0x00, 0xff, 0x01}, 5},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        dbuf b = {0};
        pki_db_uint(&b, cases[i].mag, cases[i].n);
        expect_integer(&b, cases[i].der, cases[i].der_len);
        pki_db_free(&b);
    }
    static const unsigned char u0[] = {0x02, 0x01, 0x00}, u127[] = {0x02, 0x01, 0x7f},
                               u128[] = {0x02, 0x02, 0x00, 0x80},
                               umax[] = {0x02, 0x09, 0x00, 0xff, 0xff, 0xff,
                                         0xff, 0xff, 0xff, 0xff, 0xff};
    dbuf b = {0};
    pki_db_u64(&b, 0);
    expect_integer(&b, u0, sizeof(u0));
    pki_db_free(&b);
    pki_db_u64(&b, 127);
    expect_integer(&b, u127, sizeof(u127));
    pki_db_free(&b);
    pki_db_u64(&b, 128);
    expect_integer(&b, u128, sizeof(u128));
    pki_db_free(&b);
    pki_db_u64(&b, UINT64_MAX);
    expect_integer(&b, umax, sizeof(umax));
    pki_db_free(&b);

    /* RFC 5280 4.1.2.2 serials take up to 20 octets; with the sign octet that is 21. */
    unsigned char big[22];
    memset(big, 0xff, sizeof(big));
    pki_db_uint(&b, big, 21);
    cr_assert(!b.failed);
    cr_assert_eq(b.len, 2u + 22u);
    pki_db_free(&b);
    pki_db_uint(&b, big, 22);
    cr_assert(b.failed, "a 22-octet magnitude was encoded");
    pki_db_free(&b);
}

Test(der, a_failure_sticks_to_the_buffer_and_to_what_wraps_it)
{
    dbuf b = {0}, outer = {0};
    pki_db_uint(&b, NULL, 0);
    cr_assert(b.failed, "an empty INTEGER was encoded");
    pki_db_str(&b, "more");
    cr_assert_eq(b.len, 0u, "a failed buffer still grew");
    pki_db_str(&outer, "x");
    pki_db_wrap(&outer, 0x30, &b);
    cr_assert(outer.failed);
    pki_db_free(&b);
    pki_db_free(&outer);
    cr_assert(!b.failed && b.p == NULL && b.len == 0, "pki_db_free leaves a fresh buffer");
}

/* --- the CA index ------------------------------------------------------------------------- */

static char dir[1024];

static int remove_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    return remove(path);
}

static void index_setup(void)
{
    const char *d = mwt_tmpdir();
    cr_assert_not_null(d, "cannot make a temporary directory");
    snprintf(dir, sizeof(dir), "%s", d);
}

static void index_teardown(void)
{
    nftw(dir, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
}

TestSuite(ca_index, .init = index_setup, .fini = index_teardown);

static const char *in_dir(const char *name)
{
    static char path[1200];
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    return path;
}

static void write_text(const char *name, const char *text)
{
    FILE *f = fopen(in_dir(name), "w");
    cr_assert_not_null(f, "%s: %s", name, strerror(errno));
    cr_assert(fputs(text, f) >= 0);
    cr_assert_eq(fclose(f), 0);
}

static char *read_text(const char *name)
{
    char *s = mwt_read_file(in_dir(name));
    cr_assert_not_null(s, "cannot read %s", name);
    return s;
}

/* Sends stderr to a file in the test's directory until stderr_end(), which returns what was
 * written there (free it): the parts report failures on stderr, as medwire-pki does. */
static int stderr_begin(void)
{
    fflush(stderr);
    int saved = dup(STDERR_FILENO);
    int fd = open(in_dir("stderr.txt"), O_WRONLY | O_CREAT | O_TRUNC, 0600);
    cr_assert(saved >= 0 && fd >= 0);
    cr_assert(dup2(fd, STDERR_FILENO) >= 0);
    close(fd);
    return saved;
}

static char *stderr_end(int saved)
{
    fflush(stderr);
    cr_assert(dup2(saved, STDERR_FILENO) >= 0);
    close(saved);
    return read_text("stderr.txt");
}

static const char good_line[] = "V\t491231235959Z\t\t0A1B2C\tunknown\t/O=medwire/CN=dev-1\n";

Test(ca_index, a_missing_index_is_an_empty_one)
{
    ca_index idx;
    cr_assert_eq(pki_index_load(dir, &idx), EXIT_SUCCESS);
    cr_assert_eq(idx.n, 0u);
    pki_index_free(&idx);
}

Test(ca_index, a_malformed_line_is_refused_with_its_number_and_what_is_wrong)
{
    static const struct {
        const char *line;
        const char *why;
    } cases[] = {
        {"V\t491231235959Z\t\t0A\tunknown\n", "not 6 tab-separated fields"},
        {"V\t491231235959Z\t\t0A\tunknown\t/O=medwire/CN=x\textra\n", "not 6 tab-separated"},
        {"X\t491231235959Z\t\t0A\tunknown\t/O=medwire/CN=x\n", "status is not V, R or E"},
        {"VR\t491231235959Z\t\t0A\tunknown\t/O=medwire/CN=x\n", "status is not V, R or E"},
        {"V\t4912312359Z\t\t0A\tunknown\t/O=medwire/CN=x\n", "expiry date is not an ASN.1 time"},
        {"V\t490229000000Z\t\t0A\tunknown\t/O=medwire/CN=x\n", "expiry date is not an ASN.1"},
        {"R\t491231235959Z\t\t0A\tunknown\t/O=medwire/CN=x\n", "revocation field is not DATE"},
        {"R\t491231235959Z\t231114221320Z,bogus\t0A\tunknown\t/O=medwire/CN=x\n",
         "revocation field is not DATE or DATE,REASON"},
        {"R\t491231235959Z\t231114221320Z,\t0A\tunknown\t/O=medwire/CN=x\n", "revocation field"},
        {"V\t491231235959Z\t231114221320Z\t0A\tunknown\t/O=medwire/CN=x\n",
         "a certificate that is not revoked has a revocation date"},
        {"V\t491231235959Z\t\t0A0\tunknown\t/O=medwire/CN=x\n", "serial number is not an even"},
        {"V\t491231235959Z\t\t0G\tunknown\t/O=medwire/CN=x\n", "serial number"},
        {"V\t491231235959Z\t\t\tunknown\t/O=medwire/CN=x\n", "serial number"},
        {"V\t491231235959Z\t\t"
         "000102030405060708090A0B0C0D0E0F1011121314\tunknown\t/O=medwire/CN=x\n",
         "at most 40"},
        {"V\t491231235959Z\t\t0A\tunknown\tO=medwire/CN=x\n", "subject does not start with '/'"},
        {"\n", "not 6 tab-separated fields"},
        {"V\t491231235959Z\t\t0A\tunknown\t/O=medwire/CN=x", "the last line has no newline"},
    };
    char text[512];
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        snprintf(text, sizeof(text), "%s%s", good_line, cases[i].line);
        write_text("index.txt", text);
        ca_index idx;
        int saved = stderr_begin();
        int rc = pki_index_load(dir, &idx);
        char *err = stderr_end(saved);
        pki_index_free(&idx);
        cr_expect_eq(rc, EXIT_FAILURE, "case %zu was loaded: %s", i, cases[i].line);
        cr_expect(strstr(err, "index.txt line 2: ") != NULL, "case %zu: %s", i, err);
        cr_expect(strstr(err, cases[i].why) != NULL, "case %zu: %s", i, err);
        free(err);
    }
    /* The same file without the bad line loads: only that line was refused. */
    write_text("index.txt", good_line);
    ca_index idx;
    cr_assert_eq(pki_index_load(dir, &idx), EXIT_SUCCESS);
    cr_assert_eq(idx.n, 1u);
    pki_index_free(&idx);
}

Test(ca_index, saving_and_loading_keeps_every_line_byte_for_byte)
{
    static const index_entry lines[] = {
        {'V', "491231235959Z", "", "0A1B2C", "unknown", "/O=medwire/CN=dev-1"},
        {'R', "281114221320Z", "231114221320Z,keyCompromise", "5156C9C89B9CC2BD", "unknown",
         "/O=medwire/CN=gw.example"},
        {'R', "20510101000000Z", "240101000000Z", "00FF", "unknown", "/O=medwire/CN=dev-2"},
        {'E', "200101000000Z", "", "7F", "unknown", "/O=medwire/CN=old"},
        {'R', "491231235959Z", "19491231235959Z,CACompromise", "01", "unknown",
         "/O=medwire/CN=dev-3"},
    };
    const size_t n = sizeof(lines) / sizeof(lines[0]);
    ca_index idx = {0};
    for (size_t i = 0; i < n; i++)
        cr_assert(pki_index_push(&idx, &lines[i]));
    cr_assert_eq(pki_index_save(dir, &idx), EXIT_SUCCESS);
    pki_index_free(&idx);

    /* The layout of 'openssl ca': six tab-separated fields and a newline per line. */
    char want[1024] = "";
    for (size_t i = 0; i < n; i++) {
        size_t used = strlen(want);
        snprintf(want + used, sizeof(want) - used, "%c\t%s\t%s\t%s\t%s\t%s\n", lines[i].status,
                 lines[i].expiry, lines[i].revoked, lines[i].serial, lines[i].file,
                 lines[i].subject);
    }
    char *first = read_text("index.txt");
    cr_assert_str_eq(first, want);
    struct stat st;
    cr_assert_eq(stat(in_dir("index.txt"), &st), 0);
    cr_assert_eq(st.st_mode & 0777, 0644u);

    cr_assert_eq(pki_index_load(dir, &idx), EXIT_SUCCESS);
    cr_assert_eq(idx.n, n);
    for (size_t i = 0; i < n; i++) {
        cr_assert_eq(idx.e[i].status, lines[i].status, "line %zu", i + 1);
        cr_assert_str_eq(idx.e[i].expiry, lines[i].expiry);
        cr_assert_str_eq(idx.e[i].revoked, lines[i].revoked);
        cr_assert_str_eq(idx.e[i].serial, lines[i].serial);
        cr_assert_str_eq(idx.e[i].file, lines[i].file);
        cr_assert_str_eq(idx.e[i].subject, lines[i].subject);
    }
    cr_assert_eq(pki_index_save(dir, &idx), EXIT_SUCCESS);
    pki_index_free(&idx);
    char *second = read_text("index.txt");
    cr_assert_str_eq(second, first, "a load and save changed the file");
    free(first);
    free(second);
}

/* Whether another process can take the CA lock right now, without waiting. */
static bool another_process_can_lock(void)
{
    pid_t pid = fork();
    cr_assert(pid >= 0);
    if (pid == 0) {
        int fd = open(in_dir(".lock"), O_RDWR);
        struct flock fl = {.l_type = F_WRLCK, .l_whence = SEEK_SET};
        _exit(fd >= 0 && fcntl(fd, F_SETLK, &fl) == 0 ? 0 : 1);
    }
    int status = 0;
    cr_assert_eq(waitpid(pid, &status, 0), pid);
    cr_assert(WIFEXITED(status));
    return WEXITSTATUS(status) == 0;
}

Test(ca_index, an_issued_certificate_is_recorded_as_a_valid_line_after_the_others)
{
    write_text("index.txt", good_line);
    cert_request req = {
        .role = ROLE_DEVICE, .cn = "dev-7", .not_after = at(2049, 12, 31, 23, 59, 59)};
    for (int i = 0; i < PKI_SERIAL_LEN; i++)
        req.serial[i] = (unsigned char)(i == 0 ? 0x7f : 0xa0 + i);
    cr_assert_eq(pki_record_issued(dir, &req), EXIT_SUCCESS);
    cr_assert(another_process_can_lock(), "recording left the CA locked");
    req.not_after = at(2050, 1, 1, 0, 0, 0);
    req.cn = "gw";
    cr_assert_eq(pki_record_issued(dir, &req), EXIT_SUCCESS);

    ca_index idx;
    cr_assert_eq(pki_index_load(dir, &idx), EXIT_SUCCESS);
    cr_assert_eq(idx.n, 3u);
    cr_assert_str_eq(idx.e[0].subject, "/O=medwire/CN=dev-1");
    const index_entry *e = &idx.e[1];
    cr_assert_eq(e->status, 'V');
    cr_assert_str_eq(e->expiry, "491231235959Z");
    cr_assert_str_eq(e->revoked, "");
    cr_assert_str_eq(e->serial, "7FA1A2A3A4A5A6A7A8A9AAABACADAEAF");
    cr_assert_str_eq(e->file, "unknown");
    cr_assert_str_eq(e->subject, "/O=medwire/CN=dev-7");
    cr_assert_str_eq(idx.e[2].expiry, "20500101000000Z", "2050 is a GeneralizedTime");
    char cn[PKI_NAME_MAX_LEN + 1];
    pki_subject_cn(idx.e[2].subject, cn, sizeof(cn));
    cr_assert_str_eq(cn, "gw");
    pki_index_free(&idx);
}

Test(ca_index, crl_numbers_only_increase_and_are_kept_as_openssl_ca_keeps_them)
{
    uint64_t number = 0;
    cr_assert_eq(pki_take_crl_number(dir, &number), EXIT_SUCCESS);
    cr_assert_eq(number, 1u, "the first CRL of a CA");
    char *text = read_text("crlnumber");
    cr_assert_str_eq(text, "02\n");
    free(text);
    cr_assert_eq(pki_take_crl_number(dir, &number), EXIT_SUCCESS);
    cr_assert_eq(number, 2u);

    /* An even number of hex digits, as 'openssl ca' writes; it may have written the file. */
    write_text("crlnumber", "00FF\n");
    cr_assert_eq(pki_take_crl_number(dir, &number), EXIT_SUCCESS);
    cr_assert_eq(number, 255u);
    text = read_text("crlnumber");
    cr_assert_str_eq(text, "0100\n");
    free(text);

    write_text("crlnumber", "zz\n");
    int saved = stderr_begin();
    int rc = pki_take_crl_number(dir, &number);
    char *err = stderr_end(saved);
    cr_assert_eq(rc, EXIT_FAILURE, "a CRL number that is not hex was used");
    cr_assert(strstr(err, "crlnumber does not hold a CRL number") != NULL, "%s", err);
    free(err);
    text = read_text("crlnumber");
    cr_assert_str_eq(text, "zz\n", "a refused number must leave the file as it was");
    free(text);
}

Test(ca_index, the_ca_lock_keeps_out_another_process_until_it_is_released)
{
    int fd = -1;
    cr_assert_eq(pki_lock_ca(dir, &fd), EXIT_SUCCESS);
    cr_assert(fd >= 0);
    cr_assert(!another_process_can_lock(), "two processes held the CA lock at once");
    pki_unlock_ca(fd);
    cr_assert(another_process_can_lock(), "the lock outlived pki_unlock_ca");
}

Test(ca_index, the_revocation_field_gives_the_date_and_the_reason)
{
    utc_time when;
    int reason = 99;
    cr_assert(pki_parse_revoked_field("231114221320Z", &when, &reason));
    cr_assert_eq(reason, -1, "no reason given");
    utc_time want = at(2023, 11, 14, 22, 13, 20);
    cr_assert(same_time(&when, &want));
    cr_assert(pki_parse_revoked_field("20510101000000Z,superseded", &when, &reason));
    cr_assert_eq(reason, 4);
    want = at(2051, 1, 1, 0, 0, 0);
    cr_assert(same_time(&when, &want));
    cr_assert(!pki_parse_revoked_field("", &when, &reason));
    cr_assert(!pki_parse_revoked_field("231114221320Z,", &when, &reason));
    cr_assert(!pki_parse_revoked_field("231114221320Z;superseded", &when, &reason));
}

Test(ca_index, serials_are_even_hex_of_at_most_twenty_octets)
{
    unsigned char out[20];
    size_t n = 0;
    cr_assert(pki_parse_serial_hex("0aFf", out, &n));
    cr_assert(n == 2 && out[0] == 0x0a && out[1] == 0xff);
    cr_assert(pki_parse_serial_hex("00112233445566778899AABBCCDDEEFF00112233", out, &n));
    cr_assert_eq(n, 20u);
    cr_assert(!pki_parse_serial_hex("00112233445566778899AABBCCDDEEFF0011223344", out, &n));
    cr_assert(!pki_parse_serial_hex("ABC", out, &n));
    cr_assert(!pki_parse_serial_hex("", out, &n));
    cr_assert(!pki_parse_serial_hex("0x12", out, &n));
}

/* --- CRL reasons -------------------------------------------------------------------------- */

Test(crl_reason, names_give_the_codes_of_rfc_5280)
{
    /* RFC 5280 5.3.1 CRLReason, under the names 'openssl ca' writes into index.txt. */
    static const struct {
        const char *name;
        int code;
    } rfc[] = {
        {"unspecified", 0},        {"keyCompromise", 1},      {"CACompromise", 2},
        {"affiliationChanged", 3}, {"superseded", 4},         {"cessationOfOperation", 5},
        {"certificateHold", 6},    {"privilegeWithdrawn", 9}, {"AACompromise", 10},
    };
    for (size_t i = 0; i < sizeof(rfc) / sizeof(rfc[0]); i++)
        cr_expect_eq(pki_reason_code(rfc[i].name, false), rfc[i].code, "%s", rfc[i].name);
}

Test(crl_reason, revoke_offers_only_the_reasons_that_fit_a_device_or_gateway)
{
    static const char *const offered[] = {"keyCompromise", "affiliationChanged", "superseded",
                                          "cessationOfOperation"};
    static const char *const not_offered[] = {"unspecified", "CACompromise", "certificateHold",
                                              "privilegeWithdrawn", "AACompromise"};
    for (size_t i = 0; i < sizeof(offered) / sizeof(offered[0]); i++)
        cr_expect_eq(pki_reason_code(offered[i], true), pki_reason_code(offered[i], false), "%s",
                     offered[i]);
    for (size_t i = 0; i < sizeof(not_offered) / sizeof(not_offered[0]); i++) {
        cr_expect_eq(pki_reason_code(not_offered[i], true), -1, "%s", not_offered[i]);
        cr_expect_geq(pki_reason_code(not_offered[i], false), 0, "%s", not_offered[i]);
    }
}

Test(crl_reason, a_name_must_match_exactly)
{
    static const char *const bad[] = {"keycompromise",
                                      "KeyCompromise",
                                      "keyCompromise ",
                                      " keyCompromise",
                                      "key",
                                      "keyCompromiseX",
                                      "",
                                      "removeFromCRL",
                                      "1",
                                      "caCompromise"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        cr_expect_eq(pki_reason_code(bad[i], false), -1, "'%s'", bad[i]);
        cr_expect_eq(pki_reason_code(bad[i], true), -1, "'%s'", bad[i]);
    }
}
