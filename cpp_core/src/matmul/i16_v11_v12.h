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

// The types with 16-bit kernels: a block's bytes, and where its quants start (after the fp16 scale d,
// and Q4_1's fp16 offset m)
enum I16Type { I16_Q4_0, I16_Q4_1, I16_Q8_0 };
template <int TYPE> constexpr int kBlockBytes = TYPE == I16_Q4_0 ? 18 : TYPE == I16_Q4_1 ? 20 : 34;
template <int TYPE> constexpr int kQsOffset = TYPE == I16_Q4_1 ? 4 : 2;

}  // namespace ll
#endif
