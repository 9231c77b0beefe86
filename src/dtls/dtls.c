/* SPDX-License-Identifier: Apache-2.0 */
/* dtls.c -- DTLS 1.2 on wolfSSL 5.5.4 with custom I/O, mutual X.509, and the workarounds its build
 * needs: what both roles share, and the client (the device's path). It uses wolfSSL's native API
 * and wolfCrypt's certificate parser only, as the device's minimal wolfSSL has them
 * (src/port/none/user_settings.h: no OpenSSL compatibility layer, no CRL, no server). The CRL,
 * for either side, is crl.c (crl_none.c where wolfSSL has none). The gateway's side (accept,
 * cookies, the final-flight cache, CRL reloads, revalidation) is dtls_server.c, in the gateway
 * library; a server context reaches it through its hooks. */
#include "dtls/dtls_internal.h" /* first: wolfSSL's options before its other headers */

#include <wolfssl/error-ssl.h>
#include <wolfssl/wolfcrypt/error-crypt.h>
#include <wolfssl/wolfcrypt/memory.h>
#include <wolfssl/wolfcrypt/ecc.h>
#include <wolfssl/wolfcrypt/asn.h>
#include <wolfssl/wolfcrypt/asn_public.h>
#include <wolfssl/wolfcrypt/sha256.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/asn_time.h"
#include "core/detail.h"
#include "core/limits.h"
#include "core/wipe.h"
#include "core/p11_uri.h"
#include "dtls/crl.h"
#include "dtls/dtls.h"
#include "dtls/p11.h"
#include "dtls/records.h"

/* The credential files' size limits (MWI_KEY_FILE_MAX, MWI_CA_FILE_MAX, MWI_CA_PINS_MAX) are in
 * core/limits.h. */

/* Connections alive in this process: lets tests prove that a replaced
 * session (and with it its keys) was destroyed. */
static _Atomic long live_conns;

/* The first error wins: later ones are consequences. */
static void set_err(mw_error_detail_t *d, mw_err e, int foreign, const char *reason)
{
    mwi_detail_first(d, e, foreign, reason);
}

static const char *alert_name(int code)
{
    switch (code) {
    case 0:
        return "close_notify";
    case 10:
        return "unexpected_message";
    case 20:
        return "bad_record_mac";
    case 40:
        return "handshake_failure";
    case 42:
        return "bad_certificate";
    case 43:
        return "unsupported_certificate";
    case 44:
        return "certificate_revoked";
    case 45:
        return "certificate_expired";
    case 46:
        return "certificate_unknown";
    case 47:
        return "illegal_parameter";
    case 48:
        return "unknown_ca";
    case 49:
        return "access_denied";
    case 50:
        return "decode_error";
    case 51:
        return "decrypt_error";
    case 70:
        return "protocol_version";
    case 71:
        return "insufficient_security";
    case 80:
        return "internal_error";
    default:
        return "other";
    }
}

#ifdef OPENSSL_EXTRA
/* With OPENSSL_EXTRA (Debian's build) the verify callback sees OpenSSL's
 * X509_V_ERR numbers (positive) for chain errors, and wolfSSL's own codes
 * (negative) for the rest; both are mapped, and the native code replaces the
 * X509 one in the detail once wolfSSL reports it (record_wolf_failure). Without it (the
 * device's wolfSSL) every code is wolfSSL's own. */
static mw_err map_x509(int code)
{
    switch (code) {
    case X509_V_ERR_CERT_NOT_YET_VALID:
    case X509_V_ERR_ERROR_IN_CERT_NOT_BEFORE_FIELD:
        return MW_ECERT_NOT_YET_VALID;
    case X509_V_ERR_CERT_HAS_EXPIRED:
    case X509_V_ERR_ERROR_IN_CERT_NOT_AFTER_FIELD:
        return MW_ECERT_EXPIRED;
    case X509_V_ERR_CERT_REVOKED:
    case X509_V_ERR_UNABLE_TO_GET_CRL:
        return MW_ECERT_REVOKED;
    case X509_V_ERR_INVALID_PURPOSE:
        return MW_ECERT_ROLE;
    case X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT:
    case X509_V_ERR_UNABLE_TO_DECRYPT_CERT_SIGNATURE:
    case X509_V_ERR_UNABLE_TO_DECODE_ISSUER_PUBLIC_KEY:
    case X509_V_ERR_CERT_SIGNATURE_FAILURE:
    case X509_V_ERR_DEPTH_ZERO_SELF_SIGNED_CERT:
    case X509_V_ERR_SELF_SIGNED_CERT_IN_CHAIN:
    case X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY:
    case X509_V_ERR_UNABLE_TO_VERIFY_LEAF_SIGNATURE:
    case X509_V_ERR_INVALID_CA:
    case X509_V_ERR_CERT_UNTRUSTED:
    case X509_V_ERR_CERT_REJECTED:
    case X509_V_ERR_CERT_CHAIN_TOO_LONG:
    case X509_V_ERR_PATH_LENGTH_EXCEEDED:
        return MW_ECERT_UNTRUSTED;
    default:
        return MW_EDTLS;
    }
}
#endif

static mw_err map_wolf(int code)
{
#ifdef OPENSSL_EXTRA
    if (code > 0)
        return map_x509(code);
#endif
    switch (code) {
    case ASN_AFTER_DATE_E:
        return MW_ECERT_EXPIRED;
    case ASN_BEFORE_DATE_E:
        return MW_ECERT_NOT_YET_VALID;
    case ASN_NO_SIGNER_E:
    case ASN_SELF_SIGNED_E:
    case ASN_SIG_CONFIRM_E:
    case ASN_SIG_KEY_E:
    case ASN_PATHLEN_INV_E:
    case ASN_PATHLEN_SIZE_E:
    case MAX_CHAIN_ERROR:
        return MW_ECERT_UNTRUSTED;
    case CRL_CERT_REVOKED:
    case CRL_MISSING:
        return MW_ECERT_REVOKED;
    case NO_PEER_CERT:
        return MW_ENO_PEER_CERT;
    case EXTKEYUSE_AUTH_E:
        return MW_ECERT_ROLE;
    case DOMAIN_NAME_MISMATCH:
        return MW_ECERT_NAME;
    case MATCH_SUITE_ERROR:
        return MW_ECIPHER;
    case FATAL_ERROR:
        return MW_EPEER_ALERT;
    case MEMORY_E:
        return MW_ENOMEM;
    default:
        return MW_EDTLS;
    }
}

mw_err mwi_dtls_map_wolf(int code)
{
    return map_wolf(code);
}

/* Records wolfSSL's failure with its code and words, unless a more precise
 * reason (from the verify callback) is already there. */
static void record_wolf_failure(mwi_dtls_conn *c, int code)
{
    char buf[96] = "";
    mw_error_detail_t *d = &c->err;
    c->failed = true;
    if (d->err != MW_OK) {
        if (d->foreign >= 0 && code < 0 && code != FATAL_ERROR)
            d->foreign = code; /* wolfSSL's own number, as its documentation lists them */
        return;
    }
    char why[sizeof d->reason];
    if (code == FATAL_ERROR) {
        WOLFSSL_ALERT_HISTORY h;
        memset(&h, 0, sizeof h);
        (void)wolfSSL_get_alert_history(c->ssl, &h);
        if (h.last_rx.code == 45) {
            /* TLS has no alert for "not valid yet": wolfSSL sends certificate_expired for
             * both, so the receiver cannot tell which and must not claim "expired". */
            MWI_TEXTF(why, sizeof why,
                      "the %s refused our certificate as expired or not yet valid; check its "
                      "validity dates and both clocks",
                      c->ctx->role == MWI_DTLS_CLIENT ? "gateway" : "device");
        } else {
            MWI_TEXTF(why, sizeof why, "the peer refused the handshake with alert %s (%d)",
                      alert_name(h.last_rx.code), h.last_rx.code);
        }
        mwi_detail_set(d, MW_EPEER_ALERT, code, why);
        return;
    }
#if MW_ERROR_REASONS
    wolfSSL_ERR_error_string_n((unsigned long)code, buf, sizeof buf);
#endif
    mw_err e = map_wolf(code);
    MWI_TEXTF(why, sizeof why, "%s (wolfSSL %d: %s)", mw_strerror(e), code, buf);
    mwi_detail_set(d, e, code, why);
}

static bool id_valid(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > MW_ID_MAX)
        return false;
    for (size_t i = 0; i < n; i++) {
        char ch = s[i];
        bool ok = (ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z') ||
                  (ch >= '0' && ch <= '9') || (i > 0 && (ch == '.' || ch == '_' || ch == '-'));
        if (!ok)
            return false;
    }
    return true;
}

/* One DER element at @p p (at most @p n bytes): its tag, and its contents in [*body, *body +
 * *len). Definite lengths of up to four bytes, as certificates use. */
