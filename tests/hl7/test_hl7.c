/* SPDX-License-Identifier: Apache-2.0 */
/* test_hl7.c -- the gateway's IHE PCD-01 encoder, read back by python-hl7 (an HL7 parser written
 * by others), and the acknowledgements it reads. */
#include <criterion/criterion.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hl7.h"
#include "support/proc.h"

static mw_message_t observation(int64_t mantissa, int32_t exponent)
{
    mw_message_t m;
    memset(&m, 0, sizeof m);
    snprintf(m.device_id, sizeof m.device_id, "%s", "oxi-7");
    m.space = 0x1f;
    m.seq = 42;
    m.device_time_ms = 1700000000000u;
    m.type = MW_MSG_OBSERVATION;
    m.u.observation.mdc_code = MW_MDC_PULS_OXIM_SAT_O2;
    m.u.observation.mantissa = mantissa;
    m.u.observation.exponent = exponent;
    snprintf(m.u.observation.unit, sizeof m.u.observation.unit, "%s", "%");
    m.u.observation.time_ms = 1700000000123u;
    return m;
}

static char *encode_for(const mw_message_t *m, const association_t *a)
{
    static char out[HL7_MAX];
    size_t n = 0;
    cr_assert_eq(hl7_encode(m, a, 1700000001000u, out, sizeof out, &n), MW_OK);
    cr_assert_eq(n, strlen(out));
    return out;
}

static char *encode(const mw_message_t *m)
{
    return encode_for(m, NULL);
}

static association_t assoc(const char *pid, const char *name, const char *location)
{
    association_t a;
    memset(&a, 0, sizeof a);
    snprintf(a.device, sizeof a.device, "%s", "oxi-7");
    snprintf(a.patient_id, sizeof a.patient_id, "%s", pid);
    snprintf(a.patient_name, sizeof a.patient_name, "%s", name);
    snprintf(a.location, sizeof a.location, "%s", location);
    return a;
}

/* The OBX-5 of @p m's encoding. */
static const char *obx5(const mw_message_t *m)
{
    static char v[256];
    const char *obx = strstr(encode(m), "\rOBX|");
    cr_assert_not_null(obx);
    const char *p = obx + 1;
    for (int i = 0; i < 5; i++)
        p = strchr(p, '|') + 1;
    size_t n = strcspn(p, "|");
    memcpy(v, p, n);
    v[n] = '\0';
    return v;
}

Test(hl7, value_is_the_exact_decimal)
{
    mw_message_t m = observation(975, -1);
    cr_expect_str_eq(obx5(&m), "97.5");
    m = observation(5, -3);
    cr_expect_str_eq(obx5(&m), "0.005");
    m = observation(-12, 2);
    cr_expect_str_eq(obx5(&m), "-1200");
    m = observation(0, -5);
    cr_expect_str_eq(obx5(&m), "0");
    m = observation(INT64_MIN, 0);
    cr_expect_str_eq(obx5(&m), "-9223372036854775808");
    m = observation(123456789, -9);
    cr_expect_str_eq(obx5(&m), "0.123456789");
    m = observation(1, 127);
    cr_expect_eq(strlen(obx5(&m)), 128u);
}

Test(hl7, segments_and_fields)
{
    mw_message_t m = observation(975, -1);
    const char *s = encode(&m);
    cr_expect(strncmp(s, "MSH|^~\\&|MEDWIRE|", 17) == 0, "%s", s);
    cr_expect_not_null(strstr(s, "||ORU^R01^ORU_R01|oxi-7-1f-42|P|2.6|"));
    cr_expect_not_null(strstr(s, "\rPID|||\rPV1||U\rOBR|1||oxi-7-1f-42^MEDWIRE|"));
    cr_expect_not_null(strstr(s, "|150456^MDC_PULS_OXIM_SAT_O2^MDC|1.1.1.1|97.5|%^%^UCUM|||||R|||"
                                 "20231114221320.123+0000||||oxi-7^MEDWIRE\r"));
    cr_expect_eq(s[strlen(s) - 1], '\r', "every segment ends with a carriage return");
    cr_expect_null(strchr(s, '\n'));
    m.u.observation.mdc_code = 12345;
    cr_expect_not_null(strstr(encode(&m), "|12345^^MDC|"), "a code without a known name");
    m.u.observation.status = MW_MEAS_INVALID;
    cr_expect_not_null(strstr(encode(&m), "|1.1.1.1||%^%^UCUM|||||X|"), "no value, status X");
}

