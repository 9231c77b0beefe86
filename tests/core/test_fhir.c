/* SPDX-License-Identifier: Apache-2.0 */
/* test_fhir.c -- mw_message_to_fhir and mw_audit_to_fhir write the documented FHIR R4 JSON
 * exactly, escape what peers send, and never overrun (tests/fhir/ runs real validators). */
#include <criterion/criterion.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "medwire/fhir.h"

/* ---- a strict JSON syntax check (RFC 8259), enough for our own output -------------------- */

static const char *json_value(const char *p, int depth);

static const char *json_string(const char *p)
{
    if (*p++ != '"')
        return NULL;
    while (*p != '"') {
        unsigned char c = (unsigned char)*p;
        if (c < 0x20 || c > 0x7E) /* our output is printable ASCII; NUL ends the text */
            return NULL;
        if (c == '\\') {
            p++;
            if (*p == 'u') {
                for (int i = 1; i <= 4; i++)
                    if (p[i] == '\0' || strchr("0123456789abcdef", p[i]) == NULL)
                        return NULL;
                p += 4;
            } else if (*p == '\0' || strchr("\"\\/bfnrt", *p) == NULL) {
                return NULL;
            }
        }
        p++;
    }
    return p + 1;
}

static const char *json_digits(const char *p)
{
    if (*p < '0' || *p > '9')
        return NULL;
    while (*p >= '0' && *p <= '9')
        p++;
    return p;
}

static const char *json_number(const char *p)
{
    if (*p == '-')
        p++;
    if (*p == '0')
        p++;
    else if ((p = json_digits(p)) == NULL)
        return NULL;
    if (*p == '.' && (p = json_digits(p + 1)) == NULL)
        return NULL;
    if (*p == 'e' || *p == 'E') {
        p++;
        if (*p == '+' || *p == '-')
            p++;
        p = json_digits(p);
    }
    return p;
}

static const char *json_container(const char *p, int depth, char close, bool object)
{
    p++;
    if (*p == close)
        return p + 1;
    for (;;) {
        if (object) {
            if ((p = json_string(p)) == NULL || *p++ != ':')
                return NULL;
        }
        if ((p = json_value(p, depth + 1)) == NULL)
            return NULL;
        if (*p == close)
            return p + 1;
        if (*p++ != ',')
            return NULL;
    }
}

static const char *json_value(const char *p, int depth)
{
    if (depth > 16)
        return NULL;
    switch (*p) {
    case '{':
        return json_container(p, depth, '}', true);
    case '[':
        return json_container(p, depth, ']', false);
    case '"':
        return json_string(p);
    case 't':
        return strncmp(p, "true", 4) == 0 ? p + 4 : NULL;
    case 'f':
        return strncmp(p, "false", 5) == 0 ? p + 5 : NULL;
    default:
        return json_number(p);
    }
}

static bool is_json_object(const char *text)
{
    const char *end = text[0] == '{' ? json_value(text, 0) : NULL;
    return end != NULL && *end == '\0';
}

/* ---- fixtures ---------------------------------------------------------------------------- */

#define T0 1700000000123ull /* 2023-11-14T22:13:20.123Z */

static mw_message_t header(mw_msg_type type, mw_priority prio)
{
    mw_message_t m;
    memset(&m, 0, sizeof m);
    strcpy(m.device_id, "spo2-bed-07");
    m.seq = 42;
    m.device_time_ms = T0;
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
    m.u.observation.time_ms = T0;
    return m;
}

static mw_message_t alarm(mw_alarm_priority prio, mw_alarm_state state, const char *text)
{
    mw_message_t m = header(MW_MSG_ALARM, MW_PRIORITY_ALARM);
    m.u.alarm.mdc_code = MW_MDC_EVT_LO;
    m.u.alarm.priority = prio;
    m.u.alarm.state = state;
    m.u.alarm.time_ms = T0;
    snprintf(m.u.alarm.text, sizeof m.u.alarm.text, "%s", text);
    return m;
}

static void assert_refused(const mw_message_t *m, const mw_fhir_options_t *opt);

/* Converts; asserts success and valid JSON; returns a static buffer. */
static const char *fhir(const mw_message_t *m, const mw_fhir_options_t *opt)
{
    static char out[MW_FHIR_MAX];
    size_t len = 0;
    mw_err e = mw_message_to_fhir(m, opt, out, sizeof out, &len);
    cr_assert_eq(e, MW_OK, "mw_message_to_fhir: %s", mw_strerror(e));
    cr_assert_eq(len, strlen(out));
    cr_assert(is_json_object(out), "valid JSON: %s", out);
    return out;
}

static const char *audit(const mw_audit_event_t *ev)
{
    static char out[MW_FHIR_MAX];
    size_t len = 0;
    mw_err e = mw_audit_to_fhir(ev, NULL, T0, out, sizeof out, &len);
    cr_assert_eq(e, MW_OK, "mw_audit_to_fhir: %s", mw_strerror(e));
    cr_assert_eq(len, strlen(out));
    cr_assert(is_json_object(out), "valid JSON: %s", out);
    return out;
}

static void assert_has(const char *text, const char *needle)
{
    cr_assert_not_null(strstr(text, needle), "expected %s in %s", needle, text);
}

static void assert_lacks(const char *text, const char *needle)
{
    cr_assert_null(strstr(text, needle), "unexpected %s in %s", needle, text);
}

#define DEVICE_REF                                                                                 \
    "{\"type\":\"Device\",\"identifier\":{\"system\":\"urn:medwire:device\",\"value\":"            \
    "\"spo2-bed-07\"},\"display\":\"spo2-bed-07\"}"
#define GATEWAY_REF                                                                                \
    "{\"type\":\"Device\",\"identifier\":{\"system\":\"urn:medwire:gateway\",\"value\":"           \
    "\"medwire-gateway\"},\"display\":\"medwire-gateway\"}"

/* ---- exact output ------------------------------------------------------------------------ */

