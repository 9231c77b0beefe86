/* SPDX-License-Identifier: Apache-2.0 */
/* test_queue_faults.c -- power cut at every write, bit flips and truncation, nonce uniqueness. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "qtest.h"
#include "queue/format.h"
#include "queue/queue.h"
#include "support/ram_storage.h"

/* ---- a scripted workload and its model --------------------------------------------------- */

#define SCRIPT_OPS 50
#define MAX_SEQ    128

enum op_kind { OP_APPEND, OP_ACK, OP_COMPACT, OP_CLEAR_GAPS };

typedef struct sop {
    enum op_kind kind;
    uint64_t seq; /* OP_APPEND */
    mw_priority prio;
    uint64_t victim;    /* OP_APPEND: the message its eviction removed, 0 if none */
    mwi_seq_range r[4]; /* OP_ACK */
    size_t nr;
} sop;

/* The state after an operation, from a run without faults. */
typedef struct state {
    bool present[MAX_SEQ];
    uint64_t gap_evicted; /* evictions in the gap table */
    bool synced;          /* nothing unsynced after the operation (group commit) */
    bool wrote;           /* the operation wrote to the storage */
} state;

typedef struct script {
    sop op[SCRIPT_OPS];
    state after[SCRIPT_OPS + 1]; /* after[0]: empty queue; after[i + 1]: after op i */
    mw_priority prio_of[MAX_SEQ];
    uint64_t writes; /* storage operations of a whole run */
    uint32_t capacity, group_n;
} script;

typedef struct runner {
    uint32_t size, eu, wu;
    script sc;
} runner;

static mwi_queue_config cfg_for(const mw_storage_t *st, const script *sc, qt_events *ev)
{
    mwi_queue_config c = qt_config(st, sc->capacity, ev);
    c.nonce_block = 4; /* reserve often: the slot writes are cut too */
    c.group_commit_n = sc->group_n;
    c.group_commit_ms = 1000000;
    return c;
}

static uint64_t gap_evicted(mwi_queue *q)
{
    mwi_queue_gap g[MWI_QUEUE_GAP_SLOTS];
    size_t n = mwi_queue_gaps(q, g, MWI_QUEUE_GAP_SLOTS);
    uint64_t t = 0;
    for (size_t i = 0; i < n; i++) {
        if (g[i].reason == MWI_QUEUE_GAP_EVICTED) {
            t += g[i].count;
        }
    }
    return t;
}

static void snapshot(mwi_queue *q, state *s)
{
    mw_message_t m[64];
    size_t n = qt_drain(q, m, 64);
    mwi_queue_stats st;
    memset(s, 0, sizeof *s);
    for (size_t i = 0; i < n; i++) {
        s->present[m[i].seq] = true;
    }
    s->gap_evicted = gap_evicted(q);
    mwi_queue_stats_get(q, 0, &st);
    s->synced = st.unsynced == 0;
}

/* Executes op @p o; returns the queue's result. */
static mw_err run_op(mwi_queue *q, const sop *o)
{
    switch (o->kind) {
    case OP_APPEND: {
        mw_message_t m = qt_msg(o->seq, o->prio, (uint32_t)o->seq * 3u);
        return mwi_queue_append(q, &m, o->seq);
    }
    case OP_ACK:
        return mwi_queue_ack(q, o->r, o->nr, 0, NULL);
    case OP_COMPACT:
        return mwi_queue_compact(q);
    case OP_CLEAR_GAPS: {
        mwi_queue_gap g[MWI_QUEUE_GAP_SLOTS];
        size_t n = mwi_queue_gaps(q, g, MWI_QUEUE_GAP_SLOTS);
        return mwi_queue_gaps_clear(q, g, n);
    }
    }
    return MW_EINVAL;
}

/* A run without faults decides the concrete operations (which numbers to acknowledge, which
 * message an eviction takes) and records the state after each. */
