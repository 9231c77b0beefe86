/* SPDX-License-Identifier: Apache-2.0 */
/* bench_mqtt_load.c -- baseline: libmosquitto publishing JSON observations with QoS 1 over TLS
 * (client certificates) to a mosquitto broker, as an MQTT user would write it. */
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

#include <linux/tcp.h>
#include <mosquitto.h>

/*
 * bench-mqtt-load load --port P --dir PKI --n N --window W --seconds S [--warmup S]
 *     N clients (PKI/dev-000.crt ...), each keeping W QoS 1 PUBLISHes outstanding on
 *     obs/dev-NNN; a message counts once its PUBACK arrived (on_publish). Prints
 *     "acked_per_s X bytes_per_ack Y" where bytes are TLS bytes on the TCP sockets (TCP_INFO:
 *     bytes acked by the peer + bytes received; TCP/IP headers and bare ACKs not included).
 * bench-mqtt-load handshakes --port P --dir PKI --count K
 *     K connections one after the other: TLS handshake, CONNECT, one QoS 1 PUBLISH, DISCONNECT.
 * The broker checks the client certificate (require_certificate); the client checks the
 * broker's chain but not its host name (the test certificate names "gateway", not 127.0.0.1).
 */

typedef struct client {
    struct mosquitto *m;
    int outstanding;
    unsigned long long acked;
    int connected;
} client;

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
        fprintf(stderr, "bench-mqtt-load: %s is required\n", name);
        exit(2);
    }
    return dflt;
}

static void on_connect(struct mosquitto *m, void *obj, int rc)
{
    (void)m;
    if (rc != 0) {
        fprintf(stderr, "bench-mqtt-load: CONNACK %d\n", rc);
        exit(1);
    }
    ((client *)obj)->connected = 1;
}

static void on_publish(struct mosquitto *m, void *obj, int mid)
{
    (void)m;
    (void)mid;
    client *c = obj;
    c->acked++;
    c->outstanding--;
}

static unsigned long long seq;

static void publish(client *c, int dev)
{
    char topic[32], body[160];
    snprintf(topic, sizeof topic, "obs/dev-%03d", dev);
    seq++;
    /* The same observation medwire sends: SpO2 (MDC 150456), 97 %, its time and sequence. */
    int n = snprintf(body, sizeof body,
                     "{\"device\":\"dev-%03d\",\"seq\":%llu,\"code\":150456,\"value\":%llu,"
                     "\"exp\":0,\"unit\":\"%%\",\"time_ms\":%llu}",
                     dev, seq, 90 + seq % 10, 1790000000000ull + seq);
    int rc = mosquitto_publish(c->m, NULL, topic, n, body, 1, false);
    if (rc != MOSQ_ERR_SUCCESS) {
        fprintf(stderr, "bench-mqtt-load: publish: %s\n", mosquitto_strerror(rc));
        exit(1);
    }
    c->outstanding++;
}

static unsigned long long socket_bytes(struct mosquitto *m)
{
    struct tcp_info ti;
    socklen_t len = sizeof ti;
    int fd = mosquitto_socket(m);
    memset(&ti, 0, sizeof ti);
    if (fd < 0 || getsockopt(fd, IPPROTO_TCP, TCP_INFO, &ti, &len) != 0) {
        return 0;
    }
    return (unsigned long long)ti.tcpi_bytes_acked + (unsigned long long)ti.tcpi_bytes_received;
}

static char ca[512];

static void open_client(client *c, const char *dir, int i, int port)
{
    char crt[512], key[512], id[32];
    snprintf(crt, sizeof crt, "%s/dev-%03d.crt", dir, i);
    snprintf(key, sizeof key, "%s/dev-%03d.key", dir, i);
    snprintf(id, sizeof id, "dev-%03d", i);
    memset(c, 0, sizeof *c);
    c->m = mosquitto_new(id, true, c);
    if (c->m == NULL) {
        exit(1);
    }
    mosquitto_int_option(c->m, MOSQ_OPT_PROTOCOL_VERSION, MQTT_PROTOCOL_V311);
    mosquitto_max_inflight_messages_set(c->m, 0); /* no client-side cap: the window is ours */
    if (mosquitto_tls_set(c->m, ca, NULL, crt, key, NULL) != MOSQ_ERR_SUCCESS ||
        mosquitto_tls_opts_set(c->m, 1, "tlsv1.2", "ECDHE-ECDSA-AES128-CCM8") != MOSQ_ERR_SUCCESS ||
        mosquitto_tls_insecure_set(c->m, true) != MOSQ_ERR_SUCCESS) {
        fprintf(stderr, "bench-mqtt-load: TLS setup failed\n");
        exit(1);
    }
    mosquitto_connect_callback_set(c->m, on_connect);
    mosquitto_publish_callback_set(c->m, on_publish);
    int rc = mosquitto_connect(c->m, "127.0.0.1", port, 60);
    if (rc != MOSQ_ERR_SUCCESS) {
        fprintf(stderr, "bench-mqtt-load: connect: %s\n", mosquitto_strerror(rc));
        exit(1);
    }
}

