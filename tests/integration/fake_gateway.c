/* SPDX-License-Identifier: Apache-2.0 */
/* fake_gateway.c -- a gateway that completes DTLS handshakes like the real one and then answers
 * the device's requests as a broken or hostile gateway would. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fake_gateway.h"

#include "coap/coap.h"
#include "dtls/dtls.h"
#include "port/posix/read_file.h"
#include "session/codec.h"
#include "session/protocol.h"

struct mwt_fake {
    mwi_dtls_ctx *ctx;
    /* The session in use, and a new one being built beside it (a rotation), as the real
     * gateway keeps them. */
    mwi_dtls_conn *conn, *next;
    mw_transport_t tp;
    mw_addr_t peer;
    mwi_coap_parser *parser;
    mwt_clock *clk;
    mwt_fake_mode mode;
    unsigned cmds_per_ack;
    size_t ack_limit;
    mw_command_t cmd;
    uint64_t last_cmd_id;
    mwt_fake_stats st;
    mw_message_t *got;
    size_t ngot, capgot;
    uint8_t rx[MWI_DTLS_MAX_DATAGRAM + 1];
};

static void fake_out(void *ctx, const uint8_t *buf, size_t len)
{
    mwt_fake *f = ctx;
    mw_err e = f->tp.send(f->tp.ctx, &f->peer, buf, len);
    (void)e; /* a lost datagram: the device retransmits */
}

mwt_fake *mwt_fake_create(mwt_net *net, const mwt_pki *pki, mwt_clock *clk, const char *addr,
                          mwt_fake_mode mode)
{
    mwt_fake *f = calloc(1, sizeof *f);
    cr_assert_not_null(f);
    mwi_dtls_config dc = {
        .read_file = mwi_file_read,
        .role = MWI_DTLS_SERVER,
        .ca_file = mwt_pki_ca(pki),
        .cert_file = mwt_pki_crt(pki, "gateway"),
        .key_file = mwt_pki_key(pki, "gateway"),
    };
    mw_error_detail_t d;
    cr_assert_eq(mwi_dtls_server_ctx_create(&dc, &f->ctx, &d), MW_OK, "fake gateway: %s",
                 d.reason);
    cr_assert_eq(mwi_coap_parser_create(MWI_DTLS_MAX_DATAGRAM, &f->parser), MW_OK);
    f->tp = mwt_net_endpoint(net, addr);
    f->clk = clk;
    f->mode = mode;
    return f;
}

void mwt_fake_destroy(mwt_fake **pf)
{
    if (pf == NULL || *pf == NULL)
        return;
    mwt_fake *f = *pf;
    mwi_dtls_conn_destroy(&f->next);
    mwi_dtls_conn_destroy(&f->conn);
    mwi_dtls_ctx_destroy(&f->ctx);
    mwi_coap_parser_destroy(&f->parser);
    free(f->got);
    free(f);
    *pf = NULL;
}

void mwt_fake_commands(mwt_fake *f, unsigned per_ack, const mw_command_t *template_cmd)
{
    cr_assert_leq(per_ack, MWI_MAX_COMMANDS);
    f->cmds_per_ack = per_ack;
    f->cmd = *template_cmd;
}

void mwt_fake_ack_limit(mwt_fake *f, size_t n)
{
    f->ack_limit = n;
}

mwt_fake_stats mwt_fake_get_stats(const mwt_fake *f)
{
    return f->st;
}

const mw_message_t *mwt_fake_got(const mwt_fake *f, size_t *out_n)
{
    *out_n = f->ngot;
    return f->got;
}

static void reply(mwt_fake *f, const mwi_coap_msg *m)
{
    uint8_t out[MWI_DTLS_MAX_PLAINTEXT];
    size_t n = 0;
    cr_assert_eq(mwi_coap_encode(m, out, sizeof out, &n), MW_OK);
    mw_err e = mwi_dtls_conn_write(f->conn, out, n);
    (void)e;
}

