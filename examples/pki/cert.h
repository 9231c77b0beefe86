/* SPDX-License-Identifier: Apache-2.0 */
/* cert.h -- the keys and certificates of medwire's profile: making, signing, loading a CA. */
#ifndef MW_PKI_CERT_H
#define MW_PKI_CERT_H

#include <stdbool.h>

#include <wolfssl/options.h>
#include <wolfssl/wolfcrypt/settings.h>
#include <wolfssl/wolfcrypt/asn_public.h>
#include <wolfssl/wolfcrypt/ecc.h>
#include <wolfssl/wolfcrypt/random.h>

#include "civil_time.h"

#if !defined(WOLFSSL_CERT_GEN) || !defined(WOLFSSL_CERT_EXT) || !defined(WOLFSSL_ALT_NAMES) ||     \
    !defined(HAVE_ECC)
#error "medwire-pki needs a wolfSSL built with certgen, certext, altnames and ECC"
#endif

#define PKI_NAME_MAX_LEN 64 /* RFC 5280 ub-common-name */
#define PKI_SERIAL_LEN   16
#define PKI_CERT_DER_CAP 4096

typedef enum { ROLE_CA, ROLE_DEVICE, ROLE_GATEWAY } role_t;

/** What a certificate is made from; the caller owns every pointer. */
typedef struct {
    role_t role;
    const char *cn;
    utc_time not_before, not_after;
    ecc_key *subject_key;
    ecc_key *signer_key;
    const unsigned char *ca_der; /* NULL when self-signed */
    int ca_der_len;
    unsigned char ca_subject[sizeof(((Cert *)0)->issRaw)]; /* RDNs, NUL-terminated */
    unsigned char serial[PKI_SERIAL_LEN];                  /* set by pki_make_cert */
} cert_request;

/** Whether @p s is a valid NAME: [A-Za-z0-9][A-Za-z0-9._-]{0,63}, a file name, a CN and a DNS
 *  name at once. */
bool pki_valid_id(const char *s);

/** Writes the subject of the profile, O=medwire, CN=@p cn, as the raw RDNs wolfCrypt takes in
 *  Cert.sbjRaw (@p cap bytes, zero-filled). */
void pki_subject_raw(unsigned char *dst, size_t cap, const char *cn);

/** Makes a P-256 key in @p key (initialised by the caller) and has it use @p rng to blind its
 *  signatures. EXIT_SUCCESS, or EXIT_FAILURE after reporting why. */
int pki_make_key(WC_RNG *rng, ecc_key *key);

/**
 * Makes the DER certificate @p req describes, signed by req->signer_key, into @p der (@p cap
 * bytes); sets *out_len and req->serial. With req->ca_der NULL the certificate is its own
 * issuer; otherwise it takes issuer and authorityKeyIdentifier from req->ca_der and
 * req->ca_subject. EXIT_SUCCESS, or EXIT_FAILURE after reporting why.
 */
int pki_make_cert(WC_RNG *rng, cert_request *req, unsigned char *der, int cap, int *out_len);

/**
 * Loads DIR/ca.crt into @p der (PKI_CERT_DER_CAP bytes) and DIR/ca.key into @p key
 * (initialised by the caller), checks that they belong together and that the CA fits the
 * profile, and points req->ca_der, req->ca_der_len and req->ca_subject at the certificate.
 * EXIT_SUCCESS, or EXIT_FAILURE after reporting what to do.
 */
int pki_load_ca(const char *dir, unsigned char *der, cert_request *req, ecc_key *key);

/** Writes DIR/NAME.key, the SEC1 PEM of @p key, mode 0600, with pki_write_atomic(). */
int pki_write_key(const char *dir, const char *name, ecc_key *key, bool force);

/** Writes DIR/NAME.crt, the PEM of @p der, mode 0644, with pki_write_atomic(). */
int pki_write_cert(const char *dir, const char *name, const unsigned char *der, int der_len,
                   bool force);

#endif
