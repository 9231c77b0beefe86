/* SPDX-License-Identifier: Apache-2.0 */
/* digest.h -- a short collision-resistant digest for the session layer's replay judgements. */
#ifndef MWI_DTLS_DIGEST_H
#define MWI_DTLS_DIGEST_H

#include <stddef.h>
#include <stdint.h>

#include "medwire/err.h"

/** The first 8 bytes of SHA-256(@p data), big-endian, in @p out. Two different messages under
 *  one sequence number collide with probability 2^-64, and a device gains nothing by making
 *  its own data collide: it can send false data under its identity anyway.
 *  @return ::MW_OK; ::MW_EINTERNAL if wolfCrypt failed (no digest: judge nothing by it). */
MW_NODISCARD mw_err mwi_digest64(const uint8_t *data, size_t len, uint64_t *out);

#endif
