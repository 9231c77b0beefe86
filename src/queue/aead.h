/* SPDX-License-Identifier: Apache-2.0 */
/* aead.h -- the queue's crypto seam: AES-GCM, and the HKDF that keys it, in five calls.
 *
 * aead.c is the one file of src/queue that includes wolfSSL headers (tests/layering checks
 * it); everything else in the queue sees an opaque context. What is sealed with which nonce
 * and associated data is the record format's business (record.c, docs/queue.md 6-7). */
#ifndef MWI_QUEUE_AEAD_H
#define MWI_QUEUE_AEAD_H

#include <stddef.h>
#include <stdint.h>

#include "medwire/err.h"

#define MWI_AEAD_NONCE_LEN 12u
#define MWI_AEAD_TAG_LEN   16u
#define MWI_AEAD_KEY_MAX   32u /**< longest input key of mwi_aead_derive_key (AES-256) */

/** wolfCrypt's AES context. Lives in memory the caller provides (mwi_aead_size() bytes,
 *  64-byte aligned), zeroed before mwi_aead_init(). */
typedef struct mwi_aead mwi_aead;

/** Bytes an mwi_aead occupies. */
size_t mwi_aead_size(void);

/** Prepares @p a for a key. @return ::MW_OK; ::MW_EINTERNAL (wolfCrypt refused). */
MW_NODISCARD mw_err mwi_aead_init(mwi_aead *a);

/**
 * Keys @p a for AES-GCM with HKDF-SHA256(@p ikm, @p salt, @p info), a key as long as @p ikm
 * (16 or 32 bytes: AES-128 or AES-256). The derived key is kept only in the AES schedule; its
 * transient copy is wiped, and @p ikm is not copied.
 * @return ::MW_OK; ::MW_EINVAL (@p ikm longer than ::MWI_AEAD_KEY_MAX); ::MW_EINTERNAL.
 */
MW_NODISCARD mw_err mwi_aead_derive_key(mwi_aead *a, const uint8_t *ikm, size_t ikm_len,
                                        const uint8_t *salt, size_t salt_len, const uint8_t *info,
                                        size_t info_len);

/** AES-GCM encryption of @p len bytes of @p in into @p out (may be 0 bytes: a GMAC of the
 *  associated data), tag into @p tag. @return ::MW_OK; ::MW_EINTERNAL. */
MW_NODISCARD mw_err mwi_aead_seal(mwi_aead *a, uint8_t *out, const uint8_t *in, uint32_t len,
                                  const uint8_t nonce[MWI_AEAD_NONCE_LEN], const uint8_t *aad,
                                  uint32_t aad_len, uint8_t tag[MWI_AEAD_TAG_LEN]);

/** AES-GCM decryption of @p len bytes of @p in into @p out, checked against @p tag.
 *  @return ::MW_OK; ::MW_EDECODE (not authentic): @p out is then wiped, since GCM decrypts
 *  before it compares the tag and what it left is damaged or attacker-chosen plaintext. */
MW_NODISCARD mw_err mwi_aead_open(mwi_aead *a, uint8_t *out, const uint8_t *in, uint32_t len,
                                  const uint8_t nonce[MWI_AEAD_NONCE_LEN], const uint8_t *aad,
                                  uint32_t aad_len, const uint8_t tag[MWI_AEAD_TAG_LEN]);

/** Releases what wolfCrypt holds for @p a and wipes it (key schedule included). */
void mwi_aead_free(mwi_aead *a);

#endif
