/* SPDX-License-Identifier: Apache-2.0 */
/* codec.c -- envelopes, batches and acks to and from protobuf, validating all that comes in. */
#include "session/codec.h"

#include <string.h>

#include <pb_decode.h>
#include <pb_encode.h>

/* The C structs on both sides must agree with the bounds in proto/medwire.options; a bound
 * changed there without changing message.h (or the reverse) must not compile. */
#define ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))
_Static_assert(sizeof(((medwire_v1_Envelope *)0)->device_id) == MW_ID_MAX + 1, "device_id bound");
_Static_assert(sizeof(((medwire_v1_Observation *)0)->unit) == MW_UNIT_MAX + 1, "unit bound");
_Static_assert(sizeof(((medwire_v1_Alarm *)0)->text) == MW_ALARM_TEXT_MAX + 1, "text bound");
_Static_assert(sizeof(((medwire_v1_Envelope *)0)->source) == MW_SOURCE_MAX + 1, "source bound");
_Static_assert(sizeof(((mw_observation_t *)0)->source) == sizeof(((mw_alarm_t *)0)->source),
               "one source size");
_Static_assert(ARRAY_LEN(((medwire_v1_Batch *)0)->envelopes) == MWI_MAX_BATCH, "batch bound");
_Static_assert(ARRAY_LEN(((medwire_v1_Ack *)0)->acked) == MWI_MAX_ACK_RANGES, "ack bound");
_Static_assert(ARRAY_LEN(((medwire_v1_Ack *)0)->commands) == MWI_MAX_COMMANDS, "command bound");
_Static_assert(sizeof(((medwire_v1_CommandResult *)0)->detail) == MW_COMMAND_DETAIL_MAX + 1,
               "detail bound");
/* The priority enums are copied by value. */
_Static_assert((int)medwire_v1_Priority_PRIORITY_STATUS == (int)MW_PRIORITY_STATUS, "priority");
_Static_assert((int)medwire_v1_Priority_PRIORITY_ALARM == (int)MW_PRIORITY_ALARM, "priority");

/* Varint of a tag for a length-delimited field 1, as in Batch.envelopes and Ack.acked. */
#define FIELD1_LEN_KEY ((1u << 3) | PB_WT_STRING)

static bool id_char(char c, bool first)
{
    if ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9')) {
        return true;
    }
    return !first && (c == '.' || c == '_' || c == '-');
}

bool mwi_device_id_valid(const char *id)
{
    size_t i;

    if (id == NULL) {
        return false;
    }
    /* Bounded scan: the id is compared with a certificate CN and used as a file and log key, so
     * it must be short and free of separators, quotes and control characters. */
    for (i = 0; i <= MW_ID_MAX; i++) {
        if (id[i] == '\0') {
            return i > 0;
        }
        if (!id_char(id[i], i == 0)) {
            return false;
        }
    }
    return false;
}

/* A string stored in a fixed array: terminated inside it, and every byte before the NUL in
 * [lo, 0x7E]. Hospital systems receive these in JSON and HL7 feeds; keeping them to printable
 * ASCII rules out control characters and encoding ambiguities end to end. */
static bool ascii_ok(const char *s, size_t size, unsigned char lo)
{
    size_t i;

    for (i = 0; i < size; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '\0') {
            return true;
        }
        if (c < lo || c > 0x7E) {
            return false;
        }
    }
    return false;
}

/* A source: printable ASCII like a text, but an identifier, so neither starting nor ending with
 * a space ("MON-7 " and "MON-7" must not name two devices, and FHIR wants no blank edges). */
static bool source_ok(const char *s, size_t size)
{
    size_t n;

    if (!ascii_ok(s, size, 0x20)) {
        return false;
    }
    n = strlen(s);
    return n == 0 || (s[0] != ' ' && s[n - 1] != ' ');
}

/* nanopb zeroes a static string array before decoding and then writes the bytes and a NUL, so
 * a nonzero byte after the first NUL means the wire string held a NUL ("dev1\0evil"): refused,
 * so one C string has one wire form. This also refuses a string field repeated with a shorter
 * later copy, which no encoder of a single message emits. */
static bool tail_clean(const char *s, size_t size)
{
    const char *nul = memchr(s, '\0', size);
    size_t i;

    if (nul == NULL) {
        return false;
    }
    for (i = (size_t)(nul - s); i < size; i++) {
        if (s[i] != '\0') {
            return false;
        }
    }
    return true;
}

