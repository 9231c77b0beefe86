/* SPDX-License-Identifier: Apache-2.0 */
/* read_file.c -- reading a credential file (CA, certificate, key, CRL) into memory for the DTLS
 * layer, which loads credentials from buffers only. */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>

#include "core/wipe.h"
#include "port/posix/read_file.h"

mw_err mwi_file_read(const char *path, size_t max, uint8_t **out_buf, size_t *out_len)
{
    if (path == NULL || out_buf == NULL || out_len == NULL)
        return MW_EINVAL;
    *out_buf = NULL;
    *out_len = 0;
    FILE *f = fopen(path, "rb");
    if (f == NULL)
        return MW_EIO;
    /* One byte more than allowed tells a file that is too large; one more for the NUL. */
    uint8_t *buf = malloc(max + 2);
    if (buf == NULL) {
        fclose(f);
        return MW_ENOMEM;
    }
    size_t n = fread(buf, 1, max + 1, f);
    bool read_err = ferror(f) != 0;
    fclose(f);
    if (read_err || n > max) {
        mwi_wipe(buf, max + 2);
        free(buf);
        return read_err ? MW_EIO : MW_ETOOBIG;
    }
    buf[n] = '\0';
    *out_buf = buf;
    *out_len = n;
    return MW_OK;
}
