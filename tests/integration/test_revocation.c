/* SPDX-License-Identifier: Apache-2.0 */
/* test_revocation.c -- a revoked device is refused on a full handshake and on resumption; the
 * others carry on. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <wolfssl/options.h>
#include <wolfssl/wolfcrypt/asn_public.h>

#include "harness.h"

#include "support/proc.h"

static void pki_run(const char *const argv[])
{
    cr_assert_eq(mwt_run(argv, NULL, NULL, 30000), 0, "medwire-pki %s", argv[1]);
}

/* A fresh CA of this test's own (revocations must not leak into others). */
static void own_pki(mwt_pki *p)
{
    const char *pki = mwt_bin("medwire-pki");
    snprintf(p->dir, sizeof p->dir, "%s", mwt_tmpdir());
    char ca[256];
    snprintf(ca, sizeof ca, "%s/ca", p->dir);
    const char *mk[] = {pki, "ca", "--out", ca, NULL};
    pki_run(mk);
    const char *gw[] = {pki,    "issue",   "--ca",  ca,     "--role", "gateway",
                        "--id", "gateway", "--out", p->dir, NULL};
    pki_run(gw);
    static const char *const devs[] = {"dev-1", "dev-2", "dev-3"};
    for (int i = 0; i < 3; i++) {
        const char *d[] = {pki,    "issue", "--ca",  ca,     "--role", "device",
                           "--id", devs[i], "--out", p->dir, NULL};
        pki_run(d);
    }
    const char *crl[] = {pki, "crl", "--ca", ca, NULL};
    pki_run(crl);
}

static void revoke(const mwt_pki *p, const char *id)
{
    char ca[256];
    snprintf(ca, sizeof ca, "%s/ca", p->dir);
    const char *argv[] = {mwt_bin("medwire-pki"), "revoke", "--ca", ca, "--id", id, NULL};
    pki_run(argv);
}

static bool connected(mwt_h *h, void *arg)
{
    (void)h;
    mw_client_stats_t st;
    mw_client_stats(arg, &st);
    return st.connected;
}

static bool failed(mwt_h *h, void *arg)
{
    (void)h;
    mw_err e = mw_client_poll(arg, 0);
    return e != MW_OK && e != MW_EAGAIN;
}

static bool reconnect_refused(mwt_h *h, void *arg)
{
    (void)arg;
    for (size_t i = 0; i < h->naudit; i++)
        if (h->audit[i].err == MW_ECERT_REVOKED && strstr(h->audit[i].reason, "resumption"))
            return true;
    return false;
}

/* @req MDR-18.8 IEC62443-CR1.9 IEC62443-CR2.6 MDS2-AUTH */
Test(revocation,
     a_revoked_device_is_refused_on_full_handshake_and_on_resumption_and_others_carry_on,
     .timeout = 120)
{
    mwt_pki pki;
    own_pki(&pki);
    char crl[300];
    snprintf(crl, sizeof crl, "%s/ca/crl.pem", pki.dir);
    mwt_h h;
    mwt_h_init_crl(&h, 50, &pki, crl);
    revoke(&pki, "dev-2");
    mw_error_detail_t d;
    cr_assert_eq(mw_gateway_reload_crl(h.gw, crl, &d), MW_OK, "%s", d.reason);

    /* dev-2: revoked before it ever connects -- refused on the full handshake. */
    mw_client_t *two = mwt_h_client(&h, "dev-2", "gateway", NULL);
    mw_client_t *one = mwt_h_client(&h, "dev-1", "gateway", NULL);
    mw_client_t *three = mwt_h_client(&h, "dev-3", "gateway", NULL);
    mwt_send_obs(two, 1, 0);
    cr_assert(mwt_h_run(&h, failed, two, 60000));
    mw_client_last_error(two, &d);
    cr_assert(strstr(d.reason, "certificate_revoked") != NULL, "dev-2 says: %s", d.reason);
    const mwt_audit_line *l = mwt_h_audit_find(&h, MW_AUDIT_HANDSHAKE_FAILED, MW_ECERT_REVOKED);
    cr_assert_not_null(l);
    cr_assert_eq(l->foreign, -361, "wolfSSL's CRL_CERT_REVOKED is kept");

    /* dev-3: connected and delivering, then revoked: SIGHUP's reload ends its
     * session, and its resumption attempt is refused. */
    mwt_send_obs(three, 3, 0);
    mwt_send_obs(one, 3, 0);
    cr_assert(mwt_h_run(&h, connected, three, 60000));
    cr_assert(mwt_h_drain(&h, 60000) || 1);
    cr_assert_eq(mwt_h_count(&h, "dev-3"), 3);
    revoke(&pki, "dev-3");
    cr_assert_eq(mw_gateway_reload_crl(h.gw, crl, &d), MW_OK, "%s", d.reason);
    const mwt_audit_line *closed = mwt_h_audit_find(&h, MW_AUDIT_SESSION_CLOSED, MW_ECERT_REVOKED);
    cr_assert_not_null(closed, "the revoked device's live session is closed at reload");
    mwt_send_obs(three, 2, 10);
    cr_assert(mwt_h_run(&h, reconnect_refused, NULL, 300000),
              "the resumption attempt must be refused for revocation");
    cr_assert(mwt_h_run(&h, failed, three, 300000), "then the full handshake is refused too");
    mw_client_last_error(three, &d);
    cr_assert(strstr(d.reason, "certificate_revoked") != NULL, "dev-3 says: %s", d.reason);
    cr_assert_eq(mwt_h_count(&h, "dev-3"), 3, "nothing after the revocation");

    /* dev-1 was never disturbed. */
    mwt_send_obs(one, 3, 3);
    mw_client_t *keep[8];
    size_t n = h.nclients;
    memcpy(keep, h.clients, sizeof keep);
    h.clients[0] = one;
    h.nclients = 1;
    cr_assert(mwt_h_drain(&h, 60000));
    memcpy(h.clients, keep, sizeof keep);
    h.nclients = n;
    cr_assert_eq(mwt_h_count(&h, "dev-1"), 6);
    mw_client_stats_t st;
    mw_client_stats(three, &st);
    (void)st;
    mwt_h_fini(&h);
}

