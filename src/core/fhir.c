/* SPDX-License-Identifier: Apache-2.0 */
/* fhir.c -- messages as FHIR R4 Observations and audit records as AuditEvents (one JSON each). */
#include <stdbool.h>
#include <string.h>

#include "medwire/fhir.h"

#include "core/json.h"
#include "core/names.h"

/* Code and identifier systems. The external ones are HL7's, DICOM's and the standards' own
 * URIs; the urn:medwire ones name what no published R4 code system covers
 * (docs/fhir-mapping.md lists every code). */
#define SYS_MDC               "urn:iso:std:iso:11073:10101"
#define SYS_LOINC             "http://loinc.org"
#define SYS_UCUM              "http://unitsofmeasure.org"
#define SYS_OBS_CATEGORY      "http://terminology.hl7.org/CodeSystem/observation-category"
#define SYS_ABSENT            "http://terminology.hl7.org/CodeSystem/data-absent-reason"
#define SYS_MSMT_STATUS       "http://terminology.hl7.org/CodeSystem/measurement-status"
#define SYS_ACT_REASON        "http://terminology.hl7.org/CodeSystem/v3-ActReason"
#define SYS_ALARM_PRIORITY    "http://terminology.hl7.org/CodeSystem/devicealert-priority"
#define SYS_DCM               "http://dicom.nema.org/resources/ontology/DCM"
#define SYS_SOURCE_TYPE       "http://terminology.hl7.org/CodeSystem/security-source-type"
#define SYS_ENTITY_TYPE       "http://terminology.hl7.org/CodeSystem/audit-entity-type"
#define SYS_MW_CONCEPT        "urn:medwire:concept"
#define SYS_MW_ALARM_STATE    "urn:medwire:alarm-state"
#define SYS_MW_AUDIT_EVENT    "urn:medwire:audit-event"
#define SYS_MW_GATEWAY        "urn:medwire:gateway"
#define SYS_MW_COMMAND        "urn:medwire:command"
#define SYS_MW_COMMAND_STATUS "urn:medwire:command-status"
#define SYS_MW_SOURCE         "urn:medwire:source"
/* R4's extension for the gateway a device's observation came through (valueReference(Device)),
 * used when Observation.device names the device that measured. */
#define EXT_GATEWAY_DEVICE "http://hl7.org/fhir/StructureDefinition/observation-gatewayDevice"

/* FHIR dateTime and instant have four-digit years: 10000-01-01T00:00:00Z and later cannot be
 * written, so such a time is left out (Observation) or refused (AuditEvent.recorded). */
#define FHIR_TIME_LIMIT_MS 253402300800000ull

/* ---- strings ------------------------------------------------------------------------------ */

/* FHIR strings SHALL NOT contain characters below U+0020 other than tab, CR and LF (R4
 * datatypes, "string"), which plain JSON escaping would let through as \u0001: those become
 * U+FFFD, the replacement character, so a hostile byte can neither break the JSON nor make
 * the resource invalid. Everything else is escaped as mw_message_to_json does (bytes >= 0x80
 * read as Latin-1), so the output stays pure ASCII. */
static void put_fhir_chars(mwi_json_writer *w, const char *s, size_t size)
{
    mwi_json_put_escaped(w, s, size, "\\ufffd");
}

static void put_fhir_string(mwi_json_writer *w, const char *s, size_t size)
{
    mwi_json_put_char(w, '"');
    put_fhir_chars(w, s, size);
    mwi_json_put_char(w, '"');
}

/* FHIR forbids empty strings and wants non-whitespace content: an element whose text would be
 * blank is left out rather than written empty (which a validator rejects). */
static bool blank(const char *s, size_t size)
{
    size_t i;
    for (i = 0; i < size && s[i] != '\0'; i++) {
        if ((unsigned char)s[i] > 0x20) {
            return false;
        }
    }
    return true;
}

/* Printable ASCII without spaces, quotes or backslashes: a valid FHIR uri and code, and a
 * plausible UCUM unit code (UCUM's case-sensitive codes use only these). */
static bool token(const char *s, size_t size)
{
    size_t i;
    for (i = 0; i < size && s[i] != '\0'; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c <= 0x20 || c > 0x7E || c == '"' || c == '\\') {
            return false;
        }
    }
    return i > 0;
}

/* ---- options ------------------------------------------------------------------------------ */

typedef struct names {
    const char *gateway;
    const char *device_system;
    const char *message_system;
    const char *patient; /* NULL: no subject */
    const char *device;  /* NULL: the device is referenced by its identifier only */
} names;

/* The options come from the integrator's configuration, not from a peer, but a system URI
 * with a space would still make every resource invalid: refuse it once, here. */
static bool resolve(const mw_fhir_options_t *opt, names *n)
{
    n->gateway = opt && opt->gateway_name ? opt->gateway_name : MW_FHIR_GATEWAY_NAME;
    n->device_system = opt && opt->device_system ? opt->device_system : MW_FHIR_DEVICE_SYSTEM;
    n->message_system = opt && opt->message_system ? opt->message_system : MW_FHIR_MESSAGE_SYSTEM;
    n->patient = opt ? opt->patient_reference : NULL;
    n->device = opt ? opt->device_reference : NULL;
    return !blank(n->gateway, SIZE_MAX) && token(n->device_system, SIZE_MAX) &&
           token(n->message_system, SIZE_MAX) &&
           (n->patient == NULL || token(n->patient, SIZE_MAX)) &&
           (n->device == NULL || token(n->device, SIZE_MAX));
}

/* ---- building blocks ---------------------------------------------------------------------- */

/* {"system":S,"code":C,"display":D}; the arguments are constants of this file. */
static void put_coding(mwi_json_writer *w, const char *system, const char *code,
                       const char *display)
{
    mwi_json_put_str(w, "{\"system\":\"");
    mwi_json_put_str(w, system);
    mwi_json_put_str(w, "\",\"code\":\"");
    mwi_json_put_str(w, code);
    mwi_json_put_char(w, '"');
    if (display != NULL) {
        mwi_json_put_str(w, ",\"display\":\"");
        mwi_json_put_str(w, display);
        mwi_json_put_char(w, '"');
    }
    mwi_json_put_char(w, '}');
}

