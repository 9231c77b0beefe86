/* SPDX-License-Identifier: Apache-2.0 */
/* bench_est.c -- the gateway's CPU per certificate renewal beyond an ordinary request: its check
 * of the request (mwi_est_check_csr) and the --est-ca issuer (est_ca_issue: the CA folder's
 * index read, the certificate signed, recorded and kept, each file synced), in process.
 * Each renewal presents the certificate the previous one issued, so each is the newest of its
 * name, as a device renewing year after year.
 * Usage: bench-est DIR N   (DIR: a medwire-pki CA folder DIR/ca and DIR/dev-1.crt from it)
 * Prints "key value" pairs on one line. A benchmark: nothing is asserted. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <wolfssl/options.h>
#include <wolfssl/wolfcrypt/settings.h>
#include <wolfssl/wolfcrypt/asn_public.h>
#include <wolfssl/wolfcrypt/ecc.h>
#include <wolfssl/wolfcrypt/random.h>

#include "cert.h"
#include "dtls/est.h"
#include "est_ca.h"

static double cpu_s(void)
{
    struct timespec t;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t);
    return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

static double wall_s(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

/* A DER request for dev-1 with a new key. */
static int make_csr(WC_RNG *rng, uint8_t *out, size_t cap)
{
    ecc_key k;
    if (wc_ecc_init(&k) != 0 || wc_ecc_make_key_ex(rng, 32, &k, ECC_SECP256R1) != 0)
        return -1;
    Cert *req = wc_CertNew(NULL);
    int n = -1;
    if (req != NULL) {
        req->version = 0;
        req->sigType = CTC_SHA256wECDSA;
        pki_subject_raw(req->sbjRaw, sizeof req->sbjRaw, "dev-1");
        n = wc_MakeCertReq_ex(req, out, (word32)cap, ECC_TYPE, &k);
        if (n > 0)
            n = wc_SignCert_ex(req->bodySz, req->sigType, out, (word32)cap, ECC_TYPE, &k, rng);
        wc_CertFree(req);
    }
    wc_ecc_free(&k);
    return n;
}

int main(int argc, char **argv)
{
    if (argc != 3) {
        fprintf(stderr, "usage: bench-est DIR N\n");
        return 2;
    }
    int n = atoi(argv[2]);
    char path[4096], ca_dir[4096];
    snprintf(path, sizeof path, "%s/dev-1.crt", argv[1]);
    snprintf(ca_dir, sizeof ca_dir, "%s/ca", argv[1]);
    FILE *f = fopen(path, "rb");
    uint8_t pem[4096], cert[MW_EST_CERT_MAX], csr[1024];
    size_t pem_len = f ? fread(pem, 1, sizeof pem, f) : 0;
    if (f)
        fclose(f);
    int cert_len = wc_CertPemToDer(pem, (int)pem_len, cert, sizeof cert, CERT_TYPE);
    WC_RNG rng;
    if (cert_len <= 0 || wc_InitRng(&rng) != 0) {
        fprintf(stderr, "bench-est: cannot read %s\n", path);
        return 1;
    }
    est_ca ca = {ca_dir, 365};
    double check = 0, issue = 0, wall = 0;
    for (int i = 0; i < n; i++) {
        int csr_len = make_csr(&rng, csr, sizeof csr);
        if (csr_len <= 0)
            return 1;
        char cn[MW_ID_MAX + 1], reason[300];
        mw_error_detail_t d;
        double c0 = cpu_s();
        mw_err e = mwi_est_check_csr(csr, (size_t)csr_len, cn, &d);
        double c1 = cpu_s(), w1 = wall_s();
        mw_est_request_t req = {"dev-1", csr, (size_t)csr_len, cert, (size_t)cert_len};
        size_t out_len = 0;
        if (e == MW_OK)
            e = est_ca_issue(&ca, &req, cert, sizeof cert, &out_len, reason, sizeof reason);
        double c2 = cpu_s(), w2 = wall_s();
        if (e != MW_OK) {
            fprintf(stderr, "bench-est: renewal %d refused: %s\n", i, reason);
            return 1;
        }
        cert_len = (int)out_len; /* the next renewal presents this one */
        check += c1 - c0;
        issue += c2 - c1;
        wall += w2 - w1;
    }
    wc_FreeRng(&rng);
    printf("renewals %d check_us %.0f issue_cpu_us %.0f issue_wall_us %.0f cert_bytes %d\n", n,
           check / n * 1e6, issue / n * 1e6, wall / n * 1e6, cert_len);
    return 0;
}
