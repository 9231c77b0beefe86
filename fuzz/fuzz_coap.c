/* SPDX-License-Identifier: Apache-2.0 */
/* fuzz_coap.c -- the CoAP parser and the message layer's input path: what parses re-encodes to the same fields, and replies built from it are well-formed. */
#include <stdlib.h>
#include <string.h>

#include "coap/coap.h"
#include "dtls/dtls.h"

#include "fuzz_support.h"

static mwi_coap_parser *parser;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    /* The gateway's and the client's parsers accept a whole datagram. */
    MWF_CHECK(mwi_coap_parser_create(MWI_DTLS_MAX_DATAGRAM, &parser) == MW_OK, "parser");
    return 0;
}

/* The encoder refuses a path with an empty segment (leading, trailing or doubled '/'), which
 * the parser produces from a zero-length Uri-Path option. */
static bool path_has_empty_segment(const char *p)
{
    size_t n = strlen(p);
    return n > 0 && (p[0] == '/' || p[n - 1] == '/' || strstr(p, "//") != NULL);
}

static const unsigned OPT_FLAGS =
    MWI_COAP_F_BLOCK1 | MWI_COAP_F_BLOCK2 | MWI_COAP_F_SIZE1 | MWI_COAP_F_SIZE2;

static void check_same(const mwi_coap_msg *a, const mwi_coap_msg *b)
{
    MWF_CHECK(a->type == b->type && a->code == b->code && a->mid == b->mid, "header changed");
    MWF_CHECK(a->token_len == b->token_len && memcmp(a->token, b->token, a->token_len) == 0,
              "token changed");
    MWF_CHECK(strcmp(a->uri_path, b->uri_path) == 0, "path '%s' became '%s'", a->uri_path,
              b->uri_path);
    MWF_CHECK(a->content_format == b->content_format && a->accept == b->accept,
              "content format or accept changed");
    MWF_CHECK((a->flags & OPT_FLAGS) == (b->flags & OPT_FLAGS), "block/size options changed");
    MWF_CHECK(!(a->flags & MWI_COAP_F_BLOCK1) || a->block1 == b->block1, "Block1 changed");
    MWF_CHECK(!(a->flags & MWI_COAP_F_BLOCK2) || a->block2 == b->block2, "Block2 changed");
    MWF_CHECK(!(a->flags & MWI_COAP_F_SIZE1) || a->size1 == b->size1, "Size1 changed");
    MWF_CHECK(!(a->flags & MWI_COAP_F_SIZE2) || a->size2 == b->size2, "Size2 changed");
    MWF_CHECK(a->payload_len == b->payload_len &&
                  (a->payload_len == 0 || memcmp(a->payload, b->payload, a->payload_len) == 0),
              "payload changed");
}

/* Encodes @p m and parses it back; the encoder must accept it unless @p may_refuse. */
static void round_trip(const mwi_coap_msg *m, bool may_refuse)
{
    static uint8_t out[2 * MWI_DTLS_MAX_DATAGRAM];
    size_t n = 0;
    mwi_coap_msg back;
    mw_err e = mwi_coap_encode(m, out, sizeof out, &n);
    if (e != MW_OK) {
        MWF_CHECK(may_refuse, "encoder refused a parsed message: %s", mw_strerror(e));
        return;
    }
    e = mwi_coap_parse(parser, out, n, &back);
    MWF_CHECK(e == MW_OK, "our own encoding does not parse: %s", mw_strerror(e));
    /* The encoder writes only options the codec knows, in range: nothing critical unknown. */
    MWF_CHECK(back.unknown_critical == 0 && !(back.flags & MWI_COAP_F_PATH_UNUSABLE),
              "our own encoding has an unusable option");
    check_same(m, &back);
}

