// quant_dot_avx512_i16.cpp -- quant_matmul v11's decoding kernels: activations rounded to 16 bits.
//
// v8/v9 turn every 4-bit weight into a float (a table lookup) and then FMA it with a float activation:
// about 8 512-bit uops per block of 32 weights and row, half of them on the one shuffle port.
// Here the activations are rounded instead, once per product, to 16-bit integers with one float scale per
// block of 32 (the way ggml's Q8_0 rounds them to 8 bits, with 256 times finer steps), and the weights
// stay the small integers they are in the file. One VNNI instruction (vpdpwssd) then multiplies 32
// int16 pairs and adds them into 16 int32 lanes: the block's dot product is exact in integers, and
// only the block's scales are float:
//
//     sum_j w_j x_j  ~=  d_w * d_x * sum_j q_j xq_j  +  m_w * (d_x * sum_j xq_j)      (Q4_1: w = d_w q + m_w)
//
// The rounding error is at most half a step, d_x / 2 = max|x in block| / 65534: a relative error of
// ~1e-5 on each product, far below the 4-bit weights' own error (docs/20-kernels-matmul.md measures it).
// Per block and row: widen 32 nibbles to int16 (3 uops), 1 vpdpwssd, 1 int->float, 1 FMA: 6 uops, one
// of them on the shuffle port.
#if defined(__x86_64__) || defined(__i386__)
#include <algorithm>
#include <cmath>

#include "quant_blocks.h"
#include "quant_simd_x86.h"

namespace ll {

// --8<-- [start:quantize_act_i16]
// x [n] -> q [n] int16, and per block of 32: d = max|x| / 32767, s = d * sum(q)   (n a multiple of 32)
LL_AVX512 void quantize_act_i16(const float* x, int64_t n, int16_t* q, float* d, float* s) {
    const __m512 sign_bit = _mm512_set1_ps(-0.0f);
    for (int64_t i = 0; i < n / QK; i++) {
        const __m512 a = _mm512_loadu_ps(x + QK * i), b = _mm512_loadu_ps(x + QK * i + 16);
        const float amax = _mm512_reduce_max_ps(_mm512_max_ps(_mm512_andnot_ps(sign_bit, a), _mm512_andnot_ps(sign_bit, b)));
        const float di = amax / 32767.0f, inv = amax > 0.0f ? 32767.0f / amax : 0.0f;
        const __m512i qa = _mm512_cvtps_epi32(_mm512_mul_ps(a, _mm512_set1_ps(inv)));  // round to nearest even
        const __m512i qb = _mm512_cvtps_epi32(_mm512_mul_ps(b, _mm512_set1_ps(inv)));
        _mm256_storeu_si256(reinterpret_cast<__m256i*>(q + QK * i), _mm512_cvtsepi32_epi16(qa));
        _mm256_storeu_si256(reinterpret_cast<__m256i*>(q + QK * i + 16), _mm512_cvtsepi32_epi16(qb));
        d[i] = di;
        s[i] = di * float(_mm512_reduce_add_epi32(_mm512_add_epi32(qa, qb)));
    }
}
// --8<-- [end:quantize_act_i16]

enum I16Type { I16_Q4_0, I16_Q4_1, I16_Q8_0 };

// --8<-- [start:rows_i16]
// y[r] = dot(row r, x) for R rows rb bytes apart, x given as quantize_act_i16's (q, d, s).
template <int R, int TYPE>
LL_AVX512 static void rows_i16(int64_t n, const uint8_t* w, int64_t rb, const int16_t* xq, const float* xd,
                               const float* xs, float* y) {
    constexpr int kBlockBytes = TYPE == I16_Q4_0 ? 18 : TYPE == I16_Q4_1 ? 20 : 34;
    constexpr int kQsOffset = TYPE == I16_Q4_1 ? 4 : 2;
    const int64_t nb = n / QK;
    const __m512i offsets = _mm512_mullo_epi32(_mm512_set_epi32(15, 14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0),
                                               _mm512_set1_epi32(kBlockBytes));
    const __m512i low4 = _mm512_set1_epi16(0x0F);
    __m512 acc[R], offset_acc[R];  // sum of d_w d_x (q . xq) per lane; sum of the blocks' offset terms
    for (int r = 0; r < R; r++) acc[r] = offset_acc[r] = _mm512_setzero_ps();
    alignas(64) float scale[R][16];  // d_w * d_x of 16 blocks

    for (int64_t g = 0; g < nb; g += 16) {
        const int cnt = int(std::min<int64_t>(16, nb - g));
        const __mmask16 mask = cnt == 16 ? __mmask16(0xFFFF) : __mmask16((1u << cnt) - 1);
        const __m512 dx = _mm512_maskz_loadu_ps(mask, xd + g), sx = _mm512_maskz_loadu_ps(mask, xs + g);
        for (int r = 0; r < R; r++) {  // the fp16 scales (and Q4_1's offsets) of 16 blocks: one gather
            const __m512i dm = _mm512_mask_i32gather_epi32(_mm512_setzero_si512(), mask, offsets, w + r * rb + g * kBlockBytes, 1);
            const __m512 dw = _mm512_cvtph_ps(_mm512_cvtepi32_epi16(dm));
            _mm512_store_ps(scale[r], _mm512_mul_ps(dw, dx));
            if (TYPE == I16_Q4_1)  // + m_w * sum(x): 16 blocks in one FMA
                offset_acc[r] = _mm512_fmadd_ps(_mm512_cvtph_ps(_mm512_cvtepi32_epi16(_mm512_srli_epi32(dm, 16))), sx, offset_acc[r]);
            if (TYPE == I16_Q4_0)  // w = d_w (q - 8): - 8 d_w * sum(x)
                offset_acc[r] = _mm512_fmadd_ps(_mm512_mul_ps(dw, _mm512_set1_ps(-8.0f)), sx, offset_acc[r]);
        }
        for (int j = 0; j < cnt; j++) {
            const int64_t i = g + j;
            const __m512i xv = _mm512_loadu_si512(xq + QK * i);  // the block's 32 activations, for all R rows
            for (int r = 0; r < R; r++) {
                const uint8_t* qs = w + r * rb + i * kBlockBytes + kQsOffset;
                __m512i w16;  // the block's 32 weights as int16, in element order
                if (TYPE == I16_Q8_0) {
                    w16 = _mm512_cvtepi8_epi16(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(qs)));
                } else {  // byte j holds element j (low nibble) and element j + 16 (high nibble)
                    w16 = _mm512_cvtepu8_epi16(_mm256_broadcastsi128_si256(_mm_loadu_si128(reinterpret_cast<const __m128i*>(qs))));
                    w16 = _mm512_and_si512(_mm512_mask_srli_epi16(w16, 0xFFFF0000u, w16, 4), low4);
                }
                const __m512i dot = _mm512_dpwssd_epi32(_mm512_setzero_si512(), w16, xv);  // 16 lanes, 2 products each
                acc[r] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(dot), _mm512_set1_ps(scale[r][j]), acc[r]);
            }
        }
    }
    for (int r = 0; r < R; r++) y[r] = _mm512_reduce_add_ps(_mm512_add_ps(acc[r], offset_acc[r]));
}
// --8<-- [end:rows_i16]

