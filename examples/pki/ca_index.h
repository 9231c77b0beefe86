/* SPDX-License-Identifier: Apache-2.0 */
/* ca_index.h -- a CA directory's record of what it issued and revoked, and its CRL number. */
#ifndef MW_PKI_CA_INDEX_H
#define MW_PKI_CA_INDEX_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cert.h"
#include "civil_time.h"

/** One line of index.txt; the strings point into ca_index.text or to the caller's storage. */
typedef struct {
    char status;         /* 'V' valid, 'R' revoked, 'E' expired ('openssl ca -updatedb') */
    const char *expiry;  /* notAfter */
    const char *revoked; /* "" or revocationDate[,reason] */
    const char *serial;  /* hex */
    const char *file;    /* "unknown": 'openssl ca' would name a certificate file here */
    const char *subject; /* "/O=medwire/CN=NAME" */
} index_entry;

/** The lines of index.txt, in file order; released with pki_index_free(). */
typedef struct {
    char *text;
    index_entry *e;
    size_t n, cap;
} ca_index;

/**
 * Loads DIR/index.txt into @p idx; a missing file is an empty index. Every line must parse:
 * at the first that does not, EXIT_FAILURE after reporting the file, the line and what is
 * wrong. @p idx is to be freed with pki_index_free() whatever the result.
 */
int pki_index_load(const char *dir, ca_index *idx);

/** Replaces DIR/index.txt with @p idx, atomically. EXIT_SUCCESS, or EXIT_FAILURE after
 *  reporting why. */
int pki_index_save(const char *dir, const ca_index *idx);

/** Appends a copy of @p e, whose strings must outlive @p idx; false when out of memory. */
bool pki_index_push(ca_index *idx, const index_entry *e);

/** Frees what @p idx holds and leaves it empty. */
void pki_index_free(ca_index *idx);

/**
 * Takes the lock on DIR/.lock that every change to the CA directory's state holds, waiting
 * for another medwire-pki to release it; sets *out_fd, for pki_unlock_ca(). EXIT_SUCCESS, or
 * EXIT_FAILURE after reporting why.
 */
int pki_lock_ca(const char *dir, int *out_fd);

/** Releases the lock pki_lock_ca() took; a negative @p fd is no lock. */
void pki_unlock_ca(int fd);

/**
 * Adds to DIR/index.txt, under the CA lock, the certificate @p req describes (serial,
 * not-after, CN) as valid. EXIT_SUCCESS, or EXIT_FAILURE after reporting that nothing was
 * issued.
 */
int pki_record_issued(const char *dir, const cert_request *req);
/** As pki_record_issued, for a caller that holds the CA lock already (pki_lock_ca): taking it
 *  again and closing that descriptor would release the caller's lock too (fcntl locks belong to
 *  the process). */
int pki_record_issued_locked(const char *dir, const cert_request *req);

/** Reads the next cRLNumber from DIR/crlnumber (1 when missing) into *out and stores the one
 *  after it. EXIT_SUCCESS, or EXIT_FAILURE after reporting why. */
int pki_take_crl_number(const char *dir, uint64_t *out);

/** The CN of a subject as index.txt writes it ("/O=medwire/CN=NAME"), or "" if none;
 *  truncated to @p cap - 1 characters. */
void pki_subject_cn(const char *subject, char *out, size_t cap);

/** Reads the revocation field of a revoked line, "DATE" or "DATE,REASON": *reason is the
 *  CRLReason code, or -1 when none is given. False if the field is not one of these. */
bool pki_parse_revoked_field(const char *s, utc_time *when, int *reason);

/** Reads a serial number in hex as 'openssl ca' writes it: an even number of digits, at most
 *  20 octets (RFC 5280 4.1.2.2). Sets *out_len; false on anything else. */
bool pki_parse_serial_hex(const char *s, unsigned char *out, size_t *out_len);

#endif
