/* SPDX-License-Identifier: Apache-2.0 */
/* test_queue.c -- the offline queue keeps, orders, evicts and protects messages as queue.h
 * promises. */
#include <criterion/criterion.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "medwire/storage.h"
#include "qtest.h"
#include "queue/format.h"
#include "queue/record.h"
#include "session/codec.h"
#include "support/proc.h"
#include "support/ram_storage.h"

/* ---- fixtures ---------------------------------------------------------------------------- */

typedef struct fix {
    mwt_ram *ram;
    mw_storage_t st;
    qt_events ev;
    mwi_queue *q;
    uint32_t capacity;
} fix;

static void fix_open(fix *f)
{
    mw_error_detail_t why = {0};
    mwi_queue_config c = qt_config(&f->st, f->capacity, &f->ev);
    mw_err e = mwi_queue_open(&c, &f->q, &why);
    cr_assert_eq(e, MW_OK, "open: %s (%s)", mw_strerror(e), why.reason);
}

static void fix_init(fix *f, uint32_t capacity, uint32_t eu, uint32_t wu, uint32_t factor)
{
    memset(f, 0, sizeof *f);
    f->capacity = capacity;
    f->ram = mwt_ram_create(qt_region(capacity, eu, wu, factor), eu, wu);
    cr_assert_not_null(f->ram);
    mwt_ram_strict(f->ram, true);
    f->st = mwt_ram_storage(f->ram);
    fix_open(f);
}

static void fix_reopen(fix *f)
{
    mwi_queue_close(&f->q);
    cr_assert_null(f->q);
    fix_open(f);
}

static void fix_fini(fix *f)
{
    mwi_queue_close(&f->q);
    cr_assert_eq(mwt_ram_violations(f->ram), 0, "the queue wrote over unerased or unaligned bytes");
    mwt_ram_destroy(f->ram);
}

static void append(fix *f, uint64_t seq, mw_priority p)
{
    mw_message_t m = qt_msg(seq, p, 0);
    mw_err e = mwi_queue_append(f->q, &m, 1000u + seq);
    cr_assert_eq(e, MW_OK, "append %llu: %s", (unsigned long long)seq, mw_strerror(e));
}

static void ack1(fix *f, uint64_t first, uint64_t last)
{
    mwi_seq_range r = {first, last};
    size_t removed;
    cr_assert_eq(mwi_queue_ack(f->q, &r, 1, 0, &removed), MW_OK);
}

static size_t seqs_of(fix *f, uint64_t *out, size_t cap)
{
    static mw_message_t m[4096];
    size_t n = qt_drain(f->q, m, cap < 4096 ? cap : 4096);
    for (size_t i = 0; i < n; i++) {
        mw_message_t ref = qt_msg(m[i].seq, m[i].priority, 0);
        out[i] = m[i].seq;
        cr_assert(qt_msg_eq(&m[i], &ref), "message %llu changed in the queue",
                  (unsigned long long)m[i].seq);
    }
    return n;
}

static void expect_seqs(fix *f, const uint64_t *want, size_t n)
{
    uint64_t got[512];
    size_t k = seqs_of(f, got, 512);
    cr_assert_eq(k, n, "queue holds %zu messages, expected %zu", k, n);
    for (size_t i = 0; i < n; i++) {
        cr_assert_eq(got[i], want[i], "position %zu: seq %llu, expected %llu", i,
                     (unsigned long long)got[i], (unsigned long long)want[i]);
    }
}

/* ---- storage backends -------------------------------------------------------------------- */

Test(storage, crc32c_matches_the_standard_check_value)
{
    cr_assert_eq(mwi_crc32c(0, (const uint8_t *)"123456789", 9), 0xE3069283u);
    cr_assert_eq(mwi_crc32c(mwi_crc32c(0, (const uint8_t *)"1234", 4), (const uint8_t *)"56789", 5),
                 0xE3069283u, "the CRC continues across calls");
}

/* @req IEC62443-CR4.1 MDS2-STCF */
Test(storage, file_backend_creates_an_owner_only_file_of_erased_bytes)
{
    char path[512];
    mw_storage_t st;
    mw_error_detail_t why = {0};
    struct stat sb;
    uint8_t buf[64];

    snprintf(path, sizeof path, "%s/q.bin", mwt_tmpdir());
    cr_assert_eq(mw_storage_file_open(path, 10000, &st, &why), MW_OK, "%s", why.reason);
    cr_assert_eq(stat(path, &sb), 0);
    cr_assert_eq(sb.st_mode & 0777, 0600, "mode %o", sb.st_mode & 0777);
    cr_assert_eq(sb.st_size, 10000);
    cr_assert_eq(st.size, 10000);
    cr_assert_eq(st.erase_unit, 1);
    cr_assert_eq(st.read(st.ctx, 9936, buf, sizeof buf), MW_OK);
    cr_assert(mwi_all_erased(buf, sizeof buf));
    cr_assert_eq(st.read(st.ctx, 9990, buf, 20), MW_EINVAL, "reads stay inside the region");
    cr_assert_eq(st.write(st.ctx, 9999, buf, 2), MW_EINVAL, "writes stay inside the region");
    mw_storage_file_close(&st);
    cr_assert_null(st.ctx);
}

Test(storage, file_backend_keeps_written_bytes_across_reopen_and_erase_sets_them_to_ff)
{
    char path[512];
    mw_storage_t st;
    uint8_t data[100], back[100];

    for (unsigned i = 0; i < sizeof data; i++) {
        data[i] = (uint8_t)i;
    }
    snprintf(path, sizeof path, "%s/q.bin", mwt_tmpdir());
    cr_assert_eq(mw_storage_file_open(path, 4096, &st, NULL), MW_OK);
    cr_assert_eq(st.write(st.ctx, 1000, data, sizeof data), MW_OK);
    cr_assert_eq(st.sync(st.ctx), MW_OK);
    mw_storage_file_close(&st);
    cr_assert_eq(mw_storage_file_open(path, 4096, &st, NULL), MW_OK);
    cr_assert_eq(st.read(st.ctx, 1000, back, sizeof back), MW_OK);
    cr_assert_arr_eq(back, data, sizeof data);
    cr_assert_eq(st.erase(st.ctx, 1010, 20), MW_OK);
    cr_assert_eq(st.read(st.ctx, 1000, back, sizeof back), MW_OK);
    cr_assert_arr_eq(back, data, 10);
    cr_assert(mwi_all_erased(back + 10, 20));
    cr_assert_arr_eq(back + 30, data + 30, 70);
    mw_storage_file_close(&st);
}

Test(storage, file_backend_reads_a_truncated_tail_as_erased_and_extends_it_on_open)
{
    char path[512];
    mw_storage_t st;
    uint8_t buf[16];
    struct stat sb;

    snprintf(path, sizeof path, "%s/q.bin", mwt_tmpdir());
    cr_assert_eq(mw_storage_file_open(path, 4096, &st, NULL), MW_OK);
    memset(buf, 0x11, sizeof buf);
    cr_assert_eq(st.write(st.ctx, 4080, buf, sizeof buf), MW_OK);
    cr_assert_eq(truncate(path, 4084), 0);
    cr_assert_eq(st.read(st.ctx, 4080, buf, sizeof buf), MW_OK);
    cr_assert_eq(buf[3], 0x11);
    cr_assert(mwi_all_erased(buf + 4, 12), "bytes past the end read as erased");
    mw_storage_file_close(&st);
    cr_assert_eq(mw_storage_file_open(path, 4096, &st, NULL), MW_OK);
    cr_assert_eq(stat(path, &sb), 0);
    cr_assert_eq(sb.st_size, 4096);
    mw_storage_file_close(&st);
}

