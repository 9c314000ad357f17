// matmul/gemm_i16_v19.cpp -- quant_matmul v19: prompts through the 16-bit path, an integer GEMM (vpdpwssd).
//
// v10 multiplies float32 weights into float32 activations: one FMA per 16 multiply-adds, and on the whole
// model it runs near this CPU's FMA peak. v11-v18 decode (one token) with x rounded to 16 bits per block of 32
// (quantize_act_i16) and the weights kept as the small integers they are: one vpdpwssd does 32 16-bit
// multiply-adds into 16 int32 lanes, twice an FMA's work. v19 does the same for a prompt:
//
//   1. x: every token rounded by quantize_act_i16 (the decoding path's rounding, bit for bit), then packed per
//      tile of 48 tokens with pairs of columns together: xp[k/2][48 tokens][2] int16 (one zmm = 16 tokens x 2
//      columns), the block scales d_x as [block][48] floats, and the block sums x's offsets need.
//   2. weights: each group of 64 rows unpacked ONCE per call to int16 values w16 in column order, with a float
//      scale per (row, block of 32) and, for types with an offset, a float offset per block (Q2_K: per 16).
//      Integer sub-block scales are folded into w16 (Q4_K/Q5_K 6-bit, Q3_K/Q2_K 4-6-bit, Q6_K 8-bit scales),
//      so every type's block is  w = d_w * w16 + offset.
//   3. a micro-kernel of 8 rows x 48 tokens: 24 zmm of int32 sums, per pair of columns 3 loads of x, 8
//      broadcasts of a row's weight pair and 24 vpdpwssd; after each block of 32 columns an epilogue turns the
//      sums to float and adds  (d_w d_x) * sum + offset * (x's block sum)  into float sums kept in L1.
//
//     y[t, r] = sum_blocks b   d_w[r,b] d_x[t,b] * (sum_k w16[r,k] xq[t,k])  +  off[r,b] * s_x[t,b]
//                              ^ float epilogue, per block   ^ exact int32: 16 vpdpwssd per 48 tokens and row
//
// Exactness of the int32 sums: |xq| <= 32767, so a block's sum stays in int32 when sum |w16| over the block is
// at most 65535. Every type's largest |w16| * 32 is below that (Q5_K: 63 * 31 * 32 = 62496) except Q6_K's
// (8-bit scale x 6-bit q: up to 4096 * 32). Q6_K rows are checked as they are unpacked, and a panel of 8 rows
// with one over the bound takes its int32 sums to float every 16 columns instead of 32: 16 * 4096 * 32767 =
// 2,147,418,112 < 2^31, exact whatever the weights. (The default model's 1.6M Q6_K blocks reach 64909: close.)
#if defined(__x86_64__) || defined(__i386__)
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <vector>

#include "kernels.h"
#include "matmul/blocks.h"
#include "matmul/gemm_tiles.h"
#include "matmul/i16_v11_v12.h"
#include "matmul/kquant_scales.h"
#include "cpu/simd_x86.h"