Test(fhir, spo2_observation_has_the_exact_expected_text)
{
    mw_message_t m = spo2(975, -1);
    cr_assert_str_eq(
        fhir(&m, NULL),
        "{\"resourceType\":\"Observation\","
        "\"identifier\":[{\"system\":\"urn:medwire:message\",\"value\":\"spo2-bed-07/42\"}],"
        "\"status\":\"final\","
        "\"category\":[{\"coding\":[{\"system\":"
        "\"http://terminology.hl7.org/CodeSystem/observation-category\",\"code\":\"vital-signs\","
        "\"display\":\"Vital Signs\"}]}],"
        "\"code\":{\"coding\":["
        "{\"system\":\"urn:iso:std:iso:11073:10101\",\"code\":\"150456\","
        "\"display\":\"MDC_PULS_OXIM_SAT_O2\"},"
        "{\"system\":\"http://loinc.org\",\"code\":\"2708-6\","
        "\"display\":\"Oxygen saturation in Arterial blood\"},"
        "{\"system\":\"http://loinc.org\",\"code\":\"59408-5\","
        "\"display\":\"Oxygen saturation in Arterial blood by Pulse oximetry\"}]},"
        "\"effectiveDateTime\":\"2023-11-14T22:13:20.123Z\","
        "\"valueQuantity\":{\"value\":97.5,\"unit\":\"%\","
        "\"system\":\"http://unitsofmeasure.org\",\"code\":\"%\"},"
        "\"device\":" DEVICE_REF "}");
}

#define GATEWAY_DEVICE_EXT                                                                         \
    "\"extension\":[{\"url\":"                                                                     \
    "\"http://hl7.org/fhir/StructureDefinition/observation-gatewayDevice\",\"valueReference\":"

Test(fhir, a_bridged_reading_names_the_device_that_measured_and_the_bridge_as_its_gateway)
{
    mw_message_t m = spo2(975, -1);
    const char *out = fhir(&m, NULL);
    assert_lacks(out, "\"extension\"");
    assert_lacks(out, "urn:medwire:source");

    strcpy(m.u.observation.source, "MON-7");
    out = fhir(&m, NULL);
    /* The extension in its place among Observation's elements: before identifier. */
    assert_has(out, "{\"resourceType\":\"Observation\"," GATEWAY_DEVICE_EXT DEVICE_REF
                    "}],\"identifier\":");
    assert_has(out, "\"device\":{\"type\":\"Device\",\"identifier\":{\"system\":"
                    "\"urn:medwire:source\",\"value\":\"MON-7\"},\"display\":\"MON-7\"}}");
    cr_assert(is_json_object(out), "%s", out);

    /* A Device resource sent alongside is the bridge's: its literal reference goes with it. */
    mw_fhir_options_t with_device = {.device_reference =
                                         "urn:uuid:0f0e0d0c-0b0a-4908-8706-050403020100"};
    out = fhir(&m, &with_device);
    assert_has(
        out, GATEWAY_DEVICE_EXT
        "{\"reference\":\"urn:uuid:0f0e0d0c-0b0a-4908-8706-050403020100\",\"type\":\"Device\","
        "\"identifier\":{\"system\":\"urn:medwire:device\",\"value\":\"spo2-bed-07\"}");
    assert_has(out, "\"device\":{\"type\":\"Device\",\"identifier\":{\"system\":"
                    "\"urn:medwire:source\",\"value\":\"MON-7\"}");

    mw_message_t a = alarm(MW_ALARM_HIGH, MW_ALARM_ACTIVE, "SpO2 low");
    strcpy(a.u.alarm.source, "ACME \"ICU4\"");
    out = fhir(&a, NULL);
    assert_has(out, GATEWAY_DEVICE_EXT DEVICE_REF "}]");
    assert_has(out, "\"value\":\"ACME \\\"ICU4\\\"\"},\"display\":\"ACME \\\"ICU4\\\"\"}");

    /* No blank identifier, and nothing unterminated. */
    strcpy(m.u.observation.source, "  ");
    assert_refused(&m, NULL);
    memset(a.u.alarm.source, 'x', sizeof a.u.alarm.source);
    assert_refused(&a, NULL);
}

Test(fhir, pulse_rate_carries_its_loinc_codes_and_ucum_per_minute)
{
    mw_message_t m = spo2(72, 0);
    m.u.observation.mdc_code = MW_MDC_PULS_OXIM_PULS_RATE;
    strcpy(m.u.observation.unit, "/min");
    const char *out = fhir(&m, NULL);
    assert_has(out, "{\"system\":\"urn:iso:std:iso:11073:10101\",\"code\":\"149530\","
                    "\"display\":\"MDC_PULS_OXIM_PULS_RATE\"}");
    assert_has(out,
               "{\"system\":\"http://loinc.org\",\"code\":\"8867-4\",\"display\":\"Heart rate\"}");
    assert_has(out, "{\"system\":\"http://loinc.org\",\"code\":\"8889-8\","
                    "\"display\":\"Heart rate by Pulse oximetry\"}");
    assert_has(out, "\"valueQuantity\":{\"value\":72,\"unit\":\"/min\","
                    "\"system\":\"http://unitsofmeasure.org\",\"code\":\"/min\"}");
    assert_has(out, "\"code\":\"vital-signs\"");
}

Test(fhir, an_unknown_mdc_code_is_kept_without_loinc_or_category)
{
    mw_message_t m = spo2(5, 0);
    m.u.observation.mdc_code = 123456u;
    strcpy(m.u.observation.unit, "mL");
    const char *out = fhir(&m, NULL);
    assert_has(out, "\"code\":{\"coding\":[{\"system\":\"urn:iso:std:iso:11073:10101\","
                    "\"code\":\"123456\"}]}");
    assert_lacks(out, "loinc");
    assert_lacks(out, "category");
}

