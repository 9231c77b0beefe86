/* SPDX-License-Identifier: Apache-2.0 */
/* outbox.c -- the delivery outbox: encoded messages held durably in a SQLite file of their own
 * until the hospital acknowledges them. The gateway's loop writes it (one connection); each
 * destination (a lane: "hl7", "fhir") has its rows, its sender, and that sender's connection
 * and thread. One message for two destinations is two rows, written in the same transaction. */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <time.h>
#include <unistd.h>

#include <sqlite3.h>

#include "outbox.h"
#include "log.h"
#ifdef MW_HAVE_LIBPQ
#include "outbox_pg.h"
#else
/* Without libpq the shared outbox is refused at open, and these are never reached. */
typedef struct obpg obpg_t;
#endif

struct staged {
    outbox_t *lane;
    char device[MW_ID_MAX + 1];
    char *payload;
    size_t len;
};

struct outbox {
    /* The lane outbox_open returned (the core) holds the file, the writer and the staging; each
     * lane (the core is the first) its own rows' reader. */
    outbox_t *core;
    outbox_t *lanes[OUTBOX_LANES_MAX]; /* core only */
    size_t nlanes;
    int lock_fd;           /* held open: flock, and SQLite's POSIX locks live as long as it does */
    char destination[300]; /* the lane's name, in the rows' destination column */
    char path[4096];       /* core only: lanes open their own connections to it */
    uint64_t max_rows;
    /* The gateway's loop (core only, but oldest: one per lane, on the core's connection). */
    sqlite3 *db;
    sqlite3_stmt *insert, *oldest;
    struct staged *staged;
    size_t nstaged, cap;
    uint64_t committed; /* the last checkpoint outbox_commit returned or recover was given */
    /* The lane's sender. */
    sqlite3 *sdb;
    sqlite3_stmt *next, *nextn, *del, *retry, *park;
    /* On PostgreSQL instead of SQLite (path is then the URL): the writer's connection (core)
     * and the sender's (each lane). */
    obpg_t *pg, *spg;
    char gateway[256];
    uint32_t lease_ms;
    /* Shared: mu, cv and released in the core; woken (under the core's mu) per lane. */
    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool woken;
    _Atomic uint64_t released; /* rows up to this id may be sent */
    _Atomic uint64_t depth, parked, full;
    bool refused; /* the last commit with rows staged went past this lane's bound */
};

static const char SCHEMA[] =
    "PRAGMA journal_mode=WAL;"
    "CREATE TABLE IF NOT EXISTS outbox("
    " id INTEGER PRIMARY KEY AUTOINCREMENT," /* never reused: checkpoints only grow */
    " destination TEXT NOT NULL,"
    " device TEXT NOT NULL,"
    " payload BLOB NOT NULL,"
    " attempts INTEGER NOT NULL DEFAULT 0,"
    " next_try_ms INTEGER NOT NULL DEFAULT 0,"
    " parked INTEGER NOT NULL DEFAULT 0,"
    " created_ms INTEGER NOT NULL);"
    /* Each sender reads its own lane's rows in order. */
    "CREATE INDEX IF NOT EXISTS outbox_lane ON outbox(destination, parked, id);"
    /* Rows written before lanes named their destination by its URL: mllp(s):// went to the
     * HL7 sender, http(s):// to the FHIR one. */
    "UPDATE outbox SET destination = 'hl7' WHERE destination LIKE 'mllp%://%';"
    "UPDATE outbox SET destination = 'fhir' WHERE destination LIKE 'http%://%';";

static uint64_t wall_ms(void)
{
    struct timespec t;
    clock_gettime(CLOCK_REALTIME, &t);
    return (uint64_t)t.tv_sec * 1000u + (uint64_t)t.tv_nsec / 1000000u;
}

static sqlite3 *open_db(const char *path, char *why, size_t why_size)
{
    sqlite3 *db = NULL;
    if (sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, NULL) != SQLITE_OK) {
        snprintf(why, why_size, "cannot open the outbox '%s': %s", path,
                 db ? sqlite3_errmsg(db) : "out of memory");
        sqlite3_close(db);
        return NULL;
    }
    /* FULL: a commit is on disk before the gateway acknowledges what it holds. */
    char *err = NULL;
    if (sqlite3_busy_timeout(db, 10000) != SQLITE_OK ||
        sqlite3_exec(db, "PRAGMA synchronous=FULL;", NULL, NULL, &err) != SQLITE_OK) {
        snprintf(why, why_size, "outbox '%s': %s", path, err ? err : sqlite3_errmsg(db));
        sqlite3_free(err);
        sqlite3_close(db);
        return NULL;
    }
    return db;
}

