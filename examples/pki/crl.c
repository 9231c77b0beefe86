/* SPDX-License-Identifier: Apache-2.0 */
/* crl.c -- the CA's certificate revocation list: encoded, signed and written to DIR/crl.pem. */

/*
 * The CRL profile (RFC 5280 section 5; 'revoke' and 'crl' write it to CADIR/crl.pem):
 *
 *  - CertificateList v2, signed ecdsa-with-SHA256 by the CA's P-256 key; PEM "X509 CRL",
 *    mode 0644. Issuer: the CA certificate's subject Name, copied byte for byte from its DER
 *    (verifiers match CRL and certificate issuers on the encoding).
 *  - thisUpdate: now. nextUpdate: now + --next-update-days (default 7). Time encoding as for
 *    certificates (5.1.2.4, 5.1.2.5).
 *  - revokedCertificates: every certificate ever revoked in CADIR/index.txt, expired ones
 *    included, each with its serial, its revocationDate and, when a reason was given, a
 *    non-critical reasonCode (5.3.1); absent altogether while nothing is revoked (5.1.2.6).
 *  - crlExtensions, both non-critical: authorityKeyIdentifier = the CA certificate's
 *    subjectKeyIdentifier (5.2.1, and how wolfSSL finds the CRL's signer), and cRLNumber
 *    (5.2.3), one more than the last for every CRL this CA writes.
 *
 * How the CRL is made: hand-built DER, signed with wolfCrypt ECDSA. wolfCrypt 5.5.4 parses
 * and verifies CRLs but has no CRL encoder, and medwire takes on no second crypto library
 * for this one structure (OpenSSL serves only as the tests' independent check). So this
 * file encodes the TBSCertList itself, hashes it with SHA-256 (wc_Sha256Hash), signs the
 * hash with the CA key (wc_ecc_sign_hash, an ECDSA-Sig-Value), and wraps TBS,
 * AlgorithmIdentifier and signature BIT STRING into the CertificateList. 'openssl crl
 * -CAfile', 'openssl verify -crl_check' and wolfSSL's CRL checks accept the result
 * (tests/pki and tests/dtls).
 */

#include "crl.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <wolfssl/wolfcrypt/asn.h>
#include <wolfssl/wolfcrypt/error-crypt.h>
#include <wolfssl/wolfcrypt/hash.h>

#include "der.h"
#include "diag.h"
#include "files.h"

/* ecdsa-with-SHA256 (1.2.840.10045.4.3.2), parameters absent as RFC 5758 3.2 requires. */
static const unsigned char ecdsa_sha256_algid[12] = {0x30, 0x0a, 0x06, 0x08, 0x2a, 0x86,
                                                     0x48, 0xce, 0x3d, 0x04, 0x03, 0x02};

/* id-ce (2.5.29) extensions of RFC 5280. */
#define OID_CE_SKI        0x0e
#define OID_CE_CRL_NUMBER 0x14
#define OID_CE_REASON     0x15
#define OID_CE_AKI        0x23

static void db_time(dbuf *b, const utc_time *t)
{
    unsigned char enc[CTC_DATE_SIZE];
    int n = pki_encode_time(t, enc);
    if (n < 0)
        b->failed = true;
    else
        pki_db_put(b, enc, (size_t)n);
}

/* A non-critical Extension (critical is DEFAULT FALSE, so DER leaves it out). */
static void db_extension(dbuf *b, unsigned char oid_last, const dbuf *value)
{
    const unsigned char oid[5] = {ASN_OBJECT_ID, 3, 0x55, 0x1d, oid_last};
    dbuf ext = {0};
    pki_db_put(&ext, oid, sizeof(oid));
    pki_db_wrap(&ext, ASN_OCTET_STRING, value);
    pki_db_wrap(b, ASN_SEQUENCE | ASN_CONSTRUCTED, &ext);
    pki_db_free(&ext);
}

