/* SPDX-License-Identifier: Apache-2.0 */
/* test_port.c -- the POSIX port keeps its headers' promises: addresses, UDP, waiting, clocks. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "medwire/io.h"
#include "port/posix/clock.h"


static void assert_round_trip(const char *text)
{
    mw_addr_t a, b;
    char out[56];
    cr_assert_eq(mw_addr_parse(text, &a), MW_OK, "parse %s", text);
    cr_assert_eq(mw_addr_format(&a, out, sizeof out), MW_OK);
    cr_assert_str_eq(out, text);
    cr_assert_eq(mw_addr_parse(out, &b), MW_OK);
    cr_assert_eq(a.len, b.len);
    cr_assert_arr_eq(a.data, b.data, a.len, "parsing the formatted text gives the same bytes");
}

Test(addr, ipv4_parses_and_formats_back_unchanged)
{
    mw_addr_t a;
    assert_round_trip("1.2.3.4:5684");
    assert_round_trip("0.0.0.0:0");
    cr_assert_eq(mw_addr_parse("192.168.10.20:65535", &a), MW_OK);
    cr_assert_eq(mw_addr_port(&a), 65535);
}

Test(addr, ipv6_parses_and_formats_back_unchanged)
{
    mw_addr_t a;
    assert_round_trip("[::1]:5684");
    assert_round_trip("[2001:db8::42]:1");
    cr_assert_eq(mw_addr_parse("[::1]:5684", &a), MW_OK);
    cr_assert_eq(mw_addr_port(&a), 5684);
}

Test(addr, localhost_resolves_to_ipv4_loopback)
{
    mw_addr_t a, b;
    cr_assert_eq(mw_addr_parse("localhost:5684", &a), MW_OK);
    cr_assert_eq(mw_addr_parse("127.0.0.1:5684", &b), MW_OK);
    cr_assert_eq(a.len, b.len);
    cr_assert_arr_eq(a.data, b.data, a.len);
}

Test(addr, same_text_gives_identical_bytes)
{
    mw_addr_t a, b;
    memset(&a, 0xAA, sizeof a);
    memset(&b, 0x55, sizeof b);
    cr_assert_eq(mw_addr_parse("10.0.0.1:5684", &a), MW_OK);
    cr_assert_eq(mw_addr_parse("10.0.0.1:5684", &b), MW_OK);
    cr_assert_arr_eq(&a, &b, sizeof a, "no stale bytes survive in the struct");
}

Test(addr, rejects_text_without_a_valid_port)
{
    static const char *const bad[] = {
        "1.2.3.4",      "1.2.3.4:",     "1.2.3.4:70000", "1.2.3.4:65536",
        "1.2.3.4:-1",   "1.2.3.4:5x",   "[::1]",         "[::1]5684",
        "::1:5684",     "[]:5684",      ":5684",         "garbage",
        "1.2.3.4.5:80", "[1.2.3.4]:80", "[::1:80",       "",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        mw_addr_t a;
        mw_err e = mw_addr_parse(bad[i], &a);
        cr_assert(e == MW_EADDR || e == MW_EINVAL, "\"%s\" gave %d", bad[i], (int)e);
        cr_assert_eq(a.len, 0u, "\"%s\" left an address behind", bad[i]);
    }
    cr_assert_eq(mw_addr_parse(NULL, NULL), MW_EINVAL);
}

Test(addr, format_reports_a_buffer_too_small)
{
    mw_addr_t a;
    char out[8];
    cr_assert_eq(mw_addr_parse("192.168.100.200:5684", &a), MW_OK);
    cr_assert_eq(mw_addr_format(&a, out, sizeof out), MW_ENOSPC);
}

Test(addr, empty_address_has_port_zero_and_does_not_format)
{
    mw_addr_t a;
    char out[56];
    memset(&a, 0, sizeof a);
    cr_assert_eq(mw_addr_port(&a), 0);
    cr_assert_eq(mw_addr_format(&a, out, sizeof out), MW_EADDR);
}

/* Waits (bounded) until a datagram arrives on @p t. */
static mw_err recv_wait(mw_transport_t *t, mw_addr_t *from, uint8_t *buf, size_t cap, size_t *len)
{
    for (int i = 0; i < 100; i++) {
        mw_err e;
        cr_assert_eq(mw_wait_readable(t->fd, 50), MW_OK);
        e = t->recv(t->ctx, from, buf, cap, len);
        if (e != MW_EAGAIN)
            return e;
    }
    return MW_ETIMEDOUT;
}

