/* SPDX-License-Identifier: Apache-2.0 */
/* recovery.h -- opening a queue's region: checks, the scan of the log, and the index and gap
 * table rebuilt from it (docs/queue.md, 9). */
#ifndef MWI_QUEUE_RECOVERY_H
#define MWI_QUEUE_RECOVERY_H

#include "queue/queue_internal.h"

/**
 * Brings the queue @p q (memory laid out, configuration copied, AES context initialised) to
 * the state its region holds: refuses a region of format 1, another geometry or another key
 * before writing anything; creates a new queue on an erased region; otherwise replays the
 * active half into the index and gap table, restores the nonce store's floor, and compacts if
 * anything was cut off or skipped. Events found are delivered during the call.
 * @return as mwi_queue_open(); @p d says why.
 */
MW_NODISCARD mw_err mwi_recover(mwi_queue *q, const mwi_queue_config *cfg, mw_error_detail_t *d);

#endif
