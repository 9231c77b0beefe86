/* SPDX-License-Identifier: Apache-2.0 */
/* test_queue_keys.c -- each incarnation of a queue region encrypts under its own key: a wiped,
 * copied or formatted region never reuses a nonce under one key nor accepts a foreign record. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "qtest.h"
#include "queue/format.h"
#include "support/ram_storage.h"

#define REC_NONCE_AT 16u /* nonce counter in a record header (docs/queue.md, section 6) */
#define REC_BODY_AT  28u
#define HDR_GEN_AT   8u /* generation in a half header (section 5) */

static bool contains(const uint8_t *hay, size_t n, const char *needle)
{
    size_t k = strlen(needle);
    for (size_t i = 0; i + k <= n; i++) {
        if (memcmp(hay + i, needle, k) == 0) {
            return true;
        }
    }
    return false;
}

/* A source that always gives the same bytes: two incarnations with one salt. */
static mw_err same_bytes(void *ctx, uint8_t *out, size_t len)
{
    (void)ctx;
    memset(out, 0x5A, len);
    return MW_OK;
}

static mwi_queue *open_ok(mwi_queue_config *c, qt_events *ev)
{
    mwi_queue *q = NULL;
    mw_error_detail_t why = {0};
    mw_err e;

    c->on_event = qt_on_event;
    c->event_ctx = ev;
    e = mwi_queue_open(c, &q, &why);
    cr_assert_eq(e, MW_OK, "open: %s (%s)", mw_strerror(e), why.reason);
    return q;
}

static void append_msg(mwi_queue *q, const mw_message_t *m)
{
    mw_err e = mwi_queue_append(q, m, 1000u);
    cr_assert_eq(e, MW_OK, "append %llu: %s", (unsigned long long)m->seq, mw_strerror(e));
}

/* Opens the region of @p ram with @p c, appends message 1 of priority @p p and closes: where
 * its record is, and a copy of its bytes. */
static uint8_t *append_one(mwi_queue_config *c, mwt_ram *ram, mw_priority p, uint32_t *off,
                           uint32_t *len)
{
    mw_message_t m = qt_msg(1, p, 0);
    qt_events ev;
    uint8_t *copy;
    mwi_queue *q;

    memset(&ev, 0, sizeof ev);
    q = open_ok(c, &ev);
    append_msg(q, &m);
    cr_assert_eq(mwi_queue_locate(q, 1, off, len), MW_OK);
    copy = malloc(*len);
    memcpy(copy, mwt_ram_image(ram) + *off, *len);
    mwi_queue_close(&q);
    return copy;
}

/* Opens the region with @p c, expects the record of @p seq reported corrupt and nothing
 * delivered. */
static void expect_refused(mwi_queue_config *c, uint64_t seq)
{
    qt_events ev;
    mw_message_t out[4];
    mwi_queue *q;

    memset(&ev, 0, sizeof ev);
    q = open_ok(c, &ev);
    cr_assert_eq(qt_drain(q, out, 4), 0, "a record that is not this region's was delivered");
    cr_assert_eq(ev.corrupt, 1, "reported as corrupt (%zu corrupt, %zu torn)", ev.corrupt,
                 ev.torn);
    cr_assert_eq(ev.ev[0].kind, MWI_QUEUE_CORRUPT);
    cr_assert_eq(ev.ev[0].seq, seq);
    mwi_queue_close(&q);
}

/* @req IEC62443-CR4.3 */
Test(incarnations, a_wiped_region_encrypts_under_a_new_key_and_refuses_the_old_records)
{
    uint32_t size = qt_region(8, 1, 1, 1);
    mwt_ram *ram = mwt_ram_create(size, 1, 1);
    mw_storage_t st = mwt_ram_storage(ram);
    mwi_queue_config c = qt_config(&st, 8, NULL);
    uint8_t *before, *after, *ff;
    uint32_t off, len, off2, len2;

    before = append_one(&c, ram, MW_PRIORITY_OBSERVATION, &off, &len);
    /* A factory reset, or a deleted queue file created again: every byte erased. */
    ff = malloc(size);
    memset(ff, MWI_ERASED, size);
    mwt_ram_poke(ram, 0, ff, size);
    after = append_one(&c, ram, MW_PRIORITY_OBSERVATION, &off2, &len2);

    cr_assert_eq(off2, off, "the same message lands at the same offset");
    cr_assert_eq(len2, len);
    cr_assert_eq(mwi_get64(after + REC_NONCE_AT), mwi_get64(before + REC_NONCE_AT),
                 "the nonce store started over, so the counter repeats");
    cr_assert_neq(memcmp(after + REC_BODY_AT, before + REC_BODY_AT, len - REC_BODY_AT), 0,
                  "same plaintext, offset and counter, yet another ciphertext: another key");

    /* The old incarnation's record, put back where it was, is not this region's. */
    mwt_ram_poke(ram, off, before, len);
    expect_refused(&c, 1);
    free(before);
    free(after);
    free(ff);
    mwt_ram_destroy(ram);
}