Test(hl7, delimiters_in_values_are_escaped)
{
    mw_message_t m = observation(1, 0);
    snprintf(m.device_id, sizeof m.device_id, "%s", "a|b^c~d\\e&f");
    m.type = MW_MSG_ALARM;
    memset(&m.u, 0, sizeof m.u);
    m.u.alarm.mdc_code = MW_MDC_EVT_LO;
    snprintf(m.u.alarm.text, sizeof m.u.alarm.text, "%s", "SpO2 low|\r<90");
    const char *s = encode(&m);
    cr_expect_not_null(strstr(s, "|a\\F\\b\\S\\c\\R\\d\\E\\e\\T\\f-1f-42|"), "%s", s);
    cr_expect_not_null(strstr(s, "|ST|196670^MDC_EVT_LO^MDC|1.1.1.1.1|SpO2 low\\F\\\\X0D\\<90|"));
}

Test(hl7, an_associated_device_names_its_patient_and_bed)
{
    mw_message_t m = observation(975, -1);
    association_t a = assoc("MRN0001", "Doe^Jane", "ICU^12^B");
    const char *s = encode_for(&m, &a);
    cr_expect_not_null(strstr(s, "\rPID|||MRN0001^^^^MR||Doe^Jane\rPV1||I|ICU^12^B\rOBR|1||"), "%s",
                       s);
    cr_expect_not_null(strstr(s, "|P|2.6|||AL|NE|||||IHE_PCD_001"), "ASCII: MSH-18 empty");
    a = assoc("MRN0002", "Smith", "");
    cr_expect_not_null(strstr(encode_for(&m, &a), "\rPID|||MRN0002^^^^MR||Smith\rPV1||I|\rOBR|"),
                       "a name without given name, no location");
    m.type = MW_MSG_ALARM;
    memset(&m.u, 0, sizeof m.u);
    m.u.alarm.mdc_code = MW_MDC_EVT_LO;
    a = assoc("MRN0003", "", "ER");
    cr_expect_not_null(strstr(encode_for(&m, &a), "\rPID|||MRN0003^^^^MR||\rPV1||I|ER\rOBR|"),
                       "alarms too");
}

/* Every component is escaped on its own; the separators between them are the encoder's. */
Test(hl7, delimiters_in_association_values_are_escaped)
{
    mw_message_t m = observation(975, -1);
    association_t a = assoc("a|b^c~d\\e&f", "O|Brien&Co~x^J\\o", "W|1^R&2^B~3\\");
    const char *s = encode_for(&m, &a);
    cr_expect_not_null(strstr(s, "\rPID|||a\\F\\b\\S\\c\\R\\d\\E\\e\\T\\f^^^^MR||"
                                 "O\\F\\Brien\\T\\Co\\R\\x^J\\E\\o\r"
                                 "PV1||I|W\\F\\1^R\\T\\2^B\\R\\3\\E\\\r"),
                       "%s", s);
}

/* A name beyond ASCII is UTF-8, and MSH-18 says so. */
Test(hl7, a_name_beyond_ascii_declares_utf8)
{
    mw_message_t m = observation(975, -1);
    association_t a = assoc("MRN0004", "M\xc3\xbcller^Zo\xc3\xab", "ICU");
    const char *s = encode_for(&m, &a);
    cr_expect_not_null(strstr(s, "|P|2.6|||AL|NE||UNICODE UTF-8|||IHE_PCD_001"), "%s", s);
    cr_expect_not_null(strstr(s, "||M\xc3\xbcller^Zo\xc3\xab\rPV1||I|ICU\r"), "%s", s);
}

