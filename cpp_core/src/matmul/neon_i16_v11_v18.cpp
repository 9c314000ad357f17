// matmul/neon_i16_v11_v18.cpp -- quant_matmul's 16-bit decoding path on aarch64: v11, v13-v18 with NEON.
//
// The x86 steps v11 (Q4_0, Q4_1, Q8_0), v13 (Q5_0, Q5_1) and v14-v18 (Q4_K, Q6_K, Q5_K, Q3_K, Q2_K) round one
// token's x to int16 once, one float scale d_x per block of 32, and multiply it with the weights' small
// integers exactly; only the blocks' scales are float (matmul/dot_avx512_v11_v12.cpp says why):
//
//     sum_j w_j x_j  ~=  sum_blocks [ (d_w d_x) * sum_j q_j xq_j  +  m_w * (d_x sum_j xq_j) ]
//
// This file is the same arithmetic with NEON. The rounding is x86's bit for bit (same float products,
// round-to-nearest-even, saturation at 32767), so the integer block sums are x86's exactly and a result
// differs from x86's only in the order of the float additions.
//
// The instruction. NEON has no 16 x 16 -> 32 dot product like vpmaddwd or vpdpwssd. It has widening
// multiply-accumulates: vmlal_s16 / vmlal_high_s16 multiply 4 int16 pairs and add them to 4 int32 lanes.
// A block of 32 is 8 of them (two chains of 4, added) after the weights are widened from bytes to int16.
// The other candidate, SDOT (vdotq_s32: 16 int8 products into 4 int32), would need x in two signed bytes,
// x = 256 hi + lo: with lo signed, each block's largest |x|, which the rounding puts at exactly 32767,
// splits into lo = -1, hi = 128, which is not a signed byte; with lo unsigned it needs USDOT (ARMv8.6 I8MM,
// rare) or a correction of 128 sum(w) per block (a third dot per 16 weights). It would also need a second
// build for the CPUs without dot products (Cortex-A53/A72). vmlal_s16 is in every aarch64 CPU, one build,
// and the integers stay the x86 ones. Which is faster on a given ARM core was not measured: there is no ARM
// machine here, and qemu's timings say nothing about one.
//
// Each kernel takes R = 4 rows per call (x's block loaded once for all four, 8 independent accumulator
// chains) and 1 row for the last 1-3. No software prefetch: x86 needed it (v9); whether an ARM core does is
// for someone with one to measure. Checked under qemu by tests/native/neon_check.cpp (tests/test_neon_qemu.py).
#if defined(__aarch64__)
#include <arm_neon.h>

#include <cstring>
#include <type_traits>
#include <vector>

#include "kernels.h"  // GGML_Q4_0 .. GGML_Q6_K
#include "kernels_neon.h"
#include "matmul/blocks.h"

