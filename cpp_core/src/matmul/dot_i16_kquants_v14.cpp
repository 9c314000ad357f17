// matmul/dot_i16_kquants_v14.cpp -- quant_matmul v14-v18: the 16-bit decoding path for Q4_K, then Q6_K, Q5_K,
// Q3_K and Q2_K (AVX-512 VNNI and AVX2).
//
// v11/v12 round one token's x to int16, one float scale d_x per block of 32, and multiply it with the
// weights' small integers exactly. A Q4_K super-block of 256 weights is 8 sub-blocks of 32 (lesson 13):
//
//     w = d sc_j q - dmin m_j        (q in 0..15; sc_j, m_j six-bit codes of sub-block j; d, dmin fp16)
//
// and its sub-blocks line up with x's blocks of 32. So a Q4_K row is, to this kernel, a Q4_1 row whose
// blocks' (scale, offset) are (d sc_j, -dmin m_j) instead of two stored fp16 numbers:
//
//     sum_e w_e x_e  ~=  sum_j [ (d sc_j d_x) * sum_e q_e xq_e  -  (dmin m_j) * (d_x sum_e xq_e) ]
//
// The integer sums are exact; d sc_j is exact in float32 (11 + 6 bits); only the float sums round. Before v14
// Q4_K decoded with v6's float weights (AVX-512) or v3's int8 (AVX2). Per super-block and row the 12 bytes
// of codes are unpacked once for all 8 sub-blocks (scalar 32-bit masks, then 8 floats at a time); the
// 128 bytes of nibbles go 32 at a time: widened to 32 words, `& 0x0F` is sub-block 2i and `>> 4` is 2i + 1,
// each with x's block in the order it is stored, one vpdpwssd (or two vpmaddwd) per sub-block.
#if defined(__x86_64__) || defined(__i386__)
#include <cstring>
#include <type_traits>
#include <vector>

#include "cpu/simd_x86.h"
#include "kernels.h"  // GGML_Q3_K .. GGML_Q6_K
#include "matmul/blocks.h"
#include "matmul/i16_v11_v12.h"

namespace ll {

// --8<-- [start:q4_k_codes]
// A Q4_K super-block's 12 bytes of codes -> its 8 scale codes and 8 min codes, one byte each (lesson 13's
// get_scale_min, four sub-blocks at a time): codes 0-3 are the low 6 bits of bytes 0-3 (scales) and 4-7
// (mins); codes 4-7 take their low 4 bits from bytes 8-11 and their top 2 bits from the spare top bits
// of bytes 0-3 (scales) and 4-7 (mins).
static inline void q4_k_codes(const uint8_t* scales12, uint32_t sc[2], uint32_t mn[2]) {
    uint32_t u[3];
    std::memcpy(u, scales12, 12);
    const uint32_t low6 = 0x3F3F3F3F, low4 = 0x0F0F0F0F, low2 = 0x03030303;
    sc[0] = u[0] & low6;
    mn[0] = u[1] & low6;
    sc[1] = (u[2] & low4) | (((u[0] >> 6) & low2) << 4);
    mn[1] = ((u[2] >> 4) & low4) | (((u[1] >> 6) & low2) << 4);
}
// --8<-- [end:q4_k_codes]

// Per super-block: scale[j] = d sc_j d_x (for the 8 blocks of x it covers), and the offsets' sum
// - dmin m_j (d_x sum xq) added to *offset (8 lanes).
template <class Block>  // BlockQ4_K or BlockQ5_K: the same d, dmin and codes
LL_AVX2 static inline void q4_k_block_scales(const Block* b, const float* xd8, const float* xs8, float* scale, __m256* offset) {
    uint32_t sc[2], mn[2];
    q4_k_codes(b->scales, sc, mn);
    const __m256 scf = _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(_mm_set_epi32(0, 0, int(sc[1]), int(sc[0]))));  // 8 codes
    const __m256 mnf = _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(_mm_set_epi32(0, 0, int(mn[1]), int(mn[0]))));
    const __m128 dd = _mm_cvtph_ps(_mm_cvtsi32_si128(int(b->d) | int(b->dmin) << 16));  // d, dmin
    const __m256 d = _mm256_broadcastss_ps(dd), dmin = _mm256_broadcastss_ps(_mm_movehdup_ps(dd));
    _mm256_store_ps(scale, _mm256_mul_ps(_mm256_mul_ps(d, scf), _mm256_loadu_ps(xd8)));       // d sc_j, exact, times d_x
    *offset = _mm256_fnmadd_ps(_mm256_mul_ps(dmin, mnf), _mm256_loadu_ps(xs8), *offset);     // - dmin m_j s_x
}

