/* SPDX-License-Identifier: Apache-2.0 */
/* sys/socket.h -- for a device without an OS (MW_PORT=none): the few socket address types that
 * libcoap 4.3.1's headers name (coap3/libcoap.h includes this file unless CONTIKI is defined).
 * medwire uses libcoap as a codec only and never opens a socket: nothing here is called, these
 * types only let the headers compile. Not installed; on the include path of cross builds only
 * (docs/porting.md). */
#ifndef MW_PORT_NONE_SYS_SOCKET_H
#define MW_PORT_NONE_SYS_SOCKET_H

#include <stdint.h>

typedef uint32_t socklen_t;
typedef uint16_t sa_family_t;

#define AF_UNSPEC 0
#define AF_INET   2
#define AF_INET6  10

struct sockaddr {
    sa_family_t sa_family;
    char sa_data[14];
};

#endif
