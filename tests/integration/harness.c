/* SPDX-License-Identifier: Apache-2.0 */
/* harness.c -- a gateway and devices on an in-memory network under a fake clock, driven
 * deterministically. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"

#include "coap/coap.h"
#include "port/posix/read_file.h"

static mwt_pki shared_pki;
static bool pki_made;

static mw_err sink(void *ctx, const mw_message_t *m)
{
    mwt_h *h = ctx;
    if (h->ngot == h->capgot) {
        size_t cap = h->capgot ? h->capgot * 2 : 1024;
        mw_message_t *n = realloc(h->got, cap * sizeof *n);
        if (n == NULL)
            return MW_ENOMEM;
        h->got = n;
        h->capgot = cap;
    }
    h->got[h->ngot++] = *m;
    return MW_OK;
}

static void on_audit(void *ctx, const mw_audit_event_t *ev)
{
    mwt_h *h = ctx;
    h->naudit_all++;
    if (h->naudit == MWT_MAX_AUDIT)
        return;
    mwt_audit_line *l = &h->audit[h->naudit++];
    snprintf(l->event, sizeof l->event, "%s", ev->event);
    snprintf(l->device, sizeof l->device, "%s", ev->device);
    snprintf(l->reason, sizeof l->reason, "%s", ev->reason);
    l->err = ev->err;
    l->foreign = ev->foreign;
}

void mwt_h_init(mwt_h *h, uint64_t seed)
{
    mwt_h_init_body(h, seed, 0);
}

static void init_gateway(mwt_h *h, uint64_t seed, uint32_t max_body, const mwt_pki *pki,
                         const char *crl);
static void (*tune_next)(mw_gateway_config_t *cfg);

void mwt_h_init_tuned(mwt_h *h, uint64_t seed, void (*tune)(mw_gateway_config_t *cfg))
{
    tune_next = tune;
    init_gateway(h, seed, 0, NULL, NULL);
    tune_next = NULL;
}

void mwt_h_init_with(mwt_h *h, uint64_t seed, const mwt_pki *pki, const char *crl_file,
                     void (*tune)(mw_gateway_config_t *cfg))
{
    tune_next = tune;
    init_gateway(h, seed, 0, pki, crl_file);
    tune_next = NULL;
}

void mwt_h_init_body(mwt_h *h, uint64_t seed, uint32_t max_body)
{
    init_gateway(h, seed, max_body, NULL, NULL);
}

void mwt_h_init_crl(mwt_h *h, uint64_t seed, const mwt_pki *pki, const char *crl_file)
{
    init_gateway(h, seed, 0, pki, crl_file);
}

static void init_gateway(mwt_h *h, uint64_t seed, uint32_t max_body, const mwt_pki *pki,
                         const char *crl)
{
    memset(h, 0, sizeof *h);
    if (pki != NULL) {
        h->pki = *pki;
    } else {
        if (!pki_made) {
            cr_assert(mwt_pki_make(&shared_pki), "medwire-pki must make the test PKI");
            pki_made = true;
        }
        h->pki = shared_pki;
    }
    h->net = mwt_net_create(seed);
    h->clk.now_ms = 1000;
    h->clk.wall_ms = 1790000000000ull;
    h->rng.state = seed * 7919u + 1;
    h->next_port = 40000;
    h->gw_tp = mwt_net_endpoint(h->net, MWT_GATEWAY_ADDR);
    h->sink_fn = sink;
    mw_gateway_config_t cfg;
    mw_gateway_config_init(&cfg);
    cfg.ca_file = mwt_pki_ca(&h->pki);
    cfg.cert_file = mwt_pki_crt(&h->pki, "gateway");
    cfg.key_file = mwt_pki_key(&h->pki, "gateway");
    cfg.transport = h->gw_tp;
    cfg.clock = mwt_clock_table(&h->clk);
    cfg.sink = sink;
    cfg.sink_ctx = h;
    cfg.audit = on_audit;
    cfg.audit_ctx = h;
    cfg.max_body = max_body;
    cfg.crl_file = crl;
    if (tune_next)
        tune_next(&cfg);
    mw_error_detail_t d;
    mw_err e = mw_gateway_create(&cfg, &h->gw, &d);
    cr_assert_eq(e, MW_OK, "gateway: %s", d.reason);
}

void mwt_h_fini(mwt_h *h)
{
    for (size_t i = 0; i < h->nclients; i++)
        mw_client_close(&h->clients[i]);
    for (size_t i = 0; i < h->nraws; i++) {
        mwi_dtls_conn_destroy(&h->raws[i]->conn);
        mwi_dtls_ctx_destroy(&h->raws[i]->ctx);
        free(h->raws[i]);
    }
    for (size_t i = 0; i < h->nfakes; i++)
        mwt_fake_destroy(&h->fakes[i]);
    mw_gateway_destroy(&h->gw);
    mwt_net_destroy(h->net);
    free(h->got);
}

static mw_transport_t new_endpoint(mwt_h *h)
{
    char addr[32];
    snprintf(addr, sizeof addr, "127.0.0.2:%d", h->next_port++);
    return mwt_net_endpoint(h->net, addr);
}

static mw_client_t *client_at(mwt_h *h, const char *name, const char *gateway_name,
                              const char *gateway_addr, const mw_client_config_t *queue,
                              mw_err *out_err);

mw_client_t *mwt_h_client(mwt_h *h, const char *name, const char *gateway_name, mw_err *out_err)
{
    return mwt_h_client_with(h, name, gateway_name, NULL, out_err);
}

mw_client_t *mwt_h_client_with(mwt_h *h, const char *name, const char *gateway_name,
                               const mw_client_config_t *queue, mw_err *out_err)
{
    return client_at(h, name, gateway_name, MWT_GATEWAY_ADDR, queue, out_err);
}

mw_client_t *mwt_h_client_to(mwt_h *h, const char *name, const char *gateway_addr,
                             const mw_client_config_t *queue, mw_err *out_err)
{
    return client_at(h, name, "gateway", gateway_addr, queue, out_err);
}

mwt_fake *mwt_h_fake(mwt_h *h, const char *addr, mwt_fake_mode mode)
{
    cr_assert(h->nfakes < sizeof h->fakes / sizeof h->fakes[0]);
    mwt_fake *f = mwt_fake_create(h->net, &h->pki, &h->clk, addr, mode);
    h->fakes[h->nfakes++] = f;
    return f;
}

static mw_client_t *client_at(mwt_h *h, const char *name, const char *gateway_name,
                              const char *gateway_addr, const mw_client_config_t *queue,
                              mw_err *out_err)
{
    mw_client_config_t cfg;
    mw_client_config_init(&cfg);
    if (queue) {
        cfg.queue_capacity = queue->queue_capacity;
        cfg.storage = queue->storage;
        cfg.queue_key = queue->queue_key;
        cfg.queue_key_len = queue->queue_key_len;
        cfg.group_commit_n = queue->group_commit_n;
        cfg.group_commit_ms = queue->group_commit_ms;
        cfg.first_seq = queue->first_seq;
        cfg.audit = queue->audit;
        cfg.audit_ctx = queue->audit_ctx;
        cfg.on_fate = queue->on_fate;
        cfg.on_fate_ctx = queue->on_fate_ctx;
        cfg.on_command = queue->on_command;
        cfg.on_command_ctx = queue->on_command_ctx;
        cfg.on_renewal = queue->on_renewal;
        cfg.on_renewal_ctx = queue->on_renewal_ctx;
        cfg.crl_refresh_s = queue->crl_refresh_s;
        cfg.on_crl = queue->on_crl;
        cfg.on_crl_ctx = queue->on_crl_ctx;
        cfg.crl_buf = queue->crl_buf;
        cfg.renew_when_left_pct = queue->renew_when_left_pct;
        cfg.make_csr = queue->make_csr;
        cfg.make_csr_ctx = queue->make_csr_ctx;
    }
    cfg.ca_file = mwt_pki_ca(&h->pki);
    cfg.cert_file = mwt_pki_crt(&h->pki, name);
    cfg.key_file = mwt_pki_key(&h->pki, name);
    cfg.gateway_name = gateway_name;
    cfg.gateway = gateway_addr;
    if (queue && queue->clock.now_ms)
        cfg.clock = queue->clock; /* a device with a clock of its own (tests of time) */
    return mwt_h_client_cfg(h, &cfg, out_err);
}

