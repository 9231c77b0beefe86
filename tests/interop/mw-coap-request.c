/* SPDX-License-Identifier: Apache-2.0 */
/* mw-coap-request -- one CoAP request to a foreign server over medwire's DTLS and CoAP layers. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "coap/coap.h"
#include "dtls/dtls.h"
#include "port/posix/read_file.h"
#include "medwire/io.h"

static const char USAGE[] =
    "usage: mw-coap-request --server HOST:PORT --server-name NAME --ca FILE --cert FILE\n"
    "                       --key FILE [--method get|post|put|delete] [--path PATH]\n"
    "                       [--payload-file FILE] [--content-format N] [--timeout-s N]\n"
    "                       [--suite ccm8|gcm]\n"
    "\n"
    "Sends one confirmable CoAP request over DTLS 1.2 to a CoAP server, using medwire's\n"
    "own DTLS channel (wolfSSL, protocol v1 suites, mutual X.509, the server's name and\n"
    "role checked) and CoAP message layer (RFC 7252 retransmission), then prints:\n"
    "\n"
    "  session: SUITE peer NAME     once the handshake is complete\n"
    "  response: C.DD               the response code (or 'response: RST')\n"
    "  content-format: N            when the response has one\n"
    "  block2: NUM/M/SIZE           when the response has a Block2 option\n"
    "  payload: TEXT                when it has a payload; bytes outside printable\n"
    "                               ASCII and '\\' are written as \\xNN\n"
    "\n"
    "  --method M        get (default), post, put or delete\n"
    "  --path PATH       Uri-Path, e.g. /time (default /: no Uri-Path)\n"
    "  --payload-file F  request body (at most 1024 bytes: no block-wise transfer)\n"
    "  --content-format  request Content-Format number (default: none)\n"
    "  --timeout-s N     give up after N seconds in all (default 30)\n"
    "  --suite S         offer only one of protocol v1's two suites: ccm8\n"
    "                    (ECDHE-ECDSA-AES128-CCM-8) or gcm (ECDHE-ECDSA-AES128-GCM-SHA256);\n"
    "                    default both, CCM-8 first\n"
    "\n"
    "Exit status: 0 a response came (whatever its code), 1 no response (the handshake\n"
    "failed, the request was reset or never answered; stderr says why), 2 bad command line.\n";

#define MAX_BODY 1024

/* What the record callback found. */
struct result {
    mwi_coap_parser *parser;
    mwi_coap_request *req;
    mwi_dtls_conn *conn;
    bool done, reset;
};

static int usage_error(const char *what, const char *arg)
{
    fprintf(stderr, "mw-coap-request: %s%s%s\nsee 'mw-coap-request --help'\n", what,
            arg ? ": " : "", arg ? arg : "");
    return 2;
}

static void print_escaped(const uint8_t *p, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (p[i] >= 0x20 && p[i] < 0x7f && p[i] != '\\')
            putchar(p[i]);
        else
            printf("\\x%02X", p[i]);
    }
}

static void print_response(const mwi_coap_msg *m)
{
    printf("response: %u.%02u\n", (unsigned)MWI_COAP_CODE_CLASS(m->code),
           (unsigned)(m->code & 0x1f));
    if (m->content_format >= 0)
        printf("content-format: %ld\n", (long)m->content_format);
    if (m->flags & MWI_COAP_F_BLOCK2)
        printf("block2: %lu/%u/%u\n", (unsigned long)(m->block2 >> 4),
               (unsigned)((m->block2 >> 3) & 1u), 16u << (m->block2 & 7u));
    if (m->payload_len > 0) {
        printf("payload: ");
        print_escaped(m->payload, m->payload_len);
        putchar('\n');
    }
    fflush(stdout);
}