// --8<-- [start:rows_q4_k_i16]
// y[r] = dot(row r, x) for R rows rb bytes apart (AVX-512 VNNI), x as quantize_act_i16 gives it.
// FIVE: Q5_K (v16), whose qh[32] adds a fifth bit: bit j of qh[l] is element 32 j + l's.
template <int R, bool FIVE = false>
LL_AVX512 static void rows_q4_k_i16(int64_t n, const uint8_t* w, int64_t rb, const int16_t* xq, const float* xd,
                                    const float* xs, float* y) {
    using Block = std::conditional_t<FIVE, BlockQ5_K, BlockQ4_K>;
    const __m512i low4 = _mm512_set1_epi16(0x0F);
    __m512 acc[R];
    __m256 offset[R];
    for (int r = 0; r < R; r++) acc[r] = _mm512_setzero_ps(), offset[r] = _mm256_setzero_ps();
    alignas(32) float scale[R][8];
    for (int64_t k = 0; k < n / QK_K; k++) {
        for (int r = 0; r < R; r++)
            q4_k_block_scales(reinterpret_cast<const Block*>(w + r * rb) + k, xd + 8 * k, xs + 8 * k, scale[r], &offset[r]);
        for (int i = 0; i < 4; i++) {  // 64 weights: sub-blocks 2i (low nibbles) and 2i + 1 (high)
            const __m512i xa = _mm512_loadu_si512(xq + QK_K * k + 64 * i), xb = _mm512_loadu_si512(xq + QK_K * k + 64 * i + 32);
            for (int r = 0; r < R; r++) {
                const Block* b = reinterpret_cast<const Block*>(w + r * rb) + k;
                const __m512i w16 = _mm512_cvtepu8_epi16(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(b->qs + 32 * i)));
                __m512i lo = _mm512_and_si512(w16, low4), hi = _mm512_srli_epi16(w16, 4);
                if constexpr (FIVE) {  // v16: the 32 bytes of qh, bit 2i and bit 2i + 1 of each, as masks
                    const __m256i qh = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(b->qh));
                    lo = _mm512_mask_add_epi16(lo, _mm256_test_epi8_mask(qh, _mm256_set1_epi8(char(1 << (2 * i)))), lo, _mm512_set1_epi16(16));
                    hi = _mm512_mask_add_epi16(hi, _mm256_test_epi8_mask(qh, _mm256_set1_epi8(char(2 << (2 * i)))), hi, _mm512_set1_epi16(16));
                }
                const __m512i da = _mm512_dpwssd_epi32(_mm512_setzero_si512(), lo, xa);
                const __m512i db = _mm512_dpwssd_epi32(_mm512_setzero_si512(), hi, xb);
                acc[r] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(da), _mm512_set1_ps(scale[r][2 * i]), acc[r]);
                acc[r] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(db), _mm512_set1_ps(scale[r][2 * i + 1]), acc[r]);
            }
        }
    }
    for (int r = 0; r < R; r++) y[r] = _mm512_reduce_add_ps(acc[r]) + hsum_f32x8(offset[r]);
}
// --8<-- [end:rows_q4_k_i16]

