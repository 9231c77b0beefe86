/* SPDX-License-Identifier: Apache-2.0 */
/* dtls_server.c -- the gateway's side of DTLS, in the gateway library only: the server context
 * (mwi_dtls_server_ctx_create), stateless cookies and their rotation (mwi_dtls_accept), the
 * final-flight cache wolfSSL 5.5.4 lacks, the CRL's reloading (crl.c loads and checks it),
 * and the revalidation of established sessions when credentials change. dtls.c calls into it
 * through the hooks below; the device's wolfSSL, which has no server, never compiles it. */
#include "dtls/dtls_internal.h" /* first: wolfSSL's options before its other headers */

#include <wolfssl/error-ssl.h>
#include <wolfssl/wolfcrypt/error-crypt.h>
#include <wolfssl/wolfcrypt/asn.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/detail.h"
#include "core/limits.h"
#include "core/wipe.h"
#include "dtls/crl.h"
#include "dtls/dtls.h"
#include "dtls/est.h"
#include "dtls/records.h"

#define REC_HDR         MWI_DTLS_REC_HDR
#define CT_HANDSHAKE    MWI_DTLS_CT_HANDSHAKE
#define HS_SERVER_HELLO 2

/* A client whose copy of our final flight was lost retransmits its own flight
 * each timer (1 s and up); answering more often than this only wastes bytes. */
#define FLIGHT_RESEND_GAP_MS 500
#define FLIGHT_RESEND_MAX    8

static WOLFSSL_METHOD *server_method(void)
{
    return wolfDTLSv1_2_server_method();
}

/* The first cookie secret. */
static mw_err server_ctx_setup(mwi_dtls_ctx *ctx, const mwi_dtls_config *cfg,
                               mw_error_detail_t *d)
{
    (void)cfg;
    (void)d;
    if (wc_RNG_GenerateBlock(&ctx->rng, ctx->cookie_secret, sizeof ctx->cookie_secret) != 0)
        return MW_EINTERNAL;
    return MW_OK;
}

static mw_err server_conn_setup(mwi_dtls_conn *c)
{
    mwi_dtls_ctx *ctx = c->ctx;
    c->srv = calloc(1, sizeof *c->srv);
    if (c->srv == NULL)
        return MW_ENOMEM;
    return wolfSSL_DTLS_SetCookieSecret(c->ssl, ctx->cookie_secret, sizeof ctx->cookie_secret) == 0
               ? MW_OK
               : MW_EINTERNAL;
}

static int server_handshake(mwi_dtls_conn *c)
{
    c->srv->recording = true;
    c->srv->flight_n = 0;
    c->srv->flight_overflow = false;
    int rc = wolfSSL_accept(c->ssl);
    c->srv->recording = false;
    if (rc == WOLFSSL_SUCCESS && c->srv->flight_overflow)
        c->srv->flight_n = 0; /* a partial flight would not help the client */
    return rc;
}

static bool server_hold_send(mwi_dtls_conn *c, const uint8_t *p, size_t n)
{
    if (c->srv->probing && !c->srv->sent_server_hello) {
        /* No state and no amplification for an unverified address: one
         * datagram no larger than what it sent us is all it gets (RFC 6347
         * 4.2.1): the HelloVerifyRequest, or the alert that refuses its hello.
         * wolfSSL sends a ServerHello only for a valid cookie, and only that
         * proves the address: an alert for a bad record packed behind a
         * ClientHello once passed for a verified peer and cost a peer slot
         * (found by fuzz_gateway_hello). */
        bool hs0 = n > REC_HDR && p[0] == CT_HANDSHAKE && p[3] == 0 && p[4] == 0;
        if (hs0 && p[REC_HDR] == HS_SERVER_HELLO) {
            c->srv->sent_server_hello = true;
        } else {
            if (c->srv->probe_replied || n > c->srv->probe_in_len)
                return true;
            c->srv->probe_replied = true;
            memcpy(c->srv->probe_reply, p, n); /* n <= probe_in_len <= MWI_DTLS_MAX_DATAGRAM */
            c->srv->probe_reply_len = n;
            return true;
        }
    }
    if (c->srv->recording) {
        if (c->srv->flight_n < MWI_DTLS_FLIGHT_MAX_DGRAMS) {
            size_t used = 0;
            for (uint8_t i = 0; i < c->srv->flight_n; i++)
                used += c->srv->flight_len[i];
            if (used + n <= MWI_DTLS_FLIGHT_MAX_BYTES) {
                memcpy(c->srv->flight + used, p, n);
                c->srv->flight_len[c->srv->flight_n++] = (uint16_t)n;
            } else {
                c->srv->flight_overflow = true;
            }
        } else {
            c->srv->flight_overflow = true;
        }
    }
    return false;
}

