/* SPDX-License-Identifier: Apache-2.0 */
/* metrics.c -- the reference gateway's Prometheus endpoint (GNU libmicrohttpd), served from the
 * program's own loop. */
#define _GNU_SOURCE /* open_memstream */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

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
struct metrics {
    struct MHD_Daemon *d;
    mw_gateway_t *gw;
    int fd;
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

char *metrics_render(const mw_gateway_stats_t *st, size_t *out_len)
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
        "Messages refused as replays (below the device's low-water mark).", st->replays);
    one(f, "medwire_batches_refused_total", "counter",
        "Batches refused (identity mismatch, malformed).", st->refused);
    one(f, "medwire_coap_duplicates_total", "counter",
        "CoAP duplicates answered from the cache.", st->coap_duplicates);
    one(f, "medwire_bodies_too_large_total", "counter",
        "Block-wise bodies refused with 4.13.", st->bodies_too_large);
    one(f, "medwire_rate_limited_total", "counter",
        "Datagrams dropped by the per-device rate limit.", st->rate_limited);
    one(f, "medwire_peer_limit_drops_total", "counter",
        "ClientHellos dropped: peer table or half-open limit reached.", st->peer_limit_drops);
    one(f, "medwire_hellos_malformed_total", "counter",
        "ClientHellos dropped before the TLS library: fragmented or malformed.",
        st->hellos_malformed);
    one(f, "medwire_gap_records_total", "counter",
        "Gap records delivered (messages devices lost).", st->gap_records);
    one(f, "medwire_evictions_reported_total", "counter",
        "Messages devices report evicted from a full queue.", st->evictions_reported);
    one(f, "medwire_store_failures_total", "counter",
        "Commits that failed (nothing was acknowledged).", st->store_failures);
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
    fprintf(f, "medwire_store_commit_duration_seconds_sum %.6f\n",
            (double)st->commit_us_sum / 1e6);
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
    if (fclose(f) != 0) {
        free(buf);
        return NULL;
    }
    *out_len = len;
    return buf;
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

static enum MHD_Result on_request(void *cls, struct MHD_Connection *c, const char *url,
                                  const char *method, const char *version,
                                  const char *upload_data, size_t *upload_data_size,
                                  void **con_cls)
{
    metrics_t *m = cls;
    (void)version;
    (void)upload_data;
    (void)upload_data_size;
    (void)con_cls;
    if (strcmp(method, MHD_HTTP_METHOD_GET) != 0 && strcmp(method, MHD_HTTP_METHOD_HEAD) != 0)
        return reply(c, MHD_HTTP_METHOD_NOT_ALLOWED, "only GET /metrics\n");
    if (strcmp(url, "/metrics") != 0)
        return reply(c, MHD_HTTP_NOT_FOUND, "not found: try /metrics\n");
    mw_gateway_stats_t st;
    mw_gateway_stats(m->gw, &st);
    size_t len = 0;
    char *text = metrics_render(&st, &len);
    if (text == NULL)
        return reply(c, MHD_HTTP_INTERNAL_SERVER_ERROR, "out of memory\n");
    struct MHD_Response *r =
        MHD_create_response_from_buffer(len, text, MHD_RESPMEM_MUST_FREE);
    if (r == NULL) {
        free(text);
        return MHD_NO;
    }
    (void)MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, CONTENT_TYPE);
    enum MHD_Result ok = MHD_queue_response(c, MHD_HTTP_OK, r);
    MHD_destroy_response(r);
    return ok;
}

/* libmicrohttpd's own messages: the format comes from the library, not from a peer. */
__attribute__((format(printf, 2, 0))) static void on_mhd_log(void *cls, const char *fmt,
                                                            va_list ap)
{
    char msg[256];
    (void)cls;
    vsnprintf(msg, sizeof msg, fmt, ap);
    size_t n = strlen(msg);
    while (n > 0 && (msg[n - 1] == '\n' || msg[n - 1] == '\r'))
        msg[--n] = '\0';
    gwlog(GWLOG_WARN, "metrics_http", "s:reason", msg, GWLOG_END);
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
    const struct sockaddr *sa = (const struct sockaddr *)a.data;
    unsigned flags = MHD_USE_EPOLL | MHD_USE_ERROR_LOG;
    if (sa->sa_family == AF_INET6)
        flags |= MHD_USE_IPv6;
    /* Bounded: a few scrapers at once, and one that stalls is dropped. */
    m->d = MHD_start_daemon(flags, 0, NULL, NULL, on_request, m, MHD_OPTION_EXTERNAL_LOGGER,
                            on_mhd_log, NULL, MHD_OPTION_SOCK_ADDR, sa,
                            MHD_OPTION_CONNECTION_LIMIT, (unsigned)8,
                            MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)10,
                            MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)32768, MHD_OPTION_END);
    if (m->d == NULL) {
        snprintf(why, why_size,
                 "cannot serve metrics on '%s' (is the address local and the port free?)",
                 hostport);
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

void metrics_service(metrics_t *m)
{
    if (m)
        (void)MHD_run(m->d);
}

uint16_t metrics_port(const metrics_t *m)
{
    const union MHD_DaemonInfo *i = m ? MHD_get_daemon_info(m->d, MHD_DAEMON_INFO_BIND_PORT) : NULL;
    return i ? i->port : 0;
}

void metrics_stop(metrics_t **pm)
{
    if (pm == NULL || *pm == NULL)
        return;
    MHD_stop_daemon((*pm)->d);
    free(*pm);
    *pm = NULL;
}