static bool prepare(sqlite3 *db, const char *sql, sqlite3_stmt **st, char *why, size_t why_size)
{
    if (sqlite3_prepare_v2(db, sql, -1, st, NULL) == SQLITE_OK)
        return true;
    snprintf(why, why_size, "outbox: %s", sqlite3_errmsg(db));
    return false;
}

static uint64_t count(sqlite3 *db, const char *sql)
{
    if (sql == NULL)
        return 0;
    sqlite3_stmt *st = NULL;
    uint64_t n = 0;
    if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) == SQLITE_OK && sqlite3_step(st) == SQLITE_ROW)
        n = (uint64_t)sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    return n;
}

/* A lane's own statements: its sender's connection and queries, and its oldest row. */
static bool lane_init(outbox_t *ob, const char *path, char *why, size_t why_size)
{
    outbox_t *c = ob->core;
#ifdef MW_HAVE_LIBPQ
    if (c->pg) {
        if ((ob->spg = obpg_open(path, c->gateway, false, why, why_size)) == NULL)
            return false;
        atomic_store(&ob->depth, obpg_count(c->pg, ob->destination, false));
        atomic_store(&ob->parked, obpg_count(c->pg, ob->destination, true));
        return true;
    }
#endif
    /* The sender's deletes need not wait for the disk: one lost in a crash sends its message
     * again, with the same control id, which the receiver recognises. */
    if ((ob->sdb = open_db(path, why, why_size)) == NULL ||
        sqlite3_exec(ob->sdb, "PRAGMA synchronous=NORMAL;", NULL, NULL, NULL) != SQLITE_OK)
        return false;
    char *sql[5] = {
        sqlite3_mprintf("SELECT created_ms FROM outbox WHERE destination = %Q AND parked = 0"
                        " ORDER BY id LIMIT 1",
                        ob->destination),
        sqlite3_mprintf("SELECT id, device, payload, attempts FROM outbox WHERE destination = %Q"
                        " AND parked = 0 AND id <= ? ORDER BY id LIMIT 1",
                        ob->destination),
        sqlite3_mprintf("SELECT id, device, payload, attempts FROM outbox WHERE destination = %Q"
                        " AND parked = 0 AND id <= ? ORDER BY id LIMIT ?",
                        ob->destination),
        sqlite3_mprintf("SELECT count(*) FROM outbox WHERE destination = %Q", ob->destination),
        sqlite3_mprintf("SELECT count(*) FROM outbox WHERE destination = %Q AND parked = 1",
                        ob->destination),
    };
    bool ok = sql[0] && sql[1] && sql[2] && sql[3] && sql[4];
    if (!ok)
        snprintf(why, why_size, "out of memory");
    ok = ok && prepare(c->db, sql[0], &ob->oldest, why, why_size) &&
         prepare(ob->sdb, sql[1], &ob->next, why, why_size) &&
         prepare(ob->sdb, sql[2], &ob->nextn, why, why_size) &&
         prepare(ob->sdb, "DELETE FROM outbox WHERE id = ?", &ob->del, why, why_size) &&
         prepare(ob->sdb, "UPDATE outbox SET attempts = ?, next_try_ms = ? WHERE id = ?",
                 &ob->retry, why, why_size) &&
         prepare(ob->sdb, "UPDATE outbox SET parked = 1 WHERE id = ?", &ob->park, why, why_size);
    if (ok) {
        atomic_store(&ob->depth, count(c->db, sql[3]));
        atomic_store(&ob->parked, count(c->db, sql[4]));
    }
    for (size_t i = 0; i < 5; i++)
        sqlite3_free(sql[i]);
    return ok;
}

/* Frees what lane_init made. */
static void lane_fini(outbox_t *ob)
{
    sqlite3_stmt *sts[] = {ob->oldest, ob->next, ob->nextn, ob->del, ob->retry, ob->park};
    for (size_t i = 0; i < sizeof sts / sizeof sts[0]; i++)
        sqlite3_finalize(sts[i]);
    sqlite3_close(ob->sdb);
#ifdef MW_HAVE_LIBPQ
    obpg_close(&ob->spg);
#endif
}