/* @req IEC62443-CR1.8 IEC62443-CR3.7 */
Test(revocation, a_bad_crl_file_leaves_the_one_in_force)
{
    mwt_pki pki;
    own_pki(&pki);
    char crl[300], bad[300];
    snprintf(crl, sizeof crl, "%s/ca/crl.pem", pki.dir);
    snprintf(bad, sizeof bad, "%s/nonexistent.pem", pki.dir);
    mwt_h h;
    mwt_h_init_crl(&h, 51, &pki, crl);
    mw_error_detail_t d;
    cr_assert_eq(mw_gateway_reload_crl(h.gw, bad, &d), MW_ECERT_LOAD);
    cr_assert(strstr(d.reason, "nonexistent.pem") != NULL, "%s", d.reason);
    mw_client_t *one = mwt_h_client(&h, "dev-1", "gateway", NULL);
    mwt_send_obs(one, 2, 0);
    cr_assert(mwt_h_drain(&h, 60000), "still served under the old CRL");
    cr_assert_eq(mwt_h_count(&h, "dev-1"), 2);
    mwt_h_fini(&h);
}

static bool disconnected(mwt_h *h, void *arg)
{
    (void)h;
    mw_client_stats_t st;
    mw_client_stats(arg, &st);
    return !st.connected;
}

Test(resumption, a_device_that_lost_its_link_resumes_its_session_by_id)
{
    mwt_h h;
    mwt_h_init(&h, 52);
    mw_client_config_t cfg;
    mw_client_config_init(&cfg);
    cfg.ca_file = mwt_pki_ca(&h.pki);
    cfg.cert_file = mwt_pki_crt(&h.pki, "dev-1");
    cfg.key_file = mwt_pki_key(&h.pki, "dev-1");
    cfg.gateway_name = "gateway";
    cfg.gateway = MWT_GATEWAY_ADDR;
    cfg.transport = mwt_net_endpoint(h.net, "127.0.0.2:46000");
    cfg.clock = mwt_clock_table(&h.clk);
    cfg.random = mwt_rng_table(&h.rng);
    cfg.rekey_after_retransmits = 0; /* let CoAP give up and the client reconnect */
    mw_client_t *c = NULL;
    cr_assert_eq(mw_client_open(&cfg, &c, NULL), MW_OK);
    h.clients[h.nclients++] = c;
    mwt_send_obs(c, 2, 0);
    cr_assert(mwt_h_drain(&h, 60000));
    mwt_net_set_faults(h.net, 1.0, 0, 0);
    mwt_send_obs(c, 2, 2);
    cr_assert(mwt_h_run(&h, disconnected, c, 300000));
    mwt_net_set_faults(h.net, 0, 0, 0);
    cr_assert(mwt_h_drain(&h, 300000));
    mw_client_stats_t st;
    mw_client_stats(c, &st);
    cr_assert_eq(st.resumptions, 1, "the reconnection resumed by session ID");
    cr_assert_eq(mwt_h_count(&h, "dev-1"), 4);
    mwt_h_fini(&h);
}

