/* SPDX-License-Identifier: Apache-2.0 */
/* associations.c -- which patient and which bed each device serves: the --associations file's
 * parser, the lookup the HL7 encoder uses, and the atomic write-back of run-time changes. */
#define _GNU_SOURCE /* O_CLOEXEC, O_NOFOLLOW, O_DIRECTORY */
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "associations.h"

/* The longest line that can hold four fields at their bounds (and a CR before the LF). */
#define LINE_MAX_BYTES                                                                             \
    (ASSOC_DEVICE_MAX + ASSOC_PATIENT_ID_MAX + ASSOC_NAME_MAX + ASSOC_LOCATION_MAX + 3 + 1)

static const char HEADER[] =
    "# medwire-gateway --associations: one device a line, tab-separated:\n"
    "# DEVICE-ID\tPATIENT-ID\tFamily^Given\tPointOfCare^Room^Bed\n"
    "# Rewritten by the gateway when the control socket changes an association: edit it, then\n"
    "# send SIGHUP (comments and order are not kept).\n";

/* The identity rule of device certificates' CN: [A-Za-z0-9][A-Za-z0-9._-]{0,63}. */
static bool device_id_ok(const char *s, size_t len)
{
    if (len == 0 || len > ASSOC_DEVICE_MAX)
        return false;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        bool alnum = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
        if (!alnum && (i == 0 || (c != '.' && c != '_' && c != '-')))
            return false;
    }
    return true;
}

/* Whether @p s (@p len bytes) is at most @p max bytes of UTF-8 without control characters (C0,
 * DEL, C1): a carriage return would end an HL7 segment, and what is not text has no place in a
 * name or a bed. */
static bool text_ok(const char *what, const char *s, size_t len, size_t max, char *why,
                    size_t why_size)
{
    if (len > max) {
        snprintf(why, why_size, "%s is %zu bytes long, more than %zu: shorten it", what, len, max);
        return false;
    }
    for (size_t i = 0; i < len;) {
        unsigned char c = (unsigned char)s[i];
        if (c < 0x20 || c == 0x7f) {
            snprintf(why, why_size,
                     "%s has a control character (byte 0x%02X at byte %zu of the field): remove it",
                     what, (unsigned)c, i + 1);
            return false;
        }
        if (c < 0x80) {
            i++;
            continue;
        }
        size_t k = 0;
        uint32_t cp = 0;
        if (c >= 0xc2 && c <= 0xdf) {
            k = 1;
            cp = c & 0x1fu;
        } else if (c >= 0xe0 && c <= 0xef) {
            k = 2;
            cp = c & 0x0fu;
        } else if (c >= 0xf0 && c <= 0xf4) {
            k = 3;
            cp = c & 0x07u;
        }
        bool ok = k > 0 && len - i - 1 >= k;
        for (size_t j = 1; ok && j <= k; j++) {
            unsigned char t = (unsigned char)s[i + j];
            ok = (t & 0xc0u) == 0x80u;
            cp = (cp << 6) | (t & 0x3fu);
        }
        ok = ok && !(k == 2 && cp < 0x800) && !(k == 3 && (cp < 0x10000 || cp > 0x10ffff)) &&
             !(cp >= 0xd800 && cp <= 0xdfff);
        if (!ok) {
            snprintf(why, why_size, "%s is not UTF-8 (byte %zu of the field): write it as UTF-8",
                     what, i + 1);
            return false;
        }
        if (cp <= 0x9f) {
            snprintf(why, why_size,
                     "%s has a control character (U+%04X at byte %zu of the field): remove it",
                     what, (unsigned)cp, i + 1);
            return false;
        }
        i += k + 1;
    }
    return true;
}

/* Copies @p s into @p out without the empty components at its end ("ICU^^" is "ICU"), after
 * checking it has at most @p max_parts components. */
