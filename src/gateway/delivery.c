/* SPDX-License-Identifier: Apache-2.0 */
/* delivery.c -- one device's decoded batch taken in: its sequence space entered (a new one
 * retires the old, durably), its messages judged by the session's intake (session/intake.h),
 * the new ones staged in the store and handed to the sink, command results and gap records
 * noted, every verdict counted and the resynchronisations audited. The /batch resource
 * (gateway.c) answers with what comes back. */
#include <stdio.h>

#include "dtls/digest.h"
#include "gateway/gateway_internal.h"
#include "session/intake.h"

/* What a number is judged by when it comes again: the envelope as the device encoded it, less
 * what may differ between two sendings of one message (the low-water mark, the resend mark; the
 * space is not in an envelope). */
static mw_err message_digest(const mw_message_t *m, uint64_t *out)
{
    mw_message_t c = *m;
    uint8_t buf[medwire_v1_Envelope_size + 3];
    size_t len = 0, count = 0;
    c.possible_duplicate = false;
    mw_err e = mwi_batch_encode(&c, 1, 0, buf, sizeof buf, &len, &count);
    return e == MW_OK ? mwi_digest64(buf, len, out) : e;
}

/* Which space the batch's numbers belong to (docs/protocol.md 5b), the store asked about the
 * spaces retired beyond what the replay state remembers. A new space starts a fresh replay
 * state; the old one is retired, in the store too. MW_EIO if the store cannot tell. */
static mw_err enter_space(mw_gateway_t *gw, struct peer *p, struct device *dv, uint64_t space,
                          mwi_space_verdict *out)
{
    mwi_space_verdict v = mwi_intake_space(&dv->rp, space);
    bool retired = false;
    if (v == MWI_SPACE_NEW && gw->store &&
        mwi_store_space_retired(gw->store, dv->id, space, &retired) != MW_OK)
        return MW_EIO;
    *out = retired ? MWI_SPACE_RETIRED : v;
    if (*out != MWI_SPACE_NEW)
        return MW_OK;
    char why[160];
    if (!dv->rp.fresh) {
        (void)mwi_gw_stage_retired_space(gw, dv); /* if it fails, the commit undoes this poll */
        snprintf(why, sizeof why, "sequence space %016llx opened; %016llx retired",
                 (unsigned long long)space, (unsigned long long)dv->rp.space);
    } else {
        snprintf(why, sizeof why, "sequence space %016llx opened", (unsigned long long)space);
    }
    mwi_replay_enter(&dv->rp, space);
    gw->st.spaces_started++;
    mwi_gw_audit(gw, MW_AUDIT_SPACE_STARTED, p->text, dv->id, MW_OK, 0, why);
    return MW_OK;
}

/* Stages @p m and hands it to the sink; false if either failed (it is then not acknowledged,
 * and the device sends it again). */
static bool deliver(mw_gateway_t *gw, const mw_message_t *m)
{
    return mwi_gw_stage_message(gw, m) && gw->sink(gw->sink_ctx, m) == MW_OK;
}

/* What a delivered message means besides itself. */
static void delivered(mw_gateway_t *gw, struct peer *p, struct device *dv, const mw_message_t *m)
{
    if (m->type == MW_MSG_COMMAND_RESULT)
        mwi_gw_command_answered(gw, p, dv, m);
    gw->st.messages_delivered++;
    if (m->type == MW_MSG_GAP) {
        /* What devices had to drop is an availability signal of its own. */
        gw->st.gap_records++;
        if (m->u.gap.reason == MW_GAP_EVICTED)
            gw->st.evictions_reported += m->u.gap.count;
    }
}

/* Judges msgs[0..n) (in order of sequence number) and delivers the new ones. */
static mwi_intake_outcome judge_and_deliver(mw_gateway_t *gw, struct peer *p, struct device *dv,
                                            const mw_message_t *msgs, size_t n, mwi_intake *in)
{
    for (size_t i = 0; i < n; i++) {
        const mw_message_t *m = &msgs[i];
        uint64_t dg = 0;
        if (message_digest(m, &dg) != MW_OK)
            break; /* nothing to judge it by: not acknowledged, the device sends it again */
        mwi_intake_action a = mwi_intake_judge(in, m->seq, dg);
        if (a == MWI_INTAKE_STOP)
            break;
        if (a != MWI_INTAKE_DELIVER)
            continue;
        if (!deliver(gw, m) || mwi_intake_delivered(in, m->seq, dg) != MW_OK)
            break; /* never acknowledge what was not delivered and recorded */
        delivered(gw, p, dv, m);
    }
    gw->st.duplicates += in->duplicates;
    gw->st.conflicts += in->conflicts;
    gw->st.replays += in->unjudged;
    return mwi_intake_end(in);
}

mwi_gw_batch_result mwi_gw_take_batch(mw_gateway_t *gw, struct peer *p, struct device *dv,
                                      mw_message_t *msgs, size_t n, const mwi_batch_head *head,
                                      mwi_intake *in)
{
    char why[240];
    mwi_gw_seen(gw, dv);
    mwi_intake_sort(msgs, n);
    mwi_gw_touch(gw, dv);
    gw->dirty = true;
    mwi_space_verdict sv;
    if (enter_space(gw, p, dv, head->space, &sv) != MW_OK)
        return MWI_GW_BATCH_UNREADABLE;
    if (sv == MWI_SPACE_RETIRED) {
        snprintf(why, sizeof why,
                 "batch of %lu from seq %llu %s (%016llx): asked the device to resynchronise",
                 (unsigned long)n, (unsigned long long)msgs[0].seq,
                 mwi_resync_reason(MWI_RESYNC_RETIRED), (unsigned long long)head->space);
        mwi_gw_audit(gw, MW_AUDIT_RESYNC, p->text, dv->id, MW_EREPLAY, 0, why);
        return MWI_GW_BATCH_RETIRED;
    }
    mwi_intake_begin(in, &dv->rp, head->low_water);
    mwi_intake_outcome out = judge_and_deliver(gw, p, dv, msgs, n, in);
    if (out == MWI_INTAKE_NOTHING)
        return MWI_GW_BATCH_NOT_STORED;
    if (out == MWI_INTAKE_RESYNC) {
        snprintf(why, sizeof why,
                 "%lu message(s) from seq %llu: seq %llu %s (space %016llx, low-water %llu): "
                 "asked the device to resynchronise",
                 (unsigned long)in->held, (unsigned long long)in->first_held,
                 (unsigned long long)in->first_held, mwi_resync_reason(in->resync),
                 (unsigned long long)dv->rp.space, (unsigned long long)dv->rp.low);
        mwi_gw_audit(gw, MW_AUDIT_RESYNC, p->text, dv->id, MW_EREPLAY, 0, why);
        gw->st.resyncs_requested++;
    }
    return MWI_GW_BATCH_ACK;
}
