// cuda/quant.cuh -- reading ggml blocks in place, for every type the quantization lessons teach.
//
// One source for the device kernels and for the host tests (see common.cuh): every function here is
// LL_HD, so tests/test_cuda_host.py runs exactly this code on the CPU against lessons/l12b and l13.
//
// Two ways in, one per rung of the ladder:
//   dequant_one(type, row, i)  the lesson's dequantize, one weight at a time (v0: the line-by-line port)
//   decode_unit(type, row, u)  32 consecutive weights as small integers q and an affine map per half:
//                              w[k] = a[h] * q[k] + b[h] for k in half h = k / 16  (v1, v2)
// Every type fits the second form: the legacy types have one scale (and min) per block of 32; Q4_K/Q5_K one
// (scale, min) per sub-block of 32; Q2_K, Q3_K and Q6_K one scale per 16 weights, hence the two halves.
// The integers stay small (Q8_0: -128..127 at most), so v2 can multiply them with int8 activations (dp4a).
#pragma once
#include "cuda/common.cuh"

LL_HD int block_elems(int type) {
    return type == T_F32 || type == T_F16 ? 1 : type >= T_Q2_K ? 256 : 32;
}
LL_HD int block_bytes(int type) {
    switch (type) {
        case T_F32: return 4;
        case T_F16: return 2;
        case T_Q4_0: return 18;
        case T_Q4_1: return 20;
        case T_Q5_0: return 22;
        case T_Q5_1: return 24;
        case T_Q8_0: return 34;
        case T_Q2_K: return 84;
        case T_Q3_K: return 110;
        case T_Q4_K: return 144;
        case T_Q5_K: return 176;
        case T_Q6_K: return 210;
        default: return 0;
    }
}

// ---- k-quant sub-block scales (lessons/l13_kquants.py: unpack_scale_min_k4, unpack_scales_q3) ----
// Q4_K/Q5_K: sub-block j (of 8) has a 6-bit scale and a 6-bit min packed in 12 bytes.
LL_HD void scale_min_k4(int j, const u8* s, int* sc, int* m) {
    if (j < 4) {
        *sc = s[j] & 63;
        *m = s[j + 4] & 63;
    } else {
        *sc = (s[j + 4] & 15) | ((s[j - 4] >> 6) << 4);
        *m = (s[j + 4] >> 4) | ((s[j] >> 6) << 4);
    }
}
// Q3_K: sub-block j (of 16) has a 6-bit scale stored +32: low 4 bits in bytes 0-7, high 2 bits in bytes 8-11.
LL_HD int scale_q3(int j, const u8* s) {
    const int low = j < 8 ? s[j] & 15 : s[j - 8] >> 4;
    const int high = (s[8 + (j % 4)] >> (2 * (j / 4))) & 3;
    return (low | (high << 4)) - 32;
}
// 2-bit planes (Q2_K's qs, Q3_K's qs, Q6_K's qh): element e of 256 sits in byte 32 (e / 128) + e % 32, bits 2 ((e / 32) % 4).
LL_HD int two_bits(const u8* plane, int e) { return (plane[32 * (e / 128) + e % 32] >> (2 * ((e / 32) % 4))) & 3; }
// 4-bit planes (Q4_K's and Q5_K's qs): element e sits in byte 32 (e / 64) + e % 32, low nibble for the first 32 of each 64.
LL_HD int four_bits(const u8* plane, int e) { return (plane[32 * (e / 64) + e % 32] >> (4 * ((e / 32) % 2))) & 15; }
// 1-bit planes (Q3_K's hmask, Q5_K's qh): element e is bit e / 32 of byte e % 32.
LL_HD int one_bit(const u8* plane, int e) { return (plane[e % 32] >> (e / 32)) & 1; }
// Legacy blocks: element j < 16 is the low nibble of qs[j], j >= 16 the high nibble of qs[j - 16];
// Q5's fifth bit of element j is bit j of the 32-bit qh.
LL_HD int nibble(const u8* qs, int j) { return j < 16 ? qs[j] & 15 : qs[j - 16] >> 4; }

