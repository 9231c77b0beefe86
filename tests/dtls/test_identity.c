/* SPDX-License-Identifier: Apache-2.0 */
/* test_identity.c -- a peer is who its certificate says exactly: the gateway's name byte for byte
 * in its one CN and every DNS name, the device's one CN, the role, on full and resumed handshakes,
 * and no chain longer than CA to leaf. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <wolfssl/options.h>
#include <wolfssl/ssl.h>
#include <wolfssl/error-ssl.h>

#include "dtls/dtls.h"
#include "port/posix/read_file.h"
#include "dtls_pair.h"
#include "support/proc.h"

#define RUN_MS 30000

/* Extensions for the certificates medwire-pki will not make: the same profile, other names. */
static const char OPENSSL_CNF[] =
    "[req]\ndistinguished_name = dn\n[dn]\n"
    "[gw]\nbasicConstraints = CA:FALSE\nkeyUsage = critical, digitalSignature\n"
    "extendedKeyUsage = serverAuth\n"
    "[gw_star]\nbasicConstraints = CA:FALSE\nkeyUsage = critical, digitalSignature\n"
    "extendedKeyUsage = serverAuth\nsubjectAltName = DNS:*\n"
    "[gw_gstar]\nbasicConstraints = CA:FALSE\nkeyUsage = critical, digitalSignature\n"
    "extendedKeyUsage = serverAuth\nsubjectAltName = DNS:g*\n"
    "[gw_upper]\nbasicConstraints = CA:FALSE\nkeyUsage = critical, digitalSignature\n"
    "extendedKeyUsage = serverAuth\nsubjectAltName = DNS:GW1\n"
    "[gw_exact]\nbasicConstraints = CA:FALSE\nkeyUsage = critical, digitalSignature\n"
    "extendedKeyUsage = serverAuth\nsubjectAltName = DNS:gw1\n"
    "[dev]\nbasicConstraints = CA:FALSE\nkeyUsage = critical, digitalSignature\n"
    "extendedKeyUsage = clientAuth\n"
    "[ca_loose]\nbasicConstraints = critical, CA:TRUE\nkeyUsage = critical, keyCertSign, "
    "cRLSign\n";

/* NAME.key and NAME.crt with @p subj and the extensions of @p section, issued by the CA whose
 * files are @p ca_crt and @p ca_key (NULL: self-signed). */
static void openssl_cert(const char *name, const char *subj, const char *section,
                         const char *ca_crt, const char *ca_key)
{
    static unsigned serial = 4096;
    char key[300], crt[300], csr[300], sn[16];
    snprintf(key, sizeof key, "%s.key", name);
    snprintf(crt, sizeof crt, "%s.crt", name);
    snprintf(csr, sizeof csr, "%s.csr", name);
    snprintf(key, sizeof key, "%s", mwt_pair_file(key));
    snprintf(crt, sizeof crt, "%s", mwt_pair_file(crt));
    snprintf(csr, sizeof csr, "%s", mwt_pair_file(csr));
    snprintf(sn, sizeof sn, "%u", serial++);
    const char *cnf = mwt_pair_file("openssl.cnf");
    mwt_pair_cmd("/usr/bin/openssl", "ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out",
                 key, NULL);
    if (ca_crt == NULL) {
        mwt_pair_cmd("/usr/bin/openssl", "req", "-x509", "-new", "-key", key, "-subj", subj,
                     "-config", cnf, "-extensions", section, "-days", "30", "-set_serial", sn,
                     "-out", crt, NULL);
        return;
    }
    mwt_pair_cmd("/usr/bin/openssl", "req", "-new", "-key", key, "-subj", subj, "-config", cnf,
                 "-out", csr, NULL);
    mwt_pair_cmd("/usr/bin/openssl", "x509", "-req", "-in", csr, "-CA", ca_crt, "-CAkey", ca_key,
                 "-set_serial", sn, "-days", "30", "-extfile", cnf, "-extensions", section, "-out",
                 crt, NULL);
}

/* Issued by the test CA (made by medwire-pki). */
static void gateway_cert(const char *name, const char *subj, const char *section)
{
    openssl_cert(name, subj, section, mwt_pair_file("ca/ca.crt"), mwt_pair_file("ca/ca.key"));
}

