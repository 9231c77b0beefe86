/* SPDX-License-Identifier: Apache-2.0 */
/* test_crl_fetch.c -- devices learn revocations from their gateway: the CA's CRL, fetched over
 * the session (GET /crl, block-wise) when it comes up and on schedule, is taken only if the CA
 * signed it and it is not older than the device's; a revocation of the gateway in it ends the
 * session and refuses the next handshake. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "harness.h"

#include "support/proc.h"

static void pki_run(const char *const argv[])
{
    cr_assert_eq(mwt_run(argv, NULL, NULL, 30000), 0, "%s %s", argv[0], argv[1]);
}

/* A CA of the test's own (its revocations must not leak into others), the gateway, dev-1, and
 * @p revoked more devices issued and revoked, so that the CRL is long; its CRL. */
static void own_pki(mwt_pki *p, int revoked)
{
    const char *pki = mwt_bin("medwire-pki");
    snprintf(p->dir, sizeof p->dir, "%s", mwt_tmpdir());
    char ca[256], id[32];
    snprintf(ca, sizeof ca, "%s/ca", p->dir);
    const char *mk[] = {pki, "ca", "--out", ca, NULL};
    pki_run(mk);
    const char *gw[] = {pki,    "issue",   "--ca",  ca,     "--role", "gateway",
                        "--id", "gateway", "--out", p->dir, NULL};
    pki_run(gw);
    const char *dev[] = {pki,    "issue", "--ca",  ca,     "--role", "device",
                         "--id", "dev-1", "--out", p->dir, NULL};
    pki_run(dev);
    for (int i = 0; i < revoked; i++) {
        snprintf(id, sizeof id, "gone-%d", i);
        const char *is[] = {pki,    "issue", "--ca",  ca,     "--role", "device",
                            "--id", id,      "--out", p->dir, NULL};
        pki_run(is);
        const char *rv[] = {pki, "revoke", "--ca", ca, "--id", id, NULL};
        pki_run(rv);
    }
    const char *crl[] = {pki, "crl", "--ca", ca, NULL};
    pki_run(crl);
}

/* The DER of the CA's CRL as it is now, by OpenSSL, in a buffer of its own. */
static uint8_t *crl_der(const mwt_pki *p, size_t *len)
{
    char pem[300], der[300];
    snprintf(pem, sizeof pem, "%s/ca/crl.pem", p->dir);
    snprintf(der, sizeof der, "%s/crl.der", p->dir);
    const char *argv[] = {
        "/usr/bin/openssl", "crl", "-in", pem, "-outform", "DER", "-out", der, NULL};
    pki_run(argv);
    FILE *f = fopen(der, "rb");
    cr_assert_not_null(f);
    uint8_t *buf = malloc(65536);
    cr_assert_not_null(buf);
    *len = fread(buf, 1, 65536, f);
    fclose(f);
    return buf;
}

/* What on_crl was given. */
static struct {
    int calls;
    uint8_t der[65536];
    size_t len;
} told;

static void on_crl(void *ctx, const uint8_t *der, size_t len)
{
    (void)ctx;
    told.calls++;
    cr_assert_leq(len, sizeof told.der);
    memcpy(told.der, der, len);
    told.len = len;
}

static uint64_t taken(mw_client_t *c)
{
    mw_client_stats_t st;
    mw_client_stats(c, &st);
    return st.crls_taken;
}

static bool took_one(mwt_h *h, void *arg)
{
    (void)h;
    return taken(arg) >= 1;
}

static bool took_two(mwt_h *h, void *arg)
{
    (void)h;
    return taken(arg) >= 2;
}

static bool failed(mwt_h *h, void *arg)
{
    (void)h;
    mw_err e = mw_client_poll(arg, 0);
    return e != MW_OK && e != MW_EAGAIN;
}

static bool refused_one(mwt_h *h, void *arg)
{
    (void)h;
    mw_client_stats_t st;
    mw_client_stats(arg, &st);
    return st.crls_refused >= 1;
}

static mw_client_t *device(mwt_h *h, mw_blob_t crl)
{
    mw_client_config_t q;
    mw_client_config_init(&q);
    q.crl_refresh_s = 3600;
    q.on_crl = on_crl;
    q.crl_buf = crl;
    mw_err e;
    mw_client_t *c = mwt_h_client_with(h, "dev-1", "gateway", &q, &e);
    cr_assert_not_null(c, "%s", mw_strerror(e));
    return c;
}

