/* SPDX-License-Identifier: Apache-2.0 */
/* coap.h -- CoAP (RFC 7252) message codec and client-side confirmable-request state, sans-I/O. */
#ifndef MWI_COAP_COAP_H
#define MWI_COAP_COAP_H

/**
 * @file coap.h
 * @brief medwire's CoAP message layer: encode and parse messages, pick message ids and tokens,
 * and time the retransmissions of one outstanding confirmable request.
 *
 * Nothing here touches a socket or reads a clock: time comes in as @c now_ms (any monotonic
 * epoch, milliseconds) and randomness through an ::mw_random_t. All storage is the caller's
 * except the parser object. The option format is encoded and decoded with libcoap 4.3.1
 * (coap_opt_encode(), coap_opt_parse(), coap_encode_var_safe(), coap_decode_var_bytes()); only
 * src/coap includes libcoap.
 *
 * Thread-safety: functions on distinct objects may run concurrently; one object (parser, ids,
 * request) must not be used by two threads at once. The first codec call lowers libcoap's
 * process-wide log level to LOG_ERR (once, thread-safely) so hostile input cannot make
 * libcoap print.
 *
 * @code
 * // Device: send a batch as a CON POST and wait for the piggybacked 2.04.
 * mwi_coap_ids ids;            // once: mwi_coap_ids_init(&ids, rnd)
 * mwi_coap_params params;      // once: mwi_coap_params_default(&params)
 * mwi_coap_msg req;
 * mwi_coap_msg_init(&req);
 * req.type = MWI_COAP_CON;
 * req.code = MWI_COAP_POST;
 * req.token_len = MWI_COAP_MAX_TOKEN;
 * if (mwi_coap_ids_next(&ids, &req.mid, req.token) != MW_OK) return;
 * strcpy(req.uri_path, "v1/batch");
 * req.content_format = 65100;
 * req.payload = batch;
 * req.payload_len = batch_len;
 * if (mwi_coap_encode(&req, wire, sizeof wire, &wire_len) != MW_OK) return;
 * mwi_coap_request r;
 * if (mwi_coap_request_start(&r, &params, rnd, req.mid, req.token, req.token_len, now) != MW_OK)
 *     return;
 * send(wire, wire_len);
 * // on every datagram: mwi_coap_parse(parser, dgram, n, &in), then mwi_coap_request_match(&r, &in)
 * // when now >= mwi_coap_request_deadline(&r): mwi_coap_request_timer(&r, &params, now) and,
 * // on MW_OK, send(wire, wire_len) again.
 * @endcode
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "medwire/err.h"
#include "medwire/io.h"

/** Longest token (RFC 7252 3: TKL 0..8; 9..15 are a format error). */
#define MWI_COAP_MAX_TOKEN 8
/** Longest Uri-Path, segments joined by '/', without the terminating NUL. */
#define MWI_COAP_MAX_PATH 63

/** Message types (RFC 7252 3). */
enum { MWI_COAP_CON = 0, MWI_COAP_NON = 1, MWI_COAP_ACK = 2, MWI_COAP_RST = 3 };

/** Code c.dd as its byte (RFC 7252 3): MWI_COAP_CODE(2, 4) is 2.04. */
#define MWI_COAP_CODE(c, d) ((uint8_t)(((c) << 5) | (d)))
/** The class (c of c.dd) of a code byte. */
#define MWI_COAP_CODE_CLASS(code) ((uint8_t)(code) >> 5)

/** Codes used by medwire (RFC 7252 5.8, 5.9, 12.1; RFC 7959 2.9). */
#define MWI_COAP_EMPTY                      MWI_COAP_CODE(0, 0)
#define MWI_COAP_GET                        MWI_COAP_CODE(0, 1)
#define MWI_COAP_POST                       MWI_COAP_CODE(0, 2)
#define MWI_COAP_CHANGED                    MWI_COAP_CODE(2, 4)
#define MWI_COAP_CONTENT                    MWI_COAP_CODE(2, 5)
#define MWI_COAP_CONTINUE                   MWI_COAP_CODE(2, 31)
#define MWI_COAP_BAD_REQUEST                MWI_COAP_CODE(4, 0)
#define MWI_COAP_BAD_OPTION                 MWI_COAP_CODE(4, 2)
#define MWI_COAP_NOT_FOUND                  MWI_COAP_CODE(4, 4)
#define MWI_COAP_METHOD_NOT_ALLOWED         MWI_COAP_CODE(4, 5)
#define MWI_COAP_REQUEST_ENTITY_INCOMPLETE  MWI_COAP_CODE(4, 8)
#define MWI_COAP_REQUEST_ENTITY_TOO_LARGE   MWI_COAP_CODE(4, 13)
#define MWI_COAP_UNSUPPORTED_CONTENT_FORMAT MWI_COAP_CODE(4, 15)
#define MWI_COAP_INTERNAL_SERVER_ERROR      MWI_COAP_CODE(5, 0)
#define MWI_COAP_SERVICE_UNAVAILABLE        MWI_COAP_CODE(5, 3)

