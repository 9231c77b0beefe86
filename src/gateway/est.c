/* SPDX-License-Identifier: Apache-2.0 */
/* est.c -- EST over CoAP (RFC 9148) on the gateway's DTLS endpoint, for devices that renew their
 * certificates over their sessions: /.well-known/est/crts answers the CA certificates, and
 * /.well-known/est/sren a PKCS#10 request that the gateway checks against the session's
 * identity before the configured issuer (mw_est_issue_fn) signs it. Served only with an issuer.
 * The formats are dtls/est.c's; the answer goes back through gateway.c. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/detail.h"
#include "core/limits.h"
#include "dtls/est.h"
#include "gateway/gateway_internal.h"
#include "port/posix/read_file.h"

#define PATH_CRTS ".well-known/est/crts"
#define PATH_SREN ".well-known/est/sren"

/* RFC 9148 9.1: the CoAP Content-Formats of EST. */
#define CF_PKCS7_CERTS 281 /* application/pkcs7-mime; smime-type=certs-only */
#define CF_PKCS10      286 /* application/pkcs10 */
#define CF_PKIX_CERT   287 /* application/pkix-cert */

bool mwi_gw_est_path(const char *uri_path)
{
    return strcmp(uri_path, PATH_CRTS) == 0 || strcmp(uri_path, PATH_SREN) == 0;
}

static void say(mwi_gw_answer *a, uint8_t code, const char *text)
{
    size_t n = strlen(text);
    a->code = code;
    a->cf = -1; /* a diagnostic payload (RFC 7252 5.5.2) */
    a->len = n < sizeof a->body ? n : sizeof a->body;
    memcpy(a->body, text, a->len);
}

/* The Content-Format a request's Accept asks of a certificate answer: PKCS#7 certs-only when
 * absent (RFC 9148 4.3), or one of the two; anything else is answered 4.06 in @p a, and -1. */
static int32_t accepted(const mwi_coap_msg *req, mwi_gw_answer *a)
{
    if (req->accept < 0 || req->accept == CF_PKCS7_CERTS)
        return CF_PKCS7_CERTS;
    if (req->accept == CF_PKIX_CERT)
        return CF_PKIX_CERT;
    say(a, MWI_COAP_CODE(4, 6), "Accept must be 281 (PKCS#7 certs-only) or 287 (one certificate)");
    return -1;
}

/* Puts @p certs in @p a as @p cf asks: PKCS#7, or one certificate alone. */
static void certs_answer(mwi_gw_answer *a, uint8_t code, int32_t cf, const mwi_est_certs *certs)
{
    if (cf == CF_PKIX_CERT) {
        if (certs->n != 1 || certs->len[0] > sizeof a->body) {
            say(a, MWI_COAP_CODE(4, 6),
                "more than one certificate: ask for application/pkcs7-mime (Accept 281)");
            return;
        }
        memcpy(a->body, certs->der[0], certs->len[0]);
        a->len = certs->len[0];
    } else if (mwi_est_certs_only(certs, a->body, sizeof a->body, &a->len) != MW_OK) {
        say(a, MWI_COAP_CODE(5, 0), "the certificates do not fit an answer");
        return;
    }
    a->code = code;
    a->cf = cf;
}

/* GET /crts: the CA certificates the gateway trusts for its devices, as configured now. */
static void crts(mw_gateway_t *gw, const mwi_coap_msg *req, mwi_gw_answer *a)
{
    if (req->code != MWI_COAP_GET) {
        say(a, MWI_COAP_METHOD_NOT_ALLOWED, "use GET");
        return;
    }
    int32_t cf = accepted(req, a);
    if (cf < 0)
        return;
    uint8_t *file = NULL;
    size_t len = 0;
    const uint8_t *ca = gw->ca_buf.data;
    if (ca != NULL) {
        len = gw->ca_buf.len;
    } else if (gw->ca_path == NULL ||
               mwi_file_read(gw->ca_path, MWI_CA_FILE_MAX, &file, &len) != MW_OK) {
        say(a, MWI_COAP_CODE(5, 0), "cannot read the CA certificates");
        return;
    } else {
        ca = file;
    }
    uint8_t *store = malloc(MWI_GW_EST_ANSWER_MAX);
    mwi_est_certs certs;
    if (store == NULL)
        say(a, MWI_COAP_SERVICE_UNAVAILABLE, "out of memory");
    else if (mwi_est_read_certs(ca, len, store, MWI_GW_EST_ANSWER_MAX, &certs) != MW_OK)
        say(a, MWI_COAP_CODE(5, 0), "the CA certificates do not fit an answer");
    else
        certs_answer(a, MWI_COAP_CONTENT, cf, &certs);
    free(store);
    free(file);
}

/* A refusal of /sren: counted, audited, and said to the device; a failure of the gateway's own
 * (5.xx) only in general words, as its reason may name the gateway's files. */
static void refuse_renewal(mw_gateway_t *gw, struct peer *p, const char *id, mw_err e,
                           mwi_gw_answer *a, uint8_t code, const char *why)
{
    gw->st.renewals_refused++;
    mwi_gw_audit(gw, MW_AUDIT_RENEWAL_REFUSED, p->text, id, e, 0, why);
    say(a, code,
        MWI_COAP_CODE_CLASS(code) == 5
            ? "the gateway cannot issue a certificate now; its audit trail says why"
            : why);
}

/* Stages the issued certificate in the store, so that the answer carrying it leaves only once
 * the store lists it. False, with @p why, if it cannot be: then the device does not get it. */
