/* SPDX-License-Identifier: Apache-2.0 */
/* bench_handshake.c -- gateway CPU per DTLS handshake and per acknowledged message, in memory:
 * medwire's gateway against a bare wolfSSL loop and against wolfCrypt's record cost. */
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <wolfssl/options.h>
#include <wolfssl/ssl.h>
#include <wolfssl/wolfcrypt/aes.h>

#include "medwire/medwire.h"

#include "support/fake_clock.h"
#include "support/mem_transport.h"
#include "support/pki.h"

/*
 * bench-handshake wolfssl K   full and resumed handshakes between two WOLFSSL objects joined by
 *                             in-memory datagram queues, set up as medwire's DTLS layer sets
 *                             them up (its two suites, mutual X.509, no tickets); the server's
 *                             CPU time (wolfSSL_new, accept, free) is what is counted.
 * bench-handshake medwire K   K devices connect to one mw_gateway over the in-memory transport;
 *                             the CPU time of mw_gateway_poll is what is counted.
 * bench-handshake ack N       N observations, one per request, each acknowledged before the
 *                             next: gateway CPU per acknowledged message and the record sizes.
 *                             Under callgrind --toggle-collect=mw_gateway_poll: its instructions.
 * bench-handshake crypto REQ RESP N   wolfCrypt alone: AES-128-CCM-8 decrypt-and-verify of a REQ
 *                             byte record and encrypt of a RESP byte one (the gateway's two
 *                             records per acknowledged message), N times, in two_records();
 *                             under callgrind --toggle-collect=two_records.
 * Every mode prints "key value" pairs on one line. A benchmark: nothing is asserted.
 */

static mwt_pki pki;
static mwt_clock clk = {.now_ms = 1000, .wall_ms = 1790000000000ull};
static mwt_rng rng = {.state = 42};

static double thread_cpu_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static double wall_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* ---- bare wolfSSL ---------------------------------------------------------------------- */

#define QLEN  16
#define DGMAX 1600

typedef struct dq {
    unsigned char data[QLEN][DGMAX];
    int len[QLEN];
    int head, count;
} dq;

typedef struct ends {
    dq *in, *out;
} ends;

static int dq_recv(WOLFSSL *ssl, char *buf, int sz, void *ctx)
{
    (void)ssl;
    dq *q = ((ends *)ctx)->in;
    if (q->count == 0) {
        return WOLFSSL_CBIO_ERR_WANT_READ;
    }
    int n = q->len[q->head] < sz ? q->len[q->head] : sz;
    memcpy(buf, q->data[q->head], (size_t)n);
    q->head = (q->head + 1) % QLEN;
    q->count--;
    return n;
}

static int dq_send(WOLFSSL *ssl, char *buf, int sz, void *ctx)
{
    (void)ssl;
    dq *q = ((ends *)ctx)->out;
    if (q->count == QLEN || sz > DGMAX) {
        return WOLFSSL_CBIO_ERR_GENERAL;
    }
    int tail = (q->head + q->count) % QLEN;
    memcpy(q->data[tail], buf, (size_t)sz);
    q->len[tail] = sz;
    q->count++;
    return sz;
}

static WOLFSSL_CTX *wctx(int server, const char *name)
{
    WOLFSSL_CTX *ctx =
        wolfSSL_CTX_new(server ? wolfDTLSv1_2_server_method() : wolfDTLSv1_2_client_method());
    if (ctx == NULL ||
        wolfSSL_CTX_set_cipher_list(
            ctx, "ECDHE-ECDSA-AES128-CCM-8:ECDHE-ECDSA-AES128-GCM-SHA256") != WOLFSSL_SUCCESS ||
        wolfSSL_CTX_NoTicketTLSv12(ctx) != WOLFSSL_SUCCESS ||
        wolfSSL_CTX_load_verify_locations(ctx, mwt_pki_ca(&pki), NULL) != WOLFSSL_SUCCESS ||
        wolfSSL_CTX_use_certificate_file(ctx, mwt_pki_crt(&pki, name), WOLFSSL_FILETYPE_PEM) !=
            WOLFSSL_SUCCESS ||
        wolfSSL_CTX_use_PrivateKey_file(ctx, mwt_pki_key(&pki, name), WOLFSSL_FILETYPE_PEM) !=
            WOLFSSL_SUCCESS) {
        fprintf(stderr, "bench-handshake: wolfSSL context setup failed\n");
        exit(1);
    }
    wolfSSL_CTX_set_verify(ctx,
                           server ? WOLFSSL_VERIFY_PEER | WOLFSSL_VERIFY_FAIL_IF_NO_PEER_CERT
                                  : WOLFSSL_VERIFY_PEER,
                           NULL);
    wolfSSL_CTX_SetIORecv(ctx, dq_recv);
    wolfSSL_CTX_SetIOSend(ctx, dq_send);
    return ctx;
}

