/* SPDX-License-Identifier: Apache-2.0 */
/* dtls_internal.h -- what dtls.c (both roles, the device's client path) and dtls_server.c (the
 * gateway's side: accept, cookies, the final-flight cache, CRL, revalidation) share. Included
 * by those two files only. dtls.c reaches the server side through the table of hooks a server
 * context carries (mwi_dtls_server_ops), never by name: the device library links without it. */
#ifndef MWI_DTLS_INTERNAL_H
#define MWI_DTLS_INTERNAL_H

#ifndef WOLFSSL_USER_SETTINGS
#include <wolfssl/options.h> /* first: without it struct layouts differ from the library's */
#endif
#include <wolfssl/ssl.h>
#include <wolfssl/wolfcrypt/random.h>

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/limits.h"
#include "dtls/dtls.h"
#include "dtls/p11.h"

/* Shortest protected record: the explicit nonce (8 bytes for both suites,
 * RFC 6655 3, RFC 5288 3) and the tag; until the suite is known, GCM's. */
#define MWI_DTLS_AEAD_NONCE   8u
#define MWI_DTLS_MAX_AEAD_TAG 16u

/* The server's final flight (CCS + Finished) is tiny; this bounds what we cache. */
#define MWI_DTLS_FLIGHT_MAX_BYTES  512
#define MWI_DTLS_FLIGHT_MAX_DGRAMS 4

typedef struct mwi_dtls_server_ops mwi_dtls_server_ops;

/* What a server's connection keeps besides the common part, allocated with it by the server
 * side's conn_setup and wiped and freed with it. */
typedef struct mwi_dtls_server_conn {
    /* Throwaway probing of an unknown peer's ClientHello (mwi_dtls_accept). */
    bool probing;
    bool probe_replied;
    bool sent_server_hello; /* wolfSSL verified the cookie: the peer proved its address */
    size_t probe_in_len;
    uint8_t *probe_reply; /* the one answer to an unverified address, held until it is chosen */
    size_t probe_reply_len;

    /* Server final-flight cache: wolfSSL 5.5.4 never retransmits it. */
    bool recording;
    uint8_t flight[MWI_DTLS_FLIGHT_MAX_BYTES];
    uint16_t flight_len[MWI_DTLS_FLIGHT_MAX_DGRAMS];
    uint8_t flight_n;
    bool flight_overflow;
    uint8_t flight_resends;
    uint64_t last_resend_ms;
    bool resent_once;
} mwi_dtls_server_conn;

struct mwi_dtls_ctx {
    WOLFSSL_CTX *wctx;
    mwi_dtls_role role;
    /* The server side's hooks (dtls_server.c); NULL for a client. */
    const mwi_dtls_server_ops *server;
    bool skip_role;
    char peer_name[MW_ID_MAX + 1];
    char own_id[MW_ID_MAX + 1];
    /* The SubjectPublicKeyInfo of our certificate (a P-256 one is 91 bytes). */
    uint8_t own_spki[128];
    uint32_t own_spki_len;
    unsigned char cookie_secret[32];
    /* The secret before the last rotation, still honoured: a client between our
     * HelloVerifyRequest and its second ClientHello when the secret changed. */
    unsigned char prev_secret[32];
    bool has_prev;
    bool cookie_clock_set;
    uint64_t cookie_since_ms; /* when cookie_secret became the current one */
    WC_RNG rng;
    bool rng_ok;
    bool crl; /* revocation enforced */
    /* When the credentials expire (seconds since the epoch, 0: unknown or none): our
     * certificate, the earliest of the CA certificates, the CRL's nextUpdate. */
    int64_t own_not_after, ca_not_after, crl_next_update;
    int64_t own_not_before; /* our certificate's notBefore (0: unknown) */
    /* The CRL in force as DER (crl.c; served to devices by a gateway), and its thisUpdate: a
     * CRL fetched later must not be older. */
    uint8_t *crl_der;
    size_t crl_der_len;
    int64_t crl_this_update;
    /* The CA as loaded (a copy, in its format), kept to check a new CRL before it replaces the
     * old; and how to read that CRL's file. */
    uint8_t *ca;
    size_t ca_len;
    int ca_format;
    mwi_dtls_read_fn *read_file;
    /* The configured CA certificates alone: a peer's leaf must verify against them directly,
     * whatever the peer sent with it (check_peer). */
    WOLFSSL_CERT_MANAGER *anchors;
    /* Our private key when it lives in a PKCS#11 token (key_file a "pkcs11:" URI): the module,
     * the logged-in session and the device wolfSSL signs through, for the context's life. */
    mwi_p11_key *p11;
    /* SHA-256 of each certificate in the CA file: a leaf found here is pinned, trusted as it
     * is (a device given the gateway's own certificate as its CA file). */
    uint8_t pins[MWI_CA_PINS_MAX][32];
    int n_pins;
    /* The owner's reference plus one per connection. A gateway that reloads
     * its credentials makes a new context for new handshakes while the
     * sessions already established keep the one they were made with: each
     * connection reads its context (role, CRL, certificate manager) for its
     * whole life, and its WOLFSSL borrows the old WOLFSSL_CTX's certificate
     * and key buffers (wolfSSL_new copies pointers, not the buffers).
     * wolfSSL 5.5.4 refcounts the WOLFSSL_CTX too (wolfSSL_new takes a
     * reference, wolfSSL_free drops it), but we do not rely on that: the
     * WOLFSSL_CTX is freed only with the last of our references. */
    long refs;
};