namespace ll {

// ---- step 2's unpackers: a row -> w16 [K], d [K/32], off [K/32 * kOffsets] ----
// Each returns false if some block's sum |w16| passes 65535 (only Q6_K can: see the top of the file).
using UnpackI16Fn = bool (*)(const uint8_t* w, int64_t K, int16_t* q, float* d, float* off);

// Q4_0, Q4_1, Q5_0, Q5_1, Q8_0: per block of 32, byte j holds elements j (low nibble) and j + 16 (high).
// --8<-- [start:unpack_i16]
template <int TYPE>
LL_AVX512 static bool unpack_legacy_i16(const uint8_t* w, int64_t K, int16_t* q, float* d, float* off) {
    constexpr int kBytes = TYPE == GGML_Q4_0 ? 18 : TYPE == GGML_Q4_1 ? 20 : TYPE == GGML_Q5_0 ? 22 : TYPE == GGML_Q5_1 ? 24 : 34;
    constexpr int kQs = TYPE == GGML_Q4_1 ? 4 : TYPE == GGML_Q5_0 ? 6 : TYPE == GGML_Q5_1 ? 8 : 2;
    constexpr bool kM = TYPE == GGML_Q4_1 || TYPE == GGML_Q5_1, kFifth = TYPE == GGML_Q5_0 || TYPE == GGML_Q5_1;
    constexpr int kZero = TYPE == GGML_Q4_0 ? 8 : TYPE == GGML_Q5_0 ? 16 : 0;  // w = d (q - kZero) (+ m)
    const __m512i low4 = _mm512_set1_epi16(0x0F);
    for (int64_t i = 0; i < K / QK; i++, w += kBytes) {
        uint16_t h;
        std::memcpy(&h, w, 2);
        d[i] = fp16_to_fp32_f16c(h);
        if (kM) std::memcpy(&h, w + 2, 2), off[i] = fp16_to_fp32_f16c(h);
        __m512i v;  // the block's 32 weights as int16, in column order
        if (TYPE == GGML_Q8_0) {
            v = _mm512_cvtepi8_epi16(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(w + kQs)));
        } else {
            v = _mm512_cvtepu8_epi16(_mm256_broadcastsi128_si256(_mm_loadu_si128(reinterpret_cast<const __m128i*>(w + kQs))));
            v = _mm512_and_si512(_mm512_mask_srli_epi16(v, 0xFFFF0000u, v, 4), low4);  // lanes 16-31: high nibbles
            if (kFifth) {  // bit j of qh: element j's fifth bit, a mask register as it is
                uint32_t qh;
                std::memcpy(&qh, w + (TYPE == GGML_Q5_1 ? 4 : 2), 4);
                v = _mm512_mask_add_epi16(v, _cvtu32_mask32(qh), v, _mm512_set1_epi16(16));
            }
            if (kZero) v = _mm512_sub_epi16(v, _mm512_set1_epi16(kZero));
        }
        _mm512_storeu_si512(q + QK * i, v);
    }
    return true;
}

// int8 q's of one block of 32 (the type's offset taken) times its two integer sub-block scales -> int16.
LL_AVX512 static inline __m512i scaled_i16(__m256i q8, int sc_lo, int sc_hi) {
    const __m512i sc = _mm512_mask_mov_epi16(_mm512_set1_epi16(int16_t(sc_lo)), 0xFFFF0000u, _mm512_set1_epi16(int16_t(sc_hi)));
    return _mm512_mullo_epi16(_mm512_cvtepi8_epi16(q8), sc);  // |q sc| <= 4096: exact
}
// The micro-kernel's int32 sums are held as a vector of 16 ints, not as __m512i: GCC's __m512i is 8 x int64, and
// with it GCC copied each of the 24 sums to another register and to the stack around every vpdpwssd (which
// works on 16 x int32): 3x the instructions and no faster than v10. In its own type each sum stays in place.
typedef int32_t I32x16 __attribute__((vector_size(64)));

// Q4_K and Q5_K: sub-block s of 32 = low (s even) or high nibbles of qs[32 (s/2) ..] (+ 16 where bit s of qh[l]);
// w16 = sc_s q, d = the super-block's d, off = -dmin m_s.
template <bool Q5>
LL_AVX512 static bool unpack_q4k5k_i16(const uint8_t* w, int64_t K, int16_t* q, float* d, float* off) {
    const __m256i low4 = _mm256_set1_epi8(0x0F);
    for (int64_t i = 0; i < K / QK_K; i++, w += Q5 ? sizeof(BlockQ5_K) : sizeof(BlockQ4_K)) {
        const BlockQ4_K* b4 = reinterpret_cast<const BlockQ4_K*>(w);
        const BlockQ5_K* b5 = reinterpret_cast<const BlockQ5_K*>(w);
        const uint8_t* qs = Q5 ? b5->qs : b4->qs;
        const float dd = fp16_to_fp32_f16c(b4->d), dmin = fp16_to_fp32_f16c(b4->dmin);  // same place in both
        const __m256i qh = Q5 ? _mm256_loadu_si256(reinterpret_cast<const __m256i*>(b5->qh)) : _mm256_setzero_si256();
        for (int s = 0; s < 8; s++) {
            const __m256i v = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(qs + 32 * (s / 2)));
            __m256i q8 = _mm256_and_si256(s % 2 ? srl16(v, 4) : v, low4);
            if (Q5) q8 = _mm256_mask_add_epi8(q8, _mm256_test_epi8_mask(qh, _mm256_set1_epi8(char(1 << s))), q8, _mm256_set1_epi8(16));
            uint8_t sc, m;
            kquant_scale_min(s, Q5 ? b5->scales : b4->scales, &sc, &m);
            _mm512_storeu_si512(q + QK_K * i + QK * s, scaled_i16(q8, sc, sc));
            d[8 * i + s] = dd;
            off[8 * i + s] = -(dmin * m);
        }
    }
    return true;
}

