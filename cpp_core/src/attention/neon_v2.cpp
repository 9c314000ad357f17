// attention/neon_v2.cpp -- attention's two inner loops (q . k, and out += p v) with NEON, 4 floats at a time.
//
// The x86 v2/v3 idea on aarch64: the (token, head) pairs spread over the thread pool as in v1, and the
// dot product and weighted sum over head_dim done with 4-lane FMAs (two chains for the dot product).
// The skeleton below is attention/attention.cpp's attend_one, repeated here so that file keeps its x86 versions
// alone. A float16 cache is widened 4 values at a time (vcvt_f32_f16). Checked against v0 under qemu
// (tests/native/neon_check.cpp); not timed on ARM hardware.
#if defined(__aarch64__)
#include <arm_neon.h>

#include <cmath>
#include <cstring>
#include <vector>

#include "kernels_neon.h"

namespace ll {

// 4 cached values as floats (one at a time: kv_value, model/model.h)
static inline float32x4_t load4(const float* p) { return vld1q_f32(p); }
static inline float32x4_t load4(const uint16_t* p) { return vcvt_f32_f16(vreinterpret_f16_u16(vld1_u16(p))); }

template <class T>
static float dot_neon(const float* a, const T* b, int n) {
    float32x4_t acc0 = vdupq_n_f32(0.0f), acc1 = vdupq_n_f32(0.0f);
    int i = 0;
    for (; i + 8 <= n; i += 8) {
        acc0 = vfmaq_f32(acc0, vld1q_f32(a + i), load4(b + i));
        acc1 = vfmaq_f32(acc1, vld1q_f32(a + i + 4), load4(b + i + 4));
    }
    if (i + 4 <= n) {
        acc0 = vfmaq_f32(acc0, vld1q_f32(a + i), load4(b + i));
        i += 4;
    }
    float s = vaddvq_f32(vaddq_f32(acc0, acc1));
    for (; i < n; i++) s += a[i] * kv_value(b, i);
    return s;
}

template <class T>
static void axpy_neon(float* y, float a, const T* x, int n) {  // y += a x
    const float32x4_t va = vdupq_n_f32(a);
    int i = 0;
    for (; i + 4 <= n; i += 4) vst1q_f32(y + i, vfmaq_f32(vld1q_f32(y + i), va, load4(x + i)));
    for (; i < n; i++) y[i] += a * kv_value(x, i);
}

// One (token t, query head h) pair: scores over positions 0..pos+t, softmax, weighted sum of V.
template <class T>
static void attend_one_neon(const float* q, const T* k_cache, const T* v_cache, float* out,
                            const AttentionShape& s, int t, int h, float* scores) {
    const int group = s.n_head / s.n_head_kv, g = h / group, hd = s.head_dim;
    const T *K = k_cache + g * s.head_stride(), *V = v_cache + g * s.head_stride();  // KV head g: [n_ctx, hd]
    const float scale = 1.0f / std::sqrt(float(hd));
    const float* qh = q + (int64_t(t) * s.n_head + h) * hd;  // [hd]
    const int n_kv = s.pos + t + 1;                           // causal
    for (int j = 0; j < n_kv; j++) scores[j] = dot_neon(qh, K + int64_t(j) * hd, hd) * scale;
    softmax(scores, n_kv);
    float* oh = out + (int64_t(t) * s.n_head + h) * hd;  // [hd]
    std::memset(oh, 0, sizeof(float) * size_t(hd));
    for (int j = 0; j < n_kv; j++) axpy_neon(oh, scores[j], V + int64_t(j) * hd, hd);
}

template <class T>
static void attention_neon_impl(const float* q, const T* k, const T* v, float* out, const AttentionShape& s, ThreadPool& pool) {
    const int h0 = s.first_head(), nh = s.n_heads_computed();  // a decoding team's thread: its heads only
    pool.parallel_for(int64_t(s.n_tok) * nh, [&](int64_t begin, int64_t end) {
        thread_local std::vector<float> scores;  // one per worker, grown with the context
        if (int64_t(scores.size()) < int64_t(s.pos) + s.n_tok) scores.resize(size_t(s.pos + s.n_tok));
        for (int64_t i = begin; i < end; i++)
            attend_one_neon(q, k, v, out, s, int(i / nh), h0 + int(i % nh), scores.data());
    });
}

void attention_neon(const float* q, const void* k, const void* v, float* out, const AttentionShape& s, ThreadPool& pool) {
    with_kv_type(s, k, v, [&](auto K, auto V) { attention_neon_impl(q, K, V, out, s, pool); });
}

}  // namespace ll
#endif
