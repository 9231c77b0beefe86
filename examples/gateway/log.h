/* SPDX-License-Identifier: Apache-2.0 */
/* log.h -- the reference gateway's structured log: one line per event on stderr, text or JSON. */
#ifndef MW_EXAMPLE_LOG_H
#define MW_EXAMPLE_LOG_H

#include <stdbool.h>

typedef enum gwlog_level {
    GWLOG_ERROR = 0,
    GWLOG_WARN = 1,
    GWLOG_INFO = 2,
    GWLOG_DEBUG = 3,
} gwlog_level;

/** Sets the threshold ("error", "warn", "info", "debug") and the format ("text", "json").
 *  Returns false, changing nothing, for an unknown name. Default: info, text. */
bool gwlog_setup(const char *level, const char *format);
/** Would an event at @p level be written? */
bool gwlog_enabled(gwlog_level level);

/**
 * Writes one event: time (UTC, ms), level, event name, then fields given as pairs of a
 * typed key and a value, ended by NULL: "s:KEY" takes a const char * (NULL: omitted),
 * "u:KEY" an unsigned long long, "i:KEY" a long long. For example
 * gwlog(GWLOG_INFO, "gateway_started", "s:listen", addr, "u:max_peers", 4096ULL, GWLOG_END).
 * text:  2024-05-01T10:00:00.000Z info gateway_started listen=127.0.0.1:5684 max_peers=4096
 * json:  {"time":"2024-05-01T10:00:00.000Z","level":"info","event":"gateway_started",...}
 */
/* The end of gwlog's field list: a typed null pointer (a bare NULL may be an int in a
 * variadic call). */
#define GWLOG_END ((const char *)NULL)

void gwlog(gwlog_level level, const char *event, ...);

#endif