Test(hl7, messages_without_a_form_and_small_buffers)
{
    mw_message_t m = observation(1, 0);
    m.type = MW_MSG_STATUS;
    char out[HL7_MAX];
    size_t n = 1;
    cr_expect_eq(hl7_encode(&m, NULL, 0, out, sizeof out, &n), MW_EINVAL);
    m = observation(1, 0);
    cr_expect_eq(hl7_encode(&m, NULL, 0, out, 100, &n), MW_ENOSPC);
    cr_expect_eq(n, 0u);
    cr_expect_str_eq(out, "");
}

Test(hl7, acknowledgements)
{
    hl7_ack_t a;
    const char ok[] = "MSH|^~\\&|PEER||MEDWIRE||20261205||ACK^R01^ACK|1|P|2.6\rMSA|AA|oxi-7-1f-42";
    cr_assert(hl7_parse_ack(ok, strlen(ok), &a));
    cr_expect_str_eq(a.code, "AA");
    cr_expect_str_eq(a.control_id, "oxi-7-1f-42");
    cr_expect(hl7_ack_accepts(a.code));
    const char ae[] = "MSH#^~\\&#PEER\r\nMSA#AE#x#bad\r";
    cr_assert(hl7_parse_ack(ae, strlen(ae), &a), "another separator, CR LF");
    cr_expect_str_eq(a.code, "AE");
    cr_expect_not(hl7_ack_accepts(a.code));
    const char lf[] = "MSH|^~\\&|PEER\nMSA|CA|oxi-7-1f-42\n";
    cr_assert(hl7_parse_ack(lf, strlen(lf), &a), "LF line ends");
    cr_expect_str_eq(a.code, "CA");
    cr_expect_str_eq(a.control_id, "oxi-7-1f-42");
    const char *bad[] = {"MSH|^~\\&|X\rMSA|ZZ|1", "MSH|^~\\&|X\rMSA|A", "MSH|^~\\&|X\rERR|1",
                         "MSA|AA|1", ""};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        cr_expect_not(hl7_parse_ack(bad[i], strlen(bad[i]), &a), "%s", bad[i]);
    char longid[400] = "MSH|^~\\&|X\rMSA|AA|";
    memset(longid + strlen(longid), 'x', 200);
    cr_expect_not(hl7_parse_ack(longid, strlen(longid), &a), "MSA-2 longer than any we send");
}

