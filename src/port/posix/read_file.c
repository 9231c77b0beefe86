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
    /* Sized to the file (a CRL may be allowed a megabyte; a CA file is a few kB), one byte more
     * to see it grew since, one for the NUL. A file whose size cannot be told is refused. */
    long size = -1;
    if (fseek(f, 0, SEEK_END) == 0)
        size = ftell(f);
    if (size < 0 || fseek(f, 0, SEEK_SET) != 0) {
        fclose(f);
        return MW_EIO;
    }
    if ((unsigned long)size > max) {
        fclose(f);
        return MW_ETOOBIG;
    }
    size_t cap = (size_t)size + 1;
    uint8_t *buf = malloc(cap + 1);
    if (buf == NULL) {
        fclose(f);
        return MW_ENOMEM;
    }
    size_t n = fread(buf, 1, cap, f);
    bool read_err = ferror(f) != 0;
    fclose(f);
    if (read_err || n > (size_t)size) {
        mwi_wipe(buf, cap + 1);
        free(buf);
        return read_err ? MW_EIO : MW_ETOOBIG;
    }
    buf[n] = '\0';
    *out_buf = buf;
    *out_len = n;
    return MW_OK;
}
