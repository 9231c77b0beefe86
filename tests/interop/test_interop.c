/* SPDX-License-Identifier: Apache-2.0 */
/* test_interop.c -- Debian's libcoap clients and servers against medwire, over UDP loopback. */
#include <criterion/criterion.h>
#include <criterion/logging.h>
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "session/codec.h"
#include "support/pki.h"
#include "support/proc.h"

/* libcoap's clients give up after this many seconds without an answer (-B); a test that
 * fails must not wait for their default of 90. */
#define CLIENT_BREAK_S "10"
#define CLIENT_RUN_MS  30000
/* How long a peer may take to come up (write its port file, open its endpoints). */
#define START_MS 10000

/* ---- finding the foreign programs ---- */

/* A program's full path. */
typedef struct prog {
    char path[512];
} prog;

/* Finds @p name on PATH (or in /usr/bin); false if it is not installed. */
static bool find_program(const char *name, prog *out)
{
    char *found = out->path;
    const char *path = getenv("PATH");
    char dirs[2048];
    snprintf(dirs, sizeof dirs, "%s:/usr/bin", path ? path : "");
    for (char *save = NULL, *d = strtok_r(dirs, ":", &save); d; d = strtok_r(NULL, ":", &save)) {
        snprintf(found, sizeof out->path, "%s/%s", *d ? d : ".", name);
        if (access(found, X_OK) == 0)
            return true;
    }
    found[0] = '\0';
    return false;
}

/* Skips the test, saying what to install, when a libcoap program is missing. */
static void require_program(const char *name, prog *out)
{
    if (!find_program(name, out))
        cr_skip_test(
            "%s is not installed (Debian package libcoap3-bin); skipping this interop test", name);
}

/* ---- the medwire gateway, started by the test ---- */

typedef struct gw_proc {
    mwt_proc proc;
    char dir[256];
    char out[300], audit[300], port_file[300];
    int port;
} gw_proc;

/* The gateway, with the NULL-terminated options @p extra (may be NULL) after its own. */
static void start_gateway_with(gw_proc *g, const mwt_pki *pki, const char *const extra[])
{
    snprintf(g->dir, sizeof g->dir, "%s", mwt_tmpdir());
    snprintf(g->out, sizeof g->out, "%s/out.jsonl", g->dir);
    snprintf(g->audit, sizeof g->audit, "%s/audit.jsonl", g->dir);
    snprintf(g->port_file, sizeof g->port_file, "%s/port", g->dir);
    char ca[300], crt[300], key[300];
    snprintf(ca, sizeof ca, "%s", mwt_pki_ca(pki));
    snprintf(crt, sizeof crt, "%s", mwt_pki_crt(pki, "gateway"));
    snprintf(key, sizeof key, "%s", mwt_pki_key(pki, "gateway"));
    const char *argv[32] = {mwt_bin("medwire-gateway"),
                            "--listen",
                            "127.0.0.1:0",
                            "--ca",
                            ca,
                            "--cert",
                            crt,
                            "--key",
                            key,
                            "--out",
                            g->out,
                            "--audit",
                            g->audit,
                            "--port-file",
                            g->port_file};
    size_t n = 15;
    for (size_t i = 0; extra && extra[i]; i++) {
        cr_assert_lt(n, 31u);
        argv[n++] = extra[i];
    }
    argv[n] = NULL;
    /* The gateway runs in its own directory, so whatever it keeps there by default (its
     * replay store) belongs to this test alone: a device's sequence numbers start afresh. */
    cr_assert_eq(chdir(g->dir), 0, "cannot enter %s", g->dir);
    cr_assert(mwt_proc_start(&g->proc, argv, NULL, NULL), "cannot start medwire-gateway");
    cr_assert(mwt_wait_file(g->port_file, START_MS), "the gateway did not report its port");
    char *port = mwt_read_file(g->port_file);
    cr_assert_not_null(port);
    g->port = atoi(port);
    free(port);
    cr_assert_gt(g->port, 0);
}

/* The gateway, with @p est_ca (may be NULL) as its --est-ca CA folder. */
static void start_gateway_est(gw_proc *g, const mwt_pki *pki, const char *est_ca)
{
    const char *extra[] = {"--est-ca", est_ca, NULL};
    start_gateway_with(g, pki, est_ca ? extra : NULL);
}

static void start_gateway(gw_proc *g, const mwt_pki *pki)
{
    start_gateway_est(g, pki, NULL);
}

static void stop_gateway(gw_proc *g)
{
    cr_assert_eq(mwt_proc_stop(&g->proc, SIGTERM), 0, "the gateway exits 0 on SIGTERM");
}

/* ---- running a libcoap client and reading what it printed ---- */

/* What one coap-client run printed. It exits 0 even when the handshake failed, so the
 * response is read from its -v 6 PDU dump ("v:1 t:ACK c:2.04 i:... [ options ] :: ..."). */
typedef struct coap_run {
    int rc;
    char code[8];            /* "2.04"; "" if no response was printed */
    char content_format[64]; /* as libcoap names it ("65101", "application/link-format") */
    char *body;              /* the -o file (2.xx payloads), NULL if none; free it */
    size_t body_len;         /* its length: an Ack is binary and may hold NUL bytes */
    char *log;               /* stdout and stderr together, for messages; free it */
} coap_run;

static void parse_response(coap_run *r, const char *out)
{
    for (const char *line = out; line && *line;
         line = strchr(line, '\n') ? strchr(line, '\n') + 1 : NULL) {
        if (strncmp(line, "v:1 t:", 6) != 0)
            continue;
        const char *eol = strchr(line, '\n');
        size_t len = eol ? (size_t)(eol - line) : strlen(line);
        char l[4096];
        snprintf(l, sizeof l, "%.*s", (int)(len < sizeof l ? len : sizeof l - 1), line);
        const char *c = strstr(l, " c:");
        /* Requests print as c:GET, c:POST; a response code is c:N.NN. */
        if (c == NULL || c[3] < '2' || c[3] > '5' || c[4] != '.')
            continue;
        snprintf(r->code, sizeof r->code, "%.4s", c + 3);
        r->content_format[0] = '\0';
        const char *cf = strstr(l, "Content-Format:");
        const char *opts_end = strstr(l, " ]");
        if (cf != NULL && (opts_end == NULL || cf < opts_end)) {
            cf += strlen("Content-Format:");
            size_t n = strcspn(cf, ", ]");
            snprintf(r->content_format, sizeof r->content_format, "%.*s", (int)n, cf);
        }
    }
}

/* The whole of @p path and its length (NUL-terminated too); NULL if it cannot be read. */
static char *read_bytes(const char *path, size_t *out_len)
{
    *out_len = 0;
    FILE *f = fopen(path, "rb");
    if (f == NULL)
        return NULL;
    char *buf = malloc(65536 + 1);
    size_t n = buf ? fread(buf, 1, 65536, f) : 0;
    bool bad = buf == NULL || ferror(f) || !feof(f);
    fclose(f);
    if (bad) {
        free(buf);
        return NULL;
    }
    buf[n] = '\0';
    *out_len = n;
    return buf;
}

/* Runs @p client with the device's PKI and @p extra arguments against @p uri. */
static void run_client(coap_run *r, const char *client, const mwt_pki *pki, const char *device,
                       const char *const extra[], const char *uri)
{
    memset(r, 0, sizeof *r);
    char dir[256], out[300], err[300], body[300];
    snprintf(dir, sizeof dir, "%s", mwt_tmpdir());
    snprintf(out, sizeof out, "%s/stdout", dir);
    snprintf(err, sizeof err, "%s/stderr", dir);
    snprintf(body, sizeof body, "%s/body", dir);
    char ca[300], crt[300], key[300];
    snprintf(ca, sizeof ca, "%s", mwt_pki_ca(pki));
    const char *argv[32];
    size_t n = 0;
    argv[n++] = client;
    argv[n++] = "-v";
    argv[n++] = "6";
    argv[n++] = "-B";
    argv[n++] = CLIENT_BREAK_S;
    argv[n++] = "-o";
    argv[n++] = body;
    if (device != NULL) {
        snprintf(crt, sizeof crt, "%s", mwt_pki_crt(pki, device));
        snprintf(key, sizeof key, "%s", mwt_pki_key(pki, device));
        argv[n++] = "-c";
        argv[n++] = crt;
        argv[n++] = "-j";
        argv[n++] = key;
    }
    argv[n++] = "-C";
    argv[n++] = ca;
    for (size_t i = 0; extra != NULL && extra[i] != NULL; i++)
        argv[n++] = extra[i];
    argv[n++] = uri;
    argv[n] = NULL;
    cr_assert_lt(n, sizeof argv / sizeof argv[0]);
    r->rc = mwt_run(argv, out, err, CLIENT_RUN_MS);
    char *o = mwt_read_file(out), *e = mwt_read_file(err);
    size_t need = (o ? strlen(o) : 0) + (e ? strlen(e) : 0) + 32;
    r->log = malloc(need);
    cr_assert_not_null(r->log);
    snprintf(r->log, need, "%s\n--- stderr ---\n%s", o ? o : "", e ? e : "");
    parse_response(r, o ? o : "");
    r->body = read_bytes(body, &r->body_len);
    free(o);
    free(e);
}

static void coap_run_free(coap_run *r)
{
    free(r->body);
    free(r->log);
}

static void uri_of(char *out, size_t cap, const gw_proc *g, const char *path)
{
    snprintf(out, cap, "coaps://127.0.0.1:%d%s", g->port, path);
}

/* The suites of protocol v1 (docs/protocol.md section 1), by wolfSSL's names. */
static const char *const V1_SUITES[] = {"ECDHE-ECDSA-AES128-CCM-8",
                                        "ECDHE-ECDSA-AES128-GCM-SHA256"};