/* python-hl7 reads each kind of message we write and finds the fields PCD-01 requires. */
Test(hl7, python_hl7_parses_what_we_encode)
{
    const char *python = getenv("MW_HL7_PYTHON");
    const char *src = getenv("MW_SOURCE_DIR");
    cr_assert(python && src, "run through ctest");
    char script[600];
    snprintf(script, sizeof script, "%s/tests/hl7/mllp_peer.py", src);
    mw_message_t msgs[] = {observation(975, -1), observation(-3, 4), observation(1, 0),
                           observation(975, -1)};
    /* Behind a bridge: OBX-18 repeats, the bridge first, the legacy device second. */
    snprintf(msgs[3].u.observation.source, sizeof msgs[3].u.observation.source, "%s", "MON-7");
    association_t a = assoc("MRN|7", "Doe&Co^Jane~Ann", "ICU^12^B\\C");
    const association_t *assocs[] = {NULL, NULL, &a, NULL};
    const char *want[][6] = {
        {"OBX-5=97.5", "OBX-2=NM", "PID-3.1=\n", "PID-5.1=\n", "PV1-2=U", "PV1-3.1=\n"},
        {"OBX-5=-30000", "OBX-6=%^%^UCUM", "PID-3.5=\n", "PID-5.2=\n", "PV1-2=U", "PV1-3.3=\n"},
        {"PID-3.1=MRN|7\n", "PID-3.5=MR\n", "PID-5.1=Doe&Co\n", "PID-5.2=Jane~Ann\n", "PV1-2=I\n",
         "PV1-3.3=B\\C\n"},
        {"OBX-18=oxi-7^MEDWIRE~MON-7\n", "OBX-5=97.5", "PID-3.1=\n", "PID-5.1=\n", "PV1-2=U",
         "PV1-3.1=\n"}};
    const char *always[] = {"MSH-9=ORU^R01^ORU_R01",
                            "MSH-10=oxi-7-1f-42",
                            "MSH-11=P",
                            "MSH-12=2.6",
                            "MSH-21=IHE_PCD_001^IHE PCD^1.3.6.1.4.1.19376.1.6.1.1.1^ISO",
                            "OBX-4=1.1.1.1",
                            "OBX-11=R",
                            "OBX-14=20231114221320.123+0000",
                            "OBX-18=oxi-7^MEDWIRE",
                            "OBR-4=182777000^monitoring of patient^SNOMED-CT",
                            "OBR-7=20231114221320.123+0000"};
    for (size_t i = 0; i < sizeof msgs / sizeof msgs[0]; i++) {
        char dir[300], file[400], out[400];
        snprintf(dir, sizeof dir, "%s", mwt_tmpdir());
        snprintf(file, sizeof file, "%s/msg.hl7", dir);
        snprintf(out, sizeof out, "%s/fields.txt", dir);
        FILE *f = fopen(file, "wb");
        cr_assert_not_null(f);
        fputs(encode_for(&msgs[i], assocs[i]), f);
        fclose(f);
        const char *argv[] = {python, script, "--check", file, NULL};
        int rc = mwt_run(argv, out, NULL, 20000);
        char *got = mwt_read_file(out);
        cr_assert_eq(rc, 0, "python-hl7 refused message %zu: %s", i, got ? got : "");
        for (size_t k = 0; k < sizeof always / sizeof always[0]; k++)
            cr_expect_not_null(strstr(got, always[k]), "message %zu lacks %s:\n%s", i, always[k],
                               got);
        for (size_t k = 0; k < 6; k++)
            cr_expect_not_null(strstr(got, want[i][k]), "message %zu lacks %s:\n%s", i, want[i][k],
                               got);
        free(got);
    }
}

static mw_message_t alarm_msg(mw_alarm_state state, mw_alarm_priority priority)
{
    mw_message_t m = observation(1, 0);
    m.type = MW_MSG_ALARM;
    memset(&m.u, 0, sizeof m.u);
    m.u.alarm.mdc_code = MW_MDC_EVT_LO;
    m.u.alarm.state = state;
    m.u.alarm.priority = priority;
    m.u.alarm.time_ms = 1700000000123u;
    snprintf(m.u.alarm.text, sizeof m.u.alarm.text, "%s", "SpO2 < 90 | check & ~probe^");
    return m;
}