Test(udp, two_sockets_exchange_a_datagram)
{
    mw_transport_t a, b;
    mw_addr_t a_addr, b_addr, from;
    uint8_t buf[64];
    size_t len = 0;

    cr_assert_eq(mw_udp_open("127.0.0.1:0", &a), MW_OK);
    cr_assert_eq(mw_udp_open("127.0.0.1:0", &b), MW_OK);
    cr_assert_eq(mw_udp_local_addr(&a, &a_addr), MW_OK);
    cr_assert_eq(mw_udp_local_addr(&b, &b_addr), MW_OK);

    cr_assert_eq(a.send(a.ctx, &b_addr, (const uint8_t *)"hello", 5), MW_OK);
    cr_assert_eq(recv_wait(&b, &from, buf, sizeof buf, &len), MW_OK);
    cr_assert_eq(len, 5u);
    cr_assert_arr_eq(buf, "hello", 5);
    cr_assert_eq(from.len, a_addr.len);
    cr_assert_arr_eq(from.data, a_addr.data, a_addr.len,
                     "the sender's address is reported exactly");

    /* and back, to the address recv reported */
    cr_assert_eq(b.send(b.ctx, &from, (const uint8_t *)"ok", 2), MW_OK);
    cr_assert_eq(recv_wait(&a, NULL, buf, sizeof buf, &len), MW_OK);
    cr_assert_eq(len, 2u);

    a.close(a.ctx);
    b.close(b.ctx);
}

Test(udp, recv_on_an_empty_socket_would_block)
{
    mw_transport_t t;
    uint8_t buf[16];
    size_t len = 99;
    cr_assert_eq(mw_udp_open("127.0.0.1:0", &t), MW_OK);
    cr_assert_eq(t.recv(t.ctx, NULL, buf, sizeof buf, &len), MW_EAGAIN);
    cr_assert_eq(len, 0u);
    t.close(t.ctx);
}

Test(udp, truncated_receive_reports_the_full_length)
{
    mw_transport_t a, b;
    mw_addr_t b_addr;
    uint8_t big[1000], buf[10];
    size_t len = 0;

    for (size_t i = 0; i < sizeof big; i++)
        big[i] = (uint8_t)i;
    cr_assert_eq(mw_udp_open("127.0.0.1:0", &a), MW_OK);
    cr_assert_eq(mw_udp_open("127.0.0.1:0", &b), MW_OK);
    cr_assert_eq(mw_udp_local_addr(&b, &b_addr), MW_OK);
    cr_assert_eq(a.send(a.ctx, &b_addr, big, sizeof big), MW_OK);
    cr_assert_eq(recv_wait(&b, NULL, buf, sizeof buf, &len), MW_OK);
    cr_assert_eq(len, sizeof big);
    cr_assert_arr_eq(buf, big, sizeof buf);
    a.close(a.ctx);
    b.close(b.ctx);
}

Test(udp, local_addr_reports_the_port_the_system_chose)
{
    mw_transport_t t;
    mw_addr_t addr;
    char text[56];
    cr_assert_eq(mw_udp_open("127.0.0.1:0", &t), MW_OK);
    cr_assert_geq(t.fd, 0);
    cr_assert_eq(mw_udp_local_addr(&t, &addr), MW_OK);
    cr_assert_neq(mw_addr_port(&addr), 0);
    cr_assert_eq(mw_addr_format(&addr, text, sizeof text), MW_OK);
    cr_assert_eq(strncmp(text, "127.0.0.1:", 10), 0, "got %s", text);
    t.close(t.ctx);
}

