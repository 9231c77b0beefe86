/* SPDX-License-Identifier: Apache-2.0 */
/* medwire-gateway -- the reference gateway: devices in over DTLS, one JSON line per delivered
 * message out. */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdbool.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/stat.h>
#include <unistd.h>

#include "medwire/medwire.h"

#include "associations.h"
#include "cmdline.h"
#include "control.h"
#include "est_ca.h"
#include "est_cmd.h"
#include "expiry.h"
#include "hl7.h"
#include "log.h"
#include "metrics.h"
#include "mllp.h"
#include "outbox.h"
#ifdef MW_HAVE_LIBPQ
#include "audit_pg.h"
#endif
#ifdef MW_HAVE_CURL
#include "fhir_rest.h"
#endif

static const char USAGE[] =
    "usage: medwire-gateway --listen HOST:PORT --ca FILE --cert FILE --key FILE\n"
    "                       [--out FILE] [--audit FILE] [--store FILE] [--port-file FILE]\n"
    "                       [--crl FILE] [--control PATH] [--max-peers N]\n"
    "                       [--gateway-id NAME] [--est-ca DIR [--est-valid-days N]]\n"
    "                       [--est-ca-cmd CMD [--est-ca-cmd-timeout S]]\n"
    "                       [--est-retry-after S]\n"
    "                       [--expiry-warning-days N]\n"
    "                       [--comm-loss-s S] [--idle-timeout-s S] [--format json|fhir]\n"
    "                       [--metrics HOST:PORT] [--metrics-port-file FILE]\n"
    "                       [--log-level error|warn|info|debug] [--log-format text|json]\n"
    "                       [--allow-shared-key-file] [admission limits, below]\n"
    "                       [--hl7 mllp://HOST:PORT|mllps://HOST:PORT] [--hl7-ca FILE]\n"
    "                       [--hl7-cert FILE --hl7-key FILE] [--hl7-batch N] [--outbox FILE]\n"
    "                       [--outbox-max N]\n"
    "                       [--associations FILE]\n"
    "                       [--fhir-server URL] [--fhir-batch N] [--fhir-token FILE]\n"
    "                       [--fhir-cert FILE --fhir-key FILE] [--fhir-ca FILE]\n"
    "\n"
    "Accepts medical devices over mutually authenticated DTLS 1.2 (CoAP, protobuf) and\n"
    "writes every delivered message as one JSON object per line.\n"
    "\n"
    "  --listen HOST:PORT  UDP address to listen on: one of this machine's addresses, or\n"
    "                      0.0.0.0 for all of them (port 0: the system picks one)\n"
    "  --ca FILE           PEM CA that device certificates must chain to\n"
    "  --cert FILE         this gateway's PEM certificate (role gateway)\n"
    "  --key FILE          its PEM private key; refused if its group or others may read\n"
    "                      or write it (chmod 600 FILE); or a key kept in a PKCS#11 token,\n"
    "                      as an RFC 7512 URI 'pkcs11:token=T;object=K?module-path=LIB\n"
    "                      &pin-source=FILE' (docs/keys.md)\n"
    "  --allow-shared-key-file  accept such a key file anyway (at start and at reload)\n"
    "  --out FILE          delivered messages, one JSON object per line with at least\n"
    "                      \"device\", \"seq\" and \"type\" (default: standard output); an\n"
    "                      observation's exact reading is \"mantissa\" x 10^\"exponent\", as\n"
    "                      the device sent it; \"value\" is the same as a floating-point\n"
    "                      number, a convenience that may be inexact (97.5 is 975 and -1)\n"
    "  --audit FILE        security events, one JSON object per line with at least\n"
    "                      \"event\", \"peer\" and \"reason\" (default: standard error).\n"
    "                      A postgresql://USER@HOST/DB URL instead: a row per event in its\n"
    "                      audit table (gateway, at, event as jsonb), one trail for the\n"
    "                      gateways of a site; events it cannot take go to standard error\n"
    "  --store FILE        SQLite database (WAL) of accepted messages and each device's\n"
    "                      replay state (default: medwire-gateway.db in the working\n"
    "                      directory); a message is acknowledged only once it is\n"
    "                      committed there and written to --out. Locked while the gateway\n"
    "                      runs: a second gateway given the same FILE does not start.\n"
    "                      A postgresql://USER@HOST/DB URL (libpq's) instead: a database\n"
    "                      several gateways share, devices moving freely between them\n"
    "                      (docs/deployment.md); its password is never printed\n"
    "  --gateway-id NAME   this gateway's name in a shared --store, under which it keeps\n"
    "                      where its --out stands (default: HOSTNAME/LISTEN); give each\n"
    "                      gateway its own, the same across restarts\n"
    "  --crl FILE          PEM CRL of the CA (medwire-pki revoke/crl), enforced on every\n"
    "                      handshake and resumption; SIGHUP reloads it, and closes the\n"
    "                      sessions of devices it revokes\n"
    "  --est-ca DIR        serve EST over CoAP (RFC 9148) to devices: /.well-known/est/crts\n"
    "                      answers the CA certificates and /.well-known/est/sren renews a\n"
    "                      device's certificate over its session, signed with the\n"
    "                      medwire-pki CA folder DIR and recorded in DIR/index.txt; only\n"
    "                      the newest certificate of a name, not revoked, may renew, and\n"
    "                      only for its own name (docs/protocol.md)\n"
    "  --est-valid-days N  lifetime of a renewed certificate (1-3650, default 365)\n"
    "  --est-ca-cmd CMD    serve EST as --est-ca does, but have CMD (run with /bin/sh -c)\n"
    "                      issue, for a CA kept elsewhere: the request (PEM) on its\n"
    "                      standard input, MEDWIRE_DEVICE_ID and MEDWIRE_CERT_SERIAL in\n"
    "                      its environment; it writes the certificate (PEM or DER) and\n"
    "                      exits 0, or exits 1 to refuse (its first line of standard\n"
    "                      error says why). The device is answered 5.03 while CMD runs\n"
    "                      and asks again; the certificate must chain to --ca, be for\n"
    "                      the request's key and name, and for clientAuth\n"
    "  --est-ca-cmd-timeout S  stop CMD after S seconds and refuse with 5.00 (1-86400,\n"
    "                      default 300)\n"
    "  --est-retry-after S  the Max-Age of that 5.03: when devices ask again (1-3600,\n"
    "                      default 10)\n"
    "  --expiry-warning-days N  warn (log and audit: credential_expiring) when the\n"
    "                      gateway's certificate, a CA certificate or the CRL's next\n"
    "                      update is N days away or less, and again every day\n"
    "                      (default 30; 0: never); metrics carry the three dates\n"
    "  --port-file FILE    once ready (listening, and the control socket and metrics\n"
    "                      open), write the bound UDP port to FILE\n"
    "  --control PATH      local control socket (Unix stream, owner-only): one JSON\n"
    "                      object per line, e.g.\n"
    "                      "
    "{\"device\":\"dev-1\",\"command\":\"set_interval\",\"interval_ms\":5000}\n"
    "                      {\"device\":\"dev-1\",\"command\":\"ack_alarm\",\"alarm_seq\":17}\n"
    "                      {\"device\":\"dev-1\",\"command\":\"rotate_keys\",\"ttl_s\":60}\n"
    "                      answered with {\"ok\":true,\"device\":...,\"id\":N}; the device's\n"
    "                      result appears in --out as a \"command_result\" line. A key given\n"
    "                      twice is refused. At most 8 clients at once: one that sends no\n"
    "                      complete line for 30 s is closed, and when all 8 places are\n"
    "                      taken, a new client gets the place of the one idle longest\n"
    "  --max-peers N       sessions kept at once (default 4096)\n"
    "  --idle-timeout-s S  a session that has received nothing for S seconds is closed\n"
    "                      (close_notify) and its memory freed; the device reconnects\n"
    "                      when it next sends (default 600; 0: never)\n"
    "  --comm-loss-s S     a device silent for more than S seconds gets a\n"
    "                      \"communication_loss\" line in --out (a technical alarm), and a\n"
    "                      \"communication_restored\" line when it is heard again (0: off,\n"
    "                      the default)\n"
    "Admission (what one source host or one device identity may take; a host is an\n"
    "IPv4 address or an IPv6 /64, so devices behind one NAT share its limits):\n"
    "  --max-half-open N   handshakes in progress at once, all hosts (default 256)\n"
    "  --max-half-open-per-host N  ... from one host (default 16); more are dropped\n"
    "                      after the cookie exchange, so a flood from one host never\n"
    "                      holds the slots devices elsewhere need\n"
    "  --handshakes-per-host-per-s N  handshakes one host may start per second, burst\n"
    "                      twice that (default 20)\n"
    "  --handshakes-per-identity-per-min N  handshakes one device identity may complete\n"
    "                      per minute, burst 10 or a sixth (default 60); more are closed at once,\n"
    "                      however many addresses or ports it uses. One identity holds\n"
    "                      one session: a newer one replaces the older\n"
    "  --datagrams-per-peer-per-s N  datagrams one peer, and one identity across all\n"
    "                      its addresses, may send per second, burst twice that\n"
    "                      (default 200); the excess is dropped\n"
    "  --audit-per-identity-per-min N  audit lines of one kind about one identity, or\n"
    "                      of admission refusals about one host, per minute (default\n"
    "                      20); the rest become one line with their count\n"
    "  --format json|fhir  json (the default): the lines above; fhir: one FHIR R4 resource\n"
    "                      per line (NDJSON) instead, an Observation for each delivered\n"
    "                      message (a Task for a command result) in --out and an\n"
    "                      AuditEvent for each security event in --audit\n"
    "                      (docs/fhir-mapping.md)\n"
    "  --metrics HOST:PORT serve Prometheus metrics over HTTP at http://HOST:PORT/metrics\n"
    "                      (text format 0.0.4): sessions, peers, handshakes by outcome and\n"
    "                      failure reason, messages accepted, duplicates, replays refused,\n"
    "                      rate-limited datagrams, evictions reported by devices, store commit\n"
    "                      latency (histogram), datagrams and bytes, credential reloads.\n"
    "                      Served from the gateway's own loop (no thread); port 0: the\n"
    "                      system picks one. http://HOST:PORT/healthz answers 200 \"ok\"\n"
    "                      while the gateway serves (for load balancers). At most 64\n"
    "                      connections; beyond 60 the ones idle longest are closed, so\n"
    "                      a scraper always gets in; 10 s of silence closes any\n"
    "                      connection\n"
    "  --metrics-port-file FILE  once serving, write the bound TCP port to FILE\n"
    "  --hl7 mllp://HOST:PORT  deliver readings and alarms to a hospital's HL7 listener\n"
    "                      (IHE PCD-01 ORU^R01, HL7 v2.6) over MLLP instead of --out (the\n"
    "                      two do not go together): a device is acknowledged once its\n"
    "                      message is committed in the --outbox, and the outbox keeps it\n"
    "                      until the listener answers AA or CA; connection failures and\n"
    "                      timeouts (10 s) are retried with backoff from 0.5 s to 30 s,\n"
    "                      AE or AR 5 times, then the message is parked (kept, not sent,\n"
    "                      audited \"hl7_parked\"). docs/hospital-integration.md.\n"
    "                      mllps://HOST:PORT: the same over TLS (1.2 or later); the\n"
    "                      listener's certificate must chain to --hl7-ca and name HOST\n"
    "  --hl7-batch N       a device's next messages merged into one ORU^R01 (several\n"
    "                      OBR/OBX groups, one acknowledgement), at most N (1 to 64,\n"
    "                      default 16; 1: one message a frame); alarms go alone\n"
    "  --hl7-ca FILE       with mllps://: PEM CA certificate(s) of the HL7 listener\n"
    "  --hl7-cert FILE, --hl7-key FILE  with mllps://: the gateway's TLS client\n"
    "                      certificate and its PEM key, for a listener that asks for one\n"
    "  --fhir-server URL   deliver readings and alarms to a FHIR R4 server (http:// or\n"
    "                      https:// base URL) instead of --out; with --hl7 too, each\n"
    "                      message goes to both (one outbox, a row for each, written\n"
    "                      together). A device is acknowledged once its message is in the\n"
    "                      --outbox; each batch of\n"
    "                      outbox entries is POSTed as one transaction Bundle of conditional\n"
    "                      creates (ifNoneExist on the message identifier, so a resend makes\n"
    "                      no second Observation), with a Device and, from --associations,\n"
    "                      a Patient. 2xx ends custody; 429, 5xx, timeouts (30 s) and\n"
    "                      connection failures (and 401, 403, 404, 405: a configuration\n"
    "                      problem, not the entry's) are retried with backoff from 0.5 s to\n"
    "                      30 s, never sooner than a Retry-After; another 4xx parks the entry\n"
    "                      (kept, not sent, audited \"fhir_parked\" with the server's\n"
    "                      diagnostics). docs/hospital-integration.md\n"
    "  --fhir-batch N      Bundle entries per transaction, the Device and Patient entries\n"
    "                      included (default 50, at most 1000; Medplum takes at most 8\n"
    "                      in a transaction with conditional creates)\n"
    "  --fhir-token FILE   a file holding the bearer token sent as Authorization (never\n"
    "                      on the command line)\n"
    "  --fhir-cert FILE --fhir-key FILE  TLS client certificate and key (PEM) for https://\n"
    "  --fhir-ca FILE      CA bundle (PEM) the server's certificate must chain to (default:\n"
    "                      the system's)\n"
    "  --outbox FILE       SQLite file of messages not yet acknowledged by --hl7 or\n"
    "                      --fhir-server (default:\n"
    "                      the --store FILE with \".outbox\" added); locked while the\n"
    "                      gateway runs. With a postgresql:// --store the default is\n"
    "                      the outbox table in that database, which the gateways share:\n"
    "                      any of them delivers what one of them took in, so a gateway\n"
    "                      that dies leaves nothing stuck (docs/deployment.md); an\n"
    "                      earlier medwire-gateway.outbox file in the working directory\n"
    "                      is used instead while it exists. --outbox URL: the same as\n"
    "                      --store (the shared outbox), --outbox FILE: a file of its own\n"
    "  --associations FILE  with --hl7: each device's patient and bed, one a line,\n"
    "                      DEVICE-ID<TAB>PATIENT-ID<TAB>Family^Given<TAB>PointOfCare^Room^Bed\n"
    "                      ('#' comments), sent as PID-3, PID-5 and PV1-3; SIGHUP reloads it,\n"
    "                      the control socket's {\"device\":ID,\"command\":\"associate\",\n"
    "                      \"patient_id\":...,\"patient_name\":...,\"location\":...} and\n"
    "                      {\"device\":ID,\"command\":\"dissociate\"} change it (and rewrite\n"
    "                      FILE). A bad FILE stops the start (exit 2) and is ignored at reload\n"
    "  --outbox-max N      messages the outbox holds (default 100000); when full, nothing\n"
    "                      more is acknowledged to devices (they keep their messages and\n"
    "                      resend), audited \"hl7_outbox_full\"; a warning at 90%\n"
    "  --log-level L       error, warn, info (the default) or debug: the program's log on\n"
    "                      standard error, one line per event (start, stop, reload, errors;\n"
    "                      with --audit FILE also the security events: refusals at warn,\n"
    "                      sessions at debug)\n"
    "  --log-format F      text (the default: TIME LEVEL EVENT key=value ...) or json (one\n"
    "                      object per line with \"time\", \"level\", \"event\" and the fields)\n"
    "  -h, --help          this text;  --version  the version\n"
    "Options take their value as --opt VALUE or --opt=VALUE.\n"
    "\n"
    "--out, --audit and --store (and SQLite's FILE-wal and FILE-shm beside the store) are\n"
    "created owner-only (mode 0600) whatever the umask: they hold health data and the\n"
    "audit trail. A file that exists already keeps its mode.\n"
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
    "(the message says why, e.g. that another gateway uses the --store); 2: bad command\n"
    "line.\n";

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
#ifdef MW_HAVE_LIBPQ
    audit_pg_t *audit_db; /* --audit postgresql://...: events go there, else to audit */