Test(fhir, audit_event_has_the_exact_expected_text)
{
    mw_audit_event_t ev = {.event = MW_AUDIT_HANDSHAKE_FAILED,
                           .peer = "192.0.2.7:40000",
                           .device = "",
                           .err = MW_ECERT_REVOKED,
                           .foreign = -361,
                           .reason = "the device's certificate is revoked"};
    char want[MW_FHIR_MAX];
    snprintf(
        want, sizeof want,
        "{\"resourceType\":\"AuditEvent\","
        "\"type\":{\"system\":\"http://dicom.nema.org/resources/ontology/DCM\",\"code\":\"110113\","
        "\"display\":\"Security Alert\"},"
        "\"subtype\":[{\"system\":\"http://dicom.nema.org/resources/ontology/DCM\","
        "\"code\":\"110126\",\"display\":\"Node Authentication\"},"
        "{\"system\":\"urn:medwire:audit-event\",\"code\":\"handshake_failed\"}],"
        "\"action\":\"E\",\"recorded\":\"2023-11-14T22:13:20.123Z\",\"outcome\":\"4\","
        "\"outcomeDesc\":\"the device's certificate is revoked\","
        "\"agent\":[{\"type\":{\"coding\":[{\"system\":"
        "\"http://dicom.nema.org/resources/ontology/DCM\",\"code\":\"110153\","
        "\"display\":\"Source Role ID\"}]},\"requestor\":true,"
        "\"network\":{\"address\":\"192.0.2.7\",\"type\":\"2\"}},"
        "{\"type\":{\"coding\":[{\"system\":\"http://dicom.nema.org/resources/ontology/DCM\","
        "\"code\":\"110152\",\"display\":\"Destination Role ID\"}]},\"who\":" GATEWAY_REF ","
        "\"requestor\":false}],"
        "\"source\":{\"observer\":" GATEWAY_REF ",\"type\":[{\"system\":"
        "\"http://terminology.hl7.org/CodeSystem/security-source-type\",\"code\":\"4\","
        "\"display\":\"Application Server\"}]},"
        "\"entity\":[{\"type\":{\"system\":"
        "\"http://terminology.hl7.org/CodeSystem/audit-entity-type\",\"code\":\"2\","
        "\"display\":\"System Object\"},\"detail\":["
        "{\"type\":\"peer\",\"valueString\":\"192.0.2.7:40000\"},"
        "{\"type\":\"error\",\"valueString\":\"%s\"},"
        "{\"type\":\"foreign-code\",\"valueString\":\"-361\"}]}]}",
        mw_strerror(MW_ECERT_REVOKED));
    cr_assert_str_eq(audit(&ev), want);
}

/* ---- values ------------------------------------------------------------------------------ */

static void assert_value(int64_t mantissa, int32_t exponent, const char *expected)
{
    mw_message_t m = spo2(mantissa, exponent);
    char want[128];
    snprintf(want, sizeof want, "\"valueQuantity\":{\"value\":%s,", expected);
    assert_has(fhir(&m, NULL), want);
}

Test(fhir, values_are_exact_decimals_that_keep_their_digits)
{
    assert_value(975, -1, "97.5");
    assert_value(970, -1, "97.0"); /* the trailing zero is the precision: FHIR keeps it */
    assert_value(97, 0, "97");
    assert_value(5, -3, "0.005");
    assert_value(-5, -3, "-0.005");
    assert_value(12, 3, "12000");
    assert_value(0, 3, "0");
    assert_value(975, -30, "975e-30");
    assert_value(INT64_MIN, 0, "-9223372036854775808");
}

/* ---- status mapping ---------------------------------------------------------------------- */

Test(fhir, measurement_status_maps_as_the_mapping_document_says)
{
    mw_message_t m = spo2(97, 0);
    const char *out;

    m.u.observation.status = MW_MEAS_QUESTIONABLE;
    out = fhir(&m, NULL);
    assert_has(out, "\"status\":\"final\"");
    assert_has(out, "\"interpretation\":[{\"coding\":[{\"system\":"
                    "\"http://terminology.hl7.org/CodeSystem/measurement-status\","
                    "\"code\":\"questionable\",\"display\":\"Questionable\"}]}]");
    assert_has(out, "\"valueQuantity\"");

    m.u.observation.status = MW_MEAS_CALIBRATING;
    out = fhir(&m, NULL);
    assert_has(out, "\"status\":\"preliminary\"");
    assert_has(out, "\"code\":\"calibration-ongoing\"");

    m.u.observation.status = MW_MEAS_INVALID;
    out = fhir(&m, NULL);
    assert_has(out, "\"status\":\"final\"");
    assert_has(out, "\"dataAbsentReason\":{\"coding\":[{\"system\":"
                    "\"http://terminology.hl7.org/CodeSystem/data-absent-reason\","
                    "\"code\":\"error\",\"display\":\"Error\"}]}");
    assert_lacks(out, "valueQuantity"); /* obs-6: never both */

    m.u.observation.status = MW_MEAS_UNAVAILABLE;
    out = fhir(&m, NULL);
    assert_has(out, "\"code\":\"unknown\"");
    assert_lacks(out, "valueQuantity");

    m.u.observation.status = MW_MEAS_TEST_DATA;
    out = fhir(&m, NULL);
    assert_has(out, "{\"resourceType\":\"Observation\",\"meta\":{\"security\":[{\"system\":"
                    "\"http://terminology.hl7.org/CodeSystem/v3-ActReason\",\"code\":\"HTEST\"");
    assert_has(out, "\"valueQuantity\"");

    m.u.observation.status = (mw_meas_status)99;
    char buf[MW_FHIR_MAX];
    cr_assert_eq(mw_message_to_fhir(&m, NULL, buf, sizeof buf, NULL), MW_EINVAL);
    cr_assert_str_empty(buf);
}

Test(fhir, clock_trust_patient_and_time_follow_the_options_and_the_envelope)
{
    mw_message_t m = spo2(97, 0);
    mw_fhir_options_t opt = {.patient_reference = "Patient/bed-7",
                             .device_system = "https://hospital.example/devices",
                             .message_system = "https://hospital.example/medwire"};
    m.time_synced = false;
    const char *out = fhir(&m, &opt);
    assert_has(out, "\"subject\":{\"reference\":\"Patient/bed-7\"}");
    assert_has(out, "\"identifier\":[{\"system\":\"https://hospital.example/medwire\"");
    assert_has(out, "\"identifier\":{\"system\":\"https://hospital.example/devices\"");
    assert_has(out, "\"note\":[{\"text\":\"The device's clock was not synchronised");
    assert_lacks(out, "\"device\":{\"reference\"");
    /* A Device resource sent alongside (a transaction Bundle's entry) is referenced literally,
     * and the identifier stays. */
    mw_fhir_options_t with_device = {.device_reference = "urn:uuid:0f0e0d0c-0b0a-4908-8706-050403020100"};
    assert_has(fhir(&m, &with_device),
               "\"device\":{\"reference\":\"urn:uuid:0f0e0d0c-0b0a-4908-8706-050403020100\","
               "\"type\":\"Device\",\"identifier\":{\"system\":\"urn:medwire:device\"");

    /* time_ms 0: the envelope's time; both 0 or past year 9999: no time at all. */
    m.u.observation.time_ms = 0;
    assert_has(fhir(&m, NULL), "\"effectiveDateTime\":\"2023-11-14T22:13:20.123Z\"");
    m.device_time_ms = 0;
    out = fhir(&m, NULL);
    assert_lacks(out, "effectiveDateTime");
    assert_lacks(out, "note");
    m.u.observation.time_ms = 253402300800000ull; /* 10000-01-01 */
    assert_lacks(fhir(&m, NULL), "effectiveDateTime");
    m.u.observation.time_ms = 253402300799999ull;
    assert_has(fhir(&m, NULL), "\"effectiveDateTime\":\"9999-12-31T23:59:59.999Z\"");
    m.u.observation.time_ms = 1;
    assert_has(fhir(&m, NULL), "\"effectiveDateTime\":\"1970-01-01T00:00:00.001Z\"");
}

