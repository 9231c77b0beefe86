/* SPDX-License-Identifier: Apache-2.0 */
/* test_ha_pg.c -- high availability with the real programs: two medwire-gateway processes on
 * one PostgreSQL database and a fleet of medwire-device processes that list both. Gateways are
 * killed without warning and restarted, the database restarts, and every message each device
 * sent is delivered exactly once across the two gateways' outputs. */
#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "support/pg.h"
#include "support/programs.h"

#define DEVICES     20
#define B_FIRST     4   /* the last B_FIRST devices list B first, the others A */
#define OBS         100 /* observations per device */
#define ALARMS      2   /* medwire-device raises one per 25th SpO2: 2 in 100 observations */
#define PER_DEVICE  (OBS + ALARMS)
#define TOTAL       (DEVICES * PER_DEVICE)
#define LINES_MAX   512 /* per device: room for duplicates, so that they are counted */
#define INTERVAL_MS "100"

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
    cr_assert(mwt_pki_devices(&pki, "ha", DEVICES));
    cr_assert(mwt_pg_start(&pg), "the server starts");
}

static void down(void)
{
    mwt_pg_stop(&pg);
}

typedef struct gw {
    mwt_proc proc;
    const char *id;
    int starts;
    char dir[256], out[300], port_file[300], addr[64];
    const char *known_as; /* the address the devices are given: its own, or a relay's */
} gw;

/* Starts the gateway, the first time on a port the system picks, after that on the address it
 * had, with the same database, name and output: it takes up where it was killed. */
static void gateway_start(gw *g)
{
    char err[300], listen[64], addr[64];
    snprintf(err, sizeof err, "%s/%s.%d.err", g->dir, g->id, g->starts);
    snprintf(listen, sizeof listen, "%s", g->starts == 0 ? "127.0.0.1:0" : g->addr);
    const char *extra[] = {"--store", pg.url, "--gateway-id", g->id, "--out", g->out, NULL};
    bool ok =
        mwt_gateway_start(&g->proc, &pki, listen, g->port_file, extra, err, addr, sizeof addr);
    char *why = ok ? NULL : mwt_read_file(err);
    cr_assert(ok, "gateway %s (start %d): %s", g->id, g->starts, why ? why : "");
    cr_assert(g->starts == 0 || strcmp(addr, g->addr) == 0, "%s moved to %s", g->addr, addr);
    snprintf(g->addr, sizeof g->addr, "%s", addr);
    g->starts++;
}

/* A UDP relay in front of a gateway, as a NAT would be: a socket of its own towards the
 * gateway for each device address. It can drop what the gateway answers while still passing
 * what the devices send, so that the gateway goes on delivering and committing messages whose
 * Acks never arrive. */
#define RELAY_MAX 256
typedef struct relay {
    int front;
    struct sockaddr_in target;
    char addr[64]; /* what the devices are given */
    struct {
        struct sockaddr_in from;
        int fd;
    } map[RELAY_MAX];
    int n;
    atomic_bool drop_replies, stop;
    pthread_t thread;
} relay;

static int udp_socket(void)
{
    int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (fd >= 0 && bind(fd, (struct sockaddr *)&sa, sizeof sa) != 0) {
        close(fd);
        fd = -1;
    }
    return fd;
}

static void *relay_run(void *arg)
{
    relay *r = arg;
    uint8_t buf[4096];
    while (!atomic_load(&r->stop)) {
        struct pollfd p[RELAY_MAX + 1];
        p[0] = (struct pollfd){.fd = r->front, .events = POLLIN};
        for (int i = 0; i < r->n; i++)
            p[i + 1] = (struct pollfd){.fd = r->map[i].fd, .events = POLLIN};
        if (poll(p, (nfds_t)r->n + 1, 50) <= 0)
            continue;
        if (p[0].revents & POLLIN) {
            struct sockaddr_in from;
            socklen_t fl = sizeof from;
            ssize_t n = recvfrom(r->front, buf, sizeof buf, 0, (struct sockaddr *)&from, &fl);
            int i = 0;
            while (i < r->n && (r->map[i].from.sin_port != from.sin_port ||
                                r->map[i].from.sin_addr.s_addr != from.sin_addr.s_addr))
                i++;
            if (n > 0 && i == r->n && r->n < RELAY_MAX) {
                r->map[i].from = from;
                r->map[i].fd = udp_socket();
                r->n++;
            }
            if (n > 0 && i < r->n && r->map[i].fd >= 0)
                (void)sendto(r->map[i].fd, buf, (size_t)n, 0, (struct sockaddr *)&r->target,
                             sizeof r->target);
        }
        for (int i = 0; i < r->n; i++) {
            if (!(p[i + 1].revents & POLLIN))
                continue;
            ssize_t n = recv(r->map[i].fd, buf, sizeof buf, 0);
            if (n > 0 && !atomic_load(&r->drop_replies))
                (void)sendto(r->front, buf, (size_t)n, 0, (struct sockaddr *)&r->map[i].from,
                             sizeof r->map[i].from);
        }
    }
    return NULL;
}

