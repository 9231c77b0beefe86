/* SPDX-License-Identifier: Apache-2.0 */
/* test_programs.c -- the real medwire-gateway and medwire-device processes over UDP loopback. */
#include <criterion/criterion.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "support/pki.h"
#include "support/proc.h"

typedef struct gw_proc {
    mwt_proc proc;
    char dir[256];
    char out[300], audit[300], port_file[300], store[300];
    char control[300]; /* "" for none */
    char crl[300];     /* "" for none */
    char addr[64];
} gw_proc;

/* Starts (or, with g->addr already set, restarts on the same port) a gateway
 * whose files live in g->dir. */
static void run_gateway(gw_proc *g, const mwt_pki *pki)
{
    bool restart = g->addr[0] != '\0';
    if (!restart) {
        snprintf(g->dir, sizeof g->dir, "%s", mwt_tmpdir());
        snprintf(g->out, sizeof g->out, "%s/out.jsonl", g->dir);
        snprintf(g->audit, sizeof g->audit, "%s/audit.jsonl", g->dir);
        snprintf(g->port_file, sizeof g->port_file, "%s/port", g->dir);
        snprintf(g->store, sizeof g->store, "%s/store.db", g->dir);
    }
    remove(g->port_file);
    char ca[300], crt[300], key[300];
    snprintf(ca, sizeof ca, "%s", mwt_pki_ca(pki));
    snprintf(crt, sizeof crt, "%s", mwt_pki_crt(pki, "gateway"));
    snprintf(key, sizeof key, "%s", mwt_pki_key(pki, "gateway"));
    const char *argv[] = {mwt_bin("medwire-gateway"),
                          "--listen",
                          restart ? g->addr : "127.0.0.1:0",
                          "--ca",
                          ca,
                          "--cert",
                          crt,
                          "--key",
                          key,
                          "--out",
                          g->out,
                          "--audit",
                          g->audit,
                          "--store",
                          g->store,
                          "--port-file",
                          g->port_file,
                          g->control[0] ? "--control" : "--port-file",
                          g->control[0] ? g->control : g->port_file,
                          g->crl[0] ? "--crl" : NULL,
                          g->crl,
                          NULL};
    cr_assert(mwt_proc_start(&g->proc, argv, NULL, NULL));
    cr_assert(mwt_wait_file(g->port_file, 10000), "the gateway did not report its port");
    char *port = mwt_read_file(g->port_file);
    cr_assert_not_null(port);
    snprintf(g->addr, sizeof g->addr, "127.0.0.1:%d", atoi(port));
    free(port);
}

static void start_gateway(gw_proc *g, const mwt_pki *pki)
{
    g->addr[0] = '\0';
    g->control[0] = '\0';
    g->crl[0] = '\0';
    run_gateway(g, pki);
}

static void stop_gateway(gw_proc *g)
{
    cr_assert_eq(mwt_proc_stop(&g->proc, SIGTERM), 0, "the gateway exits 0 on SIGTERM");
}

static bool start_device_paced(mwt_proc *p, const mwt_pki *pki, const gw_proc *g, const char *name,
                               const char *count, const char *interval, const char *err_path)
{
    char ca[300], crt[300], key[300];
    snprintf(ca, sizeof ca, "%s", mwt_pki_ca(pki));
    snprintf(crt, sizeof crt, "%s", mwt_pki_crt(pki, name));
    snprintf(key, sizeof key, "%s", mwt_pki_key(pki, name));
    const char *argv[] = {mwt_bin("medwire-device"),
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
                          count,
                          "--interval-ms",
                          interval,
                          "--give-up-s",
                          "60",
                          NULL};
    return mwt_proc_start(p, argv, NULL, err_path);
}

static bool start_device(mwt_proc *p, const mwt_pki *pki, const gw_proc *g, const char *name,
                         const char *gateway_name, const char *count, const char *err_path)
{
    char ca[300], crt[300], key[300];
    snprintf(ca, sizeof ca, "%s", mwt_pki_ca(pki));
    snprintf(crt, sizeof crt, "%s", mwt_pki_crt(pki, name));
    snprintf(key, sizeof key, "%s", mwt_pki_key(pki, name));
    const char *argv[] = {mwt_bin("medwire-device"),
                          "--gateway",
                          g->addr,
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
                          "--give-up-s",
                          "20",
                          NULL};
    return mwt_proc_start(p, argv, NULL, err_path);
}