// y[r] = dot(row r, x) for rows r = 0..n_rows-1 (rb bytes apart), four at a time; 1..3 left over one by one.
template <int TYPE>
static void rows_i16_all(int64_t n, const uint8_t* w, int64_t rb, int64_t n_rows, const int16_t* xq, const float* xd,
                         const float* xs, float* y, int64_t prefetch_ahead) {
    int64_t r = 0;
    for (; r + 4 <= n_rows; r += 4) {
        if (prefetch_ahead > 0) prefetch_rows_ahead(w, r, rb, n_rows, prefetch_ahead);  // v9's prefetch
        rows_i16<4, TYPE>(n, w + r * rb, rb, xq, xd, xs, y + r);
    }
    for (; r < n_rows; r++) rows_i16<1, TYPE>(n, w + r * rb, rb, xq, xd, xs, y + r);
}

void rows_q4_0_i16_avx512(int64_t n, const uint8_t* w, int64_t rb, int64_t n_rows, const int16_t* xq, const float* xd,
                          const float* xs, float* y, int64_t prefetch_ahead) {
    rows_i16_all<I16_Q4_0>(n, w, rb, n_rows, xq, xd, xs, y, prefetch_ahead);
}
void rows_q4_1_i16_avx512(int64_t n, const uint8_t* w, int64_t rb, int64_t n_rows, const int16_t* xq, const float* xd,
                          const float* xs, float* y, int64_t prefetch_ahead) {
    rows_i16_all<I16_Q4_1>(n, w, rb, n_rows, xq, xd, xs, y, prefetch_ahead);
}
void rows_q8_0_i16_avx512(int64_t n, const uint8_t* w, int64_t rb, int64_t n_rows, const int16_t* xq, const float* xd,
                          const float* xs, float* y, int64_t prefetch_ahead) {
    rows_i16_all<I16_Q8_0>(n, w, rb, n_rows, xq, xd, xs, y, prefetch_ahead);
}

}  // namespace ll
#endif
