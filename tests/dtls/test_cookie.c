/* SPDX-License-Identifier: Apache-2.0 */
/* test_cookie.c -- the gateway's cookie secret rotates with its clock: a cookie lives through one
 * rotation, not two. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

#include "dtls/dtls.h"
#include "dtls_pair.h"

#define T0 1000u

static void setup(void)
{
    mwt_pair_pki("gateway");
}

TestSuite(cookie, .init = setup);

static mwi_dtls_ctx *make_ctx(bool server)
{
    return mwt_pair_ctx(server, "gateway", false);
}

/* Gets @p p's device a cookie at time T0: its second ClientHello, which carries it, is left in
 * flight to the gateway. */
static void second_hello_at_t0(mwt_pair *p, mwi_dtls_ctx *gw)
{
    uint8_t d[MWI_DTLS_MAX_DATAGRAM];
    p->client.started = true;
    cr_assert_eq(mwi_dtls_conn_start(p->client.conn, T0), MW_EINPROGRESS);
    size_t n = mwt_dq_pop(&p->to_server, d);
    cr_assert_gt(n, 0u);
    mwi_dtls_conn *none = NULL;
    cr_assert_eq(
        mwi_dtls_accept(gw, mwt_pair_addr(false), d, n, T0, mwt_pair_send, &p->server, &none, NULL),
        MW_EAGAIN, "a ClientHello without a cookie gets a HelloVerifyRequest");
    n = mwt_dq_pop(&p->to_client, d);
    cr_assert_gt(n, 13u);
    cr_assert_eq(d[13], 3, "HelloVerifyRequest");
    cr_assert_eq(mwi_dtls_conn_input(p->client.conn, d, n, T0, NULL, NULL), MW_EINPROGRESS);
    cr_assert_eq(p->to_server.count, 1u, "the second ClientHello, with the cookie");
}

/* A secret that never changes lets a cookie seen once open handshakes from its address for as
 * long as the gateway runs; a client caught by a rotation between its two hellos still gets in. */
/* @req IEC62443-CR7.1 */
Test(cookie, a_cookie_is_honoured_across_one_rotation_and_not_two)
{
    mwi_dtls_ctx *gw = make_ctx(true), *dev = make_ctx(false);
    mwt_pair one, two;
    mwt_pair_init(&one, dev, NULL, gw, NULL, NULL);
    mwt_pair_init(&two, dev, NULL, gw, NULL, NULL);
    second_hello_at_t0(&one, gw);
    second_hello_at_t0(&two, gw);

    /* One rotation later: the previous secret still verifies it, and the handshake completes. */
    one.now_ms = T0 + MWI_DTLS_COOKIE_PERIOD_MS + 1000;
    mwt_pair_run(&one);
    cr_assert_eq(one.server.result, MW_OK, "%s", one.server.err.reason);
    cr_assert_eq(one.client.result, MW_OK, "%s", one.client.err.reason);

    /* A second rotation later: that secret is gone, and a fresh HelloVerifyRequest answers. */
    uint8_t d[MWI_DTLS_MAX_DATAGRAM];
    size_t n = mwt_dq_pop(&two.to_server, d);
    mwi_dtls_conn *c = NULL;
    mw_err e =
        mwi_dtls_accept(gw, mwt_pair_addr(false), d, n, T0 + 2 * MWI_DTLS_COOKIE_PERIOD_MS + 1000,
                        mwt_pair_send, &two.server, &c, NULL);
    cr_assert_eq(e, MW_EAGAIN, "%s", mw_strerror(e));
    cr_assert_null(c, "no connection for a cookie two periods old");
    n = mwt_dq_pop(&two.to_client, d);
    cr_assert_gt(n, 13u, "an answer");
    cr_assert_eq(d[13], 3, "a new HelloVerifyRequest");
    mwt_pair_fini(&one);
    mwt_pair_fini(&two);
    mwi_dtls_ctx_destroy(&gw);
    mwi_dtls_ctx_destroy(&dev);
}
