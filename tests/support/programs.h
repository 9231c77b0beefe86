/* SPDX-License-Identifier: Apache-2.0 */
/* programs.h -- start the real medwire-gateway and medwire-device with a test PKI's credentials,
 * for tests that need the programs themselves and only a few options of their own. */
#ifndef MWT_PROGRAMS_H
#define MWT_PROGRAMS_H

#include <stdbool.h>
#include <stddef.h>

#include "support/pki.h"
#include "support/proc.h"

/**
 * Starts medwire-gateway on @p listen ("127.0.0.1:0", or the address it had, to restart it) with
 * the PKI's CA and "gateway" credentials, --port-file @p port_file and the options @p extra
 * (NULL-terminated, at most 30), stderr to @p err_path (may be NULL); waits up to 10 s for the
 * port and writes "127.0.0.1:PORT" to @p addr. False if it did not start.
 */
bool mwt_gateway_start(mwt_proc *p, const mwt_pki *pki, const char *listen, const char *port_file,
                       const char *const extra[], const char *err_path, char *addr,
                       size_t addr_size);

/** Waits up to @p timeout_ms for a program's port file and returns the port in it, or -1. */
int mwt_wait_port(const char *port_file, int timeout_ms);

/** Starts medwire-device NAME (the PKI's credentials; the gateway's name "gateway") sending
 *  @p count observations @p interval_ms apart to @p gw_addr, giving up after @p give_up_s,
 *  quietly. */
bool mwt_device_start(mwt_proc *p, const mwt_pki *pki, const char *gw_addr, const char *name,
                      const char *count, const char *interval_ms, const char *give_up_s);

/** Sends @p line to the control socket at @p path and reads the one-line reply into @p reply
 *  (@p cap bytes, NUL-terminated). False if it could not connect or no whole line came. */
bool mwt_control_request(const char *path, const char *line, char *reply, size_t cap);

#endif
