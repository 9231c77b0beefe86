/* SPDX-License-Identifier: Apache-2.0 */
/* test_block1.c -- the Block1 sender (src/coap/block1.c): block numbers, the M flag, SZX and Size1
 * (RFC 7959 2.2, 2.5, 4) at the sizes medwire's batches reach, byte for byte on the wire, and
 * through the gateway's reassembler (mwi_coap_block1_input) back to the same body. */
#include <criterion/criterion.h>
#include <stdint.h>
#include <string.h>

#include "coap/coap.h"
#include "coap/server.h"
#include "session/protocol.h"

static const uint8_t TOKEN[8] = {0xA1, 0xB2, 0xC3, 0xD4, 0xE5, 0xF6, 0x07, 0x18};
static uint8_t body[MWI_BODY_MAX + 1];

static void fill_body(void)
{
    for (size_t i = 0; i < sizeof body; i++)
        body[i] = (uint8_t)(i * 7u + 3u);
}

TestSuite(block1, .init = fill_body);

/* The client's batch request: a CON POST to /batch in medwire's batch format. */
static void batch_template(mwi_coap_msg *m)
{
    mwi_coap_msg_init(m);
    m->type = MWI_COAP_CON;
    m->code = MWI_COAP_POST;
    strcpy(m->uri_path, MWI_PATH_BATCH);
    m->content_format = MWI_COAP_CF_MEDWIRE_BATCH;
}

static void start(mwi_coap_block1_sender *s, size_t len)
{
    mwi_coap_msg tpl;
    batch_template(&tpl);
    cr_assert_eq(mwi_coap_block1_sender_start(s, &tpl, body, len, MWI_BLOCK_SZX), MW_OK);
    cr_assert(s->active);
}

/* Sends @p len bytes block by block, checking each block's fields, through encode, parse and the
 * gateway's reassembler; returns the number of blocks. */
static uint32_t transfer(size_t len)
{
    mwi_coap_block1_sender s;
    mwi_coap_block1 b1;
    mwi_coap_params params;
    mwi_coap_parser *p = NULL;
    static uint8_t got[MWI_BODY_MAX];
    memset(&b1, 0, sizeof b1);
    mwi_coap_params_default(&params);
    cr_assert_eq(mwi_coap_parser_create(1500, &p), MW_OK);
    start(&s, len);
    uint32_t blocks = 0;
    for (;;) {
        mwi_coap_msg m, back;
        cr_assert_eq(mwi_coap_block1_sender_msg(&s, &m), MW_OK);
        size_t off = (size_t)blocks * MWI_BLOCK_SIZE;
        bool last = off + MWI_BLOCK_SIZE >= len;
        cr_assert_eq(m.payload, body + off);
        cr_assert_eq(m.payload_len, last ? len - off : MWI_BLOCK_SIZE, "block %u of %zu", blocks,
                     len);
        cr_assert(m.flags & MWI_COAP_F_BLOCK1);
        cr_assert_eq(MWI_COAP_BLOCK_NUM(m.block1), blocks);
        cr_assert_eq(MWI_COAP_BLOCK_MORE(m.block1), last ? 0u : 1u, "M of block %u", blocks);
        cr_assert_eq(MWI_COAP_BLOCK_SZX(m.block1), (uint32_t)MWI_BLOCK_SZX);
        cr_assert_eq((m.flags & MWI_COAP_F_SIZE1) != 0, blocks == 0, "Size1 on the first only");
        if (blocks == 0)
            cr_assert_eq(m.size1, (uint32_t)len);
        cr_assert_str_eq(m.uri_path, MWI_PATH_BATCH);
        cr_assert_eq(m.content_format, MWI_COAP_CF_MEDWIRE_BATCH);

        m.mid = (uint16_t)(0x1000 + blocks);
        m.token_len = sizeof TOKEN;
        memcpy(m.token, TOKEN, sizeof TOKEN);
        uint8_t wire[MWI_BLOCK_SIZE + 64];
        size_t n = 0;
        cr_assert_eq(mwi_coap_encode(&m, wire, sizeof wire, &n), MW_OK);
        cr_assert_leq(n, (size_t)MWI_BLOCK_SIZE + MWI_COAP_REQUEST_OVERHEAD + 8u,
                      "a block and its request fit one record");
        cr_assert_eq(mwi_coap_parse(p, wire, n, &back), MW_OK);
        mwi_block1_result r = mwi_coap_block1_input(&b1, got, MWI_BODY_MAX, &back, 0, &params);
        blocks++;
        if (last) {
            cr_assert_eq(r, MWI_BLOCK1_COMPLETE, "the last block completes the body");
            cr_assert_eq(mwi_coap_block1_sender_next(&s), MW_EINVAL, "no block after the last");
            cr_assert_eq(mwi_coap_block1_sender_msg(&s, &m), MW_EINVAL);
            break;
        }
        cr_assert_eq(r, MWI_BLOCK1_CONTINUE);
        cr_assert_eq(mwi_coap_block1_sender_next(&s), MW_OK);
    }
    cr_assert_eq(b1.len, len);
    cr_assert_arr_eq(got, body, len, "the gateway reassembled the body sent");
    mwi_coap_block1_sender_stop(&s);
    cr_assert_not(s.active);
    mwi_coap_parser_destroy(&p);
    return blocks;
}

