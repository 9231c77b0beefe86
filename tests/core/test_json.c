/* SPDX-License-Identifier: Apache-2.0 */
/* test_json.c -- mw_message_to_json writes exact, always-valid JSON and never overruns. */
#include <criterion/criterion.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "medwire/audit.h"
#include "medwire/message.h"

/* The longest object mw_message_to_json can write, without the NUL: an alarm with every
 * number at its maximum, a space, the possible-duplicate mark, and a 64-byte id, 47-byte text
 * and 39-byte source of bytes that escape to \u00XX
 * (see the test that builds it). message.h documents this bound plus one. */
#define JSON_WORST_LEN 1215
/* The longest for a message that passed the codec's checks (id [A-Za-z0-9._-], printable
 * ASCII unit, text and source, so at most a 2-byte escape per character; exponent in
 * [-128, 127]): an observation whose value is 20 digits followed by 20 zeros, with a source. */
#define JSON_WORST_LEN_CODEC 563

/* ---- a strict RFC 8259 validator, enough to check our own output ------------------------- */

typedef struct cursor {
    const char *p;
} cursor;

static bool parse_value(cursor *c, int depth);

static bool parse_string(cursor *c)
{
    if (*c->p != '"') {
        return false;
    }
    c->p++;
    for (;;) {
        unsigned char ch = (unsigned char)*c->p;
        if (ch == '"') {
            c->p++;
            return true;
        }
        if (ch < 0x20) { /* includes the NUL at the end of the text */
            return false;
        }
        if (ch == '\\') {
            c->p++;
            if (strchr("\"\\/bfnrt", *c->p) != NULL && *c->p != '\0') {
                c->p++;
            } else if (*c->p == 'u') {
                int i;
                c->p++;
                for (i = 0; i < 4; i++, c->p++) {
                    if (strchr("0123456789abcdefABCDEF", *c->p) == NULL || *c->p == '\0') {
                        return false;
                    }
                }
            } else {
                return false;
            }
        } else {
            c->p++;
        }
    }
}

static bool parse_digits(cursor *c)
{
    if (*c->p < '0' || *c->p > '9') {
        return false;
    }
    while (*c->p >= '0' && *c->p <= '9') {
        c->p++;
    }
    return true;
}

static bool parse_number(cursor *c)
{
    if (*c->p == '-') {
        c->p++;
    }
    if (*c->p == '0') {
        c->p++; /* no leading zeros */
    } else if (!parse_digits(c)) {
        return false;
    }
    if (*c->p == '.') {
        c->p++;
        if (!parse_digits(c)) {
            return false;
        }
    }
    if (*c->p == 'e' || *c->p == 'E') {
        c->p++;
        if (*c->p == '+' || *c->p == '-') {
            c->p++;
        }
        if (!parse_digits(c)) {
            return false;
        }
    }
    return true;
}

static bool parse_literal(cursor *c, const char *lit)
{
    size_t n = strlen(lit);
    if (strncmp(c->p, lit, n) != 0) {
        return false;
    }
    c->p += n;
    return true;
}

static bool parse_object(cursor *c, int depth)
{
    c->p++;
    if (*c->p == '}') {
        c->p++;
        return true;
    }
    for (;;) {
        if (!parse_string(c) || *c->p++ != ':' || !parse_value(c, depth + 1)) {
            return false;
        }
        if (*c->p == '}') {
            c->p++;
            return true;
        }
        if (*c->p++ != ',') {
            return false;
        }
    }
}

static bool parse_value(cursor *c, int depth)
{
    if (depth > 8) {
        return false;
    }
    switch (*c->p) {
    case '{':
        return parse_object(c, depth);
    case '"':
        return parse_string(c);
    case 't':
        return parse_literal(c, "true");
    case 'f':
        return parse_literal(c, "false");
    case 'n':
        return parse_literal(c, "null");
    default:
        return parse_number(c);
    }
}

/* One object, nothing before or after it (NDJSON: the gateway adds the newline). */
static bool is_json_object(const char *text)
{
    cursor c = {text};
    return *text == '{' && parse_value(&c, 0) && *c.p == '\0';
}

