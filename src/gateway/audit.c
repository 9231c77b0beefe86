/* SPDX-License-Identifier: Apache-2.0 */
/* audit.c -- the gateway's audit lines, bounded so that no device or flood can grow the audit
 * file without limit (per identity and event kind, and per second for unverified sources), and
 * its failed handshakes, counted by reason. */
#include <stdio.h>

#include "gateway/gateway_internal.h"

/* Audit lines per second for handshakes refused before the cookie exchange. */
#define UNVERIFIED_AUDIT_PER_S 10u

static const char *const HS_REASON_NAMES[MW_GATEWAY_HSR_COUNT] = {
    "other",
    "certificate_expired",
    "certificate_not_yet_valid",
    "certificate_untrusted",
    "certificate_revoked",
    "no_certificate",
    "certificate_role",
    "certificate_identity",
    "no_common_cipher",
    "peer_alert",
    "timeout",
};

const char *mw_gateway_hs_reason_name(mw_gateway_hs_reason r)
{
    return (unsigned)r < MW_GATEWAY_HSR_COUNT ? HS_REASON_NAMES[r] : "other";
}

static mw_gateway_hs_reason hs_reason_of(mw_err e)
{
    switch (e) {
    case MW_ECERT_EXPIRED:
        return MW_GATEWAY_HSR_EXPIRED;
    case MW_ECERT_NOT_YET_VALID:
        return MW_GATEWAY_HSR_NOT_YET_VALID;
    case MW_ECERT_UNTRUSTED:
        return MW_GATEWAY_HSR_UNTRUSTED;
    case MW_ECERT_REVOKED:
        return MW_GATEWAY_HSR_REVOKED;
    case MW_ENO_PEER_CERT:
        return MW_GATEWAY_HSR_NO_CERT;
    case MW_ECERT_ROLE:
        return MW_GATEWAY_HSR_ROLE;
    case MW_ECERT_IDENTITY:
    case MW_ECERT_NAME:
        return MW_GATEWAY_HSR_IDENTITY;
    case MW_ECIPHER:
        return MW_GATEWAY_HSR_CIPHER;
    case MW_EPEER_ALERT:
        return MW_GATEWAY_HSR_PEER_ALERT;
    case MW_EHANDSHAKE_TIMEOUT:
    case MW_ETIMEDOUT:
        return MW_GATEWAY_HSR_TIMEOUT;
    default:
        return MW_GATEWAY_HSR_OTHER;
    }
}

/* Every failed handshake is counted once, in the total and by its reason. */
void mwi_gw_count_hs_failure(mw_gateway_t *gw, mw_err e)
{
    gw->st.handshakes_failed++;
    gw->st.handshake_failures_by_reason[hs_reason_of(e)]++;
}

void mwi_gw_handshake_failed(mw_gateway_t *gw, struct peer *p, mwi_dtls_conn *c)
{
    mw_error_detail_t d;
    mwi_dtls_conn_error(c, &d);
    mwi_gw_handshake_failed_why(gw, p, d);
}

void mwi_gw_handshake_failed_why(mw_gateway_t *gw, struct peer *p, mw_error_detail_t d)
{
    if (d.err == MW_OK)
        d.err = MW_EDTLS;
    mwi_gw_count_hs_failure(gw, d.err);
    mwi_gw_audit(gw, MW_AUDIT_HANDSHAKE_FAILED, p->text, "", d.err, d.foreign, d.reason);
}

void mwi_gw_audit_raw(mw_gateway_t *gw, const char *event, const char *peer, const char *device,
                      mw_err e, int foreign, const char *reason)
{
    if (gw->audit == NULL)
        return; /* the audit callback is optional */
    mw_audit_event_t ev = {
        .event = event,
        .peer = peer ? peer : "",
        .device = device ? device : "",
        .err = e,
        .foreign = foreign,
        .reason = reason ? reason : "",
    };
    gw->audit(gw->audit_ctx, &ev);
}

/* Lines that the limiter held back, as one line with their count. */
void mwi_gw_audit_held(mw_gateway_t *gw, const mwi_audit_slot *s, uint32_t held)
{
    char why[200];
    snprintf(why, sizeof why,
             "%lu more '%s' event(s) for this identity in the last %llu s, not written one by one",
             (unsigned long)held, s->event, (unsigned long long)(gw->alim->window_ms / 1000));
    gw->st.audit_lines_held += held;
    mwi_gw_audit_raw(gw, s->event, "", s->device, MW_OK, 0, why);
}

/* Events about an authenticated identity are limited per kind: one device cycling handshakes
 * must not write a line each (two per handshake grew the audit file by 12 GB a day). */
void mwi_gw_audit(mw_gateway_t *gw, const char *event, const char *peer, const char *device,
                  mw_err e, int foreign, const char *reason)
{
    if (gw->audit == NULL)
        return;
    if (device != NULL && device[0] != '\0' && gw->alim != NULL) {
        uint32_t held = 0;
        const mwi_audit_slot *s = NULL;
        bool write = mwi_audit_limit(gw->alim, event, device, gw->now_ms, &held, &s);
        if (held > 0)
            mwi_gw_audit_held(gw, s, held);
        if (!write)
            return;
    }
    mwi_gw_audit_raw(gw, event, peer, device, e, foreign, reason);
}

/* Audit lines about unverified or abusive sources are rate-limited: a flood
 * must not become a flood of audit lines. */
bool mwi_gw_audit_allowed(mw_gateway_t *gw, uint64_t now)
{
    if (now - gw->audit_window_ms >= 1000) {
        gw->audit_window_ms = now;
        gw->audit_in_window = 0;
    }
    if (gw->audit_in_window >= UNVERIFIED_AUDIT_PER_S)
        return false;
    gw->audit_in_window++;
    return true;
}
