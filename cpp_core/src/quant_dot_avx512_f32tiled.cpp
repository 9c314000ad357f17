// quant_dot_avx512_f32tiled.cpp -- quant_matmul v6's kernels: float32 activations, tiled over tokens.
//
// Each weight block is dequantized in registers into the very floats the numpy lesson computes
// (Q4_1: d*q + m, Q4_0: d*(q-8), Q8_0: d*q, multiply then add, no FMA, so the weights are bit-identical)
// and then multiplied into up to 8 tokens with FMAs. There is no activation rounding at all: the result
// is the F32 model's, up to float summation order. Unpacking costs ~10 instructions per 32 weights but is
// shared by the tile's tokens, and each token then costs 2 FMAs per 32 weights, so for prompts this is
// within ~1.5x of the int8 kernels, and for one token it is bound by memory like them.
#if defined(__x86_64__) || defined(__i386__)
#include <algorithm>

#include "quant_blocks.h"
#include "quant_simd_x86.h"

namespace ll {

enum F32TiledType { F32T_Q4_0, F32T_Q4_1, F32T_Q8_0 };

// --8<-- [start:f32_tiled]
template <int NT, int TYPE>
LL_AVX512 static void f32_tiled(int64_t n, const uint8_t* w, const float* const* xs, float* y) {
    constexpr int kBlockBytes = TYPE == F32T_Q4_0 ? 18 : TYPE == F32T_Q4_1 ? 20 : 34;
    const int64_t nb = n / QK;
    const __m128i low4 = _mm_set1_epi8(0x0F);
    const __m512i offsets = _mm512_mullo_epi32(_mm512_set_epi32(15, 14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0),
                                               _mm512_set1_epi32(kBlockBytes));
    __m512 acc_lo[NT], acc_hi[NT];  // two chains per token: the FMA latency is hidden even for one token
    for (int t = 0; t < NT; t++) acc_lo[t] = acc_hi[t] = _mm512_setzero_ps();
    alignas(64) float d_buf[16], m_buf[16];

    for (int64_t g = 0; g < nb; g += 16) {
        const int cnt = int(std::min<int64_t>(16, nb - g));
        const __mmask16 mask = cnt == 16 ? __mmask16(0xFFFF) : __mmask16((1u << cnt) - 1);
        // the fp16 scales (and Q4_1's offsets) of 16 blocks: one gather, one conversion each
        const __m512i dm = _mm512_mask_i32gather_epi32(_mm512_setzero_si512(), mask, offsets, w + g * kBlockBytes, 1);
        _mm512_store_ps(d_buf, _mm512_cvtph_ps(_mm512_cvtepi32_epi16(dm)));
        if (TYPE == F32T_Q4_1) _mm512_store_ps(m_buf, _mm512_cvtph_ps(_mm512_cvtepi32_epi16(_mm512_srli_epi32(dm, 16))));
        for (int j = 0; j < cnt; j++) {
            const int64_t i = g + j;
            const uint8_t* qs = w + i * kBlockBytes + (TYPE == F32T_Q4_1 ? 4 : 2);
            const __m512 d = _mm512_set1_ps(d_buf[j]);
            __m512 w_lo, w_hi;  // weights 0-15 and 16-31 of the block, as floats
            if (TYPE == F32T_Q8_0) {
                w_lo = _mm512_mul_ps(d, _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(qs)))));
                w_hi = _mm512_mul_ps(d, _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(qs + 16)))));
            } else {
                const __m128i packed = _mm_loadu_si128(reinterpret_cast<const __m128i*>(qs));
                __m512i q_lo = _mm512_cvtepu8_epi32(_mm_and_si128(packed, low4));
                __m512i q_hi = _mm512_cvtepu8_epi32(_mm_and_si128(_mm_srli_epi16(packed, 4), low4));
                if (TYPE == F32T_Q4_0) {
                    q_lo = _mm512_sub_epi32(q_lo, _mm512_set1_epi32(8));
                    q_hi = _mm512_sub_epi32(q_hi, _mm512_set1_epi32(8));
                }
                w_lo = _mm512_mul_ps(d, _mm512_cvtepi32_ps(q_lo));
                w_hi = _mm512_mul_ps(d, _mm512_cvtepi32_ps(q_hi));
                if (TYPE == F32T_Q4_1) {
                    const __m512 m = _mm512_set1_ps(m_buf[j]);
                    w_lo = _mm512_add_ps(w_lo, m);
                    w_hi = _mm512_add_ps(w_hi, m);
                }
            }
            for (int t = 0; t < NT; t++) {
                acc_lo[t] = _mm512_fmadd_ps(w_lo, _mm512_loadu_ps(xs[t] + QK * i), acc_lo[t]);
                acc_hi[t] = _mm512_fmadd_ps(w_hi, _mm512_loadu_ps(xs[t] + QK * i + 16), acc_hi[t]);
            }
        }
    }
    for (int t = 0; t < NT; t++) y[t] = _mm512_reduce_add_ps(_mm512_add_ps(acc_lo[t], acc_hi[t]));
}
// --8<-- [end:f32_tiled]

#define LL_DISPATCH_NT(TYPE)                                          \
    switch (n_tok) {                                                  \
        case 1: return f32_tiled<1, TYPE>(n, w, xs, y);               \
        case 2: return f32_tiled<2, TYPE>(n, w, xs, y);               \
        case 3: return f32_tiled<3, TYPE>(n, w, xs, y);               \
        case 4: return f32_tiled<4, TYPE>(n, w, xs, y);               \
        case 5: return f32_tiled<5, TYPE>(n, w, xs, y);               \
        case 6: return f32_tiled<6, TYPE>(n, w, xs, y);               \
        case 7: return f32_tiled<7, TYPE>(n, w, xs, y);               \
        default: return f32_tiled<8, TYPE>(n, w, xs, y);              \
    }

// y[t] = dot(W row, xs[t]) for 1 <= n_tok <= 8 float32 token rows
void dot_q4_0_f32tiled_avx512(int64_t n, const uint8_t* w, const float* const* xs, int n_tok, float* y) { LL_DISPATCH_NT(F32T_Q4_0) }
void dot_q4_1_f32tiled_avx512(int64_t n, const uint8_t* w, const float* const* xs, int n_tok, float* y) { LL_DISPATCH_NT(F32T_Q4_1) }
void dot_q8_0_f32tiled_avx512(int64_t n, const uint8_t* w, const float* const* xs, int n_tok, float* y) { LL_DISPATCH_NT(F32T_Q8_0) }
#undef LL_DISPATCH_NT

}  // namespace ll
#endif
