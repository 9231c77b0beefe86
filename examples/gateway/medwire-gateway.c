/* SPDX-License-Identifier: Apache-2.0 */
/* medwire-gateway -- the reference gateway: devices in over DTLS, one JSON line per delivered
 * message out. */
#include <errno.h>
#include <poll.h>
#include <stdbool.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/stat.h>
#include <unistd.h>

#include "medwire/medwire.h"

#include "control.h"
#include "log.h"
#include "metrics.h"

static const char USAGE[] =
    "usage: medwire-gateway --listen HOST:PORT --ca FILE --cert FILE --key FILE\n"
    "                       [--out FILE] [--audit FILE] [--store FILE] [--port-file FILE]\n"
    "                       [--crl FILE] [--control PATH] [--max-peers N]\n"
    "                       [--comm-loss-s S] [--idle-timeout-s S] [--format json|fhir]\n"
    "                       [--metrics HOST:PORT] [--metrics-port-file FILE]\n"
    "                       [--log-level error|warn|info|debug] [--log-format text|json]\n"
    "\n"
    "Accepts medical devices over mutually authenticated DTLS 1.2 (CoAP, protobuf) and\n"
    "writes every delivered message as one JSON object per line.\n"
    "\n"
    "  --listen HOST:PORT  UDP address to listen on (port 0: the system picks one)\n"
    "  --ca FILE           PEM CA that device certificates must chain to\n"
    "  --cert FILE         this gateway's PEM certificate (role gateway)\n"
    "  --key FILE          its PEM private key\n"
    "  --out FILE          delivered messages, one JSON object per line with at least\n"
    "                      \"device\", \"seq\" and \"type\" (default: standard output)\n"
    "  --audit FILE        security events, one JSON object per line with at least\n"
    "                      \"event\", \"peer\" and \"reason\" (default: standard error)\n"
    "  --store FILE        SQLite database (WAL) of accepted messages and each device's\n"
    "                      replay state (default: medwire-gateway.db in the working\n"
    "                      directory); a message is acknowledged only once it is\n"
    "                      committed there and written to --out\n"
    "  --crl FILE          PEM CRL of the CA (medwire-pki revoke/crl), enforced on every\n"
    "                      handshake and resumption; SIGHUP reloads it, and closes the\n"
    "                      sessions of devices it revokes\n"
    "  --port-file FILE    once ready (listening, and the control socket and metrics\n"
    "                      open), write the bound UDP port to FILE\n"
    "  --control PATH      local control socket (Unix stream, owner-only): one JSON\n"
    "                      object per line, e.g.\n"
    "                      "
    "{\"device\":\"dev-1\",\"command\":\"set_interval\",\"interval_ms\":5000}\n"
    "                      {\"device\":\"dev-1\",\"command\":\"ack_alarm\",\"alarm_seq\":17}\n"
    "                      {\"device\":\"dev-1\",\"command\":\"rotate_keys\",\"ttl_s\":60}\n"
    "                      answered with {\"ok\":true,\"device\":...,\"id\":N}; the device's\n"
    "                      result appears in --out as a \"command_result\" line\n"
    "  --max-peers N       sessions kept at once (default 4096)\n"
    "  --idle-timeout-s S  a session that has received nothing for S seconds is closed\n"
    "                      (close_notify) and its memory freed; the device reconnects\n"
    "                      when it next sends (default 600; 0: never)\n"
    "  --comm-loss-s S     a device silent for more than S seconds gets a\n"
    "                      \"communication_loss\" line in --out (a technical alarm), and a\n"
    "                      \"communication_restored\" line when it is heard again (0: off,\n"
    "                      the default)\n"
    "  --format json|fhir  json (the default): the lines above; fhir: one FHIR R4 resource\n"
    "                      per line (NDJSON) instead, an Observation for each delivered\n"
    "                      message in --out and an AuditEvent for each security event in\n"
    "                      --audit (docs/fhir-mapping.md); command results have no FHIR\n"
    "                      form and are kept in --store only\n"
    "  --metrics HOST:PORT serve Prometheus metrics over HTTP at http://HOST:PORT/metrics\n"
    "                      (text format 0.0.4): sessions, peers, handshakes by outcome and\n"
    "                      failure reason, messages accepted, duplicates, replays refused,\n"
    "                      rate-limited datagrams, evictions reported by devices, store commit\n"
    "                      latency (histogram), datagrams and bytes, credential reloads.\n"
    "                      Served from the gateway's own loop (no thread); port 0: the\n"
    "                      system picks one\n"
    "  --metrics-port-file FILE  once serving, write the bound TCP port to FILE\n"
    "  --log-level L       error, warn, info (the default) or debug: the program's log on\n"
    "                      standard error, one line per event (start, stop, reload, errors;\n"
    "                      with --audit FILE also the security events: refusals at warn,\n"
    "                      sessions at debug)\n"
    "  --log-format F      text (the default: TIME LEVEL EVENT key=value ...) or json (one\n"
    "                      object per line with \"time\", \"level\", \"event\" and the fields)\n"
    "  -h, --help          this text;  --version  the version\n"
    "\n"
    "With --out FILE, every delivered message appears in FILE exactly once, also when\n"
    "the gateway is killed and restarted: lines written after the last commit are\n"
    "removed at start (they were never acknowledged, so the devices send them again).\n"
    "Standard output cannot be rewound: after a crash it may repeat lines.\n"
    "\n"
    "SIGHUP reloads the CA, the certificate, the key and the CRL from the same files:\n"
    "new handshakes get the new certificate, established sessions carry on without a\n"
    "new handshake, except those of devices the new CA or CRL no longer accepts (they\n"
    "are closed). A file that cannot be loaded changes nothing: the old credentials stay\n"
    "and the log says why (credentials_reload_failed).\n"
    "\n"
    "Runs until SIGINT or SIGTERM, then drains and exits 0: it stops reading datagrams,\n"
    "commits and acknowledges what it received, sends close_notify to every device\n"
    "(they reconnect, with backoff, to whoever listens next). Exit status 1: cannot start\n"
    "(the message says why); 2: bad command line.\n";

