/* SPDX-License-Identifier: Apache-2.0 */
/* dtls_pair.c -- two DTLS peers back to back in memory, stepped by the test. */
#include <criterion/criterion.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "dtls_pair.h"
#include "support/proc.h"
#include "port/posix/read_file.h"

static char dir[256];

const char *mwt_pair_file(const char *rel)
{
    static char slots[8][400];
    static unsigned next;
    char *b = slots[next++ % 8];
    snprintf(b, sizeof slots[0], "%s/%s", dir, rel);
    return b;
}

void mwt_pair_cmd(const char *arg0, ...)
{
    const char *argv[40];
    size_t n = 0;
    va_list ap;
    va_start(ap, arg0);
    for (const char *a = arg0; a != NULL; a = va_arg(ap, const char *)) {
        cr_assert_lt(n, 39u);
        argv[n++] = a;
    }
    va_end(ap);
    argv[n] = NULL;
    char err[300]; /* not one of mwt_pair_file's slots: the arguments may be */
    snprintf(err, sizeof err, "%s/stderr.txt", dir);
    int rc = mwt_run(argv, NULL, err, 30000);
    if (rc != 0) {
        char *text = mwt_read_file(err);
        cr_assert_fail("%s %s failed (%d): %s", argv[0], argv[1], rc, text ? text : "");
    }
}

void mwt_pair_pki(const char *gateway_id)
{
    snprintf(dir, sizeof dir, "%s", mwt_tmpdir());
    const char *pki = mwt_bin("medwire-pki");
    const char *ca = mwt_pair_file("ca");
    mwt_pair_cmd(pki, "ca", "--out", ca, NULL);
    mwt_pair_cmd(pki, "issue", "--ca", ca, "--role", "gateway", "--id", gateway_id, "--out", dir,
                 NULL);
    mwt_pair_cmd(pki, "issue", "--ca", ca, "--role", "device", "--id", "dev-1", "--out", dir, NULL);
}

mwi_dtls_ctx *mwt_pair_ctx(bool server, const char *peer_name, bool no_cert)
{
    /* Three of mwt_pair_file's eight buffers, alive until the context is made. */
    const char *crt = mwt_pair_file(server ? "gateway.crt" : "dev-1.crt");
    const char *key = mwt_pair_file(server ? "gateway.key" : "dev-1.key");
    mwi_dtls_config cfg = {
        .read_file = mwi_file_read,
        .role = server ? MWI_DTLS_SERVER : MWI_DTLS_CLIENT,
        .ca_file = mwt_pair_file("ca/ca.crt"),
        .cert_file = no_cert ? NULL : crt,
        .key_file = no_cert ? NULL : key,
        .peer_name = peer_name,
        .test_no_cert = no_cert,
    };
    mwi_dtls_ctx *ctx = NULL;
    mw_error_detail_t d;
    mw_err e = server ? mwi_dtls_server_ctx_create(&cfg, &ctx, &d)
                      : mwi_dtls_ctx_create(&cfg, &ctx, &d);
    cr_assert_eq(e, MW_OK, "%s", d.reason);
    return ctx;
}

size_t mwt_dq_pop(mwt_dq *q, uint8_t *out)
{
    if (q->count == 0)
        return 0;
    size_t n = q->len[q->head];
    memcpy(out, q->data[q->head], n);
    q->head = (q->head + 1) % MWT_DQ_LEN;
    q->count--;
    return n;
}

void mwt_dq_push(mwt_dq *q, const uint8_t *d, size_t len)
{
    cr_assert_lt(q->count, (size_t)MWT_DQ_LEN, "datagram queue full");
    cr_assert_leq(len, (size_t)MWI_DTLS_MAX_DATAGRAM);
    size_t tail = (q->head + q->count) % MWT_DQ_LEN;
    memcpy(q->data[tail], d, len);
    q->len[tail] = len;
    q->count++;
}

void mwt_pair_send(void *ctx, const uint8_t *buf, size_t len)
{
    mwt_dq_push(((mwt_side *)ctx)->out, buf, len);
}

static int ssl_recv(WOLFSSL *ssl, char *buf, int sz, void *ctx)
{
    (void)ssl;
    mwt_side *s = ctx;
    uint8_t d[MWI_DTLS_MAX_DATAGRAM];
    size_t n = mwt_dq_pop(s->in, d);
    if (n == 0)
        return WOLFSSL_CBIO_ERR_WANT_READ;
    if (n > (size_t)sz)
        n = (size_t)sz;
    memcpy(buf, d, n);
    return (int)n;
}

static int ssl_send(WOLFSSL *ssl, char *buf, int sz, void *ctx)
{
    (void)ssl;
    mwt_pair_send(ctx, (const uint8_t *)buf, (size_t)sz);
    return sz;
}