// --8<-- [end:unpack_i16]

// Q6_K: in half h, element l + 32k = ql[64h + l + 32(k%2)]'s low (k < 2) or high nibble | bits 2k, 2k+1 of
// qh[32h + l] << 4, minus 32; a signed 8-bit scale per 16. The only type that checks the int32 bound.
LL_AVX512 static bool unpack_q6k_i16(const uint8_t* w, int64_t K, int16_t* q, float* d, float*) {
    const __m512i ones = _mm512_set1_epi16(1);
    bool fits = true;
    for (int64_t i = 0; i < K / QK_K; i++, w += sizeof(BlockQ6_K)) {
        const BlockQ6_K* b = reinterpret_cast<const BlockQ6_K*>(w);
        const float dd = fp16_to_fp32_f16c(b->d);
        for (int h = 0; h < 2; h++) {
            __m256i q8[4];  // the half's 128 q's - 32 (cpu/simd_x86.h)
            q6k_half_to_bytes(b->ql + 64 * h, b->qh + 32 * h, q8);
            for (int k = 0; k < 4; k++) {
                const int blk = 4 * h + k;
                const __m512i v = scaled_i16(q8[k], b->scales[2 * blk], b->scales[2 * blk + 1]);
                _mm512_storeu_si512(q + QK_K * i + QK * blk, v);
                d[8 * i + blk] = dd;
                const int l1_norm = _mm512_reduce_add_epi32(_mm512_madd_epi16(_mm512_abs_epi16(v), ones));
                fits = fits && l1_norm <= 65535;
            }
        }
    }
    return fits;
}

// Q2_K and Q3_K: element 32j + l takes bits 2(j%4), +1 of qs[32 (j/4) + l]; Q3_K: minus 4 unless bit j of
// hmask[l], a signed 6-bit scale per 16; Q2_K: 4-bit scale and 4-bit min per 16 (off = -dmin m, per 16).
template <bool Q3>
LL_AVX512 static bool unpack_q2k3k_i16(const uint8_t* w, int64_t K, int16_t* q, float* d, float* off) {
    const __m256i three = _mm256_set1_epi8(3), one = _mm256_set1_epi8(1), four = _mm256_set1_epi8(4);
    for (int64_t i = 0; i < K / QK_K; i++, w += Q3 ? sizeof(BlockQ3_K) : sizeof(BlockQ2_K)) {
        const BlockQ2_K* b2 = reinterpret_cast<const BlockQ2_K*>(w);
        const BlockQ3_K* b3 = reinterpret_cast<const BlockQ3_K*>(w);
        const uint8_t* qs = Q3 ? b3->qs : b2->qs;
        const __m256i hm = Q3 ? _mm256_loadu_si256(reinterpret_cast<const __m256i*>(b3->hmask)) : _mm256_setzero_si256();
        int8_t sc[16];
        if (Q3) q3k_scales(b3->scales, sc);
        else for (int g = 0; g < 16; g++) sc[g] = int8_t(b2->scales[g] & 0xF);
        const float dd = fp16_to_fp32_f16c(Q3 ? b3->d : b2->d), dmin = Q3 ? 0.0f : fp16_to_fp32_f16c(b2->dmin);
        for (int j = 0; j < 8; j++) {
            const __m256i v = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(qs + 32 * (j / 4)));
            __m256i q8 = _mm256_and_si256(srl16(v, 2 * (j % 4)), three);
            if (Q3) q8 = _mm256_sub_epi8(_mm256_or_si256(q8, _mm256_slli_epi16(_mm256_and_si256(srl16(hm, j), one), 2)), four);
            _mm512_storeu_si512(q + QK_K * i + QK * j, scaled_i16(q8, sc[2 * j], sc[2 * j + 1]));
            d[8 * i + j] = dd;
            if (!Q3)
                for (int g = 2 * j; g < 2 * j + 2; g++) off[16 * i + g] = -(dmin * float(b2->scales[g] >> 4));
        }
    }
    return true;
}