struct mwi_dtls_conn {
    mwi_dtls_ctx *ctx;
    WOLFSSL *ssl;
    mw_addr_t peer;
    mwi_dtls_send_fn *send;
    void *send_ctx;

    const uint8_t *in; /* the datagram being fed, borrowed for one call */
    size_t in_len;

    uint64_t deadline;
    bool started;
    bool established;
    bool failed;
    mw_error_detail_t err;
    char peer_id[MW_ID_MAX + 1];

    bool peer_sent_data; /* application data came in: the handshake is over for the peer too */
    /* A server's connection: what only the server side keeps (dtls_server.c); NULL for a
     * client's, which thus carries no flight cache. */
    mwi_dtls_server_conn *srv;
};

/* One credential as this layer loads it: bytes in memory, from the caller's buffer or from a
 * file the port read, its format, and how a detail names it. */
typedef struct mwi_dtls_cred {
    const uint8_t *data;
    size_t len;
    uint8_t *owned; /* a file's bytes, read for us: wiped and freed by mwi_dtls_cred_free */
    size_t owned_cap;
    int format;     /* WOLFSSL_FILETYPE_PEM or WOLFSSL_FILETYPE_ASN1 */
    char name[120]; /* "'PATH'" (a long path by its end) or "from ca_buf" */
} mwi_dtls_cred;

/* What only a server context does, called by dtls.c at these points. */
struct mwi_dtls_server_ops {
    WOLFSSL_METHOD *(*method)(void);
    /* At context creation, after the CA (its copy in ctx->ca), the RNG and the CRL: the first
     * cookie secret. */
    mw_err (*ctx_setup)(mwi_dtls_ctx *ctx, const mwi_dtls_config *cfg, mw_error_detail_t *d);
    /* A new connection: its server part (c->srv) and its WOLFSSL's cookie secret. */
    mw_err (*conn_setup)(mwi_dtls_conn *c);
    /* One handshake step (wolfSSL_accept), recording the final flight. */
    int (*handshake)(mwi_dtls_conn *c);
    /* A datagram wolfSSL sends: true when it is held back (an unverified address's one
     * answer), false when it goes out (recorded if it is part of the final flight). */
    bool (*hold_send)(mwi_dtls_conn *c, const uint8_t *p, size_t n);
    /* An established connection's input: true when it was the client's repeated last flight,
     * answered from the cache. */
    bool (*repeat_flight)(mwi_dtls_conn *c, const uint8_t *dgram, size_t len, uint64_t now_ms);
    /* Which ClientHello reaches wolfSSL (mwi_dtls_usable_records); a client has no parser. */
    mwi_dtls_hello_check *hello_ok;
    /* A resumed session refused: out of the session cache, so the next handshake is full. */
    void (*forget_session)(mwi_dtls_conn *c);
};

/** mwi_dtls_ctx_create's body, with @p server the server side's hooks (NULL: a client). */
MW_NODISCARD mw_err mwi_dtls_ctx_make(const mwi_dtls_config *cfg, const mwi_dtls_server_ops *server,
                                      mwi_dtls_ctx **out_ctx, mw_error_detail_t *out_detail);
/** One step of the handshake on @p c; wolfSSL reads what input is pending. */
MW_NODISCARD mw_err mwi_dtls_handshake_step(mwi_dtls_conn *c, uint64_t now_ms);
/** Lends @p dgram to wolfSSL's next read (taken once); (NULL, 0) takes it back. */
void mwi_dtls_lend_input(mwi_dtls_conn *c, const uint8_t *dgram, size_t len);
/** wolfSSL's error code as medwire's. */
mw_err mwi_dtls_map_wolf(int code);
/** Checks @p der (the peer's leaf, DER) against @p ctx as it is now: chained to its CA (with
 *  @p chain) and, when it enforces one, not revoked by its CRL. WOLFSSL_SUCCESS or wolfSSL's
 *  code. */
int mwi_dtls_check_der_now(mwi_dtls_ctx *ctx, const uint8_t *der, int len, bool chain);
/** The peer's leaf certificate as DER, kept with the session (also a resumed one); false if
 *  there is none. */
bool mwi_dtls_peer_leaf(mwi_dtls_conn *c, const uint8_t **der, int *len);
/** Fills @p out with a credential from @p file (read with @p read_file) or @p buf, at most
 *  @p max bytes; neither: MW_OK with out->data NULL. */
MW_NODISCARD mw_err mwi_dtls_cred_get(const char *what, const char *file, const char *file_field,
                                      mw_blob_t buf, const char *buf_field, size_t max,
                                      mwi_dtls_read_fn *read_file, mwi_dtls_cred *out,
                                      mw_error_detail_t *d);
void mwi_dtls_cred_free(mwi_dtls_cred *c);

#endif
