/* SPDX-License-Identifier: Apache-2.0 */
/* test_support.c -- the test-support library keeps its headers' promises: the fake clock and
 * random source, the in-memory network and the process runner. */
#include <criterion/criterion.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "medwire/io.h"
#include "support/fake_clock.h"
#include "support/mem_transport.h"
#include "support/proc.h"

Test(fake_clock, moves_only_when_advanced)
{
    mwt_clock fc = {.now_ms = 100, .wall_ms = 1700000000000ull};
    mw_clock_t c = mwt_clock_table(&fc);
    int synced = 0;
    cr_assert_eq(c.now_ms(c.ctx), 100u);
    cr_assert_eq(c.now_ms(c.ctx), 100u);
    mwt_clock_advance(&fc, 250);
    cr_assert_eq(c.now_ms(c.ctx), 350u);
    cr_assert_eq(c.wall_ms(c.ctx, &synced), 1700000000350ull);
    cr_assert_eq(synced, 1);
}

Test(fake_rng, same_seed_gives_same_bytes_and_zero_seed_works)
{
    mwt_rng r1 = {42}, r2 = {42}, z = {0};
    mw_random_t t1 = mwt_rng_table(&r1), t2 = mwt_rng_table(&r2);
    uint8_t a[37], b[37];
    cr_assert_eq(t1.fill(t1.ctx, a, sizeof a), MW_OK);
    cr_assert_eq(t2.fill(t2.ctx, b, sizeof b), MW_OK);
    cr_assert_arr_eq(a, b, sizeof a);
    cr_assert_neq(mwt_rng_next(&z), 0u);
    cr_assert_neq(mwt_rng_next(&z), mwt_rng_next(&z));
}

static void send_text(mw_transport_t *t, const mw_addr_t *to, const char *s)
{
    cr_assert_eq(t->send(t->ctx, to, (const uint8_t *)s, strlen(s)), MW_OK);
}

/* Receives everything waiting on @p t as one string "a,b,c". */
static void drain(mw_transport_t *t, char *out, size_t out_size)
{
    uint8_t buf[64];
    size_t len;
    out[0] = '\0';
    while (t->recv(t->ctx, NULL, buf, sizeof buf - 1, &len) == MW_OK) {
        buf[len] = '\0';
        if (out[0] != '\0')
            strncat(out, ",", out_size - strlen(out) - 1);
        strncat(out, (const char *)buf, out_size - strlen(out) - 1);
    }
}

Test(mem_net, delivers_in_order_with_the_sender_address)
{
    mwt_net *net = mwt_net_create(1);
    mw_transport_t a = mwt_net_endpoint(net, "127.0.0.1:1000");
    mw_transport_t b = mwt_net_endpoint(net, "127.0.0.1:2000");
    mw_addr_t b_addr = mwt_net_addr(&b), a_addr = mwt_net_addr(&a), from;
    uint8_t buf[8];
    size_t len;
    char got[128];

    cr_assert_eq(a.fd, -1);
    send_text(&a, &b_addr, "1");
    send_text(&a, &b_addr, "2");
    send_text(&a, &b_addr, "3");
    cr_assert_eq(mwt_net_in_flight(net), 3u);
    cr_assert_eq(mwt_net_sent(net), 3u);
    cr_assert_eq(b.recv(b.ctx, &from, buf, sizeof buf, &len), MW_OK);
    cr_assert_arr_eq(from.data, a_addr.data, a_addr.len);
    drain(&b, got, sizeof got);
    cr_assert_str_eq(got, "2,3");
    cr_assert_eq(b.recv(b.ctx, NULL, buf, sizeof buf, &len), MW_EAGAIN);
    cr_assert_eq(mwt_net_counters(&a).datagrams_out, 3u);
    cr_assert_eq(mwt_net_counters(&b).datagrams_in, 3u);
    cr_assert_eq(mwt_net_counters(&b).bytes_in, 3u);
    mwt_net_destroy(net);
}

Test(mem_net, truncated_receive_reports_the_full_length)
{
    mwt_net *net = mwt_net_create(1);
    mw_transport_t a = mwt_net_endpoint(net, "127.0.0.1:1000");
    mw_transport_t b = mwt_net_endpoint(net, "127.0.0.1:2000");
    mw_addr_t b_addr = mwt_net_addr(&b);
    uint8_t buf[4];
    size_t len;
    send_text(&a, &b_addr, "abcdefgh");
    cr_assert_eq(b.recv(b.ctx, NULL, buf, sizeof buf, &len), MW_OK);
    cr_assert_eq(len, 8u);
    cr_assert_arr_eq(buf, "abcd", 4);
    mwt_net_destroy(net);
}

