/* SPDX-License-Identifier: Apache-2.0 */
/* test_codec.c -- the session codec round-trips what is valid and refuses everything else. */
#include <criterion/criterion.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <pb_decode.h>
#include <pb_encode.h>

#include "medwire.pb.h"
#include "session/codec.h"

/* ---- fixtures ---------------------------------------------------------------------------- */

static mw_message_t observation(uint64_t seq)
{
    mw_message_t m;
    memset(&m, 0, sizeof(m));
    strcpy(m.device_id, "oxi-000042"); /* 10 characters, a typical serial-number CN */
    m.seq = seq;
    m.device_time_ms = 1700000000123ull + seq;
    m.time_synced = true;
    m.priority = MW_PRIORITY_OBSERVATION;
    m.type = MW_MSG_OBSERVATION;
    m.u.observation.mdc_code = MW_MDC_PULS_OXIM_SAT_O2;
    m.u.observation.mantissa = 975;
    m.u.observation.exponent = -1;
    strcpy(m.u.observation.unit, "%");
    m.u.observation.status = MW_MEAS_VALID;
    m.u.observation.time_ms = 1700000000000ull + seq;
    return m;
}

static mw_message_t alarm(uint64_t seq)
{
    mw_message_t m;
    memset(&m, 0, sizeof(m));
    strcpy(m.device_id, "oxi-000042");
    m.seq = seq;
    m.device_time_ms = 1700000000500ull;
    m.time_synced = false;
    m.priority = MW_PRIORITY_ALARM;
    m.type = MW_MSG_ALARM;
    m.u.alarm.mdc_code = MW_MDC_EVT_LO;
    m.u.alarm.priority = MW_ALARM_HIGH;
    m.u.alarm.state = MW_ALARM_LATCHED;
    m.u.alarm.time_ms = 1700000000499ull;
    strcpy(m.u.alarm.text, "SpO2 \"low\" \\ < 85 %");
    return m;
}

static mw_message_t status(uint64_t seq)
{
    mw_message_t m;
    memset(&m, 0, sizeof(m));
    strcpy(m.device_id, "oxi-000042");
    m.seq = seq;
    m.device_time_ms = UINT64_MAX;
    m.time_synced = true;
    m.priority = MW_PRIORITY_STATUS;
    m.type = MW_MSG_STATUS;
    m.u.status.battery_pct = 100;
    m.u.status.on_mains = true;
    m.u.status.uptime_s = UINT64_MAX;
    m.u.status.queue_depth = UINT32_MAX;
    return m;
}

/* A valid envelope as the generated struct, for tests that then break one field. */
static medwire_v1_Envelope envelope_of(const mw_message_t *m)
{
    medwire_v1_Envelope e;
    cr_assert_eq(mwi_envelope_from_message(m, &e), MW_OK);
    return e;
}

/* Wire bytes of one Batch holding the given (already encoded) envelope bodies. */
typedef struct wire {
    uint8_t buf[4096];
    size_t len;
} wire;

static void wire_add_bytes(wire *w, uint32_t field, const uint8_t *body, size_t len)
{
    pb_ostream_t s = pb_ostream_from_buffer(w->buf + w->len, sizeof(w->buf) - w->len);
    cr_assert(pb_encode_tag(&s, PB_WT_STRING, field));
    cr_assert(pb_encode_string(&s, body, len));
    w->len += s.bytes_written;
}

static void wire_add_envelope(wire *w, const medwire_v1_Envelope *e)
{
    uint8_t body[512];
    pb_ostream_t s = pb_ostream_from_buffer(body, sizeof(body));
    cr_assert(pb_encode(&s, medwire_v1_Envelope_fields, e), "%s", PB_GET_ERROR(&s));
    wire_add_bytes(w, medwire_v1_Batch_envelopes_tag, body, s.bytes_written);
}

static mw_err decode_wire(const wire *w, mw_message_t *msgs, size_t *count)
{
    uint64_t lw;
    return mwi_batch_decode(w->buf, w->len, msgs, MWI_MAX_BATCH, count, &lw);
}

/* Decodes a batch of exactly one envelope made from e. */
static mw_err decode_one(const medwire_v1_Envelope *e, mw_message_t *out)
{
    wire w = {.len = 0};
    mw_message_t msgs[MWI_MAX_BATCH];
    size_t count = 99;
    mw_err err;

    wire_add_envelope(&w, e);
    err = decode_wire(&w, msgs, &count);
    if (err == MW_OK) {
        cr_assert_eq(count, 1);
        *out = msgs[0];
    } else {
        cr_assert_eq(count, 0, "a refused batch delivers nothing");
    }
    return err;
}

/* Field-by-field: the union's padding and the bytes after a string's NUL are not compared. */
static void assert_same_message(const mw_message_t *a, const mw_message_t *b)
{
    cr_assert_str_eq(a->device_id, b->device_id);
    cr_assert_eq(a->seq, b->seq);
    cr_assert_eq(a->device_time_ms, b->device_time_ms);
    cr_assert_eq(a->time_synced, b->time_synced);
    cr_assert_eq(a->priority, b->priority);
    cr_assert_eq(a->type, b->type);
    switch (a->type) {
    case MW_MSG_OBSERVATION:
        cr_assert_eq(a->u.observation.mdc_code, b->u.observation.mdc_code);
        cr_assert_eq(a->u.observation.mantissa, b->u.observation.mantissa);
        cr_assert_eq(a->u.observation.exponent, b->u.observation.exponent);
        cr_assert_str_eq(a->u.observation.unit, b->u.observation.unit);
        cr_assert_eq(a->u.observation.status, b->u.observation.status);
        cr_assert_eq(a->u.observation.time_ms, b->u.observation.time_ms);
        cr_assert_str_eq(a->u.observation.source, b->u.observation.source);
        break;
    case MW_MSG_ALARM:
        cr_assert_eq(a->u.alarm.mdc_code, b->u.alarm.mdc_code);
        cr_assert_eq(a->u.alarm.priority, b->u.alarm.priority);
        cr_assert_eq(a->u.alarm.state, b->u.alarm.state);
        cr_assert_eq(a->u.alarm.time_ms, b->u.alarm.time_ms);
        cr_assert_str_eq(a->u.alarm.text, b->u.alarm.text);
        cr_assert_str_eq(a->u.alarm.source, b->u.alarm.source);
        break;
    case MW_MSG_STATUS:
        cr_assert_eq(a->u.status.battery_pct, b->u.status.battery_pct);
        cr_assert_eq(a->u.status.on_mains, b->u.status.on_mains);
        cr_assert_eq(a->u.status.uptime_s, b->u.status.uptime_s);
        cr_assert_eq(a->u.status.queue_depth, b->u.status.queue_depth);
        break;
    case MW_MSG_COMMAND_RESULT:
        cr_assert_eq(a->u.command_result.command_id, b->u.command_result.command_id);
        cr_assert_eq(a->u.command_result.status, b->u.command_result.status);
        cr_assert_str_eq(a->u.command_result.detail, b->u.command_result.detail);
        break;
    case MW_MSG_COMM_LOSS:
    case MW_MSG_COMM_RESTORED:
        cr_assert_eq(a->u.link.silent_ms, b->u.link.silent_ms);
        break;
    case MW_MSG_GAP:
        cr_assert_eq(a->u.gap.priority, b->u.gap.priority);
        cr_assert_eq(a->u.gap.reason, b->u.gap.reason);
        cr_assert_eq(a->u.gap.count, b->u.gap.count);
        cr_assert_eq(a->u.gap.first_seq, b->u.gap.first_seq);
        cr_assert_eq(a->u.gap.last_seq, b->u.gap.last_seq);
        break;
    case MW_MSG_UNKNOWN:
        break;
    }
}

static void assert_round_trip(const mw_message_t *m)
{
    uint8_t buf[512];
    size_t len, count;
    mw_message_t back[MWI_MAX_BATCH];
    uint64_t lw = 0;

    cr_assert_eq(mwi_batch_encode(m, 1, 7, buf, sizeof(buf), &len, &count), MW_OK);
    cr_assert_eq(count, 1);
    cr_assert_eq(mwi_batch_decode(buf, len, back, MWI_MAX_BATCH, &count, &lw), MW_OK);
    cr_assert_eq(count, 1);
    cr_assert_eq(lw, 7);
    assert_same_message(m, &back[0]);
}