static void setup(void)
{
    if (access("/usr/bin/openssl", X_OK) != 0)
        cr_skip_test("no /usr/bin/openssl (Debian package openssl)");
    mwt_pair_pki("gw1");
    FILE *f = fopen(mwt_pair_file("openssl.cnf"), "w");
    cr_assert_not_null(f);
    cr_assert(fputs(OPENSSL_CNF, f) >= 0 && fclose(f) == 0);
    cr_assert_eq(wolfSSL_Init(), WOLFSSL_SUCCESS);
}

static void teardown(void)
{
    wolfSSL_Cleanup();
}

TestSuite(identity, .init = setup, .fini = teardown);

/* A device context presenting @p name.crt, expecting the gateway @p expect, trusting the CAs of
 * @p ca_buf if it has any, else of @p ca_file (NULL: the test CA). */
static mwi_dtls_ctx *device_ctx_of(const char *name, const char *expect, const char *ca_file,
                                   mw_blob_t ca_buf)
{
    char crt[64], key[64];
    snprintf(crt, sizeof crt, "%s.crt", name);
    snprintf(key, sizeof key, "%s.key", name);
    mwi_dtls_config cfg = {
        .read_file = mwi_file_read,
        .role = MWI_DTLS_CLIENT,
        .ca_file = ca_buf.len > 0 ? NULL
                   : ca_file      ? ca_file
                                  : mwt_pair_file("ca/ca.crt"),
        .ca_buf = ca_buf,
        .cert_file = mwt_pair_file(crt),
        .key_file = mwt_pair_file(key),
        .peer_name = expect,
    };
    mwi_dtls_ctx *ctx = NULL;
    mw_error_detail_t d;
    cr_assert_eq(mwi_dtls_ctx_create(&cfg, &ctx, &d), MW_OK, "device: %s", d.reason);
    return ctx;
}

/* dev-1's context expecting the gateway @p expect, trusting @p ca_file (NULL: the test CA). */
static mwi_dtls_ctx *device_ctx(const char *expect, const char *ca_file)
{
    return device_ctx_of("dev-1", expect, ca_file, (mw_blob_t){NULL, 0});
}

/* A gateway context presenting NAME.crt; @p skip_role lets it present a device certificate. */
static mwi_dtls_ctx *gateway_ctx(const char *name, bool skip_role)
{
    char crt[300], key[300];
    snprintf(crt, sizeof crt, "%s", mwt_pair_file(name));
    strcat(crt, ".crt");
    snprintf(key, sizeof key, "%s", mwt_pair_file(name));
    strcat(key, ".key");
    mwi_dtls_config cfg = {
        .read_file = mwi_file_read,
        .role = MWI_DTLS_SERVER,
        .ca_file = mwt_pair_file("ca/ca.crt"),
        .cert_file = crt,
        .key_file = key,
        .test_skip_role = skip_role,
    };
    mwi_dtls_ctx *ctx = NULL;
    mw_error_detail_t d;
    cr_assert_eq(mwi_dtls_server_ctx_create(&cfg, &ctx, &d), MW_OK, "gateway %s: %s", name,
                 d.reason);
    return ctx;
}

/* wolfSSL refuses a server certificate without serverAuth by itself: this device accepts it. */
static int accept_any_role(int preverify, WOLFSSL_X509_STORE_CTX *store)
{
    return preverify || store->error == EXTKEYUSE_AUTH_E;
}

/* A bare wolfSSL device that trusts the test CA and checks no name nor role: it makes the
 * sessions a medwire device would never have accepted, to offer them for resumption. */
static WOLFSSL_CTX *bare_device_ctx(void)
{
    WOLFSSL_CTX *ctx = wolfSSL_CTX_new(wolfDTLSv1_2_client_method());
    cr_assert_not_null(ctx);
    cr_assert_eq(wolfSSL_CTX_set_cipher_list(ctx, MWI_DTLS_CIPHERS), WOLFSSL_SUCCESS);
    cr_assert_eq(wolfSSL_CTX_UseSupportedCurve(ctx, WOLFSSL_ECC_SECP256R1), WOLFSSL_SUCCESS);
    (void)wolfSSL_CTX_NoTicketTLSv12(ctx);
    wolfSSL_CTX_set_verify(ctx, WOLFSSL_VERIFY_PEER, accept_any_role);
    cr_assert_eq(wolfSSL_CTX_load_verify_locations(ctx, mwt_pair_file("ca/ca.crt"), NULL),
                 WOLFSSL_SUCCESS);
    cr_assert_eq(
        wolfSSL_CTX_use_certificate_file(ctx, mwt_pair_file("dev-1.crt"), WOLFSSL_FILETYPE_PEM),
        WOLFSSL_SUCCESS);
    cr_assert_eq(
        wolfSSL_CTX_use_PrivateKey_file(ctx, mwt_pair_file("dev-1.key"), WOLFSSL_FILETYPE_PEM),
        WOLFSSL_SUCCESS);
    return ctx;
}