/* A CodeableConcept with one coding. */
static void put_concept(mwi_json_writer *w, const char *system, const char *code,
                        const char *display)
{
    mwi_json_put_str(w, "{\"coding\":[");
    put_coding(w, system, code, display);
    mwi_json_put_str(w, "]}");
}

/* A reference to a device (or the gateway) by its identifier: the hospital's Device resources
 * are its own, so there is no logical id to point at; Reference.identifier is R4's way. */
static void put_device_ref(mwi_json_writer *w, const char *system, const char *id, size_t size)
{
    mwi_json_put_str(w, "{\"type\":\"Device\",\"identifier\":{\"system\":");
    put_fhir_string(w, system, SIZE_MAX);
    mwi_json_put_str(w, ",\"value\":");
    put_fhir_string(w, id, size);
    mwi_json_put_str(w, "},\"display\":");
    put_fhir_string(w, id, size);
    mwi_json_put_char(w, '}');
}

static void put_2digits(mwi_json_writer *w, int v)
{
    mwi_json_put_char(w, (char)('0' + v / 10 % 10));
    mwi_json_put_char(w, (char)('0' + v % 10));
}

/* The proleptic Gregorian date of @p days since 1970-01-01: plain arithmetic on 400-year eras
 * (146,097 days each), so that core needs no C library time conversion (gmtime_r is POSIX,
 * and absent or costly on a microcontroller). */
static void civil_from_days(uint64_t days, int *year, int *month, int *day)
{
    uint64_t z = days + 719468; /* days since 0000-03-01, the start of an era's first year */
    uint64_t era = z / 146097;
    uint64_t doe = z - era * 146097;                                      /* [0, 146096] */
    uint64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365; /* [0, 399] */
    uint64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);               /* [0, 365] */
    uint64_t mp = (5 * doy + 2) / 153;                                    /* March = 0 */
    *day = (int)(doy - (153 * mp + 2) / 5 + 1);
    *month = (int)(mp < 10 ? mp + 3 : mp - 9);
    *year = (int)(yoe + era * 400 + (*month <= 2));
}

/* "YYYY-MM-DDThh:mm:ss.mmmZ": a FHIR instant, and a dateTime to the millisecond. */
static bool put_time(mwi_json_writer *w, uint64_t ms)
{
    if (ms >= FHIR_TIME_LIMIT_MS)
        return false;
    uint64_t s = ms / 1000;
    int year, month, day;
    civil_from_days(s / 86400, &year, &month, &day);
    struct {
        int tm_year, tm_mon, tm_mday, tm_hour, tm_min, tm_sec;
    } tm = {year - 1900,          month - 1,    day, (int)(s % 86400 / 3600),
            (int)(s % 3600 / 60), (int)(s % 60)};
    mwi_json_put_char(w, '"');
    put_2digits(w, (tm.tm_year + 1900) / 100);
    put_2digits(w, (tm.tm_year + 1900) % 100);
    mwi_json_put_char(w, '-');
    put_2digits(w, tm.tm_mon + 1);
    mwi_json_put_char(w, '-');
    put_2digits(w, tm.tm_mday);
    mwi_json_put_char(w, 'T');
    put_2digits(w, tm.tm_hour);
    mwi_json_put_char(w, ':');
    put_2digits(w, tm.tm_min);
    mwi_json_put_char(w, ':');
    put_2digits(w, tm.tm_sec);
    mwi_json_put_char(w, '.');
    mwi_json_put_char(w, (char)('0' + ms % 1000 / 100));
    put_2digits(w, (int)(ms % 100));
    mwi_json_put_str(w, "Z\"");
    return true;
}

/* 0 means "not known"; a time past year 9999 cannot be written. Either way the element is
 * left out: the observation itself must still reach the hospital. */
static bool time_usable(uint64_t ms)
{
    return ms != 0 && ms < FHIR_TIME_LIMIT_MS;
}

/* A Quantity in UCUM: unit is the text, system+code make it computable. A unit that cannot be
 * a UCUM code is kept as text only, rather than claimed as UCUM. */
static void put_quantity_dec(mwi_json_writer *w, int64_t mantissa, int32_t exponent,
                             const char *unit, size_t unit_size)
{
    mwi_json_put_str(w, "{\"value\":");
    mwi_json_put_decimal(w, mantissa, exponent);
    if (!blank(unit, unit_size)) {
        mwi_json_put_str(w, ",\"unit\":");
        put_fhir_string(w, unit, unit_size);
        if (token(unit, unit_size)) {
            mwi_json_put_str(w, ",\"system\":\"" SYS_UCUM "\",\"code\":");
            put_fhir_string(w, unit, unit_size);
        }
    }
    mwi_json_put_char(w, '}');
}

/* A whole number in a constant UCUM unit (the arguments are constants of this file). */
static void put_quantity_u64(mwi_json_writer *w, uint64_t v, const char *unit, const char *code)
{
    mwi_json_put_str(w, "{\"value\":");
    mwi_json_put_u64(w, v);
    mwi_json_put_str(w, ",\"unit\":\"");
    mwi_json_put_str(w, unit);
    mwi_json_put_str(w, "\",\"system\":\"" SYS_UCUM "\",\"code\":\"");
    mwi_json_put_str(w, code);
    mwi_json_put_str(w, "\"}");
}

/* ---- MDC terms: the shared table of include/medwire/terms.h --------------------------------- */

#define MDC_BATT_CHARGE 67996u /* MDC_ATTR_VAL_BATT_CHARGE, partition 1 (object attributes) */
#define MDC_POWER_STAT  67925u /* MDC_ATTR_POWER_STAT */

