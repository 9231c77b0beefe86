/* SPDX-License-Identifier: Apache-2.0 */
/* validator.c -- runs tests/fhir/validate.js (two FHIR R4 validators from npm) on a file. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fhir/validator.h"
#include "support/proc.h"

int mwt_fhir_validate(const char *path, char **out_text)
{
    const char *dir = getenv("MW_FHIR_VALIDATOR");
    char script[1024], modules[1024], out_log[1100], err_log[1100];

    cr_assert(dir != NULL && *dir != '\0',
              "MW_FHIR_VALIDATOR is not set: run this test through ctest, whose fixture "
              "fhir_validator_install installs the validator");
    snprintf(script, sizeof script, "%s/validate.js", dir);
    snprintf(modules, sizeof modules, "%s/node_modules/fhir", dir);
    cr_assert(access(script, R_OK) == 0 && access(modules, R_OK) == 0,
              "the FHIR validator is not installed in %s: run ctest -R fhir (the fixture "
              "fhir_validator_install runs tests/fhir/install-validator.sh, which needs node, "
              "npm and the npm registry)",
              dir);
    snprintf(out_log, sizeof out_log, "%s.validate.out", path);
    snprintf(err_log, sizeof err_log, "%s.validate.err", path);
    /* env finds node on PATH: Debian installs it as /usr/bin/node, others elsewhere. */
    const char *argv[] = {"/usr/bin/env", "node", script, path, NULL};
    int rc = mwt_run(argv, out_log, err_log, 120000);
    char *out = mwt_read_file(out_log), *err = mwt_read_file(err_log);
    cr_assert(rc != 127, "node was not found on PATH: %s", err ? err : "");
    cr_assert(rc >= 0, "validate.js did not finish in time");
    size_t n_out = out ? strlen(out) : 0, n_err = err ? strlen(err) : 0;
    char *text = malloc(n_out + n_err + 1);
    cr_assert_not_null(text);
    memcpy(text, out ? out : "", n_out);
    memcpy(text + n_out, err ? err : "", n_err + 1);
    free(out);
    free(err);
    if (out_text != NULL)
        *out_text = text;
    else
        free(text);
    return rc;
}