/* The replies a server or a client makes to a parsed message (gateway.c, client.c). */
static void replies(const mwi_coap_msg *m)
{
    mwi_coap_msg r;
    if (mwi_coap_response_for(m, MWI_COAP_CHANGED, &r) == MW_OK) {
        MWF_CHECK(m->type == MWI_COAP_CON && MWI_COAP_IS_REQUEST(m->code), "answered a non-request");
        MWF_CHECK(r.type == MWI_COAP_ACK && r.mid == m->mid && r.token_len == m->token_len,
                  "piggybacked response does not echo the request");
        round_trip(&r, false);
    }
    if (mwi_coap_make_ack(m, &r) == MW_OK) {
        MWF_CHECK(m->type == MWI_COAP_CON && r.mid == m->mid, "ACK of a non-CON");
        round_trip(&r, false);
    }
    if (mwi_coap_make_rst(m, &r) == MW_OK) {
        MWF_CHECK(m->type == MWI_COAP_CON || m->type == MWI_COAP_NON, "RST of an ACK or RST");
        round_trip(&r, false);
    }
}

/* The client's matching of a response to its outstanding request (RFC 7252 5.3.2). The token
 * and Message ID come from the input too, so that the fuzzer can make them match. */
static void match(const mwi_coap_msg *m, const uint8_t *data, size_t size)
{
    mwi_coap_params params;
    mwi_coap_request r;
    mwi_coap_params_default(&params);
    /* Set by hand rather than by mwi_coap_request_start: only its first timeout would need a
     * random source, and matching does not look at timers. */
    memset(&r, 0, sizeof r);
    r.active = true;
    r.mid = m->mid ^ (uint16_t)(size & 1u); /* every other input: a foreign Message ID */
    r.token_len = m->token_len;
    memcpy(r.token, m->token, m->token_len);
    if (size > 0 && (data[size - 1] & 1u) != 0 && r.token_len > 0)
        r.token[0] ^= 1; /* a foreign token */
    r.timeout_ms = params.ack_timeout_ms;
    r.next_tx_ms = 1000;
    r.expires_ms = 1000 + mwi_coap_exchange_lifetime_ms(&params);

    bool mid_ok = m->mid == r.mid;
    bool tok_ok = m->token_len == r.token_len && memcmp(m->token, r.token, r.token_len) == 0;
    mw_err e = mwi_coap_request_match(&r, m);
    switch (e) {
    case MW_OK:
        /* A response: piggybacked (MID and token) or separate (token). */
        MWF_CHECK(MWI_COAP_IS_RESPONSE(m->code) && tok_ok && !r.active,
                  "accepted a message that is not the response");
        MWF_CHECK(m->type != MWI_COAP_ACK || mid_ok, "piggybacked response with another MID");
        break;
    case MW_EINPROGRESS:
        MWF_CHECK(m->type == MWI_COAP_ACK && m->code == MWI_COAP_EMPTY && mid_ok && r.acked,
                  "EINPROGRESS for something other than the empty ACK");
        break;
    case MW_ECOAP_RESET:
        MWF_CHECK(m->type == MWI_COAP_RST && mid_ok && !r.active, "reset by a foreign RST");
        break;
    case MW_EAGAIN:
        MWF_CHECK(r.active, "a message that did not match ended the request");
        break;
    default:
        MWF_CHECK(false, "unexpected result %s", mw_strerror(e));
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    mwi_coap_msg m;
    if (size == 0)
        return 0; /* mwi_coap_parse takes a non-NULL buffer; libFuzzer's empty input may be NULL */
    mw_err e = mwi_coap_parse(parser, data, size, &m);
    if (e != MW_OK) {
        MWF_CHECK(e == MW_ECOAP_MALFORMED || e == MW_ETOOBIG, "parse: %s", mw_strerror(e));
        return 0;
    }
    /* The payload is borrowed from the input, runs to its end, and is never empty. */
    if (m.payload != NULL) {
        MWF_CHECK(m.payload > data && m.payload + m.payload_len == data + size &&
                      m.payload_len > 0,
                  "payload outside the input");
    } else {
        MWF_CHECK(m.payload_len == 0, "payload length without a payload");
    }
    MWF_CHECK(m.token_len <= MWI_COAP_MAX_TOKEN, "token length %u", m.token_len);
    MWF_CHECK(memchr(m.uri_path, '\0', sizeof m.uri_path) != NULL, "path not terminated");
    MWF_CHECK(!(m.flags & MWI_COAP_F_PATH_UNUSABLE) || m.uri_path[0] == '\0',
              "an unusable path is not empty");
    round_trip(&m, path_has_empty_segment(m.uri_path));
    replies(&m);
    match(&m, data, size);
    return 0;
}
