/* SPDX-License-Identifier: Apache-2.0 */
/* message_json.c -- one message as one JSON object (RFC 8259), with exact decimal values. */
#include <string.h>

#include "medwire/audit.h"
#include "medwire/message.h"

#include "core/json.h"
#include "core/names.h"

/* An enum value's code in @p t (names.h); NULL outside the enum. */
#define CODE(t, v) mwi_name_code(&mwi_##t##_names, (v))

/* A struct the codec could never have produced (a string without its NUL, an enum out of
 * range) is refused rather than written: a hospital system must not receive a guess. */
static bool well_formed(const mw_message_t *m)
{
    if (!mwi_json_terminated(m->device_id, sizeof(m->device_id)) ||
        mwi_envelope_priority(m->priority) == NULL) {
        return false;
    }
    switch (m->type) {
    case MW_MSG_OBSERVATION:
        return mwi_json_terminated(m->u.observation.unit, sizeof(m->u.observation.unit)) &&
               mwi_json_terminated(m->u.observation.source, sizeof(m->u.observation.source)) &&
               CODE(meas_status, m->u.observation.status) != NULL;
    case MW_MSG_ALARM:
        return mwi_json_terminated(m->u.alarm.text, sizeof(m->u.alarm.text)) &&
               mwi_json_terminated(m->u.alarm.source, sizeof(m->u.alarm.source)) &&
               CODE(alarm_priority, m->u.alarm.priority) != NULL &&
               CODE(alarm_state, m->u.alarm.state) != NULL;
    case MW_MSG_COMMAND_RESULT:
        return mwi_json_terminated(m->u.command_result.detail,
                                   sizeof(m->u.command_result.detail)) &&
               CODE(command_status, m->u.command_result.status) != NULL;
    case MW_MSG_GAP:
        /* The lost messages' priority may be 0, unknown. */
        return CODE(gap_reason, m->u.gap.reason) != NULL &&
               CODE(priority, m->u.gap.priority) != NULL;
    case MW_MSG_STATUS:
    case MW_MSG_UNKNOWN:
    default:
        return true;
    }
}

static void put_key(mwi_json_writer *w, const char *key)
{
    mwi_json_put_char(w, ',');
    mwi_json_put_char(w, '"');
    mwi_json_put_str(w, key);
    mwi_json_put_str(w, "\":");
}

/* The field writers: ,"key": and the value. */
static void put_key_name(mwi_json_writer *w, const char *key, const char *name)
{
    put_key(w, key);
    mwi_json_put_char(w, '"');
    mwi_json_put_str(w, name);
    mwi_json_put_char(w, '"');
}

static void put_key_u64(mwi_json_writer *w, const char *key, uint64_t v)
{
    put_key(w, key);
    mwi_json_put_u64(w, v);
}

static void put_key_i64(mwi_json_writer *w, const char *key, int64_t v)
{
    put_key(w, key);
    mwi_json_put_i64(w, v);
}

static void put_key_bool(mwi_json_writer *w, const char *key, bool v)
{
    put_key(w, key);
    mwi_json_put_str(w, v ? "true" : "false");
}

/* A string from a peer, bounded by @p size. */
static void put_key_string(mwi_json_writer *w, const char *key, const char *s, size_t size)
{
    put_key(w, key);
    mwi_json_put_json_string(w, s, size);
}

/* The originating device behind a bridge, after the payload's own fields; a device speaking
 * for itself has none, and the key is left out. */
static void put_source(mwi_json_writer *w, const char *source, size_t size)
{
    if (source[0] != '\0') {
        put_key_string(w, "source", source, size);
    }
}

/* ---- the payloads, one writer each ---- */

typedef void payload_writer(mwi_json_writer *w, const mw_message_t *m);

static void put_observation(mwi_json_writer *w, const mw_message_t *m)
{
    const mw_observation_t *o = &m->u.observation;
    put_key_u64(w, "mdc_code", o->mdc_code);
    put_key(w, "value");
    mwi_json_put_decimal(w, o->mantissa, o->exponent);
    put_key_i64(w, "mantissa", o->mantissa);
    put_key_i64(w, "exponent", o->exponent);
    put_key_string(w, "unit", o->unit, sizeof(o->unit));
    put_key_name(w, "status", CODE(meas_status, o->status));
    put_key_u64(w, "time_ms", o->time_ms);
    put_source(w, o->source, sizeof(o->source));
}

static void put_alarm(mwi_json_writer *w, const mw_message_t *m)
{
    const mw_alarm_t *a = &m->u.alarm;
    put_key_u64(w, "mdc_code", a->mdc_code);
    /* "priority" is the envelope's delivery priority; this is IEC 60601-1-8's. */
    put_key_name(w, "alarm_priority", CODE(alarm_priority, a->priority));
    put_key_name(w, "state", CODE(alarm_state, a->state));
    put_key_u64(w, "time_ms", a->time_ms);
    put_key_string(w, "text", a->text, sizeof(a->text));
    put_source(w, a->source, sizeof(a->source));
}

