/* SPDX-License-Identifier: Apache-2.0 */
/* test_hl7_delivery.c -- the real medwire-gateway delivering to python-hl7's MLLP server (a
 * listener written by others) while real medwire-device processes send: every message arrives,
 * and one that arrives twice carries the same control id. */
#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "support/programs.h"

#define DEVICES      5
#define OBSERVATIONS 40

typedef struct peer {
    mwt_proc proc;
    char port_file[400], ids[400], errors[400], rejected[400], fields[400], frames[400], port[16];
    const char *reject_seq; /* NULL: accept every message */
    /* mllps: the listener's certificate and key, the CA of its clients, where their CNs go */
    char tls_cert[400], tls_key[400], tls_ca[400], clients[400];
} peer;

typedef struct gateway {
    mwt_proc proc;
    char dir[300], store[400], port_file[400], audit[400], err[400], addr[64], hl7[64];
    const char *more[12]; /* further options, NULL-terminated */
} gateway;

/* @p dir/@p name into @p out. */
static void in_dir(char *out, size_t size, const char *dir, const char *name)
{
    snprintf(out, size, "%s/%s", dir, name);
}

/* Starts python-hl7's MLLP server; on the port it had before when p->port is set. */
static void peer_start(peer *p, const char *dir)
{
    const char *python = getenv("MW_HL7_PYTHON");
    const char *src = getenv("MW_SOURCE_DIR");
    cr_assert(python && src, "run through ctest");
    char script[600];
    snprintf(script, sizeof script, "%s/tests/hl7/mllp_peer.py", src);
    in_dir(p->port_file, sizeof p->port_file, dir, "peer.port");
    in_dir(p->ids, sizeof p->ids, dir, "ids.txt");
    in_dir(p->errors, sizeof p->errors, dir, "errors.txt");
    in_dir(p->rejected, sizeof p->rejected, dir, "rejected.txt");
    in_dir(p->fields, sizeof p->fields, dir, "fields.tsv");
    in_dir(p->frames, sizeof p->frames, dir, "frames.tsv");
    remove(p->port_file);
    const char *argv[] = {python,
                          script,
                          "--port-file",
                          p->port_file,
                          "--ids",
                          p->ids,
                          "--errors",
                          p->errors,
                          "--rejected",
                          p->rejected,
                          "--fields",
                          p->fields,
                          "--frames",
                          p->frames,
                          "--port",
                          p->port[0] ? p->port : "0",
                          p->reject_seq ? "--reject-seq" : NULL,
                          p->reject_seq,
                          NULL,
                          NULL,
                          NULL,
                          NULL,
                          NULL,
                          NULL,
                          NULL,
                          NULL,
                          NULL};
    if (p->tls_cert[0]) {
        size_t at = p->reject_seq ? 18 : 16;
        const char *tls[] = {"--tls-cert", p->tls_cert, "--tls-key", p->tls_key,
                             "--tls-ca",   p->tls_ca,   "--clients", p->clients};
        for (size_t i = 0; i < 8; i++)
            argv[at + i] = tls[i];
    }
    char err[500];
    snprintf(err, sizeof err, "%s/peer.err", dir);
    cr_assert(mwt_proc_start(&p->proc, argv, NULL, err));
    int port = mwt_wait_port(p->port_file, 15000);
    cr_assert_gt(port, 0, "the MLLP peer did not start");
    snprintf(p->port, sizeof p->port, "%d", port);
}

