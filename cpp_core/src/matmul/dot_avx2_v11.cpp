// matmul/dot_avx2_v11.cpp -- quant_matmul v11_i16_decode_avx2: v11's 16-bit activations on CPUs with AVX2 only.
//
// v11 (matmul/dot_avx512_v11_v12.cpp) rounds one token's activations to int16, one float scale per block of 32,
// and multiplies them with the weights' small integers exactly. Its instruction, vpdpwssd, is AVX-512
// VNNI; AVX2 has the older half of it, vpmaddwd (_mm256_madd_epi16): 16 int16 pairs multiplied, adjacent
// products added, 8 int32 lanes out. A block of 32 is two of them plus one add, the same exact integer sum:
//
//     sum_j w_j x_j  ~=  d_w * d_x * sum_j q_j xq_j  +  m_w * (d_x * sum_j xq_j)      (Q4_1: w = d_w q + m_w)
//
// so the results are v11's up to the order of the float additions. Without it, an AVX2 CPU decodes with
// v6's AVX2 build, which turns every weight into a float and spends an FMA on each 8 of them.
// Per block and row: widen 16 bytes to 16 words (1), split the nibbles (2), 2 vpmaddwd, 1 add, 1 int->float,
// 1 FMA with the block's scale. On the AMD EPYC this was tuned on, about two vector instructions retire per
// cycle, so the count is the speed. The scales therefore come first, in a pass of their own: the fp16
// (d, m) of the 4 rows of a call are converted together, one block at a time, from 4 scalar loads, times
// x's scales, and stored; the block loop then broadcasts each row's scale from memory, which costs a load
// and no shuffle. Measured one step at a time (Q4_1, from L2, one thread): v11's way, one gather for 16
// blocks of a row, 7.3 cycles per block and row (AMD's gathers are microcoded); the 4 rows' scales
// converted together in the block loop and shuffled into place per row, 4.4; in a pass of their own, 3.5.
#if defined(__x86_64__) || defined(__i386__)
#include <algorithm>
#include <cstring>
#include <vector>

#include "kernels.h"  // GGML_Q4_0, GGML_Q4_1, GGML_Q8_0
#include "matmul/blocks.h"
#include "cpu/simd_x86.h"
#include "matmul/i16_v11_v12.h"