Test(mem_net, drop_index_drops_exactly_that_datagram)
{
    mwt_net *net = mwt_net_create(1);
    mw_transport_t a = mwt_net_endpoint(net, "127.0.0.1:1000");
    mw_transport_t b = mwt_net_endpoint(net, "127.0.0.1:2000");
    mw_addr_t b_addr = mwt_net_addr(&b);
    char got[128];
    mwt_net_drop_index(net, 1);
    send_text(&a, &b_addr, "0");
    send_text(&a, &b_addr, "1");
    send_text(&a, &b_addr, "2");
    drain(&b, got, sizeof got);
    cr_assert_str_eq(got, "0,2");
    cr_assert_eq(mwt_net_lost(net), 1u);
    cr_assert_eq(mwt_net_counters(&a).datagrams_out, 3u, "counted as sent before faults");
    mwt_net_destroy(net);
}

Test(mem_net, duplicate_index_delivers_it_twice)
{
    mwt_net *net = mwt_net_create(1);
    mw_transport_t a = mwt_net_endpoint(net, "127.0.0.1:1000");
    mw_transport_t b = mwt_net_endpoint(net, "127.0.0.1:2000");
    mw_addr_t b_addr = mwt_net_addr(&b);
    char got[128];
    mwt_net_duplicate_index(net, 0);
    send_text(&a, &b_addr, "0");
    send_text(&a, &b_addr, "1");
    drain(&b, got, sizeof got);
    cr_assert_str_eq(got, "0,0,1");
    mwt_net_destroy(net);
}

Test(mem_net, corrupt_index_flips_one_byte_of_that_datagram)
{
    mwt_net *net = mwt_net_create(1);
    mw_transport_t a = mwt_net_endpoint(net, "127.0.0.1:1000");
    mw_transport_t b = mwt_net_endpoint(net, "127.0.0.1:2000");
    mw_addr_t b_addr = mwt_net_addr(&b);
    uint8_t buf[8];
    size_t len;
    mwt_net_corrupt_index(net, 1);
    send_text(&a, &b_addr, "abcd");
    send_text(&a, &b_addr, "abcd");
    cr_assert_eq(b.recv(b.ctx, NULL, buf, sizeof buf, &len), MW_OK);
    cr_assert_arr_eq(buf, "abcd", 4);
    cr_assert_eq(b.recv(b.ctx, NULL, buf, sizeof buf, &len), MW_OK);
    cr_assert_eq(len, 4u);
    int diff = 0;
    for (size_t i = 0; i < 4; i++)
        diff += buf[i] != (uint8_t) "abcd"[i];
    cr_assert_eq(diff, 1);
    mwt_net_destroy(net);
}

/* Sends 200 numbered datagrams through a faulty net and records what arrived. */
static void faulty_run(uint64_t seed, char *out, size_t out_size)
{
    mwt_net *net = mwt_net_create(seed);
    mw_transport_t a = mwt_net_endpoint(net, "127.0.0.1:1000");
    mw_transport_t b = mwt_net_endpoint(net, "127.0.0.1:2000");
    mw_addr_t b_addr = mwt_net_addr(&b);
    mwt_net_set_faults(net, 0.2, 0.1, 0.2);
    out[0] = '\0';
    for (int i = 0; i < 200; i++) {
        char s[16], part[512];
        snprintf(s, sizeof s, "%d", i);
        send_text(&a, &b_addr, s);
        if (i % 5 == 4) {
            drain(&b, part, sizeof part);
            strncat(out, part, out_size - strlen(out) - 1);
            strncat(out, ";", out_size - strlen(out) - 1);
        }
    }
    cr_assert_eq(mwt_net_in_flight(net), 0u);
    mwt_net_destroy(net);
}

Test(mem_net, same_seed_gives_the_same_fault_pattern)
{
    static char first[4096], second[4096], other[4096], clean[4096];
    faulty_run(7, first, sizeof first);
    faulty_run(7, second, sizeof second);
    faulty_run(8, other, sizeof other);
    cr_assert_str_eq(first, second);
    cr_assert_str_neq(first, other, "another seed gives another pattern");

    /* and the faults really happened: not the clean in-order sequence */
    clean[0] = '\0';
    for (int i = 0; i < 200; i++) {
        char s[16];
        snprintf(s, sizeof s, i % 5 == 4 ? "%d;" : "%d,", i);
        strcat(clean, s);
    }
    cr_assert_str_neq(first, clean);
}

