/* SPDX-License-Identifier: Apache-2.0 */
/* csr.h -- PKCS#10 certificate requests: made with a key file or a key in a PKCS#11 token, and
 * read back by a CA, which trusts nothing in them but the key and the name. */
#ifndef MW_PKI_CSR_H
#define MW_PKI_CSR_H

#include <stdbool.h>

#include "cert.h"

/**
 * Writes to @p out_file the PEM PKCS#10 request for subject O=medwire, CN=@p cn, with the
 * public key of @p key (a PEM key file, or an RFC 7512 "pkcs11:" URI whose key signs in the
 * token and never leaves it), signed ecdsa-with-SHA256 by it. The request is read back and
 * checked as 'issue --csr' will. EXIT_SUCCESS, or EXIT_FAILURE after reporting why.
 */
int pki_make_csr(const char *key, const char *cn, const char *out_file, bool force);

/**
 * Reads the PEM request @p file: its signature must verify with its own key, which must be
 * ECDSA P-256, and its subject must hold exactly one common name, a valid identity
 * ([A-Za-z0-9][A-Za-z0-9._-]{0,63}), copied to @p cn. The public key goes to @p key
 * (initialised by the caller). EXIT_SUCCESS, or EXIT_FAILURE after reporting why.
 */
int pki_read_csr(const char *file, ecc_key *key, char cn[PKI_NAME_MAX_LEN + 1]);

#endif
