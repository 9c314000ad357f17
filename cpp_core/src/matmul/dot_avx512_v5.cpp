// matmul/dot_avx512_v5.cpp -- quant_matmul v5's dot products: AVX-512 VNNI on v5's activation layout.
//
// Per pair of weight blocks the inner loop is: 2 loads + shift + insert + and (unpack 64 nibbles),
// then per token: one vpdpbusd (started from the precomputed lane offsets, so the integer sum is exact),
// one int->float convert, one permute (picks the pair's two scales out of 16 precomputed ones), one FMA.
// The weight scales are gathered 16 blocks at a time and converted from fp16 in one instruction.
#if defined(__x86_64__) || defined(__i386__)
#include <algorithm>
#include <type_traits>

#include "matmul/pairs_v5.h"
#include "cpu/simd_x86.h"

namespace ll {

// Byte offsets of 16 consecutive blocks of `bytes` bytes: the gather's index vector.
LL_AVX512 static inline __m512i block_offsets(int bytes) {
    return _mm512_mullo_epi32(_mm512_set_epi32(15, 14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0), _mm512_set1_epi32(bytes));
}

// --8<-- [start:q4_pairs]
template <int NT, bool HAS_MIN>
LL_AVX512 static void q4_pairs(int64_t n, const uint8_t* w, const ActPairsView* a, float* y) {
    using Block = typename std::conditional<HAS_MIN, BlockQ4_1, BlockQ4_0>::type;
    const Block* b = reinterpret_cast<const Block*>(w);
    const int64_t nb = n / QK;
    const __m512i low4 = _mm512_set1_epi8(0x0F);
    const __m512i offsets = block_offsets(sizeof(Block));
    // int32 lanes 0-3 and 8-11 hold block i's sums, lanes 4-7 and 12-15 block i+1's (matmul/pairs_v5.h)
    const __m512i pair_lanes = _mm512_set_epi32(1, 1, 1, 1, 0, 0, 0, 0, 1, 1, 1, 1, 0, 0, 0, 0);
    __m512 acc[NT], off[NT];
    float tail[NT];
    for (int t = 0; t < NT; t++) acc[t] = off[t] = _mm512_setzero_ps(), tail[t] = 0.0f;

    for (int64_t g = 0; g < nb; g += 16) {
        const int cnt = int(std::min<int64_t>(16, nb - g));
        const __mmask16 m = cnt == 16 ? __mmask16(0xFFFF) : __mmask16((1u << cnt) - 1);
        // 16 blocks' (d, m) fp16 pairs in one gather; d in the low half of each lane, m in the high half
        const __m512i dm = _mm512_mask_i32gather_epi32(_mm512_setzero_si512(), m, offsets, &b[g].d, 1);
        const __m512 d_w = _mm512_cvtph_ps(_mm512_cvtepi32_epi16(dm));
        __m512 scale[NT];
        for (int t = 0; t < NT; t++) {
            scale[t] = _mm512_mul_ps(d_w, _mm512_maskz_loadu_ps(m, a[t].d + g));
            if (HAS_MIN) {
                const __m512 m_w = _mm512_cvtph_ps(_mm512_cvtepi32_epi16(_mm512_srli_epi32(dm, 16)));
                off[t] = _mm512_fmadd_ps(m_w, _mm512_maskz_loadu_ps(m, a[t].s + g), off[t]);
            }
        }
        int j = 0;
        for (; j + 2 <= cnt; j += 2) {
            const Block* p = b + g + j;
            const __m256i packed = _mm256_inserti128_si256(
                _mm256_castsi128_si256(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p[0].qs))),
                _mm_loadu_si128(reinterpret_cast<const __m128i*>(p[1].qs)), 1);
            const __m512i q = _mm512_and_si512(
                _mm512_inserti64x4(_mm512_castsi256_si512(packed), _mm256_srli_epi16(packed, 4), 1), low4);
            const __m512i lanes = _mm512_add_epi32(pair_lanes, _mm512_set1_epi32(j));
            const int64_t e = QK * (g + j);
            for (int t = 0; t < NT; t++) {
                const __m512i init = HAS_MIN ? _mm512_setzero_si512() : _mm512_loadu_si512(a[t].init + e / 4);
                const __m512i sums = _mm512_dpbusd_epi32(init, q, _mm512_loadu_si512(a[t].qs + e));
                acc[t] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(sums), _mm512_permutexvar_ps(lanes, scale[t]), acc[t]);
            }
        }
        if (j < cnt) {  // the row's last block, unpaired (odd block count): stored in plain order
            const int64_t i = g + j, e = QK * i;
            const __m256i q = nibbles_to_bytes(b[i].qs);
            const float d_w_i = fp16_to_fp32_f16c(b[i].d);
            for (int t = 0; t < NT; t++) {
                const __m256i init = HAS_MIN ? _mm256_setzero_si256()
                                             : _mm256_loadu_si256(reinterpret_cast<const __m256i*>(a[t].init + e / 4));
                const __m256i sums = _mm256_dpbusd_epi32(init, q, _mm256_loadu_si256(reinterpret_cast<const __m256i*>(a[t].qs + e)));
                tail[t] += d_w_i * a[t].d[i] * float(hsum_i32x8(sums));
            }
        }
    }
    for (int t = 0; t < NT; t++) y[t] = _mm512_reduce_add_ps(acc[t]) + _mm512_reduce_add_ps(off[t]) + tail[t];
}
// --8<-- [end:q4_pairs]