#endif
    bool out_is_file;      /* a regular file can be synced and rewound */
    outbox_t *ob;          /* --hl7, --fhir-server: messages go to the outbox, not --out */
    outbox_t *hl7_lane;    /* the outbox's rows for --hl7 (NULL: none) */
    outbox_t *fhir_lane;   /* and for --fhir-server */
    const char *hl7_url, *fhir_url;
    bool outbox_high[2];   /* a lane above 90% of --outbox-max: warned once until it drains */
    associations_t assoc;  /* --hl7: each device's patient and bed */
    /* HL7 messages encoded for a device without one; read by the metrics thread */
    atomic_uint_fast64_t unassociated;
};

static void on_audit(void *ctx, const mw_audit_event_t *ev);

/* The program's own delivery events in the audit trail, about @p device at @p destination. */
static void audit_hl7(struct outputs *o, const char *destination, const char *event,
                      const char *device, const char *reason)
{
    mw_audit_event_t ev = {.event = event,
                           .peer = destination ? destination : "",
                           .device = device,
                           .reason = reason};
    on_audit(o, &ev);
}

static mw_err sink_hl7(struct outputs *o, const mw_message_t *m)
{
    if (!hl7_has_form(m))
        return MW_OK; /* status and gap records: not sent over HL7 (hl7.h) */
    char msg[HL7_MAX];
    size_t n = 0;
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    const association_t *a = associations_find(&o->assoc, m->device_id);
    mw_err e = hl7_encode(m, a, (uint64_t)now.tv_sec * 1000u + (uint64_t)now.tv_nsec / 1000000u,
                          msg, sizeof msg, &n);
    if (e == MW_OK && a == NULL)
        atomic_fetch_add_explicit(&o->unassociated, 1, memory_order_relaxed);
    return e == MW_OK ? outbox_stage(o->hl7_lane, m->device_id, msg, n) : e;
}