static bool der_next(const uint8_t *p, size_t n, uint8_t *tag, const uint8_t **body, size_t *len)
{
    if (n < 2)
        return false;
    size_t l = p[1], hdr = 2;
    if (l & 0x80) {
        size_t k = l & 0x7f;
        if (k == 0 || k > 4 || n < 2 + k)
            return false;
        l = 0;
        for (size_t i = 0; i < k; i++)
            l = (l << 8) | p[2 + i];
        hdr += k;
    }
    if (l > n - hdr)
        return false;
    *tag = p[0];
    *body = p + hdr;
    *len = l;
    return true;
}

/* The common names (2.5.4.3) of the subject Name @p name: how many, and the first two's bytes.
 * -1 if the Name does not parse. */
static int subject_cns(const uint8_t *name, size_t n, const uint8_t *cn[2], size_t cn_len[2])
{
    static const uint8_t oid_cn[] = {0x55, 0x04, 0x03};
    uint8_t tag;
    const uint8_t *b;
    size_t len;
    int count = 0;
    if (n > 0 && name[0] == 0x30) { /* the Name's own SEQUENCE: go inside */
        if (!der_next(name, n, &tag, &b, &len))
            return -1;
        name = b;
        n = len;
    }
    while (n > 0) {
        const uint8_t *rdn;
        size_t rdn_len;
        if (!der_next(name, n, &tag, &rdn, &rdn_len) || tag != 0x31)
            return -1;
        n -= (size_t)(rdn + rdn_len - name);
        name = rdn + rdn_len;
        while (rdn_len > 0) { /* a multi-valued RDN may hide a second CN */
            const uint8_t *atv, *oid, *val;
            size_t atv_len, oid_len, val_len;
            if (!der_next(rdn, rdn_len, &tag, &atv, &atv_len) || tag != 0x30 ||
                !der_next(atv, atv_len, &tag, &oid, &oid_len) || tag != 0x06 ||
                !der_next(oid + oid_len, atv_len - (size_t)(oid + oid_len - atv), &tag, &val,
                          &val_len))
                return -1;
            if (oid_len == sizeof oid_cn && memcmp(oid, oid_cn, sizeof oid_cn) == 0) {
                if (count < 2) {
                    cn[count] = val;
                    cn_len[count] = val_len;
                }
                count++;
            }
            rdn_len -= (size_t)(atv + atv_len - rdn);
            rdn = atv + atv_len;
        }
    }
    return count;
}

/* @p b (@p n bytes) as text for a detail: at most 64 characters, anything unprintable as '?'. */
static void shown(const uint8_t *b, size_t n, char out[MW_ID_MAX + 1])
{
    size_t i = 0;
    for (; i < n && i < MW_ID_MAX; i++)
        out[i] = b[i] >= 0x20 && b[i] < 0x7f ? (char)b[i] : '?';
    out[i] = '\0';
}

/* Whether @p b (@p n bytes) is @p s exactly: same bytes, same length, no case folding, no
 * wildcard. */
static bool same_bytes(const uint8_t *b, size_t n, const char *s)
{
    return n == strlen(s) && memcmp(b, s, n) == 0;
}

/*
 * The peer's identity from its certificate @p dc (parsed; @p count common names, the first two
 * in @p cns): exactly one common name, the identity reported, copied to @p out_id. A device
 * also requires it equal, byte for byte, to the gateway name it expects, and every DNS
 * subjectAltName too. wolfSSL's domain check, used before, folds case, honours wildcards and
 * accepts any SAN or the last CN while the first CN was reported: a certificate for '*', 'g*',
 * 'GW1', or CN 'evil' plus CN 'gw1' passed for 'gw1' and one wildcard certificate from the CA
 * would impersonate every gateway.
 */
static mw_err check_names(const mwi_dtls_ctx *ctx, const DecodedCert *dc, int count,
                          const uint8_t *const cns[2], const size_t cns_len[2],
                          char out_id[MW_ID_MAX + 1], mw_error_detail_t *d)
{
    bool client = ctx->role == MWI_DTLS_CLIENT;
    mw_err bad = client ? MW_ECERT_NAME : MW_ECERT_IDENTITY;
    char what[400], a[MW_ID_MAX + 1], b[MW_ID_MAX + 1];
    if (count < 0) {
        set_err(d, bad, 0, "the peer's certificate subject cannot be read");
        return bad;
    }
    if (count != 1) {
        /* Both named: the second is the one a loose check would have matched. */
        shown(cns[0], cns_len[0], a);
        shown(cns[1], cns_len[1], b);
        if (count == 0)
            MWI_TEXTF(what, sizeof what, "the peer's certificate carries no common name");
        else
            MWI_TEXTF(what, sizeof what,
                      "the peer's certificate carries %d common names ('%s', '%s'%s), not one",
                      count, a, b, count > 2 ? ", ..." : "");
        if (client)
            MWI_TEXTF(what + strlen(what), sizeof what - strlen(what),
                      "; expected exactly one: '%s'", ctx->peer_name);
        set_err(d, bad, 0, what);
        return bad;
    }
    const uint8_t *cn = cns[0];
    size_t cn_len = cns_len[0];
    shown(cn, cn_len, a);
    if (client && !same_bytes(cn, cn_len, ctx->peer_name))
        return mwi_detail_firstf(d, bad, DOMAIN_NAME_MISMATCH,
                                 "the gateway's certificate names '%s', which does not match the "
                                 "expected gateway name '%s' exactly (case and every character "
                                 "count)",
                                 a, ctx->peer_name);
    if (cn_len > MW_ID_MAX || memchr(cn, '\0', cn_len) != NULL || !id_valid(a))
        return mwi_detail_firstf(d, bad, 0,
                                 "certificate common name '%s' is not a valid identity "
                                 "([A-Za-z0-9][A-Za-z0-9._-]{0,63})",
                                 a);
    for (const DNS_entry *n = dc->altNames; client && n != NULL; n = n->next) {
        if (n->type != ASN_DNS_TYPE || n->len < 0 ||
            same_bytes((const uint8_t *)n->name, (size_t)n->len, ctx->peer_name))
            continue;
        shown((const uint8_t *)n->name, (size_t)n->len, b);
        return mwi_detail_firstf(
            d, bad, DOMAIN_NAME_MISMATCH,
            "the gateway's certificate '%s' also names DNS '%s', which does not match the "
            "expected gateway name '%s' exactly (no wildcards)",
            a, b, ctx->peer_name);
    }
    memcpy(out_id, a, cn_len + 1);
    return MW_OK;
}

static bool is_pinned(const mwi_dtls_ctx *ctx, const unsigned char *der, int len)
{
    uint8_t h[32];
    if (ctx->n_pins == 0 || wc_Sha256Hash(der, (word32)len, h) != 0)
        return false;
    for (int i = 0; i < ctx->n_pins; i++)
        if (memcmp(h, ctx->pins[i], sizeof h) == 0)
            return true;
    return false;
}

/* Keeps the SHA-256 of each certificate in the CA (wolfSSL has read and checked it): each PEM
 * block, or the one DER certificate. */
/* The notAfter of a parsed certificate, 0 if it cannot be read. */
static int64_t not_after(const DecodedCert *dc)
{
    int64_t t = 0;
    if (dc->afterDate == NULL || dc->afterDateLen <= 0 ||
        !mwi_asn_time(dc->afterDate, (size_t)dc->afterDateLen, &t))
        return 0;
    return t;
}

static int64_t not_before(const DecodedCert *dc)
{
    int64_t t = 0;
    if (dc->beforeDate == NULL || dc->beforeDateLen <= 0 ||
        !mwi_asn_time(dc->beforeDate, (size_t)dc->beforeDateLen, &t))
        return 0;
    return t;
}

/* A CA certificate (DER) of the context: its digest pinned, its expiry counted. */
static void add_ca(mwi_dtls_ctx *ctx, const uint8_t *der, size_t len)
{
    if (ctx->n_pins < MWI_CA_PINS_MAX &&
        wc_Sha256Hash(der, (word32)len, ctx->pins[ctx->n_pins]) == 0)
        ctx->n_pins++;
    DecodedCert *dc = malloc(sizeof *dc);
    if (dc == NULL)
        return;
    InitDecodedCert(dc, der, (word32)len, NULL);
    int64_t t = ParseCert(dc, CERT_TYPE, NO_VERIFY, NULL) == 0 ? not_after(dc) : 0;
    FreeDecodedCert(dc);
    free(dc);
    if (t != 0 && (ctx->ca_not_after == 0 || t < ctx->ca_not_after))
        ctx->ca_not_after = t;
}

/* The first @p needle (of @p nlen bytes) in @p h[0..n), or NULL. */
static const uint8_t *find(const uint8_t *h, size_t n, const char *needle, size_t nlen)
{
    for (size_t i = 0; nlen <= n && i <= n - nlen; i++)
        if (memcmp(h + i, needle, nlen) == 0)
            return h + i;
    return NULL;
}