/* The gateway's credentials as buffers: the CA as PEM, the rest as DER (kept until the test
 * ends, and changed then, to show the gateway holds copies). */
static uint8_t *gw_bufs[4];

static mw_blob_t der_blob(const char *path, int type, int slot)
{
    char *pem = mwt_read_file(path);
    cr_assert_not_null(pem, "%s", path);
    size_t n = strlen(pem);
    uint8_t *der = malloc(n);
    cr_assert_not_null(der);
    int len = type == PRIVATEKEY_TYPE
                  ? wc_KeyPemToDer((const uint8_t *)pem, (int)n, der, (int)n, NULL)
                  : wc_CertPemToDer((const uint8_t *)pem, (int)n, der, (int)n, type);
    cr_assert_gt(len, 0, "%s: %d", path, len);
    free(pem);
    gw_bufs[slot] = der;
    return (mw_blob_t){der, (size_t)len};
}

static void gateway_from_buffers(mw_gateway_config_t *cfg)
{
    char *ca = mwt_read_file(cfg->ca_file);
    cr_assert_not_null(ca);
    gw_bufs[0] = (uint8_t *)ca;
    cfg->ca_buf = (mw_blob_t){(const uint8_t *)ca, strlen(ca)};
    cfg->cert_buf = der_blob(cfg->cert_file, CERT_TYPE, 1);
    cfg->key_buf = der_blob(cfg->key_file, PRIVATEKEY_TYPE, 2);
    /* wolfCrypt converts no CRL to DER: OpenSSL does. */
    char der[320];
    snprintf(der, sizeof der, "%s.der", cfg->crl_file);
    const char *argv[] = {
        "/usr/bin/openssl", "crl", "-in", cfg->crl_file, "-outform", "DER", "-out", der, NULL};
    cr_assert_eq(mwt_run(argv, NULL, NULL, 30000), 0, "openssl crl");
    FILE *f = fopen(der, "rb");
    cr_assert_not_null(f);
    gw_bufs[3] = malloc(65536);
    cr_assert_not_null(gw_bufs[3]);
    size_t n = fread(gw_bufs[3], 1, 65536, f);
    fclose(f);
    cr_assert(n > 0 && gw_bufs[3][0] == 0x30, "a DER CRL");
    cfg->crl_buf = (mw_blob_t){gw_bufs[3], n};
    cfg->ca_file = cfg->cert_file = cfg->key_file = cfg->crl_file = NULL;
}

/* @req IEC62443-CR1.2 */
Test(revocation, a_gateway_given_its_credentials_and_crl_in_memory_refuses_the_revoked)
{
    mwt_pki pki;
    own_pki(&pki);
    revoke(&pki, "dev-2");
    char crl[300];
    snprintf(crl, sizeof crl, "%s/ca/crl.pem", pki.dir);
    mwt_h h;
    mwt_h_init_with(&h, 52, &pki, crl, gateway_from_buffers);
    for (int i = 0; i < 4; i++) {
        memset(gw_bufs[i], 0xA5, 16); /* the gateway took copies */
        free(gw_bufs[i]);
    }
    mw_client_t *two = mwt_h_client(&h, "dev-2", "gateway", NULL);
    mw_client_t *one = mwt_h_client(&h, "dev-1", "gateway", NULL);
    cr_assert_not_null(one);
    mwt_send_obs(two, 1, 0);
    cr_assert(mwt_h_run(&h, failed, two, 60000));
    mw_error_detail_t d;
    mw_client_last_error(two, &d);
    cr_assert(strstr(d.reason, "certificate_revoked") != NULL, "dev-2 says: %s", d.reason);
    mwt_send_obs(one, 3, 10);
    cr_assert(mwt_h_drain(&h, 60000));
    cr_assert_eq(mwt_h_count(&h, "dev-1"), 3);
    /* A reload loads the copies again. */
    cr_assert_eq(mw_gateway_reload_credentials(h.gw, &d), MW_OK, "%s", d.reason);
    mwt_send_obs(one, 2, 20);
    cr_assert(mwt_h_drain(&h, 60000));
    cr_assert_eq(mwt_h_count(&h, "dev-1"), 5);
    mwt_h_fini(&h);
}
