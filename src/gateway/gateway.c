/* SPDX-License-Identifier: Apache-2.0 */
/* gateway.c -- many devices on one socket: stateless cookie exchange, one DTLS session per address,
 * identity-checked delivery. Here: create and destroy, the receive loop, DTLS demultiplexing and
 * the CoAP resources; the rest of the gateway is in the files gateway_internal.h names. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "medwire/gateway.h"

#include "core/detail.h"
#include "gateway/gateway_internal.h"
#include "port/posix/udp.h"
#include "session/intake.h"
#include "session/protocol.h"

#define WELL_KNOWN_PATH ".well-known/core"
/* RFC 6690 link-format, Content-Format 40. */
#define CF_LINK_FORMAT 40
#define LINKS          "</batch>;ct=65100;rt=\"medwire.batch\";if=\"medwire.v1\""
/* RFC 9148 6: what a gateway serving EST adds. */
#define LINKS_EST                                                                                  \
    LINKS ",</.well-known/est/crts>;rt=\"ace.est.crts\";ct=\"281 287\""                            \
          ",</.well-known/est/sren>;rt=\"ace.est.sren\";ct=\"281 287\""
/* What a gateway enforcing a CRL adds: the CRL, for its devices to check it against. */
#define LINKS_CRL ",</crl>;ct=65103;rt=\"medwire.crl\""
/* Datagrams per batched receive (transport recv_many, recvmmsg on POSIX). */
#define RX_BATCH 32
/* mw_gateway_config_t.idle_timeout_ms by default: 10 minutes. */
#define IDLE_TIMEOUT_DEFAULT_MS (10u * 60u * 1000u)
/* Largest response payload sent in one message; larger ones go block-wise. */
#define RESPONSE_BLOCK_MAX MWI_BLOCK_SIZE

static uint64_t now_ms(const mw_gateway_t *gw)
{
    return gw->clock.now_ms(gw->clock.ctx);
}

static void route_send(void *ctx, const uint8_t *buf, size_t len)
{
    struct route *r = ctx;
    /* A full socket buffer loses the datagram, as the network may: DTLS
     * and CoAP retransmit. */
    if (r->gw->tp.send(r->gw->tp.ctx, &r->addr, buf, len) == MW_OK) {
        r->gw->st.datagrams_sent++;
        r->gw->st.bytes_sent += len;
    }
}

void mw_gateway_config_init(mw_gateway_config_t *cfg)
{
    if (cfg == NULL)
        return;
    memset(cfg, 0, sizeof *cfg);
    cfg->transport.fd = -1;
    cfg->max_peers = 4096;
    cfg->idle_timeout_ms = IDLE_TIMEOUT_DEFAULT_MS;
}

