// attention/attention.cpp -- causal grouped-query attention against the KV cache: the twin of lessons/l06_attention.py.
//
// For each new token t (position p = pos + t) and each query head h (KV head g = h / group):
//     score[j] = q[t,h] . K[j,g] / sqrt(head_dim)      for j = 0..p   (causal: nothing after p)
//     prob     = softmax(score)
//     out[t,h] = sum_j prob[j] * V[j,g]
// The cache layout is the lesson's, [n_head_kv][n_ctx][head_dim]: K[j,g] is the head_dim values at
// g*s.head_stride() + j*head_dim, and one KV head's positions follow each other in memory.
// The cache holds float32, or float16 (s.kv_type == GGML_F16, llama.cpp's default: half the bytes to read per
// token); every version is a template over the cached element type, and widens float16 to float32 as it loads.
//
// Versions (llm.c style; each adds one idea and is checked against the numpy lesson by tests/test_cpp_model_attention.py):
//   v0_scalar   a line-by-line port: three loops, one thread
//   v1_threads  the (token, head) pairs are independent: hand them to the thread pool
//   v2_avx2     the two inner loops over head_dim (dot product, weighted sum) 8 floats at a time with FMA
//   v3_avx512   the same 16 floats at a time (head_dim 64 = four registers)
//   v4_gqa_avx2  per (token, KV head): the group's query heads share each K/V row while it is in registers
//   v5_gqa_prefetch_avx2  v4 with software prefetch of the K and V rows 8 positions ahead (the AVX2 fast path)
//   v6_gqa_flash_avx512  v4's grouping with AVX-512, 16 scores per transpose-add reduction, and a long row
//               split into chunks merged flash-style (see the v6 banner below)
//   v7_gqa_flash_prefetch_avx512  v6 with each K block and V row asked for 4 KB ahead (the AVX-512 fast path)
//   v2_neon     (aarch64) the same 4 floats at a time: attention/neon_v2.cpp, checked under qemu (tests/native/)
#if defined(__x86_64__) || defined(_M_X64)
#include <immintrin.h>
#endif

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <stdexcept>

#include "model/model.h"
#include "ops/simd_math.h"  // exp16_avx512
#include "kernels_neon.h"  // aarch64 versions (empty elsewhere)

