/* SPDX-License-Identifier: Apache-2.0 */
/* message_json.c -- one message as one JSON object (RFC 8259), with exact decimal values. */
#include <string.h>

#include "medwire/audit.h"
#include "medwire/message.h"

#include "core/json.h"

static const char *priority_name(mw_priority p)
{
    switch (p) {
    case MW_PRIORITY_STATUS:
        return "status";
    case MW_PRIORITY_OBSERVATION:
        return "observation";
    case MW_PRIORITY_ALARM:
        return "alarm";
    }
    return NULL;
}

static const char *meas_status_name(mw_meas_status s)
{
    switch (s) {
    case MW_MEAS_VALID:
        return "valid";
    case MW_MEAS_QUESTIONABLE:
        return "questionable";
    case MW_MEAS_INVALID:
        return "invalid";
    case MW_MEAS_UNAVAILABLE:
        return "unavailable";
    case MW_MEAS_CALIBRATING:
        return "calibrating";
    case MW_MEAS_TEST_DATA:
        return "test-data";
    }
    return NULL;
}

static const char *alarm_priority_name(mw_alarm_priority p)
{
    switch (p) {
    case MW_ALARM_INFO:
        return "info";
    case MW_ALARM_LOW:
        return "low";
    case MW_ALARM_MEDIUM:
        return "medium";
    case MW_ALARM_HIGH:
        return "high";
    }
    return NULL;
}

static const char *alarm_state_name(mw_alarm_state s)
{
    switch (s) {
    case MW_ALARM_INACTIVE:
        return "inactive";
    case MW_ALARM_ACTIVE:
        return "active";
    case MW_ALARM_ACKNOWLEDGED:
        return "acknowledged";
    case MW_ALARM_LATCHED:
        return "latched";
    }
    return NULL;
}

MW_API const char *mw_msg_type_name(mw_msg_type type)
{
    switch (type) {
    case MW_MSG_OBSERVATION:
        return "observation";
    case MW_MSG_ALARM:
        return "alarm";
    case MW_MSG_STATUS:
        return "status";
    case MW_MSG_COMMAND_RESULT:
        return "command_result";
    case MW_MSG_COMM_LOSS:
        return "communication_loss";
    case MW_MSG_COMM_RESTORED:
        return "communication_restored";
    case MW_MSG_GAP:
        return "gap";
    case MW_MSG_UNKNOWN:
        break;
    }
    return "unknown";
}

MW_API const char *mw_command_status_name(mw_command_status s)
{
    switch (s) {
    case MW_CMD_DONE: return "done";
    case MW_CMD_REFUSED_REPLAY: return "refused-replay";
    case MW_CMD_REFUSED_EXPIRED: return "refused-expired";
    case MW_CMD_UNSUPPORTED: return "unsupported";
    case MW_CMD_FAILED: return "failed";
    }
    return NULL;
}

static const char *gap_reason_name(mw_gap_reason r)
{
    switch (r) {
    case MW_GAP_EVICTED: return "evicted";
    case MW_GAP_CORRUPT: return "corrupt";
    }
    return NULL;
}

static bool terminated(const char *s, size_t size)
{
    return memchr(s, '\0', size) != NULL;
}

/* A struct the codec could never have produced (a string without its NUL, an enum out of
 * range) is refused rather than written: a hospital system must not receive a guess. */
static bool well_formed(const mw_message_t *m)
{
    if (!terminated(m->device_id, sizeof(m->device_id)) || priority_name(m->priority) == NULL) {
        return false;
    }
    switch (m->type) {
    case MW_MSG_OBSERVATION:
        return terminated(m->u.observation.unit, sizeof(m->u.observation.unit)) &&
               meas_status_name(m->u.observation.status) != NULL;
    case MW_MSG_ALARM:
        return terminated(m->u.alarm.text, sizeof(m->u.alarm.text)) &&
               alarm_priority_name(m->u.alarm.priority) != NULL &&
               alarm_state_name(m->u.alarm.state) != NULL;
    case MW_MSG_COMMAND_RESULT:
        return terminated(m->u.command_result.detail, sizeof(m->u.command_result.detail)) &&
               mw_command_status_name(m->u.command_result.status) != NULL;
    case MW_MSG_GAP:
        return gap_reason_name(m->u.gap.reason) != NULL &&
               (m->u.gap.priority == 0 || priority_name((mw_priority)m->u.gap.priority) != NULL);
    case MW_MSG_STATUS:
    case MW_MSG_UNKNOWN:
    default:
        return true;
    }
}

static void put_key(writer *w, const char *key)
{
    put_char(w, ',');
    put_char(w, '"');
    put_str(w, key);
    put_str(w, "\":");
}

static void put_key_name(writer *w, const char *key, const char *name)
{
    put_key(w, key);
    put_char(w, '"');
    put_str(w, name);
    put_char(w, '"');
}

