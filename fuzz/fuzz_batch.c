/* SPDX-License-Identifier: Apache-2.0 */
/* fuzz_batch.c -- the protobuf Batch and Ack decoders: what decodes is valid, re-encodes to the same messages and prints as valid JSON. */
#include <string.h>

#include "medwire/message.h"
#include "session/codec.h"

#include "fuzz_support.h"

/* The largest Batch the encoder may produce for MWI_MAX_BATCH envelopes (key, 2-byte length,
 * body each), so that a decoded batch always fits when re-encoded. */
#define BATCH_CAP (MWI_MAX_BATCH * (3 + medwire_v1_Envelope_size))

static bool same_message(const mw_message_t *a, const mw_message_t *b)
{
    if (strcmp(a->device_id, b->device_id) != 0 || a->seq != b->seq ||
        a->device_time_ms != b->device_time_ms || a->time_synced != b->time_synced ||
        a->priority != b->priority || a->type != b->type)
        return false;
    switch (a->type) {
    case MW_MSG_OBSERVATION: {
        const mw_observation_t *x = &a->u.observation, *y = &b->u.observation;
        return x->mdc_code == y->mdc_code && x->mantissa == y->mantissa &&
               x->exponent == y->exponent && strcmp(x->unit, y->unit) == 0 &&
               x->status == y->status && x->time_ms == y->time_ms &&
               strcmp(x->source, y->source) == 0;
    }
    case MW_MSG_ALARM: {
        const mw_alarm_t *x = &a->u.alarm, *y = &b->u.alarm;
        return x->mdc_code == y->mdc_code && x->priority == y->priority && x->state == y->state &&
               x->time_ms == y->time_ms && strcmp(x->text, y->text) == 0 &&
               strcmp(x->source, y->source) == 0;
    }
    case MW_MSG_STATUS: {
        const mw_device_status_t *x = &a->u.status, *y = &b->u.status;
        return x->battery_pct == y->battery_pct && x->on_mains == y->on_mains &&
               x->uptime_s == y->uptime_s && x->queue_depth == y->queue_depth;
    }
    case MW_MSG_GAP: {
        const mw_gap_t *x = &a->u.gap, *y = &b->u.gap;
        return x->priority == y->priority && x->reason == y->reason && x->count == y->count &&
               x->first_seq == y->first_seq && x->last_seq == y->last_seq;
    }
    case MW_MSG_UNKNOWN:
    default:
        return true;
    }
}

/* What the gateway does with each decoded message before the sink sees it: the invariants of
 * a message that passed the decoder. */
static void check_decoded(const mw_message_t *m)
{
    char out[564];
    size_t n = 0;
    if (m->type == MW_MSG_UNKNOWN) {
        /* A payload from a later v1.x: the header must still be sound (codec.h). */
        mw_message_t probe = *m;
        probe.type = MW_MSG_STATUS;
        memset(&probe.u, 0, sizeof probe.u);
        MWF_CHECK(mwi_message_check(&probe) == MW_OK, "unknown payload with a bad header, seq %llu",
                  (unsigned long long)m->seq);
    } else {
        MWF_CHECK(mwi_message_check(m) == MW_OK, "decoded message fails mwi_message_check");
    }
    /* message.h promises 564 bytes for anything a gateway decoded, and valid JSON. */
    mw_err e = mw_message_to_json(m, out, sizeof out, &n);
    MWF_CHECK(e == MW_OK, "mw_message_to_json: %s (needs %zu bytes)", mw_strerror(e), n);
    MWF_CHECK(n < sizeof out && strlen(out) == n, "JSON length %zu disagrees with the text", n);
    MWF_CHECK(mwf_json_valid(out, n), "invalid JSON: %s", out);
}

static void fuzz_batch(const uint8_t *data, size_t size)
{
    static mw_message_t msgs[MWI_MAX_BATCH], known[MWI_MAX_BATCH], again[MWI_MAX_BATCH];
    static uint8_t wire[BATCH_CAP];
    size_t n = 0, nknown = 0, len = 0, count = 0, n2 = 0;
    uint64_t low_water = 0, low_water2 = 0;

    mw_err e = mwi_batch_decode(data, size, msgs, MWI_MAX_BATCH, &n, &low_water);
    if (e != MW_OK) {
        MWF_CHECK(n == 0 && low_water == 0, "failed decode reports %zu messages", n);
        return;
    }
    MWF_CHECK(n >= 1 && n <= MWI_MAX_BATCH, "decoded %zu messages", n);
    for (size_t i = 0; i < n; i++) {
        check_decoded(&msgs[i]);
        if (msgs[i].type != MW_MSG_UNKNOWN)
            known[nknown++] = msgs[i];
    }
    /* Round trip: the encoder never sends an unknown payload, so the known ones are compared. */
    if (nknown == 0)
        return;
    e = mwi_batch_encode(known, nknown, low_water, wire, sizeof wire, &len, &count);
    MWF_CHECK(e == MW_OK && count == nknown, "re-encoding %zu decoded messages: %s, %zu encoded",
              nknown, mw_strerror(e), count);
    e = mwi_batch_decode(wire, len, again, MWI_MAX_BATCH, &n2, &low_water2);
    MWF_CHECK(e == MW_OK && n2 == nknown && low_water2 == low_water,
              "decoding our own encoding: %s, %zu of %zu messages", mw_strerror(e), n2, nknown);
    for (size_t i = 0; i < nknown; i++)
        MWF_CHECK(same_message(&known[i], &again[i]), "message %zu changed in the round trip", i);
}

static void fuzz_ack(const uint8_t *data, size_t size)
{
    mwi_seq_range r[MWI_MAX_ACK_RANGES], r2[MWI_MAX_ACK_RANGES];
    uint8_t wire[MWI_MAX_ACK_RANGES * 24];
    size_t n = 0, n2 = 0, len = 0;

    mw_err e = mwi_ack_decode(data, size, r, MWI_MAX_ACK_RANGES, &n);
    if (e != MW_OK) {
        MWF_CHECK(n == 0, "failed ack decode reports %zu ranges", n);
        return;
    }
    MWF_CHECK(n <= MWI_MAX_ACK_RANGES, "%zu ranges", n);
    /* A device deletes what is acked: every range it accepts must make sense. */
    for (size_t i = 0; i < n; i++)
        MWF_CHECK(r[i].first >= 1 && r[i].first <= r[i].last, "range %zu is [%llu, %llu]", i,
                  (unsigned long long)r[i].first, (unsigned long long)r[i].last);
    e = mwi_ack_encode(r, n, wire, sizeof wire, &len);
    MWF_CHECK(e == MW_OK, "re-encoding a decoded ack: %s", mw_strerror(e));
    e = mwi_ack_decode(wire, len, r2, MWI_MAX_ACK_RANGES, &n2);
    MWF_CHECK(e == MW_OK && n2 == n, "decoding our own ack: %s", mw_strerror(e));
    for (size_t i = 0; i < n; i++)
        MWF_CHECK(r[i].first == r2[i].first && r[i].last == r2[i].last, "range %zu changed", i);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* The gateway decodes Batches, the device Acks: the same bytes are tried as both. */
    fuzz_batch(data, size);
    fuzz_ack(data, size);
    return 0;
}