static void relay_start(relay *r, const char *target)
{
    memset(r, 0, sizeof *r);
    r->front = udp_socket();
    cr_assert_geq(r->front, 0);
    struct sockaddr_in sa;
    socklen_t sl = sizeof sa;
    cr_assert_eq(getsockname(r->front, (struct sockaddr *)&sa, &sl), 0);
    snprintf(r->addr, sizeof r->addr, "127.0.0.1:%u", ntohs(sa.sin_port));
    r->target = (struct sockaddr_in){.sin_family = AF_INET};
    r->target.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    const char *colon = strrchr(target, ':');
    cr_assert_not_null(colon);
    r->target.sin_port = htons((uint16_t)atoi(colon + 1));
    cr_assert_eq(pthread_create(&r->thread, NULL, relay_run, r), 0);
}

static void relay_stop(relay *r)
{
    atomic_store(&r->stop, true);
    pthread_join(r->thread, NULL);
    for (int i = 0; i < r->n; i++)
        if (r->map[i].fd >= 0)
            close(r->map[i].fd);
    close(r->front);
}

static size_t lines(const char *out)
{
    const char *needles[] = {"{\"device\":", NULL};
    return mwt_count_lines(out, needles);
}

static size_t delivered(const gw *a, const gw *b)
{
    return lines(a->out) + lines(b->out);
}

/* Waits until the two outputs hold @p n lines (their sum: a killed gateway's may hold a few it
 * never committed, which its restart removes). */
static void wait_delivered(const gw *a, const gw *b, size_t n)
{
    for (int i = 0; i < 600 && delivered(a, b) < n; i++)
        mwt_sleep_ms(50);
    cr_assert_geq(delivered(a, b), n, "stalled at %zu of %d messages", delivered(a, b), TOTAL);
}

/* Waits until each of devices ha-@p from to ha-@p to has said that it left the gateway at
 * @p addr (medwire-device reports each failover on stderr as it happens). */
static void wait_left(const char *dir, const char *addr, int from, int to)
{
    char needle[100];
    snprintf(needle, sizeof needle, "the gateway at %s ", addr);
    const char *needles[] = {needle, NULL};
    for (int i = from; i <= to; i++) {
        char err[300];
        snprintf(err, sizeof err, "%s/ha-%d.err", dir, i);
        for (int t = 0; t < 200 && mwt_count_lines(err, needles) == 0; t++)
            mwt_sleep_ms(50);
        cr_assert_gt(mwt_count_lines(err, needles), 0, "ha-%d never left %s", i, addr);
    }
}

/* Kills the gateway that the devices use (no close_notify, no Ack for what it had taken) and,
 * once devices ha-@p from to ha-@p to have failed over, restarts it: restarted at once, it
 * would take some of them back on a new session instead. */
static void kill_and_restart(gw *g, int from, int to)
{
    cr_assert_eq(mwt_proc_stop(&g->proc, SIGKILL), 128 + SIGKILL, "%s was running", g->id);
    wait_left(g->dir, g->known_as, from, to);
    gateway_start(g);
}

static void device_start(mwt_proc *p, const char *dir, int i, const gw *first, const gw *second)
{
    char name[16], queue[300], key[300], err[300];
    snprintf(name, sizeof name, "ha-%d", i);
    snprintf(queue, sizeof queue, "%s/%s.queue", dir, name);
    snprintf(key, sizeof key, "%s/%s.qkey", dir, name);
    snprintf(err, sizeof err, "%s/%s.err", dir, name);
    FILE *f = fopen(key, "w");
    cr_assert_not_null(f);
    fprintf(f, "%064x\n", (unsigned)i);
    fclose(f);
    char ca[300], crt[300], k[300], count[16];
    snprintf(ca, sizeof ca, "%s", mwt_pki_ca(&pki));
    snprintf(crt, sizeof crt, "%s", mwt_pki_crt(&pki, name));
    snprintf(k, sizeof k, "%s", mwt_pki_key(&pki, name));
    snprintf(count, sizeof count, "%d", OBS);
    /* A dead gateway is deemed dead in 0.2 + 0.4 + 0.8 s (x1.5 at most), the next one tried
     * after 0.2 s at most. */
    const char *argv[] = {mwt_bin("medwire-device"),
                          "--ca",
                          ca,
                          "--cert",
                          crt,
                          "--key",
                          k,
                          "--gateway",
                          first->known_as,
                          "--gateway",
                          second->known_as,
                          "--gateway-name",
                          "gateway",
                          "--count",
                          count,
                          "--interval-ms",
                          INTERVAL_MS,
                          "--give-up-s",
                          "30",
                          "--queue",
                          queue,
                          "--queue-key",
                          key,
                          "--ack-timeout-ms",
                          "200",
                          "--max-retransmit",
                          "2",
                          "--reconnect-min-ms",
                          "200",
                          NULL};
    cr_assert(mwt_proc_start(p, argv, NULL, err));
}

