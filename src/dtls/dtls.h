/* SPDX-License-Identifier: Apache-2.0 */
/* dtls.h -- the DTLS 1.2 channel on wolfSSL: one object per peer, no sockets, no clock inside.
 * dtls.c is both roles' common part and the client (the device's path, built against the device's
 * minimal wolfSSL too); dtls_server.c the server side, in the gateway library only: the functions
 * under "Server side" below. */
#ifndef MWI_DTLS_H
#define MWI_DTLS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "medwire/err.h"
#include "medwire/io.h"
#include "dtls/records.h"
#include "medwire/message.h"

/** Largest plaintext one record carries with either allowed suite (GCM's limit is the lower). */
#define MWI_DTLS_MAX_PLAINTEXT 1351
/** Largest datagram we read or write (the Debian build's MTU). */
#define MWI_DTLS_MAX_DATAGRAM 1500
/** The gateway's cookie secret changes this often (ms, by the clock given to mwi_dtls_accept); a
 *  cookie stays valid until the rotation after the one that retired its secret. */
#define MWI_DTLS_COOKIE_PERIOD_MS (5u * 60u * 1000u)
/** The only two suites of protocol v1 (RFC 7925 profile plus GCM). */
#define MWI_DTLS_CIPHERS "ECDHE-ECDSA-AES128-CCM-8:ECDHE-ECDSA-AES128-GCM-SHA256"

typedef enum mwi_dtls_role { MWI_DTLS_CLIENT = 0, MWI_DTLS_SERVER = 1 } mwi_dtls_role;

/** Reads a credential file into a new buffer (malloc, a NUL after the @p *out_len bytes).
 *  MW_OK; MW_EIO (missing or unreadable); MW_ETOOBIG (more than @p max bytes); MW_ENOMEM. The
 *  POSIX port's mwi_file_read is one: this layer opens no file itself. */
typedef mw_err mwi_dtls_read_fn(const char *path, size_t max, uint8_t **out_buf, size_t *out_len);

/* Each credential comes from a file (read with read_file) or a buffer (PEM or DER, told apart
 * by content), never both: the detail names the two fields (ca_file and ca_buf, ...). */
typedef struct mwi_dtls_config {
    mwi_dtls_role role;
    const char *ca_file;     /**< PEM; required (or ca_buf) */
    const char *cert_file;   /**< PEM; required unless test_no_cert (or cert_buf) */
    const char *key_file;    /**< PEM, or a "pkcs11:" URI; required unless test_no_cert (or key_buf) */
    mw_blob_t ca_buf;        /**< the CA certificate(s) in memory, PEM or DER */
    mw_blob_t cert_buf;      /**< our certificate in memory, PEM or DER */
    mw_blob_t key_buf;       /**< our private key in memory, PEM or DER; copies are wiped */
    mw_blob_t crl_buf;       /**< the CRL in memory, PEM or DER */
    mwi_dtls_read_fn *read_file; /**< reads the *_file ones; NULL: none may be given */
    const char *peer_name;   /**< client: the gateway name the certificate must carry; required */
    const char *crl_file;    /**< PEM CRL of the CA; NULL: revocation not checked (or crl_buf) */
    const char *cipher_list; /**< NULL: MWI_DTLS_CIPHERS. Tests only, to play a bad peer. */
    bool test_no_cert;       /**< tests only: a client that presents no certificate */
    bool test_skip_role;     /**< tests only: do not check the peer's EKU ourselves */
} mwi_dtls_config;

typedef struct mwi_dtls_ctx mwi_dtls_ctx;
typedef struct mwi_dtls_conn mwi_dtls_conn;

/** Where a connection's datagrams go. Called synchronously from input/timer/write/start. */
typedef void mwi_dtls_send_fn(void *ctx, const uint8_t *buf, size_t len);

/**
 * Makes a client context: loads CA, certificate and key (refused unless it matches the
 * certificate), fixes the cipher list, curve P-256, verification mode and depth
 * (CA to leaf), and the CRL if one is given: the gateway's certificate is then checked against
 * it on full and resumed handshakes. A server's is mwi_dtls_server_ctx_create's (MW_ECONFIG
 * here). A wolfSSL without CRL support refuses a CRL (MW_ECONFIG).
 * @return MW_OK, MW_EINVAL or MW_ECONFIG for a missing input, MW_ECERT_LOAD
 *         (detail says which file and wolfSSL's code), MW_ENOMEM, MW_EINTERNAL.
 */
MW_NODISCARD mw_err mwi_dtls_ctx_create(const mwi_dtls_config *cfg, mwi_dtls_ctx **out_ctx,
                                        mw_error_detail_t *out_detail);
