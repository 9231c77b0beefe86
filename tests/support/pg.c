/* SPDX-License-Identifier: Apache-2.0 */
/* pg.c -- a real PostgreSQL server of a test's own (initdb, pg_ctl), on loopback. */
#include <arpa/inet.h>
#include <glob.h>
#include <netinet/in.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "support/pg.h"
#include "support/proc.h"

enum { ARGS_MAX = 24, START_TRIES = 5, PG_START_S = 20 };

/* The newest installed server: Debian keeps each major version under its own folder. */
static bool find_bin(char *out, size_t size)
{
    const char *env = getenv("MW_PG_BIN");
    if (env && *env) {
        snprintf(out, size, "%s", env);
        return true;
    }
    glob_t g;
    if (glob("/usr/lib/postgresql/*/bin/initdb", 0, NULL, &g) != 0)
        return false;
    /* glob sorts: the last is the highest version of one digit count, good enough here. */
    const char *last = g.gl_pathv[g.gl_pathc - 1];
    snprintf(out, size, "%.*s", (int)(strlen(last) - strlen("/initdb")), last);
    globfree(&g);
    return true;
}

bool mwt_pg_available(void)
{
    char bin[256], path[300];
    if (!find_bin(bin, sizeof bin))
        return false;
    snprintf(path, sizeof path, "%s/pg_ctl", bin);
    return access(path, X_OK) == 0;
}

/* argv of a server program: as root, under setpriv as "nobody", since initdb and postgres
 * refuse to run as root. */
typedef struct cmd {
    const char *v[ARGS_MAX + 1];
    size_t n;
    char prog[300], uid[32], gid[32];
} cmd;

static void cmd_begin(cmd *c, const mwt_pg *pg, const char *program)
{
    c->n = 0;
    if (geteuid() == 0) {
        const struct passwd *pw = getpwnam("nobody");
        snprintf(c->uid, sizeof c->uid, "--reuid=%u", pw ? (unsigned)pw->pw_uid : 65534u);
        snprintf(c->gid, sizeof c->gid, "--regid=%u", pw ? (unsigned)pw->pw_gid : 65534u);
        c->v[c->n++] = "/usr/bin/setpriv";
        c->v[c->n++] = c->uid;
        c->v[c->n++] = c->gid;
        c->v[c->n++] = "--clear-groups";
        c->v[c->n++] = "--";
    }
    snprintf(c->prog, sizeof c->prog, "%s/%s", pg->bin, program);
    c->v[c->n++] = c->prog;
    c->v[c->n] = NULL;
}

static void cmd_add(cmd *c, const char *arg)
{
    if (c->n < ARGS_MAX) {
        c->v[c->n++] = arg;
        c->v[c->n] = NULL;
    }
}

/* A port nobody listens on now; someone may take it before the server does: the caller
 * retries with another. */
static int free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a;
    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof a;
    int port = -1;
    if (fd >= 0 && bind(fd, (struct sockaddr *)&a, sizeof a) == 0 &&
        getsockname(fd, (struct sockaddr *)&a, &len) == 0)
        port = ntohs(a.sin_port);
    if (fd >= 0)
        close(fd);
    return port;
}

static void show_log(const mwt_pg *pg, const char *name)
{
    char path[200];
    snprintf(path, sizeof path, "%s/%s", pg->dir, name);
    char *text = mwt_read_file(path);
    if (text) {
        fprintf(stderr, "mwt_pg: %s:\n%s\n", path, text);
        free(text);
    }
}

/* pg_ctl start, waiting until the server accepts connections. The socket is in the cluster's
 * folder (short path, no /run/postgresql needed); fsync is off: the tests exercise the
 * server's behaviour, not the disk's, and a shared CI machine's disk is slow. */
static bool server_start(mwt_pg *pg)
{
    char data[200], log[200], opts[300], wait[16];
    snprintf(data, sizeof data, "%s/data", pg->dir);
    snprintf(log, sizeof log, "%s/server.log", pg->dir);
    snprintf(opts, sizeof opts,
             "-p %d -k %s -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=40",
             pg->port, pg->dir);
    snprintf(wait, sizeof wait, "%d", PG_START_S);
    cmd c;
    cmd_begin(&c, pg, "pg_ctl");
    const char *rest[] = {"start", "-w", "-t", wait, "-D", data, "-l", log, "-o", opts, NULL};
    for (size_t i = 0; rest[i]; i++)
        cmd_add(&c, rest[i]);
    char out[200];
    snprintf(out, sizeof out, "%s/pg_ctl.out", pg->dir);
    pg->running = mwt_run(c.v, out, out, (PG_START_S + 5) * 1000) == 0;
    return pg->running;
}