/* --format fhir: FHIR R4 resources instead of medwire's own JSON lines. */
static bool format_fhir;

static volatile sig_atomic_t stop;
static volatile sig_atomic_t reload;

static void on_signal(int sig)
{
    if (sig == SIGHUP)
        reload = 1;
    else
        stop = 1;
}

struct outputs {
    FILE *out;
    FILE *audit;
    bool out_is_file; /* a regular file can be synced and rewound */
};

static mw_err sink(void *ctx, const mw_message_t *m)
{
    struct outputs *o = ctx;
    char line[MW_FHIR_MAX];
    size_t n = 0;
    if (format_fhir && (m->type == MW_MSG_COMMAND_RESULT || m->type == MW_MSG_UNKNOWN))
        return MW_OK; /* not clinical: no FHIR form (docs/fhir-mapping.md) */
    mw_err e = format_fhir ? mw_message_to_fhir(m, NULL, line, sizeof line, &n)
                           : mw_message_to_json(m, line, sizeof line, &n);
    if (e != MW_OK)
        return e;
    /* Buffered here; sink_commit flushes and syncs once per poll, before
     * anything is acknowledged. */
    return fprintf(o->out, "%s\n", line) < 0 ? MW_EIO : MW_OK;
}

/* The output file's length is the checkpoint stored with each commit. */
static mw_err sink_commit(void *ctx, uint64_t *out_checkpoint)
{
    struct outputs *o = ctx;
    if (fflush(o->out) != 0)
        return MW_EIO;
    if (!o->out_is_file) {
        *out_checkpoint = 0;
        return MW_OK;
    }
    if (fdatasync(fileno(o->out)) != 0)
        return MW_EIO;
    off_t end = ftello(o->out);
    if (end < 0)
        return MW_EIO;
    *out_checkpoint = (uint64_t)end;
    return MW_OK;
}

static mw_err sink_recover(void *ctx, uint64_t checkpoint)
{
    struct outputs *o = ctx;
    if (!o->out_is_file)
        return MW_OK;
    if (fflush(o->out) != 0)
        return MW_EIO;
    struct stat st;
    if (fstat(fileno(o->out), &st) != 0)
        return MW_EIO;
    if ((uint64_t)st.st_size > checkpoint) {
        if (ftruncate(fileno(o->out), (off_t)checkpoint) != 0 || fsync(fileno(o->out)) != 0)
            return MW_EIO;
        gwlog(GWLOG_WARN, "output_rewound", "u:bytes_removed",
              (unsigned long long)((uint64_t)st.st_size - checkpoint), "s:reason",
              "removed output written after the last commit (the devices send those messages "
              "again)",
              GWLOG_END);
    }
    return fseeko(o->out, 0, SEEK_END) == 0 ? MW_OK : MW_EIO;
}

