/* SPDX-License-Identifier: Apache-2.0 */
/* test_fhir_gateway.c -- the real medwire-gateway with --format fhir and a real device: its
 * whole output and audit files pass two FHIR R4 validators written elsewhere. */
#include <criterion/criterion.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fhir/validator.h"
#include "support/pki.h"
#include "support/proc.h"

/* Lines of @p path, and how many start with @p prefix. */
static void count_lines(const char *path, const char *prefix, size_t *lines, size_t *matching)
{
    char *text = mwt_read_file(path);
    cr_assert_not_null(text, "%s is missing", path);
    *lines = *matching = 0;
    for (char *line = text; *line != '\0';) {
        char *end = strchr(line, '\n');
        cr_assert_not_null(end, "%s: the last line is not terminated", path);
        (*lines)++;
        *matching += strncmp(line, prefix, strlen(prefix)) == 0;
        line = end + 1;
    }
    free(text);
}

Test(fhir_gateway, a_device_session_comes_out_as_valid_fhir_r4, .timeout = 240)
{
    mwt_pki pki;
    cr_assert(mwt_pki_make(&pki));
    char dir[256], out[300], aud[300], port_file[300], store[300], dev_err[300];
    snprintf(dir, sizeof dir, "%s", mwt_tmpdir());
    snprintf(out, sizeof out, "%s/out.ndjson", dir);
    snprintf(aud, sizeof aud, "%s/audit.ndjson", dir);
    snprintf(port_file, sizeof port_file, "%s/port", dir);
    snprintf(store, sizeof store, "%s/store.db", dir);
    snprintf(dev_err, sizeof dev_err, "%s/device.err", dir);

    char ca[300], crt[300], key[300];
    snprintf(ca, sizeof ca, "%s", mwt_pki_ca(&pki));
    snprintf(crt, sizeof crt, "%s", mwt_pki_crt(&pki, "gateway"));
    snprintf(key, sizeof key, "%s", mwt_pki_key(&pki, "gateway"));
    const char *gw_argv[] = {mwt_bin("medwire-gateway"),
                             "--listen",
                             "127.0.0.1:0",
                             "--ca",
                             ca,
                             "--cert",
                             crt,
                             "--key",
                             key,
                             "--out",
                             out,
                             "--audit",
                             aud,
                             "--store",
                             store,
                             "--port-file",
                             port_file,
                             "--format",
                             "fhir",
                             NULL};
    mwt_proc gw;
    cr_assert(mwt_proc_start(&gw, gw_argv, NULL, NULL));
    cr_assert(mwt_wait_file(port_file, 10000), "the gateway did not report its port");
    char *port = mwt_read_file(port_file);
    char addr[64];
    snprintf(addr, sizeof addr, "127.0.0.1:%d", atoi(port));
    free(port);

    /* 50 readings, SpO2 and pulse rate in turn; the simulator's 25th SpO2 is low and raises
     * an alarm. */
    char dca[300], dcrt[300], dkey[300];
    snprintf(dca, sizeof dca, "%s", mwt_pki_ca(&pki));
    snprintf(dcrt, sizeof dcrt, "%s", mwt_pki_crt(&pki, "dev-1"));
    snprintf(dkey, sizeof dkey, "%s", mwt_pki_key(&pki, "dev-1"));
    const char *dev_argv[] = {mwt_bin("medwire-device"),
                              "--gateway",
                              addr,
                              "--gateway-name",
                              "gateway",
                              "--ca",
                              dca,
                              "--cert",
                              dcrt,
                              "--key",
                              dkey,
                              "--count",
                              "50",
                              "--give-up-s",
                              "60",
                              NULL};
    mwt_proc dev;
    cr_assert(mwt_proc_start(&dev, dev_argv, NULL, dev_err));
    int rc = mwt_proc_wait(&dev, 120000);
    char *why = mwt_read_file(dev_err);
    cr_assert_eq(rc, 0, "the device did not deliver everything: %s", why ? why : "");
    free(why);
    cr_assert_eq(mwt_proc_stop(&gw, SIGTERM), 0, "the gateway exits 0 on SIGTERM");

    /* Every line of both files is one resource, of one type per file. */
    size_t lines, obs, audits, ae;
    count_lines(out, "{\"resourceType\":\"Observation\",", &lines, &obs);
    cr_assert_eq(obs, lines, "--out holds only Observations");
    cr_assert_eq(obs, 51, "50 readings and one alarm delivered, once each: %zu lines", obs);
    count_lines(aud, "{\"resourceType\":\"AuditEvent\",", &audits, &ae);
    cr_assert_eq(ae, audits, "--audit holds only AuditEvents");
    cr_assert_geq(audits, 3, "gateway start, the session and gateway stop");

    /* What docs/fhir-mapping.md promises: MDC and LOINC codes, UCUM units, each once per
     * reading, identified by device and sequence number. */
    const char *spo2[] = {
        "\"code\":\"150456\"",      "\"code\":\"2708-6\"",
        "\"code\":\"59408-5\"",     "\"system\":\"http://unitsofmeasure.org\",\"code\":\"%\"",
        "\"code\":\"vital-signs\"", NULL};
    cr_assert_eq(mwt_count_lines(out, spo2), 25, "25 SpO2 readings in %%");
    const char *pulse[] = {"\"code\":\"149530\"", "\"code\":\"8867-4\"", "\"code\":\"8889-8\"",
                           "\"system\":\"http://unitsofmeasure.org\",\"code\":\"/min\"", NULL};
    cr_assert_eq(mwt_count_lines(out, pulse), 25, "25 pulse rates in /min");
    const char *ident[] = {"\"identifier\":[{\"system\":\"urn:medwire:message\",\"value\":\"dev-1/",
                           "\"identifier\":{\"system\":\"urn:medwire:device\",\"value\":\"dev-1\"}",
                           NULL};
    cr_assert_eq(mwt_count_lines(out, ident), obs, "every Observation names device and message");
    const char *alarms[] = {"\"code\":\"alarm\"",  "\"text\":\"SpO2 low: 88 %\"",
                            "\"code\":\"active\"", "\"code\":\"alarm-priority\"",
                            "\"code\":\"medium\"", NULL};
    cr_assert_eq(mwt_count_lines(out, alarms), 1, "the low-SpO2 alarm, active, medium priority");
    cr_log_info("%zu Observations, %zu AuditEvents", obs, audits);
    const char *login[] = {"\"code\":\"110114\"",
                           "\"code\":\"110122\"",
                           "\"code\":\"session_established\"",
                           "\"value\":\"dev-1\"",
                           "\"network\":{\"address\":\"127.0.0.1\",\"type\":\"2\"}",
                           NULL};
    cr_assert_eq(mwt_count_lines(aud, login), 1, "one AuditEvent for the device's login");
    const char *start[] = {"\"code\":\"110120\"", "\"code\":\"gateway_started\"", NULL};
    cr_assert_eq(mwt_count_lines(aud, start), 1);

    char *text = NULL;
    rc = mwt_fhir_validate(out, &text);
    cr_assert_eq(rc, 0, "the validators refused the gateway's --out:\n%s", text);
    cr_log_info("--out: %s", text);
    free(text);
    rc = mwt_fhir_validate(aud, &text);
    cr_assert_eq(rc, 0, "the validators refused the gateway's --audit:\n%s", text);
    cr_log_info("--audit: %s", text);
    free(text);
}

Test(fhir_gateway, an_unknown_format_is_a_command_line_error)
{
    const char *argv[] = {mwt_bin("medwire-gateway"),
                          "--listen",
                          "127.0.0.1:0",
                          "--ca",
                          "x",
                          "--cert",
                          "y",
                          "--key",
                          "z",
                          "--format",
                          "hl7v2",
                          NULL};
    const char *dir = mwt_tmpdir();
    char err[300];
    snprintf(err, sizeof err, "%s/err", dir);
    cr_assert_eq(mwt_run(argv, NULL, err, 10000), 2);
    char *text = mwt_read_file(err);
    cr_assert_not_null(strstr(text, "--format must be json or fhir"), "%s", text);
    free(text);
}