/* ---- fixtures ---------------------------------------------------------------------------- */

static mw_message_t header(mw_msg_type type, mw_priority prio)
{
    mw_message_t m;
    memset(&m, 0, sizeof(m));
    strcpy(m.device_id, "spo2-bed-07");
    m.seq = 42;
    m.device_time_ms = 1700000000123ull;
    m.time_synced = true;
    m.priority = prio;
    m.type = type;
    return m;
}

static mw_message_t spo2(int64_t mantissa, int32_t exponent)
{
    mw_message_t m = header(MW_MSG_OBSERVATION, MW_PRIORITY_OBSERVATION);
    m.u.observation.mdc_code = MW_MDC_PULS_OXIM_SAT_O2;
    m.u.observation.mantissa = mantissa;
    m.u.observation.exponent = exponent;
    strcpy(m.u.observation.unit, "%");
    m.u.observation.status = MW_MEAS_VALID;
    m.u.observation.time_ms = 1700000000000ull;
    return m;
}

static void assert_json(const mw_message_t *m, const char *expected)
{
    char out[1024];
    size_t len = 0;
    cr_assert_eq(mw_message_to_json(m, out, sizeof(out), &len), MW_OK);
    cr_assert_str_eq(out, expected);
    cr_assert_eq(len, strlen(expected));
    cr_assert(is_json_object(out), "valid JSON: %s", out);
}

/* The "value" member of the JSON of spo2(mantissa, exponent). */
static void assert_value(int64_t mantissa, int32_t exponent, const char *expected)
{
    mw_message_t m = spo2(mantissa, exponent);
    char out[1024], want[128];
    const char *v;
    size_t n;

    cr_assert_eq(mw_message_to_json(&m, out, sizeof(out), NULL), MW_OK);
    cr_assert(is_json_object(out), "valid JSON: %s", out);
    v = strstr(out, "\"value\":");
    cr_assert_not_null(v);
    v += strlen("\"value\":");
    n = (size_t)(strchr(v, ',') - v);
    snprintf(want, sizeof(want), "%s", expected);
    cr_assert_eq(n, strlen(want), "%lld e%d: got %.*s, want %s", (long long)mantissa, exponent,
                 (int)n, v, want);
    cr_assert(strncmp(v, want, n) == 0, "%lld e%d: got %.*s, want %s", (long long)mantissa,
              exponent, (int)n, v, want);
}

/* ---- exact output ------------------------------------------------------------------------ */

Test(json, spo2_observation_has_the_exact_expected_text)
{
    mw_message_t m = spo2(97, 0);
    assert_json(&m, "{\"device\":\"spo2-bed-07\",\"seq\":42,\"type\":\"observation\","
                    "\"device_time_ms\":1700000000123,\"time_synced\":true,"
                    "\"priority\":\"observation\",\"mdc_code\":150456,\"value\":97,"
                    "\"mantissa\":97,\"exponent\":0,\"unit\":\"%\",\"status\":\"valid\","
                    "\"time_ms\":1700000000000}");
}

Test(json, alarm_has_the_exact_expected_text)
{
    mw_message_t m = header(MW_MSG_ALARM, MW_PRIORITY_ALARM);
    m.time_synced = false;
    m.u.alarm.mdc_code = MW_MDC_EVT_LO;
    m.u.alarm.priority = MW_ALARM_HIGH;
    m.u.alarm.state = MW_ALARM_ACTIVE;
    m.u.alarm.time_ms = 1700000000100ull;
    strcpy(m.u.alarm.text, "SpO2 low");
    assert_json(&m, "{\"device\":\"spo2-bed-07\",\"seq\":42,\"type\":\"alarm\","
                    "\"device_time_ms\":1700000000123,\"time_synced\":false,"
                    "\"priority\":\"alarm\",\"mdc_code\":196670,\"alarm_priority\":\"high\","
                    "\"state\":\"active\",\"time_ms\":1700000000100,\"text\":\"SpO2 low\"}");
}

