/* SPDX-License-Identifier: Apache-2.0 */
/* format.c -- CRC-32C and the erased-bytes test used by every on-storage structure. */
#include "queue/format.h"

/* CRC-32C rather than the zip CRC-32: better error detection at these lengths (Koopman) and
 * the checksum iSCSI, ext4 metadata and many flash file systems use. Nibble table: 64 bytes of
 * constants instead of 1 KiB, fast enough for headers of a few dozen bytes. */
static const uint32_t crc_nibble[16] = {
    0x00000000u, 0x105EC76Fu, 0x20BD8EDEu, 0x30E349B1u, 0x417B1DBCu, 0x5125DAD3u,
    0x61C69362u, 0x7198540Du, 0x82F63B78u, 0x92A8FC17u, 0xA24BB5A6u, 0xB21572C9u,
    0xC38D26C4u, 0xD3D3E1ABu, 0xE330A81Au, 0xF36E6F75u,
};

uint32_t mwi_crc32c(uint32_t crc, const uint8_t *p, size_t len)
{
    crc = ~crc;
    for (size_t i = 0; i < len; i++) {
        crc ^= p[i];
        crc = (crc >> 4) ^ crc_nibble[crc & 0x0Fu];
        crc = (crc >> 4) ^ crc_nibble[crc & 0x0Fu];
    }
    return ~crc;
}

bool mwi_all_erased(const uint8_t *p, size_t len)
{
    for (size_t i = 0; i < len; i++) {
        if (p[i] != MWI_ERASED) {
            return false;
        }
    }
    return true;
}
