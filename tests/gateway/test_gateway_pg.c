/* SPDX-License-Identifier: Apache-2.0 */
/* test_gateway_pg.c -- real medwire-gateway processes on one PostgreSQL database and real
 * medwire-device processes: a device that moves from one gateway to the other is delivered
 * exactly once across both, and a database that restarts or goes away in the middle of a
 * stream loses nothing (the gateway stops acknowledging, the devices keep their queues and
 * catch up). With --hl7, the outbox is in the same database: what a gateway that died had taken
 * in, another delivers, and the audit trail can be a table of it. */
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

static mwt_pg pg;
static mwt_pki pki;

static void up(void)
{
#ifndef MW_HAVE_LIBPQ
    cr_skip_test("this build has no libpq (Debian package libpq-dev)");
#endif
    if (!mwt_pg_available())
        cr_skip_test("PostgreSQL's server is not installed (Debian package postgresql)");
    cr_assert(mwt_pki_make(&pki));
    cr_assert(mwt_pg_start(&pg), "the server starts");
}

static void down(void)
{
    mwt_pg_stop(&pg);
}

typedef struct gw {
    mwt_proc proc;
    char out[300], err[300], port_file[300], addr[64];
    char control[300]; /* its control socket, made by gateway_start_control */
} gw;

/* With @p hl7 (an mllp:// URL) the gateway delivers there instead of to its --out, and its
 * audit trail goes to the database's audit table; with @p control, it takes commands there. */
static void gateway_start_with(gw *g, const char *dir, const char *id, const char *hl7,
                               bool control)
{
    snprintf(g->out, sizeof g->out, "%s/%s.out", dir, id);
    snprintf(g->err, sizeof g->err, "%s/%s.err", dir, id);
    snprintf(g->port_file, sizeof g->port_file, "%s/%s.port", dir, id);
    snprintf(g->control, sizeof g->control, "%s/%s.ctl", dir, id);
    const char *extra[12] = {"--store",         pg.url, "--gateway-id", id, hl7 ? "--hl7" : "--out",
                             hl7 ? hl7 : g->out};
    size_t n = 6;
    if (control) {
        extra[n++] = "--control";
        extra[n++] = g->control;
    }
    if (hl7) {
        extra[n++] = "--audit";
        extra[n++] = pg.url;
    }
    bool ok = mwt_gateway_start(&g->proc, &pki, "127.0.0.1:0", g->port_file, extra, g->err, g->addr,
                                sizeof g->addr);
    char *why = ok ? NULL : mwt_read_file(g->err);
    cr_assert(ok, "gateway %s: %s", id, why ? why : "");
}

static void gateway_start_to(gw *g, const char *dir, const char *id, const char *hl7)
{
    gateway_start_with(g, dir, id, hl7, false);
}

static void gateway_start(gw *g, const char *dir, const char *id)
{
    gateway_start_to(g, dir, id, NULL);
}

/* medwire-device NAME with its queue in DIR/NAME.queue: a second run goes on numbering where
 * the first stopped, as one device does. */
static void device_run(const char *dir, const char *name, const gw *g, const char *count)
{
    char queue[300], key[300], err[300];
    snprintf(queue, sizeof queue, "%s/%s.queue", dir, name);
    snprintf(key, sizeof key, "%s/%s.qkey", dir, name);
    snprintf(err, sizeof err, "%s/%s.err", dir, name);
    FILE *f = fopen(key, "r");
    if (f == NULL) {
        f = fopen(key, "w");
        cr_assert_not_null(f);
        fprintf(f, "%s\n", "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff");
    }
    fclose(f);
    char ca[300], crt[300], k[300];
    snprintf(ca, sizeof ca, "%s", mwt_pki_ca(&pki));
    snprintf(crt, sizeof crt, "%s", mwt_pki_crt(&pki, name));
    snprintf(k, sizeof k, "%s", mwt_pki_key(&pki, name));
    const char *argv[] = {mwt_bin("medwire-device"),
                          "--ca",
                          ca,
                          "--cert",
                          crt,
                          "--key",
                          k,
                          "--gateway",
                          g->addr,
                          "--gateway-name",
                          "gateway",
                          "--count",
                          count,
                          "--interval-ms",
                          "25",
                          "--give-up-s",
                          "25",
                          "--queue",
                          queue,
                          "--queue-key",
                          key,
                          "--quiet",
                          NULL};
    mwt_proc p;
    cr_assert(mwt_proc_start(&p, argv, NULL, err));
    int rc = mwt_proc_wait(&p, 28000);
    char *why = rc == 0 ? NULL : mwt_read_file(err);
    cr_assert_eq(rc, 0, "%s: %s", name, why ? why : "");
}

