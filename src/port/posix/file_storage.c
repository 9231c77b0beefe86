/* SPDX-License-Identifier: Apache-2.0 */
/* file_storage.c -- a storage region in a POSIX file: pread, pwrite, fdatasync, 0xFF as erased. */
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/detail.h"
#include "core/storage.h"
#include "medwire/storage.h"

/* Erasing and extending write this many 0xFF bytes per call; a stack buffer, no allocation. */
#define FILL_CHUNK 4096

typedef struct file_region {
    int fd;
    uint32_t size;
} file_region;

static bool in_region(const file_region *f, uint32_t off, size_t len)
{
    return off <= f->size && len <= (size_t)(f->size - off);
}

static mw_err file_read(void *ctx, uint32_t off, uint8_t *buf, size_t len)
{
    file_region *f = ctx;
    size_t done = 0;

    if (f == NULL || (buf == NULL && len > 0) || !in_region(f, off, len)) {
        return MW_EINVAL;
    }
    while (done < len) {
        ssize_t n = pread(f->fd, buf + done, len - done, (off_t)off + (off_t)done);
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n < 0) {
            return MW_EIO;
        }
        if (n == 0) {
            /* Past the end of a file that something else truncated: the bytes were never
             * written as far as the file knows, which is what "erased" means to the queue. */
            memset(buf + done, 0xFF, len - done);
            break;
        }
        done += (size_t)n;
    }
    return MW_OK;
}

static mw_err write_all(int fd, uint32_t off, const uint8_t *buf, size_t len)
{
    size_t done = 0;

    while (done < len) {
        ssize_t n = pwrite(fd, buf + done, len - done, (off_t)off + (off_t)done);
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n <= 0) {
            return MW_EIO;
        }
        done += (size_t)n;
    }
    return MW_OK;
}

static mw_err file_write(void *ctx, uint32_t off, const uint8_t *buf, size_t len)
{
    file_region *f = ctx;

    if (f == NULL || (buf == NULL && len > 0) || !in_region(f, off, len)) {
        return MW_EINVAL;
    }
    return write_all(f->fd, off, buf, len);
}

static mw_err fill_ff(int fd, uint32_t off, uint64_t len)
{
    uint8_t ff[FILL_CHUNK];

    memset(ff, 0xFF, sizeof ff);
    while (len > 0) {
        size_t n = len < sizeof ff ? (size_t)len : sizeof ff;
        mw_err e = write_all(fd, off, ff, n);
        if (e != MW_OK) {
            return e;
        }
        off += (uint32_t)n;
        len -= n;
    }
    return MW_OK;
}

/* A file has no erase: writing the erased value gives the queue the same view as flash. */
static mw_err file_erase(void *ctx, uint32_t off, uint32_t len)
{
    file_region *f = ctx;

    if (f == NULL || !in_region(f, off, len)) {
        return MW_EINVAL;
    }
    return fill_ff(f->fd, off, len);
}

/* fdatasync, not fsync: the size is fixed at open, so the metadata a power cut could lose
 * (times) does not matter, and fdatasync skips the inode write on most file systems. */
static mw_err file_sync(void *ctx)
{
    file_region *f = ctx;

    if (f == NULL) {
        return MW_EINVAL;
    }
    while (fdatasync(f->fd) != 0) {
        if (errno != EINTR) {
            return MW_EIO;
        }
    }
    return MW_OK;
}

static mw_err fail(mw_error_detail_t *d, mw_err e, const char *what, const char *path)
{
    int err = errno;

    mwi_detail_firstf(d, e, err, "%s %s: %s", what, path, strerror(err));
    return e;
}

/* A new file's directory entry is only durable once the directory is synced; without this, a
 * power cut soon after the first run can lose the whole queue file although every append in
 * it was synced. */
