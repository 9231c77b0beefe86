/* SPDX-License-Identifier: Apache-2.0 */
/* cert.c -- the keys and certificates of medwire's profile: making, signing, loading a CA. */

/*
 * The certificate profile of protocol v1 (medwire-pki is its reference):
 *
 *  - Keys ECDSA P-256; signatures ecdsa-with-SHA256; X.509 v3 (RFC 7925 section 4.4.2).
 *  - Serial: 16 random bytes, top bit clear and first byte non-zero, so the INTEGER is
 *    positive and always 16 octets (RFC 5280 4.1.2.2 allows up to 20).
 *  - Subject: O=medwire, CN=NAME. NAME is [A-Za-z0-9][A-Za-z0-9._-]{0,63}: it is also a file
 *    name and a DNS name, so no '/', no leading '.' or '-', and at most ub-common-name (64).
 *  - CA: basicConstraints CA:TRUE, pathLenConstraint 0 (critical), keyUsage
 *    keyCertSign|cRLSign, SKI.
 *    Default validity now - 1 hour to now + 20 years.
 *  - Device: basicConstraints CA:FALSE, keyUsage digitalSignature, EKU clientAuth only, SKI,
 *    AKI of the CA, subjectAltName URI urn:medwire:device:NAME.
 *  - Gateway: as a device but EKU serverAuth only and subjectAltName dNSName=NAME: a device
 *    requires its one CN and every dNSName to be exactly the name it expects.
 *    Default leaf validity now - 1 hour to now + 5 years.
 *  - Explicit dates run from 00:00:00Z of --not-before to 23:59:59Z of --not-after, as
 *    UTCTime for 1950-2049 and GeneralizedTime otherwise (RFC 5280 4.1.2.5).
 *  - Private keys: SEC1 PEM "EC PRIVATE KEY", mode 0600. Certificates: PEM, mode 0644.
 *    Every file is written to a temporary name, fsynced and renamed, so a crash never
 *    leaves half a key under the real name.
 */

#include "cert.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <wolfssl/wolfcrypt/asn.h>
#include <wolfssl/wolfcrypt/error-crypt.h>

#include "core/wipe.h"
#include "der.h"
#include "diag.h"
#include "files.h"

#define PEM_CAP     8192
#define KEY_DER_CAP 512

/* Appends one RelativeDistinguishedName holding a single UTF8String attribute. Every length
 * stays below 128 (values are at most 64 bytes), so short-form lengths suffice. */
static size_t put_rdn(unsigned char *p, unsigned char oid_last, const char *value)
{
    size_t n = strlen(value);
    p[0] = ASN_SET | ASN_CONSTRUCTED;
    p[1] = (unsigned char)(n + 9);
    p[2] = ASN_SEQUENCE | ASN_CONSTRUCTED;
    p[3] = (unsigned char)(n + 7);
    p[4] = ASN_OBJECT_ID;
    p[5] = 3;
    p[6] = 0x55; /* id-at (2.5.4) */
    p[7] = 0x04;
    p[8] = oid_last;
    p[9] = ASN_UTF8STRING;
    p[10] = (unsigned char)n;
    memcpy(p + 11, value, n); /* NOLINT(bugprone-not-null-terminated-result): DER, not a string */
    return n + 11;
}

/*
 * wolfCrypt's CertName fields hold 63 characters, one short of ub-common-name and our NAME
 * grammar, so the subject goes in as raw RDNs (wolfCrypt adds the Name's SEQUENCE around them).
 * wolfCrypt reads that buffer as a C string: it must be NUL-free, which holds because every
 * length is non-zero and names are printable ASCII.
 */
void pki_subject_raw(unsigned char *dst, size_t cap, const char *cn)
{
    memset(dst, 0, cap);
    size_t n = put_rdn(dst, 0x0a, "medwire"); /* organizationName */
    (void)put_rdn(dst + n, 0x03, cn);         /* commonName */
}