/* Checks that the gateway audited a session for dev-1 naming one of protocol v1's suites,
 * and logs which one @p client negotiated. */
static void assert_suite_is_protocol_v1(const char *client, const gw_proc *g)
{
    char *text = mwt_read_file(g->audit);
    cr_assert_not_null(text, "no audit log");
    const char *suite = NULL;
    char *save = NULL;
    for (char *line = strtok_r(text, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        if (!strstr(line, "\"event\":\"session_established\"") ||
            !strstr(line, "\"device\":\"dev-1\""))
            continue;
        for (size_t i = 0; i < sizeof V1_SUITES / sizeof V1_SUITES[0]; i++)
            if (strstr(line, V1_SUITES[i]) != NULL)
                suite = V1_SUITES[i];
    }
    cr_assert_not_null(suite, "%s: no session_established line naming a protocol v1 suite:\n%s",
                       client, text);
    cr_log_info("%s -> medwire-gateway negotiated %s", client, suite);
    free(text);
}

static size_t lines_of_device(const gw_proc *g, const char *device)
{
    char dev[96];
    snprintf(dev, sizeof dev, "\"device\":\"%s\"", device);
    const char *needles[] = {dev, NULL};
    return mwt_count_lines(g->out, needles);
}

/* ---- the client direction: libcoap's coap-client against medwire-gateway ---- */

/* POSTs a batch of @p count observations (mw-batchfile) as dev-1, block-wise in blocks of
 * @p block bytes if not NULL, and checks the 2.04, the Ack and every delivered observation. */
static void posts_a_batch(const char *name, int count, const char *block)
{
    prog client;
    require_program(name, &client);
    mwt_pki pki;
    cr_assert(mwt_pki_make(&pki));
    gw_proc g;
    start_gateway(&g, &pki);
    char batch[300], uri[128], n[16];
    snprintf(batch, sizeof batch, "%s/batch.pb", g.dir);
    snprintf(n, sizeof n, "%d", count);
    const char *mk[] = {
        mwt_bin("mw-batchfile"), "--device", "dev-1", "--count", n, "--out", batch, NULL};
    cr_assert_eq(mwt_run(mk, NULL, NULL, 10000), 0, "mw-batchfile failed");
    uri_of(uri, sizeof uri, &g, "/batch");
    const char *extra[] = {"-m", "post", "-t", "65100", "-f", batch, NULL, NULL, NULL};
    if (block != NULL) {
        extra[6] = "-b";
        extra[7] = block;
    }
    coap_run r;
    run_client(&r, client.path, &pki, "dev-1", extra, uri);
    stop_gateway(&g);

    cr_assert_str_eq(r.code, "2.04", "%s printed no 2.04 (handshake or request failed):\n%s", name,
                     r.log);
    if (block != NULL)
        cr_assert(strstr(r.log, "Block1:") != NULL, "the body went block-wise:\n%s", r.log);
    cr_assert_str_eq(r.content_format, "65101", "the Ack's Content-Format:\n%s", r.log);
    /* The body the foreign client received is medwire's Ack of exactly 1..count. */
    cr_assert_not_null(r.body, "%s wrote no response body:\n%s", name, r.log);
    mwi_seq_range ranges[MWI_MAX_ACK_RANGES];
    size_t nr = 0;
    cr_assert_eq(
        mwi_ack_decode((const uint8_t *)r.body, r.body_len, ranges, MWI_MAX_ACK_RANGES, &nr),
        MW_OK);
    cr_assert_eq(nr, 1);
    cr_assert_eq(ranges[0].first, 1);
    cr_assert_eq(ranges[0].last, (uint64_t)count);
    /* Every observation is delivered once, with the values mw-batchfile put in. */
    cr_assert_eq(lines_of_device(&g, "dev-1"), (size_t)count, "every observation delivered once");
    for (int seq = 1; seq <= count; seq++) {
        char s[32], v[32];
        snprintf(s, sizeof s, "\"seq\":%d,", seq);
        snprintf(v, sizeof v, "\"mantissa\":%d,", 60 + seq);
        const char *obs[] = {"\"device\":\"dev-1\"",
                             s,
                             "\"type\":\"observation\"",
                             "\"mdc_code\":149530",
                             v,
                             "\"exponent\":0,",
                             "\"unit\":\"/min\"",
                             "\"status\":\"valid\"",
                             NULL};
        cr_assert_eq(mwt_count_lines(g.out, obs), 1, "observation seq %d as sent", seq);
    }
    assert_suite_is_protocol_v1(name, &g);
    coap_run_free(&r);
}

/* A Batch in protobuf text format, for Google's protoc to encode: medwire's encoder plays no
 * part, so the gateway is shown to read the schema as any protobuf implementation writes it. */
static const char PROTOC_BATCH[] =
    "envelopes {\n"
    "  version: 1 device_id: \"dev-1\" seq: 1 device_time_ms: 1700000000000\n"
    "  priority: PRIORITY_OBSERVATION low_water: 1\n"
    "  observation { mdc_code: 150456 mantissa: 975 exponent: -1 unit: \"%\"\n"
    "                status: MEAS_VALID time_ms: 1700000000000 }\n"
    "}\n"
    "envelopes {\n"
    "  version: 1 device_id: \"dev-1\" seq: 2 device_time_ms: 1700000001000\n"
    "  priority: PRIORITY_ALARM low_water: 1\n"
    "  alarm { mdc_code: 196670 priority: ALARM_PRIORITY_HIGH state: ALARM_STATE_ACTIVE\n"
    "          time_ms: 1700000001000 text: \"SpO2 low\" }\n"
    "}\n";

/* Runs protoc --encode or --decode (stdin to stdout, hence the shell) on @p type. */
static int protoc(const char *protoc_bin, const char *mode, const char *type, const char *in,
                  const char *out)
{
    const char *src = getenv("MW_SOURCE_DIR");
    cr_assert_not_null(src, "MW_SOURCE_DIR is not set (run through ctest)");
    char cmd[2048];
    const char *parts[] = {protoc_bin, src, in, out};
    for (size_t i = 0; i < sizeof parts / sizeof parts[0]; i++)
        cr_assert(strchr(parts[i], '\'') == NULL, "a path with a quote: %s", parts[i]);
    snprintf(cmd, sizeof cmd, "'%s' -I '%s/proto' --%s=%s '%s/proto/medwire.proto' < '%s' > '%s'",
             protoc_bin, src, mode, type, src, in, out);
    const char *argv[] = {"/bin/sh", "-c", cmd, NULL};
    return mwt_run(argv, NULL, NULL, 30000);
}

static void posts_a_protoc_batch(const char *name)
{
    prog client;
    require_program(name, &client);
    prog protoc_bin;
    if (!find_program("protoc", &protoc_bin))
        cr_skip_test("protoc is not installed (Debian package protobuf-compiler, a dependency of "
                     "nanopb); skipping");
    mwt_pki pki;
    cr_assert(mwt_pki_make(&pki));
    gw_proc g;
    start_gateway(&g, &pki);
    char text[300], batch[300], ack[300], ack_text[300], uri[128];
    snprintf(text, sizeof text, "%s/batch.txtpb", g.dir);
    snprintf(batch, sizeof batch, "%s/batch.pb", g.dir);
    snprintf(ack, sizeof ack, "%s/ack.pb", g.dir);
    snprintf(ack_text, sizeof ack_text, "%s/ack.txtpb", g.dir);
    FILE *f = fopen(text, "w");
    cr_assert_not_null(f);
    fputs(PROTOC_BATCH, f);
    cr_assert_eq(fclose(f), 0);
    cr_assert_eq(protoc(protoc_bin.path, "encode", "medwire.v1.Batch", text, batch), 0,
                 "protoc --encode");
    uri_of(uri, sizeof uri, &g, "/batch");
    const char *extra[] = {"-m", "post", "-t", "65100", "-f", batch, NULL};
    coap_run r;
    run_client(&r, client.path, &pki, "dev-1", extra, uri);
    stop_gateway(&g);

    cr_assert_str_eq(r.code, "2.04", "%s printed no 2.04:\n%s", name, r.log);
    cr_assert_not_null(r.body, "%s", r.log);
    f = fopen(ack, "wb");
    cr_assert_not_null(f);
    cr_assert_eq(fwrite(r.body, 1, r.body_len, f), r.body_len);
    cr_assert_eq(fclose(f), 0);
    cr_assert_eq(protoc(protoc_bin.path, "decode", "medwire.v1.Ack", ack, ack_text), 0,
                 "protoc --decode");
    char *acked = mwt_read_file(ack_text);
    cr_assert_not_null(acked);
    cr_assert(strstr(acked, "first: 1") && strstr(acked, "last: 2"), "Ack as protoc reads it: %s",
              acked);
    free(acked);
    const char *obs[] = {"\"seq\":1,", "\"type\":\"observation\"", "\"value\":97.5,",
                         "\"unit\":\"%\"", NULL};
    const char *alarm[] = {
        "\"seq\":2,",           "\"type\":\"alarm\"",    "\"alarm_priority\":\"high\"",
        "\"state\":\"active\"", "\"text\":\"SpO2 low\"", NULL};
    cr_assert_eq(mwt_count_lines(g.out, obs), 1, "SpO2 97.5 %% delivered exactly");
    cr_assert_eq(mwt_count_lines(g.out, alarm), 1, "the alarm delivered");
    cr_assert_eq(lines_of_device(&g, "dev-1"), 2);
    coap_run_free(&r);
}

/* Runs @p name once against a fresh gateway and checks the response code. */
static void expect_code(const char *name, const char *const extra[], const char *path,
                        const char *code, coap_run *out_run, gw_proc *out_gw)
{
    prog client;
    require_program(name, &client);
    mwt_pki pki;
    cr_assert(mwt_pki_make(&pki));
    start_gateway(out_gw, &pki);
    char uri[128];
    uri_of(uri, sizeof uri, out_gw, path);
    run_client(out_run, client.path, &pki, "dev-1", extra, uri);
    stop_gateway(out_gw);
    cr_assert_str_eq(out_run->code, code, "%s %s: expected %s:\n%s", name, path, code,
                     out_run->log);
    cr_assert_eq(lines_of_device(out_gw, "dev-1"), 0, "nothing is delivered");
}

static void text_body_gets_4_15(const char *name)
{
    const char *extra[] = {"-m", "post", "-t", "text/plain", "-e", "SpO2 97", NULL};
    coap_run r;
    gw_proc g;
    expect_code(name, extra, "/batch", "4.15", &r, &g);
    coap_run_free(&r);
}

static void batch_without_content_format_gets_4_15(const char *name)
{
    /* A valid protobuf body, but not labelled as one: the label is the contract. */
    char dir[256], batch[300];
    snprintf(dir, sizeof dir, "%s", mwt_tmpdir());
    snprintf(batch, sizeof batch, "%s/batch.pb", dir);
    const char *mk[] = {
        mwt_bin("mw-batchfile"), "--device", "dev-1", "--count", "2", "--out", batch, NULL};
    cr_assert_eq(mwt_run(mk, NULL, NULL, 10000), 0, "mw-batchfile failed");
    const char *extra[] = {"-m", "post", "-f", batch, NULL};
    coap_run r;
    gw_proc g;
    expect_code(name, extra, "/batch", "4.15", &r, &g);
    coap_run_free(&r);
}

static void unknown_path_gets_4_04(const char *name)
{
    const char *extra[] = {"-m", "get", NULL};
    coap_run r;
    gw_proc g;
    expect_code(name, extra, "/observations", "4.04", &r, &g);
    coap_run_free(&r);
}

static void get_on_batch_gets_4_05(const char *name)
{
    const char *extra[] = {"-m", "get", NULL};
    coap_run r;
    gw_proc g;
    expect_code(name, extra, "/batch", "4.05", &r, &g);
    coap_run_free(&r);
}

static void oversized_body_gets_4_13(const char *name)
{
    /* 70 000 bytes announced in Size1 and sent in 1024-byte Block1 blocks: far past any
     * sensible max_body, so the gateway must refuse without buffering it (RFC 7959 2.9.3). */
    char dir[256], big[300];
    snprintf(dir, sizeof dir, "%s", mwt_tmpdir());
    snprintf(big, sizeof big, "%s/big.bin", dir);
    FILE *f = fopen(big, "wb");
    cr_assert_not_null(f);
    for (int i = 0; i < 70000; i++)
        fputc('A' + i % 26, f);
    cr_assert_eq(fclose(f), 0);
    const char *extra[] = {"-m", "post", "-t", "65100", "-b", "1024", "-f", big, NULL};
    coap_run r;
    gw_proc g;
    expect_code(name, extra, "/batch", "4.13", &r, &g);
    coap_run_free(&r);
}

static void well_known_core_lists_batch(const char *name)
{
    const char *extra[] = {"-m", "get", NULL};
    coap_run r;
    gw_proc g;
    expect_code(name, extra, "/.well-known/core", "2.05", &r, &g);
    /* RFC 6690: Content-Format 40, which libcoap prints by name. */
    cr_assert_str_eq(r.content_format, "application/link-format", "%s", r.log);
    cr_assert_not_null(r.body, "%s", r.log);
    cr_assert(strstr(r.body, "</batch>") != NULL, "link-format body: %s", r.body);
    cr_assert(strstr(r.body, "ct=65100") != NULL, "link-format body: %s", r.body);
    assert_suite_is_protocol_v1(name, &g);
    coap_run_free(&r);
}

static void no_client_certificate_is_refused(const char *name)
{
    prog client;
    require_program(name, &client);
    mwt_pki pki;
    cr_assert(mwt_pki_make(&pki));
    gw_proc g;
    start_gateway(&g, &pki);
    char uri[128];
    uri_of(uri, sizeof uri, &g, "/.well-known/core");
    const char *extra[] = {"-m", "get", NULL};
    coap_run r;
    run_client(&r, client.path, &pki, NULL, extra, uri);
    stop_gateway(&g);
    /* coap-client exits 0 all the same: only its output tells a refusal from a success. */
    cr_assert_str_eq(r.code, "", "%s got a response without a certificate:\n%s", name, r.log);
    const char *refused[] = {"\"event\":\"handshake_failed\"", "\"code\":-345", NULL};
    cr_assert_geq(mwt_count_lines(g.audit, refused), 1,
                  "the gateway audits the missing certificate");
    coap_run_free(&r);
}

#define CLIENT_TESTS(suite, program)                                                               \
    Test(suite, posts_a_protobuf_batch_and_the_gateway_delivers_each_observation_once,             \
         .timeout = 60)                                                                            \
    {                                                                                              \
        posts_a_batch(program, 3, NULL);                                                           \
    }                                                                                              \
    Test(suite, posts_a_batch_block_wise_in_64_byte_blocks_and_gets_one_ack, .timeout = 60)        \
    {                                                                                              \
        posts_a_batch(program, 16, "64");                                                          \
    }                                                                                              \
    Test(suite, posts_a_batch_encoded_by_protoc_and_protoc_reads_the_ack, .timeout = 60)           \
    {                                                                                              \
        posts_a_protoc_batch(program);                                                             \
    }                                                                                              \
    Test(suite, gets_4_15_for_a_text_plain_body, .timeout = 60)                                    \
    {                                                                                              \
        text_body_gets_4_15(program);                                                              \
    }                                                                                              \
    Test(suite, gets_4_15_for_a_batch_sent_without_content_format, .timeout = 60)                  \
    {                                                                                              \
        batch_without_content_format_gets_4_15(program);                                           \
    }                                                                                              \
    Test(suite, gets_4_04_for_an_unknown_path, .timeout = 60)                                      \
    {                                                                                              \
        unknown_path_gets_4_04(program);                                                           \
    }                                                                                              \
    Test(suite, gets_4_05_for_get_on_the_batch_resource, .timeout = 60)                            \
    {                                                                                              \
        get_on_batch_gets_4_05(program);                                                           \
    }                                                                                              \
    Test(suite, gets_4_13_for_a_block_wise_body_larger_than_the_gateway_accepts, .timeout = 60)    \
    {                                                                                              \
        oversized_body_gets_4_13(program);                                                         \
    }                                                                                              \
    Test(suite, gets_link_format_listing_batch_from_well_known_core, .timeout = 60)                \
    {                                                                                              \
        well_known_core_lists_batch(program);                                                      \
    }                                                                                              \
    Test(suite, is_refused_without_a_client_certificate_though_it_exits_0, .timeout = 60)          \
    {                                                                                              \
        no_client_certificate_is_refused(program);                                                 \
    }

CLIENT_TESTS(coap_client_openssl, "coap-client-openssl")
CLIENT_TESTS(coap_client_gnutls, "coap-client-gnutls")

/* ---- EST over CoAP (RFC 9148): coap-client renews dev-1's certificate, OpenSSL checks it ---- */

/* A CA of the test's own, as mwt_pki_make lays it out (renewals write its index.txt): the
 * gateway, dev-1 and dev-2. */
static void est_pki(mwt_pki *p)
{
    const char *pki = mwt_bin("medwire-pki");
    snprintf(p->dir, sizeof p->dir, "%s", mwt_tmpdir());
    char ca[300];
    snprintf(ca, sizeof ca, "%s/ca", p->dir);
    const char *mk[] = {pki, "ca", "--out", ca, NULL};
    cr_assert_eq(mwt_run(mk, NULL, NULL, 30000), 0);
    static const char *const who[][2] = {
        {"gateway", "gateway"}, {"device", "dev-1"}, {"device", "dev-2"}};
    for (size_t i = 0; i < sizeof who / sizeof who[0]; i++) {
        const char *is[] = {pki,    "issue",   "--ca",  ca,     "--role", who[i][0],
                            "--id", who[i][1], "--out", p->dir, NULL};
        cr_assert_eq(mwt_run(is, NULL, NULL, 30000), 0, "issue %s", who[i][1]);
    }
}

/* Runs OpenSSL with the NULL-terminated arguments; requires success. */
static void openssl_ok(const prog *openssl, const char *arg, ...)
{
    const char *argv[32];
    size_t n = 0;
    argv[n++] = openssl->path;
    va_list ap;
    va_start(ap, arg);
    for (const char *a = arg; a != NULL; a = va_arg(ap, const char *)) {
        cr_assert_lt(n, 31u);
        argv[n++] = a;
    }
    va_end(ap);
    argv[n] = NULL;
    char err[300];
    snprintf(err, sizeof err, "%s/openssl.err", mwt_tmpdir());
    int rc = mwt_run(argv, NULL, err, 30000);
    char *e = rc != 0 ? mwt_read_file(err) : NULL;
    cr_assert_eq(rc, 0, "openssl %s failed: %s", arg, e ? e : "");
    free(e);
}

/* A new P-256 key DIR/NAME.key and its PKCS#10 request DIR/NAME.csr (DER) for @p subject, with
 * the extension @p ext ("" for none); OpenSSL checks the request's signature. */
static void est_csr(const prog *openssl, const mwt_pki *p, const char *name, const char *subject,
                    const char *ext)
{
    char key[300], csr[300];
    snprintf(key, sizeof key, "%s/%s.key", p->dir, name);
    snprintf(csr, sizeof csr, "%s/%s.csr", p->dir, name);
    openssl_ok(openssl, "ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", key, NULL);
    if (ext[0])
        openssl_ok(openssl, "req", "-new", "-key", key, "-subj", subject, "-addext", ext,
                   "-outform", "DER", "-out", csr, NULL);
    else
        openssl_ok(openssl, "req", "-new", "-key", key, "-subj", subject, "-outform", "DER", "-out",
                   csr, NULL);
    openssl_ok(openssl, "req", "-verify", "-noout", "-inform", "DER", "-in", csr, NULL);
}

/* POSTs DIR/@p csr_name.csr to /sren as @p device, accepting @p accept. */
static void est_post(coap_run *r, const prog *client, const mwt_pki *p, const gw_proc *g,
                     const char *device, const char *csr_name, const char *accept)
{
    char csr[300], uri[128];
    snprintf(csr, sizeof csr, "%s/%s.csr", p->dir, csr_name);
    uri_of(uri, sizeof uri, g, "/.well-known/est/sren");
    const char *extra[] = {"-m", "post", "-t", "286", "-A", accept, "-f", csr, NULL};
    run_client(r, client->path, p, device, extra, uri);
}

/* Writes @p len bytes of @p data to @p path. */
static void write_bytes(const char *path, const char *data, size_t len)
{
    FILE *f = fopen(path, "wb");
    cr_assert_not_null(f, "%s", path);
    cr_assert_eq(fwrite(data, 1, len, f), len);
    cr_assert_eq(fclose(f), 0);
}

/* @req IEC62443-CR1.5 IEC62443-CR1.8 MDCG-2019-16-PMS */
Test(est, a_device_renews_over_its_session_and_the_new_certificate_verifies_and_connects,
     .timeout = 120)
{
    prog client, openssl;
    require_program("coap-client-openssl", &client);
    cr_assert(find_program("openssl", &openssl), "openssl (Debian package openssl) is needed");
    mwt_pki pki;
    est_pki(&pki);
    char ca_dir[300], p7[300], fresh[300], a[300], b[300];
    snprintf(ca_dir, sizeof ca_dir, "%s/ca", pki.dir);
    gw_proc g;
    start_gateway_est(&g, &pki, ca_dir);
    est_csr(&openssl, &pki, "dev-1-new", "/O=medwire/CN=dev-1", "");
    coap_run r;
    est_post(&r, &client, &pki, &g, "dev-1", "dev-1-new", "281");
    cr_assert_str_eq(r.code, "2.04", "%s", r.log);
    cr_assert_not_null(r.body, "%s", r.log);
    /* The PKCS#7 certs-only answer, read by OpenSSL: one certificate, for the new key, that
     * verifies against the CA, with dev-1's name. */
    snprintf(p7, sizeof p7, "%s/answer.p7", pki.dir);
    snprintf(fresh, sizeof fresh, "%s/dev-1-new.crt", pki.dir);
    write_bytes(p7, r.body, r.body_len);
    openssl_ok(&openssl, "pkcs7", "-inform", "DER", "-in", p7, "-print_certs", "-out", fresh, NULL);
    openssl_ok(&openssl, "verify", "-CAfile", mwt_pki_ca(&pki), "-purpose", "sslclient", fresh,
               NULL);
    snprintf(a, sizeof a, "%s/new.pub", pki.dir);
    snprintf(b, sizeof b, "%s/key.pub", pki.dir);
    openssl_ok(&openssl, "x509", "-in", fresh, "-noout", "-pubkey", "-out", a, NULL);
    openssl_ok(&openssl, "pkey", "-in", mwt_pki_key(&pki, "dev-1-new"), "-pubout", "-out", b, NULL);
    char *pa = mwt_read_file(a), *pb = mwt_read_file(b);
    cr_assert(pa && pb && strcmp(pa, pb) == 0, "the certificate is for the request's key");
    free(pa);
    free(pb);
    snprintf(a, sizeof a, "%s/subject", pki.dir);
    openssl_ok(&openssl, "x509", "-in", fresh, "-noout", "-subject", "-nameopt", "compat", "-out",
               a, NULL);
    pa = mwt_read_file(a);
    cr_assert(pa && strstr(pa, "/CN=dev-1"), "subject: %s", pa ? pa : "");
    free(pa);
    coap_run_free(&r);
    const char *renewed[] = {"\"event\":\"certificate_renewed\"", "\"device\":\"dev-1\"", NULL};
    cr_assert_eq(mwt_count_lines(g.audit, renewed), 1, "the renewal is audited");

    /* The new certificate opens a session; the old one, superseded, may not renew again. */
    uri_of(a, sizeof a, &g, "/.well-known/core");
    const char *get[] = {"-m", "get", NULL};
    run_client(&r, client.path, &pki, "dev-1-new", get, a);
    cr_assert_str_eq(r.code, "2.05", "the renewed certificate is accepted:\n%s", r.log);
    cr_assert(strstr(r.body ? r.body : "", "ace.est.sren"), "EST is listed: %s",
              r.body ? r.body : "");
    coap_run_free(&r);
    est_csr(&openssl, &pki, "dev-1-again", "/O=medwire/CN=dev-1", "");
    est_post(&r, &client, &pki, &g, "dev-1", "dev-1-again", "287");
    cr_assert_str_eq(r.code, "4.03", "the superseded certificate renews no more:\n%s", r.log);
    coap_run_free(&r);
    /* The first request again, as after a lost answer: the same certificate, not another. */
    est_post(&r, &client, &pki, &g, "dev-1", "dev-1-new", "287");
    cr_assert_str_eq(r.code, "2.04", "a retry gets its certificate:\n%s", r.log);
    snprintf(a, sizeof a, "%s/fresh.der", pki.dir);
    openssl_ok(&openssl, "x509", "-in", fresh, "-outform", "DER", "-out", a, NULL);
    size_t n = 0;
    char *first = read_bytes(a, &n);
    cr_assert(first && r.body && n == r.body_len && memcmp(first, r.body, n) == 0,
              "the retry's answer is the certificate issued first");
    free(first);
    coap_run_free(&r);
    snprintf(a, sizeof a, "%s/ca/index.txt", pki.dir);
    const char *dev1[] = {"/CN=dev-1", NULL};
    cr_assert_eq(mwt_count_lines(a, dev1), 2, "dev-1's first certificate and one renewal");
    stop_gateway(&g);
    const char *refused[] = {"\"event\":\"renewal_refused\"", "superseded", NULL};
    cr_assert_eq(mwt_count_lines(g.audit, refused), 1, "the refusal is audited with its reason");
}

/* A session renews only its own name, and only as a device; a revoked device not at all. */
/* @req IEC62443-CR1.8 IEC62443-CR2.1 */
Test(est, requests_for_another_name_or_role_and_from_a_revoked_device_are_refused, .timeout = 120)
{
    prog client, openssl;
    require_program("coap-client-openssl", &client);
    cr_assert(find_program("openssl", &openssl), "openssl (Debian package openssl) is needed");
    mwt_pki pki;
    est_pki(&pki);
    char ca_dir[300];
    snprintf(ca_dir, sizeof ca_dir, "%s/ca", pki.dir);
    gw_proc g;
    start_gateway_est(&g, &pki, ca_dir);
    est_csr(&openssl, &pki, "other", "/O=medwire/CN=dev-2", "");
    est_csr(&openssl, &pki, "server", "/O=medwire/CN=dev-1", "extendedKeyUsage=serverAuth");
    est_csr(&openssl, &pki, "ca-too", "/O=medwire/CN=dev-1", "basicConstraints=critical,CA:TRUE");
    static const char *const cases[] = {"other", "server", "ca-too"};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        coap_run r;
        est_post(&r, &client, &pki, &g, "dev-1", cases[i], "281");
        cr_assert_str_eq(r.code, "4.03", "%s:\n%s", cases[i], r.log);
        coap_run_free(&r);
    }
    /* Revoked at the CA (no CRL given to this gateway, so the session opens): the issuer
     * refuses it all the same. */
    const char *rev[] = {mwt_bin("medwire-pki"), "revoke", "--ca", ca_dir, "--id", "dev-1", NULL};
    cr_assert_eq(mwt_run(rev, NULL, NULL, 30000), 0);
    est_csr(&openssl, &pki, "after", "/O=medwire/CN=dev-1", "");
    coap_run r;
    est_post(&r, &client, &pki, &g, "dev-1", "after", "281");
    cr_assert_str_eq(r.code, "4.03", "a revoked device:\n%s", r.log);
    coap_run_free(&r);
    /* Not a request at all. */
    char junk[300];
    snprintf(junk, sizeof junk, "%s/junk.csr", pki.dir);
    write_bytes(junk, "\x30\x03\x02\x01\x00", 5);
    est_post(&r, &client, &pki, &g, "dev-2", "junk", "281");
    cr_assert_str_eq(r.code, "4.00", "%s", r.log);
    coap_run_free(&r);
    stop_gateway(&g);
    const char *lines[] = {"\"event\":\"renewal_refused\"", NULL};
    cr_assert_eq(mwt_count_lines(g.audit, lines), 5, "each refusal is audited");
    const char *issued[] = {"\"event\":\"certificate_renewed\"", NULL};
    cr_assert_eq(mwt_count_lines(g.audit, issued), 0);
}

