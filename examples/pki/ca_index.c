/* SPDX-License-Identifier: Apache-2.0 */
/* ca_index.c -- a CA directory's record of what it issued and revoked, and its CRL number. */

/*
 * State kept in the CA directory, in the formats of 'openssl ca' so that either tool can
 * read them: index.txt (one line per issued certificate: status V or R, notAfter,
 * revocationDate[,reason], serial in hex, "unknown", subject), and crlnumber (the next
 * cRLNumber, in hex). 'issue --ca' records a certificate there before writing it out, so no
 * certificate exists that 'revoke' cannot find. Updates hold an fcntl lock on CADIR/.lock
 * and replace the files atomically.
 */

#include "ca_index.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "crl_reason.h"
#include "der.h"
#include "diag.h"
#include "files.h"

static int hex_value(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    return -1;
}

bool pki_parse_serial_hex(const char *s, unsigned char *out, size_t *out_len)
{
    size_t n = strlen(s);
    if (n == 0 || n % 2 != 0 || n > 2 * 20)
        return false;
    for (size_t i = 0; i < n; i += 2) {
        int hi = hex_value(s[i]), lo = hex_value(s[i + 1]);
        if (hi < 0 || lo < 0)
            return false;
        out[i / 2] = (unsigned char)(hi << 4 | lo);
    }
    *out_len = n / 2;
    return true;
}

void pki_index_free(ca_index *idx)
{
    free(idx->text);
    free(idx->e);
    *idx = (ca_index){0};
}

bool pki_index_push(ca_index *idx, const index_entry *e)
{
    if (idx->n == idx->cap) {
        size_t cap = idx->cap ? idx->cap * 2 : 32;
        index_entry *p = realloc(idx->e, cap * sizeof(*p));
        if (p == NULL)
            return false;
        idx->e = p;
        idx->cap = cap;
    }
    idx->e[idx->n++] = *e;
    return true;
}

void pki_subject_cn(const char *subject, char *out, size_t cap)
{
    const char *p = NULL;
    for (const char *q = strstr(subject, "/CN="); q != NULL; q = strstr(q + 1, "/CN="))
        p = q + 4;
    size_t n = p ? strcspn(p, "/") : 0;
    if (n >= cap)
        n = cap - 1;
    memcpy(out, p ? p : "", n);
    out[n] = '\0';
}

/* Checks the revocation field of a line: "" for V and E, "DATE[,reason]" for R. */
bool pki_parse_revoked_field(const char *s, utc_time *when, int *reason)
{
    size_t n = strcspn(s, ",");
    if (!pki_parse_asn1_time(s, n, when))
        return false;
    *reason = -1;
    if (s[n] == ',') {
        *reason = pki_reason_code(s + n + 1, false);
        if (*reason < 0)
            return false;
    }
    return true;
}

#define INDEX_LIMIT (64u << 20)

/*
 * Loads DIR/index.txt; a missing file is an empty index (a CA that has issued nothing yet, or
 * one made before certificates were recorded). Every line must parse: skipping one would
 * silently drop a revocation from the next CRL.
 */
int pki_index_load(const char *dir, ca_index *idx)
{
    char path[4096];
    *idx = (ca_index){0};
    if (!pki_path_join(path, sizeof(path), dir, "", "index.txt", ""))
        return pki_fail("--ca path too long: %s", dir);
    idx->text = pki_read_text_file(path, INDEX_LIMIT);
    if (idx->text == NULL) {
        if (errno == ENOENT)
            return EXIT_SUCCESS;
        return pki_fail("cannot read %s: %s", path, strerror(errno));
    }
    char *p = idx->text;
    for (size_t line = 1; *p != '\0'; line++) {
        char *eol = strchr(p, '\n');
        if (eol == NULL)
            return pki_fail("%s line %zu: the last line has no newline; the file was cut short "
                            "(restore it from a backup)",
                            path, line);
        *eol = '\0';
        size_t tabs = 0;
        for (const char *q = p; *q != '\0'; q++)
            tabs += *q == '\t';
        char *f[6] = {p, p, p, p, p, p};
        if (tabs == 5) {
            char *q = p;
            for (int k = 0; k < 6; k++) {
                f[k] = q;
                q = strchr(q, '\t');
                if (q != NULL)
                    *q++ = '\0';
            }
        }
        const char *why = NULL;
        utc_time t;
        int reason;
        unsigned char serial[20];
        size_t serial_len;
        if (tabs != 5)
            why = "not 6 tab-separated fields";
        else if (strlen(f[0]) != 1 || strchr("VRE", f[0][0]) == NULL)
            why = "status is not V, R or E";
        else if (!pki_parse_asn1_time(f[1], strlen(f[1]), &t))
            why = "the expiry date is not an ASN.1 time";
        else if (f[0][0] == 'R' && !pki_parse_revoked_field(f[2], &t, &reason))
            why = "the revocation field is not DATE or DATE,REASON";
        else if (f[0][0] != 'R' && f[2][0] != '\0')
            why = "a certificate that is not revoked has a revocation date";
        else if (!pki_parse_serial_hex(f[3], serial, &serial_len))
            why = "the serial number is not an even number of hex digits (at most 40)";
        else if (f[5][0] != '/')
            why = "the subject does not start with '/'";
        if (why != NULL)
            return pki_fail("%s line %zu: %s; fix the line or restore the file", path, line, why);
        index_entry e = {f[0][0], f[1], f[2], f[3], f[4], f[5]};
        if (!pki_index_push(idx, &e))
            return pki_fail("out of memory");
        p = eol + 1;
    }
    return EXIT_SUCCESS;
}

