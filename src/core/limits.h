/* SPDX-License-Identifier: Apache-2.0 */
/* limits.h -- the sizes and limits of this build that more than one layer relies on, or that an
 * integrator looks for when a file, a field or a peer's message is refused for its size.
 * Definitions only; any layer may include it (it is core's, and core uses nothing).
 *
 * What is NOT here, and why:
 *  - The wire constants (body and block sizes, NSTART, the CoAP overhead, the content formats)
 *    stay in src/session/protocol.h, and the protobuf bounds (batch, ack ranges, commands,
 *    exponent range) in proto/medwire.options with src/session/codec.h. Both ends of the link
 *    must agree on those: changing one is a protocol change (docs/protocol.md), not a local
 *    setting, so they are kept apart from the limits below, which change no byte on the wire.
 *    (core could not include them either: core uses no other layer, tests/layering.)
 *  - The public sizes of the API's structs (MW_ID_MAX, MW_UNIT_MAX, MW_ALARM_TEXT_MAX, ...) are
 *    in include/medwire/message.h, where an application sees them.
 *  - Shapes of a stored format (the queue's records, the replay window persisted by the
 *    gateway's store: src/session/replay.h) stay with that format: changing them changes what
 *    an earlier build wrote and must read back.
 *  - Limits private to one file (DTLS flight cache, file fill chunk) stay in that file.
 */
#ifndef MWI_CORE_LIMITS_H
#define MWI_CORE_LIMITS_H

/* ---- credentials (src/dtls) ---- */

/* Largest private key file read (PEM, bytes): a P-256 key with parameters and comments is under
 * 1 KiB, so anything past 16 KiB is not a key file (and the buffer is wiped, so keep it small). */
#define MWI_KEY_FILE_MAX 16384
/* Largest CA file or buffer, and certificate, loaded (bytes): 64 KiB holds dozens of PEM
 * certificates. */
#define MWI_CA_FILE_MAX 65536
/** Largest CRL file read (a CRL grows with every revocation: room for some 20000 entries). */
#define MWI_CRL_FILE_MAX (1024u * 1024u)
/* Certificates of the CA file kept as pins (a leaf found among them is trusted as it is): a CA
 * file is a root, maybe an intermediate and a pinned gateway certificate; 8 is ample. */
#define MWI_CA_PINS_MAX 8

/* ---- what a peer may send (src/dtls/records.c) ---- */

/* Extensions in one ClientHello: legitimate ones carry about a dozen, so a hello with more than
 * 48 is dropped as an attack on a parser before wolfSSL reads it. */
#define MWI_HELLO_MAX_EXTENSIONS 48

/* ---- handshakes (src/client, src/gateway) ---- */

/* A handshake the gateway has not seen finish within this long is dropped and its place freed
 * for another: a half-open flood holds each place for at most this long. */
#define MWI_HALF_OPEN_MAX_MS 30000u
/* A device gives up a handshake after this long (wolfSSL's first five timers, 1+2+4+8+16 s,
 * rather than the 127 s wolfSSL would wait) and reconnects with backoff. Longer than the
 * gateway's limit, so that the gateway has always let go of a handshake the device still waits
 * on: a device never retries into its own stale half-open place. */
#define MWI_HANDSHAKE_MAX_MS 31000u
_Static_assert(MWI_HANDSHAKE_MAX_MS > MWI_HALF_OPEN_MAX_MS,
               "a device must wait longer for a handshake than the gateway keeps one half-open");

/* ---- the JSON and FHIR outputs (src/core) ---- */

/* A decimal whose exponent is beyond +-20 is written in exponent form (975e-30), still a JSON
 * number: writing it out in full would add up to 2^31 zeros to one line. */
#define MWI_JSON_EXPONENT_LIMIT 20

/* Bytes read of an audit record's strings, which may come from a peer (a certificate's name),
 * by both mw_audit_to_json and mw_audit_to_fhir: the two outputs of one record must agree.
 * An event name is a short identifier (MW_AUDIT_*: under 32), an address "[v6%scope]:port" is
 * under 64, a reason is a sentence (mw_error_detail_t's is 160) with room to spare; the
 * device is MW_ID_MAX + 1 (message.h). */
#define MWI_AUDIT_EVENT_MAX  64
#define MWI_AUDIT_PEER_MAX   64
#define MWI_AUDIT_REASON_MAX 512
/* Bytes of mw_strerror's text written into an audit line's "error" (the longest is under 80). */
#define MWI_AUDIT_ERROR_MAX 128

/* ---- storage (src/queue, src/port/posix) ---- */

/* Largest write unit (flash page) an mw_storage_t may declare, in bytes: the queue and the
 * sequence store each keep a buffer of this size on the stack, so it stays small; a region
 * declaring a larger unit is refused when it is opened. */
#define MWI_WRITE_UNIT_MAX 512u

#endif
