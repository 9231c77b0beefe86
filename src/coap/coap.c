/* SPDX-License-Identifier: Apache-2.0 */
/* coap.c -- encode and parse CoAP messages (RFC 7252 3), libcoap doing the option format. */
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include <coap3/coap.h>

#include "coap/coap.h"

#define HEADER_LEN     4
#define PAYLOAD_MARKER 0xFF
#define VERSION        1

struct mwi_coap_parser {
    size_t max_size;
};

/* Why no coap_startup() and no libcoap PDU (libcoap 4.3.1, checked):
 * - coap_startup() only sets up libcoap's clock, PRNG seed, memory pools and TLS backend, none of
 *   which the option functions used here touch; it also reads the clock and guards itself with a
 *   plain int, so calling it from several threads is a data race.
 * - coap_pdu_parse() copies the datagram into the PDU and resizes the PDU to each message's
 *   length, so any message longer than the one before calls realloc() (and after a short one
 *   glibc really shrinks the block): it allocates on the receive path, and rejects a whole
 *   message for an elective option with an odd length, which RFC 7252 5.4.3 says to ignore.
 * So the header and token are checked here and each option is read with coap_opt_parse(), which
 * is bounded by the length it is given, straight from the caller's buffer.
 * The only global state touched is libcoap's log level: coap_opt_parse() logs every malformed
 * option (at LOG_DEBUG), which an attacker could otherwise turn into log spam if the host
 * application raised the level. Lowering it, never raising it, keeps an application's quieter
 * choice. */
#ifdef MW_PORT_POSIX
static atomic_flag coap_quieted = ATOMIC_FLAG_INIT;

static void coap_quiet_logging(void)
{
    if (coap_get_log_level() > LOG_ERR)
        coap_set_log_level(LOG_ERR);
}

/* Once per process, with C11 atomics rather than pthread_once (no threads library on a
 * microcontroller). A second thread that races past the flag before the level is lowered
 * costs at most a debug line: lowering is idempotent. */
static void coap_init_once(void)
{
    if (!atomic_flag_test_and_set(&coap_quieted))
        coap_quiet_logging();
}
#else
/* Without the POSIX port (a microcontroller) medwire calls nothing of libcoap's logging: that
 * is libcoap's coap_debug.c, which brings stdio, strftime and a 2 KB buffer. A device's libcoap
 * is built with its logging compiled out (docs/porting.md). */
static void coap_init_once(void) {}
#endif

void mwi_coap_msg_init(mwi_coap_msg *m)
{
    if (m == NULL)
        return;
    memset(m, 0, sizeof *m);
    m->content_format = -1;
    m->accept = -1;
}

/* ---- encoding ---- */

typedef struct writer {
    uint8_t *out;
    size_t cap;
    size_t pos;
    uint16_t last_opt; /* option numbers are sent as deltas from the previous one (3.1) */
} writer;

static mw_err put_option(writer *w, uint16_t number, const uint8_t *val, size_t len)
{
    /* coap_opt_encode() checks the header and value against the room it is given and writes
     * nothing past it; 0 means the option did not fit. */
    size_t n = coap_opt_encode(w->out + w->pos, w->cap - w->pos, (uint16_t)(number - w->last_opt),
                               val, len);
    if (n == 0)
        return MW_ENOSPC;
    w->pos += n;
    w->last_opt = number;
    return MW_OK;
}

static mw_err put_uint_option(writer *w, uint16_t number, uint32_t value)
{
    uint8_t buf[4];
    /* Shortest form, no leading zero bytes, 0 as the empty string (3.2). */
    unsigned int n = coap_encode_var_safe(buf, sizeof buf, value);
    return put_option(w, number, buf, n);
}

/* The path is sent one Uri-Path option per segment (6.4 step 8); an empty segment would be a
 * different resource ("a//b" is not "a/b"), which medwire never names, so it is a caller bug. */
static mw_err check_path(const char *path)
{
    /* Bounded by hand: strnlen is POSIX, not C11 (newlib hides it from a strict C11 build). */
    size_t len = 0;
    for (; len <= MWI_COAP_MAX_PATH && path[len] != '\0'; len++)
        if (path[len] == '/' && (len == 0 || path[len - 1] == '/'))
            return MW_EINVAL; /* a leading '/' or an empty segment */
    if (len > MWI_COAP_MAX_PATH || (len > 0 && path[len - 1] == '/'))
        return MW_EINVAL;
    return MW_OK;
}

