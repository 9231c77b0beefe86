/* SPDX-License-Identifier: Apache-2.0 */
/* test_hl7v2.c -- the bridge's HL7 v2 module: MLLP deframing in any chunking, the ORU^R01/R40
 * reader (PCD-01 as monitors send it, and what the gateway's own hl7.c writes), every refusal
 * with its code and location, and acknowledgements read back by python-hl7. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hl7.h"
#include "hl7v2.h"
#include "support/proc.h"

static hl7v2_span_t sp(const char *s)
{
    return (hl7v2_span_t){s, strlen(s)};
}

/* ---- MLLP ---- */

/* Feeds @p in in chunks of @p chunk bytes; collects what the deframer reports. */
typedef struct seen {
    size_t n;
    hl7v2_frame_kind kind[8];
    char msg[8][256];
    size_t len[8], total[8];
} seen;

static void feed_all(hl7v2_deframer_t *d, const uint8_t *in, size_t n, size_t chunk, seen *s)
{
    memset(s, 0, sizeof *s);
    for (size_t off = 0; off < n;) {
        size_t c = n - off < chunk ? n - off : chunk;
        size_t used = 0;
        while (used < c) {
            hl7v2_frame_t f;
            bool got = false;
            size_t k = hl7v2_deframer_feed(d, in + off + used, c - used, &f, &got);
            cr_assert(k > 0 && k <= c - used, "consumed %zu of %zu", k, c - used);
            used += k;
            if (got) {
                cr_assert_lt(s->n, 8u);
                s->kind[s->n] = f.kind;
                memcpy(s->msg[s->n], f.msg, f.len);
                s->len[s->n] = f.len;
                s->total[s->n] = f.total;
                s->n++;
            }
        }
        off += c;
    }
}

Test(mllp, frames_arrive_whole_in_any_chunking)
{
    const uint8_t in[] = "\x0bMSH|one\r\x1c\r\x0bMSH|two\r\x1c\r";
    for (size_t chunk = 1; chunk <= sizeof in; chunk++) {
        char buf[64];
        hl7v2_deframer_t d;
        seen s;
        hl7v2_deframer_init(&d, buf, sizeof buf);
        feed_all(&d, in, sizeof in - 1, chunk, &s);
        cr_assert_eq(s.n, 2u, "chunk %zu", chunk);
        for (size_t i = 0; i < 2; i++) {
            cr_expect_eq(s.kind[i], HL7V2_FRAME_MESSAGE);
            cr_expect_eq(s.len[i], 8u);
            cr_expect_eq(s.total[i], 8u);
        }
        cr_expect(memcmp(s.msg[0], "MSH|one\r", 8) == 0);
        cr_expect(memcmp(s.msg[1], "MSH|two\r", 8) == 0);
        cr_expect_eq(d.frames, 2u);
        cr_expect_eq(d.garbage, 0u, "the CR after an end block is not garbage (chunk %zu)", chunk);
    }
}

Test(mllp, an_oversized_frame_is_reported_then_the_next_one_is_read)
{
    uint8_t in[200];
    size_t n = 0;
    in[n++] = 0x0b;
    for (int i = 0; i < 40; i++)
        in[n++] = 'x';
    in[n++] = 0x1c;
    in[n++] = 0x0d;
    memcpy(in + n, "\x0bMSH|ok\x1c\x0d", 10);
    n += 10;
    for (size_t chunk = 1; chunk <= n; chunk += 7) {
        char buf[16];
        hl7v2_deframer_t d;
        seen s;
        hl7v2_deframer_init(&d, buf, sizeof buf);
        feed_all(&d, in, n, chunk, &s);
        cr_assert_eq(s.n, 2u);
        cr_expect_eq(s.kind[0], HL7V2_FRAME_OVERSIZED);
        cr_expect_eq(s.len[0], 16u, "the start is kept: the refusal can name the message");
        cr_expect_eq(s.total[0], 40u);
        cr_expect_eq(s.kind[1], HL7V2_FRAME_MESSAGE);
        cr_expect_eq(s.len[1], 6u);
        cr_expect(memcmp(s.msg[1], "MSH|ok", 6) == 0);
        cr_expect_eq(d.oversized, 1u);
        cr_expect_eq(d.frames, 1u);
    }
}

Test(mllp, a_frame_of_exactly_the_capacity_fits)
{
    char buf[6];
    hl7v2_deframer_t d;
    seen s;
    hl7v2_deframer_init(&d, buf, sizeof buf);
    feed_all(&d,
             (const uint8_t *)"\x0b"
                              "MSH|ab\x1c\x0d",
             9, 1, &s);
    cr_assert_eq(s.n, 1u);
    cr_expect_eq(s.kind[0], HL7V2_FRAME_MESSAGE);
    cr_expect_eq(s.len[0], 6u);
}

Test(mllp, garbage_outside_frames_is_counted_and_dropped)
{
    const uint8_t in[] = "noise\r\n\x0bMSH|a\x1c\rjunk\x0bMSH|b\x1c\r";
    char buf[64];
    hl7v2_deframer_t d;
    seen s;
    hl7v2_deframer_init(&d, buf, sizeof buf);
    feed_all(&d, in, sizeof in - 1, 3, &s);
    cr_assert_eq(s.n, 2u);
    cr_expect(memcmp(s.msg[0], "MSH|a", 5) == 0 && s.len[0] == 5);
    cr_expect(memcmp(s.msg[1], "MSH|b", 5) == 0 && s.len[1] == 5);
    cr_expect_eq(d.garbage, 11u, "7 bytes of noise and 4 of junk");
}

Test(mllp, a_start_block_inside_a_frame_abandons_it)
{
    const uint8_t in[] = "\x0bMSH|cut\x0bMSH|whole\x1c\r";
    char buf[64];
    hl7v2_deframer_t d;
    seen s;
    hl7v2_deframer_init(&d, buf, sizeof buf);
    feed_all(&d, in, sizeof in - 1, 1, &s);
    cr_assert_eq(s.n, 1u);
    cr_expect_eq(s.len[0], 9u);
    cr_expect(memcmp(s.msg[0], "MSH|whole", 9) == 0);
    cr_expect_eq(d.garbage, 8u, "the start block and the 7 bytes of the abandoned frame");
}

