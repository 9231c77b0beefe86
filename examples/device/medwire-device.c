/* SPDX-License-Identifier: Apache-2.0 */
/* medwire-device -- a simulated pulse oximeter that sends SpO2 and pulse rate through the device
 * SDK. */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <wolfssl/options.h>
#include <wolfssl/wolfcrypt/settings.h>
#include <wolfssl/wolfcrypt/asn_public.h>

#include "medwire/medwire.h"

#include "cmdline.h"
#include "keyfile.h"
#include "core/wipe.h"
#include "renew.h"

static const char USAGE[] =
    "usage: medwire-device --gateway HOST:PORT [--gateway HOST:PORT ...] --gateway-name NAME\n"
    "                      --ca FILE --cert FILE --key FILE --count N [--interval-ms M]\n"
    "                      [--give-up-s S] [--quiet] [--queue FILE --queue-key FILE]\n"
    "                      [--queue-capacity N] [--group-commit N] [--print-seq]\n"
    "                      [--allow-shared-key-file] [--crl FILE] [--crl-refresh-s S]\n"
    "                      [--ack-timeout-ms M]\n"
    "                      [--renew-before-days N | --renew-csr FILE --renew-cert FILE]\n"
    "                      [--max-retransmit N] [--reconnect-min-ms M]\n"
    "\n"
    "Simulates a pulse oximeter: sends N observations (SpO2 and pulse rate in turn, with\n"
    "an occasional low-SpO2 alarm) to a medwire gateway over mutually authenticated\n"
    "DTLS 1.2, and exits 0 once the gateway has acknowledged every one of them.\n"
    "\n"
    "  --gateway HOST:PORT   the gateway's UDP address; given again (up to 8 in all), the\n"
    "                        gateways of one site in order: when the one in use cannot be\n"
    "                        reached, the device fails over to the next, round robin, and\n"
    "                        sends again what was not acknowledged (a consumer of gateways\n"
    "                        without a shared store may see a message twice: same device,\n"
    "                        space and seq)\n"
    "  --gateway-name NAME   the name the gateway's certificate must carry (every gateway's)\n"
    "  --ca FILE             PEM CA that the gateway's certificate must chain to; the\n"
    "                        gateway's own certificate works here too and pins it: then\n"
    "                        only that certificate is accepted, not another gateway's from\n"
    "                        the same CA, nor this gateway's once it is renewed\n"
    "  --cert FILE           this device's PEM certificate (role device; its CN is the id)\n"
    "  --key FILE            its PEM private key; refused if its group or others may read\n"
    "                        or write it (chmod 600 FILE); or a key kept in a PKCS#11\n"
    "                        token, as an RFC 7512 URI 'pkcs11:token=T;object=K?module-path=\n"
    "                        LIB&pin-source=FILE' (docs/keys.md)\n"
    "  --allow-shared-key-file  accept such a key file anyway\n"
    "  --crl FILE            PEM CRL of the --ca CA ('medwire-pki crl' writes it): a gateway\n"
    "                        whose certificate it lists is refused, on every handshake;\n"
    "                        one past its next update refuses every gateway, so replace\n"
    "                        the file before then (read at start only)\n"
    "  --crl-refresh-s S     fetch the CA's current CRL from the gateway once connected,\n"
    "                        and every S seconds while connected (up to 2592000): taken only\n"
    "                        if the CA signed it and it is not older than ours, and then\n"
    "                        written over --crl FILE for the next start; a gateway it\n"
    "                        revokes is left at once (exit 1); 0: never (default)\n"
    "  --renew-before-days N  when the certificate expires within N days, ask the gateway\n"
    "                        for a new one over the session (EST; the gateway needs\n"
    "                        --est-ca): a new key is made as KEY.new, and once the\n"
    "                        certificate arrives the pair in use is kept as FILE.prev and\n"
    "                        the new pair replaces --cert and --key, used from the next\n"
    "                        start; a power cut at any step is finished at the next start.\n"
    "                        A refused or unanswered renewal is said, and is not an error\n"
    "  --renew-csr FILE      send this PKCS#10 request (DER or PEM) for a new certificate\n"
    "                        over the session, for a new key this program does not hold:\n"
    "                        one made in a PKCS#11 token and signed there by 'medwire-pki\n"
    "                        csr --key pkcs11:...'; the certificate goes to --renew-cert\n"
    "  --renew-cert FILE     where it goes (PEM, written whole); the pair in use is not\n"
    "                        touched: start next with the new --cert and --key. Exit 1 if\n"
    "                        the gateway refused or did not answer\n"
    "  --count N             observations to send (0 or more; 0 with --queue: deliver what\n"
    "                        the queue holds and exit)\n"
    "  --interval-ms M       time between observations (default 0: as fast as acknowledged)\n"
    "  --give-up-s S         exit 1 if not all are acknowledged within S seconds after the\n"
    "                        last observation was made (default 60)\n"
    "  --quiet               no summary line\n"
    "  --queue FILE          keep the offline queue and the sequence numbers in FILE\n"
    "                        (created, mode 0600): messages survive a crash or power cut\n"
    "                        and are sent at the next start; without it they live in RAM\n"
    "  --queue-key FILE      the queue's AES key: 32 bytes, raw or as 64 hex digits\n"
    "                        (e.g. head -c 32 /dev/urandom > FILE); required with --queue\n"
    "  --queue-capacity N    messages the queue holds (default 256); when full the oldest of\n"
    "                        the lowest priority is evicted and reported to the gateway\n"
    "  --group-commit N      sync the queue once per N messages (or 100 ms) instead of once\n"
    "                        per message: faster, but a power cut may lose the last N\n"
    "  --print-seq           print \"queued SEQ\" on stdout once each message is durable\n"
    "  --ack-timeout-ms M    CoAP ACK_TIMEOUT, the first wait for an acknowledgement\n"
    "                        (default 2000)\n"
    "  --max-retransmit N    retransmissions before a gateway is deemed unreachable and the\n"
    "                        device reconnects, or fails over (1-20, default 4)\n"
    "  --reconnect-min-ms M  first reconnection delay, doubled per failure up to 60 s\n"
    "                        (default 1000)\n"
    "  -h, --help            this text;  --version  the version\n"
    "Options take their value as --opt VALUE or --opt=VALUE.\n"
    "\n"
    "Exit status: 0 all acknowledged; 1 not delivered (the message says why);\n"
    "2 bad command line; 3 interrupted.\n";