namespace ll {

// --8<-- [start:quantize_act_i16_avx2]
// x [n] -> q [n] int16, and per block of 32: d = max|x| / STEPS, s = d * sum(q)   (n a multiple of 32)
// STEPS = 32767: the AVX-512 version's arithmetic step for step (the same products, the same
// round-to-nearest-even), so the two give the same bits (dev/matmul_i12_decode_avx2.cpp tries 1927).
template <int STEPS>
LL_AVX2 static void quantize_act_avx2(const float* x, int64_t n, int16_t* q, float* d, float* s) {
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
        const float di = max_abs / float(STEPS), inv = max_abs > 0.0f ? float(STEPS) / max_abs : 0.0f;
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
void quantize_act_i16_avx2(const float* x, int64_t n, int16_t* q, float* d, float* s) { quantize_act_avx2<32767>(x, n, q, d, s); }

// --8<-- [start:rows_i16_avx2]
// The fp16 pair a block's scale lane wants: Q4_1's and Q5_1's (d, m) as stored, Q4_0's and Q5_0's (d, d),
// Q8_0's (d, 0).
template <int TYPE>
static inline int scale_pair(const uint8_t* block) {
    if (kHasM<TYPE>) {  // d, then m: the block's first 4 bytes
        int dm;
        std::memcpy(&dm, block, 4);
        return dm;
    }
    uint16_t d;
    std::memcpy(&d, block, 2);
    return kZero<TYPE> ? int(uint32_t(d) * 0x10001u) : int(d);  // d in both halves; unsigned: a negative d (bit 15) would overflow an int
}

// --8<-- [start:add_fifth_bits_avx2]
// v13, Q5_0/Q5_1: w0, w1 hold the block's elements 0-15 and 16-31 as words 0..15; the fifth bits come from the
// block's qh (bit j: element j). AVX2 has no mask registers: each half of qh is broadcast to all 16 words, word j
// keeps bit j (AND with 1 << j), a compare turns it into 0 or 0xFFFF, and 0x10 of that is ORed into the weight.
template <int TYPE>
LL_AVX2 static inline void add_fifth_bits(const uint8_t* block, __m256i* w0, __m256i* w1) {
    uint32_t qh;
    std::memcpy(&qh, block + kQhOffset<TYPE>, 4);
    const __m256i bit = _mm256_setr_epi16(1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096, 8192, 16384, -32768);
    const __m256i sixteen = _mm256_set1_epi16(0x10);
    const __m256i h0 = _mm256_set1_epi16(short(qh & 0xFFFF)), h1 = _mm256_set1_epi16(short(qh >> 16));
    *w0 = _mm256_or_si256(*w0, _mm256_and_si256(_mm256_cmpeq_epi16(_mm256_and_si256(h0, bit), bit), sixteen));
    *w1 = _mm256_or_si256(*w1, _mm256_and_si256(_mm256_cmpeq_epi16(_mm256_and_si256(h1, bit), bit), sixteen));
}
// --8<-- [end:add_fifth_bits_avx2]

// Pass 1 of rows_i16_avx2: for each block the R rows' fp16 scales, converted together and times x's, stored
// [block][d_0 m_0 d_1 m_1 ...] * [d_x s_x d_x s_x ...]. Returns the sum of the odd lanes: row r's offset
// terms m_w s_x (Q4_1) or d_w s_x (Q4_0) in lane 2r + 1.
template <int R, int TYPE>
LL_AVX2 static inline __m256 block_scales(const uint8_t* w, int64_t rb, int64_t nb, const float* xds, float* scales) {
    __m256 offset_acc = _mm256_setzero_ps();
    for (int64_t i = 0; i < nb; i++) {
        int pair[4] = {0, 0, 0, 0};
        for (int r = 0; r < R; r++) pair[r] = scale_pair<TYPE>(w + r * rb + i * kBlockBytes<TYPE>);
        const __m256 dm = _mm256_cvtph_ps(_mm_setr_epi32(pair[0], pair[1], pair[2], pair[3]));
        const __m256 x_pair = _mm256_castpd_ps(_mm256_broadcast_sd(reinterpret_cast<const double*>(xds + 2 * i)));
        const __m256 sc = _mm256_mul_ps(dm, x_pair);
        offset_acc = _mm256_add_ps(offset_acc, sc);
        _mm256_store_ps(scales + 8 * i, sc);
    }
    return offset_acc;
}

// y[r] = dot(row r, x) for R <= 4 rows rb bytes apart, x given as quantize_act_i16's q and its (d, s) pairs
// interleaved (xds[2i] = d_i, xds[2i + 1] = s_i); scales: room for 8 floats per block, 32-byte aligned.
template <int R, int TYPE>
LL_AVX2 static void rows_i16_avx2(int64_t n, const uint8_t* w, int64_t rb, const int16_t* xq, const float* xds,
                                  float* scales, float* y) {
    static_assert(R >= 1 && R <= 4, "the scales of up to 4 rows share one register");
    const int64_t nb = n / QK;
    const __m256i low4 = _mm256_set1_epi16(0x0F);
    const __m256 offset_acc = block_scales<R, TYPE>(w, rb, nb, xds, scales);  // lane 2r + 1: row r's offset terms
    __m256 acc[R];                                                            // sum of d_w d_x (q . xq), 8 lanes per row
    for (int r = 0; r < R; r++) acc[r] = _mm256_setzero_ps();
    // Pass 2: the integer blocks. Each row's scale comes back as a broadcast load (no shuffle), and x stays in
    // two registers rather than being read again by every vpmaddwd.
    for (int64_t i = 0; i < nb; i++) {
        __m256i x0 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(xq + QK * i));       // elements 0-15
        __m256i x1 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(xq + QK * i + 16));  // 16-31
        __asm__("" : "+x"(x0), "+x"(x1));  // opaque to GCC, which would otherwise fold 2R loads into the vpmaddwd's
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
                if constexpr (kFiveBits<TYPE>)  // v13: + 16 where qh has the element's fifth bit
                    add_fifth_bits<TYPE>(w + r * rb + i * kBlockBytes<TYPE>, &w0, &w1);
            }
            const __m256i dot = _mm256_add_epi32(_mm256_madd_epi16(w0, x0), _mm256_madd_epi16(w1, x1));  // 8 lanes, 4 products each
            const __m256 scale = _mm256_broadcast_ss(scales + 8 * i + 2 * r);                     // d_w d_x in all lanes
            acc[r] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(dot), scale, acc[r]);
        }
    }
    alignas(32) float offsets[8];
    _mm256_store_ps(offsets, offset_acc);
    const float offset_factor = kHasM<TYPE> ? 1.0f : -float(kZero<TYPE>);  // Q4_0: w = d_w (q - 8); Q5_0: (q - 16)
    for (int r = 0; r < R; r++) y[r] = hsum_f32x8(acc[r]) + offset_factor * offsets[2 * r + 1];
}
// --8<-- [end:rows_i16_avx2]

