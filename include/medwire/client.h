/* SPDX-License-Identifier: Apache-2.0 */
/**
 * @file client.h
 * @brief The device SDK: send clinical data to a gateway over mutually authenticated DTLS.
 *
 * A client holds one secure session to one gateway at a time (it may list several and fail
 * over between them: mw_client_config_t.gateways). Messages handed to it get
 * a sequence number and wait in its queue until the gateway acknowledges
 * them; @ref mw_client_poll drives everything (handshake, sending, timers,
 * retransmission, reconnection) and never blocks longer than asked.
 *
 * Threads: a client is not thread-safe; use it from one thread (or lock).
 * Memory: mw_client_open allocates everything the client needs; nothing
 * below allocates after it returns, except a reconnection, which rebuilds the
 * DTLS session inside wolfSSL and frees it again: the heap is where it was
 * after every handshake, however many there are. The client also frees, after
 * each handshake, the tables of precomputed ECC points that wolfSSL keeps per
 * thread (about 0.8 MB each in a build with FP_ECC), at some CPU cost per
 * handshake: an application that uses wolfCrypt on the same thread loses them.
 *
 * @code
 * mw_client_config_t cfg;
 * mw_client_config_init(&cfg);
 * cfg.ca_file = "ca.crt"; cfg.cert_file = "pulseox-1.crt"; cfg.key_file = "pulseox-1.key";
 * cfg.gateway_name = "gateway"; cfg.gateway = "127.0.0.1:5684";
 * mw_client_t *c = NULL;
 * mw_error_detail_t why;
 * if (mw_client_open(&cfg, &c, &why) != MW_OK) { fprintf(stderr, "%s\n", why.reason); exit(1); }
 * mw_observation_t o = {.mdc_code = MW_MDC_PULS_OXIM_SAT_O2, .mantissa = 97, .unit = "%"};
 * uint64_t seq;
 * mw_err e = mw_client_send_observation(c, &o, &seq);
 * if (e != MW_OK) fprintf(stderr, "not queued: %s\n", mw_strerror(e));
 * while (mw_client_pending(c) > 0) {
 *     e = mw_client_poll(c, 100);
 *     if (e != MW_OK && e != MW_EAGAIN) break; // mw_client_last_error says why
 * }
 * mw_client_close(&c);
 * @endcode
 */
#ifndef MEDWIRE_CLIENT_H
#define MEDWIRE_CLIENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "medwire/audit.h"
#include "medwire/err.h"
#include "medwire/io.h"
#include "medwire/message.h"
#include "medwire/storage.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct mw_client mw_client_t;

/** Most gateways mw_client_config_t.gateways may list. */
#define MW_GATEWAYS_MAX 8

/**
 * Runs a command from the gateway (MW_CMD_SET_INTERVAL, MW_CMD_ACK_ALARM; the SDK runs
 * MW_CMD_ROTATE_KEYS itself) and says what became of it; the SDK sends the result to the
 * gateway. Called from mw_client_poll, only for commands that are new (never a replay),
 * not expired, and whose argument is in its range:
 * - MW_CMD_SET_INTERVAL: @c interval_ms in [MW_CMD_INTERVAL_MIN_MS, MW_CMD_INTERVAL_MAX_MS]
 *   (1 ms to 24 h);
 * - MW_CMD_ACK_ALARM: @c alarm_seq in [1, the last sequence number this client issued].
 * Outside it the SDK refuses the command without calling this: status MW_CMD_FAILED, the
 * detail naming the argument and its range ("interval_ms 0 not in 1..86400000"), and a
 * command_refused audit event. Anything narrower the device needs, this returns
 * MW_CMD_FAILED for. A command whose result would find no room in the queue (see
 * mw_client_stats_t.commands_deferred) waits, unrun, until the gateway sends it again.
 */
typedef mw_command_status mw_command_fn(void *ctx, const mw_command_t *cmd);

/** What became of one message the client had queued. */
typedef enum mw_fate {
    MW_FATE_DELIVERED = 1, /**< the gateway acknowledged it: delivered, or a proven duplicate */
    MW_FATE_EVICTED = 2,   /**< removed unsent to make room (a gap record reports it) */
    MW_FATE_DAMAGED = 3,   /**< found damaged at rest, never sent (a gap record reports it) */
    MW_FATE_REFUSED = 4,   /**< the gateway refused it for good (4.xx); @c reason says why */
} mw_fate;

