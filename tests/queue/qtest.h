/* SPDX-License-Identifier: Apache-2.0 */
/* qtest.h -- fixtures shared by the queue tests: messages, keys, an event recorder, a model. */
#ifndef MWT_QTEST_H
#define MWT_QTEST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "medwire/message.h"
#include "queue/queue.h"
#include "support/ram_storage.h"

extern const uint8_t qt_key[32];
extern const uint8_t qt_other_key[32];

/** A valid message of priority @p p whose content depends on @p seq (and @p salt: other than 0,
 *  its observations and alarms carry a source, as a bridge sends them). */
mw_message_t qt_msg(uint64_t seq, mw_priority p, uint32_t salt);
/** Field-by-field equality. */
bool qt_msg_eq(const mw_message_t *a, const mw_message_t *b);

#define QT_EVENTS_MAX 4096
typedef struct qt_events {
    size_t n, evicted, corrupt, torn;
    mwi_queue_event ev[QT_EVENTS_MAX];
} qt_events;
void qt_on_event(void *ctx, const mwi_queue_event *ev);

/** A deterministic random source (the same sequence in every test process). */
mw_random_t qt_random(void);

/** Configuration for @p st with the test key, capacity, random source, and the recorder. */
mwi_queue_config qt_config(const mw_storage_t *st, uint32_t capacity, qt_events *rec);

/** All queued messages in flush order (at most @p cap). */
size_t qt_drain(mwi_queue *q, mw_message_t *out, size_t cap);

/** A region of twice the minimum for @p capacity on a medium with these units. */
uint32_t qt_region(uint32_t capacity, uint32_t eu, uint32_t wu, uint32_t factor);

/** Deterministic random numbers. */
uint64_t qt_rand(uint64_t *state);

#endif