/* IHE PCD-04: ORU^R40 under the ACM profile, OBR-4 an alarm event, one OBX per facet. */
Test(hl7, an_alarm_goes_as_pcd04_with_its_phase_state_and_priority)
{
    mw_message_t m = alarm_msg(MW_ALARM_ACTIVE, MW_ALARM_HIGH);
    const char *s = encode(&m);
    cr_expect_not_null(strstr(s, "||ORU^R40^ORU_R40|oxi-7-1f-42|P|2.6|"), "%s", s);
    cr_expect_not_null(strstr(s, "|IHE_PCD_ACM_001^IHE PCD^1.3.6.1.4.1.19376.1.6.4.4^ISO\r"));
    cr_expect_not_null(strstr(s, "\rOBR|1||oxi-7-1f-42^MEDWIRE|196616^MDC_EVT_ALARM^MDC|||"));
    cr_expect_not_null(strstr(s, "\rOBX|2|ST|68481^MDC_ATTR_EVENT_PHASE^MDC|1.1.1.1.3|start|"));
    cr_expect_not_null(strstr(s, "\rOBX|3|ST|68482^MDC_ATTR_ALARM_STATE^MDC|1.1.1.1.4|active|"));
    cr_expect_not_null(strstr(s, "\rOBX|4|ST|68484^MDC_ATTR_ALARM_PRIORITY^MDC|1.1.1.1.6|PH|"));
    cr_expect_not_null(strstr(s, "\rOBX|5|ST|68485^MDC_ATTR_ALERT_TYPE^MDC|1.1.1.1.7|SP|"));
    cr_expect_null(strstr(s, "ORU^R01"), "an alarm is not a PCD-01 report");

    m = alarm_msg(MW_ALARM_INACTIVE, MW_ALARM_LOW);
    s = encode(&m);
    cr_expect_not_null(strstr(s, "|1.1.1.1.3|end|"), "an alarm that ended: %s", s);
    cr_expect_not_null(strstr(s, "|1.1.1.1.4|inactive|"));
    cr_expect_not_null(strstr(s, "|1.1.1.1.6|PL|"));
    m = alarm_msg(MW_ALARM_ACKNOWLEDGED, MW_ALARM_MEDIUM);
    s = encode(&m);
    cr_expect_not_null(strstr(s, "|1.1.1.1.3|update|"), "%s", s);
    cr_expect_not_null(strstr(s, "|1.1.1.1.4|acknowledged|"));
    cr_expect_not_null(strstr(s, "|1.1.1.1.6|PM|"));
    m = alarm_msg(MW_ALARM_LATCHED, MW_ALARM_INFO);
    s = encode(&m);
    cr_expect_not_null(strstr(s, "|1.1.1.1.3|continue|"), "%s", s);
    cr_expect_not_null(strstr(s, "|1.1.1.1.4|latched|"));
    cr_expect_not_null(strstr(s, "|1.1.1.1.6|PN|"));
}

Test(hl7, a_bridged_reading_names_its_originating_device_in_obx18s_second_repetition)
{
    mw_message_t m = observation(975, -1);
    const char *s = encode(&m);
    cr_expect_null(strstr(s, "~MON"), "a device speaking for itself has one repetition");
    snprintf(m.u.observation.source, sizeof m.u.observation.source, "%s", "MON-7");
    s = encode(&m);
    cr_expect_not_null(strstr(s, "|R|||20231114221320.123+0000||||oxi-7^MEDWIRE~MON-7\r"), "%s", s);

    /* An alarm: on its event OBX; a source's delimiters are escaped, it stays one identifier. */
    mw_message_t a = alarm_msg(MW_ALARM_ACTIVE, MW_ALARM_HIGH);
    snprintf(a.u.alarm.source, sizeof a.u.alarm.source, "%s", "ACME^ICU4|BED~7&\\");
    s = encode(&a);
    cr_expect_not_null(strstr(s, "|1.1.1.1.1|"), "%s", s);
    cr_expect_not_null(strstr(s, "||||oxi-7^MEDWIRE~ACME\\S\\ICU4\\F\\BED\\R\\7\\T\\\\E\\\r"), "%s",
                       s);
}

