/* SPDX-License-Identifier: Apache-2.0 */
/* test_time.c -- a device without a synchronised clock takes the gateway's time from its
 * acknowledgements (Ack.gateway_time_ms, docs/protocol.md 4b), on the fake clock. */
#include <criterion/criterion.h>
#include <stdint.h>
#include <string.h>

#include "harness.h"

/* The gateway's fake wall clock: 2023-11-14, synchronised (support/fake_clock.c). */
#define GW_WALL 1700000000000ull
/* A device that booted believing it was 1970 plus a second, and knows it is not synchronised. */
#define DEV_WALL 1000ull

static uint64_t dev_now(void *ctx)
{
    const mwt_clock *c = ctx;
    return c->now_ms;
}

static uint64_t dev_wall_unsynced(void *ctx, int *out_synced)
{
    const mwt_clock *c = ctx;
    *out_synced = 0;
    return DEV_WALL + c->now_ms;
}

static mw_client_config_t device_clock(mwt_h *h, bool has_wall)
{
    mw_client_config_t q;
    mw_client_config_init(&q);
    q.clock.ctx = &h->clk;
    q.clock.now_ms = dev_now;
    q.clock.wall_ms = has_wall ? dev_wall_unsynced : NULL;
    return q;
}

static void send_one(mw_client_t *c, int64_t v)
{
    mw_observation_t o = {.mdc_code = MW_MDC_PULS_OXIM_SAT_O2, .mantissa = v, .unit = "%"};
    cr_assert_eq(mw_client_send_observation(c, &o, NULL), MW_OK);
}

/* What the gateway's clock read at the monotonic time @p now_ms. */
static uint64_t gw_wall(const mwt_h *h, uint64_t now_ms)
{
    return h->clk.wall_ms + now_ms;
}

static void check_unsynced_device_learns(bool has_wall)
{
    mwt_h h;
    mwt_h_init(&h, has_wall ? 71 : 72);
    h.clk.wall_ms = GW_WALL;
    mw_client_config_t q = device_clock(&h, has_wall);
    mw_client_t *c = mwt_h_client_with(&h, "dev-1", "gateway", &q, NULL);
    cr_assert_not_null(c, "%s", h.last_open_error);

    send_one(c, 1); /* before any acknowledgement: the device's own, unsynchronised time */
    cr_assert(mwt_h_drain(&h, 60000));
    uint64_t sent_at = h.clk.now_ms;
    send_one(c, 2);
    cr_assert(mwt_h_drain(&h, 60000));

    cr_assert_eq(h.ngot, 2);
    cr_expect_not(h.got[0].time_synced);
    if (has_wall)
        cr_expect_lt(h.got[0].device_time_ms, GW_WALL, "the device's own idea of the time");
    else
        cr_expect_eq(h.got[0].device_time_ms, 0, "no wall clock, no time");
    cr_expect(h.got[1].time_synced, "stamped with the gateway's time, so synchronised");
    uint64_t want = gw_wall(&h, sent_at);
    uint64_t got = h.got[1].device_time_ms;
    /* The offset is exact to within half a round trip on the fake network. */
    cr_expect(got + 2000 >= want && got <= want + 2000, "device time %llu, gateway %llu",
              (unsigned long long)got, (unsigned long long)want);
    cr_expect_eq(h.got[1].u.observation.time_ms, got, "the reading's time too");

    mw_client_stats_t st;
    mw_client_stats(c, &st);
    cr_expect_geq(st.gateway_time_updates, 2);
    cr_expect_eq(st.messages_stamped_by_gateway_time, 1);
    int64_t base = has_wall ? (int64_t)DEV_WALL : 0;
    int64_t want_offset = (int64_t)GW_WALL - base;
    cr_expect(st.gateway_time_offset_ms >= want_offset - 2000 &&
                  st.gateway_time_offset_ms <= want_offset + 2000,
              "offset %lld, expected about %lld", (long long)st.gateway_time_offset_ms,
              (long long)want_offset);
    mwt_h_fini(&h);
}

Test(time, a_device_with_an_unsynchronised_wall_clock_stamps_with_the_gateways_time)
{
    check_unsynced_device_learns(true);
}

Test(time, a_device_without_a_wall_clock_stamps_with_the_gateways_time)
{
    check_unsynced_device_learns(false);
}

/* A device whose own clock is synchronised keeps it; the offset is measured all the same. */
Test(time, a_synchronised_device_keeps_its_own_clock)
{
    mwt_h h;
    mwt_h_init(&h, 73);
    mw_client_t *c = mwt_h_client(&h, "dev-1", "gateway", NULL);
    cr_assert_not_null(c);
    send_one(c, 1);
    cr_assert(mwt_h_drain(&h, 60000));
    send_one(c, 2);
    cr_assert(mwt_h_drain(&h, 60000));
    mw_client_stats_t st;
    mw_client_stats(c, &st);
    cr_expect_geq(st.gateway_time_updates, 1);
    cr_expect_eq(st.messages_stamped_by_gateway_time, 0);
    cr_expect(st.gateway_time_offset_ms > -2000 && st.gateway_time_offset_ms < 2000,
              "same clock: offset %lld", (long long)st.gateway_time_offset_ms);
    mwt_h_fini(&h);
}

/* A gateway whose clock is not synchronised gives no time: its devices stay unsynchronised
 * rather than stamp clinical data with a time nobody vouches for. */

static uint64_t gw_wall_unsynced(void *ctx, int *out_synced)
{
    const mwt_clock *c = ctx;
    *out_synced = 0;
    return c->wall_ms + c->now_ms;
}

static void unsynced_gateway(mw_gateway_config_t *cfg)
{
    cfg->clock.wall_ms = gw_wall_unsynced;
}

Test(time, a_gateway_without_a_synchronised_clock_gives_no_time)
{
    mwt_h h;
    mwt_h_init_tuned(&h, 74, unsynced_gateway);
    h.clk.wall_ms = GW_WALL;
    mw_client_config_t q = device_clock(&h, true);
    mw_client_t *c = mwt_h_client_with(&h, "dev-1", "gateway", &q, NULL);
    cr_assert_not_null(c);
    send_one(c, 1);
    cr_assert(mwt_h_drain(&h, 60000));
    send_one(c, 2);
    cr_assert(mwt_h_drain(&h, 60000));
    cr_assert_eq(h.ngot, 2);
    cr_expect_not(h.got[1].time_synced);
    cr_expect_lt(h.got[1].device_time_ms, GW_WALL, "the device's own time, unsynchronised");
    mw_client_stats_t st;
    mw_client_stats(c, &st);
    cr_expect_eq(st.gateway_time_updates, 0);
    cr_expect_eq(st.messages_stamped_by_gateway_time, 0);
    mwt_h_fini(&h);
}
