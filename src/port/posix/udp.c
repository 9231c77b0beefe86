/* SPDX-License-Identifier: Apache-2.0 */
/* udp.c -- POSIX UDP transport and address text; the only code that opens sockets. */
#if defined(__linux__)
/* recvmmsg() is a Linux extension outside POSIX. */
#define _GNU_SOURCE      1
#define MW_HAVE_RECVMMSG 1
#endif
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "medwire/io.h"
#include "port/posix/udp.h"

/* mw_addr_t.data must hold either socket address by value. */
_Static_assert(sizeof(struct sockaddr_in6) <= sizeof(((mw_addr_t *)0)->data),
               "mw_addr_t too small for sockaddr_in6");
_Static_assert(sizeof(struct sockaddr_in) <= sizeof(((mw_addr_t *)0)->data),
               "mw_addr_t too small for sockaddr_in");

/* The receive buffer a gateway needs when many devices send bursts between two polls. */
enum { UDP_RCVBUF = 1 << 20 };

/* A socket that keeps reporting ICMP errors is retried this often before giving up for now. */
enum { ICMP_ERROR_RETRIES = 8 };

/* Datagrams one batched receive returns at most (the caller may ask for fewer). */
enum { UDP_BATCH_MAX = 64 };

typedef struct udp {
    int fd;
    int family; /* AF_INET or AF_INET6, the socket's own family */
} udp;

static mw_transport_send_fn udp_send;
static mw_transport_recv_fn udp_recv;
static mw_transport_close_fn udp_close;
#ifdef MW_HAVE_RECVMMSG
static mw_transport_recv_many_fn udp_recv_many;
#endif

/* Stores a socket address in an mw_addr_t. Others compare addresses bytewise, so
 * every byte that is not a field (padding, sin_zero) must be zero: callers build
 * the sockaddr from a zeroed struct and it is copied whole. */
static void addr_store(mw_addr_t *out, const void *sa, size_t len)
{
    memset(out, 0, sizeof *out);
    memcpy(out->data, sa, len);
    out->len = (uint32_t)len;
}

static void addr_from_v4(mw_addr_t *out, const struct in_addr *ip, uint16_t port)
{
    struct sockaddr_in sin;
    memset(&sin, 0, sizeof sin);
    sin.sin_family = AF_INET;
    sin.sin_port = htons(port);
    sin.sin_addr = *ip;
    addr_store(out, &sin, sizeof sin);
}

static void addr_from_v6(mw_addr_t *out, const struct in6_addr *ip, uint16_t port, uint32_t scope)
{
    struct sockaddr_in6 sin6;
    memset(&sin6, 0, sizeof sin6);
    sin6.sin6_family = AF_INET6;
    sin6.sin6_port = htons(port);
    sin6.sin6_addr = *ip;
    sin6.sin6_scope_id = scope;
    addr_store(out, &sin6, sizeof sin6);
}

/* Copies a sockaddr the kernel or the resolver produced field by field, so that
 * whatever they left in padding never reaches a bytewise comparison. An IPv4
 * peer seen on a dual-stack socket (::ffff:a.b.c.d) becomes plain IPv4, so it
 * equals the address parsed from "a.b.c.d:port". */
static mw_err addr_from_sockaddr(mw_addr_t *out, const struct sockaddr_storage *ss, socklen_t len)
{
    if (ss->ss_family == AF_INET && len >= (socklen_t)sizeof(struct sockaddr_in)) {
        struct sockaddr_in sin;
        memcpy(&sin, ss, sizeof sin);
        addr_from_v4(out, &sin.sin_addr, ntohs(sin.sin_port));
        return MW_OK;
    }
    if (ss->ss_family == AF_INET6 && len >= (socklen_t)sizeof(struct sockaddr_in6)) {
        struct sockaddr_in6 sin6;
        memcpy(&sin6, ss, sizeof sin6);
        if (IN6_IS_ADDR_V4MAPPED(&sin6.sin6_addr)) {
            struct in_addr ip;
            memcpy(&ip, &sin6.sin6_addr.s6_addr[12], sizeof ip);
            addr_from_v4(out, &ip, ntohs(sin6.sin6_port));
        } else {
            addr_from_v6(out, &sin6.sin6_addr, ntohs(sin6.sin6_port), sin6.sin6_scope_id);
        }
        return MW_OK;
    }
    memset(out, 0, sizeof *out);
    return MW_EADDR;
}

