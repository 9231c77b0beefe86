/* SPDX-License-Identifier: Apache-2.0 */
/* renew.c -- the files of medwire-device's certificate renewal (renew.h). The key and the
 * request are made with wolfCrypt and medwire-pki's subject; every file is written whole to a
 * temporary name, synced, renamed, and its directory synced. MW_DEVICE_CRASH_AFTER=STEP (key,
 * cert, prev, rename) stops the process right after that step, as a power cut would: the tests
 * use it to show that every step recovers. */
#include "renew.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <wolfssl/options.h>
#include <wolfssl/wolfcrypt/settings.h>
#include <wolfssl/wolfcrypt/asn.h>
#include <wolfssl/wolfcrypt/asn_public.h>
#include <wolfssl/wolfcrypt/ecc.h>
#include <wolfssl/wolfcrypt/random.h>

#include "cert.h"
#include "core/wipe.h"

#define PEM_MAX 4096

static void crash_point(const char *step)
{
    const char *at = getenv("MW_DEVICE_CRASH_AFTER");
    if (at != NULL && strcmp(at, step) == 0)
        _exit(9);
}

static void path_with(char *out, size_t cap, const char *base, const char *suffix)
{
    snprintf(out, cap, "%s%s", base, suffix);
}

static bool exists(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0;
}

/* The directory of @p path, synced, so that a rename in it survives a power cut. */
static int sync_dir_of(const char *path)
{
    char dir[4096];
    snprintf(dir, sizeof dir, "%s", path);
    char *slash = strrchr(dir, '/');
    if (slash == NULL)
        snprintf(dir, sizeof dir, ".");
    else if (slash == dir)
        dir[1] = '\0';
    else
        *slash = '\0';
    int fd = open(dir, O_RDONLY | O_DIRECTORY);
    if (fd < 0)
        return -1;
    int rc = fsync(fd);
    close(fd);
    return rc;
}

int renew_write_whole(const char *path, const void *data, size_t len, mode_t mode)
{
    char tmp[4200];
    path_with(tmp, sizeof tmp, path, ".tmp");
    (void)unlink(tmp);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode);
    if (fd < 0)
        return -1;
    const uint8_t *p = data;
    size_t done = 0;
    while (done < len) {
        ssize_t n = write(fd, p + done, len - done);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            close(fd);
            (void)unlink(tmp);
            return -1;
        }
        done += (size_t)n;
    }
    if (fsync(fd) != 0 || close(fd) != 0 || rename(tmp, path) != 0) {
        (void)unlink(tmp);
        return -1;
    }
    return sync_dir_of(path);
}

static long read_small(const char *path, uint8_t *buf, size_t cap)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL)
        return -1;
    size_t n = fread(buf, 1, cap, f);
    bool whole = feof(f) && !ferror(f);
    fclose(f);
    return whole ? (long)n : -1;
}

/* The P-256 private key of the PEM file @p path into @p key (initialised by the caller). */
static bool load_key(const char *path, ecc_key *key)
{
    uint8_t pem[PEM_MAX], der[PEM_MAX];
    long n = read_small(path, pem, sizeof pem);
    int len = n > 0 ? wc_KeyPemToDer(pem, (int)n, der, sizeof der, NULL) : -1;
    word32 idx = 0;
    bool ok = len > 0 && wc_EccPrivateKeyDecode(der, &idx, key, (word32)len) == 0 &&
              wc_ecc_get_curve_id(key->idx) == ECC_SECP256R1;
    mwi_wipe(pem, sizeof pem);
    mwi_wipe(der, sizeof der);
    return ok;
}

/* Whether the PEM certificate @p cert is for the key in the PEM file @p key. */
static bool belong(const char *cert, const char *key)
{
    uint8_t pem[PEM_MAX], der[PEM_MAX], a[80], b[80];
    word32 la = sizeof a, lb = sizeof b, idx = 0;
    long n = read_small(cert, pem, sizeof pem);
    int len = n > 0 ? wc_CertPemToDer(pem, (int)n, der, sizeof der, CERT_TYPE) : -1;
    if (len <= 0)
        return false;
    ecc_key pub, priv;
    if (wc_ecc_init(&pub) != 0)
        return false;
    if (wc_ecc_init(&priv) != 0) {
        wc_ecc_free(&pub);
        return false;
    }
    DecodedCert dc;
    wc_InitDecodedCert(&dc, der, (word32)len, NULL);
    bool ok = wc_ParseCert(&dc, CERT_TYPE, NO_VERIFY, NULL) == 0 && dc.keyOID == ECDSAk &&
              wc_EccPublicKeyDecode(dc.publicKey, &idx, &pub, dc.pubKeySize) == 0 &&
              load_key(key, &priv) && wc_ecc_export_x963(&pub, a, &la) == 0 &&
              wc_ecc_export_x963(&priv, b, &lb) == 0 && la == lb && memcmp(a, b, la) == 0;
    wc_FreeDecodedCert(&dc);
    wc_ecc_free(&pub);
    wc_ecc_free(&priv);
    return ok;
}

/* Copies @p from to @p to whole, keeping its mode. */
static int copy_whole(const char *from, const char *to)
{
    uint8_t buf[PEM_MAX];
    struct stat st;
    long n = read_small(from, buf, sizeof buf);
    int rc = n < 0 || stat(from, &st) != 0
                 ? -1
                 : renew_write_whole(to, buf, (size_t)n, st.st_mode & 0777);
    mwi_wipe(buf, sizeof buf);
    return rc;
}

/* CERT.new and KEY.new over CERT and KEY: the pair in use kept as .prev first, unless CERT is
 * already the new one (a cut between the two renames). */
