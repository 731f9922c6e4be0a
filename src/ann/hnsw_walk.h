/* The HNSW graph walk, written once and compiled once per ISA: hnsw.c
 * includes it for the portable baseline, hnsw_avx2.c for AVX2+FMA+F16C.
 * Inside each copy the walk is specialised per (storage, metric) by
 * always-inlined templates, so a distance is a few inlined vector ops in the
 * loop, not a call through a table (measured: the call and the generic
 * kernel's setup were a third of a query at ef 16 on 100k x 100).
 *
 * The includer defines WALK_ISA (0 portable, 1 AVX2) and WALK_KERN (the
 * name of the hnsw_kern getter to define). */
#include "ann_internal.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#if WALK_ISA
#include <immintrin.h>
#endif

enum { W_F32 = DP_ANN_STORAGE_F32, W_F16 = DP_ANN_STORAGE_F16, W_I8 = DP_ANN_STORAGE_INT8 };
enum { W_L2 = 0, W_DOT = 1, W_L1 = 2 }; /* dist_fn.op */

#define W_INLINE static inline __attribute__((always_inline))

/* ---- heaps of (distance, node) ------------------------------------------ */

W_INLINE bool w_lt(cand a, cand b)
{
    return a.d < b.d || (a.d == b.d && a.id < b.id);
}

/* max-heap when max, else min-heap */
W_INLINE void w_push(cand *h, size_t *n, cand c, bool max)
{
    size_t i = (*n)++;
    while (i > 0) {
        size_t p = (i - 1) / 2;
        if (max ? !w_lt(h[p], c) : !w_lt(c, h[p])) break;
        h[i] = h[p];
        i = p;
    }
    h[i] = c;
}

W_INLINE cand w_pop(cand *h, size_t *n, bool max)
{
    cand top = h[0], last = h[--(*n)];
    size_t i = 0, m = *n;
    for (;;) {
        size_t l = 2 * i + 1;
        if (l >= m) break;
        size_t c = l;
        if (l + 1 < m && (max ? w_lt(h[l], h[l + 1]) : w_lt(h[l + 1], h[l]))) c = l + 1;
        if (max ? !w_lt(last, h[c]) : !w_lt(h[c], last)) break;
        h[i] = h[c];
        i = c;
    }
    if (m) h[i] = last;
    return top;
}

/* Replace the max of a full max-heap by c (one sift instead of push + pop). */
W_INLINE void w_replace_top(cand *h, size_t n, cand c)
{
    size_t i = 0;
    for (;;) {
        size_t l = 2 * i + 1;
        if (l >= n) break;
        size_t k = l;
        if (l + 1 < n && w_lt(h[l], h[l + 1])) k = l + 1;
        if (!w_lt(c, h[k])) break;
        h[i] = h[k];
        i = k;
    }
    h[i] = c;
}

/* ---- distances ------------------------------------------------------------ */

#if WALK_ISA

W_INLINE float w_hsum(__m256 v)
{
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

W_INLINE __m256 w_step(int op, __m256 acc, __m256 x, __m256 p)
{
    if (op == W_DOT) return _mm256_fmadd_ps(x, p, acc);
    __m256 d = _mm256_sub_ps(x, p);
    if (op == W_L2) return _mm256_fmadd_ps(d, d, acc);
    return _mm256_add_ps(acc, _mm256_andnot_ps(_mm256_set1_ps(-0.0f), d));
}

/* 8 codes of an int8 record as floats. */
W_INLINE __m256 w_u8(const uint8_t *c)
{
    return _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(_mm_loadl_epi64((const __m128i *)c)));
}

