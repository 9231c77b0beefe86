/* SPDX-License-Identifier: Apache-2.0 */
/* exchange.c -- message ids, tokens and the retransmission timer of a CON (RFC 7252 4.2, 4.8). */
#include <string.h>

#include "coap/coap.h"

void mwi_coap_params_default(mwi_coap_params *p)
{
    if (p == NULL)
        return;
    p->ack_timeout_ms = 2000;
    p->ack_random_factor_milli = 1500;
    p->max_retransmit = 4;
}

mw_err mwi_coap_params_check(const mwi_coap_params *p)
{
    if (p == NULL || p->ack_timeout_ms == 0 || p->ack_timeout_ms > MWI_COAP_ACK_TIMEOUT_MAX_MS)
        return MW_EINVAL;
    /* 4.8.1: ACK_RANDOM_FACTOR MUST NOT be decreased below 1.0. */
    if (p->ack_random_factor_milli < 1000 ||
        p->ack_random_factor_milli > MWI_COAP_RANDOM_FACTOR_MAX)
        return MW_EINVAL;
    if (p->max_retransmit > MWI_COAP_MAX_RETRANSMIT_LIMIT)
        return MW_EINVAL;
    return MW_OK;
}

/* ACK_TIMEOUT * (2^k - 1) * ACK_RANDOM_FACTOR; within the checked bounds this is below 2^50. */
static uint64_t doubled_span_ms(const mwi_coap_params *p, unsigned k)
{
    uint64_t t = (uint64_t)p->ack_timeout_ms * ((UINT64_C(1) << k) - 1u);
    return t * p->ack_random_factor_milli / 1000u;
}

uint64_t mwi_coap_max_transmit_span_ms(const mwi_coap_params *p)
{
    if (mwi_coap_params_check(p) != MW_OK)
        return UINT64_MAX;
    return doubled_span_ms(p, p->max_retransmit);
}

uint64_t mwi_coap_max_transmit_wait_ms(const mwi_coap_params *p)
{
    if (mwi_coap_params_check(p) != MW_OK)
        return UINT64_MAX;
    return doubled_span_ms(p, p->max_retransmit + 1u);
}

/* 4.8.2: MAX_TRANSMIT_SPAN + 2 * MAX_LATENCY + PROCESSING_DELAY, where PROCESSING_DELAY is
 * ACK_TIMEOUT; 45 + 200 + 2 = 247 s with the defaults. */
uint64_t mwi_coap_exchange_lifetime_ms(const mwi_coap_params *p)
{
    if (mwi_coap_params_check(p) != MW_OK)
        return UINT64_MAX;
    return mwi_coap_max_transmit_span_ms(p) + 2u * (uint64_t)MWI_COAP_MAX_LATENCY_MS +
           p->ack_timeout_ms;
}

/* 4.8.2: MAX_TRANSMIT_SPAN + MAX_LATENCY; 145 s with the defaults. */
uint64_t mwi_coap_non_lifetime_ms(const mwi_coap_params *p)
{
    if (mwi_coap_params_check(p) != MW_OK)
        return UINT64_MAX;
    return mwi_coap_max_transmit_span_ms(p) + MWI_COAP_MAX_LATENCY_MS;
}

mw_err mwi_coap_ids_init(mwi_coap_ids *ids, mw_random_t rnd)
{
    uint8_t seed[2];
    mw_err e;

    if (ids == NULL || rnd.fill == NULL)
        return MW_EINVAL;
    /* 4.4: a random start makes Message IDs of a rebooted endpoint unlikely to collide with
     * those its peer still remembers from before the reboot. */
    e = rnd.fill(rnd.ctx, seed, sizeof seed);
    if (e != MW_OK)
        return e;
    ids->next_mid = (uint16_t)(((unsigned)seed[0] << 8) | seed[1]);
    ids->rnd = rnd;
    return MW_OK;
}

mw_err mwi_coap_ids_next(mwi_coap_ids *ids, uint16_t *out_mid,
                         uint8_t out_token[MWI_COAP_MAX_TOKEN])
{
    mw_err e;

    if (ids == NULL || out_mid == NULL || out_token == NULL || ids->rnd.fill == NULL)
        return MW_EINVAL;
    /* 5.3.1 and 11.4: a fresh random token per request is what stops an off-path attacker
     * from injecting a response; the token, not the Message ID, carries that protection. */
    e = ids->rnd.fill(ids->rnd.ctx, out_token, MWI_COAP_MAX_TOKEN);
    if (e != MW_OK)
        return e;
    *out_mid = ids->next_mid++;
    return MW_OK;
}

/* Uniform in [ACK_TIMEOUT, ACK_TIMEOUT * ACK_RANDOM_FACTOR] (4.2); the spread keeps many
 * devices that lost the gateway at once from retransmitting in lockstep. */
