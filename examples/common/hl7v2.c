/* SPDX-License-Identifier: Apache-2.0 */
/* hl7v2.c -- MLLP deframing, HL7 v2 field splitting, the ORU^R01/ORU^R40 reader of the bridge
 * and the acknowledgement it answers: pure functions over the caller's buffers. */
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "hl7v2.h"

/* ---- MLLP ---- */

enum {
    DF_OUTSIDE = 0, /* between frames: everything but a start block is garbage */
    DF_INSIDE,      /* in a frame that still fits */
    DF_OVER,        /* in a frame that no longer fits: its bytes are counted, not kept */
    DF_AFTER_EB,    /* an end block was the last byte: a CR here belongs to it */
};

void hl7v2_deframer_init(hl7v2_deframer_t *d, char *buf, size_t cap)
{
    memset(d, 0, sizeof *d);
    d->buf = buf;
    d->cap = cap;
    d->state = DF_OUTSIDE;
}

size_t hl7v2_deframer_feed(hl7v2_deframer_t *d, const uint8_t *in, size_t n, hl7v2_frame_t *out,
                           bool *got)
{
    *got = false;
    for (size_t i = 0; i < n; i++) {
        uint8_t c = in[i];
        switch (d->state) {
        case DF_AFTER_EB:
            d->state = DF_OUTSIDE;
            if (c == HL7V2_MLLP_CR)
                break;
            /* An end block without its CR: the byte is the next frame's or garbage. */
            /* fall through */
        case DF_OUTSIDE:
            if (c == HL7V2_MLLP_SB) {
                d->state = DF_INSIDE;
                d->len = 0;
                d->total = 0;
            } else {
                d->garbage++;
            }
            break;
        case DF_INSIDE:
        case DF_OVER:
            if (c == HL7V2_MLLP_SB) {
                /* The sender gave up on the frame and started another. */
                d->garbage += d->total + 1;
                d->state = DF_INSIDE;
                d->len = 0;
                d->total = 0;
                break;
            }
            if (c == HL7V2_MLLP_EB) {
                out->kind = d->state == DF_OVER ? HL7V2_FRAME_OVERSIZED : HL7V2_FRAME_MESSAGE;
                out->msg = d->buf;
                out->len = d->len;
                out->total = d->total;
                if (d->state == DF_OVER)
                    d->oversized++;
                else
                    d->frames++;
                *got = true;
                d->state = DF_AFTER_EB;
                if (i + 1 < n && in[i + 1] == HL7V2_MLLP_CR) {
                    d->state = DF_OUTSIDE;
                    i++;
                }
                return i + 1;
            }
            d->total++;
            if (d->len < d->cap)
                d->buf[d->len++] = (char)c;
            else
                d->state = DF_OVER;
            break;
        default:
            d->state = DF_OUTSIDE;
            break;
        }
    }
    return n;
}

size_t hl7v2_frame(const char *msg, size_t len, uint8_t *out, size_t cap)
{
    if (cap < 3 || len > cap - 3)
        return 0;
    out[0] = HL7V2_MLLP_SB;
    if (len > 0)
        memcpy(out + 1, msg, len);
    out[len + 1] = HL7V2_MLLP_EB;
    out[len + 2] = HL7V2_MLLP_CR;
    return len + 3;
}

/* ---- Segments and fields ---- */

bool hl7v2_next_segment(const char *msg, size_t len, size_t *pos, hl7v2_span_t *out)
{
    size_t p = *pos;
    while (p < len && (msg[p] == '\r' || msg[p] == '\n'))
        p++;
    if (p >= len) {
        *pos = len;
        return false;
    }
    size_t e = p;
    while (e < len && msg[e] != '\r' && msg[e] != '\n')
        e++;
    out->p = msg + p;
    out->n = e - p;
    *pos = e;
    return true;
}

hl7v2_span_t hl7v2_piece(hl7v2_span_t s, char sep, size_t idx)
{
    hl7v2_span_t r = {s.p, 0};
    if (s.n == 0)
        return r; /* an empty span may be {NULL, 0}: no arithmetic on it */
    size_t start = 0;
    for (size_t k = 0; k < idx; k++) {
        const char *q = s.n > start ? memchr(s.p + start, sep, s.n - start) : NULL;
        if (q == NULL) {
            r.p = s.p + s.n;
            return r;
        }
        start = (size_t)(q - s.p) + 1;
    }
    const char *q = s.n > start ? memchr(s.p + start, sep, s.n - start) : NULL;
    r.p = s.p + start;
    r.n = (q ? (size_t)(q - s.p) : s.n) - start;
    return r;
}

bool hl7v2_span_is(hl7v2_span_t s, const char *lit)
{
    size_t n = strlen(lit);
    return s.n == n && (n == 0 || memcmp(s.p, lit, n) == 0);
}

