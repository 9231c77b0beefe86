/* SPDX-License-Identifier: Apache-2.0 */
/* test_channel.c -- device and gateway end to end in memory: delivery, faults, and every refusal
 * with its reason. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <wolfssl/options.h>
#include <wolfssl/wolfcrypt/asn.h>
#include <wolfssl/wolfcrypt/asn_public.h>
#include <wolfssl/wolfcrypt/ecc.h>
#include <wolfssl/wolfcrypt/random.h>

#include "harness.h"
#include "support/proc.h"

#include "coap/coap.h"
#include "session/protocol.h"
#include "session/codec.h"
#include "port/posix/read_file.h"

static bool handshake_done(mwt_h *h, void *arg)
{
    (void)h;
    mw_client_stats_t st;
    mw_client_stats(arg, &st);
    return st.handshakes > 0;
}

static void assert_in_order(const mwt_h *h, const char *dev, size_t n, int base)
{
    size_t k = 0;
    for (size_t i = 0; i < h->ngot; i++) {
        const mw_message_t *m = &h->got[i];
        if (strcmp(m->device_id, dev) != 0)
            continue;
        cr_assert_eq(m->seq, k + 1, "%s: message %zu has seq %llu", dev, k,
                     (unsigned long long)m->seq);
        cr_assert_eq(m->type, MW_MSG_OBSERVATION);
        cr_assert_eq(m->u.observation.mantissa, base + (int)k);
        k++;
    }
    cr_assert_eq(k, n, "%s: %zu delivered, %zu expected", dev, k, n);
}

/* @req MDR-17.2 IEC62443-CR1.2 MDS2-NAUT */
Test(channel, delivers_100_observations_in_order_exactly_once)
{
    mwt_h h;
    mwt_h_init(&h, 1);
    mw_err e;
    mw_client_t *c = mwt_h_client(&h, "dev-1", "gateway", &e);
    cr_assert_not_null(c, "client: %s", mw_strerror(e));
    for (int round = 0; round < 10; round++) {
        mwt_send_obs(c, 10, 1000 + round * 10);
        cr_assert(mwt_h_drain(&h, 60000), "round %d not acknowledged", round);
    }
    assert_in_order(&h, "dev-1", 100, 1000);
    mw_client_stats_t st;
    mw_client_stats(c, &st);
    cr_assert_eq(st.messages_acked, 100);
    cr_assert_eq(st.handshakes, 1);
    mw_gateway_stats_t gs;
    mw_gateway_stats(h.gw, &gs);
    cr_assert_eq(gs.messages_delivered, 100);
    cr_assert_eq(gs.duplicates, 0);
    cr_assert_not_null(mwt_h_audit_find(&h, MW_AUDIT_SESSION_ESTABLISHED, MW_OK));
    mwt_h_fini(&h);
}

/* A bridge speaks for legacy devices: each reading names the one it came from, end to end. */
Test(channel, a_bridges_sources_reach_the_gateway_and_a_bad_one_is_refused_at_the_api)
{
    mwt_h h;
    mwt_h_init(&h, 1);
    mw_err e;
    mw_client_t *c = mwt_h_client(&h, "dev-2", "gateway", &e); /* the bridge */
    cr_assert_not_null(c, "client: %s", mw_strerror(e));
    mw_observation_t o = {.mdc_code = MW_MDC_PULS_OXIM_SAT_O2,
                          .mantissa = 975,
                          .exponent = -1,
                          .unit = "%",
                          .status = MW_MEAS_VALID,
                          .source = "MON-7"};
    mw_alarm_t a = {.mdc_code = MW_MDC_EVT_LO,
                    .priority = MW_ALARM_HIGH,
                    .state = MW_ALARM_ACTIVE,
                    .text = "SpO2 low"};
    memset(a.source, 'B', MW_SOURCE_MAX); /* the longest there is */
    uint64_t seq = 0;

    mw_observation_t bad = o;
    strcpy(bad.source, "MON\r7");
    cr_assert_eq(mw_client_send_observation(c, &bad, &seq), MW_EINVAL, "a control character");
    mw_alarm_t unterminated = a;
    memset(unterminated.source, 'B', sizeof unterminated.source);
    cr_assert_eq(mw_client_raise_alarm(c, &unterminated, &seq), MW_EINVAL, "no NUL in the array");
    strcpy(bad.source, "MON-7 ");
    cr_assert_eq(mw_client_send_observation(c, &bad, &seq), MW_EINVAL, "a trailing space");
    cr_assert_eq(mw_client_pending(c), 0, "nothing refused was queued");

    cr_assert_eq(mw_client_send_observation(c, &o, &seq), MW_OK);
    cr_assert_eq(mw_client_raise_alarm(c, &a, &seq), MW_OK);
    o.source[0] = '\0'; /* the bridge's own reading */
    cr_assert_eq(mw_client_send_observation(c, &o, &seq), MW_OK);
    cr_assert(mwt_h_drain(&h, 60000), "not acknowledged");
    cr_assert_eq(h.ngot, 3);
    int seen = 0;
    for (size_t i = 0; i < h.ngot; i++) {
        const mw_message_t *m = &h.got[i];
        cr_assert_str_eq(m->device_id, "dev-2");
        if (m->type == MW_MSG_ALARM) {
            cr_assert_str_eq(m->u.alarm.source, a.source);
            seen |= 1;
        } else if (m->seq == 1) {
            cr_assert_str_eq(m->u.observation.source, "MON-7");
            seen |= 2;
        } else {
            cr_assert_str_eq(m->u.observation.source, "");
            seen |= 4;
        }
    }
    cr_assert_eq(seen, 7);
    mwt_h_fini(&h);
}

