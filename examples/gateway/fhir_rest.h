/* SPDX-License-Identifier: Apache-2.0 */
/* fhir_rest.h -- the FHIR REST sender: a thread that takes the outbox's rows, oldest first, in
 * batches, POSTs each batch to a FHIR R4 server as one transaction Bundle of conditional
 * creates (libcurl), and deletes the rows once the server answers 2xx for every entry. */
#ifndef MW_EXAMPLE_FHIR_REST_H
#define MW_EXAMPLE_FHIR_REST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "outbox.h"

typedef struct fhir_rest fhir_rest_t;

#define FHIR_DEFAULT_BATCH      50u
#define FHIR_MAX_BATCH          1000u
#define FHIR_DEFAULT_TIMEOUT_MS 30000u
/** Identifier system of the patient ids of --associations (Patient.identifier). */
#define FHIR_PATIENT_SYSTEM "urn:medwire:patient"
/** Bytes of a server's OperationOutcome diagnostics kept for the log and the audit trail. */
#define FHIR_DIAG_MAX 200

typedef struct fhir_rest_config {
    const char *url;        /**< the server's base, http:// or https:// */
    unsigned batch; /**< Bundle entries per transaction (1..FHIR_MAX_BATCH), the Device and
                         Patient entries included; a message needing more goes alone */
    uint32_t timeout_ms;    /**< whole request; 0: FHIR_DEFAULT_TIMEOUT_MS */
    const char *token_file; /**< bearer token, read once at start; NULL: none */
    const char *cert, *key, *ca; /**< TLS client certificate, its key, the CA; NULL: none */
    uint32_t backoff_first_ms, backoff_max_ms; /**< 0: 500 ms and 30 s */
} fhir_rest_config_t;

/* The outbox row's payload, as the gateway stages it: one header line
 * "IDENT<TAB>PATIENT-ID<TAB>Family^Given<TAB>LOCATION\n" (the last three empty without an
 * association), then the Observation's JSON (written with device_reference and
 * patient_reference set to fhir_rest_uuid of the device id and of the patient id). */

/** The urn:uuid a device or patient id stands for within a Bundle (deterministic, so that the
 *  staged Observation and the Bundle's Device and Patient entries agree): "urn:uuid:" + 36. */
void fhir_rest_uuid(const char *kind, const char *id, char out[46]);

/** Checks @p url's scheme; false if it is not http:// or https://. */
bool fhir_rest_url_ok(const char *url);

/** Starts the sender over @p ob. Returns NULL and fills @p why on failure (a token file that
 *  cannot be read or is empty, no libcurl). */
fhir_rest_t *fhir_rest_start(const fhir_rest_config_t *cfg, outbox_t *ob, char *why,
                             size_t why_size);
/** Stops the thread (within about 200 ms, or a request's timeout at worst). */
void fhir_rest_stop(fhir_rest_t **f);

typedef struct fhir_rest_stats {
    uint64_t sent;    /**< entries POSTed, resends included */
    uint64_t acked;   /**< entries the server took (2xx): custody ended */
    uint64_t retried; /**< entries of requests that failed and were tried again */
    uint64_t parked;  /**< entries the server refused (4xx) */
    uint64_t requests;
    bool down; /**< the last request failed (no connection, timeout, 5xx or 429) */
} fhir_rest_stats_t;

void fhir_rest_stats(fhir_rest_t *f, fhir_rest_stats_t *out);

typedef struct fhir_parked {
    int64_t id;
    char device[MW_ID_MAX + 1];
    long status;
    char diagnostics[FHIR_DIAG_MAX + 1];
} fhir_parked_t;

/** Takes up to @p max parked entries not yet reported (from the gateway's loop). */
size_t fhir_rest_take_parked(fhir_rest_t *f, fhir_parked_t *out, size_t max);

#endif