Test(storage, file_backend_refuses_a_second_process_while_the_first_holds_it)
{
    char path[512];
    mw_storage_t st;
    pid_t pid;
    int status = 0;

    snprintf(path, sizeof path, "%s/q.bin", mwt_tmpdir());
    cr_assert_eq(mw_storage_file_open(path, 4096, &st, NULL), MW_OK);
    pid = fork();
    cr_assert_neq(pid, -1);
    if (pid == 0) {
        mw_storage_t other;
        mw_error_detail_t why = {0};
        mw_err e = mw_storage_file_open(path, 4096, &other, &why);
        _exit(e == MW_EIO && strstr(why.reason, "lock") != NULL ? 0 : 1);
    }
    cr_assert_eq(waitpid(pid, &status, 0), pid);
    cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0,
              "a second process must not open a queue file in use");
    mw_storage_file_close(&st);
}

Test(storage, slice_confines_reads_writes_and_erases_to_its_range)
{
    mwt_ram *ram = mwt_ram_create(4096, 256, 8);
    mw_storage_t parent = mwt_ram_storage(ram);
    mw_storage_slice_t sl;
    mw_storage_t s;
    uint8_t b[8] = {1, 2, 3, 4, 5, 6, 7, 8};

    cr_assert_eq(mw_storage_slice(&parent, 100, 256, &sl, &s), MW_EINVAL, "misaligned slice");
    cr_assert_eq(mw_storage_slice(&parent, 3840, 512, &sl, &s), MW_EINVAL, "past the parent");
    cr_assert_eq(mw_storage_slice(&parent, 1024, 512, &sl, &s), MW_OK);
    cr_assert_eq(s.size, 512);
    cr_assert_eq(s.write(s.ctx, 0, b, 8), MW_OK);
    cr_assert_arr_eq(mwt_ram_image(ram) + 1024, b, 8);
    cr_assert_eq(s.write(s.ctx, 508, b, 8), MW_EINVAL);
    cr_assert_eq(s.erase(s.ctx, 256, 512), MW_EINVAL);
    cr_assert_eq(s.erase(s.ctx, 0, 256), MW_OK);
    cr_assert(mwi_all_erased(mwt_ram_image(ram) + 1024, 8));
    cr_assert_eq(s.sync(s.ctx), MW_OK);
    mwt_ram_destroy(ram);
}

Test(storage, ram_backend_power_cut_applies_drops_and_tears_each_pending_write)
{
    mwt_ram *ram = mwt_ram_create(64, 1, 1);
    mw_storage_t s = mwt_ram_storage(ram);
    uint8_t a[8] = {1, 1, 1, 1, 1, 1, 1, 1}, b[8] = {2, 2, 2, 2, 2, 2, 2, 2}, r[8];
    mwt_fate fates[3] = {{MWT_FATE_DROP, 0}, {MWT_FATE_TEAR, 3}, {MWT_FATE_APPLY, 0}};

    cr_assert_eq(s.write(s.ctx, 0, a, 8), MW_OK);
    cr_assert_eq(s.sync(s.ctx), MW_OK);
    mwt_ram_cut_after(ram, 3);
    cr_assert_eq(s.write(s.ctx, 8, b, 8), MW_OK);
    cr_assert_eq(s.write(s.ctx, 16, b, 8), MW_OK);
    cr_assert_eq(s.read(s.ctx, 8, r, 8), MW_OK, "reads see unsynced writes");
    cr_assert_arr_eq(r, b, 8);
    cr_assert_eq(s.erase(s.ctx, 0, 8), MW_OK, "the operation power fails after is accepted");
    cr_assert(mwt_ram_is_dead(ram));
    cr_assert_eq(s.write(s.ctx, 24, b, 8), MW_EIO);
    cr_assert_eq(s.sync(s.ctx), MW_EIO);
    cr_assert_eq(mwt_ram_pending(ram), 3);
    mwt_ram_power_cut(ram, fates);
    cr_assert(mwi_all_erased(mwt_ram_image(ram), 8), "the erase applied");
    cr_assert(mwi_all_erased(mwt_ram_image(ram) + 8, 8), "dropped");
    cr_assert_arr_eq(mwt_ram_image(ram) + 16, b, 3, "torn after 3 bytes");
    cr_assert(mwi_all_erased(mwt_ram_image(ram) + 19, 5));
    cr_assert_eq(s.read(s.ctx, 0, r, 8), MW_OK, "alive again");
    mwt_ram_destroy(ram);
}

/* ---- order, content, acknowledgement ----------------------------------------------------- */

Test(queue, round_trips_every_message_kind_exactly)
{
    fix f;
    mw_message_t in[3] = {qt_msg(7, MW_PRIORITY_ALARM, 3), qt_msg(8, MW_PRIORITY_OBSERVATION, 4),
                          qt_msg(9, MW_PRIORITY_STATUS, 5)};
    mw_message_t out[3];

    fix_init(&f, 8, 1, 1, 1);
    for (int i = 0; i < 3; i++) {
        cr_assert_eq(mwi_queue_append(f.q, &in[i], 5), MW_OK);
    }
    cr_assert_eq(qt_drain(f.q, out, 3), 3);
    for (int i = 0; i < 3; i++) {
        cr_assert(qt_msg_eq(&in[i], &out[i]), "kind %d changed on the way", i);
    }
    fix_reopen(&f);
    cr_assert_eq(qt_drain(f.q, out, 3), 3);
    for (int i = 0; i < 3; i++) {
        cr_assert(qt_msg_eq(&in[i], &out[i]), "kind %d changed across reopen", i);
    }
    fix_fini(&f);
}

Test(queue, a_source_survives_reopen_and_reaches_the_gateway_in_the_batch)
{
    fix f;
    mw_message_t in[2] = {qt_msg(3, MW_PRIORITY_ALARM, 9), qt_msg(4, MW_PRIORITY_OBSERVATION, 7)};
    mw_message_t out[2], got[2];
    const mw_message_t *ptrs[2] = {&out[0], &out[1]};
    uint8_t buf[2 * (medwire_v1_Envelope_size + 3)];
    size_t len = 0, n = 0;
    uint64_t low = 0;

    /* The longest source there is, on the alarm. */
    memset(in[0].u.alarm.source, 'B', MW_SOURCE_MAX);
    fix_init(&f, 8, 1, 1, 1);
    for (int i = 0; i < 2; i++) {
        cr_assert_eq(mwi_queue_append(f.q, &in[i], 5), MW_OK);
    }
    fix_reopen(&f);
    cr_assert_eq(qt_drain(f.q, out, 2), 2);
    cr_assert_str_eq(out[0].u.alarm.source, in[0].u.alarm.source);
    cr_assert_str_eq(out[1].u.observation.source, "MON-7");
    cr_assert_eq(mwi_batch_encode_ptrs(ptrs, 2, 1, buf, sizeof buf, &len, &n), MW_OK);
    cr_assert_eq(n, 2);
    cr_assert_eq(mwi_batch_decode(buf, len, got, 2, &n, &low), MW_OK);
    cr_assert_eq(n, 2);
    for (int i = 0; i < 2; i++) {
        cr_assert(qt_msg_eq(&in[i], &got[i]), "message %d changed between device and gateway", i);
    }
    fix_fini(&f);
}

