/* SPDX-License-Identifier: Apache-2.0 */
/* device.c -- a pulse oximeter's main loop on the bare-metal port: credentials compiled in (or
 * read from a secure store), the queue on flash, the link polled from the firmware's own loop.
 * The credentials below are placeholders: a device is provisioned with its own, made by
 * medwire-pki; none is in this repository. */
#include <stddef.h>

#include "medwire/client.h"
#include "port.h"

/* Provisioned at manufacture (medwire-pki issue --role device), DER or PEM. */
extern const uint8_t device_ca[], device_cert[], device_key[];
extern const size_t device_ca_len, device_cert_len, device_key_len;
/* The queue's at-rest key, from the vendor (16 bytes: the device's wolfSSL has AES-128 only). */
extern const uint8_t device_queue_key[16];

#define SECTOR      4096u
#define FLASH_BYTES (32u * SECTOR)
static uint8_t flash_mem[FLASH_BYTES]; /* stands in for a flash partition */

static mw_bm_slip link;
static mw_bm_flash flash = {flash_mem, FLASH_BYTES, SECTOR, 8};
static mw_storage_t storage;

/* Opens the client; NULL (and @p why filled) when it cannot. */
mw_client_t *device_open(mw_error_detail_t *why)
{
    storage = mw_bm_flash_storage(&flash);
    mw_client_config_t cfg;
    mw_client_config_init(&cfg);
    cfg.ca_buf = (mw_blob_t){device_ca, device_ca_len};
    cfg.cert_buf = (mw_blob_t){device_cert, device_cert_len};
    cfg.key_buf = (mw_blob_t){device_key, device_key_len};
    cfg.gateway_name = "gateway";
    cfg.gateway_addr.len = 1; /* the SLIP link's one peer (slip_transport.c) */
    cfg.transport = mw_bm_slip_transport(&link);
    cfg.clock = mw_bm_tick_clock();
    cfg.random = mw_bm_trng();
    cfg.queue_capacity = 32;
    cfg.storage = &storage;
    cfg.queue_key = device_queue_key;
    cfg.queue_key_len = sizeof device_queue_key;
    mw_client_t *c = NULL;
    return mw_client_open(&cfg, &c, why) == MW_OK ? c : NULL;
}

/* One turn of the firmware's main loop: no descriptor to wait on, so the link is polled with a
 * timeout of 0 and the loop sleeps (WFI) until the UART interrupt or the next timer. Returns how
 * long the loop may sleep, in ms (-1: until the UART wakes it; -2: the link failed for good). */
int device_turn(mw_client_t *c, int spo2)
{
    if (spo2 > 0) {
        mw_observation_t o = {.mdc_code = MW_MDC_PULS_OXIM_SAT_O2, .mantissa = spo2, .unit = "%"};
        uint64_t seq;
        if (mw_client_send_observation(c, &o, &seq) != MW_OK)
            return 0; /* queue full of alarms, or storage failed: mw_client_last_error says */
    }
    mw_err e = mw_client_poll(c, 0);
    if (e != MW_OK && e != MW_EAGAIN)
        return -2; /* fatal (an untrusted gateway, ...): the application reports and stops */
    return mw_client_next_timeout_ms(c);
}
