/* SPDX-License-Identifier: Apache-2.0 */
/* test_fhir_delivery.c -- the real medwire-gateway with --fhir-server delivering to Medplum's
 * FhirRouter (a FHIR server written by others, tests/fhir-server/server.js) while real
 * medwire-device processes send: every observation is at the server exactly once, counted
 * through FHIR search, with its Device and its patient; outages, 429, a refused entry and a
 * SIGKILLed gateway change nothing of that. */
#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "support/pg.h"
#include "support/programs.h"

#define DEVICES      4
#define OBSERVATIONS 20

typedef struct server {
    mwt_proc proc;
    char port_file[400];
    int port;             /* plain HTTP: the tests' searches and controls */
    int fhir_port;        /* the gateway's: HTTPS with --tls-* in more */
    const char *more[10]; /* further options of server.js, NULL-terminated */
} server;

typedef struct gateway {
    mwt_proc proc;
    char dir[300], store[400], port_file[400], audit[400], err[400], addr[64], url[64];
    const char *more[12]; /* further options, NULL-terminated */
} gateway;

typedef struct world {
    mwt_pki pki;
    server s;
    gateway g;
    char dir[300];
} world;

static void in_dir(char *out, size_t size, const char *dir, const char *name)
{
    snprintf(out, size, "%s/%s", dir, name);
}

static void server_start(server *s, const char *dir)
{
    const char *node = getenv("MW_NODE");
    const char *sdir = getenv("MW_FHIR_SERVER_DIR");
    cr_assert(node && node[0] && sdir, "run through ctest (node is needed)");
    char script[600], err[400];
    snprintf(script, sizeof script, "%s/server.js", sdir);
    in_dir(s->port_file, sizeof s->port_file, dir, "fhir.port");
    in_dir(err, sizeof err, dir, "fhir.err");
    remove(s->port_file);
    const char *argv[14] = {node, script, s->port_file};
    for (size_t i = 0; s->more[i] && i + 4 < sizeof argv / sizeof argv[0]; i++)
        argv[3 + i] = s->more[i];
    cr_assert(mwt_proc_start(&s->proc, argv, NULL, err));
    s->port = s->fhir_port = mwt_wait_port(s->port_file, 30000);
    cr_assert_gt(s->port, 0, "the FHIR server did not start (see %s)", err);
    if (s->more[0] != NULL && strcmp(s->more[0], "--tls-cert") == 0) {
        char plain[420];
        snprintf(plain, sizeof plain, "%s.plain", s->port_file);
        s->port = mwt_wait_port(plain, 30000);
        cr_assert_gt(s->port, 0, "the FHIR server's plain port (see %s)", err);
    }
}

/* One HTTP/1.0 request to the FHIR server; the body of the answer (malloc'd), *status. */
static char *http(const server *s, const char *method, const char *path, int *status)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    cr_assert_geq(fd, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)s->port)};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    cr_assert_eq(connect(fd, (struct sockaddr *)&sa, sizeof sa), 0);
    char req[1024];
    int n =
        snprintf(req, sizeof req, "%s %s HTTP/1.0\r\nHost: 127.0.0.1\r\nContent-Length: 0\r\n\r\n",
                 method, path);
    cr_assert_eq(write(fd, req, (size_t)n), (ssize_t)n);
    size_t cap = 1u << 20, len = 0;
    char *buf = malloc(cap);
    cr_assert_not_null(buf);
    for (;;) {
        if (len + 1 >= cap) {
            cap *= 2;
            buf = realloc(buf, cap);
            cr_assert_not_null(buf);
        }
        struct pollfd p = {.fd = fd, .events = POLLIN};
        if (poll(&p, 1, 10000) <= 0)
            break;
        ssize_t r = read(fd, buf + len, cap - 1 - len);
        if (r <= 0)
            break;
        len += (size_t)r;
    }
    close(fd);
    buf[len] = '\0';
    *status = 0;
    sscanf(buf, "HTTP/1.%*d %d", status);
    char *body = strstr(buf, "\r\n\r\n");
    char *out = strdup(body ? body + 4 : "");
    free(buf);
    return out;
}