/** One message's fate, as mw_fate_fn receives it. Strings are valid during the call only. */
typedef struct mw_fate_report {
    uint64_t seq;
    mw_msg_type type;     /**< MW_MSG_UNKNOWN where the queue no longer knows (evictions) */
    mw_priority priority; /**< always known */
    mw_fate fate;
    mw_err err;         /**< MW_OK for delivered ones */
    const char *reason; /**< never NULL; "" for delivered ones */
} mw_fate_report_t;

/** Tells the application, message by message, what became of what it queued: an alarm source
 *  learns that its alarm reached the hospital. Called from mw_client_poll and mw_client_send_*
 *  (evictions); must not call back into the client. */
typedef void mw_fate_fn(void *ctx, const mw_fate_report_t *report);

/**
 * The answer to mw_client_renew, called once from mw_client_poll: @p e MW_OK with the new
 * certificate (DER, @p cert_len bytes, valid during the call only), or why there is none:
 * MW_ECOAP_RESPONSE (the gateway refused: @p reason has its code and diagnostic, e.g. 4.03 for
 * a request for another name, or a certificate no longer the newest), MW_EAGAIN (the gateway
 * failed to issue, 5.00: try again later), MW_EDECODE (the answer is not a certificate). A 5.03
 * is not an answer: the CA has not decided yet, and the client sends the same request again
 * after the answer's Max-Age (60 s without one; between 1 s and an hour). Must not call back
 * into the client.
 */
typedef void mw_renewal_fn(void *ctx, mw_err e, const uint8_t *cert, size_t cert_len,
                           const char *reason);

/**
 * A CRL fetched from the gateway (mw_client_config_t.crl_refresh_s) that the client took: signed
 * by the CA, not past its nextUpdate, not older than the one in force. @p der (DER, @p len bytes)
 * is valid during the call only: store it to open the client with it next (crl_buf). Must not
 * call back into the client.
 */
typedef void mw_crl_fn(void *ctx, const uint8_t *der, size_t len);

/**
 * Makes a new key pair, kept by the application (a file, a PKCS#11 token, a secure element),
 * and the DER PKCS#10 request for @p device_id signed by it, into csr[0..cap) (cap is
 * MW_CSR_MAX) and *len: for the renewal on the device's schedule (renew_when_left_pct).
 * MW_OK; any other value skips this attempt. Must not call back into the client.
 */
typedef mw_err mw_make_csr_fn(void *ctx, const char *device_id, uint8_t *csr, size_t cap,
                              size_t *len);

/** A renewed certificate and its key, for mw_client_use_credentials: each from a file or from
 *  memory, as in mw_client_config_t (key_file may be a pkcs11: URI). */
typedef struct mw_credentials {
    const char *cert_file;
    const char *key_file;
    mw_blob_t cert_buf;
    mw_blob_t key_buf;
} mw_credentials_t;

