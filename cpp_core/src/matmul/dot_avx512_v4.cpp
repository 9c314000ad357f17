// matmul/dot_avx512_v4.cpp -- dot products with AVX-512 and VNNI.
// vpdpbusd (_mm512_dpbusd_epi32) multiplies 64 unsigned bytes by 64 signed bytes and adds each group of 4
// products into one of 16 int32 lanes: one instruction for two whole 32-element blocks, where AVX2 needs
// two instructions per block (vpmaddubsw + vpmaddwd) and can saturate in between.
#if defined(__x86_64__) || defined(__i386__)
#include "matmul/blocks.h"
#include "cpu/simd_x86.h"

namespace ll {

LL_AVX512 static inline __m512i join256(__m256i lo, __m256i hi) {
    return _mm512_inserti64x4(_mm512_castsi256_si512(lo), hi, 1);
}
LL_AVX512 static inline __m256i load256(const void* p) { return _mm256_loadu_si256(static_cast<const __m256i*>(p)); }
// 16 float lanes: the first 8 = lo, the last 8 = hi (one scale per block of the pair)
LL_AVX512 static inline __m512 two_scales(float lo, float hi) {
    return _mm512_mask_blend_ps(__mmask16(0xFF00), _mm512_set1_ps(lo), _mm512_set1_ps(hi));
}

// ---- float weights: 16 lanes, masked tail ----
LL_AVX512 float dot_f32_avx512(int64_t n, const uint8_t* w, const void* act) {
    const float* a = static_cast<const float*>(act);
    const float* x = reinterpret_cast<const float*>(w);
    __m512 acc0 = _mm512_setzero_ps(), acc1 = _mm512_setzero_ps();
    int64_t i = 0;
    for (; i + 32 <= n; i += 32) {
        acc0 = _mm512_fmadd_ps(_mm512_loadu_ps(x + i), _mm512_loadu_ps(a + i), acc0);
        acc1 = _mm512_fmadd_ps(_mm512_loadu_ps(x + i + 16), _mm512_loadu_ps(a + i + 16), acc1);
    }
    for (; i < n; i += 16) {
        const __mmask16 m = n - i >= 16 ? __mmask16(0xffff) : __mmask16((1u << (n - i)) - 1);
        acc0 = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(m, x + i), _mm512_maskz_loadu_ps(m, a + i), acc0);
    }
    return _mm512_reduce_add_ps(_mm512_add_ps(acc0, acc1));
}

LL_AVX512 float dot_f16_avx512(int64_t n, const uint8_t* w, const void* act) {
    const float* a = static_cast<const float*>(act);
    const uint16_t* h = reinterpret_cast<const uint16_t*>(w);
    __m512 acc = _mm512_setzero_ps();
    for (int64_t i = 0; i < n; i += 16) {
        const __mmask16 m = n - i >= 16 ? __mmask16(0xffff) : __mmask16((1u << (n - i)) - 1);
        const __m512 x = _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(m, h + i));
        acc = _mm512_fmadd_ps(x, _mm512_maskz_loadu_ps(m, a + i), acc);
    }
    return _mm512_reduce_add_ps(acc);
}

LL_AVX512 float dot_bf16_avx512(int64_t n, const uint8_t* w, const void* act) {
    const float* a = static_cast<const float*>(act);
    const uint16_t* h = reinterpret_cast<const uint16_t*>(w);
    __m512 acc = _mm512_setzero_ps();
    for (int64_t i = 0; i < n; i += 16) {
        const __mmask16 m = n - i >= 16 ? __mmask16(0xffff) : __mmask16((1u << (n - i)) - 1);
        const __m512i wide = _mm512_cvtepu16_epi32(_mm256_maskz_loadu_epi16(m, h + i));
        acc = _mm512_fmadd_ps(_mm512_castsi512_ps(_mm512_slli_epi32(wide, 16)), _mm512_maskz_loadu_ps(m, a + i), acc);
    }
    return _mm512_reduce_add_ps(acc);
}

