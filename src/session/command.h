/* SPDX-License-Identifier: Apache-2.0 */
/* command.h -- the device's guard against replayed and expired commands. */
#ifndef MWI_SESSION_COMMAND_H
#define MWI_SESSION_COMMAND_H

#include <stdint.h>

#include "medwire/message.h"

/** Command ids remembered as recently handled: a gateway repeats a command in every Ack until
 *  its result arrives, and such repeats must be ignored quietly, not refused. */
#define MWI_CMD_RECENT 16
/** Ids carry the gateway's wall-clock milliseconds in their upper 48 bits (docs/protocol.md 7),
 *  so that they stay unique across gateways and across a gateway's new store. Several
 *  gateways' clocks differ a little: an id is refused as a replay only when it is this much
 *  older than the newest one handled. */
#define MWI_CMD_WINDOW_MS (10u * 60u * 1000u)

typedef struct mwi_cmd_guard {
    uint64_t last; /**< highest id handled */
    uint64_t recent[MWI_CMD_RECENT];
    uint8_t n, pos;
} mwi_cmd_guard;

typedef enum mwi_cmd_verdict {
    MWI_CMD_RUN,       /**< new and in time: run it, then mwi_cmd_done */
    MWI_CMD_DUPLICATE, /**< handled already (its result is on its way): ignore */
    MWI_CMD_REPLAY,    /**< id 0, or older than the window below the newest handled: refuse */
    MWI_CMD_EXPIRED,   /**< new but past expires_ms: refuse, then mwi_cmd_done */
} mwi_cmd_verdict;

/** @p now_wall_ms is the device's Unix time; expiry is judged by it. */
mwi_cmd_verdict mwi_cmd_check(const mwi_cmd_guard *g, const mw_command_t *c, uint64_t now_wall_ms);
/** Records @p id as handled (run or refused as expired). */
void mwi_cmd_done(mwi_cmd_guard *g, uint64_t id);

#endif