mw_err mw_gateway_create(const mw_gateway_config_t *cfg, mw_gateway_t **out, mw_error_detail_t *d)
{
    if (out != NULL)
        *out = NULL;
    if (cfg == NULL || out == NULL)
        return mwi_detail_open_checks(d, 0, false, false, false, "gateway");
    mw_err e = mwi_detail_open_checks(d, 1, cfg->ca_file || cfg->ca_buf.data || cfg->ca_buf.len,
                                      cfg->cert_file || cfg->cert_buf.data || cfg->cert_buf.len,
                                      cfg->key_file || cfg->key_buf.data || cfg->key_buf.len,
                                      "gateway");
    if (e != MW_OK)
        return e;
    if (cfg->sink == NULL)
        return mwi_detail_fail(d, MW_ECONFIG, "a sink for delivered messages is required");
    if (cfg->transport.send == NULL && cfg->listen == NULL)
        return mwi_detail_fail(d, MW_ECONFIG, "a listen address (HOST:PORT) is required");

    mw_gateway_t *gw = calloc(1, sizeof *gw);
    if (gw == NULL)
        return mwi_detail_fail(d, MW_ENOMEM, "out of memory");
    gw->tp.fd = -1;
    gw->max_peers = cfg->max_peers ? cfg->max_peers : 4096;
    if (mwi_gw_peers_init(gw) != MW_OK) {
        e = mwi_detail_fail(d, MW_ENOMEM, "out of memory for the peer table");
        goto fail;
    }
    e = mwi_gw_credentials_init(gw, cfg, d);
    if (e != MW_OK)
        goto fail;
    e = mwi_coap_parser_create(MWI_DTLS_MAX_DATAGRAM, &gw->parser);
    if (e != MW_OK) {
        e = mwi_detail_fail(d, e, "cannot create the CoAP parser");
        goto fail;
    }
    gw->clock = cfg->clock.now_ms ? cfg->clock : mw_clock_system();
    if (mwi_dtls_random(gw->dtls, (uint8_t *)&gw->next_mid, sizeof gw->next_mid) != MW_OK) {
        e = mwi_detail_fail(d, MW_EINTERNAL, "the random source failed");
        goto fail;
    }
    if (cfg->transport.send) {
        gw->tp = cfg->transport;
    } else {
        char why[sizeof d->reason];
        e = mwi_udp_listen(cfg->listen, &gw->tp, why, sizeof why);
        if (e != MW_OK) {
            e = mwi_detail_fail(d, e, why);
            goto fail;
        }
        gw->own_tp = true;
    }
    gw->sink = cfg->sink;
    gw->sink_ctx = cfg->sink_ctx;
    gw->est_issue = cfg->est_issue;
    gw->est_ctx = cfg->est_ctx;
    gw->est_retry_after_s = cfg->est_retry_after_s ? cfg->est_retry_after_s : 10;
    mwi_coap_params_default(&gw->params);
    gw->max_body = cfg->max_body ? cfg->max_body : MWI_BODY_MAX;
    gw->comm_loss_ms = cfg->comm_loss_ms;
    gw->idle_timeout_ms = cfg->idle_timeout_ms;
    gw->max_half_open = cfg->max_half_open ? cfg->max_half_open : 256;
    gw->rate_per_s = cfg->rate_limit_per_s ? cfg->rate_limit_per_s : 200;
    gw->rate_burst = 2 * gw->rate_per_s;
    gw->max_half_open_per_host = cfg->max_half_open_per_host ? cfg->max_half_open_per_host : 16;
    gw->host_hs_per_s = cfg->handshakes_per_host_per_s ? cfg->handshakes_per_host_per_s : 20;
    gw->identity_hs_per_min =
        cfg->handshakes_per_identity_per_min ? cfg->handshakes_per_identity_per_min : 60;
    gw->alim = malloc(sizeof *gw->alim);
    if (gw->alim == NULL || mwi_hosts_init(&gw->hosts, 256) != MW_OK) {
        e = mwi_detail_fail(d, MW_ENOMEM, "out of memory");
        goto fail;
    }
    mwi_audit_limiter_init(
        gw->alim, cfg->audit_per_identity_per_min ? cfg->audit_per_identity_per_min : 20, 60000);
    gw->sink_commit = cfg->sink_commit;
    gw->sink_recover = cfg->sink_recover;
    gw->deferred = calloc(DEFER_MAX, sizeof *gw->deferred);
    gw->undo = calloc(DEFER_MAX, sizeof *gw->undo);
    gw->warm = calloc(DEFER_MAX, sizeof(struct device *));
    gw->txn_serial = 1;
    if (gw->deferred == NULL || gw->undo == NULL || gw->warm == NULL) {
        e = mwi_detail_fail(d, MW_ENOMEM, "out of memory");
        goto fail;
    }
    if (gw->tp.recv_many != NULL) {
        /* One block: the slots, then their buffers. A byte more than the largest
         * datagram we use, so that a longer one shows as truncated. */
        size_t cap = MWI_DTLS_MAX_DATAGRAM + 1;
        gw->rxv = malloc(RX_BATCH * (sizeof *gw->rxv + cap));
        if (gw->rxv == NULL) {
            e = mwi_detail_fail(d, MW_ENOMEM, "out of memory");
            goto fail;
        }
        uint8_t *bufs = (uint8_t *)(gw->rxv + RX_BATCH);
        for (size_t i = 0; i < RX_BATCH; i++) {
            gw->rxv[i].buf = bufs + i * cap;
            gw->rxv[i].cap = cap;
        }
    }
    if (cfg->store_path) {
        e = mwi_store_open_as(cfg->store_path, cfg->store_instance, &gw->store, d);
        if (e != MW_OK)
            goto fail;
        e = mwi_store_checkpoint(gw->store, &gw->checkpoint);
        if (e != MW_OK) {
            e = mwi_detail_fail(d, e, "gateway store: cannot read the sink checkpoint");
            goto fail;
        }
    }
    /* Output written after the last commit was never acknowledged: the
     * devices will send it again, so it must go (exactly once, not twice). */
    if (gw->sink_recover) {
        e = gw->sink_recover(gw->sink_ctx, gw->checkpoint);
        if (e != MW_OK) {
            e = mwi_detail_fail(d, e, "the sink could not return to its last committed state");
            goto fail;
        }
    }
    gw->audit = cfg->audit;
    gw->audit_ctx = cfg->audit_ctx;
    gw->now_us = cfg->now_us ? cfg->now_us : cfg->clock.now_ms ? NULL : mw_clock_monotonic_us;
    *out = gw;
    return MW_OK;
fail:
    mw_gateway_destroy(&gw);
    return e;
}

/* Options a response may carry besides Content-Format. */
struct resp_opts {
    uint8_t flags; /* MWI_COAP_F_BLOCK1 / _SIZE1 / _MAX_AGE */
    uint32_t block1, size1, max_age;
};

/* Sends the response to @p req and remembers it by MID, so that a duplicate
 * of the request gets these very bytes (RFC 7252 4.5). A payload larger than
 * a block, or a request asking for Block2, is served block by block
 * (RFC 7959 2.2); each block request is a request of its own. */
