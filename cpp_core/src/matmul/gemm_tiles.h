// matmul/gemm_tiles.h -- pieces the two prompt GEMMs share (v10's float one, matmul/gemm_v10.cpp, and v19's
// 16-bit one, matmul/gemm_i16_v19.cpp): how tokens are cut into tiles, and the AVX-512 register transposes
// that pack x token-major -> k-major and write y back token-major.
#pragma once
#if defined(__x86_64__) || defined(__i386__)
#include <algorithm>
#include <cstdint>
#include <vector>

#include "cpu/simd_x86.h"

namespace ll {

// ---- x, packed: [n_tok, K] row-major -> per tile, [K][kTile] (lanes * nv tokens used, missing tokens zero) ----
struct TokenTile {
    int64_t t0;  // first token
    int nv;      // vectors of tokens: 1..max_nv
};

// Tiles of max_nv vectors (3 with AVX-512, 2 with AVX2); with 3, a last vector left alone is avoided
// (3 + 1 -> 2 + 2): with AVX-512's 16 lanes, 256 tokens = 4 x 48 + 2 x 32.
static inline std::vector<TokenTile> token_tiles(int64_t n_tok, int lanes, int max_nv) {
    std::vector<TokenTile> tiles;
    int64_t n_vec = (n_tok + lanes - 1) / lanes, t0 = 0;
    while (n_vec > 0) {
        const int nv = max_nv == 3 && n_vec == 4 ? 2 : int(std::min<int64_t>(max_nv, n_vec));
        tiles.push_back({t0, nv});
        t0 += lanes * nv, n_vec -= nv;
    }
    return tiles;
}

// Packing with AVX-512, 16 tokens at a time: 16 rows of x -> 16 columns of xp, a 16 x 16 transpose in
// registers (unpack, shuffle, two rounds of 128-bit lane moves) instead of 256 scalar copies.
LL_AVX512 static inline void transpose_16x16(__m512 r[16]) {
    __m512 t[16], u[16];
    for (int p = 0; p < 16; p += 2) {  // lane L: r_p[4L] r_p+1[4L] r_p[4L+1] r_p+1[4L+1] | then 4L+2, 4L+3
        t[p] = _mm512_unpacklo_ps(r[p], r[p + 1]);
        t[p + 1] = _mm512_unpackhi_ps(r[p], r[p + 1]);
    }
    for (int q = 0; q < 16; q += 4) {  // u[q + j], lane L: rows q..q+3 of column 4L + j
        u[q + 0] = _mm512_shuffle_ps(t[q + 0], t[q + 2], 0x44);
        u[q + 1] = _mm512_shuffle_ps(t[q + 0], t[q + 2], 0xEE);
        u[q + 2] = _mm512_shuffle_ps(t[q + 1], t[q + 3], 0x44);
        u[q + 3] = _mm512_shuffle_ps(t[q + 1], t[q + 3], 0xEE);
    }
    for (int j = 0; j < 4; j++) {  // column 4L + j = lane L of u[j], u[4 + j], u[8 + j], u[12 + j]
        const __m512 a = _mm512_shuffle_f32x4(u[j], u[4 + j], 0x88), b = _mm512_shuffle_f32x4(u[j], u[4 + j], 0xDD);
        const __m512 c = _mm512_shuffle_f32x4(u[8 + j], u[12 + j], 0x88), d = _mm512_shuffle_f32x4(u[8 + j], u[12 + j], 0xDD);
        r[j] = _mm512_shuffle_f32x4(a, c, 0x88);
        r[8 + j] = _mm512_shuffle_f32x4(a, c, 0xDD);
        r[4 + j] = _mm512_shuffle_f32x4(b, d, 0x88);
        r[12 + j] = _mm512_shuffle_f32x4(b, d, 0xDD);
    }
}

// ---- writing y: the tile's rows are registers of tokens, y is token-major ----
// acc [8 rows][16 tokens] (row stride 48) -> y[tok, 0..7] for 16 tokens (row stride ldy): an 8 x 16
// transpose in registers (unpack, shuffle, then 128-bit lane moves), 32 shuffles and 16 stores of 8 floats.
LL_AVX512 static inline void store_8x16_transposed(const float* acc, float* y, int64_t ldy) {
    constexpr int kTile = 48;
    __m512 a[8], t[8], u[8];
    for (int r = 0; r < 8; r++) a[r] = _mm512_loadu_ps(acc + r * kTile);
    for (int r = 0; r < 8; r += 2) {  // per 128-bit lane: a0[0] a1[0] a0[1] a1[1] | a0[2] a1[2] a0[3] a1[3]
        t[r] = _mm512_unpacklo_ps(a[r], a[r + 1]);
        t[r + 1] = _mm512_unpackhi_ps(a[r], a[r + 1]);
    }
    for (int h = 0; h < 8; h += 4) {  // u[h + j], lane L: rows h..h+3 of token 4L + j
        u[h + 0] = _mm512_shuffle_ps(t[h + 0], t[h + 2], 0x44);
        u[h + 1] = _mm512_shuffle_ps(t[h + 0], t[h + 2], 0xEE);
        u[h + 2] = _mm512_shuffle_ps(t[h + 1], t[h + 3], 0x44);
        u[h + 3] = _mm512_shuffle_ps(t[h + 1], t[h + 3], 0xEE);
    }
    for (int j = 0; j < 4; j++) {
        // [u_j.L0 u_{4+j}.L0 u_j.L1 u_{4+j}.L1] = rows 0-7 of token j, then of token 4 + j
        const __m512 p01 = _mm512_shuffle_f32x4(u[j], u[4 + j], 0x44);  // uj.L0 uj.L1 u4j.L0 u4j.L1
        const __m512 p23 = _mm512_shuffle_f32x4(u[j], u[4 + j], 0xEE);  // uj.L2 uj.L3 u4j.L2 u4j.L3
        const __m512 q01 = _mm512_shuffle_f32x4(p01, p01, 0xD8);       // uj.L0 u4j.L0 uj.L1 u4j.L1
        const __m512 q23 = _mm512_shuffle_f32x4(p23, p23, 0xD8);
        _mm256_storeu_ps(y + (j + 0) * ldy, _mm512_castps512_ps256(q01));
        _mm256_storeu_ps(y + (j + 4) * ldy, _mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(q01), 1)));
        _mm256_storeu_ps(y + (j + 8) * ldy, _mm512_castps512_ps256(q23));
        _mm256_storeu_ps(y + (j + 12) * ldy, _mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(q23), 1)));
    }
}

}  // namespace ll
#endif