void mwt_side_bind_ssl(mwt_side *side)
{
    wolfSSL_SSLSetIORecv(side->ssl, ssl_recv);
    wolfSSL_SSLSetIOSend(side->ssl, ssl_send);
    wolfSSL_SetIOReadCtx(side->ssl, side);
    wolfSSL_SetIOWriteCtx(side->ssl, side);
    wolfSSL_dtls_set_using_nonblock(side->ssl, 1);
}

const mw_addr_t *mwt_pair_addr(bool server)
{
    static mw_addr_t a[2];
    a[server].len = 4;
    memcpy(a[server].data, server ? "\x7f\0\0\1" : "\x7f\0\0\2", 4);
    return &a[server];
}

void mwt_pair_init(mwt_pair *p, mwi_dtls_ctx *cli_ctx, WOLFSSL *cli_ssl, mwi_dtls_ctx *srv_ctx,
                   WOLFSSL *srv_ssl, mwi_dtls_session *session)
{
    memset(p, 0, sizeof *p);
    p->now_ms = 1000;
    p->client = (mwt_side){.ctx = cli_ctx,
                           .ssl = cli_ssl,
                           .in = &p->to_client,
                           .out = &p->to_server,
                           .result = MW_EINPROGRESS};
    p->server = (mwt_side){.ctx = srv_ctx,
                           .ssl = srv_ssl,
                           .server = true,
                           .in = &p->to_server,
                           .out = &p->to_client,
                           .result = MW_EINPROGRESS};
    if (cli_ssl)
        mwt_side_bind_ssl(&p->client);
    if (srv_ssl)
        mwt_side_bind_ssl(&p->server);
    if (cli_ctx) {
        cr_assert_eq(mwi_dtls_conn_create(cli_ctx, mwt_pair_addr(true), mwt_pair_send, &p->client,
                                          &p->client.conn),
                     MW_OK);
        if (session)
            cr_assert_eq(mwi_dtls_conn_set_session(p->client.conn, session), MW_OK);
    }
}

static void settle(mwt_side *s, mw_err e)
{
    if (e == MW_EINPROGRESS || e == MW_EAGAIN)
        return;
    s->result = e;
    if (e != MW_OK && s->conn)
        mwi_dtls_conn_error(s->conn, &s->err);
}

static void bare_step(mwt_side *s)
{
    int rc = s->server ? wolfSSL_accept(s->ssl) : wolfSSL_connect(s->ssl);
    if (rc == WOLFSSL_SUCCESS) {
        s->result = MW_OK;
        return;
    }
    int err = wolfSSL_get_error(s->ssl, rc);
    if (err != WOLFSSL_ERROR_WANT_READ && err != WOLFSSL_ERROR_WANT_WRITE) {
        s->result = MW_EDTLS;
        s->err.foreign = err;
    }
}

/* Feeds @p s what is waiting for it; a client's first call sends its ClientHello. */
static bool side_step(mwt_pair *p, mwt_side *s)
{
    if (s->result != MW_EINPROGRESS)
        return false;
    if (s->ssl) {
        size_t before = s->out->count;
        bool had_input = s->in->count > 0;
        bare_step(s);
        return had_input || s->out->count != before;
    }
    if (!s->server && !s->started) {
        s->started = true;
        settle(s, mwi_dtls_conn_start(s->conn, p->now_ms));
        return true;
    }
    bool moved = false;
    uint8_t d[MWI_DTLS_MAX_DATAGRAM];
    size_t n;
    while (s->result == MW_EINPROGRESS && (n = mwt_dq_pop(s->in, d)) > 0) {
        moved = true;
        if (s->server && s->conn == NULL) {
            mw_error_detail_t det;
            mw_err e = mwi_dtls_accept(s->ctx, mwt_pair_addr(false), d, n, p->now_ms, mwt_pair_send,
                                       s, &s->conn, &det);
            if (e != MW_OK && e != MW_EAGAIN) {
                s->result = e;
                s->err = det;
            }
            continue;
        }
        settle(s, mwi_dtls_conn_input(s->conn, d, n, p->now_ms, NULL, NULL));
    }
    return moved;
}

bool mwt_pair_step(mwt_pair *p)
{
    bool a = side_step(p, &p->client);
    bool b = side_step(p, &p->server);
    return a || b;
}

void mwt_pair_run(mwt_pair *p)
{
    for (int round = 0; round < 64; round++) {
        bool moved = mwt_pair_step(p);
        bool done = p->client.result != MW_EINPROGRESS &&
                    (p->server.result != MW_EINPROGRESS || p->to_server.count == 0);
        if (done && p->to_client.count == 0 && p->to_server.count == 0)
            break;
        if (!moved && p->to_client.count == 0 && p->to_server.count == 0)
            break;
    }
}

void mwt_pair_fini(mwt_pair *p)
{
    mwi_dtls_conn_destroy(&p->client.conn);
    mwi_dtls_conn_destroy(&p->server.conn);
}
