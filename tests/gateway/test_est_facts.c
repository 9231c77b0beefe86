/* SPDX-License-Identifier: Apache-2.0 */
/* test_est_facts.c -- what the gateway's store records of an issued certificate (serial and
 * validity) reads as OpenSSL prints it, also a serial whose high bit is set (its DER carries a
 * sign byte, which wolfCrypt leaves out of the value as OpenSSL does) and one of 20 bytes. */
#define _GNU_SOURCE /* strptime, timegm */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "dtls/est.h"
#include "support/proc.h"

static char dir[256]; /* the test's folder: mwt_tmpdir() makes a new one at each call */

/* A self-signed P-256 certificate with @p serial (OpenSSL's -set_serial) as DER into @p der
 * and DIR/c.der; its length. */
static size_t cert_with_serial(const char *serial, uint8_t *der, size_t cap)
{
    if (dir[0] == '\0')
        snprintf(dir, sizeof dir, "%s", mwt_tmpdir());
    char key[300], out[300];
    snprintf(key, sizeof key, "%s/k.pem", dir);
    snprintf(out, sizeof out, "%s/c.der", dir);
    const char *gen[] = {"/usr/bin/openssl", "ecparam", "-name", "prime256v1", "-genkey",
                         "-noout",           "-out",    key,     NULL};
    cr_assert_eq(mwt_run(gen, NULL, NULL, 30000), 0);
    const char *mk[] = {"/usr/bin/openssl",
                        "req",
                        "-x509",
                        "-new",
                        "-key",
                        key,
                        "-subj",
                        "/O=medwire/CN=dev-1",
                        "-days",
                        "30",
                        "-set_serial",
                        serial,
                        "-outform",
                        "DER",
                        "-out",
                        out,
                        NULL};
    cr_assert_eq(mwt_run(mk, NULL, NULL, 30000), 0, "openssl req -x509 -set_serial %s", serial);
    size_t n = mwt_read_bytes(out, der, cap);
    cr_assert_gt(n, 0u, "%s", out);
    return n;
}

/* OpenSSL's notAfter of the DER certificate in DIR/c.der, as Unix seconds. */
static int64_t openssl_not_after(void)
{
    char in[300], out[300];
    snprintf(in, sizeof in, "%s/c.der", dir);
    snprintf(out, sizeof out, "%s/end.txt", dir);
    const char *argv[] = {"/usr/bin/openssl", "x509",     "-inform", "DER", "-in", in,
                          "-noout",           "-enddate", NULL};
    char err[300];
    snprintf(err, sizeof err, "%s/end.err", dir);
    int rc = mwt_run(argv, out, err, 30000);
    char *why = rc != 0 ? mwt_read_file(err) : NULL;
    cr_assert_eq(rc, 0, "openssl x509 -enddate: %s", why ? why : "");
    free(why);
    char *text = mwt_read_file(out);
    cr_assert_not_null(text);
    struct tm tm;
    memset(&tm, 0, sizeof tm);
    cr_assert_not_null(strptime(strchr(text, '=') + 1, "%b %d %H:%M:%S %Y GMT", &tm), "%s", text);
    free(text);
    return (int64_t)timegm(&tm);
}

Test(est_facts, serials_read_as_openssl_prints_them_and_the_validity_as_unix_seconds)
{
    static const char *const cases[][2] = {
        {"0x0A", "0a"},
        {"0x7F1122334455", "7f1122334455"},
        {"0x80000000000000000001", "80000000000000000001"}, /* a sign byte in DER */
        {"0x4BD1E5C2A0B19F3E7D6C5B4A39281706F5E4D3C2", "4bd1e5c2a0b19f3e7d6c5b4a39281706f5e4d3c2"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        uint8_t der[2048];
        size_t n = cert_with_serial(cases[i][0], der, sizeof der);
        mwi_est_cert_facts f;
        cr_assert_eq(mwi_est_cert_facts_read(der, n, &f), MW_OK, "%s", cases[i][0]);
        cr_assert_str_eq(f.serial, cases[i][1]);
        cr_assert_eq(f.not_after, openssl_not_after(), "%s", cases[i][0]);
        cr_assert_eq(f.not_after - f.not_before, 30 * 86400, "-days 30");
    }
}

Test(est_facts, what_is_no_certificate_is_refused)
{
    uint8_t der[2048];
    size_t n = cert_with_serial("0x0A", der, sizeof der);
    mwi_est_cert_facts f;
    cr_assert_eq(mwi_est_cert_facts_read(der, n - 1, &f), MW_EINVAL, "cut short");
    cr_assert_eq(mwi_est_cert_facts_read(der, 0, &f), MW_EINVAL);
    cr_assert_eq(mwi_est_cert_facts_read(NULL, n, &f), MW_EINVAL);
    uint8_t junk[16] = {0x30, 0x03, 0x02, 0x01, 0x00};
    cr_assert_eq(mwi_est_cert_facts_read(junk, sizeof junk, &f), MW_EINVAL, "no certificate");
    cr_assert_str_eq(f.serial, "", "nothing half-read is left");
}
