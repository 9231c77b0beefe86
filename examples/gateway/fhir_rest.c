/* SPDX-License-Identifier: Apache-2.0 */
/* fhir_rest.c -- the FHIR REST sender (fhir_rest.h). HTTP is libcurl's easy interface, one
 * handle kept for the thread's life (keep-alive), with a connect and a whole-request timeout.
 *
 * A batch is one FHIR R4 transaction Bundle: for each distinct device a Device entry and for
 * each distinct associated patient a Patient entry, both conditional creates on their
 * identifier, then one Observation entry per row, a conditional create on the message
 * identifier (request.ifNoneExist). The server resolves the urn:uuid references to the Device
 * and Patient it found or made; a resend finds the Observation already there and makes none.
 * A transaction is all or nothing, so a 4xx on a batch of several is sent again entry by entry
 * to find the one the server refuses, which alone is parked. */
#include <ctype.h>
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <curl/curl.h>

#include "fhir_rest.h"
#include "log.h"

#include "medwire/fhir.h"

#define RESPONSE_MAX    (16u * 1024u * 1024u) /* a transaction-response of 1000 entries fits */
#define CONNECT_TIMEOUT 5000L
#define PARKED_RING     64
#define RETRY_AFTER_MAX 300 /* seconds: a longer Retry-After is capped */
#define TOKEN_MAX       8192u

struct fhir_rest {
    fhir_rest_config_t cfg;
    char url[1024];
    char *auth_header; /* "Authorization: Bearer ..." or NULL */
    outbox_t *ob;
    CURL *curl;
    struct curl_slist *headers;
    pthread_t thread;
    bool started;
    unsigned seed;
    pthread_mutex_t mu; /* guards stop's wait and the parked ring */
    pthread_cond_t cv;
    bool stop;
    fhir_parked_t parked_ring[PARKED_RING];
    size_t nparked;
    _Atomic uint64_t sent, acked, retried, parked, requests;
    _Atomic bool down;
};

/* ---- small text helpers ------------------------------------------------------------------- */

typedef struct buf {
    char *p;
    size_t len, cap;
    bool failed;
} buf_t;

static void put_n(buf_t *b, const char *s, size_t n)
{
    if (b->failed)
        return;
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 4096;
        while (cap < b->len + n + 1)
            cap *= 2;
        char *p = realloc(b->p, cap);
        if (p == NULL) {
            b->failed = true;
            return;
        }
        b->p = p;
        b->cap = cap;
    }
    memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = '\0';
}

static void put(buf_t *b, const char *s)
{
    put_n(b, s, strlen(s));
}

/* A JSON string of @p n bytes of @p s (ours or the association file's: no trust needed beyond
 * escaping). */
static void put_json_str(buf_t *b, const char *s, size_t n)
{
    put(b, "\"");
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '"' || c == '\\') {
            char e[2] = {'\\', (char)c};
            put_n(b, e, 2);
        } else if (c < 0x20 || c == 0x7f) {
            char e[8];
            snprintf(e, sizeof e, "\\u%04x", c);
            put(b, e);
        } else {
            put_n(b, (const char *)&c, 1);
        }
    }
    put(b, "\"");
}

/* A search parameter value, percent-encoded but for RFC 3986's unreserved characters and '/'
 * and ':' (the identifier's own separators read the same either way). */
static void put_query_value(buf_t *b, const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (isalnum(c) || c == '-' || c == '.' || c == '_' || c == '~' || c == '/' || c == ':') {
            put_n(b, (const char *)&c, 1);
        } else {
            char e[4];
            snprintf(e, sizeof e, "%%%02X", c);
            put(b, e);
        }
    }
}

/* FNV-1a, twice with different offsets: 128 bits of a stable hash, shaped as a version-4 UUID
 * (only its uniqueness within one Bundle matters). */
