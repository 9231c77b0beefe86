/* SPDX-License-Identifier: Apache-2.0 */
/* names.h -- the names of the message enums (medwire/message.h), one table each: the JSON output
 * writes the codes, the FHIR output the codes with their displays, so the two cannot disagree. */
#ifndef MWI_CORE_NAMES_H
#define MWI_CORE_NAMES_H

#include <stdint.h>

#include "medwire/message.h"

/* The names of one enum's values 0..count-1: codes[v] is the JSON value and the FHIR code (NULL:
 * not a value of the enum), displays[v] FHIR's display of it (NULL: none). */
typedef struct mwi_names {
    const char *const *codes;
    const char *const *displays;
    unsigned count;
} mwi_names;

/* mw_priority, with 0 the "unknown" of a gap record's lost priority (never an envelope's). */
extern const mwi_names mwi_priority_names;
extern const mwi_names mwi_meas_status_names;
/* IEC 60601-1-8's alarm priorities and alarm condition states. */
extern const mwi_names mwi_alarm_priority_names;
extern const mwi_names mwi_alarm_state_names;
extern const mwi_names mwi_gap_reason_names;
extern const mwi_names mwi_msg_type_names;
extern const mwi_names mwi_command_status_names;

/** The code of @p value in @p t; NULL for a value outside the enum, which a struct the codec
 *  produced never holds (the outputs refuse such a struct rather than guess). */
const char *mwi_name_code(const mwi_names *t, int64_t value);
/** The display of @p value in @p t; NULL outside the enum or where the value has none. */
const char *mwi_name_display(const mwi_names *t, int64_t value);
/** An envelope's priority (1..3) by its code; NULL for any other value, 0 included. */
const char *mwi_envelope_priority(mw_priority p);

#endif
