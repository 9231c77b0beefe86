/* SPDX-License-Identifier: Apache-2.0 */
/* test_bridge.c -- the real medwire-bridge between python-hl7's MLLP client (a legacy monitor
 * not written here, tests/bridge/legacy_device.py drives it) or a serial line (a pty pair) and
 * the real medwire-gateway: every OBX arrives once, through a gateway outage and a bridge killed
 * mid-stream; what cannot be mapped is answered AE or AR and changes nothing else. */
#define _DEFAULT_SOURCE
#include <criterion/criterion.h>
#include <fcntl.h>
#include <poll.h>
#include <pty.h>
#include <signal.h>
#include <termios.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "support/programs.h"

#include "journal.h"

typedef struct rig {
    mwt_pki pki;
    char dir[300], out[400], gw_port[400], gw_err[400], gw_addr[64];
    char qfile[400], qkey[400], b_port[400], b_err[400], b_audit[400], b_listen[64];
    mwt_proc gw, bridge;
} rig_t;

static void in_dir(char *out, size_t size, const char *dir, const char *name)
{
    snprintf(out, size, "%s/%s", dir, name);
}

static void rig_init(rig_t *r)
{
    memset(r, 0, sizeof *r);
    cr_assert(mwt_pki_make(&r->pki));
    snprintf(r->dir, sizeof r->dir, "%s", mwt_tmpdir());
    in_dir(r->out, sizeof r->out, r->dir, "out.ndjson");
    in_dir(r->gw_port, sizeof r->gw_port, r->dir, "gw.port");
    in_dir(r->gw_err, sizeof r->gw_err, r->dir, "gw.err");
    in_dir(r->qfile, sizeof r->qfile, r->dir, "bridge.queue");
    in_dir(r->qkey, sizeof r->qkey, r->dir, "bridge.qkey");
    in_dir(r->b_port, sizeof r->b_port, r->dir, "bridge.port");
    in_dir(r->b_err, sizeof r->b_err, r->dir, "bridge.err");
    in_dir(r->b_audit, sizeof r->b_audit, r->dir, "bridge.audit");
    FILE *f = fopen(r->qkey, "w");
    cr_assert(f);
    fputs("00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff\n", f);
    fclose(f);
}

/* Starts the gateway; again on its address and store when it ran before. */
static void gateway_start(rig_t *r)
{
    char store[400];
    in_dir(store, sizeof store, r->dir, "store.db");
    const char *extra[] = {"--out", r->out, "--store", store, NULL};
    char listen[64];
    snprintf(listen, sizeof listen, "%s", r->gw_addr[0] ? r->gw_addr : "127.0.0.1:0");
    cr_assert(mwt_gateway_start(&r->gw, &r->pki, listen, r->gw_port, extra, r->gw_err, r->gw_addr,
                                sizeof r->gw_addr),
              "the gateway did not start");
}

/* Starts the bridge as dev-1 on MLLP (again on its port when it ran before), or on @p serial;
 * @p more: further options, NULL-terminated. */
static void bridge_start(rig_t *r, const char *serial, const char *const *more)
{
    const char *argv[40] = {mwt_bin("medwire-bridge"),
                            "--gateway",
                            r->gw_addr,
                            "--gateway-name",
                            "gateway",
                            "--ca",
                            mwt_pki_ca(&r->pki),
                            "--cert",
                            mwt_pki_crt(&r->pki, "dev-1"),
                            "--key",
                            mwt_pki_key(&r->pki, "dev-1"),
                            "--queue",
                            r->qfile,
                            "--queue-key",
                            r->qkey,
                            "--audit",
                            r->b_audit};
    size_t n = 17;
    if (serial) {
        argv[n++] = "--serial";
        argv[n++] = serial;
        argv[n++] = "--baud";
        argv[n++] = "115200";
    } else {
        if (r->b_listen[0] == '\0') {
            snprintf(r->b_listen, sizeof r->b_listen, "127.0.0.1:0");
            remove(r->b_port);
        }
        argv[n++] = "--listen-mllp";
        argv[n++] = r->b_listen;
        argv[n++] = "--port-file";
        argv[n++] = r->b_port;
    }
    for (size_t i = 0; more && more[i] && n < 38; i++)
        argv[n++] = more[i];
    argv[n] = NULL;
    cr_assert(mwt_proc_start(&r->bridge, argv, NULL, r->b_err));
    if (!serial && strcmp(r->b_listen, "127.0.0.1:0") == 0) {
        int port = mwt_wait_port(r->b_port, 10000);
        cr_assert_gt(port, 0, "the bridge did not start listening");
        snprintf(r->b_listen, sizeof r->b_listen, "127.0.0.1:%d", port);
    }
}

