/* SPDX-License-Identifier: Apache-2.0 */
/* keyfile.c -- the offline queue's AES key, read from the file an operator made for it. */
#define _DEFAULT_SOURCE /* explicit_bzero */
#include "keyfile.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

static void keyfile_wipe(void *p, unsigned long n)
{
    explicit_bzero(p, n);
}

static unsigned hex_digit(int ch)
{
    return ch >= '0' && ch <= '9'   ? (unsigned)(ch - '0')
           : ch >= 'a' && ch <= 'f' ? (unsigned)(ch - 'a' + 10)
           : ch >= 'A' && ch <= 'F' ? (unsigned)(ch - 'A' + 10)
                                    : 16u;
}

int keyfile_read(const char *prog, const char *path, uint8_t key[32])
{
    FILE *f = fopen(path, "rb");
    if (f == NULL) {
        fprintf(stderr, "%s: cannot read the queue key %s: %s\n", prog, path, strerror(errno));
        return -1;
    }
    uint8_t buf[80];
    size_t n = fread(buf, 1, sizeof buf, f);
    fclose(f);
    while (n == 65 || n == 66) {
        if (buf[n - 1] != '\n' && buf[n - 1] != '\r')
            break;
        n--;
    }
    int rc = -1;
    if (n == 32) {
        memcpy(key, buf, 32);
        rc = 0;
    } else if (n == 64) {
        rc = 0;
        for (size_t i = 0; i < 32 && rc == 0; i++) {
            unsigned hi = hex_digit(buf[2 * i]), lo = hex_digit(buf[2 * i + 1]);
            if (hi == 16u || lo == 16u)
                rc = -1;
            else
                key[i] = (uint8_t)(hi * 16u + lo);
        }
    }
    keyfile_wipe(buf, sizeof buf);
    if (rc != 0) {
        keyfile_wipe(key, 32);
        fprintf(stderr,
                "%s: the queue key %s must hold 32 bytes, raw or as 64 hex digits "
                "(make one with: head -c 32 /dev/urandom > %s)\n",
                prog, path, path);
    }
    return rc;
}
