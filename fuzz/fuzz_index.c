/* libFuzzer target for the index loader: open arbitrary bytes, then touch
 * everything a reader may touch (entries, metadata, failures, a search, a
 * range search, a full verification). Any crash, leak or UB is a bug; an
 * error return is the expected outcome for most inputs.
 *
 * Checksums would stop nearly every mutation at the first CRC, so when the
 * (unused, zero) header byte 24 is even the target first recomputes the header,
 * slot, directory and section checksums of the input: the parser behind
 * them gets fuzzed too. Odd inputs are opened as they are.
 *
 * Seed corpus: any .dpl file (doppel index --vectors x.npy -o seed.dpl). */
#include "doppel/index.h"
#include "index/index_internal.h"

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static void fix_checksums(uint8_t *b, size_t n)
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

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    dp_index *ix = NULL;
    uint8_t *copy = NULL;
    if (size > 24 && !(data[24] & 1) && (copy = malloc(size))) {
        memcpy(copy, data, size);
        fix_checksums(copy, size);
        data = copy;
    }
    int orc = dp_index_open_memory(data, size, "fuzz.dpl", NULL, &ix);
    free(copy);
    if (orc) return 0;
    size_t cur = 0;
    dp_index_entry e;
    int rc;
    while ((rc = dp_index_next(ix, &cur, &e)) == 1) {
        volatile size_t n = strlen(e.path) + strlen(e.label);
        (void)n;
    }
    for (size_t i = 0; i < dp_index_meta_count(ix); i++) {
        const char *k, *s;
        int t;
        if (dp_index_meta_at(ix, i, &k, &t) == 0 && t == DP_META_STR)
            dp_index_get_meta_str(ix, k, &s);
    }
    for (size_t i = 0; i < dp_index_failure_count(ix); i++) {
        const char *p, *r;
        dp_index_failure_at(ix, i, &p, &r);
    }
    dp_index_find_path(ix, "a.jpg", &e);
    uint32_t dim = dp_index_dim(ix);
    float *q = calloc(dim ? dim : 1, sizeof *q);
    if (q) {
        q[0] = 1.0f;
        int64_t ids[4];
        float d[4];
        dp_search_params sp = dp_search_default_params();
        sp.k = 4;
        sp.threads = 1;
        dp_index_search(ix, q, 1, &sp, ids, d);
        for (int i = 0; i < 4; i++)
            if (ids[i] >= 0) dp_index_get(ix, (uint64_t)ids[i], &e);
        dp_range_result rr;
        if (dp_index_range_search(ix, q, 1, 0.5f, &sp, 1000, &rr) == 0) dp_range_result_free(&rr);
        free(q);
    }
    dp_index_verify(ix);
    dp_index_free(ix);
    return 0;
}
