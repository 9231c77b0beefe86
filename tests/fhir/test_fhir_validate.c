/* SPDX-License-Identifier: Apache-2.0 */
/* test_fhir_validate.c -- every FHIR mapping the library writes passes two FHIR R4 validators
 * written elsewhere, and carries the codes and units docs/terminology.md promises. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fhir/validator.h"
#include "medwire/fhir.h"
#include "support/proc.h"

#define T0 1700000000123ull

typedef struct ndjson {
    char path[512];
    FILE *f;
    int lines;
} ndjson;

static void ndjson_open(ndjson *n, const char *name)
{
    const char *dir = mwt_tmpdir();
    cr_assert_not_null(dir);
    snprintf(n->path, sizeof n->path, "%s/%s", dir, name);
    n->f = fopen(n->path, "w");
    cr_assert_not_null(n->f);
    n->lines = 0;
}

static void ndjson_close(ndjson *n)
{
    cr_assert_eq(fclose(n->f), 0);
}

static void put_message(ndjson *n, const mw_message_t *m, const mw_fhir_options_t *opt)
{
    char line[MW_FHIR_MAX];
    mw_err e = mw_message_to_fhir(m, opt, line, sizeof line, NULL);
    cr_assert_eq(e, MW_OK, "type %d: %s", (int)m->type, mw_strerror(e));
    fprintf(n->f, "%s\n", line);
    n->lines++;
}

static void put_audit(ndjson *n, const mw_audit_event_t *ev)
{
    char line[MW_FHIR_MAX];
    mw_err e = mw_audit_to_fhir(ev, NULL, T0, line, sizeof line, NULL);
    cr_assert_eq(e, MW_OK, "%s: %s", ev->event ? ev->event : "(null)", mw_strerror(e));
    fprintf(n->f, "%s\n", line);
    n->lines++;
}

static void assert_valid(const char *path, int lines)
{
    char *text = NULL;
    int rc = mwt_fhir_validate(path, &text);
    cr_assert_eq(rc, 0, "the FHIR R4 validators refused %s:\n%s", path, text ? text : "");
    char want[64];
    snprintf(want, sizeof want, "%d resources are valid FHIR R4", lines);
    cr_assert_not_null(strstr(text, want), "validate.js said: %s", text);
    cr_log_info("%s", text);
    free(text);
}

static mw_message_t header(mw_msg_type type, uint64_t seq)
{
    mw_message_t m;
    memset(&m, 0, sizeof m);
    strcpy(m.device_id, "spo2-bed-07");
    m.seq = seq;
    m.device_time_ms = T0;
    m.time_synced = true;
    m.priority = MW_PRIORITY_OBSERVATION;
    m.type = type;
    return m;
}

static mw_message_t observation(uint32_t mdc, int64_t mantissa, int32_t exponent, const char *unit,
                                mw_meas_status status)
{
    mw_message_t m = header(MW_MSG_OBSERVATION, 1);
    m.u.observation.mdc_code = mdc;
    m.u.observation.mantissa = mantissa;
    m.u.observation.exponent = exponent;
    snprintf(m.u.observation.unit, sizeof m.u.observation.unit, "%s", unit);
    m.u.observation.status = status;
    m.u.observation.time_ms = T0;
    return m;
}

Test(fhir_validator, accepts_every_mapping_the_library_writes, .timeout = 120)
{
    ndjson n;
    ndjson_open(&n, "library.ndjson");
    mw_fhir_options_t patient = {.patient_reference = "Patient/bed-7",
                                 .gateway_name = "ward 3 gateway \"east\""};

    /* Observations: SpO2 and pulse rate, every measurement status, with and without a
     * patient and a synchronised clock, odd values and units. */
    for (int s = MW_MEAS_VALID; s <= MW_MEAS_TEST_DATA; s++) {
        mw_message_t m = observation(MW_MDC_PULS_OXIM_SAT_O2, 975, -1, "%", (mw_meas_status)s);
        m.seq = (uint64_t)s + 1;
        put_message(&n, &m, NULL);
        m.time_synced = false;
        put_message(&n, &m, &patient);
        m = observation(MW_MDC_PULS_OXIM_PULS_RATE, 72, 0, "/min", (mw_meas_status)s);
        put_message(&n, &m, &patient);
        /* Sent again after a resynchronisation, in a named sequence space. */
        m.space = 0x00c0ffee12345678ull;
        m.possible_duplicate = true;
        put_message(&n, &m, &patient);
    }
    mw_message_t m = observation(123456u, 975, -30, "mL", MW_MEAS_VALID);
    put_message(&n, &m, NULL);
    m = observation(150021u, INT64_MIN, 20, "mm[Hg]", MW_MEAS_VALID);
    put_message(&n, &m, NULL);
    m = observation(150364u, 3705, -2, "Cel", MW_MEAS_VALID);
    m.u.observation.time_ms = 0;
    m.device_time_ms = 0; /* no time at all */
    put_message(&n, &m, NULL);
    m = observation(150456u, 97, 0, "not ucum", MW_MEAS_VALID);
    put_message(&n, &m, NULL);
    m = observation(150456u, 97, 0, "", MW_MEAS_VALID);
    put_message(&n, &m, NULL);
    /* Behind a bridge: the legacy device measured, the medwire device is its gateway. */
    m = observation(MW_MDC_PULS_OXIM_SAT_O2, 975, -1, "%", MW_MEAS_VALID);
    strcpy(m.u.observation.source, "MON-7 \"bed\" 4");
    put_message(&n, &m, &patient);
    mw_fhir_options_t literal = {.device_reference =
                                     "urn:uuid:0f0e0d0c-0b0a-4908-8706-050403020100"};
    put_message(&n, &m, &literal);

    /* Alarms: every priority and state, hostile text and device id. */
    for (int p = MW_ALARM_INFO; p <= MW_ALARM_HIGH; p++) {
        for (int s = MW_ALARM_INACTIVE; s <= MW_ALARM_LATCHED; s++) {
            m = header(MW_MSG_ALARM, 100 + (uint64_t)(p * 4 + s));
            m.priority = MW_PRIORITY_ALARM;
            m.u.alarm.mdc_code = p % 2 ? 196648u /* MDC_EVT_HI */ : MW_MDC_EVT_LO;
            m.u.alarm.priority = (mw_alarm_priority)p;
            m.u.alarm.state = (mw_alarm_state)s;
            m.u.alarm.time_ms = s == 0 ? 0 : T0;
            strcpy(m.u.alarm.text, p == 0 ? "" : "SpO2 \"low\" \\ \x01\x7f\xe9\t");
            strcpy(m.u.alarm.source, s == 2 ? "ACME-ICU4-BED7" : "");
            put_message(&n, &m, p == 3 ? &patient : NULL);
        }
    }
    m = header(MW_MSG_ALARM, 200);
    strcpy(m.device_id, "dev\"\\\x02\xff");
    m.u.alarm.mdc_code = 196648u;
    m.u.alarm.priority = MW_ALARM_HIGH;
    m.u.alarm.state = MW_ALARM_ACTIVE;
    put_message(&n, &m, NULL);

    /* Device status, on mains and on battery, with the largest numbers. */
    m = header(MW_MSG_STATUS, 300);
    m.priority = MW_PRIORITY_STATUS;
    m.u.status = (mw_device_status_t){
        .battery_pct = 81, .on_mains = true, .uptime_s = 86400, .queue_depth = 3};
    put_message(&n, &m, &patient);
    m.u.status = (mw_device_status_t){.battery_pct = UINT32_MAX,
                                      .on_mains = false,
                                      .uptime_s = UINT64_MAX,
                                      .queue_depth = UINT32_MAX};
    m.time_synced = false;
    put_message(&n, &m, NULL);

    /* The gateway's communication-loss condition and its end. */
    m = header(MW_MSG_COMM_LOSS, 0);
    m.priority = MW_PRIORITY_ALARM;
    m.time_synced = false;
    m.u.link = (mw_link_event_t){.silent_ms = 65000, .last_seen_ms = T0 - 65000};
    put_message(&n, &m, &patient);
    m.type = MW_MSG_COMM_RESTORED;
    m.u.link = (mw_link_event_t){.silent_ms = 70000, .last_seen_ms = 0};
    put_message(&n, &m, NULL);

    /* Gap records: evicted observations with their numbers, a damaged record without. */
    m = header(MW_MSG_GAP, 400);
    m.priority = MW_PRIORITY_ALARM;
    m.u.gap = (mw_gap_t){.priority = MW_PRIORITY_OBSERVATION, .reason = MW_GAP_EVICTED,
                         .count = 12, .first_seq = 30, .last_seq = 57};
    put_message(&n, &m, &patient);
    m.u.gap = (mw_gap_t){.priority = 0, .reason = MW_GAP_CORRUPT, .count = 1};
    put_message(&n, &m, NULL);

    /* Command results, one per status, with and without a detail and a patient. */
    for (int st = MW_CMD_DONE; st <= MW_CMD_FAILED; st++) {
        m = header(MW_MSG_COMMAND_RESULT, 500 + (uint64_t)st);
        m.priority = MW_PRIORITY_STATUS;
        m.u.command_result.command_id = UINT64_MAX - (uint64_t)st;
        m.u.command_result.status = (mw_command_status)st;
        if (st % 2 == 0)
            strcpy(m.u.command_result.detail, "interval_ms 0 not in 1..86400000 \"q\"\x01");
        put_message(&n, &m, st % 2 == 0 ? &patient : NULL);
    }

    /* Audit events: every name medwire raises and some it does not, with IPv4, IPv6, named
     * and missing peers, known and unknown devices, success and failure. */
    static const char *const events[] = {
        MW_AUDIT_HANDSHAKE_FAILED, MW_AUDIT_SESSION_ESTABLISHED,
        MW_AUDIT_SESSION_CLOSED,   MW_AUDIT_IDENTITY_MISMATCH,
        MW_AUDIT_BAD_MESSAGE,      MW_AUDIT_PEER_LIMIT,
        MW_AUDIT_REPLAY,           MW_AUDIT_STORE_FAILED,
        MW_AUDIT_REKEY_STARTED,    MW_AUDIT_SESSION_ROTATED,
        MW_AUDIT_COMMAND_REFUSED,  MW_AUDIT_COMMAND_EXPIRED,
        MW_AUDIT_CRL_RELOADED,     MW_AUDIT_CRL_RELOAD_FAILED,
        MW_AUDIT_COMM_LOSS,        "gateway_started",
        "gateway_stopped",         "something_new",
        "with space \x03",         "",
    };
    static const char *const peers[] = {"127.0.0.1:40000", "[fe80::1%2]:5684", "gw.example:1", ""};
    for (size_t i = 0; i < sizeof events / sizeof events[0]; i++) {
        mw_audit_event_t ev = {.event = events[i],
                               .peer = peers[i % 4],
                               .device = i % 3 ? "spo2-bed-07" : "",
                               .err = i % 2 ? MW_ECERT_REVOKED : MW_OK,
                               .foreign = i % 2 ? -361 : 0,
                               .reason = i % 5 ? "the \"reason\"\r\n\x04" : ""};
        put_audit(&n, &ev);
    }
    mw_audit_event_t bare = {0};
    put_audit(&n, &bare);
    ndjson_close(&n);

    assert_valid(n.path, n.lines);
}