/*
 * Finds in the CA certificate what its CRL must repeat: the subject Name as encoded (the
 * CRL's issuer must match certificate issuers byte for byte, RFC 5280 5.1.2.3 and 7.1) and
 * the subjectKeyIdentifier (the CRL's authorityKeyIdentifier, 5.2.1).
 */
static int ca_crl_ids(const char *dir, const unsigned char *der, size_t der_len,
                      const unsigned char **name, size_t *name_len, const unsigned char **ski,
                      size_t *ski_len)
{
    static const unsigned char ski_oid[3] = {0x55, 0x1d, OID_CE_SKI};
    size_t pos = 0, c, n, end;
    unsigned char tag;
    *name = *ski = NULL;
    if (!pki_der_next(der, der_len, &pos, &tag, &c, &n) || tag != (ASN_SEQUENCE | ASN_CONSTRUCTED))
        goto bad;
    pos = c;
    end = c + n;
    if (!pki_der_next(der, end, &pos, &tag, &c, &n) || tag != (ASN_SEQUENCE | ASN_CONSTRUCTED))
        goto bad;
    pos = c;
    end = c + n;
    /* TBSCertificate: [0] version, serial, signature, issuer, validity, subject, spki, ... */
    for (int field = 0; pos < end;) {
        size_t at = pos;
        if (!pki_der_next(der, end, &pos, &tag, &c, &n))
            goto bad;
        if (tag == (ASN_CONTEXT_SPECIFIC | ASN_CONSTRUCTED | 0))
            continue;
        if (field++ == 4) {
            *name = der + at;
            *name_len = pos - at;
        }
        if (tag != (ASN_CONTEXT_SPECIFIC | ASN_CONSTRUCTED | 3))
            continue;
        size_t epos = c, eend = c + n, ec, en;
        if (!pki_der_next(der, eend, &epos, &tag, &ec, &en) ||
            tag != (ASN_SEQUENCE | ASN_CONSTRUCTED))
            goto bad;
        epos = ec;
        eend = ec + en;
        while (epos < eend) {
            size_t xpos, xend, oc, on, vc, vn;
            if (!pki_der_next(der, eend, &epos, &tag, &xpos, &xend))
                goto bad;
            xend += xpos;
            if (!pki_der_next(der, xend, &xpos, &tag, &oc, &on) || tag != ASN_OBJECT_ID)
                goto bad;
            if (on != sizeof(ski_oid) || memcmp(der + oc, ski_oid, on) != 0)
                continue;
            if (!pki_der_next(der, xend, &xpos, &tag, &vc, &vn))
                goto bad;
            if (tag == ASN_BOOLEAN && !pki_der_next(der, xend, &xpos, &tag, &vc, &vn))
                goto bad;
            size_t kpos = vc;
            if (tag != ASN_OCTET_STRING || !pki_der_next(der, vc + vn, &kpos, &tag, &vc, &vn) ||
                tag != ASN_OCTET_STRING || vn == 0)
                goto bad;
            *ski = der + vc;
            *ski_len = vn;
        }
    }
    if (*name == NULL)
        goto bad;
    if (*ski == NULL) {
        return pki_fail("%s/ca.crt has no subjectKeyIdentifier, which the CRL's "
                        "authorityKeyIdentifier must repeat; make a CA with '" PKI_PROG
                        " ca --out DIR'",
                        dir);
    }
    return EXIT_SUCCESS;
bad:
    return pki_fail("cannot find the subject and key identifier in %s/ca.crt: unexpected encoding",
                    dir);
}

typedef struct {
    const unsigned char *issuer; /* the CA's subject Name, whole TLV */
    size_t issuer_len;
    const unsigned char *ski;
    size_t ski_len;
    utc_time this_update, next_update;
    uint64_t number;
} crl_params;

