/* SPDX-License-Identifier: Apache-2.0 */
/* harness.h -- a gateway and devices on an in-memory network under a fake clock, driven
 * deterministically. */
#ifndef MWT_HARNESS_H
#define MWT_HARNESS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "medwire/medwire.h"

#include "dtls/dtls.h"
#include "fake_gateway.h"
#include "support/fake_clock.h"
#include "support/mem_transport.h"
#include "support/pki.h"

#define MWT_GATEWAY_ADDR "127.0.0.1:5684"
#define MWT_MAX_AUDIT    256

typedef struct mwt_audit_line {
    char event[40];
    char device[MW_ID_MAX + 1];
    mw_err err;
    int foreign;
    char reason[200];
} mwt_audit_line;

/** A raw DTLS client built on the internal API, to play peers the SDK refuses to be. */
typedef struct mwt_raw {
    mwi_dtls_ctx *ctx;
    mwi_dtls_conn *conn;
    mw_transport_t tp;
    mw_addr_t gw;
    mw_err result; /* MW_EINPROGRESS until established (MW_OK) or failed */
    uint8_t last_record[1500];
    size_t last_record_len;
} mwt_raw;

typedef struct mwt_h {
    mwt_pki pki;
    mwt_net *net;
    mwt_clock clk;
    mwt_rng rng;
    mw_transport_t gw_tp;
    mw_gateway_t *gw;
    mw_message_t *got; /* delivered, in order */
    size_t ngot, capgot;
    mwt_audit_line audit[MWT_MAX_AUDIT];
    size_t naudit;
    size_t naudit_all; /* every audit line, also past MWT_MAX_AUDIT */
    mw_client_t *clients[8];
    char last_open_error[200];
    size_t nclients;
    mwt_raw *raws[4];
    size_t nraws;
    mwt_fake *fakes[2]; /* fake gateways beside the real one, polled with it */
    size_t nfakes;
    int next_port;
    mw_sink_fn *sink_fn; /* the harness's sink, for tests that build their own gateway */
} mwt_h;

/** Makes the PKI (once per process) and a gateway on the in-memory net. Aborts the test on failure.
 */
void mwt_h_init(mwt_h *h, uint64_t seed);
/** As mwt_h_init, with @p tune changing the gateway's configuration before it is created. */
void mwt_h_init_tuned(mwt_h *h, uint64_t seed, void (*tune)(mw_gateway_config_t *cfg));
/** As mwt_h_init, with the gateway's max_body (0: default). */
void mwt_h_init_body(mwt_h *h, uint64_t seed, uint32_t max_body);
/** As mwt_h_init, with a PKI of the test's own and the gateway enforcing @p crl_file. */
void mwt_h_init_crl(mwt_h *h, uint64_t seed, const mwt_pki *pki, const char *crl_file);
/** As mwt_h_init_crl (@p pki NULL: the shared one), then @p tune changes the gateway's
 *  configuration before it is created. */
void mwt_h_init_with(mwt_h *h, uint64_t seed, const mwt_pki *pki, const char *crl_file,
                     void (*tune)(mw_gateway_config_t *cfg));
void mwt_h_fini(mwt_h *h);

/** A client with certificate NAME (from the test PKI) talking to the gateway; NULL on failure,
 *  with *out_err set. */
mw_client_t *mwt_h_client(mwt_h *h, const char *name, const char *gateway_name, mw_err *out_err);
/** As mwt_h_client, taking the queue settings (capacity, storage, key, group commit, first_seq)
 *  and the audit and fate callbacks from @p queue (NULL: defaults). h->last_open_error says why on
 *  failure. */
mw_client_t *mwt_h_client_with(mwt_h *h, const char *name, const char *gateway_name,
                               const mw_client_config_t *queue, mw_err *out_err);
/** As mwt_h_client_with, talking to the gateway at @p gateway_addr (a fake one). The queue
 *  settings, the audit, fate and command callbacks come from @p queue (NULL: defaults). */
mw_client_t *mwt_h_client_to(mwt_h *h, const char *name, const char *gateway_addr,
                             const mw_client_config_t *queue, mw_err *out_err);
/** A client opened with @p cfg as the test set it (credentials, queue), talking to the gateway
 *  on the in-memory network, on the fake clock (unless @p cfg has a clock of its own) and random
 *  source (gateway and gateway_name default to the harness's). NULL on failure: @p out_err and h->last_open_error say why. */
mw_client_t *mwt_h_client_cfg(mwt_h *h, mw_client_config_t *cfg, mw_err *out_err);
/** A fake gateway at @p addr, polled by mwt_h_run and destroyed by mwt_h_fini. */
mwt_fake *mwt_h_fake(mwt_h *h, const char *addr, mwt_fake_mode mode);
/** Closes @p c (a device that stops or loses power) and forgets it. */
void mwt_h_client_close(mwt_h *h, mw_client_t **c);

/** A raw client: cert NAME (NULL: no certificate), cipher list (NULL: the allowed two), started. */
mwt_raw *mwt_h_raw(mwt_h *h, const char *name, const char *ciphers, bool skip_role);
/** Sends one record on an established raw client. */
mw_err mwt_raw_write(mwt_raw *r, const uint8_t *buf, size_t len);
/** Runs until @p r is established (fails the test otherwise). */
void mwt_raw_wait_up(mwt_h *h, mwt_raw *r);
/** Sends the CoAP message @p m on @p r and waits for one record back; copies it to out (the
 *  raw bytes) and parses it into *resp (payload pointing into out). */
void mwt_raw_exchange(mwt_h *h, mwt_raw *r, const void *m, uint8_t *out, size_t cap,
                      size_t *out_len, void *resp);

/** Runs the loop until @p done returns true or @p max_ms of fake time pass; returns done's value.
 */
bool mwt_h_run(mwt_h *h, bool (*done)(mwt_h *h, void *arg), void *arg, uint64_t max_ms);

/** Runs until every client has an empty queue (or a fatal error), at most @p max_ms. */
bool mwt_h_drain(mwt_h *h, uint64_t max_ms);

/** Number of delivered messages from @p device. */
size_t mwt_h_count(const mwt_h *h, const char *device);
/** The first audit line with this event (and device, if not NULL), or NULL. */
const mwt_audit_line *mwt_h_audit_find(const mwt_h *h, const char *event, mw_err err);

/** Queues n SpO2 observations with mantissas base, base+1, ... */
void mwt_send_obs(mw_client_t *c, int n, int base);

#endif
