/* SPDX-License-Identifier: Apache-2.0 */
/* test_messaging.c -- the CoAP message layer end to end: faults, duplicates, block-wise, NSTART,
 * errors, restarts, pings. */
#include <criterion/criterion.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"

#include "coap/coap.h"
#include "session/protocol.h"
#include "session/codec.h"
#include "support/proc.h"

/* Exactly once: every sequence number of @p dev from @p first on appears once, n in all. */
static void assert_exactly_once(const mwt_h *h, const char *dev, size_t n)
{
    uint8_t *seen = calloc(n + 1, 1);
    cr_assert_not_null(seen);
    size_t k = 0;
    for (size_t i = 0; i < h->ngot; i++) {
        const mw_message_t *m = &h->got[i];
        if (strcmp(m->device_id, dev) != 0)
            continue;
        cr_assert(m->seq >= 1 && m->seq <= n, "%s: unexpected seq %llu", dev,
                  (unsigned long long)m->seq);
        cr_assert_eq(seen[m->seq], 0, "%s: seq %llu delivered twice", dev,
                     (unsigned long long)m->seq);
        seen[m->seq] = 1;
        k++;
    }
    cr_assert_eq(k, n, "%s: %zu delivered of %zu", dev, k, n);
    free(seen);
}

/* @req MDR-17.2 */
Test(messaging, ten_thousand_observations_survive_loss_duplication_reordering_and_delay,
     .timeout = 600)
{
    mwt_h h;
    mwt_h_init(&h, 20);
    mwt_net_set_faults(h.net, 0.20, 0.10, 0.10);
    mwt_net_set_delay(h.net, &h.clk, 0.05, 400);
    mw_client_t *c = mwt_h_client(&h, "dev-1", "gateway", NULL);
    cr_assert_not_null(c);
    const int total = 10000;
    for (int sent = 0; sent < total; sent += 200) {
        mwt_send_obs(c, 200, sent);
        cr_assert(mwt_h_drain(&h, 3600000), "not drained after %d", sent);
    }
    assert_exactly_once(&h, "dev-1", (size_t)total);
    mw_client_stats_t st;
    mw_client_stats(c, &st);
    mw_gateway_stats_t gs;
    mw_gateway_stats(h.gw, &gs);
    cr_assert_eq(gs.messages_delivered, (uint64_t)total);
    /* Figures for the record (not asserted: benchmarks are not tests). */
    printf("20%% loss, 10%% dup, 10%% reorder, 5%% delay: %llu requests, %llu retransmissions "
           "(%.1f per 1000 messages), %llu handshakes, %llu CoAP duplicates answered from cache\n",
           (unsigned long long)st.requests_sent, (unsigned long long)st.retransmissions,
           1000.0 * (double)st.retransmissions / total, (unsigned long long)st.handshakes,
           (unsigned long long)gs.coap_duplicates);
    mwt_h_fini(&h);
}

/* @req IEC62443-CR3.1 MDS2-TXIG */
Test(messaging, corrupted_datagrams_are_dropped_and_the_session_carries_on)
{
    mwt_h h;
    mwt_h_init(&h, 21);
    mw_client_t *c = mwt_h_client(&h, "dev-1", "gateway", NULL);
    mwt_send_obs(c, 5, 0);
    cr_assert(mwt_h_drain(&h, 60000));
    mwt_net_set_corrupt(h.net, 0.3);
    mwt_send_obs(c, 200, 5);
    cr_assert(mwt_h_drain(&h, 3600000));
    assert_exactly_once(&h, "dev-1", 205);
    mwt_h_fini(&h);
}

static void build_batch_request(mwi_coap_msg *q, uint8_t *payload, size_t cap, const char *id,
                                uint64_t seq, uint16_t mid)
{
    mw_message_t m;
    memset(&m, 0, sizeof m);
    snprintf(m.device_id, sizeof m.device_id, "%s", id);
    m.seq = seq;
    m.type = MW_MSG_OBSERVATION;
    m.priority = MW_PRIORITY_OBSERVATION;
    m.u.observation.mdc_code = MW_MDC_PULS_OXIM_SAT_O2;
    m.u.observation.mantissa = 97;
    snprintf(m.u.observation.unit, sizeof m.u.observation.unit, "%%");
    size_t plen, count;
    cr_assert_eq(mwi_batch_encode(&m, 1, seq, payload, cap, &plen, &count), MW_OK);
    mwi_coap_msg_init(q);
    q->type = MWI_COAP_CON;
    q->code = MWI_COAP_POST;
    q->mid = mid;
    q->token_len = 4;
    memcpy(q->token, "tokn", 4);
    snprintf(q->uri_path, sizeof q->uri_path, "batch");
    q->content_format = MWI_COAP_CF_MEDWIRE_BATCH;
    q->payload = payload;
    q->payload_len = plen;
}