static bool reconnected(mwt_h *h, void *arg)
{
    (void)h;
    mw_client_stats_t st;
    mw_client_stats(arg, &st);
    return st.connected && st.handshakes == 2;
}

Test(channel, reconnect_resumes_the_session_by_id_and_loses_nothing)
{
    mwt_h h;
    mwt_h_init(&h, 2);
    mw_client_t *c = mwt_h_client(&h, "dev-1", "gateway", NULL);
    cr_assert_not_null(c);
    mwt_send_obs(c, 5, 0);
    cr_assert(mwt_h_drain(&h, 60000));
    /* A new address, say: the device reconnects at once, with nothing queued... */
    cr_assert_eq(mw_client_reconnect(c), MW_OK);
    cr_assert(mwt_h_run(&h, reconnected, c, 60000), "reconnected without anything to send");
    mw_client_stats_t st;
    mw_client_stats(c, &st);
    cr_assert_eq(st.resumptions, 1, "the second handshake resumed the session by ID");
    /* ...and with messages in flight: they go again, once. */
    mwt_send_obs(c, 5, 5);
    cr_assert_eq(mw_client_reconnect(c), MW_OK);
    cr_assert(mwt_h_drain(&h, 60000));
    assert_in_order(&h, "dev-1", 10, 0);
    mw_client_stats(c, &st);
    cr_assert_eq(st.handshakes, 3);
    cr_assert_eq(st.resumptions, 2);
    cr_assert_eq(mw_client_reconnect(NULL), MW_EINVAL);
    mwt_h_fini(&h);
}

/* @req IEC62443-CR3.1 MDS2-TXIG */
Test(channel, a_dropped_and_a_duplicated_datagram_still_deliver_each_exactly_once)
{
    mwt_h h;
    mwt_h_init(&h, 2);
    mw_client_t *c = mwt_h_client(&h, "dev-1", "gateway", NULL);
    cr_assert_not_null(c);
    cr_assert(mwt_h_run(&h, handshake_done, c, 30000));
    /* After the handshake: the first request is duplicated by the network
     * (DTLS's replay window drops the copy) and its answer is lost, so the
     * device retransmits and the gateway sees the same batch twice. */
    uint64_t next = mwt_net_sent(h.net);
    mwt_net_duplicate_index(h.net, next);
    mwt_net_drop_index(h.net, next + 1);
    for (int round = 0; round < 10; round++) {
        mwt_send_obs(c, 10, round * 10);
        cr_assert(mwt_h_drain(&h, 120000));
    }
    assert_in_order(&h, "dev-1", 100, 0);
    mw_client_stats_t st;
    mw_client_stats(c, &st);
    cr_assert_geq(st.retransmissions, 1, "the dropped request must have been retransmitted");
    mw_gateway_stats_t gs;
    mw_gateway_stats(h.gw, &gs);
    cr_assert_geq(gs.coap_duplicates, 1,
                  "the retransmitted request is answered from the CoAP duplicate cache");
    cr_assert_eq(gs.duplicates, 0, "and never reaches the application a second time");
    mwt_h_fini(&h);
}

/* @req MDR-17.2 */
Test(channel, handshake_completes_whichever_single_datagram_is_lost)
{
    /* Includes the server's final flight, which wolfSSL never retransmits. */
    for (uint64_t i = 0; i < 12; i++) {
        mwt_h h;
        mwt_h_init(&h, 100 + i);
        mwt_net_drop_index(h.net, i);
        mw_client_t *c = mwt_h_client(&h, "dev-1", "gateway", NULL);
        cr_assert_not_null(c);
        mwt_send_obs(c, 3, 50);
        cr_assert(mwt_h_drain(&h, 120000), "datagram %llu lost: not delivered",
                  (unsigned long long)i);
        assert_in_order(&h, "dev-1", 3, 50);
        mwt_h_fini(&h);
    }
}