Test(json, source_follows_the_payload_fields_only_when_there_is_one)
{
    mw_message_t m = spo2(97, 0);
    strcpy(m.u.observation.source, "MON-7 \"bed\" 4");
    assert_json(&m, "{\"device\":\"spo2-bed-07\",\"seq\":42,\"type\":\"observation\","
                    "\"device_time_ms\":1700000000123,\"time_synced\":true,"
                    "\"priority\":\"observation\",\"mdc_code\":150456,\"value\":97,"
                    "\"mantissa\":97,\"exponent\":0,\"unit\":\"%\",\"status\":\"valid\","
                    "\"time_ms\":1700000000000,\"source\":\"MON-7 \\\"bed\\\" 4\"}");
    m = header(MW_MSG_ALARM, MW_PRIORITY_ALARM);
    m.u.alarm.mdc_code = MW_MDC_EVT_LO;
    m.u.alarm.priority = MW_ALARM_HIGH;
    m.u.alarm.state = MW_ALARM_ACTIVE;
    m.u.alarm.time_ms = 1700000000100ull;
    strcpy(m.u.alarm.source, "ACME-ICU4-BED7");
    assert_json(&m, "{\"device\":\"spo2-bed-07\",\"seq\":42,\"type\":\"alarm\","
                    "\"device_time_ms\":1700000000123,\"time_synced\":true,"
                    "\"priority\":\"alarm\",\"mdc_code\":196670,\"alarm_priority\":\"high\","
                    "\"state\":\"active\",\"time_ms\":1700000000100,\"text\":\"\","
                    "\"source\":\"ACME-ICU4-BED7\"}");
}

Test(json, status_has_the_exact_expected_text)
{
    mw_message_t m = header(MW_MSG_STATUS, MW_PRIORITY_STATUS);
    m.u.status.battery_pct = 81;
    m.u.status.on_mains = false;
    m.u.status.uptime_s = 86400;
    m.u.status.queue_depth = 3;
    assert_json(&m, "{\"device\":\"spo2-bed-07\",\"seq\":42,\"type\":\"status\","
                    "\"device_time_ms\":1700000000123,\"time_synced\":true,"
                    "\"priority\":\"status\",\"battery_pct\":81,\"on_mains\":false,"
                    "\"uptime_s\":86400,\"queue_depth\":3}");
}

Test(json, gap_record_has_the_exact_expected_text)
{
    mw_message_t m = header(MW_MSG_GAP, MW_PRIORITY_ALARM);
    m.u.gap.priority = MW_PRIORITY_OBSERVATION;
    m.u.gap.reason = MW_GAP_EVICTED;
    m.u.gap.count = 12;
    m.u.gap.first_seq = 30;
    m.u.gap.last_seq = 57;
    assert_json(&m, "{\"device\":\"spo2-bed-07\",\"seq\":42,\"type\":\"gap\","
                    "\"device_time_ms\":1700000000123,\"time_synced\":true,"
                    "\"priority\":\"alarm\",\"lost_priority\":\"observation\","
                    "\"reason\":\"evicted\",\"count\":12,\"first_seq\":30,\"last_seq\":57}");
    m.u.gap.priority = 0;
    m.u.gap.reason = MW_GAP_CORRUPT;
    char out[512];
    size_t n;
    cr_assert_eq(mw_message_to_json(&m, out, sizeof out, &n), MW_OK);
    cr_assert(strstr(out, "\"lost_priority\":\"unknown\",\"reason\":\"corrupt\"") != NULL, "%s",
              out);
    m.u.gap.reason = (mw_gap_reason)9;
    cr_assert_eq(mw_message_to_json(&m, out, sizeof out, &n), MW_EINVAL);
}

Test(json, unknown_type_writes_only_the_header)
{
    mw_message_t m = header(MW_MSG_UNKNOWN, MW_PRIORITY_OBSERVATION);
    assert_json(&m, "{\"device\":\"spo2-bed-07\",\"seq\":42,\"type\":\"unknown\","
                    "\"device_time_ms\":1700000000123,\"time_synced\":true,"
                    "\"priority\":\"observation\"}");
}