/** True for a request code (0.01..0.31). */
#define MWI_COAP_IS_REQUEST(code) (MWI_COAP_CODE_CLASS(code) == 0 && (code) != 0)
/** True for a response code: classes 2, 4 and 5 (RFC 7252 5.9, 12.1.2); 1, 3, 6 and 7 are
 *  reserved or signalling (RFC 8323) and never answer a request. */
#define MWI_COAP_IS_RESPONSE(code)                                                                 \
    (MWI_COAP_CODE_CLASS(code) == 2 || MWI_COAP_CODE_CLASS(code) == 4 ||                           \
     MWI_COAP_CODE_CLASS(code) == 5)

/** Option numbers the codec knows (RFC 7252 5.10, RFC 7959 2.1 and 4). */
enum {
    MWI_COAP_OPT_URI_HOST = 3,
    MWI_COAP_OPT_URI_PORT = 7,
    MWI_COAP_OPT_URI_PATH = 11,
    MWI_COAP_OPT_CONTENT_FORMAT = 12,
    MWI_COAP_OPT_MAX_AGE = 14,
    MWI_COAP_OPT_URI_QUERY = 15,
    MWI_COAP_OPT_ACCEPT = 17,
    MWI_COAP_OPT_BLOCK2 = 23,
    MWI_COAP_OPT_BLOCK1 = 27,
    MWI_COAP_OPT_SIZE2 = 28,
    MWI_COAP_OPT_SIZE1 = 60,
};

/** Flags of ::mwi_coap_msg. */
#define MWI_COAP_F_BLOCK1 0x01u /**< block1 holds a Block1 option value */
#define MWI_COAP_F_BLOCK2 0x02u /**< block2 holds a Block2 option value */
#define MWI_COAP_F_SIZE1  0x04u /**< size1 holds a Size1 option value */
#define MWI_COAP_F_SIZE2  0x08u /**< size2 holds a Size2 option value */
/** Parse only: the Uri-Path could not be represented exactly in uri_path (longer than
 *  ::MWI_COAP_MAX_PATH, or a segment holds '/' or NUL), so uri_path is "". Such a path can
 *  name no medwire resource: a server answers 4.04 Not Found. */
#define MWI_COAP_F_PATH_UNUSABLE 0x10u
/** max_age holds a Max-Age option value (RFC 7252 5.10.5: seconds; absent means 60) */
#define MWI_COAP_F_MAX_AGE 0x20u

/** Largest Block1/Block2 value (a 3-byte uint, RFC 7959 2.2). */
#define MWI_COAP_BLOCK_MAX 0xFFFFFFu

/** Block option fields (RFC 7959 2.2). */
#define MWI_COAP_BLOCK_NUM(v) ((v) >> 4)
#define MWI_COAP_BLOCK_MORE(v) (((v) >> 3) & 1u)
#define MWI_COAP_BLOCK_SZX(v) ((v)&7u)
#define MWI_COAP_BLOCK_SIZE(szx) (16u << (szx))
#define MWI_COAP_BLOCK_VALUE(num, more, szx) (((uint32_t)(num) << 4) | ((more) ? 8u : 0u) | (szx))


/**
 * One CoAP message, decoded. Plain data, no ownership except that @c payload borrows the
 * buffer that was parsed (or the caller's buffer, to encode).
 */