/* ---- envelopes --------------------------------------------------------------------------- */

Test(envelope, observation_round_trips_through_the_wire)
{
    mw_message_t m = observation(1);
    assert_round_trip(&m);
    m.u.observation.mantissa = INT64_MIN;
    m.u.observation.exponent = MWI_EXPONENT_MIN;
    m.seq = UINT64_MAX;
    m.time_synced = false;
    strcpy(m.u.observation.unit, "mm[Hg]");
    m.u.observation.status = MW_MEAS_TEST_DATA;
    assert_round_trip(&m);
    m.u.observation.mantissa = INT64_MAX;
    m.u.observation.exponent = MWI_EXPONENT_MAX;
    m.u.observation.unit[0] = '\0'; /* dimensionless */
    assert_round_trip(&m);
}

Test(envelope, alarm_round_trips_through_the_wire)
{
    mw_message_t m = alarm(2);
    assert_round_trip(&m);
    memset(m.u.alarm.text, 'x', MW_ALARM_TEXT_MAX);
    m.u.alarm.text[MW_ALARM_TEXT_MAX] = '\0';
    m.u.alarm.priority = MW_ALARM_INFO;
    m.u.alarm.state = MW_ALARM_INACTIVE;
    assert_round_trip(&m);
}

Test(envelope, source_round_trips_on_observations_and_alarms)
{
    mw_message_t o = observation(4), a = alarm(5);
    medwire_v1_Envelope e;

    strcpy(o.u.observation.source, "MON-7");
    assert_round_trip(&o);
    e = envelope_of(&o);
    cr_assert_str_eq(e.source, "MON-7", "the source travels in the envelope");
    /* The longest, with every kind of printable character a legacy device may use. */
    memset(a.u.alarm.source, 'x', MW_SOURCE_MAX);
    memcpy(a.u.alarm.source, "ACME ICU4|BED^7~\\&\"", 20);
    assert_round_trip(&a);
    /* Without one, nothing is sent and nothing comes out. */
    a = alarm(6);
    e = envelope_of(&a);
    cr_assert_str_eq(e.source, "");
    assert_round_trip(&a);
}

Test(envelope, gateway_refuses_a_source_with_a_control_character_or_too_long)
{
    static const unsigned char bad[] = {0x01, 0x09, 0x0A, 0x0D, 0x1F, 0x7F, 0x80, 0xFF};
    mw_message_t m = observation(1), out;
    medwire_v1_Envelope e;
    uint8_t body[512];
    pb_ostream_t s;
    wire w = {.len = 0};
    mw_message_t msgs[MWI_MAX_BATCH];
    size_t count;
    char longest[MW_SOURCE_MAX + 1];

    for (size_t i = 0; i < sizeof bad; i++) {
        e = envelope_of(&m);
        strcpy(e.source, "MON-7");
        e.source[3] = (char)bad[i];
        cr_assert_eq(decode_one(&e, &out), MW_EDECODE, "byte 0x%02x", bad[i]);
    }
    /* 40 characters on the wire: one more than the bound. */
    e = envelope_of(&m);
    s = pb_ostream_from_buffer(body, sizeof(body));
    cr_assert(pb_encode(&s, medwire_v1_Envelope_fields, &e));
    memset(longest, 'L', sizeof longest);
    cr_assert(pb_encode_tag(&s, PB_WT_STRING, medwire_v1_Envelope_source_tag));
    cr_assert(pb_encode_string(&s, (const pb_byte_t *)longest, sizeof longest));
    wire_add_bytes(&w, 1, body, s.bytes_written);
    cr_assert_eq(decode_wire(&w, msgs, &count), MW_EDECODE);
    e = envelope_of(&m);
    strcpy(e.source, "MON-7 ");
    cr_assert_eq(decode_one(&e, &out), MW_EDECODE, "a trailing space");
    /* A space inside is a printable character like any other. */
    e = envelope_of(&m);
    strcpy(e.source, "ICU 4 BED 7");
    cr_assert_eq(decode_one(&e, &out), MW_OK);
    cr_assert_str_eq(out.u.observation.source, "ICU 4 BED 7");
}

Test(envelope, source_on_a_payload_that_carries_none_is_refused)
{
    mw_message_t st = status(1), out;
    medwire_v1_Envelope e = envelope_of(&st);

    /* The gateway could only deliver it as the bridge's own status. */
    strcpy(e.source, "MON-7");
    cr_assert_eq(decode_one(&e, &out), MW_EDECODE);
    /* A payload kind of a later version may carry one: the header is still judged. */
    e.which_payload = 0;
    cr_assert_eq(decode_one(&e, &out), MW_OK);
    cr_assert_eq(out.type, MW_MSG_UNKNOWN);
    e.source[0] = '\x1b';
    cr_assert_eq(decode_one(&e, &out), MW_EDECODE);
}

Test(envelope, encoder_refuses_a_source_the_gateway_would_refuse)
{
    mw_message_t o = observation(1), a = alarm(2);
    medwire_v1_Envelope e;

    strcpy(o.u.observation.source, "MON\n7");
    cr_assert_eq(mwi_message_check(&o), MW_EINVAL);
    cr_assert_eq(mwi_envelope_from_message(&o, &e), MW_EINVAL);
    memset(a.u.alarm.source, 'x', sizeof a.u.alarm.source); /* no NUL within the array */
    cr_assert_eq(mwi_message_check(&a), MW_EINVAL);
    a.u.alarm.source[MW_SOURCE_MAX] = '\0';
    cr_assert_eq(mwi_message_check(&a), MW_OK);
    /* An identifier has no blank edges: "MON-7 " would name another device than "MON-7". */
    strcpy(a.u.alarm.source, "MON-7 ");
    cr_assert_eq(mwi_message_check(&a), MW_EINVAL);
    strcpy(a.u.alarm.source, " MON-7");
    cr_assert_eq(mwi_message_check(&a), MW_EINVAL);
    strcpy(a.u.alarm.source, " ");
    cr_assert_eq(mwi_message_check(&a), MW_EINVAL);
}

Test(envelope, status_round_trips_through_the_wire)
{
    mw_message_t m = status(3);
    assert_round_trip(&m);
    m.u.status.battery_pct = 0;
    m.u.status.on_mains = false;
    assert_round_trip(&m);
}

static mw_message_t gap(uint64_t seq)
{
    mw_message_t m = status(seq);
    m.type = MW_MSG_GAP;
    m.priority = MW_PRIORITY_ALARM;
    m.u.gap.priority = MW_PRIORITY_OBSERVATION;
    m.u.gap.reason = MW_GAP_EVICTED;
    m.u.gap.count = 17;
    m.u.gap.first_seq = UINT64_MAX - 40;
    m.u.gap.last_seq = UINT64_MAX - 1;
    return m;
}

Test(envelope, gap_record_round_trips_through_the_wire)
{
    mw_message_t m = gap(5);
    assert_round_trip(&m);
    m.u.gap.priority = 0; /* damaged record: priority and numbers unknown */
    m.u.gap.reason = MW_GAP_CORRUPT;
    m.u.gap.first_seq = m.u.gap.last_seq = 0;
    assert_round_trip(&m);
}

Test(envelope, gap_record_must_report_something_coherent)
{
    mw_message_t out;
    mw_message_t m = gap(5);
    medwire_v1_Envelope e = envelope_of(&m);
    e.payload.gap.count = 0;
    cr_assert_eq(decode_one(&e, &out), MW_EDECODE, "a gap of nothing");
    e = envelope_of(&m);
    e.payload.gap.first_seq = e.payload.gap.last_seq + 1;
    cr_assert_eq(decode_one(&e, &out), MW_EDECODE, "an inverted range");
    e = envelope_of(&m);
    e.payload.gap.reason = 3;
    cr_assert_eq(decode_one(&e, &out), MW_EDECODE, "an unknown reason");
    e = envelope_of(&m);
    e.payload.gap.priority = 4;
    cr_assert_eq(decode_one(&e, &out), MW_EDECODE, "an unknown lost priority");
    e = envelope_of(&m);
    e.payload.gap.first_seq = 0;
    cr_assert_eq(decode_one(&e, &out), MW_EDECODE, "a last number without a first");
    m.u.gap.count = 0;
    cr_assert_eq(mwi_message_check(&m), MW_EINVAL, "the device never sends one either");
}