Test(json, every_enum_has_its_name)
{
    static const char *const meas[] = {"valid",       "questionable", "invalid",
                                       "unavailable", "calibrating",  "test-data"};
    static const char *const aprio[] = {"info", "low", "medium", "high"};
    static const char *const astate[] = {"inactive", "active", "acknowledged", "latched"};
    static const char *const prio[] = {"status", "observation", "alarm"};
    char out[1024], want[64];
    int i;

    for (i = 0; i < 6; i++) {
        mw_message_t m = spo2(1, 0);
        m.u.observation.status = (mw_meas_status)i;
        cr_assert_eq(mw_message_to_json(&m, out, sizeof(out), NULL), MW_OK);
        snprintf(want, sizeof(want), "\"status\":\"%s\"", meas[i]);
        cr_assert_not_null(strstr(out, want), "%s", out);
    }
    for (i = 0; i < 4; i++) {
        mw_message_t m = header(MW_MSG_ALARM, MW_PRIORITY_ALARM);
        m.u.alarm.priority = (mw_alarm_priority)i;
        m.u.alarm.state = (mw_alarm_state)i;
        cr_assert_eq(mw_message_to_json(&m, out, sizeof(out), NULL), MW_OK);
        snprintf(want, sizeof(want), "\"alarm_priority\":\"%s\"", aprio[i]);
        cr_assert_not_null(strstr(out, want), "%s", out);
        snprintf(want, sizeof(want), "\"state\":\"%s\"", astate[i]);
        cr_assert_not_null(strstr(out, want), "%s", out);
    }
    for (i = 0; i < 3; i++) {
        mw_message_t m = header(MW_MSG_STATUS, (mw_priority)(i + 1));
        cr_assert_eq(mw_message_to_json(&m, out, sizeof(out), NULL), MW_OK);
        snprintf(want, sizeof(want), "\"priority\":\"%s\"", prio[i]);
        cr_assert_not_null(strstr(out, want), "%s", out);
    }
}

Test(json, message_type_names)
{
    cr_assert_str_eq(mw_msg_type_name(MW_MSG_OBSERVATION), "observation");
    cr_assert_str_eq(mw_msg_type_name(MW_MSG_ALARM), "alarm");
    cr_assert_str_eq(mw_msg_type_name(MW_MSG_STATUS), "status");
    cr_assert_str_eq(mw_msg_type_name(MW_MSG_UNKNOWN), "unknown");
    cr_assert_str_eq(mw_msg_type_name((mw_msg_type)99), "unknown");
}

/* ---- decimal values ---------------------------------------------------------------------- */

/* @req MDS2-IGAU */
Test(json, value_is_the_exact_decimal_of_mantissa_and_exponent)
{
    assert_value(975, -1, "97.5");
    assert_value(5, 3, "5000");
    assert_value(-12, -4, "-0.0012");
    assert_value(97, 0, "97");
    assert_value(-97, 0, "-97");
    assert_value(1, -1, "0.1");
    assert_value(12345, -5, "0.12345");
    assert_value(12345, -4, "1.2345");
    assert_value(-5, 1, "-50");
    assert_value(7, -20, "0.00000000000000000007");
    assert_value(7, 20, "700000000000000000000");
}

Test(json, trailing_zeros_of_the_mantissa_are_kept_as_precision)
{
    assert_value(970, -1, "97.0");
    assert_value(100, -2, "1.00");
}

Test(json, zero_never_gets_leading_zeros)
{
    assert_value(0, 0, "0");
    assert_value(0, 3, "0");
    assert_value(0, -2, "0.00");
}

Test(json, extreme_mantissas_are_exact)
{
    assert_value(INT64_MAX, 0, "9223372036854775807");
    assert_value(INT64_MIN, 0, "-9223372036854775808");
    assert_value(INT64_MIN, -19, "-0.9223372036854775808");
    assert_value(INT64_MIN, -20, "-0.09223372036854775808");
    assert_value(INT64_MIN, 20, "-922337203685477580800000000000000000000");
}