static void make_script(runner *rn, uint32_t capacity, uint32_t group_n, uint64_t seed)
{
    script *sc = &rn->sc;
    mwt_ram *ram = mwt_ram_create(rn->size, rn->eu, rn->wu);
    mw_storage_t st = mwt_ram_storage(ram);
    qt_events ev;
    mwi_queue *q = NULL;
    mwi_queue_config c;
    uint64_t rng = seed, next = 1;
    unsigned appends = 0, acks = 0, compactions = 0, evictions = 0;

    memset(sc, 0, sizeof *sc);
    sc->capacity = capacity;
    sc->group_n = group_n;
    c = cfg_for(&st, sc, &ev);
    memset(&ev, 0, sizeof ev);
    cr_assert_eq(mwi_queue_open(&c, &q, NULL), MW_OK);
    snapshot(q, &sc->after[0]);
    for (int i = 0; i < SCRIPT_OPS; i++) {
        sop *o = &sc->op[i];
        uint64_t r = qt_rand(&rng) % 100;
        size_t before = ev.evicted;
        memset(o, 0, sizeof *o);
        if (r < 55 || i < 10) { /* start by filling the queue: evictions from early on */
            uint64_t pr = qt_rand(&rng) % 100;
            o->kind = OP_APPEND;
            o->seq = next++;
            o->prio = pr < 20   ? MW_PRIORITY_ALARM
                      : pr < 75 ? MW_PRIORITY_OBSERVATION
                                : MW_PRIORITY_STATUS;
            while (!mwi_queue_accepts(q, o->prio)) {
                o->prio = (mw_priority)(o->prio + 1);
            }
            sc->prio_of[o->seq] = o->prio;
            appends++;
        } else if (r < 85) {
            mw_message_t b[4];
            size_t n = 0;
            uint64_t seqs[4];
            o->kind = OP_ACK;
            cr_assert_eq(mwi_queue_peek(q, b, 4, &n), MW_OK);
            if (n == 0) {
                o->r[0] = (mwi_seq_range){1, 1};
                o->nr = 1;
            } else {
                size_t k = 1 + qt_rand(&rng) % n;
                for (size_t j = 0; j < k; j++) {
                    seqs[j] = b[j].seq;
                }
                o->nr = mwi_ranges_from_seqs(seqs, k, o->r, 4);
            }
            acks++;
        } else if (r < 95) {
            o->kind = OP_COMPACT;
            compactions++;
        } else {
            o->kind = OP_CLEAR_GAPS;
        }
        uint64_t ops_before = mwt_ram_ops(ram);
        cr_assert_eq(run_op(q, o), MW_OK, "script op %d", i);
        if (ev.evicted > before) {
            o->victim = ev.ev[ev.n - 1].seq;
            evictions++;
        }
        snapshot(q, &sc->after[i + 1]);
        sc->after[i + 1].wrote = mwt_ram_ops(ram) != ops_before;
    }
    mwi_queue_close(&q);
    sc->writes = mwt_ram_ops(ram);
    mwt_ram_destroy(ram);
    cr_assert_gt(evictions, 0, "the script must fill the queue");
    cr_assert_gt(compactions, 0);
    (void)appends;
    (void)acks;
}

/* Runs the script on @p ram until power fails; returns how many operations completed (-1: the
 * initial open did not complete). */
static int run_until_cut(runner *rn, mwt_ram *ram)
{
    mw_storage_t st = mwt_ram_storage(ram);
    qt_events ev;
    mwi_queue *q = NULL;
    mwi_queue_config c = cfg_for(&st, &rn->sc, &ev);
    int done = 0;

    memset(&ev, 0, sizeof ev);
    if (mwi_queue_open(&c, &q, NULL) != MW_OK) {
        return -1;
    }
    for (; done < SCRIPT_OPS; done++) {
        if (run_op(q, &rn->sc.op[done]) != MW_OK) {
            break;
        }
    }
    /* Power is gone: close must not reach the medium (it cannot: every call fails). */
    mwi_queue_close(&q);
    return done;
}

/* The most returned appends one power cut took in group-commit mode (reported). */
static int lost_max;

/* Whether operation @p o (may be NULL) removes message @p s. */
static bool removes(const sop *o, uint64_t s)
{
    if (o == NULL) {
        return false;
    }
    if (o->kind == OP_APPEND) {
        return o->victim == s;
    }
    for (size_t j = 0; o->kind == OP_ACK && j < o->nr; j++) {
        if (s >= o->r[j].first && s <= o->r[j].last) {
            return true;
        }
    }
    return false;
}

