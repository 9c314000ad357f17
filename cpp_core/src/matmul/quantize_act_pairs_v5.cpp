// matmul/quantize_act_pairs_v5.cpp -- quantizing activations into v5's layout (matmul/pairs_v5.h).
#include <cmath>

#include "matmul/pairs_v5.h"

namespace ll {

static size_t align64(size_t n) { return (n + 63) & ~size_t(63); }

size_t act_pairs_bytes(int64_t n) {
    const size_t nb = size_t(n / QK);
    return align64(size_t(n)) + align64(size_t(n / 4) * 4) + 2 * align64(nb * 4);
}

ActPairsView act_pairs_view(const uint8_t* buf, int64_t n) {
    const size_t nb = size_t(n / QK);
    ActPairsView v;
    v.qs = reinterpret_cast<const int8_t*>(buf);
    v.init = reinterpret_cast<const int32_t*>(buf + align64(size_t(n)));
    v.d = reinterpret_cast<const float*>(buf + align64(size_t(n)) + align64(size_t(n / 4) * 4));
    v.s = v.d + align64(nb * 4) / 4;
    return v;
}

// Where element j of block i goes: pairs (i, i+1) with i even are interleaved by halves, so that the
// 64 bytes at 32 * i read [lo(i) | lo(i+1) | hi(i) | hi(i+1)]. A last unpaired block stays in order.
static inline int64_t pair_position(PairsKind kind, int64_t i, int j, int64_t nb) {
    if (kind == PairsKind::Q8_0 || (i == nb - 1 && nb % 2 == 1)) return QK * i + j;
    const int64_t base = QK * (i & ~int64_t(1));
    const int second = int(i & 1), upper = j / 16;
    return base + 32 * upper + 16 * second + (j % 16);
}

// --8<-- [start:quantize_pairs]
void quantize_act_pairs(PairsKind kind, const float* x, uint8_t* out, int64_t n) {
    const int64_t nb = n / QK;
    const ActPairsView v = act_pairs_view(out, n);
    int8_t* qs = const_cast<int8_t*>(v.qs);
    float* d = const_cast<float*>(v.d);
    float* s = const_cast<float*>(v.s);
    for (int64_t i = 0; i < nb; i++) {
        const float* xb = x + QK * i;
        float amax = 0.0f;
        for (int j = 0; j < QK; j++) amax = std::max(amax, std::fabs(xb[j]));
        const float id = amax > 0.0f ? 127.0f / amax : 0.0f;
        int sum = 0;
        for (int j = 0; j < QK; j++) {
            const int8_t q = int8_t(std::nearbyint(xb[j] * id));
            qs[pair_position(kind, i, j, nb)] = q;
            sum += q;
        }
        d[i] = fp16_to_fp32(fp32_to_fp16(amax / 127.0f));
        s[i] = fp16_to_fp32(fp32_to_fp16(amax / 127.0f * float(sum)));
    }
    int32_t* init = const_cast<int32_t*>(v.init);
    const int bias = kind == PairsKind::Q4_0 ? -8 : kind == PairsKind::Q8_0 ? -128 : 0;
    for (int64_t g = 0; g < n / 4; g++)  // in the stored order: lane g of a vpdpbusd covers qs[4g .. 4g+3]
        init[g] = bias * (qs[4 * g] + qs[4 * g + 1] + qs[4 * g + 2] + qs[4 * g + 3]);
}
// --8<-- [end:quantize_pairs]

}  // namespace ll