typedef struct mwi_coap_msg {
    uint8_t type; /**< MWI_COAP_CON, _NON, _ACK or _RST */
    uint8_t code; /**< MWI_COAP_CODE(c, d) */
    uint16_t mid; /**< Message ID */
    uint8_t token_len;
    uint8_t token[MWI_COAP_MAX_TOKEN];
    /** Uri-Path segments joined by '/', no leading '/', "" if none. */
    char uri_path[MWI_COAP_MAX_PATH + 1];
    int32_t content_format; /**< -1 when absent */
    int32_t accept;         /**< -1 when absent */
    /** 0, or the first critical option number not understood (RFC 7252 5.4.1): an unknown
     *  odd-numbered option, a known critical one with a length outside its range (5.4.3), or a
     *  repeat of a non-repeatable critical one (5.4.5). A server answers a request that has it
     *  with 4.02 Bad Option; a client rejects such a response. Ignored by the encoder. */
    uint16_t unknown_critical;
    uint8_t flags;           /**< MWI_COAP_F_* */
    uint32_t block1, block2; /**< raw Block1/Block2 values (RFC 7959 2.2) when flagged */
    uint32_t size1, size2;   /**< raw Size1/Size2 values (RFC 7959 4) when flagged */
    uint32_t max_age;        /**< Max-Age in seconds when flagged */
    const uint8_t *payload;  /**< NULL if none; points into the parsed buffer */
    size_t payload_len;
} mwi_coap_msg;

/** Zeroes @p m and sets content_format and accept to -1 (absent). */
void mwi_coap_msg_init(mwi_coap_msg *m);

/**
 * Encodes @p m into out[0..cap). Options are written in number order: each Uri-Path segment
 * (11), Content-Format (12), Max-Age (14), Accept (17), Block2 (23), Block1 (27), Size2 (28), Size1
 * (60), integers in their shortest form (RFC 7252 3.2); the payload marker only with a payload.
 * Never writes at or past out + cap.
 * @param[out] out_len bytes written (0 on error)
 * @return ::MW_OK; ::MW_ENOSPC if the message does not fit in @p cap bytes (out[0..cap) is
 *         then unspecified); ::MW_EINVAL for NULL arguments, type > 3, token_len > 8, an empty
 *         message (code 0.00) with a token, option or payload (RFC 7252 4.1), a payload
 *         pointer NULL with payload_len > 0, uri_path not NUL-terminated in its array or with
 *         an empty segment (leading, trailing or doubled '/'), content_format or accept
 *         outside -1..65535, or a flagged block value above ::MWI_COAP_BLOCK_MAX.
 */
MW_NODISCARD mw_err mwi_coap_encode(const mwi_coap_msg *m, uint8_t *out, size_t cap,
                                    size_t *out_len);

/** A message parser. Parsing never allocates and never copies: the message's payload points
 *  into the parsed buffer. */
typedef struct mwi_coap_parser mwi_coap_parser;

/**
 * Creates a parser that accepts messages of up to @p max_size bytes (at least 4).
 * @return ::MW_OK; ::MW_EINVAL if @p out is NULL or @p max_size < 4; ::MW_ENOMEM.
 */
MW_NODISCARD mw_err mwi_coap_parser_create(size_t max_size, mwi_coap_parser **out);

/** Destroys *p (if any) and sets *p to NULL. */
void mwi_coap_parser_destroy(mwi_coap_parser **p);

/**
 * Parses the datagram buf[0..len) into @p out, reading no byte outside that range (the input
 * is untrusted). @p out->payload points into @p buf, so @p buf must outlive its use.
 * Options other than those listed for ::mwi_coap_msg are skipped: an unknown elective
 * (even-numbered) one is ignored, an unknown critical one is reported in unknown_critical;
 * Uri-Host, Uri-Port and Uri-Query are recognised and ignored. A known elective option with a
 * length outside its range, or repeated when it may not be, is ignored (RFC 7252 5.4.3, 5.4.5).
 * @return ::MW_OK; ::MW_ETOOBIG if @p len exceeds the parser's max_size;
 *         ::MW_ECOAP_MALFORMED for anything RFC 7252 makes a message format error or forbids:
 *         fewer than 4 bytes, version other than 1 (3), token length 9..15 or longer than the
 *         data (3), an option with delta or length nibble 15 that is not the payload marker
 *         (3.1), a truncated option, an option number above 65535, a payload marker followed
 *         by no payload (3), an empty message (0.00) with any byte after the Message ID (4.1),
 *         an RST that is not empty (4.2), an ACK carrying a request (4.2), an empty NON
 *         (4.3); ::MW_EINVAL for NULL arguments. On error @p out is unspecified.
 */
MW_NODISCARD mw_err mwi_coap_parse(mwi_coap_parser *p, const uint8_t *buf, size_t len,
                                   mwi_coap_msg *out);

