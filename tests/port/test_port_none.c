/* SPDX-License-Identifier: Apache-2.0 */
/* test_port_none.c -- the client built as MW_PORT=none builds it (client.c without
 * MW_PORT_POSIX, linked with no POSIX port at all: a port symbol would not link): every default
 * the port gave is refused by name, with the field that replaces it. */
#include <criterion/criterion.h>
#include <string.h>

#include "medwire/client.h"

static mw_err tp_send(void *ctx, const mw_addr_t *to, const uint8_t *buf, size_t len)
{
    (void)ctx, (void)to, (void)buf, (void)len;
    return MW_OK;
}

static mw_err tp_recv(void *ctx, mw_addr_t *from, uint8_t *buf, size_t cap, size_t *len)
{
    (void)ctx, (void)from, (void)buf, (void)cap, (void)len;
    return MW_EAGAIN;
}

static uint64_t clk(void *ctx)
{
    (void)ctx;
    return 1000;
}

static mw_err rnd(void *ctx, uint8_t *out, size_t len)
{
    (void)ctx;
    memset(out, 0x5A, len);
    return MW_OK;
}

static const uint8_t pem[] = "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n";

/* Everything a port-less device gives; each test takes one thing away. */
static void full(mw_client_config_t *cfg)
{
    mw_client_config_init(cfg);
    cfg->ca_buf = (mw_blob_t){pem, sizeof pem - 1};
    cfg->cert_buf = (mw_blob_t){pem, sizeof pem - 1};
    cfg->key_buf = (mw_blob_t){pem, sizeof pem - 1};
    cfg->gateway_name = "gateway";
    cfg->gateway_addr.len = 4;
    cfg->transport = (mw_transport_t){.send = tp_send, .recv = tp_recv, .fd = -1};
    cfg->clock = (mw_clock_t){.now_ms = clk};
    cfg->random = (mw_random_t){.fill = rnd};
}

static void refused(const mw_client_config_t *cfg, mw_err want, const char *a, const char *b)
{
    mw_client_t *c = NULL;
    mw_error_detail_t d;
    mw_err e = mw_client_open(cfg, &c, &d);
    cr_assert_null(c);
    cr_assert_eq(e, want, "%s: %s", mw_strerror(e), d.reason);
    cr_assert_not_null(strstr(d.reason, a), "'%s' lacks '%s'", d.reason, a);
    cr_assert_not_null(strstr(d.reason, b), "'%s' lacks '%s'", d.reason, b);
}

Test(port_none, no_transport_is_refused_naming_the_field)
{
    mw_client_config_t cfg;
    full(&cfg);
    cfg.transport = (mw_transport_t){.fd = -1};
    refused(&cfg, MW_ECONFIG, "no transport: set cfg.transport", "MW_PORT=none");
}

Test(port_none, no_clock_is_refused_naming_the_field)
{
    mw_client_config_t cfg;
    full(&cfg);
    cfg.clock = (mw_clock_t){0};
    refused(&cfg, MW_ECONFIG, "set cfg.clock", "MW_PORT=none");
}

Test(port_none, no_random_source_is_refused_naming_the_field)
{
    mw_client_config_t cfg;
    full(&cfg);
    cfg.random = (mw_random_t){0};
    refused(&cfg, MW_ECONFIG, "set cfg.random", "MW_PORT=none");
}

Test(port_none, a_host_port_name_is_refused_for_gateway_addr)
{
    mw_client_config_t cfg;
    full(&cfg);
    cfg.gateway = "127.0.0.1:5684";
    refused(&cfg, MW_ECONFIG, "cfg.gateway_addr", "MW_PORT=none");
}

Test(port_none, credential_files_are_refused_for_buffers)
{
    mw_client_config_t cfg;
    full(&cfg);
    cfg.ca_buf = (mw_blob_t){0};
    cfg.ca_file = "ca.crt";
    refused(&cfg, MW_ECONFIG, "ca_file 'ca.crt'", "give the CA certificate in ca_buf");
}

Test(port_none, with_every_seam_given_the_credentials_are_what_is_checked_next)
{
    mw_client_config_t cfg;
    full(&cfg);
    /* Past the port checks: the (damaged) CA buffer is what fails now. */
    refused(&cfg, MW_ECERT_LOAD, "from ca_buf", "PEM");
}
