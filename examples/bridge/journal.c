/* SPDX-License-Identifier: Apache-2.0 */
/* journal.c -- a fixed table of JOURNAL_SLOTS slots of 64 bytes, one per legacy sender, each
 * rewritten in place with one pwrite and checked by a digest when read back. */
#define _DEFAULT_SOURCE
#include "journal.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define SLOT_BYTES 64u
#define SLOT_MAGIC 0x324a424du /* "MBJ2" */

typedef struct slot {
    uint64_t sender, msg, stamp, pending_seq, space;
    uint32_t done, n;
} slot_t;

struct journal {
    int fd;
    uint64_t stamp;
    slot_t slots[JOURNAL_SLOTS];
};

static uint64_t fnv1a(uint64_t h, const void *p, size_t n)
{
    const unsigned char *b = p;
    for (size_t i = 0; i < n; i++) {
        h ^= b[i];
        h *= 0x100000001b3ull;
    }
    return h;
}

#define FNV_BASIS 0xcbf29ce484222325ull

uint64_t journal_key(const char *const *parts, size_t n)
{
    uint64_t h = FNV_BASIS;
    for (size_t i = 0; i < n; i++)
        h = fnv1a(h, parts[i], strlen(parts[i]) + 1); /* the NUL keeps "ab","c" from "a","bc" */
    return h == 0 ? 1 : h;                            /* 0 marks a free slot */
}

static void put64(uint8_t *p, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

static uint64_t get64(const uint8_t *p)
{
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--)
        v = v << 8 | p[i];
    return v;
}

static void encode(const slot_t *s, uint8_t out[SLOT_BYTES])
{
    put64(out, SLOT_MAGIC);
    put64(out + 8, s->sender);
    put64(out + 16, s->msg);
    put64(out + 24, s->stamp);
    put64(out + 32, (uint64_t)s->done << 32 | s->n);
    put64(out + 40, s->pending_seq);
    put64(out + 48, s->space);
    put64(out + 56, fnv1a(FNV_BASIS, out, 56));
}

/* A slot that fails its digest (a write torn by a power cut) is forgotten: the message it
 * described is then queued again in full, which may repeat items but never loses one. */
static void decode(const uint8_t in[SLOT_BYTES], slot_t *s)
{
    memset(s, 0, sizeof *s);
    if (get64(in) != SLOT_MAGIC || get64(in + 56) != fnv1a(FNV_BASIS, in, 56))
        return;
    uint64_t dn = get64(in + 32);
    s->sender = get64(in + 8);
    s->msg = get64(in + 16);
    s->stamp = get64(in + 24);
    s->done = (uint32_t)(dn >> 32);
    s->n = (uint32_t)dn;
    s->pending_seq = get64(in + 40);
    s->space = get64(in + 48);
    if (s->done > s->n || (s->pending_seq != 0 && s->done == s->n))
        memset(s, 0, sizeof *s);
}

journal_t *journal_open(const char *path)
{
    journal_t *j = calloc(1, sizeof *j);
    if (j == NULL)
        return NULL;
    j->fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (j->fd < 0) {
        int err = errno;
        free(j);
        errno = err;
        return NULL;
    }
    uint8_t buf[SLOT_BYTES * JOURNAL_SLOTS];
    ssize_t got = pread(j->fd, buf, sizeof buf, 0);
    if (got < 0) {
        int err = errno;
        close(j->fd);
        free(j);
        errno = err;
        return NULL;
    }
    for (size_t i = 0; i < JOURNAL_SLOTS; i++) {
        if ((size_t)got >= (i + 1) * SLOT_BYTES)
            decode(buf + i * SLOT_BYTES, &j->slots[i]);
        if (j->slots[i].stamp > j->stamp)
            j->stamp = j->slots[i].stamp;
    }
    return j;
}

void journal_close(journal_t **j)
{
    if (j == NULL || *j == NULL)
        return;
    close((*j)->fd);
    free(*j);
    *j = NULL;
}

uint32_t journal_done(const journal_t *j, uint64_t sender_key, uint64_t msg_key, uint32_t n_items)
{
    for (size_t i = 0; i < JOURNAL_SLOTS; i++) {
        const slot_t *s = &j->slots[i];
        if (s->sender == sender_key && s->msg == msg_key && s->n == n_items && s->pending_seq == 0)
            return s->done;
    }
    return 0;
}

static int write_slot(journal_t *j, size_t at)
{
    uint8_t buf[SLOT_BYTES];
    encode(&j->slots[at], buf);
    ssize_t w = pwrite(j->fd, buf, sizeof buf, (off_t)(at * SLOT_BYTES));
    if (w != (ssize_t)sizeof buf) {
        if (w >= 0)
            errno = EIO;
        return -1;
    }
    return 0;
}

int journal_settle(journal_t *j, journal_holds_fn *holds, void *ctx)
{
    for (size_t i = 0; i < JOURNAL_SLOTS; i++) {
        slot_t *s = &j->slots[i];
        if (s->sender == 0 || s->pending_seq == 0)
            continue;
        if (holds(ctx, s->space, s->pending_seq))
            s->done++;
        s->pending_seq = 0;
        if (write_slot(j, i) != 0)
            return -1;
    }
    return 0;
}

int journal_record(journal_t *j, uint64_t sender_key, uint64_t msg_key, uint32_t done,
                   uint32_t n_items, uint64_t pending_seq, uint64_t space)
{
    size_t at = 0;
    for (size_t i = 0; i < JOURNAL_SLOTS; i++) {
        if (j->slots[i].sender == sender_key) {
            at = i;
            break;
        }
        if (j->slots[i].stamp < j->slots[at].stamp)
            at = i; /* the free slot (stamp 0) or the least recently used */
    }
    slot_t *s = &j->slots[at];
    s->sender = sender_key;
    s->msg = msg_key;
    s->done = done;
    s->n = n_items;
    s->pending_seq = pending_seq;
    s->space = space;
    s->stamp = ++j->stamp;
    return write_slot(j, at);
}