static int cmp_u64(const void *a, const void *b)
{
    unsigned long long x = *(const unsigned long long *)a, y = *(const unsigned long long *)b;
    return x < y ? -1 : x > y;
}

/* Every message of @p device appears once: consecutive, distinct sequence
 * numbers (the device numbers its messages one after another, alarms too),
 * and @p n_obs of them observations. */
static void assert_each_seq_once(const char *out, const char *device, int n_obs)
{
    char *text = mwt_read_file(out);
    cr_assert_not_null(text);
    char dev[80];
    snprintf(dev, sizeof dev, "{\"device\":\"%s\",\"seq\":", device);
    size_t cap = (size_t)n_obs * 2 + 8;
    unsigned long long *seqs = calloc(cap, sizeof *seqs);
    int k = 0, obs = 0;
    for (const char *p = strstr(text, dev); p; p = strstr(p + 1, dev)) {
        cr_assert_lt((size_t)k, cap, "%s: too many messages", device);
        char *end = NULL;
        seqs[k++] = strtoull(p + strlen(dev), &end, 10);
        static const char type_obs[] = ",\"type\":\"observation\"";
        obs += strncmp(end, type_obs, sizeof type_obs - 1) == 0;
    }
    cr_assert_eq(obs, n_obs, "%s: %d observations, %d expected", device, obs, n_obs);
    /* Alarms travel first, so the output is in delivery order, not number
     * order: sort, then every number must appear exactly once, no gap. */
    qsort(seqs, (size_t)k, sizeof *seqs, cmp_u64);
    for (int i = 1; i < k; i++)
        cr_assert_eq(seqs[i], seqs[0] + (unsigned long long)i, "%s: message %d out of sequence",
                     device, i);
    free(seqs);
    free(text);
}

Test(programs, two_devices_deliver_every_observation_through_a_real_gateway, .timeout = 120)
{
    mwt_pki pki;
    cr_assert(mwt_pki_make(&pki));
    gw_proc g;
    start_gateway(&g, &pki);
    mwt_proc d1, d2;
    char e1[300], e2[300];
    snprintf(e1, sizeof e1, "%s/dev-1.err", g.dir);
    snprintf(e2, sizeof e2, "%s/dev-2.err", g.dir);
    cr_assert(start_device(&d1, &pki, &g, "dev-1", "gateway", "60", e1));
    cr_assert(start_device(&d2, &pki, &g, "dev-2", "gateway", "60", e2));
    int rc1 = mwt_proc_wait(&d1, 60000), rc2 = mwt_proc_wait(&d2, 60000);
    stop_gateway(&g);
    char *m1 = mwt_read_file(e1);
    cr_assert_eq(rc1, 0, "dev-1: %s", m1 ? m1 : "");
    cr_assert_eq(rc2, 0, "dev-2");
    free(m1);
    assert_each_seq_once(g.out, "dev-1", 60);
    assert_each_seq_once(g.out, "dev-2", 60);
    const char *obs[] = {"\"type\":\"observation\"", "\"unit\":\"%\"", "\"mdc_code\":150456", NULL};
    cr_assert_eq(mwt_count_lines(g.out, obs), 60, "30 SpO2 readings from each device");
    const char *est[] = {"\"event\":\"session_established\"", "\"peer\":\"127.0.0.1:", NULL};
    cr_assert_eq(mwt_count_lines(g.audit, est), 2);
}