Test(mllp, an_end_block_without_its_cr_still_ends_the_frame)
{
    const uint8_t in[] = "\x0bMSH|a\x1c\x0bMSH|b\x1c";
    char buf[64];
    hl7v2_deframer_t d;
    seen s;
    hl7v2_deframer_init(&d, buf, sizeof buf);
    feed_all(&d, in, sizeof in - 1, 64, &s);
    cr_assert_eq(s.n, 2u);
    cr_expect_eq(d.garbage, 0u);
}

Test(mllp, framing_round_trips_and_refuses_a_small_buffer)
{
    const char msg[] = "MSH|^~\\&|X\rMSA|AA|1\r";
    uint8_t out[64];
    size_t n = hl7v2_frame(msg, strlen(msg), out, sizeof out);
    cr_assert_eq(n, strlen(msg) + 3);
    cr_expect_eq(out[0], 0x0b);
    cr_expect_eq(out[n - 2], 0x1c);
    cr_expect_eq(out[n - 1], 0x0d);
    cr_expect_eq(hl7v2_frame(msg, strlen(msg), out, strlen(msg) + 2), 0u);
    cr_expect_eq(hl7v2_frame(msg, strlen(msg), out, 2), 0u);
    char buf[64];
    hl7v2_deframer_t d;
    seen s;
    hl7v2_deframer_init(&d, buf, sizeof buf);
    feed_all(&d, out, n, 5, &s);
    cr_assert_eq(s.n, 1u);
    cr_expect(s.len[0] == strlen(msg) && memcmp(s.msg[0], msg, s.len[0]) == 0);
}

/* ---- primitives ---- */

Test(hl7v2, decimals_are_exact)
{
    struct {
        const char *s;
        int64_t m;
        int32_t e;
    } ok[] = {{"97.5", 975, -1},
              {"-0.25", -25, -2},
              {"120", 120, 0},
              {"+5", 5, 0},
              {"0", 0, 0},
              {"0.000", 0, -3},
              {".5", 5, -1},
              {"1.", 1, 0},
              {"007", 7, 0},
              {"36.850", 36850, -3},
              {"123456789012345678", 123456789012345678, 0},
              {"-0.000000000000000000001", -1, -21}};
    for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
        int64_t m = 99;
        int32_t e = 99;
        cr_expect(hl7v2_parse_decimal(sp(ok[i].s), &m, &e), "%s", ok[i].s);
        cr_expect(m == ok[i].m && e == ok[i].e, "%s: %lld, %d", ok[i].s, (long long)m, e);
    }
    const char *bad[] = {
        "1e3", "1234567890123456789", "", ".", "-", "1.2.3", " 1", "1 ", "0x10", "NaN", "12,5"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        int64_t m;
        int32_t e;
        cr_expect_not(hl7v2_parse_decimal(sp(bad[i]), &m, &e), "'%s'", bad[i]);
    }
    char tiny[140] = "0.";
    memset(tiny + 2, '0', 128);
    tiny[130] = '1';
    int64_t m;
    int32_t e;
    cr_expect_not(hl7v2_parse_decimal(sp(tiny), &m, &e), "exponent below -128");
}

Test(hl7v2, times_with_and_without_offsets)
{
    struct {
        const char *s;
        uint64_t ms;
    } ok[] = {{"2026", 1767225600000u},
              {"20261205091500", 1796462100000u},
              {"20261205101500+0100", 1796462100000u},
              {"20261205101500.1234+0100", 1796462100123u},
              {"20261205101500.5+0100", 1796462100500u},
              {"20261205101500-0530", 1796485500000u},
              {"202612051014+0100", 1796462040000u},
              {"20240229235959", 1709251199000u},
              {"1970", 0u}};
    for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
        uint64_t ms = 1;
        cr_expect(hl7v2_parse_dtm(sp(ok[i].s), &ms), "%s", ok[i].s);
        cr_expect_eq(ms, ok[i].ms, "%s: %llu", ok[i].s, (unsigned long long)ms);
    }
    const char *bad[] = {"",
                         "202",
                         "20261",
                         "20261301",
                         "20250229",
                         "20261205246000",
                         "19691231",
                         "20261205101500.12345",
                         "2026120510.5",
                         "20261205101500+01",
                         "20261205101500+2400",
                         "2026-12-05",
                         "20261205101500+0100x"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        uint64_t ms;
        cr_expect_not(hl7v2_parse_dtm(sp(bad[i]), &ms), "'%s'", bad[i]);
    }
}