#ifdef MW_HAVE_CURL
/* The identifier's value fhir.c wrote ("DEVICE/SEQ" or "DEVICE/SPACE/SEQ"), for ifNoneExist. */
static bool message_ident(const char *json, size_t n, const char **out, size_t *out_len)
{
    static const char key[] = "\"identifier\":[{\"system\":\"" MW_FHIR_MESSAGE_SYSTEM "\",\"value\":\"";
    const char *p = strstr(json, key);
    if (p == NULL || (size_t)(p - json) >= n)
        return false;
    p += sizeof key - 1;
    const char *end = memchr(p, '"', n - (size_t)(p - json));
    if (end == NULL || end == p || memchr(p, '\\', (size_t)(end - p)) != NULL)
        return false;
    *out = p;
    *out_len = (size_t)(end - p);
    return true;
}

/* An association field in the entry's header line: no TAB or newline. */
static void header_field(char *dst, size_t size, const char *src)
{
    snprintf(dst, size, "%s", src);
    for (char *p = dst; *p; p++)
        if (*p == '\t' || *p == '\n' || *p == '\r')
            *p = ' ';
}

static mw_err sink_fhir(struct outputs *o, const mw_message_t *m)
{
    /* Not clinical (no FHIR form), or the gateway's own events (seq 0): these have no message
     * identifier to make a resend harmless, so they are not sent (docs/hospital-integration.md). */
    if (m->type == MW_MSG_COMMAND_RESULT || m->type == MW_MSG_UNKNOWN || m->seq == 0)
        return MW_OK;
    const association_t *a = associations_find(&o->assoc, m->device_id);
    char dev_ref[46], pat_ref[46];
    fhir_rest_uuid("device", m->device_id, dev_ref);
    if (a)
        fhir_rest_uuid("patient", a->patient_id, pat_ref);
    mw_fhir_options_t opt = {.device_reference = dev_ref, .patient_reference = a ? pat_ref : NULL};
    char line[MW_FHIR_MAX + 512];
    char json[MW_FHIR_MAX];
    size_t n = 0;
    mw_err e = mw_message_to_fhir(m, &opt, json, sizeof json, &n);
    if (e != MW_OK)
        return e;
    const char *ident = NULL;
    size_t ident_len = 0;
    if (!message_ident(json, n, &ident, &ident_len))
        return MW_EINVAL;
    if (a == NULL && o->hl7_lane == NULL) /* with both, counted once, by sink_hl7 */
        atomic_fetch_add_explicit(&o->unassociated, 1, memory_order_relaxed);
    char pid[ASSOC_PATIENT_ID_MAX + 1] = "", name[ASSOC_NAME_MAX + 1] = "",
         loc[ASSOC_LOCATION_MAX + 1] = "";
    if (a) {
        header_field(pid, sizeof pid, a->patient_id);
        header_field(name, sizeof name, a->patient_name);
        header_field(loc, sizeof loc, a->location);
    }
    int h = snprintf(line, sizeof line, "%.*s\t%s\t%s\t%s\n", (int)ident_len, ident, pid, name,
                     loc);
    if (h < 0 || (size_t)h + n >= sizeof line)
        return MW_ENOSPC;
    memcpy(line + h, json, n);
    return outbox_stage(o->fhir_lane, m->device_id, line, (size_t)h + n);
}
#endif

/* A full or nearly full destination, in the log and the audit trail, after a commit. */
static void watch_lane(struct outputs *o, outbox_t *lane, const char *kind, const char *url,
                       bool *high, mw_err e)
{
    outbox_stats_t st;
    outbox_stats(lane, &st);
    char event[32], reason[200];
    if (e == MW_EFULL && st.refused) {
        snprintf(event, sizeof event, "%s_outbox_full", kind);
        snprintf(reason, sizeof reason,
                 "the %s outbox is full: nothing was acknowledged, devices keep their messages "
                 "and resend",
                 kind);
        audit_hl7(o, url, event, "", reason);
        gwlog(GWLOG_ERROR, event, "s:destination", url, "u:depth", (unsigned long long)st.depth,
              "u:max", (unsigned long long)st.max_rows, "s:reason",
              "the destination is not taking messages; devices are not acknowledged", GWLOG_END);
    } else if (!*high && st.depth * 10 >= st.max_rows * 9) {
        *high = true;
        snprintf(event, sizeof event, "%s_outbox_high", kind);
        gwlog(GWLOG_WARN, event, "s:destination", url, "u:depth", (unsigned long long)st.depth,
              "u:max", (unsigned long long)st.max_rows, "s:reason",
              "the outbox is 90% full: at 100% devices are no longer acknowledged", GWLOG_END);
    } else if (*high && st.depth * 10 < st.max_rows * 8) {
        *high = false;
    }
}