static int cmp_ull(const void *a, const void *b)
{
    unsigned long long x = *(const unsigned long long *)a, y = *(const unsigned long long *)b;
    return x < y ? -1 : x > y;
}

/* Over the outputs, @p device's messages: no number twice, @p n_obs observations among them.
 * Returns how many messages. (A device's numbers start where its queue's last block ended,
 * not at 1, and gap or status records may travel with the observations.) */
static int assert_each_once(const char *const outs[], const char *device, int n_obs)
{
    size_t cap = (size_t)n_obs * 2 + 16;
    unsigned long long *seqs = calloc(cap, sizeof *seqs);
    char key[80];
    snprintf(key, sizeof key, "{\"device\":\"%s\",\"seq\":", device);
    static const char type_obs[] = ",\"type\":\"observation\"";
    int total = 0, obs = 0;
    for (size_t i = 0; outs[i]; i++) {
        char *text = mwt_read_file(outs[i]);
        for (const char *p = text ? strstr(text, key) : NULL; p; p = strstr(p + 1, key)) {
            cr_assert_lt((size_t)total, cap, "%s: too many messages", device);
            char *end = NULL;
            seqs[total++] = strtoull(p + strlen(key), &end, 10);
            obs += strncmp(end, type_obs, sizeof type_obs - 1) == 0;
        }
        free(text);
    }
    qsort(seqs, (size_t)total, sizeof *seqs, cmp_ull);
    for (int i = 1; i < total; i++)
        cr_assert_neq(seqs[i], seqs[i - 1], "%s: seq %llu delivered twice", device, seqs[i]);
    cr_assert_eq(obs, n_obs, "%s: %d observations delivered, %d sent", device, obs, n_obs);
    free(seqs);
    return total;
}

static void assert_sql(const char *dir, const char *sql, const char *want)
{
    char out[300];
    snprintf(out, sizeof out, "%s/q.out", dir);
    cr_assert_eq(mwt_pg_sql(&pg, sql, out), 0, "%s", sql);
    char *text = mwt_read_file(out);
    cr_assert_not_null(text);
    text[strcspn(text, "\n")] = '\0';
    cr_assert_str_eq(text, want, "%s", sql);
    free(text);
}

TestSuite(gateway_pg, .init = up, .fini = down, .timeout = 30);

Test(gateway_pg, a_device_moving_between_two_gateways_is_delivered_once_across_both)
{
    char dir[256];
    snprintf(dir, sizeof dir, "%s", mwt_tmpdir());
    gw a, b;
    gateway_start(&a, dir, "gw-a");
    gateway_start(&b, dir, "gw-b");
    device_run(dir, "dev-1", &a, "15");
    device_run(dir, "dev-2", &b, "10");
    /* dev-1 now talks to the other gateway, which knows it from the shared database only. */
    device_run(dir, "dev-1", &b, "15");
    cr_assert_eq(mwt_proc_stop(&a.proc, SIGTERM), 0);
    cr_assert_eq(mwt_proc_stop(&b.proc, SIGTERM), 0);
    const char *outs[] = {a.out, b.out, NULL};
    char n[16];
    snprintf(n, sizeof n, "%d", assert_each_once(outs, "dev-1", 30));
    assert_sql(dir, "SELECT count(*) FROM messages WHERE device = 'dev-1'", n);
    assert_each_once(outs, "dev-2", 10);
    const char *only_b[] = {b.out, NULL};
    assert_each_once(only_b, "dev-2", 10);
    assert_sql(dir, "SELECT string_agg(gateway, ',' ORDER BY gateway) FROM checkpoints",
               "gw-a,gw-b");
}

