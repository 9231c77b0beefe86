/* SPDX-License-Identifier: Apache-2.0 */
/* record.h -- one record of the queue's log: header, nonce, associated data, sealing and
 * unsealing, and the bodies of its three types (docs/queue.md, 6 and 7). No storage, no queue
 * object: the log (log.c) places records, recovery (recovery.c) replays them. */
#ifndef MWI_QUEUE_RECORD_H
#define MWI_QUEUE_RECORD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "medwire/err.h"
#include "medwire/io.h"
#include "medwire/message.h"
#include "queue/aead.h"
#include "queue/queue.h"
#include "session/codec.h"

/* Not 0xFF, 0x00, the trailer, nor the first byte of any other structure ('M'). */
#define MWI_REC_MAGIC  0xC3u
#define MWI_REC_HDR    28u
#define MWI_REC_CRC_AT 24u
#define MWI_KCV_LEN    MWI_AEAD_TAG_LEN
#define MWI_REC_MSG    1u
#define MWI_REC_DROP   2u
#define MWI_REC_GAPS   3u

#define MWI_DROP_ACKED   0u
#define MWI_DROP_EVICTED 1u
#define MWI_DROP_ENTRY   18u
#define MWI_GAPS_ENTRY   26u

#define MWI_MSG_BODY_MAX  (8u + (uint32_t)medwire_v1_Envelope_size)
#define MWI_DROP_BODY_MAX (1u + MWI_MAX_ACK_RANGES * MWI_DROP_ENTRY)
#define MWI_GAPS_BODY_MAX (1u + MWI_QUEUE_GAP_SLOTS * MWI_GAPS_ENTRY)
#define MWI_MAX2(a, b)    ((a) > (b) ? (a) : (b))
#define MWI_BODY_MAX      MWI_MAX2(MWI_MSG_BODY_MAX, MWI_MAX2(MWI_DROP_BODY_MAX, MWI_GAPS_BODY_MAX))

#define MWI_SALT_LEN 16u

_Static_assert(MWI_BODY_MAX < 65536u, "record body length fits the 16-bit header field");
_Static_assert(MWI_KCV_LEN == 16u, "the format stores 16-byte GCM tags");

/** A record header as parsed (docs/queue.md, 6). */
typedef struct mwi_rec_hdr {
    uint8_t type;
    uint8_t prio;
    uint16_t len;   /**< body bytes (ciphertext without the tag) */
    uint32_t total; /**< record bytes: header, ciphertext, tag, padding, trailer */
    uint64_t seq;
    uint64_t nonce; /**< the nonce counter */
} mwi_rec_hdr;

/** The keys of one incarnation of a region: what seals and unseals its records. */
typedef struct mwi_rec_keys {
    mwi_aead *aead;             /**< keyed by mwi_rec_set_key() */
    uint8_t len;                /**< vendor key bytes (16 or 32), recorded in half headers */
    uint8_t kcv[MWI_KCV_LEN];   /**< key check value, recorded in half headers */
    uint8_t salt[MWI_SALT_LEN]; /**< this incarnation's: in the label and every half header */
} mwi_rec_keys;

enum mwi_rec_status { MWI_REC_OK, MWI_REC_TORN, MWI_REC_CORRUPT };

/** Header, ciphertext, tag, zero padding, trailer: a multiple of the record alignment. */
uint32_t mwi_rec_size(uint32_t align, uint32_t body_len);

/** Derives the record key of the incarnation @p k->salt from the vendor key (HKDF-SHA256,
 *  as long as the vendor key) into @p k->aead and computes @p k->kcv. The vendor key is not
 *  copied. @return ::MW_OK; ::MW_EINTERNAL. */
MW_NODISCARD mw_err mwi_rec_set_key(mwi_rec_keys *k, const uint8_t *key, size_t key_len);

/** Draws the salt of a new incarnation from @p rnd.
 *  @return ::MW_OK; ::MW_ECONFIG (no random source); ::MW_EINTERNAL; @p why says which. */
MW_NODISCARD mw_err mwi_rec_draw_salt(const mw_random_t *rnd, uint8_t salt[MWI_SALT_LEN],
                                      const char **why);

/**
 * Writes the complete record of @p body into @p dst: the header of @p h (type, prio, seq and
 * nonce are the caller's; len becomes @p len and total the record's size), the ciphertext and
 * tag under nonce counter @p h->nonce, the padding and the trailer. @p off and @p gen are the
 * record's region offset and its half's generation (associated data).
 * @return ::MW_OK; ::MW_EINTERNAL (AES-GCM failed).
 */
MW_NODISCARD mw_err mwi_rec_seal(const mwi_rec_keys *k, uint32_t align, mwi_rec_hdr *h,
                                 const uint8_t *body, uint32_t len, uint32_t off, uint64_t gen,
                                 uint8_t *dst);

/** Header checks that need no key: recovery uses them to trust a length, and to find the next
 *  record after damage. @p room is the space left in the half. */
bool mwi_rec_parse(uint32_t align, const uint8_t *p, uint32_t room, mwi_rec_hdr *h);

/** Checks trailer and padding and decrypts the body of the record at @p p (header @p h, at
 *  region offset @p off of generation @p gen) into @p body. MWI_REC_TORN: its write never
 *  finished; MWI_REC_CORRUPT: complete but damaged (@p body then holds nothing). */
enum mwi_rec_status mwi_rec_unseal(const mwi_rec_keys *k, const uint8_t *p, const mwi_rec_hdr *h,
                                   uint32_t off, uint64_t gen, uint8_t *body);

/* ---- bodies ---- */

/** The GAPS body of the non-empty entries of @p gaps; returns its length. */
uint32_t mwi_rec_gaps_encode(const mwi_queue_gap *gaps, uint8_t *out);
/** Fills the table @p out (::MWI_QUEUE_GAP_SLOTS entries) from a GAPS body; false (and @p out
 *  untouched) if it is malformed. */
bool mwi_rec_gaps_decode(const uint8_t *b, uint32_t len, mwi_queue_gap *out);
/** One DROP entry: sequence numbers [first, last], MWI_DROP_ACKED or MWI_DROP_EVICTED, priority. */
void mwi_rec_drop_entry(uint8_t *p, uint64_t first, uint64_t last, unsigned reason, unsigned prio);
/** The MSG body: append time and the message as a protobuf Envelope. */
MW_NODISCARD mw_err mwi_rec_encode_message(const mw_message_t *m, uint64_t t_ms, uint8_t *out,
                                           uint32_t *out_len);
/** Decodes a MSG body; false unless it is a valid message that agrees with its header. */
bool mwi_rec_decode_message(const uint8_t *b, uint32_t len, const mwi_rec_hdr *h,
                            mw_message_t *out);

#endif