/* The rules shared by the device (before sending) and the gateway (after decoding), so that
 * the device never queues what the gateway would refuse. */
static bool message_ok(const mw_message_t *m)
{
    unsigned prio = (unsigned)m->priority;

    if (!mwi_device_id_valid(m->device_id) || m->seq == 0) {
        return false;
    }
    if (prio < MW_PRIORITY_STATUS || prio > MW_PRIORITY_ALARM) {
        return false;
    }
    switch (m->type) {
    case MW_MSG_OBSERVATION: {
        const mw_observation_t *o = &m->u.observation;
        /* UCUM expressions contain no space (UCUM 2.1 section 1). */
        return o->exponent >= MWI_EXPONENT_MIN && o->exponent <= MWI_EXPONENT_MAX &&
               ascii_ok(o->unit, sizeof(o->unit), 0x21) &&
               (unsigned)o->status <= MW_MEAS_TEST_DATA && source_ok(o->source, sizeof(o->source));
    }
    case MW_MSG_ALARM: {
        const mw_alarm_t *a = &m->u.alarm;
        return (unsigned)a->priority <= MW_ALARM_HIGH && (unsigned)a->state <= MW_ALARM_LATCHED &&
               ascii_ok(a->text, sizeof(a->text), 0x20) && source_ok(a->source, sizeof(a->source));
    }
    case MW_MSG_STATUS:
        return m->u.status.battery_pct <= 100;
    case MW_MSG_COMMAND_RESULT:
        return m->u.command_result.command_id != 0 &&
               (unsigned)m->u.command_result.status <= MW_CMD_FAILED &&
               ascii_ok(m->u.command_result.detail, sizeof(m->u.command_result.detail), 0x20);
    case MW_MSG_GAP: {
        /* A gap record always reports at least one message; where the numbers are known they
         * form a range. Its own priority is the device's choice (the SDK sends it as an alarm);
         * the priority it reports is that of the lost messages (0: unknown). */
        const mw_gap_t *g = &m->u.gap;
        return g->count != 0 && g->priority <= MW_PRIORITY_ALARM &&
               (g->reason == MW_GAP_EVICTED || g->reason == MW_GAP_CORRUPT) &&
               g->first_seq <= g->last_seq && (g->first_seq != 0 || g->last_seq == 0);
    }
    case MW_MSG_UNKNOWN:
    default:
        /* Nothing this version cannot describe is ever sent. */
        return false;
    }
}

mw_err mwi_message_check(const mw_message_t *m)
{
    if (m == NULL || !message_ok(m)) {
        return MW_EINVAL;
    }
    return MW_OK;
}

/* Each payload's fields, named alike in message.h and in the generated structs, listed once so
 * that encoding and decoding cannot drift apart: N(field) a number or bool, copied as it is;
 * E(field, wire type, message type) an enum, cast each way; S(field) a string, whose arrays
 * have one size on both sides (asserted above). */
/* clang-format off */
#define OBSERVATION_FIELDS(N, E, S)                                                                \
    N(mdc_code)                                                                                    \
    N(mantissa)                                                                                    \
    N(exponent)                                                                                    \
    S(unit)                                                                                        \
    E(status, medwire_v1_MeasurementStatus, mw_meas_status)                                        \
    N(time_ms)
#define ALARM_FIELDS(N, E, S)                                                                      \
    N(mdc_code)                                                                                    \
    E(priority, medwire_v1_AlarmPriority, mw_alarm_priority)                                       \
    E(state, medwire_v1_AlarmState, mw_alarm_state)                                                \
    N(time_ms)                                                                                     \
    S(text)
#define STATUS_FIELDS(N, E, S)                                                                     \
    N(battery_pct)                                                                                 \
    N(on_mains)                                                                                    \
    N(uptime_s)                                                                                    \
    N(queue_depth)
#define COMMAND_RESULT_FIELDS(N, E, S)                                                             \
    N(command_id)                                                                                  \
    E(status, medwire_v1_CommandStatus, mw_command_status)                                         \
    S(detail)
#define GAP_FIELDS(N, E, S)                                                                        \
    E(priority, medwire_v1_Priority, unsigned)                                                     \
    E(reason, medwire_v1_GapReason, mw_gap_reason)                                                 \
    N(count)                                                                                       \
    N(first_seq)                                                                                   \
    N(last_seq)
/* clang-format on */

/* The payloads: X(message type, member of mw_message_t.u and of the Envelope's payload (which
 * also names its tag), wire struct, message struct, fields). */