static bool components(const char *what, const char *s, size_t len, size_t max_parts,
                       const char *form, char *out, char *why, size_t why_size)
{
    size_t parts = 1;
    for (size_t i = 0; i < len; i++)
        parts += s[i] == '^';
    if (parts > max_parts) {
        snprintf(why, why_size, "%s has %zu components separated by '^', at most %zu: write %s",
                 what, parts, max_parts, form);
        return false;
    }
    while (len > 0 && s[len - 1] == '^')
        len--;
    memcpy(out, s, len);
    out[len] = '\0';
    return true;
}

bool association_fill(association_t *out, const char *device, size_t device_len,
                      const char *patient_id, size_t patient_id_len, const char *name,
                      size_t name_len, const char *location, size_t location_len, char *why,
                      size_t why_size)
{
    memset(out, 0, sizeof *out);
    if (device_len == 0) {
        snprintf(why, why_size, "DEVICE-ID is empty: give the device's id (its certificate's CN)");
        return false;
    }
    if (!device_id_ok(device, device_len)) {
        snprintf(why, why_size,
                 "DEVICE-ID is not a device id: it must match [A-Za-z0-9][A-Za-z0-9._-]{0,63}, "
                 "the device certificate's CN");
        return false;
    }
    if (patient_id_len == 0) {
        snprintf(why, why_size,
                 "PATIENT-ID is empty: an association needs the patient's identifier (to take "
                 "a device off a patient, remove its line)");
        return false;
    }
    if (!text_ok("PATIENT-ID", patient_id, patient_id_len, ASSOC_PATIENT_ID_MAX, why, why_size) ||
        !text_ok("PATIENT-NAME", name, name_len, ASSOC_NAME_MAX, why, why_size) ||
        !text_ok("LOCATION", location, location_len, ASSOC_LOCATION_MAX, why, why_size))
        return false;
    if (!components("PATIENT-NAME", name, name_len, 2, "Family^Given", out->patient_name, why,
                    why_size) ||
        !components("LOCATION", location, location_len, 3, "PointOfCare^Room^Bed", out->location,
                    why, why_size))
        return false;
    memcpy(out->device, device, device_len);
    memcpy(out->patient_id, patient_id, patient_id_len);
    return true;
}

/* The index of @p device in @p a, or where it would go; true when it is there. */
static bool search(const associations_t *a, const char *device, size_t *out_at)
{
    size_t lo = 0, hi = a->n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = strcmp(a->v[mid].device, device);
        if (c == 0) {
            *out_at = mid;
            return true;
        }
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    *out_at = lo;
    return false;
}

static bool grow(associations_t *a)
{
    if (a->n < a->cap)
        return true;
    size_t cap = a->cap ? a->cap * 2 : 16;
    association_t *v = realloc(a->v, cap * sizeof *v);
    if (v == NULL)
        return false;
    a->v = v;
    a->cap = cap;
    return true;
}

static int by_device_then_line(const void *x, const void *y)
{
    const association_t *a = x, *b = y;
    int c = strcmp(a->device, b->device);
    if (c != 0)
        return c;
    return a->line < b->line ? -1 : a->line > b->line;
}

/* One line of @p len bytes (its LF removed). False with @p why (without FILE:LINE). */
static bool parse_line(associations_t *a, const char *line, size_t len, size_t lineno, char *why,
                       size_t why_size)
{
    const char *f[4] = {NULL, NULL, NULL, NULL};
    size_t flen[4] = {0, 0, 0, 0}, n = 0, start = 0;
    for (size_t i = 0; i <= len; i++) {
        if (i < len && line[i] != '\t')
            continue;
        if (n < 4) {
            f[n] = line + start;
            flen[n] = i - start;
        }
        n++;
        start = i + 1;
    }
    if (n != 4) {
        snprintf(why, why_size,
                 "%zu field%s where 4 are expected (DEVICE-ID, PATIENT-ID, PATIENT-NAME, "
                 "LOCATION): separate them with one tab each; an empty field is two tabs in a row",
                 n, n == 1 ? "" : "s");
        return false;
    }
    if (a->n >= ASSOC_MAX_ENTRIES) {
        snprintf(why, why_size, "more than %u associations: split the gateways' devices",
                 ASSOC_MAX_ENTRIES);
        return false;
    }
    if (!grow(a)) {
        snprintf(why, why_size, "out of memory");
        return false;
    }
    association_t *x = &a->v[a->n];
    if (!association_fill(x, f[0], flen[0], f[1], flen[1], f[2], flen[2], f[3], flen[3], why,
                          why_size))
        return false;
    x->line = lineno;
    a->n++;
    return true;
}