/* ---- the codes and units docs/terminology.md promises ------------------------------------ */

typedef struct row {
    unsigned long mdc;
    char ref[64];
    char loinc[2][16];
    char unit[16];
    bool vital;
} row;

static char *trim(char *s)
{
    while (*s == ' ')
        s++;
    char *e = s + strlen(s);
    while (e > s && e[-1] == ' ')
        *--e = '\0';
    return s;
}

/* The rows of the terminology table of docs/terminology.md that have a unit:
 * | 150456 | 2::19384 | MDC_... | `%` | 2708-6 text; 59408-5 text | vital-signs | status | */
static size_t read_table(row *rows, size_t max)
{
    const char *src = getenv("MW_SOURCE_DIR");
    char path[1024];
    snprintf(path, sizeof path, "%s/docs/terminology.md", src ? src : ".");
    char *text = mwt_read_file(path);
    cr_assert_not_null(text, "cannot read %s", path);
    size_t n = 0;
    for (char *line = strtok(text, "\n"); line != NULL; line = strtok(NULL, "\n")) {
        if (strncmp(line, "| 1", 3) != 0 || strstr(line, "| MDC_") == NULL)
            continue;
        char *cells[7];
        int k = 0;
        char *save = NULL;
        for (char *c = strtok_r(line, "|", &save); c != NULL && k < 7;
             c = strtok_r(NULL, "|", &save))
            cells[k++] = trim(c);
        cr_assert_geq(k, 6, "a table row with %d cells", k);
        char *tick = strchr(cells[3], '`');
        if (tick == NULL)
            continue; /* an event code: no unit, not an Observation value */
        cr_assert_lt(n, max);
        row *r = &rows[n++];
        memset(r, 0, sizeof *r);
        r->mdc = strtoul(cells[0], NULL, 10);
        snprintf(r->ref, sizeof r->ref, "%.*s", (int)strcspn(cells[2], " "), cells[2]);
        int nl = 0;
        char *save2 = NULL;
        for (char *c = strtok_r(cells[4], ";", &save2); c != NULL && nl < 2;
             c = strtok_r(NULL, ";", &save2)) {
            c = trim(c);
            size_t len = strspn(c, "0123456789-");
            cr_assert(len > 2 && len < sizeof r->loinc[0], "a LOINC code in '%s'", c);
            memcpy(r->loinc[nl++], c, len);
        }
        size_t ulen = strcspn(tick + 1, "`");
        cr_assert_lt(ulen, sizeof r->unit);
        memcpy(r->unit, tick + 1, ulen);
        r->vital = strstr(cells[5], "vital-signs") != NULL;
    }
    free(text);
    return n;
}

