/* SPDX-License-Identifier: Apache-2.0 */
/* test_operations.c -- running the gateway: metrics, logs, credentials reloaded on SIGHUP, drain on
 * SIGTERM; in memory under the fake clock and with the real programs on loopback. */
#define _GNU_SOURCE /* strptime, timegm */
#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "harness.h"
#include "support/pki.h"
#include "support/proc.h"

/* ---------------------------------------------------------------------------------------------
 * In memory, under the fake clock
 * ------------------------------------------------------------------------------------------- */

#define COMMIT_COST_MS 3u

/* A sink whose commit takes exactly COMMIT_COST_MS of the fake clock. */
static mw_err slow_commit(void *ctx, uint64_t *out_checkpoint)
{
    mwt_h *h = ctx;
    mwt_clock_advance(&h->clk, COMMIT_COST_MS);
    *out_checkpoint = 0;
    return MW_OK;
}

static void audit_into(void *ctx, const mw_audit_event_t *ev)
{
    mwt_h *h = ctx;
    if (h->naudit == MWT_MAX_AUDIT)
        return;
    mwt_audit_line *l = &h->audit[h->naudit++];
    snprintf(l->event, sizeof l->event, "%s", ev->event);
    snprintf(l->device, sizeof l->device, "%s", ev->device);
    snprintf(l->reason, sizeof l->reason, "%s", ev->reason);
    l->err = ev->err;
    l->foreign = ev->foreign;
}

/* Replaces the harness's gateway with one whose sink commit is slow_commit. */
static void slow_gateway(mwt_h *h)
{
    mw_gateway_destroy(&h->gw);
    mw_gateway_config_t cfg;
    mw_gateway_config_init(&cfg);
    cfg.ca_file = mwt_pki_ca(&h->pki);
    cfg.cert_file = mwt_pki_crt(&h->pki, "gateway");
    cfg.key_file = mwt_pki_key(&h->pki, "gateway");
    cfg.transport = h->gw_tp;
    cfg.clock = mwt_clock_table(&h->clk);
    cfg.sink = h->sink_fn;
    cfg.sink_ctx = h;
    cfg.sink_commit = slow_commit;
    cfg.audit = audit_into;
    cfg.audit_ctx = h;
    mw_error_detail_t d;
    cr_assert_eq(mw_gateway_create(&cfg, &h->gw, &d), MW_OK, "gateway: %s", d.reason);
}

Test(operations, store_commit_latency_is_timed_with_the_gateways_clock, .timeout = 120)
{
    mwt_h h;
    mwt_h_init(&h, 61);
    slow_gateway(&h);
    mw_err e;
    mw_client_t *c = mwt_h_client(&h, "dev-1", "gateway", &e);
    cr_assert_not_null(c, "client: %s", mw_strerror(e));
    mwt_send_obs(c, 5, 90);
    cr_assert(mwt_h_drain(&h, 60000));
    mw_gateway_stats_t st;
    mw_gateway_stats(h.gw, &st);
    cr_assert_eq(st.messages_delivered, 5);
    cr_assert_geq(st.commits, 1);
    cr_assert_eq(st.commit_us_sum, st.commits * COMMIT_COST_MS * 1000u,
                 "every commit took exactly %u ms of the injected clock", COMMIT_COST_MS);
    /* 3 ms falls in the bucket above 2.5 ms and at most 5 ms (index 5). */
    static const uint64_t bounds[] = MW_GATEWAY_COMMIT_BOUNDS_US;
    cr_assert_eq(bounds[4], 2500);
    cr_assert_eq(bounds[5], 5000);
    uint64_t total = 0;
    for (int i = 0; i < MW_GATEWAY_COMMIT_BUCKETS; i++)
        total += st.commit_us_buckets[i];
    cr_assert_eq(total, st.commits);
    cr_assert_eq(st.commit_us_buckets[5], st.commits);
    mwt_h_fini(&h);
}

static bool failed_twice(mwt_h *h, void *arg)
{
    (void)arg;
    mw_gateway_stats_t st;
    mw_gateway_stats(h->gw, &st);
    return st.handshakes_failed >= 2;
}

Test(operations, refused_handshakes_are_counted_by_reason, .timeout = 120)
{
    mwt_h h;
    mwt_h_init(&h, 62);
    mw_err e;
    cr_assert_not_null(mwt_h_client(&h, "expired", "gateway", &e));
    cr_assert_not_null(mwt_h_client(&h, "alien", "gateway", &e));
    cr_assert(mwt_h_run(&h, failed_twice, NULL, 120000));
    mw_gateway_stats_t st;
    mw_gateway_stats(h.gw, &st);
    cr_assert_eq(st.handshakes_failed, 2);
    cr_assert_eq(st.handshake_failures_by_reason[MW_GATEWAY_HSR_EXPIRED], 1);
    cr_assert_eq(st.handshake_failures_by_reason[MW_GATEWAY_HSR_UNTRUSTED], 1);
    uint64_t sum = 0;
    for (int i = 0; i < MW_GATEWAY_HSR_COUNT; i++)
        sum += st.handshake_failures_by_reason[i];
    cr_assert_eq(sum, st.handshakes_failed, "each failure counted once, under one reason");
    cr_assert_str_eq(mw_gateway_hs_reason_name(MW_GATEWAY_HSR_EXPIRED), "certificate_expired");
    cr_assert_str_eq(mw_gateway_hs_reason_name((mw_gateway_hs_reason)99), "other");
    mwt_h_fini(&h);
}

/* Issues a gateway certificate with common name @p id and puts it (and its key) in place of
 * @p pki's gateway certificate, each file replaced whole by rename. */
