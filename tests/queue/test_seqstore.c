/* SPDX-License-Identifier: Apache-2.0 */
/* test_seqstore.c -- sequence numbers never repeat across power cuts; a reboot costs at most a
 * block. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

#include "qtest.h"
#include "queue/queue.h"
#include "support/ram_storage.h"

static mwt_ram *region(uint32_t eu, uint32_t wu)
{
    mwt_ram *r = mwt_ram_create(mwi_seq_region_size(eu, wu), eu, wu);
    cr_assert_not_null(r);
    mwt_ram_strict(r, true);
    return r;
}

Test(seqstore, hands_out_increasing_numbers_from_first_with_one_durable_write_per_block)
{
    mwt_ram *ram = region(1, 1);
    mw_storage_t st = mwt_ram_storage(ram);
    mwi_seq s;
    uint64_t v, syncs;

    cr_assert_eq(mwi_seq_open(&st, 100, 5000, &s, NULL), MW_OK);
    cr_assert_eq(mwt_ram_ops(ram), 0, "open only reads");
    cr_assert_eq(mwi_seq_peek(&s), 5000);
    cr_assert_eq(mwi_seq_next(&s, &v), MW_OK);
    cr_assert_eq(v, 5000);
    syncs = mwt_ram_syncs(ram);
    for (uint64_t i = 1; i < 100; i++) {
        cr_assert_eq(mwi_seq_next(&s, &v), MW_OK);
        cr_assert_eq(v, 5000 + i);
    }
    cr_assert_eq(mwt_ram_syncs(ram), syncs, "no write inside a reserved block");
    cr_assert_eq(mwi_seq_next(&s, &v), MW_OK);
    cr_assert_eq(v, 5100);
    cr_assert_eq(mwt_ram_syncs(ram), syncs + 2, "one reservation (erase, sync, write, sync)");
    cr_assert_eq(mwt_ram_violations(ram), 0);
    mwt_ram_destroy(ram);
}

Test(seqstore, a_restart_resumes_above_every_number_and_skips_at_most_one_block)
{
    mwt_ram *ram = region(4096, 8);
    mw_storage_t st = mwt_ram_storage(ram);
    mwi_seq s;
    uint64_t v = 0, last = 0;

    for (int boot = 0; boot < 20; boot++) {
        cr_assert_eq(mwi_seq_open(&st, 64, 1, &s, NULL), MW_OK);
        for (int i = 0; i < boot * 7 + 1; i++) {
            cr_assert_eq(mwi_seq_next(&s, &v), MW_OK);
            cr_assert_gt(v, last);
            if (i == 0 && boot > 0) {
                cr_assert_leq(v - last - 1, 64, "boot %d skipped %llu", boot,
                              (unsigned long long)(v - last - 1));
            }
            last = v;
        }
    }
    cr_assert_eq(mwt_ram_violations(ram), 0);
    mwt_ram_destroy(ram);
}

Test(seqstore, a_damaged_newest_slot_resumes_one_block_past_the_other)
{
    mwt_ram *ram = region(1, 1);
    mw_storage_t st = mwt_ram_storage(ram);
    uint32_t slot = mwi_seq_region_size(1, 1) / 2;
    mwi_seq s;
    uint64_t v = 0;

    cr_assert_eq(mwi_seq_open(&st, 10, 1, &s, NULL), MW_OK);
    for (int i = 0; i < 25; i++) {
        cr_assert_eq(mwi_seq_next(&s, &v), MW_OK); /* 1..25: ceilings 11 (A, B), 21 (A), 31 (B) */
    }
    /* The newest ceiling (31) is in slot B: damage it, as a bit flip at rest would. */
    mwt_ram_flip_bit(ram, slot + 17, 2);
    cr_assert_eq(mwi_seq_open(&st, 10, 1, &s, NULL), MW_OK);
    cr_assert_eq(s.corrupt_slots, 2);
    cr_assert_eq(mwi_seq_next(&s, &v), MW_OK);
    cr_assert_geq(v, 26, "never a number handed out before (got %llu)", (unsigned long long)v);
    cr_assert_eq(v, 31, "resumes one block past the intact slot (21 + 10)");
    mwt_ram_destroy(ram);
}

