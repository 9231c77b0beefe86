/* SPDX-License-Identifier: Apache-2.0 */
/* vendor.h -- what the board's vendor code supplies to the bare-metal port: a UART, a millisecond
 * tick, a true random number generator. Declared here, defined by the firmware (not in this
 * example: nothing here is linked). */
#ifndef MW_BM_VENDOR_H
#define MW_BM_VENDOR_H

#include <stddef.h>
#include <stdint.h>

/** Copies up to @p cap bytes the UART has received (from its interrupt's ring buffer) into
 *  @p buf without waiting; returns how many (0: none waiting). */
extern size_t vendor_uart_read(uint8_t *buf, size_t cap);
/** Queues @p len bytes for the UART to send; returns how many it took (less: its buffer is
 *  full, try again later). */
extern size_t vendor_uart_write(const uint8_t *buf, size_t len);
/** Milliseconds since reset, from SysTick; wraps after 49.7 days. */
extern uint32_t vendor_tick_ms(void);
/** Fills @p out with @p len bytes from the hardware TRNG; 0 on success. */
extern int vendor_trng(uint8_t *out, size_t len);

#endif