static void replace_gateway_cert(const mwt_pki *pki, const char *id)
{
    char ca[300], dir[300], from[400], to[400];
    snprintf(ca, sizeof ca, "%s/ca", pki->dir);
    snprintf(dir, sizeof dir, "%s/next-%s", pki->dir, id);
    const char *argv[] = {mwt_bin("medwire-pki"), "issue", "--ca", ca, "--role", "gateway",
                          "--id", id, "--out", dir, NULL};
    cr_assert_eq(mwt_run(argv, NULL, NULL, 30000), 0, "medwire-pki issue %s", id);
    snprintf(from, sizeof from, "%s/%s.crt", dir, id);
    snprintf(to, sizeof to, "%s", mwt_pki_crt(pki, "gateway"));
    cr_assert_eq(rename(from, to), 0);
    snprintf(from, sizeof from, "%s/%s.key", dir, id);
    snprintf(to, sizeof to, "%s", mwt_pki_key(pki, "gateway"));
    cr_assert_eq(rename(from, to), 0);
}

static void write_text(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    cr_assert_not_null(f, "%s", path);
    fputs(text, f);
    cr_assert_eq(fclose(f), 0);
}

static bool client_settled(mwt_h *h, void *arg)
{
    (void)h;
    mw_client_t *c = arg;
    mw_error_detail_t d;
    mw_client_last_error(c, &d);
    return mw_client_pending(c) == 0 || d.err != MW_OK;
}

Test(operations, reloaded_credentials_serve_new_handshakes_and_spare_established_sessions,
     .timeout = 180)
{
    mwt_pki pki;
    cr_assert(mwt_pki_make(&pki));
    cr_assert(mwt_pki_device(&pki, "dev-4"));
    mwt_h h;
    mwt_h_init_crl(&h, 63, &pki, NULL);
    mw_err e;
    mw_client_t *c1 = mwt_h_client(&h, "dev-1", "gateway", &e);
    cr_assert_not_null(c1);
    mwt_send_obs(c1, 3, 90);
    cr_assert(mwt_h_drain(&h, 60000));

    replace_gateway_cert(&pki, "gateway-b");
    mw_error_detail_t d;
    cr_assert_eq(mw_gateway_reload_credentials(h.gw, &d), MW_OK, "%s", d.reason);
    cr_assert_not_null(mwt_h_audit_find(&h, MW_AUDIT_CREDENTIALS_RELOADED, MW_OK));

    /* The established session carries on: no new handshake. */
    mwt_send_obs(c1, 3, 93);
    cr_assert(mwt_h_drain(&h, 60000));
    mw_gateway_stats_t st;
    mw_gateway_stats(h.gw, &st);
    cr_assert_eq(mwt_h_count(&h, "dev-1"), 6);
    cr_assert_eq(st.handshakes_completed, 1, "the established session was not redone");
    cr_assert_eq(st.sessions, 1);
    cr_assert_eq(st.credential_reloads, 1);

    /* A new handshake gets the new certificate: a device expecting the old name refuses it,
     * one expecting the new name is served. */
    mw_client_t *c2 = mwt_h_client(&h, "dev-2", "gateway-b", &e);
    mw_client_t *c3 = mwt_h_client(&h, "dev-3", "gateway", &e);
    cr_assert(c2 && c3);
    mwt_send_obs(c2, 2, 90);
    mwt_send_obs(c3, 2, 90);
    cr_assert(mwt_h_run(&h, client_settled, c2, 60000));
    cr_assert(mwt_h_run(&h, client_settled, c3, 60000));
    cr_assert_eq(mwt_h_count(&h, "dev-2"), 2, "served with the new certificate");
    cr_assert_eq(mwt_h_count(&h, "dev-3"), 0);
    mw_client_last_error(c3, &d);
    cr_assert_eq(d.err, MW_ECERT_NAME, "the new certificate carries the new name: %s", d.reason);

    /* A bad file keeps the credentials in force. */
    write_text(mwt_pki_crt(&pki, "gateway"), "-----BEGIN CERTIFICATE-----\nnot base64\n");
    cr_assert_eq(mw_gateway_reload_credentials(h.gw, &d), MW_ECERT_LOAD);
    cr_assert(strstr(d.reason, "gateway.crt") != NULL, "the reason names the file: %s", d.reason);
    cr_assert_not_null(mwt_h_audit_find(&h, MW_AUDIT_CREDENTIALS_RELOAD_FAILED, MW_ECERT_LOAD));
    mw_client_t *c4 = mwt_h_client(&h, "dev-4", "gateway-b", &e);
    cr_assert_not_null(c4);
    mwt_send_obs(c4, 2, 90);
    cr_assert(mwt_h_run(&h, client_settled, c4, 60000));
    cr_assert_eq(mwt_h_count(&h, "dev-4"), 2, "still served with the certificate in force");
    mwt_send_obs(c1, 1, 96);
    cr_assert(mwt_h_run(&h, client_settled, c1, 60000));
    cr_assert_eq(mwt_h_count(&h, "dev-1"), 7);
    mw_gateway_stats(h.gw, &st);
    cr_assert_eq(st.credential_reloads, 1);
    cr_assert_eq(st.credential_reload_failures, 1);
    mwt_h_fini(&h);
}

Test(operations, a_reload_closes_only_sessions_the_new_crl_revokes, .timeout = 180)
{
    mwt_pki pki;
    cr_assert(mwt_pki_make(&pki));
    char ca[300], crl[300];
    snprintf(ca, sizeof ca, "%s/ca", pki.dir);
    snprintf(crl, sizeof crl, "%s/ca/crl.pem", pki.dir);
    const char *mkcrl[] = {mwt_bin("medwire-pki"), "crl", "--ca", ca, NULL};
    cr_assert_eq(mwt_run(mkcrl, NULL, NULL, 30000), 0);
    mwt_h h;
    mwt_h_init_crl(&h, 64, &pki, crl);
    mw_err e;
    mw_client_t *c1 = mwt_h_client(&h, "dev-1", "gateway", &e);
    mw_client_t *c2 = mwt_h_client(&h, "dev-2", "gateway", &e);
    cr_assert(c1 && c2);
    mwt_send_obs(c1, 2, 90);
    mwt_send_obs(c2, 2, 90);
    cr_assert(mwt_h_drain(&h, 60000));
    const char *rev[] = {mwt_bin("medwire-pki"), "revoke", "--ca", ca, "--id", "dev-2", NULL};
    cr_assert_eq(mwt_run(rev, NULL, NULL, 30000), 0);
    mw_error_detail_t d;
    cr_assert_eq(mw_gateway_reload_credentials(h.gw, &d), MW_OK, "%s", d.reason);
    mw_gateway_stats_t st;
    mw_gateway_stats(h.gw, &st);
    cr_assert_eq(st.sessions, 1, "dev-2's session closed, dev-1's kept (sessions %llu, closed %llu)",
                 (unsigned long long)st.sessions, (unsigned long long)st.sessions_invalidated);
    cr_assert_eq(st.sessions_invalidated, 1);
    mwt_send_obs(c1, 2, 92);
    cr_assert(mwt_h_run(&h, client_settled, c1, 60000));
    cr_assert_eq(mwt_h_count(&h, "dev-1"), 4);
    mw_gateway_stats(h.gw, &st);
    cr_assert_eq(st.handshakes_completed, 2, "dev-1 carried on without a new handshake");
    mwt_h_fini(&h);
}

