/* SPDX-License-Identifier: Apache-2.0 */
/* udp.h -- internal: opening a listening UDP socket with a reason a person can act on. */
#ifndef MWI_UDP_H
#define MWI_UDP_H

#include <stddef.h>

#include "medwire/io.h"

/**
 * As mw_udp_open; on failure also fills @p why with a sentence that names @p bind_text, gives
 * the system's own words (strerror) and says what to do: the port is missing, the host is not
 * an address of this machine, the port is in use, a privileged port.
 */
mw_err mwi_udp_listen(const char *bind_text, mw_transport_t *out_transport, char *why,
                      size_t why_size);

#endif