/* Reads the family of a stored address without assuming data is aligned for a sockaddr. */
static int addr_family(const mw_addr_t *addr)
{
    struct sockaddr_storage ss;
    if (addr->len == sizeof(struct sockaddr_in) || addr->len == sizeof(struct sockaddr_in6)) {
        memset(&ss, 0, sizeof ss);
        memcpy(&ss, addr->data, addr->len);
        if (ss.ss_family == AF_INET && addr->len == sizeof(struct sockaddr_in))
            return AF_INET;
        if (ss.ss_family == AF_INET6 && addr->len == sizeof(struct sockaddr_in6))
            return AF_INET6;
    }
    return AF_UNSPEC;
}

/* A port is required and numeric: a service name would need /etc/services and
 * hide typos such as "5684x". */
static mw_err parse_port(const char *s, uint16_t *out_port)
{
    unsigned long v = 0;
    if (*s == '\0')
        return MW_EADDR;
    for (; *s != '\0'; s++) {
        if (*s < '0' || *s > '9')
            return MW_EADDR;
        v = v * 10 + (unsigned long)(*s - '0');
        if (v > 65535)
            return MW_EADDR;
    }
    *out_port = (uint16_t)v;
    return MW_OK;
}

/* Resolves @p host (numeric or a name). Names prefer IPv4: a device on a
 * network without working IPv6 routing must still reach "gateway.local". */
static mw_err resolve(const char *host, int family, int numeric_only, uint16_t port, mw_addr_t *out)
{
    struct addrinfo hints, *res = NULL, *ai, *pick = NULL;
    char service[8];
    mw_err err = MW_EADDR;

    memset(&hints, 0, sizeof hints);
    hints.ai_family = family;
    hints.ai_socktype = SOCK_DGRAM;
    hints.ai_flags = AI_NUMERICSERV | (numeric_only ? AI_NUMERICHOST : 0);
    (void)snprintf(service, sizeof service, "%u", (unsigned)port);
    if (getaddrinfo(host, service, &hints, &res) != 0)
        return MW_EADDR;
    for (ai = res; ai != NULL; ai = ai->ai_next) {
        if (ai->ai_family == AF_INET) {
            pick = ai;
            break;
        }
        if (ai->ai_family == AF_INET6 && pick == NULL)
            pick = ai;
    }
    if (pick != NULL && pick->ai_addrlen <= sizeof(struct sockaddr_storage)) {
        struct sockaddr_storage ss;
        memset(&ss, 0, sizeof ss);
        memcpy(&ss, pick->ai_addr, pick->ai_addrlen);
        err = addr_from_sockaddr(out, &ss, (socklen_t)pick->ai_addrlen);
    }
    freeaddrinfo(res);
    return err;
}

MW_API mw_err mw_addr_parse(const char *text, mw_addr_t *out_addr)
{
    /* Longest useful text: a host name (253) plus ":65535"; anything longer is not an address. */
    char host[300];
    const char *port_text;
    uint16_t port = 0;
    size_t host_len;
    mw_err err;

    if (out_addr == NULL)
        return MW_EINVAL;
    memset(out_addr, 0, sizeof *out_addr);
    if (text == NULL)
        return MW_EINVAL;

    if (text[0] == '[') {
        const char *close = strchr(text, ']');
        if (close == NULL || close[1] != ':')
            return MW_EADDR;
        host_len = (size_t)(close - text - 1);
        port_text = close + 2;
        if (host_len == 0 || host_len >= sizeof host)
            return MW_EADDR;
        memcpy(host, text + 1, host_len);
        host[host_len] = '\0';
        err = parse_port(port_text, &port);
        if (err != MW_OK)
            return err;
        /* Brackets promise an IPv6 literal (RFC 3986 3.2.2); never resolve a name there. */
        return resolve(host, AF_INET6, 1, port, out_addr);
    }

    port_text = strrchr(text, ':');
    if (port_text == NULL)
        return MW_EADDR;
    host_len = (size_t)(port_text - text);
    if (host_len == 0 || host_len >= sizeof host)
        return MW_EADDR;
    memcpy(host, text, host_len);
    host[host_len] = '\0';
    /* An unbracketed IPv6 literal is ambiguous ("::1:5684"); require brackets. */
    if (strchr(host, ':') != NULL)
        return MW_EADDR;
    err = parse_port(port_text + 1, &port);
    if (err != MW_OK)
        return err;

    {
        struct in_addr ip4;
        if (inet_pton(AF_INET, host, &ip4) == 1) {
            addr_from_v4(out_addr, &ip4, port);
            return MW_OK;
        }
    }
    return resolve(host, AF_UNSPEC, 0, port, out_addr);
}