static void load_pins(mwi_dtls_ctx *ctx, const uint8_t *ca, size_t ca_len, int format)
{
    static const char begin[] = "-----BEGIN CERTIFICATE-----";
    static const char end[] = "-----END CERTIFICATE-----";
    ctx->n_pins = 0;
    ctx->ca_not_after = 0;
    if (format == WOLFSSL_FILETYPE_ASN1) {
        add_ca(ctx, ca, ca_len);
        return;
    }
    /* The caller's buffer is searched within its length: it need not end with a NUL. */
    uint8_t *der = malloc(ca_len); /* a certificate's DER is shorter than its PEM */
    if (der == NULL)
        return;
    const uint8_t *p = ca, *stop = ca + ca_len;
    while ((p = find(p, (size_t)(stop - p), begin, sizeof begin - 1)) != NULL) {
        const uint8_t *e = find(p, (size_t)(stop - p), end, sizeof end - 1);
        if (e == NULL)
            break;
        e += sizeof end - 1;
        int len = wc_CertPemToDer(p, (int)(e - p), der, (int)ca_len, CERT_TYPE);
        if (len > 0)
            add_ca(ctx, der, (size_t)len);
        p = e;
    }
    free(der);
}

/* The peer's leaf @p der: of the other role (EKU), signed by a configured CA itself (or the very
 * certificate the CA holds), and with the identity check_names wants, copied to @p out_id. The
 * same for a full handshake and a resumed one. wolfCrypt's certificate parser reads it: the
 * device's wolfSSL has no X509 objects. */
static mw_err check_peer(const mwi_dtls_ctx *ctx, const uint8_t *der, int len,
                         char out_id[MW_ID_MAX + 1], mw_error_detail_t *d)
{
    if (der == NULL || len <= 0) {
        set_err(d, MW_ECERT_IDENTITY, 0, "the peer's certificate cannot be read");
        return MW_ECERT_IDENTITY;
    }
    DecodedCert *dc = malloc(sizeof *dc);
    if (dc == NULL) {
        set_err(d, MW_ENOMEM, 0, "out of memory checking the peer's certificate");
        return MW_ENOMEM;
    }
    InitDecodedCert(dc, der, (word32)len, NULL);
    const uint8_t *cns[2] = {(const uint8_t *)"", (const uint8_t *)""};
    size_t cns_len[2] = {0, 0};
    int count = -1;
    unsigned int xku = 0;
    if (ParseCert(dc, CERT_TYPE, NO_VERIFY, NULL) == 0) {
        xku = dc->extExtKeyUsage;
        if (dc->subjectRaw != NULL)
            count = subject_cns(dc->subjectRaw, (size_t)dc->subjectRawLen, cns, cns_len);
    }
    char cn[MW_ID_MAX + 1];
    shown(cns[0], count > 0 ? cns_len[0] : 0, cn);
    bool want_server = ctx->role == MWI_DTLS_CLIENT;
    unsigned int need = want_server ? EXTKEYUSE_SERVER_AUTH : EXTKEYUSE_CLIENT_AUTH;
    unsigned int other = want_server ? EXTKEYUSE_CLIENT_AUTH : EXTKEYUSE_SERVER_AUTH;
    mw_err e;
    if (!ctx->skip_role && (!(xku & need) || (xku & other))) {
        e = mwi_detail_firstf(
            d, MW_ECERT_ROLE, EXTKEYUSE_AUTH_E,
            "certificate '%.64s' is not a %s certificate (extended key usage must be %s only)", cn,
            want_server ? "gateway" : "device", want_server ? "serverAuth" : "clientAuth");
        goto out;
    }
    /* Signed by a configured CA itself, not through a CA certificate the peer sent with it;
     * or the very certificate the CA file holds (pinning). */
    int rc = wolfSSL_CertManagerVerifyBuffer(ctx->anchors, der, len, WOLFSSL_FILETYPE_ASN1);
    if (rc != WOLFSSL_SUCCESS && !is_pinned(ctx, der, len)) {
        e = mwi_detail_firstf(
            d, MW_ECERT_UNTRUSTED, rc,
            "certificate '%.64s' is not issued by the configured CA itself (wolfSSL %d): "
            "the chain must be CA to leaf",
            cn, rc);
        goto out;
    }
    e = check_names(ctx, dc, count, cns, cns_len, out_id, d);
out:
    FreeDecodedCert(dc);
    free(dc);
    return e;
}

/* Called by wolfSSL for each certificate of the peer's chain, also when its
 * own checks passed (WOLFSSL_ALWAYS_VERIFY_CB), so that we can keep the exact
 * reason of a failure and add the checks wolfSSL does not make: the role
 * (EKU) and the exact identity (CN, and the gateway's name) of the leaf. The
 * connection comes as the callback's context (wolfSSL_SetCertCbCtx), the
 * certificates as the DER the peer sent (store->certs, the leaf first) and the
 * name of the one being checked as store->domain: all of it native wolfSSL. */
static int verify_cb(int preverify, WOLFSSL_X509_STORE_CTX *store)
{
    mwi_dtls_conn *c = store ? store->userCtx : NULL;
    if (c == NULL)
        return preverify;
    const char *cn = store->domain ? store->domain : "";
    if (!preverify) {
        int code = store->error;
        mw_err e = map_wolf(code);
        char buf[96] = "";
#if MW_ERROR_REASONS /* wolfSSL's table of error strings is linked only for a reason */
        wolfSSL_ERR_error_string_n((unsigned long)code, buf, sizeof buf);
#endif
        if (code > 0)
            mwi_detail_firstf(&c->err, e, code, "certificate '%.64s': %s (X509 verify error %d)",
                              cn, mw_strerror(e), code);
        else
            mwi_detail_firstf(&c->err, e, code, "certificate '%.64s': %s (wolfSSL %d: %.60s)", cn,
                              mw_strerror(e), code, buf);
        return 0;
    }
    if (store->totalCerts == 0 || store->certs == NULL) {
        /* wolfSSL runs the callback for an empty Certificate message too. */
        set_err(&c->err, MW_ENO_PEER_CERT, NO_PEER_CERT, "the peer sent no certificate");
        return 0;
    }
    if (store->error_depth != 0)
        return 1;

    const WOLFSSL_BUFFER_INFO *leaf = &store->certs[0];
    mw_err e = check_peer(c->ctx, leaf->buffer, (int)leaf->length, c->peer_id, &c->err);
    return e == MW_OK ? 1 : 0;
}

bool mwi_dtls_peer_leaf(mwi_dtls_conn *c, const uint8_t **der, int *len)
{
    WOLFSSL_X509_CHAIN *chain = wolfSSL_get_peer_chain(c->ssl);
    if (chain == NULL || wolfSSL_get_chain_count(chain) <= 0)
        return false;
    *der = wolfSSL_get_chain_cert(chain, 0);
    *len = wolfSSL_get_chain_length(chain, 0);
    return *der != NULL && *len > 0;
}

/* A session resumed by ID skips certificate verification in wolfSSL (and
 * with it CRL checks and our callback): the peer's certificate, kept with the
 * session, is checked again here as on a full handshake (role, exact identity
 * and, for a device, the gateway name this context expects: a session cached
 * under other rules must not carry a peer past them), revocation included. */
static mw_err check_resumed_peer(mwi_dtls_conn *c)
{
    const uint8_t *der = NULL;
    int len = 0;
    if (!mwi_dtls_peer_leaf(c, &der, &len)) {
        set_err(&c->err, MW_ENO_PEER_CERT, NO_PEER_CERT,
                "resumed session without a peer certificate");
        return MW_ENO_PEER_CERT;
    }
    const mwi_dtls_server_ops *server = c->ctx->server;
    char cn[MW_ID_MAX + 1] = "";
    mw_err e = check_peer(c->ctx, der, len, cn, &c->err);
    if (e != MW_OK) {
        size_t l = strlen(c->err.reason);
        MWI_TEXTF(c->err.reason + l, sizeof c->err.reason - l, ", on resumption");
        if (server)
            server->forget_session(c);
        return e;
    }
    /* The session cache is process-wide: a session made under credentials
     * since reloaded (another CA) must not outlive them, so the chain is
     * checked against this context's CA too, not only the CRL. */
    int rc = mwi_dtls_check_der_now(c->ctx, der, len, true);
    if (rc != WOLFSSL_SUCCESS && rc != CRL_CERT_REVOKED && rc != CRL_MISSING) {
        mw_err ce = map_wolf(rc);
        if (ce == MW_EDTLS || ce == MW_EPEER_ALERT || ce == MW_ENOMEM)
            ce = MW_ECERT_UNTRUSTED;
        mwi_detail_firstf(&c->err, ce, rc, "certificate '%.64s': %s on resumption (wolfSSL %d)", cn,
                          mw_strerror(ce), rc);
        if (server)
            server->forget_session(c);
        return ce;
    }
    if (rc != WOLFSSL_SUCCESS) {
        mwi_detail_firstf(&c->err, MW_ECERT_REVOKED, rc,
                          "certificate '%.64s': revoked, or the CRL is missing or expired, on "
                          "resumption (wolfSSL %d)",
                          cn, rc);
        /* Forget the session, so the next attempt is a full handshake that
         * fails with a proper alert. */
        if (server)
            server->forget_session(c);
        return MW_ECERT_REVOKED;
    }
    memcpy(c->peer_id, cn, strlen(cn) + 1);
    return MW_OK;
}