/* @req MDCG-2019-16-IFU IEC62443-CR2.8 IEC62443-CR6.1 MDS2-AUDT */
Test(programs, an_expired_device_is_refused_with_its_reason_while_a_valid_one_is_served,
     .timeout = 120)
{
    mwt_pki pki;
    cr_assert(mwt_pki_make(&pki));
    gw_proc g;
    start_gateway(&g, &pki);
    mwt_proc bad, good;
    char eb[300], eg[300];
    snprintf(eb, sizeof eb, "%s/bad.err", g.dir);
    snprintf(eg, sizeof eg, "%s/good.err", g.dir);
    cr_assert(start_device(&bad, &pki, &g, "expired", "gateway", "5", eb));
    cr_assert(start_device(&good, &pki, &g, "dev-1", "gateway", "20", eg));
    int rb = mwt_proc_wait(&bad, 60000), rg = mwt_proc_wait(&good, 60000);
    stop_gateway(&g);
    cr_assert_eq(rb, 1, "the expired device exits 1");
    cr_assert_eq(rg, 0, "the valid device is served");
    char *msg = mwt_read_file(eb);
    cr_assert_not_null(msg);
    cr_assert(strstr(msg, "certificate_expired") != NULL, "device says: %s", msg);
    free(msg);
    const char *line[] = {"\"event\":\"handshake_failed\"", "expired",
                          "\"reason\":", "\"code\":-151", NULL};
    cr_assert_geq(mwt_count_lines(g.audit, line), 1, "audit line with wolfSSL's -151");
    assert_each_seq_once(g.out, "dev-1", 20);
    const char *none[] = {"\"device\":\"expired\"", NULL};
    cr_assert_eq(mwt_count_lines(g.out, none), 0);
}

Test(programs, a_device_run_twice_against_one_gateway_delivers_both_runs, .timeout = 120)
{
    mwt_pki pki;
    cr_assert(mwt_pki_make(&pki));
    gw_proc g;
    start_gateway(&g, &pki);
    for (int run = 0; run < 2; run++) {
        mwt_proc d;
        cr_assert(start_device(&d, &pki, &g, "dev-3", "gateway", "10", NULL));
        cr_assert_eq(mwt_proc_wait(&d, 60000), 0, "run %d", run);
    }
    stop_gateway(&g);
    const char *lines[] = {"\"device\":\"dev-3\"", NULL};
    cr_assert_eq(mwt_count_lines(g.out, lines), 20, "a restarted device is not a duplicate");
}

/* @req MDCG-2019-16-IFU MDS2-NAUT */
Test(programs, a_device_refuses_a_gateway_with_another_name, .timeout = 60)
{
    mwt_pki pki;
    cr_assert(mwt_pki_make(&pki));
    gw_proc g;
    start_gateway(&g, &pki);
    mwt_proc d;
    char e[300];
    snprintf(e, sizeof e, "%s/d.err", g.dir);
    cr_assert(start_device(&d, &pki, &g, "dev-1", "ward-7-gateway", "5", e));
    int rc = mwt_proc_wait(&d, 30000);
    stop_gateway(&g);
    cr_assert_eq(rc, 1);
    char *msg = mwt_read_file(e);
    cr_assert_not_null(msg);
    cr_assert(strstr(msg, "--gateway-name") != NULL, "device says: %s", msg);
    free(msg);
}

/* @req MDCG-2019-16-IFU */
Test(programs, bad_command_lines_exit_2_and_help_exits_0)
{
    const char *gw_help[] = {mwt_bin("medwire-gateway"), "--help", NULL};
    const char *dev_help[] = {mwt_bin("medwire-device"), "--help", NULL};
    const char *gw_bad[] = {mwt_bin("medwire-gateway"), "--listen", NULL};
    const char *dev_bad[] = {
        mwt_bin("medwire-device"), "--gateway", "127.0.0.1:1", "--count", "many", NULL};
    const char *gw_nocert[] = {mwt_bin("medwire-gateway"), "--listen", "127.0.0.1:0", NULL};
    cr_assert_eq(mwt_run(gw_help, NULL, NULL, 5000), 0);
    cr_assert_eq(mwt_run(dev_help, NULL, NULL, 5000), 0);
    cr_assert_eq(mwt_run(gw_bad, NULL, NULL, 5000), 2);
    cr_assert_eq(mwt_run(dev_bad, NULL, NULL, 5000), 2);
    cr_assert_eq(mwt_run(gw_nocert, NULL, NULL, 5000), 2);
}

/* @req MDR-17.4 MDCG-2019-16-IFU IEC62443-CR3.7 */
Test(programs, the_gateway_explains_a_missing_key_file)
{
    mwt_pki pki;
    cr_assert(mwt_pki_make(&pki));
    char ca[300], crt[300], err[300];
    snprintf(ca, sizeof ca, "%s", mwt_pki_ca(&pki));
    snprintf(crt, sizeof crt, "%s", mwt_pki_crt(&pki, "gateway"));
    snprintf(err, sizeof err, "%s/err", pki.dir);
    const char *argv[] = {
        mwt_bin("medwire-gateway"), "--listen", "127.0.0.1:0", "--ca", ca, "--cert", crt, "--key",
        "/nonexistent/gateway.key", NULL};
    cr_assert_eq(mwt_run(argv, NULL, err, 10000), 1);
    char *msg = mwt_read_file(err);
    cr_assert_not_null(msg);
    cr_assert(strstr(msg, "/nonexistent/gateway.key") != NULL, "gateway says: %s", msg);
    free(msg);
}