/* A valid device (dev-2) must keep being served while another is refused. */
static void valid_device_still_served(mwt_h *h, mw_client_t *good, int base)
{
    mwt_send_obs(good, 5, base);
    size_t before = mwt_h_count(h, "dev-2");
    cr_assert(mwt_h_drain(h, 60000), "the valid device was not served");
    cr_assert_eq(mwt_h_count(h, "dev-2"), before + 5);
}

static bool client_failed(mwt_h *h, void *arg)
{
    (void)h;
    mw_err e = mw_client_poll(arg, 0);
    return e != MW_OK && e != MW_EAGAIN;
}

static void refused_device(const char *name, const char *gateway_name, mw_err gw_err,
                           const char *client_reason)
{
    mwt_h h;
    mwt_h_init(&h, 7);
    mw_client_t *good = mwt_h_client(&h, "dev-2", "gateway", NULL);
    cr_assert_not_null(good);
    mw_err e;
    mw_client_t *bad = mwt_h_client(&h, name, gateway_name, &e);
    cr_assert_not_null(bad, "%s: open: %s", name, mw_strerror(e));
    mwt_send_obs(bad, 3, 0);
    valid_device_still_served(&h, good, 10);
    cr_assert(mwt_h_run(&h, client_failed, bad, 60000), "%s was not refused", name);
    mw_error_detail_t d;
    mw_client_last_error(bad, &d);
    cr_assert(strstr(d.reason, client_reason) != NULL, "%s: device says '%s', expected '%s'", name,
              d.reason, client_reason);
    if (gw_err != MW_OK) {
        const mwt_audit_line *l = mwt_h_audit_find(&h, MW_AUDIT_HANDSHAKE_FAILED, gw_err);
        cr_assert_not_null(l, "%s: no audit line with %s", name, mw_strerror(gw_err));
        cr_assert_neq(l->foreign, 0, "the wolfSSL code is kept");
    }
    cr_assert_eq(mwt_h_count(&h, name), 0, "nothing from %s was delivered", name);
    valid_device_still_served(&h, good, 20);
    mwt_h_fini(&h);
}

/* @req IEC62443-CR1.9 */
Test(refuse, an_expired_device_certificate)
{
    refused_device("expired", "gateway", MW_ECERT_EXPIRED,
                   "the gateway refused our certificate as expired or not yet valid; check its "
                   "validity dates and both clocks");
}

/* @req IEC62443-CR1.9 */
Test(refuse, a_device_certificate_not_yet_valid)
{
    refused_device("future", "gateway", MW_ECERT_NOT_YET_VALID,
                   "the gateway refused our certificate as expired or not yet valid; check its "
                   "validity dates and both clocks");
}

/* @req MDR-17.4 IEC62443-CR1.2 MDS2-NAUT */
Test(refuse, a_device_certificate_from_another_ca)
{
    refused_device("alien", "gateway", MW_ECERT_UNTRUSTED, "unknown_ca");
}

/* @req MDR-18.8 IEC62443-CR1.9 */
Test(refuse, a_self_signed_device_certificate)
{
    refused_device("selfsigned", "gateway", MW_ECERT_UNTRUSTED, "alert");
}

/* @req MDR-17.4 IEC62443-CR1.2 MDS2-NAUT */
Test(refuse, a_gateway_whose_name_is_not_the_expected_one)
{
    /* Refused by the device, which names the mismatch. */
    refused_device("dev-1", "other-gateway", MW_OK, "does not match");
}

/* @req IEC62443-CR2.1 IEC62443-CR5.1 MDS2-AUTH */
Test(refuse, a_device_presenting_a_gateway_certificate)
{
    /* The SDK will not even open with it ... */
    mwt_h h;
    mwt_h_init(&h, 8);
    mw_err e;
    cr_assert_null(mwt_h_client(&h, "gateway", "gateway", &e));
    cr_assert_eq(e, MW_ECERT_ROLE);
    /* ... and a peer that skips that check is refused by the gateway. */
    mw_client_t *good = mwt_h_client(&h, "dev-2", "gateway", NULL);
    mwt_raw *r = mwt_h_raw(&h, "gateway", NULL, true);
    valid_device_still_served(&h, good, 0);
    cr_assert_neq(r->result, MW_OK);
    const mwt_audit_line *l = mwt_h_audit_find(&h, MW_AUDIT_HANDSHAKE_FAILED, MW_ECERT_ROLE);
    cr_assert_not_null(l, "no audit line for the wrong role");
    cr_assert(strstr(l->reason, "role") != NULL, "%s", l->reason);
    mwt_h_fini(&h);
}

