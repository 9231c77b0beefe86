/* SPDX-License-Identifier: Apache-2.0 */
/* renew.h -- medwire-device --renew-before-days: the files of a certificate renewal, written so
 * that a power cut at any step leaves a certificate and key that belong together.
 *
 * The new key is KEY.new until its certificate is installed; the certificate arrives as
 * CERT.new; the pair in use is then copied to CERT.prev and KEY.prev, and CERT.new and KEY.new
 * are renamed over CERT and KEY, in that order. renew_recover, at every start, finishes what a
 * cut interrupted, and a KEY.new still waiting for its certificate is asked for again (the
 * gateway answers a repeated request with the certificate it issued for that key). */
#ifndef MW_DEVICE_RENEW_H
#define MW_DEVICE_RENEW_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/** Finishes an interrupted installation of CERT.new / KEY.new over @p cert / @p key; prints what
 *  it did. 0, or -1 after printing why. */
int renew_recover(const char *cert, const char *key);

/** The DER PKCS#10 request for @p cn signed by KEY.new, made (mode 0600) unless it is there
 *  already from an earlier attempt: into csr[0..cap), *len. 0, or -1 after printing why. */
int renew_request(const char *key, const char *cn, uint8_t *csr, size_t cap, size_t *len);

/** Installs the certificate @p der (for KEY.new): CERT.new, the old pair to .prev, then the
 *  renames. 0, or -1 after printing why (the old pair is then still in place, or recovered at
 *  the next start). */
int renew_install(const char *cert, const char *key, const uint8_t *der, size_t len);

/** Writes @p len bytes to @p path whole (PATH.tmp, synced, renamed over it, the folder synced),
 *  with @p mode. 0, or -1 with errno. */
int renew_write_whole(const char *path, const void *data, size_t len, mode_t mode);

/** The largest CRL, as PEM, that --crl-refresh-s keeps (the library fetches 16 KB of DER). */
#define MW_CRL_PEM_MAX 24000

#endif
