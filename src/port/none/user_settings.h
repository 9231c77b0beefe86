/* SPDX-License-Identifier: Apache-2.0 */
/* user_settings.h -- wolfSSL 5.5.4 configured for a medwire device without an OS (MW_PORT=none):
 * a DTLS 1.2 client with the protocol's two suites (ECDHE-ECDSA with AES-128-CCM-8 or
 * AES-128-GCM, SHA-256, P-256) and nothing else. Read by wolfSSL's own headers when
 * WOLFSSL_USER_SETTINGS is defined, for the device's wolfSSL build and for medwire's files
 * alike: both must see the same options, or structure layouts differ. What each option saves
 * or costs is in docs/porting.md ("wolfSSL"). */
#ifndef MW_PORT_NONE_USER_SETTINGS_H
#define MW_PORT_NONE_USER_SETTINGS_H

/* ---- Platform: no OS, no files, one thread ---- */
#define SINGLE_THREADED /* no mutexes: the client is used from one thread */
#define NO_FILESYSTEM   /* credentials come as buffers (ca_buf, cert_buf, key_buf) */
#define NO_WRITEV
#define NO_DEV_RANDOM   /* no /dev/urandom: the vendor's TRNG seeds the DRBG */
#define WOLFSSL_USER_IO /* medwire installs its own I/O callbacks; no BSD sockets */
#define WOLFSSL_NO_SOCK
#define NO_ERROR_STRINGS    /* medwire writes its own sentences; wolfSSL codes stay numbers */
#define WOLFSSL_SMALL_STACK /* big temporaries on the heap, not on a small task stack */
#define TFM_TIMING_RESISTANT
#define ECC_TIMING_RESISTANT
#define WC_RSA_BLINDING
#define SIZEOF_LONG_LONG 8
/* The device's entropy: a vendor function (examples/bare-metal: mw_vendor_trng) seeds the DRBG.
 * Without it wolfCrypt has no seed source and refuses to build. */
extern int mw_vendor_seed(unsigned char *out, unsigned int len);
#define CUSTOM_RAND_GENERATE_SEED(out, sz) mw_vendor_seed((out), (sz))

/* ---- Protocol: DTLS 1.2 client only ---- */
#define WOLFSSL_DTLS
#define NO_WOLFSSL_SERVER /* the gateway is the server; saves the server state machine */
#define WOLFSSL_NO_TLS12_SERVER
#define NO_OLD_TLS       /* no SSL 3, TLS 1.0/1.1 */
#define WOLFSSL_NO_TLS13 /* DTLS 1.2 is the protocol (docs/protocol.md) */
#define HAVE_TLS_EXTENSIONS
#define HAVE_SUPPORTED_CURVES
#define NO_SESSION_CACHE_REF
#define SMALL_SESSION_CACHE /* the client keeps one session for resumption by ID */
/* The peer's certificates are checked by medwire's verify callback (src/dtls/dtls.c: role,
 * exact name, CA to leaf), called on success too, for every certificate, as on the host. */
#define WOLFSSL_ALWAYS_VERIFY_CB
#define WOLFSSL_VERIFY_CB_ALL_CERTS
/* The gateway's chain kept with the session: a resumed session's certificate is checked
 * again. The protocol's chain is CA to leaf, and a peer may send the CA: at most two kept. */
#define SESSION_CERTS
#define MAX_CHAIN_DEPTH 2
/* wolfCrypt's certificate parser (InitDecodedCert, ParseCert, FreeDecodedCert) exported: the
 * callback reads the gateway's name and extended key usage with it, not with X509 objects. */
#define WOLFSSL_PUBLIC_ASN

/* ---- Cryptography: P-256, AES-128-CCM-8 and -GCM, SHA-256 ---- */
#define HAVE_ECC
#define ECC_USER_CURVES /* P-256 only (no other curve compiled) */
#define ECC_SHAMIR
#define HAVE_AESCCM
#define HAVE_AESGCM
#define GCM_SMALL /* no 4 kB multiplication table per key: slower GCM, less RAM */
#define WOLFSSL_AES_128
#define NO_AES_192
#define NO_AES_256      /* the queue's at-rest key must then be 16 bytes (queue_key_len) */
#define WOLFSSL_SP_MATH /* single-precision P-256 maths: small and constant time */
#define WOLFSSL_HAVE_SP_ECC
#define WOLFSSL_SP_SMALL
#define WOLFSSL_SP_NO_MALLOC
#define NO_RSA
#define NO_DH
#define NO_DSA
#define NO_DES3
#define NO_RC4
#define NO_MD4
#define NO_MD5
#define NO_SHA /* SHA-1: no suite medwire allows needs it */
#define NO_PSK
#define NO_PWDBASED
#define NO_HC128
#define NO_RABBIT
#define WOLFSSL_NO_SHAKE128
#define WOLFSSL_NO_SHAKE256
#define NO_OLD_RNGNAME
#define HAVE_HKDF /* the queue derives its at-rest record keys with HKDF-SHA-256 */

/* Not defined, on purpose: OPENSSL_EXTRA / OPENSSL_ALL (the OpenSSL compatibility layer,
 * wolfSSL_X509_* names), HAVE_CRL (revocation is the gateway's), HAVE_SESSION_TICKET (medwire
 * resumes by session ID only), HAVE_PKCS11 / WOLF_CRYPTO_CB (no token on this target; a secure
 * element would add WOLF_CRYPTO_CB back). */

#endif