/* Whether the line is only spaces and tabs. */
static bool blank(const char *s, size_t len)
{
    for (size_t i = 0; i < len; i++)
        if (s[i] != ' ' && s[i] != '\t')
            return false;
    return true;
}

/* Sorts what the file gave and refuses a device given twice, naming the first such line. */
static bool sort_unique(associations_t *a, char *why, size_t why_size)
{
    if (a->n > 1)
        qsort(a->v, a->n, sizeof a->v[0], by_device_then_line);
    size_t dup = 0;
    for (size_t i = 1; i < a->n; i++)
        if (strcmp(a->v[i].device, a->v[i - 1].device) == 0 &&
            (dup == 0 || a->v[i].line < a->v[dup].line))
            dup = i;
    if (dup == 0)
        return true;
    /* v[dup - 1] is the same device on an earlier line: the group is sorted by line. */
    size_t first = dup - 1;
    while (first > 0 && strcmp(a->v[first - 1].device, a->v[dup].device) == 0)
        first--;
    snprintf(why, why_size,
             "%zu: device %s is associated already on line %zu: keep one line per device",
             a->v[dup].line, a->v[dup].device, a->v[first].line);
    return false;
}

bool associations_load(associations_t *out, const char *path, char *why, size_t why_size)
{
    memset(out, 0, sizeof *out);
    out->path = path;
    FILE *f = fopen(path, "re");
    if (f == NULL) {
        snprintf(why, why_size,
                 "cannot read %s: %s: check the path and that the gateway may read it", path,
                 strerror(errno));
        return false;
    }
    char line[LINE_MAX_BYTES + 1];
    char what[ASSOC_WHY_MAX];
    size_t lineno = 0;
    bool ok = true, more = true;
    while (ok && more) {
        size_t len = 0;
        bool too_long = false;
        int c;
        while ((c = getc(f)) != EOF && c != '\n') {
            if (len < LINE_MAX_BYTES)
                line[len++] = (char)c;
            else
                too_long = true;
        }
        if (c == EOF) {
            more = false;
            if (ferror(f)) {
                snprintf(why, why_size, "cannot read %s: %s: check the file", path,
                         strerror(errno));
                ok = false;
                break;
            }
            if (len == 0 && !too_long)
                break;
        }
        lineno++;
        if (len > 0 && line[0] == '#')
            continue; /* a comment may be as long as it likes */
        if (too_long) {
            snprintf(why, why_size,
                     "%s:%zu: the line is longer than %d bytes (fields at most %d, %d, %d and %d "
                     "bytes): shorten it",
                     path, lineno, LINE_MAX_BYTES, ASSOC_DEVICE_MAX, ASSOC_PATIENT_ID_MAX,
                     ASSOC_NAME_MAX, ASSOC_LOCATION_MAX);
            ok = false;
            break;
        }
        if (len > 0 && line[len - 1] == '\r')
            len--; /* a file written with CR LF line ends */
        if (blank(line, len))
            continue;
        if (!parse_line(out, line, len, lineno, what, sizeof what)) {
            snprintf(why, why_size, "%s:%zu: %s", path, lineno, what);
            ok = false;
        }
    }
    fclose(f);
    if (ok && !sort_unique(out, what, sizeof what)) {
        snprintf(why, why_size, "%s:%s", path, what);
        ok = false;
    }
    if (!ok) {
        associations_free(out);
        out->path = path;
    }
    return ok;
}

bool associations_reload(associations_t *a, char *why, size_t why_size)
{
    associations_t fresh;
    if (a->path == NULL || !associations_load(&fresh, a->path, why, why_size))
        return false;
    associations_free(a);
    *a = fresh;
    return true;
}