/* FHIR search with _summary=count: the server's own count of @p type. */
static long count(const server *s, const char *type)
{
    char path[200];
    snprintf(path, sizeof path, "/%s?_summary=count", type);
    int st = 0;
    char *b = http(s, "GET", path, &st);
    cr_assert_eq(st, 200, "GET %s: %s", path, b);
    const char *t = strstr(b, "\"total\":");
    long n = t ? strtol(t + 8, NULL, 10) : -1;
    free(b);
    return n;
}

static long stat_of(const server *s, const char *key)
{
    int st = 0;
    char *b = http(s, "GET", "/_control/stats", &st);
    char k[64];
    snprintf(k, sizeof k, "\"%s\":", key);
    const char *p = strstr(b, k);
    long n = p ? strtol(p + strlen(k), NULL, 10) : -9999;
    free(b);
    return n;
}

static void control(const server *s, const char *path)
{
    int st = 0;
    char *b = http(s, "POST", path, &st);
    cr_assert_eq(st, 200, "%s: %s", path, b);
    free(b);
}

typedef struct tally {
    size_t obs, distinct, with_device, with_subject;
} tally;

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Every Observation at the server: its message identifier (each must be one of the devices',
 * "fhirdev-N/SPACE/SEQ"), whether its device is a literal Device reference and whether it has
 * a Patient subject. */
static tally observations(const server *s)
{
    tally t = {0, 0, 0, 0};
    int st = 0;
    char *b = http(s, "GET", "/Observation?_count=1000", &st);
    cr_assert_eq(st, 200, "%s", b);
    static const char start[] = "{\"resourceType\":\"Observation\"";
    static const char ident[] = "\"urn:medwire:message\",\"value\":\"";
    char *ids[1000];
    for (char *p = strstr(b, start); p && t.obs < 1000;) {
        char *next = strstr(p + 1, start);
        if (next)
            next[-1] = '\0'; /* the ',' or '{' before it: this Observation ends there */
        char *id = strstr(p, ident);
        cr_assert_not_null(id, "an Observation without the message identifier: %s", p);
        id += sizeof ident - 1;
        char *q = strchr(id, '"');
        cr_assert_not_null(q);
        *q = '\0';
        int dev = 0;
        unsigned long long space = 0, seq = 0;
        cr_expect_eq(sscanf(id, "fhirdev-%d/%llx/%llu", &dev, &space, &seq), 3, "id %s", id);
        cr_expect(dev >= 1 && dev <= DEVICES && seq >= 1 && seq <= OBSERVATIONS, "id %s", id);
        ids[t.obs++] = id;
        if (strstr(q + 1, "\"device\":{\"reference\":\"Device/"))
            t.with_device++;
        if (strstr(q + 1, "\"subject\":{\"reference\":\"Patient/"))
            t.with_subject++;
        p = next;
    }
    qsort(ids, t.obs, sizeof ids[0], cmp_str);
    for (size_t i = 0; i < t.obs; i++)
        if (i == 0 || strcmp(ids[i], ids[i - 1]) != 0)
            t.distinct++;
    free(b);
    return t;
}

/* Waits until the server holds @p want Observations (or 30 s). */
static long wait_count(const server *s, long want)
{
    long n = -1;
    for (int i = 0; i < 300; i++) {
        n = count(s, "Observation");
        if (n >= want)
            break;
        mwt_sleep_ms(100);
    }
    return n;
}

static void write_text(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    cr_assert_not_null(f, "%s", path);
    fputs(text, f);
    fclose(f);
}

