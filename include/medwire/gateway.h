/* SPDX-License-Identifier: Apache-2.0 */
/**
 * @file gateway.h
 * @brief The hospital side: accept many devices on one UDP socket, deliver their messages to a
 * sink.
 *
 * One gateway serves every device through one transport and one loop
 * (@ref mw_gateway_poll). Each device is authenticated by its certificate
 * (role device, chained to the configured CA); its identity is the
 * certificate's common name, and every message it sends must carry that id.
 * No state is kept for a peer before it returns a valid DTLS cookie.
 *
 * Threads: not thread-safe; one thread polls. Sink and audit callbacks run
 * inside mw_gateway_poll.
 *
 * @code
 * static mw_err sink(void *ctx, const mw_message_t *m)
 * {
 *     char line[1024]; size_t n;
 *     if (mw_message_to_json(m, line, sizeof line, &n) != MW_OK) return MW_EIO;
 *     return fprintf(ctx, "%s\n", line) < 0 ? MW_EIO : MW_OK; // acknowledged once written
 * }
 * mw_gateway_config_t cfg;
 * mw_gateway_config_init(&cfg);
 * cfg.ca_file = "ca.crt"; cfg.cert_file = "gateway.crt"; cfg.key_file = "gateway.key";
 * cfg.listen = "0.0.0.0:5684"; cfg.sink = sink; cfg.sink_ctx = stdout;
 * mw_gateway_t *gw = NULL;
 * mw_error_detail_t why;
 * if (mw_gateway_create(&cfg, &gw, &why) != MW_OK) {
 *     fprintf(stderr, "%s\n", why.reason);
 *     exit(1);
 * }
 * while (running) {
 *     mw_err e = mw_gateway_poll(gw, 1000);
 *     if (e != MW_OK && e != MW_EAGAIN) break; // the socket failed
 * }
 * mw_gateway_destroy(&gw);
 * @endcode
 */
#ifndef MEDWIRE_GATEWAY_H
#define MEDWIRE_GATEWAY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "medwire/audit.h"
#include "medwire/err.h"
#include "medwire/io.h"
#include "medwire/message.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct mw_gateway mw_gateway_t;

/**
 * Receives one accepted message. Return MW_OK once it is stored: only then is
 * it acknowledged to the device. Any other value leaves it unacknowledged (the
 * device sends it again). Each (device, seq) is offered once.
 */
typedef mw_err mw_sink_fn(void *ctx, const mw_message_t *msg);

/**
 * Optional: makes every message given to the sink since the last call durable, and returns
 * a checkpoint (for a file: its length) that the gateway stores in the same commit as the
 * replay state. Called once per poll, before any acknowledgement leaves. A failure
 * acknowledges nothing; the gateway then calls mw_sink_recover_fn with the last checkpoint.
 */
typedef mw_err mw_sink_commit_fn(void *ctx, uint64_t *out_checkpoint);
/**
 * Optional: returns the sink to @p checkpoint, dropping what was written after it (it was
 * never acknowledged, so the devices will send it again). Called at mw_gateway_create with
 * the stored checkpoint, and after a failed commit. This is what makes delivery exactly
 * once across a crash.
 */
typedef mw_err mw_sink_recover_fn(void *ctx, uint64_t checkpoint);

/** Largest certificate (DER) an EST issuer may return: the answer, wrapped in PKCS#7, must fit
 *  one CoAP block, as a POST's answer is not sent block-wise. A P-256 device certificate of
 *  medwire's profile is about 500 bytes. */
#define MW_EST_CERT_MAX 960

/** A device's request for a new certificate over its session (EST simple re-enroll, RFC 9148:
 *  POST /.well-known/est/sren), once the gateway has checked it: a PKCS#10 request with an
 *  ECDSA P-256 key, signed by that key, whose one common name is the session's identity, and
 *  asking for nothing a device may not have (no CA, no extended key usage but clientAuth). */
typedef struct mw_est_request {
    const char *device_id; /**< the session's identity, and the request's common name */
    const uint8_t *csr;    /**< the PKCS#10 request, DER */
    size_t csr_len;
    const uint8_t *cert; /**< the certificate the session was authenticated with, DER */
    size_t cert_len;
} mw_est_request_t;

/**
 * Issues the device certificate @p req asks for: its DER into out[0..cap) (cap is
 * MW_EST_CERT_MAX) and *out_len. Called from mw_gateway_poll: keep it short, or hand the
 * request on and answer MW_EAGAIN. MW_OK; a refusal: MW_EIDENTITY (not this session's to renew:
 * revoked, superseded, unknown to the CA; 4.03 Forbidden); MW_EAGAIN (handed on, not decided:
 * 5.03 Service Unavailable with Max-Age est_retry_after_s, neither counted nor audited; the
 * device sends the same request again then, and the issuer answers it from what it
 * remembered); any other: 5.00. @p reason (@p reason_cap bytes) takes a sentence for the audit
 * trail: on success what was issued (e.g. the serial), on refusal why.
 */
