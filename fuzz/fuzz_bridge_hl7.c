/* SPDX-License-Identifier: Apache-2.0 */
/* fuzz_bridge_hl7.c -- what a legacy device sends the bridge: MLLP bytes in any chunking, each
 * frame read as an ORU and answered with an ACK; what is accepted passes the SDK's own message
 * checks, and every ACK is well formed and names the message it answers. */
#include <string.h>

#include "medwire/message.h"
#include "session/codec.h"

#include "fuzz_support.h"
#include "hl7v2.h"

/* Small enough that inputs reach the oversized path, large enough for real messages. */
#define FRAME_CAP 2048
#define ACK_CAP   HL7V2_ACK_MAX

static bool nul_in(const char *s, size_t size)
{
    return memchr(s, '\0', size) != NULL;
}

/* An accepted message: bounded, terminated, and each item one the device SDK would queue. */
static void check_oru(const hl7v2_oru_t *o)
{
    MWF_CHECK(o->n_items >= 1 && o->n_items <= HL7V2_ITEMS_MAX, "%zu items", o->n_items);
    MWF_CHECK(nul_in(o->control_id, sizeof o->control_id) && o->control_id[0] != '\0',
              "control id");
    MWF_CHECK(nul_in(o->sending_app, sizeof o->sending_app) &&
                  nul_in(o->sending_facility, sizeof o->sending_facility) &&
                  nul_in(o->message_type, sizeof o->message_type) &&
                  nul_in(o->version, sizeof o->version) &&
                  nul_in(o->processing_id, sizeof o->processing_id),
              "a header string is not terminated");
    MWF_CHECK(nul_in(o->source, sizeof o->source) && o->source[0] != '\0' &&
                  strlen(o->source) <= HL7V2_SOURCE_MAX,
              "source");
    MWF_CHECK(strcmp(o->message_type, "ORU^R01") == 0 || strcmp(o->message_type, "ORU^R40") == 0,
              "type %s", o->message_type);
    for (size_t i = 0; i < o->n_items; i++) {
        const hl7v2_item_t *it = &o->items[i];
        mw_message_t m;
        memset(&m, 0, sizeof m);
        memcpy(m.device_id, "bridge", 7);
        m.seq = 1;
        MWF_CHECK(it->obx_seq >= 1, "item %zu has no OBX sequence", i);
        if (it->kind == HL7V2_OBSERVATION) {
            m.type = MW_MSG_OBSERVATION;
            m.priority = MW_PRIORITY_OBSERVATION;
            m.u.observation = it->u.observation;
            MWF_CHECK(nul_in(it->u.observation.unit, sizeof it->u.observation.unit), "unit");
            MWF_CHECK(it->u.observation.exponent <= 0, "exponent %d", it->u.observation.exponent);
        } else {
            MWF_CHECK(it->kind == HL7V2_ALARM, "item %zu kind %d", i, (int)it->kind);
            m.type = MW_MSG_ALARM;
            m.priority = MW_PRIORITY_ALARM;
            m.u.alarm = it->u.alarm;
            MWF_CHECK(nul_in(it->u.alarm.text, sizeof it->u.alarm.text), "alarm text");
            MWF_CHECK((it->u.alarm.mdc_code >> 16) == 3, "alarm code %u", it->u.alarm.mdc_code);
        }
        MWF_CHECK(mwi_message_check(&m) == MW_OK, "item %zu would be refused by the SDK", i);
    }
}

static void check_error(const hl7v2_error_t *e)
{
    MWF_CHECK(strcmp(e->ack_code, "AE") == 0 || strcmp(e->ack_code, "AR") == 0, "ack code");
    static const unsigned codes[] = {100, 101, 102, 103, 200, 201, 202, 203, 207};
    bool known = false;
    for (size_t i = 0; i < sizeof codes / sizeof codes[0]; i++)
        known = known || e->err_code == codes[i];
    MWF_CHECK(known, "error code %u", e->err_code);
    MWF_CHECK(nul_in(e->location, sizeof e->location) && nul_in(e->text, sizeof e->text) &&
                  e->text[0] != '\0',
              "error strings");
}

/* An ACK: our delimiters, CR-terminated segments of printable text, MSH then MSA (then ERR),
 * MSA-1 the code given and MSA-2 the original's control id when it has one we read. */