// ---- v0: one weight, as the lesson computes it ----
// --8<-- [start:dequant_one]
LL_HD float dequant_one(int type, const u8* row, i64 i) {
    if (type == T_F32) return reinterpret_cast<const float*>(row)[i];
    if (type == T_F16) return h2f(reinterpret_cast<const u16*>(row)[i]);
    if (type < T_Q2_K) {  // legacy: blocks of 32
        const u8* b = row + (i / 32) * block_bytes(type);
        const int j = int(i % 32);
        switch (type) {
            case T_Q4_0: return h2f(load_u16(b)) * float(nibble(b + 2, j) - 8);                      // d (q - 8)
            case T_Q4_1: return h2f(load_u16(b)) * float(nibble(b + 4, j)) + h2f(load_u16(b + 2));  // d q + m
            case T_Q5_0: return h2f(load_u16(b)) * float((nibble(b + 6, j) | int(((load_u32(b + 2) >> j) & 1) << 4)) - 16);
            case T_Q5_1: return h2f(load_u16(b)) * float(nibble(b + 8, j) | int(((load_u32(b + 4) >> j) & 1) << 4)) +
                                h2f(load_u16(b + 2));
            case T_Q8_0: return h2f(load_u16(b)) * float(i8(b[2 + j]));
        }
        return 0.0f;
    }
    const u8* b = row + (i / 256) * block_bytes(type);  // k-quants: super-blocks of 256
    const int e = int(i % 256);
    switch (type) {
        case T_Q2_K: {  // scales[16] qs[64] d dmin
            const int sc = b[e / 16];
            return h2f(load_u16(b + 80)) * float(sc & 15) * float(two_bits(b + 16, e)) - h2f(load_u16(b + 82)) * float(sc >> 4);
        }
        case T_Q3_K: {  // hmask[32] qs[64] scales[12] d; q = 2 low bits, minus 4 when the high bit is clear
            const int q = two_bits(b + 32, e) - (one_bit(b, e) ? 0 : 4);
            return h2f(load_u16(b + 108)) * float(scale_q3(e / 16, b + 96)) * float(q);
        }
        case T_Q4_K:    // d dmin scales[12] qs[128]
        case T_Q5_K: {  // d dmin scales[12] qh[32] qs[128]
            int sc, m;
            scale_min_k4(e / 32, b + 4, &sc, &m);
            const int q = type == T_Q4_K ? four_bits(b + 16, e) : four_bits(b + 48, e) | (one_bit(b + 16, e) << 4);
            return h2f(load_u16(b)) * float(sc) * float(q) - h2f(load_u16(b + 2)) * float(m);
        }
        case T_Q6_K: {  // ql[128] qh[64] scales[16] d; element 128h + 64s + 32a + l: low 4 bits in ql[64h + 32a + l] >> 4s
            const int low = (b[64 * (e / 128) + 32 * ((e / 32) % 2) + e % 32] >> (4 * ((e / 64) % 2))) & 15;
            const int q = (low | (two_bits(b + 128, e) << 4)) - 32;
            return h2f(load_u16(b + 208)) * float(i8(b[192 + e / 16])) * float(q);
        }
    }
    return 0.0f;
}
// --8<-- [end:dequant_one]

// ---- v1 and v2: 32 weights at a time as integers and two affine maps ----
struct Unit32 {
    i8 q[32];     // the stored integers, made signed where the type subtracts a constant (Q4_0: q - 8)
    float a[2];   // scale of each half (weights 0-15, 16-31)
    float b[2];   // offset of each half (the k-quants' -dmin * min, the Q4_1/Q5_1 min); 0 for symmetric types
};

