/* SPDX-License-Identifier: Apache-2.0 */
/* format.h -- byte-level helpers shared by the queue and the sequence store (docs/queue.md). */
#ifndef MWI_QUEUE_FORMAT_H
#define MWI_QUEUE_FORMAT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/limits.h"

/* Every on-storage structure ends in this byte. A write torn before its end leaves the erased
 * value 0xFF there, a complete one leaves 0x5A, and no single bit flip turns one into the
 * other: that is how recovery tells an interrupted write from damage to finished data. */
#define MWI_TRAILER 0x5Au
#define MWI_ERASED  0xFFu
/* MWI_WRITE_UNIT_MAX, the largest write unit a region may declare, is in core/limits.h. */

/** CRC-32C (Castagnoli) of @p len bytes, continuing from @p crc (start with 0). */
uint32_t mwi_crc32c(uint32_t crc, const uint8_t *p, size_t len);

/** True if every byte of p[0..len) is the erased value. */
bool mwi_all_erased(const uint8_t *p, size_t len);

static inline void mwi_put16(uint8_t *p, uint16_t v)
{
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
}

static inline void mwi_put32(uint8_t *p, uint32_t v)
{
    for (int i = 0; i < 4; i++) {
        p[i] = (uint8_t)(v >> (8 * i));
    }
}

static inline void mwi_put64(uint8_t *p, uint64_t v)
{
    for (int i = 0; i < 8; i++) {
        p[i] = (uint8_t)(v >> (8 * i));
    }
}

static inline uint16_t mwi_get16(const uint8_t *p)
{
    return (uint16_t)(p[0] | (p[1] << 8));
}

static inline uint32_t mwi_get32(const uint8_t *p)
{
    uint32_t v = 0;
    for (int i = 3; i >= 0; i--) {
        v = (v << 8) | p[i];
    }
    return v;
}

static inline uint64_t mwi_get64(const uint8_t *p)
{
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--) {
        v = (v << 8) | p[i];
    }
    return v;
}

static inline uint32_t mwi_align_up(uint32_t v, uint32_t a)
{
    return (uint32_t)(((uint64_t)v + a - 1) / a * a);
}

#endif
