/* SPDX-License-Identifier: Apache-2.0 */
/* hl7.c -- delivered messages as HL7 v2.6 ORU^R01 per IHE PCD-01 (Device Enterprise
 * Communication), alarms as ORU^R40 per IHE PCD-04 (Alert Communication Management), and the
 * acknowledgement a receiver answers over MLLP. */
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "hl7.h"
#include "hl7v2.h"

/* The profile PCD-01 messages declare in MSH-21 (IHE PCD TF-2, PCD-01). */
#define PCD01_PROFILE "IHE_PCD_001^IHE PCD^1.3.6.1.4.1.19376.1.6.1.1.1^ISO"
/* The profile PCD-04 alarm reports declare (IHE PCD TF-2, Alert Communication Management). */
#define PCD04_PROFILE "IHE_PCD_ACM_001^IHE PCD^1.3.6.1.4.1.19376.1.6.4.4^ISO"
/* OBR-4 of a PCD-04 report: an alarm event. */
#define OBR_ALARM "196616^MDC_EVT_ALARM^MDC"
/* The local codes (HL7 table 0396: a coding system named 99zzz is the sender's own) of what no
 * MDC term confirmed here covers. */
#define LINK_EVENT     "communication-loss^Communication with the device lost^99MEDWIRE"
#define COMMAND_RESULT "command-result^Result of a command to the device^99MEDWIRE"
/* OBR-4: what the observations are the result of, as PCD-01's examples name it (SNOMED CT). */
#define OBR_SERVICE "182777000^monitoring of patient^SNOMED-CT"
/* MSH-3 and the namespace of OBX-18's device identifiers. */
#define SENDER "MEDWIRE"

/* Text from a device, escaped as HL7 v2 says (2.7.4). */
static void put_text(hl7v2_writer_t *w, const char *s, size_t max)
{
    hl7v2_put_escaped(w, s, strnlen(s, max), SIZE_MAX);
}

/* HL7 DTM to the millisecond, in UTC: YYYYMMDDHHMMSS.SSS+0000. */
static void put_time(hl7v2_writer_t *w, uint64_t unix_ms)
{
    time_t t = (time_t)(unix_ms / 1000u);
    struct tm tm;
    if (gmtime_r(&t, &tm) == NULL) {
        w->over = true;
        return;
    }
    char dtm[48];
    snprintf(dtm, sizeof dtm, "%04d%02d%02d%02d%02d%02d.%03u+0000", tm.tm_year + 1900,
             tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
             (unsigned)(unix_ms % 1000u));
    hl7v2_put(w, dtm);
}

/* mantissa x 10^exponent as an exact decimal (HL7 NM): no floating point on the way. */
static void put_decimal(hl7v2_writer_t *w, int64_t mantissa, int32_t exponent)
{
    char digits[24];
    uint64_t mag = mantissa < 0 ? (uint64_t)0 - (uint64_t)mantissa : (uint64_t)mantissa;
    int nd = snprintf(digits, sizeof digits, "%" PRIu64, mag);
    if (mantissa < 0)
        hl7v2_put(w, "-");
    if (mag == 0) {
        hl7v2_put(w, "0");
        return;
    }
    if (exponent >= 0) {
        hl7v2_put(w, digits);
        for (int32_t i = 0; i < exponent && !w->over; i++)
            hl7v2_put(w, "0");
        return;
    }
    int64_t point = (int64_t)nd + exponent; /* digits before the decimal point */
    if (point > 0) {
        hl7v2_put_n(w, digits, (size_t)point);
        hl7v2_put(w, ".");
        hl7v2_put(w, digits + point);
    } else {
        hl7v2_put(w, "0.");
        for (int64_t i = 0; i < -point && !w->over; i++)
            hl7v2_put(w, "0");
        hl7v2_put(w, digits);
    }
}

/* A CWE of the MDC coding system: the code, its reference id from the shared table
 * (include/medwire/terms.h), or the code alone for a term medwire does not know. */
