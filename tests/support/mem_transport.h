/* SPDX-License-Identifier: Apache-2.0 */
/* mem_transport.h -- an in-memory datagram network with fault injection, for tests. */
#ifndef MWT_MEM_TRANSPORT_H
#define MWT_MEM_TRANSPORT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "medwire/io.h"
#include "support/fake_clock.h"

typedef struct mwt_net mwt_net;

/** A deterministic network: same seed, same faults. */
mwt_net *mwt_net_create(uint64_t seed);
void mwt_net_destroy(mwt_net *net);

/** Adds an endpoint with the given address ("127.0.0.1:5684"); the net owns it. */
mw_transport_t mwt_net_endpoint(mwt_net *net, const char *addr_text);
/** The address of endpoint @p t. */
mw_addr_t mwt_net_addr(const mw_transport_t *t);

/** Probabilities in [0,1] applied to every datagram sent from now on. */
void mwt_net_set_faults(mwt_net *net, double drop, double duplicate, double reorder);
/** Delays a datagram with probability @p p_delay by 1..max_delay_ms of @p clk's time
 *  (later datagrams may overtake it). */
void mwt_net_set_delay(mwt_net *net, const mwt_clock *clk, double p_delay, uint64_t max_delay_ms);
/** Flips one random bit of a datagram with probability @p p_corrupt. */
void mwt_net_set_corrupt(mwt_net *net, double p_corrupt);
/** Delivers a datagram to @p to that claims to come from @p from (a spoofed source). */
mw_err mwt_net_inject(mwt_net *net, const mw_addr_t *from, const mw_transport_t *to,
                      const uint8_t *buf, size_t len);
/** Datagrams receivable now (in flight and not delayed past now). */
size_t mwt_net_ready(const mwt_net *net);
/** The earliest time a queued datagram becomes receivable (UINT64_MAX if none). */
uint64_t mwt_net_next_ready_ms(const mwt_net *net);
/** Drops the datagram with this index (0 = the first ever sent on the net). */
void mwt_net_drop_index(mwt_net *net, uint64_t index);
/** Duplicates the datagram with this index. */
void mwt_net_duplicate_index(mwt_net *net, uint64_t index);
/** Flips one byte of the datagram with this index. */
void mwt_net_corrupt_index(mwt_net *net, uint64_t index);

/** Datagrams sent so far (the index the next one gets). */
uint64_t mwt_net_sent(const mwt_net *net);
/** Datagrams lost so far: dropped by a fault, or sent to an address no endpoint has. */
uint64_t mwt_net_lost(const mwt_net *net);
/** Datagrams waiting in any inbox. */
size_t mwt_net_in_flight(const mwt_net *net);

/** Per-endpoint counters, as sent by that endpoint (before faults). */
typedef struct mwt_counters {
    uint64_t datagrams_out, bytes_out, datagrams_in, bytes_in;
} mwt_counters;
mwt_counters mwt_net_counters(const mw_transport_t *t);
void mwt_net_reset_counters(mwt_net *net);

#endif
