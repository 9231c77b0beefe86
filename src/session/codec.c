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
               ascii_ok(o->unit, sizeof(o->unit), 0x21) && (unsigned)o->status <= MW_MEAS_TEST_DATA;
    }
    case MW_MSG_ALARM: {
        const mw_alarm_t *a = &m->u.alarm;
        return (unsigned)a->priority <= MW_ALARM_HIGH && (unsigned)a->state <= MW_ALARM_LATCHED &&
               ascii_ok(a->text, sizeof(a->text), 0x20);
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
    switch (m->type) {
    case MW_MSG_OBSERVATION: {
        const mw_observation_t *o = &m->u.observation;
        medwire_v1_Observation *p = &out->payload.observation;
        out->which_payload = medwire_v1_Envelope_observation_tag;
        p->mdc_code = o->mdc_code;
        p->mantissa = o->mantissa;
        p->exponent = o->exponent;
        memcpy(p->unit, o->unit, strlen(o->unit));
        p->status = (medwire_v1_MeasurementStatus)o->status;
        p->time_ms = o->time_ms;
        break;
    }
    case MW_MSG_ALARM: {
        const mw_alarm_t *a = &m->u.alarm;
        medwire_v1_Alarm *p = &out->payload.alarm;
        out->which_payload = medwire_v1_Envelope_alarm_tag;
        p->mdc_code = a->mdc_code;
        p->priority = (medwire_v1_AlarmPriority)a->priority;
        p->state = (medwire_v1_AlarmState)a->state;
        p->time_ms = a->time_ms;
        memcpy(p->text, a->text, strlen(a->text));
        break;
    }
    case MW_MSG_COMMAND_RESULT: {
        const mw_command_result_t *r = &m->u.command_result;
        medwire_v1_CommandResult *p = &out->payload.command_result;
        out->which_payload = medwire_v1_Envelope_command_result_tag;
        p->command_id = r->command_id;
        p->status = (medwire_v1_CommandStatus)r->status;
        memcpy(p->detail, r->detail, strlen(r->detail));
        break;
    }
    case MW_MSG_GAP: {
        const mw_gap_t *g = &m->u.gap;
        medwire_v1_GapRecord *p = &out->payload.gap;
        out->which_payload = medwire_v1_Envelope_gap_tag;
        p->priority = (medwire_v1_Priority)g->priority;
        p->reason = (medwire_v1_GapReason)g->reason;
        p->count = g->count;
        p->first_seq = g->first_seq;
        p->last_seq = g->last_seq;
        break;
    }
    case MW_MSG_STATUS:
    default: {
        const mw_device_status_t *s = &m->u.status;
        medwire_v1_DeviceStatus *p = &out->payload.status;
        out->which_payload = medwire_v1_Envelope_status_tag;
        p->battery_pct = s->battery_pct;
        p->on_mains = s->on_mains;
        p->uptime_s = s->uptime_s;
        p->queue_depth = s->queue_depth;
        break;
    }
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
        (unsigned)e->time_trust > medwire_v1_TimeTrust_TIME_SYNCHRONISED) {
        return MW_EDECODE;
    }
    memset(out, 0, sizeof(*out));
    memcpy(out->device_id, e->device_id, sizeof(out->device_id));
    out->seq = e->seq;
    out->device_time_ms = e->device_time_ms;
    out->time_synced = e->time_trust == medwire_v1_TimeTrust_TIME_SYNCHRONISED;
    out->priority = (mw_priority)e->priority;
    switch (e->which_payload) {
    case medwire_v1_Envelope_observation_tag: {
        const medwire_v1_Observation *p = &e->payload.observation;
        mw_observation_t *o = &out->u.observation;
        if (!tail_clean(p->unit, sizeof(p->unit))) {
            return MW_EDECODE;
        }
        out->type = MW_MSG_OBSERVATION;
        o->mdc_code = p->mdc_code;
        o->mantissa = p->mantissa;
        o->exponent = p->exponent;
        memcpy(o->unit, p->unit, sizeof(o->unit));
        o->status = (mw_meas_status)p->status;
        o->time_ms = p->time_ms;
        break;
    }
    case medwire_v1_Envelope_alarm_tag: {
        const medwire_v1_Alarm *p = &e->payload.alarm;
        mw_alarm_t *a = &out->u.alarm;
        if (!tail_clean(p->text, sizeof(p->text))) {
            return MW_EDECODE;
        }
        out->type = MW_MSG_ALARM;
        a->mdc_code = p->mdc_code;
        a->priority = (mw_alarm_priority)p->priority;
        a->state = (mw_alarm_state)p->state;
        a->time_ms = p->time_ms;
        memcpy(a->text, p->text, sizeof(a->text));
        break;
    }
    case medwire_v1_Envelope_status_tag: {
        const medwire_v1_DeviceStatus *p = &e->payload.status;
        out->type = MW_MSG_STATUS;
        out->u.status.battery_pct = p->battery_pct;
        out->u.status.on_mains = p->on_mains;
        out->u.status.uptime_s = p->uptime_s;
        out->u.status.queue_depth = p->queue_depth;
        break;
    }
    case medwire_v1_Envelope_command_result_tag: {
        const medwire_v1_CommandResult *p = &e->payload.command_result;
        mw_command_result_t *r = &out->u.command_result;
        if (!tail_clean(p->detail, sizeof(p->detail))) {
            return MW_EDECODE;
        }
        out->type = MW_MSG_COMMAND_RESULT;
        r->command_id = p->command_id;
        r->status = (mw_command_status)p->status;
        memcpy(r->detail, p->detail, sizeof(r->detail));
        break;
    }
    case medwire_v1_Envelope_gap_tag: {
        const medwire_v1_GapRecord *p = &e->payload.gap;
        out->type = MW_MSG_GAP;
        out->u.gap.priority = (unsigned)p->priority;
        out->u.gap.reason = (mw_gap_reason)p->reason;
        out->u.gap.count = p->count;
        out->u.gap.first_seq = p->first_seq;
        out->u.gap.last_seq = p->last_seq;
        break;
    }
    default:
        /* A payload kind from a later v1.x (fields 14-19): nanopb skipped it. The header must
         * still be sound, since the gateway acks and journals it by (device, seq). */
        out->type = MW_MSG_UNKNOWN;
        break;
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

/* Shared by both encoders: exactly one of msgs and ptrs is set. */
static MW_NODISCARD mw_err batch_encode(const mw_message_t *msgs, const mw_message_t *const *ptrs,
                                        size_t n, uint64_t low_water, uint8_t *out, size_t cap,
                                        size_t *out_len, size_t *out_count)
{
    pb_ostream_t s;
    size_t i;

    if (out_len == NULL || out_count == NULL) {
        return MW_EINVAL;
    }
    *out_len = 0;
    *out_count = 0;
    if (n == 0 || out == NULL) {
        return MW_EINVAL;
    }
    s = pb_ostream_from_buffer(out, cap);
    /* The gateway refuses a batch of more than MWI_MAX_BATCH envelopes, so never send one. */
    for (i = 0; i < n && i < MWI_MAX_BATCH; i++) {
        const mw_message_t *m = ptrs != NULL ? ptrs[i] : &msgs[i];
        bool fits;
        mw_err err;

        if (m == NULL) {
            return MW_EINVAL;
        }
        err = append_envelope(&s, m, low_water, &fits);
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
    *out_len = s.bytes_written;
    *out_count = i;
    return MW_OK;
}

mw_err mwi_batch_encode(const mw_message_t *msgs, size_t n, uint64_t low_water, uint8_t *out,
                        size_t cap, size_t *out_len, size_t *out_count)
{
    if (msgs == NULL) {
        return MW_EINVAL;
    }
    return batch_encode(msgs, NULL, n, low_water, out, cap, out_len, out_count);
}

mw_err mwi_batch_encode_ptrs(const mw_message_t *const *msgs, size_t n, uint64_t low_water,
                             uint8_t *out, size_t cap, size_t *out_len, size_t *out_count)
{
    if (msgs == NULL) {
        return MW_EINVAL;
    }
    return batch_encode(NULL, msgs, n, low_water, out, cap, out_len, out_count);
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
    pb_istream_t s;
    size_t count = 0;
    uint64_t low_water = 0;
    mw_err err = MW_OK;

    if (out_count == NULL || out_low_water == NULL) {
        return MW_EINVAL;
    }
    *out_count = 0;
    *out_low_water = 0;
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
    *out_count = count;
    *out_low_water = low_water;
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
    medwire_v1_Ack ack;
    pb_ostream_t s;
    size_t i;

    if (out_len == NULL) {
        return MW_EINVAL;
    }
    *out_len = 0;
    if ((ranges == NULL && n > 0) || (out == NULL && cap > 0) || n > MWI_MAX_ACK_RANGES ||
        (cmds == NULL && ncmds > 0) || ncmds > MWI_MAX_COMMANDS) {
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
        medwire_v1_Command *c = &ack.commands[i];
        if (cmds[i].id == 0) {
            return MW_EINVAL;
        }
        c->id = cmds[i].id;
        c->expires_ms = cmds[i].expires_ms;
        switch (cmds[i].kind) {
        case MW_CMD_SET_INTERVAL:
            c->which_kind = medwire_v1_Command_set_interval_tag;
            c->kind.set_interval.interval_ms = cmds[i].u.interval_ms;
            break;
        case MW_CMD_ACK_ALARM:
            c->which_kind = medwire_v1_Command_ack_alarm_tag;
            c->kind.ack_alarm.alarm_seq = cmds[i].u.alarm_seq;
            break;
        case MW_CMD_ROTATE_KEYS:
            c->which_kind = medwire_v1_Command_rotate_keys_tag;
            break;
        default:
            return MW_EINVAL;
        }
    }
    ack.commands_count = (pb_size_t)ncmds;
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
    for (i = 0; i < ack.acked_count; i++) {
        out[i].first = ack.acked[i].first;
        out[i].last = ack.acked[i].last;
    }
    *out_n = ack.acked_count;
    /* Commands are optional for the caller; a kind this version does not know comes out as
     * kind 0, which the device answers with "unsupported". */
    for (i = 0; cmds != NULL && out_ncmds != NULL && i < ack.commands_count && i < cmdcap; i++) {
        const medwire_v1_Command *c = &ack.commands[i];
        mw_command_t *m = &cmds[i];
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