/** Client configuration. Strings are copied by mw_client_open. */
typedef struct mw_client_config {
    /** PEM CA certificate(s) the gateway must chain to; required (or @c ca_buf) */
    const char *ca_file;
    /** this device's PEM certificate (role device); required (or @c cert_buf) */
    const char *cert_file;
    /** its PEM private key file; or an RFC 7512 URI naming the key in a PKCS#11 token, the key
     *  then never leaving it ("pkcs11:token=T;object=K?module-path=/usr/lib/softhsm/libsofthsm2.so
     *  &pin-source=/etc/medwire/pin"; also id=%01%02 for CKA_ID, and
     *  pin-value=PIN, which others may see in the configuration). The token's key must sign for
     *  cert_file's public key, checked at open. A token key is not a file: the ownership check
     *  (allow_shared_key_file) applies to its pin-source file. Required (or @c key_buf). */
    const char *key_file;
    /** Accept a key file that its group or others may read or write (refused by default, as
     *  ssh does: any local account that reads it can pose as this device). */
    bool allow_shared_key_file;
    /** The CA certificate(s) held in memory, PEM or DER (told apart by content: PEM holds a
     *  "-----BEGIN" line), instead of @c ca_file: set one of the two, never both. DER holds
     *  one certificate; PEM any number. Read during mw_client_open only. */
    mw_blob_t ca_buf;
    /** This device's certificate in memory, PEM or DER, instead of @c cert_file (one of the
     *  two). Read during mw_client_open only. */
    mw_blob_t cert_buf;
    /** This device's private key in memory (ECDSA P-256; PEM, or DER as SEC 1 or PKCS#8),
     *  instead of @c key_file (one of the two). Checked against the certificate as a key file
     *  is; the copies the library makes are wiped. The caller's buffer is left as it is. */
    mw_blob_t key_buf;
    /** The name the gateway's certificate must carry; required. With @c gateways, every
     *  gateway of the list must present a certificate with this name. */
    const char *gateway_name;
    /** "HOST:PORT" of the gateway; required unless gateway_addr or gateways is set. A list of
     *  one: never set both this and @c gateways (MW_ECONFIG). */
    const char *gateway;
    mw_addr_t gateway_addr; /**< used when gateway and gateways are NULL */
    /** Several gateways of one site, "HOST:PORT" each (@c n_gateways of them, 1 to
     *  MW_GATEWAYS_MAX), for failover: the client connects to the first; when the one it uses
     *  cannot be reached (no handshake completes, or CoAP gives up on a request) the next
     *  attempt goes to the next one, round robin, on the reconnection backoff. Every address is
     *  resolved by mw_client_open (a bad one is named in the error). The client stays with a
     *  gateway that works (it does not go back to the first). What was queued or in flight
     *  goes again to the new gateway; without a store the gateways share, one may receive a
     *  message the other delivered but whose acknowledgement was lost: a consumer deduplicates
     *  by device, space and seq (docs/protocol.md 6). A session is resumed only with the
     *  gateway that made it. Needs the POSIX port (names are resolved by it; MW_PORT=none takes
     *  one gateway_addr); a custom @c transport receives each gateway's resolved address as
     *  the destination of its sends. The array and its strings are read during open only.
     *  For example: static const char *const gws[] = {"10.0.0.5:5684", "10.0.0.6:5684"};
     *  cfg.gateways = gws; cfg.n_gateways = 2; */
    const char *const *gateways;
    size_t n_gateways;
    const char *bind; /**< local "HOST:PORT" for the UDP socket; NULL: any */
    /** custom transport; send == NULL: a UDP socket is opened (required with MW_PORT=none) */
    mw_transport_t transport;
    mw_clock_t clock;        /**< now_ms == NULL: the system clock (required with MW_PORT=none) */
    mw_random_t random;      /**< fill == NULL: wolfCrypt's CSPRNG (required with MW_PORT=none) */
    uint32_t queue_capacity; /**< messages held until acknowledged (default 256) */
    /** Sequence number of the first message in a new sequence space (0 means 1); with
     *  @c storage, a floor the persisted sequence never goes below. Numbers belong to a
     *  sequence space chosen at random when the storage is created (at every open without
     *  @c storage), so a device that lost its storage or restarts without any may start again
     *  at 1: the gateway tells the spaces apart (docs/protocol.md 5b). */
    uint64_t first_seq;
    /** Persistent region for the offline queue and the sequence numbers (docs/queue.md): a
     *  file (mw_storage_file_open), a flash partition, anything meeting storage.h. The first
     *  part holds the sequence store, the rest the queue; it must hold at least
     *  mw_client_storage_size() bytes. The table is copied; its context must outlive the
     *  client. NULL: both in RAM, lost at a power cut or restart. */
    const mw_storage_t *storage;
    /** AES key for the queue at rest, 16 or 32 bytes, from the vendor (never derived from the
     *  TLS key); required with @c storage (without it a random key is made). Copied. */
    const uint8_t *queue_key;
    size_t queue_key_len;
    /** Group commit: 0 (default) makes every message durable before mw_client_send_*
     *  returns; N > 1 syncs once N operations are unsynced or @c group_commit_ms (default
     *  100) after the oldest: a power cut loses at most that window (docs/queue.md). */
    uint32_t group_commit_n;
    uint32_t group_commit_ms;
    uint32_t ack_timeout_ms; /**< CoAP ACK_TIMEOUT (default 2000) */
    uint8_t max_retransmit;  /**< CoAP MAX_RETRANSMIT (default 4) */
    uint8_t nstart;          /**< CoAP NSTART: requests in flight at once, 1-4 (default 1) */
    /** Messages one batch carries at most, 1-16 (0: 16). The client holds this many decoded
     *  messages (232 bytes each on a 64-bit host) while it encodes a batch. */
    uint8_t batch_max;
    /** Largest batch body sent block-wise (RFC 7959 Block1), 0: 4096 (the gateway's default
     *  max_body). The client holds a buffer of this size; a value no larger than one record's
     *  room (about 1,300 bytes) sends each batch in one record and holds none. */
    uint16_t body_max;
    uint32_t keepalive_ms;   /**< idle time before a CoAP ping checks the link; 0: never */
    /* Key rotation (a fresh full handshake, make-before-break); 0 disables each limit. */
    uint64_t rekey_after_ms;      /**< session age */
    uint64_t rekey_after_records; /**< datagrams sent in the session */
    uint64_t rekey_after_bytes;   /**< bytes sent in the session */
    /** Retransmissions of one request after which a new session is tried beside the current
     *  one (a gateway that restarted forgot our session); default 2, 0: never. */
    uint8_t rekey_after_retransmits;
    /** First reconnection delay (default 1000); also the first wait before sending again
     *  after an answer that settled nothing (stats useless_answers). */
    uint32_t reconnect_min_ms;
    uint32_t reconnect_max_ms; /**< longest delay of either (default 60000) */
    mw_audit_fn *audit;        /**< optional */
    void *audit_ctx;
    mw_command_fn *on_command; /**< optional: without it those commands are "unsupported" */
    void *on_command_ctx;
    mw_fate_fn *on_fate; /**< optional: each message's fate (delivered, evicted, ...) */
    void *on_fate_ctx;
    /** The CRL of the CA (PEM; 'medwire-pki crl' writes it): the gateway's certificate is
     *  checked against it on every full and resumed handshake, and a revoked one is refused
     *  (MW_ECERT_REVOKED, with the gateway's name). NULL: the gateway's revocation is not
     *  checked. A CRL not signed by the CA, or past its nextUpdate, fails mw_client_open
     *  (MW_ECERT_LOAD); one that passes its nextUpdate later refuses every gateway until a new
     *  one is given (reopen the client). Needs a wolfSSL with CRL support (HAVE_CRL, as
     *  Debian's): the Cortex-M4 configuration has none, and refuses it (MW_ECONFIG). */
    const char *crl_file;
    /** The CRL in memory, PEM or DER, instead of @c crl_file (one of the two). Read during
     *  mw_client_open only. */
    mw_blob_t crl_buf;
    /** Where the answer to mw_client_renew goes; required to renew. */
    mw_renewal_fn *on_renewal;
    void *on_renewal_ctx;
    /** Fetch the CA's current CRL from the gateway (GET /crl) once a session is up, and again
     *  every so many seconds while connected; 0: never. The CRL is taken only when the CA signed
     *  it (the gateway cannot forge one), it is not past its nextUpdate and not older than the
     *  CRL in force; it then checks every later handshake, and a gateway it revokes loses its
     *  session at once (MW_ECERT_REVOKED in mw_client_last_error). Needs a wolfSSL with CRL
     *  support. */
    uint32_t crl_refresh_s;
    /** Renew on the device's own schedule: once a session is up and the certificate has this
     *  share of its lifetime (notBefore to notAfter, by the device's clock) left or less, in
     *  percent (1-99; 20: the last fifth), make_csr is asked for a new key's request, which
     *  goes as mw_client_renew's would. The certificate comes to on_renewal (required), which
     *  stores the new pair, keeping the old one, and calls mw_client_use_credentials. An
     *  attempt that ends without a switch is made again an hour later. 0: never. */
    uint8_t renew_when_left_pct;
    mw_make_csr_fn *make_csr;
    void *make_csr_ctx;
    /** Told each CRL taken, to store it (optional). */
    mw_crl_fn *on_crl;
    void *on_crl_ctx;
} mw_client_config_t;