/* @req IEC62443-CR7.3 MDS2-DTBK */
Test(programs, a_gateway_killed_and_restarted_mid_stream_delivers_every_observation_once,
     .timeout = 240)
{
    mwt_pki pki;
    cr_assert(mwt_pki_make(&pki));
    gw_proc g;
    start_gateway(&g, &pki);
    mwt_proc d1, d2;
    char e1[300];
    snprintf(e1, sizeof e1, "%s/dev-1.err", g.dir);
    cr_assert(start_device_paced(&d1, &pki, &g, "dev-1", "400", "10", e1));
    cr_assert(start_device_paced(&d2, &pki, &g, "dev-2", "400", "10", NULL));
    /* Let some traffic be committed, then cut the gateway's power. */
    const char *any[] = {"\"type\":\"observation\"", NULL};
    for (int i = 0; i < 500 && mwt_count_lines(g.out, any) < 100; i++)
        mwt_sleep_ms(10);
    cr_assert_geq(mwt_count_lines(g.out, any), 100, "traffic before the crash");
    cr_assert_eq(mwt_proc_stop(&g.proc, SIGKILL), 128 + SIGKILL);
    mwt_sleep_ms(300);
    run_gateway(&g, &pki); /* same port, same store, same output */
    int rc1 = mwt_proc_wait(&d1, 150000), rc2 = mwt_proc_wait(&d2, 150000);
    stop_gateway(&g);
    char *m1 = mwt_read_file(e1);
    cr_assert_eq(rc1, 0, "dev-1: %s", m1 ? m1 : "");
    free(m1);
    cr_assert_eq(rc2, 0, "dev-2");
    assert_each_seq_once(g.out, "dev-1", 400);
    assert_each_seq_once(g.out, "dev-2", 400);
}

/* Sends one line to the control socket and returns the reply line (static buffer). */
static const char *control_request(const char *path, const char *line)
{
    static char reply[512];
    int fd = socket(AF_UNIX, SOCK_STREAM, 0);
    cr_assert_geq(fd, 0);
    struct sockaddr_un sa;
    memset(&sa, 0, sizeof sa);
    sa.sun_family = AF_UNIX;
    snprintf(sa.sun_path, sizeof sa.sun_path, "%s", path);
    cr_assert_eq(connect(fd, (struct sockaddr *)&sa, sizeof sa), 0, "connect %s", path);
    cr_assert_eq(write(fd, line, strlen(line)), (ssize_t)strlen(line));
    size_t n = 0;
    while (n + 1 < sizeof reply) {
        ssize_t r = read(fd, reply + n, sizeof reply - 1 - n);
        if (r <= 0)
            break;
        n += (size_t)r;
        if (memchr(reply, '\n', n))
            break;
    }
    reply[n] = '\0';
    close(fd);
    return reply;
}

Test(programs, a_command_sent_on_the_control_socket_reaches_the_device_and_its_result_the_output,
     .timeout = 120)
{
    mwt_pki pki;
    cr_assert(mwt_pki_make(&pki));
    gw_proc g;
    g.addr[0] = '\0';
    g.crl[0] = '\0';
    snprintf(g.control, sizeof g.control, "%s/ctl.sock", mwt_tmpdir());
    run_gateway(&g, &pki);
    struct stat st;
    cr_assert_eq(stat(g.control, &st), 0);
    cr_assert(S_ISSOCK(st.st_mode));
    cr_assert_eq(st.st_mode & 0777, 0600, "owner-only control socket");
    mwt_proc d;
    cr_assert(start_device_paced(&d, &pki, &g, "dev-1", "40", "100", NULL));
    const char *obs[] = {"\"device\":\"dev-1\"", NULL};
    for (int i = 0; i < 500 && mwt_count_lines(g.out, obs) < 3; i++)
        mwt_sleep_ms(10);
    const char *bad = control_request(g.control, "{\"device\":\"dev-1\",\"command\":\"reboot\"}\n");
    cr_assert(strstr(bad, "\"ok\":false") != NULL, "%s", bad);
    const char *ok = control_request(
        g.control, "{\"device\":\"dev-1\",\"command\":\"set_interval\",\"interval_ms\":10}\n");
    cr_assert(strstr(ok, "\"ok\":true") != NULL, "%s", ok);
    const char *idp = strstr(ok, "\"id\":");
    cr_assert_not_null(idp);
    unsigned long long id = strtoull(idp + 5, NULL, 10);
    cr_assert_eq(mwt_proc_wait(&d, 60000), 0);
    stop_gateway(&g);
    char want[64];
    snprintf(want, sizeof want, "\"command_id\":%llu,", id);
    const char *res[] = {"\"type\":\"command_result\"", want, "\"status\":\"done\"", NULL};
    cr_assert_eq(mwt_count_lines(g.out, res), 1, "the device's result, once");
}

