/* SPDX-License-Identifier: Apache-2.0 */
/* csr.c -- PKCS#10 certificate requests: made with a key file or a key in a PKCS#11 token, and
 * read back by a CA, which trusts nothing in them but the key and the name. */

/*
 * A device whose key lives in a token cannot hand its key to 'issue': it asks for a
 * certificate instead. 'csr' signs the request in the token (wolfCrypt's device callback
 * sends the digest there; the key never leaves it), and 'issue --csr' takes from the request
 * only its public key and its common name, after checking the request's own signature, which
 * proves that whoever made it holds the private key. Everything else in the certificate is
 * the CA's profile (cert.c), whatever the request asked for.
 */

#include "csr.h"

#include <errno.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <wolfssl/wolfcrypt/asn.h>
#include <wolfssl/wolfcrypt/error-crypt.h>
#include <wolfssl/wolfcrypt/sha256.h>

#include "core/p11_uri.h"
#include "core/wipe.h"
#include "diag.h"
#include "dtls/p11.h"
#include "files.h"

#define PEM_CAP 8192
#define DER_CAP 2048

/* The signer and the public key of a request: a key file's one key, or a token's pair. */
typedef struct {
    ecc_key pub;    /* the public key the request carries (the whole key for a key file) */
    ecc_key signer; /* a token key: a handle whose signatures are made in the token */
    bool pub_init, signer_init;
    mwi_p11_key *p11;
} csr_key;

static int load_file_key(const char *path, csr_key *k)
{
    unsigned char pem[PEM_CAP], der[PEM_CAP];
    long n = pki_read_small_file(path, pem, sizeof(pem));
    if (n < 0)
        return pki_fail("cannot read the key %s: %s", path, strerror(errno));
    int rc = EXIT_FAILURE;
    int len = wc_KeyPemToDer(pem, (int)n, der, sizeof(der), NULL);
    word32 idx = 0, off = 0;
    if (len > 0 && wc_GetPkcs8TraditionalOffset(der, &off, (word32)len) < 0)
        off = 0;
    idx = off;
    int ret = len > 0 ? wc_EccPrivateKeyDecode(der, &idx, &k->pub, (word32)len) : len;
    if (ret != 0)
        rc = pki_fail("%s is not a PEM EC private key: %s (wolfCrypt error %d)", path,
                      wc_GetErrorString(ret), ret);
    else if (wc_ecc_get_curve_id(k->pub.idx) != ECC_SECP256R1)
        rc = pki_fail("%s is not a P-256 key, the protocol's only curve", path);
    else
        rc = EXIT_SUCCESS;
    mwi_wipe(pem, sizeof(pem));
    mwi_wipe(der, sizeof(der));
    return rc;
}

static int load_token_key(const char *uri, csr_key *k)
{
    mw_error_detail_t d = {MW_OK, 0, ""};
    uint8_t point[MWI_P11_POINT_LEN];
    if (mwi_p11_key_open(uri, &k->p11, &d) != MW_OK ||
        mwi_p11_key_point(k->p11, point, &d) != MW_OK)
        return pki_fail("%s", d.reason);
    int ret = wc_ecc_import_x963_ex(point, sizeof point, &k->pub, ECC_SECP256R1);
    if (ret != 0)
        return pki_wolf_fail("cannot take the token's public key", ret);
    ret = mwi_p11_key_ecc_init(k->p11, &k->signer);
    if (ret != 0)
        return pki_wolf_fail("cannot reach the token's private key", ret);
    k->signer_init = true;
    return EXIT_SUCCESS;
}

static void free_key(csr_key *k)
{
    if (k->signer_init)
        wc_ecc_free(&k->signer);
    if (k->pub_init)
        wc_ecc_free(&k->pub);
    mwi_p11_key_close(&k->p11);
    mwi_wipe(k, sizeof *k);
}

int pki_make_csr(const char *key, const char *cn, const char *out_file, bool force)
{
    csr_key k;
    memset(&k, 0, sizeof k);
    WC_RNG rng;
    unsigned char der[DER_CAP], pem[PEM_CAP];
    int rc = EXIT_FAILURE;
    int ret = wc_InitRng(&rng);
    if (ret != 0)
        return pki_wolf_fail("cannot start the random generator", ret);
    Cert *req = wc_CertNew(NULL);
    if (req == NULL || wc_ecc_init(&k.pub) != 0) {
        rc = pki_fail("out of memory");
        goto out;
    }
    k.pub_init = true;
    bool in_token = mwi_p11_is_uri(key);
    rc = in_token ? load_token_key(key, &k) : load_file_key(key, &k);
    if (rc != EXIT_SUCCESS)
        goto out;
    ecc_key *signer = in_token ? &k.signer : &k.pub;
    if (!in_token && (ret = wc_ecc_set_rng(&k.pub, &rng)) != 0) {
        rc = pki_wolf_fail("cannot attach the random generator to the key", ret);
        goto out;
    }
    req->version = 0; /* PKCS#10 v1 */
    req->sigType = CTC_SHA256wECDSA;
    pki_subject_raw(req->sbjRaw, sizeof(req->sbjRaw), cn);
    ret = wc_MakeCertReq_ex(req, der, sizeof(der), ECC_TYPE, &k.pub);
    if (ret > 0)
        ret = wc_SignCert_ex(req->bodySz, req->sigType, der, sizeof(der), ECC_TYPE, signer, &rng);
    if (ret <= 0) {
        rc = pki_wolf_fail(
            in_token ? "cannot sign the request in the token" : "cannot sign the request", ret);
        goto out;
    }
    int pem_len = wc_DerToPem(der, (word32)ret, pem, sizeof(pem), CERTREQ_TYPE);
    if (pem_len <= 0) {
        rc = pki_wolf_fail("cannot encode the request as PEM", pem_len);
        goto out;
    }
    /* pki_write_atomic takes a directory and a name: split --out into both. */
    char dir_buf[4096], base_buf[4096];
    if (strlen(out_file) >= sizeof(dir_buf)) {
        rc = pki_fail("--out path too long: %s", out_file);
        goto out;
    }
    snprintf(dir_buf, sizeof dir_buf, "%s", out_file);
    snprintf(base_buf, sizeof base_buf, "%s", out_file);
    rc = pki_write_atomic(dirname(dir_buf), basename(base_buf), pem, (size_t)pem_len, 0644, force);
    if (rc == EXIT_SUCCESS) {
        /* What 'issue --csr' will check, checked now, while the maker can still act. */
        ecc_key back;
        char back_cn[PKI_NAME_MAX_LEN + 1];
        if (wc_ecc_init(&back) != 0) {
            rc = pki_fail("out of memory");
            goto out;
        }
        rc = pki_read_csr(out_file, &back, back_cn);
        wc_ecc_free(&back);
    }
    if (rc == EXIT_SUCCESS)
        printf("wrote %s (CN=%s, %s)\n", out_file, cn,
               in_token ? "signed in the token" : "signed with the key file");
out:
    if (req != NULL)
        wc_CertFree(req);
    free_key(&k);
    wc_FreeRng(&rng);
    return rc;
}