/* Opens the image after a cut and checks it against the model. */
static void check_image(runner *rn, mwt_ram *vr, int done, bool group, const char *where)
{
    script *sc = &rn->sc;
    mw_storage_t st = mwt_ram_storage(vr);
    qt_events ev;
    mwi_queue *q = NULL;
    mwi_queue_config c = cfg_for(&st, sc, &ev);
    mw_error_detail_t why = {0};
    mw_message_t m[64];
    bool seen[MAX_SEQ];
    size_t n;
    const state *before = &sc->after[done < 0 ? 0 : done];
    const sop *inflight = done >= 0 && done < SCRIPT_OPS ? &sc->op[done] : NULL;
    uint64_t gaps;
    state again;

    memset(&ev, 0, sizeof ev);
    memset(seen, 0, sizeof seen);
    cr_assert_eq(mwi_queue_open(&c, &q, &why), MW_OK, "%s: recovery failed: %s", where, why.reason);
    cr_assert_eq(ev.corrupt, 0, "%s: a power cut was reported as corruption", where);
    n = qt_drain(q, m, 64);
    for (size_t i = 0; i < n; i++) {
        uint64_t s = m[i].seq;
        mw_message_t want;
        cr_assert_lt(s, MAX_SEQ);
        cr_assert(!seen[s], "%s: seq %llu delivered twice", where, (unsigned long long)s);
        seen[s] = true;
        want = qt_msg(s, sc->prio_of[s], (uint32_t)s * 3u);
        cr_assert(qt_msg_eq(&m[i], &want), "%s: seq %llu changed", where, (unsigned long long)s);
    }
    gaps = gap_evicted(q);
    if (!group) {
        /* Default mode: everything before the in-flight operation is durable; that operation
         * happened whole or not at all. */
        const state *after = inflight != NULL ? &sc->after[done + 1] : before;
        bool is_before = true, is_after = true;
        for (uint64_t s = 1; s < MAX_SEQ; s++) {
            is_before = is_before && seen[s] == before->present[s];
            is_after = is_after && seen[s] == after->present[s];
        }
        if (inflight != NULL && inflight->kind == OP_APPEND && inflight->victim != 0 &&
            !is_before && !is_after) {
            /* The eviction landed, the append did not: the write was torn between the two. */
            bool only_victim = true;
            for (uint64_t s = 1; s < MAX_SEQ; s++) {
                bool want = before->present[s] && s != inflight->victim;
                only_victim = only_victim && seen[s] == want;
            }
            cr_assert(only_victim, "%s: queue matches neither before nor after op %d", where, done);
            cr_assert_eq(gaps, before->gap_evicted + 1, "%s: eviction without its gap", where);
        } else {
            bool gaps_ok;
            cr_assert(is_before || is_after,
                      "%s: queue matches neither the state before nor after op %d", where, done);
            if (is_before && is_after) {
                gaps_ok = gaps == before->gap_evicted || gaps == after->gap_evicted;
            } else {
                gaps_ok = gaps == (is_after ? after->gap_evicted : before->gap_evicted);
            }
            cr_assert(gaps_ok, "%s: gap table %llu, expected %llu (before) or %llu (after)", where,
                      (unsigned long long)gaps, (unsigned long long)before->gap_evicted,
                      (unsigned long long)after->gap_evicted);
        }
    } else {
        /* Group commit: what was durable at the last sync point stays, unless acknowledged or
         * evicted since; nothing acknowledged before it comes back; nothing unknown appears. */
        int cp = done < 0 ? 0 : done;
        while (cp > 0 && !sc->after[cp].synced) {
            cp--;
        }
        {
            /* The loss window: of the appends that returned, fewer than N may be missing. */
            int lost = 0;
            for (uint64_t s = 1; s < MAX_SEQ; s++) {
                if (before->present[s] && !seen[s] && !removes(inflight, s)) {
                    lost++;
                }
            }
            cr_assert_lt(lost, (int)sc->group_n, "%s: %d returned appends lost", where, lost);
            lost_max = lost > lost_max ? lost : lost_max;
        }
        for (uint64_t s = 1; s < MAX_SEQ; s++) {
            bool removed_since = false, appended_upto = false;
            for (int k = cp; k <= done && k < SCRIPT_OPS; k++) {
                const sop *o = &sc->op[k];
                if (o->kind == OP_APPEND && o->victim == s) {
                    removed_since = true;
                }
                for (size_t j = 0; o->kind == OP_ACK && j < o->nr; j++) {
                    if (s >= o->r[j].first && s <= o->r[j].last) {
                        removed_since = true;
                    }
                }
            }
            for (int k = 0; k <= done && k < SCRIPT_OPS; k++) {
                if (sc->op[k].kind == OP_APPEND && sc->op[k].seq == s) {
                    appended_upto = true;
                }
            }
            if (sc->after[cp].present[s] && !removed_since) {
                cr_assert(seen[s], "%s: seq %llu durable at the last sync is lost", where,
                          (unsigned long long)s);
            }
            if (seen[s]) {
                cr_assert(appended_upto, "%s: seq %llu never appended", where,
                          (unsigned long long)s);
            }
            if (!sc->after[cp].present[s]) {
                /* Gone at the sync point and appended before it: acknowledged or evicted. */
                bool appended_before = false;
                for (int k = 0; k < cp; k++) {
                    appended_before =
                        appended_before || (sc->op[k].kind == OP_APPEND && sc->op[k].seq == s);
                }
                cr_assert(!(appended_before && seen[s]),
                          "%s: seq %llu removed before the last sync came back", where,
                          (unsigned long long)s);
            }
        }
    }
    /* Recovery needs no repair and is stable: a second open finds the same, reports nothing. */
    mwi_queue_close(&q);
    memset(&ev, 0, sizeof ev);
    cr_assert_eq(mwi_queue_open(&c, &q, &why), MW_OK, "%s: second open: %s", where, why.reason);
    cr_assert_eq(ev.n, 0, "%s: the second open reported again", where);
    snapshot(q, &again);
    for (uint64_t s = 1; s < MAX_SEQ; s++) {
        cr_assert_eq(again.present[s], seen[s], "%s: second open differs at %llu", where,
                     (unsigned long long)s);
    }
    /* And the queue works. */
    {
        mw_message_t x = qt_msg(MAX_SEQ + 5, MW_PRIORITY_ALARM, 1);
        cr_assert_eq(mwi_queue_append(q, &x, 0), MW_OK, "%s: append after recovery", where);
        cr_assert_eq(mwi_queue_ack(q, &(mwi_seq_range){MAX_SEQ + 5, MAX_SEQ + 5}, 1, 0, NULL),
                     MW_OK);
    }
    mwi_queue_close(&q);
    cr_assert_eq(mwt_ram_violations(vr), 0, "%s: flash rules broken", where);
}

