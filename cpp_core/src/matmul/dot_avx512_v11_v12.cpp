// matmul/dot_avx512_v11_v12.cpp -- quant_matmul v11's decoding kernels: activations rounded to 16 bits.
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
#include <cstring>
#include <vector>

#include "kernels.h"  // GGML_Q4_0, GGML_Q4_1, GGML_Q8_0
#include "matmul/blocks.h"
#include "cpu/simd_x86.h"
#include "matmul/i16_v11_v12.h"

namespace ll {

// --8<-- [start:quantize_act_i16]
// x [n] -> q [n] int16, and per block of 32: d = max|x| / 32767, s = d * sum(q)   (n a multiple of 32)
LL_AVX512 void quantize_act_i16(const float* x, int64_t n, int16_t* q, float* d, float* s) {
    for (int64_t i = 0; i < n / QK; i++) {
        const __m512 a = _mm512_loadu_ps(x + QK * i), b = _mm512_loadu_ps(x + QK * i + 16);
        const float amax = _mm512_reduce_max_ps(_mm512_max_ps(_mm512_abs_ps(a), _mm512_abs_ps(b)));
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


// Q5_0/Q5_1: the block's 32 fifth bits (bit j: element j's)
template <int TYPE>
static inline uint32_t fifth_bits(const uint8_t* block) {
    uint32_t qh;
    std::memcpy(&qh, block + kQhOffset<TYPE>, 4);
    return qh;
}

// The byte offsets of 16 consecutive blocks, for gathering their scales
template <int TYPE>
LL_AVX512 static inline __m512i block_offsets() {
    return _mm512_mullo_epi32(_mm512_set_epi32(15, 14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0), _mm512_set1_epi32(kBlockBytes<TYPE>));
}

// --8<-- [start:rows_i16]
// y[r] = dot(row r, x) for R rows rb bytes apart, x given as quantize_act_i16's (q, d, s).
template <int R, int TYPE>
LL_AVX512 static void rows_i16(int64_t n, const uint8_t* w, int64_t rb, const int16_t* xq, const float* xd,
                               const float* xs, float* y) {
    const int64_t nb = n / QK;
    const __m512i offsets = block_offsets<TYPE>();
    const __m512i low4 = _mm512_set1_epi16(0x0F);
    __m512 acc[R], offset_acc[R];  // sum of d_w d_x (q . xq) per lane; sum of the blocks' offset terms
    for (int r = 0; r < R; r++) acc[r] = offset_acc[r] = _mm512_setzero_ps();
    alignas(64) float scale[R][16];  // d_w * d_x of 16 blocks

    for (int64_t g = 0; g < nb; g += 16) {
        const int cnt = int(std::min<int64_t>(16, nb - g));
        const __mmask16 mask = cnt == 16 ? __mmask16(0xFFFF) : __mmask16((1u << cnt) - 1);
        const __m512 dx = _mm512_maskz_loadu_ps(mask, xd + g), sx = _mm512_maskz_loadu_ps(mask, xs + g);
        for (int r = 0; r < R; r++) {  // the fp16 scales (and Q4_1's offsets) of 16 blocks: one gather
            const __m512i dm = _mm512_mask_i32gather_epi32(_mm512_setzero_si512(), mask, offsets, w + r * rb + g * kBlockBytes<TYPE>, 1);
            const __m512 dw = _mm512_cvtph_ps(_mm512_cvtepi32_epi16(dm));
            _mm512_store_ps(scale[r], _mm512_mul_ps(dw, dx));
            if (kHasM<TYPE>)  // + m_w * sum(x): 16 blocks in one FMA
                offset_acc[r] = _mm512_fmadd_ps(_mm512_cvtph_ps(_mm512_cvtepi32_epi16(_mm512_srli_epi32(dm, 16))), sx, offset_acc[r]);
            if (kZero<TYPE>)  // w = d_w (q - 8) (Q4_0) or d_w (q - 16) (Q5_0): - 8 or 16 d_w * sum(x)
                offset_acc[r] = _mm512_fmadd_ps(_mm512_mul_ps(dw, _mm512_set1_ps(-float(kZero<TYPE>))), sx, offset_acc[r]);
        }
        for (int j = 0; j < cnt; j++) {
            const int64_t i = g + j;
            const __m512i xv = _mm512_loadu_si512(xq + QK * i);  // the block's 32 activations, for all R rows
            for (int r = 0; r < R; r++) {
                const uint8_t* qs = w + r * rb + i * kBlockBytes<TYPE> + kQsOffset<TYPE>;
                __m512i w16;  // the block's 32 weights as int16, in element order
                if (TYPE == I16_Q8_0) {
                    w16 = _mm512_cvtepi8_epi16(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(qs)));
                } else {  // byte j holds element j (low nibble) and element j + 16 (high nibble)
                    w16 = _mm512_cvtepu8_epi16(_mm256_broadcastsi128_si256(_mm_loadu_si128(reinterpret_cast<const __m128i*>(qs))));
                    w16 = _mm512_and_si512(_mm512_mask_srli_epi16(w16, 0xFFFF0000u, w16, 4), low4);
                    if constexpr (kFiveBits<TYPE>)  // v13: qh's bit j is element j's fifth bit, a mask register as it is
                        w16 = _mm512_mask_add_epi16(w16, _cvtu32_mask32(fifth_bits<TYPE>(w + r * rb + i * kBlockBytes<TYPE>)), w16, _mm512_set1_epi16(0x10));
                }
                const __m512i dot = _mm512_dpwssd_epi32(_mm512_setzero_si512(), w16, xv);  // 16 lanes, 2 products each
                acc[r] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(dot), _mm512_set1_ps(scale[r][j]), acc[r]);
            }
        }
    }
    for (int r = 0; r < R; r++) y[r] = _mm512_reduce_add_ps(_mm512_add_ps(acc[r], offset_acc[r]));
}
// --8<-- [end:rows_i16]

// y[0..2P) = the sums of the 8-lane halves of acc[0..P): row 2p in the low half of acc[p], row 2p+1 in the high.
// Two pairs at a time: four rows' sums from one transpose-add tree.
template <int P>
LL_AVX512 static inline void store_pair_sums(const __m512* acc, float* y) {
    static_assert(P % 2 == 0, "pairs of pairs");
    for (int p = 0; p < P; p += 2) {
        const __m512 u = _mm512_shuffle_f32x4(acc[p], acc[p + 1], _MM_SHUFFLE(2, 0, 2, 0));  // 4 lanes each of rows a b c d
        const __m512 v = _mm512_shuffle_f32x4(acc[p], acc[p + 1], _MM_SHUFFLE(3, 1, 3, 1));  // their other 4 lanes
        __m512 w = _mm512_add_ps(u, v);
        w = _mm512_add_ps(w, _mm512_permute_ps(w, _MM_SHUFFLE(1, 0, 3, 2)));
        w = _mm512_add_ps(w, _mm512_permute_ps(w, _MM_SHUFFLE(2, 3, 0, 1)));  // every element of 128-bit lane j: row j's sum
        _mm_storeu_ps(y + 2 * p, _mm512_castps512_ps128(_mm512_permutexvar_ps(_mm512_set_epi32(0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 12, 8, 4, 0), w)));
    }
}

// --8<-- [start:run_scales]
// v12's scale pass over a run of n_blocks consecutive blocks (whole rows, one after another):
// scale[k] = d_w d_x of block k, and for Q4_0/Q4_1 offset[k] = its constant term (m_w, or -8 d_w, times d_x sum(xq)).
// xd_rep, xs_rep: the activation's d_x and d_x sum(xq), repeated for each row of the run.
//
// The fp16 words are picked out of the run as it lies in memory, not gathered: blocks are 18-34 bytes, so a
// 128-byte window (two plain loads) holds the d (and m) words of kWindowBlocks of them (Q4_0: 8, Q8_0: 4), and one
// two-register word permute (vpermt2w) lines them up: d's in words 0-7, m's in words 16-23. A 16-lane gather
// (vpgatherdd) cost ~9 cycles on the AMD EPYC (Zen 5): a fifth of a Q4_0 call went to them, and the window's
// two loads and a permute cost a fraction of that. The values are the same, so results are bit for bit those
// of the gathers (measured: docs/notes/matmul-diary.md).
template <int TYPE> constexpr int kWindowBlocks = (63 - (kHasM<TYPE> ? 1 : 0)) / (kBlockBytes<TYPE> / 2) + 1;
template <int TYPE>
struct WindowPick {  // word j: block j's d; word 16 + j: its m (Q4_1, Q5_1)
    int16_t idx[32] = {};
    constexpr WindowPick() {
        for (int j = 0; j < kWindowBlocks<TYPE>; j++) idx[j] = int16_t(kBlockBytes<TYPE> / 2 * j), idx[16 + j] = int16_t(kBlockBytes<TYPE> / 2 * j + 1);
    }
};
template <int TYPE> alignas(64) constexpr WindowPick<TYPE> kWindowPick{};

template <int TYPE>
LL_AVX512 static void gather_run_scales(const uint8_t* w, int64_t n_blocks, const float* xd_rep, const float* xs_rep,
                                        float* scale, float* offset) {
    constexpr int J = kWindowBlocks<TYPE>;
    const __m512i pick = _mm512_load_si512(kWindowPick<TYPE>.idx);
    for (int64_t k = 0; k < n_blocks; k += J) {
        const int cnt = int(std::min<int64_t>(J, n_blocks - k));
        const __mmask16 mask = __mmask16((1u << cnt) - 1);
        const uint8_t* p = w + k * kBlockBytes<TYPE>;
        const int64_t left = (n_blocks - k) * kBlockBytes<TYPE>;  // the run's bytes from p on: nothing past them is read
        __m512i lo, hi;
        if (left >= 128) {
            lo = _mm512_loadu_si512(p), hi = _mm512_loadu_si512(p + 64);
        } else {  // the run's last window: masked loads (a masked-off byte is never touched)
            lo = _mm512_maskz_loadu_epi8(left >= 64 ? ~__mmask64(0) : (__mmask64(1) << left) - 1, p);
            hi = _mm512_maskz_loadu_epi8(left <= 64 ? __mmask64(0) : (__mmask64(1) << (left - 64)) - 1, p + 64);
        }
        const __m512i words = _mm512_permutex2var_epi16(lo, pick, hi);  // [d_0 .. d_J-1, 0.. | m_0 .. m_J-1, 0..]
        const __m512 dw = _mm512_cvtph_ps(_mm512_castsi512_si256(words));
        _mm512_mask_storeu_ps(scale + k, mask, _mm512_mul_ps(dw, _mm512_maskz_loadu_ps(mask, xd_rep + k)));
        if (!kHasM<TYPE> && !kZero<TYPE>) continue;  // Q8_0: w = d_w q, no constant term
        const __m512 m = kHasM<TYPE> ? _mm512_cvtph_ps(_mm512_extracti64x4_epi64(words, 1))
                                     : _mm512_mul_ps(dw, _mm512_set1_ps(-float(kZero<TYPE>)));
        _mm512_mask_storeu_ps(offset + k, mask, _mm512_mul_ps(m, _mm512_maskz_loadu_ps(mask, xs_rep + k)));
    }
}
// --8<-- [end:run_scales]

// --8<-- [start:fifth_bits_pair]
// v13, Q5_0/Q5_1 in row pairs: lanes 0-15 of `lo` hold elements 0-15 of row A, lanes 16-31 those of row B; `hi`
// the same for elements 16-31. Each lane whose element has its fifth bit set gets + 16 (a masked vpaddw: there
// is no masked OR of words, and on a nibble the two agree). A 32-bit mask covers 32 int16 lanes, so the bits
// go in as they are, A's half and B's.
template <int TYPE>
LL_AVX512 static inline void fifth_bits_pair(const uint8_t* block_a, const uint8_t* block_b, __m512i* lo, __m512i* hi) {
    const uint32_t a = fifth_bits<TYPE>(block_a), b = fifth_bits<TYPE>(block_b);
    const __m512i sixteen = _mm512_set1_epi16(0x10);
    *lo = _mm512_mask_add_epi16(*lo, _cvtu32_mask32((a & 0xFFFFu) | (b << 16)), *lo, sixteen);
    *hi = _mm512_mask_add_epi16(*hi, _cvtu32_mask32((a >> 16) | (b & 0xFFFF0000u)), *hi, sixteen);
}
// --8<-- [end:fifth_bits_pair]

// --8<-- [start:row_pairs_i16]
// quant_matmul v12, three ideas on v11's 4-bit kernel, which spends ~90 cycles on a row of 576:
//
// 1. Two rows per register. Of v11's 7 uops per block and row, 5 only reshape or convert (widen the
//    nibbles, split them, zero a sum, int->float). A block's 16 bytes of row A and row B go into one
//    256-bit register, widened at once to 32 int16: [A's bytes | B's bytes]. `& 0x0F` gives both rows'
//    elements 0-15, `>> 4` their elements 16-31, so the activations are laid out to match, once per block
//    for all rows: [x0..x15 | x0..x15] and [x16..x31 | x16..x31]. vpmaddwd + vpdpwssd leave row A's block
//    sum in lanes 0-7 and row B's in lanes 8-15; one convert and one FMA (scale [dA x8 | dB x8]) serve
//    both rows: 9 uops per block and pair instead of 14.
// 2. Scales gathered across rows. v11 gathers each row's block scales 16 blocks at a time: a row of 18
//    blocks pays two gathers (and their fp16 conversions), ~28 cycles, the second for only 2 blocks. The
//    rows of a matrix follow each other in memory, so the 4 rows of one call are one run of 4 x 18 = 72
//    blocks: 5 full gathers instead of 8. xd_rep and xs_rep hold the activation scales repeated per row.
//    (Since issue 18 the run's scales are picked from 128-byte windows instead of gathered: gather_run_scales.)
// 3. One reduction for four rows: each row's constant terms go into its own 8 lanes, then a single
//    transpose-add tree (store_pair_sums) sums the four rows, where v11 reduces each row on its own.
template <int P, int TYPE>  // P pairs of rows: rows 2p and 2p+1 share a register
LL_AVX512 static void row_pairs_i16(int64_t n, const uint8_t* w, const int16_t* xq, const float* xd_rep,
                                    const float* xs_rep, float* scale, float* offset, float* y) {
    constexpr int R = 2 * P;
    const int64_t nb = n / QK, rb = nb * kBlockBytes<TYPE>;  // the R rows: R * nb blocks in a row
    gather_run_scales<TYPE>(w, R * nb, xd_rep, xs_rep, scale, offset);
    const __m512i low4 = _mm512_set1_epi16(0x0F);
    __m512 acc[P];  // pair p: row 2p's block sums in lanes 0-7, row 2p+1's in lanes 8-15
    for (int p = 0; p < P; p++) acc[p] = _mm512_setzero_ps();
    for (int64_t i = 0; i < nb; i++) {
        const __m512i x_lo = _mm512_broadcast_i64x4(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(xq + QK * i)));
        const __m512i x_hi = _mm512_broadcast_i64x4(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(xq + QK * i + 16)));
        for (int p = 0; p < P; p++) {
            const uint8_t* qa = w + (2 * p) * rb + i * kBlockBytes<TYPE> + kQsOffset<TYPE>;  // row A's block i; row B's is rb further
            const __m256i both = _mm256_loadu2_m128i(reinterpret_cast<const __m128i*>(qa + rb), reinterpret_cast<const __m128i*>(qa));
            const __m512i w16 = _mm512_cvtepu8_epi16(both);                       // [A's 16 bytes | B's 16 bytes] as int16
            __m512i lo = _mm512_and_si512(w16, low4), hi = _mm512_srli_epi16(w16, 4);  // elements 0-15, 16-31 of A and of B
            if constexpr (kFiveBits<TYPE>)  // v13: the fifth bits, elements 0-15 then 16-31 of A and of B, as masks
                fifth_bits_pair<TYPE>(qa - kQsOffset<TYPE>, qa - kQsOffset<TYPE> + rb, &lo, &hi);
            __m512i dot = _mm512_madd_epi16(lo, x_lo);                            // elements 0-15 of A and of B
            dot = _mm512_dpwssd_epi32(dot, hi, x_hi);                             // + elements 16-31
            const float* sa = scale + (2 * p) * nb + i;                           // row A's d_w d_x; row B's nb further
            const __m512 s = _mm512_mask_broadcastss_ps(_mm512_set1_ps(sa[0]), 0xFF00, _mm_load_ss(sa + nb));
            acc[p] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(dot), s, acc[p]);
        }
    }
    // Each row's constant terms into its own 8 lanes (any lane will do: they are all summed), 8 blocks at a time.
    for (int p = 0; p < P; p++)
        for (int64_t k = 0; k < nb; k += 8) {
            const __mmask8 m8 = nb - k >= 8 ? __mmask8(0xFF) : __mmask8((1u << (nb - k)) - 1);
            const __m256 a = _mm256_maskz_loadu_ps(m8, offset + (2 * p) * nb + k), b = _mm256_maskz_loadu_ps(m8, offset + (2 * p + 1) * nb + k);
            acc[p] = _mm512_add_ps(acc[p], _mm512_castpd_ps(_mm512_insertf64x4(_mm512_castps_pd(_mm512_castps256_ps512(a)), _mm256_castps_pd(b), 1)));
        }
    store_pair_sums<P>(acc, y);
}
// --8<-- [end:row_pairs_i16]