static void put_mdc_coding(mwi_json_writer *w, uint32_t code, const char *ref_id)
{
    mwi_json_put_str(w, "{\"system\":\"" SYS_MDC "\",\"code\":\"");
    mwi_json_put_u64(w, code);
    mwi_json_put_char(w, '"');
    if (ref_id != NULL) {
        mwi_json_put_str(w, ",\"display\":\"");
        mwi_json_put_str(w, ref_id);
        mwi_json_put_char(w, '"');
    }
    mwi_json_put_char(w, '}');
}

/* Observation.code: the device's MDC code first (it is what the device said), then LOINC. */
static void put_mdc_code(mwi_json_writer *w, uint32_t code, const char *text, size_t text_size)
{
    const mw_term_t *t = mw_term_find(code);

    mwi_json_put_str(w, "{\"coding\":[");
    put_mdc_coding(w, code, t ? t->ref_id : NULL);
    if (t != NULL && t->loinc != NULL) {
        mwi_json_put_char(w, ',');
        put_coding(w, SYS_LOINC, t->loinc, t->loinc_display);
    }
    if (t != NULL && t->loinc_method != NULL) {
        mwi_json_put_char(w, ',');
        put_coding(w, SYS_LOINC, t->loinc_method, t->loinc_method_display);
    }
    mwi_json_put_char(w, ']');
    if (text != NULL && !blank(text, text_size)) {
        mwi_json_put_str(w, ",\"text\":");
        put_fhir_string(w, text, text_size);
    }
    mwi_json_put_char(w, '}');
}

/* ---- Observation parts -------------------------------------------------------------------- */

/* seq 0 is the gateway's own event, not a device message: it has no sequence to deduplicate on.
 * A message is (device, space, seq); the space is left out when the device declares none. */
static void put_msg_identifier(mwi_json_writer *w, const names *n, const mw_message_t *m)
{
    if (m->seq != 0) {
        mwi_json_put_str(w, ",\"identifier\":[{\"system\":");
        put_fhir_string(w, n->message_system, SIZE_MAX);
        mwi_json_put_str(w, ",\"value\":\"");
        put_fhir_chars(w, m->device_id, sizeof m->device_id);
        mwi_json_put_char(w, '/');
        if (m->space != 0) {
            mwi_json_put_hex64(w, m->space);
            mwi_json_put_char(w, '/');
        }
        mwi_json_put_u64(w, m->seq);
        mwi_json_put_str(w, "\"}]");
    }
}

/* The device a bridged message came from (mw_observation_t.source), "" when none. */
static const char *source_of(const mw_message_t *m)
{
    switch (m->type) {
    case MW_MSG_OBSERVATION:
        return m->u.observation.source;
    case MW_MSG_ALARM:
        return m->u.alarm.source;
    default:
        return "";
    }
}

/* A source FHIR can carry: terminated, and empty or with something to show (an identifier and
 * a display must not be blank). The codec never lets another through. */
static bool source_usable(const char *s, size_t size)
{
    return mwi_json_terminated(s, size) && (s[0] == '\0' || !blank(s, size));
}

/* The medwire device that sent the message, as a Reference: by its identifier, and also
 * literally when the caller sends a Device resource alongside (e.g. a transaction Bundle
 * entry's urn:uuid fullUrl). */
static void put_medwire_device(mwi_json_writer *w, const names *n, const mw_message_t *m)
{
    if (n->device == NULL) {
        put_device_ref(w, n->device_system, m->device_id, sizeof m->device_id);
        return;
    }
    mwi_json_put_str(w, "{\"reference\":");
    put_fhir_string(w, n->device, SIZE_MAX);
    mwi_json_put_str(w, ",\"type\":\"Device\",\"identifier\":{\"system\":");
    put_fhir_string(w, n->device_system, SIZE_MAX);
    mwi_json_put_str(w, ",\"value\":");
    put_fhir_string(w, m->device_id, sizeof m->device_id);
    mwi_json_put_str(w, "},\"display\":");
    put_fhir_string(w, m->device_id, sizeof m->device_id);
    mwi_json_put_char(w, '}');
}

static void put_obs_head(mwi_json_writer *w, const names *n, const mw_message_t *m, bool test_data)
{
    mwi_json_put_str(w, "{\"resourceType\":\"Observation\"");
    if (test_data || m->possible_duplicate) {
        mwi_json_put_str(w, ",\"meta\":{");
        if (test_data) {
            /* HL7's label for test data, as the PHD guide does for 11073 test/demo data, so a
             * hospital system keeps it out of the patient record. */
            mwi_json_put_str(w, "\"security\":[");
            put_coding(w, SYS_ACT_REASON, "HTEST", "test health data");
            mwi_json_put_char(w, ']');
        }
        if (m->possible_duplicate) {
            /* Sent again after a sequence resynchronisation: it may repeat an Observation
             * delivered under the device's earlier space (docs/protocol.md 5b). */
            mwi_json_put_str(w, test_data ? ",\"tag\":[" : "\"tag\":[");
            put_coding(w, SYS_MW_CONCEPT, "possible-duplicate", "Possible duplicate");
            mwi_json_put_char(w, ']');
        }
        mwi_json_put_char(w, '}');
    }
    /* Behind a bridge, Observation.device is the device that measured (put_obs_tail) and the
     * medwire device, the bridge, is the gateway it came through. */
    if (source_of(m)[0] != '\0') {
        mwi_json_put_str(w,
                         ",\"extension\":[{\"url\":\"" EXT_GATEWAY_DEVICE "\",\"valueReference\":");
        put_medwire_device(w, n, m);
        mwi_json_put_str(w, "}]");
    }
    put_msg_identifier(w, n, m);
}

static void put_alarm_category(mwi_json_writer *w)
{
    /* R4's observation-category has no code for alarms (its binding is preferred, not
     * required), and a hospital must be able to tell alarms from vital signs. */
    mwi_json_put_str(w, ",\"category\":[");
    put_concept(w, SYS_MW_CONCEPT, "alarm", "Device alarm");
    mwi_json_put_char(w, ']');
}

