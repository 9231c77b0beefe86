/* SPDX-License-Identifier: Apache-2.0 */
/* test_link.c -- make-before-break (src/dtls/link.c): a device's link and a gateway's wired back to
 * back in memory, driven as the SDK and the gateway drive theirs, through a key rotation that
 * completes, one that fails on either side, and application data all along. Credentials are made
 * at test time by medwire-pki (dtls_pair.c). */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

#include "dtls/link.h"
#include "dtls_pair.h"

static void setup(void)
{
    mwt_pair_pki("gateway");
}

TestSuite(link, .init = setup);

/* One end: its link, the datagrams it receives and sends, what its link reported. */
typedef struct end {
    mwi_link link;
    mwi_dtls_ctx *ctx;
    bool server;
    mwt_dq *in, *out;
    unsigned events[MWI_LINK_FAILED + 1];
    mwi_link_result last; /* of the last event other than NONE */
    unsigned records;     /* application records received */
    char record[64];      /* the last one, as text */
} end;

typedef struct wire {
    mwt_dq to_server, to_client;
    end dev, gw;
    uint64_t now;
} wire;

static void to_out(void *ctx, const uint8_t *buf, size_t len)
{
    mwt_dq_push(((end *)ctx)->out, buf, len);
}

static void on_record(void *ctx, const uint8_t *data, size_t len)
{
    end *e = ctx;
    e->records++;
    size_t n = len < sizeof e->record - 1 ? len : sizeof e->record - 1;
    memcpy(e->record, data, n);
    e->record[n] = '\0';
}

/* One datagram to @p e, as the gateway (an unknown peer's ClientHello, or one that opens a session
 * beside the established one, goes through the stateless cookie exchange first) or the SDK does. */
static void deliver(wire *w, end *e, const uint8_t *d, size_t n)
{
    if (e->server && (e->link.conn == NULL || mwi_link_hello_opens_next(&e->link, d, n))) {
        mwi_dtls_conn *c = NULL;
        mw_err r = mwi_dtls_accept(e->ctx, mwt_pair_addr(false), d, n, w->now, to_out, e, &c, NULL);
        if (r == MW_OK)
            cr_assert_eq(mwi_link_add(&e->link, c), MW_OK);
        return;
    }
    mwi_link_result res;
    mwi_link_event ev = mwi_link_input(&e->link, d, n, w->now, on_record, e, &res);
    e->events[ev]++;
    if (ev != MWI_LINK_NONE)
        e->last = res;
    if (ev == MWI_LINK_FAILED)
        cr_assert_fail("%s's current connection failed: %s", e->server ? "gateway" : "device",
                       res.detail.reason);
}

/* Delivers what is in flight now, to the gateway first; false if nothing was. */
static bool pump_once(wire *w)
{
    uint8_t d[MWI_DTLS_MAX_DATAGRAM];
    size_t n;
    size_t to_gw = w->to_server.count, to_dev = w->to_client.count;
    for (size_t i = 0; i < to_gw && (n = mwt_dq_pop(&w->to_server, d)) > 0; i++)
        deliver(w, &w->gw, d, n);
    for (size_t i = 0; i < to_dev && (n = mwt_dq_pop(&w->to_client, d)) > 0; i++)
        deliver(w, &w->dev, d, n);
    return to_gw + to_dev > 0;
}

static void pump(wire *w)
{
    for (int i = 0; i < 32 && pump_once(w); i++)
        ;
}

/* A gateway and dev-1, each with its own context, and nothing in flight. */
static void wire_init(wire *w)
{
    mwi_dtls_ctx *gw = mwt_pair_ctx(true, NULL, false);
    mwi_dtls_ctx *dev = mwt_pair_ctx(false, "gateway", false);
    memset(w, 0, sizeof *w);
    w->now = 1000;
    w->dev = (end){.ctx = dev, .in = &w->to_client, .out = &w->to_server};
    w->gw = (end){.ctx = gw, .server = true, .in = &w->to_server, .out = &w->to_client};
    mwi_link_init(&w->dev.link);
    mwi_link_init(&w->gw.link);
}

