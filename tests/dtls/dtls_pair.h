/* SPDX-License-Identifier: Apache-2.0 */
/* dtls_pair.h -- a device and a gateway of the DTLS layer (or a bare wolfSSL peer in either place)
 * wired back to back in memory, with the time given by the test. */
#ifndef MWT_DTLS_PAIR_H
#define MWT_DTLS_PAIR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <wolfssl/options.h>
#include <wolfssl/ssl.h>

#include "dtls/dtls.h"

#define MWT_DQ_LEN 32

/** Datagrams in flight one way. */
typedef struct mwt_dq {
    uint8_t data[MWT_DQ_LEN][MWI_DTLS_MAX_DATAGRAM];
    size_t len[MWT_DQ_LEN];
    size_t head, count;
} mwt_dq;

/** One side: a medwire context (ctx set) or a bare wolfSSL object (ssl set). */
typedef struct mwt_side {
    mwi_dtls_ctx *ctx;
    mwi_dtls_conn *conn;
    WOLFSSL *ssl;
    bool server;
    bool started; /**< a medwire client sent its first ClientHello */
    mwt_dq *in, *out;
    mw_err result; /**< MW_EINPROGRESS, then MW_OK or the error */
    mw_error_detail_t err;
} mwt_side;

typedef struct mwt_pair {
    mwt_dq to_server, to_client;
    mwt_side client, server;
    uint64_t now_ms;
} mwt_pair;

/** Wires @p p: exactly one of @p cli_ctx / @p cli_ssl and of @p srv_ctx / @p srv_ssl. A medwire
 *  client's connection is made here; @p session (may be NULL) is offered for resumption. */
void mwt_pair_init(mwt_pair *p, mwi_dtls_ctx *cli_ctx, WOLFSSL *cli_ssl, mwi_dtls_ctx *srv_ctx,
                   WOLFSSL *srv_ssl, mwi_dtls_session *session);
/** Runs the handshake until both sides are done or one failed (no loss: no timers). */
void mwt_pair_run(mwt_pair *p);
/** Moves what one side sent to the other once (client first); false if nothing was in flight. */
bool mwt_pair_step(mwt_pair *p);
/** Destroys the medwire connections (not the contexts, nor bare wolfSSL objects). */
void mwt_pair_fini(mwt_pair *p);

/** Makes a fresh directory with a medwire-pki CA (ca/), the gateway @p gateway_id and the
 *  device dev-1, which mwt_pair_file then names files in. */
void mwt_pair_pki(const char *gateway_id);
/** A DTLS context of that PKI: the gateway's (@p server) or dev-1's, which expects the gateway
 *  @p peer_name; @p no_cert: a device that presents no certificate (test_no_cert). */
mwi_dtls_ctx *mwt_pair_ctx(bool server, const char *peer_name, bool no_cert);
/** The path of @p rel in that directory (one of 8 rotating static buffers). */
const char *mwt_pair_file(const char *rel);
/** Runs the NULL-terminated command and fails the test, with its standard error, unless it
 *  succeeds. */
void mwt_pair_cmd(const char *arg0, ...);

/** Pops the oldest datagram of @p q into @p out; its length, 0 if empty. */
size_t mwt_dq_pop(mwt_dq *q, uint8_t *out);
/** Appends a datagram to @p q. */
void mwt_dq_push(mwt_dq *q, const uint8_t *d, size_t len);

/** A send function (mwi_dtls_send_fn) that queues to the other side of the side @p ctx. */
void mwt_pair_send(void *ctx, const uint8_t *buf, size_t len);
/** The address each side appears from to the other (the server's view of the client: false). */
const mw_addr_t *mwt_pair_addr(bool server);
/** Sets up @p ssl's I/O on the queues of @p side (a bare wolfSSL peer). */
void mwt_side_bind_ssl(mwt_side *side);

#endif
