// ops/swiglu.cpp -- the SwiGLU gate of the feed-forward block (the lesson: lessons/l07_swiglu.py).
//   out[i] = silu(gate[i]) * up[i],   silu(g) = g / (1 + exp(-g))
#include <cmath>

#include "kernels.h"
#include "kernels_neon.h"  // aarch64 versions (empty elsewhere)
#include "ops/simd_math.h"

namespace ll {

using SwigluFn = void (*)(const float*, const float*, float*, int64_t);

// ---- v0: scalar ----
// --8<-- [start:swiglu_v0]
static void swiglu_v0(const float* gate, const float* up, float* out, int64_t n) {
    for (int64_t i = 0; i < n; i++) out[i] = gate[i] / (1.0f + std::exp(-gate[i])) * up[i];
}
// --8<-- [end:swiglu_v0]

#if defined(__x86_64__) || defined(__i386__)
// ---- v1: AVX2 with a vector exp (ops/simd_math.h): libm's expf is the whole cost of v0 ----
// --8<-- [start:swiglu_v1]
__attribute__((target("avx2,fma"))) static void swiglu_v1_avx2(const float* gate, const float* up, float* out, int64_t n) {
    const __m256 one = _mm256_set1_ps(1.0f);
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) {
        const __m256 g = _mm256_loadu_ps(gate + i);
        const __m256 e = exp8_avx2(_mm256_sub_ps(_mm256_setzero_ps(), g));           // exp(-g)
        const __m256 silu = _mm256_div_ps(g, _mm256_add_ps(one, e));                  // g / (1 + exp(-g))
        _mm256_storeu_ps(out + i, _mm256_mul_ps(silu, _mm256_loadu_ps(up + i)));
    }
    for (; i < n; i++) out[i] = gate[i] / (1.0f + std::exp(-gate[i])) * up[i];
}
// --8<-- [end:swiglu_v1]

// ---- v2: AVX-512, masked tail ----
__attribute__((target("avx512f"))) static void swiglu_v2_avx512(const float* gate, const float* up, float* out, int64_t n) {
    const __m512 one = _mm512_set1_ps(1.0f);
    for (int64_t i = 0; i < n; i += 16) {
        const __mmask16 m = n - i >= 16 ? __mmask16(0xffff) : __mmask16((1u << (n - i)) - 1);
        const __m512 g = _mm512_maskz_loadu_ps(m, gate + i);
        const __m512 e = exp16_avx512(_mm512_sub_ps(_mm512_setzero_ps(), g));
        const __m512 silu = _mm512_div_ps(g, _mm512_add_ps(one, e));
        _mm512_mask_storeu_ps(out + i, m, _mm512_mul_ps(silu, _mm512_maskz_loadu_ps(m, up + i)));
    }
}
#endif

static const detail::OpVersion<SwigluFn> kSwigluVersions[] = {
    {"v0_scalar", "line-by-line port of the lesson", swiglu_v0, detail::cpu_any},
#if defined(__x86_64__) || defined(__i386__)
    {"v1_avx2", "8 lanes and a polynomial exp", swiglu_v1_avx2, detail::cpu_avx2},
    {"v2_avx512", "16 lanes, masked tail", swiglu_v2_avx512, detail::cpu_avx512},
#endif
#if defined(__aarch64__)
    {"v1_neon", "4 lanes and a polynomial exp (aarch64)", swiglu_neon, detail::cpu_neon},  // ops/neon_v1.cpp
#endif
};

void swiglu(const float* gate, const float* up, float* out, int64_t n) {
    static const SwigluFn best = detail::best_version(kSwigluVersions).fn;
    best(gate, up, out, n);
}
void swiglu_v(const std::string& version, const float* gate, const float* up, float* out, int64_t n) {
    detail::find_version(kSwigluVersions, version, "swiglu").fn(gate, up, out, n);
}
std::vector<VersionInfo> detail::swiglu_versions() { return describe(kSwigluVersions); }
std::string detail::swiglu_active() { return best_version(kSwigluVersions).name; }

}  // namespace ll