/* The first session, as the SDK makes it: a connection, its ClientHello, the handshake. */
static void first_session(wire *w)
{
    cr_assert_eq(mwi_link_connect(&w->dev.link, w->dev.ctx, mwt_pair_addr(true), to_out, &w->dev),
                 MW_OK);
    cr_assert_eq(mwi_link_start(&w->dev.link, w->now), MW_EINPROGRESS);
    pump(w);
    cr_assert_eq(w->dev.events[MWI_LINK_ESTABLISHED], 1u);
    cr_assert_eq(w->gw.events[MWI_LINK_ESTABLISHED], 1u);
    cr_assert(mwi_dtls_conn_established(w->dev.link.conn));
    cr_assert(mwi_dtls_conn_established(w->gw.link.conn));
    cr_assert_null(w->dev.link.next);
    cr_assert_null(w->gw.link.next);
}

/* A key rotation starts on the device: a fresh full handshake beside the session, on @p ctx. */
static void start_rotation(wire *w, mwi_dtls_ctx *ctx)
{
    cr_assert_eq(mwi_link_connect(&w->dev.link, ctx, mwt_pair_addr(true), to_out, &w->dev), MW_OK);
    cr_assert_not_null(w->dev.link.next);
    cr_assert_eq(mwi_link_start(&w->dev.link, w->now), MW_EINPROGRESS);
}

/* @p from writes @p text on its current connection and it is delivered; whether @p to read it. */
static bool exchange(wire *w, end *from, end *to, const char *text)
{
    unsigned before = to->records;
    cr_assert_eq(mwi_dtls_conn_write(from->link.conn, (const uint8_t *)text, strlen(text)), MW_OK);
    /* The record just written, ahead of any handshake datagram still queued. */
    mwt_dq *q = from->out;
    cr_assert_gt(q->count, 0u);
    size_t last = (q->head + q->count - 1) % MWT_DQ_LEN;
    q->count--;
    deliver(w, to, q->data[last], q->len[last]);
    if (to->records == before)
        return false;
    cr_assert_str_eq(to->record, text);
    return true;
}

static void wire_fini(wire *w)
{
    mwi_link_clear(&w->dev.link);
    mwi_link_clear(&w->gw.link);
    cr_assert_null(w->dev.link.conn);
    cr_assert_null(w->gw.link.next);
    mwi_dtls_ctx_destroy(&w->dev.ctx);
    mwi_dtls_ctx_destroy(&w->gw.ctx);
}

/* @req IEC62443-CR3.8 */
Test(link, a_rotation_completes_and_the_new_session_replaces_the_old_on_both_ends)
{
    long base = mwi_dtls_live_conns();
    wire w;
    wire_init(&w);
    first_session(&w);
    cr_assert_eq(mwi_dtls_live_conns(), base + 2);

    start_rotation(&w, w.dev.ctx);
    pump(&w);
    cr_assert_eq(w.gw.events[MWI_LINK_SWITCHED], 1u, "the gateway switched");
    cr_assert_eq(w.dev.events[MWI_LINK_SWITCHED], 1u, "the device switched");
    cr_assert(w.gw.last.to_next && w.gw.last.replaced_established);
    cr_assert(w.dev.last.to_next && w.dev.last.replaced_established);
    cr_assert_eq(w.gw.events[MWI_LINK_NEXT_FAILED] + w.dev.events[MWI_LINK_NEXT_FAILED], 0u);
    cr_assert_null(w.dev.link.next);
    cr_assert_null(w.gw.link.next);
    cr_assert(mwi_dtls_conn_established(w.dev.link.conn));
    cr_assert(mwi_dtls_conn_established(w.gw.link.conn));
    cr_assert_not(mwi_dtls_conn_resumed(w.dev.link.conn), "a rotation is a full handshake");
    cr_assert_eq(mwi_dtls_live_conns(), base + 2, "the old connections and their keys are gone");
    cr_assert_str_eq(mwi_dtls_conn_peer_id(w.gw.link.conn), "dev-1");

    /* The new session carries data both ways. */
    cr_assert(exchange(&w, &w.dev, &w.gw, "after the switch, up"));
    cr_assert(exchange(&w, &w.gw, &w.dev, "after the switch, down"));

    /* And a second rotation runs on it like the first. */
    start_rotation(&w, w.dev.ctx);
    pump(&w);
    cr_assert_eq(w.gw.events[MWI_LINK_SWITCHED], 2u);
    cr_assert_eq(w.dev.events[MWI_LINK_SWITCHED], 2u);
    cr_assert(exchange(&w, &w.dev, &w.gw, "second rotation"));
    wire_fini(&w);
    cr_assert_eq(mwi_dtls_live_conns(), base);
}

