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
 *     if (mw_message_to_json(m, line, sizeof line, &n) == MW_OK) puts(line);
 *     return MW_OK;
 * }
 * mw_gateway_config_t cfg;
 * mw_gateway_config_init(&cfg);
 * cfg.ca_file = "ca.crt"; cfg.cert_file = "gateway.crt"; cfg.key_file = "gateway.key";
 * cfg.listen = "0.0.0.0:5684"; cfg.sink = sink;
 * mw_gateway_t *gw = NULL;
 * if (mw_gateway_create(&cfg, &gw, NULL) == MW_OK)
 *     while (running) (void)mw_gateway_poll(gw, 1000);
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

typedef struct mw_gateway_config {
    const char *ca_file;   /**< PEM CA that device certificates must chain to; required */
    const char *cert_file; /**< the gateway's PEM certificate (role gateway); required */
    const char *key_file;  /**< its PEM private key; required */
    /** PEM CRL of the CA (medwire-pki revoke/crl). Enforced on every full handshake and
     *  on resumption. NULL: revocation is not checked. An expired CRL refuses everyone. */
    const char *crl_file;
    const char *listen;       /**< "HOST:PORT" to bind; used when transport.send is NULL */
    mw_transport_t transport; /**< custom transport; send == NULL: UDP on listen */
    mw_clock_t clock;         /**< now_ms == NULL: the system clock */
    uint32_t max_peers;       /**< sessions kept at once (default 4096) */
    /** A device silent longer than this (ms) gets a MW_MSG_COMM_LOSS message in the sink,
     *  and a MW_MSG_COMM_RESTORED one when it is heard from again; 0: off. */
    uint64_t comm_loss_ms;
    /** Handshakes in progress (valid cookie, not finished) at once; more wait (default 256).
     *  One that does not finish within 30 s is dropped. */
    uint32_t max_half_open;
    /** Datagrams per second one peer may send (burst twice that); excess is dropped
     *  (default 200). */
    uint32_t rate_limit_per_s;
    uint32_t max_body;        /**< largest block-wise (Block1) request body, bytes (default 4096);
                                   a larger one is refused with 4.13 and never buffered */
    mw_sink_fn *sink;         /**< required */
    mw_sink_commit_fn *sink_commit;   /**< optional, see mw_sink_commit_fn */
    mw_sink_recover_fn *sink_recover; /**< optional, see mw_sink_recover_fn */
    void *sink_ctx;
    /** SQLite database (WAL) for the accepted-message journal and each device's replay
     *  state; NULL keeps them in memory only, so a restarted gateway would deliver
     *  again what devices resend. */
    const char *store_path;
    mw_audit_fn *audit; /**< optional */
    void *audit_ctx;
} mw_gateway_config_t;

typedef struct mw_gateway_stats {
    uint64_t sessions;           /**< established now */
    uint64_t handshakes_started; /**< with a valid cookie */
    uint64_t handshakes_completed;
    uint64_t handshakes_failed;
    uint64_t hello_verify_sent;  /**< cookie-less ClientHellos answered statelessly */
    uint64_t messages_delivered; /**< given to the sink and accepted */
    uint64_t duplicates;         /**< acknowledged again, not delivered again */
    uint64_t replays;            /**< refused: below the device's low-water mark */
    uint64_t refused;            /**< batches refused (identity, malformed) */
    uint64_t coap_duplicates;    /**< CoAP duplicates answered from the cache (RFC 7252 4.5) */
    uint64_t bodies_too_large;   /**< Block1 bodies refused with 4.13 */
    uint64_t store_failures;     /**< commits that failed (nothing was acknowledged) */
    uint64_t peers;            /**< entries in the peer table (sessions and handshakes) */
    uint64_t half_open;        /**< handshakes in progress */
    uint64_t peer_limit_drops; /**< ClientHellos dropped: table or half-open limit reached */
    uint64_t rate_limited;     /**< datagrams dropped by the per-peer rate limit */
    uint64_t datagrams_received, datagrams_sent, bytes_received, bytes_sent;
} mw_gateway_stats_t;

MW_API void mw_gateway_config_init(mw_gateway_config_t *cfg);

/**
 * Creates a gateway: loads and checks the credentials, binds the transport.
 * @return MW_OK; MW_EINVAL; MW_ECONFIG (CA, certificate, key, sink or listen
 *         address missing); MW_ECERT_LOAD; MW_EADDR; MW_ETRANSPORT; MW_ENOMEM.
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
 * when a store is configured; @c expires_ms 0 means one minute from now.
 * Pending commands are kept in memory only. @p out_id may be NULL.
 * @return MW_OK; MW_EINVAL (bad id or kind); MW_EFULL (4 already pending); MW_EIO.
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
/** Milliseconds until mw_gateway_poll has timer work due, or -1 if none. */
MW_API int mw_gateway_next_timeout_ms(const mw_gateway_t *gw);
/** Frees everything; sets *gw to NULL. */
MW_API void mw_gateway_destroy(mw_gateway_t **gw);

#ifdef __cplusplus
}
#endif
#endif
