/* SPDX-License-Identifier: Apache-2.0 */
/* est_cmd.c -- the EST issuer of medwire-gateway --est-ca-cmd CMD (est_cmd.h). A request runs
 * the command once, in the background: its input and outputs are unlinked temporary files, so
 * the gateway never waits on a pipe, and its outcome is collected when the device asks again. */
#define _GNU_SOURCE /* mkostemp, closefrom */
#include "est_cmd.h"
#include "est_der.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <wolfssl/options.h>
#include <wolfssl/ssl.h>
#include <wolfssl/wolfcrypt/asn_public.h>

extern char **environ;

#define JOBS_MAX   32    /* requests with the command, or answered, at once */
#define KEEP_S     3600  /* how long an outcome waits for a repeat of its request */
#define OUT_MAX    16384 /* the most of the command's standard output read */
#define REASON_MAX 480   /* what is kept of an outcome's reason */

struct job {
    bool used;
    pid_t pid; /* > 0 while the command runs */
    int out_fd, err_fd;
    uint64_t started_ms, done_ms;
    char device[MW_ID_MAX + 1];
    uint8_t *csr;
    size_t csr_len;
    mw_err result;
    uint8_t cert[MW_EST_CERT_MAX];
    size_t cert_len;
    char reason[REASON_MAX];
};

struct est_cmd {
    char *cmd;
    WOLFSSL_CERT_MANAGER *cm;
    uint32_t timeout_s;
    struct job jobs[JOBS_MAX];
};

static uint64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

est_cmd *est_cmd_new(const char *cmd, const char *ca_file, uint32_t timeout_s, char *why,
                     size_t why_cap)
{
    est_cmd *e = calloc(1, sizeof *e);
    if (e == NULL || (e->cmd = strdup(cmd)) == NULL || (e->cm = wolfSSL_CertManagerNew()) == NULL) {
        snprintf(why, why_cap, "out of memory");
        est_cmd_free(&e);
        return NULL;
    }
    if (ca_file == NULL || wolfSSL_CertManagerLoadCA(e->cm, ca_file, NULL) != WOLFSSL_SUCCESS) {
        snprintf(why, why_cap,
                 "--est-ca-cmd checks what the command issues against the CA file (--ca), "
                 "and %s does not load as PEM CA certificates",
                 ca_file ? ca_file : "(none given)");
        est_cmd_free(&e);
        return NULL;
    }
    e->timeout_s = timeout_s;
    return e;
}

static void forget(struct job *j)
{
    if (j->pid > 0) {
        kill(-j->pid, SIGKILL); /* its process group: the shell and what it started */
        while (waitpid(j->pid, NULL, 0) < 0 && errno == EINTR)
            ;
    }
    if (j->out_fd >= 0)
        close(j->out_fd);
    if (j->err_fd >= 0)
        close(j->err_fd);
    free(j->csr);
    memset(j, 0, sizeof *j);
    j->out_fd = j->err_fd = -1;
}

void est_cmd_free(est_cmd **pe)
{
    if (pe == NULL || *pe == NULL)
        return;
    est_cmd *e = *pe;
    for (size_t i = 0; i < JOBS_MAX; i++)
        if (e->jobs[i].used)
            forget(&e->jobs[i]);
    if (e->cm)
        wolfSSL_CertManagerFree(e->cm);
    free(e->cmd);
    free(e);
    *pe = NULL;
}

/* An unlinked temporary file, not inherited by other children; -1 on failure. */
static int temp_file(void)
{
    const char *dir = getenv("TMPDIR");
    char path[4200];
    snprintf(path, sizeof path, "%s/medwire-est-XXXXXX", dir && dir[0] ? dir : "/tmp");
    int fd = mkostemp(path, O_CLOEXEC);
    if (fd >= 0)
        (void)unlink(path);
    return fd;
}