Test(mem_net, datagram_to_an_unknown_address_is_lost_silently)
{
    mwt_net *net = mwt_net_create(1);
    mw_transport_t a = mwt_net_endpoint(net, "127.0.0.1:1000");
    mw_addr_t nowhere;
    cr_assert_eq(mw_addr_parse("127.0.0.1:9999", &nowhere), MW_OK);
    send_text(&a, &nowhere, "x");
    cr_assert_eq(mwt_net_in_flight(net), 0u);
    cr_assert_eq(mwt_net_lost(net), 1u);
    cr_assert_eq(mwt_net_sent(net), 1u);
    mwt_net_destroy(net);
}

Test(proc, run_returns_the_exit_code_and_captures_output)
{
    const char *dir = mwt_tmpdir();
    char out[512];
    cr_assert_not_null(dir);
    snprintf(out, sizeof out, "%s/out.txt", dir);
    const char *const argv[] = {"/bin/sh", "-c", "echo hi; echo there; exit 3", NULL};
    cr_assert_eq(mwt_run(argv, out, NULL, 5000), 3);
    char *text = mwt_read_file(out);
    cr_assert_not_null(text);
    cr_assert_str_eq(text, "hi\nthere\n");
    free(text);
    const char *const needles[] = {"h", "i", NULL};
    cr_assert_eq(mwt_count_lines(out, needles), 1u);
    cr_assert(mwt_wait_file(out, 100));
    remove(out);
    remove(dir);
}

Test(proc, run_kills_a_program_that_overruns_its_timeout)
{
    const char *const argv[] = {"/bin/sleep", "10", NULL};
    mw_clock_t c = mw_clock_system();
    uint64_t t0 = c.now_ms(c.ctx);
    cr_assert_eq(mwt_run(argv, NULL, NULL, 200), -1);
    cr_assert_lt(c.now_ms(c.ctx) - t0, 1000u);
}

Test(proc, stop_reports_the_signal_that_ended_the_program)
{
    mwt_proc p;
    const char *const argv[] = {"/bin/sleep", "10", NULL};
    cr_assert(mwt_proc_start(&p, argv, NULL, NULL));
    cr_assert_eq(mwt_proc_wait(&p, 20), -1, "still running");
    cr_assert_eq(mwt_proc_stop(&p, SIGTERM), 128 + SIGTERM);
    cr_assert_eq(p.status, 128 + SIGTERM);
}

Test(proc, start_fails_for_a_missing_program)
{
    mwt_proc p;
    const char *const argv[] = {"/nonexistent/medwire-nothing", NULL};
    cr_assert_not(mwt_proc_start(&p, argv, NULL, NULL));
}

Test(proc, bin_joins_the_build_directory_and_the_name)
{
    const char *a, *b;
    setenv("MW_BIN_DIR", "/opt/mw/bin", 1);
    a = mwt_bin("medwire-pki");
    b = mwt_bin("medwire-gateway");
    cr_assert_str_eq(a, "/opt/mw/bin/medwire-pki");
    cr_assert_str_eq(b, "/opt/mw/bin/medwire-gateway", "an earlier result survives a later call");
}

static char *lines_of(const char *dir, const char *name, const char *content)
{
    char path[512];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "wb");
    cr_assert_not_null(f);
    fputs(content, f);
    fclose(f);
    return mwt_read_lines(path);
}

Test(proc, read_lines_leaves_out_a_line_still_being_written_and_read_bytes_a_part)
{
    const char *dir = mwt_tmpdir();
    char *a = lines_of(dir, "a", "dev-1-7f-1\ndev-1-7f-2\ndev-1-7f");
    char *b = lines_of(dir, "b", "dev-1-7f-1\n");
    char *c = lines_of(dir, "c", "dev-1-7f");
    cr_expect_str_eq(a, "dev-1-7f-1\ndev-1-7f-2\n");
    cr_expect_str_eq(b, "dev-1-7f-1\n");
    cr_expect_str_eq(c, "");
    cr_expect_null(mwt_read_lines("/nonexistent/medwire-lines"));
    char bytes[4] = "";
    char path[512];
    snprintf(path, sizeof path, "%s/a", dir);
    cr_expect_eq(mwt_read_bytes(path, bytes, sizeof bytes), 4u, "no more than asked");
    cr_expect_eq(memcmp(bytes, "dev-", 4), 0);
    cr_expect_eq(mwt_read_bytes("/nonexistent/medwire-bytes", bytes, sizeof bytes), 0u);
    free(a);
    free(b);
    free(c);
}
