/* SPDX-License-Identifier: Apache-2.0 */
/* metrics.c -- the reference gateway's Prometheus endpoint (GNU libmicrohttpd), served from the
 * program's own loop. */
#define _GNU_SOURCE /* open_memstream */
#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <microhttpd.h>

#include "log.h"
#include "metrics.h"

/* Threads: none of MHD's. The daemon runs in "external polling" mode with
 * epoll (MHD_USE_EPOLL without MHD_USE_INTERNAL_POLLING_THREAD): its one epoll
 * descriptor sits in the program's poll() beside the gateway's socket, and
 * MHD_run() handles HTTP on the same thread that calls mw_gateway_poll. The
 * library is not thread-safe, and this way a scrape reads the statistics
 * directly, consistent as of the end of the last poll, with no lock and no
 * copy. A scrape is a few kilobytes rendered in microseconds: it delays the
 * gateway's loop less than one DTLS handshake does. */
/* Admission. Scrapers are few and quick (one request, a few kilobytes), so the danger is not
 * load but clients that connect and then say nothing, or trickle a request byte by byte:
 * MHD keeps each until its timeout, and while the limit is reached it accepts no one, so
 * 8 such clients used to keep a scraper waiting for as long as they liked. Now:
 *  - HTTP_MAX_CONNECTIONS at once (each at most HTTP_CONNECTION_MEMORY): bounded memory and
 *    descriptors;
 *  - above HTTP_MAX_CONNECTIONS - HTTP_SPARE, the connections idle longest (no complete
 *    request since they opened, or since their last one) are closed, so a newcomer always
 *    finds a place, as on the control socket;
 *  - HTTP_TIMEOUT_S of silence closes any connection, so a quiet flood also drains by itself.
 * No limit per client address (MHD_OPTION_PER_IP_CONNECTION_LIMIT): every local client
 * shares 127.0.0.1, so such a limit would shut a scraper on this host out together with a
 * local flood; shedding the idle keeps room for whoever comes next, from any address. */
#define HTTP_MAX_CONNECTIONS   64
#define HTTP_SPARE             4
#define HTTP_TIMEOUT_S         10
#define HTTP_CONNECTION_MEMORY 32768
#define HTTP_BACKLOG           64

struct conn {
    struct MHD_Connection *c; /* NULL: a free place */
    uint64_t active_ms;       /* opened, or its last request arrived */
    bool shed;                /* shut down by us; MHD closes it on its next run */
};

struct metrics {
    struct MHD_Daemon *d;
    mw_gateway_t *gw;
    int fd;          /* MHD's epoll descriptor */
    int listen_fd;   /* ours, handed to MHD (which closes it) */
    uint64_t now_ms; /* as of the current metrics_service */
    unsigned open;   /* tracked connections, shed ones included */
    unsigned shed;   /* of which shut down, waiting for MHD to close them */
    struct conn conns[HTTP_MAX_CONNECTIONS];
    metrics_hl7_fn *hl7; /* NULL: no --hl7 */
    void *hl7_ctx;
};

static const char CONTENT_TYPE[] = "text/plain; version=0.0.4; charset=utf-8";

static void help(FILE *f, const char *name, const char *type, const char *text)
{
    fprintf(f, "# HELP %s %s\n# TYPE %s %s\n", name, text, name, type);
}

static void one(FILE *f, const char *name, const char *type, const char *text, uint64_t v)
{
    help(f, name, type, text);
    fprintf(f, "%s %llu\n", name, (unsigned long long)v);
}

static void put_hl7(FILE *f, const metrics_hl7_t *h, size_t n);

char *metrics_render(const mw_gateway_stats_t *st, size_t *out_len)
{
    return metrics_render_with(st, NULL, 0, out_len);
}