/* Outcomes tried for one pending operation. */
static size_t outcomes(mwt_ram *ram, size_t i, mwt_fate *out)
{
    uint32_t len = mwt_ram_pending_len(ram, i);
    size_t n = 0;
    out[n++] = (mwt_fate){MWT_FATE_APPLY, 0};
    out[n++] = (mwt_fate){MWT_FATE_DROP, 0};
    if (mwt_ram_pending_is_erase(ram, i)) {
        if (len > 1) {
            out[n++] = (mwt_fate){MWT_FATE_TEAR, len / 2};
        }
        return n;
    }
    /* Inside the header, at its end, in the body, inside the tag, before the trailer. */
    const uint32_t cand[] = {1, 8, 27, 28, 29, len / 2, len > 17 ? len - 17 : 0, len - 1};
    for (size_t k = 0; k < sizeof cand / sizeof cand[0]; k++) {
        bool dup = false;
        if (cand[k] == 0 || cand[k] >= len) {
            continue;
        }
        for (size_t j = 2; j < n; j++) {
            dup = dup || out[j].tear_at == cand[k];
        }
        if (!dup) {
            out[n++] = (mwt_fate){MWT_FATE_TEAR, cand[k]};
        }
    }
    return n;
}

#define MAX_PENDING  64
#define MAX_OUTCOMES 12

/* Every fate combination of the pending operations if there are few, else a structured family
 * (prefix applied, one operation varied, rest dropped; one varied, rest applied) and random
 * combinations. */
static uint64_t try_fates(runner *rn, mwt_ram *ram, mwt_ram *vr, uint8_t *img, int done, bool group,
                          uint64_t *rng, unsigned cut)
{
    size_t np = mwt_ram_pending(ram);
    mwt_fate opts[MAX_PENDING][MAX_OUTCOMES];
    size_t nopt[MAX_PENDING];
    mwt_fate f[MAX_PENDING];
    uint64_t combos = 1, tried = 0;
    char where[96];

    cr_assert_leq(np, MAX_PENDING);
    for (size_t i = 0; i < np; i++) {
        nopt[i] = outcomes(ram, i, opts[i]);
        combos = combos > 100000 ? combos : combos * nopt[i];
    }
#define TRY()                                                                                      \
    do {                                                                                           \
        mwt_ram_cut_image(ram, f, img);                                                            \
        mwt_ram_load(vr, img);                                                                     \
        snprintf(where, sizeof where, "cut %u, %zu pending, combination %llu", cut, np,            \
                 (unsigned long long)tried);                                                       \
        check_image(rn, vr, done, group, where);                                                   \
        tried++;                                                                                   \
    } while (0)
    if (combos <= 1500) {
        size_t idx[MAX_PENDING] = {0};
        for (;;) {
            for (size_t i = 0; i < np; i++) {
                f[i] = opts[i][idx[i]];
            }
            TRY();
            size_t k = 0;
            while (k < np && ++idx[k] == nopt[k]) {
                idx[k++] = 0;
            }
            if (k == np) {
                break;
            }
        }
        return tried;
    }
    for (size_t v = 0; v < np; v++) {
        for (size_t o = 0; o < nopt[v]; o++) {
            for (size_t i = 0; i < np; i++) {
                f[i] = i < v ? opts[i][0] : i == v ? opts[v][o] : opts[i][1];
            }
            TRY();
            for (size_t i = 0; i < np; i++) {
                f[i] = i == v ? opts[v][o] : opts[i][0];
            }
            TRY();
        }
    }
    for (int r = 0; r < 64; r++) {
        for (size_t i = 0; i < np; i++) {
            f[i] = opts[i][qt_rand(rng) % nopt[i]];
        }
        TRY();
    }
#undef TRY
    return tried;
}

