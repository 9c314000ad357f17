// cuda/ops.cu -- the element-wise and per-row steps of the forward: embedding lookup, RMSNorm, RoPE, storing
// K and V into the float16 cache, SwiGLU, residual adds. Each kernel's per-thread body is an LL_HD function
// (run on the CPU by tests/test_cuda_host.py), the kernel a thin wrapper that says which thread does what.
//   v0 everywhere: one thread per output value (or per row for RMSNorm), the lesson's formula.
//   rmsnorm v1: one block of 256 threads per row, the sum of squares met through shuffles and shared memory.
//   rmsnorm v2: v1 fused with the residual add before it (x += y; out = rmsnorm(x) * w): one launch and one pass
//               over x instead of two. Every norm of the model follows an add but the first layer's.
// Positions are read from device memory (pos0[0]), not passed by value, so that one captured CUDA graph of the
// decode step serves every position: the host writes the new position, then replays the graph.
// Not yet run on a GPU (see common.cuh).
#pragma once
#include "cuda/quant.cuh"

// ---- embedding: row tokens[t] of the (quantized) table, element i (lessons/l08: token_embd[tokens]) ----
LL_HD float embed_v0_thread(int type, const u8* table, i64 row_bytes, const int* tokens, int t, int i) {
    return dequant_one(type, table + i64(tokens[t]) * row_bytes, i);
}

// ---- RMSNorm (lessons/l04_rmsnorm.py): sum of squares in double, as the lesson and ggml ----
LL_HD void rmsnorm_v0_row(const float* x, const float* w, float* out, int dim, float eps) {
    double ss = 0.0;
    for (int i = 0; i < dim; i++) ss += double(x[i]) * double(x[i]);
    const float scale = float(1.0 / sqrt(ss / dim + double(eps)));
    for (int i = 0; i < dim; i++) out[i] = (x[i] * scale) * w[i];
}

// v2's row, as one thread would do it (the host tests run this; the kernel splits the same loops over a block)
LL_HD void add_rmsnorm_row(float* x, const float* y, const float* w, float* out, int dim, float eps) {
    for (int i = 0; i < dim; i++) x[i] += y[i];
    rmsnorm_v0_row(x, w, out, dim, eps);
}

// ---- RoPE (lessons/l05_rope.py): pair i of head h of token t, rotated by (pos0 + t) * base^(-2i / n_rot) ----
// neox = 0: pairs (2i, 2i+1) (llama); neox = 1: pairs (i, i + n_rot/2) (GPT-NeoX, Qwen). Channels past n_rot stay.
// The angle in double, cos and sin rounded to float, the rotation in float: the CPU's rope_angles + apply_rope.
LL_HD void rope_v0_pair(float* x, int t, int h, int i, int n_head, int head_dim, int n_rot, float base, int neox, int pos) {
    const double theta = pow(double(base), -2.0 * i / n_rot);
    const double angle = double(pos) * theta;
    const float c = float(cos(angle)), s = float(sin(angle));
    float* v = x + (i64(t) * n_head + h) * head_dim;
    const int i0 = neox ? i : 2 * i, i1 = neox ? i + n_rot / 2 : 2 * i + 1;
    const float a = v[i0], b = v[i1];
    v[i0] = a * c - b * s;
    v[i1] = a * s + b * c;
}

// ---- SwiGLU (lessons/l07_swiglu.py): silu(gate) * up ----
LL_HD float swiglu_v0_one(float g, float u) { return g / (1.0f + exp(-g)) * u; }

#if defined(LL_DEVICE)
// grid ceil(n_tok * n_embd / 256), block 256
extern "C" __global__ void embed_v0(int type, const u8* __restrict__ table, i64 row_bytes, const int* __restrict__ tokens,
                                    float* __restrict__ x, int n_tok, int n_embd) {
    const i64 o = i64(blockIdx.x) * blockDim.x + threadIdx.x;
    if (o < i64(n_tok) * n_embd) x[o] = embed_v0_thread(type, table, row_bytes, tokens, int(o / n_embd), int(o % n_embd));
}

// grid ceil(n_rows / 128), block 128: one thread per row
extern "C" __global__ void rmsnorm_v0(const float* __restrict__ x, const float* __restrict__ w, float* __restrict__ out,
                                      int n_rows, int dim, float eps) {
    const int r = blockIdx.x * blockDim.x + threadIdx.x;
    if (r < n_rows) rmsnorm_v0_row(x + i64(r) * dim, w, out + i64(r) * dim, dim, eps);
}

