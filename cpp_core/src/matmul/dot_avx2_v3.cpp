// matmul/dot_avx2_v3.cpp -- the dot products of matmul/dot_scalar_v2.cpp, 32 int8 products per instruction (AVX2).
// Each function is compiled for AVX2+FMA+F16C whatever -march says, and called only when cpuid says so.
#if defined(__x86_64__) || defined(__i386__)
#include "matmul/blocks.h"
#include "matmul/kquant_scales.h"
#include "cpu/simd_x86.h"

namespace ll {

// ---- float weights ----
LL_AVX2 float dot_f32_avx2(int64_t n, const uint8_t* w, const void* act) {
    const float* a = static_cast<const float*>(act);
    const float* x = reinterpret_cast<const float*>(w);
    __m256 acc0 = _mm256_setzero_ps(), acc1 = _mm256_setzero_ps();  // two chains hide the FMA latency
    int64_t i = 0;
    for (; i + 16 <= n; i += 16) {
        acc0 = _mm256_fmadd_ps(_mm256_loadu_ps(x + i), _mm256_loadu_ps(a + i), acc0);
        acc1 = _mm256_fmadd_ps(_mm256_loadu_ps(x + i + 8), _mm256_loadu_ps(a + i + 8), acc1);
    }
    float sum = hsum_f32x8(_mm256_add_ps(acc0, acc1));
    for (; i < n; i++) sum += x[i] * a[i];
    return sum;
}

LL_AVX2 float dot_f16_avx2(int64_t n, const uint8_t* w, const void* act) {
    const float* a = static_cast<const float*>(act);
    const uint16_t* h = reinterpret_cast<const uint16_t*>(w);
    __m256 acc = _mm256_setzero_ps();
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) {
        const __m256 x = _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(h + i)));  // 8 halves -> floats
        acc = _mm256_fmadd_ps(x, _mm256_loadu_ps(a + i), acc);
    }
    float sum = hsum_f32x8(acc);
    for (; i < n; i++) sum += fp16_to_fp32(h[i]) * a[i];
    return sum;
}

LL_AVX2 float dot_bf16_avx2(int64_t n, const uint8_t* w, const void* act) {
    const float* a = static_cast<const float*>(act);
    const uint16_t* h = reinterpret_cast<const uint16_t*>(w);
    __m256 acc = _mm256_setzero_ps();
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) {  // bf16 is the top half of a float: widen to 32 bits and shift up
        const __m256i wide = _mm256_cvtepu16_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(h + i)));
        acc = _mm256_fmadd_ps(_mm256_castsi256_ps(_mm256_slli_epi32(wide, 16)), _mm256_loadu_ps(a + i), acc);
    }
    float sum = hsum_f32x8(acc);
    for (; i < n; i++) sum += bf16_to_fp32(h[i]) * a[i];
    return sum;
}

// ---- legacy quants ----
// --8<-- [start:dot_q4_1_avx2]
LL_AVX2 float dot_q4_1_q8_1_avx2(int64_t n, const uint8_t* w, const void* act) {
    const BlockQ4_1* b = reinterpret_cast<const BlockQ4_1*>(w);
    const BlockQ8_1* a = static_cast<const BlockQ8_1*>(act);
    __m256 acc = _mm256_setzero_ps();
    float offsets = 0.0f;  // sum over blocks of m * s_x
    for (int64_t i = 0; i < n / QK; i++) {
        const __m256i qw = nibbles_to_bytes(b[i].qs);                                // 32 x u8 in 0..15
        const __m256i qx = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(a[i].qs));  // 32 x s8
        const __m256 sums = _mm256_cvtepi32_ps(dot_u8s8_x4(qw, qx));                 // 8 partial sums
        const float d = fp16_to_fp32_f16c(b[i].d) * fp16_to_fp32_f16c(a[i].d);
        acc = _mm256_fmadd_ps(_mm256_set1_ps(d), sums, acc);
        offsets += fp16_to_fp32_f16c(b[i].m) * fp16_to_fp32_f16c(a[i].s);
    }
    return hsum_f32x8(acc) + offsets;
}
// --8<-- [end:dot_q4_1_avx2]

