/* SPDX-License-Identifier: Apache-2.0 */
/* owned_file.h -- a file one process uses alone: created owner-only, held under a lock. */
#ifndef MWI_PORT_OWNED_FILE_H
#define MWI_PORT_OWNED_FILE_H

#include "medwire/err.h"

/**
 * Opens @p path, creating it with mode 0600 if it does not exist (an existing file keeps its
 * mode), and takes an exclusive flock(2) on it without waiting. The lock lasts until
 * mwi_owned_file_release(): keep *out_fd open as long as the file is in use.
 * @p what names the file in a reason ("gateway store").
 * @return MW_OK; MW_EIO with foreign EAGAIN when another process (or another open in this
 *         one) holds the lock; MW_EIO with foreign errno when the file cannot be opened.
 */
MW_NODISCARD mw_err mwi_owned_file_acquire(const char *path, const char *what, int *out_fd,
                                           mw_error_detail_t *out_detail);
/** Releases the lock and closes @p *fd (-1 afterwards; -1 before does nothing). */
void mwi_owned_file_release(int *fd);

#endif