/* An operator's revocation made while the gateway waits for the CA folder's lock (held here as
 * 'medwire-pki revoke' holds it): once this test process sees, in /proc/locks, the gateway
 * waiting for DIR/.lock, it marks dev-1 revoked in index.txt and lets the lock go. */
typedef struct revoker {
    char dir[300];
    int fd;    /* the lock, held by this process */
    bool done; /* the revocation is written */
    char why[200];
} revoker;

/* True once some process waits (a "->" line of /proc/locks) for the lock on inode @p ino. */
static bool lock_waited_for(unsigned long ino)
{
    FILE *f = fopen("/proc/locks", "r");
    if (f == NULL)
        return false;
    char line[256], tail[32];
    snprintf(tail, sizeof tail, ":%lu ", ino);
    bool seen = false;
    while (!seen && fgets(line, sizeof line, f))
        seen = strstr(line, "->") != NULL && strstr(line, tail) != NULL;
    fclose(f);
    return seen;
}

static void *revoke_while_locked(void *arg)
{
    revoker *rv = arg;
    struct stat st;
    char path[400], next[420];
    if (fstat(rv->fd, &st) != 0) {
        snprintf(rv->why, sizeof rv->why, "fstat of the lock failed");
        close(rv->fd);
        return NULL;
    }
    bool waited = false;
    for (int i = 0; i < 3000 && !(waited = lock_waited_for((unsigned long)st.st_ino)); i++)
        nanosleep(&(struct timespec){.tv_nsec = 10000000}, NULL); /* bounded at 30 s */
    snprintf(path, sizeof path, "%s/index.txt", rv->dir);
    snprintf(next, sizeof next, "%s.new", path);
    FILE *in = fopen(path, "r"), *out = fopen(next, "w");
    char line[512], when[80];
    time_t now = time(NULL);
    struct tm tm;
    gmtime_r(&now, &tm);
    /* UTCTime, as index.txt writes its dates (two-digit years) */
    snprintf(when, sizeof when, "%02d%02d%02d%02d%02d%02dZ", tm.tm_year % 100, tm.tm_mon + 1,
             tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec);
    while (waited && in && out && fgets(line, sizeof line, in)) {
        /* V<TAB>EXPIRY<TAB><TAB>SERIAL<TAB>unknown<TAB>SUBJECT: revoked, dated now. */
        char *rest = strstr(line, "\t\t");
        if (line[0] == 'V' && strstr(line, "/CN=dev-1\n") && rest != NULL)
            fprintf(out, "R%.*s\t%s%s", (int)(rest - line - 1), line + 1, when, rest + 1);
        else
            fputs(line, out);
    }
    rv->done = waited && in && out && fclose(out) == 0 && rename(next, path) == 0;
    if (in)
        fclose(in);
    if (!waited)
        snprintf(rv->why, sizeof rv->why, "the gateway never waited for the CA folder's lock");
    close(rv->fd); /* the lock goes */
    return NULL;
}

