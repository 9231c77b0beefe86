/* SPDX-License-Identifier: Apache-2.0 */
/* pki.c -- a fresh PKI for a test, made by the real medwire-pki program. */
/* nftw() is an XSI extension. */
#define _XOPEN_SOURCE 700
#include <errno.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "support/pki.h"
#include "support/proc.h"

static char bufs[8][300];
static unsigned slot;

static const char *path(const mwt_pki *p, const char *name, const char *ext)
{
    char *b = bufs[slot++ % 8];
    snprintf(b, sizeof bufs[0], "%s/%s%s", p->dir, name, ext);
    return b;
}

const char *mwt_pki_crt(const mwt_pki *p, const char *name)
{
    return path(p, name, ".crt");
}

const char *mwt_pki_key(const mwt_pki *p, const char *name)
{
    return path(p, name, ".key");
}

const char *mwt_pki_ca(const mwt_pki *p)
{
    return path(p, "ca/ca", ".crt");
}

static bool run_within(const char *const argv[], int timeout_ms)
{
    int rc = mwt_run(argv, NULL, NULL, timeout_ms);
    if (rc != 0) {
        fprintf(stderr, "medwire-pki failed (%d):", rc);
        for (int i = 0; argv[i]; i++)
            fprintf(stderr, " %s", argv[i]);
        fprintf(stderr, "\n");
    }
    return rc == 0;
}

static bool run(const char *const argv[])
{
    return run_within(argv, 60000);
}

bool mwt_pki_make(mwt_pki *p)
{
    const char *pki = mwt_bin("medwire-pki");
    snprintf(p->dir, sizeof p->dir, "%s", mwt_tmpdir());
    char ca[256], ca2[256];
    snprintf(ca, sizeof ca, "%s/ca", p->dir);
    snprintf(ca2, sizeof ca2, "%s/ca2", p->dir);
    const char *mk_ca[] = {pki, "ca", "--out", ca, NULL};
    const char *mk_ca2[] = {pki, "ca", "--out", ca2, "--name", "another CA", NULL};
    if (!run(mk_ca) || !run(mk_ca2))
        return false;
    static const char *const devices[] = {"dev-1", "dev-2", "dev-3"};
    const char *gw[] = {pki,    "issue",   "--ca",  ca,     "--role", "gateway",
                        "--id", "gateway", "--out", p->dir, NULL};
    if (!run(gw))
        return false;
    for (size_t i = 0; i < sizeof devices / sizeof devices[0]; i++) {
        const char *d[] = {pki,    "issue",    "--ca",  ca,     "--role", "device",
                           "--id", devices[i], "--out", p->dir, NULL};
        if (!run(d))
            return false;
    }
    const char *expired[] = {
        pki,           "issue",      "--ca",  ca,     "--role",       "device",
        "--id",        "expired",    "--out", p->dir, "--not-before", "2020-01-01",
        "--not-after", "2021-01-01", NULL};
    const char *future[] = {
        pki,           "issue",      "--ca",  ca,     "--role",       "device",
        "--id",        "future",     "--out", p->dir, "--not-before", "2090-01-01",
        "--not-after", "2091-01-01", NULL};
    const char *alien[] = {pki,    "issue", "--ca",  ca2,    "--role", "device",
                           "--id", "alien", "--out", p->dir, NULL};
    const char *self[] = {pki,    "issue",      "--self-signed", "--role", "device",
                          "--id", "selfsigned", "--out",         p->dir,   NULL};
    return run(expired) && run(future) && run(alien) && run(self);
}

bool mwt_pki_device(const mwt_pki *p, const char *name)
{
    char ca[256], crt[300];
    snprintf(ca, sizeof ca, "%s/ca", p->dir);
    snprintf(crt, sizeof crt, "%s/%s.crt", p->dir, name);
    FILE *f = fopen(crt, "r");
    if (f != NULL) {
        fclose(f);
        return true;
    }
    const char *argv[] = {mwt_bin("medwire-pki"), "issue", "--ca", ca, "--role", "device", "--id",
                          name, "--out", p->dir, NULL};
    return run(argv);
}

bool mwt_pki_devices(const mwt_pki *p, const char *prefix, int n)
{
    char ca[256], last[300], count[16];
    snprintf(ca, sizeof ca, "%s/ca", p->dir);
    snprintf(last, sizeof last, "%s/%s-%d.crt", p->dir, prefix, n);
    FILE *f = fopen(last, "r");
    if (f != NULL) {
        fclose(f);
        return true;
    }
    snprintf(count, sizeof count, "%d", n);
    const char *argv[] = {mwt_bin("medwire-pki"), "issue", "--ca", ca,     "--role", "device",
                          "--id",                 prefix,  "--count", count, "--out", p->dir,
                          "--force",              NULL};
    /* Thousands of keys and signatures: minutes under the sanitizers or valgrind. */
    return run_within(argv, 800000);
}