Test(json, large_exponents_use_exponent_notation)
{
    assert_value(975, -30, "975e-30");
    assert_value(975, 21, "975e21");
    assert_value(-975, -21, "-975e-21");
    assert_value(0, 128, "0e128");
    assert_value(INT64_MIN, INT32_MIN, "-9223372036854775808e-2147483648");
}

/* ---- escaping ---------------------------------------------------------------------------- */

Test(json, alarm_text_escapes_quote_backslash_newline_and_control_bytes)
{
    mw_message_t m = header(MW_MSG_ALARM, MW_PRIORITY_ALARM);
    char out[1024];
    const char *t;

    strcpy(m.u.alarm.text, "a\"b\\c\nd\x01"
                           "e\x1f\t/");
    cr_assert_eq(mw_message_to_json(&m, out, sizeof(out), NULL), MW_OK);
    cr_assert(is_json_object(out), "%s", out);
    t = strstr(out, "\"text\":");
    cr_assert_not_null(t);
    cr_assert_str_eq(t, "\"text\":\"a\\\"b\\\\c\\u000ad\\u0001e\\u001f\\u0009/\"}");
}

Test(json, bytes_from_0x7f_up_are_escaped_as_u00xx_of_the_byte)
{
    mw_message_t m = header(MW_MSG_ALARM, MW_PRIORITY_ALARM);
    char out[1024];
    const char *t;

    strcpy(m.u.alarm.text, "caf\xc3\xa9\x7f\xff");
    cr_assert_eq(mw_message_to_json(&m, out, sizeof(out), NULL), MW_OK);
    cr_assert(is_json_object(out), "%s", out);
    t = strstr(out, "\"text\":");
    cr_assert_str_eq(t, "\"text\":\"caf\\u00c3\\u00a9\\u007f\\u00ff\"}");
}

Test(json, device_id_and_unit_are_escaped_too)
{
    mw_message_t m = spo2(1, 0);
    char out[1024];

    strcpy(m.device_id, "x\"}");
    strcpy(m.u.observation.unit, "\\\"");
    cr_assert_eq(mw_message_to_json(&m, out, sizeof(out), NULL), MW_OK);
    cr_assert(is_json_object(out), "%s", out);
    cr_assert_not_null(strstr(out, "\"device\":\"x\\\"}\""));
    cr_assert_not_null(strstr(out, "\"unit\":\"\\\\\\\"\""));
}

/* Every byte value in every string field, one at a time: the output stays valid JSON. */
/* @req IEC62443-CR3.5 */
Test(json, any_byte_in_any_string_gives_valid_json)
{
    char out[1024];
    unsigned b;

    for (b = 1; b < 256; b++) {
        mw_message_t o = spo2(1, 0), a = header(MW_MSG_ALARM, MW_PRIORITY_ALARM);
        o.device_id[3] = (char)b;
        o.u.observation.unit[0] = (char)b;
        a.u.alarm.text[0] = (char)b;
        a.u.alarm.text[1] = (char)b;
        cr_assert_eq(mw_message_to_json(&o, out, sizeof(out), NULL), MW_OK);
        cr_assert(is_json_object(out), "byte %u: %s", b, out);
        cr_assert_eq(mw_message_to_json(&a, out, sizeof(out), NULL), MW_OK);
        cr_assert(is_json_object(out), "byte %u: %s", b, out);
    }
}

/* ---- buffer limits ----------------------------------------------------------------------- */

static mw_message_t worst_alarm(char fill)
{
    mw_message_t m = header(MW_MSG_ALARM, MW_PRIORITY_OBSERVATION); /* longest priority name */
    memset(m.device_id, fill, MW_ID_MAX);
    m.device_id[MW_ID_MAX] = '\0';
    m.seq = UINT64_MAX;
    m.space = UINT64_MAX;
    m.possible_duplicate = true;
    m.device_time_ms = UINT64_MAX;
    m.time_synced = false;
    m.u.alarm.mdc_code = UINT32_MAX;
    m.u.alarm.priority = MW_ALARM_MEDIUM;
    m.u.alarm.state = MW_ALARM_ACKNOWLEDGED;
    m.u.alarm.time_ms = UINT64_MAX;
    memset(m.u.alarm.text, fill, MW_ALARM_TEXT_MAX);
    m.u.alarm.text[MW_ALARM_TEXT_MAX] = '\0';
    memset(m.u.alarm.source, fill, MW_SOURCE_MAX);
    m.u.alarm.source[MW_SOURCE_MAX] = '\0';
    return m;
}