static int install_files(const char *cert, const char *key)
{
    char cert_new[4200], key_new[4200], cert_prev[4200], key_prev[4200];
    path_with(cert_new, sizeof cert_new, cert, ".new");
    path_with(key_new, sizeof key_new, key, ".new");
    path_with(cert_prev, sizeof cert_prev, cert, ".prev");
    path_with(key_prev, sizeof key_prev, key, ".prev");
    if (exists(cert_new)) {
        if (belong(cert, key) &&
            (copy_whole(cert, cert_prev) != 0 || copy_whole(key, key_prev) != 0))
            return -1;
        crash_point("prev");
        if (rename(cert_new, cert) != 0 || sync_dir_of(cert) != 0)
            return -1;
        crash_point("rename");
    }
    if (rename(key_new, key) != 0 || sync_dir_of(key) != 0)
        return -1;
    return 0;
}

int renew_recover(const char *cert, const char *key)
{
    char cert_new[4200], key_new[4200];
    path_with(cert_new, sizeof cert_new, cert, ".new");
    path_with(key_new, sizeof key_new, key, ".new");
    bool have_cert = exists(cert_new), have_key = exists(key_new);
    if (!have_cert && !have_key)
        return 0;
    if (have_cert && !(have_key && belong(cert_new, key_new))) {
        /* Not a pair: a certificate for no key of ours. The pair in use is untouched. */
        fprintf(stderr,
                "medwire-device: %s is not for the key %s; removed, the renewal will be "
                "asked for again\n",
                cert_new, key_new);
        return unlink(cert_new) == 0 ? 0 : -1;
    }
    if (have_cert || belong(cert, key_new)) {
        if (install_files(cert, key) != 0) {
            fprintf(stderr,
                    "medwire-device: cannot finish installing the renewed certificate "
                    "%s: %s\n",
                    cert_new, strerror(errno));
            return -1;
        }
        fprintf(stderr,
                "medwire-device: finished installing the renewed certificate in %s (the "
                "previous one is %s.prev)\n",
                cert, cert);
    }
    /* Otherwise KEY.new waits for its certificate: renew_request asks again with it. */
    return 0;
}

int renew_request(const char *key, const char *cn, uint8_t *csr, size_t cap, size_t *len)
{
    char key_new[4200];
    path_with(key_new, sizeof key_new, key, ".new");
    ecc_key k;
    WC_RNG rng;
    int rc = -1;
    if (wc_InitRng(&rng) != 0)
        return -1;
    if (wc_ecc_init(&k) != 0) {
        wc_FreeRng(&rng);
        return -1;
    }
    bool ok;
    if (exists(key_new)) {
        ok = load_key(key_new, &k);
        if (!ok)
            fprintf(stderr,
                    "medwire-device: %s is not a P-256 key; remove it to renew with a "
                    "new one\n",
                    key_new);
    } else {
        uint8_t der[512], pem[1024];
        int n = wc_ecc_make_key_ex(&rng, 32, &k, ECC_SECP256R1);
        int d = n == 0 ? wc_EccKeyToDer(&k, der, sizeof der) : -1;
        int p = d > 0 ? wc_DerToPem(der, (word32)d, pem, sizeof pem, ECC_PRIVATEKEY_TYPE) : -1;
        ok = p > 0 && renew_write_whole(key_new, pem, (size_t)p, 0600) == 0;
        if (!ok)
            fprintf(stderr, "medwire-device: cannot write the new key %s: %s\n", key_new,
                    strerror(errno));
        mwi_wipe(der, sizeof der);
        mwi_wipe(pem, sizeof pem);
        crash_point("key");
    }
    Cert *req = ok ? wc_CertNew(NULL) : NULL;
    if (req != NULL && wc_ecc_set_rng(&k, &rng) == 0) {
        req->version = 0; /* PKCS#10 v1 */
        req->sigType = CTC_SHA256wECDSA;
        pki_subject_raw(req->sbjRaw, sizeof req->sbjRaw, cn);
        int n = wc_MakeCertReq_ex(req, csr, (word32)cap, ECC_TYPE, &k);
        if (n > 0)
            n = wc_SignCert_ex(req->bodySz, req->sigType, csr, (word32)cap, ECC_TYPE, &k, &rng);
        if (n > 0) {
            *len = (size_t)n;
            rc = 0;
        } else {
            fprintf(stderr, "medwire-device: cannot make the certificate request (wolfCrypt %d)\n",
                    n);
        }
    }
    if (req != NULL)
        wc_CertFree(req);
    wc_ecc_free(&k);
    mwi_wipe(&k, sizeof k);
    wc_FreeRng(&rng);
    return rc;
}

int renew_install(const char *cert, const char *key, const uint8_t *der, size_t len)
{
    char cert_new[4200], key_new[4200];
    uint8_t pem[PEM_MAX];
    path_with(cert_new, sizeof cert_new, cert, ".new");
    path_with(key_new, sizeof key_new, key, ".new");
    int n = wc_DerToPem(der, (word32)len, pem, sizeof pem, CERT_TYPE);
    if (n <= 0 || renew_write_whole(cert_new, pem, (size_t)n, 0644) != 0) {
        fprintf(stderr, "medwire-device: cannot write the renewed certificate %s: %s\n", cert_new,
                strerror(errno));
        return -1;
    }
    crash_point("cert");
    if (!belong(cert_new, key_new)) {
        fprintf(stderr,
                "medwire-device: the gateway's certificate is not for our new key %s; "
                "removed, the pair in use stays\n",
                key_new);
        (void)unlink(cert_new);
        return -1;
    }
    if (install_files(cert, key) != 0) {
        fprintf(stderr,
                "medwire-device: cannot install the renewed certificate over %s: %s (the "
                "next start finishes it)\n",
                cert, strerror(errno));
        return -1;
    }
    return 0;
}