/* A session with @p gw made by the bare device (wolfSSL's own checks only). */
static mwi_dtls_session *loose_session(mwi_dtls_ctx *gw)
{
    WOLFSSL_CTX *bctx = bare_device_ctx();
    WOLFSSL *ssl = wolfSSL_new(bctx);
    cr_assert_not_null(ssl);
    mwt_pair p;
    mwt_pair_init(&p, NULL, ssl, gw, NULL, NULL);
    mwt_pair_run(&p);
    cr_assert_eq(p.client.result, MW_OK, "the bare device connects (wolfSSL %d)",
                 p.client.err.foreign);
    cr_assert_eq(p.server.result, MW_OK, "the gateway accepts dev-1: %s", p.server.err.reason);
    /* The layer's session handle is wolfSSL's session (mwi_dtls_conn_save_session). */
    mwi_dtls_session *s = (mwi_dtls_session *)wolfSSL_get1_session(ssl);
    cr_assert_not_null(s);
    mwt_pair_fini(&p);
    wolfSSL_free(ssl);
    wolfSSL_CTX_free(bctx);
    return s;
}

/* The device (expecting "gw1") against @p gw; with @p session, offered for resumption. */
static mwt_side connect_device(mwi_dtls_ctx *gw, mwi_dtls_session *session)
{
    mwi_dtls_ctx *dev = device_ctx("gw1", NULL);
    mwt_pair p;
    mwt_pair_init(&p, dev, NULL, gw, NULL, session);
    mwt_pair_run(&p);
    mwt_side r = p.client;
    if (r.result == MW_OK)
        snprintf(r.err.reason, sizeof r.err.reason, "%s", mwi_dtls_conn_peer_id(p.client.conn));
    r.conn = NULL;
    mwt_pair_fini(&p);
    mwi_dtls_ctx_destroy(&dev);
    return r;
}

/* The gateway certificate NAME is refused by a device expecting "gw1" with MW_ECERT_NAME and a
 * detail naming "gw1" and @p found, on a full handshake and when a session with it is resumed. */
static void refused_for_its_name(const char *name, const char *found)
{
    mwi_dtls_ctx *gw = gateway_ctx(name, false);
    mwt_side full = connect_device(gw, NULL);
    cr_assert_eq(full.result, MW_ECERT_NAME, "%s: full handshake: %s (%s)", name,
                 mw_strerror(full.result), full.err.reason);
    cr_assert(strstr(full.err.reason, "'gw1'") && strstr(full.err.reason, found),
              "%s: the detail names both: %s", name, full.err.reason);

    mwi_dtls_session *s = loose_session(gw);
    mwt_side resumed = connect_device(gw, s);
    cr_assert_eq(resumed.result, MW_ECERT_NAME, "%s: resumed: %s (%s)", name,
                 mw_strerror(resumed.result), resumed.err.reason);
    cr_assert(strstr(resumed.err.reason, "resumption") && strstr(resumed.err.reason, found),
              "%s: %s", name, resumed.err.reason);
    mwi_dtls_session_free(&s);
    mwi_dtls_ctx_destroy(&gw);
}

/* @req MDR-17.4 IEC62443-CR1.2 MDS2-NAUT */
Test(identity, a_gateway_certificate_with_exactly_the_expected_name_is_accepted_and_reported)
{
    gateway_cert("plain", "/O=medwire/CN=gw1", "gw");
    static const char *const names[] = {"gw1", "plain"}; /* medwire-pki's (SAN gw1), no SAN */
    for (size_t i = 0; i < 2; i++) {
        mwi_dtls_ctx *gw = gateway_ctx(names[i], false);
        mwt_side r = connect_device(gw, NULL);
        cr_assert_eq(r.result, MW_OK, "%s: %s", names[i], r.err.reason);
        cr_assert_str_eq(r.err.reason, "gw1", "the identity reported is the checked name");
        mwi_dtls_ctx_destroy(&gw);
    }
}

