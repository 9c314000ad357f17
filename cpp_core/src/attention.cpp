// attention.cpp -- causal grouped-query attention against the KV cache: the twin of lessons/l06_attention.py.
//
// For each new token t (position p = pos + t) and each query head h (KV head g = h / group):
//     score[j] = q[t,h] . K[j,g] / sqrt(head_dim)      for j = 0..p   (causal: nothing after p)
//     prob     = softmax(score)
//     out[t,h] = sum_j prob[j] * V[j,g]
// The cache layout is [n_ctx][n_head_kv][head_dim], so K[j,g] is the head_dim floats at (j*n_head_kv + g)*head_dim.
//
// Versions (llm.c style; each adds one idea and is checked against the numpy lesson by tests/test_cpp_model_attention.py):
//   v0_scalar   a line-by-line port: three loops, one thread
//   v1_threads  the (token, head) pairs are independent: hand them to the thread pool
//   v2_avx2     the two inner loops over head_dim (dot product, weighted sum) 8 floats at a time with FMA
//   v3_avx512   the same 16 floats at a time (head_dim 64 = four registers)
//   v2_neon     (aarch64) the same 4 floats at a time: attention_neon.cpp, checked under qemu (tests/native/)
#if defined(__x86_64__) || defined(_M_X64)
#include <immintrin.h>
#endif

#include <cmath>
#include <cstring>
#include <stdexcept>

#include "model.h"
#include "kernels_neon.h"  // aarch64 versions (empty elsewhere)

namespace ll {

using AttentionFn = void (*)(const float*, const float*, const float*, float*, const AttentionShape&, ThreadPool&);

// --8<-- [start:attend_one]
// The shared skeleton: one (token, head) pair, with the dot product and weighted sum passed in.
// scores needs room for pos + n_tok floats.
template <class Dot, class Axpy>
static inline void attend_one(const float* q, const float* k_cache, const float* v_cache, float* out, const AttentionShape& s,
                              int t, int h, float* scores, Dot dot, Axpy axpy) {
    const int group = s.n_head / s.n_head_kv, g = h / group, hd = s.head_dim;
    const int64_t row = int64_t(s.n_head_kv) * hd;  // floats per cached position
    const float scale = 1.0f / std::sqrt(float(hd));
    const float* qh = q + (int64_t(t) * s.n_head + h) * hd;  // [hd]
    const int n_kv = s.pos + t + 1;                        // causal: positions 0..pos+t
    for (int j = 0; j < n_kv; j++) scores[j] = dot(qh, k_cache + j * row + int64_t(g) * hd, hd) * scale;
    softmax(scores, n_kv);
    float* oh = out + (int64_t(t) * s.n_head + h) * hd;  // [hd]
    std::memset(oh, 0, sizeof(float) * hd);
    for (int j = 0; j < n_kv; j++) axpy(oh, scores[j], v_cache + j * row + int64_t(g) * hd, hd);
}
// --8<-- [end:attend_one]

static float* scratch_scores(int64_t n) {
    thread_local std::vector<float> buf;  // one per worker thread, grown as the context grows
    if (int64_t(buf.size()) < n) buf.resize(size_t(n));
    return buf.data();
}

// ---- v0: scalar, one thread ----
static float dot_scalar(const float* a, const float* b, int n) {
    float s = 0.0f;
    for (int i = 0; i < n; i++) s += a[i] * b[i];
    return s;
}
static void axpy_scalar(float* y, float a, const float* x, int n) {
    for (int i = 0; i < n; i++) y[i] += a * x[i];
}

static void attention_v0(const float* q, const float* k, const float* v, float* out, const AttentionShape& s, ThreadPool&) {
    float* scores = scratch_scores(s.pos + s.n_tok);
    for (int t = 0; t < s.n_tok; t++)
        for (int h = 0; h < s.n_head; h++) attend_one(q, k, v, out, s, t, h, scores, dot_scalar, axpy_scalar);
}

// ---- v1: the (token, head) pairs in parallel ----
// --8<-- [start:attention_threaded]
template <class Dot, class Axpy>
static void attention_threaded(const float* q, const float* k, const float* v, float* out, const AttentionShape& s,
                               ThreadPool& pool, Dot dot, Axpy axpy) {
    pool.parallel_for(int64_t(s.n_tok) * s.n_head, [&](int64_t begin, int64_t end) {
        float* scores = scratch_scores(s.pos + s.n_tok);
        for (int64_t i = begin; i < end; i++)
            attend_one(q, k, v, out, s, int(i / s.n_head), int(i % s.n_head), scores, dot, axpy);
    });
}

// --8<-- [end:attention_threaded]

static void attention_v1(const float* q, const float* k, const float* v, float* out, const AttentionShape& s, ThreadPool& pool) {
    attention_threaded(q, k, v, out, s, pool, dot_scalar, axpy_scalar);
}

// ---- v2: AVX2 + FMA inner loops ----
#if defined(__x86_64__) || defined(_M_X64)
__attribute__((target("avx2,fma"))) static float dot_avx2(const float* a, const float* b, int n) {
    __m256 acc = _mm256_setzero_ps();
    int i = 0;
    for (; i + 8 <= n; i += 8) acc = _mm256_fmadd_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i), acc);
    __m128 r = _mm_add_ps(_mm256_castps256_ps128(acc), _mm256_extractf128_ps(acc, 1));
    r = _mm_add_ps(r, _mm_movehl_ps(r, r));
    r = _mm_add_ss(r, _mm_movehdup_ps(r));
    float s = _mm_cvtss_f32(r);
    for (; i < n; i++) s += a[i] * b[i];
    return s;
}
__attribute__((target("avx2,fma"))) static void axpy_avx2(float* y, float a, const float* x, int n) {
    const __m256 va = _mm256_set1_ps(a);
    int i = 0;
    for (; i + 8 <= n; i += 8) _mm256_storeu_ps(y + i, _mm256_fmadd_ps(va, _mm256_loadu_ps(x + i), _mm256_loadu_ps(y + i)));
    for (; i < n; i++) y[i] += a * x[i];
}
__attribute__((target("avx2,fma"))) static void attention_v2(const float* q, const float* k, const float* v, float* out,
                                                             const AttentionShape& s, ThreadPool& pool) {
    attention_threaded(q, k, v, out, s, pool, dot_avx2, axpy_avx2);
}

