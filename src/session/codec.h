/* SPDX-License-Identifier: Apache-2.0 */
/* codec.h -- protobuf (nanopb) form of envelopes, batches and acks, validated, without heap. */
#ifndef MWI_SESSION_CODEC_H
#define MWI_SESSION_CODEC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "medwire/err.h"
#include "medwire/message.h"
#include "medwire.pb.h"

/** The only protocol version this code speaks (Envelope.version). */
#define MWI_PROTOCOL_VERSION 1
/** Most envelopes in one Batch: max_count of Batch.envelopes in proto/medwire.options. */
#define MWI_MAX_BATCH 16
/** Most ranges in one Ack: max_count of Ack.acked in proto/medwire.options. */
#define MWI_MAX_ACK_RANGES 16
/** Most commands in one Ack: max_count of Ack.commands. */
#define MWI_MAX_COMMANDS 4
/** Exponent bounds of an observation (IEEE 11073-20601 FLOAT has an 8-bit exponent). */
#define MWI_EXPONENT_MIN (-128)
#define MWI_EXPONENT_MAX 127

/**
 * True if @p id is a valid device id: the certificate CN, [A-Za-z0-9][A-Za-z0-9._-]{0,63}.
 * NULL is not valid. Reads at most MW_ID_MAX + 1 bytes of @p id.
 */
bool mwi_device_id_valid(const char *id);

/**
 * Checks @p m against the rules the gateway applies to every envelope it decodes: valid device
 * id, seq >= 1, priority 1..3, type observation, alarm or status, enums in range, unit, text and
 * source NUL-terminated within their arrays and printable ASCII (a unit has no space, as in UCUM),
 * exponent in [-128, 127], battery_pct <= 100.
 * The client should call it before a message enters its queue: a message the gateway refuses
 * would otherwise block the queue, since a batch is accepted or refused whole.
 * @return ::MW_OK or ::MW_EINVAL.
 */
MW_NODISCARD mw_err mwi_message_check(const mw_message_t *m);

/**
 * Fills @p out from @p m (low_water is left 0: the batch encoders set it).
 * @return ::MW_OK, or ::MW_EINVAL if @p m fails mwi_message_check() (@p out is then unspecified).
 */
MW_NODISCARD mw_err mwi_envelope_from_message(const mw_message_t *m, medwire_v1_Envelope *out);

/**
 * Fills @p out from an envelope decoded off the wire, validating every field (the rules of
 * mwi_message_check(), plus: time_trust in range, no NUL inside a string, a source only on an
 * observation or an alarm, where it is copied into the payload). An envelope without a
 * payload member this version knows gives type ::MW_MSG_UNKNOWN with a zeroed payload; that is
 * not an error. Envelope.low_water is not copied (mwi_batch_decode() reports it).
 * @return ::MW_OK; ::MW_EVERSION if version != 1 (checked first); ::MW_EDECODE for any invalid
 *         content; ::MW_EINVAL for NULL arguments. On error @p out is unspecified.
 */
MW_NODISCARD mw_err mwi_message_from_envelope(const medwire_v1_Envelope *e, mw_message_t *out);

/**
 * Encodes a Batch of msgs[0..n) in order, streaming each envelope as repeated field 1 (no
 * medwire_v1_Batch is built), while they fit in @p cap bytes and at most ::MWI_MAX_BATCH of
 * them. @p low_water is written into every envelope.
 * @param[out] out_len   bytes written to @p out
 * @param[out] out_count how many messages (a prefix of @p msgs) were encoded
 * @return ::MW_OK (at least one message encoded); ::MW_ENOSPC if msgs[0] alone does not fit;
 *         ::MW_EINVAL for NULL arguments, n == 0, or a message up to the first that does not
 *         fit failing mwi_message_check() (*out_count and *out_len are then 0).
 */
MW_NODISCARD mw_err mwi_batch_encode(const mw_message_t *msgs, size_t n, uint64_t low_water,
                                     uint8_t *out, size_t cap, size_t *out_len, size_t *out_count);

/** As mwi_batch_encode(), from an array of pointers (the client's queue is a ring). */
MW_NODISCARD mw_err mwi_batch_encode_ptrs(const mw_message_t *const *msgs, size_t n,
                                          uint64_t low_water, uint8_t *out, size_t cap,
                                          size_t *out_len, size_t *out_count);

/** What a Batch declares besides its envelopes. */
typedef struct mwi_batch_head {
    uint64_t low_water; /**< Envelope.low_water, alike in every envelope */
    uint64_t space;     /**< Batch.space: the sequence space of every number (0: none) */
} mwi_batch_head;

/** As mwi_batch_encode_ptrs(), in a sequence space: Batch.space (9 bytes) follows the
 *  envelopes when it is not 0, and is counted in @p cap. */
MW_NODISCARD mw_err mwi_batch_encode_in(const mw_message_t *const *msgs, size_t n,
                                        const mwi_batch_head *h, uint8_t *out, size_t cap,
                                        size_t *out_len, size_t *out_count);

/**
 * Decodes and validates a whole Batch into out_msgs[0..cap) before anything is delivered: a
 * batch is accepted or refused whole, so on any error nothing in @p out_msgs may be acted on
 * and *out_count is 0. Unknown top-level fields are skipped (forward compatibility).
 * A Batch has no end marker: bytes cut exactly between two envelopes decode as the shorter
 * batch. That is safe, because the Ack then covers only what was decoded and the device resends
 * the rest; DTLS and CoAP already guard the datagram's integrity.
 * @param[out] out_low_water the low-water mark, which every envelope must carry alike
 * @return ::MW_OK with at least one message; ::MW_EDECODE for bytes that do not parse, an
 *         invalid envelope, an empty batch, more than ::MWI_MAX_BATCH envelopes, or envelopes
 *         disagreeing on low_water; ::MW_EVERSION if an envelope has another version;
 *         ::MW_ENOSPC if the batch holds more than @p cap (< ::MWI_MAX_BATCH) envelopes;
 *         ::MW_EINVAL for NULL arguments.
 */