Test(hl7v2, escapes_decode_and_bad_ones_are_refused)
{
    const hl7v2_enc_t enc = {'|', '^', '~', '\\', '&'};
    char out[64];
    cr_assert(hl7v2_unescape(sp("a\\F\\b\\S\\c\\T\\d\\R\\e\\E\\f"), &enc, out, sizeof out));
    cr_expect_str_eq(out, "a|b^c&d~e\\f");
    cr_assert(hl7v2_unescape(sp("x\\X0D0A\\y\\H\\bold\\N\\"), &enc, out, sizeof out));
    cr_expect_str_eq(out, "x\r\nybold");
    const char *bad[] = {"\\Q\\", "\\F", "\\X0\\", "\\X00\\", "\\XZZ\\", "\\\\", "\\.br\\"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        cr_expect_not(hl7v2_unescape(sp(bad[i]), &enc, out, sizeof out), "%s", bad[i]);
    cr_expect_not(hl7v2_unescape(sp("abcdef"), &enc, out, 6), "too long for the buffer");
    cr_expect(hl7v2_unescape(sp("abcde"), &enc, out, 6));
}

Test(hl7v2, fields_split_at_the_declared_delimiters)
{
    hl7v2_enc_t enc;
    hl7v2_span_t msh = sp("MSH#*@!%#APP*X#FAC");
    cr_assert(hl7v2_read_enc(msh, &enc));
    cr_expect(enc.field == '#' && enc.comp == '*' && enc.rep == '@' && enc.esc == '!' &&
              enc.sub == '%');
    cr_expect(hl7v2_span_is(hl7v2_field(msh, &enc, 1), "#"));
    cr_expect(hl7v2_span_is(hl7v2_field(msh, &enc, 2), "*@!%"));
    cr_expect(hl7v2_span_is(hl7v2_field(msh, &enc, 3), "APP*X"));
    cr_expect(hl7v2_span_is(hl7v2_field(msh, &enc, 4), "FAC"));
    cr_expect(hl7v2_span_is(hl7v2_field(msh, &enc, 9), ""));
    cr_expect(hl7v2_span_is(hl7v2_piece(sp("a^b^^d"), '^', 3), "d"));
    cr_expect(hl7v2_span_is(hl7v2_piece(sp("a^b^^d"), '^', 2), ""));
    cr_expect(hl7v2_span_is(hl7v2_piece(sp("a^b^^d"), '^', 9), ""));
    const char *bad[] = {"MSH|^^\\&|", "MSH|^~\\|",    "MSH|^~A&|",
                         "MSH",        "MSH|^~\\&&x|", "XYZ|^~\\&|"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        cr_expect_not(hl7v2_read_enc(sp(bad[i]), &enc), "%s", bad[i]);
    cr_expect(hl7v2_read_enc(sp("MSH|^~\\&#|"), &enc), "v2.7's truncation character");
}

Test(hl7v2, segments_end_with_cr_lf_or_both)
{
    const char m[] = "A|1\rB|2\nC|3\r\n\r\nD|4";
    size_t pos = 0;
    hl7v2_span_t s;
    const char *want[] = {"A|1", "B|2", "C|3", "D|4"};
    for (size_t i = 0; i < 4; i++) {
        cr_assert(hl7v2_next_segment(m, strlen(m), &pos, &s));
        cr_expect(hl7v2_span_is(s, want[i]), "segment %zu", i);
    }
    cr_expect_not(hl7v2_next_segment(m, strlen(m), &pos, &s));
}

/* ---- reading ORU ---- */

static hl7v2_oru_t oru;
static hl7v2_error_t err;

static int parse(const char *m)
{
    return hl7v2_parse_oru(m, strlen(m), &oru, &err);
}

#define PCD01_MSH                                                                                  \
    "MSH|^~\\&|MONITOR^0800ABCD^EUI-64|ICU||MEDWIRE|20261205101500+0100||ORU^R01^ORU_R01|MSG0001|" \
    "P|2.6|||NE|AL||UNICODE UTF-8|||IHE_PCD_001^IHE PCD^1.3.6.1.4.1.19376.1.6.1.1.1^ISO\r"
#define HDR                                                                                        \
    PCD01_MSH "PID|||12345^^^H^MR||DOE^JANE\rPV1||I|ICU^1^A\r"                                     \
              "OBR|1|X1^MON|X1^MON|182777000^monitoring of patient^SNOMED-CT|||"                   \
              "20261205101400+0100\r"

static const char PCD01[] =
    HDR "OBX|1||69965^MDC_DEV_MON_PHYSIO_MULTI_PARAM_MDS^MDC|1.0.0.0|||||||X|||||||"
        "0800ABCD^EUI-64\r"
        "OBX|2||69854^MDC_DEV_METER_PRESS_BLD_VMD^MDC|1.1.0.0|||||||X\r"
        "OBX|3||69855^MDC_DEV_METER_PRESS_BLD_CHAN^MDC|1.1.1.0|||||||X\r"
        "OBX|4|NM|150021^MDC_PRESS_BLD_NONINV_SYS^MDC|1.1.1.1|120|266016^MDC_DIM_MMHG^MDC|||||R|||"
        "20261205101430+0100\r"
        "OBX|5|NM|59408-5^Oxygen saturation by pulse oximetry^LN|1.2.1.1|97.5|%^%^UCUM|||||F\r"
        "OBX|6|NM|8310-5^Body temperature^LN|1.3.1.1|36.85|Cel|||||P|||20261205091500\r"
        "OBX|7|CWE|68063^MDC_ATTR_MODE_OP^MDC|1.0.0.1|^Monitoring^MDC||||||F\r"
        "OBX|8|NM|151562^MDC_RESP_RATE^MDC|1.4.1.1||264928^MDC_DIM_RESP_PER_MIN^MDC|||||X\r"
        "OBX|9|ST|0002-4bb8^SpO2^MDIL|1.5.1.1|text||||||F\r";

static void expect_obs(size_t i, unsigned seq, uint32_t code, int64_t m, int32_t e,
                       const char *unit, mw_meas_status st, uint64_t t)
{
    cr_assert_lt(i, oru.n_items);
    const hl7v2_item_t *it = &oru.items[i];
    cr_expect_eq(it->kind, HL7V2_OBSERVATION, "item %zu", i);
    cr_expect_eq(it->obx_seq, seq, "item %zu", i);
    cr_expect_eq(it->set_id, seq, "item %zu", i);
    const mw_observation_t *o = &it->u.observation;
    cr_expect_eq(o->mdc_code, code, "item %zu", i);
    cr_expect(o->mantissa == m && o->exponent == e, "item %zu: %lld e%d", i, (long long)o->mantissa,
              o->exponent);
    cr_expect_str_eq(o->unit, unit, "item %zu", i);
    cr_expect_eq(o->status, st, "item %zu", i);
    cr_expect_eq(o->time_ms, t, "item %zu: %llu", i, (unsigned long long)o->time_ms);
}

Test(oru, a_pcd01_message_with_its_device_hierarchy)
{
    cr_assert_eq(parse(PCD01), 0, "%s %u %s: %s", err.ack_code, err.err_code, err.location,
                 err.text);
    cr_expect_str_eq(oru.control_id, "MSG0001");
    cr_expect_str_eq(oru.sending_app, "MONITOR");
    cr_expect_str_eq(oru.sending_facility, "ICU");
    cr_expect_str_eq(oru.message_type, "ORU^R01");
    cr_expect_str_eq(oru.version, "2.6");
    cr_expect_str_eq(oru.processing_id, "P");
    cr_expect_str_eq(oru.source, "0800ABCD", "OBX-18 of the MDS OBX names the device");
    cr_assert_eq(oru.n_items, 4u, "the hierarchy, the setting and the local code are skipped");
    expect_obs(0, 4, MW_MDC_PRESS_BLD_NONINV_SYS, 120, 0, "mm[Hg]", MW_MEAS_VALID, 1796462070000u);
    /* LOINC by method (59408-5) names SpO2; OBR-7 is its time. */
    expect_obs(1, 5, MW_MDC_PULS_OXIM_SAT_O2, 975, -1, "%", MW_MEAS_VALID, 1796462040000u);
    /* A general LOINC code, a bare UCUM unit, preliminary, a time without offset (UTC). */
    expect_obs(2, 6, MW_MDC_TEMP_BODY, 3685, -2, "Cel", MW_MEAS_QUESTIONABLE, 1796462100000u);
    expect_obs(3, 8, MW_MDC_RESP_RATE, 0, 0, "/min", MW_MEAS_UNAVAILABLE, 1796462040000u);
}

Test(oru, units_in_mdc_and_ucum)
{
    const char *units[][2] = {{"262688^MDC_DIM_PERCENT^MDC", "%"},
                              {"264864^MDC_DIM_BEAT_PER_MIN^MDC", "/min"},
                              {"266016^MDC_DIM_MMHG^MDC", "mm[Hg]"},
                              {"268192^MDC_DIM_DEGC^MDC", "Cel"},
                              {"263762^MDC_DIM_MILLI_L^MDC", "mL"},
                              {"265266^MDC_DIM_MILLI_L_PER_HR^MDC", "mL/h"},
                              {"266048^MDC_DIM_CM_H2O^MDC", "cm[H2O]"},
                              {"^MDC_DIM_PERCENT^MDC", "%"},
                              {"mL/h", "mL/h"},
                              {"%", "%"},
                              {"kg^kilogram^UCUM", "kg"},
                              {"mm[Hg]^mmHg", "mm[Hg]"}};
    for (size_t i = 0; i < sizeof units / sizeof units[0]; i++) {
        char m[1024];
        snprintf(m, sizeof m, HDR "OBX|1|NM|150456^^MDC|1.1.1.1|1|%s|||||F\r", units[i][0]);
        cr_assert_eq(parse(m), 0, "%s: %s", units[i][0], err.text);
        cr_expect_str_eq(oru.items[0].u.observation.unit, units[i][1], "%s", units[i][0]);
    }
}

Test(oru, escape_sequences_and_other_delimiters)
{
    const char m[] =
        "MSH#*@!%#MON!F!1#ICU#####ORU*R01#ID!S!7#P#2.5\r"
        "OBR#1######20261205091500\r"
        "OBX#1#NM#150456*SpO2*MDC#1.1.1.1#97#%*%*UCUM#####F#######BED!F!7!S!A*X\r"
        "OBX#2#ST#196670*MDC_EVT_LO*MDC#1.1.1.1.1#SpO2 !T! pulse !X0D!low###PH@SP###F\r";
    cr_assert_eq(parse(m), 0, "%s", err.text);
    /* An escaped delimiter stands for the delimiter this message declared. */
    cr_expect_str_eq(oru.control_id, "ID*7");
    cr_expect_str_eq(oru.sending_app, "MON#1");
    cr_expect_str_eq(oru.source, "BED#7*A");
    cr_assert_eq(oru.n_items, 2u);
    cr_expect_eq(oru.items[0].u.observation.mantissa, 97);
    cr_expect_eq(oru.items[0].u.observation.time_ms, 1796462100000u);
    const mw_alarm_t *a = &oru.items[1].u.alarm;
    cr_expect_eq(oru.items[1].kind, HL7V2_ALARM);
    cr_expect_str_eq(a->text, "SpO2 % pulse  low", "a CR in text becomes a space");
    cr_expect_eq(a->priority, MW_ALARM_HIGH);
}

Test(oru, segments_may_end_with_lf_or_crlf)
{
    char m[2048];
    snprintf(m, sizeof m, "%s", PCD01);
    for (char *p = m; *p; p++)
        if (*p == '\r')
            *p = '\n';
    cr_assert_eq(parse(m), 0, "%s", err.text);
    cr_expect_eq(oru.n_items, 4u);
    char crlf[4096] = "";
    for (const char *p = PCD01; *p; p++) {
        size_t n = strlen(crlf);
        if (*p == '\r') {
            crlf[n] = '\r';
            crlf[n + 1] = '\n';
            crlf[n + 2] = '\0';
        } else {
            crlf[n] = *p;
            crlf[n + 1] = '\0';
        }
    }
    cr_assert_eq(parse(crlf), 0, "%s", err.text);
    cr_expect_eq(oru.n_items, 4u);
}

Test(oru, alarms_in_an_r01_and_pcd04_facets)
{
    const char m[] =
        PCD01_MSH "OBR|1|||196616^MDC_EVT_ALARM^MDC|||20261205101400+0100\r"
                  "OBX|1|ST|196648^MDC_EVT_HI^MDC|1.1.1.1.1|HR high||||||F\r"
                  "OBX|2|ST|68481^MDC_ATTR_EVENT_PHASE^MDC|1.1.1.1.3|end||||||F\r"
                  "OBX|3|ST|196670^MDC_EVT_LO^MDC|1.1.1.2.1|||PL~SP||||F|||20261205101430+0100\r"
                  "OBX|4|ST|68482^MDC_ATTR_ALARM_STATE^MDC|1.1.1.2.4|acknowledged||||||F\r"
                  "OBX|5|ST|68484^MDC_ATTR_ALARM_PRIORITY^MDC|1.1.1.2.6|PH||||||F\r";
    cr_assert_eq(parse(m), 0, "%s", err.text);
    cr_assert_eq(oru.n_items, 2u);
    const mw_alarm_t *a = &oru.items[0].u.alarm;
    cr_expect_eq(a->mdc_code, MW_MDC_EVT_HI);
    cr_expect_eq(a->state, MW_ALARM_INACTIVE, "phase end");
    cr_expect_eq(a->priority, MW_ALARM_MEDIUM, "no flag: medium");
    cr_expect_str_eq(a->text, "HR high");
    cr_expect_eq(a->time_ms, 1796462040000u, "OBR-7");
    a = &oru.items[1].u.alarm;
    cr_expect_eq(a->mdc_code, MW_MDC_EVT_LO);
    cr_expect_eq(a->state, MW_ALARM_ACKNOWLEDGED);
    cr_expect_eq(a->priority, MW_ALARM_HIGH, "the priority facet over OBX-8");
    cr_expect_str_eq(a->text, "MDC_EVT_LO", "no OBX-5: the code's text");
    cr_expect_eq(a->time_ms, 1796462070000u);
    cr_expect_str_eq(oru.source, "MONITOR", "no OBX-18: MSH-3.1");
}

Test(oru, alarm_text_is_cut_to_ascii)
{
    char m[2048];
    snprintf(m, sizeof m, HDR "OBX|1|ST|196670^MDC_EVT_LO^MDC|1.1.1.1.1|Sp\xc3\xa9O2 %s||||||F\r",
             "0123456789012345678901234567890123456789012345678901234567890123456789");
    cr_assert_eq(parse(m), 0, "%s", err.text);
    const char *t = oru.items[0].u.alarm.text;
    cr_expect_eq(strlen(t), (size_t)MW_ALARM_TEXT_MAX);
    cr_expect(strncmp(t, "Sp?O2 0123", 10) == 0, "%s", t);
}

Test(oru, a_training_message_carries_test_data)
{
    const char m[] = "MSH|^~\\&|MON||||||ORU^R01|1|T|2.3.1\rOBX|1|NM|150456^^MDC||97|%|||||F\r";
    cr_assert_eq(parse(m), 0, "%s", err.text);
    cr_expect_eq(oru.items[0].u.observation.status, MW_MEAS_TEST_DATA);
    cr_expect_eq(oru.items[0].u.observation.time_ms, 0u, "no time anywhere: now");
    cr_expect_eq(oru.items[0].set_id, 1u);
}

static void expect_refused(const char *m, const char *ack, unsigned code, const char *loc,
                           const char *needle)
{
    cr_assert_eq(parse(m), -1, "accepted: %s", m);
    cr_expect_str_eq(err.ack_code, ack, "%s", m);
    cr_expect_eq(err.err_code, code, "%s: %s", m, err.text);
    cr_expect_str_eq(err.location, loc, "%s", m);
    cr_expect(strlen(err.text) > 20, "a sentence: %s", err.text);
    if (needle)
        cr_expect_not_null(strstr(err.text, needle), "'%s' not in: %s", needle, err.text);
}

Test(oru, what_is_not_an_oru_is_rejected)
{
    expect_refused("", "AR", 100, "MSH^1", "MSH");
    expect_refused("hello\r", "AR", 100, "MSH^1", NULL);
    expect_refused("PID|||1\rMSH|^~\\&|X\r", "AR", 100, "MSH^1", NULL);
    expect_refused("MSH|^^\\&|X||||||ORU^R01|1|P|2.6\r", "AR", 102, "MSH^1^2", NULL);
    expect_refused("MSH|^~\\&|X||||||ADT^A01|1|P|2.6\r", "AR", 200, "MSH^1^9", "ADT");
    expect_refused("MSH|^~\\&|X||||||ORU^R30|1|P|2.6\r", "AR", 201, "MSH^1^9", "R30");
    expect_refused("MSH|^~\\&|X||||||ORU^R01|1|D|2.6\r", "AR", 202, "MSH^1^11", NULL);
    expect_refused("MSH|^~\\&|X||||||ORU^R01|1|P|2.2\r", "AR", 203, "MSH^1^12", "2.2");
    expect_refused("MSH|^~\\&|X||||||ORU^R01|1|P|\r", "AR", 203, "MSH^1^12", NULL);
}

Test(oru, what_cannot_be_mapped_is_an_application_error)
{
    expect_refused(HDR "OBX|1|NM|0002-4bb8^SpO2^MDIL|1.1.1.1|98|%|||||F\r", "AE", 103, "OBX^1^3",
                   "0002-4bb8^MDIL");
    expect_refused(HDR "OBX|1|NM|1234-5^Mystery^LN|1.1.1.1|98|%|||||F\r", "AE", 103, "OBX^1^3",
                   "1234-5^LN");
    expect_refused(HDR "OBX|1|NM||1.1.1.1|98|%|||||F\r", "AE", 101, "OBX^1^3", NULL);
    expect_refused(HDR "OBX|1|NM|150456^^MDC|1.1.1.1|98|mmHg|||||F\r", "AE", 103, "OBX^1^6",
                   "mmHg");
    expect_refused(HDR "OBX|1|NM|150456^^MDC|1.1.1.1|98|999^X^MDC|||||F\r", "AE", 103, "OBX^1^6",
                   NULL);
    expect_refused(HDR "OBX|1|NM|150456^^MDC|1.1.1.1|98||||||F\r", "AE", 101, "OBX^1^6", NULL);
    expect_refused(HDR "OBX|1|NM|150456^^MDC|1.1.1.1|1e3|%|||||F\r", "AE", 102, "OBX^1^5", "1e3");
    expect_refused(HDR "OBX|1|NM|150456^^MDC|1.1.1.1|98|%|||||D\r", "AE", 103, "OBX^1^11", NULL);
    expect_refused(HDR "OBX|1|NM|150456^^MDC|1.1.1.1|98|%|||||Q\r", "AE", 103, "OBX^1^11", NULL);
    expect_refused(HDR "OBX|1|NM|150456^^MDC|1.1.1.1|98|%|||||F|||20261305\r", "AE", 102,
                   "OBX^1^14", "20261305");
    expect_refused(PCD01_MSH "OBR|1||||||garbage\rOBX|1|NM|150456^^MDC|1.1.1.1|98|%|||||F\r", "AE",
                   102, "OBR^1^7", NULL);
    expect_refused(HDR "OBX|1||69965^MDC_DEV_MON_PHYSIO_MULTI_PARAM_MDS^MDC|1.0.0.0|||||||X\r",
                   "AE", 100, "OBX^1", "no numeric");
    expect_refused(HDR "OBX|1|ST|196670^^MDC|1.1.1.1.1|x||||||F\r"
                       "OBX|2|ST|68482^MDC_ATTR_ALARM_STATE^MDC|1.1.1.1.4|sleeping||||||F\r",
                   "AE", 103, "OBX^2^5", "sleeping");
    expect_refused("MSH|^~\\&|X||||||ORU^R01||P|2.6\rOBX|1|NM|150456^^MDC||1|%\r", "AE", 101,
                   "MSH^1^10", NULL);
    expect_refused(HDR "OBX|1|NM|150456^^MDC|1.1.1.1|98|%|||||F\rMSH|^~\\&|X\r", "AE", 100, "MSH^2",
                   NULL);
}

Test(oru, the_source_is_never_truncated)
{
    char m[2048];
    const char id39[] = "abcdefghij0123456789abcdefghij012345678";
    snprintf(m, sizeof m, HDR "OBX|1|NM|150456^^MDC|1.1.1.1|98|%%|||||F|||||||%s^EUI-64\r", id39);
    cr_assert_eq(parse(m), 0, "%s", err.text);
    cr_expect_str_eq(oru.source, id39);
    snprintf(m, sizeof m, HDR "OBX|1|NM|150456^^MDC|1.1.1.1|98|%%|||||F|||||||%sX^EUI-64\r", id39);
    expect_refused(m, "AE", 102, "OBX^1^18", "39");
    snprintf(m, sizeof m, "MSH|^~\\&|%sX||||||ORU^R01|1|P|2.6\rOBX|1|NM|150456^^MDC||1|%%\r", id39);
    expect_refused(m, "AE", 102, "MSH^1^3", NULL);
}

static void many(size_t n, char *m, size_t cap)
{
    size_t o = (size_t)snprintf(m, cap, "%s", HDR);
    for (size_t i = 1; i <= n; i++)
        o += (size_t)snprintf(m + o, cap - o, "OBX|%zu|NM|150456^^MDC|1.1.1.%zu|%zu|%%|||||F\r", i,
                              i, i);
}

Test(oru, sixty_four_items_and_no_more)
{
    static char m[16384];
    many(HL7V2_ITEMS_MAX, m, sizeof m);
    cr_assert_eq(parse(m), 0, "%s", err.text);
    cr_expect_eq(oru.n_items, (size_t)HL7V2_ITEMS_MAX);
    cr_expect_eq(oru.items[63].u.observation.mantissa, 64);
    cr_expect_eq(oru.items[63].obx_seq, 64u);
    many(HL7V2_ITEMS_MAX + 1, m, sizeof m);
    expect_refused(m, "AE", 100, "OBX^65", "64");
}

/* ---- the gateway's own HL7, read back ---- */

static mw_message_t gw_message(mw_msg_type type)
{
    mw_message_t m;
    memset(&m, 0, sizeof m);
    snprintf(m.device_id, sizeof m.device_id, "%s", "oxi-7");
    m.space = 0x1f;
    m.seq = 42;
    m.device_time_ms = 1700000000000u;
    m.type = type;
    return m;
}

static void parse_encoded(const mw_message_t *m)
{
    static char out[HL7_MAX];
    size_t n = 0;
    cr_assert_eq(hl7_encode(m, NULL, 1700000001000u, out, sizeof out, &n), MW_OK);
    cr_assert_eq(hl7v2_parse_oru(out, n, &oru, &err), 0, "%s %s: %s\n%s", err.ack_code,
                 err.location, err.text, out);
    cr_expect_str_eq(oru.source, "oxi-7");
    cr_expect_str_eq(oru.control_id, "oxi-7-1f-42");
    cr_assert_eq(oru.n_items, 1u);
}

Test(roundtrip, observations_written_by_hl7_encode)
{
    struct {
        uint32_t code;
        int64_t m;
        int32_t e;
        const char *unit;
    } c[] = {{MW_MDC_PULS_OXIM_SAT_O2, 975, -1, "%"},
             {MW_MDC_TEMP_BODY, 3685, -2, "Cel"},
             {MW_MDC_PRESS_BLD_NONINV_SYS, -3, 4, "mm[Hg]"},
             {12345, 5, -3, "mL/h"},
             {MW_MDC_FLOW_FLUID_PUMP, 999999999999999999, 0, "mL/h"}};
    for (size_t i = 0; i < sizeof c / sizeof c[0]; i++) {
        mw_message_t m = gw_message(MW_MSG_OBSERVATION);
        mw_observation_t *o = &m.u.observation;
        o->mdc_code = c[i].code;
        o->mantissa = c[i].m;
        o->exponent = c[i].e;
        snprintf(o->unit, sizeof o->unit, "%s", c[i].unit);
        o->status = MW_MEAS_VALID;
        o->time_ms = 1700000000123u;
        parse_encoded(&m);
        const mw_observation_t *g = &oru.items[0].u.observation;
        cr_expect_eq(oru.items[0].kind, HL7V2_OBSERVATION);
        cr_expect_eq(g->mdc_code, o->mdc_code, "case %zu", i);
        /* hl7.c writes the decimal; "-30000" reads back as -30000 e0, the same value. */
        if (c[i].e >= 0) {
            int64_t v = c[i].m;
            for (int32_t k = 0; k < c[i].e; k++)
                v *= 10;
            cr_expect(g->mantissa == v && g->exponent == 0, "case %zu", i);
        } else {
            cr_expect(g->mantissa == o->mantissa && g->exponent == o->exponent, "case %zu", i);
        }
        cr_expect_str_eq(g->unit, o->unit, "case %zu", i);
        cr_expect_eq(g->status, MW_MEAS_VALID, "case %zu", i);
        cr_expect_eq(g->time_ms, o->time_ms, "case %zu", i);
    }
    mw_message_t m = gw_message(MW_MSG_OBSERVATION);
    m.u.observation.mdc_code = MW_MDC_RESP_RATE;
    m.u.observation.status = MW_MEAS_UNAVAILABLE;
    snprintf(m.u.observation.unit, sizeof m.u.observation.unit, "%s", "/min");
    parse_encoded(&m);
    cr_expect_eq(oru.items[0].u.observation.status, MW_MEAS_UNAVAILABLE);
    cr_expect_eq(oru.items[0].u.observation.time_ms, 1700000000000u, "the envelope's time");
}

Test(roundtrip, alarms_written_by_hl7_encode)
{
    for (unsigned st = MW_ALARM_INACTIVE; st <= MW_ALARM_LATCHED; st++) {
        for (unsigned pr = MW_ALARM_INFO; pr <= MW_ALARM_HIGH; pr++) {
            mw_message_t m = gw_message(MW_MSG_ALARM);
            mw_alarm_t *a = &m.u.alarm;
            a->mdc_code = pr % 2 ? MW_MDC_EVT_LO : MW_MDC_EVT_HI;
            a->priority = (mw_alarm_priority)pr;
            a->state = (mw_alarm_state)st;
            a->time_ms = 1700000000456u;
            snprintf(a->text, sizeof a->text, "%s", "SpO2 \"low\" | \\ ^ & ~ 85%");
            parse_encoded(&m);
            const mw_alarm_t *g = &oru.items[0].u.alarm;
            cr_expect_eq(oru.items[0].kind, HL7V2_ALARM);
            cr_expect_str_eq(oru.message_type, "ORU^R40");
            cr_expect_eq(g->mdc_code, a->mdc_code);
            cr_expect_eq(g->priority, a->priority, "state %u priority %u", st, pr);
            cr_expect_eq(g->state, a->state, "state %u priority %u", st, pr);
            cr_expect_eq(g->time_ms, a->time_ms);
            cr_expect_str_eq(g->text, a->text);
        }
    }
}

/* ---- acknowledgements ---- */

static char ack[2048];

static size_t build(const char *m, const char *code, const hl7v2_error_t *e)
{
    size_t n =
        hl7v2_build_ack(m, strlen(m), code, e, 1796462100123u, "MEDWIRE-BRIDGE", ack, sizeof ack);
    cr_assert_gt(n, 0u);
    cr_assert_eq(n, strlen(ack));
    return n;
}

Test(ack, an_accept_names_the_message_and_swaps_the_parties)
{
    size_t n = build(PCD01, "AA", NULL);
    const char *want = "MSH|^~\\&|MEDWIRE-BRIDGE|MEDWIRE|MONITOR^0800ABCD^EUI-64|ICU|"
                       "20261205091500.123+0000||ACK^R01^ACK|A1796462100123-";
    cr_expect(strncmp(ack, want, strlen(want)) == 0, "%s", ack);
    cr_expect_not_null(strstr(ack, "|P|2.6\rMSA|AA|MSG0001\r"), "%s", ack);
    cr_expect_null(strstr(ack, "ERR"));
    hl7_ack_t a;
    cr_assert(hl7_parse_ack(ack, n, &a), "the gateway's reader takes it");
    cr_expect_str_eq(a.code, "AA");
    cr_expect_str_eq(a.control_id, "MSG0001");
}

Test(ack, an_error_says_where_and_why)
{
    const char m[] = HDR "OBX|1|NM|150456^^MDC|1.1.1.1|98|mmHg|||||F\r";
    cr_assert_eq(parse(m), -1);
    build(m, err.ack_code, &err);
    cr_expect_not_null(strstr(ack, "\rMSA|AE|MSG0001\rERR||OBX^1^6|103^Table value not found^"
                                   "HL70357|E||||OBX 1 unit 'mmHg' is not UCUM"),
                       "%s", ack);
    cr_expect_eq(ack[strlen(ack) - 1], '\r');
}

Test(ack, garbage_still_gets_an_answer)
{
    cr_assert_eq(parse("\x01\x02garbage|^~"), -1);
    build("\x01\x02garbage|^~", "AR", &err);
    const char *want = "MSH|^~\\&|MEDWIRE-BRIDGE||||20261205091500.123+0000||ACK^R01^ACK|";
    cr_expect(strncmp(ack, want, strlen(want)) == 0, "%s", ack);
    cr_expect_not_null(strstr(ack, "|P|2.6\rMSA|AR|\rERR||MSH^1|100^Segment sequence error^"
                                   "HL70357|E||||not an HL7 v2 message"),
                       "%s", ack);
    hl7_ack_t a;
    cr_assert(hl7_parse_ack(ack, strlen(ack), &a));
    cr_expect_str_eq(a.code, "AR");
    cr_expect_str_eq(a.control_id, "");
}

Test(ack, what_is_copied_is_escaped_again_with_our_delimiters)
{
    const char m[] = "MSH#*@!%#MON*A|B#FAC##ME#x##ORU*R40#ID!S!|7!F!&#P#2.4\r";
    hl7v2_error_t e = {"AE", 207, "OBX^1^5", "queue full | retry ^ later"};
    build(m, "AE", &e);
    cr_expect_not_null(strstr(ack, "|ME|MON^A\\F\\B|FAC|"), "%s", ack);
    cr_expect_not_null(strstr(ack, "||ACK^R40^ACK|"), "%s", ack);
    cr_expect_not_null(strstr(ack, "|P|2.4\rMSA|AE|ID*\\F\\7#\\T\\|queue full \\F\\ retry \\S\\ "
                                   "later\rERR||OBX^1^5|207^Application internal error^HL70357|E"
                                   "||||queue full \\F\\ retry \\S\\ later\r"),
                       "v2.4: MSA-3 too; %s", ack);
}

Test(ack, a_small_buffer_gives_nothing)
{
    size_t n = build(PCD01, "AE", &(hl7v2_error_t){"AE", 207, "", "queue full"});
    for (size_t cap = 0; cap <= n; cap++) {
        char small[2048];
        memset(small, 'z', sizeof small);
        cr_expect_eq(hl7v2_build_ack(PCD01, strlen(PCD01), "AE",
                                     &(hl7v2_error_t){"AE", 207, "", "queue full"}, 1796462100123u,
                                     "MEDWIRE-BRIDGE", small, cap),
                     0u, "cap %zu", cap);
        cr_expect(cap == 0 || small[0] == '\0');
        cr_expect_eq(small[cap], 'z', "nothing written past cap %zu", cap);
    }
}

/* Whatever the original holds, the acknowledgement fits HL7V2_ACK_MAX: what it copies is
 * bounded, and a control id the reader accepts is copied whole. */
Test(ack, the_worst_original_still_fits_the_documented_room)
{
    static char m[16384];
    size_t o = 0;
    o += (size_t)snprintf(m + o, sizeof m - o, "MSH|^~\\&|");
    for (int f = 3; f <= 6; f++) {
        for (int c = 0; c < 3; c++) {
            for (int i = 0; i < 120; i++)
                o += (size_t)snprintf(m + o, sizeof m - o, "\\X01\\");
            o += (size_t)snprintf(m + o, sizeof m - o, c < 2 ? "^" : "|");
        }
    }
    o += (size_t)snprintf(m + o, sizeof m - o, "||ORU^R01|");
    for (int i = 0; i < HL7V2_ID_MAX; i++)
        o += (size_t)snprintf(m + o, sizeof m - o, "\\X02\\");
    o += (size_t)snprintf(m + o, sizeof m - o, "|P|2.4\rOBX|1|NM|150456^^MDC||1|%%||||||||||||dev\r");
    cr_assert_eq(hl7v2_parse_oru(m, o, &oru, &err), 0, "%s", err.text);
    cr_expect_eq(strlen(oru.control_id), (size_t)HL7V2_ID_MAX);
    hl7v2_error_t e;
    memset(&e, 0, sizeof e);
    snprintf(e.ack_code, sizeof e.ack_code, "AE");
    e.err_code = 207;
    memset(e.location, '|', sizeof e.location - 1);
    memset(e.text, '\x01', sizeof e.text - 1);
    static char out[HL7V2_ACK_MAX];
    size_t n = hl7v2_build_ack(m, o, "AE", &e, 1796462100123u, "MEDWIRE-BRIDGE", out, sizeof out);
    cr_assert_gt(n, 0u);
    cr_expect_lt(n, (size_t)HL7V2_ACK_MAX);
    const char *msa = strstr(out, "\rMSA|");
    cr_assert_not_null(msa);
    hl7v2_span_t seg = {msa + 1, strcspn(msa + 1, "\r")};
    const hl7v2_enc_t ours = {'|', '^', '~', '\\', '&'};
    char id[HL7V2_ID_MAX + 1];
    cr_assert(hl7v2_unescape(hl7v2_field(seg, &ours, 2), &ours, id, sizeof id));
    cr_expect_str_eq(id, oru.control_id, "MSA-2 whole");
}

/* python-hl7 (written by others) reads every kind of acknowledgement we build. */
Test(ack, python_hl7_reads_our_acknowledgements)
{
    const char *python = getenv("MW_HL7_PYTHON");
    const char *src = getenv("MW_SOURCE_DIR");
    cr_assert(python && src, "run through ctest");
    char script[600];
    snprintf(script, sizeof script, "%s/tests/bridge/ack_fields.py", src);
    hl7v2_error_t unit_err;
    const char bad_unit[] = HDR "OBX|1|NM|150456^^MDC|1.1.1.1|98|mmHg|||||F\r";
    cr_assert_eq(hl7v2_parse_oru(bad_unit, strlen(bad_unit), &oru, &unit_err), -1);
    hl7v2_error_t garbage_err;
    cr_assert_eq(hl7v2_parse_oru("junk", 4, &oru, &garbage_err), -1);
    struct {
        const char *msg, *code;
        const hl7v2_error_t *err;
        const char *want[6];
    } c[] = {
        {PCD01,
         "AA",
         NULL,
         {"MSH-9=ACK^R01^ACK\n", "MSA-1=AA\n", "MSA-2=MSG0001\n", "ERR=\n",
          "MSH-5=MONITOR^0800ABCD^EUI-64\n", "MSH-12=2.6\n"}},
        {bad_unit,
         "AE",
         &unit_err,
         {"MSA-1=AE\n", "MSA-2=MSG0001\n", "ERR-2=OBX^1^6\n",
          "ERR-3=103^Table value not found^HL70357\n", "ERR-4=E\n",
          "ERR-8=OBX 1 unit 'mmHg' is not UCUM"}},
        {"junk",
         "AR",
         &garbage_err,
         {"MSA-1=AR\n", "MSA-2=\n", "ERR-2=MSH^1\n", "ERR-3=100^Segment sequence error^HL70357\n",
          "MSH-9=ACK^R01^ACK\n", "MSH-3=MEDWIRE-BRIDGE\n"}},
        {"MSH#*@!%#MON######ORU*R01#A!F!B#P#2.5\r",
         "AA",
         NULL,
         {"MSA-2=A#B\n", "MSH-12=2.5\n", "MSH-5=MON\n", "MSA-1=AA\n", "ERR=\n", "MSH-11=P\n"}},
    };
    for (size_t i = 0; i < sizeof c / sizeof c[0]; i++) {
        char dir[300], file[400], out[400];
        snprintf(dir, sizeof dir, "%s", mwt_tmpdir());
        snprintf(file, sizeof file, "%s/ack.hl7", dir);
        snprintf(out, sizeof out, "%s/fields.txt", dir);
        build(c[i].msg, c[i].code, c[i].err);
        FILE *f = fopen(file, "wb");
        cr_assert_not_null(f);
        fputs(ack, f);
        fclose(f);
        const char *argv[] = {python, script, file, NULL};
        int rc = mwt_run(argv, out, NULL, 20000);
        char *got = mwt_read_file(out);
        cr_assert_eq(rc, 0, "python-hl7 refused ack %zu: %s\n%s", i, got ? got : "", ack);
        for (size_t k = 0; k < 6; k++)
            cr_expect_not_null(strstr(got, c[i].want[k]), "ack %zu lacks %s:\n%s", i, c[i].want[k],
                               got);
        free(got);
    }
}
