/* SPDX-License-Identifier: Apache-2.0 */
/* store.h -- the gateway's durable store (SQLite, WAL; or PostgreSQL, shared by several
 * gateways): accepted-message journal, per-device replay state, pending commands and retired
 * sequence spaces, sink checkpoint. */
#ifndef MWI_GATEWAY_STORE_H
#define MWI_GATEWAY_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "medwire/err.h"
#include "medwire/message.h"
#include "session/codec.h"
#include "session/replay.h"

typedef struct mwi_store mwi_store;

/**
 * Opens (creating if needed, mode 0600) the database at @p path with journal_mode=WAL and
 * synchronous=FULL: a commit has reached the disk when it returns. The file stays locked
 * (flock) until mwi_store_close, so no second store opens it meanwhile; ":memory:" is not
 * a file and is not locked.
 * @return MW_OK; MW_EIO (cannot open, not a medwire store, or a newer schema) with the reason;
 *         MW_EIO with foreign EAGAIN, and a reason that says so, when another store holds
 *         the file.
 */
MW_NODISCARD mw_err mwi_store_open(const char *path, mwi_store **out, mw_error_detail_t *d);
/**
 * As mwi_store_open; a @p path that starts with postgresql:// or postgres:// is a PostgreSQL
 * connection URL (libpq's), and then the store is one several gateways share: its schema is
 * migrated at open, the sink checkpoint is kept under @p instance (this gateway's name; NULL
 * is ""), and nothing is locked. MW_EIO with a reason if this build has no libpq; errors
 * never show the URL's password.
 */
MW_NODISCARD mw_err mwi_store_open_as(const char *path, const char *instance, mwi_store **out,
                                      mw_error_detail_t *d);
/** True if @p path names a PostgreSQL store (postgresql:// or postgres://). */
bool mwi_store_is_pg(const char *path);
/** @p path as errors and logs may show it: a URL's password (user:PASSWORD@, or a password
 *  parameter) replaced by "***"; a file's path as it is. */
void mwi_store_redact(const char *path, char *out, size_t size);
void mwi_store_close(mwi_store **s);

/** Reads a device's replay state, command id counter and the commands waiting for its answer
 *  (into @p cmds and @p *ncmds unless @p cmds is NULL); *found false (and the outputs
 *  untouched) if the device is new. MW_EIO if the stored state is unreadable (never guessed: a
 *  wrong state loses or repeats messages, a wrong command runs what nobody sent). */
MW_NODISCARD mw_err mwi_store_load_device(mwi_store *s, const char *id, mwi_replay *out,
                                          uint64_t *out_next_command,
                                          mw_command_t cmds[MWI_MAX_COMMANDS], uint8_t *ncmds,
                                          bool *found);
/**
 * Reads a device's replay state again inside the open transaction (beginning one) and holds it
 * until commit or rollback: on a shared store, another gateway taking in the same device's
 * batch waits here for this one's commit, then reads what it committed. *found false leaves
 * *out and *out_next_command untouched: the device is new, or the store is a file that one
 * gateway alone uses (SQLite), whose cached state is always the current one. The commands are
 * read as mwi_store_load_device reads them.
 */
MW_NODISCARD mw_err mwi_store_lock_device(mwi_store *s, const char *id, mwi_replay *out,
                                          uint64_t *out_next_command,
                                          mw_command_t cmds[MWI_MAX_COMMANDS], uint8_t *ncmds,
                                          bool *found);
/** What mwi_store_lock_devices read of the device @p ids[@p index]: @p r NULL if its row holds
 *  no state yet (it is locked all the same). */
typedef void mwi_store_row_fn(void *ctx, size_t index, const mwi_replay *r, uint64_t next_command,
                              const mw_command_t *cmds, uint8_t ncmds);