char *metrics_render_with(const mw_gateway_stats_t *st, const metrics_hl7_t *hl7, size_t n,
                          size_t *out_len)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    if (f == NULL)
        return NULL;
    one(f, "medwire_sessions", "gauge", "Established device sessions.", st->sessions);
    one(f, "medwire_peers", "gauge", "Entries in the peer table (sessions and handshakes).",
        st->peers);
    one(f, "medwire_handshakes_half_open", "gauge",
        "Handshakes in progress (valid cookie, not finished).", st->half_open);
    one(f, "medwire_handshakes_started_total", "counter",
        "Handshakes started by a ClientHello with a valid cookie.", st->handshakes_started);
    help(f, "medwire_handshakes_total", "counter", "Handshakes ended, by outcome.");
    fprintf(f, "medwire_handshakes_total{outcome=\"completed\"} %llu\n",
            (unsigned long long)st->handshakes_completed);
    fprintf(f, "medwire_handshakes_total{outcome=\"failed\"} %llu\n",
            (unsigned long long)st->handshakes_failed);
    help(f, "medwire_handshake_failures_total", "counter", "Failed handshakes, by reason.");
    for (int r = 0; r < MW_GATEWAY_HSR_COUNT; r++)
        fprintf(f, "medwire_handshake_failures_total{reason=\"%s\"} %llu\n",
                mw_gateway_hs_reason_name((mw_gateway_hs_reason)r),
                (unsigned long long)st->handshake_failures_by_reason[r]);
    one(f, "medwire_hello_verify_sent_total", "counter",
        "Cookie-less ClientHellos answered statelessly with a HelloVerifyRequest.",
        st->hello_verify_sent);
    one(f, "medwire_messages_accepted_total", "counter",
        "Messages delivered to the output and acknowledged.", st->messages_delivered);
    one(f, "medwire_messages_duplicate_total", "counter",
        "Messages acknowledged again, not delivered again.", st->duplicates);
    one(f, "medwire_replays_refused_total", "counter",
        "Settled numbers sent again that could not be judged (not acknowledged; the device "
        "resynchronises).",
        st->replays);
    one(f, "medwire_sequence_conflicts_total", "counter",
        "Delivered numbers that came again with other content (not acknowledged).", st->conflicts);
    one(f, "medwire_resyncs_requested_total", "counter",
        "Acks that asked a device to move to a new sequence space.", st->resyncs_requested);
    one(f, "medwire_sequence_spaces_started_total", "counter",
        "Sequence spaces opened by devices (new storage, or a resynchronisation).",
        st->spaces_started);
    one(f, "medwire_batches_refused_total", "counter",
        "Batches refused (identity mismatch, malformed).", st->refused);
    one(f, "medwire_coap_duplicates_total", "counter", "CoAP duplicates answered from the cache.",
        st->coap_duplicates);
    one(f, "medwire_bodies_too_large_total", "counter", "Block-wise bodies refused with 4.13.",
        st->bodies_too_large);
    one(f, "medwire_rate_limited_total", "counter",
        "Datagrams dropped by the rate limit (per peer address and per identity).",
        st->rate_limited);
    one(f, "medwire_peer_limit_drops_total", "counter",
        "ClientHellos dropped: peer table or half-open limit reached.", st->peer_limit_drops);
    help(f, "medwire_admission_refusals_total", "counter",
         "Datagrams, handshakes and sessions refused by admission limits, by reason.");
    const struct {
        const char *reason;
        uint64_t n;
    } adm[] = {
        {"peer_table", st->peer_limit_drops},
        {"host_handshakes", st->host_limit_drops},
        {"identity_handshakes", st->identity_limit_drops},
        {"peer_rate", st->rate_limited - st->identity_rate_limited},
        {"identity_rate", st->identity_rate_limited},
    };
    for (size_t i = 0; i < sizeof adm / sizeof adm[0]; i++)
        fprintf(f, "medwire_admission_refusals_total{reason=\"%s\"} %llu\n", adm[i].reason,
                (unsigned long long)adm[i].n);
    one(f, "medwire_sessions_replaced_total", "counter",
        "Sessions replaced by a newer session of the same identity.", st->sessions_replaced);
    one(f, "medwire_audit_lines_held_total", "counter",
        "Audit lines not written one by one (a count per minute instead).", st->audit_lines_held);
    one(f, "medwire_hellos_malformed_total", "counter",
        "ClientHellos dropped before the TLS library: fragmented or malformed.",
        st->hellos_malformed);
    one(f, "medwire_gap_records_total", "counter", "Gap records delivered (messages devices lost).",
        st->gap_records);
    one(f, "medwire_evictions_reported_total", "counter",
        "Messages devices report evicted from a full queue.", st->evictions_reported);
    one(f, "medwire_store_failures_total", "counter",
        "Commits that failed (nothing was acknowledged).", st->store_failures);
    one(f, "medwire_store_conflicts_total", "counter",
        "Of the failed commits, those a shared database broke off for a conflict with another "
        "gateway (deadlock, serialization failure).", st->store_conflicts);
    help(f, "medwire_credential_expiry_timestamp_seconds", "gauge",
         "When a credential in force expires, in seconds since the epoch: the gateway's "
         "certificate and the earliest CA certificate (notAfter), the CRL (nextUpdate).");
    const struct {
        const char *which;
        int64_t at;
    } exp[] = {{"certificate", st->cert_not_after_s},
               {"ca", st->ca_not_after_s},
               {"crl", st->crl_next_update_s}};
    for (size_t i = 0; i < sizeof exp / sizeof exp[0]; i++)
        if (exp[i].at != 0)
            fprintf(f, "medwire_credential_expiry_timestamp_seconds{credential=\"%s\"} %lld\n",
                    exp[i].which, (long long)exp[i].at);
    help(f, "medwire_est_renewals_total", "counter",
         "Device certificates renewed over EST (--est-ca), by result: issued, or refused (a "
         "malformed request, another name or role, or the CA folder's policy).");
    fprintf(f, "medwire_est_renewals_total{result=\"issued\"} %llu\n",
            (unsigned long long)st->renewals_issued);
    fprintf(f, "medwire_est_renewals_total{result=\"refused\"} %llu\n",
            (unsigned long long)st->renewals_refused);
    help(f, "medwire_store_commit_duration_seconds", "histogram",
         "Time to make a poll's messages durable (output synced, store committed).");
    static const uint64_t bounds[] = MW_GATEWAY_COMMIT_BOUNDS_US;
    uint64_t cum = 0;
    for (size_t i = 0; i < MW_GATEWAY_COMMIT_BUCKETS; i++) {
        cum += st->commit_us_buckets[i];
        if (i < sizeof bounds / sizeof bounds[0])
            fprintf(f, "medwire_store_commit_duration_seconds_bucket{le=\"%g\"} %llu\n",
                    (double)bounds[i] / 1e6, (unsigned long long)cum);
        else
            fprintf(f, "medwire_store_commit_duration_seconds_bucket{le=\"+Inf\"} %llu\n",
                    (unsigned long long)cum);
    }
    fprintf(f, "medwire_store_commit_duration_seconds_sum %.6f\n", (double)st->commit_us_sum / 1e6);
    fprintf(f, "medwire_store_commit_duration_seconds_count %llu\n",
            (unsigned long long)st->commits);
    one(f, "medwire_datagrams_received_total", "counter", "UDP datagrams received.",
        st->datagrams_received);
    one(f, "medwire_datagrams_sent_total", "counter", "UDP datagrams sent.", st->datagrams_sent);
    one(f, "medwire_received_bytes_total", "counter", "UDP payload bytes received.",
        st->bytes_received);
    one(f, "medwire_sent_bytes_total", "counter", "UDP payload bytes sent.", st->bytes_sent);
    help(f, "medwire_credential_reloads_total", "counter",
         "Credential reloads (SIGHUP), by result; a failed one kept the old credentials.");
    fprintf(f, "medwire_credential_reloads_total{result=\"ok\"} %llu\n",
            (unsigned long long)st->credential_reloads);
    fprintf(f, "medwire_credential_reloads_total{result=\"failed\"} %llu\n",
            (unsigned long long)st->credential_reload_failures);
    one(f, "medwire_sessions_invalidated_total", "counter",
        "Sessions closed because reloaded credentials or CRL no longer accept the device.",
        st->sessions_invalidated);
    if (hl7 && n > 0)
        put_hl7(f, hl7, n);
    if (fclose(f) != 0) {
        free(buf);
        return NULL;
    }
    *out_len = len;
    return buf;
}

