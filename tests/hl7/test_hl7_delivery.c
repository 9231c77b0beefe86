/* SPDX-License-Identifier: Apache-2.0 */
/* test_hl7_delivery.c -- the real medwire-gateway delivering to python-hl7's MLLP server (a
 * listener written by others) while real medwire-device processes send: every message arrives,
 * and one that arrives twice carries the same control id. */
#include <criterion/criterion.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "support/programs.h"

#define DEVICES      5
#define OBSERVATIONS 40

typedef struct peer {
    mwt_proc proc;
    char port_file[400], ids[400], errors[400], rejected[400], port[16];
    const char *reject_seq; /* NULL: accept every message */
} peer;

typedef struct gateway {
    mwt_proc proc;
    char dir[300], store[400], port_file[400], audit[400], err[400], addr[64], hl7[64];
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
                          "--port",
                          p->port[0] ? p->port : "0",
                          p->reject_seq ? "--reject-seq" : NULL,
                          p->reject_seq,
                          NULL};
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
        snprintf(g->hl7, sizeof g->hl7, "mllp://127.0.0.1:%s", p->port);
    }
    const char *extra[] = {"--store", g->store, "--audit", g->audit, "--hl7", g->hl7, NULL};
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
    char *text = mwt_read_file(path);
    if (text == NULL)
        return t;
    char *lines[4096];
    for (char *save = NULL, *l = strtok_r(text, "\n", &save); l && t.lines < 4096;
         l = strtok_r(NULL, "\n", &save)) {
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
    const char *needle[] = {"-7", NULL};
    cr_expect_eq(mwt_count_lines(w.p.rejected, needle), 5u, "tried 5 times");
    no_parse_errors(&w.p);
    world_stop(&w);
}