namespace ll {

using AttentionFn = void (*)(const float*, const void*, const void*, float*, const AttentionShape&, ThreadPool&);

// --8<-- [start:attend_one]
// The shared skeleton: one (token, head) pair, with the dot product and weighted sum passed in.
// scores needs room for pos + n_tok floats.
template <class T, class Dot, class Axpy>
static inline void attend_one(const float* q, const T* k_cache, const T* v_cache, float* out, const AttentionShape& s,
                              int t, int h, float* scores, Dot dot, Axpy axpy) {
    const int group = s.n_head / s.n_head_kv, g = h / group, hd = s.head_dim;
    const T *K = k_cache + g * s.head_stride(), *V = v_cache + g * s.head_stride();  // KV head g: [n_ctx, hd]
    const float scale = 1.0f / std::sqrt(float(hd));
    const float* qh = q + (int64_t(t) * s.n_head + h) * hd;  // [hd]
    const int n_kv = s.pos + t + 1;                        // causal: positions 0..pos+t
    for (int j = 0; j < n_kv; j++) scores[j] = dot(qh, K + int64_t(j) * hd, hd) * scale;
    softmax(scores, n_kv);
    float* oh = out + (int64_t(t) * s.n_head + h) * hd;  // [hd]
    std::memset(oh, 0, sizeof(float) * hd);
    for (int j = 0; j < n_kv; j++) axpy(oh, scores[j], V + int64_t(j) * hd, hd);
}
// --8<-- [end:attend_one]

static float* scratch_scores(int64_t n) {
    thread_local std::vector<float> buf;  // one per worker thread, grown as the context grows
    if (int64_t(buf.size()) < n) buf.resize(size_t(n));
    return buf.data();
}

// ---- v0: scalar, one thread ----
template <class T>
static float dot_scalar(const float* a, const T* b, int n) {
    float s = 0.0f;
    for (int i = 0; i < n; i++) s += a[i] * kv_value(b, i);
    return s;
}
template <class T>
static void axpy_scalar(float* y, float a, const T* x, int n) {
    for (int i = 0; i < n; i++) y[i] += a * kv_value(x, i);
}

template <class T>
static void attention_v0_impl(const float* q, const T* k, const T* v, float* out, const AttentionShape& s) {
    float* scores = scratch_scores(s.pos + s.n_tok);
    for (int t = 0; t < s.n_tok; t++)
        for (int h = s.first_head(); h < s.first_head() + s.n_heads_computed(); h++)
            attend_one(q, k, v, out, s, t, h, scores, dot_scalar<T>, axpy_scalar<T>);
}
static void attention_v0(const float* q, const void* k, const void* v, float* out, const AttentionShape& s, ThreadPool&) {
    with_kv_type(s, k, v, [&](auto K, auto V) { attention_v0_impl(q, K, V, out, s); });
}

// ---- v1: the (token, head) pairs in parallel ----
// --8<-- [start:attention_threaded]
template <class T, class Dot, class Axpy>
static void attention_threaded(const float* q, const T* k, const T* v, float* out, const AttentionShape& s,
                               ThreadPool& pool, Dot dot, Axpy axpy) {
    const int h0 = s.first_head(), nh = s.n_heads_computed();
    pool.parallel_for(int64_t(s.n_tok) * nh, [&](int64_t begin, int64_t end) {
        float* scores = scratch_scores(s.pos + s.n_tok);
        for (int64_t i = begin; i < end; i++) attend_one(q, k, v, out, s, int(i / nh), h0 + int(i % nh), scores, dot, axpy);
    });
}

// --8<-- [end:attention_threaded]

template <class T>
static void attention_v1_impl(const float* q, const T* k, const T* v, float* out, const AttentionShape& s, ThreadPool& pool) {
    attention_threaded(q, k, v, out, s, pool, dot_scalar<T>, axpy_scalar<T>);
}
static void attention_v1(const float* q, const void* k, const void* v, float* out, const AttentionShape& s, ThreadPool& pool) {
    with_kv_type(s, k, v, [&](auto K, auto V) { attention_v1_impl(q, K, V, out, s, pool); });
}

// ---- v2: AVX2 + FMA inner loops ----
#if defined(__x86_64__) || defined(_M_X64)
// 8 cached values as floats
__attribute__((target("avx2,fma,f16c"))) static inline __m256 load8(const float* p) { return _mm256_loadu_ps(p); }
__attribute__((target("avx2,fma,f16c"))) static inline __m256 load8(const uint16_t* p) {
    return _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
}
template <class T>
__attribute__((target("avx2,fma,f16c"))) static float dot_avx2(const float* a, const T* b, int n) {
    __m256 acc = _mm256_setzero_ps();
    int i = 0;
    for (; i + 8 <= n; i += 8) acc = _mm256_fmadd_ps(_mm256_loadu_ps(a + i), load8(b + i), acc);
    __m128 r = _mm_add_ps(_mm256_castps256_ps128(acc), _mm256_extractf128_ps(acc, 1));
    r = _mm_add_ps(r, _mm_movehl_ps(r, r));
    r = _mm_add_ss(r, _mm_movehdup_ps(r));
    float s = _mm_cvtss_f32(r);
    for (; i < n; i++) s += a[i] * kv_value(b, i);
    return s;
}
template <class T>
__attribute__((target("avx2,fma,f16c"))) static void axpy_avx2(float* y, float a, const T* x, int n) {
    const __m256 va = _mm256_set1_ps(a);
    int i = 0;
    for (; i + 8 <= n; i += 8) _mm256_storeu_ps(y + i, _mm256_fmadd_ps(va, load8(x + i), _mm256_loadu_ps(y + i)));
    for (; i < n; i++) y[i] += a * kv_value(x, i);
}
template <class T>
static void attention_v2_impl(const float* q, const T* k, const T* v, float* out, const AttentionShape& s, ThreadPool& pool) {
    attention_threaded(q, k, v, out, s, pool, dot_avx2<T>, axpy_avx2<T>);
}
static void attention_v2(const float* q, const void* k, const void* v, float* out, const AttentionShape& s, ThreadPool& pool) {
    with_kv_type(s, k, v, [&](auto K, auto V) { attention_v2_impl(q, K, V, out, s, pool); });
}

// ---- v4: the GQA group together (AVX2) ----
// v2 calls dot and axpy through pointers once per (position, head), and reads each K/V row (and widens it
// from float16) once per query head. This version groups the heads: per
// (token, KV head), the group's query heads share every K and V row while it is in registers:
//   scores: for each position, the row's hd values widened once, then one FMA chain per head;
//   output: 16 channels at a time, the V row's two registers feeding every head's two accumulators.
// head_dim must be a multiple of 8 (64 in every LLaMA); other sizes run v2's loops.
// G (1-4) heads of a group at q [G, hd]; scores [G, n_kv]; out [G, hd]. G is a template argument so that the
// G accumulators of each loop live in registers (with a run-time count GCC kept them in memory: 1.6x slower).
// v5_gqa_prefetch_avx2 adds one thing: while position j's scores are computed, the K and V rows of position
// j + kKvPrefetchAhead are requested. Decoding reads the whole cache from memory (the weights that stream
// through between two tokens evict it). Written for the old position-major cache (128 bytes of every 384
// read), it still pays on the head-major one: v4 -> v5 +2.5% decoding the default model.
constexpr int kKvPrefetchAhead = 8;  // positions; 4-16 all gave most of the gain (none: 1.3-2x slower), 8 as good as any

template <int G, class T, bool PREFETCH>
__attribute__((target("avx2,fma,f16c"))) static void attend_heads_avx2(const float* q, const T* K, const T* V,
                                                                   int hd, int n_kv, float scale,
                                                                   float* scores, float* out) {
    // -- scores[h][j] = q_h . K_j * scale --
    for (int j = 0; j < n_kv; j++) {
        const T* kr = K + int64_t(j) * hd;
        // --8<-- [start:kv_prefetch]
        if (PREFETCH && j + kKvPrefetchAhead < n_kv) {  // v5: rows j + 8 of K (for this loop) and V (for the next)
            const char* k_ahead = reinterpret_cast<const char*>(kr + kKvPrefetchAhead * hd);
            const char* v_ahead = reinterpret_cast<const char*>(V + int64_t(j + kKvPrefetchAhead) * hd);
            for (int b = 0; b < int(hd * sizeof(T)); b += 64) {
                _mm_prefetch(k_ahead + b, _MM_HINT_T0);
                _mm_prefetch(v_ahead + b, _MM_HINT_T1);  // L2: the output loop reads V a few times over
            }
        }
        // --8<-- [end:kv_prefetch]
        __m256 acc[G];
        for (int h = 0; h < G; h++) acc[h] = _mm256_setzero_ps();
        for (int c = 0; c < hd; c += 8) {
            const __m256 kv = load8(kr + c);
            for (int h = 0; h < G; h++) acc[h] = _mm256_fmadd_ps(_mm256_loadu_ps(q + int64_t(h) * hd + c), kv, acc[h]);
        }
        for (int h = 0; h < G; h++) scores[int64_t(h) * n_kv + j] = hsum8_avx2(acc[h]) * scale;
    }
    for (int h = 0; h < G; h++) softmax(scores + int64_t(h) * n_kv, n_kv);
    // -- out[h] = sum_j p[h][j] V_j, 16 channels at a time --
    for (int c = 0; c < hd; c += 16) {
        const bool two = c + 16 <= hd;  // a last piece of 8 channels when hd is 8 mod 16
        __m256 acc[G][2];
        for (int h = 0; h < G; h++) acc[h][0] = acc[h][1] = _mm256_setzero_ps();
        for (int j = 0; j < n_kv; j++) {
            const T* vr = V + int64_t(j) * hd + c;
            const __m256 v0 = load8(vr), v1 = two ? load8(vr + 8) : _mm256_setzero_ps();
            for (int h = 0; h < G; h++) {
                const __m256 p = _mm256_set1_ps(scores[int64_t(h) * n_kv + j]);
                acc[h][0] = _mm256_fmadd_ps(p, v0, acc[h][0]);
                acc[h][1] = _mm256_fmadd_ps(p, v1, acc[h][1]);
            }
        }
        for (int h = 0; h < G; h++) {
            _mm256_storeu_ps(out + int64_t(h) * hd + c, acc[h][0]);
            if (two) _mm256_storeu_ps(out + int64_t(h) * hd + c + 8, acc[h][1]);
        }
    }
}

// nh heads of one group, 4 at a time
template <bool PREFETCH, class T>
static void attend_group_avx2(const float* q, int nh, const T* K, const T* V, int hd, int n_kv, float scale,
                              float* scores, float* out) {
    for (int h0 = 0; h0 < nh; h0 += 4) {
        const int g = std::min(4, nh - h0);
        const float* qh = q + int64_t(h0) * hd;
        float *sh = scores + int64_t(h0) * n_kv, *oh = out + int64_t(h0) * hd;
        if (g == 4) attend_heads_avx2<4, T, PREFETCH>(qh, K, V, hd, n_kv, scale, sh, oh);
        else if (g == 3) attend_heads_avx2<3, T, PREFETCH>(qh, K, V, hd, n_kv, scale, sh, oh);
        else if (g == 2) attend_heads_avx2<2, T, PREFETCH>(qh, K, V, hd, n_kv, scale, sh, oh);
        else attend_heads_avx2<1, T, PREFETCH>(qh, K, V, hd, n_kv, scale, sh, oh);
    }
}

template <bool PREFETCH, class T>
static void attention_v4_avx2_impl(const float* q, const T* k, const T* v, float* out, const AttentionShape& s, ThreadPool& pool) {
    if (s.head_dim % 8) return attention_v2_impl(q, k, v, out, s, pool);
    const int group = s.n_head / s.n_head_kv, hd = s.head_dim;
    const int h_begin = s.first_head(), h_end = h_begin + s.n_heads_computed();  // a team's share: maybe part of a group
    const int g_first = h_begin / group, n_g = (h_end - 1) / group - g_first + 1;
    const int64_t hs = s.head_stride(), pairs = int64_t(s.n_tok) * n_g;
    const float scale = 1.0f / std::sqrt(float(hd));
    pool.parallel_for(pairs, [&](int64_t begin, int64_t end) {
        for (int64_t task = begin; task < end; task++) {
            const int64_t pair = pairs - 1 - task;  // the last tokens (longest rows) first
            const int t = int(pair / n_g), g = g_first + int(pair % n_g);
            const int h0 = std::max(h_begin, g * group), nh = std::min(h_end, (g + 1) * group) - h0;  // its query heads
            const int n_kv = s.pos + t + 1;  // causal: positions 0..pos+t
            float* scores = scratch_scores(int64_t(nh) * n_kv);
            attend_group_avx2<PREFETCH>(q + (int64_t(t) * s.n_head + h0) * hd, nh, k + g * hs, v + g * hs, hd, n_kv, scale,
                                        scores, out + (int64_t(t) * s.n_head + h0) * hd);
        }
    });
}
static void attention_v4_avx2(const float* q, const void* k, const void* v, float* out, const AttentionShape& s, ThreadPool& pool) {
    with_kv_type(s, k, v, [&](auto K, auto V) { attention_v4_avx2_impl<false>(q, K, V, out, s, pool); });
}
static void attention_v5_avx2(const float* q, const void* k, const void* v, float* out, const AttentionShape& s, ThreadPool& pool) {
    with_kv_type(s, k, v, [&](auto K, auto V) { attention_v4_avx2_impl<true>(q, K, V, out, s, pool); });
}

// ---- v3: AVX-512, 16 floats at a time ----
// The first lanes of m of 16 cached values, as floats (float16: widened on the way in)
__attribute__((target("avx512f,avx512bw,avx512vl,f16c"))) static inline __m512 load16(__mmask16 m, const float* p) { return _mm512_maskz_loadu_ps(m, p); }
__attribute__((target("avx512f,avx512bw,avx512vl,f16c"))) static inline __m512 load16(__mmask16 m, const uint16_t* p) {
    return _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(m, p));
}
// --8<-- [start:dot_avx512]
template <class T>
__attribute__((target("avx512f,avx512bw,avx512vl,f16c"))) static float dot_avx512(const float* a, const T* b, int n) {
    __m512 acc = _mm512_setzero_ps();
    int i = 0;
    for (; i + 16 <= n; i += 16) acc = _mm512_fmadd_ps(_mm512_loadu_ps(a + i), load16(0xFFFF, b + i), acc);
    if (i < n) {  // the tail under a mask: no scalar loop
        const __mmask16 m = __mmask16((1u << (n - i)) - 1);
        acc = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(m, a + i), load16(m, b + i), acc);
    }
    return _mm512_reduce_add_ps(acc);
}
// --8<-- [end:dot_avx512]
template <class T>
__attribute__((target("avx512f,avx512bw,avx512vl,f16c"))) static void axpy_avx512(float* y, float a, const T* x, int n) {
    const __m512 va = _mm512_set1_ps(a);
    int i = 0;
    for (; i + 16 <= n; i += 16) _mm512_storeu_ps(y + i, _mm512_fmadd_ps(va, load16(0xFFFF, x + i), _mm512_loadu_ps(y + i)));
    if (i < n) {
        const __mmask16 m = __mmask16((1u << (n - i)) - 1);
        _mm512_mask_storeu_ps(y + i, m, _mm512_fmadd_ps(va, load16(m, x + i), _mm512_maskz_loadu_ps(m, y + i)));
    }
}
template <class T>
static void attention_v3_impl(const float* q, const T* k, const T* v, float* out, const AttentionShape& s, ThreadPool& pool) {
    attention_threaded(q, k, v, out, s, pool, dot_avx512<T>, axpy_avx512<T>);
}
static void attention_v3(const float* q, const void* k, const void* v, float* out, const AttentionShape& s, ThreadPool& pool) {
    with_kv_type(s, k, v, [&](auto K, auto V) { attention_v3_impl(q, K, V, out, s, pool); });
}