// Bit s of every byte moved to bit 4 (16-bit shifts: what crosses into the next byte is masked off after)
LL_AVX2 static inline __m256i shift_to_bit4(__m256i v, int s) {
    return s <= 4 ? _mm256_slli_epi16(v, 4 - s) : _mm256_srli_epi16(v, s - 4);
}

// The same with AVX2: each sub-block of 32 is two vpmaddwd of 16 words.
template <int R, bool FIVE = false>
LL_AVX2 static void rows_q4_k_i16_avx2(int64_t n, const uint8_t* w, int64_t rb, const int16_t* xq, const float* xd,
                                       const float* xs, float* y) {
    using Block = std::conditional_t<FIVE, BlockQ5_K, BlockQ4_K>;
    const __m256i low4 = _mm256_set1_epi16(0x0F);
    __m256 acc[R], offset[R];
    for (int r = 0; r < R; r++) acc[r] = offset[r] = _mm256_setzero_ps();
    alignas(32) float scale[R][8];
    for (int64_t k = 0; k < n / QK_K; k++) {
        for (int r = 0; r < R; r++)
            q4_k_block_scales(reinterpret_cast<const Block*>(w + r * rb) + k, xd + 8 * k, xs + 8 * k, scale[r], &offset[r]);
        for (int i = 0; i < 4; i++) {
            const int16_t* xa = xq + QK_K * k + 64 * i;  // sub-block 2i's 32 activations; xa + 32: 2i + 1's
            __m256i x0 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(xa)), x1 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(xa + 16));
            __m256i x2 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(xa + 32)), x3 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(xa + 48));
            __asm__("" : "+x"(x0), "+x"(x1), "+x"(x2), "+x"(x3));  // kept in registers for the R rows (see dot_avx2_v11.cpp)
            for (int r = 0; r < R; r++) {
                const Block* blk = reinterpret_cast<const Block*>(w + r * rb) + k;
                const uint8_t* qs = blk->qs + 32 * i;
                __m256i da, db;
                if constexpr (FIVE) {  // v16: bytes q | fifth bit << 4 first (bit 2i of qh for the low nibbles, 2i + 1 for the high)
                    const __m256i q = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(qs));
                    const __m256i qh = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(blk->qh));
                    const __m256i m4 = _mm256_set1_epi8(0x0F), bit4 = _mm256_set1_epi8(0x10);
                    const __m256i lo = _mm256_or_si256(_mm256_and_si256(q, m4), _mm256_and_si256(shift_to_bit4(qh, 2 * i), bit4));
                    const __m256i hi = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(q, 4), m4), _mm256_and_si256(shift_to_bit4(qh, 2 * i + 1), bit4));
                    da = _mm256_add_epi32(_mm256_madd_epi16(_mm256_cvtepu8_epi16(_mm256_castsi256_si128(lo)), x0),
                                          _mm256_madd_epi16(_mm256_cvtepu8_epi16(_mm256_extracti128_si256(lo, 1)), x1));
                    db = _mm256_add_epi32(_mm256_madd_epi16(_mm256_cvtepu8_epi16(_mm256_castsi256_si128(hi)), x2),
                                          _mm256_madd_epi16(_mm256_cvtepu8_epi16(_mm256_extracti128_si256(hi, 1)), x3));
                } else {
                    const __m256i b0 = _mm256_cvtepu8_epi16(_mm_loadu_si128(reinterpret_cast<const __m128i*>(qs)));       // bytes 0-15
                    const __m256i b1 = _mm256_cvtepu8_epi16(_mm_loadu_si128(reinterpret_cast<const __m128i*>(qs + 16)));  // 16-31
                    da = _mm256_add_epi32(_mm256_madd_epi16(_mm256_and_si256(b0, low4), x0), _mm256_madd_epi16(_mm256_and_si256(b1, low4), x1));
                    db = _mm256_add_epi32(_mm256_madd_epi16(_mm256_srli_epi16(b0, 4), x2), _mm256_madd_epi16(_mm256_srli_epi16(b1, 4), x3));
                }
                acc[r] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(da), _mm256_broadcast_ss(&scale[r][2 * i]), acc[r]);
                acc[r] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(db), _mm256_broadcast_ss(&scale[r][2 * i + 1]), acc[r]);
            }
        }
    }
    for (int r = 0; r < R; r++) y[r] = hsum_f32x8(_mm256_add_ps(acc[r], offset[r]));
}