void fhir_rest_uuid(const char *kind, const char *id, char out[46])
{
    uint64_t h[2] = {0xcbf29ce484222325ull, 0x84222325cbf29ce4ull};
    for (int k = 0; k < 2; k++) {
        for (const char *p = kind; *p; p++)
            h[k] = (h[k] ^ (unsigned char)*p) * 0x100000001b3ull;
        h[k] = (h[k] ^ 0xffu) * 0x100000001b3ull;
        for (const char *p = id; *p; p++)
            h[k] = (h[k] ^ (unsigned char)*p) * 0x100000001b3ull;
    }
    snprintf(out, 46, "urn:uuid:%08x-%04x-4%03x-%04x-%012llx", (unsigned)(h[0] >> 32),
             (unsigned)((h[0] >> 16) & 0xffffu), (unsigned)(h[0] & 0xfffu),
             (unsigned)(0x8000u | ((h[1] >> 48) & 0x3fffu)),
             (unsigned long long)(h[1] & 0xffffffffffffull));
}

bool fhir_rest_url_ok(const char *url)
{
    return (strncmp(url, "http://", 7) == 0 && url[7] != '\0') ||
           (strncmp(url, "https://", 8) == 0 && url[8] != '\0');
}

/* ---- the payload the gateway staged ------------------------------------------------------- */

typedef struct entry {
    const char *ident, *patient, *name, *location, *json;
    size_t ident_len, patient_len, name_len, location_len, json_len;
} entry_t;

/* Splits the header line; false when the row is not one the gateway wrote. */
static bool parse_payload(const outbox_row_t *row, entry_t *e)
{
    const char *p = row->payload, *end = row->payload + row->len;
    const char *nl = memchr(p, '\n', row->len);
    if (nl == NULL)
        return false;
    const char *f[4];
    size_t fl[4];
    const char *q = p;
    for (int i = 0; i < 4; i++) {
        const char *tab = i < 3 ? memchr(q, '\t', (size_t)(nl - q)) : nl;
        if (tab == NULL)
            return false;
        f[i] = q;
        fl[i] = (size_t)(tab - q);
        q = tab + 1;
    }
    *e = (entry_t){f[0],  f[1],  f[2],  f[3],  nl + 1,
                   fl[0], fl[1], fl[2], fl[3], (size_t)(end - (nl + 1))};
    return e->ident_len > 0 && e->json_len > 0 && e->json[0] == '{';
}

static void put_device_entry(buf_t *b, const char *device)
{
    char uuid[46];
    fhir_rest_uuid("device", device, uuid);
    put(b, "{\"fullUrl\":\"");
    put(b, uuid);
    put(b, "\",\"resource\":{\"resourceType\":\"Device\",\"identifier\":[{\"system\":"
           "\"" MW_FHIR_DEVICE_SYSTEM "\",\"value\":");
    put_json_str(b, device, strlen(device));
    put(b, "}],\"deviceName\":[{\"name\":");
    put_json_str(b, device, strlen(device));
    put(b,
        ",\"type\":\"user-friendly-name\"}]},\"request\":{\"method\":\"POST\",\"url\":\"Device\","
        "\"ifNoneExist\":");
    buf_t q = {0};
    put(&q, "identifier=" MW_FHIR_DEVICE_SYSTEM "|");
    put_query_value(&q, device, strlen(device));
    put_json_str(b, q.p ? q.p : "", q.len);
    b->failed |= q.failed;
    free(q.p);
    put(b, "}}");
}