// ---- v6: v4's group with AVX-512, 16 scores per reduction, long contexts split flash-style ----
// v3 spends its time on overhead, not arithmetic: one call through a function pointer and one full
// horizontal reduction per (position, head), and each K/V row is fetched once per query head.
// v6 works on (token, KV head) pairs and three ideas, all inlined:
//   1. the `group` query heads of a KV head are done together: 16 K rows are read once into L1 and
//      serve every head of the group; each V row feeds `group` x 4 accumulators in registers;
//   2. the 16 dot products of a block of positions end as 16 vectors of partial sums, which a
//      transpose-add tree (hsum16) turns into one vector of 16 scores: 45 shuffles+adds, not 16 reductions;
//   3. decoding has only n_head_kv (3) pairs for the threads: each pair's positions are split into
//      chunks, each chunk returns an unnormalized partial (max m, sum l, sum_j e^(s_j - m) V_j), and the
//      partials are merged with the flash-attention rescaling  o = sum_c e^(m_c - M) o_c / sum_c e^(m_c - M) l_c.
// Prefill pairs are handed out longest first (the causal mask makes late tokens the long ones).
// --8<-- [start:hsum16]
// [sum(a[0]), sum(a[1]), ..., sum(a[15])]: four levels, each halving the vectors and pairing lanes.
__attribute__((target("avx512f"))) static inline __m512 hsum16(const __m512* a) {
    __m512 x[8], y[4], z[2];
    for (int i = 0; i < 8; i++)  // per 128-bit lane: [a0+a2, b0+b2, a1+a3, b1+b3]
        x[i] = _mm512_add_ps(_mm512_unpacklo_ps(a[2 * i], a[2 * i + 1]), _mm512_unpackhi_ps(a[2 * i], a[2 * i + 1]));
    for (int i = 0; i < 4; i++)  // per 128-bit lane: the lane's sums of four vectors
        y[i] = _mm512_add_ps(_mm512_shuffle_ps(x[2 * i], x[2 * i + 1], _MM_SHUFFLE(1, 0, 1, 0)),
                             _mm512_shuffle_ps(x[2 * i], x[2 * i + 1], _MM_SHUFFLE(3, 2, 3, 2)));
    for (int i = 0; i < 2; i++)  // add lane pairs (0,1) and (2,3)
        z[i] = _mm512_add_ps(_mm512_shuffle_f32x4(y[2 * i], y[2 * i + 1], _MM_SHUFFLE(2, 0, 2, 0)),
                             _mm512_shuffle_f32x4(y[2 * i], y[2 * i + 1], _MM_SHUFFLE(3, 1, 3, 1)));
    return _mm512_add_ps(_mm512_shuffle_f32x4(z[0], z[1], _MM_SHUFFLE(2, 0, 2, 0)),
                         _mm512_shuffle_f32x4(z[0], z[1], _MM_SHUFFLE(3, 1, 3, 1)));
}

