/* SPDX-License-Identifier: Apache-2.0 */
/* journal.h -- what the bridge remembers of the last HL7 message of each legacy sender: how many
 * of its items are already in the device queue, so that a message sent again (its ACK was lost,
 * or the bridge died half-way through queuing it) queues only what is not there yet.
 *
 * Before each item is queued, its slot records the items done and the sequence number the item
 * is about to get. A crash can then leave one item in doubt (it may have reached the queue file
 * while its sync was cut short); at the next start, before the client talks to the gateway,
 * journal_settle asks the queue whether it holds that number. */
#ifndef MW_BRIDGE_JOURNAL_H
#define MW_BRIDGE_JOURNAL_H

#include <stdbool.h>
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
 * Records that @p done of the @p n_items items of @p msg_key are in the queue, and that the next
 * one is about to be queued as number @p pending_seq of sequence space @p space (0: none is).
 * Written, not synced: it must survive the process, not a power cut (after one it may say less
 * than was queued, never more: an item is counted done only once the queue made it durable).
 * Returns 0, or -1 with errno.
 */
int journal_record(journal_t *j, uint64_t sender_key, uint64_t msg_key, uint32_t done,
                   uint32_t n_items, uint64_t pending_seq, uint64_t space);

/** Whether the queue holds message @p seq of @p space. */
typedef bool journal_holds_fn(void *ctx, uint64_t space, uint64_t seq);

/**
 * Settles every item left in doubt by a crash: counted done if @p holds says the queue has it,
 * forgotten otherwise. Call once after opening the client and before its first poll (nothing
 * acknowledged since the crash can then have left the queue). Returns 0, or -1 with errno.
 */
int journal_settle(journal_t *j, journal_holds_fn *holds, void *ctx);

#endif