Test(envelope, longest_valid_device_id_round_trips)
{
    mw_message_t m = observation(1);
    memset(m.device_id, 'a', MW_ID_MAX);
    m.device_id[MW_ID_MAX] = '\0';
    m.device_id[5] = '.';
    m.device_id[6] = '_';
    m.device_id[7] = '-';
    assert_round_trip(&m);
}

/* @req MDCG-2019-16-PMS MDS2-CSUP */
Test(envelope, payload_of_a_later_version_decodes_as_unknown_type)
{
    mw_message_t m = observation(9);
    medwire_v1_Envelope e = envelope_of(&m);
    uint8_t body[512];
    const uint8_t command[] = {0x08, 0x05}; /* field 1 = 5, inside reserved field 14 */
    pb_ostream_t s = pb_ostream_from_buffer(body, sizeof(body));
    wire w = {.len = 0};
    mw_message_t out[MWI_MAX_BATCH];
    size_t count;

    e.which_payload = 0;
    cr_assert(pb_encode(&s, medwire_v1_Envelope_fields, &e));
    cr_assert(pb_encode_tag(&s, PB_WT_STRING, 14));
    cr_assert(pb_encode_string(&s, command, sizeof(command)));
    wire_add_bytes(&w, 1, body, s.bytes_written);
    cr_assert_eq(decode_wire(&w, out, &count), MW_OK);
    cr_assert_eq(count, 1);
    cr_assert_eq(out[0].type, MW_MSG_UNKNOWN);
    cr_assert_eq(out[0].seq, 9);
    cr_assert_str_eq(out[0].device_id, "oxi-000042");
}

Test(envelope, unknown_payload_still_needs_a_valid_header)
{
    mw_message_t m = observation(9), out;
    medwire_v1_Envelope e = envelope_of(&m);
    e.which_payload = 0;
    cr_assert_eq(decode_one(&e, &out), MW_OK);
    cr_assert_eq(out.type, MW_MSG_UNKNOWN);
    e.seq = 0;
    cr_assert_eq(decode_one(&e, &out), MW_EDECODE);
}

/* @req MDS2-CSUP */
Test(envelope, version_other_than_1_is_rejected_with_eversion)
{
    mw_message_t m = observation(1), out;
    medwire_v1_Envelope e = envelope_of(&m);
    e.version = 2;
    cr_assert_eq(decode_one(&e, &out), MW_EVERSION);
    e.version = 0; /* absent on the wire */
    cr_assert_eq(decode_one(&e, &out), MW_EVERSION);
    e.version = 2;
    e.seq = 0; /* the version is checked before anything a v2 might have changed */
    cr_assert_eq(mwi_message_from_envelope(&e, &out), MW_EVERSION);
}

Test(envelope, sequence_number_zero_is_rejected)
{
    mw_message_t m = observation(1), out;
    medwire_v1_Envelope e = envelope_of(&m);
    e.seq = 0;
    cr_assert_eq(decode_one(&e, &out), MW_EDECODE);
    m.seq = 0;
    cr_assert_eq(mwi_envelope_from_message(&m, &e), MW_EINVAL);
}

Test(envelope, device_id_validity_follows_the_certificate_cn_rule)
{
    char longest[MW_ID_MAX + 2];
    memset(longest, 'Z', sizeof(longest));
    longest[MW_ID_MAX] = '\0';
    cr_assert(mwi_device_id_valid(longest));
    longest[MW_ID_MAX] = 'Z';
    longest[MW_ID_MAX + 1] = '\0';
    cr_assert_not(mwi_device_id_valid(longest), "65 characters");

    cr_assert(mwi_device_id_valid("a"));
    cr_assert(mwi_device_id_valid("9"));
    cr_assert(mwi_device_id_valid("Dev_1.2-x"));
    cr_assert_not(mwi_device_id_valid(NULL));
    cr_assert_not(mwi_device_id_valid(""));
    cr_assert_not(mwi_device_id_valid(".hidden"));
    cr_assert_not(mwi_device_id_valid("-dash"));
    cr_assert_not(mwi_device_id_valid("_under"));
    cr_assert_not(mwi_device_id_valid("a b"));
    cr_assert_not(mwi_device_id_valid("a/b"));
    cr_assert_not(mwi_device_id_valid("a\"b"));
    cr_assert_not(mwi_device_id_valid("a\nb"));
    cr_assert_not(mwi_device_id_valid("dev\xc3\xa9"));
    cr_assert_not(mwi_device_id_valid("CN=dev,O=x"));
}

Test(envelope, device_id_with_bad_characters_or_empty_is_rejected_both_ways)
{
    static const char *const bad[] = {"", "a b", "a/b", "a\"b", ".a", "dev\x7f", "dev\xff"};
    size_t i;

    for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        mw_message_t m = observation(1), out;
        medwire_v1_Envelope e = envelope_of(&m);
        memset(e.device_id, 0, sizeof(e.device_id));
        strcpy(e.device_id, bad[i]);
        cr_assert_eq(decode_one(&e, &out), MW_EDECODE, "id \"%s\"", bad[i]);
        strcpy(m.device_id, bad[i]);
        cr_assert_eq(mwi_envelope_from_message(&m, &e), MW_EINVAL, "id \"%s\"", bad[i]);
    }
}

/* Hand-encodes an envelope whose device_id is n bytes of 'a': nanopb's struct cannot hold it. */
static void wire_envelope_with_long_id(wire *w, size_t n)
{
    char id[300];
    uint8_t body[512];
    pb_ostream_t s = pb_ostream_from_buffer(body, sizeof(body));

    memset(id, 'a', n);
    cr_assert(pb_encode_tag(&s, PB_WT_VARINT, medwire_v1_Envelope_version_tag));
    cr_assert(pb_encode_varint(&s, 1));
    cr_assert(pb_encode_tag(&s, PB_WT_STRING, medwire_v1_Envelope_device_id_tag));
    cr_assert(pb_encode_string(&s, (const pb_byte_t *)id, n));
    cr_assert(pb_encode_tag(&s, PB_WT_VARINT, medwire_v1_Envelope_seq_tag));
    cr_assert(pb_encode_varint(&s, 1));
    cr_assert(pb_encode_tag(&s, PB_WT_VARINT, medwire_v1_Envelope_priority_tag));
    cr_assert(pb_encode_varint(&s, 1));
    cr_assert(pb_encode_tag(&s, PB_WT_STRING, medwire_v1_Envelope_status_tag));
    cr_assert(pb_encode_string(&s, NULL, 0));
    wire_add_bytes(w, 1, body, s.bytes_written);
}

/* @req IEC62443-CR3.5 */
Test(envelope, device_id_too_long_on_the_wire_is_rejected_without_overflow)
{
    size_t n;
    for (n = MW_ID_MAX; n <= 260; n++) {
        wire w = {.len = 0};
        mw_message_t out[MWI_MAX_BATCH];
        size_t count = 99;
        wire_envelope_with_long_id(&w, n);
        cr_assert_eq(decode_wire(&w, out, &count), n == MW_ID_MAX ? MW_OK : MW_EDECODE,
                     "id of %zu bytes", n);
    }
}

