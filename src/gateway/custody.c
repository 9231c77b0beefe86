/* SPDX-License-Identifier: Apache-2.0 */
/* custody.c -- custody transfer: what a poll accepts is staged (the sink's output, the store's
 * messages and replay states), committed once per poll, and only then acknowledged. The Acks
 * wait here until the commit; a failed commit undoes the poll and acknowledges nothing. */
#include <string.h>

#include "gateway/gateway_internal.h"

/* An injected clock without a microsecond source still times commits, at
 * its own resolution: a test's fake clock then sees exact durations. */
static uint64_t now_us(const mw_gateway_t *gw)
{
    return gw->now_us ? gw->now_us(gw->clock.ctx) : gw->clock.now_ms(gw->clock.ctx) * 1000u;
}

/* Holds a response until what it acknowledges is committed (custody
 * transfer): it leaves at the end of the poll's burst, after the commit. */
void mwi_gw_defer(mw_gateway_t *gw, struct peer *p, const uint8_t *bytes, size_t len)
{
    if (gw->ndeferred == DEFER_MAX)
        mwi_gw_commit(gw);
    struct deferred *d = &gw->deferred[gw->ndeferred++];
    d->addr = p->route.addr;
    d->len = len;
    memcpy(d->bytes, bytes, len);
}

/* The stored pending commands replace the cached ones: another gateway may have queued or
 * settled some since (a command is committed before anyone is told it is queued, so none of
 * this gateway's is only here). Those new here are POSTed after the commit. */
static void merge_commands(mw_gateway_t *gw, struct device *dv, const mw_command_t *stored,
                           uint8_t n)
{
    for (uint8_t i = 0; i < n; i++) {
        bool known = false;
        for (uint8_t j = 0; j < dv->ncmds && !known; j++)
            known = dv->cmds[j].id == stored[i].id;
        if (!known)
            dv->push_due = gw->push_due = true;
    }
    memcpy(dv->cmds, stored, n * sizeof stored[0]);
    dv->ncmds = n;
}

/* A store several gateways share may hold a newer state of the device than the one cached
 * here (it moved to another gateway and back): the state is read again, and its row held, by
 * the transaction that will commit the change, so that no two gateways take the same number
 * in. The command id counter never goes back: an id this gateway handed out stays used. */
static void apply_row(mw_gateway_t *gw, struct device *dv, const mwi_replay *r, uint64_t next,
                      const mw_command_t *cmds, uint8_t ncmds)
{
    dv->locked_in = gw->txn_serial;
    if (r == NULL)
        return; /* no state committed yet: the cached one stands */
    if (r != &dv->rp)
        dv->rp = *r;
    if (next > dv->next_command)
        dv->next_command = next;
    merge_commands(gw, dv, cmds, ncmds);
}

static void warm_row(void *ctx, size_t index, const mwi_replay *r, uint64_t next,
                     const mw_command_t *cmds, uint8_t ncmds)
{
    mw_gateway_t *gw = ctx;
    apply_row(gw, gw->warm[index], r, next, cmds, ncmds);
}

/* At a transaction's start on a shared store: the rows of the devices of the last commit,
 * which a stream of batches will most likely touch again, locked and read in one statement.
 * Their cached state may be replaced: none has changes of its own yet (the last transaction
 * committed or was undone). A device locked this way and not touched costs another gateway
 * at most the wait for this commit. */
static void lock_ahead(mw_gateway_t *gw)
{
    const char *ids[DEFER_MAX];
    _Static_assert(DEFER_MAX <= MWI_STORE_LOCK_MAX, "a commit's devices are locked together");
    for (size_t i = 0; i < gw->nwarm; i++)
        ids[i] = gw->warm[i]->id;
    if (mwi_store_lock_devices(gw->store, ids, gw->nwarm, warm_row, gw) != MW_OK)
        gw->txn_failed = true; /* the commit fails and undoes the poll */
}

