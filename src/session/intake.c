/* SPDX-License-Identifier: Apache-2.0 */
/* intake.c -- what the gateway makes of one decoded batch, decided without I/O (intake.h). */
#include <stdlib.h>
#include <string.h>

#include "session/intake.h"

size_t mwi_intake_foreign(const mw_message_t *msgs, size_t n, const char *id)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(msgs[i].device_id, id) != 0)
            return i;
    return n;
}

static int cmp_seq(const void *a, const void *b)
{
    uint64_t x = ((const mw_message_t *)a)->seq, y = ((const mw_message_t *)b)->seq;
    return x < y ? -1 : x > y;
}

void mwi_intake_sort(mw_message_t *msgs, size_t n)
{
    if (n > 1)
        qsort(msgs, n, sizeof msgs[0], cmp_seq);
}

mwi_space_verdict mwi_intake_space(const mwi_replay *rp, uint64_t space)
{
    if (!rp->fresh && space == rp->space)
        return MWI_SPACE_CURRENT;
    return mwi_replay_retired(rp, space) ? MWI_SPACE_RETIRED : MWI_SPACE_NEW;
}

void mwi_intake_begin(mwi_intake *in, mwi_replay *rp, uint64_t low_water)
{
    memset(in, 0, sizeof *in);
    in->rp = rp;
    in->low_water = low_water;
    in->resync = MWI_RESYNC_NONE;
    mwi_replay_advance(rp, low_water);
}

mwi_intake_action mwi_intake_judge(mwi_intake *in, uint64_t seq, uint64_t digest)
{
    if (in->nacked == MWI_MAX_BATCH)
        return MWI_INTAKE_STOP; /* more than a batch holds: the rest waits */
    mwi_replay_verdict v = mwi_replay_check(in->rp, seq, digest);
    if (v == MWI_REPLAY_CONFLICT || v == MWI_REPLAY_UNKNOWN) {
        /* Neither delivered nor provably a duplicate. The device moves to a new space and
         * sends it again there; a conflict is the weightier reason. */
        if (v == MWI_REPLAY_CONFLICT) {
            in->conflicts++;
            in->resync = MWI_RESYNC_CONFLICT;
        } else {
            in->unjudged++;
            if (in->resync == MWI_RESYNC_NONE)
                in->resync = MWI_RESYNC_UNKNOWN;
        }
        if (in->held++ == 0)
            in->first_held = seq;
        return MWI_INTAKE_HOLD;
    }
    if (v == MWI_REPLAY_DUPLICATE) {
        in->duplicates++;
        in->acked[in->nacked++] = seq;
        return MWI_INTAKE_ACK_AGAIN;
    }
    if (!mwi_replay_has_room(in->rp, seq))
        return MWI_INTAKE_STOP; /* too many holes: wait until the low-water mark moves */
    return MWI_INTAKE_DELIVER;
}

mw_err mwi_intake_delivered(mwi_intake *in, uint64_t seq, uint64_t digest)
{
    if (in->nacked == MWI_MAX_BATCH)
        return MW_EFULL;
    mw_err e = mwi_replay_mark(in->rp, seq, digest);
    if (e == MW_OK)
        in->acked[in->nacked++] = seq;
    return e;
}

mwi_intake_outcome mwi_intake_end(mwi_intake *in)
{
    mwi_replay_advance(in->rp, in->low_water);
    in->nranges = mwi_ranges_from_seqs(in->acked, in->nacked, in->ranges, MWI_MAX_ACK_RANGES);
    if (in->resync != MWI_RESYNC_NONE)
        return MWI_INTAKE_RESYNC;
    return in->nacked == 0 ? MWI_INTAKE_NOTHING : MWI_INTAKE_ACK;
}

const char *mwi_resync_reason(mwi_resync r)
{
    switch (r) {
    case MWI_RESYNC_CONFLICT:
        return "was delivered before with other content";
    case MWI_RESYNC_RETIRED:
        return "belongs to a sequence space the device left";
    default:
        return "is settled and can no longer be judged";
    }
}