Test(envelope, overlong_unit_and_text_on_the_wire_are_rejected)
{
    mw_message_t m = observation(1);
    medwire_v1_Envelope e = envelope_of(&m);
    uint8_t body[512], sub[256];
    char s[100];
    pb_ostream_t os, ss;
    wire w = {.len = 0};
    mw_message_t out[MWI_MAX_BATCH];
    size_t count;

    /* Observation with a 16-byte unit (max 15). */
    memset(s, 'm', sizeof(s));
    ss = pb_ostream_from_buffer(sub, sizeof(sub));
    cr_assert(pb_encode_tag(&ss, PB_WT_STRING, medwire_v1_Observation_unit_tag));
    cr_assert(pb_encode_string(&ss, (const pb_byte_t *)s, MW_UNIT_MAX + 1));
    e.which_payload = 0;
    os = pb_ostream_from_buffer(body, sizeof(body));
    cr_assert(pb_encode(&os, medwire_v1_Envelope_fields, &e));
    cr_assert(pb_encode_tag(&os, PB_WT_STRING, medwire_v1_Envelope_observation_tag));
    cr_assert(pb_encode_string(&os, sub, ss.bytes_written));
    wire_add_bytes(&w, 1, body, os.bytes_written);
    cr_assert_eq(decode_wire(&w, out, &count), MW_EDECODE);

    /* Alarm with a 48-byte text (max 47). */
    w.len = 0;
    ss = pb_ostream_from_buffer(sub, sizeof(sub));
    cr_assert(pb_encode_tag(&ss, PB_WT_STRING, medwire_v1_Alarm_text_tag));
    cr_assert(pb_encode_string(&ss, (const pb_byte_t *)s, MW_ALARM_TEXT_MAX + 1));
    os = pb_ostream_from_buffer(body, sizeof(body));
    cr_assert(pb_encode(&os, medwire_v1_Envelope_fields, &e));
    cr_assert(pb_encode_tag(&os, PB_WT_STRING, medwire_v1_Envelope_alarm_tag));
    cr_assert(pb_encode_string(&os, sub, ss.bytes_written));
    wire_add_bytes(&w, 1, body, os.bytes_written);
    cr_assert_eq(decode_wire(&w, out, &count), MW_EDECODE);
}

Test(envelope, string_with_an_embedded_nul_on_the_wire_is_rejected)
{
    mw_message_t m = alarm(1);
    medwire_v1_Envelope e = envelope_of(&m);
    uint8_t body[512];
    pb_ostream_t s = pb_ostream_from_buffer(body, sizeof(body));
    wire w = {.len = 0};
    mw_message_t out[MWI_MAX_BATCH];
    size_t count;
    static const char id[] = "oxi-000042\0evil";

    memset(e.device_id, 0, sizeof(e.device_id));
    cr_assert(pb_encode(&s, medwire_v1_Envelope_fields, &e));
    /* The id field on the wire comes after the empty one nanopb skipped: it wins. */
    cr_assert(pb_encode_tag(&s, PB_WT_STRING, medwire_v1_Envelope_device_id_tag));
    cr_assert(pb_encode_string(&s, (const pb_byte_t *)id, sizeof(id) - 1));
    wire_add_bytes(&w, 1, body, s.bytes_written);
    cr_assert_eq(decode_wire(&w, out, &count), MW_EDECODE);
}

Test(envelope, priority_outside_1_to_3_is_rejected)
{
    static const unsigned bad[] = {0, 4, 255, 0xFFFFFFFFu};
    size_t i;

    for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        mw_message_t m = observation(1), out;
        medwire_v1_Envelope e = envelope_of(&m);
        e.priority = (medwire_v1_Priority)bad[i];
        cr_assert_eq(decode_one(&e, &out), MW_EDECODE, "priority %u", bad[i]);
        m.priority = (mw_priority)bad[i];
        cr_assert_eq(mwi_envelope_from_message(&m, &e), MW_EINVAL, "priority %u", bad[i]);
    }
    /* Any type may travel at any of the three priorities (a status can be urgent). */
    {
        mw_message_t m = status(1);
        m.priority = MW_PRIORITY_ALARM;
        assert_round_trip(&m);
    }
}

Test(envelope, enum_values_out_of_range_are_rejected)
{
    mw_message_t m, out;
    medwire_v1_Envelope e;

    m = observation(1);
    e = envelope_of(&m);
    e.payload.observation.status = (medwire_v1_MeasurementStatus)6;
    cr_assert_eq(decode_one(&e, &out), MW_EDECODE, "measurement status 6");

    m = alarm(1);
    e = envelope_of(&m);
    e.payload.alarm.priority = (medwire_v1_AlarmPriority)4;
    cr_assert_eq(decode_one(&e, &out), MW_EDECODE, "alarm priority 4");
    e = envelope_of(&m);
    e.payload.alarm.state = (medwire_v1_AlarmState)4;
    cr_assert_eq(decode_one(&e, &out), MW_EDECODE, "alarm state 4");

    e = envelope_of(&m);
    e.time_trust = (medwire_v1_TimeTrust)2;
    cr_assert_eq(decode_one(&e, &out), MW_EDECODE, "time trust 2");

    m = alarm(1);
    m.u.alarm.state = (mw_alarm_state)7;
    cr_assert_eq(mwi_envelope_from_message(&m, &e), MW_EINVAL);
}

Test(envelope, exponent_outside_minus_128_to_127_is_rejected)
{
    static const int32_t bad[] = {-129, 128, INT32_MIN, INT32_MAX};
    size_t i;

    for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        mw_message_t m = observation(1), out;
        medwire_v1_Envelope e = envelope_of(&m);
        e.payload.observation.exponent = bad[i];
        cr_assert_eq(decode_one(&e, &out), MW_EDECODE, "exponent %d", bad[i]);
        m.u.observation.exponent = bad[i];
        cr_assert_eq(mwi_envelope_from_message(&m, &e), MW_EINVAL);
    }
}

Test(envelope, unit_and_text_must_be_printable_ascii)
{
    /* A degree sign and C in UTF-8 (\x43 is C, written so that it is not read as hex). */
    static const char *const bad_units[] = {"m g", "%\n", "\x01", "\xc2\xb0\x43", "\x7f"};
    static const char *const bad_texts[] = {"low\n", "tab\there", "\x1b[31m", "caf\xc3\xa9"};
    size_t i;

    for (i = 0; i < sizeof(bad_units) / sizeof(bad_units[0]); i++) {
        mw_message_t m = observation(1), out;
        medwire_v1_Envelope e = envelope_of(&m);
        memset(e.payload.observation.unit, 0, sizeof(e.payload.observation.unit));
        strcpy(e.payload.observation.unit, bad_units[i]);
        cr_assert_eq(decode_one(&e, &out), MW_EDECODE, "unit %zu", i);
        strcpy(m.u.observation.unit, bad_units[i]);
        cr_assert_eq(mwi_message_check(&m), MW_EINVAL, "unit %zu", i);
    }
    for (i = 0; i < sizeof(bad_texts) / sizeof(bad_texts[0]); i++) {
        mw_message_t m = alarm(1), out;
        medwire_v1_Envelope e = envelope_of(&m);
        memset(e.payload.alarm.text, 0, sizeof(e.payload.alarm.text));
        strcpy(e.payload.alarm.text, bad_texts[i]);
        cr_assert_eq(decode_one(&e, &out), MW_EDECODE, "text %zu", i);
        strcpy(m.u.alarm.text, bad_texts[i]);
        cr_assert_eq(mwi_message_check(&m), MW_EINVAL, "text %zu", i);
    }
}

Test(envelope, encoder_refuses_strings_without_their_nul)
{
    mw_message_t m = observation(1);
    medwire_v1_Envelope e;
    memset(m.u.observation.unit, 'g', sizeof(m.u.observation.unit));
    cr_assert_eq(mwi_envelope_from_message(&m, &e), MW_EINVAL);
    m = observation(1);
    memset(m.device_id, 'd', sizeof(m.device_id));
    cr_assert_eq(mwi_envelope_from_message(&m, &e), MW_EINVAL);
    m = alarm(1);
    memset(m.u.alarm.text, 't', sizeof(m.u.alarm.text));
    cr_assert_eq(mwi_envelope_from_message(&m, &e), MW_EINVAL);
}

Test(envelope, battery_above_100_percent_is_rejected)
{
    mw_message_t m = status(1), out;
    medwire_v1_Envelope e = envelope_of(&m);
    e.payload.status.battery_pct = 101;
    cr_assert_eq(decode_one(&e, &out), MW_EDECODE);
    m.u.status.battery_pct = 101;
    cr_assert_eq(mwi_message_check(&m), MW_EINVAL);
}

