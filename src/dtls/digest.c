/* SPDX-License-Identifier: Apache-2.0 */
/* digest.c -- a short collision-resistant digest for the session layer's replay judgements. */
#ifndef WOLFSSL_USER_SETTINGS
#include <wolfssl/options.h>
#endif
#include <wolfssl/wolfcrypt/hash.h>

#include "dtls/digest.h"

mw_err mwi_digest64(const uint8_t *data, size_t len, uint64_t *out)
{
    uint8_t h[WC_SHA256_DIGEST_SIZE];
    if (out == NULL || (data == NULL && len > 0) || len > UINT32_MAX ||
        wc_Sha256Hash(data, (uint32_t)len, h) != 0)
        return MW_EINTERNAL;
    uint64_t v = 0;
    for (int i = 0; i < 8; i++)
        v = (v << 8) | h[i];
    *out = v;
    return MW_OK;
}