static void put_patient_entry(buf_t *b, const entry_t *e)
{
    char id[256];
    snprintf(id, sizeof id, "%.*s", (int)e->patient_len, e->patient);
    char uuid[46];
    fhir_rest_uuid("patient", id, uuid);
    put(b, "{\"fullUrl\":\"");
    put(b, uuid);
    put(b, "\",\"resource\":{\"resourceType\":\"Patient\",\"identifier\":[{\"system\":"
           "\"" FHIR_PATIENT_SYSTEM "\",\"value\":");
    put_json_str(b, e->patient, e->patient_len);
    put(b, "}]");
    if (e->name_len > 0) {
        /* Family^Given, as the associations file writes it (HL7 v2 XPN order). */
        const char *caret = memchr(e->name, '^', e->name_len);
        size_t fam = caret ? (size_t)(caret - e->name) : e->name_len;
        put(b, ",\"name\":[{");
        if (fam > 0) {
            put(b, "\"family\":");
            put_json_str(b, e->name, fam);
        }
        if (caret && e->name_len - fam - 1 > 0) {
            put(b, fam > 0 ? ",\"given\":[" : "\"given\":[");
            put_json_str(b, caret + 1, e->name_len - fam - 1);
            put(b, "]");
        }
        if (fam == 0 && !(caret && e->name_len - fam - 1 > 0)) {
            put(b, "\"text\":");
            put_json_str(b, e->name, e->name_len);
        }
        put(b, "}]");
    }
    put(b, "},\"request\":{\"method\":\"POST\",\"url\":\"Patient\",\"ifNoneExist\":");
    buf_t q = {0};
    put(&q, "identifier=" FHIR_PATIENT_SYSTEM "|");
    put_query_value(&q, e->patient, e->patient_len);
    put_json_str(b, q.p ? q.p : "", q.len);
    b->failed |= q.failed;
    free(q.p);
    put(b, "}}");
}

static void put_observation_entry(buf_t *b, const entry_t *e)
{
    put(b, "{\"resource\":");
    put_n(b, e->json, e->json_len);
    put(b, ",\"request\":{\"method\":\"POST\",\"url\":\"Observation\",\"ifNoneExist\":");
    buf_t q = {0};
    put(&q, "identifier=" MW_FHIR_MESSAGE_SYSTEM "|");
    put_query_value(&q, e->ident, e->ident_len);
    put_json_str(b, q.p ? q.p : "", q.len);
    b->failed |= q.failed;
    free(q.p);
    put(b, "}}");
}

/* The transaction Bundle for @p n rows; the number of entries in *out_entries. False when a
 * row is not one this gateway wrote (it is then parked by the caller) or out of memory. */
static bool build_bundle(const outbox_row_t *rows, size_t n, buf_t *b, size_t *bad,
                         size_t *out_entries)
{
    entry_t *es = calloc(n, sizeof *es);
    if (es == NULL)
        return false;
    for (size_t i = 0; i < n; i++) {
        if (!parse_payload(&rows[i], &es[i])) {
            *bad = i;
            free(es);
            return false;
        }
    }
    size_t entries = 0;
    put(b, "{\"resourceType\":\"Bundle\",\"type\":\"transaction\",\"entry\":[");
    for (size_t i = 0; i < n; i++) {
        bool seen = false;
        for (size_t j = 0; j < i && !seen; j++)
            seen = strcmp(rows[j].device, rows[i].device) == 0;
        if (!seen) {
            put(b, entries ? "," : "");
            put_device_entry(b, rows[i].device);
            entries++;
        }
    }
    for (size_t i = 0; i < n; i++) {
        if (es[i].patient_len == 0)
            continue;
        bool seen = false;
        for (size_t j = 0; j < i && !seen; j++)
            seen = es[j].patient_len == es[i].patient_len &&
                   memcmp(es[j].patient, es[i].patient, es[i].patient_len) == 0;
        if (!seen) {
            put(b, entries ? "," : "");
            put_patient_entry(b, &es[i]);
            entries++;
        }
    }
    for (size_t i = 0; i < n; i++) {
        put(b, entries ? "," : "");
        put_observation_entry(b, &es[i]);
        entries++;
    }
    put(b, "]}");
    free(es);
    *out_entries = entries;
    return !b->failed;
}

/* ---- the answer ------------------------------------------------------------------------------ */

typedef struct answer {
    buf_t body;
    bool too_long;
} answer_t;

static size_t on_body(char *data, size_t size, size_t nmemb, void *ctx)
{
    answer_t *a = ctx;
    size_t n = size * nmemb;
    if (a->body.len + n > RESPONSE_MAX) {
        a->too_long = true;
        return 0; /* curl ends the transfer: CURLE_WRITE_ERROR */
    }
    put_n(&a->body, data, n);
    return a->body.failed ? 0 : n;
}

/* Counts the transaction-response's entries whose response.status is 2xx, and all of them:
 * every byte is read within the received length. */
