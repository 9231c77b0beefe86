/* SPDX-License-Identifier: Apache-2.0 */
/* est_der.c -- est_der.h on wolfSSL's certificate parser. */
#include "est_der.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <wolfssl/options.h>
#include <wolfssl/wolfcrypt/settings.h>
#include <wolfssl/wolfcrypt/asn.h>

bool est_der_read(const uint8_t *der, size_t len, bool request, est_der *out)
{
    memset(out, 0, sizeof *out);
    if (der == NULL || len == 0 || len > 65535)
        return false;
    uint8_t *copy = malloc(len); /* the parser may write into what it reads */
    if (copy == NULL)
        return false;
    memcpy(copy, der, len);
    DecodedCert dc;
    wc_InitDecodedCert(&dc, copy, (word32)len, NULL);
    bool ok = wc_ParseCert(&dc, request ? CERTREQ_TYPE : CERT_TYPE, NO_VERIFY, NULL) == 0 &&
              dc.publicKey != NULL && dc.pubKeySize <= sizeof out->key &&
              (request || (dc.serialSz > 0 && (size_t)dc.serialSz * 2 < sizeof out->serial));
    if (ok) {
        memcpy(out->key, dc.publicKey, dc.pubKeySize);
        out->key_len = dc.pubKeySize;
        if (dc.subjectCN != NULL && dc.subjectCNLen > 0 && dc.subjectCNLen <= MW_ID_MAX) {
            memcpy(out->cn, dc.subjectCN, (size_t)dc.subjectCNLen);
            out->cn[dc.subjectCNLen] = '\0';
        }
        out->client_auth = dc.extExtKeyUsageSet && (dc.extExtKeyUsage & EXTKEYUSE_CLIENT_AUTH);
        out->ca = dc.isCA != 0;
        int i = 0;
        while (!request && i < dc.serialSz - 1 && dc.serial[i] == 0)
            i++;
        for (size_t at = 0; !request && i < dc.serialSz; i++, at += 2)
            snprintf(out->serial + at, 3, "%02X", dc.serial[i]);
    }
    wc_FreeDecodedCert(&dc);
    free(copy);
    return ok;
}
