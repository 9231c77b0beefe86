/* SPDX-License-Identifier: Apache-2.0 */
/* mllp.c -- the MLLP sender (HL7 v2 Minimal Lower Layer Protocol over TCP): one thread, one
 * connection, one message in flight; custody of a message ends only with its AA or CA. */
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <wolfssl/options.h> /* first: the library's build settings */
#include <wolfssl/ssl.h>
#include <wolfssl/wolfcrypt/ecc.h>

#include "hl7.h"
#include "log.h"
#include "mllp.h"

#define VT 0x0b /* start of block */
#define FS 0x1c /* end of block, followed by CR */
#define CR 0x0d

/* The largest acknowledgement read: an ACK is a few hundred bytes; more is not one. */
#define ACK_MAX            65536
#define BACKOFF_FIRST_MS   500u
#define BACKOFF_MAX_MS     30000u
#define CONNECT_TIMEOUT_MS 5000
#define PARKED_RING        64

struct mllp {
    char url[300], host[256], port[16];
    outbox_t *ob;
    uint32_t ack_timeout_ms;
    unsigned batch_max; /* messages merged into one ORU^R01 at most (1: none merged) */
    pthread_t thread;
    bool started;
    int fd;
    bool tls;
    WOLFSSL_CTX *tls_ctx; /* mllps:// only */
    bool tls_inited;      /* wolfSSL_Init succeeded: wolfSSL_Cleanup at the end */
    WOLFSSL *ssl;         /* the connection's TLS session, while connected */
    unsigned seed;
    pthread_mutex_t mu; /* guards stop's wait and the parked ring */
    pthread_cond_t cv;
    bool stop;
    mllp_parked_t parked_ring[PARKED_RING];
    size_t nparked;
    _Atomic uint64_t sent, acked, retried, parked, connects_failed, frames;
    _Atomic bool down;
};

bool mllp_parse_url(const char *url, char *host, size_t host_size, char *port, size_t port_size,
                    bool *out_tls)
{
    static const char plain[] = "mllp://", secure[] = "mllps://";
    const char *h;
    if (strncmp(url, plain, sizeof plain - 1) == 0)
        h = url + sizeof plain - 1;
    else if (strncmp(url, secure, sizeof secure - 1) == 0)
        h = url + sizeof secure - 1;
    else
        return false;
    const char *colon;
    size_t hl;
    if (*h == '[') {
        const char *close = strchr(h, ']');
        if (close == NULL || close[1] != ':')
            return false;
        h++;
        hl = (size_t)(close - h);
        colon = close + 1;
    } else {
        colon = strrchr(h, ':');
        if (colon == NULL || memchr(h, ':', (size_t)(colon - h)) != NULL)
            return false;
        hl = (size_t)(colon - h);
    }
    const char *p = colon + 1;
    size_t pl = strlen(p);
    if (hl == 0 || hl >= host_size || pl == 0 || pl >= port_size || pl > 5 ||
        strspn(p, "0123456789") != pl || strtol(p, NULL, 10) < 1 || strtol(p, NULL, 10) > 65535)
        return false;
    memcpy(host, h, hl);
    host[hl] = '\0';
    memcpy(port, p, pl + 1);
    if (out_tls != NULL)
        *out_tls = url[4] == 's';
    return true;
}

static bool stopping(mllp_t *m)
{
    pthread_mutex_lock(&m->mu);
    bool s = m->stop;
    pthread_mutex_unlock(&m->mu);
    return s;
}

/* Sleeps @p ms unless told to stop; false when stopping. */
static bool pause_ms(mllp_t *m, uint32_t ms)
{
    struct timespec until;
    clock_gettime(CLOCK_MONOTONIC, &until);
    until.tv_sec += ms / 1000u;
    until.tv_nsec += (long)(ms % 1000u) * 1000000L;
    if (until.tv_nsec >= 1000000000L) {
        until.tv_sec++;
        until.tv_nsec -= 1000000000L;
    }
    pthread_mutex_lock(&m->mu);
    while (!m->stop && pthread_cond_timedwait(&m->cv, &m->mu, &until) != ETIMEDOUT)
        ;
    bool go_on = !m->stop;
    pthread_mutex_unlock(&m->mu);
    return go_on;
}