/* @req MDR-17.4 IEC62443-CR1.2 MDS2-TXCF */
Test(refuse, a_device_with_no_certificate)
{
    mwt_h h;
    mwt_h_init(&h, 9);
    mw_client_t *good = mwt_h_client(&h, "dev-2", "gateway", NULL);
    mwt_raw *r = mwt_h_raw(&h, NULL, NULL, false);
    valid_device_still_served(&h, good, 0);
    cr_assert_neq(r->result, MW_OK, "a certless client must not get a session");
    const mwt_audit_line *l = mwt_h_audit_find(&h, MW_AUDIT_HANDSHAKE_FAILED, MW_ENO_PEER_CERT);
    for (size_t i = 0; l == NULL && i < h.naudit; i++)
        fprintf(stderr, "audit: %s %s %d %s\n", h.audit[i].event, mw_strerror(h.audit[i].err),
                h.audit[i].foreign, h.audit[i].reason);
    cr_assert_not_null(l, "no audit line for the missing certificate");
    mwt_h_fini(&h);
}

/* @req MDCG-2019-16-DESIGN IEC62443-CR4.1 IEC62443-CR4.3 MDS2-TXCF */
Test(refuse, a_peer_offering_only_suites_outside_the_two_allowed)
{
    mwt_h h;
    mwt_h_init(&h, 10);
    mw_client_t *good = mwt_h_client(&h, "dev-2", "gateway", NULL);
    mwt_raw *r = mwt_h_raw(&h, "dev-1",
                           "ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-ECDSA-CHACHA20-POLY1305", false);
    valid_device_still_served(&h, good, 0);
    cr_assert_neq(r->result, MW_OK);
    const mwt_audit_line *l = mwt_h_audit_find(&h, MW_AUDIT_HANDSHAKE_FAILED, MW_ECIPHER);
    for (size_t i = 0; l == NULL && i < h.naudit; i++)
        fprintf(stderr, "audit: %s %s %d %s\n", h.audit[i].event, mw_strerror(h.audit[i].err),
                h.audit[i].foreign, h.audit[i].reason);
    cr_assert_not_null(l, "no audit line for the cipher suites");
    mwt_h_fini(&h);
}

static bool raw_up(mwt_h *h, void *arg)
{
    (void)h;
    mwt_raw *r = arg;
    return r->result != MW_EINPROGRESS;
}

static bool raw_answered(mwt_h *h, void *arg)
{
    (void)h;
    return ((mwt_raw *)arg)->last_record_len > 0;
}

/* @req IEC62443-CR2.1 MDS2-IGAU MDS2-AUTH */
Test(refuse, a_device_whose_envelopes_claim_another_device_id)
{
    mwt_h h;
    mwt_h_init(&h, 11);
    mw_client_t *good = mwt_h_client(&h, "dev-2", "gateway", NULL);
    mwt_raw *r = mwt_h_raw(&h, "dev-1", NULL, false);
    cr_assert(mwt_h_run(&h, raw_up, r, 30000));
    cr_assert_eq(r->result, MW_OK, "dev-1 itself is a valid device");

    mw_message_t m;
    memset(&m, 0, sizeof m);
    snprintf(m.device_id, sizeof m.device_id, "dev-2"); /* not who the certificate says */
    m.seq = 1;
    m.type = MW_MSG_OBSERVATION;
    m.priority = MW_PRIORITY_OBSERVATION;
    m.u.observation.mdc_code = MW_MDC_PULS_OXIM_SAT_O2;
    m.u.observation.mantissa = 99;
    snprintf(m.u.observation.unit, sizeof m.u.observation.unit, "%%");
    uint8_t payload[512], req[600];
    size_t plen, count, rlen;
    cr_assert_eq(mwi_batch_encode(&m, 1, 1, payload, sizeof payload, &plen, &count), MW_OK);
    mwi_coap_msg q;
    mwi_coap_msg_init(&q);
    q.type = MWI_COAP_CON;
    q.code = MWI_COAP_POST;
    q.mid = 7;
    q.token_len = 2;
    q.token[0] = 1;
    snprintf(q.uri_path, sizeof q.uri_path, "batch");
    q.content_format = MWI_COAP_CF_MEDWIRE_BATCH;
    q.payload = payload;
    q.payload_len = plen;
    cr_assert_eq(mwi_coap_encode(&q, req, sizeof req, &rlen), MW_OK);
    cr_assert_eq(mwt_raw_write(r, req, rlen), MW_OK);
    cr_assert(mwt_h_run(&h, raw_answered, r, 10000));

    mwi_coap_parser *p = NULL;
    cr_assert_eq(mwi_coap_parser_create(1500, &p), MW_OK);
    mwi_coap_msg resp;
    cr_assert_eq(mwi_coap_parse(p, r->last_record, r->last_record_len, &resp), MW_OK);
    cr_assert_eq(resp.code, MWI_COAP_CODE(4, 3), "refused with 4.03 Forbidden");
    mwi_coap_parser_destroy(&p);
    const mwt_audit_line *l = mwt_h_audit_find(&h, MW_AUDIT_IDENTITY_MISMATCH, MW_EIDENTITY);
    cr_assert_not_null(l);
    cr_assert_str_eq(l->device, "dev-1");
    cr_assert(strstr(l->reason, "dev-2") != NULL);
    cr_assert_eq(mwt_h_count(&h, "dev-2"), 0, "the forged envelope was not delivered");
    valid_device_still_served(&h, good, 0);
    mwt_h_fini(&h);
}