static mw_err sink_commit_hl7(struct outputs *o, uint64_t *out_checkpoint)
{
    /* One transaction for every destination's rows: all of them, or none and no ack. */
    mw_err e = outbox_commit(o->ob, out_checkpoint);
    if (o->hl7_lane)
        watch_lane(o, o->hl7_lane, "hl7", o->hl7_url, &o->outbox_high[0], e);
    if (o->fhir_lane)
        watch_lane(o, o->fhir_lane, "fhir", o->fhir_url, &o->outbox_high[1], e);
    return e;
}

static mw_err sink(void *ctx, const mw_message_t *m)
{
    struct outputs *o = ctx;
    char line[MW_FHIR_MAX];
    size_t n = 0;
    if (o->ob) {
        /* A row for each destination, committed together by sink_commit. */
        mw_err e = o->hl7_lane ? sink_hl7(o, m) : MW_OK;
#ifdef MW_HAVE_CURL
        if (e == MW_OK && o->fhir_lane)
            e = sink_fhir(o, m);
#endif
        return e;
    }
    if (format_fhir && m->type == MW_MSG_UNKNOWN)
        return MW_OK; /* nothing to map: kept in --store (docs/fhir-mapping.md) */
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
    if (o->ob)
        return sink_commit_hl7(o, out_checkpoint);
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
    if (o->ob)
        return outbox_recover(o->ob, checkpoint);
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
                                        MW_AUDIT_CERT_RENEWED, "gateway_started",
                                        "gateway_stopped"};
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

/* One audit line to its database, or else to its file; true if it went to standard error. */
static bool emit_audit(struct outputs *o, const char *line)
{
#ifdef MW_HAVE_LIBPQ
    if (o->audit_db && audit_pg_write(o->audit_db, line))
        return false;
#endif
    fprintf(o->audit, "%s\n", line);
    fflush(o->audit);
    return o->audit == stderr;
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
    bool on_stderr = e == MW_OK ? emit_audit(o, line) : o->audit == stderr;
    /* Audit lines already on stderr are not repeated there as log lines. */
    if (!on_stderr)
        log_audit(ev);
}

/* The program's own start and stop records: the address is where it listens, not a peer's,
 * so the JSON line names it "listen" (the FHIR AuditEvent keeps it as the network address). */
static void audit_program_event(struct outputs *o, const char *event, const char *listen,
                                const char *reason)
{
    if (format_fhir) {
        mw_audit_event_t ev = {.event = event, .peer = listen, .device = "", .reason = reason};
        on_audit(o, &ev);
        return;
    }
    /* Our own strings: an address and sentences without quotes or control characters. */
    char line[1024];
    snprintf(line, sizeof line, "{\"event\":\"%s\",\"listen\":\"%s\",\"reason\":\"%s\"}", event,
             listen, reason);
    (void)emit_audit(o, line);
}

/* The key as a log line may show it: a token key's URI up to its query, which may hold the
 * PIN (pin-value); a key file's path as it is. */
static const char *key_shown(const char *key, char *buf, size_t cap)
{
    static const char scheme[] = "pkcs11:";
    for (size_t i = 0; i < sizeof scheme - 1; i++) {
        char c = key[i];
        if (c >= 'A' && c <= 'Z')
            c = (char)(c - 'A' + 'a');
        if (c != scheme[i])
            return key;
    }
    snprintf(buf, cap, "%.*s", (int)strcspn(key, "?"), key);
    return buf;
}

static int usage_error(const char *what, const char *arg)
{
    fprintf(stderr, "medwire-gateway: %s%s%s\nsee 'medwire-gateway --help'\n", what,
            arg ? ": " : "", arg ? arg : "");
    return 2;
}

static FILE *open_out(const char *path, const char *what)
{
    /* Owner-only when created: delivered readings are health data, and the audit trail says
     * who connected when; neither is for every local account, whatever the umask. An existing
     * file keeps the mode its owner gave it. */
    int fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0600);
    FILE *f = fd >= 0 ? fdopen(fd, "a") : NULL;
    if (f == NULL) {
        if (fd >= 0) {
            int saved = errno;
            close(fd);
            errno = saved;
        }
        char why[300];
        snprintf(why, sizeof why, "cannot open %s file '%s': %s", what, path, strerror(errno));
        gwlog(GWLOG_ERROR, "cannot_start", "s:reason", why, GWLOG_END);
    }
    return f;
}

/* A file made by an older version, or by hand, keeps its mode: say so when others can reach
 * what it holds, with the fix. Devices and pipes are the operator's choice and pass. */
/* A PostgreSQL store is a URL, not a file of ours. */
static bool store_is_url(const char *store)
{
    return strncmp(store, "postgresql://", 13) == 0 || strncmp(store, "postgres://", 11) == 0;
}

/* The store as logs show it: a URL's password (between "user:" and "@") becomes "***". */
static void store_for_logs(const char *store, char *out, size_t size)
{
    snprintf(out, size, "%s", store);
    const char *host = store_is_url(store) ? strstr(store, "://") + 3 : NULL;
    const char *at = host ? strchr(host, '@') : NULL;
    const char *colon = host ? strchr(host, ':') : NULL;
    if (at && colon && colon < at)
        snprintf(out, size, "%.*s:***%s", (int)(colon - store), store, at);
    char *q = store_is_url(store) ? strchr(out, '?') : NULL;
    if (q && strstr(q, "password"))
        snprintf(q, size - (size_t)(q - out), "?***");
}

static void warn_if_shared(const char *path, const char *option)
{
    struct stat st;
    if (path == NULL || stat(path, &st) != 0 || !S_ISREG(st.st_mode) ||
        (st.st_mode & (S_IRWXG | S_IRWXO)) == 0)
        return;
    char mode[8], why[300];
    snprintf(mode, sizeof mode, "%04o", (unsigned)(st.st_mode & 07777));
    snprintf(why, sizeof why, "other local users may read or write it: chmod 600 %s", path);
    gwlog(GWLOG_WARN, "file_open_to_others", "s:option", option, "s:file", path, "s:mode", mode,
          "s:reason", why, GWLOG_END);
}

/* The deliveries as /metrics shows them. */
struct hl7_view {
    const struct outputs *o;
    mllp_t *sender;
#ifdef MW_HAVE_CURL
    fhir_rest_t *fsender;
#endif
};

static metrics_hl7_t lane_metrics(const struct outputs *o, outbox_t *lane, const char *kind,
                                  const char *url, const mllp_stats_t *ms)
{
    outbox_stats_t os;
    outbox_stats(lane, &os);
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    uint64_t now_ms = (uint64_t)now.tv_sec * 1000u + (uint64_t)now.tv_nsec / 1000000u;
    return (metrics_hl7_t){
        .kind = kind,
        .destination = url,
        .depth = os.depth,
        .parked_now = os.parked,
        .max_rows = os.max_rows,
        .oldest_age_ms = os.oldest_ms && now_ms > os.oldest_ms ? now_ms - os.oldest_ms : 0,
        .outbox_full = os.full,
        .sent = ms->sent,
        .acked = ms->acked,
        .retried = ms->retried,
        .parked = ms->parked,
        .unassociated = atomic_load_explicit(&o->unassociated, memory_order_relaxed),
        .down = ms->down};
}

