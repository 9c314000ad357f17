// quant_gemm_avx512.cpp -- quant_matmul v10's kernel: dequantize each weight row once, then a register-blocked GEMM.
//
// v6-v9 dequantize a weight block in registers for every tile of 8 tokens: a 256-token prompt unpacks
// every block 32 times, ~10 uops each time, for 16 FMAs of work. Here a panel of kGemmRows rows is
// dequantized ONCE per call, by the type's own dequantize_row (the lesson's floats, every type), into a
// small float buffer that stays in L1, and all tokens then stream past it.
//
// The micro-kernel keeps a tile of R rows x 16*NV tokens of y in registers (8 x 48 = 24 zmm accumulators),
// with the vector lanes along TOKENS: per column k it loads NV vectors of 16 tokens' x[., k], broadcasts
// each row's weight w[r, k] from memory, and does R*NV FMAs. No horizontal sums, and 11 loads per 24 FMAs.
// For that, x is packed once per call, token-major -> k-major: xp[tile][k][48] (zero-padded tokens).
// Each (row, token) is one float32 sum over k in order: no activation rounding at all.
#if defined(__x86_64__) || defined(__i386__)
#include <algorithm>
#include <cstring>
#include <vector>

#include "kernels.h"
#include "quant_blocks.h"
#include "quant_simd_x86.h"

namespace ll {

static constexpr int kGemmRows = 8;        // R: rows per micro-tile (one broadcast each per k)
static constexpr int kGemmVecs = 3;        // NV: zmm vectors of 16 tokens per micro-tile
static constexpr int kGemmTokens = 16 * kGemmVecs;  // 48 tokens per packed x tile

// ---- x, packed: [n_tok, K] row-major -> per tile of 48 tokens, [K][48], missing tokens zero ----
static void pack_x_tile(const float* x, int64_t n_tok, int64_t K, int64_t tile, float* xp) {
    const int64_t t0 = tile * kGemmTokens;
    const int nt = int(std::min<int64_t>(kGemmTokens, n_tok - t0));
    float* dst = xp + tile * K * kGemmTokens;
    for (int64_t k0 = 0; k0 < K; k0 += 64) {  // 64 columns at a time: the 48 source rows' lines stay in L1
        const int64_t k1 = std::min(K, k0 + 64);
        for (int t = 0; t < kGemmTokens; t++) {
            const float* src = x + (t0 + t) * K;
            for (int64_t k = k0; k < k1; k++) dst[k * kGemmTokens + t] = t < nt ? src[k] : 0.0f;
        }
    }
}

// --8<-- [start:gemm_micro]
// y tile [R rows][16*NV tokens] = panel rows [R][K] . xp tile [K][48]; out: [R][48] floats.
template <int NV>
LL_AVX512 static void gemm_micro(int64_t K, const float* panel, const float* xp, float* out) {
    constexpr int R = kGemmRows;
    __m512 acc[R][NV];
    for (int r = 0; r < R; r++)
        for (int v = 0; v < NV; v++) acc[r][v] = _mm512_setzero_ps();
    const float* w[R];  // the R weight rows: each read one float per k (a broadcast)
    for (int r = 0; r < R; r++) w[r] = panel + r * K;
    for (int64_t k = 0; k < K; k++) {
        __m512 xv[NV];  // x[t, k] for 16*NV tokens
        for (int v = 0; v < NV; v++) xv[v] = _mm512_loadu_ps(xp + k * kGemmTokens + 16 * v);
        for (int r = 0; r < R; r++) {
            const __m512 wk = _mm512_set1_ps(w[r][k]);
            for (int v = 0; v < NV; v++) acc[r][v] = _mm512_fmadd_ps(wk, xv[v], acc[r][v]);
        }
    }
    for (int r = 0; r < R; r++)
        for (int v = 0; v < NV; v++) _mm512_storeu_ps(out + r * kGemmTokens + 16 * v, acc[r][v]);
}
// --8<-- [end:gemm_micro]

// --8<-- [start:gemm_f32]
// y[t, r] = sum_k W[r, k] x[t, k] for any quant type: rows in panels of R, dequantized once each.
void gemm_f32_avx512(const QuantType& t, const uint8_t* W, int64_t n_rows, int64_t K, const float* x, int64_t n_tok,
                     float* y, ThreadPool& pool) {
    constexpr int R = kGemmRows;
    const size_t rb = size_t(K / t.block_size) * t.block_bytes;
    const int64_t n_tiles = (n_tok + kGemmTokens - 1) / kGemmTokens;
    thread_local std::vector<float> xp_buf;  // the caller's: shared read-only with the workers below
    xp_buf.resize(size_t(n_tiles * K * kGemmTokens));
    float* xp = xp_buf.data();
    pool.parallel_for(n_tiles, [&](int64_t begin, int64_t end) {
        for (int64_t tile = begin; tile < end; tile++) pack_x_tile(x, n_tok, K, tile, xp);  // [K][48] per tile
    });
    const int64_t n_panels = (n_rows + R - 1) / R;
    pool.parallel_for(n_panels, [&](int64_t begin, int64_t end) {
        thread_local std::vector<float> panel_buf;  // each thread's own: R rows of floats
        panel_buf.resize(size_t(R * K));
        float* panel = panel_buf.data();
        alignas(64) float out[R * kGemmTokens];
        for (int64_t p = begin; p < end; p++) {
            const int64_t r0 = p * R;
            const int nr = int(std::min<int64_t>(R, n_rows - r0));
            for (int r = 0; r < nr; r++) t.dequantize_row(W + (r0 + r) * rb, panel + r * K, K);  // [nr, K], once
            if (nr < R) std::memset(panel + nr * K, 0, sizeof(float) * size_t((R - nr) * K));
            for (int64_t tile = 0; tile < n_tiles; tile++) {  // every token streams past the panel
                const int64_t t0 = tile * kGemmTokens;
                const int nt = int(std::min<int64_t>(kGemmTokens, n_tok - t0));
                const float* xt = xp + tile * K * kGemmTokens;
                if (nt > 32) gemm_micro<3>(K, panel, xt, out);
                else if (nt > 16) gemm_micro<2>(K, panel, xt, out);
                else gemm_micro<1>(K, panel, xt, out);
                for (int tok = 0; tok < nt; tok++)
                    for (int r = 0; r < nr; r++) y[(t0 + tok) * n_rows + r0 + r] = out[r * kGemmTokens + tok];
            }
        }
    });
}
// --8<-- [end:gemm_f32]

}  // namespace ll
#endif