static mw_err put_path(writer *w, const char *path)
{
    const char *seg = path;
    while (*seg != '\0') {
        const char *end = strchr(seg, '/');
        size_t n = end != NULL ? (size_t)(end - seg) : strlen(seg);
        mw_err e = put_option(w, MWI_COAP_OPT_URI_PATH, (const uint8_t *)seg, n);
        if (e != MW_OK)
            return e;
        seg += n;
        if (*seg == '/')
            seg++;
    }
    return MW_OK;
}

static mw_err check_msg(const mwi_coap_msg *m)
{
    if (m->type > MWI_COAP_RST || m->token_len > MWI_COAP_MAX_TOKEN)
        return MW_EINVAL;
    if (m->payload_len > 0 && m->payload == NULL)
        return MW_EINVAL;
    if (m->content_format < -1 || m->content_format > 65535 || m->accept < -1 || m->accept > 65535)
        return MW_EINVAL;
    if (((m->flags & MWI_COAP_F_BLOCK1) != 0 && m->block1 > MWI_COAP_BLOCK_MAX) ||
        ((m->flags & MWI_COAP_F_BLOCK2) != 0 && m->block2 > MWI_COAP_BLOCK_MAX))
        return MW_EINVAL;
    if (check_path(m->uri_path) != MW_OK)
        return MW_EINVAL;
    if (m->code == MWI_COAP_EMPTY) {
        /* 4.1: an Empty message is the 4-byte header and nothing else. */
        unsigned opts = MWI_COAP_F_BLOCK1 | MWI_COAP_F_BLOCK2 | MWI_COAP_F_SIZE1 |
                        MWI_COAP_F_SIZE2 | MWI_COAP_F_MAX_AGE;
        if (m->token_len != 0 || m->payload_len != 0 || m->uri_path[0] != '\0' ||
            m->content_format != -1 || m->accept != -1 || (m->flags & opts) != 0)
            return MW_EINVAL;
    }
    return MW_OK;
}

static mw_err encode_body(const mwi_coap_msg *m, writer *w)
{
    mw_err e = put_path(w, m->uri_path);
    if (e == MW_OK && m->content_format >= 0)
        e = put_uint_option(w, MWI_COAP_OPT_CONTENT_FORMAT, (uint32_t)m->content_format);
    if (e == MW_OK && (m->flags & MWI_COAP_F_MAX_AGE) != 0)
        e = put_uint_option(w, MWI_COAP_OPT_MAX_AGE, m->max_age);
    if (e == MW_OK && m->accept >= 0)
        e = put_uint_option(w, MWI_COAP_OPT_ACCEPT, (uint32_t)m->accept);
    if (e == MW_OK && (m->flags & MWI_COAP_F_BLOCK2) != 0)
        e = put_uint_option(w, MWI_COAP_OPT_BLOCK2, m->block2);
    if (e == MW_OK && (m->flags & MWI_COAP_F_BLOCK1) != 0)
        e = put_uint_option(w, MWI_COAP_OPT_BLOCK1, m->block1);
    if (e == MW_OK && (m->flags & MWI_COAP_F_SIZE2) != 0)
        e = put_uint_option(w, MWI_COAP_OPT_SIZE2, m->size2);
    if (e == MW_OK && (m->flags & MWI_COAP_F_SIZE1) != 0)
        e = put_uint_option(w, MWI_COAP_OPT_SIZE1, m->size1);
    if (e != MW_OK || m->payload_len == 0)
        return e;
    /* 3: the marker only precedes a non-empty payload. */
    if (w->cap - w->pos < 1 || w->cap - w->pos - 1 < m->payload_len)
        return MW_ENOSPC;
    w->out[w->pos++] = PAYLOAD_MARKER;
    memcpy(w->out + w->pos, m->payload, m->payload_len);
    w->pos += m->payload_len;
    return MW_OK;
}

mw_err mwi_coap_encode(const mwi_coap_msg *m, uint8_t *out, size_t cap, size_t *out_len)
{
    writer w;
    mw_err e;

    if (out_len != NULL)
        *out_len = 0;
    if (m == NULL || out == NULL || out_len == NULL)
        return MW_EINVAL;
    e = check_msg(m);
    if (e != MW_OK)
        return e;
    coap_init_once();
    if (cap < (size_t)HEADER_LEN + m->token_len)
        return MW_ENOSPC;
    /* 3: Ver (2 bits) | T (2) | TKL (4), Code, Message ID in network byte order. */
    out[0] = (uint8_t)((VERSION << 6) | (m->type << 4) | m->token_len);
    out[1] = m->code;
    out[2] = (uint8_t)(m->mid >> 8);
    out[3] = (uint8_t)(m->mid & 0xFF);
    if (m->token_len > 0)
        memcpy(out + HEADER_LEN, m->token, m->token_len);
    w.out = out;
    w.cap = cap;
    w.pos = (size_t)HEADER_LEN + m->token_len;
    w.last_opt = 0;
    e = encode_body(m, &w);
    if (e != MW_OK)
        return e;
    *out_len = w.pos;
    return MW_OK;
}