static void gateway_start(gateway *g, const mwt_pki *pki, const server *s)
{
    bool restart = g->addr[0] != '\0';
    if (!restart) {
        snprintf(g->dir, sizeof g->dir, "%s", mwt_tmpdir());
        if (g->store[0] == '\0')
            in_dir(g->store, sizeof g->store, g->dir, "store.db");
        in_dir(g->port_file, sizeof g->port_file, g->dir, "port");
        in_dir(g->audit, sizeof g->audit, g->dir, "audit.jsonl");
        in_dir(g->err, sizeof g->err, g->dir, "gateway.err");
        if (g->url[0] == '\0')
            snprintf(g->url, sizeof g->url, "http://127.0.0.1:%d/", s->port);
    }
    const char *extra[24] = {"--store", g->store, "--audit", g->audit, "--fhir-server", g->url};
    for (size_t i = 0; g->more[i] && i + 7 < sizeof extra / sizeof extra[0]; i++)
        extra[6 + i] = g->more[i];
    char listen[64];
    snprintf(listen, sizeof listen, "%s", restart ? g->addr : "127.0.0.1:0");
    cr_assert(mwt_gateway_start(&g->proc, pki, listen, g->port_file, extra, g->err, g->addr,
                                sizeof g->addr),
              "the gateway did not start");
}

static void world_start(world *w, int devices)
{
    memset(w, 0, sizeof *w);
    /* Retries every 200 ms instead of 0.5 s to 30 s: an outage of seconds, not minutes. */
    setenv("MW_FHIR_BACKOFF_MS", "200", 1);
    cr_assert(mwt_pki_make(&w->pki));
    cr_assert(mwt_pki_devices(&w->pki, "fhirdev", devices));
    snprintf(w->dir, sizeof w->dir, "%s", mwt_tmpdir());
    server_start(&w->s, w->dir);
}

static void devices_start(mwt_proc *devs, int n, const world *w, const char *interval_ms)
{
    for (int i = 0; i < n; i++) {
        char name[32];
        snprintf(name, sizeof name, "fhirdev-%d", i + 1);
        cr_assert(mwt_device_start(&devs[i], &w->pki, w->g.addr, name, "20", interval_ms, "45"));
    }
}

static void devices_finish(mwt_proc *devs, int n)
{
    for (int i = 0; i < n; i++)
        cr_assert_eq(mwt_proc_wait(&devs[i], 50000), 0, "device %d: not all acknowledged", i + 1);
}

static void world_stop(world *w)
{
    cr_expect_eq(mwt_proc_stop(&w->g.proc, SIGTERM), 0, "the gateway exits 0 on SIGTERM");
    mwt_proc_stop(&w->s.proc, SIGKILL);
}

static void expect_all_once(const world *w, int devices, size_t with_subject)
{
    long want = (long)devices * OBSERVATIONS;
    cr_expect_eq(wait_count(&w->s, want), want, "every observation at the server");
    mwt_sleep_ms(300); /* and no more after a while */
    tally t = observations(&w->s);
    cr_expect_eq(t.obs, (size_t)want, "counted through FHIR search");
    cr_expect_eq(t.distinct, (size_t)want, "none twice");
    cr_expect_eq(t.with_device, (size_t)want, "each refers to its Device resource");
    cr_expect_eq(t.with_subject, with_subject, "the associated devices' have a Patient subject");
    cr_expect_eq(count(&w->s, "Device"), devices, "one Device per device, however many sends");
}

/* (a) Several devices, two of them associated with patients: each observation once, each
 * with its Device, the associated ones with their Patient (one Patient each). */
Test(fhir_delivery, every_observation_arrives_once_with_device_and_patient)
{
    world w;
    world_start(&w, DEVICES);
    char file[400];
    in_dir(file, sizeof file, w.dir, "assoc.tsv");
    write_text(file, "fhirdev-1\tMRN-1\tDoe^Jane\tICU^12^B\n"
                     "fhirdev-2\tMRN-2\tRoe^Richard\tICU^13^A\n");
    const char *more[] = {"--associations", file, "--fhir-batch", "8", NULL};
    memcpy(w.g.more, more, sizeof more);
    gateway_start(&w.g, &w.pki, &w.s);
    mwt_proc devs[DEVICES];
    devices_start(devs, DEVICES, &w, "0");
    devices_finish(devs, DEVICES);
    expect_all_once(&w, DEVICES, 2 * OBSERVATIONS);
    cr_expect_eq(count(&w.s, "Patient"), 2);
    int st = 0;
    char *p = http(&w.s, "GET", "/Patient?identifier=urn:medwire:patient%7CMRN-1", &st);
    cr_expect(strstr(p, "\"family\":\"Doe\"") && strstr(p, "\"given\":[\"Jane\"]"), "%s", p);
    free(p);
    world_stop(&w);
}