/* ---------------------------------------------------------------------------------------------
 * The real programs on loopback
 * ------------------------------------------------------------------------------------------- */

typedef struct gw_run {
    mwt_proc proc;
    char dir[256];
    char out[300], audit[300], err[300], port_file[300], mport_file[300], store[300];
    char crt[300], key[300];
    char addr[64];
    int mport;
} gw_run;

/* Starts a gateway whose certificate and key are copies in its own directory (so that a test
 * can replace them), with --metrics on a system-picked port and @p extra options. */
static void start_gw(gw_run *g, const mwt_pki *pki, const char *const extra[])
{
    memset(g, 0, sizeof *g);
    snprintf(g->dir, sizeof g->dir, "%s", mwt_tmpdir());
    snprintf(g->out, sizeof g->out, "%s/out.jsonl", g->dir);
    snprintf(g->audit, sizeof g->audit, "%s/audit.jsonl", g->dir);
    snprintf(g->err, sizeof g->err, "%s/stderr.log", g->dir);
    snprintf(g->port_file, sizeof g->port_file, "%s/port", g->dir);
    snprintf(g->mport_file, sizeof g->mport_file, "%s/mport", g->dir);
    snprintf(g->store, sizeof g->store, "%s/store.db", g->dir);
    snprintf(g->crt, sizeof g->crt, "%s/gw.crt", g->dir);
    snprintf(g->key, sizeof g->key, "%s/gw.key", g->dir);
    char *c = mwt_read_file(mwt_pki_crt(pki, "gateway"));
    char *k = mwt_read_file(mwt_pki_key(pki, "gateway"));
    cr_assert(c && k);
    write_text(g->crt, c);
    write_text(g->key, k);
    cr_assert_eq(chmod(g->key, 0600), 0, "a key open to others is refused at start");
    free(c);
    free(k);
    char ca[300];
    snprintf(ca, sizeof ca, "%s", mwt_pki_ca(pki));
    const char *argv[40] = {mwt_bin("medwire-gateway"),
                            "--listen",
                            "127.0.0.1:0",
                            "--ca",
                            ca,
                            "--cert",
                            g->crt,
                            "--key",
                            g->key,
                            "--out",
                            g->out,
                            "--audit",
                            g->audit,
                            "--store",
                            g->store,
                            "--port-file",
                            g->port_file,
                            "--metrics",
                            "127.0.0.1:0",
                            "--metrics-port-file",
                            g->mport_file};
    int n = 21;
    for (int i = 0; extra && extra[i]; i++)
        argv[n++] = extra[i];
    argv[n] = NULL;
    cr_assert(mwt_proc_start(&g->proc, argv, NULL, g->err));
    cr_assert(mwt_wait_file(g->port_file, 10000), "the gateway did not report its port");
    cr_assert(mwt_wait_file(g->mport_file, 10000), "the gateway did not report its metrics port");
    char *port = mwt_read_file(g->port_file);
    char *mport = mwt_read_file(g->mport_file);
    snprintf(g->addr, sizeof g->addr, "127.0.0.1:%d", atoi(port));
    g->mport = atoi(mport);
    free(port);
    free(mport);
}

static bool start_dev(mwt_proc *p, const mwt_pki *pki, const char *addr, const char *name,
                      const char *gateway_name, const char *count, const char *interval,
                      const char *err_path)
{
    char ca[300], crt[300], key[300];
    snprintf(ca, sizeof ca, "%s", mwt_pki_ca(pki));
    snprintf(crt, sizeof crt, "%s", mwt_pki_crt(pki, name));
    snprintf(key, sizeof key, "%s", mwt_pki_key(pki, name));
    const char *argv[] = {mwt_bin("medwire-device"),
                          "--gateway",
                          addr,
                          "--gateway-name",
                          gateway_name,
                          "--ca",
                          ca,
                          "--cert",
                          crt,
                          "--key",
                          key,
                          "--count",
                          count,
                          "--interval-ms",
                          interval,
                          "--give-up-s",
                          "20",
                          NULL};
    return mwt_proc_start(p, argv, NULL, err_path);
}

/* GET @p path over a plain TCP socket (HTTP/1.0); the whole response, or NULL. */
static char *http_get(int port, const char *path)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    cr_assert_geq(fd, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(fd, (struct sockaddr *)&sa, sizeof sa) != 0) {
        close(fd);
        return NULL;
    }
    char req[200];
    int n = snprintf(req, sizeof req, "GET %s HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n", path);
    cr_assert_eq(write(fd, req, (size_t)n), n);
    size_t cap = 65536, len = 0;
    char *buf = malloc(cap);
    for (;;) {
        struct pollfd p = {.fd = fd, .events = POLLIN};
        if (poll(&p, 1, 5000) <= 0)
            break; /* bounded: a stalled server fails the test below */
        ssize_t r = read(fd, buf + len, cap - 1 - len);
        if (r <= 0)
            break;
        len += (size_t)r;
        if (len == cap - 1)
            break;
    }
    close(fd);
    buf[len] = '\0';
    return buf;
}