/* @req IEC62443-CR3.4 */
Test(incarnations, a_record_copied_from_another_region_under_the_same_key_is_refused)
{
    uint32_t size = qt_region(8, 1, 1, 1);
    mwt_ram *ra = mwt_ram_create(size, 1, 1), *rb = mwt_ram_create(size, 1, 1);
    mw_storage_t sa = mwt_ram_storage(ra), sb = mwt_ram_storage(rb);
    mwi_queue_config ca = qt_config(&sa, 8, NULL), cb = qt_config(&sb, 8, NULL);
    qt_events ev;
    uint8_t *rec;
    uint32_t off, len;
    mwi_queue *q;

    rec = append_one(&ca, ra, MW_PRIORITY_ALARM, &off, &len);
    memset(&ev, 0, sizeof ev);
    q = open_ok(&cb, &ev);
    mwi_queue_close(&q);

    /* B is empty; A's record goes where B's first record would be. */
    cr_assert(mwi_all_erased(mwt_ram_image(rb) + off, len));
    mwt_ram_poke(rb, off, rec, len);
    expect_refused(&cb, 1);
    free(rec);
    mwt_ram_destroy(ra);
    mwt_ram_destroy(rb);
}

/* Same salt before and after the format (a source that always gives the same bytes), so that
 * only the generation tells the two incarnations apart. */
Test(incarnations, the_first_generation_after_a_format_is_fresh_and_older_records_fail)
{
    uint32_t size = qt_region(8, 1, 1, 1);
    mwt_ram *ram = mwt_ram_create(size, 1, 1);
    mw_storage_t st = mwt_ram_storage(ram);
    mwi_queue_config c = qt_config(&st, 8, NULL);
    qt_events ev;
    mwi_queue_stats s;
    uint8_t *rec;
    uint32_t off, len;
    mwi_queue *q;

    c.random = (mw_random_t){.ctx = NULL, .fill = same_bytes};
    rec = append_one(&c, ram, MW_PRIORITY_STATUS, &off, &len);
    cr_assert_eq(mwi_queue_format(&c, NULL), MW_OK);
    memset(&ev, 0, sizeof ev);
    q = open_ok(&c, &ev);
    mwi_queue_stats_get(q, 0, &s);
    mwi_queue_close(&q);
    cr_assert_eq(ev.n, 0, "a deliberate format is not reported as damage");
    cr_assert_neq(mwi_get64(mwt_ram_image(ram) + s.active_offset + HDR_GEN_AT), 0,
                  "generation 0 is not reused after a format");
    cr_assert_gt(mwi_get64(mwt_ram_image(ram) + s.active_offset + HDR_GEN_AT),
                 mwi_get64(rec + REC_NONCE_AT), "the generation comes from the nonce store");

    mwt_ram_poke(ram, off, rec, len);
    expect_refused(&c, 1);
    free(rec);
    mwt_ram_destroy(ram);
}

/* The plaintext GCM computes before it compares the tag must not outlive the failure: the
 * queue's memory is the caller's here, so every byte of it can be searched. */
Test(incarnations, a_failed_decryption_leaves_no_plaintext_in_the_queue_memory)
{
    static uint8_t mem[1 << 20] __attribute__((aligned(64)));
    static const char canary[] = "canary 5e1f3c never in clear";
    uint32_t size = qt_region(8, 1, 1, 1);
    mwt_ram *ram = mwt_ram_create(size, 1, 1);
    mw_storage_t st = mwt_ram_storage(ram);
    mwi_queue_config c = qt_config(&st, 8, NULL);
    mw_message_t secret = qt_msg(2, MW_PRIORITY_ALARM, 0);
    mw_message_t filler = qt_msg(1, MW_PRIORITY_ALARM, 0);
    mw_message_t out, untouched;
    qt_events ev;
    uint32_t off, len;
    mwi_queue *q;

    cr_assert_eq(mwi_queue_mem_size(&c, &c.mem_size), MW_OK);
    cr_assert_leq(c.mem_size, sizeof mem);
    c.mem = mem;
    snprintf(secret.u.alarm.text, sizeof secret.u.alarm.text, "%s", canary);
    /* Longer than the secret, so that encoding it overwrites every byte the secret used. */
    memset(filler.u.alarm.text, 'x', MW_ALARM_TEXT_MAX);
    memset(&ev, 0, sizeof ev);
    q = open_ok(&c, &ev);
    append_msg(q, &secret);
    append_msg(q, &filler);
    cr_assert(!contains(mem, c.mem_size, canary),
                   "no plaintext of the secret left by the appends");

    /* One bit of its tag: the ciphertext still decrypts to the secret, the tag fails. */
    cr_assert_eq(mwi_queue_locate(q, 2, &off, &len), MW_OK);
    mwt_ram_flip_bit(ram, off + REC_BODY_AT + mwi_get16(mwt_ram_image(ram) + off + 2u), 0);
    cr_assert_eq(mwi_queue_next(q, &(mwi_queue_cursor){0}, &out), MW_OK);
    cr_assert_eq(out.seq, 1);
    memset(&out, 0xA5, sizeof out);
    memcpy(&untouched, &out, sizeof out);
    {
        mwi_queue_cursor cur = {.priority = MW_PRIORITY_ALARM, .after_seq = 1};
        cr_assert_eq(mwi_queue_next(q, &cur, &out), MW_EAGAIN, "the damaged record is skipped");
    }
    cr_assert_eq(ev.corrupt, 1);
    cr_assert_eq(memcmp(&out, &untouched, sizeof out), 0, "the output message was not written");
    cr_assert(!contains(mem, c.mem_size, canary),
                   "the unauthenticated plaintext is gone from the queue's memory");
    mwi_queue_close(&q);
    mwt_ram_destroy(ram);
}

