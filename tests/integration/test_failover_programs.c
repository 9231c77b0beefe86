/* SPDX-License-Identifier: Apache-2.0 */
/* test_failover_programs.c -- the real medwire-device listing two real medwire-gateway
 * processes, each with a store of its own, the first killed mid-stream. */
#include <criterion/criterion.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "support/programs.h"

#define COUNT   400 /* observations */
#define SEQ_MAX 1024

typedef struct gw {
    mwt_proc proc;
    char dir[256], out[300], store[300], port_file[300], err[300], addr[64];
} gw;

static void start(gw *g, const mwt_pki *pki)
{
    snprintf(g->dir, sizeof g->dir, "%s", mwt_tmpdir());
    snprintf(g->out, sizeof g->out, "%s/out.jsonl", g->dir);
    snprintf(g->store, sizeof g->store, "%s/store.db", g->dir);
    snprintf(g->port_file, sizeof g->port_file, "%s/port", g->dir);
    snprintf(g->err, sizeof g->err, "%s/err", g->dir);
    const char *extra[] = {"--out", g->out, "--store", g->store, NULL};
    cr_assert(mwt_gateway_start(&g->proc, pki, "127.0.0.1:0", g->port_file, extra, g->err, g->addr,
                                sizeof g->addr),
              "the gateway did not start");
}

/* What one gateway's output says of dev-1: each line's sequence number and space. */
typedef struct seen {
    unsigned times[SEQ_MAX + 1];
    char space[SEQ_MAX + 1][17];
    unsigned lines, observations;
} seen;

static void read_out(const char *path, seen *s)
{
    static const char dev[] = "{\"device\":\"dev-1\",\"seq\":";
    char *text = mwt_read_file(path);
    cr_assert_not_null(text, "%s", path);
    for (char *p = strstr(text, dev); p; p = strstr(p + 1, dev)) {
        char *end = NULL;
        unsigned long long seq = strtoull(p + sizeof dev - 1, &end, 10);
        cr_assert(seq >= 1 && seq <= SEQ_MAX, "seq %llu", seq);
        char *nl = strchr(p, '\n');
        char *sp = strstr(p, "\"space\":\"");
        cr_assert(sp != NULL && (nl == NULL || sp < nl), "a line without its space");
        s->times[seq]++;
        memcpy(s->space[seq], sp + 9, 16);
        s->lines++;
        static const char obs[] = ",\"type\":\"observation\"";
        s->observations += strncmp(end, obs, sizeof obs - 1) == 0;
    }
    free(text);
}

static unsigned lines_of_dev1(const char *out)
{
    const char *needles[] = {"{\"device\":\"dev-1\",", NULL};
    return (unsigned)mwt_count_lines(out, needles);
}

/* Killed without warning (no close_notify, no Ack for what it had taken), the first gateway
 * leaves the device retransmitting into silence: CoAP gives up, the device fails over to the
 * second, and every message it held goes there. Neither store knows the other's, so the
 * messages the first delivered but could not acknowledge arrive twice, as the same device,
 * space and seq, and only those. */
Test(failover_programs, a_killed_gateway_is_replaced_by_the_next_and_every_message_arrives,
     .timeout = 60)
{
    mwt_pki pki;
    cr_assert(mwt_pki_make(&pki));
    gw a, b;
    start(&a, &pki);
    start(&b, &pki);
    char derr[300];
    snprintf(derr, sizeof derr, "%s/device.err", a.dir);
    char ca[300], crt[300], key[300], count[16];
    snprintf(ca, sizeof ca, "%s", mwt_pki_ca(&pki));
    snprintf(crt, sizeof crt, "%s", mwt_pki_crt(&pki, "dev-1"));
    snprintf(key, sizeof key, "%s", mwt_pki_key(&pki, "dev-1"));
    snprintf(count, sizeof count, "%d", COUNT);
    const char *argv[] = {mwt_bin("medwire-device"), "--ca", ca, "--cert", crt, "--key", key,
                          "--gateway", a.addr, "--gateway", b.addr, "--gateway-name", "gateway",
                          "--count", count, "--interval-ms", "5", "--give-up-s", "30",
                          /* a dead gateway is deemed dead in 0.2 + 0.4 + 0.8 s (x1.5 at most) */
                          "--ack-timeout-ms", "200", "--max-retransmit", "2", "--reconnect-min-ms",
                          "200", NULL};
    mwt_proc dev;
    cr_assert(mwt_proc_start(&dev, argv, NULL, derr));

    /* Mid-stream: once the first gateway has delivered a quarter. */
    for (int i = 0; i < 200 && lines_of_dev1(a.out) < COUNT / 4; i++)
        mwt_sleep_ms(50);
    cr_assert_geq(lines_of_dev1(a.out), COUNT / 4, "the first gateway got nothing");
    mwt_proc_stop(&a.proc, SIGKILL);

    int rc = mwt_proc_wait(&dev, 40000);
    mwt_proc_stop(&b.proc, SIGTERM);
    char *said = mwt_read_file(derr);
    cr_assert_eq(rc, 0, "the device: %s", said ? said : "");
    char want[200];
    snprintf(want, sizeof want, "the gateway at %s stopped acknowledging", a.addr);
    cr_assert(said != NULL && strstr(said, want) != NULL, "the device said: %s", said);
    snprintf(want, sizeof want, "next: %s", b.addr);
    cr_assert(strstr(said, want) != NULL, "the device said: %s", said);
    snprintf(want, sizeof want, "1 failover(s); the gateway in use: %s", b.addr);
    cr_assert(strstr(said, want) != NULL, "the device said: %s", said);
    free(said);

    static seen sa, sb;
    memset(&sa, 0, sizeof sa);
    memset(&sb, 0, sizeof sb);
    read_out(a.out, &sa);
    read_out(b.out, &sb);
    cr_assert_gt(sb.lines, 0, "the second gateway got nothing");
    /* The union holds every number from 1 up, each gateway each number at most once. */
    unsigned top = 0, both = 0;
    for (unsigned s = 1; s <= SEQ_MAX; s++) {
        cr_assert_leq(sa.times[s], 1, "seq %u twice at the first gateway", s);
        cr_assert_leq(sb.times[s], 1, "seq %u twice at the second gateway", s);
        if (sa.times[s] + sb.times[s] > 0)
            top = s;
    }
    for (unsigned s = 1; s <= top; s++) {
        cr_assert_gt(sa.times[s] + sb.times[s], 0, "seq %u delivered nowhere", s);
        if (sa.times[s] && sb.times[s]) {
            both++;
            cr_assert_str_eq(sa.space[s], sb.space[s], "seq %u: the same message", s);
        }
    }
    /* Duplicates only around the failover: at most the batch in flight when it was killed
     * (one request at a time, 16 messages at most), none from before. */
    cr_assert_leq(both, 16, "%u messages at both gateways", both);
    unsigned last_a = 0;
    for (unsigned s = 1; s <= top; s++)
        if (sa.times[s])
            last_a = s;
    for (unsigned s = 1; s + 32 <= last_a; s++)
        cr_assert(!(sa.times[s] && sb.times[s]), "seq %u (long before the failover) twice", s);
    cr_assert_geq(sa.observations + sb.observations, COUNT, "every observation arrived: %u + %u",
                  sa.observations, sb.observations);
    cr_log_info("%u messages at the first gateway, %u at the second, %u at both", sa.lines,
                sb.lines, both);
    cr_assert_leq(sa.observations + sb.observations, COUNT + both);
}