/* A command the operator gave one gateway reaches a device that talks to the other: it is kept
 * with the device's row, and the "ok" came after it was committed there. */
Test(gateway_pg, a_command_queued_at_one_gateway_is_sent_by_the_other)
{
    char dir[256];
    snprintf(dir, sizeof dir, "%s", mwt_tmpdir());
    gw a, b;
    gateway_start(&a, dir, "gw-a");
    gateway_start_with(&b, dir, "gw-b", NULL, true);
    device_run(dir, "dev-1", &a, "3");
    char ok[512];
    cr_assert(mwt_control_request(b.control,
                                  "{\"device\":\"dev-1\",\"command\":\"set_interval\","
                                  "\"interval_ms\":20,\"ttl_s\":600}\n",
                                  ok, sizeof ok));
    cr_assert(strstr(ok, "\"ok\":true") != NULL, "%s", ok);
    unsigned long long id = strtoull(strstr(ok, "\"id\":") + 5, NULL, 10);
    assert_sql(dir, "SELECT commands IS NOT NULL FROM devices WHERE id = 'dev-1'", "t");
    device_run(dir, "dev-1", &a, "5");
    cr_assert_eq(mwt_proc_stop(&a.proc, SIGTERM), 0);
    cr_assert_eq(mwt_proc_stop(&b.proc, SIGTERM), 0);
    char want[64];
    snprintf(want, sizeof want, "\"command_id\":%llu,", id);
    const char *res[] = {"\"type\":\"command_result\"", want, "\"status\":\"done\"", NULL};
    cr_assert_eq(mwt_count_lines(a.out, res), 1, "run once, its result taken in by gw-a");
    const char *any[] = {"\"type\":\"command_result\"", NULL};
    cr_assert_eq(mwt_count_lines(b.out, any), 0);
    assert_sql(dir, "SELECT commands IS NULL FROM devices WHERE id = 'dev-1'", "t");
}

Test(gateway_pg, a_database_restarted_or_gone_mid_stream_loses_nothing)
{
    char dir[256];
    snprintf(dir, sizeof dir, "%s", mwt_tmpdir());
    gw g;
    gateway_start(&g, dir, "gw-a");
    char queue[300], key[300], err[300];
    snprintf(queue, sizeof queue, "%s/dev-1.queue", dir);
    snprintf(key, sizeof key, "%s/dev-1.qkey", dir);
    snprintf(err, sizeof err, "%s/dev-1.err", dir);
    FILE *f = fopen(key, "w");
    cr_assert_not_null(f);
    fprintf(f, "%s\n", "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff");
    fclose(f);
    char ca[300], crt[300], k[300];
    snprintf(ca, sizeof ca, "%s", mwt_pki_ca(&pki));
    snprintf(crt, sizeof crt, "%s", mwt_pki_crt(&pki, "dev-1"));
    snprintf(k, sizeof k, "%s", mwt_pki_key(&pki, "dev-1"));
    const char *argv[] = {mwt_bin("medwire-device"),
                          "--ca",
                          ca,
                          "--cert",
                          crt,
                          "--key",
                          k,
                          "--gateway",
                          g.addr,
                          "--gateway-name",
                          "gateway",
                          "--count",
                          "80",
                          "--interval-ms",
                          "25",
                          "--give-up-s",
                          "25",
                          "--queue",
                          queue,
                          "--queue-key",
                          key,
                          "--quiet",
                          NULL};
    mwt_proc d;
    cr_assert(mwt_proc_start(&d, argv, NULL, err));
    mwt_sleep_ms(500);
    cr_assert(mwt_pg_restart(&pg), "restarted under the gateway");
    mwt_sleep_ms(400);
    cr_assert(mwt_pg_halt(&pg), "gone");
    mwt_sleep_ms(1500);
    cr_assert(mwt_pg_resume(&pg), "back");
    int rc = mwt_proc_wait(&d, 28000);
    char *why = rc == 0 ? NULL : mwt_read_file(err);
    cr_assert_eq(rc, 0, "the device delivered everything: %s", why ? why : "");
    cr_assert_eq(mwt_proc_stop(&g.proc, SIGTERM), 0);
    const char *outs[] = {g.out, NULL};
    char n[16];
    snprintf(n, sizeof n, "%d", assert_each_once(outs, "dev-1", 80));
    assert_sql(dir, "SELECT count(*) FROM messages", n);
    /* The outage was felt: commits failed, and nothing they held was acknowledged. */
    const char *failed[] = {"\"event\":\"store_failed\"", NULL};
    cr_assert_geq(mwt_count_lines(g.err, failed), 1, "a commit failed while the server was away");
}

