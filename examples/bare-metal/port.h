/* SPDX-License-Identifier: Apache-2.0 */
/* port.h -- a medwire port for a microcontroller without an OS: datagrams in SLIP frames (RFC
 * 1055) over a UART to a gateway-side bridge, a clock from the tick counter, the offline queue on
 * a flash region, randomness from the TRNG. Each fills one of medwire's tables (io.h,
 * storage.h); docs/porting.md walks through them. */
#ifndef MW_BM_PORT_H
#define MW_BM_PORT_H

#include "medwire/io.h"
#include "medwire/storage.h"

/** Largest datagram carried (medwire's records are at most 1500 bytes). */
#define MW_BM_MTU 1500

/** The SLIP link's state: one frame being received. */
typedef struct mw_bm_slip {
    uint8_t rx[MW_BM_MTU];
    size_t rx_len;
    int rx_escaped;  /* the previous byte was ESC */
    int rx_overflow; /* the frame outgrew rx: dropped at its END */
} mw_bm_slip;

/** A transport over the UART: one datagram per SLIP frame. The link is point to point, so the
 *  addresses are ignored. fd is -1: the application polls (docs/porting.md). */
mw_transport_t mw_bm_slip_transport(mw_bm_slip *link);

/** A clock on vendor_tick_ms, widened to 64 bits (call it at least every 49 days). No wall time:
 *  messages then carry 0 and the gateway stamps them. */
mw_clock_t mw_bm_tick_clock(void);

/** The TRNG as medwire's random source. */
mw_random_t mw_bm_trng(void);

/** A flash region: @p bytes of @p sectors * @p sector_size, erased in sectors and programmed in
 *  @p write_unit pieces. Here the "flash" is RAM standing in for it; a real driver replaces the
 *  three functions in flash_storage.c. */
typedef struct mw_bm_flash {
    uint8_t *mem;
    uint32_t size;
    uint32_t sector_size;
    uint32_t write_unit;
} mw_bm_flash;

/** The region as medwire's storage table (the queue and the sequence store live in it). */
mw_storage_t mw_bm_flash_storage(mw_bm_flash *flash);

/** wolfCrypt's seed source (CUSTOM_RAND_GENERATE_SEED in src/port/none/user_settings.h): the
 *  TRNG. 0 on success. */
int mw_vendor_seed(unsigned char *out, unsigned int len);

/* device.c: the example application. */
struct mw_client;
struct mw_client *device_open(mw_error_detail_t *why);
int device_turn(struct mw_client *c, int spo2);

#endif
