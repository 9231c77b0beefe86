/* SPDX-License-Identifier: Apache-2.0 */
/* slip_transport.c -- medwire's datagrams over a byte stream: SLIP framing (RFC 1055) on a UART.
 * Each datagram is END, its bytes with END and ESC escaped, END; a bridge on the other side
 * (a gateway-side serial-to-UDP relay) does the same. */
#include <string.h>

#include "port.h"
#include "vendor.h"

#define SLIP_END     0xC0u
#define SLIP_ESC     0xDBu
#define SLIP_ESC_END 0xDCu
#define SLIP_ESC_ESC 0xDDu

/* Writes all of @p buf, or reports MW_EAGAIN having written nothing more than the UART took: a
 * frame half sent is ended by the next END, and the peer drops it as damaged (DTLS's checks). */
static mw_err put(const uint8_t *buf, size_t len)
{
    while (len > 0) {
        size_t n = vendor_uart_write(buf, len);
        if (n == 0)
            return MW_EAGAIN;
        buf += n;
        len -= n;
    }
    return MW_OK;
}

static mw_err slip_send(void *ctx, const mw_addr_t *to, const uint8_t *buf, size_t len)
{
    (void)ctx;
    (void)to; /* point to point */
    static const uint8_t end = SLIP_END;
    static const uint8_t esc_end[2] = {SLIP_ESC, SLIP_ESC_END};
    static const uint8_t esc_esc[2] = {SLIP_ESC, SLIP_ESC_ESC};
    if (len > MW_BM_MTU)
        return MW_ETOOBIG;
    mw_err e = put(&end, 1);
    size_t run = 0; /* bytes that need no escape, written in one call */
    for (size_t i = 0; e == MW_OK && i < len; i++) {
        if (buf[i] != SLIP_END && buf[i] != SLIP_ESC) {
            run++;
            continue;
        }
        e = put(buf + i - run, run);
        run = 0;
        if (e == MW_OK)
            e = put(buf[i] == SLIP_END ? esc_end : esc_esc, 2);
    }
    if (e == MW_OK)
        e = put(buf + len - run, run);
    return e == MW_OK ? put(&end, 1) : e;
}

/* Feeds one received byte; true when it completed a frame. */
static int slip_byte(mw_bm_slip *s, uint8_t b)
{
    if (b == SLIP_END) {
        int whole = s->rx_len > 0 && !s->rx_overflow;
        if (!whole)
            s->rx_len = 0;
        s->rx_overflow = 0;
        s->rx_escaped = 0;
        return whole;
    }
    if (b == SLIP_ESC) {
        s->rx_escaped = 1;
        return 0;
    }
    if (s->rx_escaped) {
        b = b == SLIP_ESC_END ? SLIP_END : b == SLIP_ESC_ESC ? SLIP_ESC : b;
        s->rx_escaped = 0;
    }
    if (s->rx_len < sizeof s->rx)
        s->rx[s->rx_len++] = b;
    else
        s->rx_overflow = 1;
    return 0;
}

static mw_err slip_recv(void *ctx, mw_addr_t *from, uint8_t *out, size_t cap, size_t *out_len)
{
    mw_bm_slip *s = ctx;
    uint8_t b;
    while (vendor_uart_read(&b, 1) == 1) {
        if (!slip_byte(s, b))
            continue;
        size_t n = s->rx_len < cap ? s->rx_len : cap;
        memcpy(out, s->rx, n);
        *out_len = s->rx_len; /* the whole length: more than cap means truncated */
        s->rx_len = 0;
        memset(from, 0, sizeof *from);
        from->len = 1; /* the one peer: compared bytewise with the gateway_addr given */
        return MW_OK;
    }
    return MW_EAGAIN;
}

mw_transport_t mw_bm_slip_transport(mw_bm_slip *link)
{
    memset(link, 0, sizeof *link);
    mw_transport_t t = {.ctx = link, .send = slip_send, .recv = slip_recv, .fd = -1};
    return t;
}
