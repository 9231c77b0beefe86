/* SPDX-License-Identifier: Apache-2.0 */
/* mllp.h -- the MLLP sender: a thread that hands the outbox's rows, oldest first, to a hospital's
 * HL7 listener over TCP and deletes each once the listener acknowledges it. */
#ifndef MW_EXAMPLE_MLLP_H
#define MW_EXAMPLE_MLLP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "outbox.h"

typedef struct mllp mllp_t;

/** Default wait for an acknowledgement (ms). */
#define MLLP_ACK_TIMEOUT_MS 10000u
/** Negative acknowledgements (AE, AR, CE, CR) a message gets before it is parked. */
#define MLLP_MAX_REJECTS 5u

/** Splits "mllp://HOST:PORT" or "mllps://HOST:PORT" ([V6]:PORT too) into @p host and @p port,
 *  @p out_tls telling which (may be NULL); false if it is neither. */
bool mllp_parse_url(const char *url, char *host, size_t host_size, char *port, size_t port_size,
                    bool *out_tls);

/** TLS for mllps:// (files in PEM): the CA the listener's certificate must chain to (required;
 *  its name must match HOST), and this gateway's client certificate and key (both or neither). */
typedef struct mllp_tls {
    const char *ca_file;
    const char *cert_file;
    const char *key_file;
} mllp_tls_t;

/** Messages of one device merged into one ORU^R01 by default (hl7_merge): the listener
 *  acknowledges them together. */
#define MLLP_BATCH_DEFAULT 16u

/** Starts the sender for @p url (checked with mllp_parse_url) over @p ob, merging up to @p
 * batch_max (1: none; at most HL7_MERGE_MAX) of a device's next messages into one frame; @p tls is
 * required for mllps:// and ignored for mllp://. Returns NULL and fills @p why on failure (a
 * credential that does not load is named). The first connection is made by the thread, not here. */
mllp_t *mllp_start(const char *url, const mllp_tls_t *tls, outbox_t *ob, uint32_t ack_timeout_ms,
                   unsigned batch_max, char *why, size_t why_size);
/** Stops the thread (within about 200 ms, or an ack timeout at worst) and frees everything; rows
 *  not acknowledged stay in the outbox for the next start. */
void mllp_stop(mllp_t **m);

typedef struct mllp_stats {
    uint64_t sent;            /**< messages written to the listener, resends included */
    uint64_t frames;          /**< MLLP frames written (one carries up to batch_max messages) */
    uint64_t acked;           /**< acknowledged with AA or CA: custody ended */
    uint64_t retried;         /**< attempts that failed and were tried again */
    uint64_t parked;          /**< given up after MLLP_MAX_REJECTS rejections */
    uint64_t connects_failed; /**< TCP connections and TLS handshakes that failed */
    bool down;                /**< the last connection attempt failed */
} mllp_stats_t;

void mllp_stats(mllp_t *m, mllp_stats_t *out);

/** One parked message, for the audit trail. */
typedef struct mllp_parked {
    int64_t id;
    char device[MW_ID_MAX + 1];
    char code[3]; /**< the last MSA-1 */
} mllp_parked_t;

/** Takes up to @p max parked messages not yet reported (from the gateway's loop). */
size_t mllp_take_parked(mllp_t *m, mllp_parked_t *out, size_t max);

#endif
