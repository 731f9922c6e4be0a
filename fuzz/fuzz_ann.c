/* libFuzzer target for the ANN sections: open arbitrary bytes as an index,
 * open its ANN structure without the checksum of the large section (HNSW
 * node records, IVF-PQ codes), so damaged links, counts and codes reach the
 * search, which must bound them, then search (IVF-PQ with a rerank).
 * Checksums are recomputed as in fuzz_index.c (same convention: header byte
 * 24 even = fix them up) so mutations get past the CRCs.
 *
 * Seed corpus: doppel index --vectors x.fvecs -o seed.dpl --ann hnsw, the
 * same after doppel ann build --storage int8 (quantised walk records, the
 * hnsw.sq ranges, the exact rerank) and --storage f16, an index of 5000
 * rows after doppel ann build --kind ivfpq --nlist 8 --m 2, and one after
 * doppel ann build --kind rpforest --trees 3 --leaf 8 (damaged nodes,
 * normals and refs: the rpforest walk must stay bounded). */
#include "doppel/ann.h"
#include "doppel/index.h"
#include "index/index_internal.h"

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
    dp_ann *a = NULL;
    uint8_t *copy = NULL;
    if (size > 24 && !(data[24] & 1) && (copy = malloc(size))) {
        memcpy(copy, data, size);
        fix_checksums(copy, size);
        data = copy;
    }
    int orc = dp_index_open_memory(data, size, "fuzz.dpl", NULL, &ix);
    free(copy);
    if (orc) return 0;
    if (dp_ann_open(ix, NULL, &a) == 0) {
        uint32_t d = dp_index_dim(ix);
        float *q = calloc(2 * (size_t)d, sizeof *q);
        int64_t ids[10];
        float dist[10];
        if (q) {
            for (uint32_t j = 0; j < d; j++)
                q[d + j] = (float)(j % 3) - 1.0f;
            dp_ann_search_params sp = dp_ann_default_search_params();
            sp.k = 5;
            sp.ef = 32;
            sp.nprobe = 4;
            sp.rerank = 8;
            sp.search_k = 64; /* rpforest: a few leaves, then k live ones */
            sp.threads = 1;
            dp_ann_search(a, q, 2, &sp, ids, dist);
        }
        free(q);
        dp_ann_info in;
        dp_ann_describe(a, &in);
        dp_ann_free(a);
    }
    dp_index_free(ix);
    return 0;
}