static mw_err initial_timeout(const mwi_coap_params *p, mw_random_t rnd, uint64_t *out)
{
    uint8_t b[8];
    uint64_t r = 0;
    uint64_t span = (uint64_t)p->ack_timeout_ms * (p->ack_random_factor_milli - 1000u) / 1000u;
    mw_err e = rnd.fill(rnd.ctx, b, sizeof b);

    if (e != MW_OK)
        return e;
    for (size_t i = 0; i < sizeof b; i++)
        r = (r << 8) | b[i];
    /* span + 1 < 2^32, so the modulo bias is below 2^-32. */
    *out = p->ack_timeout_ms + r % (span + 1u);
    return MW_OK;
}

mw_err mwi_coap_request_start(mwi_coap_request *r, const mwi_coap_params *p, mw_random_t rnd,
                              uint16_t mid, const uint8_t *token, uint8_t token_len,
                              uint64_t now_ms)
{
    uint64_t timeout;
    mw_err e;

    if (r == NULL)
        return MW_EINVAL;
    memset(r, 0, sizeof *r);
    if (mwi_coap_params_check(p) != MW_OK || token_len > MWI_COAP_MAX_TOKEN ||
        (token == NULL && token_len > 0) || rnd.fill == NULL)
        return MW_EINVAL;
    e = initial_timeout(p, rnd, &timeout);
    if (e != MW_OK)
        return e;
    r->mid = mid;
    r->token_len = token_len;
    if (token_len > 0)
        memcpy(r->token, token, token_len);
    r->timeout_ms = timeout;
    r->next_tx_ms = now_ms + timeout;
    r->expires_ms = now_ms + mwi_coap_exchange_lifetime_ms(p);
    r->active = true;
    return MW_OK;
}

uint64_t mwi_coap_request_deadline(const mwi_coap_request *r)
{
    if (r == NULL || !r->active)
        return UINT64_MAX;
    return r->acked ? r->expires_ms : r->next_tx_ms;
}

mw_err mwi_coap_request_timer(mwi_coap_request *r, const mwi_coap_params *p, uint64_t now_ms)
{
    if (r == NULL || p == NULL)
        return MW_EINVAL;
    if (!r->active || now_ms < mwi_coap_request_deadline(r))
        return MW_EAGAIN;
    if (r->acked) {
        /* 5.2.2 sets no limit on a separate response; without one a lost response would hold
         * the request forever. */
        r->active = false;
        return MW_ETIMEDOUT;
    }
    /* 4.2: when the timeout fires with the counter at MAX_RETRANSMIT, give up. */
    if (r->retransmits >= p->max_retransmit) {
        r->active = false;
        return MW_ECOAP_GIVEUP;
    }
    r->retransmits++;
    r->timeout_ms *= 2u;
    /* From the moment of this retransmission, so a late poll does not bunch the rest up. */
    r->next_tx_ms = now_ms + r->timeout_ms;
    return MW_OK;
}

static bool token_matches(const mwi_coap_request *r, const mwi_coap_msg *m)
{
    return m->token_len == r->token_len && memcmp(m->token, r->token, r->token_len) == 0;
}

mw_err mwi_coap_request_match(mwi_coap_request *r, const mwi_coap_msg *m)
{
    if (r == NULL || m == NULL)
        return MW_EINVAL;
    if (!r->active)
        return MW_EAGAIN;
    switch (m->type) {
    case MWI_COAP_RST:
        /* 4.2: the peer rejected the CON. After its ACK, an RST with that id is stale. */
        if (m->mid != r->mid || m->code != MWI_COAP_EMPTY || r->acked)
            return MW_EAGAIN;
        r->active = false;
        return MW_ECOAP_RESET;
    case MWI_COAP_ACK:
        if (m->mid != r->mid)
            return MW_EAGAIN;
        if (m->code == MWI_COAP_EMPTY) {
            /* 5.2.2: the server will answer in a separate message, matched by token. */
            r->acked = true;
            return MW_EINPROGRESS;
        }
        /* 5.3.2: a piggybacked response matches by Message ID and token. */
        if (!MWI_COAP_IS_RESPONSE(m->code) || !token_matches(r, m))
            return MW_EAGAIN;
        r->active = false;
        return MW_OK;
    case MWI_COAP_CON:
    case MWI_COAP_NON:
        /* 5.2.2: a separate response matches by token alone, and also stands for a lost
         * empty ACK. */
        if (!MWI_COAP_IS_RESPONSE(m->code) || !token_matches(r, m))
            return MW_EAGAIN;
        r->active = false;
        return MW_OK;
    default:
        return MW_EAGAIN;
    }
}