/* The next wait: @p *next (0.5 s first) with jitter between half and all of it, so that many
 * gateways do not all come back at once; then doubles, up to 30 s. */
static uint32_t backoff(mllp_t *m, uint32_t *next)
{
    uint32_t d = *next ? *next : BACKOFF_FIRST_MS;
    *next = d >= BACKOFF_MAX_MS / 2 ? BACKOFF_MAX_MS : d * 2;
    return d / 2 + (uint32_t)rand_r(&m->seed) % (d / 2 + 1);
}

static void disconnect(mllp_t *m)
{
    if (m->ssl != NULL) {
        (void)wolfSSL_shutdown(m->ssl); /* best effort: the socket is non-blocking */
        wolfSSL_free(m->ssl);
        m->ssl = NULL;
    }
    if (m->fd >= 0)
        close(m->fd);
    m->fd = -1;
}

static uint64_t mono_ms(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (uint64_t)t.tv_sec * 1000u + (uint64_t)t.tv_nsec / 1000000u;
}

/* Waits for @p events on the connection until @p deadline (monotonic ms), in slices, so that
 * a stop is noticed; false on timeout, error or stop. */
static bool wait_fd(mllp_t *m, short events, uint64_t deadline)
{
    for (;;) {
        uint64_t now = mono_ms();
        if (now >= deadline || stopping(m))
            return false;
        uint64_t left = deadline - now;
        struct pollfd p = {.fd = m->fd, .events = events};
        int r = poll(&p, 1, left > 200 ? 200 : (int)left);
        if (r < 0 && errno != EINTR)
            return false;
        if (r > 0)
            return (p.revents & events) != 0 || (p.revents & (POLLHUP | POLLERR)) != 0;
    }
}

/* Waits as the last TLS call asked (read or write); false on any other error. */
static bool tls_wait(mllp_t *m, int ret, uint64_t deadline)
{
    int err = wolfSSL_get_error(m->ssl, ret);
    if (err == WOLFSSL_ERROR_WANT_READ)
        return wait_fd(m, POLLIN, deadline);
    if (err == WOLFSSL_ERROR_WANT_WRITE)
        return wait_fd(m, POLLOUT, deadline);
    return false;
}

/* The TLS handshake on the connected socket: the listener's certificate must chain to the CA
 * and name HOST; a failure is logged once per outage with wolfSSL's reason. */
static bool tls_handshake(mllp_t *m)
{
    m->ssl = wolfSSL_new(m->tls_ctx);
    if (m->ssl == NULL || wolfSSL_set_fd(m->ssl, m->fd) != WOLFSSL_SUCCESS ||
        wolfSSL_check_domain_name(m->ssl, m->host) != WOLFSSL_SUCCESS) {
        disconnect(m);
        return false;
    }
    (void)wolfSSL_UseSNI(m->ssl, WOLFSSL_SNI_HOST_NAME, m->host, (unsigned short)strlen(m->host));
    uint64_t deadline = mono_ms() + CONNECT_TIMEOUT_MS;
    for (;;) {
        int r = wolfSSL_connect(m->ssl);
        if (r == WOLFSSL_SUCCESS)
            return true;
        if (!tls_wait(m, r, deadline)) {
            int err = wolfSSL_get_error(m->ssl, r);
            char reason[WOLFSSL_MAX_ERROR_SZ];
            wolfSSL_ERR_error_string_n((unsigned long)err, reason, sizeof reason);
            if (!atomic_load(&m->down))
                gwlog(GWLOG_WARN, "hl7_tls_failed", "s:destination", m->url, "i:code", (long)err,
                      "s:reason", reason, GWLOG_END);
            disconnect(m);
            return false;
        }
    }
}

