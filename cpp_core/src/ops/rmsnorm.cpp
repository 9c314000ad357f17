// ops/rmsnorm.cpp -- RMSNorm of one row, numbered versions (the lesson: lessons/l04_rmsnorm.py).
//   out[i] = x[i] / sqrt(mean(x^2) + eps) * weight[i]
#include <cmath>

#include "kernels.h"
#include "kernels_neon.h"  // aarch64 versions (empty elsewhere)
#include "ops/simd_math.h"

namespace ll {

using RmsnormFn = void (*)(const float*, const float*, float*, int64_t, float);

// ---- v0: scalar, line by line from the lesson ----
// --8<-- [start:rmsnorm_v0]
static void rmsnorm_v0(const float* x, const float* weight, float* out, int64_t n, float eps) {
    double sum_sq = 0.0;  // double: 1536 squares summed in float would lose ~3 digits
    for (int64_t i = 0; i < n; i++) sum_sq += double(x[i]) * x[i];
    const float scale = float(1.0 / std::sqrt(sum_sq / double(n) + eps));
    for (int64_t i = 0; i < n; i++) out[i] = x[i] * scale * weight[i];
}
// --8<-- [end:rmsnorm_v0]

#if defined(__x86_64__) || defined(__i386__)
// ---- v1: AVX2, 8 lanes of partial sums (float lanes, so ~n/8 terms each) ----
// --8<-- [start:rmsnorm_v1]
__attribute__((target("avx2,fma"))) static void rmsnorm_v1_avx2(const float* x, const float* weight, float* out,
                                                                 int64_t n, float eps) {
    __m256 acc = _mm256_setzero_ps();
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) {
        const __m256 v = _mm256_loadu_ps(x + i);
        acc = _mm256_fmadd_ps(v, v, acc);
    }
    double sum_sq = hsum8_avx2(acc);
    for (; i < n; i++) sum_sq += double(x[i]) * x[i];  // the tail that does not fill a vector
    const float scale = float(1.0 / std::sqrt(sum_sq / double(n) + eps));
    const __m256 vscale = _mm256_set1_ps(scale);
    for (i = 0; i + 8 <= n; i += 8)
        _mm256_storeu_ps(out + i, _mm256_mul_ps(_mm256_mul_ps(_mm256_loadu_ps(x + i), vscale), _mm256_loadu_ps(weight + i)));
    for (; i < n; i++) out[i] = x[i] * scale * weight[i];
}
// --8<-- [end:rmsnorm_v1]

// ---- v2: AVX-512, 16 lanes; the tail is a masked load instead of a scalar loop ----
__attribute__((target("avx512f"))) static void rmsnorm_v2_avx512(const float* x, const float* weight, float* out,
                                                                  int64_t n, float eps) {
    __m512 acc = _mm512_setzero_ps();
    for (int64_t i = 0; i < n; i += 16) {
        const __mmask16 m = n - i >= 16 ? __mmask16(0xffff) : __mmask16((1u << (n - i)) - 1);
        const __m512 v = _mm512_maskz_loadu_ps(m, x + i);
        acc = _mm512_fmadd_ps(v, v, acc);
    }
    const double sum_sq = _mm512_reduce_add_ps(acc);
    const __m512 vscale = _mm512_set1_ps(float(1.0 / std::sqrt(sum_sq / double(n) + eps)));
    for (int64_t i = 0; i < n; i += 16) {
        const __mmask16 m = n - i >= 16 ? __mmask16(0xffff) : __mmask16((1u << (n - i)) - 1);
        const __m512 v = _mm512_mul_ps(_mm512_maskz_loadu_ps(m, x + i), vscale);
        _mm512_mask_storeu_ps(out + i, m, _mm512_mul_ps(v, _mm512_maskz_loadu_ps(m, weight + i)));
    }
}
#endif

static const detail::OpVersion<RmsnormFn> kRmsnormVersions[] = {
    {"v0_scalar", "line-by-line port of the lesson", rmsnorm_v0, detail::cpu_any},
#if defined(__x86_64__) || defined(__i386__)
    {"v1_avx2", "8 float lanes with FMA", rmsnorm_v1_avx2, detail::cpu_avx2},
    {"v2_avx512", "16 lanes, masked tail", rmsnorm_v2_avx512, detail::cpu_avx512},
#endif
#if defined(__aarch64__)
    {"v1_neon", "4 float lanes with FMA (aarch64)", rmsnorm_neon, detail::cpu_neon},  // ops/neon_v1.cpp
#endif
};

void rmsnorm(const float* x, const float* weight, float* out, int64_t n, float eps) {
    static const RmsnormFn best = detail::best_version(kRmsnormVersions).fn;
    best(x, weight, out, n, eps);
}
void rmsnorm_v(const std::string& version, const float* x, const float* weight, float* out, int64_t n, float eps) {
    detail::find_version(kRmsnormVersions, version, "rmsnorm").fn(x, weight, out, n, eps);
}
std::vector<VersionInfo> detail::rmsnorm_versions() { return describe(kRmsnormVersions); }
std::string detail::rmsnorm_active() { return best_version(kRmsnormVersions).name; }

}  // namespace ll