/* @req IEC62443-CR3.8 */
Test(messaging, a_duplicate_con_gets_the_identical_response_and_reaches_the_application_once)
{
    mwt_h h;
    mwt_h_init(&h, 22);
    mwt_raw *r = mwt_h_raw(&h, "dev-1", NULL, false);
    mwt_raw_wait_up(&h, r);
    uint8_t payload[256], a[512], b[512];
    size_t alen, blen;
    mwi_coap_msg q, ra, rb;
    build_batch_request(&q, payload, sizeof payload, "dev-1", 1, 0x1234);
    mwt_raw_exchange(&h, r, &q, a, sizeof a, &alen, &ra);
    mwt_raw_exchange(&h, r, &q, b, sizeof b, &blen, &rb);
    cr_assert_eq(ra.code, MWI_COAP_CHANGED);
    cr_assert_eq(alen, blen);
    cr_assert_arr_eq(a, b, alen, "the duplicate gets the very same bytes");
    cr_assert_eq(mwt_h_count(&h, "dev-1"), 1, "delivered once");
    mw_gateway_stats_t gs;
    mw_gateway_stats(h.gw, &gs);
    cr_assert_eq(gs.coap_duplicates, 1);
    /* A new MID with the same sequence number is a new request but an old
     * message: acknowledged again, not delivered again. */
    build_batch_request(&q, payload, sizeof payload, "dev-1", 1, 0x1235);
    mwt_raw_exchange(&h, r, &q, b, sizeof b, &blen, &rb);
    cr_assert_eq(rb.code, MWI_COAP_CHANGED);
    cr_assert_eq(mwt_h_count(&h, "dev-1"), 1);
    mwt_h_fini(&h);
}

static bool has_record(mwt_h *h, void *arg)
{
    (void)h;
    return ((mwt_raw *)arg)->last_record_len > 0;
}

/* Sends bytes the encoder would refuse to write, and parses the answer. */
static void raw_bytes_exchange(mwt_h *h, mwt_raw *r, const uint8_t *bytes, size_t len,
                               mwi_coap_msg *resp)
{
    static uint8_t keep[1500];
    r->last_record_len = 0;
    cr_assert_eq(mwt_raw_write(r, bytes, len), MW_OK);
    cr_assert(mwt_h_run(h, has_record, r, 10000), "no answer");
    memcpy(keep, r->last_record, r->last_record_len);
    mwi_coap_parser *p = NULL;
    cr_assert_eq(mwi_coap_parser_create(1500, &p), MW_OK);
    cr_assert_eq(mwi_coap_parse(p, keep, r->last_record_len, resp), MW_OK);
    mwi_coap_parser_destroy(&p);
}

static void expect_code(mwt_h *h, mwt_raw *r, mwi_coap_msg *q, uint8_t code)
{
    uint8_t out[1500];
    size_t n;
    mwi_coap_msg resp;
    mwt_raw_exchange(h, r, q, out, sizeof out, &n, &resp);
    cr_assert_eq(resp.code, code, "got %u.%02u, expected %u.%02u", resp.code >> 5, resp.code & 31,
                 code >> 5, code & 31);
    cr_assert_eq(resp.mid, q->mid, "piggybacked on the request's MID");
    cr_assert_eq(resp.token_len, q->token_len);
}

/* @req MDCG-2019-16-DESIGN IEC62443-CR5.1 IEC62443-CR7.7 */
Test(messaging, bad_requests_get_the_rfc_7252_error_codes)
{
    mwt_h h;
    mwt_h_init(&h, 23);
    mwt_raw *r = mwt_h_raw(&h, "dev-1", NULL, false);
    mwt_raw_wait_up(&h, r);
    uint8_t payload[256];
    mwi_coap_msg q;
    uint16_t mid = 100;

    build_batch_request(&q, payload, sizeof payload, "dev-1", 1, mid++);
    q.content_format = 0; /* text/plain */
    expect_code(&h, r, &q, MWI_COAP_UNSUPPORTED_CONTENT_FORMAT);

    build_batch_request(&q, payload, sizeof payload, "dev-1", 1, mid++);
    snprintf(q.uri_path, sizeof q.uri_path, "nothing/here");
    expect_code(&h, r, &q, MWI_COAP_NOT_FOUND);

    build_batch_request(&q, payload, sizeof payload, "dev-1", 1, mid++);
    q.code = MWI_COAP_GET;
    expect_code(&h, r, &q, MWI_COAP_METHOD_NOT_ALLOWED);

    build_batch_request(&q, payload, sizeof payload, "dev-1", 1, mid++);
    static const uint8_t junk[] = {0xff, 0x01, 0x02, 0x03};
    q.payload = junk;
    q.payload_len = sizeof junk;
    expect_code(&h, r, &q, MWI_COAP_BAD_REQUEST);

    /* An unknown critical option (here 9, unassigned and odd) must be refused
     * (RFC 7252 5.4.1); the encoder cannot write one, so the bytes are made
     * by hand: CON POST, TKL 0, MID 0x0077, option 9 of length 0. */
    static const uint8_t crit[] = {0x40, 0x02, 0x00, 0x77, 0x90};
    mwi_coap_msg resp;
    raw_bytes_exchange(&h, r, crit, sizeof crit, &resp);
    cr_assert_eq(resp.code, MWI_COAP_BAD_OPTION);
    cr_assert_eq(resp.mid, 0x0077);

    mwi_coap_msg_init(&q);
    q.type = MWI_COAP_CON;
    q.code = MWI_COAP_GET;
    q.mid = mid++;
    snprintf(q.uri_path, sizeof q.uri_path, ".well-known/core");
    uint8_t wk[1500];
    size_t wlen;
    mwi_coap_msg wr;
    mwt_raw_exchange(&h, r, &q, wk, sizeof wk, &wlen, &wr);
    cr_assert_eq(wr.code, MWI_COAP_CONTENT);
    cr_assert_eq(wr.content_format, 40, "RFC 6690 link-format");
    char links[256];
    cr_assert_lt(wr.payload_len, sizeof links);
    memcpy(links, wr.payload, wr.payload_len);
    links[wr.payload_len] = '\0';
    cr_assert(strstr(links, "</batch>") != NULL, "%s", links);
    cr_assert_eq(mwt_h_count(&h, "dev-1"), 0, "none of the bad requests delivered anything");
    mwt_h_fini(&h);
}

