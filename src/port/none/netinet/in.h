/* SPDX-License-Identifier: Apache-2.0 */
/* netinet/in.h -- for a device without an OS (MW_PORT=none): the IPv4 and IPv6 socket addresses
 * libcoap 4.3.1's headers name (coap3/libcoap.h includes this file unless CONTIKI is defined;
 * coap3/coap_address.h declares a union of them and inline helpers that read them). Layouts as
 * on Linux, so that an mw_addr_t (28 bytes) still holds either. Never called by medwire on a
 * device (docs/porting.md). */
#ifndef MW_PORT_NONE_NETINET_IN_H
#define MW_PORT_NONE_NETINET_IN_H

#include <stdint.h>

#include <sys/socket.h>

typedef uint16_t in_port_t;
typedef uint32_t in_addr_t;

struct in_addr {
    in_addr_t s_addr;
};

struct in6_addr {
    union {
        uint8_t s6_addr[16];
        uint32_t s6_addr32[4];
    } s6_un;
};
#define s6_addr s6_un.s6_addr

struct sockaddr_in {
    sa_family_t sin_family;
    in_port_t sin_port;
    struct in_addr sin_addr;
    uint8_t sin_zero[8];
};

struct sockaddr_in6 {
    sa_family_t sin6_family;
    in_port_t sin6_port;
    uint32_t sin6_flowinfo;
    struct in6_addr sin6_addr;
    uint32_t sin6_scope_id;
};

#define INADDR_ANY ((in_addr_t)0x00000000)

/* The unspecified IPv6 address; libcoap's inline coap_address_init() copies it. */
static const struct in6_addr in6addr_any = {{{0}}};

#define IN6_IS_ADDR_V4MAPPED(a)                                                                    \
    ((a)->s6_un.s6_addr32[0] == 0 && (a)->s6_un.s6_addr32[1] == 0 &&                               \
     (a)->s6_un.s6_addr32[2] == 0xffff0000u)

#endif