Test(envelope, unknown_type_is_never_encoded)
{
    mw_message_t m = observation(1);
    medwire_v1_Envelope e;
    m.type = MW_MSG_UNKNOWN;
    cr_assert_eq(mwi_envelope_from_message(&m, &e), MW_EINVAL);
    m.type = (mw_msg_type)42;
    cr_assert_eq(mwi_envelope_from_message(&m, &e), MW_EINVAL);
}

/* ---- batches ----------------------------------------------------------------------------- */

Test(batch, sixteen_observations_fit_in_one_dtls_record_and_round_trip)
{
    mw_message_t msgs[MWI_MAX_BATCH], back[MWI_MAX_BATCH];
    uint8_t buf[2048];
    size_t len, one_len, count, i;
    uint64_t lw;

    for (i = 0; i < MWI_MAX_BATCH; i++) {
        msgs[i] = observation(1000 + i);
    }
    cr_assert_eq(mwi_batch_encode(msgs, 1, 1000, buf, sizeof(buf), &one_len, &count), MW_OK);
    cr_assert_eq(mwi_batch_encode(msgs, MWI_MAX_BATCH, 1000, buf, sizeof(buf), &len, &count),
                 MW_OK);
    cr_assert_eq(count, MWI_MAX_BATCH);
    /* A realistic message: 10-char id, seq ~1000, epoch-ms times, SpO2 97.5 %. */
    printf("codec: one observation envelope = %zu bytes in a batch (%zu body); "
           "16 envelopes = %zu bytes\n",
           one_len, one_len - 2, len);
    /* The Batch must leave room for CoAP (header, token, options) in one 1351-byte record. */
    cr_assert_leq(len, 1300);
    cr_assert_eq(mwi_batch_decode(buf, len, back, MWI_MAX_BATCH, &count, &lw), MW_OK);
    cr_assert_eq(count, MWI_MAX_BATCH);
    cr_assert_eq(lw, 1000);
    for (i = 0; i < MWI_MAX_BATCH; i++) {
        assert_same_message(&msgs[i], &back[i]);
    }
}

Test(batch, worst_case_batch_fits_nanopb_size_bound)
{
    mw_message_t msgs[MWI_MAX_BATCH];
    uint8_t buf[medwire_v1_Batch_size];
    size_t len, count, i;

    for (i = 0; i < MWI_MAX_BATCH; i++) {
        mw_message_t *m = &msgs[i];
        *m = alarm(UINT64_MAX - i);
        memset(m->device_id, 'W', MW_ID_MAX);
        m->device_id[MW_ID_MAX] = '\0';
        m->device_time_ms = UINT64_MAX;
        m->time_synced = true;
        m->u.alarm.mdc_code = UINT32_MAX;
        m->u.alarm.time_ms = UINT64_MAX;
        memset(m->u.alarm.text, '~', MW_ALARM_TEXT_MAX);
        m->u.alarm.text[MW_ALARM_TEXT_MAX] = '\0';
        memset(m->u.alarm.source, '~', MW_SOURCE_MAX);
    }
    cr_assert_eq(mwi_batch_encode(msgs, MWI_MAX_BATCH, UINT64_MAX, buf, sizeof(buf), &len, &count),
                 MW_OK);
    cr_assert_eq(count, MWI_MAX_BATCH);
    printf("codec: worst-case 16-envelope batch = %zu bytes (nanopb bound %d)\n", len,
           medwire_v1_Batch_size);
}

/* The batch encoder writes each envelope itself (encoded once, then copied): its bytes must be
 * nanopb's own encoding of the same Batch, for the smallest and the largest envelopes. */
Test(batch, bytes_are_nanopbs_own_encoding_of_the_batch)
{
    static mw_message_t msgs[MWI_MAX_BATCH];
    static medwire_v1_Batch b;
    uint8_t ours[medwire_v1_Batch_size], theirs[medwire_v1_Batch_size];
    size_t len, count;

    for (int big = 0; big < 2; big++) {
        memset(&b, 0, sizeof b);
        for (size_t i = 0; i < MWI_MAX_BATCH; i++) {
            msgs[i] = big ? alarm(UINT64_MAX - i) : observation(1 + i);
            if (big) {
                memset(msgs[i].device_id, 'W', MW_ID_MAX);
                msgs[i].device_id[MW_ID_MAX] = '\0';
                memset(msgs[i].u.alarm.text, '~', MW_ALARM_TEXT_MAX);
                msgs[i].u.alarm.text[MW_ALARM_TEXT_MAX] = '\0';
            }
            cr_assert_eq(mwi_envelope_from_message(&msgs[i], &b.envelopes[i]), MW_OK);
            b.envelopes[i].low_water = 1;
        }
        b.envelopes_count = MWI_MAX_BATCH;
        cr_assert_eq(
            mwi_batch_encode(msgs, MWI_MAX_BATCH, 1, ours, sizeof(ours), &len, &count), MW_OK);
        cr_assert_eq(count, MWI_MAX_BATCH);
        pb_ostream_t s = pb_ostream_from_buffer(theirs, sizeof(theirs));
        cr_assert(pb_encode(&s, medwire_v1_Batch_fields, &b), "%s", PB_GET_ERROR(&s));
        cr_assert_eq(len, s.bytes_written, "%s envelopes", big ? "largest" : "small");
        cr_assert_arr_eq(ours, theirs, len);
    }
}

Test(batch, encode_stops_at_capacity_and_reports_how_many_fitted)
{
    mw_message_t msgs[8], back[MWI_MAX_BATCH];
    uint8_t buf[2048], canary[2048];
    size_t one, len, count, cap, i;
    uint64_t lw;

    for (i = 0; i < 8; i++) {
        msgs[i] = observation(i + 1);
    }
    cr_assert_eq(mwi_batch_encode(msgs, 1, 1, buf, sizeof(buf), &one, &count), MW_OK);
    /* Every envelope here has the same size, so the count is exactly cap / one. */
    for (cap = one; cap <= 8 * one + 3; cap++) {
        memset(buf, 0xA5, sizeof(buf));
        memset(canary, 0xA5, sizeof(canary));
        cr_assert_eq(mwi_batch_encode(msgs, 8, 1, buf, cap, &len, &count), MW_OK);
        cr_assert_eq(count, cap / one < 8 ? cap / one : 8, "cap %zu", cap);
        cr_assert_eq(len, count * one);
        cr_assert_arr_eq(buf + cap, canary + cap, sizeof(buf) - cap, "nothing past cap");
        cr_assert_eq(mwi_batch_decode(buf, len, back, MWI_MAX_BATCH, &count, &lw), MW_OK);
        cr_assert_eq(count, len / one);
        assert_same_message(&msgs[count - 1], &back[count - 1]);
    }
}

Test(batch, encode_fails_with_enospc_when_not_even_one_message_fits)
{
    mw_message_t m = observation(1);
    uint8_t buf[256];
    size_t one, len = 99, count = 99, cap;

    cr_assert_eq(mwi_batch_encode(&m, 1, 1, buf, sizeof(buf), &one, &count), MW_OK);
    for (cap = 0; cap < one; cap++) {
        cr_assert_eq(mwi_batch_encode(&m, 1, 1, buf, cap, &len, &count), MW_ENOSPC, "cap %zu", cap);
        cr_assert_eq(len, 0);
        cr_assert_eq(count, 0);
    }
}

Test(batch, encode_never_puts_more_than_sixteen_envelopes_in_a_batch)
{
    mw_message_t msgs[40];
    uint8_t buf[8192];
    size_t len, count, i;

    for (i = 0; i < 40; i++) {
        msgs[i] = status(i + 1);
    }
    cr_assert_eq(mwi_batch_encode(msgs, 40, 1, buf, sizeof(buf), &len, &count), MW_OK);
    cr_assert_eq(count, MWI_MAX_BATCH);
}

