/* SPDX-License-Identifier: Apache-2.0 */
/* protocol.h -- medwire's protocol constants in one place (docs/protocol.md): the resources, the
 * content formats, and the sizes both ends must agree on. Definitions only. */
#ifndef MWI_SESSION_PROTOCOL_H
#define MWI_SESSION_PROTOCOL_H

/* The gateway's batch resource (POST, CON), and the device's that the gateway POSTs commands to
 * (docs/protocol.md 3 and 7). */
#define MWI_PATH_BATCH   "batch"
#define MWI_PATH_COMMAND "cmd"
/* The CA's CRL as the gateway enforces it (GET; docs/protocol.md 3b). */
#define MWI_PATH_CRL "crl"

/* Content formats, experimental range (RFC 7252 12.3). */
#define MWI_COAP_CF_MEDWIRE_BATCH   65100 /**< protobuf Batch */
#define MWI_COAP_CF_MEDWIRE_ACK     65101 /**< protobuf Ack */
#define MWI_COAP_CF_MEDWIRE_COMMAND 65102 /**< protobuf Command, to the device's /cmd */
/** application/pkix-crl (RFC 5280 DER), which has no CoAP number of its own */
#define MWI_COAP_CF_PKIX_CRL 65103

/* The largest CRL a device fetches (GET /crl, block-wise): about 350 revocations. */
#define MWI_CRL_FETCH_MAX 16384u

/* Bytes a CoAP request adds around the batch: header 4, token 8, Uri-Path 1+5,
 * Content-Format 1+2, payload marker 1, rounded up. */
#define MWI_COAP_REQUEST_OVERHEAD 32

/* A batch body that does not fit one record goes block-wise (RFC 7959) in blocks of 1024 bytes
 * (SZX 6), up to MWI_BODY_MAX; the gateway's default max_body is the same. */
#define MWI_BODY_MAX   4096u
#define MWI_BLOCK_SZX  6
#define MWI_BLOCK_SIZE 1024u

/* Requests in flight at once (NSTART, RFC 7252 4.7); a configured window is capped here. */
#define MWI_NSTART_MAX 4

#endif