static volatile sig_atomic_t stop;

/* The certificate renewal of this run (--renew-before-days). */
static struct {
    const char *cert, *key;
    const char *out; /* --renew-cert: the certificate only, to this file */
    bool waiting;    /* asked, not answered */
    bool done;       /* the certificate was kept */
} renewal;

static void on_renewal(void *ctx, mw_err e, const uint8_t *der, size_t len, const char *reason)
{
    (void)ctx;
    renewal.waiting = false;
    if (e != MW_OK) {
        fprintf(stderr,
                "medwire-device: the certificate was not renewed: %s; the one in use stays%s\n",
                reason, renewal.out ? "" : " (asked again at the next start)");
        return;
    }
    if (renewal.out != NULL) {
        uint8_t pem[4096];
        int n = wc_DerToPem(der, (word32)len, pem, sizeof pem, CERT_TYPE);
        if (n > 0 && renew_write_whole(renewal.out, pem, (size_t)n, 0644) == 0) {
            renewal.done = true;
            fprintf(stderr,
                    "medwire-device: the gateway issued %s for the request; start next with "
                    "--cert %s and the request's key\n",
                    renewal.out, renewal.out);
        } else {
            fprintf(stderr,
                    "medwire-device: the gateway issued a certificate, but it cannot be "
                    "written to %s: %s\n",
                    renewal.out, n > 0 ? strerror(errno) : "it does not convert to PEM");
        }
        return;
    }
    if (renew_install(renewal.cert, renewal.key, der, len) == 0)
        fprintf(stderr,
                "medwire-device: renewed: %s and %s hold the new certificate and key, "
                "used from the next start; the previous ones are %s.prev and %s.prev\n",
                renewal.cert, renewal.key, renewal.cert, renewal.key);
}