/* GET @p path from 127.0.0.1:@p port; the answer's status line (at most 5 s). */
static void http_status(int port, const char *path, char *out, size_t size)
{
    out[0] = '\0';
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    cr_assert_geq(fd, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(fd, (struct sockaddr *)&sa, sizeof sa) == 0) {
        char req[120];
        int n = snprintf(req, sizeof req, "GET %s HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n", path);
        cr_assert_eq(write(fd, req, (size_t)n), n);
        size_t len = 0;
        struct pollfd p = {.fd = fd, .events = POLLIN};
        while (len < size - 1 && poll(&p, 1, 5000) > 0) {
            ssize_t r = read(fd, out + len, size - 1 - len);
            if (r <= 0)
                break;
            len += (size_t)r;
        }
        out[len] = '\0';
    }
    close(fd);
    out[strcspn(out, "\r\n")] = '\0';
}

/* ... and a command given meanwhile is refused, not kept in one gateway's memory. */
Test(gateway_pg, healthz_fails_while_the_database_is_away)
{
    char dir[256], mport_file[300], out[300], err[300], port_file[300], addr[64], st[200];
    char ctl[300], reply[512];
    snprintf(dir, sizeof dir, "%s", mwt_tmpdir());
    snprintf(mport_file, sizeof mport_file, "%s/metrics.port", dir);
    snprintf(out, sizeof out, "%s/out", dir);
    snprintf(err, sizeof err, "%s/err", dir);
    snprintf(port_file, sizeof port_file, "%s/port", dir);
    snprintf(ctl, sizeof ctl, "%s/ctl", dir);
    const char *extra[] = {
        "--store",  pg.url,      "--out", out, "--metrics", "127.0.0.1:0", "--metrics-port-file",
        mport_file, "--control", ctl,     NULL};
    static const char set[] =
        "{\"device\":\"dev-9\",\"command\":\"set_interval\",\"interval_ms\":20}\n";
    mwt_proc g;
    cr_assert(mwt_gateway_start(&g, &pki, "127.0.0.1:0", port_file, extra, err, addr, sizeof addr));
    int mport = mwt_wait_port(mport_file, 10000);
    cr_assert_gt(mport, 0);
    http_status(mport, "/healthz", st, sizeof st);
    cr_assert_str_eq(st, "HTTP/1.1 200 OK");
    cr_assert(mwt_control_request(ctl, set, reply, sizeof reply));
    cr_assert(strstr(reply, "\"ok\":true"), "%s", reply);
    cr_assert(mwt_pg_halt(&pg));
    http_status(mport, "/healthz", st, sizeof st);
    cr_assert_str_eq(st, "HTTP/1.1 503 Service Unavailable");
    cr_assert(mwt_control_request(ctl, set, reply, sizeof reply));
    cr_assert(strstr(reply, "\"ok\":false") && strstr(reply, "not queued"), "%s", reply);
    cr_assert(mwt_pg_resume(&pg));
    http_status(mport, "/healthz", st, sizeof st);
    cr_assert_str_eq(st, "HTTP/1.1 200 OK", "reconnected without a restart");
    cr_assert(mwt_control_request(ctl, set, reply, sizeof reply));
    cr_assert(strstr(reply, "\"ok\":true"), "%s", reply);
    assert_sql(dir, "SELECT get_byte(commands, 1) FROM devices WHERE id = 'dev-9'", "2");
    cr_assert_eq(mwt_proc_stop(&g, SIGTERM), 0);
}