/* Every record from the server: the response to our request, or noise. */
static void on_record(void *ctx, const uint8_t *data, size_t len)
{
    struct result *r = ctx;
    mwi_coap_msg m;
    if (r->done || mwi_coap_parse(r->parser, data, len, &m) != MW_OK)
        return;
    mw_err e = mwi_coap_request_match(r->req, &m);
    if (e == MW_OK) {
        if (m.type == MWI_COAP_CON) {
            /* A separate response is itself confirmable (RFC 7252 5.2.2). */
            mwi_coap_msg ack;
            uint8_t out[8];
            size_t n = 0;
            if (mwi_coap_make_ack(&m, &ack) == MW_OK &&
                mwi_coap_encode(&ack, out, sizeof out, &n) == MW_OK &&
                mwi_dtls_conn_write(r->conn, out, n) != MW_OK)
                fprintf(stderr, "mw-coap-request: could not acknowledge the separate response\n");
        }
        print_response(&m);
        r->done = true;
    } else if (e == MW_ECOAP_RESET) {
        printf("response: RST\n");
        r->reset = true;
        r->done = true;
    }
}

struct route {
    mw_transport_t *tp;
    mw_addr_t to;
};

static void dtls_out(void *ctx, const uint8_t *buf, size_t len)
{
    struct route *rt = ctx;
    /* A datagram that cannot go out now is a lost one: DTLS and CoAP retransmit. */
    mw_err e = rt->tp->send(rt->tp->ctx, &rt->to, buf, len);
    (void)e;
}

static int fail(const char *what, const mw_error_detail_t *d)
{
    fprintf(stderr, "mw-coap-request: %s: %s", what, mw_strerror(d->err));
    if (d->foreign != 0)
        fprintf(stderr, " (code %d)", d->foreign);
    if (d->reason[0] != '\0')
        fprintf(stderr, ": %s", d->reason);
    fputc('\n', stderr);
    return 1;
}

static int read_body(const char *path, uint8_t *out, size_t cap, size_t *out_len)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL) {
        fprintf(stderr, "mw-coap-request: cannot open '%s': %s\n", path, strerror(errno));
        return -1;
    }
    size_t n = fread(out, 1, cap, f);
    int extra = fgetc(f);
    int bad = ferror(f);
    fclose(f);
    if (bad || extra != EOF) {
        fprintf(stderr, "mw-coap-request: '%s' is unreadable or larger than %zu bytes\n", path,
                cap);
        return -1;
    }
    *out_len = n;
    return 0;
}