/* Up to cap bytes of the file @p fd from its start; cap + 1 when there is more. */
static size_t read_back(int fd, uint8_t *buf, size_t cap)
{
    size_t n = 0;
    if (lseek(fd, 0, SEEK_SET) != 0)
        return 0;
    for (;;) {
        uint8_t extra;
        ssize_t r = n < cap ? read(fd, buf + n, cap - n) : read(fd, &extra, 1);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            return n;
        if (n >= cap)
            return cap + 1;
        n += (size_t)r;
    }
}

/* The first line of the command's standard error, printable, or "(nothing on standard
 * error)". */
static void first_line(int fd, char *out, size_t cap)
{
    uint8_t buf[200];
    size_t n = read_back(fd, buf, sizeof buf);
    n = n > sizeof buf ? sizeof buf : n;
    size_t k = 0;
    for (size_t i = 0; i < n && buf[i] != '\n' && k + 1 < cap; i++)
        out[k++] = buf[i] >= 0x20 && buf[i] < 0x7f ? (char)buf[i] : '?';
    out[k] = '\0';
    if (k == 0)
        snprintf(out, cap, "(nothing on standard error)");
}

/* Whether the certificate the command gave is one the device may be given: false with why in
 * j->reason. */
static bool acceptable(est_cmd *e, struct job *j)
{
    est_der cert, req;
    if (!est_der_read(j->cert, j->cert_len, false, &cert)) {
        snprintf(j->reason, sizeof j->reason,
                 "the CA command's output is not a certificate (PEM or DER)");
        return false;
    }
    if (!est_der_read(j->csr, j->csr_len, true, &req) || cert.key_len != req.key_len ||
        memcmp(cert.key, req.key, cert.key_len) != 0) {
        snprintf(j->reason, sizeof j->reason,
                 "the CA command's certificate (serial %s) is not for the request's key",
                 cert.serial);
        return false;
    }
    if (strcmp(cert.cn, j->device) != 0 || !cert.client_auth || cert.ca) {
        snprintf(j->reason, sizeof j->reason,
                 "the CA command's certificate (serial %s) is for '%s'%s%s, not a device "
                 "certificate for '%s' (CN, extendedKeyUsage clientAuth, no CA)",
                 cert.serial, cert.cn, cert.client_auth ? "" : " without clientAuth",
                 cert.ca ? " as a CA" : "", j->device);
        return false;
    }
    int rc =
        wolfSSL_CertManagerVerifyBuffer(e->cm, j->cert, (long)j->cert_len, WOLFSSL_FILETYPE_ASN1);
    if (rc != WOLFSSL_SUCCESS) {
        snprintf(j->reason, sizeof j->reason,
                 "the CA command's certificate (serial %s) does not verify against the "
                 "gateway's CA file (wolfSSL %d): devices would be refused with it",
                 cert.serial, rc);
        return false;
    }
    snprintf(j->reason, sizeof j->reason, "serial %s, by the CA command", cert.serial);
    return true;
}

/* The outcome of the finished run of @p j, exit status @p status. */
static void collect(est_cmd *e, struct job *j, int status)
{
    char line[160];
    first_line(j->err_fd, line, sizeof line);
    j->pid = 0;
    j->done_ms = now_ms();
    j->result = MW_EINTERNAL;
    if (WIFEXITED(status) && WEXITSTATUS(status) == 1) {
        j->result = MW_EIDENTITY;
        snprintf(j->reason, sizeof j->reason, "the CA command refused: %s", line);
    } else if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
        char how[40];
        if (WIFEXITED(status))
            snprintf(how, sizeof how, "exit status %d", WEXITSTATUS(status));
        else
            snprintf(how, sizeof how, "killed by signal %d", WTERMSIG(status));
        snprintf(j->reason, sizeof j->reason, "the CA command failed (%s): %s", how, line);
    } else {
        uint8_t *buf = malloc(OUT_MAX + 1);
        size_t n = buf ? read_back(j->out_fd, buf, OUT_MAX) : 0;
        j->cert_len = 0;
        if (buf == NULL) {
            snprintf(j->reason, sizeof j->reason, "out of memory");
        } else if (n > OUT_MAX || n == 0) {
            snprintf(j->reason, sizeof j->reason,
                     "the CA command exited 0 with %s on its standard output, not a certificate",
                     n ? "more than 16 KB" : "nothing");
        } else {
            buf[n] = '\0';
            if (n > 10 && memcmp(buf, "-----BEGIN", 10) == 0) {
                int len = wc_CertPemToDer(buf, (int)n, j->cert, (int)sizeof j->cert, CERT_TYPE);
                j->cert_len = len > 0 ? (size_t)len : 0;
            } else if (n <= sizeof j->cert) {
                memcpy(j->cert, buf, n);
                j->cert_len = n;
            }
            if (j->cert_len == 0)
                snprintf(j->reason, sizeof j->reason,
                         "the CA command's output is not a certificate of at most %u bytes "
                         "(PEM or DER)",
                         (unsigned)MW_EST_CERT_MAX);
            else if (acceptable(e, j))
                j->result = MW_OK;
        }
        free(buf);
        if (j->result != MW_OK)
            j->cert_len = 0;
    }
    close(j->out_fd);
    close(j->err_fd);
    j->out_fd = j->err_fd = -1;
}