/* A Block1 request carrying bytes @p off.. of a body announced as @p size1 (0: no Size1). */
static void block_request(mwi_coap_msg *q, uint16_t mid, uint32_t num, bool more,
                          const uint8_t *body, size_t n, uint32_t size1)
{
    mwi_coap_msg_init(q);
    q->type = MWI_COAP_CON;
    q->code = MWI_COAP_POST;
    q->mid = mid;
    q->token_len = 2;
    memcpy(q->token, "bk", 2);
    snprintf(q->uri_path, sizeof q->uri_path, "batch");
    q->content_format = MWI_COAP_CF_MEDWIRE_BATCH;
    q->flags = MWI_COAP_F_BLOCK1;
    q->block1 = MWI_COAP_BLOCK_VALUE(num, more, 6);
    if (size1) {
        q->flags |= MWI_COAP_F_SIZE1;
        q->size1 = size1;
    }
    q->payload = body;
    q->payload_len = n;
}

/* @req IEC62443-CR7.2 */
Test(messaging, a_block_wise_body_larger_than_the_maximum_is_refused_with_4_13)
{
    mwt_h h;
    mwt_h_init_body(&h, 24, 2048);
    mwt_raw *r = mwt_h_raw(&h, "dev-1", NULL, false);
    mwt_raw_wait_up(&h, r);
    static uint8_t body[1024];
    memset(body, 0x0a, sizeof body);
    uint8_t out[1500];
    size_t n;
    mwi_coap_msg q, resp;

    /* Announced too large: refused before a byte is kept. */
    block_request(&q, 1, 0, true, body, sizeof body, 100000);
    mwt_raw_exchange(&h, r, &q, out, sizeof out, &n, &resp);
    cr_assert_eq(resp.code, MWI_COAP_REQUEST_ENTITY_TOO_LARGE);
    cr_assert(resp.flags & MWI_COAP_F_SIZE1, "4.13 says how much the gateway takes");
    cr_assert_eq(resp.size1, 2048);

    /* Growing too large without Size1: two blocks fit, the third does not. */
    block_request(&q, 2, 0, true, body, sizeof body, 0);
    mwt_raw_exchange(&h, r, &q, out, sizeof out, &n, &resp);
    cr_assert_eq(resp.code, MWI_COAP_CONTINUE);
    cr_assert_eq(resp.block1, MWI_COAP_BLOCK_VALUE(0, true, 6), "2.31 echoes the block");
    block_request(&q, 3, 1, true, body, sizeof body, 0);
    mwt_raw_exchange(&h, r, &q, out, sizeof out, &n, &resp);
    cr_assert_eq(resp.code, MWI_COAP_CONTINUE);
    block_request(&q, 4, 2, true, body, sizeof body, 0);
    mwt_raw_exchange(&h, r, &q, out, sizeof out, &n, &resp);
    cr_assert_eq(resp.code, MWI_COAP_REQUEST_ENTITY_TOO_LARGE);

    /* Out of order: 4.08. */
    block_request(&q, 5, 3, true, body, sizeof body, 0);
    mwt_raw_exchange(&h, r, &q, out, sizeof out, &n, &resp);
    cr_assert_eq(resp.code, MWI_COAP_REQUEST_ENTITY_INCOMPLETE);

    mw_gateway_stats_t gs;
    mw_gateway_stats(h.gw, &gs);
    cr_assert_eq(gs.bodies_too_large, 2);
    cr_assert_eq(mwt_h_count(&h, "dev-1"), 0);
    /* The session is intact: a normal request still works. */
    uint8_t payload[256];
    build_batch_request(&q, payload, sizeof payload, "dev-1", 1, 6);
    expect_code(&h, r, &q, MWI_COAP_CHANGED);
    mwt_h_fini(&h);
}

/* @p n alarms with long texts: 16 of them are about 1.6 kB, more than one DTLS record. */
static void raise_long_alarms(mw_client_t *c, int n)
{
    for (int i = 0; i < n; i++) {
        mw_alarm_t a;
        memset(&a, 0, sizeof a);
        a.mdc_code = MW_MDC_EVT_LO;
        a.priority = MW_ALARM_HIGH;
        a.state = MW_ALARM_ACTIVE;
        snprintf(a.text, sizeof a.text, "SpO2 below limit on bed %02d, check the probe now", i);
        cr_assert_eq(mw_client_raise_alarm(c, &a, NULL), MW_OK);
    }
}

Test(messaging, a_batch_larger_than_one_record_goes_block_wise_and_arrives_whole)
{
    mwt_h h;
    mwt_h_init(&h, 25);
    mw_client_t *c = mwt_h_client(&h, "dev-1", "gateway", NULL);
    raise_long_alarms(c, 16);
    cr_assert(mwt_h_drain(&h, 120000));
    cr_assert_eq(mwt_h_count(&h, "dev-1"), 16);
    mw_client_stats_t st;
    mw_client_stats(c, &st);
    cr_assert_eq(st.requests_sent, 2, "one body in two blocks, not two batches");
    for (size_t i = 0; i < h.ngot; i++) {
        cr_assert_eq(h.got[i].type, MW_MSG_ALARM);
        cr_assert_eq(h.got[i].seq, i + 1);
    }
    mwt_h_fini(&h);
}

static bool client_connected(mwt_h *h, void *arg)
{
    (void)h;
    mw_client_stats_t st;
    mw_client_stats(arg, &st);
    return st.connected;
}