/* @req MDR-17.4 IEC62443-CR1.2 MDS2-NAUT */
Test(identity, a_gateway_certificate_with_a_wildcard_dns_name_is_refused)
{
    gateway_cert("star", "/O=medwire/CN=gw1", "gw_star");
    refused_for_its_name("star", "'*'");
}

/* @req MDR-17.4 IEC62443-CR1.2 MDS2-NAUT */
Test(identity, a_wildcard_certificate_of_another_name_is_refused)
{
    gateway_cert("evil-star", "/O=medwire/CN=evil", "gw_star");
    refused_for_its_name("evil-star", "'evil'");
}

/* @req MDR-17.4 IEC62443-CR1.2 MDS2-NAUT */
Test(identity, a_gateway_certificate_with_a_partial_wildcard_dns_name_is_refused)
{
    gateway_cert("gstar", "/O=medwire/CN=gw1", "gw_gstar");
    refused_for_its_name("gstar", "'g*'");
}

/* @req MDR-17.4 IEC62443-CR1.2 MDS2-NAUT */
Test(identity, a_gateway_certificate_whose_dns_name_differs_in_case_is_refused)
{
    gateway_cert("upper-san", "/O=medwire/CN=gw1", "gw_upper");
    refused_for_its_name("upper-san", "'GW1'");
}

/* @req MDR-17.4 IEC62443-CR1.2 MDS2-NAUT */
Test(identity, a_gateway_certificate_whose_common_name_differs_in_case_is_refused)
{
    gateway_cert("upper-cn", "/O=medwire/CN=GW1", "gw");
    refused_for_its_name("upper-cn", "'GW1'");
}

/* @req MDR-17.4 IEC62443-CR1.2 MDS2-NAUT */
Test(identity, a_gateway_certificate_with_a_second_common_name_is_refused)
{
    gateway_cert("two-cns", "/O=medwire/CN=evil/CN=gw1", "gw");
    refused_for_its_name("two-cns", "'evil'");
}

/* @req IEC62443-CR2.1 IEC62443-CR5.1 MDS2-AUTH */
Test(identity, a_gateway_presenting_a_device_certificate_is_refused_on_full_and_resumed_handshakes)
{
    openssl_cert("gw1-as-device", "/O=medwire/CN=gw1", "dev", mwt_pair_file("ca/ca.crt"),
                 mwt_pair_file("ca/ca.key"));
    mwi_dtls_ctx *gw = gateway_ctx("gw1-as-device", true);
    mwt_side full = connect_device(gw, NULL);
    cr_assert_eq(full.result, MW_ECERT_ROLE, "%s", full.err.reason);
    mwi_dtls_session *s = loose_session(gw);
    mwt_side resumed = connect_device(gw, s);
    cr_assert_eq(resumed.result, MW_ECERT_ROLE, "%s", resumed.err.reason);
    cr_assert(strstr(resumed.err.reason, "resumption"), "%s", resumed.err.reason);
    mwi_dtls_session_free(&s);
    mwi_dtls_ctx_destroy(&gw);
}

/* @req MDR-17.4 IEC62443-CR1.2 MDS2-IGAU */
Test(identity, a_device_certificate_with_a_second_common_name_is_refused_by_the_gateway)
{
    openssl_cert("dev-two", "/O=medwire/CN=dev-1/CN=dev-2", "dev", mwt_pair_file("ca/ca.crt"),
                 mwt_pair_file("ca/ca.key"));
    mwi_dtls_ctx *dev = device_ctx_of("dev-two", "gw1", NULL, (mw_blob_t){NULL, 0});
    mwi_dtls_ctx *gw = gateway_ctx("gw1", false);
    mwt_pair p;
    mwt_pair_init(&p, dev, NULL, gw, NULL, NULL);
    mwt_pair_run(&p);
    cr_assert_eq(p.server.result, MW_ECERT_IDENTITY, "%s", p.server.err.reason);
    cr_assert(strstr(p.server.err.reason, "'dev-1'") && strstr(p.server.err.reason, "'dev-2'"),
              "%s", p.server.err.reason);
    cr_assert_neq(p.client.result, MW_OK);
    mwt_pair_fini(&p);
    mwi_dtls_ctx_destroy(&gw);
    mwi_dtls_ctx_destroy(&dev);
}