/* GeneralNames with one name of the given context tag (2: dNSName, 6: URI), RFC 5280 4.2.1.6. */
static int set_alt_name(Cert *cert, unsigned char tag, const char *prefix, const char *name)
{
    size_t plen = strlen(prefix), nlen = strlen(name), len = plen + nlen;
    if (len > 125)
        return BAD_FUNC_ARG;
    cert->altNames[0] = ASN_SEQUENCE | ASN_CONSTRUCTED;
    cert->altNames[1] = (byte)(len + 2);
    cert->altNames[2] = ASN_CONTEXT_SPECIFIC | tag;
    cert->altNames[3] = (byte)len;
    memcpy(cert->altNames + 4, prefix, plen);
    memcpy(cert->altNames + 4 + plen, name, nlen);
    cert->altNamesSz = (int)(len + 4);
    return 0;
}

/*
 * RFC 5280 4.2.1.9: a CA certificate's basicConstraints MUST be critical, and wolfCrypt 5.5.4
 * writes it non-critical with no way to ask otherwise. So between wc_MakeCert_ex and
 * wc_SignCert_ex the unsigned TBSCertificate is rebuilt with critical=TRUE inserted after the
 * extension's OID, and every enclosing length grown to match. Returns the new TBS length, or
 * -1 if the TBS is not shaped as wolfCrypt writes it.
 */
static int make_basic_constraints_critical(unsigned char *tbs, int tbs_len, int cap)
{
    static const unsigned char bc_oid[5] = {ASN_OBJECT_ID, 3, 0x55, 0x1d, 0x13};
    static const unsigned char critical[3] = {ASN_BOOLEAN, 1, 0xff};
    size_t len, tbs_hl = pki_der_header(tbs, (size_t)tbs_len, &len);
    if (tbs_hl == 0 || tbs[0] != (ASN_SEQUENCE | ASN_CONSTRUCTED) ||
        tbs_hl + len != (size_t)tbs_len)
        return -1;

    /* Extensions, [3] EXPLICIT, are the TBS's last field. */
    size_t a3 = tbs_hl, a3_len = 0, a3_hl = 0;
    while (a3 < (size_t)tbs_len) {
        a3_hl = pki_der_header(tbs + a3, (size_t)tbs_len - a3, &a3_len);
        if (a3_hl == 0)
            return -1;
        if (tbs[a3] == (ASN_CONTEXT_SPECIFIC | ASN_CONSTRUCTED | 3))
            break;
        a3 += a3_hl + a3_len;
    }
    if (a3 >= (size_t)tbs_len || a3 + a3_hl + a3_len != (size_t)tbs_len)
        return -1;
    size_t exts = a3 + a3_hl, exts_len;
    size_t exts_hl = pki_der_header(tbs + exts, a3_len, &exts_len);
    if (exts_hl == 0 || exts_hl + exts_len != a3_len)
        return -1;

    size_t ext = exts + exts_hl, ext_len = 0, ext_hl = 0;
    size_t end = exts + exts_hl + exts_len;
    for (; ext < end; ext += ext_hl + ext_len) {
        ext_hl = pki_der_header(tbs + ext, end - ext, &ext_len);
        if (ext_hl == 0)
            return -1;
        if (ext_len >= sizeof(bc_oid) && memcmp(tbs + ext + ext_hl, bc_oid, sizeof(bc_oid)) == 0)
            break;
    }
    if (ext >= end)
        return -1;
    size_t after_oid = ext + ext_hl + sizeof(bc_oid);
    if (tbs[after_oid] == ASN_BOOLEAN)
        return tbs_len; /* already marked */

    size_t new_ext = ext_len + sizeof(critical);
    size_t new_exts = exts_len - (ext_hl + ext_len) + pki_der_header_size(new_ext) + new_ext;
    size_t new_a3 = pki_der_header_size(new_exts) + new_exts;
    size_t new_tbs = (a3 - tbs_hl) + pki_der_header_size(new_a3) + new_a3;
    size_t total = pki_der_header_size(new_tbs) + new_tbs;
    unsigned char out[PKI_CERT_DER_CAP];
    if (total > sizeof(out) || total > (size_t)cap)
        return -1;

    size_t o = pki_der_put_header(out, ASN_SEQUENCE | ASN_CONSTRUCTED, new_tbs);
    memcpy(out + o, tbs + tbs_hl, a3 - tbs_hl);
    o += a3 - tbs_hl;
    o += pki_der_put_header(out + o, tbs[a3], new_a3);
    o += pki_der_put_header(out + o, tbs[exts], new_exts);
    memcpy(out + o, tbs + exts + exts_hl, ext - (exts + exts_hl));
    o += ext - (exts + exts_hl);
    o += pki_der_put_header(out + o, tbs[ext], new_ext);
    memcpy(out + o, bc_oid, sizeof(bc_oid));
    o += sizeof(bc_oid);
    memcpy(out + o, critical, sizeof(critical));
    o += sizeof(critical);
    memcpy(out + o, tbs + after_oid, end - after_oid);
    o += end - after_oid;
    memcpy(tbs, out, o);
    return (int)o;
}