/* The library converts times by arithmetic (no gmtime_r in core): it must agree with the C
 * library's conversion everywhere from 1970 to 9999, leap days and century years included. */
Test(fhir, times_agree_with_the_c_library_from_1970_to_9999)
{
    mw_message_t m = spo2(97, 0);
    uint64_t x = 88172645463325252ull;
    for (int i = 0; i < 20000; i++) {
        uint64_t ms;
        if (i < 6) {
            static const uint64_t edge[6] = {951782400000ull,   /* 2000-02-29 */
                                             951868800000ull,   /* 2000-03-01 */
                                             4107456000000ull,  /* 2100-02-28 */
                                             4107542400000ull,  /* 2100-03-01 */
                                             68169600000ull,    /* 1972-02-29 */
                                             253402300799999ull};
            ms = edge[i];
        } else {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            ms = 1 + x % 253402300799999ull;
        }
        m.u.observation.time_ms = ms;
        time_t t = (time_t)(ms / 1000);
        struct tm tm;
        cr_assert_not_null(gmtime_r(&t, &tm));
        char want[80];
        snprintf(want, sizeof want,
                 "\"effectiveDateTime\":\"%04d-%02d-%02dT%02d:%02d:%02d.%03dZ\"",
                 tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
                 (int)(ms % 1000));
        const char *out = fhir(&m, NULL);
        cr_assert(strstr(out, want) != NULL, "%llu ms: want %s in %s", (unsigned long long)ms,
                  want, out);
    }
}

/* ---- alarms, status, communication loss -------------------------------------------------- */

Test(fhir, alarms_are_observations_with_state_as_value_and_priority_as_component)
{
    static const struct {
        mw_alarm_priority prio;
        const char *code, *display;
    } prios[] = {{MW_ALARM_INFO, "info", "Information Only"},
                 {MW_ALARM_LOW, "low", "Low Priority"},
                 {MW_ALARM_MEDIUM, "medium", "Medium Priority"},
                 {MW_ALARM_HIGH, "high", "High Priority"}};
    static const struct {
        mw_alarm_state state;
        const char *code;
    } states[] = {{MW_ALARM_INACTIVE, "inactive"},
                  {MW_ALARM_ACTIVE, "active"},
                  {MW_ALARM_ACKNOWLEDGED, "acknowledged"},
                  {MW_ALARM_LATCHED, "latched"}};
    char want[256];
    for (size_t i = 0; i < 4; i++) {
        mw_message_t m = alarm(prios[i].prio, states[i].state, "SpO2 low");
        const char *out = fhir(&m, NULL);
        assert_has(out, "\"category\":[{\"coding\":[{\"system\":\"urn:medwire:concept\","
                        "\"code\":\"alarm\",\"display\":\"Device alarm\"}]}]");
        assert_has(out, "\"code\":{\"coding\":[{\"system\":\"urn:iso:std:iso:11073:10101\","
                        "\"code\":\"196670\",\"display\":\"MDC_EVT_LO\"}],\"text\":\"SpO2 low\"}");
        snprintf(want, sizeof want,
                 "\"valueCodeableConcept\":{\"coding\":[{\"system\":\"urn:medwire:alarm-state\","
                 "\"code\":\"%s\"",
                 states[i].code);
        assert_has(out, want);
        snprintf(want, sizeof want,
                 "{\"system\":\"http://terminology.hl7.org/CodeSystem/devicealert-priority\","
                 "\"code\":\"%s\",\"display\":\"%s\"}",
                 prios[i].code, prios[i].display);
        assert_has(out, want);
        assert_has(out, "\"code\":\"alarm-priority\"");
        assert_has(out, "\"identifier\":[{\"system\":\"urn:medwire:message\","
                        "\"value\":\"spo2-bed-07/42\"}]");
    }
    mw_message_t m = alarm(MW_ALARM_HIGH, MW_ALARM_ACTIVE, "");
    assert_lacks(fhir(&m, NULL), "\"text\""); /* FHIR has no empty strings */
    m.u.alarm.state = (mw_alarm_state)7;
    char buf[MW_FHIR_MAX];
    cr_assert_eq(mw_message_to_fhir(&m, NULL, buf, sizeof buf, NULL), MW_EINVAL);
}

Test(fhir, device_status_is_an_observation_about_the_device)
{
    mw_message_t m = header(MW_MSG_STATUS, MW_PRIORITY_STATUS);
    m.u.status.battery_pct = 81;
    m.u.status.on_mains = true;
    m.u.status.uptime_s = 86400;
    m.u.status.queue_depth = 4000000000u; /* beyond FHIR's integer: a Quantity holds it */
    mw_fhir_options_t opt = {.patient_reference = "Patient/1"};
    const char *out = fhir(&m, &opt);
    assert_has(out, "\"code\":{\"coding\":[{\"system\":\"urn:medwire:concept\","
                    "\"code\":\"device-status\",\"display\":\"Device status\"}]}");
    assert_has(out, "\"subject\":" DEVICE_REF);
    assert_lacks(out, "Patient/1");
    assert_has(out, "{\"system\":\"urn:iso:std:iso:11073:10101\",\"code\":\"67996\","
                    "\"display\":\"MDC_ATTR_VAL_BATT_CHARGE\"}]},\"valueQuantity\":{\"value\":81,"
                    "\"unit\":\"%\",\"system\":\"http://unitsofmeasure.org\",\"code\":\"%\"}");
    assert_has(out, "\"code\":\"67925\"");
    assert_has(out, "\"code\":\"on-mains\"");
    assert_has(out, "\"valueQuantity\":{\"value\":86400,\"unit\":\"s\"");
    assert_has(out, "\"valueQuantity\":{\"value\":4000000000,\"unit\":\"messages\","
                    "\"system\":\"http://unitsofmeasure.org\",\"code\":\"{messages}\"}");
    m.u.status.on_mains = false;
    assert_has(fhir(&m, NULL), "\"code\":\"on-battery\"");
}