Test(udp, unreachable_peer_does_not_break_the_socket)
{
    mw_transport_t a, b, gone;
    mw_addr_t b_addr, gone_addr;
    uint8_t buf[16];
    size_t len;

    cr_assert_eq(mw_udp_open("127.0.0.1:0", &a), MW_OK);
    cr_assert_eq(mw_udp_open("127.0.0.1:0", &b), MW_OK);
    cr_assert_eq(mw_udp_open("127.0.0.1:0", &gone), MW_OK);
    cr_assert_eq(mw_udp_local_addr(&b, &b_addr), MW_OK);
    cr_assert_eq(mw_udp_local_addr(&gone, &gone_addr), MW_OK);
    gone.close(gone.ctx);

    /* the closed port answers with ICMP port unreachable */
    cr_assert_eq(a.send(a.ctx, &gone_addr, (const uint8_t *)"x", 1), MW_OK);
    cr_assert_eq(mw_wait_readable(a.fd, 20), MW_OK);
    mw_err e = a.recv(a.ctx, NULL, buf, sizeof buf, &len);
    cr_assert_eq(e, MW_EAGAIN);
    cr_assert_eq(a.send(a.ctx, &b_addr, (const uint8_t *)"y", 1), MW_OK);
    cr_assert_eq(recv_wait(&b, NULL, buf, sizeof buf, &len), MW_OK);
    a.close(a.ctx);
    b.close(b.ctx);
}

Test(udp, ipv4_peer_on_a_dual_stack_socket_is_seen_as_ipv4)
{
    mw_transport_t v6, v4;
    mw_addr_t v6_addr, v4_addr, from, target;
    uint8_t buf[16];
    size_t len;
    char text[56];

    if (mw_udp_open("[::]:0", &v6) != MW_OK)
        cr_skip_test("no IPv6 on this host");
    cr_assert_eq(mw_udp_open("127.0.0.1:0", &v4), MW_OK);
    cr_assert_eq(mw_udp_local_addr(&v6, &v6_addr), MW_OK);
    cr_assert_eq(mw_udp_local_addr(&v4, &v4_addr), MW_OK);
    (void)snprintf(text, sizeof text, "127.0.0.1:%u", (unsigned)mw_addr_port(&v6_addr));
    cr_assert_eq(mw_addr_parse(text, &target), MW_OK);

    cr_assert_eq(v4.send(v4.ctx, &target, (const uint8_t *)"v4", 2), MW_OK);
    cr_assert_eq(recv_wait(&v6, &from, buf, sizeof buf, &len), MW_OK);
    cr_assert_eq(from.len, v4_addr.len);
    cr_assert_arr_eq(from.data, v4_addr.data, v4_addr.len);
    cr_assert_eq(v6.send(v6.ctx, &from, (const uint8_t *)"ok", 2), MW_OK);
    cr_assert_eq(recv_wait(&v4, NULL, buf, sizeof buf, &len), MW_OK);
    v6.close(v6.ctx);
    v4.close(v4.ctx);
}