static int step(WOLFSSL *ssl, int server, int *done)
{
    int ret = server ? wolfSSL_accept(ssl) : wolfSSL_connect(ssl);
    if (ret == WOLFSSL_SUCCESS) {
        *done = 1;
        return 0;
    }
    int err = wolfSSL_get_error(ssl, ret);
    return err == WOLFSSL_ERROR_WANT_READ || err == WOLFSSL_ERROR_WANT_WRITE ? 0 : err;
}

/* One handshake; the server side's CPU time is added to *srv_cpu. Returns the client session. */
static WOLFSSL_SESSION *bare_handshake(WOLFSSL_CTX *sctx, WOLFSSL_CTX *cctx,
                                       WOLFSSL_SESSION *resume, double *srv_cpu, int *reused)
{
    static dq to_srv, to_cli;
    memset(&to_srv, 0, sizeof to_srv);
    memset(&to_cli, 0, sizeof to_cli);
    ends se = {&to_srv, &to_cli}, ce = {&to_cli, &to_srv};
    WOLFSSL *cli = wolfSSL_new(cctx);
    double t0 = thread_cpu_s();
    WOLFSSL *srv = wolfSSL_new(sctx);
    *srv_cpu += thread_cpu_s() - t0;
    if (srv == NULL || cli == NULL) {
        exit(1);
    }
    wolfSSL_SetIOReadCtx(srv, &se);
    wolfSSL_SetIOWriteCtx(srv, &se);
    wolfSSL_SetIOReadCtx(cli, &ce);
    wolfSSL_SetIOWriteCtx(cli, &ce);
    wolfSSL_dtls_set_using_nonblock(srv, 1);
    wolfSSL_dtls_set_using_nonblock(cli, 1);
    if (resume != NULL && wolfSSL_set_session(cli, resume) != WOLFSSL_SUCCESS) {
        exit(1);
    }
    int cd = 0, sd = 0, ce_ = 0, se_ = 0;
    for (int round = 0; round < 32 && !(cd && sd); round++) {
        if (!cd && ce_ == 0) {
            ce_ = step(cli, 0, &cd);
        }
        if (!sd && se_ == 0) {
            t0 = thread_cpu_s();
            se_ = step(srv, 1, &sd);
            *srv_cpu += thread_cpu_s() - t0;
        }
        if (ce_ != 0 || se_ != 0) {
            fprintf(stderr, "bench-handshake: bare handshake failed (%d, %d)\n", ce_, se_);
            exit(1);
        }
    }
    if (!(cd && sd)) {
        fprintf(stderr, "bench-handshake: bare handshake did not finish\n");
        exit(1);
    }
    *reused = wolfSSL_session_reused(srv) == 1;
    WOLFSSL_SESSION *s = wolfSSL_get1_session(cli);
    wolfSSL_free(cli);
    t0 = thread_cpu_s();
    wolfSSL_free(srv);
    *srv_cpu += thread_cpu_s() - t0;
    return s;
}