/* One revokedCertificates entry (RFC 5280 5.1.2.6, 5.3.1) from an index line marked R. */
static void crl_entry(dbuf *out, const index_entry *e)
{
    unsigned char serial[20] = {0};
    size_t serial_len = 0;
    utc_time when;
    int reason = -1;
    dbuf entry = {0};
    if (!pki_parse_serial_hex(e->serial, serial, &serial_len) ||
        !pki_parse_revoked_field(e->revoked, &when, &reason)) {
        out->failed = true; /* pki_index_load checked both */
        return;
    }
    pki_db_uint(&entry, serial, serial_len);
    db_time(&entry, &when);
    /* 5.3.1: an unspecified reason SHOULD be absent rather than encoded as 0. */
    if (reason > 0) {
        dbuf value = {0}, exts = {0};
        const unsigned char code = (unsigned char)reason;
        pki_db_tlv(&value, ASN_ENUMERATED, &code, 1);
        db_extension(&exts, OID_CE_REASON, &value);
        pki_db_wrap(&entry, ASN_SEQUENCE | ASN_CONSTRUCTED, &exts);
        pki_db_free(&value);
        pki_db_free(&exts);
    }
    pki_db_wrap(out, ASN_SEQUENCE | ASN_CONSTRUCTED, &entry);
    pki_db_free(&entry);
}

/* The TBSCertList of RFC 5280 5.1.2, as the profile at the top of this file describes. */
static void crl_tbs(dbuf *tbs, const ca_index *idx, const crl_params *cp, size_t *out_revoked)
{
    static const unsigned char v2[3] = {ASN_INTEGER, 1, 1};
    dbuf body = {0}, revoked = {0}, exts = {0}, value = {0}, inner = {0};
    size_t count = 0;

    pki_db_put(&body, v2, sizeof(v2));
    pki_db_put(&body, ecdsa_sha256_algid, sizeof(ecdsa_sha256_algid));
    pki_db_put(&body, cp->issuer, cp->issuer_len);
    db_time(&body, &cp->this_update);
    db_time(&body, &cp->next_update);
    for (size_t i = 0; i < idx->n; i++) {
        if (idx->e[i].status == 'R') {
            crl_entry(&revoked, &idx->e[i]);
            count++;
        }
    }
    if (count > 0) /* 5.1.2.6: absent, not empty, when nothing is revoked */
        pki_db_wrap(&body, ASN_SEQUENCE | ASN_CONSTRUCTED, &revoked);

    /* AuthorityKeyIdentifier ::= SEQUENCE { keyIdentifier [0] IMPLICIT OCTET STRING } */
    pki_db_tlv(&inner, ASN_CONTEXT_SPECIFIC | 0, cp->ski, cp->ski_len);
    pki_db_wrap(&value, ASN_SEQUENCE | ASN_CONSTRUCTED, &inner);
    db_extension(&exts, OID_CE_AKI, &value);
    pki_db_free(&value);
    pki_db_u64(&value, cp->number);
    db_extension(&exts, OID_CE_CRL_NUMBER, &value);
    pki_db_free(&inner);
    pki_db_wrap(&inner, ASN_SEQUENCE | ASN_CONSTRUCTED, &exts);
    pki_db_wrap(&body, ASN_CONTEXT_SPECIFIC | ASN_CONSTRUCTED | 0, &inner);

    pki_db_wrap(tbs, ASN_SEQUENCE | ASN_CONSTRUCTED, &body);
    pki_db_free(&body);
    pki_db_free(&revoked);
    pki_db_free(&exts);
    pki_db_free(&value);
    pki_db_free(&inner);
    *out_revoked = count;
}

/* CertificateList ::= SEQUENCE { tbsCertList, signatureAlgorithm, signatureValue BIT STRING },
 * signed over the DER of tbsCertList (5.1.1.3) with SHA-256 and the CA's ECDSA key. */