static void put_mdc(hl7v2_writer_t *w, uint32_t code)
{
    const mw_term_t *term = mw_term_find(code);
    const char *refid = term ? term->ref_id : "";
    char t[96];
    snprintf(t, sizeof t, "%" PRIu32 "^%s^MDC", code, refid);
    hl7v2_put(w, t);
}

bool hl7_has_form(const mw_message_t *m)
{
    switch (m->type) {
    case MW_MSG_OBSERVATION:
    case MW_MSG_ALARM:
    case MW_MSG_COMM_LOSS:
    case MW_MSG_COMM_RESTORED:
    case MW_MSG_COMMAND_RESULT:
        return true;
    default:
        return false;
    }
}

/* Whether @p m goes as a PCD-04 alert report (ORU^R40) rather than PCD-01 (ORU^R01). */
static bool is_alert(const mw_message_t *m)
{
    return m->type == MW_MSG_ALARM || m->type == MW_MSG_COMM_LOSS ||
           m->type == MW_MSG_COMM_RESTORED;
}

void hl7_control_id(const mw_message_t *m, char *out, size_t out_size)
{
    hl7v2_writer_t w = {out, 0, out_size, false};
    if (out_size == 0)
        return;
    out[0] = '\0';
    put_text(&w, m->device_id, sizeof m->device_id);
    char t[48];
    if (m->seq == 0) {
        /* The gateway's own events have no sequence number: the event and its time name it. */
        snprintf(t, sizeof t, "-%s-%" PRIu64, m->type == MW_MSG_COMM_LOSS ? "loss" : "restored",
                 m->device_time_ms);
    } else {
        snprintf(t, sizeof t, "-%" PRIx64 "-%" PRIu64, m->space, m->seq);
    }
    hl7v2_put(&w, t);
    if (w.over)
        out[0] = '\0';
}

/* When the reading was taken: the observation's own time, else the envelope's. */
static uint64_t observed_ms(const mw_message_t *m)
{
    if (m->type == MW_MSG_OBSERVATION && m->u.observation.time_ms)
        return m->u.observation.time_ms;
    if (m->type == MW_MSG_ALARM && m->u.alarm.time_ms)
        return m->u.alarm.time_ms;
    return m->device_time_ms;
}

/* OBX-18, the equipment instance identifier (a repeating EI): first the medwire device, the
 * certificate's CN in the medwire namespace; behind a bridge, a second repetition names the
 * device the reading came from, as that device gave it. The first stays the medwire device so
 * that a receiver binding readings to a patient through it keeps working; PCD-01 puts the
 * originating device in OBX-18. The source is escaped whole: one identifier, one component. */
static void put_equipment(hl7v2_writer_t *w, const mw_message_t *m)
{
    const char *source = m->type == MW_MSG_OBSERVATION ? m->u.observation.source
                         : m->type == MW_MSG_ALARM     ? m->u.alarm.source
                                                       : "";
    put_text(w, m->device_id, sizeof m->device_id);
    hl7v2_put(w, "^" SENDER);
    if (source[0] != '\0') {
        hl7v2_put(w, "~");
        put_text(w, source, MW_SOURCE_MAX + 1);
    }
}

static void put_obx(hl7v2_writer_t *w, const mw_message_t *m, uint64_t when)
{
    const mw_observation_t *o = &m->u.observation;
    /* A reading the device itself calls invalid or unavailable has no value: OBX-11 X,
     * "results cannot be obtained" (HL7 table 0085). */
    bool none = o->status == MW_MEAS_INVALID || o->status == MW_MEAS_UNAVAILABLE;
    /* OBX-4 is the reading's place in the device's containment tree, MDS.VMD.CHAN.METRIC:
     * a medwire message carries one metric of one channel. */
    hl7v2_put(w, "OBX|1|NM|");
    put_mdc(w, o->mdc_code);
    hl7v2_put(w, "|1.1.1.1|");
    if (!none)
        put_decimal(w, o->mantissa, o->exponent);
    hl7v2_put(w, "|");
    put_text(w, o->unit, sizeof o->unit);
    hl7v2_put(w, "^");
    put_text(w, o->unit, sizeof o->unit);
    hl7v2_put(w, "^UCUM|||||");
    hl7v2_put(w, none ? "X" : "R");
    hl7v2_put(w, "|||");
    put_time(w, when);
    hl7v2_put(w, "||||");
    put_equipment(w, m);
    hl7v2_put(w, "\r");
}