/* The CA folder's lock is held from the policy check to the record: a revocation made while
 * the gateway waits for it is seen, and the revoked device gets no certificate. */
/* @req IEC62443-CR1.8 */
Test(est, a_revocation_made_while_the_gateway_waits_for_the_ca_lock_is_seen, .timeout = 120)
{
    prog client, openssl;
    require_program("coap-client-openssl", &client);
    cr_assert(find_program("openssl", &openssl), "openssl (Debian package openssl) is needed");
    mwt_pki pki;
    est_pki(&pki);
    revoker rv = {.fd = -1};
    snprintf(rv.dir, sizeof rv.dir, "%s/ca", pki.dir);
    gw_proc g;
    start_gateway_est(&g, &pki, rv.dir);
    est_csr(&openssl, &pki, "dev-1-new", "/O=medwire/CN=dev-1", "");
    char lock[320];
    snprintf(lock, sizeof lock, "%s/.lock", rv.dir);
    rv.fd = open(lock, O_RDWR | O_CREAT, 0600);
    cr_assert_geq(rv.fd, 0);
    struct flock fl = {.l_type = F_WRLCK, .l_whence = SEEK_SET};
    cr_assert_eq(fcntl(rv.fd, F_SETLKW, &fl), 0);
    pthread_t t;
    cr_assert_eq(pthread_create(&t, NULL, revoke_while_locked, &rv), 0);
    coap_run r;
    est_post(&r, &client, &pki, &g, "dev-1", "dev-1-new", "287");
    pthread_join(t, NULL);
    cr_assert(rv.done, "%s", rv.why);
    cr_assert_str_eq(r.code, "4.03", "revoked while waiting:\n%s", r.log);
    coap_run_free(&r);
    stop_gateway(&g);
    const char *refused[] = {"\"event\":\"renewal_refused\"", "is revoked", NULL};
    cr_assert_eq(mwt_count_lines(g.audit, refused), 1, "the refusal names the revocation");
    const char *issued[] = {"\"event\":\"certificate_renewed\"", NULL};
    cr_assert_eq(mwt_count_lines(g.audit, issued), 0);
}

