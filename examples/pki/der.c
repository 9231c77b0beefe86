/* SPDX-License-Identifier: Apache-2.0 */
/* der.c -- the DER that medwire-pki writes and reads itself: a growable builder and TLV headers. */

#include "der.h"

#include <stdlib.h>
#include <string.h>

#include <wolfssl/options.h>
#include <wolfssl/wolfcrypt/settings.h>
#include <wolfssl/wolfcrypt/asn.h>

void pki_db_put(dbuf *b, const void *src, size_t n)
{
    if (b->failed || n == 0)
        return;
    if (n > b->cap - b->len) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap - b->len < n) {
            if (cap > SIZE_MAX / 2) {
                b->failed = true;
                return;
            }
            cap *= 2;
        }
        unsigned char *p = realloc(b->p, cap);
        if (p == NULL) {
            b->failed = true;
            return;
        }
        b->p = p;
        b->cap = cap;
    }
    memcpy(b->p + b->len, src, n);
    b->len += n;
}

void pki_db_str(dbuf *b, const char *s)
{
    pki_db_put(b, s, strlen(s));
}

void pki_db_tlv(dbuf *b, unsigned char tag, const void *content, size_t n)
{
    unsigned char h[6];
    size_t hl = 0;
    h[hl++] = tag;
    if (n < 0x80) {
        h[hl++] = (unsigned char)n;
    } else {
        int k = n > 0xffffff ? 4 : n > 0xffff ? 3 : n > 0xff ? 2 : 1;
        if (n > 0xffffffffu) {
            b->failed = true;
            return;
        }
        h[hl++] = (unsigned char)(0x80 | k);
        for (int i = k - 1; i >= 0; i--)
            h[hl++] = (unsigned char)(n >> (8 * i));
    }
    pki_db_put(b, h, hl);
    pki_db_put(b, content, n);
}

void pki_db_wrap(dbuf *b, unsigned char tag, const dbuf *inner)
{
    if (inner->failed)
        b->failed = true;
    else
        pki_db_tlv(b, tag, inner->p, inner->len);
}

void pki_db_free(dbuf *b)
{
    free(b->p);
    *b = (dbuf){0};
}

void pki_db_uint(dbuf *b, const unsigned char *mag, size_t n)
{
    unsigned char v[24];
    while (n > 1 && mag[0] == 0) {
        mag++;
        n--;
    }
    if (n == 0 || n > 21) {
        b->failed = true;
        return;
    }
    size_t k = 0;
    if (mag[0] & 0x80)
        v[k++] = 0;
    memcpy(v + k, mag, n);
    pki_db_tlv(b, ASN_INTEGER, v, k + n);
}

void pki_db_u64(dbuf *b, uint64_t x)
{
    unsigned char mag[8];
    for (int i = 7; i >= 0; i--, x >>= 8)
        mag[i] = (unsigned char)x;
    pki_db_uint(b, mag, sizeof(mag));
}

size_t pki_der_header(const unsigned char *p, size_t avail, size_t *len)
{
    if (avail < 2)
        return 0;
    size_t hl = 2, n = p[1];
    if (n & 0x80) {
        size_t k = n & 0x7f;
        if (k < 1 || k > 2 || avail < 2 + k)
            return 0;
        n = k == 1 ? p[2] : ((size_t)p[2] << 8) | p[3];
        hl = 2 + k;
    }
    if (n > avail - hl)
        return 0;
    *len = n;
    return hl;
}

size_t pki_der_header_size(size_t len)
{
    return len < 0x80 ? 2 : len < 0x100 ? 3 : 4;
}

size_t pki_der_put_header(unsigned char *out, unsigned char tag, size_t len)
{
    out[0] = tag;
    if (len < 0x80) {
        out[1] = (unsigned char)len;
        return 2;
    }
    if (len < 0x100) {
        out[1] = 0x81;
        out[2] = (unsigned char)len;
        return 3;
    }
    out[1] = 0x82;
    out[2] = (unsigned char)(len >> 8);
    out[3] = (unsigned char)len;
    return 4;
}

bool pki_der_next(const unsigned char *buf, size_t end, size_t *pos, unsigned char *tag,
                  size_t *start, size_t *len)
{
    if (*pos >= end)
        return false;
    size_t hl = pki_der_header(buf + *pos, end - *pos, len);
    if (hl == 0)
        return false;
    *tag = buf[*pos];
    *start = *pos + hl;
    *pos = *start + *len;
    return true;
}