/* @req IEC62443-CR2.6 */
Test(programs, sighup_makes_the_gateway_enforce_a_new_crl, .timeout = 120)
{
    mwt_pki pki;
    cr_assert(mwt_pki_make(&pki));
    char ca[300], crl[300];
    snprintf(ca, sizeof ca, "%s/ca", pki.dir);
    snprintf(crl, sizeof crl, "%s/ca/crl.pem", pki.dir);
    const char *mkcrl[] = {mwt_bin("medwire-pki"), "crl", "--ca", ca, NULL};
    cr_assert_eq(mwt_run(mkcrl, NULL, NULL, 30000), 0);
    gw_proc g;
    g.addr[0] = '\0';
    snprintf(g.control, sizeof g.control, "%s", "");
    snprintf(g.crl, sizeof g.crl, "%s", crl);
    run_gateway(&g, &pki);
    mwt_proc d;
    cr_assert(start_device(&d, &pki, &g, "dev-3", "gateway", "5", NULL));
    cr_assert_eq(mwt_proc_wait(&d, 30000), 0, "served before the revocation");
    const char *rev[] = {mwt_bin("medwire-pki"), "revoke", "--ca", ca, "--id", "dev-3", NULL};
    cr_assert_eq(mwt_run(rev, NULL, NULL, 30000), 0);
    cr_assert_eq(kill(g.proc.pid, SIGHUP), 0);
    const char *reloaded[] = {"\"event\":\"crl_reloaded\"", NULL};
    for (int i = 0; i < 500 && mwt_count_lines(g.audit, reloaded) == 0; i++)
        mwt_sleep_ms(10);
    cr_assert_eq(mwt_count_lines(g.audit, reloaded), 1);
    char err[300];
    snprintf(err, sizeof err, "%s/dev3.err", g.dir);
    cr_assert(start_device(&d, &pki, &g, "dev-3", "gateway", "5", err));
    cr_assert_eq(mwt_proc_wait(&d, 30000), 1, "refused after the revocation");
    char *msg = mwt_read_file(err);
    cr_assert(msg && strstr(msg, "certificate_revoked"), "device says: %s", msg ? msg : "");
    free(msg);
    cr_assert(start_device(&d, &pki, &g, "dev-1", "gateway", "5", NULL));
    cr_assert_eq(mwt_proc_wait(&d, 30000), 0, "others carry on");
    stop_gateway(&g);
}

/* ---- the device's persistent queue (medwire-device --queue) -------------------------------- */

typedef struct queue_dev {
    char file[300], key[300], bad_key[300];
} queue_dev;

static void write_key(const char *path, uint8_t fill)
{
    FILE *f = fopen(path, "wb");
    cr_assert_not_null(f);
    uint8_t k[32];
    for (size_t i = 0; i < sizeof k; i++)
        k[i] = (uint8_t)(fill + i * 7);
    cr_assert_eq(fwrite(k, 1, sizeof k, f), sizeof k);
    fclose(f);
}

static void queue_dev_init(queue_dev *q, const char *dir)
{
    snprintf(q->file, sizeof q->file, "%s/queue.bin", dir);
    snprintf(q->key, sizeof q->key, "%s/queue.key", dir);
    snprintf(q->bad_key, sizeof q->bad_key, "%s/other.key", dir);
    write_key(q->key, 1);
    write_key(q->bad_key, 2);
}