/* One labelled sample per destination (--hl7, --fhir-server, or both), named medwire_hl7_* or
 * medwire_fhir_* after its kind; the association counter, shared, once. The destination is the
 * operator's own URL, checked at start: no quote or backslash can be in it. */
static void put_one(FILE *f, const metrics_hl7_t *h, bool first)
{
    const char *kind = h->kind ? h->kind : "hl7";
    const struct {
        const char *name, *type, *text;
        uint64_t v;
    } rows[] = {
        {"medwire_hl7_outbox_depth", "gauge",
         "Messages in the outbox not yet acknowledged by the destination (parked ones included).",
         h->depth},
        {"medwire_hl7_outbox_parked", "gauge",
         "Messages in the outbox given up after repeated rejections.", h->parked_now},
        {"medwire_hl7_outbox_max", "gauge", "The outbox's bound (--outbox-max).", h->max_rows},
        {"medwire_hl7_oldest_undelivered_seconds", "gauge",
         "Age of the oldest message waiting for the destination (0: none).",
         h->oldest_age_ms / 1000u},
        {"medwire_hl7_outbox_full_total", "counter",
         "Commits refused because the outbox was full (nothing was acknowledged).", h->outbox_full},
        {"medwire_hl7_sent_total", "counter",
         "Messages written to the destination, resends included.", h->sent},
        {"medwire_hl7_acknowledged_total", "counter",
         "Messages the destination accepted (AA or CA): custody ended.", h->acked},
        {"medwire_hl7_retried_total", "counter",
         "Attempts that failed (connection, timeout, AE or AR) and were tried again.", h->retried},
        {"medwire_hl7_parked_total", "counter", "Messages parked after repeated rejections.",
         h->parked},
        {"medwire_messages_without_association_total", "counter",
         "Messages encoded for a device with no patient association (--associations, control "
         "socket): PID and PV1 empty.",
         h->unassociated},
        {"medwire_hl7_destination_up", "gauge",
         "1 unless the last connection attempt to the destination failed.", h->down ? 0u : 1u},
    };
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
        char name[96];
        const char *n = rows[i].name;
        /* medwire_hl7_X becomes medwire_<kind>_X; the association counter keeps its name. */
        if (strncmp(n, "medwire_hl7_", 12) == 0) {
            snprintf(name, sizeof name, "medwire_%s_%s", kind, n + 12);
            n = name;
        } else if (!first) {
            continue;
        }
        help(f, n, rows[i].type, rows[i].text);
        fprintf(f, "%s{destination=\"%s\"} %llu\n", n, h->destination,
                (unsigned long long)rows[i].v);
    }
}

