/* SPDX-License-Identifier: Apache-2.0 */
/* crl.h -- the CA's certificate revocation list: encoded, signed and written to DIR/crl.pem. */
#ifndef MW_PKI_CRL_H
#define MW_PKI_CRL_H

#include <time.h>

#include "ca_index.h"
#include "cert.h"

/**
 * Writes DIR/crl.pem anew from @p idx: every revoked line, thisUpdate @p now, nextUpdate
 * @p days later, and the next number from DIR/crlnumber; prints what it wrote on stdout.
 * The caller holds the CA lock and has loaded the CA with pki_load_ca() into @p ca and
 * @p key. EXIT_SUCCESS, or EXIT_FAILURE after reporting why.
 */
int pki_write_crl(const char *dir, const cert_request *ca, ecc_key *key, const ca_index *idx,
                  time_t now, int days);

#endif