#define PAYLOADS(X)                                                                                \
    X(MW_MSG_OBSERVATION, observation, medwire_v1_Observation, mw_observation_t,                   \
      OBSERVATION_FIELDS)                                                                          \
    X(MW_MSG_ALARM, alarm, medwire_v1_Alarm, mw_alarm_t, ALARM_FIELDS)                             \
    X(MW_MSG_STATUS, status, medwire_v1_DeviceStatus, mw_device_status_t, STATUS_FIELDS)           \
    X(MW_MSG_COMMAND_RESULT, command_result, medwire_v1_CommandResult, mw_command_result_t,        \
      COMMAND_RESULT_FIELDS)                                                                       \
    X(MW_MSG_GAP, gap, medwire_v1_GapRecord, mw_gap_t, GAP_FIELDS)

/* Message (msg_) to wire (wire_): the wire struct is zeroed, so a string is copied up to its NUL
 * and its tail stays clean (see tail_clean). */
#define TO_WIRE_N(f)       wire_->f = msg_->f;
#define TO_WIRE_E(f, W, M) wire_->f = (W)msg_->f;
#define TO_WIRE_S(f)       memcpy(wire_->f, msg_->f, strlen(msg_->f));
#define ENCODE_CASE(kind, member, W, M, FIELDS)                                                    \
    case kind: {                                                                                   \
        const M *msg_ = &m->u.member;                                                              \
        /* NOLINTNEXTLINE(bugprone-macro-parentheses): W is a type */                              \
        W *wire_ = &out->payload.member;                                                           \
        out->which_payload = medwire_v1_Envelope_##member##_tag;                                   \
        FIELDS(TO_WIRE_N, TO_WIRE_E, TO_WIRE_S)                                                    \
        break;                                                                                     \
    }

/* Wire to message, once every string of the payload is clean. */
#define NO_N(f)
#define NO_E(f, W, M)
#define CLEAN_S(f)           &&tail_clean(wire_->f, sizeof(wire_->f))
#define FROM_WIRE_N(f)       msg_->f = wire_->f;
#define FROM_WIRE_E(f, W, M) msg_->f = (M)wire_->f;
#define FROM_WIRE_S(f)       memcpy(msg_->f, wire_->f, sizeof(msg_->f));
#define DECODE_CASE(kind, member, W, M, FIELDS)                                                    \
    case medwire_v1_Envelope_##member##_tag: {                                                     \
        const W *wire_ = &e->payload.member;                                                       \
        /* NOLINTNEXTLINE(bugprone-macro-parentheses): M is a type */                              \
        M *msg_ = &out->u.member;                                                                  \
        if (!(true FIELDS(NO_N, NO_E, CLEAN_S))) {                                                 \
            return MW_EDECODE;                                                                     \
        }                                                                                          \
        out->type = kind;                                                                          \
        FIELDS(FROM_WIRE_N, FROM_WIRE_E, FROM_WIRE_S)                                              \
        break;                                                                                     \
    }

/* The originating device behind a bridge travels in the Envelope, beside the payload it
 * qualifies; the application finds it in the payloads that may carry one (observations and
 * alarms). NULL for the other kinds. */
static char *source_of(mw_message_t *m)
{
    switch (m->type) {
    case MW_MSG_OBSERVATION:
        return m->u.observation.source;
    case MW_MSG_ALARM:
        return m->u.alarm.source;
    default:
        return NULL;
    }
}

mw_err mwi_envelope_from_message(const mw_message_t *m, medwire_v1_Envelope *out)
{
    if (m == NULL || out == NULL || !message_ok(m)) {
        return MW_EINVAL;
    }
    /* Zeroing first keeps the string tails clean (see tail_clean) and unused fields at their
     * proto3 default, which is not sent at all. */
    memset(out, 0, sizeof(*out));
    out->version = MWI_PROTOCOL_VERSION;
    memcpy(out->device_id, m->device_id, strlen(m->device_id));
    out->seq = m->seq;
    out->device_time_ms = m->device_time_ms;
    out->time_trust = m->time_synced ? medwire_v1_TimeTrust_TIME_SYNCHRONISED
                                     : medwire_v1_TimeTrust_TIME_UNSYNCHRONISED;
    out->priority = (medwire_v1_Priority)m->priority;
    out->possible_duplicate = m->possible_duplicate;
    switch (m->type) {
        PAYLOADS(ENCODE_CASE)
    default:
        return MW_EINVAL; /* message_ok lets no other type through */
    }
    /* Only observations and alarms have a source; message_ok checked it is terminated. */
    if (m->type == MW_MSG_OBSERVATION) {
        memcpy(out->source, m->u.observation.source, strlen(m->u.observation.source));
    } else if (m->type == MW_MSG_ALARM) {
        memcpy(out->source, m->u.alarm.source, strlen(m->u.alarm.source));
    }
    return MW_OK;
}

