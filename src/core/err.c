/* SPDX-License-Identifier: Apache-2.0 */
/* err.c -- the strings for mw_err. */
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include "medwire/err.h"
#include "core/detail.h"

MW_API const char *mw_strerror(mw_err err)
{
    switch (err) {
    case MW_OK:
        return "success";
    case MW_EAGAIN:
        return "nothing to do now, try again later";
    case MW_EINPROGRESS:
        return "operation in progress";
    case MW_EINVAL:
        return "invalid argument";
    case MW_ENOMEM:
        return "out of memory";
    case MW_ENOSPC:
        return "buffer or table too small";
    case MW_ECLOSED:
        return "closed or failed";
    case MW_ETIMEDOUT:
        return "timed out";
    case MW_EIO:
        return "file input/output error";
    case MW_ECONFIG:
        return "incomplete or inconsistent configuration";
    case MW_EFULL:
        return "queue or table full";
    case MW_EINTERNAL:
        return "internal error in a dependency";
    case MW_ETRANSPORT:
        return "transport (socket) error";
    case MW_EADDR:
        return "address cannot be parsed or resolved, or is not one of this machine's";
    case MW_ETOOBIG:
        return "datagram too large";
    case MW_EDTLS:
        return "DTLS failure";
    case MW_ECERT_LOAD:
        return "cannot load CA, certificate or key";
    case MW_ECERT_EXPIRED:
        return "peer certificate has expired";
    case MW_ECERT_NOT_YET_VALID:
        return "peer certificate is not valid yet";
    case MW_ECERT_UNTRUSTED:
        return "peer certificate is not trusted (unknown CA or self-signed)";
    case MW_ECERT_REVOKED:
        return "peer certificate is revoked";
    case MW_ECERT_ROLE:
        return "peer certificate has the wrong role (extended key usage)";
    case MW_ECERT_NAME:
        return "peer name does not match the expected gateway name";
    case MW_ECERT_IDENTITY:
        return "peer certificate carries no valid identity";
    case MW_ENO_PEER_CERT:
        return "peer sent no certificate";
    case MW_ECIPHER:
        return "no cipher suite in common with the peer";
    case MW_EPEER_ALERT:
        return "peer aborted the handshake";
    case MW_EHANDSHAKE_TIMEOUT:
        return "handshake timed out";
    case MW_ECOAP_MALFORMED:
        return "malformed CoAP message";
    case MW_ECOAP_RESET:
        return "CoAP reset by peer";
    case MW_ECOAP_GIVEUP:
        return "CoAP message never acknowledged";
    case MW_ECOAP_RESPONSE:
        return "CoAP error response";
    case MW_EDECODE:
        return "protobuf message cannot be decoded";
    case MW_EIDENTITY:
        return "device id does not match the certificate identity";
    case MW_EREPLAY:
        return "message refused as a replay";
    case MW_EVERSION:
        return "unsupported protocol version";
    }
    return "unknown error";
}

void(mwi_detail_set)(mw_error_detail_t *d, mw_err e, int foreign, const char *reason)
{
    if (d == NULL)
        return;
    d->err = e;
    d->foreign = foreign;
    size_t i = 0;
    if (reason == NULL || (!MW_ERROR_REASONS && reason[0] == '\0'))
        reason = mw_strerror(e); /* no sentence: what the code says */
    /* A bounded copy: a reason longer than the field is cut, never overflows. */
    for (; reason[i] != '\0' && i + 1 < sizeof d->reason; i++)
        d->reason[i] = reason[i];
    d->reason[i] = '\0';
}

void(mwi_detail_first)(mw_error_detail_t *d, mw_err e, int foreign, const char *reason)
{
    if (d != NULL && d->err == MW_OK)
        (mwi_detail_set)(d, e, foreign, reason);
}

void mwi_detail_copy(mw_error_detail_t *out, const mw_error_detail_t *src)
{
    if (out == NULL)
        return;
    if (src == NULL)
        memset(out, 0, sizeof *out);
    else
        *out = *src;
}

mw_err(mwi_detail_fail)(mw_error_detail_t *d, mw_err e, const char *reason)
{
    (mwi_detail_first)(d, e, 0, reason);
    return e;
}

mw_err mwi_detail_code(mw_error_detail_t *d, mw_err e, int foreign)
{
    (mwi_detail_first)(d, e, foreign, NULL);
    return e;
}

mw_err(mwi_detail_firstf)(mw_error_detail_t *d, mw_err e, int foreign, const char *fmt, ...)
{
    if (d != NULL && d->err == MW_OK) {
        char reason[sizeof d->reason];
        va_list ap;
        va_start(ap, fmt);
        (void)vsnprintf(reason, sizeof reason, fmt, ap);
        va_end(ap);
        (mwi_detail_set)(d, e, foreign, reason);
    }
    return e;
}

mw_err mwi_detail_open_checks(mw_error_detail_t *d, int have_cfg_and_out, bool ca, bool cert,
                              bool key, const char *whose)
{
    mwi_detail_copy(d, NULL);
    if (!have_cfg_and_out)
        return mwi_detail_fail(d, MW_EINVAL, "a configuration and an output pointer are required");
    if (!ca || !cert || !key)
        return mwi_detail_firstf(d, MW_ECONFIG, 0,
                                 "a CA, a %s certificate and its key are all required (each as a "
                                 "file or a buffer: ca_file or ca_buf, ...)",
                                 whose);
    return MW_OK;
}
