// kernels_neon.h -- the aarch64 NEON versions of the kernels, declared for the op files' version tables.
//
// NEON (ASIMD, 4 float lanes) is in every aarch64 CPU, so those versions need no run-time check beyond
// being built for aarch64. The int8 dot-product instructions (SDOT, vdotq_s32) are optional before
// ARMv8.4: that version is compiled for "+dotprod" and listed as available only when the kernel's
// HWCAP bits say the CPU has them (cpu/features.cpp).
// None of this is timed on ARM hardware here: the versions are checked for correctness under qemu
// (tests/native/neon_check.cpp, run by tests/test_neon_qemu.py).
#pragma once

#if defined(__aarch64__)
#include <cstdint>
#include <string>

#include "cpu/features.h"
#include "model/model.h"

namespace ll {

// ---- ops/neon_v1.cpp ----
void rmsnorm_neon(const float* x, const float* weight, float* out, int64_t n, float eps);
void softmax_neon(float* x, int64_t n);
void swiglu_neon(const float* gate, const float* up, float* out, int64_t n);
void apply_rope_neon(float* x, int64_t n_tok, int n_head, int head_dim, const float* cos, const float* sin, int n_rot, bool neox);

// ---- attention/neon_v2.cpp ----
void attention_neon(const float* q, const void* k, const void* v, float* out, const AttentionShape& s, ThreadPool& pool);  // float32 or float16 cache (s.kv_type)

// ---- matmul/neon_v3_v6.cpp ----
struct QuantType;
void matmul_int8_neon(const QuantType& t, const uint8_t* W, int64_t n_rows, int64_t n_cols, const float* x,
                      int64_t n_tok, float* y, ThreadPool& pool);
void matmul_int8_dotprod_neon(const QuantType& t, const uint8_t* W, int64_t n_rows, int64_t n_cols, const float* x,
                              int64_t n_tok, float* y, ThreadPool& pool);
void matmul_f32_tiled_neon(const QuantType& t, const uint8_t* W, int64_t n_rows, int64_t n_cols, const float* x,
                           int64_t n_tok, float* y, ThreadPool& pool);
std::string matmul_neon_kernel_name(const std::string& version, const QuantType& t);  // for quant_matmul_kernel()

// ---- matmul/neon_i16_v11_v18.cpp: the 16-bit decoding path (x86's v11, v13-v18 with NEON) ----
// The same signatures as the x86 kernels (matmul/i16_v11_v12.h): x rounded once to int16, one (d, s) per block of
// 32; then y[r] = dot(row r, x) for n_rows rows rb bytes apart (`ahead`: unused, no prefetch on NEON).
using RowsI16Fn = void (*)(int64_t n, const uint8_t* w, int64_t rb, int64_t n_rows, const int16_t* xq, const float* xd,
                           const float* xs, float* y, int64_t ahead);
using QuantizeI16Fn = void (*)(const float* x, int64_t n, int16_t* q, float* d, float* s);
void quantize_act_i16_neon(const float* x, int64_t n, int16_t* q, float* d, float* s);  // x86's rounding, bit for bit
RowsI16Fn rows_i16_kernel_neon(int ggml_type, int step);  // step 11, 13..18: the types up to it; nullptr: none

namespace detail {
inline bool cpu_neon() { return cpu_features().has_neon(); }
inline bool cpu_neon_dotprod() { return cpu_features().has_dotprod(); }
}  // namespace detail

}  // namespace ll
#endif