Test(fhir, communication_loss_and_its_end_are_one_technical_alarm_condition)
{
    mw_message_t m = header(MW_MSG_COMM_LOSS, MW_PRIORITY_ALARM);
    m.seq = 0; /* the gateway's own event */
    m.time_synced = false;
    m.u.link.silent_ms = 65000;
    m.u.link.last_seen_ms = T0 - 65000;
    const char *out = fhir(&m, NULL);
    assert_lacks(out, "identifier\":["); /* nothing to deduplicate on */
    assert_lacks(out, "note");           /* the time is the gateway's */
    assert_has(out, "\"code\":\"communication-loss\"");
    assert_has(out, "\"code\":\"alarm\"");
    assert_has(out, "\"valueCodeableConcept\":{\"coding\":[{\"system\":\"urn:medwire:alarm-state\","
                    "\"code\":\"active\"");
    assert_has(out, "\"valueQuantity\":{\"value\":65000,\"unit\":\"ms\"");
    assert_has(out, "\"valueDateTime\":\"2023-11-14T22:12:15.123Z\"");
    m.type = MW_MSG_COMM_RESTORED;
    m.u.link.last_seen_ms = 0;
    out = fhir(&m, NULL);
    assert_has(out, "\"code\":\"inactive\"");
    assert_lacks(out, "last-seen");
}

Test(fhir, a_gap_record_is_an_observation_about_the_device_with_the_count_lost)
{
    mw_message_t m = header(MW_MSG_GAP, MW_PRIORITY_ALARM);
    m.u.gap.priority = MW_PRIORITY_OBSERVATION;
    m.u.gap.reason = MW_GAP_EVICTED;
    m.u.gap.count = 12;
    m.u.gap.first_seq = 30;
    m.u.gap.last_seq = 18446744073709551615ull;
    const char *out = fhir(&m, NULL);
    assert_has(out, "\"code\":\"data-gap\"");
    assert_has(out, "\"subject\":" DEVICE_REF);
    assert_has(out, "\"valueQuantity\":{\"value\":12,\"unit\":\"messages\"");
    assert_has(out, "\"code\":\"evicted\"");
    assert_has(out, "\"code\":\"observation\"");
    assert_has(out, "\"valueString\":\"30-18446744073709551615\"");
    m.u.gap.reason = MW_GAP_CORRUPT;
    m.u.gap.priority = 0;
    m.u.gap.first_seq = m.u.gap.last_seq = 0;
    out = fhir(&m, NULL);
    assert_has(out, "\"code\":\"corrupt\"");
    assert_has(out, "\"code\":\"unknown\"");
    assert_lacks(out, "gap-sequence-range");
}

/* ---- refusals ---------------------------------------------------------------------------- */

static void assert_refused(const mw_message_t *m, const mw_fhir_options_t *opt)
{
    char buf[MW_FHIR_MAX];
    size_t len = 99;
    memset(buf, 'x', sizeof buf);
    cr_assert_eq(mw_message_to_fhir(m, opt, buf, sizeof buf, &len), MW_EINVAL);
    cr_assert_str_empty(buf);
    cr_assert_eq(len, 0);
}

/* A command's result is the Task the command was, owned by the device. */
Test(fhir, a_command_result_is_a_task)
{
    mw_message_t m = header(MW_MSG_COMMAND_RESULT, MW_PRIORITY_STATUS);
    m.u.command_result.command_id = 3;
    strcpy(m.u.command_result.detail, "ok");
    const char *out = fhir(&m, NULL);
    assert_has(out, "{\"resourceType\":\"Task\",\"identifier\":[{");
    assert_has(out, "\"groupIdentifier\":{\"system\":\"urn:medwire:command\",\"value\":\"3\"}");
    assert_has(out, "\"status\":\"completed\",\"statusReason\":{\"coding\":[{\"system\":"
                    "\"urn:medwire:command-status\",\"code\":\"done\"}],\"text\":\"ok\"}");
    assert_has(out, "\"intent\":\"order\"");
    assert_has(out, "\"lastModified\":\"");
    assert_has(out, "\"owner\":" DEVICE_REF "}");
    static const struct {
        mw_command_status st;
        const char *fhir_status;
    } map[] = {{MW_CMD_REFUSED_REPLAY, "rejected"},
               {MW_CMD_REFUSED_EXPIRED, "rejected"},
               {MW_CMD_UNSUPPORTED, "rejected"},
               {MW_CMD_FAILED, "failed"}};
    for (size_t i = 0; i < sizeof map / sizeof map[0]; i++) {
        m.u.command_result.status = map[i].st;
        char want[64];
        snprintf(want, sizeof want, "\"status\":\"%s\"", map[i].fhir_status);
        assert_has(fhir(&m, NULL), want);
    }
    m.u.command_result.detail[0] = '\0';
    cr_expect_null(strstr(fhir(&m, NULL), "\"text\""), "a blank detail is left out");
    m.u.command_result.status = (mw_command_status)9;
    assert_refused(&m, NULL);
    m.u.command_result.status = MW_CMD_DONE;
    memset(m.u.command_result.detail, 'x', sizeof m.u.command_result.detail);
    assert_refused(&m, NULL);
}

Test(fhir, kinds_without_clinical_meaning_are_refused)
{
    mw_message_t m = header(MW_MSG_UNKNOWN, MW_PRIORITY_STATUS);
    assert_refused(&m, NULL);
    m.type = (mw_msg_type)77;
    assert_refused(&m, NULL);
}