static size_t hl7_metrics(void *ctx, metrics_hl7_t *out, size_t max)
{
    const struct hl7_view *v = ctx;
    size_t n = 0;
    if (v->o->hl7_lane && n < max) {
        mllp_stats_t ms = {0};
        if (v->sender)
            mllp_stats(v->sender, &ms);
        out[n++] = lane_metrics(v->o, v->o->hl7_lane, "hl7", v->o->hl7_url, &ms);
    }
#ifdef MW_HAVE_CURL
    if (v->o->fhir_lane && n < max) {
        fhir_rest_stats_t fs = {0};
        if (v->fsender)
            fhir_rest_stats(v->fsender, &fs);
        mllp_stats_t ms = {.sent = fs.sent,
                           .acked = fs.acked,
                           .retried = fs.retried,
                           .parked = fs.parked,
                           .down = fs.down};
        out[n++] = lane_metrics(v->o, v->o->fhir_lane, "fhir", v->o->fhir_url, &ms);
    }
#endif
    return n;
}

/* Messages the sender gave up on, into the audit trail (from the loop's thread). */
static void report_parked(struct outputs *o, mllp_t *sender)
{
    if (sender == NULL)
        return;
    mllp_parked_t p[16];
    size_t n = mllp_take_parked(sender, p, sizeof p / sizeof p[0]);
    for (size_t i = 0; i < n; i++) {
        char reason[160];
        snprintf(reason, sizeof reason,
                 "the HL7 destination refused outbox message %lld (%s) %u times: kept in the "
                 "outbox, parked, not sent again",
                 (long long)p[i].id, p[i].code, MLLP_MAX_REJECTS);
        audit_hl7(o, o->hl7_url, "hl7_parked", p[i].device, reason);
    }
}

#ifdef MW_HAVE_CURL
/* Entries the FHIR server refused, into the audit trail with its diagnostics. */
static void report_fhir_parked(struct outputs *o, fhir_rest_t *sender)
{
    if (sender == NULL)
        return;
    fhir_parked_t p[16];
    size_t n = fhir_rest_take_parked(sender, p, sizeof p / sizeof p[0]);
    for (size_t i = 0; i < n; i++) {
        char reason[400];
        snprintf(reason, sizeof reason,
                 "the FHIR server refused outbox entry %lld (HTTP %ld: %s): kept in the outbox, "
                 "parked, not sent again",
                 (long long)p[i].id, p[i].status, p[i].diagnostics);
        audit_hl7(o, o->fhir_url, "fhir_parked", p[i].device, reason);
    }
}
#endif

/* The clock of the program's own deadlines (control and HTTP clients); never steps. */
static uint64_t monotonic_ms(void)
{
    return mw_clock_monotonic_us(NULL) / 1000u;
}

/* Warns (log and audit) about each credential that expires within @p window_s (expiry.h). */
static void warn_expiry(struct outputs *o, const mw_gateway_t *gw, expiry_watch *w,
                        int64_t window_s, const char *listen)
{
    static const char *const what[EXPIRY_KINDS] = {"certificate", "ca", "crl"};
    static const char *const subject[EXPIRY_KINDS] = {"the gateway's certificate (--cert) expires",
                                                      "a CA certificate (--ca) expires",
                                                      "the CRL (--crl) reaches its next update"};
    static const char *const then[EXPIRY_KINDS] = {
        "devices refuse the gateway after it; issue a new certificate (medwire-pki issue "
        "--role gateway) and send SIGHUP",
        "every device certificate under it is refused after it; bring in the new CA before, "
        "and send SIGHUP",
        "every device is refused after it; run 'medwire-pki crl' and send SIGHUP"};
    mw_gateway_stats_t st;
    mw_gateway_stats(gw, &st);
    const int64_t at[EXPIRY_KINDS] = {st.cert_not_after_s, st.ca_not_after_s, st.crl_next_update_s};
    int64_t now = (int64_t)time(NULL);
    for (int k = 0; k < EXPIRY_KINDS; k++) {
        if (!expiry_due(w, (expiry_kind)k, at[k], now, monotonic_ms(), window_s))
            continue;
        time_t t = (time_t)at[k];
        struct tm tm;
        char when[32], reason[400];
        gmtime_r(&t, &tm);
        strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%SZ", &tm);
        long long left = (long long)((at[k] - now) / 86400);
        if (at[k] <= now)
            snprintf(reason, sizeof reason, "%s on %s, which is past: %s", subject[k], when,
                     then[k]);
        else
            snprintf(reason, sizeof reason, "%s on %s, in %lld days: %s", subject[k], when, left,
                     then[k]);
        gwlog(at[k] <= now ? GWLOG_ERROR : GWLOG_WARN, "credential_expiring", "s:credential",
              what[k], "s:expires", when, "i:days_left", at[k] <= now ? 0LL : left, "s:reason",
              reason, GWLOG_END);
        audit_program_event(o, "credential_expiring", listen, reason);
    }
}

/* --est-ca-cmd's runs, stopped at exit whichever way the gateway ends. */
static est_cmd *est_runner;

static void stop_est_runner(void)
{
    est_cmd_free(&est_runner);
}

