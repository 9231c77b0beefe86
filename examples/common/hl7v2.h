/* SPDX-License-Identifier: Apache-2.0 */
/* hl7v2.h -- HL7 v2 for the programs that speak it: the MLLP deframer, the field-splitting
 * primitives, an ORU^R01 / ORU^R40 reader that maps a legacy monitor's observations and alarms to
 * medwire's, and the acknowledgement a receiver answers. No I/O and no allocation: every input
 * is treated as hostile and every byte of it is length-checked. */
#ifndef MW_EXAMPLE_HL7V2_H
#define MW_EXAMPLE_HL7V2_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "medwire/message.h"

/* ---- MLLP framing ---- */

/** MLLP start block, end block and the carriage return that follows the end block. */
#define HL7V2_MLLP_SB 0x0B
#define HL7V2_MLLP_EB 0x1C
#define HL7V2_MLLP_CR 0x0D

/** What the deframer has to report. */
typedef enum hl7v2_frame_kind {
    HL7V2_FRAME_MESSAGE = 1,   /**< a whole frame: @c msg, @c len is the message */
    HL7V2_FRAME_OVERSIZED = 2, /**< a frame longer than the buffer: @c msg, @c len is its start */
} hl7v2_frame_kind;

/** One frame, pointing into the deframer's buffer: valid until the next call that feeds it. */
typedef struct hl7v2_frame {
    hl7v2_frame_kind kind;
    const char *msg;
    size_t len;   /**< bytes at @c msg (at most the buffer's capacity) */
    size_t total; /**< bytes the frame held, start and end blocks excluded (> len if oversized) */
} hl7v2_frame_t;

/** State of one connection's (or serial line's) deframer. Initialise with
 *  hl7v2_deframer_init; the counters only grow. */
typedef struct hl7v2_deframer {
    char *buf;
    size_t cap;
    size_t len;   /**< bytes of the current frame kept in buf */
    size_t total; /**< bytes of the current frame seen */
    int state;
    uint64_t frames;    /**< whole frames reported */
    uint64_t oversized; /**< oversized frames reported */
    uint64_t garbage;   /**< bytes outside any frame, and frames abandoned by a new start block */
} hl7v2_deframer_t;

/** Starts a deframer that keeps at most @p cap bytes of a message in @p buf (the caller's). */
void hl7v2_deframer_init(hl7v2_deframer_t *d, char *buf, size_t cap);

/**
 * Feeds up to @p n bytes that arrived, in any chunking. Consumes bytes up to and including the
 * end block of one frame (and its CR when it came in the same chunk) and returns how many it
 * consumed; the caller calls again with the rest. Sets @p *got when a frame ended: @p out then
 * says whether it is a message or an oversized frame (the first @c cap bytes are kept, so that
 * the refusal can name the message's control id). Otherwise consumes all @p n bytes.
 *
 * Bytes before a start block are garbage (counted, dropped). A start block inside a frame
 * abandons the frame so far (a sender that gave up and started again): its bytes count as
 * garbage. An end block alone ends a frame; the CR after it is expected and swallowed, even when
 * it arrives in the next chunk. After an oversized frame the deframer resynchronises at the next
 * start block.
 */
size_t hl7v2_deframer_feed(hl7v2_deframer_t *d, const uint8_t *in, size_t n, hl7v2_frame_t *out,
                           bool *got);

/** Writes @p msg between the MLLP start and end blocks. Returns the framed length, or 0 when
 *  @p cap is too small. */
size_t hl7v2_frame(const char *msg, size_t len, uint8_t *out, size_t cap);

/* ---- Writing ---- */

/** A bounded output buffer: once something does not fit, @c over is set and nothing more is
 *  written; what was written stays NUL-terminated. */
typedef struct hl7v2_writer {
    char *p;
    size_t n, cap;
    bool over;
} hl7v2_writer_t;

void hl7v2_put_n(hl7v2_writer_t *w, const char *s, size_t n);
void hl7v2_put(hl7v2_writer_t *w, const char *s);

/**
 * Writes @p n bytes of text escaped with the delimiters |^~\& (2.7.4): each delimiter by name,
 * control characters (a carriage return would end the segment) as hexadecimal data. At most
 * @p max_out bytes are written, never half an escape.
 */
void hl7v2_put_escaped(hl7v2_writer_t *w, const char *s, size_t n, size_t max_out);

/* ---- Segments and fields ---- */

/** A run of bytes inside a message (not NUL-terminated). */
typedef struct hl7v2_span {
    const char *p;
    size_t n;
} hl7v2_span_t;

/** The five delimiters a message declares in MSH-1 and MSH-2. */
typedef struct hl7v2_enc {
    char field, comp, rep, esc, sub;
} hl7v2_enc_t;

/**
 * The next segment of @p msg from @p *pos: segments end with CR, LF or CR LF; empty lines are
 * skipped. Returns false when no segment is left; advances @p *pos past the segment's end.
 */
bool hl7v2_next_segment(const char *msg, size_t len, size_t *pos, hl7v2_span_t *out);

