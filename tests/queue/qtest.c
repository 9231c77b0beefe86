/* SPDX-License-Identifier: Apache-2.0 */
/* qtest.c -- fixtures shared by the queue tests. */
#include <stdio.h>
#include <string.h>

#include "qtest.h"
#include "support/fake_clock.h"

const uint8_t qt_key[32] = {0x60, 0x3d, 0xeb, 0x10, 0x15, 0xca, 0x71, 0xbe, 0x2b, 0x73, 0xae,
                            0xf0, 0x85, 0x7d, 0x77, 0x81, 0x1f, 0x35, 0x2c, 0x07, 0x3b, 0x61,
                            0x08, 0xd7, 0x2d, 0x98, 0x10, 0xa3, 0x09, 0x14, 0xdf, 0xf4};
const uint8_t qt_other_key[32] = {0x60, 0x3d, 0xeb, 0x10, 0x15, 0xca, 0x71, 0xbe, 0x2b, 0x73, 0xae,
                                  0xf0, 0x85, 0x7d, 0x77, 0x81, 0x1f, 0x35, 0x2c, 0x07, 0x3b, 0x61,
                                  0x08, 0xd7, 0x2d, 0x98, 0x10, 0xa3, 0x09, 0x14, 0xdf, 0xf5};

mw_message_t qt_msg(uint64_t seq, mw_priority p, uint32_t salt)
{
    mw_message_t m;
    memset(&m, 0, sizeof m);
    snprintf(m.device_id, sizeof m.device_id, "oxi-%06u", (unsigned)(42 + salt % 7));
    m.seq = seq;
    m.device_time_ms = 1700000000000ull + seq * 1000u + salt;
    m.time_synced = (seq & 1u) != 0;
    m.priority = p;
    switch (p) {
    case MW_PRIORITY_ALARM:
        m.type = MW_MSG_ALARM;
        m.u.alarm.mdc_code = MW_MDC_EVT_LO;
        m.u.alarm.priority = (mw_alarm_priority)(seq % 4u);
        m.u.alarm.state = (mw_alarm_state)((seq + salt) % 4u);
        m.u.alarm.time_ms = m.device_time_ms - 5u;
        snprintf(m.u.alarm.text, sizeof m.u.alarm.text, "SpO2 low %llu/%u", (unsigned long long)seq,
                 (unsigned)salt);
        if (salt != 0) {
            snprintf(m.u.alarm.source, sizeof m.u.alarm.source, "ACME-ICU4 BED %u", (unsigned)salt);
        }
        break;
    case MW_PRIORITY_OBSERVATION:
        m.type = MW_MSG_OBSERVATION;
        m.u.observation.mdc_code = MW_MDC_PULS_OXIM_SAT_O2;
        m.u.observation.mantissa = (int64_t)(900 + (seq * 7u + salt) % 100u);
        m.u.observation.exponent = -1;
        strcpy(m.u.observation.unit, "%");
        m.u.observation.status = (mw_meas_status)(seq % 3u);
        m.u.observation.time_ms = m.device_time_ms - 1u;
        if (salt != 0) {
            snprintf(m.u.observation.source, sizeof m.u.observation.source, "MON-%u",
                     (unsigned)salt);
        }
        break;
    case MW_PRIORITY_STATUS:
    default:
        m.type = MW_MSG_STATUS;
        m.u.status.battery_pct = (uint32_t)((seq + salt) % 101u);
        m.u.status.on_mains = (seq & 2u) != 0;
        m.u.status.uptime_s = seq * 60u;
        m.u.status.queue_depth = (uint32_t)(seq % 300u);
        break;
    }
    return m;
}

bool qt_msg_eq(const mw_message_t *a, const mw_message_t *b)
{
    if (strcmp(a->device_id, b->device_id) != 0 || a->seq != b->seq ||
        a->device_time_ms != b->device_time_ms || a->time_synced != b->time_synced ||
        a->priority != b->priority || a->type != b->type) {
        return false;
    }
    switch (a->type) {
    case MW_MSG_ALARM:
        return a->u.alarm.mdc_code == b->u.alarm.mdc_code &&
               a->u.alarm.priority == b->u.alarm.priority && a->u.alarm.state == b->u.alarm.state &&
               a->u.alarm.time_ms == b->u.alarm.time_ms &&
               strcmp(a->u.alarm.text, b->u.alarm.text) == 0 &&
               strcmp(a->u.alarm.source, b->u.alarm.source) == 0;
    case MW_MSG_OBSERVATION:
        return a->u.observation.mdc_code == b->u.observation.mdc_code &&
               a->u.observation.mantissa == b->u.observation.mantissa &&
               a->u.observation.exponent == b->u.observation.exponent &&
               strcmp(a->u.observation.unit, b->u.observation.unit) == 0 &&
               a->u.observation.status == b->u.observation.status &&
               a->u.observation.time_ms == b->u.observation.time_ms &&
               strcmp(a->u.observation.source, b->u.observation.source) == 0;
    case MW_MSG_STATUS:
        return a->u.status.battery_pct == b->u.status.battery_pct &&
               a->u.status.on_mains == b->u.status.on_mains &&
               a->u.status.uptime_s == b->u.status.uptime_s &&
               a->u.status.queue_depth == b->u.status.queue_depth;
    default:
        return false;
    }
}

void qt_on_event(void *ctx, const mwi_queue_event *ev)
{
    qt_events *r = ctx;
    if (r == NULL) {
        return;
    }
    if (r->n < QT_EVENTS_MAX) {
        r->ev[r->n] = *ev;
    }
    r->n++;
    if (ev->kind == MWI_QUEUE_EVICTED) {
        r->evicted++;
    } else if (ev->kind == MWI_QUEUE_CORRUPT) {
        r->corrupt++;
    } else if (ev->kind == MWI_QUEUE_TORN) {
        r->torn++;
    }
}

mw_random_t qt_random(void)
{
    static mwt_rng rng = {0x51A7u};
    return mwt_rng_table(&rng);
}

mwi_queue_config qt_config(const mw_storage_t *st, uint32_t capacity, qt_events *rec)
{
    mwi_queue_config c;
    mwi_queue_config_init(&c);
    c.storage = st;
    c.random = qt_random();
    c.key = qt_key;
    c.key_len = 32;
    c.capacity = capacity;
    c.on_event = qt_on_event;
    c.event_ctx = rec;
    return c;
}

size_t qt_drain(mwi_queue *q, mw_message_t *out, size_t cap)
{
    mwi_queue_cursor c;
    size_t n = 0;
    mwi_queue_cursor_init(&c);
    while (n < cap && mwi_queue_next(q, &c, &out[n]) == MW_OK) {
        n++;
    }
    return n;
}

uint32_t qt_region(uint32_t capacity, uint32_t eu, uint32_t wu, uint32_t factor)
{
    uint32_t min = 0;
    if (mwi_queue_region_min(capacity, eu, wu, &min) != MW_OK) {
        return 0;
    }
    /* Halves grow by the factor; the nonce store at the end stays two slots. */
    uint32_t store = mwi_seq_region_size(eu, wu);
    uint32_t half = (min - store) / 2u * factor;
    return 2u * half + store;
}

uint64_t qt_rand(uint64_t *s)
{
    uint64_t x = *s != 0 ? *s : 0x9E3779B97F4A7C15ull;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    *s = x;
    return x * 0x2545F4914F6CDD1Dull;
}
