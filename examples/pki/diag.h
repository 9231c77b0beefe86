/* SPDX-License-Identifier: Apache-2.0 */
/* diag.h -- how medwire-pki reports a failure: one line on stderr, after the program's name. */
#ifndef MW_PKI_DIAG_H
#define MW_PKI_DIAG_H

#define PKI_PROG "medwire-pki"

/** Prints "medwire-pki: MESSAGE" and a newline on stderr; returns EXIT_FAILURE, so that a
 *  caller can return what it reports. */
__attribute__((format(printf, 1, 2))) int pki_fail(const char *fmt, ...);

/** pki_fail() for a wolfCrypt error: what failed, wolfCrypt's description of @p err, and the
 *  code itself, which is what a wolfSSL user searches for. */
int pki_wolf_fail(const char *what, int err);

#endif