/* @req MDR-17.4 IEC62443-CR3.7 */
Test(open, refuses_a_client_without_ca_certificate_or_key)
{
    mwt_h h;
    mwt_h_init(&h, 12);
    const char *ca = mwt_pki_ca(&h.pki);
    char crt[300], key[300];
    snprintf(crt, sizeof crt, "%s", mwt_pki_crt(&h.pki, "dev-1"));
    snprintf(key, sizeof key, "%s", mwt_pki_key(&h.pki, "dev-1"));
    for (int missing = 0; missing < 3; missing++) {
        mw_client_config_t cfg;
        mw_client_config_init(&cfg);
        cfg.ca_file = missing == 0 ? NULL : ca;
        cfg.cert_file = missing == 1 ? NULL : crt;
        cfg.key_file = missing == 2 ? NULL : key;
        cfg.gateway_name = "gateway";
        cfg.gateway = "127.0.0.1:5684";
        mw_client_t *c = NULL;
        mw_error_detail_t d;
        cr_assert_eq(mw_client_open(&cfg, &c, &d), MW_ECONFIG, "missing %d", missing);
        cr_assert_null(c);
        cr_assert(strstr(d.reason, "required") != NULL, "%s", d.reason);
    }
    mw_client_config_t cfg;
    mw_client_config_init(&cfg);
    cfg.ca_file = ca;
    cfg.cert_file = crt;
    cfg.key_file = "/nonexistent/dev.key";
    cfg.gateway_name = "gateway";
    cfg.gateway = "127.0.0.1:5684";
    mw_client_t *c = NULL;
    mw_error_detail_t d;
    cr_assert_eq(mw_client_open(&cfg, &c, &d), MW_ECERT_LOAD);
    cr_assert(strstr(d.reason, "/nonexistent/dev.key") != NULL, "%s", d.reason);
    mwt_h_fini(&h);
}

/* Writes @p der as PEM of @p type into the test PKI's directory; returns the file's path. */
static const char *write_key(const mwt_h *h, const char *name, const uint8_t *der, word32 len,
                             int type)
{
    static char path[3][300];
    static int next;
    char *p = path[next++ % 3];
    uint8_t pem[2048];
    int n = wc_DerToPem(der, len, pem, sizeof pem, type);
    cr_assert_gt(n, 0, "PEM of %s", name);
    snprintf(p, sizeof path[0], "%s/%s.key", h->pki.dir, name);
    FILE *f = fopen(p, "wb");
    cr_assert_not_null(f);
    cr_assert_eq(fwrite(pem, 1, (size_t)n, f), (size_t)n);
    cr_assert_eq(fclose(f), 0);
    return p;
}

/* The key refused (or accepted) with a certificate (NULL: the device's own), before any
 * handshake. */
static mw_err load_creds(const mwt_h *h, const char *cert_file, const char *key_file,
                         mw_error_detail_t *d)
{
    mwi_dtls_config dc = {
        .read_file = mwi_file_read,
        .role = MWI_DTLS_CLIENT,
        .ca_file = mwt_pki_ca(&h->pki),
        .cert_file = cert_file ? cert_file : mwt_pki_crt(&h->pki, "dev-1"),
        .key_file = key_file,
        .peer_name = "gateway",
    };
    mwi_dtls_ctx *ctx = NULL;
    mw_err e = mwi_dtls_ctx_create(&dc, &ctx, d);
    mwi_dtls_ctx_destroy(&ctx);
    return e;
}

static mw_err load_key(const mwt_h *h, const char *key_file, mw_error_detail_t *d)
{
    return load_creds(h, NULL, key_file, d);
}

/*
 * Only a P-256 key whose scalar lies below the curve's order reaches wolfSSL. wolfSSL 5.5.4
 * itself loads an EC key whose scalar is larger than its curve and then writes past a stack
 * buffer checking it against the certificate (found by fuzz_certs; its reproducer is in
 * fuzz/corpus/fuzz_certs/): the same key with its curve changed to prime239v2 is the second
 * case here. PKCS#8, as OpenSSL writes keys, is accepted like SEC 1.
 */
