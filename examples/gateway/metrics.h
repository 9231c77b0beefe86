/* SPDX-License-Identifier: Apache-2.0 */
/* metrics.h -- the reference gateway's Prometheus endpoint (GNU libmicrohttpd), served from the
 * program's own loop. */
#ifndef MW_EXAMPLE_METRICS_H
#define MW_EXAMPLE_METRICS_H

#include <stddef.h>
#include <stdint.h>

#include "medwire/medwire.h"

typedef struct metrics metrics_t;

/**
 * Listens for HTTP on @p hostport ("HOST:PORT", "[V6]:PORT"; port 0: the system picks) and
 * serves GET /metrics from @p gw's statistics. No thread is started: the caller polls
 * metrics_fd() with its other descriptors, for at most metrics_timeout_ms(), and calls
 * metrics_service() after each wait; the scrape then runs on the caller's thread, between
 * two mw_gateway_poll calls, and reads the gateway without locks.
 * Returns NULL and fills @p why on failure.
 */
metrics_t *metrics_start(const char *hostport, mw_gateway_t *gw, char *why, size_t why_size);
int metrics_fd(const metrics_t *m);
/** Milliseconds until metrics_service must run even without activity; -1: no limit. */
int metrics_timeout_ms(const metrics_t *m);
void metrics_service(metrics_t *m);
/** The bound TCP port. */
uint16_t metrics_port(const metrics_t *m);
void metrics_stop(metrics_t **m);

/** The exposition text (Prometheus text format 0.0.4) for @p st, in a malloc'd string. */
char *metrics_render(const mw_gateway_stats_t *st, size_t *out_len);

#endif