/* The request of --renew-csr FILE, DER or PEM, as DER into der[0..cap); 0, or -1 after saying
 * why. */
static int read_request(const char *path, uint8_t *der, size_t cap, size_t *len)
{
    uint8_t buf[4096];
    FILE *f = fopen(path, "rb");
    size_t n = f ? fread(buf, 1, sizeof buf, f) : 0;
    bool whole = f != NULL && !ferror(f) && feof(f);
    if (f)
        fclose(f);
    if (!whole || n == 0) {
        fprintf(stderr, "medwire-device: --renew-csr %s: %s\n", path,
                f == NULL ? strerror(errno) : "empty, unreadable or larger than 4 KB");
        return -1;
    }
    if (n > 10 && memcmp(buf, "-----BEGIN", 10) == 0) {
        int k = wc_CertPemToDer(buf, (int)n, der, (int)cap, CERTREQ_TYPE);
        if (k <= 0) {
            fprintf(stderr,
                    "medwire-device: --renew-csr %s is PEM but not a certificate "
                    "request\n",
                    path);
            return -1;
        }
        *len = (size_t)k;
    } else if (n <= cap) {
        memcpy(der, buf, n);
        *len = n;
    } else {
        fprintf(stderr,
                "medwire-device: --renew-csr %s is larger than a request may be (%u "
                "bytes)\n",
                path, (unsigned)cap);
        return -1;
    }
    return 0;
}

/* A CRL taken from the gateway (--crl-refresh-s), kept in --crl FILE for the next start. */
static const char *crl_keep; /* --crl FILE, or NULL */

static void on_crl(void *ctx, const uint8_t *der, size_t len)
{
    (void)ctx;
    const char *path = crl_keep;
    uint8_t pem[MW_CRL_PEM_MAX];
    int n = path ? wc_DerToPem(der, (word32)len, pem, sizeof pem, CRL_TYPE) : 0;
    if (path == NULL)
        return;
    if (n <= 0 || renew_write_whole(path, pem, (size_t)n, 0644) != 0)
        fprintf(stderr,
                "medwire-device: the gateway's newer CRL is in force for this run, but cannot "
                "be written to %s (%s): the next start uses the old one\n",
                path, n <= 0 ? "it does not convert to PEM" : strerror(errno));
}

/* The measurement interval, changeable by the gateway's set_interval command. */
static unsigned long interval_ms;

static mw_command_status on_command(void *ctx, const mw_command_t *cmd)
{
    (void)ctx;
    switch (cmd->kind) {
    case MW_CMD_SET_INTERVAL:
        interval_ms = cmd->u.interval_ms;
        return MW_CMD_DONE;
    case MW_CMD_ACK_ALARM:
        /* A real monitor would silence the alarm's audio signal here. */
        return MW_CMD_DONE;
    case MW_CMD_ROTATE_KEYS:
    default:
        return MW_CMD_UNSUPPORTED;
    }
}

/* A resynchronisation is said on standard error when it happens: what the device held goes
 * again, marked as possible duplicates, and an operator should know why. So is a failover to
 * another gateway, which names the one that could not be reached. */
static void on_audit(void *ctx, const mw_audit_event_t *ev)
{
    (void)ctx;
    if (strcmp(ev->event, MW_AUDIT_RESYNC) == 0 || strcmp(ev->event, MW_AUDIT_FAILOVER) == 0)
        fprintf(stderr, "medwire-device: %s\n", ev->reason);
}

static void on_signal(int sig)
{
    (void)sig;
    stop = 1;
}

