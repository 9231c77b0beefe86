/* SPDX-License-Identifier: Apache-2.0 */
/* mw-batchfile -- writes one valid protobuf Batch to a file, for foreign CoAP clients to POST. */
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "session/codec.h"

static const char USAGE[] =
    "usage: mw-batchfile --device ID --count N --out FILE [--first-seq S]\n"
    "                    [--low-water L] [--space HEX]\n"
    "\n"
    "Writes one medwire Batch (Content-Format 65100, proto/medwire.proto) to FILE:\n"
    "N pulse-rate observations (1 <= N <= 16) from device ID with sequence numbers\n"
    "S..S+N-1 (S defaults to 1). Observation k (its sequence number) has MDC code\n"
    "149530, value 60+k in unit \"/min\", status valid, time 1700000000000+1000*k ms.\n"
    "The low-water mark is L (default S) and the sequence space HEX (default none):\n"
    "a test can declare what a hostile or broken device would.\n"
    "The batch is made by medwire's own encoder, so it is exactly what a device sends.\n"
    "Exit status: 0 written, 1 cannot encode or write, 2 bad command line.\n";

/* Fixed values let a test predict every field the gateway writes out. */
#define BASE_TIME_MS 1700000000000ull
#define BASE_VALUE   60
/* 16 such observations take about 600 bytes; 1024 keeps the body in one CoAP message
 * (libcoap's clients go block-wise above that) and in one DTLS record. */
#define BATCH_CAP 1024

static int usage_error(const char *what)
{
    fprintf(stderr, "mw-batchfile: %s\n%s", what, USAGE);
    return 2;
}

static int parse_u64(const char *s, unsigned long long max, unsigned long long *out)
{
    char *end = NULL;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno != 0 || end == s || *end != '\0' || s[0] == '-' || v > max)
        return -1;
    *out = v;
    return 0;
}

int main(int argc, char **argv)
{
    const char *device = NULL, *out_path = NULL;
    unsigned long long count = 0, first = 1, low = 0, space = 0;
    bool have_low = false;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
            fputs(USAGE, stdout);
            return 0;
        }
        if (i + 1 >= argc)
            return usage_error("every option needs a value");
        const char *v = argv[++i];
        if (strcmp(a, "--device") == 0)
            device = v;
        else if (strcmp(a, "--out") == 0)
            out_path = v;
        else if (strcmp(a, "--count") == 0) {
            if (parse_u64(v, MWI_MAX_BATCH, &count) != 0 || count == 0)
                return usage_error("--count must be 1 to 16");
        } else if (strcmp(a, "--first-seq") == 0) {
            if (parse_u64(v, UINT64_MAX - MWI_MAX_BATCH, &first) != 0 || first == 0)
                return usage_error("--first-seq must be a positive number");
        } else if (strcmp(a, "--low-water") == 0) {
            if (parse_u64(v, UINT64_MAX, &low) != 0)
                return usage_error("--low-water must be a number");
            have_low = true;
        } else if (strcmp(a, "--space") == 0) {
            char *end = NULL;
            errno = 0;
            space = strtoull(v, &end, 16);
            if (errno != 0 || end == v || *end != '\0' || v[0] == '-')
                return usage_error("--space must be hexadecimal");
        } else
            return usage_error("unknown option");
    }
    if (device == NULL || out_path == NULL || count == 0)
        return usage_error("--device, --count and --out are required");
    if (!mwi_device_id_valid(device))
        return usage_error("--device must match [A-Za-z0-9][A-Za-z0-9._-]{0,63}");

    mw_message_t msgs[MWI_MAX_BATCH];
    memset(msgs, 0, sizeof msgs);
    for (unsigned long long k = 0; k < count; k++) {
        mw_message_t *m = &msgs[k];
        uint64_t seq = first + k;
        snprintf(m->device_id, sizeof m->device_id, "%s", device);
        m->seq = seq;
        m->device_time_ms = BASE_TIME_MS + 1000u * seq;
        m->time_synced = false;
        m->priority = MW_PRIORITY_OBSERVATION;
        m->type = MW_MSG_OBSERVATION;
        m->u.observation.mdc_code = MW_MDC_PULS_OXIM_PULS_RATE;
        m->u.observation.mantissa = BASE_VALUE + (int64_t)seq;
        m->u.observation.exponent = 0;
        snprintf(m->u.observation.unit, sizeof m->u.observation.unit, "/min");
        m->u.observation.status = MW_MEAS_VALID;
        m->u.observation.time_ms = BASE_TIME_MS + 1000u * seq;
    }
    uint8_t buf[BATCH_CAP];
    size_t len = 0, encoded = 0;
    /* The low-water mark is the oldest sequence number the device still holds: the first,
     * unless the test declares another. */
    const mw_message_t *ptrs[MWI_MAX_BATCH];
    for (unsigned long long k = 0; k < count; k++)
        ptrs[k] = &msgs[k];
    mwi_batch_head head = {.low_water = have_low ? low : first, .space = space};
    mw_err e = mwi_batch_encode_in(ptrs, (size_t)count, &head, buf, sizeof buf, &len, &encoded);
    if (e != MW_OK || encoded != count) {
        fprintf(stderr, "mw-batchfile: cannot encode %llu messages: %s\n", count,
                e != MW_OK ? mw_strerror(e) : "they do not fit in one batch");
        return 1;
    }
    FILE *f = fopen(out_path, "wb");
    if (f == NULL) {
        fprintf(stderr, "mw-batchfile: cannot open '%s': %s\n", out_path, strerror(errno));
        return 1;
    }
    int ok = fwrite(buf, 1, len, f) == len;
    ok = (fclose(f) == 0) && ok;
    if (!ok) {
        fprintf(stderr, "mw-batchfile: cannot write '%s'\n", out_path);
        return 1;
    }
    return 0;
}
