/* SPDX-License-Identifier: Apache-2.0 */
/* est_der.h -- what the EST issuers of medwire-gateway read from a DER certificate or PKCS#10
 * request: its serial, common name, public key and extended key usage. */
#ifndef MW_GATEWAY_EST_DER_H
#define MW_GATEWAY_EST_DER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "medwire/message.h"

typedef struct est_der {
    char serial[2 * 32 + 1]; /**< upper-case hex, no leading zero octet ("" for a request) */
    char cn[MW_ID_MAX + 1];  /**< the subject's common name, "" if none or too long */
    uint8_t key[160];        /**< the SubjectPublicKeyInfo */
    size_t key_len;
    bool client_auth; /**< the extended key usage names clientAuth */
    bool ca;          /**< basic constraints CA:TRUE */
} est_der;

/** Reads the DER certificate (@p request false) or PKCS#10 request (true) @p der into @p out,
 *  without checking any signature; false if it does not parse. */
bool est_der_read(const uint8_t *der, size_t len, bool request, est_der *out);

#endif