static void keep(mwt_fake *f, const mw_message_t *m)
{
    if (f->ngot == f->capgot) {
        f->capgot = f->capgot ? 2 * f->capgot : 256;
        f->got = realloc(f->got, f->capgot * sizeof *f->got);
        cr_assert_not_null(f->got);
    }
    f->got[f->ngot++] = *m;
}

/* An Ack of every envelope of the batch, with new commands: what a gateway that floods the
 * device with commands sends. */
static void ack_all(mwt_fake *f, const mwi_coap_msg *req, mwi_coap_msg *resp, uint8_t *body,
                    size_t cap)
{
    mw_message_t msgs[MWI_MAX_BATCH];
    size_t n = 0;
    mwi_batch_head head;
    cr_assert_eq(
        mwi_batch_decode_in(req->payload, req->payload_len, msgs, MWI_MAX_BATCH, &n, &head), MW_OK,
        "the device sent a batch that does not decode");
    uint64_t seqs[MWI_MAX_BATCH];
    if (f->ack_limit != 0 && n > f->ack_limit)
        n = f->ack_limit;
    for (size_t i = 0; i < n; i++) {
        seqs[i] = msgs[i].seq;
        keep(f, &msgs[i]);
    }
    f->st.envelopes += n;
    mwi_seq_range r[MWI_MAX_ACK_RANGES];
    size_t nr = mwi_ranges_from_seqs(seqs, n, r, MWI_MAX_ACK_RANGES);
    mw_command_t cmds[MWI_MAX_COMMANDS];
    uint64_t wall = f->clk->wall_ms + f->clk->now_ms;
    for (unsigned i = 0; i < f->cmds_per_ack; i++) {
        cmds[i] = f->cmd;
        /* As a gateway makes them: its wall clock above, and growing. */
        uint64_t id = wall << 16;
        f->last_cmd_id = id > f->last_cmd_id ? id : f->last_cmd_id + 1;
        cmds[i].id = f->last_cmd_id;
        cmds[i].expires_ms = wall + 60000;
    }
    f->st.commands += f->cmds_per_ack;
    size_t len = 0;
    cr_assert_eq(mwi_ack_encode_cmds(r, nr, cmds, f->cmds_per_ack, body, cap, &len), MW_OK);
    resp->content_format = MWI_COAP_CF_MEDWIRE_ACK;
    resp->payload = body;
    resp->payload_len = len;
}

static void on_record(void *ctx, const uint8_t *data, size_t len)
{
    mwt_fake *f = ctx;
    mwi_coap_msg m, r;
    if (mwi_coap_parse(f->parser, data, len, &m) != MW_OK || m.type != MWI_COAP_CON)
        return;
    if (m.code == MWI_COAP_EMPTY) { /* a ping: RST is its answer */
        cr_assert_eq(mwi_coap_make_rst(&m, &r), MW_OK);
        reply(f, &r);
        return;
    }
    if (!MWI_COAP_IS_REQUEST(m.code))
        return;
    f->st.requests++;
    uint8_t body[512];
    switch (f->mode) {
    case MWT_FAKE_SILENT:
        return;
    case MWT_FAKE_RST:
        cr_assert_eq(mwi_coap_make_rst(&m, &r), MW_OK);
        break;
    case MWT_FAKE_GARBAGE_ACK:
        cr_assert_eq(mwi_coap_response_for(&m, MWI_COAP_CHANGED, &r), MW_OK);
        /* A field 1 whose length runs past the end: no protobuf decoder takes it. */
        body[0] = 0x0a;
        body[1] = 0x7f;
        body[2] = 0x08;
        r.content_format = MWI_COAP_CF_MEDWIRE_ACK;
        r.payload = body;
        r.payload_len = 3;
        break;
    case MWT_FAKE_EMPTY_ACK:
        cr_assert_eq(mwi_coap_response_for(&m, MWI_COAP_CHANGED, &r), MW_OK);
        r.content_format = MWI_COAP_CF_MEDWIRE_ACK;
        break;
    case MWT_FAKE_UNAVAILABLE:
        cr_assert_eq(mwi_coap_response_for(&m, MWI_COAP_SERVICE_UNAVAILABLE, &r), MW_OK);
        break;
    case MWT_FAKE_ACK_ALL:
        if (m.flags & MWI_COAP_F_BLOCK1) {
            /* Only what fits one record: the device falls back to that. */
            cr_assert_eq(mwi_coap_response_for(&m, MWI_COAP_REQUEST_ENTITY_TOO_LARGE, &r), MW_OK);
            break;
        }
        cr_assert_eq(mwi_coap_response_for(&m, MWI_COAP_CHANGED, &r), MW_OK);
        ack_all(f, &m, &r, body, sizeof body);
        break;
    }
    reply(f, &r);
}