/* The value of the sample @p series ("name" or "name{labels}") in an exposition, or -1. */
static double sample(const char *text, const char *series)
{
    size_t n = strlen(series);
    for (const char *p = text; p && *p; p = strchr(p, '\n') ? strchr(p, '\n') + 1 : NULL)
        if (strncmp(p, series, n) == 0 && p[n] == ' ')
            return strtod(p + n + 1, NULL);
    return -1;
}

static char *scrape(const gw_run *g)
{
    char *r = http_get(g->mport, "/metrics");
    cr_assert_not_null(r);
    cr_assert(strncmp(r, "HTTP/1.0 200", 12) == 0 || strncmp(r, "HTTP/1.1 200", 12) == 0,
              "metrics answered: %.80s", r);
    cr_assert(strstr(r, "Content-Type: text/plain; version=0.0.4") != NULL);
    return r;
}

Test(operations, metrics_report_what_the_gateway_did, .timeout = 120)
{
    mwt_pki pki;
    cr_assert(mwt_pki_make(&pki));
    gw_run g;
    start_gw(&g, &pki, NULL);
    char *body = scrape(&g);
    cr_assert_eq(sample(body, "medwire_messages_accepted_total"), 0);
    cr_assert(strstr(body, "# TYPE medwire_messages_accepted_total counter\n") != NULL);
    cr_assert(strstr(body, "# HELP medwire_sessions ") != NULL);
    free(body);

    mwt_proc good, bad;
    cr_assert(start_dev(&good, &pki, g.addr, "dev-1", "gateway", "20", "0", NULL));
    cr_assert(start_dev(&bad, &pki, g.addr, "expired", "gateway", "5", "0", NULL));
    cr_assert_eq(mwt_proc_wait(&good, 60000), 0);
    cr_assert_eq(mwt_proc_wait(&bad, 60000), 1);

    const char *dev1[] = {"\"device\":\"dev-1\"", NULL};
    size_t delivered = mwt_count_lines(g.out, dev1);
    cr_assert_geq(delivered, 20, "20 observations (and any alarm)");
    body = scrape(&g);
    cr_assert_eq(sample(body, "medwire_messages_accepted_total"), (double)delivered,
                 "accepted_total counts each delivered message once");
    cr_assert_eq(sample(body, "medwire_replays_refused_total"), 0);
    cr_assert_eq(sample(body, "medwire_sequence_conflicts_total"), 0);
    cr_assert_eq(sample(body, "medwire_resyncs_requested_total"), 0);
    cr_assert_eq(sample(body, "medwire_sequence_spaces_started_total"), 1, "dev-1's one space");
    cr_assert_eq(sample(body, "medwire_handshakes_total{outcome=\"completed\"}"), 1);
    cr_assert_eq(sample(body, "medwire_handshakes_total{outcome=\"failed\"}"), 1);
    cr_assert_eq(sample(body, "medwire_handshake_failures_total{reason=\"certificate_expired\"}"),
                 1, "the refused device's reason");
    cr_assert_eq(sample(body, "medwire_handshake_failures_total{reason=\"certificate_revoked\"}"),
                 0);
    double commits = sample(body, "medwire_store_commit_duration_seconds_count");
    cr_assert_geq(commits, 1);
    cr_assert_eq(sample(body, "medwire_store_commit_duration_seconds_bucket{le=\"+Inf\"}"),
                 commits);
    cr_assert_gt(sample(body, "medwire_store_commit_duration_seconds_sum"), 0);
    cr_assert_leq(sample(body, "medwire_store_commit_duration_seconds_bucket{le=\"0.0001\"}"),
                  sample(body, "medwire_store_commit_duration_seconds_bucket{le=\"1\"}"),
                  "buckets are cumulative");
    cr_assert_gt(sample(body, "medwire_datagrams_received_total"), 0);
    cr_assert_gt(sample(body, "medwire_sent_bytes_total"), 0);
    cr_assert_eq(sample(body, "medwire_evictions_reported_total"), 0);
    cr_assert_eq(sample(body, "medwire_hellos_malformed_total"), 0);
    free(body);

    /* A ClientHello with nothing after its handshake header: dropped before wolfSSL, counted. */
    uint8_t hello[25] = {22, 0xfe, 0xfd, [12] = 12, [13] = 1};
    mw_addr_t to;
    cr_assert_eq(mw_addr_parse(g.addr, &to), MW_OK);
    int fd = socket(AF_INET, SOCK_DGRAM, 0);
    cr_assert_geq(fd, 0);
    cr_assert_eq(sendto(fd, hello, sizeof hello, 0, (const struct sockaddr *)to.data, to.len),
                 (ssize_t)sizeof hello);
    close(fd);
    double malformed = 0;
    for (int i = 0; i < 100 && malformed == 0; i++) {
        body = scrape(&g);
        malformed = sample(body, "medwire_hellos_malformed_total");
        free(body);
        if (malformed == 0)
            mwt_sleep_ms(50);
    }
    cr_assert_eq(malformed, 1, "the malformed ClientHello is counted once");

    char *nf = http_get(g.mport, "/other");
    cr_assert(nf && strstr(nf, " 404 ") != NULL, "%s", nf ? nf : "");
    free(nf);
    cr_assert_eq(mwt_proc_stop(&g.proc, SIGTERM), 0);
}

/* A TCP connection to the metrics port that says nothing, or (with @p partial) the start of a
 * request it never finishes; non-blocking, so a full accept queue cannot stall the test. */
static int idle_http_client(int port, const char *partial)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
    cr_assert_geq(fd, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    int rc = connect(fd, (struct sockaddr *)&sa, sizeof sa);
    cr_assert(rc == 0 || errno == EINPROGRESS, "connect: %s", strerror(errno));
    if (partial) {
        struct pollfd p = {.fd = fd, .events = POLLOUT};
        cr_assert_eq(poll(&p, 1, 5000), 1);
        cr_assert_eq(write(fd, partial, strlen(partial)), (ssize_t)strlen(partial));
    }
    return fd;
}

