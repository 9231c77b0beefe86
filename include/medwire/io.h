/* SPDX-License-Identifier: Apache-2.0 */
/**
 * @file io.h
 * @brief The seams below medwire: datagram transport, clock and random source.
 *
 * Nothing above these interfaces touches a socket or reads the time, so a test
 * can replace them (an in-memory pair with fault injection, a fake clock) and
 * a port to another OS or an RTOS only supplies these three tables.
 *
 * All functions are non-blocking. A transport returns ::MW_EAGAIN when a send
 * would block or when no datagram is waiting.
 *
 * @code
 * mw_transport_t udp;
 * mw_addr_t gw;
 * if (mw_udp_open("0.0.0.0:0", &udp) == MW_OK && mw_addr_parse("127.0.0.1:5684", &gw) == MW_OK)
 *     (void)udp.send(udp.ctx, &gw, bytes, len);
 * @endcode
 */
#ifndef MEDWIRE_IO_H
#define MEDWIRE_IO_H

#include <stddef.h>
#include <stdint.h>

#include "medwire/err.h"

#ifdef __cplusplus
extern "C" {
#endif

/** Bytes the caller holds in memory: a credential given as a buffer instead of a file (a device
 *  without a filesystem, a key read from a secure store). @c data NULL (or @c len 0) means not
 *  set. The library reads it during the call it is given to and keeps no pointer to it. */
typedef struct mw_blob {
    const uint8_t *data;
    size_t len;
} mw_blob_t;

/** A peer address: a socket address (IPv4 or IPv6) held by value, compared bytewise. */
typedef struct mw_addr {
    uint32_t len;     /**< bytes used in @c data; 0 means no address */
    uint8_t data[28]; /**< a struct sockaddr_in or sockaddr_in6 */
} mw_addr_t;

/** Sends one datagram to @p to. ::MW_EAGAIN if it would block. */
typedef mw_err mw_transport_send_fn(void *ctx, const mw_addr_t *to, const uint8_t *buf, size_t len);
/** Receives one datagram into @p out_buf; ::MW_EAGAIN when none is waiting.
 *  A datagram longer than @p cap is truncated to @p cap and reported whole in @p out_len. */
typedef mw_err mw_transport_recv_fn(void *ctx, mw_addr_t *out_from, uint8_t *out_buf, size_t cap,
                                    size_t *out_len);
/** Releases the transport's resources. */
typedef void mw_transport_close_fn(void *ctx);

/** One slot of a batched receive (::mw_transport_recv_many_fn). The caller sets @c buf and
 *  @c cap; the transport fills @c from and @c len. */
typedef struct mw_datagram {
    mw_addr_t from; /**< the sender */
    uint8_t *buf;   /**< the caller's buffer for this slot */
    size_t cap;     /**< its size */
    size_t len;     /**< the datagram's real length: more than @c cap means it was truncated */
} mw_datagram_t;

/** Receives up to @p max datagrams in one call, in arrival order, into @p slots[0..*out_n).
 *  ::MW_EAGAIN (with *out_n 0) when none is waiting; a truncated datagram is reported as
 *  recv reports it (at most @c cap bytes written, the whole length in @c len). The gateway
 *  reads fewer than @p max as "nothing more is waiting" and reads again at its next poll (its
 *  descriptor, still readable, ends the wait at once): return as many as are waiting. */
typedef mw_err mw_transport_recv_many_fn(void *ctx, mw_datagram_t *slots, size_t max,
                                         size_t *out_n);

/** A datagram transport: a table of functions and the context they share. */
typedef struct mw_transport {
    void *ctx;
    mw_transport_send_fn *send;
    mw_transport_recv_fn *recv;
    mw_transport_close_fn *close; /**< may be NULL */
    int fd; /**< a descriptor that becomes readable when recv may succeed, or -1 */
    /** Optional (NULL: not supported): several datagrams per call, which saves a system call
     *  per datagram when many devices send at once (the UDP port uses recvmmsg). Set it to
     *  NULL in a table filled field by field. */
    mw_transport_recv_many_fn *recv_many;
} mw_transport_t;

/** Milliseconds on a monotonic clock (any epoch). */
typedef uint64_t mw_clock_now_fn(void *ctx);
/** Milliseconds since the Unix epoch, and whether that time is synchronised. */
typedef uint64_t mw_clock_wall_fn(void *ctx, int *out_synced);

/** A clock: monotonic time for timers, wall time for timestamps. */
typedef struct mw_clock {
    void *ctx;
    mw_clock_now_fn *now_ms;
    mw_clock_wall_fn *wall_ms; /**< may be NULL: timestamps then read 0, unsynchronised */
} mw_clock_t;

/** Fills @p out with @p len unpredictable bytes. */
typedef mw_err mw_random_fn(void *ctx, uint8_t *out, size_t len);

/** A random source (tokens, message ids, jitter). NULL function means the built-in CSPRNG. */
typedef struct mw_random {
    void *ctx;
    mw_random_fn *fill;
} mw_random_t;

/** Parses "HOST:PORT" ("[v6]:PORT" for IPv6); HOST is a numeric address or a name. */
MW_API MW_NODISCARD mw_err mw_addr_parse(const char *text, mw_addr_t *out_addr);
/** Writes "HOST:PORT" ("[v6]:PORT") into @p out (at least 56 bytes are always enough). */
MW_API MW_NODISCARD mw_err mw_addr_format(const mw_addr_t *addr, char *out, size_t out_size);
/** Port of @p addr in host order, or 0. */
MW_API uint16_t mw_addr_port(const mw_addr_t *addr);
/** The host part of @p addr as a key that compares bytewise: the port set to 0, an IPv6
 *  address cut to its /64 prefix (what one site or customer is given), an IPv4-mapped IPv6
 *  address left whole. ::MW_EINVAL for anything that is not IPv4 or IPv6. */
MW_API MW_NODISCARD mw_err mw_addr_host_prefix(const mw_addr_t *addr, mw_addr_t *out_host);

/** Opens a non-blocking UDP socket bound to @p bind_text ("HOST:PORT", port 0 = any). */
MW_API MW_NODISCARD mw_err mw_udp_open(const char *bind_text, mw_transport_t *out_transport);
/** The address the UDP transport is bound to (after port 0, the port the system chose). */
MW_API MW_NODISCARD mw_err mw_udp_local_addr(const mw_transport_t *transport, mw_addr_t *out_addr);

/** The real clock: CLOCK_MONOTONIC for timers; CLOCK_REALTIME for timestamps (reported
 * unsynchronised). */
MW_API mw_clock_t mw_clock_system(void);

/** Microseconds on CLOCK_MONOTONIC (any epoch), for timing short operations; @p ctx unused. */
MW_API uint64_t mw_clock_monotonic_us(void *ctx);

/** Waits up to @p timeout_ms for @p fd to become readable (-1 fd: just sleeps). */
MW_API MW_NODISCARD mw_err mw_wait_readable(int fd, int timeout_ms);

#ifdef __cplusplus
}
#endif
#endif