/* /crts answers the CA certificate, as one DER certificate or as PKCS#7; a gateway without
 * --est-ca serves neither resource. */
Test(est, crts_answers_the_ca_and_a_gateway_without_est_ca_serves_none, .timeout = 120)
{
    prog client, openssl;
    require_program("coap-client-openssl", &client);
    cr_assert(find_program("openssl", &openssl), "openssl (Debian package openssl) is needed");
    mwt_pki pki;
    est_pki(&pki);
    char ca_dir[300], uri[128], der[300], pem[300];
    snprintf(ca_dir, sizeof ca_dir, "%s/ca", pki.dir);
    gw_proc g;
    start_gateway_est(&g, &pki, ca_dir);
    uri_of(uri, sizeof uri, &g, "/.well-known/est/crts");
    const char *one[] = {"-m", "get", "-A", "287", NULL};
    coap_run r;
    run_client(&r, client.path, &pki, "dev-1", one, uri);
    cr_assert_str_eq(r.code, "2.05", "%s", r.log);
    snprintf(der, sizeof der, "%s/crts.der", pki.dir);
    snprintf(pem, sizeof pem, "%s/crts.pem", pki.dir);
    write_bytes(der, r.body ? r.body : "", r.body_len);
    openssl_ok(&openssl, "x509", "-inform", "DER", "-in", der, "-out", pem, NULL);
    char *got = mwt_read_file(pem), *want = mwt_read_file(mwt_pki_ca(&pki));
    cr_assert(got && want && strcmp(got, want) == 0, "/crts is the CA certificate");
    free(got);
    free(want);
    coap_run_free(&r);
    const char *p7[] = {"-m", "get", NULL};
    run_client(&r, client.path, &pki, "dev-1", p7, uri);
    cr_assert_str_eq(r.code, "2.05", "%s", r.log);
    snprintf(der, sizeof der, "%s/crts.p7", pki.dir);
    write_bytes(der, r.body ? r.body : "", r.body_len);
    openssl_ok(&openssl, "pkcs7", "-inform", "DER", "-in", der, "-print_certs", "-out", pem, NULL);
    coap_run_free(&r);
    /* What EST does not take: another format, a body of another kind, another method. */
    const char *json[] = {"-m", "get", "-A", "50", NULL};
    run_client(&r, client.path, &pki, "dev-1", json, uri);
    cr_assert_str_eq(r.code, "4.06", "%s", r.log);
    coap_run_free(&r);
    char sren[128];
    uri_of(sren, sizeof sren, &g, "/.well-known/est/sren");
    const char *text[] = {"-m", "post", "-t", "0", "-e", "dev-1", NULL};
    run_client(&r, client.path, &pki, "dev-1", text, sren);
    cr_assert_str_eq(r.code, "4.15", "%s", r.log);
    coap_run_free(&r);
    run_client(&r, client.path, &pki, "dev-1", p7, sren);
    cr_assert_str_eq(r.code, "4.05", "%s", r.log);
    coap_run_free(&r);
    stop_gateway(&g);

    start_gateway(&g, &pki);
    uri_of(uri, sizeof uri, &g, "/.well-known/est/crts");
    run_client(&r, client.path, &pki, "dev-1", p7, uri);
    cr_assert_str_eq(r.code, "4.04", "%s", r.log);
    coap_run_free(&r);
    stop_gateway(&g);
}

/* ---- EST with the hospital's CA elsewhere: --est-ca-cmd runs OpenSSL's x509 -req ---- */

/* DIR/ca.sh, the "hospital CA" the gateway runs: it notes each run in DIR/calls, refuses dev-2
 * (exit 1), and signs everything else with @p ca_crt and @p ca_key using OpenSSL. */
static void est_cmd_script(const prog *openssl, const mwt_pki *p, const char *ca_crt,
                           const char *ca_key, char *cmd, size_t cap)
{
    char path[300], ext[300], text[2400];
    snprintf(ext, sizeof ext, "%s/ext.cnf", p->dir);
    static const char exts[] = "basicConstraints=critical,CA:FALSE\n"
                               "keyUsage=critical,digitalSignature\n"
                               "extendedKeyUsage=clientAuth\n";
    write_bytes(ext, exts, sizeof exts - 1);
    snprintf(path, sizeof path, "%s/ca.sh", p->dir);
    int n = snprintf(text, sizeof text,
                     "echo \"$MEDWIRE_DEVICE_ID $MEDWIRE_CERT_SERIAL\" >> '%s/calls'\n"
                     "if [ \"$MEDWIRE_DEVICE_ID\" = dev-2 ]; then\n"
                     "  echo 'dev-2 is not on the ward list' >&2; exit 1\n"
                     "fi\n"
                     "exec '%s' x509 -req -CA '%s' -CAkey '%s' -CAserial '%s/serial' "
                     "-CAcreateserial -days 30 -extfile '%s'\n",
                     p->dir, openssl->path, ca_crt, ca_key, p->dir, ext);
    cr_assert(n > 0 && (size_t)n < sizeof text);
    write_bytes(path, text, (size_t)n);
    snprintf(cmd, cap, "sh '%s'", path);
}