static void put_status(mwi_json_writer *w, const mw_message_t *m)
{
    const mw_device_status_t *s = &m->u.status;
    put_key_u64(w, "battery_pct", s->battery_pct);
    put_key_bool(w, "on_mains", s->on_mains);
    put_key_u64(w, "uptime_s", s->uptime_s);
    put_key_u64(w, "queue_depth", s->queue_depth);
}

static void put_command_result(mwi_json_writer *w, const mw_message_t *m)
{
    const mw_command_result_t *r = &m->u.command_result;
    put_key_u64(w, "command_id", r->command_id);
    put_key_name(w, "status", CODE(command_status, r->status));
    put_key_string(w, "detail", r->detail, sizeof(r->detail));
}

static void put_link(mwi_json_writer *w, const mw_message_t *m)
{
    put_key_u64(w, "silent_ms", m->u.link.silent_ms);
    put_key_u64(w, "last_seen_ms", m->u.link.last_seen_ms);
}

static void put_gap(mwi_json_writer *w, const mw_message_t *m)
{
    const mw_gap_t *g = &m->u.gap;
    put_key_name(w, "lost_priority", CODE(priority, g->priority));
    put_key_name(w, "reason", CODE(gap_reason, g->reason));
    put_key_u64(w, "count", g->count);
    put_key_u64(w, "first_seq", g->first_seq);
    put_key_u64(w, "last_seq", g->last_seq);
}

/* The writer of each payload kind. MW_MSG_UNKNOWN has none: the header alone still tells a
 * hospital system that something arrived, from whom, and in what order. */
static payload_writer *const PAYLOADS[] = {
    [MW_MSG_OBSERVATION] = put_observation,
    [MW_MSG_ALARM] = put_alarm,
    [MW_MSG_STATUS] = put_status,
    [MW_MSG_COMMAND_RESULT] = put_command_result,
    [MW_MSG_COMM_LOSS] = put_link,
    [MW_MSG_COMM_RESTORED] = put_link,
    [MW_MSG_GAP] = put_gap,
};

MW_API mw_err mw_message_to_json(const mw_message_t *msg, char *out, size_t out_size,
                                 size_t *out_len)
{
    mwi_json_writer w;

    if (!mwi_json_start(&w, msg, out, out_size, out_len) || !well_formed(msg)) {
        return MW_EINVAL;
    }
    mwi_json_put_str(&w, "{\"device\":");
    mwi_json_put_json_string(&w, msg->device_id, sizeof(msg->device_id));
    put_key_u64(&w, "seq", msg->seq);
    put_key_name(&w, "type", mw_msg_type_name(msg->type));
    put_key_u64(&w, "device_time_ms", msg->device_time_ms);
    put_key_bool(&w, "time_synced", msg->time_synced);
    put_key_name(&w, "priority", mwi_envelope_priority(msg->priority));
    /* (device, space, seq) names a message; a device that declares no space (0) has one
     * numbering only, and the key is left out. */
    if (msg->space != 0) {
        put_key(&w, "space");
        mwi_json_put_char(&w, '"');
        mwi_json_put_hex64(&w, msg->space);
        mwi_json_put_char(&w, '"');
    }
    if (msg->possible_duplicate) {
        put_key_bool(&w, "possible_duplicate", true);
    }
    if ((unsigned)msg->type < sizeof PAYLOADS / sizeof PAYLOADS[0] && PAYLOADS[msg->type] != NULL) {
        PAYLOADS[msg->type](&w, msg);
    }
    mwi_json_put_char(&w, '}');
    return mwi_json_finish(&w, out_len);
}

MW_API mw_err mw_audit_to_json(const mw_audit_event_t *ev, char *out, size_t out_size,
                               size_t *out_len)
{
    mwi_json_writer w;
    if (!mwi_json_start(&w, ev, out, out_size, out_len))
        return MW_EINVAL;
    /* Strings in an audit record may come from a peer (a certificate's name):
     * they are escaped like any other, bounded by a generous limit. */
    mwi_json_put_str(&w, "{\"event\":");
    mwi_json_put_json_string(&w, ev->event ? ev->event : "", MWI_AUDIT_EVENT_MAX);
    put_key_string(&w, "peer", ev->peer ? ev->peer : "", MWI_AUDIT_PEER_MAX);
    put_key_string(&w, "device", ev->device ? ev->device : "", MW_ID_MAX + 1);
    put_key_string(&w, "reason", ev->reason ? ev->reason : "", MWI_AUDIT_REASON_MAX);
    /* A session established or closed normally is no failure: "error":"success" would read
     * as one. */
    if (ev->err != MW_OK || ev->foreign != 0) {
        put_key_string(&w, "error", mw_strerror(ev->err), MWI_AUDIT_ERROR_MAX);
        put_key_i64(&w, "code", ev->foreign);
    }
    mwi_json_put_char(&w, '}');
    return mwi_json_finish(&w, out_len);
}
