/* SPDX-License-Identifier: Apache-2.0 */
/**
 * @file err.h
 * @brief The one error enum of medwire, its strings, and the foreign detail kept beside it.
 *
 * Every fallible medwire function returns an ::mw_err. Only ::MW_EAGAIN and
 * ::MW_EINPROGRESS are non-fatal. Values are grouped by layer so that the
 * hundreds digit tells where a failure came from. When a dependency (wolfSSL,
 * libcoap) or a peer gave a more specific reason, it is kept in an
 * ::mw_error_detail_t beside the code (the first error wins).
 *
 * @code
 * mw_err e = mw_client_poll(client, 100);
 * if (e != MW_OK && e != MW_EAGAIN) {
 *     mw_error_detail_t d;
 *     mw_client_last_error(client, &d);
 *     fprintf(stderr, "medwire: %s (%d: %s)\n", mw_strerror(e), d.foreign, d.reason);
 * }
 * @endcode
 */
#ifndef MEDWIRE_ERR_H
#define MEDWIRE_ERR_H

#ifdef __cplusplus
extern "C" {
#endif

/** Marks a symbol of the public API (the library is built with hidden visibility). */
#if defined(MW_BUILDING_LIBRARY) && defined(__GNUC__)
#define MW_API __attribute__((visibility("default")))
#else
#define MW_API
#endif

/** A result the caller must look at. */
#if defined(__GNUC__)
#define MW_NODISCARD __attribute__((warn_unused_result))
#else
#define MW_NODISCARD
#endif

/** Status codes. 0 is success; 1-99 general; 1xx transport; 2xx DTLS and
 *  certificates; 3xx CoAP; 4xx session and protocol. */
typedef enum mw_err {
    MW_OK = 0,
    MW_EAGAIN = 1,      /**< nothing to do now; call again later (non-fatal) */
    MW_EINPROGRESS = 2, /**< started, not finished yet (non-fatal) */
    MW_EINVAL = 3,      /**< an argument is missing or out of range */
    MW_ENOMEM = 4,      /**< an allocation failed */
    MW_ENOSPC = 5,      /**< a caller's buffer or a fixed-size table is too small */
    MW_ECLOSED = 6,     /**< the object was closed or has failed fatally */
    MW_ETIMEDOUT = 7,   /**< a deadline passed */
    MW_EIO = 8,         /**< a file could not be read or written */
    MW_ECONFIG = 9,     /**< the configuration is incomplete or inconsistent */
    MW_EFULL = 10,      /**< a bounded queue or table is full */
    MW_EINTERNAL = 11,  /**< a dependency failed in a way that is not the peer's doing */

    MW_ETRANSPORT = 100, /**< the transport failed (socket error) */
    MW_EADDR = 101,      /**< an address could not be parsed or resolved, or bound (not local) */
    MW_ETOOBIG = 102,    /**< a datagram is larger than the transport or record limit */

    MW_EDTLS = 200,               /**< DTLS failed; the detail has wolfSSL's code */
    MW_ECERT_LOAD = 201,          /**< a CA, certificate or key file could not be loaded */
    MW_ECERT_EXPIRED = 202,       /**< the peer's certificate has expired */
    MW_ECERT_NOT_YET_VALID = 203, /**< the peer's certificate is not valid yet */
    MW_ECERT_UNTRUSTED = 204,     /**< the peer's certificate does not chain to our CA */
    MW_ECERT_REVOKED = 205,       /**< the peer's certificate is revoked */
    MW_ECERT_ROLE = 206,          /**< the peer's certificate has the wrong role (EKU) */
    MW_ECERT_NAME = 207,          /**< the gateway's name is not the one expected */
    MW_ECERT_IDENTITY = 208,      /**< the peer's certificate carries no usable identity */
    MW_ENO_PEER_CERT = 209,       /**< the peer sent no certificate */
    MW_ECIPHER = 210,             /**< no cipher suite in common with the peer */
    MW_EPEER_ALERT = 211,         /**< the peer aborted the handshake with an alert */
    MW_EHANDSHAKE_TIMEOUT = 212,  /**< the handshake did not complete in time */

    MW_ECOAP_MALFORMED = 300, /**< a CoAP message could not be parsed */
    MW_ECOAP_RESET = 301,     /**< the peer answered with RST */
    MW_ECOAP_GIVEUP = 302,    /**< a confirmable message was never acknowledged */
    MW_ECOAP_RESPONSE = 303,  /**< the peer answered with an error response code */

    MW_EDECODE = 400,   /**< a protobuf message could not be decoded */
    MW_EIDENTITY = 401, /**< an envelope claims a device id other than the peer's */
    MW_EREPLAY = 402,   /**< a message was refused as a replay */
    MW_EVERSION = 403,  /**< unsupported protocol version */
} mw_err;

/** Returns a short, constant, English description of @p err (never NULL). */
MW_API const char *mw_strerror(mw_err err);

/** The detail kept beside an error: the foreign code and a reason to act on. */
typedef struct mw_error_detail {
    mw_err err;       /**< the medwire code */
    int foreign;      /**< wolfSSL or libcoap code, 0 when none */
    /** A NUL-terminated sentence for a user or the audit log; in a library built with
     *  -DMW_ERROR_REASONS=OFF, the sentence mw_strerror(err) gives. */
    char reason[160];
} mw_error_detail_t;

#ifdef __cplusplus
}
#endif
#endif