/* POSTs the request as est_post does, again while the gateway answers 5.03 (the command still
 * runs), for up to 30 s; the number of 5.03 answers in @p waits. */
static void est_post_until_decided(coap_run *r, const prog *client, const mwt_pki *p,
                                   const gw_proc *g, const char *device, const char *csr_name,
                                   int *waits)
{
    *waits = 0;
    for (int i = 0; i < 120; i++) {
        est_post(r, client, p, g, device, csr_name, "287");
        if (strcmp(r->code, "5.03") != 0)
            return;
        (*waits)++;
        coap_run_free(r);
        mwt_sleep_ms(250);
    }
    cr_assert_fail("still 5.03 after 30 s");
}

/* @req IEC62443-CR1.5 IEC62443-CR1.8 */
Test(est_cmd, the_hospitals_ca_command_issues_after_a_5_03_and_refuses_with_its_reason,
     .timeout = 180)
{
    prog client, openssl;
    require_program("coap-client-openssl", &client);
    cr_assert(find_program("openssl", &openssl), "openssl (Debian package openssl) is needed");
    mwt_pki pki;
    est_pki(&pki);
    char ca_crt[300], ca_key[300], cmd[400], fresh[300], a[300], b[300];
    snprintf(ca_crt, sizeof ca_crt, "%s/ca/ca.crt", pki.dir);
    snprintf(ca_key, sizeof ca_key, "%s/ca/ca.key", pki.dir);
    est_cmd_script(&openssl, &pki, ca_crt, ca_key, cmd, sizeof cmd);
    gw_proc g;
    const char *extra[] = {"--est-ca-cmd", cmd, "--est-retry-after", "7", NULL};
    start_gateway_with(&g, &pki, extra);
    est_csr(&openssl, &pki, "dev-1-new", "/O=medwire/CN=dev-1", "");
    coap_run r;
    /* First, not decided: 5.03 with the Max-Age to wait. */
    est_post(&r, &client, &pki, &g, "dev-1", "dev-1-new", "287");
    cr_assert_str_eq(r.code, "5.03", "%s", r.log);
    cr_assert(strstr(r.log, "Max-Age:7"), "the 5.03 says when to ask again:\n%s", r.log);
    coap_run_free(&r);
    int waits = 0;
    est_post_until_decided(&r, &client, &pki, &g, "dev-1", "dev-1-new", &waits);
    cr_assert_str_eq(r.code, "2.04", "%s", r.log);
    snprintf(a, sizeof a, "%s/answer.der", pki.dir);
    snprintf(fresh, sizeof fresh, "%s/dev-1-new.crt", pki.dir);
    write_bytes(a, r.body ? r.body : "", r.body_len);
    coap_run_free(&r);
    openssl_ok(&openssl, "x509", "-inform", "DER", "-in", a, "-out", fresh, NULL);
    openssl_ok(&openssl, "verify", "-CAfile", mwt_pki_ca(&pki), "-purpose", "sslclient", fresh,
               NULL);
    snprintf(a, sizeof a, "%s/new.pub", pki.dir);
    snprintf(b, sizeof b, "%s/key.pub", pki.dir);
    openssl_ok(&openssl, "x509", "-in", fresh, "-noout", "-pubkey", "-out", a, NULL);
    openssl_ok(&openssl, "pkey", "-in", mwt_pki_key(&pki, "dev-1-new"), "-pubout", "-out", b, NULL);
    char *pa = mwt_read_file(a), *pb = mwt_read_file(b);
    cr_assert(pa && pb && strcmp(pa, pb) == 0, "the certificate is for the request's key");
    free(pa);
    free(pb);
    /* The new certificate opens a session. */
    uri_of(a, sizeof a, &g, "/.well-known/core");
    const char *get[] = {"-m", "get", NULL};
    run_client(&r, client.path, &pki, "dev-1-new", get, a);
    cr_assert_str_eq(r.code, "2.05", "the renewed certificate is accepted:\n%s", r.log);
    coap_run_free(&r);
    /* The same request again (an answer lost) gets the same certificate, without a new run. */
    est_post(&r, &client, &pki, &g, "dev-1", "dev-1-new", "287");
    cr_assert_str_eq(r.code, "2.04", "%s", r.log);
    coap_run_free(&r);
    snprintf(a, sizeof a, "%s/calls", pki.dir);
    const char *dev1[] = {"dev-1 ", NULL};
    cr_assert_eq(mwt_count_lines(a, dev1), 1, "one run of the command for dev-1's request");
    char *calls = mwt_read_file(a);
    cr_assert(calls && strlen(calls) > strlen("dev-1 \n"),
              "the command is told the serial it replaces: %s", calls ? calls : "");
    free(calls);
    /* The command refuses dev-2: 4.03, with its reason audited. */
    est_csr(&openssl, &pki, "dev-2-new", "/O=medwire/CN=dev-2", "");
    est_post_until_decided(&r, &client, &pki, &g, "dev-2", "dev-2-new", &waits);
    cr_assert_str_eq(r.code, "4.03", "%s", r.log);
    cr_assert_gt(waits, 0, "the command's refusal, too, comes after a 5.03");
    coap_run_free(&r);
    stop_gateway(&g);
    const char *renewed[] = {"\"event\":\"certificate_renewed\"", "\"device\":\"dev-1\"",
                             "by the CA command", NULL};
    cr_assert_eq(mwt_count_lines(g.audit, renewed), 2, "the renewal and its repeat are audited");
    const char *refused[] = {"\"event\":\"renewal_refused\"", "\"device\":\"dev-2\"",
                             "dev-2 is not on the ward list", NULL};
    cr_assert_eq(mwt_count_lines(g.audit, refused), 1, "the command's reason is audited");
}

/* A command that signs with another CA, or does not finish, gives the device nothing that
 * would lock it out: 5.00, and the audit trail says why. */
/* @req IEC62443-CR1.8 */
Test(est_cmd, a_certificate_of_another_ca_or_a_command_past_its_time_is_refused_5_00,
     .timeout = 180)
{
    prog client, openssl;
    require_program("coap-client-openssl", &client);
    cr_assert(find_program("openssl", &openssl), "openssl (Debian package openssl) is needed");
    mwt_pki pki;
    est_pki(&pki);
    char other_key[300], other_crt[300], cmd[400], slow[700];
    snprintf(other_key, sizeof other_key, "%s/other-ca.key", pki.dir);
    snprintf(other_crt, sizeof other_crt, "%s/other-ca.crt", pki.dir);
    openssl_ok(&openssl, "ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", other_key,
               NULL);
    openssl_ok(&openssl, "req", "-x509", "-new", "-key", other_key, "-subj", "/CN=Another CA",
               "-days", "30", "-out", other_crt, NULL);
    est_cmd_script(&openssl, &pki, other_crt, other_key, cmd, sizeof cmd);
    /* dev-2 is not refused by this one: its run sleeps past the timeout. */
    snprintf(slow, sizeof slow, "[ \"$MEDWIRE_DEVICE_ID\" = dev-2 ] && exec sleep 60; %s", cmd);
    gw_proc g;
    const char *extra[] = {"--est-ca-cmd", slow, "--est-ca-cmd-timeout", "1", NULL};
    start_gateway_with(&g, &pki, extra);
    est_csr(&openssl, &pki, "dev-1-new", "/O=medwire/CN=dev-1", "");
    est_csr(&openssl, &pki, "dev-2-new", "/O=medwire/CN=dev-2", "");
    coap_run r;
    int waits = 0;
    est_post_until_decided(&r, &client, &pki, &g, "dev-1", "dev-1-new", &waits);
    cr_assert_str_eq(r.code, "5.00", "%s", r.log);
    cr_assert_null(strstr(r.log, "CA file"), "the device is not told the gateway's files");
    coap_run_free(&r);
    /* A failure is not kept: the same request runs the command again. */
    est_post(&r, &client, &pki, &g, "dev-1", "dev-1-new", "287");
    cr_assert_str_eq(r.code, "5.03", "%s", r.log);
    coap_run_free(&r);
    est_post_until_decided(&r, &client, &pki, &g, "dev-2", "dev-2-new", &waits);
    cr_assert_str_eq(r.code, "5.00", "%s", r.log);
    cr_assert_geq(waits, 1, "5.03 while the command ran");
    coap_run_free(&r);
    stop_gateway(&g);
    const char *foreign[] = {"\"event\":\"renewal_refused\"", "\"device\":\"dev-1\"",
                             "does not verify against the gateway's CA file", NULL};
    cr_assert_eq(mwt_count_lines(g.audit, foreign), 1, "%s", g.audit);
    const char *late[] = {"\"event\":\"renewal_refused\"", "\"device\":\"dev-2\"",
                          "did not finish within 1 s", NULL};
    cr_assert_eq(mwt_count_lines(g.audit, late), 1);
    const char *issued[] = {"\"event\":\"certificate_renewed\"", NULL};
    cr_assert_eq(mwt_count_lines(g.audit, issued), 0);
}

/* ---- the CA's CRL for devices: coap-client fetches /crl, OpenSSL checks what came ---- */