static void count_statuses(const char *p, size_t len, size_t *ok, size_t *all)
{
    static const char key[] = "\"status\":\"";
    *ok = *all = 0;
    const char *end = p + len;
    while (p < end) {
        const char *s = NULL;
        for (const char *q = p; q + sizeof key - 1 <= end; q++) {
            if (memcmp(q, key, sizeof key - 1) == 0) {
                s = q;
                break;
            }
        }
        if (s == NULL)
            break;
        const char *v = s + sizeof key - 1;
        if (v < end && isdigit((unsigned char)*v)) {
            (*all)++;
            if (*v == '2')
                (*ok)++;
        }
        p = v;
    }
}

/* The first "diagnostics" (else the first "text") of an OperationOutcome, printable ASCII,
 * at most FHIR_DIAG_MAX bytes; else the start of the body. */
static void diagnostics_of(const char *p, size_t len, char *out, size_t size)
{
    static const char *const keys[] = {"\"diagnostics\":\"", "\"text\":\""};
    const char *end = p + len, *from = NULL;
    for (size_t k = 0; k < 2 && from == NULL; k++) {
        size_t kl = strlen(keys[k]);
        for (const char *q = p; q + kl <= end; q++)
            if (memcmp(q, keys[k], kl) == 0) {
                from = q + kl;
                break;
            }
    }
    bool quoted = from != NULL;
    if (from == NULL)
        from = p;
    size_t n = 0;
    for (const char *q = from; q < end && n + 1 < size; q++) {
        if (quoted && *q == '"' && (q == from || q[-1] != '\\'))
            break;
        unsigned char c = (unsigned char)*q;
        out[n++] = c >= 0x20 && c < 0x7f ? (char)c : ' ';
    }
    out[n] = '\0';
}

/* ---- the thread ------------------------------------------------------------------------------ */

static bool stopping(fhir_rest_t *f)
{
    pthread_mutex_lock(&f->mu);
    bool s = f->stop;
    pthread_mutex_unlock(&f->mu);
    return s;
}

static bool pause_ms(fhir_rest_t *f, uint32_t ms)
{
    struct timespec until;
    clock_gettime(CLOCK_MONOTONIC, &until);
    until.tv_sec += ms / 1000u;
    until.tv_nsec += (long)(ms % 1000u) * 1000000L;
    if (until.tv_nsec >= 1000000000L) {
        until.tv_sec++;
        until.tv_nsec -= 1000000000L;
    }
    pthread_mutex_lock(&f->mu);
    while (!f->stop && pthread_cond_timedwait(&f->cv, &f->mu, &until) != ETIMEDOUT)
        ;
    bool go_on = !f->stop;
    pthread_mutex_unlock(&f->mu);
    return go_on;
}

static uint32_t backoff(fhir_rest_t *f, uint32_t *next)
{
    uint32_t first = f->cfg.backoff_first_ms, max = f->cfg.backoff_max_ms;
    uint32_t d = *next ? *next : first;
    *next = d >= max / 2 ? max : d * 2;
    return d / 2 + (uint32_t)rand_r(&f->seed) % (d / 2 + 1);
}

static void note_parked(fhir_rest_t *f, const outbox_row_t *row, long status, const char *diag)
{
    pthread_mutex_lock(&f->mu);
    if (f->nparked < PARKED_RING) {
        fhir_parked_t *p = &f->parked_ring[f->nparked++];
        p->id = row->id;
        snprintf(p->device, sizeof p->device, "%s", row->device);
        p->status = status;
        snprintf(p->diagnostics, sizeof p->diagnostics, "%s", diag);
    }
    pthread_mutex_unlock(&f->mu);
}

static void park(fhir_rest_t *f, const outbox_row_t *row, long status, const char *diag)
{
    (void)outbox_retry(f->ob, row->id, row->attempts + 1, 0);
    (void)outbox_park(f->ob, row->id);
    atomic_fetch_add(&f->parked, 1);
    note_parked(f, row, status, diag);
}

enum outcome { SENT_OK, SENT_RETRY, SENT_REFUSED };

/* One POST of @p rows. SENT_RETRY fills *retry_after_ms (0: none given); SENT_REFUSED the
 * status and the diagnostics. */