Test(batch, encode_refuses_an_invalid_message_and_reports_nothing)
{
    mw_message_t msgs[3] = {observation(1), observation(2), observation(3)};
    uint8_t buf[1024];
    size_t len = 99, count = 99;

    msgs[1].seq = 0;
    cr_assert_eq(mwi_batch_encode(msgs, 3, 1, buf, sizeof(buf), &len, &count), MW_EINVAL);
    cr_assert_eq(count, 0);
    cr_assert_eq(len, 0);
    cr_assert_eq(mwi_batch_encode(msgs, 0, 1, buf, sizeof(buf), &len, &count), MW_EINVAL);
}

Test(batch, encoding_from_pointers_gives_the_same_bytes)
{
    mw_message_t ring[5] = {alarm(7), observation(8), status(9), observation(10), alarm(11)};
    const mw_message_t *order[5] = {&ring[3], &ring[4], &ring[0], &ring[1], &ring[2]};
    mw_message_t flat[5];
    uint8_t a[1024], b[1024];
    size_t la, lb, ca, cb, i;

    for (i = 0; i < 5; i++) {
        flat[i] = *order[i];
    }
    cr_assert_eq(mwi_batch_encode(flat, 5, 7, a, sizeof(a), &la, &ca), MW_OK);
    cr_assert_eq(mwi_batch_encode_ptrs(order, 5, 7, b, sizeof(b), &lb, &cb), MW_OK);
    cr_assert_eq(ca, 5);
    cr_assert_eq(cb, 5);
    cr_assert_eq(la, lb);
    cr_assert_arr_eq(a, b, la);
}

static size_t encode_mixed_batch(uint8_t *buf, size_t cap, mw_message_t *msgs, size_t *ends)
{
    size_t len, count, i;

    for (i = 0; i < 6; i++) {
        msgs[i] = i % 3 == 0 ? observation(i + 1) : i % 3 == 1 ? alarm(i + 1) : status(i + 1);
    }
    /* Envelope boundaries, from encoding growing prefixes. */
    for (i = 1; i <= 6; i++) {
        cr_assert_eq(mwi_batch_encode(msgs, i, 1, buf, cap, &ends[i - 1], &count), MW_OK);
    }
    cr_assert_eq(mwi_batch_encode(msgs, 6, 1, buf, cap, &len, &count), MW_OK);
    return len;
}

Test(batch, every_truncation_is_refused_or_decodes_the_whole_envelopes_before_the_cut)
{
    mw_message_t msgs[6], back[MWI_MAX_BATCH];
    uint8_t buf[1024];
    size_t ends[6], len, cut, count, i;
    uint64_t lw;

    len = encode_mixed_batch(buf, sizeof(buf), msgs, ends);
    for (cut = 0; cut < len; cut++) {
        size_t whole = 0;
        mw_err err;
        err = mwi_batch_decode(buf, cut, back, MWI_MAX_BATCH, &count, &lw);
        while (whole < 6 && ends[whole] <= cut) {
            whole++;
        }
        if (whole > 0 && ends[whole - 1] == cut) {
            /* Cut exactly between envelopes: protobuf cannot tell, and a prefix is safe. */
            cr_assert_eq(err, MW_OK, "cut %zu", cut);
            cr_assert_eq(count, whole);
            for (i = 0; i < count; i++) {
                assert_same_message(&msgs[i], &back[i]);
            }
        } else {
            cr_assert_eq(err, MW_EDECODE, "cut %zu", cut);
            cr_assert_eq(count, 0);
        }
    }
}

/* @req MDR-17.2 MDCG-2019-16-VV IEC62443-CR3.5 */
Test(batch, corrupting_any_byte_never_crashes_and_never_yields_an_invalid_message)
{
    mw_message_t msgs[6], back[MWI_MAX_BATCH];
    uint8_t buf[1024], bad[1024];
    size_t ends[6], len, pos, count, i;
    unsigned v;
    uint64_t lw;

    len = encode_mixed_batch(buf, sizeof(buf), msgs, ends);
    for (pos = 0; pos < len; pos++) {
        for (v = 0; v < 256; v++) {
            mw_err err;
            memcpy(bad, buf, len);
            bad[pos] = (uint8_t)v;
            err = mwi_batch_decode(bad, len, back, MWI_MAX_BATCH, &count, &lw);
            cr_assert(err == MW_OK || err == MW_EDECODE || err == MW_EVERSION,
                      "pos %zu value %u: %d", pos, v, err);
            if (err != MW_OK) {
                cr_assert_eq(count, 0);
                continue;
            }
            for (i = 0; i < count; i++) {
                if (back[i].type != MW_MSG_UNKNOWN) {
                    cr_assert_eq(mwi_message_check(&back[i]), MW_OK, "pos %zu value %u", pos, v);
                }
            }
        }
    }
}

/* @req IEC62443-CR3.5 */
Test(batch, one_invalid_envelope_refuses_the_whole_batch)
{
    mw_message_t good = observation(1), bad = observation(2), out[MWI_MAX_BATCH];
    medwire_v1_Envelope e1 = envelope_of(&good), e2 = envelope_of(&bad);
    wire w = {.len = 0};
    size_t count = 99;

    e2.seq = 0;
    wire_add_envelope(&w, &e1);
    wire_add_envelope(&w, &e2);
    cr_assert_eq(decode_wire(&w, out, &count), MW_EDECODE);
    cr_assert_eq(count, 0);

    w.len = 0;
    e2 = envelope_of(&bad);
    e2.version = 2;
    wire_add_envelope(&w, &e1);
    wire_add_envelope(&w, &e2);
    cr_assert_eq(decode_wire(&w, out, &count), MW_EVERSION);
    cr_assert_eq(count, 0);
}

Test(batch, more_than_sixteen_envelopes_are_refused)
{
    mw_message_t out[MWI_MAX_BATCH + 4];
    wire w = {.len = 0};
    size_t count, i;
    uint64_t lw;

    for (i = 0; i < MWI_MAX_BATCH + 1; i++) {
        mw_message_t m = status(i + 1);
        medwire_v1_Envelope e = envelope_of(&m);
        wire_add_envelope(&w, &e);
    }
    cr_assert_eq(mwi_batch_decode(w.buf, w.len, out, MWI_MAX_BATCH + 4, &count, &lw), MW_EDECODE);
    cr_assert_eq(count, 0);
}

Test(batch, decode_reports_enospc_when_the_callers_array_is_too_small)
{
    mw_message_t msgs[4] = {status(1), status(2), status(3), status(4)}, out[3];
    uint8_t buf[1024];
    size_t len, count;
    uint64_t lw;

    cr_assert_eq(mwi_batch_encode(msgs, 4, 1, buf, sizeof(buf), &len, &count), MW_OK);
    cr_assert_eq(mwi_batch_decode(buf, len, out, 3, &count, &lw), MW_ENOSPC);
    cr_assert_eq(count, 0);
}

Test(batch, envelopes_disagreeing_on_low_water_are_refused)
{
    mw_message_t a = observation(5), b = observation(6), out[MWI_MAX_BATCH];
    medwire_v1_Envelope ea = envelope_of(&a), eb = envelope_of(&b);
    wire w = {.len = 0};
    size_t count;

    ea.low_water = 3;
    eb.low_water = 4;
    wire_add_envelope(&w, &ea);
    wire_add_envelope(&w, &eb);
    cr_assert_eq(decode_wire(&w, out, &count), MW_EDECODE);
}

Test(batch, empty_batch_is_refused)
{
    mw_message_t out[MWI_MAX_BATCH];
    size_t count = 99;
    uint64_t lw;
    const uint8_t unknown_only[] = {0x10, 0x01}; /* field 2 varint: not an envelope */

    cr_assert_eq(mwi_batch_decode(NULL, 0, out, MWI_MAX_BATCH, &count, &lw), MW_EDECODE);
    cr_assert_eq(count, 0);
    cr_assert_eq(
        mwi_batch_decode(unknown_only, sizeof(unknown_only), out, MWI_MAX_BATCH, &count, &lw),
        MW_EDECODE);
}