/* Every write of one script as the cut point, every fate combination of what was pending. */
static uint64_t one_script(runner *rn, uint32_t group_n, uint64_t seed, uint64_t *max_pending)
{
    uint64_t images = 0, rng = seed;
    uint8_t *img = malloc(rn->size);

    make_script(rn, 6, group_n, seed);
    for (uint64_t cut = 0; cut < rn->sc.writes; cut++) {
        mwt_ram *ram = mwt_ram_create(rn->size, rn->eu, rn->wu);
        mwt_ram *vr = mwt_ram_create(rn->size, rn->eu, rn->wu);
        int done;
        mwt_ram_strict(ram, true);
        mwt_ram_strict(vr, true);
        mwt_ram_cut_after(ram, cut);
        done = run_until_cut(rn, ram);
        cr_assert(mwt_ram_is_dead(ram), "cut %llu was not reached", (unsigned long long)cut);
        cr_assert_eq(mwt_ram_violations(ram), 0);
        if (mwt_ram_pending(ram) > *max_pending) {
            *max_pending = mwt_ram_pending(ram);
        }
        images += try_fates(rn, ram, vr, img, done, group_n > 1, &rng, (unsigned)cut);
        mwt_ram_destroy(ram);
        mwt_ram_destroy(vr);
    }
    free(img);
    return images;
}

/* The script the issue asks for (its own count printed), then more scripts from other seeds
 * to widen the coverage of states. */
static void every_cut(uint32_t eu, uint32_t wu, uint32_t group_n, uint64_t seed, const char *name)
{
    runner *rn = calloc(1, sizeof *rn);
    uint64_t images, writes, more = 0, more_writes = 0, max_pending = 0;
    const int extra = 15;

    rn->eu = eu;
    rn->wu = wu;
    rn->size = qt_region(6, eu, wu, 1);
    lost_max = 0;
    images = one_script(rn, group_n, seed, &max_pending);
    writes = rn->sc.writes;
    for (int k = 1; k <= extra; k++) {
        more += one_script(rn, group_n, seed * 1000u + (uint64_t)k, &max_pending);
        more_writes += rn->sc.writes;
    }
    printf("%s: the %d-operation script makes %llu writes; a power cut at each, with every "
           "pending write applied, dropped or torn, gave %llu images, all recovered and "
           "checked (%d more scripts: %llu writes, %llu images; up to %llu writes pending)",
           name, SCRIPT_OPS, (unsigned long long)writes, (unsigned long long)images, extra,
           (unsigned long long)more_writes, (unsigned long long)more,
           (unsigned long long)max_pending);
    if (group_n > 1) {
        printf("; at most %d returned appends lost to one cut (N = %u)", lost_max, group_n);
    }
    printf("\n");
    free(rn);
}

/* @req MDR-17.2 IEC62443-CR7.4 MDS2-DTBK */
Test(faults, power_cut_at_every_write_of_a_50_operation_script_loses_nothing_durable,
     .timeout = 600)
{
    every_cut(1, 1, 0, 101, "power cuts, file geometry");
}

Test(faults, power_cut_at_every_write_on_flash_geometry_loses_nothing_durable, .timeout = 600)
{
    every_cut(256, 8, 0, 202, "power cuts, flash geometry (erase 256, write 8)");
}

Test(faults, power_cut_in_group_commit_mode_loses_at_most_the_unsynced_window, .timeout = 600)
{
    every_cut(1, 1, 4, 303, "power cuts, group commit N=4");
}

/* ---- a power cut during recovery --------------------------------------------------------- */

