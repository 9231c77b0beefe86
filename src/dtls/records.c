/* SPDX-License-Identifier: Apache-2.0 */
/* records.c -- DTLS records read without state or keys: what a datagram holds, and the filter
 * that lets only a whole, well-formed ClientHello reach wolfSSL's parser. */
#include "dtls/records.h"

#include "core/limits.h"

#define REC_HDR         MWI_DTLS_REC_HDR
#define CT_CCS          MWI_DTLS_CT_CCS
#define CT_HANDSHAKE    MWI_DTLS_CT_HANDSHAKE
#define HS_CLIENT_HELLO 1

bool mwi_dtls_is_handshake_flight(const uint8_t *d, size_t len)
{
    return len >= REC_HDR && (d[0] == CT_HANDSHAKE || d[0] == CT_CCS);
}

bool mwi_dtls_is_client_hello(const uint8_t *d, size_t len)
{
    /* type, version 1.0 or 1.2 (DTLS 1.0 records may carry a 1.2 hello),
     * epoch 0, and a handshake body that starts with client_hello. */
    return len >= REC_HDR + 12 && d[0] == CT_HANDSHAKE && d[1] == 0xFE &&
           (d[2] == 0xFD || d[2] == 0xFF) && d[3] == 0 && d[4] == 0 &&
           d[REC_HDR] == HS_CLIENT_HELLO;
}

static size_t be16(const uint8_t *p)
{
    return ((size_t)p[0] << 8) | p[1];
}

static size_t be24(const uint8_t *p)
{
    return ((size_t)p[0] << 16) | ((size_t)p[1] << 8) | p[2];
}

/* A vector of @p width length bytes that fills @p ext exactly, of at least @p min bytes and a
 * multiple of @p unit. */
static bool ext_vector(const uint8_t *ext, size_t n, unsigned width, size_t min, size_t unit)
{
    if (n < width)
        return false;
    size_t v = width == 1 ? ext[0] : be16(ext);
    return v == n - width && v >= min && v % unit == 0;
}

/* Entries of @p width length bytes each (names of at least one byte after @p skip bytes of
 * type) that fill the vector exactly: SNI's server_name_list, ALPN's protocol_name_list. */
static bool ext_names(const uint8_t *ext, size_t n, size_t skip, unsigned width)
{
    if (!ext_vector(ext, n, 2, 1, 1))
        return false;
    size_t p = 2;
    while (p < n) {
        if (n - p < skip + width)
            return false;
        size_t l = width == 1 ? ext[p + skip] : be16(ext + p + skip);
        p += skip + width;
        if (l == 0 || l > n - p)
            return false;
        p += l;
    }
    return true;
}

/* Legitimate ClientHellos carry about a dozen extensions; many more is an attack on a parser
 * (MWI_HELLO_MAX_EXTENSIONS, core/limits.h). */
static bool hello_extensions_ok(const uint8_t *b, size_t n)
{
    uint16_t seen[MWI_HELLO_MAX_EXTENSIONS];
    size_t count = 0, p = 0;
    while (p < n) {
        if (n - p < 4 || count == MWI_HELLO_MAX_EXTENSIONS)
            return false;
        uint16_t type = (uint16_t)be16(b + p);
        size_t l = be16(b + p + 2);
        const uint8_t *e = b + p + 4;
        p += 4;
        if (l > n - p)
            return false;
        p += l;
        for (size_t i = 0; i < count; i++)
            if (seen[i] == type)
                return false; /* RFC 5246 7.4.1.4: never twice */
        seen[count++] = type;
        bool ok = true;
        switch (type) {
        case 0: /* server_name (RFC 6066 3): type, then a 2-byte name length */
            ok = ext_names(e, l, 1, 2);
            break;
        case 10: /* supported_groups (RFC 8422 5.1.1) */
            ok = ext_vector(e, l, 2, 2, 2);
            break;
        case 11: /* ec_point_formats (RFC 8422 5.1.2) */
            ok = ext_vector(e, l, 1, 1, 1);
            break;
        case 13: /* signature_algorithms (RFC 5246 7.4.1.4.1) */
            ok = ext_vector(e, l, 2, 2, 2);
            break;
        case 16: /* application_layer_protocol_negotiation (RFC 7301 3.1) */
            ok = ext_names(e, l, 0, 1);
            break;
        case 0xff01: /* renegotiation_info (RFC 5746 3.2) */
            ok = ext_vector(e, l, 1, 0, 1);
            break;
        default:
            break;
        }
        if (!ok)
            return false;
    }
    return true;
}