/* Starts the gateway (again on the same port, store and outbox when g->addr is set). */
static void gateway_start(gateway *g, const mwt_pki *pki, const peer *p)
{
    bool restart = g->addr[0] != '\0';
    if (!restart) {
        snprintf(g->dir, sizeof g->dir, "%s", mwt_tmpdir());
        in_dir(g->store, sizeof g->store, g->dir, "store.db");
        in_dir(g->port_file, sizeof g->port_file, g->dir, "port");
        in_dir(g->audit, sizeof g->audit, g->dir, "audit.jsonl");
        in_dir(g->err, sizeof g->err, g->dir, "gateway.err");
        if (g->hl7[0] == '\0')
            snprintf(g->hl7, sizeof g->hl7, "mllp://127.0.0.1:%s", p->port);
    }
    const char *extra[20] = {"--store", g->store, "--audit", g->audit, "--hl7", g->hl7};
    for (size_t i = 0; g->more[i] && i + 7 < sizeof extra / sizeof extra[0]; i++)
        extra[6 + i] = g->more[i];
    char listen[64];
    snprintf(listen, sizeof listen, "%s", restart ? g->addr : "127.0.0.1:0");
    cr_assert(mwt_gateway_start(&g->proc, pki, listen, g->port_file, extra, g->err, g->addr,
                                sizeof g->addr),
              "the gateway did not start");
}

static void devices_start(mwt_proc *devs, int n, const mwt_pki *pki, const gateway *g,
                          const char *interval_ms)
{
    for (int i = 0; i < n; i++) {
        char name[32];
        snprintf(name, sizeof name, "hl7dev-%d", i + 1);
        cr_assert(mwt_device_start(&devs[i], pki, g->addr, name, "40", interval_ms, "45"));
    }
}

static void devices_finish(mwt_proc *devs, int n)
{
    for (int i = 0; i < n; i++)
        cr_assert_eq(mwt_proc_wait(&devs[i], 50000), 0, "device %d: not all acknowledged", i + 1);
}

typedef struct tally {
    size_t lines, distinct, repeats;
} tally;

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Control ids received: how many lines, how many distinct. Each must be one of the devices'
 * ("hl7dev-N-SPACE-SEQ" with SEQ from 1 to 40). */
static tally count_ids(const char *path)
{
    tally t = {0, 0, 0};
    char *text = mwt_read_lines(path);
    if (text == NULL)
        return t;
    char *lines[4096];
    for (char *save = NULL, *l = strtok_r(text, "\n", &save); l && t.lines < 4096;
         l = strtok_r(NULL, "\n", &save)) {
        if (strstr(l, "-loss-") || strstr(l, "-restored-"))
            continue; /* the gateway's communication-loss events, not the devices' messages */
        int dev = 0;
        unsigned long long space = 0, seq = 0;
        cr_expect_eq(sscanf(l, "hl7dev-%d-%llx-%llu", &dev, &space, &seq), 3, "id %s", l);
        cr_expect(dev >= 1 && dev <= DEVICES && seq >= 1 && seq <= OBSERVATIONS, "id %s", l);
        lines[t.lines++] = l;
    }
    qsort(lines, t.lines, sizeof lines[0], cmp_str);
    for (size_t i = 0; i < t.lines; i++) {
        if (i == 0 || strcmp(lines[i], lines[i - 1]) != 0)
            t.distinct++;
        else
            t.repeats++;
    }
    free(text);
    return t;
}

/* Waits until the peer has every message (or 30 s). */
static tally wait_all(const peer *p)
{
    tally t = {0, 0, 0};
    for (int i = 0; i < 300; i++) {
        t = count_ids(p->ids);
        if (t.distinct >= DEVICES * OBSERVATIONS)
            break;
        mwt_sleep_ms(100);
    }
    return t;
}

static void no_parse_errors(const peer *p)
{
    char *errors = mwt_read_file(p->errors);
    cr_expect_null(errors, "python-hl7 refused messages:\n%s", errors ? errors : "");
    free(errors);
}

/* A PKI with the devices, the MLLP peer (refusing messages ending in -@p reject_seq, if not
 * NULL) and the gateway delivering to it. */
typedef struct world {
    mwt_pki pki;
    peer p;
    gateway g;
    char dir[300];
} world;