static bool record(mw_gateway_t *gw, const char *id, const mw_est_request_t *r, const uint8_t *cert,
                   size_t len, char *why, size_t cap)
{
    if (gw->store == NULL)
        return true;
    mwi_est_cert_facts now, before;
    if (mwi_est_cert_facts_read(cert, len, &now) != MW_OK) {
        snprintf(why, cap,
                 "renewal issued but not sent: the issuer's certificate has no readable serial "
                 "or validity, so the store cannot record it");
        return false;
    }
    mwi_store_cert c = {.device = id,
                        .serial = now.serial,
                        .replaces = "",
                        .not_before = now.not_before,
                        .not_after = now.not_after,
                        .der = cert,
                        .len = len};
    if (mwi_est_cert_facts_read(r->cert, r->cert_len, &before) == MW_OK)
        c.replaces = before.serial;
    if (!mwi_gw_stage_certificate(gw, &c)) {
        snprintf(why, cap,
                 "renewal issued (serial %s) but not sent: the store cannot record it; the "
                 "device asks again",
                 now.serial);
        return false;
    }
    return true;
}

/* POST /sren: a new certificate for the session's own identity, nothing else. */
static void sren(mw_gateway_t *gw, struct peer *p, const mwi_coap_msg *req, mwi_gw_answer *a)
{
    const char *id = mwi_dtls_conn_peer_id(p->link.conn);
    char why[MWI_AUDIT_REASON_MAX];
    if (req->code != MWI_COAP_POST) {
        say(a, MWI_COAP_METHOD_NOT_ALLOWED, "use POST");
        return;
    }
    if (req->content_format != CF_PKCS10) {
        say(a, MWI_COAP_UNSUPPORTED_CONTENT_FORMAT,
            "Content-Format must be 286 (application/pkcs10)");
        return;
    }
    int32_t cf = accepted(req, a);
    if (cf < 0)
        return;
    mw_error_detail_t d = {MW_OK, 0, ""};
    char cn[MW_ID_MAX + 1];
    mw_err e = mwi_est_check_csr(req->payload, req->payload_len, cn, &d);
    if (e != MW_OK) {
        snprintf(why, sizeof why, "renewal refused: %s", d.reason);
        refuse_renewal(gw, p, id, e, a,
                       e == MW_EIDENTITY ? MWI_COAP_CODE(4, 3) : MWI_COAP_BAD_REQUEST, why);
        return;
    }
    if (strcmp(cn, id) != 0) {
        snprintf(why, sizeof why,
                 "renewal refused: the request asks for '%.64s' but the session is '%.64s'; a "
                 "device renews only its own certificate",
                 cn, id);
        refuse_renewal(gw, p, id, MW_EIDENTITY, a, MWI_COAP_CODE(4, 3), why);
        return;
    }
    mw_est_request_t r = {.device_id = id, .csr = req->payload, .csr_len = req->payload_len};
    if (!mwi_dtls_conn_peer_cert(p->link.conn, &r.cert, &r.cert_len)) {
        refuse_renewal(gw, p, id, MW_ENO_PEER_CERT, a, MWI_COAP_CODE(4, 3),
                       "renewal refused: the session has no certificate to renew");
        return;
    }
    uint8_t cert[MW_EST_CERT_MAX];
    size_t cert_len = 0;
    char said[MWI_AUDIT_REASON_MAX - 80] = "";
    e = gw->est_issue(gw->est_ctx, &r, cert, sizeof cert, &cert_len, said, sizeof said);
    if (e == MW_OK && (cert_len == 0 || cert_len > sizeof cert))
        e = MW_EINTERNAL;
    if (e == MW_EAGAIN) {
        /* With the CA, not decided: neither issued nor refused. The device asks again after
         * Max-Age, with the same request (RFC 9148 5). */
        say(a, MWI_COAP_SERVICE_UNAVAILABLE,
            "the request is with the CA: send the same request again after Max-Age seconds");
        a->max_age = gw->est_retry_after_s;
        return;
    }
    if (e != MW_OK) {
        snprintf(why, sizeof why, "renewal refused by the issuer: %s (%s)",
                 said[0] ? said : "no reason given", mw_strerror(e));
        refuse_renewal(gw, p, id, e, a,
                       e == MW_EIDENTITY || e == MW_ECERT_REVOKED ? MWI_COAP_CODE(4, 3)
                                                                  : MWI_COAP_CODE(5, 0),
                       why);
        return;
    }
    mwi_est_certs one = {.der = {cert}, .len = {cert_len}, .n = 1};
    certs_answer(a, MWI_COAP_CHANGED, cf, &one);
    if (a->code != MWI_COAP_CHANGED) { /* issued, but cannot be sent: said loudly */
        snprintf(why, sizeof why,
                 "renewal issued but not sent: the certificate does not fit an "
                 "answer (%s)",
                 said);
        refuse_renewal(gw, p, id, MW_ENOSPC, a, MWI_COAP_CODE(5, 0), why);
        return;
    }
    if (!record(gw, id, &r, cert, cert_len, why, sizeof why)) {
        refuse_renewal(gw, p, id, MW_EIO, a, MWI_COAP_CODE(5, 0), why);
        return;
    }
    gw->st.renewals_issued++;
    snprintf(why, sizeof why, "new certificate issued over EST: %s",
             said[0] ? said : "(no detail)");
    mwi_gw_audit(gw, MW_AUDIT_CERT_RENEWED, p->text, id, MW_OK, 0, why);
}

void mwi_gw_est(mw_gateway_t *gw, struct peer *p, const mwi_coap_msg *req, mwi_gw_answer *a)
{
    if (gw->est_issue == NULL) {
        say(a, MWI_COAP_NOT_FOUND, "no such resource: this gateway does not serve EST");
        return;
    }
    if (strcmp(req->uri_path, PATH_CRTS) == 0)
        crts(gw, req, a);
    else
        sren(gw, p, req, a);
}