/* Security events in the log: what an operator must act on is a warning,
 * sessions coming and going are detail. */
static gwlog_level audit_level(const char *event)
{
    static const char *const errors[] = {MW_AUDIT_STORE_FAILED, MW_AUDIT_CRL_RELOAD_FAILED,
                                         MW_AUDIT_CREDENTIALS_RELOAD_FAILED};
    static const char *const infos[] = {MW_AUDIT_CRL_RELOADED, MW_AUDIT_CREDENTIALS_RELOADED,
                                        "gateway_started", "gateway_stopped"};
    static const char *const debugs[] = {MW_AUDIT_SESSION_ESTABLISHED, MW_AUDIT_SESSION_CLOSED,
                                         MW_AUDIT_SESSION_ROTATED, MW_AUDIT_REKEY_STARTED};
    for (size_t i = 0; i < sizeof errors / sizeof errors[0]; i++)
        if (strcmp(event, errors[i]) == 0)
            return GWLOG_ERROR;
    for (size_t i = 0; i < sizeof infos / sizeof infos[0]; i++)
        if (strcmp(event, infos[i]) == 0)
            return GWLOG_INFO;
    for (size_t i = 0; i < sizeof debugs / sizeof debugs[0]; i++)
        if (strcmp(event, debugs[i]) == 0)
            return GWLOG_DEBUG;
    return GWLOG_WARN;
}

/* What the library said about the last credentials reload, for its log line. */
static char reload_reason[300];

static void log_audit(const mw_audit_event_t *ev)
{
    /* The program's own start, stop and reload have log lines of their own. */
    if (strcmp(ev->event, "gateway_started") == 0 || strcmp(ev->event, "gateway_stopped") == 0 ||
        strcmp(ev->event, MW_AUDIT_CREDENTIALS_RELOADED) == 0 ||
        strcmp(ev->event, MW_AUDIT_CREDENTIALS_RELOAD_FAILED) == 0)
        return;
    gwlog(audit_level(ev->event), ev->event, "s:peer", ev->peer[0] ? ev->peer : NULL, "s:device",
          ev->device[0] ? ev->device : NULL, "s:error", ev->err ? mw_strerror(ev->err) : NULL,
          "i:code", (long long)ev->foreign, "s:reason", ev->reason, GWLOG_END);
}

static void on_audit(void *ctx, const mw_audit_event_t *ev)
{
    struct outputs *o = ctx;
    char line[MW_FHIR_MAX];
    size_t n = 0;
    if (strcmp(ev->event, MW_AUDIT_CREDENTIALS_RELOADED) == 0)
        snprintf(reload_reason, sizeof reload_reason, "%s", ev->reason);
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    uint64_t now_ms = (uint64_t)now.tv_sec * 1000u + (uint64_t)now.tv_nsec / 1000000u;
    mw_err e = format_fhir ? mw_audit_to_fhir(ev, NULL, now_ms, line, sizeof line, &n)
                           : mw_audit_to_json(ev, line, sizeof line, &n);
    if (e == MW_OK) {
        fprintf(o->audit, "%s\n", line);
        fflush(o->audit);
    }
    /* Audit lines already on stderr are not repeated there as log lines. */
    if (o->audit != stderr)
        log_audit(ev);
}

static int usage_error(const char *what, const char *arg)
{
    fprintf(stderr, "medwire-gateway: %s%s%s\nsee 'medwire-gateway --help'\n", what,
            arg ? ": " : "", arg ? arg : "");
    return 2;
}

static FILE *open_out(const char *path, const char *what)
{
    FILE *f = fopen(path, "a");
    if (f == NULL) {
        char why[300];
        snprintf(why, sizeof why, "cannot open %s file '%s': %s", what, path, strerror(errno));
        gwlog(GWLOG_ERROR, "cannot_start", "s:reason", why, GWLOG_END);
    }
    return f;
}