/** Counters and the state of the link. */
typedef struct mw_client_stats {
    uint64_t messages_queued;       /**< accepted by mw_client_send_* */
    uint64_t messages_acked;        /**< acknowledged by the gateway and forgotten */
    uint64_t messages_pending;      /**< waiting for acknowledgement now */
    uint64_t oldest_pending_age_ms; /**< age of the oldest unacknowledged message, 0 if none */
    uint64_t requests_sent;         /**< CoAP requests, first transmissions */
    uint64_t retransmissions;       /**< CoAP retransmissions */
    uint64_t handshakes;            /**< completed handshakes (rotations included) */
    uint64_t rotations;             /**< sessions replaced by a new one while connected */
    uint64_t resumptions;           /**< reconnections that resumed the session by ID */
    uint64_t handshake_failures;
    uint64_t datagrams_sent, datagrams_received;
    uint64_t bytes_sent, bytes_received; /**< UDP payload bytes, handshakes included */
    bool connected;
    uint64_t next_seq;
    uint32_t queue_capacity;   /**< messages the queue holds */
    uint64_t messages_evicted; /**< removed unsent to make room (each reported by a gap record) */
    uint64_t messages_corrupt; /**< found damaged at rest, never sent (reported likewise) */
    uint64_t gap_records;      /**< gap records queued for the gateway */
    /** Times the gateway asked the device to move to a new sequence space (it could not judge
     *  some numbers: lost or rolled-back storage, a forged low-water mark), and it did. What
     *  the device held then was sent again marked as possible duplicates. */
    uint64_t resyncs;
    uint64_t space;            /**< the current sequence space */
    uint64_t messages_refused; /**< refused for good by the gateway (4.xx), each reported */
    /** Of messages_pending, the observations (the rest: alarms, status reports, command
     *  results, gap records). */
    uint64_t observations_pending;
    /** Answers that settled none of the messages their request carried: an RST, a 5.xx, an
     *  Ack that does not decode, an Ack covering none of them (without a resynchronisation).
     *  After each
     *  the next batch waits, with backoff (docs/protocol.md 3), instead of going again at once. */
    uint64_t useless_answers;
    /** Commands from the gateway left unrun, for now, because their result would have had no
     *  room: command results take at most an eighth of queue_capacity at once, and never a
     *  place a message would have to be evicted from. The gateway sends them again; each
     *  runs once there is room (docs/protocol.md 7). */
    uint64_t commands_deferred;
    /** The gateway's wall clock minus this device's (its wall clock, or its monotonic clock
     *  without one), as last measured from an acknowledgement, half the round trip added
     *  (docs/protocol.md 4b); meaningful once @c gateway_time_updates > 0. While the device's
     *  own clock is not synchronised, its messages are stamped with its clock plus this offset
     *  and marked synchronised. */
    int64_t gateway_time_offset_ms;
    uint64_t gateway_time_updates; /**< acknowledgements that carried the gateway's time */
    /** Messages stamped with the gateway's time because the device's own clock was not
     *  synchronised (counted when queued). */
    uint64_t messages_stamped_by_gateway_time;
    /** Times the client moved to the next gateway of mw_client_config_t.gateways because the
     *  one it used could not be reached (mw_client_last_error names it). */
    uint64_t failovers;
    /** The gateway the client uses or tries now: its index in mw_client_config_t.gateways
     *  (0 with a single gateway). */
    uint32_t gateway_index;
    /** When this device's certificate expires (notAfter), in seconds since the epoch; 0 if it
     *  cannot be read. After it the gateway refuses the device: renew it before. */
    int64_t cert_not_after_s;
    /** Certificates the gateway issued to mw_client_renew, and when the last one came (the
     *  device's time as its messages are stamped, ms since the epoch; 0 if unknown). */
    uint64_t renewals;
    uint64_t last_renewal_ms;
    /** CRLs fetched from the gateway and taken (crl_refresh_s), and those refused (not signed
     *  by the CA, expired, older than the one in force, too large: mw_client_last_error says
     *  why); the nextUpdate of the CRL in force (seconds since the epoch; 0: none). */
    uint64_t crls_taken;
    uint64_t crls_refused;
    int64_t crl_next_update_s;
    /** Sessions made with a renewed pair that replaced the pair in use
     *  (mw_client_use_credentials). */
    uint64_t credential_switches;
} mw_client_stats_t;