// ---- legacy quants, two blocks per vpdpbusd ----
// --8<-- [start:dot_q4_1_avx512]
LL_AVX512 float dot_q4_1_q8_1_avx512(int64_t n, const uint8_t* w, const void* act) {
    const BlockQ4_1* b = reinterpret_cast<const BlockQ4_1*>(w);
    const BlockQ8_1* a = static_cast<const BlockQ8_1*>(act);
    const int64_t nb = n / QK;
    __m512 acc = _mm512_setzero_ps();
    float offsets = 0.0f;
    int64_t i = 0;
    for (; i + 2 <= nb; i += 2) {
        const __m512i qw = join256(nibbles_to_bytes(b[i].qs), nibbles_to_bytes(b[i + 1].qs));  // 64 x u8
        const __m512i qx = join256(load256(a[i].qs), load256(a[i + 1].qs));                     // 64 x s8
        const __m512i sums = _mm512_dpbusd_epi32(_mm512_setzero_si512(), qw, qx);               // 16 x int32
        const __m512 d = two_scales(fp16_to_fp32_f16c(b[i].d) * fp16_to_fp32_f16c(a[i].d),
                                    fp16_to_fp32_f16c(b[i + 1].d) * fp16_to_fp32_f16c(a[i + 1].d));
        acc = _mm512_fmadd_ps(_mm512_cvtepi32_ps(sums), d, acc);
        offsets += fp16_to_fp32_f16c(b[i].m) * fp16_to_fp32_f16c(a[i].s) +
                   fp16_to_fp32_f16c(b[i + 1].m) * fp16_to_fp32_f16c(a[i + 1].s);
    }
    float sum = _mm512_reduce_add_ps(acc) + offsets;
    for (; i < nb; i++) {  // an odd last block: the 256-bit form of the same instruction
        const __m256i sums = _mm256_dpbusd_epi32(_mm256_setzero_si256(), nibbles_to_bytes(b[i].qs), load256(a[i].qs));
        sum += fp16_to_fp32_f16c(b[i].d) * fp16_to_fp32_f16c(a[i].d) * float(hsum_i32x8(sums)) +
               fp16_to_fp32_f16c(b[i].m) * fp16_to_fp32_f16c(a[i].s);
    }
    return sum;
}
// --8<-- [end:dot_q4_1_avx512]

// Q4_0: vpdpbusd wants an unsigned side, so use q (0..15) and subtract 8 * sum(x) with a second
// vpdpbusd against a vector of 8s: sum (q - 8) x = sum q x - sum 8 x.
LL_AVX512 float dot_q4_0_q8_0_avx512(int64_t n, const uint8_t* w, const void* act) {
    const BlockQ4_0* b = reinterpret_cast<const BlockQ4_0*>(w);
    const BlockQ8_0* a = static_cast<const BlockQ8_0*>(act);
    const int64_t nb = n / QK;
    const __m512i eights = _mm512_set1_epi8(8);
    __m512 acc = _mm512_setzero_ps();
    int64_t i = 0;
    for (; i + 2 <= nb; i += 2) {
        const __m512i qw = join256(nibbles_to_bytes(b[i].qs), nibbles_to_bytes(b[i + 1].qs));
        const __m512i qx = join256(load256(a[i].qs), load256(a[i + 1].qs));
        const __m512i sums = _mm512_sub_epi32(_mm512_dpbusd_epi32(_mm512_setzero_si512(), qw, qx),
                                              _mm512_dpbusd_epi32(_mm512_setzero_si512(), eights, qx));
        const __m512 d = two_scales(fp16_to_fp32_f16c(b[i].d) * fp16_to_fp32_f16c(a[i].d),
                                    fp16_to_fp32_f16c(b[i + 1].d) * fp16_to_fp32_f16c(a[i + 1].d));
        acc = _mm512_fmadd_ps(_mm512_cvtepi32_ps(sums), d, acc);
    }
    float sum = _mm512_reduce_add_ps(acc);
    for (; i < nb; i++) {
        const __m256i qw = _mm256_sub_epi8(nibbles_to_bytes(b[i].qs), _mm256_set1_epi8(8));
        sum += fp16_to_fp32_f16c(b[i].d) * fp16_to_fp32_f16c(a[i].d) * float(hsum_i32x8(dot_s8s8_x4(qw, load256(a[i].qs))));
    }
    return sum;
}

// Q8_0: both sides signed. Flip the weight's sign bit (w + 128, now unsigned) and subtract 128 * sum(x).
LL_AVX512 float dot_q8_0_q8_0_avx512(int64_t n, const uint8_t* w, const void* act) {
    const BlockQ8_0* b = reinterpret_cast<const BlockQ8_0*>(w);
    const BlockQ8_0* a = static_cast<const BlockQ8_0*>(act);
    const int64_t nb = n / QK;
    const __m512i bias = _mm512_set1_epi8(char(0x80));
    __m512 acc = _mm512_setzero_ps();
    int64_t i = 0;
    for (; i + 2 <= nb; i += 2) {
        const __m512i qw = _mm512_xor_si512(join256(load256(b[i].qs), load256(b[i + 1].qs)), bias);  // w + 128
        const __m512i qx = join256(load256(a[i].qs), load256(a[i + 1].qs));
        const __m512i sums = _mm512_sub_epi32(_mm512_dpbusd_epi32(_mm512_setzero_si512(), qw, qx),
                                              _mm512_dpbusd_epi32(_mm512_setzero_si512(), bias, qx));
        const __m512 d = two_scales(fp16_to_fp32_f16c(b[i].d) * fp16_to_fp32_f16c(a[i].d),
                                    fp16_to_fp32_f16c(b[i + 1].d) * fp16_to_fp32_f16c(a[i + 1].d));
        acc = _mm512_fmadd_ps(_mm512_cvtepi32_ps(sums), d, acc);
    }
    float sum = _mm512_reduce_add_ps(acc);
    for (; i < nb; i++)
        sum += fp16_to_fp32_f16c(b[i].d) * fp16_to_fp32_f16c(a[i].d) *
               float(hsum_i32x8(dot_s8s8_x4(load256(b[i].qs), load256(a[i].qs))));
    return sum;
}

}  // namespace ll
#endif
