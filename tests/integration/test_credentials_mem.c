/* SPDX-License-Identifier: Apache-2.0 */
/* test_credentials_mem.c -- a device given its CA, certificate and key in memory (PEM and DER)
 * instead of files: it connects and delivers; a bad buffer, or a buffer and a file for the same
 * credential, is refused with the fields named. */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#include <wolfssl/options.h>
#include <wolfssl/wolfcrypt/asn_public.h>

#include "harness.h"
#include "support/proc.h"

/* A file of the test PKI in memory, as read (PEM), or converted to DER. */
typedef struct blob {
    uint8_t *data;
    size_t len;
} blob;

static blob pem_of(const char *path)
{
    char *text = mwt_read_file(path);
    cr_assert_not_null(text, "cannot read %s", path);
    return (blob){(uint8_t *)text, strlen(text)};
}

static blob der_of(const char *path, bool key)
{
    blob pem = pem_of(path);
    uint8_t *der = malloc(pem.len);
    cr_assert_not_null(der);
    int n = key ? wc_KeyPemToDer(pem.data, (int)pem.len, der, (int)pem.len, NULL)
                : wc_CertPemToDer(pem.data, (int)pem.len, der, (int)pem.len, CERT_TYPE);
    cr_assert_gt(n, 0, "%s: no DER (%d)", path, n);
    free(pem.data);
    return (blob){der, (size_t)n};
}

static mw_blob_t as_mw(blob b)
{
    return (mw_blob_t){b.data, b.len};
}

static void delivers_with(bool der)
{
    mwt_h h;
    mwt_h_init(&h, 7);
    blob ca = der ? der_of(mwt_pki_ca(&h.pki), false) : pem_of(mwt_pki_ca(&h.pki));
    blob crt =
        der ? der_of(mwt_pki_crt(&h.pki, "dev-1"), false) : pem_of(mwt_pki_crt(&h.pki, "dev-1"));
    blob key =
        der ? der_of(mwt_pki_key(&h.pki, "dev-1"), true) : pem_of(mwt_pki_key(&h.pki, "dev-1"));
    mw_client_config_t cfg;
    mw_client_config_init(&cfg);
    cfg.ca_buf = as_mw(ca);
    cfg.cert_buf = as_mw(crt);
    cfg.key_buf = as_mw(key);
    mw_err e;
    mw_client_t *c = mwt_h_client_cfg(&h, &cfg, &e);
    cr_assert_not_null(c, "client: %s: %s", mw_strerror(e), h.last_open_error);
    /* Read during open only: the buffers may go at once (ASan sees any later read). */
    memset(key.data, 0, key.len);
    free(ca.data);
    free(crt.data);
    free(key.data);
    cr_assert_str_eq(mw_client_device_id(c), "dev-1");
    mwt_send_obs(c, 5, 100);
    cr_assert(mwt_h_drain(&h, 60000), "not delivered");
    cr_assert_eq(mwt_h_count(&h, "dev-1"), 5);
    mw_client_stats_t st;
    mw_client_stats(c, &st);
    cr_assert_eq(st.handshakes, 1);
    cr_assert_eq(st.messages_acked, 5);
    mwt_h_fini(&h);
}

/* @req IEC62443-CR1.2 */
Test(credentials_mem, pem_buffers_handshake_and_deliver)
{
    delivers_with(false);
}

Test(credentials_mem, der_buffers_handshake_and_deliver)
{
    delivers_with(true);
}

/* Opens a client for dev-1 with @p tweak applied to a configuration of files, expects @p want
 * and every needle in the reason. */