/* A MSG record body as the previous version wrote it, before Envelope.source existed: the
 * append time (8 bytes, little endian) and the Envelope {version 1, device_id "dev1", seq 5,
 * priority 2, observation {mdc_code 1, mantissa 975, exponent -1, unit "%", time_ms 7}}. */
static const uint8_t V2_OBSERVATION_BODY[] = {
    0x2A, 0,    0,    0,    0,    0,    0,    0,                /* append time 42 */
    0x08, 0x01, 0x12, 0x04, 'd',  'e',  'v',  '1',  0x18, 0x05, /* version, device_id, seq */
    0x30, 0x02, 0x52, 0x0C,                                     /* priority, observation */
    0x08, 0x01, 0x10, 0x9E, 0x0F, 0x18, 0x01, 0x22, 0x01, '%',  0x30, 0x07,
};

Test(queue, records_of_the_previous_version_still_decode_and_a_sourceless_message_encodes_alike)
{
    mw_message_t m, want;
    mwi_rec_hdr h = {.type = MWI_REC_MSG, .prio = MW_PRIORITY_OBSERVATION, .seq = 5};
    uint8_t body[MWI_MSG_BODY_MAX];
    uint32_t len = 0;

    memset(&want, 0, sizeof want);
    strcpy(want.device_id, "dev1");
    want.seq = 5;
    want.priority = MW_PRIORITY_OBSERVATION;
    want.type = MW_MSG_OBSERVATION;
    want.u.observation.mdc_code = 1;
    want.u.observation.mantissa = 975;
    want.u.observation.exponent = -1;
    strcpy(want.u.observation.unit, "%");
    want.u.observation.time_ms = 7;
    /* The queue's format is unchanged: an old record reads as a message without a source ... */
    cr_assert(mwi_rec_decode_message(V2_OBSERVATION_BODY, sizeof V2_OBSERVATION_BODY, &h, &m));
    cr_assert(qt_msg_eq(&m, &want));
    cr_assert_str_eq(m.u.observation.source, "");
    /* ... and a message without one is written byte for byte as before. */
    cr_assert_eq(mwi_rec_encode_message(&want, 42, body, &len), MW_OK);
    cr_assert_eq(len, sizeof V2_OBSERVATION_BODY);
    cr_assert_arr_eq(body, V2_OBSERVATION_BODY, len);
}

Test(queue, a_region_the_previous_version_recommended_still_opens)
{
    /* mw_client_storage_size gives twice the minimum region; before sources, the minimum for
     * 256 messages on a file was 124,528 bytes. A source adds 40 bytes to the largest record,
     * and the queue such a device already has must still open. */
    uint32_t min = 0;
    fix f;

    cr_assert_eq(mwi_queue_region_min(256, 1, 1, &min), MW_OK);
    cr_assert_gt(min, 124528u, "the largest record grew");
    cr_assert_leq(min, 2u * 124528u);
    memset(&f, 0, sizeof f);
    f.capacity = 256;
    f.ram = mwt_ram_create(2u * 124528u, 1, 1);
    cr_assert_not_null(f.ram);
    f.st = mwt_ram_storage(f.ram);
    fix_open(&f);
    append(&f, 1, MW_PRIORITY_OBSERVATION);
    fix_reopen(&f);
    expect_seqs(&f, (const uint64_t[]){1}, 1);
    fix_fini(&f);
}

Test(queue, iterates_alarms_first_then_observations_then_status_each_oldest_first)
{
    fix f;
    const mw_priority order[] = {MW_PRIORITY_STATUS,      MW_PRIORITY_OBSERVATION,
                                 MW_PRIORITY_ALARM,       MW_PRIORITY_OBSERVATION,
                                 MW_PRIORITY_STATUS,      MW_PRIORITY_ALARM,
                                 MW_PRIORITY_OBSERVATION, MW_PRIORITY_ALARM};
    const uint64_t want[] = {3, 6, 8, 2, 4, 7, 1, 5};
    mw_message_t batch[4];
    size_t n;

    fix_init(&f, 16, 1, 1, 1);
    for (uint64_t s = 1; s <= 8; s++) {
        append(&f, s, order[s - 1]);
    }
    expect_seqs(&f, want, 8);
    cr_assert_eq(mwi_queue_peek(f.q, batch, 4, &n), MW_OK);
    cr_assert_eq(n, 4, "a batch is the first messages in flush order");
    cr_assert_eq(batch[0].seq, 3);
    cr_assert_eq(batch[3].seq, 2);
    fix_reopen(&f);
    expect_seqs(&f, want, 8);
    fix_fini(&f);
}

Test(queue, cursor_survives_acks_and_appends_between_steps)
{
    fix f;
    mwi_queue_cursor c;
    mw_message_t m;

    fix_init(&f, 16, 1, 1, 1);
    append(&f, 1, MW_PRIORITY_OBSERVATION);
    append(&f, 2, MW_PRIORITY_OBSERVATION);
    append(&f, 3, MW_PRIORITY_OBSERVATION);
    mwi_queue_cursor_init(&c);
    cr_assert_eq(mwi_queue_next(f.q, &c, &m), MW_OK);
    cr_assert_eq(m.seq, 1);
    ack1(&f, 1, 2);
    append(&f, 4, MW_PRIORITY_OBSERVATION);
    cr_assert_eq(mwi_queue_next(f.q, &c, &m), MW_OK);
    cr_assert_eq(m.seq, 3, "the cursor continues after the last returned number");
    cr_assert_eq(mwi_queue_next(f.q, &c, &m), MW_OK);
    cr_assert_eq(m.seq, 4);
    cr_assert_eq(mwi_queue_next(f.q, &c, &m), MW_EAGAIN);
    fix_fini(&f);
}

static bool skip_two(void *ctx, uint64_t seq)
{
    (void)ctx;
    return seq == 2;
}

Test(queue, a_cursor_passes_over_skipped_messages_without_reading_them)
{
    fix f;
    mwi_queue_cursor c;
    mw_message_t m;
    uint32_t off = 0, len = 0;

    fix_init(&f, 16, 1, 1, 1);
    append(&f, 1, MW_PRIORITY_OBSERVATION);
    append(&f, 2, MW_PRIORITY_OBSERVATION);
    append(&f, 3, MW_PRIORITY_OBSERVATION);
    /* Damage the skipped record: reading it would report and drop it. */
    cr_assert_eq(mwi_queue_locate(f.q, 2, &off, &len), MW_OK);
    mwt_ram_flip_bit(f.ram, off + len - 8, 1);
    mwi_queue_cursor_init(&c);
    c.skip = skip_two;
    cr_assert_eq(mwi_queue_next(f.q, &c, &m), MW_OK);
    cr_assert_eq(m.seq, 1);
    cr_assert_eq(mwi_queue_next(f.q, &c, &m), MW_OK);
    cr_assert_eq(m.seq, 3);
    cr_assert_eq(mwi_queue_next(f.q, &c, &m), MW_EAGAIN);
    cr_assert_eq(f.ev.corrupt, 0, "the skipped record was never read");
    cr_assert_eq(mwi_queue_depth(f.q), 3);
    fix_fini(&f);
}

