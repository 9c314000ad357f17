// quant_dot_avx2_i16.cpp -- quant_matmul v11_i16_decode_avx2: v11's 16-bit activations on CPUs with AVX2 only.
//
// v11 (quant_dot_avx512_i16.cpp) rounds one token's activations to int16, one float scale per block of 32,
// and multiplies them with the weights' small integers exactly. Its instruction, vpdpwssd, is AVX-512
// VNNI; AVX2 has the older half of it, vpmaddwd (_mm256_madd_epi16): 16 int16 pairs multiplied, adjacent
// products added, 8 int32 lanes out. A block of 32 is two of them plus one add, the same exact integer sum:
//
//     sum_j w_j x_j  ~=  d_w * d_x * sum_j q_j xq_j  +  m_w * (d_x * sum_j xq_j)      (Q4_1: w = d_w q + m_w)
//
// so the results are v11's up to the order of the float additions. Without it, an AVX2 CPU decodes with
// v6's AVX2 build, which turns every weight into a float and spends an FMA on each 8 of them.
// Per block and row: widen 16 bytes to 16 words (1), split the nibbles (2), 2 vpmaddwd, 1 add, 1 int->float,
// 1 FMA with the block's scale. The fp16 scales of the 4 rows of a call are converted together, one block
// at a time, from 4 scalar loads: v11's way, one gather for 16 blocks of a row, measured 1.65x slower
// per block on AMD Zen with AVX2's 8-block gather, and converting each scale alone 1.1x slower.
#if defined(__x86_64__) || defined(__i386__)
#include <algorithm>
#include <cstring>

#include "kernels.h"  // GGML_Q4_0, GGML_Q4_1, GGML_Q8_0
#include "quant_blocks.h"
#include "quant_simd_x86.h"