static int crl_sign(const dbuf *tbs, ecc_key *key, WC_RNG *rng, dbuf *out)
{
    unsigned char hash[WC_SHA256_DIGEST_SIZE], sig[1 + ECC_MAX_SIG_SIZE];
    word32 sig_len = sizeof(sig) - 1;
    if (tbs->len > 0xffffffffu)
        return pki_fail("the CRL is too large");
    int ret = wc_Sha256Hash(tbs->p, (word32)tbs->len, hash);
    if (ret != 0)
        return pki_wolf_fail("cannot hash the CRL", ret);
    ret = wc_ecc_sign_hash(hash, sizeof(hash), sig + 1, &sig_len, rng, key);
    if (ret != 0)
        return pki_wolf_fail("cannot sign the CRL", ret);
    sig[0] = 0; /* no unused bits: the BIT STRING holds the whole ECDSA-Sig-Value */
    dbuf list = {0};
    pki_db_put(&list, tbs->p, tbs->len);
    pki_db_put(&list, ecdsa_sha256_algid, sizeof(ecdsa_sha256_algid));
    pki_db_tlv(&list, ASN_BIT_STRING, sig, sig_len + 1);
    pki_db_wrap(out, ASN_SEQUENCE | ASN_CONSTRUCTED, &list);
    pki_db_free(&list);
    return out->failed ? pki_fail("out of memory") : EXIT_SUCCESS;
}

/*
 * Writes DIR/crl.pem from the index: the shared tail of 'revoke' and 'crl'. The caller holds
 * the CA lock and has checked the CA key against its certificate (pki_load_ca).
 */
int pki_write_crl(const char *dir, const cert_request *ca, ecc_key *key, const ca_index *idx,
                  time_t now, int days)
{
    crl_params cp = {0};
    int rc = ca_crl_ids(dir, ca->ca_der, (size_t)ca->ca_der_len, &cp.issuer, &cp.issuer_len,
                        &cp.ski, &cp.ski_len);
    if (rc != EXIT_SUCCESS)
        return rc;
    cp.this_update = pki_from_epoch(now);
    cp.next_update = pki_from_epoch(now + (time_t)days * 86400);

    WC_RNG rng;
    int ret = wc_InitRng(&rng);
    if (ret != 0)
        return pki_wolf_fail("cannot start the random generator", ret);
    ret = wc_ecc_set_rng(key, &rng);
    if (ret != 0) {
        wc_FreeRng(&rng);
        return pki_wolf_fail("cannot attach the random generator to the CA key", ret);
    }
    dbuf tbs = {0}, der = {0};
    unsigned char *pem = NULL;
    size_t revoked = 0;
    rc = pki_take_crl_number(dir, &cp.number);
    if (rc == EXIT_SUCCESS) {
        crl_tbs(&tbs, idx, &cp, &revoked);
        rc = tbs.failed ? pki_fail("cannot encode the CRL (out of memory)") : EXIT_SUCCESS;
    }
    if (rc == EXIT_SUCCESS)
        rc = crl_sign(&tbs, key, &rng, &der);
    if (rc == EXIT_SUCCESS) {
        /* Base64 grows by 4/3, plus a newline every 64 characters and the two armour lines. */
        size_t cap = der.len / 3 * 4 + der.len / 32 + 128;
        pem = malloc(cap);
        int pem_len = pem && der.len <= 0xffffffffu && cap <= 0x7fffffffu
                          ? wc_DerToPem(der.p, (word32)der.len, pem, (word32)cap, CRL_TYPE)
                          : MEMORY_E;
        if (pem_len <= 0)
            rc = pki_wolf_fail("cannot encode the CRL as PEM", pem_len);
        else
            rc = pki_write_atomic(dir, "crl.pem", pem, (size_t)pem_len, 0644, true);
    }
    if (rc == EXIT_SUCCESS) {
        char next[32];
        pki_format_time(&cp.next_update, next, sizeof(next));
        printf("wrote %s/crl.pem: CRL number %" PRIu64 ", %zu revoked certificate%s, next update "
               "%s\n",
               dir, cp.number, revoked, revoked == 1 ? "" : "s", next);
    }
    free(pem);
    pki_db_free(&tbs);
    pki_db_free(&der);
    (void)wc_ecc_set_rng(key, NULL); /* the generator dies here; the key must not point at it */
    wc_FreeRng(&rng);
    return rc;
}