// v12 for Q8_0: a block's 32 int8 weights already fill a register as int16, so rows are not paired; ideas 2
// and 3 apply as they are: the 4 rows' scales in one run of gathers, and their sums in one tree (each row's
// 16 lanes first folded to 8, two rows to a register).
template <int R>
LL_AVX512 static void rows_q8_0_run_i16(int64_t n, const uint8_t* w, const int16_t* xq, const float* xd_rep, float* scale, float* y) {
    const int64_t nb = n / QK, rb = nb * kBlockBytes<I16_Q8_0>;
    gather_run_scales<I16_Q8_0>(w, R * nb, xd_rep, nullptr, scale, nullptr);
    __m512 acc[R];
    for (int r = 0; r < R; r++) acc[r] = _mm512_setzero_ps();
    for (int64_t i = 0; i < nb; i++) {
        const __m512i xv = _mm512_loadu_si512(xq + QK * i);  // the block's 32 activations, for all R rows
        for (int r = 0; r < R; r++) {
            const __m256i q8 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(w + r * rb + i * kBlockBytes<I16_Q8_0> + kQsOffset<I16_Q8_0>));
            const __m512i dot = _mm512_madd_epi16(_mm512_cvtepi8_epi16(q8), xv);  // 16 lanes, 2 products each
            acc[r] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(dot), _mm512_set1_ps(scale[r * nb + i]), acc[r]);
        }
    }
    __m512 pairs[R / 2];  // rows 2p, 2p+1: 8 lanes each
    for (int p = 0; p < R / 2; p++)
        pairs[p] = _mm512_add_ps(_mm512_shuffle_f32x4(acc[2 * p], acc[2 * p + 1], _MM_SHUFFLE(1, 0, 1, 0)),
                                 _mm512_shuffle_f32x4(acc[2 * p], acc[2 * p + 1], _MM_SHUFFLE(3, 2, 3, 2)));
    store_pair_sums<R / 2>(pairs, y);
}

