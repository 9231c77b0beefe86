/* SPDX-License-Identifier: Apache-2.0 */
/* test_renewal.c -- mw_client_renew: a device's certificate request goes to the gateway over its
 * own session (EST simple re-enroll), through the gateway's checks to its issuer, and the
 * certificate comes back; again after a lost link, once; refusals come back with their code; the
 * gateway's store lists each certificate before the device has it. */
#define _GNU_SOURCE /* strptime, timegm */
#include <criterion/criterion.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "harness.h"

#include "support/proc.h"

/* What the gateway's issuer saw, and what it answers: MW_EAGAIN (not decided) to its first
 * @c pending calls, as a CA that answers later does. */
static struct {
    int calls, pending;
    const mwt_clock *clk; /* the harness's */
    uint64_t at_ms[8];    /* when each call came, on it */
    char device[MW_ID_MAX + 1];
    uint8_t csr[2048], cert[2048], answer[2048];
    size_t csr_len, cert_len, answer_len;
} issuer;

/* What the device was told. */
static struct {
    int calls;
    mw_err e;
    uint8_t cert[2048];
    size_t cert_len;
    char reason[200];
} told;

static mw_err issue(void *ctx, const mw_est_request_t *req, uint8_t *out, size_t cap,
                    size_t *out_len, char *reason, size_t reason_cap)
{
    (void)ctx;
    const mwt_clock *clk = issuer.clk;
    if (clk != NULL && issuer.calls < 8)
        issuer.at_ms[issuer.calls] = clk->now_ms;
    issuer.calls++;
    if (issuer.calls <= issuer.pending) {
        snprintf(reason, reason_cap, "with the CA");
        return MW_EAGAIN;
    }
    snprintf(issuer.device, sizeof issuer.device, "%s", req->device_id);
    cr_assert_leq(req->csr_len, sizeof issuer.csr);
    memcpy(issuer.csr, req->csr, req->csr_len);
    issuer.csr_len = req->csr_len;
    memcpy(issuer.cert, req->cert, req->cert_len);
    issuer.cert_len = req->cert_len;
    cr_assert_leq(issuer.answer_len, cap);
    memcpy(out, issuer.answer, issuer.answer_len);
    *out_len = issuer.answer_len;
    snprintf(reason, reason_cap, "issued by the test");
    return MW_OK;
}

static void with_issuer(mw_gateway_config_t *cfg)
{
    cfg->est_issue = issue;
}

static void on_renewal(void *ctx, mw_err e, const uint8_t *cert, size_t len, const char *reason)
{
    (void)ctx;
    told.calls++;
    told.e = e;
    cr_assert_leq(len, sizeof told.cert);
    if (len)
        memcpy(told.cert, cert, len);
    told.cert_len = len;
    snprintf(told.reason, sizeof told.reason, "%s", reason ? reason : "(null)");
}

static bool answered(mwt_h *h, void *arg)
{
    (void)h;
    (void)arg;
    return told.calls > 0;
}

/* The DER of @p pem_file (a certificate, or with @p req a request), by OpenSSL, into @p out. */
static size_t openssl_der(const char *kind, const char *pem_file, uint8_t *out, size_t cap)
{
    char der[300];
    snprintf(der, sizeof der, "%s/out.der", mwt_tmpdir());
    const char *argv[] = {
        "/usr/bin/openssl", kind, "-in", pem_file, "-outform", "DER", "-out", der, NULL};
    cr_assert_eq(mwt_run(argv, NULL, NULL, 30000), 0, "openssl %s", kind);
    size_t n = mwt_read_bytes(der, out, cap);
    cr_assert_gt(n, 0u, "%s", der);
    return n;
}

/* A new key's request for @p cn, DER, into @p out. */
static size_t make_csr(const char *cn, uint8_t *out, size_t cap)
{
    char dir[256], key[300], csr[300], subj[120];
    snprintf(dir, sizeof dir, "%s", mwt_tmpdir());
    snprintf(key, sizeof key, "%s/new.key", dir);
    snprintf(csr, sizeof csr, "%s/new.csr", dir);
    snprintf(subj, sizeof subj, "/O=medwire/CN=%s", cn);
    const char *gen[] = {"/usr/bin/openssl", "ecparam", "-name", "prime256v1", "-genkey",
                         "-noout",           "-out",    key,     NULL};
    const char *req[] = {
        "/usr/bin/openssl", "req", "-new", "-key", key, "-subj", subj, "-out", csr, NULL};
    cr_assert_eq(mwt_run(gen, NULL, NULL, 30000), 0);
    cr_assert_eq(mwt_run(req, NULL, NULL, 30000), 0);
    return openssl_der("req", csr, out, cap);
}