Test(seqstore, both_slots_damaged_refuses_to_hand_out_numbers)
{
    mwt_ram *ram = region(1, 1);
    mw_storage_t st = mwt_ram_storage(ram);
    uint32_t slot = mwi_seq_region_size(1, 1) / 2;
    mwi_seq s;
    uint64_t v;
    mw_error_detail_t why = {0};

    cr_assert_eq(mwi_seq_open(&st, 10, 1, &s, NULL), MW_OK);
    cr_assert_eq(mwi_seq_next(&s, &v), MW_OK);
    mwt_ram_flip_bit(ram, 9, 0);
    mwt_ram_flip_bit(ram, slot + 9, 0);
    cr_assert_eq(mwi_seq_open(&st, 10, 1, &s, &why), MW_EIO);
    cr_assert(strstr(why.reason, "both slots") != NULL, "%s", why.reason);
    cr_assert_eq(mwi_seq_next(&s, &v), MW_ECLOSED);
    mwt_ram_destroy(ram);
}

/* Random fates for the pending operations of a cut. */
static void random_fates(mwt_ram *ram, uint64_t *rng, mwt_fate *f)
{
    for (size_t i = 0; i < mwt_ram_pending(ram); i++) {
        uint32_t len = mwt_ram_pending_len(ram, i);
        uint64_t r = qt_rand(rng) % 3;
        f[i].kind = (mwt_fate_kind)r;
        f[i].tear_at = len > 1 ? (uint32_t)(1 + qt_rand(rng) % (len - 1)) : 0;
    }
}

static void cuts(uint32_t eu, uint32_t wu, uint64_t seed)
{
    mwt_ram *ram = region(eu, wu);
    mw_storage_t st = mwt_ram_storage(ram);
    uint64_t rng = seed, issued = 0, max_issued = 0, worst_skip = 0, cut_writes = 0;
    const uint64_t block = 16;
    mwt_fate fates[64];
    uint64_t resume_floor = 1; /* max(start of the previous boot, max issued + 1) */
    uint64_t prev_start = 1;

    for (int cut = 0; cut < 1000; cut++) {
        mwi_seq s;
        uint64_t v;
        bool first = true;
        mw_error_detail_t why = {0};

        cr_assert_eq(mwi_seq_open(&st, block, 1, &s, &why), MW_OK, "cut %d: %s", cut, why.reason);
        mwt_ram_cut_after(ram, mwt_ram_ops(ram) + qt_rand(&rng) % 12);
        resume_floor = max_issued + 1 > prev_start ? max_issued + 1 : prev_start;
        prev_start = mwi_seq_peek(&s);
        for (;;) {
            if (mwi_seq_next(&s, &v) != MW_OK) {
                break;
            }
            cr_assert_gt(v, max_issued, "number %llu issued twice or out of order",
                         (unsigned long long)v);
            if (first) {
                uint64_t skip = v - resume_floor;
                cr_assert_leq(skip, block, "a reboot skipped %llu numbers (block %llu)",
                              (unsigned long long)skip, (unsigned long long)block);
                worst_skip = skip > worst_skip ? skip : worst_skip;
                first = false;
            }
            max_issued = v;
            issued++;
        }
        cut_writes += mwt_ram_pending(ram);
        random_fates(ram, &rng, fates);
        mwt_ram_power_cut(ram, fates);
    }
    cr_assert_eq(mwt_ram_violations(ram), 0);
    printf("seqstore eu=%u wu=%u: 1000 power cuts (%llu unsynced writes given random fates), "
           "%llu numbers issued, none twice, worst reboot skip %llu of block %llu\n",
           eu, wu, (unsigned long long)cut_writes, (unsigned long long)issued,
           (unsigned long long)worst_skip, (unsigned long long)block);
    mwt_ram_destroy(ram);
}

