// matmul/dot_avx512_v6_v8.cpp -- quant_matmul v6's kernels: float32 activations, tiled over tokens.
//
// Each weight block is dequantized in registers into the very floats the numpy lesson computes
// (Q4_1: d*q + m, Q4_0: d*(q-8), Q8_0: d*q, multiply then add, no FMA, so the weights are bit-identical)
// and then multiplied into up to 8 tokens with FMAs. There is no activation rounding at all: the result
// is the F32 model's, up to float summation order. Unpacking costs ~10 instructions per 32 weights but is
// shared by the tile's tokens, and each token then costs 2 FMAs per 32 weights, so for prompts this is
// within ~1.5x of the int8 kernels, and for one token it is bound by memory like them.
#if defined(__x86_64__) || defined(__i386__)
#include <algorithm>

#include "matmul/blocks.h"
#include "matmul/kquant_scales.h"
#include "cpu/simd_x86.h"

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

// ---- v7: four rows at a time for one or two tokens (decoding) ----
// With one token, v6 has just two FMA chains per row and each block adds to both: the loop waits on
// the FMA latency (4 cycles) instead of on memory. Four rows at once give 8 (or 16) independent
// chains, load each x vector once for the four rows, and keep four streams of weights in flight.
// Each row's sums are made in exactly v6's order, so the results are bit-identical to v6's.
// --8<-- [start:f32_rows4]
template <int NT, int TYPE>
LL_AVX512 static void f32_rows4(int64_t n, const uint8_t* w, int64_t rb, const float* const* xs, float* y) {
    constexpr int kBlockBytes = TYPE == F32T_Q4_0 ? 18 : TYPE == F32T_Q4_1 ? 20 : 34;
    constexpr int R = 4;
    const int64_t nb = n / QK;
    const __m128i low4 = _mm_set1_epi8(0x0F);
    const __m512i offsets = _mm512_mullo_epi32(_mm512_set_epi32(15, 14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0),
                                               _mm512_set1_epi32(kBlockBytes));
    __m512 acc_lo[R][NT], acc_hi[R][NT];
    for (int r = 0; r < R; r++)
        for (int t = 0; t < NT; t++) acc_lo[r][t] = acc_hi[r][t] = _mm512_setzero_ps();
    alignas(64) float d_buf[R][16], m_buf[R][16];

    for (int64_t g = 0; g < nb; g += 16) {
        const int cnt = int(std::min<int64_t>(16, nb - g));
        const __mmask16 mask = cnt == 16 ? __mmask16(0xFFFF) : __mmask16((1u << cnt) - 1);
        for (int r = 0; r < R; r++) {  // the scales of 16 blocks of each row, as in v6
            const __m512i dm = _mm512_mask_i32gather_epi32(_mm512_setzero_si512(), mask, offsets, w + r * rb + g * kBlockBytes, 1);
            _mm512_store_ps(d_buf[r], _mm512_cvtph_ps(_mm512_cvtepi32_epi16(dm)));
            if (TYPE == F32T_Q4_1) _mm512_store_ps(m_buf[r], _mm512_cvtph_ps(_mm512_cvtepi32_epi16(_mm512_srli_epi32(dm, 16))));
        }
        for (int j = 0; j < cnt; j++) {
            const int64_t i = g + j;
            __m512 x_lo[NT], x_hi[NT];  // this block's activations, loaded once for the four rows
            for (int t = 0; t < NT; t++) {
                x_lo[t] = _mm512_loadu_ps(xs[t] + QK * i);
                x_hi[t] = _mm512_loadu_ps(xs[t] + QK * i + 16);
            }
            for (int r = 0; r < R; r++) {
                const uint8_t* qs = w + r * rb + i * kBlockBytes + (TYPE == F32T_Q4_1 ? 4 : 2);
                const __m512 d = _mm512_set1_ps(d_buf[r][j]);
                __m512 w_lo, w_hi;  // exactly v6's dequantization
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
                        const __m512 m = _mm512_set1_ps(m_buf[r][j]);
                        w_lo = _mm512_add_ps(w_lo, m);
                        w_hi = _mm512_add_ps(w_hi, m);
                    }
                }
                for (int t = 0; t < NT; t++) {
                    acc_lo[r][t] = _mm512_fmadd_ps(w_lo, x_lo[t], acc_lo[r][t]);
                    acc_hi[r][t] = _mm512_fmadd_ps(w_hi, x_hi[t], acc_hi[r][t]);
                }
            }
        }
    }
    for (int t = 0; t < NT; t++)
        for (int r = 0; r < R; r++) y[t * R + r] = _mm512_reduce_add_ps(_mm512_add_ps(acc_lo[r][t], acc_hi[r][t]));
}
// --8<-- [end:f32_rows4]