/* GET @p path, asserting a 200 within 3 seconds; returns the response (free it). */
static char *http_get_promptly(int port, const char *path)
{
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    char *r = http_get(port, path);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    long ms = (t1.tv_sec - t0.tv_sec) * 1000L + (t1.tv_nsec - t0.tv_nsec) / 1000000L;
    cr_assert_not_null(r);
    cr_assert(strncmp(r, "HTTP/1.1 200", 12) == 0 || strncmp(r, "HTTP/1.0 200", 12) == 0,
              "GET %s answered after %ld ms: %.80s", path, ms, r);
    cr_assert_lt(ms, 3000, "GET %s took %ld ms", path, ms);
    return r;
}

/* @req IEC62443-CR7.1 IEC62443-CR7.2 */
Test(operations, metrics_answer_at_once_while_idle_and_trickling_clients_hold_connections,
     .timeout = 120)
{
    mwt_pki pki;
    cr_assert(mwt_pki_make(&pki));
    gw_run g;
    start_gw(&g, &pki, NULL);
    enum { FIRST = 40, MORE = 100 };
    int fds[FIRST + MORE];
    /* 40: the first 8 in the middle of a request they never finish, the others silent. Eight
     * such used to keep a scraper out for the whole connection timeout, 40 for 28 s. */
    for (int i = 0; i < FIRST; i++)
        fds[i] = idle_http_client(g.mport, i < 8 ? "GET /metrics HTTP/1.1\r\nHost: x" : NULL);
    free(http_get_promptly(g.mport, "/metrics"));
    /* More than the connection limit: the ones idle longest make room. */
    for (int i = FIRST; i < FIRST + MORE; i++)
        fds[i] = idle_http_client(g.mport, NULL);
    char *body = http_get_promptly(g.mport, "/metrics");
    cr_assert(strstr(body, "# TYPE medwire_sessions gauge") != NULL);
    free(body);
    free(http_get_promptly(g.mport, "/healthz"));
    /* The first idle client was among those closed. */
    struct pollfd p = {.fd = fds[0], .events = POLLIN};
    cr_assert_eq(poll(&p, 1, 5000), 1, "the longest idle connection was closed");
    char c;
    cr_assert_leq(read(fds[0], &c, 1), 0);
    for (int i = 0; i < FIRST + MORE; i++)
        close(fds[i]);
    cr_assert_eq(mwt_proc_stop(&g.proc, SIGTERM), 0);
}

Test(operations, healthz_answers_ok_while_the_gateway_serves, .timeout = 60)
{
    mwt_pki pki;
    cr_assert(mwt_pki_make(&pki));
    gw_run g;
    start_gw(&g, &pki, NULL);
    char *r = http_get_promptly(g.mport, "/healthz");
    const char *body = strstr(r, "\r\n\r\n");
    cr_assert(body != NULL && strcmp(body + 4, "ok\n") == 0, "%s", r);
    free(r);
    char *nf = http_get(g.mport, "/health");
    cr_assert(nf && strstr(nf, " 404 ") && strstr(nf, "try /metrics or /healthz"), "%s",
              nf ? nf : "");
    free(nf);
    cr_assert_eq(mwt_proc_stop(&g.proc, SIGTERM), 0);
    /* Stopped: nothing answers, which is what a load balancer must see. */
    cr_assert_null(http_get(g.mport, "/healthz"));
}

/* Every line of @p path is a JSON object (checked by Python's json module: a parser no one here
 * wrote) with string fields time (UTC, ms), level and event. */
static void assert_json_lines(const char *path)
{
    static const char script[] =
        "import json, re, sys\n"
        "n = 0\n"
        "for line in open(sys.argv[1]):\n"
        "    o = json.loads(line)\n"
        "    assert re.fullmatch(r'\\d{4}-\\d\\d-\\d\\dT\\d\\d:\\d\\d:\\d\\d\\.\\d{3}Z', o['time']), line\n"
        "    assert o['level'] in ('error', 'warn', 'info', 'debug'), line\n"
        "    assert isinstance(o['event'], str) and o['event'], line\n"
        "    n += 1\n"
        "assert n > 0\n";
    const char *argv[] = {"/usr/bin/env", "python3", "-c", script, path, NULL};
    char err[400];
    snprintf(err, sizeof err, "%s.check", path);
    int rc = mwt_run(argv, NULL, err, 30000);
    char *why = mwt_read_file(err);
    cr_assert_eq(rc, 0, "log lines are not JSON objects with time, level, event: %s",
                 why ? why : "");
    free(why);
}

Test(operations, json_logs_parse_and_debug_shows_sessions, .timeout = 120)
{
    mwt_pki pki;
    cr_assert(mwt_pki_make(&pki));
    gw_run g;
    const char *extra[] = {"--log-format", "json", "--log-level", "debug", NULL};
    start_gw(&g, &pki, extra);
    mwt_proc d;
    cr_assert(start_dev(&d, &pki, g.addr, "dev-1", "gateway", "5", "0", NULL));
    cr_assert_eq(mwt_proc_wait(&d, 60000), 0);
    cr_assert_eq(mwt_proc_stop(&g.proc, SIGTERM), 0);
    assert_json_lines(g.err);
    const char *started[] = {"\"level\":\"info\"", "\"event\":\"gateway_started\"",
                             "\"listen\":\"127.0.0.1:", NULL};
    cr_assert_eq(mwt_count_lines(g.err, started), 1);
    const char *session[] = {"\"level\":\"debug\"", "\"event\":\"session_established\"",
                             "\"device\":\"dev-1\"", NULL};
    cr_assert_eq(mwt_count_lines(g.err, session), 1);
    const char *stopped[] = {"\"event\":\"gateway_stopped\"", "\"cause\":\"signal\"",
                             "\"delivered\":", NULL};
    cr_assert_eq(mwt_count_lines(g.err, stopped), 1);
}

