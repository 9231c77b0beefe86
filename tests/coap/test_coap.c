/* SPDX-License-Identifier: Apache-2.0 */
/* test_coap.c -- the CoAP codec holds RFC 7252 under hostile input; CONs are timed per 4.2. */
#define _DEFAULT_SOURCE /* MAP_ANONYMOUS for the guard pages */
#include <criterion/criterion.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include <coap3/coap.h>

#include "coap/coap.h"
#include "session/protocol.h"
#include "support/fake_clock.h"

/* ---- helpers ---- */

static const uint8_t TOKEN[8] = {0xA1, 0xB2, 0xC3, 0xD4, 0xE5, 0xF6, 0x07, 0x18};
static const uint8_t PAYLOAD[20] = "medwire batch bytes";

/* Datagrams are placed so that their last byte is the last readable one: a read past the end
 * hits a PROT_NONE page and kills the test instead of passing unnoticed. */
typedef struct guarded {
    uint8_t *base;
    size_t size; /* readable bytes before the guard page */
    size_t page;
} guarded;

static void guard_init(guarded *g, size_t max_len)
{
    long pg = sysconf(_SC_PAGESIZE);
    cr_assert(pg > 0);
    g->page = (size_t)pg;
    g->size = (max_len + g->page - 1) / g->page * g->page;
    if (g->size == 0)
        g->size = g->page;
    g->base =
        mmap(NULL, g->size + g->page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    cr_assert(g->base != MAP_FAILED);
    cr_assert_eq(mprotect(g->base + g->size, g->page, PROT_NONE), 0);
}

static const uint8_t *guard_place(guarded *g, const uint8_t *src, size_t len)
{
    uint8_t *dst = g->base + g->size - len;
    cr_assert(len <= g->size);
    if (len > 0)
        memcpy(dst, src, len);
    return dst;
}

static void guard_free(guarded *g)
{
    munmap(g->base, g->size + g->page);
}

static mwi_coap_parser *new_parser(void)
{
    mwi_coap_parser *p = NULL;
    cr_assert_eq(mwi_coap_parser_create(1500, &p), MW_OK);
    cr_assert_not_null(p);
    return p;
}

static void make_post(mwi_coap_msg *m)
{
    mwi_coap_msg_init(m);
    m->type = MWI_COAP_CON;
    m->code = MWI_COAP_POST;
    m->mid = 0x1234;
    m->token_len = 8;
    memcpy(m->token, TOKEN, 8);
    strcpy(m->uri_path, "v1/batch");
    m->content_format = MWI_COAP_CF_MEDWIRE_BATCH;
    m->payload = PAYLOAD;
    m->payload_len = sizeof PAYLOAD;
}

/* The POST of make_post(), written out by hand from RFC 7252 3 and 3.1. */
static const uint8_t POST_BYTES[] = {
    0x48, 0x02, 0x12, 0x34,                         /* Ver 1, CON, TKL 8 | 0.02 POST | MID */
    0xA1, 0xB2, 0xC3, 0xD4, 0xE5, 0xF6, 0x07, 0x18, /* token */
    0xB2, 'v',  '1',                                /* Uri-Path (delta 11, length 2) */
    0x05, 'b',  'a',  't',  'c',  'h',              /* Uri-Path (delta 0, length 5) */
    0x12, 0xFE, 0x4C,                               /* Content-Format 65100 (delta 1, 2 bytes) */
    0xFF,                                           /* payload marker */
    'm',  'e',  'd',  'w',  'i',  'r',  'e',  ' ',  'b', 'a',
    't',  'c',  'h',  ' ',  'b',  'y',  't',  'e',  's', '\0',
};

static mw_err parse_bytes(mwi_coap_parser *p, const uint8_t *bytes, size_t len, mwi_coap_msg *out)
{
    guarded g;
    mw_err e;
    guard_init(&g, len);
    e = mwi_coap_parse(p, guard_place(&g, bytes, len), len, out);
    /* out->payload pointed into the guarded copy, now unmapped: callers read only its length. */
    guard_free(&g);
    return e;
}

static mw_err fill_fail(void *ctx, uint8_t *out, size_t len)
{
    (void)ctx;
    (void)out;
    (void)len;
    return MW_EIO;
}

/* Counts heap calls while `counting` is set, by taking malloc, calloc and realloc over from
 * glibc (libcoap's calls resolve to these too). Sanitizers own the allocator, so their builds
 * skip the check. */
#if defined(__SANITIZE_ADDRESS__)
#define HEAP_COUNTING 0
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(memory_sanitizer)
#define HEAP_COUNTING 0
#endif
#endif
#if !defined(HEAP_COUNTING) && defined(__GLIBC__)
#define HEAP_COUNTING 1
#elif !defined(HEAP_COUNTING)
#define HEAP_COUNTING 0
#endif

#if HEAP_COUNTING
extern void *__libc_malloc(size_t n);
extern void *__libc_calloc(size_t n, size_t size);
extern void *__libc_realloc(void *p, size_t n);
static volatile int counting;
static volatile unsigned heap_calls;

void *malloc(size_t n)
{
    if (counting)
        heap_calls++;
    return __libc_malloc(n);
}

void *calloc(size_t n, size_t size)
{
    if (counting)
        heap_calls++;
    return __libc_calloc(n, size);
}

void *realloc(void *p, size_t n)
{
    if (counting)
        heap_calls++;
    return __libc_realloc(p, n);
}
#endif

/* ---- codec: bytes against the RFC ---- */

Test(coap_codec, encodes_con_post_exactly_as_rfc7252_lays_it_out)
{
    mwi_coap_msg m;
    uint8_t out[128];
    size_t n = 0;
    make_post(&m);
    cr_assert_eq(mwi_coap_encode(&m, out, sizeof out, &n), MW_OK);
    cr_assert_eq(n, sizeof POST_BYTES);
    cr_assert_arr_eq(out, POST_BYTES, n, "encoder output differs from the hand-written RFC bytes");
    cr_assert_eq(out[0], 0x48, "Ver 1, type CON, TKL 8");
    cr_assert_eq(out[1], 0x02, "POST");
}

Test(coap_codec, encodes_piggybacked_2_04_ack_exactly_as_rfc7252_lays_it_out)
{
    static const uint8_t ack_payload[3] = {0x0A, 0x01, 0x05};
    static const uint8_t expected[] = {
        0x68, 0x44, 0x12, 0x34,                         /* Ver 1, ACK, TKL 8 | 2.04 | MID */
        0xA1, 0xB2, 0xC3, 0xD4, 0xE5, 0xF6, 0x07, 0x18, /* token */
        0xC2, 0xFE, 0x4D,                               /* Content-Format 65101 (delta 12) */
        0xFF, 0x0A, 0x01, 0x05,
    };
    mwi_coap_msg req, resp;
    uint8_t out[64];
    size_t n = 0;
    make_post(&req);
    cr_assert_eq(mwi_coap_response_for(&req, MWI_COAP_CHANGED, &resp), MW_OK);
    resp.content_format = MWI_COAP_CF_MEDWIRE_ACK;
    resp.payload = ack_payload;
    resp.payload_len = sizeof ack_payload;
    cr_assert_eq(mwi_coap_encode(&resp, out, sizeof out, &n), MW_OK);
    cr_assert_eq(n, sizeof expected);
    cr_assert_arr_eq(out, expected, n);
}

Test(coap_codec, encodes_empty_ack_and_rst_as_four_header_bytes)
{
    static const uint8_t ack[4] = {0x60, 0x00, 0x12, 0x34};
    static const uint8_t rst[4] = {0x70, 0x00, 0x12, 0x34};
    mwi_coap_msg req, m;
    uint8_t out[16];
    size_t n = 0;
    make_post(&req);
    cr_assert_eq(mwi_coap_make_ack(&req, &m), MW_OK);
    cr_assert_eq(mwi_coap_encode(&m, out, sizeof out, &n), MW_OK);
    cr_assert_eq(n, 4);
    cr_assert_arr_eq(out, ack, 4);
    cr_assert_eq(mwi_coap_make_rst(&req, &m), MW_OK);
    cr_assert_eq(mwi_coap_encode(&m, out, sizeof out, &n), MW_OK);
    cr_assert_eq(n, 4);
    cr_assert_arr_eq(out, rst, 4);
}

/* ---- codec: round trips ---- */

Test(coap_codec, post_round_trips_path_content_format_token_and_payload)
{
    mwi_coap_parser *p = new_parser();
    mwi_coap_msg m, back;
    uint8_t wire[128];
    size_t n = 0;
    make_post(&m);
    cr_assert_eq(mwi_coap_encode(&m, wire, sizeof wire, &n), MW_OK);
    cr_assert_eq(mwi_coap_parse(p, wire, n, &back), MW_OK);
    cr_assert_eq(back.type, MWI_COAP_CON);
    cr_assert_eq(back.code, MWI_COAP_POST);
    cr_assert_eq(back.mid, 0x1234);
    cr_assert_eq(back.token_len, 8);
    cr_assert_arr_eq(back.token, TOKEN, 8);
    cr_assert_str_eq(back.uri_path, "v1/batch");
    cr_assert_eq(back.content_format, 65100);
    cr_assert_eq(back.accept, -1);
    cr_assert_eq(back.unknown_critical, 0);
    cr_assert_eq(back.flags, 0);
    cr_assert_eq(back.payload_len, sizeof PAYLOAD);
    cr_assert(back.payload >= wire && back.payload + back.payload_len == wire + n,
              "the payload points into the parsed buffer, not a copy");
    cr_assert_arr_eq(back.payload, PAYLOAD, sizeof PAYLOAD);
    mwi_coap_parser_destroy(&p);
    cr_assert_null(p);
}

Test(coap_codec, piggybacked_2_04_ack_round_trips_with_request_mid_and_token)
{
    mwi_coap_parser *p = new_parser();
    mwi_coap_msg req, resp, back;
    uint8_t wire[64];
    size_t n = 0;
    make_post(&req);
    cr_assert_eq(mwi_coap_response_for(&req, MWI_COAP_CHANGED, &resp), MW_OK);
    cr_assert_eq(mwi_coap_encode(&resp, wire, sizeof wire, &n), MW_OK);
    cr_assert_eq(mwi_coap_parse(p, wire, n, &back), MW_OK);
    cr_assert_eq(back.type, MWI_COAP_ACK);
    cr_assert_eq(back.code, MWI_COAP_CHANGED);
    cr_assert_eq(back.mid, req.mid);
    cr_assert_eq(back.token_len, 8);
    cr_assert_arr_eq(back.token, TOKEN, 8);
    cr_assert_str_eq(back.uri_path, "");
    cr_assert_eq(back.content_format, -1);
    cr_assert_null(back.payload);
    cr_assert_eq(back.payload_len, 0);
    mwi_coap_parser_destroy(&p);
}

Test(coap_codec, extended_delta_and_length_forms_round_trip)
{
    /* A 20-byte segment needs the 1-byte extended length (nibble 13), Size1 after Size2 a 1-byte
     * extended delta (60 - 28 = 32), Content-Format 65100 a 2-byte value. */
    mwi_coap_parser *p = new_parser();
    mwi_coap_msg m, back;
    uint8_t wire[256];
    size_t n = 0;
    mwi_coap_msg_init(&m);
    m.type = MWI_COAP_NON;
    m.code = MWI_COAP_POST;
    m.mid = 0xFFFF;
    strcpy(m.uri_path, "v1/abcdefghijklmnopqrst/x");
    m.content_format = 65100;
    m.accept = 65101;
    m.flags = MWI_COAP_F_BLOCK1 | MWI_COAP_F_BLOCK2 | MWI_COAP_F_SIZE1 | MWI_COAP_F_SIZE2;
    m.block1 = 0xABCDEF;
    m.block2 = 0;
    m.size1 = 0xFFFFFFFFu;
    m.size2 = 1024;
    m.payload = PAYLOAD;
    m.payload_len = 1;
    cr_assert_eq(mwi_coap_encode(&m, wire, sizeof wire, &n), MW_OK);
    cr_assert_eq(wire[7], 0x0D, "a 20-byte Uri-Path segment uses length nibble 13 ...");
    cr_assert_eq(wire[8], 20 - 13, "... and one extended length byte");
    cr_assert_eq(mwi_coap_parse(p, wire, n, &back), MW_OK);
    cr_assert_eq(back.type, MWI_COAP_NON);
    cr_assert_eq(back.mid, 0xFFFF);
    cr_assert_eq(back.token_len, 0);
    cr_assert_str_eq(back.uri_path, "v1/abcdefghijklmnopqrst/x");
    cr_assert_eq(back.content_format, 65100);
    cr_assert_eq(back.accept, 65101);
    cr_assert_eq(back.flags, m.flags);
    cr_assert_eq(back.block1, 0xABCDEF);
    cr_assert_eq(back.block2, 0);
    cr_assert_eq(back.size1, 0xFFFFFFFFu);
    cr_assert_eq(back.size2, 1024);
    cr_assert_eq(back.payload_len, 1);
    cr_assert_eq(back.unknown_critical, 0);
    mwi_coap_parser_destroy(&p);
}

Test(coap_codec, two_byte_extended_delta_and_length_parse_and_an_option_above_269_is_reported)
{
    /* Option 1000 (elective) with a 300-byte value: delta 988 and length 300 both need the
     * 2-byte extended form (nibble 14); then option 1001 (critical, delta 1). */
    uint8_t msg[4 + 2 + 3 + 5 + 300 + 1 + 2];
    size_t n = 0;
    mwi_coap_parser *p = new_parser();
    mwi_coap_msg back;
    msg[n++] = 0x40;
    msg[n++] = 0x02;
    msg[n++] = 0x00;
    msg[n++] = 0x07;
    msg[n++] = 0xB1; /* Uri-Path "a" (11) */
    msg[n++] = 'a';
    msg[n++] = 0x12; /* Content-Format (12), 2 bytes */
    msg[n++] = 0xFE;
    msg[n++] = 0x4C;
    msg[n++] = 0xEE;                        /* delta 14-form, length 14-form */
    msg[n++] = (uint8_t)((988 - 269) >> 8); /* 12 + 988 = option 1000 */
    msg[n++] = (uint8_t)((988 - 269) & 0xFF);
    msg[n++] = (uint8_t)((300 - 269) >> 8);
    msg[n++] = (uint8_t)((300 - 269) & 0xFF);
    memset(msg + n, 'z', 300);
    n += 300;
    msg[n++] = 0x10; /* option 1001, empty */
    msg[n++] = 0xFF;
    msg[n++] = 'P';
    cr_assert_eq(n, sizeof msg);
    cr_assert_eq(parse_bytes(p, msg, n, &back), MW_OK);
    cr_assert_str_eq(back.uri_path, "a");
    cr_assert_eq(back.content_format, 65100);
    cr_assert_eq(back.unknown_critical, 1001);
    cr_assert_eq(back.payload_len, 1);
    mwi_coap_parser_destroy(&p);
}

Test(coap_codec, block_size_and_accept_values_round_trip_in_shortest_form)
{
    mwi_coap_parser *p = new_parser();
    mwi_coap_msg m, back;
    uint8_t wire[64];
    size_t n = 0;
    mwi_coap_msg_init(&m);
    m.type = MWI_COAP_CON;
    m.code = MWI_COAP_GET;
    m.accept = 0;
    m.flags = MWI_COAP_F_BLOCK2;
    m.block2 = 0x16; /* NUM 1, M 0, SZX 6 */
    cr_assert_eq(mwi_coap_encode(&m, wire, sizeof wire, &n), MW_OK);
    /* Accept 0 is the empty string (3.2): delta 17 -> 0xD0 0x04; Block2 delta 6, 1 byte. */
    cr_assert_eq(n, 4 + 2 + 2);
    cr_assert_eq(wire[4], 0xD0);
    cr_assert_eq(wire[5], 17 - 13);
    cr_assert_eq(wire[6], 0x61);
    cr_assert_eq(wire[7], 0x16);
    cr_assert_eq(mwi_coap_parse(p, wire, n, &back), MW_OK);
    cr_assert_eq(back.accept, 0);
    cr_assert_eq(back.flags, MWI_COAP_F_BLOCK2);
    cr_assert_eq(back.block2, 0x16);
    mwi_coap_parser_destroy(&p);
}

Test(coap_codec, max_age_sits_between_content_format_and_accept_and_round_trips)
{
    /* A 5.03 that says when to ask again (RFC 7252 5.10.5, RFC 9148 5). */
    mwi_coap_parser *p = new_parser();
    mwi_coap_msg m, back;
    uint8_t wire[64];
    size_t n = 0;
    mwi_coap_msg_init(&m);
    m.type = MWI_COAP_ACK;
    m.code = MWI_COAP_SERVICE_UNAVAILABLE;
    m.content_format = 0;
    m.accept = 287;
    m.flags = MWI_COAP_F_MAX_AGE;
    m.max_age = 300;
    cr_assert_eq(mwi_coap_encode(&m, wire, sizeof wire, &n), MW_OK);
    /* Content-Format 0 (delta 12, empty), Max-Age (delta 2, 2 bytes), Accept (delta 3). */
    cr_assert_eq(n, 4 + 1 + 3 + 3);
    cr_assert_eq(wire[4], 0xC0);
    cr_assert_eq(wire[5], 0x22);
    cr_assert_eq(wire[6], 0x01);
    cr_assert_eq(wire[7], 0x2C);
    cr_assert_eq(wire[8], 0x32);
    cr_assert_eq(mwi_coap_parse(p, wire, n, &back), MW_OK);
    cr_assert_eq(back.flags, MWI_COAP_F_MAX_AGE);
    cr_assert_eq(back.max_age, 300);
    cr_assert_eq(back.accept, 287);
    /* Absent, the flag is clear (the receiver applies the default of 60 s). */
    m.flags = 0;
    cr_assert_eq(mwi_coap_encode(&m, wire, sizeof wire, &n), MW_OK);
    cr_assert_eq(mwi_coap_parse(p, wire, n, &back), MW_OK);
    cr_assert_eq(back.flags & MWI_COAP_F_MAX_AGE, 0);
    mwi_coap_parser_destroy(&p);
}

/* ---- codec: hostile input ---- */

/* @req MDCG-2019-16-VV IEC62443-CR3.5 */
Test(coap_codec, every_truncation_of_a_valid_message_is_rejected_or_parses_to_the_same_prefix)
{
    /* Accepted prefixes must be exactly the ones that end on an element boundary, and each
     * must re-encode to the very bytes it was parsed from: nothing invented, nothing lost. */
    static const size_t boundaries[] = {12, 15, 21, 24};
    mwi_coap_parser *p = new_parser();
    guarded g;
    size_t accepted = 0;
    guard_init(&g, sizeof POST_BYTES);
    for (size_t k = 0; k <= sizeof POST_BYTES; k++) {
        mwi_coap_msg m;
        const uint8_t *buf = guard_place(&g, POST_BYTES, k);
        mw_err e = mwi_coap_parse(p, buf, k, &m);
        bool boundary = k >= 26;
        for (size_t i = 0; i < sizeof boundaries / sizeof boundaries[0]; i++)
            boundary = boundary || k == boundaries[i];
        if (e != MW_OK) {
            cr_assert_eq(e, MW_ECOAP_MALFORMED, "prefix %zu", k);
            cr_assert(!boundary, "prefix %zu ends on a boundary but was rejected", k);
            continue;
        }
        uint8_t again[128];
        size_t n = 0;
        accepted++;
        cr_assert(boundary, "prefix %zu was accepted", k);
        cr_assert(m.payload == NULL || (m.payload >= buf && m.payload + m.payload_len == buf + k));
        cr_assert_eq(mwi_coap_encode(&m, again, sizeof again, &n), MW_OK);
        cr_assert_eq(n, k, "prefix %zu", k);
        cr_assert_arr_eq(again, POST_BYTES, k, "prefix %zu re-encodes differently", k);
    }
    cr_assert_eq(accepted, 4 + (sizeof POST_BYTES - 26 + 1));
    guard_free(&g);
    mwi_coap_parser_destroy(&p);
}

Test(coap_codec, accepts_exactly_the_truncations_libcoap_pdu_parse_accepts)
{
    /* A second opinion: libcoap's own full parser on the same prefixes. */
    mwi_coap_parser *p = new_parser();
    coap_pdu_t *pdu = coap_pdu_init(COAP_MESSAGE_CON, 0, 0, 1500);
    cr_assert_not_null(pdu);
    coap_set_log_level(LOG_EMERG);
    for (size_t k = 0; k <= sizeof POST_BYTES; k++) {
        mwi_coap_msg m;
        int ours = mwi_coap_parse(p, POST_BYTES, k, &m) == MW_OK;
        int theirs = k > 0 && coap_pdu_parse(COAP_PROTO_UDP, POST_BYTES, k, pdu) == 1;
        cr_assert_eq(ours, theirs, "prefix %zu: medwire %d, libcoap %d", k, ours, theirs);
    }
    coap_delete_pdu(pdu);
    mwi_coap_parser_destroy(&p);
}

Test(coap_codec, rejects_token_length_9_to_15)
{
    mwi_coap_parser *p = new_parser();
    uint8_t msg[4 + 15 + 2];
    memset(msg, 0x11, sizeof msg);
    msg[1] = 0x02;
    for (unsigned tkl = 9; tkl <= 15; tkl++) {
        mwi_coap_msg m;
        msg[0] = (uint8_t)(0x40 | tkl);
        /* Long enough to hold the claimed token, so only the reserved length can fail it. */
        cr_assert_eq(parse_bytes(p, msg, sizeof msg, &m), MW_ECOAP_MALFORMED, "TKL %u", tkl);
    }
    msg[0] = 0x48;
    cr_assert_eq(parse_bytes(p, msg, 12, &(mwi_coap_msg){0}), MW_OK, "TKL 8 is fine");
    mwi_coap_parser_destroy(&p);
}

Test(coap_codec, rejects_token_longer_than_the_datagram)
{
    static const uint8_t msg[] = {0x48, 0x02, 0x00, 0x01, 1, 2, 3, 4, 5, 6, 7};
    mwi_coap_parser *p = new_parser();
    mwi_coap_msg m;
    cr_assert_eq(parse_bytes(p, msg, sizeof msg, &m), MW_ECOAP_MALFORMED);
    mwi_coap_parser_destroy(&p);
}

Test(coap_codec, rejects_payload_marker_followed_by_no_payload)
{
    static const uint8_t bare[] = {0x40, 0x02, 0x00, 0x01, 0xFF};
    static const uint8_t after_option[] = {0x40, 0x45, 0x00, 0x01, 0xC1, 0x2A, 0xFF};
    mwi_coap_parser *p = new_parser();
    mwi_coap_msg m;
    cr_assert_eq(parse_bytes(p, bare, sizeof bare, &m), MW_ECOAP_MALFORMED);
    cr_assert_eq(parse_bytes(p, after_option, sizeof after_option, &m), MW_ECOAP_MALFORMED);
    mwi_coap_parser_destroy(&p);
}

Test(coap_codec, rejects_empty_message_with_token_option_or_payload)
{
    static const uint8_t with_token[] = {0x41, 0x00, 0x00, 0x01, 0x07};
    static const uint8_t with_option[] = {0x60, 0x00, 0x00, 0x01, 0xB1, 'a'};
    static const uint8_t with_payload[] = {0x60, 0x00, 0x00, 0x01, 0xFF, 'x'};
    static const uint8_t with_marker[] = {0x70, 0x00, 0x00, 0x01, 0xFF};
    mwi_coap_parser *p = new_parser();
    mwi_coap_msg m;
    cr_assert_eq(parse_bytes(p, with_token, sizeof with_token, &m), MW_ECOAP_MALFORMED);
    cr_assert_eq(parse_bytes(p, with_option, sizeof with_option, &m), MW_ECOAP_MALFORMED);
    cr_assert_eq(parse_bytes(p, with_payload, sizeof with_payload, &m), MW_ECOAP_MALFORMED);
    cr_assert_eq(parse_bytes(p, with_marker, sizeof with_marker, &m), MW_ECOAP_MALFORMED);
    mwi_coap_parser_destroy(&p);
}

Test(coap_codec, accepts_empty_con_ack_and_rst_but_not_empty_non)
{
    static const uint8_t ping[] = {0x40, 0x00, 0xAB, 0xCD};
    static const uint8_t ack[] = {0x60, 0x00, 0xAB, 0xCD};
    static const uint8_t rst[] = {0x70, 0x00, 0xAB, 0xCD};
    static const uint8_t non[] = {0x50, 0x00, 0xAB, 0xCD};
    mwi_coap_parser *p = new_parser();
    mwi_coap_msg m;
    cr_assert_eq(parse_bytes(p, ping, sizeof ping, &m), MW_OK);
    cr_assert_eq(m.type, MWI_COAP_CON);
    cr_assert_eq(m.mid, 0xABCD);
    cr_assert_eq(parse_bytes(p, ack, sizeof ack, &m), MW_OK);
    cr_assert_eq(m.type, MWI_COAP_ACK);
    cr_assert_eq(parse_bytes(p, rst, sizeof rst, &m), MW_OK);
    cr_assert_eq(m.type, MWI_COAP_RST);
    cr_assert_eq(m.code, MWI_COAP_EMPTY);
    cr_assert_eq(parse_bytes(p, non, sizeof non, &m), MW_ECOAP_MALFORMED,
                 "4.3: NON is never Empty");
    mwi_coap_parser_destroy(&p);
}

Test(coap_codec, rejects_rst_with_a_code_and_ack_carrying_a_request)
{
    static const uint8_t rst[] = {0x70, 0x44, 0x00, 0x01};
    static const uint8_t ack_post[] = {0x60, 0x02, 0x00, 0x01};
    mwi_coap_parser *p = new_parser();
    mwi_coap_msg m;
    cr_assert_eq(parse_bytes(p, rst, sizeof rst, &m), MW_ECOAP_MALFORMED);
    cr_assert_eq(parse_bytes(p, ack_post, sizeof ack_post, &m), MW_ECOAP_MALFORMED);
    mwi_coap_parser_destroy(&p);
}

Test(coap_codec, rejects_short_header_and_versions_other_than_1)
{
    static const uint8_t v0[] = {0x00, 0x02, 0x00, 0x01};
    static const uint8_t v2[] = {0x80, 0x02, 0x00, 0x01};
    static const uint8_t v3[] = {0xC0, 0x02, 0x00, 0x01};
    mwi_coap_parser *p = new_parser();
    mwi_coap_msg m;
    for (size_t k = 0; k < 4; k++)
        cr_assert_eq(parse_bytes(p, v0 + 4 - k, k, &m), MW_ECOAP_MALFORMED);
    cr_assert_eq(parse_bytes(p, v0, 4, &m), MW_ECOAP_MALFORMED);
    cr_assert_eq(parse_bytes(p, v2, 4, &m), MW_ECOAP_MALFORMED);
    cr_assert_eq(parse_bytes(p, v3, 4, &m), MW_ECOAP_MALFORMED);
    mwi_coap_parser_destroy(&p);
}

Test(coap_codec, rejects_reserved_nibble_15_that_is_not_the_payload_marker)
{
    static const uint8_t delta15[] = {0x40, 0x02, 0x00, 0x01, 0xF0};
    static const uint8_t delta15_len1[] = {0x40, 0x02, 0x00, 0x01, 0xF1, 0x00};
    static const uint8_t len15[] = {0x40, 0x02, 0x00, 0x01, 0xBF, 'a'};
    static const uint8_t ext_len15[] = {0x40, 0x02, 0x00, 0x01, 0xDF, 0x10, 'a'};
    mwi_coap_parser *p = new_parser();
    mwi_coap_msg m;
    cr_assert_eq(parse_bytes(p, delta15, sizeof delta15, &m), MW_ECOAP_MALFORMED);
    cr_assert_eq(parse_bytes(p, delta15_len1, sizeof delta15_len1, &m), MW_ECOAP_MALFORMED);
    cr_assert_eq(parse_bytes(p, len15, sizeof len15, &m), MW_ECOAP_MALFORMED);
    cr_assert_eq(parse_bytes(p, ext_len15, sizeof ext_len15, &m), MW_ECOAP_MALFORMED);
    mwi_coap_parser_destroy(&p);
}

Test(coap_codec, rejects_option_numbers_above_65535_without_wrapping)
{
    /* 0xFE 0xFF in the 2-byte form is delta 65548: libcoap's 16-bit delta wraps it to 12
     * (Content-Format); it must fail instead. */
    static const uint8_t wraps[] = {0x40, 0x02, 0x00, 0x01, 0xE1, 0xFE, 0xFF, 0x2A};
    /* Two legal deltas that add up past 65535. */
    static const uint8_t sums[] = {0x40, 0x02, 0x00, 0x01, 0xE0, 0xFE, 0x00, 0xE0, 0x00, 0x10};
    /* The largest option number, 65535, is fine (and, being odd, critical). */
    static const uint8_t max[] = {0x40, 0x02, 0x00, 0x01, 0xE0, 0xFE, 0xF2};
    mwi_coap_parser *p = new_parser();
    mwi_coap_msg m;
    cr_assert_eq(parse_bytes(p, wraps, sizeof wraps, &m), MW_ECOAP_MALFORMED);
    cr_assert_eq(parse_bytes(p, sums, sizeof sums, &m), MW_ECOAP_MALFORMED);
    cr_assert_eq(parse_bytes(p, max, sizeof max, &m), MW_OK);
    cr_assert_eq(m.unknown_critical, 65535);
    mwi_coap_parser_destroy(&p);
}

/* @req IEC62443-CR3.5 */
Test(coap_codec, reports_the_first_unknown_critical_option)
{
    /* Options 9 and 21 are unassigned and odd, so critical (5.4.1, 5.4.6). */
    static const uint8_t msg[] = {0x40, 0x02, 0x00, 0x01, 0x90, 0xC1, 0x00, 0xFF, 'x'};
    mwi_coap_parser *p = new_parser();
    mwi_coap_msg m;
    cr_assert_eq(parse_bytes(p, msg, sizeof msg, &m), MW_OK);
    cr_assert_eq(m.unknown_critical, 9);
    cr_assert_eq(m.payload_len, 1);
    mwi_coap_parser_destroy(&p);
}

Test(coap_codec, ignores_unknown_elective_options)
{
    /* Option 2048 is even: elective, ignored; Uri-Host, Uri-Port and Uri-Query are understood
     * and change nothing; Max-Age (14) is read, and changes nothing in a request. */
    static const uint8_t msg[] = {
        0x40, 0x02, 0x00, 0x01,                               /* CON POST */
        0x39, 'e',  'x',  'a',  'm', 'p', 'l', 'e', '.', 'o', /* Uri-Host (3) */
        0x42, 0x16, 0x34,                                     /* Uri-Port (7) 5684 */
        0x42, 'v',  '1',                                      /* Uri-Path (11) */
        0x31, 0x3C,                                           /* Max-Age (14) */
        0x13, 'a',  '=',  'b',                                /* Uri-Query (15) */
        0xE0, 0x06, 0xE4, /* option 2048: delta 2033 = 269 + 0x06E4, empty */
    };
    mwi_coap_parser *p = new_parser();
    mwi_coap_msg m;
    cr_assert_eq(parse_bytes(p, msg, sizeof msg, &m), MW_OK);
    cr_assert_eq(m.unknown_critical, 0);
    cr_assert_str_eq(m.uri_path, "v1");
    cr_assert_eq(m.content_format, -1);
    cr_assert_eq(m.flags, MWI_COAP_F_MAX_AGE);
    cr_assert_eq(m.max_age, 60);
    cr_assert_null(m.payload);
    mwi_coap_parser_destroy(&p);
}

Test(coap_codec, known_option_with_bad_length_or_repeated_is_treated_as_unrecognised)
{
    /* 5.4.3 and 5.4.5: Content-Format (elective) with 3 bytes is ignored, a second one too;
     * Accept (critical) with 3 bytes is reported as not understood. */
    static const uint8_t cf_long[] = {0x40, 0x02, 0x00, 0x01, 0xC3, 0x01, 0x02, 0x03};
    static const uint8_t cf_twice[] = {0x40, 0x02, 0x00, 0x01, 0xC1, 0x2A, 0x01, 0x2B};
    static const uint8_t accept_long[] = {0x40, 0x01, 0x00, 0x01, 0xD3, 0x04, 1, 2, 3};
    static const uint8_t accept_twice[] = {0x40, 0x01, 0x00, 0x01, 0xD1, 0x04, 0x2A, 0x01, 0x2B};
    mwi_coap_parser *p = new_parser();
    mwi_coap_msg m;
    cr_assert_eq(parse_bytes(p, cf_long, sizeof cf_long, &m), MW_OK);
    cr_assert_eq(m.content_format, -1);
    cr_assert_eq(m.unknown_critical, 0);
    cr_assert_eq(parse_bytes(p, cf_twice, sizeof cf_twice, &m), MW_OK);
    cr_assert_eq(m.content_format, 42, "the first occurrence counts");
    cr_assert_eq(m.unknown_critical, 0);
    cr_assert_eq(parse_bytes(p, accept_long, sizeof accept_long, &m), MW_OK);
    cr_assert_eq(m.accept, -1);
    cr_assert_eq(m.unknown_critical, MWI_COAP_OPT_ACCEPT);
    cr_assert_eq(parse_bytes(p, accept_twice, sizeof accept_twice, &m), MW_OK);
    cr_assert_eq(m.accept, 42);
    cr_assert_eq(m.unknown_critical, MWI_COAP_OPT_ACCEPT);
    mwi_coap_parser_destroy(&p);
}

Test(coap_codec, path_longer_than_max_is_flagged_for_a_4_04_not_rejected)
{
    uint8_t msg[4 + 2 + 64 + 2];
    size_t n = 0;
    mwi_coap_parser *p = new_parser();
    mwi_coap_msg m;
    msg[n++] = 0x40;
    msg[n++] = 0x02;
    msg[n++] = 0x00;
    msg[n++] = 0x01;
    msg[n++] = 0xBD; /* Uri-Path, length 13 + 51 = 64 */
    msg[n++] = 64 - 13;
    memset(msg + n, 'p', 64);
    n += 64;
    msg[n++] = 0xFF;
    msg[n++] = 'x';
    cr_assert_eq(parse_bytes(p, msg, n, &m), MW_OK);
    cr_assert(m.flags & MWI_COAP_F_PATH_UNUSABLE);
    cr_assert_str_eq(m.uri_path, "");
    cr_assert_eq(m.unknown_critical, 0);
    /* 63 bytes exactly still fit. */
    msg[5] = 63 - 13;
    cr_assert_eq(parse_bytes(p, msg, 4 + 2 + 63, &m), MW_OK);
    cr_assert_eq(m.flags & MWI_COAP_F_PATH_UNUSABLE, 0);
    cr_assert_eq(strlen(m.uri_path), 63);
    mwi_coap_parser_destroy(&p);
}

Test(coap_codec, path_segment_holding_slash_or_nul_is_flagged_not_joined)
{
    /* "v1%2Fbatch" and "v1" "batch\0x" must not look like the path "v1/batch". */
    static const uint8_t slash[] = {0x40, 0x02, 0x00, 0x01, 0xB8, 'v', '1',
                                    '/',  'b',  'a',  't',  'c',  'h'};
    static const uint8_t nul[] = {0x40, 0x02, 0x00, 0x01, 0xB2, 'v',  '1', 0x07,
                                  'b',  'a',  't',  'c',  'h',  0x00, 'x'};
    mwi_coap_parser *p = new_parser();
    mwi_coap_msg m;
    cr_assert_eq(parse_bytes(p, slash, sizeof slash, &m), MW_OK);
    cr_assert(m.flags & MWI_COAP_F_PATH_UNUSABLE);
    cr_assert_str_eq(m.uri_path, "");
    cr_assert_eq(parse_bytes(p, nul, sizeof nul, &m), MW_OK);
    cr_assert(m.flags & MWI_COAP_F_PATH_UNUSABLE);
    cr_assert_str_eq(m.uri_path, "");
    mwi_coap_parser_destroy(&p);
}

Test(coap_codec, parser_refuses_datagrams_above_its_max_size)
{
    mwi_coap_parser *p = NULL;
    mwi_coap_msg m;
    cr_assert_eq(mwi_coap_parser_create(24, &p), MW_OK);
    cr_assert_eq(mwi_coap_parse(p, POST_BYTES, 24, &m), MW_OK);
    cr_assert_eq(mwi_coap_parse(p, POST_BYTES, 25, &m), MW_ETOOBIG);
    mwi_coap_parser_destroy(&p);
    mwi_coap_parser_destroy(&p);
    cr_assert_eq(mwi_coap_parser_create(3, &p), MW_EINVAL);
    cr_assert_null(p);
}

/* @req MDR-17.2 MDCG-2019-16-VV IEC62443-CR3.5 */
Test(coap_codec, random_mutations_never_read_outside_the_datagram)
{
    /* A small deterministic fuzz until the libFuzzer target exists: mutate valid messages with
     * the bytes the format treats specially and check every accepted result's invariants. */
    static const uint8_t special[] = {0x00, 0x0C, 0x0D, 0x0E, 0x0F, 0xD0, 0xDD, 0xE0,
                                      0xEE, 0xF0, 0xFE, 0xFF, 0x48, 0x60, 0x70, 0xB0};
    uint8_t seed[400];
    size_t seed_len = sizeof POST_BYTES;
    mwi_coap_parser *p = new_parser();
    mwt_rng rng = {42};
    guarded g;
    unsigned ok = 0;
    memcpy(seed, POST_BYTES, sizeof POST_BYTES);
    guard_init(&g, sizeof seed);
    for (unsigned iter = 0; iter < 200000; iter++) {
        uint8_t buf[sizeof seed];
        size_t len = seed_len;
        unsigned muts = 1 + (unsigned)(mwt_rng_next(&rng) % 4);
        mwi_coap_msg m;
        memcpy(buf, seed, seed_len);
        for (unsigned k = 0; k < muts; k++) {
            uint64_t r = mwt_rng_next(&rng);
            size_t at = len > 0 ? (size_t)(r >> 8) % len : 0;
            switch (r % 5) {
            case 0:
                buf[at] ^= (uint8_t)(1u << ((r >> 40) % 8));
                break;
            case 1:
                buf[at] = special[(r >> 40) % sizeof special];
                break;
            case 2:
                len = at;
                break;
            case 3:
                if (len < sizeof buf) {
                    memmove(buf + at + 1, buf + at, len - at);
                    buf[at] = special[(r >> 40) % sizeof special];
                    len++;
                }
                break;
            default:
                buf[at] = (uint8_t)(r >> 48);
                break;
            }
        }
        const uint8_t *in = guard_place(&g, buf, len);
        mw_err e = mwi_coap_parse(p, in, len, &m);
        if (e != MW_OK) {
            cr_assert_eq(e, MW_ECOAP_MALFORMED);
            continue;
        }
        ok++;
        cr_assert(m.token_len <= MWI_COAP_MAX_TOKEN);
        cr_assert(strlen(m.uri_path) <= MWI_COAP_MAX_PATH);
        cr_assert(m.unknown_critical == 0 || (m.unknown_critical & 1u));
        cr_assert((m.payload == NULL) == (m.payload_len == 0));
        if (m.payload != NULL)
            cr_assert(m.payload > in && m.payload + m.payload_len == in + len);
        if (m.code == MWI_COAP_EMPTY)
            cr_assert_eq(len, 4);
        cr_assert(m.content_format >= -1 && m.content_format <= 65535);
        cr_assert(m.accept >= -1 && m.accept <= 65535);
    }
    cr_assert(ok > 1000, "the mutations still reach the accepting paths (%u accepted)", ok);
    guard_free(&g);
    mwi_coap_parser_destroy(&p);
}

Test(coap_codec, parsing_and_encoding_allocate_nothing)
{
#if HEAP_COUNTING
    /* The device has no heap after open: messages of growing and shrinking sizes (which make
     * libcoap's coap_pdu_parse() realloc) must parse and encode without a single heap call. */
    mwi_coap_parser *p = new_parser();
    uint8_t big[1200], wire[1300];
    mwi_coap_msg m;
    size_t n;
    make_post(&m);
    memset(big, 'b', sizeof big);
    counting = 1;
    for (int round = 0; round < 3; round++) {
        for (size_t k = 0; k <= sizeof POST_BYTES; k++) {
            mw_err e = mwi_coap_parse(p, POST_BYTES, k, &m);
            if (e != MW_OK && e != MW_ECOAP_MALFORMED)
                heap_calls += 1000;
        }
        make_post(&m);
        m.payload = big;
        m.payload_len = round == 1 ? 3 : sizeof big;
        if (mwi_coap_encode(&m, wire, sizeof wire, &n) != MW_OK ||
            mwi_coap_parse(p, wire, n, &m) != MW_OK)
            heap_calls += 1000;
    }
    counting = 0;
    cr_assert_eq(heap_calls, 0, "%u heap calls", heap_calls);
    mwi_coap_parser_destroy(&p);
#else
    cr_skip_test("the allocator belongs to a sanitizer in this build");
#endif
}

/* ---- codec: encoder limits ---- */

Test(coap_codec, encode_into_too_small_buffer_returns_enospc_and_never_writes_past_cap)
{
    mwi_coap_msg m;
    uint8_t out[sizeof POST_BYTES + 32];
    size_t n = 99;
    make_post(&m);
    for (size_t cap = 0; cap < sizeof POST_BYTES; cap++) {
        memset(out, 0xA5, sizeof out);
        cr_assert_eq(mwi_coap_encode(&m, out, cap, &n), MW_ENOSPC, "cap %zu", cap);
        cr_assert_eq(n, 0);
        for (size_t i = cap; i < sizeof out; i++)
            cr_assert_eq(out[i], 0xA5, "cap %zu: byte %zu written", cap, i);
    }
    memset(out, 0xA5, sizeof out);
    cr_assert_eq(mwi_coap_encode(&m, out, sizeof POST_BYTES, &n), MW_OK);
    cr_assert_eq(n, sizeof POST_BYTES);
    for (size_t i = sizeof POST_BYTES; i < sizeof out; i++)
        cr_assert_eq(out[i], 0xA5);
}

Test(coap_codec, encode_rejects_what_the_rfc_or_the_struct_cannot_carry)
{
    mwi_coap_msg m;
    uint8_t out[256];
    size_t n;
    static const char *const bad_paths[] = {"/v1", "v1/", "v1//batch", "/"};
    for (size_t i = 0; i < sizeof bad_paths / sizeof bad_paths[0]; i++) {
        make_post(&m);
        strcpy(m.uri_path, bad_paths[i]);
        cr_assert_eq(mwi_coap_encode(&m, out, sizeof out, &n), MW_EINVAL, "%s", bad_paths[i]);
    }
    make_post(&m);
    memset(m.uri_path, 'a', sizeof m.uri_path); /* not NUL-terminated */
    cr_assert_eq(mwi_coap_encode(&m, out, sizeof out, &n), MW_EINVAL);
    make_post(&m);
    m.token_len = 9;
    cr_assert_eq(mwi_coap_encode(&m, out, sizeof out, &n), MW_EINVAL);
    make_post(&m);
    m.type = 4;
    cr_assert_eq(mwi_coap_encode(&m, out, sizeof out, &n), MW_EINVAL);
    make_post(&m);
    m.content_format = 65536;
    cr_assert_eq(mwi_coap_encode(&m, out, sizeof out, &n), MW_EINVAL);
    make_post(&m);
    m.accept = -2;
    cr_assert_eq(mwi_coap_encode(&m, out, sizeof out, &n), MW_EINVAL);
    make_post(&m);
    m.payload = NULL;
    cr_assert_eq(mwi_coap_encode(&m, out, sizeof out, &n), MW_EINVAL);
    make_post(&m);
    m.flags = MWI_COAP_F_BLOCK1;
    m.block1 = MWI_COAP_BLOCK_MAX + 1;
    cr_assert_eq(mwi_coap_encode(&m, out, sizeof out, &n), MW_EINVAL);
    /* 4.1: an Empty message carries nothing after the Message ID. */
    make_post(&m);
    m.code = MWI_COAP_EMPTY;
    cr_assert_eq(mwi_coap_encode(&m, out, sizeof out, &n), MW_EINVAL);
    cr_assert_eq(mwi_coap_encode(NULL, out, sizeof out, &n), MW_EINVAL);
    make_post(&m);
    cr_assert_eq(mwi_coap_encode(&m, NULL, sizeof out, &n), MW_EINVAL);
    cr_assert_eq(mwi_coap_encode(&m, out, sizeof out, NULL), MW_EINVAL);
}

Test(coap_codec, reply_helpers_echo_the_mid_and_refuse_what_is_never_answered)
{
    mwi_coap_msg req, m, ack;
    make_post(&req);
    cr_assert_eq(mwi_coap_response_for(&req, MWI_COAP_POST, &m), MW_EINVAL, "not a response code");
    req.type = MWI_COAP_NON;
    cr_assert_eq(mwi_coap_response_for(&req, MWI_COAP_CHANGED, &m), MW_EINVAL, "NON: no piggyback");
    cr_assert_eq(mwi_coap_make_ack(&req, &m), MW_EINVAL, "a NON is not acknowledged");
    cr_assert_eq(mwi_coap_make_rst(&req, &m), MW_OK);
    cr_assert_eq(m.mid, req.mid);
    cr_assert_eq(mwi_coap_make_ack(&(mwi_coap_msg){.type = MWI_COAP_CON, .mid = 7}, &ack), MW_OK);
    cr_assert_eq(ack.mid, 7);
    cr_assert_eq(ack.token_len, 0);
    cr_assert_eq(mwi_coap_make_rst(&ack, &m), MW_EINVAL, "an ACK is never answered");
    ack.type = MWI_COAP_RST;
    cr_assert_eq(mwi_coap_make_rst(&ack, &m), MW_EINVAL, "an RST is never answered");
}

/* The one way both ends answer with an empty message: the bytes of make_ack / make_rst. */
Test(coap_codec, encode_empty_answers_with_four_header_bytes_and_refuses_what_is_never_answered)
{
    static const uint8_t ack[4] = {0x60, 0x00, 0x12, 0x34};
    static const uint8_t rst[4] = {0x70, 0x00, 0x12, 0x34};
    mwi_coap_msg req;
    uint8_t out[MWI_COAP_EMPTY_SIZE];
    size_t n = 99;
    make_post(&req);
    cr_assert_eq(mwi_coap_encode_empty(&req, MWI_COAP_ACK, out, sizeof out, &n), MW_OK);
    cr_assert_eq(n, 4u);
    cr_assert_arr_eq(out, ack, 4);
    cr_assert_eq(mwi_coap_encode_empty(&req, MWI_COAP_RST, out, sizeof out, &n), MW_OK);
    cr_assert_eq(n, 4u);
    cr_assert_arr_eq(out, rst, 4);
    cr_assert_eq(mwi_coap_encode_empty(&req, MWI_COAP_RST, out, 3, &n), MW_ENOSPC);
    cr_assert_eq(n, 0u);
    cr_assert_eq(mwi_coap_encode_empty(&req, MWI_COAP_CON, out, sizeof out, &n), MW_EINVAL);
    cr_assert_eq(mwi_coap_encode_empty(&req, MWI_COAP_NON, out, sizeof out, &n), MW_EINVAL);
    cr_assert_eq(mwi_coap_encode_empty(NULL, MWI_COAP_RST, out, sizeof out, &n), MW_EINVAL);
    cr_assert_eq(mwi_coap_encode_empty(&req, MWI_COAP_RST, out, sizeof out, NULL), MW_EINVAL);
    req.type = MWI_COAP_NON;
    cr_assert_eq(mwi_coap_encode_empty(&req, MWI_COAP_ACK, out, sizeof out, &n), MW_EINVAL,
                 "a NON is not acknowledged");
    cr_assert_eq(mwi_coap_encode_empty(&req, MWI_COAP_RST, out, sizeof out, &n), MW_OK);
    cr_assert_arr_eq(out, rst, 4);
    req.type = MWI_COAP_ACK;
    cr_assert_eq(mwi_coap_encode_empty(&req, MWI_COAP_RST, out, sizeof out, &n), MW_EINVAL,
                 "an ACK is never answered");
}

/* A CON that does not parse is still rejected by RST with its Message ID (RFC 7252 4.2): the
 * header alone is read, and the answer is the four bytes a gateway used to write by hand. */
Test(coap_codec, a_con_that_does_not_parse_is_answered_by_rst_from_its_header)
{
    static const uint8_t bad[] = {0x49, 0x02, 0xBE, 0xEF, 1, 2, 3, 4, 5, 6, 7, 8, 9}; /* TKL 9 */
    mwi_coap_parser *p = new_parser();
    mwi_coap_msg m;
    uint8_t out[MWI_COAP_EMPTY_SIZE];
    size_t n = 0;
    cr_assert_eq(parse_bytes(p, bad, sizeof bad, &m), MW_ECOAP_MALFORMED);
    cr_assert_eq(mwi_coap_read_header(bad, sizeof bad, &m), MW_OK);
    cr_assert_eq(m.type, MWI_COAP_CON);
    cr_assert_eq(m.code, MWI_COAP_POST);
    cr_assert_eq(m.mid, 0xBEEF);
    cr_assert_eq(m.token_len, 0);
    cr_assert_eq(m.content_format, -1);
    cr_assert_eq(mwi_coap_encode_empty(&m, MWI_COAP_RST, out, sizeof out, &n), MW_OK);
    const uint8_t by_hand[4] = {(uint8_t)(0x40 | (MWI_COAP_RST << 4)), 0, bad[2], bad[3]};
    cr_assert_eq(n, 4u);
    cr_assert_arr_eq(out, by_hand, 4);
    static const uint8_t v2[4] = {0x80, 0x02, 0, 1};
    cr_assert_eq(mwi_coap_read_header(v2, sizeof v2, &m), MW_ECOAP_MALFORMED, "version 2");
    cr_assert_eq(mwi_coap_read_header(bad, 3, &m), MW_ECOAP_MALFORMED, "3 bytes");
    cr_assert_eq(mwi_coap_read_header(NULL, 4, &m), MW_EINVAL);
    cr_assert_eq(mwi_coap_read_header(bad, 4, NULL), MW_EINVAL);
    mwi_coap_parser_destroy(&p);
}

/* ---- exchange ---- */

static mwi_coap_msg response(uint8_t type, uint8_t code, uint16_t mid, const uint8_t *token,
                             uint8_t token_len)
{
    mwi_coap_msg m;
    mwi_coap_msg_init(&m);
    m.type = type;
    m.code = code;
    m.mid = mid;
    m.token_len = token_len;
    if (token_len > 0)
        memcpy(m.token, token, token_len);
    return m;
}

static void start(mwi_coap_request *r, const mwi_coap_params *p, mwt_rng *rng, uint64_t now)
{
    cr_assert_eq(mwi_coap_request_start(r, p, mwt_rng_table(rng), 0x4242, TOKEN, 8, now), MW_OK);
    cr_assert(r->active);
}

Test(coap_exchange, first_timeout_is_uniform_between_ack_timeout_and_random_factor_times_it)
{
    mwi_coap_params p;
    mwt_rng rng = {7};
    uint64_t lo = UINT64_MAX, hi = 0;
    mwi_coap_params_default(&p);
    for (int i = 0; i < 2000; i++) {
        mwi_coap_request r;
        start(&r, &p, &rng, 1000);
        cr_assert(r.timeout_ms >= 2000 && r.timeout_ms <= 3000, "%llu",
                  (unsigned long long)r.timeout_ms);
        cr_assert_eq(mwi_coap_request_deadline(&r), 1000 + r.timeout_ms);
        lo = r.timeout_ms < lo ? r.timeout_ms : lo;
        hi = r.timeout_ms > hi ? r.timeout_ms : hi;
    }
    cr_assert(lo < 2050 && hi > 2950, "spread over the whole range: [%llu, %llu]",
              (unsigned long long)lo, (unsigned long long)hi);
    /* A factor of exactly 1.0 leaves no randomness: the timeout is ACK_TIMEOUT. */
    p.ack_random_factor_milli = 1000;
    mwi_coap_request r;
    start(&r, &p, &rng, 0);
    cr_assert_eq(r.timeout_ms, 2000);
}

Test(coap_exchange, retransmits_four_times_with_doubling_timeouts_then_gives_up)
{
    mwi_coap_params p;
    mwi_coap_request r;
    mwt_rng rng = {99};
    uint64_t now = 5000, t0;
    mwi_coap_params_default(&p);
    start(&r, &p, &rng, now);
    t0 = r.timeout_ms;
    for (unsigned i = 1; i <= 4; i++) {
        uint64_t due = mwi_coap_request_deadline(&r);
        cr_assert_eq(due, now + (t0 << (i - 1)), "timeout %u is %llu", i,
                     (unsigned long long)(due - now));
        cr_assert_eq(mwi_coap_request_timer(&r, &p, due - 1), MW_EAGAIN);
        now = due;
        cr_assert_eq(mwi_coap_request_timer(&r, &p, now), MW_OK, "retransmission %u", i);
        cr_assert_eq(r.retransmits, i);
        cr_assert_eq(r.timeout_ms, t0 << i);
    }
    cr_assert_eq(mwi_coap_request_timer(&r, &p, mwi_coap_request_deadline(&r) - 1), MW_EAGAIN);
    now = mwi_coap_request_deadline(&r);
    cr_assert_eq(mwi_coap_request_timer(&r, &p, now), MW_ECOAP_GIVEUP);
    cr_assert(!r.active);
    cr_assert_eq(mwi_coap_request_deadline(&r), UINT64_MAX);
    cr_assert_eq(mwi_coap_request_timer(&r, &p, now + 100000), MW_EAGAIN, "nothing more to do");
    /* 4.8.2: giving up takes 31 initial timeouts, at most MAX_TRANSMIT_WAIT. */
    cr_assert_eq(now - 5000, 31 * t0);
    cr_assert(now - 5000 <= mwi_coap_max_transmit_wait_ms(&p));
}

Test(coap_exchange, a_late_timer_call_restarts_the_timeout_from_the_retransmission)
{
    mwi_coap_params p;
    mwi_coap_request r;
    mwt_rng rng = {3};
    mwi_coap_params_default(&p);
    start(&r, &p, &rng, 0);
    uint64_t late = mwi_coap_request_deadline(&r) + 10000;
    cr_assert_eq(mwi_coap_request_timer(&r, &p, late), MW_OK);
    cr_assert_eq(mwi_coap_request_deadline(&r), late + r.timeout_ms);
    cr_assert_eq(mwi_coap_request_timer(&r, &p, late), MW_EAGAIN, "one retransmission per expiry");
}

Test(coap_exchange, timer_before_the_deadline_returns_eagain)
{
    mwi_coap_params p;
    mwi_coap_request r;
    mwt_rng rng = {5};
    mwi_coap_params_default(&p);
    start(&r, &p, &rng, 100);
    for (uint64_t t = 0; t < mwi_coap_request_deadline(&r); t += 97)
        cr_assert_eq(mwi_coap_request_timer(&r, &p, t), MW_EAGAIN);
    cr_assert_eq(r.retransmits, 0);
    cr_assert(r.active);
}

Test(coap_exchange, piggybacked_response_with_the_mid_and_token_completes_the_request)
{
    mwi_coap_params p;
    mwi_coap_request r;
    mwt_rng rng = {11};
    mwi_coap_params_default(&p);
    start(&r, &p, &rng, 0);
    mwi_coap_msg m = response(MWI_COAP_ACK, MWI_COAP_CHANGED, 0x4242, TOKEN, 8);
    cr_assert_eq(mwi_coap_request_match(&r, &m), MW_OK);
    cr_assert(!r.active);
    cr_assert_eq(mwi_coap_request_deadline(&r), UINT64_MAX);
    cr_assert_eq(mwi_coap_request_match(&r, &m), MW_EAGAIN, "a duplicate finds nothing waiting");
}

Test(coap_exchange, response_with_the_wrong_token_is_not_matched)
{
    static const uint8_t other[8] = {0xA1, 0xB2, 0xC3, 0xD4, 0xE5, 0xF6, 0x07, 0x19};
    mwi_coap_params p;
    mwi_coap_request r;
    mwt_rng rng = {13};
    mwi_coap_params_default(&p);
    start(&r, &p, &rng, 0);
    mwi_coap_msg ack = response(MWI_COAP_ACK, MWI_COAP_CHANGED, 0x4242, other, 8);
    mwi_coap_msg shorter = response(MWI_COAP_ACK, MWI_COAP_CHANGED, 0x4242, TOKEN, 7);
    mwi_coap_msg con = response(MWI_COAP_CON, MWI_COAP_CHANGED, 0x9999, other, 8);
    mwi_coap_msg non = response(MWI_COAP_NON, MWI_COAP_CHANGED, 0x9999, NULL, 0);
    mwi_coap_msg wrong_mid = response(MWI_COAP_ACK, MWI_COAP_CHANGED, 0x4243, TOKEN, 8);
    mwi_coap_msg request = response(MWI_COAP_CON, MWI_COAP_POST, 0x9999, TOKEN, 8);
    cr_assert_eq(mwi_coap_request_match(&r, &ack), MW_EAGAIN);
    cr_assert_eq(mwi_coap_request_match(&r, &shorter), MW_EAGAIN);
    cr_assert_eq(mwi_coap_request_match(&r, &con), MW_EAGAIN);
    cr_assert_eq(mwi_coap_request_match(&r, &non), MW_EAGAIN);
    cr_assert_eq(mwi_coap_request_match(&r, &wrong_mid), MW_EAGAIN);
    cr_assert_eq(mwi_coap_request_match(&r, &request), MW_EAGAIN, "a request is not a response");
    mwi_coap_msg reserved = response(MWI_COAP_ACK, MWI_COAP_CODE(3, 1), 0x4242, TOKEN, 8);
    cr_assert_eq(mwi_coap_request_match(&r, &reserved), MW_EAGAIN, "3.xx is no response class");
    cr_assert(r.active);
    cr_assert(!r.acked);
}

Test(coap_exchange, rst_with_the_mid_gives_reset_and_other_rsts_are_ignored)
{
    mwi_coap_params p;
    mwi_coap_request r;
    mwt_rng rng = {17};
    mwi_coap_params_default(&p);
    start(&r, &p, &rng, 0);
    mwi_coap_msg other = response(MWI_COAP_RST, MWI_COAP_EMPTY, 0x4241, NULL, 0);
    mwi_coap_msg rst = response(MWI_COAP_RST, MWI_COAP_EMPTY, 0x4242, NULL, 0);
    cr_assert_eq(mwi_coap_request_match(&r, &other), MW_EAGAIN);
    cr_assert(r.active);
    cr_assert_eq(mwi_coap_request_match(&r, &rst), MW_ECOAP_RESET);
    cr_assert(!r.active);
}

Test(coap_exchange, empty_ack_stops_retransmission_and_the_separate_response_matches_by_token)
{
    mwi_coap_params p;
    mwi_coap_request r;
    mwt_rng rng = {19};
    mwi_coap_params_default(&p);
    start(&r, &p, &rng, 0);
    mwi_coap_msg ack = response(MWI_COAP_ACK, MWI_COAP_EMPTY, 0x4242, NULL, 0);
    cr_assert_eq(mwi_coap_request_match(&r, &ack), MW_EINPROGRESS);
    cr_assert_eq(mwi_coap_request_match(&r, &ack), MW_EINPROGRESS, "a duplicate ACK too");
    cr_assert(r.active && r.acked);
    cr_assert_eq(mwi_coap_request_deadline(&r), mwi_coap_exchange_lifetime_ms(&p));
    for (uint64_t t = 0; t < mwi_coap_request_deadline(&r); t += 1000)
        cr_assert_eq(mwi_coap_request_timer(&r, &p, t), MW_EAGAIN, "no retransmission at %llu",
                     (unsigned long long)t);
    mwi_coap_msg rst = response(MWI_COAP_RST, MWI_COAP_EMPTY, 0x4242, NULL, 0);
    cr_assert_eq(mwi_coap_request_match(&r, &rst), MW_EAGAIN, "a stale RST after the ACK");
    mwi_coap_msg sep = response(MWI_COAP_CON, MWI_COAP_CHANGED, 0x0001, TOKEN, 8);
    cr_assert_eq(mwi_coap_request_match(&r, &sep), MW_OK);
    cr_assert(!r.active);
}

Test(coap_exchange, separate_response_before_the_empty_ack_completes_the_request)
{
    mwi_coap_params p;
    mwi_coap_request r;
    mwt_rng rng = {23};
    mwi_coap_params_default(&p);
    start(&r, &p, &rng, 0);
    mwi_coap_msg sep = response(MWI_COAP_NON, MWI_COAP_CONTENT, 0x0002, TOKEN, 8);
    cr_assert_eq(mwi_coap_request_match(&r, &sep), MW_OK);
    cr_assert(!r.active);
}

Test(coap_exchange, waiting_for_a_separate_response_ends_after_exchange_lifetime)
{
    mwi_coap_params p;
    mwi_coap_request r;
    mwt_rng rng = {29};
    mwi_coap_params_default(&p);
    start(&r, &p, &rng, 1000);
    mwi_coap_msg ack = response(MWI_COAP_ACK, MWI_COAP_EMPTY, 0x4242, NULL, 0);
    cr_assert_eq(mwi_coap_request_match(&r, &ack), MW_EINPROGRESS);
    cr_assert_eq(mwi_coap_request_timer(&r, &p, 1000 + 247000 - 1), MW_EAGAIN);
    cr_assert_eq(mwi_coap_request_timer(&r, &p, 1000 + 247000), MW_ETIMEDOUT);
    cr_assert(!r.active);
}

Test(coap_exchange, message_ids_increment_and_tokens_differ_between_requests)
{
    mwt_rng rng = {31};
    mwi_coap_ids ids;
    uint16_t mid[64];
    uint8_t tok[64][MWI_COAP_MAX_TOKEN];
    cr_assert_eq(mwi_coap_ids_init(&ids, mwt_rng_table(&rng)), MW_OK);
    for (int i = 0; i < 64; i++)
        cr_assert_eq(mwi_coap_ids_next(&ids, &mid[i], tok[i]), MW_OK);
    for (int i = 1; i < 64; i++) {
        cr_assert_eq(mid[i], (uint16_t)(mid[0] + i));
        for (int j = 0; j < i; j++)
            cr_assert(memcmp(tok[i], tok[j], MWI_COAP_MAX_TOKEN) != 0, "tokens %d and %d", i, j);
    }
    /* The start is random: another seed starts elsewhere. */
    mwt_rng rng2 = {32};
    mwi_coap_ids ids2;
    cr_assert_eq(mwi_coap_ids_init(&ids2, mwt_rng_table(&rng2)), MW_OK);
    cr_assert_neq(ids2.next_mid, mid[0]);
}

Test(coap_exchange, message_id_wraps_from_65535_to_0)
{
    mwt_rng rng = {37};
    mwi_coap_ids ids;
    uint16_t a, b;
    uint8_t tok[MWI_COAP_MAX_TOKEN];
    cr_assert_eq(mwi_coap_ids_init(&ids, mwt_rng_table(&rng)), MW_OK);
    ids.next_mid = 0xFFFF;
    cr_assert_eq(mwi_coap_ids_next(&ids, &a, tok), MW_OK);
    cr_assert_eq(mwi_coap_ids_next(&ids, &b, tok), MW_OK);
    cr_assert_eq(a, 0xFFFF);
    cr_assert_eq(b, 0);
}

Test(coap_exchange, random_source_failure_is_reported_and_consumes_nothing)
{
    mw_random_t bad = {NULL, fill_fail};
    mw_random_t none = {NULL, NULL};
    mwt_rng rng = {41};
    mwi_coap_ids ids;
    mwi_coap_params p;
    mwi_coap_request r;
    uint16_t mid;
    uint8_t tok[MWI_COAP_MAX_TOKEN];
    mwi_coap_params_default(&p);
    cr_assert_eq(mwi_coap_ids_init(&ids, bad), MW_EIO);
    cr_assert_eq(mwi_coap_ids_init(&ids, none), MW_EINVAL);
    cr_assert_eq(mwi_coap_ids_init(&ids, mwt_rng_table(&rng)), MW_OK);
    uint16_t before = ids.next_mid;
    ids.rnd = bad;
    cr_assert_eq(mwi_coap_ids_next(&ids, &mid, tok), MW_EIO);
    cr_assert_eq(ids.next_mid, before);
    cr_assert_eq(mwi_coap_request_start(&r, &p, bad, 1, TOKEN, 8, 0), MW_EIO);
    cr_assert(!r.active);
    cr_assert_eq(mwi_coap_request_start(&r, &p, none, 1, TOKEN, 8, 0), MW_EINVAL);
}

Test(coap_exchange, exchange_lifetime_is_247_seconds_by_default)
{
    mwi_coap_params p;
    mwi_coap_params_default(&p);
    cr_assert_eq(p.ack_timeout_ms, 2000);
    cr_assert_eq(p.ack_random_factor_milli, 1500);
    cr_assert_eq(p.max_retransmit, 4);
    cr_assert_eq(mwi_coap_exchange_lifetime_ms(&p), 247000);
    cr_assert_eq(mwi_coap_max_transmit_span_ms(&p), 45000);
    cr_assert_eq(mwi_coap_max_transmit_wait_ms(&p), 93000);
    cr_assert_eq(mwi_coap_non_lifetime_ms(&p), 145000);
}

Test(coap_exchange, parameters_outside_their_bounds_are_rejected)
{
    mwi_coap_params p;
    mwi_coap_request r;
    mwt_rng rng = {43};
    mwi_coap_params_default(&p);
    cr_assert_eq(mwi_coap_params_check(&p), MW_OK);
    p.ack_random_factor_milli = 999;
    cr_assert_eq(mwi_coap_params_check(&p), MW_EINVAL, "4.8.1: factor below 1.0");
    cr_assert_eq(mwi_coap_exchange_lifetime_ms(&p), UINT64_MAX);
    cr_assert_eq(mwi_coap_request_start(&r, &p, mwt_rng_table(&rng), 1, TOKEN, 8, 0), MW_EINVAL);
    mwi_coap_params_default(&p);
    p.ack_timeout_ms = 0;
    cr_assert_eq(mwi_coap_params_check(&p), MW_EINVAL);
    mwi_coap_params_default(&p);
    p.max_retransmit = MWI_COAP_MAX_RETRANSMIT_LIMIT + 1;
    cr_assert_eq(mwi_coap_params_check(&p), MW_EINVAL);
    cr_assert_eq(mwi_coap_max_transmit_wait_ms(&p), UINT64_MAX);
    mwi_coap_params_default(&p);
    cr_assert_eq(mwi_coap_request_start(&r, &p, mwt_rng_table(&rng), 1, TOKEN, 9, 0), MW_EINVAL);
    cr_assert_eq(mwi_coap_request_start(&r, &p, mwt_rng_table(&rng), 1, NULL, 8, 0), MW_EINVAL);
    cr_assert_eq(mwi_coap_params_check(NULL), MW_EINVAL);
}