mw_err mwi_message_from_envelope(const medwire_v1_Envelope *e, mw_message_t *out)
{
    if (e == NULL || out == NULL) {
        return MW_EINVAL;
    }
    /* Version first: a v2 envelope may legitimately break every other rule below, and the
     * peer should learn that the version is the problem. */
    if (e->version != MWI_PROTOCOL_VERSION) {
        return MW_EVERSION;
    }
    if (!tail_clean(e->device_id, sizeof(e->device_id)) ||
        !tail_clean(e->source, sizeof(e->source)) || !source_ok(e->source, sizeof(e->source)) ||
        (unsigned)e->time_trust > medwire_v1_TimeTrust_TIME_SYNCHRONISED) {
        return MW_EDECODE;
    }
    memset(out, 0, sizeof(*out));
    memcpy(out->device_id, e->device_id, sizeof(out->device_id));
    out->seq = e->seq;
    out->device_time_ms = e->device_time_ms;
    out->time_synced = e->time_trust == medwire_v1_TimeTrust_TIME_SYNCHRONISED;
    out->priority = (mw_priority)e->priority;
    out->possible_duplicate = e->possible_duplicate;
    switch (e->which_payload) {
        PAYLOADS(DECODE_CASE)
    default:
        /* A payload kind from a later v1.x (fields 14-19): nanopb skipped it. The header must
         * still be sound, since the gateway acks and journals it by (device, seq). */
        out->type = MW_MSG_UNKNOWN;
        break;
    }
    if (e->source[0] != '\0' && out->type != MW_MSG_UNKNOWN) {
        /* A source on a payload without one could only be delivered as the bridge's own. */
        char *dst = source_of(out);
        if (dst == NULL) {
            return MW_EDECODE;
        }
        memcpy(dst, e->source, sizeof(e->source));
    }
    if (out->type == MW_MSG_UNKNOWN) {
        mw_message_t probe = *out;
        /* Check the header with a stand-in payload that is always valid. */
        probe.type = MW_MSG_STATUS;
        return message_ok(&probe) ? MW_OK : MW_EDECODE;
    }
    return message_ok(out) ? MW_OK : MW_EDECODE;
}

/* Appends one message as Batch field 1 if it fits in what is left of the stream, leaving the
 * stream untouched otherwise. *fits tells the two outcomes apart. */
static MW_NODISCARD mw_err append_envelope(pb_ostream_t *s, const mw_message_t *m,
                                           uint64_t low_water, bool *fits)
{
    medwire_v1_Envelope env;
    uint8_t body[medwire_v1_Envelope_size];
    pb_ostream_t bs = pb_ostream_from_buffer(body, sizeof body);
    size_t need;
    mw_err err;

    *fits = false;
    err = mwi_envelope_from_message(m, &env);
    if (err != MW_OK) {
        return err;
    }
    env.low_water = low_water;
    /* Encoded once, beside the batch: pb_get_encoded_size and pb_encode_submessage would each
     * encode it again (three passes; the encoder was most of a device's CPU per message). */
    if (!pb_encode(&bs, medwire_v1_Envelope_fields, &env)) {
        return MW_EINTERNAL;
    }
    /* Key (1 byte), length varint (1 or 2 bytes: an envelope is at most medwire_v1_Envelope_size),
     * body. Checked before writing so that a message that does not fit leaves no partial bytes. */
    need = (bs.bytes_written < 128 ? 2u : 3u) + bs.bytes_written;
    if (need > s->max_size - s->bytes_written) {
        return MW_OK;
    }
    if (!pb_encode_tag(s, PB_WT_STRING, medwire_v1_Batch_envelopes_tag) ||
        !pb_encode_varint(s, bs.bytes_written) || !pb_write(s, body, bs.bytes_written)) {
        return MW_EINTERNAL;
    }
    *fits = true;
    return MW_OK;
}
_Static_assert(medwire_v1_Envelope_size < 16384, "envelope length varint fits in 2 bytes");

