/* SPDX-License-Identifier: Apache-2.0 */
/* est.c -- EST's certificate formats (est.h): a device's PKCS#10 request read with wolfCrypt's
 * parser and its signature checked by hand (wolfCrypt 5.5.4 does not verify a request's own
 * signature), CA certificates from PEM, and PKCS#7 certs-only, which wolfCrypt would build
 * only as a signed message: its DER is written here, a few fixed headers around the
 * certificates. */
#include "dtls/dtls_internal.h" /* first: wolfSSL's options before its other headers */

#include <wolfssl/wolfcrypt/asn.h>
#include <wolfssl/wolfcrypt/asn_public.h>
#include <wolfssl/wolfcrypt/ecc.h>
#include <wolfssl/wolfcrypt/error-crypt.h>
#include <wolfssl/wolfcrypt/sha256.h>

#include <stdlib.h>
#include <string.h>

#include "core/asn_time.h"
#include "core/detail.h"
#include "dtls/est.h"

/* How many commonName attributes the DER Name @p raw holds: the OID 2.5.4.3 as encoded. A value
 * holding those bytes counts too, which can only refuse. */
static int count_cns(const uint8_t *raw, size_t n)
{
    static const uint8_t oid_cn[5] = {0x06, 3, 0x55, 0x04, 0x03};
    int count = 0;
    for (size_t i = 0; i + sizeof oid_cn <= n; i++)
        count += memcmp(raw + i, oid_cn, sizeof oid_cn) == 0;
    return count;
}