static void put_patient(mwi_json_writer *w, const names *n)
{
    if (n->patient != NULL) {
        mwi_json_put_str(w, ",\"subject\":{\"reference\":");
        put_fhir_string(w, n->patient, SIZE_MAX);
        mwi_json_put_char(w, '}');
    }
}

static void put_device_subject(mwi_json_writer *w, const names *n, const mw_message_t *m)
{
    mwi_json_put_str(w, ",\"subject\":");
    put_device_ref(w, n->device_system, m->device_id, sizeof m->device_id);
}

static void put_effective(mwi_json_writer *w, uint64_t ms)
{
    if (time_usable(ms)) {
        mwi_json_put_str(w, ",\"effectiveDateTime\":");
        (void)put_time(w, ms);
    }
}

/* FHIR has no element for a clock's trust; a note is what every hospital viewer shows. */
static void put_clock_note(mwi_json_writer *w, const mw_message_t *m, uint64_t ms)
{
    if (!m->time_synced && time_usable(ms)) {
        mwi_json_put_str(
            w, ",\"note\":[{\"text\":\"The device's clock was not synchronised: this time "
               "is the device's own.\"}]");
    }
}

/* Observation.device: the device that produced the data. Behind a bridge that is the legacy
 * device, known only by the identifier it gave itself (the hospital holds no Device for it);
 * otherwise the medwire device. */
static void put_obs_tail(mwi_json_writer *w, const names *n, const mw_message_t *m)
{
    const char *source = source_of(m);

    mwi_json_put_str(w, ",\"device\":");
    if (source[0] != '\0') {
        put_device_ref(w, SYS_MW_SOURCE, source, MW_SOURCE_MAX + 1);
        return;
    }
    put_medwire_device(w, n, m);
}

/* The start of an Observation about the device itself, not the patient, at the device's own
 * time: a final one whose code is the medwire concept @p code. */
static void put_device_obs_head(mwi_json_writer *w, const names *n, const mw_message_t *m,
                                const char *code, const char *display)
{
    put_obs_head(w, n, m, false);
    mwi_json_put_str(w, ",\"status\":\"final\",\"code\":");
    put_concept(w, SYS_MW_CONCEPT, code, display);
    put_device_subject(w, n, m);
    put_effective(w, m->device_time_ms);
    put_clock_note(w, m, m->device_time_ms);
}

/* A component whose code is one coding. */
static void put_component_code(mwi_json_writer *w, const char *system, const char *code,
                               const char *display)
{
    mwi_json_put_str(w, "{\"code\":");
    put_concept(w, system, code, display);
}

/* ---- the message kinds -------------------------------------------------------------------- */

static bool put_observation(mwi_json_writer *w, const names *n, const mw_message_t *m)
{
    const mw_observation_t *o = &m->u.observation;
    const mw_term_t *t = mw_term_find(o->mdc_code);
    uint64_t ms = o->time_ms != 0 ? o->time_ms : m->device_time_ms;
    const char *absent = NULL;      /* data-absent-reason code: no value */
    const char *interp = NULL;      /* measurement-status code */
    const char *interp_disp = NULL; /* its display */
    const char *status = "final";

    /* 11073 measurement status -> FHIR, following the HL7 PHD guide: the workflow status
     * stays final unless the value is interim; quality goes to interpretation; a value the
     * device says is not a measurement is not written at all. */
    switch (o->status) {
    case MW_MEAS_VALID:
    case MW_MEAS_TEST_DATA:
        break;
    case MW_MEAS_QUESTIONABLE:
        interp = "questionable";
        interp_disp = "Questionable";
        break;
    case MW_MEAS_CALIBRATING:
        status = "preliminary";
        interp = "calibration-ongoing";
        interp_disp = "Calibration ongoing";
        break;
    case MW_MEAS_INVALID:
        absent = "error";
        break;
    case MW_MEAS_UNAVAILABLE:
        absent = "unknown";
        break;
    default:
        return false;
    }
    if (!mwi_json_terminated(o->unit, sizeof o->unit) ||
        !source_usable(o->source, sizeof o->source)) {
        return false;
    }
    put_obs_head(w, n, m, o->status == MW_MEAS_TEST_DATA);
    mwi_json_put_str(w, ",\"status\":\"");
    mwi_json_put_str(w, status);
    mwi_json_put_char(w, '"');
    if (t != NULL && t->vital_sign) {
        mwi_json_put_str(w, ",\"category\":[");
        put_concept(w, SYS_OBS_CATEGORY, "vital-signs", "Vital Signs");
        mwi_json_put_char(w, ']');
    }
    mwi_json_put_str(w, ",\"code\":");
    put_mdc_code(w, o->mdc_code, NULL, 0);
    put_patient(w, n);
    put_effective(w, ms);
    if (absent == NULL) {
        mwi_json_put_str(w, ",\"valueQuantity\":");
        put_quantity_dec(w, o->mantissa, o->exponent, o->unit, sizeof o->unit);
    } else {
        mwi_json_put_str(w, ",\"dataAbsentReason\":");
        put_concept(w, SYS_ABSENT, absent, strcmp(absent, "error") == 0 ? "Error" : "Unknown");
    }
    if (interp != NULL) {
        mwi_json_put_str(w, ",\"interpretation\":[");
        put_concept(w, SYS_MSMT_STATUS, interp, interp_disp);
        mwi_json_put_char(w, ']');
    }
    put_clock_note(w, m, ms);
    put_obs_tail(w, n, m);
    mwi_json_put_char(w, '}');
    return true;
}