/* How many commonName attributes the DER Name contents @p raw (@p n bytes) holds: the OID
 * 2.5.4.3 as it is encoded. A value holding the same bytes counts too, which only refuses. */
static int count_cns(const unsigned char *raw, size_t n)
{
    static const unsigned char oid_cn[5] = {ASN_OBJECT_ID, 3, 0x55, 0x04, 0x03};
    int count = 0;
    for (size_t i = 0; i + sizeof(oid_cn) <= n; i++)
        count += memcmp(raw + i, oid_cn, sizeof(oid_cn)) == 0;
    return count;
}

int pki_read_csr(const char *file, ecc_key *key, char cn[PKI_NAME_MAX_LEN + 1])
{
    unsigned char pem[PEM_CAP], der[DER_CAP], hash[WC_SHA256_DIGEST_SIZE];
    long n = pki_read_small_file(file, pem, sizeof(pem));
    if (n < 0)
        return pki_fail("cannot read the request %s: %s", file, strerror(errno));
    int der_len = wc_CertPemToDer(pem, (int)n, der, sizeof(der), CERTREQ_TYPE);
    if (der_len <= 0)
        return pki_fail("%s is not a PEM certificate request (wolfCrypt error %d)", file, der_len);
    DecodedCert dc;
    int rc = EXIT_FAILURE, verified = 0;
    word32 idx = 0;
    wc_InitDecodedCert(&dc, der, (word32)der_len, NULL);
    int ret = wc_ParseCert(&dc, CERTREQ_TYPE, NO_VERIFY, NULL);
    if (ret != 0) {
        rc = pki_fail("cannot parse the request %s: %s (wolfCrypt error %d)", file,
                      wc_GetErrorString(ret), ret);
    } else if (dc.keyOID != ECDSAk ||
               wc_EccPublicKeyDecode(dc.publicKey, &idx, key, dc.pubKeySize) != 0 ||
               wc_ecc_get_curve_id(key->idx) != ECC_SECP256R1 || wc_ecc_check_key(key) != 0) {
        rc = pki_fail("the request %s does not carry an ECDSA P-256 key, the protocol's only "
                      "curve; make the key with that curve",
                      file);
    } else if (dc.signatureOID != CTC_SHA256wECDSA || dc.sigIndex <= dc.certBegin ||
               dc.sigIndex > (word32)der_len ||
               wc_Sha256Hash(dc.source + dc.certBegin, dc.sigIndex - dc.certBegin, hash) != 0 ||
               wc_ecc_verify_hash(dc.signature, dc.sigLength, hash, sizeof(hash), &verified, key) !=
                   0 ||
               verified != 1) {
        rc = pki_fail("the request %s is not signed ecdsa-with-SHA256 by its own key: it was "
                      "altered, or made without the private key; make it again",
                      file);
    } else if (dc.subjectCN == NULL || dc.subjectCNLen <= 0 || dc.subjectCNLen > PKI_NAME_MAX_LEN ||
               count_cns(dc.subjectRaw, (size_t)dc.subjectRawLen) != 1) {
        rc = pki_fail("the request %s must name its subject by exactly one common name", file);
    } else {
        memcpy(cn, dc.subjectCN, (size_t)dc.subjectCNLen);
        cn[dc.subjectCNLen] = '\0';
        bool ok = strlen(cn) == (size_t)dc.subjectCNLen && pki_valid_id(cn);
        for (char *c = cn; *c != '\0'; c++) /* shown below: nothing the terminal would obey */
            if (*c < 0x20 || *c > 0x7e)
                *c = '?';
        if (!ok)
            rc = pki_fail("the request %s asks for the name '%s', which is no identity: use 1-64 "
                          "characters from A-Z a-z 0-9 . _ -, starting with a letter or digit",
                          file, cn);
        else
            rc = EXIT_SUCCESS;
    }
    wc_FreeDecodedCert(&dc);
    return rc;
}
