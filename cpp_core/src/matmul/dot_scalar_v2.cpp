// matmul/dot_scalar_v2.cpp -- one weight row . one quantized activation row, plain C++ (the int8 idea, no SIMD).
//
// With both sides as (scale, small integers) per block, a block's dot product is an exact integer sum
// times one float: sum_j (d_w q_w[j]) (d_x q_x[j]) = d_w d_x sum_j q_w[j] q_x[j].
// Offsets (Q4_1's m, the k-quants' mins) factor out the same way against the activation's block sums.
#include "matmul/blocks.h"
#include "matmul/kquant_scales.h"

namespace ll {

// ---- float weights: f32 activations, no quantization ----
float dot_f32_scalar(int64_t n, const uint8_t* w, const void* act) {
    const float* a = static_cast<const float*>(act);
    const float* x = reinterpret_cast<const float*>(w);
    float sum = 0.0f;
    for (int64_t i = 0; i < n; i++) sum += x[i] * a[i];
    return sum;
}
float dot_f16_scalar(int64_t n, const uint8_t* w, const void* act) {
    const float* a = static_cast<const float*>(act);
    const uint16_t* h = reinterpret_cast<const uint16_t*>(w);
    float sum = 0.0f;
    for (int64_t i = 0; i < n; i++) sum += fp16_to_fp32(h[i]) * a[i];
    return sum;
}
float dot_bf16_scalar(int64_t n, const uint8_t* w, const void* act) {
    const float* a = static_cast<const float*>(act);
    const uint16_t* h = reinterpret_cast<const uint16_t*>(w);
    float sum = 0.0f;
    for (int64_t i = 0; i < n; i++) sum += bf16_to_fp32(h[i]) * a[i];
    return sum;
}

// ---- legacy quants x Q8_0 / Q8_1 ----
// --8<-- [start:dot_q4_1_scalar]
float dot_q4_1_q8_1_scalar(int64_t n, const uint8_t* w, const void* act) {
    const BlockQ4_1* b = reinterpret_cast<const BlockQ4_1*>(w);
    const BlockQ8_1* a = static_cast<const BlockQ8_1*>(act);
    float sum = 0.0f;
    for (int64_t i = 0; i < n / QK; i++) {
        int sumi = 0;  // exact: at most 32 * 15 * 127
        for (int j = 0; j < 16; j++) sumi += (b[i].qs[j] & 0xF) * a[i].qs[j] + (b[i].qs[j] >> 4) * a[i].qs[j + 16];
        // sum_j (d q_j + m) x_j = d d_x sumi + m s_x, with s_x = d_x sum_j q_x[j] precomputed
        sum += fp16_to_fp32(b[i].d) * fp16_to_fp32(a[i].d) * float(sumi) + fp16_to_fp32(b[i].m) * fp16_to_fp32(a[i].s);
    }
    return sum;
}
// --8<-- [end:dot_q4_1_scalar]

float dot_q4_0_q8_0_scalar(int64_t n, const uint8_t* w, const void* act) {
    const BlockQ4_0* b = reinterpret_cast<const BlockQ4_0*>(w);
    const BlockQ8_0* a = static_cast<const BlockQ8_0*>(act);
    float sum = 0.0f;
    for (int64_t i = 0; i < n / QK; i++) {
        int sumi = 0;
        for (int j = 0; j < 16; j++)
            sumi += ((b[i].qs[j] & 0xF) - 8) * a[i].qs[j] + ((b[i].qs[j] >> 4) - 8) * a[i].qs[j + 16];
        sum += fp16_to_fp32(b[i].d) * fp16_to_fp32(a[i].d) * float(sumi);
    }
    return sum;
}

float dot_q5_0_q8_0_scalar(int64_t n, const uint8_t* w, const void* act) {
    const BlockQ5_0* b = reinterpret_cast<const BlockQ5_0*>(w);
    const BlockQ8_0* a = static_cast<const BlockQ8_0*>(act);
    float sum = 0.0f;
    for (int64_t i = 0; i < n / QK; i++) {
        uint32_t qh;
        std::memcpy(&qh, b[i].qh, 4);
        int sumi = 0;
        for (int j = 0; j < 16; j++) {
            const int lo = int((b[i].qs[j] & 0xF) | (((qh >> j) & 1) << 4)) - 16;
            const int hi = int((b[i].qs[j] >> 4) | (((qh >> (j + 16)) & 1) << 4)) - 16;
            sumi += lo * a[i].qs[j] + hi * a[i].qs[j + 16];
        }
        sum += fp16_to_fp32(b[i].d) * fp16_to_fp32(a[i].d) * float(sumi);
    }
    return sum;
}

float dot_q5_1_q8_1_scalar(int64_t n, const uint8_t* w, const void* act) {
    const BlockQ5_1* b = reinterpret_cast<const BlockQ5_1*>(w);
    const BlockQ8_1* a = static_cast<const BlockQ8_1*>(act);
    float sum = 0.0f;
    for (int64_t i = 0; i < n / QK; i++) {
        uint32_t qh;
        std::memcpy(&qh, b[i].qh, 4);
        int sumi = 0;
        for (int j = 0; j < 16; j++) {
            const int lo = (b[i].qs[j] & 0xF) | (((qh >> j) & 1) << 4);
            const int hi = (b[i].qs[j] >> 4) | (((qh >> (j + 16)) & 1) << 4);
            sumi += lo * a[i].qs[j] + hi * a[i].qs[j + 16];
        }
        sum += fp16_to_fp32(b[i].d) * fp16_to_fp32(a[i].d) * float(sumi) + fp16_to_fp32(b[i].m) * fp16_to_fp32(a[i].s);
    }
    return sum;
}

float dot_q8_0_q8_0_scalar(int64_t n, const uint8_t* w, const void* act) {
    const BlockQ8_0* b = reinterpret_cast<const BlockQ8_0*>(w);
    const BlockQ8_0* a = static_cast<const BlockQ8_0*>(act);
    float sum = 0.0f;
    for (int64_t i = 0; i < n / QK; i++) {
        int sumi = 0;
        for (int j = 0; j < QK; j++) sumi += b[i].qs[j] * a[i].qs[j];
        sum += fp16_to_fp32(b[i].d) * fp16_to_fp32(a[i].d) * float(sumi);
    }
    return sum;
}

// ---- k-quants x Q8_K ----
// w = d * scale_s * q - dmin * min_s per sub-block s, so
// sum w x = d_x [ d sum_s scale_s (sum q q_x) - dmin sum_s min_s (sum q_x) ], the last sum from bsums.
float dot_q2_k_q8_k_scalar(int64_t n, const uint8_t* w, const void* act) {
    const BlockQ2_K* b = reinterpret_cast<const BlockQ2_K*>(w);
    const BlockQ8_K* a = static_cast<const BlockQ8_K*>(act);
    float sum = 0.0f;
    for (int64_t i = 0; i < n / QK_K; i++) {
        int sumi = 0, summ = 0;
        for (int sub = 0; sub < 16; sub++) {
            int isum = 0;
            for (int e = 16 * sub; e < 16 * sub + 16; e++) {
                const int half = e / 128, shift = 2 * ((e % 128) / 32), l = e % 32;
                isum += ((b[i].qs[32 * half + l] >> shift) & 3) * a[i].qs[e];
            }
            sumi += (b[i].scales[sub] & 0xF) * isum;
            summ += (b[i].scales[sub] >> 4) * a[i].bsums[sub];
        }
        sum += a[i].d * (fp16_to_fp32(b[i].d) * float(sumi) - fp16_to_fp32(b[i].dmin) * float(summ));
    }
    return sum;
}

float dot_q3_k_q8_k_scalar(int64_t n, const uint8_t* w, const void* act) {
    const BlockQ3_K* b = reinterpret_cast<const BlockQ3_K*>(w);
    const BlockQ8_K* a = static_cast<const BlockQ8_K*>(act);
    float sum = 0.0f;
    for (int64_t i = 0; i < n / QK_K; i++) {
        int8_t scales[16];
        q3k_scales(b[i].scales, scales);
        int sumi = 0;
        for (int sub = 0; sub < 16; sub++) {
            int isum = 0;
            for (int e = 16 * sub; e < 16 * sub + 16; e++) {
                const int half = e / 128, shift = 2 * ((e % 128) / 32), l = e % 32;
                const int low = (b[i].qs[32 * half + l] >> shift) & 3;
                const int high = (b[i].hmask[l] >> (e / 32)) & 1;
                isum += (low - (high ? 0 : 4)) * a[i].qs[e];
            }
            sumi += scales[sub] * isum;
        }
        sum += a[i].d * fp16_to_fp32(b[i].d) * float(sumi);
    }
    return sum;
}

// --8<-- [start:dot_q4_k_scalar]
float dot_q4_k_q8_k_scalar(int64_t n, const uint8_t* w, const void* act) {
    const BlockQ4_K* b = reinterpret_cast<const BlockQ4_K*>(w);
    const BlockQ8_K* a = static_cast<const BlockQ8_K*>(act);
    float sum = 0.0f;
    for (int64_t i = 0; i < n / QK_K; i++) {
        int sumi = 0, summ = 0;
        for (int sub = 0; sub < 8; sub++) {
            uint8_t sc, m;
            kquant_scale_min(sub, b[i].scales, &sc, &m);
            const uint8_t* q = b[i].qs + 32 * (sub / 2);
            const int8_t* x = a[i].qs + 32 * sub;
            int isum = 0;
            for (int l = 0; l < 32; l++) isum += (sub % 2 == 0 ? q[l] & 0xF : q[l] >> 4) * x[l];
            sumi += sc * isum;
            summ += m * (a[i].bsums[2 * sub] + a[i].bsums[2 * sub + 1]);
        }
        sum += a[i].d * (fp16_to_fp32(b[i].d) * float(sumi) - fp16_to_fp32(b[i].dmin) * float(summ));
    }
    return sum;
}
// --8<-- [end:dot_q4_k_scalar]

float dot_q5_k_q8_k_scalar(int64_t n, const uint8_t* w, const void* act) {
    const BlockQ5_K* b = reinterpret_cast<const BlockQ5_K*>(w);
    const BlockQ8_K* a = static_cast<const BlockQ8_K*>(act);
    float sum = 0.0f;
    for (int64_t i = 0; i < n / QK_K; i++) {
        int sumi = 0, summ = 0;
        for (int sub = 0; sub < 8; sub++) {
            uint8_t sc, m;
            kquant_scale_min(sub, b[i].scales, &sc, &m);
            const uint8_t* q = b[i].qs + 32 * (sub / 2);
            const int8_t* x = a[i].qs + 32 * sub;
            int isum = 0;
            for (int l = 0; l < 32; l++)
                isum += ((sub % 2 == 0 ? q[l] & 0xF : q[l] >> 4) | (((b[i].qh[l] >> sub) & 1) << 4)) * x[l];
            sumi += sc * isum;
            summ += m * (a[i].bsums[2 * sub] + a[i].bsums[2 * sub + 1]);
        }
        sum += a[i].d * (fp16_to_fp32(b[i].d) * float(sumi) - fp16_to_fp32(b[i].dmin) * float(summ));
    }
    return sum;
}

float dot_q6_k_q8_k_scalar(int64_t n, const uint8_t* w, const void* act) {
    const BlockQ6_K* b = reinterpret_cast<const BlockQ6_K*>(w);
    const BlockQ8_K* a = static_cast<const BlockQ8_K*>(act);
    float sum = 0.0f;
    for (int64_t i = 0; i < n / QK_K; i++) {
        int sumi = 0;
        for (int sub = 0; sub < 16; sub++) {
            int isum = 0;
            for (int e = 16 * sub; e < 16 * sub + 16; e++) {
                const int half = e / 128, k = (e % 128) / 32, l = e % 32;
                const uint8_t ql = b[i].ql[64 * half + l + 32 * (k % 2)];
                const int low = k < 2 ? ql & 0xF : ql >> 4;
                const int high = (b[i].qh[32 * half + l] >> (2 * k)) & 3;
                isum += ((low | (high << 4)) - 32) * a[i].qs[e];
            }
            sumi += b[i].scales[sub] * isum;
        }
        sum += a[i].d * fp16_to_fp32(b[i].d) * float(sumi);
    }
    return sum;
}

}  // namespace ll