static const char *port_of(const rig_t *r)
{
    return strrchr(r->b_listen, ':') + 1;
}

static const char *script(void)
{
    static char path[600];
    const char *src = getenv("MW_SOURCE_DIR");
    cr_assert(src, "run through ctest");
    snprintf(path, sizeof path, "%s/tests/bridge/legacy_device.py", src);
    return path;
}

/* ctest names the interpreter that has python3-hl7; run otherwise (under valgrind by the
 * memcheck stage), Debian's, where the package installs it. */
static const char *python(void)
{
    const char *p = getenv("MW_HL7_PYTHON");
    return p ? p : "/usr/bin/python3";
}

/* Lines of the gateway's output that are observations. */
static size_t delivered(const rig_t *r)
{
    const char *obs[] = {"\"type\":\"observation\"", NULL};
    return mwt_count_lines(r->out, obs);
}

static void wait_delivered(const rig_t *r, size_t n, int timeout_ms)
{
    for (int t = 0; t < timeout_ms && delivered(r) < n; t += 200)
        mwt_sleep_ms(200);
}

static void stop_all(rig_t *r)
{
    cr_expect_eq(mwt_proc_stop(&r->bridge, SIGTERM), 0, "the bridge did not stop cleanly");
    mwt_proc_stop(&r->gw, SIGTERM);
}

TestSuite(bridge, .timeout = 240);

#ifndef MWT_BRIDGE_OUTAGE
static void wait_delivered_alarm(const rig_t *r, int timeout_ms)
{
    const char *alarm[] = {"\"type\":\"alarm\"", NULL};
    for (int t = 0; t < timeout_ms && mwt_count_lines(r->out, alarm) == 0; t += 200)
        mwt_sleep_ms(200);
}

static char *results_of(const char *path, const char *name)
{
    char *all = mwt_read_file(path);
    cr_assert(all, "no results");
    char needle[64];
    snprintf(needle, sizeof needle, "{\"case\": \"%s\"", name);
    char *at = strstr(all, needle);
    cr_assert(at, "no answer for %s in:\n%s", name, all);
    char *end = strchr(at, '\n');
    if (end)
        *end = '\0';
    char *line = strdup(at);
    free(all);
    return line;
}

/* Each bad message gets its answer, the good ones around them AA, and only the good ones reach
 * the gateway; a good one sent again (its ACK lost) is answered AA and not delivered twice; an
 * alarm OBX (an MDC event code) arrives as an alarm. */