/**
 * Makes @p resp the piggybacked response (RFC 7252 5.2.1) to the confirmable request @p req:
 * an ACK with @p code, req's Message ID and token, and no options or payload (the caller adds
 * them).
 * @return ::MW_OK; ::MW_EINVAL for NULL arguments, @p req not a CON request, or @p code not
 *         a response code.
 */
MW_NODISCARD mw_err mwi_coap_response_for(const mwi_coap_msg *req, uint8_t code,
                                          mwi_coap_msg *resp);

/**
 * Makes @p ack the empty ACK (RFC 7252 4.2) of the confirmable message @p con: acknowledges a
 * CON (a separate response that arrived, or a request answered later).
 * @return ::MW_OK; ::MW_EINVAL for NULL arguments or @p con not a CON.
 */
MW_NODISCARD mw_err mwi_coap_make_ack(const mwi_coap_msg *con, mwi_coap_msg *ack);

/**
 * Makes @p rst the Reset (RFC 7252 4.2, 4.3) that rejects @p msg: empty, same Message ID.
 * @return ::MW_OK; ::MW_EINVAL for NULL arguments or @p msg not a CON or NON (an ACK or RST
 *         is never answered).
 */
MW_NODISCARD mw_err mwi_coap_make_rst(const mwi_coap_msg *msg, mwi_coap_msg *rst);

/** Bytes of an empty message: the 4-byte header alone (RFC 7252 4.1). */
#define MWI_COAP_EMPTY_SIZE 4

/**
 * Encodes the empty ACK or RST (@p type) answering @p to, of which only the type and Message ID
 * are read: the empty ACK of a CON (mwi_coap_make_ack), or the Reset of a CON or NON
 * (mwi_coap_make_rst). The one way both ends answer with an empty message.
 * @param[out] out_len bytes written: ::MWI_COAP_EMPTY_SIZE (0 on error)
 * @return ::MW_OK; ::MW_EINVAL for NULL arguments, @p type neither ACK nor RST, or @p to of a
 *         type that message may not answer; ::MW_ENOSPC if @p cap < ::MWI_COAP_EMPTY_SIZE.
 */
MW_NODISCARD mw_err mwi_coap_encode_empty(const mwi_coap_msg *to, uint8_t type, uint8_t *out,
                                          size_t cap, size_t *out_len);

/**
 * Reads only the fixed header (version, type, code, Message ID; RFC 7252 3) of buf[0..len), for
 * a message that mwi_coap_parse() refused: a CON that cannot be processed is still rejected by
 * an RST with its Message ID (4.2). The rest of @p out is as mwi_coap_msg_init() leaves it.
 * @return ::MW_OK; ::MW_ECOAP_MALFORMED for fewer than 4 bytes or a version other than 1;
 *         ::MW_EINVAL for NULL arguments.
 */
MW_NODISCARD mw_err mwi_coap_read_header(const uint8_t *buf, size_t len, mwi_coap_msg *out);

/** Transmission parameters (RFC 7252 4.8). */
typedef struct mwi_coap_params {
    uint32_t ack_timeout_ms;          /**< ACK_TIMEOUT, 2000 */
    uint32_t ack_random_factor_milli; /**< ACK_RANDOM_FACTOR * 1000, 1500 */
    uint8_t max_retransmit;           /**< MAX_RETRANSMIT, 4 */
} mwi_coap_params;

/** Limits of ::mwi_coap_params accepted by mwi_coap_params_check(). */
#define MWI_COAP_ACK_TIMEOUT_MAX_MS   600000u
#define MWI_COAP_RANDOM_FACTOR_MAX    4000u
#define MWI_COAP_MAX_RETRANSMIT_LIMIT 16u
/** MAX_LATENCY (RFC 7252 4.8.2), fixed by the RFC. */
#define MWI_COAP_MAX_LATENCY_MS 100000u

/** Sets the defaults of RFC 7252 4.8. */
void mwi_coap_params_default(mwi_coap_params *p);

/**
 * Checks @p p: ack_timeout_ms in 1..::MWI_COAP_ACK_TIMEOUT_MAX_MS, ack_random_factor_milli in
 * 1000..::MWI_COAP_RANDOM_FACTOR_MAX (4.8: the factor MUST NOT be below 1.0),
 * max_retransmit <= ::MWI_COAP_MAX_RETRANSMIT_LIMIT. These bounds keep all timer arithmetic
 * exact in 64 bits.
 * @return ::MW_OK or ::MW_EINVAL.
 */
MW_NODISCARD mw_err mwi_coap_params_check(const mwi_coap_params *p);