// ---- v15: Q6_K ----
// Q6_K: w = d sc_s (q - 32), q six bits (four in ql, two in qh), sixteen int8 scales sc_s, one per 16 weights.
// A block of x's 32 covers two sub-blocks: the integer sums of its elements 0-15 and 16-31 are kept apart,
// and each gets its own scale d sc_s d_x. The 32 is taken off in the integers (sc_s differs every 16
// elements, and x's sums come per 32), so there is no offset term. Which bits make element e (lesson 13):
// in each half of 128, for l = 0..31, ql[l] and ql[32 + l] give the low 4 bits of elements l, 32 + l (low
// nibbles) and 64 + l, 96 + l (high nibbles); qh[l] gives their top 2 bits, 2 bits each from bit 0 up.
// --8<-- [start:q6_k_unpack]
// One half (128 weights) of a Q6_K super-block -> 4 x 32 signed bytes q - 32, in element order.
LL_AVX2 static inline void q6_k_unpack_half(const uint8_t* ql, const uint8_t* qh, __m256i q[4]) {
    const __m256i l0 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(ql));       // elements 0-31 and 64-95
    const __m256i l1 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(ql + 32));  // elements 32-63 and 96-127
    const __m256i h = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(qh));
    const __m256i m4 = _mm256_set1_epi8(0x0F), m2 = _mm256_set1_epi8(0x30), k32 = _mm256_set1_epi8(32);
    // (16-bit shifts move bits across bytes; the masks keep only each byte's own)
    q[0] = _mm256_or_si256(_mm256_and_si256(l0, m4), _mm256_and_si256(_mm256_slli_epi16(h, 4), m2));
    q[1] = _mm256_or_si256(_mm256_and_si256(l1, m4), _mm256_and_si256(_mm256_slli_epi16(h, 2), m2));
    q[2] = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(l0, 4), m4), _mm256_and_si256(h, m2));
    q[3] = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(l1, 4), m4), _mm256_and_si256(_mm256_srli_epi16(h, 2), m2));
    for (int g = 0; g < 4; g++) q[g] = _mm256_sub_epi8(q[g], k32);  // 0..63 -> -32..31
}
// --8<-- [end:q6_k_unpack]

// The two k-quants with a scale per 16 weights and no min, each as the kernels below read it: the block,
// its 16 signed scale codes, and one half's 4 x 32 signed q's in element order.
struct Q6K {
    using Block = BlockQ6_K;
    static constexpr bool kMins = false;
    LL_AVX2 static __m128i codes(const Block* b) { return _mm_loadu_si128(reinterpret_cast<const __m128i*>(b->scales)); }
    LL_AVX2 static void unpack_half(const Block* b, int half, __m256i q[4]) { q6_k_unpack_half(b->ql + 64 * half, b->qh + 32 * half, q); }
};