/** When a context's credentials expire, in seconds since the epoch (0: not known, or none). */
typedef struct mwi_dtls_expiry {
    int64_t cert; /**< our certificate's notAfter */
    int64_t ca;   /**< the earliest notAfter of the CA certificates */
    int64_t crl;  /**< the CRL's nextUpdate, if a CRL is enforced */
    int64_t cert_from; /**< our certificate's notBefore */
} mwi_dtls_expiry;
/** Fills @p out for @p ctx (all 0 for NULL). */
void mwi_dtls_ctx_expiry(const mwi_dtls_ctx *ctx, mwi_dtls_expiry *out);
/**
 * A client context like @p old (its CA, CRL and gateway name) with the certificate and key of
 * @p creds (cert_file or cert_buf, key_file or key_buf; the rest ignored): a renewed pair.
 * @return MW_OK; MW_EIDENTITY when the certificate is another device's; what
 *         mwi_dtls_ctx_create returns (the key must match the certificate).
 */
MW_NODISCARD mw_err mwi_dtls_ctx_renewed(const mwi_dtls_ctx *old, const mwi_dtls_config *creds,
                                         mwi_dtls_ctx **out_ctx, mw_error_detail_t *out_detail);
/** The CRL @p ctx enforces, as DER (valid until it is replaced); false if none. */
bool mwi_dtls_ctx_crl(const mwi_dtls_ctx *ctx, const uint8_t **der, size_t *len);
/**
 * Replaces @p ctx's CRL with the DER CRL @p der, fetched from a peer: it must be signed by the
 * context's CA, not past its nextUpdate, and not older (thisUpdate) than the CRL in force, or
 * the CRL in force stays (MW_ECERT_LOAD, why in @p out_detail). Then, if @p live has an
 * established peer, its certificate is checked against it: MW_ECERT_REVOKED if it is revoked
 * (the CRL is replaced all the same; close the session). MW_ECONFIG without CRL support.
 */
MW_NODISCARD mw_err mwi_dtls_ctx_update_crl(mwi_dtls_ctx *ctx, const uint8_t *der, size_t len,
                                            mwi_dtls_conn *live, mw_error_detail_t *out_detail);
/** Drops the owner's reference and sets *ctx to NULL. The context lives on until its last
 *  connection is destroyed, so connections may outlive it (a gateway reloading its
 *  credentials keeps established sessions on the context they were made with). */
void mwi_dtls_ctx_destroy(mwi_dtls_ctx **ctx);
/** Fills @p out from the context's CSPRNG (wolfCrypt's DRBG); usable as an mw_random_fn. */
MW_NODISCARD mw_err mwi_dtls_random(void *ctx, uint8_t *out, size_t len);
/** The identity (CN) of our own certificate; "" for a test client without one. */
const char *mwi_dtls_ctx_own_id(const mwi_dtls_ctx *ctx);

/** A connection to @p peer; output goes to @p send. Client: call mwi_dtls_conn_start next. */
MW_NODISCARD mw_err mwi_dtls_conn_create(mwi_dtls_ctx *ctx, const mw_addr_t *peer,
                                         mwi_dtls_send_fn *send, void *send_ctx,
                                         mwi_dtls_conn **out_conn);
void mwi_dtls_conn_destroy(mwi_dtls_conn **conn);

/** Client: sends the first ClientHello. Returns MW_EINPROGRESS, or a fatal error. */
MW_NODISCARD mw_err mwi_dtls_conn_start(mwi_dtls_conn *c, uint64_t now_ms);

/** Receives one record of application data (valid only during the call). */
typedef void mwi_dtls_record_fn(void *ctx, const uint8_t *data, size_t len);

/**
 * Feeds one datagram; every application record in it goes to @p on_record
 * (one datagram may hold several). While handshaking: MW_EINPROGRESS; MW_OK
 * once established; or a fatal error whose detail mwi_dtls_conn_error gives.
 * Records that fail authentication are dropped silently (RFC 6347 4.1.2.7):
 * they cannot disturb the session.
 */
MW_NODISCARD mw_err mwi_dtls_conn_input(mwi_dtls_conn *c, const uint8_t *dgram, size_t len,
                                        uint64_t now_ms, mwi_dtls_record_fn *on_record,
                                        void *record_ctx);
/** Sends one record. MW_ETOOBIG past MWI_DTLS_MAX_PLAINTEXT; MW_ECLOSED if not established. */
MW_NODISCARD mw_err mwi_dtls_conn_write(mwi_dtls_conn *c, const uint8_t *data, size_t len);

/** When mwi_dtls_conn_timer must next be called (UINT64_MAX: no timer). */
uint64_t mwi_dtls_conn_deadline(const mwi_dtls_conn *c);
/** Handshake retransmission; MW_EINPROGRESS, MW_OK (nothing due), or MW_EHANDSHAKE_TIMEOUT. */
MW_NODISCARD mw_err mwi_dtls_conn_timer(mwi_dtls_conn *c, uint64_t now_ms);

