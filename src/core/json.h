/* SPDX-License-Identifier: Apache-2.0 */
/* json.h -- the bounded JSON mwi_json_writer (escapes, exact decimals) of the JSON and FHIR
 * outputs. */
#ifndef MWI_CORE_JSON_H
#define MWI_CORE_JSON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "medwire/err.h"

#include "core/limits.h"

/* static inline: each output file gets its own copy, so nothing here is exported and the
 * mwi_json_writer stays a private detail of src/core. */

/* Values whose decimal form would need more than MWI_JSON_EXPONENT_LIMIT (core/limits.h) added
 * zeros are written in exponent form (975e-30), which is still a JSON number and keeps the
 * output short. */

/* An output cursor that keeps counting past the end of the buffer, so that the caller learns
 * the length it would have needed, and never writes past size - 1 (the NUL's place). */
typedef struct mwi_json_writer {
    char *out;
    size_t size;
    size_t len;
} mwi_json_writer;

/* Starts an output into out[0..out_size) of @p input: *out_len is 0 and out "" until
 * mwi_json_finish. False, with nothing written to out, when @p input is NULL or out is NULL with
 * a size (MW_EINVAL for the caller). */
static inline bool mwi_json_start(mwi_json_writer *w, const void *input, char *out, size_t out_size,
                                  size_t *out_len)
{
    w->out = out;
    w->size = out_size;
    w->len = 0;
    if (out_len != NULL) {
        *out_len = 0;
    }
    if (input == NULL || (out == NULL && out_size > 0)) {
        return false;
    }
    if (out_size > 0) {
        out[0] = '\0';
    }
    return true;
}

/* Ends the output: its length in *out_len (the length it needed, when it did not fit) and its
 * NUL. A truncated object would be invalid JSON; an empty string is at least recognisable, so
 * an output that did not fit leaves "" and MW_ENOSPC. */
static inline mw_err mwi_json_finish(const mwi_json_writer *w, size_t *out_len)
{
    if (out_len != NULL) {
        *out_len = w->len;
    }
    if (w->len >= w->size) {
        if (w->size > 0) {
            w->out[0] = '\0';
        }
        return MW_ENOSPC;
    }
    w->out[w->len] = '\0';
    return MW_OK;
}

/* Is the string of the array s[0..size) terminated inside it? */
static inline bool mwi_json_terminated(const char *s, size_t size)
{
    return memchr(s, '\0', size) != NULL;
}

static inline void mwi_json_put_char(mwi_json_writer *w, char c)
{
    if (w->len + 1 < w->size) {
        w->out[w->len] = c;
    }
    w->len++;
}

static inline void mwi_json_put_str(mwi_json_writer *w, const char *s)
{
    while (*s != '\0') {
        mwi_json_put_char(w, *s++);
    }
}

static inline void mwi_json_put_u64(mwi_json_writer *w, uint64_t v)
{
    char digits[20]; /* UINT64_MAX has 20 digits */
    size_t n = 0;

    do {
        digits[n++] = (char)('0' + v % 10);
        v /= 10;
    } while (v != 0);
    while (n > 0) {
        mwi_json_put_char(w, digits[--n]);
    }
}

static inline void mwi_json_put_i64(mwi_json_writer *w, int64_t v)
{
    if (v < 0) {
        mwi_json_put_char(w, '-');
        /* Negate in unsigned arithmetic: -INT64_MIN does not fit in int64_t. */
        mwi_json_put_u64(w, (uint64_t)0 - (uint64_t)v);
    } else {
        mwi_json_put_u64(w, (uint64_t)v);
    }
}

/* The characters of a C string bounded by its array, escaped for a JSON string (no quotes).
 * Quote, backslash and every byte outside 0x20-0x7E become escapes; a byte >= 0x80 becomes
 * \u00XX of that byte (read as Latin-1), so the output is pure ASCII and valid JSON whatever the
 * input, and the bytes can be recovered. A control byte other than tab, LF and CR becomes
 * @p control instead when it is not NULL (FHIR strings may not hold those at all). */
static inline void mwi_json_put_escaped(mwi_json_writer *w, const char *s, size_t size,
                                        const char *control)
{
    static const char hex[] = "0123456789abcdef";
    size_t i;

    for (i = 0; i < size && s[i] != '\0'; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '"' || c == '\\') {
            mwi_json_put_char(w, '\\');
            mwi_json_put_char(w, (char)c);
        } else if (control != NULL && c < 0x20 && c != '\t' && c != '\n' && c != '\r') {
            mwi_json_put_str(w, control);
        } else if (c < 0x20 || c > 0x7E) {
            mwi_json_put_str(w, "\\u00");
            mwi_json_put_char(w, hex[c >> 4]);
            mwi_json_put_char(w, hex[c & 0xF]);
        } else {
            mwi_json_put_char(w, (char)c);
        }
    }
}

/* A JSON string from a C string bounded by its array, escaped as mwi_json_put_escaped says.
 * Messages that went through the codec hold printable ASCII only, so escaping rarely applies. */
static inline void mwi_json_put_json_string(mwi_json_writer *w, const char *s, size_t size)
{
    mwi_json_put_char(w, '"');
    mwi_json_put_escaped(w, s, size, NULL);
    mwi_json_put_char(w, '"');
}

/* A sequence space as 16 lowercase hex digits: 64 random bits, which a JSON number would round
 * in most readers. */
static inline void mwi_json_put_hex64(mwi_json_writer *w, uint64_t v)
{
    static const char hex[] = "0123456789abcdef";
    for (int i = 0; i < 16; i++)
        mwi_json_put_char(w, hex[(v >> (60 - 4 * i)) & 0xF]);
}

/* mantissa * 10^exponent exactly, without floating point: a SpO2 of 97.5 must not come out as
 * 97.49999999999999. The digits are kept as the device gave them (970e-1 is 97.0, not 97),
 * since trailing zeros carry the measurement's precision (FHIR Quantity.value keeps them). */
static inline void mwi_json_put_decimal(mwi_json_writer *w, int64_t mantissa, int32_t exponent)
{
    char digits[20];
    size_t n = 0;
    size_t i;
    uint64_t mag = mantissa < 0 ? (uint64_t)0 - (uint64_t)mantissa : (uint64_t)mantissa;

    if (exponent > MWI_JSON_EXPONENT_LIMIT || exponent < -MWI_JSON_EXPONENT_LIMIT) {
        mwi_json_put_i64(w, mantissa);
        mwi_json_put_char(w, 'e');
        mwi_json_put_i64(w, exponent);
        return;
    }
    do {
        digits[n++] = (char)('0' + mag % 10);
        mag /= 10;
    } while (mag != 0);
    if (mantissa < 0) {
        mwi_json_put_char(w, '-');
    }
    if (exponent >= 0) {
        while (n > 0) {
            mwi_json_put_char(w, digits[--n]);
        }
        /* 0 * 10^3 is "0": JSON forbids leading zeros such as "000". */
        if (mantissa != 0) {
            for (i = 0; i < (size_t)exponent; i++) {
                mwi_json_put_char(w, '0');
            }
        }
        return;
    }
    {
        size_t frac = (size_t)(-(int64_t)exponent); /* digits after the point, 1..20 */
        if (n > frac) {
            while (n > frac) {
                mwi_json_put_char(w, digits[--n]);
            }
        } else {
            mwi_json_put_char(w, '0');
        }
        mwi_json_put_char(w, '.');
        for (i = n; i < frac; i++) {
            mwi_json_put_char(w, '0');
        }
        while (n > 0) {
            mwi_json_put_char(w, digits[--n]);
        }
    }
}

#endif