/* Sends are synchronous on loopback: once they return, every datagram is queued. */
Test(udp, recv_many_returns_every_queued_datagram_with_its_source_and_length)
{
    enum { SENDERS = 3, DGRAMS = 7 };
    mw_transport_t r, s[SENDERS];
    mw_addr_t r_addr, s_addr[SENDERS];
    cr_assert_eq(mw_udp_open("127.0.0.1:0", &r), MW_OK);
    cr_assert_not_null(r.recv_many, "the POSIX port receives in batches (recvmmsg)");
    cr_assert_eq(mw_udp_local_addr(&r, &r_addr), MW_OK);
    for (int i = 0; i < SENDERS; i++) {
        cr_assert_eq(mw_udp_open("127.0.0.1:0", &s[i]), MW_OK);
        cr_assert_eq(mw_udp_local_addr(&s[i], &s_addr[i]), MW_OK);
    }
    for (int k = 0; k < DGRAMS; k++) {
        uint8_t msg[64];
        memset(msg, 'a' + k, sizeof msg);
        cr_assert_eq(s[k % SENDERS].send(s[k % SENDERS].ctx, &r_addr, msg, (size_t)(10 + k)),
                     MW_OK);
    }
    cr_assert_eq(mw_wait_readable(r.fd, 1000), MW_OK);
    uint8_t bufs[16][64];
    mw_datagram_t slots[16];
    memset(slots, 0, sizeof slots);
    for (int i = 0; i < 16; i++) {
        slots[i].buf = bufs[i];
        slots[i].cap = sizeof bufs[i];
    }
    size_t n = 99;
    cr_assert_eq(r.recv_many(r.ctx, slots, 16, &n), MW_OK);
    cr_assert_eq(n, (size_t)DGRAMS, "one call returns all %d, got %zu", DGRAMS, n);
    for (int k = 0; k < DGRAMS; k++) {
        cr_assert_eq(slots[k].len, (size_t)(10 + k), "datagram %d", k);
        for (size_t j = 0; j < slots[k].len; j++)
            cr_assert_eq(slots[k].buf[j], (uint8_t)('a' + k));
        cr_assert_eq(slots[k].from.len, s_addr[k % SENDERS].len);
        cr_assert_arr_eq(slots[k].from.data, s_addr[k % SENDERS].data, slots[k].from.len,
                         "datagram %d: the sender's address", k);
    }
    cr_assert_eq(r.recv_many(r.ctx, slots, 16, &n), MW_EAGAIN);
    cr_assert_eq(n, 0u);
    for (int i = 0; i < SENDERS; i++)
        s[i].close(s[i].ctx);
    r.close(r.ctx);
}

Test(udp, recv_many_returns_no_more_than_asked_and_the_rest_next_time)
{
    mw_transport_t a, b;
    mw_addr_t b_addr;
    cr_assert_eq(mw_udp_open("127.0.0.1:0", &a), MW_OK);
    cr_assert_eq(mw_udp_open("127.0.0.1:0", &b), MW_OK);
    cr_assert_eq(mw_udp_local_addr(&b, &b_addr), MW_OK);
    for (uint8_t k = 0; k < 5; k++)
        cr_assert_eq(a.send(a.ctx, &b_addr, &k, 1), MW_OK);
    cr_assert_eq(mw_wait_readable(b.fd, 1000), MW_OK);
    uint8_t bufs[5][4];
    mw_datagram_t slots[5];
    for (int i = 0; i < 5; i++) {
        slots[i].buf = bufs[i];
        slots[i].cap = sizeof bufs[i];
    }
    size_t n = 0;
    cr_assert_eq(b.recv_many(b.ctx, slots, 2, &n), MW_OK);
    cr_assert_eq(n, 2u);
    cr_assert_eq(bufs[0][0], 0);
    cr_assert_eq(bufs[1][0], 1);
    cr_assert_eq(b.recv_many(b.ctx, slots, 5, &n), MW_OK);
    cr_assert_eq(n, 3u, "the three left, in order");
    for (int i = 0; i < 3; i++)
        cr_assert_eq(bufs[i][0], 2 + i);
    a.close(a.ctx);
    b.close(b.ctx);
}

Test(udp, recv_many_reports_a_datagram_longer_than_its_slot_as_truncated_without_overflow)
{
    mw_transport_t a, b;
    mw_addr_t b_addr;
    uint8_t big[1000];
    for (size_t i = 0; i < sizeof big; i++)
        big[i] = (uint8_t)i;
    cr_assert_eq(mw_udp_open("127.0.0.1:0", &a), MW_OK);
    cr_assert_eq(mw_udp_open("127.0.0.1:0", &b), MW_OK);
    cr_assert_eq(mw_udp_local_addr(&b, &b_addr), MW_OK);
    cr_assert_eq(a.send(a.ctx, &b_addr, big, sizeof big), MW_OK);
    cr_assert_eq(a.send(a.ctx, &b_addr, (const uint8_t *)"small", 5), MW_OK);
    cr_assert_eq(mw_wait_readable(b.fd, 1000), MW_OK);
    /* Two slots of 10 bytes inside one buffer, with guard bytes around each. */
    uint8_t mem[64];
    memset(mem, 0xEE, sizeof mem);
    mw_datagram_t slots[2] = {{.buf = mem + 4, .cap = 10}, {.buf = mem + 24, .cap = 10}};
    size_t n = 0;
    cr_assert_eq(b.recv_many(b.ctx, slots, 2, &n), MW_OK);
    cr_assert_eq(n, 2u);
    cr_assert_gt(slots[0].len, slots[0].cap, "reported truncated");
    cr_assert_eq(slots[0].len, sizeof big, "with its real length");
    cr_assert_arr_eq(mem + 4, big, 10);
    cr_assert_eq(slots[1].len, 5u, "the next datagram is intact");
    cr_assert_arr_eq(mem + 24, "small", 5);
    for (size_t i = 0; i < sizeof mem; i++)
        if ((i < 4 || i >= 14) && (i < 24 || i >= 34))
            cr_assert_eq(mem[i], 0xEE, "byte %zu outside the slots was written", i);
    a.close(a.ctx);
    b.close(b.ctx);
}