/* @req MDS2-CSUP */
Test(batch, unknown_batch_fields_are_skipped)
{
    mw_message_t m = alarm(3), out[MWI_MAX_BATCH];
    medwire_v1_Envelope e = envelope_of(&m);
    wire w = {.len = 0};
    const uint8_t later[] = {1, 2, 3};
    size_t count;

    wire_add_bytes(&w, 5, later, sizeof(later));
    wire_add_envelope(&w, &e);
    wire_add_bytes(&w, 6, later, sizeof(later));
    cr_assert_eq(decode_wire(&w, out, &count), MW_OK);
    cr_assert_eq(count, 1);
    assert_same_message(&m, &out[0]);
}

Test(batch, envelope_field_with_the_wrong_wire_type_is_refused)
{
    mw_message_t out[MWI_MAX_BATCH];
    const uint8_t varint_envelope[] = {0x08, 0x01}; /* field 1 as a varint */
    const uint8_t zero_tag[] = {0x00};
    size_t count;
    uint64_t lw;

    cr_assert_eq(
        mwi_batch_decode(varint_envelope, sizeof(varint_envelope), out, MWI_MAX_BATCH, &count, &lw),
        MW_EDECODE);
    cr_assert_eq(mwi_batch_decode(zero_tag, sizeof(zero_tag), out, MWI_MAX_BATCH, &count, &lw),
                 MW_EDECODE);
}

/* ---- acks -------------------------------------------------------------------------------- */

Test(ack, ranges_round_trip)
{
    const mwi_seq_range in[3] = {{1, 1}, {3, 5}, {9, UINT64_MAX}};
    mwi_seq_range out[MWI_MAX_ACK_RANGES];
    uint8_t buf[medwire_v1_Ack_size];
    size_t len, n;

    cr_assert_eq(mwi_ack_encode(in, 3, buf, sizeof(buf), &len), MW_OK);
    cr_assert_eq(mwi_ack_decode(buf, len, out, MWI_MAX_ACK_RANGES, &n), MW_OK);
    cr_assert_eq(n, 3);
    cr_assert_arr_eq(out, in, sizeof(in));
}

Test(ack, an_empty_ack_is_zero_bytes_and_decodes_to_no_ranges)
{
    mwi_seq_range out[1];
    uint8_t buf[4];
    size_t len = 99, n = 99;

    cr_assert_eq(mwi_ack_encode(NULL, 0, buf, sizeof(buf), &len), MW_OK);
    cr_assert_eq(len, 0);
    cr_assert_eq(mwi_ack_decode(buf, 0, out, 1, &n), MW_OK);
    cr_assert_eq(n, 0);
}

Test(ack, sixteen_ranges_fit_and_seventeen_do_not)
{
    mwi_seq_range in[MWI_MAX_ACK_RANGES + 1], out[MWI_MAX_ACK_RANGES + 1];
    uint8_t buf[1024];
    size_t len, n, i;
    pb_ostream_t s;

    for (i = 0; i <= MWI_MAX_ACK_RANGES; i++) {
        in[i].first = 10 * i + 1;
        in[i].last = 10 * i + 5;
    }
    cr_assert_eq(mwi_ack_encode(in, MWI_MAX_ACK_RANGES, buf, sizeof(buf), &len), MW_OK);
    cr_assert_eq(mwi_ack_decode(buf, len, out, MWI_MAX_ACK_RANGES, &n), MW_OK);
    cr_assert_eq(n, MWI_MAX_ACK_RANGES);
    cr_assert_eq(mwi_ack_encode(in, MWI_MAX_ACK_RANGES + 1, buf, sizeof(buf), &len), MW_EINVAL);

    /* Seventeen on the wire, written by hand. */
    s = pb_ostream_from_buffer(buf, sizeof(buf));
    for (i = 0; i <= MWI_MAX_ACK_RANGES; i++) {
        medwire_v1_SeqRange r = {in[i].first, in[i].last};
        cr_assert(pb_encode_tag(&s, PB_WT_STRING, medwire_v1_Ack_acked_tag));
        cr_assert(pb_encode_submessage(&s, medwire_v1_SeqRange_fields, &r));
    }
    cr_assert_eq(mwi_ack_decode(buf, s.bytes_written, out, MWI_MAX_ACK_RANGES + 1, &n), MW_EDECODE);
    cr_assert_eq(n, 0);
    /* And a capacity below what arrived. */
    cr_assert_eq(mwi_ack_encode(in, 4, buf, sizeof(buf), &len), MW_OK);
    cr_assert_eq(mwi_ack_decode(buf, len, out, 3, &n), MW_ENOSPC);
}

/* Encodes an Ack struct directly, bypassing mwi_ack_encode's checks. */
static size_t raw_ack(uint8_t *buf, size_t cap, uint64_t first, uint64_t last)
{
    medwire_v1_Ack ack = medwire_v1_Ack_init_zero;
    pb_ostream_t s = pb_ostream_from_buffer(buf, cap);
    ack.acked_count = 2;
    ack.acked[0].first = 1;
    ack.acked[0].last = 2;
    ack.acked[1].first = first;
    ack.acked[1].last = last;
    cr_assert(pb_encode(&s, medwire_v1_Ack_fields, &ack));
    return s.bytes_written;
}

Test(ack, a_reversed_range_is_refused)
{
    const mwi_seq_range reversed = {9, 3};
    mwi_seq_range out[MWI_MAX_ACK_RANGES];
    uint8_t buf[128];
    size_t len, n = 99;

    cr_assert_eq(mwi_ack_encode(&reversed, 1, buf, sizeof(buf), &len), MW_EINVAL);
    len = raw_ack(buf, sizeof(buf), 9, 3);
    cr_assert_eq(mwi_ack_decode(buf, len, out, MWI_MAX_ACK_RANGES, &n), MW_EDECODE);
    cr_assert_eq(n, 0, "not even the valid first range is reported");
}

Test(ack, a_range_starting_at_zero_is_refused)
{
    const mwi_seq_range zero = {0, 3};
    mwi_seq_range out[MWI_MAX_ACK_RANGES];
    uint8_t buf[128];
    size_t len, n;

    cr_assert_eq(mwi_ack_encode(&zero, 1, buf, sizeof(buf), &len), MW_EINVAL);
    len = raw_ack(buf, sizeof(buf), 0, 3);
    cr_assert_eq(mwi_ack_decode(buf, len, out, MWI_MAX_ACK_RANGES, &n), MW_EDECODE);
    len = raw_ack(buf, sizeof(buf), 0, 0); /* an all-default SeqRange, zero bytes long */
    cr_assert_eq(mwi_ack_decode(buf, len, out, MWI_MAX_ACK_RANGES, &n), MW_EDECODE);
}

Test(ack, encode_reports_enospc_on_a_short_buffer)
{
    const mwi_seq_range in[2] = {{1, 100}, {200, 300}};
    uint8_t buf[64];
    size_t full, len, cap;

    cr_assert_eq(mwi_ack_encode(in, 2, buf, sizeof(buf), &full), MW_OK);
    for (cap = 0; cap < full; cap++) {
        cr_assert_eq(mwi_ack_encode(in, 2, buf, cap, &len), MW_ENOSPC, "cap %zu", cap);
    }
}

Test(ack, every_truncation_is_refused_or_is_a_prefix_of_whole_ranges)
{
    const mwi_seq_range in[3] = {{1, 1000}, {2000, 70000}, {1ull << 40, 1ull << 50}};
    mwi_seq_range out[MWI_MAX_ACK_RANGES];
    uint8_t buf[128];
    size_t len, cut, n;

    cr_assert_eq(mwi_ack_encode(in, 3, buf, sizeof(buf), &len), MW_OK);
    for (cut = 0; cut < len; cut++) {
        mw_err err = mwi_ack_decode(buf, cut, out, MWI_MAX_ACK_RANGES, &n);
        cr_assert(err == MW_OK || err == MW_EDECODE, "cut %zu", cut);
        if (err == MW_OK) {
            cr_assert_lt(n, 3);
            cr_assert_arr_eq(out, in, n * sizeof(in[0]), "cut %zu", cut);
        }
    }
}

/* ---- ranges from sequence numbers -------------------------------------------------------- */