/* @req IEC62443-CR7.4 */
Test(faults, power_cut_during_recovery_itself_is_recovered_too, .timeout = 600)
{
    runner *rn = calloc(1, sizeof *rn);
    uint8_t *img, *first;
    uint64_t rng = 77, nested = 0, images = 0;

    rn->eu = 1;
    rn->wu = 1;
    rn->size = qt_region(6, 1, 1, 1);
    make_script(rn, 6, 0, 404);
    img = malloc(rn->size);
    first = malloc(rn->size);
    for (uint64_t cut = 0; cut < rn->sc.writes; cut++) {
        mwt_ram *ram = mwt_ram_create(rn->size, 1, 1);
        mwt_ram *vr = mwt_ram_create(rn->size, 1, 1);
        mwt_fate f[MAX_PENDING];
        int done;
        uint64_t rops;

        mwt_ram_cut_after(ram, cut);
        done = run_until_cut(rn, ram);
        /* Tear the last pending write in its middle: recovery has something to cut off. */
        for (size_t i = 0; i < mwt_ram_pending(ram); i++) {
            f[i] = (mwt_fate){MWT_FATE_APPLY, 0};
        }
        if (mwt_ram_pending(ram) > 0) {
            size_t last = mwt_ram_pending(ram) - 1;
            f[last] = (mwt_fate){MWT_FATE_TEAR, mwt_ram_pending_len(ram, last) / 2};
        }
        mwt_ram_cut_image(ram, f, first);
        /* How many writes does an uninterrupted recovery make? */
        mwt_ram_load(vr, first);
        {
            mw_storage_t st = mwt_ram_storage(vr);
            mwi_queue_config c = cfg_for(&st, &rn->sc, NULL);
            mwi_queue *q = NULL;
            uint64_t before = mwt_ram_ops(vr);
            cr_assert_eq(mwi_queue_open(&c, &q, NULL), MW_OK);
            rops = mwt_ram_ops(vr) - before;
            mwi_queue_close(&q);
        }
        for (uint64_t rc = 0; rc < rops; rc++) {
            mwt_fate g[MAX_PENDING];
            mw_storage_t st;
            mwi_queue_config c;
            mwi_queue *q = NULL;
            mwt_ram_load(vr, first);
            st = mwt_ram_storage(vr);
            c = cfg_for(&st, &rn->sc, NULL);
            mwt_ram_cut_after(vr, mwt_ram_ops(vr) + rc);
            /* The open fails, or succeeds if the cut hit its last write, which needs no sync. */
            if (mwi_queue_open(&c, &q, NULL) == MW_OK) {
                mwi_queue_close(&q);
            }
            for (size_t i = 0; i < mwt_ram_pending(vr); i++) {
                uint32_t len = mwt_ram_pending_len(vr, i);
                g[i].kind = (mwt_fate_kind)(qt_rand(&rng) % 3);
                g[i].tear_at = len > 1 ? (uint32_t)(1 + qt_rand(&rng) % (len - 1)) : 0;
            }
            mwt_ram_cut_image(vr, g, img);
            mwt_ram_load(vr, img);
            check_image(rn, vr, done, false, "cut inside recovery");
            nested++;
        }
        images++;
        mwt_ram_destroy(ram);
        mwt_ram_destroy(vr);
    }
    printf("recovery interrupted: %llu cut images, %llu power cuts inside their recovery, all "
           "recovered\n",
           (unsigned long long)images, (unsigned long long)nested);
    free(img);
    free(first);
    free(rn);
}

/* ---- bit flips and truncation ------------------------------------------------------------ */

typedef struct extent {
    uint64_t seq;
    uint32_t off, len;
} extent;

