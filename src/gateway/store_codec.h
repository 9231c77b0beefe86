/* SPDX-License-Identifier: Apache-2.0 */
/* store_codec.h -- what the stores keep as bytes, the same in SQLite and in PostgreSQL: a
 * device's replay state (one versioned byte string, read back only after every field is
 * checked), its pending commands, and a journalled message. */
#ifndef MWI_GATEWAY_STORE_CODEC_H
#define MWI_GATEWAY_STORE_CODEC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "medwire/message.h"
#include "session/codec.h" /* MWI_MAX_COMMANDS: as many as one Ack carries */
#include "session/replay.h"

/** A journalled message is at most this long. */
#define MWI_JOURNAL_MAX 512

/* Blob 2: version(1) flags(1: bit 0 fresh) space(8) low(8) done(8) top(8) zero(3) n(1) nd(1)
 * nretired(1), then n * (first(8) last(8)), nd * (seq(8) digest(8)), nretired * space(8). */
#define MWI_REPLAY_BLOB_HEAD 40
#define MWI_REPLAY_BLOB_MAX                                                                        \
    (MWI_REPLAY_BLOB_HEAD + MWI_REPLAY_MAX_RANGES * 16 + MWI_REPLAY_DIGESTS * 16 +                 \
     MWI_REPLAY_RETIRED * 8)

/** Writes @p r as blob 2 into @p out; returns its length. */
size_t mwi_replay_blob_encode(const mwi_replay *r, uint8_t out[MWI_REPLAY_BLOB_MAX]);
/** Reads blob 1 or 2 of @p n bytes into @p out; false (and @p out unspecified) if it is not
 *  one, or states what mwi_replay cannot hold: a wrong state loses or repeats messages. */
bool mwi_replay_blob_decode(const uint8_t *b, size_t n, mwi_replay *out);
/* A device's pending commands: version(1) n(1), then n * (len(1) Command), each Command as the
 * gateway POSTs it to the device's /cmd (at most 64 bytes). */
#define MWI_COMMANDS_BLOB_MAX (2 + MWI_MAX_COMMANDS * 65)

/** Writes @p n (at most MWI_MAX_COMMANDS) commands into @p out; returns the length, 0 if
 *  one does not encode (an id 0 or an unknown kind, which the gateway never queues). */
size_t mwi_commands_blob_encode(const mw_command_t *c, size_t n,
                                uint8_t out[MWI_COMMANDS_BLOB_MAX]);
/** Reads @p len bytes into @p out and @p *n; false (both unspecified) unless every length,
 *  command and kind checks: a command read wrong would run something nobody sent. */
bool mwi_commands_blob_decode(const uint8_t *b, size_t len, mw_command_t out[MWI_MAX_COMMANDS],
                              uint8_t *n);
/** A message as the journal keeps it: its envelope as a one-message Batch (its space and its
 *  own number as low-water mark). MW_EINVAL if it does not encode within MWI_JOURNAL_MAX. */
MW_NODISCARD mw_err mwi_journal_encode(const mw_message_t *m, uint8_t out[MWI_JOURNAL_MAX],
                                       size_t *out_len);

#endif
