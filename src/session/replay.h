/* SPDX-License-Identifier: Apache-2.0 */
/* replay.h -- per-device replay state: which sequence numbers were delivered in which space, with
 * a digest of each recent one, so that acknowledged always means delivered. */
#ifndef MWI_SESSION_REPLAY_H
#define MWI_SESSION_REPLAY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "medwire/err.h"
#include "session/codec.h"

/** Ranges kept above the settled prefix. A device sends alarms before older
 *  observations, so delivered numbers are not contiguous; each hole costs a
 *  range until the device's low-water mark passes it. */
#define MWI_REPLAY_MAX_RANGES 32
/** Digests kept of delivered numbers at or above the low-water mark: what a device may still
 *  send again (it holds them until acknowledged). 4 requests of 16 in flight need 64. */
#define MWI_REPLAY_DIGESTS 128
/** Spaces the device left, remembered here (a durable store may remember all of them). */
#define MWI_REPLAY_RETIRED 8

/** A delivered number and the digest of what was delivered under it. */
typedef struct mwi_replay_digest {
    uint64_t seq;
    uint64_t digest;
} mwi_replay_digest;

/**
 * What the gateway knows about one identity's sequence numbers (docs/protocol.md 5b).
 *
 * Numbers belong to a @c space. In it, @c low is the highest low-water mark the device
 * declared, bounded by what the gateway delivered (@c top + 1), never beyond: a forged mark
 * cannot settle numbers the gateway never saw. Every number below @c done (>= low) is settled:
 * delivered, or given up by the device (gap records report those). Above @c done, @c r holds
 * the delivered numbers as sorted, disjoint, non-adjacent inclusive ranges. @c d keeps a digest
 * of each delivered number at or above @c low, so that a number that comes again is judged by
 * its content: the same is a duplicate, other content a conflict, and a settled number without
 * a digest cannot be judged. The size is fixed whatever arrives.
 */
typedef struct mwi_replay {
    uint64_t space;
    bool fresh; /**< no batch seen yet: the first one names the space */
    uint64_t low;
    uint64_t done;
    uint64_t top; /**< highest number delivered in this space (0: none) */
    uint32_t n;
    mwi_seq_range r[MWI_REPLAY_MAX_RANGES];
    uint32_t nd;
    mwi_replay_digest d[MWI_REPLAY_DIGESTS];
    uint32_t nretired;
    uint64_t retired[MWI_REPLAY_RETIRED]; /**< most recent first */
} mwi_replay;

typedef enum mwi_replay_verdict {
    MWI_REPLAY_NEW,       /**< never delivered: deliver it, then mwi_replay_mark */
    MWI_REPLAY_DUPLICATE, /**< delivered before with this content: acknowledge, do not deliver */
    MWI_REPLAY_CONFLICT,  /**< delivered before with other content: ask for a resynchronisation */
    MWI_REPLAY_UNKNOWN,   /**< settled, and no digest left to judge it: ask for one too */
} mwi_replay_verdict;

/** A fresh state: the first batch's space is taken as the current one. */
void mwi_replay_init(mwi_replay *r);
/** Starts @p space with a fresh replay state; the current one (unless fresh) is retired. */
void mwi_replay_enter(mwi_replay *r, uint64_t space);
/** True if @p space is one this state retired (among the last ::MWI_REPLAY_RETIRED). */
bool mwi_replay_retired(const mwi_replay *r, uint64_t space);
mwi_replay_verdict mwi_replay_check(const mwi_replay *r, uint64_t seq, uint64_t digest);
/** Records @p seq as delivered with @p digest. MW_EFULL if that needs a range beyond the bound
 *  (deliver it later, once the low-water mark has moved); MW_EINVAL for 0, UINT64_MAX or a
 *  settled number. */
MW_NODISCARD mw_err mwi_replay_mark(mwi_replay *r, uint64_t seq, uint64_t digest);
/** Would mwi_replay_mark(@p seq) succeed? */
bool mwi_replay_has_room(const mwi_replay *r, uint64_t seq);
/** The device declares that it holds nothing below @p low_water. Taken up to top + 1 only:
 *  numbers below it are settled, the ranges and digests there dropped. A lower value than
 *  before changes nothing. */
void mwi_replay_advance(mwi_replay *r, uint64_t low_water);

#endif
