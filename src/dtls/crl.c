/* SPDX-License-Identifier: Apache-2.0 */
/* crl.c -- revocation on either side of DTLS (crl.h), for a wolfSSL built with HAVE_CRL. The
 * CRL goes into the context's certificate manager, so wolfSSL checks the peer's certificate
 * against it on every full handshake; dtls.c checks a resumed session's peer through
 * mwi_dtls_crl_check, as wolfSSL then checks nothing. */
#include "dtls/dtls_internal.h" /* first: wolfSSL's options before its other headers */

#include <wolfssl/error-ssl.h>
#include <wolfssl/wolfcrypt/error-crypt.h>

#include "core/asn_time.h"
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

/* One DER value at *p (before @p end): its tag, and its contents in *val / *len; *p moves past
 * it. False if it does not fit. */
static bool tlv(const uint8_t **p, const uint8_t *end, uint8_t *tag, const uint8_t **val,
                size_t *len)
{
    const uint8_t *q = *p;
    if (end - q < 2)
        return false;
    *tag = q[0];
    size_t n = q[1];
    q += 2;
    if (n & 0x80) {
        size_t k = n & 0x7f;
        if (k == 0 || k > 3 || (size_t)(end - q) < k)
            return false;
        n = 0;
        for (size_t i = 0; i < k; i++)
            n = n << 8 | *q++;
    }
    if ((size_t)(end - q) < n)
        return false;
    *val = q;
    *len = n;
    *p = q + n;
    return true;
}

int64_t mwi_dtls_crl_next_update(const uint8_t *data, size_t len, int format)
{
    DerBuffer *der = NULL; /* wc_CertPemToDer takes certificates and requests only */
    const uint8_t *p = data;
    if (format == WOLFSSL_FILETYPE_PEM) {
        if (wc_PemToDer(data, (long)len, CRL_TYPE, &der, NULL, NULL, NULL) != 0 || der == NULL) {
            wc_FreeDer(&der);
            return 0;
        }
        p = der->buffer;
        len = der->length;
    }
    /* CertificateList { tbsCertList { version?, signature, issuer, thisUpdate, nextUpdate?,
     * ... }, ... } (RFC 5280 5.1) */
    const uint8_t *end = p + len, *v;
    size_t n;
    uint8_t tag;
    int64_t t = 0;
    bool ok = tlv(&p, end, &tag, &v, &n) && tag == 0x30;
    if (ok) {
        p = v;
        end = v + n;
        ok = tlv(&p, end, &tag, &v, &n) && tag == 0x30;
    }
    if (ok) {
        p = v;
        end = v + n;
        const uint8_t *save = p;
        ok = tlv(&p, end, &tag, &v, &n);
        if (ok && tag != 0x02) /* no version */
            p = save;
        for (int i = 0; ok && i < 3; i++) /* signature, issuer, thisUpdate */
            ok = tlv(&p, end, &tag, &v, &n);
        const uint8_t *at = p;
        if (ok && tlv(&p, end, &tag, &v, &n) && (tag == 0x17 || tag == 0x18) &&
            !mwi_asn_time(at, (size_t)(p - at), &t))
            t = 0;
    }
    wc_FreeDer(&der);
    return t;
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
        if (rc == WOLFSSL_SUCCESS) {
            ctx->crl = true;
            ctx->crl_next_update = mwi_dtls_crl_next_update(crl.data, crl.len, crl.format);
        } else
            e = mwi_dtls_crl_failed(d, &crl, rc);
    }
    mwi_dtls_cred_free(&crl);
    return e;
}

int mwi_dtls_crl_check(mwi_dtls_ctx *ctx, uint8_t *der, int len)
{
    return wolfSSL_CertManagerCheckCRL(wolfSSL_CTX_GetCertManager(ctx->wctx), der, len);
}
