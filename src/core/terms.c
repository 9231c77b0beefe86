/* SPDX-License-Identifier: Apache-2.0 */
/* terms.c -- the MDC terms every output reads (include/medwire/terms.h). How each number was
 * checked is in docs/terminology.md; tests/core/test_terms.c keeps the table sorted, the codes
 * within their partitions and every LOINC check digit right. */
#include "medwire/terms.h"

#include <stddef.h>

#define VITAL 1
#define OTHER 0

/* Sorted by code (mw_term_find searches it by halves). */
static const mw_term_t TERMS[] = {
    {MW_MDC_ECG_HEART_RATE, "MDC_ECG_HEART_RATE", "/min", "8867-4", "Heart rate", NULL, NULL, VITAL,
     MW_TERM_CONFIRMED},
    {MW_MDC_PULS_OXIM_PULS_RATE, "MDC_PULS_OXIM_PULS_RATE", "/min", "8867-4", "Heart rate",
     "8889-8", "Heart rate by Pulse oximetry", VITAL, MW_TERM_CONFIRMED},
    {MW_MDC_PULS_RATE_NON_INV, "MDC_PULS_RATE_NON_INV", "/min", "8867-4", "Heart rate", NULL, NULL,
     VITAL, MW_TERM_CONFIRMED},
    {MW_MDC_PRESS_BLD_NONINV_SYS, "MDC_PRESS_BLD_NONINV_SYS", "mm[Hg]", "8480-6",
     "Systolic blood pressure", NULL, NULL, VITAL, MW_TERM_CONFIRMED},
    {MW_MDC_PRESS_BLD_NONINV_DIA, "MDC_PRESS_BLD_NONINV_DIA", "mm[Hg]", "8462-4",
     "Diastolic blood pressure", NULL, NULL, VITAL, MW_TERM_CONFIRMED},
    {MW_MDC_PRESS_BLD_NONINV_MEAN, "MDC_PRESS_BLD_NONINV_MEAN", "mm[Hg]", "8478-0",
     "Mean blood pressure", NULL, NULL, VITAL, MW_TERM_SINGLE_SOURCE},
    {MW_MDC_PRESS_BLD_ART_ABP_SYS, "MDC_PRESS_BLD_ART_ABP_SYS", "mm[Hg]", "8480-6",
     "Systolic blood pressure", NULL, NULL, VITAL, MW_TERM_SINGLE_SOURCE},
    {MW_MDC_PRESS_BLD_ART_ABP_DIA, "MDC_PRESS_BLD_ART_ABP_DIA", "mm[Hg]", "8462-4",
     "Diastolic blood pressure", NULL, NULL, VITAL, MW_TERM_SINGLE_SOURCE},
    {MW_MDC_PRESS_BLD_ART_ABP_MEAN, "MDC_PRESS_BLD_ART_ABP_MEAN", "mm[Hg]", "8478-0",
     "Mean blood pressure", NULL, NULL, VITAL, MW_TERM_SINGLE_SOURCE},
    {MW_MDC_TEMP_BODY, "MDC_TEMP_BODY", "Cel", "8310-5", "Body temperature", NULL, NULL, VITAL,
     MW_TERM_CONFIRMED},
    {MW_MDC_PULS_OXIM_SAT_O2, "MDC_PULS_OXIM_SAT_O2", "%", "2708-6",
     "Oxygen saturation in Arterial blood", "59408-5",
     "Oxygen saturation in Arterial blood by Pulse oximetry", VITAL, MW_TERM_CONFIRMED},
    {MW_MDC_RESP_RATE, "MDC_RESP_RATE", "/min", "9279-1", "Respiratory rate", NULL, NULL, VITAL,
     MW_TERM_CONFIRMED},
    {MW_MDC_VENT_RESP_RATE, "MDC_VENT_RESP_RATE", "/min", NULL, NULL, NULL, NULL, OTHER,
     MW_TERM_SINGLE_SOURCE},
    {MW_MDC_AWAY_CO2_ET, "MDC_AWAY_CO2_ET", "mm[Hg]", "19889-5",
     "Carbon dioxide [Partial pressure] in Exhaled gas --at end expiration", NULL, NULL, OTHER,
     MW_TERM_SINGLE_SOURCE},
    {MW_MDC_VOL_AWAY_TIDAL, "MDC_VOL_AWAY_TIDAL", "mL", NULL, NULL, NULL, NULL, OTHER,
     MW_TERM_CONFIRMED},
    {MW_MDC_PRESS_AWAY_END_EXP_POS, "MDC_PRESS_AWAY_END_EXP_POS", "cm[H2O]", NULL, NULL, NULL, NULL,
     OTHER, MW_TERM_UNCONFIRMED},
    {MW_MDC_FLOW_FLUID_PUMP, "MDC_FLOW_FLUID_PUMP", "mL/h", NULL, NULL, NULL, NULL, OTHER,
     MW_TERM_CONFIRMED},
    {MW_MDC_EVT_ALARM, "MDC_EVT_ALARM", "", NULL, NULL, NULL, NULL, OTHER, MW_TERM_CONFIRMED},
    {MW_MDC_EVT_HI, "MDC_EVT_HI", "", NULL, NULL, NULL, NULL, OTHER, MW_TERM_SINGLE_SOURCE},
    {MW_MDC_EVT_LO, "MDC_EVT_LO", "", NULL, NULL, NULL, NULL, OTHER, MW_TERM_SINGLE_SOURCE},
};

#define N_TERMS (sizeof TERMS / sizeof TERMS[0])

const mw_term_t *mw_term_find(uint32_t mdc_code)
{
    size_t lo = 0, hi = N_TERMS;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (TERMS[mid].mdc_code == mdc_code)
            return &TERMS[mid];
        if (TERMS[mid].mdc_code < mdc_code)
            lo = mid + 1;
        else
            hi = mid;
    }
    return NULL;
}

const mw_term_t *mw_term_at(size_t i)
{
    return i < N_TERMS ? &TERMS[i] : NULL;
}