// --8<-- [start:q3_k_unpack]
// v17, Q3_K: w = d (sc_s - 32) (q - 4), q three bits: two in a plane of qs (element 128 h + 32 j + l: byte
// 32 h + l, bits 2 j) and one in hmask (byte l, bit 4 h + j). Scale s: its low 4 bits in byte s % 8 (low
// nibble for s < 8), its top 2 in byte 8 + s % 4, bits 2 (s / 4).
// Bit k of every byte moved to bit `to` (16-bit shifts: what crosses into the next byte is masked off after)
LL_AVX2 static inline __m256i move_bit(__m256i v, int k, int to) {
    return k <= to ? _mm256_slli_epi16(v, to - k) : _mm256_srli_epi16(v, k - to);
}
struct Q3K {
    using Block = BlockQ3_K;
    static constexpr bool kMins = false;
    LL_AVX2 static __m128i codes(const Block* b) {
        uint32_t u[3];
        std::memcpy(u, b->scales, 12);
        const uint32_t low4 = 0x0F0F0F0F, low2 = 0x03030303;
        const __m128i c = _mm_setr_epi32(int((u[0] & low4) | ((u[2] & low2) << 4)),               // scales 0-3
                                         int((u[1] & low4) | (((u[2] >> 2) & low2) << 4)),        // 4-7
                                         int(((u[0] >> 4) & low4) | (((u[2] >> 4) & low2) << 4)), // 8-11
                                         int(((u[1] >> 4) & low4) | (((u[2] >> 6) & low2) << 4)));// 12-15
        return _mm_sub_epi8(c, _mm_set1_epi8(32));
    }
    LL_AVX2 static void unpack_half(const Block* b, int half, __m256i q[4]) {
        const __m256i qs = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(b->qs + 32 * half));
        const __m256i hm = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(b->hmask));
        const __m256i three = _mm256_set1_epi8(3), four = _mm256_set1_epi8(4);
        for (int j = 0; j < 4; j++)  // (q | hbit << 2) - 4: -4..3
            q[j] = _mm256_sub_epi8(_mm256_or_si256(_mm256_and_si256(move_bit(qs, 2 * j, 0), three),
                                                   _mm256_and_si256(move_bit(hm, 4 * half + j, 2), four)), four);
    }
    // The same with AVX-512BW: hmask's bit tested into a mask register, and 4 taken off where it is clear (2 uops, not 4)
    LL_AVX512 static void unpack_half_avx512(const Block* b, int half, __m256i q[4]) {
        const __m256i qs = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(b->qs + 32 * half));
        const __m256i hm = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(b->hmask));
        const __m256i three = _mm256_set1_epi8(3), four = _mm256_set1_epi8(4);
        for (int j = 0; j < 4; j++) {
            const __m256i low = _mm256_and_si256(move_bit(qs, 2 * j, 0), three);
            q[j] = _mm256_mask_sub_epi8(low, _mm256_testn_epi8_mask(hm, _mm256_set1_epi8(char(1 << (4 * half + j)))), low, four);
        }
    }
};
// --8<-- [end:q3_k_unpack]

// --8<-- [start:q2_k_unpack]
// v18, Q2_K: w = d sc_s q - dmin m_s, q two bits (element 128 h + 32 j + l: byte 32 h + l, bits 2 j), and per 16
// weights a byte: 4-bit scale sc_s (low nibble), 4-bit min m_s (high). The mins change every 16 weights, so
// their term needs x's sums per 16 (xs16: d_x times the sum of 16 xq's, made once per call).
struct Q2K {
    using Block = BlockQ2_K;
    static constexpr bool kMins = true;
    LL_AVX2 static __m128i codes(const Block* b) {
        return _mm_and_si128(_mm_loadu_si128(reinterpret_cast<const __m128i*>(b->scales)), _mm_set1_epi8(0x0F));
    }
    LL_AVX2 static __m128i mins(const Block* b) {
        return _mm_and_si128(_mm_srli_epi16(_mm_loadu_si128(reinterpret_cast<const __m128i*>(b->scales)), 4), _mm_set1_epi8(0x0F));
    }
    LL_AVX2 static void unpack_half(const Block* b, int half, __m256i q[4]) {
        const __m256i qs = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(b->qs + 32 * half));
        for (int j = 0; j < 4; j++) q[j] = _mm256_and_si256(move_bit(qs, 2 * j, 0), _mm256_set1_epi8(3));
    }
};
// --8<-- [end:q2_k_unpack]

