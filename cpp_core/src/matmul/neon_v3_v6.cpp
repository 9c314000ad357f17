// matmul/neon_v3_v6.cpp -- quant_matmul's aarch64 NEON versions: the x86 v3/v4 and v6 ideas with 128-bit registers.
//
//   v3_neon_int8        x quantized to 8 bits (Q8_0 / Q8_1, as v2), each block's integer sum with base NEON:
//                       vmull_s8 (8 s8 x s8 -> s16 products) and vpadalq_s16 (pairwise add into s32).
//                       Every aarch64 CPU (a Cortex-A53/A72, a Raspberry Pi 3/4, has no dot products).
//   v4_neon_dotprod     the same with SDOT (vdotq_s32: 16 s8 x s8 products summed into 4 int32 in one
//                       instruction); only on CPUs whose HWCAP announces ASIMDDP (optional in ARMv8.2-8.3).
//                       Both: Q4_0, Q4_1, Q5_0, Q5_1, Q8_0; other types use v2's scalar int8 dot. Exact: the same
//                       integers and the same float expression per block as v2, so bit-identical to v2.
//   v6_f32_tiled_neon   x stays float32: a block of 32 weights is dequantized into 8 registers of 4 floats
//                       and FMA'd into 1-8 tokens (Q4_0, Q4_1, Q8_0); other types run v4_neon_dotprod, or
//                       v3_neon_int8 without dot products. The aarch64 prompts' path (decoding: neon_i16_v11_v18.cpp).
// Checked under qemu by tests/native/neon_check.cpp: v3/v4 bit for bit against v2, v6 against v0 within
// float rounding. Not timed on ARM hardware.
#if defined(__aarch64__)
#include <arm_neon.h>

#include <algorithm>
#include <cstring>
#include <vector>

#include "kernels_neon.h"
#include "matmul/blocks.h"