W_INLINE float w_dist(int st, int op, const hnsw *h, const hnsw_q *q, const uint8_t *code)
{
    const size_t dim = h->dim, full = dim & ~(size_t)7, rem = dim & 7;
    const __m256i lane = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    const __m256i m = _mm256_cmpgt_epi32(_mm256_set1_epi32((int)rem), lane);
    const float *p = q->p;
    float r;
    if (st == W_F32) {
        /* One accumulator in the order of dist_avx2.c's single-row path, so
         * the distances are bit-identical to dp_dist_ops() and to the exact
         * search. */
        const float *x = (const float *)code;
        __m256 a = _mm256_setzero_ps();
        for (size_t j = 0; j < full; j += 8)
            a = w_step(op, a, _mm256_loadu_ps(x + j), _mm256_loadu_ps(p + j));
        if (rem)
            a = w_step(op, a, _mm256_maskload_ps(x + full, m), _mm256_maskload_ps(p + full, m));
        r = w_hsum(a);
    } else if (st == W_F16) {
        const uint16_t *x = (const uint16_t *)code;
        __m256 a0 = _mm256_setzero_ps(), a1 = a0;
        size_t j = 0;
        for (; j + 16 <= full; j += 16) {
            a0 = w_step(op, a0, _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(x + j))),
                        _mm256_loadu_ps(p + j));
            a1 = w_step(op, a1, _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(x + j + 8))),
                        _mm256_loadu_ps(p + j + 8));
        }
        if (j < full)
            a0 = w_step(op, a0, _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(x + j))),
                        _mm256_loadu_ps(p + j));
        if (rem) { /* reads into the links: masked to zero */
            __m256 xv = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(x + full)));
            xv = _mm256_and_ps(xv, _mm256_castsi256_ps(m));
            a1 = w_step(op, a1, xv, _mm256_maskload_ps(p + full, m));
        }
        r = w_hsum(_mm256_add_ps(a0, a1));
    } else {
        /* x = min + step * code: l2/l1 on step * code - (q - min), dot on
         * code . (q * step) + sum q * min. Masked tail lanes have p = s = 0. */
        const float *s = q->s;
        __m256 a0 = _mm256_setzero_ps(), a1 = a0;
        size_t j = 0;
        for (; j + 16 <= full; j += 16) {
            __m256 c0 = w_u8(code + j), c1 = w_u8(code + j + 8);
            if (op == W_DOT) {
                a0 = _mm256_fmadd_ps(c0, _mm256_loadu_ps(p + j), a0);
                a1 = _mm256_fmadd_ps(c1, _mm256_loadu_ps(p + j + 8), a1);
            } else {
                a0 = w_step(op, a0, _mm256_mul_ps(c0, _mm256_loadu_ps(s + j)),
                            _mm256_loadu_ps(p + j));
                a1 = w_step(op, a1, _mm256_mul_ps(c1, _mm256_loadu_ps(s + j + 8)),
                            _mm256_loadu_ps(p + j + 8));
            }
        }
        for (; j < dim; j += 8) {
            __m256i mm = j < full ? _mm256_set1_epi32(-1) : m;
            __m256 c0 = w_u8(code + j);
            if (op == W_DOT)
                a0 = _mm256_fmadd_ps(c0, _mm256_maskload_ps(p + j, mm), a0);
            else
                a0 = w_step(op, a0, _mm256_mul_ps(c0, _mm256_maskload_ps(s + j, mm)),
                            _mm256_maskload_ps(p + j, mm));
        }
        r = w_hsum(_mm256_add_ps(a0, a1));
        if (op == W_DOT) r += q->c;
    }
    return op == W_DOT ? h->df.bias - r : r;
}

W_INLINE void w_prefetch(const hnsw *h, uint32_t i)
{
    const char *p = (const char *)hnsw_code(h, i);
    const char *end = p + h->code_bytes;
    for (const char *l = (const char *)((uintptr_t)p & ~(uintptr_t)63); l < end; l += 64)
        _mm_prefetch(l, _MM_HINT_T0);
}

#else /* portable */