typedef mw_err mw_est_issue_fn(void *ctx, const mw_est_request_t *req, uint8_t *out, size_t cap,
                               size_t *out_len, char *reason, size_t reason_cap);

typedef struct mw_gateway_config {
    /** PEM CA that device certificates must chain to; required (or @c ca_buf) */
    const char *ca_file;
    /** the gateway's PEM certificate (role gateway); required (or @c cert_buf) */
    const char *cert_file;
    /** its PEM private key file; or an RFC 7512 URI naming the key in a PKCS#11 token, the key
     *  then never leaving it ("pkcs11:token=T;object=K?module-path=/usr/lib/softhsm/libsofthsm2.so
     *  &pin-source=/etc/medwire/pin"; also id=%01%02 for CKA_ID, and
     *  pin-value=PIN, which others may see in the configuration). The token's key must sign for
     *  cert_file's public key, checked at open. A token key is not a file: the ownership check
     *  (allow_shared_key_file) applies to its pin-source file. Required. */
    const char *key_file;
    /** Accept a key file that its group or others may read or write (refused by default, as
     *  ssh does: any local account that reads it can pose as the gateway). Also at reload. */
    bool allow_shared_key_file;
    /** PEM CRL of the CA (medwire-pki revoke/crl). Enforced on every full handshake and
     *  on resumption. NULL: revocation is not checked. An expired CRL refuses everyone. */
    const char *crl_file;
    /** The CA certificate(s) in memory, PEM or DER (PEM holds a "-----BEGIN" line), instead of
     *  @c ca_file: one of the two, never both. Copied: a credentials reload loads the copy
     *  again (files are read again). */
    mw_blob_t ca_buf;
    /** The gateway's certificate in memory, PEM or DER, instead of @c cert_file. Copied. */
    mw_blob_t cert_buf;
    /** The gateway's private key in memory (ECDSA P-256, PEM or DER), instead of @c key_file.
     *  Copied, and the copy wiped when the gateway is destroyed. */
    mw_blob_t key_buf;
    /** The CRL in memory, PEM or DER, instead of @c crl_file. Copied; mw_gateway_reload_crl
     *  with a file replaces it. */
    mw_blob_t crl_buf;
    const char *listen;       /**< "HOST:PORT" to bind; used when transport.send is NULL */
    mw_transport_t transport; /**< custom transport; send == NULL: UDP on listen */
    mw_clock_t clock;         /**< now_ms == NULL: the system clock */
    /** Peers kept at once: sessions and handshakes in progress (default 4096). A ClientHello
     *  from a new address beyond it is dropped before any work. What one idle session costs
     *  is measured by bench/bench_sessions.c (README, "Gateway"): budget max_peers times
     *  that. */
    uint32_t max_peers;
    /** A session that has received no datagram for this long (ms) is closed (close_notify)
     *  and freed; the device reconnects when it next sends. mw_gateway_config_init sets 10
     *  minutes; 0: never. Checked about once a second. */
    uint64_t idle_timeout_ms;
    /** A device silent longer than this (ms) gets a MW_MSG_COMM_LOSS message in the sink,
     *  and a MW_MSG_COMM_RESTORED one when it is heard from again; 0: off. */
    uint64_t comm_loss_ms;
    /** Handshakes in progress (valid cookie, not finished) at once; more wait (default 256).
     *  One that does not finish within 30 s is dropped. */
    uint32_t max_half_open;
    /** Datagrams per second one peer may send (burst twice that); excess is dropped
     *  (default 200). It holds per source address and, once the peer is authenticated, per
     *  identity across all the addresses and ports it uses. */
    uint32_t rate_limit_per_s;
    uint32_t max_body;        /**< largest block-wise (Block1) request body, bytes (default 4096);
                                   a larger one is refused with 4.13 and never buffered */
    mw_sink_fn *sink;         /**< required */
    mw_sink_commit_fn *sink_commit;   /**< optional, see mw_sink_commit_fn */
    mw_sink_recover_fn *sink_recover; /**< optional, see mw_sink_recover_fn */
    void *sink_ctx;
    /** SQLite database (WAL) for the accepted-message journal and each device's replay
     *  state; NULL keeps them in memory only, so a restarted gateway would deliver
     *  again what devices resend. A new file is created with mode 0600 (its -wal and -shm
     *  files take the same mode). The gateway holds the file locked (flock) until
     *  mw_gateway_destroy: mw_gateway_create fails with MW_EIO, and a reason naming the file,
     *  while another gateway uses it. A postgresql:// or postgres:// URL (libpq's) is a
     *  PostgreSQL database instead, which several gateways may share (docs/deployment.md);
     *  MW_EIO if the library was built without libpq. */
    const char *store_path;
    mw_audit_fn *audit; /**< optional */
    void *audit_ctx;
    /** Optional: microseconds on a monotonic clock (ctx is clock.ctx), to time store commits
     *  (mw_gateway_stats_t commit_us_*). NULL: the system's monotonic clock when @c clock is
     *  the system clock, else clock.now_ms times 1000 (a fake clock then times commits too). */
    uint64_t (*now_us)(void *ctx);
    /* Admission (docs/SECURITY-MODEL.md 5): what one source host or identity may take. */
    /** Handshakes in progress from one host (an IPv4 address or an IPv6 /64) at once; more
     *  are dropped after the cookie exchange (default 16; devices behind one NAT share it). */
    uint32_t max_half_open_per_host;
    /** Handshakes one host may start per second, burst twice that (default 20). */
    uint32_t handshakes_per_host_per_s;
    /** Handshakes one identity may complete per minute (default 60), burst a sixth of that
     *  and at least 10: more are closed at once, however many addresses or ports it uses. */
    uint32_t handshakes_per_identity_per_min;
    /** Audit lines of one kind about one identity per minute (default 20); the rest become
     *  one line with their count. */
    uint32_t audit_per_identity_per_min;
    /** With a PostgreSQL @c store_path (postgresql://...) that several gateways share: this
     *  gateway's name there, under which its sink checkpoint is kept (each gateway has its own
     *  output); NULL is "". Give every gateway on one database a name of its own, the same
     *  across its restarts. Unused with SQLite. */
    const char *store_instance;
    /** EST over CoAP (RFC 9148) on the DTLS endpoint: devices renew their certificates over
     *  their sessions. With it, GET /.well-known/est/crts answers the CA certificates (ca_file
     *  or ca_buf) and POST /.well-known/est/sren a device's PKCS#10 request, checked as
     *  mw_est_request_t says and then given to this function. NULL: neither is served (4.04). */
    mw_est_issue_fn *est_issue;
    void *est_ctx;
    /** When est_issue answers MW_EAGAIN (the request is with a CA that answers later), the
     *  device is answered 5.03 with this Max-Age, in seconds, and asks again then (RFC 9148
     *  5). 0: 10 s. */
    uint32_t est_retry_after_s;
} mw_gateway_config_t;