// --8<-- [end:hsum16]

// The first n of 16 lanes (n may be <= 0 or >= 16).
static inline __mmask16 lanes_below(int n) {
    return n >= 16 ? __mmask16(0xFFFF) : n <= 0 ? __mmask16(0) : __mmask16((1u << n) - 1);
}

// v7: ask for the cache lines `ahead` bytes past [p, p + n) (prefetches never fault, so past the end is fine).
__attribute__((target("avx512f"))) static inline void prefetch_ahead_of(const void* p, int64_t n, int64_t ahead) {
    const char* a = static_cast<const char*>(p) + ahead;
    for (int64_t b = 0; b < n; b += 64) _mm_prefetch(a + b, _MM_HINT_T0);
}

// One (token, KV head) pair over positions [j0, j1): for each of the G query heads at q (G rows of hd),
// m[h] = max score, l[h] = sum_j e^(s_j - m), o[h] = sum_j e^(s_j - m) V_j (unnormalized).
// scores: room for G * (j1 - j0) floats. NV = 16-float registers per row when hd <= 64 (0: any hd).
template <int G, int NV, class T, int PF = 0>
__attribute__((target("avx512f,avx512bw,avx512vl,f16c"))) static void attend_range_v6(const float* q, const T* K, const T* V,
                                                               int hd, int j0, int j1, float scale, float* scores,
                                                               float* o, float* m, float* l) {
    const int n = j1 - j0, nv = NV ? NV : (hd + 15) / 16;
    // -- scores, 16 positions at a time; the block's K rows stay in L1 for all G heads --
    __mmask16 mk[NV ? NV : 1];  // lanes of each 16-float piece of a row (all but the last are full)
    for (int c = 0; c < NV; c++) mk[c] = lanes_below(hd - 16 * c);
    for (int jb = 0; jb < n; jb += 16) {
        const int nb = std::min(16, n - jb);
        const T* kb = K + int64_t(j0 + jb) * hd;  // the block's first K row
        if (PF) prefetch_ahead_of(kb, int64_t(16) * hd * int64_t(sizeof(T)), PF);  // v7: the block PF bytes on
        for (int h = 0; h < G; h++) {
            const float* qh = q + int64_t(h) * hd;
            __m512 acc[16];
            if (NV) {  // hd <= 64: the query in registers, the masks hoisted
                __m512 qv[NV ? NV : 1];
                for (int c = 0; c < NV; c++) qv[c] = _mm512_maskz_loadu_ps(mk[c], qh + 16 * c);
#pragma GCC unroll 16
                for (int i = 0; i < 16; i++) {
                    acc[i] = _mm512_setzero_ps();
                    if (nb == 16 || i < nb)
                        for (int c = 0; c < NV; c++)
                            acc[i] = _mm512_fmadd_ps(qv[c], load16(mk[c], kb + i * hd + 16 * c), acc[i]);
                }
            } else {  // any hd: pieces of 16 under a mask
                for (int i = 0; i < 16; i++) {
                    acc[i] = _mm512_setzero_ps();
                    for (int c = 0; i < nb && c < nv; c++) {
                        const __mmask16 m16 = lanes_below(hd - 16 * c);
                        acc[i] = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(m16, qh + 16 * c),
                                                 load16(m16, kb + i * hd + 16 * c), acc[i]);
                    }
                }
            }
            const __m512 s16 = _mm512_mul_ps(hsum16(acc), _mm512_set1_ps(scale));  // the block's 16 scores
            _mm512_mask_storeu_ps(scores + int64_t(h) * n + jb, lanes_below(nb), s16);
        }
    }
    // -- softmax numerators: e = exp(s - max), and their sum --
    for (int h = 0; h < G; h++) {
        float* sh = scores + int64_t(h) * n;
        __m512 vmax = _mm512_set1_ps(-__builtin_inff());
        for (int i = 0; i < n; i += 16) {
            const __mmask16 mk = lanes_below(n - i);
            vmax = _mm512_mask_max_ps(vmax, mk, vmax, _mm512_maskz_loadu_ps(mk, sh + i));
        }
        const float mx = _mm512_reduce_max_ps(vmax);
        __m512 vsum = _mm512_setzero_ps();
        for (int i = 0; i < n; i += 16) {
            const __mmask16 mk = lanes_below(n - i);
            const __m512 s16 = _mm512_maskz_loadu_ps(mk, sh + i);
            const __m512 e = _mm512_maskz_mov_ps(mk, exp16_avx512(_mm512_sub_ps(s16, _mm512_set1_ps(mx))));
            _mm512_mask_storeu_ps(sh + i, mk, e);
            vsum = _mm512_add_ps(vsum, e);
        }
        m[h] = mx;
        l[h] = _mm512_reduce_add_ps(vsum);
    }
    // -- o[h] = sum_j e[h][j] V_j: 64 channels at a time, G x 4 accumulators in registers --
    for (int d0 = 0; d0 < hd; d0 += 64) {
        __mmask16 mk[4];
        for (int c = 0; c < 4; c++) mk[c] = lanes_below(hd - d0 - 16 * c);
        __m512 acc[G][4];
        for (int h = 0; h < G; h++)
            for (int c = 0; c < 4; c++) acc[h][c] = _mm512_setzero_ps();
        for (int j = 0; j < n; j++) {
            const T* vr = V + int64_t(j0 + j) * hd + d0;
            if (PF) prefetch_ahead_of(vr, std::min<int64_t>(64, hd - d0) * int64_t(sizeof(T)), PF);  // v7
            __m512 vv[4];
            for (int c = 0; c < 4; c++) vv[c] = load16(mk[c], vr + 16 * c);
            for (int h = 0; h < G; h++) {
                const __m512 p = _mm512_set1_ps(scores[int64_t(h) * n + j]);
                for (int c = 0; c < 4; c++) acc[h][c] = _mm512_fmadd_ps(p, vv[c], acc[h][c]);
            }
        }
        for (int h = 0; h < G; h++)
            for (int c = 0; c < 4; c++) _mm512_mask_storeu_ps(o + int64_t(h) * hd + d0 + 16 * c, mk[c], acc[h][c]);
    }
}