static int remove_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    return remove(path) == 0 || errno == ENOENT ? 0 : -1;
}

bool mwt_pki_fleet(mwt_pki *p)
{
    const char *bin = getenv("MW_BIN_DIR");
    const char *pki = mwt_bin("medwire-pki");
    char ca_dir[256], ca_crt[300];
    struct stat prog, made;
    snprintf(p->dir, sizeof p->dir, "%s/../tests/fleet-pki", bin && *bin ? bin : "./bin");
    snprintf(ca_dir, sizeof ca_dir, "%s/ca", p->dir);
    snprintf(ca_crt, sizeof ca_crt, "%s/ca.crt", ca_dir);
    if (stat(pki, &prog) != 0) {
        fprintf(stderr, "mwt_pki_fleet: %s: %s\n", pki, strerror(errno));
        return false;
    }
    if (stat(ca_crt, &made) == 0 && made.st_mtime >= prog.st_mtime)
        return true;
    /* Certificates of an older medwire-pki might not follow today's profile. */
    if (nftw(p->dir, remove_entry, 16, FTW_DEPTH | FTW_PHYS) != 0 && errno != ENOENT) {
        fprintf(stderr, "mwt_pki_fleet: cannot clear %s: %s\n", p->dir, strerror(errno));
        return false;
    }
    if (mkdir(p->dir, 0700) != 0 && errno != EEXIST) {
        fprintf(stderr, "mwt_pki_fleet: cannot make %s: %s\n", p->dir, strerror(errno));
        return false;
    }
    const char *mk_ca[] = {pki, "ca", "--out", ca_dir, NULL};
    const char *gw[] = {pki,    "issue",   "--ca",  ca_dir, "--role", "gateway",
                        "--id", "gateway", "--out", p->dir, NULL};
    return run(mk_ca) && run(gw);
}

static bool ran(const char *const argv[], const char *what, const char *name)
{
    if (mwt_run(argv, NULL, NULL, 20000) == 0)
        return true;
    fprintf(stderr, "mwt_openssl_cert: openssl failed making the %s of %s\n", what, name);
    return false;
}

#define OPENSSL "/usr/bin/openssl"

/* A certificate for @p cn (DNS name @p cn too) signed by @p ca in @p dir, made with OpenSSL's
 * command line; @p ca NULL makes a self-signed CA. */
bool mwt_openssl_cert(const char *dir, const char *name, const char *cn, const char *ca)
{
    char key[400], crt[400], csr[400], ext[400], subj[128], cakey[400], cacrt[400];
    snprintf(key, sizeof key, "%s/%s.key", dir, name);
    snprintf(crt, sizeof crt, "%s/%s.crt", dir, name);
    snprintf(csr, sizeof csr, "%s/%s.csr", dir, name);
    snprintf(ext, sizeof ext, "%s/%s.ext", dir, name);
    snprintf(subj, sizeof subj, "/CN=%s", cn);
    if (ca == NULL) {
        const char *argv[] = {
            OPENSSL,  "req",     "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
            "-nodes", "-keyout", key,     "-out",    crt,  "-subj",    subj,
            "-days",  "2",       NULL};
        return ran(argv, "CA", name);
    }
    snprintf(cakey, sizeof cakey, "%s/%s.key", dir, ca);
    snprintf(cacrt, sizeof cacrt, "%s/%s.crt", dir, ca);
    FILE *f = fopen(ext, "w");
    if (f == NULL || fprintf(f, "subjectAltName=DNS:%s\n", cn) < 0 || fclose(f) != 0) {
        fprintf(stderr, "mwt_openssl_cert: cannot write %s\n", ext);
        return false;
    }
    const char *req[] = {
        OPENSSL,  "req",     "-newkey", "ec",   "-pkeyopt", "ec_paramgen_curve:P-256",
        "-nodes", "-keyout", key,       "-out", csr,        "-subj",
        subj,     NULL};
    if (!ran(req, "request", name))
        return false;
    const char *sign[] = {
        OPENSSL,           "x509", "-req", "-in",   csr, "-CA",      cacrt, "-CAkey", cakey,
        "-CAcreateserial", "-out", crt,    "-days", "2", "-extfile", ext,   NULL};
    return ran(sign, "signature", name);
}

