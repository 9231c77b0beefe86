/* SPDX-License-Identifier: Apache-2.0 */
/* test_both_destinations.c -- one medwire-gateway delivering every message to two hospital
 * systems at once, each written by others: python-hl7's MLLP listener (tests/hl7/mllp_peer.py)
 * and Medplum's FHIR router (tests/fhir-server/server.js). 20 real medwire-device processes
 * send observations and alarms while each destination is away for 30 s and the gateway is
 * SIGKILLed once: each message reaches each destination, once (by its control id at
 * the MLLP listener, by its identifier at the FHIR server), nothing fails to parse or validate,
 * and the associated devices' messages carry their patient and bed. */
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

#include "support/programs.h"

/* How many: Medplum's in-memory repository slows down with what it holds (each conditional
 * create searches all of it: 210 took 37 s, 414 took 170 s on the CI machine), so the volume is
 * what it can take in a test's time. Two devices send 50 observations, enough for
 * medwire-device's alarm (every 25th SpO2 reading); the other 18 send 8. */
#define DEVICES           20
#define LONG              2
#define ASSOCIATED        10 /* bothdev-1 .. bothdev-10 have a patient and a bed */
#define LONG_OBS          50
#define SHORT_OBS         8
#define MESSAGES_PER_LONG (LONG_OBS + LONG_OBS / 50) /* one alarm */
#define MESSAGES          (LONG * MESSAGES_PER_LONG + (DEVICES - LONG) * SHORT_OBS)
#define WITH_PATIENT      (LONG * MESSAGES_PER_LONG + (ASSOCIATED - LONG) * SHORT_OBS)

typedef struct world {
    mwt_pki pki;
    char dir[300];
    /* The MLLP listener: restarted on the port it had. */
    mwt_proc hl7;
    char hl7_port[16], hl7_port_file[400], ids[400], errors[400], fields[400];
    /* The FHIR server. */
    mwt_proc fhir;
    int fhir_port;
    /* The gateway: restarted on the same address, store and outbox. */
    mwt_proc gw;
    char store[400], port_file[400], audit[400], err[400], addr[64];
    char hl7_url[64], fhir_url[64], assoc[420];
} world;

static void path_in(char *out, size_t size, const char *dir, const char *name)
{
    snprintf(out, size, "%s/%s", dir, name);
}

static void hl7_start(world *w)
{
    const char *python = getenv("MW_HL7_PYTHON");
    const char *src = getenv("MW_SOURCE_DIR");
    cr_assert(python && src, "run through ctest");
    char script[600], err[400];
    snprintf(script, sizeof script, "%s/tests/hl7/mllp_peer.py", src);
    path_in(err, sizeof err, w->dir, "mllp.err");
    remove(w->hl7_port_file);
    const char *argv[] = {python,     script,    "--port-file", w->hl7_port_file,
                          "--ids",    w->ids,    "--errors",    w->errors,
                          "--fields", w->fields, "--port",      w->hl7_port[0] ? w->hl7_port : "0",
                          NULL};
    cr_assert(mwt_proc_start(&w->hl7, argv, NULL, err));
    int port = mwt_wait_port(w->hl7_port_file, 15000);
    cr_assert_gt(port, 0, "the MLLP listener did not start (see %s)", err);
    snprintf(w->hl7_port, sizeof w->hl7_port, "%d", port);
}

static void fhir_start(world *w)
{
    const char *node = getenv("MW_NODE");
    const char *sdir = getenv("MW_FHIR_SERVER_DIR");
    cr_assert(node && node[0] && sdir, "run through ctest (node is needed)");
    char script[600], port_file[400], err[400];
    snprintf(script, sizeof script, "%s/server.js", sdir);
    path_in(port_file, sizeof port_file, w->dir, "fhir.port");
    path_in(err, sizeof err, w->dir, "fhir.err");
    const char *argv[] = {node, script, port_file, NULL};
    cr_assert(mwt_proc_start(&w->fhir, argv, NULL, err));
    w->fhir_port = mwt_wait_port(port_file, 30000);
    cr_assert_gt(w->fhir_port, 0, "the FHIR server did not start (see %s)", err);
}

