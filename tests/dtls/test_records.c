/* SPDX-License-Identifier: Apache-2.0 */
/* test_records.c -- the DTLS layer's stateless parts on their own: what a datagram's records are
 * (dtls/records.c: the ClientHello filter, handshake flights, usable records, the cookie) and the
 * replay digest (dtls/digest.c), on datagrams built byte by byte here. */
#include <criterion/criterion.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/limits.h"
#include "dtls/digest.h"
#include "dtls/records.h"

#define HDR   MWI_DTLS_REC_HDR /* 13 */
#define HS    12               /* handshake message header */
#define FIXED (2 + 32)         /* client_version, random */

/* ---- building datagrams ------------------------------------------------------------------- */

static void put16(uint8_t *p, size_t v)
{
    p[0] = (uint8_t)(v >> 8);
    p[1] = (uint8_t)v;
}

static void put24(uint8_t *p, size_t v)
{
    p[0] = (uint8_t)(v >> 16);
    p[1] = (uint8_t)(v >> 8);
    p[2] = (uint8_t)v;
}

/* A record header: @p type, DTLS 1.2, @p epoch, sequence 0, @p body bytes to follow. */
static void record_header(uint8_t *d, uint8_t type, uint16_t epoch, size_t body)
{
    memset(d, 0, HDR);
    d[0] = type;
    d[1] = 0xFE;
    d[2] = 0xFD;
    put16(d + 3, epoch);
    put16(d + 11, body);
}

/* What goes into a ClientHello body after the random. */
typedef struct hello_spec {
    size_t session_id;  /* bytes of session id */
    size_t cookie;      /* bytes of cookie */
    size_t suites;      /* bytes of cipher suites (2 each) */
    size_t methods;     /* compression methods */
    const uint8_t *ext; /* the extensions block's content (without its 2-byte length), or NULL */
    size_t ext_len;
    int no_ext_block; /* 1: no extensions length at all */
} hello_spec;

static const hello_spec PLAIN = {.session_id = 0,
                                 .cookie = 0,
                                 .suites = 4,
                                 .methods = 1,
                                 .ext = NULL,
                                 .ext_len = 0,
                                 .no_ext_block = 1};

/* One datagram holding one record holding one whole ClientHello; returns its length. */
static size_t hello(uint8_t *d, size_t cap, const hello_spec *s)
{
    uint8_t *b = d + HDR + HS;
    size_t p = 0;
    b[p++] = 0xFE; /* client_version: DTLS 1.2 */
    b[p++] = 0xFD;
    memset(b + p, 0xA5, 32);
    p += 32;
    b[p++] = (uint8_t)s->session_id;
    memset(b + p, 0x11, s->session_id);
    p += s->session_id;
    b[p++] = (uint8_t)s->cookie;
    memset(b + p, 0x22, s->cookie);
    p += s->cookie;
    put16(b + p, s->suites);
    p += 2;
    for (size_t i = 0; i < s->suites; i += 2) {
        b[p + i] = 0xC0;
        b[p + i + 1] = (uint8_t)(0xAC + i);
    }
    p += s->suites;
    b[p++] = (uint8_t)s->methods;
    memset(b + p, 0, s->methods);
    p += s->methods;
    if (!s->no_ext_block) {
        put16(b + p, s->ext_len);
        p += 2;
        memcpy(b + p, s->ext, s->ext_len);
        p += s->ext_len;
    }
    cr_assert_leq(HDR + HS + p, cap, "test buffer too small");
    uint8_t *h = d + HDR;
    h[0] = 1; /* client_hello */
    put24(h + 1, p);
    put16(h + 4, 0); /* message_seq */
    put24(h + 6, 0); /* fragment_offset */
    put24(h + 9, p); /* fragment_length */
    record_header(d, MWI_DTLS_CT_HANDSHAKE, 0, HS + p);
    return HDR + HS + p;
}

/* An extension: type, length, data. */
static size_t ext(uint8_t *e, uint16_t type, const uint8_t *data, size_t len)
{
    put16(e, type);
    put16(e + 2, len);
    if (len > 0)
        memcpy(e + 4, data, len);
    return 4 + len;
}