W_INLINE float w_dist(int st, int op, const hnsw *h, const hnsw_q *q, const uint8_t *code)
{
    const size_t dim = h->dim;
    const float *p = q->p;
    if (st == W_F32) /* the reference kernels: the exact search's distances */
        return dist_eval(&h->df, p, (const float *)code);
    float a = 0;
    for (size_t j = 0; j < dim; j++) {
        float x;
        if (st == W_F16) {
            uint16_t v;
            memcpy(&v, code + 2 * j, 2);
            x = dp_f16_to_f32(v);
        } else {
            x = op == W_DOT ? (float)code[j] : (float)code[j] * q->s[j];
        }
        if (op == W_DOT) {
            a += x * p[j];
        } else {
            float d = x - p[j];
            a += op == W_L2 ? d * d : fabsf(d);
        }
    }
    if (op == W_DOT) return h->df.bias - (st == W_I8 ? a + q->c : a);
    return a;
}

W_INLINE void w_prefetch(const hnsw *h, uint32_t i)
{
    const char *p = (const char *)hnsw_code(h, i);
    size_t lines = (h->code_bytes + 63) / 64;
    for (size_t k = 0; k < lines; k++)
        __builtin_prefetch(p + 64 * k, 0, 3);
}

#endif

/* ---- the walk ------------------------------------------------------------- */

W_INLINE cand w_greedy(int st, int op, const hnsw *h, const hnsw_q *q, cand cur, int from, int to)
{
    for (int l = from; l > to; l--) {
        bool changed = true;
        while (changed) {
            changed = false;
            const uint32_t *lk = hnsw_links(h, cur.id, l);
            uint32_t cnt = lk[0] <= h->M ? lk[0] : h->M;
            for (uint32_t j = 0; j < cnt; j++)
                if (lk[1 + j] < h->n) w_prefetch(h, lk[1 + j]);
            for (uint32_t j = 0; j < cnt; j++) {
                uint32_t nb = lk[1 + j];
                /* a link to a node without this level only comes from a
                 * damaged file; its block would be someone else's */
                if (nb >= h->n || h->levels[nb] < l) continue;
                float d = w_dist(st, op, h, q, hnsw_code(h, nb));
                if (d < cur.d) {
                    cur.d = d;
                    cur.id = nb;
                    changed = true;
                }
            }
        }
    }
    return cur;
}

#define W_AHEAD 4

/* The walk goes on through rejected nodes until ef accepted ones bound it. */
W_INLINE size_t w_layer(int st, int op, const hnsw *h, const hnsw_q *q, cand ep, int level,
                        size_t ef, hnsw_scratch *s, bool (*accept)(uint32_t, void *), void *ctx)
{
    visited *vis = &s->vis;
    if (++vis->gen == 0) {
        memset(vis->mark, 0, vis->n * sizeof *vis->mark);
        vis->gen = 1;
    }
    const uint16_t gen = vis->gen;
    uint16_t *mark = vis->mark;
    const size_t n = h->n;
    size_t nt = 0, nc = 0;
    float lower = INFINITY;
    const uint32_t cap = level ? h->M : h->M0;
    cand *top = s->top, *cq = s->cq;
    mark[ep.id] = gen;
    if (!accept || accept(ep.id, ctx)) {
        top[nt++] = ep;
        lower = ep.d;
    }
    cq[nc++] = ep;
    uint32_t fresh[HNSW_MAX_M * 2];
    while (nc) {
        cand c = w_pop(cq, &nc, false);
        if (c.d > lower && (nt >= ef || !accept)) break;
        const uint32_t *lk = hnsw_links(h, c.id, level);
        uint32_t cnt = lk[0] <= cap ? lk[0] : cap, nf = 0;
        for (uint32_t j = 0; j < cnt; j++)
            __builtin_prefetch(&mark[lk[1 + j] < n ? lk[1 + j] : 0], 0, 3);
        for (uint32_t j = 0; j < cnt; j++) {
            uint32_t nb = lk[1 + j];
            if (nb >= n || mark[nb] == gen || (level && h->levels[nb] < level)) continue;
            mark[nb] = gen;
            fresh[nf++] = nb;
        }
        for (uint32_t j = 0; j < nf && j < W_AHEAD; j++)
            w_prefetch(h, fresh[j]);
        /* the queue only grows by what we push: keep room (the caller sized
         * the buffers for ef + M0; a long walk through rejected nodes may
         * need more) */
        if (nc + nf + 1 > s->cap) {
            size_t need = nc + nf + 1, cap2 = s->cap * 2 > need ? s->cap * 2 : need;
            cand *a = realloc(s->top, (cap2 + 1) * sizeof(cand));
            if (a) s->top = a;
            cand *b = realloc(s->cq, (cap2 + 1) * sizeof(cand));
            if (b) s->cq = b;
            cand *t = realloc(s->tmp, (cap2 + 1) * sizeof(cand));
            if (t) s->tmp = t;
            if (!a || !b || !t) break;
            s->cap = cap2;
            top = s->top;
            cq = s->cq;
        }
        for (uint32_t j = 0; j < nf; j++) {
            if (j + W_AHEAD < nf) w_prefetch(h, fresh[j + W_AHEAD]);
            uint32_t nb = fresh[j];
            float d = w_dist(st, op, h, q, hnsw_code(h, nb));
            if (nt < ef || d < lower) {
                cand x = {d, nb};
                w_push(cq, &nc, x, false);
                if (!accept || accept(nb, ctx)) {
                    if (nt < ef)
                        w_push(top, &nt, x, true);
                    else
                        w_replace_top(top, nt, x);
                    lower = top[0].d;
                }
            }
        }
        /* the next node to expand is known now: ask for its links */
        if (nc) __builtin_prefetch(hnsw_links(h, cq[0].id, level), 0, 3);
    }
    return nt;
}