template <class T>
using RangeFn = void (*)(const float*, const T*, const T*, int, int, int, float, float*, float*, float*, float*);

// The instance for this shape: one choice per call, outside every loop (the loops inside are inlined).
template <int G, class T, int PF>
static RangeFn<T> range_fn_for_hd(int hd) {
    switch ((hd + 15) / 16) {
        case 1: return attend_range_v6<G, 1, T, PF>;
        case 2: return attend_range_v6<G, 2, T, PF>;
        case 3: return attend_range_v6<G, 3, T, PF>;
        case 4: return attend_range_v6<G, 4, T, PF>;
        default: return attend_range_v6<G, 0, T, PF>;
    }
}

// Heads of one group are done 4 at a time at most (4 x 4 accumulators + 4 values fill 20 of 32 registers).
template <class T, int PF>
static void attend_range_any(const float* q, int group, const T* K, const T* V, int hd, int j0, int j1,
                             float scale, float* scores, float* o, float* m, float* l) {
    for (int h0 = 0; h0 < group; h0 += 4) {
        const int g = std::min(4, group - h0);
        const RangeFn<T> fn = g == 1 ? range_fn_for_hd<1, T, PF>(hd) : g == 2 ? range_fn_for_hd<2, T, PF>(hd)
                            : g == 3 ? range_fn_for_hd<3, T, PF>(hd) : range_fn_for_hd<4, T, PF>(hd);
        fn(q + int64_t(h0) * hd, K, V, hd, j0, j1, scale, scores, o + int64_t(h0) * hd, m + h0, l + h0);
    }
}