Test(queue, ack_removes_only_the_acknowledged_numbers_and_survives_reopen)
{
    fix f;
    mwi_seq_range r[3] = {{2, 3}, {6, 6}, {100, 200}};
    size_t removed = 99;
    const uint64_t want[] = {1, 4, 5, 7};

    fix_init(&f, 16, 1, 1, 1);
    for (uint64_t s = 1; s <= 7; s++) {
        append(&f, s, MW_PRIORITY_OBSERVATION);
    }
    cr_assert_eq(mwi_queue_ack(f.q, r, 3, 0, &removed), MW_OK);
    cr_assert_eq(removed, 3);
    expect_seqs(&f, want, 4);
    cr_assert_eq(mwi_queue_ack(f.q, r, 3, 0, &removed), MW_OK);
    cr_assert_eq(removed, 0, "a repeated acknowledgement removes nothing");
    fix_reopen(&f);
    expect_seqs(&f, want, 4);
    fix_fini(&f);
}

Test(queue, refuses_invalid_input_without_writing)
{
    fix f;
    mw_message_t m = qt_msg(5, MW_PRIORITY_OBSERVATION, 0);
    mwi_seq_range bad = {5, 4};
    mwi_seq_range many[MWI_MAX_ACK_RANGES + 1];
    uint64_t ops;

    fix_init(&f, 8, 1, 1, 1);
    append(&f, 5, MW_PRIORITY_OBSERVATION);
    ops = mwt_ram_ops(f.ram);
    cr_assert_eq(mwi_queue_append(f.q, &m, 0), MW_EINVAL, "a queued number again");
    m.seq = 0;
    cr_assert_eq(mwi_queue_append(f.q, &m, 0), MW_EINVAL, "number 0");
    m = qt_msg(6, MW_PRIORITY_OBSERVATION, 0);
    strcpy(m.u.observation.unit, "m g"); /* UCUM has no spaces */
    cr_assert_eq(mwi_queue_append(f.q, &m, 0), MW_EINVAL, "a message the gateway would refuse");
    m = qt_msg(6, (mw_priority)7, 0);
    cr_assert_eq(mwi_queue_append(f.q, &m, 0), MW_EINVAL, "priority out of range");
    cr_assert_eq(mwi_queue_ack(f.q, &bad, 1, 0, NULL), MW_EINVAL);
    for (size_t i = 0; i < MWI_MAX_ACK_RANGES + 1; i++) {
        many[i] = (mwi_seq_range){i + 1, i + 1};
    }
    cr_assert_eq(mwi_queue_ack(f.q, many, MWI_MAX_ACK_RANGES + 1, 0, NULL), MW_EINVAL);
    cr_assert_eq(mwi_queue_ack(f.q, NULL, 1, 0, NULL), MW_EINVAL);
    cr_assert_eq(mwt_ram_ops(f.ram), ops, "nothing was written for refused input");
    fix_fini(&f);
}

Test(queue, compacts_automatically_when_the_half_is_full_and_loses_nothing)
{
    fix f;
    mwi_queue_stats s;
    uint64_t next = 1, acked_to = 0;

    fix_init(&f, 32, 1, 1, 1);
    /* Keep about 20 messages queued while hundreds pass through. */
    for (int round = 0; round < 600; round++) {
        append(&f, next++, (mw_priority)(1 + round % 3));
        if (next - acked_to > 20) {
            ack1(&f, acked_to + 1, acked_to + 2);
            acked_to += 2;
        }
    }
    mwi_queue_stats_get(f.q, 0, &s);
    cr_assert_gt(s.compactions, 3, "the log was compacted (%llu)",
                 (unsigned long long)s.compactions);
    cr_assert_eq(s.depth, next - 1 - acked_to);
    fix_reopen(&f);
    mwi_queue_stats_get(f.q, 0, &s);
    cr_assert_eq(s.depth, next - 1 - acked_to);
    for (uint64_t q = acked_to + 1; q < next; q++) {
        uint32_t off, len;
        cr_assert_eq(mwi_queue_locate(f.q, q, &off, &len), MW_OK, "seq %llu kept",
                     (unsigned long long)q);
    }
    cr_assert_eq(f.ev.n, 0, "no event for a healthy queue");
    fix_fini(&f);
}

Test(queue, explicit_compaction_keeps_the_queue_and_its_gap_table)
{
    fix f;
    const uint64_t want[] = {6, 3, 4, 5};
    mwi_queue_gap g[MWI_QUEUE_GAP_SLOTS];

    fix_init(&f, 4, 1, 1, 1);
    for (uint64_t s = 1; s <= 5; s++) {
        append(&f, s, MW_PRIORITY_OBSERVATION);
    }
    append(&f, 6, MW_PRIORITY_ALARM);
    cr_assert_eq(mwi_queue_compact(f.q), MW_OK);
    expect_seqs(&f, want, 4);
    cr_assert_eq(mwi_queue_gaps(f.q, g, MWI_QUEUE_GAP_SLOTS), 1);
    cr_assert_eq(g[0].count, 2);
    fix_reopen(&f);
    expect_seqs(&f, want, 4);
    cr_assert_eq(mwi_queue_gaps(f.q, g, MWI_QUEUE_GAP_SLOTS), 1);
    cr_assert_eq(g[0].count, 2, "the gap table survives compaction and reopen");
    cr_assert_eq(g[0].first_seq, 1);
    cr_assert_eq(g[0].last_seq, 2);
    fix_fini(&f);
}

/* ---- full queue -------------------------------------------------------------------------- */

