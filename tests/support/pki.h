/* SPDX-License-Identifier: Apache-2.0 */
/* pki.h -- a fresh PKI for a test, made by the real medwire-pki program. */
#ifndef MWT_PKI_H
#define MWT_PKI_H

#include <stdbool.h>

/** Paths of one test PKI (all under dir). */
typedef struct mwt_pki {
    char dir[200];
} mwt_pki;

/**
 * Makes, with medwire-pki: ca/ (the CA), gateway (role gateway), dev-1, dev-2, dev-3 (role
 * device), expired and future (role device, validity in the past and in the future),
 * alien (role device, from another CA ca2/), selfsigned (role device, self-signed).
 * Returns false (and prints why) if medwire-pki failed.
 */
bool mwt_pki_make(mwt_pki *p);
/** Issues a device certificate NAME in @p p if it does not exist yet (for tests with many
 *  devices, each with an identity of its own). */
bool mwt_pki_device(const mwt_pki *p, const char *name);
/** Certificates PREFIX-1 ... PREFIX-N for a fleet (one medwire-pki run with --count), unless
 *  PREFIX-N exists already. */
bool mwt_pki_devices(const mwt_pki *p, const char *prefix, int n);
/**
 * A PKI kept in the build tree across runs (MW_BIN_DIR/../tests/fleet-pki): ca/ and gateway
 * as mwt_pki_make makes them, and the device certificates mwt_pki_device adds. For tests and
 * benchmarks with thousands of devices: a certificate costs a medwire-pki run (about 15 ms),
 * so a fleet is issued once per build tree. Made again from scratch when medwire-pki is newer
 * than the CA. Returns false (and prints why) on failure.
 */
bool mwt_pki_fleet(mwt_pki *p);
/** "DIR/NAME.crt" and "DIR/NAME.key" and "DIR/ca/ca.crt", in rotating static buffers. */
const char *mwt_pki_crt(const mwt_pki *p, const char *name);
const char *mwt_pki_key(const mwt_pki *p, const char *name);
const char *mwt_pki_ca(const mwt_pki *p);

/**
 * A certificate DIR/NAME.crt (key DIR/NAME.key, ECDSA P-256) for @p cn, with @p cn as its DNS
 * name, signed by DIR/CA.crt; @p ca NULL makes a self-signed CA. Made with OpenSSL's command
 * line: for the hospital side of the tests (TLS listeners and their clients), which is not
 * medwire's PKI. Returns false (and prints why) on failure.
 */
bool mwt_openssl_cert(const char *dir, const char *name, const char *cn, const char *ca);

#endif