// --8<-- [start:row_pairs_i16_all]
// v12's row loop: four rows (two pairs for the 4- and 5-bit types) at a time, with the 16-bit paths' prefetch;
// 1..3 rows left over go through v11's kernel.
// Eight rows per call (four pairs) was tried: in L2 it ran Q4_0 37.5 -> 43.9 Gw/s, but from memory it lost
// (rows of 1536: 35.3 -> 24.2 Gw/s at 8 KB of prefetch, eight streams at once; rows of 576: 30.3 -> 28.0).
template <int TYPE>
static void row_pairs_i16_all(int64_t n, const uint8_t* w, int64_t rb, int64_t n_rows, const int16_t* xq, const float* xd,
                              const float* xs, float* y, int64_t prefetch_ahead) {
    const int64_t nb = n / QK;
    thread_local std::vector<float> xd_rep, xs_rep, scale, offset;  // [4 * nb] each
    xd_rep.resize(size_t(4 * nb)), xs_rep.resize(size_t(4 * nb)), scale.resize(size_t(4 * nb)), offset.resize(size_t(4 * nb));
    for (int64_t k = 0; k < 4 * nb; k++) xd_rep[k] = xd[k % nb], xs_rep[k] = xs[k % nb];
    rows_by_four(w, rb, n_rows, prefetch_ahead,
                 [&](int64_t r) {
                     if constexpr (TYPE == I16_Q8_0)
                         rows_q8_0_run_i16<4>(n, w + r * rb, xq, xd_rep.data(), scale.data(), y + r);
                     else
                         row_pairs_i16<2, TYPE>(n, w + r * rb, xq, xd_rep.data(), xs_rep.data(), scale.data(), offset.data(), y + r);
                 },
                 [&](int64_t r) { rows_i16<1, TYPE>(n, w + r * rb, rb, xq, xd, xs, y + r); });
}
// --8<-- [end:row_pairs_i16_all]

