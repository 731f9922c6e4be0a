/* CRC-32C (Castagnoli) with the SSE4.2 crc32 instruction, part of the
 * x86-64-v2 baseline the project builds for: about 8 bytes per 3 cycles,
 * fast enough to checksum every section as it is written. */
#include "index_internal.h"

#include <nmmintrin.h>
#include <string.h>

uint32_t dpx_crc32c(uint32_t crc, const void *data, size_t n)
{
    const unsigned char *p = data;
    uint64_t c = ~crc;
    while (n && ((uintptr_t)p & 7)) {
        c = _mm_crc32_u8((uint32_t)c, *p++);
        n--;
    }
    while (n >= 8) {
        uint64_t v;
        memcpy(&v, p, 8);
        c = _mm_crc32_u64(c, v);
        p += 8;
        n -= 8;
    }
    while (n--)
        c = _mm_crc32_u8((uint32_t)c, *p++);
    return ~(uint32_t)c;
}
