/* SPDX-License-Identifier: Apache-2.0 */
/* bench_coap_load.c -- baseline: libcoap's OpenSSL DTLS client (PKI) posting observations to
 * Debian's coap-server-openssl, as a libcoap user would write it. */
#define _GNU_SOURCE /* RTLD_NEXT */
/* This program defines recv() itself (to count bytes): glibc's fortified inline recv must
 * not exist here. */
#undef _FORTIFY_SOURCE
#include <dlfcn.h>
#include <openssl/ssl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

#include <coap3/coap.h>

/*
 * bench-coap-load load --port P --dir PKI --n N --window W --seconds S [--warmup S]
 *     N DTLS sessions (PKI/dev-000.crt ...), each keeping W POSTs of one JSON observation
 *     outstanding to coaps://127.0.0.1:P/obs; prints "acked_per_s X bytes_per_ack Y
 *     datagrams_per_ack Z cipher NAME".
 * bench-coap-load handshakes --port P --dir PKI --count K
 *     K sessions one after the other, each: full handshake, one POST, close; prints
 *     "handshakes_per_s X bytes_per_handshake Y datagrams_per_handshake Z".
 * bench-coap-load idle --port P --dir PKI --n N
 *     N sessions (certificates dev-000 ... dev-099 in turn), one POST each, then idle: prints
 *     "ready N" and waits until standard input closes (the caller measures the server).
 * coap-server-openssl must run with -d (it creates /obs on the first POST, 2.01, then 2.04).
 * Bytes are counted on the sockets: this program interposes send/sendmsg/recv/recvmsg (libcoap
 * calls them through the PLT) and counts UDP payload bytes, as medwire's own counters do.
 */

/* The build hides symbols by default; these must be visible to interpose. */
#define INTERPOSE __attribute__((visibility("default")))

static unsigned long long bytes_io, datagrams_io;

typedef ssize_t send_fn(int, const void *, size_t, int);
typedef ssize_t sendmsg_fn(int, const struct msghdr *, int);
typedef ssize_t recv_fn(int, void *, size_t, int);
typedef ssize_t recvmsg_fn(int, struct msghdr *, int);

static void count(ssize_t n)
{
    if (n > 0) {
        bytes_io += (unsigned long long)n;
        datagrams_io++;
    }
}

INTERPOSE ssize_t send(int fd, const void *buf, size_t len, int flags)
{
    static send_fn *real;
    if (real == NULL) {
        *(void **)&real = dlsym(RTLD_NEXT, "send");
    }
    ssize_t n = real(fd, buf, len, flags);
    count(n);
    return n;
}

INTERPOSE ssize_t sendmsg(int fd, const struct msghdr *msg, int flags)
{
    static sendmsg_fn *real;
    if (real == NULL) {
        *(void **)&real = dlsym(RTLD_NEXT, "sendmsg");
    }
    ssize_t n = real(fd, msg, flags);
    count(n);
    return n;
}

INTERPOSE ssize_t recv(int fd, void *buf, size_t len, int flags)
{
    static recv_fn *real;
    if (real == NULL) {
        *(void **)&real = dlsym(RTLD_NEXT, "recv");
    }
    ssize_t n = real(fd, buf, len, flags);
    count(n);
    return n;
}

