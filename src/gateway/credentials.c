/* SPDX-License-Identifier: Apache-2.0 */
/* credentials.c -- the gateway's own credentials and its CRL: loaded from the configured files
 * at create, loaded again on request while the gateway runs (a bad file changes nothing), and
 * the established sessions that the new ones no longer accept closed at once. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/detail.h"
#include "core/wipe.h"
#include "gateway/gateway_internal.h"
#include "port/posix/key_file.h"
#include "port/posix/read_file.h"

static char *copy_str(const char *s)
{
    if (s == NULL)
        return NULL;
    size_t n = strlen(s) + 1;
    char *c = malloc(n);
    if (c)
        memcpy(c, s, n);
    return c;
}

/* A server context from the files of gw's paths, built and checked in full; the key file must
 * be the owner's alone unless shared keys are allowed. */
static mw_err load(const mw_gateway_t *gw, mwi_dtls_ctx **out, mw_error_detail_t *d)
{
    mwi_dtls_config dc = {
        .read_file = mwi_file_read,
        .role = MWI_DTLS_SERVER,
        .ca_file = gw->ca_path,
        .cert_file = gw->cert_path,
        .key_file = gw->key_path,
        .crl_file = gw->crl_path,
        .ca_buf = gw->ca_buf,
        .cert_buf = gw->cert_buf,
        .key_buf = gw->key_buf,
        .crl_buf = gw->crl_buf,
    };
    mw_err e = mwi_key_file_private(gw->key_path, gw->allow_shared_key, d);
    return e == MW_OK ? mwi_dtls_server_ctx_create(&dc, out, d) : e;
}

/* A copy of @p b (kept for reloads); false if it could not be made. */
static bool copy_blob(mw_blob_t b, mw_blob_t *out)
{
    *out = (mw_blob_t){NULL, 0};
    if (b.data == NULL || b.len == 0) {
        *out = b; /* a half-set one is kept as given: loading it says what is wrong */
        return true;
    }
    uint8_t *c = malloc(b.len);
    if (c == NULL)
        return false;
    memcpy(c, b.data, b.len);
    out->data = c;
    out->len = b.len;
    return true;
}

static void free_blob(mw_blob_t *b, bool secret)
{
    if (b->data != NULL && b->len != 0) {
        /* Our own copy (copy_blob): the const of mw_blob_t is the caller's promise, not ours. */
        uint8_t *own;
        memcpy(&own, &b->data, sizeof own);
        if (secret)
            mwi_wipe(own, b->len);
        free(own);
    }
    *b = (mw_blob_t){NULL, 0};
}

mw_err mwi_gw_credentials_init(mw_gateway_t *gw, const mw_gateway_config_t *cfg,
                               mw_error_detail_t *d)
{
    /* Copies: the caller's configuration strings need not outlive mw_gateway_create. */
    gw->ca_path = copy_str(cfg->ca_file);
    gw->cert_path = copy_str(cfg->cert_file);
    gw->key_path = copy_str(cfg->key_file);
    gw->crl_path = copy_str(cfg->crl_file);
    if ((cfg->ca_file && !gw->ca_path) || (cfg->cert_file && !gw->cert_path) ||
        (cfg->key_file && !gw->key_path) || (cfg->crl_file && !gw->crl_path) ||
        !copy_blob(cfg->ca_buf, &gw->ca_buf) || !copy_blob(cfg->cert_buf, &gw->cert_buf) ||
        !copy_blob(cfg->key_buf, &gw->key_buf) || !copy_blob(cfg->crl_buf, &gw->crl_buf))
        return mwi_detail_fail(d, MW_ENOMEM, "out of memory");
    gw->allow_shared_key = cfg->allow_shared_key_file;
    return load(gw, &gw->dtls, d);
}

void mwi_gw_credentials_fini(mw_gateway_t *gw)
{
    mwi_dtls_ctx_destroy(&gw->dtls);
    free(gw->ca_path);
    free(gw->cert_path);
    free(gw->key_path);
    free(gw->crl_path);
    gw->ca_path = gw->cert_path = gw->key_path = gw->crl_path = NULL;
    free_blob(&gw->ca_buf, false);
    free_blob(&gw->cert_buf, false);
    free_blob(&gw->key_buf, true);
    free_blob(&gw->crl_buf, false);
}

/* Closes the established sessions whose device certificate @p ctx no longer
 * accepts (revoked by its CRL; with @p chain also another CA or out of its
 * validity). The others carry on: their keys do not depend on it. */
