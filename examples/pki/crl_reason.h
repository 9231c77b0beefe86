/* SPDX-License-Identifier: Apache-2.0 */
/* crl_reason.h -- the CRLReason codes of RFC 5280 5.3.1 under the names index.txt gives them. */
#ifndef MW_PKI_CRL_REASON_H
#define MW_PKI_CRL_REASON_H

#include <stdbool.h>

/**
 * The CRLReason code of @p name, spelled exactly as 'openssl ca' writes it into index.txt
 * ("keyCompromise"), or -1 for an unknown name. With @p option_only set, only the reasons
 * --reason offers, those that fit a device or gateway, are known.
 */
int pki_reason_code(const char *name, bool option_only);

#endif
