/* SPDX-License-Identifier: Apache-2.0 */
/* crl.c -- revocation on either side of DTLS (crl.h), for a wolfSSL built with HAVE_CRL. The
 * CRL goes into the context's certificate manager, so wolfSSL checks the peer's certificate
 * against it on every full handshake; dtls.c checks a resumed session's peer through
 * mwi_dtls_crl_check, as wolfSSL then checks nothing. */
#include "dtls/dtls_internal.h" /* first: wolfSSL's options before its other headers */

#include <wolfssl/error-ssl.h>
#include <wolfssl/wolfcrypt/error-crypt.h>

#include "core/detail.h"
#include "core/limits.h"
#include "dtls/crl.h"

mw_err mwi_dtls_crl_failed(mw_error_detail_t *d, const mwi_dtls_cred *c, int code)
{
    mwi_detail_firstf(d, MW_ECERT_LOAD, code, "cannot load CRL %s: %s (wolfSSL %d)", c->name,
                      code == ASN_CRL_NO_SIGNER_E ? "not signed by the configured CA"
                      : code == ASN_CRL_CONFIRM_E ? "its signature does not verify"
                      : code == ASN_PARSE_E       ? "expired (past nextUpdate) or malformed"
                                                  : "refused",
                      code);
    return MW_ECERT_LOAD;
}

mw_err mwi_dtls_crl_setup(mwi_dtls_ctx *ctx, const mwi_dtls_config *cfg, mw_error_detail_t *d)
{
    mwi_dtls_cred crl;
    mw_err e = mwi_dtls_cred_get("CRL", cfg->crl_file, "crl_file", cfg->crl_buf, "crl_buf",
                                 MWI_CRL_FILE_MAX, cfg->read_file, &crl, d);
    if (e != MW_OK || crl.data == NULL)
        return e;
    if (wolfSSL_CTX_EnableCRL(ctx->wctx, WOLFSSL_CRL_CHECKALL) != WOLFSSL_SUCCESS) {
        e = MW_EINTERNAL;
    } else {
        int rc = wolfSSL_CTX_LoadCRLBuffer(ctx->wctx, crl.data, (long)crl.len, crl.format);
        if (rc == WOLFSSL_SUCCESS)
            ctx->crl = true;
        else
            e = mwi_dtls_crl_failed(d, &crl, rc);
    }
    mwi_dtls_cred_free(&crl);
    return e;
}

int mwi_dtls_crl_check(mwi_dtls_ctx *ctx, uint8_t *der, int len)
{
    return wolfSSL_CertManagerCheckCRL(wolfSSL_CTX_GetCertManager(ctx->wctx), der, len);
}