/* @req MDR-17.4 IEC62443-CR3.7 */
Test(open, refuses_a_private_key_that_is_not_p256_in_range_and_accepts_pkcs8)
{
    mwt_h h;
    mwt_h_init(&h, 14);
    char *pem = mwt_read_file(mwt_pki_key(&h.pki, "dev-1"));
    cr_assert_not_null(pem);
    uint8_t der[512], bad[512];
    int len = wc_KeyPemToDer((const uint8_t *)pem, (int)strlen(pem), der, sizeof der, NULL);
    free(pem);
    /* SEC 1: SEQUENCE { INTEGER 1, OCTET STRING (32) scalar, [0] { OID prime256v1 } ... } */
    static const uint8_t p256_oid[] = {0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07};
    cr_assert(len > 57 && der[5] == 0x04 && der[6] == 32 && der[41] == 0x06 &&
                  memcmp(der + 43, p256_oid, sizeof p256_oid) == 0,
              "medwire-pki writes SEC 1 P-256 keys");
    mw_error_detail_t d;
    cr_assert_eq(load_key(&h, write_key(&h, "sec1", der, (word32)len, ECC_PRIVATEKEY_TYPE), &d),
                 MW_OK, "%s", d.reason);

    uint8_t p8[600];
    word32 p8_len = sizeof p8;
    cr_assert_gt(
        wc_CreatePKCS8Key(p8, &p8_len, der, (word32)len, ECDSAk, p256_oid, sizeof p256_oid), 0);
    cr_assert_eq(load_key(&h, write_key(&h, "pkcs8", p8, p8_len, PKCS8_PRIVATEKEY_TYPE), &d), MW_OK,
                 "%s", d.reason);

    /* SEC 1 without its optional public key (openssl ec -no_public): the scalar and curve. */
    memcpy(bad, der, 51);
    bad[1] = 49;
    cr_assert_eq(load_key(&h, write_key(&h, "no-public", bad, 51, ECC_PRIVATEKEY_TYPE), &d), MW_OK,
                 "%s", d.reason);

    /* The scalar all ones: larger than the order of P-256. */
    memcpy(bad, der, (size_t)len);
    memset(bad + 7, 0xff, 32);
    const char *f = write_key(&h, "above-order", bad, (word32)len, ECC_PRIVATEKEY_TYPE);
    cr_assert_eq(load_key(&h, f, &d), MW_ECERT_LOAD);
    cr_assert(strstr(d.reason, "not a valid ECDSA P-256 key") && strstr(d.reason, f), "%s",
              d.reason);

    /* The same key on prime239v2 (OID ...3.1.5): a 256-bit scalar on a 239-bit curve. */
    memcpy(bad, der, (size_t)len);
    bad[43 + sizeof p256_oid - 1] = 0x05;
    cr_assert_eq(
        load_key(&h, write_key(&h, "prime239v2", bad, (word32)len, ECC_PRIVATEKEY_TYPE), &d),
        MW_ECERT_LOAD);
    cr_assert(strstr(d.reason, "not a valid ECDSA P-256 key"), "%s", d.reason);

    /* A sound key on another curve. */
    WC_RNG rng;
    ecc_key k;
    cr_assert_eq(wc_InitRng(&rng), 0);
    cr_assert_eq(wc_ecc_init(&k), 0);
    cr_assert_eq(wc_ecc_make_key_ex(&rng, 48, &k, ECC_SECP384R1), 0);
    int n = wc_EccKeyToDer(&k, bad, sizeof bad);
    cr_assert_gt(n, 0);
    const char *p384_key = write_key(&h, "p384", bad, (word32)n, ECC_PRIVATEKEY_TYPE);
    cr_assert_eq(load_key(&h, p384_key, &d), MW_ECERT_LOAD);
    cr_assert(strstr(d.reason, "not a valid ECDSA P-256 key"), "%s", d.reason);

    /* A certificate on P-384 with its own key: refused for its key, whatever else it holds. */
    Cert cert;
    cr_assert_eq(wc_InitCert(&cert), 0);
    snprintf(cert.subject.commonName, sizeof cert.subject.commonName, "dev-384");
    cert.sigType = CTC_SHA384wECDSA;
    cert.isCA = 0;
    uint8_t cder[1024];
    cr_assert_gt(wc_MakeCert_ex(&cert, cder, sizeof cder, ECC_TYPE, &k, &rng), 0);
    int clen = wc_SignCert_ex(cert.bodySz, cert.sigType, cder, sizeof cder, ECC_TYPE, &k, &rng);
    cr_assert_gt(clen, 0);
    wc_ecc_free(&k);
    wc_FreeRng(&rng);
    uint8_t cpem[2048];
    int cpem_len = wc_DerToPem(cder, (word32)clen, cpem, sizeof cpem, CERT_TYPE);
    cr_assert_gt(cpem_len, 0);
    char crt[300];
    snprintf(crt, sizeof crt, "%s/p384.crt", h.pki.dir);
    FILE *cf = fopen(crt, "wb");
    cr_assert_not_null(cf);
    cr_assert_eq(fwrite(cpem, 1, (size_t)cpem_len, cf), (size_t)cpem_len);
    cr_assert_eq(fclose(cf), 0);
    cr_assert_eq(load_creds(&h, crt, p384_key, &d), MW_ECERT_LOAD);
    cr_assert(strstr(d.reason, "does not carry an ECDSA P-256 key"), "%s", d.reason);
    mwt_h_fini(&h);
}