static void put_hl7(FILE *f, const metrics_hl7_t *hs, size_t count)
{
    for (size_t d = 0; d < count; d++)
        put_one(f, &hs[d], d == 0);
}

void metrics_set_hl7(metrics_t *m, metrics_hl7_fn *fn, void *ctx)
{
    m->hl7 = fn;
    m->hl7_ctx = ctx;
}

static enum MHD_Result reply(struct MHD_Connection *c, unsigned code, const char *text)
{
    /* MUST_COPY: the API takes a non-const pointer, and our texts are literals. */
    char copy[64];
    snprintf(copy, sizeof copy, "%s", text);
    struct MHD_Response *r =
        MHD_create_response_from_buffer(strlen(copy), copy, MHD_RESPMEM_MUST_COPY);
    if (r == NULL)
        return MHD_NO;
    (void)MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, "text/plain; charset=utf-8");
    if (code == MHD_HTTP_METHOD_NOT_ALLOWED)
        (void)MHD_add_response_header(r, MHD_HTTP_HEADER_ALLOW, "GET, HEAD");
    enum MHD_Result ok = MHD_queue_response(c, code, r);
    MHD_destroy_response(r);
    return ok;
}

static void on_connection(void *cls, struct MHD_Connection *c, void **socket_context,
                          enum MHD_ConnectionNotificationCode toe)
{
    metrics_t *m = cls;
    if (toe == MHD_CONNECTION_NOTIFY_STARTED) {
        *socket_context = NULL;
        for (size_t i = 0; i < HTTP_MAX_CONNECTIONS; i++) {
            if (m->conns[i].c == NULL) {
                m->conns[i] = (struct conn){.c = c, .active_ms = m->now_ms};
                *socket_context = &m->conns[i];
                m->open++;
                break;
            }
        }
        return;
    }
    struct conn *k = *socket_context;
    if (toe == MHD_CONNECTION_NOTIFY_CLOSED && k != NULL) {
        if (k->shed)
            m->shed--;
        m->open--;
        *k = (struct conn){0};
        *socket_context = NULL;
    }
}

/* Under pressure, the connections idle longest go first. A shutdown, not a close: the
 * descriptor stays MHD's, which reads the end of the stream at its next run and closes the
 * connection as if the client had left (MHD offers no call to close one itself). */