/* Collects the runs that ended, stops those past the timeout, and forgets outcomes nobody came
 * back for. */
static void sweep(est_cmd *e)
{
    uint64_t now = now_ms();
    for (size_t i = 0; i < JOBS_MAX; i++) {
        struct job *j = &e->jobs[i];
        if (!j->used)
            continue;
        if (j->pid > 0) {
            int status = 0;
            pid_t r = waitpid(j->pid, &status, WNOHANG);
            if (r == j->pid) {
                collect(e, j, status);
            } else if (r < 0 && errno != EINTR) {
                j->pid = 0; /* not ours to wait for any more: failed below */
                collect(e, j, 0x7f00);
            } else if (now - j->started_ms >= (uint64_t)e->timeout_s * 1000u) {
                kill(-j->pid, SIGKILL);
                while (waitpid(j->pid, &status, 0) < 0 && errno == EINTR)
                    ;
                collect(e, j, status);
                snprintf(j->reason, sizeof j->reason,
                         "the CA command did not finish within %lu s (--est-ca-cmd-timeout), "
                         "and was stopped",
                         (unsigned long)e->timeout_s);
                j->result = MW_EINTERNAL;
                j->cert_len = 0;
            }
        } else if (now - j->done_ms >= (uint64_t)KEEP_S * 1000u) {
            forget(j);
        }
    }
}

