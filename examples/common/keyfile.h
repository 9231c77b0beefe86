/* SPDX-License-Identifier: Apache-2.0 */
/* keyfile.h -- the offline queue's AES key, read from the file an operator made for it. */
#ifndef MW_EXAMPLE_KEYFILE_H
#define MW_EXAMPLE_KEYFILE_H

#include <stdint.h>

/**
 * Reads the queue key from @p path: 32 bytes, raw, or 64 hex digits and an optional newline.
 * Returns 0, or -1 after telling standard error why, prefixed by @p prog ("medwire-device"),
 * and how to make a good one. Every copy but @p key is wiped.
 */
int keyfile_read(const char *prog, const char *path, uint8_t key[32]);

#endif