// Q8_0: the pair is simply 64 consecutive weight bytes (+128 to make them unsigned: xor the sign bit).
template <int NT>
LL_AVX512 static void q8_pairs(int64_t n, const uint8_t* w, const ActPairsView* a, float* y) {
    const BlockQ8_0* b = reinterpret_cast<const BlockQ8_0*>(w);
    const int64_t nb = n / QK;
    const __m512i bias = _mm512_set1_epi8(char(0x80));
    const __m512i offsets = block_offsets(sizeof(BlockQ8_0));
    const __m512i pair_lanes = _mm512_set_epi32(1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0);
    __m512 acc[NT];
    float tail[NT];
    for (int t = 0; t < NT; t++) acc[t] = _mm512_setzero_ps(), tail[t] = 0.0f;

    for (int64_t g = 0; g < nb; g += 16) {
        const int cnt = int(std::min<int64_t>(16, nb - g));
        const __mmask16 m = cnt == 16 ? __mmask16(0xFFFF) : __mmask16((1u << cnt) - 1);
        // 4 bytes at each block's d: d and the first two quants; keep the low 16 bits
        const __m512i dq = _mm512_mask_i32gather_epi32(_mm512_setzero_si512(), m, offsets, &b[g].d, 1);
        const __m512 d_w = _mm512_cvtph_ps(_mm512_cvtepi32_epi16(dq));
        __m512 scale[NT];
        for (int t = 0; t < NT; t++) scale[t] = _mm512_mul_ps(d_w, _mm512_maskz_loadu_ps(m, a[t].d + g));
        int j = 0;
        for (; j + 2 <= cnt; j += 2) {
            const BlockQ8_0* p = b + g + j;
            const __m512i q = _mm512_xor_si512(
                _mm512_inserti64x4(_mm512_castsi256_si512(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p[0].qs))),
                                   _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p[1].qs)), 1),
                bias);
            const __m512i lanes = _mm512_add_epi32(pair_lanes, _mm512_set1_epi32(j));
            const int64_t e = QK * (g + j);
            for (int t = 0; t < NT; t++) {
                const __m512i sums = _mm512_dpbusd_epi32(_mm512_loadu_si512(a[t].init + e / 4), q, _mm512_loadu_si512(a[t].qs + e));
                acc[t] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(sums), _mm512_permutexvar_ps(lanes, scale[t]), acc[t]);
            }
        }
        if (j < cnt) {
            const int64_t i = g + j, e = QK * i;
            const __m256i q = _mm256_xor_si256(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(b[i].qs)),
                                               _mm256_set1_epi8(char(0x80)));
            const float d_w_i = fp16_to_fp32_f16c(b[i].d);
            for (int t = 0; t < NT; t++) {
                const __m256i sums = _mm256_dpbusd_epi32(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(a[t].init + e / 4)), q,
                                                         _mm256_loadu_si256(reinterpret_cast<const __m256i*>(a[t].qs + e)));
                tail[t] += d_w_i * a[t].d[i] * float(hsum_i32x8(sums));
            }
        }
    }
    for (int t = 0; t < NT; t++) y[t] = _mm512_reduce_add_ps(acc[t]) + tail[t];
}

#define LL_DISPATCH_NT(kernel)                                      \
    switch (n_tok) {                                                \
        case 1: return kernel<1>(n, w, acts, y);                    \
        case 2: return kernel<2>(n, w, acts, y);                    \
        case 3: return kernel<3>(n, w, acts, y);                    \
        case 4: return kernel<4>(n, w, acts, y);                    \
        case 5: return kernel<5>(n, w, acts, y);                    \
        case 6: return kernel<6>(n, w, acts, y);                    \
        case 7: return kernel<7>(n, w, acts, y);                    \
        default: return kernel<8>(n, w, acts, y);                   \
    }

template <int NT> LL_AVX512 static void q4_1_nt(int64_t n, const uint8_t* w, const ActPairsView* a, float* y) { q4_pairs<NT, true>(n, w, a, y); }
template <int NT> LL_AVX512 static void q4_0_nt(int64_t n, const uint8_t* w, const ActPairsView* a, float* y) { q4_pairs<NT, false>(n, w, a, y); }

void dot_q4_1_pairs_avx512(int64_t n, const uint8_t* w, const ActPairsView* acts, int n_tok, float* y) { LL_DISPATCH_NT(q4_1_nt) }
void dot_q4_0_pairs_avx512(int64_t n, const uint8_t* w, const ActPairsView* acts, int n_tok, float* y) { LL_DISPATCH_NT(q4_0_nt) }
void dot_q8_0_pairs_avx512(int64_t n, const uint8_t* w, const ActPairsView* acts, int n_tok, float* y) { LL_DISPATCH_NT(q8_pairs) }
#undef LL_DISPATCH_NT

}  // namespace ll
#endif