static void shed_idle(metrics_t *m)
{
    while (m->open - m->shed > HTTP_MAX_CONNECTIONS - HTTP_SPARE) {
        struct conn *oldest = NULL;
        for (size_t i = 0; i < HTTP_MAX_CONNECTIONS; i++) {
            struct conn *k = &m->conns[i];
            if (k->c != NULL && !k->shed && (oldest == NULL || k->active_ms < oldest->active_ms))
                oldest = k;
        }
        if (oldest == NULL)
            return;
        const union MHD_ConnectionInfo *ci =
            MHD_get_connection_info(oldest->c, MHD_CONNECTION_INFO_CONNECTION_FD);
        if (ci != NULL)
            (void)shutdown(ci->connect_fd, SHUT_RDWR);
        oldest->shed = true;
        m->shed++;
    }
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *c, const char *url,
                                  const char *method, const char *version, const char *upload_data,
                                  size_t *upload_data_size, void **con_cls)
{
    metrics_t *m = cls;
    (void)version;
    (void)upload_data;
    (void)upload_data_size;
    (void)con_cls;
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(c, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
    if (ci != NULL && ci->socket_context != NULL)
        ((struct conn *)ci->socket_context)->active_ms = m->now_ms;
    if (strcmp(method, MHD_HTTP_METHOD_GET) != 0 && strcmp(method, MHD_HTTP_METHOD_HEAD) != 0)
        return reply(c, MHD_HTTP_METHOD_NOT_ALLOWED, "only GET /metrics and /healthz\n");
    /* For load balancers and supervisors: an answer means the gateway's loop is running, as
     * HTTP is served from it; a gateway that is starting, draining or stuck gives none. */
    if (strcmp(url, "/healthz") == 0) {
        /* A gateway whose store is unreachable acknowledges nothing: the load balancer had
         * better send devices to another one. */
        if (!mw_gateway_store_healthy(m->gw))
            return reply(c, MHD_HTTP_SERVICE_UNAVAILABLE, "store unreachable\n");
        /* The gateway still takes custody while the hospital is unreachable (the outbox
         * holds the messages), so it stays "ok" for the load balancer; the text says so. */
        metrics_hl7_t h[METRICS_DESTINATIONS_MAX];
        size_t n = m->hl7 ? m->hl7(m->hl7_ctx, h, METRICS_DESTINATIONS_MAX) : 0;
        char text[128] = "ok";
        size_t len = 2;
        for (size_t i = 0; i < n; i++)
            if (h[i].down && len < sizeof text)
                len += (size_t)snprintf(text + len, sizeof text - len, "; %s destination down",
                                        h[i].kind ? h[i].kind : "hl7");
        if (len < sizeof text - 1)
            snprintf(text + len, sizeof text - len, "\n");
        return reply(c, MHD_HTTP_OK, text);
    }
    if (strcmp(url, "/metrics") != 0)
        return reply(c, MHD_HTTP_NOT_FOUND, "not found: try /metrics or /healthz\n");
    mw_gateway_stats_t st;
    mw_gateway_stats(m->gw, &st);
    size_t len = 0;
    metrics_hl7_t h[METRICS_DESTINATIONS_MAX];
    size_t n = m->hl7 ? m->hl7(m->hl7_ctx, h, METRICS_DESTINATIONS_MAX) : 0;
    char *text = metrics_render_with(&st, h, n, &len);
    if (text == NULL)
        return reply(c, MHD_HTTP_INTERNAL_SERVER_ERROR, "out of memory\n");
    struct MHD_Response *r = MHD_create_response_from_buffer(len, text, MHD_RESPMEM_MUST_FREE);
    if (r == NULL) {
        free(text);
        return MHD_NO;
    }
    (void)MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, CONTENT_TYPE);
    enum MHD_Result ok = MHD_queue_response(c, MHD_HTTP_OK, r);
    MHD_destroy_response(r);
    return ok;
}

/* libmicrohttpd's own messages: the format comes from the library, not from a peer. At debug:
 * what an operator must know (a port that cannot be bound) gets a sentence of ours instead. */
__attribute__((format(printf, 2, 0))) static void on_mhd_log(void *cls, const char *fmt, va_list ap)
{
    char msg[256];
    (void)cls;
    vsnprintf(msg, sizeof msg, fmt, ap);
    size_t n = strlen(msg);
    while (n > 0 && (msg[n - 1] == '\n' || msg[n - 1] == '\r'))
        msg[--n] = '\0';
    gwlog(GWLOG_DEBUG, "metrics_http", "s:reason", msg, GWLOG_END);
}

/* Binds and listens here rather than in libmicrohttpd, which says only "Failed to bind to
 * port 0": errno says what happened, and the sentence what to do. -1 with @p why filled. */