static size_t hello_with_ext(uint8_t *d, size_t cap, const uint8_t *e, size_t len)
{
    hello_spec s = PLAIN;
    s.no_ext_block = 0;
    s.ext = e;
    s.ext_len = len;
    return hello(d, cap, &s);
}

/* d[0..len) copied to a heap block of exactly len bytes (the previous copy is freed), so that a
 * read past the datagram is caught by the sanitizer build, not only by a wrong answer. */
static const uint8_t *exact(const uint8_t *d, size_t len)
{
    static uint8_t *copy;
    free(copy);
    copy = malloc(len > 0 ? len : 1);
    cr_assert_not_null(copy);
    memcpy(copy, d, len);
    return copy;
}

/* Offsets in a PLAIN hello (no session id, no cookie). */
#define BODY       (HDR + HS)
#define AT_SESSION (BODY + FIXED)
#define AT_COOKIE  (AT_SESSION + 1)
#define AT_SUITES  (AT_COOKIE + 1)

/* ---- mwi_dtls_is_handshake_flight ---------------------------------------------------------- */

Test(flight, needs_a_whole_record_header)
{
    uint8_t d[HDR] = {0};
    d[0] = MWI_DTLS_CT_HANDSHAKE;
    cr_assert(mwi_dtls_is_handshake_flight(d, HDR), "13 bytes: a header");
    cr_assert_not(mwi_dtls_is_handshake_flight(d, HDR - 1), "12 bytes: no record");
    cr_assert_not(mwi_dtls_is_handshake_flight(d, 0));
}

Test(flight, handshake_and_change_cipher_spec_only)
{
    uint8_t d[HDR + 1] = {0};
    for (int type = 0; type < 256; type++) {
        d[0] = (uint8_t)type;
        bool want = type == MWI_DTLS_CT_HANDSHAKE || type == MWI_DTLS_CT_CCS;
        cr_assert_eq(mwi_dtls_is_handshake_flight(d, sizeof d), want, "content type %d", type);
    }
}

/* ---- mwi_dtls_is_client_hello -------------------------------------------------------------- */

Test(client_hello, versions_and_epoch)
{
    uint8_t d[256];
    size_t n = hello(d, sizeof d, &PLAIN);
    cr_assert(mwi_dtls_is_client_hello(d, n));
    d[2] = 0xFF; /* a DTLS 1.0 record may carry a 1.2 hello */
    cr_assert(mwi_dtls_is_client_hello(d, n), "DTLS 1.0 record");
    d[2] = 0xFC; /* DTLS 1.3's record version is FEFD too; FEFC is no version */
    cr_assert_not(mwi_dtls_is_client_hello(d, n), "version FEFC");
    d[1] = 0x03;
    d[2] = 0x03;
    cr_assert_not(mwi_dtls_is_client_hello(d, n), "a TLS 1.2 record");
    n = hello(d, sizeof d, &PLAIN);
    d[4] = 1;
    cr_assert_not(mwi_dtls_is_client_hello(d, n), "epoch 1: protected, not a hello");
    d[4] = 0;
    d[3] = 1;
    cr_assert_not(mwi_dtls_is_client_hello(d, n), "epoch 256");
    d[3] = 0;
    d[0] = MWI_DTLS_CT_CCS;
    cr_assert_not(mwi_dtls_is_client_hello(d, n), "not a handshake record");
    d[0] = MWI_DTLS_CT_HANDSHAKE;
    d[HDR] = 2; /* server_hello */
    cr_assert_not(mwi_dtls_is_client_hello(d, n), "another handshake message");
}

Test(client_hello, needs_the_handshake_header)
{
    uint8_t d[256];
    (void)hello(d, sizeof d, &PLAIN);
    cr_assert(mwi_dtls_is_client_hello(d, HDR + 12), "record and handshake headers");
    cr_assert_not(mwi_dtls_is_client_hello(d, HDR + 11));
}

/* ---- mwi_dtls_client_hello_well_formed ----------------------------------------------------- */

