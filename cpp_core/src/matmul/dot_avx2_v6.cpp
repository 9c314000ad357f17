// matmul/dot_avx2_v6.cpp -- v6's float-activation kernels for CPUs with AVX2 but no AVX-512.
// The same idea as matmul/dot_avx512_v6_v8.cpp with 8-float registers: a block of 32 weights is
// dequantized into 4 registers (numpy's exact floats: multiply, then add) and used for up to 4 tokens
// (AVX2 has 16 vector registers: 4 tokens x 2 accumulators + 4 weight registers + temporaries).
#if defined(__x86_64__) || defined(__i386__)
#include "matmul/blocks.h"
#include "cpu/simd_x86.h"

namespace ll {

enum F32TiledTypeAvx2 { F32A_Q4_0, F32A_Q4_1, F32A_Q8_0 };

// 16 bytes -> 2 x 8 int32 (unsigned or signed bytes)
LL_AVX2 static inline void widen16(__m128i b, bool is_signed, __m256i* lo, __m256i* hi) {
    *lo = is_signed ? _mm256_cvtepi8_epi32(b) : _mm256_cvtepu8_epi32(b);
    *hi = is_signed ? _mm256_cvtepi8_epi32(_mm_srli_si128(b, 8)) : _mm256_cvtepu8_epi32(_mm_srli_si128(b, 8));
}

template <int NT, int TYPE>
LL_AVX2 static void f32_tiled_avx2(int64_t n, const uint8_t* w, const float* const* xs, float* y) {
    constexpr int kBlockBytes = TYPE == F32A_Q4_0 ? 18 : TYPE == F32A_Q4_1 ? 20 : 34;
    const int64_t nb = n / QK;
    const __m128i low4 = _mm_set1_epi8(0x0F);
    __m256 acc0[NT], acc1[NT];
    for (int t = 0; t < NT; t++) acc0[t] = acc1[t] = _mm256_setzero_ps();
    for (int64_t i = 0; i < nb; i++) {
        const uint8_t* block = w + i * kBlockBytes;
        uint16_t d16;
        std::memcpy(&d16, block, 2);
        const __m256 d = _mm256_set1_ps(fp16_to_fp32_f16c(d16));
        __m256i q[4];  // elements 0-7, 8-15, 16-23, 24-31 as int32
        if (TYPE == F32A_Q8_0) {
            widen16(_mm_loadu_si128(reinterpret_cast<const __m128i*>(block + 2)), true, &q[0], &q[1]);
            widen16(_mm_loadu_si128(reinterpret_cast<const __m128i*>(block + 18)), true, &q[2], &q[3]);
        } else {
            const __m128i packed = _mm_loadu_si128(reinterpret_cast<const __m128i*>(block + (TYPE == F32A_Q4_1 ? 4 : 2)));
            widen16(_mm_and_si128(packed, low4), false, &q[0], &q[1]);
            widen16(_mm_and_si128(_mm_srli_epi16(packed, 4), low4), false, &q[2], &q[3]);
            if (TYPE == F32A_Q4_0)
                for (int k = 0; k < 4; k++) q[k] = _mm256_sub_epi32(q[k], _mm256_set1_epi32(8));
        }
        __m256 wf[4];
        for (int k = 0; k < 4; k++) wf[k] = _mm256_mul_ps(d, _mm256_cvtepi32_ps(q[k]));
        if (TYPE == F32A_Q4_1) {
            uint16_t m16;
            std::memcpy(&m16, block + 2, 2);
            const __m256 m = _mm256_set1_ps(fp16_to_fp32_f16c(m16));
            for (int k = 0; k < 4; k++) wf[k] = _mm256_add_ps(wf[k], m);
        }
        for (int t = 0; t < NT; t++) {
            const float* x = xs[t] + QK * i;
            acc0[t] = _mm256_fmadd_ps(wf[0], _mm256_loadu_ps(x), acc0[t]);
            acc1[t] = _mm256_fmadd_ps(wf[1], _mm256_loadu_ps(x + 8), acc1[t]);
            acc0[t] = _mm256_fmadd_ps(wf[2], _mm256_loadu_ps(x + 16), acc0[t]);
            acc1[t] = _mm256_fmadd_ps(wf[3], _mm256_loadu_ps(x + 24), acc1[t]);
        }
    }
    for (int t = 0; t < NT; t++) y[t] = hsum_f32x8(_mm256_add_ps(acc0[t], acc1[t]));
}

#define LL_DISPATCH_NT(TYPE)                                           \
    switch (n_tok) {                                                   \
        case 1: return f32_tiled_avx2<1, TYPE>(n, w, xs, y);           \
        case 2: return f32_tiled_avx2<2, TYPE>(n, w, xs, y);           \
        case 3: return f32_tiled_avx2<3, TYPE>(n, w, xs, y);           \
        default: return f32_tiled_avx2<4, TYPE>(n, w, xs, y);          \
    }

// y[t] = dot(W row, xs[t]) for 1 <= n_tok <= 4 float32 token rows
void dot_q4_0_f32tiled_avx2(int64_t n, const uint8_t* w, const float* const* xs, int n_tok, float* y) { LL_DISPATCH_NT(F32A_Q4_0) }
void dot_q4_1_f32tiled_avx2(int64_t n, const uint8_t* w, const float* const* xs, int n_tok, float* y) { LL_DISPATCH_NT(F32A_Q4_1) }
void dot_q8_0_f32tiled_avx2(int64_t n, const uint8_t* w, const float* const* xs, int n_tok, float* y) { LL_DISPATCH_NT(F32A_Q8_0) }
#undef LL_DISPATCH_NT

}  // namespace ll
#endif