/* A core with its first lane, and nothing open yet. */
static outbox_t *new_core(const char *destination, uint64_t max_rows, char *why, size_t why_size)
{
    outbox_t *ob = calloc(1, sizeof *ob);
    if (ob == NULL) {
        snprintf(why, why_size, "out of memory");
        return NULL;
    }
    ob->core = ob;
    ob->lanes[ob->nlanes++] = ob;
    ob->lock_fd = -1;
    snprintf(ob->destination, sizeof ob->destination, "%s", destination);
    ob->max_rows = max_rows;
    ob->lease_ms = OUTBOX_LEASE_MS;
    pthread_mutex_init(&ob->mu, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&ob->cv, &ca);
    pthread_condattr_destroy(&ca);
    return ob;
}

outbox_t *outbox_open_shared(const char *url, const char *gateway, const char *destination,
                             uint64_t max_rows, char *why, size_t why_size)
{
#ifdef MW_HAVE_LIBPQ
    outbox_t *ob = new_core(destination, max_rows, why, why_size);
    if (ob == NULL)
        return NULL;
    snprintf(ob->gateway, sizeof ob->gateway, "%s", gateway);
    snprintf(ob->path, sizeof ob->path, "%s", url);
    if ((ob->pg = obpg_open(url, gateway, true, why, why_size)) == NULL ||
        !lane_init(ob, url, why, why_size)) {
        outbox_close(&ob);
        return NULL;
    }
    ob->committed = obpg_last_id(ob->pg);
    return ob;
#else
    (void)url;
    (void)gateway;
    (void)destination;
    (void)max_rows;
    snprintf(why, why_size,
             "this medwire-gateway was built without libpq: the outbox cannot be on PostgreSQL "
             "(apt install libpq-dev and build again, or give --outbox FILE)");
    return NULL;
#endif
}

void outbox_set_lease(outbox_t *ob, uint32_t lease_ms)
{
    ob->core->lease_ms = lease_ms;
}

outbox_t *outbox_open(const char *path, const char *destination, uint64_t max_rows, char *why,
                      size_t why_size)
{
    outbox_t *ob = new_core(destination, max_rows, why, why_size);
    if (ob == NULL)
        return NULL;
    /* Created owner-only whatever the umask (it holds health data); SQLite gives its -wal and
     * -shm files the same mode. */
    ob->lock_fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (ob->lock_fd < 0) {
        snprintf(why, why_size, "cannot open the outbox '%s': %s", path, strerror(errno));
        goto fail;
    }
    if (flock(ob->lock_fd, LOCK_EX | LOCK_NB) != 0) {
        snprintf(why, why_size, "the outbox '%s' is in use by another gateway", path);
        goto fail;
    }
    char *err = NULL;
    if ((ob->db = open_db(path, why, why_size)) == NULL)
        goto fail;
    if (sqlite3_exec(ob->db, SCHEMA, NULL, NULL, &err) != SQLITE_OK) {
        snprintf(why, why_size, "outbox '%s': %s", path, err ? err : "cannot create the table");
        sqlite3_free(err);
        goto fail;
    }
    snprintf(ob->path, sizeof ob->path, "%s", path);
    if (!prepare(ob->db,
                 "INSERT INTO outbox(destination, device, payload, created_ms) VALUES(?,?,?,?)",
                 &ob->insert, why, why_size) ||
        !lane_init(ob, path, why, why_size))
        goto fail;
    ob->committed = count(ob->db, "SELECT coalesce(max(id), 0) FROM outbox");
    return ob;
fail:
    outbox_close(&ob);
    return NULL;
}

outbox_t *outbox_add_lane(outbox_t *core, const char *destination, char *why, size_t why_size)
{
    if (core->core != core || core->nlanes == OUTBOX_LANES_MAX) {
        snprintf(why, why_size, "outbox: no room for another destination");
        return NULL;
    }
    for (size_t i = 0; i < core->nlanes; i++)
        if (strcmp(core->lanes[i]->destination, destination) == 0) {
            snprintf(why, why_size, "outbox: destination '%s' given twice", destination);
            return NULL;
        }
    outbox_t *ob = calloc(1, sizeof *ob);
    if (ob == NULL) {
        snprintf(why, why_size, "out of memory");
        return NULL;
    }
    ob->core = core;
    ob->lock_fd = -1;
    ob->max_rows = core->max_rows;
    ob->lease_ms = core->lease_ms;
    snprintf(ob->destination, sizeof ob->destination, "%s", destination);
    if (!lane_init(ob, core->path, why, why_size)) {
        lane_fini(ob);
        free(ob);
        return NULL;
    }
    core->lanes[core->nlanes++] = ob;
    return ob;
}