MW_API mw_err mw_addr_format(const mw_addr_t *addr, char *out, size_t out_size)
{
    char ip[INET6_ADDRSTRLEN];
    int n;

    if (addr == NULL || out == NULL || out_size == 0)
        return MW_EINVAL;
    out[0] = '\0';
    switch (addr_family(addr)) {
    case AF_INET: {
        struct sockaddr_in sin;
        memcpy(&sin, addr->data, sizeof sin);
        if (inet_ntop(AF_INET, &sin.sin_addr, ip, sizeof ip) == NULL)
            return MW_EADDR;
        n = snprintf(out, out_size, "%s:%u", ip, (unsigned)ntohs(sin.sin_port));
        break;
    }
    case AF_INET6: {
        struct sockaddr_in6 sin6;
        memcpy(&sin6, addr->data, sizeof sin6);
        if (inet_ntop(AF_INET6, &sin6.sin6_addr, ip, sizeof ip) == NULL)
            return MW_EADDR;
        /* The scope (interface index) is kept so that a link-local address
         * formats back into text that mw_addr_parse accepts unchanged. */
        if (sin6.sin6_scope_id != 0)
            n = snprintf(out, out_size, "[%s%%%lu]:%u", ip, (unsigned long)sin6.sin6_scope_id,
                         (unsigned)ntohs(sin6.sin6_port));
        else
            n = snprintf(out, out_size, "[%s]:%u", ip, (unsigned)ntohs(sin6.sin6_port));
        break;
    }
    default:
        return MW_EADDR;
    }
    if (n < 0)
        return MW_EINTERNAL;
    if ((size_t)n >= out_size) {
        out[0] = '\0';
        return MW_ENOSPC;
    }
    return MW_OK;
}

MW_API mw_err mw_addr_host_prefix(const mw_addr_t *addr, mw_addr_t *out_host)
{
    if (addr == NULL || out_host == NULL)
        return MW_EINVAL;
    mw_addr_t h;
    memset(&h, 0, sizeof h);
    switch (addr_family(addr)) {
    case AF_INET: {
        struct sockaddr_in sin;
        memcpy(&sin, addr->data, sizeof sin);
        addr_from_v4(&h, &sin.sin_addr, 0);
        break;
    }
    case AF_INET6: {
        struct sockaddr_in6 sin6;
        memcpy(&sin6, addr->data, sizeof sin6);
        /* One site gets a /64: more addresses inside it buy no more handshakes. A mapped IPv4
         * address is one host and keeps all its bits. */
        if (!IN6_IS_ADDR_V4MAPPED(&sin6.sin6_addr))
            memset((uint8_t *)&sin6.sin6_addr + 8, 0, 8);
        addr_from_v6(&h, &sin6.sin6_addr, 0, 0);
        break;
    }
    default:
        return MW_EINVAL;
    }
    *out_host = h;
    return MW_OK;
}

MW_API uint16_t mw_addr_port(const mw_addr_t *addr)
{
    if (addr == NULL)
        return 0;
    switch (addr_family(addr)) {
    case AF_INET: {
        struct sockaddr_in sin;
        memcpy(&sin, addr->data, sizeof sin);
        return ntohs(sin.sin_port);
    }
    case AF_INET6: {
        struct sockaddr_in6 sin6;
        memcpy(&sin6, addr->data, sizeof sin6);
        return ntohs(sin6.sin6_port);
    }
    default:
        return 0;
    }
}

/* Makes the descriptor non-blocking and close-on-exec where SOCK_NONBLOCK and
 * SOCK_CLOEXEC are missing: a child such as a sink script must not inherit the
 * gateway's socket, and a poll loop must never block in recv. */