/** Fills @p cfg with defaults (all pointers NULL). */
MW_API void mw_client_config_init(mw_client_config_t *cfg);

/**
 * Bytes of storage a client needs for @p capacity messages on a medium with these units
 * (erase_unit 1 and write_unit 1 for a file): the sequence store and twice the smallest queue
 * region, so that compaction stays rare when the queue is full.
 * @return ::MW_OK; ::MW_EINVAL (capacity 0, units not powers of two).
 */
MW_API MW_NODISCARD mw_err mw_client_storage_size(uint32_t capacity, uint32_t erase_unit,
                                                  uint32_t write_unit, uint32_t *out_size);

/**
 * Creates a client: loads and checks the credentials, opens the transport and the queue
 * (recovering what @c storage holds: every intact message is sent again, damaged ones are
 * reported through the audit callback and a gap record). Sends nothing yet.
 * @return MW_OK; MW_EINVAL (NULL argument); MW_ECONFIG (a required setting is
 *         missing: CA, certificate, key, gateway name or address; both gateway and gateways
 *         set, n_gateways 0 or above MW_GATEWAYS_MAX; storage without a queue key,
 *         a key of the wrong length or not the one the queue was written with, a region too
 *         small); MW_EIO (the storage cannot be read or holds no queue);
 *         MW_ECERT_LOAD (a file cannot be loaded, key and certificate do not match, or
 *         others may read the key: see allow_shared_key_file); MW_EADDR; MW_ETRANSPORT;
 *         MW_ENOMEM. @p out_detail (may be NULL) says which and why.
 */