int main(int argc, char **argv)
{
    const char *listen = NULL, *ca = NULL, *cert = NULL, *key = NULL;
    const char *out_path = NULL, *audit_path = NULL, *port_file = NULL;
    const char *store = "medwire-gateway.db", *gateway_id = NULL;
    const char *control_path = NULL;
    const char *crl = NULL, *est_dir = NULL, *est_command = NULL;
    unsigned long est_days = 365, expiry_days = 30, est_timeout_s = 300, est_retry_s = 10;
    const char *format = "json";
    const char *metrics_addr = NULL, *metrics_port_file = NULL;
    const char *log_level = "info", *log_format = "text";
    const char *hl7_url = NULL, *outbox_path = NULL, *assoc_path = NULL;
    mllp_tls_t hl7_tls = {NULL, NULL, NULL};
    unsigned long outbox_max = OUTBOX_DEFAULT_MAX, hl7_batch = MLLP_BATCH_DEFAULT;
    const char *fhir_url = NULL, *fhir_token = NULL, *fhir_cert = NULL, *fhir_key = NULL,
               *fhir_ca = NULL;
    unsigned long fhir_batch = 50;
    unsigned long max_peers = 0, comm_loss_s = 0, idle_timeout_s = 0;
    unsigned long max_half_open = 0, half_open_per_host = 0, hs_per_host = 0, hs_per_identity = 0,
                  datagrams_per_peer = 0, audit_per_identity = 0;
    bool have_idle_timeout = false; /* without it, the library's default */
    bool have_est_timeout = false, have_est_retry = false;
    argv = cmdline_split(&argc, argv);
    if (argv == NULL) {
        fputs("medwire-gateway: out of memory\n", stderr);
        return 1;
    }
    bool allow_shared_key_file = false;
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
        if (strcmp(a, "--allow-shared-key-file") == 0) {
            allow_shared_key_file = true;
            continue;
        }
        const char **slot = NULL;
        unsigned long *num = NULL, min = 0, max = 0;
        const char *range = NULL;
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
        else if (strcmp(a, "--gateway-id") == 0)
            slot = &gateway_id;
        else if (strcmp(a, "--control") == 0)
            slot = &control_path;
        else if (strcmp(a, "--crl") == 0)
            slot = &crl;
        else if (strcmp(a, "--est-ca") == 0)
            slot = &est_dir;
        else if (strcmp(a, "--est-ca-cmd") == 0)
            slot = &est_command;
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
        else if (strcmp(a, "--hl7") == 0)
            slot = &hl7_url;
        else if (strcmp(a, "--hl7-ca") == 0)
            slot = &hl7_tls.ca_file;
        else if (strcmp(a, "--hl7-cert") == 0)
            slot = &hl7_tls.cert_file;
        else if (strcmp(a, "--hl7-key") == 0)
            slot = &hl7_tls.key_file;
        else if (strcmp(a, "--outbox") == 0)
            slot = &outbox_path;
        else if (strcmp(a, "--associations") == 0)
            slot = &assoc_path;
        else if (strcmp(a, "--fhir-server") == 0)
            slot = &fhir_url;
        else if (strcmp(a, "--fhir-token") == 0)
            slot = &fhir_token;
        else if (strcmp(a, "--fhir-cert") == 0)
            slot = &fhir_cert;
        else if (strcmp(a, "--fhir-key") == 0)
            slot = &fhir_key;
        else if (strcmp(a, "--fhir-ca") == 0)
            slot = &fhir_ca;
        else if (strcmp(a, "--fhir-batch") == 0) {
            num = &fhir_batch;
            min = 1;
            max = 1000;
            range = "--fhir-batch must be a number from 1 to 1000";
        }
        else if (strcmp(a, "--outbox-max") == 0) {
            num = &outbox_max;
            min = 1;
            max = 100000000;
            range = "--outbox-max must be a number from 1 to 100000000";
        } else if (strcmp(a, "--hl7-batch") == 0) {
            num = &hl7_batch;
            min = 1;
            max = HL7_MERGE_MAX;
            range = "--hl7-batch must be a number from 1 to 64";
        } else if (strcmp(a, "--expiry-warning-days") == 0) {
            num = &expiry_days;
            max = 3650;
            range = "--expiry-warning-days must be a number of days from 0 (never) to 3650";
        } else if (strcmp(a, "--est-valid-days") == 0) {
            num = &est_days;
            min = 1;
            max = 3650;
            range = "--est-valid-days must be a number of days from 1 to 3650";
        } else if (strcmp(a, "--est-ca-cmd-timeout") == 0) {
            num = &est_timeout_s;
            min = 1;
            max = 86400;
            range = "--est-ca-cmd-timeout must be a number of seconds from 1 to 86400";
            have_est_timeout = true;
        } else if (strcmp(a, "--est-retry-after") == 0) {
            num = &est_retry_s;
            min = 1;
            max = 3600;
            range = "--est-retry-after must be a number of seconds from 1 to 3600";
            have_est_retry = true;
        } else if (strcmp(a, "--max-peers") == 0) {
            num = &max_peers;
            min = 1;
            max = 1000000;
            range = "--max-peers must be a number from 1 to 1000000";
        } else if (strcmp(a, "--idle-timeout-s") == 0) {
            num = &idle_timeout_s;
            max = 31536000;
            range = "--idle-timeout-s must be a number of seconds from 0 to 31536000 (a year)";
            have_idle_timeout = true;
        } else if (strcmp(a, "--comm-loss-s") == 0) {
            num = &comm_loss_s;
            max = 31536000;
            range = "--comm-loss-s must be a number of seconds from 0 (off) to 31536000 (a year)";
        } else if (strcmp(a, "--max-half-open") == 0) {
            num = &max_half_open;
            min = 1;
            max = 1000000;
            range = "--max-half-open must be a number from 1 to 1000000";
        } else if (strcmp(a, "--max-half-open-per-host") == 0) {
            num = &half_open_per_host;
            min = 1;
            max = 1000000;
            range = "--max-half-open-per-host must be a number from 1 to 1000000";
        } else if (strcmp(a, "--handshakes-per-host-per-s") == 0) {
            num = &hs_per_host;
            min = 1;
            max = 1000000;
            range = "--handshakes-per-host-per-s must be a number from 1 to 1000000";
        } else if (strcmp(a, "--handshakes-per-identity-per-min") == 0) {
            num = &hs_per_identity;
            min = 1;
            max = 1000000;
            range = "--handshakes-per-identity-per-min must be a number from 1 to 1000000";
        } else if (strcmp(a, "--datagrams-per-peer-per-s") == 0) {
            num = &datagrams_per_peer;
            min = 1;
            max = 1000000;
            range = "--datagrams-per-peer-per-s must be a number from 1 to 1000000";
        } else if (strcmp(a, "--audit-per-identity-per-min") == 0) {
            num = &audit_per_identity;
            min = 1;
            max = 1000000;
            range = "--audit-per-identity-per-min must be a number from 1 to 1000000";
        } else
            return usage_error("unknown option", a);
        if (i + 1 >= argc)
            return usage_error("option needs a value", a);
        const char *v = argv[++i];
        if (slot)
            *slot = v;
        else if (!cmdline_num(v, min, max, num))
            return usage_error(range, v);
    }
    if (!listen)
        return usage_error("--listen HOST:PORT is required", NULL);
    if (!cmdline_hostport(listen))
        return usage_error("--listen must be HOST:PORT, e.g. 0.0.0.0:5684 (port 0: the system "
                           "picks one)",
                           listen);
    if (metrics_addr && !cmdline_hostport(metrics_addr))
        return usage_error("--metrics must be HOST:PORT, e.g. 127.0.0.1:9464 (port 0: the system "
                           "picks one)",
                           metrics_addr);
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
    if (est_dir && est_command)
        return usage_error("--est-ca and --est-ca-cmd do not go together: one issuer signs "
                           "renewals",
                           NULL);
    if (have_est_timeout && !est_command)
        return usage_error("--est-ca-cmd-timeout needs --est-ca-cmd CMD", NULL);
    if (have_est_retry && !est_command && !est_dir)
        return usage_error("--est-retry-after needs --est-ca-cmd CMD (or --est-ca DIR)", NULL);
    char hl7_host[256], hl7_port[16];
    bool hl7_secure = false;
    if (hl7_url &&
        !mllp_parse_url(hl7_url, hl7_host, sizeof hl7_host, hl7_port, sizeof hl7_port, &hl7_secure))
        return usage_error("--hl7 must be mllp://HOST:PORT or mllps://HOST:PORT", hl7_url);
    if ((hl7_tls.ca_file || hl7_tls.cert_file || hl7_tls.key_file) && !hl7_secure)
        return usage_error("--hl7-ca, --hl7-cert and --hl7-key need --hl7 mllps://HOST:PORT", NULL);
    if (hl7_secure && hl7_tls.ca_file == NULL)
        return usage_error("--hl7 mllps:// needs --hl7-ca FILE, the CA of the listener's "
                           "certificate",
                           NULL);
    if ((hl7_tls.cert_file == NULL) != (hl7_tls.key_file == NULL))
        return usage_error("--hl7-cert and --hl7-key go together", NULL);
    if (hl7_url && out_path)
        return usage_error("--hl7 and --out do not go together: the gateway keeps one "
                           "checkpoint, of one output",
                           NULL);
    if (hl7_batch != MLLP_BATCH_DEFAULT && !hl7_url)
        return usage_error("--hl7-batch needs --hl7 mllp://HOST:PORT", NULL);
    if ((fhir_token || fhir_cert || fhir_key || fhir_ca || fhir_batch != 50) && !fhir_url)
        return usage_error("--fhir-batch, --fhir-token, --fhir-cert, --fhir-key and --fhir-ca "
                           "need --fhir-server URL",
                           NULL);
    if (fhir_url) {
#ifndef MW_HAVE_CURL
        return usage_error("--fhir-server is not in this build: it was built without libcurl "
                           "(apt install libcurl4-openssl-dev, then rebuild)",
                           fhir_url);
#else
        if (!fhir_rest_url_ok(fhir_url) || strpbrk(fhir_url, "\"\\ \t\r\n") != NULL)
            return usage_error("--fhir-server must be an http:// or https:// base URL, e.g. "
                               "https://fhir.hospital.example/fhir",
                               fhir_url);
        if (out_path)
            return usage_error("--fhir-server and --out do not go together: the gateway keeps "
                               "one checkpoint, of one output",
                               NULL);
        if (fhir_token && access(fhir_token, R_OK) != 0) {
            char why[600];
            snprintf(why, sizeof why, "--fhir-token: cannot read '%s': %s", fhir_token,
                     strerror(errno));
            return usage_error(why, NULL);
        }
        if ((fhir_cert == NULL) != (fhir_key == NULL))
            return usage_error("--fhir-cert and --fhir-key go together (the TLS client "
                               "certificate and its key)",
                               NULL);
#endif
    }
    const char *dest_url = hl7_url ? hl7_url : fhir_url; /* both: one outbox, two lanes */
    if ((outbox_path || outbox_max != OUTBOX_DEFAULT_MAX) && !dest_url)
        return usage_error("--outbox and --outbox-max need --hl7 mllp://HOST:PORT or "
                           "--fhir-server URL",
                           NULL);
    if (assoc_path && !dest_url)
        return usage_error("--associations needs --hl7 mllp://HOST:PORT or --fhir-server URL: "
                           "only those outputs carry patients and beds",
                           NULL);
    struct outputs o = {.out = stdout, .audit = stderr};
    char why_assoc[ASSOC_WHY_MAX];
    if (assoc_path && !associations_load(&o.assoc, assoc_path, why_assoc, sizeof why_assoc))
        return usage_error(why_assoc, NULL);
    if (out_path) {
        if ((o.out = open_out(out_path, "output")) == NULL)
            return 1;
        struct stat st;
        o.out_is_file = fstat(fileno(o.out), &st) == 0 && S_ISREG(st.st_mode);
    }
    bool audit_db = audit_path && store_is_url(audit_path);
    if (audit_path && !audit_db && (o.audit = open_out(audit_path, "audit")) == NULL)
        return 1;
    warn_if_shared(out_path, "--out");
    if (!audit_db)
        warn_if_shared(audit_path, "--audit");
    char outbox_default[4096];
    o.hl7_url = hl7_url;
    o.fhir_url = fhir_url;
    char id_default[300];
    if (gateway_id == NULL) {
        char host[256] = "";
        if (gethostname(host, sizeof host) != 0)
            snprintf(host, sizeof host, "gateway");
        host[sizeof host - 1] = '\0';
        snprintf(id_default, sizeof id_default, "%s/%s", host, listen ? listen : "0.0.0.0:5684");
        gateway_id = id_default;
    }
    char store_shown[600];
    store_for_logs(store, store_shown, sizeof store_shown);
    if (audit_db) {
        /* The trail of every gateway of a site in one table; standard error takes the events
         * the database cannot. */
#ifdef MW_HAVE_LIBPQ
        char why[400];
        if ((o.audit_db = audit_pg_open(audit_path, gateway_id, why, sizeof why)) == NULL) {
            gwlog(GWLOG_ERROR, "cannot_start", "s:reason", why, GWLOG_END);
            return 1;
        }
#else
        gwlog(GWLOG_ERROR, "cannot_start", "s:reason",
              "this medwire-gateway was built without libpq: --audit cannot be a PostgreSQL URL "
              "(apt install libpq-dev and build again, or give --audit FILE)",
              GWLOG_END);
        return 1;
#endif
    }
    if (dest_url) {
        /* With a shared store the outbox is shared too, unless a file of the earlier default
         * still holds messages to deliver: it is kept until the operator retires it. */
        if (outbox_path == NULL && store_is_url(store) &&
            access("medwire-gateway.outbox", F_OK) != 0)
            outbox_path = store;
        if (outbox_path == NULL) {
            snprintf(outbox_default, sizeof outbox_default, "%s.outbox",
                     store_is_url(store) ? "medwire-gateway" : store);
            outbox_path = outbox_default;
        }
        /* The shared outbox's rows go once their gateway's store checkpoint covers them, a
         * table of the store's own database. */
        bool shared = store_is_url(outbox_path);
        if (shared && strcmp(outbox_path, store) != 0)
            return usage_error("--outbox postgresql://... must be the --store's URL: the shared "
                               "outbox lives in the store's database",
                               NULL);
        if (store_is_url(store) && !shared)
            gwlog(GWLOG_WARN, "outbox_not_shared", "s:file", outbox_path, "s:reason",
                  "the outbox is a file of this gateway's: if the gateway is lost, the messages "
                  "in it are not delivered by the others; once it is empty, remove it (or give "
                  "--outbox FILE) to use the shared outbox",
                  GWLOG_END);
        char why[600];
        o.ob = shared ? outbox_open_shared(store, gateway_id, hl7_url ? "hl7" : "fhir",
                                           outbox_max, why, sizeof why)
                      : outbox_open(outbox_path, hl7_url ? "hl7" : "fhir", outbox_max, why,
                                    sizeof why);
        if (o.ob == NULL) {
            gwlog(GWLOG_ERROR, "cannot_start", "s:reason", why, GWLOG_END);
            return 1;
        }
        if (hl7_url)
            o.hl7_lane = o.ob;
        else
            o.fhir_lane = o.ob;
        if (hl7_url && fhir_url && (o.fhir_lane = outbox_add_lane(o.ob, "fhir", why, sizeof why)) == NULL) {
            gwlog(GWLOG_ERROR, "cannot_start", "s:reason", why, GWLOG_END);
            outbox_close(&o.ob);
            return 1;
        }
        uint64_t unclaimed = outbox_unclaimed(o.ob);
        if (unclaimed > 0)
            gwlog(GWLOG_WARN, "outbox_unclaimed", "s:file", shared ? store_shown : outbox_path,
                  "u:messages",
                  (unsigned long long)unclaimed, "s:reason",
                  "messages in the outbox wait for a destination not configured now (--hl7 or "
                  "--fhir-server); they are kept, and go when it is given again",
                  GWLOG_END);
        if (!shared)
            warn_if_shared(outbox_path, "--outbox");
        /* Tests only: a short lease, so that a killed gateway's rows move within seconds. */
        const char *lease = getenv("MW_OUTBOX_LEASE_MS");
        unsigned long lease_ms = 0;
        if (lease && cmdline_num(lease, 100, 3600000, &lease_ms))
            outbox_set_lease(o.ob, (uint32_t)lease_ms);
    }

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
    cfg.allow_shared_key_file = allow_shared_key_file;
    cfg.sink = sink;
    cfg.sink_commit = sink_commit;
    cfg.sink_recover = sink_recover;
    cfg.sink_ctx = &o;
    cfg.store_path = store;
    cfg.store_instance = gateway_id;
    cfg.crl_file = crl;
    est_ca est = {est_dir, (uint32_t)est_days};
    if (est_dir) {
        cfg.est_issue = est_ca_issue;
        cfg.est_ctx = &est;
    }
    if (est_command) {
        char why[600];
        est_runner = est_cmd_new(est_command, ca, (uint32_t)est_timeout_s, why, sizeof why);
        if (est_runner == NULL) {
            gwlog(GWLOG_ERROR, "cannot_start", "s:reason", why, GWLOG_END);
            outbox_close(&o.ob);
            return 1;
        }
        atexit(stop_est_runner);
        cfg.est_issue = est_cmd_issue;
        cfg.est_ctx = est_runner;
    }
    cfg.est_retry_after_s = (uint32_t)est_retry_s;
    cfg.audit = on_audit;
    cfg.audit_ctx = &o;
    if (max_peers)
        cfg.max_peers = (uint32_t)max_peers;
    /* 0 (not given) keeps the library's defaults. */
    cfg.max_half_open = (uint32_t)max_half_open;
    cfg.max_half_open_per_host = (uint32_t)half_open_per_host;
    cfg.handshakes_per_host_per_s = (uint32_t)hs_per_host;
    cfg.handshakes_per_identity_per_min = (uint32_t)hs_per_identity;
    cfg.rate_limit_per_s = (uint32_t)datagrams_per_peer;
    cfg.audit_per_identity_per_min = (uint32_t)audit_per_identity;
    cfg.comm_loss_ms = (uint64_t)comm_loss_s * 1000u;
    if (have_idle_timeout)
        cfg.idle_timeout_ms = (uint64_t)idle_timeout_s * 1000u;
    mw_gateway_t *gw = NULL;
    mw_error_detail_t d;
    mw_err e = mw_gateway_create(&cfg, &gw, &d);
    if (e != MW_OK) {
        gwlog(GWLOG_ERROR, "cannot_start", "s:error", mw_strerror(e), "i:code",
              (long long)d.foreign, "s:reason", d.reason[0] ? d.reason : mw_strerror(e), GWLOG_END);
        outbox_close(&o.ob);
        return 1;
    }
    /* The rows up to the store's checkpoint are the gateway's to deliver; the sender starts
     * with those. */
    mllp_t *sender = NULL;
