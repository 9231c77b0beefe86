/* SPDX-License-Identifier: Apache-2.0 */
/* test_pki.c -- medwire-pki makes certificates and CRLs of the protocol's profile that wolfSSL and
 * OpenSSL accept. */

#include <dirent.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <criterion/criterion.h>

#include <wolfssl/options.h>
#include <wolfssl/ssl.h>
#include <wolfssl/error-ssl.h>
#include <wolfssl/openssl/asn1.h>
#include <wolfssl/openssl/x509v3.h>
#include <wolfssl/wolfcrypt/asn.h>
#include <wolfssl/wolfcrypt/asn_public.h>
#include <wolfssl/wolfcrypt/ecc.h>
#include <wolfssl/wolfcrypt/error-crypt.h>

#include "support/proc.h"

#define RUN_TIMEOUT_MS 30000

static char dir[1024];
static char err_path[1100];
static char out_path[1100];

/* Joins a name onto the test's directory; eight rotating slots, so one call can take several. */
static const char *in_dir(const char *rel)
{
    static char slots[8][1200];
    static unsigned next;
    char *buf = slots[next++ % 8];
    snprintf(buf, sizeof(slots[0]), "%s/%s", dir, rel);
    return buf;
}

static void remove_tree(const char *path)
{
    struct stat st;
    if (lstat(path, &st) != 0)
        return;
    if (S_ISDIR(st.st_mode)) {
        DIR *d = opendir(path);
        struct dirent *e;
        while (d != NULL && (e = readdir(d)) != NULL) {
            if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
                continue;
            char child[2048];
            snprintf(child, sizeof(child), "%s/%s", path, e->d_name);
            remove_tree(child);
        }
        if (d != NULL)
            closedir(d);
        rmdir(path);
    } else {
        unlink(path);
    }
}

static void setup(void)
{
    const char *d = mwt_tmpdir();
    cr_assert_not_null(d, "cannot make a temporary directory");
    snprintf(dir, sizeof(dir), "%s", d);
    snprintf(err_path, sizeof(err_path), "%s/stderr.txt", dir);
    snprintf(out_path, sizeof(out_path), "%s/stdout.txt", dir);
    cr_assert_eq(wolfSSL_Init(), WOLFSSL_SUCCESS);
}

static void teardown(void)
{
    wolfSSL_Cleanup();
    remove_tree(dir);
}

TestSuite(pki, .init = setup, .fini = teardown);

/* Runs medwire-pki with the NULL-terminated arguments; stdout and stderr land in the test's
 * directory. Returns the exit code. */
static int pki(const char *arg, ...)
{
    const char *argv[32];
    size_t n = 0;
    va_list ap;
    argv[n++] = mwt_bin("medwire-pki");
    va_start(ap, arg);
    for (const char *a = arg; a != NULL; a = va_arg(ap, const char *)) {
        cr_assert_lt(n, 31u);
        argv[n++] = a;
    }
    va_end(ap);
    argv[n] = NULL;
    return mwt_run(argv, out_path, err_path, RUN_TIMEOUT_MS);
}

static char *stderr_text(void)
{
    char *s = mwt_read_file(err_path);
    cr_assert_not_null(s);
    return s;
}

static void make_ca(const char *name)
{
    cr_assert_eq(pki("ca", "--out", in_dir(name), NULL), 0, "ca failed: %s", stderr_text());
}

static void issue(const char *ca, const char *role, const char *id, const char *out)
{
    cr_assert_eq(
        pki("issue", "--ca", in_dir(ca), "--role", role, "--id", id, "--out", in_dir(out), NULL), 0,
        "issue failed: %s", stderr_text());
}

static WOLFSSL_X509 *load_cert(const char *rel)
{
    WOLFSSL_X509 *x = wolfSSL_X509_load_certificate_file(in_dir(rel), WOLFSSL_FILETYPE_PEM);
    cr_assert_not_null(x, "wolfSSL cannot load %s", rel);
    return x;
}

/* Verifies a certificate file against one CA file, as a peer's certificate manager would. */
static int verify(const char *ca_rel, const char *cert_rel)
{
    WOLFSSL_CERT_MANAGER *cm = wolfSSL_CertManagerNew();
    cr_assert_not_null(cm);
    cr_assert_eq(wolfSSL_CertManagerLoadCA(cm, in_dir(ca_rel), NULL), WOLFSSL_SUCCESS);
    char *pem = mwt_read_file(in_dir(cert_rel));
    cr_assert_not_null(pem, "missing %s", cert_rel);
    int ret = wolfSSL_CertManagerVerifyBuffer(cm, (const unsigned char *)pem, (long)strlen(pem),
                                              WOLFSSL_FILETYPE_PEM);
    free(pem);
    wolfSSL_CertManagerFree(cm);
    return ret;
}

static void name_text(WOLFSSL_X509_NAME *name, int nid, char *out, int cap)
{
    cr_assert_not_null(name);
    cr_assert_gt(wolfSSL_X509_NAME_get_text_by_NID(name, nid, out, cap), 0);
}

static void serial_of(const char *rel, unsigned char *out, int *len)
{
    WOLFSSL_X509 *x = load_cert(rel);
    cr_assert_eq(wolfSSL_X509_get_serial_number(x, out, len), WOLFSSL_SUCCESS);
    wolfSSL_X509_free(x);
}

/* The serial of the certificate in @p rel as hex digits, upper or lower case, into @p hex. */
static void serial_hex(const char *rel, bool upper, char hex[65])
{
    unsigned char serial[32];
    int len = sizeof(serial);
    serial_of(rel, serial, &len);
    hex[0] = '\0';
    for (int i = 0; i < len; i++)
        snprintf(hex + 2 * i, 3, upper ? "%02X" : "%02x", serial[i]);
}

/* --- what the files are ------------------------------------------------------------------- */

Test(pki, ca_writes_a_certificate_and_key_that_wolfssl_loads)
{
    make_ca("ca");
    WOLFSSL_CTX *ctx = wolfSSL_CTX_new(wolfDTLSv1_2_server_method());
    cr_assert_not_null(ctx);
    cr_expect_eq(wolfSSL_CTX_use_certificate_file(ctx, in_dir("ca/ca.crt"), WOLFSSL_FILETYPE_PEM),
                 WOLFSSL_SUCCESS);
    cr_expect_eq(wolfSSL_CTX_use_PrivateKey_file(ctx, in_dir("ca/ca.key"), WOLFSSL_FILETYPE_PEM),
                 WOLFSSL_SUCCESS);
    cr_expect_eq(wolfSSL_CTX_check_private_key(ctx), WOLFSSL_SUCCESS);
    wolfSSL_CTX_free(ctx);
}

Test(pki, ca_certificate_is_a_critical_ca_that_may_only_sign_certificates_and_crls)
{
    make_ca("ca");
    WOLFSSL_X509 *x = load_cert("ca/ca.crt");
    char text[80];
    cr_expect_eq(wolfSSL_X509_get_isCA(x), 1);
    cr_expect_eq(wolfSSL_X509_ext_get_critical_by_NID(x, NID_basic_constraints), 1);
    cr_expect_eq(wolfSSL_X509_get_keyUsage(x), KU_KEY_CERT_SIGN | KU_CRL_SIGN);
    name_text(wolfSSL_X509_get_subject_name(x), NID_commonName, text, sizeof(text));
    cr_expect_str_eq(text, "medwire CA");
    cr_expect_eq(
        wolfSSL_X509_NAME_cmp(wolfSSL_X509_get_subject_name(x), wolfSSL_X509_get_issuer_name(x)), 0,
        "a root CA is its own issuer");
    wolfSSL_X509_free(x);
}

Test(pki, ca_name_option_sets_the_common_name)
{
    cr_assert_eq(pki("ca", "--out", in_dir("ca"), "--name", "St. Elsewhere Radiology CA", NULL), 0);
    WOLFSSL_X509 *x = load_cert("ca/ca.crt");
    char text[80];
    name_text(wolfSSL_X509_get_subject_name(x), NID_commonName, text, sizeof(text));
    cr_expect_str_eq(text, "St. Elsewhere Radiology CA");
    wolfSSL_X509_free(x);
}

/* @req IEC62443-CR1.8 */
Test(pki, device_certificate_has_client_auth_only_and_common_name_equal_to_id)
{
    make_ca("ca");
    issue("ca", "device", "infusion-pump-0042", "dev");
    WOLFSSL_X509 *x = load_cert("dev/infusion-pump-0042.crt");
    char text[80];
    cr_expect_eq(wolfSSL_X509_get_extended_key_usage(x), XKU_SSL_CLIENT);
    cr_expect_eq(wolfSSL_X509_get_keyUsage(x), KU_DIGITAL_SIGNATURE);
    cr_expect_eq(wolfSSL_X509_get_isCA(x), 0);
    name_text(wolfSSL_X509_get_subject_name(x), NID_commonName, text, sizeof(text));
    cr_expect_str_eq(text, "infusion-pump-0042");
    name_text(wolfSSL_X509_get_subject_name(x), NID_organizationName, text, sizeof(text));
    cr_expect_str_eq(text, "medwire");
    const char *san = wolfSSL_X509_get_next_altname(x);
    cr_expect(san != NULL && strcmp(san, "urn:medwire:device:infusion-pump-0042") == 0,
              "device SAN is %s", san ? san : "(none)");
    wolfSSL_X509_free(x);
}

