/* SPDX-License-Identifier: Apache-2.0 */
/**
 * @file fhir.h
 * @brief Delivered messages and audit records as HL7 FHIR R4 (4.0.1) JSON resources.
 *
 * For hospital systems that read FHIR rather than medwire's own JSON lines. Measurements,
 * alarms, device status and the gateway's communication-loss events all become an
 * @c Observation (so one output file holds one resource type, as FHIR Bulk Data NDJSON files
 * do); every audit record becomes an @c AuditEvent. Command results have no FHIR form. The
 * mapping, field by field, with its codes and the reasons for each choice, is
 * docs/fhir-mapping.md.
 *
 * Each function writes one resource as one JSON object (no newline) into a buffer the caller
 * owns. They allocate nothing, keep no state, never block and are safe to call from any
 * thread. Every string that came from a device or a peer is escaped; the output is always
 * valid JSON and pure ASCII.
 *
 * @code
 * mw_fhir_options_t opt = {.gateway_name = "ward-3-gateway"}; // other fields: defaults
 * char line[MW_FHIR_MAX];
 * size_t n;
 * if (mw_message_to_fhir(msg, &opt, line, sizeof line, &n) == MW_OK)
 *     printf("%s\n", line); // one NDJSON line
 * @endcode
 */
#ifndef MEDWIRE_FHIR_H
#define MEDWIRE_FHIR_H

#include <stddef.h>
#include <stdint.h>

#include "medwire/audit.h"
#include "medwire/err.h"
#include "medwire/message.h"

#ifdef __cplusplus
extern "C" {
#endif

/** A buffer of this size holds any resource written with the default options (a NULL or
 *  zeroed ::mw_fhir_options_t), whatever the message or audit record holds (audit strings are
 *  read up to their documented bounds). Longer option strings need more: the functions say
 *  how much through @c out_len. */
#define MW_FHIR_MAX 8192

/** Identifier systems used when an option is NULL. */
#define MW_FHIR_DEVICE_SYSTEM  "urn:medwire:device"
#define MW_FHIR_MESSAGE_SYSTEM "urn:medwire:message"
#define MW_FHIR_GATEWAY_NAME   "medwire-gateway"

/** How resources name things outside the message. A NULL field takes its default; a NULL
 *  options pointer takes every default. The strings are read during the call only. */
typedef struct mw_fhir_options {
    /** Names the system that observed the message or event (the gateway): the AuditEvent's
     *  @c source.observer and its own agent. Default ::MW_FHIR_GATEWAY_NAME. */
    const char *gateway_name;
    /** Identifier system of device ids (@c Identifier.system of every device reference); a URI
     *  without spaces. Default ::MW_FHIR_DEVICE_SYSTEM. */
    const char *device_system;
    /** Identifier system of @c Observation.identifier, whose value is "<device id>/<seq>": the
     *  same message delivered twice carries the same identifier, so a hospital system can
     *  deduplicate on it. A URI without spaces. Default ::MW_FHIR_MESSAGE_SYSTEM. */
    const char *message_system;
    /** Literal reference of the patient the device is attached to ("Patient/123"), written as
     *  the @c subject of clinical observations and alarms; no spaces. NULL: no subject (the
     *  hospital associates device and patient). The options are per call, so a caller that
     *  knows the association can pass the right patient for each message. */
    const char *patient_reference;
    /** Literal reference of the Device resource of the message's device ("Device/7" or a
     *  transaction Bundle's "urn:uuid:..."), written in @c Observation.device beside the
     *  device identifier; no spaces. NULL: the identifier only. */
    const char *device_reference;
} mw_fhir_options_t;

/**
 * Writes @p msg as one FHIR R4 @c Observation (no newline) into @p out.
 *
 * Observations keep their MDC code and gain the LOINC codes and vital-signs category where
 * medwire knows them, with the exact decimal value and its UCUM unit; alarms and
 * communication-loss events become alarm Observations (IEC 60601-1-8 state as the value,
 * priority as a component); device status becomes a device Observation with battery, power,
 * uptime and queue components. See docs/fhir-mapping.md.
 *
 * @param msg      the message; not modified
 * @param opt      names and systems; NULL for the defaults
 * @param out      receives the NUL-terminated resource; may be NULL only if @p out_size is 0
 * @param out_size size of @p out in bytes
 * @param out_len  if not NULL, receives the resource's length without the NUL, also on
 *                 ::MW_ENOSPC (the size needed is then *out_len + 1)
 * @return ::MW_OK;
 *         ::MW_EINVAL for a kind that has no clinical meaning (command results and unknown
 *         payloads: they stay in the JSON output and the gateway's store), an empty device
 *         id, a string without its NUL, an enum out of range, or an option that is not a
 *         URI without spaces (nothing is written: out is left empty);
 *         ::MW_ENOSPC when @p out_size is too small (::MW_FHIR_MAX always suffices with the
 *         default options), leaving @p out empty and never writing past @p out_size.
 */
MW_API MW_NODISCARD mw_err mw_message_to_fhir(const mw_message_t *msg, const mw_fhir_options_t *opt,
                                              char *out, size_t out_size, size_t *out_len);

/**
 * Writes @p ev as one FHIR R4 @c AuditEvent (no newline) into @p out.
 *
 * The type and subtype come from the DICOM audit event codes (for example 110113 Security
 * Alert / 110126 Node Authentication for a failed handshake) with medwire's event name as a
 * second subtype; the outcome from the event (0 success, 4 a refusal, 8 a failure of the
 * gateway itself); the peer becomes an agent with its network address and, once known, its
 * device identity; the gateway is the observer; the reason is the outcome description, and
 * the medwire error, the foreign code and the peer's port are entity details.
 *
 * @param ev       the record; its strings are read up to 64 bytes (event, peer), 65 (device)
 *                 and 512 (reason); NULL strings count as empty
 * @param opt      names and systems; NULL for the defaults
 * @param time_ms  when the event was recorded, Unix time in milliseconds (@c recorded); it
 *                 must be before the year 10000
 * @param out, out_size, out_len  as for mw_message_to_fhir()
 * @return ::MW_OK; ::MW_EINVAL for a NULL @p ev, a @p time_ms FHIR cannot represent or a bad
 *         option; ::MW_ENOSPC as for mw_message_to_fhir().
 */
MW_API MW_NODISCARD mw_err mw_audit_to_fhir(const mw_audit_event_t *ev,
                                            const mw_fhir_options_t *opt, uint64_t time_ms,
                                            char *out, size_t out_size, size_t *out_len);

#ifdef __cplusplus
}
#endif
#endif