/** Why a handshake failed, for mw_gateway_stats_t.handshake_failures_by_reason. */
typedef enum mw_gateway_hs_reason {
    MW_GATEWAY_HSR_OTHER = 0,         /**< any other DTLS failure */
    MW_GATEWAY_HSR_EXPIRED = 1,       /**< the device's certificate has expired */
    MW_GATEWAY_HSR_NOT_YET_VALID = 2, /**< ... is not valid yet */
    MW_GATEWAY_HSR_UNTRUSTED = 3,     /**< ... does not chain to the CA */
    MW_GATEWAY_HSR_REVOKED = 4,       /**< ... is revoked (or the CRL is missing/expired) */
    MW_GATEWAY_HSR_NO_CERT = 5,       /**< the device sent no certificate */
    MW_GATEWAY_HSR_ROLE = 6,          /**< not a device certificate (EKU) */
    MW_GATEWAY_HSR_IDENTITY = 7,      /**< no usable identity (CN) */
    MW_GATEWAY_HSR_CIPHER = 8,        /**< no cipher suite in common */
    MW_GATEWAY_HSR_PEER_ALERT = 9,    /**< the device aborted with an alert */
    MW_GATEWAY_HSR_TIMEOUT = 10,      /**< not completed in time */
} mw_gateway_hs_reason;
#define MW_GATEWAY_HSR_COUNT 11

/** Upper bounds (microseconds) of the store commit latency buckets; one more bucket counts
 *  the commits slower than the last bound. */
#define MW_GATEWAY_COMMIT_BOUNDS_US                                                               \
    {100, 250, 500, 1000, 2500, 5000, 10000, 25000, 50000, 100000, 250000, 500000, 1000000}
#define MW_GATEWAY_COMMIT_BUCKETS 14

