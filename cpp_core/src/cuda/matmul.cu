// cuda/matmul.cu -- prefill's products: Y[t, r] = sum_i W[r, i] X[t, i] for a prompt's n_tok tokens at once.
//
//   v0  one thread per output (t, r): matvec v0's loop (the lesson's X @ W^T, element by element).
//   v1  one warp per row and up to 8 tokens: each unit of 32 weights is decoded once (decode_unit) and used
//       for all 8 tokens, so the weights are read n_tok / 8 times instead of n_tok times.
//   v2  shared-memory tiles: a block of 256 threads computes 64 rows x 64 tokens. For each slice of 64 columns,
//       half the threads decode the tile's 64 x 64 weights into shared memory (one 32-weight unit each) while the
//       other half copy the 64 tokens' activations, then every thread does 4 x 4 outputs from shared memory:
//       each weight is decoded once per 64 tokens, and each shared value read feeds 4 multiply-adds.
// Tensor-core mma (the rung after) is not written yet: see docs/24-gpu.md. Not yet run on a GPU.
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

// ---- v2: the tile, and the two phases of each 64-column slice (a barrier between them) ----
#define MM2_ROWS 64
#define MM2_TOKS 64
#define MM2_K 64      // columns per slice: two units of 32
#define MM2_THREADS 256
struct MM2Tile {
    float w[MM2_ROWS][MM2_K + 1];  // +1: threads reading one column of 16 different rows hit 16 different banks
    float x[MM2_TOKS][MM2_K + 1];
};

// Phase 1, thread tid: threads 0-127 decode one (row, unit) of the slice starting at column k0; threads 128-255
// copy activations, neighbouring threads neighbouring columns. Out-of-range rows, tokens and columns become 0.
LL_HD void matmul_v2_load(int type, const u8* w, i64 row_bytes, const float* x, int n_rows, int n_cols, int n_tok, int r0,
                          int t0, int k0, int tid, MM2Tile* s) {
    if (tid < 128) {
        const int rr = tid >> 1, uu = tid & 1, r = r0 + rr;
        const i64 u = k0 / 32 + uu;
        float* dst = s->w[rr] + 32 * uu;
        if (r >= n_rows || u >= n_cols / 32) {
            for (int k = 0; k < 32; k++) dst[k] = 0.0f;
        } else if (type == T_F32 || type == T_F16) {
            for (int k = 0; k < 32; k++) dst[k] = dequant_one(type, w + r * row_bytes, 32 * u + k);
        } else {
            Unit32 U;
            decode_unit(type, w + r * row_bytes, u, &U);
            for (int k = 0; k < 32; k++) dst[k] = U.a[k / 16] * float(U.q[k]) + U.b[k / 16];
        }
        return;
    }
    for (int i = tid - 128; i < MM2_TOKS * MM2_K; i += 128) {
        const int tt = i / MM2_K, kk = i % MM2_K, t = t0 + tt, col = k0 + kk;
        s->x[tt][kk] = t < n_tok && col < n_cols ? x[i64(t) * n_cols + col] : 0.0f;
    }
}

// Phase 2, thread tid: rows ty + 16 i, tokens tx + 16 j (i, j < 4) of the tile, accumulated over the slice.
LL_HD void matmul_v2_compute(const MM2Tile* s, int tid, float acc[4][4]) {
    const int ty = tid / 16, tx = tid % 16;
    for (int k = 0; k < MM2_K; k++) {
        float wv[4], xv[4];
        for (int i = 0; i < 4; i++) wv[i] = s->w[ty + 16 * i][k];
        for (int j = 0; j < 4; j++) xv[j] = s->x[tx + 16 * j][k];
        for (int i = 0; i < 4; i++)
            for (int j = 0; j < 4; j++) acc[i][j] += wv[i] * xv[j];
    }
}

LL_HD void matmul_v2_store(const float acc[4][4], float* y, int n_rows, int n_tok, int r0, int t0, int tid) {
    const int ty = tid / 16, tx = tid % 16;
    for (int i = 0; i < 4; i++)
        for (int j = 0; j < 4; j++) {
            const int r = r0 + ty + 16 * i, t = t0 + tx + 16 * j;
            if (r < n_rows && t < n_tok) y[i64(t) * n_rows + r] = acc[i][j];
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

// grid (ceil(n_rows / 64), ceil(n_tok / 64)), block 256, 33 KB of static shared memory.
extern "C" __global__ void matmul_v2(int type, const u8* __restrict__ w, i64 row_bytes, const float* __restrict__ x,
                                     float* __restrict__ y, int n_rows, int n_cols, int n_tok) {
    __shared__ MM2Tile tile;
    const int r0 = blockIdx.x * MM2_ROWS, t0 = blockIdx.y * MM2_TOKS, tid = threadIdx.x;
    float acc[4][4];
    for (int i = 0; i < 4; i++)
        for (int j = 0; j < 4; j++) acc[i][j] = 0.0f;
    for (int k0 = 0; k0 < n_cols; k0 += MM2_K) {
        matmul_v2_load(type, w, row_bytes, x, n_rows, n_cols, n_tok, r0, t0, k0, tid, &tile);
        __syncthreads();
        matmul_v2_compute(&tile, tid, acc);
        __syncthreads();  // before the next slice overwrites the tile
    }
    matmul_v2_store(acc, y, n_rows, n_tok, r0, t0, tid);
}
#endif