static int write_port_file(const char *path, uint16_t port)
{
    char tmp[4096];
    if (snprintf(tmp, sizeof tmp, "%s.tmp", path) >= (int)sizeof tmp)
        return -1;
    FILE *f = fopen(tmp, "w");
    if (f == NULL)
        return -1;
    int ok = fprintf(f, "%u\n", port) > 0;
    ok = (fclose(f) == 0) && ok;
    /* rename makes the file appear whole: a reader never sees half a port */
    if (!ok || rename(tmp, path) != 0) {
        unlink(tmp);
        return -1;
    }
    return 0;
}

int main(int argc, char **argv)
{
    const char *listen = NULL, *ca = NULL, *cert = NULL, *key = NULL;
    const char *out_path = NULL, *audit_path = NULL, *port_file = NULL;
    const char *store = "medwire-gateway.db";
    const char *control_path = NULL;
    const char *crl = NULL;
    const char *format = "json";
    const char *metrics_addr = NULL, *metrics_port_file = NULL;
    const char *log_level = "info", *log_format = "text";
    unsigned long max_peers = 0, comm_loss_s = 0;
    long idle_timeout_s = -1; /* -1: the library's default */
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
            fputs(USAGE, stdout);
            return 0;
        }
        if (strcmp(a, "--version") == 0) {
            printf("medwire-gateway %s\n", MW_VERSION);
            return 0;
        }
        const char **slot = NULL;
        if (strcmp(a, "--listen") == 0)
            slot = &listen;
        else if (strcmp(a, "--ca") == 0)
            slot = &ca;
        else if (strcmp(a, "--cert") == 0)
            slot = &cert;
        else if (strcmp(a, "--key") == 0)
            slot = &key;
        else if (strcmp(a, "--out") == 0)
            slot = &out_path;
        else if (strcmp(a, "--audit") == 0)
            slot = &audit_path;
        else if (strcmp(a, "--port-file") == 0)
            slot = &port_file;
        else if (strcmp(a, "--store") == 0)
            slot = &store;
        else if (strcmp(a, "--control") == 0)
            slot = &control_path;
        else if (strcmp(a, "--crl") == 0)
            slot = &crl;
        else if (strcmp(a, "--format") == 0)
            slot = &format;
        else if (strcmp(a, "--metrics") == 0)
            slot = &metrics_addr;
        else if (strcmp(a, "--metrics-port-file") == 0)
            slot = &metrics_port_file;
        else if (strcmp(a, "--log-level") == 0)
            slot = &log_level;
        else if (strcmp(a, "--log-format") == 0)
            slot = &log_format;
        else if (strcmp(a, "--max-peers") == 0) {
            if (i + 1 >= argc)
                return usage_error("--max-peers needs a value", NULL);
            char *end = NULL;
            errno = 0;
            max_peers = strtoul(argv[++i], &end, 10);
            if (errno || end == argv[i] || *end || max_peers == 0 || max_peers > 1000000)
                return usage_error("--max-peers must be a number from 1 to 1000000", argv[i]);
            continue;
        } else if (strcmp(a, "--idle-timeout-s") == 0) {
            if (i + 1 >= argc)
                return usage_error("--idle-timeout-s needs a value", NULL);
            char *end = NULL;
            errno = 0;
            unsigned long v = strtoul(argv[++i], &end, 10);
            if (errno || end == argv[i] || *end || argv[i][0] == '-' || v > 31536000)
                return usage_error("--idle-timeout-s must be a number of seconds from 0 to "
                                   "31536000 (a year)",
                                   argv[i]);
            idle_timeout_s = (long)v;
            continue;
        } else
            return usage_error("unknown option", a);
        if (i + 1 >= argc)
            return usage_error("option needs a value", a);
        *slot = argv[++i];
    }
    if (!listen)
        return usage_error("--listen HOST:PORT is required", NULL);
    if (!ca || !cert || !key)
        return usage_error("--ca, --cert and --key are required", NULL);
    if (strcmp(format, "json") != 0 && strcmp(format, "fhir") != 0)
        return usage_error("--format must be json or fhir", format);
    format_fhir = strcmp(format, "fhir") == 0;
    if (!gwlog_setup(log_level, "text"))
        return usage_error("--log-level must be error, warn, info or debug", log_level);
    if (!gwlog_setup(log_level, log_format))
        return usage_error("--log-format must be text or json", log_format);
    if (metrics_port_file && !metrics_addr)
        return usage_error("--metrics-port-file needs --metrics HOST:PORT", NULL);

    struct outputs o = {stdout, stderr, false};
    if (out_path) {
        if ((o.out = open_out(out_path, "output")) == NULL)
            return 1;
        struct stat st;
        o.out_is_file = fstat(fileno(o.out), &st) == 0 && S_ISREG(st.st_mode);
    }
    if (audit_path && (o.audit = open_out(audit_path, "audit")) == NULL)
        return 1;

    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGHUP, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);

    mw_gateway_config_t cfg;
    mw_gateway_config_init(&cfg);
    cfg.listen = listen;
    cfg.ca_file = ca;
    cfg.cert_file = cert;
    cfg.key_file = key;
    cfg.sink = sink;
    cfg.sink_commit = sink_commit;
    cfg.sink_recover = sink_recover;
    cfg.sink_ctx = &o;
    cfg.store_path = store;
    cfg.crl_file = crl;
    cfg.audit = on_audit;
    cfg.audit_ctx = &o;
    if (max_peers)
        cfg.max_peers = (uint32_t)max_peers;
    cfg.comm_loss_ms = (uint64_t)comm_loss_s * 1000u;
    if (idle_timeout_s >= 0)
        cfg.idle_timeout_ms = (uint64_t)idle_timeout_s * 1000u;
    mw_gateway_t *gw = NULL;
    mw_error_detail_t d;
    mw_err e = mw_gateway_create(&cfg, &gw, &d);
    if (e != MW_OK) {
        gwlog(GWLOG_ERROR, "cannot_start", "s:error", mw_strerror(e), "i:code",
              (long long)d.foreign, "s:reason", d.reason[0] ? d.reason : mw_strerror(e), GWLOG_END);
        return 1;
    }
    mw_addr_t local;
    char local_text[64] = "?";
    bool have_local = mw_gateway_local_addr(gw, &local) == MW_OK &&
                      mw_addr_format(&local, local_text, sizeof local_text) == MW_OK;
    metrics_t *metrics = NULL;
    char metrics_text[80] = "";
    if (metrics_addr) {
        char why[200];
        metrics = metrics_start(metrics_addr, gw, why, sizeof why);
        if (metrics == NULL) {
            gwlog(GWLOG_ERROR, "cannot_start", "s:reason", why, GWLOG_END);
            mw_gateway_destroy(&gw);
            return 1;
        }
        snprintf(metrics_text, sizeof metrics_text, "%u", (unsigned)metrics_port(metrics));
        if (metrics_port_file && write_port_file(metrics_port_file, metrics_port(metrics)) != 0) {
            gwlog(GWLOG_ERROR, "cannot_start", "s:file", metrics_port_file, "s:reason",
                  "cannot write the metrics port file", "s:error", strerror(errno), GWLOG_END);
            metrics_stop(&metrics);
            mw_gateway_destroy(&gw);
            return 1;
        }
    }
    control_t ctl;
    memset(&ctl, 0, sizeof ctl);
    ctl.listen_fd = -1;
    if (control_path && control_open(&ctl, control_path) != 0) {
        gwlog(GWLOG_ERROR, "cannot_start", "s:file", control_path, "s:reason",
              "cannot open the control socket", "s:error", strerror(errno), GWLOG_END);
        metrics_stop(&metrics);
        mw_gateway_destroy(&gw);
        return 1;
    }

    /* The port file says "ready": written last, once the control socket and the metrics
     * exist, so that whoever waits for it can use all three. */
    if (have_local && port_file && write_port_file(port_file, mw_addr_port(&local)) != 0) {
        gwlog(GWLOG_ERROR, "cannot_start", "s:file", port_file, "s:reason",
              "cannot write the port file", "s:error", strerror(errno), GWLOG_END);
        control_close(&ctl);
        metrics_stop(&metrics);
        mw_gateway_destroy(&gw);
        return 1;
    }
    mw_audit_event_t started = {.event = "gateway_started",
                                .peer = local_text,
                                .device = "",
                                .reason = "listening for devices"};
    on_audit(&o, &started);
    gwlog(GWLOG_INFO, "gateway_started", "s:listen", local_text, "s:metrics_port",
          metrics ? metrics_text : NULL, "s:store", store, "s:crl", crl, "s:format", format,
          "s:reason", "listening for devices", GWLOG_END);

    /* One loop over the gateway's socket and the control socket: the
     * library's descriptor and timer are what a caller's own loop needs. */
    int rc = 0;
    while (!stop) {
        struct pollfd fds[1 + 1 + 1 + CONTROL_MAX_CLIENTS];
        int n = 0;
        fds[n++] = (struct pollfd){.fd = mw_gateway_fd(gw), .events = POLLIN};
        if (metrics)
            fds[n++] = (struct pollfd){.fd = metrics_fd(metrics), .events = POLLIN};
        n += control_fds(&ctl, fds + n, (int)(sizeof fds / sizeof fds[0]) - n);
        int wait = mw_gateway_next_timeout_ms(gw);
        if (wait < 0 || wait > 200)
            wait = 200;
        int mwait = metrics_timeout_ms(metrics);
        if (mwait >= 0 && mwait < wait)
            wait = mwait;
        if (poll(fds, (nfds_t)n, wait) < 0 && errno != EINTR) {
            gwlog(GWLOG_ERROR, "stopped", "s:reason", "poll failed", "s:error", strerror(errno),
                  GWLOG_END);
            rc = 1;
            break;
        }
        if (stop)
            break; /* draining: no more datagrams are read */
        e = mw_gateway_poll(gw, 0);
        if (e != MW_OK && e != MW_EAGAIN) {
            gwlog(GWLOG_ERROR, "stopped", "s:reason", "the gateway's socket failed", "s:error",
                  mw_strerror(e), GWLOG_END);
            rc = 1;
            break;
        }
        control_service(&ctl, gw);
        metrics_service(metrics);
        if (reload) {
            reload = 0;
            /* CA, certificate, key and CRL, all from the same files, all or nothing. */
            mw_error_detail_t rd;
            mw_err re = mw_gateway_reload_credentials(gw, &rd);
            if (re != MW_OK)
                gwlog(GWLOG_ERROR, "credentials_reload_failed", "s:error", mw_strerror(re),
                      "i:code", (long long)rd.foreign, "s:reason", rd.reason, "s:kept",
                      "the previous credentials stay in force", GWLOG_END);
            else
                gwlog(GWLOG_INFO, "credentials_reloaded", "s:ca", ca, "s:cert", cert, "s:key", key,
                      "s:crl", crl, "s:reason", reload_reason, GWLOG_END);
        }
    }
    control_close(&ctl);
    metrics_stop(&metrics);
    mw_gateway_stats_t st;
    mw_gateway_stats(gw, &st);
    gwlog(GWLOG_INFO, "draining", "u:sessions", (unsigned long long)st.sessions, "s:reason",
          "committing what was received, then close_notify to every device", GWLOG_END);
    char summary[200];
    snprintf(
        summary, sizeof summary,
        "%s; delivered %llu messages (%llu duplicates), %llu handshakes completed, %llu failed",
        stop ? "signal" : "error", (unsigned long long)st.messages_delivered,
        (unsigned long long)st.duplicates, (unsigned long long)st.handshakes_completed,
        (unsigned long long)st.handshakes_failed);
    mw_audit_event_t stopped = {
        .event = "gateway_stopped", .peer = local_text, .device = "", .reason = summary};
    on_audit(&o, &stopped);
    mw_gateway_destroy(&gw);
    gwlog(rc == 0 ? GWLOG_INFO : GWLOG_ERROR, "gateway_stopped", "s:cause",
          stop ? "signal" : "error", "u:delivered", (unsigned long long)st.messages_delivered,
          "u:duplicates", (unsigned long long)st.duplicates, "u:handshakes_completed",
          (unsigned long long)st.handshakes_completed, "u:handshakes_failed",
          (unsigned long long)st.handshakes_failed, GWLOG_END);
    if (o.out != stdout)
        fclose(o.out);
    if (o.audit != stderr)
        fclose(o.audit);
    return rc;
}
