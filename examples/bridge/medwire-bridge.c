/* SPDX-License-Identifier: Apache-2.0 */
/* medwire-bridge -- a legacy device's first hop: HL7 v2 ORU^R01 in over MLLP (TCP or a serial
 * line), each result durable in the device SDK's encrypted queue before the device gets its ACK,
 * then on to a medwire gateway over mutually authenticated DTLS 1.2 as the bridge's identity. */
#define _GNU_SOURCE /* accept4 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#include "medwire/medwire.h"

#include "cmdline.h"
#include "core/wipe.h"
#include "hl7v2.h"
#include "journal.h"
#include "keyfile.h"

static const char USAGE[] =
    "usage: medwire-bridge --gateway HOST:PORT --gateway-name NAME --ca FILE --cert FILE\n"
    "                      --key FILE --queue FILE --queue-key FILE\n"
    "                      (--listen-mllp HOST:PORT [--allow ADDR[/BITS]]... |\n"
    "                       --serial DEVICE [--baud N])\n"
    "                      [--queue-capacity N] [--max-message BYTES] [--audit FILE]\n"
    "                      [--port-file FILE] [--allow-shared-key-file] [--quiet]\n"
    "\n"
    "Receives HL7 v2 ORU^R01 results (IHE PCD-01; ORU^R40 alarms, PCD-04) from a legacy\n"
    "device, over MLLP on a local TCP port or over a serial line, and sends them to a medwire\n"
    "gateway through the device SDK, over mutually authenticated DTLS 1.2, as this bridge's\n"
    "identity; each result carries the legacy device's identifier (OBX-18, else MSH-3).\n"
    "The legacy device gets ACK AA only once every result of its message is durable in the\n"
    "bridge's encrypted queue; AE or AR, with the reason in ERR, when the message cannot be\n"
    "mapped or the queue is full. Nothing from the hospital side goes to the legacy device.\n"
    "\n"
    "  --gateway HOST:PORT   the gateway's UDP address; up to 8 of them, the gateways of one\n"
    "                        site, in order: when the one in use cannot be reached the\n"
    "                        bridge moves to the next (docs/protocol.md section 6)\n"
    "  --gateway-name NAME   the name the gateway's certificate must carry\n"
    "  --ca FILE             PEM CA that the gateway's certificate must chain to\n"
    "  --cert FILE           this bridge's PEM certificate (role device; its CN is its id)\n"
    "  --key FILE            its PEM private key (chmod 600), or a PKCS#11 URI (pkcs11:...)\n"
    "  --allow-shared-key-file  accept a key file its group or others may read\n"
    "  --queue FILE          the queue file (created, mode 0600); FILE.journal beside it\n"
    "                        remembers each sender's last message, so that a message sent\n"
    "                        again is not queued twice\n"
    "  --queue-key FILE      the queue's AES key: 32 bytes, raw or as 64 hex digits\n"
    "  --queue-capacity N    results the queue holds (default 4096); a message that does not\n"
    "                        fit whole is answered AE and queues nothing\n"
    "  --listen-mllp HOST:PORT  accept MLLP connections there (port 0: one the system picks)\n"
    "  --allow ADDR[/BITS]   accept MLLP connections only from these addresses (repeatable);\n"
    "                        required unless HOST is a loopback address, which alone allows\n"
    "                        loopback peers\n"
    "  --serial DEVICE       read MLLP frames from a serial line instead (e.g. /dev/ttyS0),\n"
    "  --baud N              at N baud, 8N1, no flow control (default 9600)\n"
    "  --max-message BYTES   longest HL7 message taken (default 65536); a longer one gets AR\n"
    "  --audit FILE          append every refusal and the SDK's security events to FILE, one\n"
    "                        JSON object per line (default: standard error)\n"
    "  --port-file FILE      once listening, write the bound TCP port to FILE\n"
    "  --quiet               no summary at exit\n"
    "  -h, --help            this text;  --version  the version\n"
    "Options take their value as --opt VALUE or --opt=VALUE.\n"
    "\n"
    "Runs until SIGINT or SIGTERM; what is not yet delivered stays in the queue for the next\n"
    "start. Exit status: 0 stopped by a signal; 1 cannot start or the queue failed (nothing\n"
    "acknowledged is lost: restart it); 2 bad command line.\n";

#define PROG            "medwire-bridge"
#define MAX_CONNECTIONS 8
#define MAX_ALLOW       32
#define ACK_MAX         HL7V2_ACK_MAX
#define ACK_WRITE_MS    2000

