/* SPDX-License-Identifier: Apache-2.0 */
/* proc.h -- start the real programs from tests, bounded in time, and read what they wrote. */
#ifndef MWT_PROC_H
#define MWT_PROC_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

typedef struct mwt_proc {
    pid_t pid;
    int status; /**< exit status once reaped, -1 before */
} mwt_proc;

/** Full path of a built program ("medwire-pki") in MW_BIN_DIR; static buffer per call slot. */
const char *mwt_bin(const char *name);
/** Creates a fresh temporary directory and returns its path (static buffer, copy it). */
const char *mwt_tmpdir(void);

/** Starts argv[0] with stdout and stderr redirected to files (NULL: /dev/null). */
bool mwt_proc_start(mwt_proc *p, const char *const argv[], const char *out_path,
                    const char *err_path);
/** Waits up to @p timeout_ms; returns the exit code, 128+signal if killed, -1 on timeout. */
int mwt_proc_wait(mwt_proc *p, int timeout_ms);
/** Sends @p sig; then waits up to 5 s. Returns the exit code as mwt_proc_wait. */
int mwt_proc_stop(mwt_proc *p, int sig);
/** Runs to completion within @p timeout_ms; returns exit code (-1 on timeout, killed). */
int mwt_run(const char *const argv[], const char *out_path, const char *err_path, int timeout_ms);

/** Reads a whole file into a NUL-terminated heap buffer (free it); NULL if missing. */
char *mwt_read_file(const char *path);
/** Reads up to @p cap bytes of @p path into @p buf; returns how many (0 if it is missing). */
size_t mwt_read_bytes(const char *path, void *buf, size_t cap);
/** As mwt_read_file, without a last line that has no newline yet: for a file another process
 * appends to while it is read (a write may be seen in part, cut at a page boundary). */
char *mwt_read_lines(const char *path);
/** Counts the lines of @p path that contain every one of the NULL-terminated needles. */
size_t mwt_count_lines(const char *path, const char *const needles[]);
/** Waits up to @p timeout_ms until @p path exists and is non-empty. */
bool mwt_wait_file(const char *path, int timeout_ms);
/** Sleeps @p ms (only for waiting on real processes, never for timing logic). */
void mwt_sleep_ms(int ms);

#endif
