// matmul/matmul.cpp -- y[t, r] = sum_c W[r, c] x[t, c] straight from the quantized rows, numbered versions.
//
//   v0_scalar_dequant  the lesson, line by line: dequantize a row to floats, dot it with each token; one thread
//   v1_threads         v0 with the rows split over the thread pool
//   v2_int8            quantize x once to 8 bits (Q8_0/Q8_1/Q8_K), then exact integer dot products per block
//   v3_avx2            v2 with AVX2 dot products (vpmaddubsw: 32 u8 x s8 products per instruction)
//   v4_avx512vnni      v3 with AVX-512 VNNI (vpdpbusd: 64 u8 x s8 products summed into 16 int32 per instruction)
//   v4b_f32act         v4's loop with x kept in float32: dequantize-and-FMA (Q4_1, Q8_0)
//   v5_pairs           activations laid out to match the unpacked weights, weight scales gathered 16 at a
//                      time, and each unpacked weight block used for up to 8 tokens (Q4_0, Q4_1, Q8_0)
//   v6_f32_tiled_avx2  x stays float32 (no activation rounding), each block dequantized in
//   v6_f32_tiled       registers once for up to 4 (AVX2) or 8 (AVX-512) tokens; the F32 model's product
//                      (Q4_0, Q4_1, Q8_0; AVX-512 also Q4_K, Q6_K)
//   v7_rows4           v6, with 1-2 tokens (decoding) done four rows per call: 8 FMA chains, x loaded once
//   v8_rows4_lut       v7 with 4-bit weights looked up (vpermps) in the block's 16 values: fewer uops
//   v9_prefetch        v8 with software prefetch 2 KB ahead. v7-v9 are bit-identical to v6.
//   v10_gemm           prompts (12+ tokens; 3+ for types v9 does in int8) dequantize each weight
//                      row ONCE (any type) and run a register-blocked float32 GEMM (8 rows x 48 tokens in
//                      registers); shorter products run v9.
//   v10_gemm_avx2      v10 with AVX2 (6 rows x 16 tokens); shorter products run v6's AVX2 build.
//   v11_i16_decode     v10, with one token's activations rounded to 16 bits (vpdpwssd).
//   v12_i16_row_pairs  the fast path: v11 with two rows of 4-bit weights per register, scales gathered across rows, one reduction for four rows.
//   v11_i16_decode_avx2  v11 with AVX2's vpmaddwd (no VNNI): the fast path where AVX-512 is missing.
//   v13_i12_decode_avx2  v11 AVX2 with activations rounded to 12 bits, low nibbles unmasked: 4.6% faster decoding,
//                      17x coarser rounding, so not the fast path (it gives up the F32 model's accuracy).
//                      Fast path = first of v12, v11, v10, v9, v6 AVX-512, v11 AVX2, v10 AVX2, v6 AVX2, v6 NEON, v1 this CPU runs.
//   (aarch64)          v3_neon_int8, v4_neon_dotprod, v6_f32_tiled_neon: matmul/neon_v3_v5.cpp, checked under qemu (tests/native/)
// Every version is checked against numpy's dequantize-then-matmul (tests/test_cpp_kernels_matmul.py).
#include <algorithm>
#include <cstdlib>
#include <stdexcept>
#include <string>
#include <vector>
#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#endif

#include "cpu/features.h"
#include "kernels.h"
#include "kernels_neon.h"  // aarch64 versions (empty elsewhere)
#include "matmul/blocks.h"
#include "matmul/pairs.h"
#include "cpu/simd_x86.h"  // prefetch_rows_ahead (x86 only; empty elsewhere)