// --8<-- [start:rows_q6_k_i16]
// y[r] = dot(row r, x) for R Q6_K rows rb bytes apart (AVX-512 VNNI). vpdpwssd leaves elements 0-15 of a block
// in lanes 0-7 and 16-31 in lanes 8-15: the scale register is [d sc_2b d_x x 8 | d sc_2b+1 d_x x 8].
// (T: Q6K, or Q3K for v17, Q2K for v18: the same loop, another unpacking; Q2K adds its mins' term.)
template <int R, class T>
LL_AVX512 static void rows_q6_k_i16(int64_t n, const uint8_t* w, int64_t rb, const int16_t* xq, const float* xd,
                                    const float* xs16, float* y) {
    using Block = typename T::Block;
    __m512 acc[R];
    for (int r = 0; r < R; r++) acc[r] = _mm512_setzero_ps();
    const __m512i pair_idx = _mm512_set_epi32(1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0);
    const __m512i twice = _mm512_set_epi32(7, 7, 6, 6, 5, 5, 4, 4, 3, 3, 2, 2, 1, 1, 0, 0);
    for (int64_t k = 0; k < n / QK_K; k++) {
        // x's 8 block scales, each twice (sub-blocks 2 blk and 2 blk + 1): [d_x0 d_x0 d_x1 d_x1 .. d_x7 d_x7]
        const __m512 xd2 = _mm512_permutexvar_ps(twice, _mm512_castps256_ps512(_mm256_loadu_ps(xd + 8 * k)));
        __m512 sc[R];  // d sc_s d_x, s = 0..15 (the same product, rounded once, as d sc_s times d_x per block)
        for (int r = 0; r < R; r++) {
            const Block* b = reinterpret_cast<const Block*>(w + r * rb) + k;
            const __m512 codes = _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(T::codes(b)));
            sc[r] = _mm512_mul_ps(_mm512_mul_ps(codes, _mm512_set1_ps(_cvtsh_ss(b->d))), xd2);
            if constexpr (T::kMins) {  // - dmin m_s (d_x sum of sub-block s's xq), 16 sub-blocks at once
                const __m512 mins = _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(T::mins(b)));
                acc[r] = _mm512_fnmadd_ps(_mm512_mul_ps(mins, _mm512_set1_ps(_cvtsh_ss(b->dmin))), _mm512_loadu_ps(xs16 + 16 * k), acc[r]);
            }
        }
        for (int half = 0; half < 2; half++)
            for (int r = 0; r < R; r++) {
                __m256i q[4];
                if constexpr (std::is_same_v<T, Q3K>)
                    T::unpack_half_avx512(reinterpret_cast<const Block*>(w + r * rb) + k, half, q);
                else
                    T::unpack_half(reinterpret_cast<const Block*>(w + r * rb) + k, half, q);
                for (int g = 0; g < 4; g++) {
                    const int blk = 4 * half + g;  // x's block within the super-block, sub-blocks 2 blk and 2 blk + 1
                    const __m512i xv = _mm512_loadu_si512(xq + QK_K * k + QK * blk);
                    const __m512i dot = _mm512_dpwssd_epi32(_mm512_setzero_si512(), _mm512_cvtepi8_epi16(q[g]), xv);
                    const __m512 s = _mm512_permutexvar_ps(_mm512_add_epi32(pair_idx, _mm512_set1_epi32(2 * blk)), sc[r]);
                    acc[r] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(dot), s, acc[r]);
                }
            }
    }
    for (int r = 0; r < R; r++) y[r] = _mm512_reduce_add_ps(acc[r]);
}
// --8<-- [end:rows_q6_k_i16]

