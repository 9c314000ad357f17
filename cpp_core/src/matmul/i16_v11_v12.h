// matmul/i16_v11_v12.h -- the 16-bit decoding kernels of quant_matmul v11 and v12: their rounding of x and
// their row kernels, as matmul.cpp (the ladder) and PreparedActivations (the decoding team) call them.
#pragma once
#if defined(__x86_64__) || defined(__i386__)
#include <cstdint>

namespace ll {

// quant_matmul v11/v12 (matmul/dot_avx512_v11_v12.cpp): one token's activations rounded to 16 bits, then
// y[r] = dot(row r, x) for n_rows rows rb bytes apart, with v9's prefetch `ahead` bytes on.
void quantize_act_i16(const float* x, int64_t n, int16_t* q, float* d, float* s);
using RowsI16Fn = void (*)(int64_t n, const uint8_t* w, int64_t rb, int64_t n_rows, const int16_t* xq, const float* xd,
                           const float* xs, float* y, int64_t ahead);
using QuantizeI16Fn = void (*)(const float* x, int64_t n, int16_t* q, float* d, float* s);
RowsI16Fn rows_i16_kernel(int ggml_type, bool row_pairs);  // v11's kernels, or v12's; nullptr: no 16-bit kernel
// The same for CPUs with AVX2 only (matmul/dot_avx2_v11.cpp, v11_i16_decode_avx2): the same rounding, bit for bit.
void quantize_act_i16_avx2(const float* x, int64_t n, int16_t* q, float* d, float* s);
RowsI16Fn rows_i16_kernel_avx2(int ggml_type);

// v13's 5-bit kernels (Q5_0, Q5_1: the same rounding of x, the same row loops, each block's fifth bits added):
// AVX-512 in matmul/dot_avx512_v11_v12.cpp, AVX2 in matmul/dot_avx2_v11.cpp; nullptr for other types.
RowsI16Fn rows_i16_kernel_q5(int ggml_type);
RowsI16Fn rows_i16_kernel_q5_avx2(int ggml_type);
// The k-quant kernels of the 16-bit steps up to `step`: v14 Q4_K (super-blocks as 8 blocks of 32), v15 + Q6_K
// (two sub-blocks of 16 per block of x), v16 + Q5_K (Q4_K and a fifth bit), v17 + Q3_K (Q6_K's loop), v18 + Q2_K;
// matmul/dot_i16_kquants_v14.cpp,
// AVX-512 VNNI or AVX2; nullptr for other types.
RowsI16Fn rows_i16_kernel_kquant(int ggml_type, bool avx512, int step);

// The types with 16-bit kernels: a block's bytes, where its quants start (after the fp16 scale d, Q4_1's
// and Q5_1's fp16 offset m, and Q5's 32 fifth bits qh), where qh is, and the constant its q's are offset by.
enum I16Type { I16_Q4_0, I16_Q4_1, I16_Q8_0, I16_Q5_0, I16_Q5_1 };
template <int TYPE> constexpr int kBlockBytes = TYPE == I16_Q4_0 ? 18 : TYPE == I16_Q4_1 ? 20 : TYPE == I16_Q5_0 ? 22
                                              : TYPE == I16_Q5_1 ? 24 : 34;
template <int TYPE> constexpr int kQsOffset = TYPE == I16_Q4_1 ? 4 : TYPE == I16_Q5_0 ? 6 : TYPE == I16_Q5_1 ? 8 : 2;
template <int TYPE> constexpr bool kFiveBits = TYPE == I16_Q5_0 || TYPE == I16_Q5_1;
template <int TYPE> constexpr int kQhOffset = TYPE == I16_Q5_1 ? 4 : 2;  // (Q5 types only)
template <int TYPE> constexpr bool kHasM = TYPE == I16_Q4_1 || TYPE == I16_Q5_1;  // w = d q + m
// w = d (q - kZero): Q4_0 8, Q5_0 16 (Q8_0, and the types with m: 0)
template <int TYPE> constexpr int kZero = TYPE == I16_Q4_0 ? 8 : TYPE == I16_Q5_0 ? 16 : 0;

}  // namespace ll
#endif