// y[t * 4 + r] = dot(row r of the 4 rows at w, rb bytes apart, xs[t]) for n_tok = 1 or 2
#define LL_DISPATCH_R4(TYPE)                                          \
    if (n_tok == 1) return f32_rows4<1, TYPE>(n, w, rb, xs, y);       \
    return f32_rows4<2, TYPE>(n, w, rb, xs, y);
void dot4_q4_0_f32tiled_avx512(int64_t n, const uint8_t* w, int64_t rb, const float* const* xs, int n_tok, float* y) { LL_DISPATCH_R4(F32T_Q4_0) }
void dot4_q4_1_f32tiled_avx512(int64_t n, const uint8_t* w, int64_t rb, const float* const* xs, int n_tok, float* y) { LL_DISPATCH_R4(F32T_Q4_1) }
void dot4_q8_0_f32tiled_avx512(int64_t n, const uint8_t* w, int64_t rb, const float* const* xs, int n_tok, float* y) { LL_DISPATCH_R4(F32T_Q8_0) }
#undef LL_DISPATCH_R4

// ---- v8: v7 with the 4-bit weights looked up instead of converted ----
// The machine runs 512-bit math at about one uop per cycle, so v7 is bound by its ~10 such uops per Q4_1
// block and row (2 widenings, 2 int->float, 2 mul by d, 2 add of m, 2 FMA), not by memory. A 4-bit block
// has only 16 possible weights: make them once (d * {0..15} + m, one zmm, 2 uops), then each weight is
// a vpermps lookup by its nibble, which reads only the low 4 bits of its index lane, so the widened
// bytes need no masking. 10 -> 8 uops. The table holds v6's very floats (d*q then + m, no FMA), and the
// sums run in v6's order: results bit-identical to v6 and v7. Q8_0 (256 values) keeps v7's kernel.
// --8<-- [start:f32_rows4_lut]
template <int NT, int TYPE>
LL_AVX512 static void f32_rows4_lut(int64_t n, const uint8_t* w, int64_t rb, const float* const* xs, float* y) {
    static_assert(TYPE != F32T_Q8_0, "4-bit types only");
    constexpr int kBlockBytes = TYPE == F32T_Q4_0 ? 18 : 20;
    constexpr int R = 4;
    const int64_t nb = n / QK;
    const __m512 codes = TYPE == F32T_Q4_0  // the 16 possible codes, as v6 converts them
        ? _mm512_set_ps(7, 6, 5, 4, 3, 2, 1, 0, -1, -2, -3, -4, -5, -6, -7, -8)
        : _mm512_set_ps(15, 14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0);
    const __m512i offsets = _mm512_mullo_epi32(_mm512_set_epi32(15, 14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0),
                                               _mm512_set1_epi32(kBlockBytes));
    __m512 acc_lo[R][NT], acc_hi[R][NT];
    for (int r = 0; r < R; r++)
        for (int t = 0; t < NT; t++) acc_lo[r][t] = acc_hi[r][t] = _mm512_setzero_ps();
    alignas(64) float d_buf[R][16], m_buf[R][16];

    for (int64_t g = 0; g < nb; g += 16) {
        const int cnt = int(std::min<int64_t>(16, nb - g));
        const __mmask16 mask = cnt == 16 ? __mmask16(0xFFFF) : __mmask16((1u << cnt) - 1);
        for (int r = 0; r < R; r++) {
            const __m512i dm = _mm512_mask_i32gather_epi32(_mm512_setzero_si512(), mask, offsets, w + r * rb + g * kBlockBytes, 1);
            _mm512_store_ps(d_buf[r], _mm512_cvtph_ps(_mm512_cvtepi32_epi16(dm)));
            if (TYPE == F32T_Q4_1) _mm512_store_ps(m_buf[r], _mm512_cvtph_ps(_mm512_cvtepi32_epi16(_mm512_srli_epi32(dm, 16))));
        }
        for (int j = 0; j < cnt; j++) {
            const int64_t i = g + j;
            __m512 x_lo[NT], x_hi[NT];
            for (int t = 0; t < NT; t++) {
                x_lo[t] = _mm512_loadu_ps(xs[t] + QK * i);
                x_hi[t] = _mm512_loadu_ps(xs[t] + QK * i + 16);
            }
            for (int r = 0; r < R; r++) {
                const uint8_t* qs = w + r * rb + i * kBlockBytes + (TYPE == F32T_Q4_1 ? 4 : 2);
                __m512 table = _mm512_mul_ps(_mm512_set1_ps(d_buf[r][j]), codes);  // the block's 16 weights
                if (TYPE == F32T_Q4_1) table = _mm512_add_ps(table, _mm512_set1_ps(m_buf[r][j]));
                const __m128i packed = _mm_loadu_si128(reinterpret_cast<const __m128i*>(qs));
                const __m512i idx_lo = _mm512_cvtepu8_epi32(packed);                     // low nibble in bits 0-3
                const __m512i idx_hi = _mm512_cvtepu8_epi32(_mm_srli_epi16(packed, 4));  // high nibble in bits 0-3
                const __m512 w_lo = _mm512_permutexvar_ps(idx_lo, table);
                const __m512 w_hi = _mm512_permutexvar_ps(idx_hi, table);
                for (int t = 0; t < NT; t++) {
                    acc_lo[r][t] = _mm512_fmadd_ps(w_lo, x_lo[t], acc_lo[r][t]);
                    acc_hi[r][t] = _mm512_fmadd_ps(w_hi, x_hi[t], acc_hi[r][t]);
                }
            }
        }
    }
    for (int t = 0; t < NT; t++)
        for (int r = 0; r < R; r++) y[t * R + r] = _mm512_reduce_add_ps(_mm512_add_ps(acc_lo[r][t], acc_hi[r][t]));
}
// --8<-- [end:f32_rows4_lut]