Test(hl7, python_hl7_parses_a_pcd04_alarm)
{
    const char *python = getenv("MW_HL7_PYTHON");
    const char *src = getenv("MW_SOURCE_DIR");
    cr_assert(python && src, "run through ctest");
    char script[600], file[400], out[400];
    snprintf(script, sizeof script, "%s/tests/hl7/mllp_peer.py", src);
    snprintf(file, sizeof file, "%s/alarm.hl7", mwt_tmpdir());
    snprintf(out, sizeof out, "%s/fields.txt", mwt_tmpdir());
    mw_message_t m = alarm_msg(MW_ALARM_ACTIVE, MW_ALARM_HIGH);
    FILE *f = fopen(file, "wb");
    cr_assert_not_null(f);
    fputs(encode(&m), f);
    fclose(f);
    const char *argv[] = {python, script, "--check", file, NULL};
    int rc = mwt_run(argv, out, NULL, 20000);
    char *got = mwt_read_file(out);
    cr_assert_eq(rc, 0, "python-hl7 refused the alarm: %s", got ? got : "");
    const char *want[] = {"MSH-9=ORU^R40^ORU_R40",
                          "MSH-21=IHE_PCD_ACM_001^IHE PCD^1.3.6.1.4.1.19376.1.6.4.4^ISO",
                          "OBR-4=196616^MDC_EVT_ALARM^MDC",
                          "OBX-2=ST",
                          "OBX-3=196670^MDC_EVT_LO^MDC",
                          "OBX-4=1.1.1.1.1",
                          "OBX-5=SpO2 < 90 \\F\\ check \\T\\ \\R\\probe\\S\\",
                          "OBX-11=F",
                          "OBX-14=20231114221320.123+0000",
                          "OBX-18=oxi-7^MEDWIRE"};
    for (size_t k = 0; k < sizeof want / sizeof want[0]; k++)
        cr_expect_not_null(strstr(got, want[k]), "lacks %s:\n%s", want[k], got);
    free(got);
}

/* Every output reads the one table: a term the SDK names reaches HL7 with its reference id. */
Test(hl7, obx3_names_every_term_of_the_table)
{
    for (size_t i = 0; mw_term_at(i) != NULL; i++) {
        const mw_term_t *t = mw_term_at(i);
        mw_message_t m = observation(1, 0);
        m.u.observation.mdc_code = t->mdc_code;
        char want[96];
        snprintf(want, sizeof want, "|NM|%" PRIu32 "^%s^MDC|", t->mdc_code, t->ref_id);
        cr_expect_not_null(strstr(encode(&m), want), "%s", want);
    }
    mw_message_t m = observation(1, 0);
    m.u.observation.mdc_code = 150999u;
    cr_expect_not_null(strstr(encode(&m), "|NM|150999^^MDC|"), "an unknown code goes alone");
}

/* The gateway's communication-loss condition goes as a PCD-04 technical alarm, named by the
 * event and its time (it has no sequence number), so that loss and restoration differ. */
Test(hl7, communication_loss_and_restoration_are_technical_pcd04_alarms)
{
    mw_message_t m = observation(1, 0);
    m.type = MW_MSG_COMM_LOSS;
    m.seq = 0;
    m.space = 0;
    memset(&m.u, 0, sizeof m.u);
    m.u.link.silent_ms = 65000;
    m.device_time_ms = 1700000065000u;
    const char *s = encode(&m);
    cr_expect_not_null(strstr(s, "||ORU^R40^ORU_R40|oxi-7-loss-1700000065000|P|2.6|"), "%s", s);
    cr_expect_not_null(strstr(s, "\rOBX|1|ST|communication-loss^Communication with the device "
                                 "lost^99MEDWIRE|1.1.1.1.1|silent for 65 s||||||F|||"));
    cr_expect_not_null(strstr(s, "|1.1.1.1.3|start|"));
    cr_expect_not_null(strstr(s, "|1.1.1.1.4|active|"));
    cr_expect_not_null(strstr(s, "|1.1.1.1.6|PM|"));
    cr_expect_not_null(strstr(s, "|1.1.1.1.7|ST|"), "a technical alarm");
    m.type = MW_MSG_COMM_RESTORED;
    s = encode(&m);
    cr_expect_not_null(strstr(s, "|oxi-7-restored-1700000065000|"), "%s", s);
    cr_expect_not_null(strstr(s, "|1.1.1.1.3|end|"));
    cr_expect_not_null(strstr(s, "|1.1.1.1.4|inactive|"));
}