Test(ranges, merges_5_3_4_9_9_10_into_3_to_5_and_9_to_10)
{
    const uint64_t seqs[] = {5, 3, 4, 9, 9, 10};
    mwi_seq_range out[MWI_MAX_ACK_RANGES];
    size_t n = mwi_ranges_from_seqs(seqs, 6, out, MWI_MAX_ACK_RANGES);

    cr_assert_eq(n, 2);
    cr_assert_eq(out[0].first, 3);
    cr_assert_eq(out[0].last, 5);
    cr_assert_eq(out[1].first, 9);
    cr_assert_eq(out[1].last, 10);
}

Test(ranges, a_number_between_two_ranges_joins_them)
{
    const uint64_t seqs[] = {1, 3, 7, 2, 5, 6, 4};
    mwi_seq_range out[4];
    size_t n = mwi_ranges_from_seqs(seqs, 7, out, 4);

    cr_assert_eq(n, 1);
    cr_assert_eq(out[0].first, 1);
    cr_assert_eq(out[0].last, 7);
}

Test(ranges, zero_is_ignored_and_the_largest_number_does_not_wrap)
{
    const uint64_t seqs[] = {0, UINT64_MAX, UINT64_MAX - 1, 1, 0};
    mwi_seq_range out[4];
    size_t n = mwi_ranges_from_seqs(seqs, 5, out, 4);

    cr_assert_eq(n, 2);
    cr_assert_eq(out[0].first, 1);
    cr_assert_eq(out[0].last, 1);
    cr_assert_eq(out[1].first, UINT64_MAX - 1);
    cr_assert_eq(out[1].last, UINT64_MAX);
    cr_assert_eq(mwi_ranges_from_seqs(seqs, 1, out, 4), 0);
}

/* Against a brute-force model: ranges are sorted, disjoint and non-adjacent, cover only input
 * numbers, and with room enough cover all of them. */
Test(ranges, never_acknowledge_a_number_that_was_not_received)
{
    uint64_t state = 0x9E3779B97F4A7C15ull;
    int round;

    for (round = 0; round < 2000; round++) {
        uint64_t seqs[40];
        bool present[64] = {false};
        mwi_seq_range out[MWI_MAX_ACK_RANGES];
        size_t n, cap = (size_t)(round % (MWI_MAX_ACK_RANGES + 1)), i, k, count = 0;
        uint64_t s;

        n = (size_t)(round % 40);
        for (i = 0; i < n; i++) {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            seqs[i] = state % 64;
            present[seqs[i]] = true;
        }
        k = mwi_ranges_from_seqs(seqs, n, out, cap);
        cr_assert_leq(k, cap);
        for (i = 0; i < k; i++) {
            cr_assert_geq(out[i].first, 1);
            cr_assert_leq(out[i].first, out[i].last);
            if (i > 0) {
                cr_assert_gt(out[i].first, out[i - 1].last + 1, "disjoint and not adjacent");
            }
            for (s = out[i].first; s <= out[i].last; s++) {
                cr_assert(present[s], "round %d acks %llu", round, (unsigned long long)s);
                count++;
            }
        }
        if (cap == MWI_MAX_ACK_RANGES && n <= MWI_MAX_ACK_RANGES) {
            size_t want = 0;
            for (s = 1; s < 64; s++) {
                want += present[s];
            }
            cr_assert_eq(count, want, "round %d covers everything", round);
        }
    }
}

Test(codec, a_command_result_round_trips_and_a_bad_one_is_refused)
{
    mw_message_t m, back[MWI_MAX_BATCH];
    memset(&m, 0, sizeof m);
    snprintf(m.device_id, sizeof m.device_id, "dev-1");
    m.seq = 7;
    m.priority = MW_PRIORITY_OBSERVATION;
    m.type = MW_MSG_COMMAND_RESULT;
    m.u.command_result.command_id = 3;
    m.u.command_result.status = MW_CMD_REFUSED_EXPIRED;
    snprintf(m.u.command_result.detail, sizeof m.u.command_result.detail, "too late");
    uint8_t buf[256];
    size_t len, count, n;
    uint64_t low;
    cr_assert_eq(mwi_batch_encode(&m, 1, 7, buf, sizeof buf, &len, &count), MW_OK);
    cr_assert_eq(mwi_batch_decode(buf, len, back, MWI_MAX_BATCH, &n, &low), MW_OK);
    cr_assert_eq(n, 1);
    assert_same_message(&m, &back[0]);
    m.u.command_result.command_id = 0;
    cr_assert_eq(mwi_message_check(&m), MW_EINVAL, "a result for command 0 is refused");
}

Test(codec, an_ack_carries_commands_of_every_kind)
{
    mwi_seq_range r = {5, 9};
    mw_command_t c[3], back[MWI_MAX_COMMANDS];
    memset(c, 0, sizeof c);
    c[0] = (mw_command_t){.id = 1, .expires_ms = 1000, .kind = MW_CMD_SET_INTERVAL};
    c[0].u.interval_ms = 5000;
    c[1] = (mw_command_t){.id = 2, .expires_ms = 2000, .kind = MW_CMD_ACK_ALARM};
    c[1].u.alarm_seq = 77;
    c[2] = (mw_command_t){.id = 3, .expires_ms = 3000, .kind = MW_CMD_ROTATE_KEYS};
    uint8_t buf[256];
    size_t len, n, nc;
    mwi_seq_range rb[4];
    cr_assert_eq(mwi_ack_encode_cmds(&r, 1, c, 3, buf, sizeof buf, &len), MW_OK);
    cr_assert_eq(mwi_ack_decode_cmds(buf, len, rb, 4, &n, back, MWI_MAX_COMMANDS, &nc), MW_OK);
    cr_assert_eq(n, 1);
    cr_assert_eq(rb[0].first, 5);
    cr_assert_eq(nc, 3);
    cr_assert_eq(back[0].kind, MW_CMD_SET_INTERVAL);
    cr_assert_eq(back[0].u.interval_ms, 5000);
    cr_assert_eq(back[1].u.alarm_seq, 77);
    cr_assert_eq(back[2].kind, MW_CMD_ROTATE_KEYS);
    cr_assert_eq(back[2].expires_ms, 3000);
    /* An old decoder ignores the commands and still reads the ranges. */
    cr_assert_eq(mwi_ack_decode(buf, len, rb, 4, &n), MW_OK);
    cr_assert_eq(n, 1);
    c[0].id = 0;
    cr_assert_eq(mwi_ack_encode_cmds(&r, 1, c, 1, buf, sizeof buf, &len), MW_EINVAL);
}

/* @req IEC62443-CR2.1 */
Test(codec, gateway_made_link_events_can_never_come_from_a_device)
{
    mw_message_t m;
    memset(&m, 0, sizeof m);
    snprintf(m.device_id, sizeof m.device_id, "dev-1");
    m.seq = 1;
    m.priority = MW_PRIORITY_ALARM;
    m.type = MW_MSG_COMM_LOSS;
    cr_assert_eq(mwi_message_check(&m), MW_EINVAL, "not encodable, so never on the wire");
}

Test(ack, the_gateways_time_round_trips_and_is_absent_by_default)
{
    const mwi_seq_range r = {1, 3};
    uint8_t buf[64];
    size_t len = 0, n = 0;
    mwi_seq_range out[MWI_MAX_ACK_RANGES];
    uint64_t t = 1;
    mw_err e =
        mwi_ack_encode_full(&r, 1, NULL, 0, MWI_RESYNC_NONE, 1700000000123u, buf, sizeof buf, &len);
    cr_assert_eq(e, MW_OK);
    e = mwi_ack_decode_full(buf, len, out, MWI_MAX_ACK_RANGES, &n, NULL, 0, NULL, NULL, &t);
    cr_assert_eq(e, MW_OK);
    cr_expect_eq(t, 1700000000123u);
    cr_expect_eq(n, 1);
    /* An Ack from a gateway that sends no time (or an older one) reads as 0. */
    cr_assert_eq(mwi_ack_encode(&r, 1, buf, sizeof buf, &len), MW_OK);
    e = mwi_ack_decode_full(buf, len, out, MWI_MAX_ACK_RANGES, &n, NULL, 0, NULL, NULL, &t);
    cr_assert_eq(e, MW_OK);
    cr_expect_eq(t, 0);
}
