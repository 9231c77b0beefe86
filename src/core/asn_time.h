/* SPDX-License-Identifier: Apache-2.0 */
/* asn_time.h -- X.509's times (RFC 5280 4.1.2.5: UTCTime and GeneralizedTime, in UTC) as
 * seconds since the epoch, for the expiry of certificates and CRLs. */
#ifndef MWI_CORE_ASN_TIME_H
#define MWI_CORE_ASN_TIME_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/**
 * Reads the time @p p (@p n bytes): "YYMMDDHHMMSSZ" (UTCTime; YY below 50 is 20YY) or
 * "YYYYMMDDHHMMSSZ" (GeneralizedTime), with or without its DER tag (0x17, 0x18) and length.
 * False for anything else, a field out of range included (a 31st of April, a 25th hour).
 */
bool mwi_asn_time(const uint8_t *p, size_t n, int64_t *out_unix_s);

#endif
