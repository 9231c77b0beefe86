/* SPDX-License-Identifier: Apache-2.0 */
/* p11_uri.h -- an RFC 7512 "pkcs11:" URI naming a private key in a token, taken apart. */
#ifndef MWI_CORE_P11_URI_H
#define MWI_CORE_P11_URI_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "medwire/err.h"

/** A token label is 32 bytes in PKCS#11 (CK_TOKEN_INFO.label, padded with spaces). */
#define MWI_P11_TOKEN_MAX 32
/** Longest object label (CKA_LABEL) we accept. */
#define MWI_P11_LABEL_MAX 128
/** Longest object id (CKA_ID), in bytes after percent-decoding. */
#define MWI_P11_ID_MAX 64
/** Longest module-path or pin-source, NUL included. */
#define MWI_P11_PATH_MAX 256
/** Longest PIN, from pin-value or the pin-source file. */
#define MWI_P11_PIN_MAX 128
/** Longest URI accepted as a whole. */
#define MWI_P11_URI_MAX 1024

/**
 * What the URI says. Only these attributes are understood: path attributes token, object,
 * id and type (which must be "private"), query attributes module-path, pin-value and
 * pin-source. Every text value is percent-decoded and NUL-terminated; the id is raw bytes.
 */
typedef struct mwi_p11_uri {
    char token[MWI_P11_TOKEN_MAX + 1];
    char object[MWI_P11_LABEL_MAX + 1];
    uint8_t id[MWI_P11_ID_MAX];
    size_t id_len;
    char module_path[MWI_P11_PATH_MAX];
    char pin_source[MWI_P11_PATH_MAX];
    char pin[MWI_P11_PIN_MAX + 1]; /**< from pin-value; wipe with mwi_p11_uri_wipe */
    bool has_object, has_id, has_pin_value, has_pin_source;
} mwi_p11_uri;

/** Whether @p s is meant as a PKCS#11 URI (starts with "pkcs11:", in any case). */
bool mwi_p11_is_uri(const char *s);

/**
 * Parses @p uri into @p out. Refused (MW_ECONFIG, with a sentence naming the attribute, never
 * a value, so never the PIN): an unknown or repeated attribute, a malformed percent-encoding,
 * a value too long or holding a control byte (except in id), no token, neither object nor id,
 * no module-path or a relative one, both pin-value and pin-source. On failure @p out is wiped.
 */
MW_NODISCARD mw_err mwi_p11_uri_parse(const char *uri, mwi_p11_uri *out,
                                      mw_error_detail_t *out_detail);

/** Copies @p uri to @p out (@p cap bytes, cut to fit) with the value of every pin-value
 *  replaced by "***": the URI as it may be shown in a message or a log. */
void mwi_p11_uri_shown(const char *uri, char *out, size_t cap);

/** Erases @p u (the PIN with it). */
void mwi_p11_uri_wipe(mwi_p11_uri *u);

#endif