static int mode_wolfssl(int k)
{
    WOLFSSL_CTX *sctx = wctx(1, "gateway"), *cctx = wctx(0, "dev-1");
    double full = 0, resumed = 0;
    int reused = 0, nreused = 0;
    WOLFSSL_SESSION *s = NULL;
    /* warm-up */
    for (int i = 0; i < 5; i++) {
        double junk = 0;
        wolfSSL_SESSION_free(bare_handshake(sctx, cctx, NULL, &junk, &reused));
    }
    double w0 = wall_s();
    for (int i = 0; i < k; i++) {
        wolfSSL_SESSION_free(s);
        s = bare_handshake(sctx, cctx, NULL, &full, &reused);
    }
    double wall = wall_s() - w0;
    for (int i = 0; i < k; i++) {
        WOLFSSL_SESSION *s2 = bare_handshake(sctx, cctx, s, &resumed, &reused);
        nreused += reused;
        wolfSSL_SESSION_free(s2);
    }
    wolfSSL_SESSION_free(s);
    printf("full_ms %.4f resumed_ms %.4f resumed_fraction %.2f both_ends_per_s %.1f\n",
           full * 1e3 / k, resumed * 1e3 / k, (double)nreused / k, k / wall);
    wolfSSL_CTX_free(sctx);
    wolfSSL_CTX_free(cctx);
    return 0;
}

/* ---- medwire, in memory ------------------------------------------------------------------ */

static double gw_cpu;

static mw_err sink(void *ctx, const mw_message_t *m)
{
    (void)m;
    (*(uint64_t *)ctx)++;
    return MW_OK;
}

static mw_gateway_t *gateway(mw_transport_t tp, uint64_t *delivered)
{
    mw_gateway_config_t cfg;
    mw_gateway_config_init(&cfg);
    cfg.ca_file = mwt_pki_ca(&pki);
    cfg.cert_file = mwt_pki_crt(&pki, "gateway");
    cfg.key_file = mwt_pki_key(&pki, "gateway");
    cfg.transport = tp;
    cfg.clock = mwt_clock_table(&clk);
    cfg.sink = sink;
    cfg.sink_ctx = delivered;
    cfg.rate_limit_per_s = 1000000;
    /* Admission limits lifted: these figures are the cost of the work, not of the policy
     * (tests/integration/test_admission.c holds the policy). */
    cfg.max_half_open_per_host = 20000;
    cfg.handshakes_per_host_per_s = 1000000;
    cfg.handshakes_per_identity_per_min = 1000000;
    mw_gateway_t *gw = NULL;
    if (mw_gateway_create(&cfg, &gw, NULL) != MW_OK) {
        exit(1);
    }
    return gw;
}

static mw_client_t *client(mw_transport_t tp)
{
    mw_client_config_t cfg;
    mw_client_config_init(&cfg);
    cfg.ca_file = mwt_pki_ca(&pki);
    cfg.cert_file = mwt_pki_crt(&pki, "dev-1");
    cfg.key_file = mwt_pki_key(&pki, "dev-1");
    cfg.gateway_name = "gateway";
    cfg.gateway = "127.0.0.1:5684";
    cfg.transport = tp;
    cfg.clock = mwt_clock_table(&clk);
    cfg.random = mwt_rng_table(&rng);
    cfg.first_seq = 1000000u + (uint64_t)clk.now_ms * 1000u;
    mw_client_t *c = NULL;
    if (mw_client_open(&cfg, &c, NULL) != MW_OK) {
        exit(1);
    }
    return c;
}

static void settle(mw_gateway_t *gw, mw_client_t *c)
{
    for (int i = 0; i < 100000; i++) {
        mw_client_stats_t st;
        mw_client_stats(c, &st);
        if (st.connected && st.messages_pending == 0) {
            return;
        }
        double t0 = thread_cpu_s();
        mw_err a = mw_gateway_poll(gw, 0);
        gw_cpu += thread_cpu_s() - t0;
        mw_err b = mw_client_poll(c, 0);
        if (a != MW_OK && b != MW_OK) {
            mwt_clock_advance(&clk, 1);
        }
    }
    fprintf(stderr, "bench-handshake: the link did not settle\n");
    exit(1);
}

