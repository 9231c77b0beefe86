/* SPDX-License-Identifier: Apache-2.0 */
/* files.c -- the files medwire-pki reads and writes: directories, paths, atomic replacement. */

#include "files.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "der.h"
#include "diag.h"

int pki_make_dirs(const char *dir)
{
    char path[4096];
    if (strlen(dir) >= sizeof(path))
        return pki_fail("output directory name is too long: %s", dir);
    memcpy(path, dir, strlen(dir) + 1);
    for (char *p = path + 1;; p++) {
        if (*p != '/' && *p != '\0')
            continue;
        char saved = *p;
        *p = '\0';
        if (mkdir(path, 0700) != 0 && errno != EEXIST)
            return pki_fail("cannot create directory %s: %s", path, strerror(errno));
        *p = saved;
        if (saved == '\0')
            break;
    }
    struct stat st;
    if (stat(dir, &st) != 0 || !S_ISDIR(st.st_mode))
        return pki_fail("%s exists and is not a directory; choose another --out", dir);
    return EXIT_SUCCESS;
}

bool pki_path_join(char *out, size_t cap, const char *dir, const char *prefix, const char *name,
                   const char *suffix)
{
    int n = snprintf(out, cap, "%s/%s%s%s", dir, prefix, name, suffix);
    return n > 0 && (size_t)n < cap;
}

int pki_refuse_existing(const char *path)
{
    struct stat st;
    if (lstat(path, &st) == 0)
        return pki_fail("%s already exists; not overwriting it (use --force to replace it)", path);
    if (errno != ENOENT)
        return pki_fail("cannot check %s: %s", path, strerror(errno));
    return EXIT_SUCCESS;
}

/*
 * Writes DIR/.FILE.tmp, fsyncs it and moves it into place, then fsyncs DIR so the rename is
 * durable too: a crash leaves the old file or the new one, never half a key. Without --force
 * the move is link(2), which fails if the target appeared meanwhile instead of replacing it.
 */
int pki_write_atomic(const char *dir, const char *file, const unsigned char *data, size_t len,
                     mode_t mode, bool force)
{
    char final[4096], tmp[4096];
    if (!pki_path_join(final, sizeof(final), dir, "", file, "") ||
        !pki_path_join(tmp, sizeof(tmp), dir, ".", file, ".tmp"))
        return pki_fail("path too long: %s/%s", dir, file);

    int fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, mode);
    if (fd < 0 && errno == EEXIST) {
        /* Left by a run that crashed; it never became the real file, so it is safe to drop. */
        unlink(tmp);
        fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, mode);
    }
    if (fd < 0)
        return pki_fail("cannot create %s: %s", tmp, strerror(errno));
    int err = 0;
    if (fchmod(fd, mode) != 0) /* the umask must not loosen or tighten the profile's modes */
        err = errno;
    for (size_t off = 0; err == 0 && off < len;) {
        ssize_t w = write(fd, data + off, len - off);
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0)
            err = errno;
        else
            off += (size_t)w;
    }
    if (err == 0 && fsync(fd) != 0)
        err = errno;
    if (close(fd) != 0 && err == 0)
        err = errno;
    if (err != 0) {
        unlink(tmp);
        return pki_fail("cannot write %s: %s", tmp, strerror(err));
    }

    if (force) {
        if (rename(tmp, final) != 0)
            err = errno;
    } else if (link(tmp, final) != 0) {
        err = errno;
    }
    unlink(tmp);
    if (err == EEXIST)
        return pki_fail("%s already exists; not overwriting it (use --force to replace it)", final);
    if (err != 0)
        return pki_fail("cannot move %s to %s: %s", tmp, final, strerror(err));

    int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd >= 0) {
        if (fsync(dfd) != 0)
            err = errno;
        close(dfd);
    }
    if (err != 0)
        return pki_fail("cannot sync directory %s: %s", dir, strerror(err));
    return EXIT_SUCCESS;
}

long pki_read_small_file(const char *path, unsigned char *buf, size_t cap)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    size_t len = 0;
    for (;;) {
        if (len == cap) {
            close(fd);
            errno = EFBIG;
            return -1;
        }
        ssize_t r = read(fd, buf + len, cap - len);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0) {
            int e = errno;
            close(fd);
            errno = e;
            return -1;
        }
        if (r == 0)
            break;
        len += (size_t)r;
    }
    close(fd);
    return (long)len;
}

char *pki_read_text_file(const char *path, size_t limit)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return NULL;
    dbuf b = {0};
    unsigned char chunk[8192];
    for (;;) {
        ssize_t r = read(fd, chunk, sizeof(chunk));
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0) {
            int e = errno;
            close(fd);
            pki_db_free(&b);
            errno = e;
            return NULL;
        }
        if (r == 0)
            break;
        pki_db_put(&b, chunk, (size_t)r);
        if (b.len > limit) {
            close(fd);
            pki_db_free(&b);
            errno = EFBIG;
            return NULL;
        }
    }
    close(fd);
    pki_db_put(&b, "", 1);
    if (b.failed) {
        pki_db_free(&b);
        errno = ENOMEM;
        return NULL;
    }
    return (char *)b.p;
}

bool pki_same_dir(const char *a, const char *b)
{
    struct stat sa, sb;
    return stat(a, &sa) == 0 && stat(b, &sb) == 0 && sa.st_dev == sb.st_dev &&
           sa.st_ino == sb.st_ino;
}