/* Batch.space: key 0x11 (field 2, fixed64) and 8 bytes, after the envelopes. */
#define SPACE_FIELD_LEN 9u

/* Shared by both encoders: exactly one of msgs and ptrs is set. */
static MW_NODISCARD mw_err batch_encode(const mw_message_t *msgs, const mw_message_t *const *ptrs,
                                        size_t n, const mwi_batch_head *h, uint8_t *out,
                                        size_t cap, size_t *out_len, size_t *out_count)
{
    pb_ostream_t s;
    size_t i;
    size_t tail = h->space != 0 ? SPACE_FIELD_LEN : 0;

    if (out_len == NULL || out_count == NULL) {
        return MW_EINVAL;
    }
    *out_len = 0;
    *out_count = 0;
    if (n == 0 || out == NULL) {
        return MW_EINVAL;
    }
    if (cap <= tail) {
        return MW_ENOSPC;
    }
    s = pb_ostream_from_buffer(out, cap - tail);
    /* The gateway refuses a batch of more than MWI_MAX_BATCH envelopes, so never send one. */
    for (i = 0; i < n && i < MWI_MAX_BATCH; i++) {
        const mw_message_t *m = ptrs != NULL ? ptrs[i] : &msgs[i];
        bool fits;
        mw_err err;

        if (m == NULL) {
            return MW_EINVAL;
        }
        err = append_envelope(&s, m, h->low_water, &fits);
        if (err != MW_OK) {
            *out_len = 0;
            return err;
        }
        if (!fits) {
            break;
        }
    }
    if (i == 0) {
        return MW_ENOSPC;
    }
    if (tail > 0) {
        s.max_size += tail;
        if (!pb_encode_tag(&s, PB_WT_64BIT, medwire_v1_Batch_space_tag) ||
            !pb_encode_fixed64(&s, &h->space)) {
            return MW_EINTERNAL;
        }
    }
    *out_len = s.bytes_written;
    *out_count = i;
    return MW_OK;
}

mw_err mwi_batch_encode(const mw_message_t *msgs, size_t n, uint64_t low_water, uint8_t *out,
                        size_t cap, size_t *out_len, size_t *out_count)
{
    mwi_batch_head h = {.low_water = low_water, .space = 0};
    if (msgs == NULL) {
        return MW_EINVAL;
    }
    return batch_encode(msgs, NULL, n, &h, out, cap, out_len, out_count);
}

mw_err mwi_batch_encode_ptrs(const mw_message_t *const *msgs, size_t n, uint64_t low_water,
                             uint8_t *out, size_t cap, size_t *out_len, size_t *out_count)
{
    mwi_batch_head h = {.low_water = low_water, .space = 0};
    return mwi_batch_encode_in(msgs, n, &h, out, cap, out_len, out_count);
}

mw_err mwi_batch_encode_in(const mw_message_t *const *msgs, size_t n, const mwi_batch_head *h,
                           uint8_t *out, size_t cap, size_t *out_len, size_t *out_count)
{
    if (msgs == NULL || h == NULL) {
        return MW_EINVAL;
    }
    return batch_encode(NULL, msgs, n, h, out, cap, out_len, out_count);
}

/* Decodes one length-delimited Envelope from s into *out. */
static MW_NODISCARD mw_err decode_envelope(pb_istream_t *s, mw_message_t *out, uint64_t *low_water)
{
    medwire_v1_Envelope env;
    pb_istream_t sub;
    bool ok;

    if (!pb_make_string_substream(s, &sub)) {
        return MW_EDECODE;
    }
    /* pb_decode zeroes every static field first, which tail_clean relies on; a string longer
     * than its array makes it fail ("string overflow") rather than write past it. */
    ok = pb_decode(&sub, medwire_v1_Envelope_fields, &env);
    if (!pb_close_string_substream(s, &sub) || !ok) {
        return MW_EDECODE;
    }
    *low_water = env.low_water;
    return mwi_message_from_envelope(&env, out);
}

mw_err mwi_batch_decode(const uint8_t *buf, size_t len, mw_message_t *out_msgs, size_t cap,
                        size_t *out_count, uint64_t *out_low_water)
{
    mwi_batch_head h;
    mw_err err;

    if (out_low_water == NULL) {
        return MW_EINVAL;
    }
    err = mwi_batch_decode_in(buf, len, out_msgs, cap, out_count, &h);
    *out_low_water = h.low_water;
    return err;
}