static void world_start(world *w, const char *reject_seq)
{
    memset(w, 0, sizeof *w);
    cr_assert(mwt_pki_make(&w->pki));
    cr_assert(mwt_pki_devices(&w->pki, "hl7dev", DEVICES));
    snprintf(w->dir, sizeof w->dir, "%s", mwt_tmpdir());
    w->p.reject_seq = reject_seq;
    peer_start(&w->p, w->dir);
    gateway_start(&w->g, &w->pki, &w->p);
}

static void world_stop(world *w)
{
    cr_expect_eq(mwt_proc_stop(&w->g.proc, SIGTERM), 0, "the gateway exits 0 on SIGTERM");
    mwt_proc_stop(&w->p.proc, SIGKILL);
}

Test(hl7_delivery, every_message_arrives_once)
{
    world w;
    world_start(&w, NULL);
    mwt_proc devs[DEVICES];
    devices_start(devs, DEVICES, &w.pki, &w.g, "0");
    devices_finish(devs, DEVICES);
    tally t = wait_all(&w.p);
    cr_expect_eq(t.distinct, DEVICES * OBSERVATIONS, "every message arrives");
    cr_expect_eq(t.repeats, 0u, "none twice");
    no_parse_errors(&w.p);
    /* The outbox is owner-only. */
    char outbox[500];
    snprintf(outbox, sizeof outbox, "%s.outbox", w.g.store);
    struct stat st;
    cr_assert_eq(stat(outbox, &st), 0);
    cr_expect_eq(st.st_mode & 0777, 0600);
    world_stop(&w);
}

Test(hl7_delivery, the_hospital_down_for_a_while)
{
    world w;
    world_start(&w, NULL);
    mwt_proc_stop(&w.p.proc, SIGKILL); /* down before the first message */
    mwt_proc devs[DEVICES];
    devices_start(devs, DEVICES, &w.pki, &w.g, "0");
    /* Custody passes to the gateway's outbox while the hospital is away. */
    devices_finish(devs, DEVICES);
    mwt_sleep_ms(2000);
    peer_start(&w.p, w.dir); /* back on the same port */
    tally t = wait_all(&w.p);
    cr_expect_eq(t.distinct, DEVICES * OBSERVATIONS, "every message arrives once it is back");
    no_parse_errors(&w.p);
    /* The backlog goes several messages of a device to a frame (--hl7-batch, 16 by default). */
    const char *any[] = {"", NULL};
    size_t frames = mwt_count_lines(w.p.frames, any);
    cr_expect_gt(frames, 0u);
    cr_expect_leq(frames, (size_t)(DEVICES * OBSERVATIONS / 4), "%zu frames for %d messages",
                  frames, DEVICES * OBSERVATIONS);
    char *log = mwt_read_file(w.g.err);
    cr_expect(log && strstr(log, "hl7_destination_down"), "the log says it was down");
    free(log);
    world_stop(&w);
}

Test(hl7_delivery, the_gateway_killed_mid_delivery)
{
    world w;
    world_start(&w, NULL);
    mwt_proc devs[DEVICES];
    devices_start(devs, DEVICES, &w.pki, &w.g, "25");
    mwt_sleep_ms(600);
    cr_assert_eq(mwt_proc_stop(&w.g.proc, SIGKILL), 128 + SIGKILL);
    tally before = count_ids(w.p.ids);
    cr_expect_lt(before.distinct, DEVICES * OBSERVATIONS, "killed before the end");
    gateway_start(&w.g, &w.pki, &w.p); /* same port, store and outbox */
    devices_finish(devs, DEVICES);
    tally t = wait_all(&w.p);
    cr_expect_eq(t.distinct, DEVICES * OBSERVATIONS, "every message arrives");
    no_parse_errors(&w.p);
    world_stop(&w);
}

/* A message the hospital keeps refusing (AE) is tried 5 times, then parked and audited; the
 * others, before and after it, arrive. */