static int usage_error(const char *what, const char *arg)
{
    fprintf(stderr, "medwire-device: %s%s%s\nsee 'medwire-device --help'\n", what, arg ? ": " : "",
            arg ? arg : "");
    return 2;
}

/* What a user should check, for the errors that a setting can cause. */
static const char *hint(mw_err e)
{
    switch (e) {
    case MW_ECERT_UNTRUSTED:
        return "check that --ca is the CA that issued the gateway's certificate";
    case MW_ECERT_NAME:
        return "check --gateway-name against the name in the gateway's certificate";
    case MW_ECERT_ROLE:
        return "the certificate has the wrong role: issue it with 'medwire-pki issue --role ...'";
    case MW_ECERT_EXPIRED:
    case MW_ECERT_NOT_YET_VALID:
        return "check the certificate's validity dates and this machine's clock";
    case MW_ECERT_REVOKED:
        return "--crl lists the gateway's certificate (revoked at its CA), or is past its next "
               "update: 'medwire-pki crl' writes a current one";
    case MW_EPEER_ALERT:
        return "the gateway refused this device: check that its certificate is issued by the "
               "gateway's CA, valid today and of role device";
    case MW_ECERT_LOAD:
        return "check the --ca, --cert, --key and --crl files: the key must match the "
               "certificate, the CRL be the --ca CA's and not past its next update";
    case MW_ECOAP_RESPONSE:
        return "the gateway refused the messages themselves";
    default:
        return NULL;
    }
}

static int fail(const mw_client_t *c, mw_err e)
{
    mw_error_detail_t d;
    mw_client_last_error(c, &d);
    /* Some reasons already say what to check; a second hint would only repeat it. */
    const char *h = strstr(d.reason, "; check ") ? NULL : hint(d.err != MW_OK ? d.err : e);
    fprintf(stderr, "medwire-device: cannot deliver: %s%s%s\n",
            d.reason[0] ? d.reason : mw_strerror(e), h ? "; " : "", h ? h : "");
    return 1;
}

/* Says, at --give-up-s, how many observations are left and why: most often a gateway that
 * cannot be reached, which the client retries without end and so never reports as fatal. */
static void give_up(const mw_client_t *c, const char *const *gws, unsigned long give_up_s,
                    unsigned long count, bool queued)
{
    mw_client_stats_t st;
    mw_client_stats(c, &st);
    const char *gw = gws[st.gateway_index]; /* the one in use, or tried, last */
    mw_error_detail_t d;
    mw_client_last_error(c, &d);
    /* Alarms, command results and gap records wait in the same queue: they are not counted
     * as observations. */
    char left[160];
    if (queued)
        snprintf(left, sizeof left,
                 "%llu observations not acknowledged (kept in the queue file for the next start)",
                 (unsigned long long)st.observations_pending);
    else
        snprintf(left, sizeof left, "%llu of %lu observations not acknowledged",
                 (unsigned long long)st.observations_pending, count);
    if (d.err == MW_EHANDSHAKE_TIMEOUT || d.err == MW_ECOAP_GIVEUP ||
        (d.err == MW_OK && !st.connected)) {
        fprintf(stderr,
                "medwire-device: gave up after %lu s: %s: the gateway %s could not be reached; "
                "check that medwire-gateway runs there and listens on that UDP port "
                "(--gateway HOST:PORT), and that no firewall drops UDP between them\n",
                give_up_s, left, gw);
    } else if (d.err != MW_OK) {
        const char *h = strstr(d.reason, "; check ") ? NULL : hint(d.err);
        fprintf(stderr, "medwire-device: gave up after %lu s: %s: %s%s%s\n", give_up_s, left,
                d.reason, h ? "; " : "", h ? h : "");
    } else {
        fprintf(stderr,
                "medwire-device: gave up after %lu s: %s: the gateway %s is connected but did "
                "not acknowledge them in time; check its log\n",
                give_up_s, left, gw);
    }
}

