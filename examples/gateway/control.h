/* SPDX-License-Identifier: Apache-2.0 */
/* control.h -- the reference gateway's local control socket: JSON lines in, commands to devices
 * out. */
#ifndef MW_EXAMPLE_CONTROL_H
#define MW_EXAMPLE_CONTROL_H

#include <poll.h>
#include <stdbool.h>
#include <stddef.h>

#include "medwire/medwire.h"

#define CONTROL_MAX_CLIENTS 8

struct control_client {
    int fd;
    size_t len;
    char buf[1024];
};

typedef struct control {
    int listen_fd;
    char path[108];
    struct control_client clients[CONTROL_MAX_CLIENTS];
} control_t;

/** Listens on a Unix stream socket at @p path, mode 0600. -1 with errno on failure. */
int control_open(control_t *c, const char *path);
void control_close(control_t *c);
/** The descriptors to wait on (listening socket and clients). */
int control_fds(const control_t *c, struct pollfd *out, int max);
/** Accepts clients and answers every complete request line. */
void control_service(control_t *c, mw_gateway_t *gw);

#endif
