/* SPDX-License-Identifier: Apache-2.0 */
/* records.h -- DTLS records read without state or keys (no wolfSSL here): the client and the
 * gateway ask these, never the bytes, what a datagram holds. */
#ifndef MWI_DTLS_RECORDS_H
#define MWI_DTLS_RECORDS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* DTLS record header: type(1) version(2) epoch(2) seq(6) length(2) (RFC 6347 4.1). */
#define MWI_DTLS_REC_HDR      13
#define MWI_DTLS_CT_CCS       20
#define MWI_DTLS_CT_HANDSHAKE 22

/** Does @p dgram start with a handshake or change_cipher_spec record (a handshake flight, which
 *  belongs to the session being negotiated, not to the established one)? */
bool mwi_dtls_is_handshake_flight(const uint8_t *dgram, size_t len);
/** Classifies a datagram's first record without state: is it an epoch-0 ClientHello? */
bool mwi_dtls_is_client_hello(const uint8_t *dgram, size_t len);
/**
 * Is @p dgram exactly one record holding one whole (unfragmented) ClientHello whose every length
 * nests, with no extension twice, and with the extensions wolfSSL parses (server name, groups,
 * point formats, signature algorithms, ALPN, renegotiation info) well formed inside? Only such a
 * ClientHello reaches wolfSSL on the server (docs/protocol.md section 1).
 */
bool mwi_dtls_client_hello_well_formed(const uint8_t *dgram, size_t len);
/** A check of a whole ClientHello datagram, such as mwi_dtls_client_hello_well_formed. */
typedef bool mwi_dtls_hello_check(const uint8_t *dgram, size_t len);
/** The length of the leading part of @p dgram made of usable records: each within the datagram,
 *  a protected one at least @p min_sealed long, and, when @p hello_ok is given (a server), a
 *  ClientHello only alone and passing @p hello_ok. What follows is dropped silently (RFC 6347
 *  4.1.2.7). A client passes NULL, so its image carries no ClientHello parser. */
size_t mwi_dtls_usable_records(const uint8_t *dgram, size_t len, size_t min_sealed,
                               mwi_dtls_hello_check *hello_ok);
/** Whether the ClientHello @p dgram (whole: mwi_dtls_client_hello_well_formed) carries a
 *  cookie. */
bool mwi_dtls_hello_has_cookie(const uint8_t *dgram, size_t len);

#endif