Test(fhir, malformed_messages_and_options_are_refused)
{
    mw_message_t m = spo2(97, 0);
    m.device_id[0] = '\0'; /* a resource must name its device */
    assert_refused(&m, NULL);
    m = spo2(97, 0);
    strcpy(m.device_id, "   ");
    assert_refused(&m, NULL);
    m = spo2(97, 0);
    memset(m.device_id, 'a', sizeof m.device_id); /* no NUL */
    assert_refused(&m, NULL);
    m = spo2(97, 0);
    memset(m.u.observation.unit, 'a', sizeof m.u.observation.unit);
    assert_refused(&m, NULL);
    m = spo2(97, 0);
    m.priority = (mw_priority)9;
    assert_refused(&m, NULL);
    m = spo2(97, 0);
    mw_fhir_options_t bad_system = {.device_system = "urn:has space"};
    assert_refused(&m, &bad_system);
    mw_fhir_options_t bad_patient = {.patient_reference = "Patient/\"1\""};
    assert_refused(&m, &bad_patient);
    mw_fhir_options_t bad_device = {.device_reference = "urn:uuid:a b"};
    assert_refused(&m, &bad_device);
    mw_fhir_options_t blank_name = {.gateway_name = " "};
    assert_refused(&m, &blank_name);
    char buf[16];
    cr_assert_eq(mw_message_to_fhir(NULL, NULL, buf, sizeof buf, NULL), MW_EINVAL);
    cr_assert_eq(mw_message_to_fhir(&m, NULL, NULL, 5, NULL), MW_EINVAL);

    mw_audit_event_t ev = {.event = MW_AUDIT_REPLAY};
    cr_assert_eq(mw_audit_to_fhir(NULL, NULL, T0, buf, sizeof buf, NULL), MW_EINVAL);
    cr_assert_eq(mw_audit_to_fhir(&ev, NULL, 253402300800000ull, buf, sizeof buf, NULL), MW_EINVAL,
                 "recorded must be a four-digit-year instant");
    cr_assert_eq(mw_audit_to_fhir(&ev, &bad_system, T0, buf, sizeof buf, NULL), MW_EINVAL);
}

/* ---- hostile strings --------------------------------------------------------------------- */

Test(fhir, hostile_strings_are_escaped_and_control_characters_replaced)
{
    mw_message_t m = alarm(MW_ALARM_HIGH, MW_ALARM_ACTIVE, "\"}],\\x\x01\t\n\xff");
    strcpy(m.device_id, "a\"b\\c\x1f");
    strcpy(m.u.alarm.text, "\"}],\\x\x01\t\n\xff");
    const char *out = fhir(&m, NULL);
    /* Quote and backslash escaped; tab and LF allowed by FHIR, written as escapes; other
     * controls, forbidden in FHIR strings, become U+FFFD; 0xFF is U+00FF. */
    assert_has(out, "\"text\":\"\\\"}],\\\\x\\ufffd\\u0009\\u000a\\u00ff\"");
    assert_has(out, "\"value\":\"a\\\"b\\\\c\\ufffd/42\"");
    assert_has(out, "\"display\":\"a\\\"b\\\\c\\ufffd\"");

    /* A unit that cannot be a UCUM code is text only; a blank one is left out. */
    m = spo2(97, 0);
    strcpy(m.u.observation.unit, "mm Hg\"");
    out = fhir(&m, NULL);
    assert_has(out, "\"valueQuantity\":{\"value\":97,\"unit\":\"mm Hg\\\"\"}");
    strcpy(m.u.observation.unit, " ");
    assert_has(fhir(&m, NULL), "\"valueQuantity\":{\"value\":97}");

    mw_audit_event_t ev = {.event = "odd event\x02",
                           .peer = "[2001:db8::1]:5684",
                           .device = "dev\"1",
                           .err = MW_EIDENTITY,
                           .reason = "claims \"dev-2\"\r\n\x7f"};
    out = audit(&ev);
    assert_has(out, "{\"system\":\"urn:medwire:audit-event\",\"display\":\"odd event\\ufffd\"}");
    assert_has(out, "\"outcomeDesc\":\"claims \\\"dev-2\\\"\\u000d\\u000a\\u007f\"");
    assert_has(out, "\"network\":{\"address\":\"2001:db8::1\",\"type\":\"2\"}");
    assert_has(out, "\"value\":\"dev\\\"1\"");
    /* Unterminated strings are read to their documented bounds only. */
    char longpeer[200], longreason[900];
    memset(longpeer, '9', sizeof longpeer);
    memset(longreason, 'r', sizeof longreason);
    ev.peer = longpeer;
    ev.reason = longreason;
    ev.event = NULL;
    ev.device = NULL;
    out = audit(&ev);
    assert_lacks(out, "urn:medwire:audit-event");
}

/* ---- audit mapping ----------------------------------------------------------------------- */

/* @req IEC62443-CR2.8 IEC62443-CR6.1 MDS2-AUDT */
Test(fhir, every_audit_event_gets_its_documented_type_subtype_and_outcome)
{
    static const struct {
        const char *event, *type, *subtype, *failure;
        bool own;
    } cases[] = {
        {MW_AUDIT_HANDSHAKE_FAILED, "110113", "110126", "4", false},
        {MW_AUDIT_SESSION_ESTABLISHED, "110114", "110122", "4", false},
        {MW_AUDIT_SESSION_CLOSED, "110114", "110123", "4", false},
        {MW_AUDIT_REKEY_STARTED, "110114", "110122", "4", false},
        {MW_AUDIT_SESSION_ROTATED, "110114", "110122", "4", false},
        {MW_AUDIT_IDENTITY_MISMATCH, "110113", NULL, "4", false},
        {MW_AUDIT_BAD_MESSAGE, "110113", NULL, "4", false},
        {MW_AUDIT_PEER_LIMIT, "110113", NULL, "4", false},
        {MW_AUDIT_REPLAY, "110113", NULL, "4", false},
        {MW_AUDIT_STORE_FAILED, "110113", NULL, "8", false},
        {MW_AUDIT_COMMAND_REFUSED, "110113", NULL, "4", false},
        {MW_AUDIT_COMMAND_EXPIRED, "110113", NULL, "4", false},
        {MW_AUDIT_COMM_LOSS, "110113", NULL, "4", false},
        {MW_AUDIT_CRL_RELOADED, "110113", "110129", "8", true},
        {MW_AUDIT_CRL_RELOAD_FAILED, "110113", "110129", "8", true},
        {"gateway_started", "110100", "110120", "8", true},
        {"gateway_stopped", "110100", "110121", "8", true},
        {"something_new", "110113", NULL, "4", false},
    };
    char want[256];
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        mw_audit_event_t ev = {.event = cases[i].event,
                               .peer = "127.0.0.1:5000",
                               .device = "dev-1",
                               .err = MW_OK,
                               .reason = "why"};
        const char *out = audit(&ev);
        snprintf(want, sizeof want,
                 "\"type\":{\"system\":\"http://dicom.nema.org/resources/ontology/DCM\","
                 "\"code\":\"%s\"",
                 cases[i].type);
        assert_has(out, want);
        if (cases[i].subtype != NULL) {
            snprintf(want, sizeof want,
                     "\"subtype\":[{\"system\":\"http://dicom.nema.org/resources/ontology/DCM\","
                     "\"code\":\"%s\"",
                     cases[i].subtype);
            assert_has(out, want);
        } else {
            assert_has(out, "\"subtype\":[{\"system\":\"urn:medwire:audit-event\"");
        }
        snprintf(want, sizeof want, "{\"system\":\"urn:medwire:audit-event\",\"code\":\"%s\"}",
                 cases[i].event);
        assert_has(out, want);
        assert_has(out, "\"outcome\":\"0\"");
        if (cases[i].own) {
            assert_has(out, "\"code\":\"110150\"");
            assert_lacks(out, "110153");
        } else {
            assert_has(out, "\"code\":\"110153\"");
            assert_has(out, "\"requestor\":false");
        }
        ev.err = MW_EIO;
        snprintf(want, sizeof want, "\"outcome\":\"%s\"", cases[i].failure);
        assert_has(audit(&ev), want);
    }
}