/* @req IEC62443-CR3.5 MDCG-2019-16-VV */
Test(bridge, bad_messages_get_ae_or_ar_and_change_nothing_else)
{
    rig_t r;
    rig_init(&r);
    gateway_start(&r);
    const char *more[] = {"--max-message", "4096", NULL};
    bridge_start(&r, NULL, more);
    char results[400], sim_log[400];
    in_dir(results, sizeof results, r.dir, "results.jsonl");
    in_dir(sim_log, sizeof sim_log, r.dir, "legacy.log");
    const char *argv[] = {python(), script(), "bad", "127.0.0.1", port_of(&r), results, NULL};
    int rc = mwt_run(argv, sim_log, sim_log, 60000);
    char *log = mwt_read_file(sim_log);
    cr_assert_eq(rc, 0, "%s", log ? log : "");
    free(log);
    static const struct {
        const char *name, *msa1, *msa2, *err3;
    } want[] = {
        {"good", "AA", "MSG000001", ""},
        {"not-hl7", "AR", "", "100"},
        {"not-a-number", "AE", "MSG000002", "102"},
        {"unknown-code", "AE", "MSG000003", "103"},
        {"unknown-unit", "AE", "MSG000004", "103"},
        {"too-long", "AR", "MSG000005", "100"},
        {"not-oru", "AR", "MSG000006", "200"},
        {"good-again", "AA", "MSG000007", ""},
        {"alarm", "AA", "MSG000008", ""},
        {"repeat", "AA", "MSG000001", ""},
    };
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
        char *line = results_of(results, want[i].name);
        char msa1[64], msa2[64];
        snprintf(msa1, sizeof msa1, "\"msa1\": \"%s\"", want[i].msa1);
        snprintf(msa2, sizeof msa2, "\"msa2\": \"%s\"", want[i].msa2);
        cr_expect(strstr(line, msa1) && strstr(line, msa2), "%s: %s", want[i].name, line);
        if (want[i].err3[0]) {
            char err3[64];
            snprintf(err3, sizeof err3, "\"err3\": \"%s^", want[i].err3);
            cr_expect(strstr(line, err3), "%s: ERR-3 should be %s: %s", want[i].name, want[i].err3,
                      line);
        }
        free(line);
    }
    /* Two results, once each. */
    wait_delivered(&r, 2, 20000);
    mwt_sleep_ms(1000);
    cr_expect_eq(delivered(&r), 2);
    const char *spo2[] = {"\"mdc_code\":150456", "\"mantissa\":97", "\"unit\":\"%\"", NULL};
    const char *pr[] = {"\"mdc_code\":149530", "\"mantissa\":72", "\"unit\":\"/min\"", NULL};
    cr_expect_eq(mwt_count_lines(r.out, spo2), 1);
    cr_expect_eq(mwt_count_lines(r.out, pr), 1);
    const char *alarm[] = {"\"type\":\"alarm\"",          "\"mdc_code\":196670",
                           "\"alarm_priority\":\"high\"", "\"state\":\"active\"",
                           "\"source\":\"BED7-MON\"",     NULL};
    wait_delivered_alarm(&r, 20000);
    cr_expect_eq(mwt_count_lines(r.out, alarm), 1, "the alarm, high priority, from the monitor");
    /* Every refusal is in the audit trail. */
    const char *refused[] = {"\"event\":\"hl7_refused\"", NULL};
    stop_all(&r);
    cr_expect_eq(mwt_count_lines(r.b_audit, refused), 6);
}

/* MLLP only from the addresses allowed: a peer outside them is disconnected unanswered and the
 * refusal audited; a non-loopback listener without --allow does not start. */
/* @req IEC62443-CR5.1 IEC62443-CR2.8 */
Test(bridge, only_allowed_peers_connect)
{
    rig_t r;
    rig_init(&r);
    gateway_start(&r);
    const char *more[] = {"--allow", "127.0.0.2", NULL};
    bridge_start(&r, NULL, more);
    char results[400], sim_log[400];
    in_dir(results, sizeof results, r.dir, "results.jsonl");
    in_dir(sim_log, sizeof sim_log, r.dir, "legacy.log");
    const char *argv[] = {python(), script(), "bad", "127.0.0.1", port_of(&r), results, "1", NULL};
    cr_expect_neq(mwt_run(argv, sim_log, sim_log, 60000), 0, "a refused peer got answers");
    stop_all(&r);
    const char *refused[] = {"\"event\":\"mllp_connection_refused\"", "127.0.0.1", NULL};
    cr_expect_geq(mwt_count_lines(r.b_audit, refused), 1);
    cr_expect_eq(delivered(&r), 0);

    char err[400];
    in_dir(err, sizeof err, r.dir, "wide.err");
    const char *wide[] = {mwt_bin("medwire-bridge"),
                          "--gateway",
                          r.gw_addr,
                          "--gateway-name",
                          "gateway",
                          "--ca",
                          mwt_pki_ca(&r.pki),
                          "--cert",
                          mwt_pki_crt(&r.pki, "dev-1"),
                          "--key",
                          mwt_pki_key(&r.pki, "dev-1"),
                          "--queue",
                          r.qfile,
                          "--queue-key",
                          r.qkey,
                          "--listen-mllp",
                          "0.0.0.0:0",
                          NULL};
    cr_expect_eq(mwt_run(wide, NULL, err, 20000), 1);
    char *text = mwt_read_file(err);
    cr_expect(text && strstr(text, "--allow"), "%s", text ? text : "");
    free(text);
}

