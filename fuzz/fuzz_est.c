/* SPDX-License-Identifier: Apache-2.0 */
/* fuzz_est.c -- what the gateway reads for EST over CoAP (src/dtls/est.c): any bytes as a
 * device's PKCS#10 request, and as CA certificates (PEM or DER) wrapped into PKCS#7 certs-only.
 * A request that passes names a valid identity; a PKCS#7 written is one DER value of exactly
 * the length said, holding every certificate. */
#include <stdlib.h>
#include <string.h>

#include "dtls/est.h"
#include "session/codec.h"

#include "fuzz_support.h"

#define STORE_MAX 8192

/* The length of the DER value at @p p (@p n bytes), header included; 0 if it does not parse. */
static size_t der_size(const uint8_t *p, size_t n)
{
    if (n < 2)
        return 0;
    if (p[1] < 0x80)
        return 2u + p[1];
    size_t k = p[1] & 0x7f, len = 0;
    if (k == 0 || k > 3 || n < 2 + k)
        return 0;
    for (size_t i = 0; i < k; i++)
        len = len << 8 | p[2 + i];
    return 2 + k + len;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char cn[MW_ID_MAX + 1];
    mw_error_detail_t d;
    mw_err e = mwi_est_check_csr(data, size, cn, &d);
    if (e == MW_OK)
        MWF_CHECK(mwi_device_id_valid(cn), "a request passed with the name '%s'", cn);
    else
        MWF_CHECK(d.err == e && memchr(d.reason, '\0', sizeof d.reason) != NULL &&
                      d.reason[0] != '\0',
                  "a refused request must say why");

    uint8_t *store = malloc(STORE_MAX), *out = malloc(STORE_MAX + 64);
    MWF_CHECK(store != NULL && out != NULL, "out of memory");
    mwi_est_certs certs;
    if (mwi_est_read_certs(data, size, store, STORE_MAX, &certs) == MW_OK) {
        size_t all = 0;
        for (size_t i = 0; i < certs.n; i++)
            all += certs.len[i];
        MWF_CHECK(certs.n >= 1 && certs.n <= MWI_EST_CERTS_MAX && all <= STORE_MAX,
                  "%zu certificates, %zu bytes", certs.n, all);
        size_t n = 0;
        if (mwi_est_certs_only(&certs, out, STORE_MAX + 64, &n) == MW_OK) {
            MWF_CHECK(n > all && der_size(out, n) == n, "PKCS#7 of %zu bytes says %zu", n,
                      der_size(out, n));
            /* The certificates are its last bytes but the empty signerInfos, in order. */
            MWF_CHECK(memcmp(out + n - 2 - all, certs.der[0], certs.len[0]) == 0,
                      "the first certificate is not where it belongs");
        }
    }
    free(store);
    free(out);
    return 0;
}
