/* SPDX-License-Identifier: Apache-2.0 */
/* detail.h -- filling an mw_error_detail_t, shared by every layer. */
#ifndef MWI_CORE_DETAIL_H
#define MWI_CORE_DETAIL_H

#include <stdbool.h>

#include "medwire/err.h"

/** Sets @p d to (e, foreign, reason), reason cut to fit; does nothing if @p d is NULL. */
void mwi_detail_set(mw_error_detail_t *d, mw_err e, int foreign, const char *reason);
/** As mwi_detail_set, but only if @p d holds no error yet: the first error wins. */
void mwi_detail_first(mw_error_detail_t *d, mw_err e, int foreign, const char *reason);

/** Copies *src into @p out, or clears @p out when @p src is NULL (no error); does nothing if @p out
 *  is NULL. */
void mwi_detail_copy(mw_error_detail_t *out, const mw_error_detail_t *src);

/** The one way to fail with a reason: mwi_detail_first(d, e, 0, reason), then returns @p e. */
mw_err mwi_detail_fail(mw_error_detail_t *d, mw_err e, const char *reason);

/** Where a constructor's checks begin: clears @p d, then MW_EINVAL if it has no configuration
 *  or no output pointer, MW_ECONFIG if the CA, @p whose certificate or its key is missing (as a file and as a buffer)
 *  (each sentence says which); MW_OK otherwise. */
mw_err mwi_detail_open_checks(mw_error_detail_t *d, int have_cfg_and_out, bool ca, bool cert,
                              bool key, const char *whose);

#if defined(__GNUC__)
#define MWI_PRINTF(fmt, args) __attribute__((format(printf, fmt, args)))
#else
#define MWI_PRINTF(fmt, args)
#endif

/** mwi_detail_first with a reason formatted as printf does (cut to fit): a reason that names a
 *  file, a peer or a code. Returns @p e. */
mw_err mwi_detail_firstf(mw_error_detail_t *d, mw_err e, int foreign, const char *fmt, ...)
    MWI_PRINTF(4, 5);

#endif