static mw_err null_sink(void *ctx, const mw_message_t *m)
{
    (void)ctx;
    (void)m;
    return MW_OK;
}

/* @req MDR-17.4 IEC62443-CR3.7 */
Test(open, refuses_a_gateway_without_ca_certificate_or_key)
{
    mwt_h h;
    mwt_h_init(&h, 13);
    char ca[300], crt[300], key[300];
    snprintf(ca, sizeof ca, "%s", mwt_pki_ca(&h.pki));
    snprintf(crt, sizeof crt, "%s", mwt_pki_crt(&h.pki, "gateway"));
    snprintf(key, sizeof key, "%s", mwt_pki_key(&h.pki, "gateway"));
    for (int missing = 0; missing < 3; missing++) {
        mw_gateway_config_t cfg;
        mw_gateway_config_init(&cfg);
        cfg.ca_file = missing == 0 ? NULL : ca;
        cfg.cert_file = missing == 1 ? NULL : crt;
        cfg.key_file = missing == 2 ? NULL : key;
        cfg.listen = "127.0.0.1:0";
        cfg.sink = null_sink;
        mw_gateway_t *gw = NULL;
        mw_error_detail_t d;
        cr_assert_eq(mw_gateway_create(&cfg, &gw, &d), MW_ECONFIG, "missing %d", missing);
        cr_assert_null(gw);
        cr_assert(strstr(d.reason, "required") != NULL, "%s", d.reason);
    }
    /* A device certificate cannot serve as the gateway's. */
    mw_gateway_config_t cfg;
    mw_gateway_config_init(&cfg);
    cfg.ca_file = ca;
    cfg.cert_file = mwt_pki_crt(&h.pki, "dev-1");
    cfg.key_file = mwt_pki_key(&h.pki, "dev-1");
    cfg.listen = "127.0.0.1:0";
    cfg.sink = null_sink;
    mw_gateway_t *gw = NULL;
    cr_assert_eq(mw_gateway_create(&cfg, &gw, NULL), MW_ECERT_ROLE);
    mwt_h_fini(&h);
}

/* Opens a client (device) or creates a gateway with @p key as its key file. */
static mw_err open_with_key(const mwt_h *h, bool gateway, const char *key, bool allow_shared,
                            mw_error_detail_t *d)
{
    char crt[300];
    snprintf(crt, sizeof crt, "%s", mwt_pki_crt(&h->pki, gateway ? "gateway" : "dev-1"));
    if (gateway) {
        mw_gateway_config_t gc;
        mw_gateway_config_init(&gc);
        gc.ca_file = mwt_pki_ca(&h->pki);
        gc.cert_file = crt;
        gc.key_file = key;
        gc.allow_shared_key_file = allow_shared;
        gc.listen = "127.0.0.1:0";
        gc.sink = null_sink;
        mw_gateway_t *gw = NULL;
        mw_err e = mw_gateway_create(&gc, &gw, d);
        mw_gateway_destroy(&gw);
        return e;
    }
    mw_client_config_t cc;
    mw_client_config_init(&cc);
    cc.ca_file = mwt_pki_ca(&h->pki);
    cc.cert_file = crt;
    cc.key_file = key;
    cc.allow_shared_key_file = allow_shared;
    cc.gateway_name = "gateway";
    cc.gateway = "127.0.0.1:5684";
    mw_client_t *c = NULL;
    mw_err e = mw_client_open(&cc, &c, d);
    mw_client_close(&c);
    return e;
}

/* A key that is not the certificate's used to pass the load: the gateway then failed every
 * handshake without a word and the device blamed its certificate. */
/* @req MDR-17.4 IEC62443-CR3.7 */
Test(open, refuses_a_key_that_does_not_match_its_certificate_naming_both_files)
{
    mwt_h h;
    mwt_h_init(&h, 15);
    char other_key[300];
    snprintf(other_key, sizeof other_key, "%s", mwt_pki_key(&h.pki, "dev-2"));
    static const char *const certs[] = {"dev-1.crt", "gateway.crt"};
    for (int gateway = 0; gateway < 2; gateway++) {
        mw_error_detail_t d;
        cr_assert_eq(open_with_key(&h, gateway, other_key, false, &d), MW_ECERT_LOAD, "%s",
                     d.reason);
        cr_assert(strstr(d.reason, "dev-2.key") && strstr(d.reason, certs[gateway]) &&
                      strstr(d.reason, "does not match"),
                  "%s", d.reason);
    }
    mwt_h_fini(&h);
}