/* One device's lines over all outputs. */
typedef struct seen {
    unsigned n, observations, alarms;
    unsigned long long seq[LINES_MAX];
    char space[LINES_MAX][17];
    char where[LINES_MAX]; /* 'a' or 'b' */
} seen;

static void read_out(const char *path, char where, seen devs[DEVICES])
{
    static const char key[] = "{\"device\":\"ha-";
    char *text = mwt_read_file(path);
    cr_assert_not_null(text, "%s", path);
    for (char *line = text; *line; line++) {
        char *nl = strchr(line, '\n');
        cr_assert_not_null(nl, "%s: a line cut short: %s", path, line);
        *nl = '\0';
        if (strncmp(line, key, sizeof key - 1) == 0) {
            char *end = NULL;
            long d = strtol(line + sizeof key - 1, &end, 10);
            cr_assert(d >= 1 && d <= DEVICES && strncmp(end, "\",\"seq\":", 8) == 0, "%s", line);
            seen *s = &devs[d - 1];
            cr_assert_lt(s->n, LINES_MAX, "ha-%ld: too many lines", d);
            s->seq[s->n] = strtoull(end + 8, NULL, 10);
            const char *sp = strstr(line, "\"space\":\"");
            cr_assert(sp != NULL && strlen(sp) > 9 + 16, "a line without its space: %s", line);
            memcpy(s->space[s->n], sp + 9, 16);
            s->space[s->n][16] = '\0';
            s->where[s->n] = where;
            s->observations += strstr(line, "\"type\":\"observation\"") != NULL;
            s->alarms += strstr(line, "\"type\":\"alarm\"") != NULL;
            s->n++;
        }
        line = nl;
    }
    free(text);
}

/* The number in "N failover(s)" of a device's summary, or 0. */
static unsigned failovers(const char *dir, int i)
{
    char err[300];
    snprintf(err, sizeof err, "%s/ha-%d.err", dir, i);
    char *said = mwt_read_file(err);
    const char *f = said ? strstr(said, " failover(s)") : NULL;
    unsigned n = 0;
    if (f) {
        while (f > said && f[-1] >= '0' && f[-1] <= '9')
            f--;
        n = (unsigned)strtoul(f, NULL, 10);
    }
    free(said);
    return n;
}

TestSuite(ha_pg, .init = up, .fini = down);

/* Why this fails without a store the gateways share: the Acks of A's last batches are lost
 * (the relay drops them) and A is killed, so each of its devices holds a batch that A has
 * delivered and committed, and sends it to B. Only the shared database (the device's row,
 * locked by the gateway that judges its batch) tells B that these are delivered; with a store
 * of its own (SQLite, one per gateway) B delivers them again, and the union below holds the
 * same (device, space, seq) twice. Likewise, a restarted gateway that did not return its
 * output to the checkpoint committed with the replay state would keep lines the devices then
 * send elsewhere. So the assertion is "exactly once", not "at least once". */