static mw_message_t worst_observation(char fill)
{
    mw_message_t m = header(MW_MSG_OBSERVATION, MW_PRIORITY_OBSERVATION);
    memset(m.device_id, fill, MW_ID_MAX);
    m.device_id[MW_ID_MAX] = '\0';
    m.seq = UINT64_MAX;
    m.space = UINT64_MAX;
    m.possible_duplicate = true;
    m.device_time_ms = UINT64_MAX;
    m.time_synced = false;
    m.u.observation.mdc_code = UINT32_MAX;
    m.u.observation.mantissa = INT64_MIN;
    m.u.observation.exponent = 20; /* the longest decimal form: 20 digits and 20 zeros */
    memset(m.u.observation.unit, fill, MW_UNIT_MAX);
    m.u.observation.unit[MW_UNIT_MAX] = '\0';
    m.u.observation.status = MW_MEAS_QUESTIONABLE;
    m.u.observation.time_ms = UINT64_MAX;
    memset(m.u.observation.source, fill, MW_SOURCE_MAX);
    m.u.observation.source[MW_SOURCE_MAX] = '\0';
    return m;
}

static size_t json_len(const mw_message_t *m)
{
    char out[2048];
    size_t len;
    cr_assert_eq(mw_message_to_json(m, out, sizeof(out), &len), MW_OK);
    cr_assert(is_json_object(out), "%s", out);
    cr_assert_eq(len, strlen(out));
    return len;
}

Test(json, documented_size_suffices_for_the_worst_case_message)
{
    mw_message_t a = worst_alarm('\x01'), o = worst_observation('\x01'), s;
    mw_message_t e;
    size_t la = json_len(&a), lo = json_len(&o), ls, le;
    char out[JSON_WORST_LEN + 1];
    size_t len;

    s = header(MW_MSG_STATUS, MW_PRIORITY_OBSERVATION);
    memset(s.device_id, '\x01', MW_ID_MAX);
    s.device_id[MW_ID_MAX] = '\0';
    s.seq = s.device_time_ms = s.u.status.uptime_s = s.space = UINT64_MAX;
    s.possible_duplicate = true;
    s.u.status.battery_pct = s.u.status.queue_depth = UINT32_MAX;
    s.time_synced = false;
    s.u.status.on_mains = false;
    ls = json_len(&s);
    /* The exponent form with the most negative exponent is one byte longer than the longest
     * decimal form; both stay below the alarm. */
    e = o;
    e.u.observation.exponent = INT32_MIN;
    le = json_len(&e);
    printf("json: worst alarm %zu, observation %zu (e-form %zu), status %zu bytes + NUL\n", la, lo,
           le, ls);
    cr_assert_eq(la, JSON_WORST_LEN, "the worst case is an alarm, exactly this long");
    cr_assert_leq(lo, JSON_WORST_LEN);
    cr_assert_leq(le, JSON_WORST_LEN);
    cr_assert_leq(ls, JSON_WORST_LEN);
    cr_assert_eq(mw_message_to_json(&a, out, sizeof(out), &len), MW_OK, "fits with its NUL");
    cr_assert_eq(mw_message_to_json(&a, out, sizeof(out) - 1, &len), MW_ENOSPC);
}

