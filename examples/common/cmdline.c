/* SPDX-License-Identifier: Apache-2.0 */
/* cmdline.c -- GNU "--opt=value" splitting and HOST:PORT syntax for the programs. */
#include "cmdline.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

char **cmdline_split(int *argc, char **argv)
{
    /* Reachable until exit: the programs keep pointers into it for their whole run. Volatile,
     * or the optimiser drops the store into a variable nothing reads, and valgrind reports
     * the array lost when a program returns from main (exit statuses 1 and 2 included). */
    static char **volatile split;
    int n = *argc, k = 0;
    split = calloc((size_t)n * 2 + 1, sizeof *split);
    if (split == NULL)
        return NULL;
    for (int i = 0; i < n; i++) {
        char *eq = strncmp(argv[i], "--", 2) == 0 ? strchr(argv[i], '=') : NULL;
        if (i > 0 && eq != NULL && eq > argv[i] + 2) {
            *eq = '\0';
            split[k++] = argv[i];
            split[k++] = eq + 1;
        } else {
            split[k++] = argv[i];
        }
    }
    split[k] = NULL;
    *argc = k;
    return split;
}

bool cmdline_hostport(const char *s)
{
    const char *colon = strrchr(s, ':');
    if (colon == NULL || colon == s)
        return false;
    if (s[0] == '[') {
        const char *close = strchr(s, ']');
        if (close == NULL || close + 1 != colon || close == s + 1)
            return false;
    } else if (memchr(s, ':', (size_t)(colon - s)) != NULL) {
        return false; /* an IPv6 literal needs brackets: "::1:5684" is ambiguous */
    }
    const char *p = colon + 1;
    unsigned long port = 0;
    if (*p == '\0')
        return false;
    for (; *p != '\0'; p++) {
        if (*p < '0' || *p > '9')
            return false;
        port = port * 10 + (unsigned long)(*p - '0');
        if (port > 65535)
            return false;
    }
    return true;
}

bool cmdline_num(const char *s, unsigned long min, unsigned long max, unsigned long *out)
{
    char *end = NULL;
    errno = 0;
    unsigned long v = strtoul(s, &end, 10);
    if (errno || end == s || *end || s[0] == '-' || v < min || v > max)
        return false;
    *out = v;
    return true;
}

int cmdline_write_port_file(const char *path, unsigned port)
{
    char tmp[4096];
    if (snprintf(tmp, sizeof tmp, "%s.tmp", path) >= (int)sizeof tmp) {
        errno = ENAMETOOLONG;
        return -1;
    }
    FILE *f = fopen(tmp, "w");
    if (f == NULL)
        return -1;
    int ok = fprintf(f, "%u\n", port) > 0;
    ok = (fclose(f) == 0) && ok;
    if (!ok || rename(tmp, path) != 0) {
        int err = errno;
        unlink(tmp);
        errno = err;
        return -1;
    }
    return 0;
}