static void respond_opts(mw_gateway_t *gw, struct peer *p, const mwi_coap_msg *req, uint8_t code,
                         int32_t cf, const uint8_t *payload, size_t len, const struct resp_opts *o)
{
    mwi_coap_msg r;
    uint8_t out[MWI_DTLS_MAX_PLAINTEXT];
    size_t n;
    if (req->type == MWI_COAP_CON) {
        if (mwi_coap_response_for(req, code, &r) != MW_OK)
            return;
    } else {
        /* A NON request gets a NON response with its own MID (RFC 7252 5.2.3). */
        mwi_coap_msg_init(&r);
        r.type = MWI_COAP_NON;
        r.code = code;
        r.mid = gw->next_mid++;
        r.token_len = req->token_len;
        memcpy(r.token, req->token, req->token_len);
    }
    size_t off = 0, slice = len;
    uint32_t b2 = 0;
    bool bad = false;
    if (mwi_coap_block2_slice((req->flags & MWI_COAP_F_BLOCK2) != 0, req->block2, len,
                              RESPONSE_BLOCK_MAX, &off, &slice, &b2, &bad)) {
        if (bad) {
            r.code = MWI_COAP_BAD_OPTION;
            off = slice = 0;
            cf = -1;
        } else {
            r.flags |= MWI_COAP_F_BLOCK2;
            r.block2 = b2;
        }
    }
    if (o) {
        r.flags |= o->flags;
        r.block1 = o->block1;
        r.size1 = o->size1;
        r.max_age = o->max_age;
    }
    r.content_format = cf;
    r.payload = slice > 0 && payload != NULL ? payload + off : NULL;
    r.payload_len = slice;
    if (mwi_coap_encode(&r, out, sizeof out, &n) != MW_OK)
        return;
    mwi_coap_dedup_store(&p->dedup, req->type, req->mid, out, n, gw->now_ms, &gw->params);
    mwi_gw_defer(gw, p, out, n);
}

static void respond(mw_gateway_t *gw, struct peer *p, const mwi_coap_msg *req, uint8_t code,
                    int32_t cf, const uint8_t *payload, size_t len)
{
    respond_opts(gw, p, req, code, cf, payload, len, NULL);
}

static void refuse(mw_gateway_t *gw, struct peer *p, const mwi_coap_msg *req, uint8_t code,
                   const char *diag)
{
    /* RFC 7252 5.5.2: a diagnostic payload in plain text says why. */
    respond(gw, p, req, code, -1, (const uint8_t *)diag, strlen(diag));
}

/* Sends an Ack that settles nothing and asks the device to move to a new space. */
static void ask_resync(mw_gateway_t *gw, struct peer *p, const mwi_coap_msg *req,
                       const struct resp_opts *o, mwi_resync why)
{
    uint8_t ack[16];
    size_t alen = 0;
    gw->st.resyncs_requested++;
    if (mwi_ack_encode_full(NULL, 0, NULL, 0, why, synced_wall_ms(gw), ack, sizeof ack, &alen) ==
        MW_OK)
        respond_opts(gw, p, req, MWI_COAP_CHANGED, MWI_COAP_CF_MEDWIRE_ACK, ack, alen, o);
}

/* POST /batch: a batch of the session's device, decoded and checked whole, taken in
 * (delivery.c), and answered with an Ack once committed. */
static void handle_batch(mw_gateway_t *gw, struct peer *p, const mwi_coap_msg *req,
                         const struct resp_opts *o)
{
    const char *id = mwi_dtls_conn_peer_id(p->link.conn);
    size_t n = 0;
    mwi_batch_head head;
    char why[240];
    if (req->code != MWI_COAP_POST) {
        refuse(gw, p, req, MWI_COAP_METHOD_NOT_ALLOWED, "use POST");
        return;
    }
    if (req->content_format != MWI_COAP_CF_MEDWIRE_BATCH) {
        refuse(gw, p, req, MWI_COAP_UNSUPPORTED_CONTENT_FORMAT,
               "Content-Format must be 65100 (medwire batch)");
        return;
    }
    mw_err e =
        mwi_batch_decode_in(req->payload, req->payload_len, gw->batch, MWI_MAX_BATCH, &n, &head);
    if (e != MW_OK) {
        gw->st.refused++;
        snprintf(why, sizeof why, "batch refused: %s", mw_strerror(e));
        mwi_gw_audit(gw, MW_AUDIT_BAD_MESSAGE, p->text, id, e, 0, why);
        refuse(gw, p, req, MWI_COAP_BAD_REQUEST, why);
        return;
    }
    /* A device speaks only for itself: one foreign id refuses the batch. */
    size_t foreign = mwi_intake_foreign(gw->batch, n, id);
    if (foreign < n) {
        gw->st.refused++;
        snprintf(why, sizeof why,
                 "envelope seq %llu claims device '%.64s' but the certificate says '%.64s'",
                 (unsigned long long)gw->batch[foreign].seq, gw->batch[foreign].device_id, id);
        mwi_gw_audit(gw, MW_AUDIT_IDENTITY_MISMATCH, p->text, id, MW_EIDENTITY, 0, why);
        refuse(gw, p, req, MWI_COAP_CODE(4, 3), "device id does not match the certificate");
        return;
    }
    struct device *dv = mwi_gw_device_get(gw, id);
    if (dv == NULL) {
        refuse(gw, p, req, MWI_COAP_SERVICE_UNAVAILABLE, "out of memory");
        return;
    }
    mwi_gw_bind(p, dv);
    mwi_intake in;
    switch (mwi_gw_take_batch(gw, p, dv, gw->batch, n, &head, &in)) {
    case MWI_GW_BATCH_UNREADABLE:
        refuse(gw, p, req, MWI_COAP_SERVICE_UNAVAILABLE, "cannot read the store now");
        return;
    case MWI_GW_BATCH_NOT_STORED:
        refuse(gw, p, req, MWI_COAP_SERVICE_UNAVAILABLE, "cannot store messages now");
        return;
    case MWI_GW_BATCH_RETIRED:
        ask_resync(gw, p, req, o, MWI_RESYNC_RETIRED);
        return;
    case MWI_GW_BATCH_ACK:
        break;
    }
    uint8_t ack[MWI_MAX_ACK_RANGES * 24 + MWI_MAX_COMMANDS * 32 + 16];
    size_t alen = 0;
    mwi_gw_expire_commands(gw, dv);
    if (mwi_ack_encode_full(in.ranges, in.nranges, dv->cmds, dv->ncmds, in.resync,
                            synced_wall_ms(gw), ack, sizeof ack, &alen) != MW_OK)
        return;
    respond_opts(gw, p, req, MWI_COAP_CHANGED, MWI_COAP_CF_MEDWIRE_ACK, ack, alen, o);
}

