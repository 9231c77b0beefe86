/* SPDX-License-Identifier: Apache-2.0 */
/* store_pg.h -- the gateway's durable store on PostgreSQL (libpq), shared by several gateways:
 * store.c hands it every call on a store opened with a postgresql:// or postgres:// URL. The
 * functions mean what their namesakes in store.h mean; only what differs is said here. */
#ifndef MWI_GATEWAY_STORE_PG_H
#define MWI_GATEWAY_STORE_PG_H

#include <stdbool.h>
#include <stdint.h>

#include "medwire/err.h"
#include "gateway/store.h" /* mwi_store_row_fn */
#include "medwire/message.h"
#include "session/codec.h"
#include "session/replay.h"

typedef struct mwi_pg_store mwi_pg_store;

/** Connects to @p url, applies the schema's migrations (one transaction, under an advisory
 *  lock) and keeps the sink checkpoint under @p instance. Errors never show the password. */
MW_NODISCARD mw_err mwi_pg_open(const char *url, const char *instance, mwi_pg_store **out,
                                mw_error_detail_t *d);
void mwi_pg_close(mwi_pg_store **s);
MW_NODISCARD mw_err mwi_pg_load_device(mwi_pg_store *s, const char *id, mwi_replay *out,
                                       uint64_t *out_next_command,
                                       mw_command_t cmds[MWI_MAX_COMMANDS], uint8_t *ncmds,
                                       bool *found);
MW_NODISCARD mw_err mwi_pg_lock_device(mwi_pg_store *s, const char *id, mwi_replay *out,
                                       uint64_t *out_next_command,
                                       mw_command_t cmds[MWI_MAX_COMMANDS], uint8_t *ncmds,
                                       bool *found);
MW_NODISCARD mw_err mwi_pg_lock_devices(mwi_pg_store *s, const char *const *ids, size_t n,
                                        mwi_store_row_fn *row, void *ctx);
MW_NODISCARD mw_err mwi_pg_checkpoint(mwi_pg_store *s, uint64_t *out);
MW_NODISCARD mw_err mwi_pg_begin(mwi_pg_store *s);
MW_NODISCARD mw_err mwi_pg_put_message(mwi_pg_store *s, const mw_message_t *m,
                                       uint64_t received_ms);
MW_NODISCARD mw_err mwi_pg_put_device(mwi_pg_store *s, const char *id, const mwi_replay *r,
                                      uint64_t next_command, const mw_command_t *cmds,
                                      size_t ncmds);
MW_NODISCARD mw_err mwi_pg_retire_space(mwi_pg_store *s, const char *id, uint64_t space,
                                        uint64_t retired_ms);
MW_NODISCARD mw_err mwi_pg_put_certificate(mwi_pg_store *s, const mwi_store_cert *c);
MW_NODISCARD mw_err mwi_pg_space_retired(mwi_pg_store *s, const char *id, uint64_t space,
                                         bool *out);
MW_NODISCARD mw_err mwi_pg_commit(mwi_pg_store *s, uint64_t sink_checkpoint);
void mwi_pg_rollback(mwi_pg_store *s);
bool mwi_pg_in_txn(const mwi_pg_store *s);
MW_NODISCARD mw_err mwi_pg_count(mwi_pg_store *s, uint64_t *out);
/** True if the server answers now (reconnecting if the connection was lost). */
bool mwi_pg_healthy(mwi_pg_store *s);
/** Whether a statement since the last call failed for a conflict with another session
 *  (SQLSTATE class 40: deadlock, serialization failure); clears it. */
bool mwi_pg_take_conflict(mwi_pg_store *s);

#endif