/* @req IEC62443-CR7.2 */
Test(queue, fills_while_offline_evicts_lowest_priority_oldest_first_and_reports_each_gap)
{
    fix f;
    mwi_queue_stats s;
    mwi_queue_gap g[MWI_QUEUE_GAP_SLOTS];
    uint64_t evicted_status[64], evicted_obs[64];
    size_t ns = 0, no = 0, ng;
    mw_message_t all[16];
    size_t n;

    fix_init(&f, 10, 1, 1, 1);
    /* Offline for a long time: 10 status, then 40 observations with an alarm every 8. */
    for (uint64_t q = 1; q <= 10; q++) {
        append(&f, q, MW_PRIORITY_STATUS);
    }
    for (uint64_t q = 11; q <= 50; q++) {
        append(&f, q, q % 8 == 0 ? MW_PRIORITY_ALARM : MW_PRIORITY_OBSERVATION);
    }
    for (size_t i = 0; i < f.ev.n; i++) {
        cr_assert_eq(f.ev.ev[i].kind, MWI_QUEUE_EVICTED);
        cr_assert_neq(f.ev.ev[i].priority, MW_PRIORITY_ALARM, "an alarm was evicted");
        if (f.ev.ev[i].priority == MW_PRIORITY_STATUS) {
            evicted_status[ns++] = f.ev.ev[i].seq;
        } else {
            evicted_obs[no++] = f.ev.ev[i].seq;
        }
    }
    cr_assert_eq(ns, 10, "every status message went first");
    for (size_t i = 0; i < ns; i++) {
        cr_assert_eq(evicted_status[i], i + 1, "status evicted oldest first");
    }
    /* 40 arrivals into a full queue: 10 status and then observations, never the 5 alarms. */
    cr_assert_eq(ns + no, 40);
    for (size_t i = 1; i < no; i++) {
        cr_assert_gt(evicted_obs[i], evicted_obs[i - 1], "observations evicted oldest first");
    }
    n = qt_drain(f.q, all, 16);
    cr_assert_eq(n, 10);
    for (size_t i = 0; i < 5; i++) {
        cr_assert_eq(all[i].priority, MW_PRIORITY_ALARM, "alarms first, all kept");
        cr_assert_eq(all[i].seq, 16 + 8 * i);
    }
    for (size_t i = 5; i < 10; i++) {
        cr_assert_eq(all[i].priority, MW_PRIORITY_OBSERVATION);
    }
    mwi_queue_stats_get(f.q, 0, &s);
    cr_assert_eq(s.evicted, 40);
    cr_assert_eq(s.depth, 10);
    ng = mwi_queue_gaps(f.q, g, MWI_QUEUE_GAP_SLOTS);
    cr_assert_eq(ng, 2);
    for (size_t i = 0; i < ng; i++) {
        cr_assert_eq(g[i].reason, MWI_QUEUE_GAP_EVICTED);
        if (g[i].priority == MW_PRIORITY_STATUS) {
            cr_assert_eq(g[i].count, 10);
            cr_assert_eq(g[i].first_seq, 1);
            cr_assert_eq(g[i].last_seq, 10);
        } else {
            cr_assert_eq(g[i].priority, MW_PRIORITY_OBSERVATION);
            cr_assert_eq(g[i].count, no);
            cr_assert_eq(g[i].first_seq, evicted_obs[0]);
            cr_assert_eq(g[i].last_seq, evicted_obs[no - 1]);
        }
    }
    fix_reopen(&f);
    cr_assert_eq(mwi_queue_gaps(f.q, g, MWI_QUEUE_GAP_SLOTS), 2, "gaps are durable");
    cr_assert_eq(qt_drain(f.q, all, 16), 10);
    fix_fini(&f);
}

Test(queue, refuses_a_lower_priority_message_when_full_of_higher_ones)
{
    fix f;
    mw_message_t m = qt_msg(9, MW_PRIORITY_STATUS, 0);
    uint64_t ops;

    fix_init(&f, 4, 1, 1, 1);
    for (uint64_t q = 1; q <= 4; q++) {
        append(&f, q, q == 1 ? MW_PRIORITY_ALARM : MW_PRIORITY_OBSERVATION);
    }
    cr_assert(!mwi_queue_accepts(f.q, MW_PRIORITY_STATUS));
    cr_assert(mwi_queue_accepts(f.q, MW_PRIORITY_OBSERVATION));
    cr_assert(mwi_queue_accepts(f.q, MW_PRIORITY_ALARM));
    ops = mwt_ram_ops(f.ram);
    cr_assert_eq(mwi_queue_append(f.q, &m, 0), MW_EFULL);
    cr_assert_eq(mwt_ram_ops(f.ram), ops);
    cr_assert_eq(f.ev.n, 0, "nothing evicted for a message that was refused");
    fix_fini(&f);
}

Test(queue, evicts_the_oldest_alarm_only_when_the_queue_holds_nothing_else)
{
    fix f;
    const uint64_t want[] = {2, 3, 4};

    fix_init(&f, 3, 1, 1, 1);
    append(&f, 1, MW_PRIORITY_ALARM);
    append(&f, 2, MW_PRIORITY_ALARM);
    append(&f, 3, MW_PRIORITY_ALARM);
    cr_assert(!mwi_queue_accepts(f.q, MW_PRIORITY_OBSERVATION));
    append(&f, 4, MW_PRIORITY_ALARM);
    cr_assert_eq(f.ev.evicted, 1);
    cr_assert_eq(f.ev.ev[0].seq, 1);
    expect_seqs(&f, want, 3);
    fix_fini(&f);
}

Test(queue, gap_table_survives_reopen_and_clearing_keeps_what_was_added_since)
{
    fix f;
    mwi_queue_gap sent[MWI_QUEUE_GAP_SLOTS], now[MWI_QUEUE_GAP_SLOTS];

    fix_init(&f, 2, 1, 1, 1);
    for (uint64_t q = 1; q <= 5; q++) {
        append(&f, q, MW_PRIORITY_OBSERVATION); /* evicts 1, 2, 3 */
    }
    cr_assert_eq(mwi_queue_gaps(f.q, sent, MWI_QUEUE_GAP_SLOTS), 1);
    cr_assert_eq(sent[0].count, 3);
    /* More are evicted while the gap record is on its way. */
    append(&f, 6, MW_PRIORITY_OBSERVATION); /* evicts 4 */
    fix_reopen(&f);
    cr_assert_eq(mwi_queue_gaps_clear(f.q, sent, 1), MW_OK);
    cr_assert_eq(mwi_queue_gaps(f.q, now, MWI_QUEUE_GAP_SLOTS), 1);
    cr_assert_eq(now[0].count, 1, "only what was added since remains");
    cr_assert_eq(now[0].first_seq, 4);
    cr_assert_eq(now[0].last_seq, 4);
    fix_reopen(&f);
    cr_assert_eq(mwi_queue_gaps(f.q, now, MWI_QUEUE_GAP_SLOTS), 1, "the clearing is durable");
    cr_assert_eq(now[0].count, 1);
    cr_assert_eq(mwi_queue_gaps_clear(f.q, now, 1), MW_OK);
    cr_assert_eq(mwi_queue_gaps(f.q, now, MWI_QUEUE_GAP_SLOTS), 0);
    fix_reopen(&f);
    cr_assert_eq(mwi_queue_gaps(f.q, now, MWI_QUEUE_GAP_SLOTS), 0);
    fix_fini(&f);
}

/* ---- keys and configuration -------------------------------------------------------------- */

/* @req IEC62443-CR4.1 MDS2-STCF */
Test(queue, wrong_key_is_refused_with_a_reason_and_leaves_the_data_intact)
{
    fix f;
    mwi_queue_config c;
    mwi_queue *q2 = NULL;
    mw_error_detail_t why = {0};
    uint8_t *before;
    const uint64_t want[] = {3, 1, 2};

    fix_init(&f, 8, 1, 1, 1);
    append(&f, 1, MW_PRIORITY_OBSERVATION);
    append(&f, 2, MW_PRIORITY_STATUS);
    append(&f, 3, MW_PRIORITY_ALARM);
    mwi_queue_close(&f.q);
    before = malloc(f.st.size);
    mwt_ram_save(f.ram, before);

    c = qt_config(&f.st, 8, &f.ev);
    c.key = qt_other_key;
    cr_assert_eq(mwi_queue_open(&c, &q2, &why), MW_ECONFIG);
    cr_assert_null(q2);
    cr_assert(strstr(why.reason, "key") != NULL, "the reason names the key: %s", why.reason);
    c.key_len = 16;
    c.key = qt_key;
    memset(&why, 0, sizeof why);
    cr_assert_eq(mwi_queue_open(&c, &q2, &why), MW_ECONFIG, "a prefix of the key is another key");
    cr_assert(strstr(why.reason, "key") != NULL, "%s", why.reason);
    cr_assert_arr_eq(mwt_ram_image(f.ram), before, f.st.size, "a refused open wrote nothing");

    fix_open(&f);
    expect_seqs(&f, want, 3);
    free(before);
    fix_fini(&f);
}