/* A key other local accounts can read lets any of them pose as this peer: refused as ssh does,
 * unless the configuration says a shared key file is intended. */
/* @req MDR-17.4 IEC62443-CR3.7 */
Test(open, refuses_a_key_file_open_to_other_users_unless_allowed_on_client_and_gateway)
{
    mwt_h h;
    mwt_h_init(&h, 16);
    for (int gateway = 0; gateway < 2; gateway++) {
        /* A copy: the test PKI's own files are shared with other tests. */
        char key[300], fix[320];
        snprintf(key, sizeof key, "%s/mode-%d.key", h.pki.dir, gateway);
        char *pem = mwt_read_file(mwt_pki_key(&h.pki, gateway ? "gateway" : "dev-1"));
        cr_assert_not_null(pem);
        FILE *f = fopen(key, "w");
        cr_assert_not_null(f);
        cr_assert_eq(fputs(pem, f) >= 0 && fclose(f) == 0, true);
        free(pem);
        snprintf(fix, sizeof fix, "chmod 600 %s", key);
        mw_error_detail_t d;
        cr_assert_eq(chmod(key, 0644), 0);
        cr_assert_eq(open_with_key(&h, gateway, key, false, &d), MW_ECERT_LOAD, "%s", d.reason);
        cr_assert(strstr(d.reason, fix) && strstr(d.reason, "0644"), "%s", d.reason);
        cr_assert_eq(open_with_key(&h, gateway, key, true, &d), MW_OK, "%s", d.reason);
        cr_assert_eq(chmod(key, 0640), 0);
        cr_assert_eq(open_with_key(&h, gateway, key, false, &d), MW_ECERT_LOAD, "group: %s",
                     d.reason);
        cr_assert_eq(chmod(key, 0600), 0);
        cr_assert_eq(open_with_key(&h, gateway, key, false, &d), MW_OK, "%s", d.reason);
    }
    mwt_h_fini(&h);
}

/* The store holds health data and every device's replay state: no other local account reads
 * it, and no second gateway writes it (each would acknowledge what the other's replay state
 * does not know). */
Test(open, a_store_is_created_owner_only_and_a_second_gateway_on_it_is_refused_naming_it)
{
    mwt_h h;
    mwt_h_init(&h, 17);
    char ca[300], crt[300], key[300], store[300], link[300], part[320];
    snprintf(ca, sizeof ca, "%s", mwt_pki_ca(&h.pki));
    snprintf(crt, sizeof crt, "%s", mwt_pki_crt(&h.pki, "gateway"));
    snprintf(key, sizeof key, "%s", mwt_pki_key(&h.pki, "gateway"));
    const char *dir = mwt_tmpdir();
    snprintf(store, sizeof store, "%s/store.db", dir);
    snprintf(link, sizeof link, "%s/other-name.db", dir);
    mw_gateway_config_t cfg;
    mw_gateway_config_init(&cfg);
    cfg.ca_file = ca;
    cfg.cert_file = crt;
    cfg.key_file = key;
    cfg.listen = "127.0.0.1:0";
    cfg.sink = null_sink;
    cfg.store_path = store;
    mode_t old = umask(022);
    mw_gateway_t *first = NULL, *second = NULL;
    mw_error_detail_t d;
    cr_assert_eq(mw_gateway_create(&cfg, &first, &d), MW_OK, "%s", d.reason);
    umask(old);
    const char *suffix[] = {"", "-wal", "-shm"};
    for (int i = 0; i < 3; i++) {
        struct stat st;
        snprintf(part, sizeof part, "%s%s", store, suffix[i]);
        cr_assert_eq(stat(part, &st), 0, "%s exists", part);
        cr_assert_eq(st.st_mode & 0777, 0600, "%s has mode %o under umask 022", part,
                     (unsigned)(st.st_mode & 0777));
    }
    cr_assert_eq(mw_gateway_create(&cfg, &second, &d), MW_EIO);
    cr_assert_null(second);
    char want[400];
    snprintf(want, sizeof want, "gateway store %s is in use by another gateway", store);
    cr_assert(strstr(d.reason, want) != NULL, "%s", d.reason);
    /* The lock is the file's, not its name's. */
    cr_assert_eq(symlink(store, link), 0);
    cfg.store_path = link;
    cr_assert_eq(mw_gateway_create(&cfg, &second, &d), MW_EIO, "through a symbolic link");
    mw_gateway_destroy(&first);
    cr_assert_eq(mw_gateway_create(&cfg, &second, &d), MW_OK, "once the first is gone: %s",
                 d.reason);
    mw_gateway_destroy(&second);
    mwt_h_fini(&h);
}