/* @req MDCG-2019-16-VV IEC62443-CR3.4 MDS2-IGAU */
Test(faults, ten_thousand_bit_flips_and_truncations_are_all_detected_and_never_delivered,
     .timeout = 600)
{
    const uint32_t cap = 48;
    uint32_t size = qt_region(cap, 1, 1, 2);
    mwt_ram *ram = mwt_ram_create(size, 1, 1);
    mw_storage_t st = mwt_ram_storage(ram);
    mwi_queue_config c = qt_config(&st, cap, NULL);
    mwi_queue *q = NULL;
    mwi_queue_stats s;
    uint8_t *img = malloc(size);
    extent live[64];
    size_t nlive = 0;
    uint64_t rng = 99, next = 1;
    uint32_t used_lo, used_hi, base;
    unsigned refused = 0, touched_live = 0, detected = 0, delivered_bad = 0, flips = 0,
             truncations = 0, bursts = 0, lost_untouched = 0, resurrected = 0;
    mw_message_t *orig = calloc(256, sizeof *orig);
    bool *acked = calloc(256, sizeof *acked);

    /* A queue with history: appends of all priorities, acknowledgements, a compaction,
     * evictions, more appends after it. */
    cr_assert_eq(mwi_queue_open(&c, &q, NULL), MW_OK);
    for (int i = 0; i < 150; i++) {
        mw_priority p = (mw_priority)(1 + qt_rand(&rng) % 3);
        orig[next] = qt_msg(next, p, (uint32_t)next);
        if (mwi_queue_accepts(q, p)) {
            cr_assert_eq(mwi_queue_append(q, &orig[next], next), MW_OK);
        }
        next++;
        if (i % 5 == 4) {
            mw_message_t b[2];
            size_t n;
            cr_assert_eq(mwi_queue_peek(q, b, 2, &n), MW_OK);
            for (size_t k = 0; k < n; k++) {
                cr_assert_eq(mwi_queue_ack(q, &(mwi_seq_range){b[k].seq, b[k].seq}, 1, 0, NULL),
                             MW_OK);
                acked[b[k].seq] = true;
            }
        }
        if (i == 100) {
            cr_assert_eq(mwi_queue_compact(q), MW_OK);
        }
    }
    mwi_queue_stats_get(q, 0, &s);
    for (uint64_t seq = 1; seq < next; seq++) {
        uint32_t off, len;
        if (mwi_queue_locate(q, seq, &off, &len) == MW_OK) {
            live[nlive++] = (extent){seq, off, len};
        }
    }
    cr_assert_gt(nlive, 30);
    base = s.active_offset;
    used_lo = base + s.header_bytes;
    used_hi = used_lo + s.bytes_used;
    mwi_queue_close(&q);
    mwt_ram_save(ram, img);

    for (int t = 0; t < 10000; t++) {
        uint64_t kind = qt_rand(&rng) % 100;
        uint32_t lo, hi; /* the mutated range [lo, hi) */
        qt_events ev;
        mw_message_t out[64];
        bool got[256];
        size_t n = 0;
        mw_err e;
        mw_error_detail_t why = {0};
        bool touches_live = false, touches_used;

        mwt_ram_load(ram, img);
        if (kind < 70) {
            /* One bit: mostly in the log, sometimes anywhere in the region. */
            uint32_t off = kind < 55 ? used_lo + (uint32_t)(qt_rand(&rng) % (used_hi - used_lo))
                                     : (uint32_t)(qt_rand(&rng) % size);
            mwt_ram_flip_bit(ram, off, (unsigned)(qt_rand(&rng) % 8));
            lo = off;
            hi = off + 1;
            flips++;
        } else if (kind < 85) {
            /* Truncation: everything from a point on reads erased, as a cut file does. */
            uint32_t at = (uint32_t)(qt_rand(&rng) % size);
            uint8_t *ff = malloc(size - at);
            memset(ff, 0xFF, size - at);
            mwt_ram_poke(ram, at, ff, size - at);
            free(ff);
            lo = at;
            hi = size;
            truncations++;
        } else {
            /* A burst of 2..32 random bytes in the log. */
            uint32_t len = 2 + (uint32_t)(qt_rand(&rng) % 31);
            uint32_t off = used_lo + (uint32_t)(qt_rand(&rng) % (used_hi - used_lo - len));
            uint8_t junk[32];
            for (uint32_t k = 0; k < len; k++) {
                junk[k] = (uint8_t)qt_rand(&rng);
            }
            mwt_ram_poke(ram, off, junk, len);
            lo = off;
            hi = off + len;
            bursts++;
        }
        if (memcmp(mwt_ram_image(ram), img, size) == 0) {
            t--; /* the burst wrote the same bytes: not a mutation */
            continue;
        }
        memset(&ev, 0, sizeof ev);
        memset(got, 0, sizeof got);
        c = qt_config(&st, cap, &ev);
        e = mwi_queue_open(&c, &q, &why);
        touches_used = lo < used_hi && hi > used_lo;
        for (size_t k = 0; k < nlive; k++) {
            bool hit = lo < live[k].off + live[k].len && hi > live[k].off;
            touches_live = touches_live || hit;
        }
        if (e != MW_OK) {
            /* Refusing is allowed only when both copies of the active header were hit. */
            cr_assert(lo < used_lo && hi > base,
                      "trial %d: open failed (%s: %s) for damage "
                      "outside the header",
                      t, mw_strerror(e), why.reason);
            refused++;
            if (touches_live) {
                touched_live++;
                detected++;
            }
            continue;
        }
        n = qt_drain(q, out, 64);
        for (size_t k = 0; k < n; k++) {
            uint64_t seq = out[k].seq;
            cr_assert_lt(seq, next);
            if (!qt_msg_eq(&out[k], &orig[seq])) {
                delivered_bad++;
            }
            got[seq] = true;
            if (acked[seq]) {
                resurrected++; /* an ack record was hit: genuine, but delivered again */
            }
        }
        for (size_t k = 0; k < nlive; k++) {
            bool hit = (lo < live[k].off + live[k].len && hi > live[k].off);
            if (hit) {
                cr_assert(!got[live[k].seq], "trial %d: damaged seq %llu was delivered", t,
                          (unsigned long long)live[k].seq);
            } else if (!got[live[k].seq]) {
                lost_untouched++;
                cr_assert(false, "trial %d: intact seq %llu lost (damage at [%u, %u))", t,
                          (unsigned long long)live[k].seq, lo, hi);
            }
        }
        if (touches_live) {
            touched_live++;
            if (ev.corrupt + ev.torn > 0) {
                detected++;
            }
        }
        if (touches_used) {
            cr_assert_gt(ev.corrupt + ev.torn, 0,
                         "trial %d: damage at [%u, %u) in the log was "
                         "not reported",
                         t, lo, hi);
        }
        mwi_queue_close(&q);
    }
    cr_assert_eq(delivered_bad, 0, "a damaged message was delivered as valid");
    cr_assert_eq(detected, touched_live, "damage to a queued message went unreported");
    printf("bit flips: 10000 mutations (%u single-bit flips, %u truncations, %u bursts): %u hit a "
           "queued message, %u of them detected (%.1f%%), 0 delivered as valid, %u intact messages "
           "lost, %u opens refused (the active half's header was cut off or damaged), %u "
           "acknowledged messages "
           "delivered again after their ack record was damaged\n",
           flips, truncations, bursts, touched_live, detected,
           touched_live ? 100.0 * detected / touched_live : 100.0, lost_untouched, refused,
           resurrected);
    free(orig);
    free(acked);
    free(img);
    mwt_ram_destroy(ram);
}