/* An EST resource (est.c). An /sren answer goes whole, even to a request that asks for smaller
 * blocks: a block request after the first would be a new request, and issue again. */
static void handle_est(mw_gateway_t *gw, struct peer *p, const mwi_coap_msg *req,
                       const struct resp_opts *o)
{
    mwi_gw_answer *a = malloc(sizeof *a);
    if (a == NULL) {
        refuse(gw, p, req, MWI_COAP_SERVICE_UNAVAILABLE, "out of memory");
        return;
    }
    a->max_age = 0;
    mwi_gw_est(gw, p, req, a);
    mwi_coap_msg r = *req;
    if (req->code == MWI_COAP_POST)
        r.flags &= (uint8_t)~MWI_COAP_F_BLOCK2;
    struct resp_opts ro = o ? *o : (struct resp_opts){0};
    if (a->max_age) { /* 5.03: when to ask again (RFC 9148 5) */
        ro.flags |= MWI_COAP_F_MAX_AGE;
        ro.max_age = a->max_age;
    }
    respond_opts(gw, p, &r, a->code, a->cf, a->len ? a->body : NULL, a->len, &ro);
    free(a);
}

/* GET /crl: the CA's CRL as this gateway enforces it (DER, block-wise when long), so that its
 * devices learn revocations (of gateways too). The CA signed it: the gateway cannot forge one. */
static void handle_crl(mw_gateway_t *gw, struct peer *p, const mwi_coap_msg *m)
{
    const uint8_t *der;
    size_t len;
    if (m->code != MWI_COAP_GET)
        refuse(gw, p, m, MWI_COAP_METHOD_NOT_ALLOWED, "use GET");
    else if (m->accept >= 0 && m->accept != MWI_COAP_CF_PKIX_CRL)
        refuse(gw, p, m, MWI_COAP_CODE(4, 6), "Accept must be 65103 (application/pkix-crl)");
    else if (!mwi_dtls_ctx_crl(gw->dtls, &der, &len))
        refuse(gw, p, m, MWI_COAP_NOT_FOUND, "this gateway enforces no CRL");
    else {
        gw->st.crls_served++;
        respond(gw, p, m, MWI_COAP_CONTENT, MWI_COAP_CF_PKIX_CRL, der, len);
    }
}

/* A POST whose body comes in Block1 pieces (RFC 7959 2.5): reassembled up to
 * max_body, never further; the batch is handled when the last block arrives. */
static void handle_block1(mw_gateway_t *gw, struct peer *p, const mwi_coap_msg *m)
{
    if (p->b1_buf == NULL) {
        p->b1_buf = malloc(gw->max_body);
        if (p->b1_buf == NULL) {
            refuse(gw, p, m, MWI_COAP_SERVICE_UNAVAILABLE, "out of memory");
            return;
        }
    }
    struct resp_opts o = {.flags = MWI_COAP_F_BLOCK1, .block1 = m->block1};
    mwi_block1_result r =
        mwi_coap_block1_input(&p->b1, p->b1_buf, gw->max_body, m, gw->now_ms, &gw->params);
    switch (r) {
    case MWI_BLOCK1_CONTINUE:
        respond_opts(gw, p, m, MWI_COAP_CONTINUE, -1, NULL, 0, &o);
        return;
    case MWI_BLOCK1_TOO_LARGE: {
        gw->st.bodies_too_large++;
        struct resp_opts big = {.flags = MWI_COAP_F_SIZE1, .size1 = (uint32_t)gw->max_body};
        free(p->b1_buf);
        p->b1_buf = NULL;
        respond_opts(gw, p, m, MWI_COAP_REQUEST_ENTITY_TOO_LARGE, -1,
                     (const uint8_t *)"body larger than the gateway accepts", 36, &big);
        return;
    }
    case MWI_BLOCK1_INCOMPLETE:
        free(p->b1_buf);
        p->b1_buf = NULL;
        refuse(gw, p, m, MWI_COAP_REQUEST_ENTITY_INCOMPLETE, "block out of order");
        return;
    case MWI_BLOCK1_COMPLETE: {
        mwi_coap_msg whole = *m;
        whole.payload = p->b1_buf;
        whole.payload_len = p->b1.len;
        o.block1 = m->block1 & ~8u; /* echo the last block, M = 0 */
        if (strcmp(m->uri_path, MWI_PATH_BATCH) == 0)
            handle_batch(gw, p, &whole, &o);
        else
            handle_est(gw, p, &whole, &o);
        free(p->b1_buf);
        p->b1_buf = NULL;
        return;
    }
    }
}