Test(wait, times_out_on_a_quiet_socket_and_sleeps_without_one)
{
    mw_transport_t t;
    mw_clock_t c = mw_clock_system();
    uint64_t t0;
    cr_assert_eq(mw_udp_open("127.0.0.1:0", &t), MW_OK);
    t0 = c.now_ms(c.ctx);
    cr_assert_eq(mw_wait_readable(t.fd, 30), MW_OK);
    cr_assert_geq(c.now_ms(c.ctx) - t0, 25u);
    t0 = c.now_ms(c.ctx);
    cr_assert_eq(mw_wait_readable(-1, 30), MW_OK);
    cr_assert_geq(c.now_ms(c.ctx) - t0, 25u);
    t.close(t.ctx);
}

Test(clock, system_clock_is_monotonic_and_wall_is_unix_time)
{
    mw_clock_t c = mw_clock_system();
    int synced = -1;
    uint64_t a = c.now_ms(c.ctx), b = c.now_ms(c.ctx);
    uint64_t wall = c.wall_ms(c.ctx, &synced);
    cr_assert_geq(b, a);
    cr_assert(synced == 0 || synced == 1);
    cr_assert_lt(llabs((long long)(wall / 1000) - (long long)time(NULL)), 2);
}

Test(udp, ipv6_destination_on_an_ipv4_socket_is_an_address_error)
{
    mw_transport_t t;
    mw_addr_t v6;
    cr_assert_eq(mw_udp_open("127.0.0.1:0", &t), MW_OK);
    cr_assert_eq(mw_addr_parse("[::1]:5684", &v6), MW_OK);
    cr_assert_eq(t.send(t.ctx, &v6, (const uint8_t *)"x", 1), MW_EADDR);
    t.close(t.ctx);
}

static int sync_reads, sync_now;
static int read_sync(void)
{
    sync_reads++;
    return sync_now;
}

/* The wall clock's synchronisation state is a system call to read; a device stamps every
 * message with it, so the system clock reads it at most once a second (MWI_SYNC_CACHE_MS). */
Test(clock, the_sync_state_is_read_at_most_once_a_second_and_then_again)
{
    mwi_sync_cache cache = {0};
    sync_reads = 0;
    sync_now = 1;
    cr_assert_eq(mwi_sync_cached(&cache, 5000, read_sync), 1);
    cr_assert_eq(sync_reads, 1, "the first call reads");
    sync_now = 0; /* the kernel loses its time source */
    for (uint64_t t = 5000; t < 5000 + MWI_SYNC_CACHE_MS; t += 100)
        cr_assert_eq(mwi_sync_cached(&cache, t, read_sync), 1, "reused at %llu",
                     (unsigned long long)t);
    cr_assert_eq(sync_reads, 1);
    cr_assert_eq(mwi_sync_cached(&cache, 5000 + MWI_SYNC_CACHE_MS, read_sync), 0,
                 "a second later the change is seen");
    cr_assert_eq(sync_reads, 2);
    /* A cache never read is read, whatever the time (a clock that starts at 0). */
    mwi_sync_cache fresh = {0};
    cr_assert_eq(mwi_sync_cached(&fresh, 0, read_sync), 0);
    cr_assert_eq(sync_reads, 3);
}