static volatile sig_atomic_t stop;

static void on_signal(int sig)
{
    (void)sig;
    stop = 1;
}

static int usage_error(const char *what, const char *arg)
{
    fprintf(stderr, PROG ": %s%s%s\nsee '" PROG " --help'\n", what, arg ? ": " : "",
            arg ? arg : "");
    return 2;
}

static uint64_t wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/* ---- the audit trail ---- */

static FILE *audit_out;

static void audit(const char *event, const char *peer, const char *source, mw_err err,
                  const char *reason)
{
    mw_audit_event_t ev = {.event = event,
                           .peer = peer ? peer : "",
                           .device = source ? source : "",
                           .err = err,
                           .foreign = 0,
                           .reason = reason ? reason : ""};
    char line[1024];
    size_t len = 0;
    if (mw_audit_to_json(&ev, line, sizeof line, &len) != MW_OK)
        return;
    fprintf(audit_out, "{\"time_ms\":%llu,%s\n", (unsigned long long)wall_ms(), line + 1);
    fflush(audit_out);
}

static void on_sdk_audit(void *ctx, const mw_audit_event_t *ev)
{
    (void)ctx;
    char line[1024];
    size_t len = 0;
    if (mw_audit_to_json(ev, line, sizeof line, &len) != MW_OK)
        return;
    fprintf(audit_out, "{\"time_ms\":%llu,%s\n", (unsigned long long)wall_ms(), line + 1);
    fflush(audit_out);
}

/* The bridge runs no command from the hospital side: it has nothing to pass to the legacy
 * device but ACKs. */
static mw_command_status on_command(void *ctx, const mw_command_t *cmd)
{
    (void)ctx;
    (void)cmd;
    return MW_CMD_UNSUPPORTED;
}

/* ---- who may connect ---- */

typedef struct allow {
    int family;
    uint8_t addr[16];
    unsigned bits;
} allow_t;

static int parse_allow(const char *s, allow_t *out)
{
    char host[64];
    const char *slash = strchr(s, '/');
    size_t hl = slash ? (size_t)(slash - s) : strlen(s);
    if (hl == 0 || hl >= sizeof host)
        return -1;
    memcpy(host, s, hl);
    host[hl] = '\0';
    memset(out, 0, sizeof *out);
    if (inet_pton(AF_INET, host, out->addr) == 1) {
        out->family = AF_INET;
        out->bits = 32;
    } else if (inet_pton(AF_INET6, host, out->addr) == 1) {
        out->family = AF_INET6;
        out->bits = 128;
    } else {
        return -1;
    }
    if (slash) {
        unsigned long b;
        if (!cmdline_num(slash + 1, 0, out->bits, &b))
            return -1;
        out->bits = (unsigned)b;
    }
    return 0;
}

/* An IPv4 peer on a dual-stack socket arrives as ::ffff:a.b.c.d: it is judged as IPv4. */
static void peer_addr(const struct sockaddr_storage *ss, int *family, uint8_t addr[16])
{
    memset(addr, 0, 16);
    if (ss->ss_family == AF_INET) {
        *family = AF_INET;
        memcpy(addr, &((const struct sockaddr_in *)ss)->sin_addr, 4);
        return;
    }
    const struct sockaddr_in6 *s6 = (const struct sockaddr_in6 *)ss;
    if (IN6_IS_ADDR_V4MAPPED(&s6->sin6_addr)) {
        *family = AF_INET;
        memcpy(addr, s6->sin6_addr.s6_addr + 12, 4);
        return;
    }
    *family = AF_INET6;
    memcpy(addr, &s6->sin6_addr, 16);
}

static bool allowed(const allow_t *list, size_t n, bool loopback_only,
                    const struct sockaddr_storage *ss)
{
    int family;
    uint8_t a[16];
    peer_addr(ss, &family, a);
    if (n == 0 && loopback_only) {
        static const uint8_t v6_loopback[16] = {[15] = 1};
        return (family == AF_INET && a[0] == 127) ||
               (family == AF_INET6 && memcmp(a, v6_loopback, 16) == 0);
    }
    for (size_t i = 0; i < n; i++) {
        if (list[i].family != family)
            continue;
        unsigned bits = list[i].bits, full = bits / 8, rest = bits % 8;
        if (memcmp(a, list[i].addr, full) != 0)
            continue;
        if (rest && ((a[full] ^ list[i].addr[full]) & (uint8_t)(0xff00u >> rest)) != 0)
            continue;
        return true;
    }
    return false;
}

