/* SPDX-License-Identifier: Apache-2.0 */
/* est_ca.h -- medwire-gateway --est-ca DIR: the EST issuer (mw_est_issue_fn) that signs a
 * device's renewal with a medwire-pki CA folder and records it in the folder's index.txt. */
#ifndef MW_GATEWAY_EST_CA_H
#define MW_GATEWAY_EST_CA_H

#include <stdint.h>

#include "medwire/gateway.h"

/** The CA folder and the lifetime of what it issues. */
typedef struct est_ca {
    const char *dir;     /**< a medwire-pki CA folder (ca.crt, ca.key, index.txt) */
    uint32_t valid_days; /**< a renewed certificate's lifetime */
} est_ca;

/**
 * mw_est_issue_fn for @p ctx an est_ca. The policy: the certificate the session was made with
 * must be in the folder's index.txt, not revoked, and the newest issued for its name (a stolen
 * key cannot renew once the device has, nor after its certificate is revoked); the new one, for
 * the request's key and the same name, is valid from an hour ago for valid_days. The folder's
 * lock (DIR/.lock, as medwire-pki takes it) is held from that check to the record in
 * index.txt, waiting for it if another holds it: a revocation made meanwhile is seen.
 */
mw_err est_ca_issue(void *ctx, const mw_est_request_t *req, uint8_t *out, size_t cap,
                    size_t *out_len, char *reason, size_t reason_cap);

#endif