Test(json, 564_bytes_suffice_for_any_message_that_passed_the_codec)
{
    /* The codec admits only [A-Za-z0-9._-] in ids and printable ASCII in unit and text, so the
     * worst case is a quote or backslash (2 bytes) in every text and unit position. */
    mw_message_t a = worst_alarm('"'), o = worst_observation('\\');
    memset(a.device_id, 'W', MW_ID_MAX);
    memset(o.device_id, 'W', MW_ID_MAX);
    printf("json: codec-valid worst alarm %zu, observation %zu bytes + NUL\n", json_len(&a),
           json_len(&o));
    cr_assert_leq(json_len(&a), JSON_WORST_LEN_CODEC);
    cr_assert_eq(json_len(&o), JSON_WORST_LEN_CODEC);
    o.u.observation.exponent = -128; /* the exponent form allowed by the codec is shorter */
    cr_assert_lt(json_len(&o), JSON_WORST_LEN_CODEC);
    cr_assert_eq(JSON_WORST_LEN_CODEC + 1, 564, "message.h documents this bound");
}

Test(json, small_buffer_gives_enospc_without_writing_past_its_end)
{
    mw_message_t msgs[3] = {worst_alarm('\x01'), spo2(975, -1),
                            header(MW_MSG_STATUS, MW_PRIORITY_STATUS)};
    size_t k;

    for (k = 0; k < 3; k++) {
        size_t need = json_len(&msgs[k]), size;
        for (size = 0; size <= need + 1; size++) {
            char buf[JSON_WORST_LEN + 8];
            size_t len = 12345;
            mw_err err;

            memset(buf, '#', sizeof(buf)); /* buf[size] onwards is the canary */
            err = mw_message_to_json(&msgs[k], buf, size, &len);
            cr_assert_eq(err, size > need ? MW_OK : MW_ENOSPC, "size %zu", size);
            cr_assert_eq(len, need, "out_len tells the length needed");
            for (size_t i = size; i < sizeof(buf); i++) {
                cr_assert_eq(buf[i], '#', "byte %zu written with size %zu", i, size);
            }
            if (size > 0 && err == MW_ENOSPC) {
                cr_assert_eq(buf[0], '\0', "a refused object leaves an empty string");
            }
            if (err == MW_OK) {
                cr_assert_eq(buf[need], '\0');
            }
        }
    }
}

Test(json, malformed_structs_are_refused_not_guessed)
{
    char out[1024];
    mw_message_t m;

    m = spo2(1, 0);
    memset(m.u.observation.unit, 'g', sizeof(m.u.observation.unit));
    cr_assert_eq(mw_message_to_json(&m, out, sizeof(out), NULL), MW_EINVAL, "unit without NUL");
    cr_assert_eq(out[0], '\0');
    m = spo2(1, 0);
    memset(m.device_id, 'd', sizeof(m.device_id));
    cr_assert_eq(mw_message_to_json(&m, out, sizeof(out), NULL), MW_EINVAL, "id without NUL");
    m = spo2(1, 0);
    m.u.observation.status = (mw_meas_status)6;
    cr_assert_eq(mw_message_to_json(&m, out, sizeof(out), NULL), MW_EINVAL);
    m = spo2(1, 0);
    m.priority = (mw_priority)0;
    cr_assert_eq(mw_message_to_json(&m, out, sizeof(out), NULL), MW_EINVAL);
    m = header(MW_MSG_ALARM, MW_PRIORITY_ALARM);
    m.u.alarm.state = (mw_alarm_state)4;
    cr_assert_eq(mw_message_to_json(&m, out, sizeof(out), NULL), MW_EINVAL);
    m = header(MW_MSG_ALARM, MW_PRIORITY_ALARM);
    memset(m.u.alarm.text, 't', sizeof(m.u.alarm.text));
    cr_assert_eq(mw_message_to_json(&m, out, sizeof(out), NULL), MW_EINVAL);
    m = header(MW_MSG_ALARM, MW_PRIORITY_ALARM);
    memset(m.u.alarm.source, 's', sizeof(m.u.alarm.source));
    cr_assert_eq(mw_message_to_json(&m, out, sizeof(out), NULL), MW_EINVAL, "source without NUL");
    m = spo2(1, 0);
    memset(m.u.observation.source, 's', sizeof(m.u.observation.source));
    cr_assert_eq(mw_message_to_json(&m, out, sizeof(out), NULL), MW_EINVAL, "source without NUL");
    cr_assert_eq(mw_message_to_json(NULL, out, sizeof(out), NULL), MW_EINVAL);
    m = spo2(1, 0);
    cr_assert_eq(mw_message_to_json(&m, NULL, 10, NULL), MW_EINVAL);
    cr_assert_eq(mw_message_to_json(&m, NULL, 0, NULL), MW_ENOSPC, "a pure length query");
}