mw_err mwi_batch_decode_in(const uint8_t *buf, size_t len, mw_message_t *out_msgs, size_t cap,
                           size_t *out_count, mwi_batch_head *out_head)
{
    pb_istream_t s;
    size_t count = 0;
    uint64_t low_water = 0, space = 0;
    bool have_space = false;
    mw_err err = MW_OK;

    if (out_head != NULL) {
        memset(out_head, 0, sizeof(*out_head));
    }
    if (out_count == NULL || out_head == NULL) {
        return MW_EINVAL;
    }
    *out_count = 0;
    if ((buf == NULL && len > 0) || out_msgs == NULL) {
        return MW_EINVAL;
    }
    s = pb_istream_from_buffer(buf, len);
    for (;;) {
        pb_wire_type_t wt;
        uint32_t tag;
        bool eof;
        uint64_t lw;

        if (!pb_decode_tag(&s, &wt, &tag, &eof)) {
            if (eof) {
                break;
            }
            err = MW_EDECODE;
            goto out;
        }
        if (tag == 0) {
            err = MW_EDECODE;
            goto out;
        }
        if (tag == medwire_v1_Batch_space_tag) {
            /* Once, as fixed64: a batch that names two spaces is spliced or forged. */
            if (wt != PB_WT_64BIT || have_space || !pb_decode_fixed64(&s, &space)) {
                err = MW_EDECODE;
                goto out;
            }
            have_space = true;
            continue;
        }
        if (tag != medwire_v1_Batch_envelopes_tag) {
            /* A later v1.x may add Batch fields; v1 ignores them, as protobuf intends. */
            if (!pb_skip_field(&s, wt)) {
                err = MW_EDECODE;
                goto out;
            }
            continue;
        }
        if (wt != PB_WT_STRING || count >= MWI_MAX_BATCH) {
            err = MW_EDECODE;
            goto out;
        }
        if (count >= cap) {
            err = MW_ENOSPC;
            goto out;
        }
        err = decode_envelope(&s, &out_msgs[count], &lw);
        if (err != MW_OK) {
            goto out;
        }
        /* One batch, one declaration of what the device still holds: envelopes that disagree
         * would let a forged or spliced batch move the gateway's replay window. */
        if (count > 0 && lw != low_water) {
            err = MW_EDECODE;
            goto out;
        }
        low_water = lw;
        count++;
    }
    if (count == 0) {
        /* Our encoder never sends an empty batch, and it would declare no low-water mark. */
        err = MW_EDECODE;
        goto out;
    }
    /* Every message carries the space it was numbered in: the sink and the journal key on
     * (device, space, seq). */
    for (size_t i = 0; i < count; i++) {
        out_msgs[i].space = space;
    }
    *out_count = count;
    out_head->low_water = low_water;
    out_head->space = space;
out:
    return err;
}

mw_err mwi_ack_encode(const mwi_seq_range *ranges, size_t n, uint8_t *out, size_t cap,
                      size_t *out_len)
{
    return mwi_ack_encode_cmds(ranges, n, NULL, 0, out, cap, out_len);
}

mw_err mwi_ack_encode_cmds(const mwi_seq_range *ranges, size_t n, const mw_command_t *cmds,
                           size_t ncmds, uint8_t *out, size_t cap, size_t *out_len)
{
    return mwi_ack_encode_full(ranges, n, cmds, ncmds, MWI_RESYNC_NONE, 0, out, cap, out_len);
}

static bool command_to_pb(const mw_command_t *in, medwire_v1_Command *c)
{
    if (in->id == 0) {
        return false;
    }
    c->id = in->id;
    c->expires_ms = in->expires_ms;
    switch (in->kind) {
    case MW_CMD_SET_INTERVAL:
        c->which_kind = medwire_v1_Command_set_interval_tag;
        c->kind.set_interval.interval_ms = in->u.interval_ms;
        return true;
    case MW_CMD_ACK_ALARM:
        c->which_kind = medwire_v1_Command_ack_alarm_tag;
        c->kind.ack_alarm.alarm_seq = in->u.alarm_seq;
        return true;
    case MW_CMD_ROTATE_KEYS:
        c->which_kind = medwire_v1_Command_rotate_keys_tag;
        return true;
    default:
        return false;
    }
}

/* A kind this version does not know comes out as kind 0, which the device answers with
 * "unsupported". */