static int set_fd_flags(int fd)
{
    int fl = fcntl(fd, F_GETFL);
    if (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0)
        return -1;
    fl = fcntl(fd, F_GETFD);
    if (fl < 0 || fcntl(fd, F_SETFD, fl | FD_CLOEXEC) < 0)
        return -1;
    return 0;
}

static int open_socket(int family)
{
    int fd;
#if defined(SOCK_NONBLOCK) && defined(SOCK_CLOEXEC)
    fd = socket(family, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd >= 0 || errno != EINVAL)
        return fd;
#endif
    fd = socket(family, SOCK_DGRAM, 0);
    if (fd >= 0 && set_fd_flags(fd) != 0) {
        close(fd);
        return -1;
    }
    return fd;
}

MW_API mw_err mw_udp_open(const char *bind_text, mw_transport_t *out_transport)
{
    mw_addr_t local;
    udp *u = NULL;
    int fd = -1;
    int family;
    int saved;
    mw_err err;

    if (out_transport == NULL)
        return MW_EINVAL;
    memset(out_transport, 0, sizeof *out_transport);
    out_transport->fd = -1;
    if (bind_text == NULL)
        return MW_EINVAL;

    err = mw_addr_parse(bind_text, &local);
    if (err != MW_OK)
        return err;
    family = addr_family(&local);

    u = malloc(sizeof *u);
    if (u == NULL)
        return MW_ENOMEM;

    fd = open_socket(family);
    if (fd < 0) {
        err = MW_ETRANSPORT;
        goto fail;
    }
    {
        /* Best effort: a small default buffer only costs datagrams under load,
         * which the protocol already retransmits. */
        int rcvbuf = UDP_RCVBUF;
        (void)setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof rcvbuf);
    }
    if (family == AF_INET6) {
        /* "[::]:5684" serves IPv4 devices too, whatever net.ipv6.bindv6only says. */
        int off = 0;
        (void)setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &off, sizeof off);
    }
    {
        struct sockaddr_storage ss;
        memset(&ss, 0, sizeof ss);
        memcpy(&ss, local.data, local.len);
        if (bind(fd, (const struct sockaddr *)&ss, (socklen_t)local.len) != 0) {
            err = errno == EADDRNOTAVAIL ? MW_EADDR : MW_ETRANSPORT;
            goto fail;
        }
    }

    u->fd = fd;
    u->family = family;
    *out_transport = (mw_transport_t){
        .ctx = u, .send = udp_send, .recv = udp_recv, .close = udp_close, .fd = fd};
#ifdef MW_HAVE_RECVMMSG
    out_transport->recv_many = udp_recv_many;
#endif
    return MW_OK;

fail:
    /* mwi_udp_listen explains the failure from errno: keep the one that failed. */
    saved = errno;
    if (fd >= 0)
        close(fd);
    free(u);
    errno = saved;
    return err;
}

/* Whether @p text ends in ":PORT" with a port mw_addr_parse accepts (after "]" for IPv6). */
static int has_port(const char *text)
{
    const char *colon = strrchr(text, ':');
    const char *bracket = strrchr(text, ']');
    uint16_t port;
    return colon != NULL && colon != text && (bracket == NULL || bracket < colon) &&
           parse_port(colon + 1, &port) == MW_OK;
}

mw_err mwi_udp_listen(const char *bind_text, mw_transport_t *out_transport, char *why,
                      size_t why_size)
{
    mw_err err = mw_udp_open(bind_text, out_transport);
    int sys = errno;
    mw_addr_t local;
    const char *todo;

    if (err == MW_OK || why == NULL || why_size == 0)
        return err;
    if (bind_text == NULL) {
        (void)snprintf(why, why_size, "no address to listen on (HOST:PORT)");
        return err;
    }
    if (!has_port(bind_text)) {
        (void)snprintf(why, why_size,
                       "cannot listen on '%.80s': not HOST:PORT (the port is missing or not a "
                       "number from 0 to 65535)",
                       bind_text);
        return err;
    }
    if (mw_addr_parse(bind_text, &local) != MW_OK) {
        (void)snprintf(why, why_size,
                       "cannot listen on '%.80s': the host cannot be resolved (give one of this "
                       "machine's addresses, or 0.0.0.0 for all)",
                       bind_text);
        return err;
    }
    /* What to do, for the failures a setting causes; otherwise the system's words say it. */
    todo = sys == EADDRNOTAVAIL ? ": not an address of this machine (give one of its own, or "
                                  "0.0.0.0 for all)"
           : sys == EADDRINUSE  ? " (another program holds this UDP port: stop it, or choose "
                                  "another port)"
           : sys == EACCES      ? " (ports below 1024 need privileges: choose one from 1024 up)"
                                : "";
    (void)snprintf(why, why_size, "cannot listen on '%.60s': %s%s", bind_text, strerror(sys), todo);
    return err;
}