static void format_peer(const struct sockaddr_storage *ss, char *out, size_t size)
{
    char host[INET6_ADDRSTRLEN] = "?";
    unsigned port = 0;
    int family;
    uint8_t a[16];
    peer_addr(ss, &family, a);
    inet_ntop(family, a, host, sizeof host);
    if (ss->ss_family == AF_INET)
        port = ntohs(((const struct sockaddr_in *)ss)->sin_port);
    else
        port = ntohs(((const struct sockaddr_in6 *)ss)->sin6_port);
    snprintf(out, size, family == AF_INET6 ? "[%s]:%u" : "%s:%u", host, port);
}

/* ---- the legacy side: MLLP connections and the serial line ---- */

typedef struct conn {
    int fd;
    bool serial;
    char peer[64];
    hl7v2_deframer_t deframer;
    char *buf;
} conn_t;

typedef struct bridge {
    mw_client_t *client;
    journal_t *journal;
    conn_t conns[MAX_CONNECTIONS + 1]; /* the serial line is one more */
    size_t max_message;
    uint64_t frames, accepted, duplicates, items, rejected_ae, rejected_ar, too_large, queue_full,
        refused_connections;
    bool failed; /* the queue failed: stop and let the supervisor restart the bridge */
} bridge_t;

/* Writes all of @p len bytes within ACK_WRITE_MS; false if the legacy device does not take
 * them (it is then disconnected: an ACK it never reads helps no one). */
static bool write_all(int fd, const uint8_t *p, size_t len)
{
    int waited = 0;
    while (len > 0) {
        ssize_t w = write(fd, p, len);
        if (w > 0) {
            p += w;
            len -= (size_t)w;
            continue;
        }
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK) && waited < ACK_WRITE_MS) {
            struct pollfd pfd = {.fd = fd, .events = POLLOUT};
            poll(&pfd, 1, 100);
            waited += 100;
            continue;
        }
        return false;
    }
    return true;
}

static bool send_ack(conn_t *c, const char *msg, size_t len, const char *code,
                     const hl7v2_error_t *err)
{
    char ack[ACK_MAX];
    uint8_t framed[ACK_MAX + 3];
    size_t n = hl7v2_build_ack(msg, len, code, err, wall_ms(), "MEDWIRE-BRIDGE", ack, sizeof ack);
    size_t f = n ? hl7v2_frame(ack, n, framed, sizeof framed) : 0;
    if (f == 0) {
        fprintf(stderr, PROG ": %s: could not build the ACK\n", c->peer);
        return false;
    }
    return write_all(c->fd, framed, f);
}

static void close_conn(conn_t *c)
{
    if (c->fd >= 0)
        close(c->fd);
    free(c->buf);
    memset(c, 0, sizeof *c);
    c->fd = -1;
}

/* Answers a message that will not be queued, and says so in the audit trail. */
static void refuse(bridge_t *b, conn_t *c, const char *msg, size_t len, const hl7v2_error_t *err,
                   const char *source)
{
    if (strcmp(err->ack_code, "AR") == 0)
        b->rejected_ar++;
    else
        b->rejected_ae++;
    char reason[320];
    snprintf(reason, sizeof reason, "HL7 message answered %s (ERR code %u at %s): %s",
             err->ack_code, err->err_code, err->location[0] ? err->location : "-", err->text);
    audit("hl7_refused", c->peer, source, MW_EINVAL, reason);
    if (!send_ack(c, msg, len, err->ack_code, err))
        close_conn(c);
}

static mw_err queue_item(bridge_t *b, const hl7v2_item_t *it, const char *source, uint64_t *out_seq)
{
    if (it->kind == HL7V2_ALARM) {
        mw_alarm_t al = it->u.alarm;
        snprintf(al.source, sizeof al.source, "%s", source);
        return mw_client_raise_alarm(b->client, &al, out_seq);
    }
    mw_observation_t o = it->u.observation;
    snprintf(o.source, sizeof o.source, "%s", source);
    return mw_client_send_observation(b->client, &o, out_seq);
}

static bool queue_holds(void *ctx, uint64_t space, uint64_t seq)
{
    mw_client_t *c = ctx;
    mw_client_stats_t st;
    mw_client_stats(c, &st);
    return st.space == space && mw_client_holds(c, seq);
}

/* One complete HL7 message from @p c: parsed, its items queued (each durable before the next),
 * then answered. */