struct I16Weights {
    UnpackI16Fn unpack;
    int offsets;  // float offsets per block of 32: 0 (w = d w16), 1 (+ off per block), 2 (Q2_K: + off per 16)
};
static I16Weights i16_weights(int ggml_type) {
    switch (ggml_type) {
        case GGML_Q4_0: return {unpack_legacy_i16<GGML_Q4_0>, 0};
        case GGML_Q4_1: return {unpack_legacy_i16<GGML_Q4_1>, 1};
        case GGML_Q5_0: return {unpack_legacy_i16<GGML_Q5_0>, 0};
        case GGML_Q5_1: return {unpack_legacy_i16<GGML_Q5_1>, 1};
        case GGML_Q8_0: return {unpack_legacy_i16<GGML_Q8_0>, 0};
        case GGML_Q2_K: return {unpack_q2k3k_i16<false>, 2};
        case GGML_Q3_K: return {unpack_q2k3k_i16<true>, 0};
        case GGML_Q4_K: return {unpack_q4k5k_i16<false>, 1};
        case GGML_Q5_K: return {unpack_q4k5k_i16<true>, 1};
        case GGML_Q6_K: return {unpack_q6k_i16, 0};
        default: return {nullptr, 0};
    }
}

// ---- step 1: x packed in pairs of columns ----
// Token rows of xq (int16, K each) -> per tile vector of 16 tokens, [K/2][48] int32 (a column pair per int32):
// the same 16 x 16 transpose of 32-bit elements as v10's float packing, on 16 column pairs at a time.
LL_AVX512 static void pack_xq_tile(const int16_t* xq, int64_t n_tok, int64_t K, TokenTile tile, int32_t* dst) {
    for (int v = 0; v < tile.nv; v++) {
        const int64_t tv = tile.t0 + 16 * v;
        const int nt = int(std::max<int64_t>(0, std::min<int64_t>(16, n_tok - tv)));
        for (int64_t k0 = 0; k0 < K; k0 += 32) {  // 16 column pairs
            __m512 r[16];  // row i: token tv + i's columns k0..k0+31 (zeros past the last token)
            for (int i = 0; i < 16; i++)
                r[i] = i < nt ? _mm512_loadu_ps(reinterpret_cast<const float*>(xq + (tv + i) * K + k0)) : _mm512_setzero_ps();
            transpose_16x16(r);  // r[c]: column pair k0/2 + c of 16 tokens
            for (int c = 0; c < 16; c++) _mm512_storeu_ps(reinterpret_cast<float*>(dst + (k0 / 2 + c) * 48 + 16 * v), r[c]);
        }
    }
}