LL_AVX2 float dot_q4_0_q8_0_avx2(int64_t n, const uint8_t* w, const void* act) {
    const BlockQ4_0* b = reinterpret_cast<const BlockQ4_0*>(w);
    const BlockQ8_0* a = static_cast<const BlockQ8_0*>(act);
    __m256 acc = _mm256_setzero_ps();
    for (int64_t i = 0; i < n / QK; i++) {
        const __m256i qw = _mm256_sub_epi8(nibbles_to_bytes(b[i].qs), _mm256_set1_epi8(8));  // -8..7
        const __m256i qx = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(a[i].qs));
        const float d = fp16_to_fp32_f16c(b[i].d) * fp16_to_fp32_f16c(a[i].d);
        acc = _mm256_fmadd_ps(_mm256_set1_ps(d), _mm256_cvtepi32_ps(dot_s8s8_x4(qw, qx)), acc);
    }
    return hsum_f32x8(acc);
}

LL_AVX2 float dot_q5_0_q8_0_avx2(int64_t n, const uint8_t* w, const void* act) {
    const BlockQ5_0* b = reinterpret_cast<const BlockQ5_0*>(w);
    const BlockQ8_0* a = static_cast<const BlockQ8_0*>(act);
    __m256 acc = _mm256_setzero_ps();
    for (int64_t i = 0; i < n / QK; i++) {
        const __m256i high = _mm256_and_si256(bits_to_bytes(b[i].qh), _mm256_set1_epi8(0x10));
        const __m256i qw = _mm256_sub_epi8(_mm256_or_si256(nibbles_to_bytes(b[i].qs), high), _mm256_set1_epi8(16));
        const __m256i qx = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(a[i].qs));
        const float d = fp16_to_fp32_f16c(b[i].d) * fp16_to_fp32_f16c(a[i].d);
        acc = _mm256_fmadd_ps(_mm256_set1_ps(d), _mm256_cvtepi32_ps(dot_s8s8_x4(qw, qx)), acc);
    }
    return hsum_f32x8(acc);
}

LL_AVX2 float dot_q5_1_q8_1_avx2(int64_t n, const uint8_t* w, const void* act) {
    const BlockQ5_1* b = reinterpret_cast<const BlockQ5_1*>(w);
    const BlockQ8_1* a = static_cast<const BlockQ8_1*>(act);
    __m256 acc = _mm256_setzero_ps();
    float offsets = 0.0f;
    for (int64_t i = 0; i < n / QK; i++) {
        const __m256i high = _mm256_and_si256(bits_to_bytes(b[i].qh), _mm256_set1_epi8(0x10));
        const __m256i qw = _mm256_or_si256(nibbles_to_bytes(b[i].qs), high);  // 0..31
        const __m256i qx = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(a[i].qs));
        const float d = fp16_to_fp32_f16c(b[i].d) * fp16_to_fp32_f16c(a[i].d);
        acc = _mm256_fmadd_ps(_mm256_set1_ps(d), _mm256_cvtepi32_ps(dot_u8s8_x4(qw, qx)), acc);
        offsets += fp16_to_fp32_f16c(b[i].m) * fp16_to_fp32_f16c(a[i].s);
    }
    return hsum_f32x8(acc) + offsets;
}

LL_AVX2 float dot_q8_0_q8_0_avx2(int64_t n, const uint8_t* w, const void* act) {
    const BlockQ8_0* b = reinterpret_cast<const BlockQ8_0*>(w);
    const BlockQ8_0* a = static_cast<const BlockQ8_0*>(act);
    __m256 acc = _mm256_setzero_ps();
    for (int64_t i = 0; i < n / QK; i++) {
        const __m256i qw = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(b[i].qs));
        const __m256i qx = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(a[i].qs));
        const float d = fp16_to_fp32_f16c(b[i].d) * fp16_to_fp32_f16c(a[i].d);
        acc = _mm256_fmadd_ps(_mm256_set1_ps(d), _mm256_cvtepi32_ps(dot_s8s8_x4(qw, qx)), acc);
    }
    return hsum_f32x8(acc);
}