/* Each round of the handshake, both ends send on their current connection first: until an end
 * has switched, what the other sends on the old session is read; after, the old session's
 * records are dropped without disturbing the new one. */
/* @req IEC62443-CR3.8 */
Test(link, data_on_the_old_connection_is_accepted_until_the_switch)
{
    wire w;
    wire_init(&w);
    first_session(&w);
    start_rotation(&w, w.dev.ctx);

    unsigned rounds = 0, read_on_old = 0;
    uint8_t d[MWI_DTLS_MAX_DATAGRAM];
    while (w.dev.events[MWI_LINK_SWITCHED] == 0) {
        cr_assert_lt(rounds++, 16u, "the rotation does not complete");
        char up[32], down[32];
        snprintf(up, sizeof up, "old up %u", rounds);
        snprintf(down, sizeof down, "old down %u", rounds);
        /* Sent before this round's handshake flights are delivered: on the old sessions. */
        bool gw_switched = w.gw.events[MWI_LINK_SWITCHED] > 0;
        if (!gw_switched) {
            cr_assert(exchange(&w, &w.dev, &w.gw, up), "the gateway read the old session");
            cr_assert(exchange(&w, &w.gw, &w.dev, down), "the device read the old session");
            read_on_old++;
        }
        /* One handshake flight each way. */
        size_t n;
        size_t to_gw = w.to_server.count, to_dev = w.to_client.count;
        for (size_t i = 0; i < to_gw && (n = mwt_dq_pop(&w.to_server, d)) > 0; i++)
            deliver(&w, &w.gw, d, n);
        if (!gw_switched && w.gw.events[MWI_LINK_SWITCHED] > 0) {
            /* The gateway switched; the device has not yet (its last flight is in the air): a
             * record the device still sends on the old session is dropped, and harms nothing. */
            cr_assert_not_null(w.dev.link.next);
            cr_assert_not(exchange(&w, &w.dev, &w.gw, up), "the old session is gone");
            cr_assert(mwi_dtls_conn_established(w.gw.link.conn));
        }
        for (size_t i = 0; i < to_dev && (n = mwt_dq_pop(&w.to_client, d)) > 0; i++)
            deliver(&w, &w.dev, d, n);
    }
    cr_assert_geq(read_on_old, 3u, "data crossed the old session during the handshake");
    cr_assert_eq(w.gw.events[MWI_LINK_SWITCHED], 1u);
    cr_assert_eq(w.gw.events[MWI_LINK_FAILED] + w.dev.events[MWI_LINK_FAILED], 0u);
    cr_assert(exchange(&w, &w.dev, &w.gw, "new up"));
    cr_assert(exchange(&w, &w.gw, &w.dev, "new down"));
    wire_fini(&w);
}

/* A first session on @p w, then a rotation on @p next_ctx that fails at @p failing's end with
 * @p err: that end drops its next and reports it, nothing switches, and the session carries
 * data both ways as before. */
static void rotation_fails(wire *w, mwi_dtls_ctx *next_ctx, end *failing, mw_err err)
{
    wire_init(w);
    first_session(w);
    start_rotation(w, next_ctx);
    pump(w);
    cr_assert_eq(failing->events[MWI_LINK_NEXT_FAILED], 1u);
    cr_assert_eq(failing->last.detail.err, err, "%s", failing->last.detail.reason);
    cr_assert_null(failing->link.next, "the failed handshake is dropped");
    cr_assert_eq(w->dev.events[MWI_LINK_SWITCHED] + w->gw.events[MWI_LINK_SWITCHED], 0u);
    cr_assert(mwi_dtls_conn_established(w->dev.link.conn));
    cr_assert(mwi_dtls_conn_established(w->gw.link.conn));
    cr_assert(exchange(w, &w->dev, &w->gw, "still up"));
    cr_assert(exchange(w, &w->gw, &w->dev, "still down"));
}