static void command_from_pb(const medwire_v1_Command *c, mw_command_t *m)
{
    memset(m, 0, sizeof(*m));
    m->id = c->id;
    m->expires_ms = c->expires_ms;
    switch (c->which_kind) {
    case medwire_v1_Command_set_interval_tag:
        m->kind = MW_CMD_SET_INTERVAL;
        m->u.interval_ms = c->kind.set_interval.interval_ms;
        break;
    case medwire_v1_Command_ack_alarm_tag:
        m->kind = MW_CMD_ACK_ALARM;
        m->u.alarm_seq = c->kind.ack_alarm.alarm_seq;
        break;
    case medwire_v1_Command_rotate_keys_tag:
        m->kind = MW_CMD_ROTATE_KEYS;
        break;
    default:
        m->kind = (mw_command_kind)0;
        break;
    }
}

mw_err mwi_command_encode(const mw_command_t *cmd, uint8_t *out, size_t cap, size_t *out_len)
{
    medwire_v1_Command c;
    pb_ostream_t s;

    if (cmd == NULL || out == NULL || out_len == NULL) {
        return MW_EINVAL;
    }
    *out_len = 0;
    memset(&c, 0, sizeof(c));
    if (!command_to_pb(cmd, &c)) {
        return MW_EINVAL;
    }
    s = pb_ostream_from_buffer(out, cap);
    if (!pb_encode(&s, medwire_v1_Command_fields, &c)) {
        return MW_ENOSPC;
    }
    *out_len = s.bytes_written;
    return MW_OK;
}

mw_err mwi_command_decode(const uint8_t *buf, size_t len, mw_command_t *out)
{
    medwire_v1_Command c;
    pb_istream_t s;

    if ((buf == NULL && len > 0) || out == NULL) {
        return MW_EINVAL;
    }
    s = pb_istream_from_buffer(buf, len);
    if (!pb_decode(&s, medwire_v1_Command_fields, &c) || c.id == 0) {
        return MW_EDECODE;
    }
    command_from_pb(&c, out);
    return MW_OK;
}

mw_err mwi_ack_encode_full(const mwi_seq_range *ranges, size_t n, const mw_command_t *cmds,
                           size_t ncmds, mwi_resync resync, uint64_t gateway_time_ms, uint8_t *out,
                           size_t cap, size_t *out_len)
{
    medwire_v1_Ack ack;
    pb_ostream_t s;
    size_t i;

    if (out_len != NULL) {
        *out_len = 0;
    }
    if (out_len == NULL || (ranges == NULL && n > 0) || (out == NULL && cap > 0) ||
        n > MWI_MAX_ACK_RANGES || (cmds == NULL && ncmds > 0) || ncmds > MWI_MAX_COMMANDS) {
        return MW_EINVAL;
    }
    memset(&ack, 0, sizeof(ack));
    for (i = 0; i < n; i++) {
        /* Acking seq 0 or a reversed range is a bug that could make a device drop data. */
        if (ranges[i].first == 0 || ranges[i].first > ranges[i].last) {
            return MW_EINVAL;
        }
        ack.acked[i].first = ranges[i].first;
        ack.acked[i].last = ranges[i].last;
    }
    ack.acked_count = (pb_size_t)n;
    for (i = 0; i < ncmds; i++) {
        if (!command_to_pb(&cmds[i], &ack.commands[i])) {
            return MW_EINVAL;
        }
    }
    ack.commands_count = (pb_size_t)ncmds;
    if ((unsigned)resync > MWI_RESYNC_RETIRED) {
        return MW_EINVAL;
    }
    ack.resync = (medwire_v1_Resync)resync;
    ack.gateway_time_ms = gateway_time_ms;
    s = pb_ostream_from_buffer(out, cap);
    if (!pb_encode(&s, medwire_v1_Ack_fields, &ack)) {
        /* With valid input, the only way a buffer stream fails is running out of room. */
        return MW_ENOSPC;
    }
    *out_len = s.bytes_written;
    return MW_OK;
}

mw_err mwi_ack_decode(const uint8_t *buf, size_t len, mwi_seq_range *out, size_t cap, size_t *out_n)
{
    return mwi_ack_decode_cmds(buf, len, out, cap, out_n, NULL, 0, NULL);
}

mw_err mwi_ack_decode_cmds(const uint8_t *buf, size_t len, mwi_seq_range *out, size_t cap,
                           size_t *out_n, mw_command_t *cmds, size_t cmdcap, size_t *out_ncmds)
{
    return mwi_ack_decode_full(buf, len, out, cap, out_n, cmds, cmdcap, out_ncmds, NULL, NULL);
}

