/* SPDX-License-Identifier: Apache-2.0 */
/* metrics.h -- the reference gateway's Prometheus endpoint (GNU libmicrohttpd), served from the
 * program's own loop. */
#ifndef MW_EXAMPLE_METRICS_H
#define MW_EXAMPLE_METRICS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "medwire/medwire.h"

typedef struct metrics metrics_t;

/**
 * Listens for HTTP on @p hostport ("HOST:PORT", "[V6]:PORT"; port 0: the system picks) and
 * serves GET /metrics from @p gw's statistics, and GET /healthz ("ok") while the loop runs. No
 * thread is started: the caller polls metrics_fd() with its other descriptors, for at most
 * metrics_timeout_ms(), and calls metrics_service() after each wait; the scrape then runs on the
 * caller's thread, between two mw_gateway_poll calls, and reads the gateway without locks. Returns
 * NULL and fills @p why on failure.
 */
metrics_t *metrics_start(const char *hostport, mw_gateway_t *gw, char *why, size_t why_size);
int metrics_fd(const metrics_t *m);
/** Milliseconds until metrics_service must run even without activity; -1: no limit. */
int metrics_timeout_ms(const metrics_t *m);
/** Serves HTTP; @p now_ms (a monotonic clock) orders connections by how long they are idle. */
void metrics_service(metrics_t *m, uint64_t now_ms);
/** The bound TCP port. */
uint16_t metrics_port(const metrics_t *m);
void metrics_stop(metrics_t **m);

/** What the HL7 delivery (--hl7) reports, read at each scrape. */
typedef struct metrics_hl7 {
    const char *kind;        /**< "hl7" (NULL too) or "fhir": the metric names' prefix */
    const char *destination; /**< "mllp://HOST:PORT" or the FHIR base URL */
    uint64_t depth;          /**< outbox rows not yet acknowledged, parked ones included */
    uint64_t parked_now;     /**< of which parked */
    uint64_t max_rows;       /**< --outbox-max */
    uint64_t oldest_age_ms;  /**< age of the oldest unparked row; 0: none */
    uint64_t outbox_full;    /**< commits refused because the outbox was full */
    uint64_t sent, acked, retried, parked;
    uint64_t unassociated; /**< messages encoded for a device without an association */
    bool down;             /**< the last connection attempt failed */
} metrics_hl7_t;
/** Fills up to @p max destinations (--hl7, --fhir-server) into @p out; returns how many. */
typedef size_t metrics_hl7_fn(void *ctx, metrics_hl7_t *out, size_t max);
/** Destinations at most. */
#define METRICS_DESTINATIONS_MAX 4

/** Adds the deliveries' metrics to /metrics, and their state to /healthz, from @p fn. */
void metrics_set_hl7(metrics_t *m, metrics_hl7_fn *fn, void *ctx);

/** The exposition text (Prometheus text format 0.0.4) for @p st, in a malloc'd string. */
char *metrics_render(const mw_gateway_stats_t *st, size_t *out_len);
/** The same, followed by the metrics of the @p n deliveries in @p hl7. */
char *metrics_render_with(const mw_gateway_stats_t *st, const metrics_hl7_t *hl7, size_t n,
                          size_t *out_len);

#endif