MW_API MW_NODISCARD mw_err mw_client_open(const mw_client_config_t *cfg, mw_client_t **out_client,
                                          mw_error_detail_t *out_detail);

/**
 * Queues an observation; @p out_seq (may be NULL) receives its sequence number. With
 * @c storage and no group commit it is durable when this returns MW_OK.
 * A @c time_ms of 0 is replaced by the clock's wall time.
 * When the queue is full, the oldest message of the lowest priority present (never above this
 * one's) is evicted to make room: an audit event and a gap record tell the gateway.
 * @c source is empty unless this device is a bridge speaking for another (message.h).
 * @return MW_OK; MW_EINVAL (bad field: too long or non-printable unit, bad status, a source
 *         with a control or non-ASCII character, a space at either end, or no NUL within
 *         its array: nothing is queued);
 *         MW_EFULL (queue full of higher priorities: nothing was queued);
 *         MW_EIO (the storage failed: the client must be reopened; last_error says why).
 */
MW_API MW_NODISCARD mw_err mw_client_send_observation(mw_client_t *c, const mw_observation_t *obs,
                                                      uint64_t *out_seq);
/** Queues an alarm (sent before observations). Errors as mw_client_send_observation. */
MW_API MW_NODISCARD mw_err mw_client_raise_alarm(mw_client_t *c, const mw_alarm_t *alarm,
                                                 uint64_t *out_seq);
/** Queues a device status report. Errors as mw_client_send_observation. */
MW_API MW_NODISCARD mw_err mw_client_send_status(mw_client_t *c, const mw_device_status_t *st,
                                                 uint64_t *out_seq);

/**
 * Drives the link for at most @p timeout_ms (0: do what is due, do not wait).
 * @return MW_OK when something happened, MW_EAGAIN when nothing did; a
 *         fatal error when the link cannot work as configured (the gateway's
 *         certificate is untrusted, has the wrong name or role, the gateway
 *         refused ours, or refused our messages): polling again returns the
 *         same error. A gateway that cannot be reached is not fatal: the
 *         client retries with backoff; mw_client_last_error says so.
 * Built without the POSIX port (MW_PORT=none) it never waits: it does what is due and
 * returns; call it again when the transport has data or mw_client_next_timeout_ms has passed
 * (docs/porting.md).
 */
MW_API MW_NODISCARD mw_err mw_client_poll(mw_client_t *c, int timeout_ms);

/** Largest PKCS#10 request mw_client_renew sends (it goes in one CoAP request; a P-256 request
 *  for a medwire name is about 230 bytes). */
#define MW_CSR_MAX 1024

