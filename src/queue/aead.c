/* SPDX-License-Identifier: Apache-2.0 */
/* aead.c -- AES-GCM and HKDF-SHA256 from wolfCrypt, for records at rest (aead.h). */
/* Only src/dtls and this file include wolfSSL (tests/layering/check_layering.py). */
#ifndef WOLFSSL_USER_SETTINGS
#include <wolfssl/options.h> /* first: without it struct layouts differ from the library's */
#endif
#include <wolfssl/wolfcrypt/aes.h>
#include <wolfssl/wolfcrypt/error-crypt.h>
#include <wolfssl/wolfcrypt/hmac.h> /* wc_HKDF */

#include "core/wipe.h"
#include "queue/aead.h"

struct mwi_aead {
    Aes aes;
};

size_t mwi_aead_size(void)
{
    return sizeof(struct mwi_aead);
}

mw_err mwi_aead_init(mwi_aead *a)
{
    return wc_AesInit(&a->aes, NULL, INVALID_DEVID) != 0 ? MW_EINTERNAL : MW_OK;
}

mw_err mwi_aead_derive_key(mwi_aead *a, const uint8_t *ikm, size_t ikm_len, const uint8_t *salt,
                           size_t salt_len, const uint8_t *info, size_t info_len)
{
    uint8_t dk[MWI_AEAD_KEY_MAX];
    mw_err e = MW_OK;

    if (ikm_len > sizeof dk) {
        return MW_EINVAL;
    }
    if (wc_HKDF(WC_SHA256, ikm, (word32)ikm_len, salt, (word32)salt_len, info, (word32)info_len, dk,
                (word32)ikm_len) != 0 ||
        wc_AesGcmSetKey(&a->aes, dk, (word32)ikm_len) != 0) {
        e = MW_EINTERNAL;
    }
    mwi_wipe(dk, sizeof dk);
    return e;
}

mw_err mwi_aead_seal(mwi_aead *a, uint8_t *out, const uint8_t *in, uint32_t len,
                     const uint8_t nonce[MWI_AEAD_NONCE_LEN], const uint8_t *aad, uint32_t aad_len,
                     uint8_t tag[MWI_AEAD_TAG_LEN])
{
    if (wc_AesGcmEncrypt(&a->aes, out, in, len, nonce, MWI_AEAD_NONCE_LEN, tag, MWI_AEAD_TAG_LEN,
                         aad, aad_len) != 0) {
        return MW_EINTERNAL;
    }
    return MW_OK;
}

mw_err mwi_aead_open(mwi_aead *a, uint8_t *out, const uint8_t *in, uint32_t len,
                     const uint8_t nonce[MWI_AEAD_NONCE_LEN], const uint8_t *aad, uint32_t aad_len,
                     const uint8_t tag[MWI_AEAD_TAG_LEN])
{
    if (wc_AesGcmDecrypt(&a->aes, out, in, len, nonce, MWI_AEAD_NONCE_LEN, tag, MWI_AEAD_TAG_LEN,
                         aad, aad_len) != 0) {
        /* GCM decrypts before it compares the tag: what it left is attacker-chosen or
         * damaged plaintext, and must not outlive the failure. */
        mwi_wipe(out, len);
        return MW_EDECODE;
    }
    return MW_OK;
}

void mwi_aead_free(mwi_aead *a)
{
    wc_AesFree(&a->aes);
    mwi_wipe(a, sizeof *a);
}