Test(block1, block_numbers_m_flag_and_sizes_at_the_block_and_body_boundaries)
{
    cr_assert_eq(transfer(1), 1u);
    cr_assert_eq(transfer(MWI_BLOCK_SIZE - 1), 1u);
    cr_assert_eq(transfer(MWI_BLOCK_SIZE), 1u, "a full last block has M = 0");
    cr_assert_eq(transfer(MWI_BLOCK_SIZE + 1), 2u);
    cr_assert_eq(transfer(2 * MWI_BLOCK_SIZE), 2u);
    cr_assert_eq(transfer(MWI_BODY_MAX - 1), (MWI_BODY_MAX + MWI_BLOCK_SIZE - 1) / MWI_BLOCK_SIZE);
    cr_assert_eq(transfer(MWI_BODY_MAX), MWI_BODY_MAX / MWI_BLOCK_SIZE);
}

/* Block 0 and the last block of a body one byte over a block, written out by hand from RFC 7252
 * 3.1 and RFC 7959 2.2 and 4: what the SDK has always sent. */
Test(block1, blocks_are_encoded_byte_for_byte_as_the_rfcs_lay_them_out)
{
    static const uint8_t head0[] = {
        0x48, 0x02, 0x12, 0x34,                         /* Ver 1, CON, TKL 8 | POST | MID */
        0xA1, 0xB2, 0xC3, 0xD4, 0xE5, 0xF6, 0x07, 0x18, /* token */
        0xB5, 'b',  'a',  't',  'c',  'h',              /* Uri-Path (delta 11, length 5) */
        0x12, 0xFE, 0x4C,                               /* Content-Format 65100 */
        0xD1, 0x02, 0x0E,                               /* Block1 (27): NUM 0, M 1, SZX 6 */
        0xD2, 0x14, 0x04, 0x01,                         /* Size1 (60): 1025 */
        0xFF,
    };
    static const uint8_t head1[] = {
        0x48, 0x02, 0x12, 0x35,                         /* MID + 1 */
        0xA1, 0xB2, 0xC3, 0xD4, 0xE5, 0xF6, 0x07, 0x18, /* token */
        0xB5, 'b',  'a',  't',  'c',  'h',              /* Uri-Path */
        0x12, 0xFE, 0x4C,                               /* Content-Format */
        0xD1, 0x02, 0x16,                               /* Block1: NUM 1, M 0, SZX 6; no Size1 */
        0xFF,
    };
    mwi_coap_block1_sender s;
    mwi_coap_msg m;
    uint8_t wire[MWI_BLOCK_SIZE + 64];
    size_t n = 0;
    start(&s, MWI_BLOCK_SIZE + 1);
    cr_assert_eq(mwi_coap_block1_sender_msg(&s, &m), MW_OK);
    m.mid = 0x1234;
    m.token_len = 8;
    memcpy(m.token, TOKEN, 8);
    cr_assert_eq(mwi_coap_encode(&m, wire, sizeof wire, &n), MW_OK);
    cr_assert_eq(n, sizeof head0 + MWI_BLOCK_SIZE);
    cr_assert_arr_eq(wire, head0, sizeof head0);
    cr_assert_arr_eq(wire + sizeof head0, body, MWI_BLOCK_SIZE);

    cr_assert_eq(mwi_coap_block1_sender_next(&s), MW_OK);
    cr_assert_eq(mwi_coap_block1_sender_msg(&s, &m), MW_OK);
    m.mid = 0x1235;
    m.token_len = 8;
    memcpy(m.token, TOKEN, 8);
    cr_assert_eq(mwi_coap_encode(&m, wire, sizeof wire, &n), MW_OK);
    cr_assert_eq(n, sizeof head1 + 1);
    cr_assert_arr_eq(wire, head1, sizeof head1);
    cr_assert_eq(wire[sizeof head1], body[MWI_BLOCK_SIZE]);
}