static void on_record(void *ctx, const uint8_t *data, size_t len)
{
    mw_gateway_t *gw = ctx;
    struct peer *p = gw->cur;
    if (!p->admitted) {
        /* A record in the datagram that completes the handshake (a resumed session's first
         * request rides with the device's Finished): the identity is admitted before it is
         * read, so that a session over the identity's limits delivers nothing. */
        if (p->refused || !mwi_dtls_conn_established(p->link.conn) ||
            !mwi_gw_admit_identity(gw, p, gw->now_ms)) {
            p->refused = true;
            return;
        }
    }
    mwi_coap_msg m;
    uint8_t rst[MWI_COAP_EMPTY_SIZE];
    size_t rst_len;
    mw_err e = mwi_coap_parse(gw->parser, data, len, &m);
    if (e != MW_OK) {
        /* A malformed CON is rejected with RST when its MID can be read (RFC 7252 4.2). */
        if (mwi_coap_read_header(data, len, &m) == MW_OK && m.type == MWI_COAP_CON &&
            mwi_coap_encode_empty(&m, MWI_COAP_RST, rst, sizeof rst, &rst_len) == MW_OK)
            write_lossy(p->link.conn, rst, rst_len);
        return;
    }
    if (!MWI_COAP_IS_REQUEST(m.code)) {
        /* CoAP ping (RFC 7252 4.3): answer with RST. */
        if (m.type == MWI_COAP_CON && m.code == MWI_COAP_EMPTY &&
            mwi_coap_encode_empty(&m, MWI_COAP_RST, rst, sizeof rst, &rst_len) == MW_OK)
            write_lossy(p->link.conn, rst, rst_len);
        if (p->push.r.active)
            mwi_gw_push_answered(gw, p, &m);
        return; /* otherwise a response to nothing the gateway asked */
    }
    if (m.type == MWI_COAP_CON || m.type == MWI_COAP_NON) {
        const mwi_coap_dedup_entry *dup = mwi_coap_dedup_find(&p->dedup, m.type, m.mid, gw->now_ms);
        if (dup != NULL) {
            /* Processed once already: same answer, no second processing. */
            gw->st.coap_duplicates++;
            if (dup->has_response)
                write_lossy(p->link.conn, dup->response, dup->len);
            return;
        }
    }
    if (m.unknown_critical) {
        refuse(gw, p, &m, MWI_COAP_BAD_OPTION, "unrecognised critical option");
        return;
    }
    if (strcmp(m.uri_path, MWI_PATH_BATCH) == 0) {
        if ((m.flags & MWI_COAP_F_BLOCK1) && m.code == MWI_COAP_POST)
            handle_block1(gw, p, &m);
        else
            handle_batch(gw, p, &m, NULL);
    } else if (mwi_gw_est_path(m.uri_path)) {
        if ((m.flags & MWI_COAP_F_BLOCK1) && m.code == MWI_COAP_POST && gw->est_issue)
            handle_block1(gw, p, &m);
        else
            handle_est(gw, p, &m, NULL);
    } else if (strcmp(m.uri_path, MWI_PATH_CRL) == 0) {
        handle_crl(gw, p, &m);
    } else if (strcmp(m.uri_path, WELL_KNOWN_PATH) == 0) {
        char links[sizeof LINKS_EST + sizeof LINKS_CRL];
        const uint8_t *der;
        size_t der_len;
        snprintf(links, sizeof links, "%s%s", gw->est_issue ? LINKS_EST : LINKS,
                 mwi_dtls_ctx_crl(gw->dtls, &der, &der_len) ? LINKS_CRL : "");
        if (m.code != MWI_COAP_GET)
            refuse(gw, p, &m, MWI_COAP_METHOD_NOT_ALLOWED, "use GET");
        else
            respond(gw, p, &m, MWI_COAP_CONTENT, CF_LINK_FORMAT, (const uint8_t *)links,
                    strlen(links));
    } else {
        refuse(gw, p, &m, MWI_COAP_NOT_FOUND, "no such resource");
    }
}

static void established(mw_gateway_t *gw, struct peer *p, mwi_dtls_conn *c)
{
    char why[160];
    gw->st.handshakes_completed++;
    snprintf(why, sizeof why, "device authenticated (%.40s)", mwi_dtls_conn_cipher(c));
    mwi_gw_audit(gw, MW_AUDIT_SESSION_ESTABLISHED, p->text, mwi_dtls_conn_peer_id(c), MW_OK, 0,
                 why);
}

/* Feeds a datagram to the peer's connections (mwi_link_input: while a new handshake runs beside
 * an established session, its handshake and CCS records go to it and application data to the
 * old); returns false if the peer should be removed (its only connection failed). */