/* The lines of @p path that end in @p suffix: refusals of one message sent by itself. */
static size_t count_refused_alone(const char *path, const char *suffix)
{
    char *text = mwt_read_file(path);
    size_t n = 0, sl = strlen(suffix);
    for (char *line = text, *nl; line != NULL && *line != '\0'; line = nl ? nl + 1 : NULL) {
        nl = strchr(line, '\n');
        size_t len = nl ? (size_t)(nl - line) : strlen(line);
        if (len >= sl && memcmp(line + len - sl, suffix, sl) == 0)
            n++;
    }
    free(text);
    return n;
}

Test(hl7_delivery, a_refused_message_is_parked)
{
    world w;
    world_start(&w, "7");
    mwt_proc devs[1];
    devices_start(devs, 1, &w.pki, &w.g, "0");
    devices_finish(devs, 1);
    tally t = {0, 0, 0};
    for (int i = 0; i < 200 && t.distinct < OBSERVATIONS - 1; i++) {
        mwt_sleep_ms(100);
        t = count_ids(w.p.ids);
    }
    cr_expect_eq(t.distinct, OBSERVATIONS - 1, "all but the refused one");
    bool parked = false;
    for (int i = 0; i < 100 && !parked; i++) {
        char *audit = mwt_read_file(w.g.audit);
        parked = audit && strstr(audit, "\"hl7_parked\"") && strstr(audit, "hl7dev-1");
        free(audit);
        if (!parked)
            mwt_sleep_ms(100);
    }
    cr_expect(parked, "the audit trail says it was parked");
    /* A refused merged frame (MSH-10 "...-5+6+7") is followed by the message alone: the five
     * refusals that park it are of the message by itself. */
    cr_expect_eq(count_refused_alone(w.p.rejected, "-7"), 5u, "tried alone 5 times");
    no_parse_errors(&w.p);
    world_stop(&w);
}

/* ---- patients and beds (--associations) ---------------------------------------------------- */

#define PHASE_OBSERVATIONS 5

static void write_text(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    cr_assert_not_null(f, "%s", path);
    fputs(text, f);
    fclose(f);
}

/* Runs hl7dev-1 .. hl7dev-@p n once more (a new sequence space each), each sending
 * PHASE_OBSERVATIONS readings, and waits until the peer has them all; *seen is the number of
 * lines in the peer's fields file, before and after. */
static void phase(world *w, int n, size_t *seen)
{
    mwt_proc devs[DEVICES];
    for (int i = 0; i < n; i++) {
        char name[32];
        snprintf(name, sizeof name, "hl7dev-%d", i + 1);
        cr_assert(mwt_device_start(&devs[i], &w->pki, w->g.addr, name, "5", "0", "45"));
    }
    devices_finish(devs, n);
    size_t want = *seen + (size_t)n * PHASE_OBSERVATIONS, got = 0;
    for (int i = 0; i < 300 && got < want; i++) {
        const char *any[] = {"", NULL};
        got = mwt_count_lines(w->p.fields, any);
        if (got < want)
            mwt_sleep_ms(100);
    }
    cr_assert_eq(got, want, "the peer has every message of the phase");
    *seen = got;
}

/* Each of the last PHASE_OBSERVATIONS x @p n lines of the peer's fields file that is hl7dev-@p
 * dev's has exactly @p want (PID-3.1, PID-3.5, PID-5.1, PID-5.2, PV1-2, PV1-3.1, PV1-3.2,
 * PV1-3.3, tab-separated, as python-hl7 reads them). */
static void expect_patient(const world *w, size_t from, int dev, const char *want)
{
    char *text = mwt_read_file(w->p.fields);
    cr_assert_not_null(text);
    char prefix[32];
    snprintf(prefix, sizeof prefix, "hl7dev-%d-", dev);
    size_t line = 0, found = 0;
    for (char *p = text; *p; line++) {
        char *nl = strchr(p, '\n');
        cr_assert_not_null(nl);
        *nl = '\0';
        char *tab = strchr(p, '\t');
        cr_assert_not_null(tab);
        if (line >= from && strncmp(p, prefix, strlen(prefix)) == 0) {
            found++;
            cr_expect_str_eq(tab + 1, want, "hl7dev-%d, line %zu", dev, line + 1);
        }
        p = nl + 1;
    }
    cr_expect_eq(found, (size_t)PHASE_OBSERVATIONS, "hl7dev-%d's messages in the phase", dev);
    free(text);
}