namespace ll {

static bool v9_is_float(int ggml_type) {  // v9 (or what it falls back to) keeps x in float32 for this type
    switch (ggml_type) {
        case GGML_F32: case GGML_F16: case GGML_BF16: case GGML_Q4_0: case GGML_Q4_1: case GGML_Q8_0:
        case GGML_Q4_K: case GGML_Q6_K: return true;
        default: return false;
    }
}

// Fewest tokens for which v10 (AVX-512) and v10_gemm_avx2 run their GEMM (measured: see v10 below).
static int64_t gemm_min_tokens(int ggml_type) { return v9_is_float(ggml_type) ? 12 : 3; }
static bool v6_avx2_is_float(int ggml_type) {
    switch (ggml_type) {
        case GGML_F32: case GGML_F16: case GGML_BF16: case GGML_Q4_0: case GGML_Q4_1: case GGML_Q8_0: return true;
        default: return false;
    }
}
static int64_t gemm_avx2_min_tokens(int ggml_type) { return v6_avx2_is_float(ggml_type) ? 12 : 3; }

using MatmulFn = void (*)(const QuantType&, const uint8_t*, int64_t, int64_t, const float*, int64_t, float*, ThreadPool&);

// Rows per task: a few KB of weights, enough to be worth the scheduling (the pool then groups
// tasks into a few chunks per thread).
static constexpr int64_t kRowsPerTask = 16;

// ---- v0: dequantize, then dot (the numpy lesson: x @ dequantize(W).T) ----
// --8<-- [start:matmul_v0]
static void dequant_rows_times_x(const QuantType& t, const uint8_t* W, int64_t row_begin, int64_t row_end,
                                 int64_t n_rows, int64_t n_cols, const float* x, int64_t n_tok, float* y) {
    const size_t rb = size_t(n_cols / t.block_size) * t.block_bytes;
    thread_local std::vector<float> w_row;
    w_row.resize(size_t(n_cols));
    for (int64_t r = row_begin; r < row_end; r++) {
        t.dequantize_row(W + r * rb, w_row.data(), n_cols);  // [n_cols] floats
        for (int64_t tok = 0; tok < n_tok; tok++) {
            const float* xt = x + tok * n_cols;
            float sum = 0.0f;
            for (int64_t c = 0; c < n_cols; c++) sum += w_row[size_t(c)] * xt[c];
            y[tok * n_rows + r] = sum;
        }
    }
}
// --8<-- [end:matmul_v0]

static void matmul_v0(const QuantType& t, const uint8_t* W, int64_t n_rows, int64_t n_cols, const float* x,
                      int64_t n_tok, float* y, ThreadPool&) {
    dequant_rows_times_x(t, W, 0, n_rows, n_rows, n_cols, x, n_tok, y);
}

// ---- v1: the same work, rows split over the pool (each row's result is independent) ----
static void matmul_v1(const QuantType& t, const uint8_t* W, int64_t n_rows, int64_t n_cols, const float* x,
                      int64_t n_tok, float* y, ThreadPool& pool) {
    const int64_t n_tasks = (n_rows + kRowsPerTask - 1) / kRowsPerTask;
    pool.parallel_for(n_tasks, [&](int64_t begin, int64_t end) {
        dequant_rows_times_x(t, W, begin * kRowsPerTask, std::min(n_rows, end * kRowsPerTask), n_rows, n_cols, x, n_tok, y);
    });
}

// ---- v2..v4: quantize the activations once, then one dot kernel per (row, token) ----
// The level picks the dot kernel; a type without a kernel at that level uses the next lower one.
static VecDotFn dot_for_level(const QuantType& t, int level) {
    for (int l = level; l >= 0; l--)
        if (t.dot[l]) return t.dot[l];
    return t.dot[0];
}
static const char* dot_name_for_level(const QuantType& t, int level) {
    for (int l = level; l >= 0; l--)
        if (t.dot[l]) return t.dot_name[l];
    return t.dot_name[0];
}

// x -> one activation row per token, in the weight type's partner format. Tokens split over the pool.
static const uint8_t* quantize_activations(const QuantType& t, const float* x, int64_t n_tok, int64_t n_cols,
                                           ThreadPool& pool, std::vector<uint8_t>& buf, size_t* act_stride) {
    *act_stride = act_row_bytes(t.act, n_cols);
    if (t.act == ActFormat::F32) return reinterpret_cast<const uint8_t*>(x);  // float weights: x as is
    buf.resize(*act_stride * size_t(n_tok));
    const size_t stride = *act_stride;
    pool.parallel_for(n_tok, [&](int64_t begin, int64_t end) {
        for (int64_t tok = begin; tok < end; tok++) quantize_act_row(t.act, x + tok * n_cols, buf.data() + tok * stride, n_cols);
    });
    return buf.data();
}

// --8<-- [start:matmul_int8]
static void matmul_int8_level(int level, const QuantType& t, const uint8_t* W, int64_t n_rows, int64_t n_cols,
                              const float* x, int64_t n_tok, float* y, ThreadPool& pool) {
    thread_local std::vector<uint8_t> act_buf;
    size_t act_stride;
    const uint8_t* act = quantize_activations(t, x, n_tok, n_cols, pool, act_buf, &act_stride);
    const VecDotFn dot = dot_for_level(t, level);
    const size_t rb = size_t(n_cols / t.block_size) * t.block_bytes;
    const int64_t n_tasks = (n_rows + kRowsPerTask - 1) / kRowsPerTask;
    pool.parallel_for(n_tasks, [&](int64_t begin, int64_t end) {
        const int64_t r0 = begin * kRowsPerTask, r1 = std::min(n_rows, end * kRowsPerTask);
        // tokens outside, rows inside: the chunk's rows (a few KB) stay in L1 while every token passes by
        for (int64_t tok = 0; tok < n_tok; tok++)
            for (int64_t r = r0; r < r1; r++) y[tok * n_rows + r] = dot(n_cols, W + r * rb, act + tok * act_stride);
    });
}
// --8<-- [end:matmul_int8]

static void matmul_v2(const QuantType& t, const uint8_t* W, int64_t n_rows, int64_t n_cols, const float* x,
                      int64_t n_tok, float* y, ThreadPool& pool) {
    matmul_int8_level(LEVEL_SCALAR, t, W, n_rows, n_cols, x, n_tok, y, pool);
}
static void matmul_v3(const QuantType& t, const uint8_t* W, int64_t n_rows, int64_t n_cols, const float* x,
                      int64_t n_tok, float* y, ThreadPool& pool) {
    matmul_int8_level(LEVEL_AVX2, t, W, n_rows, n_cols, x, n_tok, y, pool);
}
static void matmul_v4(const QuantType& t, const uint8_t* W, int64_t n_rows, int64_t n_cols, const float* x,
                      int64_t n_tok, float* y, ThreadPool& pool) {
    matmul_int8_level(LEVEL_AVX512, t, W, n_rows, n_cols, x, n_tok, y, pool);
}

#if defined(__x86_64__) || defined(__i386__)
// ---- v4b: the alternative to int8 activations: x stays float32, weights dequantized in registers ----
// Q4_1 and Q8_0 only (other types run v4). Not the fast path: see docs/20-kernels-matmul.md for why.
float dot_q4_1_f32act_avx512(int64_t n, const uint8_t* w, const float* x, const float* x_block_sums);
float dot_q8_0_f32act_avx512(int64_t n, const uint8_t* w, const float* x, const float* x_block_sums);

static void matmul_v4b(const QuantType& t, const uint8_t* W, int64_t n_rows, int64_t n_cols, const float* x,
                       int64_t n_tok, float* y, ThreadPool& pool) {
    using F32ActDot = float (*)(int64_t, const uint8_t*, const float*, const float*);
    F32ActDot dot;
    if (t.ggml_type == GGML_Q4_1) dot = dot_q4_1_f32act_avx512;
    else if (t.ggml_type == GGML_Q8_0) dot = dot_q8_0_f32act_avx512;
    else return matmul_v4(t, W, n_rows, n_cols, x, n_tok, y, pool);
    const int64_t nb = n_cols / QK;
    std::vector<float> block_sums(size_t(n_tok * nb));  // sum of x per block of 32, per token
    for (int64_t i = 0; i < n_tok * nb; i++) {
        float s = 0.0f;
        for (int j = 0; j < QK; j++) s += x[i * QK + j];
        block_sums[size_t(i)] = s;
    }
    const size_t rb = size_t(nb) * t.block_bytes;
    const float* sums = block_sums.data();
    const int64_t n_tasks = (n_rows + kRowsPerTask - 1) / kRowsPerTask;
    pool.parallel_for(n_tasks, [&](int64_t begin, int64_t end) {
        const int64_t r0 = begin * kRowsPerTask, r1 = std::min(n_rows, end * kRowsPerTask);
        for (int64_t tok = 0; tok < n_tok; tok++)
            for (int64_t r = r0; r < r1; r++) y[tok * n_rows + r] = dot(n_cols, W + r * rb, x + tok * n_cols, sums + tok * nb);
    });
}
#endif

#if defined(__x86_64__) || defined(__i386__)
// ---- v5: activations laid out for the unpacked weights, scales hoisted, 1-8 tokens per weight block ----
// Only Q4_0, Q4_1 and Q8_0 (the default model's types) have v5 kernels; other types run v4.
using PairsDotFn = void (*)(int64_t, const uint8_t*, const ActPairsView*, int, float*);
static constexpr int kPairsTokens = 8;  // tokens per unpacked weight block (the kernels take 1..8)

// --8<-- [start:matmul_v5]
static void matmul_v5(const QuantType& t, const uint8_t* W, int64_t n_rows, int64_t n_cols, const float* x,
                      int64_t n_tok, float* y, ThreadPool& pool) {
    PairsKind kind;
    PairsDotFn dot;
    switch (t.ggml_type) {
        case GGML_Q4_1: kind = PairsKind::Q4_1, dot = dot_q4_1_pairs_avx512; break;
        case GGML_Q4_0: kind = PairsKind::Q4_0, dot = dot_q4_0_pairs_avx512; break;
        case GGML_Q8_0: kind = PairsKind::Q8_0, dot = dot_q8_0_pairs_avx512; break;
        default: return matmul_v4(t, W, n_rows, n_cols, x, n_tok, y, pool);
    }
    thread_local std::vector<uint8_t> act_buf;
    thread_local std::vector<ActPairsView> views;
    const size_t act_stride = act_pairs_bytes(n_cols);
    act_buf.resize(act_stride * size_t(n_tok) + 64);
    uint8_t* act = reinterpret_cast<uint8_t*>((reinterpret_cast<uintptr_t>(act_buf.data()) + 63) & ~uintptr_t(63));
    pool.parallel_for(n_tok, [&](int64_t begin, int64_t end) {
        for (int64_t tok = begin; tok < end; tok++) quantize_act_pairs(kind, x + tok * n_cols, act + tok * act_stride, n_cols);
    });
    views.resize(size_t(n_tok));
    for (int64_t tok = 0; tok < n_tok; tok++) views[size_t(tok)] = act_pairs_view(act + tok * act_stride, n_cols);
    const ActPairsView* view = views.data();  // (a thread_local named inside the lambda would be each worker's own)

    const size_t rb = size_t(n_cols / t.block_size) * t.block_bytes;
    // Tokens are walked in tiles whose activations fit in L1 next to the task's rows (~24 KB of them);
    // inside a tile each row is read once per 8 tokens.
    const int64_t tile = std::max<int64_t>(kPairsTokens, std::min<int64_t>(32, int64_t(24 * 1024 / act_stride)) & ~int64_t(kPairsTokens - 1));
    const int64_t n_tasks = (n_rows + kRowsPerTask - 1) / kRowsPerTask;
    pool.parallel_for(n_tasks, [&](int64_t begin, int64_t end) {
        const int64_t r0 = begin * kRowsPerTask, r1 = std::min(n_rows, end * kRowsPerTask);
        float out[kPairsTokens];
        for (int64_t t0 = 0; t0 < n_tok; t0 += tile) {
            const int64_t t1 = std::min(n_tok, t0 + tile);
            for (int64_t r = r0; r < r1; r++)
                for (int64_t tok = t0; tok < t1; tok += kPairsTokens) {
                    const int nt = int(std::min<int64_t>(kPairsTokens, t1 - tok));
                    dot(n_cols, W + r * rb, view + tok, nt, out);
                    for (int k = 0; k < nt; k++) y[(tok + k) * n_rows + r] = out[k];
                }
        }
    });
}
// --8<-- [end:matmul_v5]
#endif

#if defined(__x86_64__) || defined(__i386__)
// ---- v6: float32 activations again, now tiled: each dequantized block used for several tokens ----
// The fast path. v5 is faster on prompts, but int8 activations cost accuracy (see the docs page);
// v6 computes the F32 model's product. Two builds of the idea: AVX-512 (8 tokens per block; Q4_0, Q4_1,
// Q8_0, Q4_K, Q6_K) and AVX2 (4 tokens; Q4_0, Q4_1, Q8_0). Other types run v5 (AVX-512) or v3 (AVX2).
using TiledDot = void (*)(int64_t, const uint8_t*, const float* const*, int, float*);
void dot_q4_0_f32tiled_avx512(int64_t n, const uint8_t* w, const float* const* xs, int n_tok, float* y);
void dot_q4_1_f32tiled_avx512(int64_t n, const uint8_t* w, const float* const* xs, int n_tok, float* y);
void dot_q8_0_f32tiled_avx512(int64_t n, const uint8_t* w, const float* const* xs, int n_tok, float* y);
void dot_q4_k_f32tiled_avx512(int64_t n, const uint8_t* w, const float* const* xs, int n_tok, float* y);
void dot_q6_k_f32tiled_avx512(int64_t n, const uint8_t* w, const float* const* xs, int n_tok, float* y);
void dot_q4_0_f32tiled_avx2(int64_t n, const uint8_t* w, const float* const* xs, int n_tok, float* y);
void dot_q4_1_f32tiled_avx2(int64_t n, const uint8_t* w, const float* const* xs, int n_tok, float* y);
void dot_q8_0_f32tiled_avx2(int64_t n, const uint8_t* w, const float* const* xs, int n_tok, float* y);

// --8<-- [start:matmul_v6]
static void matmul_f32_tiled(TiledDot dot, int tile_tokens, const QuantType& t, const uint8_t* W, int64_t n_rows,
                             int64_t n_cols, const float* x, int64_t n_tok, float* y, ThreadPool& pool) {
    const size_t rb = size_t(n_cols / t.block_size) * t.block_bytes;
    const int64_t n_tasks = (n_rows + kRowsPerTask - 1) / kRowsPerTask;
    pool.parallel_for(n_tasks, [&](int64_t begin, int64_t end) {
        const int64_t r0 = begin * kRowsPerTask, r1 = std::min(n_rows, end * kRowsPerTask);
        const float* xs[kPairsTokens];
        float out[kPairsTokens];
        for (int64_t t0 = 0; t0 < n_tok; t0 += tile_tokens) {  // a tile's token rows: 9-48 KB, about L1
            const int nt = int(std::min<int64_t>(tile_tokens, n_tok - t0));
            for (int k = 0; k < nt; k++) xs[k] = x + (t0 + k) * n_cols;
            for (int64_t r = r0; r < r1; r++) {
                dot(n_cols, W + r * rb, xs, nt, out);
                for (int k = 0; k < nt; k++) y[(t0 + k) * n_rows + r] = out[k];
            }
        }
    });
}

static void matmul_v6_avx512(const QuantType& t, const uint8_t* W, int64_t n_rows, int64_t n_cols, const float* x,
                             int64_t n_tok, float* y, ThreadPool& pool) {
    TiledDot dot;
    switch (t.ggml_type) {
        case GGML_Q4_0: dot = dot_q4_0_f32tiled_avx512; break;
        case GGML_Q4_1: dot = dot_q4_1_f32tiled_avx512; break;
        case GGML_Q8_0: dot = dot_q8_0_f32tiled_avx512; break;
        case GGML_Q4_K: dot = dot_q4_k_f32tiled_avx512; break;
        case GGML_Q6_K: dot = dot_q6_k_f32tiled_avx512; break;
        default: return matmul_v5(t, W, n_rows, n_cols, x, n_tok, y, pool);
    }
    matmul_f32_tiled(dot, 8, t, W, n_rows, n_cols, x, n_tok, y, pool);
}
// --8<-- [end:matmul_v6]

static void matmul_v6_avx2(const QuantType& t, const uint8_t* W, int64_t n_rows, int64_t n_cols, const float* x,
                           int64_t n_tok, float* y, ThreadPool& pool) {
    TiledDot dot;
    switch (t.ggml_type) {
        case GGML_Q4_0: dot = dot_q4_0_f32tiled_avx2; break;
        case GGML_Q4_1: dot = dot_q4_1_f32tiled_avx2; break;
        case GGML_Q8_0: dot = dot_q8_0_f32tiled_avx2; break;
        default: return matmul_v3(t, W, n_rows, n_cols, x, n_tok, y, pool);
    }
    matmul_f32_tiled(dot, 4, t, W, n_rows, n_cols, x, n_tok, y, pool);
}
#endif

#if defined(__x86_64__) || defined(__i386__)
// ---- v7: v6, with one or two tokens done four rows at a time ----
// Decoding is n_tok = 1, where v6 waits on its two FMA chains, not on memory (docs/20-kernels-matmul.md).
// Four rows per call: 8 independent chains and each x vector loaded once for four rows. Bit-identical to v6.
using Rows4Dot = void (*)(int64_t, const uint8_t*, int64_t, const float* const*, int, float*);
void dot4_q4_0_f32tiled_avx512(int64_t n, const uint8_t* w, int64_t rb, const float* const* xs, int n_tok, float* y);
void dot4_q4_1_f32tiled_avx512(int64_t n, const uint8_t* w, int64_t rb, const float* const* xs, int n_tok, float* y);
void dot4_q8_0_f32tiled_avx512(int64_t n, const uint8_t* w, int64_t rb, const float* const* xs, int n_tok, float* y);

// --8<-- [start:matmul_v7]
static void matmul_rows4(TiledDot dot, Rows4Dot dot4, const QuantType& t, const uint8_t* W, int64_t n_rows,
                         int64_t n_cols, const float* x, int64_t n_tok, float* y, ThreadPool& pool,
                         int64_t prefetch_ahead = 0) {
    if (n_tok > 2) return matmul_f32_tiled(dot, 8, t, W, n_rows, n_cols, x, n_tok, y, pool);  // prompts: v6
    const int64_t rb = int64_t(n_cols / t.block_size) * t.block_bytes;
    const int64_t n_tasks = (n_rows + kRowsPerTask - 1) / kRowsPerTask;
    pool.parallel_for(n_tasks, [&](int64_t begin, int64_t end) {
        const int64_t r0 = begin * kRowsPerTask, r1 = std::min(n_rows, end * kRowsPerTask);
        const float* xs[2] = {x, x + (n_tok - 1) * n_cols};
        const int nt = int(n_tok);
        float out[8];
        int64_t r = r0;
        for (; r + 4 <= r1; r += 4) {  // four rows per call
            if (prefetch_ahead > 0) prefetch_rows_ahead(W, r, rb, prefetch_ahead);  // v9
            dot4(n_cols, W + r * rb, rb, xs, nt, out);
            for (int k = 0; k < nt; k++)
                for (int i = 0; i < 4; i++) y[k * n_rows + r + i] = out[k * 4 + i];
        }
        for (; r < r1; r++) {  // the last 1-3 rows: v6's kernel
            dot(n_cols, W + r * rb, xs, nt, out);
            for (int k = 0; k < nt; k++) y[k * n_rows + r] = out[k];
        }
    });
}

static void matmul_v7(const QuantType& t, const uint8_t* W, int64_t n_rows, int64_t n_cols, const float* x,
                      int64_t n_tok, float* y, ThreadPool& pool) {
    switch (t.ggml_type) {
        case GGML_Q4_0: return matmul_rows4(dot_q4_0_f32tiled_avx512, dot4_q4_0_f32tiled_avx512, t, W, n_rows, n_cols, x, n_tok, y, pool);
        case GGML_Q4_1: return matmul_rows4(dot_q4_1_f32tiled_avx512, dot4_q4_1_f32tiled_avx512, t, W, n_rows, n_cols, x, n_tok, y, pool);
        case GGML_Q8_0: return matmul_rows4(dot_q8_0_f32tiled_avx512, dot4_q8_0_f32tiled_avx512, t, W, n_rows, n_cols, x, n_tok, y, pool);
        default: return matmul_v6_avx512(t, W, n_rows, n_cols, x, n_tok, y, pool);
    }
}
// --8<-- [end:matmul_v7]
// ---- v8: v7 with 4-bit weights looked up (vpermps) in the block's 16 possible values ----
// Fewer 512-bit uops per block (10 -> 8 for Q4_1); bit-identical to v6/v7. Q8_0 runs v7's kernel.
void dot4l_q4_0_f32tiled_avx512(int64_t n, const uint8_t* w, int64_t rb, const float* const* xs, int n_tok, float* y);
void dot4l_q4_1_f32tiled_avx512(int64_t n, const uint8_t* w, int64_t rb, const float* const* xs, int n_tok, float* y);

static void matmul_v8(const QuantType& t, const uint8_t* W, int64_t n_rows, int64_t n_cols, const float* x,
                      int64_t n_tok, float* y, ThreadPool& pool) {
    switch (t.ggml_type) {
        case GGML_Q4_0: return matmul_rows4(dot_q4_0_f32tiled_avx512, dot4l_q4_0_f32tiled_avx512, t, W, n_rows, n_cols, x, n_tok, y, pool);
        case GGML_Q4_1: return matmul_rows4(dot_q4_1_f32tiled_avx512, dot4l_q4_1_f32tiled_avx512, t, W, n_rows, n_cols, x, n_tok, y, pool);
        default: return matmul_v7(t, W, n_rows, n_cols, x, n_tok, y, pool);
    }
}
// ---- v9: v8 with software prefetch ----
// Per core, v8 streams the whole model at ~5 GB/s but a plain read streams 15 GB/s: with the core busy
// computing, the hardware prefetcher runs too few misses ahead across the model's 211 small matrices.
// v9 touches the rows 2 KB ahead (one prefetch per 64-byte line, ~22 per four Q4_1 rows of 576) before
// each four-row call. Results identical to v8 (prefetching changes no arithmetic).
static constexpr int64_t kPrefetchAhead = 2048;
// v11 AVX2 asks for its weights into L2 (matmul/dot_avx2_v10.cpp), and there 4 KB ahead beat 2 KB: decoding
// +13% and +13% in two sessions on the AMD EPYC (medians of 12 pairs of 64 tokens, alternating in one
// process; 6 KB +18% and 8 KB +11% in one each, 12 KB +10%).
// Q8_0's blocks carry 34 bytes where Q4_1's carry 20 for the same arithmetic, so the same time ahead is more
// bytes: Q8_0 rows (the default model's output matrix) 8 KB ahead, streaming alone 14.8 -> 18.2 GB/s on one
// thread, 28.2 -> 38.8 GB/s on two (with the page-ahead request, matmul/dot_avx2_v10.cpp); in the model the
// output product went from 2.97 to 2.29 Mcycles per token and thread. 6 and 12 KB did the same within 2%.
static constexpr int64_t kPrefetchAheadAvx2 = 4096, kPrefetchAheadAvx2Q8 = 8192;

static void matmul_v9(const QuantType& t, const uint8_t* W, int64_t n_rows, int64_t n_cols, const float* x,
                      int64_t n_tok, float* y, ThreadPool& pool) {
    switch (t.ggml_type) {
        case GGML_Q4_0: return matmul_rows4(dot_q4_0_f32tiled_avx512, dot4l_q4_0_f32tiled_avx512, t, W, n_rows, n_cols, x, n_tok, y, pool, kPrefetchAhead);
        case GGML_Q4_1: return matmul_rows4(dot_q4_1_f32tiled_avx512, dot4l_q4_1_f32tiled_avx512, t, W, n_rows, n_cols, x, n_tok, y, pool, kPrefetchAhead);
        case GGML_Q8_0: return matmul_rows4(dot_q8_0_f32tiled_avx512, dot4_q8_0_f32tiled_avx512, t, W, n_rows, n_cols, x, n_tok, y, pool, kPrefetchAhead);
        default: return matmul_v6_avx512(t, W, n_rows, n_cols, x, n_tok, y, pool);
    }
}

// ---- v10: dequantize once, then a register-blocked GEMM (matmul/gemm_v9.cpp) ----
// v6-v9 unpack every weight block again for each tile of 8 tokens. For a prompt, v10 dequantizes each
// row once per call with the type's dequantize_row (so: every type, float activations) and multiplies
// it into all tokens with an FMA micro-kernel. Short products keep v9: one or two tokens (decoding: v9 reads
// each block once, the GEMM would dequantize whole rows for one use), and, where v9 keeps x in float32,
// up to 11 tokens: measured on the model's Q4_1 matrices (one thread), v9 is faster at 8 tokens and v10
// from 12-16 on, because the micro-kernel works in lanes of 16 tokens.
void gemm_f32_avx512(const QuantType& t, const uint8_t* W, int64_t n_rows, int64_t K, const float* x, int64_t n_tok,
                     float* y, ThreadPool& pool);
void gemm_f32_avx2(const QuantType& t, const uint8_t* W, int64_t n_rows, int64_t K, const float* x, int64_t n_tok,
                   float* y, ThreadPool& pool);



// --8<-- [start:matmul_v10]
static void matmul_v10(const QuantType& t, const uint8_t* W, int64_t n_rows, int64_t n_cols, const float* x,
                       int64_t n_tok, float* y, ThreadPool& pool) {
    if (n_tok < gemm_min_tokens(t.ggml_type)) return matmul_v9(t, W, n_rows, n_cols, x, n_tok, y, pool);
    gemm_f32_avx512(t, W, n_rows, n_cols, x, n_tok, y, pool);
}
// --8<-- [end:matmul_v10]

// The same with AVX2 (6 rows x 16 tokens in 12 ymm sums): short products run v6's AVX2 build. Measured on a
// Q4_1 1536 x 576 matrix, one thread: v6 AVX2 is faster at 8 tokens, even at 12, v10 AVX2 2.3x at 256.

static void matmul_v10_avx2(const QuantType& t, const uint8_t* W, int64_t n_rows, int64_t n_cols, const float* x,
                            int64_t n_tok, float* y, ThreadPool& pool) {
    if (n_tok < gemm_avx2_min_tokens(t.ggml_type)) return matmul_v6_avx2(t, W, n_rows, n_cols, x, n_tok, y, pool);
    gemm_f32_avx2(t, W, n_rows, n_cols, x, n_tok, y, pool);
}

// ---- v11: decoding with activations rounded to 16 bits, integer products (vpdpwssd) ----
// One token (n_tok = 1) for Q4_0, Q4_1 and Q8_0; everything else runs v10 (matmul/dot_avx512_v10_v11.cpp says why
// rounding is cheaper and how small the rounding is).

// --8<-- [start:matmul_v11]
// A version's 16-bit path for one weight type: how it rounds x, its row kernel (nullptr: none for the type),
// and how far ahead it prefetches the weights. Written once here for quant_matmul (below) and for
// PreparedActivations (the decoding team's pieces).
struct I16Path {
    QuantizeI16Fn quantize;
    RowsI16Fn rows;
    int64_t prefetch_ahead;
};
static I16Path i16_path_v11(int ggml_type) { return {quantize_act_i16, rows_i16_kernel(ggml_type, false), kPrefetchAhead}; }

// One token through a row kernel of 16-bit activations (v11's or v12's): x is rounded once, then the rows are
// split over the pool like v9's, with v9's prefetch.
static void matmul_i16(const I16Path& path, const QuantType& t, const uint8_t* W, int64_t n_rows, int64_t n_cols,
                       const float* x, float* y, ThreadPool& pool) {
    thread_local std::vector<int16_t> xq;  // the caller's buffers; the lambda below reads them through pointers
    thread_local std::vector<float> xd, xs;
    xq.resize(size_t(n_cols)), xd.resize(size_t(n_cols / QK)), xs.resize(size_t(n_cols / QK));
    path.quantize(x, n_cols, xq.data(), xd.data(), xs.data());  // [n_cols] -> [n_cols] int16 + 2 x [n_cols/32]
    const int16_t* q = xq.data();
    const float *d = xd.data(), *s = xs.data();
    const int64_t rb = int64_t(n_cols / t.block_size) * t.block_bytes;
    const int64_t n_tasks = (n_rows + kRowsPerTask - 1) / kRowsPerTask;
    pool.parallel_for(n_tasks, [&](int64_t begin, int64_t end) {
        const int64_t r0 = begin * kRowsPerTask, r1 = std::min(n_rows, end * kRowsPerTask);
        path.rows(n_cols, W + r0 * rb, rb, r1 - r0, q, d, s, y + r0, path.prefetch_ahead);  // y[r0..r1) = W[r0..r1) x
    });
}

static void matmul_v11(const QuantType& t, const uint8_t* W, int64_t n_rows, int64_t n_cols, const float* x,
                       int64_t n_tok, float* y, ThreadPool& pool) {
    const I16Path path = i16_path_v11(t.ggml_type);
    if (!path.rows || n_tok != 1) return matmul_v10(t, W, n_rows, n_cols, x, n_tok, y, pool);  // prompts: v10
    matmul_i16(path, t, W, n_rows, n_cols, x, y, pool);
}
// --8<-- [end:matmul_v11]

// ---- v12: v11 with two rows of 4-bit weights per register ----
// Q4_0 and Q4_1 widen, multiply and convert two rows' blocks at once (matmul/dot_avx512_v10_v11.cpp, row_pairs_i16):
// 9 uops per block and pair of rows instead of 14. Q8_0, whose blocks fill a register alone, is not paired but
// shares the other two ideas: scales gathered across rows, one reduction for four rows.
// --8<-- [start:matmul_v12]
static I16Path i16_path_v12(int ggml_type) { return {quantize_act_i16, rows_i16_kernel(ggml_type, true), kPrefetchAhead}; }

static void matmul_v12(const QuantType& t, const uint8_t* W, int64_t n_rows, int64_t n_cols, const float* x,
                       int64_t n_tok, float* y, ThreadPool& pool) {
    const I16Path path = i16_path_v12(t.ggml_type);  // kernels for Q4_0, Q4_1, Q8_0
    if (!path.rows || n_tok != 1) return matmul_v10(t, W, n_rows, n_cols, x, n_tok, y, pool);  // prompts, other types: v10
    matmul_i16(path, t, W, n_rows, n_cols, x, y, pool);
}
// --8<-- [end:matmul_v12]

// ---- v11 with AVX2: vpmaddwd, no VNNI ----
// CPUs without AVX-512 (AMD before Zen 4, most of Intel's desktop parts, and VMs that hide it) decoded with
// v6's AVX2 build: float weights, an FMA per 8. This is v11's rounding and exact integer blocks with
// AVX2's 16-bit multiply-add (matmul/dot_avx2_v10.cpp); prompts and other types run v10's AVX2 build.
static int64_t prefetch_ahead_avx2(int ggml_type) { return ggml_type == GGML_Q8_0 ? kPrefetchAheadAvx2Q8 : kPrefetchAheadAvx2; }
static I16Path i16_path_v11_avx2(int ggml_type) {
    return {quantize_act_i16_avx2, rows_i16_kernel_avx2(ggml_type), prefetch_ahead_avx2(ggml_type)};
}

// One token through an AVX2 16-bit path (v11, v13); prompts and types it has no kernel for: v10's AVX2 build.
static void matmul_i16_avx2(const I16Path& path, const QuantType& t, const uint8_t* W, int64_t n_rows, int64_t n_cols,
                            const float* x, int64_t n_tok, float* y, ThreadPool& pool) {
    if (!path.rows || n_tok != 1) return matmul_v10_avx2(t, W, n_rows, n_cols, x, n_tok, y, pool);
    matmul_i16(path, t, W, n_rows, n_cols, x, y, pool);
}

static void matmul_v11_avx2(const QuantType& t, const uint8_t* W, int64_t n_rows, int64_t n_cols, const float* x,
                            int64_t n_tok, float* y, ThreadPool& pool) {
    matmul_i16_avx2(i16_path_v11_avx2(t.ggml_type), t, W, n_rows, n_cols, x, n_tok, y, pool);
}

// ---- v13: v11 AVX2 with 12-bit activations, so the low nibbles need no mask ----
// x rounded to +-1927 steps per block instead of +-32767 (lesson 14's quantize_i16(x, steps=1927)): then
// x_(j+16) - 16 x_j still fits int16, and a 4-bit block's whole bytes (lo + 16 hi) can meet x_j while the
// high nibbles meet x_(j+16) - 16 x_j (matmul/dot_avx2_v10.cpp). One vector instruction of ~11 fewer per block
// and row. The rounding is 17x coarser than v11's (each product to ~3e-4 of its size instead of ~2e-5), still
// 16x finer than llama.cpp's 8 bits. Q8_0 rows run v11's kernel on the same 12-bit x. Measured decoding the
// default model on the AMD EPYC: +4.6% (20 alternating runs of 32 tokens in one process), and the KL of the
// decode path from llama.cpp's F32 run 4.7e-5 to 7.1e-5 instead of 6e-7 to 1e-6 (llama.cpp's Q4_1 run:
// 4.9e-3 and 5.8e-3). That trade is not the fast path's to make: it stays v11 (LLAMA_LESSONS_MATMUL picks v13).
static I16Path i16_path_v13_avx2(int ggml_type) {
    return {quantize_act_i12_avx2, rows_i12_kernel_avx2(ggml_type), prefetch_ahead_avx2(ggml_type)};
}

static void matmul_v13_avx2(const QuantType& t, const uint8_t* W, int64_t n_rows, int64_t n_cols, const float* x,
                            int64_t n_tok, float* y, ThreadPool& pool) {
    matmul_i16_avx2(i16_path_v13_avx2(t.ggml_type), t, W, n_rows, n_cols, x, n_tok, y, pool);
}
#endif

static const detail::OpVersion<MatmulFn> kMatmulVersions[] = {
    {"v0_scalar_dequant", "line-by-line port: dequantize a row, dot with x", matmul_v0, detail::cpu_any},
    {"v1_threads", "rows split over the thread pool", matmul_v1, detail::cpu_any},
    {"v2_int8", "8-bit activations, exact integer block sums", matmul_v2, detail::cpu_any},
#if defined(__x86_64__) || defined(__i386__)
    {"v3_avx2", "AVX2 integer dot products", matmul_v3, detail::cpu_avx2},
    {"v4_avx512vnni", "AVX-512 VNNI dot products", matmul_v4, detail::cpu_avx512vnni},
    {"v4b_f32act", "x kept in float32, weights dequantized in registers", matmul_v4b, detail::cpu_avx512vnni},
    {"v5_pairs", "activations laid out for the weights; 8 tokens per weight block", matmul_v5, detail::cpu_avx512vnni},
    {"v6_f32_tiled_avx2", "float32 activations (exact), each dequantized block used for 4 tokens", matmul_v6_avx2, detail::cpu_avx2},
    {"v6_f32_tiled", "float32 activations (exact), each dequantized block used for 8 tokens", matmul_v6_avx512, detail::cpu_avx512vnni},
    {"v7_rows4", "v6, with 1-2 tokens done four rows at a time (decoding)", matmul_v7, detail::cpu_avx512vnni},
    {"v8_rows4_lut", "v7 with 4-bit weights looked up in the block's 16 values", matmul_v8, detail::cpu_avx512vnni},
    {"v9_prefetch", "v8 with software prefetch of the rows 2 KB ahead", matmul_v9, detail::cpu_avx512vnni},
    {"v10_gemm", "prompts: each row dequantized once, then a register-blocked f32 GEMM (any type)", matmul_v10, detail::cpu_avx512vnni},
    {"v10_gemm_avx2", "v10 with AVX2: 6 rows x 16 tokens per micro-tile", matmul_v10_avx2, detail::cpu_avx2},
    {"v11_i16_decode", "decoding: activations rounded to 16 bits, exact integer products (vpdpwssd)", matmul_v11, detail::cpu_avx512vnni},
    {"v12_i16_row_pairs", "v11 with two rows of 4-bit weights widened, multiplied and converted in one register", matmul_v12, detail::cpu_avx512vnni},
    {"v11_i16_decode_avx2", "v11 with AVX2 (vpmaddwd): 16-bit activations without VNNI", matmul_v11_avx2, detail::cpu_avx2},
    {"v13_i12_decode_avx2", "v11 AVX2 with activations rounded to +-1927, so the low nibbles need no mask", matmul_v13_avx2,
     detail::cpu_avx2},
#endif
#if defined(__aarch64__)  // matmul/neon_v3_v5.cpp
    {"v3_neon_int8", "NEON integer dot products (vmull_s8 + pairwise adds)", matmul_int8_neon, detail::cpu_neon},
    {"v4_neon_dotprod", "int8 dot products with SDOT (vdotq_s32)", matmul_int8_dotprod_neon, detail::cpu_neon_dotprod},
    {"v6_f32_tiled_neon", "float32 activations, each dequantized block used for 8 tokens (NEON)", matmul_f32_tiled_neon, detail::cpu_neon},
#endif
};

// The int8 dot level a version's fallback reaches for types it has no kernel of its own for.
static int version_level(const std::string& name) {
    if (name.rfind("v3_", 0) == 0 || name == "v6_f32_tiled_avx2" || name == "v10_gemm_avx2" || name == "v11_i16_decode_avx2" ||
        name == "v13_i12_decode_avx2")
        return LEVEL_AVX2;
    if (name.rfind("v0_", 0) == 0 || name.rfind("v1_", 0) == 0 || name.rfind("v2_", 0) == 0) return LEVEL_SCALAR;
    return LEVEL_AVX512;  // v4 and later
}

static const QuantType& check_matmul(int ggml_type, const uint8_t* W, int64_t n_rows, int64_t n_cols, const float* x,
                                     int64_t n_tok, float* y) {
    row_bytes(ggml_type, n_cols);  // throws for an unknown type or a bad n_cols
    if (n_rows < 0 || n_tok < 0) throw std::invalid_argument("quant_matmul: negative n_rows or n_tok");
    if ((n_rows > 0 && !W) || (n_tok > 0 && (!x || (n_rows > 0 && !y))))
        throw std::invalid_argument("quant_matmul: null pointer");
    return *quant_type(ggml_type);
}

// The fast path's version: the best this CPU runs, unless the environment variable
// LLAMA_LESSONS_MATMUL names another (for experiments: e.g. v4b_f32act for float activations).
// Without an override: the best version this CPU runs that keeps the F32 model's accuracy (v12, v11, v10, v9,
// v6 AVX-512, v11 AVX2, v10 AVX2, v6 AVX2, v6 NEON, or v1): float32 activations, or v11/v12's 16-bit ones for one token,
// whose rounding is ~1e-5 of each product (docs/20-kernels-matmul.md); never the 8-bit ones, nor v13's 12 bits.
static const char* const kFastPathOrder[] = {"v12_i16_row_pairs", "v11_i16_decode", "v10_gemm", "v9_prefetch", "v6_f32_tiled", "v11_i16_decode_avx2", "v10_gemm_avx2",
                                             "v6_f32_tiled_avx2", "v6_f32_tiled_neon", "v1_threads"};

static const detail::OpVersion<MatmulFn>& fast_path_version() {
    const char* name = std::getenv("LLAMA_LESSONS_MATMUL");
    if (name && *name) return detail::find_version(kMatmulVersions, name, "quant_matmul");
    for (const char* candidate : kFastPathOrder)
        for (const auto& v : kMatmulVersions)
            if (candidate == std::string(v.name) && v.available()) return v;
    return kMatmulVersions[0];
}

static MatmulFn fast_path_matmul() { return fast_path_version().fn; }

void quant_matmul(int ggml_type, const uint8_t* W, int64_t n_rows, int64_t n_cols, const float* x, int64_t n_tok,
                  float* y, ThreadPool& pool) {
    static const MatmulFn best = fast_path_matmul();
    const QuantType& t = check_matmul(ggml_type, W, n_rows, n_cols, x, n_tok, y);
    if (n_rows == 0 || n_tok == 0) return;
    best(t, W, n_rows, n_cols, x, n_tok, y, pool);
}

void quant_matmul_v(const std::string& version, int ggml_type, const uint8_t* W, int64_t n_rows, int64_t n_cols,
                    const float* x, int64_t n_tok, float* y, ThreadPool& pool) {
    const MatmulFn fn = detail::find_version(kMatmulVersions, version, "quant_matmul").fn;
    const QuantType& t = check_matmul(ggml_type, W, n_rows, n_cols, x, n_tok, y);
    if (n_rows == 0 || n_tok == 0) return;
    fn(t, W, n_rows, n_cols, x, n_tok, y, pool);
}

// --8<-- [start:prepared_activations]
void PreparedActivations::prepare(const std::string& version, const float* x, int64_t n) {
    static const std::string fast_path = fast_path_version().name;
    version_ = version, x_ = x, n_ = n, path_ = nullptr;
#if defined(__x86_64__) || defined(__i386__)
    const std::string& name = version.empty() ? fast_path : version;
    path_ = name == "v11_i16_decode_avx2" ? i16_path_v11_avx2 : name == "v13_i12_decode_avx2" ? i16_path_v13_avx2
            : name == "v12_i16_row_pairs" ? i16_path_v12 : name == "v11_i16_decode" ? i16_path_v11 : nullptr;
    if (!path_ || n % QK) {  // no 16-bit path: rows() uses x as it is
        path_ = nullptr;
        return;
    }
    q_.resize(size_t(n)), d_.resize(size_t(n / QK)), s_.resize(size_t(n / QK));
    path_(GGML_Q4_1).quantize(x, n, q_.data(), d_.data(), s_.data());  // the rounding is the version's, not the type's
#endif
}

void PreparedActivations::rows(int ggml_type, const uint8_t* W_rows, int64_t n_rows, float* y, ThreadPool& pool) const {
#if defined(__x86_64__) || defined(__i386__)
    if (path_ && n_rows > 0) {
        const I16Path path = path_(ggml_type);
        if (path.rows)
            return path.rows(n_, W_rows, int64_t(row_bytes(ggml_type, n_)), n_rows, q_.data(), d_.data(), s_.data(), y, path.prefetch_ahead);
    }
#endif
    if (version_.empty()) return quant_matmul(ggml_type, W_rows, n_rows, n_, x_, 1, y, pool);
    quant_matmul_v(version_, ggml_type, W_rows, n_rows, n_, x_, 1, y, pool);
}
// --8<-- [end:prepared_activations]

std::string quant_matmul_kernel(const std::string& version, int ggml_type) {
    detail::find_version(kMatmulVersions, version, "quant_matmul");
    const QuantType* t = quant_type(ggml_type);
    if (!t) throw std::invalid_argument("unsupported ggml type " + std::to_string(ggml_type));
    if (version == "v10_gemm_avx2") {
        const std::string gemm = std::string(t->name) + " dequantized once per row x f32 gemm avx2, 6 rows x 16 tokens";
        const int64_t n = gemm_avx2_min_tokens(ggml_type);
        return gemm + " (" + std::to_string(n) + "+ tokens); 1-" + std::to_string(n - 1) + " tokens: " + quant_matmul_kernel("v6_f32_tiled_avx2", ggml_type);
    }
    if (version == "v10_gemm") {
        const std::string gemm = std::string(t->name) + " dequantized once per row x f32 gemm avx512, 8 rows x 48 tokens";
        const int64_t n = gemm_min_tokens(ggml_type);  // "<gemm> (12+ tokens); 1-11 tokens: <v9's kernel>"
        return gemm + " (" + std::to_string(n) + "+ tokens); 1-" + std::to_string(n - 1) + " tokens: " + quant_matmul_kernel("v9_prefetch", ggml_type);
    }
    if (version.rfind("v4b", 0) == 0 && (ggml_type == GGML_Q4_1 || ggml_type == GGML_Q8_0))
        return std::string(t->name) + " dequantized in registers x f32 avx512";
    if (version == "v12_i16_row_pairs" && (ggml_type == GGML_Q4_0 || ggml_type == GGML_Q4_1))
        return std::string(t->name) + " x int16 activations avx512vnni, two rows per register, 4 rows per call for 1 token; 2+ tokens: " + quant_matmul_kernel("v10_gemm", ggml_type);
    if (version == "v12_i16_row_pairs" && ggml_type == GGML_Q8_0)
        return std::string(t->name) + " x int16 activations avx512vnni, scales of 4 rows gathered as one run, 4 rows per call for 1 token; 2+ tokens: " + quant_matmul_kernel("v10_gemm", ggml_type);
    if (version == "v12_i16_row_pairs") return quant_matmul_kernel("v11_i16_decode", ggml_type);
    if (version == "v11_i16_decode" && !(ggml_type == GGML_Q4_0 || ggml_type == GGML_Q4_1 || ggml_type == GGML_Q8_0))
        return quant_matmul_kernel("v10_gemm", ggml_type);
    if (version == "v11_i16_decode_avx2" && (ggml_type == GGML_Q4_0 || ggml_type == GGML_Q4_1 || ggml_type == GGML_Q8_0))
        return std::string(t->name) + " x int16 activations avx2 (vpmaddwd), 4 rows per call for 1 token; 2+ tokens: " + quant_matmul_kernel("v10_gemm_avx2", ggml_type);
    if (version == "v11_i16_decode_avx2") return quant_matmul_kernel("v10_gemm_avx2", ggml_type);
    if (version == "v13_i12_decode_avx2" && (ggml_type == GGML_Q4_0 || ggml_type == GGML_Q4_1 || ggml_type == GGML_Q8_0))
        return std::string(t->name) + " x int12 activations avx2 (vpmaddwd)" + (ggml_type == GGML_Q8_0 ? "" : ", low nibbles unmasked") +
               ", 4 rows per call for 1 token; 2+ tokens: " + quant_matmul_kernel("v10_gemm_avx2", ggml_type);
    if (version == "v13_i12_decode_avx2") return quant_matmul_kernel("v10_gemm_avx2", ggml_type);
    if (version == "v11_i16_decode")
        return std::string(t->name) + " x int16 activations avx512vnni (vpdpwssd), 4 rows per call for 1 token; 2+ tokens: " + quant_matmul_kernel("v10_gemm", ggml_type);
    if ((version == "v7_rows4" || version == "v8_rows4_lut" || version == "v9_prefetch") &&
        (ggml_type == GGML_Q4_0 || ggml_type == GGML_Q4_1 || ggml_type == GGML_Q8_0))
        return std::string(t->name) + (version != "v7_rows4" && ggml_type != GGML_Q8_0 ? " looked up in registers" : " dequantized in registers") +
               " x f32 avx512, 4 rows x 1-2 tokens or 1-8 tokens per block";
    if ((version == "v6_f32_tiled" || version == "v7_rows4" || version == "v8_rows4_lut" || version == "v9_prefetch") && (ggml_type == GGML_Q4_0 || ggml_type == GGML_Q4_1 || ggml_type == GGML_Q8_0 ||
                                      ggml_type == GGML_Q4_K || ggml_type == GGML_Q6_K))
        return std::string(t->name) + " dequantized in registers x f32 avx512, 1-8 tokens per block";
    if (version == "v6_f32_tiled_avx2" && (ggml_type == GGML_Q4_0 || ggml_type == GGML_Q4_1 || ggml_type == GGML_Q8_0))
        return std::string(t->name) + " dequantized in registers x f32 avx2, 1-4 tokens per block";
    if (version.rfind("v5", 0) == 0 && (ggml_type == GGML_Q4_0 || ggml_type == GGML_Q4_1 || ggml_type == GGML_Q8_0))
        return std::string(t->name) + " x q8 pairs avx512vnni, 1-8 tokens per block";
    if (version.rfind("v0_", 0) == 0 || version.rfind("v1_", 0) == 0) return std::string(t->name) + " dequantize + f32 dot scalar";
    return dot_name_for_level(*t, version_level(version));
}

std::vector<VersionInfo> detail::quant_matmul_versions() { return describe(kMatmulVersions); }
std::string detail::quant_matmul_active() { return fast_path_version().name; }

// ---- registry of all ops ----
bool detail::cpu_any() { return true; }
bool detail::cpu_avx2() { return cpu_features().has_avx2(); }
bool detail::cpu_avx512() { return cpu_features().has_avx512(); }
bool detail::cpu_avx512vnni() { return cpu_features().has_avx512vnni(); }

std::vector<std::string> kernel_ops() { return {"rmsnorm", "apply_rope", "swiglu", "softmax", "quant_matmul"}; }

std::vector<VersionInfo> list_versions(const std::string& op) {
    if (op == "rmsnorm") return detail::rmsnorm_versions();
    if (op == "apply_rope") return detail::apply_rope_versions();
    if (op == "swiglu") return detail::swiglu_versions();
    if (op == "softmax") return detail::softmax_versions();
    if (op == "quant_matmul") return detail::quant_matmul_versions();
    throw std::invalid_argument("unknown kernel op: " + op);
}

std::string active_version(const std::string& op) {
    if (op == "rmsnorm") return detail::rmsnorm_active();
    if (op == "apply_rope") return detail::apply_rope_active();
    if (op == "swiglu") return detail::swiglu_active();
    if (op == "softmax") return detail::softmax_active();
    if (op == "quant_matmul") return detail::quant_matmul_active();
    throw std::invalid_argument("unknown kernel op: " + op);
}

}  // namespace ll
