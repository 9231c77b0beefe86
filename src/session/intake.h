/* SPDX-License-Identifier: Apache-2.0 */
/* intake.h -- what the gateway makes of one decoded batch, decided without I/O: whether it is
 * the session's device's own, which sequence space it belongs to, which of its messages are new,
 * repeats or beyond judgement, which numbers the Ack acknowledges and whether it asks the device
 * to resynchronise, and why (docs/protocol.md 5b). Plain structs in, verdicts out: the gateway
 * does the I/O around each step (the store, the sink, the Ack, the audit). */
#ifndef MWI_SESSION_INTAKE_H
#define MWI_SESSION_INTAKE_H

#include <stddef.h>
#include <stdint.h>

#include "medwire/err.h"
#include "medwire/message.h"
#include "session/codec.h"
#include "session/replay.h"

/** The index of the first of msgs[0..n) whose device id is not @p id (the identity the session
 *  authenticated), or @p n if every one is its own: a device speaks only for itself, and one
 *  foreign id refuses the whole batch. */
size_t mwi_intake_foreign(const mw_message_t *msgs, size_t n, const char *id);

/** Puts msgs[0..n) in order of sequence number, the order they are judged and delivered in. */
void mwi_intake_sort(mw_message_t *msgs, size_t n);

/** Which sequence space a batch's numbers belong to, by the device's replay state. */
typedef enum mwi_space_verdict {
    MWI_SPACE_CURRENT, /**< the space of @c rp: judge the batch in it */
    MWI_SPACE_NEW,     /**< another space, not among those @c rp retired: unless a durable
                        *   memory knows it as retired, enter it (mwi_replay_enter), which
                        *   retires the current one */
    MWI_SPACE_RETIRED, /**< a space the device left: never reopened (its numbers may have been
                        *   delivered); acknowledge nothing, ask for ::MWI_RESYNC_RETIRED */
} mwi_space_verdict;

mwi_space_verdict mwi_intake_space(const mwi_replay *rp, uint64_t space);

/** What to do with one message of the batch, judged by mwi_intake_judge(). */
typedef enum mwi_intake_action {
    MWI_INTAKE_DELIVER,   /**< never delivered: deliver it, then mwi_intake_delivered(); if the
                           *   delivery fails, stop there (it is not acknowledged) */
    MWI_INTAKE_ACK_AGAIN, /**< delivered before with this very content: acknowledged again,
                           *   never delivered again */
    MWI_INTAKE_HOLD,      /**< delivered before with other content, or settled with nothing left
                           *   to judge it by: neither delivered nor acknowledged (an Ack would
                           *   drop it in silence); the Ack asks the device to resynchronise */
    MWI_INTAKE_STOP,      /**< no room to record it until the low-water mark moves: stop here;
                           *   it and the rest of the batch wait for the device to send again */
} mwi_intake_action;

/** One batch being judged against one device's replay state. */
typedef struct mwi_intake {
    mwi_replay *rp;     /**< the device's: advanced and marked as the batch is taken */
    uint64_t low_water; /**< the batch's declared mark */
    uint64_t acked[MWI_MAX_BATCH];
    size_t nacked;
    uint32_t duplicates; /**< ::MWI_INTAKE_ACK_AGAIN verdicts */
    uint32_t conflicts;  /**< ::MWI_INTAKE_HOLD for a number delivered with other content */
    uint32_t unjudged;   /**< ::MWI_INTAKE_HOLD for a settled number without a digest */
    size_t held;         /**< messages held (conflicts + unjudged) */
    uint64_t first_held; /**< the lowest number held (0: none) */
    mwi_resync resync;   /**< ::MWI_RESYNC_CONFLICT if any conflict, else UNKNOWN if any held */
    mwi_seq_range ranges[MWI_MAX_ACK_RANGES]; /**< set by mwi_intake_end(): what the Ack says */
    size_t nranges;
} mwi_intake;

/** How a judged batch is answered. */
typedef enum mwi_intake_outcome {
    MWI_INTAKE_ACK,     /**< acknowledge @c ranges */
    MWI_INTAKE_RESYNC,  /**< acknowledge @c ranges (maybe none) and ask for @c resync */
    MWI_INTAKE_NOTHING, /**< nothing taken and nothing held: the batch could not be delivered
                         *   now (the device sends it again) */
} mwi_intake_outcome;

/** Starts judging a batch in @p rp's current space. The device holds nothing below its
 *  @p low_water mark: numbers there are settled, as far as @p rp has delivered and no further. */
void mwi_intake_begin(mwi_intake *in, mwi_replay *rp, uint64_t low_water);

/** Judges the next message, in order of sequence number, by its @p seq and the @p digest of
 *  its content (as the device encoded it, less what may differ between two sendings). */
mwi_intake_action mwi_intake_judge(mwi_intake *in, uint64_t seq, uint64_t digest);

/** Records a message judged ::MWI_INTAKE_DELIVER as delivered, and so acknowledged.
 *  @return ::MW_OK, or the error of mwi_replay_mark() (it is then not acknowledged). */
MW_NODISCARD mw_err mwi_intake_delivered(mwi_intake *in, uint64_t seq, uint64_t digest);

/** Ends the batch: what was just delivered may let the declared mark settle further; the
 *  acknowledged numbers become @c ranges (at most ::MWI_MAX_ACK_RANGES of them: fewer numbers
 *  acknowledged, never more). */
mwi_intake_outcome mwi_intake_end(mwi_intake *in);

/** Why a number is not acknowledged, as a phrase after "seq N ". */
const char *mwi_resync_reason(mwi_resync r);

#endif