#ifdef MW_HAVE_CURL
    fhir_rest_t *fsender = NULL;
    if (o.fhir_lane) {
        outbox_release(o.ob);
        char why[600];
        fhir_rest_config_t fc = {.url = fhir_url,
                                 .batch = (unsigned)fhir_batch,
                                 .token_file = fhir_token,
                                 .cert = fhir_cert,
                                 .key = fhir_key,
                                 .ca = fhir_ca};
        /* Tests and benchmarks only: seconds instead of the production backoff. */
        const char *bf = getenv("MW_FHIR_BACKOFF_MS");
        if (bf) {
            unsigned long ms = 0;
            if (cmdline_num(bf, 1, 60000, &ms))
                fc.backoff_first_ms = fc.backoff_max_ms = (uint32_t)ms;
        }
        fsender = fhir_rest_start(&fc, o.fhir_lane, why, sizeof why);
        if (fsender == NULL) {
            gwlog(GWLOG_ERROR, "cannot_start", "s:reason", why, GWLOG_END);
            mw_gateway_destroy(&gw);
            outbox_close(&o.ob);
            return 1;
        }
    }
#endif
    if (o.hl7_lane) {
        outbox_release(o.ob);
        char why[400];
        sender = mllp_start(hl7_url, &hl7_tls, o.hl7_lane, 0, (unsigned)hl7_batch, why, sizeof why);
        if (sender == NULL) {
            gwlog(GWLOG_ERROR, "cannot_start", "s:reason", why, GWLOG_END);
            mw_gateway_destroy(&gw);
#ifdef MW_HAVE_CURL
            fhir_rest_stop(&fsender);
#endif
            outbox_close(&o.ob);
            return 1;
        }
    }