static uint32_t close_invalidated(mw_gateway_t *gw, mwi_dtls_ctx *ctx, bool chain)
{
    uint32_t dropped = 0;
    for (uint32_t b = 0; b < gw->peer_buckets; b++) {
        struct peer *p = gw->peers[b];
        while (p) {
            struct peer *nx = p->hnext;
            if (mwi_dtls_conn_revalidate(p->link.conn, ctx, chain) != MW_OK) {
                mw_error_detail_t why;
                mwi_dtls_conn_error(p->link.conn, &why);
                mwi_gw_audit(gw, MW_AUDIT_SESSION_CLOSED, p->text,
                             mwi_dtls_conn_peer_id(p->link.conn), why.err, why.foreign, why.reason);
                /* It was established (revalidate sent close_notify and marked
                 * it failed, so peer_free no longer counts it). */
                if (gw->st.sessions > 0)
                    gw->st.sessions--;
                mwi_gw_peer_remove(gw, p);
                gw->st.sessions_invalidated++;
                dropped++;
            }
            p = nx;
        }
    }
    return dropped;
}

mw_err mw_gateway_reload_crl(mw_gateway_t *gw, const char *crl_file, mw_error_detail_t *d)
{
    if (gw == NULL || crl_file == NULL)
        return MW_EINVAL;
    mw_err e = mwi_dtls_ctx_reload_crl(gw->dtls, crl_file, d);
    if (e != MW_OK) {
        mwi_gw_audit(gw, MW_AUDIT_CRL_RELOAD_FAILED, "", "", e, d ? d->foreign : 0,
                     d ? d->reason : "cannot load the CRL; the previous one stays in force");
        return e;
    }
    /* The CRL in force is what a later credentials reload loads again. */
    char *path = copy_str(crl_file);
    if (path) {
        free(gw->crl_path);
        gw->crl_path = path;
        free_blob(&gw->crl_buf, false); /* the file replaces a CRL given in memory */
    }
    /* Sessions that stay valid carry on; a revoked device's session ends now,
     * not at its next handshake. Checked against the current context: a
     * session made before a credentials reload holds an older one. */
    uint32_t dropped = close_invalidated(gw, gw->dtls, false);
    char msg[120];
    snprintf(msg, sizeof msg, "CRL reloaded; %u session(s) of revoked devices closed", dropped);
    mwi_gw_audit(gw, MW_AUDIT_CRL_RELOADED, "", "", MW_OK, 0, msg);
    return MW_OK;
}

mw_err mw_gateway_reload_credentials(mw_gateway_t *gw, mw_error_detail_t *d)
{
    mw_error_detail_t scratch;
    if (d == NULL)
        d = &scratch;
    memset(d, 0, sizeof *d);
    if (gw == NULL)
        return MW_EINVAL;
    /* A new context for new handshakes, built and checked in full before it
     * replaces anything: a bad, missing or mismatched file leaves the gateway
     * exactly as it was. The old context is not changed in place: wolfSSL
     * objects borrow its certificate and key buffers, and established
     * sessions keep using it until they end (mwi_dtls_ctx is refcounted). */
    mwi_dtls_ctx *fresh = NULL;
    mw_err e = load(gw, &fresh, d);
    if (e != MW_OK) {
        gw->st.credential_reload_failures++;
        char why[sizeof d->reason + 64];
        snprintf(why, sizeof why, "%s; the previous credentials stay in force", d->reason);
        mwi_gw_audit(gw, MW_AUDIT_CREDENTIALS_RELOAD_FAILED, "", "", e, d->foreign, why);
        return e;
    }
    mwi_dtls_ctx_share_cookie_secret(fresh, gw->dtls);
    mwi_dtls_ctx_destroy(&gw->dtls); /* lives on with the sessions made under it */
    gw->dtls = fresh;
    gw->st.credential_reloads++;
    uint32_t dropped = close_invalidated(gw, gw->dtls, true);
    char own[160], msg[300];
    if (mwi_dtls_ctx_own_cert_text(gw->dtls, own, sizeof own) != MW_OK)
        snprintf(own, sizeof own, "certificate");
    snprintf(msg, sizeof msg,
             "credentials reloaded: new handshakes get %s; %u session(s) no longer valid closed, "
             "the others carry on",
             own, dropped);
    mwi_gw_audit(gw, MW_AUDIT_CREDENTIALS_RELOADED, "", "", MW_OK, 0, msg);
    if (gw->crl_path || gw->crl_buf.data) {
        snprintf(msg, sizeof msg, "CRL reloaded with the credentials; %u session(s) closed",
                 dropped);
        mwi_gw_audit(gw, MW_AUDIT_CRL_RELOADED, "", "", MW_OK, 0, msg);
    }
    return MW_OK;
}