/* Lends @p dgram to wolfSSL's next read (io_recv takes it once); (NULL, 0) takes it back. */
void mwi_dtls_lend_input(mwi_dtls_conn *c, const uint8_t *dgram, size_t len)
{
    c->in = dgram;
    c->in_len = len;
}

static int io_recv(WOLFSSL *ssl, char *buf, int sz, void *vctx)
{
    (void)ssl;
    mwi_dtls_conn *c = vctx;
    if (c->in_len == 0 || sz <= 0)
        return WOLFSSL_CBIO_ERR_WANT_READ;
    /* A datagram longer than wolfSSL's buffer is truncated; its records then
     * fail their length checks and are dropped, as on a real socket. */
    size_t n = c->in_len < (size_t)sz ? c->in_len : (size_t)sz;
    memcpy(buf, c->in, n);
    mwi_dtls_lend_input(c, NULL, 0);
    return (int)n;
}

static int io_send(WOLFSSL *ssl, char *buf, int sz, void *vctx)
{
    (void)ssl;
    mwi_dtls_conn *c = vctx;
    const uint8_t *p = (const uint8_t *)buf;
    size_t n = (size_t)sz;
    if (sz <= 0)
        return 0;
    /* A server holds back its answer to an unverified address, and records its final flight. */
    if (c->ctx->server && c->ctx->server->hold_send(c, p, n))
        return sz;
    c->send(c->send_ctx, p, n);
    return sz;
}

/* Whether the DER SubjectPublicKeyInfo or private key in @p der is ECDSA on P-256, the only
 * curve of the protocol; a private key must also lie in [1, n-1] with its public point on the
 * curve. */
static bool der_is_p256(const uint8_t *der, word32 len, bool priv)
{
    ecc_key k;
    word32 idx = 0;
    if (wc_ecc_init(&k) != 0)
        return false;
    int rc = priv ? wc_EccPrivateKeyDecode(der, &idx, &k, len)
                  : wc_EccPublicKeyDecode(der, &idx, &k, len);
    bool ok = rc == 0 && wc_ecc_get_curve_id(k.idx) == ECC_SECP256R1;
    if (ok) {
        rc = wc_ecc_check_key(&k);
        /* SEC 1 makes the public key optional (openssl ec -no_public): computed from the
         * scalar, which wc_ecc_make_pub refuses unless it is in range. */
        if (priv && rc == ECC_INF_E)
            rc = wc_ecc_make_pub(&k, NULL) == 0 ? wc_ecc_check_key(&k) : rc;
        ok = rc == 0;
    }
    wc_ecc_free(&k);
    return ok;
}

/* Whether the P-256 private key @p der is the one whose public half the SubjectPublicKeyInfo
 * @p spki carries: the point is computed from the scalar, not read from the key file, whose
 * optional public key could itself be another. */
static bool key_matches(const uint8_t *der, word32 len, const uint8_t *spki, word32 spki_len)
{
    ecc_key priv, pub;
    word32 idx = 0, pidx = 0;
    bool ok = false;
    if (wc_ecc_init(&priv) != 0)
        return false;
    if (wc_ecc_init(&pub) != 0) {
        wc_ecc_free(&priv);
        return false;
    }
    ecc_point *point = wc_ecc_new_point();
    if (point != NULL && wc_EccPrivateKeyDecode(der, &idx, &priv, len) == 0 &&
        wc_EccPublicKeyDecode(spki, &pidx, &pub, spki_len) == 0 &&
        wc_ecc_make_pub(&priv, point) == 0)
        ok = wc_ecc_cmp_point(point, &pub.pubkey) == MP_EQ;
    wc_ecc_del_point(point);
    wc_ecc_free(&priv);
    wc_ecc_free(&pub);
    return ok;
}

/* The element of DER @p p (at most @p n bytes) as a whole, header included: its end in @p end. */
static bool der_skip(const uint8_t *p, size_t n, uint8_t *tag, const uint8_t **end)
{
    const uint8_t *body;
    size_t len;
    if (!der_next(p, n, tag, &body, &len))
        return false;
    *end = body + len;
    return true;
}

/* The SubjectPublicKeyInfo (the whole element) of the certificate @p der: the seventh field of
 * its TBSCertificate, after the optional version. */
static bool cert_spki(const uint8_t *der, size_t len, const uint8_t **spki, size_t *spki_len)
{
    uint8_t tag;
    const uint8_t *cert, *tbs, *end;
    size_t cert_len, tbs_len;
    if (!der_next(der, len, &tag, &cert, &cert_len) || tag != 0x30 ||
        !der_next(cert, cert_len, &tag, &tbs, &tbs_len) || tag != 0x30)
        return false;
    const uint8_t *p = tbs, *stop = tbs + tbs_len;
    /* [0] version, serial, signature, issuer, validity, subject: skipped. */
    for (int field = 0; field < 6; field++) {
        if (!der_skip(p, (size_t)(stop - p), &tag, &end))
            return false;
        if (field == 0 && tag != 0xa0)
            field++; /* no version: the first field was the serial */
        p = end;
    }
    if (!der_skip(p, (size_t)(stop - p), &tag, &end) || tag != 0x30)
        return false;
    *spki = p;
    *spki_len = (size_t)(end - p);
    return true;
}

/* Our own identity is the CN of our certificate @p der, never a configuration
 * string: a device cannot then be set up to claim an id it cannot prove. The
 * role is checked too, so a device given a gateway certificate learns it here
 * rather than from a refused handshake. Keeps the certificate's public key for
 * the private key's check. */
static bool own_identity(mwi_dtls_ctx *ctx, const uint8_t *der, size_t len, mw_error_detail_t *d)
{
    DecodedCert *dc = malloc(sizeof *dc);
    if (dc == NULL) {
        set_err(d, MW_ENOMEM, 0, "out of memory reading our certificate");
        return false;
    }
    InitDecodedCert(dc, der, (word32)len, NULL);
    const uint8_t *cns[2] = {NULL, NULL};
    size_t cns_len[2] = {0, 0};
    int count = -1;
    unsigned int xku = 0;
    if (ParseCert(dc, CERT_TYPE, NO_VERIFY, NULL) == 0) {
        xku = dc->extExtKeyUsage;
        ctx->own_not_after = not_after(dc);
        ctx->own_not_before = not_before(dc);
        if (dc->subjectRaw != NULL)
            count = subject_cns(dc->subjectRaw, (size_t)dc->subjectRawLen, cns, cns_len);
    }
    FreeDecodedCert(dc);
    free(dc);
    /* The first common name, as wolfSSL's X509 layer gave it before. */
    char cn[MW_ID_MAX + 1] = "";
    bool ok = count > 0 && cns_len[0] <= MW_ID_MAX && memchr(cns[0], '\0', cns_len[0]) == NULL;
    if (ok) {
        memcpy(cn, cns[0], cns_len[0]);
        cn[cns_len[0]] = '\0';
    }
    if (!ok || !id_valid(cn)) {
        set_err(d, MW_ECERT_IDENTITY, 0,
                "our certificate's common name is missing or not a valid identity "
                "([A-Za-z0-9][A-Za-z0-9._-]{0,63})");
        return false;
    }
    const uint8_t *spki = NULL;
    size_t spki_len = 0;
    if (!cert_spki(der, len, &spki, &spki_len) || spki_len > sizeof ctx->own_spki ||
        !der_is_p256(spki, (word32)spki_len, false)) {
        mwi_detail_firstf(
            d, MW_ECERT_LOAD, 0,
            "our certificate '%.64s' does not carry an ECDSA P-256 key, the protocol's only "
            "curve",
            cn);
        return false;
    }
    memcpy(ctx->own_spki, spki, spki_len);
    ctx->own_spki_len = (uint32_t)spki_len;
    bool server = ctx->role == MWI_DTLS_SERVER;
    unsigned int need = server ? EXTKEYUSE_SERVER_AUTH : EXTKEYUSE_CLIENT_AUTH;
    if (!ctx->skip_role && !(xku & need)) {
        mwi_detail_firstf(d, MW_ECERT_ROLE, 0,
                          "our certificate '%.64s' is not a %s certificate (extended key usage %s)",
                          cn, server ? "gateway" : "device", server ? "serverAuth" : "clientAuth");
        return false;
    }
    memcpy(ctx->own_id, cn, strlen(cn) + 1);
    return true;
}

/* Two paths must fit in one detail: a long one is shown by its end, where the file's name is. */
#define PATH_SHOWN 44

void mwi_dtls_cred_free(mwi_dtls_cred *c)
{
    if (c->owned) {
        mwi_wipe(c->owned, c->owned_cap);
        free(c->owned);
    }
    memset(c, 0, sizeof *c);
}

/* PEM carries a "-----BEGIN" line (maybe after text); anything else is taken for DER. */
static int cred_format(const uint8_t *p, size_t n)
{
    static const char tag[] = "-----BEGIN";
    for (size_t i = 0; i + sizeof tag - 1 <= n; i++)
        if (p[i] == '-' && memcmp(p + i, tag, sizeof tag - 1) == 0)
            return WOLFSSL_FILETYPE_PEM;
    return WOLFSSL_FILETYPE_ASN1;
}

