/* SPDX-License-Identifier: Apache-2.0 */
/* der.h -- the DER that medwire-pki writes and reads itself: a growable builder and TLV headers. */
#ifndef MW_PKI_DER_H
#define MW_PKI_DER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/**
 * Growable output, zero-initialised ({0}) before use and released with pki_db_free(). A CRL
 * grows with every revocation, so unlike a certificate it has no fixed bound. A failure
 * (out of memory, a length DER cannot carry here) is sticky: every later append is a no-op,
 * and the caller checks @c failed once at the end.
 */
typedef struct {
    unsigned char *p;
    size_t len, cap;
    bool failed;
} dbuf;

/** Appends @p n bytes of @p src. */
void pki_db_put(dbuf *b, const void *src, size_t n);

/** Appends the characters of @p s, without its NUL. */
void pki_db_str(dbuf *b, const char *s);

/** Appends one TLV with a definite, minimal length (X.690 10.1); lengths above 2^32 - 1 fail. */
void pki_db_tlv(dbuf *b, unsigned char tag, const void *content, size_t n);

/** Appends @p inner as the content of one TLV; a failed @p inner fails @p b. */
void pki_db_wrap(dbuf *b, unsigned char tag, const dbuf *inner);

/** Frees the buffer and leaves @p b empty, ready for reuse. */
void pki_db_free(dbuf *b);

/**
 * Appends a non-negative INTEGER from @p n big-endian magnitude bytes: leading zero octets
 * dropped, and a 0x00 put in front when the top bit is set so that it stays positive
 * (X.690 8.3). Fails for an empty or longer than 21-octet magnitude.
 */
void pki_db_uint(dbuf *b, const unsigned char *mag, size_t n);

/** pki_db_uint() of @p x. */
void pki_db_u64(dbuf *b, uint64_t x);

/**
 * Parses the TLV header at @p p, with @p avail bytes from @p p on: returns the header's size
 * and sets *len to the content's, or returns 0 when the header is malformed, uses more than
 * two length octets, or announces more content than @p avail holds.
 */
size_t pki_der_header(const unsigned char *p, size_t avail, size_t *len);

/** The size of the header pki_der_put_header() writes for @p len bytes (at most 65535). */
size_t pki_der_header_size(size_t len);

/** Writes a tag and the minimal length for @p len bytes (at most 65535); returns its size. */
size_t pki_der_put_header(unsigned char *out, unsigned char tag, size_t len);

/**
 * Reads the TLV at *pos of buf[0, end): sets @p tag, the content's offset in @p start and its
 * length in @p len, and moves *pos past the TLV. False at @p end or on a TLV that does not fit.
 */
bool pki_der_next(const unsigned char *buf, size_t end, size_t *pos, unsigned char *tag,
                  size_t *start, size_t *len);

#endif