/* A CA that did not limit its path length (not one of medwire-pki's) issued an intermediate CA,
 * and that one a certificate for "gw1": the protocol's chain is CA to leaf, so the device refuses
 * the longer one whatever the CA allowed. */
/* @req MDR-17.4 IEC62443-CR1.2 */
Test(identity, a_gateway_chain_through_an_intermediate_ca_is_refused)
{
    openssl_cert("loose-root", "/O=loose/CN=loose root", "ca_loose", NULL, NULL);
    openssl_cert("loose-sub", "/O=loose/CN=loose intermediate", "ca_loose",
                 mwt_pair_file("loose-root.crt"), mwt_pair_file("loose-root.key"));
    openssl_cert("deep-gw1", "/O=medwire/CN=gw1", "gw_exact", mwt_pair_file("loose-sub.crt"),
                 mwt_pair_file("loose-sub.key"));
    char *leaf = mwt_read_file(mwt_pair_file("deep-gw1.crt"));
    char *sub = mwt_read_file(mwt_pair_file("loose-sub.crt"));
    cr_assert(leaf && sub);
    FILE *f = fopen(mwt_pair_file("deep-chain.pem"), "w");
    cr_assert_not_null(f);
    cr_assert(fputs(leaf, f) >= 0 && fputs(sub, f) >= 0 && fclose(f) == 0);
    free(leaf);
    free(sub);

    /* The gateway is bare wolfSSL: the layer presents its certificate alone, never a chain. */
    WOLFSSL_CTX *sctx = wolfSSL_CTX_new(wolfDTLSv1_2_server_method());
    cr_assert_not_null(sctx);
    cr_assert_eq(wolfSSL_CTX_set_cipher_list(sctx, MWI_DTLS_CIPHERS), WOLFSSL_SUCCESS);
    wolfSSL_CTX_set_verify(sctx, WOLFSSL_VERIFY_NONE, NULL);
    cr_assert_eq(wolfSSL_CTX_use_certificate_chain_file(sctx, mwt_pair_file("deep-chain.pem")),
                 WOLFSSL_SUCCESS);
    cr_assert_eq(
        wolfSSL_CTX_use_PrivateKey_file(sctx, mwt_pair_file("deep-gw1.key"), WOLFSSL_FILETYPE_PEM),
        WOLFSSL_SUCCESS);
    WOLFSSL *ssl = wolfSSL_new(sctx);
    cr_assert_not_null(ssl);
    mwi_dtls_ctx *dev = device_ctx("gw1", mwt_pair_file("loose-root.crt"));
    mwt_pair p;
    mwt_pair_init(&p, dev, NULL, NULL, ssl, NULL);
    mwt_pair_run(&p);
    cr_assert_neq(p.client.result, MW_OK, "a chain of three was accepted");
    cr_assert_neq(p.client.result, MW_EINPROGRESS);
    cr_assert_eq(p.client.result, MW_ECERT_UNTRUSTED, "%s: %s", mw_strerror(p.client.result),
                 p.client.err.reason);
    mwt_pair_fini(&p);
    wolfSSL_free(ssl);
    wolfSSL_CTX_free(sctx);
    mwi_dtls_ctx_destroy(&dev);
}

/* The device's side makes clients only: the server is the gateway library's
 * (src/dtls/dtls_server.c), so a device is told so rather than given half a server. */
Test(identity, the_device_side_makes_clients_only)
{
    mwi_dtls_config cfg = {
        .read_file = mwi_file_read,
        .role = MWI_DTLS_SERVER,
        .ca_file = mwt_pair_file("ca/ca.crt"),
        .cert_file = mwt_pair_file("dev-1.crt"),
        .key_file = mwt_pair_file("dev-1.key"),
        .peer_name = "gateway",
    };
    mwi_dtls_ctx *ctx = NULL;
    mw_error_detail_t d;
    cr_assert_eq(mwi_dtls_ctx_create(&cfg, &ctx, &d), MW_ECONFIG, "%s", d.reason);
    cr_assert_null(ctx);
    cr_assert_not_null(strstr(d.reason, "gateway library"), "%s", d.reason);
    cfg.role = MWI_DTLS_CLIENT;
    cr_assert_eq(mwi_dtls_server_ctx_create(&cfg, &ctx, &d), MW_EINVAL, "%s", d.reason);
    cr_assert_null(ctx);
    cr_assert_eq(mwi_dtls_ctx_create(&cfg, &ctx, &d), MW_OK, "%s", d.reason);
    mwi_dtls_ctx_destroy(&ctx);
}