namespace ll {

// --8<-- [start:quantize_act_i16_avx2]
// x [n] -> q [n] int16, and per block of 32: d = max|x| / 32767, s = d * sum(q)   (n a multiple of 32)
// The AVX-512 version's arithmetic step for step (the same products, the same round-to-nearest-even),
// so the two give the same bits.
LL_AVX2 void quantize_act_i16_avx2(const float* x, int64_t n, int16_t* q, float* d, float* s) {
    const __m256 abs_mask = _mm256_castsi256_ps(_mm256_set1_epi32(0x7FFFFFFF));
    for (int64_t i = 0; i < n / QK; i++) {
        __m256 v[4], amax = _mm256_setzero_ps();
        for (int k = 0; k < 4; k++) {
            v[k] = _mm256_loadu_ps(x + QK * i + 8 * k);
            amax = _mm256_max_ps(amax, _mm256_and_ps(v[k], abs_mask));
        }
        __m128 m4 = _mm_max_ps(_mm256_castps256_ps128(amax), _mm256_extractf128_ps(amax, 1));
        m4 = _mm_max_ps(m4, _mm_movehl_ps(m4, m4));
        const float max_abs = _mm_cvtss_f32(_mm_max_ss(m4, _mm_movehdup_ps(m4)));
        const float di = max_abs / 32767.0f, inv = max_abs > 0.0f ? 32767.0f / max_abs : 0.0f;
        __m256i qi[4], sum = _mm256_setzero_si256();
        for (int k = 0; k < 4; k++) {
            qi[k] = _mm256_cvtps_epi32(_mm256_mul_ps(v[k], _mm256_set1_ps(inv)));  // round to nearest even
            sum = _mm256_add_epi32(sum, qi[k]);
        }
        for (int k = 0; k < 4; k += 2) {  // packs saturates like vpmovsdw, but interleaves 128-bit lanes: put them back
            const __m256i packed = _mm256_permute4x64_epi64(_mm256_packs_epi32(qi[k], qi[k + 1]), _MM_SHUFFLE(3, 1, 2, 0));
            _mm256_storeu_si256(reinterpret_cast<__m256i*>(q + QK * i + 8 * k), packed);
        }
        d[i] = di;
        s[i] = di * float(hsum_i32x8(sum));
    }
}
// --8<-- [end:quantize_act_i16_avx2]

// (lo, hi) as the two floats of one double's bits: set1_pd of it repeats the pair across a register
static inline double pack_pair(float lo, float hi) {
    float two[2] = {lo, hi};
    double bits;
    std::memcpy(&bits, two, 8);
    return bits;
}

// --8<-- [start:rows_i16_avx2]
// The fp16 pair a block's scale lane wants: Q4_1's (d, m) as stored, Q4_0's (d, d), Q8_0's (d, 0).
template <int TYPE>
static inline int scale_pair(const uint8_t* block) {
    if (TYPE == I16_Q4_1) {  // d, then m: the block's first 4 bytes
        int dm;
        std::memcpy(&dm, block, 4);
        return dm;
    }
    uint16_t d;
    std::memcpy(&d, block, 2);
    return TYPE == I16_Q4_0 ? int(d) * 0x10001 : int(d);
}

// y[r] = dot(row r, x) for R <= 4 rows rb bytes apart, x given as quantize_act_i16's (q, d, s).
template <int R, int TYPE>
LL_AVX2 static void rows_i16_avx2(int64_t n, const uint8_t* w, int64_t rb, const int16_t* xq, const float* xd,
                                  const float* xs, float* y) {
    static_assert(R >= 1 && R <= 4, "the scales of up to 4 rows share one register");
    const int64_t nb = n / QK;
    const __m256i low4 = _mm256_set1_epi16(0x0F);
    __m256 acc[R];                             // sum of d_w d_x (q . xq), 8 lanes per row
    __m256 offset_acc = _mm256_setzero_ps();   // lane 2r + 1: row r's offset terms (Q4_0, Q4_1)
    for (int r = 0; r < R; r++) acc[r] = _mm256_setzero_ps();
    for (int64_t i = 0; i < nb; i++) {
        const __m256i x0 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(xq + QK * i));       // elements 0-15
        const __m256i x1 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(xq + QK * i + 16));  // 16-31
        // the R rows' fp16 scales of block i, converted together: [d_0 m_0 d_1 m_1 ...] * [d_x s_x d_x s_x ...]
        int pair[4] = {0, 0, 0, 0};
        for (int r = 0; r < R; r++) pair[r] = scale_pair<TYPE>(w + r * rb + i * kBlockBytes<TYPE>);
        const __m256 dm = _mm256_cvtph_ps(_mm_setr_epi32(pair[0], pair[1], pair[2], pair[3]));
        const __m256 scales = _mm256_mul_ps(dm, _mm256_castpd_ps(_mm256_set1_pd(pack_pair(xd[i], xs[i]))));
        offset_acc = _mm256_add_ps(offset_acc, scales);  // the odd lanes: m_w s_x (Q4_1), d_w s_x (Q4_0)
        for (int r = 0; r < R; r++) {
            const uint8_t* qs = w + r * rb + i * kBlockBytes<TYPE> + kQsOffset<TYPE>;
            __m256i w0, w1;  // the block's weights 0-15 and 16-31 as int16
            if (TYPE == I16_Q8_0) {
                w0 = _mm256_cvtepi8_epi16(_mm_loadu_si128(reinterpret_cast<const __m128i*>(qs)));
                w1 = _mm256_cvtepi8_epi16(_mm_loadu_si128(reinterpret_cast<const __m128i*>(qs + 16)));
            } else {  // byte j holds element j (low nibble) and element j + 16 (high nibble)
                const __m256i b = _mm256_cvtepu8_epi16(_mm_loadu_si128(reinterpret_cast<const __m128i*>(qs)));
                w0 = _mm256_and_si256(b, low4);
                w1 = _mm256_srli_epi16(b, 4);  // the word's high byte is 0: no mask needed
            }
            const __m256i dot = _mm256_add_epi32(_mm256_madd_epi16(w0, x0), _mm256_madd_epi16(w1, x1));  // 8 lanes, 4 products each
            const __m256 scale = _mm256_permutevar8x32_ps(scales, _mm256_set1_epi32(2 * r));       // d_w d_x in all lanes
            acc[r] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(dot), scale, acc[r]);
        }
    }
    alignas(32) float offsets[8];
    _mm256_store_ps(offsets, offset_acc);
    const float offset_factor = TYPE == I16_Q4_1 ? 1.0f : TYPE == I16_Q4_0 ? -8.0f : 0.0f;  // Q4_0: w = d_w (q - 8)
    for (int r = 0; r < R; r++) y[r] = hsum_f32x8(acc[r]) + offset_factor * offsets[2 * r + 1];
}
// --8<-- [end:rows_i16_avx2]

template <int TYPE>
static void rows_i16_avx2_all(int64_t n, const uint8_t* w, int64_t rb, int64_t n_rows, const int16_t* xq, const float* xd,
                              const float* xs, float* y, int64_t prefetch_ahead) {
    rows_by_four(w, rb, n_rows, prefetch_ahead,
                 [&](int64_t r) { rows_i16_avx2<4, TYPE>(n, w + r * rb, rb, xq, xd, xs, y + r); },
                 [&](int64_t r) { rows_i16_avx2<1, TYPE>(n, w + r * rb, rb, xq, xd, xs, y + r); });
}

RowsI16Fn rows_i16_kernel_avx2(int ggml_type) {
    switch (ggml_type) {
        case GGML_Q4_0: return rows_i16_avx2_all<I16_Q4_0>;
        case GGML_Q4_1: return rows_i16_avx2_all<I16_Q4_1>;
        case GGML_Q8_0: return rows_i16_avx2_all<I16_Q8_0>;
        default: return nullptr;
    }
}

}  // namespace ll
#endif