static enum outcome post(fhir_rest_t *f, const outbox_row_t *rows, size_t n,
                         uint32_t *retry_after_ms, long *status, char *diag, size_t diag_size)
{
    *retry_after_ms = 0;
    *status = 0;
    diag[0] = '\0';
    buf_t body = {0};
    size_t bad = 0, entries = 0;
    if (!build_bundle(rows, n, &body, &bad, &entries)) {
        free(body.p);
        if (body.failed || n == 0)
            return SENT_RETRY; /* out of memory: try again later */
        snprintf(diag, diag_size, "outbox entry %lld is not a FHIR entry this gateway wrote",
                 (long long)rows[bad].id);
        *status = 0;
        return SENT_REFUSED;
    }
    answer_t ans = {{0}, false};
    CURL *c = f->curl;
    curl_easy_setopt(c, CURLOPT_POSTFIELDS, body.p);
    curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)body.len);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &ans);
    atomic_fetch_add(&f->requests, 1);
    atomic_fetch_add(&f->sent, n);
    CURLcode rc = curl_easy_perform(c);
    free(body.p);
    enum outcome out;
    if (rc != CURLE_OK) {
        snprintf(diag, diag_size, "%s",
                 ans.too_long ? "answer over 16 MiB" : curl_easy_strerror(rc));
        out = SENT_RETRY;
    } else {
        long code = 0;
        curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &code);
        *status = code;
        if (code >= 200 && code < 300) {
            size_t ok = 0, all = 0;
            count_statuses(ans.body.p ? ans.body.p : "", ans.body.len, &ok, &all);
            if (ok == entries && all == entries) {
                out = SENT_OK;
            } else {
                /* A transaction is all or nothing: an answer that does not say so for every
                 * entry is not trusted; the rows stay and go again (ifNoneExist). */
                snprintf(diag, diag_size,
                         "%zu of %zu entries 2xx in the transaction-response (%zu statuses)", ok,
                         entries, all);
                out = SENT_RETRY;
            }
        } else if (code == 429 || code == 408 || code >= 500 || code < 200 || code == 401 ||
                   code == 403 || code == 404 || code == 405) {
            /* 401, 403, 404, 405 say the server takes nothing from us (a token, a certificate
             * or the base URL is wrong), not that this entry is wrong: parking would empty the
             * outbox into the parked rows. Retried, and the log says why. */
            curl_off_t ra = -1;
            if (curl_easy_getinfo(c, CURLINFO_RETRY_AFTER, &ra) == CURLE_OK && ra > 0)
                *retry_after_ms = (uint32_t)(ra > RETRY_AFTER_MAX ? RETRY_AFTER_MAX : ra) * 1000u;
            diagnostics_of(ans.body.p ? ans.body.p : "", ans.body.len, diag, diag_size);
            out = SENT_RETRY;
        } else {
            diagnostics_of(ans.body.p ? ans.body.p : "", ans.body.len, diag, diag_size);
            out = SENT_REFUSED;
        }
    }
    free(ans.body.p);
    return out;
}

/* How many of @p rows (at least 1) fit in one transaction of at most @p max entries, their
 * Device and Patient entries included. */
static size_t fit(const outbox_row_t *rows, size_t n, size_t max)
{
    size_t entries = 0, k = 0;
    for (; k < n; k++) {
        size_t add = 1;
        bool seen = false;
        for (size_t j = 0; j < k && !seen; j++)
            seen = strcmp(rows[j].device, rows[k].device) == 0;
        add += !seen;
        entry_t ek, ej;
        if (parse_payload(&rows[k], &ek) && ek.patient_len > 0) {
            seen = false;
            for (size_t j = 0; j < k && !seen; j++)
                seen = parse_payload(&rows[j], &ej) && ej.patient_len == ek.patient_len &&
                       memcmp(ej.patient, ek.patient, ek.patient_len) == 0;
            add += !seen;
        }
        if (k > 0 && entries + add > max)
            break;
        entries += add;
    }
    return k;
}