/** The @p idx th piece (0-based) of @p s split at @p sep; an empty span when there is none. */
hl7v2_span_t hl7v2_piece(hl7v2_span_t s, char sep, size_t idx);

/** Whether @p s is the text @p lit (NUL-terminated), byte for byte. */
bool hl7v2_span_is(hl7v2_span_t s, const char *lit);

/**
 * Reads the delimiters of the MSH segment @p msh into @p out: MSH-1 the field separator, MSH-2
 * the component, repetition, escape and subcomponent characters (a fifth, v2.7's truncation
 * character, is allowed and ignored). False when they are missing, repeated or alphanumeric.
 */
bool hl7v2_read_enc(hl7v2_span_t msh, hl7v2_enc_t *out);

/** Field @p n of segment @p seg as HL7 numbers it (MSH-1 is the separator itself, so MSH-n is
 *  the (n-1)th piece; other segments' field n is the nth piece). */
hl7v2_span_t hl7v2_field(hl7v2_span_t seg, const hl7v2_enc_t *enc, size_t n);

/**
 * Unescapes @p s (2.7.4): \\F\\ \\S\\ \\T\\ \\R\\ \\E\\ become the delimiters, \\Xhh..\\ the bytes
 * it spells; highlighting (\\H\\ \\N\\) is dropped. Writes a NUL-terminated string into @p out.
 * Returns false on an unknown or unterminated escape, a \\X with an odd number of digits or one
 * that spells a NUL, or when @p cap is too small (then @p out holds what fitted).
 */
bool hl7v2_unescape(hl7v2_span_t s, const hl7v2_enc_t *enc, char *out, size_t cap);

/**
 * HL7 DTM `YYYY[MM[DD[HH[MM[SS[.S[S[S[S]]]]]]]]][+/-ZZZZ]` to Unix ms. Without an offset the time
 * is taken as UTC: a monitor whose clock is local must send its offset. False for a malformed
 * time, an impossible date, or one before 1970.
 */
bool hl7v2_parse_dtm(hl7v2_span_t s, uint64_t *out_ms);

/**
 * An HL7 NM as mantissa x 10^exponent, exactly: optional sign, digits, optional point and
 * digits ("97.5" -> 975, -1; "-0.25" -> -25, -2). False for anything else (no exponent
 * notation, no spaces), more than 18 significant digits, or an exponent below -128.
 */
bool hl7v2_parse_decimal(hl7v2_span_t s, int64_t *out_mantissa, int32_t *out_exponent);

/* ---- ORU^R01 / ORU^R40 ---- */

/** Most items one message may carry. */
#define HL7V2_ITEMS_MAX 64
/** Longest device identifier (the bridge names the legacy device with it). */
#define HL7V2_SOURCE_MAX 39
/** Longest header string kept (control id, application, facility), without the NUL. */
#define HL7V2_ID_MAX 127

/** HL7 table 0357 codes the reader and the bridge report. */
#define HL7V2_E_SEGMENT_SEQUENCE 100u
#define HL7V2_E_REQUIRED_MISSING 101u
#define HL7V2_E_DATA_TYPE        102u
#define HL7V2_E_TABLE_VALUE      103u
#define HL7V2_E_MESSAGE_TYPE     200u
#define HL7V2_E_EVENT_CODE       201u
#define HL7V2_E_PROCESSING_ID    202u
#define HL7V2_E_VERSION          203u
#define HL7V2_E_APPLICATION      207u

/** Why a message is refused, as its acknowledgement says it (ERR segment). */
typedef struct hl7v2_error {
    char ack_code[3];  /**< "AE" (the message is understood but cannot be taken) or "AR" */
    unsigned err_code; /**< HL7 table 0357 */
    char location[32]; /**< ERR-2 as SEG^sequence^field, e.g. "OBX^3^5"; "" for the message */
    char text[160];    /**< what is wrong and what to do, for a person */
} hl7v2_error_t;

typedef enum hl7v2_item_kind {
    HL7V2_OBSERVATION = 1,
    HL7V2_ALARM = 2,
} hl7v2_item_kind;

/** One observation or alarm of the message. */
typedef struct hl7v2_item {
    hl7v2_item_kind kind;
    unsigned obx_seq; /**< which OBX of the message (1-based): the sequence in ERR-2 */
    unsigned set_id;  /**< its OBX-1 (0 when absent) */
    union {
        mw_observation_t observation;
        mw_alarm_t alarm;
    } u;
} hl7v2_item_t;

/** What an accepted message says. Strings are unescaped and NUL-terminated. */
typedef struct hl7v2_oru {
    char control_id[HL7V2_ID_MAX + 1];       /**< MSH-10 */
    char sending_app[HL7V2_ID_MAX + 1];      /**< MSH-3, first component */
    char sending_facility[HL7V2_ID_MAX + 1]; /**< MSH-4, first component */
    char message_type[16];                   /**< "ORU^R01" or "ORU^R40" */
    char version[16];                        /**< MSH-12, first component */
    char processing_id[4];                   /**< MSH-11, first component: P or T */
    char source[HL7V2_SOURCE_MAX + 1];       /**< the device: OBX-18.1, else MSH-3.1 */
    size_t n_items;
    hl7v2_item_t items[HL7V2_ITEMS_MAX];
} hl7v2_oru_t;