/* python-hl7's MLLP listener (tests/hl7/mllp_peer.py), on @p port ("0": the system picks);
 * returns its port. */
static int hospital_start(mwt_proc *p, const char *dir, const char *port)
{
    const char *python = getenv("MW_HL7_PYTHON");
    const char *src = getenv("MW_SOURCE_DIR");
    cr_assert(python && src, "run through ctest");
    char script[400], port_file[300], ids[300], errors[300], err[300];
    snprintf(script, sizeof script, "%s/tests/hl7/mllp_peer.py", src);
    snprintf(port_file, sizeof port_file, "%s/hospital.port", dir);
    snprintf(ids, sizeof ids, "%s/ids.txt", dir);
    snprintf(errors, sizeof errors, "%s/errors.txt", dir);
    snprintf(err, sizeof err, "%s/hospital.err", dir);
    remove(port_file);
    const char *argv[] = {python,     script, "--port-file", port_file, "--ids", ids,
                          "--errors", errors, "--port",      port,      NULL};
    cr_assert(mwt_proc_start(p, argv, NULL, err));
    int got = mwt_wait_port(port_file, 15000);
    cr_assert_gt(got, 0, "the MLLP listener did not start");
    return got;
}

/* Lines of DIR/ids.txt, the control ids the listener accepted; *distinct of them. */
static size_t ids_received(const char *dir, size_t *distinct)
{
    char path[300];
    snprintf(path, sizeof path, "%s/ids.txt", dir);
    char *text = mwt_read_lines(path);
    size_t n = 0;
    *distinct = 0;
    char *lines[256];
    for (char *save = NULL, *l = text ? strtok_r(text, "\n", &save) : NULL; l && n < 256;
         l = strtok_r(NULL, "\n", &save)) {
        if (strstr(l, "-loss-") || strstr(l, "-restored-"))
            continue; /* the gateway's communication-loss events */
        bool seen = false;
        for (size_t i = 0; i < n && !seen; i++)
            seen = strcmp(lines[i], l) == 0;
        *distinct += !seen;
        lines[n++] = l;
    }
    free(text);
    return n;
}

/* The hospital's listener started once for its port, then stopped: gateways start with their
 * destination down. @p hl7 gets its mllp:// URL; the port, as text, in @p port. */
static void hospital_gone(const char *dir, char port[16], char hl7[64])
{
    mwt_proc hospital;
    snprintf(port, 16, "%d", hospital_start(&hospital, dir, "0"));
    mwt_proc_stop(&hospital, SIGKILL);
    snprintf(hl7, 64, "mllp://127.0.0.1:%s", port);
}

/* A sender that waited for the hospital longer than its lease asks before it sends: a row
 * another gateway took over meanwhile (here the test takes it, as gw-x) is left to that one.
 * One message: the sender keeps it while it waits (several go in merged turns, claimed anew at
 * each). */
