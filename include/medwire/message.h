/* SPDX-License-Identifier: Apache-2.0 */
/**
 * @file message.h
 * @brief Clinical messages as the application sees them, and their JSON form.
 *
 * These are plain structs with fixed-size fields: no pointer in them is owned
 * by anyone, so they can be copied, kept in static storage and passed between
 * threads. The wire form (protobuf, proto/medwire.proto) is internal.
 *
 * Values follow IEEE 11073-10101 (MDC codes) and map to FHIR R4 Observation:
 * value = mantissa * 10^exponent in a UCUM unit.
 *
 * @code
 * mw_observation_t spo2 = {.mdc_code = MW_MDC_PULS_OXIM_SAT_O2, .mantissa = 975,
 *                          .exponent = -1, .unit = "%", .status = MW_MEAS_VALID}; // 97.5 %
 * if (mw_client_send_observation(client, &spo2, NULL) != MW_OK)
 *     fprintf(stderr, "not queued\n"); // mw_client_last_error says why
 * @endcode
 */
#ifndef MEDWIRE_MESSAGE_H
#define MEDWIRE_MESSAGE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "medwire/err.h"
#include "medwire/terms.h" /* the MW_MDC_ codes */

#ifdef __cplusplus
extern "C" {
#endif

/** Longest device id (the certificate's common name), without the NUL. */
#define MW_ID_MAX 64
/** Longest UCUM unit string, without the NUL. */
#define MW_UNIT_MAX 15
/** Longest alarm text, without the NUL. */
#define MW_ALARM_TEXT_MAX 47
/** Longest source (the originating device's identifier behind a bridge), without the NUL. */
#define MW_SOURCE_MAX 39

/** Delivery priority: alarms first when a queue is flushed; status last. */
typedef enum mw_priority {
    MW_PRIORITY_STATUS = 1,
    MW_PRIORITY_OBSERVATION = 2,
    MW_PRIORITY_ALARM = 3,
} mw_priority;

/** Measurement status, as in proto/medwire.proto. */
typedef enum mw_meas_status {
    MW_MEAS_VALID = 0,
    MW_MEAS_QUESTIONABLE = 1,
    MW_MEAS_INVALID = 2,
    MW_MEAS_UNAVAILABLE = 3,
    MW_MEAS_CALIBRATING = 4,
    MW_MEAS_TEST_DATA = 5,
} mw_meas_status;

/** IEC 60601-1-8 alarm priority. */
typedef enum mw_alarm_priority {
    MW_ALARM_INFO = 0,
    MW_ALARM_LOW = 1,
    MW_ALARM_MEDIUM = 2,
    MW_ALARM_HIGH = 3,
} mw_alarm_priority;

/** IEC 60601-1-8 alarm condition state. */
typedef enum mw_alarm_state {
    MW_ALARM_INACTIVE = 0,
    MW_ALARM_ACTIVE = 1,
    MW_ALARM_ACKNOWLEDGED = 2,
    MW_ALARM_LATCHED = 3,
} mw_alarm_state;

/** A measured value. A @c time_ms of 0 means "now" when sent through the client. */
typedef struct mw_observation {
    uint32_t mdc_code;
    int64_t mantissa;
    int32_t exponent;
    char unit[MW_UNIT_MAX + 1];
    mw_meas_status status;
    uint64_t time_ms;
    /** Optional: empty for a device speaking for itself. A bridge that sends a legacy device's
     *  readings under its own identity puts here the identifier of the device the reading came
     *  from, as that device gave it (e.g. its HL7 OBX-18 "MON-7"). Printable ASCII, spaces
     *  inside but not at either end, NUL-terminated within the array; otherwise the client
     *  refuses it (MW_EINVAL). */
    char source[MW_SOURCE_MAX + 1];
} mw_observation_t;

/** An alarm condition. */
typedef struct mw_alarm {
    uint32_t mdc_code;
    mw_alarm_priority priority;
    mw_alarm_state state;
    uint64_t time_ms;
    char text[MW_ALARM_TEXT_MAX + 1];
    /** Optional, as mw_observation_t.source: the device the alarm came from, behind a bridge. */
    char source[MW_SOURCE_MAX + 1];
} mw_alarm_t;

/** The device's own condition. */
typedef struct mw_device_status {
    uint32_t battery_pct;
    bool on_mains;
    uint64_t uptime_s;
    uint32_t queue_depth;
} mw_device_status_t;

/** Longest command result detail, without the NUL. */
#define MW_COMMAND_DETAIL_MAX 47

/** Commands a gateway may send a device. */
typedef enum mw_command_kind {
    MW_CMD_SET_INTERVAL = 1, /**< change the measurement interval */
    MW_CMD_ACK_ALARM = 2,    /**< a clinician acknowledged an alarm */
    MW_CMD_ROTATE_KEYS = 3,  /**< rotate the session keys now (handled by the SDK) */
} mw_command_kind;

/** The measurement intervals MW_CMD_SET_INTERVAL may set, in ms: 1 ms to 24 h, as the reference
 *  gateway's control socket takes them. A device refuses one outside them without running it. */
#define MW_CMD_INTERVAL_MIN_MS 1u
#define MW_CMD_INTERVAL_MAX_MS 86400000u

/** One command. @c id is unique per device across gateways and restarts (wall-clock ms in the
 *  upper 48 bits, random below); @c expires_ms is Unix time. */
typedef struct mw_command {
    uint64_t id;
    uint64_t expires_ms;
    mw_command_kind kind;
    union {
        uint32_t interval_ms; /**< MW_CMD_SET_INTERVAL */
        uint64_t alarm_seq;   /**< MW_CMD_ACK_ALARM: the alarm envelope's sequence number */
    } u;
} mw_command_t;

/** What became of a command. */
typedef enum mw_command_status {
    MW_CMD_DONE = 0,
    MW_CMD_REFUSED_REPLAY = 1,
    MW_CMD_REFUSED_EXPIRED = 2,
    MW_CMD_UNSUPPORTED = 3,
    MW_CMD_FAILED = 4,
} mw_command_status;

/** A device's answer to a command (travels as a message of its own). */
typedef struct mw_command_result {
    uint64_t command_id;
    mw_command_status status;
    char detail[MW_COMMAND_DETAIL_MAX + 1];
} mw_command_result_t;

/** Why messages will never reach the gateway (a gap record). */
typedef enum mw_gap_reason {
    MW_GAP_EVICTED = 1, /**< removed unsent to make room in a full queue */
    MW_GAP_CORRUPT = 2, /**< damaged at rest in the device's queue, never sent */
} mw_gap_reason;

/** Messages a device lost, reported so the hospital knows what it will never receive. For
 *  evictions, every message of @c priority numbered in [first_seq, last_seq] was either
 *  delivered or is among the @c count lost. */
typedef struct mw_gap {
    unsigned priority; /**< mw_priority of the lost messages, 0 if unknown */
    mw_gap_reason reason;
    uint64_t count;
    uint64_t first_seq; /**< 0 if unknown */
    uint64_t last_seq;  /**< 0 if unknown */
} mw_gap_t;

/** What an envelope carries. */
typedef enum mw_msg_type {
    MW_MSG_UNKNOWN = 0, /**< a payload kind this version does not know */
    MW_MSG_OBSERVATION = 1,
    MW_MSG_ALARM = 2,
    MW_MSG_STATUS = 3,
    MW_MSG_COMMAND_RESULT = 4,
    /** Made by the gateway, not sent by a device (seq 0): the device has been silent longer
     *  than its configured interval (an IEC 60601-1-8 technical alarm condition) ... */
    MW_MSG_COMM_LOSS = 5,
    /** ... and it has been heard from again. */
    MW_MSG_COMM_RESTORED = 6,
    /** Sent by a device: messages it lost (queue full, or damaged at rest). */
    MW_MSG_GAP = 7,
} mw_msg_type;

/** For MW_MSG_COMM_LOSS and MW_MSG_COMM_RESTORED. */
typedef struct mw_link_event {
    uint64_t silent_ms;    /**< how long the device had been silent */
    uint64_t last_seen_ms; /**< Unix ms of the last message before the silence */
} mw_link_event_t;

/** One delivered message, as the gateway hands it to a sink. A message is identified by
 *  (device_id, space, seq): @c space changes when the device's storage is created anew or the
 *  gateway asks it to resynchronise (docs/protocol.md 5b). */
typedef struct mw_message {
    char device_id[MW_ID_MAX + 1];
    uint64_t space; /**< the sequence space of @c seq (0: none declared) */
    uint64_t seq;
    /** Sent again after a resynchronisation: it may repeat a message delivered earlier under
     *  another space. Outputs carry the mark; a consumer deduplicates on content if it must. */
    bool possible_duplicate;
    uint64_t device_time_ms;
    bool time_synced;
    mw_priority priority;
    mw_msg_type type;
    union {
        mw_observation_t observation;
        mw_alarm_t alarm;
        mw_device_status_t status;
        mw_command_result_t command_result;
        mw_link_event_t link;
        mw_gap_t gap;
    } u;
} mw_message_t;

/** Name of a message type ("observation", "alarm", "status", "command_result",
 *  "communication_loss", "communication_restored", "gap", "unknown"). */
MW_API const char *mw_msg_type_name(mw_msg_type type);

/** Name of a command status ("done", "refused-replay", ...), NULL if out of range. */
MW_API const char *mw_command_status_name(mw_command_status status);

/**
 * Writes @p msg as one JSON object (no newline) into @p out.
 * Keys: "device", "seq", "type", "device_time_ms", "time_synced", "priority", "space" (16 hex
 * digits, left out when 0), "possible_duplicate" (only when true), then the payload's fields,
 * then "source" (observations and alarms, only when not empty). Strings are escaped; the output
 * is always valid JSON.
 * @return ::MW_OK; ::MW_EINVAL for a string without its NUL or an enum out of range; ::MW_ENOSPC
 *         when @p out_size is too small (1216 bytes always suffice, 564 for any message a
 *         gateway decoded), leaving @p out empty and *out_len the length needed.
 */
MW_API MW_NODISCARD mw_err mw_message_to_json(const mw_message_t *msg, char *out, size_t out_size,
                                              size_t *out_len);

#ifdef __cplusplus
}
#endif
#endif