namespace ll {

static constexpr int64_t kRowsPerTaskNeon = 16;  // as matmul/matmul.cpp: a few KB of weights per task

// ======== v3 / v4: int8 dot products ========
// The kernels are written once, as templates over how 16 byte products are summed (DotBytes), and built
// twice: with base NEON, and inside a "+dotprod" region with SDOT. They are always_inline so that each
// build inlines into a wrapper compiled for its own target (GCC only inlines SDOT into +dotprod code).
#define LL_NEON_INLINE __attribute__((always_inline)) static inline

// A Q4 block's 16 bytes -> elements 0-15 (low nibbles) and 16-31 (high nibbles), as bytes 0..15.
LL_NEON_INLINE void unpack_nibbles(const uint8_t* qs, int8x16_t* lo, int8x16_t* hi) {
    const uint8x16_t q = vld1q_u8(qs);
    *lo = vreinterpretq_s8_u8(vandq_u8(q, vdupq_n_u8(0x0F)));
    *hi = vreinterpretq_s8_u8(vshrq_n_u8(q, 4));
}

// Q5's fifth bits: bit j of qh belongs to element j. 0x10 where set, for elements 0-15 and 16-31.
LL_NEON_INLINE void fifth_bits(const uint8_t* qh_bytes, uint8x16_t* lo, uint8x16_t* hi) {
    static const uint8_t kBit[16] = {1, 2, 4, 8, 16, 32, 64, 128, 1, 2, 4, 8, 16, 32, 64, 128};
    const uint8x16_t bit = vld1q_u8(kBit);
    const uint8x16_t bytes_lo = vcombine_u8(vdup_n_u8(qh_bytes[0]), vdup_n_u8(qh_bytes[1]));  // qh bits 0-15
    const uint8x16_t bytes_hi = vcombine_u8(vdup_n_u8(qh_bytes[2]), vdup_n_u8(qh_bytes[3]));  // qh bits 16-31
    *lo = vandq_u8(vtstq_u8(bytes_lo, bit), vdupq_n_u8(0x10));
    *hi = vandq_u8(vtstq_u8(bytes_hi, bit), vdupq_n_u8(0x10));
}

// --8<-- [start:block_sumi]
// Base NEON: 8 products at a time widened to 16 bits (|q_w q_x| <= 128 * 127 fits), then added in pairs
// into the four 32-bit lanes.
struct DotBytesBase {
    LL_NEON_INLINE int32x4_t dot(int32x4_t acc, int8x16_t a, int8x16_t b) {
        acc = vpadalq_s16(acc, vmull_s8(vget_low_s8(a), vget_low_s8(b)));
        return vpadalq_s16(acc, vmull_high_s8(a, b));
    }
};

// sum_j w[j] a[j] over one block of 32, exactly, from the weight's two halves and the activation's.
template <class DotBytes>
LL_NEON_INLINE int block_sumi(int8x16_t w_lo, int8x16_t w_hi, const int8_t* a_qs) {
    int32x4_t acc = DotBytes::dot(vdupq_n_s32(0), w_lo, vld1q_s8(a_qs));
    acc = DotBytes::dot(acc, w_hi, vld1q_s8(a_qs + 16));
    return vaddvq_s32(acc);
}
// --8<-- [end:block_sumi]

// The float side of every kernel below is the scalar kernel's expression (matmul/dot_scalar_v2.cpp), block
// by block, so the result is bit-identical to v2.
template <class DotBytes>
LL_NEON_INLINE float dot_q4_0_q8_0_neon(int64_t n, const uint8_t* w, const void* act) {
    const BlockQ4_0* b = reinterpret_cast<const BlockQ4_0*>(w);
    const BlockQ8_0* a = static_cast<const BlockQ8_0*>(act);
    const int8x16_t eight = vdupq_n_s8(8);
    float sum = 0.0f;
    for (int64_t i = 0; i < n / QK; i++) {
        int8x16_t lo, hi;
        unpack_nibbles(b[i].qs, &lo, &hi);
        const int sumi = block_sumi<DotBytes>(vsubq_s8(lo, eight), vsubq_s8(hi, eight), a[i].qs);  // q - 8
        sum += fp16_to_fp32(b[i].d) * fp16_to_fp32(a[i].d) * float(sumi);
    }
    return sum;
}

// --8<-- [start:dot_q4_1_neon]
template <class DotBytes>
LL_NEON_INLINE float dot_q4_1_q8_1_neon(int64_t n, const uint8_t* w, const void* act) {
    const BlockQ4_1* b = reinterpret_cast<const BlockQ4_1*>(w);
    const BlockQ8_1* a = static_cast<const BlockQ8_1*>(act);
    float sum = 0.0f;
    for (int64_t i = 0; i < n / QK; i++) {
        int8x16_t lo, hi;  // 0..15: fits a signed byte, so the signed products serve
        unpack_nibbles(b[i].qs, &lo, &hi);
        const int sumi = block_sumi<DotBytes>(lo, hi, a[i].qs);
        sum += fp16_to_fp32(b[i].d) * fp16_to_fp32(a[i].d) * float(sumi) + fp16_to_fp32(b[i].m) * fp16_to_fp32(a[i].s);
    }
    return sum;
}
// --8<-- [end:dot_q4_1_neon]

template <class DotBytes>
LL_NEON_INLINE float dot_q5_0_q8_0_neon(int64_t n, const uint8_t* w, const void* act) {
    const BlockQ5_0* b = reinterpret_cast<const BlockQ5_0*>(w);
    const BlockQ8_0* a = static_cast<const BlockQ8_0*>(act);
    const int8x16_t sixteen = vdupq_n_s8(16);
    float sum = 0.0f;
    for (int64_t i = 0; i < n / QK; i++) {
        int8x16_t lo, hi;
        uint8x16_t h_lo, h_hi;
        unpack_nibbles(b[i].qs, &lo, &hi);
        fifth_bits(b[i].qh, &h_lo, &h_hi);
        lo = vsubq_s8(vorrq_s8(lo, vreinterpretq_s8_u8(h_lo)), sixteen);  // q - 16, q in 0..31
        hi = vsubq_s8(vorrq_s8(hi, vreinterpretq_s8_u8(h_hi)), sixteen);
        sum += fp16_to_fp32(b[i].d) * fp16_to_fp32(a[i].d) * float(block_sumi<DotBytes>(lo, hi, a[i].qs));
    }
    return sum;
}

template <class DotBytes>
LL_NEON_INLINE float dot_q5_1_q8_1_neon(int64_t n, const uint8_t* w, const void* act) {
    const BlockQ5_1* b = reinterpret_cast<const BlockQ5_1*>(w);
    const BlockQ8_1* a = static_cast<const BlockQ8_1*>(act);
    float sum = 0.0f;
    for (int64_t i = 0; i < n / QK; i++) {
        int8x16_t lo, hi;
        uint8x16_t h_lo, h_hi;
        unpack_nibbles(b[i].qs, &lo, &hi);
        fifth_bits(b[i].qh, &h_lo, &h_hi);
        lo = vorrq_s8(lo, vreinterpretq_s8_u8(h_lo));  // 0..31
        hi = vorrq_s8(hi, vreinterpretq_s8_u8(h_hi));
        const int sumi = block_sumi<DotBytes>(lo, hi, a[i].qs);
        sum += fp16_to_fp32(b[i].d) * fp16_to_fp32(a[i].d) * float(sumi) + fp16_to_fp32(b[i].m) * fp16_to_fp32(a[i].s);
    }
    return sum;
}

template <class DotBytes>
LL_NEON_INLINE float dot_q8_0_q8_0_neon(int64_t n, const uint8_t* w, const void* act) {
    const BlockQ8_0* b = reinterpret_cast<const BlockQ8_0*>(w);
    const BlockQ8_0* a = static_cast<const BlockQ8_0*>(act);
    float sum = 0.0f;
    for (int64_t i = 0; i < n / QK; i++) {
        const int sumi = block_sumi<DotBytes>(vld1q_s8(b[i].qs), vld1q_s8(b[i].qs + 16), a[i].qs);
        sum += fp16_to_fp32(b[i].d) * fp16_to_fp32(a[i].d) * float(sumi);
    }
    return sum;
}

// ---- v3: the kernels built for base NEON ----
static float dot_q4_0_base(int64_t n, const uint8_t* w, const void* a) { return dot_q4_0_q8_0_neon<DotBytesBase>(n, w, a); }
static float dot_q4_1_base(int64_t n, const uint8_t* w, const void* a) { return dot_q4_1_q8_1_neon<DotBytesBase>(n, w, a); }
static float dot_q5_0_base(int64_t n, const uint8_t* w, const void* a) { return dot_q5_0_q8_0_neon<DotBytesBase>(n, w, a); }
static float dot_q5_1_base(int64_t n, const uint8_t* w, const void* a) { return dot_q5_1_q8_1_neon<DotBytesBase>(n, w, a); }
static float dot_q8_0_base(int64_t n, const uint8_t* w, const void* a) { return dot_q8_0_q8_0_neon<DotBytesBase>(n, w, a); }

// ---- v4: the same kernels built with SDOT ----
// GCC 12's arm_neon.h defines vdotq_s32 for "arch=armv8.2-a+dotprod"; a plain "+dotprod" on top of the
// default armv8-a will not inline it. (SDOT is an ARMv8.2 extension: every CPU announcing it is v8.2+.)
// clang spells the region differently (and wants the feature name alone).
#if defined(__clang__)
#pragma clang attribute push(__attribute__((target("dotprod"))), apply_to = function)
#else
#pragma GCC push_options
#pragma GCC target("arch=armv8.2-a+dotprod")
#endif
struct DotBytesSdot {  // vdotq_s32(acc, a, b): lane k of acc += a[4k] b[4k] + ... + a[4k+3] b[4k+3]
    // plain inline (always_inline would be checked inside the template, before it lands in +dotprod code)
    static inline int32x4_t dot(int32x4_t acc, int8x16_t a, int8x16_t b) { return vdotq_s32(acc, a, b); }
};
static float dot_q4_0_sdot(int64_t n, const uint8_t* w, const void* a) { return dot_q4_0_q8_0_neon<DotBytesSdot>(n, w, a); }
static float dot_q4_1_sdot(int64_t n, const uint8_t* w, const void* a) { return dot_q4_1_q8_1_neon<DotBytesSdot>(n, w, a); }
static float dot_q5_0_sdot(int64_t n, const uint8_t* w, const void* a) { return dot_q5_0_q8_0_neon<DotBytesSdot>(n, w, a); }
static float dot_q5_1_sdot(int64_t n, const uint8_t* w, const void* a) { return dot_q5_1_q8_1_neon<DotBytesSdot>(n, w, a); }
static float dot_q8_0_sdot(int64_t n, const uint8_t* w, const void* a) { return dot_q8_0_q8_0_neon<DotBytesSdot>(n, w, a); }
#if defined(__clang__)
#pragma clang attribute pop
#else
#pragma GCC pop_options
#endif

// The NEON kernel for a type (sdot: the SDOT build), or nullptr (then v2's scalar kernel).
static VecDotFn neon_int8_kernel(int ggml_type, bool sdot) {
    switch (ggml_type) {
        case GGML_Q4_0: return sdot ? dot_q4_0_sdot : dot_q4_0_base;
        case GGML_Q4_1: return sdot ? dot_q4_1_sdot : dot_q4_1_base;
        case GGML_Q5_0: return sdot ? dot_q5_0_sdot : dot_q5_0_base;
        case GGML_Q5_1: return sdot ? dot_q5_1_sdot : dot_q5_1_base;
        case GGML_Q8_0: return sdot ? dot_q8_0_sdot : dot_q8_0_base;
        default: return nullptr;
    }
}

// matmul/matmul.cpp's int8 loop (v2..v4) with the NEON kernels: x quantized once per token, then one
// dot per (row, token), tokens outside and rows inside so a task's rows stay in L1.
static void matmul_int8_neon(bool sdot, const QuantType& t, const uint8_t* W, int64_t n_rows, int64_t n_cols,
                             const float* x, int64_t n_tok, float* y, ThreadPool& pool) {
    const VecDotFn dot = neon_int8_kernel(t.ggml_type, sdot) ? neon_int8_kernel(t.ggml_type, sdot) : t.dot[LEVEL_SCALAR];
    const size_t act_stride = act_row_bytes(t.act, n_cols);
    thread_local std::vector<uint8_t> act_buf;
    const uint8_t* act = reinterpret_cast<const uint8_t*>(x);  // float weights take x as is
    if (t.act != ActFormat::F32) {
        act_buf.resize(act_stride * size_t(n_tok));
        uint8_t* buf = act_buf.data();  // (a thread_local named inside the lambda would be each worker's own)
        pool.parallel_for(n_tok, [&](int64_t begin, int64_t end) {
            for (int64_t tok = begin; tok < end; tok++) quantize_act_row(t.act, x + tok * n_cols, buf + tok * act_stride, n_cols);
        });
        act = buf;
    }
    const size_t rb = size_t(n_cols / t.block_size) * t.block_bytes;
    const int64_t n_tasks = (n_rows + kRowsPerTaskNeon - 1) / kRowsPerTaskNeon;
    pool.parallel_for(n_tasks, [&](int64_t begin, int64_t end) {
        const int64_t r0 = begin * kRowsPerTaskNeon, r1 = std::min(n_rows, end * kRowsPerTaskNeon);
        for (int64_t tok = 0; tok < n_tok; tok++)
            for (int64_t r = r0; r < r1; r++) y[tok * n_rows + r] = dot(n_cols, W + r * rb, act + tok * act_stride);
    });
}

void matmul_int8_neon(const QuantType& t, const uint8_t* W, int64_t n_rows, int64_t n_cols, const float* x,
                      int64_t n_tok, float* y, ThreadPool& pool) {
    matmul_int8_neon(false, t, W, n_rows, n_cols, x, n_tok, y, pool);
}
void matmul_int8_dotprod_neon(const QuantType& t, const uint8_t* W, int64_t n_rows, int64_t n_cols, const float* x,
                              int64_t n_tok, float* y, ThreadPool& pool) {
    matmul_int8_neon(true, t, W, n_rows, n_cols, x, n_tok, y, pool);
}

// ======== v6: float activations, each block dequantized in registers once for 1-8 tokens ========
// A block of 32 weights -> w[0..7], 4 floats each, in element order: d q, or d q + m for Q4_1.
static inline void widen_s8_to_f32(int8x16_t q, float32x4_t d, float32x4_t* w) {  // 16 bytes -> 4 x 4 floats
    const int16x8_t lo = vmovl_s8(vget_low_s8(q)), hi = vmovl_high_s8(q);
    w[0] = vmulq_f32(vcvtq_f32_s32(vmovl_s16(vget_low_s16(lo))), d);
    w[1] = vmulq_f32(vcvtq_f32_s32(vmovl_high_s16(lo)), d);
    w[2] = vmulq_f32(vcvtq_f32_s32(vmovl_s16(vget_low_s16(hi))), d);
    w[3] = vmulq_f32(vcvtq_f32_s32(vmovl_high_s16(hi)), d);
}

struct DequantQ4_0 {
    static constexpr int kBytes = sizeof(BlockQ4_0);
    static inline void run(const uint8_t* block, float32x4_t* w) {
        const BlockQ4_0* b = reinterpret_cast<const BlockQ4_0*>(block);
        const float32x4_t d = vdupq_n_f32(fp16_to_fp32(b->d));
        const uint8x16_t q = vld1q_u8(b->qs);
        const int8x16_t eight = vdupq_n_s8(8);
        widen_s8_to_f32(vsubq_s8(vreinterpretq_s8_u8(vandq_u8(q, vdupq_n_u8(0x0F))), eight), d, w);  // elements 0-15
        widen_s8_to_f32(vsubq_s8(vreinterpretq_s8_u8(vshrq_n_u8(q, 4)), eight), d, w + 4);          // 16-31
    }
};

struct DequantQ4_1 {
    static constexpr int kBytes = sizeof(BlockQ4_1);
    static inline void run(const uint8_t* block, float32x4_t* w) {
        const BlockQ4_1* b = reinterpret_cast<const BlockQ4_1*>(block);
        const float32x4_t d = vdupq_n_f32(fp16_to_fp32(b->d)), m = vdupq_n_f32(fp16_to_fp32(b->m));
        const uint8x16_t q = vld1q_u8(b->qs);
        widen_s8_to_f32(vreinterpretq_s8_u8(vandq_u8(q, vdupq_n_u8(0x0F))), d, w);  // 0..15 as s8 is the same
        widen_s8_to_f32(vreinterpretq_s8_u8(vshrq_n_u8(q, 4)), d, w + 4);
        for (int k = 0; k < 8; k++) w[k] = vaddq_f32(w[k], m);  // d q + m
    }
};

struct DequantQ8_0 {
    static constexpr int kBytes = sizeof(BlockQ8_0);
    static inline void run(const uint8_t* block, float32x4_t* w) {
        const BlockQ8_0* b = reinterpret_cast<const BlockQ8_0*>(block);
        const float32x4_t d = vdupq_n_f32(fp16_to_fp32(b->d));
        widen_s8_to_f32(vld1q_s8(b->qs), d, w);
        widen_s8_to_f32(vld1q_s8(b->qs + 16), d, w + 4);
    }
};

// --8<-- [start:f32_tiled_neon]
// One row against NT tokens: two accumulators per token (NT <= 8: 16 + 8 weight registers of 32).
template <int NT, class Dequant>
static void f32_tiled_neon(int64_t n, const uint8_t* w_row, const float* const* xs, float* y) {
    float32x4_t acc0[NT], acc1[NT];
    for (int t = 0; t < NT; t++) acc0[t] = acc1[t] = vdupq_n_f32(0.0f);
    for (int64_t i = 0; i < n / QK; i++) {
        float32x4_t w[8];  // the block's 32 weights
        Dequant::run(w_row + i * Dequant::kBytes, w);
        for (int t = 0; t < NT; t++) {  // used for every token of the tile
            const float* xt = xs[t] + i * QK;
            for (int k = 0; k < 8; k += 2) {
                acc0[t] = vfmaq_f32(acc0[t], w[k], vld1q_f32(xt + 4 * k));
                acc1[t] = vfmaq_f32(acc1[t], w[k + 1], vld1q_f32(xt + 4 * k + 4));
            }
        }
    }
    for (int t = 0; t < NT; t++) y[t] = vaddvq_f32(vaddq_f32(acc0[t], acc1[t]));
}
// --8<-- [end:f32_tiled_neon]

using TiledDotNeon = void (*)(int64_t, const uint8_t*, const float* const*, float*);

template <class Dequant>
static TiledDotNeon tiled_for(int nt) {  // the kernel for a tile of nt tokens (1..8)
    static const TiledDotNeon table[8] = {f32_tiled_neon<1, Dequant>, f32_tiled_neon<2, Dequant>, f32_tiled_neon<3, Dequant>,
                                          f32_tiled_neon<4, Dequant>, f32_tiled_neon<5, Dequant>, f32_tiled_neon<6, Dequant>,
                                          f32_tiled_neon<7, Dequant>, f32_tiled_neon<8, Dequant>};
    return table[nt - 1];
}

template <class Dequant>
static void matmul_tiled(const QuantType& t, const uint8_t* W, int64_t n_rows, int64_t n_cols, const float* x,
                         int64_t n_tok, float* y, ThreadPool& pool) {
    constexpr int kTile = 8;
    const size_t rb = size_t(n_cols / t.block_size) * t.block_bytes;
    const int64_t n_tasks = (n_rows + kRowsPerTaskNeon - 1) / kRowsPerTaskNeon;
    pool.parallel_for(n_tasks, [&](int64_t begin, int64_t end) {
        const int64_t r0 = begin * kRowsPerTaskNeon, r1 = std::min(n_rows, end * kRowsPerTaskNeon);
        const float* xs[kTile];
        float out[kTile];
        for (int64_t t0 = 0; t0 < n_tok; t0 += kTile) {
            const int nt = int(std::min<int64_t>(kTile, n_tok - t0));
            const TiledDotNeon dot = tiled_for<Dequant>(nt);
            for (int k = 0; k < nt; k++) xs[k] = x + (t0 + k) * n_cols;
            for (int64_t r = r0; r < r1; r++) {
                dot(n_cols, W + r * rb, xs, out);
                for (int k = 0; k < nt; k++) y[(t0 + k) * n_rows + r] = out[k];
            }
        }
    });
}

void matmul_f32_tiled_neon(const QuantType& t, const uint8_t* W, int64_t n_rows, int64_t n_cols, const float* x,
                           int64_t n_tok, float* y, ThreadPool& pool) {
    switch (t.ggml_type) {
        case GGML_Q4_0: return matmul_tiled<DequantQ4_0>(t, W, n_rows, n_cols, x, n_tok, y, pool);
        case GGML_Q4_1: return matmul_tiled<DequantQ4_1>(t, W, n_rows, n_cols, x, n_tok, y, pool);
        case GGML_Q8_0: return matmul_tiled<DequantQ8_0>(t, W, n_rows, n_cols, x, n_tok, y, pool);
        default: break;
    }
    matmul_int8_neon(detail::cpu_neon_dotprod(), t, W, n_rows, n_cols, x, n_tok, y, pool);  // int8, like x86's v6
}

std::string matmul_neon_kernel_name(const std::string& version, const QuantType& t) {
    const bool tiled = t.ggml_type == GGML_Q4_0 || t.ggml_type == GGML_Q4_1 || t.ggml_type == GGML_Q8_0;
    if (version == "v6_f32_tiled_neon" && tiled) return std::string(t.name) + " dequantized in registers x f32 neon, 1-8 tokens per block";
    const bool sdot = version == "v4_neon_dotprod" || (version == "v6_f32_tiled_neon" && detail::cpu_neon_dotprod());
    if (!neon_int8_kernel(t.ggml_type, sdot)) return t.dot_name[LEVEL_SCALAR];
    return std::string(t.name) + (t.act == ActFormat::Q8_1 ? " x q8_1" : " x q8_0") + (sdot ? " neon dotprod" : " neon");
}

}  // namespace ll
#endif