static bool is_alnum(char c)
{
    return (c >= '0' && c <= '9') || (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z');
}

bool hl7v2_read_enc(hl7v2_span_t msh, hl7v2_enc_t *out)
{
    if (msh.n < 8 || memcmp(msh.p, "MSH", 3) != 0)
        return false;
    char f = msh.p[3];
    const char *p = msh.p + 4, *end = msh.p + msh.n;
    const char *q = memchr(p, f, (size_t)(end - p));
    size_t k = q ? (size_t)(q - p) : (size_t)(end - p);
    if (k != 4 && k != 5)
        return false;
    char d[6] = {f, p[0], p[1], p[2], p[3], k == 5 ? p[4] : f};
    for (size_t i = 0; i < 6; i++) {
        if (is_alnum(d[i]) || (unsigned char)d[i] < 0x21 || (unsigned char)d[i] > 0x7e)
            return false;
        for (size_t j = i + 1; j < (k == 5 ? 6u : 5u); j++)
            if (d[i] == d[j])
                return false;
    }
    *out = (hl7v2_enc_t){f, d[1], d[2], d[3], d[4]};
    return true;
}

hl7v2_span_t hl7v2_field(hl7v2_span_t seg, const hl7v2_enc_t *enc, size_t n)
{
    bool msh = seg.n >= 3 && memcmp(seg.p, "MSH", 3) == 0;
    if (msh) {
        if (n == 1)
            return (hl7v2_span_t){seg.p + 3, seg.n > 3 ? 1u : 0u};
        if (n == 0)
            return (hl7v2_span_t){seg.p, seg.n < 3 ? seg.n : 3u};
        return hl7v2_piece(seg, enc->field, n - 1);
    }
    return hl7v2_piece(seg, enc->field, n);
}

static int hex_digit(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    return -1;
}

bool hl7v2_unescape(hl7v2_span_t s, const hl7v2_enc_t *enc, char *out, size_t cap)
{
    if (cap == 0)
        return false;
    size_t o = 0;
    out[0] = '\0';
    for (size_t i = 0; i < s.n; i++) {
        char c = s.p[i];
        char put[2];
        size_t np = 1;
        put[0] = c;
        if (c == enc->esc) {
            const char *q = memchr(s.p + i + 1, enc->esc, s.n - i - 1);
            if (q == NULL)
                return false;
            hl7v2_span_t seq = {s.p + i + 1, (size_t)(q - (s.p + i + 1))};
            i = (size_t)(q - s.p);
            np = 0;
            if (seq.n == 1) {
                np = 1;
                switch (seq.p[0]) {
                case 'F':
                    put[0] = enc->field;
                    break;
                case 'S':
                    put[0] = enc->comp;
                    break;
                case 'T':
                    put[0] = enc->sub;
                    break;
                case 'R':
                    put[0] = enc->rep;
                    break;
                case 'E':
                    put[0] = enc->esc;
                    break;
                case 'H':
                case 'N':
                    np = 0; /* highlighting carries no text */
                    break;
                default:
                    return false;
                }
            } else if (seq.n >= 3 && seq.p[0] == 'X' && (seq.n - 1) % 2 == 0) {
                for (size_t k = 1; k < seq.n; k += 2) {
                    int hi = hex_digit(seq.p[k]), lo = hex_digit(seq.p[k + 1]);
                    if (hi < 0 || lo < 0 || (hi == 0 && lo == 0))
                        return false;
                    if (o + 1 >= cap)
                        return false;
                    out[o++] = (char)(hi * 16 + lo);
                }
            } else {
                return false;
            }
        }
        for (size_t k = 0; k < np; k++) {
            if (o + 1 >= cap) {
                out[o] = '\0';
                return false;
            }
            out[o++] = put[k];
        }
    }
    out[o] = '\0';
    return true;
}

/* Days from 1970-01-01 to the civil date y-m-d (proleptic Gregorian), for y >= 1970. */
static int64_t days_from_civil(int64_t y, unsigned m, unsigned d)
{
    y -= m <= 2;
    int64_t era = y / 400;
    unsigned yoe = (unsigned)(y - era * 400);
    unsigned mp = m > 2 ? m - 3 : m + 9;
    unsigned doy = (153 * mp + 2) / 5 + d - 1;
    unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + (int64_t)doe - 719468;
}

static bool leap(unsigned y)
{
    return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
}

/* @p n decimal digits at @p p as a number; false if any is not a digit. */
static bool digits(const char *p, size_t n, unsigned *out)
{
    unsigned v = 0;
    for (size_t i = 0; i < n; i++) {
        if (p[i] < '0' || p[i] > '9')
            return false;
        v = v * 10 + (unsigned)(p[i] - '0');
    }
    *out = v;
    return true;
}

bool hl7v2_parse_dtm(hl7v2_span_t s, uint64_t *out_ms)
{
    /* The offset, if any, is the last five characters. */
    size_t body = s.n;
    int offset_min = 0;
    for (size_t i = 0; i < s.n; i++) {
        if (s.p[i] == '+' || s.p[i] == '-') {
            unsigned hh, mm;
            if (s.n - i != 5 || !digits(s.p + i + 1, 2, &hh) || !digits(s.p + i + 3, 2, &mm) ||
                hh > 23 || mm > 59)
                return false;
            offset_min = (int)(hh * 60 + mm) * (s.p[i] == '-' ? -1 : 1);
            body = i;
            break;
        }
    }
    size_t whole = body;
    const char *dot = memchr(s.p, '.', body);
    if (dot != NULL)
        whole = (size_t)(dot - s.p);
    if (whole < 4 || whole > 14 || whole % 2 != 0)
        return false;
    unsigned f[6] = {0, 1, 1, 0, 0, 0};
    if (!digits(s.p, 4, &f[0]))
        return false;
    for (size_t k = 1; 4 + 2 * k <= whole; k++)
        if (!digits(s.p + 2 + 2 * k, 2, &f[k]))
            return false;
    unsigned ms = 0;
    if (dot != NULL) {
        size_t nf = body - whole - 1;
        unsigned frac;
        /* Fractions of a second only after the seconds, 1 to 4 digits (HL7 DTM). */
        if (whole != 14 || nf < 1 || nf > 4 || !digits(dot + 1, nf, &frac))
            return false;
        static const unsigned scale[] = {1, 100, 10, 1, 1};
        ms = nf == 4 ? frac / 10 : frac * scale[nf];
    }
    static const unsigned mdays[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    if (f[1] < 1 || f[1] > 12 || f[2] < 1 ||
        f[2] > mdays[f[1] - 1] + (f[1] == 2 && leap(f[0]) ? 1u : 0u) || f[3] > 23 || f[4] > 59 ||
        f[5] > 59)
        return false;
    int64_t t = days_from_civil(f[0], f[1], f[2]) * 86400 + f[3] * 3600 + f[4] * 60 + f[5];
    t -= (int64_t)offset_min * 60;
    if (t < 0)
        return false;
    *out_ms = (uint64_t)t * 1000u + ms;
    return true;
}

bool hl7v2_parse_decimal(hl7v2_span_t s, int64_t *out_mantissa, int32_t *out_exponent)
{
    size_t i = 0;
    bool neg = false;
    if (i < s.n && (s.p[i] == '+' || s.p[i] == '-'))
        neg = s.p[i++] == '-';
    uint64_t mag = 0;
    size_t sig = 0, ndigits = 0;
    int64_t frac = 0;
    bool point = false;
    for (; i < s.n; i++) {
        char c = s.p[i];
        if (c == '.' && !point) {
            point = true;
            continue;
        }
        if (c < '0' || c > '9')
            return false;
        ndigits++;
        if (point)
            frac++;
        if (mag == 0 && c == '0')
            continue; /* a leading zero is not significant */
        if (++sig > 18)
            return false;
        mag = mag * 10 + (uint64_t)(c - '0');
    }
    if (ndigits == 0 || frac > 128)
        return false;
    *out_mantissa = neg ? -(int64_t)mag : (int64_t)mag;
    *out_exponent = (int32_t)-frac;
    return true;
}

/* ---- Reading ORU messages ---- */

/* Fills @p err and returns -1: the one way the reader refuses. */
__attribute__((format(printf, 7, 8))) static int fail(hl7v2_error_t *err, const char *ack,
                                                      unsigned code, const char *seg, unsigned seq,
                                                      unsigned field, const char *fmt, ...)
{
    char text[sizeof err->text];
    va_list ap;
    va_start(ap, fmt);
    /* ap is started above: clang-tidy 14's analyzer loses that when it follows this function
     * into its many callers. */
    (void)vsnprintf(text, sizeof text, fmt, ap); /* NOLINT(clang-analyzer-valist.Uninitialized) */
    va_end(ap);
    memset(err, 0, sizeof *err);
    memcpy(err->text, text, sizeof text);
    snprintf(err->ack_code, sizeof err->ack_code, "%s", ack);
    err->err_code = code;
    if (seg != NULL && field > 0)
        snprintf(err->location, sizeof err->location, "%s^%u^%u", seg, seq, field);
    else if (seg != NULL)
        snprintf(err->location, sizeof err->location, "%s^%u", seg, seq);
    return -1;
}

/* A short, printable rendering of raw bytes from the message for an error text. */
static const char *show(hl7v2_span_t s, char *buf, size_t cap)
{
    size_t o = 0;
    for (size_t i = 0; i < s.n && o + 1 < cap; i++) {
        unsigned char c = (unsigned char)s.p[i];
        buf[o++] = c >= 0x20 && c < 0x7f ? (char)c : '?';
    }
    buf[o] = '\0';
    return buf;
}

static bool printable(const char *s, unsigned char lo)
{
    for (; *s; s++)
        if ((unsigned char)*s < lo || (unsigned char)*s > 0x7e)
            return false;
    return true;
}

/* The PCD-04 facets of an alert (IEEE 11073-10101, partition 1) that hl7.c and monitors send as
 * OBX of their own after the event's OBX. */
#define FACET_PHASE          68481u
#define FACET_STATE          68482u
#define FACET_PRIORITY       68484u
#define FACET_TYPE           68485u
#define MDC_PARTITION_EVENTS 3u

/* MDC units (partition 4, "MDC_DIM_*") of the terms in include/medwire/terms.h, as UCUM. */
static const struct {
    uint32_t code;
    const char *ref_id, *ucum;
} MDC_UNITS[] = {
    {262688u, "MDC_DIM_PERCENT", "%"},           {263762u, "MDC_DIM_MILLI_L", "mL"},
    {264672u, "MDC_DIM_PER_MIN", "/min"},        {264864u, "MDC_DIM_BEAT_PER_MIN", "/min"},
    {264896u, "MDC_DIM_PULS_PER_MIN", "/min"},   {264928u, "MDC_DIM_RESP_PER_MIN", "/min"},
    {265266u, "MDC_DIM_MILLI_L_PER_HR", "mL/h"}, {266016u, "MDC_DIM_MMHG", "mm[Hg]"},
    {266048u, "MDC_DIM_CM_H2O", "cm[H2O]"},      {268192u, "MDC_DIM_DEGC", "Cel"},
};

/* What the reader keeps while it walks the segments. */
typedef struct reader {
    const char *msg;
    size_t len;
    hl7v2_enc_t enc;
    hl7v2_span_t msh;
    hl7v2_span_t obr_time; /* OBR-7 of the OBR the OBXs belong to */
    unsigned obr_seq;
    bool test_data; /* MSH-11 T: a training message */
    bool r40;
    hl7v2_item_t *alarm;   /* the last alarm, which PCD-04 facets describe */
    hl7v2_span_t alarm_at; /* its OBX-4 without the last level */
    bool alarm_state_set;
} reader;

/* @p s unescaped into @p out, or an AE naming where. */
static int text_of(reader *r, hl7v2_span_t s, char *out, size_t cap, hl7v2_error_t *err,
                   const char *seg, unsigned seq, unsigned field)
{
    if (!hl7v2_unescape(s, &r->enc, out, cap))
        return fail(err, "AE", HL7V2_E_DATA_TYPE, seg, seq, field,
                    "%s-%u: a bad escape sequence or longer than %zu bytes; send it shorter or "
                    "escaped as HL7 2.7.4 says",
                    seg, field, cap - 1);
    return 0;
}

static hl7v2_span_t comp(const reader *r, hl7v2_span_t field, size_t idx)
{
    hl7v2_span_t first = hl7v2_piece(field, r->enc.rep, 0);
    return hl7v2_piece(first, r->enc.comp, idx);
}

/* The MDC code of an OBX-3, from the code system MDC or through the LOINC of the terms table.
 * 1: found; 0: a coding system or a LOINC code not known here (@p what says which). */
static int code_of(const reader *r, hl7v2_span_t cwe, uint32_t *out, char *what, size_t wcap)
{
    /* The CWE's triplet, then its alternate (components 4 to 6). */
    for (size_t base = 0; base <= 3; base += 3) {
        char id[32], sys[16];
        hl7v2_span_t ids = comp(r, cwe, base), syss = comp(r, cwe, base + 2);
        if (ids.n == 0)
            continue;
        if (!hl7v2_unescape(ids, &r->enc, id, sizeof id) ||
            !hl7v2_unescape(syss, &r->enc, sys, sizeof sys)) {
            show(ids, what, wcap);
            continue;
        }
        if (strcmp(sys, "MDC") == 0) {
            uint64_t v = 0;
            size_t n = strlen(id);
            bool ok = n > 0 && n <= 10;
            for (size_t i = 0; ok && i < n; i++) {
                ok = id[i] >= '0' && id[i] <= '9';
                v = v * 10 + (uint64_t)(id[i] - '0');
            }
            if (ok && v <= UINT32_MAX) {
                *out = (uint32_t)v;
                return 1;
            }
        } else if (strcmp(sys, "LN") == 0) {
            /* A method-specific LOINC code names one term; a general one the first that has it. */
            for (int pass = 0; pass < 2; pass++) {
                for (size_t i = 0;; i++) {
                    const mw_term_t *t = mw_term_at(i);
                    if (t == NULL)
                        break;
                    const char *l = pass == 0 ? t->loinc_method : t->loinc;
                    if (l != NULL && strcmp(l, id) == 0) {
                        *out = t->mdc_code;
                        return 1;
                    }
                }
            }
        }
        snprintf(what, wcap, "%s^%s", id, sys);
    }
    return 0;
}

/* The UCUM unit of an OBX-6: UCUM itself, a bare unit medwire knows, or an MDC unit. */
static bool unit_of(const reader *r, hl7v2_span_t cwe, char *out, size_t cap)
{
    char id[32], text[48], sys[16];
    if (!hl7v2_unescape(comp(r, cwe, 0), &r->enc, id, sizeof id) ||
        !hl7v2_unescape(comp(r, cwe, 1), &r->enc, text, sizeof text) ||
        !hl7v2_unescape(comp(r, cwe, 2), &r->enc, sys, sizeof sys))
        return false;
    if (strcmp(sys, "MDC") == 0) {
        for (size_t i = 0; i < sizeof MDC_UNITS / sizeof MDC_UNITS[0]; i++) {
            char num[16];
            snprintf(num, sizeof num, "%" PRIu32, MDC_UNITS[i].code);
            if (strcmp(id, num) == 0 || (id[0] == '\0' && strcmp(text, MDC_UNITS[i].ref_id) == 0)) {
                snprintf(out, cap, "%s", MDC_UNITS[i].ucum);
                return true;
            }
        }
        return false;
    }
    bool known = strcmp(sys, "UCUM") == 0;
    if (sys[0] == '\0') {
        /* A bare unit is taken only when it is one medwire's terms use: "mmHg" or "bpm" are not
         * UCUM, and guessing what a monitor meant is not the bridge's to do. */
        for (size_t i = 0; !known; i++) {
            const mw_term_t *t = mw_term_at(i);
            if (t == NULL)
                break;
            known = t->ucum[0] != '\0' && strcmp(t->ucum, id) == 0;
        }
    }
    /* UCUM has no spaces and medwire's units are printable ASCII (codec rule). */
    if (!known || id[0] == '\0' || strlen(id) >= cap || !printable(id, 0x21))
        return false;
    snprintf(out, cap, "%s", id);
    return true;
}

/* Observation status from OBX-11 (HL7 table 0085). 1: the status; 0: the OBX carries no result
 * (I, N, O); -1: a status medwire cannot carry. */
static int status_of(hl7v2_span_t s, bool test_data, mw_meas_status *out)
{
    char c = s.n == 1 ? s.p[0] : (s.n == 0 ? 'F' : '?');
    switch (c) {
    case 'F': /* final */
    case 'C': /* a correction: the corrected value is the one to keep */
    case 'R': /* entered, not verified: how monitors and hl7.c send live readings */
    case 'U': /* changed to final */
    case 'V': /* verified */
    case 'A': /* amended */
    case 'B': /* appended */
        *out = test_data ? MW_MEAS_TEST_DATA : MW_MEAS_VALID;
        return 1;
    case 'P': /* preliminary */
    case 'S': /* partial */
        *out = test_data ? MW_MEAS_TEST_DATA : MW_MEAS_QUESTIONABLE;
        return 1;
    case 'X': /* results cannot be obtained */
        *out = MW_MEAS_UNAVAILABLE;
        return 1;
    case 'I':
    case 'N':
    case 'O':
        return 0;
    default: /* D (delete) and W (wrong): medwire has no way to withdraw what it sent */
        return -1;
    }
}

/* The item's time: OBX-14, else the OBR's OBR-7, else MSH-7; 0 ("now") when none has one. */
static int time_of(reader *r, hl7v2_span_t obx14, unsigned obx_seq, uint64_t *out,
                   hl7v2_error_t *err)
{
    struct {
        hl7v2_span_t s;
        const char *seg;
        unsigned seq, field;
    } c[] = {{obx14, "OBX", obx_seq, 14},
             {r->obr_time, "OBR", r->obr_seq, 7},
             {hl7v2_field(r->msh, &r->enc, 7), "MSH", 1, 7}};
    *out = 0;
    for (size_t i = 0; i < 3; i++) {
        hl7v2_span_t t = hl7v2_piece(c[i].s, r->enc.comp, 0);
        if (t.n == 0)
            continue;
        if (!hl7v2_parse_dtm(t, out)) {
            char b[40];
            return fail(err, "AE", HL7V2_E_DATA_TYPE, c[i].seg, c[i].seq, c[i].field,
                        "%s-%u '%s' is not an HL7 time YYYYMMDDHHMMSS[.SSSS][+ZZZZ] after 1970",
                        c[i].seg, c[i].field, show(t, b, sizeof b));
        }
        return 0;
    }
    return 0;
}

/* Alarm text: OBX-5, else the code's text (OBX-3.2), cut to what medwire carries. Not
 * refused when long: it is for people, and the code says what the alarm is. */
static void alarm_text(const reader *r, hl7v2_span_t obx5, hl7v2_span_t obx3, char *out, size_t cap)
{
    char t[512];
    hl7v2_span_t s = hl7v2_piece(obx5, r->enc.rep, 0);
    if (s.n == 0)
        s = comp(r, obx3, 1);
    /* What does not unescape is shown raw rather than dropped. */
    if (!hl7v2_unescape(s, &r->enc, t, sizeof t))
        show(s, t, sizeof t);
    size_t o = 0;
    for (size_t i = 0; t[i] && o + 1 < cap; i++) {
        unsigned char c = (unsigned char)t[i];
        if (c >= 0x80) {
            /* medwire's alarm text is ASCII: a UTF-8 character becomes one '?'. */
            while ((unsigned char)t[i + 1] >= 0x80 && ((unsigned char)t[i + 1] & 0xc0) == 0x80)
                i++;
            c = '?';
        } else if (c < 0x20 || c == 0x7f) {
            c = ' ';
        }
        out[o++] = (char)c;
    }
    out[o] = '\0';
}

static int priority_of(hl7v2_span_t s, mw_alarm_priority *out)
{
    if (hl7v2_span_is(s, "PH"))
        *out = MW_ALARM_HIGH;
    else if (hl7v2_span_is(s, "PM"))
        *out = MW_ALARM_MEDIUM;
    else if (hl7v2_span_is(s, "PL"))
        *out = MW_ALARM_LOW;
    else if (hl7v2_span_is(s, "PN"))
        *out = MW_ALARM_INFO;
    else
        return 0;
    return 1;
}

/* OBX-4 without its last level: the alert a PCD-04 facet (x.x.x.x.3) belongs to. */
static hl7v2_span_t parent_of(hl7v2_span_t sub)
{
    while (sub.n > 0 && sub.p[sub.n - 1] != '.')
        sub.n--;
    return sub;
}

/* A PCD-04 facet OBX: it says more about the alarm before it. */
static int apply_facet(reader *r, uint32_t code, hl7v2_span_t obx, unsigned seq, hl7v2_error_t *err)
{
    hl7v2_span_t v = comp(r, hl7v2_field(obx, &r->enc, 5), 0);
    mw_alarm_t *a = &r->alarm->u.alarm;
    char b[40];
    if (code == FACET_PRIORITY) {
        if (!priority_of(v, &a->priority))
            return fail(err, "AE", HL7V2_E_TABLE_VALUE, "OBX", seq, 5,
                        "alarm priority '%s' is none of PH, PM, PL, PN", show(v, b, sizeof b));
    } else if (code == FACET_STATE) {
        static const struct {
            const char *name;
            mw_alarm_state state;
        } S[] = {{"inactive", MW_ALARM_INACTIVE},
                 {"active", MW_ALARM_ACTIVE},
                 {"acknowledged", MW_ALARM_ACKNOWLEDGED},
                 {"latched", MW_ALARM_LATCHED},
                 {"msg-latched", MW_ALARM_LATCHED}};
        size_t i = 0;
        while (i < sizeof S / sizeof S[0] && !hl7v2_span_is(v, S[i].name))
            i++;
        if (i == sizeof S / sizeof S[0])
            return fail(err, "AE", HL7V2_E_TABLE_VALUE, "OBX", seq, 5,
                        "alarm state '%s' is none of active, inactive, acknowledged, latched",
                        show(v, b, sizeof b));
        a->state = S[i].state;
        r->alarm_state_set = true;
    } else if (code == FACET_PHASE) {
        /* An alert that ended is inactive, unless its state says more. */
        if (hl7v2_span_is(v, "end") && !r->alarm_state_set)
            a->state = MW_ALARM_INACTIVE;
    }
    return 0;
}

static int read_obx(reader *r, hl7v2_span_t obx, unsigned seq, hl7v2_oru_t *out, hl7v2_error_t *err)
{
    hl7v2_span_t f1 = hl7v2_field(obx, &r->enc, 1), f2 = hl7v2_field(obx, &r->enc, 2),
                 f3 = hl7v2_field(obx, &r->enc, 3), f4 = hl7v2_field(obx, &r->enc, 4),
                 f5 = hl7v2_field(obx, &r->enc, 5), f8 = hl7v2_field(obx, &r->enc, 8),
                 f11 = hl7v2_field(obx, &r->enc, 11), f14 = hl7v2_field(obx, &r->enc, 14),
                 f18 = hl7v2_field(obx, &r->enc, 18);
    char b[48];

    if (out->source[0] == '\0' && comp(r, f18, 0).n > 0) {
        if (text_of(r, comp(r, f18, 0), out->source, sizeof out->source, err, "OBX", seq, 18))
            return fail(err, "AE", HL7V2_E_DATA_TYPE, "OBX", seq, 18,
                        "the equipment identifier (OBX-18.1) is longer than %d characters or "
                        "badly escaped; configure a shorter device name",
                        HL7V2_SOURCE_MAX);
    }

    uint32_t code = 0;
    char what[48] = "";
    int known = f3.n > 0 ? code_of(r, f3, &code, what, sizeof what) : 0;
    hl7v2_span_t vtype = comp(r, f2, 0);
    bool event = known && (code >> 16) == MDC_PARTITION_EVENTS;
    bool facet = known && r->alarm != NULL &&
                 (code == FACET_PHASE || code == FACET_STATE || code == FACET_PRIORITY ||
                  code == FACET_TYPE) &&
                 (r->alarm_at.n == 0 || hl7v2_span_is(parent_of(f4), "") ||
                  (parent_of(f4).n == r->alarm_at.n &&
                   memcmp(parent_of(f4).p, r->alarm_at.p, r->alarm_at.n) == 0));
    if (facet)
        return apply_facet(r, code, obx, seq, err);

    mw_meas_status status = MW_MEAS_VALID;
    int st = status_of(f11, r->test_data, &status);
    bool nm = hl7v2_span_is(vtype, "NM") && (f5.n > 0 || status == MW_MEAS_UNAVAILABLE);
    if (!event && !nm)
        return 0; /* no measurement: the device hierarchy, settings, text */
    if (!known) {
        if (what[0] == '\0')
            return fail(err, "AE", HL7V2_E_REQUIRED_MISSING, "OBX", seq, 3,
                        "OBX %u has a value but no MDC or LOINC code in OBX-3", seq);
        return fail(err, "AE", HL7V2_E_TABLE_VALUE, "OBX", seq, 3,
                    "OBX %u code '%s' is neither MDC nor a LOINC code medwire maps; send the "
                    "MDC code",
                    seq, what);
    }
    if (!event && st < 0)
        return fail(err, "AE", HL7V2_E_TABLE_VALUE, "OBX", seq, 11,
                    "OBX %u result status '%s' cannot be carried (medwire takes F, C, R, P, X); "
                    "a reading cannot be withdrawn",
                    seq, show(f11, b, sizeof b));
    if (!event && st == 0)
        return 0; /* I, N, O: no result in this OBX */
    if (out->n_items >= HL7V2_ITEMS_MAX)
        return fail(err, "AE", HL7V2_E_SEGMENT_SEQUENCE, "OBX", seq, 0,
                    "more than %d observations and alarms in one message; send fewer per "
                    "message",
                    HL7V2_ITEMS_MAX);
    hl7v2_item_t *it = &out->items[out->n_items];
    memset(it, 0, sizeof *it);
    it->obx_seq = seq;
    unsigned sid = 0;
    if (f1.n > 0 && f1.n <= 9 && digits(f1.p, f1.n, &sid))
        it->set_id = sid;
    uint64_t when = 0;
    if (time_of(r, f14, seq, &when, err))
        return -1;

    if (event) {
        mw_alarm_t *a = &it->u.alarm;
        it->kind = HL7V2_ALARM;
        a->mdc_code = code;
        a->state = MW_ALARM_ACTIVE;
        a->priority = MW_ALARM_MEDIUM;
        a->time_ms = when;
        /* PCD-04 puts the priority among OBX-8's abnormal flags (with the alert type). */
        for (size_t k = 0;; k++) {
            hl7v2_span_t flag = hl7v2_piece(f8, r->enc.rep, k);
            if (flag.n == 0 && flag.p == f8.p + f8.n)
                break;
            (void)priority_of(flag, &a->priority);
        }
        alarm_text(r, f5, f3, a->text, sizeof a->text);
        r->alarm = it;
        r->alarm_at = parent_of(f4);
        r->alarm_state_set = false;
        out->n_items++;
        return 0;
    }

    mw_observation_t *o = &it->u.observation;
    it->kind = HL7V2_OBSERVATION;
    o->mdc_code = code;
    o->time_ms = when;
    o->status = status;
    /* No value (status X): hl7.c writes a reading the device could not take this way too. */
    if (f5.n > 0 &&
        !hl7v2_parse_decimal(hl7v2_piece(f5, r->enc.rep, 0), &o->mantissa, &o->exponent))
        return fail(err, "AE", HL7V2_E_DATA_TYPE, "OBX", seq, 5,
                    "OBX %u value '%s' is not a decimal of at most 18 digits (no exponent)", seq,
                    show(f5, b, sizeof b));
    hl7v2_span_t f6 = hl7v2_field(obx, &r->enc, 6);
    if (f6.n == 0 && f5.n > 0)
        return fail(err, "AE", HL7V2_E_REQUIRED_MISSING, "OBX", seq, 6,
                    "OBX %u has a value but no unit (OBX-6); send its UCUM unit", seq);
    if (f6.n > 0 && !unit_of(r, f6, o->unit, sizeof o->unit))
        return fail(err, "AE", HL7V2_E_TABLE_VALUE, "OBX", seq, 6,
                    "OBX %u unit '%s' is not UCUM nor an MDC unit medwire maps; send it as "
                    "<ucum>^^UCUM",
                    seq, show(f6, b, sizeof b));
    out->n_items++;
    return 0;
}

/* The header: delimiters, type, version, processing id, ids. */
static int read_msh(reader *r, hl7v2_oru_t *out, hl7v2_error_t *err)
{
    char b[48];
    hl7v2_span_t f9 = hl7v2_field(r->msh, &r->enc, 9);
    hl7v2_span_t type = comp(r, f9, 0), trigger = comp(r, f9, 1);
    if (!hl7v2_span_is(type, "ORU"))
        return fail(err, "AR", HL7V2_E_MESSAGE_TYPE, "MSH", 1, 9,
                    "message type '%s' is not taken here: send ORU^R01 (or ORU^R40 alarms)",
                    show(type, b, sizeof b));
    if (hl7v2_span_is(trigger, "R01"))
        r->r40 = false;
    else if (hl7v2_span_is(trigger, "R40"))
        r->r40 = true;
    else
        return fail(err, "AR", HL7V2_E_EVENT_CODE, "MSH", 1, 9,
                    "event '%s' is not taken here: send ORU^R01 (or ORU^R40 alarms)",
                    show(trigger, b, sizeof b));
    snprintf(out->message_type, sizeof out->message_type, "ORU^%s", r->r40 ? "R40" : "R01");

    hl7v2_span_t ver = comp(r, hl7v2_field(r->msh, &r->enc, 12), 0);
    static const char *const VERSIONS[] = {"2.3", "2.3.1", "2.4", "2.5",   "2.5.1", "2.6",
                                           "2.7", "2.7.1", "2.8", "2.8.1", "2.8.2", "2.9"};
    bool vok = false;
    for (size_t i = 0; i < sizeof VERSIONS / sizeof VERSIONS[0]; i++)
        vok = vok || hl7v2_span_is(ver, VERSIONS[i]);
    if (!vok)
        return fail(err, "AR", HL7V2_E_VERSION, "MSH", 1, 12,
                    "HL7 version '%s' is not taken here: send v2.3 to v2.9",
                    show(ver, b, sizeof b));
    memcpy(out->version, ver.p, ver.n);

    hl7v2_span_t pid = comp(r, hl7v2_field(r->msh, &r->enc, 11), 0);
    if (hl7v2_span_is(pid, "T"))
        r->test_data = true;
    else if (!hl7v2_span_is(pid, "P"))
        return fail(err, "AR", HL7V2_E_PROCESSING_ID, "MSH", 1, 11,
                    "processing id '%s' is not taken here: P (production) or T (training)",
                    show(pid, b, sizeof b));
    memcpy(out->processing_id, pid.p, pid.n);

    if (text_of(r, hl7v2_field(r->msh, &r->enc, 10), out->control_id, sizeof out->control_id, err,
                "MSH", 1, 10) ||
        text_of(r, comp(r, hl7v2_field(r->msh, &r->enc, 3), 0), out->sending_app,
                sizeof out->sending_app, err, "MSH", 1, 3) ||
        text_of(r, comp(r, hl7v2_field(r->msh, &r->enc, 4), 0), out->sending_facility,
                sizeof out->sending_facility, err, "MSH", 1, 4))
        return -1;
    if (out->control_id[0] == '\0')
        return fail(err, "AE", HL7V2_E_REQUIRED_MISSING, "MSH", 1, 10,
                    "MSH-10 (message control id) is empty: the acknowledgement could not name it");
    return 0;
}

int hl7v2_parse_oru(const char *msg, size_t len, hl7v2_oru_t *out, hl7v2_error_t *err)
{
    memset(out, 0, sizeof *out);
    memset(err, 0, sizeof *err);
    reader r;
    memset(&r, 0, sizeof r);
    r.msg = msg;
    r.len = len;
    r.obr_time = (hl7v2_span_t){"", 0};
    size_t pos = 0;
    if (msg == NULL || !hl7v2_next_segment(msg, len, &pos, &r.msh) || r.msh.n < 3 ||
        memcmp(r.msh.p, "MSH", 3) != 0)
        return fail(err, "AR", HL7V2_E_SEGMENT_SEQUENCE, "MSH", 1, 0,
                    "not an HL7 v2 message: it does not start with an MSH segment");
    if (!hl7v2_read_enc(r.msh, &r.enc))
        return fail(err, "AR", HL7V2_E_DATA_TYPE, "MSH", 1, 2,
                    "MSH-1 and MSH-2 do not declare five distinct delimiters such as |^~\\&");
    if (read_msh(&r, out, err))
        return -1;

    unsigned obx_seq = 0, obr_seq = 0;
    hl7v2_span_t seg;
    while (hl7v2_next_segment(msg, len, &pos, &seg)) {
        hl7v2_span_t name = hl7v2_piece(seg, r.enc.field, 0);
        if (hl7v2_span_is(name, "MSH"))
            return fail(err, "AE", HL7V2_E_SEGMENT_SEQUENCE, "MSH", 2, 0,
                        "a second MSH inside the message: send one message per frame");
        if (hl7v2_span_is(name, "OBR")) {
            r.obr_seq = ++obr_seq;
            r.obr_time = hl7v2_field(seg, &r.enc, 7);
        } else if (hl7v2_span_is(name, "OBX")) {
            if (read_obx(&r, seg, ++obx_seq, out, err))
                return -1;
        }
    }
    if (out->n_items == 0)
        return fail(err, "AE", HL7V2_E_SEGMENT_SEQUENCE, "OBX", 1, 0,
                    "the message holds no numeric observation (OBX-2 NM) and no MDC alarm event");
    if (out->source[0] == '\0' && text_of(&r, comp(&r, hl7v2_field(r.msh, &r.enc, 3), 0),
                                          out->source, sizeof out->source, err, "MSH", 1, 3))
        return fail(err, "AE", HL7V2_E_DATA_TYPE, "MSH", 1, 3,
                    "no OBX-18 names the device and MSH-3.1 is longer than %d characters; "
                    "configure a shorter name",
                    HL7V2_SOURCE_MAX);
    if (out->source[0] == '\0' || !printable(out->source, 0x20))
        return fail(err, "AE", HL7V2_E_REQUIRED_MISSING, "OBX", 1, 18,
                    "no printable device identifier in OBX-18.1 or MSH-3.1; configure one");
    return 0;
}

/* ---- Acknowledgements ---- */

/* What an acknowledgement copies, in bytes written (escapes included): each component of an HD
 * (MSH-3 to MSH-6), MSA-2 (any control id the reader accepts, even all escapes), a reason (159
 * characters of hl7v2_error_t.text). With these, HL7V2_ACK_MAX always suffices (about 3200). */
#define ACK_COPY_HD   64u
#define ACK_COPY_ID   (5u * HL7V2_ID_MAX)
#define ACK_COPY_TEXT (5u * 159u)

void hl7v2_put_n(hl7v2_writer_t *w, const char *s, size_t n)
{
    if (w->over || n >= w->cap - w->n) {
        w->over = true;
        return;
    }
    memcpy(w->p + w->n, s, n);
    w->n += n;
    w->p[w->n] = '\0';
}

void hl7v2_put(hl7v2_writer_t *w, const char *s)
{
    hl7v2_put_n(w, s, strlen(s));
}

/* What is copied from the sender is bounded (max_out), so that HL7V2_ACK_MAX always holds an
 * acknowledgement. */
void hl7v2_put_escaped(hl7v2_writer_t *w, const char *s, size_t n, size_t max_out)
{
    size_t used = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        char t[8] = {(char)c, '\0'};
        switch (c) {
        case '|':
            memcpy(t, "\\F\\", 4);
            break;
        case '^':
            memcpy(t, "\\S\\", 4);
            break;
        case '~':
            memcpy(t, "\\R\\", 4);
            break;
        case '\\':
            memcpy(t, "\\E\\", 4);
            break;
        case '&':
            memcpy(t, "\\T\\", 4);
            break;
        default:
            if (c < 0x20 || c == 0x7f)
                snprintf(t, sizeof t, "\\X%02X\\", c);
        }
        size_t k = strlen(t);
        if (used + k > max_out)
            return;
        hl7v2_put_n(w, t, k);
        used += k;
    }
}

/* A component of the original (its delimiters), unescaped and escaped again with ours; raw
 * bytes, escaped, when it does not unescape. At most @p max_out bytes written. */
static void put_copied(hl7v2_writer_t *w, hl7v2_span_t s, const hl7v2_enc_t *enc, size_t max_out)
{
    char t[256];
    if (enc == NULL || !hl7v2_unescape(s, enc, t, sizeof t)) {
        hl7v2_put_escaped(w, s.p, s.n, max_out);
        return;
    }
    hl7v2_put_escaped(w, t, strlen(t), max_out);
}

/* A whole HD field (namespace^universal id^type) of the original, component by component. */
static void put_hd(hl7v2_writer_t *w, hl7v2_span_t f, const hl7v2_enc_t *enc)
{
    if (enc == NULL)
        return;
    hl7v2_span_t first = hl7v2_piece(f, enc->rep, 0);
    size_t ncomp = 1;
    for (size_t i = 0; i < first.n; i++)
        ncomp += first.p[i] == enc->comp;
    for (size_t k = 0; k < ncomp && k < 3; k++) {
        if (k > 0)
            hl7v2_put(w, "^");
        put_copied(w, hl7v2_piece(first, enc->comp, k), enc, ACK_COPY_HD);
    }
}

static void put_dtm(hl7v2_writer_t *w, uint64_t ms)
{
    uint64_t secs = ms / 1000u, days = secs / 86400u, rem = secs % 86400u;
    /* Civil date from days since 1970 (proleptic Gregorian). */
    int64_t z = (int64_t)days + 719468;
    int64_t era = z / 146097;
    unsigned doe = (unsigned)(z - era * 146097);
    unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    int64_t y = (int64_t)yoe + era * 400;
    unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    unsigned mp = (5 * doy + 2) / 153;
    unsigned d = doy - (153 * mp + 2) / 5 + 1;
    unsigned m = mp < 10 ? mp + 3 : mp - 9;
    y += m <= 2;
    char t[48];
    snprintf(t, sizeof t, "%04" PRId64 "%02u%02u%02u%02u%02u.%03u+0000", y, m, d,
             (unsigned)(rem / 3600u), (unsigned)(rem / 60u % 60u), (unsigned)(rem % 60u),
             (unsigned)(ms % 1000u));
    hl7v2_put(w, t);
}

/* Whether @p s is short and made of @p allowed characters only (a version, a trigger). */
static bool plain(hl7v2_span_t s, size_t max, bool digits_dots)
{
    if (s.n == 0 || s.n > max)
        return false;
    for (size_t i = 0; i < s.n; i++) {
        char c = s.p[i];
        if (digits_dots ? !((c >= '0' && c <= '9') || c == '.') : !is_alnum(c))
            return false;
    }
    return true;
}

static const char *table_0357(unsigned code)
{
    switch (code) {
    case 0:
        return "Message accepted";
    case 100:
        return "Segment sequence error";
    case 101:
        return "Required field missing";
    case 102:
        return "Data type error";
    case 103:
        return "Table value not found";
    case 104:
        return "Value too long";
    case 200:
        return "Unsupported message type";
    case 201:
        return "Unsupported event code";
    case 202:
        return "Unsupported processing id";
    case 203:
        return "Unsupported version id";
    case 206:
        return "Application record locked";
    default:
        return "Application internal error";
    }
}

size_t hl7v2_build_ack(const char *msg, size_t len, const char *ack_code, const hl7v2_error_t *err,
                       uint64_t now_ms, const char *app, char *out, size_t cap)
{
    if (out == NULL || cap == 0)
        return 0;
    hl7v2_writer_t w = {out, 0, cap, false};
    out[0] = '\0';
    hl7v2_span_t msh = {NULL, 0};
    hl7v2_enc_t enc;
    const hl7v2_enc_t *e = NULL;
    size_t pos = 0;
    if (msg != NULL && hl7v2_next_segment(msg, len, &pos, &msh) && hl7v2_read_enc(msh, &enc))
        e = &enc;
    hl7v2_span_t none = {"", 0};
#define ORIG(n) (e ? hl7v2_field(msh, e, (n)) : none)
#define ORIG_COMP(n, k)                                                                            \
    (e ? hl7v2_piece(hl7v2_piece(hl7v2_field(msh, e, (n)), e->rep, 0), e->comp, (k)) : none)

    hl7v2_put(&w, "MSH|^~\\&|");
    hl7v2_put_escaped(&w, app ? app : "", app ? strnlen(app, ACK_COPY_HD) : 0, ACK_COPY_HD);
    hl7v2_put(&w, "|");
    put_hd(&w, ORIG(6), e); /* we answer as the facility it sent to */
    hl7v2_put(&w, "|");
    put_hd(&w, ORIG(3), e);
    hl7v2_put(&w, "|");
    put_hd(&w, ORIG(4), e);
    hl7v2_put(&w, "|");
    put_dtm(&w, now_ms);
    hl7v2_put(&w, "||ACK^");
    hl7v2_span_t trig = ORIG_COMP(9, 1);
    if (plain(trig, 3, false))
        hl7v2_put_n(&w, trig.p, trig.n);
    else
        hl7v2_put(&w, "R01");
    hl7v2_put(&w, "^ACK|");
    /* A new id: the time and a hash of what is acknowledged, so two answers never share one. */
    uint32_t h = 2166136261u;
    for (size_t i = 0; msg != NULL && i < len; i++)
        h = (h ^ (uint8_t)msg[i]) * 16777619u;
    char id[48];
    snprintf(id, sizeof id, "A%" PRIu64 "-%08" PRIx32, now_ms, h);
    hl7v2_put(&w, id);
    hl7v2_put(&w, "|");
    hl7v2_span_t pid = ORIG_COMP(11, 0);
    hl7v2_put(&w, hl7v2_span_is(pid, "T") ? "T" : hl7v2_span_is(pid, "D") ? "D" : "P");
    hl7v2_put(&w, "|");
    hl7v2_span_t ver = ORIG_COMP(12, 0);
    bool old = false;
    if (plain(ver, 8, true)) {
        hl7v2_put_n(&w, ver.p, ver.n);
        /* v2.3 and v2.4 receivers read the reason from MSA-3, not from ERR-8. */
        old = ver.n >= 3 && ver.p[0] == '2' && ver.p[1] == '.' && ver.p[2] >= '1' &&
              ver.p[2] <= '4' && (ver.n == 3 || ver.p[3] == '.');
    } else {
        hl7v2_put(&w, "2.6");
    }
    hl7v2_put(&w, "\rMSA|");
    hl7v2_put_escaped(&w, ack_code ? ack_code : "AR", ack_code ? strnlen(ack_code, 2) : 2, 2);
    hl7v2_put(&w, "|");
    put_copied(&w, ORIG(10), e, ACK_COPY_ID);
    if (err != NULL && old) {
        hl7v2_put(&w, "|");
        hl7v2_put_escaped(&w, err->text, strnlen(err->text, sizeof err->text), ACK_COPY_TEXT);
    }
    hl7v2_put(&w, "\r");
    if (err != NULL) {
        /* ERR-2 is an ERL: segment^sequence^field, whose separators are ours. */
        hl7v2_put(&w, "ERR||");
        const char *loc = err->location;
        for (size_t i = 0; i < sizeof err->location && loc[i]; i++) {
            if (loc[i] == '^')
                hl7v2_put(&w, "^");
            else
                hl7v2_put_escaped(&w, &loc[i], 1, 5);
        }
        char code[16];
        snprintf(code, sizeof code, "|%u^", err->err_code);
        hl7v2_put(&w, code);
        hl7v2_put(&w, table_0357(err->err_code));
        hl7v2_put(&w, "^HL70357|E||||");
        hl7v2_put_escaped(&w, err->text, strnlen(err->text, sizeof err->text), ACK_COPY_TEXT);
        hl7v2_put(&w, "\r");
    }
#undef ORIG
#undef ORIG_COMP
    if (w.over) {
        out[0] = '\0';
        return 0;
    }
    return w.n;
}