static bool put_alarm(mwi_json_writer *w, const names *n, const mw_message_t *m)
{
    const mw_alarm_t *a = &m->u.alarm;
    uint64_t ms = a->time_ms != 0 ? a->time_ms : m->device_time_ms;
    const char *state = mwi_name_code(&mwi_alarm_state_names, a->state);
    const char *prio = mwi_name_code(&mwi_alarm_priority_names, a->priority);

    if (state == NULL || prio == NULL || !mwi_json_terminated(a->text, sizeof a->text) ||
        !source_usable(a->source, sizeof a->source)) {
        return false;
    }
    put_obs_head(w, n, m, false);
    mwi_json_put_str(w, ",\"status\":\"final\"");
    put_alarm_category(w);
    mwi_json_put_str(w, ",\"code\":");
    put_mdc_code(w, a->mdc_code, a->text, sizeof a->text);
    put_patient(w, n);
    put_effective(w, ms);
    mwi_json_put_str(w, ",\"valueCodeableConcept\":");
    put_concept(w, SYS_MW_ALARM_STATE, state, mwi_name_display(&mwi_alarm_state_names, a->state));
    put_clock_note(w, m, ms);
    put_obs_tail(w, n, m);
    mwi_json_put_str(w, ",\"component\":[");
    put_component_code(w, SYS_MW_CONCEPT, "alarm-priority", "Alarm priority (IEC 60601-1-8)");
    mwi_json_put_str(w, ",\"valueCodeableConcept\":");
    put_concept(w, SYS_ALARM_PRIORITY, prio,
                mwi_name_display(&mwi_alarm_priority_names, a->priority));
    mwi_json_put_str(w, "}]}");
    return true;
}

static void put_status(mwi_json_writer *w, const names *n, const mw_message_t *m)
{
    const mw_device_status_t *s = &m->u.status;

    put_device_obs_head(w, n, m, "device-status", "Device status");
    put_obs_tail(w, n, m);
    mwi_json_put_str(w, ",\"component\":[{\"code\":{\"coding\":[");
    put_mdc_coding(w, MDC_BATT_CHARGE, "MDC_ATTR_VAL_BATT_CHARGE");
    mwi_json_put_str(w, "]},\"valueQuantity\":");
    put_quantity_u64(w, s->battery_pct, "%", "%");
    mwi_json_put_str(w, "},{\"code\":{\"coding\":[");
    put_mdc_coding(w, MDC_POWER_STAT, "MDC_ATTR_POWER_STAT");
    mwi_json_put_str(w, "]},\"valueCodeableConcept\":");
    if (s->on_mains) {
        put_concept(w, SYS_MW_CONCEPT, "on-mains", "On mains power");
    } else {
        put_concept(w, SYS_MW_CONCEPT, "on-battery", "On battery");
    }
    mwi_json_put_str(w, "},");
    put_component_code(w, SYS_MW_CONCEPT, "uptime", "Time since the device started");
    mwi_json_put_str(w, ",\"valueQuantity\":");
    put_quantity_u64(w, s->uptime_s, "s", "s");
    mwi_json_put_str(w, "},");
    put_component_code(w, SYS_MW_CONCEPT, "queue-depth", "Messages waiting in the device's queue");
    mwi_json_put_str(w, ",\"valueQuantity\":");
    put_quantity_u64(w, s->queue_depth, "messages", "{messages}");
    mwi_json_put_str(w, "}]}");
}

/* The gateway's communication-loss condition: one condition whose state is active when the
 * device went silent and inactive when it was heard again, like any alarm condition. */
static void put_link(mwi_json_writer *w, const names *n, const mw_message_t *m)
{
    const mw_link_event_t *l = &m->u.link;
    mw_alarm_state state = m->type == MW_MSG_COMM_LOSS ? MW_ALARM_ACTIVE : MW_ALARM_INACTIVE;

    put_obs_head(w, n, m, false);
    mwi_json_put_str(w, ",\"status\":\"final\"");
    put_alarm_category(w);
    mwi_json_put_str(w, ",\"code\":");
    put_concept(w, SYS_MW_CONCEPT, "communication-loss",
                "Communication with the device lost (technical alarm condition)");
    put_device_subject(w, n, m);
    /* The gateway's clock (time_synced is false only because the device did not set it). */
    put_effective(w, m->device_time_ms);
    mwi_json_put_str(w, ",\"valueCodeableConcept\":");
    put_concept(w, SYS_MW_ALARM_STATE, mwi_name_code(&mwi_alarm_state_names, state),
                mwi_name_display(&mwi_alarm_state_names, state));
    put_obs_tail(w, n, m);
    mwi_json_put_str(w, ",\"component\":[");
    put_component_code(w, SYS_MW_CONCEPT, "silent-duration", "Time without a message");
    mwi_json_put_str(w, ",\"valueQuantity\":");
    put_quantity_u64(w, l->silent_ms, "ms", "ms");
    mwi_json_put_char(w, '}');
    if (time_usable(l->last_seen_ms)) {
        mwi_json_put_char(w, ',');
        put_component_code(w, SYS_MW_CONCEPT, "last-seen", "Last message received");
        mwi_json_put_str(w, ",\"valueDateTime\":");
        (void)put_time(w, l->last_seen_ms);
        mwi_json_put_char(w, '}');
    }
    mwi_json_put_str(w, "]}");
}

/* A device's gap record: messages it will never deliver. About the device's data stream, not
 * a measurement of the patient; the count is the value, the rest are components. */
static bool put_gap(mwi_json_writer *w, const names *n, const mw_message_t *m)
{
    const mw_gap_t *g = &m->u.gap;
    /* The lost messages' priority may be 0, unknown. */
    const char *why = mwi_name_code(&mwi_gap_reason_names, g->reason);
    const char *prio = mwi_name_code(&mwi_priority_names, g->priority);
    if (why == NULL || prio == NULL) {
        return false;
    }
    put_device_obs_head(w, n, m, "data-gap", "Messages the device will never deliver");
    mwi_json_put_str(w, ",\"valueQuantity\":");
    put_quantity_u64(w, g->count, "messages", "{messages}");
    put_obs_tail(w, n, m);
    mwi_json_put_str(w, ",\"component\":[");
    put_component_code(w, SYS_MW_CONCEPT, "gap-reason", "Why they were lost");
    mwi_json_put_str(w, ",\"valueCodeableConcept\":");
    put_concept(w, SYS_MW_CONCEPT, why, mwi_name_display(&mwi_gap_reason_names, g->reason));
    mwi_json_put_str(w, "},");
    put_component_code(w, SYS_MW_CONCEPT, "gap-priority", "Delivery priority of the lost messages");
    mwi_json_put_str(w, ",\"valueCodeableConcept\":");
    put_concept(w, SYS_MW_CONCEPT, prio, mwi_name_display(&mwi_priority_names, g->priority));
    mwi_json_put_char(w, '}');
    if (g->first_seq != 0) {
        /* 64-bit sequence numbers exceed valueInteger (32-bit): the range as text. */
        mwi_json_put_char(w, ',');
        put_component_code(w, SYS_MW_CONCEPT, "gap-sequence-range",
                           "Lowest and highest sequence number lost");
        mwi_json_put_str(w, ",\"valueString\":\"");
        mwi_json_put_u64(w, g->first_seq);
        mwi_json_put_char(w, '-');
        mwi_json_put_u64(w, g->last_seq);
        mwi_json_put_str(w, "\"}");
    }
    mwi_json_put_str(w, "]}");
    return true;
}

