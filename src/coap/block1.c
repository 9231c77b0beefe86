/* SPDX-License-Identifier: Apache-2.0 */
/* block1.c -- a request body sent in Block1 pieces (RFC 7959 2.5), client side; the server's
 * reassembly is mwi_coap_block1_input (server.c). */
#include <string.h>

#include "coap/coap.h"

/* Block1 is a 3-byte value: NUM has 20 bits (RFC 7959 2.2). */
#define BLOCK_NUM_MAX (MWI_COAP_BLOCK_MAX >> 4)
/* SZX 7 is reserved. */
#define SZX_MAX 6u

mw_err mwi_coap_block1_sender_start(mwi_coap_block1_sender *s, const mwi_coap_msg *tpl,
                                    const uint8_t *body, size_t len, uint8_t szx)
{
    if (s == NULL)
        return MW_EINVAL;
    memset(s, 0, sizeof *s);
    if (tpl == NULL || body == NULL || len == 0 || szx > SZX_MAX ||
        (len - 1u) / MWI_COAP_BLOCK_SIZE(szx) > BLOCK_NUM_MAX)
        return MW_EINVAL;
    s->tpl = *tpl;
    s->tpl.payload = NULL;
    s->tpl.payload_len = 0;
    s->body = body;
    s->len = len;
    s->szx = szx;
    s->active = true;
    return MW_OK;
}

mw_err mwi_coap_block1_sender_msg(const mwi_coap_block1_sender *s, mwi_coap_msg *out)
{
    if (s == NULL || out == NULL || !s->active)
        return MW_EINVAL;
    size_t size = MWI_COAP_BLOCK_SIZE(s->szx);
    size_t off = (size_t)s->num * size;
    if (off >= s->len)
        return MW_EINVAL;
    size_t n = s->len - off < size ? s->len - off : size;
    *out = s->tpl;
    out->payload = s->body + off;
    out->payload_len = n;
    out->flags |= MWI_COAP_F_BLOCK1;
    out->block1 = MWI_COAP_BLOCK_VALUE(s->num, off + n < s->len, s->szx);
    if (s->num == 0) {
        out->flags |= MWI_COAP_F_SIZE1;
        out->size1 = (uint32_t)s->len;
    }
    return MW_OK;
}

mw_err mwi_coap_block1_sender_next(mwi_coap_block1_sender *s)
{
    if (s == NULL || !s->active)
        return MW_EINVAL;
    s->num++;
    return (size_t)s->num * MWI_COAP_BLOCK_SIZE(s->szx) < s->len ? MW_OK : MW_EINVAL;
}

void mwi_coap_block1_sender_stop(mwi_coap_block1_sender *s)
{
    if (s != NULL)
        s->active = false;
}
