/* SPDX-License-Identifier: Apache-2.0 */
/* control.c -- the reference gateway's local control socket: JSON lines in, commands to devices
 * out. */
#define _GNU_SOURCE /* accept4, SOCK_NONBLOCK */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "control.h"

#define MAX_FIELDS     8
#define LINE_MAX_BYTES 1024

struct field {
    char key[24];
    char val[ASSOC_NAME_MAX + 8]; /* a name or a location at its bound, and some room */
    bool is_str;
};

/* parse_object's answer for an object that gives a key twice (-1: malformed). */
#define PARSE_DUPLICATE (-2)

/* A flat JSON object of string, number and boolean members; nothing nested.
 * Strict: anything else is refused (the socket is local but still input). A key given twice
 * is refused too (PARSE_DUPLICATE, *out_dup names it): RFC 8259 leaves its meaning to each
 * parser, so a line that reads as one command to us could read as another to the tool that
 * checked or logged it. */
static int parse_object(const char *p, struct field *f, int max, const char **out_dup)
{
    int n = 0;
    while (*p == ' ' || *p == '\t')
        p++;
    if (*p++ != '{')
        return -1;
    for (;;) {
        while (*p == ' ' || *p == '\t')
            p++;
        if (*p == '}' && n == 0)
            return 0;
        if (n == max || *p++ != '"')
            return -1;
        size_t k = 0;
        while (*p && *p != '"') {
            if (k + 1 >= sizeof f[n].key || *p == '\\')
                return -1;
            f[n].key[k++] = *p++;
        }
        f[n].key[k] = '\0';
        if (*p++ != '"')
            return -1;
        for (int i = 0; i < n; i++)
            if (strcmp(f[i].key, f[n].key) == 0) {
                *out_dup = f[n].key;
                return PARSE_DUPLICATE;
            }
        while (*p == ' ')
            p++;
        if (*p++ != ':')
            return -1;
        while (*p == ' ')
            p++;
        size_t v = 0;
        f[n].is_str = *p == '"';
        if (f[n].is_str) {
            p++;
            while (*p && *p != '"') {
                char ch = *p++;
                if (ch == '\\') {
                    ch = *p++;
                    if (ch != '"' && ch != '\\' && ch != '/')
                        return -1;
                }
                if ((unsigned char)ch < 0x20 || v + 1 >= sizeof f[n].val)
                    return -1;
                f[n].val[v++] = ch;
            }
            if (*p++ != '"')
                return -1;
        } else {
            while (*p && *p != ',' && *p != '}' && *p != ' ') {
                if (v + 1 >= sizeof f[n].val)
                    return -1;
                f[n].val[v++] = *p++;
            }
            if (v == 0)
                return -1;
        }
        f[n].val[v] = '\0';
        n++;
        while (*p == ' ')
            p++;
        if (*p == ',') {
            p++;
            continue;
        }
        if (*p++ != '}')
            return -1;
        while (*p == ' ' || *p == '\t' || *p == '\r')
            p++;
        return *p == '\0' ? n : -1;
    }
}

/* Printable ASCII with nothing JSON must escape. */
static bool plain(const char *s)
{
    for (; *s; s++)
        if (*s < 0x20 || *s > 0x7e || *s == '"' || *s == '\\')
            return false;
    return true;
}

static const struct field *get(const struct field *f, int n, const char *key)
{
    for (int i = 0; i < n; i++)
        if (strcmp(f[i].key, key) == 0)
            return &f[i];
    return NULL;
}

static bool get_u64(const struct field *f, int n, const char *key, uint64_t *out)
{
    const struct field *x = get(f, n, key);
    if (x == NULL || x->is_str || x->val[0] == '-')
        return false;
    char *end = NULL;
    errno = 0;
    unsigned long long v = strtoull(x->val, &end, 10);
    if (errno || *end)
        return false;
    *out = v;
    return true;
}

static void reply(int fd, const char *text)
{
    size_t len = strlen(text), off = 0;
    while (off < len) {
        ssize_t w = write(fd, text + off, len - off);
        if (w <= 0)
            return; /* a client that does not read loses its replies */
        off += (size_t)w;
    }
}