/* ---- parsing ---- */

mw_err mwi_coap_parser_create(size_t max_size, mwi_coap_parser **out)
{
    mwi_coap_parser *p;

    if (out == NULL)
        return MW_EINVAL;
    *out = NULL;
    if (max_size < HEADER_LEN)
        return MW_EINVAL;
    p = calloc(1, sizeof *p);
    if (p == NULL)
        return MW_ENOMEM;
    p->max_size = max_size;
    coap_init_once();
    *out = p;
    return MW_OK;
}

void mwi_coap_parser_destroy(mwi_coap_parser **p)
{
    if (p == NULL || *p == NULL)
        return;
    free(*p);
    *p = NULL;
}

/* Per-message parse state: which options were seen, for the repeat rule (5.4.5), and how much of
 * uri_path is used. */
typedef struct reader {
    mwi_coap_msg *m;
    size_t path_len;
    bool path_seen;
    uint32_t seen; /* bit per known non-repeatable option, see option_rule_of() */
} reader;

/* 5.4.1: the option number's low bit says whether it is critical. */
static bool is_critical(uint16_t number)
{
    return (number & 1u) != 0;
}

/* An option the codec does not understand in this message: critical ones are reported, the
 * first one wins; elective ones are silently ignored (5.4.1). */
static void not_understood(reader *rd, uint16_t number)
{
    if (is_critical(number) && rd->m->unknown_critical == 0)
        rd->m->unknown_critical = number;
}

/* The options medwire knows, with their value lengths (RFC 7252 5.10; RFC 7959 2.1 and 4),
 * whether they may repeat (Uri-Path, Uri-Query), and for Block1/2 and Size1/2 the flag that says
 * the message holds the value (flagged_field). */
typedef struct option_rule {
    uint16_t number;
    uint8_t min_len, max_len;
    bool repeatable;
    uint8_t flag; /* MWI_COAP_F_*, 0: none */
} option_rule;

static const option_rule KNOWN_OPTIONS[] = {
    {MWI_COAP_OPT_URI_HOST, 1, 255, false, 0},
    {MWI_COAP_OPT_URI_PORT, 0, 2, false, 0},
    {MWI_COAP_OPT_URI_PATH, 0, 255, true, 0},
    {MWI_COAP_OPT_CONTENT_FORMAT, 0, 2, false, 0},
    {MWI_COAP_OPT_MAX_AGE, 0, 4, false, MWI_COAP_F_MAX_AGE},
    {MWI_COAP_OPT_URI_QUERY, 0, 255, true, 0},
    {MWI_COAP_OPT_ACCEPT, 0, 2, false, 0},
    {MWI_COAP_OPT_BLOCK2, 0, 3, false, MWI_COAP_F_BLOCK2},
    {MWI_COAP_OPT_BLOCK1, 0, 3, false, MWI_COAP_F_BLOCK1},
    {MWI_COAP_OPT_SIZE2, 0, 4, false, MWI_COAP_F_SIZE2},
    {MWI_COAP_OPT_SIZE1, 0, 4, false, MWI_COAP_F_SIZE1},
};
_Static_assert(sizeof KNOWN_OPTIONS / sizeof KNOWN_OPTIONS[0] <= 32, "a seen bit each");

/* The rule of @p number and its index (its bit in reader.seen), or NULL for an unknown option. */
static const option_rule *option_rule_of(uint16_t number, uint32_t *out_bit)
{
    for (size_t i = 0; i < sizeof KNOWN_OPTIONS / sizeof KNOWN_OPTIONS[0]; i++) {
        if (KNOWN_OPTIONS[i].number == number) {
            *out_bit = KNOWN_OPTIONS[i].repeatable ? 0 : 1u << i;
            return &KNOWN_OPTIONS[i];
        }
    }
    *out_bit = 0;
    return NULL;
}

/* The field of @p m that the option of @p flag fills. */
static uint32_t *flagged_field(mwi_coap_msg *m, uint8_t flag)
{
    return flag == MWI_COAP_F_BLOCK1   ? &m->block1
           : flag == MWI_COAP_F_BLOCK2 ? &m->block2
           : flag == MWI_COAP_F_SIZE1  ? &m->size1
           : flag == MWI_COAP_F_SIZE2  ? &m->size2
                                       : &m->max_age;
}