/* medwire-device with --queue; @p gateway_addr may be a port nobody listens on. */
static bool start_queue_device(mwt_proc *p, const mwt_pki *pki, const char *gateway_addr,
                               const queue_dev *q, const char *key, const char *count,
                               const char *capacity, const char *give_up, const char *out_path,
                               const char *err_path)
{
    char ca[300], crt[300], k[300];
    snprintf(ca, sizeof ca, "%s", mwt_pki_ca(pki));
    snprintf(crt, sizeof crt, "%s", mwt_pki_crt(pki, "dev-1"));
    snprintf(k, sizeof k, "%s", mwt_pki_key(pki, "dev-1"));
    const char *argv[] = {mwt_bin("medwire-device"),
                          "--gateway",
                          gateway_addr,
                          "--gateway-name",
                          "gateway",
                          "--ca",
                          ca,
                          "--cert",
                          crt,
                          "--key",
                          k,
                          "--count",
                          count,
                          "--queue",
                          q->file,
                          "--queue-key",
                          key,
                          "--queue-capacity",
                          capacity,
                          "--give-up-s",
                          give_up,
                          "--print-seq",
                          NULL};
    return mwt_proc_start(p, argv, out_path, err_path);
}

/* Sequence numbers of dev-1's messages of @p type in the gateway's output. */
static size_t delivered_seqs(const char *out, const char *type, unsigned long long *seqs,
                             size_t cap)
{
    char *text = mwt_read_file(out);
    cr_assert_not_null(text);
    static const char dev[] = "{\"device\":\"dev-1\",\"seq\":";
    char want[64];
    snprintf(want, sizeof want, ",\"type\":\"%s\"", type);
    size_t n = 0;
    for (const char *p = strstr(text, dev); p; p = strstr(p + 1, dev)) {
        char *end = NULL;
        unsigned long long s = strtoull(p + strlen(dev), &end, 10);
        if (strncmp(end, want, strlen(want)) == 0) {
            cr_assert_lt(n, cap);
            seqs[n++] = s;
        }
    }
    free(text);
    return n;
}

/* @req MDR-17.2 IEC62443-CR7.1 MDS2-DTBK */
Test(programs, a_device_killed_50_times_while_sending_loses_no_durable_message_and_repeats_none,
     .timeout = 300)
{
    mwt_pki pki;
    cr_assert(mwt_pki_make(&pki));
    gw_proc g;
    start_gateway(&g, &pki);
    queue_dev q;
    queue_dev_init(&q, g.dir);
    /* Every "queued SEQ" line a device printed was durable when printed: it must arrive. */
    static unsigned long long printed[50 * 60];
    size_t nprinted = 0;
    unsigned seed = 12345;
    for (int run = 0; run < 50; run++) {
        char out[300];
        snprintf(out, sizeof out, "%s/run-%d.out", g.dir, run);
        mwt_proc d;
        cr_assert(start_queue_device(&d, &pki, g.addr, &q, q.key, "40", "256", "60", out, NULL));
        /* Once it is queueing (however slow the start, under valgrind too), at a random
         * moment of its sending. */
        const char *queued[] = {"queued ", NULL};
        for (int i = 0; i < 3000 && mwt_count_lines(out, queued) == 0; i++)
            mwt_sleep_ms(5);
        seed = seed * 1103515245u + 12345u;
        mwt_sleep_ms((int)((seed >> 16) % 100));
        int rc = mwt_proc_stop(&d, SIGKILL);
        cr_assert(rc == 128 + SIGKILL || rc == 0, "run %d: exit %d", run, rc);
        char *text = mwt_read_file(out);
        cr_assert_not_null(text);
        for (const char *p = strstr(text, "queued "); p; p = strstr(p + 1, "queued ")) {
            cr_assert_lt(nprinted, sizeof printed / sizeof printed[0]);
            printed[nprinted++] = strtoull(p + 7, NULL, 10);
        }
        free(text);
    }
    /* The last start only delivers what the queue still holds. */
    mwt_proc d;
    char err[300];
    snprintf(err, sizeof err, "%s/drain.err", g.dir);
    cr_assert(start_queue_device(&d, &pki, g.addr, &q, q.key, "0", "256", "60", NULL, err));
    int rc = mwt_proc_wait(&d, 120000);
    char *msg = mwt_read_file(err);
    cr_assert_eq(rc, 0, "drain: %s", msg ? msg : "");
    free(msg);
    stop_gateway(&g);

    static unsigned long long got[50 * 60 + 64];
    size_t n = delivered_seqs(g.out, "observation", got, sizeof got / sizeof got[0]);
    qsort(got, n, sizeof got[0], cmp_u64);
    for (size_t i = 1; i < n; i++)
        cr_assert_neq(got[i], got[i - 1], "seq %llu delivered twice", got[i]);
    for (size_t i = 0; i < nprinted; i++)
        cr_assert_not_null(bsearch(&printed[i], got, n, sizeof got[0], cmp_u64),
                           "seq %llu was durable but never delivered", printed[i]);
    cr_assert_geq(nprinted, 100, "the kills left messages to recover (%zu)", nprinted);
    cr_log_info("50 kills: %zu messages durable when killed or sent, %zu delivered, none twice",
                nprinted, n);
}