static int mode_medwire(int k)
{
    uint64_t delivered = 0;
    mwt_net *net = mwt_net_create(1);
    mw_gateway_t *gw = gateway(mwt_net_endpoint(net, "127.0.0.1:5684"), &delivered);
    double measured = 0;
    int done = 0;
    for (int i = 0; i < k + 5; i++) {
        char addr[32];
        snprintf(addr, sizeof addr, "127.0.0.2:%d", 20000 + i);
        mw_client_t *c = client(mwt_net_endpoint(net, addr));
        gw_cpu = 0;
        settle(gw, c);
        if (i >= 5) { /* the first five are the warm-up */
            measured += gw_cpu;
            done++;
        }
        mw_client_close(&c);
        /* let the gateway see the close_notify, as it would on a network */
        double t0 = thread_cpu_s();
        mw_err e = mw_gateway_poll(gw, 0);
        (void)e;
        if (i >= 5) {
            measured += thread_cpu_s() - t0;
        }
        if (i % 50 == 49) { /* endpoints are bounded: a fresh net and gateway */
            mw_gateway_destroy(&gw);
            mwt_net_destroy(net);
            net = mwt_net_create((uint64_t)i);
            gw = gateway(mwt_net_endpoint(net, "127.0.0.1:5684"), &delivered);
        }
    }
    printf("full_ms %.4f\n", measured * 1e3 / done);
    mw_gateway_destroy(&gw);
    mwt_net_destroy(net);
    /* Resumed: one device reconnects k times (mw_client_reconnect), each an abbreviated
     * handshake by session ID; the gateway's CPU for each, close_notify included. */
    net = mwt_net_create(7);
    gw = gateway(mwt_net_endpoint(net, "127.0.0.1:5684"), &delivered);
    mw_client_t *c = client(mwt_net_endpoint(net, "127.0.0.2:30000"));
    settle(gw, c);
    measured = 0;
    for (int i = 0; i < k + 5; i++) {
        if (mw_client_reconnect(c) != MW_OK) {
            fprintf(stderr, "bench-handshake: mw_client_reconnect failed\n");
            return 1;
        }
        gw_cpu = 0;
        settle(gw, c);
        if (i >= 5)
            measured += gw_cpu;
    }
    mw_client_stats_t st;
    mw_client_stats(c, &st);
    printf("resumed_ms %.4f resumed_fraction %.2f\n", measured * 1e3 / k,
           (double)st.resumptions / (double)(k + 5));
    mw_client_close(&c);
    mw_gateway_destroy(&gw);
    mwt_net_destroy(net);
    return 0;
}

static int mode_ack(int n)
{
    uint64_t delivered = 0;
    mwt_net *net = mwt_net_create(7);
    mw_gateway_t *gw = gateway(mwt_net_endpoint(net, "127.0.0.1:5684"), &delivered);
    mw_transport_t tp = mwt_net_endpoint(net, "127.0.0.2:30000");
    mw_client_t *c = client(tp);
    settle(gw, c);
    for (int i = 0; i < 50; i++) { /* warm-up */
        mw_observation_t o = {.mdc_code = MW_MDC_PULS_OXIM_SAT_O2, .mantissa = 97, .unit = "%"};
        if (mw_client_send_observation(c, &o, NULL) != MW_OK) {
            exit(1);
        }
        settle(gw, c);
    }
    mwt_net_reset_counters(net);
    gw_cpu = 0;
    uint64_t d0 = delivered;
    for (int i = 0; i < n; i++) {
        mw_observation_t o = {
            .mdc_code = MW_MDC_PULS_OXIM_SAT_O2, .mantissa = 90 + i % 10, .unit = "%"};
        if (mw_client_send_observation(c, &o, NULL) != MW_OK) {
            exit(1);
        }
        settle(gw, c);
    }
    mwt_counters k = mwt_net_counters(&tp);
    printf("gateway_us_per_ack %.3f req_bytes %.1f req_datagrams %.2f resp_bytes %.1f "
           "resp_datagrams %.2f delivered %llu\n",
           gw_cpu * 1e6 / n, (double)k.bytes_out / n, (double)k.datagrams_out / n,
           (double)k.bytes_in / n, (double)k.datagrams_in / n,
           (unsigned long long)(delivered - d0));
    mw_client_close(&c);
    mw_gateway_destroy(&gw);
    mwt_net_destroy(net);
    return 0;
}