// The same with AVX2: a block's two sub-blocks are its two vpmaddwd, each with its own broadcast scale.
template <int R, class T>
LL_AVX2 static void rows_q6_k_i16_avx2(int64_t n, const uint8_t* w, int64_t rb, const int16_t* xq, const float* xd,
                                       const float* xs16, float* y) {
    using Block = typename T::Block;
    __m256 acc[R];
    for (int r = 0; r < R; r++) acc[r] = _mm256_setzero_ps();
    alignas(32) float sc[R][16];  // d sc_s d_x
    for (int64_t k = 0; k < n / QK_K; k++) {
        for (int r = 0; r < R; r++) {
            const Block* b = reinterpret_cast<const Block*>(w + r * rb) + k;
            const __m128i codes = T::codes(b);
            const __m256 d = _mm256_set1_ps(_cvtsh_ss(b->d));
            const __m256 dx_lo = _mm256_setr_ps(xd[8 * k], xd[8 * k], xd[8 * k + 1], xd[8 * k + 1], xd[8 * k + 2], xd[8 * k + 2], xd[8 * k + 3], xd[8 * k + 3]);
            const __m256 dx_hi = _mm256_setr_ps(xd[8 * k + 4], xd[8 * k + 4], xd[8 * k + 5], xd[8 * k + 5], xd[8 * k + 6], xd[8 * k + 6], xd[8 * k + 7], xd[8 * k + 7]);
            _mm256_store_ps(sc[r], _mm256_mul_ps(_mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(codes)), d), dx_lo));
            _mm256_store_ps(sc[r] + 8, _mm256_mul_ps(_mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_srli_si128(codes, 8))), d), dx_hi));
            if constexpr (T::kMins) {  // - dmin m_s (d_x sum of sub-block s's xq)
                const __m128i m = T::mins(b);
                const __m256 dmin = _mm256_set1_ps(_cvtsh_ss(b->dmin));
                acc[r] = _mm256_fnmadd_ps(_mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(m)), dmin), _mm256_loadu_ps(xs16 + 16 * k), acc[r]);
                acc[r] = _mm256_fnmadd_ps(_mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_srli_si128(m, 8))), dmin),
                                          _mm256_loadu_ps(xs16 + 16 * k + 8), acc[r]);
            }
        }
        for (int half = 0; half < 2; half++)
            for (int r = 0; r < R; r++) {
                __m256i q[4];
                T::unpack_half(reinterpret_cast<const Block*>(w + r * rb) + k, half, q);
                for (int g = 0; g < 4; g++) {
                    const int blk = 4 * half + g;
                    const int16_t* xb = xq + QK_K * k + QK * blk;
                    const __m256i d0 = _mm256_madd_epi16(_mm256_cvtepi8_epi16(_mm256_castsi256_si128(q[g])),
                                                         _mm256_loadu_si256(reinterpret_cast<const __m256i*>(xb)));
                    const __m256i d1 = _mm256_madd_epi16(_mm256_cvtepi8_epi16(_mm256_extracti128_si256(q[g], 1)),
                                                         _mm256_loadu_si256(reinterpret_cast<const __m256i*>(xb + 16)));
                    acc[r] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(d0), _mm256_broadcast_ss(&sc[r][2 * blk]), acc[r]);
                    acc[r] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(d1), _mm256_broadcast_ss(&sc[r][2 * blk + 1]), acc[r]);
                }
            }
    }
    for (int r = 0; r < R; r++) y[r] = hsum_f32x8(acc[r]);
}

static constexpr int64_t kPageAheadKq = 16384;  // as v11 AVX2's page-ahead request (dot_avx2_v11.cpp)