mw_client_t *mwt_h_client_cfg(mwt_h *h, mw_client_config_t *cfg, mw_err *out_err)
{
    if (cfg->gateway == NULL && cfg->gateway_addr.len == 0 && cfg->gateways == NULL)
        cfg->gateway = MWT_GATEWAY_ADDR;
    if (cfg->gateway_name == NULL)
        cfg->gateway_name = "gateway";
    cfg->transport = new_endpoint(h);
    if (cfg->clock.now_ms == NULL)
        cfg->clock = mwt_clock_table(&h->clk);
    cfg->random = mwt_rng_table(&h->rng);
    mw_client_t *c = NULL;
    mw_error_detail_t d;
    mw_err e = mw_client_open(cfg, &c, &d);
    snprintf(h->last_open_error, sizeof h->last_open_error, "%s", d.reason);
    if (out_err)
        *out_err = e;
    if (e != MW_OK)
        return NULL;
    cr_assert(h->nclients < 8);
    h->clients[h->nclients++] = c;
    return c;
}

void mwt_h_client_close(mwt_h *h, mw_client_t **c)
{
    for (size_t i = 0; i < h->nclients; i++)
        if (h->clients[i] == *c) {
            h->clients[i] = h->clients[--h->nclients];
            break;
        }
    mw_client_close(c);
}