/* @req MDS2-STCF */
Test(queue, missing_key_is_refused_with_a_reason)
{
    mwt_ram *ram = mwt_ram_create(qt_region(8, 1, 1, 1), 1, 1);
    mw_storage_t st = mwt_ram_storage(ram);
    mwi_queue_config c = qt_config(&st, 8, NULL);
    mwi_queue *q = NULL;
    mw_error_detail_t why = {0};

    c.key = NULL;
    c.key_len = 0;
    cr_assert_eq(mwi_queue_open(&c, &q, &why), MW_ECONFIG);
    cr_assert(strstr(why.reason, "key missing") != NULL, "%s", why.reason);
    c.key = qt_key;
    c.key_len = 24;
    memset(&why, 0, sizeof why);
    cr_assert_eq(mwi_queue_open(&c, &q, &why), MW_ECONFIG, "AES-192 is not offered");
    cr_assert(strstr(why.reason, "16 or 32") != NULL, "%s", why.reason);
    cr_assert_eq(mwt_ram_ops(ram), 0);
    mwt_ram_destroy(ram);
}

Test(queue, region_smaller_than_the_minimum_is_refused_and_the_minimum_works)
{
    uint32_t min = 0;
    mwi_queue *q = NULL;
    mw_error_detail_t why = {0};

    cr_assert_eq(mwi_queue_region_min(64, 4096, 16, &min), MW_OK);
    cr_assert_eq(min % 4096, 0);
    {
        mwt_ram *small = mwt_ram_create(min - 4096, 4096, 16);
        mw_storage_t st = mwt_ram_storage(small);
        mwi_queue_config c = qt_config(&st, 64, NULL);
        cr_assert_eq(mwi_queue_open(&c, &q, &why), MW_ECONFIG);
        cr_assert(strstr(why.reason, "too small") != NULL, "%s", why.reason);
        mwt_ram_destroy(small);
    }
    {
        mwt_ram *ok = mwt_ram_create(min, 4096, 16);
        mw_storage_t st = mwt_ram_storage(ok);
        mwi_queue_config c = qt_config(&st, 64, NULL);
        cr_assert_eq(mwi_queue_open(&c, &q, &why), MW_OK, "%s", why.reason);
        /* A full queue of the largest messages still leaves room for an operation. */
        for (uint64_t s = 1; s <= 300; s++) {
            mw_message_t m = qt_msg(s, MW_PRIORITY_ALARM, 0);
            memset(m.u.alarm.text, 'x', MW_ALARM_TEXT_MAX);
            memset(m.u.alarm.source, 's', MW_SOURCE_MAX);
            memset(m.device_id, 'd', MW_ID_MAX);
            cr_assert_eq(mwi_queue_append(q, &m, 0), MW_OK);
        }
        mwi_queue_close(&q);
        mwt_ram_destroy(ok);
    }
}

Test(queue, changed_geometry_is_refused_without_writing)
{
    fix f;
    mwi_queue_config c;
    mwi_queue *q2 = NULL;
    mw_error_detail_t why = {0};
    uint64_t ops;
    mw_storage_t shorter;

    fix_init(&f, 8, 1, 1, 2);
    for (uint64_t s = 1; s <= 8; s++) {
        append(&f, s, MW_PRIORITY_OBSERVATION);
    }
    mwi_queue_close(&f.q);
    ops = mwt_ram_ops(f.ram);
    shorter = f.st;
    shorter.size -= 1024;
    c = qt_config(&shorter, 8, NULL);
    cr_assert_eq(mwi_queue_open(&c, &q2, &why), MW_ECONFIG);
    cr_assert(strstr(why.reason, "another size") != NULL, "%s", why.reason);
    cr_assert_eq(mwt_ram_ops(f.ram), ops, "nothing written");
    fix_open(&f);
    fix_fini(&f);
}

Test(queue, a_smaller_capacity_keeps_every_stored_message_and_evicts_only_as_new_ones_arrive)
{
    fix f;
    mwi_queue_stats s;

    fix_init(&f, 8, 1, 1, 1);
    for (uint64_t q = 1; q <= 8; q++) {
        append(&f, q, MW_PRIORITY_OBSERVATION);
    }
    mwi_queue_close(&f.q);
    f.capacity = 5;
    fix_open(&f);
    mwi_queue_stats_get(f.q, 0, &s);
    cr_assert_eq(s.depth, 8, "nothing is dropped at open");
    cr_assert_eq(f.ev.n, 0);
    append(&f, 9, MW_PRIORITY_OBSERVATION);
    mwi_queue_stats_get(f.q, 0, &s);
    cr_assert_eq(s.depth, 8, "one in, one out while over capacity");
    cr_assert_eq(f.ev.evicted, 1);
    cr_assert_eq(f.ev.ev[0].seq, 1);
    fix_fini(&f);
}

Test(queue, region_with_data_but_no_valid_header_is_refused_not_formatted)
{
    fix f;
    mwi_queue_stats s;
    uint8_t zero[160];
    uint64_t ops;

    fix_init(&f, 8, 1, 1, 1);
    append(&f, 1, MW_PRIORITY_OBSERVATION);
    mwi_queue_stats_get(f.q, 0, &s);
    mwi_queue_close(&f.q);
    memset(zero, 0, sizeof zero);
    cr_assert_eq(s.header_bytes, sizeof zero);
    mwt_ram_poke(f.ram, s.active_offset, zero, sizeof zero); /* both header copies */
    ops = mwt_ram_ops(f.ram);
    {
        mwi_queue_config c = qt_config(&f.st, 8, NULL);
        mw_error_detail_t why = {0};
        cr_assert_eq(mwi_queue_open(&c, &f.q, &why), MW_EIO);
        cr_assert(strstr(why.reason, "not formatting") != NULL, "%s", why.reason);
    }
    cr_assert_eq(mwt_ram_ops(f.ram), ops);
    {
        mwi_queue_config c = qt_config(&f.st, 8, NULL);
        cr_assert_eq(mwi_queue_format(&c, NULL), MW_OK);
    }
    fix_open(&f);
    mwi_queue_stats_get(f.q, 0, &s);
    cr_assert_eq(s.depth, 0, "a deliberate format starts over");
    fix_fini(&f);
}