// ---- v3: AVX-512, 16 floats at a time ----
// --8<-- [start:dot_avx512]
__attribute__((target("avx512f"))) static float dot_avx512(const float* a, const float* b, int n) {
    __m512 acc = _mm512_setzero_ps();
    int i = 0;
    for (; i + 16 <= n; i += 16) acc = _mm512_fmadd_ps(_mm512_loadu_ps(a + i), _mm512_loadu_ps(b + i), acc);
    if (i < n) {  // the tail under a mask: no scalar loop
        const __mmask16 m = __mmask16((1u << (n - i)) - 1);
        acc = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(m, a + i), _mm512_maskz_loadu_ps(m, b + i), acc);
    }
    return _mm512_reduce_add_ps(acc);
}
// --8<-- [end:dot_avx512]
__attribute__((target("avx512f"))) static void axpy_avx512(float* y, float a, const float* x, int n) {
    const __m512 va = _mm512_set1_ps(a);
    int i = 0;
    for (; i + 16 <= n; i += 16) _mm512_storeu_ps(y + i, _mm512_fmadd_ps(va, _mm512_loadu_ps(x + i), _mm512_loadu_ps(y + i)));
    if (i < n) {
        const __mmask16 m = __mmask16((1u << (n - i)) - 1);
        _mm512_mask_storeu_ps(y + i, m, _mm512_fmadd_ps(va, _mm512_maskz_loadu_ps(m, x + i), _mm512_maskz_loadu_ps(m, y + i)));
    }
}
__attribute__((target("avx512f"))) static void attention_v3(const float* q, const float* k, const float* v, float* out,
                                                            const AttentionShape& s, ThreadPool& pool) {
    attention_threaded(q, k, v, out, s, pool, dot_avx512, axpy_avx512);
}
#endif

// ---- the version table, slowest to fastest ----
static const detail::OpVersion<AttentionFn> kAttentionVersions[] = {
    {"v0_scalar", "line-by-line port of the lesson, one thread", attention_v0, detail::cpu_any},
    {"v1_threads", "(token, head) pairs spread over the thread pool", attention_v1, detail::cpu_any},
#if defined(__x86_64__) || defined(_M_X64)
    {"v2_avx2", "dot product and weighted sum 8 floats at a time (FMA)", attention_v2, detail::cpu_avx2},
    {"v3_avx512", "the same 16 floats at a time, masked tails", attention_v3, detail::cpu_avx512},
#endif
#if defined(__aarch64__)
    {"v2_neon", "dot product and weighted sum 4 floats at a time (aarch64)", attention_neon, detail::cpu_neon},  // attention_neon.cpp
#endif
};

static void check_shape(const AttentionShape& s) {
    if (s.n_tok < 1 || s.pos < 0 || s.n_head < 1 || s.n_head_kv < 1 || s.head_dim < 1 || s.n_head % s.n_head_kv)
        throw std::invalid_argument("attention: bad shape (need n_tok >= 1, pos >= 0, n_head a multiple of n_head_kv)");
}

void attention(const float* q, const float* k, const float* v, float* out, const AttentionShape& s, ThreadPool& pool) {
    static const AttentionFn best = detail::best_version(kAttentionVersions).fn;
    check_shape(s);
    best(q, k, v, out, s, pool);
}

void attention_v(const std::string& version, const float* q, const float* k, const float* v, float* out,
                 const AttentionShape& s, ThreadPool& pool) {
    check_shape(s);
    detail::find_version(kAttentionVersions, version, "attention").fn(q, k, v, out, s, pool);
}

std::vector<VersionInfo> attention_versions() { return detail::describe(kAttentionVersions); }
std::string attention_active() { return detail::best_version(kAttentionVersions).name; }

}  // namespace ll