static void add_path_segment(reader *rd, const uint8_t *val, size_t len)
{
    mwi_coap_msg *m = rd->m;
    size_t need = len + (rd->path_seen ? 1u : 0u);

    if ((m->flags & MWI_COAP_F_PATH_UNUSABLE) != 0)
        return;
    /* A '/' or NUL inside a segment cannot be told apart from a separator or the end of the
     * string once joined: "v1%2Fbatch" or "v1/batch\0x" must not reach the "v1/batch" handler. */
    if (memchr(val, '/', len) != NULL || memchr(val, '\0', len) != NULL ||
        need > MWI_COAP_MAX_PATH - rd->path_len) {
        m->flags |= MWI_COAP_F_PATH_UNUSABLE;
        m->uri_path[0] = '\0';
        return;
    }
    if (rd->path_seen)
        m->uri_path[rd->path_len++] = '/';
    memcpy(m->uri_path + rd->path_len, val, len);
    rd->path_len += len;
    m->uri_path[rd->path_len] = '\0';
    rd->path_seen = true;
}

static void take_option(reader *rd, uint16_t number, const uint8_t *val, size_t len)
{
    mwi_coap_msg *m = rd->m;
    uint32_t bit;
    const option_rule *rule = option_rule_of(number, &bit);

    /* 5.4.3 and 5.4.5: a known option with a bad length, or a supernumerary occurrence, is
     * treated like an unrecognised one. */
    if ((rule != NULL && (len < rule->min_len || len > rule->max_len)) || (rd->seen & bit) != 0) {
        not_understood(rd, number);
        return;
    }
    rd->seen |= bit;
    if (rule != NULL && rule->flag != 0) {
        *flagged_field(m, rule->flag) = coap_decode_var_bytes(val, len);
        m->flags |= rule->flag;
        return;
    }
    switch (number) {
    case MWI_COAP_OPT_URI_PATH:
        add_path_segment(rd, val, len);
        break;
    case MWI_COAP_OPT_CONTENT_FORMAT:
        m->content_format = (int32_t)coap_decode_var_bytes(val, len);
        break;
    case MWI_COAP_OPT_ACCEPT:
        m->accept = (int32_t)coap_decode_var_bytes(val, len);
        break;
    case MWI_COAP_OPT_URI_HOST:
    case MWI_COAP_OPT_URI_PORT:
    case MWI_COAP_OPT_URI_QUERY:
        /* medwire serves one origin with no queries; these are understood and have no effect. */
        break;
    default:
        not_understood(rd, number);
        break;
    }
}

/* Walks the options and payload of buf[0..len), which starts right after the token. */
static mw_err parse_options(reader *rd, const uint8_t *buf, size_t len)
{
    size_t pos = 0;
    uint32_t number = 0;

    while (pos < len) {
        coap_option_t opt;
        size_t n;

        if (buf[pos] == PAYLOAD_MARKER) {
            pos++;
            /* 3: a marker followed by a zero-length payload MUST be a format error. */
            if (pos == len)
                return MW_ECOAP_MALFORMED;
            rd->m->payload = buf + pos;
            rd->m->payload_len = len - pos;
            return MW_OK;
        }
        /* Returns 0 for a reserved nibble 15 that is not the marker (3.1) and for an option
         * whose extended bytes or value run past len; it reads only buf[pos..len). */
        n = coap_opt_parse(buf + pos, len - pos, &opt);
        if (n == 0)
            return MW_ECOAP_MALFORMED;
        /* libcoap keeps the delta in 16 bits: the 2-byte extended form (nibble 14) can say up
         * to 65804, which wraps below its own minimum of 269 instead of failing. */
        if ((buf[pos] >> 4) == 14 && opt.delta < 269)
            return MW_ECOAP_MALFORMED;
        number += opt.delta;
        if (number > UINT16_MAX)
            return MW_ECOAP_MALFORMED;
        take_option(rd, (uint16_t)number, opt.value, opt.length);
        pos += n;
    }
    return MW_OK;
}