/* Writes @p msg framed on @p fd and reads the framed answer (up to 5 s). */
static void serial_exchange(int fd, const char *msg, char *ack, size_t size)
{
    char framed[2048];
    int n = snprintf(framed, sizeof framed, "\x0b%s\x1c\r", msg);
    cr_assert(n > 0 && (size_t)n < sizeof framed);
    cr_assert_eq(write(fd, framed, (size_t)n), n);
    size_t got = 0;
    for (int t = 0; t < 5000; t += 50) {
        struct pollfd p = {.fd = fd, .events = POLLIN};
        if (poll(&p, 1, 50) == 1) {
            ssize_t r = read(fd, ack + got, size - 1 - got);
            if (r > 0)
                got += (size_t)r;
            ack[got] = '\0';
            if (got >= 2 && ack[got - 2] == 0x1c && ack[got - 1] == '\r')
                return;
        }
    }
    cr_assert_fail("no answer on the serial line (got %zu bytes)", got);
}

/* The serial path: MLLP frames over a pty pair, answered on the same line. */
Test(bridge, serial_line_through_a_pty)
{
    rig_t r;
    rig_init(&r);
    gateway_start(&r);
    int master = -1, slave = -1;
    char name[128];
    /* Raw from the start: the line must not echo or translate what is written before the
     * bridge has set it up. */
    struct termios raw;
    memset(&raw, 0, sizeof raw);
    cfmakeraw(&raw);
    cr_assert_eq(openpty(&master, &slave, name, &raw, NULL), 0);
    bridge_start(&r, name, NULL);
    char ack[4096];
    const char *msg = "MSH|^~\\&|PUMP^ACME|ICU4|||20261205120000+0000||ORU^R01^ORU_R01|S1|P|2.6\r"
                      "PID|||4711^^^HOSP^MR\r"
                      "OBR|1|S1|S1|182777000^monitoring of patient^SNOMED-CT\r"
                      "OBX|1|NM|157784^MDC_FLOW_FLUID_PUMP^MDC|1.1.1.1|12.5|mL/h^mL/h^UCUM|||||F|||"
                      "20261205120000+0000||||PUMP-3^ACME\r";
    serial_exchange(master, msg, ack, sizeof ack);
    cr_expect(strstr(ack, "MSA|AA|S1"), "%s", ack);
    /* Garbage on the line is refused, and the line still works. */
    serial_exchange(master, "garbage", ack, sizeof ack);
    cr_expect(strstr(ack, "MSA|AR"), "%s", ack);
    serial_exchange(master, msg, ack, sizeof ack);
    cr_expect(strstr(ack, "MSA|AA|S1"), "%s", ack);
    wait_delivered(&r, 1, 20000);
    const char *pump[] = {"\"mdc_code\":157784", "\"mantissa\":125",      "\"exponent\":-1",
                          "\"unit\":\"mL/h\"",   "\"source\":\"PUMP-3\"", NULL};
    cr_expect_eq(mwt_count_lines(r.out, pump), 1);
    stop_all(&r);
    close(master);
    close(slave);
}

static bool holds_42(void *ctx, uint64_t space, uint64_t seq)
{
    (void)ctx;
    return space == 7 && seq == 42;
}

/* A crash while an item was being queued: the queue says whether it made it. */
Test(bridge, journal_settles_the_item_in_doubt_from_the_queue)
{
    char path[400];
    in_dir(path, sizeof path, mwt_tmpdir(), "j");
    journal_t *j = journal_open(path);
    cr_assert(j);
    const char *a_parts[] = {"mllp", "MON", "ICU"}, *b_parts[] = {"mllp", "PUMP", "ICU"};
    uint64_t a = journal_key(a_parts, 3), b = journal_key(b_parts, 3);
    const char *m1[] = {"MSG1"};
    uint64_t k1 = journal_key(m1, 1);
    cr_assert_eq(journal_record(j, a, k1, 1, 3, 42, 7), 0); /* the queue has 42 */
    cr_assert_eq(journal_record(j, b, k1, 1, 3, 43, 7), 0); /* it does not have 43 */
    cr_expect_eq(journal_done(j, a, k1, 3), 0, "in doubt until settled");
    journal_close(&j);
    j = journal_open(path);
    cr_assert(j);
    cr_assert_eq(journal_settle(j, holds_42, NULL), 0);
    cr_expect_eq(journal_done(j, a, k1, 3), 2);
    cr_expect_eq(journal_done(j, b, k1, 3), 1);
    journal_close(&j);
    j = journal_open(path);
    cr_assert(j);
    cr_expect_eq(journal_done(j, a, k1, 3), 2, "settled for good");
    journal_close(&j);
}