static bool fatal(mw_err e)
{
    return e != MW_OK && e != MW_EINPROGRESS && e != MW_EAGAIN;
}

static void datagram(mwt_fake *f, const mw_addr_t *from, size_t n)
{
    uint64_t now = f->clk->now_ms;
    if (mwi_dtls_is_client_hello(f->rx, n)) {
        /* A new session: the first, or one beside the current (a rotation, a reconnection). */
        mwi_dtls_conn *c = NULL;
        f->peer = *from;
        mw_err e = mwi_dtls_accept(f->ctx, from, f->rx, n, now, fake_out, f, &c, NULL);
        if (e != MW_OK)
            return;
        if (f->conn != NULL && mwi_dtls_conn_established(f->conn)) {
            mwi_dtls_conn_destroy(&f->next);
            f->next = c;
        } else {
            mwi_dtls_conn_destroy(&f->conn);
            f->conn = c;
        }
        return;
    }
    mwi_dtls_conn **pc =
        f->next != NULL && (f->rx[0] == 22 || f->rx[0] == 20) ? &f->next : &f->conn;
    if (*pc == NULL)
        return;
    bool was_up = mwi_dtls_conn_established(*pc);
    mw_err e = mwi_dtls_conn_input(*pc, f->rx, n, now, on_record, f);
    if (fatal(e)) {
        mwi_dtls_conn_destroy(pc);
        return;
    }
    if (!was_up && mwi_dtls_conn_established(*pc)) {
        f->st.handshakes++;
        if (pc == &f->next) {
            mwi_dtls_conn_destroy(&f->conn);
            f->conn = f->next;
            f->next = NULL;
        }
    }
}

static void timer(mwt_fake *f, mwi_dtls_conn **pc, bool *did)
{
    if (*pc == NULL || f->clk->now_ms < mwi_dtls_conn_deadline(*pc))
        return;
    *did = true;
    if (fatal(mwi_dtls_conn_timer(*pc, f->clk->now_ms)))
        mwi_dtls_conn_destroy(pc);
}

bool mwt_fake_poll(mwt_fake *f)
{
    bool did = false;
    for (;;) {
        mw_addr_t from;
        size_t n = 0;
        if (f->tp.recv(f->tp.ctx, &from, f->rx, sizeof f->rx, &n) != MW_OK)
            break;
        did = true;
        if (n <= MWI_DTLS_MAX_DATAGRAM)
            datagram(f, &from, n);
    }
    timer(f, &f->conn, &did);
    timer(f, &f->next, &did);
    return did;
}

uint64_t mwt_fake_next_ms(const mwt_fake *f)
{
    uint64_t at = UINT64_MAX;
    if (f->conn != NULL)
        at = mwi_dtls_conn_deadline(f->conn);
    if (f->next != NULL && mwi_dtls_conn_deadline(f->next) < at)
        at = mwi_dtls_conn_deadline(f->next);
    if (at == UINT64_MAX)
        return at;
    return at > f->clk->now_ms ? at - f->clk->now_ms : 0;
}