/* @req IEC62443-CR7.4 IEC62443-CR3.8 */
Test(seqstore, survives_1000_random_power_cuts_without_issuing_a_number_twice)
{
    cuts(1, 1, 11);
}

Test(seqstore, survives_1000_random_power_cuts_on_flash_geometry)
{
    cuts(4096, 8, 12);
}

Test(seqstore, caller_data_is_durable_at_once_and_a_cut_leaves_the_old_or_the_new_value)
{
    uint8_t a[MWI_SEQ_AUX], b[MWI_SEQ_AUX], zero[MWI_SEQ_AUX] = {0};
    memset(a, 0xA1, sizeof a);
    memset(b, 0xB2, sizeof b);
    /* Cut the second set_aux at each of its operations, the pending one applied, dropped or
     * torn after 20 bytes. */
    for (uint64_t k = 0; k < 18; k++) {
        uint64_t cut = k / 3;
        mwt_ram *ram = region(1, 1);
        mw_storage_t st = mwt_ram_storage(ram);
        mwi_seq s;
        uint64_t v = 0, last = 0;
        cr_assert_eq(mwi_seq_open(&st, 10, 1, &s, NULL), MW_OK);
        cr_assert_eq(memcmp(mwi_seq_aux(&s), zero, MWI_SEQ_AUX), 0, "fresh: zero");
        cr_assert_eq(mwi_seq_set_aux(&s, a), MW_OK);
        for (int i = 0; i < 15; i++) {
            cr_assert_eq(mwi_seq_next(&s, &v), MW_OK);
        }
        last = v;
        cr_assert_eq(mwi_seq_open(&st, 10, 1, &s, NULL), MW_OK);
        cr_assert_eq(memcmp(mwi_seq_aux(&s), a, MWI_SEQ_AUX), 0, "kept across reopen");
        mwt_ram_cut_after(ram, mwt_ram_ops(ram) + cut);
        mw_err e = mwi_seq_set_aux(&s, b);
        bool cut_happened = mwt_ram_is_dead(ram);
        mwt_fate fates[8];
        for (size_t i = 0; i < 8; i++) {
            fates[i].kind = (mwt_fate_kind)(k % 3);
            fates[i].tear_at = 20;
        }
        mwt_ram_power_cut(ram, fates);
        cr_assert_eq(mwi_seq_open(&st, 10, 1, &s, NULL), MW_OK, "cut %llu", (unsigned long long)cut);
        const uint8_t *got = mwi_seq_aux(&s);
        cr_assert(memcmp(got, a, MWI_SEQ_AUX) == 0 || memcmp(got, b, MWI_SEQ_AUX) == 0,
                  "cut %llu: old or new caller data", (unsigned long long)cut);
        if (e == MW_OK && !cut_happened) {
            cr_assert_eq(memcmp(got, b, MWI_SEQ_AUX), 0, "a returned set_aux is durable");
        }
        cr_assert_eq(mwi_seq_next(&s, &v), MW_OK);
        cr_assert_gt(v, last, "cut %llu: no number handed out twice", (unsigned long long)cut);
        mwt_ram_destroy(ram);
    }
}

Test(seqstore, a_format_1_store_is_refused_with_a_sentence)
{
    mwt_ram *ram = region(1, 1);
    mw_storage_t st = mwt_ram_storage(ram);
    mwi_seq s;
    mw_error_detail_t why = {0};
    const uint8_t v1[4] = {'M', 'W', 'S', '1'};
    mwt_ram_poke(ram, 0, v1, sizeof v1);
    cr_assert_eq(mwi_seq_open(&st, 10, 1, &s, &why), MW_ECONFIG);
    cr_assert(strstr(why.reason, "older medwire (format 1)") != NULL, "%s", why.reason);
    mwt_ram_destroy(ram);
}