/* @req MDS2-STCF */
Test(incarnations, a_new_queue_is_not_created_without_a_random_source)
{
    mwt_ram *ram = mwt_ram_create(qt_region(8, 1, 1, 1), 1, 1);
    mw_storage_t st = mwt_ram_storage(ram);
    mwi_queue_config c = qt_config(&st, 8, NULL);
    mw_error_detail_t why = {0};
    mwi_queue *q = NULL;

    c.random.fill = NULL;
    cr_assert_eq(mwi_queue_open(&c, &q, &why), MW_ECONFIG);
    cr_assert_null(q);
    cr_assert(strstr(why.reason, "random source") != NULL, "%s", why.reason);
    cr_assert_eq(mwt_ram_ops(ram), 0, "nothing written");

    /* An existing queue opens without one. */
    c.random = qt_random();
    cr_assert_eq(mwi_queue_open(&c, &q, NULL), MW_OK);
    mwi_queue_close(&q);
    c.random.fill = NULL;
    cr_assert_eq(mwi_queue_open(&c, &q, &why), MW_OK, "%s", why.reason);
    mwi_queue_close(&q);
    mwt_ram_destroy(ram);
}

/* A format-1 structure as the previous version wrote it: magic, version 1, CRC at @p crc_at. */
static void put_v1(uint8_t *p, uint32_t magic, uint32_t crc_at, uint32_t size)
{
    mwi_put32(p, magic);
    mwi_put16(p + 4, 1);
    mwi_put32(p + 8, size);
    mwi_put32(p + crc_at, mwi_crc32c(0, p, crc_at));
}

static void expect_v1_refused(mwt_ram *ram, mw_storage_t *st)
{
    mwi_queue_config c = qt_config(st, 8, NULL);
    mw_error_detail_t why = {0};
    mwi_queue *q = NULL;
    uint8_t *before = malloc(st->size);
    uint64_t ops = mwt_ram_ops(ram);

    mwt_ram_save(ram, before);
    cr_assert_eq(mwi_queue_open(&c, &q, &why), MW_ECONFIG);
    cr_assert_null(q);
    cr_assert(strstr(why.reason, "older medwire (queue format 1)") != NULL, "%s", why.reason);
    cr_assert(strstr(why.reason, "nothing was changed") != NULL, "%s", why.reason);
    cr_assert(strstr(why.reason, "previous version") != NULL, "%s", why.reason);
    cr_assert(strstr(why.reason, "erase the region") != NULL, "%s", why.reason);
    cr_assert_eq(mwt_ram_ops(ram), ops, "not one write or erase");
    cr_assert_arr_eq(mwt_ram_image(ram), before, st->size, "the region is unchanged");
    free(before);
}

Test(incarnations, a_region_of_format_1_is_refused_with_a_sentence_and_left_unchanged)
{
    uint32_t size = qt_region(8, 1, 1, 1);
    uint32_t hbase = mwi_align_up(mwi_seq_region_size(1, 1), 8);
    mwt_ram *ram = mwt_ram_create(size, 1, 1);
    mw_storage_t st = mwt_ram_storage(ram);
    uint8_t label[32], hdr[128], rec[64];

    /* Format 1's label: 32 bytes, last in the region, CRC at 24, trailer 0x5A. */
    memset(label, 0, sizeof label);
    put_v1(label, 0x4C51574Du, 24, size);
    label[31] = MWI_TRAILER;
    mwt_ram_poke(ram, size - sizeof label, label, sizeof label);
    /* A header and something that looks like a record after it. */
    memset(hdr, 0, sizeof hdr);
    put_v1(hdr, 0x4851574Du, 60, size);
    memcpy(hdr + 64, hdr, 64);
    mwt_ram_poke(ram, hbase, hdr, sizeof hdr);
    memset(rec, 0xC3, sizeof rec);
    mwt_ram_poke(ram, hbase + sizeof hdr, rec, sizeof rec);
    expect_v1_refused(ram, &st);

    /* Its label lost (a truncated file): the half header alone is recognised. */
    memset(label, MWI_ERASED, sizeof label);
    mwt_ram_poke(ram, size - sizeof label, label, sizeof label);
    expect_v1_refused(ram, &st);
    mwt_ram_destroy(ram);
}