Test(ha_pg, gateways_killed_and_database_restarted_mid_stream_deliver_each_message_once,
     .timeout = 90)
{
    char dir[256];
    snprintf(dir, sizeof dir, "%s", mwt_tmpdir());
    gw a = {.id = "gw-a"}, b = {.id = "gw-b"};
    gw *gws[] = {&a, &b};
    for (int i = 0; i < 2; i++) {
        snprintf(gws[i]->dir, sizeof gws[i]->dir, "%s", dir);
        snprintf(gws[i]->out, sizeof gws[i]->out, "%s/%s.out", dir, gws[i]->id);
        snprintf(gws[i]->port_file, sizeof gws[i]->port_file, "%s/%s.port", dir, gws[i]->id);
        gateway_start(gws[i]);
        gws[i]->known_as = gws[i]->addr;
    }
    static relay ra;
    relay_start(&ra, a.addr);
    a.known_as = ra.addr;
    static mwt_proc devs[DEVICES];
    for (int i = 1; i <= DEVICES; i++) {
        bool a_first = i <= DEVICES - B_FIRST;
        device_start(&devs[i - 1], dir, i, a_first ? &a : &b, a_first ? &b : &a);
    }

    /* A serves most devices: killed at a quarter, they go to B. A device does not go
     * back to the first gateway once the second works (protocol.md section 6), so B now
     * serves all of them: it is killed at 60 % and they go to the restarted A. */
    wait_delivered(&a, &b, TOTAL / 4);
    /* First A's Acks are lost: it delivers and commits the batch each of its devices has in
     * flight, and none of them hears of it. They send these again to B. */
    atomic_store(&ra.drop_replies, true);
    mwt_sleep_ms(300);
    kill_and_restart(&a, 1, DEVICES - B_FIRST);
    atomic_store(&ra.drop_replies, false);
    wait_delivered(&a, &b, TOTAL * 6 / 10);
    kill_and_restart(&b, 1, DEVICES);
    /* Then every connection to the database is cut under both gateways. */
    wait_delivered(&a, &b, TOTAL * 8 / 10);
    cr_assert(mwt_pg_restart(&pg), "restarted under the gateways");

    for (int i = 1; i <= DEVICES; i++) {
        int rc = mwt_proc_wait(&devs[i - 1], 45000);
        char err[300];
        snprintf(err, sizeof err, "%s/ha-%d.err", dir, i);
        char *why = rc == 0 ? NULL : mwt_read_file(err);
        cr_assert_eq(rc, 0, "ha-%d: %s", i, why ? why : "");
    }
    cr_assert_eq(mwt_proc_stop(&a.proc, SIGTERM), 0);
    cr_assert_eq(mwt_proc_stop(&b.proc, SIGTERM), 0);
    relay_stop(&ra);
    /* The database's restart was felt: commits failed, and nothing they held was acknowledged
     * (the devices sent it again: the counts below). */
    const char *failed[] = {"\"event\":\"store_failed\"", NULL};
    size_t store_failed = 0;
    for (int i = 0; i < 2; i++) {
        char err[300];
        snprintf(err, sizeof err, "%s/%s.%d.err", dir, gws[i]->id, gws[i]->starts - 1);
        store_failed += mwt_count_lines(err, failed);
    }
    cr_assert_geq(store_failed, 1, "a commit failed while the database restarted");

    static seen s[DEVICES];
    memset(s, 0, sizeof s);
    read_out(a.out, 'a', s);
    read_out(b.out, 'b', s);
    unsigned at_a = 0, at_b = 0;
    for (int d = 0; d < DEVICES; d++) {
        seen *x = &s[d];
        /* Each sent message once: seq 1 to PER_DEVICE (a fresh queue numbers from 1), in the
         * one sequence space the queue keeps (a resynchronisation would send them again in a
         * new one). */
        unsigned times[PER_DEVICE + 1] = {0};
        for (unsigned j = 0; j < x->n; j++) {
            cr_assert(x->seq[j] >= 1 && x->seq[j] <= PER_DEVICE, "ha-%d: seq %llu", d + 1,
                      x->seq[j]);
            cr_assert_str_eq(x->space[j], x->space[0], "ha-%d: seq %llu in another space", d + 1,
                             x->seq[j]);
            times[x->seq[j]]++;
            at_a += x->where[j] == 'a';
            at_b += x->where[j] == 'b';
        }
        for (unsigned q = 1; q <= PER_DEVICE; q++) {
            char where[LINES_MAX + 1] = "";
            for (unsigned j = 0, k = 0; j < x->n; j++)
                if (x->seq[j] == q)
                    where[k++] = x->where[j];
            cr_assert_eq(times[q], 1, "ha-%d space %s seq %u delivered %u times (at: %s)", d + 1,
                         x->space[0], q, times[q], where);
        }
        cr_assert_eq(x->observations, OBS, "ha-%d", d + 1);
        cr_assert_eq(x->alarms, ALARMS, "ha-%d", d + 1);
        /* The A-first devices went A, B, A; the B-first ones B, A (more when a commit failed
         * for long enough while the database restarted). */
        unsigned want = d < DEVICES - B_FIRST ? 2 : 1;
        cr_assert_geq(failovers(dir, d + 1), want, "ha-%d failed over", d + 1);
    }
    char q[300], n[16];
    snprintf(q, sizeof q, "%s/count", dir);
    cr_assert_eq(mwt_pg_sql(&pg, "SELECT count(*) FROM messages", q), 0);
    char *text = mwt_read_file(q);
    cr_assert_not_null(text);
    snprintf(n, sizeof n, "%d\n", TOTAL);
    cr_assert_str_eq(text, n, "rows in the shared store");
    free(text);
    cr_log_info("%u messages delivered by gw-a, %u by gw-b; %zu commits failed", at_a, at_b,
                store_failed);
}