// One more request per four rows, 16 KB on: with 4 KB pages the `ahead` requests (4-8 KB on) reach a new
// page every few calls, and each new page costs a walk of the page table (on a VM, of two of them) before
// its lines can be asked for. A request this far ahead starts that walk early. The kernel alone, streaming
// 96 MB from memory on the AMD EPYC: one thread, Q4_1 rows of 1536 11.4 -> 14.0 GB/s, Q8_0 rows of 576
// 14.8 -> 17.0 GB/s, Q4_1 rows of 576 13.7 either way (already as fast as from L2); in the model +4-5%
// (in-process A/B, 16-20 alternating runs). 8 and 32 KB did as well as 16 within 2%.
static constexpr int64_t kPageAheadAvx2 = 16384;

template <int TYPE>
static void rows_avx2_all(int64_t n, const uint8_t* w, int64_t rb, int64_t n_rows, const int16_t* xq, const float* xd,
                          const float* xs, float* y, int64_t prefetch_ahead) {
    thread_local std::vector<float> xds, scales;  // (d, s) of each block side by side: one 8-byte broadcast per block
    xds.resize(size_t(n / QK) * 2), scales.resize(size_t(n / QK) * 8 + 8);
    for (int64_t i = 0; i < n / QK; i++) xds[2 * i] = xd[i], xds[2 * i + 1] = xs[i];
    const float* xds_p = xds.data();
    float* sc = reinterpret_cast<float*>((reinterpret_cast<uintptr_t>(scales.data()) + 31) & ~uintptr_t(31));  // 32-byte aligned
    // The weights ahead are asked for into L2, not L1: decoding the default model on the AMD EPYC, 7.7% and
    // 7.0% faster in two sessions at 2 KB ahead (medians of 16 and 12 pairs of 64 tokens, alternating in one
    // process); then 4 KB ahead (quant_matmul's kPrefetchAheadAvx2) beat 2 KB by another 13%.
    rows_by_four</*TO_L2=*/true>(w, rb, n_rows, prefetch_ahead,
                 [&](int64_t r) { rows_i16_avx2<4, TYPE>(n, w + r * rb, rb, xq, xds_p, sc, y + r); },
                 [&](int64_t r) { rows_i16_avx2<1, TYPE>(n, w + r * rb, rb, xq, xds_p, sc, y + r); },
                 kPageAheadAvx2);
}

RowsI16Fn rows_i16_kernel_avx2(int ggml_type) {
    switch (ggml_type) {
        case GGML_Q4_0: return rows_avx2_all<I16_Q4_0>;
        case GGML_Q4_1: return rows_avx2_all<I16_Q4_1>;
        case GGML_Q8_0: return rows_avx2_all<I16_Q8_0>;
        default: return nullptr;
    }
}

// v13 with AVX2: Q5_0 and Q5_1 (matmul.cpp's v13_i16_q5_avx2), the rest as v11 AVX2.
RowsI16Fn rows_i16_kernel_q5_avx2(int ggml_type) {
    switch (ggml_type) {
        case GGML_Q5_0: return rows_avx2_all<I16_Q5_0>;
        case GGML_Q5_1: return rows_avx2_all<I16_Q5_1>;
        default: return nullptr;
    }
}

}  // namespace ll
#endif