/* One PCD-04 report (IHE PCD TF-2, Alert Communication Management): one OBX per facet of the
 * alert, under its place in the containment tree (1.1.1.1) with the facet as a fifth level:
 * .1 the event (@p event, a CWE, with @p text in OBX-5), .3 the event phase, .4 the alarm
 * state (@p state, an mw_alarm_state), .6 the priority (an mw_alarm_priority), .7 the alert
 * type (SP physiological, ST technical). */
static void put_alert_obx(hl7v2_writer_t *w, const mw_message_t *m, uint64_t when, const char *event,
                          const char *text, size_t text_max, unsigned state, unsigned priority,
                          const char *type)
{
    static const char *const PHASE[] = {"end", "start", "update", "continue"};
    static const char *const STATE[] = {"inactive", "active", "acknowledged", "latched"};
    static const char *const PRIORITY[] = {"PN", "PL", "PM", "PH"};
    unsigned st = state < 4 ? state : 1u;
    unsigned pr = priority < 4 ? priority : 3u;

    hl7v2_put(w, "OBX|1|ST|");
    hl7v2_put(w, event);
    hl7v2_put(w, "|1.1.1.1.1|");
    put_text(w, text, text_max);
    hl7v2_put(w, "||||||F|||");
    put_time(w, when);
    hl7v2_put(w, "||||");
    put_equipment(w, m);
    hl7v2_put(w, "\r");
    hl7v2_put(w, "OBX|2|ST|68481^MDC_ATTR_EVENT_PHASE^MDC|1.1.1.1.3|");
    hl7v2_put(w, PHASE[st]);
    hl7v2_put(w, "||||||F\rOBX|3|ST|68482^MDC_ATTR_ALARM_STATE^MDC|1.1.1.1.4|");
    hl7v2_put(w, STATE[st]);
    hl7v2_put(w, "||||||F\rOBX|4|ST|68484^MDC_ATTR_ALARM_PRIORITY^MDC|1.1.1.1.6|");
    hl7v2_put(w, PRIORITY[pr]);
    hl7v2_put(w, "||||||F\rOBX|5|ST|68485^MDC_ATTR_ALERT_TYPE^MDC|1.1.1.1.7|");
    hl7v2_put(w, type);
    hl7v2_put(w, "||||||F\r");
}

/* A device's alarm. medwire's alarms are conditions of a measured value (physiological); a
 * device's own technical alarms are not told apart on the wire yet. */
static void put_alarm_obx(hl7v2_writer_t *w, const mw_message_t *m, uint64_t when)
{
    const mw_alarm_t *a = &m->u.alarm;
    hl7v2_writer_t cw;
    char event[96];
    cw = (hl7v2_writer_t){event, 0, sizeof event, false};
    put_mdc(&cw, a->mdc_code);
    put_alert_obx(w, m, when, event, a->text, sizeof a->text, (unsigned)a->state,
                  (unsigned)a->priority, "SP");
}

/* The gateway's communication-loss condition: a technical alarm of medium priority, active
 * while the device is silent and inactive when it is heard again. No MDC term for it could be
 * confirmed from here, so its code is medwire's own, in an HL7 local coding system (99...). */
static void put_link_obx(hl7v2_writer_t *w, const mw_message_t *m, uint64_t when)
{
    char text[64];
    snprintf(text, sizeof text, "silent for %" PRIu64 " s", m->u.link.silent_ms / 1000u);
    put_alert_obx(w, m, when, LINK_EVENT, text, sizeof text,
                  m->type == MW_MSG_COMM_LOSS ? (unsigned)MW_ALARM_ACTIVE
                                              : (unsigned)MW_ALARM_INACTIVE,
                  (unsigned)MW_ALARM_MEDIUM, "ST");
}

