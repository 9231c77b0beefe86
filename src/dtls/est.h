/* SPDX-License-Identifier: Apache-2.0 */
/* est.h -- the certificate formats of EST over CoAP (RFC 9148) that the gateway reads and
 * writes: a device's PKCS#10 request checked before anyone signs it, CA certificates from PEM
 * or DER, and PKCS#7 "certs-only" (a SignedData without signers, RFC 5272 / RFC 7030 4.1.3).
 * In the gateway library only; nothing here holds a key. */
#ifndef MWI_DTLS_EST_H
#define MWI_DTLS_EST_H

#include <stddef.h>
#include <stdint.h>

#include "medwire/err.h"
#include "dtls/dtls.h"

/** Largest PKCS#10 request read (a P-256 one with our subject is about 250 bytes). */
#define MWI_EST_CSR_MAX 2048u
/** Certificates one PKCS#7 certs-only answer carries at most. */
#define MWI_EST_CERTS_MAX 8

/**
 * Checks the DER PKCS#10 request @p der for a device: parsed whole, an ECDSA P-256 key, signed
 * ecdsa-with-SHA256 by that key, exactly one common name, a valid identity, copied to @p cn;
 * and no extension asking for more than a device gets (a CA, or an extended key usage other
 * than clientAuth). MW_OK; MW_EINVAL for a request that is malformed or not signed by its key;
 * MW_EIDENTITY for one that asks for what a device may not have. @p d says which and why.
 */
MW_NODISCARD mw_err mwi_est_check_csr(const uint8_t *der, size_t len, char cn[MW_ID_MAX + 1],
                                      mw_error_detail_t *d);

/** A certificate list: pointers into the caller's @p store. */
typedef struct mwi_est_certs {
    const uint8_t *der[MWI_EST_CERTS_MAX];
    size_t len[MWI_EST_CERTS_MAX];
    size_t n;
} mwi_est_certs;

/**
 * Reads the certificates of @p buf (PEM, any number; or one DER certificate) as DER into
 * store[0..cap), listed in @p out. MW_OK; MW_EINVAL if it holds none or one does not decode;
 * MW_ENOSPC if they do not fit (more than MWI_EST_CERTS_MAX, or @p cap bytes).
 */
MW_NODISCARD mw_err mwi_est_read_certs(const uint8_t *buf, size_t len, uint8_t *store, size_t cap,
                                       mwi_est_certs *out);

/**
 * Writes the PKCS#7 certs-only ContentInfo (application/pkcs7-mime; smime-type=certs-only)
 * holding @p certs into out[0..cap). MW_OK and *out_len; MW_ENOSPC if it does not fit.
 */
MW_NODISCARD mw_err mwi_est_certs_only(const mwi_est_certs *certs, uint8_t *out, size_t cap,
                                       size_t *out_len);

/** Largest certificate mwi_est_cert_facts_read reads. */
#define MWI_EST_CERT_READ_MAX 8192u

/** What the gateway's store records of an issued certificate. */
typedef struct mwi_est_cert_facts {
    char serial[2 * 20 + 1]; /**< the serial in lowercase hex, as the CA folder's index names it */
    int64_t not_before;      /**< Unix seconds */
    int64_t not_after;
} mwi_est_cert_facts;

/** Reads the serial and validity of the DER certificate @p der (its signature is not checked
 *  here). MW_OK; MW_EINVAL if it does not decode, or its serial is longer than RFC 5280's 20
 *  bytes, its dates unreadable, or it is longer than MWI_EST_CERT_READ_MAX. */
MW_NODISCARD mw_err mwi_est_cert_facts_read(const uint8_t *der, size_t len,
                                            mwi_est_cert_facts *out);

/** The peer's certificate (DER) that the established connection @p c was authenticated with,
 *  also for a resumed session; false if there is none. */
bool mwi_dtls_conn_peer_cert(mwi_dtls_conn *c, const uint8_t **der, size_t *len);

#endif