Test(operations, the_log_level_filters_events, .timeout = 120)
{
    mwt_pki pki;
    cr_assert(mwt_pki_make(&pki));
    gw_run g;
    const char *warn[] = {"--log-level", "warn", NULL};
    start_gw(&g, &pki, warn);
    mwt_proc ok, bad;
    cr_assert(start_dev(&ok, &pki, g.addr, "dev-1", "gateway", "5", "0", NULL));
    cr_assert(start_dev(&bad, &pki, g.addr, "expired", "gateway", "5", "0", NULL));
    cr_assert_eq(mwt_proc_wait(&ok, 60000), 0);
    cr_assert_eq(mwt_proc_wait(&bad, 60000), 1);
    cr_assert_eq(mwt_proc_stop(&g.proc, SIGTERM), 0);
    /* text: TIME LEVEL EVENT key=value ... */
    const char *refused[] = {"Z warn handshake_failed ", "code=-151", "reason=", NULL};
    cr_assert_eq(mwt_count_lines(g.err, refused), 1, "a refusal is a warning");
    const char *info[] = {" info ", NULL};
    const char *debug[] = {" debug ", NULL};
    cr_assert_eq(mwt_count_lines(g.err, info), 0, "no info line at level warn");
    cr_assert_eq(mwt_count_lines(g.err, debug), 0);

    gw_run q;
    const char *error[] = {"--log-level", "error", NULL};
    start_gw(&q, &pki, error);
    cr_assert(start_dev(&bad, &pki, q.addr, "expired", "gateway", "5", "0", NULL));
    cr_assert_eq(mwt_proc_wait(&bad, 60000), 1);
    cr_assert_eq(mwt_proc_stop(&q.proc, SIGTERM), 0);
    char *text = mwt_read_file(q.err);
    cr_assert(text == NULL || text[0] == '\0', "nothing at level error: %s", text);
    free(text);

    const char *bad_level[] = {mwt_bin("medwire-gateway"), "--listen", "127.0.0.1:0",
                               "--log-level", "verbose", NULL};
    cr_assert_eq(mwt_run(bad_level, NULL, NULL, 5000), 2);
}

static void wait_lines(const char *path, const char *needle, size_t n)
{
    const char *nd[] = {needle, NULL};
    for (int i = 0; i < 1000 && mwt_count_lines(path, nd) < n; i++)
        mwt_sleep_ms(10);
    cr_assert_geq(mwt_count_lines(path, nd), n, "%s in %s", needle, path);
}

Test(operations, sighup_swaps_the_certificate_without_dropping_the_established_session,
     .timeout = 180)
{
    mwt_pki pki;
    cr_assert(mwt_pki_make(&pki));
    gw_run g;
    start_gw(&g, &pki, NULL);
    /* dev-1 sends for about 4 s, across the reload. */
    mwt_proc d1;
    char e1[300];
    snprintf(e1, sizeof e1, "%s/dev-1.err", g.dir);
    cr_assert(start_dev(&d1, &pki, g.addr, "dev-1", "gateway", "200", "20", e1));
    wait_lines(g.out, "\"device\":\"dev-1\"", 10);

    /* The new certificate names the gateway "gateway-b": a device that expects "gateway"
     * can no longer complete a handshake, so dev-1 finishing proves its session lived on. */
    char ca[300], dir[300], path[400];
    snprintf(ca, sizeof ca, "%s/ca", pki.dir);
    snprintf(dir, sizeof dir, "%s/next", g.dir);
    const char *issue[] = {mwt_bin("medwire-pki"), "issue", "--ca", ca, "--role", "gateway",
                           "--id", "gateway-b", "--out", dir, NULL};
    cr_assert_eq(mwt_run(issue, NULL, NULL, 30000), 0);
    snprintf(path, sizeof path, "%s/gateway-b.key", dir);
    cr_assert_eq(rename(path, g.key), 0);
    snprintf(path, sizeof path, "%s/gateway-b.crt", dir);
    cr_assert_eq(rename(path, g.crt), 0);
    cr_assert_eq(kill(g.proc.pid, SIGHUP), 0);
    wait_lines(g.audit, "\"event\":\"credentials_reloaded\"", 1);
    const char *logged[] = {"info credentials_reloaded", "certificate 'gateway-b'", NULL};
    cr_assert_eq(mwt_count_lines(g.err, logged), 1);

    char *m1 = NULL;
    int rc1 = mwt_proc_wait(&d1, 60000);
    m1 = mwt_read_file(e1);
    cr_assert_eq(rc1, 0, "dev-1 kept sending: %s", m1 ? m1 : "");
    free(m1);
    const char *est1[] = {"\"event\":\"session_established\"", "\"device\":\"dev-1\"", NULL};
    cr_assert_eq(mwt_count_lines(g.audit, est1), 1, "one handshake for dev-1, before the reload");
    const char *dev1[] = {"\"device\":\"dev-1\"", "\"type\":\"observation\"", NULL};
    cr_assert_eq(mwt_count_lines(g.out, dev1), 200);

    /* New handshakes get the new certificate. */
    mwt_proc d2, d3;
    cr_assert(start_dev(&d2, &pki, g.addr, "dev-2", "gateway-b", "5", "0", NULL));
    cr_assert_eq(mwt_proc_wait(&d2, 60000), 0, "a device expecting gateway-b is served");
    char e3[300];
    snprintf(e3, sizeof e3, "%s/dev-3.err", g.dir);
    cr_assert(start_dev(&d3, &pki, g.addr, "dev-3", "gateway", "5", "0", e3));
    cr_assert_eq(mwt_proc_wait(&d3, 60000), 1, "a device expecting the old name is refused");
    char *body = scrape(&g);
    cr_assert_eq(sample(body, "medwire_credential_reloads_total{result=\"ok\"}"), 1);
    cr_assert_eq(sample(body, "medwire_handshakes_total{outcome=\"completed\"}"), 2);
    free(body);

    /* A bad certificate file on SIGHUP keeps the one in force. */
    write_text(g.crt, "this is not a certificate\n");
    cr_assert_eq(kill(g.proc.pid, SIGHUP), 0);
    wait_lines(g.audit, "\"event\":\"credentials_reload_failed\"", 1);
    const char *err_line[] = {"error credentials_reload_failed", "gw.crt", NULL};
    cr_assert_eq(mwt_count_lines(g.err, err_line), 1, "the log says which file and why");
    cr_assert(start_dev(&d2, &pki, g.addr, "dev-2", "gateway-b", "5", "0", NULL));
    cr_assert_eq(mwt_proc_wait(&d2, 60000), 0, "still served with gateway-b");
    body = scrape(&g);
    cr_assert_eq(sample(body, "medwire_credential_reloads_total{result=\"failed\"}"), 1);
    free(body);
    cr_assert_eq(mwt_proc_stop(&g.proc, SIGTERM), 0);
}