/* The protocol's certificate profile is what integrators build other CAs from: its table
 * must say what medwire-pki writes. */
Test(pki, the_protocol_document_gives_the_san_uri_a_device_certificate_carries)
{
    make_ca("ca");
    issue("ca", "device", "pulseox-1", "dev");
    WOLFSSL_X509 *x = load_cert("dev/pulseox-1.crt");
    const char *san = wolfSSL_X509_get_next_altname(x);
    cr_assert(san != NULL && strcmp(san, "urn:medwire:device:pulseox-1") == 0, "SAN %s",
              san ? san : "(none)");
    wolfSSL_X509_free(x);
    const char *src = getenv("MW_SOURCE_DIR");
    cr_assert_not_null(src, "MW_SOURCE_DIR is not set (run through ctest)");
    char path[512];
    snprintf(path, sizeof path, "%s/docs/protocol.md", src);
    char *doc = mwt_read_file(path);
    cr_assert_not_null(doc, "%s", path);
    const char *row = strstr(doc, "\n| subjectAltName |");
    cr_assert_not_null(row, "docs/protocol.md section 2 has no subjectAltName row");
    const char *end = strchr(row + 1, '\n');
    cr_assert_not_null(end);
    const char *uri = strstr(row, "| URI = `urn:medwire:device:` + device id |\n");
    cr_assert(uri != NULL && uri < end,
              "docs/protocol.md section 2 does not give the device's SAN URI");
    free(doc);
}

/* @req IEC62443-CR1.8 */
Test(pki, gateway_certificate_has_server_auth_and_dns_name)
{
    make_ca("ca");
    issue("ca", "gateway", "gw1.icu.example", "gw");
    WOLFSSL_X509 *x = load_cert("gw/gw1.icu.example.crt");
    cr_expect_eq(wolfSSL_X509_get_extended_key_usage(x), XKU_SSL_SERVER);
    cr_expect_eq(wolfSSL_X509_get_isCA(x), 0);
    const char *san = wolfSSL_X509_get_next_altname(x);
    cr_expect(san != NULL && strcmp(san, "gw1.icu.example") == 0, "gateway SAN is %s",
              san ? san : "(none)");
    cr_expect_eq(wolfSSL_X509_check_host(x, "gw1.icu.example", 15, 0, NULL), WOLFSSL_SUCCESS);
    cr_expect_neq(wolfSSL_X509_check_host(x, "gw2.icu.example", 15, 0, NULL), WOLFSSL_SUCCESS);
    wolfSSL_X509_free(x);
}

/* @req IEC62443-CR4.3 */
Test(pki, certificates_are_x509_v3_signed_with_ecdsa_sha256_over_p256_keys)
{
    make_ca("ca");
    issue("ca", "device", "d1", "out");
    const char *files[] = {"ca/ca.crt", "out/d1.crt"};
    for (size_t i = 0; i < 2; i++) {
        WOLFSSL_X509 *x = load_cert(files[i]);
        cr_expect_eq(wolfSSL_X509_version(x), 3, "%s", files[i]);
        cr_expect_eq(wolfSSL_X509_get_signature_type(x), CTC_SHA256wECDSA, "%s", files[i]);
        cr_expect_eq(wolfSSL_X509_get_pubkey_type(x), ECDSAk, "%s", files[i]);
        wolfSSL_X509_free(x);
    }
}

Test(pki, key_is_a_sec1_p256_key_that_matches_its_certificate)
{
    make_ca("ca");
    issue("ca", "gateway", "gw", "out");
    char *pem = mwt_read_file(in_dir("out/gw.key"));
    cr_assert_not_null(pem);
    cr_expect(strncmp(pem, "-----BEGIN EC PRIVATE KEY-----\n", 31) == 0, "key file starts %.40s",
              pem);
    unsigned char der[512];
    int der_len =
        wc_KeyPemToDer((const unsigned char *)pem, (int)strlen(pem), der, sizeof(der), NULL);
    free(pem);
    cr_assert_gt(der_len, 0);
    ecc_key key;
    word32 idx = 0;
    cr_assert_eq(wc_ecc_init(&key), 0);
    cr_expect_eq(wc_EccPrivateKeyDecode(der, &idx, &key, (word32)der_len), 0);
    cr_expect_eq(wc_ecc_get_curve_id(key.idx), ECC_SECP256R1);
    wc_ecc_free(&key);

    WOLFSSL_CTX *ctx = wolfSSL_CTX_new(wolfDTLSv1_2_server_method());
    cr_assert_not_null(ctx);
    cr_expect_eq(wolfSSL_CTX_use_certificate_file(ctx, in_dir("out/gw.crt"), WOLFSSL_FILETYPE_PEM),
                 WOLFSSL_SUCCESS);
    cr_expect_eq(wolfSSL_CTX_use_PrivateKey_file(ctx, in_dir("out/gw.key"), WOLFSSL_FILETYPE_PEM),
                 WOLFSSL_SUCCESS);
    cr_expect_eq(wolfSSL_CTX_check_private_key(ctx), WOLFSSL_SUCCESS);
    wolfSSL_CTX_free(ctx);
}

/* @req IEC62443-CR1.5 */
Test(pki, two_issued_certificates_have_different_serials)
{
    make_ca("ca");
    issue("ca", "device", "a", "out");
    issue("ca", "device", "b", "out");
    unsigned char sa[32], sb[32];
    int la = sizeof(sa), lb = sizeof(sb);
    serial_of("out/a.crt", sa, &la);
    serial_of("out/b.crt", sb, &lb);
    /* 16 octets, positive (RFC 5280 4.1.2.2), and unpredictable. */
    cr_expect_eq(la, 16);
    cr_expect_eq(lb, 16);
    cr_expect_eq(sa[0] & 0x80, 0);
    cr_expect_eq(sb[0] & 0x80, 0);
    cr_expect(la != lb || memcmp(sa, sb, (size_t)la) != 0, "two certificates share a serial");
}

Test(pki, issue_count_makes_a_fleet_in_one_run_each_with_its_own_name_serial_and_index_line)
{
    make_ca("ca");
    cr_assert_eq(pki("issue", "--ca", in_dir("ca"), "--role", "device", "--id", "bed", "--count",
                     "3", "--out", in_dir("out"), NULL),
                 0, "%s", stderr_text());
    unsigned char s[3][32];
    int len[3];
    for (int i = 0; i < 3; i++) {
        char crt[32], cn[80];
        snprintf(crt, sizeof crt, "out/bed-%d.crt", i + 1);
        cr_assert_eq(verify("ca/ca.crt", crt), WOLFSSL_SUCCESS, "%s", crt);
        WOLFSSL_X509 *x = load_cert(crt);
        name_text(wolfSSL_X509_get_subject_name(x), NID_commonName, cn, sizeof cn);
        wolfSSL_X509_free(x);
        char want[16];
        snprintf(want, sizeof want, "bed-%d", i + 1);
        cr_assert_str_eq(cn, want);
        len[i] = (int)sizeof s[i];
        serial_of(crt, s[i], &len[i]);
    }
    cr_assert(memcmp(s[0], s[1], (size_t)len[0]) != 0 && memcmp(s[1], s[2], (size_t)len[1]) != 0);
    char *index = mwt_read_file(in_dir("ca/index.txt"));
    cr_assert_not_null(index);
    cr_assert(strstr(index, "CN=bed-1\n") && strstr(index, "CN=bed-3\n"), "%s", index);
    free(index);
    /* The revocation of one of them finds it: the index holds each serial. */
    cr_assert_eq(pki("revoke", "--ca", in_dir("ca"), "--id", "bed-2", NULL), 0, "%s",
                 stderr_text());
    cr_assert_eq(pki("issue", "--ca", in_dir("ca"), "--role", "device", "--id", "bed", "--count",
                     "0", "--out", in_dir("out"), NULL),
                 2, "--count 0 is a usage error");
}

Test(pki, accepts_an_id_of_64_characters_and_keeps_all_of_it_in_the_names)
{
    const char *id = "A123456789012345678901234567890123456789012345678901234567890.-_";
    cr_assert_eq(strlen(id), 64u);
    /* A CA name of 64 characters too: the leaf's issuer must still match it byte for byte. */
    cr_assert_eq(pki("ca", "--out", in_dir("ca"), "--name",
                     "B123456789012345678901234567890123456789012345678901234567890123", NULL),
                 0, "%s", stderr_text());
    issue("ca", "gateway", id, "out");
    char file[100], text[100];
    snprintf(file, sizeof(file), "out/%s.crt", id);
    WOLFSSL_X509 *x = load_cert(file);
    name_text(wolfSSL_X509_get_subject_name(x), NID_commonName, text, sizeof(text));
    cr_expect_str_eq(text, id);
    const char *san = wolfSSL_X509_get_next_altname(x);
    cr_expect(san != NULL && strcmp(san, id) == 0);
    wolfSSL_X509_free(x);
    cr_expect_eq(verify("ca/ca.crt", file), WOLFSSL_SUCCESS);
}

