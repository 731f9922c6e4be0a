/* The HNSW walk (hnsw_walk.h) compiled for AVX2 + FMA + F16C. */
#define WALK_ISA 1
#include "hnsw_walk.h"

#include "util/util.h"

const hnsw_kern *hnsw_kern_avx2(void)
{
    static const hnsw_kern k = {"avx2", w_any_dist, w_any_greedy, w_any_layer};
    const dp_cpu *c = dp_cpu_features();
    return c->avx2 && c->fma ? &k : NULL;
}
