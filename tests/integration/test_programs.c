/* SPDX-License-Identifier: Apache-2.0 */
/* test_programs.c -- the real medwire-gateway and medwire-device processes over UDP loopback. */
#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
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
#include "support/programs.h"

typedef struct gw_proc {
    mwt_proc proc;
    char dir[256];
    char out[300], audit[300], port_file[300], store[300];
    char control[300]; /* "" for none */
    char crl[300];     /* "" for none */
    char addr[64];
} gw_proc;

/* Starts (or, with g->addr already set, restarts on the same port) a gateway
 * whose files live in g->dir, with the options @p extra (NULL-terminated, may be NULL). */
static void run_gateway_with(gw_proc *g, const mwt_pki *pki, const char *const extra[])
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
                          g->crl[0] ? "--crl" : "--port-file",
                          g->crl[0] ? g->crl : g->port_file,
                          NULL,
                          NULL,
                          NULL,
                          NULL,
                          NULL};
    size_t n = sizeof argv / sizeof argv[0] - 5;
    for (size_t i = 0; extra && extra[i]; i++) {
        cr_assert_lt(n, sizeof argv / sizeof argv[0] - 1, "too many extra options");
        argv[n++] = extra[i];
    }
    cr_assert(mwt_proc_start(&g->proc, argv, NULL, NULL));
    cr_assert(mwt_wait_file(g->port_file, 10000), "the gateway did not report its port");
    char *port = mwt_read_file(g->port_file);
    cr_assert_not_null(port);
    snprintf(g->addr, sizeof g->addr, "127.0.0.1:%d", atoi(port));
    free(port);
}