int main(int argc, char **argv)
{
    const char *server = NULL, *name = NULL, *ca = NULL, *cert = NULL, *key = NULL;
    const char *method = "get", *path = "/", *body_path = NULL, *suites = NULL;
    long cf = -1, timeout_s = 30;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
            fputs(USAGE, stdout);
            return 0;
        }
        if (i + 1 >= argc)
            return usage_error("option needs a value", a);
        const char *v = argv[++i];
        char *end = NULL;
        if (strcmp(a, "--server") == 0)
            server = v;
        else if (strcmp(a, "--server-name") == 0)
            name = v;
        else if (strcmp(a, "--ca") == 0)
            ca = v;
        else if (strcmp(a, "--cert") == 0)
            cert = v;
        else if (strcmp(a, "--key") == 0)
            key = v;
        else if (strcmp(a, "--method") == 0)
            method = v;
        else if (strcmp(a, "--path") == 0)
            path = v;
        else if (strcmp(a, "--payload-file") == 0)
            body_path = v;
        else if (strcmp(a, "--suite") == 0) {
            /* Never anything outside MWI_DTLS_CIPHERS: this narrows the offer, it cannot widen it.
             */
            if (strcmp(v, "ccm8") == 0)
                suites = "ECDHE-ECDSA-AES128-CCM-8";
            else if (strcmp(v, "gcm") == 0)
                suites = "ECDHE-ECDSA-AES128-GCM-SHA256";
            else
                return usage_error("--suite must be ccm8 or gcm", v);
        } else if (strcmp(a, "--content-format") == 0) {
            cf = strtol(v, &end, 10);
            if (end == v || *end != '\0' || cf < 0 || cf > 65535)
                return usage_error("--content-format must be 0 to 65535", v);
        } else if (strcmp(a, "--timeout-s") == 0) {
            timeout_s = strtol(v, &end, 10);
            if (end == v || *end != '\0' || timeout_s < 1 || timeout_s > 3600)
                return usage_error("--timeout-s must be 1 to 3600", v);
        } else
            return usage_error("unknown option", a);
    }
    if (!server || !name || !ca || !cert || !key)
        return usage_error("--server, --server-name, --ca, --cert and --key are required", NULL);

    mwi_coap_msg req;
    mwi_coap_msg_init(&req);
    req.type = MWI_COAP_CON;
    if (strcmp(method, "get") == 0)
        req.code = MWI_COAP_GET;
    else if (strcmp(method, "post") == 0)
        req.code = MWI_COAP_POST;
    else if (strcmp(method, "put") == 0)
        req.code = MWI_COAP_CODE(0, 3);
    else if (strcmp(method, "delete") == 0)
        req.code = MWI_COAP_CODE(0, 4);
    else
        return usage_error("--method must be get, post, put or delete", method);
    while (*path == '/')
        path++;
    if (strlen(path) > MWI_COAP_MAX_PATH)
        return usage_error("--path is too long", path);
    snprintf(req.uri_path, sizeof req.uri_path, "%s", path);
    req.content_format = (int32_t)cf;
    static uint8_t body[MAX_BODY];
    if (body_path != NULL) {
        if (read_body(body_path, body, sizeof body, &req.payload_len) != 0)
            return 1;
        req.payload = req.payload_len ? body : NULL;
    }

    mw_error_detail_t d;
    memset(&d, 0, sizeof d);
    mw_addr_t to;
    if (mw_addr_parse(server, &to) != MW_OK)
        return usage_error("--server must be HOST:PORT", server);
    mwi_dtls_config dc = {
        .read_file = mwi_file_read,
        .role = MWI_DTLS_CLIENT,
        .ca_file = ca,
        .cert_file = cert,
        .key_file = key,
        .peer_name = name,
        .cipher_list = suites,
    };
    mwi_dtls_ctx *ctx = NULL;
    mwi_dtls_conn *conn = NULL;
    mwi_coap_parser *parser = NULL;
    mw_transport_t tp = {.fd = -1};
    int rc = 1;
    mw_err e = mwi_dtls_ctx_create(&dc, &ctx, &d);
    if (e != MW_OK) {
        d.err = e;
        rc = fail("cannot set up DTLS", &d);
        goto out;
    }
    e = mw_udp_open(server[0] == '[' ? "[::]:0" : "0.0.0.0:0", &tp);
    if (e == MW_OK)
        e = mwi_coap_parser_create(MWI_DTLS_MAX_DATAGRAM, &parser);
    mw_random_t rnd = {.ctx = ctx, .fill = mwi_dtls_random};
    mwi_coap_ids ids;
    if (e == MW_OK)
        e = mwi_coap_ids_init(&ids, rnd);
    if (e == MW_OK)
        e = mwi_coap_ids_next(&ids, &req.mid, req.token);
    uint8_t wire[MWI_DTLS_MAX_PLAINTEXT];
    size_t wire_len = 0;
    req.token_len = MWI_COAP_MAX_TOKEN;
    if (e == MW_OK)
        e = mwi_coap_encode(&req, wire, sizeof wire, &wire_len);
    if (e != MW_OK) {
        d.err = e;
        rc = fail("cannot prepare the request", &d);
        goto out;
    }
    struct route rt = {&tp, to};
    e = mwi_dtls_conn_create(ctx, &to, dtls_out, &rt, &conn);
    mw_clock_t clock = mw_clock_system();
    uint64_t now = clock.now_ms(clock.ctx);
    const uint64_t give_up = now + (uint64_t)timeout_s * 1000u;
    if (e == MW_OK)
        e = mwi_dtls_conn_start(conn, now);
    if (e != MW_OK && e != MW_EINPROGRESS) {
        if (conn != NULL)
            mwi_dtls_conn_error(conn, &d);
        d.err = e;
        rc = fail("cannot start the handshake", &d);
        goto out;
    }

    mwi_coap_params params;
    mwi_coap_params_default(&params);
    mwi_coap_request creq;
    memset(&creq, 0, sizeof creq);
    struct result res = {.parser = parser, .req = &creq, .conn = conn};
    bool established = false;
    static uint8_t rx[MWI_DTLS_MAX_DATAGRAM + 1];
    while (!res.done) {
        uint64_t wake =
            established ? mwi_coap_request_deadline(&creq) : mwi_dtls_conn_deadline(conn);
        if (wake > give_up)
            wake = give_up;
        if (wake > now && mw_wait_readable(tp.fd, (int)(wake - now)) != MW_OK) {
            d.err = MW_ETRANSPORT;
            rc = fail("the socket failed", &d);
            goto out;
        }
        now = clock.now_ms(clock.ctx);
        for (;;) {
            mw_addr_t from;
            size_t n = 0;
            if (tp.recv(tp.ctx, &from, rx, sizeof rx, &n) != MW_OK)
                break;
            /* Only the server's address may reach the DTLS state. */
            if (n > MWI_DTLS_MAX_DATAGRAM || from.len != to.len ||
                memcmp(from.data, to.data, to.len) != 0)
                continue;
            e = mwi_dtls_conn_input(conn, rx, n, now, on_record, &res);
            if (e != MW_OK && e != MW_EINPROGRESS) {
                mwi_dtls_conn_error(conn, &d);
                if (d.err == MW_OK)
                    d.err = e;
                rc = fail(established ? "the session failed" : "the handshake failed", &d);
                goto out;
            }
            if (e == MW_OK && !established) {
                established = true;
                printf("session: %s peer %s\n", mwi_dtls_conn_cipher(conn),
                       mwi_dtls_conn_peer_id(conn));
                fflush(stdout);
                e = mwi_dtls_conn_write(conn, wire, wire_len);
                if (e == MW_OK)
                    e = mwi_coap_request_start(&creq, &params, rnd, req.mid, req.token,
                                               req.token_len, now);
                if (e != MW_OK) {
                    d.err = e;
                    rc = fail("cannot send the request", &d);
                    goto out;
                }
            }
            if (res.done)
                break;
        }
        if (res.done)
            break;
        if (now >= give_up) {
            snprintf(d.reason, sizeof d.reason, "nothing within %ld s", timeout_s);
            d.err = established ? MW_ETIMEDOUT : MW_EHANDSHAKE_TIMEOUT;
            rc = fail(established ? "no response" : "the handshake did not complete", &d);
            goto out;
        }
        if (!established && now >= mwi_dtls_conn_deadline(conn)) {
            e = mwi_dtls_conn_timer(conn, now);
            if (e != MW_OK && e != MW_EINPROGRESS) {
                mwi_dtls_conn_error(conn, &d);
                if (d.err == MW_OK)
                    d.err = e;
                rc = fail("the handshake failed", &d);
                goto out;
            }
        } else if (established && now >= mwi_coap_request_deadline(&creq)) {
            e = mwi_coap_request_timer(&creq, &params, now);
            if (e == MW_OK && mwi_dtls_conn_write(conn, wire, wire_len) != MW_OK)
                e = MW_ECLOSED;
            if (e != MW_OK && e != MW_EAGAIN) {
                d.err = e;
                snprintf(d.reason, sizeof d.reason, "the request was never answered");
                rc = fail("no response", &d);
                goto out;
            }
        }
    }
    rc = res.reset ? 1 : 0;
    if (res.reset)
        fprintf(stderr, "mw-coap-request: the server reset the request\n");
out:
    mwi_dtls_conn_destroy(&conn);
    mwi_coap_parser_destroy(&parser);
    mwi_dtls_ctx_destroy(&ctx);
    if (tp.close != NULL)
        tp.close(tp.ctx);
    return rc;
}
