// matmul/blocks.h -- ggml's block layouts, half-float conversion, and the per-type kernel tables.
//
// A quantized row is a sequence of blocks; each block stores a few scales and small integers for
// 32 (legacy types) or 256 (k-quants) consecutive weights. The structs below are exactly the bytes
// in the GGUF file (packed, little-endian), so a row pointer into the mmap can be cast to them.
// The lessons that explain each layout: lessons/l12_quants.py (legacy) and lessons/l13_kquants*.py.
#pragma once

#include <cstdint>
#include <cstring>

namespace ll {

constexpr int QK = 32;    // elements per legacy block
constexpr int QK_K = 256; // elements per k-quant super-block

#pragma pack(push, 1)
struct BlockQ4_0 { uint16_t d; uint8_t qs[16]; };              // w = d * (q - 8),  q in 0..15
struct BlockQ4_1 { uint16_t d, m; uint8_t qs[16]; };           // w = d * q + m
struct BlockQ5_0 { uint16_t d; uint8_t qh[4]; uint8_t qs[16]; }; // w = d * (q - 16), q in 0..31 (5th bit in qh)
struct BlockQ5_1 { uint16_t d, m; uint8_t qh[4]; uint8_t qs[16]; };
struct BlockQ8_0 { uint16_t d; int8_t qs[32]; };               // w = d * q
struct BlockQ8_1 { uint16_t d, s; int8_t qs[32]; };            // activations: s = d * sum(q)
struct BlockQ2_K { uint8_t scales[16]; uint8_t qs[64]; uint16_t d, dmin; };
struct BlockQ3_K { uint8_t hmask[32]; uint8_t qs[64]; uint8_t scales[12]; uint16_t d; };
struct BlockQ4_K { uint16_t d, dmin; uint8_t scales[12]; uint8_t qs[128]; };
struct BlockQ5_K { uint16_t d, dmin; uint8_t scales[12]; uint8_t qh[32]; uint8_t qs[128]; };
struct BlockQ6_K { uint8_t ql[128]; uint8_t qh[64]; int8_t scales[16]; uint16_t d; };
struct BlockQ8_K { float d; int8_t qs[256]; int16_t bsums[16]; };  // activations: bsums = sums of 16 q's
#pragma pack(pop)

static_assert(sizeof(BlockQ4_0) == 18 && sizeof(BlockQ4_1) == 20 && sizeof(BlockQ5_0) == 22, "block size");
static_assert(sizeof(BlockQ5_1) == 24 && sizeof(BlockQ8_0) == 34 && sizeof(BlockQ8_1) == 36, "block size");
static_assert(sizeof(BlockQ2_K) == 84 && sizeof(BlockQ3_K) == 110 && sizeof(BlockQ4_K) == 144, "block size");
static_assert(sizeof(BlockQ5_K) == 176 && sizeof(BlockQ6_K) == 210 && sizeof(BlockQ8_K) == 292, "block size");

// ---- half floats ----
// IEEE binary16 -> binary32 by moving the bit fields (handles subnormals, inf and nan).
static inline float fp16_to_fp32(uint16_t h) {
    const uint32_t sign = uint32_t(h & 0x8000) << 16;
    uint32_t exp = (h >> 10) & 0x1f, mant = h & 0x3ff, bits;
    if (exp == 0x1f) {
        bits = sign | 0x7f800000u | (mant << 13);  // inf / nan
    } else if (exp != 0) {
        bits = sign | ((exp + 112) << 23) | (mant << 13);  // normal: rebias 15 -> 127
    } else if (mant == 0) {
        bits = sign;  // +-0
    } else {  // subnormal: normalize the mantissa
        int e = -1;
        do { mant <<= 1; e++; } while (!(mant & 0x400));
        bits = sign | uint32_t(112 - e) << 23 | ((mant & 0x3ff) << 13);
    }
    float f;
    std::memcpy(&f, &bits, 4);
    return f;
}

// binary32 -> binary16, round to nearest even (used for the activation scales, as ggml stores them).
static inline uint16_t fp32_to_fp16(float f) {
    uint32_t x;
    std::memcpy(&x, &f, 4);
    const uint32_t sign = (x >> 16) & 0x8000;
    const uint32_t abs = x & 0x7fffffff;
    if (abs >= 0x7f800000u) return uint16_t(sign | 0x7c00 | (abs > 0x7f800000u ? 0x200 : 0));  // inf / nan
    if (abs >= 0x477ff000u) return uint16_t(sign | 0x7c00);  // rounds to >= 65520: overflow to inf
    if (abs < 0x38800000u) {  // below the smallest normal half: subnormal or zero
        if (abs < 0x33000000u) return uint16_t(sign);
        const uint32_t e = abs >> 23, m = (abs & 0x7fffff) | 0x800000;
        const uint32_t shift = 126 - e;  // 14 + (113 - e)
        uint32_t h = m >> shift;
        const uint32_t rem = m & ((1u << shift) - 1), halfway = 1u << (shift - 1);
        if (rem > halfway || (rem == halfway && (h & 1))) h++;
        return uint16_t(sign | h);
    }
    uint32_t h = ((abs - 0x38000000u) >> 13);  // rebias 127 -> 15
    const uint32_t rem = abs & 0x1fff;
    if (rem > 0x1000 || (rem == 0x1000 && (h & 1))) h++;
    return uint16_t(sign | h);
}

static inline float bf16_to_fp32(uint16_t h) {
    const uint32_t bits = uint32_t(h) << 16;
    float f;
    std::memcpy(&f, &bits, 4);
    return f;
}

// ---- per-type tables ----
// Activation formats: x is quantized to the format whose blocks line up with the weight's.
enum class ActFormat { F32, Q8_0, Q8_1, Q8_K };

// dot(n, one weight row, one activation row in act format) -> float
using VecDotFn = float (*)(int64_t n, const uint8_t* w, const void* act);
// dequantize one row of n elements (the v0 path and the tests' reference)
using DequantRowFn = void (*)(const uint8_t* w, float* out, int64_t n);

enum SimdLevel { LEVEL_SCALAR = 0, LEVEL_AVX2 = 1, LEVEL_AVX512 = 2, N_LEVELS = 3 };

struct QuantType {
    int ggml_type;
    const char* name;
    int block_size, block_bytes;
    ActFormat act;
    DequantRowFn dequantize_row;
    VecDotFn dot[N_LEVELS];          // int8 (or f32 for float types) dot; nullptr = none at that level
    const char* dot_name[N_LEVELS];  // for reports, e.g. "q4_1 x q8_1 avx2"
};

// The table for a ggml type, or nullptr for a type the kernels do not handle.
const QuantType* quant_type(int ggml_type);

// Activation quantizers (matmul/quantize_act.cpp): one row of n floats -> n/32 or n/256 blocks.
void quantize_row_q8_0(const float* x, BlockQ8_0* y, int64_t n);
void quantize_row_q8_1(const float* x, BlockQ8_1* y, int64_t n);
void quantize_row_q8_k(const float* x, BlockQ8_K* y, int64_t n);
size_t act_row_bytes(ActFormat f, int64_t n);
void quantize_act_row(ActFormat f, const float* x, uint8_t* out, int64_t n);

// Dequantizers (matmul/dequantize.cpp) and dot products per level (quant_dot_*.cpp), filled into the table.
void dequant_row_f32(const uint8_t*, float*, int64_t);
void dequant_row_f16(const uint8_t*, float*, int64_t);
void dequant_row_bf16(const uint8_t*, float*, int64_t);
void dequant_row_q4_0(const uint8_t*, float*, int64_t);
void dequant_row_q4_1(const uint8_t*, float*, int64_t);
void dequant_row_q5_0(const uint8_t*, float*, int64_t);
void dequant_row_q5_1(const uint8_t*, float*, int64_t);
void dequant_row_q8_0(const uint8_t*, float*, int64_t);
void dequant_row_q2_k(const uint8_t*, float*, int64_t);
void dequant_row_q3_k(const uint8_t*, float*, int64_t);
void dequant_row_q4_k(const uint8_t*, float*, int64_t);
void dequant_row_q5_k(const uint8_t*, float*, int64_t);
void dequant_row_q6_k(const uint8_t*, float*, int64_t);

}  // namespace ll