bool mwi_dtls_conn_established(const mwi_dtls_conn *c);
/** The peer's identity (certificate CN) once the handshake is complete, else "". */
const char *mwi_dtls_conn_peer_id(const mwi_dtls_conn *c);
/** The negotiated suite's name, or "". */
const char *mwi_dtls_conn_cipher(const mwi_dtls_conn *c);
/** The first error this connection met (err MW_OK if none). */
void mwi_dtls_conn_error(const mwi_dtls_conn *c, mw_error_detail_t *out);
/** The peer address given at creation. */
const mw_addr_t *mwi_dtls_conn_peer(const mwi_dtls_conn *c);

/** Sends close_notify on an established session (then destroy it). */
void mwi_dtls_conn_close(mwi_dtls_conn *c);

/* ---- Server side (dtls_server.c, the gateway library) ---- */

/** As mwi_dtls_ctx_create, for @p cfg->role MWI_DTLS_SERVER: the CRL if one is given (checked
 *  against the CA as it loads), and a fresh cookie secret, rotated by mwi_dtls_accept. */
MW_NODISCARD mw_err mwi_dtls_server_ctx_create(const mwi_dtls_config *cfg,
                                               mwi_dtls_ctx **out_ctx,
                                               mw_error_detail_t *out_detail);

/**
 * Server, for a datagram from an address that has no connection: runs it
 * through a throwaway object sharing the context's cookie secret. Only a
 * ClientHello carrying a valid cookie (RFC 6347 4.2.1) yields a connection;
 * anything else costs no state: a cookie-less ClientHello is answered with a
 * HelloVerifyRequest (no larger than the ClientHello) and everything else is
 * dropped. The cookie secret rotates here, by @p now_ms (MWI_DTLS_COOKIE_PERIOD_MS).
 * @return MW_OK with *out_conn set; MW_EAGAIN with *out_conn NULL (HelloVerifyRequest
 *         sent, or dropped); or the error that made the ClientHello unacceptable (for
 *         example MW_ECIPHER) with @p out_detail (may be NULL) filled. The source address
 *         of a refused ClientHello is unverified: it may be spoofed.
 */
MW_NODISCARD mw_err mwi_dtls_accept(mwi_dtls_ctx *ctx, const mw_addr_t *peer, const uint8_t *dgram,
                                    size_t len, uint64_t now_ms, mwi_dtls_send_fn *send,
                                    void *send_ctx, mwi_dtls_conn **out_conn,
                                    mw_error_detail_t *out_detail);

/** Replaces the CRL (for SIGHUP): the new file is checked on a scratch certificate manager
 *  first, so a bad one leaves the old CRL in force. MW_ECERT_LOAD with the reason. */
MW_NODISCARD mw_err mwi_dtls_ctx_reload_crl(mwi_dtls_ctx *ctx, const char *crl_file,
                                            mw_error_detail_t *out_detail);
/** Checks an established session's peer against the current CRL; MW_ECERT_REVOKED marks the
 *  connection failed (destroy it). */
MW_NODISCARD mw_err mwi_dtls_conn_recheck(mwi_dtls_conn *c);
/** Checks an established session's peer certificate against @p ctx (NULL: the context the
 *  connection was made with) as it is now: with @p chain, chained to its CA and within its
 *  validity; always, not revoked by its CRL (if it has one). A failure marks the connection
 *  failed (destroy it) and returns why (MW_ECERT_REVOKED, MW_ECERT_EXPIRED,
 *  MW_ECERT_UNTRUSTED, ...). Sessions already closed or in handshake: MW_OK. */
MW_NODISCARD mw_err mwi_dtls_conn_revalidate(mwi_dtls_conn *c, mwi_dtls_ctx *ctx, bool chain);
/** Makes @p dst accept the cookies @p src issued (a context replacing another). */
void mwi_dtls_ctx_share_cookie_secret(mwi_dtls_ctx *dst, const mwi_dtls_ctx *src);
/** "certificate 'CN', serial HEX, valid until DATE" of our own certificate. */
MW_NODISCARD mw_err mwi_dtls_ctx_own_cert_text(const mwi_dtls_ctx *ctx, char *out, size_t cap);

/* ---- Both roles: resumption by session ID ---- */

/** A session to resume by ID on a later connection (opaque). */
typedef struct mwi_dtls_session mwi_dtls_session;
/** A copy of @p c's session for resumption, or NULL; free with mwi_dtls_session_free. */
mwi_dtls_session *mwi_dtls_conn_save_session(const mwi_dtls_conn *c);
/** Offers @p s when @p c connects (before mwi_dtls_conn_start). */
MW_NODISCARD mw_err mwi_dtls_conn_set_session(mwi_dtls_conn *c, mwi_dtls_session *s);
void mwi_dtls_session_free(mwi_dtls_session **s);
/** Was the handshake an abbreviated one (resumed by session ID)? */
bool mwi_dtls_conn_resumed(const mwi_dtls_conn *c);

/** DTLS connections alive in this process (created and not yet destroyed). */
long mwi_dtls_live_conns(void);

#endif
