/* SPDX-License-Identifier: Apache-2.0 */
/**
 * @file audit.h
 * @brief Security-relevant events, as structured records for an audit log.
 *
 * Handshake failures (and why), identity mismatches, refused messages and
 * session establishment are reported through one callback on the device and
 * on the gateway. The record and its strings are valid only during the call;
 * copy what you keep. The callback runs on the thread that called poll.
 *
 * @code
 * static void on_audit(void *ctx, const mw_audit_event_t *ev)
 * {
 *     fprintf(ctx, "%s peer=%s device=%s reason=%s\n", ev->event, ev->peer, ev->device,
 * ev->reason);
 * }
 * @endcode
 */
#ifndef MEDWIRE_AUDIT_H
#define MEDWIRE_AUDIT_H

#include <stddef.h>

#include "medwire/err.h"

#ifdef __cplusplus
extern "C" {
#endif

/** Event names (the value of mw_audit_event_t::event). */
#define MW_AUDIT_HANDSHAKE_FAILED    "handshake_failed"
#define MW_AUDIT_SESSION_ESTABLISHED "session_established"
#define MW_AUDIT_SESSION_CLOSED      "session_closed"
#define MW_AUDIT_IDENTITY_MISMATCH   "identity_mismatch"
#define MW_AUDIT_BAD_MESSAGE         "bad_message"
#define MW_AUDIT_PEER_LIMIT          "peer_limit"
#define MW_AUDIT_REPLAY              "replay"
#define MW_AUDIT_STORE_FAILED        "store_failed"
#define MW_AUDIT_REKEY_STARTED       "rekey_started"
#define MW_AUDIT_SESSION_ROTATED     "session_rotated"
#define MW_AUDIT_COMMAND_REFUSED     "command_refused"
#define MW_AUDIT_COMMAND_EXPIRED     "command_expired"
#define MW_AUDIT_CRL_RELOADED        "crl_reloaded"
#define MW_AUDIT_CRL_RELOAD_FAILED   "crl_reload_failed"
#define MW_AUDIT_CREDENTIALS_RELOADED      "credentials_reloaded"
#define MW_AUDIT_CREDENTIALS_RELOAD_FAILED "credentials_reload_failed"
#define MW_AUDIT_COMM_LOSS           "communication_loss"
/** A device was issued a new certificate over EST (reason: the new serial), or refused one. */
#define MW_AUDIT_CERT_RENEWED    "certificate_renewed"
#define MW_AUDIT_RENEWAL_REFUSED "renewal_refused"
/** Gateway: a device's batch opened a new sequence space (storage created anew, or the device
 *  resynchronised); the earlier space is retired and never reopened. */
#define MW_AUDIT_SPACE_STARTED "sequence_space_started"
/** Gateway: some messages could not be judged delivered or duplicate (a number reused with
 *  other content, settled without a digest, or in a retired space); the device was asked to
 *  move to a new space and send them again. Device: the gateway asked, and it moved. */
#define MW_AUDIT_RESYNC "sequence_resync"
/** Device: the gateway in use could not be reached; the next attempt goes to the next gateway
 *  of mw_client_config_t.gateways (the reason names both). */
#define MW_AUDIT_FAILOVER "gateway_failover"
/* Raised by the device SDK about its offline queue (docs/queue.md). */
#define MW_AUDIT_QUEUE_EVICTED "queue_evicted" /**< a message removed unsent: queue full */
#define MW_AUDIT_QUEUE_CORRUPT "queue_corrupt" /**< a stored record failed authentication */
#define MW_AUDIT_QUEUE_TORN    "queue_torn"    /**< a write cut off by a power loss */

/** One audit record. Strings are never NULL ("" when unknown). */
typedef struct mw_audit_event {
    const char *event;  /**< one of the MW_AUDIT_* names */
    const char *peer;   /**< network address "HOST:PORT" */
    const char *device; /**< authenticated identity, "" before authentication */
    mw_err err;         /**< the medwire code, MW_OK for non-failures */
    int foreign;        /**< wolfSSL or libcoap code, 0 when none */
    const char *reason; /**< a sentence a person can act on */
} mw_audit_event_t;

/** Receives audit records. Must not call back into the object that raised it. */
typedef void mw_audit_fn(void *ctx, const mw_audit_event_t *event);

/** Writes @p ev as one JSON object (no newline): "event", "peer", "device", "reason", and for a
 * failure (err not MW_OK, or a foreign code) "error" (mw_strerror) and "code" (foreign). */
MW_API MW_NODISCARD mw_err mw_audit_to_json(const mw_audit_event_t *ev, char *out, size_t out_size,
                                            size_t *out_len);

#ifdef __cplusplus
}
#endif
#endif