#define LL_DISPATCH_R4L(TYPE)                                              \
    if (n_tok == 1) return f32_rows4_lut<1, TYPE>(n, w, rb, xs, y);        \
    return f32_rows4_lut<2, TYPE>(n, w, rb, xs, y);
void dot4l_q4_0_f32tiled_avx512(int64_t n, const uint8_t* w, int64_t rb, const float* const* xs, int n_tok, float* y) { LL_DISPATCH_R4L(F32T_Q4_0) }
void dot4l_q4_1_f32tiled_avx512(int64_t n, const uint8_t* w, int64_t rb, const float* const* xs, int n_tok, float* y) { LL_DISPATCH_R4L(F32T_Q4_1) }
#undef LL_DISPATCH_R4L

// ---- k-quants: Q4_K and Q6_K (the bulk of a Q4_K_M file), same scheme per sub-block ----
// Q4_K: sub-block s of 32: w = (d * scale_s) * q - (dmin * min_s), q the low or high nibbles of 32 bytes.
template <int NT>
LL_AVX512 static void q4_k_f32_tiled(int64_t n, const uint8_t* w, const float* const* xs, float* y) {
    const BlockQ4_K* b = reinterpret_cast<const BlockQ4_K*>(w);
    const __m128i low4 = _mm_set1_epi8(0x0F);
    __m512 acc_lo[NT], acc_hi[NT];
    for (int t = 0; t < NT; t++) acc_lo[t] = acc_hi[t] = _mm512_setzero_ps();
    for (int64_t i = 0; i < n / QK_K; i++) {
        const float d = fp16_to_fp32_f16c(b[i].d), dmin = fp16_to_fp32_f16c(b[i].dmin);
        for (int s = 0; s < 8; s++) {
            uint8_t sc, m;
            kquant_scale_min(s, b[i].scales, &sc, &m);
            const __m512 ds = _mm512_set1_ps(d * sc), dm = _mm512_set1_ps(dmin * m);
            const uint8_t* qs = b[i].qs + 32 * (s / 2);
            __m128i p0 = _mm_loadu_si128(reinterpret_cast<const __m128i*>(qs));
            __m128i p1 = _mm_loadu_si128(reinterpret_cast<const __m128i*>(qs + 16));
            if (s % 2) p0 = _mm_srli_epi16(p0, 4), p1 = _mm_srli_epi16(p1, 4);
            const __m512 w_lo = _mm512_sub_ps(_mm512_mul_ps(ds, _mm512_cvtepi32_ps(_mm512_cvtepu8_epi32(_mm_and_si128(p0, low4)))), dm);
            const __m512 w_hi = _mm512_sub_ps(_mm512_mul_ps(ds, _mm512_cvtepi32_ps(_mm512_cvtepu8_epi32(_mm_and_si128(p1, low4)))), dm);
            const int64_t e = QK_K * i + 32 * s;
            for (int t = 0; t < NT; t++) {
                acc_lo[t] = _mm512_fmadd_ps(w_lo, _mm512_loadu_ps(xs[t] + e), acc_lo[t]);
                acc_hi[t] = _mm512_fmadd_ps(w_hi, _mm512_loadu_ps(xs[t] + e + 16), acc_hi[t]);
            }
        }
    }
    for (int t = 0; t < NT; t++) y[t] = _mm512_reduce_add_ps(_mm512_add_ps(acc_lo[t], acc_hi[t]));
}