static float* scratch_partials(int64_t n) {
    thread_local std::vector<float> buf;  // the caller's: partial results of the chunks, merged after the loop
    if (int64_t(buf.size()) < n) buf.resize(size_t(n));
    return buf.data();
}

// --8<-- [start:attention_v6]
static constexpr int kMinChunk = 64;  // positions: below this a chunk's merge costs more than it spreads

template <int PF, class T>
static void attention_v6_impl(const float* q, const T* k, const T* v, float* out, const AttentionShape& s, ThreadPool& pool) {
    const int group = s.n_head / s.n_head_kv, hd = s.head_dim;
    // A head range (a decoding team's share) touches the KV heads g_first..g_first + n_g - 1, some maybe in part.
    const int h_begin = s.first_head(), h_end = h_begin + s.n_heads_computed();
    const int g_first = h_begin / group, n_g = (h_end - 1) / group - g_first + 1;
    const int64_t hs = s.head_stride(), pairs = int64_t(s.n_tok) * n_g;
    const float scale = 1.0f / std::sqrt(float(hd));
    // Chunks per pair: enough tasks for the pool (2 per thread) when there are few pairs (decoding: 3 pairs,
    // 2 threads -> 6 chunks of ~50 positions at context 300). Measured at contexts 300 and 1000 with 2 threads
    // against 1 (no split: one thread gets 2 of the 3 pairs), 4 and 8 per thread: 2 was best in the quiet
    // rounds, by 5-20%, but the spread on this shared machine is as large.
    const int64_t want = 2 * int64_t(pool.n_threads());
    const int n_chunk = pool.n_threads() == 1 || pairs >= want || ThreadPool::inside_task() ? 1  // inside a task: runs inline
                        : int(std::max<int64_t>(1, std::min<int64_t>((want + pairs - 1) / pairs, (s.pos + 1) / kMinChunk)));
    const int64_t part = int64_t(group) * (hd + 2);  // one chunk's partial: o [group, hd], m [group], l [group]
    float* partials = n_chunk > 1 ? scratch_partials(pairs * n_chunk * part) : nullptr;

    pool.parallel_for(pairs * n_chunk, [&](int64_t begin, int64_t end) {
        for (int64_t task = begin; task < end; task++) {
            const int64_t pair = pairs - 1 - task / n_chunk;  // the last tokens (longest rows) first
            const int t = int(pair / n_g), g = g_first + int(pair % n_g), c = int(task % n_chunk);
            const int h0 = std::max(h_begin, g * group), nh = std::min(h_end, (g + 1) * group) - h0;  // its query heads
            const int n_kv = s.pos + t + 1;                                // causal: positions 0..pos+t
            const int j0 = int(int64_t(n_kv) * c / n_chunk), j1 = int(int64_t(n_kv) * (c + 1) / n_chunk);
            const float* qg = q + (int64_t(t) * s.n_head + h0) * hd;  // [nh, hd]
            float* scores = scratch_scores(int64_t(group) * (j1 - j0 + 2));  // [nh, j1 - j0], then m, l
            if (n_chunk == 1) {  // the whole row: normalize straight into out
                float* og = out + (int64_t(t) * s.n_head + h0) * hd;  // [nh, hd]
                float *m = scores + int64_t(group) * n_kv, *l = m + group;
                attend_range_any<T, PF>(qg, nh, k + g * hs, v + g * hs, hd, 0, n_kv, scale, scores, og, m, l);
                for (int h = 0; h < nh; h++)
                    for (int d = 0; d < hd; d++) og[int64_t(h) * hd + d] /= l[h];
            } else {
                float* p = partials + (pair * n_chunk + c) * part;
                attend_range_any<T, PF>(qg, nh, k + g * hs, v + g * hs, hd, j0, j1, scale, scores, p,
                                 p + int64_t(group) * hd, p + int64_t(group) * (hd + 1));
            }
        }
    });
    if (n_chunk == 1) return;
    // Merge: M = max_c m_c, o = sum_c e^(m_c - M) o_c / sum_c e^(m_c - M) l_c.
    for (int64_t pair = 0; pair < pairs; pair++) {
        const int t = int(pair / n_g), g = g_first + int(pair % n_g);
        const int h0 = std::max(h_begin, g * group), nh = std::min(h_end, (g + 1) * group) - h0;
        for (int h = 0; h < nh; h++) {
            float* oh = out + (int64_t(t) * s.n_head + h0 + h) * hd;  // [hd]
            const float* p0 = partials + pair * n_chunk * part;
            float M = -__builtin_inff();
            for (int c = 0; c < n_chunk; c++) M = std::max(M, p0[c * part + int64_t(group) * hd + h]);
            float L = 0.0f;
            std::memset(oh, 0, sizeof(float) * hd);
            for (int c = 0; c < n_chunk; c++) {
                const float* pc = p0 + c * part;
                const float w = std::exp(pc[int64_t(group) * hd + h] - M);
                L += w * pc[int64_t(group) * (hd + 1) + h];
                for (int d = 0; d < hd; d++) oh[d] += w * pc[int64_t(h) * hd + d];
            }
            for (int d = 0; d < hd; d++) oh[d] /= L;
        }
    }
}
// --8<-- [end:attention_v6]
static void attention_v6(const float* q, const void* k, const void* v, float* out, const AttentionShape& s, ThreadPool& pool) {
    with_kv_type(s, k, v, [&](auto K, auto V) { attention_v6_impl<0>(q, K, V, out, s, pool); });
}