/* Sends one line to the control socket at @p path; the reply line (static). */
static const char *control_request(const char *path, const char *line)
{
    static char reply[1024];
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    cr_assert_geq(fd, 0);
    struct sockaddr_un sa;
    memset(&sa, 0, sizeof sa);
    sa.sun_family = AF_UNIX;
    snprintf(sa.sun_path, sizeof sa.sun_path, "%s", path);
    cr_assert_eq(connect(fd, (struct sockaddr *)&sa, sizeof sa), 0, "connect %s", path);
    cr_assert_eq(write(fd, line, strlen(line)), (ssize_t)strlen(line));
    size_t n = 0;
    while (n + 1 < sizeof reply && memchr(reply, '\n', n) == NULL) {
        struct pollfd p = {.fd = fd, .events = POLLIN};
        if (poll(&p, 1, 10000) <= 0)
            break;
        ssize_t r = read(fd, reply + n, sizeof reply - 1 - n);
        if (r <= 0)
            break;
        n += (size_t)r;
    }
    reply[n] = '\0';
    close(fd);
    return reply;
}

/* The body of GET /metrics on 127.0.0.1:@p port (HTTP/1.0), malloc'd. */
static char *scrape(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    cr_assert_geq(fd, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    cr_assert_eq(connect(fd, (struct sockaddr *)&sa, sizeof sa), 0);
    const char req[] = "GET /metrics HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n";
    cr_assert_eq(write(fd, req, sizeof req - 1), (ssize_t)(sizeof req - 1));
    size_t cap = 1 << 17, len = 0;
    char *buf = malloc(cap);
    cr_assert_not_null(buf);
    for (;;) {
        struct pollfd p = {.fd = fd, .events = POLLIN};
        if (poll(&p, 1, 5000) <= 0)
            break;
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

/* Waits up to 10 s for the gateway's log to hold @p event @p times. */
static void wait_log(const gateway *g, const char *event, size_t times)
{
    const char *needle[] = {event, NULL};
    size_t n = 0;
    for (int i = 0; i < 100 && n < times; i++) {
        n = mwt_count_lines(g->err, needle);
        if (n < times)
            mwt_sleep_ms(100);
    }
    cr_assert_eq(n, times, "%s in the log", event);
}

/* The hospital gets each associated device's patient (PID-3, PID-5) and bed (PV1-3), escaped
 * and read back by python-hl7, and nothing for the others; SIGHUP and the control socket change
 * them for the messages that follow, and a control change survives the next SIGHUP. */
Test(hl7_delivery, patients_and_beds_follow_the_associations, .timeout = 170)
{
    world w;
    memset(&w, 0, sizeof w);
    cr_assert(mwt_pki_make(&w.pki));
    cr_assert(mwt_pki_devices(&w.pki, "hl7dev", 3));
    snprintf(w.dir, sizeof w.dir, "%s", mwt_tmpdir());
    peer_start(&w.p, w.dir);
    char file[400], ctl[400], mport[400], assoc_opt[420];
    in_dir(file, sizeof file, w.dir, "assoc.tsv");
    in_dir(ctl, sizeof ctl, w.dir, "ctl.sock");
    in_dir(mport, sizeof mport, w.dir, "metrics.port");
    write_text(file, "# bedside monitors of ward 3\n"
                     "hl7dev-1\tMRN-1\tDoe^Jane\tICU^12^B\n"
                     "hl7dev-2\tMRN|2\tO&Brien^Ann~Marie\tER\\1\n");
    snprintf(assoc_opt, sizeof assoc_opt, "--associations=%s", file);
    const char *more[] = {assoc_opt,     "--control",           ctl,   "--metrics",
                          "127.0.0.1:0", "--metrics-port-file", mport, NULL};
    memcpy(w.g.more, more, sizeof more);
    gateway_start(&w.g, &w.pki, &w.p);
    const char *none = "\t\t\t\tU\t\t\t";

    size_t seen = 0, from = 0;
    phase(&w, 3, &seen);
    expect_patient(&w, from, 1, "MRN-1\tMR\tDoe\tJane\tI\tICU\t12\tB");
    expect_patient(&w, from, 2, "MRN|2\tMR\tO&Brien\tAnn~Marie\tI\tER\\1\t\t");
    expect_patient(&w, from, 3, none);

    /* A bad file on reload changes nothing, and the log says where it is wrong. */
    write_text(file, "hl7dev-1\tMRN-1\n");
    cr_assert_eq(kill(w.g.proc.pid, SIGHUP), 0);
    wait_log(&w.g, "associations_reload_failed", 1);
    char *log = mwt_read_file(w.g.err);
    cr_expect(log && strstr(log, "assoc.tsv:1: 2 fields where 4 are expected"), "%s",
              log ? log : "");
    free(log);
    write_text(file, "hl7dev-1\tMRN-1\tDoe^Jane\tICU^14^A\n"
                     "hl7dev-3\tMRN-3\tRoe\tWARD-5\n");
    cr_assert_eq(kill(w.g.proc.pid, SIGHUP), 0);
    wait_log(&w.g, "associations_reloaded", 1);
    from = seen;
    phase(&w, 3, &seen);
    expect_patient(&w, from, 1, "MRN-1\tMR\tDoe\tJane\tI\tICU\t14\tA");
    expect_patient(&w, from, 2, none);
    expect_patient(&w, from, 3, "MRN-3\tMR\tRoe\t\tI\tWARD-5\t\t");

    /* The control socket: in force for the next messages, and written to the file. */
    cr_expect_str_eq(control_request(ctl, "{\"device\":\"hl7dev-2\",\"command\":\"associate\","
                                          "\"patient_id\":\"MRN-2b\",\"patient_name\":\"Poe^"
                                          "Edgar\",\"location\":\"ICU^1^C\"}\n"),
                     "{\"ok\":true,\"device\":\"hl7dev-2\",\"kept\":\"written to the "
                     "--associations file\"}\n");
    cr_expect_str_eq(control_request(ctl, "{\"device\":\"hl7dev-1\",\"command\":\"dissociate\"}\n"),
                     "{\"ok\":true,\"device\":\"hl7dev-1\",\"kept\":\"written to the "
                     "--associations file\"}\n");
    struct stat st;
    cr_assert_eq(stat(file, &st), 0);
    cr_expect_eq(st.st_mode & 0777, 0600);
    from = seen;
    phase(&w, 3, &seen);
    expect_patient(&w, from, 1, none);
    expect_patient(&w, from, 2, "MRN-2b\tMR\tPoe\tEdgar\tI\tICU\t1\tC");
    expect_patient(&w, from, 3, "MRN-3\tMR\tRoe\t\tI\tWARD-5\t\t");

    /* A SIGHUP after it reads the file the control socket wrote: the change stays. */
    cr_assert_eq(kill(w.g.proc.pid, SIGHUP), 0);
    wait_log(&w.g, "associations_reloaded", 2);
    from = seen;
    phase(&w, 2, &seen);
    expect_patient(&w, from, 1, none);
    expect_patient(&w, from, 2, "MRN-2b\tMR\tPoe\tEdgar\tI\tICU\t1\tC");
    no_parse_errors(&w.p);

    /* hl7dev-3 in the first phase, hl7dev-2 in the second, hl7dev-1 in the last two. */
    int port = mwt_wait_port(mport, 5000);
    cr_assert_gt(port, 0);
    char *metrics = scrape(port);
    char want[200];
    snprintf(want, sizeof want,
             "\nmedwire_messages_without_association_total{destination=\"%s\"} %d\n", w.g.hl7,
             4 * PHASE_OBSERVATIONS);
    cr_expect(strstr(metrics, want) != NULL, "%s not in\n%s", want, metrics);
    free(metrics);
    world_stop(&w);
}

/* A bad file at start: exit 2 and a sentence naming FILE:LINE, before anything is opened. */
Test(hl7_delivery, a_bad_associations_file_stops_the_start)
{
    char dir[300], file[400], err[400];
    snprintf(dir, sizeof dir, "%s", mwt_tmpdir());
    in_dir(file, sizeof file, dir, "assoc.tsv");
    in_dir(err, sizeof err, dir, "gateway.err");
    write_text(file, "dev-1\tMRN1\tDoe\tICU\ndev-1\tMRN2\tRoe\tER\n");
    const char *argv[] = {mwt_bin("medwire-gateway"),
                          "--listen",
                          "127.0.0.1:0",
                          "--ca",
                          "ca",
                          "--cert",
                          "cert",
                          "--key",
                          "key",
                          "--hl7",
                          "mllp://127.0.0.1:9",
                          "--associations",
                          file,
                          NULL};
    cr_assert_eq(mwt_run(argv, NULL, err, 20000), 2);
    char *text = mwt_read_file(err);
    char want[600];
    snprintf(want, sizeof want,
             "medwire-gateway: %s:2: device dev-1 is associated already on line 1: keep one "
             "line per device\n",
             file);
    cr_expect(text && strstr(text, want), "%s", text ? text : "");
    free(text);
    const char *no_hl7[] = {mwt_bin("medwire-gateway"),
                            "--listen",
                            "127.0.0.1:0",
                            "--ca",
                            "ca",
                            "--cert",
                            "cert",
                            "--key",
                            "key",
                            "--associations",
                            file,
                            NULL};
    cr_expect_eq(mwt_run(no_hl7, NULL, err, 20000), 2, "--associations needs --hl7");
}

/* ---- mllps: MLLP over TLS with a client certificate --------------------------------------- */

/* Debian's openssl (installed by scripts/deps.sh); mwt_run does not search PATH. */
/* The listener's certificate from @p listener_ca, the gateway's client certificate from
 * "client-ca"; the gateway trusts "hospital-ca" for the listener. */
static void tls_world_start(world *w, const char *listener_ca)
{
    memset(w, 0, sizeof *w);
    cr_assert(mwt_pki_make(&w->pki));
    cr_assert(mwt_pki_devices(&w->pki, "hl7dev", DEVICES));
    snprintf(w->dir, sizeof w->dir, "%s", mwt_tmpdir());
    cr_assert(mwt_openssl_cert(w->dir, "hospital-ca", "hospital-ca", NULL));
    cr_assert(mwt_openssl_cert(w->dir, "rogue-ca", "rogue-ca", NULL));
    cr_assert(mwt_openssl_cert(w->dir, "client-ca", "client-ca", NULL));
    cr_assert(mwt_openssl_cert(w->dir, "listener", "localhost", listener_ca));
    cr_assert(mwt_openssl_cert(w->dir, "gateway-client", "medwire-gateway-7", "client-ca"));
    in_dir(w->p.tls_cert, sizeof w->p.tls_cert, w->dir, "listener.crt");
    in_dir(w->p.tls_key, sizeof w->p.tls_key, w->dir, "listener.key");
    in_dir(w->p.tls_ca, sizeof w->p.tls_ca, w->dir, "client-ca.crt");
    in_dir(w->p.clients, sizeof w->p.clients, w->dir, "clients.txt");
    peer_start(&w->p, w->dir);
    static char ca[400], cert[400], key[400];
    in_dir(ca, sizeof ca, w->dir, "hospital-ca.crt");
    in_dir(cert, sizeof cert, w->dir, "gateway-client.crt");
    in_dir(key, sizeof key, w->dir, "gateway-client.key");
    snprintf(w->g.hl7, sizeof w->g.hl7, "mllps://localhost:%s", w->p.port);
    const char *more[] = {"--hl7-ca", ca, "--hl7-cert", cert, "--hl7-key", key, NULL};
    memcpy(w->g.more, more, sizeof more);
    gateway_start(&w->g, &w->pki, &w->p);
}

Test(hl7_delivery, mllps_delivers_over_tls_with_the_gateways_client_certificate)
{
    world w;
    tls_world_start(&w, "hospital-ca");
    mwt_proc devs[DEVICES];
    devices_start(devs, DEVICES, &w.pki, &w.g, "0");
    devices_finish(devs, DEVICES);
    tally t = wait_all(&w.p);
    cr_expect_eq(t.distinct, DEVICES * OBSERVATIONS, "every message arrives over TLS");
    cr_expect_eq(t.repeats, 0u);
    no_parse_errors(&w.p);
    char *clients = mwt_read_file(w.p.clients);
    cr_expect(clients && strstr(clients, "medwire-gateway-7"),
              "the listener saw the gateway's client certificate: %s", clients ? clients : "");
    free(clients);
    world_stop(&w);
}

/* A listener whose certificate does not chain to --hl7-ca gets nothing; the messages wait in
 * the outbox (the devices are acknowledged), and the log says why. */
Test(hl7_delivery, mllps_refuses_a_listener_the_ca_does_not_vouch_for)
{
    world w;
    tls_world_start(&w, "rogue-ca");
    mwt_proc devs[DEVICES];
    devices_start(devs, DEVICES, &w.pki, &w.g, "0");
    devices_finish(devs, DEVICES);
    mwt_sleep_ms(1500);
    tally t = count_ids(w.p.ids);
    cr_expect_eq(t.lines, 0u, "nothing reaches a listener that is not the hospital's");
    char *log = mwt_read_file(w.g.err);
    cr_expect(log && strstr(log, "hl7_tls_failed"), "the log says why: %s", log ? log : "");
    free(log);
    world_stop(&w);
}

/* mllps:// without --hl7-ca, or TLS files without mllps://, are usage errors (exit 2). */
Test(hl7_delivery, mllps_options_are_checked)
{
    mwt_pki pki;
    cr_assert(mwt_pki_make(&pki));
    const char *bin = getenv("MW_BIN_DIR");
    cr_assert_not_null(bin);
    char gw[400], out[400], err[400];
    snprintf(gw, sizeof gw, "%s/medwire-gateway", bin);
    snprintf(out, sizeof out, "%s/out.txt", mwt_tmpdir());
    snprintf(err, sizeof err, "%s/err.txt", mwt_tmpdir());
    const char *creds[] = {"--listen", "127.0.0.1:0",
                           "--ca",     mwt_pki_ca(&pki),
                           "--cert",   mwt_pki_crt(&pki, "gateway"),
                           "--key",    mwt_pki_key(&pki, "gateway")};
    const char *a1[] = {gw,
                        creds[0],
                        creds[1],
                        creds[2],
                        creds[3],
                        creds[4],
                        creds[5],
                        creds[6],
                        creds[7],
                        "--hl7",
                        "mllps://localhost:2575",
                        NULL};
    cr_expect_eq(mwt_run(a1, out, err, 10000), 2);
    char *e = mwt_read_file(err);
    cr_expect(e && strstr(e, "--hl7-ca"), "%s", e ? e : "");
    free(e);
    const char *a2[] = {gw,
                        creds[0],
                        creds[1],
                        creds[2],
                        creds[3],
                        creds[4],
                        creds[5],
                        creds[6],
                        creds[7],
                        "--hl7",
                        "mllp://localhost:2575",
                        "--hl7-ca",
                        "x.crt",
                        NULL};
    cr_expect_eq(mwt_run(a2, out, err, 10000), 2);
    e = mwt_read_file(err);
    cr_expect(e && strstr(e, "need --hl7 mllps://"), "%s", e ? e : "");
    free(e);
}