static bool feed(mw_gateway_t *gw, struct peer *p, const uint8_t *buf, size_t len, uint64_t now)
{
    bool was_admitted = p->admitted;
    mwi_link_result r;
    gw->cur = p;
    mwi_link_event ev = mwi_link_input(&p->link, buf, len, now, on_record, gw, &r);
    gw->cur = NULL;
    /* Completed or failed, it is no longer half-open: a handshake that ends frees its place
     * for the next at once, not at the next sweep (which recounts anyway). */
    if (!r.was_established && r.err != MW_EINPROGRESS && gw->half_open > 0)
        gw->half_open--;
    if (ev == MWI_LINK_ESTABLISHED || ev == MWI_LINK_SWITCHED) {
        established(gw, p, p->link.conn);
        /* Make-before-break: the new session replaced the old only now. */
        if (ev == MWI_LINK_SWITCHED && r.replaced_established && gw->st.sessions > 0)
            gw->st.sessions--;
        bool admitted_now = !was_admitted && p->admitted; /* by a record that came with it */
        if (p->refused || (!admitted_now && !mwi_gw_admit_identity(gw, p, now))) {
            mwi_dtls_conn_close(p->link.conn);
            (void)mwi_link_drop_current(&p->link); /* no next: it just took over, or none */
            return false;
        }
        gw->st.sessions++;
        return true;
    }
    if (ev == MWI_LINK_NONE)
        return true;
    if (!r.was_established) {
        mwi_gw_handshake_failed_why(gw, p, r.detail);
    } else {
        /* A close_notify is how a session normally ends: audited without an error. */
        mwi_gw_audit(gw, MW_AUDIT_SESSION_CLOSED, p->text, mwi_dtls_conn_peer_id(p->link.conn),
                     r.err == MW_ECLOSED && r.detail.err == MW_ECLOSED ? MW_OK : r.detail.err,
                     r.detail.foreign, r.detail.reason);
        if (gw->st.sessions > 0)
            gw->st.sessions--;
    }
    if (ev == MWI_LINK_NEXT_FAILED)
        return p->link.conn != NULL;
    /* The session failed: a handshake beside it, if any, takes its place. */
    return mwi_link_drop_current(&p->link);
}

/* A ClientHello refused before its sender proved its address (for example
 * no cipher suite in common) is audited, but at a bounded rate: the source
 * may be spoofed, and a flood must not become a flood of audit lines. */
static void stateless_result(mw_gateway_t *gw, const mw_addr_t *from, mw_err e,
                             const mw_error_detail_t *d, uint64_t now)
{
    if (e == MW_EAGAIN) {
        gw->st.hello_verify_sent++;
        return;
    }
    mwi_gw_count_hs_failure(gw, e);
    if (!mwi_gw_audit_allowed(gw, now))
        return;
    char txt[64], why[240];
    if (mw_addr_format(from, txt, sizeof txt) != MW_OK)
        txt[0] = '\0';
    snprintf(why, sizeof why, "%.180s (before the cookie exchange: address unverified)",
             d->reason[0] ? d->reason : mw_strerror(e));
    mwi_gw_audit(gw, MW_AUDIT_HANDSHAKE_FAILED, txt, "", e, d->foreign, why);
}

/* After the cookie exchange the address is proven, not the device: one host may hold a share
 * of the half-open pool and start a bounded number of handshakes per second, so that 300 ports
 * of one host that go silent after the cookie never delay a device from another.
 * A ClientHello with a cookie is judged twice: before it is answered, reading the host's counts
 * only (@p take false: nothing is created or taken for an address not yet proven), and once
 * the cookie is verified, taking its place. Refused after its ServerHello went out, a device
 * would send its next flight to a gateway that kept nothing of it, and hear nothing until its
 * handshake timed out (31 s); refused before, it sends its ClientHello again a second later
 * and gets in once its host has room. */
static bool admit_host(mw_gateway_t *gw, const mw_addr_t *from, uint64_t now, bool take)
{
    double burst = 2 * gw->host_hs_per_s;
    mwi_host *h =
        take ? mwi_hosts_get(&gw->hosts, from, burst, now) : mwi_hosts_find(&gw->hosts, from);
    if (h == NULL && !take)
        return true; /* a host not seen yet: its share is whole */
    const char *why = NULL;
    if (h == NULL)
        why = "out of memory for the host table";
    else if (h->half_open >= gw->max_half_open_per_host)
        why = "too many handshakes in progress from this host: new ones wait until some finish";
    else if (take ? !mwi_bucket_take(&h->handshakes, gw->host_hs_per_s, burst, now)
                  : !mwi_bucket_has(&h->handshakes, gw->host_hs_per_s, burst, now))
        why = "this host starts handshakes faster than the per-host limit";
    if (why == NULL) {
        if (take)
            h->half_open++;
        return true;
    }
    gw->st.host_limit_drops++;
    if (h == NULL)
        return false;
    /* Per host as per identity: a few lines a minute, then one with the count. */
    char txt[64], held[160];
    if (mw_addr_format(from, txt, sizeof txt) != MW_OK)
        txt[0] = '\0';
    if (now - h->audit_since_ms >= 60000) {
        if (h->held > 0) {
            snprintf(held, sizeof held,
                     "%lu more handshakes from this host refused by its limits in the last "
                     "minute, not written one by one",
                     (unsigned long)h->held);
            mwi_gw_audit_raw(gw, MW_AUDIT_PEER_LIMIT, txt, "", MW_EFULL, 0, held);
            gw->st.audit_lines_held += h->held;
        }
        h->audit_since_ms = now;
        h->audited = 0;
        h->held = 0;
    }
    if (h->audited < gw->alim->per_window) {
        h->audited++;
        mwi_gw_audit(gw, MW_AUDIT_PEER_LIMIT, txt, "", MW_EFULL, 0, why);
    } else {
        h->held++;
    }
    return false;
}

