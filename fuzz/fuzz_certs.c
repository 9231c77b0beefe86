/* SPDX-License-Identifier: Apache-2.0 */
/* fuzz_certs.c -- loading credentials and addresses: any file as CA, certificate or key, any text as an address; a context that loads has a valid identity. */
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "medwire/io.h"

#include "dtls/dtls.h"
#include "port/posix/read_file.h"
#include "session/codec.h"

#include "fuzz_support.h"

/* Longer than any certificate or key medwire-pki makes, with room for a chain. */
#define MAX_FILE 16384

static const mwt_pki *pki;
static char input_path[256];
/* Holds wolfSSL initialised for the whole run, so that each input does not pay for (and
 * leak-check) wolfSSL's global set-up and tear-down. */
static mwi_dtls_ctx *keepalive;

/*
 * mw_addr_parse resolves host names with getaddrinfo: a fuzzer must not send DNS queries (slow,
 * and not reproducible). The link wraps getaddrinfo (-Wl,--wrap=getaddrinfo, fuzz/CMakeLists.txt)
 * so that only numeric hosts are looked up; a name fails as an unknown host would.
 */
int __real_getaddrinfo(const char *node, const char *service, const struct addrinfo *hints,
                       struct addrinfo **res);
int __wrap_getaddrinfo(const char *node, const char *service, const struct addrinfo *hints,
                       struct addrinfo **res);
int __wrap_getaddrinfo(const char *node, const char *service, const struct addrinfo *hints,
                       struct addrinfo **res)
{
    struct addrinfo h;
    memset(&h, 0, sizeof h);
    if (hints != NULL)
        h = *hints;
    h.ai_flags |= AI_NUMERICHOST;
    return __real_getaddrinfo(node, service, &h, res);
}

static void remove_input(void)
{
    (void)remove(input_path);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    pki = mwf_pki();
    mwi_dtls_config dc = {
        .read_file = mwi_file_read,
        .role = MWI_DTLS_SERVER,
        .ca_file = mwt_pki_ca(pki),
        .cert_file = mwt_pki_crt(pki, "gateway"),
        .key_file = mwt_pki_key(pki, "gateway"),
    };
    mw_error_detail_t d;
    MWF_CHECK(mwi_dtls_server_ctx_create(&dc, &keepalive, &d) == MW_OK, "server context: %s",
              d.reason);
    /* The PKI stays (each input is loaded beside real files); the input file lives in it. */
    snprintf(input_path, sizeof input_path, "%s/fuzz-input.pem", pki->dir);
    atexit(mwf_pki_discard);
    atexit(remove_input);
    return 0;
}

static const char B64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/* Writes DER as PEM with @p label, so that the fuzzer mutates the ASN.1 itself rather than its
 * base64 text (most of which would no longer decode). */
static void write_pem(FILE *f, const char *label, const uint8_t *der, size_t len)
{
    fprintf(f, "-----BEGIN %s-----\n", label);
    for (size_t i = 0, col = 0; i < len; i += 3) {
        uint32_t v = (uint32_t)der[i] << 16;
        if (i + 1 < len)
            v |= (uint32_t)der[i + 1] << 8;
        if (i + 2 < len)
            v |= der[i + 2];
        fputc(B64[(v >> 18) & 63], f);
        fputc(B64[(v >> 12) & 63], f);
        fputc(i + 1 < len ? B64[(v >> 6) & 63] : '=', f);
        fputc(i + 2 < len ? B64[v & 63] : '=', f);
        col += 4;
        if (col == 64) {
            fputc('\n', f);
            col = 0;
        }
    }
    fprintf(f, "\n-----END %s-----\n", label);
}

/* Tries the input file in one position, the other two being the real gateway or device
 * credentials. */
static void try_ctx(mwi_dtls_role role, int slot)
{
    const char *name = role == MWI_DTLS_SERVER ? "gateway" : "dev-1";
    mwi_dtls_config dc = {
        .read_file = mwi_file_read,
        .role = role,
        .ca_file = slot == 0 ? input_path : mwt_pki_ca(pki),
        .cert_file = slot == 1 ? input_path : mwt_pki_crt(pki, name),
        .key_file = slot == 2 ? input_path : mwt_pki_key(pki, name),
        .peer_name = role == MWI_DTLS_CLIENT ? "gateway" : NULL,
    };
    mwi_dtls_ctx *ctx = NULL;
    mw_error_detail_t d;
    mw_err e = role == MWI_DTLS_SERVER ? mwi_dtls_server_ctx_create(&dc, &ctx, &d)
                                       : mwi_dtls_ctx_create(&dc, &ctx, &d);
    if (e != MW_OK) {
        MWF_CHECK(ctx == NULL && d.err == e && memchr(d.reason, '\0', sizeof d.reason) != NULL,
                  "a failed load must leave no context and say why");
        return;
    }
    /* Whatever loaded, the identity it carries is one the protocol can use (codec.h). */
    const char *id = mwi_dtls_ctx_own_id(ctx);
    MWF_CHECK(mwi_device_id_valid(id), "context loaded with identity '%s'", id);
    mwi_dtls_ctx_destroy(&ctx);
}

/* mw_addr_parse on any text: what parses formats back to text that parses to the same address. */
static void try_addr(const uint8_t *data, size_t size)
{
    char text[512], back[128];
    mw_addr_t a, b;
    size_t n = size < sizeof text - 1 ? size : sizeof text - 1;
    memcpy(text, data, n);
    text[n] = '\0';
    if (mw_addr_parse(text, &a) != MW_OK)
        return;
    MWF_CHECK(a.len > 0 && a.len <= sizeof a.data, "parsed address of length %u", a.len);
    mw_err e = mw_addr_format(&a, back, sizeof back);
    MWF_CHECK(e == MW_OK, "formatting a parsed address: %s", mw_strerror(e));
    e = mw_addr_parse(back, &b);
    MWF_CHECK(e == MW_OK && a.len == b.len && memcmp(a.data, b.data, a.len) == 0,
              "'%s' formats as '%s', which parses to another address", text, back);
    MWF_CHECK(mw_addr_port(&a) == mw_addr_port(&b), "port changed");
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const char *const labels[] = {"CERTIFICATE", "EC PRIVATE KEY", "PRIVATE KEY"};
    if (size == 0 || size > MAX_FILE)
        return 0;
    /* First byte: bits 0-1 say how the rest becomes a file (0 as it is, 1-3 DER wrapped as PEM
     * with one of the labels), bit 2 the role, bits 3-4 the position (CA, certificate, key; 3
     * tries all three). */
    uint8_t how = data[0];
    const uint8_t *body = data + 1;
    size_t len = size - 1;
    FILE *f = fopen(input_path, "wb");
    MWF_CHECK(f != NULL, "cannot write %s", input_path);
    if ((how & 3u) == 0) {
        if (len > 0)
            MWF_CHECK(fwrite(body, 1, len, f) == len, "write");
    } else {
        write_pem(f, labels[(how & 3u) - 1], body, len);
    }
    MWF_CHECK(fclose(f) == 0, "close");

    mwi_dtls_role role = (how & 4u) ? MWI_DTLS_CLIENT : MWI_DTLS_SERVER;
    int slot = (how >> 3) & 3;
    if (slot == 3) {
        for (int s = 0; s < 3; s++)
            try_ctx(role, s);
    } else {
        try_ctx(role, slot);
    }
    try_addr(body, len);
    return 0;
}