MW_API mw_err mw_udp_local_addr(const mw_transport_t *transport, mw_addr_t *out_addr)
{
    struct sockaddr_storage ss;
    socklen_t len = sizeof ss;
    const udp *u;

    if (out_addr == NULL)
        return MW_EINVAL;
    memset(out_addr, 0, sizeof *out_addr);
    /* Only a transport made by mw_udp_open has a socket behind its context. */
    if (transport == NULL || transport->send != udp_send || transport->ctx == NULL)
        return MW_EINVAL;
    u = transport->ctx;
    memset(&ss, 0, sizeof ss);
    if (getsockname(u->fd, (struct sockaddr *)&ss, &len) != 0)
        return MW_ETRANSPORT;
    return addr_from_sockaddr(out_addr, &ss, len);
}

/* What the errno of a failed sendto, recvfrom or recvmmsg means: true to try the call again,
 * false with the result to return in *out. A pending ICMP error from some earlier peer is
 * reported on the next call and then cleared; it says nothing about this datagram, so the call
 * is retried (ICMP_ERROR_RETRIES times at most) instead of failing a socket that many devices
 * share. Only a send can find the kernel's buffers full or the datagram too large. */
static bool retry_after(int err, bool sending, int *tries, mw_err *out)
{
    switch (err) {
    case EINTR:
        return true;
    case EAGAIN:
#if EWOULDBLOCK != EAGAIN
    case EWOULDBLOCK:
#endif
        *out = MW_EAGAIN;
        return false;
    case ENOBUFS:
        *out = sending ? MW_EAGAIN : MW_ETRANSPORT;
        return false;
    case EMSGSIZE:
        *out = sending ? MW_ETOOBIG : MW_ETRANSPORT;
        return false;
    case ECONNREFUSED:
    case EHOSTUNREACH:
    case ENETUNREACH:
        *out = MW_EAGAIN;
        return ++*tries < ICMP_ERROR_RETRIES;
    default:
        *out = MW_ETRANSPORT;
        return false;
    }
}

static mw_err udp_send(void *ctx, const mw_addr_t *to, const uint8_t *buf, size_t len)
{
    udp *u = ctx;
    struct sockaddr_storage ss;
    socklen_t sl;
    int to_family;
    int tries = 0;
    mw_err err;

    if (u == NULL || to == NULL || (buf == NULL && len > 0))
        return MW_EINVAL;
    to_family = addr_family(to);
    /* An IPv6 peer cannot be reached from an IPv4 socket; that is the
     * caller's address, not a socket failure that should end the transport. */
    if (to_family == AF_UNSPEC || (to_family == AF_INET6 && u->family == AF_INET))
        return MW_EADDR;

    memset(&ss, 0, sizeof ss);
    if (to_family == AF_INET && u->family == AF_INET6) {
        /* A dual-stack socket reaches IPv4 peers through v4-mapped addresses
         * (RFC 4291 2.5.5.2); recv maps them back, so callers see IPv4 only. */
        struct sockaddr_in sin;
        struct sockaddr_in6 sin6;
        memcpy(&sin, to->data, sizeof sin);
        memset(&sin6, 0, sizeof sin6);
        sin6.sin6_family = AF_INET6;
        sin6.sin6_port = sin.sin_port;
        sin6.sin6_addr.s6_addr[10] = 0xff;
        sin6.sin6_addr.s6_addr[11] = 0xff;
        memcpy(&sin6.sin6_addr.s6_addr[12], &sin.sin_addr, 4);
        memcpy(&ss, &sin6, sizeof sin6);
        sl = sizeof sin6;
    } else {
        memcpy(&ss, to->data, to->len);
        sl = (socklen_t)to->len;
    }

    for (;;) {
        ssize_t n = sendto(u->fd, buf, len, 0, (const struct sockaddr *)&ss, sl);
        if (n >= 0)
            /* UDP sends a datagram whole or not at all. */
            return (size_t)n == len ? MW_OK : MW_ETRANSPORT;
        if (!retry_after(errno, true, &tries, &err))
            return err;
    }
}