static bool connect_peer(mllp_t *m)
{
    struct addrinfo hints, *res = NULL;
    memset(&hints, 0, sizeof hints);
    hints.ai_socktype = SOCK_STREAM;
    if (getaddrinfo(m->host, m->port, &hints, &res) != 0 || res == NULL)
        return false;
    bool ok = false;
    for (struct addrinfo *a = res; a && !ok; a = a->ai_next) {
        m->fd = socket(a->ai_family, a->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (m->fd < 0)
            continue;
        int one = 1;
        (void)setsockopt(m->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        if (connect(m->fd, a->ai_addr, a->ai_addrlen) == 0)
            ok = true;
        else if (errno == EINPROGRESS && wait_fd(m, POLLOUT, mono_ms() + CONNECT_TIMEOUT_MS)) {
            int err = 0;
            socklen_t len = sizeof err;
            ok = getsockopt(m->fd, SOL_SOCKET, SO_ERROR, &err, &len) == 0 && err == 0;
        }
        if (!ok)
            disconnect(m);
    }
    freeaddrinfo(res);
    return ok && (!m->tls || tls_handshake(m));
}

static bool write_all(mllp_t *m, const unsigned char *p, size_t n, uint64_t deadline)
{
    while (m->ssl != NULL && n > 0) {
        int chunk = n > 16384 ? 16384 : (int)n;
        int w = wolfSSL_write(m->ssl, p, chunk);
        if (w > 0) {
            p += w;
            n -= (size_t)w;
        } else if (!tls_wait(m, w, deadline)) {
            return false;
        }
    }
    while (n > 0) {
        ssize_t w = send(m->fd, p, n, MSG_NOSIGNAL);
        if (w > 0) {
            p += w;
            n -= (size_t)w;
        } else if (w < 0 && (errno == EAGAIN || errno == EINTR)) {
            if (!wait_fd(m, POLLOUT, deadline))
                return false;
        } else {
            return false;
        }
    }
    return true;
}

/* Reads one framed answer, <VT>...<FS><CR>, into @p buf (without the framing); every byte is
 * checked against the room left. False on a timeout, a closed connection, a block that does not
 * start with VT, or one longer than ACK_MAX. */
static bool read_frame(mllp_t *m, char *buf, size_t *out_len, uint64_t deadline)
{
    size_t n = 0;
    bool started = false, after_fs = false;
    for (;;) {
        unsigned char chunk[4096];
        ssize_t r;
        if (m->ssl != NULL) {
            int t = wolfSSL_read(m->ssl, chunk, (int)sizeof chunk);
            if (t <= 0) {
                if (tls_wait(m, t, deadline))
                    continue;
                return false;
            }
            r = t;
        } else {
            r = recv(m->fd, chunk, sizeof chunk, 0);
        }
        if (r == 0)
            return false;
        if (r < 0) {
            if ((errno == EAGAIN || errno == EINTR) && wait_fd(m, POLLIN, deadline))
                continue;
            return false;
        }
        for (ssize_t i = 0; i < r; i++) {
            unsigned char c = chunk[i];
            if (!started) {
                if (c != VT)
                    return false;
                started = true;
                continue;
            }
            if (after_fs) {
                if (c != CR)
                    return false;
                /* Anything after the frame would be an answer to nothing we sent. */
                *out_len = n;
                return i + 1 == r;
            }
            if (c == FS) {
                after_fs = true;
                continue;
            }
            if (n >= ACK_MAX - 1)
                return false;
            buf[n++] = (char)c;
        }
    }
}

static void note_parked(mllp_t *m, const outbox_row_t *row, const char *code)
{
    pthread_mutex_lock(&m->mu);
    if (m->nparked < PARKED_RING) {
        mllp_parked_t *p = &m->parked_ring[m->nparked++];
        p->id = row->id;
        snprintf(p->device, sizeof p->device, "%s", row->device);
        snprintf(p->code, sizeof p->code, "%s", code);
    }
    pthread_mutex_unlock(&m->mu);
}

/* The control id a frame was sent with (its MSH-10), to match the acknowledgement against. */
static void control_id_of(const char *payload, size_t len, char *out, size_t size)
{
    out[0] = '\0';
    const char *p = payload, *end = payload + len;
    for (int field = 0; field < 9 && p < end; field++) {
        const char *bar = memchr(p, '|', (size_t)(end - p));
        if (bar == NULL)
            return;
        p = bar + 1;
    }
    const char *bar = memchr(p, '|', (size_t)(end - p));
    size_t n = bar ? (size_t)(bar - p) : 0;
    if (n < size) {
        memcpy(out, p, n);
        out[n] = '\0';
    }
}

/* One attempt at @p payload: 1 accepted, 0 rejected (AE, AR, CE, CR), -1 the connection failed,
 * timed out or answered something that is not an acknowledgement of it. */
static int send_payload(mllp_t *m, const char *payload, size_t len, size_t count, char *ack_buf,
                        char *code)
{
    uint64_t deadline = mono_ms() + m->ack_timeout_ms;
    /* One write for the whole frame: in three, Nagle's algorithm held the last two back until
     * the listener's delayed ACK, 40 ms a message. */
    unsigned char *frame = malloc(len + 3);
    if (frame == NULL)
        return -1;
    frame[0] = VT;
    memcpy(frame + 1, payload, len);
    frame[len + 1] = FS;
    frame[len + 2] = CR;
    bool written = write_all(m, frame, len + 3, deadline);
    free(frame);
    if (!written)
        return -1;
    atomic_fetch_add(&m->sent, count);
    atomic_fetch_add(&m->frames, 1);
    size_t n = 0;
    if (!read_frame(m, ack_buf, &n, deadline))
        return -1;
    hl7_ack_t ack;
    char want[HL7_CONTROL_ID_MAX];
    control_id_of(payload, len, want, sizeof want);
    if (!hl7_parse_ack(ack_buf, n, &ack) ||
        (ack.control_id[0] && strcmp(ack.control_id, want) != 0))
        return -1;
    snprintf(code, 3, "%s", ack.code);
    return hl7_ack_accepts(ack.code) ? 1 : 0;
}

static int send_row(mllp_t *m, const outbox_row_t *row, char *ack_buf, char *code)
{
    return send_payload(m, row->payload, row->len, 1, ack_buf, code);
}

/* How many of @p rows (the oldest first) go in one ORU^R01 with rows[0]: the following rows of
 * the same device, never tried before, that hl7_mergeable allows, up to the first row of that
 * device that cannot join (so that a device's messages keep their order). Rows of other
 * devices are passed over (they wait for a later frame); the indexes go to @p pick. */
static size_t group(const mllp_t *m, const outbox_row_t *rows, size_t n, size_t *pick)
{
    size_t k = 0;
    pick[k++] = 0;
    if (rows[0].attempts != 0)
        return k;
    for (size_t i = 1; i < n && k < m->batch_max; i++) {
        if (strcmp(rows[i].device, rows[0].device) != 0)
            continue;
        if (rows[i].attempts != 0 ||
            !hl7_mergeable(rows[0].payload, rows[0].len, rows[i].payload, rows[i].len))
            break;
        pick[k++] = i;
    }
    return k;
}

/* Sends rows[pick[0..k)] as one merged ORU^R01: 1 all delivered, 0 rejected or not mergeable
 * after all (then they go one by one), -1 a connection failure. */
static int send_group(mllp_t *m, const outbox_row_t *rows, const size_t *pick, size_t k,
                      char *ack_buf)
{
    const char *msgs[HL7_MERGE_MAX];
    size_t lens[HL7_MERGE_MAX], total = 64;
    for (size_t i = 0; i < k; i++) {
        msgs[i] = rows[pick[i]].payload;
        lens[i] = rows[pick[i]].len;
        total += lens[i];
    }
    char *merged = malloc(total);
    if (merged == NULL)
        return 0;
    size_t len = hl7_merge(msgs, lens, k, merged, total);
    int r = 0;
    char code[3] = "";
    if (len > 0)
        r = send_payload(m, merged, len, k, ack_buf, code);
    free(merged);
    if (r == 1) {
        for (size_t i = 0; i < k; i++)
            (void)outbox_delivered(m->ob, rows[pick[i]].id);
        atomic_fetch_add(&m->acked, k);
    } else {
        atomic_fetch_add(&m->retried, k);
    }
    return r;
}

/* Connects, and says so in the log when the destination goes down or comes back. */
static bool connect_and_report(mllp_t *m)
{
    if (!connect_peer(m)) {
        if (!atomic_exchange(&m->down, true))
            gwlog(GWLOG_WARN, "hl7_destination_down", "s:destination", m->url, "s:reason",
                  "cannot connect; messages wait in the outbox", GWLOG_END);
        atomic_fetch_add(&m->connects_failed, 1);
        return false;
    }
    if (atomic_exchange(&m->down, false))
        gwlog(GWLOG_INFO, "hl7_destination_up", "s:destination", m->url, GWLOG_END);
    return true;
}

/* Sends @p row alone until it is delivered, parked, taken over by another gateway, or the
 * sender stops. */
static bool send_alone(mllp_t *m, outbox_row_t *row, char *ack_buf, uint32_t *conn_backoff)
{
    uint32_t reject_backoff = 0;
    unsigned attempts = row->attempts;
    while (!stopping(m)) {
        if (m->fd < 0) {
            if (!connect_and_report(m)) {
                pause_ms(m, backoff(m, conn_backoff));
                continue;
            }
            *conn_backoff = 0;
        }
        if (!outbox_hold(m->ob, row))
            return false; /* taken over while this sender waited: left to its new holder */
        char code[3] = "";
        int r = send_row(m, row, ack_buf, code);
        if (r == 1) {
            (void)outbox_delivered(m->ob, row->id);
            atomic_fetch_add(&m->acked, 1);
            return true;
        }
        atomic_fetch_add(&m->retried, 1);
        if (r < 0) {
            /* The stream's state is unknown: start again on a new connection, and send the
             * same message (same control id) again. */
            disconnect(m);
            pause_ms(m, backoff(m, conn_backoff));
            continue;
        }
        attempts++;
        if (attempts >= MLLP_MAX_REJECTS) {
            (void)outbox_retry(m->ob, row->id, attempts, 0);
            (void)outbox_park(m->ob, row->id);
            atomic_fetch_add(&m->parked, 1);
            note_parked(m, row, code);
            return true;
        }
        uint32_t wait = backoff(m, &reject_backoff);
        struct timespec now;
        clock_gettime(CLOCK_REALTIME, &now);
        (void)outbox_retry(m->ob, row->id, attempts,
                           (uint64_t)now.tv_sec * 1000u + (uint64_t)now.tv_nsec / 1000000u + wait);
        row->attempts = attempts;
        pause_ms(m, wait);
    }
    return true;
}

/* The rows read ahead per turn, among which a device's next messages are merged. */
#define READ_AHEAD 256

static void *run(void *arg)
{
    mllp_t *m = arg;
    char *ack_buf = malloc(ACK_MAX);
    outbox_row_t *rows = calloc(READ_AHEAD, sizeof *rows);
    size_t *pick = calloc(READ_AHEAD, sizeof *pick);
    uint32_t conn_backoff = 0;
    uint64_t next_connect = 0;
    while (ack_buf && rows && pick && !stopping(m)) {
        size_t n = outbox_next_batch(m->ob, 200, rows, m->batch_max > 1 ? READ_AHEAD : 1);
        if (n == 0) {
            /* Idle: stay connected, so that /healthz knows whether the destination is there
             * before there is anything to send. */
            if (m->fd < 0 && mono_ms() >= next_connect) {
                if (connect_and_report(m))
                    conn_backoff = 0;
                else
                    next_connect = mono_ms() + backoff(m, &conn_backoff);
            }
            continue;
        }
        size_t k = group(m, rows, n, pick);
        int r = -2;
        if (k > 1) {
            if (m->fd < 0 && !connect_and_report(m)) {
                pause_ms(m, backoff(m, &conn_backoff));
            } else {
                conn_backoff = 0;
                bool held = true;
                for (size_t i = 0; i < k && held; i++)
                    held = outbox_hold(m->ob, &rows[pick[i]]);
                /* One taken over: each goes alone, which leaves that one to its new holder. */
                r = held ? send_group(m, rows, pick, k, ack_buf) : 0;
                if (r < 0) {
                    disconnect(m);
                    pause_ms(m, backoff(m, &conn_backoff));
                }
            }
        }
        /* One message; or a merged one the listener rejected: each of them goes alone, in
         * order, so that a message it refuses is parked by itself and the others follow. */
        /* A row another gateway took over ends the turn: what follows it is claimed again,
         * in order, at the next. */
        if (k == 1)
            (void)send_alone(m, &rows[0], ack_buf, &conn_backoff);
        for (size_t i = 0; r == 0 && i < k && !stopping(m); i++)
            if (!send_alone(m, &rows[pick[i]], ack_buf, &conn_backoff))
                break;
        for (size_t i = 0; i < n; i++)
            outbox_row_free(&rows[i]);
    }
    free(pick);
    free(rows);
    free(ack_buf);
    disconnect(m);
    /* wolfSSL as Debian builds it (FP_ECC) keeps per thread the tables of the points it
     * multiplied (the listener's keys, some 0.8 MB each); this thread's go with it. */
    if (m->tls)
        wc_ecc_fp_free();
    return NULL;
}

/* The TLS client context of mllps://: TLS 1.2 or later, the listener verified against the CA. */
static bool tls_setup(mllp_t *m, const mllp_tls_t *tls, char *why, size_t why_size)
{
    if (tls == NULL || tls->ca_file == NULL) {
        snprintf(why, why_size,
                 "mllps:// needs --hl7-ca FILE, the CA of the listener's certificate");
        return false;
    }
    if ((tls->cert_file == NULL) != (tls->key_file == NULL)) {
        snprintf(why, why_size,
                 "--hl7-cert and --hl7-key go together (the client certificate and "
                 "its key)");
        return false;
    }
    if (wolfSSL_Init() != WOLFSSL_SUCCESS) {
        snprintf(why, why_size, "cannot initialise wolfSSL for the MLLP sender");
        return false;
    }
    m->tls_inited = true;
    if ((m->tls_ctx = wolfSSL_CTX_new(wolfSSLv23_client_method())) == NULL ||
        wolfSSL_CTX_SetMinVersion(m->tls_ctx, WOLFSSL_TLSV1_2) != WOLFSSL_SUCCESS) {
        snprintf(why, why_size, "cannot set up TLS for the MLLP sender");
        return false;
    }
    wolfSSL_CTX_set_verify(m->tls_ctx, WOLFSSL_VERIFY_PEER, NULL);
    if (wolfSSL_CTX_load_verify_locations(m->tls_ctx, tls->ca_file, NULL) != WOLFSSL_SUCCESS) {
        snprintf(why, why_size, "--hl7-ca %s: cannot load it as PEM CA certificates", tls->ca_file);
        return false;
    }
    if (tls->cert_file != NULL &&
        wolfSSL_CTX_use_certificate_chain_file(m->tls_ctx, tls->cert_file) != WOLFSSL_SUCCESS) {
        snprintf(why, why_size, "--hl7-cert %s: cannot load it as a PEM certificate",
                 tls->cert_file);
        return false;
    }
    if (tls->key_file != NULL &&
        (wolfSSL_CTX_use_PrivateKey_file(m->tls_ctx, tls->key_file, WOLFSSL_FILETYPE_PEM) !=
             WOLFSSL_SUCCESS ||
         wolfSSL_CTX_check_private_key(m->tls_ctx) != WOLFSSL_SUCCESS)) {
        snprintf(why, why_size, "--hl7-key %s: cannot load it, or it is not the key of --hl7-cert",
                 tls->key_file);
        return false;
    }
    return true;
}

mllp_t *mllp_start(const char *url, const mllp_tls_t *tls, outbox_t *ob, uint32_t ack_timeout_ms,
                   unsigned batch_max, char *why, size_t why_size)
{
    mllp_t *m = calloc(1, sizeof *m);
    if (m == NULL) {
        snprintf(why, why_size, "out of memory");
        return NULL;
    }
    m->fd = -1;
    if (!mllp_parse_url(url, m->host, sizeof m->host, m->port, sizeof m->port, &m->tls)) {
        snprintf(why, why_size, "--hl7 must be mllp://HOST:PORT or mllps://HOST:PORT: %s", url);
        free(m);
        return NULL;
    }
    if (m->tls && !tls_setup(m, tls, why, why_size)) {
        if (m->tls_ctx != NULL)
            wolfSSL_CTX_free(m->tls_ctx);
        if (m->tls_inited)
            wolfSSL_Cleanup();
        free(m);
        return NULL;
    }
    snprintf(m->url, sizeof m->url, "%s", url);
    m->ob = ob;
    m->ack_timeout_ms = ack_timeout_ms ? ack_timeout_ms : MLLP_ACK_TIMEOUT_MS;
    m->batch_max = batch_max == 0 ? 1 : batch_max > HL7_MERGE_MAX ? HL7_MERGE_MAX : batch_max;
    m->seed = (unsigned)time(NULL) ^ (unsigned)getpid();
    pthread_mutex_init(&m->mu, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&m->cv, &ca);
    pthread_condattr_destroy(&ca);
    if (pthread_create(&m->thread, NULL, run, m) != 0) {
        snprintf(why, why_size, "cannot start the MLLP sender thread");
        mllp_stop(&m);
        return NULL;
    }
    m->started = true;
    return m;
}

void mllp_stop(mllp_t **pm)
{
    mllp_t *m = *pm;
    if (m == NULL)
        return;
    if (m->started) {
        pthread_mutex_lock(&m->mu);
        m->stop = true;
        pthread_cond_broadcast(&m->cv);
        pthread_mutex_unlock(&m->mu);
        outbox_wake(m->ob);
        pthread_join(m->thread, NULL);
    }
    disconnect(m);
    if (m->tls_ctx != NULL)
        wolfSSL_CTX_free(m->tls_ctx);
    /* wolfSSL counts its initialisations: this one's share of its global state goes now, so
     * that nothing of it is left at exit. */
    if (m->tls_inited)
        wolfSSL_Cleanup();
    pthread_cond_destroy(&m->cv);
    pthread_mutex_destroy(&m->mu);
    free(m);
    *pm = NULL;
}

void mllp_stats(mllp_t *m, mllp_stats_t *out)
{
    out->sent = atomic_load(&m->sent);
    out->acked = atomic_load(&m->acked);
    out->retried = atomic_load(&m->retried);
    out->parked = atomic_load(&m->parked);
    out->connects_failed = atomic_load(&m->connects_failed);
    out->frames = atomic_load(&m->frames);
    out->down = atomic_load(&m->down);
}

size_t mllp_take_parked(mllp_t *m, mllp_parked_t *out, size_t max)
{
    pthread_mutex_lock(&m->mu);
    size_t n = m->nparked < max ? m->nparked : max;
    memcpy(out, m->parked_ring, n * sizeof *out);
    memmove(m->parked_ring, m->parked_ring + n, (m->nparked - n) * sizeof *out);
    m->nparked -= n;
    pthread_mutex_unlock(&m->mu);
    return n;
}