Test(well_formed, a_plain_hello_and_every_truncation_of_it)
{
    uint8_t d[256];
    size_t n = hello(d, sizeof d, &PLAIN);
    cr_assert_eq(n, BODY + FIXED + 1 + 1 + 2 + 4 + 1 + 1);
    cr_assert(mwi_dtls_client_hello_well_formed(d, n));
    cr_assert(mwi_dtls_client_hello_well_formed(exact(d, n), n));
    for (size_t len = 0; len < n; len++)
        cr_assert_not(mwi_dtls_client_hello_well_formed(exact(d, len), len), "cut to %zu bytes",
                      len);
    /* One byte more than the record says: not exactly one record. */
    d[n] = 0;
    cr_assert_not(mwi_dtls_client_hello_well_formed(d, n + 1), "a byte after the record");
}

Test(well_formed, lengths_must_nest_exactly)
{
    uint8_t d[256];
    size_t n = hello(d, sizeof d, &PLAIN);
    put16(d + 11, n - HDR - 1);
    cr_assert_not(mwi_dtls_client_hello_well_formed(d, n), "record length one short");
    n = hello(d, sizeof d, &PLAIN);
    put24(d + HDR + 1, n - BODY + 1);
    cr_assert_not(mwi_dtls_client_hello_well_formed(d, n), "message length one long");
    n = hello(d, sizeof d, &PLAIN);
    put24(d + HDR + 6, 1);
    cr_assert_not(mwi_dtls_client_hello_well_formed(d, n), "a fragment at offset 1");
    n = hello(d, sizeof d, &PLAIN);
    put24(d + HDR + 9, n - BODY - 1);
    cr_assert_not(mwi_dtls_client_hello_well_formed(d, n), "fragment shorter than the message");
}

/* Whether the hello built from @p s is well formed. */
static bool hello_ok(const hello_spec *s)
{
    uint8_t d[512];
    return mwi_dtls_client_hello_well_formed(d, hello(d, sizeof d, s));
}