/* @req MDR-17.4 MDS2-STCF */
Test(programs, a_device_with_the_wrong_queue_key_stops_with_a_clear_error_and_keeps_the_queue,
     .timeout = 120)
{
    mwt_pki pki;
    cr_assert(mwt_pki_make(&pki));
    gw_proc g;
    start_gateway(&g, &pki);
    queue_dev q;
    queue_dev_init(&q, g.dir);
    /* Offline: a port nobody listens on; the device gives up with 3 messages queued. */
    mwt_proc d;
    cr_assert(start_queue_device(&d, &pki, "127.0.0.1:9", &q, q.key, "3", "256", "1", NULL, NULL));
    cr_assert_eq(mwt_proc_wait(&d, 30000), 1, "not delivered while offline");
    char err[300];
    snprintf(err, sizeof err, "%s/bad-key.err", g.dir);
    cr_assert(start_queue_device(&d, &pki, g.addr, &q, q.bad_key, "0", "256", "5", NULL, err));
    cr_assert_eq(mwt_proc_wait(&d, 30000), 1);
    char *msg = mwt_read_file(err);
    cr_assert(msg && strstr(msg, "--queue-key is not the key this queue file was written with"),
              "says what to do: %s", msg ? msg : "");
    free(msg);
    snprintf(err, sizeof err, "%s/missing-key.err", g.dir);
    cr_assert(start_queue_device(&d, &pki, g.addr, &q, "/nonexistent/key", "0", "256", "5", NULL,
                                 err));
    cr_assert_eq(mwt_proc_wait(&d, 30000), 1);
    msg = mwt_read_file(err);
    cr_assert(msg && strstr(msg, "cannot read the queue key"), "%s", msg ? msg : "");
    free(msg);
    /* The right key: the three arrive. */
    cr_assert(start_queue_device(&d, &pki, g.addr, &q, q.key, "0", "256", "30", NULL, NULL));
    cr_assert_eq(mwt_proc_wait(&d, 60000), 0);
    stop_gateway(&g);
    unsigned long long got[8];
    cr_assert_eq(delivered_seqs(g.out, "observation", got, 8), 3);
}

/* @req MDR-17.2 MDS2-DTBK */
Test(programs, a_device_whose_queue_overflowed_offline_reports_the_gap_to_the_gateway,
     .timeout = 120)
{
    mwt_pki pki;
    cr_assert(mwt_pki_make(&pki));
    gw_proc g;
    start_gateway(&g, &pki);
    queue_dev q;
    queue_dev_init(&q, g.dir);
    mwt_proc d;
    cr_assert(start_queue_device(&d, &pki, "127.0.0.1:9", &q, q.key, "20", "8", "1", NULL, NULL));
    cr_assert_eq(mwt_proc_wait(&d, 30000), 1);
    cr_assert(start_queue_device(&d, &pki, g.addr, &q, q.key, "0", "8", "30", NULL, NULL));
    cr_assert_eq(mwt_proc_wait(&d, 60000), 0);
    stop_gateway(&g);
    unsigned long long got[32];
    cr_assert_eq(delivered_seqs(g.out, "observation", got, 32), 8, "the newest eight");
    const char *gap[] = {"\"type\":\"gap\"", "\"lost_priority\":\"observation\"",
                         "\"reason\":\"evicted\"", "\"count\":12", NULL};
    cr_assert_eq(mwt_count_lines(g.out, gap), 1, "one gap record for the twelve lost");
}