int main(int argc, char **argv)
{
    const char *gws[MW_GATEWAYS_MAX] = {NULL}, *gw_name = NULL, *ca = NULL, *cert = NULL;
    const char *key = NULL, *crl = NULL, *queue = NULL, *queue_key = NULL;
    const char *renew_csr = NULL, *renew_cert = NULL;
    unsigned long renew_days = 0, crl_refresh_s = 0;
    size_t n_gws = 0;
    unsigned long count = 0, give_up_s = 60, capacity = 256, group_commit = 0;
    unsigned long ack_timeout_ms = 2000, max_retransmit = 4, reconnect_min_ms = 1000;
    bool have_count = false, quiet = false, print_seq = false, allow_shared_key_file = false;
    argv = cmdline_split(&argc, argv);
    if (argv == NULL) {
        fputs("medwire-device: out of memory\n", stderr);
        return 1;
    }
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
            fputs(USAGE, stdout);
            return 0;
        }
        if (strcmp(a, "--version") == 0) {
            printf("medwire-device %s\n", MW_VERSION);
            return 0;
        }
        if (strcmp(a, "--quiet") == 0) {
            quiet = true;
            continue;
        }
        if (strcmp(a, "--print-seq") == 0) {
            print_seq = true;
            continue;
        }
        if (strcmp(a, "--allow-shared-key-file") == 0) {
            allow_shared_key_file = true;
            continue;
        }
        const char **slot = NULL;
        unsigned long *num = NULL, max = 0;
        if (strcmp(a, "--gateway") == 0) {
            if (n_gws == MW_GATEWAYS_MAX)
                return usage_error("--gateway is given more than 8 times", a);
            slot = &gws[n_gws++];
        } else if (strcmp(a, "--gateway-name") == 0)
            slot = &gw_name;
        else if (strcmp(a, "--ca") == 0)
            slot = &ca;
        else if (strcmp(a, "--cert") == 0)
            slot = &cert;
        else if (strcmp(a, "--key") == 0)
            slot = &key;
        else if (strcmp(a, "--crl") == 0)
            slot = &crl;
        else if (strcmp(a, "--renew-csr") == 0)
            slot = &renew_csr;
        else if (strcmp(a, "--renew-cert") == 0)
            slot = &renew_cert;
        else if (strcmp(a, "--queue") == 0)
            slot = &queue;
        else if (strcmp(a, "--queue-key") == 0)
            slot = &queue_key;
        else if (strcmp(a, "--queue-capacity") == 0) {
            num = &capacity;
            max = 1000000;
        } else if (strcmp(a, "--group-commit") == 0) {
            num = &group_commit;
            max = 65536;
        } else if (strcmp(a, "--count") == 0) {
            num = &count;
            max = 100000000;
            have_count = true;
        } else if (strcmp(a, "--interval-ms") == 0) {
            num = &interval_ms;
            max = 86400000;
        } else if (strcmp(a, "--give-up-s") == 0) {
            num = &give_up_s;
            max = 86400;
        } else if (strcmp(a, "--ack-timeout-ms") == 0) {
            num = &ack_timeout_ms;
            max = 600000;
        } else if (strcmp(a, "--max-retransmit") == 0) {
            num = &max_retransmit;
            max = 20;
        } else if (strcmp(a, "--crl-refresh-s") == 0) {
            num = &crl_refresh_s;
            max = 2592000;
        } else if (strcmp(a, "--renew-before-days") == 0) {
            num = &renew_days;
            max = 3650;
        } else if (strcmp(a, "--reconnect-min-ms") == 0) {
            num = &reconnect_min_ms;
            max = 60000;
        } else
            return usage_error("unknown option", a);
        if (i + 1 >= argc)
            return usage_error("option needs a value", a);
        const char *v = argv[++i];
        if (slot)
            *slot = v;
        else if (!cmdline_num(v, 0, max, num))
            return usage_error("not a valid number for this option", a);
    }
    if (n_gws == 0 || !gw_name)
        return usage_error("--gateway HOST:PORT and --gateway-name NAME are required", NULL);
    for (size_t i = 0; i < n_gws; i++)
        if (!cmdline_hostport(gws[i]))
            return usage_error("--gateway must be HOST:PORT, e.g. 10.0.0.5:5684", gws[i]);
    if (ack_timeout_ms == 0 || max_retransmit == 0 || reconnect_min_ms == 0)
        return usage_error("--ack-timeout-ms, --max-retransmit and --reconnect-min-ms must be "
                           "at least 1",
                           NULL);
    if (!ca || !cert || !key)
        return usage_error("--ca, --cert and --key are required", NULL);
    if (!have_count)
        return usage_error("--count N is required", NULL);
    if ((renew_csr == NULL) != (renew_cert == NULL))
        return usage_error("--renew-csr and --renew-cert go together", NULL);
    if (renew_csr != NULL && renew_days > 0)
        return usage_error("--renew-csr and --renew-before-days do not go together: one renewal "
                           "at a time",
                           NULL);
    uint8_t given_csr[MW_CSR_MAX];
    size_t given_len = 0;
    if (renew_csr != NULL && read_request(renew_csr, given_csr, sizeof given_csr, &given_len) != 0)
        return 2;
    if (renew_days > 0 && strncmp(key, "pkcs11:", 7) == 0)
        return usage_error("--renew-before-days makes the new key in a file; with a key in a "
                           "token, renew with medwire-pki csr and issue --csr",
                           NULL);
    if ((queue == NULL) != (queue_key == NULL))
        return usage_error("--queue FILE and --queue-key FILE go together", NULL);
    if (capacity == 0)
        return usage_error("--queue-capacity must be at least 1", NULL);

    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);

    mw_client_config_t cfg;
    mw_client_config_init(&cfg);
    cfg.gateways = gws;
    cfg.n_gateways = n_gws;
    cfg.ack_timeout_ms = (uint32_t)ack_timeout_ms;
    cfg.max_retransmit = (uint8_t)max_retransmit;
    cfg.reconnect_min_ms = (uint32_t)reconnect_min_ms;
    cfg.gateway_name = gw_name;
    cfg.ca_file = ca;
    cfg.cert_file = cert;
    cfg.key_file = key;
    cfg.crl_file = crl;
    cfg.crl_refresh_s = (uint32_t)crl_refresh_s;
    cfg.on_crl = on_crl;
    crl_keep = crl;
    if (renew_csr != NULL) {
        renewal.out = renew_cert;
        cfg.on_renewal = on_renewal;
    }
    if (renew_days > 0) {
        /* A renewal a power cut interrupted is finished before the pair is read. */
        if (renew_recover(cert, key) != 0)
            return 1;
        renewal.cert = cert;
        renewal.key = key;
        cfg.on_renewal = on_renewal;
    }
    cfg.allow_shared_key_file = allow_shared_key_file;
    cfg.on_command = on_command;
    cfg.audit = on_audit;
    cfg.queue_capacity = (uint32_t)capacity;
    cfg.group_commit_n = (uint32_t)group_commit;
    mw_error_detail_t d = {0};
    mw_err e;
    mw_storage_t region;
    uint8_t qkey[32];
    memset(&region, 0, sizeof region);
    if (queue != NULL) {
        /* The sequence numbers persist with the queue. */
        uint32_t size = 0;
        if (mw_client_storage_size(cfg.queue_capacity, 1, 1, &size) != MW_OK)
            return usage_error("--queue-capacity is too large", NULL);
        if (keyfile_read("medwire-device", queue_key, qkey) != 0)
            return 1;
        e = mw_storage_file_open(queue, size, &region, &d);
        if (e != MW_OK) {
            /* EAGAIN: the lock is held, by another simulator given the same file. */
            fprintf(stderr, "medwire-device: cannot use the queue file: %s%s\n", d.reason,
                    d.foreign == EAGAIN ? "; is another medwire-device running with this --queue? "
                                          "Stop it, or give each device a queue file of its own"
                                        : "");
            return 1;
        }
        cfg.storage = &region;
        cfg.queue_key = qkey;
        cfg.queue_key_len = sizeof qkey;
    }
    /* Without a queue file every start numbers from 1 in a new random sequence space, which the
     * gateway tells apart from earlier runs: no clock is involved, so a clock set back repeats
     * nothing. */
    mw_client_t *c = NULL;
    e = mw_client_open(&cfg, &c, &d);
    mwi_wipe(qkey, sizeof qkey);
    if (e != MW_OK) {
        const char *h = hint(e);
        if (queue != NULL && e == MW_ECONFIG && strstr(d.reason, "key") != NULL)
            h = "--queue-key is not the key this queue file was written with";
        fprintf(stderr, "medwire-device: cannot start: %s%s%s\n", d.reason, h ? "; " : "",
                h ? h : "");
        mw_storage_file_close(&region);
        return 1;
    }
    if (renew_days > 0) {
        mw_client_stats_t cs;
        mw_client_stats(c, &cs);
        time_t t = (time_t)cs.cert_not_after_s;
        uint8_t csr[MW_CSR_MAX];
        size_t csr_len = 0;
        if (cs.cert_not_after_s != 0 &&
            cs.cert_not_after_s - (int64_t)time(NULL) <= (int64_t)renew_days * 86400) {
            struct tm tm;
            char when[32];
            gmtime_r(&t, &tm);
            strftime(when, sizeof when, "%Y-%m-%d %H:%M:%S UTC", &tm);
            fprintf(stderr,
                    "medwire-device: %s expires on %s, within --renew-before-days %lu: "
                    "asking the gateway for a new certificate\n",
                    cert, when, renew_days);
            if (renew_request(key, mw_client_device_id(c), csr, sizeof csr, &csr_len) == 0 &&
                mw_client_renew(c, csr, csr_len) == MW_OK)
                renewal.waiting = true;
        }
    }
    if (renew_csr != NULL) {
        e = mw_client_renew(c, given_csr, given_len);
        if (e != MW_OK) {
            fprintf(stderr, "medwire-device: cannot send the request %s: %s\n", renew_csr,
                    mw_strerror(e));
            mw_client_close(&c);
            mw_storage_file_close(&region);
            return 1;
        }
        renewal.waiting = true;
    }
    mw_clock_t clk = mw_clock_system();
    uint64_t now = clk.now_ms(clk.ctx);
    uint64_t next_at = now;
    uint64_t made = 0, alarms = 0;
    uint64_t last_made_ms = now;
    /* A deterministic waveform: readings vary, and every 25th SpO2 dips low
     * enough to raise an alarm, so alarms are exercised end to end. */
    while (!stop) {
        now = clk.now_ms(clk.ctx);
        while (made < count && now >= next_at && mw_client_pending(c) < 200) {
            mw_observation_t o;
            memset(&o, 0, sizeof o);
            uint64_t k = made / 2;
            if (made % 2 == 0) {
                o.mdc_code = MW_MDC_PULS_OXIM_SAT_O2;
                o.mantissa = (k % 25 == 24) ? 88 : 95 + (int64_t)(k % 4);
                snprintf(o.unit, sizeof o.unit, "%%");
            } else {
                o.mdc_code = MW_MDC_PULS_OXIM_PULS_RATE;
                o.mantissa = 68 + (int64_t)(k % 9);
                snprintf(o.unit, sizeof o.unit, "/min");
            }
            o.status = MW_MEAS_VALID;
            uint64_t seq = 0;
            e = mw_client_send_observation(c, &o, &seq);
            if (e == MW_EFULL)
                break;
            if (e != MW_OK) {
                int rc = fail(c, e);
                mw_client_close(&c);
                mw_storage_file_close(&region);
                return rc;
            }
            if (print_seq) {
                printf("queued %llu\n", (unsigned long long)seq);
                fflush(stdout);
            }
            if (o.mdc_code == MW_MDC_PULS_OXIM_SAT_O2 && o.mantissa < 90) {
                mw_alarm_t al;
                memset(&al, 0, sizeof al);
                al.mdc_code = MW_MDC_EVT_LO;
                al.priority = MW_ALARM_MEDIUM;
                al.state = MW_ALARM_ACTIVE;
                snprintf(al.text, sizeof al.text, "SpO2 low: %lld %%", (long long)o.mantissa);
                if (mw_client_raise_alarm(c, &al, NULL) == MW_OK)
                    alarms++;
            }
            made++;
            last_made_ms = now;
            next_at = interval_ms ? next_at + interval_ms : now;
        }
        /* With --crl-refresh-s, a run also waits for its CRL fetch (taken or refused). */
        mw_client_stats_t cs;
        mw_client_stats(c, &cs);
        bool crl_waiting = crl_refresh_s > 0 && cs.crls_taken + cs.crls_refused == 0;
        if (made == count && mw_client_pending(c) == 0 && !renewal.waiting && !crl_waiting)
            break;
        if (made == count && now - last_made_ms > give_up_s * 1000u && mw_client_pending(c) == 0) {
            fprintf(stderr,
                    "medwire-device: the %s not answered within %lu s; asked again at "
                    "the next start\n",
                    renewal.waiting ? "certificate request was" : "CRL fetch was", give_up_s);
            break;
        }
        if (made == count && now - last_made_ms > give_up_s * 1000u) {
            give_up(c, gws, give_up_s, count, queue != NULL);
            mw_client_close(&c);
            mw_storage_file_close(&region);
            return 1;
        }
        int wait = 100;
        if (made < count && interval_ms) {
            uint64_t t = clk.now_ms(clk.ctx);
            wait = next_at > t ? (int)(next_at - t < 100 ? next_at - t : 100) : 0;
        }
        e = mw_client_poll(c, wait);
        if (e != MW_OK && e != MW_EAGAIN) {
            int rc = fail(c, e);
            mw_client_close(&c);
            mw_storage_file_close(&region);
            return rc;
        }
    }
    mw_client_stats_t st;
    mw_client_stats(c, &st);
    if (stop) {
        fprintf(stderr, "medwire-device: interrupted with %llu messages unacknowledged\n",
                (unsigned long long)st.messages_pending);
        mw_client_close(&c);
        mw_storage_file_close(&region);
        return 3;
    }
    if (!quiet) {
        fprintf(stderr,
                "medwire-device: %s: %llu observations and %llu alarms acknowledged; "
                "%llu handshakes, %llu requests, %llu retransmissions, %llu bytes sent and "
                "%llu received in %llu and %llu datagrams\n",
                mw_client_device_id(c), (unsigned long long)made, (unsigned long long)alarms,
                (unsigned long long)st.handshakes, (unsigned long long)st.requests_sent,
                (unsigned long long)st.retransmissions, (unsigned long long)st.bytes_sent,
                (unsigned long long)st.bytes_received, (unsigned long long)st.datagrams_sent,
                (unsigned long long)st.datagrams_received);
        if (st.failovers > 0)
            fprintf(stderr, "medwire-device: %llu failover(s); the gateway in use: %s\n",
                    (unsigned long long)st.failovers, gws[st.gateway_index]);
        if (st.resyncs > 0)
            fprintf(stderr,
                    "medwire-device: %llu resynchronisation(s): the gateway could not judge some "
                    "sequence numbers (lost or restored queue file?); they were sent again in "
                    "sequence space %016llx, marked as possible duplicates\n",
                    (unsigned long long)st.resyncs, (unsigned long long)st.space);
    }
    mw_client_close(&c);
    mw_storage_file_close(&region);
    if (renew_csr != NULL && !renewal.done) {
        fprintf(stderr, "medwire-device: no certificate was issued for %s (see above)\n",
                renew_csr);
        return 1;
    }
    return 0;
}
