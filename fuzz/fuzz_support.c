/* SPDX-License-Identifier: Apache-2.0 */
/* fuzz_support.c -- checks, input framing, a strict JSON validator and the PKI shared by the fuzz targets. */
/* nftw() is an XSI extension. */
#define _XOPEN_SOURCE 700

#include <errno.h>
#include <ftw.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fuzz_support.h"

#ifndef MWF_DEFAULT_BIN_DIR
#define MWF_DEFAULT_BIN_DIR "./bin"
#endif

void mwf_fail(const char *file, int line, const char *cond, const char *fmt, ...)
{
    va_list ap;
    fprintf(stderr, "\n%s:%d: invariant broken: %s: ", file, line, cond);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    fflush(stderr);
    abort();
}

/* ---- framing ---- */

void mwf_reader_init(mwf_reader *r, const uint8_t *data, size_t size)
{
    r->p = data;
    r->left = data != NULL ? size : 0;
}

bool mwf_next_frame(mwf_reader *r, mwf_frame *out)
{
    size_t len;
    if (r->left == 0)
        return false;
    out->tag = r->p[0];
    if (r->left < 3) {
        /* A tag with no complete length: an empty frame, so that a one-byte input still acts. */
        out->data = r->p + 1;
        out->len = r->left - 1;
        r->p += r->left;
        r->left = 0;
        return true;
    }
    len = ((size_t)r->p[1] << 8) | r->p[2];
    r->p += 3;
    r->left -= 3;
    if (len > r->left)
        len = r->left;
    out->data = r->p;
    out->len = len;
    r->p += len;
    r->left -= len;
    return true;
}

bool mwf_put_frame(uint8_t *out, size_t cap, size_t *pos, uint8_t tag, const uint8_t *data,
                   size_t len)
{
    if (len > 0xFFFF || *pos > cap || cap - *pos < 3 + len)
        return false;
    out[(*pos)++] = tag;
    out[(*pos)++] = (uint8_t)(len >> 8);
    out[(*pos)++] = (uint8_t)(len & 0xFF);
    if (len > 0)
        memcpy(out + *pos, data, len);
    *pos += len;
    return true;
}

/* ---- JSON (RFC 8259), strict enough to catch a broken escape or an unbalanced quote ---- */

typedef struct json {
    const char *s;
    size_t len, pos;
} json;

static bool json_value(json *j, int depth);

static void json_ws(json *j)
{
    while (j->pos < j->len && (j->s[j->pos] == ' ' || j->s[j->pos] == '\t' ||
                               j->s[j->pos] == '\n' || j->s[j->pos] == '\r'))
        j->pos++;
}

static bool json_lit(json *j, const char *lit)
{
    size_t n = strlen(lit);
    if (j->len - j->pos < n || memcmp(j->s + j->pos, lit, n) != 0)
        return false;
    j->pos += n;
    return true;
}

