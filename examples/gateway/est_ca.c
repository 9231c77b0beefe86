/* SPDX-License-Identifier: Apache-2.0 */
/* est_ca.c -- the EST issuer of medwire-gateway --est-ca DIR (est_ca.h), on medwire-pki's own
 * code: the CA folder is loaded and checked as 'medwire-pki issue' loads it, and the renewal
 * recorded in its index.txt under the folder's lock, so that 'medwire-pki revoke' and 'crl'
 * see it. What that code reports on failure goes to standard error, prefixed medwire-pki. */
#include "est_ca.h"
#include "est_der.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <wolfssl/options.h>
#include <wolfssl/wolfcrypt/settings.h>
#include <wolfssl/wolfcrypt/asn.h>
#include <wolfssl/wolfcrypt/asn_public.h>
#include <wolfssl/wolfcrypt/ecc.h>
#include <wolfssl/wolfcrypt/random.h>

#include "ca_index.h"
#include "cert.h"
#include "files.h"
#include "core/wipe.h"

/* The public key of the (checked) PKCS#10 request into @p key. */
static bool csr_key(const uint8_t *der, size_t len, ecc_key *key)
{
    est_der r;
    word32 idx = 0;
    return est_der_read(der, len, true, &r) &&
           wc_EccPublicKeyDecode(r.key, &idx, key, (word32)r.key_len) == 0;
}

/* DIR/issued/SERIAL.crt, the certificate this issuer made, as DER into der[0..cap); its length,
 * 0 if there is none. */
static size_t issued_cert(const char *dir, const char *serial, uint8_t *der, size_t cap)
{
    char path[4200];
    unsigned char pem[4096];
    snprintf(path, sizeof path, "%s/issued/%s.crt", dir, serial);
    long n = pki_read_small_file(path, pem, sizeof pem);
    if (n <= 0)
        return 0;
    int len = wc_CertPemToDer(pem, (int)n, der, (int)cap, CERT_TYPE);
    return len > 0 ? (size_t)len : 0;
}

/* The policy (est_ca.h): MW_OK, or why not in @p reason. A certificate superseded by one this
 * issuer made is named in @p newer (a retry may be answered with it). */
static mw_err may_renew(const char *dir, const char *id, const char *serial, char *reason,
                        size_t reason_cap, char *newer, size_t newer_cap)
{
    ca_index idx = {0};
    if (pki_index_load(dir, &idx) != EXIT_SUCCESS) {
        pki_index_free(&idx);
        snprintf(reason, reason_cap, "cannot read %s/index.txt", dir);
        return MW_EIO;
    }
    const index_entry *mine = NULL, *newest = NULL;
    for (size_t i = 0; i < idx.n; i++) {
        char cn[PKI_NAME_MAX_LEN + 1];
        pki_subject_cn(idx.e[i].subject, cn, sizeof cn);
        if (strcmp(cn, id) != 0)
            continue;
        newest = &idx.e[i];
        if (strcasecmp(idx.e[i].serial, serial) == 0)
            mine = &idx.e[i];
    }
    mw_err e = MW_OK;
    if (mine == NULL) {
        snprintf(reason, reason_cap,
                 "the certificate of '%s' (serial %s) is not in the CA folder's index.txt: this "
                 "CA did not issue it",
                 id, serial);
        e = MW_EIDENTITY;
    } else if (mine->status == 'R') {
        snprintf(reason, reason_cap, "the certificate of '%s' (serial %s) is revoked", id, serial);
        e = MW_ECERT_REVOKED;
    } else if (mine != newest) {
        snprintf(newer, newer_cap, "%s", newest->serial);
        snprintf(reason, reason_cap,
                 "the certificate of '%s' (serial %s) was superseded by serial %s: only the "
                 "newest may renew",
                 id, serial, newest->serial);
        e = MW_EIDENTITY;
    }
    pki_index_free(&idx);
    return e;
}

/* The CA folder's lock is held from the policy check to the record (est_ca_issue): a revocation
 * or another gateway's renewal of the same name made meanwhile would otherwise not be seen. */
static mw_err issue_locked(const est_ca *ca, const mw_est_request_t *req, uint8_t *out, size_t cap,
                           size_t *out_len, char *reason, size_t reason_cap);

mw_err est_ca_issue(void *ctx, const mw_est_request_t *req, uint8_t *out, size_t cap,
                    size_t *out_len, char *reason, size_t reason_cap)
{
    const est_ca *ca = ctx;
    *out_len = 0;
    int lock = -1;
    if (pki_lock_ca(ca->dir, &lock) != EXIT_SUCCESS) {
        snprintf(reason, reason_cap, "cannot lock the CA folder %s (see the log)", ca->dir);
        return MW_EIO;
    }
    mw_err e = issue_locked(ca, req, out, cap, out_len, reason, reason_cap);
    pki_unlock_ca(lock);
    return e;
}