uint64_t outbox_unclaimed(outbox_t *ob)
{
    outbox_t *c = ob->core;
#ifdef MW_HAVE_LIBPQ
    if (c->pg) {
        uint64_t n = obpg_count(c->pg, NULL, false);
        for (size_t i = 0; i < c->nlanes; i++) {
            uint64_t k = obpg_count(c->pg, c->lanes[i]->destination, false);
            n = n > k ? n - k : 0;
        }
        return n;
    }
#endif
    uint64_t n = count(c->db, "SELECT count(*) FROM outbox");
    for (size_t i = 0; i < c->nlanes; i++)
        n -= atomic_load(&c->lanes[i]->depth);
    return n;
}

static void drop_staged(outbox_t *ob)
{
    for (size_t i = 0; i < ob->nstaged; i++)
        free(ob->staged[i].payload);
    ob->nstaged = 0;
}

/* A lane added to the core leaves the core's list and goes. */
static void close_lane(outbox_t *ob)
{
    outbox_t *c = ob->core;
    for (size_t i = 0; i < c->nlanes; i++)
        if (c->lanes[i] == ob) {
            c->lanes[i] = c->lanes[--c->nlanes];
            break;
        }
    lane_fini(ob);
    free(ob);
}

void outbox_close(outbox_t **pob)
{
    outbox_t *ob = *pob;
    if (ob == NULL)
        return;
    *pob = NULL;
    if (ob->core != ob) {
        close_lane(ob);
        return;
    }
    while (ob->nlanes > 1)
        close_lane(ob->lanes[1]);
    drop_staged(ob);
    free(ob->staged);
    lane_fini(ob);
    sqlite3_finalize(ob->insert);
    sqlite3_close(ob->db);
#ifdef MW_HAVE_LIBPQ
    obpg_close(&ob->pg);
#endif
    if (ob->lock_fd >= 0)
        close(ob->lock_fd);
    pthread_cond_destroy(&ob->cv);
    pthread_mutex_destroy(&ob->mu);
    free(ob);
}

mw_err outbox_stage(outbox_t *lane, const char *device, const char *payload, size_t len)
{
    outbox_t *ob = lane->core;
    if (ob->nstaged == ob->cap) {
        size_t cap = ob->cap ? ob->cap * 2 : 64;
        struct staged *s = realloc(ob->staged, cap * sizeof *s);
        if (s == NULL)
            return MW_ENOMEM;
        ob->staged = s;
        ob->cap = cap;
    }
    struct staged *s = &ob->staged[ob->nstaged];
    s->lane = lane;
    s->payload = malloc(len ? len : 1);
    if (s->payload == NULL)
        return MW_ENOMEM;
    memcpy(s->payload, payload, len);
    s->len = len;
    snprintf(s->device, sizeof s->device, "%s", device);
    ob->nstaged++;
    return MW_OK;
}

/* The rows staged for @p lane. */
static uint64_t staged_for(const outbox_t *c, const outbox_t *lane)
{
    uint64_t n = 0;
    for (size_t i = 0; i < c->nstaged; i++)
        n += c->staged[i].lane == lane;
    return n;
}

/* The staged rows are written, up to id @p last. */
static mw_err committed(outbox_t *ob, uint64_t last, uint64_t *out_checkpoint)
{
    for (size_t i = 0; i < ob->nlanes; i++)
        atomic_fetch_add(&ob->lanes[i]->depth, staged_for(ob, ob->lanes[i]));
    drop_staged(ob);
    ob->committed = last;
    *out_checkpoint = last;
    return MW_OK;
}