/** MAX_TRANSMIT_SPAN (4.8.2): first to last transmission of a CON; 45000 ms by default.
 *  UINT64_MAX if @p p fails mwi_coap_params_check(). */
uint64_t mwi_coap_max_transmit_span_ms(const mwi_coap_params *p);
/** MAX_TRANSMIT_WAIT (4.8.2): first transmission to giving up; 93000 ms by default.
 *  UINT64_MAX if @p p fails mwi_coap_params_check(). */
uint64_t mwi_coap_max_transmit_wait_ms(const mwi_coap_params *p);
/** EXCHANGE_LIFETIME (4.8.2): how long a Message ID must not be reused, and how long a CON's
 *  duplicates may still arrive; 247000 ms by default. UINT64_MAX if @p p is invalid. */
uint64_t mwi_coap_exchange_lifetime_ms(const mwi_coap_params *p);
/** NON_LIFETIME (4.8.2): how long a NON's Message ID must not be reused; 145000 ms by default.
 *  UINT64_MAX if @p p is invalid. */
uint64_t mwi_coap_non_lifetime_ms(const mwi_coap_params *p);

/**
 * Message ID and token source of one endpoint. Message IDs count up from a random start
 * (RFC 7252 4.4); tokens are 8 random bytes, so an off-path attacker cannot guess them
 * (5.3.1, 11.4). Caller-owned storage; @c rnd is borrowed and must stay valid.
 */
typedef struct mwi_coap_ids {
    uint16_t next_mid;
    mw_random_t rnd;
} mwi_coap_ids;

/**
 * Seeds @p ids from @p rnd.
 * @return ::MW_OK; ::MW_EINVAL for NULL @p ids or @p rnd.fill (this layer has no built-in
 *         random source: the caller resolves the default one); or the error of @p rnd.fill.
 */
MW_NODISCARD mw_err mwi_coap_ids_init(mwi_coap_ids *ids, mw_random_t rnd);

/**
 * Takes the next Message ID and a fresh 8-byte token. The caller must not reuse a Message ID
 * with the same peer within EXCHANGE_LIFETIME (65536 per 247 s by default).
 * @return ::MW_OK; ::MW_EINVAL for NULL arguments; or the error of the random source (the
 *         Message ID is then not consumed).
 */
MW_NODISCARD mw_err mwi_coap_ids_next(mwi_coap_ids *ids, uint16_t *out_mid,
                                      uint8_t out_token[MWI_COAP_MAX_TOKEN]);

/**
 * One outstanding confirmable request, client side (RFC 7252 4.2, 5.2). Caller-owned storage,
 * plain data: the caller keeps the encoded bytes and sends them again when told to. Fields are
 * read-only to the caller.
 */
typedef struct mwi_coap_request {
    bool active;  /**< waiting for an ACK, RST or response */
    bool acked;   /**< an empty ACK came: no more retransmissions, a separate response is due */
    uint16_t mid; /**< Message ID of the request */
    uint8_t token_len;
    uint8_t token[MWI_COAP_MAX_TOKEN];
    uint8_t retransmits; /**< retransmissions so far */
    uint64_t timeout_ms; /**< current retransmission timeout (doubles each time) */
    uint64_t next_tx_ms; /**< when to retransmit (valid while active and not acked) */
    uint64_t expires_ms; /**< when to stop waiting for a separate response */
} mwi_coap_request;

/**
 * Starts timing a CON request just sent at @p now_ms. The first timeout is uniformly random in
 * [ACK_TIMEOUT, ACK_TIMEOUT * ACK_RANDOM_FACTOR] (4.2), drawn from @p rnd. A separate response
 * is awaited until @p now_ms + EXCHANGE_LIFETIME.
 * @return ::MW_OK; ::MW_EINVAL for NULL @p r or @p p, @p p failing mwi_coap_params_check(),
 *         @p token_len > 8, a NULL @p token with token_len > 0, or NULL @p rnd.fill; or the
 *         error of @p rnd.fill. On error @p r is inactive.
 */
MW_NODISCARD mw_err mwi_coap_request_start(mwi_coap_request *r, const mwi_coap_params *p,
                                           mw_random_t rnd, uint16_t mid, const uint8_t *token,
                                           uint8_t token_len, uint64_t now_ms);

/** When mwi_coap_request_timer() next has something to do; UINT64_MAX when @p r is inactive. */
uint64_t mwi_coap_request_deadline(const mwi_coap_request *r);