// ---- v7: v6 with the K and V rows asked for ahead ----
// From a long context v6 reads its cache at 7 GB/s per thread while the same loops run at 30+ GB/s on a cache
// that fits in L3 (tools: bench_attention, context 8160, 30 layers against 1): the cache is [n_ctx][head_dim]
// per KV head, a plain stream, but v6 does ~40 vector instructions per 128-byte K row, so the out-of-order
// window holds too few rows to keep loads in flight, and the hardware prefetcher stops at each 4 KB page. v7
// asks for each 16-row K block and each V row kAttnPrefetch bytes ahead, as matmul v9 does for weights. The
// arithmetic is v6's, so the results are bit-identical.
// --8<-- [start:attention_v7]
static constexpr int kAttnPrefetch = 4096;  // bytes: 2 blocks of 16 float16 K rows, 32 V rows
static void attention_v7(const float* q, const void* k, const void* v, float* out, const AttentionShape& s, ThreadPool& pool) {
    with_kv_type(s, k, v, [&](auto K, auto V) { attention_v6_impl<kAttnPrefetch>(q, K, V, out, s, pool); });
}
// --8<-- [end:attention_v7]
#endif

// ---- the version table, slowest to fastest ----
static const detail::OpVersion<AttentionFn> kAttentionVersions[] = {
    {"v0_scalar", "line-by-line port of the lesson, one thread", attention_v0, detail::cpu_any},
    {"v1_threads", "(token, head) pairs spread over the thread pool", attention_v1, detail::cpu_any},
#if defined(__x86_64__) || defined(_M_X64)
    {"v2_avx2", "dot product and weighted sum 8 floats at a time (FMA)", attention_v2, detail::cpu_avx2},
    {"v3_avx512", "the same 16 floats at a time, masked tails", attention_v3, detail::cpu_avx512},
    {"v4_gqa_avx2", "GQA heads together: each K/V row widened once for the group (AVX2)", attention_v4_avx2, detail::cpu_avx2},
    {"v5_gqa_prefetch_avx2", "v4 with the K and V rows 8 positions ahead prefetched (AVX2)", attention_v5_avx2, detail::cpu_avx2},
    {"v6_gqa_flash_avx512", "v4's group with AVX-512, 16 scores per reduction, split positions merged flash-style", attention_v6,
     detail::cpu_avx512},
    {"v7_gqa_flash_prefetch_avx512", "v6 with each K block and V row asked for 4 KB ahead (bit-identical to v6)",
     attention_v7, detail::cpu_avx512},
#endif
#if defined(__aarch64__)
    {"v2_neon", "dot product and weighted sum 4 floats at a time (aarch64)", attention_neon, detail::cpu_neon},  // attention/neon_v2.cpp
#endif
};