/* (b) The server answers 503 for a while (the in-memory server cannot be restarted without
 * losing what it holds, so the wrapper's control endpoint makes the outage): the devices are
 * acknowledged all the same, and once the server is back every observation arrives once. */
Test(fhir_delivery, the_server_down_for_a_while)
{
    world w;
    world_start(&w, DEVICES);
    char mport[400];
    in_dir(mport, sizeof mport, w.dir, "metrics.port");
    const char *more[] = {"--fhir-batch",        "8",   "--metrics", "127.0.0.1:0",
                          "--metrics-port-file", mport, NULL};
    memcpy(w.g.more, more, sizeof more);
    control(&w.s, "/_control/fail?status=503&count=1000000");
    gateway_start(&w.g, &w.pki, &w.s);
    mwt_proc devs[DEVICES];
    devices_start(devs, DEVICES, &w, "0");
    devices_finish(devs, DEVICES); /* custody passes to the outbox */
    mwt_sleep_ms(2000);
    cr_expect_eq(count(&w.s, "Observation"), 0);
    cr_expect_gt(stat_of(&w.s, "refused"), 2, "the gateway kept trying");
    /* The destination's metrics and /healthz say so. */
    server m = {.port = mwt_wait_port(mport, 5000)};
    cr_assert_gt(m.port, 0);
    int st = 0;
    char *met = http(&m, "GET", "/metrics", &st);
    char want[300];
    snprintf(want, sizeof want, "\nmedwire_fhir_outbox_depth{destination=\"%s\"} %d\n", w.g.url,
             DEVICES * OBSERVATIONS);
    cr_expect(strstr(met, want), "%s not in\n%s", want, met);
    snprintf(want, sizeof want, "\nmedwire_fhir_destination_up{destination=\"%s\"} 0\n", w.g.url);
    cr_expect(strstr(met, want), "%s not in\n%s", want, met);
    snprintf(want, sizeof want, "\nmedwire_fhir_oldest_undelivered_seconds{destination=\"%s\"} ",
             w.g.url);
    const char *age = strstr(met, want);
    cr_expect(age && strtol(age + strlen(want), NULL, 10) >= 1, "the oldest waits: %s", met);
    free(met);
    char *hz = http(&m, "GET", "/healthz", &st);
    cr_expect_eq(st, 200);
    cr_expect(strstr(hz, "fhir destination down"), "%s", hz);
    free(hz);
    long tx = stat_of(&w.s, "transactions");
    control(&w.s, "/_control/fail?status=503&count=0");
    expect_all_once(&w, DEVICES, 0);
    /* The backlog goes in batches (--fhir-batch 8, Medplum's bound for transactions with
     * conditional creates: at most 4 Devices and at least 4 Observations each): at most 20
     * transactions, not 80. */
    tx = stat_of(&w.s, "transactions") - tx;
    cr_expect(tx >= 10 && tx <= 20, "%ld transactions for the backlog of %d", tx,
              DEVICES * OBSERVATIONS);
    char *glog = mwt_read_file(w.g.err);
    cr_expect(glog && !strstr(glog, "fhir_batch_refused"), "no transaction over the bound");
    free(glog);
    met = http(&m, "GET", "/metrics", &st);
    snprintf(want, sizeof want, "\nmedwire_fhir_acknowledged_total{destination=\"%s\"} %d\n",
             w.g.url, DEVICES * OBSERVATIONS);
    cr_expect(strstr(met, want), "%s not in\n%s", want, met);
    snprintf(want, sizeof want, "\nmedwire_fhir_outbox_depth{destination=\"%s\"} 0\n", w.g.url);
    cr_expect(strstr(met, want), "%s not in\n%s", want, met);
    snprintf(want, sizeof want, "\nmedwire_fhir_destination_up{destination=\"%s\"} 1\n", w.g.url);
    cr_expect(strstr(met, want), "%s not in\n%s", want, met);
    free(met);
    char *log = mwt_read_file(w.g.err);
    cr_expect(log && strstr(log, "fhir_destination_down"), "the log says it was down");
    free(log);
    world_stop(&w);
}