/**
 * Advances @p r's timer to @p now_ms. @p p must be the parameters given to
 * mwi_coap_request_start().
 * @return ::MW_OK: retransmit the same bytes now (the timeout has doubled, 4.2);
 *         ::MW_EAGAIN: nothing due yet, or @p r is inactive;
 *         ::MW_ECOAP_GIVEUP: max_retransmit retransmissions went unacknowledged (1 +
 *         max_retransmit transmissions in all); @p r is now inactive;
 *         ::MW_ETIMEDOUT: the request was acknowledged empty but its separate response did
 *         not come within EXCHANGE_LIFETIME of the start; @p r is now inactive;
 *         ::MW_EINVAL for NULL arguments.
 */
MW_NODISCARD mw_err mwi_coap_request_timer(mwi_coap_request *r, const mwi_coap_params *p,
                                           uint64_t now_ms);

/**
 * Offers a parsed message to @p r (RFC 7252 5.3.2 matching).
 * @return ::MW_OK: @p m is the response (a piggybacked ACK with the request's Message ID and
 *         token, or a CON/NON response with its token); @p r is now inactive. If @p m is a
 *         CON, the caller must still acknowledge it (mwi_coap_make_ack()).
 *         ::MW_EINPROGRESS: @p m is the empty ACK of the request: retransmission stops and
 *         the response is awaited by token (a repeat of that ACK gives the same answer).
 *         ::MW_ECOAP_RESET: @p m is an RST with the request's Message ID (before any ACK);
 *         @p r is now inactive.
 *         ::MW_EAGAIN: @p m is not for @p r (also when @p r is inactive), including an ACK with
 *         the request's Message ID but another token.
 *         ::MW_EINVAL for NULL arguments.
 */
MW_NODISCARD mw_err mwi_coap_request_match(mwi_coap_request *r, const mwi_coap_msg *m);

/**
 * The sending side of one request body in Block1 pieces (RFC 7959 2.5), sans-I/O: it makes each
 * block's request from a template; the caller gives it a Message ID and token, sends it as a CON
 * (::mwi_coap_request) and, when the answer is 2.31 Continue, moves to the next block. Blocks
 * are numbered from 0, each but the last full (16 << szx bytes) with M set; the first carries
 * Size1, the whole body's length (4). Caller-owned storage; the body is borrowed and must stay
 * as it is while the transfer runs. One body at a time.
 */
typedef struct mwi_coap_block1_sender {
    bool active;         /**< a body is being sent */
    uint8_t szx;         /**< block size exponent: 16 << szx bytes a block */
    uint32_t num;        /**< the block being sent */
    const uint8_t *body; /**< borrowed */
    size_t len;
    mwi_coap_msg tpl; /**< what every block's request repeats: type, code, Uri-Path, format */
} mwi_coap_block1_sender;

/**
 * Starts sending body[0..len) in blocks of 16 << @p szx bytes, each request a copy of @p tpl
 * (its Message ID, token and payload are ignored: the caller sets the first two per block).
 * @return ::MW_OK (block 0 is current); ::MW_EINVAL for NULL arguments, @p len 0, @p szx above
 *         6 (7 is reserved, RFC 7959 2.2), or a body needing more blocks than Block1 numbers
 *         (2^20); @p s is then inactive.
 */
MW_NODISCARD mw_err mwi_coap_block1_sender_start(mwi_coap_block1_sender *s, const mwi_coap_msg *tpl,
                                                 const uint8_t *body, size_t len, uint8_t szx);
/**
 * Makes @p out the request of the current block: the template with the block's slice of the
 * body as payload, Block1 (number, M unless it is the last, szx) and, on block 0, Size1.
 * @p out->payload points into the body.
 * @return ::MW_OK; ::MW_EINVAL for NULL arguments, @p s inactive, or a block past the body's end.
 */
MW_NODISCARD mw_err mwi_coap_block1_sender_msg(const mwi_coap_block1_sender *s, mwi_coap_msg *out);
/**
 * 2.31 Continue came for the current block: the next one becomes current.
 * @return ::MW_OK if there is one; ::MW_EINVAL if @p s is inactive or the body has no more (the
 *         peer asked for a block past the end).
 */
MW_NODISCARD mw_err mwi_coap_block1_sender_next(mwi_coap_block1_sender *s);
/** The transfer is over (answered, refused, or its link dropped): @p s becomes inactive. */
void mwi_coap_block1_sender_stop(mwi_coap_block1_sender *s);

#endif