Test(hl7, a_command_result_goes_as_an_oru_r01_with_a_local_code)
{
    mw_message_t m = observation(1, 0);
    m.type = MW_MSG_COMMAND_RESULT;
    memset(&m.u, 0, sizeof m.u);
    m.u.command_result.command_id = 77;
    m.u.command_result.status = MW_CMD_FAILED;
    snprintf(m.u.command_result.detail, sizeof m.u.command_result.detail, "%s", "probe|off");
    const char *s = encode(&m);
    cr_expect_not_null(strstr(s, "||ORU^R01^ORU_R01|oxi-7-1f-42|"), "%s", s);
    cr_expect_not_null(strstr(s, "\rOBX|1|ST|command-result^Result of a command to the "
                                 "device^99MEDWIRE|1.0.0.0|failed (command 77): probe\\F\\off|"));
    cr_expect_not_null(strstr(s, "||||oxi-7^MEDWIRE\r"), "OBX-18 the device");
}

/* python-hl7 reads both, with the fields the MLLP peer checks. */
Test(hl7, python_hl7_parses_link_events_and_command_results)
{
    const char *python = getenv("MW_HL7_PYTHON");
    const char *src = getenv("MW_SOURCE_DIR");
    cr_assert(python && src, "run through ctest");
    char script[600], file[400], out[400];
    snprintf(script, sizeof script, "%s/tests/hl7/mllp_peer.py", src);
    snprintf(file, sizeof file, "%s/event.hl7", mwt_tmpdir());
    snprintf(out, sizeof out, "%s/fields.txt", mwt_tmpdir());
    mw_message_t loss = observation(1, 0);
    loss.type = MW_MSG_COMM_LOSS;
    loss.seq = 0;
    memset(&loss.u, 0, sizeof loss.u);
    loss.u.link.silent_ms = 65000;
    mw_message_t cmd = observation(1, 0);
    cmd.type = MW_MSG_COMMAND_RESULT;
    memset(&cmd.u, 0, sizeof cmd.u);
    cmd.u.command_result.command_id = 9;
    const mw_message_t *msgs[] = {&loss, &cmd};
    const char *want[][3] = {
        {"MSH-9=ORU^R40^ORU_R40", "OBX-11=F", "OBX-3=communication-loss^"},
        {"MSH-9=ORU^R01^ORU_R01", "OBX-5=done (command 9)", "OBX-18=oxi-7^MEDWIRE"}};
    for (size_t i = 0; i < 2; i++) {
        FILE *f = fopen(file, "wb");
        cr_assert_not_null(f);
        fputs(encode(msgs[i]), f);
        fclose(f);
        const char *argv[] = {python, script, "--check", file, NULL};
        int rc = mwt_run(argv, out, NULL, 20000);
        char *got = mwt_read_file(out);
        cr_assert_eq(rc, 0, "python-hl7 refused message %zu: %s", i, got ? got : "");
        for (size_t k = 0; k < 3; k++)
            cr_expect_not_null(strstr(got, want[i][k]), "message %zu lacks %s:\n%s", i, want[i][k],
                               got);
        free(got);
    }
}

