/* SPDX-License-Identifier: Apache-2.0 */
/* p11_uri.c -- taking apart the RFC 7512 URI that names a private key in a PKCS#11 token. */
#include <string.h>

#include "core/detail.h"
#include "core/p11_uri.h"
#include "core/wipe.h"

#define SCHEME     "pkcs11:"
#define SCHEME_LEN (sizeof SCHEME - 1)

typedef enum { IN_PATH, IN_QUERY } part;

/* The attributes understood, where each goes, and how its value is kept. */
typedef enum { A_TOKEN, A_OBJECT, A_ID, A_TYPE, A_MODULE, A_PIN_VALUE, A_PIN_SOURCE, A_COUNT } attr;

static const struct {
    const char *name;
    part where;
} attrs[A_COUNT] = {
    [A_TOKEN] = {"token", IN_PATH},
    [A_OBJECT] = {"object", IN_PATH},
    [A_ID] = {"id", IN_PATH},
    [A_TYPE] = {"type", IN_PATH},
    [A_MODULE] = {"module-path", IN_QUERY},
    [A_PIN_VALUE] = {"pin-value", IN_QUERY},
    [A_PIN_SOURCE] = {"pin-source", IN_QUERY},
};

bool mwi_p11_is_uri(const char *s)
{
    if (s == NULL)
        return false;
    for (size_t i = 0; i < SCHEME_LEN; i++) {
        char c = s[i];
        if (c >= 'A' && c <= 'Z')
            c = (char)(c - 'A' + 'a');
        if (c != SCHEME[i]) /* also stops at the NUL of a shorter string */
            return false;
    }
    return true;
}

