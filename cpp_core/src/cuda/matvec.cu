// cuda/matvec.cu -- decoding's products: y[r] = sum_i W[r, i] x[i], W read as raw ggml blocks in VRAM.
//
// The ladder (each rung one idea; the per-thread bodies are LL_HD so the host tests run them on the CPU):
//   v0  one thread per output row, the lesson's loop over dequantized weights (lessons/l12 + a dot product).
//       Neighbouring threads read rows thousands of bytes apart: every load is its own memory transaction.
//   v1  one warp per row: lane l takes the row's 32-weight units l, l+32, ..., decodes each unit's scales once
//       (decode_unit), and the 32 partial sums meet through shuffles. Neighbouring lanes now read neighbouring
//       blocks, so a warp's loads coalesce into few transactions.
//   v2  as v1, with the activations rounded to int8 per 32 first (quantize_q8, once per product) and the
//       products done four at a time with dp4a; Q4_0, Q8_0 and Q4_K units are loaded as 32-bit words and
//       unpacked with masks instead of byte by byte. (llama.cpp's method, and the CPU's int8 versions'.)
//       F32 and F16 weights have no integers to multiply: v2 runs v1's code for them.
// Decode is memory-bound: a row is read once, so the aim is bytes per second, not flops.
// Not yet run on a GPU (see common.cuh); expected to be checked by tests/test_cuda_kernels.py on a device.
#pragma once
#include "cuda/quant.cuh"

// ---- v0 ----
// --8<-- [start:matvec_v0_row]
LL_HD float matvec_v0_row(int type, const u8* row, const float* x, int n_cols) {
    float s = 0.0f;
    for (i64 i = 0; i < n_cols; i++) s += dequant_one(type, row, i) * x[i];  // the lesson's x @ W[r]
    return s;
}
// --8<-- [end:matvec_v0_row]

// ---- v1: what lane `lane` of a row's warp adds up ----
// --8<-- [start:matvec_v1_lane]
LL_HD float matvec_v1_lane(int type, const u8* row, const float* x, int n_cols, int lane) {
    float s = 0.0f;
    if (type == T_F32 || type == T_F16) {  // float rows: lane l takes elements l, l+32, ... (coalesced)
        for (i64 i = lane; i < n_cols; i += 32) s += dequant_one(type, row, i) * x[i];
        return s;
    }
    Unit32 U;
    for (i64 u = lane; u < n_cols / 32; u += 32) {
        decode_unit(type, row, u, &U);
        s += unit_dot_f32(U, x + 32 * u);
    }
    return s;
}
// --8<-- [end:matvec_v1_lane]

// ---- v2: int8 activations and dp4a ----
// A unit's weights as 8 packed int32 of 4 int8 each, and its two affine maps. Q4_0, Q8_0 and Q4_K are read as
// words (their integers are contiguous: nibbles of 16 bytes, or 32 bytes); the other types go through decode_unit.
LL_HD void decode_unit_packed(int type, const u8* row, i64 u, int* q4, float* a, float* b) {
    if (type == T_Q4_0) {  // d, qs[16] at byte 2 (2-byte aligned only: words from two 16-bit loads)
        const u8* blk = row + u * 18;
        const float d = h2f(load_u16(blk));
        for (int k = 0; k < 4; k++) {
            const u32 w = u32(load_u16(blk + 2 + 4 * k)) | (u32(load_u16(blk + 4 + 4 * k)) << 16);
            q4[k] = int(w & 0x0F0F0F0Fu);             // elements 4k..4k+3: low nibbles
            q4[k + 4] = int((w >> 4) & 0x0F0F0F0Fu);  // elements 16+4k..: high nibbles
        }
        a[0] = a[1] = d, b[0] = b[1] = -8.0f * d;  // d (q - 8) = d q - 8 d
        return;
    }
    if (type == T_Q8_0) {
        const u8* blk = row + u * 34;
        a[0] = a[1] = h2f(load_u16(blk)), b[0] = b[1] = 0.0f;
        for (int k = 0; k < 8; k++) q4[k] = int(u32(load_u16(blk + 2 + 4 * k)) | (u32(load_u16(blk + 4 + 4 * k)) << 16));
        return;
    }
    if (type == T_Q4_K) {  // sub-block s of a super-block: bytes 32 (s / 2) .. +31 of qs, nibble s % 2 (4-byte aligned)
        const u8* blk = row + (u / 8) * 144;
        const int sub = int(u % 8);
        int sc, m;
        scale_min_k4(sub, blk + 4, &sc, &m);
        a[0] = a[1] = h2f(load_u16(blk)) * float(sc), b[0] = b[1] = -h2f(load_u16(blk + 2)) * float(m);
        const u32* qs = reinterpret_cast<const u32*>(blk + 16 + 32 * (sub / 2));
        for (int k = 0; k < 8; k++) q4[k] = int((qs[k] >> (4 * (sub % 2))) & 0x0F0F0F0Fu);
        return;
    }
    Unit32 U;
    decode_unit(type, row, u, &U);
    for (int k = 0; k < 8; k++) q4[k] = pack4(U.q + 4 * k);
    a[0] = U.a[0], a[1] = U.a[1], b[0] = U.b[0], b[1] = U.b[1];
}

