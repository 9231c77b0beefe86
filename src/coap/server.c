/* SPDX-License-Identifier: Apache-2.0 */
/* server.c -- server-side CoAP mechanics, sans-I/O: duplicate detection with response replay,
 * Block1 reassembly, Block2 slicing. */
#include <string.h>

#include "coap/server.h"

const mwi_coap_dedup_entry *mwi_coap_dedup_find(const mwi_coap_dedup *d, uint8_t type, uint16_t mid,
                                                uint64_t now_ms)
{
    for (size_t i = 0; i < MWI_COAP_DEDUP_ENTRIES; i++) {
        const mwi_coap_dedup_entry *e = &d->e[i];
        if (e->expires_ms > now_ms && e->mid == mid && e->type == type)
            return e;
    }
    return NULL;
}

void mwi_coap_dedup_store(mwi_coap_dedup *d, uint8_t type, uint16_t mid, const uint8_t *response,
                          size_t len, uint64_t now_ms, const mwi_coap_params *p)
{
    mwi_coap_dedup_entry *slot = &d->e[0];
    for (size_t i = 0; i < MWI_COAP_DEDUP_ENTRIES; i++) {
        mwi_coap_dedup_entry *e = &d->e[i];
        if (e->expires_ms <= now_ms || (e->mid == mid && e->type == type)) {
            slot = e;
            break;
        }
        if (e->expires_ms < slot->expires_ms)
            slot = e;
    }
    uint64_t life =
        type == MWI_COAP_CON ? mwi_coap_exchange_lifetime_ms(p) : mwi_coap_non_lifetime_ms(p);
    slot->expires_ms = now_ms + life;
    slot->mid = mid;
    slot->type = type;
    slot->has_response = response != NULL && len <= sizeof slot->response;
    slot->len = slot->has_response ? (uint16_t)len : 0;
    if (slot->has_response)
        memcpy(slot->response, response, len);
}

static void block1_reset(mwi_coap_block1 *b)
{
    memset(b, 0, sizeof *b);
}

mwi_block1_result mwi_coap_block1_input(mwi_coap_block1 *b, uint8_t *buf, size_t max_body,
                                        const mwi_coap_msg *m, uint64_t now_ms,
                                        const mwi_coap_params *p)
{
    uint32_t v = m->block1;
    uint32_t num = MWI_COAP_BLOCK_NUM(v);
    uint8_t szx = (uint8_t)MWI_COAP_BLOCK_SZX(v);
    bool more = MWI_COAP_BLOCK_MORE(v) != 0;
    size_t size = MWI_COAP_BLOCK_SIZE(szx);
    if (b->active && now_ms >= b->expires_ms)
        block1_reset(b); /* an abandoned transfer is forgotten */
    /* Size1 announces the whole body: refuse before keeping a byte (RFC 7959 4). */
    if ((m->flags & MWI_COAP_F_SIZE1) && m->size1 > max_body) {
        block1_reset(b);
        return MWI_BLOCK1_TOO_LARGE;
    }
    if (szx == 7 || (more && m->payload_len != size) || m->payload_len > size) {
        block1_reset(b);
        return MWI_BLOCK1_INCOMPLETE; /* SZX 7 is reserved; a non-final block must be full */
    }
    if (num == 0) {
        block1_reset(b);
        b->active = true;
        b->szx = szx;
        b->token_len = m->token_len;
        memcpy(b->token, m->token, m->token_len);
        memcpy(b->path, m->uri_path, sizeof b->path);
    } else if (!b->active || num != b->next_num || szx != b->szx ||
               strcmp(b->path, m->uri_path) != 0) {
        /* Out of order, resized mid-transfer, or no transfer: 4.08 (RFC 7959 2.9.2). */
        block1_reset(b);
        return MWI_BLOCK1_INCOMPLETE;
    }
    size_t off = (size_t)num * size;
    if (off + m->payload_len > max_body || off + m->payload_len < off) {
        block1_reset(b);
        return MWI_BLOCK1_TOO_LARGE;
    }
    if (m->payload_len)
        memcpy(buf + off, m->payload, m->payload_len);
    b->len = off + m->payload_len;
    b->next_num = num + 1;
    b->expires_ms = now_ms + mwi_coap_exchange_lifetime_ms(p);
    if (more)
        return MWI_BLOCK1_CONTINUE;
    b->active = false;
    return MWI_BLOCK1_COMPLETE;
}

bool mwi_coap_block2_slice(bool requested, uint32_t block2, size_t len, size_t max_block,
                           size_t *out_off, size_t *out_len, uint32_t *out_block2, bool *out_bad)
{
    *out_bad = false;
    *out_off = 0;
    *out_len = len;
    *out_block2 = 0;
    uint8_t szx = 6; /* 1024 bytes: the largest that fits a DTLS record */
    while (szx > 0 && MWI_COAP_BLOCK_SIZE(szx) > max_block)
        szx--;
    uint32_t num = 0;
    if (requested) {
        /* The client may ask for smaller blocks, never larger than ours (RFC 7959 2.4). */
        uint8_t want = (uint8_t)MWI_COAP_BLOCK_SZX(block2);
        if (want == 7) {
            *out_bad = true;
            return true;
        }
        if (want < szx)
            szx = want;
        num = MWI_COAP_BLOCK_NUM(block2);
    } else if (len <= max_block) {
        return false;
    }
    size_t size = MWI_COAP_BLOCK_SIZE(szx);
    size_t off = (size_t)num * size;
    if (off > len || (off == len && len > 0)) {
        *out_bad = true;
        return true;
    }
    size_t n = len - off < size ? len - off : size;
    *out_off = off;
    *out_len = n;
    *out_block2 = MWI_COAP_BLOCK_VALUE(num, off + n < len, szx);
    return true;
}
