/* SPDX-License-Identifier: Apache-2.0 */
/* mem_transport.c -- an in-memory datagram network with reproducible faults, for tests. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "support/mem_transport.h"

/* Enough for a gateway and thousands of simulated devices (tests/integration/test_scale.c). */
enum { NET_MAX_ENDPOINTS = 16384, NET_HASH_BUCKETS = 16384, NET_MAX_MARKS = 64 };
/* Datagrams of up to DGRAM_POOLED bytes are recycled through a free list of at most
 * NET_MAX_POOLED: after warm-up the network allocates nothing, so that tests counting a
 * device's allocations see the device's own and not the wire's. */
enum { DGRAM_POOLED = 2048, NET_MAX_POOLED = 4096 };

/* Any non-zero state works for xorshift; 0 is its fixed point. */
#define NET_ZERO_SEED UINT64_C(0x9E3779B97F4A7C15)

typedef struct dgram {
    struct dgram *next;
    uint64_t ready_ms; /* not receivable before this time (delay fault) */
    mw_addr_t from;
    size_t len;
    size_t cap;
    uint8_t data[];
} dgram;

typedef struct endpoint {
    mwt_net *net;
    mw_addr_t addr;
    struct endpoint *hnext; /* in net->by_addr */
    dgram *head, *tail;     /* inbox, FIFO unless the net reorders */
    size_t queued;
    mwt_counters counters;
} endpoint;

/* A small set of datagram indices a test marked for one fault. */
typedef struct marks {
    uint64_t idx[NET_MAX_MARKS];
    size_t n;
} marks;

struct mwt_net {
    endpoint *eps[NET_MAX_ENDPOINTS];
    size_t n_eps;
    endpoint *by_addr[NET_HASH_BUCKETS]; /* every send looks its destination up */
    uint64_t rng;
    uint64_t sent; /* index of the next datagram */
    uint64_t lost; /* dropped by a fault or sent to no endpoint */
    size_t in_flight;
    double p_drop, p_dup, p_reorder;
    double p_delay, p_corrupt;
    uint64_t max_delay_ms;
    const mwt_clock *clk; /* time source for delays; NULL: no delays */
    marks drop, dup, corrupt;
    dgram *pool; /* free list */
    size_t pooled;
};

static mw_transport_send_fn ep_send;
static mw_transport_recv_fn ep_recv;
static mw_transport_close_fn ep_close;

/* Misuse of the test harness is a bug in the test, not a condition to handle. */
_Noreturn static void die(const char *what)
{
    fprintf(stderr, "mem_transport: %s\n", what);
    abort();
}

/* xorshift64*, private to the net so that the fault pattern depends only on the
 * seed and the sequence of sends, not on what else the test draws. */
static uint64_t net_rand(mwt_net *net)
{
    uint64_t x = net->rng != 0 ? net->rng : NET_ZERO_SEED;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    net->rng = x;
    return x * UINT64_C(0x2545F4914F6CDD1D);
}

/* A uniform draw in [0,1) from the top 53 bits. */
static double net_uniform(mwt_net *net)
{
    return (double)(net_rand(net) >> 11) * (1.0 / 9007199254740992.0);
}

static void marks_add(marks *m, uint64_t index)
{
    if (m->n == NET_MAX_MARKS)
        die("too many marked datagram indices");
    m->idx[m->n++] = index;
}

static bool marks_has(const marks *m, uint64_t index)
{
    for (size_t i = 0; i < m->n; i++)
        if (m->idx[i] == index)
            return true;
    return false;
}

static bool addr_equal(const mw_addr_t *a, const mw_addr_t *b)
{
    return a->len == b->len && memcmp(a->data, b->data, a->len) == 0;
}

static size_t addr_bucket(const mw_addr_t *addr)
{
    uint32_t h = 2166136261u; /* FNV-1a */
    for (uint32_t i = 0; i < addr->len && i < sizeof addr->data; i++)
        h = (h ^ addr->data[i]) * 16777619u;
    return h % NET_HASH_BUCKETS;
}

static endpoint *find_endpoint(mwt_net *net, const mw_addr_t *addr)
{
    for (endpoint *ep = net->by_addr[addr_bucket(addr)]; ep != NULL; ep = ep->hnext)
        if (addr_equal(&ep->addr, addr))
            return ep;
    return NULL;
}

mwt_net *mwt_net_create(uint64_t seed)
{
    mwt_net *net = calloc(1, sizeof *net);
    if (net == NULL)
        die("out of memory");
    net->rng = seed != 0 ? seed : NET_ZERO_SEED;
    return net;
}

static void dgram_free(mwt_net *net, dgram *d)
{
    if (d->cap == DGRAM_POOLED && net->pooled < NET_MAX_POOLED) {
        d->next = net->pool;
        net->pool = d;
        net->pooled++;
        return;
    }
    free(d);
}