/* A UDP relay between one device and the gateway that notes any DTLS alert
 * record sent under keys (epoch > 0) by the gateway: a close_notify. */
struct relay {
    int fd;
    struct sockaddr_in gw, dev;
    bool have_dev;
    volatile bool stop;
    volatile bool saw_sealed_alert;
    pthread_t th;
};

static void *relay_main(void *arg)
{
    struct relay *r = arg;
    uint8_t buf[2048];
    while (!r->stop) {
        struct pollfd p = {.fd = r->fd, .events = POLLIN};
        if (poll(&p, 1, 50) <= 0)
            continue;
        struct sockaddr_in from;
        socklen_t fl = sizeof from;
        ssize_t n = recvfrom(r->fd, buf, sizeof buf, 0, (struct sockaddr *)&from, &fl);
        if (n <= 0)
            continue;
        bool from_gw = from.sin_port == r->gw.sin_port && from.sin_addr.s_addr == r->gw.sin_addr.s_addr;
        if (from_gw) {
            for (size_t off = 0; off + 13 <= (size_t)n;) {
                size_t len = ((size_t)buf[off + 11] << 8) | buf[off + 12];
                if (buf[off] == 21 && (buf[off + 3] | buf[off + 4]) != 0)
                    r->saw_sealed_alert = true;
                off += 13 + len;
            }
            if (r->have_dev)
                (void)sendto(r->fd, buf, (size_t)n, 0, (struct sockaddr *)&r->dev, sizeof r->dev);
        } else {
            r->dev = from;
            r->have_dev = true;
            (void)sendto(r->fd, buf, (size_t)n, 0, (struct sockaddr *)&r->gw, sizeof r->gw);
        }
    }
    return NULL;
}

Test(operations, sigterm_drains_commits_closes_sessions_and_exits_0, .timeout = 120)
{
    mwt_pki pki;
    cr_assert(mwt_pki_make(&pki));
    gw_run g;
    start_gw(&g, &pki, NULL);
    struct relay r;
    memset(&r, 0, sizeof r);
    r.fd = socket(AF_INET, SOCK_DGRAM, 0);
    struct sockaddr_in any = {.sin_family = AF_INET};
    any.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    cr_assert_eq(bind(r.fd, (struct sockaddr *)&any, sizeof any), 0);
    socklen_t al = sizeof any;
    cr_assert_eq(getsockname(r.fd, (struct sockaddr *)&any, &al), 0);
    r.gw.sin_family = AF_INET;
    r.gw.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    r.gw.sin_port = htons((uint16_t)atoi(strchr(g.addr, ':') + 1));
    cr_assert_eq(pthread_create(&r.th, NULL, relay_main, &r), 0);
    char via[64];
    snprintf(via, sizeof via, "127.0.0.1:%u", ntohs(any.sin_port));

    mwt_proc d;
    cr_assert(start_dev(&d, &pki, via, "dev-1", "gateway", "100000", "5", NULL));
    wait_lines(g.out, "\"device\":\"dev-1\"", 30);
    cr_assert(!r.saw_sealed_alert);
    cr_assert_eq(mwt_proc_stop(&g.proc, SIGTERM), 0, "exits 0 on SIGTERM, within 5 s");
    for (int i = 0; i < 100 && !r.saw_sealed_alert; i++)
        mwt_sleep_ms(10);
    r.stop = true;
    pthread_join(r.th, NULL);
    close(r.fd);
    (void)mwt_proc_stop(&d, SIGKILL);
    cr_assert(r.saw_sealed_alert, "the gateway sent close_notify to the device");
    /* Everything accepted was committed to the output before the exit. */
    const char *lines[] = {"\"device\":\"dev-1\"", NULL};
    size_t out = mwt_count_lines(g.out, lines);
    char *audit = mwt_read_file(g.audit);
    cr_assert_not_null(audit);
    const char *s = strstr(audit, "\"event\":\"gateway_stopped\"");
    cr_assert_not_null(s);
    const char *dl = strstr(s, "delivered ");
    cr_assert_not_null(dl);
    cr_assert_eq(strtoull(dl + 10, NULL, 10), out, "delivered == lines in --out");
    free(audit);
    const char *drain[] = {"info draining", "sessions=1", NULL};
    cr_assert_eq(mwt_count_lines(g.err, drain), 1);
}

/* ---------------------------------------------------------------------------------------------
 * Expiry made visible: the dates of the credentials in force, in the stats, the metrics and
 * warnings
 * ------------------------------------------------------------------------------------------- */

/* A PKI of the test's own (mwt_pki_make's layout): a CA, a gateway certificate that expires at
 * the end of the day 10 days from now, dev-1, and a CRL whose nextUpdate is 3 days away. */