const association_t *associations_find(const associations_t *a, const char *device)
{
    size_t at = 0;
    if (a == NULL || device == NULL || !search(a, device, &at))
        return NULL;
    return &a->v[at];
}

/* Makes sure what was renamed into the directory survives a crash. */
static int sync_dir(const char *path)
{
    char dir[4096];
    const char *slash = strrchr(path, '/');
    if (slash == NULL)
        snprintf(dir, sizeof dir, ".");
    else if (slash == path)
        snprintf(dir, sizeof dir, "/");
    else if ((size_t)(slash - path) < sizeof dir)
        snprintf(dir, sizeof dir, "%.*s", (int)(slash - path), path);
    else
        return -1;
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    int rc = fsync(fd);
    close(fd);
    return rc;
}

/* Writes the associations to a->path as a whole: FILE.tmp (0600: patient identifiers), fsync,
 * rename over FILE, so that a reader or a crash sees the old file or the new, never half. */
static bool save(const associations_t *a, char *why, size_t why_size)
{
    if (a->path == NULL)
        return true;
    char tmp[4200];
    if (snprintf(tmp, sizeof tmp, "%s.tmp", a->path) >= (int)sizeof tmp) {
        snprintf(why, why_size, "the --associations path is too long to write beside it");
        return false;
    }
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600);
    FILE *f = NULL;
    if (fd < 0 || fchmod(fd, 0600) != 0 || (f = fdopen(fd, "w")) == NULL) {
        int saved = errno;
        if (fd >= 0)
            close(fd);
        snprintf(why, why_size,
                 "cannot write %s: %s: the change was not made; let the gateway write in the "
                 "file's directory",
                 tmp, strerror(saved));
        return false;
    }
    bool ok = fputs(HEADER, f) >= 0;
    for (size_t i = 0; ok && i < a->n; i++)
        ok = fprintf(f, "%s\t%s\t%s\t%s\n", a->v[i].device, a->v[i].patient_id,
                     a->v[i].patient_name, a->v[i].location) > 0;
    ok = ok && fflush(f) == 0 && fsync(fileno(f)) == 0;
    int saved = errno;
    ok = fclose(f) == 0 && ok;
    if (ok && rename(tmp, a->path) != 0) {
        saved = errno;
        ok = false;
    }
    if (!ok) {
        unlink(tmp);
        snprintf(why, why_size, "cannot write %s: %s: the change was not made", a->path,
                 strerror(saved));
        return false;
    }
    (void)sync_dir(a->path);
    return true;
}

bool associations_set(associations_t *a, const association_t *x, char *why, size_t why_size)
{
    size_t at = 0;
    bool found = search(a, x->device, &at);
    association_t old;
    if (found) {
        old = a->v[at];
        a->v[at] = *x;
    } else {
        if (a->n >= ASSOC_MAX_ENTRIES || !grow(a)) {
            snprintf(why, why_size, "no room for another association (at most %u)",
                     ASSOC_MAX_ENTRIES);
            return false;
        }
        memmove(&a->v[at + 1], &a->v[at], (a->n - at) * sizeof a->v[0]);
        a->v[at] = *x;
        a->n++;
    }
    a->v[at].line = 0;
    if (save(a, why, why_size))
        return true;
    if (found) {
        a->v[at] = old;
    } else {
        memmove(&a->v[at], &a->v[at + 1], (a->n - at - 1) * sizeof a->v[0]);
        a->n--;
    }
    return false;
}

bool associations_remove(associations_t *a, const char *device, char *why, size_t why_size)
{
    size_t at = 0;
    if (!search(a, device, &at)) {
        snprintf(why, why_size, "the device has no association");
        return false;
    }
    association_t old = a->v[at];
    memmove(&a->v[at], &a->v[at + 1], (a->n - at - 1) * sizeof a->v[0]);
    a->n--;
    if (save(a, why, why_size))
        return true;
    memmove(&a->v[at + 1], &a->v[at], (a->n - at) * sizeof a->v[0]);
    a->v[at] = old;
    a->n++;
    return false;
}

void associations_free(associations_t *a)
{
    free(a->v);
    memset(a, 0, sizeof *a);
}