static bool server_repeat_flight(mwi_dtls_conn *c, const uint8_t *dgram, size_t len,
                                 uint64_t now_ms)
{
    if (c->peer_sent_data || c->srv->flight_n == 0 || !mwi_dtls_is_handshake_flight(dgram, len))
        return false;
    /* The client is still repeating its last flight: ours was lost. */
    if ((!c->srv->resent_once || now_ms - c->srv->last_resend_ms >= FLIGHT_RESEND_GAP_MS) &&
        c->srv->flight_resends < FLIGHT_RESEND_MAX) {
        size_t off = 0;
        for (uint8_t i = 0; i < c->srv->flight_n; i++) {
            c->send(c->send_ctx, c->srv->flight + off, c->srv->flight_len[i]);
            off += c->srv->flight_len[i];
        }
        c->srv->flight_resends++;
        c->srv->resent_once = true;
        c->srv->last_resend_ms = now_ms;
    }
    return true;
}

static void server_forget_session(mwi_dtls_conn *c)
{
    (void)wolfSSL_SSL_CTX_remove_session(c->ctx->wctx, wolfSSL_get_session(c->ssl));
}

static const mwi_dtls_server_ops server_ops = {
    .method = server_method,
    .ctx_setup = server_ctx_setup,
    .conn_setup = server_conn_setup,
    .handshake = server_handshake,
    .hold_send = server_hold_send,
    .repeat_flight = server_repeat_flight,
    .hello_ok = mwi_dtls_client_hello_well_formed,
    .forget_session = server_forget_session,
};

mw_err mwi_dtls_server_ctx_create(const mwi_dtls_config *cfg, mwi_dtls_ctx **out_ctx,
                                  mw_error_detail_t *out_detail)
{
    return mwi_dtls_ctx_make(cfg, &server_ops, out_ctx, out_detail);
}

void mwi_dtls_ctx_share_cookie_secret(mwi_dtls_ctx *dst, const mwi_dtls_ctx *src)
{
    /* A client between our HelloVerifyRequest and its second ClientHello
     * holds a cookie made with the old secret: it stays valid, and the
     * rotation goes on where it was. */
    if (dst && src) {
        memcpy(dst->cookie_secret, src->cookie_secret, sizeof dst->cookie_secret);
        memcpy(dst->prev_secret, src->prev_secret, sizeof dst->prev_secret);
        dst->has_prev = src->has_prev;
        dst->cookie_clock_set = src->cookie_clock_set;
        dst->cookie_since_ms = src->cookie_since_ms;
    }
}

/* Every MWI_DTLS_COOKIE_PERIOD_MS the cookie secret changes, the old one honoured one period more:
 * a secret that never changed let a cookie seen once (on the path, or in a capture) open
 * handshakes from that address for the gateway's whole life. Driven by the caller's clock,
 * lazily: cookies are only made here, so a secret is never older than its period when one is. */
static void rotate_cookie_secret(mwi_dtls_ctx *ctx, uint64_t now_ms)
{
    if (!ctx->cookie_clock_set || now_ms < ctx->cookie_since_ms) {
        ctx->cookie_clock_set = true;
        ctx->cookie_since_ms = now_ms;
        return;
    }
    uint64_t age = now_ms - ctx->cookie_since_ms;
    if (age < MWI_DTLS_COOKIE_PERIOD_MS)
        return;
    unsigned char fresh[sizeof ctx->cookie_secret];
    if (wc_RNG_GenerateBlock(&ctx->rng, fresh, sizeof fresh) != 0)
        return; /* keep the current one rather than stop answering */
    ctx->has_prev = age < 2 * MWI_DTLS_COOKIE_PERIOD_MS; /* else it too is past its time */
    if (ctx->has_prev)
        memcpy(ctx->prev_secret, ctx->cookie_secret, sizeof ctx->prev_secret);
    else
        mwi_wipe(ctx->prev_secret, sizeof ctx->prev_secret);
    memcpy(ctx->cookie_secret, fresh, sizeof fresh);
    mwi_wipe(fresh, sizeof fresh);
    ctx->cookie_since_ms = now_ms;
}