static void on_message(bridge_t *b, conn_t *c, const char *msg, size_t len)
{
    static hl7v2_oru_t oru; /* about 10 kB: one message at a time, never on the stack */
    hl7v2_error_t err;
    memset(&err, 0, sizeof err);
    b->frames++;
    if (hl7v2_parse_oru(msg, len, &oru, &err) != 0) {
        refuse(b, c, msg, len, &err, "");
        return;
    }
    const char *sender_parts[] = {c->serial ? "serial" : "mllp", oru.sending_app,
                                  oru.sending_facility};
    const char *msg_parts[] = {oru.control_id};
    uint64_t sender = journal_key(sender_parts, 3), key = journal_key(msg_parts, 1);
    uint32_t n = (uint32_t)oru.n_items;
    uint32_t done = journal_done(b->journal, sender, key, n);
    if (done == n) {
        /* Its ACK was lost: everything is queued already; say so again. */
        b->duplicates++;
        if (!send_ack(c, msg, len, "AA", NULL))
            close_conn(c);
        return;
    }
    mw_client_stats_t st;
    mw_client_stats(b->client, &st);
    uint64_t room =
        st.queue_capacity > st.messages_pending ? st.queue_capacity - st.messages_pending : 0;
    if (room < n - done) {
        /* Queuing part of it would leave the device believing nothing arrived; the SDK would
         * also evict older results to make room, which custody forbids. */
        b->queue_full++;
        err.err_code = HL7V2_E_APPLICATION;
        snprintf(err.ack_code, sizeof err.ack_code, "AE");
        snprintf(err.text, sizeof err.text,
                 "the bridge's queue is full (%llu of %u results waiting for the gateway); "
                 "send the message again later",
                 (unsigned long long)st.messages_pending, st.queue_capacity);
        refuse(b, c, msg, len, &err, oru.source);
        return;
    }
    /* Items take consecutive numbers: nothing else is queued while this loop runs. */
    uint64_t next = st.next_seq;
    for (uint32_t i = done; i <= n; i++) {
        mw_err e = MW_OK;
        if (journal_record(b->journal, sender, key, i, n, i < n ? next : 0, st.space) != 0) {
            fprintf(stderr, PROG ": cannot write the journal: %s\n", strerror(errno));
            e = MW_EIO;
        }
        uint64_t seq = 0;
        if (e == MW_OK && i < n)
            e = queue_item(b, &oru.items[i], oru.source, &seq);
        if (e == MW_OK && i < n && seq != next) {
            /* The journal would name the wrong message after a crash: stop rather than risk
             * a loss. */
            fprintf(stderr, PROG ": result queued as %llu where %llu was recorded\n",
                    (unsigned long long)seq, (unsigned long long)next);
            e = MW_EIO;
        }
        next++;
        if (i == n && e == MW_OK)
            break;
        if (e != MW_OK) {
            mw_error_detail_t d;
            mw_client_last_error(b->client, &d);
            err.err_code = HL7V2_E_APPLICATION;
            snprintf(err.ack_code, sizeof err.ack_code, "AE");
            snprintf(err.location, sizeof err.location, "OBX^%u",
                     oru.items[i < n ? i : n - 1].obx_seq);
            snprintf(err.text, sizeof err.text, "the bridge could not queue this result: %s",
                     e == MW_EINVAL ? "a field is out of the range medwire carries"
                                    : "its queue failed; send the message again later");
            fprintf(stderr, PROG ": %s: message %s, OBX %u not queued: %s\n", c->peer,
                    oru.control_id, oru.items[i < n ? i : n - 1].obx_seq,
                    d.reason[0] ? d.reason : mw_strerror(e));
            /* Refused by the SDK, this item was not queued: the journal must not leave it in
             * doubt, or the earlier ones would be queued again when the message comes back. */
            if (e != MW_EIO && journal_record(b->journal, sender, key, i, n, 0, st.space) != 0)
                e = MW_EIO;
            refuse(b, c, msg, len, &err, oru.source);
            if (e == MW_EIO)
                b->failed = true;
            return;
        }
        b->items++;
    }
    b->accepted++;
    if (!send_ack(c, msg, len, "AA", NULL))
        close_conn(c);
}

