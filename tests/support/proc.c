/* SPDX-License-Identifier: Apache-2.0 */
/* proc.c -- start the real programs from tests, bounded in time, and read what they wrote. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#if defined(__linux__)
#include <sys/prctl.h>
#endif

#include "support/proc.h"

#ifndef PATH_MAX
#define PATH_MAX 4096
#endif

/* Rotating buffers let a test build one argv from several mwt_bin() calls. */
enum { BIN_SLOTS = 8 };

/* How long mwt_proc_stop waits for a polite signal before SIGKILL. */
enum { STOP_GRACE_MS = 5000 };

const char *mwt_bin(const char *name)
{
    static char slots[BIN_SLOTS][PATH_MAX];
    static unsigned next;
    char *buf = slots[next++ % BIN_SLOTS];
    const char *dir = getenv("MW_BIN_DIR");
    if (dir == NULL || *dir == '\0')
        dir = "./bin";
    (void)snprintf(buf, PATH_MAX, "%s/%s", dir, name);
    return buf;
}

const char *mwt_tmpdir(void)
{
    static char path[PATH_MAX];
    const char *base = getenv("TMPDIR");
    if (base == NULL || *base == '\0')
        base = "/tmp";
    if (snprintf(path, sizeof path, "%s/medwire-test-XXXXXX", base) >= (int)sizeof path)
        return NULL;
    if (mkdtemp(path) == NULL) {
        fprintf(stderr, "mwt_tmpdir: mkdtemp under %s: %s\n", base, strerror(errno));
        return NULL;
    }
    return path;
}

static int64_t monotonic_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void mwt_sleep_ms(int ms)
{
    struct timespec ts;
    if (ms <= 0)
        return;
    ts.tv_sec = ms / 1000;
    ts.tv_nsec = (long)(ms % 1000) * 1000000L;
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
}

static int open_output(const char *path)
{
    if (path == NULL)
        return open("/dev/null", O_WRONLY | O_CLOEXEC);
    return open(path, O_CREAT | O_TRUNC | O_WRONLY | O_CLOEXEC, 0644);
}

/* Reports errno to the parent through the exec pipe; nothing else can be done
 * if that fails, so the result is deliberately dropped. */
static void report_errno(int report_fd)
{
    int e = errno;
    ssize_t n = write(report_fd, &e, sizeof e);
    (void)n;
}

/* Makes @p fd the child's descriptor @p target, open across exec. When they are
 * already equal (the test runner had closed that standard stream), dup2 does
 * nothing and the close-on-exec flag must be cleared by hand. */
static int redirect(int fd, int target)
{
    if (fd == target)
        return fcntl(fd, F_SETFD, 0);
    return dup2(fd, target) < 0 ? -1 : 0;
}

/* Runs in the child between fork and exec: only async-signal-safe calls. */
static void child_exec(char *const argv[], int in_fd, int out_fd, int err_fd, int report_fd,
                       pid_t parent)
{
#if defined(__linux__)
    /* A test that crashes or times out must not leave a gateway holding its
     * port for the next test. The signal follows the parent thread's death;
     * Criterion runs each test on the worker's main thread. */
    (void)prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != parent)
        _exit(127);
#else
    (void)parent;
#endif
    if (redirect(in_fd, STDIN_FILENO) != 0 || redirect(out_fd, STDOUT_FILENO) != 0 ||
        redirect(err_fd, STDERR_FILENO) != 0) {
        report_errno(report_fd);
        _exit(127);
    }
    execv(argv[0], argv);
    report_errno(report_fd);
    _exit(127);
}

bool mwt_proc_start(mwt_proc *p, const char *const argv[], const char *out_path,
                    const char *err_path)
{
    int in_fd = -1, out_fd = -1, err_fd = -1, report[2] = {-1, -1};
    char **args = NULL;
    size_t argc = 0;
    bool ok = false;
    pid_t parent = getpid();
    pid_t pid;

    p->pid = -1;
    p->status = -1;
    if (argv == NULL || argv[0] == NULL)
        return false;
    while (argv[argc] != NULL)
        argc++;
    /* execv wants char *const[]; copy the pointers once rather than cast the constness away. */
    args = calloc(argc + 1, sizeof *args);
    if (args == NULL)
        return false;
    memcpy(args, argv, argc * sizeof *argv);

    /* Opened before fork so that a bad path is reported here, not as a
     * mysterious exit code 127 from the child. */
    in_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
    out_fd = open_output(out_path);
    err_fd = open_output(err_path);
    if (in_fd < 0 || out_fd < 0 || err_fd < 0) {
        fprintf(stderr, "mwt_proc_start: cannot open %s or %s: %s\n",
                out_path ? out_path : "/dev/null", err_path ? err_path : "/dev/null",
                strerror(errno));
        goto out;
    }
    /* A close-on-exec pipe tells exec success (EOF) from failure (errno). */
    if (pipe(report) != 0 || fcntl(report[0], F_SETFD, FD_CLOEXEC) != 0 ||
        fcntl(report[1], F_SETFD, FD_CLOEXEC) != 0)
        goto out;

    fflush(NULL); /* no buffered output of ours is written twice by the child */
    pid = fork();
    if (pid < 0)
        goto out;
    if (pid == 0)
        child_exec(args, in_fd, out_fd, err_fd, report[1], parent);

    close(report[1]);
    report[1] = -1;
    {
        int e = 0;
        ssize_t n;
        do
            n = read(report[0], &e, sizeof e);
        while (n < 0 && errno == EINTR);
        if (n > 0) {
            fprintf(stderr, "mwt_proc_start: cannot run %s: %s\n", argv[0], strerror(e));
            while (waitpid(pid, NULL, 0) < 0 && errno == EINTR)
                ;
            goto out;
        }
    }
    p->pid = pid;
    ok = true;

out:
    if (in_fd >= 0)
        close(in_fd);
    if (out_fd >= 0)
        close(out_fd);
    if (err_fd >= 0)
        close(err_fd);
    if (report[0] >= 0)
        close(report[0]);
    if (report[1] >= 0)
        close(report[1]);
    free(args);
    return ok;
}