static bool server_stop(mwt_pg *pg, const char *verb)
{
    char data[200], out[200];
    snprintf(data, sizeof data, "%s/data", pg->dir);
    snprintf(out, sizeof out, "%s/pg_ctl.out", pg->dir);
    cmd c;
    cmd_begin(&c, pg, "pg_ctl");
    const char *rest[] = {verb, "-w", "-t", "20", "-m", "fast", "-D", data, NULL};
    for (size_t i = 0; rest[i]; i++)
        cmd_add(&c, rest[i]);
    int rc = mwt_run(c.v, out, out, 25000);
    return rc == 0;
}

/* Where clusters live: in memory when the system has /dev/shm (copying 40 MB to a disk costs
 * as much as initdb), else /tmp; never TMPDIR: the socket's path must stay short, and "nobody"
 * must be able to reach the folder. */
static const char *base_dir(void)
{
    struct stat st;
    return stat("/dev/shm", &st) == 0 && S_ISDIR(st.st_mode) && access("/dev/shm", W_OK) == 0
               ? "/dev/shm"
               : "/tmp";
}

static bool make_dir(char *dir, size_t size, const char *name)
{
    snprintf(dir, size, "%s/%s", base_dir(), name);
    if (mkdtemp(dir) == NULL) {
        perror("mwt_pg: mkdtemp");
        return false;
    }
    if (geteuid() == 0) {
        const struct passwd *pw = getpwnam("nobody");
        if (chown(dir, pw ? pw->pw_uid : 65534u, pw ? pw->pw_gid : 65534u) != 0) {
            perror("mwt_pg: chown");
            return false;
        }
    }
    return true;
}

/* Starts the cluster in pg->dir/data on a free port, retrying with another when someone took
 * the one picked. */
static bool start_on_free_port(mwt_pg *pg)
{
    for (int i = 0; i < START_TRIES && !pg->running; i++) {
        pg->port = free_port();
        if (pg->port > 0)
            server_start(pg);
    }
    if (!pg->running) {
        show_log(pg, "pg_ctl.out");
        show_log(pg, "server.log");
    }
    return pg->running;
}

/* initdb, start, createdb medwire, stop: a cluster to copy. */
static bool make_cluster(mwt_pg *pg)
{
    char data[200], out[200];
    snprintf(data, sizeof data, "%s/data", pg->dir);
    snprintf(out, sizeof out, "%s/initdb.out", pg->dir);
    cmd c;
    cmd_begin(&c, pg, "initdb");
    const char *rest[] = {"-D", data,   "-A",         "trust",     "-U", "postgres",
                          "-E", "UTF8", "--locale=C", "--no-sync", NULL};
    for (size_t i = 0; rest[i]; i++)
        cmd_add(&c, rest[i]);
    if (mwt_run(c.v, out, out, 60000) != 0) {
        show_log(pg, "initdb.out");
        return false;
    }
    if (!start_on_free_port(pg))
        return false;
    char port[16];
    snprintf(port, sizeof port, "%d", pg->port);
    cmd_begin(&c, pg, "createdb");
    const char *cr[] = {"-h", pg->dir, "-p", port, "-U", "postgres", "medwire", NULL};
    for (size_t i = 0; cr[i]; i++)
        cmd_add(&c, cr[i]);
    snprintf(out, sizeof out, "%s/createdb.out", pg->dir);
    bool ok = mwt_run(c.v, out, out, 20000) == 0;
    if (!ok)
        show_log(pg, "createdb.out");
    return mwt_pg_halt(pg) && ok;
}

/* initdb costs a second or two and every test wants a fresh server: one cluster per server
 * version and user is made once, then copied. It appears under its name only complete
 * (rename), so tests running in parallel never copy half of one. */
