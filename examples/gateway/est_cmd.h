/* SPDX-License-Identifier: Apache-2.0 */
/* est_cmd.h -- medwire-gateway --est-ca-cmd CMD: the EST issuer (mw_est_issue_fn) that hands a
 * device's renewal to a command of the hospital's (its CA is elsewhere) and answers the device
 * when the command has, without holding up the gateway. */
#ifndef MW_GATEWAY_EST_CMD_H
#define MW_GATEWAY_EST_CMD_H

#include <stdint.h>

#include "medwire/gateway.h"

typedef struct est_cmd est_cmd;

/**
 * The issuer running @p cmd with /bin/sh -c, its certificates checked against the CA file
 * @p ca_file (the gateway's --ca), each run given at most @p timeout_s seconds. NULL, with a
 * sentence in @p why, when the CA file does not load.
 *
 * The command's contract (docs/protocol.md): the request, PEM, on its standard input; the
 * device's name in MEDWIRE_DEVICE_ID and its current certificate's serial in
 * MEDWIRE_CERT_SERIAL; the new certificate, PEM or DER, on its standard output and exit 0; exit
 * 1 refuses (the first line of its standard error says why); anything else is a failure.
 */
est_cmd *est_cmd_new(const char *cmd, const char *ca_file, uint32_t timeout_s, char *why,
                     size_t why_cap);
/** Stops the runs still going and frees @p *e. */
void est_cmd_free(est_cmd **e);

/**
 * mw_est_issue_fn for @p ctx an est_cmd. A request not seen before starts the command and is
 * answered MW_EAGAIN (5.03: ask again); asked again, the same request (same device, same bytes)
 * gets MW_EAGAIN while the command runs, then its outcome: a certificate or a refusal is kept an
 * hour for a repeat whose answer was lost; after a failure the request runs the command again. A
 * certificate the command gives is passed on only if it is for the request's key and the device's
 * name, for clientAuth, not a CA, and chains to the CA file.
 */
mw_err est_cmd_issue(void *ctx, const mw_est_request_t *req, uint8_t *out, size_t cap,
                     size_t *out_len, char *reason, size_t reason_cap);

#endif
