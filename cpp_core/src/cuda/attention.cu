// cuda/attention.cu -- causal grouped-query attention over the float16 KV cache kept in VRAM.
//
// q: [n_tok, n_head, head_dim] (RoPE applied) for positions pos0[0] .. pos0[0] + n_tok - 1;
// k_cache, v_cache: one layer's [n_head_kv][n_ctx][head_dim] float16; out: [n_tok, n_head * head_dim].
// Query head h reads KV head h / (n_head / n_head_kv). Token t sees positions 0 .. pos0[0] + t.
//   v0  one thread per (token, query head): the lesson's scores, softmax and weighted sum, one position at a time;
//       the scores go to a scratch row of n_ctx floats per (token, head).
//   v1  one block of 128 threads per (token, query head): the threads split the positions for the scores and
//       the softmax (maxima and sums met in shared memory), then split the head's channels for the weighted sum
//       (neighbouring threads read neighbouring values of each cached V row).
// Not yet run on a GPU (see common.cuh).
#pragma once
#include "cuda/common.cuh"

// --8<-- [start:attention_v0]
LL_HD void attention_v0_thread(const float* q, const u16* k_cache, const u16* v_cache, float* out, float* scores, int t,
                               int h, int pos, int n_head, int n_head_kv, int head_dim, int n_ctx) {
    const int g = h / (n_head / n_head_kv), n_kv = pos + t + 1;
    const float* qh = q + (i64(t) * n_head + h) * head_dim;
    const u16* k = k_cache + i64(g) * n_ctx * head_dim;
    const u16* v = v_cache + i64(g) * n_ctx * head_dim;
    const float scale = 1.0f / sqrt(float(head_dim));
    float mx = -3.0e38f;
    for (int j = 0; j < n_kv; j++) {  // scores = q . k_j / sqrt(head_dim)
        float s = 0.0f;
        for (int d = 0; d < head_dim; d++) s += qh[d] * h2f(k[i64(j) * head_dim + d]);
        scores[j] = s * scale;
        mx = scores[j] > mx ? scores[j] : mx;
    }
    float sum = 0.0f;
    for (int j = 0; j < n_kv; j++) scores[j] = exp(scores[j] - mx), sum += scores[j];  // softmax, max subtracted
    float* o = out + (i64(t) * n_head + h) * head_dim;
    for (int d = 0; d < head_dim; d++) {  // out = sum_j p_j v_j
        float acc = 0.0f;
        for (int j = 0; j < n_kv; j++) acc += scores[j] * h2f(v[i64(j) * head_dim + d]);
        o[d] = acc / sum;
    }
}
// --8<-- [end:attention_v0]

#if defined(LL_DEVICE)
// grid ceil(n_tok * n_head / 64), block 64. scratch: [n_tok * n_head][n_ctx] floats.
extern "C" __global__ void attention_v0(const float* __restrict__ q, const u16* __restrict__ k_cache, const u16* __restrict__ v_cache,
                                        float* __restrict__ out, float* __restrict__ scratch, int n_tok, int n_head, int n_head_kv,
                                        int head_dim, int n_ctx, const int* __restrict__ pos0) {
    const int o = blockIdx.x * blockDim.x + threadIdx.x;
    if (o >= n_tok * n_head) return;
    attention_v0_thread(q, k_cache, v_cache, out, scratch + i64(o) * n_ctx, o / n_head, o % n_head, pos0[0], n_head, n_head_kv,
                        head_dim, n_ctx);
}

__device__ float block_reduce(float v, bool is_max, float* shared) {  // blockDim.x == 128: 4 warps
    for (int o = 16; o > 0; o >>= 1) {
        const float w = __shfl_xor_sync(0xffffffffu, v, o);
        v = is_max ? fmaxf(v, w) : v + w;
    }
    __syncthreads();  // shared may still be read from the previous reduction
    if (threadIdx.x % 32 == 0) shared[threadIdx.x / 32] = v;
    __syncthreads();
    v = shared[0];
    for (int k = 1; k < 4; k++) v = is_max ? fmaxf(v, shared[k]) : v + shared[k];
    return v;
}

// grid n_tok * n_head, block 128, dynamic shared memory head_dim floats (the query). scratch as v0.
extern "C" __global__ void attention_v1(const float* __restrict__ q, const u16* __restrict__ k_cache, const u16* __restrict__ v_cache,
                                        float* __restrict__ out, float* __restrict__ scratch, int n_tok, int n_head, int n_head_kv,
                                        int head_dim, int n_ctx, const int* __restrict__ pos0) {
    extern __shared__ float qs[];
    __shared__ float red[4];
    const int th = blockIdx.x, t = th / n_head, h = th % n_head, g = h / (n_head / n_head_kv);
    const int n_kv = pos0[0] + t + 1;
    const u16* k = k_cache + i64(g) * n_ctx * head_dim;
    const u16* v = v_cache + i64(g) * n_ctx * head_dim;
    float* scores = scratch + i64(th) * n_ctx;
    for (int d = threadIdx.x; d < head_dim; d += blockDim.x) qs[d] = q[i64(th) * head_dim + d];
    __syncthreads();
    const float scale = 1.0f / sqrtf(float(head_dim));
    float mx = -3.0e38f;
    for (int j = threadIdx.x; j < n_kv; j += blockDim.x) {
        float s = 0.0f;
        const u16* kj = k + i64(j) * head_dim;
        for (int d = 0; d < head_dim; d++) s += qs[d] * h2f(kj[d]);
        scores[j] = s * scale;
        mx = fmaxf(mx, s * scale);
    }
    mx = block_reduce(mx, true, red);
    float sum = 0.0f;
    for (int j = threadIdx.x; j < n_kv; j += blockDim.x) {
        const float p = expf(scores[j] - mx);
        scores[j] = p;
        sum += p;
    }
    sum = block_reduce(sum, false, red);  // its __syncthreads also make every thread's scores visible
    for (int d = threadIdx.x; d < head_dim; d += blockDim.x) {
        float acc = 0.0f;
        for (int j = 0; j < n_kv; j++) acc += scores[j] * h2f(v[i64(j) * head_dim + d]);
        out[i64(th) * head_dim + d] = acc / sum;
    }
}
#endif
