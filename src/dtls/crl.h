/* SPDX-License-Identifier: Apache-2.0 */
/* crl.h -- revocation on either side of DTLS: a context's CRL, loaded after its CA, and a peer's
 * certificate checked against it. The gateway checks its devices' certificates; a device given
 * a CRL checks its gateway's. crl.c needs a wolfSSL built with HAVE_CRL (Debian's); crl_none.c
 * stands in for it in the device configuration (src/port/none/user_settings.h), which has none. */
#ifndef MWI_DTLS_CRL_H
#define MWI_DTLS_CRL_H

#include <stdint.h>

#include "dtls/dtls_internal.h"

/** Loads @p cfg's CRL (crl_file or crl_buf) into @p ctx, whose CA is already loaded: wolfSSL
 *  checks the CRL's signature against it. Sets ctx->crl. Neither given: MW_OK and nothing
 *  checked. MW_ECERT_LOAD (which file, why), MW_ECONFIG (this wolfSSL has no CRL), MW_ENOMEM. */
MW_NODISCARD mw_err mwi_dtls_crl_setup(mwi_dtls_ctx *ctx, const mwi_dtls_config *cfg,
                                       mw_error_detail_t *d);
/** The CRL's verdict on the certificate @p der: WOLFSSL_SUCCESS, or wolfSSL's code
 *  (CRL_CERT_REVOKED; CRL_MISSING when the CRL expired since it was loaded). */
int mwi_dtls_crl_check(mwi_dtls_ctx *ctx, uint8_t *der, int len);
/** The nextUpdate of the CRL @p data (@p len bytes, PEM or DER as @p format says), in seconds
 *  since the epoch; 0 if it has none or cannot be read. */
int64_t mwi_dtls_crl_next_update(const uint8_t *data, size_t len, int format);
/** Replaces @p ctx's CRL with @p crl once it loads (signed by the CA, not expired) on a scratch
 *  manager; the CRL in force stays on any failure. With @p newer_only, a CRL whose thisUpdate
 *  is before the one in force is refused (it could undo a revocation). MW_ECERT_LOAD (why,
 *  naming crl->name), MW_ENOMEM, MW_ECONFIG (this wolfSSL has no CRL). */
MW_NODISCARD mw_err mwi_dtls_crl_replace(mwi_dtls_ctx *ctx, const mwi_dtls_cred *crl,
                                         bool newer_only, mw_error_detail_t *d);
/** Fills @p d for a CRL wolfSSL refused with @p code, naming @p c; MW_ECERT_LOAD. */
mw_err mwi_dtls_crl_failed(mw_error_detail_t *d, const mwi_dtls_cred *c, int code);

#endif