/* @req IEC62443-CR2.1 IEC62443-CR1.9 */
Test(crl_fetch, a_device_takes_the_cas_crl_at_connection_and_hourly_and_leaves_a_revoked_gateway,
     .timeout = 240)
{
    memset(&told, 0, sizeof told);
    mwt_pki pki;
    own_pki(&pki, 40); /* about 2 KB: block-wise */
    char crl[300];
    snprintf(crl, sizeof crl, "%s/ca/crl.pem", pki.dir);
    size_t len1;
    uint8_t *first = crl_der(&pki, &len1);
    cr_assert_gt(len1, 1024u, "a CRL longer than a block");
    mwt_h h;
    mwt_h_init_crl(&h, 60, &pki, crl);
    mw_client_t *c = device(&h, (mw_blob_t){NULL, 0});
    mwt_send_obs(c, 2, 0);
    cr_assert(mwt_h_run(&h, took_one, c, 60000), "the CRL fetched once the session is up");
    cr_assert_eq(told.calls, 1);
    cr_assert(told.len == len1 && memcmp(told.der, first, len1) == 0, "the CA's CRL, whole");
    mw_client_stats_t st;
    mw_client_stats(c, &st);
    cr_assert_gt(st.crl_next_update_s, (int64_t)time(NULL), "the CRL's nextUpdate");
    mw_gateway_stats_t gs;
    mw_gateway_stats(h.gw, &gs);
    cr_assert_geq(gs.crls_served, 2u, "served block by block");
    cr_assert(mwt_h_drain(&h, 60000));
    cr_assert_eq(mwt_h_count(&h, "dev-1"), 2, "the messages went on beside it");

    /* The gateway's own key is revoked: the CA's next CRL says so. */
    const char *rv[] = {mwt_bin("medwire-pki"), "revoke", "--ca", NULL, "--id", "gateway", NULL};
    char ca[300];
    snprintf(ca, sizeof ca, "%s/ca", pki.dir);
    rv[3] = ca;
    pki_run(rv);
    mw_error_detail_t d;
    cr_assert_eq(mw_gateway_reload_crl(h.gw, crl, &d), MW_OK, "%s", d.reason);
    /* Not before the hour is up... */
    mwt_clock_advance(&h.clk, 1800 * 1000);
    mwt_send_obs(c, 1, 2);
    cr_assert(mwt_h_drain(&h, 60000));
    cr_assert_eq(taken(c), 1u, "not fetched again before the hour");
    /* ...then fetched with the next session, and the gateway is left. */
    mwt_clock_advance(&h.clk, 1800 * 1000);
    mwt_send_obs(c, 1, 3);
    cr_assert(mwt_h_run(&h, took_two, c, 600000), "fetched again after an hour");
    cr_assert(mwt_h_run(&h, failed, c, 600000), "the revoked gateway is refused from now on");
    mw_client_last_error(c, &d);
    cr_assert_eq(d.err, MW_ECERT_REVOKED, "%s: %s", mw_strerror(d.err), d.reason);
    size_t len2;
    uint8_t *second = crl_der(&pki, &len2);
    cr_assert(told.calls == 2 && told.len == len2 && memcmp(told.der, second, len2) == 0,
              "the newer CRL handed over to be stored");
    free(first);
    free(second);
    mwt_h_fini(&h);
}

/* A gateway serving an older CRL (a stale copy, or one from before its own revocation) cannot
 * undo what the device already knows; the device carries on with its own. */
/* @req IEC62443-CR2.1 */
Test(crl_fetch, an_older_crl_from_the_gateway_is_refused_and_the_devices_own_stays, .timeout = 120)
{
    memset(&told, 0, sizeof told);
    mwt_pki pki;
    own_pki(&pki, 0);
    char crl[300], path[300];
    snprintf(crl, sizeof crl, "%s/ca/crl.pem", pki.dir);
    snprintf(path, sizeof path, "%s/gateway-crl.pem", pki.dir);
    char *old = mwt_read_file(crl);
    cr_assert_not_null(old);
    FILE *f = fopen(path, "w");
    cr_assert_not_null(f);
    fputs(old, f);
    cr_assert_eq(fclose(f), 0);
    /* thisUpdate has whole seconds: the device's CRL is made in the next one. */
    time_t t0 = time(NULL);
    while (time(NULL) == t0)
        mwt_sleep_ms(20);
    char ca[300];
    snprintf(ca, sizeof ca, "%s/ca", pki.dir);
    const char *again[] = {mwt_bin("medwire-pki"), "crl", "--ca", ca, NULL};
    pki_run(again);
    char *newer = mwt_read_file(crl);
    cr_assert_not_null(newer);
    mwt_h h;
    mwt_h_init_crl(&h, 61, &pki, path);
    mw_client_t *c = device(&h, (mw_blob_t){(const uint8_t *)newer, strlen(newer)});
    mwt_send_obs(c, 3, 0);
    cr_assert(mwt_h_run(&h, refused_one, c, 60000));
    mw_error_detail_t d;
    mw_client_last_error(c, &d);
    cr_assert(strstr(d.reason, "older"), "%s", d.reason);
    cr_assert_eq(told.calls, 0, "nothing to store");
    cr_assert(mwt_h_drain(&h, 60000));
    cr_assert_eq(mwt_h_count(&h, "dev-1"), 3, "delivery goes on");
    free(old);
    free(newer);
    mwt_h_fini(&h);
}