typedef struct mw_gateway_stats {
    uint64_t sessions;           /**< established now */
    uint64_t handshakes_started; /**< with a valid cookie */
    uint64_t handshakes_completed;
    uint64_t handshakes_failed;
    uint64_t hello_verify_sent;  /**< cookie-less ClientHellos answered statelessly */
    uint64_t messages_delivered; /**< given to the sink and accepted */
    uint64_t duplicates;         /**< acknowledged again, not delivered again */
    uint64_t replays;            /**< settled numbers sent again that could not be judged */
    uint64_t refused;            /**< batches refused (identity, malformed) */
    uint64_t coap_duplicates;    /**< CoAP duplicates answered from the cache (RFC 7252 4.5) */
    uint64_t bodies_too_large;   /**< Block1 bodies refused with 4.13 */
    uint64_t store_failures;     /**< commits that failed (nothing was acknowledged) */
    uint64_t peers;            /**< entries in the peer table (sessions and handshakes) */
    uint64_t half_open;        /**< handshakes in progress */
    uint64_t peer_limit_drops; /**< ClientHellos dropped: table or half-open limit reached */
    /** Datagrams dropped by the rate limit (rate_limit_per_s), which holds per peer address
     *  and, once a session is established, per identity across all its addresses. */
    uint64_t rate_limited;
    uint64_t datagrams_received, datagrams_sent, bytes_received, bytes_sent;
    /* Added for operations (metrics); new fields go at the end. */
    /** handshakes_failed, split by mw_gateway_hs_reason */
    uint64_t handshake_failures_by_reason[MW_GATEWAY_HSR_COUNT];
    uint64_t gap_records;        /**< MW_MSG_GAP messages delivered */
    uint64_t evictions_reported; /**< messages devices report evicted (sum of their gap counts) */
    uint64_t commits;            /**< store commits timed (polls that had something to commit) */
    uint64_t commit_us_sum;      /**< their total duration, microseconds */
    /** commits per latency bucket (not cumulative): bucket i counts those at most
     *  MW_GATEWAY_COMMIT_BOUNDS_US[i] and above the previous bound; the last, the rest */
    uint64_t commit_us_buckets[MW_GATEWAY_COMMIT_BUCKETS];
    uint64_t credential_reloads;         /**< successful mw_gateway_reload_credentials */
    uint64_t credential_reload_failures; /**< refused ones (the old credentials stayed) */
    uint64_t sessions_invalidated;       /**< sessions closed because a reload revoked them */
    uint64_t idle_reaped; /**< sessions closed after idle_timeout_ms without a datagram */
    /** ClientHellos dropped before wolfSSL: fragmented, lengths that do not nest, an extension
     *  twice (protocol.md section 1) */
    uint64_t hellos_malformed;
    uint64_t conflicts;         /**< a delivered number came again with other content */
    uint64_t resyncs_requested; /**< Acks that asked a device to move to a new space */
    uint64_t spaces_started;    /**< new sequence spaces opened by devices */
    /** Handshakes dropped after the cookie exchange: their host had max_half_open_per_host in
     *  progress, or exceeded handshakes_per_host_per_s. */
    uint64_t host_limit_drops;
    /** Sessions closed at once: their identity exceeded handshakes_per_identity_per_min. */
    uint64_t identity_limit_drops;
    /** Sessions replaced by a newer one of the same identity (a device that moved, or one
     *  identity on many ports: it holds one session, never more). */
    uint64_t sessions_replaced;
    /** Audit lines held back by audit_per_identity_per_min (reported as counts). */
    uint64_t audit_lines_held;
    /** Of rate_limited, datagrams dropped by the identity's share: its other addresses had
     *  used the rate already. */
    uint64_t identity_rate_limited;
    /** Of store_failures, commits a shared database (PostgreSQL) broke off to resolve a
     *  conflict with another gateway: a deadlock or a serialization failure (SQLSTATE class
     *  40). Their devices send again; a steady count means gateways contend for devices. */
    uint64_t store_conflicts;
    /** Certificates issued to devices over EST (est_issue), and requests refused: a malformed
     *  request, one for another name or role, or one the issuer refused. */
    uint64_t renewals_issued, renewals_refused;
    /** When the credentials in force expire, in seconds since the epoch (0: unknown, or none):
     *  the gateway's own certificate (devices refuse it after), the earliest of its CA
     *  certificates (every device of that CA is refused after), and the CRL's nextUpdate
     *  (every device is refused after it, until a newer CRL is loaded). */
    int64_t cert_not_after_s, ca_not_after_s, crl_next_update_s;
    /** Answers to devices fetching the CRL (GET /crl), one per block. */
    uint64_t crls_served;
} mw_gateway_stats_t;

MW_API void mw_gateway_config_init(mw_gateway_config_t *cfg);