/* A device @p name on the harness's network, opened with @p nstart, @p batch_max and
 * @p body_max (0: the defaults) and left to the harness to close. */
static mw_client_t *shaped_client(mwt_h *h, const char *name, uint8_t nstart, uint8_t batch_max,
                                  uint16_t body_max)
{
    mw_client_config_t cfg;
    mw_client_config_init(&cfg);
    cfg.ca_file = mwt_pki_ca(&h->pki);
    cfg.cert_file = mwt_pki_crt(&h->pki, name);
    cfg.key_file = mwt_pki_key(&h->pki, name);
    cfg.nstart = nstart;
    cfg.batch_max = batch_max;
    cfg.body_max = body_max;
    mw_client_t *c = mwt_h_client_cfg(h, &cfg, NULL);
    cr_assert_not_null(c, "%s", h->last_open_error);
    return c;
}

static bool second_request_sent(mwt_h *h, void *arg)
{
    (void)h;
    mw_client_stats_t st;
    mw_client_stats(arg, &st);
    return st.requests_sent >= 2;
}

/* A small device sizes its buffers by configuration: batch_max messages per batch, and with a
 * body_max no larger than a record, no block-wise body at all (each batch whole in one record,
 * so the first is delivered before the second goes). */
Test(messaging, batch_max_and_body_max_shape_what_one_request_carries)
{
    mwt_h h;
    mwt_h_init(&h, 28);
    mw_client_t *few = shaped_client(&h, "dev-1", 0, 4, 0);
    raise_long_alarms(few, 16);
    cr_assert(mwt_h_drain(&h, 120000));
    mw_client_stats_t st;
    mw_client_stats(few, &st);
    cr_assert_eq(st.requests_sent, 4, "16 messages, 4 per batch");
    assert_exactly_once(&h, "dev-1", 16);

    /* The 1.6 kB the default client sends as one body in two blocks, of which nothing is
     * delivered until the last arrives. */
    mw_client_t *whole = shaped_client(&h, "dev-2", 0, 0, 0);
    raise_long_alarms(whole, 16);
    cr_assert(mwt_h_run(&h, second_request_sent, whole, 60000));
    cr_assert_eq(mwt_h_count(&h, "dev-2"), 0, "block-wise: the body is not whole yet");
    cr_assert(mwt_h_drain(&h, 120000));
    assert_exactly_once(&h, "dev-2", 16);

    mw_client_t *records = shaped_client(&h, "dev-3", 0, 0, 1024);
    raise_long_alarms(records, 16);
    cr_assert(mwt_h_run(&h, second_request_sent, records, 60000));
    size_t first = mwt_h_count(&h, "dev-3");
    cr_assert(first > 0 && first < 16, "one record's batch delivered first: %zu", first);
    cr_assert(mwt_h_drain(&h, 120000));
    assert_exactly_once(&h, "dev-3", 16);
    mwt_h_fini(&h);
}

static bool client_failed_never(mwt_h *h, void *arg)
{
    (void)h;
    (void)arg;
    return false;
}

Test(messaging, nstart_lets_several_requests_fly_at_once)
{
    mwt_h h;
    mwt_h_init(&h, 26);
    mw_client_t *c = shaped_client(&h, "dev-1", 4, 0, 0);
    cr_assert(mwt_h_run(&h, client_connected, c, 30000));
    mwt_send_obs(c, 64, 0);
    uint64_t before = mwt_net_sent(h.net);
    for (int i = 0; i < 3; i++) {
        mw_err e = mw_client_poll(c, 0);
        cr_assert(e == MW_OK || e == MW_EAGAIN);
    }
    cr_assert_eq(mwt_net_sent(h.net) - before, 4, "NSTART = 4: four requests before any answer");
    cr_assert(mwt_h_drain(&h, 60000));
    assert_exactly_once(&h, "dev-1", 64);
    mwt_h_fini(&h);
}

/* @req IEC62443-CR7.4 */
Test(messaging, a_device_that_restarts_on_the_same_address_is_served_again_at_once)
{
    mwt_h h;
    mwt_h_init(&h, 27);
    mw_client_config_t cfg;
    mw_client_config_init(&cfg);
    cfg.ca_file = mwt_pki_ca(&h.pki);
    cfg.cert_file = mwt_pki_crt(&h.pki, "dev-1");
    cfg.key_file = mwt_pki_key(&h.pki, "dev-1");
    cfg.gateway_name = "gateway";
    cfg.gateway = MWT_GATEWAY_ADDR;
    cfg.transport = mwt_net_endpoint(h.net, "127.0.0.2:42000");
    cfg.clock = mwt_clock_table(&h.clk);
    cfg.random = mwt_rng_table(&h.rng);
    mw_client_t *c = NULL;
    cr_assert_eq(mw_client_open(&cfg, &c, NULL), MW_OK);
    h.clients[h.nclients++] = c;
    mwt_send_obs(c, 5, 0);
    cr_assert(mwt_h_drain(&h, 60000));
    /* Power cut: the device forgets its session; the gateway still holds it
     * (the close_notify a clean close sends is lost with the power). */
    mwt_net_drop_index(h.net, mwt_net_sent(h.net));
    mw_client_close(&h.clients[0]);
    h.nclients = 0;
    cfg.first_seq = 6; /* the persisted sequence continues */
    cr_assert_eq(mw_client_open(&cfg, &c, NULL), MW_OK);
    h.clients[h.nclients++] = c;
    uint64_t t0 = h.clk.now_ms;
    cr_assert(mwt_h_run(&h, client_connected, c, 60000));
    cr_assert_lt(h.clk.now_ms - t0, 1000, "served at once, not after a timeout");
    mwt_send_obs(c, 5, 5);
    cr_assert(mwt_h_drain(&h, 60000));
    assert_exactly_once(&h, "dev-1", 10);
    mw_gateway_stats_t gs;
    mw_gateway_stats(h.gw, &gs);
    cr_assert_eq(gs.handshakes_completed, 2);
    cr_assert_eq(gs.sessions, 1, "the old session was replaced, not kept beside");
    mwt_h_fini(&h);
}

