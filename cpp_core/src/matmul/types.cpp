// matmul/types.cpp -- the table of ggml types: block geometry, activation format, dequantizer, dot per SIMD level.
#include <stdexcept>
#include <string>

#include "kernels.h"
#include "matmul/blocks.h"

namespace ll {

#define DECLARE_DOT(name) float name(int64_t n, const uint8_t* w, const void* act);
DECLARE_DOT(dot_f32_scalar) DECLARE_DOT(dot_f16_scalar) DECLARE_DOT(dot_bf16_scalar)
DECLARE_DOT(dot_q4_0_q8_0_scalar) DECLARE_DOT(dot_q4_1_q8_1_scalar) DECLARE_DOT(dot_q5_0_q8_0_scalar)
DECLARE_DOT(dot_q5_1_q8_1_scalar) DECLARE_DOT(dot_q8_0_q8_0_scalar) DECLARE_DOT(dot_q2_k_q8_k_scalar)
DECLARE_DOT(dot_q3_k_q8_k_scalar) DECLARE_DOT(dot_q4_k_q8_k_scalar) DECLARE_DOT(dot_q5_k_q8_k_scalar)
DECLARE_DOT(dot_q6_k_q8_k_scalar)
#if defined(__x86_64__) || defined(__i386__)
DECLARE_DOT(dot_f32_avx2) DECLARE_DOT(dot_f16_avx2) DECLARE_DOT(dot_bf16_avx2)
DECLARE_DOT(dot_q4_0_q8_0_avx2) DECLARE_DOT(dot_q4_1_q8_1_avx2) DECLARE_DOT(dot_q5_0_q8_0_avx2)
DECLARE_DOT(dot_q5_1_q8_1_avx2) DECLARE_DOT(dot_q8_0_q8_0_avx2) DECLARE_DOT(dot_q4_k_q8_k_avx2)
DECLARE_DOT(dot_q6_k_q8_k_avx2)
DECLARE_DOT(dot_f32_avx512) DECLARE_DOT(dot_f16_avx512) DECLARE_DOT(dot_bf16_avx512)
DECLARE_DOT(dot_q4_0_q8_0_avx512) DECLARE_DOT(dot_q4_1_q8_1_avx512) DECLARE_DOT(dot_q8_0_q8_0_avx512)
#define X86(f) f
#else
#define X86(f) nullptr
#endif
#undef DECLARE_DOT

// clang-format off
static const QuantType kQuantTypes[] = {
    {GGML_F32,  "f32",  1,    4,   ActFormat::F32,  dequant_row_f32,  {dot_f32_scalar,  X86(dot_f32_avx2),  X86(dot_f32_avx512)},
     {"f32 x f32 scalar", "f32 x f32 avx2", "f32 x f32 avx512"}},
    {GGML_F16,  "f16",  1,    2,   ActFormat::F32,  dequant_row_f16,  {dot_f16_scalar,  X86(dot_f16_avx2),  X86(dot_f16_avx512)},
     {"f16 x f32 scalar", "f16 x f32 avx2 (f16c)", "f16 x f32 avx512"}},
    {GGML_BF16, "bf16", 1,    2,   ActFormat::F32,  dequant_row_bf16, {dot_bf16_scalar, X86(dot_bf16_avx2), X86(dot_bf16_avx512)},
     {"bf16 x f32 scalar", "bf16 x f32 avx2", "bf16 x f32 avx512"}},
    {GGML_Q4_0, "q4_0", QK,   18,  ActFormat::Q8_0, dequant_row_q4_0, {dot_q4_0_q8_0_scalar, X86(dot_q4_0_q8_0_avx2), X86(dot_q4_0_q8_0_avx512)},
     {"q4_0 x q8_0 scalar", "q4_0 x q8_0 avx2", "q4_0 x q8_0 avx512vnni"}},
    {GGML_Q4_1, "q4_1", QK,   20,  ActFormat::Q8_1, dequant_row_q4_1, {dot_q4_1_q8_1_scalar, X86(dot_q4_1_q8_1_avx2), X86(dot_q4_1_q8_1_avx512)},
     {"q4_1 x q8_1 scalar", "q4_1 x q8_1 avx2", "q4_1 x q8_1 avx512vnni"}},
    {GGML_Q5_0, "q5_0", QK,   22,  ActFormat::Q8_0, dequant_row_q5_0, {dot_q5_0_q8_0_scalar, X86(dot_q5_0_q8_0_avx2), nullptr},
     {"q5_0 x q8_0 scalar", "q5_0 x q8_0 avx2", ""}},
    {GGML_Q5_1, "q5_1", QK,   24,  ActFormat::Q8_1, dequant_row_q5_1, {dot_q5_1_q8_1_scalar, X86(dot_q5_1_q8_1_avx2), nullptr},
     {"q5_1 x q8_1 scalar", "q5_1 x q8_1 avx2", ""}},
    {GGML_Q8_0, "q8_0", QK,   34,  ActFormat::Q8_0, dequant_row_q8_0, {dot_q8_0_q8_0_scalar, X86(dot_q8_0_q8_0_avx2), X86(dot_q8_0_q8_0_avx512)},
     {"q8_0 x q8_0 scalar", "q8_0 x q8_0 avx2", "q8_0 x q8_0 avx512vnni"}},
    {GGML_Q2_K, "q2_k", QK_K, 84,  ActFormat::Q8_K, dequant_row_q2_k, {dot_q2_k_q8_k_scalar, nullptr, nullptr},
     {"q2_k x q8_k scalar", "", ""}},
    {GGML_Q3_K, "q3_k", QK_K, 110, ActFormat::Q8_K, dequant_row_q3_k, {dot_q3_k_q8_k_scalar, nullptr, nullptr},
     {"q3_k x q8_k scalar", "", ""}},
    {GGML_Q4_K, "q4_k", QK_K, 144, ActFormat::Q8_K, dequant_row_q4_k, {dot_q4_k_q8_k_scalar, X86(dot_q4_k_q8_k_avx2), nullptr},
     {"q4_k x q8_k scalar", "q4_k x q8_k avx2", ""}},
    {GGML_Q5_K, "q5_k", QK_K, 176, ActFormat::Q8_K, dequant_row_q5_k, {dot_q5_k_q8_k_scalar, nullptr, nullptr},
     {"q5_k x q8_k scalar", "", ""}},
    {GGML_Q6_K, "q6_k", QK_K, 210, ActFormat::Q8_K, dequant_row_q6_k, {dot_q6_k_q8_k_scalar, X86(dot_q6_k_q8_k_avx2), nullptr},
     {"q6_k x q8_k scalar", "q6_k x q8_k avx2", ""}},
};
// clang-format on

const QuantType* quant_type(int ggml_type) {
    for (const auto& t : kQuantTypes)
        if (t.ggml_type == ggml_type) return &t;
    return nullptr;
}

size_t row_bytes(int ggml_type, int64_t n_cols) {
    const QuantType* t = quant_type(ggml_type);
    if (!t) throw std::invalid_argument("unsupported ggml type " + std::to_string(ggml_type));
    if (n_cols <= 0 || n_cols % t->block_size != 0)
        throw std::invalid_argument(std::string(t->name) + " rows need a positive multiple of " +
                                    std::to_string(t->block_size) + " columns, got " + std::to_string(n_cols));
    return size_t(n_cols / t->block_size) * size_t(t->block_bytes);
}

}  // namespace ll