static void handle_datagram(mw_gateway_t *gw, const mw_addr_t *from, const uint8_t *buf, size_t len,
                            uint64_t now)
{
    bool hello = mwi_dtls_is_client_hello(buf, len);
    if (hello && !mwi_dtls_client_hello_well_formed(buf, len)) {
        /* Kept from wolfSSL's parser (CVE-2026-3547 and its like), whoever sends it. */
        gw->st.hellos_malformed++;
        return;
    }
    struct peer **slot = mwi_gw_peer_slot(gw, from);
    struct peer *p = *slot;
    if (p != NULL) {
        /* Token bucket per peer: a device that floods loses its excess
         * datagrams and disturbs no one else. */
        if (!mwi_bucket_take(&p->rate, gw->rate_per_s, gw->rate_burst, now)) {
            gw->st.rate_limited++;
            return;
        }
        /* And per identity once it is known: more source ports buy no more of the gateway. */
        if (p->dv != NULL && !mwi_bucket_take(&p->dv->rate, gw->rate_per_s, gw->rate_burst, now)) {
            gw->st.rate_limited++;
            gw->st.identity_rate_limited++;
            return;
        }
        p->last_rx_ms = now;
        if (hello && mwi_link_hello_opens_next(&p->link, buf, len)) {
            /* wolfSSL drops a new ClientHello on an established session: a
             * device that rebooted would be locked out. Run it as a new
             * session beside the old one (docs/SECURITY-MODEL.md 6.1). */
            if (mwi_dtls_hello_has_cookie(buf, len) && !admit_host(gw, from, now, false))
                return;
            mwi_dtls_conn *c = NULL;
            mw_error_detail_t d;
            mw_err e =
                mwi_dtls_accept(gw->dtls, from, buf, len, now, route_send, &p->route, &c, &d);
            if (e == MW_OK &&
                (!admit_host(gw, from, now, true) || mwi_link_add(&p->link, c) != MW_OK)) {
                mwi_dtls_conn_destroy(&c);
            } else if (e == MW_OK) {
                gw->st.handshakes_started++;
                gw->half_open++;
                p->next_started_ms = now;
            } else {
                stateless_result(gw, from, e, &d, now);
            }
            return;
        }
        if (!feed(gw, p, buf, len, now))
            mwi_gw_peer_remove(gw, p);
        return;
    }
    /* Unknown address: no state unless the ClientHello carries a valid cookie. */
    if (!hello)
        return;
    if (gw->npeers >= gw->max_peers + gw->max_half_open || gw->half_open >= gw->max_half_open) {
        /* Checked before any work: a full table costs a flood nothing. Sessions are held to
         * max_peers when they complete (admit_identity), so that a device whose own stale
         * session fills the last slot can still replace it. */
        gw->st.peer_limit_drops++;
        char txt[64];
        if (!mwi_gw_audit_allowed(gw, now))
            return;
        if (mw_addr_format(from, txt, sizeof txt) != MW_OK)
            txt[0] = '\0';
        mwi_gw_audit(gw, MW_AUDIT_PEER_LIMIT, txt, "", MW_EFULL, 0,
                     gw->npeers >= gw->max_peers
                         ? "session table full: raise max_peers or reap idle sessions"
                         : "too many handshakes in progress: new ones wait until some finish");
        return;
    }
    if (mwi_dtls_hello_has_cookie(buf, len) && !admit_host(gw, from, now, false))
        return;
    struct peer *np = calloc(1, sizeof *np);
    if (np == NULL)
        return;
    np->route.gw = gw;
    np->route.addr = *from;
    mwi_dtls_conn *c = NULL;
    mw_error_detail_t d;
    mw_err e = mwi_dtls_accept(gw->dtls, from, buf, len, now, route_send, &np->route, &c, &d);
    if (e != MW_OK) {
        free(np);
        stateless_result(gw, from, e, &d, now);
        return;
    }
    if (!admit_host(gw, from, now, true) || mwi_link_add(&np->link, c) != MW_OK) {
        mwi_dtls_conn_destroy(&c);
        free(np);
        return;
    }
    gw->st.handshakes_started++;
    gw->half_open++;
    np->conn_started_ms = now;
    mwi_bucket_init(&np->rate, gw->rate_burst, now);
    np->last_rx_ms = now;
    if (mw_addr_format(from, np->text, sizeof np->text) != MW_OK)
        snprintf(np->text, sizeof np->text, "?");
    np->hnext = NULL;
    *slot = np;
    gw->npeers++;
}

static uint64_t next_deadline(const mw_gateway_t *gw)
{
    /* Not a walk over the peers: at 5,000 sessions that would cost every poll. */
    return gw->timers_at;
}

/* One received datagram; @p n is its real length. */
static void receive_one(mw_gateway_t *gw, const mw_addr_t *from, const uint8_t *buf, size_t n,
                        uint64_t now)
{
    gw->st.datagrams_received++;
    gw->st.bytes_received += n;
    if (n == 0 || n > MWI_DTLS_MAX_DATAGRAM)
        return; /* truncated or empty: not a DTLS datagram we can use */
    gw->now_ms = now;
    handle_datagram(gw, from, buf, n, now);
    mwi_gw_note_timers(gw, from);
}