static void inbox_free(endpoint *ep)
{
    dgram *d = ep->head;
    while (d != NULL) {
        dgram *next = d->next;
        free(d);
        d = next;
    }
    ep->head = ep->tail = NULL;
    ep->queued = 0;
}

void mwt_net_destroy(mwt_net *net)
{
    if (net == NULL)
        return;
    for (size_t i = 0; i < net->n_eps; i++) {
        inbox_free(net->eps[i]);
        free(net->eps[i]);
    }
    while (net->pool != NULL) {
        dgram *next = net->pool->next;
        free(net->pool);
        net->pool = next;
    }
    free(net);
}

mw_transport_t mwt_net_endpoint(mwt_net *net, const char *addr_text)
{
    mw_transport_t t;
    endpoint *ep;
    mw_addr_t addr;

    if (net == NULL || addr_text == NULL || mw_addr_parse(addr_text, &addr) != MW_OK)
        die("bad endpoint address");
    if (net->n_eps == NET_MAX_ENDPOINTS)
        die("too many endpoints");
    if (find_endpoint(net, &addr) != NULL)
        die("two endpoints with one address");
    ep = calloc(1, sizeof *ep);
    if (ep == NULL)
        die("out of memory");
    ep->net = net;
    ep->addr = addr;
    net->eps[net->n_eps++] = ep;
    ep->hnext = net->by_addr[addr_bucket(&addr)];
    net->by_addr[addr_bucket(&addr)] = ep;

    t.ctx = ep;
    t.send = ep_send;
    t.recv = ep_recv;
    t.close = ep_close;
    t.fd = -1;
    t.recv_many = NULL;
    return t;
}

mw_addr_t mwt_net_addr(const mw_transport_t *t)
{
    const endpoint *ep = t->ctx;
    return ep->addr;
}

void mwt_net_set_faults(mwt_net *net, double drop, double duplicate, double reorder)
{
    net->p_drop = drop;
    net->p_dup = duplicate;
    net->p_reorder = reorder;
}

void mwt_net_drop_index(mwt_net *net, uint64_t index)
{
    marks_add(&net->drop, index);
}

void mwt_net_duplicate_index(mwt_net *net, uint64_t index)
{
    marks_add(&net->dup, index);
}

void mwt_net_corrupt_index(mwt_net *net, uint64_t index)
{
    marks_add(&net->corrupt, index);
}

uint64_t mwt_net_sent(const mwt_net *net)
{
    return net->sent;
}

uint64_t mwt_net_lost(const mwt_net *net)
{
    return net->lost;
}

size_t mwt_net_in_flight(const mwt_net *net)
{
    return net->in_flight;
}

mwt_counters mwt_net_counters(const mw_transport_t *t)
{
    const endpoint *ep = t->ctx;
    return ep->counters;
}

void mwt_net_reset_counters(mwt_net *net)
{
    for (size_t i = 0; i < net->n_eps; i++)
        memset(&net->eps[i]->counters, 0, sizeof net->eps[i]->counters);
}

static dgram *dgram_new(mwt_net *net, const mw_addr_t *from, const uint8_t *buf, size_t len)
{
    dgram *d;
    if (len <= DGRAM_POOLED && net->pool != NULL) {
        d = net->pool;
        net->pool = d->next;
        net->pooled--;
    } else {
        size_t cap = len <= DGRAM_POOLED ? DGRAM_POOLED : len;
        d = malloc(sizeof *d + cap);
        if (d == NULL)
            die("out of memory");
        d->cap = cap;
    }
    d->next = NULL;
    d->ready_ms = 0;
    d->from = *from;
    d->len = len;
    if (len > 0)
        memcpy(d->data, buf, len);
    return d;
}

static void inbox_append(endpoint *ep, dgram *d)
{
    if (ep->tail != NULL)
        ep->tail->next = d;
    else
        ep->head = d;
    ep->tail = d;
    ep->queued++;
    ep->net->in_flight++;
}

/* Inserts @p d before a randomly chosen datagram already waiting, so it
 * overtakes nothing and is overtaken by at least one later send. */
static void inbox_insert_earlier(endpoint *ep, dgram *d)
{
    size_t pos = (size_t)(net_rand(ep->net) % ep->queued);
    dgram **link = &ep->head;
    while (pos-- > 0)
        link = &(*link)->next;
    d->next = *link;
    *link = d;
    ep->queued++;
    ep->net->in_flight++;
}

