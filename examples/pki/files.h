/* SPDX-License-Identifier: Apache-2.0 */
/* files.h -- the files medwire-pki reads and writes: directories, paths, atomic replacement. */
#ifndef MW_PKI_FILES_H
#define MW_PKI_FILES_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

/** Creates @p dir and its missing parents with mode 0700, and checks that @p dir is a
 *  directory. EXIT_SUCCESS, or EXIT_FAILURE after reporting why. */
int pki_make_dirs(const char *dir);

/** Writes "DIR/PREFIXNAMESUFFIX" into @p out; false if it does not fit in @p cap. */
bool pki_path_join(char *out, size_t cap, const char *dir, const char *prefix, const char *name,
                   const char *suffix);

/** EXIT_SUCCESS when nothing exists at @p path, EXIT_FAILURE after reporting it otherwise. */
int pki_refuse_existing(const char *path);

/**
 * Replaces or creates DIR/FILE with @p len bytes of @p data and mode @p mode, whatever the
 * umask, so that a crash leaves the old file or the new one, never half of one. Without
 * @p force an existing DIR/FILE is kept and reported. EXIT_SUCCESS, or EXIT_FAILURE after
 * reporting why.
 */
int pki_write_atomic(const char *dir, const char *file, const unsigned char *data, size_t len,
                     mode_t mode, bool force);

/** Reads a file of at most @p cap - 1 bytes whole; returns its length, or -1 with errno set
 *  (EFBIG when it is larger). */
long pki_read_small_file(const char *path, unsigned char *buf, size_t cap);

/**
 * Reads a file of at most @p limit bytes that may be large (index.txt grows with every
 * certificate). Returns a NUL-terminated buffer the caller frees, or NULL with errno set
 * (ENOENT if the file is missing, EFBIG past @p limit).
 */
char *pki_read_text_file(const char *path, size_t limit);

/** Whether @p a and @p b name the same existing directory or file. */
bool pki_same_dir(const char *a, const char *b);

#endif