Test(fhir, the_peer_becomes_an_agent_and_the_device_its_identity_once_known)
{
    mw_audit_event_t ev = {.event = MW_AUDIT_SESSION_ESTABLISHED,
                           .peer = "198.51.100.4:61000",
                           .device = "pump-3",
                           .err = MW_OK,
                           .reason = ""};
    const char *out = audit(&ev);
    assert_has(out,
               "\"who\":{\"type\":\"Device\",\"identifier\":{\"system\":\"urn:medwire:device\","
               "\"value\":\"pump-3\"},\"display\":\"pump-3\"},\"requestor\":true,"
               "\"network\":{\"address\":\"198.51.100.4\",\"type\":\"2\"}");
    assert_has(out, "\"entity\":[{\"what\":{\"type\":\"Device\"");
    assert_lacks(out, "outcomeDesc");
    assert_lacks(out, "\"error\"");
    ev.peer = "gw.example:5684";
    assert_has(audit(&ev), "\"network\":{\"address\":\"gw.example\",\"type\":\"1\"}");
    ev.peer = "";
    ev.device = "";
    out = audit(&ev);
    assert_lacks(out, "network");
    assert_lacks(out, "entity");
    mw_fhir_options_t opt = {.gateway_name = "ward-3"};
    char buf[MW_FHIR_MAX];
    cr_assert_eq(mw_audit_to_fhir(&ev, &opt, T0, buf, sizeof buf, NULL), MW_OK);
    assert_has(buf, "\"observer\":{\"type\":\"Device\",\"identifier\":{\"system\":"
                    "\"urn:medwire:gateway\",\"value\":\"ward-3\"},\"display\":\"ward-3\"}");
}

/* ---- buffer bounds ----------------------------------------------------------------------- */

/* Every size below the needed one: MW_ENOSPC, the needed length, an empty string, and not
 * one byte written at or past out_size. */
static void assert_bounded(const mw_message_t *m, const mw_audit_event_t *ev)
{
    static char full[MW_FHIR_MAX], buf[MW_FHIR_MAX + 16];
    size_t need = 0, len;
    mw_err e = m ? mw_message_to_fhir(m, NULL, full, sizeof full, &need)
                 : mw_audit_to_fhir(ev, NULL, T0, full, sizeof full, &need);
    cr_assert_eq(e, MW_OK);
    cr_assert_eq(m ? mw_message_to_fhir(m, NULL, NULL, 0, &len)
                   : mw_audit_to_fhir(ev, NULL, T0, NULL, 0, &len),
                 MW_ENOSPC);
    cr_assert_eq(len, need, "measuring with no buffer gives the length");
    for (size_t size = 1; size <= need + 1; size++) {
        memset(buf, '#', sizeof buf);
        len = 0;
        e = m ? mw_message_to_fhir(m, NULL, buf, size, &len)
              : mw_audit_to_fhir(ev, NULL, T0, buf, size, &len);
        cr_assert_eq(len, need);
        if (size <= need) {
            cr_assert_eq(e, MW_ENOSPC, "size %zu of %zu", size, need);
            cr_assert_eq(buf[0], '\0');
        } else {
            cr_assert_eq(e, MW_OK);
            cr_assert_str_eq(buf, full);
        }
        for (size_t i = size; i < sizeof buf; i++)
            cr_assert_eq(buf[i], '#', "byte %zu written with out_size %zu", i, size);
    }
}

Test(fhir, a_small_buffer_gets_enospc_and_is_never_overrun)
{
    mw_message_t m = spo2(975, -1);
    assert_bounded(&m, NULL);
    m = alarm(MW_ALARM_HIGH, MW_ALARM_ACTIVE, "SpO2 \"low\"");
    assert_bounded(&m, NULL);
    m = header(MW_MSG_STATUS, MW_PRIORITY_STATUS);
    assert_bounded(&m, NULL);
    m = header(MW_MSG_COMM_LOSS, MW_PRIORITY_ALARM);
    m.u.link.last_seen_ms = T0;
    assert_bounded(&m, NULL);
    mw_audit_event_t ev = {.event = MW_AUDIT_HANDSHAKE_FAILED,
                           .peer = "[::1]:5684",
                           .device = "dev-1",
                           .err = MW_ECERT_UNTRUSTED,
                           .foreign = -188,
                           .reason = "unknown CA"};
    assert_bounded(NULL, &ev);
}

/* Everything at its longest and made of bytes that escape to six characters: the documented
 * MW_FHIR_MAX holds it with the default options. */