static void assert_has(const char *text, const char *needle)
{
    cr_assert_not_null(strstr(text, needle), "expected %s in %s", needle, text);
}

Test(fhir_validator, finds_the_codes_and_units_the_mapping_document_promises, .timeout = 120)
{
    row rows[32];
    size_t nrows = read_table(rows, 32);
    bool spo2 = false, pulse = false;
    ndjson n;
    char want[256];

    cr_assert_geq(nrows, 2, "the table of docs/terminology.md has rows");
    ndjson_open(&n, "promises.ndjson");
    for (size_t i = 0; i < nrows; i++) {
        const row *r = &rows[i];
        mw_message_t m = observation((uint32_t)r->mdc, 975, -1, r->unit, MW_MEAS_VALID);
        char line[MW_FHIR_MAX];
        cr_assert_eq(mw_message_to_fhir(&m, NULL, line, sizeof line, NULL), MW_OK);
        snprintf(want, sizeof want,
                 "{\"system\":\"urn:iso:std:iso:11073:10101\",\"code\":\"%lu\",\"display\":\"%s\"}",
                 r->mdc, r->ref);
        assert_has(line, want);
        for (int k = 0; k < 2 && r->loinc[k][0]; k++) {
            snprintf(want, sizeof want, "{\"system\":\"http://loinc.org\",\"code\":\"%s\"",
                     r->loinc[k]);
            assert_has(line, want);
        }
        snprintf(want, sizeof want, "\"system\":\"http://unitsofmeasure.org\",\"code\":\"%s\"}",
                 r->unit);
        assert_has(line, want);
        if (r->vital)
            assert_has(line, "\"code\":\"vital-signs\"");
        else
            cr_assert_null(strstr(line, "vital-signs"), "%lu is no vital sign: %s", r->mdc, line);
        if (r->loinc[0][0] == '\0')
            cr_assert_null(strstr(line, "loinc.org"), "%lu has no LOINC code: %s", r->mdc, line);
        fprintf(n.f, "%s\n", line);
        n.lines++;
        /* The mapping the FHIR output promises: SpO2 with LOINC 59408-5 in %, pulse rate in /min. */
        spo2 =
            spo2 || (r->mdc == 150456 && strcmp(r->unit, "%") == 0 &&
                     (strcmp(r->loinc[0], "59408-5") == 0 || strcmp(r->loinc[1], "59408-5") == 0));
        pulse = pulse || (r->mdc == 149530 && strcmp(r->unit, "/min") == 0);
    }
    cr_assert(spo2, "the table maps SpO2 (150456) to LOINC 59408-5 in UCUM %%");
    cr_assert(pulse, "the table maps pulse rate (149530) in UCUM /min");
    ndjson_close(&n);
    assert_valid(n.path, n.lines);
}