/* A device's answer to a gateway command, as the Task the command was: done is completed, a
 * refusal (replay, expired, unsupported) rejected, a failure failed; the device's own status name
 * and detail are the status reason. The device owns the task; the command id groups the
 * answers to one command (a device may answer a resent command again). */
static bool put_command_result(mwi_json_writer *w, const names *n, const mw_message_t *m)
{
    const mw_command_result_t *r = &m->u.command_result;
    const char *name = mw_command_status_name(r->status);
    const char *status;

    switch (r->status) {
    case MW_CMD_DONE:
        status = "completed";
        break;
    case MW_CMD_REFUSED_REPLAY:
    case MW_CMD_REFUSED_EXPIRED:
    case MW_CMD_UNSUPPORTED:
        status = "rejected";
        break;
    case MW_CMD_FAILED:
        status = "failed";
        break;
    default:
        return false;
    }
    if (name == NULL || !mwi_json_terminated(r->detail, sizeof r->detail)) {
        return false;
    }
    mwi_json_put_str(w, "{\"resourceType\":\"Task\"");
    put_msg_identifier(w, n, m);
    mwi_json_put_str(w, ",\"groupIdentifier\":{\"system\":\"" SYS_MW_COMMAND "\",\"value\":\"");
    mwi_json_put_u64(w, r->command_id);
    mwi_json_put_str(w, "\"},\"status\":\"");
    mwi_json_put_str(w, status);
    mwi_json_put_str(w, "\",\"statusReason\":{\"coding\":[");
    put_coding(w, SYS_MW_COMMAND_STATUS, name, NULL);
    mwi_json_put_char(w, ']');
    if (!blank(r->detail, sizeof r->detail)) {
        mwi_json_put_str(w, ",\"text\":");
        put_fhir_string(w, r->detail, sizeof r->detail);
    }
    mwi_json_put_str(w, "},\"intent\":\"order\",\"code\":");
    put_concept(w, SYS_MW_CONCEPT, "device-command", "Command from the gateway to the device");
    if (n->patient != NULL) {
        mwi_json_put_str(w, ",\"for\":{\"reference\":");
        put_fhir_string(w, n->patient, SIZE_MAX);
        mwi_json_put_char(w, '}');
    }
    if (time_usable(m->device_time_ms)) {
        mwi_json_put_str(w, ",\"lastModified\":");
        (void)put_time(w, m->device_time_ms);
    }
    mwi_json_put_str(w, ",\"owner\":");
    put_device_ref(w, n->device_system, m->device_id, sizeof m->device_id);
    mwi_json_put_char(w, '}');
    return true;
}

MW_API mw_err mw_message_to_fhir(const mw_message_t *msg, const mw_fhir_options_t *opt, char *out,
                                 size_t out_size, size_t *out_len)
{
    mwi_json_writer w;
    names n;
    bool ok;

    if (!mwi_json_start(&w, msg, out, out_size, out_len)) {
        return MW_EINVAL;
    }
    /* A resource must say which device it came from; a struct the codec could never have
     * produced is refused rather than guessed at. */
    if (!resolve(opt, &n) || !mwi_json_terminated(msg->device_id, sizeof msg->device_id) ||
        blank(msg->device_id, sizeof msg->device_id) ||
        mwi_envelope_priority(msg->priority) == NULL) {
        return MW_EINVAL;
    }
    switch (msg->type) {
    case MW_MSG_OBSERVATION:
        ok = put_observation(&w, &n, msg);
        break;
    case MW_MSG_ALARM:
        ok = put_alarm(&w, &n, msg);
        break;
    case MW_MSG_STATUS:
        put_status(&w, &n, msg);
        ok = true;
        break;
    case MW_MSG_COMM_LOSS:
    case MW_MSG_COMM_RESTORED:
        put_link(&w, &n, msg);
        ok = true;
        break;
    case MW_MSG_GAP:
        ok = put_gap(&w, &n, msg);
        break;
    case MW_MSG_COMMAND_RESULT:
        ok = put_command_result(&w, &n, msg);
        break;
    case MW_MSG_UNKNOWN:
    default:
        /* An unknown payload has nothing to map: it stays in the JSON output and the store. */
        ok = false;
        break;
    }
    if (!ok) {
        if (out_size > 0) {
            out[0] = '\0';
        }
        return MW_EINVAL;
    }
    return mwi_json_finish(&w, out_len);
}

/* ---- AuditEvent --------------------------------------------------------------------------- */

/* DICOM PS3.16 audit event ids (CID 400-series), the codes R4's AuditEvent.type and subtype
 * bindings start from, as IHE ATNA uses them. */
typedef struct audit_kind {
    const char *event;
    const char *type, *type_display;       /* DCM event id */
    const char *subtype, *subtype_display; /* DCM event type code, NULL: none fits */
    bool own;            /* the gateway's own action: its peer field is its own address */
    const char *failure; /* outcome when err != MW_OK: 4 a refusal, 8 the gateway failed */
} audit_kind;