static int listen_tcp(const char *hostport, const mw_addr_t *a, char *why, size_t why_size)
{
    const struct sockaddr *sa = (const struct sockaddr *)a->data;
    int fd = socket(sa->sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd >= 0) {
        int one = 1; /* a restart must not wait for the last run's TIME_WAIT connections */
        (void)setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
        if (bind(fd, sa, (socklen_t)a->len) == 0 && listen(fd, HTTP_BACKLOG) == 0)
            return fd;
    }
    int err = errno;
    const char *todo = err == EADDRINUSE
                           ? " (another program holds this TCP port: stop it, or choose another "
                             "port)"
                       : err == EADDRNOTAVAIL
                           ? ": not an address of this machine (give one of its own, or 0.0.0.0 "
                             "for all)"
                       : err == EACCES ? " (ports below 1024 need privileges: choose one from "
                                         "1024 up)"
                                       : "";
    snprintf(why, why_size, "cannot serve metrics on '%s': %s%s", hostport, strerror(err), todo);
    if (fd >= 0)
        close(fd);
    return -1;
}

metrics_t *metrics_start(const char *hostport, mw_gateway_t *gw, char *why, size_t why_size)
{
    mw_addr_t a;
    if (mw_addr_parse(hostport, &a) != MW_OK) {
        snprintf(why, why_size, "cannot parse metrics address '%s' (HOST:PORT)", hostport);
        return NULL;
    }
    metrics_t *m = calloc(1, sizeof *m);
    if (m == NULL) {
        snprintf(why, why_size, "out of memory");
        return NULL;
    }
    m->gw = gw;
    m->listen_fd = listen_tcp(hostport, &a, why, why_size);
    if (m->listen_fd < 0) {
        free(m);
        return NULL;
    }
    const struct sockaddr *sa = (const struct sockaddr *)a.data;
    unsigned flags = MHD_USE_EPOLL | MHD_USE_ERROR_LOG;
    if (sa->sa_family == AF_INET6)
        flags |= MHD_USE_IPv6;
    m->d = MHD_start_daemon(
        flags, 0, NULL, NULL, on_request, m, MHD_OPTION_EXTERNAL_LOGGER, on_mhd_log, NULL,
        MHD_OPTION_LISTEN_SOCKET, m->listen_fd, MHD_OPTION_NOTIFY_CONNECTION, on_connection, m,
        MHD_OPTION_CONNECTION_LIMIT, (unsigned)HTTP_MAX_CONNECTIONS, MHD_OPTION_CONNECTION_TIMEOUT,
        (unsigned)HTTP_TIMEOUT_S, MHD_OPTION_CONNECTION_MEMORY_LIMIT,
        (size_t)HTTP_CONNECTION_MEMORY, MHD_OPTION_END);
    if (m->d == NULL) {
        snprintf(why, why_size, "cannot serve metrics on '%s': libmicrohttpd failed to start",
                 hostport);
        close(m->listen_fd);
        free(m);
        return NULL;
    }
    const union MHD_DaemonInfo *i = MHD_get_daemon_info(m->d, MHD_DAEMON_INFO_EPOLL_FD);
    m->fd = i ? i->epoll_fd : -1;
    if (m->fd < 0) {
        snprintf(why, why_size, "libmicrohttpd gave no epoll descriptor");
        metrics_stop(&m);
        return NULL;
    }
    return m;
}

int metrics_fd(const metrics_t *m)
{
    return m ? m->fd : -1;
}

int metrics_timeout_ms(const metrics_t *m)
{
    MHD_UNSIGNED_LONG_LONG t = 0;
    if (m == NULL || MHD_get_timeout(m->d, &t) != MHD_YES)
        return -1;
    return t > 0x7fffffff ? 0x7fffffff : (int)t;
}

void metrics_service(metrics_t *m, uint64_t now_ms)
{
    if (m == NULL)
        return;
    m->now_ms = now_ms;
    (void)MHD_run(m->d);
    shed_idle(m);
}

uint16_t metrics_port(const metrics_t *m)
{
    mw_addr_t a;
    memset(&a, 0, sizeof a);
    socklen_t len = sizeof a.data;
    if (m == NULL || getsockname(m->listen_fd, (struct sockaddr *)a.data, &len) != 0)
        return 0;
    a.len = (uint32_t)len;
    return mw_addr_port(&a);
}

void metrics_stop(metrics_t **pm)
{
    if (pm == NULL || *pm == NULL)
        return;
    MHD_stop_daemon((*pm)->d);
    free(*pm);
    *pm = NULL;
}