/*
 * Fills @p out with the credential @p what from @p file (the configuration field @p file_field,
 * read with @p read_file) or from @p buf (field @p buf_field): one of the two, at most @p max
 * bytes. Neither: MW_OK with out->data NULL (the caller says whether it is required).
 */
mw_err mwi_dtls_cred_get(const char *what, const char *file, const char *file_field,
                         mw_blob_t buf, const char *buf_field, size_t max,
                         mwi_dtls_read_fn *read_file, mwi_dtls_cred *out, mw_error_detail_t *d)
{
    memset(out, 0, sizeof *out);
    bool have_buf = buf.data != NULL || buf.len != 0;
    if (file != NULL && have_buf)
        return mwi_detail_firstf(d, MW_ECONFIG, 0,
                                 "%s and %s are both set: give the %s one way, as a file or as a "
                                 "buffer",
                                 file_field, buf_field, what);
    if (have_buf) {
        if (buf.data == NULL || buf.len == 0 || buf.len > max)
            return mwi_detail_firstf(
                d, MW_ECONFIG, 0, "%s: the %s buffer is %s (%zu bytes; at most %zu)", buf_field,
                what, buf.data == NULL ? "NULL" : "empty or too large", buf.len, max);
        out->data = buf.data;
        out->len = buf.len;
        snprintf(out->name, sizeof out->name, "from %s", buf_field);
    } else if (file != NULL) {
        size_t n = strlen(file);
        snprintf(out->name, sizeof out->name, "'%s%s'", n > PATH_SHOWN ? "..." : "",
                 n > PATH_SHOWN ? file + n - PATH_SHOWN : file);
        if (read_file == NULL)
            return mwi_detail_firstf(d, MW_ECONFIG, 0,
                                     "%s %s: this build reads no files (MW_PORT=none); give the "
                                     "%s in %s",
                                     file_field, out->name, what, buf_field);
        mw_err e = read_file(file, max, &out->owned, &out->len);
        if (e != MW_OK)
            return mwi_detail_firstf(d, e == MW_ENOMEM ? MW_ENOMEM : MW_ECERT_LOAD, 0,
                                     "cannot load %s %s: %s", what, out->name,
                                     e == MW_ETOOBIG  ? "too large, not a credential file"
                                     : e == MW_ENOMEM ? "out of memory"
                                                      : "missing or unreadable");
        out->owned_cap = out->len + 1;
        out->data = out->owned;
    } else {
        return MW_OK;
    }
    out->format = cred_format(out->data, out->len);
    return MW_OK;
}

MW_NODISCARD static mw_err load_failed(mw_error_detail_t *d, const char *what, const mwi_dtls_cred *c,
                                       int code)
{
    mwi_detail_firstf(d, MW_ECERT_LOAD, code, "cannot load %s %s: not a valid %s %s (wolfSSL %d)",
                      what, c->name, c->format == WOLFSSL_FILETYPE_PEM ? "PEM" : "DER", what, code);
    return MW_ECERT_LOAD;
}

/*
 * Loads our private key, checked by us before wolfSSL sees it. wolfSSL 5.5.4 accepts an EC key
 * whose scalar is larger than its curve and then writes past a stack buffer when it exports it
 * (wolfSSL_CTX_check_private_key, found by fuzz_certs): so the key is read once, decoded with
 * wolfCrypt, and only a P-256 key in range that matches @p cert_file (already loaded) reaches
 * wolfSSL, as the DER we checked.
 */
static mw_err load_private_key(mwi_dtls_ctx *ctx, const mwi_dtls_cred *key, const mwi_dtls_cred *cert,
                               mw_error_detail_t *d)
{
    mw_err e = MW_ECERT_LOAD;
    /* The key's DER (no longer than its PEM), wiped before it is freed. */
    uint8_t *der = malloc(key->len);
    if (der == NULL)
        return MW_ENOMEM;
    int len;
    if (key->format == WOLFSSL_FILETYPE_PEM) {
        len = wc_KeyPemToDer(key->data, (int)key->len, der, (int)key->len, NULL);
    } else {
        memcpy(der, key->data, key->len);
        len = (int)key->len;
    }
    if (len <= 0) {
        e = load_failed(d, "private key", key, len);
        goto out;
    }
    /* PKCS#8 ("PRIVATE KEY", as OpenSSL writes) wraps the SEC 1 key medwire-pki writes. */
    word32 off = 0;
    if (wc_GetPkcs8TraditionalOffset(der, &off, (word32)len) < 0)
        off = 0;
    if (!der_is_p256(der + off, (word32)len - off, true)) {
        mwi_detail_firstf(d, e, 0,
                          "cannot load private key %s: not a valid ECDSA P-256 key (the protocol's "
                          "only curve); make one with medwire-pki",
                          key->name);
        goto out;
    }
    /* wolfSSL_CTX_check_private_key passes any P-256 key in 5.5.4: unchecked, a gateway started
     * and failed every handshake with -330, and a device was told its certificate was refused. */
    if (!key_matches(der + off, (word32)len - off, ctx->own_spki, ctx->own_spki_len)) {
        mwi_detail_firstf(d, e, 0,
                          "the private key %s does not match the certificate %s: give the key "
                          "made with that certificate",
                          key->name, cert->name);
        goto out;
    }
    int rc = wolfSSL_CTX_use_PrivateKey_buffer(ctx->wctx, der, len, WOLFSSL_FILETYPE_ASN1);
    if (rc != WOLFSSL_SUCCESS) {
        e = load_failed(d, "private key", key, rc);
        goto out;
    }
    e = MW_OK;
out:
    mwi_wipe(der, key->len);
    free(der);
    return e;
}

/*
 * Loads our private key from a PKCS#11 token (@p uri, RFC 7512): the key stays there and wolfSSL
 * signs through the token's device. It is checked as a key file is: the token signs a random
 * digest that the public key of @p cert_file (already loaded) must verify, so a wrong object
 * is refused here rather than by every handshake.
 */
static mw_err load_token_key(mwi_dtls_ctx *ctx, const char *uri, const mwi_dtls_cred *cert,
                             mw_error_detail_t *d)
{
    mw_err e = mwi_p11_key_open(uri, &ctx->p11, d);
    if (e != MW_OK)
        return e;
    if ((e = mwi_p11_key_check(ctx->p11, ctx->own_spki, ctx->own_spki_len, cert->name, d)) !=
        MW_OK)
        return e;
#ifdef WOLF_PRIVATE_KEY_ID
    int dev = mwi_p11_key_dev_id(ctx->p11);
    size_t id_len = 0;
    const uint8_t *id = mwi_p11_key_id(ctx->p11, &id_len);
    /* The device id goes with the key only: the rest of the handshake's cryptography (ECDHE,
     * verifying the peer, the record ciphers) stays in wolfCrypt, not in the token. */
    int rc = id != NULL
                 ? wolfSSL_CTX_use_PrivateKey_Id(ctx->wctx, id, (long)id_len, dev)
                 : wolfSSL_CTX_use_PrivateKey_Label(ctx->wctx, mwi_p11_key_label(ctx->p11), dev);
    if (rc != WOLFSSL_SUCCESS)
        return mwi_detail_firstf(d, MW_ECERT_LOAD, rc, "key %.60s: refused by wolfSSL (%d)",
                                 mwi_p11_key_name(ctx->p11), rc);
    return MW_OK;
#else
    /* A wolfSSL without keys held outside it (no PKCS#11, crypto or PK callbacks: the device's)
     * cannot sign with a token's key; its p11 layer (p11_none.c) refuses the URI before this. */
    return mwi_detail_firstf(d, MW_ECONFIG, 0,
                             "key %.60s: this wolfSSL cannot use a key held in a token "
                             "(WOLF_PRIVATE_KEY_ID)",
                             mwi_p11_key_name(ctx->p11));
#endif
}

/* wolfSSL as Debian builds it (FP_ECC) keeps, per thread, a table of 256 precomputed multiples
 * of each point it has multiplied twice, up to 15 points, about 0.8 MB each. A handshake uses
 * the peer's ephemeral key twice (checked, then multiplied), so every full handshake left a
 * table behind for a key never seen again: a device reconnecting to a gateway that never
 * answered grew by 0.8 MB per handshake up to some 12 MB. A device makes a handshake now and
 * then, so it drops the tables once one is over (and after open, which checked its own key):
 * a rebuild per handshake at most, and its heap stays flat. The gateway keeps them: its own
 * key and its CA's serve every handshake it makes. */
static void drop_ecc_tables(const mwi_dtls_ctx *ctx)
{
#ifdef FP_ECC
    if (ctx->role == MWI_DTLS_CLIENT)
        wc_ecc_fp_free();
#else
    (void)ctx; /* no tables to drop (the device's single-precision maths keeps none) */
#endif
}

/* Our certificate @p cert as DER: a copy of it, or of its first PEM block (the one wolfSSL took
 * as ours). NULL when it cannot be read (wolfSSL has accepted it, so only memory fails). */
