/* SPDX-License-Identifier: Apache-2.0 */
/* crl.c -- revocation on either side of DTLS (crl.h), for a wolfSSL built with HAVE_CRL. The
 * CRL goes into the context's certificate manager, so wolfSSL checks the peer's certificate
 * against it on every full handshake; dtls.c checks a resumed session's peer through
 * mwi_dtls_crl_check, as wolfSSL then checks nothing. */
#include "dtls/dtls_internal.h" /* first: wolfSSL's options before its other headers */

#include <stdlib.h>
#include <string.h>

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

/* The CRL @p data (PEM or DER as @p format says) as DER, in a buffer of its own (free it), and
 * its thisUpdate and nextUpdate (seconds since the epoch; 0: none, or not readable). NULL if
 * it is not one. */
static uint8_t *crl_der(const uint8_t *data, size_t len, int format, size_t *der_len,
                        int64_t *this_update, int64_t *next_update)
{
    DerBuffer *pem = NULL; /* wc_CertPemToDer takes certificates and requests only */
    const uint8_t *p = data;
    *this_update = *next_update = 0;
    if (format == WOLFSSL_FILETYPE_PEM) {
        if (wc_PemToDer(data, (long)len, CRL_TYPE, &pem, NULL, NULL, NULL) != 0 || pem == NULL) {
            wc_FreeDer(&pem);
            return NULL;
        }
        p = pem->buffer;
        len = pem->length;
    }
    uint8_t *copy = len ? malloc(len) : NULL;
    if (copy != NULL) {
        memcpy(copy, p, len);
        *der_len = len;
    }
    /* CertificateList { tbsCertList { version?, signature, issuer, thisUpdate, nextUpdate?,
     * ... }, ... } (RFC 5280 5.1) */
    const uint8_t *end = p + len, *v;
    size_t n;
    uint8_t tag;
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
        for (int i = 0; ok && i < 2; i++) /* signature, issuer */
            ok = tlv(&p, end, &tag, &v, &n);
        const uint8_t *at = p;
        if (ok && tlv(&p, end, &tag, &v, &n) && (tag == 0x17 || tag == 0x18) &&
            !mwi_asn_time(at, (size_t)(p - at), this_update))
            *this_update = 0;
        at = p;
        if (ok && tlv(&p, end, &tag, &v, &n) && (tag == 0x17 || tag == 0x18) &&
            !mwi_asn_time(at, (size_t)(p - at), next_update))
            *next_update = 0;
    }
    wc_FreeDer(&pem);
    return copy;
}

int64_t mwi_dtls_crl_next_update(const uint8_t *data, size_t len, int format)
{
    size_t n = 0;
    int64_t this_update, next_update;
    free(crl_der(data, len, format, &n, &this_update, &next_update));
    return next_update;
}

/* Keeps the CRL in force, as DER, with its dates: served to devices, compared with the next. */
static void keep(mwi_dtls_ctx *ctx, const uint8_t *data, size_t len, int format)
{
    free(ctx->crl_der);
    ctx->crl_der =
        crl_der(data, len, format, &ctx->crl_der_len, &ctx->crl_this_update, &ctx->crl_next_update);
    if (ctx->crl_der == NULL)
        ctx->crl_der_len = 0;
}

mw_err mwi_dtls_crl_replace(mwi_dtls_ctx *ctx, const mwi_dtls_cred *crl, bool newer_only,
                            mw_error_detail_t *d)
{
    if (newer_only && ctx->crl) {
        size_t n = 0;
        int64_t this_update = 0, next_update = 0;
        uint8_t *der = crl_der(crl->data, crl->len, crl->format, &n, &this_update, &next_update);
        bool read = der != NULL && this_update != 0;
        free(der);
        if (!read)
            return mwi_detail_firstf(d, MW_ECERT_LOAD, 0,
                                     "CRL %s is not a CRL: its thisUpdate cannot be read",
                                     crl->name);
        if (this_update < ctx->crl_this_update)
            return mwi_detail_firstf(d, MW_ECERT_LOAD, 0,
                                     "CRL %s is older than the one in force (thisUpdate %lld "
                                     "before %lld): refused, as it could undo a revocation",
                                     crl->name, (long long)this_update,
                                     (long long)ctx->crl_this_update);
    }
    /* A bad CRL must leave the one in force untouched: tried on a scratch certificate manager
     * first (loading into the live one appends, and a failed load there would leave every
     * peer failing with CRL_MISSING). */
    WOLFSSL_CERT_MANAGER *cm = wolfSSL_CertManagerNew();
    if (cm == NULL)
        return MW_ENOMEM;
    int rc = wolfSSL_CertManagerLoadCABuffer(cm, ctx->ca, (long)ctx->ca_len, ctx->ca_format);
    if (rc == WOLFSSL_SUCCESS)
        rc = wolfSSL_CertManagerEnableCRL(cm, WOLFSSL_CRL_CHECKALL);
    if (rc == WOLFSSL_SUCCESS)
        rc = wolfSSL_CertManagerLoadCRLBuffer(cm, crl->data, (long)crl->len, crl->format);
    wolfSSL_CertManagerFree(cm);
    if (rc == WOLFSSL_SUCCESS) {
        /* Replace, not append: the newest is the whole truth. No handshake runs in between
         * (one thread). */
        WOLFSSL_CERT_MANAGER *live = wolfSSL_CTX_GetCertManager(ctx->wctx);
        if (ctx->crl)
            (void)wolfSSL_CertManagerFreeCRL(live);
        rc = wolfSSL_CTX_EnableCRL(ctx->wctx, WOLFSSL_CRL_CHECKALL);
        if (rc == WOLFSSL_SUCCESS)
            rc = wolfSSL_CTX_LoadCRLBuffer(ctx->wctx, crl->data, (long)crl->len, crl->format);
    }
    if (rc != WOLFSSL_SUCCESS)
        return mwi_dtls_crl_failed(d, crl, rc);
    ctx->crl = true;
    keep(ctx, crl->data, crl->len, crl->format);
    return MW_OK;
}

mw_err mwi_dtls_ctx_update_crl(mwi_dtls_ctx *ctx, const uint8_t *der, size_t len,
                               mwi_dtls_conn *live, mw_error_detail_t *d)
{
    if (d)
        memset(d, 0, sizeof *d);
    if (ctx == NULL || der == NULL || len == 0)
        return MW_EINVAL;
    mwi_dtls_cred crl = {
        .name = "from the gateway", .data = der, .len = len, .format = WOLFSSL_FILETYPE_ASN1};
    mw_err e = mwi_dtls_crl_replace(ctx, &crl, true, d);
    const uint8_t *leaf = NULL;
    int leaf_len = 0;
    if (e == MW_OK && live != NULL && mwi_dtls_peer_leaf(live, &leaf, &leaf_len) &&
        mwi_dtls_check_der_now(ctx, leaf, leaf_len, false) != WOLFSSL_SUCCESS)
        e = mwi_detail_firstf(d, MW_ECERT_REVOKED, 0,
                              "the gateway's certificate is revoked by the CA's current CRL "
                              "(fetched over this session): the session is closed");
    return e;
}

bool mwi_dtls_ctx_crl(const mwi_dtls_ctx *ctx, const uint8_t **der, size_t *len)
{
    if (ctx == NULL || !ctx->crl || ctx->crl_der == NULL)
        return false;
    *der = ctx->crl_der;
    *len = ctx->crl_der_len;
    return true;
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
            keep(ctx, crl.data, crl.len, crl.format);
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