/* ---- nonces ------------------------------------------------------------------------------ */

typedef struct nonce_log {
    uint64_t *v;
    size_t n, cap;
} nonce_log;

/* Every record in every write that ever reached the storage, including writes a power cut
 * later dropped or tore: an attacker who images the medium at any moment sees those too. */
static void collect_nonces(void *ctx, uint32_t off, const uint8_t *p, size_t len)
{
    nonce_log *l = ctx;
    size_t pos = 0;
    (void)off;
    while (pos + 28 <= len && p[pos] == 0xC3 &&
           mwi_get32(p + pos + 24) == mwi_crc32c(0, p + pos, 24)) {
        uint16_t body = mwi_get16(p + pos + 2);
        size_t total = (28u + body + 16u + 1u + 7u) / 8u * 8u;
        if (l->n == l->cap) {
            l->cap = l->cap ? l->cap * 2 : 4096;
            l->v = realloc(l->v, l->cap * sizeof *l->v);
        }
        l->v[l->n++] = mwi_get64(p + pos + 16);
        pos += total;
    }
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

/* @req IEC62443-CR3.4 IEC62443-CR4.3 */
Test(faults, nonces_never_repeat_across_reopens_and_power_cuts, .timeout = 600)
{
    const uint32_t cap = 12;
    uint32_t size = qt_region(cap, 1, 1, 1);
    mwt_ram *ram = mwt_ram_create(size, 1, 1);
    mw_storage_t st = mwt_ram_storage(ram);
    nonce_log log = {0};
    uint64_t rng = 5, next = 1;
    unsigned cuts = 0;
    mwt_fate f[MAX_PENDING];

    mwt_ram_on_write(ram, collect_nonces, &log);
    for (int life = 0; life < 400; life++) {
        mwi_queue_config c = qt_config(&st, cap, NULL);
        mwi_queue *q = NULL;
        c.nonce_block = 8;
        c.group_commit_n = (life % 3 == 0) ? 3 : 0;
        if (life % 2 == 0) {
            mwt_ram_cut_after(ram, mwt_ram_ops(ram) + qt_rand(&rng) % 60);
        }
        if (mwi_queue_open(&c, &q, NULL) == MW_OK) {
            for (int i = 0; i < 40; i++) {
                mw_message_t m = qt_msg(next, (mw_priority)(1 + next % 3), 0);
                mw_err e;
                if (qt_rand(&rng) % 3 == 0) {
                    mw_message_t b[3];
                    size_t n;
                    e = mwi_queue_peek(q, b, 3, &n);
                    if (e == MW_OK && n > 0) {
                        uint64_t lo = b[0].seq, hi = b[0].seq;
                        for (size_t k = 1; k < n; k++) {
                            lo = b[k].seq < lo ? b[k].seq : lo;
                            hi = b[k].seq > hi ? b[k].seq : hi;
                        }
                        e = mwi_queue_ack(q, &(mwi_seq_range){lo, hi}, 1, 0, NULL);
                    }
                } else if (qt_rand(&rng) % 10 == 0) {
                    e = mwi_queue_compact(q);
                } else if (mwi_queue_accepts(q, m.priority)) {
                    e = mwi_queue_append(q, &m, 0);
                    next++;
                } else {
                    e = MW_OK;
                }
                if (e != MW_OK) {
                    break;
                }
            }
            mwi_queue_close(&q);
        }
        if (mwt_ram_is_dead(ram)) {
            for (size_t i = 0; i < mwt_ram_pending(ram); i++) {
                uint32_t len = mwt_ram_pending_len(ram, i);
                f[i].kind = (mwt_fate_kind)(qt_rand(&rng) % 3);
                f[i].tear_at = len > 1 ? (uint32_t)(1 + qt_rand(&rng) % (len - 1)) : 0;
            }
            mwt_ram_power_cut(ram, f);
            cuts++;
        }
        mwt_ram_cut_after(ram, UINT64_MAX);
    }
    qsort(log.v, log.n, sizeof *log.v, cmp_u64);
    for (size_t i = 1; i < log.n; i++) {
        cr_assert_neq(log.v[i], log.v[i - 1], "nonce counter %llu used twice",
                      (unsigned long long)log.v[i]);
    }
    cr_assert_gt(log.n, 5000);
    printf("nonces: %zu records sealed over 400 opens and %u power cuts, every nonce distinct\n",
           log.n, cuts);
    free(log.v);
    mwt_ram_destroy(ram);
}