// ---- step 3: the micro-kernel, 8 rows x 16*NV tokens ----
// --8<-- [start:gemm_i16_micro]
// acc [8 rows][48 tokens] (+)= the nbc blocks of panel rows w (row stride ldw int16s) times packed x (xp, its
// block scales xd [block][48] and offset sums xs [block * OFF][48]); wd, woff: the rows' block scales and
// offsets (row stride ldb blocks). Only 16*NV tokens computed. HALVES: the int32 sums go to float every 16
// columns instead of 32 (Q6_K panels past the int32 bound, see the top of the file).
template <int NV, int OFF, bool HALVES>
LL_AVX512 static void gemm_i16_micro(int64_t nbc, const int16_t* w, int64_t ldw, const float* wd, const float* woff,
                                     int64_t ldb, const int32_t* xp, const float* xd, const float* xs, float* acc_io,
                                     bool accumulate) {
    constexpr int R = 8, kTile = 48, kSteps = HALVES ? 8 : 16;  // pairs of columns per int32 sum
    for (int64_t b = 0; b < nbc; b++) {
        for (int kp0 = 0; kp0 < 16; kp0 += kSteps) {
            I32x16 sum[R][NV];  // exact int32 sums: 8 x 3 = 24 of the 32 zmm registers
            for (int r = 0; r < R; r++)
                for (int v = 0; v < NV; v++) sum[r][v] = I32x16{};
            const int32_t* xb = xp + b * 16 * kTile;
            const int16_t* wb = w + QK * b;
            for (int kp = kp0; kp < kp0 + kSteps; kp++) {  // pairs of columns 2kp, 2kp+1
                __m512i xv[NV];  // those two columns of 16*NV tokens
                for (int v = 0; v < NV; v++) xv[v] = _mm512_loadu_si512(xb + kp * kTile + 16 * v);
                for (int r = 0; r < R; r++) {
                    int32_t pair;  // row r's weights at the same two columns, broadcast
                    std::memcpy(&pair, wb + r * ldw + 2 * kp, 4);
                    const __m512i wr = _mm512_set1_epi32(pair);
                    for (int v = 0; v < NV; v++) sum[r][v] = I32x16(_mm512_dpwssd_epi32(__m512i(sum[r][v]), xv[v], wr));
                }
            }
            // the epilogue: acc += (d_w d_x) * float(sum) (+ off * s_x, once per block)
            __m512 dx[NV];  // (loaded here, not before the loop: there it took 3 of the registers the sums need)
            for (int v = 0; v < NV; v++) dx[v] = _mm512_loadu_ps(xd + b * kTile + 16 * v);
            const bool first = !accumulate && b == 0 && kp0 == 0, last = kp0 + kSteps == 16;
#pragma GCC unroll 8
            for (int r = 0; r < R; r++) {
                const __m512 dw = _mm512_set1_ps(wd[r * ldb + b]);
                for (int v = 0; v < NV; v++) {
                    float* a = acc_io + r * kTile + 16 * v;
                    __m512 acc = first ? _mm512_setzero_ps() : _mm512_loadu_ps(a);
                    acc = _mm512_fmadd_ps(_mm512_cvtepi32_ps(__m512i(sum[r][v])), _mm512_mul_ps(dw, dx[v]), acc);
                    for (int o = 0; last && o < OFF; o++)
                        acc = _mm512_fmadd_ps(_mm512_set1_ps(woff[r * ldb * OFF + OFF * b + o]), _mm512_loadu_ps(xs + (OFF * b + o) * kTile + 16 * v), acc);
                    _mm512_storeu_ps(a, acc);
                }
            }
        }
    }
}
// --8<-- [end:gemm_i16_micro]

template <int OFF>
LL_AVX512 static void gemm_i16_micro_nv(int nv, bool halves, int64_t nbc, const int16_t* w, int64_t ldw, const float* wd,
                                        const float* woff, int64_t ldb, const int32_t* xp, const float* xd, const float* xs,
                                        float* acc, bool accumulate) {
    if constexpr (OFF == 0) {  // halves: only Q6_K (no offsets) ever needs them
        if (halves) {
            if (nv == 1) return gemm_i16_micro<1, 0, true>(nbc, w, ldw, wd, woff, ldb, xp, xd, xs, acc, accumulate);
            if (nv == 2) return gemm_i16_micro<2, 0, true>(nbc, w, ldw, wd, woff, ldb, xp, xd, xs, acc, accumulate);
            return gemm_i16_micro<3, 0, true>(nbc, w, ldw, wd, woff, ldb, xp, xd, xs, acc, accumulate);
        }
    }
    if (nv == 1) gemm_i16_micro<1, OFF, false>(nbc, w, ldw, wd, woff, ldb, xp, xd, xs, acc, accumulate);
    else if (nv == 2) gemm_i16_micro<2, OFF, false>(nbc, w, ldw, wd, woff, ldb, xp, xd, xs, acc, accumulate);
    else gemm_i16_micro<3, OFF, false>(nbc, w, ldw, wd, woff, ldb, xp, xd, xs, acc, accumulate);
}

// acc [8][48] -> y[tok, r] for nt tokens and nr rows (row stride ldy), as v10 writes its tiles.
LL_AVX512 static void store_tile(const float* acc, int nr, int nt, float* y, int64_t ldy) {
    int tok = 0;
    if (nr == 8)
        for (; tok + 16 <= nt; tok += 16) store_8x16_transposed(acc + tok, y + tok * ldy, ldy);
    for (; tok < nt; tok++)
        for (int r = 0; r < nr; r++) y[tok * ldy + r] = acc[r * 48 + tok];
}

