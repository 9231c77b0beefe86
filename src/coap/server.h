/* SPDX-License-Identifier: Apache-2.0 */
/* server.h -- server-side CoAP mechanics, sans-I/O: duplicate detection with response replay,
 * Block1 reassembly, Block2 slicing. */
#ifndef MWI_COAP_SERVER_H
#define MWI_COAP_SERVER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "coap/coap.h"

/** Responses remembered per peer for duplicate detection (bounds NSTART a peer can use). */
#define MWI_COAP_DEDUP_ENTRIES 4
/** Largest response replayed byte for byte; a larger one is rebuilt (safe: see mwi_coap_dedup). */
#define MWI_COAP_DEDUP_MAX_RESPONSE 160

typedef struct mwi_coap_dedup_entry {
    uint64_t expires_ms; /**< 0: free */
    uint16_t mid;
    uint8_t type;      /**< of the request: CON or NON */
    bool has_response; /**< false: seen, but the response was too large to keep */
    uint16_t len;
    uint8_t response[MWI_COAP_DEDUP_MAX_RESPONSE];
} mwi_coap_dedup_entry;

/**
 * Message-ID deduplication (RFC 7252 4.5): a duplicate CON is answered with
 * the identical response and its request is processed once. Entries live
 * EXCHANGE_LIFETIME (CON) or NON_LIFETIME (NON); the oldest is reused when
 * all are taken, which only a peer exceeding its NSTART can cause (and then
 * medwire's own duplicate rule, by sequence number, still holds).
 */
typedef struct mwi_coap_dedup {
    mwi_coap_dedup_entry e[MWI_COAP_DEDUP_ENTRIES];
} mwi_coap_dedup;

/** Looks up a request's MID. Returns the entry if it is a duplicate (not expired), else NULL. */
const mwi_coap_dedup_entry *mwi_coap_dedup_find(const mwi_coap_dedup *d, uint8_t type, uint16_t mid,
                                                uint64_t now_ms);
/** Remembers that (type, mid) was processed and what was answered (response may be NULL). */
void mwi_coap_dedup_store(mwi_coap_dedup *d, uint8_t type, uint16_t mid, const uint8_t *response,
                          size_t len, uint64_t now_ms, const mwi_coap_params *p);

/** Reassembly of one Block1 request body (RFC 7959 2.5), bounded by max_body. */
typedef struct mwi_coap_block1 {
    bool active;
    uint8_t token_len;
    uint8_t token[MWI_COAP_MAX_TOKEN];
    char path[MWI_COAP_MAX_PATH + 1];
    uint32_t next_num; /**< the block number expected next */
    uint8_t szx;
    size_t len;
    uint64_t expires_ms;
} mwi_coap_block1;

typedef enum mwi_block1_result {
    MWI_BLOCK1_COMPLETE,  /**< the body is whole in buf[0..len): process it, then reset */
    MWI_BLOCK1_CONTINUE,  /**< answer 2.31 Continue echoing the Block1 option */
    MWI_BLOCK1_TOO_LARGE, /**< answer 4.13 with Size1 = max_body; nothing was kept */
    MWI_BLOCK1_INCOMPLETE /**< a block out of order or of another size: answer 4.08 */
} mwi_block1_result;

/**
 * Feeds one request carrying Block1 into @p b, whose body goes to buf[0..max_body).
 * The request's Size1 (if present) is checked first, so a too-large body is
 * refused before any of it is kept; a body growing past max_body is refused
 * and dropped (RFC 7959 2.9.3).
 */
mwi_block1_result mwi_coap_block1_input(mwi_coap_block1 *b, uint8_t *buf, size_t max_body,
                                        const mwi_coap_msg *m, uint64_t now_ms,
                                        const mwi_coap_params *p);

/**
 * Cuts the block that @p block2 (the request's Block2 value, or none) asks for out of
 * payload[0..len), no larger than @p max_block. Sets *out_off and *out_len to the slice and
 * *out_block2 to the Block2 option of the response. Returns false when no Block2 is needed
 * (no option in the request and the payload fits max_block), true otherwise; sets
 * *out_bad when the requested block lies past the end (answer 4.02 / 4.00).
 */
bool mwi_coap_block2_slice(bool requested, uint32_t block2, size_t len, size_t max_block,
                           size_t *out_off, size_t *out_len, uint32_t *out_block2, bool *out_bad);

#endif