#ifdef MW_HAVE_CURL
    struct hl7_view hv = {&o, sender, fsender};
#else
    struct hl7_view hv = {&o, sender};
#endif
    if (!store_is_url(store))
        warn_if_shared(store, "--store");
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
        if (o.ob)
            metrics_set_hl7(metrics, hl7_metrics, &hv);
        if (metrics_port_file && cmdline_write_port_file(metrics_port_file, metrics_port(metrics)) != 0) {
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
    if (o.ob)
        ctl.assoc = &o.assoc; /* associations are the HL7 output's */

    /* The port file says "ready": written last, once the control socket and the metrics
     * exist, so that whoever waits for it can use all three. */
    if (have_local && port_file && cmdline_write_port_file(port_file, mw_addr_port(&local)) != 0) {
        gwlog(GWLOG_ERROR, "cannot_start", "s:file", port_file, "s:reason",
              "cannot write the port file", "s:error", strerror(errno), GWLOG_END);
        control_close(&ctl);
        metrics_stop(&metrics);
        mw_gateway_destroy(&gw);
        return 1;
    }
    audit_program_event(&o, "gateway_started", local_text, "listening for devices");
    gwlog(GWLOG_INFO, "gateway_started", "s:listen", local_text, "s:metrics_port",
          metrics ? metrics_text : NULL, "s:store", store_shown, "s:gateway_id",
          store_is_url(store) ? gateway_id : NULL, "s:crl", crl, "s:format", format, "s:reason",
          "listening for devices", GWLOG_END);

    /* One loop over the gateway's socket and the control socket: the
     * library's descriptor and timer are what a caller's own loop needs. */
    int rc = 0;
    expiry_watch watch = {{0}, {0}};
    uint64_t expiry_checked = 0;
    while (!stop) {
        if (monotonic_ms() - expiry_checked >= 1000) {
            expiry_checked = monotonic_ms();
            warn_expiry(&o, gw, &watch, (int64_t)expiry_days * 86400, local_text);
        }
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
        int cwait = control_timeout_ms(&ctl, monotonic_ms());
        if (cwait >= 0 && cwait < wait)
            wait = cwait;
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
        if (o.ob) {
            /* mw_gateway_poll has committed the store: what the outbox holds up to its
             * checkpoint may go. */
            outbox_release(o.ob);
            report_parked(&o, sender);
#ifdef MW_HAVE_CURL
            report_fhir_parked(&o, fsender);
#endif
        }
        control_service(&ctl, gw, monotonic_ms());
        metrics_service(metrics, monotonic_ms());
        if (reload) {
            reload = 0;
            /* CA, certificate, key and CRL, all from the same files, all or nothing. */
            mw_error_detail_t rd;
            mw_err re = mw_gateway_reload_credentials(gw, &rd);
            if (re != MW_OK)
                gwlog(GWLOG_ERROR, "credentials_reload_failed", "s:error", mw_strerror(re),
                      "i:code", (long long)rd.foreign, "s:reason", rd.reason, "s:kept",
                      "the previous credentials stay in force", GWLOG_END);
            else {
                char shown[1100];
                gwlog(GWLOG_INFO, "credentials_reloaded", "s:ca", ca, "s:cert", cert, "s:key",
                      key_shown(key, shown, sizeof shown), "s:crl", crl, "s:reason",
                      reload_reason, GWLOG_END);
            }
            if (assoc_path && !associations_reload(&o.assoc, why_assoc, sizeof why_assoc))
                gwlog(GWLOG_ERROR, "associations_reload_failed", "s:file", assoc_path, "s:reason",
                      why_assoc, "s:kept", "the previous associations stay in force", GWLOG_END);
            else if (assoc_path)
                gwlog(GWLOG_INFO, "associations_reloaded", "s:file", assoc_path, "u:associations",
                      (unsigned long long)o.assoc.n, GWLOG_END);
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
    audit_program_event(&o, "gateway_stopped", local_text, summary);
    mw_gateway_destroy(&gw);
    /* What the destination has not acknowledged stays in the outbox for the next start. */
    if (o.ob) {
        outbox_release(o.ob);
        mllp_stop(&sender);
#ifdef MW_HAVE_CURL
        report_fhir_parked(&o, fsender);
        fhir_rest_stop(&fsender);
#endif
        outbox_close(&o.ob);
    }
    gwlog(rc == 0 ? GWLOG_INFO : GWLOG_ERROR, "gateway_stopped", "s:cause",
          stop ? "signal" : "error", "u:delivered", (unsigned long long)st.messages_delivered,
          "u:duplicates", (unsigned long long)st.duplicates, "u:handshakes_completed",
          (unsigned long long)st.handshakes_completed, "u:handshakes_failed",
          (unsigned long long)st.handshakes_failed, GWLOG_END);
    associations_free(&o.assoc);
    if (o.out != stdout)
        fclose(o.out);
    if (o.audit != stderr)
        fclose(o.audit);
#ifdef MW_HAVE_LIBPQ
    audit_pg_close(&o.audit_db);
#endif
    return rc;
}