/**
 * Creates a gateway: loads and checks the credentials, binds the transport.
 * @return MW_OK; MW_EINVAL; MW_ECONFIG (CA, certificate, key, sink or listen
 *         address missing); MW_ECERT_LOAD (a file cannot be loaded, the key is not the
 *         certificate's, or others may read it: see allow_shared_key_file); MW_EADDR;
 *         MW_ETRANSPORT; MW_ENOMEM.
 *         @p out_detail (may be NULL) says which and why.
 */
MW_API MW_NODISCARD mw_err mw_gateway_create(const mw_gateway_config_t *cfg, mw_gateway_t **out_gw,
                                             mw_error_detail_t *out_detail);
/** Waits up to @p timeout_ms for datagrams, handles them and every due timer.
 *  @return MW_OK, MW_EAGAIN if nothing happened, MW_ETRANSPORT if the socket failed. */
MW_API MW_NODISCARD mw_err mw_gateway_poll(mw_gateway_t *gw, int timeout_ms);
/** The bound address (after port 0, the port the system chose). */
MW_API MW_NODISCARD mw_err mw_gateway_local_addr(const mw_gateway_t *gw, mw_addr_t *out_addr);
MW_API void mw_gateway_stats(const mw_gateway_t *gw, mw_gateway_stats_t *out);
MW_API int mw_gateway_fd(const mw_gateway_t *gw);
/**
 * Queues a command for a device (connected or not). It rides in every Ack to that device
 * until the device's result arrives (delivered to the sink as a MW_MSG_COMMAND_RESULT
 * message) or it expires; @c id is assigned here, increasing per device across restarts
 * when a store is configured; @c expires_ms 0 means one minute from now. With a store, the
 * command is committed to it before this returns MW_OK: a restarted gateway, or another one on
 * the same PostgreSQL store, sends it on (without one, it is kept in memory only).
 * @p out_id may be NULL.
 * @return MW_OK; MW_EINVAL (bad id or kind); MW_EFULL (4 already pending); MW_EIO (the store
 *         could not read the device or take the command: it is not queued).
 */
MW_API MW_NODISCARD mw_err mw_gateway_send_command(mw_gateway_t *gw, const char *device_id,
                                                   const mw_command_t *cmd, uint64_t *out_id);
/**
 * Replaces the CRL (for SIGHUP). The file is checked before it replaces the one in force, so
 * a bad file changes nothing (MW_ECERT_LOAD, @p out_detail says why). Established sessions
 * of devices the new CRL revokes are closed; the others carry on.
 */
MW_API MW_NODISCARD mw_err mw_gateway_reload_crl(mw_gateway_t *gw, const char *crl_file,
                                                 mw_error_detail_t *out_detail);
/**
 * Reloads the gateway's credentials (for SIGHUP) from the files given at creation: CA,
 * certificate, key and the CRL in force (the configured one, or the last one given to
 * mw_gateway_reload_crl). Everything is loaded and checked into a new DTLS context first, so
 * a bad or mismatched file changes nothing (MW_ECERT_LOAD or MW_ECERT_ROLE/IDENTITY,
 * @p out_detail says which file and why; audited as "credentials_reload_failed").
 * On success new handshakes present the new certificate and are checked against the new CA
 * and CRL; established sessions carry on, without a new handshake, on the context they
 * were made with, except those whose device certificate the new CA, CRL or dates no
 * longer accept: they are closed (audited "session_closed"). Audited
 * "credentials_reloaded" (and "crl_reloaded" when a CRL is configured).
 * @return MW_OK; MW_EINVAL; MW_ECERT_LOAD ...; MW_ENOMEM.
 */
MW_API MW_NODISCARD mw_err mw_gateway_reload_credentials(mw_gateway_t *gw,
                                                         mw_error_detail_t *out_detail);
/** A short name of @p r for logs and metric labels ("certificate_expired", "timeout", ...). */
MW_API const char *mw_gateway_hs_reason_name(mw_gateway_hs_reason r);
/** Milliseconds until mw_gateway_poll has timer work due, or -1 if none. */
MW_API int mw_gateway_next_timeout_ms(const mw_gateway_t *gw);
/** True if the store can take a commit now: always without one or with SQLite; with
 *  PostgreSQL, if the server answers (a lost connection is made again here). While it is
 *  false, nothing is acknowledged: devices keep their messages and send them again. */
MW_API bool mw_gateway_store_healthy(mw_gateway_t *gw);
/** Frees everything; sets *gw to NULL. */
MW_API void mw_gateway_destroy(mw_gateway_t **gw);

#ifdef __cplusplus
}
#endif
#endif