static bool id_char(char ch, bool first)
{
    return (ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') ||
           (!first && (ch == '.' || ch == '_' || ch == '-'));
}

/* The request's signature, checked with its own key (already decoded into @p key). */
static bool self_signed(const DecodedCert *dc, size_t len, ecc_key *key)
{
    uint8_t hash[WC_SHA256_DIGEST_SIZE];
    int verified = 0;
    return dc->signatureOID == CTC_SHA256wECDSA && dc->sigIndex > dc->certBegin &&
           dc->sigIndex <= len &&
           wc_Sha256Hash(dc->source + dc->certBegin, dc->sigIndex - dc->certBegin, hash) == 0 &&
           wc_ecc_verify_hash(dc->signature, dc->sigLength, hash, sizeof hash, &verified, key) ==
               0 &&
           verified == 1;
}

mw_err mwi_est_check_csr(const uint8_t *der, size_t len, char cn[MW_ID_MAX + 1],
                         mw_error_detail_t *d)
{
    cn[0] = '\0';
    memset(d, 0, sizeof *d);
    if (der == NULL || len == 0 || len > MWI_EST_CSR_MAX)
        return mwi_detail_firstf(d, MW_EINVAL, 0,
                                 "the request is empty or larger than %u bytes (a PKCS#10 "
                                 "request in DER is expected)",
                                 MWI_EST_CSR_MAX);
    /* wolfCrypt's parser reads from a buffer it may not write, but takes it non-const. */
    uint8_t copy[MWI_EST_CSR_MAX];
    memcpy(copy, der, len);
    DecodedCert dc;
    ecc_key key;
    word32 idx = 0;
    mw_err e = MW_OK;
    wc_InitDecodedCert(&dc, copy, (word32)len, NULL);
    if (wc_ecc_init(&key) != 0) {
        wc_FreeDecodedCert(&dc);
        return mwi_detail_fail(d, MW_ENOMEM, "out of memory");
    }
    int ret = wc_ParseCert(&dc, CERTREQ_TYPE, NO_VERIFY, NULL);
    if (ret != 0) {
        e = mwi_detail_firstf(d, MW_EINVAL, ret,
                              "the request is not a PKCS#10 request in DER: %s (wolfCrypt %d)",
                              wc_GetErrorString(ret), ret);
    } else if (dc.keyOID != ECDSAk ||
               wc_EccPublicKeyDecode(dc.publicKey, &idx, &key, dc.pubKeySize) != 0 ||
               wc_ecc_get_curve_id(key.idx) != ECC_SECP256R1 || wc_ecc_check_key(&key) != 0) {
        e = mwi_detail_fail(d, MW_EINVAL,
                            "the request does not carry an ECDSA P-256 key, the protocol's only "
                            "curve");
    } else if (!self_signed(&dc, len, &key)) {
        e = mwi_detail_fail(d, MW_EINVAL,
                            "the request is not signed ecdsa-with-SHA256 by its own key: altered, "
                            "or made without the private key");
    } else if (dc.subjectCN == NULL || dc.subjectCNLen <= 0 || dc.subjectCNLen > MW_ID_MAX ||
               count_cns(dc.subjectRaw, (size_t)dc.subjectRawLen) != 1) {
        e = mwi_detail_fail(d, MW_EIDENTITY,
                            "the request must name its subject by exactly one common name");
    } else if (dc.isCA || (dc.extExtKeyUsageSet && dc.extExtKeyUsage != EXTKEYUSE_CLIENT_AUTH)) {
        e = mwi_detail_fail(d, MW_EIDENTITY,
                            "the request asks for more than a device's certificate (a CA, or "
                            "an extended key usage other than clientAuth)");
    } else {
        size_t n = (size_t)dc.subjectCNLen;
        bool ok = true;
        for (size_t i = 0; i < n; i++)
            ok = ok && id_char(dc.subjectCN[i], i == 0);
        if (!ok) {
            e = mwi_detail_fail(d, MW_EIDENTITY,
                                "the request's common name is no identity: 1-64 characters "
                                "from A-Z a-z 0-9 . _ -, starting with a letter or digit");
        } else {
            memcpy(cn, dc.subjectCN, n);
            cn[n] = '\0';
        }
    }
    wc_ecc_free(&key);
    wc_FreeDecodedCert(&dc);
    return e;
}

mw_err mwi_est_read_certs(const uint8_t *buf, size_t len, uint8_t *store, size_t cap,
                          mwi_est_certs *out)
{
    static const char begin[] = "-----BEGIN CERTIFICATE-----";
    static const char end[] = "-----END CERTIFICATE-----";
    out->n = 0;
    size_t used = 0;
    const uint8_t *p = buf;
    const uint8_t *stop = buf + len;
    bool pem = false;
    for (;;) {
        const uint8_t *b = NULL;
        for (const uint8_t *q = p; q + sizeof begin - 1 <= stop; q++)
            if (memcmp(q, begin, sizeof begin - 1) == 0) {
                b = q;
                break;
            }
        if (b == NULL)
            break;
        const uint8_t *e = NULL;
        for (const uint8_t *q = b; q + sizeof end - 1 <= stop; q++)
            if (memcmp(q, end, sizeof end - 1) == 0) {
                e = q + sizeof end - 1;
                break;
            }
        if (e == NULL)
            return MW_EINVAL;
        pem = true;
        if (out->n == MWI_EST_CERTS_MAX || used >= cap)
            return MW_ENOSPC;
        int n = wc_CertPemToDer(b, (int)(e - b), store + used, (int)(cap - used), CERT_TYPE);
        if (n == BUFFER_E)
            return MW_ENOSPC;
        if (n <= 0)
            return MW_EINVAL;
        out->der[out->n] = store + used;
        out->len[out->n++] = (size_t)n;
        used += (size_t)n;
        p = e;
    }
    if (pem)
        return MW_OK;
    if (len == 0 || len > cap) /* one DER certificate, or nothing */
        return len == 0 ? MW_EINVAL : MW_ENOSPC;
    memcpy(store, buf, len);
    out->der[0] = store;
    out->len[0] = len;
    out->n = 1;
    return MW_OK;
}

/* DER's length octets for @p n: the count, and written to @p p when not NULL. */
static size_t der_len(uint8_t *p, size_t n)
{
    size_t k = n < 0x80 ? 0 : n < 0x100 ? 1 : n < 0x10000 ? 2 : 3;
    if (p) {
        if (k == 0) {
            p[0] = (uint8_t)n;
        } else {
            p[0] = (uint8_t)(0x80 | k);
            for (size_t i = 0; i < k; i++)
                p[1 + i] = (uint8_t)(n >> (8 * (k - 1 - i)));
        }
    }
    return 1 + k;
}

/* Writes a tag and the length @p n at out[*at], when it fits; moves *at on past them. */
static void put_head(uint8_t *out, size_t cap, size_t *at, uint8_t tag, size_t n)
{
    size_t h = 1 + der_len(NULL, n);
    if (*at + h <= cap) {
        out[*at] = tag;
        (void)der_len(out + *at + 1, n);
    }
    *at += h;
}

static void put_bytes(uint8_t *out, size_t cap, size_t *at, const uint8_t *b, size_t n)
{
    if (*at + n <= cap)
        memcpy(out + *at, b, n);
    *at += n;
}

mw_err mwi_est_certs_only(const mwi_est_certs *certs, uint8_t *out, size_t cap, size_t *out_len)
{
    /* ContentInfo { signedData, [0] SignedData { version 1, digestAlgorithms {},
     *   encapContentInfo { data }, certificates [0] { ... }, signerInfos {} } } */
    static const uint8_t oid_signed_data[] = {0x06, 0x09, 0x2a, 0x86, 0x48, 0x86,
                                              0xf7, 0x0d, 0x01, 0x07, 0x02};
    static const uint8_t head[] = {0x02, 0x01, 0x01, /* version 1 */
                                   0x31, 0x00,       /* digestAlgorithms: none */
                                   0x30, 0x0b, 0x06, 0x09, 0x2a, 0x86, 0x48,
                                   0x86, 0xf7, 0x0d, 0x01, 0x07, 0x01}; /* encapContentInfo: data */
    static const uint8_t tail[] = {0x31, 0x00};                         /* signerInfos: none */
    size_t all = 0;
    for (size_t i = 0; i < certs->n; i++)
        all += certs->len[i];
    size_t set = 1 + der_len(NULL, all) + all;
    size_t sd_body = sizeof head + set + sizeof tail;
    size_t sd = 1 + der_len(NULL, sd_body) + sd_body;
    size_t explicit0 = 1 + der_len(NULL, sd) + sd;
    size_t at = 0;
    put_head(out, cap, &at, 0x30, sizeof oid_signed_data + explicit0);
    put_bytes(out, cap, &at, oid_signed_data, sizeof oid_signed_data);
    put_head(out, cap, &at, 0xa0, sd);
    put_head(out, cap, &at, 0x30, sd_body);
    put_bytes(out, cap, &at, head, sizeof head);
    put_head(out, cap, &at, 0xa0, all);
    for (size_t i = 0; i < certs->n; i++)
        put_bytes(out, cap, &at, certs->der[i], certs->len[i]);
    put_bytes(out, cap, &at, tail, sizeof tail);
    *out_len = at <= cap ? at : 0;
    return at <= cap ? MW_OK : MW_ENOSPC;
}

mw_err mwi_est_cert_facts_read(const uint8_t *der, size_t len, mwi_est_cert_facts *out)
{
    memset(out, 0, sizeof *out);
    if (der == NULL || len == 0 || len > MWI_EST_CERT_READ_MAX)
        return MW_EINVAL;
    DecodedCert *dc = malloc(sizeof *dc);
    uint8_t *copy = malloc(len); /* wolfCrypt's parser takes its input non-const */
    if (dc == NULL || copy == NULL) {
        free(dc);
        free(copy);
        return MW_ENOMEM;
    }
    memcpy(copy, der, len);
    wc_InitDecodedCert(dc, copy, (word32)len, NULL);
    mw_err e = MW_EINVAL;
    if (wc_ParseCert(dc, CERT_TYPE, NO_VERIFY, NULL) == 0 && dc->serialSz > 0 &&
        dc->serialSz <= 20 && dc->beforeDate && dc->beforeDateLen > 0 && dc->afterDate &&
        dc->afterDateLen > 0 &&
        mwi_asn_time(dc->beforeDate, (size_t)dc->beforeDateLen, &out->not_before) &&
        mwi_asn_time(dc->afterDate, (size_t)dc->afterDateLen, &out->not_after)) {
        static const char hex[] = "0123456789abcdef";
        for (int i = 0; i < dc->serialSz; i++) {
            out->serial[2 * i] = hex[dc->serial[i] >> 4];
            out->serial[2 * i + 1] = hex[dc->serial[i] & 15];
        }
        out->serial[2 * dc->serialSz] = '\0';
        e = MW_OK;
    }
    wc_FreeDecodedCert(dc);
    free(dc);
    free(copy);
    return e;
}