MW_API mw_err mw_message_to_json(const mw_message_t *msg, char *out, size_t out_size,
                                 size_t *out_len)
{
    writer w = {out, out_size, 0};

    if (out_len != NULL) {
        *out_len = 0;
    }
    if (msg == NULL || (out == NULL && out_size > 0)) {
        return MW_EINVAL;
    }
    if (out_size > 0) {
        out[0] = '\0';
    }
    if (!well_formed(msg)) {
        return MW_EINVAL;
    }
    put_str(&w, "{\"device\":");
    put_json_string(&w, msg->device_id, sizeof(msg->device_id));
    put_key(&w, "seq");
    put_u64(&w, msg->seq);
    put_key_name(&w, "type", mw_msg_type_name(msg->type));
    put_key(&w, "device_time_ms");
    put_u64(&w, msg->device_time_ms);
    put_key(&w, "time_synced");
    put_str(&w, msg->time_synced ? "true" : "false");
    put_key_name(&w, "priority", priority_name(msg->priority));
    switch (msg->type) {
    case MW_MSG_OBSERVATION: {
        const mw_observation_t *o = &msg->u.observation;
        put_key(&w, "mdc_code");
        put_u64(&w, o->mdc_code);
        put_key(&w, "value");
        put_decimal(&w, o->mantissa, o->exponent);
        put_key(&w, "mantissa");
        put_i64(&w, o->mantissa);
        put_key(&w, "exponent");
        put_i64(&w, o->exponent);
        put_key(&w, "unit");
        put_json_string(&w, o->unit, sizeof(o->unit));
        put_key_name(&w, "status", meas_status_name(o->status));
        put_key(&w, "time_ms");
        put_u64(&w, o->time_ms);
        break;
    }
    case MW_MSG_ALARM: {
        const mw_alarm_t *a = &msg->u.alarm;
        put_key(&w, "mdc_code");
        put_u64(&w, a->mdc_code);
        /* "priority" is the envelope's delivery priority; this is IEC 60601-1-8's. */
        put_key_name(&w, "alarm_priority", alarm_priority_name(a->priority));
        put_key_name(&w, "state", alarm_state_name(a->state));
        put_key(&w, "time_ms");
        put_u64(&w, a->time_ms);
        put_key(&w, "text");
        put_json_string(&w, a->text, sizeof(a->text));
        break;
    }
    case MW_MSG_STATUS: {
        const mw_device_status_t *s = &msg->u.status;
        put_key(&w, "battery_pct");
        put_u64(&w, s->battery_pct);
        put_key(&w, "on_mains");
        put_str(&w, s->on_mains ? "true" : "false");
        put_key(&w, "uptime_s");
        put_u64(&w, s->uptime_s);
        put_key(&w, "queue_depth");
        put_u64(&w, s->queue_depth);
        break;
    }
    case MW_MSG_COMMAND_RESULT: {
        const mw_command_result_t *r = &msg->u.command_result;
        put_key(&w, "command_id");
        put_u64(&w, r->command_id);
        put_key_name(&w, "status", mw_command_status_name(r->status));
        put_key(&w, "detail");
        put_json_string(&w, r->detail, sizeof(r->detail));
        break;
    }
    case MW_MSG_COMM_LOSS:
    case MW_MSG_COMM_RESTORED:
        put_key(&w, "silent_ms");
        put_u64(&w, msg->u.link.silent_ms);
        put_key(&w, "last_seen_ms");
        put_u64(&w, msg->u.link.last_seen_ms);
        break;
    case MW_MSG_GAP: {
        const mw_gap_t *g = &msg->u.gap;
        put_key_name(&w, "lost_priority",
                     g->priority == 0 ? "unknown" : priority_name((mw_priority)g->priority));
        put_key_name(&w, "reason", gap_reason_name(g->reason));
        put_key(&w, "count");
        put_u64(&w, g->count);
        put_key(&w, "first_seq");
        put_u64(&w, g->first_seq);
        put_key(&w, "last_seq");
        put_u64(&w, g->last_seq);
        break;
    }
    case MW_MSG_UNKNOWN:
    default:
        /* A payload kind this version cannot describe: the header alone still tells a hospital
         * system that something arrived, from whom, and in what order. */
        break;
    }
    put_char(&w, '}');
    if (out_len != NULL) {
        *out_len = w.len;
    }
    /* A truncated object would be invalid JSON; an empty string is at least recognisable. */
    if (w.len >= out_size) {
        if (out_size > 0) {
            out[0] = '\0';
        }
        return MW_ENOSPC;
    }
    out[w.len] = '\0';
    return MW_OK;
}

MW_API mw_err mw_audit_to_json(const mw_audit_event_t *ev, char *out, size_t out_size,
                               size_t *out_len)
{
    writer w = {out, out_size, 0};
    if (out_len != NULL)
        *out_len = 0;
    if (ev == NULL || (out == NULL && out_size > 0))
        return MW_EINVAL;
    if (out_size > 0)
        out[0] = '\0';
    /* Strings in an audit record may come from a peer (a certificate's name):
     * they are escaped like any other, bounded by a generous limit. */
    put_str(&w, "{\"event\":");
    put_json_string(&w, ev->event ? ev->event : "", 64);
    put_key(&w, "peer");
    put_json_string(&w, ev->peer ? ev->peer : "", 64);
    put_key(&w, "device");
    put_json_string(&w, ev->device ? ev->device : "", MW_ID_MAX + 1);
    put_key(&w, "reason");
    put_json_string(&w, ev->reason ? ev->reason : "", 512);
    put_key(&w, "error");
    put_json_string(&w, mw_strerror(ev->err), 128);
    put_key(&w, "code");
    put_i64(&w, ev->foreign);
    put_char(&w, '}');
    if (out_len != NULL)
        *out_len = w.len;
    if (w.len >= out_size) {
        if (out_size > 0)
            out[0] = '\0';
        return MW_ENOSPC;
    }
    out[w.len] = '\0';
    return MW_OK;
}
