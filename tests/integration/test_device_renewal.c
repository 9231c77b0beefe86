/* SPDX-License-Identifier: Apache-2.0 */
/* test_device_renewal.c -- medwire-device --renew-before-days against medwire-gateway --est-ca:
 * a device inside its window renews over its session and starts next with the new pair, which
 * OpenSSL verifies, and which the gateway's store lists; a power cut at each step of the renewal
 * leaves a device that connects. */
#include <criterion/criterion.h>
#include <signal.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "support/pki.h"
#include "support/proc.h"

#define RUN_MS 60000

typedef struct gw {
    mwt_proc proc;
    char dir[256], audit[300], port[300], addr[64];
} gw;

/* OpenSSL's "serial=HEX\n" as the gateway's store writes a serial: lowercase, alone. */
static void store_serial(const char *openssl, char *out, size_t cap)
{
    const char *hex = strchr(openssl, '=');
    cr_assert_not_null(hex, "%s", openssl);
    size_t n = strcspn(hex + 1, "\n");
    cr_assert_lt(n, cap);
    for (size_t i = 0; i < n; i++)
        out[i] =
            (char)(hex[1 + i] >= 'A' && hex[1 + i] <= 'F' ? hex[1 + i] - 'A' + 'a' : hex[1 + i]);
    out[n] = '\0';
}

