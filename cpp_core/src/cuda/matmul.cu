// cuda/matmul.cu -- prefill's products: Y[t, r] = sum_i W[r, i] X[t, i] for a prompt's n_tok tokens at once.
//
//   v0  one thread per output (t, r): matvec v0's loop (the lesson's X @ W^T, element by element).
//   v1  one warp per row and up to 8 tokens: each unit of 32 weights is decoded once (decode_unit) and used
//       for all 8 tokens, so the weights are read n_tok / 8 times instead of n_tok times.
// Shared-memory tiles (the next rung: a block decodes a tile of weights into shared memory once for 64+ tokens,
// then int8 mma) are not written yet: see docs/24-gpu.md. Not yet run on a GPU.
#pragma once
#include "cuda/matvec.cu"

#define MATMUL_V1_TOKENS 8

// What lane `lane` adds up for tokens t0..t0+nt-1 (nt <= 8) of row `row`: acc[j] for token t0 + j.
LL_HD void matmul_v1_lane(int type, const u8* row, const float* x, int n_cols, int t0, int nt, int lane, float* acc) {
    for (int j = 0; j < MATMUL_V1_TOKENS; j++) acc[j] = 0.0f;
    if (type == T_F32 || type == T_F16) {
        for (i64 i = lane; i < n_cols; i += 32) {
            const float wv = dequant_one(type, row, i);
            for (int j = 0; j < nt; j++) acc[j] += wv * x[i64(t0 + j) * n_cols + i];
        }
        return;
    }
    Unit32 U;
    for (i64 u = lane; u < n_cols / 32; u += 32) {
        decode_unit(type, row, u, &U);  // once for up to 8 tokens
        for (int j = 0; j < nt; j++) acc[j] += unit_dot_f32(U, x + i64(t0 + j) * n_cols + 32 * u);
    }
}

#if defined(LL_DEVICE)
// grid (ceil(n_rows * n_tok / 128)), block 128: thread -> (t, r), r fastest.
extern "C" __global__ void matmul_v0(int type, const u8* __restrict__ w, i64 row_bytes, const float* __restrict__ x,
                                     float* __restrict__ y, int n_rows, int n_cols, int n_tok) {
    const i64 o = i64(blockIdx.x) * blockDim.x + threadIdx.x;
    if (o >= i64(n_rows) * n_tok) return;
    const int t = int(o / n_rows), r = int(o % n_rows);
    y[o] = matvec_v0_row(type, w + r * row_bytes, x + i64(t) * n_cols, n_cols);
}

// grid (ceil(n_rows / 4), ceil(n_tok / 8)), block (32, 4): a warp per row, 8 tokens per grid row.
extern "C" __global__ void matmul_v1(int type, const u8* __restrict__ w, i64 row_bytes, const float* __restrict__ x,
                                     float* __restrict__ y, int n_rows, int n_cols, int n_tok) {
    const int r = blockIdx.x * blockDim.y + threadIdx.y;
    const int t0 = blockIdx.y * MATMUL_V1_TOKENS;
    if (r >= n_rows) return;
    const int nt = min(MATMUL_V1_TOKENS, n_tok - t0);
    float acc[MATMUL_V1_TOKENS];
    matmul_v1_lane(type, w + r * row_bytes, x, n_cols, t0, nt, threadIdx.x, acc);
    for (int j = 0; j < nt; j++) {
        const float s = warp_sum(acc[j]);
        if (threadIdx.x == 0) y[i64(t0 + j) * n_rows + r] = s;
    }
}
#endif
