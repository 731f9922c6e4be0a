/* Shared setup of the index fuzz targets (fuzz_index.c, fuzz_ann.c).
 *
 * Checksums would stop nearly every mutation at the first CRC, so when the
 * (unused, zero) header byte 24 of an input is even, fuzz_open_index first
 * recomputes the header, slot, directory and section checksums of a copy:
 * the parser behind them gets fuzzed too. Odd inputs are opened as they are.
 * Header-only (static inline) so each target stays one translation unit. */
#ifndef DP_FUZZ_UTIL_H
#define DP_FUZZ_UTIL_H

#include "doppel/index.h"
#include "index/index_internal.h"

#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static inline void fuzz_fix_checksums(uint8_t *b, size_t n)
{
    if (n < DPX_HEADER_BYTES) return;
    dpx_header h;
    memcpy(&h, b, sizeof h);
    h.crc = dpx_crc32c(0, &h, offsetof(dpx_header, crc));
    memcpy(b, &h, sizeof h);
    for (int i = 0; i < 2; i++) {
        uint8_t *sp = b + DPX_SLOT0 + (size_t)i * DPX_SLOT_BYTES;
        dpx_slot sl;
        memcpy(&sl, sp, sizeof sl);
        if (sl.dir_offset < n && sl.dir_bytes <= n - sl.dir_offset &&
            sl.dir_bytes >= sizeof(dpx_dir)) {
            uint8_t *d = b + sl.dir_offset;
            dpx_dir dir;
            memcpy(&dir, d, sizeof dir);
            size_t off = sizeof dir;
            for (uint32_t k = 0; k < dir.n_kv && off + sizeof(dpx_kv) <= sl.dir_bytes; k++) {
                dpx_kv kv;
                memcpy(&kv, d + off, sizeof kv);
                off += (sizeof kv + kv.key_len + (size_t)kv.value_len + 7) & ~(size_t)7;
            }
            for (uint32_t k = 0; k < dir.n_sections && off + sizeof(dpx_sec) <= sl.dir_bytes;
                 k++, off += sizeof(dpx_sec)) {
                dpx_sec s;
                memcpy(&s, d + off, sizeof s);
                if (s.offset < n && s.bytes <= n - s.offset &&
                    (s.offset >= sl.dir_offset + sl.dir_bytes ||
                     s.offset + s.bytes <= sl.dir_offset)) {
                    s.crc = dpx_crc32c(0, b + s.offset, (size_t)s.bytes);
                    memcpy(d + off, &s, sizeof s);
                }
            }
            sl.dir_crc = dpx_crc32c(0, d, (size_t)sl.dir_bytes);
        }
        sl.crc = dpx_crc32c(0, &sl, offsetof(dpx_slot, crc));
        memcpy(sp, &sl, sizeof sl);
    }
}

/* dp_index_open_memory on the input, its checksums fixed first when byte 24
 * is even; returns its status. The copy is freed before returning, so the
 * index must not keep pointers into it: open_memory copies (the targets
 * rely on that already). */
static inline int fuzz_open_index(const uint8_t *data, size_t size, dp_index **ix)
{
    uint8_t *copy = NULL;
    if (size > 24 && !(data[24] & 1) && (copy = malloc(size))) {
        memcpy(copy, data, size);
        fuzz_fix_checksums(copy, size);
        data = copy;
    }
    int rc = dp_index_open_memory(data, size, "fuzz.dpl", NULL, ix);
    free(copy);
    return rc;
}

#endif
