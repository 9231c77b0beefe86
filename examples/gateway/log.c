/* SPDX-License-Identifier: Apache-2.0 */
/* log.c -- the reference gateway's structured log: one line per event on stderr, text or JSON. */
#define _POSIX_C_SOURCE 200809L /* fmemopen, gmtime_r */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "log.h"

static gwlog_level threshold = GWLOG_INFO;
static bool json;

static const char *const LEVEL_NAMES[] = {"error", "warn", "info", "debug"};

bool gwlog_setup(const char *level, const char *format)
{
    int lv = -1;
    for (int i = 0; i < 4; i++)
        if (level && strcmp(level, LEVEL_NAMES[i]) == 0)
            lv = i;
    if (lv < 0 || format == NULL || (strcmp(format, "text") != 0 && strcmp(format, "json") != 0))
        return false;
    threshold = (gwlog_level)lv;
    json = strcmp(format, "json") == 0;
    return true;
}

bool gwlog_enabled(gwlog_level level)
{
    return level <= threshold;
}

/* JSON string body (RFC 8259 7): quotes, backslashes and control characters escaped. */
static void put_json_str(FILE *f, const char *s)
{
    fputc('"', f);
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (*p == '"' || *p == '\\')
            fprintf(f, "\\%c", *p);
        else if (*p == '\n')
            fputs("\\n", f);
        else if (*p < 0x20)
            fprintf(f, "\\u%04x", *p);
        else
            fputc(*p, f);
    }
    fputc('"', f);
}

/* logfmt style: bare when it is one plain word, else quoted like JSON. */
static void put_text_str(FILE *f, const char *s)
{
    bool plain = *s != '\0';
    for (const unsigned char *p = (const unsigned char *)s; *p && plain; p++)
        plain = *p > 0x20 && *p != '"' && *p != '=' && *p != '\\' && *p < 0x7f;
    if (plain)
        fputs(s, f);
    else
        put_json_str(f, s);
}

void gwlog(gwlog_level level, const char *event, ...)
{
    if (!gwlog_enabled(level))
        return;
    struct timespec ts;
    struct tm tm;
    char when[40];
    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    size_t n = strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(when + n, sizeof when - n, ".%03ldZ", ts.tv_nsec / 1000000L);

    /* One line built in memory, written with one call: lines never interleave. */
    char line[4096];
    const size_t cap = sizeof line - 2; /* room for the newline and fmemopen's NUL */
    memset(line, 0, sizeof line);
    FILE *f = fmemopen(line, cap, "w");
    if (f == NULL)
        return;
    if (json)
        fprintf(f, "{\"time\":\"%s\",\"level\":\"%s\",\"event\":", when, LEVEL_NAMES[level]);
    else
        fprintf(f, "%s %s ", when, LEVEL_NAMES[level]);
    if (json)
        put_json_str(f, event);
    else
        put_text_str(f, event);
    va_list ap;
    va_start(ap, event);
    for (const char *key = va_arg(ap, const char *); key; key = va_arg(ap, const char *)) {
        char type = key[0];
        key += 2;
        if (type == 's') {
            const char *v = va_arg(ap, const char *);
            if (v == NULL)
                continue;
            if (json) {
                fputc(',', f);
                put_json_str(f, key);
                fputc(':', f);
                put_json_str(f, v);
            } else {
                fprintf(f, " %s=", key);
                put_text_str(f, v);
            }
        } else if (type == 'u') {
            unsigned long long v = va_arg(ap, unsigned long long);
            fprintf(f, json ? ",\"%s\":%llu" : " %s=%llu", key, v);
        } else {
            long long v = va_arg(ap, long long);
            fprintf(f, json ? ",\"%s\":%lld" : " %s=%lld", key, v);
        }
    }
    va_end(ap);
    if (json)
        fputc('}', f);
    fflush(f);
    long pos = ftell(f);
    fclose(f);
    size_t len = strnlen(line, cap);
    if (json && (pos < 0 || (size_t)pos >= cap - 1)) {
        /* A cut JSON object would not parse: say so in one that does. */
        fprintf(stderr, "{\"time\":\"%s\",\"level\":\"%s\",\"event\":\"log_line_too_long\"}\n",
                when, LEVEL_NAMES[level]);
        return;
    }
    line[len] = '\n';
    fwrite(line, 1, len + 1, stderr);
    fflush(stderr);
}
