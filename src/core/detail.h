/* SPDX-License-Identifier: Apache-2.0 */
/* detail.h -- filling an mw_error_detail_t, shared by every layer. */
#ifndef MWI_CORE_DETAIL_H
#define MWI_CORE_DETAIL_H

#include <stdbool.h>

#include "medwire/err.h"

/** Sets @p d to (e, foreign, reason), reason cut to fit (NULL: mw_strerror(e)); does nothing if
 *  @p d is NULL. */
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

/* MW_ERROR_REASONS (1 unless the build says otherwise; CMake -DMW_ERROR_REASONS=OFF gives 0):
 * with 0, a firmware whose flash cannot hold them is built without the sentences that say why.
 * Each reason then reads as mw_strerror(err) does, and audit and log texts are empty; the codes,
 * the events and every check stay. The dropped text sits in a branch never taken, so the
 * compiler still checks it (formats, arguments) and emits none of it. */
#ifndef MW_ERROR_REASONS
#define MW_ERROR_REASONS 1
#endif

/** mwi_detail_first with no reason: the reason reads as mw_strerror(@p e). Returns @p e. */
mw_err mwi_detail_code(mw_error_detail_t *d, mw_err e, int foreign);

#if MW_ERROR_REASONS
/** A sentence kept or dropped with the reasons (NULL when dropped). */
#define MWI_REASON(r) (r)
/** As MWI_REASON, for a function whose NULL means "no error": "" when dropped. */
#define MWI_REASON_SET(r) (r)
/** snprintf of a reason, an audit or a log text: an empty string when reasons are dropped. */
#define MWI_TEXTF(buf, cap, ...) ((void)snprintf(buf, cap, __VA_ARGS__))
#else
#define MWI_REASON(r)     (0 ? (r) : (const char *)0)
#define MWI_REASON_SET(r) (0 ? (r) : "")
#define MWI_TEXTF(buf, cap, ...)                                                                   \
    (0 ? (void)snprintf(buf, cap, __VA_ARGS__) : (void)((buf)[0] = '\0'))
#define mwi_detail_set(d, e, foreign, r)   mwi_detail_set(d, e, foreign, MWI_REASON(r))
#define mwi_detail_first(d, e, foreign, r) mwi_detail_first(d, e, foreign, MWI_REASON(r))
#define mwi_detail_fail(d, e, r)           mwi_detail_fail(d, e, MWI_REASON(r))
#define mwi_detail_firstf(d, e, foreign, ...)                                                      \
    (0 ? mwi_detail_firstf(d, e, foreign, __VA_ARGS__) : mwi_detail_code(d, e, foreign))
#endif

#endif