/* What became of some rows: sent or parked; refused as a batch of several (they go one by
 * one); one was taken over by another gateway (the turn ends: what follows is claimed again,
 * in order, at the next). */
enum turn { TURN_DONE, TURN_ONE_BY_ONE, TURN_LOST };

static enum turn deliver_some(fhir_rest_t *f, outbox_row_t *rows, size_t n);

/* Delivers @p rows (in order), as many transactions of at most --fhir-batch entries as they
 * need, until the server took them, refused them, or the sender stops. */
static void deliver(fhir_rest_t *f, outbox_row_t *rows, size_t n)
{
    size_t done = 0;
    while (done < n && !stopping(f)) {
        size_t k = fit(rows + done, n - done, f->cfg.batch);
        enum turn t = deliver_some(f, rows + done, k);
        if (t == TURN_ONE_BY_ONE) {
            /* All or nothing: find the entry refused by sending them one by one (one entry
             * is never refused as a batch). */
            for (size_t i = 0; i < k && !stopping(f) && t != TURN_LOST; i++)
                t = deliver_some(f, rows + done + i, 1);
        }
        if (t == TURN_LOST)
            return;
        done += k;
    }
}

static enum turn deliver_some(fhir_rest_t *f, outbox_row_t *rows, size_t n)
{
    uint32_t next_backoff = 0;
    if (n == 0)
        return TURN_DONE;
    while (!stopping(f)) {
        uint32_t retry_after = 0;
        long status = 0;
        for (size_t i = 0; i < n; i++)
            if (!outbox_hold(f->ob, &rows[i]))
                /* Taken over while this sender waited: left to its new holder. The others
                 * are claimed again at the next turn. */
                return TURN_LOST;
        char diag[FHIR_DIAG_MAX + 1];
        enum outcome o = post(f, rows, n, &retry_after, &status, diag, sizeof diag);
        if (o == SENT_OK) {
            for (size_t i = 0; i < n; i++)
                (void)outbox_delivered(f->ob, rows[i].id);
            atomic_fetch_add(&f->acked, n);
            if (atomic_exchange(&f->down, false))
                gwlog(GWLOG_INFO, "fhir_destination_up", "s:destination", f->url, GWLOG_END);
            return TURN_DONE;
        }
        if (o == SENT_REFUSED) {
            if (atomic_exchange(&f->down, false))
                gwlog(GWLOG_INFO, "fhir_destination_up", "s:destination", f->url, GWLOG_END);
            if (n > 1) {
                gwlog(GWLOG_INFO, "fhir_batch_refused", "s:destination", f->url, "u:entries",
                      (unsigned long long)n, "i:status", (long long)status, "s:diagnostics", diag,
                      "s:reason", "sending the batch's entries one by one to find the refused one",
                      GWLOG_END);
                return TURN_ONE_BY_ONE;
            }
            gwlog(GWLOG_WARN, "fhir_refused", "s:destination", f->url, "s:device", rows[0].device,
                  "i:outbox_id", (long long)rows[0].id, "i:status", (long long)status,
                  "s:diagnostics", diag, "s:reason",
                  "the FHIR server refused the entry: parked (kept in the outbox, not sent again)",
                  GWLOG_END);
            park(f, &rows[0], status, diag);
            return TURN_DONE;
        }
        atomic_fetch_add(&f->retried, n);
        if (!atomic_exchange(&f->down, true))
            gwlog(GWLOG_WARN, "fhir_destination_down", "s:destination", f->url, "i:status",
                  (long long)status, "s:error", diag, "s:reason",
                  "the FHIR server does not take messages; they wait in the outbox", GWLOG_END);
        uint32_t wait = backoff(f, &next_backoff);
        if (retry_after > wait)
            wait = retry_after; /* the server said when: not before */
        struct timespec now;
        clock_gettime(CLOCK_REALTIME, &now);
        uint64_t now_ms = (uint64_t)now.tv_sec * 1000u + (uint64_t)now.tv_nsec / 1000000u;
        for (size_t i = 0; i < n; i++)
            (void)outbox_retry(f->ob, rows[i].id, ++rows[i].attempts, now_ms + wait);
        if (!pause_ms(f, wait))
            return TURN_DONE;
    }
    return TURN_DONE;
}