static mw_err ep_send(void *ctx, const mw_addr_t *to, const uint8_t *buf, size_t len)
{
    endpoint *ep = ctx;
    mwt_net *net = ep->net;
    uint64_t index;
    endpoint *dst;
    dgram *d;
    bool drop, dup, reorder;

    if (to == NULL || (buf == NULL && len > 0))
        return MW_EINVAL;
    index = net->sent++;
    ep->counters.datagrams_out++;
    ep->counters.bytes_out += len;

    /* Three draws for every datagram whatever the probabilities, so that
     * changing one probability does not shift the others' pattern. */
    drop = net_uniform(net) < net->p_drop;
    dup = net_uniform(net) < net->p_dup;
    reorder = net_uniform(net) < net->p_reorder;
    bool delay = net_uniform(net) < net->p_delay;
    bool corrupt = net_uniform(net) < net->p_corrupt;
    uint64_t delay_ms = net->max_delay_ms ? 1 + net_rand(net) % net->max_delay_ms : 0;
    drop = drop || marks_has(&net->drop, index);
    dup = dup || marks_has(&net->dup, index);

    dst = find_endpoint(net, to);
    if (dst == NULL || drop) {
        /* Like UDP: the sender learns nothing. */
        net->lost++;
        return MW_OK;
    }

    d = dgram_new(net, &ep->addr, buf, len);
    if (delay && net->clk != NULL)
        d->ready_ms = net->clk->now_ms + delay_ms;
    if (corrupt && len > 0)
        /* A random byte anywhere: headers, lengths and ciphertext alike. */
        d->data[net_rand(net) % len] ^= (uint8_t)(1u << (net_rand(net) % 8));
    if (marks_has(&net->corrupt, index) && len > 0)
        /* The last byte: in a DTLS record that is the AEAD tag, so the record
         * is rejected by authentication, not by a length check. */
        d->data[len - 1] ^= 0xFF;
    if (reorder && dst->queued > 0)
        inbox_insert_earlier(dst, d);
    else
        inbox_append(dst, d);
    if (dup) {
        dgram *copy = dgram_new(net, &d->from, d->data, d->len);
        inbox_append(dst, copy);
    }
    return MW_OK;
}

static mw_err ep_recv(void *ctx, mw_addr_t *out_from, uint8_t *out_buf, size_t cap, size_t *out_len)
{
    endpoint *ep = ctx;
    dgram *d = ep->head, *prev = NULL;

    if (out_len == NULL || (out_buf == NULL && cap > 0))
        return MW_EINVAL;
    *out_len = 0;
    /* The first datagram whose delay has passed: a delayed one lets later
     * ones overtake it, as on a real network. */
    uint64_t now = ep->net->clk ? ep->net->clk->now_ms : 0;
    while (d != NULL && d->ready_ms > now) {
        prev = d;
        d = d->next;
    }
    if (d == NULL)
        return MW_EAGAIN;
    if (prev)
        prev->next = d->next;
    else
        ep->head = d->next;
    if (ep->tail == d)
        ep->tail = prev;
    ep->queued--;
    ep->net->in_flight--;

    if (out_from != NULL)
        *out_from = d->from;
    if (cap > 0)
        memcpy(out_buf, d->data, d->len < cap ? d->len : cap);
    *out_len = d->len;
    ep->counters.datagrams_in++;
    ep->counters.bytes_in += d->len;
    dgram_free(ep->net, d);
    return MW_OK;
}

/* The net owns its endpoints; a closed endpoint simply stops being polled. */
static void ep_close(void *ctx)
{
    (void)ctx;
}

void mwt_net_set_delay(mwt_net *net, const mwt_clock *clk, double p_delay, uint64_t max_delay_ms)
{
    net->clk = clk;
    net->p_delay = p_delay;
    net->max_delay_ms = max_delay_ms;
}

void mwt_net_set_corrupt(mwt_net *net, double p_corrupt)
{
    net->p_corrupt = p_corrupt;
}

size_t mwt_net_ready(const mwt_net *net)
{
    size_t n = 0;
    uint64_t now = net->clk ? net->clk->now_ms : 0;
    for (size_t i = 0; i < net->n_eps; i++)
        for (const dgram *d = net->eps[i]->head; d; d = d->next)
            n += d->ready_ms <= now;
    return n;
}

uint64_t mwt_net_next_ready_ms(const mwt_net *net)
{
    uint64_t at = UINT64_MAX;
    for (size_t i = 0; i < net->n_eps; i++)
        for (const dgram *d = net->eps[i]->head; d; d = d->next)
            if (d->ready_ms < at)
                at = d->ready_ms;
    return at;
}

mw_err mwt_net_inject(mwt_net *net, const mw_addr_t *from, const mw_transport_t *to,
                      const uint8_t *buf, size_t len)
{
    endpoint *dst = to->ctx;
    if (dst == NULL || dst->net != net || from == NULL)
        return MW_EINVAL;
    /* A datagram whose source address is whatever the test says: what an
     * attacker on the path can send, and a real network would deliver. */
    dgram *d = dgram_new(net, from, buf, len);
    inbox_append(dst, d);
    return MW_OK;
}