/* The device's new handshake fails on its side (the gateway's certificate does not carry the
 * name it now expects): the next connection is dropped and reported, and the session goes on. */
/* @req IEC62443-CR3.8 */
Test(link, a_next_handshake_failing_on_the_device_leaves_the_current_session_working)
{
    mwi_dtls_ctx *wrong = mwt_pair_ctx(false, "another-gateway", false);
    wire w;
    rotation_fails(&w, wrong, &w.dev, MW_ECERT_NAME);
    /* The gateway's half of it waits for a flight that never comes; dropping it (its reaper)
     * leaves the session as it was, and a later rotation succeeds. */
    mwi_link_drop_next(&w.gw.link);
    cr_assert(exchange(&w, &w.dev, &w.gw, "after the drop"));
    start_rotation(&w, w.dev.ctx);
    pump(&w);
    cr_assert_eq(w.dev.events[MWI_LINK_SWITCHED], 1u);
    cr_assert_eq(w.gw.events[MWI_LINK_SWITCHED], 1u);
    wire_fini(&w);
    mwi_dtls_ctx_destroy(&wrong);
}

/* The gateway's side of a new handshake fails (the device offers no certificate): the gateway
 * drops it and keeps the session; the device's half times out against it, and the session is
 * still there on both ends. */
/* @req IEC62443-CR3.8 */
Test(link, a_next_handshake_failing_on_the_gateway_leaves_the_current_session_working)
{
    mwi_dtls_ctx *bare = mwt_pair_ctx(false, "gateway", true);
    wire w;
    rotation_fails(&w, bare, &w.gw, MW_ENO_PEER_CERT);
    /* What the device does with its half (its handshake timer, then mwi_link_drop_next) changes
     * nothing for the session either. */
    if (w.dev.link.next != NULL) {
        while (mwi_dtls_conn_timer(w.dev.link.next, w.now) == MW_EINPROGRESS)
            w.now = mwi_link_deadline(&w.dev.link);
        mwi_link_drop_next(&w.dev.link);
        w.to_server.count = 0; /* its retransmissions, unanswered */
    }
    cr_assert(exchange(&w, &w.dev, &w.gw, "after the timeout"));
    wire_fini(&w);
    mwi_dtls_ctx_destroy(&bare);
}

/* The rules of adding: a next only beside an established session, one at a time. */
Test(link, a_next_is_added_only_beside_an_established_session)
{
    mwi_dtls_ctx *dev = mwt_pair_ctx(false, "gateway", false);
    mwi_link l;
    mwi_link_init(&l);
    mwt_dq q = {0};
    end e = {.out = &q};
    cr_assert_eq(mwi_link_start(&l, 0), MW_EINVAL, "nothing to start");
    cr_assert_eq(mwi_link_connect(&l, dev, mwt_pair_addr(true), to_out, &e), MW_OK);
    cr_assert_not_null(l.conn);
    cr_assert_eq(mwi_link_connect(&l, dev, mwt_pair_addr(true), to_out, &e), MW_EINVAL,
                 "the first handshake is not established: no next beside it");
    cr_assert_null(l.next);
    cr_assert_eq(mwi_link_deadline(&l), UINT64_MAX, "not started");
    cr_assert_eq(mwi_link_start(&l, 1000), MW_EINPROGRESS);
    cr_assert_lt(mwi_link_deadline(&l), UINT64_MAX);
    cr_assert_not(mwi_link_routes_to_next(&l, q.data[0], q.len[0]), "no next: to the current");
    mwi_link_result r;
    cr_assert_eq(mwi_link_input(NULL, q.data[0], q.len[0], 0, NULL, NULL, &r), MWI_LINK_NONE);
    cr_assert_eq(r.err, MW_EINVAL);
    cr_assert_not(mwi_link_drop_current(&l), "nothing left");
    cr_assert_null(l.conn);
    mwi_link_clear(&l);
    mwi_link_clear(NULL);
    mwi_dtls_ctx_destroy(&dev);
}