Test(queue, caller_memory_is_used_instead_of_the_heap)
{
    static uint8_t mem[1 << 20] __attribute__((aligned(64)));
    mwt_ram *ram = mwt_ram_create(qt_region(32, 1, 1, 1), 1, 1);
    mw_storage_t st = mwt_ram_storage(ram);
    mwi_queue_config c = qt_config(&st, 32, NULL);
    size_t need = 0;
    mwi_queue *q = NULL;

    cr_assert_eq(mwi_queue_mem_size(&c, &need), MW_OK);
    cr_assert_lt(need, sizeof mem);
    c.mem = mem;
    c.mem_size = need - 1;
    cr_assert_eq(mwi_queue_open(&c, &q, NULL), MW_ECONFIG, "too little memory");
    c.mem_size = need;
    cr_assert_eq(mwi_queue_open(&c, &q, NULL), MW_OK);
    cr_assert_eq((void *)q, (void *)mem);
    mwi_queue_close(&q);
    mwt_ram_destroy(ram);
}

/* ---- durability modes -------------------------------------------------------------------- */

Test(queue, default_mode_syncs_before_every_append_and_ack_returns)
{
    fix f;
    uint64_t syncs;

    fix_init(&f, 8, 1, 1, 1);
    syncs = mwt_ram_syncs(f.ram);
    append(&f, 1, MW_PRIORITY_OBSERVATION);
    cr_assert_gt(mwt_ram_syncs(f.ram), syncs);
    cr_assert_eq(mwt_ram_pending(f.ram), 0, "durable when append returns");
    ack1(&f, 1, 1);
    cr_assert_eq(mwt_ram_pending(f.ram), 0, "durable when ack returns");
    fix_fini(&f);
}

Test(queue, group_commit_syncs_every_n_operations_or_once_m_ms_passed_at_flush)
{
    fix f;
    mwi_queue_config c;
    mwi_queue_stats s;
    uint64_t syncs;

    memset(&f, 0, sizeof f);
    f.capacity = 64;
    f.ram = mwt_ram_create(qt_region(64, 1, 1, 1), 1, 1);
    f.st = mwt_ram_storage(f.ram);
    c = qt_config(&f.st, 64, &f.ev);
    c.group_commit_n = 4;
    c.group_commit_ms = 50;
    cr_assert_eq(mwi_queue_open(&c, &f.q, NULL), MW_OK);
    /* Warm the nonce store so its own sync does not interfere with counting. */
    append(&f, 1, MW_PRIORITY_OBSERVATION);
    cr_assert_eq(mwi_queue_sync(f.q), MW_OK);
    syncs = mwt_ram_syncs(f.ram);
    append(&f, 2, MW_PRIORITY_OBSERVATION);
    append(&f, 3, MW_PRIORITY_OBSERVATION);
    append(&f, 4, MW_PRIORITY_OBSERVATION);
    cr_assert_eq(mwt_ram_syncs(f.ram), syncs, "three operations wait");
    mwi_queue_stats_get(f.q, 0, &s);
    cr_assert_eq(s.unsynced, 3);
    cr_assert_eq(mwi_queue_flush_due_ms(f.q, 1014), 38, "50 ms after the first unsynced (1002)");
    append(&f, 5, MW_PRIORITY_OBSERVATION);
    cr_assert_eq(mwt_ram_syncs(f.ram), syncs + 1, "the fourth syncs");
    cr_assert_eq(mwi_queue_flush_due_ms(f.q, 0), -1);
    append(&f, 6, MW_PRIORITY_OBSERVATION); /* now_ms 1006 */
    cr_assert_eq(mwi_queue_flush(f.q, 1050), MW_OK);
    cr_assert_eq(mwt_ram_syncs(f.ram), syncs + 1, "not due yet");
    cr_assert_eq(mwi_queue_flush(f.q, 1056), MW_OK);
    cr_assert_eq(mwt_ram_syncs(f.ram), syncs + 2, "due after 50 ms");
    append(&f, 7, MW_PRIORITY_OBSERVATION);
    mwi_queue_close(&f.q);
    cr_assert_eq(mwt_ram_pending(f.ram), 0, "close syncs what is left");
    fix_open(&f);
    mwi_queue_stats_get(f.q, 0, &s);
    cr_assert_eq(s.depth, 7);
    fix_fini(&f);
}

/* ---- damage after open, storage failure -------------------------------------------------- */

/* @req IEC62443-CR3.4 */
Test(queue, a_record_damaged_after_open_is_reported_and_never_delivered)
{
    fix f;
    uint32_t off, len;
    mw_message_t out[4];
    mwi_queue_gap g[MWI_QUEUE_GAP_SLOTS];

    fix_init(&f, 8, 1, 1, 1);
    append(&f, 1, MW_PRIORITY_OBSERVATION);
    append(&f, 2, MW_PRIORITY_OBSERVATION);
    append(&f, 3, MW_PRIORITY_OBSERVATION);
    cr_assert_eq(mwi_queue_locate(f.q, 2, &off, &len), MW_OK);
    mwt_ram_flip_bit(f.ram, off + 40, 3);
    cr_assert_eq(qt_drain(f.q, out, 4), 2);
    cr_assert_eq(out[0].seq, 1);
    cr_assert_eq(out[1].seq, 3);
    cr_assert_eq(f.ev.corrupt, 1);
    cr_assert_eq(f.ev.ev[0].seq, 2);
    cr_assert_eq(mwi_queue_gaps(f.q, g, MWI_QUEUE_GAP_SLOTS), 1);
    cr_assert_eq(g[0].reason, MWI_QUEUE_GAP_CORRUPT);
    cr_assert_eq(g[0].first_seq, 2);
    fix_reopen(&f);
    cr_assert_eq(qt_drain(f.q, out, 4), 2, "the drop is durable");
    cr_assert_eq(f.ev.corrupt, 1, "reported once");
    fix_fini(&f);
}

/* @req IEC62443-CR3.7 */
Test(queue, storage_failure_makes_every_operation_fail_until_reopened)
{
    fix f;
    mw_message_t m = qt_msg(2, MW_PRIORITY_OBSERVATION, 0);
    mw_error_detail_t why;

    fix_init(&f, 8, 1, 1, 1);
    append(&f, 1, MW_PRIORITY_OBSERVATION);
    mwt_ram_cut_after(f.ram, mwt_ram_ops(f.ram));
    cr_assert_eq(mwi_queue_append(f.q, &m, 0), MW_EIO);
    mwi_queue_last_error(f.q, &why);
    cr_assert_eq(why.err, MW_EIO);
    cr_assert_eq(mwi_queue_append(f.q, &m, 0), MW_ECLOSED);
    cr_assert_eq(mwi_queue_ack(f.q, &(mwi_seq_range){1, 1}, 1, 0, NULL), MW_ECLOSED);
    cr_assert(!mwi_queue_accepts(f.q, MW_PRIORITY_ALARM));
    mwi_queue_close(&f.q);
    mwt_ram_power_cut(f.ram, NULL);
    fix_open(&f);
    {
        const uint64_t want[] = {1};
        expect_seqs(&f, want, 1);
    }
    fix_fini(&f);
}

/* ---- statistics, media ------------------------------------------------------------------- */