/**
 * Reads one ORU^R01 (IHE PCD-01 observations, and alarms whose OBX-3 is an MDC event) or ORU^R40
 * (IHE PCD-04 alarm reports) of HL7 v2.3 to v2.9. Returns 0 with @p out filled, or -1 with
 * @p err saying why. Nothing of a refused message is to be used: it is taken whole or not at all.
 *
 * AR (not a message this reader takes): no MSH (100), bad delimiters (102), a type other than
 * ORU (200), a trigger other than R01/R40 (201), MSH-11 other than P or T (202), MSH-12 outside
 * 2.3 to 2.9 (203). AE (understood, cannot be carried): an OBX value without a known code (103,
 * or 101 without any), a value that is not a decimal or a bad time (102), a unit medwire cannot
 * name in UCUM (103) or none (101), result status D or W (103), more than HL7V2_ITEMS_MAX items
 * or none at all (100), an empty MSH-10 (101), a device identifier too long (102).
 *
 * Each OBX, in order:
 * - OBX-3 `code^text^MDC` (partition << 16 | term, as hl7.c writes it) or `code^text^LN`, the
 *   LOINC code found in the terms table (a method-specific code first, then the general one;
 *   several MDC terms share 8867-4, heart rate: the first in the table wins); the alternate
 *   triplet (components 4 to 6) is tried when the first is another coding system.
 * - An MDC event code (partition 3, e.g. 196670 MDC_EVT_LO) makes an alarm, whatever OBX-2:
 *   priority from OBX-8's flags PH/PM/PL/PN (PCD-04), else medium; state active; text OBX-5,
 *   else OBX-3's text, cut to MW_ALARM_TEXT_MAX in ASCII; time as below. The PCD-04 facet OBX
 *   that follow it (68481 phase, 68482 state, 68484 priority, 68485 type, under the same
 *   OBX-4 parent) refine it: state active/inactive/acknowledged/latched, a phase "end" without
 *   a state makes it inactive.
 * - OBX-2 NM with a value (or with OBX-11 X) makes an observation: OBX-5 exactly as
 *   mantissa/exponent; OBX-6 `ucum^text^UCUM`, a bare unit the terms table uses, or an MDC unit
 *   (`262688^MDC_DIM_PERCENT^MDC`: %, /min, mL, mL/h, mm[Hg], cm[H2O], Cel). OBX-11 (table 0085):
 *   F C R U V A B or empty -> valid, P S -> questionable, X -> unavailable (value 0), I N O ->
 *   the OBX is skipped, D W -> AE. MSH-11 T makes every valued reading test data.
 * - Anything else (the MDS/VMD/CHAN hierarchy OBX of PCD-01, settings, text) is skipped.
 * - Time: OBX-14, else OBR-7 of its OBR, else MSH-7 (hl7v2_parse_dtm; no offset means UTC);
 *   0 ("now" to the client) when none is given.
 * - source: OBX-18.1 of the first OBX that has one, else MSH-3.1; never truncated.
 */
int hl7v2_parse_oru(const char *msg, size_t len, hl7v2_oru_t *out, hl7v2_error_t *err);

/* ---- Acknowledgements ---- */

/** Room that always suffices for hl7v2_build_ack, whatever the original holds: what it copies
 *  from the original is bounded. */
#define HL7V2_ACK_MAX 4096

/**
 * Writes the acknowledgement of @p msg (@p len bytes, MLLP framing removed; any bytes at all):
 * MSH with the original's sender and receiver swapped (MSH-3 @p app), MSH-7 @p now_ms,
 * MSH-9 ACK^<the original's trigger>^ACK, MSH-10 a new id, MSH-11 and MSH-12 the original's;
 * MSA-1 @p ack_code (AA, AE or AR), MSA-2 the original's MSH-10 (empty when it has no MSH); and
 * when @p err is not NULL an ERR segment: ERR-2 the location, ERR-3 code^text^HL70357, ERR-4 E,
 * ERR-8 the text (and MSA-3 the text for a v2.3 or v2.4 sender, which reads no ERR-8).
 * Everything taken from the original is unescaped with its delimiters and escaped again with
 * ours (|^~\\&), each component bounded (64 bytes for MSH-3 to MSH-6 and @p app, all of any
 * control id hl7v2_parse_oru accepts). Segments end with CR. Returns the length (no MLLP
 * framing; @p out is also NUL-terminated), or 0 when @p cap is too small (never with
 * HL7V2_ACK_MAX).
 */
size_t hl7v2_build_ack(const char *msg, size_t len, const char *ack_code, const hl7v2_error_t *err,
                       uint64_t now_ms, const char *app, char *out, size_t cap);

#endif