/* One pass of the caller-driven loop libmosquitto documents (mosquitto_loop_read/write/misc). */
static void drive(client *cs, int n, struct pollfd *pfd)
{
    for (int i = 0; i < n; i++) {
        pfd[i].fd = mosquitto_socket(cs[i].m);
        pfd[i].events = POLLIN | (mosquitto_want_write(cs[i].m) ? POLLOUT : 0);
        pfd[i].revents = 0;
    }
    (void)poll(pfd, (nfds_t)n, 10);
    for (int i = 0; i < n; i++) {
        int rc = MOSQ_ERR_SUCCESS;
        if (pfd[i].revents & (POLLIN | POLLERR | POLLHUP)) {
            rc = mosquitto_loop_read(cs[i].m, 1);
        }
        if (rc == MOSQ_ERR_SUCCESS && mosquitto_want_write(cs[i].m)) {
            rc = mosquitto_loop_write(cs[i].m, 1);
        }
        if (rc == MOSQ_ERR_SUCCESS) {
            rc = mosquitto_loop_misc(cs[i].m);
        }
        if (rc != MOSQ_ERR_SUCCESS) {
            fprintf(stderr, "bench-mqtt-load: client %d: %s\n", i, mosquitto_strerror(rc));
            exit(1);
        }
    }
}

int main(int argc, char **argv)
{
    if (argc < 2 || (strcmp(argv[1], "load") != 0 && strcmp(argv[1], "handshakes") != 0)) {
        fprintf(stderr, "usage: bench-mqtt-load load|handshakes ... (see the source's header)\n");
        return 2;
    }
    const char *dir = arg(argc, argv, "--dir", NULL);
    int port = atoi(arg(argc, argv, "--port", NULL));
    snprintf(ca, sizeof ca, "%s/ca/ca.crt", dir);
    mosquitto_lib_init();

    if (strcmp(argv[1], "handshakes") == 0) {
        int k = atoi(arg(argc, argv, "--count", "100"));
        double t0 = now_s();
        unsigned long long bytes = 0;
        for (int i = 0; i < k; i++) {
            client c;
            struct pollfd pfd;
            open_client(&c, dir, 0, port);
            while (!c.connected) {
                drive(&c, 1, &pfd);
            }
            publish(&c, 0);
            while (c.acked == 0) {
                drive(&c, 1, &pfd);
            }
            bytes += socket_bytes(c.m);
            mosquitto_disconnect(c.m);
            mosquitto_destroy(c.m);
        }
        double t = now_s() - t0;
        printf("handshakes_per_s %.1f bytes_per_handshake %.1f\n", k / t, (double)bytes / k);
        mosquitto_lib_cleanup();
        return 0;
    }

    int n = atoi(arg(argc, argv, "--n", "1"));
    int window = atoi(arg(argc, argv, "--window", "16"));
    double seconds = atof(arg(argc, argv, "--seconds", "3"));
    double warmup = atof(arg(argc, argv, "--warmup", "1"));
    client *cs = calloc((size_t)n, sizeof *cs);
    struct pollfd *pfd = calloc((size_t)n, sizeof *pfd);
    if (cs == NULL || pfd == NULL) {
        return 1;
    }
    for (int i = 0; i < n; i++) {
        open_client(&cs[i], dir, i, port);
    }
    double t0 = now_s();
    for (;;) {
        int up = 0;
        for (int i = 0; i < n; i++) {
            up += cs[i].connected;
        }
        if (up == n) {
            break;
        }
        drive(cs, n, pfd);
        if (now_s() - t0 > 60) {
            fprintf(stderr, "bench-mqtt-load: %d of %d connected\n", up, n);
            return 1;
        }
    }
    unsigned long long a0 = 0, b0 = 0;
    int measuring = 0;
    double t;
    t0 = now_s();
    for (;;) {
        for (int i = 0; i < n; i++) {
            while (cs[i].outstanding < window) {
                publish(&cs[i], i);
            }
        }
        drive(cs, n, pfd);
        t = now_s() - t0;
        if (!measuring && t >= warmup) {
            measuring = 1;
            for (int i = 0; i < n; i++) {
                a0 += cs[i].acked;
                b0 += socket_bytes(cs[i].m);
            }
            t0 = now_s();
        } else if (measuring && t >= seconds) {
            break;
        }
    }
    unsigned long long a1 = 0, b1 = 0;
    for (int i = 0; i < n; i++) {
        a1 += cs[i].acked;
        b1 += socket_bytes(cs[i].m);
    }
    printf("acked_per_s %.1f bytes_per_ack %.2f\n", (double)(a1 - a0) / t,
           (double)(b1 - b0) / (double)(a1 - a0));
    for (int i = 0; i < n; i++) {
        mosquitto_disconnect(cs[i].m);
        mosquitto_destroy(cs[i].m);
    }
    mosquitto_lib_cleanup();
    return 0;
}
