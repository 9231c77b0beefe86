/* SPDX-License-Identifier: Apache-2.0 */
/* A build without the sentences (MW_ERROR_REASONS=0, CMake -DMW_ERROR_REASONS=OFF): err.c is
 * compiled into this test that way. Every reason reads as the code says; texts are empty. */
#include <criterion/criterion.h>
#include <stdio.h>

#include "core/detail.h"

#if MW_ERROR_REASONS
#error "this test is built with MW_ERROR_REASONS=0"
#endif

Test(terse_errors, a_reason_reads_as_mw_strerror_says)
{
    mw_error_detail_t a = {0}, b = {0}, c = {0};
    cr_assert_eq(mwi_detail_firstf(&a, MW_ECONFIG, 0, "cannot read '%s'", "ca.pem"), MW_ECONFIG);
    cr_expect_str_eq(a.reason, mw_strerror(MW_ECONFIG));
    cr_assert_eq(mwi_detail_fail(&b, MW_EIO, "queue: cannot read the storage region"), MW_EIO);
    cr_expect_str_eq(b.reason, mw_strerror(MW_EIO));
    mwi_detail_set(&c, MW_EDTLS, -313, "");
    cr_expect_str_eq(c.reason, mw_strerror(MW_EDTLS));
    cr_expect_eq(c.foreign, -313, "the foreign code stays");
}

Test(terse_errors, the_first_error_still_wins)
{
    mw_error_detail_t d = {0};
    mwi_detail_first(&d, MW_ETIMEDOUT, 0, "no answer to the handshake within 30 s");
    (void)mwi_detail_firstf(&d, MW_ECONFIG, 0, "later: %d", 2);
    cr_expect_eq(d.err, MW_ETIMEDOUT);
    cr_expect_str_eq(d.reason, mw_strerror(MW_ETIMEDOUT));
}

Test(terse_errors, an_audit_text_is_empty_and_its_arguments_are_not_run)
{
    char text[64] = "unchanged";
    int runs = 0;
    MWI_TEXTF(text, sizeof text, "seq %d", ++runs);
    cr_expect_str_eq(text, "");
    cr_expect_eq(runs, 0);
    cr_expect_null(MWI_REASON("a sentence"));
}