static mw_err issue_locked(const est_ca *ca, const mw_est_request_t *req, uint8_t *out, size_t cap,
                           size_t *out_len, char *reason, size_t reason_cap)
{
    est_der cur;
    if (!est_der_read(req->cert, req->cert_len, false, &cur)) {
        snprintf(reason, reason_cap, "the session's certificate does not parse");
        return MW_EINTERNAL;
    }
    const char *old = cur.serial;
    char newer[2 * 32 + 1] = "";
    mw_err e = may_renew(ca->dir, req->device_id, old, reason, reason_cap, newer, sizeof newer);
    if (e == MW_EIDENTITY && newer[0] != '\0') {
        /* The answer to this very request was lost (the link went down after the issue): the
         * certificate made then, for this request's key, is given again. Another key is
         * refused: only the device that asked holds that key. */
        uint8_t der[PKI_CERT_DER_CAP];
        est_der a, b;
        size_t len = issued_cert(ca->dir, newer, der, sizeof der);
        if (len != 0 && len <= cap && est_der_read(der, len, false, &a) &&
            est_der_read(req->csr, req->csr_len, true, &b) && a.key_len == b.key_len &&
            memcmp(a.key, b.key, a.key_len) == 0) {
            memcpy(out, der, len);
            *out_len = len;
            snprintf(reason, reason_cap,
                     "serial %s again, the certificate already issued for this request's key "
                     "(a retry; the session's certificate is serial %s)",
                     newer, old);
            return MW_OK;
        }
    }
    if (e != MW_OK)
        return e;

    time_t now = time(NULL);
    cert_request cr = {.role = ROLE_DEVICE, .cn = req->device_id};
    cr.not_before = pki_from_epoch(now - 3600);
    cr.not_after = pki_from_epoch(now + (time_t)ca->valid_days * 86400);
    uint8_t ca_der[PKI_CERT_DER_CAP], der[PKI_CERT_DER_CAP];
    int der_len = 0;
    ecc_key subject, ca_key;
    WC_RNG rng;
    if (wc_InitRng(&rng) != 0) {
        snprintf(reason, reason_cap, "the random generator failed");
        return MW_EINTERNAL;
    }
    if (wc_ecc_init(&subject) != 0 || wc_ecc_init(&ca_key) != 0) {
        wc_FreeRng(&rng);
        snprintf(reason, reason_cap, "out of memory");
        return MW_ENOMEM;
    }
    e = MW_EINTERNAL;
    if (!csr_key(req->csr, req->csr_len, &subject)) {
        snprintf(reason, reason_cap, "the request's key does not decode");
    } else if (pki_load_ca(ca->dir, ca_der, &cr, &ca_key) != EXIT_SUCCESS) {
        snprintf(reason, reason_cap, "cannot load the CA folder %s (see the log)", ca->dir);
        e = MW_ECONFIG;
    } else if (wc_ecc_set_rng(&ca_key, &rng) != 0) {
        snprintf(reason, reason_cap, "cannot attach the random generator to the CA key");
    } else {
        cr.subject_key = &subject;
        cr.signer_key = &ca_key;
        int rc = pki_make_cert(&rng, &cr, der, sizeof der, &der_len);
        cr.subject_key = cr.signer_key = NULL;
        if (rc != EXIT_SUCCESS) {
            snprintf(reason, reason_cap, "cannot sign the certificate (see the log)");
        } else if ((size_t)der_len > cap) {
            snprintf(reason, reason_cap, "the certificate (%d bytes) is larger than an answer",
                     der_len);
            e = MW_ENOSPC;
        } else if (pki_record_issued_locked(ca->dir, &cr) != EXIT_SUCCESS) {
            /* Not recorded, not given: 'revoke' could not find it. */
            snprintf(reason, reason_cap, "cannot record it in %s/index.txt (see the log)", ca->dir);
            e = MW_EIO;
        } else {
            char serial[2 * PKI_SERIAL_LEN + 1], issued[4200];
            for (int i = 0; i < PKI_SERIAL_LEN; i++)
                snprintf(serial + 2 * i, 3, "%02X", cr.serial[i]);
            /* Kept, so that a retry of this request gets it again (openssl ca's newcerts). */
            snprintf(issued, sizeof issued, "%s/issued", ca->dir);
            if (pki_make_dirs(issued) != EXIT_SUCCESS ||
                pki_write_cert(issued, serial, der, der_len, false) != EXIT_SUCCESS)
                fprintf(stderr,
                        "medwire-gateway: the certificate serial %s for '%s' is issued "
                        "and recorded, but not kept in %s: a retry of its request will "
                        "be refused\n",
                        serial, req->device_id, issued);
            memcpy(out, der, (size_t)der_len);
            *out_len = (size_t)der_len;
            snprintf(reason, reason_cap,
                     "serial %s, valid until %04d-%02d-%02d, replaces serial %s", serial,
                     cr.not_after.year, cr.not_after.mon, cr.not_after.day, old);
            e = MW_OK;
        }
    }
    wc_ecc_free(&subject);
    wc_ecc_free(&ca_key);
    mwi_wipe(&ca_key, sizeof ca_key);
    wc_FreeRng(&rng);
    return e;
}
