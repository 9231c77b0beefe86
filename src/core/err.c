/* SPDX-License-Identifier: Apache-2.0 */
/* err.c -- the strings for mw_err. */
#include <stddef.h>

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
        return "address cannot be parsed or resolved";
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

void mwi_detail_set(mw_error_detail_t *d, mw_err e, int foreign, const char *reason)
{
    if (d == NULL)
        return;
    d->err = e;
    d->foreign = foreign;
    size_t i = 0;
    /* A bounded copy: a reason longer than the field is cut, never overflows. */
    for (; reason && reason[i] != '\0' && i + 1 < sizeof d->reason; i++)
        d->reason[i] = reason[i];
    d->reason[i] = '\0';
}

void mwi_detail_first(mw_error_detail_t *d, mw_err e, int foreign, const char *reason)
{
    if (d != NULL && d->err == MW_OK)
        mwi_detail_set(d, e, foreign, reason);
}