/* --- how the files verify ----------------------------------------------------------------- */

Test(pki, issued_certificate_verifies_against_its_ca_and_not_against_another)
{
    make_ca("ca");
    make_ca("other");
    issue("ca", "device", "dev", "out");
    issue("ca", "gateway", "gw", "out");
    cr_expect_eq(verify("ca/ca.crt", "out/dev.crt"), WOLFSSL_SUCCESS);
    cr_expect_eq(verify("ca/ca.crt", "out/gw.crt"), WOLFSSL_SUCCESS);
    cr_expect_eq(verify("other/ca.crt", "out/dev.crt"), ASN_NO_SIGNER_E);
    cr_expect_eq(verify("other/ca.crt", "out/gw.crt"), ASN_NO_SIGNER_E);
}

Test(pki, not_after_in_the_past_makes_an_expired_certificate)
{
    make_ca("ca");
    cr_assert_eq(pki("issue", "--ca", in_dir("ca"), "--role", "device", "--id", "old", "--out",
                     in_dir("out"), "--not-before", "2015-03-01", "--not-after", "2020-02-29",
                     NULL),
                 0, "%s", stderr_text());
    cr_expect_eq(verify("ca/ca.crt", "out/old.crt"), ASN_AFTER_DATE_E);
}

Test(pki, not_before_in_the_future_makes_a_certificate_that_is_not_yet_valid)
{
    make_ca("ca");
    cr_assert_eq(pki("issue", "--ca", in_dir("ca"), "--role", "gateway", "--id", "later", "--out",
                     in_dir("out"), "--not-before", "2090-01-01", "--not-after", "2091-01-01",
                     NULL),
                 0, "%s", stderr_text());
    cr_expect_eq(verify("ca/ca.crt", "out/later.crt"), ASN_BEFORE_DATE_E);
}

Test(pki, explicit_dates_cover_whole_days_as_utctime_before_2050_and_generalizedtime_after)
{
    make_ca("ca");
    cr_assert_eq(pki("issue", "--ca", in_dir("ca"), "--role", "device", "--id", "d", "--out",
                     in_dir("out"), "--not-before", "2049-06-01", "--not-after", "2050-01-02",
                     NULL),
                 0, "%s", stderr_text());
    WOLFSSL_X509 *x = load_cert("out/d.crt");
    WOLFSSL_ASN1_TIME *nb = wolfSSL_X509_get_notBefore(x);
    WOLFSSL_ASN1_TIME *na = wolfSSL_X509_get_notAfter(x);
    cr_assert(nb != NULL && na != NULL);
    cr_expect_eq(nb->type, V_ASN1_UTCTIME);
    cr_expect_eq(nb->length, 13);
    cr_expect(memcmp(nb->data, "490601000000Z", 13) == 0, "notBefore %.*s", nb->length,
              (const char *)nb->data);
    cr_expect_eq(na->type, V_ASN1_GENERALIZEDTIME);
    cr_expect_eq(na->length, 15);
    cr_expect(memcmp(na->data, "20500102235959Z", 15) == 0, "notAfter %.*s", na->length,
              (const char *)na->data);
    wolfSSL_X509_free(x);
}

Test(pki, self_signed_leaf_does_not_verify_against_the_ca)
{
    make_ca("ca");
    cr_assert_eq(pki("issue", "--self-signed", "--role", "gateway", "--id", "rogue", "--out",
                     in_dir("out"), NULL),
                 0, "%s", stderr_text());
    WOLFSSL_X509 *x = load_cert("out/rogue.crt");
    cr_expect_eq(
        wolfSSL_X509_NAME_cmp(wolfSSL_X509_get_subject_name(x), wolfSSL_X509_get_issuer_name(x)), 0,
        "a self-signed leaf is its own issuer");
    cr_expect_eq(wolfSSL_X509_get_extended_key_usage(x), XKU_SSL_SERVER);
    wolfSSL_X509_free(x);
    /* wolfSSL names the reason: self-signed (-275), not merely unknown issuer (-188). */
    cr_expect_eq(verify("ca/ca.crt", "out/rogue.crt"), ASN_SELF_SIGNED_E);
}

Test(pki, openssl_accepts_the_chain_and_the_keys)
{
    const char *openssl = "/usr/bin/openssl";
    if (access(openssl, X_OK) != 0)
        cr_skip_test("no %s", openssl);
    make_ca("ca");
    issue("ca", "device", "dev", "out");
    issue("ca", "gateway", "gw", "out");
    const char *chain[] = {openssl,
                           "verify",
                           "-CAfile",
                           in_dir("ca/ca.crt"),
                           in_dir("out/dev.crt"),
                           in_dir("out/gw.crt"),
                           NULL};
    cr_expect_eq(mwt_run(chain, out_path, err_path, RUN_TIMEOUT_MS), 0, "%s", stderr_text());
    const char *purpose[] = {openssl,
                             "verify",
                             "-purpose",
                             "sslserver",
                             "-CAfile",
                             in_dir("ca/ca.crt"),
                             in_dir("out/dev.crt"),
                             NULL};
    cr_expect_neq(mwt_run(purpose, out_path, err_path, RUN_TIMEOUT_MS), 0,
                  "a device certificate must not pass as a TLS server");
    const char *keys[] = {"ca/ca.key", "out/dev.key", "out/gw.key"};
    for (size_t i = 0; i < 3; i++) {
        const char *check[] = {openssl, "ec", "-check", "-noout", "-in", in_dir(keys[i]), NULL};
        cr_expect_eq(mwt_run(check, out_path, err_path, RUN_TIMEOUT_MS), 0, "%s: %s", keys[i],
                     stderr_text());
    }
}

/* The protocol's chain is CA to leaf: a CA certificate signed by this CA by mistake must not be
 * able to issue certificates of its own. */
/* @req IEC62443-CR1.2 */
Test(pki, ca_certificate_forbids_intermediate_cas_with_path_length_zero)
{
    const char *openssl = "/usr/bin/openssl";
    if (access(openssl, X_OK) != 0)
        cr_skip_test("no %s", openssl);
    make_ca("ca");
    const char *text[] = {openssl, "x509", "-noout", "-text", "-in", in_dir("ca/ca.crt"), NULL};
    cr_assert_eq(mwt_run(text, out_path, err_path, RUN_TIMEOUT_MS), 0, "%s", stderr_text());
    char *out = mwt_read_file(out_path);
    cr_assert_not_null(out);
    const char *bc = strstr(out, "X509v3 Basic Constraints: critical");
    cr_assert_not_null(bc, "%s", out);
    cr_expect_not_null(strstr(bc, "CA:TRUE, pathlen:0"), "%s", bc);
    free(out);
}

/* --- files on disk ------------------------------------------------------------------------ */

/* @req IEC62443-CR1.5 */
Test(pki, key_file_is_readable_by_owner_only)
{
    mode_t old = umask(0); /* the program must not rely on the caller's umask */
    make_ca("ca");
    issue("ca", "device", "dev", "out");
    umask(old);
    struct stat st;
    cr_assert_eq(stat(in_dir("ca/ca.key"), &st), 0);
    cr_expect_eq(st.st_mode & 07777, 0600, "ca.key mode %o", (unsigned)(st.st_mode & 07777));
    cr_assert_eq(stat(in_dir("out/dev.key"), &st), 0);
    cr_expect_eq(st.st_mode & 07777, 0600, "dev.key mode %o", (unsigned)(st.st_mode & 07777));
}

Test(pki, certificate_is_world_readable_and_new_directory_private)
{
    mode_t old = umask(077);
    make_ca("ca");
    issue("ca", "gateway", "gw", "new/out");
    umask(old);
    struct stat st;
    cr_assert_eq(stat(in_dir("new/out/gw.crt"), &st), 0);
    cr_expect_eq(st.st_mode & 07777, 0644, "gw.crt mode %o", (unsigned)(st.st_mode & 07777));
    cr_assert_eq(stat(in_dir("new/out"), &st), 0);
    cr_expect(S_ISDIR(st.st_mode));
    cr_expect_eq(st.st_mode & 07777, 0700, "directory mode %o", (unsigned)(st.st_mode & 07777));
}

Test(pki, leaves_only_the_certificate_and_key_in_the_output_directory)
{
    make_ca("ca");
    issue("ca", "device", "dev", "out");
    DIR *d = opendir(in_dir("out"));
    cr_assert_not_null(d);
    struct dirent *e;
    int files = 0;
    while ((e = readdir(d)) != NULL) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
            continue;
        files++;
        cr_expect(strcmp(e->d_name, "dev.crt") == 0 || strcmp(e->d_name, "dev.key") == 0,
                  "unexpected file %s", e->d_name);
    }
    closedir(d);
    cr_expect_eq(files, 2);
}