/* @req IEC62443-CR2.8 MDS2-AUDT */
Test(audit_json, record_has_the_exact_expected_text_with_hostile_strings_escaped)
{
    /* A certificate name reaches the audit log: quotes, backslashes and control
     * characters in it must not break the JSON line or forge another one. */
    mw_audit_event_t ev = {.event = "handshake_failed",
                           .peer = "127.0.0.1:4000",
                           .device = "",
                           .err = MW_ECERT_EXPIRED,
                           .foreign = -151,
                           .reason = "certificate 'a\"b\\c\n{\"event\":\"x\"}' expired"};
    char out[512];
    size_t n = 0;
    cr_assert_eq(mw_audit_to_json(&ev, out, sizeof out, &n), MW_OK);
    cr_assert_str_eq(out, "{\"event\":\"handshake_failed\",\"peer\":\"127.0.0.1:4000\","
                          "\"device\":\"\",\"reason\":\"certificate 'a\\\"b\\\\c\\u000a"
                          "{\\\"event\\\":\\\"x\\\"}' expired\",\"error\":\"peer certificate "
                          "has expired\",\"code\":-151}");
    cr_assert_eq(n, strlen(out));
}

Test(audit_json, a_record_that_is_no_failure_carries_no_error_field)
{
    mw_audit_event_t ev = {.event = "session_closed",
                           .peer = "127.0.0.1:4000",
                           .device = "dev-1",
                           .reason = "closed by the device (close_notify)"};
    char out[256];
    size_t n = 0;
    cr_assert_eq(mw_audit_to_json(&ev, out, sizeof out, &n), MW_OK);
    cr_assert_str_eq(out, "{\"event\":\"session_closed\",\"peer\":\"127.0.0.1:4000\","
                          "\"device\":\"dev-1\",\"reason\":\"closed by the device "
                          "(close_notify)\"}");
}

Test(audit_json, too_small_a_buffer_gives_enospc_and_an_empty_string)
{
    mw_audit_event_t ev = {.event = "session_established", .peer = "p", .device = "dev-1",
                           .reason = "ok"};
    char out[24];
    memset(out, 'x', sizeof out);
    size_t n = 0;
    cr_assert_eq(mw_audit_to_json(&ev, out, sizeof out, &n), MW_ENOSPC);
    cr_assert_eq(out[0], '\0');
    cr_assert_gt(n, sizeof out, "the length needed is reported");
}

Test(json, a_message_names_its_sequence_space_in_hex_and_says_when_it_may_be_a_duplicate)
{
    mw_message_t m = header(MW_MSG_STATUS, MW_PRIORITY_STATUS);
    m.space = 0x00c0ffee12345678ull;
    m.possible_duplicate = true;
    m.u.status.battery_pct = 80;
    assert_json(&m, "{\"device\":\"spo2-bed-07\",\"seq\":42,\"type\":\"status\","
                    "\"device_time_ms\":1700000000123,\"time_synced\":true,\"priority\":"
                    "\"status\",\"space\":\"00c0ffee12345678\",\"possible_duplicate\":true,"
                    "\"battery_pct\":80,\"on_mains\":false,\"uptime_s\":0,\"queue_depth\":0}");
    m.space = 0;
    m.possible_duplicate = false;
    assert_json(&m, "{\"device\":\"spo2-bed-07\",\"seq\":42,\"type\":\"status\",\"device_time_ms\":"
                    "1700000000123,\"time_synced\":true,\"priority\":\"status\","
                    "\"battery_pct\":80,\"on_mains\":false,\"uptime_s\":0,\"queue_depth\":0}");
}