Test(gateway_pg, a_sender_past_its_lease_leaves_a_row_taken_over_meanwhile, .timeout = 60)
{
    char dir[256];
    snprintf(dir, sizeof dir, "%s", mwt_tmpdir());
    mwt_proc hospital;
    char port[16], hl7[64];
    hospital_gone(dir, port, hl7);
    cr_assert_eq(setenv("MW_OUTBOX_LEASE_MS", "300", 1), 0);
    gw a;
    gateway_start_to(&a, dir, "gw-a", hl7);
    device_run(dir, "dev-1", &a, "1");
    /* gw-a's sender holds the row while it waits for the hospital. */
    cr_assert(mwt_pg_wait_for(&pg, "SELECT claimed_by FROM outbox", "gw-a", 10000));
    char out[300];
    snprintf(out, sizeof out, "%s/q.out", dir);
    cr_assert_eq(mwt_pg_sql(&pg,
                            "UPDATE outbox SET claimed_by = 'gw-x', claimed_until = now() +"
                            " interval '1 hour'",
                            out),
                 0);
    hospital_start(&hospital, dir, port);
    const char *lost[] = {"outbox_claim_lost", NULL};
    for (int i = 0; i < 100 && mwt_count_lines(a.err, lost) == 0; i++)
        mwt_sleep_ms(100);
    cr_expect_eq(mwt_count_lines(a.err, lost), 1u, "gw-a says which row it left");
    mwt_sleep_ms(500);
    size_t distinct = 0, lines = ids_received(dir, &distinct);
    cr_expect_eq(lines, 0u, "the row gw-x holds is not gw-a's to send");
    assert_sql(dir, "SELECT count(*), min(claimed_by) FROM outbox", "1|gw-x");
    /* gw-x's lease runs out: gw-a takes the row and delivers it. */
    cr_assert_eq(
        mwt_pg_sql(&pg, "UPDATE outbox SET claimed_until = now() - interval '1 second'", out), 0);
    cr_expect(mwt_pg_wait_for(&pg, "SELECT count(*) FROM outbox", "0", 10000));
    lines = ids_received(dir, &distinct);
    cr_expect_eq(lines, 1u, "delivered once");
    cr_assert_eq(mwt_proc_stop(&a.proc, SIGTERM), 0);
    mwt_proc_stop(&hospital, SIGKILL);
    unsetenv("MW_OUTBOX_LEASE_MS");
}

Test(gateway_pg, a_dead_gateways_outbox_is_delivered_by_another, .timeout = 60)
{
    char dir[256];
    snprintf(dir, sizeof dir, "%s", mwt_tmpdir());
    /* The hospital's listener is down while the first gateway takes the messages in. */
    mwt_proc hospital;
    char port[16], hl7[64];
    hospital_gone(dir, port, hl7);
    cr_assert_eq(setenv("MW_OUTBOX_LEASE_MS", "500", 1), 0);
    gw a, b;
    gateway_start_to(&a, dir, "gw-a", hl7);
    device_run(dir, "dev-1", &a, "20");
    /* Acknowledged: custody is in the shared outbox. gw-a dies for good, holding claims. */
    cr_assert_eq(mwt_proc_stop(&a.proc, SIGKILL), 128 + SIGKILL);
    assert_sql(dir, "SELECT count(*), min(origin), max(origin) FROM outbox", "20|gw-a|gw-a");
    hospital_start(&hospital, dir, port);
    gateway_start_to(&b, dir, "gw-b", hl7);
    size_t distinct = 0, lines = 0;
    for (int i = 0; i < 200 && distinct < 20; i++) {
        mwt_sleep_ms(100);
        lines = ids_received(dir, &distinct);
    }
    cr_expect_eq(distinct, 20u, "gw-b delivered every message gw-a took in");
    cr_expect_eq(lines, 20u, "none twice");
    for (int i = 0; i < 50; i++) {
        char out[300];
        snprintf(out, sizeof out, "%s/n.out", dir);
        if (mwt_pg_sql(&pg, "SELECT count(*) FROM outbox", out) == 0) {
            char *n = mwt_read_file(out);
            bool empty = n && strncmp(n, "0\n", 2) == 0;
            free(n);
            if (empty)
                break;
        }
        mwt_sleep_ms(100);
    }
    assert_sql(dir, "SELECT count(*) FROM outbox", "0");
    cr_assert_eq(mwt_proc_stop(&b.proc, SIGTERM), 0);
    /* Both gateways' audit trails, in one table. */
    assert_sql(dir,
               "SELECT string_agg(gateway || ':' || (event->>'event'), ',' ORDER BY id) FROM audit"
               " WHERE event->>'event' IN ('gateway_started', 'gateway_stopped')",
               "gw-a:gateway_started,gw-b:gateway_started,gw-b:gateway_stopped");
    mwt_proc_stop(&hospital, SIGKILL);
    unsetenv("MW_OUTBOX_LEASE_MS");
}