/* Several messages of one device in one ORU^R01: one OBR group each, OBR-3 naming each. */
Test(hl7, a_devices_messages_merge_into_one_oru_with_an_obr_group_each)
{
    static char enc[3][HL7_MAX];
    size_t lens[3];
    const char *msgs[3];
    for (int i = 0; i < 3; i++) {
        mw_message_t m = observation(970 + i, -1);
        m.seq = 42 + (uint64_t)i;
        /* Behind a bridge, readings of several legacy devices merge: each OBR group keeps its
         * own OBX-18. */
        if (i > 0)
            snprintf(m.u.observation.source, sizeof m.u.observation.source, "MON-%d", i);
        cr_assert_eq(hl7_encode(&m, NULL, 1700000001000u, enc[i], sizeof enc[i], &lens[i]), MW_OK);
        msgs[i] = enc[i];
    }
    cr_expect(hl7_mergeable(enc[0], lens[0], enc[1], lens[1]));
    static char out[3 * HL7_MAX];
    size_t n = hl7_merge(msgs, lens, 3, out, sizeof out);
    cr_assert_gt(n, 0);
    cr_expect_eq(n, strlen(out));
    cr_expect_not_null(strstr(out, "||ORU^R01^ORU_R01|oxi-7-1f-42+3|P|2.6|"), "%s", out);
    cr_expect_not_null(strstr(out, "\rOBR|1||oxi-7-1f-42^MEDWIRE|"));
    cr_expect_not_null(strstr(out, "\rOBR|2||oxi-7-1f-43^MEDWIRE|"));
    cr_expect_not_null(strstr(out, "\rOBR|3||oxi-7-1f-44^MEDWIRE|"));
    cr_expect_not_null(strstr(out, "|97.2|"));
    cr_expect_not_null(strstr(out, "||||oxi-7^MEDWIRE\rOBR|2|"), "%s", out);
    cr_expect_not_null(strstr(out, "||||oxi-7^MEDWIRE~MON-1\rOBR|3|"), "%s", out);
    cr_expect_not_null(strstr(out, "||||oxi-7^MEDWIRE~MON-2\r"), "%s", out);
    cr_expect_eq(strstr(out, "PID|") - out, strstr(enc[0], "PID|") - enc[0] + 2,
                 "the first message's MSH, \"+3\" added to MSH-10, then its PID");
    cr_expect_null(strstr(strstr(out, "PID|") + 1, "PID|"), "one PID only");
    cr_expect_eq(hl7_merge(msgs, lens, 3, out, 100), 0u, "too small a buffer");

    /* Not with an alarm, nor with another patient. */
    mw_message_t a = alarm_msg(MW_ALARM_ACTIVE, MW_ALARM_HIGH);
    static char al[HL7_MAX];
    size_t alen;
    cr_assert_eq(hl7_encode(&a, NULL, 1700000001000u, al, sizeof al, &alen), MW_OK);
    cr_expect_not(hl7_mergeable(enc[0], lens[0], al, alen));
    mw_message_t o = observation(1, 0);
    association_t as = assoc("MRN1", "Doe", "ICU");
    static char other[HL7_MAX];
    size_t olen;
    cr_assert_eq(hl7_encode(&o, &as, 1700000001000u, other, sizeof other, &olen), MW_OK);
    cr_expect_not(hl7_mergeable(enc[0], lens[0], other, olen));
}

Test(hl7, python_hl7_reads_a_merged_oru_and_each_message_in_it)
{
    const char *python = getenv("MW_HL7_PYTHON");
    const char *src = getenv("MW_SOURCE_DIR");
    cr_assert(python && src, "run through ctest");
    static char enc[4][HL7_MAX];
    size_t lens[4];
    const char *msgs[4];
    for (int i = 0; i < 4; i++) {
        mw_message_t m = observation(970 + i, -1);
        m.seq = 42 + (uint64_t)i;
        cr_assert_eq(hl7_encode(&m, NULL, 1700000001000u, enc[i], sizeof enc[i], &lens[i]), MW_OK);
        msgs[i] = enc[i];
    }
    static char out[4 * HL7_MAX];
    cr_assert_gt(hl7_merge(msgs, lens, 4, out, sizeof out), 0);
    char script[600], file[400], res[400];
    snprintf(script, sizeof script, "%s/tests/hl7/mllp_peer.py", src);
    snprintf(file, sizeof file, "%s/merged.hl7", mwt_tmpdir());
    snprintf(res, sizeof res, "%s/fields.txt", mwt_tmpdir());
    FILE *f = fopen(file, "wb");
    cr_assert_not_null(f);
    fputs(out, f);
    fclose(f);
    const char *argv[] = {python, script, "--check", file, NULL};
    int rc = mwt_run(argv, res, NULL, 20000);
    char *got = mwt_read_file(res);
    cr_assert_eq(rc, 0, "python-hl7 refused the merged message: %s", got ? got : "");
    cr_expect_not_null(strstr(got, "IDS=oxi-7-1f-42,oxi-7-1f-43,oxi-7-1f-44,oxi-7-1f-45\n"), "%s",
                       got);
    cr_expect_not_null(strstr(got, "MSH-10=oxi-7-1f-42+4\n"), "%s", got);
    free(got);
}