/* An ORU^R01 with @p n SpO2 OBX, control id @p id. */
static void oru(char *out, size_t size, const char *id, int n)
{
    int at = snprintf(out, size,
                      "MSH|^~\\&|MON^ACME|ICU4|||20261205120000+0000||ORU^R01^ORU_R01|%s|P|2.6\r"
                      "OBR|1|%s|%s|182777000^monitoring of patient^SNOMED-CT\r",
                      id, id, id);
    for (int i = 1; i <= n; i++)
        at += snprintf(out + at, size - (size_t)at,
                       "OBX|%d|NM|150456^MDC_PULS_OXIM_SAT_O2^MDC|1.1.1.%d|9%d|%%^%%^UCUM|||||F|||"
                       "20261205120%03d+0000||||MON-9^ACME\r",
                       i, i, i, i);
    cr_assert((size_t)at < size);
}

/* A message that does not fit whole in the queue is answered AE and queues nothing, while one
 * that fits still goes in: custody never evicts what was acknowledged. */
/* @req IEC62443-CR7.2 */
Test(bridge, a_full_queue_answers_ae_and_evicts_nothing)
{
    rig_t r;
    rig_init(&r);
    gateway_start(&r); /* for its address: it is stopped while the queue fills */
    cr_assert_eq(mwt_proc_stop(&r.gw, SIGTERM), 0);
    int master = -1, slave = -1;
    char name[128];
    struct termios raw;
    memset(&raw, 0, sizeof raw);
    cfmakeraw(&raw);
    cr_assert_eq(openpty(&master, &slave, name, &raw, NULL), 0);
    const char *more[] = {"--queue-capacity", "3", NULL};
    bridge_start(&r, name, more);
    char msg[2048], ack[4096];
    oru(msg, sizeof msg, "F1", 2);
    serial_exchange(master, msg, ack, sizeof ack);
    cr_expect(strstr(ack, "MSA|AA|F1"), "%s", ack);
    oru(msg, sizeof msg, "F2", 2);
    serial_exchange(master, msg, ack, sizeof ack);
    cr_expect(strstr(ack, "MSA|AE|F2") && strstr(ack, "207^") && strstr(ack, "queue is full"), "%s",
              ack);
    oru(msg, sizeof msg, "F3", 1);
    serial_exchange(master, msg, ack, sizeof ack);
    cr_expect(strstr(ack, "MSA|AA|F3"), "%s", ack);
    gateway_start(&r);
    wait_delivered(&r, 3, 30000);
    mwt_sleep_ms(500);
    cr_expect_eq(delivered(&r), 3, "F1's two results and F3's one, nothing of F2");
    const char *gap[] = {"\"type\":\"gap\"", NULL};
    cr_expect_eq(mwt_count_lines(r.out, gap), 0, "nothing evicted");
    stop_all(&r);
    const char *full[] = {"\"event\":\"hl7_refused\"", "queue is full", NULL};
    cr_expect_eq(mwt_count_lines(r.b_audit, full), 1);
    close(master);
    close(slave);
}