#define ALERT "110113", "Security Alert"
#define AUTH  "110114", "User Authentication"
#define APP   "110100", "Application Activity"

static const audit_kind AUDIT_KINDS[] = {
    /* A device is a node: its failed TLS authentication is DICOM's Node Authentication
     * alert; a session it opens or closes is a login or logout of that node. */
    {MW_AUDIT_HANDSHAKE_FAILED, ALERT, "110126", "Node Authentication", false, "4"},
    {MW_AUDIT_SESSION_ESTABLISHED, AUTH, "110122", "Login", false, "4"},
    {MW_AUDIT_SESSION_CLOSED, AUTH, "110123", "Logout", false, "4"},
    {MW_AUDIT_REKEY_STARTED, AUTH, "110122", "Login", false, "4"},
    {MW_AUDIT_SESSION_ROTATED, AUTH, "110122", "Login", false, "4"},
    {MW_AUDIT_IDENTITY_MISMATCH, ALERT, NULL, NULL, false, "4"},
    {MW_AUDIT_BAD_MESSAGE, ALERT, NULL, NULL, false, "4"},
    {MW_AUDIT_PEER_LIMIT, ALERT, NULL, NULL, false, "4"},
    {MW_AUDIT_REPLAY, ALERT, NULL, NULL, false, "4"},
    {MW_AUDIT_STORE_FAILED, ALERT, NULL, NULL, false, "8"},
    {MW_AUDIT_COMMAND_REFUSED, ALERT, NULL, NULL, false, "4"},
    {MW_AUDIT_COMMAND_EXPIRED, ALERT, NULL, NULL, false, "4"},
    {MW_AUDIT_COMM_LOSS, ALERT, NULL, NULL, false, "4"},
    {MW_AUDIT_CRL_RELOADED, ALERT, "110129", "Security Configuration", true, "8"},
    {MW_AUDIT_CRL_RELOAD_FAILED, ALERT, "110129", "Security Configuration", true, "8"},
    {MW_AUDIT_CREDENTIALS_RELOADED, ALERT, "110129", "Security Configuration", true, "8"},
    {MW_AUDIT_CREDENTIALS_RELOAD_FAILED, ALERT, "110129", "Security Configuration", true, "8"},
    /* A device's certificate renewed over EST, or refused: a change to its credentials. */
    {MW_AUDIT_CERT_RENEWED, ALERT, "110129", "Security Configuration", false, "4"},
    {MW_AUDIT_RENEWAL_REFUSED, ALERT, "110129", "Security Configuration", false, "4"},
    /* Raised by the reference gateway program about itself. */
    {"gateway_started", APP, "110120", "Application Start", true, "8"},
    {"gateway_stopped", APP, "110121", "Application Stop", true, "8"},
    {"credential_expiring", ALERT, "110129", "Security Configuration", true, "8"},
};

/* Anything else the audit callback reports is security-relevant by definition. */
static const audit_kind AUDIT_OTHER = {"", ALERT, NULL, NULL, false, "4"};

static const audit_kind *audit_find(const char *event)
{
    size_t i;
    for (i = 0; i < sizeof AUDIT_KINDS / sizeof AUDIT_KINDS[0]; i++) {
        if (strncmp(event, AUDIT_KINDS[i].event, MWI_AUDIT_EVENT_MAX) == 0) {
            return &AUDIT_KINDS[i];
        }
    }
    return &AUDIT_OTHER;
}

/* The host part of mw_addr_format's "HOST:PORT" or "[V6]:PORT": AuditEvent.agent.network
 * wants an address, the port goes to an entity detail. */
static void split_peer(const char *peer, size_t size, size_t *off, size_t *len)
{
    size_t n = strnlen(peer, size), i;

    *off = 0;
    *len = n;
    if (n > 0 && peer[0] == '[') {
        const char *close = memchr(peer, ']', n);
        if (close != NULL) {
            *off = 1;
            *len = (size_t)(close - peer) - 1;
        }
        return;
    }
    for (i = n; i > 0; i--) {
        if (peer[i - 1] == ':') {
            /* One colon followed by digits only: HOST:PORT. More colons: a bare IPv6. */
            size_t j;
            bool digits = i < n;
            for (j = i; j < n; j++) {
                digits = digits && peer[j] >= '0' && peer[j] <= '9';
            }
            if (digits && memchr(peer, ':', i - 1) == NULL) {
                *len = i - 1;
            }
            return;
        }
    }
}

/* network.type 2 is an IP address, 1 a machine name. */
static bool looks_like_ip(const char *s, size_t len)
{
    size_t i;
    for (i = 0; i < len; i++) {
        if (strchr("0123456789abcdefABCDEF.:%", s[i]) == NULL) {
            return false;
        }
    }
    return len > 0;
}

static void put_network(mwi_json_writer *w, const char *peer)
{
    size_t off, len;

    split_peer(peer, MWI_AUDIT_PEER_MAX, &off, &len);
    if (blank(peer + off, len)) {
        return;
    }
    mwi_json_put_str(w, ",\"network\":{\"address\":");
    put_fhir_string(w, peer + off, len);
    mwi_json_put_str(w, looks_like_ip(peer + off, len) ? ",\"type\":\"2\"}" : ",\"type\":\"1\"}");
}

static void put_gateway_ref(mwi_json_writer *w, const names *n)
{
    put_device_ref(w, SYS_MW_GATEWAY, n->gateway, SIZE_MAX);
}

static void put_detail(mwi_json_writer *w, bool *first, const char *type, const char *value,
                       size_t size)
{
    mwi_json_put_str(w, *first ? "{\"type\":\"" : ",{\"type\":\"");
    mwi_json_put_str(w, type);
    mwi_json_put_str(w, "\",\"valueString\":");
    put_fhir_string(w, value, size);
    mwi_json_put_char(w, '}');
    *first = false;
}