Test(fhir, the_worst_case_fits_in_mw_fhir_max)
{
    char longest = 0;
    size_t len, worst = 0;
    char buf[MW_FHIR_MAX];
    mw_message_t m;

    memset(&m, 0, sizeof m);
    memset(m.device_id, 0xff, MW_ID_MAX);
    m.seq = UINT64_MAX;
    m.space = UINT64_MAX;
    m.possible_duplicate = true;
    m.device_time_ms = 253402300799999ull;
    m.priority = MW_PRIORITY_ALARM;
    for (int type = MW_MSG_OBSERVATION; type <= MW_MSG_GAP; type++) {
        m.type = (mw_msg_type)type;
        memset(&m.u, 0, sizeof m.u);
        switch (m.type) {
        case MW_MSG_OBSERVATION:
            m.u.observation.mdc_code = MW_MDC_PULS_OXIM_SAT_O2;
            m.u.observation.mantissa = INT64_MIN;
            m.u.observation.exponent = -20;
            memset(m.u.observation.unit, '"', MW_UNIT_MAX); /* 2 each, and not UCUM */
            memset(m.u.observation.source, 0xff, MW_SOURCE_MAX);
            m.u.observation.status = MW_MEAS_CALIBRATING;
            m.u.observation.time_ms = 253402300799999ull;
            break;
        case MW_MSG_ALARM:
            m.u.alarm.mdc_code = UINT32_MAX;
            m.u.alarm.priority = MW_ALARM_MEDIUM;
            m.u.alarm.state = MW_ALARM_ACKNOWLEDGED;
            m.u.alarm.time_ms = 253402300799999ull;
            memset(m.u.alarm.text, 0xff, MW_ALARM_TEXT_MAX);
            memset(m.u.alarm.source, 0xff, MW_SOURCE_MAX);
            break;
        case MW_MSG_STATUS:
            m.u.status.battery_pct = UINT32_MAX;
            m.u.status.uptime_s = UINT64_MAX;
            m.u.status.queue_depth = UINT32_MAX;
            break;
        case MW_MSG_GAP:
            m.u.gap.priority = MW_PRIORITY_OBSERVATION;
            m.u.gap.reason = MW_GAP_EVICTED;
            m.u.gap.count = UINT64_MAX;
            m.u.gap.first_seq = UINT64_MAX;
            m.u.gap.last_seq = UINT64_MAX;
            break;
        case MW_MSG_COMMAND_RESULT:
            m.u.command_result.command_id = UINT64_MAX;
            m.u.command_result.status = MW_CMD_REFUSED_EXPIRED;
            memset(m.u.command_result.detail, 0xff, MW_COMMAND_DETAIL_MAX);
            break;
        default:
            m.u.link.silent_ms = UINT64_MAX;
            m.u.link.last_seen_ms = 253402300799999ull;
            break;
        }
        mw_fhir_options_t opt = {.patient_reference = "Patient/1"};
        cr_assert_eq(mw_message_to_fhir(&m, &opt, NULL, 0, &len), MW_ENOSPC);
        if (len > worst) {
            worst = len;
            longest = (char)('0' + type);
        }
        cr_assert_eq(mw_message_to_fhir(&m, NULL, buf, sizeof buf, &len), MW_OK);
    }
    char event[64], peer[64], device[MW_ID_MAX + 1], reason[512];
    memset(event, 0xff, sizeof event);
    memset(peer, 0xff, sizeof peer);
    memset(device, 0xff, sizeof device);
    memset(reason, 0xff, sizeof reason);
    mw_audit_event_t ev = {.event = event,
                           .peer = peer,
                           .device = device,
                           .err = MW_EHANDSHAKE_TIMEOUT,
                           .foreign = INT32_MIN,
                           .reason = reason};
    cr_assert_eq(mw_audit_to_fhir(&ev, NULL, 253402300799999ull, NULL, 0, &len), MW_ENOSPC);
    cr_assert_lt(len, MW_FHIR_MAX, "the worst audit event needs %zu bytes", len);
    cr_assert_lt(worst, MW_FHIR_MAX, "the worst message (type %c) needs %zu bytes", longest, worst);
    cr_log_info("worst cases: message %zu bytes, audit event %zu bytes (MW_FHIR_MAX %d)", worst,
                len, MW_FHIR_MAX);
}

Test(fhir, a_resent_message_is_tagged_a_possible_duplicate_and_its_identifier_names_its_space)
{
    mw_message_t m = spo2(97, 0);
    m.space = 0x00c0ffee12345678ull;
    m.possible_duplicate = true;
    const char *out = fhir(&m, NULL);
    assert_has(out, "\"meta\":{\"tag\":[{\"system\":\"urn:medwire:concept\","
                    "\"code\":\"possible-duplicate\",\"display\":\"Possible duplicate\"}]}");
    assert_has(out, "\"identifier\":[{\"system\":\"urn:medwire:message\","
                    "\"value\":\"spo2-bed-07/00c0ffee12345678/42\"}]");
    m.u.observation.status = MW_MEAS_TEST_DATA;
    out = fhir(&m, NULL);
    assert_has(out, "\"meta\":{\"security\":[{\"system\":"
                    "\"http://terminology.hl7.org/CodeSystem/v3-ActReason\",\"code\":\"HTEST\","
                    "\"display\":\"test health data\"}],\"tag\":[{\"system\":"
                    "\"urn:medwire:concept\",\"code\":\"possible-duplicate\"");
    m = spo2(97, 0);
    assert_lacks(fhir(&m, NULL), "\"meta\"");
}

/* The terminology table reaches FHIR: an infusion rate is named, with no vital-signs category
 * and no LOINC code the table does not give. */
Test(fhir, an_infusion_rate_is_named_from_the_terminology_table)
{
    mw_message_t m = spo2(125, -1);
    m.u.observation.mdc_code = MW_MDC_FLOW_FLUID_PUMP;
    strcpy(m.u.observation.unit, "mL/h");
    const char *out = fhir(&m, NULL);
    assert_has(out, "{\"system\":\"urn:iso:std:iso:11073:10101\",\"code\":\"157784\","
                    "\"display\":\"MDC_FLOW_FLUID_PUMP\"}");
    cr_expect_null(strstr(out, "loinc.org"), "%s", out);
    cr_expect_null(strstr(out, "vital-signs"), "%s", out);
    m.u.observation.mdc_code = MW_MDC_RESP_RATE;
    strcpy(m.u.observation.unit, "/min");
    out = fhir(&m, NULL);
    assert_has(out, "{\"system\":\"http://loinc.org\",\"code\":\"9279-1\","
                    "\"display\":\"Respiratory rate\"}");
    assert_has(out, "\"code\":\"vital-signs\"");
}