int pki_index_save(const char *dir, const ca_index *idx)
{
    dbuf b = {0};
    for (size_t i = 0; i < idx->n; i++) {
        const index_entry *e = &idx->e[i];
        char status[2] = {e->status, '\0'};
        const char *f[6] = {status, e->expiry, e->revoked, e->serial, e->file, e->subject};
        for (int k = 0; k < 6; k++) {
            pki_db_str(&b, f[k]);
            pki_db_str(&b, k < 5 ? "\t" : "\n");
        }
    }
    if (b.failed) {
        pki_db_free(&b);
        return pki_fail("out of memory");
    }
    int rc = pki_write_atomic(dir, "index.txt", b.p ? b.p : (const unsigned char *)"", b.len, 0644,
                              true);
    pki_db_free(&b);
    return rc;
}

/*
 * Serialises every change to a CA directory's state: two 'issue' runs must not each append
 * to the index they read and lose the other's line, and two 'revoke' runs must not write
 * CRLs whose numbers and contents disagree. fcntl locks are POSIX and vanish with the
 * process, so a crash never leaves the CA locked.
 */
int pki_lock_ca(const char *dir, int *out_fd)
{
    char path[4096];
    if (!pki_path_join(path, sizeof(path), dir, "", ".lock", ""))
        return pki_fail("--ca path too long: %s", dir);
    int fd = open(path, O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0600);
    if (fd < 0) {
        return pki_fail("cannot open %s: %s (the CA directory must be writable: it records every "
                        "certificate so that it can be revoked)",
                        path, strerror(errno));
    }
    struct flock fl = {.l_type = F_WRLCK, .l_whence = SEEK_SET};
    while (fcntl(fd, F_SETLKW, &fl) != 0) {
        if (errno != EINTR) {
            int e = errno;
            close(fd);
            return pki_fail("cannot lock %s: %s", path, strerror(e));
        }
    }
    *out_fd = fd;
    return EXIT_SUCCESS;
}

void pki_unlock_ca(int fd)
{
    if (fd >= 0)
        close(fd); /* closing releases the fcntl lock */
}

/* Records a certificate 'issue --ca' is about to write, before it is written: a certificate
 * that exists but is not in the index could never be revoked by name. */
int pki_record_issued(const char *dir, const cert_request *req)
{
    int lock = -1, rc = pki_lock_ca(dir, &lock);
    if (rc != EXIT_SUCCESS)
        return rc;
    rc = pki_record_issued_locked(dir, req);
    pki_unlock_ca(lock);
    return rc;
}

int pki_record_issued_locked(const char *dir, const cert_request *req)
{
    char serial[2 * PKI_SERIAL_LEN + 1], expiry[16], subject[PKI_NAME_MAX_LEN + 16];
    for (size_t i = 0; i < PKI_SERIAL_LEN; i++)
        snprintf(serial + 2 * i, 3, "%02X", req->serial[i]);
    if (!pki_time_text(&req->not_after, expiry))
        return pki_fail("cannot encode the expiry date for %s/index.txt", dir);
    snprintf(subject, sizeof(subject), "/O=medwire/CN=%s", req->cn);

    ca_index idx;
    int rc = pki_index_load(dir, &idx);
    index_entry e = {'V', expiry, "", serial, "unknown", subject};
    if (rc == EXIT_SUCCESS && !pki_index_push(&idx, &e))
        rc = pki_fail("out of memory");
    if (rc == EXIT_SUCCESS)
        rc = pki_index_save(dir, &idx);
    if (rc != EXIT_SUCCESS)
        fprintf(stderr,
                PKI_PROG ": nothing was issued: a certificate %s/index.txt does not record "
                         "could not be revoked\n",
                dir);
    pki_index_free(&idx);
    return rc;
}

/*
 * DIR/crlnumber holds the next cRLNumber in hex, as 'openssl ca' keeps it. The number is
 * consumed (the file advanced) before the CRL is written, so a crash between the two skips a
 * number but never repeats one: RFC 5280 5.2.3 wants it strictly increasing, and a verifier
 * may prefer the CRL with the higher number.
 */
int pki_take_crl_number(const char *dir, uint64_t *out)
{
    char path[4096], text[64];
    if (!pki_path_join(path, sizeof(path), dir, "", "crlnumber", ""))
        return pki_fail("--ca path too long: %s", dir);
    long n = pki_read_small_file(path, (unsigned char *)text, sizeof(text) - 1);
    uint64_t next = 1;
    if (n < 0 && errno != ENOENT)
        return pki_fail("cannot read %s: %s", path, strerror(errno));
    if (n >= 0) {
        text[n] = '\0';
        size_t digits = strspn(text, "0123456789ABCDEFabcdef");
        size_t zeros = strspn(text, "0");
        if (zeros == digits && zeros > 0)
            zeros--; /* the number 0: one significant digit */
        if (digits == 0 || digits - zeros > 15 ||
            strspn(text + digits, "\r\n") != (size_t)n - digits)
            return pki_fail("%s does not hold a CRL number in hex below 2^60; fix or remove it",
                            path);
        next = 0;
        for (size_t i = 0; i < digits; i++)
            next = next << 4 | (uint64_t)hex_value(text[i]);
    }
    char upd[32];
    int len = snprintf(upd, sizeof(upd), "%016" PRIX64 "\n", next + 1);
    int skip = 0;
    while (skip < 14 && upd[skip] == '0' && upd[skip + 1] == '0')
        skip += 2; /* 'openssl ca' writes an even number of digits */
    int rc = pki_write_atomic(dir, "crlnumber", (const unsigned char *)upd + skip,
                              (size_t)(len - skip), 0644, true);
    if (rc == EXIT_SUCCESS)
        *out = next;
    return rc;
}