/* ---- the validators are live ------------------------------------------------------------- */

static void assert_refused(const char *name, const char *content, const char *why)
{
    ndjson n;
    ndjson_open(&n, name);
    fputs(content, n.f);
    ndjson_close(&n);
    char *text = NULL;
    int rc = mwt_fhir_validate(n.path, &text);
    cr_assert_eq(rc, 1, "%s: validate.js should refuse it (rc %d): %s", name, rc, text);
    cr_assert_not_null(strstr(text, why), "%s: expected '%s' in: %s", name, why, text);
    free(text);
}

Test(fhir_validator, refuses_what_is_not_valid_fhir_r4, .timeout = 120)
{
    /* Our own SpO2 resource, then broken in ways each validator must see. */
    mw_message_t m = observation(MW_MDC_PULS_OXIM_SAT_O2, 975, -1, "%", MW_MEAS_VALID);
    char good[MW_FHIR_MAX], bad[2 * MW_FHIR_MAX + 256];
    cr_assert_eq(mw_message_to_fhir(&m, NULL, good, sizeof good, NULL), MW_OK);

    /* A status outside the required value set (FHIR.js's binding check). */
    char *p = strstr(good, "\"status\":\"final\"");
    cr_assert_not_null(p);
    snprintf(bad, sizeof bad, "%s\n%.*s\"status\":\"done\"%s\n", good, (int)(p - good), good,
             p + strlen("\"status\":\"final\""));
    assert_refused("status.ndjson", bad, ".ndjson:2: invalid FHIR R4 Observation (FHIR.js)");

    /* A dateTime that is not one (the schema's pattern). */
    p = strstr(good, "2023-11-14T22:13:20.123Z");
    cr_assert_not_null(p);
    snprintf(bad, sizeof bad, "%s\n%.*s2023-11-14 22:13:20%s\n", good, (int)(p - good), good,
             p + strlen("2023-11-14T22:13:20.123Z"));
    assert_refused("datetime.ndjson", bad, ".ndjson:2: invalid FHIR R4 Observation");

    /* An element R4 does not have, and a missing required one. */
    snprintf(bad, sizeof bad,
             "%s\n{\"resourceType\":\"Observation\",\"status\":\"final\","
             "\"code\":{\"text\":\"x\"},\"priority\":\"high\"}\n",
             good);
    assert_refused("unexpected.ndjson", bad, "priority");
    snprintf(bad, sizeof bad,
             "%s\n{\"resourceType\":\"AuditEvent\",\"recorded\":"
             "\"2023-11-14T22:13:20.123Z\"}\n",
             good);
    assert_refused("missing.ndjson", bad, ".ndjson:2: invalid FHIR R4 AuditEvent");
    assert_refused("notjson.ndjson", "{\"resourceType\":\"Observation\",\n", "not a JSON object");
    assert_refused("empty.ndjson", "", "no resources to validate");

    /* And the good one alone passes. */
    snprintf(bad, sizeof bad, "%s\n", good);
    ndjson n;
    ndjson_open(&n, "good.ndjson");
    fputs(bad, n.f);
    ndjson_close(&n);
    assert_valid(n.path, 1);
}