/* ---- wolfCrypt's minimum ----------------------------------------------------------------- */

/* DTLS 1.2 record with AES-128-CCM-8: 13-byte header (the additional data), 8-byte explicit
 * nonce, ciphertext, 8-byte tag (RFC 6655). */
#define REC_OVERHEAD (13 + 8 + 8)

void two_records(Aes *aes, const byte *req_ct, word32 req_len, const byte *req_tag, byte *plain,
                 const byte *resp_pt, word32 resp_len, byte *resp_ct, byte *resp_tag);

/* Kept external so that callgrind can toggle on it by name. */
void two_records(Aes *aes, const byte *req_ct, word32 req_len, const byte *req_tag, byte *plain,
                 const byte *resp_pt, word32 resp_len, byte *resp_ct, byte *resp_tag)
{
    byte nonce[12] = {1, 2, 3, 4, 0, 1, 0, 0, 0, 0, 0, 7};
    byte aad[13] = {0};
    if (wc_AesCcmDecrypt(aes, plain, req_ct, req_len, nonce, sizeof nonce, req_tag, 8, aad,
                         sizeof aad) != 0) {
        fprintf(stderr, "bench-handshake: CCM verify failed\n");
        exit(1);
    }
    nonce[11]++;
    if (wc_AesCcmEncrypt(aes, resp_ct, resp_pt, resp_len, nonce, sizeof nonce, resp_tag, 8, aad,
                         sizeof aad) != 0) {
        exit(1);
    }
}

static int mode_crypto(int req, int resp, int n)
{
    static byte key[16] = {9}, pt[2048], ct[2048], out[2048], rct[2048];
    byte tag[8], rtag[8], nonce[12] = {1, 2, 3, 4, 0, 1, 0, 0, 0, 0, 0, 7}, aad[13] = {0};
    Aes aes;
    word32 rq = (word32)(req > REC_OVERHEAD ? req - REC_OVERHEAD : 1);
    word32 rs = (word32)(resp > REC_OVERHEAD ? resp - REC_OVERHEAD : 1);
    if (wc_AesInit(&aes, NULL, INVALID_DEVID) != 0 || wc_AesCcmSetKey(&aes, key, sizeof key) != 0 ||
        wc_AesCcmEncrypt(&aes, ct, pt, rq, nonce, sizeof nonce, tag, 8, aad, sizeof aad) != 0) {
        return 1;
    }
    double t0 = thread_cpu_s();
    for (int i = 0; i < n; i++) {
        two_records(&aes, ct, rq, tag, out, pt, rs, rct, rtag);
    }
    printf("crypto_us_per_ack %.3f req_plaintext %u resp_plaintext %u\n",
           (thread_cpu_s() - t0) * 1e6 / n, (unsigned)rq, (unsigned)rs);
    wc_AesFree(&aes);
    return 0;
}

int main(int argc, char **argv)
{
    char self[4096];
    if (argc < 3) {
        fprintf(stderr, "usage: bench-handshake wolfssl|medwire|ack|crypto ARGS\n");
        return 2;
    }
    if (strcmp(argv[1], "crypto") == 0) {
        return argc < 5 ? 2 : mode_crypto(atoi(argv[2]), atoi(argv[3]), atoi(argv[4]));
    }
    snprintf(self, sizeof self, "%s", argv[0]);
    setenv("MW_BIN_DIR", dirname(self), 0);
    if (!mwt_pki_make(&pki)) {
        return 1;
    }
    wolfSSL_Init();
    int k = atoi(argv[2]);
    if (strcmp(argv[1], "wolfssl") == 0) {
        return mode_wolfssl(k);
    }
    if (strcmp(argv[1], "medwire") == 0) {
        return mode_medwire(k);
    }
    if (strcmp(argv[1], "ack") == 0) {
        return mode_ack(k);
    }
    return 2;
}