static void refused(void (*tweak)(mwt_h *h, mw_client_config_t *cfg), mw_err want,
                    const char *const needles[])
{
    mwt_h h;
    mwt_h_init(&h, 8);
    mw_client_config_t cfg;
    mw_client_config_init(&cfg);
    cfg.ca_file = mwt_pki_ca(&h.pki);
    cfg.cert_file = mwt_pki_crt(&h.pki, "dev-1");
    cfg.key_file = mwt_pki_key(&h.pki, "dev-1");
    tweak(&h, &cfg);
    mw_err e = MW_OK;
    mw_client_t *c = mwt_h_client_cfg(&h, &cfg, &e);
    cr_assert_null(c);
    cr_assert_eq(e, want, "%s, want %s: %s", mw_strerror(e), mw_strerror(want), h.last_open_error);
    for (size_t i = 0; needles[i] != NULL; i++)
        cr_assert_not_null(strstr(h.last_open_error, needles[i]), "'%s' lacks '%s'",
                           h.last_open_error, needles[i]);
    mwt_h_fini(&h);
}

static const uint8_t garbage[] = "this is not a certificate, neither PEM nor DER";
static const uint8_t bad_pem[] = "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n";

static void ca_both(mwt_h *h, mw_client_config_t *cfg)
{
    (void)h;
    cfg->ca_buf = (mw_blob_t){garbage, sizeof garbage};
}

static void key_both(mwt_h *h, mw_client_config_t *cfg)
{
    (void)h;
    cfg->key_buf = (mw_blob_t){garbage, sizeof garbage};
}

static void ca_garbage(mwt_h *h, mw_client_config_t *cfg)
{
    (void)h;
    cfg->ca_file = NULL;
    cfg->ca_buf = (mw_blob_t){garbage, sizeof garbage};
}

static void cert_bad_pem(mwt_h *h, mw_client_config_t *cfg)
{
    (void)h;
    cfg->cert_file = NULL;
    cfg->cert_buf = (mw_blob_t){bad_pem, sizeof bad_pem - 1};
}

static void key_garbage(mwt_h *h, mw_client_config_t *cfg)
{
    (void)h;
    cfg->key_file = NULL;
    cfg->key_buf = (mw_blob_t){garbage, sizeof garbage};
}

/* dev-2's key, a valid P-256 key, with dev-1's certificate. */
static blob other_key;
static void key_of_another(mwt_h *h, mw_client_config_t *cfg)
{
    other_key = pem_of(mwt_pki_key(&h->pki, "dev-2"));
    cfg->key_file = NULL;
    cfg->key_buf = as_mw(other_key);
}

static void ca_empty(mwt_h *h, mw_client_config_t *cfg)
{
    (void)h;
    cfg->ca_file = NULL;
    cfg->ca_buf = (mw_blob_t){NULL, 3}; /* a length without data */
}

Test(credentials_mem, file_and_buffer_for_the_ca_is_refused_naming_both)
{
    refused(ca_both, MW_ECONFIG, (const char *const[]){"ca_file", "ca_buf", "both", NULL});
}

Test(credentials_mem, file_and_buffer_for_the_key_is_refused_naming_both)
{
    refused(key_both, MW_ECONFIG, (const char *const[]){"key_file", "key_buf", "both", NULL});
}

Test(credentials_mem, garbage_ca_buffer_is_refused_naming_the_field)
{
    refused(ca_garbage, MW_ECERT_LOAD,
            (const char *const[]){"CA certificate", "from ca_buf", "DER", NULL});
}

Test(credentials_mem, damaged_pem_certificate_buffer_is_refused_naming_the_field)
{
    refused(cert_bad_pem, MW_ECERT_LOAD,
            (const char *const[]){"certificate", "from cert_buf", "PEM", NULL});
}

Test(credentials_mem, garbage_key_buffer_is_refused_naming_the_field)
{
    refused(key_garbage, MW_ECERT_LOAD, (const char *const[]){"private key", "from key_buf", NULL});
}

Test(credentials_mem, key_buffer_of_another_certificate_is_refused)
{
    refused(key_of_another, MW_ECERT_LOAD,
            (const char *const[]){"from key_buf", "does not match", "dev-1.crt", NULL});
    free(other_key.data);
}

Test(credentials_mem, length_without_data_is_refused_naming_the_field)
{
    refused(ca_empty, MW_ECONFIG, (const char *const[]){"ca_buf", "NULL", NULL});
}