mw_err mwi_coap_parse(mwi_coap_parser *p, const uint8_t *buf, size_t len, mwi_coap_msg *out)
{
    reader rd;
    size_t tkl;

    if (p == NULL || buf == NULL || out == NULL)
        return MW_EINVAL;
    if (len > p->max_size)
        return MW_ETOOBIG;
    coap_init_once();
    mwi_coap_msg_init(out);
    if (len < HEADER_LEN)
        return MW_ECOAP_MALFORMED;
    /* 3: unknown versions MUST be silently ignored, which the caller does for this error. */
    if ((buf[0] >> 6) != VERSION)
        return MW_ECOAP_MALFORMED;
    out->type = (uint8_t)((buf[0] >> 4) & 0x03);
    tkl = buf[0] & 0x0Fu;
    out->code = buf[1];
    out->mid = (uint16_t)(((unsigned)buf[2] << 8) | buf[3]);
    /* 3: TKL 9..15 are reserved and MUST be a format error. */
    if (tkl > MWI_COAP_MAX_TOKEN || tkl > len - HEADER_LEN)
        return MW_ECOAP_MALFORMED;
    out->token_len = (uint8_t)tkl;
    memcpy(out->token, buf + HEADER_LEN, tkl);

    if (out->code == MWI_COAP_EMPTY) {
        /* 4.1: nothing may follow the Message ID of an Empty message; 4.3: a NON is never
         * Empty. */
        if (len != HEADER_LEN || out->type == MWI_COAP_NON)
            return MW_ECOAP_MALFORMED;
        return MW_OK;
    }
    /* 4.2: an RST MUST be Empty, an ACK carries a response or nothing. */
    if (out->type == MWI_COAP_RST)
        return MW_ECOAP_MALFORMED;
    if (out->type == MWI_COAP_ACK && MWI_COAP_IS_REQUEST(out->code))
        return MW_ECOAP_MALFORMED;

    rd.m = out;
    rd.path_len = 0;
    rd.path_seen = false;
    rd.seen = 0;
    return parse_options(&rd, buf + HEADER_LEN + tkl, len - HEADER_LEN - tkl);
}

/* ---- replies ---- */

mw_err mwi_coap_response_for(const mwi_coap_msg *req, uint8_t code, mwi_coap_msg *resp)
{
    mwi_coap_msg r;

    if (req == NULL || resp == NULL)
        return MW_EINVAL;
    /* 5.2.1: only a CON request can be answered in its ACK. */
    if (req->type != MWI_COAP_CON || !MWI_COAP_IS_REQUEST(req->code) ||
        !MWI_COAP_IS_RESPONSE(code) || req->token_len > MWI_COAP_MAX_TOKEN)
        return MW_EINVAL;
    mwi_coap_msg_init(&r);
    r.type = MWI_COAP_ACK;
    r.code = code;
    r.mid = req->mid;
    /* 5.3.2: the response echoes the token; 4.2: the ACK echoes the Message ID. */
    r.token_len = req->token_len;
    memcpy(r.token, req->token, req->token_len);
    *resp = r;
    return MW_OK;
}

/* An empty message of @p type answering message id @p mid (an ACK or RST answers by id alone).
 * The id is passed by value: @p out may be the message answered. */
static void empty_answer(mwi_coap_msg *out, uint8_t type, uint16_t mid)
{
    mwi_coap_msg_init(out);
    out->type = type;
    out->mid = mid;
}

mw_err mwi_coap_make_ack(const mwi_coap_msg *con, mwi_coap_msg *ack)
{
    if (con == NULL || ack == NULL || con->type != MWI_COAP_CON)
        return MW_EINVAL;
    empty_answer(ack, MWI_COAP_ACK, con->mid);
    return MW_OK;
}

mw_err mwi_coap_make_rst(const mwi_coap_msg *msg, mwi_coap_msg *rst)
{
    if (msg == NULL || rst == NULL || (msg->type != MWI_COAP_CON && msg->type != MWI_COAP_NON))
        return MW_EINVAL;
    empty_answer(rst, MWI_COAP_RST, msg->mid);
    return MW_OK;
}

mw_err mwi_coap_encode_empty(const mwi_coap_msg *to, uint8_t type, uint8_t *out, size_t cap,
                             size_t *out_len)
{
    mwi_coap_msg e;
    mw_err r;

    if (out_len == NULL)
        return MW_EINVAL;
    *out_len = 0;
    if (type == MWI_COAP_ACK)
        r = mwi_coap_make_ack(to, &e);
    else if (type == MWI_COAP_RST)
        r = mwi_coap_make_rst(to, &e);
    else
        r = MW_EINVAL;
    return r != MW_OK ? r : mwi_coap_encode(&e, out, cap, out_len);
}

mw_err mwi_coap_read_header(const uint8_t *buf, size_t len, mwi_coap_msg *out)
{
    if (buf == NULL || out == NULL)
        return MW_EINVAL;
    mwi_coap_msg_init(out);
    if (len < HEADER_LEN || (buf[0] >> 6) != VERSION)
        return MW_ECOAP_MALFORMED;
    out->type = (uint8_t)((buf[0] >> 4) & 0x03);
    out->code = buf[1];
    out->mid = (uint16_t)(((unsigned)buf[2] << 8) | buf[3]);
    return MW_OK;
}
