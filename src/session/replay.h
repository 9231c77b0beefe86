/* SPDX-License-Identifier: Apache-2.0 */
/* replay.h -- per-device replay state: which sequence numbers were delivered, as a low-water mark
 * and a few ranges. */
#ifndef MWI_SESSION_REPLAY_H
#define MWI_SESSION_REPLAY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "medwire/err.h"
#include "session/codec.h"

/** Ranges kept above the low-water mark. A device sends alarms before older
 *  observations, so delivered numbers are not contiguous; each hole costs a
 *  range until the device's low-water mark passes it. */
#define MWI_REPLAY_MAX_RANGES 32

/**
 * What the gateway knows about one device's sequence numbers. @c low is the
 * highest low-water mark the device declared: it holds nothing below it, so a
 * number below it can only be a replay. Every number below @c done (>= low) is
 * settled: delivered, or given up by the device. Above @c done, @c r holds the
 * delivered numbers as sorted, disjoint, non-adjacent inclusive ranges. The
 * size is fixed whatever order messages arrive in.
 */
typedef struct mwi_replay {
    uint64_t low;
    uint64_t done;
    uint32_t n;
    mwi_seq_range r[MWI_REPLAY_MAX_RANGES];
} mwi_replay;

typedef enum mwi_replay_verdict {
    MWI_REPLAY_NEW,       /**< never delivered: deliver it, then mwi_replay_mark */
    MWI_REPLAY_DUPLICATE, /**< delivered before: acknowledge again, do not deliver */
    MWI_REPLAY_OLD,       /**< below the low-water mark: refuse as a replay */
} mwi_replay_verdict;

void mwi_replay_init(mwi_replay *r);
mwi_replay_verdict mwi_replay_check(const mwi_replay *r, uint64_t seq);
/** Records @p seq as delivered. MW_EFULL if that needs a range beyond the bound (deliver it
 *  later, once the low-water mark has moved); MW_EINVAL for 0 or a number below done. */
MW_NODISCARD mw_err mwi_replay_mark(mwi_replay *r, uint64_t seq);
/** Would mwi_replay_mark(@p seq) succeed? */
bool mwi_replay_has_room(const mwi_replay *r, uint64_t seq);
/** The device declares that it holds nothing below @p low_water: numbers below it are settled
 *  and the ranges there are dropped. A lower value than before changes nothing. */
void mwi_replay_advance(mwi_replay *r, uint64_t low_water);

#endif