/* NAME becomes a file name, a CN and a DNS name: the set keeps it safe as all three. */
bool pki_valid_id(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > PKI_NAME_MAX_LEN)
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        bool alnum = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
        if (!alnum && (i == 0 || (c != '.' && c != '_' && c != '-')))
            return false;
    }
    return true;
}

int pki_make_key(WC_RNG *rng, ecc_key *key)
{
    int ret = wc_ecc_make_key_ex(rng, 32, key, ECC_SECP256R1);
    if (ret != 0)
        return pki_wolf_fail("cannot generate a P-256 key", ret);
    /* Timing-resistant ECC (this build's default) blinds signing with the key's own RNG. */
    ret = wc_ecc_set_rng(key, rng);
    if (ret != 0)
        return pki_wolf_fail("cannot attach the random generator to the key", ret);
    return EXIT_SUCCESS;
}

static int set_serial(WC_RNG *rng, Cert *cert)
{
    do {
        int ret = wc_RNG_GenerateBlock(rng, cert->serial, PKI_SERIAL_LEN);
        if (ret != 0)
            return pki_wolf_fail("cannot draw a serial number", ret);
        cert->serial[0] &= 0x7f;
    } while (cert->serial[0] == 0); /* a leading zero octet would shorten the DER INTEGER */
    cert->serialSz = PKI_SERIAL_LEN;
    return EXIT_SUCCESS;
}

int pki_make_cert(WC_RNG *rng, cert_request *req, unsigned char *der, int cap, int *out_len)
{
    int rc = EXIT_FAILURE, ret;
    Cert *cert = wc_CertNew(NULL);
    if (cert == NULL)
        return pki_fail("out of memory");

    cert->version = 2; /* X.509 v3 */
    cert->sigType = CTC_SHA256wECDSA;
    cert->keyType = ECC_KEY;
    rc = set_serial(rng, cert);
    if (rc != EXIT_SUCCESS)
        goto out;
    memcpy(req->serial, cert->serial, PKI_SERIAL_LEN);

    pki_subject_raw(cert->sbjRaw, sizeof(cert->sbjRaw), req->cn);
    if (req->ca_der) {
        /* The issuer must equal the CA's subject byte for byte: verifiers match names on
         * their encoding. wc_SetIssuerBuffer re-encodes the name from CertName fields (63
         * characters, UTF8String), so the raw RDNs go in place of what it set. */
        ret = wc_SetIssuerBuffer(cert, req->ca_der, req->ca_der_len);
        if (ret == 0)
            ret = wc_SetAuthKeyIdFromCert(cert, req->ca_der, req->ca_der_len);
        if (ret != 0) {
            rc = pki_wolf_fail("cannot take the issuer from the CA certificate", ret);
            goto out;
        }
        memcpy(cert->issRaw, req->ca_subject, sizeof(cert->issRaw));
    } else {
        memcpy(cert->issRaw, cert->sbjRaw, sizeof(cert->issRaw));
    }

    cert->beforeDateSz = pki_encode_time(&req->not_before, cert->beforeDate);
    cert->afterDateSz = pki_encode_time(&req->not_after, cert->afterDate);
    if (cert->beforeDateSz < 0 || cert->afterDateSz < 0) {
        rc = pki_fail("cannot encode the validity dates");
        goto out;
    }

    ret = wc_SetSubjectKeyIdFromPublicKey_ex(cert, ECC_TYPE, req->subject_key);
    if (ret != 0) {
        rc = pki_wolf_fail("cannot compute the subject key identifier", ret);
        goto out;
    }

    if (req->role == ROLE_CA) {
        cert->isCA = 1;
        /* The protocol's chain is CA to leaf: a CA certificate this CA signed by mistake must
         * not be able to issue (RFC 5280 4.2.1.9). */
        cert->pathLen = 0;
        cert->pathLenSet = 1;
        ret = wc_SetKeyUsage(cert, "keyCertSign,cRLSign");
    } else {
        /* Explicit CA:FALSE, so no verifier can mistake a leaf for a CA (RFC 5280 4.2.1.9). */
        cert->isCA = 0;
        cert->basicConstSet = 1;
        ret = wc_SetKeyUsage(cert, "digitalSignature");
        if (ret == 0)
            ret = wc_SetExtKeyUsage(cert, req->role == ROLE_DEVICE ? "clientAuth" : "serverAuth");
        if (ret == 0 && req->role == ROLE_GATEWAY)
            ret = set_alt_name(cert, 2, "", req->cn);
        if (ret == 0 && req->role == ROLE_DEVICE)
            ret = set_alt_name(cert, 6, "urn:medwire:device:", req->cn);
    }
    if (ret != 0) {
        rc = pki_wolf_fail("cannot set the certificate extensions", ret);
        goto out;
    }

    ret = wc_MakeCert_ex(cert, der, (word32)cap, ECC_TYPE, req->subject_key, rng);
    if (ret < 0) {
        rc = pki_wolf_fail("cannot build the certificate", ret);
        goto out;
    }
    int body_len = cert->bodySz;
    if (req->role == ROLE_CA) {
        body_len = make_basic_constraints_critical(der, body_len, cap);
        if (body_len < 0) {
            rc = pki_fail("cannot mark basicConstraints critical: unexpected certificate layout");
            goto out;
        }
    }
    ret = wc_SignCert_ex(body_len, cert->sigType, der, (word32)cap, ECC_TYPE, req->signer_key, rng);
    if (ret < 0) {
        rc = pki_wolf_fail("cannot sign the certificate", ret);
        goto out;
    }
    *out_len = ret;
    rc = EXIT_SUCCESS;
out:
    wc_CertFree(cert);
    return rc;
}