/* {"ok":false,"error":WHY} with WHY escaped as JSON needs: it may repeat what was sent. */
static void reply_error(int fd, const char *why)
{
    char out[ASSOC_WHY_MAX * 6 + 40];
    size_t n = (size_t)snprintf(out, sizeof out, "{\"ok\":false,\"error\":\"");
    for (size_t i = 0; why[i] && n + 8 < sizeof out; i++) {
        unsigned char ch = (unsigned char)why[i];
        if (ch == '"' || ch == '\\')
            n += (size_t)snprintf(out + n, sizeof out - n, "\\%c", ch);
        else if (ch < 0x20 || ch == 0x7f)
            n += (size_t)snprintf(out + n, sizeof out - n, "\\u%04x", ch);
        else
            out[n++] = (char)ch;
    }
    snprintf(out + n, sizeof out - n, "\"}\n");
    reply(fd, out);
}

/* An optional string member: "" when absent; false when it is there but not a string. */
static bool get_str(const struct field *f, int n, const char *key, const char **out)
{
    const struct field *x = get(f, n, key);
    *out = x ? x->val : "";
    return x == NULL || x->is_str;
}

/* associate and dissociate: the patient and bed of @p device, in memory and in the
 * --associations file when there is one. */
static void handle_association(associations_t *a, int fd, const struct field *f, int n,
                               const char *device, bool set)
{
    char why[ASSOC_WHY_MAX];
    if (a == NULL) {
        reply_error(fd, "associations are used only with --hl7: this gateway does not keep them");
        return;
    }
    bool ok;
    if (set) {
        const char *pid = NULL, *name = NULL, *loc = NULL;
        association_t x;
        if (!get_str(f, n, "patient_id", &pid) || !get_str(f, n, "patient_name", &name) ||
            !get_str(f, n, "location", &loc)) {
            reply_error(fd, "patient_id, patient_name and location are strings");
            return;
        }
        ok = association_fill(&x, device, strlen(device), pid, strlen(pid), name, strlen(name), loc,
                              strlen(loc), why, sizeof why) &&
             associations_set(a, &x, why, sizeof why);
    } else {
        ok = associations_remove(a, device, why, sizeof why);
    }
    if (!ok) {
        reply_error(fd, why);
        return;
    }
    /* The device passed association_fill or was found: an id needs no escaping. */
    char out[300];
    snprintf(out, sizeof out, "{\"ok\":true,\"device\":\"%s\",\"kept\":\"%s\"}\n", device,
             a->path ? "written to the --associations file"
                     : "in memory only (no --associations file): lost when the gateway stops");
    reply(fd, out);
}