/* (c) A gateway SIGKILLed mid-delivery and started again on the same store and outbox: what
 * was sent but not deleted goes again, and ifNoneExist makes the resend harmless. */
Test(fhir_delivery, the_gateway_killed_mid_delivery)
{
    world w;
    world_start(&w, DEVICES);
    const char *more[] = {"--fhir-batch", "5", NULL};
    memcpy(w.g.more, more, sizeof more);
    gateway_start(&w.g, &w.pki, &w.s);
    mwt_proc devs[DEVICES];
    devices_start(devs, DEVICES, &w, "40");
    mwt_sleep_ms(400);
    cr_assert_eq(mwt_proc_stop(&w.g.proc, SIGKILL), 128 + SIGKILL);
    long before = count(&w.s, "Observation");
    cr_expect_lt(before, DEVICES * OBSERVATIONS, "killed before the end");
    gateway_start(&w.g, &w.pki, &w.s);
    devices_finish(devs, DEVICES);
    expect_all_once(&w, DEVICES, 0);
    world_stop(&w);
}

/* (d) An entry the server refuses (422) is parked, audited with the server's diagnostics, and
 * the others, before and after it (in the same batch too), arrive. */
Test(fhir_delivery, a_refused_entry_is_parked_and_does_not_block)
{
    world w;
    world_start(&w, 1);
    control(&w.s, "/_control/reject-seq?seq=7");
    gateway_start(&w.g, &w.pki, &w.s);
    mwt_proc devs[1];
    devices_start(devs, 1, &w, "0");
    devices_finish(devs, 1);
    cr_expect_eq(wait_count(&w.s, OBSERVATIONS - 1), OBSERVATIONS - 1, "all but the refused one");
    bool parked = false;
    for (int i = 0; i < 100 && !parked; i++) {
        char *audit = mwt_read_file(w.g.audit);
        parked = audit && strstr(audit, "\"fhir_parked\"") && strstr(audit, "fhirdev-1") &&
                 strstr(audit, "HTTP 422: Observation with sequence 7 is refused");
        free(audit);
        if (!parked)
            mwt_sleep_ms(100);
    }
    cr_expect(parked, "the audit trail says it was parked, with the server's diagnostics");
    char *log = mwt_read_file(w.g.err);
    cr_expect(log && strstr(log, "fhir_refused"), "the log names it");
    free(log);
    mwt_sleep_ms(500);
    cr_expect_eq(count(&w.s, "Observation"), OBSERVATIONS - 1);
    world_stop(&w);
}

/* (e) 429 with Retry-After: 2 is honoured: the next request comes 2 s later, not after the
 * 200 ms backoff. */
Test(fhir_delivery, retry_after_is_honoured)
{
    world w;
    world_start(&w, 1);
    control(&w.s, "/_control/fail?status=429&count=1&retryAfter=2");
    gateway_start(&w.g, &w.pki, &w.s);
    mwt_proc devs[1];
    devices_start(devs, 1, &w, "0");
    devices_finish(devs, 1);
    expect_all_once(&w, 1, 0);
    cr_expect_eq(stat_of(&w.s, "refused"), 1);
    long gap = stat_of(&w.s, "gapAfterRefusalMs");
    cr_expect_geq(gap, 1900, "the next request waited for Retry-After (%ld ms)", gap);
    world_stop(&w);
}

/* 401 (a token the server does not take) is the destination's problem, not the entry's:
 * retried, nothing parked, everything arrives once the server takes it again. */