/* A body over MWI_BODY_MAX goes out as any other (the sender has no limit of its own), and the
 * gateway's reassembler, told MWI_BODY_MAX, refuses it at block 0 from its Size1. */
Test(block1, a_body_over_the_maximum_is_refused_by_the_reassembler_from_size1)
{
    mwi_coap_block1_sender s;
    mwi_coap_block1 b1;
    mwi_coap_params params;
    mwi_coap_msg m;
    static uint8_t got[MWI_BODY_MAX];
    memset(&b1, 0, sizeof b1);
    mwi_coap_params_default(&params);
    start(&s, MWI_BODY_MAX + 1);
    cr_assert_eq(mwi_coap_block1_sender_msg(&s, &m), MW_OK);
    cr_assert_eq(m.size1, MWI_BODY_MAX + 1);
    cr_assert_eq(mwi_coap_block1_input(&b1, got, MWI_BODY_MAX, &m, 0, &params),
                 MWI_BLOCK1_TOO_LARGE);
}

Test(block1, the_template_is_kept_and_its_payload_ignored)
{
    mwi_coap_block1_sender s;
    mwi_coap_msg tpl, m;
    static const uint8_t other[3] = {1, 2, 3};
    batch_template(&tpl);
    tpl.payload = other;
    tpl.payload_len = sizeof other;
    tpl.mid = 77;
    cr_assert_eq(mwi_coap_block1_sender_start(&s, &tpl, body, 10, 2), MW_OK);
    cr_assert_eq(mwi_coap_block1_sender_msg(&s, &m), MW_OK);
    cr_assert_eq(m.payload, body);
    cr_assert_eq(m.payload_len, 10u);
    cr_assert_eq(m.mid, 77);
    cr_assert_eq(m.type, MWI_COAP_CON);
    cr_assert_eq(m.code, MWI_COAP_POST);
    /* SZX 2: 64-byte blocks; 10 bytes are one last block. */
    cr_assert_eq(m.block1, MWI_COAP_BLOCK_VALUE(0, 0, 2));
}

Test(block1, what_cannot_be_sent_is_refused)
{
    mwi_coap_block1_sender s;
    mwi_coap_msg tpl, m;
    batch_template(&tpl);
    cr_assert_eq(mwi_coap_block1_sender_start(&s, &tpl, body, 0, 6), MW_EINVAL, "no body");
    cr_assert_not(s.active);
    cr_assert_eq(mwi_coap_block1_sender_start(&s, &tpl, body, 10, 7), MW_EINVAL, "SZX 7");
    cr_assert_eq(mwi_coap_block1_sender_start(&s, NULL, body, 10, 6), MW_EINVAL);
    cr_assert_eq(mwi_coap_block1_sender_start(&s, &tpl, NULL, 10, 6), MW_EINVAL);
    cr_assert_eq(mwi_coap_block1_sender_start(NULL, &tpl, body, 10, 6), MW_EINVAL);
    /* Block1 numbers 2^20 blocks: 16-byte blocks cover 16 MiB, not a byte more. */
    cr_assert_eq(mwi_coap_block1_sender_start(&s, &tpl, body, (size_t)16 << 20, 0), MW_OK);
    cr_assert_eq(mwi_coap_block1_sender_start(&s, &tpl, body, ((size_t)16 << 20) + 1, 0),
                 MW_EINVAL);
    cr_assert_eq(mwi_coap_block1_sender_msg(&s, &m), MW_EINVAL, "inactive after a refusal");
    cr_assert_eq(mwi_coap_block1_sender_next(&s), MW_EINVAL);
    cr_assert_eq(mwi_coap_block1_sender_msg(NULL, &m), MW_EINVAL);
    mwi_coap_block1_sender_stop(NULL);
}