static int hex_value(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* RFC 7512 section 2.3: the characters a value may hold as they are; the rest percent-encoded. */
static bool literal_ok(char c, part where)
{
    if ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9'))
        return true;
    if (strchr("-._~:[]@!$'()*+,=", c) != NULL)
        return c != '\0';
    return where == IN_QUERY && c != '\0' && strchr("/?|", c) != NULL;
}

/*
 * Percent-decodes @p n bytes at @p v into @p out (room for @p cap bytes); the decoded length
 * goes to *out_len. With @p text, a NUL is appended (counted in @p cap) and control bytes are
 * refused. Returns NULL, or what is wrong.
 */
static const char *decode(const char *v, size_t n, part where, bool text, uint8_t *out, size_t cap,
                          size_t *out_len)
{
    size_t o = 0, room = text ? cap - 1 : cap;
    for (size_t i = 0; i < n; i++) {
        uint8_t b;
        if (v[i] == '%') {
            int hi = n - i >= 3 ? hex_value(v[i + 1]) : -1;
            int lo = n - i >= 3 ? hex_value(v[i + 2]) : -1;
            if (hi < 0 || lo < 0)
                return "has a '%' not followed by two hexadecimal digits";
            b = (uint8_t)(hi << 4 | lo);
            i += 2;
        } else if (literal_ok(v[i], where)) {
            b = (uint8_t)v[i];
        } else {
            return "has a character that must be percent-encoded";
        }
        if (text && (b < 0x20 || b == 0x7f))
            return "has a control character";
        if (o == room)
            return "has a value that is too long";
        out[o++] = b;
    }
    if (text)
        out[o] = '\0';
    *out_len = o;
    return NULL;
}

/* Wipes what was parsed so far and fails with "key URI: attribute 'NAME' WHAT". */
static mw_err refuse(mwi_p11_uri *out, mw_error_detail_t *d, const char *name, const char *what)
{
    mwi_p11_uri_wipe(out);
    return mwi_detail_firstf(d, MW_ECONFIG, 0, "key URI: attribute '%s' %s", name, what);
}

/* One "name=value" of @p n bytes at @p s, found in @p where. */
static mw_err take(const char *s, size_t n, part where, bool seen[A_COUNT], mwi_p11_uri *u,
                   mw_error_detail_t *d)
{
    const char *eq = memchr(s, '=', n);
    size_t name_len = eq ? (size_t)(eq - s) : n;
    int a = -1;
    for (int k = 0; k < A_COUNT; k++) {
        if (strlen(attrs[k].name) == name_len && memcmp(attrs[k].name, s, name_len) == 0)
            a = k;
    }
    if (a < 0) {
        char shown[33];
        size_t m = name_len < sizeof shown - 1 ? name_len : sizeof shown - 1;
        for (size_t i = 0; i < m; i++)
            shown[i] = s[i] >= 0x20 && s[i] < 0x7f ? s[i] : '?';
        shown[m] = '\0';
        return refuse(u, d, shown,
                      "is unknown; medwire understands token, object, id, type, module-path, "
                      "pin-value and pin-source");
    }
    const char *name = attrs[a].name;
    if (attrs[a].where != where)
        return refuse(u, d, name,
                      where == IN_PATH ? "belongs after the '?' (RFC 7512)"
                                       : "belongs before the '?' (RFC 7512)");
    if (seen[a])
        return refuse(u, d, name, "is given more than once; give it once");
    seen[a] = true;
    if (eq == NULL || eq + 1 == s + n)
        return refuse(u, d, name, "has no value");
    const char *v = eq + 1;
    size_t vn = n - name_len - 1, got = 0;
    const char *why = NULL;
    char type[16];
    switch ((attr)a) {
    case A_TOKEN:
        why = decode(v, vn, where, true, (uint8_t *)u->token, sizeof u->token, &got);
        break;
    case A_OBJECT:
        why = decode(v, vn, where, true, (uint8_t *)u->object, sizeof u->object, &got);
        u->has_object = true;
        break;
    case A_ID:
        why = decode(v, vn, where, false, u->id, sizeof u->id, &u->id_len);
        u->has_id = true;
        break;
    case A_TYPE:
        why = decode(v, vn, where, true, (uint8_t *)type, sizeof type, &got);
        if (why == NULL && strcmp(type, "private") != 0)
            why = "has a type other than 'private' (the key is a private key)";
        break;
    case A_MODULE:
        why = decode(v, vn, where, true, (uint8_t *)u->module_path, sizeof u->module_path, &got);
        if (why == NULL && u->module_path[0] != '/')
            why = "has a relative path (give the module's absolute path)";
        break;
    case A_PIN_VALUE:
        why = decode(v, vn, where, true, (uint8_t *)u->pin, sizeof u->pin, &got);
        u->has_pin_value = true;
        break;
    case A_PIN_SOURCE:
        why = decode(v, vn, where, true, (uint8_t *)u->pin_source, sizeof u->pin_source, &got);
        u->has_pin_source = true;
        if (why == NULL && strncmp(u->pin_source, "file:", 5) == 0) {
            /* "file:/path" and "file:///path" name the file /path. */
            const char *p = u->pin_source + 5;
            if (strncmp(p, "//", 2) == 0)
                p += 2;
            memmove(u->pin_source, p, strlen(p) + 1);
        }
        if (why == NULL && u->pin_source[0] == '\0')
            why = "has no file name";
        break;
    case A_COUNT:
        break;
    }
    if (why != NULL)
        return refuse(u, d, name, why);
    return MW_OK;
}

mw_err mwi_p11_uri_parse(const char *uri, mwi_p11_uri *u, mw_error_detail_t *d)
{
    if (u == NULL)
        return mwi_detail_fail(d, MW_EINVAL, "no URI output given");
    memset(u, 0, sizeof *u);
    if (!mwi_p11_is_uri(uri))
        return mwi_detail_fail(d, MW_ECONFIG, "key URI: does not start with 'pkcs11:'");
    size_t len = strlen(uri);
    if (len > MWI_P11_URI_MAX)
        return mwi_detail_fail(d, MW_ECONFIG, "key URI: longer than 1024 characters");
    bool seen[A_COUNT] = {false};
    const char *p = uri + SCHEME_LEN, *end = uri + len;
    const char *q = memchr(p, '?', (size_t)(end - p));
    part where = IN_PATH;
    const char *stop = q ? q : end;
    while (p < end) {
        const char sep = where == IN_PATH ? ';' : '&';
        const char *next = memchr(p, sep, (size_t)(stop - p));
        const char *e = next ? next : stop;
        if (e == p) {
            /* "pkcs11:?..." has an empty path, which RFC 7512 allows; nothing else is empty. */
            if (!(where == IN_PATH && e == stop && e == uri + SCHEME_LEN)) {
                mwi_p11_uri_wipe(u);
                return mwi_detail_fail(d, MW_ECONFIG,
                                       "key URI: an empty attribute (two separators in a row, "
                                       "or one at the end)");
            }
        } else {
            mw_err e2 = take(p, (size_t)(e - p), where, seen, u, d);
            if (e2 != MW_OK)
                return e2;
        }
        if (next != NULL) {
            p = next + 1;
            if (p == stop) {
                mwi_p11_uri_wipe(u);
                return mwi_detail_fail(d, MW_ECONFIG,
                                       "key URI: an empty attribute (two separators in a row, "
                                       "or one at the end)");
            }
        } else if (where == IN_PATH && q != NULL) {
            where = IN_QUERY;
            p = q + 1;
            stop = end;
            if (p == end) {
                mwi_p11_uri_wipe(u);
                return mwi_detail_fail(d, MW_ECONFIG, "key URI: nothing after the '?'");
            }
        } else {
            break;
        }
    }
    const char *missing = !seen[A_TOKEN]                 ? "token (the token's label)"
                          : !u->has_object && !u->has_id ? "object or id (the key's label or id)"
                          : !seen[A_MODULE]              ? "module-path (the PKCS#11 module)"
                                                         : NULL;
    if (missing != NULL) {
        mwi_p11_uri_wipe(u);
        return mwi_detail_firstf(d, MW_ECONFIG, 0, "key URI: attribute %s is required", missing);
    }
    if (u->has_pin_value && u->has_pin_source) {
        mwi_p11_uri_wipe(u);
        return mwi_detail_fail(d, MW_ECONFIG, "key URI: give pin-value or pin-source, not both");
    }
    return MW_OK;
}

void mwi_p11_uri_shown(const char *uri, char *out, size_t cap)
{
    static const char pin[] = "pin-value=";
    if (out == NULL || cap == 0)
        return;
    size_t o = 0;
    const char *s = uri ? uri : "";
    while (*s != '\0' && o + 1 < cap) {
        /* An attribute starts after '?' or '&'; pin-value only lives in the query. */
        bool at_attr = s != uri && (s[-1] == '?' || s[-1] == '&');
        if (at_attr && strncmp(s, pin, sizeof pin - 1) == 0) {
            const char *stars = "pin-value=***";
            for (; *stars != '\0' && o + 1 < cap; stars++)
                out[o++] = *stars;
            while (*s != '\0' && *s != '&')
                s++;
            continue;
        }
        out[o++] = *s >= 0x20 && *s < 0x7f ? *s : '?';
        s++;
    }
    out[o] = '\0';
}

void mwi_p11_uri_wipe(mwi_p11_uri *u)
{
    if (u != NULL)
        mwi_wipe(u, sizeof *u);
}