/* @req IEC62443-CR1.5 */
Test(pki, refuses_to_overwrite_without_force)
{
    make_ca("ca");
    issue("ca", "device", "dev", "out");
    char *key_before = mwt_read_file(in_dir("out/dev.key"));
    cr_assert_not_null(key_before);

    cr_expect_eq(pki("issue", "--ca", in_dir("ca"), "--role", "device", "--id", "dev", "--out",
                     in_dir("out"), NULL),
                 1);
    char *err = stderr_text();
    cr_expect(strstr(err, "already exists") != NULL && strstr(err, "--force") != NULL, "%s", err);
    free(err);
    char *key_after = mwt_read_file(in_dir("out/dev.key"));
    cr_expect_str_eq(key_after, key_before, "the existing key was changed");
    free(key_after);

    cr_expect_eq(pki("ca", "--out", in_dir("ca"), NULL), 1, "ca must not replace a CA either");

    cr_expect_eq(pki("issue", "--ca", in_dir("ca"), "--role", "device", "--id", "dev", "--out",
                     in_dir("out"), "--force", NULL),
                 0);
    key_after = mwt_read_file(in_dir("out/dev.key"));
    cr_expect_str_neq(key_after, key_before, "--force did not replace the key");
    free(key_after);
    free(key_before);
}

/* --- what the user is told ---------------------------------------------------------------- */

Test(pki, missing_ca_gives_a_message_that_says_how_to_make_one)
{
    const char *ca = in_dir("no-such-ca");
    cr_expect_eq(
        pki("issue", "--ca", ca, "--role", "device", "--id", "dev", "--out", in_dir("out"), NULL),
        1);
    char *err = stderr_text();
    char hint[1300];
    snprintf(hint, sizeof(hint), "medwire-pki ca --out %s", ca);
    cr_expect(strstr(err, hint) != NULL, "stderr: %s", err);
    cr_expect(strstr(err, "No such file or directory") != NULL, "stderr: %s", err);
    free(err);
    cr_expect_neq(access(in_dir("out"), F_OK), 0, "nothing is written on failure");
}

Test(pki, refuses_a_ca_key_that_does_not_belong_to_the_ca_certificate)
{
    make_ca("ca");
    make_ca("other");
    char *other_key = mwt_read_file(in_dir("other/ca.key"));
    cr_assert_not_null(other_key);
    FILE *f = fopen(in_dir("ca/ca.key"), "w");
    cr_assert_not_null(f);
    fputs(other_key, f);
    fclose(f);
    free(other_key);
    cr_expect_eq(pki("issue", "--ca", in_dir("ca"), "--role", "device", "--id", "dev", "--out",
                     in_dir("out"), NULL),
                 1);
    char *err = stderr_text();
    cr_expect(strstr(err, "does not belong to") != NULL, "stderr: %s", err);
    free(err);
}

Test(pki, refuses_an_id_with_characters_outside_the_allowed_set)
{
    make_ca("ca");
    const char *bad[] = {"../escape", "a/b", "a b", "-dash-first", ".dot-first", "_underscore",
                         "caf\xc3\xa9", "semi;colon",
                         /* 65 characters: one over ub-common-name */
                         "A1234567890123456789012345678901234567890123456789012345678901234"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        cr_expect_eq(pki("issue", "--ca", in_dir("ca"), "--role", "device", "--id", bad[i], "--out",
                         in_dir("out"), NULL),
                     2, "id '%s' was accepted", bad[i]);
        char *err = stderr_text();
        cr_expect(strstr(err, "--id") != NULL && strstr(err, "A-Z a-z 0-9") != NULL &&
                      strstr(err, "see 'medwire-pki --help'") != NULL,
                  "stderr for '%s': %s", bad[i], err);
        free(err);
    }
    cr_expect_neq(access(in_dir("out"), F_OK), 0, "nothing is written for a bad id");
}

