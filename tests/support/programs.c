/* SPDX-License-Identifier: Apache-2.0 */
/* programs.c -- start the real medwire-gateway and medwire-device with a test PKI's
 * credentials. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "support/programs.h"

#define ARGS_MAX 40

/* A command line under construction; the strings it points to outlive the start. */
typedef struct args {
    const char *v[ARGS_MAX + 1];
    size_t n;
    char ca[300], crt[300], key[300];
} args;

static bool add(args *a, const char *opt, const char *value)
{
    if (a->n + 2 > ARGS_MAX)
        return false;
    a->v[a->n++] = opt;
    if (value)
        a->v[a->n++] = value;
    a->v[a->n] = NULL;
    return true;
}

/* The program, then --ca, --cert and --key of @p name in @p pki. */
static void begin(args *a, const char *program, const mwt_pki *pki, const char *name)
{
    snprintf(a->ca, sizeof a->ca, "%s", mwt_pki_ca(pki));
    snprintf(a->crt, sizeof a->crt, "%s", mwt_pki_crt(pki, name));
    snprintf(a->key, sizeof a->key, "%s", mwt_pki_key(pki, name));
    a->n = 0;
    add(a, mwt_bin(program), NULL);
    add(a, "--ca", a->ca);
    add(a, "--cert", a->crt);
    add(a, "--key", a->key);
}

bool mwt_gateway_start(mwt_proc *p, const mwt_pki *pki, const char *listen, const char *port_file,
                       const char *const extra[], const char *err_path, char *addr,
                       size_t addr_size)
{
    args a;
    begin(&a, "medwire-gateway", pki, "gateway");
    bool ok = add(&a, "--listen", listen) && add(&a, "--port-file", port_file);
    for (size_t i = 0; ok && extra && extra[i]; i++)
        ok = add(&a, extra[i], NULL);
    remove(port_file);
    int port = ok && mwt_proc_start(p, a.v, NULL, err_path) ? mwt_wait_port(port_file, 10000) : -1;
    if (port < 0)
        return false;
    snprintf(addr, addr_size, "127.0.0.1:%d", port);
    return true;
}

int mwt_wait_port(const char *port_file, int timeout_ms)
{
    if (!mwt_wait_file(port_file, timeout_ms))
        return -1;
    char *text = mwt_read_file(port_file);
    int port = text ? atoi(text) : -1;
    free(text);
    return port > 0 && port < 65536 ? port : -1;
}

bool mwt_device_start(mwt_proc *p, const mwt_pki *pki, const char *gw_addr, const char *name,
                      const char *count, const char *interval_ms, const char *give_up_s)
{
    args a;
    begin(&a, "medwire-device", pki, name);
    return add(&a, "--gateway", gw_addr) && add(&a, "--gateway-name", "gateway") &&
           add(&a, "--count", count) && add(&a, "--interval-ms", interval_ms) &&
           add(&a, "--give-up-s", give_up_s) && add(&a, "--quiet", NULL) &&
           mwt_proc_start(p, a.v, NULL, NULL);
}

bool mwt_control_request(const char *path, const char *line, char *reply, size_t cap)
{
    reply[0] = '\0';
    struct sockaddr_un sa;
    memset(&sa, 0, sizeof sa);
    sa.sun_family = AF_UNIX;
    if (cap < 2 || strlen(path) >= sizeof sa.sun_path)
        return false;
    memcpy(sa.sun_path, path, strlen(path) + 1);
    int fd = socket(AF_UNIX, SOCK_STREAM, 0);
    if (fd < 0)
        return false;
    size_t n = 0;
    bool ok = connect(fd, (struct sockaddr *)&sa, sizeof sa) == 0 &&
              write(fd, line, strlen(line)) == (ssize_t)strlen(line);
    while (ok && n + 1 < cap && memchr(reply, '\n', n) == NULL) {
        ssize_t r = read(fd, reply + n, cap - 1 - n);
        if (r <= 0)
            break;
        n += (size_t)r;
    }
    reply[n] = '\0';
    close(fd);
    return ok && memchr(reply, '\n', n) != NULL;
}