Test(fhir_delivery, unauthorized_is_retried_not_parked)
{
    world w;
    world_start(&w, 1);
    control(&w.s, "/_control/fail?status=401&count=3");
    gateway_start(&w.g, &w.pki, &w.s);
    mwt_proc devs[1];
    devices_start(devs, 1, &w, "0");
    devices_finish(devs, 1);
    expect_all_once(&w, 1, 0);
    cr_expect_eq(stat_of(&w.s, "refused"), 3);
    char *audit = mwt_read_file(w.g.audit);
    cr_expect(audit == NULL || strstr(audit, "fhir_parked") == NULL, "nothing parked");
    free(audit);
    world_stop(&w);
}

/* A server that wants TLS with a client certificate and a bearer token: the gateway's
 * --fhir-ca, --fhir-cert, --fhir-key and --fhir-token get everything there, once. */
Test(fhir_delivery, https_with_a_client_certificate_and_a_bearer_token)
{
    world w;
    memset(&w, 0, sizeof w);
    setenv("MW_FHIR_BACKOFF_MS", "200", 1);
    cr_assert(mwt_pki_make(&w.pki));
    cr_assert(mwt_pki_devices(&w.pki, "fhirdev", 2));
    snprintf(w.dir, sizeof w.dir, "%s", mwt_tmpdir());
    cr_assert(mwt_openssl_cert(w.dir, "hospital-ca", "hospital-ca", NULL));
    cr_assert(mwt_openssl_cert(w.dir, "fhir", "localhost", "hospital-ca"));
    cr_assert(mwt_openssl_cert(w.dir, "client-ca", "client-ca", NULL));
    cr_assert(mwt_openssl_cert(w.dir, "gateway-client", "medwire-gateway-7", "client-ca"));
    static char crt[400], key[400], cca[400], hca[400], gcrt[400], gkey[400], tok[400];
    in_dir(crt, sizeof crt, w.dir, "fhir.crt");
    in_dir(key, sizeof key, w.dir, "fhir.key");
    in_dir(cca, sizeof cca, w.dir, "client-ca.crt");
    in_dir(hca, sizeof hca, w.dir, "hospital-ca.crt");
    in_dir(gcrt, sizeof gcrt, w.dir, "gateway-client.crt");
    in_dir(gkey, sizeof gkey, w.dir, "gateway-client.key");
    in_dir(tok, sizeof tok, w.dir, "token");
    write_text(tok, "s3cret.Token-42\n");
    const char *smore[] = {"--tls-cert", crt,       "--tls-key",       key, "--tls-ca",
                           cca,          "--token", "s3cret.Token-42", NULL};
    memcpy(w.s.more, smore, sizeof smore);
    server_start(&w.s, w.dir);
    snprintf(w.g.url, sizeof w.g.url, "https://localhost:%d/", w.s.fhir_port);
    const char *gmore[] = {"--fhir-ca",    hca, "--fhir-cert", gcrt, "--fhir-key", gkey,
                           "--fhir-token", tok, NULL};
    memcpy(w.g.more, gmore, sizeof gmore);
    gateway_start(&w.g, &w.pki, &w.s);
    mwt_proc devs[2];
    devices_start(devs, 2, &w, "0");
    devices_finish(devs, 2);
    expect_all_once(&w, 2, 0);
    cr_expect_eq(stat_of(&w.s, "unauthorized"), 0, "the token went with every request");
    int st = 0;
    char *b = http(&w.s, "GET", "/_control/stats", &st);
    cr_expect(strstr(b, "\"clients\":[\"medwire-gateway-7\"]") != NULL,
              "the server saw the gateway's client certificate: %s", b);
    free(b);
    world_stop(&w);
}

/* --fhir-token: a file that cannot be read stops the start (exit 2), naming the option; so
 * do a key without its certificate and a URL that is not http(s). */