static uint8_t *cert_der(const mwi_dtls_cred *cert, size_t *out_len)
{
    if (cert->data == NULL || cert->len == 0)
        return NULL;
    uint8_t *der = malloc(cert->len + 1); /* a certificate's DER is shorter than its PEM */
    if (der == NULL)
        return NULL;
    int len = (int)cert->len;
    if (cert->format == WOLFSSL_FILETYPE_PEM)
        len = wc_CertPemToDer(cert->data, (int)cert->len, der, (int)cert->len, CERT_TYPE);
    else
        memcpy(der, cert->data, cert->len);
    if (len <= 0) {
        free(der);
        return NULL;
    }
    *out_len = (size_t)len;
    return der;
}

mw_err mwi_dtls_ctx_create(const mwi_dtls_config *cfg, mwi_dtls_ctx **out_ctx,
                           mw_error_detail_t *out_detail)
{
    if (cfg != NULL && cfg->role == MWI_DTLS_SERVER) {
        if (out_ctx)
            *out_ctx = NULL;
        if (out_detail)
            memset(out_detail, 0, sizeof *out_detail);
        return mwi_detail_fail(out_detail, MW_ECONFIG,
                               "the server side of DTLS is the gateway library's "
                               "(mwi_dtls_server_ctx_create)");
    }
    return mwi_dtls_ctx_make(cfg, NULL, out_ctx, out_detail);
}

mw_err mwi_dtls_ctx_make(const mwi_dtls_config *cfg, const mwi_dtls_server_ops *server,
                         mwi_dtls_ctx **out_ctx, mw_error_detail_t *out_detail)
{
    mw_error_detail_t scratch = {MW_OK, 0, ""}; /* written before read; initialised for cppcheck */
    mw_error_detail_t *d = out_detail ? out_detail : &scratch;
    memset(d, 0, sizeof *d);
    if (out_ctx == NULL || cfg == NULL)
        return MW_EINVAL;
    *out_ctx = NULL;
    bool have_ca = cfg->ca_file || cfg->ca_buf.data || cfg->ca_buf.len;
    bool have_cert = cfg->cert_file || cfg->cert_buf.data || cfg->cert_buf.len;
    bool have_key = cfg->key_file || cfg->key_buf.data || cfg->key_buf.len;
    if (!have_ca || (!cfg->test_no_cert && (!have_cert || !have_key))) {
        set_err(d, MW_ECONFIG, 0,
                "a CA, a certificate and a key are all required (each as a file or a buffer)");
        return MW_ECONFIG;
    }
    if (cfg->role == MWI_DTLS_CLIENT && (cfg->peer_name == NULL || !id_valid(cfg->peer_name))) {
        set_err(d, MW_ECONFIG, 0,
                "the expected gateway name is required ([A-Za-z0-9][A-Za-z0-9._-]{0,63})");
        return MW_ECONFIG;
    }
    if ((cfg->role == MWI_DTLS_SERVER) != (server != NULL))
        return mwi_detail_fail(d, MW_EINVAL, "the role does not match the side of DTLS asked for");
    if (wolfSSL_Init() != WOLFSSL_SUCCESS) {
        set_err(d, MW_EINTERNAL, 0, "wolfSSL_Init failed");
        return MW_EINTERNAL;
    }
    mw_err e = MW_OK;
    int rc;
    mwi_dtls_cred ca = {0}, cert = {0}, key = {0};
    uint8_t *own = NULL;
    size_t own_len = 0;
    mwi_dtls_ctx *ctx = calloc(1, sizeof *ctx);
    if (ctx == NULL) {
        e = MW_ENOMEM;
        goto fail;
    }
    ctx->refs = 1;
    ctx->role = cfg->role;
    ctx->server = server;
    ctx->read_file = cfg->read_file;
    ctx->skip_role = cfg->test_skip_role;
    if (cfg->peer_name)
        snprintf(ctx->peer_name, sizeof ctx->peer_name, "%s", cfg->peer_name);
    ctx->wctx = wolfSSL_CTX_new(server ? server->method() : wolfDTLSv1_2_client_method());
    if (ctx->wctx == NULL) {
        e = MW_ENOMEM;
        goto fail;
    }
    /* The Debian build's defaults offer anonymous, 3DES and CBC suites and
     * verify nothing: every one of these settings is deliberate. */
    const char *ciphers = cfg->cipher_list ? cfg->cipher_list : MWI_DTLS_CIPHERS;
    if ((rc = wolfSSL_CTX_set_cipher_list(ctx->wctx, ciphers)) != WOLFSSL_SUCCESS) {
        set_err(d, MW_ECONFIG, rc, "cipher list refused by wolfSSL");
        e = MW_ECONFIG;
        goto fail;
    }
    if (cfg->cipher_list == NULL &&
        wolfSSL_CTX_UseSupportedCurve(ctx->wctx, WOLFSSL_ECC_SECP256R1) != WOLFSSL_SUCCESS) {
        e = MW_EINTERNAL;
        goto fail;
    }
#ifdef HAVE_SESSION_TICKET
    /* Tickets lose the peer identity on resumption and fail hard when
     * rejected (docs/SECURITY-MODEL.md 6.1): resumption, when it comes, is by session ID. A
     * wolfSSL without tickets (the device's) has nothing to turn off. */
    (void)wolfSSL_CTX_NoTicketTLSv12(ctx->wctx);
#endif
    int mode = WOLFSSL_VERIFY_PEER;
    if (server)
        mode |=
            WOLFSSL_VERIFY_FAIL_IF_NO_PEER_CERT; /* VERIFY_PEER alone admits a certless client */
    wolfSSL_CTX_set_verify(ctx->wctx, mode, verify_cb);
    /* The protocol's chain is CA to leaf. wolfSSL's default depth accepts intermediates: a CA
     * certificate that our CA signed by mistake, or under a CA that set no path length, could
     * then issue for every name. wolfSSL counts the certificates the peer sends above its own,
     * and some peers (libcoap over OpenSSL) send the CA too: one is allowed, and check_peer
     * requires the leaf to be signed by a configured CA itself. */
    wolfSSL_CTX_set_verify_depth(ctx->wctx, 1);
    if ((e = mwi_dtls_cred_get("CA certificate", cfg->ca_file, "ca_file", cfg->ca_buf, "ca_buf",
                               MWI_CA_FILE_MAX, cfg->read_file, &ca, d)) != MW_OK)
        goto fail;
    if (ca.data == NULL) { /* checked above (have_ca); said again for the analyzers */
        e = MW_ECONFIG;
        goto fail;
    }
    if ((rc = wolfSSL_CTX_load_verify_buffer(ctx->wctx, ca.data, (long)ca.len, ca.format)) !=
        WOLFSSL_SUCCESS) {
        e = load_failed(d, "CA certificate", &ca, rc);
        goto fail;
    }
    ctx->anchors = wolfSSL_CertManagerNew();
    if (ctx->anchors == NULL) {
        e = MW_ENOMEM;
        goto fail;
    }
    {                                 /* kept to check a new CRL against (mwi_dtls_crl_replace) */
        ctx->ca = malloc(ca.len + 1); /* + 1: never a zero-size request (ca.len is not 0) */
        if (ctx->ca == NULL) {
            e = MW_ENOMEM;
            goto fail;
        }
        memcpy(ctx->ca, ca.data, ca.len);
        ctx->ca_len = ca.len;
        ctx->ca_format = ca.format;
    }
    if ((rc = wolfSSL_CertManagerLoadCABuffer(ctx->anchors, ca.data, (long)ca.len, ca.format)) !=
        WOLFSSL_SUCCESS) {
        e = load_failed(d, "CA certificate", &ca, rc);
        goto fail;
    }
    load_pins(ctx, ca.data, ca.len, ca.format);
    if (wc_InitRng(&ctx->rng) != 0) {
        e = MW_EINTERNAL;
        goto fail;
    }
    ctx->rng_ok = true;
    /* The CRL (after the CA: wolfSSL checks its signature as it loads it): a gateway's for its
     * devices, a device's for its gateway. Then the server's cookie secret. */
    if ((e = mwi_dtls_crl_setup(ctx, cfg, d)) != MW_OK)
        goto fail;
    if (server && (e = server->ctx_setup(ctx, cfg, d)) != MW_OK)
        goto fail;
    if (!cfg->test_no_cert) {
        if ((e = mwi_dtls_cred_get("certificate", cfg->cert_file, "cert_file", cfg->cert_buf,
                                   "cert_buf", MWI_CA_FILE_MAX, cfg->read_file, &cert, d)) !=
            MW_OK)
            goto fail;
        rc = wolfSSL_CTX_use_certificate_buffer(ctx->wctx, cert.data, (long)cert.len, cert.format);
        if (rc != WOLFSSL_SUCCESS) {
            e = load_failed(d, "certificate", &cert, rc);
            goto fail;
        }
        own = cert_der(&cert, &own_len);
        if (own == NULL) {
            e = MW_ENOMEM;
            goto fail;
        }
        if (!own_identity(ctx, own, own_len, d)) {
            e = d->err;
            goto fail;
        }
        if (cfg->key_file && mwi_p11_is_uri(cfg->key_file)) {
            e = cfg->key_buf.data || cfg->key_buf.len
                    ? mwi_detail_firstf(d, MW_ECONFIG, 0,
                                        "key_file and key_buf are both set: give the private "
                                        "key one way, as a file or as a buffer")
                    : load_token_key(ctx, cfg->key_file, &cert, d);
        } else {
            e = mwi_dtls_cred_get("private key", cfg->key_file, "key_file", cfg->key_buf,
                                  "key_buf", MWI_KEY_FILE_MAX, cfg->read_file, &key, d);
            if (e == MW_OK)
                e = load_private_key(ctx, &key, &cert, d);
        }
        if (e != MW_OK)
            goto fail;
    }
    wolfSSL_CTX_SetIORecv(ctx->wctx, io_recv);
    wolfSSL_CTX_SetIOSend(ctx->wctx, io_send);
    drop_ecc_tables(ctx);
    free(own);
    mwi_dtls_cred_free(&ca);
    mwi_dtls_cred_free(&cert);
    mwi_dtls_cred_free(&key);
    *out_ctx = ctx;
    return MW_OK;
fail:
    free(own);
    mwi_dtls_cred_free(&ca);
    mwi_dtls_cred_free(&cert);
    mwi_dtls_cred_free(&key);
    if (d->err == MW_OK)
        set_err(d, e, 0, mw_strerror(e));
    mwi_dtls_ctx_destroy(&ctx);
    return e;
}

