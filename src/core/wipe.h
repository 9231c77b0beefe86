/* SPDX-License-Identifier: Apache-2.0 */
/* wipe.h -- the one way key material and secrets are erased before their memory is reused. */
#ifndef MWI_CORE_WIPE_H
#define MWI_CORE_WIPE_H

#include <stddef.h>

/** Zeroes @p n bytes at @p p; unlike memset, never dropped by the compiler. */
void mwi_wipe(void *p, size_t n);

#endif