static mw_client_t *device(mwt_h *h)
{
    mw_client_config_t q;
    mw_client_config_init(&q);
    q.on_renewal = on_renewal;
    mw_err e;
    mw_client_t *c = mwt_h_client_with(h, "dev-1", "gateway", &q, &e);
    cr_assert_not_null(c, "%s", mw_strerror(e));
    return c;
}

static void setup(void)
{
    memset(&issuer, 0, sizeof issuer);
    memset(&told, 0, sizeof told);
}

TestSuite(renewal, .init = setup);

Test(renewal, the_request_goes_over_the_session_to_the_issuer_and_the_certificate_comes_back,
     .timeout = 120)
{
    mwt_h h;
    mwt_h_init_tuned(&h, 11, with_issuer);
    /* The issuer answers with some certificate: what it is, is the issuer's business. */
    issuer.answer_len =
        openssl_der("x509", mwt_pki_crt(&h.pki, "dev-2"), issuer.answer, sizeof issuer.answer);
    mw_client_t *c = device(&h);
    uint8_t csr[1024];
    size_t n = make_csr("dev-1", csr, sizeof csr);
    mwt_send_obs(c, 5, 0);
    cr_assert_eq(mw_client_renew(c, csr, n), MW_OK);
    cr_assert(mwt_h_run(&h, answered, NULL, 60000));
    cr_assert_eq(told.calls, 1);
    cr_assert_eq(told.e, MW_OK, "%s", told.reason);
    cr_assert(told.cert_len == issuer.answer_len &&
                  memcmp(told.cert, issuer.answer, told.cert_len) == 0,
              "the issuer's certificate");
    mw_client_stats_t st;
    mw_client_stats(c, &st);
    cr_assert_eq(st.renewals, 1u);
    cr_assert_gt(st.last_renewal_ms, 0u, "the harness's device has a wall clock");
    cr_assert_eq(issuer.calls, 1);
    cr_assert_str_eq(issuer.device, "dev-1");
    cr_assert(issuer.csr_len == n && memcmp(issuer.csr, csr, n) == 0, "the request as sent");
    uint8_t mine[2048];
    size_t ml = openssl_der("x509", mwt_pki_crt(&h.pki, "dev-1"), mine, sizeof mine);
    cr_assert(issuer.cert_len == ml && memcmp(issuer.cert, mine, ml) == 0,
              "the issuer sees the certificate the session was made with");
    cr_assert(mwt_h_drain(&h, 60000));
    cr_assert_eq(mwt_h_count(&h, "dev-1"), 5, "the messages went on beside it");
    cr_assert_not_null(mwt_h_audit_find(&h, MW_AUDIT_CERT_RENEWED, MW_OK));
    mwt_h_fini(&h);
}

Test(renewal, a_request_lost_with_its_link_goes_again_on_the_next_session_and_is_answered_once,
     .timeout = 300)
{
    mwt_h h;
    mwt_h_init_tuned(&h, 12, with_issuer);
    issuer.answer_len =
        openssl_der("x509", mwt_pki_crt(&h.pki, "dev-2"), issuer.answer, sizeof issuer.answer);
    mw_client_t *c = device(&h);
    mwt_send_obs(c, 1, 0);
    cr_assert(mwt_h_drain(&h, 60000), "connected and delivered");
    uint8_t csr[1024];
    size_t n = make_csr("dev-1", csr, sizeof csr);
    mwt_net_set_faults(h.net, 1.0, 0, 0); /* everything lost: CoAP gives up, the link drops */
    cr_assert_eq(mw_client_renew(c, csr, n), MW_OK);
    mw_client_stats_t st;
    for (int i = 0; i < 200; i++) {
        mw_client_stats(c, &st);
        if (st.requests_sent > 1 && !st.connected)
            break;
        (void)mwt_h_run(&h, answered, NULL, 1000);
    }
    cr_assert_not(st.connected, "the link was given up");
    cr_assert_eq(told.calls, 0);
    mwt_net_set_faults(h.net, 0, 0, 0);
    cr_assert(mwt_h_run(&h, answered, NULL, 300000), "answered on a new session");
    cr_assert_eq(told.calls, 1);
    cr_assert_eq(told.e, MW_OK, "%s", told.reason);
    cr_assert(mwt_h_drain(&h, 60000));
    cr_assert_eq(told.calls, 1, "answered once");
    mwt_h_fini(&h);
}

