/* SPDX-License-Identifier: Apache-2.0 */
/* detail.h -- filling an mw_error_detail_t, shared by every layer. */
#ifndef MWI_CORE_DETAIL_H
#define MWI_CORE_DETAIL_H

#include "medwire/err.h"

/** Sets @p d to (e, foreign, reason), reason cut to fit; does nothing if @p d is NULL. */
void mwi_detail_set(mw_error_detail_t *d, mw_err e, int foreign, const char *reason);
/** As mwi_detail_set, but only if @p d holds no error yet: the first error wins. */
void mwi_detail_first(mw_error_detail_t *d, mw_err e, int foreign, const char *reason);

#endif