static void short_lived_pki(mwt_pki *p)
{
    const char *pki = mwt_bin("medwire-pki");
    snprintf(p->dir, sizeof p->dir, "%s", mwt_tmpdir());
    char ca[300], day[16];
    snprintf(ca, sizeof ca, "%s/ca", p->dir);
    time_t soon = time(NULL) + 10 * 86400;
    struct tm tm;
    gmtime_r(&soon, &tm);
    strftime(day, sizeof day, "%Y-%m-%d", &tm);
    const char *mk[] = {pki, "ca", "--out", ca, NULL};
    const char *gw[] = {pki,           "issue", "--ca",    ca,      "--role",
                        "gateway",     "--id",  "gateway", "--out", p->dir,
                        "--not-after", day,     NULL};
    const char *dev[] = {pki,    "issue", "--ca",  ca,     "--role", "device",
                         "--id", "dev-1", "--out", p->dir, NULL};
    const char *crl[] = {pki, "crl", "--ca", ca, "--next-update-days", "3", NULL};
    cr_assert_eq(mwt_run(mk, NULL, NULL, 30000), 0);
    cr_assert_eq(mwt_run(gw, NULL, NULL, 30000), 0);
    cr_assert_eq(mwt_run(dev, NULL, NULL, 30000), 0);
    cr_assert_eq(mwt_run(crl, NULL, NULL, 30000), 0);
}

/* The date OpenSSL reads from @p file ("x509" -enddate, or "crl" -nextupdate), in seconds
 * since the epoch: what medwire must report, found by another implementation. */
static int64_t openssl_date(const char *kind, const char *file)
{
    char out[300];
    snprintf(out, sizeof out, "%s/openssl-date.txt", mwt_tmpdir());
    const char *argv[] = {"/usr/bin/openssl",
                          kind,
                          "-noout",
                          strcmp(kind, "crl") == 0 ? "-nextupdate" : "-enddate",
                          "-in",
                          file,
                          NULL};
    cr_assert_eq(mwt_run(argv, out, NULL, 30000), 0, "openssl %s %s", kind, file);
    char *text = mwt_read_file(out);
    cr_assert_not_null(text);
    const char *eq = strchr(text, '=');
    cr_assert_not_null(eq, "%s", text);
    struct tm tm;
    memset(&tm, 0, sizeof tm);
    cr_assert_not_null(strptime(eq + 1, "%b %d %H:%M:%S %Y GMT", &tm), "%s", text);
    free(text);
    return (int64_t)timegm(&tm);
}

/* " on YYYY-MM-DDTHH:MM:SSZ", as the gateway writes a date in a warning. */
static void iso_date(int64_t t, char *out, size_t cap)
{
    time_t tt = (time_t)t;
    struct tm tm;
    gmtime_r(&tt, &tm);
    strftime(out, cap, " on %Y-%m-%dT%H:%M:%SZ,", &tm);
}

Test(operations, the_dates_of_the_credentials_in_force_are_in_the_gateway_and_device_stats,
     .timeout = 120)
{
    mwt_pki pki;
    short_lived_pki(&pki);
    char crl[300];
    snprintf(crl, sizeof crl, "%s/ca/crl.pem", pki.dir);
    mwt_h h;
    mwt_h_init_crl(&h, 7, &pki, crl);
    mw_err e;
    mw_client_t *c = mwt_h_client(&h, "dev-1", "gateway", &e);
    cr_assert_not_null(c, "%s", mw_strerror(e));
    mw_gateway_stats_t st;
    mw_gateway_stats(h.gw, &st);
    cr_assert_eq(st.cert_not_after_s, openssl_date("x509", mwt_pki_crt(&pki, "gateway")));
    cr_assert_eq(st.ca_not_after_s, openssl_date("x509", mwt_pki_ca(&pki)));
    cr_assert_eq(st.crl_next_update_s, openssl_date("crl", crl), "%lld",
                 (long long)st.crl_next_update_s);
    mw_client_stats_t cs;
    mw_client_stats(c, &cs);
    cr_assert_eq(cs.cert_not_after_s, openssl_date("x509", mwt_pki_crt(&pki, "dev-1")));
    mwt_h_fini(&h);
}

/* @req MDCG-2019-16-PMS MDCG-2019-16-IFU */
Test(operations, credentials_close_to_expiry_are_warned_about_and_their_dates_in_the_metrics,
     .timeout = 120)
{
    mwt_pki pki;
    short_lived_pki(&pki);
    char crl[300];
    snprintf(crl, sizeof crl, "%s/ca/crl.pem", pki.dir);
    const char *extra[] = {"--crl", crl, NULL};
    gw_run g;
    start_gw(&g, &pki, extra);
    char *body = scrape(&g);
    cr_assert_eq(
        sample(body, "medwire_credential_expiry_timestamp_seconds{credential=\"certificate\"}"),
        (double)openssl_date("x509", mwt_pki_crt(&pki, "gateway")), "%s", body);
    cr_assert_eq(sample(body, "medwire_credential_expiry_timestamp_seconds{credential=\"ca\"}"),
                 (double)openssl_date("x509", mwt_pki_ca(&pki)));
    cr_assert_eq(sample(body, "medwire_credential_expiry_timestamp_seconds{credential=\"crl\"}"),
                 (double)openssl_date("crl", crl));
    free(body);
    /* The certificate (10 days) and the CRL (3 days) are inside the default 30 days; the CA
     * (years) is not. */
    wait_lines(g.audit, "\"event\":\"credential_expiring\"", 2);
    cr_assert_eq(mwt_proc_stop(&g.proc, SIGTERM), 0);
    /* Each says what, and when as OpenSSL reads it. */
    char cert_on[64], crl_on[64];
    iso_date(openssl_date("x509", mwt_pki_crt(&pki, "gateway")), cert_on, sizeof cert_on);
    iso_date(openssl_date("crl", crl), crl_on, sizeof crl_on);
    const char *cert[] = {"\"event\":\"credential_expiring\"", "certificate (--cert) expires",
                          cert_on, NULL};
    const char *crl_line[] = {"\"event\":\"credential_expiring\"", "CRL (--crl)", crl_on, NULL};
    const char *any[] = {"\"event\":\"credential_expiring\"", NULL};
    cr_assert_eq(mwt_count_lines(g.audit, cert), 1, "the certificate, once");
    cr_assert_eq(mwt_count_lines(g.audit, crl_line), 1, "the CRL, once");
    cr_assert_eq(mwt_count_lines(g.audit, any), 2, "not the CA");
    const char *logged[] = {"credential_expiring", NULL};
    cr_assert_eq(mwt_count_lines(g.err, logged), 2, "and in the log, as warnings");
}
