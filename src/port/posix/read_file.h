/* SPDX-License-Identifier: Apache-2.0 */
/* read_file.h -- a credential file read into memory, so that the layers below load credentials
 * from buffers only and never open a file themselves. */
#ifndef MWI_PORT_READ_FILE_H
#define MWI_PORT_READ_FILE_H

#include <stddef.h>
#include <stdint.h>

#include "medwire/err.h"

/**
 * Reads the whole file @p path into a new buffer (malloc; the caller frees it, after wiping it
 * if it holds a secret), with a NUL byte after the @p *out_len bytes read.
 * @return MW_OK; MW_EIO (missing or unreadable); MW_ETOOBIG (more than @p max bytes: the
 *         buffer read so far is wiped and freed); MW_ENOMEM; MW_EINVAL (NULL argument).
 */
MW_NODISCARD mw_err mwi_file_read(const char *path, size_t max, uint8_t **out_buf,
                                  size_t *out_len);

#endif