MW_NODISCARD mw_err mwi_batch_decode(const uint8_t *buf, size_t len, mw_message_t *out_msgs,
                                     size_t cap, size_t *out_count, uint64_t *out_low_water);

/** As mwi_batch_decode(), also returning Batch.space (given at most once, as fixed64, or the
 *  batch is refused with ::MW_EDECODE); each decoded message's @c space is set to it. */
MW_NODISCARD mw_err mwi_batch_decode_in(const uint8_t *buf, size_t len, mw_message_t *out_msgs,
                                        size_t cap, size_t *out_count, mwi_batch_head *out_head);

/** Ack.resync: why the device must move to a new sequence space (docs/protocol.md 5b). */
typedef enum mwi_resync {
    MWI_RESYNC_NONE = 0,
    MWI_RESYNC_CONFLICT = 1, /**< a delivered number came again with other content */
    MWI_RESYNC_UNKNOWN = 2,  /**< a number the gateway can no longer judge */
    MWI_RESYNC_RETIRED = 3,  /**< the batch's space was left earlier */
} mwi_resync;

/** An inclusive range of sequence numbers the gateway has taken custody of. */
typedef struct mwi_seq_range {
    uint64_t first, last;
} mwi_seq_range;

/**
 * Encodes an Ack of ranges[0..n); n may be 0 (an empty Ack, zero bytes).
 * @return ::MW_OK; ::MW_EINVAL if n > ::MWI_MAX_ACK_RANGES or a range has first == 0 or
 *         first > last; ::MW_ENOSPC if @p cap is too small.
 */
MW_NODISCARD mw_err mwi_ack_encode(const mwi_seq_range *ranges, size_t n, uint8_t *out, size_t cap,
                                   size_t *out_len);

/**
 * Decodes an Ack into out[0..cap).
 * @return ::MW_OK; ::MW_EDECODE for bytes that do not parse, more than ::MWI_MAX_ACK_RANGES
 *         ranges, or a range with first == 0 or first > last; ::MW_ENOSPC if it holds more than
 *         @p cap ranges; ::MW_EINVAL for NULL arguments. On error *out_n is 0.
 */
MW_NODISCARD mw_err mwi_ack_decode(const uint8_t *buf, size_t len, mwi_seq_range *out, size_t cap,
                                   size_t *out_n);

/** As mwi_ack_encode, with up to ::MWI_MAX_COMMANDS commands (id != 0, a known kind). */
MW_NODISCARD mw_err mwi_ack_encode_cmds(const mwi_seq_range *ranges, size_t n,
                                        const mw_command_t *cmds, size_t ncmds, uint8_t *out,
                                        size_t cap, size_t *out_len);
/** As mwi_ack_decode, also returning the commands (a kind this version does not know comes
 *  out as kind 0). A command with id 0 refuses the whole Ack (MW_EDECODE). */
MW_NODISCARD mw_err mwi_ack_decode_cmds(const uint8_t *buf, size_t len, mwi_seq_range *out,
                                        size_t cap, size_t *out_n, mw_command_t *cmds,
                                        size_t cmdcap, size_t *out_ncmds);

/** As mwi_ack_encode_cmds, with Ack.resync and Ack.gateway_time_ms (0: none). */
MW_NODISCARD mw_err mwi_ack_encode_full(const mwi_seq_range *ranges, size_t n,
                                        const mw_command_t *cmds, size_t ncmds,
                                        mwi_resync resync, uint64_t gateway_time_ms, uint8_t *out,
                                        size_t cap, size_t *out_len);
/** As mwi_ack_decode_cmds, also returning Ack.resync in @p out_resync and Ack.gateway_time_ms in
 *  @p out_gateway_time_ms (each may be NULL); a reason from a later version comes out as
 *  ::MWI_RESYNC_UNKNOWN. */
MW_NODISCARD mw_err mwi_ack_decode_full(const uint8_t *buf, size_t len, mwi_seq_range *out,
                                        size_t cap, size_t *out_n, mw_command_t *cmds,
                                        size_t cmdcap, size_t *out_ncmds, mwi_resync *out_resync,
                                        uint64_t *out_gateway_time_ms);

/** One Command as the body of a gateway's POST to the device's /cmd resource.
 *  @return ::MW_OK; ::MW_EINVAL (id 0, unknown kind, NULL); ::MW_ENOSPC. */
MW_NODISCARD mw_err mwi_command_encode(const mw_command_t *cmd, uint8_t *out, size_t cap,
                                       size_t *out_len);
/** Decodes a /cmd body; an unknown kind comes out as kind 0.
 *  @return ::MW_OK; ::MW_EDECODE (bytes that do not parse, or id 0); ::MW_EINVAL. */
MW_NODISCARD mw_err mwi_command_decode(const uint8_t *buf, size_t len, mw_command_t *out);

/**
 * Builds sorted, disjoint, non-adjacent ranges from @p seqs (any order, duplicates allowed;
 * 0 is ignored) and returns how many were written to @p out.
 * If more than @p cap ranges would be needed, some numbers are left out, never one that is not
 * in @p seqs: acknowledging less is safe (the device resends, the gateway deduplicates),
 * acknowledging more would lose data. O(n * cap), no allocation.
 */
size_t mwi_ranges_from_seqs(const uint64_t *seqs, size_t n, mwi_seq_range *out, size_t cap);

#endif
