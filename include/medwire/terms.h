/* SPDX-License-Identifier: Apache-2.0 */
/**
 * @file terms.h
 * @brief The IEEE 11073-10101 (MDC) terms medwire knows: codes, UCUM units, LOINC equivalents.
 *
 * A device names what it measured with an MDC code (partition << 16 | term code). The
 * constants below are the codes of the common vital signs, infusion and ventilation terms;
 * every output of the gateway (JSON, FHIR, HL7 v2) reads the same table through
 * mw_term_find, so a term added here reaches all of them. docs/terminology.md lists the table
 * with, per entry, how its number was checked. An entry whose number could not be confirmed
 * from two independent published sources says so (@ref MW_TERM_UNCONFIRMED): use it only after
 * checking it against IEEE 11073-10101 or NIST's RTMMS.
 *
 * The constants are for device and gateway alike; mw_term_find and mw_term_at are in the
 * gateway library (medwire-gateway), not in the device SDK, so that a device's flash holds no
 * table it never reads.
 */
#ifndef MEDWIRE_TERMS_H
#define MEDWIRE_TERMS_H

#include <stddef.h>
#include <stdint.h>

#include "medwire/err.h"

#ifdef __cplusplus
extern "C" {
#endif

/** @name Vital signs (partition 2, SCADA: 0x20000 | term code) */
/** @{ */
#define MW_MDC_ECG_HEART_RATE         147842u /**< heart rate from the ECG, "/min" */
#define MW_MDC_PULS_OXIM_PULS_RATE    149530u /**< pulse rate from oximetry, "/min" */
#define MW_MDC_PULS_RATE_NON_INV      149546u /**< non-invasive pulse rate, "/min" */
#define MW_MDC_PRESS_BLD_NONINV_SYS   150021u /**< NIBP systolic, "mm[Hg]" */
#define MW_MDC_PRESS_BLD_NONINV_DIA   150022u /**< NIBP diastolic, "mm[Hg]" */
#define MW_MDC_PRESS_BLD_NONINV_MEAN  150023u /**< NIBP mean, "mm[Hg]" */
#define MW_MDC_PRESS_BLD_ART_ABP_SYS  150033u /**< arterial (ABP) systolic, "mm[Hg]" */
#define MW_MDC_PRESS_BLD_ART_ABP_DIA  150034u /**< arterial (ABP) diastolic, "mm[Hg]" */
#define MW_MDC_PRESS_BLD_ART_ABP_MEAN 150035u /**< arterial (ABP) mean, "mm[Hg]" */
#define MW_MDC_TEMP_BODY              150364u /**< body temperature, "Cel" */
#define MW_MDC_PULS_OXIM_SAT_O2       150456u /**< SpO2, "%" */
#define MW_MDC_RESP_RATE              151562u /**< respiration rate, "/min" */
/** @} */

/** @name Ventilation (partition 2) */
/** @{ */
#define MW_MDC_VENT_RESP_RATE         151586u /**< ventilator respiration rate, "/min" */
#define MW_MDC_AWAY_CO2_ET            151708u /**< end-tidal CO2, "mm[Hg]" */
#define MW_MDC_VOL_AWAY_TIDAL         151868u /**< tidal volume, "mL" */
#define MW_MDC_PRESS_AWAY_END_EXP_POS 151976u /**< PEEP, "cm[H2O]"; unconfirmed (docs/terminology.md) */
/** @} */

/** @name Infusion (partition 2) */
/** @{ */
#define MW_MDC_FLOW_FLUID_PUMP 157784u /**< infusion rate, "mL/h" */
/** @} */

/** @name Alarm conditions (partition 3, events: 0x30000 | term code) */
/** @{ */
#define MW_MDC_EVT_ALARM 196616u /**< an alarm condition, no more said */
#define MW_MDC_EVT_HI    196648u /**< value above the high limit */
#define MW_MDC_EVT_LO    196670u /**< value below the low limit */
/** @} */

/** How an entry's number was checked (docs/terminology.md gives the sources). */
typedef enum mw_term_status {
    /** Two independent published sources agree on the number (HL7 or IHE example messages,
     *  FHIR implementation guides, the term code within its partition). */
    MW_TERM_CONFIRMED = 1,
    /** One published source gives the number; none contradicts it. */
    MW_TERM_SINGLE_SOURCE = 2,
    /** Published sources disagree: the outputs still carry the code the device sent, but the
     *  reference id shown for it may be wrong. */
    MW_TERM_UNCONFIRMED = 3,
} mw_term_status;

/** One MDC term. Strings are static; @c loinc and @c loinc_method may be NULL. */
typedef struct mw_term {
    uint32_t mdc_code;         /**< partition << 16 | term code */
    const char *ref_id;        /**< the reference id, e.g. "MDC_PULS_OXIM_SAT_O2" */
    const char *ucum;          /**< the UCUM unit the term is normally reported in ("" none) */
    const char *loinc;         /**< the LOINC code a FHIR vital-signs profile asks for */
    const char *loinc_display; /**< its display */
    const char *loinc_method;  /**< a more specific LOINC code (by method), or NULL */
    const char *loinc_method_display;
    int vital_sign; /**< 1: an Observation of category vital-signs in FHIR */
    mw_term_status status;
} mw_term_t;

/** The term of @p mdc_code, or NULL when medwire does not know it (the outputs then carry the
 *  code alone). In medwire-gateway. */
MW_API const mw_term_t *mw_term_find(uint32_t mdc_code);

/** The @p i th entry of the table (0-based, in code order), or NULL past its end: for tools that
 *  list the terms. In medwire-gateway. */
MW_API const mw_term_t *mw_term_at(size_t i);

#ifdef __cplusplus
}
#endif

#endif