/**
 * As mwi_store_lock_device for @p n devices (at most MWI_STORE_LOCK_MAX) in one statement, which
 * locks their rows in id order and calls @p row for each device that has one (a device without
 * a row is not called: mwi_store_lock_device makes it). A store one gateway alone uses
 * (SQLite) calls nothing and returns MW_OK. MW_EIO if a row is unreadable or the statement
 * failed (then nothing is called after the failure is found).
 */
#define MWI_STORE_LOCK_MAX 256
MW_NODISCARD mw_err mwi_store_lock_devices(mwi_store *s, const char *const *ids, size_t n,
                                           mwi_store_row_fn *row, void *ctx);
/** True if several gateways may share the store (PostgreSQL). */
bool mwi_store_shared(const mwi_store *s);
/** True if the store can commit now: for PostgreSQL, the server answers (a lost connection is
 *  made again here); a file is always there. */
bool mwi_store_healthy(mwi_store *s);
/** Whether the failure of the transaction just rolled back was a conflict with another gateway
 *  on a shared database (a deadlock or serialization failure); false for SQLite. Clears it. */
bool mwi_store_take_conflict(mwi_store *s);
/** The sink checkpoint of the last commit (0 if none; this gateway's own on a shared store). */
MW_NODISCARD mw_err mwi_store_checkpoint(mwi_store *s, uint64_t *out);

/** Starts a transaction (idempotent while one is open). */
MW_NODISCARD mw_err mwi_store_begin(mwi_store *s);
/** Journals one accepted message (its envelope as a one-message Batch), received at
 *  @p received_ms: Unix ms by the gateway's wall clock, 0 without one. */
MW_NODISCARD mw_err mwi_store_put_message(mwi_store *s, const mw_message_t *m,
                                          uint64_t received_ms);
/** Records a device's replay state, command id counter and its @p ncmds pending commands
 *  (at most MWI_MAX_COMMANDS; MW_EINVAL for more, or for one the gateway would not send). */
MW_NODISCARD mw_err mwi_store_put_device(mwi_store *s, const char *id, const mwi_replay *r,
                                         uint64_t next_command, const mw_command_t *cmds,
                                         size_t ncmds);
/** Records that the device left @p space (inside the open transaction): it is never reopened.
 *  @p retired_ms: Unix ms by the gateway's wall clock, 0 without one. */
MW_NODISCARD mw_err mwi_store_retire_space(mwi_store *s, const char *id, uint64_t space,
                                           uint64_t retired_ms);
/** A certificate the gateway's EST server issued (what the store keeps of it). */
typedef struct mwi_store_cert {
    const char *device;   /**< the identity it was issued to */
    const char *serial;   /**< lowercase hex */
    const char *replaces; /**< serial of the certificate the session was made with ("" if none) */
    int64_t not_before, not_after; /**< Unix seconds */
    uint64_t issued_ms;            /**< Unix ms by the gateway's wall clock, 0 without one */
    const uint8_t *der;            /**< the certificate */
    size_t len;
} mwi_store_cert;
/** Records an issued certificate (inside the open transaction): its answer leaves with the
 *  commit, so a device never holds a certificate the store does not list. The same device and
 *  serial again (an external CA's answer repeated) keeps the first record. */
MW_NODISCARD mw_err mwi_store_put_certificate(mwi_store *s, const mwi_store_cert *c);
/** Did the device leave @p space, by the durable record of every space it left? */
MW_NODISCARD mw_err mwi_store_space_retired(mwi_store *s, const char *id, uint64_t space,
                                            bool *out);
/** Commits with the sink checkpoint; on failure the transaction is rolled back. */
MW_NODISCARD mw_err mwi_store_commit(mwi_store *s, uint64_t sink_checkpoint);
void mwi_store_rollback(mwi_store *s);
bool mwi_store_in_txn(const mwi_store *s);
/** Journal rows (for tests and operations). */
MW_NODISCARD mw_err mwi_store_count(mwi_store *s, uint64_t *out);

#endif