/**
 * Asks the gateway for a new certificate for this device (EST simple re-enroll, RFC 9148:
 * POST /.well-known/est/sren) over the session, connecting if need be. @p csr is a DER PKCS#10
 * request for this device's name, signed by the new key, which the caller made and keeps
 * (medwire-pki's csr code makes one; the library never sees the key). Copied. The answer comes
 * to on_renewal during mw_client_poll; until then the request goes again over each new session
 * (the gateway answers a repeated request with the certificate it issued for that key). The
 * client goes on with its current certificate: store the new one with its key, keeping the old
 * pair until the new one has been used, and open the client with them next.
 * @return MW_OK; MW_EINVAL (no on_renewal configured, or no request); MW_ETOOBIG (more than
 *         MW_CSR_MAX bytes); MW_EAGAIN (a renewal is already waiting for its answer);
 *         MW_ENOMEM.
 */
MW_API MW_NODISCARD mw_err mw_client_renew(mw_client_t *c, const uint8_t *csr, size_t csr_len);

/**
 * Switches to a renewed certificate and key, make-before-break. The pair is loaded and checked
 * now: the key must match the certificate, and the certificate name this device. Then a full
 * handshake with it runs beside the session (connecting first if need be, with the pair in
 * use) and replaces the session once up: nothing queued or in flight is lost, and later
 * sessions use the new pair. If the gateway refuses the new pair, the session and the pair in
 * use go on, and mw_client_last_error says why. May be called from on_renewal.
 * @return MW_OK (the switch follows); MW_EIDENTITY (another device's certificate);
 *         MW_ECERT_LOAD (which file, why: also a key file others may read) and the others of
 *         mw_client_open for the files;
 *         MW_EAGAIN (a switch is already waiting); MW_EINVAL.
 */
MW_API MW_NODISCARD mw_err mw_client_use_credentials(mw_client_t *c, const mw_credentials_t *cred);

/** Asks for a key rotation: a fresh full handshake beside the current session, which it
 *  replaces once up (make-before-break); nothing in flight is lost. Non-blocking. */
MW_API MW_NODISCARD mw_err mw_client_rotate_keys(mw_client_t *c);

/** Closes the session (close_notify) and connects again at the next poll, resuming the session
 *  by ID when the gateway still holds it (an abbreviated handshake, no certificates sent).
 *  For a device whose address changed (a new network, a new DHCP lease): DTLS 1.2 without
 *  Connection ID binds a session to the address. Nothing queued or in flight is lost; what
 *  was in flight goes again. Non-blocking. @return MW_OK; MW_EINVAL; the fatal error. */
MW_API MW_NODISCARD mw_err mw_client_reconnect(mw_client_t *c);

/** Messages not yet acknowledged. */
MW_API uint64_t mw_client_pending(const mw_client_t *c);

/**
 * Whether the message numbered @p seq (in the current sequence space, mw_client_stats' @c space)
 * is held in the queue, not yet acknowledged. For an application that records, before each
 * mw_client_send_*, the number the message is about to get (@c next_seq of mw_client_stats):
 * after a crash, asked right after mw_client_open and before the first mw_client_poll (nothing
 * has been acknowledged since the crash), it tells whether that message made it into the queue,
 * so that it is queued neither twice nor not at all (medwire-bridge does this).
 */
MW_API bool mw_client_holds(const mw_client_t *c, uint64_t seq);
/** Fills @p out. */
MW_API void mw_client_stats(const mw_client_t *c, mw_client_stats_t *out);
/** The last error met (MW_OK if none), with the foreign code and a reason. */
MW_API void mw_client_last_error(const mw_client_t *c, mw_error_detail_t *out);
/** The identity from this device's certificate (its common name). */
MW_API const char *mw_client_device_id(const mw_client_t *c);
/** A descriptor to wait on in a caller's own loop, or -1. */
MW_API int mw_client_fd(const mw_client_t *c);
/** Milliseconds until mw_client_poll has work due (timers), or -1 if none. */
MW_API int mw_client_next_timeout_ms(const mw_client_t *c);

/** Closes the session and frees the client; sets *c to NULL. Unacknowledged messages stay in
 *  @c storage for the next open (without storage they are lost). */
MW_API void mw_client_close(mw_client_t **c);

#ifdef __cplusplus
}
#endif
#endif