// v1's and v2's reduction: each thread's share ss of a row's sum of squares -> 1/sqrt(mean + eps), in double,
// for every thread of the block (up to 256 threads: one slot of part per warp), after one barrier.
__device__ inline float block_rms_scale(double ss, double* part, int dim, float eps) {
    for (int o = 16; o > 0; o >>= 1) ss += __shfl_xor_sync(0xffffffffu, ss, o);
    if (threadIdx.x % 32 == 0) part[threadIdx.x / 32] = ss;
    __syncthreads();
    double total = 0.0;
    for (int k = 0; k < int(blockDim.x / 32); k++) total += part[k];
    return float(1.0 / sqrt(total / dim + double(eps)));
}

// grid n_rows, block 256: one block per row
extern "C" __global__ void rmsnorm_v1(const float* __restrict__ x, const float* __restrict__ w, float* __restrict__ out,
                                      int n_rows, int dim, float eps) {
    __shared__ double part[8];
    const float* xr = x + i64(blockIdx.x) * dim;
    double ss = 0.0;
    for (int i = threadIdx.x; i < dim; i += blockDim.x) ss += double(xr[i]) * double(xr[i]);
    const float scale = block_rms_scale(ss, part, dim, eps);
    for (int i = threadIdx.x; i < dim; i += blockDim.x) out[i64(blockIdx.x) * dim + i] = (xr[i] * scale) * w[i];
}

// grid n_rows, block 256: x += y, then out = rmsnorm(x) * w, one block per row. Each thread reads back only the
// x values it wrote itself, so the one barrier needed is the reduction's.
extern "C" __global__ void add_rmsnorm_v2(float* __restrict__ x, const float* __restrict__ y, const float* __restrict__ w,
                                          float* __restrict__ out, int n_rows, int dim, float eps) {
    __shared__ double part[8];
    float* xr = x + i64(blockIdx.x) * dim;
    const float* yr = y + i64(blockIdx.x) * dim;
    double ss = 0.0;
    for (int i = threadIdx.x; i < dim; i += blockDim.x) {
        const float v = xr[i] + yr[i];
        xr[i] = v;
        ss += double(v) * double(v);
    }
    const float scale = block_rms_scale(ss, part, dim, eps);
    for (int i = threadIdx.x; i < dim; i += blockDim.x) out[i64(blockIdx.x) * dim + i] = (xr[i] * scale) * w[i];
}

// grid ceil(n_tok * n_head * n_rot/2 / 128), block 128: one thread per rotated pair
extern "C" __global__ void rope_v0(float* __restrict__ x, int n_tok, int n_head, int head_dim, int n_rot, float base, int neox,
                                   const int* __restrict__ pos0) {
    const int half = n_rot / 2;
    const i64 o = i64(blockIdx.x) * blockDim.x + threadIdx.x;
    if (o >= i64(n_tok) * n_head * half) return;
    const int i = int(o % half), h = int((o / half) % n_head), t = int(o / (i64(half) * n_head));
    rope_v0_pair(x, t, h, i, n_head, head_dim, n_rot, base, neox, pos0[0] + t);
}

// K or V of n_tok tokens ([n_tok, n_head_kv * head_dim] float) into one layer's float16 cache
// [n_head_kv][n_ctx][head_dim] at positions pos0[0]..: grid ceil(n_tok * n_head_kv * head_dim / 256), block 256
extern "C" __global__ void store_kv_v0(const float* __restrict__ src, u16* __restrict__ cache, int n_tok, int n_head_kv,
                                       int head_dim, int n_ctx, const int* __restrict__ pos0) {
    const i64 kv_dim = i64(n_head_kv) * head_dim, o = i64(blockIdx.x) * blockDim.x + threadIdx.x;
    if (o >= n_tok * kv_dim) return;
    const int t = int(o / kv_dim), g = int((o % kv_dim) / head_dim), d = int(o % head_dim);
    cache[(i64(g) * n_ctx + pos0[0] + t) * head_dim + d] = f2h(src[o]);
}

// out = silu(gate) * up, element-wise (out may be gate): grid ceil(n / 256), block 256
extern "C" __global__ void swiglu_v0(const float* gate, const float* __restrict__ up, float* out, i64 n) {
    const i64 o = i64(blockIdx.x) * blockDim.x + threadIdx.x;
    if (o < n) out[o] = swiglu_v0_one(gate[o], up[o]);
}

// the residual stream: x += y: grid ceil(n / 256), block 256
extern "C" __global__ void add_v0(float* __restrict__ x, const float* __restrict__ y, i64 n) {
    const i64 o = i64(blockIdx.x) * blockDim.x + threadIdx.x;
    if (o < n) x[o] += y[o];
}
#endif