mw_err outbox_commit(outbox_t *lane, uint64_t *out_checkpoint)
{
    outbox_t *ob = lane->core;
    if (ob->nstaged == 0) {
        *out_checkpoint = ob->committed;
        return MW_OK;
    }
#ifdef MW_HAVE_LIBPQ
    /* Other gateways add and deliver rows of the shared outbox: the bound is checked against
     * what the database holds now. */
    for (size_t i = 0; ob->pg && i < ob->nlanes; i++)
        atomic_store(&ob->lanes[i]->depth, obpg_count(ob->pg, ob->lanes[i]->destination, false));
#endif
    /* Every destination gets the message, or none does: one full lane refuses the commit. */
    bool full = false;
    for (size_t i = 0; i < ob->nlanes; i++) {
        outbox_t *l = ob->lanes[i];
        l->refused = atomic_load(&l->depth) + staged_for(ob, l) > ob->max_rows;
        if (l->refused) {
            atomic_fetch_add(&l->full, 1);
            full = true;
        }
    }
    if (full) {
        drop_staged(ob);
        return MW_EFULL;
    }
    uint64_t now = wall_ms();
    uint64_t last = 0;
#ifdef MW_HAVE_LIBPQ
    if (ob->pg) {
        bool ok = obpg_begin(ob->pg);
        for (size_t i = 0; i < ob->nstaged && ok; i++)
            ok = obpg_insert(ob->pg, ob->staged[i].lane->destination, ob->staged[i].device,
                             ob->staged[i].payload, ob->staged[i].len, now, &last);
        if (ok)
            ok = obpg_commit(ob->pg);
        if (!ok) {
            obpg_rollback(ob->pg);
            drop_staged(ob);
            return MW_EIO;
        }
        return committed(ob, last, out_checkpoint);
    }
#endif
    if (sqlite3_exec(ob->db, "BEGIN IMMEDIATE", NULL, NULL, NULL) != SQLITE_OK) {
        drop_staged(ob);
        return MW_EIO;
    }
    bool ok = true;
    for (size_t i = 0; i < ob->nstaged && ok; i++) {
        sqlite3_stmt *st = ob->insert;
        sqlite3_bind_text(st, 1, ob->staged[i].lane->destination, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 2, ob->staged[i].device, -1, SQLITE_STATIC);
        sqlite3_bind_blob(st, 3, ob->staged[i].payload, (int)ob->staged[i].len, SQLITE_STATIC);
        sqlite3_bind_int64(st, 4, (sqlite3_int64)now);
        ok = sqlite3_step(st) == SQLITE_DONE;
        sqlite3_reset(st);
        sqlite3_clear_bindings(st);
    }
    last = (uint64_t)sqlite3_last_insert_rowid(ob->db);
    if (ok)
        ok = sqlite3_exec(ob->db, "COMMIT", NULL, NULL, NULL) == SQLITE_OK;
    if (!ok) {
        sqlite3_exec(ob->db, "ROLLBACK", NULL, NULL, NULL);
        drop_staged(ob);
        return MW_EIO;
    }
    return committed(ob, last, out_checkpoint);
}

mw_err outbox_recover(outbox_t *lane, uint64_t checkpoint)
{
    outbox_t *ob = lane->core;
    drop_staged(ob);
    /* 0 is a store that has recorded no checkpoint (a new one): the rows it finds were
     * acknowledged under an earlier store, and are kept. */
    if (checkpoint == 0)
        return MW_OK;
#ifdef MW_HAVE_LIBPQ
    if (ob->pg) {
        /* Only this gateway's rows: others' belong to their own checkpoints. */
        if (!obpg_forget_after(ob->pg, checkpoint))
            return MW_EIO;
        for (size_t i = 0; i < ob->nlanes; i++)
            atomic_store(&ob->lanes[i]->depth,
                         obpg_count(ob->pg, ob->lanes[i]->destination, false));
        /* Its rows up to the checkpoint may have been delivered (deleted) by any gateway: the
         * checkpoint, not the last row left, is where the next commit goes on from, so that
         * the store's checkpoint never goes back below rows it committed. */
        ob->committed = checkpoint;
        return MW_OK;
    }
#endif
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v2(ob->db, "DELETE FROM outbox WHERE id > ?", -1, &st, NULL) != SQLITE_OK)
        return MW_EIO;
    sqlite3_bind_int64(st, 1, (sqlite3_int64)checkpoint);
    bool ok = sqlite3_step(st) == SQLITE_DONE;
    sqlite3_finalize(st);
    if (!ok)
        return MW_EIO;
    for (size_t i = 0; i < ob->nlanes; i++) {
        char *sql = sqlite3_mprintf("SELECT count(*) FROM outbox WHERE destination = %Q",
                                    ob->lanes[i]->destination);
        atomic_store(&ob->lanes[i]->depth, count(ob->db, sql));
        sqlite3_free(sql);
    }
    if (ob->committed > checkpoint)
        ob->committed = checkpoint;
    return MW_OK;
}