Test(messaging, an_idle_link_is_checked_with_a_ping_and_a_dead_one_is_reconnected)
{
    mwt_h h;
    mwt_h_init(&h, 28);
    mw_client_config_t cfg;
    mw_client_config_init(&cfg);
    cfg.ca_file = mwt_pki_ca(&h.pki);
    cfg.cert_file = mwt_pki_crt(&h.pki, "dev-1");
    cfg.key_file = mwt_pki_key(&h.pki, "dev-1");
    cfg.gateway_name = "gateway";
    cfg.gateway = MWT_GATEWAY_ADDR;
    cfg.transport = mwt_net_endpoint(h.net, "127.0.0.2:43000");
    cfg.clock = mwt_clock_table(&h.clk);
    cfg.random = mwt_rng_table(&h.rng);
    cfg.keepalive_ms = 30000;
    mw_client_t *c = NULL;
    cr_assert_eq(mw_client_open(&cfg, &c, NULL), MW_OK);
    h.clients[h.nclients++] = c;
    cr_assert(mwt_h_run(&h, client_connected, c, 60000));
    mw_client_stats_t st;
    mw_client_stats(c, &st);
    uint64_t req0 = st.requests_sent;
    /* Idle for two minutes: pings go out and are answered; still one session. */
    uint64_t until = h.clk.now_ms + 120000;
    while (h.clk.now_ms < until)
        (void)mwt_h_run(&h, client_failed_never, NULL, 1000);
    mw_client_stats(c, &st);
    cr_assert_geq(st.requests_sent - req0, 3, "a ping every 30 s of silence");
    cr_assert(st.connected);
    cr_assert_eq(st.handshakes, 1);
    /* Now the gateway vanishes: the unanswered ping takes the link down and
     * the client starts reconnecting. */
    mwt_net_set_faults(h.net, 1.0, 0, 0);
    (void)mwt_h_run(&h, client_failed_never, NULL, 200000);
    mw_client_stats(c, &st);
    cr_assert(!st.connected, "the dead link was noticed");
    mw_error_detail_t d;
    mw_client_last_error(c, &d);
    cr_assert(d.err == MW_ECOAP_GIVEUP || d.err == MW_EHANDSHAKE_TIMEOUT, "%s", d.reason);
    mwt_h_fini(&h);
}

Test(messaging, last_error_says_the_gateway_cannot_be_reached_and_clears_once_it_acknowledges)
{
    mwt_h h;
    mwt_h_init(&h, 29);
    mwt_net_set_faults(h.net, 1.0, 0, 0); /* the gateway cannot be reached */
    mw_err e;
    mw_client_t *c = mwt_h_client(&h, "dev-1", "gateway", &e);
    cr_assert_not_null(c, "client: %s", mw_strerror(e));
    mwt_send_obs(c, 3, 90);
    /* Long before the attempt is abandoned (31 s), the first unanswered flight (1 s) says so. */
    (void)mwt_h_run(&h, client_failed_never, NULL, 2000);
    mw_error_detail_t d;
    mw_client_last_error(c, &d);
    cr_assert_eq(d.err, MW_EHANDSHAKE_TIMEOUT, "%s: %s", mw_strerror(d.err), d.reason);
    cr_assert_str_eq(d.reason, "the gateway at " MWT_GATEWAY_ADDR " could not be reached: no "
                               "answer to the handshake for 1 s");
    /* The network comes back: once a request is acknowledged, the error is history. */
    mwt_net_set_faults(h.net, 0, 0, 0);
    cr_assert(mwt_h_drain(&h, 120000));
    mw_client_last_error(c, &d);
    cr_assert_eq(d.err, MW_OK, "still reports: %s", d.reason);
    cr_assert_eq(mwt_h_count(&h, "dev-1"), 3);
    mwt_h_fini(&h);
}

static bool nothing_in_flight(mwt_h *h, void *arg)
{
    (void)arg;
    return mwt_net_in_flight(h->net) == 0;
}

