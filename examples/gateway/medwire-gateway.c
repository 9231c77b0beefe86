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

static const char USAGE[] =
    "usage: medwire-gateway --listen HOST:PORT --ca FILE --cert FILE --key FILE\n"
    "                       [--out FILE] [--audit FILE] [--store FILE] [--port-file FILE]\n"
    "                       [--crl FILE] [--control PATH] [--max-peers N]\n"
    "                       [--comm-loss-s S] [--format json|fhir]\n"
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
    "  --port-file FILE    once listening, write the bound UDP port to FILE\n"
    "  --control PATH      local control socket (Unix stream, owner-only): one JSON\n"
    "                      object per line, e.g.\n"
    "                      "
    "{\"device\":\"dev-1\",\"command\":\"set_interval\",\"interval_ms\":5000}\n"
    "                      {\"device\":\"dev-1\",\"command\":\"ack_alarm\",\"alarm_seq\":17}\n"
    "                      {\"device\":\"dev-1\",\"command\":\"rotate_keys\",\"ttl_s\":60}\n"
    "                      answered with {\"ok\":true,\"device\":...,\"id\":N}; the device's\n"
    "                      result appears in --out as a \"command_result\" line\n"
    "  --max-peers N       sessions kept at once (default 4096)\n"
    "  --comm-loss-s S     a device silent for more than S seconds gets a\n"
    "                      \"communication_loss\" line in --out (a technical alarm), and a\n"
    "                      \"communication_restored\" line when it is heard again (0: off,\n"
    "                      the default)\n"
    "  --format json|fhir  json (the default): the lines above; fhir: one FHIR R4 resource\n"
    "                      per line (NDJSON) instead, an Observation for each delivered\n"
    "                      message in --out and an AuditEvent for each security event in\n"
    "                      --audit (docs/fhir-mapping.md); command results have no FHIR\n"
    "                      form and are kept in --store only\n"
    "  -h, --help          this text;  --version  the version\n"
    "\n"
    "With --out FILE, every delivered message appears in FILE exactly once, also when\n"
    "the gateway is killed and restarted: lines written after the last commit are\n"
    "removed at start (they were never acknowledged, so the devices send them again).\n"
    "Standard output cannot be rewound: after a crash it may repeat lines.\n"
    "\n"
    "Runs until SIGINT or SIGTERM, then exits 0. Exit status 1: cannot start (the\n"
    "message says why); 2: bad command line.\n";

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
        fprintf(stderr,
                "medwire-gateway: removed %llu bytes of output written after the last commit "
                "(the devices send those messages again)\n",
                (unsigned long long)((uint64_t)st.st_size - checkpoint));
    }
    return fseeko(o->out, 0, SEEK_END) == 0 ? MW_OK : MW_EIO;
}

static void on_audit(void *ctx, const mw_audit_event_t *ev)
{
    struct outputs *o = ctx;
    char line[MW_FHIR_MAX];
    size_t n = 0;
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    uint64_t now_ms = (uint64_t)now.tv_sec * 1000u + (uint64_t)now.tv_nsec / 1000000u;
    mw_err e = format_fhir ? mw_audit_to_fhir(ev, NULL, now_ms, line, sizeof line, &n)
                           : mw_audit_to_json(ev, line, sizeof line, &n);
    if (e == MW_OK) {
        fprintf(o->audit, "%s\n", line);
        fflush(o->audit);
    }
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
    if (f == NULL)
        fprintf(stderr, "medwire-gateway: cannot open %s file '%s': %s\n", what, path,
                strerror(errno));
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
    unsigned long max_peers = 0, comm_loss_s = 0;
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
        else if (strcmp(a, "--max-peers") == 0) {
            if (i + 1 >= argc)
                return usage_error("--max-peers needs a value", NULL);
            char *end = NULL;
            errno = 0;
            max_peers = strtoul(argv[++i], &end, 10);
            if (errno || end == argv[i] || *end || max_peers == 0 || max_peers > 1000000)
                return usage_error("--max-peers must be a number from 1 to 1000000", argv[i]);
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
    mw_gateway_t *gw = NULL;
    mw_error_detail_t d;
    mw_err e = mw_gateway_create(&cfg, &gw, &d);
    if (e != MW_OK) {
        fprintf(stderr, "medwire-gateway: cannot start: %s\n",
                d.reason[0] ? d.reason : mw_strerror(e));
        return 1;
    }
    mw_addr_t local;
    char local_text[64] = "?";
    if (mw_gateway_local_addr(gw, &local) == MW_OK &&
        mw_addr_format(&local, local_text, sizeof local_text) == MW_OK && port_file &&
        write_port_file(port_file, mw_addr_port(&local)) != 0) {
        fprintf(stderr, "medwire-gateway: cannot write port file '%s': %s\n", port_file,
                strerror(errno));
        mw_gateway_destroy(&gw);
        return 1;
    }
    mw_audit_event_t started = {.event = "gateway_started",
                                .peer = local_text,
                                .device = "",
                                .reason = "listening for devices"};
    on_audit(&o, &started);

    control_t ctl;
    memset(&ctl, 0, sizeof ctl);
    ctl.listen_fd = -1;
    if (control_path && control_open(&ctl, control_path) != 0) {
        fprintf(stderr, "medwire-gateway: cannot open control socket '%s': %s\n", control_path,
                strerror(errno));
        mw_gateway_destroy(&gw);
        return 1;
    }

    /* One loop over the gateway's socket and the control socket: the
     * library's descriptor and timer are what a caller's own loop needs. */
    int rc = 0;
    while (!stop) {
        struct pollfd fds[1 + 1 + CONTROL_MAX_CLIENTS];
        int n = 0;
        fds[n++] = (struct pollfd){.fd = mw_gateway_fd(gw), .events = POLLIN};
        n += control_fds(&ctl, fds + n, (int)(sizeof fds / sizeof fds[0]) - n);
        int wait = mw_gateway_next_timeout_ms(gw);
        if (wait < 0 || wait > 200)
            wait = 200;
        if (poll(fds, (nfds_t)n, wait) < 0 && errno != EINTR) {
            fprintf(stderr, "medwire-gateway: poll: %s\n", strerror(errno));
            rc = 1;
            break;
        }
        e = mw_gateway_poll(gw, 0);
        if (e != MW_OK && e != MW_EAGAIN) {
            fprintf(stderr, "medwire-gateway: stopped: %s\n", mw_strerror(e));
            rc = 1;
            break;
        }
        control_service(&ctl, gw);
        if (reload) {
            reload = 0;
            if (crl) {
                mw_error_detail_t rd;
                if (mw_gateway_reload_crl(gw, crl, &rd) != MW_OK)
                    fprintf(stderr, "medwire-gateway: CRL not reloaded: %s\n", rd.reason);
            }
        }
    }
    control_close(&ctl);
    mw_gateway_stats_t st;
    mw_gateway_stats(gw, &st);
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
    if (o.out != stdout)
        fclose(o.out);
    if (o.audit != stderr)
        fclose(o.audit);
    return rc;
}