bool mwi_dtls_client_hello_well_formed(const uint8_t *d, size_t len)
{
    if (!mwi_dtls_is_client_hello(d, len) || be16(d + 11) != len - REC_HDR)
        return false;
    const uint8_t *hs = d + REC_HDR;
    size_t n = be24(hs + 1);
    /* Whole and alone: offset 0, fragment = message = the rest of the record. wolfSSL would
     * reassemble fragments that no one here could check first. */
    if (be24(hs + 6) != 0 || be24(hs + 9) != n || n != len - REC_HDR - 12)
        return false;
    const uint8_t *b = hs + 12;
    size_t p = 2 + 32; /* client_version, random */
    if (n < p + 1 || b[p] > 32 || (size_t)b[p] > n - p - 1)
        return false; /* session_id */
    p += 1 + b[p];
    if (n < p + 1 || (size_t)b[p] > n - p - 1)
        return false; /* cookie */
    p += 1 + b[p];
    if (n < p + 2)
        return false;
    size_t suites = be16(b + p);
    if (suites < 2 || suites % 2 != 0 || suites > n - p - 2)
        return false;
    p += 2 + suites;
    if (n < p + 1 || b[p] < 1 || (size_t)b[p] > n - p - 1)
        return false; /* compression_methods */
    p += 1 + b[p];
    if (p == n)
        return true; /* no extensions */
    if (n - p < 2 || be16(b + p) != n - p - 2)
        return false;
    return hello_extensions_ok(b + p + 2, n - p - 2);
}

/* Does the plaintext handshake record @p b carry a ClientHello (or a fragment of one) in any of
 * its messages? */
static bool holds_client_hello(const uint8_t *b, size_t n)
{
    size_t p = 0;
    while (p < n) {
        if (b[p] == HS_CLIENT_HELLO)
            return true;
        if (n - p < 12)
            break;
        size_t frag = be24(b + p + 9);
        if (frag > n - p - 12)
            break;
        p += 12 + frag;
    }
    return false;
}

/* The length of the part of @p d made of usable records. Invalid records are
 * dropped silently (RFC 6347 4.1.2.7) before wolfSSL sees them, because
 * wolfSSL 5.5.4 answers some with a fatal alert under the session's keys,
 * which ends the session at both ends: one spoofed datagram from an off-path
 * attacker was enough (found by fuzz_session). Those are a record that runs
 * past the datagram (a record never spans datagrams, 4.1.1; above wolfSSL's
 * maximum it sends record_overflow) and a protected record (epoch > 0) too
 * short for the AEAD's explicit nonce and tag (bad_record_mac). Legitimate
 * datagrams hold neither, so everything from the first such record on goes. */
size_t mwi_dtls_usable_records(const uint8_t *d, size_t len, size_t min_sealed,
                               mwi_dtls_hello_check *hello_ok)
{
    size_t off = 0;
    while (len - off >= REC_HDR) {
        size_t body = be16(d + off + 11);
        bool sealed = d[off + 3] != 0 || d[off + 4] != 0;
        if (body > len - off - REC_HDR || (sealed && body < min_sealed))
            break;
        /* A server lets a ClientHello through only whole, alone and well formed. */
        if (hello_ok != NULL && !sealed && d[off] == CT_HANDSHAKE &&
            holds_client_hello(d + off + REC_HDR, body) && !(off == 0 && hello_ok(d, len)))
            break;
        off += REC_HDR + body;
    }
    return off;
}

/* Whether the ClientHello @p d (whole: mwi_dtls_client_hello_well_formed) carries a cookie. */
bool mwi_dtls_hello_has_cookie(const uint8_t *d, size_t len)
{
    size_t p = REC_HDR + 12 + 2 + 32; /* headers, client_version, random */
    if (len <= p)
        return false;
    p += 1 + (size_t)d[p]; /* session_id */
    return len > p && d[p] > 0;
}