/* Runs the ClientHello @p dgram through a throwaway connection verifying cookies with @p secret.
 * Its one answer to an unverified address is held in @p reply, not sent; what a verified one is
 * sent goes out. *out_conn is the connection (NULL only on failure to make one). */
static mw_err probe(mwi_dtls_ctx *ctx, const unsigned char *secret, const mw_addr_t *peer,
                    const uint8_t *dgram, size_t len, uint64_t now_ms, mwi_dtls_send_fn *send,
                    void *send_ctx, uint8_t *reply, size_t *reply_len, mwi_dtls_conn **out_conn)
{
    mwi_dtls_conn *c = NULL;
    mw_err e = mwi_dtls_conn_create(ctx, peer, send, send_ctx, &c);
    if (e != MW_OK)
        return e == MW_ENOMEM ? MW_ENOMEM : MW_EAGAIN;
    if (secret != ctx->cookie_secret &&
        wolfSSL_DTLS_SetCookieSecret(c->ssl, secret, sizeof ctx->cookie_secret) != 0) {
        mwi_dtls_conn_destroy(&c);
        return MW_EAGAIN;
    }
    c->srv->probing = true;
    c->srv->probe_in_len = len;
    c->srv->probe_reply = reply;
    c->started = true;
    mwi_dtls_lend_input(c, dgram, len);
    e = mwi_dtls_handshake_step(c, now_ms);
    mwi_dtls_lend_input(c, NULL, 0);
    c->srv->probing = false;
    c->srv->probe_reply = NULL;
    *reply_len = c->srv->probe_reply_len;
    *out_conn = c;
    return e;
}

mw_err mwi_dtls_accept(mwi_dtls_ctx *ctx, const mw_addr_t *peer, const uint8_t *dgram, size_t len,
                       uint64_t now_ms, mwi_dtls_send_fn *send, void *send_ctx,
                       mwi_dtls_conn **out_conn, mw_error_detail_t *out_detail)
{
    if (out_detail)
        memset(out_detail, 0, sizeof *out_detail);
    if (out_conn == NULL)
        return MW_EINVAL;
    *out_conn = NULL;
    if (dgram != NULL)
        len = mwi_dtls_usable_records(dgram, len, MWI_DTLS_AEAD_NONCE + MWI_DTLS_MAX_AEAD_TAG,
                                      mwi_dtls_client_hello_well_formed);
    if (ctx == NULL || ctx->role != MWI_DTLS_SERVER || dgram == NULL ||
        !mwi_dtls_is_client_hello(dgram, len))
        return MW_EAGAIN;
    rotate_cookie_secret(ctx, now_ms);
    uint8_t reply[MWI_DTLS_MAX_DATAGRAM];
    size_t reply_len = 0;
    mwi_dtls_conn *c = NULL;
    mw_err e = probe(ctx, ctx->cookie_secret, peer, dgram, len, now_ms, send, send_ctx, reply,
                     &reply_len, &c);
    if (e == MW_ENOMEM)
        return MW_ENOMEM;
    if ((e == MW_EINPROGRESS || e == MW_OK) && !c->srv->sent_server_hello && ctx->has_prev &&
        mwi_dtls_hello_has_cookie(dgram, len)) {
        /* A cookie the current secret did not make may be one of the previous secret's. */
        uint8_t unused[MWI_DTLS_MAX_DATAGRAM];
        size_t unused_len = 0;
        mwi_dtls_conn *older = NULL;
        mw_err oe = probe(ctx, ctx->prev_secret, peer, dgram, len, now_ms, send, send_ctx, unused,
                          &unused_len, &older);
        if ((oe == MW_EINPROGRESS || oe == MW_OK) && older->srv->sent_server_hello) {
            mwi_dtls_conn_destroy(&c);
            *out_conn = older;
            return MW_OK;
        }
        mwi_dtls_conn_destroy(&older);
    }
    if (reply_len > 0)
        send(send_ctx, reply, reply_len);
    if (c == NULL)
        return MW_EAGAIN;
    if ((e == MW_EINPROGRESS || e == MW_OK) && c->srv->sent_server_hello) {
        *out_conn = c;
        return MW_OK;
    }
    if (e != MW_EINPROGRESS && e != MW_OK && out_detail)
        *out_detail = c->err; /* e.g. no suite in common: worth an audit line */
    mwi_dtls_conn_destroy(&c);
    return e != MW_EINPROGRESS && e != MW_OK && e != MW_ENOMEM ? e : MW_EAGAIN;
}