mw_err mwi_ack_decode_full(const uint8_t *buf, size_t len, mwi_seq_range *out, size_t cap,
                           size_t *out_n, mw_command_t *cmds, size_t cmdcap, size_t *out_ncmds,
                           mwi_resync *out_resync, uint64_t *out_gateway_time_ms)
{
    medwire_v1_Ack ack;
    pb_istream_t s;
    size_t i;

    if (out_n == NULL) {
        return MW_EINVAL;
    }
    *out_n = 0;
    if (out_ncmds != NULL) {
        *out_ncmds = 0;
    }
    if (out_resync != NULL) {
        *out_resync = MWI_RESYNC_NONE;
    }
    if (out_gateway_time_ms != NULL) {
        *out_gateway_time_ms = 0;
    }
    if ((buf == NULL && len > 0) || (out == NULL && cap > 0)) {
        return MW_EINVAL;
    }
    s = pb_istream_from_buffer(buf, len);
    /* More than MWI_MAX_ACK_RANGES ranges fails here ("array overflow"). */
    if (!pb_decode(&s, medwire_v1_Ack_fields, &ack)) {
        return MW_EDECODE;
    }
    for (i = 0; i < ack.acked_count; i++) {
        /* A device deletes what is acked: a range it cannot make sense of must not be half
         * applied, so the whole ack is refused. */
        if (ack.acked[i].first == 0 || ack.acked[i].first > ack.acked[i].last) {
            return MW_EDECODE;
        }
    }
    if (ack.acked_count > cap) {
        return MW_ENOSPC;
    }
    for (i = 0; i < ack.commands_count; i++) {
        if (ack.commands[i].id == 0) {
            return MW_EDECODE;
        }
    }
    /* A reason from a later version still asks for a resynchronisation. */
    if (out_resync != NULL && ack.resync != medwire_v1_Resync_RESYNC_NONE) {
        *out_resync = (unsigned)ack.resync <= MWI_RESYNC_RETIRED ? (mwi_resync)ack.resync
                                                                  : MWI_RESYNC_UNKNOWN;
    }
    for (i = 0; i < ack.acked_count; i++) {
        out[i].first = ack.acked[i].first;
        out[i].last = ack.acked[i].last;
    }
    *out_n = ack.acked_count;
    if (out_gateway_time_ms != NULL) {
        *out_gateway_time_ms = ack.gateway_time_ms;
    }
    /* Commands are optional for the caller; a kind this version does not know comes out as
     * kind 0, which the device answers with "unsupported". */
    for (i = 0; cmds != NULL && out_ncmds != NULL && i < ack.commands_count && i < cmdcap; i++) {
        command_from_pb(&ack.commands[i], &cmds[i]);
        *out_ncmds = i + 1;
    }
    return MW_OK;
}

/* Adds seq to the sorted, disjoint, non-adjacent ranges out[0..*n), merging where it touches. */
static void add_seq(uint64_t seq, mwi_seq_range *out, size_t *n, size_t cap)
{
    size_t i = 0;

    /* First range that does not end before seq - 1. seq >= 1 and every first >= 1, so neither
     * seq - 1 nor first - 1 wraps. */
    while (i < *n && out[i].last < seq - 1) {
        i++;
    }
    if (i < *n && seq >= out[i].first - 1) {
        /* seq is inside out[i] or touches it on one side. */
        if (seq < out[i].first) {
            out[i].first = seq;
        } else if (seq > out[i].last) {
            out[i].last = seq;
            /* Growing upwards can close the gap to the next range. */
            if (i + 1 < *n && out[i + 1].first - 1 == seq) {
                out[i].last = out[i + 1].last;
                memmove(&out[i + 1], &out[i + 2], (*n - i - 2) * sizeof(out[0]));
                (*n)--;
            }
        }
        return;
    }
    if (*n == cap) {
        return; /* no room: leave seq unacked (see codec.h) */
    }
    memmove(&out[i + 1], &out[i], (*n - i) * sizeof(out[0]));
    out[i].first = seq;
    out[i].last = seq;
    (*n)++;
}

size_t mwi_ranges_from_seqs(const uint64_t *seqs, size_t n, mwi_seq_range *out, size_t cap)
{
    size_t count = 0;
    size_t i;

    if (seqs == NULL || out == NULL) {
        return 0;
    }
    for (i = 0; i < n; i++) {
        if (seqs[i] != 0) {
            add_seq(seqs[i], out, &count, cap);
        }
    }
    return count;
}