static void on_readable(bridge_t *b, conn_t *c)
{
    uint8_t in[4096];
    ssize_t r = read(c->fd, in, sizeof in);
    if (r < 0 && (errno == EINTR || errno == EAGAIN || errno == EWOULDBLOCK))
        return;
    if (r <= 0) {
        if (c->serial) {
            /* A pty whose other side closed reads EIO; a real line never ends. Wait and read
             * again rather than spin. */
            struct timespec ts = {0, 200 * 1000 * 1000};
            nanosleep(&ts, NULL);
            return;
        }
        close_conn(c);
        return;
    }
    size_t off = 0;
    while (off < (size_t)r && c->fd >= 0 && !b->failed) {
        hl7v2_frame_t fr;
        bool got = false;
        off += hl7v2_deframer_feed(&c->deframer, in + off, (size_t)r - off, &fr, &got);
        if (!got)
            continue;
        if (fr.kind == HL7V2_FRAME_MESSAGE) {
            on_message(b, c, fr.msg, fr.len);
        } else {
            b->too_large++;
            hl7v2_error_t err;
            memset(&err, 0, sizeof err);
            snprintf(err.ack_code, sizeof err.ack_code, "AR");
            err.err_code = HL7V2_E_SEGMENT_SEQUENCE;
            snprintf(err.text, sizeof err.text,
                     "message longer than the %zu bytes this bridge takes (--max-message)",
                     b->max_message);
            /* What arrived of it is the start of the message: enough for its MSH. */
            refuse(b, c, fr.msg, fr.len, &err, "");
        }
    }
}

static conn_t *free_conn(bridge_t *b)
{
    for (size_t i = 0; i < MAX_CONNECTIONS; i++)
        if (b->conns[i].fd < 0)
            return &b->conns[i];
    return NULL;
}

static bool conn_init(bridge_t *b, conn_t *c, int fd, bool serial, const char *peer)
{
    c->buf = malloc(b->max_message);
    if (c->buf == NULL)
        return false;
    c->fd = fd;
    c->serial = serial;
    snprintf(c->peer, sizeof c->peer, "%s", peer);
    hl7v2_deframer_init(&c->deframer, c->buf, b->max_message);
    return true;
}

static void on_accept(bridge_t *b, int lfd, const allow_t *allow, size_t n_allow,
                      bool loopback_only)
{
    struct sockaddr_storage ss;
    memset(&ss, 0, sizeof ss);
    socklen_t sl = sizeof ss;
    int fd = accept4(lfd, (struct sockaddr *)&ss, &sl, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd < 0)
        return;
    char peer[64];
    format_peer(&ss, peer, sizeof peer);
    if (!allowed(allow, n_allow, loopback_only, &ss)) {
        b->refused_connections++;
        audit("mllp_connection_refused", peer, "", MW_EADDR,
              n_allow ? "the address is not in --allow"
                      : "only loopback peers are allowed "
                        "without --allow");
        close(fd);
        return;
    }
    conn_t *c = free_conn(b);
    if (c == NULL || !conn_init(b, c, fd, false, peer)) {
        b->refused_connections++;
        audit("mllp_connection_refused", peer, "", MW_EFULL,
              "too many MLLP connections at once (8)");
        close(fd);
    }
}

/* ---- setting up ---- */