void outbox_release(outbox_t *lane)
{
    outbox_t *ob = lane->core;
    if (atomic_load(&ob->released) == ob->committed)
        return;
    atomic_store(&ob->released, ob->committed);
    pthread_mutex_lock(&ob->mu);
    pthread_cond_broadcast(&ob->cv);
    pthread_mutex_unlock(&ob->mu);
}

void outbox_wake(outbox_t *lane)
{
    outbox_t *ob = lane->core;
    pthread_mutex_lock(&ob->mu);
    lane->woken = true;
    pthread_cond_broadcast(&ob->cv);
    pthread_mutex_unlock(&ob->mu);
}

/* Waits up to @p wait_ms for outbox_release or outbox_wake. */
static void wait_for_rows(outbox_t *lane, int wait_ms)
{
    outbox_t *ob = lane->core;
    struct timespec until;
    clock_gettime(CLOCK_MONOTONIC, &until);
    until.tv_sec += wait_ms / 1000;
    until.tv_nsec += (long)(wait_ms % 1000) * 1000000L;
    if (until.tv_nsec >= 1000000000L) {
        until.tv_sec++;
        until.tv_nsec -= 1000000000L;
    }
    pthread_mutex_lock(&ob->mu);
    if (!lane->woken)
        pthread_cond_timedwait(&ob->cv, &ob->mu, &until);
    lane->woken = false;
    pthread_mutex_unlock(&ob->mu);
}

/* The row @p st stands on, into @p out; false when out of memory. */
static bool take_row(sqlite3_stmt *st, outbox_row_t *out)
{
    bool found = false;
    {
        const void *blob = sqlite3_column_blob(st, 2);
        int n = sqlite3_column_bytes(st, 2);
        const unsigned char *dev = sqlite3_column_text(st, 1);
        out->payload = malloc(n > 0 ? (size_t)n : 1);
        if (out->payload) {
            out->id = sqlite3_column_int64(st, 0);
            snprintf(out->device, sizeof out->device, "%s", dev ? (const char *)dev : "");
            if (n > 0)
                memcpy(out->payload, blob, (size_t)n);
            out->len = n > 0 ? (size_t)n : 0;
            out->attempts = (unsigned)sqlite3_column_int(st, 3);
            found = true;
        }
    }
    return found;
}

#ifdef MW_HAVE_LIBPQ
static uint64_t mono_ms(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (uint64_t)t.tv_sec * 1000u + (uint64_t)t.tv_nsec / 1000000u;
}

/* Claims: the lease is counted from before the statement went, on the safe side. */
static size_t claim(outbox_t *ob, outbox_row_t *out, size_t max)
{
    uint64_t at = mono_ms();
    size_t n = obpg_claim(ob->spg, ob->destination, ob->core->lease_ms, out, max);
    for (size_t i = 0; i < n; i++)
        out[i].held_ms = at;
    return n;
}
#endif

bool outbox_hold(outbox_t *ob, outbox_row_t *row)
{
#ifdef MW_HAVE_LIBPQ
    if (ob->spg) {
        uint64_t now = mono_ms();
        if (now - row->held_ms < ob->core->lease_ms / 2)
            return true;
        int held = obpg_hold(ob->spg, ob->destination, row->id, ob->core->lease_ms);
        if (held != 1) {
            gwlog(held == 0 ? GWLOG_INFO : GWLOG_WARN, "outbox_claim_lost", "s:lane",
                  ob->destination, "s:device", row->device, "i:outbox_id", (long long)row->id,
                  "s:reason",
                  held == 0 ? "another gateway took the message over while this one waited; it "
                              "is left to that one"
                            : "the database did not answer when this gateway renewed its claim; "
                              "the message is claimed again once it does, and sent once",
                  GWLOG_END);
            return false;
        }
        row->held_ms = now;
    }
#endif
    (void)ob;
    (void)row;
    return true;
}

static bool read_next(outbox_t *ob, outbox_row_t *out)
{
#ifdef MW_HAVE_LIBPQ
    if (ob->spg)
        return claim(ob, out, 1) == 1;
#endif
    sqlite3_stmt *st = ob->next;
    sqlite3_bind_int64(st, 1, (sqlite3_int64)atomic_load(&ob->core->released));
    bool found = sqlite3_step(st) == SQLITE_ROW && take_row(st, out);
    sqlite3_reset(st);
    return found;
}