INTERPOSE ssize_t recvmsg(int fd, struct msghdr *msg, int flags)
{
    static recvmsg_fn *real;
    if (real == NULL) {
        *(void **)&real = dlsym(RTLD_NEXT, "recvmsg");
    }
    ssize_t n = real(fd, msg, flags);
    count(n);
    return n;
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static const char *arg(int argc, char **argv, const char *name, const char *dflt)
{
    for (int i = 2; i + 1 < argc; i++) {
        if (strcmp(argv[i], name) == 0) {
            return argv[i + 1];
        }
    }
    if (dflt == NULL) {
        fprintf(stderr, "bench-coap-load: %s is required\n", name);
        exit(2);
    }
    return dflt;
}

static unsigned long long acked, failed;
static int *outstanding; /* per session, indexed by the app data pointer */

static coap_response_t on_response(coap_session_t *s, const coap_pdu_t *sent,
                                   const coap_pdu_t *received, const coap_mid_t mid)
{
    (void)sent;
    (void)mid;
    int *out = coap_session_get_app_data(s);
    coap_pdu_code_t code = coap_pdu_get_code(received);
    if (code == COAP_RESPONSE_CODE(201) || code == COAP_RESPONSE_CODE(204)) {
        acked++;
    } else {
        failed++;
    }
    if (out != NULL && *out > 0) {
        (*out)--;
    }
    return COAP_RESPONSE_OK;
}

/* libcoap 4.3.1 has no call to choose the cipher suite: it sets OpenSSL's list itself. To offer
 * the suite medwire uses (ECDHE-ECDSA-AES128-CCM-8, RFC 7252's mandatory one), this program
 * interposes both setters and passes $MWB_CIPHERS instead when it is set. */
typedef int ctx_ciphers_fn(SSL_CTX *, const char *);
typedef int ssl_ciphers_fn(SSL *, const char *);

INTERPOSE int SSL_CTX_set_cipher_list(SSL_CTX *ctx, const char *list)
{
    static ctx_ciphers_fn *real;
    const char *want = getenv("MWB_CIPHERS");
    if (real == NULL) {
        *(void **)&real = dlsym(RTLD_NEXT, "SSL_CTX_set_cipher_list");
    }
    return real(ctx, want != NULL && want[0] != '\0' ? want : list);
}

INTERPOSE int SSL_set_cipher_list(SSL *ssl, const char *list)
{
    static ssl_ciphers_fn *real;
    const char *want = getenv("MWB_CIPHERS");
    if (real == NULL) {
        *(void **)&real = dlsym(RTLD_NEXT, "SSL_set_cipher_list");
    }
    return real(ssl, want != NULL && want[0] != '\0' ? want : list);
}

static char ca[512];

static coap_session_t *open_session(coap_context_t *ctx, const char *dir, int i, int port,
                                    coap_dtls_pki_t *pki, char *crt, char *key)
{
    coap_address_t dst;
    snprintf(crt, 512, "%s/dev-%03d.crt", dir, i);
    snprintf(key, 512, "%s/dev-%03d.key", dir, i);
    memset(pki, 0, sizeof *pki);
    pki->version = COAP_DTLS_PKI_SETUP_VERSION;
    pki->verify_peer_cert = 1;
    pki->check_common_ca = 1;
    pki->cert_chain_validation = 1;
    pki->cert_chain_verify_depth = 3;
    pki->client_sni = "gateway";
    pki->pki_key.key_type = COAP_PKI_KEY_PEM;
    pki->pki_key.key.pem.ca_file = ca;
    pki->pki_key.key.pem.public_cert = crt;
    pki->pki_key.key.pem.private_key = key;
    coap_address_init(&dst);
    dst.addr.sin.sin_family = AF_INET;
    dst.addr.sin.sin_port = htons((uint16_t)(port + 1));
    dst.addr.sin.sin_addr.s_addr = htonl(0x7f000001);
    dst.size = sizeof dst.addr.sin;
    coap_session_t *s = coap_new_client_session_pki(ctx, NULL, &dst, COAP_PROTO_DTLS, pki);
    if (s == NULL) {
        fprintf(stderr, "bench-coap-load: session %d failed\n", i);
        exit(1);
    }
    return s;
}

static unsigned long long seq;

static void post(coap_session_t *s, int dev)
{
    uint8_t tok[8];
    size_t toklen = 0;
    char body[160];
    uint8_t cf[4];
    coap_pdu_t *pdu = coap_new_pdu(COAP_MESSAGE_CON, COAP_REQUEST_CODE_POST, s);
    if (pdu == NULL) {
        exit(1);
    }
    coap_session_new_token(s, &toklen, tok);
    coap_add_token(pdu, toklen, tok);
    coap_add_option(pdu, COAP_OPTION_URI_PATH, 3, (const uint8_t *)"obs");
    coap_add_option(pdu, COAP_OPTION_CONTENT_FORMAT,
                    coap_encode_var_safe(cf, sizeof cf, COAP_MEDIATYPE_APPLICATION_JSON), cf);
    seq++;
    /* The same observation medwire sends: SpO2 (MDC 150456), 97 %, its time and sequence. */
    int n = snprintf(body, sizeof body,
                     "{\"device\":\"dev-%03d\",\"seq\":%llu,\"code\":150456,\"value\":%llu,"
                     "\"exp\":0,\"unit\":\"%%\",\"time_ms\":%llu}",
                     dev, seq, 90 + seq % 10, 1790000000000ull + seq);
    coap_add_data(pdu, (size_t)n, (const uint8_t *)body);
    if (coap_send(s, pdu) == COAP_INVALID_MID) {
        fprintf(stderr, "bench-coap-load: coap_send failed\n");
        exit(1);
    }
}

int main(int argc, char **argv)
{
    if (argc < 2 || (strcmp(argv[1], "load") != 0 && strcmp(argv[1], "handshakes") != 0 &&
                     strcmp(argv[1], "idle") != 0)) {
        fprintf(stderr, "usage: bench-coap-load load|handshakes ... (see the source's header)\n");
        return 2;
    }
    const char *dir = arg(argc, argv, "--dir", NULL);
    int port = atoi(arg(argc, argv, "--port", NULL));
    snprintf(ca, sizeof ca, "%s/ca/ca.crt", dir);
    coap_startup();
    coap_set_log_level(LOG_EMERG);
    coap_dtls_set_log_level(LOG_EMERG);
    coap_context_t *ctx = coap_new_context(NULL);
    if (ctx == NULL) {
        return 1;
    }
    coap_register_response_handler(ctx, on_response);

    if (strcmp(argv[1], "handshakes") == 0) {
        int k = atoi(arg(argc, argv, "--count", "100"));
        static char crt[512], key[512];
        coap_dtls_pki_t pki;
        int one = 0;
        double t0 = now_s();
        unsigned long long b0 = bytes_io, d0 = datagrams_io;
        for (int i = 0; i < k; i++) {
            coap_session_t *s = open_session(ctx, dir, 0, port, &pki, crt, key);
            coap_session_set_app_data(s, &one);
            unsigned long long want = acked + 1;
            one = 1;
            post(s, 0);
            double ts = now_s();
            while (acked < want && failed == 0 && now_s() - ts < 10) {
                coap_io_process(ctx, 50);
            }
            if (acked < want) {
                fprintf(stderr, "bench-coap-load: handshake %d did not complete\n", i);
                return 1;
            }
            coap_session_release(s);
            coap_io_process(ctx, COAP_IO_NO_WAIT);
        }
        double t = now_s() - t0;
        /* Each includes one POST and its response: subtract them with the load figures. */
        printf("handshakes_per_s %.1f bytes_per_handshake %.1f datagrams_per_handshake %.2f\n",
               k / t, (double)(bytes_io - b0) / k, (double)(datagrams_io - d0) / k);
        coap_free_context(ctx);
        coap_cleanup();
        return 0;
    }

    if (strcmp(argv[1], "idle") == 0) {
        int n = atoi(arg(argc, argv, "--n", "1000"));
        coap_session_t **ss = calloc((size_t)n, sizeof *ss);
        coap_dtls_pki_t *pki = calloc((size_t)n, sizeof *pki);
        char(*crt)[512] = calloc((size_t)n, 512);
        char(*key)[512] = calloc((size_t)n, 512);
        if (ss == NULL || pki == NULL || crt == NULL || key == NULL) {
            return 1;
        }
        for (int i = 0; i < n; i++) {
            int one = 1;
            unsigned long long want = acked + 1;
            ss[i] = open_session(ctx, dir, i % 100, port, &pki[i], crt[i], key[i]);
            coap_session_set_app_data(ss[i], NULL);
            post(ss[i], i % 100);
            double ts = now_s();
            while (acked < want && now_s() - ts < 10) {
                coap_io_process(ctx, 20);
            }
            if (acked < want) {
                fprintf(stderr, "bench-coap-load: session %d got no answer\n", i);
                return 1;
            }
            (void)one;
        }
        printf("ready %d\n", n);
        fflush(stdout);
        char buf[64];
        while (fgets(buf, sizeof buf, stdin) != NULL) {
        }
        return 0;
    }

    int n = atoi(arg(argc, argv, "--n", "1"));
    int window = atoi(arg(argc, argv, "--window", "16"));
    double seconds = atof(arg(argc, argv, "--seconds", "3"));
    double warmup = atof(arg(argc, argv, "--warmup", "1"));
    coap_session_t **ss = calloc((size_t)n, sizeof *ss);
    coap_dtls_pki_t *pki = calloc((size_t)n, sizeof *pki);
    char(*crt)[512] = calloc((size_t)n, 512);
    char(*key)[512] = calloc((size_t)n, 512);
    outstanding = calloc((size_t)n, sizeof *outstanding);
    if (ss == NULL || pki == NULL || crt == NULL || key == NULL || outstanding == NULL) {
        return 1;
    }
    for (int i = 0; i < n; i++) {
        ss[i] = open_session(ctx, dir, i, port, &pki[i], crt[i], key[i]);
        coap_session_set_app_data(ss[i], &outstanding[i]);
    }
    /* One POST per session first: handshakes done and /obs created before the clock starts. */
    for (int i = 0; i < n; i++) {
        outstanding[i] = 1;
        post(ss[i], i);
    }
    double t0 = now_s();
    while (acked < (unsigned long long)n && now_s() - t0 < 60) {
        coap_io_process(ctx, 10);
    }
    if (acked < (unsigned long long)n) {
        fprintf(stderr, "bench-coap-load: %llu of %d sessions answered\n", acked, n);
        return 1;
    }
    unsigned long long a0 = 0, b0 = 0, d0 = 0;
    int measuring = 0;
    t0 = now_s();
    double t;
    for (;;) {
        for (int i = 0; i < n; i++) {
            while (outstanding[i] < window) {
                outstanding[i]++;
                post(ss[i], i);
            }
        }
        coap_io_process(ctx, 10);
        t = now_s() - t0;
        if (!measuring && t >= warmup) {
            measuring = 1;
            a0 = acked;
            b0 = bytes_io;
            d0 = datagrams_io;
            t0 = now_s();
        } else if (measuring && t >= seconds) {
            break;
        }
    }
    coap_tls_library_t lib;
    SSL *ssl = coap_session_get_tls(ss[0], &lib);
    printf("acked_per_s %.1f bytes_per_ack %.2f datagrams_per_ack %.3f cipher %s failed %llu\n",
           (double)(acked - a0) / t, (double)(bytes_io - b0) / (double)(acked - a0),
           (double)(datagrams_io - d0) / (double)(acked - a0),
           ssl != NULL ? SSL_get_cipher_name(ssl) : "?", failed);
    for (int i = 0; i < n; i++) {
        coap_session_release(ss[i]);
    }
    coap_free_context(ctx);
    coap_cleanup();
    return 0;
}