static void with_slow_issuer(mw_gateway_config_t *cfg)
{
    cfg->est_issue = issue;
    cfg->est_retry_after_s = 30;
}

Test(renewal, a_request_the_ca_has_not_decided_goes_again_after_max_age_and_is_answered_once,
     .timeout = 120)
{
    mwt_h h;
    mwt_h_init_tuned(&h, 16, with_slow_issuer);
    issuer.clk = &h.clk;
    issuer.pending = 2;
    issuer.answer_len =
        openssl_der("x509", mwt_pki_crt(&h.pki, "dev-2"), issuer.answer, sizeof issuer.answer);
    mw_client_t *c = device(&h);
    uint8_t csr[1024];
    size_t n = make_csr("dev-1", csr, sizeof csr);
    cr_assert_eq(mw_client_renew(c, csr, n), MW_OK);
    cr_assert(mwt_h_run(&h, answered, NULL, 300000));
    cr_assert_eq(told.calls, 1, "a 5.03 is not an answer: told once, at the end");
    cr_assert_eq(told.e, MW_OK, "%s", told.reason);
    cr_assert_eq(issuer.calls, 3, "asked while the CA had not decided, and once after");
    cr_assert(issuer.csr_len == n && memcmp(issuer.csr, csr, n) == 0, "the same request");
    for (int i = 1; i < 3; i++) {
        uint64_t gap = issuer.at_ms[i] - issuer.at_ms[i - 1];
        cr_assert(gap >= 30000 && gap < 35000, "asked again after Max-Age 30 s, not %llu ms",
                  (unsigned long long)gap);
    }
    mw_client_stats_t st;
    mw_client_stats(c, &st);
    cr_assert_eq(st.renewals, 1u);
    cr_assert_null(mwt_h_audit_find(&h, MW_AUDIT_RENEWAL_REFUSED, MW_EAGAIN),
                   "not decided is not refused");
    cr_assert_not_null(mwt_h_audit_find(&h, MW_AUDIT_CERT_RENEWED, MW_OK));
    mwt_h_fini(&h);
}

Test(renewal, a_refused_request_comes_back_with_the_gateways_code_and_reason, .timeout = 120)
{
    mwt_h h;
    mwt_h_init_tuned(&h, 13, with_issuer);
    mw_client_t *c = device(&h);
    uint8_t csr[1024];
    size_t n = make_csr("dev-2", csr, sizeof csr);
    cr_assert_eq(mw_client_renew(c, csr, n), MW_OK);
    cr_assert(mwt_h_run(&h, answered, NULL, 60000));
    cr_assert_eq(told.e, MW_ECOAP_RESPONSE);
    cr_assert(strstr(told.reason, "4.03") && strstr(told.reason, "'dev-2'"), "%s", told.reason);
    cr_assert_eq(told.cert_len, 0u);
    cr_assert_eq(issuer.calls, 0, "the issuer never saw it");
    mw_client_stats_t st;
    mw_client_stats(c, &st);
    cr_assert_eq(st.renewals, 0u, "a refusal is no renewal");
    cr_assert_not_null(mwt_h_audit_find(&h, MW_AUDIT_RENEWAL_REFUSED, MW_EIDENTITY));
    mwt_h_fini(&h);
}

Test(renewal, a_gateway_without_an_issuer_answers_4_04, .timeout = 120)
{
    mwt_h h;
    mwt_h_init(&h, 14);
    mw_client_t *c = device(&h);
    uint8_t csr[1024];
    size_t n = make_csr("dev-1", csr, sizeof csr);
    cr_assert_eq(mw_client_renew(c, csr, n), MW_OK);
    cr_assert(mwt_h_run(&h, answered, NULL, 60000));
    cr_assert_eq(told.e, MW_ECOAP_RESPONSE);
    cr_assert(strstr(told.reason, "4.04"), "%s", told.reason);
    mwt_h_fini(&h);
}