static void check_shape(const AttentionShape& s) {
    if (s.n_tok < 1 || s.pos < 0 || s.n_head < 1 || s.n_head_kv < 1 || s.head_dim < 1 || s.n_head % s.n_head_kv)
        throw std::invalid_argument("attention: bad shape (need n_tok >= 1, pos >= 0, n_head a multiple of n_head_kv)");
    if (s.head_end != 0 && (s.head_begin < 0 || s.head_begin >= s.head_end || s.head_end > s.n_head))
        throw std::invalid_argument("attention: bad head range");
    if (s.kv_type != GGML_F32 && s.kv_type != GGML_F16) throw std::invalid_argument("attention: the cache must be float32 or float16");
    if (s.n_ctx < 0 || (s.n_ctx > 0 && s.n_ctx < int64_t(s.pos) + s.n_tok))
        throw std::invalid_argument("attention: n_ctx must hold positions 0..pos+n_tok-1 (or be 0)");
}

// The fast path: the best version this CPU runs, unless the environment variable LLAMA_LESSONS_ATTENTION
// names another (for whole-model comparisons, e.g. LLAMA_LESSONS_ATTENTION=v3_avx512 tools/benchmark.py).
static const detail::OpVersion<AttentionFn>& fast_path_attention() {
    const char* name = std::getenv("LLAMA_LESSONS_ATTENTION");
    if (name && *name) return detail::find_version(kAttentionVersions, name, "attention");
    return detail::best_version(kAttentionVersions);
}

void attention(const float* q, const void* k, const void* v, float* out, const AttentionShape& s, ThreadPool& pool) {
    static const AttentionFn best = fast_path_attention().fn;
    check_shape(s);
    best(q, k, v, out, s, pool);
}

void attention_v(const std::string& version, const float* q, const void* k, const void* v, float* out,
                 const AttentionShape& s, ThreadPool& pool) {
    check_shape(s);
    detail::find_version(kAttentionVersions, version, "attention").fn(q, k, v, out, s, pool);
}

std::vector<VersionInfo> attention_versions() { return detail::describe(kAttentionVersions); }
std::string attention_active() { return fast_path_attention().name; }

}  // namespace ll
