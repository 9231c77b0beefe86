/* SPDX-License-Identifier: Apache-2.0 */
/* hl7.h -- delivered messages as HL7 v2.6 ORU^R01 per IHE PCD-01, and the MLLP acknowledgement
 * the receiver answers (docs/hospital-integration.md has the mapping field by field). */
#ifndef MW_EXAMPLE_HL7_H
#define MW_EXAMPLE_HL7_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "medwire/medwire.h"

#include "associations.h"

/** Enough for any message hl7_encode writes (one OBX; strings are bounded in message.h and
 *  associations.h). */
#define HL7_MAX 4096
/** Longest message control id (MSH-10) hl7_control_id writes, with its NUL. */
#define HL7_CONTROL_ID_MAX 128

/** Whether @p m has an HL7 form: observations (PCD-01), alarms and the gateway's communication
 *  loss and restoration (PCD-04), command results (ORU^R01 with a local code) do; device status
 *  and gap records are not sent over HL7. */
bool hl7_has_form(const mw_message_t *m);

/**
 * MSH-10 for @p m: the device id, its sequence space and the sequence number, so that a message
 * sent again carries the same id and two messages never share one. Escaped as MSH-10 is sent.
 */
void hl7_control_id(const mw_message_t *m, char *out, size_t out_size);

/**
 * Writes @p m as one ORU^R01 (segments end with a carriage return, no MLLP framing);
 * @p now_ms (Unix ms) is MSH-7. @p assoc, when not NULL, is the patient and bed of the device:
 * PID-3 (the patient id, identifier type MR), PID-5 (the name), PV1-2 I and PV1-3 (the
 * location), each component escaped; NULL leaves PID empty and PV1-2 U. Returns MW_OK,
 * MW_EINVAL (no HL7 form: see hl7_has_form) or MW_ENOSPC (@p out_size too small; HL7_MAX
 * always suffices).
 */
mw_err hl7_encode(const mw_message_t *m, const association_t *assoc, uint64_t now_ms, char *out,
                  size_t out_size, size_t *out_len);

/** Most messages hl7_merge puts in one. */
#define HL7_MERGE_MAX 64

/**
 * Whether the ORU^R01 @p b (as hl7_encode wrote it) may travel in one message with @p a: both
 * PCD-01 observation reports (ORU^R01 with an OBR), with the same PID and PV1 segments (the same
 * device and patient association).
 */
bool hl7_mergeable(const char *a, size_t alen, const char *b, size_t blen);

/**
 * Writes the @p n (1 to HL7_MERGE_MAX) mergeable ORU^R01 messages @p msgs as one: the first's
 * MSH with MSH-10 "<its control id>+<n>", its PID and PV1, then each message's OBR (OBR-1 set id
 * 1 to n; OBR-3 keeps each message's own control id, which is how a receiver recognises one it
 * already has) and OBX segments, in order. Returns the length, or 0 when @p cap is too small or
 * a message is not an ORU^R01 of that form.
 */
size_t hl7_merge(const char *const *msgs, const size_t *lens, size_t n, char *out, size_t cap);

/** What an acknowledgement says. */
typedef struct hl7_ack {
    char code[3];                        /**< MSA-1: AA, AE, AR, CA, CE or CR */
    char control_id[HL7_CONTROL_ID_MAX]; /**< MSA-2: the acknowledged message's MSH-10 */
} hl7_ack_t;

/**
 * Reads the MSA segment of the acknowledgement @p msg (@p len bytes, MLLP framing removed).
 * Returns false when it is not an acknowledgement: no MSH, no MSA, an MSA-1 that is none of the
 * six codes, or an MSA-2 longer than HL7_CONTROL_ID_MAX - 1.
 */
bool hl7_parse_ack(const char *msg, size_t len, hl7_ack_t *out);

/** Whether @p code ends custody: AA (application accept) or CA (commit accept). */
bool hl7_ack_accepts(const char *code);

#endif