static mw_err udp_recv(void *ctx, mw_addr_t *out_from, uint8_t *out_buf, size_t cap,
                       size_t *out_len)
{
    udp *u = ctx;
    int tries = 0;
    mw_err err;

    if (out_len != NULL)
        *out_len = 0;
    if (out_from != NULL)
        memset(out_from, 0, sizeof *out_from);
    if (u == NULL || out_len == NULL || (out_buf == NULL && cap > 0))
        return MW_EINVAL;

    for (;;) {
        struct sockaddr_storage ss;
        socklen_t sl = sizeof ss;
        ssize_t n;

        memset(&ss, 0, sizeof ss);
        /* MSG_TRUNC makes Linux return the datagram's real length, so the
         * caller can tell a truncated datagram from one that fitted. */
        n = recvfrom(u->fd, out_buf, cap, MSG_TRUNC, (struct sockaddr *)&ss, &sl);
        if (n >= 0) {
            *out_len = (size_t)n;
            if (out_from != NULL && addr_from_sockaddr(out_from, &ss, sl) != MW_OK)
                return MW_ETRANSPORT;
            return MW_OK;
        }
        if (!retry_after(errno, false, &tries, &err))
            return err;
    }
}

#ifdef MW_HAVE_RECVMMSG
/* One system call for a burst: a gateway serving thousands of devices otherwise
 * spends most of a busy poll entering and leaving the kernel once per datagram. */
static mw_err udp_recv_many(void *ctx, mw_datagram_t *slots, size_t max, size_t *out_n)
{
    udp *u = ctx;
    struct mmsghdr msgs[UDP_BATCH_MAX];
    struct iovec iov[UDP_BATCH_MAX];
    struct sockaddr_storage ss[UDP_BATCH_MAX];
    int tries = 0;
    mw_err err;

    if (out_n != NULL)
        *out_n = 0;
    if (u == NULL || out_n == NULL || (slots == NULL && max > 0))
        return MW_EINVAL;
    if (max > UDP_BATCH_MAX)
        max = UDP_BATCH_MAX;
    if (max == 0)
        return MW_OK;
    memset(msgs, 0, max * sizeof msgs[0]);
    for (size_t i = 0; i < max; i++) {
        if (slots[i].buf == NULL && slots[i].cap > 0)
            return MW_EINVAL;
        iov[i].iov_base = slots[i].buf;
        iov[i].iov_len = slots[i].cap;
        msgs[i].msg_hdr.msg_name = &ss[i];
        msgs[i].msg_hdr.msg_namelen = sizeof ss[i];
        msgs[i].msg_hdr.msg_iov = &iov[i];
        msgs[i].msg_hdr.msg_iovlen = 1;
    }

    for (;;) {
        /* MSG_TRUNC: as in udp_recv, each msg_len is the datagram's real length. */
        int n = recvmmsg(u->fd, msgs, (unsigned)max, MSG_DONTWAIT | MSG_TRUNC, NULL);
        if (n > 0) {
            for (int i = 0; i < n; i++) {
                mw_datagram_t *s = &slots[i];
                s->len = msgs[i].msg_len;
                /* Should a kernel report truncation without the real length, the
                 * caller must still see that the datagram did not fit. */
                if ((msgs[i].msg_hdr.msg_flags & MSG_TRUNC) != 0 && s->len <= s->cap)
                    s->len = s->cap + 1;
                /* A source that is neither IPv4 nor IPv6 cannot be answered: the
                 * slot reads as an empty datagram, which every caller ignores. */
                if (addr_from_sockaddr(&s->from, &ss[i], msgs[i].msg_hdr.msg_namelen) != MW_OK)
                    s->len = 0;
            }
            *out_n = (size_t)n;
            return MW_OK;
        }
        if (n == 0)
            return MW_EAGAIN;
        if (!retry_after(errno, false, &tries, &err))
            return err;
    }
}
#endif

static void udp_close(void *ctx)
{
    udp *u = ctx;
    if (u == NULL)
        return;
    if (u->fd >= 0)
        close(u->fd);
    free(u);
}
