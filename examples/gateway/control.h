/* SPDX-License-Identifier: Apache-2.0 */
/* control.h -- the reference gateway's local control socket: JSON lines in, commands to devices
 * out. */
#ifndef MW_EXAMPLE_CONTROL_H
#define MW_EXAMPLE_CONTROL_H

#include <poll.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "medwire/medwire.h"

#include "associations.h"

/* Places for clients at once. A new client always gets one: when all are taken, the client
 * that has been idle longest gives its place up. */
#define CONTROL_MAX_CLIENTS 8
/* A client that sends no complete line for this long is closed. */
#define CONTROL_IDLE_MS 30000u

struct control_client {
    int fd;
    uint64_t active_ms; /* when it was accepted, or sent its last complete line */
    size_t len;
    char buf[1024];
};

typedef struct control {
    int listen_fd;
    uint64_t idle_ms; /* CONTROL_IDLE_MS unless a test sets another */
    char path[108];
    /* The associate and dissociate commands change these; NULL: they are refused. Set after
     * control_open. */
    associations_t *assoc;
    struct control_client clients[CONTROL_MAX_CLIENTS];
} control_t;

/** Listens on a Unix stream socket at @p path, mode 0600. -1 with errno on failure. */
int control_open(control_t *c, const char *path);
void control_close(control_t *c);
/** The descriptors to wait on (listening socket and clients). */
int control_fds(const control_t *c, struct pollfd *out, int max);
/** Milliseconds from @p now_ms until control_service must run to close an idle client; -1:
 *  no client. */
int control_timeout_ms(const control_t *c, uint64_t now_ms);
/**
 * Answers every complete request line, closes clients idle for idle_ms, and accepts new
 * clients, each in the place of the one idle longest when all are taken. @p now_ms is a
 * monotonic clock in milliseconds (the caller's: tests pass a fake one). Never blocks.
 */
void control_service(control_t *c, mw_gateway_t *gw, uint64_t now_ms);

#endif