// Unit u of a row (quantized types only; u counts 32 weights: block u for legacy types, sub-block u % 8 of
// super-block u / 8 for the k-quants).
// --8<-- [start:decode_unit]
LL_HD void decode_unit(int type, const u8* row, i64 u, Unit32* U) {
    if (type < T_Q2_K) {
        const u8* b = row + u * block_bytes(type);
        const float d = h2f(load_u16(b));
        const float m = type == T_Q4_1 || type == T_Q5_1 ? h2f(load_u16(b + 2)) : 0.0f;
        U->a[0] = U->a[1] = d;
        U->b[0] = U->b[1] = m;
        switch (type) {
            case T_Q4_0: for (int j = 0; j < 32; j++) U->q[j] = i8(nibble(b + 2, j) - 8); break;
            case T_Q4_1: for (int j = 0; j < 32; j++) U->q[j] = i8(nibble(b + 4, j)); break;
            case T_Q5_0: {
                const u32 qh = load_u32(b + 2);
                for (int j = 0; j < 32; j++) U->q[j] = i8((nibble(b + 6, j) | (((qh >> j) & 1) << 4)) - 16);
                break;
            }
            case T_Q5_1: {
                const u32 qh = load_u32(b + 4);
                for (int j = 0; j < 32; j++) U->q[j] = i8(nibble(b + 8, j) | (((qh >> j) & 1) << 4));
                break;
            }
            case T_Q8_0: for (int j = 0; j < 32; j++) U->q[j] = i8(b[2 + j]); break;
        }
        return;
    }
    const u8* b = row + (u / 8) * block_bytes(type);
    const int sub = int(u % 8), e0 = 32 * sub;  // this unit is weights e0..e0+31 of the super-block
    switch (type) {
        case T_Q2_K: {
            const float d = h2f(load_u16(b + 80)), dmin = h2f(load_u16(b + 82));
            for (int h = 0; h < 2; h++) {
                const int sc = b[2 * sub + h];
                U->a[h] = d * float(sc & 15);
                U->b[h] = -dmin * float(sc >> 4);
            }
            for (int k = 0; k < 32; k++) U->q[k] = i8(two_bits(b + 16, e0 + k));
            break;
        }
        case T_Q3_K: {
            const float d = h2f(load_u16(b + 108));
            for (int h = 0; h < 2; h++) U->a[h] = d * float(scale_q3(2 * sub + h, b + 96)), U->b[h] = 0.0f;
            for (int k = 0; k < 32; k++) U->q[k] = i8(two_bits(b + 32, e0 + k) - (one_bit(b, e0 + k) ? 0 : 4));
            break;
        }
        case T_Q4_K:
        case T_Q5_K: {
            int sc, m;
            scale_min_k4(sub, b + 4, &sc, &m);
            U->a[0] = U->a[1] = h2f(load_u16(b)) * float(sc);
            U->b[0] = U->b[1] = -h2f(load_u16(b + 2)) * float(m);
            if (type == T_Q4_K)
                for (int k = 0; k < 32; k++) U->q[k] = i8(four_bits(b + 16, e0 + k));
            else
                for (int k = 0; k < 32; k++) U->q[k] = i8(four_bits(b + 48, e0 + k) | (one_bit(b + 16, e0 + k) << 4));
            break;
        }
        case T_Q6_K: {
            const float d = h2f(load_u16(b + 208));
            for (int h = 0; h < 2; h++) U->a[h] = d * float(i8(b[192 + 2 * sub + h])), U->b[h] = 0.0f;
            for (int k = 0; k < 32; k++) {
                const int e = e0 + k;
                const int low = (b[64 * (e / 128) + 32 * ((e / 32) % 2) + e % 32] >> (4 * ((e / 64) % 2))) & 15;
                U->q[k] = i8((low | (two_bits(b + 128, e) << 4)) - 32);
            }
            break;
        }
    }
}
// --8<-- [end:decode_unit]

// One unit's dot product with 32 float activations x[0..31] (v1): per half, a * sum(q x) + b * sum(x).
LL_HD float unit_dot_f32(const Unit32& U, const float* x) {
    float r = 0.0f;
    for (int h = 0; h < 2; h++) {
        float qx = 0.0f, sx = 0.0f;
        for (int k = 16 * h; k < 16 * h + 16; k++) qx += float(U.q[k]) * x[k], sx += x[k];
        r += U.a[h] * qx + U.b[h] * sx;
    }
    return r;
}

// ---- int8 activations (v2): x rounded to int8 per 32, as llama.cpp's Q8_1 ----
// xq: 32 int8 per unit, xd: its scale (x ~ xd * xq), xs: the sum of xq over each half (for the b terms).
// dp4a: four int8 products summed into an int32 (one instruction from sm_61 on; spelled out on the host).
LL_HD int dp4a(int a, int b, int c) {
#if defined(__CUDA_ARCH__)
    return __dp4a(a, b, c);
#else
    for (int k = 0; k < 4; k++) c += int(i8(u32(a) >> (8 * k))) * int(i8(u32(b) >> (8 * k)));
    return c;
#endif
}
LL_HD int pack4(const i8* q) { return int(u32(u8(q[0])) | (u32(u8(q[1])) << 8) | (u32(u8(q[2])) << 16) | (u32(u8(q[3])) << 24)); }

// One unit's dot with int8 activations: xq4 = the unit's 32 activations as 8 packed int32.
LL_HD float unit_dot_q8(const Unit32& U, const int* xq4, float xd, const int* xs) {
    float r = 0.0f;
    for (int h = 0; h < 2; h++) {
        int acc = 0;
        for (int k = 4 * h; k < 4 * h + 4; k++) acc = dp4a(pack4(U.q + 4 * k), xq4[k], acc);
        r += U.a[h] * float(acc) + U.b[h] * float(xs[h]);
    }
    return xd * r;
}

// Round 32 floats to int8 with one scale (round half away from zero, like the lessons' quantize_q8_1).
LL_HD void quantize_unit_q8(const float* x, i8* q, float* d, int* s) {
    float amax = 0.0f;
    for (int k = 0; k < 32; k++) amax = amax > (x[k] < 0 ? -x[k] : x[k]) ? amax : (x[k] < 0 ? -x[k] : x[k]);
    const float scale = amax / 127.0f, inv = scale > 0.0f ? 1.0f / scale : 0.0f;
    s[0] = s[1] = 0;
    for (int k = 0; k < 32; k++) {
        const int r = int(roundf(x[k] * inv));  // C's roundf: halves away from zero
        q[k] = i8(r);
        s[k / 16] += r;
    }
    *d = scale;
}
