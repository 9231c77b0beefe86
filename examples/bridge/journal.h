/* SPDX-License-Identifier: Apache-2.0 */
/* journal.h -- what the bridge remembers of the last HL7 message of each legacy sender: how many
 * of its items are already in the device queue, so that a message sent again (its ACK was lost,
 * or the bridge died half-way through queuing it) queues only what is not there yet. */
#ifndef MW_BRIDGE_JOURNAL_H
#define MW_BRIDGE_JOURNAL_H

#include <stddef.h>
#include <stdint.h>

/** Senders remembered; the least recently used one is forgotten first. */
#define JOURNAL_SLOTS 16u

typedef struct journal journal_t;

/** Opens (creating, mode 0600) the journal at @p path. NULL with errno set on failure. */
journal_t *journal_open(const char *path);
void journal_close(journal_t **j);

/** A 64-bit digest of @p n strings, for sender and message keys. */
uint64_t journal_key(const char *const *parts, size_t n);

/**
 * Items of message @p msg_key from @p sender_key already queued: 0 when that sender's last
 * message was another one. @p n_items is the message's item count (never exceeded).
 */
uint32_t journal_done(const journal_t *j, uint64_t sender_key, uint64_t msg_key, uint32_t n_items);

/**
 * Records that @p done of the @p n_items items of @p msg_key are durable in the queue. Written,
 * not synced: it must survive the process, not a power cut (after one it may say less than
 * was queued, never more: an item is recorded only after the queue made it durable).
 * Returns 0, or -1 with errno.
 */
int journal_record(journal_t *j, uint64_t sender_key, uint64_t msg_key, uint32_t done,
                   uint32_t n_items);

#endif