/* ---- the instances ------------------------------------------------------ */

#define W_INST(ST, OP, NAME)                                                                       \
    static float dist_##NAME(const hnsw *h, const hnsw_q *q, uint32_t node)                        \
    {                                                                                              \
        return w_dist(ST, OP, h, q, hnsw_code(h, node));                                           \
    }                                                                                              \
    static cand greedy_##NAME(const hnsw *h, const hnsw_q *q, cand cur, int from, int to)          \
    {                                                                                              \
        return w_greedy(ST, OP, h, q, cur, from, to);                                              \
    }                                                                                              \
    static size_t layer_##NAME(const hnsw *h, const hnsw_q *q, cand ep, int level, size_t ef,      \
                               hnsw_scratch *s, bool (*accept)(uint32_t, void *), void *ctx)       \
    {                                                                                              \
        return w_layer(ST, OP, h, q, ep, level, ef, s, accept, ctx);                               \
    }

W_INST(W_F32, W_L2, f32_l2)
W_INST(W_F32, W_DOT, f32_dot)
W_INST(W_F32, W_L1, f32_l1)
W_INST(W_F16, W_L2, f16_l2)
W_INST(W_F16, W_DOT, f16_dot)
W_INST(W_F16, W_L1, f16_l1)
W_INST(W_I8, W_L2, i8_l2)
W_INST(W_I8, W_DOT, i8_dot)
W_INST(W_I8, W_L1, i8_l1)

#define W_PICK(KIND, h)                                                                            \
    static const __typeof__(&KIND##_f32_l2) tab[9] = {                                             \
        KIND##_f32_l2, KIND##_f32_dot, KIND##_f32_l1, KIND##_f16_l2, KIND##_f16_dot,               \
        KIND##_f16_l1, KIND##_i8_l2,   KIND##_i8_dot, KIND##_i8_l1};                               \
    return tab[(h)->storage * 3 + (h)->df.op]

static float w_any_dist(const hnsw *h, const hnsw_q *q, uint32_t node)
{
    W_PICK(dist, h)(h, q, node);
}
static cand w_any_greedy(const hnsw *h, const hnsw_q *q, cand cur, int from, int to)
{
    W_PICK(greedy, h)(h, q, cur, from, to);
}
static size_t w_any_layer(const hnsw *h, const hnsw_q *q, cand ep, int level, size_t ef,
                          hnsw_scratch *s, bool (*accept)(uint32_t, void *), void *ctx)
{
    W_PICK(layer, h)(h, q, ep, level, ef, s, accept, ctx);
}
