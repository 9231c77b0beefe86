/* SPDX-License-Identifier: Apache-2.0 */
/* json.h -- the bounded JSON writer (escapes, exact decimals) of the JSON and FHIR outputs. */
#ifndef MWI_CORE_JSON_H
#define MWI_CORE_JSON_H

#include <stddef.h>
#include <stdint.h>

/* static inline: each output file gets its own copy, so nothing here is exported and the
 * writer stays a private detail of src/core. */

/* Values whose decimal form would need more than this many added zeros are written in
 * exponent form (975e-30), which is still a JSON number and keeps the output short. */
#define DECIMAL_EXPONENT_LIMIT 20

/* An output cursor that keeps counting past the end of the buffer, so that the caller learns
 * the length it would have needed, and never writes past size - 1 (the NUL's place). */
typedef struct writer {
    char *out;
    size_t size;
    size_t len;
} writer;

static inline void put_char(writer *w, char c)
{
    if (w->len + 1 < w->size) {
        w->out[w->len] = c;
    }
    w->len++;
}

static inline void put_str(writer *w, const char *s)
{
    while (*s != '\0') {
        put_char(w, *s++);
    }
}

static inline void put_u64(writer *w, uint64_t v)
{
    char digits[20]; /* UINT64_MAX has 20 digits */
    size_t n = 0;

    do {
        digits[n++] = (char)('0' + v % 10);
        v /= 10;
    } while (v != 0);
    while (n > 0) {
        put_char(w, digits[--n]);
    }
}

static inline void put_i64(writer *w, int64_t v)
{
    if (v < 0) {
        put_char(w, '-');
        /* Negate in unsigned arithmetic: -INT64_MIN does not fit in int64_t. */
        put_u64(w, (uint64_t)0 - (uint64_t)v);
    } else {
        put_u64(w, (uint64_t)v);
    }
}

/* A JSON string from a C string bounded by its array. Quote, backslash and every byte outside
 * 0x20-0x7E become escapes; a byte >= 0x80 becomes \u00XX of that byte (read as Latin-1), so
 * the output is pure ASCII and valid JSON whatever the input, and the bytes can be recovered.
 * Messages that went through the codec hold printable ASCII only, so this rarely applies. */
static inline void put_json_string(writer *w, const char *s, size_t size)
{
    static const char hex[] = "0123456789abcdef";
    size_t i;

    put_char(w, '"');
    for (i = 0; i < size && s[i] != '\0'; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '"' || c == '\\') {
            put_char(w, '\\');
            put_char(w, (char)c);
        } else if (c < 0x20 || c > 0x7E) {
            put_str(w, "\\u00");
            put_char(w, hex[c >> 4]);
            put_char(w, hex[c & 0xF]);
        } else {
            put_char(w, (char)c);
        }
    }
    put_char(w, '"');
}

/* mantissa * 10^exponent exactly, without floating point: a SpO2 of 97.5 must not come out as
 * 97.49999999999999. The digits are kept as the device gave them (970e-1 is 97.0, not 97),
 * since trailing zeros carry the measurement's precision (FHIR Quantity.value keeps them). */
static inline void put_decimal(writer *w, int64_t mantissa, int32_t exponent)
{
    char digits[20];
    size_t n = 0;
    size_t i;
    uint64_t mag = mantissa < 0 ? (uint64_t)0 - (uint64_t)mantissa : (uint64_t)mantissa;

    if (exponent > DECIMAL_EXPONENT_LIMIT || exponent < -DECIMAL_EXPONENT_LIMIT) {
        put_i64(w, mantissa);
        put_char(w, 'e');
        put_i64(w, exponent);
        return;
    }
    do {
        digits[n++] = (char)('0' + mag % 10);
        mag /= 10;
    } while (mag != 0);
    if (mantissa < 0) {
        put_char(w, '-');
    }
    if (exponent >= 0) {
        while (n > 0) {
            put_char(w, digits[--n]);
        }
        /* 0 * 10^3 is "0": JSON forbids leading zeros such as "000". */
        if (mantissa != 0) {
            for (i = 0; i < (size_t)exponent; i++) {
                put_char(w, '0');
            }
        }
        return;
    }
    {
        size_t frac = (size_t)(-(int64_t)exponent); /* digits after the point, 1..20 */
        if (n > frac) {
            while (n > frac) {
                put_char(w, digits[--n]);
            }
        } else {
            put_char(w, '0');
        }
        put_char(w, '.');
        for (i = n; i < frac; i++) {
            put_char(w, '0');
        }
        while (n > 0) {
            put_char(w, digits[--n]);
        }
    }
}

#endif