static mw_err sync_parent_dir(const char *path)
{
    char copy[4096];
    size_t len = strlen(path);
    int dfd;
    int rc;

    if (len >= sizeof copy) {
        errno = ENAMETOOLONG;
        return MW_EIO;
    }
    memcpy(copy, path, len + 1);
    dfd = open(dirname(copy), O_RDONLY | O_CLOEXEC);
    if (dfd < 0) {
        return MW_EIO;
    }
    rc = fsync(dfd);
    (void)close(dfd);
    return rc == 0 ? MW_OK : MW_EIO;
}

static const mwi_storage_ops FILE_OPS = {file_read, file_write, file_erase, file_sync};

MW_API mw_err mw_storage_file_open(const char *path, uint32_t size, mw_storage_t *out_storage,
                                   mw_error_detail_t *out_detail)
{
    file_region *f = NULL;
    struct stat sb;
    struct flock lk;
    bool created = false;
    mw_err err = MW_OK;
    int fd;

    if (out_detail != NULL) {
        memset(out_detail, 0, sizeof *out_detail);
    }
    if (path == NULL || out_storage == NULL || size == 0) {
        mwi_detail_first(out_detail, MW_EINVAL, 0, "storage file: path, output or size missing");
        return MW_EINVAL;
    }
    memset(out_storage, 0, sizeof *out_storage);
    fd = open(path, O_RDWR | O_CLOEXEC, 0600);
    if (fd < 0 && errno == ENOENT) {
        /* O_EXCL: if another process creates it between the two calls, open theirs instead
         * of racing on its initialisation (the lock below then decides). */
        fd = open(path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
        created = fd >= 0;
        if (fd < 0 && errno == EEXIST) {
            fd = open(path, O_RDWR | O_CLOEXEC, 0600);
        }
    }
    if (fd < 0) {
        return fail(out_detail, MW_EIO, "cannot open", path);
    }
    /* Two writers interleaving appends would each overwrite the other's records. */
    memset(&lk, 0, sizeof lk);
    lk.l_type = F_WRLCK;
    lk.l_whence = SEEK_SET;
    if (fcntl(fd, F_SETLK, &lk) != 0) {
        if (errno != EAGAIN && errno != EACCES) {
            err = fail(out_detail, MW_EIO, "cannot lock", path);
            goto out;
        }
        /* POSIX lets a held lock fail with either; one code lets a caller tell this case. */
        mwi_detail_firstf(out_detail, MW_EIO, EAGAIN,
                          "%.90s is locked by another process (only one at a time may use it)",
                          path);
        err = MW_EIO;
        goto out;
    }
    if (fstat(fd, &sb) != 0) {
        err = fail(out_detail, MW_EIO, "cannot stat", path);
        goto out;
    }
    if (!S_ISREG(sb.st_mode)) {
        errno = EINVAL;
        err = fail(out_detail, MW_EIO, "not a regular file:", path);
        goto out;
    }
    if ((uint64_t)sb.st_size < size) {
        uint32_t from = (uint32_t)sb.st_size;
        if (fill_ff(fd, from, (uint64_t)size - from) != MW_OK || fdatasync(fd) != 0) {
            err = fail(out_detail, MW_EIO, "cannot extend", path);
            goto out;
        }
    }
    if (created && sync_parent_dir(path) != MW_OK) {
        err = fail(out_detail, MW_EIO, "cannot sync the directory of", path);
        goto out;
    }
    f = malloc(sizeof *f);
    if (f == NULL) {
        mwi_detail_first(out_detail, MW_ENOMEM, 0, "storage file: out of memory");
        err = MW_ENOMEM;
        goto out;
    }
    f->fd = fd;
    f->size = size;
    *out_storage = mwi_storage_table(f, &FILE_OPS, size, 1, 1);
    return MW_OK;
out:
    (void)close(fd);
    return err;
}

MW_API void mw_storage_file_close(mw_storage_t *storage)
{
    file_region *f;

    if (storage == NULL || storage->read != file_read) {
        return;
    }
    f = storage->ctx;
    if (f != NULL) {
        (void)close(f->fd);
        free(f);
    }
    memset(storage, 0, sizeof *storage);
}