static void check_ack(const char *ack, size_t n, const char *code, const hl7v2_oru_t *o,
                      bool parsed)
{
    MWF_CHECK(n > 0 && n < ACK_CAP && strlen(ack) == n, "ack length %zu", n);
    MWF_CHECK(strncmp(ack, "MSH|^~\\&|", 9) == 0 && ack[n - 1] == '\r', "ack framing");
    for (size_t i = 0; i < n; i++)
        MWF_CHECK(ack[i] == '\r' || ((unsigned char)ack[i] >= 0x20 && ack[i] != 0x7f),
                  "byte %zu of the ack is 0x%02x", i, (unsigned char)ack[i]);
    static const char *const names[] = {"MSH", "MSA", "ERR"};
    size_t pos = 0, k = 0;
    hl7v2_span_t seg;
    hl7v2_enc_t enc = {'|', '^', '~', '\\', '&'};
    while (hl7v2_next_segment(ack, n, &pos, &seg)) {
        MWF_CHECK(k < 3 && hl7v2_span_is(hl7v2_piece(seg, '|', 0), names[k]), "segment %zu", k);
        if (k == 1) {
            MWF_CHECK(hl7v2_span_is(hl7v2_field(seg, &enc, 1), code), "MSA-1");
            char id[HL7V2_ID_MAX + 1];
            MWF_CHECK(hl7v2_unescape(hl7v2_field(seg, &enc, 2), &enc, id, sizeof id) || !parsed,
                      "MSA-2 does not unescape");
            if (parsed)
                MWF_CHECK(strcmp(id, o->control_id) == 0, "MSA-2 '%s' is not '%s'", id,
                          o->control_id);
        }
        k++;
    }
    MWF_CHECK(k >= 2, "%zu segments", k);
}

static void answer(const char *msg, size_t len)
{
    static hl7v2_oru_t oru;
    hl7v2_error_t err;
    char ack[ACK_CAP], small[64];
    int rc = hl7v2_parse_oru(msg, len, &oru, &err);
    if (rc == 0)
        check_oru(&oru);
    else
        check_error(&err);
    const char *code = rc == 0 ? "AA" : err.ack_code;
    size_t n = hl7v2_build_ack(msg, len, code, rc == 0 ? NULL : &err, 1796462100123u,
                               "MEDWIRE-BRIDGE", ack, sizeof ack);
    check_ack(ack, n, code, &oru, rc == 0);
    /* A buffer too small gives nothing, never a cut acknowledgement. */
    memset(small, 'z', sizeof small);
    size_t m = hl7v2_build_ack(msg, len, code, rc == 0 ? NULL : &err, 0, "B", small, sizeof small);
    MWF_CHECK(m == 0 || (m < sizeof small && strlen(small) == m), "small ack %zu", m);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static char buf[FRAME_CAP];
    if (size < 2)
        return 0;
    /* The first two bytes seed the chunk sizes: the same stream, cut differently. */
    uint32_t rng = (uint32_t)data[0] << 8 | data[1];
    data += 2;
    size -= 2;
    hl7v2_deframer_t d;
    hl7v2_deframer_init(&d, buf, sizeof buf);
    size_t off = 0;
    uint64_t frames = 0, over = 0;
    while (off < size) {
        rng = rng * 1103515245u + 12345u;
        size_t chunk = 1 + (rng >> 16) % 97;
        if (chunk > size - off)
            chunk = size - off;
        size_t used = 0;
        while (used < chunk) {
            hl7v2_frame_t f;
            bool got = false;
            size_t k = hl7v2_deframer_feed(&d, data + off + used, chunk - used, &f, &got);
            MWF_CHECK(k >= 1 && k <= chunk - used, "consumed %zu of %zu", k, chunk - used);
            used += k;
            if (!got)
                continue;
            MWF_CHECK(f.len <= FRAME_CAP && f.total >= f.len, "frame %zu of %zu", f.len, f.total);
            if (f.kind == HL7V2_FRAME_OVERSIZED) {
                MWF_CHECK(f.total > FRAME_CAP && f.len == FRAME_CAP, "oversized %zu", f.total);
                over++;
                /* The bridge refuses it from what it kept. */
                hl7v2_error_t e = {"AR", 100, "", "message too large"};
                char ack[ACK_CAP];
                size_t n =
                    hl7v2_build_ack(f.msg, f.len, "AR", &e, 0, "MEDWIRE-BRIDGE", ack, sizeof ack);
                check_ack(ack, n, "AR", NULL, false);
            } else {
                MWF_CHECK(f.kind == HL7V2_FRAME_MESSAGE, "kind %d", (int)f.kind);
                frames++;
                answer(f.msg, f.len);
            }
        }
        off += chunk;
    }
    MWF_CHECK(d.frames == frames && d.oversized == over, "counters");
    MWF_CHECK(d.garbage <= size, "garbage %llu of %zu bytes", (unsigned long long)d.garbage, size);
    return 0;
}