// ---- k-quants ----
// Q4_K: per 64 elements, 32 bytes of nibbles: the low nibbles are sub-block 2j, the high ones 2j+1.
// The int16 products are weighted by the sub-block's scale inside vpmaddwd (scale in every int16 lane).
// --8<-- [start:dot_q4_k_avx2]
LL_AVX2 float dot_q4_k_q8_k_avx2(int64_t n, const uint8_t* w, const void* act) {
    const BlockQ4_K* b = reinterpret_cast<const BlockQ4_K*>(w);
    const BlockQ8_K* a = static_cast<const BlockQ8_K*>(act);
    const __m256i low4 = _mm256_set1_epi8(0x0F);
    float sum = 0.0f;
    for (int64_t i = 0; i < n / QK_K; i++) {
        uint8_t sc[8], m[8];
        for (int s = 0; s < 8; s++) kquant_scale_min(s, b[i].scales, &sc[s], &m[s]);
        int summ = 0;
        for (int s = 0; s < 8; s++) summ += m[s] * (a[i].bsums[2 * s] + a[i].bsums[2 * s + 1]);
        __m256i sumi = _mm256_setzero_si256();
        for (int j = 0; j < 4; j++) {
            const __m256i q4 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(b[i].qs + 32 * j));
            const __m256i q4l = _mm256_and_si256(q4, low4), q4h = _mm256_and_si256(_mm256_srli_epi16(q4, 4), low4);
            const __m256i q8l = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(a[i].qs + 64 * j));
            const __m256i q8h = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(a[i].qs + 64 * j + 32));
            const __m256i pl = _mm256_madd_epi16(_mm256_maddubs_epi16(q4l, q8l), _mm256_set1_epi16(sc[2 * j]));
            const __m256i ph = _mm256_madd_epi16(_mm256_maddubs_epi16(q4h, q8h), _mm256_set1_epi16(sc[2 * j + 1]));
            sumi = _mm256_add_epi32(sumi, _mm256_add_epi32(pl, ph));
        }
        sum += a[i].d * (fp16_to_fp32_f16c(b[i].d) * float(hsum_i32x8(sumi)) - fp16_to_fp32_f16c(b[i].dmin) * float(summ));
    }
    return sum;
}
// --8<-- [end:dot_q4_k_avx2]

// Q6_K: rebuild the 6-bit q (0..63) from ql's nibble and qh's 2 bits, multiply unsigned, and take the
// -32 offset out afterwards with the activation's block sums: sum (q - 32) x = sum q x - 32 sum x.
LL_AVX2 float dot_q6_k_q8_k_avx2(int64_t n, const uint8_t* w, const void* act) {
    const BlockQ6_K* b = reinterpret_cast<const BlockQ6_K*>(w);
    const BlockQ8_K* a = static_cast<const BlockQ8_K*>(act);
    const __m256i low4 = _mm256_set1_epi8(0x0F), low2 = _mm256_set1_epi8(0x03);
    float sum = 0.0f;
    for (int64_t i = 0; i < n / QK_K; i++) {
        int offset = 0;
        for (int s = 0; s < 16; s++) offset += b[i].scales[s] * a[i].bsums[s];
        __m256i sumi = _mm256_setzero_si256();
        for (int half = 0; half < 2; half++) {
            const __m256i ql0 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(b[i].ql + 64 * half));
            const __m256i ql1 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(b[i].ql + 64 * half + 32));
            const __m256i qh = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(b[i].qh + 32 * half));
            __m256i q[4];
            q[0] = _mm256_or_si256(_mm256_and_si256(ql0, low4), _mm256_slli_epi16(_mm256_and_si256(qh, low2), 4));
            q[1] = _mm256_or_si256(_mm256_and_si256(ql1, low4),
                                   _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(qh, 2), low2), 4));
            q[2] = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(ql0, 4), low4),
                                   _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(qh, 4), low2), 4));
            q[3] = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(ql1, 4), low4),
                                   _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(qh, 6), low2), 4));
            for (int k = 0; k < 4; k++) {
                const int s = 8 * half + 2 * k;  // the two sub-blocks of 16 these 32 elements span
                const __m256i x = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(a[i].qs + 128 * half + 32 * k));
                const __m256i scales = _mm256_set_m128i(_mm_set1_epi16(b[i].scales[s + 1]), _mm_set1_epi16(b[i].scales[s]));
                sumi = _mm256_add_epi32(sumi, _mm256_madd_epi16(_mm256_maddubs_epi16(q[k], x), scales));
            }
        }
        sum += a[i].d * fp16_to_fp32_f16c(b[i].d) * float(hsum_i32x8(sumi) - 32 * offset);
    }
    return sum;
}

}  // namespace ll
#endif
