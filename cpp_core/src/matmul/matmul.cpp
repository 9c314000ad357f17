// matmul/matmul.cpp -- y[t, r] = sum_c W[r, c] x[t, c] straight from the quantized rows: the ladder of versions.
//
// Each version adds one idea to the one before (docs/20-kernels-matmul.md teaches them in order); the table
// kMatmulVersions at the end says, as data, what each adds, which weight types have a kernel of their own
// in it, and what it hands everything else to. The fast path is the last version in the table this CPU runs
// that keeps x in float32 or 16 bits (never the 8-bit ones): v19 with AVX-512 VNNI, v18 AVX2 with AVX2 only,
// v18 NEON on aarch64, v1 elsewhere. LLAMA_LESSONS_MATMUL=<version> overrides it (read once; for comparisons).
// Where the code is:
//   v0, v1          this file (the lesson's dequantize-then-dot, then threads)
//   v2 / v3 / v4    int8 activations (llama.cpp's way): matmul/quantize_act.cpp, dot_scalar_v2.cpp, dot_avx2_v3.cpp,
//                   dot_avx512_v4.cpp
//   v5              int8 activations laid out for the unpacked weights, 1-8 tokens per block (int8_activations on
//                   AVX-512): pairs_v5.h, quantize_act_pairs_v5.cpp, dot_avx512_v5.cpp
//   v6              float32 activations, tiled over tokens: dot_avx2_v6.cpp, dot_avx512_v6_v8.cpp
//   v7, v8          decoding four rows per call, then 4-bit weights looked up: dot_avx512_v6_v8.cpp
//   v9              software prefetch (this file, cpu/simd_x86.h)
//   v10             prompts: each row dequantized once, then a register-blocked GEMM: gemm_v10.cpp
//   v11, v12        decoding with 16-bit activations, then two rows per register: i16_v11_v12.h, dot_avx2_v11.cpp,
//                   dot_avx512_v11_v12.cpp
//   v13             v11/v12's decoding kernels for 5-bit weights (Q5_0, Q5_1): the same files
//   v14 - v18       the 16-bit decoding path for Q4_K, then Q6_K, Q5_K, Q3_K, Q2_K: dot_i16_kquants_v14.cpp
//   v19             prompts with v11-v18's 16-bit x: rows unpacked once to int16, a vpdpwssd GEMM: gemm_i16_v19.cpp
//   aarch64         v3, v4 (SDOT) and v6 with NEON: neon_v3_v6.cpp; the 16-bit decoding path v11, v13-v18
//                   with NEON: neon_i16_v11_v18.cpp; all checked under qemu (tests/native/)
// Experiments that were measured and not kept (float activations without tiles, 12-bit activations) live in
// dev/ at the repository's root, each with its own check and timing.
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
#include "cpu/simd_x86.h"  // prefetch_rows_ahead (x86 only; empty elsewhere)
#include "kernels.h"
#include "kernels_neon.h"  // aarch64 versions (empty elsewhere)
#include "matmul/blocks.h"
#include "matmul/i16_v11_v12.h"  // the 16-bit decoding kernels (x86 only)
#include "matmul/pairs_v5.h"

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
static constexpr int kTileTokens = 8;  // v5's and v6's most tokens per unpacked weight block

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
// ---- v5: activations laid out for the unpacked weights, scales hoisted, 1-8 tokens per weight block ----
// Only Q4_0, Q4_1 and Q8_0 (the default model's types) have v5 kernels; other types run v4.
using PairsDotFn = void (*)(int64_t, const uint8_t*, const ActPairsView*, int, float*);

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
    const int64_t tile = std::max<int64_t>(kTileTokens, std::min<int64_t>(32, int64_t(24 * 1024 / act_stride)) & ~int64_t(kTileTokens - 1));
    const int64_t n_tasks = (n_rows + kRowsPerTask - 1) / kRowsPerTask;
    pool.parallel_for(n_tasks, [&](int64_t begin, int64_t end) {
        const int64_t r0 = begin * kRowsPerTask, r1 = std::min(n_rows, end * kRowsPerTask);
        float out[kTileTokens];
        for (int64_t t0 = 0; t0 < n_tok; t0 += tile) {
            const int64_t t1 = std::min(n_tok, t0 + tile);
            for (int64_t r = r0; r < r1; r++)
                for (int64_t tok = t0; tok < t1; tok += kTileTokens) {
                    const int nt = int(std::min<int64_t>(kTileTokens, t1 - tok));
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
// x stays float32, so the product is the F32 model's (the int8 versions cost accuracy: see the docs page).
// v6 computes the F32 model's product. Two builds of the idea: AVX-512 (8 tokens per block; Q4_0, Q4_1,
// Q8_0, Q4_K, Q6_K) and AVX2 (4 tokens; Q4_0, Q4_1, Q8_0). Other types run v4 (AVX-512) or v3 (AVX2).
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
        const float* xs[kTileTokens];
        float out[kTileTokens];
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
        default: return matmul_v4(t, W, n_rows, n_cols, x, n_tok, y, pool);
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
// v11 AVX2 asks for its weights into L2 (matmul/dot_avx2_v11.cpp), and there 4 KB ahead beat 2 KB: decoding
// +13% and +13% in two sessions on the AMD EPYC (medians of 12 pairs of 64 tokens, alternating in one
// process; 6 KB +18% and 8 KB +11% in one each, 12 KB +10%).
// Q8_0's blocks carry 34 bytes where Q4_1's carry 20 for the same arithmetic, so the same time ahead is more
// bytes: Q8_0 rows (the default model's output matrix) 8 KB ahead, streaming alone 14.8 -> 18.2 GB/s on one
// thread, 28.2 -> 38.8 GB/s on two (with the page-ahead request, matmul/dot_avx2_v11.cpp); in the model the
// output product went from 2.97 to 2.29 Mcycles per token and thread. 6 and 12 KB did the same within 2%.
static constexpr int64_t kPrefetchAheadAvx2 = 4096, kPrefetchAheadAvx2Q8 = 8192;
// --8<-- [start:prefetch_i16]
// The 16-bit AVX-512 paths (v11-v18) ask 8 KB ahead. 2 KB was v9's distance, for kernels that needed ~4x
// longer per byte; once the 16-bit kernels ran a row of 576 in ~60 ns, 2 KB (six Q4_0 rows, a call and a half)
// was too close to hide memory's latency. Streaming 300 matrices of 576 x 576 from memory on one thread
// (thread CPU time, AMD EPYC Zen 5), four rows per call, 2 KB -> 8 KB: Q4_0 31.3 -> 36.4 Gweights/s; 6 KB the
// same, 12-16 KB no better; the k-quants' calls (v14-v18, rows of 1536) within 3% from 2 to 8 KB. Decoding on
// one thread, CPU ms per token (medians of 3 alternating runs, load average ~8), 2 KB -> 8 KB: Q4_0 5.61 -> 5.15,
// Q4_1 5.80 -> 5.44, Q5_0 6.96 -> 6.53, Q2_K 5.48 -> 5.10 (docs/notes/matmul-diary.md).
static constexpr int64_t kPrefetchAheadI16 = 8192;
// --8<-- [end:prefetch_i16]

static void matmul_v9(const QuantType& t, const uint8_t* W, int64_t n_rows, int64_t n_cols, const float* x,
                      int64_t n_tok, float* y, ThreadPool& pool) {
    switch (t.ggml_type) {
        case GGML_Q4_0: return matmul_rows4(dot_q4_0_f32tiled_avx512, dot4l_q4_0_f32tiled_avx512, t, W, n_rows, n_cols, x, n_tok, y, pool, kPrefetchAhead);
        case GGML_Q4_1: return matmul_rows4(dot_q4_1_f32tiled_avx512, dot4l_q4_1_f32tiled_avx512, t, W, n_rows, n_cols, x, n_tok, y, pool, kPrefetchAhead);
        case GGML_Q8_0: return matmul_rows4(dot_q8_0_f32tiled_avx512, dot4_q8_0_f32tiled_avx512, t, W, n_rows, n_cols, x, n_tok, y, pool, kPrefetchAhead);
        default: return matmul_v6_avx512(t, W, n_rows, n_cols, x, n_tok, y, pool);
    }
}

// ---- v10: dequantize once, then a register-blocked GEMM (matmul/gemm_v10.cpp) ----
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

#endif

// ---- v11: decoding with activations rounded to 16 bits, integer products (vpdpwssd) ----
// One token (n_tok = 1) for Q4_0, Q4_1 and Q8_0 (v13-v18 add the other types); everything else runs v10 (matmul/dot_avx512_v11_v12.cpp says why
// rounding is cheaper and how small the rounding is). Its two pieces, the path and the one-token loop, serve
// x86 (v11-v18) and aarch64 (their NEON builds, below) alike.
#if defined(__x86_64__) || defined(__i386__) || defined(__aarch64__)
// --8<-- [start:matmul_v11]
// A version's 16-bit path for one weight type: how it rounds x, its row kernel (nullptr: none for the type),
// and how far ahead it prefetches the weights. Written once here for quant_matmul (below) and for
// PreparedActivations (the decoding team's pieces).
struct I16Path {
    QuantizeI16Fn quantize;
    RowsI16Fn rows;
    int64_t prefetch_ahead;
};

// One token through a row kernel of 16-bit activations (any step's, x86 or NEON): x is rounded once, then the
// rows are split over the pool like v9's, with the path's prefetch.
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
#endif

#if defined(__x86_64__) || defined(__i386__)
static I16Path i16_path_v11(int ggml_type) { return {quantize_act_i16, rows_i16_kernel(ggml_type, false), kPrefetchAheadI16}; }

static void matmul_v11(const QuantType& t, const uint8_t* W, int64_t n_rows, int64_t n_cols, const float* x,
                       int64_t n_tok, float* y, ThreadPool& pool) {
    const I16Path path = i16_path_v11(t.ggml_type);
    if (!path.rows || n_tok != 1) return matmul_v10(t, W, n_rows, n_cols, x, n_tok, y, pool);  // prompts: v10
    matmul_i16(path, t, W, n_rows, n_cols, x, y, pool);
}
// --8<-- [end:matmul_v11]

// ---- v12: v11 with two rows of 4-bit weights per register ----
// Q4_0 and Q4_1 widen, multiply and convert two rows' blocks at once (matmul/dot_avx512_v11_v12.cpp, row_pairs_i16):
// 9 uops per block and pair of rows instead of 14. Q8_0, whose blocks fill a register alone, is not paired but
// shares the other two ideas: scales gathered across rows, one reduction for four rows.
// --8<-- [start:matmul_v12]
static I16Path i16_path_v12(int ggml_type) { return {quantize_act_i16, rows_i16_kernel(ggml_type, true), kPrefetchAheadI16}; }

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
// AVX2's 16-bit multiply-add (matmul/dot_avx2_v11.cpp); prompts and other types run v10's AVX2 build.
static int64_t prefetch_ahead_avx2(int ggml_type) { return ggml_type == GGML_Q8_0 ? kPrefetchAheadAvx2Q8 : kPrefetchAheadAvx2; }
static I16Path i16_path_v11_avx2(int ggml_type) {
    return {quantize_act_i16_avx2, rows_i16_kernel_avx2(ggml_type), prefetch_ahead_avx2(ggml_type)};
}

// One token through the AVX2 16-bit path; prompts and types it has no kernel for: v10's AVX2 build.
static void matmul_i16_avx2(const I16Path& path, const QuantType& t, const uint8_t* W, int64_t n_rows, int64_t n_cols,
                            const float* x, int64_t n_tok, float* y, ThreadPool& pool) {
    if (!path.rows || n_tok != 1) return matmul_v10_avx2(t, W, n_rows, n_cols, x, n_tok, y, pool);
    matmul_i16(path, t, W, n_rows, n_cols, x, y, pool);
}

static void matmul_v11_avx2(const QuantType& t, const uint8_t* W, int64_t n_rows, int64_t n_cols, const float* x,
                            int64_t n_tok, float* y, ThreadPool& pool) {
    matmul_i16_avx2(i16_path_v11_avx2(t.ggml_type), t, W, n_rows, n_cols, x, n_tok, y, pool);
}

// ---- v13: the 16-bit decoding path for 5-bit weights (Q5_0, Q5_1) ----
// Q5_0/Q5_1 are Q4_0/Q4_1 with a fifth bit per weight, kept apart in the block's 32-bit qh. Until v13 they
// decoded with v4's int8 kernel (v12 -> v10 -> v9 -> v6 -> v4): llama.cpp's rounding and about its speed,
// and in the k-quant files (Q4_K_M, Q5_K_M, Q3_K_*) many of the default model's tensors are Q5_0/Q5_1, because
// its rows of 576 are not multiples of 256. v13 gives them v12's (AVX-512) and v11's (AVX2) kernels: the same
// 16-bit x, the nibbles as before, then + 16 where qh has the bit. AVX-512BW takes qh as a mask register
// as it is (one masked add per 32 weights, matmul/dot_avx512_v11_v12.cpp, fifth_bits_pair); AVX2 broadcasts
// and compares (matmul/dot_avx2_v11.cpp, add_fifth_bits). Q4_0, Q4_1 and Q8_0 run v12 (v11 with AVX2).
// --8<-- [start:matmul_v13]
// Every step from v13 on is a 16-bit path (which kernel for which type, handing the others to the step before)
// run the same way: one token on that path, a prompt (or a type no step takes) on v10's GEMM.
template <I16Path (*PATH)(int)>
static void matmul_i16_step(const QuantType& t, const uint8_t* W, int64_t n_rows, int64_t n_cols, const float* x,
                            int64_t n_tok, float* y, ThreadPool& pool) {
    const I16Path path = PATH(t.ggml_type);
    if (!path.rows || n_tok != 1) return matmul_v10(t, W, n_rows, n_cols, x, n_tok, y, pool);  // prompts, other types: v10
    matmul_i16(path, t, W, n_rows, n_cols, x, y, pool);
}
template <I16Path (*PATH)(int)>
static void matmul_i16_step_avx2(const QuantType& t, const uint8_t* W, int64_t n_rows, int64_t n_cols, const float* x,
                                 int64_t n_tok, float* y, ThreadPool& pool) {
    matmul_i16_avx2(PATH(t.ggml_type), t, W, n_rows, n_cols, x, n_tok, y, pool);
}

static I16Path i16_path_v13(int ggml_type) {
    const RowsI16Fn q5 = rows_i16_kernel_q5(ggml_type);
    return q5 ? I16Path{quantize_act_i16, q5, kPrefetchAheadI16} : i16_path_v12(ggml_type);
}
static I16Path i16_path_v13_avx2(int ggml_type) {
    const RowsI16Fn q5 = rows_i16_kernel_q5_avx2(ggml_type);
    return q5 ? I16Path{quantize_act_i16_avx2, q5, prefetch_ahead_avx2(ggml_type)} : i16_path_v11_avx2(ggml_type);
}
// --8<-- [end:matmul_v13]

// ---- v14: the 16-bit decoding path for Q4_K ----
// A Q4_K super-block is 8 sub-blocks of 32 that line up with x's blocks: each a Q4_1 block whose (scale, offset)
// are (d sc_j, -dmin m_j), unpacked from 12 bytes of 6-bit codes once per super-block (matmul/dot_i16_kquants_v14.cpp).
// Before v14, Q4_K decoded with v6's float weights (AVX-512) or v3's int8 (AVX2). The rest: v13.
// --8<-- [start:matmul_v14]
static I16Path i16_path_v14(int ggml_type) {
    const RowsI16Fn kq = rows_i16_kernel_kquant(ggml_type, true, 14);
    return kq ? I16Path{quantize_act_i16, kq, kPrefetchAheadI16} : i16_path_v13(ggml_type);
}
static I16Path i16_path_v14_avx2(int ggml_type) {
    const RowsI16Fn kq = rows_i16_kernel_kquant(ggml_type, false, 14);
    return kq ? I16Path{quantize_act_i16_avx2, kq, kPrefetchAheadAvx2} : i16_path_v13_avx2(ggml_type);
}

// --8<-- [end:matmul_v14]

// v15-v18 each take one k-quant type onto the 16-bit path (AVX-512 VNNI or AVX2 kernel) and hand every other
// type to the step before them.
template <int TYPE, int STEP, int64_t PREFETCH, bool AVX512, I16Path (*BEFORE)(int)>
static I16Path i16_path_kquant(int ggml_type) {
    if (ggml_type != TYPE) return BEFORE(ggml_type);
    const RowsI16Fn rows = rows_i16_kernel_kquant(ggml_type, AVX512, STEP);
    return rows ? I16Path{AVX512 ? quantize_act_i16 : quantize_act_i16_avx2, rows, PREFETCH} : BEFORE(ggml_type);
}

// ---- v15: the 16-bit decoding path for Q6_K ----
// Q6_K's scales change every 16 weights: each block of x's 32 gets two integer sums (vpdpwssd's lanes 0-7 and
// 8-15 already hold them apart) and two scales; the six-bit q's are put together 32 bytes at a time and
// offset by -32 in the integers (matmul/dot_i16_kquants_v14.cpp, rows_q6_k_i16). Before v15, Q6_K decoded with
// v6's float weights (AVX-512) or v3's int8 (AVX2). The rest: v14.
static I16Path i16_path_v15(int t) { return i16_path_kquant<GGML_Q6_K, 15, kPrefetchAheadI16, true, i16_path_v14>(t); }
static I16Path i16_path_v15_avx2(int t) { return i16_path_kquant<GGML_Q6_K, 15, kPrefetchAheadAvx2Q8, false, i16_path_v14_avx2>(t); }

// ---- v16: the 16-bit decoding path for Q5_K ----
// Q5_K is Q4_K with a fifth bit per weight in qh[32] (bit j of qh[l]: element 32 j + l): v14's kernel, and per
// sub-block a mask of those bits (AVX-512: one vptestmb) or the bits moved to bit 4 and ORed into the bytes
// (AVX2). Before v16, Q5_K decoded with v4's int8 kernel (v3 with AVX2). The rest: v15.
static I16Path i16_path_v16(int t) { return i16_path_kquant<GGML_Q5_K, 16, kPrefetchAheadI16, true, i16_path_v15>(t); }
static I16Path i16_path_v16_avx2(int t) { return i16_path_kquant<GGML_Q5_K, 16, kPrefetchAheadAvx2, false, i16_path_v15_avx2>(t); }

// ---- v17: the 16-bit decoding path for Q3_K ----
// Q3_K, like Q6_K, has a signed scale per 16 weights and no min: v15's loop with Q3_K's unpacking (3-bit q's
// from a 2-bit plane and hmask, 32 at a time; 16 six-bit scales from 12 bytes). In the default model's Q2_K and
// Q3_K files it is ffn_down's type. Before v17 it decoded with v4's int8 kernel (v3 with AVX2). The rest: v16.
static I16Path i16_path_v17(int t) { return i16_path_kquant<GGML_Q3_K, 17, kPrefetchAheadI16, true, i16_path_v16>(t); }
static I16Path i16_path_v17_avx2(int t) { return i16_path_kquant<GGML_Q3_K, 17, kPrefetchAheadAvx2, false, i16_path_v16_avx2>(t); }

// ---- v18: the 16-bit decoding path for Q2_K ----
// Q2_K: v15's loop with 2-bit q's and 4-bit scales, plus a min per 16 weights, whose term takes x's sums per 16
// (made once per call). Before v18 it decoded with v4's int8 kernel (v3 with AVX2). The rest: v17.
static I16Path i16_path_v18(int t) { return i16_path_kquant<GGML_Q2_K, 18, kPrefetchAheadI16, true, i16_path_v17>(t); }
static I16Path i16_path_v18_avx2(int t) { return i16_path_kquant<GGML_Q2_K, 18, kPrefetchAheadAvx2, false, i16_path_v17_avx2>(t); }

// ---- v19: prompts through the 16-bit path, an integer GEMM (matmul/gemm_i16_v19.cpp) ----
// v10's float GEMM runs near the FMA peak; one vpdpwssd does twice an FMA's multiply-adds. v19 rounds a prompt's
// x as v11-v18 round one token (quantize_act_i16), unpacks each group of rows once to int16 (sub-block scales
// folded in) and runs an 8 rows x 48 tokens vpdpwssd micro-kernel with a float epilogue per block of 32.
// Every quant type; F32/F16/BF16 and short products (decoding included) go to v18 as before.
bool gemm_i16_avx512(const QuantType& t, const uint8_t* W, int64_t n_rows, int64_t K, const float* x, int64_t n_tok,
                     float* y, ThreadPool& pool);
// --8<-- [start:matmul_v19]
// Its fixed cost (every row unpacked, a whole vector of 16 tokens) makes it worth it from 8 tokens where v18's
// short path keeps float weights in registers (v9/v6: Q4_0, Q4_1, Q8_0, Q4_K, Q6_K) and from 3 where v18 hands
// prompts to v10's GEMM (measured: docs/notes/matmul-diary.md, v19).
static int64_t gemm_i16_min_tokens(int ggml_type) { return v9_is_float(ggml_type) ? 8 : 3; }

static void matmul_v19(const QuantType& t, const uint8_t* W, int64_t n_rows, int64_t n_cols, const float* x,
                       int64_t n_tok, float* y, ThreadPool& pool) {
    if (n_tok >= gemm_i16_min_tokens(t.ggml_type) && gemm_i16_avx512(t, W, n_rows, n_cols, x, n_tok, y, pool)) return;
    matmul_i16_step<i16_path_v18>(t, W, n_rows, n_cols, x, n_tok, y, pool);  // one token, short products, float types
}
// --8<-- [end:matmul_v19]
#endif

#if defined(__aarch64__)
// ---- v11, v13-v18 with NEON: the 16-bit decoding path on aarch64 (matmul/neon_i16_v11_v18.cpp) ----
// x86's steps with NEON's widening multiply-accumulates (vmlal_s16): the same rounding of x, bit for bit, the
// same exact integer block sums; each step takes the types its x86 namesake takes and hands the others to the
// step before. Prompts, and types no step takes, run v6_f32_tiled_neon. No prefetch distance: not measured on
// an ARM CPU (there is none here; qemu checks correctness only).
template <int STEP>
static I16Path i16_path_neon(int ggml_type) { return {quantize_act_i16_neon, rows_i16_kernel_neon(ggml_type, STEP), 0}; }

// One token through the shared matmul_i16 (above); prompts and types no step takes: v6.
template <int STEP>
static void matmul_i16_neon(const QuantType& t, const uint8_t* W, int64_t n_rows, int64_t n_cols, const float* x,
                            int64_t n_tok, float* y, ThreadPool& pool) {
    const I16Path path = i16_path_neon<STEP>(t.ggml_type);
    if (!path.rows || n_tok != 1) return matmul_f32_tiled_neon(t, W, n_rows, n_cols, x, n_tok, y, pool);  // v6
    matmul_i16(path, t, W, n_rows, n_cols, x, y, pool);
}
#endif

// ---- the ladder, as data ----
// One row per version: the idea it adds; its own kernel, for which weight types and token counts; and the
// version that runs everything else. quant_matmul_kernel() reads the route from here, the fast path and
// PreparedActivations too: nothing below names a version in code.
struct MatmulVersion {
    const char* name;
    const char* idea;
    MatmulFn fn;
    bool (*available)();
    bool int8;                          // x rounded to 8 bits (llama.cpp's method): never the fast path
    uint32_t types;                     // the ggml types its own kernel takes (a bit per type number)
    int64_t (*min_tokens)(int type);    // the token counts its own kernel takes: min_tokens(type)..max_tokens
    int64_t max_tokens;                 //   (0: no limit)
    const char* kernel;                 // that kernel in words, after the type's name (nullptr: the int8 dot's name)
    int level;                          // int8 dot level its kernels (or its fallback's) use
    const char* otherwise;              // the version that runs what its own kernel does not take
    I16Path (*i16)(int type);           // its 16-bit decoding path (rounding, row kernel, prefetch), if any
};

static constexpr uint32_t type_bit(int t) { return 1u << t; }
static constexpr uint32_t kAllTypes = ~0u;
static constexpr uint32_t kQ4Q8 = type_bit(GGML_Q4_0) | type_bit(GGML_Q4_1) | type_bit(GGML_Q8_0);
static constexpr uint32_t kQ5 = type_bit(GGML_Q5_0) | type_bit(GGML_Q5_1);
static constexpr uint32_t kFloats = type_bit(GGML_F32) | type_bit(GGML_F16) | type_bit(GGML_BF16);
static constexpr uint32_t kKQuants = type_bit(GGML_Q2_K) | type_bit(GGML_Q3_K) | type_bit(GGML_Q4_K) | type_bit(GGML_Q5_K) | type_bit(GGML_Q6_K);
static int64_t one_token(int) { return 1; }

static const MatmulVersion kMatmulVersions[] = {
    {"v0_scalar_dequant", "the lesson line by line: dequantize a row, dot it with x", matmul_v0, detail::cpu_any, false,
     kAllTypes, one_token, 0, "dequantize + f32 dot scalar", LEVEL_SCALAR, nullptr, nullptr},
    {"v1_threads", "v0 with the rows split over the thread pool", matmul_v1, detail::cpu_any, false,
     kAllTypes, one_token, 0, "dequantize + f32 dot scalar", LEVEL_SCALAR, nullptr, nullptr},
    {"v2_int8", "x rounded to 8 bits once (Q8_0/Q8_1/Q8_K), exact integer sums per block", matmul_v2, detail::cpu_any, true,
     kAllTypes, one_token, 0, nullptr, LEVEL_SCALAR, nullptr, nullptr},
#if defined(__x86_64__) || defined(__i386__)
    {"v3_avx2", "v2 with AVX2 integer dot products (vpmaddubsw)", matmul_v3, detail::cpu_avx2, true,
     kAllTypes, one_token, 0, nullptr, LEVEL_AVX2, nullptr, nullptr},
    {"v4_avx512vnni", "v2 with AVX-512 VNNI dot products (vpdpbusd)", matmul_v4, detail::cpu_avx512vnni, true,
     kAllTypes, one_token, 0, nullptr, LEVEL_AVX512, nullptr, nullptr},
    {"v5_pairs", "v4's int8 x laid out to match the unpacked weights; scales gathered 16 at a time; 1-8 tokens per block",
     matmul_v5, detail::cpu_avx512vnni, true, kQ4Q8, one_token, 0, "x q8 pairs avx512vnni, 1-8 tokens per block", LEVEL_AVX512,
     "v4_avx512vnni", nullptr},
    {"v6_f32_tiled_avx2", "x stays float32; each block dequantized in registers once for up to 4 tokens (AVX2)",
     matmul_v6_avx2, detail::cpu_avx2, false, kQ4Q8 | kFloats, one_token, 0,
     "dequantized in registers x f32 avx2, 1-4 tokens per block", LEVEL_AVX2, "v3_avx2", nullptr},
    {"v6_f32_tiled_avx512", "x stays float32; each block dequantized in registers once for up to 8 tokens (AVX-512)",
     matmul_v6_avx512, detail::cpu_avx512vnni, false, kQ4Q8 | kFloats | type_bit(GGML_Q4_K) | type_bit(GGML_Q6_K), one_token, 0,
     "dequantized in registers x f32 avx512, 1-8 tokens per block", LEVEL_AVX512, "v4_avx512vnni", nullptr},
    {"v7_rows4", "decoding (1-2 tokens): four rows per call, 8 FMA chains, x loaded once", matmul_v7, detail::cpu_avx512vnni, false,
     kQ4Q8, one_token, 2, "dequantized in registers x f32 avx512, 4 rows x 1-2 tokens", LEVEL_AVX512, "v6_f32_tiled_avx512", nullptr},
    {"v8_rows4_lut", "v7 with 4-bit weights looked up (vpermps) in the block's 16 values", matmul_v8, detail::cpu_avx512vnni, false,
     type_bit(GGML_Q4_0) | type_bit(GGML_Q4_1), one_token, 2, "looked up in registers x f32 avx512, 4 rows x 1-2 tokens",
     LEVEL_AVX512, "v7_rows4", nullptr},
    {"v9_prefetch", "v8 with the rows asked for 2 KB ahead (software prefetch)", matmul_v9, detail::cpu_avx512vnni, false,
     kQ4Q8, one_token, 2, "in registers x f32 avx512, 4 rows x 1-2 tokens, prefetch 2 KB ahead", LEVEL_AVX512,
     "v6_f32_tiled_avx512", nullptr},
    {"v10_gemm_avx2", "prompts: each row dequantized once, then a register-blocked f32 GEMM, 6 rows x 16 tokens (AVX2)",
     matmul_v10_avx2, detail::cpu_avx2, false, kAllTypes, gemm_avx2_min_tokens, 0,
     "dequantized once per row x f32 gemm avx2, 6 rows x 16 tokens", LEVEL_AVX2, "v6_f32_tiled_avx2", nullptr},
    {"v10_gemm_avx512", "prompts: each row dequantized once, then a register-blocked f32 GEMM, 8 rows x 48 tokens (AVX-512)",
     matmul_v10, detail::cpu_avx512vnni, false, kAllTypes, gemm_min_tokens, 0,
     "dequantized once per row x f32 gemm avx512, 8 rows x 48 tokens", LEVEL_AVX512, "v9_prefetch", nullptr},
    {"v11_i16_decode_avx2", "decoding: x rounded to 16 bits, exact integer products (vpmaddwd, AVX2)", matmul_v11_avx2,
     detail::cpu_avx2, false, kQ4Q8, one_token, 1, "x int16 avx2 (vpmaddwd), 4 rows per call", LEVEL_AVX2, "v10_gemm_avx2",
     i16_path_v11_avx2},
    {"v11_i16_decode_avx512", "decoding: x rounded to 16 bits, exact integer products (vpdpwssd, AVX-512 VNNI)", matmul_v11,
     detail::cpu_avx512vnni, false, kQ4Q8, one_token, 1, "x int16 avx512vnni (vpdpwssd), 4 rows per call", LEVEL_AVX512,
     "v10_gemm_avx512", i16_path_v11},
    {"v12_i16_row_pairs", "v11 with two rows of 4-bit weights per register, scales gathered across rows", matmul_v12,
     detail::cpu_avx512vnni, false, kQ4Q8, one_token, 1, "x int16 avx512vnni, two rows per register (q8_0: scales of 4 rows as one run)",
     LEVEL_AVX512, "v10_gemm_avx512", i16_path_v12},
    {"v13_i16_q5_avx2", "v11 AVX2 for 5-bit weights (Q5_0, Q5_1): each block's fifth bits added to its nibbles",
     matmul_i16_step_avx2<i16_path_v13_avx2>, detail::cpu_avx2, false, kQ5, one_token, 1, "x int16 avx2 (vpmaddwd), fifth bits compared in, 4 rows per call",
     LEVEL_AVX2, "v11_i16_decode_avx2", i16_path_v13_avx2},
    {"v13_i16_q5_avx512", "v12 for 5-bit weights (Q5_0, Q5_1): each block's fifth bits a mask register, + 16 under it",
     matmul_i16_step<i16_path_v13>, detail::cpu_avx512vnni, false, kQ5, one_token, 1, "x int16 avx512vnni, two rows per register, fifth bits as masks",
     LEVEL_AVX512, "v12_i16_row_pairs", i16_path_v13},
    {"v14_i16_q4_k_avx2", "v13 AVX2 for Q4_K: each super-block's 8 sub-blocks decoded as blocks of 32 with unpacked scales",
     matmul_i16_step_avx2<i16_path_v14_avx2>, detail::cpu_avx2, false, type_bit(GGML_Q4_K), one_token, 1, "x int16 avx2 (vpmaddwd), 8 blocks of 32 per super-block",
     LEVEL_AVX2, "v13_i16_q5_avx2", i16_path_v14_avx2},
    {"v14_i16_q4_k_avx512", "v13 for Q4_K: each super-block's 8 sub-blocks decoded as blocks of 32 with unpacked scales",
     matmul_i16_step<i16_path_v14>, detail::cpu_avx512vnni, false, type_bit(GGML_Q4_K), one_token, 1, "x int16 avx512vnni, 8 blocks of 32 per super-block",
     LEVEL_AVX512, "v13_i16_q5_avx512", i16_path_v14},
    {"v15_i16_q6_k_avx2", "v14 AVX2 for Q6_K: six-bit q's made 32 at a time, two sub-blocks of 16 per block of x",
     matmul_i16_step_avx2<i16_path_v15_avx2>, detail::cpu_avx2, false, type_bit(GGML_Q6_K), one_token, 1, "x int16 avx2 (vpmaddwd), two scales per block of 32",
     LEVEL_AVX2, "v14_i16_q4_k_avx2", i16_path_v15_avx2},
    {"v15_i16_q6_k_avx512", "v14 for Q6_K: six-bit q's made 32 at a time, two sub-blocks of 16 per block of x",
     matmul_i16_step<i16_path_v15>, detail::cpu_avx512vnni, false, type_bit(GGML_Q6_K), one_token, 1, "x int16 avx512vnni, two scales per block of 32",
     LEVEL_AVX512, "v14_i16_q4_k_avx512", i16_path_v15},
    {"v16_i16_q5_k_avx2", "v15 AVX2 for Q5_K: v14's Q4_K kernel with each sub-block's fifth bits ORed into its bytes",
     matmul_i16_step_avx2<i16_path_v16_avx2>, detail::cpu_avx2, false, type_bit(GGML_Q5_K), one_token, 1, "x int16 avx2 (vpmaddwd), 8 blocks of 32 + fifth bits",
     LEVEL_AVX2, "v15_i16_q6_k_avx2", i16_path_v16_avx2},
    {"v16_i16_q5_k_avx512", "v15 for Q5_K: v14's Q4_K kernel with each sub-block's fifth bits as a mask (vptestmb)",
     matmul_i16_step<i16_path_v16>, detail::cpu_avx512vnni, false, type_bit(GGML_Q5_K), one_token, 1, "x int16 avx512vnni, 8 blocks of 32 + fifth bits as masks",
     LEVEL_AVX512, "v15_i16_q6_k_avx512", i16_path_v16},
    {"v17_i16_q3_k_avx2", "v16 AVX2 for Q3_K: v15's loop with 3-bit q's from a 2-bit plane and hmask",
     matmul_i16_step_avx2<i16_path_v17_avx2>, detail::cpu_avx2, false, type_bit(GGML_Q3_K), one_token, 1, "x int16 avx2 (vpmaddwd), two scales per block of 32",
     LEVEL_AVX2, "v16_i16_q5_k_avx2", i16_path_v17_avx2},
    {"v17_i16_q3_k_avx512", "v16 for Q3_K: v15's loop with 3-bit q's from a 2-bit plane and hmask",
     matmul_i16_step<i16_path_v17>, detail::cpu_avx512vnni, false, type_bit(GGML_Q3_K), one_token, 1, "x int16 avx512vnni, two scales per block of 32",
     LEVEL_AVX512, "v16_i16_q5_k_avx512", i16_path_v17},
    {"v18_i16_q2_k_avx2", "v17 AVX2 for Q2_K: 2-bit q's, and the mins' term from x's sums per 16",
     matmul_i16_step_avx2<i16_path_v18_avx2>, detail::cpu_avx2, false, type_bit(GGML_Q2_K), one_token, 1, "x int16 avx2 (vpmaddwd), two scales and mins per block of 32",
     LEVEL_AVX2, "v17_i16_q3_k_avx2", i16_path_v18_avx2},
    {"v18_i16_q2_k_avx512", "v17 for Q2_K: 2-bit q's, and the mins' term from x's sums per 16",
     matmul_i16_step<i16_path_v18>, detail::cpu_avx512vnni, false, type_bit(GGML_Q2_K), one_token, 1, "x int16 avx512vnni, two scales and mins per block of 32",
     LEVEL_AVX512, "v17_i16_q3_k_avx512", i16_path_v18},
    {"v19_i16_gemm_avx512", "prompts: x rounded to 16 bits as v11-v18 round it, rows unpacked once to int16, an integer GEMM (vpdpwssd), 8 rows x 48 tokens",
     matmul_v19, detail::cpu_avx512vnni, false, kQ4Q8 | kQ5 | kKQuants, gemm_i16_min_tokens, 0,
     "x int16 avx512vnni gemm (vpdpwssd), unpacked once per row, 8 rows x 48 tokens", LEVEL_AVX512, "v18_i16_q2_k_avx512", i16_path_v18},
#endif
#if defined(__aarch64__)  // matmul/neon_v3_v6.cpp
    {"v3_neon_int8", "v2 with NEON integer dot products (vmull_s8 + pairwise adds)", matmul_int8_neon, detail::cpu_neon, true,
     kAllTypes, one_token, 0, nullptr, LEVEL_SCALAR, nullptr, nullptr},
    {"v4_neon_dotprod", "v2 with SDOT int8 dot products (vdotq_s32)", matmul_int8_dotprod_neon, detail::cpu_neon_dotprod, true,
     kAllTypes, one_token, 0, nullptr, LEVEL_SCALAR, nullptr, nullptr},
    {"v6_f32_tiled_neon", "x stays float32; each block dequantized in registers once for up to 8 tokens (NEON)",
     matmul_f32_tiled_neon, detail::cpu_neon, false, kQ4Q8 | kFloats, one_token, 0, nullptr, LEVEL_SCALAR, nullptr, nullptr},
    // matmul/neon_i16_v11_v18.cpp: x86's 16-bit steps, one NEON row per step (same names, same types)
    {"v11_i16_decode_neon", "decoding: x rounded to 16 bits (x86's rounding), exact integer products (vmlal_s16, NEON)",
     matmul_i16_neon<11>, detail::cpu_neon, false, kQ4Q8, one_token, 1, "x int16 neon (vmlal_s16), 4 rows per call", LEVEL_SCALAR,
     "v6_f32_tiled_neon", i16_path_neon<11>},
    {"v13_i16_q5_neon", "v11 NEON for 5-bit weights (Q5_0, Q5_1): each block's fifth bits tested out of qh (vtst) and ORed in",
     matmul_i16_neon<13>, detail::cpu_neon, false, kQ5, one_token, 1, "x int16 neon (vmlal_s16), fifth bits tested in, 4 rows per call",
     LEVEL_SCALAR, "v11_i16_decode_neon", i16_path_neon<13>},
    {"v14_i16_q4_k_neon", "v13 NEON for Q4_K: each super-block's 8 sub-blocks decoded as blocks of 32 with unpacked scales",
     matmul_i16_neon<14>, detail::cpu_neon, false, type_bit(GGML_Q4_K), one_token, 1, "x int16 neon (vmlal_s16), 8 blocks of 32 per super-block",
     LEVEL_SCALAR, "v13_i16_q5_neon", i16_path_neon<14>},
    {"v15_i16_q6_k_neon", "v14 NEON for Q6_K: six-bit q's made 16 at a time, two sub-blocks of 16 per block of x",
     matmul_i16_neon<15>, detail::cpu_neon, false, type_bit(GGML_Q6_K), one_token, 1, "x int16 neon (vmlal_s16), two scales per block of 32",
     LEVEL_SCALAR, "v14_i16_q4_k_neon", i16_path_neon<15>},
    {"v16_i16_q5_k_neon", "v15 NEON for Q5_K: v14's Q4_K kernel with each sub-block's fifth bits tested out of qh (vtst)",
     matmul_i16_neon<16>, detail::cpu_neon, false, type_bit(GGML_Q5_K), one_token, 1, "x int16 neon (vmlal_s16), 8 blocks of 32 + fifth bits",
     LEVEL_SCALAR, "v15_i16_q6_k_neon", i16_path_neon<16>},
    {"v17_i16_q3_k_neon", "v16 NEON for Q3_K: v15's loop with 3-bit q's from a 2-bit plane and hmask",
     matmul_i16_neon<17>, detail::cpu_neon, false, type_bit(GGML_Q3_K), one_token, 1, "x int16 neon (vmlal_s16), two scales per block of 32",
     LEVEL_SCALAR, "v16_i16_q5_k_neon", i16_path_neon<17>},
    {"v18_i16_q2_k_neon", "v17 NEON for Q2_K: 2-bit q's, and the mins' term from x's sums per 16",
     matmul_i16_neon<18>, detail::cpu_neon, false, type_bit(GGML_Q2_K), one_token, 1, "x int16 neon (vmlal_s16), two scales and mins per block of 32",
     LEVEL_SCALAR, "v17_i16_q3_k_neon", i16_path_neon<18>},
#endif
};

static const MatmulVersion* version_named(const std::string& name) {  // available or not
    for (const auto& v : kMatmulVersions)
        if (name == v.name) return &v;
    return nullptr;
}

static const QuantType& check_matmul(int ggml_type, const uint8_t* W, int64_t n_rows, int64_t n_cols, const float* x,
                                     int64_t n_tok, float* y) {
    row_bytes(ggml_type, n_cols);  // throws for an unknown type or a bad n_cols
    if (n_rows < 0 || n_tok < 0) throw std::invalid_argument("quant_matmul: negative n_rows or n_tok");
    if ((n_rows > 0 && !W) || (n_tok > 0 && (!x || (n_rows > 0 && !y))))
        throw std::invalid_argument("quant_matmul: null pointer");
    return *quant_type(ggml_type);
}

// The fast path: the last version in the table that this CPU runs and that keeps the F32 model's accuracy
// (float32 activations, or 16-bit ones, whose rounding is ~1e-5 of each product), unless the
// environment variable LLAMA_LESSONS_MATMUL names another.
static const MatmulVersion& fast_path_version() {
    const char* name = std::getenv("LLAMA_LESSONS_MATMUL");
    if (name && *name) return detail::find_version(kMatmulVersions, name, "quant_matmul");
    const MatmulVersion* best = &kMatmulVersions[0];
    for (const auto& v : kMatmulVersions)
        if (v.available() && !v.int8) best = &v;
    return *best;
}

void quant_matmul(int ggml_type, const uint8_t* W, int64_t n_rows, int64_t n_cols, const float* x, int64_t n_tok,
                  float* y, ThreadPool& pool) {
    static const MatmulFn best = fast_path_version().fn;
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
    static const MatmulVersion* const fast_path = &fast_path_version();
    version_ = version, x_ = x, n_ = n;
    path_ = (version.empty() ? fast_path : version_named(version))->i16;  // the version's 16-bit path, if any
    if (!path_ || n % QK) {  // no 16-bit path: rows() uses x as it is
        path_ = nullptr;
        return;
    }
#if defined(__x86_64__) || defined(__i386__) || defined(__aarch64__)
    q_.resize(size_t(n)), d_.resize(size_t(n / QK)), s_.resize(size_t(n / QK));
    path_(GGML_Q4_1).quantize(x, n, q_.data(), d_.data(), s_.data());  // the rounding is the version's, not the type's
#endif
}

void PreparedActivations::rows(int ggml_type, const uint8_t* W_rows, int64_t n_rows, float* y, ThreadPool& pool) const {
#if defined(__x86_64__) || defined(__i386__) || defined(__aarch64__)
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

// The kernel a version runs for a type and a token count, read from the table: its own, or its fallback's.
static std::string route(const MatmulVersion& v, const QuantType& t, int64_t n_tok) {
#if defined(__aarch64__)
    if (!v.otherwise) return matmul_neon_kernel_name(v.name, t);  // v3, v4, v6: v6's fallback depends on the CPU's SDOT
#endif
    const bool own = (v.types >> t.ggml_type & 1) && n_tok >= v.min_tokens(t.ggml_type) && (v.max_tokens == 0 || n_tok <= v.max_tokens);
    if (!own && v.otherwise) return route(*version_named(v.otherwise), t, n_tok);
    if (!v.kernel) return dot_name_for_level(t, v.level);  // the int8 versions: "q4_1 x q8_1 avx2"
    return std::string(t.name) + " " + v.kernel;
}

std::string quant_matmul_kernel(const std::string& version, int ggml_type, int64_t n_tok) {
    const MatmulVersion& v = detail::find_version(kMatmulVersions, version, "quant_matmul");
    const QuantType* t = quant_type(ggml_type);
    if (!t) throw std::invalid_argument("unsupported ggml type " + std::to_string(ggml_type));
    if (n_tok < 1) throw std::invalid_argument("quant_matmul_kernel: n_tok must be at least 1");
    return route(v, *t, n_tok);
}

std::vector<VersionInfo> detail::quant_matmul_versions() { return describe(kMatmulVersions); }
std::string detail::quant_matmul_active() { return fast_path_version().name; }

}  // namespace ll