/* A device given the CA's CRL in memory (@p crl, a file's text), expecting "gw1". */
static mwi_dtls_ctx *device_ctx_with_crl(const char *crl, mw_error_detail_t *d, mw_err *e)
{
    mwi_dtls_config cfg = {
        .read_file = mwi_file_read,
        .role = MWI_DTLS_CLIENT,
        .ca_file = mwt_pair_file("ca/ca.crt"),
        .cert_file = mwt_pair_file("dev-1.crt"),
        .key_file = mwt_pair_file("dev-1.key"),
        .peer_name = "gw1",
        .crl_buf = {(const uint8_t *)crl, strlen(crl)},
    };
    mwi_dtls_ctx *ctx = NULL;
    *e = mwi_dtls_ctx_create(&cfg, &ctx, d);
    return ctx;
}

/* A stolen gateway key is revoked at the CA: a device given the CRL refuses that gateway on a
 * full handshake, and when it offers a session made with it before the revocation. */
/* @req IEC62443-CR2.1 MDS2-NAUT */
Test(identity, a_device_given_a_crl_refuses_a_revoked_gateway_on_full_and_resumed_handshakes)
{
    const char *pki = mwt_bin("medwire-pki");
    mwt_pair_cmd(pki, "crl", "--ca", mwt_pair_file("ca"), NULL);
    char *before = mwt_read_file(mwt_pair_file("ca/crl.pem"));
    cr_assert_not_null(before);
    mwi_dtls_ctx *gw = gateway_ctx("gw1", false);
    mw_error_detail_t d;
    mw_err e;
    mwi_dtls_ctx *dev = device_ctx_with_crl(before, &d, &e);
    cr_assert_eq(e, MW_OK, "a CRL of the device's CA is taken: %s", d.reason);
    mwt_pair p;
    mwt_pair_init(&p, dev, NULL, gw, NULL, NULL);
    mwt_pair_run(&p);
    cr_assert_eq(p.client.result, MW_OK, "not revoked yet: %s", p.client.err.reason);
    mwi_dtls_session *s = mwi_dtls_conn_save_session(p.client.conn);
    cr_assert_not_null(s);
    mwt_pair_fini(&p);
    mwi_dtls_ctx_destroy(&dev);

    mwt_pair_cmd(pki, "revoke", "--ca", mwt_pair_file("ca"), "--id", "gw1", NULL);
    char *after = mwt_read_file(mwt_pair_file("ca/crl.pem"));
    cr_assert_not_null(after);
    dev = device_ctx_with_crl(after, &d, &e);
    cr_assert_eq(e, MW_OK, "%s", d.reason);
    mwt_pair_init(&p, dev, NULL, gw, NULL, NULL);
    mwt_pair_run(&p);
    cr_assert_eq(p.client.result, MW_ECERT_REVOKED, "full: %s (%s)", mw_strerror(p.client.result),
                 p.client.err.reason);
    mwt_pair_fini(&p);
    mwt_pair_init(&p, dev, NULL, gw, NULL, s);
    mwt_pair_run(&p);
    cr_assert_eq(p.client.result, MW_ECERT_REVOKED, "resumed: %s (%s)",
                 mw_strerror(p.client.result), p.client.err.reason);
    cr_assert(strstr(p.client.err.reason, "'gw1'") && strstr(p.client.err.reason, "resumption"),
              "%s", p.client.err.reason);
    mwt_pair_fini(&p);
    mwi_dtls_ctx_destroy(&dev);

    /* A device with no CRL is not told: revocation is checked only where a CRL is given. */
    mwt_side plain = connect_device(gw, NULL);
    cr_assert_eq(plain.result, MW_OK, "%s", plain.err.reason);
    mwi_dtls_session_free(&s);
    mwi_dtls_ctx_destroy(&gw);
    free(before);
    free(after);
}

/* DIR/@p name.der, the DER of the CRL DIR/@p pem (a path under the pair's folder), read whole
 * into a buffer of its own (free it). */
