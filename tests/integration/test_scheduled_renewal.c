/* SPDX-License-Identifier: Apache-2.0 */
/* test_scheduled_renewal.c -- the SDK renews on the device's own schedule: inside the last part
 * of its certificate's life it asks make_csr for a new key's request, the gateway's --est-ca
 * issuer (medwire-pki's CA folder) answers, on_renewal hands the pair to
 * mw_client_use_credentials, and a session made with it replaces the old one make-before-break,
 * nothing lost. A renewed pair the gateway refuses leaves the session and the pair in use. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "est_ca.h"
#include "harness.h"

#include "support/proc.h"

#define DAY_MS (86400ull * 1000ull)

static void run_ok(const char *const argv[])
{
    cr_assert_eq(mwt_run(argv, NULL, NULL, 30000), 0, "%s %s", argv[0], argv[1]);
}

/* A CA of the test's own in p->dir/ca (renewals write its index.txt), the gateway, dev-1 whose
 * certificate expires in 10 days, and dev-2. */
static void own_pki(mwt_pki *p)
{
    const char *pki = mwt_bin("medwire-pki");
    snprintf(p->dir, sizeof p->dir, "%s", mwt_tmpdir());
    char ca[256], day[16];
    snprintf(ca, sizeof ca, "%s/ca", p->dir);
    time_t soon = time(NULL) + 10 * 86400;
    struct tm tm;
    gmtime_r(&soon, &tm);
    strftime(day, sizeof day, "%Y-%m-%d", &tm);
    const char *mk[] = {pki, "ca", "--out", ca, NULL};
    run_ok(mk);
    const char *gw[] = {pki,    "issue",   "--ca",  ca,     "--role", "gateway",
                        "--id", "gateway", "--out", p->dir, NULL};
    run_ok(gw);
    const char *d1[] = {pki,     "issue", "--ca",        ca,  "--role", "device", "--id", "dev-1",
                        "--out", p->dir,  "--not-after", day, NULL};
    run_ok(d1);
    const char *d2[] = {pki,    "issue", "--ca",  ca,     "--role", "device",
                        "--id", "dev-2", "--out", p->dir, NULL};
    run_ok(d2);
}

static char ca_dir[300];
static est_ca issuer = {ca_dir, 365};

static void with_est_ca(mw_gateway_config_t *cfg)
{
    cfg->est_issue = est_ca_issue;
    cfg->est_ctx = &issuer;
}

/* The application's side: its new key in a file, made by OpenSSL; the pair handed over. */
static struct {
    mw_client_t *c;
    int csr_calls, renewals;
    char key[300];
    mw_err switch_result;
} app;

static mw_err make_csr(void *ctx, const char *id, uint8_t *csr, size_t cap, size_t *len)
{
    (void)ctx;
    app.csr_calls++;
    char dir[256], der[300], subj[120];
    snprintf(dir, sizeof dir, "%s", mwt_tmpdir());
    snprintf(app.key, sizeof app.key, "%s/next.key", dir);
    snprintf(der, sizeof der, "%s/next.csr", dir);
    snprintf(subj, sizeof subj, "/O=medwire/CN=%s", id);
    const char *gen[] = {"/usr/bin/openssl", "ecparam", "-name", "prime256v1", "-genkey",
                         "-noout",           "-out",    app.key, NULL};
    const char *req[] = {"/usr/bin/openssl", "req", "-new", "-key", app.key, "-subj", subj,
                         "-outform",         "DER", "-out", der,    NULL};
    run_ok(gen);
    cr_assert_eq(chmod(app.key, 0600), 0);
    run_ok(req);
    FILE *f = fopen(der, "rb");
    cr_assert_not_null(f);
    *len = fread(csr, 1, cap, f);
    fclose(f);
    return *len > 0 ? MW_OK : MW_EIO;
}

static void on_renewal(void *ctx, mw_err e, const uint8_t *cert, size_t len, const char *reason)
{
    (void)ctx;
    cr_assert_eq(e, MW_OK, "%s", reason);
    app.renewals++;
    mw_credentials_t cred = {.key_file = app.key, .cert_buf = {cert, len}};
    app.switch_result = mw_client_use_credentials(app.c, &cred);
}

static uint64_t switches(mw_client_t *c)
{
    mw_client_stats_t st;
    mw_client_stats(c, &st);
    return st.credential_switches;
}

static bool switched(mwt_h *h, void *arg)
{
    (void)h;
    return switches(arg) >= 1;
}