/* At most RX_BURST datagrams, then timers get their turn: a steady stream from
 * thousands of devices must not starve retransmissions and reaping. With a
 * batched receive, RX_BATCH of them per call into the transport. */
static mw_err receive_burst(mw_gateway_t *gw, uint64_t now, bool *did)
{
    if (gw->rxv == NULL) {
        for (int i = 0; i < RX_BURST; i++) {
            mw_addr_t from;
            size_t n = 0;
            mw_err e = gw->tp.recv(gw->tp.ctx, &from, gw->rx, sizeof gw->rx, &n);
            if (e == MW_EAGAIN)
                break;
            if (e != MW_OK)
                return e;
            *did = true;
            receive_one(gw, &from, gw->rx, n, now);
        }
        return MW_OK;
    }
    for (size_t left = RX_BURST; left > 0;) {
        size_t n = 0;
        mw_err e = gw->tp.recv_many(gw->tp.ctx, gw->rxv, left < RX_BATCH ? left : RX_BATCH, &n);
        if (e == MW_EAGAIN || (e == MW_OK && n == 0))
            break;
        if (e != MW_OK)
            return e;
        if (n > RX_BATCH)
            n = RX_BATCH; /* a transport that overran its slots is not believed */
        *did = true;
        for (size_t i = 0; i < n; i++)
            receive_one(gw, &gw->rxv[i].from, gw->rxv[i].buf, gw->rxv[i].len, now);
        /* A short batch emptied the socket: asking again would only return EAGAIN, one system
         * call per poll for nothing (what arrives meanwhile wakes the next poll). */
        if (n < (left < RX_BATCH ? left : RX_BATCH))
            break;
        left -= n < left ? n : left;
    }
    return MW_OK;
}

mw_err mw_gateway_poll(mw_gateway_t *gw, int timeout_ms)
{
    if (gw == NULL)
        return MW_EINVAL;
    uint64_t now = now_ms(gw);
    if (timeout_ms > 0) {
        uint64_t wait = (uint64_t)timeout_ms;
        uint64_t at = next_deadline(gw);
        if (at != UINT64_MAX)
            wait = at <= now ? 0 : (at - now < wait ? at - now : wait);
        if (wait > 0 && mw_wait_readable(gw->tp.fd, (int)wait) != MW_OK)
            return MW_ETRANSPORT;
        now = now_ms(gw);
    }
    bool did = false;
    mw_err e = receive_burst(gw, now, &did);
    if (e != MW_OK)
        return e;
    gw->now_ms = now;
    mwi_gw_scan_comm_loss(gw, now);
    mwi_gw_commit(gw);
    mwi_gw_push_due_commands(gw);
    if (now >= gw->timers_at)
        mwi_gw_run_timers(gw, now);
    gw->st.peers = gw->npeers;
    gw->st.half_open = gw->half_open;
    return did ? MW_OK : MW_EAGAIN;
}

mw_err mw_gateway_local_addr(const mw_gateway_t *gw, mw_addr_t *out)
{
    if (gw == NULL || out == NULL)
        return MW_EINVAL;
    if (!gw->own_tp)
        return MW_EINVAL;
    return mw_udp_local_addr(&gw->tp, out);
}

void mw_gateway_stats(const mw_gateway_t *gw, mw_gateway_stats_t *out)
{
    if (gw && out) {
        *out = gw->st;
        mwi_dtls_expiry x;
        mwi_dtls_ctx_expiry(gw->dtls, &x);
        out->cert_not_after_s = x.cert;
        out->ca_not_after_s = x.ca;
        out->crl_next_update_s = x.crl;
    }
}

int mw_gateway_fd(const mw_gateway_t *gw)
{
    return gw ? gw->tp.fd : -1;
}

int mw_gateway_next_timeout_ms(const mw_gateway_t *gw)
{
    if (gw == NULL)
        return -1;
    uint64_t at = next_deadline(gw);
    if (at == UINT64_MAX)
        return -1;
    uint64_t now = now_ms(gw);
    if (at <= now)
        return 0;
    return at - now > 0x7fffffff ? 0x7fffffff : (int)(at - now);
}

bool mw_gateway_store_healthy(mw_gateway_t *gw)
{
    /* Inside a poll's transaction the connection is in use; between polls it is free. */
    return gw == NULL || gw->store == NULL || mwi_store_in_txn(gw->store) ||
           mwi_store_healthy(gw->store);
}

void mw_gateway_destroy(mw_gateway_t **pgw)
{
    if (pgw == NULL || *pgw == NULL)
        return;
    mw_gateway_t *gw = *pgw;
    mwi_hosts_fini(&gw->hosts);
    free(gw->alim);
    gw->alim = NULL;
    if (gw->deferred && gw->undo)
        mwi_gw_commit(gw); /* what was received is committed and acknowledged first */
    mwi_gw_peers_fini(gw);
    mwi_gw_credentials_fini(gw);
    mwi_coap_parser_destroy(&gw->parser);
    mwi_store_close(&gw->store);
    free(gw->deferred);
    free(gw->undo);
    free(gw->warm);
    free(gw->rxv);
    if (gw->own_tp && gw->tp.close)
        gw->tp.close(gw->tp.ctx);
    free(gw);
    *pgw = NULL;
}