/* One request line -> one reply line. */
static void handle_line(associations_t *assoc, mw_gateway_t *gw, int fd, const char *line)
{
    struct field f[MAX_FIELDS];
    char out[256];
    const char *dup = NULL;
    int n = parse_object(line, f, MAX_FIELDS, &dup);
    if (n == PARSE_DUPLICATE) {
        /* The key is echoed only when it needs no escaping to stay valid JSON. */
        const char *k = plain(dup) ? dup : NULL;
        snprintf(out, sizeof out,
                 "{\"ok\":false,\"error\":\"duplicate key%s%s%s: each key may appear once\"}\n",
                 k ? " \\\"" : "", k ? k : "", k ? "\\\"" : "");
        reply(fd, out);
        return;
    }
    const struct field *dev = n > 0 ? get(f, n, "device") : NULL;
    const struct field *what = n > 0 ? get(f, n, "command") : NULL;
    if (n < 0 || dev == NULL || what == NULL || !dev->is_str || !what->is_str) {
        reply(fd, "{\"ok\":false,\"error\":\"expected {\\\"device\\\":ID,\\\"command\\\":"
                  "\\\"set_interval\\\"|\\\"ack_alarm\\\"|\\\"rotate_keys\\\"|"
                  "\\\"associate\\\"|\\\"dissociate\\\",...}\"}\n");
        return;
    }
    if (strcmp(what->val, "associate") == 0 || strcmp(what->val, "dissociate") == 0) {
        handle_association(assoc, fd, f, n, dev->val, what->val[0] == 'a');
        return;
    }
    mw_command_t cmd;
    memset(&cmd, 0, sizeof cmd);
    uint64_t v = 0, ttl = 0;
    if (strcmp(what->val, "set_interval") == 0) {
        cmd.kind = MW_CMD_SET_INTERVAL;
        if (!get_u64(f, n, "interval_ms", &v) || v == 0 || v > 86400000u) {
            reply(fd,
                  "{\"ok\":false,\"error\":\"set_interval needs interval_ms (1..86400000)\"}\n");
            return;
        }
        cmd.u.interval_ms = (uint32_t)v;
    } else if (strcmp(what->val, "ack_alarm") == 0) {
        cmd.kind = MW_CMD_ACK_ALARM;
        if (!get_u64(f, n, "alarm_seq", &v) || v == 0) {
            reply(fd, "{\"ok\":false,\"error\":\"ack_alarm needs alarm_seq\"}\n");
            return;
        }
        cmd.u.alarm_seq = v;
    } else if (strcmp(what->val, "rotate_keys") == 0) {
        cmd.kind = MW_CMD_ROTATE_KEYS;
    } else {
        reply(fd, "{\"ok\":false,\"error\":\"unknown command\"}\n");
        return;
    }
    if (get_u64(f, n, "ttl_s", &ttl)) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        cmd.expires_ms =
            (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u + ttl * 1000u;
    }
    uint64_t id = 0;
    mw_err e = mw_gateway_send_command(gw, dev->val, &cmd, &id);
    if (e == MW_OK)
        snprintf(out, sizeof out, "{\"ok\":true,\"device\":\"%s\",\"id\":%llu}\n", dev->val,
                 (unsigned long long)id);
    else
        snprintf(out, sizeof out, "{\"ok\":false,\"error\":\"%s\"}\n",
                 e == MW_EFULL ? "4 commands already pending for this device"
                 : e == MW_EIO ? "the gateway's store could not take the command, which is not "
                                 "queued: see the audit trail, then send it again"
                               : mw_strerror(e));
    reply(fd, out);
}

int control_open(control_t *c, const char *path)
{
    memset(c, 0, sizeof *c);
    c->listen_fd = -1;
    c->idle_ms = CONTROL_IDLE_MS;
    for (int i = 0; i < CONTROL_MAX_CLIENTS; i++)
        c->clients[i].fd = -1;
    struct sockaddr_un sa;
    memset(&sa, 0, sizeof sa);
    sa.sun_family = AF_UNIX;
    if (strlen(path) >= sizeof sa.sun_path) {
        errno = ENAMETOOLONG;
        return -1;
    }
    memcpy(sa.sun_path, path, strlen(path) + 1);
    struct stat st;
    if (lstat(path, &st) == 0) {
        /* A stale socket from a previous run is replaced; anything else is not ours. */
        if (!S_ISSOCK(st.st_mode)) {
            errno = EEXIST;
            return -1;
        }
        unlink(path);
    }
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    /* Owner-only from the first instant: the umask covers the window
     * between bind and chmod. */
    mode_t old = umask(0177);
    int rc = bind(fd, (struct sockaddr *)&sa, sizeof sa);
    umask(old);
    if (rc != 0 || chmod(path, 0600) != 0 || listen(fd, 4) != 0) {
        int saved = errno;
        close(fd);
        errno = saved;
        return -1;
    }
    c->listen_fd = fd;
    snprintf(c->path, sizeof c->path, "%s", path);
    return 0;
}

void control_close(control_t *c)
{
    for (int i = 0; i < CONTROL_MAX_CLIENTS; i++)
        if (c->clients[i].fd >= 0)
            close(c->clients[i].fd);
    if (c->listen_fd >= 0) {
        close(c->listen_fd);
        unlink(c->path);
    }
    c->listen_fd = -1;
}

int control_fds(const control_t *c, struct pollfd *out, int max)
{
    int n = 0;
    if (c->listen_fd < 0)
        return 0;
    if (n < max)
        out[n++] = (struct pollfd){.fd = c->listen_fd, .events = POLLIN};
    for (int i = 0; i < CONTROL_MAX_CLIENTS && n < max; i++)
        if (c->clients[i].fd >= 0)
            out[n++] = (struct pollfd){.fd = c->clients[i].fd, .events = POLLIN};
    return n;
}