Test(fhir_delivery, bad_fhir_options_stop_the_start)
{
    char dir[300], err[400], missing[400];
    snprintf(dir, sizeof dir, "%s", mwt_tmpdir());
    in_dir(err, sizeof err, dir, "gateway.err");
    in_dir(missing, sizeof missing, dir, "no-such-token");
    const char *argv[] = {mwt_bin("medwire-gateway"),
                          "--listen",
                          "127.0.0.1:0",
                          "--ca",
                          "ca",
                          "--cert",
                          "cert",
                          "--key",
                          "key",
                          "--fhir-server",
                          "http://127.0.0.1:9/",
                          "--fhir-token",
                          missing,
                          NULL};
    cr_assert_eq(mwt_run(argv, NULL, err, 20000), 2);
    char *text = mwt_read_file(err);
    cr_expect(text && strstr(text, "--fhir-token: cannot read") && strstr(text, missing), "%s",
              text ? text : "");
    free(text);
    argv[11] = "--fhir-key";
    cr_assert_eq(mwt_run(argv, NULL, err, 20000), 2);
    text = mwt_read_file(err);
    cr_expect(text && strstr(text, "--fhir-cert and --fhir-key go together"), "%s",
              text ? text : "");
    free(text);
    argv[10] = "mllp://127.0.0.1:9";
    argv[11] = NULL;
    cr_assert_eq(mwt_run(argv, NULL, err, 20000), 2);
    text = mwt_read_file(err);
    cr_expect(text && strstr(text, "--fhir-server must be an http:// or https:// base URL"), "%s",
              text ? text : "");
    free(text);
}

/* (h) A shared outbox (PostgreSQL): the sender retrying a server that answers 503 longer than
 * its claim's lease asks before each try; a row another gateway took over meanwhile (here the
 * test takes it, as gw-x) is not sent by this one too. */
Test(fhir_delivery, a_sender_past_its_lease_leaves_a_row_taken_over_meanwhile)
{
#ifndef MW_HAVE_LIBPQ
    cr_skip_test("this build has no libpq (Debian package libpq-dev)");
#endif
    if (!mwt_pg_available())
        cr_skip_test("PostgreSQL's server is not installed (Debian package postgresql)");
    world w;
    world_start(&w, 1);
    mwt_pg pg;
    cr_assert(mwt_pg_start(&pg), "the database starts");
    cr_assert_eq(setenv("MW_OUTBOX_LEASE_MS", "300", 1), 0);
    snprintf(w.g.store, sizeof w.g.store, "%s", pg.url);
    const char *more[] = {"--gateway-id", "gw-a", NULL};
    memcpy(w.g.more, more, sizeof more);
    control(&w.s, "/_control/fail?status=503&count=1000000");
    gateway_start(&w.g, &w.pki, &w.s);
    mwt_proc dev;
    cr_assert(mwt_device_start(&dev, &w.pki, w.g.addr, "fhirdev-1", "1", "0", "45"));
    cr_assert_eq(mwt_proc_wait(&dev, 50000), 0, "the device is acknowledged");
    cr_assert(mwt_pg_wait_for(&pg, "SELECT claimed_by FROM outbox", "gw-a", 10000));
    char out[400];
    in_dir(out, sizeof out, w.dir, "u.out");
    cr_assert_eq(mwt_pg_sql(&pg,
                            "UPDATE outbox SET claimed_by = 'gw-x', claimed_until = now() +"
                            " interval '1 hour'",
                            out),
                 0);
    const char *lost[] = {"outbox_claim_lost", NULL};
    for (int i = 0; i < 100 && mwt_count_lines(w.g.err, lost) == 0; i++)
        mwt_sleep_ms(100);
    cr_expect_eq(mwt_count_lines(w.g.err, lost), 1u, "the gateway says which row it left");
    control(&w.s, "/_control/fail?status=503&count=0");
    mwt_sleep_ms(1000);
    cr_expect_eq(count(&w.s, "Observation"), 0, "the row gw-x holds is not gw-a's to send");
    /* gw-x's lease runs out: gw-a takes the row and delivers it, once. */
    cr_assert_eq(
        mwt_pg_sql(&pg, "UPDATE outbox SET claimed_until = now() - interval '1 second'", out), 0);
    cr_expect(mwt_pg_wait_for(&pg, "SELECT count(*) FROM outbox", "0", 10000));
    cr_expect_eq(wait_count(&w.s, 1), 1);
    world_stop(&w);
    mwt_pg_stop(&pg);
    unsetenv("MW_OUTBOX_LEASE_MS");
}