static uint8_t *crl_der_of(const char *pem, const char *name, size_t *len)
{
    char der[64];
    snprintf(der, sizeof der, "%s.der", name);
    mwt_pair_cmd("/usr/bin/openssl", "crl", "-in", mwt_pair_file(pem), "-outform", "DER", "-out",
                 mwt_pair_file(der), NULL);
    FILE *f = fopen(mwt_pair_file(der), "rb");
    cr_assert_not_null(f);
    uint8_t *buf = malloc(4096);
    cr_assert_not_null(buf);
    *len = fread(buf, 1, 4096, f);
    fclose(f);
    cr_assert_gt(*len, 0u);
    return buf;
}

static bool crl_in_force_is(const mwi_dtls_ctx *ctx, const uint8_t *der, size_t len)
{
    const uint8_t *now = NULL;
    size_t n = 0;
    return mwi_dtls_ctx_crl(ctx, &now, &n) && n == len && memcmp(now, der, len) == 0;
}

/* A device that fetches its CA's CRL over the channel takes it only if the CA signed it and it
 * is not older than its own; a revocation of the gateway in it ends the session at once. */
/* @req IEC62443-CR2.1 */
Test(identity, a_crl_from_the_gateway_is_taken_only_signed_and_not_older_and_ends_a_revoked_session)
{
    const char *pki = mwt_bin("medwire-pki");
    mwt_pair_cmd(pki, "crl", "--ca", mwt_pair_file("ca"), NULL);
    char *first = mwt_read_file(mwt_pair_file("ca/crl.pem"));
    cr_assert_not_null(first);
    size_t old_len, new_len, other_len;
    uint8_t *old_der = crl_der_of("ca/crl.pem", "old", &old_len);
    /* thisUpdate has whole seconds: the next CRL is made in the next second. */
    time_t t0 = time(NULL);
    while (time(NULL) == t0)
        mwt_sleep_ms(20);
    mwt_pair_cmd(pki, "revoke", "--ca", mwt_pair_file("ca"), "--id", "gw1", NULL);
    uint8_t *new_der = crl_der_of("ca/crl.pem", "new", &new_len);
    mwt_pair_cmd(pki, "ca", "--out", mwt_pair_file("ca2"), NULL);
    mwt_pair_cmd(pki, "crl", "--ca", mwt_pair_file("ca2"), NULL);
    uint8_t *other_der = crl_der_of("ca2/crl.pem", "other", &other_len);

    mwi_dtls_ctx *gw = gateway_ctx("gw1", false);
    mw_error_detail_t d;
    mw_err e;
    mwi_dtls_ctx *dev = device_ctx_with_crl(first, &d, &e);
    cr_assert_eq(e, MW_OK, "%s", d.reason);
    cr_assert(crl_in_force_is(dev, old_der, old_len), "the configured CRL, as DER");
    mwt_pair p;
    mwt_pair_init(&p, dev, NULL, gw, NULL, NULL);
    mwt_pair_run(&p);
    cr_assert_eq(p.client.result, MW_OK, "not revoked yet: %s", p.client.err.reason);

    /* Another CA's CRL (as a gateway that forged one would send): refused, nothing changes. */
    e = mwi_dtls_ctx_update_crl(dev, other_der, other_len, p.client.conn, &d);
    cr_assert_eq(e, MW_ECERT_LOAD, "%s: %s", mw_strerror(e), d.reason);
    cr_assert(strstr(d.reason, "from the gateway") && strstr(d.reason, "not signed"), "%s",
              d.reason);
    cr_assert(crl_in_force_is(dev, old_der, old_len), "the CRL in force stays");
    /* Junk: refused too. */
    static const uint8_t junk[] = {0x30, 0x03, 0x02, 0x01, 0x00};
    cr_assert_eq(mwi_dtls_ctx_update_crl(dev, junk, sizeof junk, p.client.conn, &d), MW_ECERT_LOAD);
    cr_assert(crl_in_force_is(dev, old_der, old_len));

    /* The CA's newer CRL revokes this very gateway: taken, and the session is over. */
    e = mwi_dtls_ctx_update_crl(dev, new_der, new_len, p.client.conn, &d);
    cr_assert_eq(e, MW_ECERT_REVOKED, "%s: %s", mw_strerror(e), d.reason);
    cr_assert(crl_in_force_is(dev, new_der, new_len));
    mwt_pair_fini(&p);
    /* The older CRL, which did not revoke it yet, cannot undo that. */
    e = mwi_dtls_ctx_update_crl(dev, old_der, old_len, NULL, &d);
    cr_assert_eq(e, MW_ECERT_LOAD, "%s", d.reason);
    cr_assert(strstr(d.reason, "older"), "%s", d.reason);
    cr_assert(crl_in_force_is(dev, new_der, new_len));
    /* And the next handshake is refused. */
    mwt_pair_init(&p, dev, NULL, gw, NULL, NULL);
    mwt_pair_run(&p);
    cr_assert_eq(p.client.result, MW_ECERT_REVOKED, "%s", p.client.err.reason);
    mwt_pair_fini(&p);
    mwi_dtls_ctx_destroy(&dev);
    mwi_dtls_ctx_destroy(&gw);
    free(first);
    free(old_der);
    free(new_der);
    free(other_der);
}