/* A device's answer to a gateway command: not a measurement, but the interface engine is where
 * a hospital follows what became of an alarm acknowledgement or an interval change. One OBX at
 * the device level (1.0.0.0), OBX-5 "<status> (command <id>): <detail>". */
static void put_command_obx(hl7v2_writer_t *w, const mw_message_t *m, uint64_t when)
{
    const mw_command_result_t *r = &m->u.command_result;
    const char *name = mw_command_status_name(r->status);
    char t[64];
    snprintf(t, sizeof t, "%s (command %" PRIu64 ")", name ? name : "unknown", r->command_id);
    hl7v2_put(w, "OBX|1|ST|" COMMAND_RESULT "|1.0.0.0|");
    hl7v2_put(w, t);
    if (r->detail[0] != '\0') {
        hl7v2_put(w, ": ");
        put_text(w, r->detail, sizeof r->detail);
    }
    hl7v2_put(w, "||||||F|||");
    put_time(w, when);
    hl7v2_put(w, "||||");
    put_equipment(w, m);
    hl7v2_put(w, "\r");
}

/* @p s (at most @p max bytes), components separated by '^', each escaped: the separators are
 * ours, whatever the values hold. */
static void put_components(hl7v2_writer_t *w, const char *s, size_t max)
{
    size_t n = strnlen(s, max);
    const char *end = s + n;
    for (const char *p = s;;) {
        const char *hat = memchr(p, '^', (size_t)(end - p));
        const char *ce = hat ? hat : end;
        put_text(w, p, (size_t)(ce - p));
        if (hat == NULL)
            break;
        hl7v2_put(w, "^");
        p = hat + 1;
    }
}

static bool ascii(const char *s, size_t max)
{
    for (size_t i = 0; i < max && s[i]; i++)
        if ((unsigned char)s[i] >= 0x80)
            return false;
    return true;
}

/* PID and PV1: the patient and bed of the device when it has an association. PID-3 is a CX
 * whose identifier type (CX.5) is MR, medical record number, with no assigning authority;
 * PV1-2 I (inpatient), PV1-3 the PL PointOfCare^Room^Bed. */
static void put_patient(hl7v2_writer_t *w, const association_t *a)
{
    if (a == NULL) {
        /* The gateway does not know the patient: PID-3 and PID-5 stay empty, and the receiver
         * binds the readings to a patient through the device (OBX-18). PV1-2 U: patient class
         * unknown. */
        hl7v2_put(w, "PID|||\r");
        hl7v2_put(w, "PV1||U\r");
        return;
    }
    hl7v2_put(w, "PID|||");
    put_text(w, a->patient_id, sizeof a->patient_id);
    hl7v2_put(w, "^^^^MR||");
    put_components(w, a->patient_name, sizeof a->patient_name);
    hl7v2_put(w, "\rPV1||I|");
    put_components(w, a->location, sizeof a->location);
    hl7v2_put(w, "\r");
}

