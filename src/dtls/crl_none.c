/* SPDX-License-Identifier: Apache-2.0 */
/* crl_none.c -- revocation for a wolfSSL without CRL support (the device configuration,
 * src/port/none/user_settings.h): a CRL given is refused with a sentence that says so, and
 * nothing of wolfSSL's CRL code is linked. Built instead of crl.c in cross builds. */
#include "dtls/dtls_internal.h" /* first: wolfSSL's options before its other headers */

#include <wolfssl/error-ssl.h>

#include "core/detail.h"
#include "dtls/crl.h"

mw_err mwi_dtls_crl_setup(mwi_dtls_ctx *ctx, const mwi_dtls_config *cfg, mw_error_detail_t *d)
{
    (void)ctx;
    if (cfg->crl_file == NULL && cfg->crl_buf.data == NULL && cfg->crl_buf.len == 0)
        return MW_OK;
    return mwi_detail_fail(d, MW_ECONFIG,
                           "a CRL is given (crl_file or crl_buf), but this build's wolfSSL has "
                           "no CRL support (HAVE_CRL): build wolfSSL with it, or give no CRL");
}

int mwi_dtls_crl_check(mwi_dtls_ctx *ctx, uint8_t *der, int len)
{
    (void)ctx;
    (void)der;
    (void)len;
    return CRL_MISSING; /* never reached: no context here has a CRL */
}

int64_t mwi_dtls_crl_next_update(const uint8_t *data, size_t len, int format)
{
    (void)data;
    (void)len;
    (void)format;
    return 0;
}

mw_err mwi_dtls_crl_replace(mwi_dtls_ctx *ctx, const mwi_dtls_cred *crl, bool newer_only,
                            mw_error_detail_t *d)
{
    (void)ctx;
    (void)crl;
    (void)newer_only;
    return mwi_detail_fail(d, MW_ECONFIG, "this build's wolfSSL has no CRL support (HAVE_CRL)");
}

mw_err mwi_dtls_ctx_update_crl(mwi_dtls_ctx *ctx, const uint8_t *der, size_t len,
                               mwi_dtls_conn *live, mw_error_detail_t *d)
{
    (void)ctx;
    (void)der;
    (void)len;
    (void)live;
    return mwi_detail_fail(d, MW_ECONFIG, "this build's wolfSSL has no CRL support (HAVE_CRL)");
}

bool mwi_dtls_ctx_crl(const mwi_dtls_ctx *ctx, const uint8_t **der, size_t *len)
{
    (void)ctx;
    (void)der;
    (void)len;
    return false;
}