/* @req IEC62443-CR3.8 IEC62443-CR4.3 */
Test(rotation, ten_thousand_observations_with_a_rotation_every_500_records_lose_and_repeat_nothing,
     .timeout = 600)
{
    mwt_h h;
    mwt_h_init(&h, 30);
    mw_client_config_t cfg;
    mw_client_config_init(&cfg);
    cfg.ca_file = mwt_pki_ca(&h.pki);
    cfg.cert_file = mwt_pki_crt(&h.pki, "dev-1");
    cfg.key_file = mwt_pki_key(&h.pki, "dev-1");
    cfg.gateway_name = "gateway";
    cfg.gateway = MWT_GATEWAY_ADDR;
    cfg.transport = mwt_net_endpoint(h.net, "127.0.0.2:44000");
    cfg.clock = mwt_clock_table(&h.clk);
    cfg.random = mwt_rng_table(&h.rng);
    cfg.rekey_after_records = 500;
    mw_client_t *c = NULL;
    cr_assert_eq(mw_client_open(&cfg, &c, NULL), MW_OK);
    h.clients[h.nclients++] = c;
    /* Observations in small bursts, so that rotations fall while requests
     * are in flight. */
    const int total = 10000;
    for (int sent = 0; sent < total; sent += 2) {
        mwt_send_obs(c, 2, sent);
        cr_assert(mwt_h_drain(&h, 600000), "stalled at %d", sent);
    }
    cr_assert(mwt_h_run(&h, nothing_in_flight, NULL, 60000));
    assert_exactly_once(&h, "dev-1", (size_t)total);
    mw_client_stats_t st;
    mw_client_stats(c, &st);
    mw_gateway_stats_t gs;
    mw_gateway_stats(h.gw, &gs);
    /* Records sent, less the handshakes' own, divided by 500. */
    cr_assert_geq(st.rotations, (st.datagrams_sent - 10 * st.handshakes) / 500,
                  "a rotation every 500 records: %llu rotations for %llu datagrams",
                  (unsigned long long)st.rotations, (unsigned long long)st.datagrams_sent);
    cr_assert_geq(st.rotations, 8);
    cr_assert_eq(st.handshakes, st.rotations + 1, "every handshake is the first or a rotation");
    cr_assert_eq(gs.handshakes_completed, st.handshakes, "the gateway saw each one");
    cr_assert_eq(gs.sessions, 1);
    cr_assert_eq(mwi_dtls_live_conns(), 2, "one session per side: every old one destroyed");
    const mwt_audit_line *l = mwt_h_audit_find(&h, MW_AUDIT_SESSION_ESTABLISHED, MW_OK);
    cr_assert_not_null(l);
    printf("rotation every 500 records: %llu rotations over %d observations, %llu requests, "
           "%llu bytes sent in all\n",
           (unsigned long long)st.rotations, total, (unsigned long long)st.requests_sent,
           (unsigned long long)st.bytes_sent);
    mwt_h_fini(&h);
}

Test(rotation, a_rotation_asked_for_replaces_the_session_and_keeps_delivering)
{
    mwt_h h;
    mwt_h_init(&h, 31);
    mw_client_t *c = mwt_h_client(&h, "dev-1", "gateway", NULL);
    mwt_send_obs(c, 3, 0);
    cr_assert(mwt_h_drain(&h, 60000));
    cr_assert_eq(mw_client_rotate_keys(c), MW_OK);
    mwt_send_obs(c, 3, 3);
    cr_assert(mwt_h_drain(&h, 60000));
    cr_assert(mwt_h_run(&h, nothing_in_flight, NULL, 60000));
    mwt_send_obs(c, 3, 6);
    cr_assert(mwt_h_drain(&h, 60000));
    mw_client_stats_t st;
    mw_client_stats(c, &st);
    cr_assert_eq(st.rotations, 1);
    assert_exactly_once(&h, "dev-1", 9);
    cr_assert_eq(mwi_dtls_live_conns(), 2);
    mwt_h_fini(&h);
}

static void batch_with_low(mwi_coap_msg *q, uint8_t *payload, size_t cap, uint64_t seq,
                           uint64_t low, uint16_t mid)
{
    build_batch_request(q, payload, cap, "dev-1", seq, mid);
    mw_message_t m;
    memset(&m, 0, sizeof m);
    snprintf(m.device_id, sizeof m.device_id, "dev-1");
    m.seq = seq;
    m.type = MW_MSG_OBSERVATION;
    m.priority = MW_PRIORITY_OBSERVATION;
    m.u.observation.mdc_code = MW_MDC_PULS_OXIM_SAT_O2;
    m.u.observation.mantissa = 97;
    snprintf(m.u.observation.unit, sizeof m.u.observation.unit, "%%");
    size_t plen, count;
    cr_assert_eq(mwi_batch_encode(&m, 1, low, payload, cap, &plen, &count), MW_OK);
    q->payload_len = plen;
}

/* The Ack a raw exchange got: its ranges and its resynchronisation request. */
static void expect_ack(mwt_h *h, mwt_raw *r, mwi_coap_msg *q, size_t *out_n, mwi_seq_range *out,
                       mwi_resync *out_resync)
{
    uint8_t buf[1500];
    size_t n;
    mwi_coap_msg resp;
    mwt_raw_exchange(h, r, q, buf, sizeof buf, &n, &resp);
    cr_assert_eq(resp.code, MWI_COAP_CHANGED, "got %u.%02u", resp.code >> 5, resp.code & 31);
    cr_assert_eq(mwi_ack_decode_full(resp.payload, resp.payload_len, out, MWI_MAX_ACK_RANGES, out_n,
                                     NULL, 0, NULL, out_resync, NULL),
                 MW_OK);
}

