// matmul/dequantize.cpp -- one row of raw ggml blocks -> floats, every type, plain scalar code.
// This is the v0 matmul's first half (a port of lessons/l12_quants.py and l13_kquants*.py), and the
// layout reference that the int8 dot products in quant_dot_*.cpp must agree with.
#include "matmul/blocks.h"
#include "matmul/kquant_scales.h"

namespace ll {

void dequant_row_f32(const uint8_t* w, float* out, int64_t n) { std::memcpy(out, w, size_t(n) * 4); }

void dequant_row_f16(const uint8_t* w, float* out, int64_t n) {
    const uint16_t* h = reinterpret_cast<const uint16_t*>(w);
    for (int64_t i = 0; i < n; i++) out[i] = fp16_to_fp32(h[i]);
}

void dequant_row_bf16(const uint8_t* w, float* out, int64_t n) {
    const uint16_t* h = reinterpret_cast<const uint16_t*>(w);
    for (int64_t i = 0; i < n; i++) out[i] = bf16_to_fp32(h[i]);
}

// ---- legacy quants: blocks of 32; element j in the low nibble of qs[j], element j+16 in the high ----
// --8<-- [start:dequant_q4_1]
void dequant_row_q4_1(const uint8_t* w, float* out, int64_t n) {
    const BlockQ4_1* b = reinterpret_cast<const BlockQ4_1*>(w);
    for (int64_t i = 0; i < n / QK; i++, out += QK) {
        const float d = fp16_to_fp32(b[i].d), m = fp16_to_fp32(b[i].m);
        for (int j = 0; j < 16; j++) {
            out[j] = d * (b[i].qs[j] & 0xF) + m;
            out[j + 16] = d * (b[i].qs[j] >> 4) + m;
        }
    }
}
// --8<-- [end:dequant_q4_1]

void dequant_row_q4_0(const uint8_t* w, float* out, int64_t n) {
    const BlockQ4_0* b = reinterpret_cast<const BlockQ4_0*>(w);
    for (int64_t i = 0; i < n / QK; i++, out += QK) {
        const float d = fp16_to_fp32(b[i].d);
        for (int j = 0; j < 16; j++) {
            out[j] = d * ((b[i].qs[j] & 0xF) - 8);
            out[j + 16] = d * ((b[i].qs[j] >> 4) - 8);
        }
    }
}

// Q5: the 5th bit of element j is bit j of the 32-bit qh.
void dequant_row_q5_0(const uint8_t* w, float* out, int64_t n) {
    const BlockQ5_0* b = reinterpret_cast<const BlockQ5_0*>(w);
    for (int64_t i = 0; i < n / QK; i++, out += QK) {
        const float d = fp16_to_fp32(b[i].d);
        uint32_t qh;
        std::memcpy(&qh, b[i].qh, 4);
        for (int j = 0; j < 16; j++) {
            out[j] = d * (int((b[i].qs[j] & 0xF) | (((qh >> j) & 1) << 4)) - 16);
            out[j + 16] = d * (int((b[i].qs[j] >> 4) | (((qh >> (j + 16)) & 1) << 4)) - 16);
        }
    }
}

void dequant_row_q5_1(const uint8_t* w, float* out, int64_t n) {
    const BlockQ5_1* b = reinterpret_cast<const BlockQ5_1*>(w);
    for (int64_t i = 0; i < n / QK; i++, out += QK) {
        const float d = fp16_to_fp32(b[i].d), m = fp16_to_fp32(b[i].m);
        uint32_t qh;
        std::memcpy(&qh, b[i].qh, 4);
        for (int j = 0; j < 16; j++) {
            out[j] = d * ((b[i].qs[j] & 0xF) | (((qh >> j) & 1) << 4)) + m;
            out[j + 16] = d * ((b[i].qs[j] >> 4) | (((qh >> (j + 16)) & 1) << 4)) + m;
        }
    }
}

void dequant_row_q8_0(const uint8_t* w, float* out, int64_t n) {
    const BlockQ8_0* b = reinterpret_cast<const BlockQ8_0*>(w);
    for (int64_t i = 0; i < n / QK; i++, out += QK) {
        const float d = fp16_to_fp32(b[i].d);
        for (int j = 0; j < QK; j++) out[j] = d * b[i].qs[j];
    }
}

// ---- k-quants: super-blocks of 256 ----
// Q2_K: 16 sub-blocks of 16; scales[k] = 4-bit scale | 4-bit min << 4; 2-bit q's, four per byte:
// the 128 elements of each half take bits (0-1, 2-3, 4-5, 6-7) of the same 32 bytes in turn.
void dequant_row_q2_k(const uint8_t* w, float* out, int64_t n) {
    const BlockQ2_K* b = reinterpret_cast<const BlockQ2_K*>(w);
    for (int64_t i = 0; i < n / QK_K; i++) {
        const float d = fp16_to_fp32(b[i].d), dmin = fp16_to_fp32(b[i].dmin);
        for (int e = 0; e < QK_K; e++) {
            const int half = e / 128, shift = 2 * ((e % 128) / 32), l = e % 32, sub = e / 16;
            const int q = (b[i].qs[32 * half + l] >> shift) & 3;
            *out++ = d * (b[i].scales[sub] & 0xF) * q - dmin * (b[i].scales[sub] >> 4);
        }
    }
}

// Q3_K: like Q2_K's low 2 bits, plus a high bit in hmask (bit (e/32) of hmask[e%32]); q - 4 if it is 0.
void dequant_row_q3_k(const uint8_t* w, float* out, int64_t n) {
    const BlockQ3_K* b = reinterpret_cast<const BlockQ3_K*>(w);
    for (int64_t i = 0; i < n / QK_K; i++) {
        const float d = fp16_to_fp32(b[i].d);
        int8_t scales[16];
        q3k_scales(b[i].scales, scales);
        for (int e = 0; e < QK_K; e++) {
            const int half = e / 128, shift = 2 * ((e % 128) / 32), l = e % 32;
            const int low = (b[i].qs[32 * half + l] >> shift) & 3;
            const int high = (b[i].hmask[l] >> (e / 32)) & 1;
            *out++ = d * scales[e / 16] * (low - (high ? 0 : 4));
        }
    }
}

// Q4_K: 8 sub-blocks of 32 with 6-bit scale and min; each 64 elements share 32 bytes (low then high nibbles).
void dequant_row_q4_k(const uint8_t* w, float* out, int64_t n) {
    const BlockQ4_K* b = reinterpret_cast<const BlockQ4_K*>(w);
    for (int64_t i = 0; i < n / QK_K; i++) {
        const float d = fp16_to_fp32(b[i].d), dmin = fp16_to_fp32(b[i].dmin);
        for (int sub = 0; sub < 8; sub++) {
            uint8_t sc, m;
            kquant_scale_min(sub, b[i].scales, &sc, &m);
            const uint8_t* q = b[i].qs + 32 * (sub / 2);
            for (int l = 0; l < 32; l++) {
                const int v = sub % 2 == 0 ? q[l] & 0xF : q[l] >> 4;
                *out++ = d * sc * v - dmin * m;
            }
        }
    }
}

// Q5_K: Q4_K plus a 5th bit: bit `sub` of qh[l].
void dequant_row_q5_k(const uint8_t* w, float* out, int64_t n) {
    const BlockQ5_K* b = reinterpret_cast<const BlockQ5_K*>(w);
    for (int64_t i = 0; i < n / QK_K; i++) {
        const float d = fp16_to_fp32(b[i].d), dmin = fp16_to_fp32(b[i].dmin);
        for (int sub = 0; sub < 8; sub++) {
            uint8_t sc, m;
            kquant_scale_min(sub, b[i].scales, &sc, &m);
            const uint8_t* q = b[i].qs + 32 * (sub / 2);
            for (int l = 0; l < 32; l++) {
                const int v = (sub % 2 == 0 ? q[l] & 0xF : q[l] >> 4) | (((b[i].qh[l] >> sub) & 1) << 4);
                *out++ = d * sc * v - dmin * m;
            }
        }
    }
}

// Q6_K: 16 sub-blocks of 16 with int8 scales; 6-bit q = 4 low bits (ql) | 2 high bits (qh), minus 32.
// Each half of 128: element l + 32k takes ql[l + 32(k%2)] (low nibble for k < 2, else high) and bits 2k..2k+1 of qh[l].
void dequant_row_q6_k(const uint8_t* w, float* out, int64_t n) {
    const BlockQ6_K* b = reinterpret_cast<const BlockQ6_K*>(w);
    for (int64_t i = 0; i < n / QK_K; i++) {
        const float d = fp16_to_fp32(b[i].d);
        for (int e = 0; e < QK_K; e++) {
            const int half = e / 128, k = (e % 128) / 32, l = e % 32;
            const uint8_t ql = b[i].ql[64 * half + l + 32 * (k % 2)];
            const int low = k < 2 ? ql & 0xF : ql >> 4;
            const int high = (b[i].qh[32 * half + l] >> (2 * k)) & 3;
            *out++ = d * b[i].scales[e / 16] * ((low | (high << 4)) - 32);
        }
    }
}

}  // namespace ll
