/* SPDX-License-Identifier: Apache-2.0 */
/* owned_file.c -- a file one process uses alone: created owner-only, held under a lock. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/file.h>
#include <unistd.h>

#include "core/detail.h"
#include "port/posix/owned_file.h"

mw_err mwi_owned_file_acquire(const char *path, const char *what, int *out_fd, mw_error_detail_t *d)
{
    *out_fd = -1;
    /* 0600 from the first instant: what the file holds (health data, device state) is no
     * other local user's, whatever the umask. */
    int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (fd < 0) {
        int err = errno;
        mwi_detail_firstf(d, MW_EIO, err, "%s: cannot open %.90s: %s", what, path, strerror(err));
        return MW_EIO;
    }
    /* flock, not fcntl: SQLite takes fcntl byte-range locks on the same file, and POSIX
     * drops every fcntl lock a process holds on a file when it closes any descriptor of it;
     * flock locks are separate from those, and follow the file (not its name) across
     * symbolic and hard links. */
    if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
        int err = errno;
        (void)close(fd);
        if (err == EWOULDBLOCK)
            mwi_detail_firstf(d, MW_EIO, EAGAIN, "%s %.90s is locked by another process", what,
                              path);
        else
            mwi_detail_firstf(d, MW_EIO, err, "%s: cannot lock %.90s: %s", what, path,
                              strerror(err));
        return MW_EIO;
    }
    *out_fd = fd;
    return MW_OK;
}

void mwi_owned_file_release(int *fd)
{
    if (fd == NULL || *fd < 0)
        return;
    (void)close(*fd); /* closing the last descriptor of the open file releases the flock */
    *fd = -1;
}