/* @req IEC62443-CR2.1 */
Test(crl_resource, the_gateway_serves_its_crl_block_wise_as_the_ca_signed_it, .timeout = 180)
{
    prog client, openssl;
    require_program("coap-client-openssl", &client);
    cr_assert(find_program("openssl", &openssl), "openssl (Debian package openssl) is needed");
    mwt_pki pki;
    est_pki(&pki);
    char ca_dir[300], crl[300], body[300], uri[128], id[32];
    snprintf(ca_dir, sizeof ca_dir, "%s/ca", pki.dir);
    snprintf(crl, sizeof crl, "%s/ca/crl.pem", pki.dir);
    snprintf(body, sizeof body, "%s/got.crl", pki.dir);
    const char *mwpki = mwt_bin("medwire-pki");
    /* Enough revocations for more than one 1024-byte block. */
    for (int i = 0; i < 40; i++) {
        snprintf(id, sizeof id, "gone-%d", i);
        const char *is[] = {mwpki,  "issue", "--ca",  ca_dir,  "--role", "device",
                            "--id", id,      "--out", pki.dir, NULL};
        cr_assert_eq(mwt_run(is, NULL, NULL, 30000), 0);
        const char *rv[] = {mwpki, "revoke", "--ca", ca_dir, "--id", id, NULL};
        cr_assert_eq(mwt_run(rv, NULL, NULL, 30000), 0);
    }
    gw_proc g;
    const char *extra[] = {"--crl", crl, NULL};
    start_gateway_with(&g, &pki, extra);
    uri_of(uri, sizeof uri, &g, "/crl");
    const char *get[] = {"-m", "get", "-A", "65103", NULL};
    coap_run r;
    run_client(&r, client.path, &pki, "dev-1", get, uri);
    cr_assert_str_eq(r.code, "2.05", "%s", r.log);
    cr_assert_gt(r.body_len, 1024u, "the whole CRL, reassembled from its blocks:\n%s", r.log);
    write_bytes(body, r.body, r.body_len);
    coap_run_free(&r);
    /* OpenSSL: a DER CRL, signed by the CA, listing the 40. */
    openssl_ok(&openssl, "crl", "-inform", "DER", "-in", body, "-CAfile", mwt_pki_ca(&pki),
               "-noout", NULL);
    char text[300];
    snprintf(text, sizeof text, "%s/got.txt", pki.dir);
    openssl_ok(&openssl, "crl", "-inform", "DER", "-in", body, "-noout", "-text", "-out", text,
               NULL);
    const char *serials[] = {"Serial Number:", NULL};
    cr_assert_eq(mwt_count_lines(text, serials), 40);
    const char *put[] = {"-m", "post", "-e", "x", NULL};
    run_client(&r, client.path, &pki, "dev-1", put, uri);
    cr_assert_str_eq(r.code, "4.05", "%s", r.log);
    coap_run_free(&r);
    stop_gateway(&g);

    start_gateway(&g, &pki);
    uri_of(uri, sizeof uri, &g, "/crl");
    run_client(&r, client.path, &pki, "dev-1", get, uri);
    cr_assert_str_eq(r.code, "4.04", "a gateway without --crl has none: %s", r.log);
    coap_run_free(&r);
    stop_gateway(&g);
}

/* ---- the suites: OpenSSL's own DTLS client, which can be told which suites to offer ---- */

/* Runs openssl s_client as dev-1 offering only @p suite; stdin is /dev/null, so it closes
 * right after the handshake. Returns what it printed. */
static char *s_client(const prog *openssl, const mwt_pki *pki, const gw_proc *g, const char *suite)
{
    char dir[256], out[300], err[300], addr[64], ca[300], crt[300], key[300];
    snprintf(dir, sizeof dir, "%s", mwt_tmpdir());
    snprintf(out, sizeof out, "%s/s_client.out", dir);
    snprintf(err, sizeof err, "%s/s_client.err", dir);
    snprintf(addr, sizeof addr, "127.0.0.1:%d", g->port);
    snprintf(ca, sizeof ca, "%s", mwt_pki_ca(pki));
    snprintf(crt, sizeof crt, "%s", mwt_pki_crt(pki, "dev-1"));
    snprintf(key, sizeof key, "%s", mwt_pki_key(pki, "dev-1"));
    const char *argv[] = {openssl->path,
                          "s_client",
                          "-dtls1_2",
                          "-cipher",
                          suite,
                          "-cert",
                          crt,
                          "-key",
                          key,
                          "-CAfile",
                          ca,
                          "-verify_hostname",
                          "gateway",
                          "-verify_return_error",
                          "-connect",
                          addr,
                          NULL};
    cr_assert_neq(mwt_run(argv, out, err, CLIENT_RUN_MS), -1, "openssl s_client hung");
    char *o = mwt_read_file(out), *e = mwt_read_file(err);
    cr_assert(o != NULL && e != NULL);
    size_t need = strlen(o) + strlen(e) + 2;
    char *text = malloc(need);
    cr_assert_not_null(text);
    snprintf(text, need, "%s\n%s", o, e);
    free(o);
    free(e);
    return text;
}

Test(openssl_s_client, negotiates_aes_128_gcm_with_the_gateway_when_offered_only_that,
     .timeout = 60)
{
    prog openssl;
    if (!find_program("openssl", &openssl))
        cr_skip_test("openssl is not installed (Debian package openssl); skipping");
    mwt_pki pki;
    cr_assert(mwt_pki_make(&pki));
    gw_proc g;
    start_gateway(&g, &pki);
    char *text = s_client(&openssl, &pki, &g, "ECDHE-ECDSA-AES128-GCM-SHA256");
    stop_gateway(&g);
    cr_assert(strstr(text, "Cipher is ECDHE-ECDSA-AES128-GCM-SHA256") != NULL, "%s", text);
    const char *est[] = {"\"event\":\"session_established\"", "\"device\":\"dev-1\"",
                         "ECDHE-ECDSA-AES128-GCM-SHA256", NULL};
    cr_assert_eq(mwt_count_lines(g.audit, est), 1, "the gateway audits the GCM session");
    free(text);
}

Test(openssl_s_client, is_refused_by_the_gateway_when_offering_only_aes_256_gcm, .timeout = 60)
{
    prog openssl;
    if (!find_program("openssl", &openssl))
        cr_skip_test("openssl is not installed (Debian package openssl); skipping");
    mwt_pki pki;
    cr_assert(mwt_pki_make(&pki));
    gw_proc g;
    start_gateway(&g, &pki);
    char *text = s_client(&openssl, &pki, &g, "ECDHE-ECDSA-AES256-GCM-SHA384");
    stop_gateway(&g);
    cr_assert(strstr(text, "Cipher is (NONE)") != NULL, "%s", text);
    const char *refused[] = {"\"event\":\"handshake_failed\"", "\"code\":-501", NULL};
    cr_assert_eq(mwt_count_lines(g.audit, refused), 1, "no suite in common, audited");
    free(text);
}

/* ---- the server direction: medwire's DTLS and CoAP layers against libcoap's coap-server ---- */

typedef struct srv_proc {
    mwt_proc proc;
    char dir[256];
    char out[300], err[300];
    int port; /* CoAP over UDP; coaps (DTLS) is port + 1 */
} srv_proc;

static bool bind_ok(int type, int port, int *out_port)
{
    int fd = socket(AF_INET, type, 0);
    if (fd < 0)
        return false;
    struct sockaddr_in a;
    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    a.sin_port = htons((uint16_t)port);
    bool ok = bind(fd, (struct sockaddr *)&a, sizeof a) == 0;
    if (ok && out_port != NULL) {
        socklen_t len = sizeof a;
        ok = getsockname(fd, (struct sockaddr *)&a, &len) == 0;
        *out_port = ntohs(a.sin_port);
    }
    close(fd);
    return ok;
}

/* A port P the system just gave us, with P+1 free too, for UDP and TCP (coap-server opens
 * CoAP and CoAP over TCP on P, DTLS and TLS on P+1). Released before the server binds it, so
 * another process may still take it: start_server retries on collision. */
static int pick_port_pair(void)
{
    for (int i = 0; i < 100; i++) {
        int p = 0;
        if (!bind_ok(SOCK_DGRAM, 0, &p) || p <= 0 || p >= 65535)
            continue;
        if (bind_ok(SOCK_DGRAM, p + 1, NULL) && bind_ok(SOCK_STREAM, p, NULL) &&
            bind_ok(SOCK_STREAM, p + 1, NULL))
            return p;
    }
    return -1;
}

static bool file_has(const char *path, const char *needle)
{
    char *t = mwt_read_file(path);
    bool has = t != NULL && strstr(t, needle) != NULL;
    free(t);
    return has;
}

/* Starts @p program with the "gateway" certificate (so medwire's name and role checks pass),
 * requiring a client certificate from our CA (-C). */
static void start_server(srv_proc *s, const char *program, const mwt_pki *pki)
{
    snprintf(s->dir, sizeof s->dir, "%s", mwt_tmpdir());
    snprintf(s->out, sizeof s->out, "%s/server.out", s->dir);
    snprintf(s->err, sizeof s->err, "%s/server.err", s->dir);
    char ca[300], crt[300], key[300], port[16];
    snprintf(ca, sizeof ca, "%s", mwt_pki_ca(pki));
    snprintf(crt, sizeof crt, "%s", mwt_pki_crt(pki, "gateway"));
    snprintf(key, sizeof key, "%s", mwt_pki_key(pki, "gateway"));
    for (int attempt = 0; attempt < 5; attempt++) {
        s->port = pick_port_pair();
        cr_assert_gt(s->port, 0, "no free port pair on 127.0.0.1");
        snprintf(port, sizeof port, "%d", s->port);
        /* -v 7 logs "created ... endpoint" for each socket it opens: the readiness signal. */
        const char *argv[] = {program, "-A", "127.0.0.1", "-p", port, "-v", "7",
                              "-c",    crt,  "-j",        key,  "-C", ca,   NULL};
        cr_assert(mwt_proc_start(&s->proc, argv, s->out, s->err), "cannot start %s", program);
        for (int waited = 0; waited < START_MS; waited += 20) {
            /* The TLS endpoint is the last of the four it opens (UDP, DTLS, TCP, TLS). */
            if (file_has(s->out, "created TLS"))
                return;
            /* libcoap keeps running when a bind fails: a collision shows only in its log. */
            if (file_has(s->err, "cannot create") || mwt_proc_wait(&s->proc, 0) >= 0)
                break;
            mwt_sleep_ms(20);
        }
        char *e = mwt_read_file(s->err);
        cr_log_warn("%s on port %d did not come up (attempt %d): %s", program, s->port, attempt + 1,
                    e ? e : "");
        free(e);
        (void)mwt_proc_stop(&s->proc, SIGTERM);
    }
    cr_assert_fail("%s did not start in 5 attempts", program);
}

