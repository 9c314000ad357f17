// matmul/quantize_act.cpp -- quantizing activations to 8 bits, so matrix products become int8 dot products.
//
// The weight block decides the format: Q4_0/Q5_0/Q8_0 pair with Q8_0 blocks, Q4_1/Q5_1 with Q8_1 (which
// also carries s = d * sum(q), so the weight's offset m costs one multiply per block), k-quants with
// Q8_K (256 per block, a float scale, and sums of each 16 q's for the k-quants' mins).
// Rounding: d = amax / 127, q = round-to-nearest-even(x * 127 / amax): what ggml's SIMD paths compute.
// (The lesson is lessons/l14_quant_dot.py.)
#include <algorithm>
#include <cmath>
#include <stdexcept>

#include "matmul/blocks.h"

namespace ll {

// --8<-- [start:quantize_q8_1]
void quantize_row_q8_1(const float* x, BlockQ8_1* y, int64_t n) {
    for (int64_t i = 0; i < n / QK; i++, x += QK) {
        float amax = 0.0f;
        for (int j = 0; j < QK; j++) amax = std::max(amax, std::fabs(x[j]));
        const float d = amax / 127.0f, id = amax > 0.0f ? 127.0f / amax : 0.0f;
        int sum = 0;
        for (int j = 0; j < QK; j++) {
            y[i].qs[j] = int8_t(std::nearbyint(x[j] * id));  // |x * id| <= 127: no clamp needed
            sum += y[i].qs[j];
        }
        y[i].d = fp32_to_fp16(d);
        y[i].s = fp32_to_fp16(d * float(sum));
    }
}
// --8<-- [end:quantize_q8_1]

void quantize_row_q8_0(const float* x, BlockQ8_0* y, int64_t n) {
    for (int64_t i = 0; i < n / QK; i++, x += QK) {
        float amax = 0.0f;
        for (int j = 0; j < QK; j++) amax = std::max(amax, std::fabs(x[j]));
        const float id = amax > 0.0f ? 127.0f / amax : 0.0f;
        for (int j = 0; j < QK; j++) y[i].qs[j] = int8_t(std::nearbyint(x[j] * id));
        y[i].d = fp32_to_fp16(amax / 127.0f);
    }
}

// Q8_K keeps the sign of the largest value: it maps to -127 exactly, the other side may reach +127
// (clamped), and d stays a float (k-quant blocks are 8x longer, so a better scale is worth 4 bytes).
void quantize_row_q8_k(const float* x, BlockQ8_K* y, int64_t n) {
    for (int64_t i = 0; i < n / QK_K; i++, x += QK_K) {
        float amax = 0.0f, max = 0.0f;
        for (int j = 0; j < QK_K; j++)
            if (std::fabs(x[j]) > amax) amax = std::fabs(x[j]), max = x[j];
        if (amax == 0.0f) {
            std::memset(&y[i], 0, sizeof(BlockQ8_K));
            continue;
        }
        const float iscale = -127.0f / max;
        for (int j = 0; j < QK_K; j++) y[i].qs[j] = int8_t(std::min(127.0f, std::nearbyint(iscale * x[j])));
        for (int k = 0; k < 16; k++) {
            int sum = 0;
            for (int j = 0; j < 16; j++) sum += y[i].qs[16 * k + j];
            y[i].bsums[k] = int16_t(sum);
        }
        y[i].d = 1.0f / iscale;
    }
}

size_t act_row_bytes(ActFormat f, int64_t n) {
    switch (f) {
        case ActFormat::F32: return size_t(n) * 4;
        case ActFormat::Q8_0: return size_t(n / QK) * sizeof(BlockQ8_0);
        case ActFormat::Q8_1: return size_t(n / QK) * sizeof(BlockQ8_1);
        case ActFormat::Q8_K: return size_t(n / QK_K) * sizeof(BlockQ8_K);
    }
    throw std::logic_error("act_row_bytes: bad format");
}

void quantize_act_row(ActFormat f, const float* x, uint8_t* out, int64_t n) {
    switch (f) {
        case ActFormat::F32: std::memcpy(out, x, size_t(n) * 4); return;
        case ActFormat::Q8_0: quantize_row_q8_0(x, reinterpret_cast<BlockQ8_0*>(out), n); return;
        case ActFormat::Q8_1: quantize_row_q8_1(x, reinterpret_cast<BlockQ8_1*>(out), n); return;
        case ActFormat::Q8_K: quantize_row_q8_k(x, reinterpret_cast<BlockQ8_K*>(out), n); return;
    }
}

}  // namespace ll
