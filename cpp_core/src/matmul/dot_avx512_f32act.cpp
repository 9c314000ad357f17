// matmul/dot_avx512_f32act.cpp -- the other road for decoding: keep x in float32, dequantize each weight
// block into registers and FMA it with x ("dequantize-and-FMA"). No activation rounding at all, but
// 16 int->float conversions per 16 weights where the int8 path does 64 products per instruction.
// quant_matmul v4b uses these for Q4_1 and Q8_0; docs/20-kernels-matmul.md compares the two.
#if defined(__x86_64__) || defined(__i386__)
#include "matmul/blocks.h"
#include "cpu/simd_x86.h"

namespace ll {

// x: n floats; x_block_sums: sum of x over each block of 32 (for Q4_1's offset m).
// --8<-- [start:q4_1_f32act]
LL_AVX512 float dot_q4_1_f32act_avx512(int64_t n, const uint8_t* w, const float* x, const float* x_block_sums) {
    const BlockQ4_1* b = reinterpret_cast<const BlockQ4_1*>(w);
    const __m128i low4 = _mm_set1_epi8(0x0F);
    __m512 acc = _mm512_setzero_ps();
    float offsets = 0.0f;
    for (int64_t i = 0; i < n / QK; i++, x += QK) {
        const __m128i packed = _mm_loadu_si128(reinterpret_cast<const __m128i*>(b[i].qs));
        const __m512 lo = _mm512_cvtepi32_ps(_mm512_cvtepu8_epi32(_mm_and_si128(packed, low4)));                     // q 0-15
        const __m512 hi = _mm512_cvtepi32_ps(_mm512_cvtepu8_epi32(_mm_and_si128(_mm_srli_epi16(packed, 4), low4))); // q 16-31
        const __m512 qx = _mm512_fmadd_ps(hi, _mm512_loadu_ps(x + 16), _mm512_mul_ps(lo, _mm512_loadu_ps(x)));
        acc = _mm512_fmadd_ps(_mm512_set1_ps(fp16_to_fp32_f16c(b[i].d)), qx, acc);   // d * sum q x
        offsets += fp16_to_fp32_f16c(b[i].m) * x_block_sums[i];                       // m * sum x
    }
    return _mm512_reduce_add_ps(acc) + offsets;
}
// --8<-- [end:q4_1_f32act]

LL_AVX512 float dot_q8_0_f32act_avx512(int64_t n, const uint8_t* w, const float* x, const float*) {
    const BlockQ8_0* b = reinterpret_cast<const BlockQ8_0*>(w);
    __m512 acc = _mm512_setzero_ps();
    for (int64_t i = 0; i < n / QK; i++, x += QK) {
        const __m512 lo = _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(b[i].qs))));
        const __m512 hi = _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(b[i].qs + 16))));
        const __m512 qx = _mm512_fmadd_ps(hi, _mm512_loadu_ps(x + 16), _mm512_mul_ps(lo, _mm512_loadu_ps(x)));
        acc = _mm512_fmadd_ps(_mm512_set1_ps(fp16_to_fp32_f16c(b[i].d)), qx, acc);
    }
    return _mm512_reduce_add_ps(acc);
}

}  // namespace ll
#endif