/* The CA's key must be the one its certificate names, or every leaf we sign fails to verify
 * long after this program has exited; check it here, where the user can still act. */
static int check_ca(const char *dir, const unsigned char *der, int der_len, ecc_key *key,
                    unsigned char *subject, size_t subject_cap)
{
    DecodedCert dc;
    unsigned char from_cert[256], from_key[256];
    word32 cert_len = sizeof(from_cert);
    int rc = EXIT_SUCCESS;

    wc_InitDecodedCert(&dc, der, (word32)der_len, NULL);
    int ret = wc_ParseCert(&dc, CERT_TYPE, NO_VERIFY, NULL);
    if (ret != 0) {
        rc = pki_fail("cannot parse %s/ca.crt: %s (wolfCrypt error %d)", dir,
                      wc_GetErrorString(ret), ret);
    } else if (!dc.isCA) {
        rc = pki_fail("%s/ca.crt is not a CA certificate; make one with '" PKI_PROG " ca --out %s'",
                      dir, dir);
    } else if (wc_ecc_get_curve_id(key->idx) != ECC_SECP256R1) {
        rc = pki_fail("%s/ca.key is not a P-256 key, which the medwire profile requires; make a CA "
                      "with '" PKI_PROG " ca --out DIR'",
                      dir);
    } else {
        ret = wc_GetPubKeyDerFromCert(&dc, from_cert, &cert_len);
        int key_len = wc_EccPublicKeyToDer(key, from_key, sizeof(from_key), 1);
        if (ret != 0 || key_len <= 0 || (word32)key_len != cert_len ||
            memcmp(from_cert, from_key, cert_len) != 0) {
            rc = pki_fail("%s/ca.key does not belong to %s/ca.crt; restore the matching pair", dir,
                          dir);
        }
    }
    /* subjectRaw is the Name's content, as wolfCrypt wants issRaw; it reads issRaw up to the
     * first NUL, so a name with a zero byte (a CA made by another tool) cannot be carried. */
    if (rc == EXIT_SUCCESS) {
        size_t n = dc.subjectRaw ? (size_t)dc.subjectRawLen : 0;
        if (n == 0 || n >= subject_cap || memchr(dc.subjectRaw, 0, n) != NULL) {
            rc = pki_fail("the subject of %s/ca.crt cannot be used as an issuer name by wolfCrypt; "
                          "make a CA with '" PKI_PROG " ca --out DIR'",
                          dir);
        } else {
            memset(subject, 0, subject_cap);
            memcpy(subject, dc.subjectRaw, n);
        }
    }
    wc_FreeDecodedCert(&dc);
    return rc;
}