static void ctx_release(mwi_dtls_ctx *ctx)
{
    if (--ctx->refs > 0)
        return;
    if (ctx->wctx)
        wolfSSL_CTX_free(ctx->wctx);
    mwi_p11_key_close(&ctx->p11); /* after the WOLFSSL_CTX, whose key names its device */
    if (ctx->anchors)
        wolfSSL_CertManagerFree(ctx->anchors);
    free(ctx->ca);
    free(ctx->crl_der);
    if (ctx->rng_ok)
        wc_FreeRng(&ctx->rng);
    mwi_wipe(ctx->cookie_secret, sizeof ctx->cookie_secret);
    mwi_wipe(ctx->prev_secret, sizeof ctx->prev_secret);
    free(ctx);
    wolfSSL_Cleanup();
}

void mwi_dtls_ctx_destroy(mwi_dtls_ctx **pctx)
{
    if (pctx == NULL || *pctx == NULL)
        return;
    mwi_dtls_ctx *ctx = *pctx;
    *pctx = NULL;
    ctx_release(ctx); /* freed now, or with its last connection */
}

mw_err mwi_dtls_conn_create(mwi_dtls_ctx *ctx, const mw_addr_t *peer, mwi_dtls_send_fn *send,
                            void *send_ctx, mwi_dtls_conn **out_conn)
{
    if (ctx == NULL || peer == NULL || send == NULL || out_conn == NULL || peer->len == 0 ||
        peer->len > sizeof peer->data)
        return MW_EINVAL;
    *out_conn = NULL;
    mwi_dtls_conn *c = calloc(1, sizeof *c);
    if (c == NULL)
        return MW_ENOMEM;
    c->ctx = ctx;
    c->peer = *peer;
    c->send = send;
    c->send_ctx = send_ctx;
    c->deadline = UINT64_MAX;
    c->ssl = wolfSSL_new(ctx->wctx);
    if (c->ssl == NULL) {
        free(c);
        return MW_ENOMEM;
    }
    live_conns++;
    ctx->refs++;
    wolfSSL_SetIOReadCtx(c->ssl, c);
    wolfSSL_SetIOWriteCtx(c->ssl, c);
    wolfSSL_SetCertCbCtx(c->ssl, c); /* verify_cb's store->userCtx */
    wolfSSL_dtls_set_using_nonblock(c->ssl, 1);
    /* With custom I/O the address is used only for the cookie: binding it
     * there is what stops a cookie from being replayed from elsewhere. */
    mw_addr_t peer_copy = *peer;
    if (wolfSSL_dtls_set_peer(c->ssl, peer_copy.data, peer_copy.len) != WOLFSSL_SUCCESS)
        goto fail;
    /* The gateway's name is checked by verify_cb (check_names), exactly. */
    if (ctx->server && ctx->server->conn_setup(c) != MW_OK)
        goto fail;
    *out_conn = c;
    return MW_OK;
fail:
    wolfSSL_free(c->ssl);
    live_conns--;
    ctx->refs--;
    free(c->srv);
    free(c);
    return MW_EINTERNAL;
}

void mwi_dtls_conn_destroy(mwi_dtls_conn **pc)
{
    if (pc == NULL || *pc == NULL)
        return;
    mwi_dtls_conn *c = *pc;
    /* wolfSSL_free zeroes the session keys before releasing them. */
    if (c->ssl) {
        wolfSSL_free(c->ssl);
        live_conns--;
    }
    if (c->srv) { /* the final flight it cached */
        mwi_wipe(c->srv, sizeof *c->srv);
        free(c->srv);
    }
    mwi_dtls_ctx *ctx = c->ctx;
    if (!c->established)
        drop_ecc_tables(ctx); /* a handshake given up */
    free(c);
    *pc = NULL;
    ctx_release(ctx);
}

static void arm_timer(mwi_dtls_conn *c, uint64_t now_ms)
{
    int t = wolfSSL_dtls_get_current_timeout(c->ssl);
    if (t <= 0)
        t = 1;
    c->deadline = now_ms + (uint64_t)t * 1000u;
}

/* One step of the handshake; wolfSSL reads what input is pending. */
mw_err mwi_dtls_handshake_step(mwi_dtls_conn *c, uint64_t now_ms)
{
    const mwi_dtls_server_ops *server = c->ctx->server;
    int rc = server ? server->handshake(c) : wolfSSL_connect(c->ssl);
    if (rc == WOLFSSL_SUCCESS) {
        drop_ecc_tables(c->ctx);
        c->deadline = UINT64_MAX;
        if (wolfSSL_session_reused(c->ssl) && check_resumed_peer(c) != MW_OK) {
            c->failed = true;
            (void)wolfSSL_shutdown(c->ssl); /* close_notify: the device reconnects in full */
            return c->err.err;
        }
        c->established = true;
        return MW_OK;
    }
    int err = wolfSSL_get_error(c->ssl, rc);
    if (err == WOLFSSL_ERROR_WANT_READ || err == WOLFSSL_ERROR_WANT_WRITE) {
        arm_timer(c, now_ms);
        return MW_EINPROGRESS;
    }
    record_wolf_failure(c, err);
    drop_ecc_tables(c->ctx);
    c->deadline = UINT64_MAX;
    return c->err.err;
}

mw_err mwi_dtls_conn_start(mwi_dtls_conn *c, uint64_t now_ms)
{
    if (c == NULL || c->ctx->role != MWI_DTLS_CLIENT || c->started)
        return MW_EINVAL;
    c->started = true;
    return mwi_dtls_handshake_step(c, now_ms);
}

/* Shortest protected record (MWI_DTLS_AEAD_NONCE and the tag): until the suite is known, GCM's.
 * The tag's length comes from the suite's name: wolfSSL_GetAeadMacSize needs ATOMIC_USER,
 * which the device's wolfSSL leaves out. CCM-8's is 8 bytes, GCM's and CCM's 16. */
static size_t min_sealed(const mwi_dtls_conn *c)
{
    const char *name = c->established ? wolfSSL_get_cipher_name(c->ssl) : NULL;
    size_t n = name ? strlen(name) : 0;
    bool ccm8 = n >= 5 && strcmp(name + n - 5, "CCM-8") == 0;
    return MWI_DTLS_AEAD_NONCE + (ccm8 ? 8u : MWI_DTLS_MAX_AEAD_TAG);
}

mw_err mwi_dtls_conn_input(mwi_dtls_conn *c, const uint8_t *dgram, size_t len, uint64_t now_ms,
                           mwi_dtls_record_fn *on_record, void *record_ctx)
{
    if (c == NULL || (dgram == NULL && len > 0))
        return MW_EINVAL;
    if (c->failed)
        return c->err.err != MW_OK ? c->err.err : MW_ECLOSED;
    if (c->ctx->role == MWI_DTLS_CLIENT && !c->started)
        return MW_EINVAL;
    len = mwi_dtls_usable_records(dgram, len, min_sealed(c),
                                  c->ctx->server ? c->ctx->server->hello_ok : NULL);
    if (len == 0)
        return c->established ? MW_OK : MW_EINPROGRESS; /* nothing valid: as if never sent */
    if (c->established && c->ctx->server && c->ctx->server->repeat_flight(c, dgram, len, now_ms))
        return MW_OK; /* the client repeated its last flight: ours, lost, went again */
    mwi_dtls_lend_input(c, dgram, len);
    mw_err e = MW_OK;
    if (!c->established) {
        e = mwi_dtls_handshake_step(c, now_ms);
        if (e != MW_OK)
            goto out;
    }
    for (;;) {
        uint8_t buf[MWI_DTLS_MAX_DATAGRAM];
        int n = wolfSSL_read(c->ssl, buf, (int)sizeof buf);
        if (n > 0) {
            c->peer_sent_data = true;
            if (on_record)
                on_record(record_ctx, buf, (size_t)n);
            continue;
        }
        int err = wolfSSL_get_error(c->ssl, n);
        if (err == WOLFSSL_ERROR_WANT_READ || err == WOLFSSL_ERROR_WANT_WRITE)
            break;
        if (err == WOLFSSL_ERROR_ZERO_RETURN) {
            c->failed = true;
            set_err(&c->err, MW_ECLOSED, 0,
                    c->ctx->role == MWI_DTLS_SERVER ? "closed by the device (close_notify)"
                                                    : "closed by the gateway (close_notify)");
            e = MW_ECLOSED;
            break;
        }
        record_wolf_failure(c, err);
        e = c->err.err;
        break;
    }
out:
    mwi_dtls_lend_input(c, NULL, 0);
    return e;
}

