/* libFuzzer target for the index loader: open arbitrary bytes, then touch
 * everything a reader may touch (entries, metadata, failures, a search, a
 * range search, a full verification). Any crash, leak or UB is a bug; an
 * error return is the expected outcome for most inputs.
 *
 * Checksums would stop nearly every mutation at the first CRC, so inputs
 * with an even header byte 24 get them recomputed first (fuzz_util.h): the
 * parser behind them gets fuzzed too. Odd inputs are opened as they are.
 *
 * Seed corpus: any .dpl file (doppel index --vectors x.npy -o seed.dpl). */
#include "doppel/index.h"
#include "fuzz_util.h"

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    dp_index *ix = NULL;
    if (fuzz_open_index(data, size, &ix)) return 0;
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