static size_t read_rows(outbox_t *ob, outbox_row_t *out, size_t max)
{
#ifdef MW_HAVE_LIBPQ
    if (ob->spg)
        return claim(ob, out, max);
#endif
    sqlite3_stmt *st = ob->nextn;
    sqlite3_bind_int64(st, 1, (sqlite3_int64)atomic_load(&ob->core->released));
    sqlite3_bind_int64(st, 2, (sqlite3_int64)max);
    size_t n = 0;
    while (n < max && sqlite3_step(st) == SQLITE_ROW) {
        memset(&out[n], 0, sizeof out[n]);
        if (!take_row(st, &out[n]))
            break;
        n++;
    }
    sqlite3_reset(st);
    return n;
}

bool outbox_next(outbox_t *ob, int wait_ms, outbox_row_t *out)
{
    memset(out, 0, sizeof *out);
    if (read_next(ob, out))
        return true;
    wait_for_rows(ob, wait_ms);
    return read_next(ob, out);
}

size_t outbox_next_batch(outbox_t *ob, int wait_ms, outbox_row_t *out, size_t max)
{
    if (max == 0)
        return 0;
    size_t n = read_rows(ob, out, max);
    if (n > 0)
        return n;
    wait_for_rows(ob, wait_ms);
    return read_rows(ob, out, max);
}

void outbox_row_free(outbox_row_t *row)
{
    free(row->payload);
    row->payload = NULL;
}

static mw_err run_id(sqlite3_stmt *st, int idx, int64_t id)
{
    sqlite3_bind_int64(st, idx, id);
    bool ok = sqlite3_step(st) == SQLITE_DONE;
    sqlite3_reset(st);
    return ok ? MW_OK : MW_EIO;
}

mw_err outbox_delivered(outbox_t *ob, int64_t id)
{
#ifdef MW_HAVE_LIBPQ
    if (ob->spg) {
        bool gone = false;
        if (!obpg_delete(ob->spg, id, &gone))
            return MW_EIO;
        if (gone)
            atomic_fetch_sub(&ob->depth, 1);
        return MW_OK;
    }
#endif
    mw_err e = run_id(ob->del, 1, id);
    if (e == MW_OK && sqlite3_changes(ob->sdb) > 0)
        atomic_fetch_sub(&ob->depth, 1);
    return e;
}

mw_err outbox_retry(outbox_t *ob, int64_t id, unsigned attempts, uint64_t next_try_ms)
{
#ifdef MW_HAVE_LIBPQ
    if (ob->spg)
        return obpg_retry(ob->spg, id, attempts, next_try_ms, ob->core->lease_ms) ? MW_OK : MW_EIO;
#endif
    sqlite3_bind_int(ob->retry, 1, (int)attempts);
    sqlite3_bind_int64(ob->retry, 2, (sqlite3_int64)next_try_ms);
    return run_id(ob->retry, 3, id);
}

mw_err outbox_park(outbox_t *ob, int64_t id)
{
#ifdef MW_HAVE_LIBPQ
    mw_err e = ob->spg ? (obpg_park(ob->spg, id) ? MW_OK : MW_EIO) : run_id(ob->park, 1, id);
#else
    mw_err e = run_id(ob->park, 1, id);
#endif
    if (e == MW_OK)
        atomic_fetch_add(&ob->parked, 1);
    return e;
}

void outbox_stats(outbox_t *ob, outbox_stats_t *out)
{
    memset(out, 0, sizeof *out);
    out->depth = atomic_load(&ob->depth);
    out->parked = atomic_load(&ob->parked);
    out->max_rows = ob->max_rows;
    out->full = atomic_load(&ob->full);
    out->refused = ob->refused;
#ifdef MW_HAVE_LIBPQ
    obpg_t *pg = ob->core->pg;
    if (pg) {
        /* Every gateway's rows of this destination, as the database holds them now. */
        out->depth = obpg_count(pg, ob->destination, false);
        out->parked = obpg_count(pg, ob->destination, true);
        out->oldest_ms = obpg_oldest(pg, ob->destination);
        atomic_store(&ob->depth, out->depth);
        atomic_store(&ob->parked, out->parked);
        return;
    }
#endif
    if (sqlite3_step(ob->oldest) == SQLITE_ROW)
        out->oldest_ms = (uint64_t)sqlite3_column_int64(ob->oldest, 0);
    sqlite3_reset(ob->oldest);
}

const char *outbox_destination(const outbox_t *ob)
{
    return ob->destination;
}