// --8<-- [start:gemm_i16]
static constexpr int kRows = 8, kTile = 48, kGroupRows = 64;  // micro-tile rows, tokens per tile, rows unpacked together
static constexpr int64_t kChunkK = 256;  // columns per pass: a tile's packed x chunk is 128 x 48 int32 = 24 KB (L1)

template <typename T>
static T* align64(T* p) { return reinterpret_cast<T*>((reinterpret_cast<uintptr_t>(p) + 63) & ~uintptr_t(63)); }

template <int OFF>
static void gemm_i16(UnpackI16Fn unpack, const QuantType& t, const uint8_t* W, int64_t n_rows, int64_t K, const float* x,
                     int64_t n_tok, float* y, ThreadPool& pool) {
    constexpr int kGroup = kGroupRows / kRows;
    const int64_t nb = K / QK;
    const size_t rb = size_t(K / t.block_size) * t.block_bytes;
    // 1. x rounded token by token (the decoding path's rounding), then packed per tile. The caller's buffers,
    // shared read-only with the workers through plain pointers.
    thread_local std::vector<int16_t> xq_buf;
    thread_local std::vector<float> xd_buf, xs_buf, xdp_buf, xsp_buf;
    thread_local std::vector<int32_t> xp_buf;
    thread_local std::vector<TokenTile> tiles_buf;
    tiles_buf = token_tiles(n_tok, 16, 3);
    const TokenTile* tiles = tiles_buf.data();
    const int64_t n_tiles = int64_t(tiles_buf.size());
    xq_buf.resize(size_t(n_tok * K)), xd_buf.resize(size_t(n_tok * nb)), xs_buf.resize(size_t(n_tok * nb));
    xp_buf.resize(size_t(n_tiles * (K / 2) * kTile) + 16);
    xdp_buf.resize(size_t(n_tiles * nb * kTile)), xsp_buf.resize(size_t(n_tiles * nb * OFF * kTile) + 1);
    int16_t* xq = xq_buf.data();
    float *xd = xd_buf.data(), *xs = xs_buf.data(), *xdp = xdp_buf.data(), *xsp = xsp_buf.data();
    int32_t* xp = align64(xp_buf.data());
    pool.parallel_for(n_tiles, [&](int64_t begin, int64_t end) {  // one pass (one barrier fewer): a tile's tokens, then it
        for (int64_t i = begin; i < end; i++) {
            for (int64_t tok = tiles[i].t0; tok < std::min(n_tok, tiles[i].t0 + 16 * tiles[i].nv); tok++)
                quantize_act_i16(x + tok * K, K, xq + tok * K, xd + tok * nb, xs + tok * nb);
            pack_xq_tile(xq, n_tok, K, tiles[i], xp + i * (K / 2) * kTile);
            for (int j = 0; j < kTile; j++) {  // scales and offset sums: [block][48], zero past the last token
                const int64_t tok = tiles[i].t0 + j;
                const bool in = j < 16 * tiles[i].nv && tok < n_tok;
                for (int64_t b = 0; b < nb; b++) {
                    xdp[(i * nb + b) * kTile + j] = in ? xd[tok * nb + b] : 0.0f;
                    if (OFF == 1) xsp[(i * nb + b) * kTile + j] = in ? xs[tok * nb + b] : 0.0f;
                    for (int h = 0; OFF == 2 && h < 2; h++) {  // Q2_K's mins: x's sums per 16, d_x * sum(q)
                        int32_t s16 = 0;
                        for (int k = 0; in && k < 16; k++) s16 += xq[tok * K + QK * b + 16 * h + k];
                        xsp[((i * nb + b) * 2 + h) * kTile + j] = in ? xd[tok * nb + b] * float(s16) : 0.0f;
                    }
                }
            }
        }
    });
    // 2. groups of rows, each unpacked once; 3. every token tile streams past them, kChunkK columns at a time.
    const int64_t n_panels = (n_rows + kRows - 1) / kRows;
    pool.parallel_for(n_panels, [&](int64_t begin, int64_t end) {
        thread_local std::vector<int16_t> wq_buf;  // each thread's own: [64][K] int16, [64][nb] scales, offsets
        thread_local std::vector<float> wd_buf, woff_buf, acc_buf;
        wq_buf.resize(size_t(kGroup * kRows * K)), wd_buf.resize(size_t(kGroup * kRows * nb));
        woff_buf.resize(size_t(kGroup * kRows * nb * OFF) + 1);
        acc_buf.resize(size_t(kGroup * n_tiles * kRows * kTile) + 16);
        int16_t* wq = wq_buf.data();
        float *wd = wd_buf.data(), *woff = woff_buf.data(), *acc0 = align64(acc_buf.data());
        const int64_t n_groups = (end - begin + kGroup - 1) / kGroup;
        const int64_t group = (end - begin + n_groups - 1) / n_groups;  // even groups, as v10
        for (int64_t p0 = begin; p0 < end; p0 += group) {
            const int np = int(std::min<int64_t>(group, end - p0));
            const int64_t r0 = p0 * kRows;
            const int nr_all = int(std::min<int64_t>(np * kRows, n_rows - r0));
            bool halves[kGroup] = {};  // a panel with a row past the int32 bound: its sums to float every 16 columns
            for (int r = 0; r < nr_all; r++)  // [nr_all, K] int16 + scales, once
                if (!unpack(W + (r0 + r) * rb, K, wq + r * K, wd + r * nb, woff + r * nb * OFF)) halves[r / kRows] = true;
            const int pad = np * kRows - nr_all;  // padding rows: zero weights and scales
            std::memset(wq + nr_all * K, 0, sizeof(int16_t) * size_t(pad * K));
            std::memset(wd + nr_all * nb, 0, sizeof(float) * size_t(pad * nb));
            if (OFF) std::memset(woff + nr_all * nb * OFF, 0, sizeof(float) * size_t(pad * nb * OFF));
            for (int64_t k0 = 0; k0 < K; k0 += kChunkK) {
                const int64_t kc = std::min(kChunkK, K - k0), b0 = k0 / QK;
                for (int64_t tile = 0; tile < n_tiles; tile++) {
                    const int32_t* xt = xp + (tile * (K / 2) + k0 / 2) * kTile;
                    const float* xdt = xdp + (tile * nb + b0) * kTile;
                    const float* xst = xsp + (tile * nb + b0) * OFF * kTile;
                    for (int g = 0; g < np; g++) {
                        float* acc = acc0 + (g * n_tiles + tile) * kRows * kTile;
                        const int64_t rg = g * kRows;
                        gemm_i16_micro_nv<OFF>(tiles[tile].nv, halves[g], kc / QK, wq + rg * K + k0, K, wd + rg * nb + b0,
                                               woff + rg * nb * OFF + b0 * OFF, nb, xt, xdt, xst, acc, k0 > 0);
                        if (k0 + kc == K) {  // the tile is done: write it while it is in L1
                            const int64_t t0 = tiles[tile].t0;
                            store_tile(acc, int(std::min<int64_t>(kRows, n_rows - r0 - rg)),
                                       int(std::min<int64_t>(16 * tiles[tile].nv, n_tok - t0)), y + t0 * n_rows + r0 + rg, n_rows);
                        }
                    }
                }
            }
        }
    });
}
// --8<-- [end:gemm_i16]

// y[t, r] = sum_k W[r, k] x[t, k] with x rounded to 16 bits; false (nothing done) for a type without an unpacker.
bool gemm_i16_avx512(const QuantType& t, const uint8_t* W, int64_t n_rows, int64_t K, const float* x, int64_t n_tok,
                     float* y, ThreadPool& pool) {
    const I16Weights iw = i16_weights(t.ggml_type);
    if (!iw.unpack || K % QK) return false;
    if (iw.offsets == 0) gemm_i16<0>(iw.unpack, t, W, n_rows, K, x, n_tok, y, pool);
    else if (iw.offsets == 1) gemm_i16<1>(iw.unpack, t, W, n_rows, K, x, n_tok, y, pool);
    else gemm_i16<2>(iw.unpack, t, W, n_rows, K, x, n_tok, y, pool);
    return true;
}

}  // namespace ll
#endif