/* One HTTP/1.0 exchange with the FHIR server: the answer's body (malloc'd) and *status. */
static char *fhir_http(const world *w, const char *method, const char *path, int *status)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    cr_assert_geq(fd, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)w->fhir_port)};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    *status = 0;
    if (connect(fd, (struct sockaddr *)&sa, sizeof sa) != 0) {
        close(fd);
        return strdup(""); /* down (on purpose): status 0 */
    }
    char req[512];
    int n =
        snprintf(req, sizeof req, "%s %s HTTP/1.0\r\nHost: 127.0.0.1\r\nContent-Length: 0\r\n\r\n",
                 method, path);
    cr_assert_eq(write(fd, req, (size_t)n), (ssize_t)n);
    size_t cap = 1u << 22, len = 0;
    char *buf = malloc(cap);
    cr_assert_not_null(buf);
    struct pollfd p = {.fd = fd, .events = POLLIN};
    ssize_t r;
    while (len + 1 < cap && poll(&p, 1, 20000) > 0 && (r = read(fd, buf + len, cap - 1 - len)) > 0)
        len += (size_t)r;
    close(fd);
    buf[len] = '\0';
    sscanf(buf, "HTTP/1.%*d %d", status);
    char *body = strstr(buf, "\r\n\r\n");
    char *out = strdup(body ? body + 4 : "");
    free(buf);
    return out;
}