Test(well_formed, body_fields_at_their_bounds)
{
    static const struct {
        const char *what;
        hello_spec s;
        bool ok;
    } cases[] = {
        {"a 32-byte session id",
         {.session_id = 32, .suites = 4, .methods = 1, .no_ext_block = 1},
         true},
        {"a 33-byte session id",
         {.session_id = 33, .suites = 4, .methods = 1, .no_ext_block = 1},
         false},
        {"a 255-byte cookie", {.cookie = 255, .suites = 4, .methods = 1, .no_ext_block = 1}, true},
        {"one suite", {.suites = 2, .methods = 1, .no_ext_block = 1}, true},
        {"no suite", {.suites = 0, .methods = 1, .no_ext_block = 1}, false},
        {"half a suite", {.suites = 3, .methods = 1, .no_ext_block = 1}, false},
        {"no compression method", {.suites = 4, .methods = 0, .no_ext_block = 1}, false},
        {"three compression methods", {.suites = 4, .methods = 3, .no_ext_block = 1}, true},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        cr_assert_eq(hello_ok(&cases[i].s), cases[i].ok, "%s", cases[i].what);
}

Test(well_formed, body_lengths_must_fit)
{
    uint8_t d[256];
    size_t n = hello(d, sizeof d, &PLAIN);
    d[AT_COOKIE] = (uint8_t)(n - AT_COOKIE); /* one byte more than follows */
    cr_assert_not(mwi_dtls_client_hello_well_formed(d, n), "cookie past the end");
    n = hello(d, sizeof d, &PLAIN);
    put16(d + AT_SUITES, 0x100);
    cr_assert_not(mwi_dtls_client_hello_well_formed(d, n), "suites past the end");
}

Test(well_formed, extensions_block)
{
    uint8_t d[256], e[64];
    size_t el = ext(e, 0x1234, (const uint8_t *)"ab", 2);
    size_t n = hello_with_ext(d, sizeof d, e, el);
    cr_assert(mwi_dtls_client_hello_well_formed(d, n), "one unknown extension");
    n = hello_with_ext(d, sizeof d, e, 0);
    cr_assert(mwi_dtls_client_hello_well_formed(d, n), "an empty extensions block");
    /* The block's length disagrees with the message. */
    n = hello_with_ext(d, sizeof d, e, el);
    put16(d + n - el - 2, el - 1);
    cr_assert_not(mwi_dtls_client_hello_well_formed(d, n), "block one short");
    /* An extension whose length runs past the block. */
    n = hello_with_ext(d, sizeof d, e, el);
    put16(d + n - el + 2, 3);
    cr_assert_not(mwi_dtls_client_hello_well_formed(d, n), "extension past the block");
    /* Three bytes: less than an extension header. */
    n = hello_with_ext(d, sizeof d, e, 3);
    cr_assert_not(mwi_dtls_client_hello_well_formed(d, n), "a partial extension header");
}

Test(well_formed, no_extension_twice)
{
    uint8_t d[256], e[64];
    size_t el = ext(e, 0x1235, NULL, 0);
    el += ext(e + el, 0x1234, NULL, 0);
    size_t n = hello_with_ext(d, sizeof d, e, el);
    cr_assert(mwi_dtls_client_hello_well_formed(d, n), "two different, neighbours");
    el += ext(e + el, 0x1235, NULL, 0);
    n = hello_with_ext(d, sizeof d, e, el);
    cr_assert_not(mwi_dtls_client_hello_well_formed(d, n), "the first again");
    el = ext(e, 0x000a, (const uint8_t *)"\0\2\0\x17", 4);
    el += ext(e + el, 0x000a, (const uint8_t *)"\0\2\0\x17", 4);
    n = hello_with_ext(d, sizeof d, e, el);
    cr_assert_not(mwi_dtls_client_hello_well_formed(d, n), "supported_groups twice in a row");
}

Test(well_formed, at_most_MWI_HELLO_MAX_EXTENSIONS)
{
    uint8_t d[1024], e[4 * (MWI_HELLO_MAX_EXTENSIONS + 1)];
    size_t el = 0;
    for (int i = 0; i < MWI_HELLO_MAX_EXTENSIONS; i++)
        el += ext(e + el, (uint16_t)(0x2000 + i), NULL, 0);
    size_t n = hello_with_ext(d, sizeof d, e, el);
    cr_assert(mwi_dtls_client_hello_well_formed(d, n), "%d extensions", MWI_HELLO_MAX_EXTENSIONS);
    el += ext(e + el, 0x3000, NULL, 0);
    n = hello_with_ext(d, sizeof d, e, el);
    cr_assert_not(mwi_dtls_client_hello_well_formed(d, n), "one more");
}

/* Each extension wolfSSL parses, sound and broken: (type, data, whether it is sound). */
Test(well_formed, parsed_extensions)
{
    static const struct {
        uint16_t type;
        uint8_t data[16];
        size_t len;
        bool ok;
    } cases[] = {
        /* server_name: list length, then (type, name length, name). */
        {0, {0, 5, 0, 0, 2, 'g', 'w'}, 7, true},
        {0, {0, 3, 0, 0, 0}, 5, false},           /* an empty name */
        {0, {0, 5, 0, 0, 3, 'g', 'w'}, 7, false}, /* name past the list */
        {0, {0, 6, 0, 0, 2, 'g', 'w'}, 7, false}, /* list past the extension */
        {0, {0, 0}, 2, false},                    /* an empty list */
        /* supported_groups: 2-byte length, 2 bytes a group, at least one. */
        {10, {0, 2, 0, 23}, 4, true},
        {10, {0, 3, 0, 23, 0}, 5, false},
        {10, {0, 0}, 2, false},
        {10, {0}, 1, false},
        /* ec_point_formats: 1-byte length, at least one. */
        {11, {1, 0}, 2, true},
        {11, {0}, 1, false},
        {11, {2, 0}, 2, false},
        /* signature_algorithms: as groups. */
        {13, {0, 4, 4, 3, 8, 4}, 6, true},
        {13, {0, 4, 4, 3, 8}, 5, false},
        {13, {0, 3, 4, 3, 8}, 5, false}, /* half an algorithm */
        /* ALPN: list length, then (1-byte length, name). */
        {16, {0, 3, 2, 'h', '2'}, 5, true},
        {16, {0, 3, 0, 'h', '2'}, 5, false}, /* an empty protocol name */
        {16, {0, 3, 3, 'h', '2'}, 5, false}, /* name past the list */
        /* renegotiation_info: 1-byte length, may be 0. */
        {0xff01, {0}, 1, true},
        {0xff01, {1, 0}, 2, true},
        {0xff01, {2, 0}, 2, false},
        {0xff01, {0}, 0, false},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        uint8_t d[256], e[32];
        size_t el = ext(e, cases[i].type, cases[i].data, cases[i].len);
        size_t n = hello_with_ext(d, sizeof d, e, el);
        cr_assert_eq(mwi_dtls_client_hello_well_formed(d, n), cases[i].ok,
                     "case %zu: extension %u of %zu bytes", i, (unsigned)cases[i].type,
                     cases[i].len);
    }
}

/* ---- mwi_dtls_hello_has_cookie ------------------------------------------------------------- */

Test(cookie, present_or_not)
{
    uint8_t d[512];
    hello_spec s = PLAIN;
    size_t n = hello(d, sizeof d, &s);
    cr_assert_not(mwi_dtls_hello_has_cookie(d, n), "no cookie");
    s.cookie = 1;
    n = hello(d, sizeof d, &s);
    cr_assert(mwi_dtls_hello_has_cookie(d, n), "one byte");
    /* Found after a session id of any length. */
    s.session_id = 32;
    s.cookie = 32;
    n = hello(d, sizeof d, &s);
    cr_assert(mwi_dtls_hello_has_cookie(d, n), "after a 32-byte session id");
    s.cookie = 0;
    n = hello(d, sizeof d, &s);
    cr_assert_not(mwi_dtls_hello_has_cookie(d, n), "a session id is no cookie");
}

Test(cookie, reads_nothing_past_the_datagram)
{
    uint8_t d[512];
    hello_spec s = PLAIN;
    s.cookie = 8;
    (void)hello(d, sizeof d, &s);
    /* The cookie's length byte is at AT_COOKIE: a datagram that ends before it has none. */
    cr_assert(mwi_dtls_hello_has_cookie(exact(d, AT_COOKIE + 1), AT_COOKIE + 1));
    cr_assert_not(mwi_dtls_hello_has_cookie(exact(d, AT_COOKIE), AT_COOKIE),
                  "ends before the cookie length");
    cr_assert_not(mwi_dtls_hello_has_cookie(exact(d, AT_SESSION), AT_SESSION),
                  "ends before the session id");
    cr_assert_not(mwi_dtls_hello_has_cookie(exact(d, 0), 0));
    /* A session id length that points past the datagram. */
    d[AT_SESSION] = 200;
    cr_assert_not(mwi_dtls_hello_has_cookie(exact(d, AT_COOKIE + 1), AT_COOKIE + 1));
}

/* ---- mwi_dtls_usable_records --------------------------------------------------------------- */

/* A server's check; a client passes NULL. */
static mwi_dtls_hello_check *const as_server = mwi_dtls_client_hello_well_formed;

/* Appends a record of @p body bytes (each 0x01, a ClientHello's message type, unless @p fill). */
static size_t add_record(uint8_t *d, size_t at, uint8_t type, uint16_t epoch, size_t body,
                         uint8_t fill)
{
    record_header(d + at, type, epoch, body);
    memset(d + at + HDR, fill, body);
    return at + HDR + body;
}

#define APP 23 /* application_data */

Test(usable, nothing_or_less_than_a_header)
{
    uint8_t d[HDR] = {0};
    cr_assert_eq(mwi_dtls_usable_records(d, 0, 0, NULL), 0);
    record_header(d, APP, 1, 0);
    cr_assert_eq(mwi_dtls_usable_records(d, HDR - 1, 0, NULL), 0);
    cr_assert_eq(mwi_dtls_usable_records(d, HDR, 0, NULL), HDR, "an empty record is whole");
}

Test(usable, a_record_that_runs_past_the_datagram)
{
    uint8_t d[128];
    size_t n = add_record(d, 0, APP, 1, 40, 0xEE);
    cr_assert_eq(mwi_dtls_usable_records(d, n, 0, NULL), n);
    cr_assert_eq(mwi_dtls_usable_records(exact(d, n - 1), n - 1, 0, NULL), 0, "one byte short");
    put16(d + 11, 0xFFFF);
    cr_assert_eq(mwi_dtls_usable_records(d, n, 0, NULL), 0, "a length of 65535");
}

Test(usable, several_records_in_one_datagram)
{
    uint8_t d[256];
    size_t a = add_record(d, 0, MWI_DTLS_CT_HANDSHAKE, 1, 30, 0xEE);
    size_t b = add_record(d, a, MWI_DTLS_CT_CCS, 0, 1, 0x01);
    size_t c = add_record(d, b, APP, 1, 50, 0xEE);
    cr_assert_eq(mwi_dtls_usable_records(d, c, 24, NULL), c, "all three");
    /* The last one cut: the first two stay, everything from the bad one on goes. */
    cr_assert_eq(mwi_dtls_usable_records(exact(d, c - 1), c - 1, 24, NULL), b);
    /* A few bytes after the last record, too few for a header: left out. */
    memset(d + c, 0, 12);
    cr_assert_eq(mwi_dtls_usable_records(exact(d, c + 12), c + 12, 24, NULL), c);
    /* The middle one broken: only the first is usable, though the third is sound. */
    put16(d + a + 11, 200);
    cr_assert_eq(mwi_dtls_usable_records(d, c, 24, NULL), a);
}

Test(usable, protected_records_need_min_sealed)
{
    uint8_t d[256];
    size_t a = add_record(d, 0, APP, 1, 24, 0xEE);
    cr_assert_eq(mwi_dtls_usable_records(d, a, 24, NULL), a, "exactly min_sealed");
    cr_assert_eq(mwi_dtls_usable_records(d, a, 25, NULL), 0, "one byte short of it");
    /* Epoch 0 is not protected: no minimum. */
    a = add_record(d, 0, MWI_DTLS_CT_HANDSHAKE, 0, 2, 0xEE);
    size_t b = add_record(d, a, APP, 0x0100, 10, 0xEE); /* epoch 256 is protected too */
    cr_assert_eq(mwi_dtls_usable_records(d, b, 24, NULL), a);
    cr_assert_eq(mwi_dtls_usable_records(d, b, 10, NULL), b);
}

Test(usable, a_server_takes_a_client_hello_only_whole_and_alone)
{
    uint8_t d[512];
    size_t n = hello(d, sizeof d, &PLAIN);
    cr_assert_eq(mwi_dtls_usable_records(d, n, 24, as_server), n, "whole and alone");
    /* Followed by another record: not alone, so not even the hello is usable. */
    size_t m = add_record(d, n, APP, 1, 30, 0xEE);
    cr_assert_eq(mwi_dtls_usable_records(d, m, 24, as_server), 0);
    cr_assert_eq(mwi_dtls_usable_records(d, m, 24, NULL), m, "a client does not filter");
    /* Malformed (a fragment), alone. */
    n = hello(d, sizeof d, &PLAIN);
    put24(d + HDR + 6, 1);
    cr_assert_eq(mwi_dtls_usable_records(d, n, 24, as_server), 0);
    cr_assert_eq(mwi_dtls_usable_records(d, n, 24, NULL), n);
}

Test(usable, a_server_drops_a_client_hello_after_other_records)
{
    uint8_t d[512];
    size_t a = add_record(d, 0, MWI_DTLS_CT_CCS, 0, 1, 0x01);
    size_t h = hello(d + a, sizeof d - a, &PLAIN);
    cr_assert_eq(mwi_dtls_usable_records(d, a + h, 24, as_server), a, "the hello is not first");
    /* A plaintext handshake record whose second message is a ClientHello (fragment). */
    uint8_t body[2 * HS + 1] = {0};
    body[0] = 2;  /* server_hello, empty */
    body[HS] = 1; /* client_hello: one byte of fragment */
    put24(body + HS + 9, 1);
    record_header(d, MWI_DTLS_CT_HANDSHAKE, 0, sizeof body);
    memcpy(d + HDR, body, sizeof body);
    cr_assert_eq(mwi_dtls_usable_records(d, HDR + sizeof body, 24, as_server), 0);
    /* Without the ClientHello it passes. */
    d[HDR + HS] = 11; /* certificate */
    cr_assert_eq(mwi_dtls_usable_records(d, HDR + sizeof body, 24, as_server), HDR + sizeof body);
}

Test(usable, short_handshake_messages_are_read_within_the_record)
{
    /* Plaintext handshake records of 0 to 12 bytes holding no ClientHello: too short for a
     * message header, so nothing after the first byte is read as one. */
    uint8_t d[HDR + HS];
    for (size_t body = 0; body <= HS; body++) {
        size_t n = add_record(d, 0, MWI_DTLS_CT_HANDSHAKE, 0, body, 0x02);
        cr_assert_eq(mwi_dtls_usable_records(exact(d, n), n, 24, as_server), n, "%zu bytes", body);
    }
    /* One byte, a ClientHello's type: dropped. */
    size_t n = add_record(d, 0, MWI_DTLS_CT_HANDSHAKE, 0, 1, 0x01);
    cr_assert_eq(mwi_dtls_usable_records(exact(d, n), n, 24, as_server), 0);
}

Test(usable, a_protected_handshake_record_is_not_read)
{
    /* Under epoch 1 the bytes are ciphertext: a 0x01 in them is no ClientHello. */
    uint8_t d[128];
    size_t n = add_record(d, 0, MWI_DTLS_CT_HANDSHAKE, 1, 40, 0x01);
    cr_assert_eq(mwi_dtls_usable_records(d, n, 24, as_server), n);
    n = add_record(d, 0, MWI_DTLS_CT_HANDSHAKE, 0, 40, 0x01);
    cr_assert_eq(mwi_dtls_usable_records(d, n, 24, as_server), 0, "the same in plaintext");
}

/* ---- mwi_digest64 ------------------------------------------------------------------------- */

Test(digest, first_eight_bytes_of_sha256_big_endian)
{
    uint64_t v = 0;
    /* SHA-256("abc") = ba7816bf 8f01cfea ... (FIPS 180-2, appendix B.1) */
    cr_assert_eq(mwi_digest64((const uint8_t *)"abc", 3, &v), MW_OK);
    cr_assert_eq(v, UINT64_C(0xba7816bf8f01cfea));
    /* SHA-256("") = e3b0c442 98fc1c14 ... */
    cr_assert_eq(mwi_digest64((const uint8_t *)"", 0, &v), MW_OK);
    cr_assert_eq(v, UINT64_C(0xe3b0c44298fc1c14));
    cr_assert_eq(mwi_digest64(NULL, 0, &v), MW_OK, "no bytes need no pointer");
    cr_assert_eq(v, UINT64_C(0xe3b0c44298fc1c14));
}

Test(digest, every_byte_counts)
{
    uint8_t msg[64];
    uint64_t base, v;
    memset(msg, 0x5C, sizeof msg);
    cr_assert_eq(mwi_digest64(msg, sizeof msg, &base), MW_OK);
    for (size_t i = 0; i < sizeof msg; i++) {
        msg[i] ^= 1;
        cr_assert_eq(mwi_digest64(msg, sizeof msg, &v), MW_OK);
        cr_assert_neq(v, base, "byte %zu flipped", i);
        msg[i] ^= 1;
    }
    cr_assert_eq(mwi_digest64(msg, sizeof msg - 1, &v), MW_OK);
    cr_assert_neq(v, base, "one byte fewer");
}

Test(digest, refuses_what_it_cannot_hash)
{
    uint64_t v = 0;
    cr_assert_eq(mwi_digest64(NULL, 1, &v), MW_EINTERNAL, "bytes without a pointer");
    cr_assert_eq(mwi_digest64((const uint8_t *)"abc", 3, NULL), MW_EINTERNAL, "nowhere to write");
#if SIZE_MAX > UINT32_MAX
    /* Longer than wolfCrypt's 32-bit length: refused before anything is read. */
    cr_assert_eq(mwi_digest64((const uint8_t *)"abc", (size_t)UINT32_MAX + 1, &v), MW_EINTERNAL);
#endif
}