/* @req IEC62443-CR6.2 */
Test(queue, stats_report_depth_per_priority_and_the_age_of_the_oldest_message)
{
    fix f;
    mwi_queue_stats s;
    mw_message_t m;

    fix_init(&f, 8, 1, 1, 1);
    m = qt_msg(1, MW_PRIORITY_STATUS, 0);
    cr_assert_eq(mwi_queue_append(f.q, &m, 5000), MW_OK);
    m = qt_msg(2, MW_PRIORITY_ALARM, 0);
    cr_assert_eq(mwi_queue_append(f.q, &m, 7000), MW_OK);
    m = qt_msg(3, MW_PRIORITY_ALARM, 0);
    cr_assert_eq(mwi_queue_append(f.q, &m, 9000), MW_OK);
    mwi_queue_stats_get(f.q, 12000, &s);
    cr_assert_eq(mwi_queue_low_water(f.q), 1, "the lowest number queued, whatever its priority");
    cr_assert_eq(s.depth, 3);
    cr_assert_eq(s.depth_by_priority[MW_PRIORITY_ALARM], 2);
    cr_assert_eq(s.depth_by_priority[MW_PRIORITY_OBSERVATION], 0);
    cr_assert_eq(s.depth_by_priority[MW_PRIORITY_STATUS], 1);
    cr_assert_eq(s.oldest_age_ms, 7000);
    cr_assert_eq(s.appended, 3);
    cr_assert_eq(s.capacity, 8);
    ack1(&f, 1, 1);
    cr_assert_eq(mwi_queue_low_water(f.q), 2);
    fix_reopen(&f);
    mwi_queue_stats_get(f.q, 12000, &s);
    cr_assert_eq(s.oldest_age_ms, 5000, "append times are stored with the messages");
    ack1(&f, 2, 3);
    cr_assert_eq(mwi_queue_low_water(f.q), 0, "empty");
    fix_fini(&f);
}

Test(queue, runs_on_flash_geometry_without_writing_over_unerased_bytes)
{
    fix f;
    uint64_t rng = 7, next = 1;

    fix_init(&f, 24, 4096, 16, 1);
    for (int i = 0; i < 3000; i++) {
        uint64_t r = qt_rand(&rng) % 10;
        if (r < 6) {
            mw_priority p = (mw_priority)(1 + qt_rand(&rng) % 3);
            if (mwi_queue_accepts(f.q, p)) {
                append(&f, next++, p);
            }
        } else if (r < 9) {
            mw_message_t b[4];
            size_t n;
            cr_assert_eq(mwi_queue_peek(f.q, b, 4, &n), MW_OK);
            if (n > 0) {
                ack1(&f, b[0].seq, b[0].seq);
            }
        } else if (i % 500 == 0) {
            fix_reopen(&f);
        }
    }
    fix_fini(&f); /* asserts no flash rule was broken */
}

Test(queue, runs_on_the_posix_file_backend_across_close_and_reopen)
{
    char path[512];
    mw_storage_t st;
    mwi_queue *q = NULL;
    mwi_queue_config c;
    mw_message_t out[8];
    uint32_t size = qt_region(16, 1, 1, 2);

    snprintf(path, sizeof path, "%s/queue.bin", mwt_tmpdir());
    cr_assert_eq(mw_storage_file_open(path, size, &st, NULL), MW_OK);
    c = qt_config(&st, 16, NULL);
    cr_assert_eq(mwi_queue_open(&c, &q, NULL), MW_OK);
    for (uint64_t s = 1; s <= 6; s++) {
        mw_message_t m = qt_msg(s, (mw_priority)(1 + s % 3), 0);
        cr_assert_eq(mwi_queue_append(q, &m, s), MW_OK);
    }
    cr_assert_eq(mwi_queue_ack(q, &(mwi_seq_range){2, 3}, 1, 0, NULL), MW_OK);
    mwi_queue_close(&q);
    mw_storage_file_close(&st);

    cr_assert_eq(mw_storage_file_open(path, size, &st, NULL), MW_OK);
    c = qt_config(&st, 16, NULL);
    cr_assert_eq(mwi_queue_open(&c, &q, NULL), MW_OK);
    cr_assert_eq(qt_drain(q, out, 8), 4);
    cr_assert_eq(out[0].seq, 5);
    cr_assert_eq(out[1].seq, 1);
    cr_assert_eq(out[2].seq, 4);
    cr_assert_eq(out[3].seq, 6);
    mwi_queue_close(&q);
    mw_storage_file_close(&st);
}

Test(queue, format_erases_the_queue_and_keeps_the_nonce_store)
{
    fix f;
    mwi_queue_stats s;
    uint32_t store = mwi_seq_region_size(1, 1);
    const uint32_t label = 48;
    uint8_t *slots = malloc(store);
    uint8_t old_label[48];
    mwi_queue_config c;

    fix_init(&f, 8, 1, 1, 1);
    append(&f, 1, MW_PRIORITY_OBSERVATION);
    mwi_queue_close(&f.q);
    memcpy(slots, mwt_ram_image(f.ram), store);
    memcpy(old_label, mwt_ram_image(f.ram) + f.st.size - label, label);
    cr_assert(!mwi_all_erased(slots, store), "the nonce store was used");
    c = qt_config(&f.st, 8, NULL);
    c.random.fill = NULL;
    {
        mw_error_detail_t why = {0};
        uint64_t ops = mwt_ram_ops(f.ram);
        cr_assert_eq(mwi_queue_format(&c, &why), MW_ECONFIG);
        cr_assert(strstr(why.reason, "random source") != NULL, "%s", why.reason);
        cr_assert_eq(mwt_ram_ops(f.ram), ops, "refused before anything was erased");
    }
    c = qt_config(&f.st, 8, NULL);
    cr_assert_eq(mwi_queue_format(&c, NULL), MW_OK);
    cr_assert_arr_eq(mwt_ram_image(f.ram), slots, store);
    cr_assert(mwi_all_erased(mwt_ram_image(f.ram) + store, f.st.size - store - label));
    cr_assert_neq(memcmp(mwt_ram_image(f.ram) + f.st.size - label, old_label, label), 0,
                  "a new label: a new salt");
    f.ev.n = 0;
    fix_open(&f);
    mwi_queue_stats_get(f.q, 0, &s);
    cr_assert_eq(s.depth, 0);
    cr_assert_eq(f.ev.n, 0, "a deliberate format is not reported as damage");
    free(slots);
    fix_fini(&f);
}

Test(queue, a_truncated_region_reports_that_its_end_is_missing_and_keeps_what_precedes_the_cut)
{
    fix f;
    uint32_t off, len;
    uint8_t *ff;
    mw_message_t out[8];

    fix_init(&f, 8, 1, 1, 1);
    for (uint64_t s = 1; s <= 5; s++) {
        append(&f, s, MW_PRIORITY_OBSERVATION);
    }
    cr_assert_eq(mwi_queue_locate(f.q, 4, &off, &len), MW_OK);
    mwi_queue_close(&f.q);
    /* The file is cut in the middle of message 4: the rest reads as erased. */
    ff = malloc(f.st.size);
    memset(ff, 0xFF, f.st.size);
    mwt_ram_poke(f.ram, off + 10, ff, f.st.size - off - 10);
    free(ff);
    fix_open(&f);
    cr_assert_eq(qt_drain(f.q, out, 8), 3, "messages before the cut are kept");
    cr_assert_eq(out[2].seq, 3);
    cr_assert_geq(f.ev.corrupt + f.ev.torn, 1, "the cut is reported");
    f.ev.n = f.ev.corrupt = f.ev.torn = 0;
    fix_reopen(&f);
    cr_assert_eq(f.ev.n, 0, "and only once");
    fix_fini(&f);
}
