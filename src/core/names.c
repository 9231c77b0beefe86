/* SPDX-License-Identifier: Apache-2.0 */
/* names.c -- the names of the message enums, one table each (names.h). */
#include <stddef.h>

#include "core/names.h"

#define COUNT(a) (sizeof(a) / sizeof((a)[0]))

/* A value is its name's index: each enum is numbered from 0 (or 1) without holes, as on the wire
 * (proto/medwire.proto), and each table must name every value up to the enum's last. */

static const char *const PRIORITY[] = {"unknown", "status", "observation", "alarm"};
static const char *const PRIORITY_SHOWN[COUNT(PRIORITY)] = {"Unknown priority", "Device status",
                                                            "Observation", "Alarm"};
_Static_assert(COUNT(PRIORITY) == (size_t)MW_PRIORITY_ALARM + 1, "a name for each priority");
const mwi_names mwi_priority_names = {PRIORITY, PRIORITY_SHOWN, COUNT(PRIORITY)};

/* FHIR maps measurement statuses to elements of its own (fhir.c), so these have no display. */
static const char *const MEAS_STATUS[] = {"valid",       "questionable", "invalid",
                                          "unavailable", "calibrating",  "test-data"};
_Static_assert(COUNT(MEAS_STATUS) == (size_t)MW_MEAS_TEST_DATA + 1, "a name for each status");
const mwi_names mwi_meas_status_names = {MEAS_STATUS, NULL, COUNT(MEAS_STATUS)};

static const char *const ALARM_PRIORITY[] = {"info", "low", "medium", "high"};
static const char *const ALARM_PRIORITY_SHOWN[COUNT(ALARM_PRIORITY)] = {
    "Information Only", "Low Priority", "Medium Priority", "High Priority"};
_Static_assert(COUNT(ALARM_PRIORITY) == (size_t)MW_ALARM_HIGH + 1, "a name for each alarm priority");
const mwi_names mwi_alarm_priority_names = {ALARM_PRIORITY, ALARM_PRIORITY_SHOWN,
                                            COUNT(ALARM_PRIORITY)};

static const char *const ALARM_STATE[] = {"inactive", "active", "acknowledged", "latched"};
static const char *const ALARM_STATE_SHOWN[COUNT(ALARM_STATE)] = {"Inactive", "Active",
                                                                  "Acknowledged", "Latched"};
_Static_assert(COUNT(ALARM_STATE) == (size_t)MW_ALARM_LATCHED + 1, "a name for each alarm state");
const mwi_names mwi_alarm_state_names = {ALARM_STATE, ALARM_STATE_SHOWN, COUNT(ALARM_STATE)};

static const char *const GAP_REASON[] = {NULL, "evicted", "corrupt"};
static const char *const GAP_REASON_SHOWN[COUNT(GAP_REASON)] = {
    NULL, "Removed unsent to make room in a full queue", "Damaged at rest in the device's queue"};
_Static_assert(COUNT(GAP_REASON) == (size_t)MW_GAP_CORRUPT + 1, "a name for each gap reason");
const mwi_names mwi_gap_reason_names = {GAP_REASON, GAP_REASON_SHOWN, COUNT(GAP_REASON)};

static const char *const MSG_TYPE[] = {"unknown",
                                       "observation",
                                       "alarm",
                                       "status",
                                       "command_result",
                                       "communication_loss",
                                       "communication_restored",
                                       "gap"};
_Static_assert(COUNT(MSG_TYPE) == (size_t)MW_MSG_GAP + 1, "a name for each message type");
const mwi_names mwi_msg_type_names = {MSG_TYPE, NULL, COUNT(MSG_TYPE)};

static const char *const COMMAND_STATUS[] = {"done", "refused-replay", "refused-expired",
                                             "unsupported", "failed"};
_Static_assert(COUNT(COMMAND_STATUS) == (size_t)MW_CMD_FAILED + 1, "a name for each command status");
const mwi_names mwi_command_status_names = {COMMAND_STATUS, NULL, COUNT(COMMAND_STATUS)};

const char *mwi_name_code(const mwi_names *t, int64_t value)
{
    return value >= 0 && value < (int64_t)t->count ? t->codes[value] : NULL;
}

const char *mwi_name_display(const mwi_names *t, int64_t value)
{
    return t->displays != NULL && mwi_name_code(t, value) != NULL ? t->displays[value] : NULL;
}

const char *mwi_envelope_priority(mw_priority p)
{
    return p == 0 ? NULL : mwi_name_code(&mwi_priority_names, p);
}

MW_API const char *mw_msg_type_name(mw_msg_type type)
{
    const char *name = mwi_name_code(&mwi_msg_type_names, type);
    return name != NULL ? name : "unknown";
}

MW_API const char *mw_command_status_name(mw_command_status s)
{
    return mwi_name_code(&mwi_command_status_names, s);
}