mw_err hl7_encode(const mw_message_t *m, const association_t *assoc, uint64_t now_ms, char *out,
                  size_t out_size, size_t *out_len)
{
    if (m == NULL || out == NULL || out_size == 0 || out_len == NULL)
        return MW_EINVAL;
    *out_len = 0;
    out[0] = '\0';
    if (!hl7_has_form(m) || memchr(m->device_id, '\0', sizeof m->device_id) == NULL)
        return MW_EINVAL;
    char ctrl[HL7_CONTROL_ID_MAX];
    hl7_control_id(m, ctrl, sizeof ctrl);
    if (ctrl[0] == '\0')
        return MW_EINVAL;
    uint64_t when = observed_ms(m);
    hl7v2_writer_t w = {out, 0, out_size, false};
    /* MSH-15 AL, MSH-16 NE: the receiver commits each message (an accept acknowledgement),
     * as PCD-01 asks. */
    hl7v2_put(&w, "MSH|^~\\&|" SENDER "||||");
    put_time(&w, now_ms);
    bool alarm = is_alert(m);
    hl7v2_put(&w, alarm ? "||ORU^R40^ORU_R40|" : "||ORU^R01^ORU_R01|");
    hl7v2_put(&w, ctrl);
    /* MSH-18: HL7's default character set is ASCII; a name or a bed beyond it is UTF-8. */
    bool utf8 = assoc && !(ascii(assoc->patient_id, sizeof assoc->patient_id) &&
                           ascii(assoc->patient_name, sizeof assoc->patient_name) &&
                           ascii(assoc->location, sizeof assoc->location));
    hl7v2_put(&w, utf8 ? "|P|2.6|||AL|NE||UNICODE UTF-8|||" : "|P|2.6|||AL|NE|||||");
    hl7v2_put(&w, alarm ? PCD04_PROFILE "\r" : PCD01_PROFILE "\r");
    put_patient(&w, assoc);
    hl7v2_put(&w, "OBR|1||");
    hl7v2_put(&w, ctrl);
    hl7v2_put(&w, alarm ? "^" SENDER "|" OBR_ALARM "|||" : "^" SENDER "|" OBR_SERVICE "|||");
    put_time(&w, when);
    hl7v2_put(&w, "\r");
    if (m->type == MW_MSG_ALARM)
        put_alarm_obx(&w, m, when);
    else if (alarm)
        put_link_obx(&w, m, when);
    else if (m->type == MW_MSG_COMMAND_RESULT)
        put_command_obx(&w, m, when);
    else
        put_obx(&w, m, when);
    if (w.over) {
        out[0] = '\0';
        return MW_ENOSPC;
    }
    *out_len = w.n;
    return MW_OK;
}

/* The segment of @p msg that starts with @p name ("PID|"), as [*start, *end) with its CR; false
 * when there is none before the first OBR. */
static bool segment(const char *msg, size_t len, const char *name, const char **start,
                    const char **end)
{
    size_t nl = strlen(name);
    const char *p = msg, *stop = msg + len;
    while (p < stop) {
        const char *cr = memchr(p, '\r', (size_t)(stop - p));
        const char *next = cr ? cr + 1 : stop;
        if ((size_t)(stop - p) >= nl && memcmp(p, name, nl) == 0) {
            *start = p;
            *end = next;
            return true;
        }
        if ((size_t)(stop - p) >= 4 && memcmp(p, "OBR|", 4) == 0)
            return false;
        p = next;
    }
    return false;
}

/* Where the first OBR begins, or NULL. */
static const char *first_obr(const char *msg, size_t len)
{
    const char *p = msg, *stop = msg + len;
    while (p < stop) {
        if ((size_t)(stop - p) >= 4 && memcmp(p, "OBR|", 4) == 0)
            return p;
        const char *cr = memchr(p, '\r', (size_t)(stop - p));
        if (cr == NULL)
            return NULL;
        p = cr + 1;
    }
    return NULL;
}

static bool is_r01(const char *msg, size_t len)
{
    static const char type[] = "||ORU^R01^ORU_R01|";
    const char *cr = memchr(msg, '\r', len);
    size_t msh = cr ? (size_t)(cr - msg) : len;
    for (size_t i = 0; i + sizeof type - 1 <= msh; i++)
        if (memcmp(msg + i, type, sizeof type - 1) == 0)
            return first_obr(msg, len) != NULL;
    return false;
}

static bool same_segment(const char *a, size_t alen, const char *b, size_t blen, const char *name)
{
    const char *as, *ae, *bs, *be;
    if (!segment(a, alen, name, &as, &ae) || !segment(b, blen, name, &bs, &be))
        return false;
    return ae - as == be - bs && memcmp(as, bs, (size_t)(ae - as)) == 0;
}

