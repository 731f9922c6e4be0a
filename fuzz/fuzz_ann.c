/* libFuzzer target for the ANN sections: open arbitrary bytes as an index,
 * open its ANN structure without the checksum of the large section (HNSW
 * node records, IVF-PQ codes), so damaged links, counts and codes reach the
 * search, which must bound them, then search (IVF-PQ with a rerank; HNSW
 * from the records in place or, for odd-sized inputs, from a private copy).
 * Checksums are recomputed by fuzz_util.h (header byte 24 even = fix them
 * up) so mutations get past the CRCs.
 *
 * Seed corpus: doppel index --vectors x.fvecs -o seed.dpl --ann hnsw, the
 * same after doppel ann build --storage int8 (quantised walk records, the
 * hnsw.sq ranges, the exact rerank) and --storage f16, an index of 5000
 * rows after doppel ann build --kind ivfpq --nlist 8 --m 2, and one after
 * doppel ann build --kind rpforest --trees 3 --leaf 8 (damaged nodes,
 * normals and refs: the rpforest walk must stay bounded). */
#include "doppel/ann.h"
#include "doppel/index.h"
#include "fuzz_util.h"

#include <stdint.h>
#include <stdlib.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    dp_index *ix = NULL;
    dp_ann *a = NULL;
    if (fuzz_open_index(data, size, &ix)) return 0;
    dp_ann_open_params op = dp_ann_default_open_params();
    op.private_nodes = size & 1; /* half the inputs search a private copy of the records */
    if (dp_ann_open(ix, &op, &a) == 0) {
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
