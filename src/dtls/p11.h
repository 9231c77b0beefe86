/* SPDX-License-Identifier: Apache-2.0 */
/* p11.h -- a private key that stays in a PKCS#11 token, reached through wolfCrypt's device
 * callbacks: the module loaded, the token found by label, a logged-in session, a device id. */
#ifndef MWI_DTLS_P11_H
#define MWI_DTLS_P11_H

#include <stddef.h>
#include <stdint.h>

#include "medwire/err.h"

/** The uncompressed P-256 point 04 || X || Y. */
#define MWI_P11_POINT_LEN 65

typedef struct mwi_p11_key mwi_p11_key;
struct ecc_key; /* wolfCrypt's, for the one caller outside this layer (medwire-pki) */

/**
 * Opens the key the RFC 7512 URI @p uri names (core/p11_uri.h): loads module-path (once per
 * process: contexts share it), finds the token by its exact label, opens a session and logs
 * in with the PIN (pin-value, or the first line of the pin-source file), wipes the PIN, and
 * registers a wolfCrypt device whose operations run in that session. A token's login is
 * shared by the whole process: a second key on a token already logged in is not asked again.
 * @return MW_OK; MW_ECONFIG for a bad URI or PIN file; MW_ECERT_LOAD when the module, the
 *         token or the login fails (the detail names the key by its URI path, never the PIN,
 *         and says what to do); MW_ENOMEM; MW_EFULL when no device slot is free.
 */
MW_NODISCARD mw_err mwi_p11_key_open(const char *uri, mwi_p11_key **out_key,
                                     mw_error_detail_t *out_detail);

/** Unregisters the device, closes the session, and unloads the module with its last user. */
void mwi_p11_key_close(mwi_p11_key **key);

/** The wolfCrypt device id that signs with the key. */
int mwi_p11_key_dev_id(const mwi_p11_key *key);
/** The key's label (CKA_LABEL) when the URI names it by object and not by id; else NULL. */
const char *mwi_p11_key_label(const mwi_p11_key *key);
/** The key's id (CKA_ID) and its length in *out_len when the URI gives one; else NULL. */
const uint8_t *mwi_p11_key_id(const mwi_p11_key *key, size_t *out_len);
/** The URI up to its query, "pkcs11:token=...;object=...": what messages name (no PIN). */
const char *mwi_p11_key_name(const mwi_p11_key *key);

/** Initialises @p key (a wolfCrypt ecc_key) as a handle on the token's private key: signing
 *  with it signs in the token. Free it with wc_ecc_free. 0, or wolfCrypt's error. */
int mwi_p11_key_ecc_init(const mwi_p11_key *key, struct ecc_key *out_key);

/**
 * Proves that the token's private key is the one of the SubjectPublicKeyInfo @p spki: signs a
 * fresh random digest in the token and verifies the signature here with @p spki. MW_ECERT_LOAD
 * with a sentence naming the key and @p cert_file when the token has no such private key or
 * when it signs for another public key.
 */
MW_NODISCARD mw_err mwi_p11_key_check(const mwi_p11_key *key, const uint8_t *spki, size_t spki_len,
                                      const char *cert_file, mw_error_detail_t *out_detail);

/**
 * The public point of the key: CKA_EC_POINT of the token's public key object with the same id
 * or label, which must be on P-256. MW_ECERT_LOAD with a sentence if there is none.
 */
MW_NODISCARD mw_err mwi_p11_key_point(const mwi_p11_key *key, uint8_t out[MWI_P11_POINT_LEN],
                                      mw_error_detail_t *out_detail);

#endif
