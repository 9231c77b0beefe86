/* SPDX-License-Identifier: Apache-2.0 */
/* key_file.h -- whether a private key file (or a token key's PIN file) is kept from other local
 * users. */
#ifndef MWI_PORT_KEY_FILE_H
#define MWI_PORT_KEY_FILE_H

#include <stdbool.h>

#include "medwire/err.h"

/**
 * MW_OK if the private key file @p path grants no permission to its group or to others, or if
 * @p allow_shared says that is accepted; otherwise MW_ECERT_LOAD with a detail that names the
 * file, its mode and the fix (chmod 600). A file that cannot be examined passes: loading it
 * then says why. For a key in a token (a "pkcs11:" URI) the file checked is its pin-source,
 * if it has one; a URI without one passes.
 */
MW_NODISCARD mw_err mwi_key_file_private(const char *path, bool allow_shared,
                                         mw_error_detail_t *out_detail);

#endif