static void run_gateway(gw_proc *g, const mwt_pki *pki)
{
    run_gateway_with(g, pki, NULL);
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

/* medwire-device NAME sending @p count observations to @p gw_addr, giving up after
 * @p give_up seconds; @p ca_file NULL: the test CA. */
static bool start_device_at(mwt_proc *p, const mwt_pki *pki, const char *gw_addr, const char *name,
                            const char *gateway_name, const char *count, const char *give_up,
                            const char *ca_file, const char *err_path)
{
    char ca[300], crt[300], key[300];
    snprintf(ca, sizeof ca, "%s", ca_file ? ca_file : mwt_pki_ca(pki));
    snprintf(crt, sizeof crt, "%s", mwt_pki_crt(pki, name));
    snprintf(key, sizeof key, "%s", mwt_pki_key(pki, name));
    const char *argv[] = {mwt_bin("medwire-device"),
                          "--gateway",
                          gw_addr,
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
                          give_up,
                          NULL};
    return mwt_proc_start(p, argv, NULL, err_path);
}

static bool start_device(mwt_proc *p, const mwt_pki *pki, const gw_proc *g, const char *name,
                         const char *gateway_name, const char *count, const char *err_path)
{
    return start_device_at(p, pki, g->addr, name, gateway_name, count, "20", NULL, err_path);
}

/* Runs device @p name once against a fresh gateway that refuses it; returns what the device
 * said (free it). */
static char *refused_device_says(const mwt_pki *pki, gw_proc *g, const char *name,
                                 const char *gateway_name)
{
    start_gateway(g, pki);
    mwt_proc d;
    char e[300];
    snprintf(e, sizeof e, "%s/%s.err", g->dir, name);
    cr_assert(start_device(&d, pki, g, name, gateway_name, "1", e));
    int rc = mwt_proc_wait(&d, 30000);
    stop_gateway(g);
    cr_assert_eq(rc, 1, "%s is refused", name);
    char *msg = mwt_read_file(e);
    cr_assert_not_null(msg);
    return msg;
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
    cr_assert_str_eq(msg, "medwire-device: cannot deliver: the gateway refused our certificate as "
                          "expired or not yet valid; check its validity dates and both clocks\n");
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
    char *msg = refused_device_says(&pki, &g, "dev-1", "ward-7-gateway");
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

/* What medwire-gateway, given @p key as its key file, says on standard error as it refuses to
 * start (exit status 1); free it. */
static char *gateway_refusal(const mwt_pki *pki, const char *key)
{
    char ca[300], crt[300], err[300];
    snprintf(ca, sizeof ca, "%s", mwt_pki_ca(pki));
    snprintf(crt, sizeof crt, "%s", mwt_pki_crt(pki, "gateway"));
    snprintf(err, sizeof err, "%s/err", pki->dir);
    const char *argv[] = {mwt_bin("medwire-gateway"),
                          "--listen",
                          "127.0.0.1:0",
                          "--ca",
                          ca,
                          "--cert",
                          crt,
                          "--key",
                          key,
                          NULL};
    cr_assert_eq(mwt_run(argv, NULL, err, 10000), 1);
    char *msg = mwt_read_file(err);
    cr_assert_not_null(msg);
    return msg;
}

/* @req MDR-17.4 MDCG-2019-16-IFU IEC62443-CR3.7 */
Test(programs, the_gateway_explains_a_missing_key_file)
{
    mwt_pki pki;
    cr_assert(mwt_pki_make(&pki));
    char *msg = gateway_refusal(&pki, "/nonexistent/gateway.key");
    cr_assert(strstr(msg, "/nonexistent/gateway.key") != NULL, "gateway says: %s", msg);
    free(msg);
}

/* @req IEC62443-CR3.7 */
Test(programs, the_gateway_refuses_a_world_readable_key_and_says_to_chmod_it)
{
    mwt_pki pki;
    cr_assert(mwt_pki_make(&pki));
    char key[300], fix[320];
    snprintf(key, sizeof key, "%s", mwt_pki_key(&pki, "gateway"));
    snprintf(fix, sizeof fix, "chmod 600 %s", key);
    cr_assert_eq(chmod(key, 0644), 0);
    char *msg = gateway_refusal(&pki, key);
    cr_assert(strstr(msg, fix) != NULL, "gateway says: %s", msg);
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
    for (int i = 0; i < 6000 && mwt_count_lines(g.out, any) < 100; i++)
        mwt_sleep_ms(10); /* a minute at most: valgrind on a loaded machine starts slowly */
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
    cr_assert(mwt_control_request(path, line, reply, sizeof reply), "control %s: '%s'", path,
              reply);
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

/* The operator's "ok" for a command means the store has it: a gateway restarted before the
 * device came back still sends it, and the device runs it once. */
Test(programs, a_command_queued_for_an_absent_device_outlives_a_gateway_restart, .timeout = 120)
{
    mwt_pki pki;
    cr_assert(mwt_pki_make(&pki));
    gw_proc g;
    g.addr[0] = '\0';
    g.crl[0] = '\0';
    snprintf(g.control, sizeof g.control, "%s/ctl.sock", mwt_tmpdir());
    run_gateway(&g, &pki);
    const char *ok = control_request(
        g.control, "{\"device\":\"dev-1\",\"command\":\"set_interval\",\"interval_ms\":20,"
                   "\"ttl_s\":600}\n");
    cr_assert(strstr(ok, "\"ok\":true") != NULL, "%s", ok);
    unsigned long long id = strtoull(strstr(ok, "\"id\":") + 5, NULL, 10);
    /* Killed, not stopped: nothing at exit may be what kept it. */
    cr_assert_eq(mwt_proc_stop(&g.proc, SIGKILL), 128 + SIGKILL);
    remove(g.control);
    run_gateway(&g, &pki);
    mwt_proc d;
    cr_assert(start_device_paced(&d, &pki, &g, "dev-1", "5", "100", NULL));
    cr_assert_eq(mwt_proc_wait(&d, 60000), 0);
    stop_gateway(&g);
    char want[64];
    snprintf(want, sizeof want, "\"command_id\":%llu,", id);
    const char *res[] = {"\"type\":\"command_result\"", want, "\"status\":\"done\"", NULL};
    cr_assert_eq(mwt_count_lines(g.out, res), 1, "the device ran it once and said so");
}

/* Connects to the control socket and says nothing; the caller closes it. */
static int control_idle_client(const char *path)
{
    int fd = socket(AF_UNIX, SOCK_STREAM, 0);
    cr_assert_geq(fd, 0);
    struct sockaddr_un sa;
    memset(&sa, 0, sizeof sa);
    sa.sun_family = AF_UNIX;
    cr_assert_lt(strlen(path), sizeof sa.sun_path);
    memcpy(sa.sun_path, path, strlen(path) + 1);
    cr_assert_eq(connect(fd, (struct sockaddr *)&sa, sizeof sa), 0, "connect %s", path);
    return fd;
}

/* @req IEC62443-CR7.1 */
Test(programs, idle_control_clients_never_keep_the_operator_out_and_a_twice_given_key_is_refused,
     .timeout = 120)
{
    mwt_pki pki;
    cr_assert(mwt_pki_make(&pki));
    gw_proc g;
    g.addr[0] = '\0';
    g.crl[0] = '\0';
    snprintf(g.control, sizeof g.control, "%s/ctl.sock", mwt_tmpdir());
    run_gateway(&g, &pki);
    /* Twice as many silent clients as there are places. */
    int idle[16];
    for (int i = 0; i < 16; i++)
        idle[i] = control_idle_client(g.control);
    const char *r = control_request(g.control, "{\"device\":\"dev-1\",\"command\":\"reboot\"}\n");
    cr_assert_str_eq(r, "{\"ok\":false,\"error\":\"unknown command\"}\n",
                     "the operator is answered, not told the places are taken");
    r = control_request(g.control,
                        "{\"device\":\"dev-1\",\"command\":\"rotate_keys\",\"device\":\"dev-2\"}\n");
    cr_assert_str_eq(r, "{\"ok\":false,\"error\":\"duplicate key \\\"device\\\": each key may "
                        "appear once\"}\n");
    /* The earliest silent clients gave their places up, and were told why. */
    char buf[200];
    struct pollfd pfd = {.fd = idle[0], .events = POLLIN};
    cr_assert_eq(poll(&pfd, 1, 10000), 1, "the first silent client hears why it goes");
    ssize_t n = read(idle[0], buf, sizeof buf - 1);
    cr_assert_gt(n, 0);
    buf[n] = '\0';
    cr_assert(strstr(buf, "closed: idle the longest") != NULL, "%s", buf);
    for (int i = 0; i < 16; i++)
        close(idle[i]);
    stop_gateway(&g);
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

/* dev-1 sending 2 observations to @p g, with --crl @p crl. */
static bool start_device_with_crl(mwt_proc *p, const mwt_pki *pki, const gw_proc *g,
                                  const char *crl, const char *err_path)
{
    char ca[300], crt[300], key[300];
    snprintf(ca, sizeof ca, "%s", mwt_pki_ca(pki));
    snprintf(crt, sizeof crt, "%s", mwt_pki_crt(pki, "dev-1"));
    snprintf(key, sizeof key, "%s", mwt_pki_key(pki, "dev-1"));
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
                          "--crl",
                          crl,
                          "--count",
                          "2",
                          "--give-up-s",
                          "20",
                          NULL};
    return mwt_proc_start(p, argv, NULL, err_path);
}

/* A stolen gateway key, revoked at the CA: a device given the CA's CRL refuses that gateway,
 * says why and what to do, and sends it nothing. */
/* @req IEC62443-CR2.1 MDCG-2019-16-IFU MDS2-NAUT */
Test(programs, a_device_given_a_crl_refuses_a_revoked_gateway_and_says_why, .timeout = 120)
{
    mwt_pki pki;
    cr_assert(mwt_pki_make(&pki));
    char ca[300], crl[300];
    snprintf(ca, sizeof ca, "%s/ca", pki.dir);
    snprintf(crl, sizeof crl, "%s/ca/crl.pem", pki.dir);
    const char *mkcrl[] = {mwt_bin("medwire-pki"), "crl", "--ca", ca, NULL};
    cr_assert_eq(mwt_run(mkcrl, NULL, NULL, 30000), 0);
    gw_proc g;
    start_gateway(&g, &pki);
    mwt_proc d;
    cr_assert(start_device_with_crl(&d, &pki, &g, crl, NULL));
    cr_assert_eq(mwt_proc_wait(&d, 30000), 0, "served while the gateway is not revoked");
    const char *rev[] = {mwt_bin("medwire-pki"), "revoke", "--ca", ca, "--id", "gateway", NULL};
    cr_assert_eq(mwt_run(rev, NULL, NULL, 30000), 0);
    char err[300];
    snprintf(err, sizeof err, "%s/dev1.err", g.dir);
    cr_assert(start_device_with_crl(&d, &pki, &g, crl, err));
    cr_assert_eq(mwt_proc_wait(&d, 30000), 1, "refused once the CRL lists the gateway");
    stop_gateway(&g);
    char *msg = mwt_read_file(err);
    cr_assert(msg && strstr(msg, "'gateway'") && strstr(msg, "revoked") && strstr(msg, "--crl"),
              "device says: %s", msg ? msg : "");
    free(msg);
    const char *lines[] = {"\"device\":\"dev-1\"", NULL};
    cr_assert_eq(mwt_count_lines(g.out, lines), 2, "only the first run's observations arrive");
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
     .timeout = 900)
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

/* ---- acknowledged means delivered: lost and restored storage, forged marks, new stores ----- */

/* medwire-device --queue for dev-1 with group commit (fast even under valgrind); its standard
 * error goes to @p err_path. */
static int run_queue_device(const mwt_pki *pki, const char *addr, const queue_dev *q,
                            const char *count, const char *err_path)
{
    char ca[300], crt[300], k[300];
    snprintf(ca, sizeof ca, "%s", mwt_pki_ca(pki));
    snprintf(crt, sizeof crt, "%s", mwt_pki_crt(pki, "dev-1"));
    snprintf(k, sizeof k, "%s", mwt_pki_key(pki, "dev-1"));
    const char *argv[] = {mwt_bin("medwire-device"), "--gateway", addr, "--gateway-name", "gateway",
                          "--ca", ca, "--cert", crt, "--key", k, "--count", count, "--queue",
                          q->file, "--queue-key", q->key, "--queue-capacity", "2000",
                          "--group-commit", "16", "--give-up-s", "60", NULL};
    return mwt_run(argv, NULL, err_path, 240000);
}

static void copy_file(const char *from, const char *to)
{
    char *buf = NULL;
    FILE *f = fopen(from, "rb");
    cr_assert_not_null(f, "%s", from);
    cr_assert_eq(fseek(f, 0, SEEK_END), 0);
    long n = ftell(f);
    cr_assert_geq(n, 0);
    rewind(f);
    buf = malloc((size_t)n + 1);
    cr_assert_not_null(buf);
    cr_assert_eq(fread(buf, 1, (size_t)n, f), (size_t)n);
    fclose(f);
    f = fopen(to, "wb");
    cr_assert_not_null(f, "%s", to);
    cr_assert_eq(fwrite(buf, 1, (size_t)n, f), (size_t)n);
    cr_assert_eq(fclose(f), 0);
    free(buf);
}

static size_t dev1_observations(const char *out)
{
    const char *obs[] = {"{\"device\":\"dev-1\",", "\"type\":\"observation\"", NULL};
    return mwt_count_lines(out, obs);
}

static void expect_ok(int rc, const char *err_path, const char *what)
{
    char *msg = mwt_read_file(err_path);
    cr_assert_eq(rc, 0, "%s: %s", what, msg ? msg : "");
    free(msg);
}

/* @req MDR-17.2 IEC62443-CR3.8 MDS2-DTBK */
Test(custody, a_deleted_queue_file_starts_a_new_sequence_space_and_loses_nothing, .timeout = 300)
{
    mwt_pki pki;
    cr_assert(mwt_pki_make(&pki));
    gw_proc g;
    start_gateway(&g, &pki);
    queue_dev q;
    queue_dev_init(&q, g.dir);
    char err[300];
    snprintf(err, sizeof err, "%s/dev.err", g.dir);
    expect_ok(run_queue_device(&pki, g.addr, &q, "5", err), err, "first run");
    /* A factory reset: the device starts again at sequence 1. */
    cr_assert_eq(remove(q.file), 0);
    expect_ok(run_queue_device(&pki, g.addr, &q, "3", err), err, "after the reset");
    stop_gateway(&g);
    cr_assert_eq(dev1_observations(g.out), 8, "5 + 3 delivered, nothing acknowledged and dropped");
    const char *spaces[] = {"\"event\":\"sequence_space_started\"", "\"device\":\"dev-1\"", NULL};
    cr_assert_eq(mwt_count_lines(g.audit, spaces), 2, "each incarnation its own space");
}

/* @req MDR-17.2 IEC62443-CR3.8 MDS2-DTBK */
Test(custody, a_restored_older_queue_file_is_resynchronised_and_every_new_message_delivered,
     .timeout = 600)
{
    mwt_pki pki;
    cr_assert(mwt_pki_make(&pki));
    gw_proc g;
    start_gateway(&g, &pki);
    queue_dev q;
    queue_dev_init(&q, g.dir);
    char err[300], snap[300];
    snprintf(err, sizeof err, "%s/dev.err", g.dir);
    snprintf(snap, sizeof snap, "%s/queue.snapshot", g.dir);
    expect_ok(run_queue_device(&pki, g.addr, &q, "100", err), err, "before the snapshot");
    copy_file(q.file, snap);
    expect_ok(run_queue_device(&pki, g.addr, &q, "1500", err), err, "1,500 acknowledged");
    /* The older copy comes back: its sequence store hands out numbers used since. */
    copy_file(snap, q.file);
    expect_ok(run_queue_device(&pki, g.addr, &q, "200", err), err, "after the restore");
    stop_gateway(&g);
    char *msg = mwt_read_file(err);
    cr_assert(msg && strstr(msg, "resynchronisation"), "the device says so: %s", msg ? msg : "");
    free(msg);
    cr_assert_eq(dev1_observations(g.out), 1800, "all 200 after the restore delivered");
    const char *marked[] = {"{\"device\":\"dev-1\",", "\"possible_duplicate\":true", NULL};
    cr_assert_geq(mwt_count_lines(g.out, marked), 1, "what was sent again is marked");
    const char *resync[] = {"\"event\":\"sequence_resync\"", NULL};
    cr_assert_geq(mwt_count_lines(g.audit, resync), 1);
}

/* The sequence space of dev-1's first line in @p out, as the 16 hex digits of its JSON. */
static void dev1_space(const char *out, char hex[17])
{
    char *text = mwt_read_file(out);
    cr_assert_not_null(text);
    const char *p = strstr(text, "{\"device\":\"dev-1\",");
    cr_assert_not_null(p);
    p = strstr(p, "\"space\":\"");
    cr_assert_not_null(p, "the device names its space");
    memcpy(hex, p + 9, 16);
    hex[16] = '\0';
    free(text);
}

/* @req IEC62443-CR3.8 MDS2-AUTH */
Test(custody, a_forged_low_water_mark_never_silences_the_devices_later_messages, .timeout = 300)
{
    mwt_pki pki;
    cr_assert(mwt_pki_make(&pki));
    gw_proc g;
    start_gateway(&g, &pki);
    queue_dev q;
    queue_dev_init(&q, g.dir);
    char err[300], forged[300], space[17], reply[300];
    snprintf(err, sizeof err, "%s/dev.err", g.dir);
    snprintf(forged, sizeof forged, "%s/forged.bin", g.dir);
    snprintf(reply, sizeof reply, "%s/forged.out", g.dir);
    expect_ok(run_queue_device(&pki, g.addr, &q, "3", err), err, "first run");
    dev1_space(g.out, space);
    /* With the device's own credentials and space: a number near 2^64 and a low-water mark of
     * 2^64-1, as a compromised or broken device might send. */
    const char *mk[] = {mwt_bin("mw-batchfile"), "--device", "dev-1", "--count", "1",
                        "--first-seq", "18446744073709551000", "--low-water",
                        "18446744073709551615", "--space", space, "--out", forged, NULL};
    cr_assert_eq(mwt_run(mk, NULL, NULL, 10000), 0);
    char ca[300], crt[300], key[300];
    snprintf(ca, sizeof ca, "%s", mwt_pki_ca(&pki));
    snprintf(crt, sizeof crt, "%s", mwt_pki_crt(&pki, "dev-1"));
    snprintf(key, sizeof key, "%s", mwt_pki_key(&pki, "dev-1"));
    const char *post[] = {mwt_bin("mw-coap-request"), "--server", g.addr, "--server-name",
                          "gateway", "--ca", ca, "--cert", crt, "--key", key, "--method", "post",
                          "--path", "/batch", "--payload-file", forged, "--content-format",
                          "65100", NULL};
    cr_assert_eq(mwt_run(post, reply, NULL, 60000), 0);
    const char *accepted[] = {"response: 2.04", NULL};
    cr_assert_eq(mwt_count_lines(reply, accepted), 1, "the forged batch is accepted: it is "
                                                      "the device's own data");
    /* The real device goes on: its next five must be delivered, not acknowledged as settled. */
    expect_ok(run_queue_device(&pki, g.addr, &q, "5", err), err, "after the forgery");
    stop_gateway(&g);
    cr_assert_eq(dev1_observations(g.out), 3 + 1 + 5, "every later message delivered");
}

/* @req IEC62443-CR3.8 MDS2-AUTH */
Test(custody, a_gateway_with_a_new_store_reaches_the_device_with_a_command_it_runs,
     .timeout = 300)
{
    mwt_pki pki;
    cr_assert(mwt_pki_make(&pki));
    gw_proc g;
    g.addr[0] = '\0';
    g.crl[0] = '\0';
    snprintf(g.control, sizeof g.control, "%s/ctl.sock", mwt_tmpdir());
    run_gateway(&g, &pki);
    mwt_proc d;
    char err[300];
    snprintf(err, sizeof err, "%s/dev.err", g.dir);
    cr_assert(start_device_paced(&d, &pki, &g, "dev-1", "600", "50", err));
    const char *obs[] = {"\"device\":\"dev-1\"", NULL};
    for (int i = 0; i < 3000 && mwt_count_lines(g.out, obs) < 3; i++)
        mwt_sleep_ms(10);
    const char *set50 = "{\"device\":\"dev-1\",\"command\":\"set_interval\",\"interval_ms\":50}\n";
    const char *ok = control_request(g.control, set50);
    cr_assert(strstr(ok, "\"ok\":true") != NULL, "%s", ok);
    unsigned long long id1 = strtoull(strstr(ok, "\"id\":") + 5, NULL, 10);
    char want[64];
    snprintf(want, sizeof want, "\"command_id\":%llu,", id1);
    const char *res1[] = {"\"type\":\"command_result\"", want, "\"status\":\"done\"", NULL};
    for (int i = 0; i < 3000 && mwt_count_lines(g.out, res1) == 0; i++)
        mwt_sleep_ms(10);
    cr_assert_eq(mwt_count_lines(g.out, res1), 1, "the first gateway's command ran");
    /* The host is replaced: same address, a new store and new files. */
    stop_gateway(&g);
    char out1[300];
    snprintf(out1, sizeof out1, "%s", g.out);
    snprintf(g.store, sizeof g.store, "%s/new-store.db", g.dir);
    snprintf(g.out, sizeof g.out, "%s/new-out.jsonl", g.dir);
    snprintf(g.audit, sizeof g.audit, "%s/new-audit.jsonl", g.dir);
    run_gateway(&g, &pki);
    for (int i = 0; i < 3000 && mwt_count_lines(g.out, obs) < 3; i++)
        mwt_sleep_ms(10);
    ok = control_request(g.control, set50);
    cr_assert(strstr(ok, "\"ok\":true") != NULL, "%s", ok);
    unsigned long long id2 = strtoull(strstr(ok, "\"id\":") + 5, NULL, 10);
    cr_assert_gt(id2, id1, "not a counter from 1 again");
    snprintf(want, sizeof want, "\"command_id\":%llu,", id2);
    const char *res2[] = {"\"type\":\"command_result\"", want, NULL};
    for (int i = 0; i < 3000 && mwt_count_lines(g.out, res2) == 0; i++)
        mwt_sleep_ms(10);
    const char *done2[] = {"\"type\":\"command_result\"", want, "\"status\":\"done\"", NULL};
    cr_assert_eq(mwt_count_lines(g.out, done2), 1, "the new gateway's command ran too");
    int rc = mwt_proc_stop(&d, SIGTERM);
    cr_assert(rc == 3 || rc == 0, "interrupted (3) or done (0), not failed: %d", rc);
    stop_gateway(&g);
    const char *first[] = {"\"type\":\"command_result\"", NULL};
    cr_assert_eq(mwt_count_lines(out1, first), 1, "the first gateway kept its own result");
}

/* ---- what a user meets: every error says what happened and what to do ---------------------- */

/* A local UDP (or TCP, listening) socket that holds a port and never answers; closed by the
 * caller. */
static int hold_port(int type, int *out_port)
{
    int fd = socket(AF_INET, type, 0);
    cr_assert_geq(fd, 0);
    struct sockaddr_in sa;
    memset(&sa, 0, sizeof sa);
    sa.sin_family = AF_INET;
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    cr_assert_eq(bind(fd, (struct sockaddr *)&sa, sizeof sa), 0);
    if (type == SOCK_STREAM)
        cr_assert_eq(listen(fd, 1), 0);
    socklen_t len = sizeof sa;
    cr_assert_eq(getsockname(fd, (struct sockaddr *)&sa, &len), 0);
    *out_port = ntohs(sa.sin_port);
    return fd;
}

/* Runs a program to its end; returns its exit status and what it wrote on stderr (free it). */
static int run_capture(const char *const argv[], const char *dir, char **out_err)
{
    char err[300];
    snprintf(err, sizeof err, "%s/run.err", dir);
    remove(err);
    int rc = mwt_run(argv, NULL, err, 30000);
    *out_err = mwt_read_file(err);
    cr_assert_not_null(*out_err);
    return rc;
}

/* A gateway given only what it needs to get as far as its sockets: its credentials. */
static int run_gateway_listening(const mwt_pki *pki, const char *listen, const char *metrics,
                                 char **out_err)
{
    char ca[300], crt[300], key[300], store[300];
    snprintf(ca, sizeof ca, "%s", mwt_pki_ca(pki));
    snprintf(crt, sizeof crt, "%s", mwt_pki_crt(pki, "gateway"));
    snprintf(key, sizeof key, "%s", mwt_pki_key(pki, "gateway"));
    snprintf(store, sizeof store, "%s/store.db", pki->dir);
    const char *argv[] = {mwt_bin("medwire-gateway"),
                          "--listen",
                          listen,
                          "--ca",
                          ca,
                          "--cert",
                          crt,
                          "--key",
                          key,
                          "--store",
                          store,
                          metrics ? "--metrics" : NULL,
                          metrics,
                          NULL};
    return run_capture(argv, pki->dir, out_err);
}

Test(programs, comm_loss_s_reports_a_device_that_stops_sending_and_its_return, .timeout = 120)
{
    mwt_pki pki;
    cr_assert(mwt_pki_make(&pki));
    gw_proc g;
    g.addr[0] = '\0';
    g.control[0] = '\0';
    g.crl[0] = '\0';
    const char *const extra[] = {"--comm-loss-s", "1", NULL};
    run_gateway_with(&g, &pki, extra);
    mwt_proc d;
    cr_assert(start_device(&d, &pki, &g, "dev-1", "gateway", "3", NULL));
    cr_assert_eq(mwt_proc_wait(&d, 30000), 0);
    /* The device has stopped: silent for more than a second, it is reported lost. */
    const char *lost[] = {"{\"device\":\"dev-1\",\"seq\":0,\"type\":\"communication_loss\"", NULL};
    for (int i = 0; i < 1000 && mwt_count_lines(g.out, lost) == 0; i++)
        mwt_sleep_ms(10);
    cr_assert_eq(mwt_count_lines(g.out, lost), 1, "one communication_loss line");
    cr_assert(start_device(&d, &pki, &g, "dev-1", "gateway", "1", NULL));
    cr_assert_eq(mwt_proc_wait(&d, 30000), 0);
    stop_gateway(&g);
    const char *back[] = {"{\"device\":\"dev-1\",\"seq\":0,\"type\":\"communication_restored\"",
                          NULL};
    cr_assert_eq(mwt_count_lines(g.out, back), 1, "and communication_restored when it is back");
}

Test(programs, the_audit_log_reads_a_normal_close_as_normal_and_names_the_listen_address,
     .timeout = 120)
{
    mwt_pki pki;
    cr_assert(mwt_pki_make(&pki));
    gw_proc g;
    start_gateway(&g, &pki);
    mwt_proc d;
    cr_assert(start_device(&d, &pki, &g, "dev-1", "gateway", "2", NULL));
    cr_assert_eq(mwt_proc_wait(&d, 30000), 0);
    /* The device's close_notify may still be on its way when the device has exited; a gateway
     * told to stop reads no more, so wait for the close before stopping it. */
    const char *closed_line[] = {"{\"event\":\"session_closed\"", NULL};
    for (int i = 0; i < 2000 && mwt_count_lines(g.audit, closed_line) == 0; i++)
        mwt_sleep_ms(10);
    stop_gateway(&g);
    char *audit = mwt_read_file(g.audit);
    cr_assert_not_null(audit);
    char started[160];
    snprintf(started, sizeof started,
             "{\"event\":\"gateway_started\",\"listen\":\"%s\",\"reason\":\"listening for "
             "devices\"}\n",
             g.addr);
    cr_assert_eq(strncmp(audit, started, strlen(started)), 0, "audit log: %s", audit);
    const char *closed = strstr(audit, "{\"event\":\"session_closed\"");
    cr_assert_not_null(closed, "%s", audit);
    const char *tail = "\"device\":\"dev-1\",\"reason\":\"closed by the device (close_notify)\"}\n";
    const char *eol = strchr(closed, '\n');
    cr_assert_not_null(eol);
    cr_assert_eq(strncmp(eol + 1 - strlen(tail), tail, strlen(tail)), 0, "%.*s",
                 (int)(eol - closed), closed);
    free(audit);
}

Test(programs, a_queue_file_held_by_another_device_is_explained, .timeout = 120)
{
    mwt_pki pki;
    cr_assert(mwt_pki_make(&pki));
    queue_dev q;
    queue_dev_init(&q, pki.dir);
    int gw_port;
    int hole = hold_port(SOCK_DGRAM, &gw_port);
    char gw[64], out[300];
    snprintf(gw, sizeof gw, "127.0.0.1:%d", gw_port);
    snprintf(out, sizeof out, "%s/first.out", pki.dir);
    mwt_proc first;
    cr_assert(start_queue_device(&first, &pki, gw, &q, q.key, "3", "256", "60", out, NULL));
    const char *queued[] = {"queued ", NULL};
    for (int i = 0; i < 3000 && mwt_count_lines(out, queued) == 0; i++)
        mwt_sleep_ms(5);
    cr_assert_geq(mwt_count_lines(out, queued), 1, "the first device holds its queue");
    char err[300];
    snprintf(err, sizeof err, "%s/second.err", pki.dir);
    mwt_proc second;
    cr_assert(start_queue_device(&second, &pki, gw, &q, q.key, "3", "256", "60", NULL, err));
    int rc = mwt_proc_wait(&second, 30000);
    mwt_proc_stop(&first, SIGKILL);
    close(hole);
    cr_assert_eq(rc, 1);
    char *msg = mwt_read_file(err);
    char want[600];
    snprintf(want, sizeof want,
             "medwire-device: cannot use the queue file: %s is locked by another process (only "
             "one at a time may use it); is another medwire-device running with this --queue? "
             "Stop it, or give each device a queue file of its own\n",
             q.file);
    cr_assert_str_eq(msg, want);
    free(msg);
}

static void assert_mode_0600(const char *path)
{
    struct stat st;
    cr_assert_eq(stat(path, &st), 0, "%s exists", path);
    cr_assert_eq(st.st_mode & 0777, 0600, "%s has mode %o", path, (unsigned)(st.st_mode & 0777));
}

/* @req IEC62443-CR4.1 */
Test(programs, the_out_audit_and_store_files_are_created_owner_only_under_umask_022,
     .timeout = 120)
{
    mwt_pki pki;
    cr_assert(mwt_pki_make(&pki));
    gw_proc g;
    mode_t old = umask(022); /* the usual one: files come out 0644 unless made otherwise */
    start_gateway(&g, &pki);
    umask(old);
    mwt_proc d;
    cr_assert(start_device(&d, &pki, &g, "dev-1", "gateway", "3", NULL));
    cr_assert_eq(mwt_proc_wait(&d, 30000), 0);
    const char *obs[] = {"\"device\":\"dev-1\"", NULL};
    cr_assert_geq(mwt_count_lines(g.out, obs), 3, "the gateway did deliver into them");
    /* While it runs: a clean stop folds the -wal file into the store and removes both. */
    char wal[320], shm[320];
    snprintf(wal, sizeof wal, "%s-wal", g.store);
    snprintf(shm, sizeof shm, "%s-shm", g.store);
    assert_mode_0600(g.out);
    assert_mode_0600(g.audit);
    assert_mode_0600(g.store);
    assert_mode_0600(wal);
    assert_mode_0600(shm);
    stop_gateway(&g);
}

Test(programs, an_existing_output_file_open_to_others_keeps_its_mode_and_is_warned_about,
     .timeout = 60)
{
    mwt_pki pki;
    cr_assert(mwt_pki_make(&pki));
    char out[300], store[300];
    snprintf(out, sizeof out, "%s/old-out.jsonl", pki.dir);
    snprintf(store, sizeof store, "%s/store.db", pki.dir);
    FILE *f = fopen(out, "w");
    cr_assert_not_null(f);
    fclose(f);
    cr_assert_eq(chmod(out, 0644), 0);
    /* A port held by someone else stops the gateway right after it has opened its files. */
    int port = 0;
    int hole = hold_port(SOCK_DGRAM, &port);
    char listen[64], ca[300], crt[300], key[300];
    snprintf(listen, sizeof listen, "127.0.0.1:%d", port);
    snprintf(ca, sizeof ca, "%s", mwt_pki_ca(&pki));
    snprintf(crt, sizeof crt, "%s", mwt_pki_crt(&pki, "gateway"));
    snprintf(key, sizeof key, "%s", mwt_pki_key(&pki, "gateway"));
    const char *argv[] = {mwt_bin("medwire-gateway"), "--listen", listen, "--ca", ca, "--cert",
                          crt, "--key", key, "--out", out, "--store", store, NULL};
    char *err = NULL;
    int rc = run_capture(argv, pki.dir, &err);
    close(hole);
    cr_assert_eq(rc, 1, "%s", err);
    char want[800];
    snprintf(want, sizeof want,
             "warn file_open_to_others option=--out file=%s mode=0644 reason=\"other local users "
             "may read or write it: chmod 600 %s\"",
             out, out);
    cr_assert(strstr(err, want) != NULL, "%s", err);
    free(err);
    struct stat st;
    cr_assert_eq(stat(out, &st), 0);
    cr_assert_eq(st.st_mode & 0777, 0644, "the operator's mode is the operator's to change");
}

/* @req IEC62443-CR3.8 */
Test(programs, a_second_gateway_on_the_same_store_refuses_to_start_naming_it, .timeout = 120)
{
    mwt_pki pki;
    cr_assert(mwt_pki_make(&pki));
    gw_proc g;
    start_gateway(&g, &pki);
    char ca[300], crt[300], key[300], out[320];
    snprintf(ca, sizeof ca, "%s", mwt_pki_ca(&pki));
    snprintf(crt, sizeof crt, "%s", mwt_pki_crt(&pki, "gateway"));
    snprintf(key, sizeof key, "%s", mwt_pki_key(&pki, "gateway"));
    snprintf(out, sizeof out, "%s/second.jsonl", g.dir);
    const char *argv[] = {mwt_bin("medwire-gateway"),
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
                          "--store",
                          g.store,
                          NULL};
    char *err = NULL;
    int rc = run_capture(argv, g.dir, &err);
    cr_assert_eq(rc, 1, "exit status 1: cannot start (%s)", err);
    char want[400];
    snprintf(want, sizeof want,
             "gateway store %s is in use by another gateway: stop it, or give this one a store "
             "of its own",
             g.store);
    cr_assert(strstr(err, want) != NULL, "%s", err);
    free(err);
    /* The first one carries on, and once it has stopped the store is free again. */
    mwt_proc d;
    cr_assert(start_device(&d, &pki, &g, "dev-1", "gateway", "2", NULL));
    cr_assert_eq(mwt_proc_wait(&d, 30000), 0);
    stop_gateway(&g);
    run_gateway(&g, &pki);
    stop_gateway(&g);
}

Test(programs, a_busy_or_foreign_listen_address_and_a_missing_port_are_explained, .timeout = 120)
{
    mwt_pki pki;
    cr_assert(mwt_pki_make(&pki));
    char *msg = NULL, listen[64], want[300];

    int udp_port;
    int udp = hold_port(SOCK_DGRAM, &udp_port);
    snprintf(listen, sizeof listen, "127.0.0.1:%d", udp_port);
    cr_assert_eq(run_gateway_listening(&pki, listen, NULL, &msg), 1);
    snprintf(want, sizeof want,
             "reason=\"cannot listen on '%s': %s (another program holds this UDP port: stop it, "
             "or choose another port)\"\n",
             listen, strerror(EADDRINUSE));
    cr_assert(strstr(msg, want) != NULL, "gateway says: %s", msg);
    free(msg);
    close(udp);

    /* 192.0.2.1 (TEST-NET-1) is no address of this machine. */
    cr_assert_eq(run_gateway_listening(&pki, "192.0.2.1:5684", NULL, &msg), 1);
    snprintf(want, sizeof want,
             "reason=\"cannot listen on '192.0.2.1:5684': %s: not an address of this machine "
             "(give one of its own, or 0.0.0.0 for all)\"\n",
             strerror(EADDRNOTAVAIL));
    cr_assert(strstr(msg, want) != NULL, "gateway says: %s", msg);
    free(msg);

    int tcp_port;
    int tcp = hold_port(SOCK_STREAM, &tcp_port);
    char metrics[64];
    snprintf(metrics, sizeof metrics, "127.0.0.1:%d", tcp_port);
    cr_assert_eq(run_gateway_listening(&pki, "127.0.0.1:0", metrics, &msg), 1);
    snprintf(want, sizeof want,
             "reason=\"cannot serve metrics on '%s': %s (another program holds this TCP port: "
             "stop it, or choose another port)\"\n",
             metrics, strerror(EADDRINUSE));
    cr_assert(strstr(msg, want) != NULL, "gateway says: %s", msg);
    cr_assert(strstr(msg, "Failed to bind") == NULL, "no libmicrohttpd message: %s", msg);
    cr_assert(strchr(msg, '\n') == msg + strlen(msg) - 1, "one line: %s", msg);
    free(msg);
    close(tcp);

    /* A missing port is a usage error: exit 2, as the help says. */
    cr_assert_eq(run_gateway_listening(&pki, "127.0.0.1", NULL, &msg), 2);
    cr_assert_str_eq(msg, "medwire-gateway: --listen must be HOST:PORT, e.g. 0.0.0.0:5684 (port 0: "
                          "the system picks one): 127.0.0.1\nsee 'medwire-gateway --help'\n");
    free(msg);
    const char *dev[] = {mwt_bin("medwire-device"),
                         "--gateway",
                         "127.0.0.1",
                         "--gateway-name",
                         "gateway",
                         "--ca",
                         "ca",
                         "--cert",
                         "c",
                         "--key",
                         "k",
                         "--count",
                         "1",
                         NULL};
    cr_assert_eq(run_capture(dev, pki.dir, &msg), 2);
    cr_assert_str_eq(msg, "medwire-device: --gateway must be HOST:PORT, e.g. 10.0.0.5:5684: "
                          "127.0.0.1\nsee 'medwire-device --help'\n");
    free(msg);
}

Test(programs, every_program_takes_an_option_value_after_an_equals_sign, .timeout = 120)
{
    mwt_pki pki;
    cr_assert(mwt_pki_make(&pki));
    char arg[8][320];
    snprintf(arg[0], sizeof arg[0], "--out=%s/eq-ca", pki.dir);
    const char *pki_ca[] = {mwt_bin("medwire-pki"), "ca", arg[0], NULL};
    cr_assert_eq(mwt_run(pki_ca, NULL, NULL, 30000), 0);
    char path[320];
    snprintf(path, sizeof path, "%s/eq-ca/ca.crt", pki.dir);
    struct stat st;
    cr_assert_eq(stat(path, &st), 0, "medwire-pki ca --out=DIR");

    char port_file[300];
    snprintf(port_file, sizeof port_file, "%s/eq-port", pki.dir);
    snprintf(arg[0], sizeof arg[0], "--ca=%s", mwt_pki_ca(&pki));
    snprintf(arg[1], sizeof arg[1], "--cert=%s", mwt_pki_crt(&pki, "gateway"));
    snprintf(arg[2], sizeof arg[2], "--key=%s", mwt_pki_key(&pki, "gateway"));
    snprintf(arg[3], sizeof arg[3], "--store=%s/eq.db", pki.dir);
    snprintf(arg[4], sizeof arg[4], "--port-file=%s", port_file);
    const char *gw_argv[] = {mwt_bin("medwire-gateway"),
                             "--listen=127.0.0.1:0",
                             arg[0],
                             arg[1],
                             arg[2],
                             arg[3],
                             arg[4],
                             "--max-peers=8",
                             NULL};
    mwt_proc gw;
    cr_assert(mwt_proc_start(&gw, gw_argv, NULL, NULL));
    cr_assert(mwt_wait_file(port_file, 10000), "the gateway took --opt=value");
    char *port = mwt_read_file(port_file);
    cr_assert_not_null(port);
    char gw_opt[64];
    snprintf(gw_opt, sizeof gw_opt, "--gateway=127.0.0.1:%d", atoi(port));
    free(port);
    snprintf(arg[1], sizeof arg[1], "--cert=%s", mwt_pki_crt(&pki, "dev-1"));
    snprintf(arg[2], sizeof arg[2], "--key=%s", mwt_pki_key(&pki, "dev-1"));
    const char *dev_argv[] = {mwt_bin("medwire-device"),
                              gw_opt,
                              "--gateway-name=gateway",
                              arg[0],
                              arg[1],
                              arg[2],
                              "--count=3",
                              "--give-up-s=30",
                              NULL};
    int rc = mwt_run(dev_argv, NULL, NULL, 60000);
    cr_assert_eq(mwt_proc_stop(&gw, SIGTERM), 0);
    cr_assert_eq(rc, 0, "the device took --opt=value");
}

Test(programs, a_device_that_cannot_reach_its_gateway_says_so_and_counts_only_observations,
     .timeout = 60)
{
    mwt_pki pki;
    cr_assert(mwt_pki_make(&pki));
    int port;
    int hole = hold_port(SOCK_DGRAM, &port); /* a gateway that never answers */
    char gw[64], err[300];
    snprintf(gw, sizeof gw, "127.0.0.1:%d", port);
    snprintf(err, sizeof err, "%s/unreachable.err", pki.dir);
    /* 60 observations make one low-SpO2 alarm too: it waits in the same queue. */
    mwt_proc d;
    cr_assert(start_device_at(&d, &pki, gw, "dev-1", "gateway", "60", "1", NULL, err));
    cr_assert_eq(mwt_proc_wait(&d, 30000), 1);
    close(hole);
    char *msg = mwt_read_file(err);
    char want[400];
    snprintf(want, sizeof want,
             "medwire-device: gave up after 1 s: 60 of 60 observations not acknowledged: the "
             "gateway %s could not be reached; check that medwire-gateway runs there and listens "
             "on that UDP port (--gateway HOST:PORT), and that no firewall drops UDP between "
             "them\n",
             gw);
    cr_assert_str_eq(msg, want);
    free(msg);
}

/* @req IEC62443-CR1.9 */
Test(programs, a_device_not_yet_valid_is_told_expired_or_not_yet_valid_and_audited_exactly,
     .timeout = 120)
{
    mwt_pki pki;
    cr_assert(mwt_pki_make(&pki));
    gw_proc g;
    char *msg = refused_device_says(&pki, &g, "future", "gateway");
    cr_assert_str_eq(msg, "medwire-device: cannot deliver: the gateway refused our certificate as "
                          "expired or not yet valid; check its validity dates and both clocks\n");
    free(msg);
    const char *line[] = {"\"event\":\"handshake_failed\"",
                          "\"reason\":\"certificate 'future': peer certificate is not valid yet "
                          "(X509 verify error 13)\",\"error\":\"peer certificate is not valid "
                          "yet\",\"code\":-150}",
                          NULL};
    cr_assert_eq(mwt_count_lines(g.audit, line), 1, "the audit says not yet valid, exactly");
}

Test(programs, the_gateways_own_certificate_as_the_devices_ca_pins_it, .timeout = 120)
{
    mwt_pki pki;
    cr_assert(mwt_pki_make(&pki));
    gw_proc g;
    start_gateway(&g, &pki);
    char pin[300], other[320];
    snprintf(pin, sizeof pin, "%s", mwt_pki_crt(&pki, "gateway"));
    mwt_proc d;
    cr_assert(start_device_at(&d, &pki, g.addr, "dev-1", "gateway", "2", "30", pin, NULL));
    cr_assert_eq(mwt_proc_wait(&d, 30000), 0, "the pinned gateway is accepted");
    /* Another certificate of the same name from the same CA is not the pinned one. */
    char cadir[300], otherdir[250];
    snprintf(cadir, sizeof cadir, "%s/ca", pki.dir);
    snprintf(otherdir, sizeof otherdir, "%s/other", pki.dir);
    const char *issue[] = {mwt_bin("medwire-pki"),
                           "issue",
                           "--ca",
                           cadir,
                           "--role",
                           "gateway",
                           "--id",
                           "gateway",
                           "--out",
                           otherdir,
                           NULL};
    cr_assert_eq(mwt_run(issue, NULL, NULL, 30000), 0);
    snprintf(other, sizeof other, "%s/gateway.crt", otherdir);
    cr_assert(start_device_at(&d, &pki, g.addr, "dev-1", "gateway", "2", "30", other, NULL));
    cr_assert_eq(mwt_proc_wait(&d, 30000), 1, "another gateway certificate is refused");
    stop_gateway(&g);

    const char *help[] = {mwt_bin("medwire-device"), "--help", NULL};
    char out[300];
    snprintf(out, sizeof out, "%s/help.out", pki.dir);
    cr_assert_eq(mwt_run(help, out, NULL, 5000), 0);
    char *text = mwt_read_file(out);
    cr_assert(strstr(text, "  --ca FILE             PEM CA that the gateway's certificate must "
                           "chain to; the\n                        gateway's own certificate "
                           "works here too and pins it: then\n") != NULL,
              "%s", text);
    free(text);
}

Test(programs, the_gateway_help_says_which_observation_field_is_exact)
{
    const char *help[] = {mwt_bin("medwire-gateway"), "--help", NULL};
    char out[300];
    snprintf(out, sizeof out, "%s/help.out", mwt_tmpdir());
    cr_assert_eq(mwt_run(help, out, NULL, 5000), 0);
    char *text = mwt_read_file(out);
    cr_assert(strstr(text, "an\n                      observation's exact reading is "
                           "\"mantissa\" x 10^\"exponent\", as\n                      the "
                           "device sent it; \"value\" is the same as a floating-point\n") != NULL,
              "%s", text);
    cr_assert(strstr(text, "  --comm-loss-s S ") != NULL);
    free(text);
}