namespace ll {

// ======== the rounding of x ========
// --8<-- [start:quantize_act_i16_neon]
// x [n] -> q [n] int16, and per block of 32: d = max|x| / 32767, s = d * sum(q)   (n a multiple of 32)
// Step for step quantize_act_i16 (AVX-512) and quantize_act_i16_avx2: the same float division and products,
// vcvtnq (round to nearest, ties to even, as cvtps2dq), the sum of the int32 q's, vqmovn's saturation.
void quantize_act_i16_neon(const float* x, int64_t n, int16_t* q, float* d, float* s) {
    for (int64_t i = 0; i < n / QK; i++) {
        float32x4_t v[8], amax = vdupq_n_f32(0.0f);
        for (int k = 0; k < 8; k++) {
            v[k] = vld1q_f32(x + QK * i + 4 * k);
            amax = vmaxq_f32(amax, vabsq_f32(v[k]));
        }
        const float max_abs = vmaxvq_f32(amax);
        const float di = max_abs / 32767.0f, inv = max_abs > 0.0f ? 32767.0f / max_abs : 0.0f;
        int32x4_t sum = vdupq_n_s32(0);
        for (int k = 0; k < 8; k += 2) {
            const int32x4_t a = vcvtnq_s32_f32(vmulq_n_f32(v[k], inv)), b = vcvtnq_s32_f32(vmulq_n_f32(v[k + 1], inv));
            sum = vaddq_s32(sum, vaddq_s32(a, b));
            vst1q_s16(q + QK * i + 4 * k, vcombine_s16(vqmovn_s32(a), vqmovn_s32(b)));  // 8 int16, saturated
        }
        d[i] = di;
        s[i] = di * float(vaddvq_s32(sum));
    }
}
// --8<-- [end:quantize_act_i16_neon]

// ======== the integer products ========
// --8<-- [start:dot16_neon]
// 16 weights (signed bytes; every type's q fits one) times 16 activations (x0: elements 0-7, x1: 8-15), exactly:
// 4 int32 lanes of 4 products each. Widen the bytes to int16, then 4 widening multiply-accumulates.
static inline int32x4_t dot16(int8x16_t w, int16x8_t x0, int16x8_t x1) {
    const int16x8_t w0 = vmovl_s8(vget_low_s8(w)), w1 = vmovl_high_s8(w);
    int32x4_t acc = vmull_s16(vget_low_s16(w0), vget_low_s16(x0));
    acc = vmlal_high_s16(acc, w0, x0);
    acc = vmlal_s16(acc, vget_low_s16(w1), vget_low_s16(x1));
    return vmlal_high_s16(acc, w1, x1);
}
// --8<-- [end:dot16_neon]

// 32 activations as 4 registers of 8
struct X32 {
    int16x8_t v[4];
    explicit X32(const int16_t* xq) {
        for (int k = 0; k < 4; k++) v[k] = vld1q_s16(xq + 8 * k);
    }
};

// 32 weights (lo: elements 0-15, hi: 16-31) times a block of x: 4 int32 lanes, two chains of 4 added.
static inline int32x4_t dot32(int8x16_t lo, int8x16_t hi, const X32& x) {
    return vaddq_s32(dot16(lo, x.v[0], x.v[1]), dot16(hi, x.v[2], x.v[3]));
}

// 0x10 in byte j of lo (elements 0-15) / hi (16-31) where bit j of the 32 bits at qh is set: the fifth bits
// of Q5_0/Q5_1 (each byte of qh spread over 8 lanes, then tested against its lane's bit).
static inline void fifth_bits(const uint8_t* qh, uint8x16_t* lo, uint8x16_t* hi) {
    static const uint8_t kBit[16] = {1, 2, 4, 8, 16, 32, 64, 128, 1, 2, 4, 8, 16, 32, 64, 128};
    const uint8x16_t bit = vld1q_u8(kBit), sixteen = vdupq_n_u8(0x10);
    *lo = vandq_u8(vtstq_u8(vcombine_u8(vdup_n_u8(qh[0]), vdup_n_u8(qh[1])), bit), sixteen);
    *hi = vandq_u8(vtstq_u8(vcombine_u8(vdup_n_u8(qh[2]), vdup_n_u8(qh[3])), bit), sixteen);
}

// Up to 4 fp16 numbers, `stride` bytes apart from p, as floats (missing lanes 0)
template <int R>
static inline float32x4_t halves_to_f32(const uint8_t* p, int64_t stride) {
    uint16_t h[4] = {0, 0, 0, 0};
    for (int r = 0; r < R; r++) std::memcpy(&h[r], p + r * stride, 2);
    return vcvt_f32_f16(vreinterpret_f16_u16(vld1_u16(h)));
}

// Row r in lane r of R <= 4 rows: calls four(r) for each group of 4 rows and one(r) for the rest.
template <class Four, class One>
static inline void rows_by_four_neon(int64_t n_rows, Four four, One one) {
    int64_t r = 0;
    for (; r + 4 <= n_rows; r += 4) four(r);
    for (; r < n_rows; r++) one(r);
}

// ======== v11 (Q4_0, Q4_1, Q8_0) and v13 (Q5_0, Q5_1): blocks of 32 ========
// A block's layout, as the kernel reads it: bytes, whether it has an offset m, the zero point of its q's
// (w = d (q - zero) + m), where its quants start, and where Q5's fifth bits are.
template <int TYPE> struct Legacy;
template <> struct Legacy<GGML_Q4_0> { static constexpr int kBytes = 18, kQs = 2, kQh = -1, kZero = 8; static constexpr bool kM = false; };
template <> struct Legacy<GGML_Q4_1> { static constexpr int kBytes = 20, kQs = 4, kQh = -1, kZero = 0; static constexpr bool kM = true; };
template <> struct Legacy<GGML_Q5_0> { static constexpr int kBytes = 22, kQs = 6, kQh = 2, kZero = 16; static constexpr bool kM = false; };
template <> struct Legacy<GGML_Q5_1> { static constexpr int kBytes = 24, kQs = 8, kQh = 4, kZero = 0; static constexpr bool kM = true; };
template <> struct Legacy<GGML_Q8_0> { static constexpr int kBytes = 34, kQs = 2, kQh = -1, kZero = 0; static constexpr bool kM = false; };

// --8<-- [start:rows_i16_neon]
// y[r] = dot(row r, x) for R <= 4 rows rb bytes apart, x as quantize_act_i16_neon gives it (q, d, s).
// Per block: the R rows' fp16 d (and m) converted together, lane r = row r; per row: its 32 q's as two
// registers of signed bytes (nibbles, + fifth bits for Q5), dot32, then one FMA with d_w d_x.
template <int R, int TYPE>
static void rows_i16_neon(int64_t n, const uint8_t* w, int64_t rb, const int16_t* xq, const float* xd,
                          const float* xs, float* y) {
    using L = Legacy<TYPE>;
    float32x4_t acc[R];            // row r: sum of d_w d_x (q . xq), 4 lanes
    float32x4_t offset = vdupq_n_f32(0.0f);  // lane r: row r's sum of m_w s_x (Q4_1, Q5_1) or d_w s_x (Q4_0, Q5_0)
    for (int r = 0; r < R; r++) acc[r] = vdupq_n_f32(0.0f);
    for (int64_t i = 0; i < n / QK; i++) {
        const X32 x(xq + QK * i);
        const uint8_t* blocks = w + i * L::kBytes;  // row r's block: blocks + r rb
        const float32x4_t dw = halves_to_f32<R>(blocks, rb);
        float scale[4];
        vst1q_f32(scale, vmulq_n_f32(dw, xd[i]));  // d_w d_x per row
        if constexpr (L::kM) offset = vfmaq_n_f32(offset, halves_to_f32<R>(blocks + 2, rb), xs[i]);
        else if constexpr (L::kZero != 0) offset = vfmaq_n_f32(offset, dw, xs[i]);
        for (int r = 0; r < R; r++) {
            const uint8_t* b = blocks + r * rb;
            int8x16_t lo, hi;  // elements 0-15 and 16-31
            if constexpr (TYPE == GGML_Q8_0) {
                lo = vld1q_s8(reinterpret_cast<const int8_t*>(b + L::kQs));
                hi = vld1q_s8(reinterpret_cast<const int8_t*>(b + L::kQs + 16));
            } else {  // byte j: element j in the low nibble, j + 16 in the high
                const uint8x16_t qs = vld1q_u8(b + L::kQs);
                uint8x16_t l = vandq_u8(qs, vdupq_n_u8(0x0F)), h = vshrq_n_u8(qs, 4);
                if constexpr (L::kQh >= 0) {  // v13: + 16 where qh has the element's fifth bit (0..31: still a signed byte)
                    uint8x16_t fl, fh;
                    fifth_bits(b + L::kQh, &fl, &fh);
                    l = vorrq_u8(l, fl), h = vorrq_u8(h, fh);
                }
                lo = vreinterpretq_s8_u8(l), hi = vreinterpretq_s8_u8(h);
            }
            acc[r] = vfmaq_n_f32(acc[r], vcvtq_f32_s32(dot32(lo, hi, x)), scale[r]);
        }
    }
    float off[4];
    vst1q_f32(off, offset);
    const float offset_factor = L::kM ? 1.0f : -float(L::kZero);  // Q4_0: w = d_w (q - 8); Q5_0: (q - 16)
    for (int r = 0; r < R; r++) y[r] = vaddvq_f32(acc[r]) + offset_factor * off[r];
}
// --8<-- [end:rows_i16_neon]

template <int TYPE>
static void rows_legacy_all(int64_t n, const uint8_t* w, int64_t rb, int64_t n_rows, const int16_t* xq, const float* xd,
                            const float* xs, float* y, int64_t) {
    rows_by_four_neon(n_rows, [&](int64_t r) { rows_i16_neon<4, TYPE>(n, w + r * rb, rb, xq, xd, xs, y + r); },
                      [&](int64_t r) { rows_i16_neon<1, TYPE>(n, w + r * rb, rb, xq, xd, xs, y + r); });
}

// ======== v14 (Q4_K) and v16 (Q5_K): a super-block as 8 blocks of 32 ========
// A Q4_K/Q5_K super-block's 12 bytes of 6-bit codes -> 8 scale codes and 8 min codes, one byte each, four at a
// time with 32-bit masks (lesson 13's get_scale_min): codes 0-3 are the low 6 bits of bytes 0-3 (scales) and
// 4-7 (mins); codes 4-7 take their low 4 bits from bytes 8-11 and their top 2 from the top bits of bytes 0-7.
static inline void q4_k_codes(const uint8_t* scales12, uint8x8_t* sc, uint8x8_t* mn) {
    uint32_t u[3];
    std::memcpy(u, scales12, 12);
    const uint32_t low6 = 0x3F3F3F3F, low4 = 0x0F0F0F0F, low2 = 0x03030303;
    const uint64_t s0 = u[0] & low6, m0 = u[1] & low6;
    const uint64_t s1 = (u[2] & low4) | (((u[0] >> 6) & low2) << 4), m1 = ((u[2] >> 4) & low4) | (((u[1] >> 6) & low2) << 4);
    *sc = vcreate_u8(s0 | s1 << 32);
    *mn = vcreate_u8(m0 | m1 << 32);
}

static inline void u8x8_to_f32(uint8x8_t v, float32x4_t* lo, float32x4_t* hi) {  // 8 bytes -> 2 x 4 floats
    const uint16x8_t w = vmovl_u8(v);
    *lo = vcvtq_f32_u32(vmovl_u16(vget_low_u16(w)));
    *hi = vcvtq_f32_u32(vmovl_high_u16(w));
}

// --8<-- [start:rows_q4_k_neon]
// y[r] = dot(row r, x) for R Q4_K rows (FIVE: Q5_K, v16), rb bytes apart. A Q4_K super-block is 8 Q4_1 blocks
// whose (scale, offset) are (d sc_j, -dmin m_j): per super-block and row, scale[j] = d sc_j d_x and the offsets'
// sum - dmin m_j s_x (4 lanes); then 32 bytes of nibbles at a time: low nibbles sub-block 2i, high 2i + 1.
template <int R, bool FIVE>
static void rows_q4_k_neon(int64_t n, const uint8_t* w, int64_t rb, const int16_t* xq, const float* xd,
                           const float* xs, float* y) {
    using Block = std::conditional_t<FIVE, BlockQ5_K, BlockQ4_K>;
    float32x4_t acc[R], offset[R];
    for (int r = 0; r < R; r++) acc[r] = offset[r] = vdupq_n_f32(0.0f);
    float scale[R][8];
    for (int64_t k = 0; k < n / QK_K; k++) {
        const float32x4_t xd_lo = vld1q_f32(xd + 8 * k), xd_hi = vld1q_f32(xd + 8 * k + 4);
        const float32x4_t xs_lo = vld1q_f32(xs + 8 * k), xs_hi = vld1q_f32(xs + 8 * k + 4);
        for (int r = 0; r < R; r++) {
            const Block* b = reinterpret_cast<const Block*>(w + r * rb) + k;
            uint8x8_t sc, mn;
            q4_k_codes(b->scales, &sc, &mn);
            float32x4_t sc_lo, sc_hi, mn_lo, mn_hi;
            u8x8_to_f32(sc, &sc_lo, &sc_hi), u8x8_to_f32(mn, &mn_lo, &mn_hi);
            const float d = fp16_to_fp32(b->d), dmin = fp16_to_fp32(b->dmin);
            vst1q_f32(scale[r], vmulq_f32(vmulq_n_f32(sc_lo, d), xd_lo));  // d sc_j is exact in float32
            vst1q_f32(scale[r] + 4, vmulq_f32(vmulq_n_f32(sc_hi, d), xd_hi));
            offset[r] = vfmsq_f32(offset[r], vmulq_n_f32(mn_lo, dmin), xs_lo);  // - dmin m_j s_x
            offset[r] = vfmsq_f32(offset[r], vmulq_n_f32(mn_hi, dmin), xs_hi);
        }
        for (int i = 0; i < 4; i++) {  // 64 weights: sub-blocks 2i (low nibbles) and 2i + 1 (high)
            const X32 xa(xq + QK_K * k + 64 * i), xb(xq + QK_K * k + 64 * i + 32);
            for (int r = 0; r < R; r++) {
                const Block* b = reinterpret_cast<const Block*>(w + r * rb) + k;
                const uint8x16_t q0 = vld1q_u8(b->qs + 32 * i), q1 = vld1q_u8(b->qs + 32 * i + 16);  // elements 0-15, 16-31
                const uint8x16_t m4 = vdupq_n_u8(0x0F);
                uint8x16_t lo0 = vandq_u8(q0, m4), lo1 = vandq_u8(q1, m4), hi0 = vshrq_n_u8(q0, 4), hi1 = vshrq_n_u8(q1, 4);
                if constexpr (FIVE) {  // v16: bit 2i of qh[l] is sub-block 2i's element l's fifth bit, bit 2i + 1 sub-block 2i + 1's
                    const uint8x16_t h0 = vld1q_u8(b->qh), h1 = vld1q_u8(b->qh + 16), sixteen = vdupq_n_u8(0x10);
                    const uint8x16_t bit_lo = vdupq_n_u8(uint8_t(1 << (2 * i))), bit_hi = vdupq_n_u8(uint8_t(2 << (2 * i)));
                    lo0 = vorrq_u8(lo0, vandq_u8(vtstq_u8(h0, bit_lo), sixteen)), lo1 = vorrq_u8(lo1, vandq_u8(vtstq_u8(h1, bit_lo), sixteen));
                    hi0 = vorrq_u8(hi0, vandq_u8(vtstq_u8(h0, bit_hi), sixteen)), hi1 = vorrq_u8(hi1, vandq_u8(vtstq_u8(h1, bit_hi), sixteen));
                }
                const int32x4_t da = dot32(vreinterpretq_s8_u8(lo0), vreinterpretq_s8_u8(lo1), xa);
                const int32x4_t db = dot32(vreinterpretq_s8_u8(hi0), vreinterpretq_s8_u8(hi1), xb);
                acc[r] = vfmaq_n_f32(acc[r], vcvtq_f32_s32(da), scale[r][2 * i]);
                acc[r] = vfmaq_n_f32(acc[r], vcvtq_f32_s32(db), scale[r][2 * i + 1]);
            }
        }
    }
    for (int r = 0; r < R; r++) y[r] = vaddvq_f32(vaddq_f32(acc[r], offset[r]));
}
// --8<-- [end:rows_q4_k_neon]

// ======== v15 (Q6_K), v17 (Q3_K), v18 (Q2_K): a scale per 16 weights ========
// Each type as the loop below reads it: its 16 signed scale codes, (Q2_K) its 16 mins, and one half of the
// super-block (128 weights) as 8 x 16 signed q's in element order: q[2g] elements 32g..32g+15, q[2g+1] the next 16.
// (Element 128 h + 32 g + l of every type lives in byte l of its half's planes, at bits that depend on g.)

// Q6_K: w = d sc_s (q - 32); the low 4 bits of element l, 32 + l in ql[l], ql[32 + l] (64 + l, 96 + l: their
// high nibbles), the top 2 bits in qh[l], bits 2g.
struct Q6KNeon {
    using Block = BlockQ6_K;
    static constexpr bool kMins = false;
    static int8x16_t codes(const Block* b) { return vld1q_s8(b->scales); }
    static void unpack_half(const Block* b, int half, int8x16_t q[8]) {
        const uint8_t *ql = b->ql + 64 * half, *qh = b->qh + 32 * half;
        const uint8x16_t m4 = vdupq_n_u8(0x0F), m3 = vdupq_n_u8(0x03);
        const int8x16_t k32 = vdupq_n_s8(32);
        for (int part = 0; part < 2; part++) {  // l = 0-15, then 16-31
            const uint8x16_t l0 = vld1q_u8(ql + 16 * part), l1 = vld1q_u8(ql + 32 + 16 * part), h = vld1q_u8(qh + 16 * part);
            const uint8x16_t g[4] = {vorrq_u8(vandq_u8(l0, m4), vshlq_n_u8(vandq_u8(h, m3), 4)),
                                     vorrq_u8(vandq_u8(l1, m4), vshlq_n_u8(vandq_u8(vshrq_n_u8(h, 2), m3), 4)),
                                     vorrq_u8(vshrq_n_u8(l0, 4), vshlq_n_u8(vandq_u8(vshrq_n_u8(h, 4), m3), 4)),
                                     vorrq_u8(vshrq_n_u8(l1, 4), vshlq_n_u8(vshrq_n_u8(h, 6), 4))};
            for (int j = 0; j < 4; j++) q[2 * j + part] = vsubq_s8(vreinterpretq_s8_u8(g[j]), k32);  // 0..63 -> -32..31
        }
    }
};

// Q3_K: w = d (sc_s - 32) (q - 4), q three bits: two in qs[32 h + l], bits 2g, and one in hmask[l], bit 4 h + g.
// Scale s: its low 4 bits in byte s % 8 (low nibble for s < 8), its top 2 in byte 8 + s % 4, bits 2 (s / 4).
struct Q3KNeon {
    using Block = BlockQ3_K;
    static constexpr bool kMins = false;
    static int8x16_t codes(const Block* b) {
        uint32_t u[3];
        std::memcpy(u, b->scales, 12);
        const uint32_t low4 = 0x0F0F0F0F, low2 = 0x03030303;
        const uint32_t c[4] = {(u[0] & low4) | ((u[2] & low2) << 4),                 // scales 0-3
                               (u[1] & low4) | (((u[2] >> 2) & low2) << 4),          // 4-7
                               ((u[0] >> 4) & low4) | (((u[2] >> 4) & low2) << 4),   // 8-11
                               ((u[1] >> 4) & low4) | (((u[2] >> 6) & low2) << 4)};  // 12-15
        return vsubq_s8(vreinterpretq_s8_u32(vld1q_u32(c)), vdupq_n_s8(32));
    }
    static void unpack_half(const Block* b, int half, int8x16_t q[8]) {
        const uint8x16_t three = vdupq_n_u8(3), four = vdupq_n_u8(4);
        for (int part = 0; part < 2; part++) {
            const uint8x16_t qs = vld1q_u8(b->qs + 32 * half + 16 * part), hm = vld1q_u8(b->hmask + 16 * part);
            for (int g = 0; g < 4; g++) {  // (q | hbit << 2) - 4: -4..3
                const uint8x16_t low2 = vandq_u8(vshlq_u8(qs, vdupq_n_s8(int8_t(-2 * g))), three);  // (shift by -s: right by s)
                const uint8x16_t high = vandq_u8(vtstq_u8(hm, vdupq_n_u8(uint8_t(1 << (4 * half + g)))), four);
                q[2 * g + part] = vsubq_s8(vreinterpretq_s8_u8(vorrq_u8(low2, high)), vreinterpretq_s8_u8(four));
            }
        }
    }
};

// Q2_K: w = d sc_s q - dmin m_s, q two bits in qs[32 h + l], bits 2g; per 16 weights a byte: scale (low nibble),
// min (high). The mins' term takes x's sums per 16 (xs16, made once per call).
struct Q2KNeon {
    using Block = BlockQ2_K;
    static constexpr bool kMins = true;
    static int8x16_t codes(const Block* b) { return vreinterpretq_s8_u8(vandq_u8(vld1q_u8(b->scales), vdupq_n_u8(0x0F))); }
    static int8x16_t mins(const Block* b) { return vreinterpretq_s8_u8(vshrq_n_u8(vld1q_u8(b->scales), 4)); }
    static void unpack_half(const Block* b, int half, int8x16_t q[8]) {
        for (int part = 0; part < 2; part++) {
            const uint8x16_t qs = vld1q_u8(b->qs + 32 * half + 16 * part);
            for (int g = 0; g < 4; g++)
                q[2 * g + part] = vreinterpretq_s8_u8(vandq_u8(vshlq_u8(qs, vdupq_n_s8(int8_t(-2 * g))), vdupq_n_u8(3)));
        }
    }
};

static inline void s8x16_to_f32(int8x16_t v, float32x4_t f[4]) {  // 16 signed bytes -> 4 x 4 floats
    const int16x8_t lo = vmovl_s8(vget_low_s8(v)), hi = vmovl_high_s8(v);
    f[0] = vcvtq_f32_s32(vmovl_s16(vget_low_s16(lo))), f[1] = vcvtq_f32_s32(vmovl_high_s16(lo));
    f[2] = vcvtq_f32_s32(vmovl_s16(vget_low_s16(hi))), f[3] = vcvtq_f32_s32(vmovl_high_s16(hi));
}

// --8<-- [start:rows_q6_k_neon]
// y[r] = dot(row r, x) for R rows of T (Q6KNeon, Q3KNeon, Q2KNeon), rb bytes apart. A block of x's 32 covers
// two sub-blocks of 16: each its own integer sum (one dot16) and its own scale d sc_s d_x.
template <int R, class T>
static void rows_q6_k_neon(int64_t n, const uint8_t* w, int64_t rb, const int16_t* xq, const float* xd,
                           const float* xs16, float* y) {
    using Block = typename T::Block;
    float32x4_t acc[R];
    for (int r = 0; r < R; r++) acc[r] = vdupq_n_f32(0.0f);
    float sc[R][16];  // d sc_s d_x, s = 0..15
    for (int64_t k = 0; k < n / QK_K; k++) {
        // d_x of the block each sub-block of 16 is in: (xd0 xd0 xd1 xd1) (xd2 xd2 xd3 xd3) ...
        const float32x4_t xd_lo = vld1q_f32(xd + 8 * k), xd_hi = vld1q_f32(xd + 8 * k + 4);
        const float32x4_t dx[4] = {vzip1q_f32(xd_lo, xd_lo), vzip2q_f32(xd_lo, xd_lo), vzip1q_f32(xd_hi, xd_hi), vzip2q_f32(xd_hi, xd_hi)};
        for (int r = 0; r < R; r++) {
            const Block* b = reinterpret_cast<const Block*>(w + r * rb) + k;
            float32x4_t c[4];
            s8x16_to_f32(T::codes(b), c);
            const float d = fp16_to_fp32(b->d);
            for (int j = 0; j < 4; j++) vst1q_f32(sc[r] + 4 * j, vmulq_f32(vmulq_n_f32(c[j], d), dx[j]));
            if constexpr (T::kMins) {  // - dmin m_s (d_x sum of sub-block s's xq), 16 sub-blocks
                float32x4_t m[4];
                s8x16_to_f32(T::mins(b), m);
                const float dmin = fp16_to_fp32(b->dmin);
                for (int j = 0; j < 4; j++) acc[r] = vfmsq_f32(acc[r], vmulq_n_f32(m[j], dmin), vld1q_f32(xs16 + 16 * k + 4 * j));
            }
        }
        for (int half = 0; half < 2; half++)
            for (int r = 0; r < R; r++) {
                int8x16_t q[8];
                T::unpack_half(reinterpret_cast<const Block*>(w + r * rb) + k, half, q);
                for (int g = 0; g < 4; g++) {
                    const int blk = 4 * half + g;  // x's block within the super-block: sub-blocks 2 blk, 2 blk + 1
                    // (x is loaded again for each row, from L1: four rows' unpacked q's, 8 registers each, and x's
                    // 4 would not fit in NEON's 32 registers with the accumulators)
                    const X32 x(xq + QK_K * k + QK * blk);
                    acc[r] = vfmaq_n_f32(acc[r], vcvtq_f32_s32(dot16(q[2 * g], x.v[0], x.v[1])), sc[r][2 * blk]);
                    acc[r] = vfmaq_n_f32(acc[r], vcvtq_f32_s32(dot16(q[2 * g + 1], x.v[2], x.v[3])), sc[r][2 * blk + 1]);
                }
            }
    }
    for (int r = 0; r < R; r++) y[r] = vaddvq_f32(acc[r]);
}
// --8<-- [end:rows_q6_k_neon]

template <bool FIVE>
static void rows_q4_k_all(int64_t n, const uint8_t* w, int64_t rb, int64_t n_rows, const int16_t* xq, const float* xd,
                          const float* xs, float* y, int64_t) {
    rows_by_four_neon(n_rows, [&](int64_t r) { rows_q4_k_neon<4, FIVE>(n, w + r * rb, rb, xq, xd, xs, y + r); },
                      [&](int64_t r) { rows_q4_k_neon<1, FIVE>(n, w + r * rb, rb, xq, xd, xs, y + r); });
}

// Q2_K's mins: xs16[s] = d_x * (sum of the 16 xq of sub-block s), for the whole row of x (nullptr for other types)
template <class T>
static const float* sums_of_16(int64_t n, const int16_t* xq, const float* xd) {
    if (!T::kMins) return nullptr;
    thread_local std::vector<float> xs16;
    xs16.resize(size_t(n / 16));
    for (int64_t s = 0; s < n / 16; s++)
        xs16[size_t(s)] = xd[s / 2] * float(vaddlvq_s16(vld1q_s16(xq + 16 * s)) + vaddlvq_s16(vld1q_s16(xq + 16 * s + 8)));
    return xs16.data();
}

template <class T>
static void rows_q6_k_all(int64_t n, const uint8_t* w, int64_t rb, int64_t n_rows, const int16_t* xq, const float* xd,
                          const float*, float* y, int64_t) {
    const float* xs16 = sums_of_16<T>(n, xq, xd);
    rows_by_four_neon(n_rows, [&](int64_t r) { rows_q6_k_neon<4, T>(n, w + r * rb, rb, xq, xd, xs16, y + r); },
                      [&](int64_t r) { rows_q6_k_neon<1, T>(n, w + r * rb, rb, xq, xd, xs16, y + r); });
}

// The kernel of the NEON 16-bit steps up to `step` for a type: 11 Q4_0, Q4_1, Q8_0; 13 + Q5_0, Q5_1; 14 + Q4_K;
// 15 + Q6_K; 16 + Q5_K; 17 + Q3_K; 18 + Q2_K (the x86 steps' types). nullptr: none (the step hands it on).
RowsI16Fn rows_i16_kernel_neon(int ggml_type, int step) {
    switch (ggml_type) {
        case GGML_Q4_0: return rows_legacy_all<GGML_Q4_0>;
        case GGML_Q4_1: return rows_legacy_all<GGML_Q4_1>;
        case GGML_Q8_0: return rows_legacy_all<GGML_Q8_0>;
        case GGML_Q5_0: return step < 13 ? nullptr : rows_legacy_all<GGML_Q5_0>;
        case GGML_Q5_1: return step < 13 ? nullptr : rows_legacy_all<GGML_Q5_1>;
        case GGML_Q4_K: return step < 14 ? nullptr : rows_q4_k_all<false>;
        case GGML_Q6_K: return step < 15 ? nullptr : rows_q6_k_all<Q6KNeon>;
        case GGML_Q5_K: return step < 16 ? nullptr : rows_q4_k_all<true>;
        case GGML_Q3_K: return step < 17 ? nullptr : rows_q6_k_all<Q3KNeon>;
        case GGML_Q2_K: return step < 18 ? nullptr : rows_q6_k_all<Q2KNeon>;
        default: return nullptr;
    }
}

}  // namespace ll
#endif