mw_err mwi_dtls_ctx_reload_crl(mwi_dtls_ctx *ctx, const char *crl_file, mw_error_detail_t *d)
{
    if (d)
        memset(d, 0, sizeof *d);
    if (ctx == NULL || crl_file == NULL)
        return MW_EINVAL;
    mwi_dtls_cred crl;
    mw_err e = mwi_dtls_cred_get("CRL", crl_file, "crl_file", (mw_blob_t){NULL, 0}, "crl_buf",
                        MWI_CRL_FILE_MAX, ctx->read_file, &crl, d);
    if (e != MW_OK)
        return e;
    e = mwi_dtls_crl_replace(ctx, &crl, false, d);
    mwi_dtls_cred_free(&crl);
    return e;
}

mw_err mwi_dtls_conn_revalidate(mwi_dtls_conn *c, mwi_dtls_ctx *ctx, bool chain)
{
    if (c == NULL || !c->established || c->failed)
        return MW_OK;
    if (ctx == NULL)
        ctx = c->ctx;
    if (!chain && !ctx->crl)
        return MW_OK;
    const uint8_t *der = NULL;
    int len = 0;
    if (!mwi_dtls_peer_leaf(c, &der, &len))
        return MW_OK;
    int rc = mwi_dtls_check_der_now(ctx, der, len, chain);
    if (rc == WOLFSSL_SUCCESS)
        return MW_OK;
    mw_err e = rc == CRL_CERT_REVOKED || rc == CRL_MISSING ? MW_ECERT_REVOKED : mwi_dtls_map_wolf(rc);
    if (e == MW_EDTLS || e == MW_EPEER_ALERT)
        e = MW_ECERT_UNTRUSTED;
    char buf[96], what[240];
    wolfSSL_ERR_error_string_n((unsigned long)rc, buf, sizeof buf);
    snprintf(what, sizeof what,
             "certificate '%.64s' is no longer accepted by the reloaded %s: %s (wolfSSL %d: %.60s)",
             c->peer_id, chain ? "credentials" : "CRL", mw_strerror(e), rc, buf);
    c->err.err = MW_OK;
    mwi_detail_first(&c->err, e, rc, what);
    /* close_notify first: the device learns now, and its next handshake
     * meets the new rules with a proper alert. */
    (void)wolfSSL_shutdown(c->ssl);
    c->failed = true;
    return e;
}

mw_err mwi_dtls_conn_recheck(mwi_dtls_conn *c)
{
    return mwi_dtls_conn_revalidate(c, NULL, false);
}

mw_err mwi_dtls_ctx_own_cert_text(const mwi_dtls_ctx *ctx, char *out, size_t cap)
{
    if (ctx == NULL || out == NULL || cap == 0)
        return MW_EINVAL;
    out[0] = '\0';
    WOLFSSL_X509 *x = wolfSSL_CTX_get0_certificate(ctx->wctx);
    if (x == NULL)
        return MW_EINVAL;
    unsigned char serial[32];
    int slen = (int)sizeof serial;
    char hex[2 * sizeof serial + 1] = "";
    if (wolfSSL_X509_get_serial_number(x, serial, &slen) == WOLFSSL_SUCCESS)
        for (int i = 0; i < slen && i < (int)sizeof serial; i++)
            snprintf(hex + 2 * i, 3, "%02x", serial[i]);
    char until[40] = "?";
    WOLFSSL_ASN1_TIME *na = wolfSSL_X509_get_notAfter(x);
    if (na == NULL || wolfSSL_ASN1_TIME_to_string(na, until, (int)sizeof until) == NULL)
        snprintf(until, sizeof until, "?");
    snprintf(out, cap, "certificate '%s', serial %s, valid until %s", ctx->own_id, hex, until);
    return MW_OK;
}

bool mwi_dtls_conn_peer_cert(mwi_dtls_conn *c, const uint8_t **der, size_t *len)
{
    int n = 0;
    if (c == NULL || !c->established || !mwi_dtls_peer_leaf(c, der, &n) || n <= 0)
        return false;
    *len = (size_t)n;
    return true;
}