int pki_load_ca(const char *dir, unsigned char *der, cert_request *req, ecc_key *key)
{
    char path[4096];
    unsigned char pem[PEM_CAP], key_der[KEY_DER_CAP];
    int rc = EXIT_FAILURE;

    if (!pki_path_join(path, sizeof(path), dir, "", "ca", ".crt"))
        return pki_fail("--ca path too long: %s", dir);
    long n = pki_read_small_file(path, pem, sizeof(pem));
    if (n < 0) {
        return pki_fail("cannot read CA certificate %s: %s (create one with '" PKI_PROG
                        " ca --out %s')",
                        path, strerror(errno), dir);
    }
    int der_len = wc_CertPemToDer(pem, (int)n, der, PKI_CERT_DER_CAP, CERT_TYPE);
    if (der_len <= 0)
        return pki_fail("%s is not a PEM certificate (wolfCrypt error %d)", path, der_len);
    req->ca_der = der;
    req->ca_der_len = der_len;

    pki_path_join(path, sizeof(path), dir, "", "ca", ".key");
    n = pki_read_small_file(path, pem, sizeof(pem));
    if (n < 0) {
        rc = pki_fail("cannot read CA key %s: %s (create one with '" PKI_PROG " ca --out %s')",
                      path, strerror(errno), dir);
        goto out;
    }
    int key_len = wc_KeyPemToDer(pem, (int)n, key_der, sizeof(key_der), NULL);
    word32 idx = 0;
    int ret = key_len > 0 ? wc_EccPrivateKeyDecode(key_der, &idx, key, (word32)key_len) : key_len;
    if (ret != 0) {
        rc = pki_fail("%s is not a PEM EC private key: %s (wolfCrypt error %d)", path,
                      wc_GetErrorString(ret), ret);
        goto out;
    }
    rc = check_ca(dir, der, der_len, key, req->ca_subject, sizeof(req->ca_subject));
out:
    mwi_wipe(pem, sizeof(pem));
    mwi_wipe(key_der, sizeof(key_der));
    return rc;
}

int pki_write_key(const char *dir, const char *name, ecc_key *key, bool force)
{
    unsigned char der[KEY_DER_CAP], pem[PEM_CAP];
    char file[PKI_NAME_MAX_LEN + 8];
    int rc = EXIT_FAILURE;
    snprintf(file, sizeof(file), "%s.key", name);
    int der_len = wc_EccKeyToDer(key, der, sizeof(der));
    if (der_len <= 0) {
        rc = pki_wolf_fail("cannot encode the private key", der_len);
        goto out;
    }
    int pem_len = wc_DerToPem(der, (word32)der_len, pem, sizeof(pem), ECC_PRIVATEKEY_TYPE);
    if (pem_len <= 0) {
        rc = pki_wolf_fail("cannot encode the private key as PEM", pem_len);
        goto out;
    }
    rc = pki_write_atomic(dir, file, pem, (size_t)pem_len, 0600, force);
out:
    mwi_wipe(der, sizeof(der));
    mwi_wipe(pem, sizeof(pem));
    return rc;
}

int pki_write_cert(const char *dir, const char *name, const unsigned char *der, int der_len,
                   bool force)
{
    unsigned char pem[PEM_CAP];
    char file[PKI_NAME_MAX_LEN + 8];
    snprintf(file, sizeof(file), "%s.crt", name);
    int pem_len = wc_DerToPem(der, (word32)der_len, pem, sizeof(pem), CERT_TYPE);
    if (pem_len <= 0)
        return pki_wolf_fail("cannot encode the certificate as PEM", pem_len);
    return pki_write_atomic(dir, file, pem, (size_t)pem_len, 0644, force);
}