mw_err mwi_dtls_conn_write(mwi_dtls_conn *c, const uint8_t *data, size_t len)
{
    if (c == NULL || (data == NULL && len > 0))
        return MW_EINVAL;
    if (!c->established || c->failed)
        return MW_ECLOSED;
    if (len > MWI_DTLS_MAX_PLAINTEXT)
        return MW_ETOOBIG;
    int n = wolfSSL_write(c->ssl, data, (int)len);
    if (n == (int)len)
        return MW_OK;
    int err = wolfSSL_get_error(c->ssl, n);
    if (err == WOLFSSL_ERROR_WANT_WRITE)
        return MW_EAGAIN;
    if (err == DTLS_SIZE_ERROR)
        return MW_ETOOBIG; /* nothing was sent (docs/SECURITY-MODEL.md 6.1) */
    record_wolf_failure(c, err);
    return c->err.err;
}

uint64_t mwi_dtls_conn_deadline(const mwi_dtls_conn *c)
{
    return c && !c->established && !c->failed ? c->deadline : UINT64_MAX;
}

mw_err mwi_dtls_conn_timer(mwi_dtls_conn *c, uint64_t now_ms)
{
    if (c == NULL)
        return MW_EINVAL;
    if (c->established)
        return MW_OK;
    if (c->failed)
        return c->err.err;
    if (now_ms < c->deadline)
        return MW_EINPROGRESS;
    /* wolfSSL doubles its timer (1, 2, 4 ... 64 s) and gives up past the maximum. */
    int rc = wolfSSL_dtls_got_timeout(c->ssl);
    if (rc != WOLFSSL_SUCCESS) {
        int err = wolfSSL_get_error(c->ssl, rc);
        c->failed = true;
        c->deadline = UINT64_MAX;
        set_err(&c->err, MW_EHANDSHAKE_TIMEOUT, err,
                "the handshake did not complete: the peer stopped answering");
        return MW_EHANDSHAKE_TIMEOUT;
    }
    arm_timer(c, now_ms);
    return MW_EINPROGRESS;
}

bool mwi_dtls_conn_established(const mwi_dtls_conn *c)
{
    return c && c->established && !c->failed;
}

const char *mwi_dtls_conn_peer_id(const mwi_dtls_conn *c)
{
    return c && c->established ? c->peer_id : "";
}

const char *mwi_dtls_conn_cipher(const mwi_dtls_conn *c)
{
    if (c == NULL || !c->established)
        return "";
    const char *n = wolfSSL_get_cipher_name(c->ssl);
    return n ? n : "";
}

void mwi_dtls_conn_error(const mwi_dtls_conn *c, mw_error_detail_t *out)
{
    mwi_detail_copy(out, c ? &c->err : NULL);
}

mw_err mwi_dtls_random(void *vctx, uint8_t *out, size_t len)
{
    mwi_dtls_ctx *ctx = vctx;
    if (ctx == NULL || !ctx->rng_ok || (out == NULL && len > 0) || len > 0xFFFFFFFFu)
        return MW_EINVAL;
    return wc_RNG_GenerateBlock(&ctx->rng, out, (word32)len) == 0 ? MW_OK : MW_EINTERNAL;
}

const char *mwi_dtls_ctx_own_id(const mwi_dtls_ctx *ctx)
{
    return ctx ? ctx->own_id : "";
}

const mw_addr_t *mwi_dtls_conn_peer(const mwi_dtls_conn *c)
{
    return c ? &c->peer : NULL;
}

void mwi_dtls_ctx_expiry(const mwi_dtls_ctx *ctx, mwi_dtls_expiry *out)
{
    *out = (mwi_dtls_expiry){0, 0, 0, 0};
    if (ctx != NULL) {
        out->cert = ctx->own_not_after;
        out->cert_from = ctx->own_not_before;
        out->ca = ctx->ca_not_after;
        out->crl = ctx->crl ? ctx->crl_next_update : 0;
    }
}

long mwi_dtls_live_conns(void)
{
    return live_conns;
}

/* Checks a certificate the peer proved earlier against @p ctx's trust as it is
 * now: chained to its CA and within its validity (with @p chain), and not
 * revoked by its CRL. wolfSSL's code, or WOLFSSL_SUCCESS. */
int mwi_dtls_check_der_now(mwi_dtls_ctx *ctx, const uint8_t *der, int sz, bool chain)
{
    unsigned char *copy = der && sz > 0 ? malloc((size_t)sz) : NULL;
    if (copy == NULL)
        return MEMORY_E;
    memcpy(copy, der, (size_t)sz);
    int rc = WOLFSSL_SUCCESS;
    if (chain)
        rc = wolfSSL_CertManagerVerifyBuffer(wolfSSL_CTX_GetCertManager(ctx->wctx), copy, sz,
                                             WOLFSSL_FILETYPE_ASN1);
    if (rc == WOLFSSL_SUCCESS && ctx->crl)
        rc = mwi_dtls_crl_check(ctx, copy, sz);
    free(copy);
    return rc;
}

mwi_dtls_session *mwi_dtls_conn_save_session(const mwi_dtls_conn *c)
{
    if (c == NULL || !c->established)
        return NULL;
    return (mwi_dtls_session *)wolfSSL_get1_session(c->ssl);
}

mw_err mwi_dtls_conn_set_session(mwi_dtls_conn *c, mwi_dtls_session *s)
{
    if (c == NULL || s == NULL)
        return MW_EINVAL;
    /* If the gateway no longer knows the session, wolfSSL falls back to a
     * full handshake by itself (session IDs, unlike tickets, fail soft). */
    return wolfSSL_set_session(c->ssl, (WOLFSSL_SESSION *)s) == WOLFSSL_SUCCESS ? MW_OK
                                                                                : MW_EINTERNAL;
}

void mwi_dtls_session_free(mwi_dtls_session **s)
{
    if (s && *s) {
        wolfSSL_SESSION_free((WOLFSSL_SESSION *)*s);
        *s = NULL;
    }
}

bool mwi_dtls_conn_resumed(const mwi_dtls_conn *c)
{
    return c && c->established && wolfSSL_session_reused(c->ssl);
}

void mwi_dtls_conn_close(mwi_dtls_conn *c)
{
    /* close_notify (RFC 5246 7.2.1): the peer learns at once that the
     * session is over, rather than after its retransmissions time out. */
    if (c != NULL && c->established && !c->failed) {
        int rc = wolfSSL_shutdown(c->ssl);
        (void)rc; /* DTLS does not wait for the peer's close_notify */
        c->failed = true;
    }
}

mw_err mwi_dtls_ctx_renewed(const mwi_dtls_ctx *old, const mwi_dtls_config *creds,
                            mwi_dtls_ctx **out, mw_error_detail_t *d)
{
    if (d)
        memset(d, 0, sizeof *d);
    if (old == NULL || creds == NULL || out == NULL || old->role != MWI_DTLS_CLIENT)
        return MW_EINVAL;
    mwi_dtls_config dc = {
        .role = MWI_DTLS_CLIENT,
        .ca_buf = {old->ca, old->ca_len},
        .cert_file = creds->cert_file,
        .key_file = creds->key_file,
        .cert_buf = creds->cert_buf,
        .key_buf = creds->key_buf,
        .crl_buf = {old->crl ? old->crl_der : NULL, old->crl ? old->crl_der_len : 0},
        .read_file = old->read_file,
        .peer_name = old->peer_name,
    };
    mw_err e = mwi_dtls_ctx_create(&dc, out, d);
    if (e != MW_OK)
        return e;
    if (strcmp((*out)->own_id, old->own_id) != 0) {
        char was[MW_ID_MAX + 1];
        snprintf(was, sizeof was, "%s", (*out)->own_id);
        mwi_dtls_ctx_destroy(out);
        return mwi_detail_firstf(d, MW_EIDENTITY, 0,
                                 "the new certificate is for '%s', not for this device '%s': a "
                                 "device renews only its own identity",
                                 was, old->own_id);
    }
    return MW_OK;
}