static void stop_server(srv_proc *s)
{
    (void)mwt_proc_stop(&s->proc, SIGTERM);
}

/* What mw-coap-request printed. */
typedef struct mw_run {
    int rc;
    char *out, *err;
} mw_run;

static void run_medwire(mw_run *r, const srv_proc *s, const mwt_pki *pki, const char *server_name,
                        const char *const extra[])
{
    char dir[256], out[300], err[300], addr[64];
    snprintf(dir, sizeof dir, "%s", mwt_tmpdir());
    snprintf(out, sizeof out, "%s/stdout", dir);
    snprintf(err, sizeof err, "%s/stderr", dir);
    snprintf(addr, sizeof addr, "127.0.0.1:%d", s->port + 1);
    char ca[300], crt[300], key[300];
    snprintf(ca, sizeof ca, "%s", mwt_pki_ca(pki));
    snprintf(crt, sizeof crt, "%s", mwt_pki_crt(pki, "dev-1"));
    snprintf(key, sizeof key, "%s", mwt_pki_key(pki, "dev-1"));
    const char *argv[32];
    size_t n = 0;
    argv[n++] = mwt_bin("mw-coap-request");
    argv[n++] = "--server";
    argv[n++] = addr;
    argv[n++] = "--server-name";
    argv[n++] = server_name;
    argv[n++] = "--ca";
    argv[n++] = ca;
    argv[n++] = "--cert";
    argv[n++] = crt;
    argv[n++] = "--key";
    argv[n++] = key;
    argv[n++] = "--timeout-s";
    argv[n++] = "20";
    for (size_t i = 0; extra != NULL && extra[i] != NULL; i++)
        argv[n++] = extra[i];
    argv[n] = NULL;
    cr_assert_lt(n, sizeof argv / sizeof argv[0]);
    r->rc = mwt_run(argv, out, err, CLIENT_RUN_MS);
    r->out = mwt_read_file(out);
    r->err = mwt_read_file(err);
    cr_assert_not_null(r->out);
    cr_assert_not_null(r->err);
}

static void mw_run_free(mw_run *r)
{
    free(r->out);
    free(r->err);
}

/* Starts @p program, sends one request from medwire's stack, and checks the response code. */
static void request(const char *program, const char *const extra[], const char *code, mw_run *r)
{
    prog server;
    require_program(program, &server);
    mwt_pki pki;
    cr_assert(mwt_pki_make(&pki));
    srv_proc s;
    start_server(&s, server.path, &pki);
    run_medwire(r, &s, &pki, "gateway", extra);
    stop_server(&s);
    cr_assert_eq(r->rc, 0, "mw-coap-request against %s failed: %s%s", program, r->out, r->err);
    const char *session = strstr(r->out, "session: ");
    cr_assert_not_null(session, "%s", r->out);
    bool v1 = false;
    for (size_t i = 0; i < sizeof V1_SUITES / sizeof V1_SUITES[0]; i++) {
        char line[96];
        snprintf(line, sizeof line, "session: %s peer gateway\n", V1_SUITES[i]);
        v1 = v1 || strncmp(session, line, strlen(line)) == 0;
    }
    cr_assert(v1, "a protocol v1 suite with the gateway certificate: %s", r->out);
    char want[32];
    snprintf(want, sizeof want, "response: %s\n", code);
    cr_assert(strstr(r->out, want) != NULL, "%s: expected %s, got:\n%s%s", program, code, r->out,
              r->err);
    const char *nl = strchr(session, '\n');
    cr_log_info("medwire -> %s: %.*s", program, (int)(nl - session), session);
}

static void root_gets_2_05(const char *program)
{
    const char *extra[] = {"--method", "get", "--path", "/", NULL};
    mw_run r;
    request(program, extra, "2.05", &r);
    cr_assert(strstr(r.out, "payload: This is a test server made with libcoap") != NULL, "%s",
              r.out);
    mw_run_free(&r);
}

static void unknown_path_gets_4_04_from_server(const char *program)
{
    const char *extra[] = {"--method", "get", "--path", "/nonexistent", NULL};
    mw_run r;
    request(program, extra, "4.04", &r);
    mw_run_free(&r);
}

static void post_to_time_gets_4_05(const char *program)
{
    /* /time takes GET and PUT (and DELETE) but not POST. */
    const char *extra[] = {"--method", "post", "--path", "/time", NULL};
    mw_run r;
    request(program, extra, "4.05", &r);
    mw_run_free(&r);
}

static void put_with_body_gets_2_04(const char *program)
{
    char dir[256], body[300];
    snprintf(dir, sizeof dir, "%s", mwt_tmpdir());
    snprintf(body, sizeof body, "%s/body", dir);
    FILE *f = fopen(body, "w");
    cr_assert_not_null(f);
    fputs("1700000000", f);
    fclose(f);
    const char *extra[] = {"--method",         "put", "--path", "/time", "--payload-file", body,
                           "--content-format", "0",   NULL};
    mw_run r;
    request(program, extra, "2.04", &r);
    mw_run_free(&r);
}

static void well_known_core_is_link_format(const char *program)
{
    const char *extra[] = {"--method", "get", "--path", "/.well-known/core", NULL};
    mw_run r;
    request(program, extra, "2.05", &r);
    cr_assert(strstr(r.out, "content-format: 40\n") != NULL, "%s", r.out);
    cr_assert(strstr(r.out, "</time>") != NULL, "%s", r.out);
    mw_run_free(&r);
}

static void large_resource_comes_block_wise(const char *program)
{
    /* /example_data is 1500 bytes: the first response carries Block2 0, more, 1024 bytes. */
    const char *extra[] = {"--method", "get", "--path", "/example_data", NULL};
    mw_run r;
    request(program, extra, "2.05", &r);
    cr_assert(strstr(r.out, "block2: 0/1/1024\n") != NULL, "%s", r.out);
    mw_run_free(&r);
}

static void gcm_alone_is_negotiated(const char *program)
{
    const char *extra[] = {"--suite", "gcm", "--path", "/", NULL};
    mw_run r;
    request(program, extra, "2.05", &r);
    cr_assert(strstr(r.out, "session: ECDHE-ECDSA-AES128-GCM-SHA256 peer gateway\n") != NULL, "%s",
              r.out);
    mw_run_free(&r);
}

static void another_name_is_refused(const char *program)
{
    prog server;
    require_program(program, &server);
    mwt_pki pki;
    cr_assert(mwt_pki_make(&pki));
    srv_proc s;
    start_server(&s, server.path, &pki);
    const char *extra[] = {"--path", "/", NULL};
    mw_run r;
    run_medwire(&r, &s, &pki, "ward-7-gateway", extra);
    stop_server(&s);
    cr_assert_eq(r.rc, 1, "medwire must refuse: %s%s", r.out, r.err);
    cr_assert(strstr(r.out, "response:") == NULL, "no request may be sent: %s", r.out);
    cr_assert(strstr(r.err, "-322") != NULL, "wolfSSL's name mismatch: %s", r.err);
    mw_run_free(&r);
}

#define SERVER_TESTS(suite, program)                                                               \
    Test(suite, answers_get_of_the_root_with_2_05_over_medwire_dtls, .timeout = 60)                \
    {                                                                                              \
        root_gets_2_05(program);                                                                   \
    }                                                                                              \
    Test(suite, answers_get_of_an_unknown_path_with_4_04, .timeout = 60)                           \
    {                                                                                              \
        unknown_path_gets_4_04_from_server(program);                                               \
    }                                                                                              \
    Test(suite, answers_post_to_a_resource_that_does_not_allow_it_with_4_05, .timeout = 60)        \
    {                                                                                              \
        post_to_time_gets_4_05(program);                                                           \
    }                                                                                              \
    Test(suite, answers_a_put_with_a_body_with_2_04, .timeout = 60)                                \
    {                                                                                              \
        put_with_body_gets_2_04(program);                                                          \
    }                                                                                              \
    Test(suite, lists_its_resources_in_link_format, .timeout = 60)                                 \
    {                                                                                              \
        well_known_core_is_link_format(program);                                                   \
    }                                                                                              \
    Test(suite, sends_a_large_resource_block_wise, .timeout = 60)                                  \
    {                                                                                              \
        large_resource_comes_block_wise(program);                                                  \
    }                                                                                              \
    Test(suite, negotiates_aes_128_gcm_when_medwire_offers_only_that, .timeout = 60)               \
    {                                                                                              \
        gcm_alone_is_negotiated(program);                                                          \
    }                                                                                              \
    Test(suite, is_refused_by_medwire_when_its_certificate_names_another_gateway, .timeout = 60)   \
    {                                                                                              \
        another_name_is_refused(program);                                                          \
    }

SERVER_TESTS(coap_server_openssl, "coap-server-openssl")
SERVER_TESTS(coap_server_gnutls, "coap-server-gnutls")