Test(renewal, one_request_at_a_time_and_only_with_somewhere_to_answer, .timeout = 60)
{
    mwt_h h;
    mwt_h_init(&h, 15);
    mw_err e;
    mw_client_t *plain = mwt_h_client(&h, "dev-2", "gateway", &e);
    cr_assert_not_null(plain);
    uint8_t csr[MW_CSR_MAX + 1];
    memset(csr, 0x30, sizeof csr);
    cr_assert_eq(mw_client_renew(plain, csr, 100), MW_EINVAL, "no on_renewal");
    mw_client_t *c = device(&h);
    cr_assert_eq(mw_client_renew(c, csr, 0), MW_EINVAL);
    cr_assert_eq(mw_client_renew(c, csr, sizeof csr), MW_ETOOBIG);
    cr_assert_eq(mw_client_renew(c, csr, 100), MW_OK);
    cr_assert_eq(mw_client_renew(c, csr, 100), MW_EAGAIN, "one waits for its answer already");
    mwt_h_fini(&h);
}

static char store_path[300];

static void with_issuer_and_store(mw_gateway_config_t *cfg)
{
    cfg->est_issue = issue;
    snprintf(store_path, sizeof store_path, "%s/store.db", mwt_tmpdir());
    cfg->store_path = store_path;
}

/* What OpenSSL says of @p pem_file: "serial=HEX" or "notAfter=DATE" (@p what: -serial or
 * -enddate), the value in @p out. */
static void openssl_field(const char *pem_file, const char *what, char *out, size_t cap)
{
    char path[300], text[200] = "";
    snprintf(path, sizeof path, "%s/field.txt", mwt_tmpdir());
    const char *argv[] = {"/usr/bin/openssl", "x509", "-in", pem_file, "-noout", what, NULL};
    cr_assert_eq(mwt_run(argv, path, NULL, 30000), 0, "openssl x509 %s", what);
    FILE *f = fopen(path, "r");
    cr_assert_not_null(f);
    size_t got = fread(text, 1, sizeof text - 1, f);
    fclose(f);
    text[got] = '\0';
    const char *eq = strchr(text, '=');
    cr_assert_not_null(eq, "%s", text);
    snprintf(out, cap, "%.*s", (int)strcspn(eq + 1, "\n"), eq + 1);
}

static void sql(sqlite3 *db, const char *stmt)
{
    char *err = NULL;
    cr_assert_eq(sqlite3_exec(db, stmt, NULL, NULL, &err), SQLITE_OK, "%s: %s", stmt,
                 err ? err : "");
}

/* The store's rows of issued certificates, for @p device: their count, and the last one's
 * serial, replaced serial, notAfter and certificate. */
typedef struct stored_cert {
    int rows;
    char serial[64], replaces[64];
    int64_t not_after;
    uint8_t der[2048];
    size_t len;
} stored_cert;

