/* SPDX-License-Identifier: Apache-2.0 */
/* fake_gateway.h -- a gateway that completes DTLS handshakes like the real one and then answers
 * the device's requests as a broken or hostile gateway would. */
#ifndef MWT_FAKE_GATEWAY_H
#define MWT_FAKE_GATEWAY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "medwire/medwire.h"

#include "support/fake_clock.h"
#include "support/mem_transport.h"
#include "support/pki.h"

/** How the fake answers each CoAP request that arrives over an established session. */
typedef enum mwt_fake_mode {
    MWT_FAKE_SILENT,      /**< nothing: a gateway that never acknowledges */
    MWT_FAKE_RST,         /**< an RST: the request is refused unread */
    MWT_FAKE_GARBAGE_ACK, /**< 2.04 with an Ack body that does not decode */
    MWT_FAKE_EMPTY_ACK,   /**< 2.04 with an Ack of no range: it settles nothing */
    MWT_FAKE_UNAVAILABLE, /**< 5.03: alive, but it cannot take custody (its store is down) */
    MWT_FAKE_ACK_ALL,     /**< 2.04 with an Ack of every envelope, and cmds_per_ack new commands */
} mwt_fake_mode;

typedef struct mwt_fake mwt_fake;

/** A fake gateway at @p addr on @p net, with the gateway credentials of @p pki, its time from
 *  @p clk. Fails the test on error. */
mwt_fake *mwt_fake_create(mwt_net *net, const mwt_pki *pki, mwt_clock *clk, const char *addr,
                          mwt_fake_mode mode);
void mwt_fake_destroy(mwt_fake **f);

/** Handles what arrived and what timers are due; true if it did anything. */
bool mwt_fake_poll(mwt_fake *f);
/** Milliseconds until mwt_fake_poll has a timer due, UINT64_MAX if none. */
uint64_t mwt_fake_next_ms(const mwt_fake *f);

/** In MWT_FAKE_ACK_ALL, commands of this kind and argument ride in each Ack, @p per_ack new
 *  ones every time (ids growing with the wall clock, as a gateway's do). */
void mwt_fake_commands(mwt_fake *f, unsigned per_ack, const mw_command_t *template_cmd);

/** In MWT_FAKE_ACK_ALL, acknowledges only the first @p n envelopes of each batch (0: all), as a
 *  gateway that stores slowly, or pretends to. */
void mwt_fake_ack_limit(mwt_fake *f, size_t n);

/** What the fake saw. */
typedef struct mwt_fake_stats {
    uint64_t requests;   /**< CoAP requests that reached it, each transmission counted */
    uint64_t handshakes; /**< sessions it completed */
    uint64_t commands;   /**< commands it sent in Acks */
    uint64_t envelopes;  /**< envelopes it acknowledged (MWT_FAKE_ACK_ALL) */
} mwt_fake_stats;
mwt_fake_stats mwt_fake_get_stats(const mwt_fake *f);

/** In MWT_FAKE_ACK_ALL: the envelopes it acknowledged, in order (repeats included);
 *  valid until the next poll. */
const mw_message_t *mwt_fake_got(const mwt_fake *f, size_t *out_n);

#endif