template <bool FIVE>
static void rows_q4_k_all(int64_t n, const uint8_t* w, int64_t rb, int64_t n_rows, const int16_t* xq, const float* xd,
                          const float* xs, float* y, int64_t ahead) {
    rows_by_four(w, rb, n_rows, ahead,
                 [&](int64_t r) { rows_q4_k_i16<4, FIVE>(n, w + r * rb, rb, xq, xd, xs, y + r); },
                 [&](int64_t r) { rows_q4_k_i16<1, FIVE>(n, w + r * rb, rb, xq, xd, xs, y + r); });
}
template <bool FIVE>
static void rows_q4_k_all_avx2(int64_t n, const uint8_t* w, int64_t rb, int64_t n_rows, const int16_t* xq, const float* xd,
                               const float* xs, float* y, int64_t ahead) {
    rows_by_four</*TO_L2=*/true>(w, rb, n_rows, ahead,
                 [&](int64_t r) { rows_q4_k_i16_avx2<4, FIVE>(n, w + r * rb, rb, xq, xd, xs, y + r); },
                 [&](int64_t r) { rows_q4_k_i16_avx2<1, FIVE>(n, w + r * rb, rb, xq, xd, xs, y + r); }, kPageAheadKq);
}

// Q2_K's mins: xs16[s] = d_x * (sum of the 16 xq of sub-block s), for the whole row of x (nullptr for other types)
template <class T>
static const float* sums_of_16(int64_t n, const int16_t* xq, const float* xd) {
    if (!T::kMins) return nullptr;
    thread_local std::vector<float> xs16;
    xs16.resize(size_t(n / 16));
    for (int64_t s = 0; s < n / 16; s++) {
        int32_t sum = 0;
        for (int e = 0; e < 16; e++) sum += xq[16 * s + e];
        xs16[size_t(s)] = xd[s / 2] * float(sum);
    }
    return xs16.data();
}

template <class T>
static void rows_q6_k_all(int64_t n, const uint8_t* w, int64_t rb, int64_t n_rows, const int16_t* xq, const float* xd,
                          const float*, float* y, int64_t ahead) {
    const float* xs16 = sums_of_16<T>(n, xq, xd);
    rows_by_four(w, rb, n_rows, ahead,
                 [&](int64_t r) { rows_q6_k_i16<4, T>(n, w + r * rb, rb, xq, xd, xs16, y + r); },
                 [&](int64_t r) { rows_q6_k_i16<1, T>(n, w + r * rb, rb, xq, xd, xs16, y + r); });
}
template <class T>
static void rows_q6_k_all_avx2(int64_t n, const uint8_t* w, int64_t rb, int64_t n_rows, const int16_t* xq, const float* xd,
                               const float*, float* y, int64_t ahead) {
    const float* xs16 = sums_of_16<T>(n, xq, xd);
    rows_by_four</*TO_L2=*/true>(w, rb, n_rows, ahead,
                 [&](int64_t r) { rows_q6_k_i16_avx2<4, T>(n, w + r * rb, rb, xq, xd, xs16, y + r); },
                 [&](int64_t r) { rows_q6_k_i16_avx2<1, T>(n, w + r * rb, rb, xq, xd, xs16, y + r); }, kPageAheadKq);
}

// The k-quant kernels of the steps up to `step` (14: Q4_K, 15: + Q6_K, 16: + Q5_K, 17: + Q3_K, 18: + Q2_K);
// nullptr for other types.
RowsI16Fn rows_i16_kernel_kquant(int ggml_type, bool avx512, int step) {
    switch (ggml_type) {
        case GGML_Q4_K: return avx512 ? rows_q4_k_all<false> : rows_q4_k_all_avx2<false>;
        case GGML_Q6_K: return step < 15 ? nullptr : avx512 ? rows_q6_k_all<Q6K> : rows_q6_k_all_avx2<Q6K>;
        case GGML_Q3_K: return step < 17 ? nullptr : avx512 ? rows_q6_k_all<Q3K> : rows_q6_k_all_avx2<Q3K>;
        case GGML_Q2_K: return step < 18 ? nullptr : avx512 ? rows_q6_k_all<Q2K> : rows_q6_k_all_avx2<Q2K>;
        case GGML_Q5_K: return step < 16 ? nullptr : avx512 ? rows_q4_k_all<true> : rows_q4_k_all_avx2<true>;
        default: return nullptr;
    }
}

}  // namespace ll
#endif