MW_API mw_err mw_audit_to_fhir(const mw_audit_event_t *ev, const mw_fhir_options_t *opt,
                               uint64_t time_ms, char *out, size_t out_size, size_t *out_len)
{
    mwi_json_writer w;
    names n;
    const char *event, *peer, *device, *reason;
    const audit_kind *k;
    bool peer_known, device_known, first = true;
    char code[24]; /* an int in decimal */

    if (!mwi_json_start(&w, ev, out, out_size, out_len)) {
        return MW_EINVAL;
    }
    if (!resolve(opt, &n) || time_ms >= FHIR_TIME_LIMIT_MS) {
        return MW_EINVAL;
    }
    /* Strings in an audit record may come from a peer (a certificate's name): they are read
     * to a bound and escaped like any other. */
    event = ev->event ? ev->event : "";
    peer = ev->peer ? ev->peer : "";
    device = ev->device ? ev->device : "";
    reason = ev->reason ? ev->reason : "";
    k = audit_find(event);
    peer_known = !blank(peer, MWI_AUDIT_PEER_MAX);
    device_known = !blank(device, MW_ID_MAX + 1);

    mwi_json_put_str(&w, "{\"resourceType\":\"AuditEvent\",\"type\":");
    put_coding(&w, SYS_DCM, k->type, k->type_display);
    if (k->subtype != NULL || !blank(event, MWI_AUDIT_EVENT_MAX)) {
        mwi_json_put_str(&w, ",\"subtype\":[");
        if (k->subtype != NULL) {
            put_coding(&w, SYS_DCM, k->subtype, k->subtype_display);
        }
        /* medwire's own event name keeps the detail the DICOM codes do not have; a name that
         * cannot be a FHIR code (a caller's own, with spaces) is kept as the display. */
        if (!blank(event, MWI_AUDIT_EVENT_MAX)) {
            mwi_json_put_str(&w, k->subtype != NULL ? ",{" : "{");
            mwi_json_put_str(&w, "\"system\":\"" SYS_MW_AUDIT_EVENT "\",");
            mwi_json_put_str(&w, token(event, MWI_AUDIT_EVENT_MAX) ? "\"code\":" : "\"display\":");
            put_fhir_string(&w, event, MWI_AUDIT_EVENT_MAX);
            mwi_json_put_char(&w, '}');
        }
        mwi_json_put_char(&w, ']');
    }
    /* Every event is the execution of a protocol step or of a gateway function. */
    mwi_json_put_str(&w, ",\"action\":\"E\",\"recorded\":");
    (void)put_time(&w, time_ms);
    mwi_json_put_str(&w, ",\"outcome\":\"");
    mwi_json_put_str(&w, ev->err == MW_OK ? "0" : k->failure);
    mwi_json_put_char(&w, '"');
    if (!blank(reason, MWI_AUDIT_REASON_MAX)) {
        mwi_json_put_str(&w, ",\"outcomeDesc\":");
        put_fhir_string(&w, reason, MWI_AUDIT_REASON_MAX);
    }
    mwi_json_put_str(&w, ",\"agent\":[");
    if (k->own) {
        /* The gateway acted on its own: it is the one agent, at its own address. */
        mwi_json_put_str(&w, "{\"type\":");
        put_concept(&w, SYS_DCM, "110150", "Application");
        mwi_json_put_str(&w, ",\"who\":");
        put_gateway_ref(&w, &n);
        mwi_json_put_str(&w, ",\"requestor\":true");
        put_network(&w, peer);
        mwi_json_put_char(&w, '}');
    } else {
        /* The peer (a device, or an address that has not proved who it is) acted; the
         * gateway received. */
        mwi_json_put_str(&w, "{\"type\":");
        put_concept(&w, SYS_DCM, "110153", "Source Role ID");
        if (device_known) {
            mwi_json_put_str(&w, ",\"who\":");
            put_device_ref(&w, n.device_system, device, MW_ID_MAX + 1);
        }
        mwi_json_put_str(&w, ",\"requestor\":true");
        put_network(&w, peer);
        mwi_json_put_str(&w, "},{\"type\":");
        put_concept(&w, SYS_DCM, "110152", "Destination Role ID");
        mwi_json_put_str(&w, ",\"who\":");
        put_gateway_ref(&w, &n);
        mwi_json_put_str(&w, ",\"requestor\":false}");
    }
    mwi_json_put_str(&w, "],\"source\":{\"observer\":");
    put_gateway_ref(&w, &n);
    mwi_json_put_str(&w, ",\"type\":[");
    put_coding(&w, SYS_SOURCE_TYPE, "4", "Application Server");
    mwi_json_put_str(&w, "]}");
    /* The entity is what the event was about: the device's session. Its details keep what
     * the JSON audit line has and FHIR has no element for. */
    if (device_known || peer_known || ev->err != MW_OK || ev->foreign != 0) {
        mwi_json_put_str(&w, ",\"entity\":[{");
        if (device_known) {
            mwi_json_put_str(&w, "\"what\":");
            put_device_ref(&w, n.device_system, device, MW_ID_MAX + 1);
            mwi_json_put_char(&w, ',');
        }
        mwi_json_put_str(&w, "\"type\":");
        put_coding(&w, SYS_ENTITY_TYPE, "2", "System Object");
        if (peer_known || ev->err != MW_OK || ev->foreign != 0) {
            mwi_json_put_str(&w, ",\"detail\":[");
            if (peer_known) {
                put_detail(&w, &first, "peer", peer, MWI_AUDIT_PEER_MAX);
            }
            if (ev->err != MW_OK) {
                put_detail(&w, &first, "error", mw_strerror(ev->err), SIZE_MAX);
            }
            if (ev->foreign != 0) {
                /* The foreign code as decimal text (valueString: R4 details are strings). */
                mwi_json_writer cw = {code, sizeof code, 0};
                mwi_json_put_i64(&cw, ev->foreign);
                code[cw.len] = '\0';
                put_detail(&w, &first, "foreign-code", code, sizeof code);
            }
            mwi_json_put_char(&w, ']');
        }
        mwi_json_put_str(&w, "}]");
    }
    mwi_json_put_char(&w, '}');
    return mwi_json_finish(&w, out_len);
}