static bool template_cluster(const mwt_pg *pg, char *out, size_t size)
{
    char version[64];
    const char *slash = strrchr(pg->bin, '/');
    snprintf(version, sizeof version, "%.*s", slash ? (int)(slash - pg->bin) : 0, pg->bin);
    const char *v = strrchr(version, '/');
    snprintf(out, size, "%s/mwpg-template-%s-%u", base_dir(), v ? v + 1 : "x", (unsigned)geteuid());
    char probe[300];
    snprintf(probe, sizeof probe, "%s/data/PG_VERSION", out);
    struct stat st;
    if (stat(probe, &st) == 0)
        return true;
    mwt_pg t;
    memset(&t, 0, sizeof t);
    snprintf(t.bin, sizeof t.bin, "%s", pg->bin);
    if (!make_dir(t.dir, sizeof t.dir, "mwpg-new-XXXXXX"))
        return false;
    bool ok = make_cluster(&t);
    if (ok && rename(t.dir, out) == 0)
        return true;
    const char *rm[] = {"/bin/rm", "-rf", t.dir, NULL};
    (void)mwt_run(rm, NULL, NULL, 20000);
    return ok && stat(probe, &st) == 0; /* another test made it first */
}

bool mwt_pg_start(mwt_pg *pg)
{
    memset(pg, 0, sizeof *pg);
    if (!find_bin(pg->bin, sizeof pg->bin)) {
        fprintf(stderr, "mwt_pg: no PostgreSQL server under /usr/lib/postgresql\n");
        return false;
    }
    char tpl[200], from[220], to[200];
    if (!template_cluster(pg, tpl, sizeof tpl) || !make_dir(pg->dir, sizeof pg->dir, "mwpg-XXXXXX"))
        return false;
    snprintf(from, sizeof from, "%s/data", tpl);
    snprintf(to, sizeof to, "%s/data", pg->dir);
    const char *cp[] = {"/bin/cp", "-a", from, to, NULL};
    if (mwt_run(cp, NULL, NULL, 20000) != 0 || !start_on_free_port(pg)) {
        fprintf(stderr, "mwt_pg: cannot start a copy of %s\n", tpl);
        mwt_pg_stop(pg);
        return false;
    }
    snprintf(pg->url, sizeof pg->url, "postgresql://postgres@127.0.0.1:%d/medwire", pg->port);
    return true;
}

bool mwt_pg_halt(mwt_pg *pg)
{
    if (pg->running && server_stop(pg, "stop"))
        pg->running = false;
    return !pg->running;
}

bool mwt_pg_resume(mwt_pg *pg)
{
    return pg->running || server_start(pg);
}

bool mwt_pg_restart(mwt_pg *pg)
{
    return mwt_pg_halt(pg) && mwt_pg_resume(pg);
}

void mwt_pg_stop(mwt_pg *pg)
{
    if (pg->dir[0] == '\0')
        return;
    if (pg->running && !server_stop(pg, "stop"))
        show_log(pg, "pg_ctl.out");
    pg->running = false;
    const char *rm[] = {"/bin/rm", "-rf", pg->dir, NULL};
    (void)mwt_run(rm, NULL, NULL, 20000);
    pg->dir[0] = '\0';
}

int mwt_pg_sql(const mwt_pg *pg, const char *sql, const char *out_path)
{
    char port[16];
    snprintf(port, sizeof port, "%d", pg->port);
    cmd c;
    cmd_begin(&c, pg, "psql");
    const char *rest[] = {"-X", "-q",      "-t", "-A", "-v", "ON_ERROR_STOP=1",
                          "-h", pg->dir,   "-p", port, "-U", "postgres",
                          "-d", "medwire", "-c", sql,  NULL};
    for (size_t i = 0; rest[i]; i++)
        cmd_add(&c, rest[i]);
    return mwt_run(c.v, out_path, NULL, 20000);
}

bool mwt_pg_wait_for(const mwt_pg *pg, const char *sql, const char *want, int ms)
{
    char out[sizeof pg->dir + 16];
    snprintf(out, sizeof out, "%s/wait.out", pg->dir);
    size_t n = strlen(want);
    for (int waited = 0; waited <= ms; waited += 100) {
        if (mwt_pg_sql(pg, sql, out) == 0) {
            char *text = mwt_read_file(out);
            bool same = text && strncmp(text, want, n) == 0 && (text[n] == '\n' || text[n] == '\0');
            free(text);
            if (same)
                return true;
        }
        mwt_sleep_ms(100);
    }
    return false;
}
