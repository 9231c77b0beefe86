/* SPDX-License-Identifier: Apache-2.0 */
/* link.c -- make-before-break over two DTLS connections of one peer (link.h). */
#include <string.h>

#include "dtls/link.h"

void mwi_link_init(mwi_link *l)
{
    if (l != NULL)
        memset(l, 0, sizeof *l);
}

void mwi_link_clear(mwi_link *l)
{
    if (l == NULL)
        return;
    mwi_dtls_conn_destroy(&l->next);
    mwi_dtls_conn_destroy(&l->conn);
}

mw_err mwi_link_add(mwi_link *l, mwi_dtls_conn *conn)
{
    if (l == NULL || conn == NULL)
        return MW_EINVAL;
    if (l->conn == NULL) {
        l->conn = conn;
        return MW_OK;
    }
    /* Make-before-break replaces an established session only; a handshake is simply retried. */
    if (l->next != NULL || !mwi_dtls_conn_established(l->conn))
        return MW_EINVAL;
    l->next = conn;
    return MW_OK;
}

mw_err mwi_link_connect(mwi_link *l, mwi_dtls_ctx *ctx, const mw_addr_t *peer,
                        mwi_dtls_send_fn *send, void *send_ctx)
{
    if (l == NULL || l->next != NULL || (l->conn != NULL && !mwi_dtls_conn_established(l->conn)))
        return MW_EINVAL;
    mwi_dtls_conn *c = NULL;
    mw_err e = mwi_dtls_conn_create(ctx, peer, send, send_ctx, &c);
    if (e != MW_OK)
        return e;
    e = mwi_link_add(l, c);
    if (e != MW_OK)
        mwi_dtls_conn_destroy(&c);
    return e;
}

mw_err mwi_link_start(mwi_link *l, uint64_t now_ms)
{
    if (l == NULL || l->conn == NULL)
        return MW_EINVAL;
    if (l->next == NULL)
        return mwi_dtls_conn_start(l->conn, now_ms);
    mw_err e = mwi_dtls_conn_start(l->next, now_ms);
    if (e != MW_EINPROGRESS && e != MW_OK)
        mwi_dtls_conn_destroy(&l->next);
    return e;
}

bool mwi_link_routes_to_next(const mwi_link *l, const uint8_t *dgram, size_t len)
{
    /* Handshake and CCS records belong to the session being negotiated; a peer sends its
     * application data on the current one until it has switched. */
    return l != NULL && l->next != NULL && mwi_dtls_is_handshake_flight(dgram, len);
}

bool mwi_link_hello_opens_next(const mwi_link *l, const uint8_t *dgram, size_t len)
{
    return l != NULL && l->next == NULL && mwi_dtls_conn_established(l->conn) &&
           mwi_dtls_is_client_hello(dgram, len);
}

/* The next connection is up: it becomes the current one, the old one and its keys go. */
static void switch_to_next(mwi_link *l, mwi_link_result *r)
{
    r->replaced_established = mwi_dtls_conn_established(l->conn);
    mwi_dtls_conn_destroy(&l->conn);
    l->conn = l->next;
    l->next = NULL;
    r->event = MWI_LINK_SWITCHED;
}

mwi_link_event mwi_link_input(mwi_link *l, const uint8_t *dgram, size_t len, uint64_t now_ms,
                              mwi_dtls_record_fn *on_record, void *record_ctx, mwi_link_result *out)
{
    memset(out, 0, sizeof *out);
    out->err = MW_EINVAL;
    if (l == NULL || l->conn == NULL)
        return out->event;
    out->to_next = mwi_link_routes_to_next(l, dgram, len);
    mwi_dtls_conn *c = out->to_next ? l->next : l->conn;
    out->was_established = mwi_dtls_conn_established(c);
    mw_err e = mwi_dtls_conn_input(c, dgram, len, now_ms, on_record, record_ctx);
    out->err = e;
    if (e == MW_OK && !out->was_established) {
        if (out->to_next)
            switch_to_next(l, out);
        else
            out->event = MWI_LINK_ESTABLISHED;
    } else if (e != MW_OK && e != MW_EINPROGRESS) {
        mwi_dtls_conn_error(c, &out->detail);
        if (out->to_next) {
            mwi_dtls_conn_destroy(&l->next);
            out->event = MWI_LINK_NEXT_FAILED;
        } else {
            out->event = MWI_LINK_FAILED;
        }
    }
    return out->event;
}

bool mwi_link_drop_current(mwi_link *l)
{
    if (l == NULL)
        return false;
    mwi_dtls_conn_destroy(&l->conn);
    l->conn = l->next;
    l->next = NULL;
    return l->conn != NULL;
}

void mwi_link_drop_next(mwi_link *l)
{
    if (l != NULL)
        mwi_dtls_conn_destroy(&l->next);
}

uint64_t mwi_link_deadline(const mwi_link *l)
{
    if (l == NULL)
        return UINT64_MAX;
    uint64_t a = mwi_dtls_conn_deadline(l->conn), b = mwi_dtls_conn_deadline(l->next);
    return a < b ? a : b;
}