static void *run(void *arg)
{
    fhir_rest_t *f = arg;
    outbox_row_t *rows = calloc(f->cfg.batch, sizeof *rows);
    while (rows && !stopping(f)) {
        size_t n = outbox_next_batch(f->ob, 200, rows, f->cfg.batch);
        if (n == 0)
            continue;
        deliver(f, rows, n);
        for (size_t i = 0; i < n; i++)
            outbox_row_free(&rows[i]);
    }
    free(rows);
    return NULL;
}

/* ---- start and stop ------------------------------------------------------------------------ */

static bool read_token(const char *path, char **out, char *why, size_t why_size)
{
    FILE *fp = fopen(path, "r");
    if (fp == NULL) {
        snprintf(why, why_size, "--fhir-token: cannot read '%s': %s", path, strerror(errno));
        return false;
    }
    char *tok = calloc(1, TOKEN_MAX + 1);
    size_t n = tok ? fread(tok, 1, TOKEN_MAX + 1, fp) : 0;
    fclose(fp);
    if (tok == NULL) {
        snprintf(why, why_size, "out of memory");
        return false;
    }
    if (n > TOKEN_MAX) {
        snprintf(why, why_size, "--fhir-token: '%s' is longer than %u bytes", path, TOKEN_MAX);
        free(tok);
        return false;
    }
    while (n > 0 && isspace((unsigned char)tok[n - 1]))
        tok[--n] = '\0';
    bool ok = n > 0;
    for (size_t i = 0; i < n && ok; i++)
        ok = tok[i] > 0x20 && tok[i] < 0x7f; /* RFC 6750 b64token characters and no spaces */
    if (!ok) {
        snprintf(why, why_size,
                 "--fhir-token: '%s' must hold one bearer token (printable, no spaces) and "
                 "nothing else",
                 path);
        free(tok);
        return false;
    }
    static const char prefix[] = "Authorization: Bearer ";
    *out = malloc(sizeof prefix + n);
    if (*out)
        snprintf(*out, sizeof prefix + n, "%s%s", prefix, tok);
    /* The token is a secret: wiped before it is freed. */
    memset(tok, 0, TOKEN_MAX + 1);
    free(tok);
    return *out != NULL;
}

static bool setup_curl(fhir_rest_t *f, char *why, size_t why_size)
{
    f->curl = curl_easy_init();
    struct curl_slist *h = NULL;
    h = curl_slist_append(h, "Content-Type: application/fhir+json");
    if (h)
        h = curl_slist_append(h, "Accept: application/fhir+json");
    if (h)
        h = curl_slist_append(h, "Prefer: return=minimal");
    if (h && f->auth_header)
        h = curl_slist_append(h, f->auth_header);
    f->headers = h;
    if (f->curl == NULL || h == NULL) {
        snprintf(why, why_size, "cannot set up libcurl (out of memory)");
        return false;
    }
    CURL *c = f->curl;
    bool ok = curl_easy_setopt(c, CURLOPT_URL, f->url) == CURLE_OK &&
              curl_easy_setopt(c, CURLOPT_HTTPHEADER, h) == CURLE_OK &&
              curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L) == CURLE_OK &&
              curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, (long)f->cfg.timeout_ms) == CURLE_OK &&
              curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, CONNECT_TIMEOUT) == CURLE_OK &&
              curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 0L) == CURLE_OK &&
              curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body) == CURLE_OK &&
              curl_easy_setopt(c, CURLOPT_USERAGENT, "medwire-gateway") == CURLE_OK;
#if LIBCURL_VERSION_NUM >= 0x075500
    ok = ok && curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https") == CURLE_OK;
#endif
    if (ok && f->cfg.cert)
        ok = curl_easy_setopt(c, CURLOPT_SSLCERT, f->cfg.cert) == CURLE_OK;
    if (ok && f->cfg.key)
        ok = curl_easy_setopt(c, CURLOPT_SSLKEY, f->cfg.key) == CURLE_OK;
    if (ok && f->cfg.ca)
        ok = curl_easy_setopt(c, CURLOPT_CAINFO, f->cfg.ca) == CURLE_OK;
    if (!ok)
        snprintf(why, why_size, "libcurl refused an option for --fhir-server %s", f->url);
    return ok;
}