/* A CRL the device cannot trust stops it at once, named; it never connects unchecked. */
Test(identity, a_device_refuses_a_crl_of_another_ca_at_creation)
{
    const char *pki = mwt_bin("medwire-pki");
    mwt_pair_cmd(pki, "ca", "--out", mwt_pair_file("ca2"), NULL);
    mwt_pair_cmd(pki, "crl", "--ca", mwt_pair_file("ca2"), NULL);
    char *other = mwt_read_file(mwt_pair_file("ca2/crl.pem"));
    cr_assert_not_null(other);
    mw_error_detail_t d;
    mw_err e;
    mwi_dtls_ctx *dev = device_ctx_with_crl(other, &d, &e);
    cr_assert_eq(e, MW_ECERT_LOAD, "%s: %s", mw_strerror(e), d.reason);
    cr_assert_null(dev);
    cr_assert(strstr(d.reason, "crl_buf") && strstr(d.reason, "not signed by the configured CA"),
              "%s", d.reason);
    free(other);
}

/* A CA file may hold several CAs, such as one being replaced and its successor: each is read,
 * from a buffer that need not end with a NUL, and the context reports the earliest notAfter of
 * them wherever it stands in the file. */
/* @req IEC62443-CR1.8 */
Test(identity, every_ca_of_a_bundle_in_memory_is_read)
{
    /* The second CA ends in two years (23:59:59Z that day), before the first (in twenty). */
    time_t end = time(NULL) + 730 * 86400;
    end = end - end % 86400 + 86399;
    struct tm tm;
    char day[16];
    cr_assert(gmtime_r(&end, &tm) != NULL && strftime(day, sizeof day, "%Y-%m-%d", &tm) > 0);
    mwt_pair_cmd(mwt_bin("medwire-pki"), "ca", "--out", mwt_pair_file("ca2"), "--not-after", day,
                 NULL);
    char *first = mwt_read_file(mwt_pair_file("ca/ca.crt"));
    char *second = mwt_read_file(mwt_pair_file("ca2/ca.crt"));
    cr_assert(first != NULL && second != NULL);
    size_t n1 = strlen(first), n2 = strlen(second);
    uint8_t *bundle = malloc(n1 + n2); /* exactly the PEM: no NUL after it */
    cr_assert_not_null(bundle);
    memcpy(bundle, first, n1);
    memcpy(bundle + n1, second, n2);
    mwi_dtls_ctx *ctx = device_ctx_of("dev-1", "gw1", NULL, (mw_blob_t){bundle, n1 + n2});
    mwi_dtls_expiry x;
    mwi_dtls_ctx_expiry(ctx, &x);
    cr_assert_eq(x.ca, (int64_t)end, "%sT23:59:59Z, the second CA's; got %lld", day,
                 (long long)x.ca);
    mwi_dtls_ctx *gw = gateway_ctx("gw1", false);
    mwt_pair p;
    mwt_pair_init(&p, ctx, NULL, gw, NULL, NULL);
    mwt_pair_run(&p);
    cr_assert_eq(p.client.result, MW_OK, "the first CA's gateway: %s", p.client.err.reason);
    mwt_pair_fini(&p);
    mwi_dtls_ctx_destroy(&gw);
    mwi_dtls_ctx_destroy(&ctx);
    free(bundle);
    free(first);
    free(second);
}
