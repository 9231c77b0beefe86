/* SPDX-License-Identifier: Apache-2.0 */
/* validator.h -- runs tests/fhir/validate.js (two FHIR R4 validators from npm) on a file. */
#ifndef MWT_FHIR_VALIDATOR_H
#define MWT_FHIR_VALIDATOR_H

/** Runs `node validate.js PATH` from the installed validator (MW_FHIR_VALIDATOR, set by
 *  CMake; the ctest fixture fhir_validator_install installs it). Fails the test with a clear
 *  message when the validator is not installed. Returns validate.js's exit code (0: every
 *  line valid) and, if @p out_text is not NULL, what it printed (heap; free it). */
int mwt_fhir_validate(const char *path, char **out_text);

#endif