static void raw_out(void *ctx, const uint8_t *buf, size_t len)
{
    mwt_raw *r = ctx;
    mw_err e = r->tp.send(r->tp.ctx, &r->gw, buf, len);
    (void)e;
}

static void raw_record(void *ctx, const uint8_t *data, size_t len)
{
    mwt_raw *r = ctx;
    if (len > sizeof r->last_record)
        len = sizeof r->last_record;
    memcpy(r->last_record, data, len);
    r->last_record_len = len;
}

mwt_raw *mwt_h_raw(mwt_h *h, const char *name, const char *ciphers, bool skip_role)
{
    mwt_raw *r = calloc(1, sizeof *r);
    cr_assert_not_null(r);
    mwi_dtls_config dc = {
        .read_file = mwi_file_read,
        .role = MWI_DTLS_CLIENT,
        .ca_file = mwt_pki_ca(&h->pki),
        .cert_file = name ? mwt_pki_crt(&h->pki, name) : NULL,
        .key_file = name ? mwt_pki_key(&h->pki, name) : NULL,
        .peer_name = "gateway",
        .cipher_list = ciphers,
        .test_no_cert = name == NULL,
        .test_skip_role = skip_role,
    };
    mw_error_detail_t d;
    mw_err e = mwi_dtls_ctx_create(&dc, &r->ctx, &d);
    cr_assert_eq(e, MW_OK, "raw client context: %s", d.reason);
    r->tp = new_endpoint(h);
    cr_assert_eq(mw_addr_parse(MWT_GATEWAY_ADDR, &r->gw), MW_OK);
    cr_assert_eq(mwi_dtls_conn_create(r->ctx, &r->gw, raw_out, r, &r->conn), MW_OK);
    r->result = mwi_dtls_conn_start(r->conn, h->clk.now_ms);
    h->raws[h->nraws++] = r;
    return r;
}

mw_err mwt_raw_write(mwt_raw *r, const uint8_t *buf, size_t len)
{
    return mwi_dtls_conn_write(r->conn, buf, len);
}

static bool raw_poll(mwt_h *h, mwt_raw *r)
{
    bool did = false;
    uint8_t buf[2048];
    for (;;) {
        mw_addr_t from;
        size_t n;
        if (r->tp.recv(r->tp.ctx, &from, buf, sizeof buf, &n) != MW_OK)
            break;
        did = true;
        if (r->result != MW_EINPROGRESS && r->result != MW_OK)
            continue;
        mw_err e = mwi_dtls_conn_input(r->conn, buf, n, h->clk.now_ms, raw_record, r);
        if (e == MW_OK || (e != MW_EINPROGRESS && r->result == MW_EINPROGRESS))
            r->result = e;
    }
    if (r->result == MW_EINPROGRESS && h->clk.now_ms >= mwi_dtls_conn_deadline(r->conn)) {
        mw_err e = mwi_dtls_conn_timer(r->conn, h->clk.now_ms);
        if (e != MW_EINPROGRESS && e != MW_OK)
            r->result = e;
        did = true;
    }
    return did;
}

static uint64_t next_timer(mwt_h *h)
{
    uint64_t best = UINT64_MAX;
    int t = mw_gateway_next_timeout_ms(h->gw);
    if (t >= 0)
        best = (uint64_t)t;
    for (size_t i = 0; i < h->nclients; i++) {
        t = mw_client_next_timeout_ms(h->clients[i]);
        if (t >= 0 && (uint64_t)t < best)
            best = (uint64_t)t;
    }
    for (size_t i = 0; i < h->nfakes; i++) {
        uint64_t d = mwt_fake_next_ms(h->fakes[i]);
        if (d < best)
            best = d;
    }
    for (size_t i = 0; i < h->nraws; i++) {
        uint64_t d = mwi_dtls_conn_deadline(h->raws[i]->conn);
        if (h->raws[i]->result == MW_EINPROGRESS && d != UINT64_MAX) {
            uint64_t rel = d > h->clk.now_ms ? d - h->clk.now_ms : 0;
            if (rel < best)
                best = rel;
        }
    }
    return best;
}