// xq: the activations as int8, 32 per unit; xd: one scale per unit; xs: the two half-sums of xq per unit.
LL_HD float matvec_v2_lane(int type, const u8* row, const i8* xq, const float* xd, const int* xs, int n_cols, int lane) {
    float s = 0.0f;
    int q4[8];
    float a[2], b[2];
    for (i64 u = lane; u < n_cols / 32; u += 32) {
        decode_unit_packed(type, row, u, q4, a, b);
        const int* x4 = reinterpret_cast<const int*>(xq + 32 * u);
        float r = 0.0f;
        for (int h = 0; h < 2; h++) {
            int acc = 0;
            for (int k = 4 * h; k < 4 * h + 4; k++) acc = dp4a(q4[k], x4[k], acc);
            r += a[h] * float(acc) + b[h] * float(xs[2 * u + h]);
        }
        s += xd[u] * r;
    }
    return s;
}

#if defined(LL_DEVICE)
__device__ __forceinline__ float warp_sum(float v) {
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    return v;
}

extern "C" __global__ void matvec_v0(int type, const u8* __restrict__ w, i64 row_bytes, const float* __restrict__ x,
                                     float* __restrict__ y, int n_rows, int n_cols) {
    const int r = blockIdx.x * blockDim.x + threadIdx.x;
    if (r < n_rows) y[r] = matvec_v0_row(type, w + r * row_bytes, x, n_cols);
}

// --8<-- [start:matvec_v1]
// blockDim (32, 4): four rows per block, one per warp.
extern "C" __global__ void matvec_v1(int type, const u8* __restrict__ w, i64 row_bytes, const float* __restrict__ x,
                                     float* __restrict__ y, int n_rows, int n_cols) {
    const int r = blockIdx.x * blockDim.y + threadIdx.y;
    if (r >= n_rows) return;  // the whole warp leaves together
    const float s = warp_sum(matvec_v1_lane(type, w + r * row_bytes, x, n_cols, threadIdx.x));
    if (threadIdx.x == 0) y[r] = s;
}
// --8<-- [end:matvec_v1]

// The activations to int8, one thread per unit of 32 (n_cols / 32 threads).
extern "C" __global__ void quantize_q8(const float* __restrict__ x, i8* __restrict__ xq, float* __restrict__ xd,
                                       int* __restrict__ xs, int n_units) {
    const int u = blockIdx.x * blockDim.x + threadIdx.x;
    if (u < n_units) quantize_unit_q8(x + 32 * u, xq + 32 * u, xd + u, xs + 2 * u);
}

// blockDim (32, 4). Float weights (no integers to multiply) take v1's path on x.
extern "C" __global__ void matvec_v2(int type, const u8* __restrict__ w, i64 row_bytes, const float* __restrict__ x,
                                     const i8* __restrict__ xq, const float* __restrict__ xd, const int* __restrict__ xs,
                                     float* __restrict__ y, int n_rows, int n_cols) {
    const int r = blockIdx.x * blockDim.y + threadIdx.y;
    if (r >= n_rows) return;
    const u8* row = w + r * row_bytes;
    const float part = type == T_F32 || type == T_F16 ? matvec_v1_lane(type, row, x, n_cols, threadIdx.x)
                                                      : matvec_v2_lane(type, row, xq, xd, xs, n_cols, threadIdx.x);
    const float s = warp_sum(part);
    if (threadIdx.x == 0) y[r] = s;
}
#endif
