/* SPDX-License-Identifier: Apache-2.0 */
/* test_terms.c -- the MDC terminology table (include/medwire/terms.h): in code order, every code
 * within its partition, every LOINC code with its check digit right, every constant in it, and
 * the term codes the published sources give (docs/terminology.md) where the table claims
 * them. */
#include <criterion/criterion.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "medwire/terms.h"

/* LOINC's Mod 10 check digit: the digits in odd places from the right, read as a number and
 * doubled, after those in even places; the digits of that summed; the check digit takes the
 * sum up to a multiple of ten. */
static int loinc_check_digit(const char *code)
{
    const char *dash = strchr(code, '-');
    if (dash == NULL || dash == code || dash[1] == '\0' || dash[2] != '\0')
        return -1;
    char odd[16] = {0}, even[16] = {0};
    size_t no = 0, ne = 0, len = (size_t)(dash - code);
    if (len > 7)
        return -1;
    for (size_t i = 0; i < len; i++) {
        char c = code[len - 1 - i];
        if (c < '0' || c > '9')
            return -1;
        if (i % 2 == 0)
            odd[no++] = c;
        else
            even[ne++] = c;
    }
    /* odd and even hold their digits right to left: read them back left to right */
    unsigned long odd_n = 0;
    for (size_t i = no; i-- > 0;)
        odd_n = odd_n * 10 + (unsigned long)(odd[i] - '0');
    char joined[40];
    size_t j = 0;
    for (size_t i = ne; i-- > 0;)
        joined[j++] = even[i];
    snprintf(joined + j, sizeof joined - j, "%lu", odd_n * 2);
    unsigned sum = 0;
    for (const char *p = joined; *p; p++)
        sum += (unsigned)(*p - '0');
    return (int)((10 - sum % 10) % 10);
}

Test(terms, the_check_digit_routine_matches_known_codes)
{
    cr_expect_eq(loinc_check_digit("8867-4"), 4);
    cr_expect_eq(loinc_check_digit("59408-5"), 5);
    cr_expect_neq(loinc_check_digit("8867-5"), 5, "a wrong check digit is caught");
    cr_expect_eq(loinc_check_digit("88x7-4"), -1);
}

Test(terms, the_table_is_sorted_and_every_entry_is_well_formed)
{
    size_t n = 0;
    uint32_t prev = 0;
    for (const mw_term_t *t; (t = mw_term_at(n)) != NULL; n++) {
        cr_expect_gt(t->mdc_code, prev, "entry %zu (%s) out of order", n, t->ref_id);
        prev = t->mdc_code;
        uint32_t partition = t->mdc_code >> 16;
        bool event = strncmp(t->ref_id, "MDC_EVT_", 8) == 0;
        cr_expect_eq(partition, event ? 3u : 2u, "%s: partition %u", t->ref_id, partition);
        cr_expect_eq(strncmp(t->ref_id, "MDC_", 4), 0);
        cr_expect_not_null(t->ucum);
        cr_expect(t->status >= MW_TERM_CONFIRMED && t->status <= MW_TERM_UNCONFIRMED);
        cr_expect_eq(mw_term_find(t->mdc_code), t, "%s is found by its code", t->ref_id);
        if (t->loinc != NULL) {
            cr_expect_not_null(t->loinc_display);
            cr_expect_eq(loinc_check_digit(t->loinc), t->loinc[strlen(t->loinc) - 1] - '0',
                         "%s: LOINC %s has a wrong check digit", t->ref_id, t->loinc);
        }
        if (t->loinc_method != NULL)
            cr_expect_eq(loinc_check_digit(t->loinc_method),
                         t->loinc_method[strlen(t->loinc_method) - 1] - '0', "%s: LOINC %s",
                         t->ref_id, t->loinc_method);
        if (t->vital_sign)
            cr_expect_not_null(t->loinc, "%s: a vital sign needs its LOINC code", t->ref_id);
    }
    cr_expect_geq(n, 20u);
    cr_expect_null(mw_term_find(0));
    cr_expect_null(mw_term_find(150999u));
    cr_expect_null(mw_term_find(UINT32_MAX));
}

/* The term codes (within partition 2, SCADA, or 3, events) as the published sources give them,
 * for the entries the table calls confirmed: a slip in a number or a partition shows here. */
Test(terms, confirmed_codes_match_the_published_term_codes)
{
    static const struct {
        const char *ref_id;
        uint32_t partition, term;
    } published[] = {
        {"MDC_ECG_HEART_RATE", 2, 16770},
        {"MDC_PULS_OXIM_PULS_RATE", 2, 18458},
        {"MDC_PULS_RATE_NON_INV", 2, 18474},
        {"MDC_PRESS_BLD_NONINV_SYS", 2, 18949},
        {"MDC_PRESS_BLD_NONINV_DIA", 2, 18950},
        {"MDC_TEMP_BODY", 2, 19292},
        {"MDC_PULS_OXIM_SAT_O2", 2, 19384},
        {"MDC_RESP_RATE", 2, 20490},
        {"MDC_VOL_AWAY_TIDAL", 2, 20796},
        {"MDC_FLOW_FLUID_PUMP", 2, 26712},
        {"MDC_EVT_ALARM", 3, 8},
    };
    size_t confirmed = 0;
    for (size_t i = 0; i < sizeof published / sizeof published[0]; i++) {
        const mw_term_t *t = mw_term_find(published[i].partition << 16 | published[i].term);
        cr_assert_not_null(t, "%s missing", published[i].ref_id);
        cr_expect_str_eq(t->ref_id, published[i].ref_id);
        cr_expect_eq(t->status, MW_TERM_CONFIRMED, "%s", t->ref_id);
    }
    /* and nothing else is called confirmed without a row above */
    for (size_t n = 0; mw_term_at(n) != NULL; n++)
        if (mw_term_at(n)->status == MW_TERM_CONFIRMED)
            confirmed++;
    cr_expect_eq(confirmed, sizeof published / sizeof published[0]);
}

Test(terms, the_sdk_constants_are_in_the_table)
{
    const uint32_t constants[] = {
        MW_MDC_ECG_HEART_RATE,
        MW_MDC_PULS_OXIM_PULS_RATE,
        MW_MDC_PULS_RATE_NON_INV,
        MW_MDC_PRESS_BLD_NONINV_SYS,
        MW_MDC_PRESS_BLD_NONINV_DIA,
        MW_MDC_PRESS_BLD_NONINV_MEAN,
        MW_MDC_PRESS_BLD_ART_ABP_SYS,
        MW_MDC_PRESS_BLD_ART_ABP_DIA,
        MW_MDC_PRESS_BLD_ART_ABP_MEAN,
        MW_MDC_TEMP_BODY,
        MW_MDC_PULS_OXIM_SAT_O2,
        MW_MDC_RESP_RATE,
        MW_MDC_VENT_RESP_RATE,
        MW_MDC_AWAY_CO2_ET,
        MW_MDC_VOL_AWAY_TIDAL,
        MW_MDC_PRESS_AWAY_END_EXP_POS,
        MW_MDC_FLOW_FLUID_PUMP,
        MW_MDC_EVT_ALARM,
        MW_MDC_EVT_HI,
        MW_MDC_EVT_LO,
    };
    size_t n = 0;
    while (mw_term_at(n) != NULL)
        n++;
    cr_expect_eq(n, sizeof constants / sizeof constants[0], "one constant per entry");
    for (size_t i = 0; i < sizeof constants / sizeof constants[0]; i++)
        cr_expect_not_null(mw_term_find(constants[i]), "constant %u not in the table",
                           constants[i]);
}