static stored_cert read_certs(const char *device)
{
    stored_cert out;
    memset(&out, 0, sizeof out);
    sqlite3 *db = NULL;
    cr_assert_eq(sqlite3_open_v2(store_path, &db, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
    sqlite3_stmt *st = NULL;
    cr_assert_eq(sqlite3_prepare_v2(db,
                                    "SELECT serial, replaces, not_after, cert FROM certificates"
                                    " WHERE device = ?1",
                                    -1, &st, NULL),
                 SQLITE_OK, "%s", sqlite3_errmsg(db));
    sqlite3_bind_text(st, 1, device, -1, SQLITE_STATIC);
    while (sqlite3_step(st) == SQLITE_ROW) {
        out.rows++;
        snprintf(out.serial, sizeof out.serial, "%s", (const char *)sqlite3_column_text(st, 0));
        snprintf(out.replaces, sizeof out.replaces, "%s", (const char *)sqlite3_column_text(st, 1));
        out.not_after = sqlite3_column_int64(st, 2);
        out.len = (size_t)sqlite3_column_bytes(st, 3);
        cr_assert_leq(out.len, sizeof out.der);
        memcpy(out.der, sqlite3_column_blob(st, 3), out.len);
    }
    sqlite3_finalize(st);
    sqlite3_close(db);
    return out;
}

/* OpenSSL's serial (uppercase hex) as the store writes it. */
static void lower(char *s)
{
    for (; *s; s++)
        if (*s >= 'A' && *s <= 'F')
            *s = (char)(*s - 'A' + 'a');
}

/* @req IEC62443-CR1.8 */
Test(renewal, the_store_lists_each_issued_certificate_with_the_one_it_replaces, .timeout = 120)
{
    mwt_h h;
    mwt_h_init_tuned(&h, 16, with_issuer_and_store);
    const char *issued = mwt_pki_crt(&h.pki, "dev-2");
    issuer.answer_len = openssl_der("x509", issued, issuer.answer, sizeof issuer.answer);
    mw_client_t *c = device(&h);
    uint8_t csr[1024];
    size_t n = make_csr("dev-1", csr, sizeof csr);
    cr_assert_eq(mw_client_renew(c, csr, n), MW_OK);
    cr_assert(mwt_h_run(&h, answered, NULL, 60000));
    cr_assert_eq(told.e, MW_OK, "%s", told.reason);
    mwt_h_fini(&h); /* the store's file is whole once the gateway is gone */
    stored_cert got = read_certs("dev-1");
    cr_assert_eq(got.rows, 1);
    char serial[64], replaces[64], until[64];
    openssl_field(issued, "-serial", serial, sizeof serial);
    openssl_field(mwt_pki_crt(&h.pki, "dev-1"), "-serial", replaces, sizeof replaces);
    openssl_field(issued, "-enddate", until, sizeof until);
    lower(serial);
    lower(replaces);
    cr_assert_str_eq(got.serial, serial);
    cr_assert_str_eq(got.replaces, replaces, "the certificate the session was made with");
    struct tm tm;
    memset(&tm, 0, sizeof tm);
    cr_assert_not_null(strptime(until, "%b %d %H:%M:%S %Y GMT", &tm), "%s", until);
    cr_assert_eq(got.not_after, (int64_t)timegm(&tm), "notAfter %s", until);
    cr_assert(got.len == issuer.answer_len && memcmp(got.der, issuer.answer, got.len) == 0,
              "the certificate as issued");
}

/* The answer that carries a certificate leaves with the store's commit: a store that cannot
 * record it keeps it from the device, which asks again and gets it once the store can. */
/* @req IEC62443-CR1.8 */
Test(renewal, a_certificate_the_store_cannot_record_is_not_sent, .timeout = 300)
{
    mwt_h h;
    mwt_h_init_tuned(&h, 17, with_issuer_and_store);
    issuer.answer_len =
        openssl_der("x509", mwt_pki_crt(&h.pki, "dev-2"), issuer.answer, sizeof issuer.answer);
    sqlite3 *db = NULL;
    cr_assert_eq(sqlite3_open_v2(store_path, &db, SQLITE_OPEN_READWRITE, NULL), SQLITE_OK);
    sql(db, "CREATE TRIGGER full BEFORE INSERT ON certificates"
            " BEGIN SELECT RAISE(FAIL, 'disk full'); END");
    mw_client_t *c = device(&h);
    uint8_t csr[1024];
    size_t n = make_csr("dev-1", csr, sizeof csr);
    cr_assert_eq(mw_client_renew(c, csr, n), MW_OK);
    cr_assert_not(mwt_h_run(&h, answered, NULL, 20000), "%s", told.reason);
    cr_assert_geq(issuer.calls, 2, "the device asked again, and the gateway issued again");
    const mwt_audit_line *a = mwt_h_audit_find(&h, MW_AUDIT_RENEWAL_REFUSED, MW_EIO);
    cr_assert_not_null(a);
    cr_assert(strstr(a->reason, "the store cannot record it"), "%s", a->reason);
    cr_assert_not_null(mwt_h_audit_find(&h, MW_AUDIT_STORE_FAILED, MW_EIO));
    sql(db, "DROP TRIGGER full");
    sqlite3_close(db);
    cr_assert(mwt_h_run(&h, answered, NULL, 120000));
    cr_assert_eq(told.e, MW_OK, "%s", told.reason);
    mwt_h_fini(&h);
    cr_assert_eq(read_certs("dev-1").rows, 1);
}
