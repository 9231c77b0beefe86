/* SPDX-License-Identifier: Apache-2.0 */
/* admission.c -- what one source host or one identity may take of the gateway: handshakes in
 * progress and per second per host, audit lines per identity and event. */
#include <stdlib.h>
#include <string.h>

#include "gateway/admission.h"

void mwi_bucket_init(mwi_bucket *b, double burst, uint64_t now_ms)
{
    b->tokens = burst;
    b->at_ms = now_ms;
}

/* The tokens @p b holds at @p now_ms, refilled at @p per_s up to @p burst. */
static double tokens_at(const mwi_bucket *b, double per_s, double burst, uint64_t now_ms)
{
    if (now_ms <= b->at_ms)
        return b->tokens;
    double add = (double)(now_ms - b->at_ms) * per_s / 1000.0;
    return b->tokens + add > burst ? burst : b->tokens + add;
}

bool mwi_bucket_take(mwi_bucket *b, double per_s, double burst, uint64_t now_ms)
{
    if (now_ms > b->at_ms) {
        b->tokens = tokens_at(b, per_s, burst, now_ms);
        b->at_ms = now_ms;
    }
    if (b->tokens < 1.0)
        return false;
    b->tokens -= 1.0;
    return true;
}

bool mwi_bucket_has(const mwi_bucket *b, double per_s, double burst, uint64_t now_ms)
{
    return tokens_at(b, per_s, burst, now_ms) >= 1.0;
}

static uint32_t hash(const void *p, size_t n)
{
    const uint8_t *b = p;
    uint32_t h = 2166136261u; /* FNV-1a: keys come from the network, but a host only chooses
                               * its own address: it cannot crowd a bucket with others' */
    for (size_t i = 0; i < n; i++)
        h = (h ^ b[i]) * 16777619u;
    return h;
}

mw_err mwi_hosts_init(mwi_hosts *h, uint32_t buckets)
{
    memset(h, 0, sizeof *h);
    uint32_t nb = 1;
    while (nb < buckets)
        nb <<= 1;
    h->b = calloc(nb, sizeof(mwi_host *));
    if (h->b == NULL)
        return MW_ENOMEM;
    h->nb = nb;
    return MW_OK;
}

void mwi_hosts_fini(mwi_hosts *h)
{
    for (uint32_t i = 0; h->b != NULL && i < h->nb; i++) {
        mwi_host *x = h->b[i];
        while (x) {
            mwi_host *nx = x->hnext;
            free(x);
            x = nx;
        }
    }
    free(h->b);
    memset(h, 0, sizeof *h);
}

/* The key of @p addr's host (its address, or its /64) and the slot of its chain. */
static mwi_host **chain(mwi_hosts *h, const mw_addr_t *addr, mw_addr_t *key)
{
    if (mw_addr_host_prefix(addr, key) != MW_OK)
        *key = *addr;
    return &h->b[hash(key->data, key->len) & (h->nb - 1)];
}

static mwi_host *lookup(mwi_host *x, const mw_addr_t *key)
{
    while (x && !(x->key.len == key->len && memcmp(x->key.data, key->data, key->len) == 0))
        x = x->hnext;
    return x;
}

mwi_host *mwi_hosts_find(mwi_hosts *h, const mw_addr_t *addr)
{
    mw_addr_t key;
    return lookup(*chain(h, addr, &key), &key);
}

mwi_host *mwi_hosts_get(mwi_hosts *h, const mw_addr_t *addr, double burst, uint64_t now_ms)
{
    mw_addr_t key;
    mwi_host **slot = chain(h, addr, &key);
    mwi_host *found = lookup(*slot, &key);
    if (found) {
        found->last_ms = now_ms;
        return found;
    }
    mwi_host *x = calloc(1, sizeof *x);
    if (x == NULL)
        return NULL;
    x->key = key;
    x->last_ms = now_ms;
    mwi_bucket_init(&x->handshakes, burst, now_ms);
    x->hnext = *slot;
    *slot = x;
    h->n++;
    return x;
}

void mwi_hosts_clear_counts(mwi_hosts *h)
{
    for (uint32_t i = 0; i < h->nb; i++)
        for (mwi_host *x = h->b[i]; x; x = x->hnext)
            x->half_open = 0;
}

void mwi_hosts_reap(mwi_hosts *h, uint64_t now_ms, uint64_t idle_ms)
{
    for (uint32_t i = 0; i < h->nb; i++) {
        mwi_host **pp = &h->b[i];
        while (*pp) {
            mwi_host *x = *pp;
            if (x->half_open == 0 && now_ms - x->last_ms >= idle_ms) {
                *pp = x->hnext;
                free(x);
                h->n--;
            } else {
                pp = &x->hnext;
            }
        }
    }
}

void mwi_audit_limiter_init(mwi_audit_limiter *l, uint32_t per_window, uint64_t window_ms)
{
    memset(l, 0, sizeof *l);
    l->per_window = per_window;
    l->window_ms = window_ms;
}

bool mwi_audit_limit(mwi_audit_limiter *l, const char *event, const char *device, uint64_t now_ms,
                     uint32_t *out_held, const mwi_audit_slot **out_slot)
{
    *out_held = 0;
    *out_slot = NULL;
    size_t dl = strnlen(device, sizeof l->slot[0].device - 1);
    uint32_t h = hash(event, strlen(event)) ^ hash(device, dl);
    mwi_audit_slot *s = &l->slot[h % MWI_AUDIT_SLOTS];
    bool same = s->event != NULL && strcmp(s->event, event) == 0 &&
                strncmp(s->device, device, sizeof s->device) == 0;
    if (!same && s->event != NULL && now_ms - s->window_ms < l->window_ms && s->suppressed > 0)
        return true; /* the slot is busy holding another's count: this one is not limited */
    if (!same || now_ms - s->window_ms >= l->window_ms) {
        if (same && s->suppressed > 0) {
            *out_held = s->suppressed;
            *out_slot = s;
        }
        if (!same) {
            s->event = event;
            memcpy(s->device, device, dl);
            s->device[dl] = '\0';
        }
        s->window_ms = now_ms;
        s->count = 0;
        s->suppressed = 0;
    }
    if (s->count < l->per_window) {
        s->count++;
        return true;
    }
    s->suppressed++;
    return false;
}

const mwi_audit_slot *mwi_audit_limiter_due(mwi_audit_limiter *l, uint64_t now_ms, uint32_t *pos,
                                            uint32_t *out_held)
{
    for (; *pos < MWI_AUDIT_SLOTS; (*pos)++) {
        mwi_audit_slot *s = &l->slot[*pos];
        if (s->event != NULL && s->suppressed > 0 && now_ms - s->window_ms >= l->window_ms) {
            *out_held = s->suppressed;
            s->suppressed = 0;
            s->count = 0;
            s->window_ms = now_ms;
            (*pos)++;
            return s;
        }
    }
    return NULL;
}