static long fhir_total(const world *w, const char *query)
{
    int st = 0;
    char *b = fhir_http(w, "GET", query, &st);
    const char *t = st == 200 ? strstr(b, "\"total\":") : NULL;
    long n = t ? strtol(t + 8, NULL, 10) : -1;
    free(b);
    return n;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Sorted copies of @p ids[0..n): how many distinct values, and how many repeats. */
static size_t distinct(char **ids, size_t n, size_t *repeats)
{
    qsort(ids, n, sizeof ids[0], cmp_str);
    size_t d = 0;
    *repeats = 0;
    for (size_t i = 0; i < n; i++) {
        if (i == 0 || strcmp(ids[i], ids[i - 1]) != 0)
            d++;
        else
            (*repeats)++;
    }
    return d;
}

/* The messages at the MLLP listener: control ids "bothdev-N-SPACE-SEQ" (the gateway's own
 * communication-loss events left out). */
static size_t hl7_distinct(const world *w, size_t *repeats)
{
    *repeats = 0;
    char *text = mwt_read_lines(w->ids);
    if (text == NULL)
        return 0;
    static char *ids[4 * MESSAGES];
    size_t n = 0;
    for (char *save = NULL, *l = strtok_r(text, "\n", &save); l && n < 4 * MESSAGES;
         l = strtok_r(NULL, "\n", &save)) {
        if (strstr(l, "-loss-") || strstr(l, "-restored-"))
            continue;
        int dev = 0;
        unsigned long long space = 0, seq = 0;
        cr_expect_eq(sscanf(l, "bothdev-%d-%llx-%llu", &dev, &space, &seq), 3, "id %s", l);
        cr_expect(dev >= 1 && dev <= DEVICES && seq >= 1 &&
                      seq <= (dev <= LONG ? MESSAGES_PER_LONG : SHORT_OBS),
                  "id %s", l);
        ids[n++] = l;
    }
    size_t d = distinct(ids, n, repeats);
    free(text);
    return d;
}

/* Every Observation at the FHIR server, page by page: how many distinct message identifiers,
 * repeats, and how many refer to a Patient. */
static size_t fhir_distinct(const world *w, size_t *repeats, size_t *with_subject)
{
    static const char start[] = "{\"resourceType\":\"Observation\"";
    static const char ident[] = "\"urn:medwire:message\",\"value\":\"";
    static char *ids[2 * MESSAGES];
    char *pages[8] = {NULL};
    size_t n = 0;
    *with_subject = 0;
    for (int page = 0; page < 8; page++) {
        char q[100];
        snprintf(q, sizeof q, "/Observation?_count=500&_offset=%d", page * 500);
        int st = 0;
        char *b = pages[page] = fhir_http(w, "GET", q, &st);
        cr_assert_eq(st, 200, "GET %s: %.300s", q, b);
        size_t before = n;
        for (char *p = strstr(b, start); p && n < 2 * MESSAGES;) {
            char *next = strstr(p + 1, start);
            if (next)
                next[-1] = '\0';
            char *id = strstr(p, ident);
            cr_assert_not_null(id, "an Observation without its message identifier");
            id += sizeof ident - 1;
            char *end = strchr(id, '"');
            cr_assert_not_null(end);
            *end = '\0';
            ids[n++] = id;
            if (strstr(end + 1, "\"subject\":{\"reference\":\"Patient/"))
                (*with_subject)++;
            p = next;
        }
        if (n - before < 500)
            break;
    }
    size_t d = distinct(ids, n, repeats);
    for (int i = 0; i < 8; i++)
        free(pages[i]);
    return d;
}

static void gateway_start(world *w)
{
    bool restart = w->addr[0] != '\0';
    const char *extra[] = {"--store",      w->store,   "--audit",       w->audit,
                           "--hl7",        w->hl7_url, "--fhir-server", w->fhir_url,
                           "--fhir-batch", "8",        w->assoc,        NULL};
    cr_assert(mwt_gateway_start(&w->gw, &w->pki, restart ? w->addr : "127.0.0.1:0", w->port_file,
                                extra, w->err, w->addr, sizeof w->addr),
              "the gateway did not start (see %s)", w->err);
}

static void write_associations(const world *w, const char *path)
{
    FILE *f = fopen(path, "w");
    cr_assert_not_null(f, "%s", path);
    for (int i = 1; i <= ASSOCIATED; i++)
        fprintf(f, "bothdev-%d\tMRN-%d\tDoe^Pat%d\tICU^%d^A\n", i, i, i, i);
    cr_assert_eq(fclose(f), 0);
    (void)w;
}

/* The fields the listener read from each message (id, PID-3.1, PID-3.5, PID-5.1, PID-5.2,
 * PV1-2, PV1-3.1, PV1-3.2, PV1-3.3): an associated device's name its patient and bed, the
 * others' none. Returns the lines checked. */
static size_t check_patients(const world *w)
{
    char *text = mwt_read_lines(w->fields);
    cr_assert_not_null(text, "no fields at the MLLP listener");
    size_t lines = 0;
    for (char *save = NULL, *l = strtok_r(text, "\n", &save); l; l = strtok_r(NULL, "\n", &save)) {
        int dev = 0;
        if (sscanf(l, "bothdev-%d-", &dev) != 1)
            continue;
        const char *rest = strchr(l, '\t');
        cr_assert_not_null(rest);
        char want[160];
        if (dev <= ASSOCIATED)
            snprintf(want, sizeof want, "\tMRN-%d\tMR\tDoe\tPat%d\tI\tICU\t%d\tA", dev, dev, dev);
        else
            snprintf(want, sizeof want, "\t\t\t\t\tU\t\t\t");
        cr_expect_str_eq(rest, want, "bothdev-%d", dev);
        lines++;
    }
    free(text);
    return lines;
}

static void wait_delivered(const world *w, int seconds)
{
    size_t rep = 0, subj = 0;
    for (int i = 0; i < seconds * 2; i++) {
        if (hl7_distinct(w, &rep) >= MESSAGES &&
            fhir_total(w, "/Observation?_summary=count") >= MESSAGES)
            return;
        mwt_sleep_ms(500);
    }
    cr_expect_fail("not all delivered in %d s: %zu at the MLLP listener, %zu at the FHIR server",
                   seconds, hl7_distinct(w, &rep), fhir_distinct(w, &rep, &subj));
}

Test(both_destinations, each_message_reaches_both_through_outages_and_a_kill, .timeout = 420)
{
    world w;
    memset(&w, 0, sizeof w);
    /* The FHIR sender retries every 200 ms (the MLLP one keeps its production backoff, up to
     * 30 s): the outage is the destination's, not the retry schedule's. */
    setenv("MW_FHIR_BACKOFF_MS", "200", 1);
    cr_assert(mwt_pki_make(&w.pki));
    cr_assert(mwt_pki_devices(&w.pki, "bothdev", DEVICES));
    snprintf(w.dir, sizeof w.dir, "%s", mwt_tmpdir());
    path_in(w.hl7_port_file, sizeof w.hl7_port_file, w.dir, "mllp.port");
    path_in(w.ids, sizeof w.ids, w.dir, "ids.txt");
    path_in(w.errors, sizeof w.errors, w.dir, "errors.txt");
    path_in(w.fields, sizeof w.fields, w.dir, "fields.tsv");
    path_in(w.store, sizeof w.store, w.dir, "store.db");
    path_in(w.port_file, sizeof w.port_file, w.dir, "gateway.port");
    path_in(w.audit, sizeof w.audit, w.dir, "audit.jsonl");
    path_in(w.err, sizeof w.err, w.dir, "gateway.err");
    char assoc_file[400];
    path_in(assoc_file, sizeof assoc_file, w.dir, "assoc.tsv");
    write_associations(&w, assoc_file);
    snprintf(w.assoc, sizeof w.assoc, "--associations=%s", assoc_file);
    hl7_start(&w);
    fhir_start(&w);
    snprintf(w.hl7_url, sizeof w.hl7_url, "mllp://127.0.0.1:%s", w.hl7_port);
    snprintf(w.fhir_url, sizeof w.fhir_url, "http://127.0.0.1:%d/", w.fhir_port);
    gateway_start(&w);

    /* The devices send for some 25 s: 50 observations 500 ms apart, or 8 3 s apart. */
    mwt_proc devs[DEVICES];
    for (int i = 0; i < DEVICES; i++) {
        char name[32];
        snprintf(name, sizeof name, "bothdev-%d", i + 1);
        bool long_one = i < LONG;
        cr_assert(mwt_device_start(&devs[i], &w.pki, w.addr, name, long_one ? "50" : "8",
                                   long_one ? "500" : "3000", "120"));
    }
    mwt_sleep_ms(3000);
    /* The HL7 listener goes away for 30 s ... */
    mwt_proc_stop(&w.hl7, SIGKILL);
    mwt_sleep_ms(3000);
    /* ... and the FHIR server, refusing connections, for 30 s from now ... */
    int st = 0;
    char *b = fhir_http(&w, "POST", "/_control/down?ms=30000", &st);
    cr_assert_eq(st, 200, "%s", b);
    free(b);
    mwt_sleep_ms(4000);
    /* ... while the gateway dies without a word and comes back. */
    cr_assert_eq(mwt_proc_stop(&w.gw, SIGKILL), 128 + SIGKILL);
    gateway_start(&w);
    mwt_sleep_ms(20000);
    cr_expect_eq(fhir_total(&w, "/metadata"), -1, "the FHIR server is still down");
    hl7_start(&w); /* back after 30 s, on the same port */
    for (int i = 0; i < DEVICES; i++)
        cr_expect_eq(mwt_proc_wait(&devs[i], 120000), 0, "bothdev-%d: not all acknowledged", i + 1);

    wait_delivered(&w, 150);
    mwt_sleep_ms(1000); /* and nothing more after a while */
    size_t hl7_repeats = 0, fhir_repeats = 0, with_subject = 0;
    cr_expect_eq(hl7_distinct(&w, &hl7_repeats), (size_t)MESSAGES,
                 "every message at the MLLP listener");
    cr_expect_eq(fhir_distinct(&w, &fhir_repeats, &with_subject), (size_t)MESSAGES,
                 "every message at the FHIR server");
    cr_expect_eq(fhir_repeats, 0u, "no message twice at the FHIR server (ifNoneExist)");
    cr_expect_eq(fhir_total(&w, "/Observation?_summary=count"), MESSAGES);
    /* A resend after the kill carries the same control id: the listener can tell, and the
     * count above is of distinct ids. Only what was in flight at the kill may be resent. */
    cr_expect_leq(hl7_repeats, 64u, "%zu resends at the MLLP listener", hl7_repeats);
    cr_expect_eq(with_subject, (size_t)WITH_PATIENT,
                 "the associated devices' Observations have their Patient");
    cr_expect_eq(fhir_total(&w, "/Patient?_summary=count"), ASSOCIATED);
    cr_expect_eq(fhir_total(&w, "/Device?_summary=count"), DEVICES);
    cr_expect_geq(check_patients(&w), (size_t)MESSAGES, "patients and beds at the listener");
    char *errors = mwt_read_file(w.errors);
    cr_expect_null(errors, "python-hl7 refused messages:\n%.2000s", errors ? errors : "");
    free(errors);
    char *audit = mwt_read_file(w.audit);
    cr_expect(audit && !strstr(audit, "_parked\"") && !strstr(audit, "_outbox_full\""),
              "nothing parked or refused for a full outbox");
    free(audit);
    char *log = mwt_read_file(w.err);
    cr_expect(log && strstr(log, "hl7_destination_down") && strstr(log, "fhir_destination_down"),
              "the log says each destination was down");
    free(log);
    cr_expect_eq(mwt_proc_stop(&w.gw, SIGTERM), 0, "the gateway exits 0 on SIGTERM");
    mwt_proc_stop(&w.hl7, SIGKILL);
    mwt_proc_stop(&w.fhir, SIGKILL);
}