static int listen_on(const char *hostport, uint16_t *out_port, bool *out_loopback)
{
    char host[256];
    const char *colon = strrchr(hostport, ':');
    size_t hl = (size_t)(colon - hostport);
    const char *h = hostport;
    if (h[0] == '[') {
        h++;
        hl -= 2;
    }
    if (hl >= sizeof host)
        return -1;
    memcpy(host, h, hl);
    host[hl] = '\0';
    struct addrinfo hints, *res = NULL;
    memset(&hints, 0, sizeof hints);
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
    int gai = getaddrinfo(host[0] ? host : NULL, colon + 1, &hints, &res);
    if (gai != 0) {
        fprintf(stderr, PROG ": --listen-mllp %s: %s\n", hostport, gai_strerror(gai));
        return -1;
    }
    int fd = socket(res->ai_family, res->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    int one = 1;
    if (fd >= 0)
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (fd < 0 || bind(fd, res->ai_addr, res->ai_addrlen) != 0 || listen(fd, 16) != 0) {
        fprintf(stderr, PROG ": cannot listen on --listen-mllp %s: %s\n", hostport,
                strerror(errno));
        if (fd >= 0)
            close(fd);
        freeaddrinfo(res);
        return -1;
    }
    struct sockaddr_storage ss;
    memset(&ss, 0, sizeof ss);
    int family;
    uint8_t a[16];
    memcpy(&ss, res->ai_addr, res->ai_addrlen);
    peer_addr(&ss, &family, a);
    static const uint8_t v6_loopback[16] = {[15] = 1};
    *out_loopback = (family == AF_INET && a[0] == 127) ||
                    (family == AF_INET6 && memcmp(a, v6_loopback, 16) == 0);
    freeaddrinfo(res);
    socklen_t sl = sizeof ss;
    getsockname(fd, (struct sockaddr *)&ss, &sl);
    *out_port = ntohs(ss.ss_family == AF_INET ? ((struct sockaddr_in *)&ss)->sin_port
                                              : ((struct sockaddr_in6 *)&ss)->sin6_port);
    return fd;
}

static speed_t baud_of(unsigned long baud)
{
    switch (baud) {
    case 1200:
        return B1200;
    case 2400:
        return B2400;
    case 4800:
        return B4800;
    case 9600:
        return B9600;
    case 19200:
        return B19200;
    case 38400:
        return B38400;
    case 57600:
        return B57600;
    case 115200:
        return B115200;
    case 230400:
        return B230400;
    default:
        return 0;
    }
}

static int open_serial(const char *path, speed_t speed)
{
    int fd = open(path, O_RDWR | O_NOCTTY | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0) {
        fprintf(stderr, PROG ": cannot open --serial %s: %s\n", path, strerror(errno));
        return -1;
    }
    struct termios t;
    if (tcgetattr(fd, &t) != 0) {
        fprintf(stderr, PROG ": --serial %s is not a terminal device: %s\n", path, strerror(errno));
        close(fd);
        return -1;
    }
    /* Raw bytes, 8N1, no flow control, no echo: MLLP's 0x0B and 0x1C pass untouched. */
    cfmakeraw(&t);
    t.c_cflag |= CLOCAL | CREAD;
    t.c_cflag &= ~(tcflag_t)(CSTOPB | PARENB | CRTSCTS);
    cfsetispeed(&t, speed);
    cfsetospeed(&t, speed);
    if (tcsetattr(fd, TCSANOW, &t) != 0) {
        fprintf(stderr, PROG ": cannot set --serial %s to raw 8N1: %s\n", path, strerror(errno));
        close(fd);
        return -1;
    }
    return fd;
}

static void summary(const bridge_t *b)
{
    mw_client_stats_t st;
    mw_client_stats(b->client, &st);
    fprintf(stderr,
            PROG ": %llu HL7 messages: %llu accepted (%llu results queued), %llu repeats "
                 "acknowledged again, %llu answered AE (%llu with a full queue), %llu AR (%llu too "
                 "long); %llu connections refused; %llu results acknowledged by the gateway, %llu "
                 "waiting\n",
            (unsigned long long)b->frames, (unsigned long long)b->accepted,
            (unsigned long long)b->items, (unsigned long long)b->duplicates,
            (unsigned long long)b->rejected_ae, (unsigned long long)b->queue_full,
            (unsigned long long)b->rejected_ar, (unsigned long long)b->too_large,
            (unsigned long long)b->refused_connections, (unsigned long long)st.messages_acked,
            (unsigned long long)st.messages_pending);
}

int main(int argc, char **argv)
{
    const char *gws[MW_GATEWAYS_MAX] = {NULL}, *gw_name = NULL, *ca = NULL, *cert = NULL,
               *key = NULL;
    size_t n_gws = 0;
    const char *queue = NULL, *queue_key = NULL, *listen_addr = NULL, *serial = NULL;
    const char *audit_path = NULL, *port_file = NULL;
    unsigned long capacity = 4096, max_message = 65536, baud = 9600;
    bool quiet = false, allow_shared_key_file = false;
    allow_t allow[MAX_ALLOW];
    size_t n_allow = 0;
    argv = cmdline_split(&argc, argv);
    if (argv == NULL) {
        fputs(PROG ": out of memory\n", stderr);
        return 1;
    }
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
            fputs(USAGE, stdout);
            return 0;
        }
        if (strcmp(a, "--version") == 0) {
            printf(PROG " %s\n", MW_VERSION);
            return 0;
        }
        if (strcmp(a, "--quiet") == 0) {
            quiet = true;
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
                return usage_error("--gateway is given more than 8 times", NULL);
            slot = &gws[n_gws++];
        } else if (strcmp(a, "--gateway-name") == 0)
            slot = &gw_name;
        else if (strcmp(a, "--ca") == 0)
            slot = &ca;
        else if (strcmp(a, "--cert") == 0)
            slot = &cert;
        else if (strcmp(a, "--key") == 0)
            slot = &key;
        else if (strcmp(a, "--queue") == 0)
            slot = &queue;
        else if (strcmp(a, "--queue-key") == 0)
            slot = &queue_key;
        else if (strcmp(a, "--listen-mllp") == 0)
            slot = &listen_addr;
        else if (strcmp(a, "--serial") == 0)
            slot = &serial;
        else if (strcmp(a, "--audit") == 0)
            slot = &audit_path;
        else if (strcmp(a, "--port-file") == 0)
            slot = &port_file;
        else if (strcmp(a, "--allow") == 0) {
            if (i + 1 >= argc)
                return usage_error("option needs a value", a);
            if (n_allow == MAX_ALLOW)
                return usage_error("--allow is given more than 32 times", NULL);
            if (parse_allow(argv[++i], &allow[n_allow]) != 0)
                return usage_error("--allow takes an IPv4 or IPv6 address, optionally /BITS",
                                   argv[i]);
            n_allow++;
            continue;
        } else if (strcmp(a, "--queue-capacity") == 0) {
            num = &capacity;
            max = 1000000;
        } else if (strcmp(a, "--max-message") == 0) {
            num = &max_message;
            max = 16u << 20;
        } else if (strcmp(a, "--baud") == 0) {
            num = &baud;
            max = 4000000;
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
    if (!ca || !cert || !key)
        return usage_error("--ca, --cert and --key are required", NULL);
    if (!queue || !queue_key)
        return usage_error("--queue FILE and --queue-key FILE are required: the bridge "
                           "acknowledges a message only once it is durable there",
                           NULL);
    if ((listen_addr == NULL) == (serial == NULL))
        return usage_error("give one of --listen-mllp HOST:PORT and --serial DEVICE", NULL);
    if (listen_addr && !cmdline_hostport(listen_addr))
        return usage_error("--listen-mllp must be HOST:PORT, e.g. 127.0.0.1:2575", listen_addr);
    if (serial && n_allow)
        return usage_error("--allow applies to --listen-mllp, not to --serial", NULL);
    if (capacity == 0)
        return usage_error("--queue-capacity must be at least 1", NULL);
    if (max_message < 256)
        return usage_error("--max-message must be at least 256 bytes", NULL);
    speed_t speed = baud_of(baud);
    if (serial && speed == 0)
        return usage_error("--baud must be one of 1200, 2400, 4800, 9600, 19200, 38400, "
                           "57600, 115200, 230400",
                           NULL);

    audit_out = stderr;
    if (audit_path) {
        audit_out = fopen(audit_path, "a");
        if (audit_out == NULL) {
            fprintf(stderr, PROG ": cannot open --audit %s: %s\n", audit_path, strerror(errno));
            return 1;
        }
    }
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);

    static bridge_t b;
    for (size_t i = 0; i <= MAX_CONNECTIONS; i++)
        b.conns[i].fd = -1;
    b.max_message = max_message;
    int rc = 1, lfd = -1;
    bool loopback_listener = false;
    mw_storage_t region;
    memset(&region, 0, sizeof region);
    uint8_t qkey[32];
    char jpath[4096];
    if (snprintf(jpath, sizeof jpath, "%s.journal", queue) >= (int)sizeof jpath) {
        fprintf(stderr, PROG ": --queue %s: path too long\n", queue);
        goto out;
    }

    mw_client_config_t cfg;
    mw_client_config_init(&cfg);
    cfg.gateways = gws;
    cfg.n_gateways = n_gws;
    cfg.gateway_name = gw_name;
    cfg.ca_file = ca;
    cfg.cert_file = cert;
    cfg.key_file = key;
    cfg.allow_shared_key_file = allow_shared_key_file;
    cfg.on_command = on_command;
    cfg.audit = on_sdk_audit;
    cfg.queue_capacity = (uint32_t)capacity;
    uint32_t size = 0;
    mw_error_detail_t d = {0};
    if (mw_client_storage_size(cfg.queue_capacity, 1, 1, &size) != MW_OK) {
        rc = usage_error("--queue-capacity is too large", NULL);
        goto out;
    }
    if (keyfile_read(PROG, queue_key, qkey) != 0)
        goto out;
    if (mw_storage_file_open(queue, size, &region, &d) != MW_OK) {
        fprintf(stderr, PROG ": cannot use the queue file: %s%s\n", d.reason,
                d.foreign == EAGAIN ? "; is another medwire-bridge running with this --queue?"
                                    : "");
        mwi_wipe(qkey, sizeof qkey);
        goto out;
    }
    cfg.storage = &region;
    cfg.queue_key = qkey;
    cfg.queue_key_len = sizeof qkey;
    mw_err e = mw_client_open(&cfg, &b.client, &d);
    mwi_wipe(qkey, sizeof qkey);
    if (e != MW_OK) {
        fprintf(stderr, PROG ": cannot start: %s\n", d.reason);
        goto out;
    }
    b.journal = journal_open(jpath);
    if (b.journal == NULL) {
        fprintf(stderr, PROG ": cannot open the journal %s: %s\n", jpath, strerror(errno));
        goto out;
    }
    /* Before the first poll: nothing can have been acknowledged since a crash. */
    if (journal_settle(b.journal, queue_holds, b.client) != 0) {
        fprintf(stderr, PROG ": cannot write the journal %s: %s\n", jpath, strerror(errno));
        goto out;
    }
    if (listen_addr) {
        uint16_t port = 0;
        lfd = listen_on(listen_addr, &port, &loopback_listener);
        if (lfd < 0)
            goto out;
        if (!loopback_listener && n_allow == 0) {
            fprintf(stderr,
                    PROG ": --listen-mllp %s is not a loopback address: say which "
                         "legacy devices may connect with --allow ADDR[/BITS]\n",
                    listen_addr);
            goto out;
        }
        if (port_file && cmdline_write_port_file(port_file, port) != 0) {
            fprintf(stderr, PROG ": cannot write --port-file %s: %s\n", port_file, strerror(errno));
            goto out;
        }
    } else {
        int fd = open_serial(serial, speed);
        if (fd < 0 || !conn_init(&b, &b.conns[MAX_CONNECTIONS], fd, true, serial)) {
            if (fd >= 0)
                close(fd);
            goto out;
        }
    }

    while (!stop && !b.failed) {
        if (serial && b.conns[MAX_CONNECTIONS].fd < 0) {
            /* An ACK the line would not take: a supervisor that starts the bridge again opens
             * it afresh, which this process cannot do better. */
            fprintf(stderr, PROG ": --serial %s stopped taking the ACKs; stopping\n", serial);
            break;
        }
        struct pollfd pfd[MAX_CONNECTIONS + 3];
        conn_t *who[MAX_CONNECTIONS + 3];
        nfds_t n = 0;
        if (lfd >= 0) {
            pfd[n] = (struct pollfd){.fd = lfd, .events = POLLIN};
            who[n++] = NULL;
        }
        for (size_t i = 0; i <= MAX_CONNECTIONS; i++) {
            if (b.conns[i].fd >= 0) {
                pfd[n] = (struct pollfd){.fd = b.conns[i].fd, .events = POLLIN};
                who[n++] = &b.conns[i];
            }
        }
        nfds_t client_at = n;
        int cfd = mw_client_fd(b.client);
        if (cfd >= 0) {
            pfd[n] = (struct pollfd){.fd = cfd, .events = POLLIN};
            who[n++] = NULL;
        }
        int timeout = mw_client_next_timeout_ms(b.client);
        if (timeout < 0 || timeout > 1000)
            timeout = 1000;
        int ready = poll(pfd, n, timeout);
        if (ready < 0 && errno != EINTR) {
            fprintf(stderr, PROG ": poll: %s\n", strerror(errno));
            break;
        }
        for (nfds_t i = 0; ready > 0 && i < client_at; i++) {
            if (!(pfd[i].revents & (POLLIN | POLLHUP | POLLERR)))
                continue;
            if (who[i] == NULL)
                on_accept(&b, lfd, allow, n_allow, loopback_listener);
            else if (who[i]->fd >= 0)
                on_readable(&b, who[i]);
        }
        e = mw_client_poll(b.client, 0);
        if (e != MW_OK && e != MW_EAGAIN) {
            mw_client_last_error(b.client, &d);
            fprintf(stderr, PROG ": the gateway link cannot work as configured: %s\n",
                    d.reason[0] ? d.reason : mw_strerror(e));
            break;
        }
    }
    if (b.failed)
        fprintf(stderr, PROG ": stopping: the queue failed; what was acknowledged is in it; "
                             "restart the bridge once the disk is sound\n");
    else if (stop)
        rc = 0;
    if (!quiet)
        summary(&b);
out:
    for (size_t i = 0; i <= MAX_CONNECTIONS; i++)
        if (b.conns[i].fd >= 0)
            close_conn(&b.conns[i]);
    if (lfd >= 0)
        close(lfd);
    journal_close(&b.journal);
    mw_client_close(&b.client);
    mw_storage_file_close(&region);
    if (audit_out && audit_out != stderr)
        fclose(audit_out);
    return rc;
}
