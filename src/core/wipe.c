/* SPDX-License-Identifier: Apache-2.0 */
/* wipe.c -- erasing secrets with stores the compiler may not remove. */
#include "core/wipe.h"

/* A memset before free or before a buffer goes out of scope is a dead store the optimiser
 * removes (seen in the -O2 assembly of a queue key), leaving keys in freed memory and on the
 * stack. Debian's wolfSSL 5.5.4 exports neither wc_ForceZero nor ForceZero (misc.c is
 * inlined into the library), so the stores go through a volatile pointer. */
void mwi_wipe(void *p, size_t n)
{
    volatile unsigned char *v = p;
    while (n-- > 0)
        *v++ = 0;
}
