// ops/softmax.cpp -- softmax over one row of attention scores, in place (the lesson: lessons/l06_attention.py).
//   x[i] = exp(x[i] - max(x)) / sum_j exp(x[j] - max(x))      (subtracting the max keeps exp from overflowing;
//   a -inf score, the causal mask, becomes exactly 0)
#include <cmath>
#include <limits>

#include "kernels.h"
#include "kernels_neon.h"  // aarch64 versions (empty elsewhere)
#include "ops/simd_math.h"

namespace ll {

using SoftmaxFn = void (*)(float*, int64_t);

// ---- v0: scalar ----
// --8<-- [start:softmax_v0]
static void softmax_v0(float* x, int64_t n) {
    float max_x = -std::numeric_limits<float>::infinity();
    for (int64_t i = 0; i < n; i++) max_x = std::max(max_x, x[i]);
    double sum = 0.0;
    for (int64_t i = 0; i < n; i++) {
        x[i] = std::exp(x[i] - max_x);
        sum += x[i];
    }
    const float inv_sum = float(1.0 / sum);
    for (int64_t i = 0; i < n; i++) x[i] *= inv_sum;
}
// --8<-- [end:softmax_v0]

#if defined(__x86_64__) || defined(__i386__)
// ---- v1: AVX2: vector max, vector exp, vector sum ----
// --8<-- [start:softmax_v1]
__attribute__((target("avx2,fma"))) static void softmax_v1_avx2(float* x, int64_t n) {
    __m256 vmax = _mm256_set1_ps(-std::numeric_limits<float>::infinity());
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) vmax = _mm256_max_ps(vmax, _mm256_loadu_ps(x + i));
    float max_x = hmax8_avx2(vmax);
    for (; i < n; i++) max_x = std::max(max_x, x[i]);

    const __m256 vmax_x = _mm256_set1_ps(max_x);
    __m256 vsum = _mm256_setzero_ps();
    for (i = 0; i + 8 <= n; i += 8) {
        const __m256 e = exp8_avx2(_mm256_sub_ps(_mm256_loadu_ps(x + i), vmax_x));
        _mm256_storeu_ps(x + i, e);
        vsum = _mm256_add_ps(vsum, e);
    }
    double sum = hsum8_avx2(vsum);
    for (; i < n; i++) {
        x[i] = std::exp(x[i] - max_x);
        sum += x[i];
    }
    const __m256 inv_sum = _mm256_set1_ps(float(1.0 / sum));
    for (i = 0; i + 8 <= n; i += 8) _mm256_storeu_ps(x + i, _mm256_mul_ps(_mm256_loadu_ps(x + i), inv_sum));
    for (; i < n; i++) x[i] *= float(1.0 / sum);
}
// --8<-- [end:softmax_v1]

// ---- v2: AVX-512, masked tails (masked-off lanes read as -inf, so they add exp(-inf) = 0) ----
__attribute__((target("avx512f"))) static void softmax_v2_avx512(float* x, int64_t n) {
    const __m512 neg_inf = _mm512_set1_ps(-std::numeric_limits<float>::infinity());
    __m512 vmax = neg_inf;
    for (int64_t i = 0; i < n; i += 16) {
        const __mmask16 m = n - i >= 16 ? __mmask16(0xffff) : __mmask16((1u << (n - i)) - 1);
        vmax = _mm512_max_ps(vmax, _mm512_mask_loadu_ps(neg_inf, m, x + i));
    }
    const __m512 vmax_x = _mm512_set1_ps(_mm512_reduce_max_ps(vmax));
    __m512 vsum = _mm512_setzero_ps();
    for (int64_t i = 0; i < n; i += 16) {
        const __mmask16 m = n - i >= 16 ? __mmask16(0xffff) : __mmask16((1u << (n - i)) - 1);
        const __m512 e = exp16_avx512(_mm512_sub_ps(_mm512_mask_loadu_ps(neg_inf, m, x + i), vmax_x));
        _mm512_mask_storeu_ps(x + i, m, e);
        vsum = _mm512_add_ps(vsum, e);
    }
    const __m512 inv_sum = _mm512_set1_ps(float(1.0 / double(_mm512_reduce_add_ps(vsum))));
    for (int64_t i = 0; i < n; i += 16) {
        const __mmask16 m = n - i >= 16 ? __mmask16(0xffff) : __mmask16((1u << (n - i)) - 1);
        _mm512_mask_storeu_ps(x + i, m, _mm512_mul_ps(_mm512_maskz_loadu_ps(m, x + i), inv_sum));
    }
}
#endif

static const detail::OpVersion<SoftmaxFn> kSoftmaxVersions[] = {
    {"v0_scalar", "line-by-line port of the lesson", softmax_v0, detail::cpu_any},
#if defined(__x86_64__) || defined(__i386__)
    {"v1_avx2", "8 lanes and a polynomial exp", softmax_v1_avx2, detail::cpu_avx2},
    {"v2_avx512", "16 lanes, masked tails", softmax_v2_avx512, detail::cpu_avx512},
#endif
#if defined(__aarch64__)
    {"v1_neon", "4 lanes and a polynomial exp (aarch64)", softmax_neon, detail::cpu_neon},  // ops/neon_v1.cpp
#endif
};

void softmax(float* x, int64_t n) {
    static const SoftmaxFn best = detail::best_version(kSoftmaxVersions).fn;
    best(x, n);
}
void softmax_v(const std::string& version, float* x, int64_t n) {
    detail::find_version(kSoftmaxVersions, version, "softmax").fn(x, n);
}
std::vector<VersionInfo> detail::softmax_versions() { return describe(kSoftmaxVersions); }
std::string detail::softmax_active() { return best_version(kSoftmaxVersions).name; }

}  // namespace ll