static bool is_hex(char c)
{
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

static bool json_string(json *j)
{
    if (j->pos >= j->len || j->s[j->pos] != '"')
        return false;
    j->pos++;
    while (j->pos < j->len) {
        unsigned char c = (unsigned char)j->s[j->pos++];
        if (c == '"')
            return true;
        /* medwire writes pure ASCII: control bytes and bytes >= 0x80 must be escaped. */
        if (c < 0x20 || c >= 0x80)
            return false;
        if (c != '\\')
            continue;
        if (j->pos >= j->len)
            return false;
        c = (unsigned char)j->s[j->pos++];
        if (c == 'u') {
            if (j->len - j->pos < 4)
                return false;
            for (int i = 0; i < 4; i++)
                if (!is_hex(j->s[j->pos + (size_t)i]))
                    return false;
            j->pos += 4;
        } else if (strchr("\"\\/bfnrt", (int)c) == NULL || c == '\0') {
            return false;
        }
    }
    return false;
}

static bool json_digits(json *j)
{
    size_t start = j->pos;
    while (j->pos < j->len && j->s[j->pos] >= '0' && j->s[j->pos] <= '9')
        j->pos++;
    return j->pos > start;
}

static bool json_number(json *j)
{
    if (j->pos < j->len && j->s[j->pos] == '-')
        j->pos++;
    if (j->pos < j->len && j->s[j->pos] == '0') {
        j->pos++; /* no leading zeros */
    } else if (!json_digits(j)) {
        return false;
    }
    if (j->pos < j->len && j->s[j->pos] == '.') {
        j->pos++;
        if (!json_digits(j))
            return false;
    }
    if (j->pos < j->len && (j->s[j->pos] == 'e' || j->s[j->pos] == 'E')) {
        j->pos++;
        if (j->pos < j->len && (j->s[j->pos] == '+' || j->s[j->pos] == '-'))
            j->pos++;
        if (!json_digits(j))
            return false;
    }
    return true;
}

static bool json_container(json *j, int depth, char close, bool object)
{
    j->pos++; /* the opening bracket */
    json_ws(j);
    if (j->pos < j->len && j->s[j->pos] == close) {
        j->pos++;
        return true;
    }
    for (;;) {
        json_ws(j);
        if (object) {
            if (!json_string(j))
                return false;
            json_ws(j);
            if (j->pos >= j->len || j->s[j->pos] != ':')
                return false;
            j->pos++;
        }
        if (!json_value(j, depth + 1))
            return false;
        json_ws(j);
        if (j->pos >= j->len)
            return false;
        if (j->s[j->pos] == close) {
            j->pos++;
            return true;
        }
        if (j->s[j->pos] != ',')
            return false;
        j->pos++;
    }
}

static bool json_value(json *j, int depth)
{
    if (depth > 8)
        return false;
    json_ws(j);
    if (j->pos >= j->len)
        return false;
    switch (j->s[j->pos]) {
    case '{':
        return json_container(j, depth, '}', true);
    case '[':
        return json_container(j, depth, ']', false);
    case '"':
        return json_string(j);
    case 't':
        return json_lit(j, "true");
    case 'f':
        return json_lit(j, "false");
    case 'n':
        return json_lit(j, "null");
    default:
        return json_number(j);
    }
}

bool mwf_json_valid(const char *s, size_t len)
{
    json j = {s, len, 0};
    if (s == NULL || !json_value(&j, 0))
        return false;
    json_ws(&j);
    return j.pos == j.len;
}

/* ---- PKI ---- */

static mwt_pki pki;
static bool pki_ready;
static bool pki_owned;

static int rm_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb;
    (void)flag;
    (void)ftw;
    return remove(path);
}

void mwf_pki_discard(void)
{
    if (pki_ready && pki_owned) {
        /* Depth first, no symlinks followed: only what medwire-pki made is removed. */
        if (nftw(pki.dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS) != 0)
            fprintf(stderr, "fuzz: cannot remove %s: %s\n", pki.dir, strerror(errno));
        pki_owned = false;
    }
}

const mwt_pki *mwf_pki(void)
{
    const char *given = getenv("MW_FUZZ_PKI");
    if (pki_ready)
        return &pki;
    if (given != NULL && *given != '\0') {
        if (snprintf(pki.dir, sizeof pki.dir, "%s", given) >= (int)sizeof pki.dir) {
            fprintf(stderr, "fuzz: MW_FUZZ_PKI is too long\n");
            abort();
        }
        pki_ready = true;
        return &pki;
    }
    /* Outside ctest nobody sets MW_BIN_DIR: the build's own bin directory is the default. */
    if (setenv("MW_BIN_DIR", MWF_DEFAULT_BIN_DIR, 0) != 0) {
        fprintf(stderr, "fuzz: setenv: %s\n", strerror(errno));
        abort();
    }
    if (!mwt_pki_make(&pki)) {
        fprintf(stderr, "fuzz: cannot make the test PKI with %s/medwire-pki; set MW_BIN_DIR to the "
                        "directory that holds it, or MW_FUZZ_PKI to a PKI made by tests/support\n",
                getenv("MW_BIN_DIR"));
        abort();
    }
    pki_ready = true;
    pki_owned = true;
    return &pki;
}