// Q6_K: sub-block of 16: w = (d * scale) * (q - 32), q = 4 bits of ql | 2 bits of qh << 4.
template <int NT>
LL_AVX512 static void q6_k_f32_tiled(int64_t n, const uint8_t* w, const float* const* xs, float* y) {
    const BlockQ6_K* b = reinterpret_cast<const BlockQ6_K*>(w);
    const __m128i low4 = _mm_set1_epi8(0x0F), low2 = _mm_set1_epi8(0x03);
    __m512 acc_lo[NT], acc_hi[NT];
    for (int t = 0; t < NT; t++) acc_lo[t] = acc_hi[t] = _mm512_setzero_ps();
    for (int64_t i = 0; i < n / QK_K; i++) {
        const float d = fp16_to_fp32_f16c(b[i].d);
        for (int half = 0; half < 2; half++)
            for (int k = 0; k < 4; k++)
                for (int g = 0; g < 2; g++) {  // elements l = 16g .. 16g+15 of this group of 32
                    __m128i ql = _mm_loadu_si128(reinterpret_cast<const __m128i*>(b[i].ql + 64 * half + 32 * (k % 2) + 16 * g));
                    if (k >= 2) ql = _mm_srli_epi16(ql, 4);
                    const __m128i qh = _mm_loadu_si128(reinterpret_cast<const __m128i*>(b[i].qh + 32 * half + 16 * g));
                    const __m128i high = _mm_and_si128(_mm_srl_epi16(qh, _mm_cvtsi32_si128(2 * k)), low2);
                    const __m128i q = _mm_or_si128(_mm_and_si128(ql, low4), _mm_slli_epi16(high, 4));  // 0..63
                    const __m512i qc = _mm512_sub_epi32(_mm512_cvtepu8_epi32(q), _mm512_set1_epi32(32));
                    const int sub = 8 * half + 2 * k + g;
                    const __m512 wv = _mm512_mul_ps(_mm512_set1_ps(d * b[i].scales[sub]), _mm512_cvtepi32_ps(qc));
                    const int64_t e = QK_K * i + 16 * sub;
                    for (int t = 0; t < NT; t++) {
                        if (g == 0) acc_lo[t] = _mm512_fmadd_ps(wv, _mm512_loadu_ps(xs[t] + e), acc_lo[t]);
                        else acc_hi[t] = _mm512_fmadd_ps(wv, _mm512_loadu_ps(xs[t] + e), acc_hi[t]);
                    }
                }
    }
    for (int t = 0; t < NT; t++) y[t] = _mm512_reduce_add_ps(_mm512_add_ps(acc_lo[t], acc_hi[t]));
}

#define LL_DISPATCH_K(kernel)                                         \
    switch (n_tok) {                                                  \
        case 1: return kernel<1>(n, w, xs, y);                        \
        case 2: return kernel<2>(n, w, xs, y);                        \
        case 3: return kernel<3>(n, w, xs, y);                        \
        case 4: return kernel<4>(n, w, xs, y);                        \
        case 5: return kernel<5>(n, w, xs, y);                        \
        case 6: return kernel<6>(n, w, xs, y);                        \
        case 7: return kernel<7>(n, w, xs, y);                        \
        default: return kernel<8>(n, w, xs, y);                       \
    }
void dot_q4_k_f32tiled_avx512(int64_t n, const uint8_t* w, const float* const* xs, int n_tok, float* y) { LL_DISPATCH_K(q4_k_f32_tiled) }
void dot_q6_k_f32tiled_avx512(int64_t n, const uint8_t* w, const float* const* xs, int n_tok, float* y) { LL_DISPATCH_K(q6_k_f32_tiled) }
#undef LL_DISPATCH_K

}  // namespace ll
#endif