Test(pki, missing_or_unknown_options_are_usage_errors_that_name_the_option)
{
    struct {
        const char *args[12];
        const char *named;
    } cases[] = {
        {{"issue", "--ca", "x", "--id", "d", "--out", "o", NULL}, "--role"},
        {{"issue", "--ca", "x", "--role", "device", "--out", "o", NULL}, "--id"},
        {{"issue", "--ca", "x", "--role", "device", "--id", "d", NULL}, "--out"},
        {{"issue", "--role", "device", "--id", "d", "--out", "o", NULL}, "--ca"},
        {{"issue", "--ca", "x", "--role", "nurse", "--id", "d", "--out", "o", NULL}, "--role"},
        {{"issue", "--ca", "x", "--self-signed", "--role", "device", "--id", "d", "--out", "o",
          NULL},
         "--self-signed"},
        {{"ca", NULL}, "--out"},
        {{"ca", "--out", NULL}, "--out"},
        {{"ca", "--out", "o", "--colour", "blue", NULL}, "--colour"},
        {{"sign", NULL}, "sign"},
        {{"revoke", "--ca", "x", NULL}, "--id"},
        {{"revoke", "--id", "d", NULL}, "--ca"},
        {{"revoke", "--ca", "x", "--id", "../d", NULL}, "--id"},
        {{"revoke", "--ca", "x", "--id", "d", "--reason", "bored", NULL}, "--reason"},
        {{"revoke", "--ca", "x", "--id", "d", "--reason", "certificateHold", NULL}, "--reason"},
        {{"crl", NULL}, "--ca"},
        {{"crl", "--ca", "x", "--next-update-days", "0", NULL}, "--next-update-days"},
        {{"crl", "--ca", "x", "--next-update-days", "366", NULL}, "--next-update-days"},
        {{"crl", "--ca", "x", "--next-update-days", "7d", NULL}, "--next-update-days"},
        {{"crl", "--ca", "x", "--next-update-days", "-1", NULL}, "--next-update-days"},
        {{"crl", "--ca", "x", "--this-update", "2020-02-30", NULL}, "--this-update"},
        {{"crl", "--ca", "x", "--id", "d", NULL}, "--id"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        const char *argv[16] = {mwt_bin("medwire-pki")};
        for (size_t k = 0; cases[i].args[k] != NULL; k++)
            argv[k + 1] = cases[i].args[k];
        cr_expect_eq(mwt_run(argv, out_path, err_path, RUN_TIMEOUT_MS), 2, "case %zu", i);
        char *err = stderr_text();
        cr_expect(strstr(err, cases[i].named) != NULL &&
                      strstr(err, "see 'medwire-pki --help'") != NULL,
                  "case %zu stderr: %s", i, err);
        free(err);
    }
}

Test(pki, dates_that_are_malformed_or_out_of_order_are_usage_errors)
{
    make_ca("ca");
    const char *pairs[][2] = {
        {"2030-01-02", "2030-01-01"}, /* not-before after not-after */
        {"2030-13-01", "2031-01-01"}, /* no month 13 */
        {"2030-02-29", "2031-01-01"}, /* 2030 is not a leap year */
        {"30-01-01", "2031-01-01"},   /* two-digit year */
        {"2030-01-01", "2031-1-1"},   /* unpadded */
    };
    for (size_t i = 0; i < sizeof(pairs) / sizeof(pairs[0]); i++) {
        cr_expect_eq(pki("issue", "--ca", in_dir("ca"), "--role", "device", "--id", "d", "--out",
                         in_dir("out"), "--not-before", pairs[i][0], "--not-after", pairs[i][1],
                         NULL),
                     2, "dates %s..%s", pairs[i][0], pairs[i][1]);
    }
    /* One day is a valid period: 00:00:00Z to 23:59:59Z. */
    cr_expect_eq(pki("issue", "--ca", in_dir("ca"), "--role", "device", "--id", "d", "--out",
                     in_dir("out"), "--not-before", "2024-02-29", "--not-after", "2024-02-29",
                     NULL),
                 0, "%s", stderr_text());
}

Test(pki, help_and_version_go_to_stdout_and_exit_zero)
{
    const char *const runs[][3] = {{"--help", NULL, NULL},     {"-h", NULL, NULL},
                                   {"ca", "--help", NULL},     {"issue", "-h", NULL},
                                   {"revoke", "--help", NULL}, {"crl", "-h", NULL}};
    for (size_t i = 0; i < sizeof(runs) / sizeof(runs[0]); i++) {
        const char *argv[4] = {mwt_bin("medwire-pki"), runs[i][0], runs[i][1], NULL};
        cr_expect_eq(mwt_run(argv, out_path, err_path, RUN_TIMEOUT_MS), 0);
        char *out = mwt_read_file(out_path);
        cr_assert_not_null(out);
        cr_expect(strstr(out, "medwire-pki ca --out DIR") != NULL, "run %zu: %s", i, out);
        cr_expect(strstr(out, "--role device|gateway --id NAME") != NULL, "run %zu: %s", i, out);
        cr_expect(strstr(out, "medwire-pki revoke --ca DIR --id NAME") != NULL, "run %zu: %s", i,
                  out);
        cr_expect(strstr(out, "medwire-pki crl --ca DIR") != NULL, "run %zu: %s", i, out);
        free(out);
    }
    cr_expect_eq(pki("--version", NULL), 0);
    char *out = mwt_read_file(out_path);
    cr_assert_not_null(out);
    cr_expect(strncmp(out, "medwire-pki ", 12) == 0, "%s", out);
    free(out);
}

/* --- revocation --------------------------------------------------------------------------- */

static const char openssl_bin[] = "/usr/bin/openssl";

static void revoke_id(const char *ca, const char *id)
{
    cr_assert_eq(pki("revoke", "--ca", in_dir(ca), "--id", id, NULL), 0, "revoke failed: %s",
                 stderr_text());
}

/* The CRL's DER (free it with wc_FreeDer). */
static DerBuffer *crl_der(const char *rel)
{
    char *pem = mwt_read_file(in_dir(rel));
    cr_assert_not_null(pem, "missing %s", rel);
    DerBuffer *der = NULL;
    cr_assert_eq(wc_PemToDer((const unsigned char *)pem, (long)strlen(pem), CRL_TYPE, &der, NULL,
                             NULL, NULL),
                 0, "%s is not a PEM CRL", rel);
    free(pem);
    return der;
}

/* One DER element: tag, content, and the whole TLV. */
typedef struct {
    unsigned char tag;
    const unsigned char *c, *tlv;
    size_t len, tlv_len;
} der_el;

static bool der_read(const unsigned char **p, const unsigned char *end, der_el *e)
{
    const unsigned char *q = *p;
    if (end - q < 2)
        return false;
    e->tlv = q;
    e->tag = *q++;
    size_t len = *q++;
    if (len & 0x80) {
        size_t k = len & 0x7f;
        if (k == 0 || k > 3 || (size_t)(end - q) < k)
            return false;
        for (len = 0; k > 0; k--)
            len = len << 8 | *q++;
    }
    if ((size_t)(end - q) < len)
        return false;
    e->c = q;
    e->len = len;
    e->tlv_len = (size_t)(q + len - e->tlv);
    *p = q + len;
    return true;
}

/* Reads the n-th (0-based) element inside a constructed element. */
static der_el der_child(const der_el *parent, int n)
{
    const unsigned char *p = parent->c, *end = parent->c + parent->len;
    der_el e;
    for (int i = 0; i <= n; i++)
        cr_assert(der_read(&p, end, &e), "element %d of tag 0x%02x is missing", i, parent->tag);
    return e;
}

static size_t der_count(const der_el *parent)
{
    const unsigned char *p = parent->c, *end = parent->c + parent->len;
    der_el e;
    size_t n = 0;
    while (p < end && der_read(&p, end, &e))
        n++;
    return n;
}

/* The TBSCertList of a CRL file; the DerBuffer must outlive it. */
static der_el crl_tbs(const DerBuffer *der)
{
    const unsigned char *p = der->buffer;
    der_el list;
    cr_assert(der_read(&p, der->buffer + der->length, &list));
    cr_assert_eq(list.tag, 0x30);
    cr_assert_eq(der_count(&list), 3u, "CertificateList has tbs, algorithm and signature");
    return der_child(&list, 0);
}

/* Finds an extension by the last byte of its id-ce OID; returns its extnValue content. */
static bool find_extension(const der_el *exts, unsigned char oid_last, der_el *value,
                           bool *critical)
{
    for (size_t i = 0; i < der_count(exts); i++) {
        der_el ext = der_child(exts, (int)i), oid = der_child(&ext, 0);
        if (oid.len != 3 || memcmp(oid.c, "\x55\x1d", 2) != 0 || oid.c[2] != oid_last)
            continue;
        der_el second = der_child(&ext, 1);
        *critical = second.tag == 0x01;
        *value = second.tag == 0x01 ? der_child(&ext, 2) : second;
        return true;
    }
    return false;
}

/* The TBSCertificate element of a certificate file: index 5 is the subject (after [0]). */
static der_el cert_tbs_field(const char *rel, unsigned char *buf, size_t cap, int field)
{
    char *pem = mwt_read_file(in_dir(rel));
    cr_assert_not_null(pem);
    int n = wc_CertPemToDer((const unsigned char *)pem, (int)strlen(pem), buf, (int)cap, CERT_TYPE);
    free(pem);
    cr_assert_gt(n, 0);
    const unsigned char *p = buf;
    der_el cert;
    cr_assert(der_read(&p, buf + n, &cert));
    der_el tbs = der_child(&cert, 0);
    return der_child(&tbs, field);
}

static uint64_t crl_number(const char *rel)
{
    DerBuffer *der = crl_der(rel);
    der_el tbs = crl_tbs(der);
    der_el a0 = der_child(&tbs, (int)der_count(&tbs) - 1), exts = der_child(&a0, 0), value;
    bool critical;
    cr_assert(find_extension(&exts, 0x14, &value, &critical), "no cRLNumber");
    const unsigned char *p = value.c;
    der_el num;
    cr_assert(der_read(&p, value.c + value.len, &num));
    cr_assert_eq(num.tag, 0x02);
    uint64_t v = 0;
    for (size_t i = 0; i < num.len; i++)
        v = v << 8 | num.c[i];
    wc_FreeDer(&der);
    return v;
}

static size_t count_revoked(const char *rel)
{
    DerBuffer *der = crl_der(rel);
    der_el tbs = crl_tbs(der);
    /* version, signature, issuer, thisUpdate, nextUpdate, [revoked], [0] extensions */
    size_t n = 0;
    if (der_count(&tbs) == 7) {
        der_el revoked = der_child(&tbs, 5);
        n = der_count(&revoked);
    }
    wc_FreeDer(&der);
    return n;
}

/* @req IEC62443-CR1.8 */
Test(pki, crl_follows_the_profile)
{
    make_ca("ca");
    issue("ca", "device", "dev", "out");
    revoke_id("ca", "dev");
    DerBuffer *der = crl_der("ca/crl.pem");
    der_el tbs = crl_tbs(der);
    cr_assert_eq(der_count(&tbs), 7u);

    der_el version = der_child(&tbs, 0);
    cr_expect(version.tag == 0x02 && version.len == 1 && version.c[0] == 1, "v2");
    static const unsigned char ecdsa_sha256[] = {0x30, 0x0a, 0x06, 0x08, 0x2a, 0x86,
                                                 0x48, 0xce, 0x3d, 0x04, 0x03, 0x02};
    der_el sig = der_child(&tbs, 1);
    cr_expect(sig.tlv_len == sizeof(ecdsa_sha256) &&
                  memcmp(sig.tlv, ecdsa_sha256, sizeof(ecdsa_sha256)) == 0,
              "ecdsa-with-SHA256 without parameters");

    unsigned char ca_buf[4096], dev_buf[4096];
    der_el subject = cert_tbs_field("ca/ca.crt", ca_buf, sizeof(ca_buf), 5);
    der_el issuer = der_child(&tbs, 2);
    cr_expect(issuer.tlv_len == subject.tlv_len &&
                  memcmp(issuer.tlv, subject.tlv, subject.tlv_len) == 0,
              "the CRL issuer must be the CA subject byte for byte");

    der_el this_update = der_child(&tbs, 3), next_update = der_child(&tbs, 4);
    cr_expect(this_update.tag == 0x17 && next_update.tag == 0x17, "UTCTime before 2050");

    der_el revoked = der_child(&tbs, 5);
    cr_assert_eq(der_count(&revoked), 1u);
    der_el entry = der_child(&revoked, 0), serial = der_child(&entry, 0);
    der_el dev_serial = cert_tbs_field("out/dev.crt", dev_buf, sizeof(dev_buf), 1);
    cr_expect(serial.tlv_len == dev_serial.tlv_len &&
                  memcmp(serial.tlv, dev_serial.tlv, serial.tlv_len) == 0,
              "the entry names the device certificate's serial");
    cr_expect_eq(der_count(&entry), 2u, "no reason given: no entry extensions (RFC 5280 5.3.1)");

    der_el a0 = der_child(&tbs, 6);
    cr_expect_eq(a0.tag, 0xa0);
    der_el exts = der_child(&a0, 0), value;
    bool critical = true;
    cr_assert(find_extension(&exts, 0x23, &value, &critical), "no authorityKeyIdentifier");
    cr_expect(!critical);
    /* AKI = SEQUENCE { [0] keyIdentifier } equal to the CA's subjectKeyIdentifier. */
    der_el aki_seq = der_child(&value, 0), key_id = der_child(&aki_seq, 0);
    cr_expect_eq(key_id.tag, 0x80);
    WOLFSSL_X509 *ca = load_cert("ca/ca.crt");
    unsigned char ski[64];
    int ski_len = sizeof(ski);
    cr_assert_not_null(wolfSSL_X509_get_subjectKeyID(ca, ski, &ski_len));
    cr_expect(key_id.len == (size_t)ski_len && memcmp(key_id.c, ski, key_id.len) == 0,
              "AKI is the CA's SKI");
    wolfSSL_X509_free(ca);
    cr_assert(find_extension(&exts, 0x14, &value, &critical), "no cRLNumber");
    cr_expect(!critical);
    wc_FreeDer(&der);

    struct stat st;
    cr_assert_eq(stat(in_dir("ca/crl.pem"), &st), 0);
    cr_expect_eq(st.st_mode & 07777, 0644);
    char *pem = mwt_read_file(in_dir("ca/crl.pem"));
    cr_expect(strncmp(pem, "-----BEGIN X509 CRL-----\n", 25) == 0, "%.30s", pem);
    free(pem);
}

/* Seconds since 2000-01-01 of a UTCTime YYMMDDHHMMSSZ (2000-2049), for differences only. */
static long utctime_seconds(const unsigned char *t)
{
    int v[6];
    for (int i = 0; i < 6; i++)
        v[i] = (t[2 * i] - '0') * 10 + (t[2 * i + 1] - '0');
    static const int mdays[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    long days = 0;
    for (int y = 0; y < v[0]; y++)
        days += y % 4 == 0 ? 366 : 365;
    for (int m = 1; m < v[1]; m++)
        days += mdays[m - 1] + (m == 2 && v[0] % 4 == 0);
    days += v[2] - 1;
    return days * 86400 + v[3] * 3600L + v[4] * 60L + v[5];
}

Test(pki, crl_lasts_seven_days_by_default_and_next_update_days_changes_it)
{
    make_ca("ca");
    const char *days[] = {NULL, "1", "30", "365"};
    const int expect[] = {7, 1, 30, 365};
    for (size_t i = 0; i < 4; i++) {
        if (days[i] == NULL)
            cr_assert_eq(pki("crl", "--ca", in_dir("ca"), NULL), 0, "%s", stderr_text());
        else
            cr_assert_eq(pki("crl", "--ca", in_dir("ca"), "--next-update-days", days[i], NULL), 0,
                         "%s", stderr_text());
        DerBuffer *der = crl_der("ca/crl.pem");
        der_el tbs = crl_tbs(der);
        der_el tu = der_child(&tbs, 3), nu = der_child(&tbs, 4);
        cr_assert(tu.len == 13 && nu.len == 13);
        long span = utctime_seconds(nu.c) - utctime_seconds(tu.c);
        cr_expect_eq(span, expect[i] * 86400L, "--next-update-days %s: %ld s",
                     days[i] ? days[i] : "(default)", span);
        wc_FreeDer(&der);
    }
}

Test(pki, crl_without_revocations_omits_the_revoked_certificates_field)
{
    make_ca("ca");
    issue("ca", "device", "dev", "out");
    cr_assert_eq(pki("crl", "--ca", in_dir("ca"), NULL), 0, "%s", stderr_text());
    DerBuffer *der = crl_der("ca/crl.pem");
    der_el tbs = crl_tbs(der);
    /* RFC 5280 5.1.2.6: absent, not an empty SEQUENCE. */
    cr_expect_eq(der_count(&tbs), 6u);
    cr_expect_eq(der_child(&tbs, 5).tag, 0xa0);
    wc_FreeDer(&der);
}

Test(pki, crl_number_increases_with_every_crl)
{
    make_ca("ca");
    issue("ca", "device", "dev", "out");
    cr_assert_eq(pki("crl", "--ca", in_dir("ca"), NULL), 0);
    cr_expect_eq(crl_number("ca/crl.pem"), 1u);
    revoke_id("ca", "dev");
    cr_expect_eq(crl_number("ca/crl.pem"), 2u);
    cr_assert_eq(pki("crl", "--ca", in_dir("ca"), NULL), 0);
    cr_expect_eq(crl_number("ca/crl.pem"), 3u);
    char *next = mwt_read_file(in_dir("ca/crlnumber"));
    cr_expect_str_eq(next, "04\n", "crlnumber holds the next number in hex, as openssl ca does");
    free(next);
}

Test(pki, issue_records_the_certificate_in_the_ca_index_in_openssl_ca_format)
{
    make_ca("ca");
    cr_assert_eq(pki("issue", "--ca", in_dir("ca"), "--role", "device", "--id", "dev", "--out",
                     in_dir("out"), "--not-before", "2024-01-01", "--not-after", "2030-06-30",
                     NULL),
                 0, "%s", stderr_text());
    char hex[65];
    serial_hex("out/dev.crt", true, hex);
    char expect[200];
    snprintf(expect, sizeof(expect), "V\t300630235959Z\t\t%s\tunknown\t/O=medwire/CN=dev\n", hex);
    char *index = mwt_read_file(in_dir("ca/index.txt"));
    cr_assert_not_null(index, "issue --ca must write ca/index.txt");
    cr_expect_str_eq(index, expect);
    free(index);
}

/* The index line of the certificate in @p rel ("V..." or "R..."), copied into @p out. */
static void index_line_of(const char *rel, char *out, size_t cap)
{
    char hex[65];
    serial_hex(rel, true, hex);
    char *index = mwt_read_file(in_dir("ca/index.txt"));
    cr_assert_not_null(index);
    out[0] = '\0';
    for (char *save = NULL, *l = strtok_r(index, "\n", &save); l; l = strtok_r(NULL, "\n", &save))
        if (strstr(l, hex))
            snprintf(out, cap, "%s", l);
    free(index);
    cr_assert_neq(out[0], '\0', "serial %s is not in index.txt", hex);
}

/* After a renewal the replaced certificate alone is revoked, by its serial as the gateway's
 * store or OpenSSL print it (any case); the name's newer certificate stays valid. */
/* @req IEC62443-CR1.8 */
Test(pki, revoke_by_serial_revokes_that_certificate_alone)
{
    make_ca("ca");
    issue("ca", "device", "dev", "old");
    issue("ca", "device", "dev", "new");
    issue("ca", "device", "bed", "out");
    char lower[65];
    serial_hex("old/dev.crt", false, lower);
    cr_assert_eq(pki("revoke", "--ca", in_dir("ca"), "--serial", lower, "--id", "bed", NULL), 1,
                 "another name's serial");
    char *err = stderr_text();
    cr_expect(strstr(err, "was issued to 'dev', not to 'bed'"), "%s", err);
    free(err);
    cr_assert_eq(pki("revoke", "--ca", in_dir("ca"), "--serial", "0123456789abcdef", NULL), 1);
    err = stderr_text();
    cr_expect(strstr(err, "no certificate with serial 0123456789abcdef"), "%s", err);
    free(err);
    cr_assert_eq(pki("revoke", "--ca", in_dir("ca"), "--serial", "12-34", NULL), 2);

    cr_assert_eq(
        pki("revoke", "--ca", in_dir("ca"), "--serial", lower, "--reason", "superseded", NULL), 0,
        "%s", stderr_text());
    char line[300];
    index_line_of("old/dev.crt", line, sizeof line);
    cr_expect_eq(line[0], 'R', "%s", line);
    cr_expect(strstr(line, ",superseded\t"), "%s", line);
    index_line_of("new/dev.crt", line, sizeof line);
    cr_expect_eq(line[0], 'V', "the renewed certificate stays valid: %s", line);
    index_line_of("out/bed.crt", line, sizeof line);
    cr_expect_eq(line[0], 'V', "%s", line);
    cr_expect_eq(count_revoked("ca/crl.pem"), 1u, "the CRL lists the one revoked");
}

Test(pki, revoke_marks_the_index_line_with_date_and_reason)
{
    make_ca("ca");
    issue("ca", "device", "a", "out");
    issue("ca", "device", "b", "out");
    cr_assert_eq(
        pki("revoke", "--ca", in_dir("ca"), "--id", "b", "--reason", "cessationOfOperation", NULL),
        0, "%s", stderr_text());
    char *index = mwt_read_file(in_dir("ca/index.txt"));
    cr_assert_not_null(index);
    char *line_b = strstr(index, "\n") + 1;
    cr_expect_eq(index[0], 'V', "a stays valid: %s", index);
    cr_expect_eq(line_b[0], 'R', "b is revoked: %s", index);
    /* R, expiry, YYMMDDHHMMSSZ,reason */
    char *rev = strchr(strchr(line_b, '\t') + 1, '\t') + 1;
    cr_expect(strncmp(rev + 13, ",cessationOfOperation\t", 22) == 0, "%s", line_b);
    free(index);

    DerBuffer *der = crl_der("ca/crl.pem");
    der_el tbs = crl_tbs(der);
    der_el revoked = der_child(&tbs, 5), entry = der_child(&revoked, 0);
    cr_assert_eq(der_count(&entry), 3u, "the entry carries crlEntryExtensions");
    der_el exts = der_child(&entry, 2), value;
    bool critical = true;
    cr_assert(find_extension(&exts, 0x15, &value, &critical), "no reasonCode");
    cr_expect(!critical);
    cr_expect(value.len == 3 && value.c[0] == 0x0a && value.c[1] == 1 && value.c[2] == 5,
              "ENUMERATED cessationOfOperation (5)");
    wc_FreeDer(&der);
}

Test(pki, revoking_twice_changes_nothing_but_the_crl_and_says_so)
{
    make_ca("ca");
    issue("ca", "device", "dev", "out");
    revoke_id("ca", "dev");
    char *index_before = mwt_read_file(in_dir("ca/index.txt"));
    cr_assert_eq(pki("revoke", "--ca", in_dir("ca"), "--id", "dev", NULL), 0, "%s", stderr_text());
    char *err = stderr_text();
    cr_expect(strstr(err, "note: dev") != NULL && strstr(err, "already revoked") != NULL, "%s",
              err);
    free(err);
    char *index_after = mwt_read_file(in_dir("ca/index.txt"));
    cr_expect_str_eq(index_after, index_before, "the first revocation date is kept");
    cr_expect_eq(count_revoked("ca/crl.pem"), 1u);
    cr_expect_eq(crl_number("ca/crl.pem"), 2u);
    free(index_before);
    free(index_after);
}

Test(pki, revoke_revokes_every_certificate_reissued_to_the_name)
{
    make_ca("ca");
    issue("ca", "device", "dev", "out");
    cr_assert_eq(pki("issue", "--ca", in_dir("ca"), "--role", "device", "--id", "dev", "--out",
                     in_dir("out"), "--force", NULL),
                 0);
    issue("ca", "device", "other", "out");
    revoke_id("ca", "dev");
    cr_expect_eq(count_revoked("ca/crl.pem"), 2u, "both certificates of dev are revoked");
    cr_expect_eq(verify("ca/ca.crt", "out/other.crt"), WOLFSSL_SUCCESS);
}

Test(pki, revoke_of_an_unknown_name_fails_and_lists_the_names_there_are)
{
    make_ca("ca");
    issue("ca", "device", "pump-1", "out");
    issue("ca", "gateway", "gw.icu", "out");
    cr_expect_eq(pki("revoke", "--ca", in_dir("ca"), "--id", "pump-2", NULL), 1);
    char *err = stderr_text();
    cr_expect(strstr(err, "no certificate issued to 'pump-2'") != NULL, "%s", err);
    cr_expect(strstr(err, "pump-1 gw.icu") != NULL, "%s", err);
    free(err);
    cr_expect_neq(access(in_dir("ca/crl.pem"), F_OK), 0, "no CRL is written for a failure");
}

Test(pki, revoke_with_nothing_recorded_says_how_certificates_get_recorded)
{
    make_ca("ca");
    cr_expect_eq(pki("revoke", "--ca", in_dir("ca"), "--id", "dev", NULL), 1);
    char *err = stderr_text();
    cr_expect(strstr(err, "records no certificate yet") != NULL &&
                  strstr(err, "'issue --ca") != NULL,
              "%s", err);
    free(err);
}

Test(pki, revoke_without_a_ca_says_how_to_make_one)
{
    cr_expect_eq(pki("revoke", "--ca", in_dir("nowhere"), "--id", "dev", NULL), 1);
    char *err = stderr_text();
    cr_expect(strstr(err, "medwire-pki ca --out") != NULL, "%s", err);
    free(err);
}

Test(pki, malformed_index_line_stops_revoke_and_names_the_line)
{
    make_ca("ca");
    issue("ca", "device", "a", "out");
    issue("ca", "device", "b", "out");
    FILE *f = fopen(in_dir("ca/index.txt"), "a");
    cr_assert_not_null(f);
    fputs("R\tgarbage\n", f);
    fclose(f);
    cr_expect_eq(pki("revoke", "--ca", in_dir("ca"), "--id", "a", NULL), 1);
    char *err = stderr_text();
    cr_expect(strstr(err, "index.txt line 3") != NULL, "%s", err);
    free(err);
    cr_expect_eq(pki("crl", "--ca", in_dir("ca"), NULL), 1, "a CRL missing a line is not written");
}

Test(pki, concurrent_issues_all_land_in_the_index)
{
    make_ca("ca");
    enum { N = 8 };
    mwt_proc procs[N];
    char ids[N][16];
    for (int i = 0; i < N; i++) {
        snprintf(ids[i], sizeof(ids[i]), "dev-%d", i);
        const char *argv[] = {mwt_bin("medwire-pki"),
                              "issue",
                              "--ca",
                              in_dir("ca"),
                              "--role",
                              "device",
                              "--id",
                              ids[i],
                              "--out",
                              in_dir("out"),
                              NULL};
        cr_assert(mwt_proc_start(&procs[i], argv, NULL, NULL));
    }
    for (int i = 0; i < N; i++)
        cr_expect_eq(mwt_proc_wait(&procs[i], RUN_TIMEOUT_MS), 0, "issue %d", i);
    const char *needle[] = {"\tunknown\t/O=medwire/CN=dev-", NULL};
    cr_expect_eq(mwt_count_lines(in_dir("ca/index.txt"), needle), (size_t)N,
                 "the lock must keep every line");
}

Test(pki, openssl_verifies_the_crl_signature_against_the_ca)
{
    if (access(openssl_bin, X_OK) != 0)
        cr_skip_test("no %s", openssl_bin);
    make_ca("ca");
    issue("ca", "device", "dev", "out");
    revoke_id("ca", "dev");
    const char *argv[] = {openssl_bin, "crl",   "-in",     in_dir("ca/crl.pem"),
                          "-noout",    "-text", "-CAfile", in_dir("ca/ca.crt"),
                          NULL};
    cr_expect_eq(mwt_run(argv, out_path, err_path, RUN_TIMEOUT_MS), 0, "%s", stderr_text());
    char *out = mwt_read_file(out_path), *err = stderr_text();
    cr_assert_not_null(out);
    /* OpenSSL 3 prints the verdict on stderr. */
    cr_expect(strstr(err, "verify OK") != NULL || strstr(out, "verify OK") != NULL, "%s%s", out,
              err);
    cr_expect(strstr(out, "Version 2") != NULL && strstr(out, "ecdsa-with-SHA256") != NULL &&
                  strstr(out, "Issuer: O = medwire, CN = medwire CA") != NULL &&
                  strstr(out, "X509v3 Authority Key Identifier") != NULL &&
                  strstr(out, "X509v3 CRL Number") != NULL,
              "%s", out);
    free(out);
    free(err);

    /* And refuses it against another CA. */
    make_ca("other");
    const char *wrong[] = {openssl_bin,
                           "crl",
                           "-in",
                           in_dir("ca/crl.pem"),
                           "-noout",
                           "-CAfile",
                           in_dir("other/ca.crt"),
                           NULL};
    mwt_run(wrong, out_path, err_path, RUN_TIMEOUT_MS);
    err = stderr_text();
    cr_expect(strstr(err, "verify OK") == NULL, "%s", err);
    free(err);
}

Test(pki, openssl_verify_with_the_crl_refuses_the_revoked_certificate_and_accepts_another)
{
    if (access(openssl_bin, X_OK) != 0)
        cr_skip_test("no %s", openssl_bin);
    make_ca("ca");
    issue("ca", "device", "dev-1", "out");
    issue("ca", "device", "dev-2", "out");
    revoke_id("ca", "dev-1");
    const char *revoked[] = {openssl_bin,
                             "verify",
                             "-crl_check",
                             "-CAfile",
                             in_dir("ca/ca.crt"),
                             "-CRLfile",
                             in_dir("ca/crl.pem"),
                             in_dir("out/dev-1.crt"),
                             NULL};
    cr_expect_neq(mwt_run(revoked, out_path, err_path, RUN_TIMEOUT_MS), 0);
    char *out = mwt_read_file(out_path), *err = stderr_text();
    cr_expect(strstr(err, "certificate revoked") != NULL || strstr(out, "certificate revoked"),
              "%s%s", out, err);
    free(out);
    free(err);
    const char *valid[] = {openssl_bin,
                           "verify",
                           "-crl_check",
                           "-CAfile",
                           in_dir("ca/ca.crt"),
                           "-CRLfile",
                           in_dir("ca/crl.pem"),
                           in_dir("out/dev-2.crt"),
                           NULL};
    cr_expect_eq(mwt_run(valid, out_path, err_path, RUN_TIMEOUT_MS), 0, "%s", stderr_text());
    out = mwt_read_file(out_path);
    cr_expect(out != NULL && strstr(out, "dev-2.crt: OK") != NULL, "%s", out ? out : "");
    free(out);
}

Test(pki, openssl_sees_a_backdated_crl_as_expired)
{
    if (access(openssl_bin, X_OK) != 0)
        cr_skip_test("no %s", openssl_bin);
    make_ca("ca");
    issue("ca", "device", "dev", "out");
    cr_assert_eq(pki("crl", "--ca", in_dir("ca"), "--this-update", "2020-01-01", NULL), 0);
    const char *argv[] = {openssl_bin,
                          "verify",
                          "-crl_check",
                          "-CAfile",
                          in_dir("ca/ca.crt"),
                          "-CRLfile",
                          in_dir("ca/crl.pem"),
                          in_dir("out/dev.crt"),
                          NULL};
    cr_expect_neq(mwt_run(argv, out_path, err_path, RUN_TIMEOUT_MS), 0);
    char *out = mwt_read_file(out_path), *err = stderr_text();
    cr_expect(strstr(err, "CRL has expired") != NULL || strstr(out, "CRL has expired") != NULL,
              "%s%s", out, err);
    free(out);
    free(err);
}

Test(pki, openssl_ca_continues_from_our_index_and_crl_number)
{
    if (access(openssl_bin, X_OK) != 0)
        cr_skip_test("no %s", openssl_bin);
    make_ca("ca");
    issue("ca", "device", "dev", "out");
    revoke_id("ca", "dev");
    FILE *f = fopen(in_dir("openssl.cnf"), "w");
    cr_assert_not_null(f);
    fprintf(f,
            "[ca]\ndefault_ca = c\n[c]\ndatabase = %s\ncrlnumber = %s\ncertificate = %s\n"
            "private_key = %s\ndefault_md = sha256\ndefault_crl_days = 7\n",
            in_dir("ca/index.txt"), in_dir("ca/crlnumber"), in_dir("ca/ca.crt"),
            in_dir("ca/ca.key"));
    fclose(f);
    const char *argv[] = {openssl_bin,
                          "ca",
                          "-config",
                          in_dir("openssl.cnf"),
                          "-gencrl",
                          "-out",
                          in_dir("openssl-crl.pem"),
                          NULL};
    cr_assert_eq(mwt_run(argv, out_path, err_path, RUN_TIMEOUT_MS), 0, "%s", stderr_text());
    cr_expect_eq(crl_number("openssl-crl.pem"), 2u, "OpenSSL takes the next number from crlnumber");
    cr_expect_eq(count_revoked("openssl-crl.pem"), 1u, "OpenSSL reads our revocation");
}

Test(pki, crl_with_thousands_of_revocations_stays_valid_der)
{
    make_ca("ca");
    issue("ca", "device", "dev-1", "out");
    issue("ca", "device", "dev-2", "out");
    revoke_id("ca", "dev-1");
    /* 2,000 more revoked lines push the DER past 64 KiB, into three-octet lengths. */
    FILE *f = fopen(in_dir("ca/index.txt"), "a");
    cr_assert_not_null(f);
    for (int i = 0; i < 2000; i++)
        fprintf(
            f,
            "R\t301231235959Z\t250101000000Z,superseded\t7F%030X\tunknown\t/O=medwire/CN=bulk-%d\n",
            i, i);
    fclose(f);
    cr_assert_eq(pki("crl", "--ca", in_dir("ca"), NULL), 0, "%s", stderr_text());
    cr_expect_eq(count_revoked("ca/crl.pem"), 2001u);
    WOLFSSL_CERT_MANAGER *cm = wolfSSL_CertManagerNew();
    cr_assert_not_null(cm);
    cr_assert_eq(wolfSSL_CertManagerLoadCA(cm, in_dir("ca/ca.crt"), NULL), WOLFSSL_SUCCESS);
    cr_assert_eq(wolfSSL_CertManagerEnableCRL(cm, WOLFSSL_CRL_CHECKALL), WOLFSSL_SUCCESS);
    cr_expect_eq(wolfSSL_CertManagerLoadCRLFile(cm, in_dir("ca/crl.pem"), WOLFSSL_FILETYPE_PEM),
                 WOLFSSL_SUCCESS);
    cr_expect_eq(wolfSSL_CertManagerVerify(cm, in_dir("out/dev-1.crt"), WOLFSSL_FILETYPE_PEM),
                 CRL_CERT_REVOKED);
    cr_expect_eq(wolfSSL_CertManagerVerify(cm, in_dir("out/dev-2.crt"), WOLFSSL_FILETYPE_PEM),
                 WOLFSSL_SUCCESS);
    wolfSSL_CertManagerFree(cm);
}

/* --- certificate requests ------------------------------------------------------------------ */

/* The SubjectPublicKeyInfo of a certificate file, as DER, into @p out. */
static int spki_of(const char *rel, unsigned char *out, int cap)
{
    WOLFSSL_X509 *x = load_cert(rel);
    int len = cap;
    cr_assert_eq(wolfSSL_X509_get_pubkey_buffer(x, out, &len), WOLFSSL_SUCCESS);
    wolfSSL_X509_free(x);
    return len;
}

/* @req IEC62443-CR1.8 */
Test(pki, a_request_made_with_a_key_file_gets_a_certificate_for_that_key_and_no_key)
{
    make_ca("ca");
    issue("ca", "device", "k1", "keys");
    cr_assert_eq(pki("csr", "--key", in_dir("keys/k1.key"), "--id", "pump-7", "--out",
                     in_dir("pump-7.csr"), NULL),
                 0, "%s", stderr_text());
    cr_assert_eq(pki("issue", "--ca", in_dir("ca"), "--role", "device", "--csr",
                     in_dir("pump-7.csr"), "--out", in_dir("out"), NULL),
                 0, "%s", stderr_text());
    cr_assert_eq(verify("ca/ca.crt", "out/pump-7.crt"), WOLFSSL_SUCCESS);
    cr_assert_eq(access(in_dir("out/pump-7.key"), F_OK), -1, "no key is made for a request");
    unsigned char a[128], b[128];
    int la = spki_of("keys/k1.crt", a, sizeof a), lb = spki_of("out/pump-7.crt", b, sizeof b);
    cr_assert_eq(la, lb);
    cr_assert_arr_eq(a, b, (size_t)la, "the certificate is for the request's key");
    WOLFSSL_X509 *x = load_cert("out/pump-7.crt");
    char cn[80];
    name_text(wolfSSL_X509_get_subject_name(x), NID_commonName, cn, sizeof cn);
    cr_assert_str_eq(cn, "pump-7");
    cr_assert(wolfSSL_X509_get_extended_key_usage(x) & XKU_SSL_CLIENT);
    wolfSSL_X509_free(x);
    /* --id, when given, must be the name asked for; and a request is answered by a CA. */
    cr_assert_eq(pki("issue", "--ca", in_dir("ca"), "--role", "device", "--csr",
                     in_dir("pump-7.csr"), "--id", "pump-8", "--out", in_dir("out2"), NULL),
                 1);
    char *err = stderr_text();
    cr_assert(strstr(err, "asks for 'pump-7', not for --id 'pump-8'") != NULL, "%s", err);
    free(err);
    cr_assert_eq(pki("issue", "--self-signed", "--role", "device", "--csr", in_dir("pump-7.csr"),
                     "--out", in_dir("out2"), NULL),
                 2);
}

/* Runs openssl with the NULL-terminated arguments; its exit code. */
static int openssl(const char *arg, ...)
{
    const char *argv[32] = {"/usr/bin/openssl"};
    size_t n = 1;
    va_list ap;
    va_start(ap, arg);
    for (const char *a = arg; a != NULL; a = va_arg(ap, const char *))
        argv[n++] = a;
    va_end(ap);
    argv[n] = NULL;
    return mwt_run(argv, NULL, NULL, RUN_TIMEOUT_MS);
}

/* Issuing for the request @p rel fails with exit 1 and a message holding @p words. */
static void request_refused(const char *rel, const char *words)
{
    cr_assert_eq(pki("issue", "--ca", in_dir("ca"), "--role", "device", "--csr", in_dir(rel),
                     "--out", in_dir("out"), NULL),
                 1, "issued for %s", rel);
    char *err = stderr_text();
    cr_assert(strstr(err, words) != NULL, "for %s: %s", rel, err);
    free(err);
}

/* @req IEC62443-CR1.8 */
Test(pki, requests_with_another_curve_a_bad_name_or_an_altered_body_are_refused)
{
    if (access("/usr/bin/openssl", X_OK) != 0)
        cr_skip_test("no openssl");
    make_ca("ca");
    cr_assert_eq(openssl("ecparam", "-name", "secp384r1", "-genkey", "-noout", "-out",
                         in_dir("p384.key"), NULL),
                 0);
    cr_assert_eq(openssl("req", "-new", "-key", in_dir("p384.key"), "-subj", "/CN=dev", "-out",
                         in_dir("p384.csr"), NULL),
                 0);
    request_refused("p384.csr", "does not carry an ECDSA P-256 key");
    cr_assert_eq(openssl("ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out",
                         in_dir("p256.key"), NULL),
                 0);
    cr_assert_eq(openssl("req", "-new", "-key", in_dir("p256.key"), "-subj", "/CN=-dev", "-out",
                         in_dir("dash.csr"), NULL),
                 0);
    request_refused("dash.csr", "asks for the name '-dev', which is no identity");
    cr_assert_eq(openssl("req", "-new", "-key", in_dir("p256.key"), "-subj", "/CN=a/CN=b", "-out",
                         in_dir("two.csr"), NULL),
                 0);
    request_refused("two.csr", "exactly one common name");
    /* A request whose name was changed after signing: its signature no longer verifies. */
    cr_assert_eq(openssl("req", "-new", "-key", in_dir("p256.key"), "-subj", "/CN=deva", "-outform",
                         "DER", "-out", in_dir("good.der"), NULL),
                 0);
    FILE *f = fopen(in_dir("good.der"), "r+b");
    cr_assert_not_null(f);
    unsigned char der[1024];
    size_t n = fread(der, 1, sizeof der, f);
    size_t at = 0;
    while (at + 4 <= n && memcmp(der + at, "deva", 4) != 0)
        at++;
    cr_assert_leq(at + 4, n, "the name is in the request");
    der[at + 3] = 'b';
    rewind(f);
    cr_assert_eq(fwrite(der, 1, n, f), n);
    fclose(f);
    cr_assert_eq(openssl("req", "-inform", "DER", "-in", in_dir("good.der"), "-out",
                         in_dir("altered.csr"), NULL),
                 0);
    request_refused("altered.csr", "is not signed ecdsa-with-SHA256 by its own key");
    request_refused("missing.csr", "cannot read the request");
    cr_assert_eq(access(in_dir("out"), F_OK), -1, "nothing is written for a refused request");
}