/* The rows of the store's certificates table, "device serial replaces" each, joined by ';'. */
static void stored_certificates(const gw *g, char *out, size_t cap)
{
    char path[300];
    snprintf(path, sizeof path, "%s/gw.db", g->dir);
    sqlite3 *db = NULL;
    cr_assert_eq(sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
    sqlite3_stmt *st = NULL;
    cr_assert_eq(sqlite3_prepare_v2(db,
                                    "SELECT device || ' ' || serial || ' ' || replaces FROM"
                                    " certificates ORDER BY issued_ms",
                                    -1, &st, NULL),
                 SQLITE_OK, "%s", sqlite3_errmsg(db));
    out[0] = '\0';
    while (sqlite3_step(st) == SQLITE_ROW) {
        size_t used = strlen(out);
        snprintf(out + used, cap - used, "%s%s", used ? ";" : "",
                 (const char *)sqlite3_column_text(st, 0));
    }
    sqlite3_finalize(st);
    sqlite3_close(db);
}

static void run_ok(const char *const argv[])
{
    cr_assert_eq(mwt_run(argv, NULL, NULL, RUN_MS), 0, "%s %s failed", argv[0], argv[1]);
}

/* A CA in @p dir/ca, the gateway, and the devices @p names, whose certificates expire at the
 * end of the day 10 days from now. */
static void make_pki(const char *dir, const char *const names[])
{
    const char *pki = mwt_bin("medwire-pki");
    char ca[300], day[16];
    snprintf(ca, sizeof ca, "%s/ca", dir);
    time_t soon = time(NULL) + 10 * 86400;
    struct tm tm;
    gmtime_r(&soon, &tm);
    strftime(day, sizeof day, "%Y-%m-%d", &tm);
    const char *mk[] = {pki, "ca", "--out", ca, NULL};
    run_ok(mk);
    const char *g[] = {pki,    "issue",   "--ca",  ca,  "--role", "gateway",
                       "--id", "gateway", "--out", dir, NULL};
    run_ok(g);
    for (size_t i = 0; names[i] != NULL; i++) {
        const char *d[] = {pki,           "issue", "--ca",   ca,      "--role",
                           "device",      "--id",  names[i], "--out", dir,
                           "--not-after", day,     NULL};
        run_ok(d);
    }
}

/* The gateway on DIR's credentials, renewing with @p issuer (its EST options, NULL-terminated;
 * NULL: --est-ca DIR/ca). */
static void start_gw_with(gw *g, const char *dir, const char *const issuer[])
{
    snprintf(g->dir, sizeof g->dir, "%s", dir);
    snprintf(g->audit, sizeof g->audit, "%s/audit.jsonl", dir);
    snprintf(g->port, sizeof g->port, "%s/port", dir);
    char ca[300], crt[300], key[300], out[300], store[300], est[300];
    snprintf(ca, sizeof ca, "%s/ca/ca.crt", dir);
    snprintf(crt, sizeof crt, "%s/gateway.crt", dir);
    snprintf(key, sizeof key, "%s/gateway.key", dir);
    snprintf(out, sizeof out, "%s/out.jsonl", dir);
    snprintf(store, sizeof store, "%s/gw.db", dir);
    snprintf(est, sizeof est, "%s/ca", dir);
    const char *argv[24] = {mwt_bin("medwire-gateway"),
                            "--listen",
                            "127.0.0.1:0",
                            "--ca",
                            ca,
                            "--cert",
                            crt,
                            "--key",
                            key,
                            "--out",
                            out,
                            "--audit",
                            g->audit,
                            "--store",
                            store,
                            "--port-file",
                            g->port,
                            "--est-ca",
                            est};
    if (issuer != NULL) {
        size_t n = 17;
        for (size_t i = 0; issuer[i] != NULL && n < 23; i++)
            argv[n++] = issuer[i];
        argv[n] = NULL;
    }
    cr_assert(mwt_proc_start(&g->proc, argv, NULL, NULL));
    cr_assert(mwt_wait_file(g->port, 10000), "the gateway did not report its port");
    char *p = mwt_read_file(g->port);
    snprintf(g->addr, sizeof g->addr, "127.0.0.1:%d", atoi(p));
    free(p);
}

static void start_gw(gw *g, const char *dir)
{
    start_gw_with(g, dir, NULL);
}

/* medwire-device @p name (files DIR/NAME.crt, .key) sending 3 observations, with @p extra (a
 * NULL-terminated list of options; NULL: --renew-before-days 30); its exit status, and its
 * standard error in DIR/NAME.err. */
static int device_with(const gw *g, const char *name, const char *const extra[])
{
    char ca[300], crt[300], key[300], err[300];
    snprintf(ca, sizeof ca, "%s/ca/ca.crt", g->dir);
    snprintf(crt, sizeof crt, "%s/%s.crt", g->dir, name);
    snprintf(key, sizeof key, "%s/%s.key", g->dir, name);
    snprintf(err, sizeof err, "%s/%s.err", g->dir, name);
    const char *argv[24] = {mwt_bin("medwire-device"),
                            "--gateway",
                            g->addr,
                            "--gateway-name",
                            "gateway",
                            "--ca",
                            ca,
                            "--cert",
                            crt,
                            "--key",
                            key,
                            "--count",
                            "3",
                            "--give-up-s",
                            "20",
                            "--renew-before-days",
                            "30"};
    if (extra != NULL) {
        size_t n = 15;
        for (size_t i = 0; extra[i] != NULL && n < 23; i++)
            argv[n++] = extra[i];
        argv[n] = NULL;
    }
    return mwt_run(argv, NULL, err, RUN_MS);
}

/* medwire-device @p name renewing with --renew-before-days 30. */
static int device(const gw *g, const char *name)
{
    return device_with(g, name, NULL);
}

/* What OpenSSL prints for `openssl CMD ARGS...` (one line of output), in @p out. */
static void openssl_says(char *out, size_t cap, const char *cmd, const char *a1, const char *a2,
                         const char *a3, const char *a4)
{
    char path[300];
    snprintf(path, sizeof path, "%s/openssl.out", mwt_tmpdir());
    const char *argv[] = {"/usr/bin/openssl", cmd, a1, a2, a3, a4, NULL};
    cr_assert_eq(mwt_run(argv, path, NULL, RUN_MS), 0, "openssl %s %s %s", cmd, a1, a2);
    char *t = mwt_read_file(path);
    cr_assert_not_null(t);
    snprintf(out, cap, "%s", t);
    free(t);
}

/* The certificate and key of @p name belong together and the certificate verifies; its serial
 * (OpenSSL's "serial=..." line) into @p serial. */
static void pair_is_sound(const gw *g, const char *name, char *serial, size_t cap)
{
    char crt[300], key[300], ca[300], a[600];
    snprintf(crt, sizeof crt, "%s/%s.crt", g->dir, name);
    snprintf(key, sizeof key, "%s/%s.key", g->dir, name);
    snprintf(ca, sizeof ca, "%s/ca/ca.crt", g->dir);
    openssl_says(a, sizeof a, "x509", "-in", crt, "-noout", "-pubkey");
    char pub[300];
    snprintf(pub, sizeof pub, "%s/%s.pub", g->dir, name);
    const char *pk[] = {"/usr/bin/openssl", "pkey", "-in", key, "-pubout", "-out", pub, NULL};
    run_ok(pk);
    char *kp = mwt_read_file(pub);
    cr_assert(kp && strcmp(kp, a) == 0, "%s: the certificate is for the key", name);
    free(kp);
    const char *v[] = {"/usr/bin/openssl", "verify", "-CAfile", ca, crt, NULL};
    run_ok(v);
    openssl_says(serial, cap, "x509", "-in", crt, "-noout", "-serial");
}

Test(device_renewal, a_device_inside_its_window_renews_and_its_next_start_uses_the_new_pair,
     .timeout = 180)
{
    char dir[256];
    snprintf(dir, sizeof dir, "%s", mwt_tmpdir());
    const char *names[] = {"dev-1", NULL};
    make_pki(dir, names);
    char crt[300], key[300], before[200], after[200], prev[320];
    snprintf(crt, sizeof crt, "%s/dev-1.crt", dir);
    snprintf(key, sizeof key, "%s/dev-1.key", dir);
    char *old_crt = mwt_read_file(crt), *old_key = mwt_read_file(key);
    gw g;
    start_gw(&g, dir);
    openssl_says(before, sizeof before, "x509", "-in", crt, "-noout", "-serial");
    cr_assert_eq(device(&g, "dev-1"), 0, "delivered and renewed");
    pair_is_sound(&g, "dev-1", after, sizeof after);
    cr_assert_str_neq(before, after, "a new certificate");
    snprintf(prev, sizeof prev, "%s.prev", crt);
    char *p = mwt_read_file(prev);
    cr_assert(p && old_crt && strcmp(p, old_crt) == 0, "the old certificate is kept");
    free(p);
    snprintf(prev, sizeof prev, "%s.prev", key);
    p = mwt_read_file(prev);
    cr_assert(p && old_key && strcmp(p, old_key) == 0, "the old key is kept");
    free(p);
    /* The audit names the new serial (OpenSSL says "serial=HEX\n"). */
    char hex[80];
    snprintf(hex, sizeof hex, "serial %.*s", (int)strcspn(after + 7, "\n"), after + 7);
    const char *renewed[] = {"\"event\":\"certificate_renewed\"", hex, NULL};
    cr_assert_eq(mwt_count_lines(g.audit, renewed), 1, "%s in the audit", hex);
    /* The next start uses the new pair, valid for a year: nothing more to renew. */
    cr_assert_eq(device(&g, "dev-1"), 0, "delivered with the new certificate");
    char err[300];
    snprintf(err, sizeof err, "%s/dev-1.err", dir);
    const char *asked[] = {"asking the gateway", NULL};
    cr_assert_eq(mwt_count_lines(err, asked), 0);
    cr_assert_eq(mwt_proc_stop(&g.proc, SIGTERM), 0);
    cr_assert_eq(mwt_count_lines(g.audit, renewed), 1, "renewed once");
    /* The store lists the new certificate and the one it replaced. */
    char was[80], now[80], want[200], rows[400];
    store_serial(before, was, sizeof was);
    store_serial(after, now, sizeof now);
    snprintf(want, sizeof want, "dev-1 %s %s", now, was);
    stored_certificates(&g, rows, sizeof rows);
    cr_assert_str_eq(rows, want);
    free(old_crt);
    free(old_key);
}

/* The hospital's CA elsewhere (--est-ca-cmd, here OpenSSL's x509 -req): the device is told
 * 5.03 with Max-Age while the command runs, asks again on its session, and renews. */
Test(device_renewal, a_device_renews_through_the_hospitals_ca_command_after_waiting_max_age,
     .timeout = 180)
{
    char dir[256];
    snprintf(dir, sizeof dir, "%s", mwt_tmpdir());
    const char *names[] = {"dev-1", NULL};
    make_pki(dir, names);
    char ext[300], cmd[1600], crt[300], before[200], after[200];
    snprintf(ext, sizeof ext, "%s/ext.cnf", dir);
    FILE *f = fopen(ext, "w");
    cr_assert_not_null(f);
    fputs("basicConstraints=critical,CA:FALSE\nextendedKeyUsage=clientAuth\n", f);
    cr_assert_eq(fclose(f), 0);
    snprintf(cmd, sizeof cmd,
             "/usr/bin/openssl x509 -req -CA '%s/ca/ca.crt' -CAkey '%s/ca/ca.key' "
             "-CAserial '%s/serial' -CAcreateserial -days 365 -extfile '%s'",
             dir, dir, dir, ext);
    snprintf(crt, sizeof crt, "%s/dev-1.crt", dir);
    openssl_says(before, sizeof before, "x509", "-in", crt, "-noout", "-serial");
    gw g;
    const char *issuer[] = {"--est-ca-cmd", cmd, "--est-retry-after", "1", NULL};
    start_gw_with(&g, dir, issuer);
    cr_assert_eq(device(&g, "dev-1"), 0, "delivered and renewed");
    pair_is_sound(&g, "dev-1", after, sizeof after);
    cr_assert_str_neq(before, after, "a new certificate");
    char hex[80];
    snprintf(hex, sizeof hex, "serial %.*s", (int)strcspn(after + 7, "\n"), after + 7);
    const char *renewed[] = {"\"event\":\"certificate_renewed\"", hex, "by the CA command", NULL};
    cr_assert_eq(mwt_count_lines(g.audit, renewed), 1, "%s in the audit", hex);
    cr_assert_eq(device(&g, "dev-1"), 0, "delivered with the new certificate");
    cr_assert_eq(mwt_proc_stop(&g.proc, SIGTERM), 0);
}

/* Whether the CRLs in the PEM files @p a and @p b are the same DER bytes (OpenSSL and cmp). */
static bool same_crl(const char *dir, const char *a, const char *b)
{
    char da[300], db[300];
    snprintf(da, sizeof da, "%s/a.der", dir);
    snprintf(db, sizeof db, "%s/b.der", dir);
    const char *ca[] = {"/usr/bin/openssl", "crl", "-in", a, "-outform", "DER", "-out", da, NULL};
    const char *cb[] = {"/usr/bin/openssl", "crl", "-in", b, "-outform", "DER", "-out", db, NULL};
    run_ok(ca);
    run_ok(cb);
    const char *cmp[] = {"/usr/bin/cmp", "-s", da, db, NULL};
    return mwt_run(cmp, NULL, NULL, RUN_MS) == 0;
}

/* --crl-refresh-s: the device takes the gateway's newer CRL, keeps it in its --crl file for the
 * next start, and leaves a gateway the CA has revoked. */
/* @req IEC62443-CR2.1 */
Test(device_renewal, a_device_keeps_the_gateways_newer_crl_and_leaves_a_revoked_gateway,
     .timeout = 180)
{
    char dir[256];
    snprintf(dir, sizeof dir, "%s", mwt_tmpdir());
    const char *names[] = {"dev-1", "dev-2", NULL};
    make_pki(dir, names);
    char ca[300], crl[300], mine[300], err[300];
    snprintf(ca, sizeof ca, "%s/ca", dir);
    snprintf(crl, sizeof crl, "%s/ca/crl.pem", dir);
    snprintf(mine, sizeof mine, "%s/dev-1-crl.pem", dir);
    snprintf(err, sizeof err, "%s/dev-1.err", dir);
    const char *pki = mwt_bin("medwire-pki");
    const char *mk[] = {pki, "crl", "--ca", ca, NULL};
    run_ok(mk);
    char *first = mwt_read_file(crl);
    cr_assert_not_null(first);
    FILE *f = fopen(mine, "w");
    cr_assert_not_null(f);
    fputs(first, f);
    cr_assert_eq(fclose(f), 0);
    free(first);
    /* The CA revokes dev-2, in the next second (thisUpdate has whole seconds). */
    time_t t0 = time(NULL);
    while (time(NULL) == t0)
        mwt_sleep_ms(20);
    const char *rv2[] = {pki, "revoke", "--ca", ca, "--id", "dev-2", NULL};
    run_ok(rv2);
    gw g;
    const char *opts[] = {"--est-ca", ca, "--crl", crl, NULL};
    start_gw_with(&g, dir, opts);
    const char *fetch[] = {"--crl", mine, "--crl-refresh-s", "3600", NULL};
    cr_assert_eq(device_with(&g, "dev-1", fetch), 0, "delivered");
    cr_assert(same_crl(dir, crl, mine),
              "the gateway's newer CRL is kept in --crl for the next start");

    /* Then the gateway's own key is revoked, and the gateway given the CA's newest CRL. */
    cr_assert_eq(mwt_proc_stop(&g.proc, SIGTERM), 0);
    const char *rvg[] = {pki, "revoke", "--ca", ca, "--id", "gateway", NULL};
    run_ok(rvg);
    cr_assert_eq(unlink(g.port), 0, "the next gateway's port, not the last one's");
    start_gw_with(&g, dir, opts);
    cr_assert_eq(device_with(&g, "dev-1", fetch), 1, "a revoked gateway is an error");
    const char *said[] = {"revoked", NULL};
    cr_assert_geq(mwt_count_lines(err, said), 1, "the device says why");
    cr_assert(same_crl(dir, crl, mine), "the CRL that revokes the gateway is kept");
    /* The next start refuses that gateway at its first handshake, from the kept file alone. */
    const char *kept[] = {"--crl", mine, NULL};
    cr_assert_eq(device_with(&g, "dev-1", kept), 1);
    cr_assert_eq(mwt_proc_stop(&g.proc, SIGTERM), 0);
}

/* MW_DEVICE_CRASH_AFTER stops medwire-device right after a step, as a power cut would. */
Test(device_renewal, a_power_cut_at_each_step_leaves_a_device_that_connects_with_a_sound_pair,
     .timeout = 300)
{
    static const char *const steps[] = {"key", "cert", "prev", "rename"};
    const char *names[] = {"dev-key", "dev-cert", "dev-prev", "dev-rename", NULL};
    char dir[256];
    snprintf(dir, sizeof dir, "%s", mwt_tmpdir());
    make_pki(dir, names);
    gw g;
    start_gw(&g, dir);
    for (size_t i = 0; i < 4; i++) {
        char before[200], after[200];
        char crt[300];
        snprintf(crt, sizeof crt, "%s/%s.crt", dir, names[i]);
        openssl_says(before, sizeof before, "x509", "-in", crt, "-noout", "-serial");
        cr_assert_eq(setenv("MW_DEVICE_CRASH_AFTER", steps[i], 1), 0);
        cr_assert_eq(device(&g, names[i]), 9, "%s: cut after '%s'", names[i], steps[i]);
        cr_assert_eq(unsetenv("MW_DEVICE_CRASH_AFTER"), 0);
        cr_assert_eq(device(&g, names[i]), 0, "%s: the next start connects and delivers", names[i]);
        pair_is_sound(&g, names[i], after, sizeof after);
        cr_assert_str_neq(before, after, "%s: the renewal went through", names[i]);
    }
    cr_assert_eq(mwt_proc_stop(&g.proc, SIGTERM), 0);
    /* One certificate per device: a cut never made the gateway issue twice for a name. */
    const char *issued[] = {"\"event\":\"certificate_renewed\"", NULL};
    cr_assert_eq(mwt_count_lines(g.audit, issued), 4, "one renewal per device");
}