fhir_rest_t *fhir_rest_start(const fhir_rest_config_t *cfg, outbox_t *ob, char *why,
                             size_t why_size)
{
    if (!fhir_rest_url_ok(cfg->url) || strlen(cfg->url) >= 1024) {
        snprintf(why, why_size, "--fhir-server must be an http:// or https:// base URL: %s",
                 cfg->url);
        return NULL;
    }
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
        snprintf(why, why_size, "cannot initialise libcurl");
        return NULL;
    }
    fhir_rest_t *f = calloc(1, sizeof *f);
    if (f == NULL) {
        snprintf(why, why_size, "out of memory");
        curl_global_cleanup();
        return NULL;
    }
    f->cfg = *cfg;
    if (f->cfg.batch == 0 || f->cfg.batch > FHIR_MAX_BATCH)
        f->cfg.batch = FHIR_DEFAULT_BATCH;
    if (f->cfg.timeout_ms == 0)
        f->cfg.timeout_ms = FHIR_DEFAULT_TIMEOUT_MS;
    if (f->cfg.backoff_first_ms == 0)
        f->cfg.backoff_first_ms = 500u;
    if (f->cfg.backoff_max_ms < f->cfg.backoff_first_ms)
        f->cfg.backoff_max_ms = f->cfg.backoff_first_ms > 30000u ? f->cfg.backoff_first_ms : 30000u;
    snprintf(f->url, sizeof f->url, "%s", cfg->url);
    f->ob = ob;
    f->seed = (unsigned)time(NULL) ^ (unsigned)getpid();
    pthread_mutex_init(&f->mu, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&f->cv, &ca);
    pthread_condattr_destroy(&ca);
    if ((cfg->token_file && !read_token(cfg->token_file, &f->auth_header, why, why_size)) ||
        !setup_curl(f, why, why_size)) {
        fhir_rest_stop(&f);
        return NULL;
    }
    if (pthread_create(&f->thread, NULL, run, f) != 0) {
        snprintf(why, why_size, "cannot start the FHIR sender thread");
        fhir_rest_stop(&f);
        return NULL;
    }
    f->started = true;
    return f;
}

void fhir_rest_stop(fhir_rest_t **pf)
{
    fhir_rest_t *f = *pf;
    if (f == NULL)
        return;
    if (f->started) {
        pthread_mutex_lock(&f->mu);
        f->stop = true;
        pthread_cond_broadcast(&f->cv);
        pthread_mutex_unlock(&f->mu);
        outbox_wake(f->ob);
        pthread_join(f->thread, NULL);
    }
    if (f->curl)
        curl_easy_cleanup(f->curl);
    curl_slist_free_all(f->headers);
    if (f->auth_header) {
        memset(f->auth_header, 0, strlen(f->auth_header));
        free(f->auth_header);
    }
    pthread_cond_destroy(&f->cv);
    pthread_mutex_destroy(&f->mu);
    free(f);
    curl_global_cleanup();
    *pf = NULL;
}

void fhir_rest_stats(fhir_rest_t *f, fhir_rest_stats_t *out)
{
    out->sent = atomic_load(&f->sent);
    out->acked = atomic_load(&f->acked);
    out->retried = atomic_load(&f->retried);
    out->parked = atomic_load(&f->parked);
    out->requests = atomic_load(&f->requests);
    out->down = atomic_load(&f->down);
}

size_t fhir_rest_take_parked(fhir_rest_t *f, fhir_parked_t *out, size_t max)
{
    pthread_mutex_lock(&f->mu);
    size_t n = f->nparked < max ? f->nparked : max;
    memcpy(out, f->parked_ring, n * sizeof *out);
    memmove(f->parked_ring, f->parked_ring + n, (f->nparked - n) * sizeof *out);
    f->nparked -= n;
    pthread_mutex_unlock(&f->mu);
    return n;
}
