/* SPDX-License-Identifier: Apache-2.0 */
/* diag.c -- how medwire-pki reports a failure: one line on stderr, after the program's name. */

#include "diag.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

#include <wolfssl/options.h>
#include <wolfssl/wolfcrypt/settings.h>
#include <wolfssl/wolfcrypt/error-crypt.h>

int pki_fail(const char *fmt, ...)
{
    va_list ap;
    fputs(PKI_PROG ": ", stderr);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    return EXIT_FAILURE;
}

int pki_wolf_fail(const char *what, int err)
{
    return pki_fail("%s: %s (wolfCrypt error %d)", what, wc_GetErrorString(err), err);
}