static void drop_client(struct control_client *cl)
{
    close(cl->fd);
    cl->fd = -1;
    cl->len = 0;
}

/* Reads what @p cl sent and answers each complete line. */
static void serve_client(struct control_client *cl, associations_t *assoc, mw_gateway_t *gw,
                         uint64_t now_ms)
{
    for (;;) {
        ssize_t r = read(cl->fd, cl->buf + cl->len, sizeof cl->buf - cl->len);
        if (r == 0 || (r < 0 && errno != EAGAIN && errno != EINTR)) {
            drop_client(cl);
            return;
        }
        if (r < 0)
            return;
        cl->len += (size_t)r;
        char *nl;
        while ((nl = memchr(cl->buf, '\n', cl->len)) != NULL) {
            *nl = '\0';
            handle_line(assoc, gw, cl->fd, cl->buf);
            cl->active_ms = now_ms;
            size_t used = (size_t)(nl - cl->buf) + 1;
            memmove(cl->buf, cl->buf + used, cl->len - used);
            cl->len -= used;
        }
        if (cl->len == sizeof cl->buf) {
            reply(cl->fd, "{\"ok\":false,\"error\":\"line too long\"}\n");
            drop_client(cl);
            return;
        }
    }
}

int control_timeout_ms(const control_t *c, uint64_t now_ms)
{
    int wait = -1;
    for (int i = 0; i < CONTROL_MAX_CLIENTS; i++) {
        const struct control_client *cl = &c->clients[i];
        if (cl->fd < 0)
            continue;
        uint64_t due = cl->active_ms + c->idle_ms;
        uint64_t left = due > now_ms ? due - now_ms : 0;
        if (left > 0x7fffffff)
            left = 0x7fffffff;
        if (wait < 0 || (int)left < wait)
            wait = (int)left;
    }
    return wait;
}

void control_service(control_t *c, mw_gateway_t *gw, uint64_t now_ms)
{
    if (c->listen_fd < 0)
        return;
    /* Lines already sent are answered first: a client with a request waiting is not idle. */
    for (int i = 0; i < CONTROL_MAX_CLIENTS; i++)
        if (c->clients[i].fd >= 0)
            serve_client(&c->clients[i], c->assoc, gw, now_ms);
    /* Places are few (each is a descriptor and a line buffer); without a deadline, clients
     * that connect and say nothing, or never finish a line, would keep the operator out for
     * as long as they liked. */
    char why[96];
    snprintf(why, sizeof why, "{\"ok\":false,\"error\":\"closed: no complete line for %llu s\"}\n",
             (unsigned long long)(c->idle_ms / 1000u));
    for (int i = 0; i < CONTROL_MAX_CLIENTS; i++) {
        struct control_client *cl = &c->clients[i];
        if (cl->fd >= 0 && now_ms - cl->active_ms >= c->idle_ms) {
            reply(cl->fd, why);
            drop_client(cl);
        }
    }
    bool accepted = false;
    for (;;) {
        int fd = accept4(c->listen_fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0)
            break;
        /* Full: the client idle longest makes room. A new client is the operator as often as
         * not, and one that waits for a free place could wait for the idle deadline. */
        int slot = -1;
        for (int i = 0; i < CONTROL_MAX_CLIENTS; i++) {
            if (c->clients[i].fd < 0) {
                slot = i;
                break;
            }
            if (slot < 0 || c->clients[i].active_ms < c->clients[slot].active_ms)
                slot = i;
        }
        if (c->clients[slot].fd >= 0) {
            reply(c->clients[slot].fd,
                  "{\"ok\":false,\"error\":\"closed: idle the longest when all places were "
                  "taken and another client came\"}\n");
            drop_client(&c->clients[slot]);
        }
        c->clients[slot].fd = fd;
        c->clients[slot].len = 0;
        c->clients[slot].active_ms = now_ms;
        accepted = true;
    }
    if (accepted)
        for (int i = 0; i < CONTROL_MAX_CLIENTS; i++)
            if (c->clients[i].fd >= 0)
                serve_client(&c->clients[i], c->assoc, gw, now_ms);
}