/* Starts the command for @p req in @p j: MW_OK, or why not in @p reason. */
static mw_err start(est_cmd *e, struct job *j, const mw_est_request_t *req, char *reason,
                    size_t reason_cap)
{
    est_der cur;
    char id_var[32 + MW_ID_MAX], serial_var[32 + sizeof cur.serial];
    if (!est_der_read(req->cert, req->cert_len, false, &cur))
        cur.serial[0] = '\0';
    snprintf(id_var, sizeof id_var, "MEDWIRE_DEVICE_ID=%s", req->device_id);
    snprintf(serial_var, sizeof serial_var, "MEDWIRE_CERT_SERIAL=%s", cur.serial);

    uint8_t pem[4096];
    int pem_len = wc_DerToPem(req->csr, (word32)req->csr_len, pem, sizeof pem, CERTREQ_TYPE);
    size_t nenv = 0;
    while (environ[nenv])
        nenv++;
    char **envp = calloc(nenv + 3, sizeof *envp);
    int in_fd = temp_file(), out_fd = temp_file(), err_fd = temp_file();
    mw_err err = MW_EINTERNAL;
    if (pem_len <= 0 || envp == NULL || (j->csr = malloc(req->csr_len)) == NULL) {
        snprintf(reason, reason_cap, "out of memory");
    } else if (in_fd < 0 || out_fd < 0 || err_fd < 0 ||
               write(in_fd, pem, (size_t)pem_len) != pem_len || lseek(in_fd, 0, SEEK_SET) != 0) {
        snprintf(reason, reason_cap, "cannot make the CA command's temporary files: %s",
                 strerror(errno));
    } else {
        size_t k = 0;
        for (size_t i = 0; i < nenv; i++)
            if (strncmp(environ[i], "MEDWIRE_DEVICE_ID=", 18) != 0 &&
                strncmp(environ[i], "MEDWIRE_CERT_SERIAL=", 20) != 0)
                envp[k++] = environ[i];
        envp[k++] = id_var;
        envp[k++] = serial_var;
        char *argv[] = {"sh", "-c", e->cmd, NULL};
        pid_t pid = fork();
        if (pid == 0) {
            /* The child: only async-signal-safe calls until exec. */
            sigset_t none;
            sigemptyset(&none);
            sigprocmask(SIG_SETMASK, &none, NULL);
            signal(SIGPIPE, SIG_DFL);
            setpgid(0, 0);
            if (dup2(in_fd, 0) < 0 || dup2(out_fd, 1) < 0 || dup2(err_fd, 2) < 0)
                _exit(126);
            closefrom(3);
            execve("/bin/sh", argv, envp);
            _exit(127);
        }
        if (pid < 0) {
            snprintf(reason, reason_cap, "cannot start the CA command: %s", strerror(errno));
        } else {
            memcpy(j->csr, req->csr, req->csr_len);
            j->csr_len = req->csr_len;
            snprintf(j->device, sizeof j->device, "%s", req->device_id);
            j->used = true;
            j->pid = pid;
            j->out_fd = out_fd;
            j->err_fd = err_fd;
            out_fd = err_fd = -1;
            j->started_ms = now_ms();
            err = MW_OK;
        }
    }
    if (err != MW_OK) {
        free(j->csr);
        j->csr = NULL;
    }
    free(envp);
    if (in_fd >= 0)
        close(in_fd);
    if (out_fd >= 0)
        close(out_fd);
    if (err_fd >= 0)
        close(err_fd);
    return err;
}

mw_err est_cmd_issue(void *ctx, const mw_est_request_t *req, uint8_t *out, size_t cap,
                     size_t *out_len, char *reason, size_t reason_cap)
{
    est_cmd *e = ctx;
    *out_len = 0;
    sweep(e);
    struct job *j = NULL, *free_slot = NULL, *oldest = NULL;
    for (size_t i = 0; i < JOBS_MAX; i++) {
        struct job *x = &e->jobs[i];
        if (!x->used) {
            free_slot = free_slot ? free_slot : x;
            continue;
        }
        if (x->pid == 0 && (oldest == NULL || x->done_ms < oldest->done_ms))
            oldest = x;
        if (strcmp(x->device, req->device_id) == 0 && x->csr_len == req->csr_len &&
            memcmp(x->csr, req->csr, req->csr_len) == 0)
            j = x;
    }
    if (j != NULL && j->pid > 0) {
        snprintf(reason, reason_cap, "with the CA command for %lu s",
                 (unsigned long)((now_ms() - j->started_ms) / 1000u));
        return MW_EAGAIN;
    }
    if (j != NULL) {
        snprintf(reason, reason_cap, "%s", j->reason);
        mw_err result = j->result;
        if (result != MW_OK && result != MW_EIDENTITY)
            forget(j); /* a failure is not kept: the request, sent again, runs the command again */
        if (result != MW_OK)
            return result;
        if (j->cert_len > cap) {
            snprintf(reason, reason_cap, "the CA command's certificate is larger than an answer");
            return MW_ENOSPC;
        }
        memcpy(out, j->cert, j->cert_len);
        *out_len = j->cert_len;
        return MW_OK;
    }
    if (free_slot == NULL && oldest != NULL) {
        forget(oldest);
        free_slot = oldest;
    }
    if (free_slot == NULL) {
        snprintf(reason, reason_cap, "%d requests are already with the CA command", JOBS_MAX);
        return MW_EAGAIN;
    }
    free_slot->out_fd = free_slot->err_fd = -1;
    mw_err err = start(e, free_slot, req, reason, reason_cap);
    if (err != MW_OK)
        return err;
    snprintf(reason, reason_cap, "handed to the CA command");
    return MW_EAGAIN;
}