/* @req IEC62443-CR3.8 MDS2-IGAU */
Test(replay, the_gateway_never_acknowledges_a_number_below_the_low_water_mark_it_cannot_judge)
{
    mwt_h h;
    mwt_h_init(&h, 32);
    mwt_raw *r = mwt_h_raw(&h, "dev-1", NULL, false);
    mwt_raw_wait_up(&h, r);
    uint8_t payload[256];
    mwi_coap_msg q;
    mwi_seq_range ranges[MWI_MAX_ACK_RANGES];
    size_t nr = 0;
    mwi_resync rs = MWI_RESYNC_NONE;
    batch_with_low(&q, payload, sizeof payload, 5, 5, 1);
    expect_code(&h, r, &q, MWI_COAP_CHANGED);
    /* The device declared it holds nothing below 5: seq 3 was never delivered, so an Ack
     * would drop it in silence. It is not acknowledged; the device is asked to move to a new
     * sequence space and send it there. */
    batch_with_low(&q, payload, sizeof payload, 3, 3, 2);
    expect_ack(&h, r, &q, &nr, ranges, &rs);
    cr_assert_eq(nr, 0, "seq 3 not acknowledged");
    cr_assert_eq(rs, MWI_RESYNC_UNKNOWN);
    cr_assert_eq(mwt_h_count(&h, "dev-1"), 1, "only 5 was delivered");
    const mwt_audit_line *l = mwt_h_audit_find(&h, MW_AUDIT_RESYNC, MW_EREPLAY);
    cr_assert_not_null(l, "a resync audit line");
    cr_assert_str_eq(l->device, "dev-1");
    /* A jump far ahead is new (one range of state), and the numbers between
     * stay deliverable. */
    batch_with_low(&q, payload, sizeof payload, 1000000000000ull, 6, 3);
    expect_code(&h, r, &q, MWI_COAP_CHANGED);
    batch_with_low(&q, payload, sizeof payload, 6, 6, 4);
    expect_code(&h, r, &q, MWI_COAP_CHANGED);
    /* The same envelope sent twice (new MID): acknowledged, delivered once. */
    batch_with_low(&q, payload, sizeof payload, 6, 6, 5);
    expect_ack(&h, r, &q, &nr, ranges, &rs);
    cr_assert_eq(nr, 1);
    cr_assert_eq(rs, MWI_RESYNC_NONE);
    cr_assert_eq(mwt_h_count(&h, "dev-1"), 3, "5, 10^12 and 6, each once");
    mw_gateway_stats_t gs;
    mw_gateway_stats(h.gw, &gs);
    cr_assert_eq(gs.replays, 1);
    cr_assert_eq(gs.duplicates, 1);
    cr_assert_eq(gs.resyncs_requested, 1);
    mwt_h_fini(&h);
}

Test(replay, a_forged_low_water_mark_never_silences_the_later_messages_of_its_identity)
{
    mwt_h h;
    mwt_h_init(&h, 33);
    mwt_raw *r = mwt_h_raw(&h, "dev-1", NULL, false);
    mwt_raw_wait_up(&h, r);
    uint8_t payload[256];
    mwi_coap_msg q;
    batch_with_low(&q, payload, sizeof payload, 1, 1, 1);
    expect_code(&h, r, &q, MWI_COAP_CHANGED);
    /* Seq 2 declaring a low-water mark of 2^64-1: it may settle 1 and 2, nothing beyond. */
    batch_with_low(&q, payload, sizeof payload, 2, UINT64_MAX, 2);
    expect_code(&h, r, &q, MWI_COAP_CHANGED);
    for (uint64_t s = 3; s <= 7; s++) {
        batch_with_low(&q, payload, sizeof payload, s, s, (uint16_t)(10 + s));
        expect_code(&h, r, &q, MWI_COAP_CHANGED);
    }
    cr_assert_eq(mwt_h_count(&h, "dev-1"), 7, "every later message delivered");
    mwt_h_fini(&h);
}

Test(replay, a_number_reused_with_other_content_is_a_conflict_and_a_retired_space_stays_closed)
{
    mwt_h h;
    mwt_h_init(&h, 34);
    mwt_raw *r = mwt_h_raw(&h, "dev-1", NULL, false);
    mwt_raw_wait_up(&h, r);
    uint8_t payload[256];
    mwi_coap_msg q;
    mwi_seq_range ranges[MWI_MAX_ACK_RANGES];
    size_t nr = 0;
    mwi_resync rs = MWI_RESYNC_NONE;
    batch_with_low(&q, payload, sizeof payload, 1, 1, 1);
    expect_code(&h, r, &q, MWI_COAP_CHANGED);
    /* Seq 1 again with another value: a rolled-back device reusing the number. */
    batch_with_low(&q, payload, sizeof payload, 1, 1, 2);
    mw_message_t m;
    size_t count = 0;
    uint64_t low = 0;
    cr_assert_eq(mwi_batch_decode(q.payload, q.payload_len, &m, 1, &count, &low), MW_OK);
    m.u.observation.mantissa = 42;
    size_t plen = 0;
    cr_assert_eq(mwi_batch_encode(&m, 1, 1, payload, sizeof payload, &plen, &count), MW_OK);
    q.payload_len = plen;
    expect_ack(&h, r, &q, &nr, ranges, &rs);
    cr_assert_eq(nr, 0);
    cr_assert_eq(rs, MWI_RESYNC_CONFLICT);
    /* The device moves to space 0x5A: seq 1 is new there, delivered and marked. */
    m.possible_duplicate = true;
    const mw_message_t *one = &m;
    mwi_batch_head hd = {.low_water = 1, .space = 0x5A};
    cr_assert_eq(mwi_batch_encode_in(&one, 1, &hd, payload, sizeof payload, &plen, &count), MW_OK);
    q.payload_len = plen;
    q.mid = 3;
    expect_ack(&h, r, &q, &nr, ranges, &rs);
    cr_assert_eq(nr, 1);
    cr_assert_eq(rs, MWI_RESYNC_NONE);
    cr_assert_eq(mwt_h_count(&h, "dev-1"), 2);
    /* The old space (0, what batch_with_low sends) is retired: never reopened. */
    batch_with_low(&q, payload, sizeof payload, 9, 9, 4);
    expect_ack(&h, r, &q, &nr, ranges, &rs);
    cr_assert_eq(nr, 0);
    cr_assert_eq(rs, MWI_RESYNC_RETIRED);
    cr_assert_eq(mwt_h_count(&h, "dev-1"), 2);
    mw_gateway_stats_t gs;
    mw_gateway_stats(h.gw, &gs);
    cr_assert_eq(gs.conflicts, 1);
    cr_assert_eq(gs.spaces_started, 2);
    mwt_h_fini(&h);
}