static int decode_status(int status)
{
    if (WIFEXITED(status))
        return WEXITSTATUS(status);
    if (WIFSIGNALED(status))
        return 128 + WTERMSIG(status);
    return -1;
}

int mwt_proc_wait(mwt_proc *p, int timeout_ms)
{
    int64_t deadline = monotonic_ms() + (timeout_ms > 0 ? timeout_ms : 0);

    if (p->status >= 0)
        return p->status;
    if (p->pid <= 0)
        return -1;
    for (;;) {
        int status;
        pid_t r = waitpid(p->pid, &status, timeout_ms < 0 ? 0 : WNOHANG);
        if (r == p->pid) {
            p->status = decode_status(status);
            return p->status;
        }
        if (r < 0 && errno != EINTR)
            return -1;
        if (timeout_ms >= 0 && monotonic_ms() >= deadline)
            return -1;
        if (r == 0)
            mwt_sleep_ms(10);
    }
}

int mwt_proc_stop(mwt_proc *p, int sig)
{
    int code;

    if (p->status >= 0)
        return p->status;
    if (p->pid <= 0)
        return -1;
    (void)kill(p->pid, sig);
    code = mwt_proc_wait(p, STOP_GRACE_MS);
    if (code == -1 && p->status < 0) {
        fprintf(stderr, "mwt_proc_stop: pid %ld ignored signal %d; killing\n", (long)p->pid, sig);
        (void)kill(p->pid, SIGKILL);
        code = mwt_proc_wait(p, -1);
    }
    return code;
}

int mwt_run(const char *const argv[], const char *out_path, const char *err_path, int timeout_ms)
{
    mwt_proc p;
    int code;

    if (!mwt_proc_start(&p, argv, out_path, err_path))
        return 127; /* the shell's "command not found" */
    code = mwt_proc_wait(&p, timeout_ms);
    if (code == -1 && p.status < 0) {
        fprintf(stderr, "mwt_run: %s did not finish within %d ms; killed\n", argv[0], timeout_ms);
        (void)kill(p.pid, SIGKILL);
        (void)mwt_proc_wait(&p, -1);
        return -1;
    }
    return code;
}

char *mwt_read_file(const char *path)
{
    FILE *f = fopen(path, "rb");
    char *buf = NULL;
    size_t len = 0, cap = 0;

    if (f == NULL)
        return NULL;
    for (;;) {
        size_t n;
        if (cap - len < 4096 + 1) {
            char *grown = realloc(buf, cap * 2 + 4096 + 1);
            if (grown == NULL) {
                free(buf);
                fclose(f);
                return NULL;
            }
            buf = grown;
            cap = cap * 2 + 4096 + 1;
        }
        n = fread(buf + len, 1, cap - len - 1, f);
        len += n;
        if (n == 0)
            break;
    }
    if (ferror(f)) {
        free(buf);
        fclose(f);
        return NULL;
    }
    fclose(f);
    buf[len] = '\0';
    return buf;
}

size_t mwt_read_bytes(const char *path, void *buf, size_t cap)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL)
        return 0;
    size_t n = fread(buf, 1, cap, f);
    fclose(f);
    return n;
}

char *mwt_read_lines(const char *path)
{
    char *text = mwt_read_file(path);
    if (text != NULL) {
        char *last = strrchr(text, '\n');
        if (last != NULL)
            last[1] = '\0';
        else
            text[0] = '\0';
    }
    return text;
}

static bool line_matches(const char *line, const char *const needles[])
{
    for (size_t i = 0; needles != NULL && needles[i] != NULL; i++)
        if (strstr(line, needles[i]) == NULL)
            return false;
    return true;
}

size_t mwt_count_lines(const char *path, const char *const needles[])
{
    char *text = mwt_read_file(path);
    size_t count = 0;
    char *line;

    if (text == NULL)
        return 0;
    line = text;
    while (*line != '\0') {
        char *nl = strchr(line, '\n');
        if (nl != NULL)
            *nl = '\0';
        if (line_matches(line, needles))
            count++;
        if (nl == NULL)
            break;
        line = nl + 1;
    }
    free(text);
    return count;
}

bool mwt_wait_file(const char *path, int timeout_ms)
{
    int64_t deadline = monotonic_ms() + timeout_ms;
    for (;;) {
        struct stat st;
        if (stat(path, &st) == 0 && st.st_size > 0)
            return true;
        if (monotonic_ms() >= deadline)
            return false;
        mwt_sleep_ms(10);
    }
}