static void refresh(mw_gateway_t *gw, struct device *dv)
{
    if (gw->store == NULL || !mwi_store_shared(gw->store))
        return; /* one gateway alone: the cached state is the current one */
    if (gw->nundo == 0 && gw->nwarm > 0 && gw->ahead_in != gw->txn_serial) {
        gw->ahead_in = gw->txn_serial;
        lock_ahead(gw);
    }
    if (dv->locked_in == gw->txn_serial)
        return;
    uint64_t next = 0;
    mw_command_t cmds[MWI_MAX_COMMANDS];
    uint8_t ncmds = 0;
    bool found = false;
    mw_err e = mwi_store_lock_device(gw->store, dv->id, &dv->rp, &next, cmds, &ncmds, &found);
    if (e != MW_OK)
        gw->txn_failed = true; /* the commit fails and undoes the poll */
    else
        apply_row(gw, dv, found ? &dv->rp : NULL, next, cmds, ncmds);
}

void mwi_gw_touch(mw_gateway_t *gw, struct device *dv)
{
    for (size_t i = 0; i < gw->nundo; i++)
        if (gw->undo[i].dv == dv)
            return;
    if (gw->nundo == DEFER_MAX)
        mwi_gw_commit(gw);
    refresh(gw, dv);
    gw->undo[gw->nundo].dv = dv;
    gw->undo[gw->nundo].before = dv->rp;
    gw->nundo++;
}

/* A store write of this poll's transaction: one that fails fails the commit, which undoes the
 * poll, so that nothing is acknowledged that the store does not hold. */
static bool staged(mw_gateway_t *gw, mw_err e)
{
    if (e != MW_OK)
        gw->txn_failed = true;
    return e == MW_OK;
}

bool mwi_gw_stage_message(mw_gateway_t *gw, const mw_message_t *m)
{
    if (gw->store == NULL)
        return true;
    mw_err e = mwi_store_begin(gw->store);
    if (e == MW_OK) /* received at: a date for whoever reads the journal, not a monotonic time */
        e = mwi_store_put_message(gw->store, m, wall_ms(gw));
    return staged(gw, e);
}

bool mwi_gw_stage_retired_space(mw_gateway_t *gw, const struct device *dv)
{
    if (gw->store == NULL)
        return true;
    mw_err e = mwi_store_begin(gw->store);
    if (e == MW_OK)
        e = mwi_store_retire_space(gw->store, dv->id, dv->rp.space, wall_ms(gw));
    return staged(gw, e);
}

bool mwi_gw_stage_certificate(mw_gateway_t *gw, mwi_store_cert *c)
{
    if (gw->store == NULL)
        return true;
    gw->dirty = true; /* committed with the rest of the poll, however little else it took */
    c->issued_ms = wall_ms(gw);
    mw_err e = mwi_store_begin(gw->store);
    if (e == MW_OK)
        e = mwi_store_put_certificate(gw->store, c);
    return staged(gw, e);
}

static void send_deferred(mw_gateway_t *gw)
{
    for (size_t i = 0; i < gw->ndeferred; i++) {
        struct deferred *d = &gw->deferred[i];
        struct peer *p = *mwi_gw_peer_slot(gw, &d->addr);
        if (p != NULL && p->link.conn != NULL)
            write_lossy(p->link.conn, d->bytes, d->len);
    }
    gw->ndeferred = 0;
}

static void record_commit_time(mw_gateway_t *gw, uint64_t us)
{
    static const uint64_t bounds[] = MW_GATEWAY_COMMIT_BOUNDS_US;
    _Static_assert(sizeof bounds / sizeof bounds[0] + 1 == MW_GATEWAY_COMMIT_BUCKETS,
                   "one bucket per bound, and one above the last");
    size_t i = 0;
    while (i < sizeof bounds / sizeof bounds[0] && us > bounds[i])
        i++;
    gw->st.commits++;
    gw->st.commit_us_sum += us;
    gw->st.commit_us_buckets[i]++;
}