/* The journal: how much of a sender's last message is queued, across a restart. */
Test(bridge, journal_remembers_each_senders_last_message)
{
    char path[400];
    in_dir(path, sizeof path, mwt_tmpdir(), "j");
    journal_t *j = journal_open(path);
    cr_assert(j);
    const char *a_parts[] = {"mllp", "MON", "ICU"}, *b_parts[] = {"mllp", "PUMP", "ICU"};
    uint64_t a = journal_key(a_parts, 3), b = journal_key(b_parts, 3);
    const char *m1[] = {"MSG1"}, *m2[] = {"MSG2"};
    uint64_t k1 = journal_key(m1, 1), k2 = journal_key(m2, 1);
    cr_assert_eq(journal_record(j, a, k1, 2, 5, 0, 7), 0);
    cr_assert_eq(journal_record(j, b, k2, 3, 3, 0, 7), 0);
    journal_close(&j);
    j = journal_open(path);
    cr_assert(j);
    cr_expect_eq(journal_done(j, a, k1, 5), 2);
    cr_expect_eq(journal_done(j, b, k2, 3), 3);
    cr_expect_eq(journal_done(j, a, k2, 5), 0, "another message of the same sender");
    cr_expect_eq(journal_done(j, a, k1, 4), 0, "the same id with other content");
    /* A torn slot (b's, the second) is forgotten, not misread; the others stay. */
    journal_close(&j);
    int fd = open(path, O_WRONLY);
    cr_assert(fd >= 0);
    cr_assert_eq(pwrite(fd, "x", 1, 66), 1); /* inside the second 64-byte slot */
    close(fd);
    j = journal_open(path);
    cr_assert(j);
    cr_expect_eq(journal_done(j, b, k2, 3), 0);
    cr_expect_eq(journal_done(j, a, k1, 5), 2);
    /* More senders than slots: the least recently used is forgotten. */
    for (int i = 0; i < (int)JOURNAL_SLOTS; i++) {
        char s[16];
        snprintf(s, sizeof s, "S%d", i);
        const char *p[] = {s};
        cr_assert_eq(journal_record(j, journal_key(p, 1), k1, 1, 1, 0, 7), 0);
    }
    cr_expect_eq(journal_done(j, a, k1, 5), 0);
    journal_close(&j);
}

#else
static long read_long(const char *path)
{
    char *s = mwt_read_file(path);
    long v = s ? strtol(s, NULL, 10) : 0;
    free(s);
    return v;
}

static bool wait_progress(const char *path, long at_least, int timeout_ms)
{
    for (int t = 0; t < timeout_ms; t += 100) {
        if (read_long(path) >= at_least)
            return true;
        mwt_sleep_ms(100);
    }
    return false;
}

static size_t lines(const char *path)
{
    const char *any[] = {"", NULL};
    return mwt_count_lines(path, any);
}

static void check_output(const rig_t *r, const char *expected)
{
    char log[400];
    in_dir(log, sizeof log, r->dir, "check.txt");
    const char *argv[] = {python(), script(), "check", expected, r->out, "BED7-MON", NULL};
    int rc = mwt_run(argv, log, log, 30000);
    char *text = mwt_read_file(log);
    cr_assert_eq(rc, 0, "the gateway's output differs from what the monitor sent:\n%s",
                 text ? text : "");
    free(text);
}

/* 500 messages (1,250 OBX); the gateway is killed after the 100th and comes back 30 s later; the
 * bridge is killed after the 250th and started again at once. The monitor resends what was not
 * answered AA, as an MLLP sender does. */
/* @req IEC62443-CR7.3 IEC62443-CR7.4 */
Test(bridge, every_obx_arrives_once_through_outages)
{
    rig_t r;
    rig_init(&r);
    gateway_start(&r);
    bridge_start(&r, NULL, NULL);
    char expected[400], progress[400], sim_log[400];
    in_dir(expected, sizeof expected, r.dir, "expected.jsonl");
    in_dir(progress, sizeof progress, r.dir, "progress");
    in_dir(sim_log, sizeof sim_log, r.dir, "legacy.log");
    mwt_proc sim;
    const char *argv[] = {python(), script(), "stream", "127.0.0.1", port_of(&r),
                          "500",    expected, progress, NULL};
    cr_assert(mwt_proc_start(&sim, argv, sim_log, sim_log));

    cr_assert(wait_progress(progress, 100, 60000), "the monitor's first 100 messages");
    cr_assert_eq(mwt_proc_stop(&r.gw, SIGKILL), 128 + SIGKILL);
    /* While the gateway is down the bridge goes on answering AA: the results are durable in its
     * queue. */
    cr_assert(wait_progress(progress, 250, 60000), "the bridge stopped answering without a "
                                                   "gateway");
    cr_assert_eq(mwt_proc_stop(&r.bridge, SIGKILL), 128 + SIGKILL);
    bridge_start(&r, NULL, NULL);
    mwt_sleep_ms(25000); /* the rest of the gateway's 30 s outage */
    gateway_start(&r);

    int rc = mwt_proc_wait(&sim, 120000);
    char *log = mwt_read_file(sim_log);
    cr_assert_eq(rc, 0, "the monitor did not get AA for every message:\n%s", log ? log : "");
    free(log);
    size_t want = lines(expected);
    cr_assert_eq(want, 1250);
    wait_delivered(&r, want, 90000);
    check_output(&r, expected);
    stop_all(&r);
}
#endif