bool mwt_h_run(mwt_h *h, bool (*done)(mwt_h *h, void *arg), void *arg, uint64_t max_ms)
{
    uint64_t end = h->clk.now_ms + max_ms;
    while (h->clk.now_ms <= end) {
        if (done(h, arg))
            return true;
        bool did = mw_gateway_poll(h->gw, 0) == MW_OK;
        for (size_t i = 0; i < h->nclients; i++) {
            mw_err e = mw_client_poll(h->clients[i], 0);
            did = did || e == MW_OK;
        }
        for (size_t i = 0; i < h->nraws; i++)
            did = raw_poll(h, h->raws[i]) || did;
        for (size_t i = 0; i < h->nfakes; i++)
            did = mwt_fake_poll(h->fakes[i]) || did;
        if (did || mwt_net_ready(h->net) > 0)
            continue;
        /* Quiet: jump the fake clock to the next timer or delayed datagram
         * (at least 1 ms). */
        uint64_t step = next_timer(h);
        uint64_t ready = mwt_net_next_ready_ms(h->net);
        if (ready != UINT64_MAX && ready > h->clk.now_ms && ready - h->clk.now_ms < step)
            step = ready - h->clk.now_ms;
        if (step == UINT64_MAX || step == 0)
            step = 1;
        if (step > 1000)
            step = 1000;
        mwt_clock_advance(&h->clk, step);
    }
    return done(h, arg);
}

static bool all_drained(mwt_h *h, void *arg)
{
    (void)arg;
    for (size_t i = 0; i < h->nclients; i++) {
        mw_err e = mw_client_poll(h->clients[i], 0);
        if (mw_client_pending(h->clients[i]) > 0 && (e == MW_OK || e == MW_EAGAIN))
            return false;
    }
    return true;
}

bool mwt_h_drain(mwt_h *h, uint64_t max_ms)
{
    return mwt_h_run(h, all_drained, NULL, max_ms);
}

size_t mwt_h_count(const mwt_h *h, const char *device)
{
    size_t n = 0;
    for (size_t i = 0; i < h->ngot; i++)
        n += strcmp(h->got[i].device_id, device) == 0;
    return n;
}

const mwt_audit_line *mwt_h_audit_find(const mwt_h *h, const char *event, mw_err err)
{
    for (size_t i = 0; i < h->naudit; i++)
        if (strcmp(h->audit[i].event, event) == 0 && (err == MW_OK || h->audit[i].err == err))
            return &h->audit[i];
    return NULL;
}

void mwt_send_obs(mw_client_t *c, int n, int base)
{
    for (int i = 0; i < n; i++) {
        mw_observation_t o;
        memset(&o, 0, sizeof o);
        o.mdc_code = MW_MDC_PULS_OXIM_SAT_O2;
        o.mantissa = base + i;
        snprintf(o.unit, sizeof o.unit, "%%");
        o.status = MW_MEAS_VALID;
        cr_assert_eq(mw_client_send_observation(c, &o, NULL), MW_OK);
    }
}

static bool raw_is_up(mwt_h *h, void *arg)
{
    (void)h;
    return ((mwt_raw *)arg)->result != MW_EINPROGRESS;
}

void mwt_raw_wait_up(mwt_h *h, mwt_raw *r)
{
    cr_assert(mwt_h_run(h, raw_is_up, r, 30000), "raw client handshake did not finish");
    cr_assert_eq(r->result, MW_OK, "raw client handshake failed: %s", mw_strerror(r->result));
}

static bool raw_has_record(mwt_h *h, void *arg)
{
    (void)h;
    return ((mwt_raw *)arg)->last_record_len > 0;
}

void mwt_raw_exchange(mwt_h *h, mwt_raw *r, const void *vm, uint8_t *out, size_t cap,
                      size_t *out_len, void *vresp)
{
    const mwi_coap_msg *m = vm;
    mwi_coap_msg *resp = vresp;
    uint8_t req[1500];
    size_t n;
    cr_assert_eq(mwi_coap_encode(m, req, sizeof req, &n), MW_OK);
    r->last_record_len = 0;
    cr_assert_eq(mwt_raw_write(r, req, n), MW_OK);
    cr_assert(mwt_h_run(h, raw_has_record, r, 10000), "no answer from the gateway");
    cr_assert_leq(r->last_record_len, cap);
    memcpy(out, r->last_record, r->last_record_len);
    *out_len = r->last_record_len;
    mwi_coap_parser *p = NULL;
    cr_assert_eq(mwi_coap_parser_create(1500, &p), MW_OK);
    cr_assert_eq(mwi_coap_parse(p, out, *out_len, resp), MW_OK);
    mwi_coap_parser_destroy(&p);
}