/* A device without storage numbers from 1 at every start, in a new random sequence space: no
 * clock is involved, so a clock set back a day (an NTP correction, a flat RTC battery) repeats
 * nothing the gateway would take for a duplicate. */
/* @req MDR-17.2 IEC62443-CR3.8 */
Test(custody, a_device_without_storage_whose_clock_went_back_a_day_loses_nothing)
{
    mwt_h h;
    mwt_h_init(&h, 35);
    mw_client_t *c = mwt_h_client(&h, "dev-1", "gateway", NULL);
    cr_assert_not_null(c);
    mwt_send_obs(c, 5, 0);
    cr_assert(mwt_h_drain(&h, 60000));
    mw_client_stats_t st;
    mw_client_stats(c, &st);
    uint64_t first_space = st.space;
    mwt_h_client_close(&h, &c);
    h.clk.wall_ms -= 24u * 3600u * 1000u;
    c = mwt_h_client(&h, "dev-1", "gateway", NULL);
    cr_assert_not_null(c);
    mwt_send_obs(c, 5, 100);
    cr_assert(mwt_h_drain(&h, 60000));
    mw_client_stats(c, &st);
    cr_assert_neq(st.space, first_space, "a new start, a new space");
    cr_assert_eq(mwt_h_count(&h, "dev-1"), 10, "the five after the clock step delivered too");
    mwt_h_fini(&h);
}

static char journal_path[300];

static void journal_on_file(mw_gateway_config_t *cfg)
{
    snprintf(journal_path, sizeof journal_path, "%s/store.db", mwt_tmpdir());
    cfg->store_path = journal_path;
}

/* The journal's receive time is a date a reader can use (Unix ms from the gateway's wall
 * clock), not a monotonic reading that reads as 1970. */
/* @req MDR-18.8 */
Test(custody, the_journal_stamps_each_message_with_the_gateways_wall_clock)
{
    mwt_h h;
    mwt_h_init_tuned(&h, 37, journal_on_file);
    h.clk.now_ms = 5000; /* a monotonic clock that is plainly not a date */
    mw_client_t *c = mwt_h_client(&h, "dev-1", "gateway", NULL);
    cr_assert_not_null(c);
    uint64_t before = h.clk.wall_ms + h.clk.now_ms;
    mwt_send_obs(c, 3, 0);
    cr_assert(mwt_h_drain(&h, 60000));
    uint64_t after = h.clk.wall_ms + h.clk.now_ms;
    mwt_h_fini(&h);
    sqlite3 *db = NULL;
    cr_assert_eq(sqlite3_open_v2(journal_path, &db, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
    sqlite3_stmt *st = NULL;
    cr_assert_eq(sqlite3_prepare_v2(db, "SELECT received_ms FROM messages", -1, &st, NULL),
                 SQLITE_OK, "%s", sqlite3_errmsg(db));
    int rows = 0;
    while (sqlite3_step(st) == SQLITE_ROW) {
        uint64_t at = (uint64_t)sqlite3_column_int64(st, 0);
        cr_assert(at >= before && at <= after, "received_ms %llu, not within [%llu, %llu]",
                  (unsigned long long)at, (unsigned long long)before, (unsigned long long)after);
        rows++;
    }
    sqlite3_finalize(st);
    sqlite3_close(db);
    cr_assert_eq(rows, 3);
}

struct fates {
    size_t n;
    mw_fate_report_t last;
    size_t delivered, evicted;
};

static void on_fate(void *ctx, const mw_fate_report_t *r)
{
    struct fates *f = ctx;
    f->n++;
    f->last = *r;
    f->delivered += r->fate == MW_FATE_DELIVERED;
    f->evicted += r->fate == MW_FATE_EVICTED;
}

Test(custody, the_application_learns_each_messages_fate_by_its_sequence_number)
{
    mwt_h h;
    mwt_h_init(&h, 36);
    struct fates f = {0};
    mw_client_config_t q;
    mw_client_config_init(&q);
    q.queue_capacity = 4;
    q.on_fate = on_fate;
    q.on_fate_ctx = &f;
    mw_client_t *c = mwt_h_client_with(&h, "dev-1", "gateway", &q, NULL);
    cr_assert_not_null(c);
    mw_alarm_t a = {.mdc_code = MW_MDC_EVT_LO, .priority = MW_ALARM_HIGH,
                    .state = MW_ALARM_ACTIVE};
    uint64_t seq = 0;
    cr_assert_eq(mw_client_raise_alarm(c, &a, &seq), MW_OK);
    cr_assert(mwt_h_drain(&h, 60000));
    cr_assert_eq(f.delivered, 1);
    cr_assert_eq(f.last.seq, seq);
    cr_assert_eq(f.last.type, MW_MSG_ALARM, "an alarm source learns its alarm arrived");
    cr_assert_eq(f.last.fate, MW_FATE_DELIVERED);
    /* Five observations queued at once into room for four: the oldest is evicted, and said so. */
    mwt_send_obs(c, 5, 0);
    cr_assert_eq(f.evicted, 1);
    cr_assert_eq(f.last.fate, MW_FATE_EVICTED);
    cr_assert_eq(f.last.priority, MW_PRIORITY_OBSERVATION);
    mwt_h_fini(&h);
}
