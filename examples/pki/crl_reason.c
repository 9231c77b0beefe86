/* SPDX-License-Identifier: Apache-2.0 */
/* crl_reason.c -- the CRLReason codes of RFC 5280 5.3.1 under the names index.txt gives them. */

#include "crl_reason.h"

#include <stddef.h>
#include <string.h>

/* CRLReason (RFC 5280 5.3.1) under the names 'openssl ca' writes into index.txt. */
static const struct {
    const char *name;
    int code;
    bool option; /* offered by --reason: the reasons that fit a device or gateway */
} reasons[] = {
    {"unspecified", 0, false},     {"keyCompromise", 1, true},
    {"CACompromise", 2, false},    {"affiliationChanged", 3, true},
    {"superseded", 4, true},       {"cessationOfOperation", 5, true},
    {"certificateHold", 6, false}, {"privilegeWithdrawn", 9, false},
    {"AACompromise", 10, false},
};

int pki_reason_code(const char *name, bool option_only)
{
    for (size_t i = 0; i < sizeof(reasons) / sizeof(reasons[0]); i++) {
        if (strcmp(reasons[i].name, name) == 0 && (reasons[i].option || !option_only))
            return reasons[i].code;
    }
    return -1;
}
