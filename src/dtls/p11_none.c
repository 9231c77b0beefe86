/* SPDX-License-Identifier: Apache-2.0 */
/* p11_none.c -- keys in PKCS#11 tokens for a wolfSSL without PKCS#11 (the device configuration,
 * src/port/none/user_settings.h): a "pkcs11:" key is refused with a sentence that says so, and
 * nothing of the token code is compiled. Built instead of p11.c in cross builds. */
#include <stddef.h>

#include "core/detail.h"
#include "dtls/p11.h"

mw_err mwi_p11_key_open(const char *uri, mwi_p11_key **out_key, mw_error_detail_t *d)
{
    (void)uri;
    if (out_key)
        *out_key = NULL;
    return mwi_detail_fail(d, MW_ECONFIG,
                           "key_file is a pkcs11: URI, but this build's wolfSSL has no PKCS#11 "
                           "(HAVE_PKCS11, WOLF_CRYPTO_CB): give the key in key_buf, or a secure "
                           "element through wolfCrypt's crypto callbacks");
}

void mwi_p11_key_close(mwi_p11_key **key)
{
    if (key)
        *key = NULL;
}

int mwi_p11_key_dev_id(const mwi_p11_key *key)
{
    (void)key;
    return -2; /* INVALID_DEVID */
}

const char *mwi_p11_key_label(const mwi_p11_key *key)
{
    (void)key;
    return NULL;
}

const uint8_t *mwi_p11_key_id(const mwi_p11_key *key, size_t *out_len)
{
    (void)key;
    if (out_len)
        *out_len = 0;
    return NULL;
}

const char *mwi_p11_key_name(const mwi_p11_key *key)
{
    (void)key;
    return "";
}

int mwi_p11_key_ecc_init(const mwi_p11_key *key, struct ecc_key *out_key)
{
    (void)key;
    (void)out_key;
    return -173; /* BAD_FUNC_ARG */
}

mw_err mwi_p11_key_check(const mwi_p11_key *key, const uint8_t *spki, size_t spki_len,
                         const char *cert_file, mw_error_detail_t *d)
{
    (void)key, (void)spki, (void)spki_len, (void)cert_file;
    return mwi_detail_fail(d, MW_ECONFIG, "this build's wolfSSL has no PKCS#11");
}

mw_err mwi_p11_key_point(const mwi_p11_key *key, uint8_t out[MWI_P11_POINT_LEN],
                         mw_error_detail_t *d)
{
    (void)key, (void)out;
    return mwi_detail_fail(d, MW_ECONFIG, "this build's wolfSSL has no PKCS#11");
}