/* The sink's output and the store, with the sink's checkpoint in it; MW_OK or the first error. */
static mw_err make_durable(mw_gateway_t *gw, uint64_t *ck)
{
    mw_err e = gw->txn_failed ? MW_EIO : MW_OK;
    if (e == MW_OK && gw->sink_commit)
        e = gw->sink_commit(gw->sink_ctx, ck);
    if (e == MW_OK && gw->store) {
        for (size_t i = 0; i < gw->nundo && e == MW_OK; i++) {
            e = mwi_store_begin(gw->store);
            if (e == MW_OK)
                e = mwi_store_put_device(gw->store, gw->undo[i].dv->id, &gw->undo[i].dv->rp,
                                         gw->undo[i].dv->next_command, gw->undo[i].dv->cmds,
                                         gw->undo[i].dv->ncmds);
        }
        if (e == MW_OK)
            e = mwi_store_commit(gw->store, *ck);
    }
    return e;
}

/* Commits a device's batches may be apart and still keep its row in the warm list. */
#define WARM_TXNS 4u

/* After a commit: this one's devices, then those of the last WARM_TXNS commits still listed,
 * each once, up to DEFER_MAX. */
static void remember_warm(mw_gateway_t *gw)
{
    struct device *keep[DEFER_MAX] = {0};
    size_t n = 0;
    uint64_t serial = gw->txn_serial;
    for (size_t i = 0; i < gw->nundo; i++)
        gw->undo[i].dv->touched_in = serial;
    for (size_t i = 0; i < gw->nundo + gw->nwarm && n < DEFER_MAX; i++) {
        struct device *dv = i < gw->nundo ? gw->undo[i].dv : gw->warm[i - gw->nundo];
        if (dv->warm_mark == serial || dv->touched_in + WARM_TXNS <= serial)
            continue;
        dv->warm_mark = serial;
        keep[n++] = dv;
    }
    for (size_t i = 0; i < n; i++)
        gw->warm[i] = keep[i];
    gw->nwarm = n;
}

/* The poll is undone: replay state restored, the sink rolled back to the last checkpoint, the
 * cached responses forgotten, nothing acknowledged; the devices send again. */
static void undo(mw_gateway_t *gw, mw_err e)
{
    gw->st.store_failures++;
    if (gw->store && mwi_store_take_conflict(gw->store))
        gw->st.store_conflicts++;
    if (gw->store)
        mwi_store_rollback(gw->store);
    for (size_t i = 0; i < gw->nundo; i++)
        gw->undo[i].dv->rp = gw->undo[i].before;
    for (size_t i = 0; i < gw->ndeferred; i++) {
        struct peer *p = *mwi_gw_peer_slot(gw, &gw->deferred[i].addr);
        if (p)
            memset(&p->dedup, 0, sizeof p->dedup);
    }
    gw->ndeferred = 0;
    if (gw->sink_recover) {
        mw_err r = gw->sink_recover(gw->sink_ctx, gw->checkpoint);
        (void)r;
    }
    mwi_gw_audit(gw, MW_AUDIT_STORE_FAILED, "", "", e, 0,
                 "could not commit received messages; none was acknowledged, devices will resend");
}

/* Makes everything staged since the last commit durable -- the sink's
 * output first, then the store with the sink's checkpoint -- and only then
 * lets the acknowledgements go. If either fails, the poll is undone. */
mw_err mwi_gw_commit(mw_gateway_t *gw)
{
    if (!gw->dirty) {
        send_deferred(gw);
        gw->nundo = 0;
        return MW_OK;
    }
    uint64_t ck = gw->checkpoint;
    uint64_t t0 = now_us(gw);
    mw_err e = make_durable(gw, &ck);
    /* Custody transfer waits on this: its latency is what devices feel. */
    record_commit_time(gw, now_us(gw) - t0);
    if (e == MW_OK) {
        gw->checkpoint = ck;
        send_deferred(gw);
        remember_warm(gw);
    } else {
        undo(gw, e);
        gw->nwarm = 0;
    }
    gw->txn_serial++;
    gw->nundo = 0;
    gw->dirty = false;
    gw->txn_failed = false;
    return e;
}