// y[r] = dot(row r, x) for rows r = 0..n_rows-1 (rb bytes apart), four at a time; 1..3 left over one by one.
template <int TYPE>
static void rows_i16_all(int64_t n, const uint8_t* w, int64_t rb, int64_t n_rows, const int16_t* xq, const float* xd,
                         const float* xs, float* y, int64_t prefetch_ahead) {
    rows_by_four(w, rb, n_rows, prefetch_ahead,
                 [&](int64_t r) { rows_i16<4, TYPE>(n, w + r * rb, rb, xq, xd, xs, y + r); },
                 [&](int64_t r) { rows_i16<1, TYPE>(n, w + r * rb, rb, xq, xd, xs, y + r); });
}

// quant_matmul v11's (rows_i16) or v12's (row pairs) row loop for a weight type; nullptr for a type without one.
RowsI16Fn rows_i16_kernel(int ggml_type, bool row_pairs) {
    switch (ggml_type) {
        case GGML_Q4_0: return row_pairs ? row_pairs_i16_all<I16_Q4_0> : rows_i16_all<I16_Q4_0>;
        case GGML_Q4_1: return row_pairs ? row_pairs_i16_all<I16_Q4_1> : rows_i16_all<I16_Q4_1>;
        case GGML_Q8_0: return row_pairs ? row_pairs_i16_all<I16_Q8_0> : rows_i16_all<I16_Q8_0>;
        default: return nullptr;
    }
}

// quant_matmul v13's: Q5_0 and Q5_1 in v12's row pairs (the last 1-3 rows of a call through v11's kernel).
RowsI16Fn rows_i16_kernel_q5(int ggml_type) {
    switch (ggml_type) {
        case GGML_Q5_0: return row_pairs_i16_all<I16_Q5_0>;
        case GGML_Q5_1: return row_pairs_i16_all<I16_Q5_1>;
        default: return nullptr;
    }
}

}  // namespace ll
#endif