bool hl7_mergeable(const char *a, size_t alen, const char *b, size_t blen)
{
    return is_r01(a, alen) && is_r01(b, blen) && same_segment(a, alen, b, blen, "PID|") &&
           same_segment(a, alen, b, blen, "PV1|");
}

size_t hl7_merge(const char *const *msgs, const size_t *lens, size_t n, char *out, size_t cap)
{
    if (n == 0 || n > HL7_MERGE_MAX || cap == 0)
        return 0;
    hl7v2_writer_t w = {out, 0, cap, false};
    out[0] = '\0';
    const char *obr0 = first_obr(msgs[0], lens[0]);
    const char *msh_end = memchr(msgs[0], '\r', lens[0]);
    if (obr0 == NULL || msh_end == NULL || !is_r01(msgs[0], lens[0]))
        return 0;
    /* MSH with MSH-10 (the tenth field: nine bars before it) followed by "+n". */
    const char *p = msgs[0];
    int bars = 0;
    const char *f10_end = NULL;
    for (const char *q = p; q < msh_end; q++) {
        if (*q == '|' && ++bars == 10) {
            f10_end = q;
            break;
        }
    }
    if (f10_end == NULL)
        return 0;
    hl7v2_put_n(&w, p, (size_t)(f10_end - p));
    char t[16];
    snprintf(t, sizeof t, "+%zu", n);
    hl7v2_put(&w, t);
    hl7v2_put_n(&w, f10_end, (size_t)(obr0 - f10_end)); /* the rest of MSH, PID and PV1 */
    for (size_t i = 0; i < n; i++) {
        const char *obr = first_obr(msgs[i], lens[i]);
        if (obr == NULL || (i > 0 && !hl7_mergeable(msgs[0], lens[0], msgs[i], lens[i])))
            return 0;
        /* "OBR|1|" becomes "OBR|<i+1>|". */
        if ((size_t)(msgs[i] + lens[i] - obr) < 6 || memcmp(obr, "OBR|1|", 6) != 0)
            return 0;
        snprintf(t, sizeof t, "OBR|%zu|", i + 1);
        hl7v2_put(&w, t);
        hl7v2_put_n(&w, obr + 6, (size_t)(msgs[i] + lens[i] - (obr + 6)));
    }
    if (w.over) {
        out[0] = '\0';
        return 0;
    }
    return w.n;
}

bool hl7_ack_accepts(const char *code)
{
    return strcmp(code, "AA") == 0 || strcmp(code, "CA") == 0;
}

bool hl7_parse_ack(const char *msg, size_t len, hl7_ack_t *out)
{
    memset(out, 0, sizeof *out);
    /* The field separator is whatever follows "MSH" in the answer. */
    if (len < 8 || memcmp(msg, "MSH", 3) != 0)
        return false;
    char sep = msg[3];
    size_t pos = 0;
    hl7v2_span_t seg;
    /* Segments end with CR; some senders end them with CR LF or LF (hl7v2_next_segment). */
    while (hl7v2_next_segment(msg, len, &pos, &seg)) {
        if (seg.n < 4 || !hl7v2_span_is(hl7v2_piece(seg, sep, 0), "MSA"))
            continue;
        hl7v2_span_t code = hl7v2_piece(seg, sep, 1), id = hl7v2_piece(seg, sep, 2);
        if (code.n != 2)
            return false;
        memcpy(out->code, code.p, 2);
        static const char *const codes[] = {"AA", "AE", "AR", "CA", "CE", "CR"};
        bool known = false;
        for (size_t i = 0; i < sizeof codes / sizeof codes[0]; i++)
            known = known || strcmp(out->code, codes[i]) == 0;
        if (!known)
            return false;
        /* MSA-2 is compared with the control id as it was sent, escapes and all. */
        if (id.n >= sizeof out->control_id)
            return false;
        memcpy(out->control_id, id.p, id.n);
        return true;
    }
    return false;
}