/* @req IEC62443-CR1.5 MDCG-2019-16-PMS */
Test(scheduled_renewal,
     inside_its_window_the_device_renews_and_switches_make_before_break_with_nothing_lost,
     .timeout = 240)
{
    memset(&app, 0, sizeof app);
    mwt_pki pki;
    own_pki(&pki);
    snprintf(ca_dir, sizeof ca_dir, "%s/ca", pki.dir);
    mwt_h h;
    mwt_h_init_with(&h, 70, &pki, NULL, with_est_ca);
    /* The device's clock at today (the harness's starts at a fixed date). */
    h.clk.wall_ms = (uint64_t)time(NULL) * 1000u - h.clk.now_ms;
    mw_client_config_t q;
    mw_client_config_init(&q);
    q.renew_when_left_pct = 20;
    q.make_csr = make_csr;
    q.on_renewal = on_renewal;
    mw_err e;
    app.c = mwt_h_client_with(&h, "dev-1", "gateway", &q, &e);
    cr_assert_not_null(app.c, "%s", mw_strerror(e));
    mwt_send_obs(app.c, 3, 0);
    cr_assert(mwt_h_drain(&h, 60000));
    mw_client_stats_t st;
    mw_client_stats(app.c, &st);
    int64_t old_end = st.cert_not_after_s;
    cr_assert_eq(app.csr_calls, 0, "ten days of ten left: not yet");

    /* Nine days later by the device's clock: a tenth of its life left, inside the last 20 %. */
    h.clk.wall_ms += 9 * DAY_MS;
    mwt_send_obs(app.c, 2, 3);
    bool sw = mwt_h_run(&h, switched, app.c, 600000);
    mw_error_detail_t dd;
    mw_client_last_error(app.c, &dd);
    cr_assert(sw, "renewed and switched: %d requests, %d renewals, %s; %s", app.csr_calls,
              app.renewals, mw_strerror(app.switch_result), dd.reason);
    cr_assert_eq(app.csr_calls, 1);
    cr_assert_eq(app.renewals, 1);
    cr_assert_eq(app.switch_result, MW_OK);
    mw_client_stats(app.c, &st);
    cr_assert_eq(st.renewals, 1u);
    cr_assert_gt(st.cert_not_after_s, old_end + 300 * 86400,
                 "the session is made with the new certificate (a year)");
    cr_assert_not_null(mwt_h_audit_find(&h, MW_AUDIT_CERT_RENEWED, MW_OK));
    mwt_send_obs(app.c, 2, 5);
    cr_assert(mwt_h_drain(&h, 60000));
    cr_assert_eq(mwt_h_count(&h, "dev-1"), 7, "every message, before, during and after");
    /* The new certificate is far from its window: no second renewal. */
    h.clk.wall_ms += 2 * DAY_MS;
    mwt_send_obs(app.c, 1, 7);
    cr_assert(mwt_h_drain(&h, 60000));
    cr_assert_eq(app.csr_calls, 1);
    mwt_h_fini(&h);
}

static bool refused_switch(mwt_h *h, void *arg)
{
    (void)h;
    mw_error_detail_t d;
    mw_client_last_error(arg, &d);
    return strstr(d.reason, "did not accept the renewed certificate") != NULL;
}

/* A pair the gateway does not trust (another CA's, with the same name), and another device's
 * pair: the first is tried beside the session and refused, the second refused at once; the
 * device goes on with the pair in use. */
/* @req IEC62443-CR1.5 */
Test(scheduled_renewal, a_renewed_pair_the_gateway_refuses_leaves_the_session_and_the_pair_in_use,
     .timeout = 240)
{
    memset(&app, 0, sizeof app);
    mwt_pki pki;
    own_pki(&pki);
    snprintf(ca_dir, sizeof ca_dir, "%s/ca", pki.dir);
    char other[300], crt[320], key[320];
    snprintf(other, sizeof other, "%s/other", pki.dir);
    const char *mwpki = mwt_bin("medwire-pki");
    char other_ca[320];
    snprintf(other_ca, sizeof other_ca, "%s/ca", other);
    const char *mk[] = {mwpki, "ca", "--out", other_ca, NULL};
    run_ok(mk);
    const char *is[] = {mwpki,  "issue", "--ca",  other_ca, "--role", "device",
                        "--id", "dev-1", "--out", other,    NULL};
    run_ok(is);
    mwt_h h;
    mwt_h_init_with(&h, 71, &pki, NULL, with_est_ca);
    mw_err e;
    mw_client_t *c = mwt_h_client_with(&h, "dev-1", "gateway", NULL, &e);
    cr_assert_not_null(c, "%s", mw_strerror(e));
    mwt_send_obs(c, 2, 0);
    cr_assert(mwt_h_drain(&h, 60000));

    mw_credentials_t two = {.cert_file = mwt_pki_crt(&pki, "dev-2"),
                            .key_file = mwt_pki_key(&pki, "dev-2")};
    cr_assert_eq(mw_client_use_credentials(c, &two), MW_EIDENTITY);
    mw_error_detail_t d;
    mw_client_last_error(c, &d);
    cr_assert(strstr(d.reason, "'dev-2'") && strstr(d.reason, "'dev-1'"), "%s", d.reason);

    snprintf(crt, sizeof crt, "%s/dev-1.crt", other);
    snprintf(key, sizeof key, "%s/dev-1.key", other);
    mw_credentials_t foreign = {.cert_file = crt, .key_file = key};
    cr_assert_eq(mw_client_use_credentials(c, &foreign), MW_OK, "it loads: the gateway judges");
    cr_assert_eq(mw_client_use_credentials(c, &foreign), MW_EAGAIN, "one switch at a time");
    mwt_send_obs(c, 3, 2);
    bool ok = mwt_h_run(&h, refused_switch, c, 120000);
    mw_client_last_error(c, &d);
    mw_client_stats_t s0;
    mw_client_stats(c, &s0);
    cr_assert(ok, "the switch is tried and refused: %s (%llu rotations, %llu failures)", d.reason,
              (unsigned long long)s0.rotations, (unsigned long long)s0.handshake_failures);
    cr_assert(mwt_h_drain(&h, 120000));
    cr_assert_eq(switches(c), 0u);
    mw_client_stats_t st;
    mw_client_stats(c, &st);
    cr_assert(st.connected, "the session in use goes on");
    mwt_send_obs(c, 1, 5);
    cr_assert(mwt_h_drain(&h, 60000));
    cr_assert_eq(mwt_h_count(&h, "dev-1"), 6, "nothing lost");
    mwt_h_fini(&h);
}
