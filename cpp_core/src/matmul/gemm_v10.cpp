// matmul/gemm_v10.cpp -- quant_matmul v10's kernels (AVX-512, and AVX2): dequantize each weight row once,
// then a register-blocked GEMM.
//
// v6-v9 dequantize a weight block in registers for every tile of 8 tokens: a 256-token prompt unpacks
// every block 32 times, ~10 uops each time, for 16 FMAs of work. Here a group of up to 64 rows is
// dequantized ONCE per call, by the type's own dequantize_row (the lesson's floats, every type), into a
// float buffer of the thread's own (150-400 KB: L2), and all tokens then stream past it.
//
// The AVX-512 micro-kernel keeps a tile of 8 rows x 16*NV tokens of y in registers (NV = 3: 24 zmm sums),
// with the vector lanes along TOKENS: per column k it loads NV vectors of 16 tokens' x[., k], broadcasts
// each row's weight w[r, k] from memory, and does R*NV FMAs. No horizontal sums, and 11 loads per 24 FMAs.
// For that, x is packed once per call, token-major -> k-major: xp[tile][k][48] (zero-padded tokens).
// Each (row, token) is one float32 sum over k in order: no activation rounding at all.
#if defined(__x86_64__) || defined(__i386__)
#include <algorithm>
#include <cstdint>
#include <cstring>
#include <vector>

#include "kernels.h"
#include "matmul/blocks.h"
#include "cpu/simd_x86.h"
#include "matmul/gemm_tiles.h"

namespace ll {

// ---- dequantizing a row: the lesson's floats, 16 at a time ----
// Same arithmetic as matmul/dequantize.cpp's scalar rows, so the same floats to the last bit (the tests check
// it through the product itself: x = identity gives y = W^T). d * q is exact in float32 (an fp16 d has 11
// significant bits, q at most 8), so even Q4_1's d * q + m rounds once whether or not it becomes an FMA.
// Q5_0, Q5_1 and the k-quants have theirs in matmul/gemm_dequant.cpp; other types use their scalar dequantize_row.
template <int TYPE>  // GGML_Q4_0, GGML_Q4_1 or GGML_Q8_0
LL_AVX512 static void dequant_row_legacy_avx512(const uint8_t* w, float* out, int64_t n) {
    constexpr int kBlockBytes = TYPE == GGML_Q4_0 ? 18 : TYPE == GGML_Q4_1 ? 20 : 34;
    const __m128i low4 = _mm_set1_epi8(0x0F);
    for (int64_t i = 0; i < n / QK; i++, w += kBlockBytes, out += QK) {
        uint16_t dh;
        std::memcpy(&dh, w, 2);
        const __m512 d = _mm512_set1_ps(fp16_to_fp32_f16c(dh));
        __m512 w_lo, w_hi;  // elements 0-15 and 16-31
        if (TYPE == GGML_Q8_0) {
            w_lo = _mm512_mul_ps(d, _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(w + 2)))));
            w_hi = _mm512_mul_ps(d, _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(w + 18)))));
        } else {
            const __m128i packed = _mm_loadu_si128(reinterpret_cast<const __m128i*>(w + (TYPE == GGML_Q4_1 ? 4 : 2)));
            __m512i q_lo = _mm512_cvtepu8_epi32(_mm_and_si128(packed, low4));
            __m512i q_hi = _mm512_cvtepu8_epi32(_mm_and_si128(_mm_srli_epi16(packed, 4), low4));
            if (TYPE == GGML_Q4_0) {
                q_lo = _mm512_sub_epi32(q_lo, _mm512_set1_epi32(8));
                q_hi = _mm512_sub_epi32(q_hi, _mm512_set1_epi32(8));
            }
            w_lo = _mm512_mul_ps(d, _mm512_cvtepi32_ps(q_lo));
            w_hi = _mm512_mul_ps(d, _mm512_cvtepi32_ps(q_hi));
            if (TYPE == GGML_Q4_1) {
                uint16_t mh;
                std::memcpy(&mh, w + 2, 2);
                const __m512 m = _mm512_set1_ps(fp16_to_fp32_f16c(mh));
                w_lo = _mm512_add_ps(w_lo, m);
                w_hi = _mm512_add_ps(w_hi, m);
            }
        }
        _mm512_storeu_ps(out, w_lo);
        _mm512_storeu_ps(out + 16, w_hi);
    }
}

// F16 and BF16: exact conversions, 16 per instruction (the scalar loop's tail for n % 16).
LL_AVX512 static void dequant_row_f16_avx512(const uint8_t* w, float* out, int64_t n) {
    const uint16_t* h = reinterpret_cast<const uint16_t*>(w);
    int64_t i = 0;
    for (; i + 16 <= n; i += 16) _mm512_storeu_ps(out + i, _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(h + i))));
    for (; i < n; i++) out[i] = fp16_to_fp32(h[i]);
}
LL_AVX512 static void dequant_row_bf16_avx512(const uint8_t* w, float* out, int64_t n) {
    const uint16_t* h = reinterpret_cast<const uint16_t*>(w);
    int64_t i = 0;
    for (; i + 16 <= n; i += 16) {
        const __m512i wide = _mm512_cvtepu16_epi32(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(h + i)));
        _mm512_storeu_ps(out + i, _mm512_castsi512_ps(_mm512_slli_epi32(wide, 16)));
    }
    for (; i < n; i++) out[i] = bf16_to_fp32(h[i]);
}

// The same three types and F16/BF16 with AVX2 (8 floats per vector), for the AVX2 build.
template <int TYPE>
LL_AVX2 static void dequant_row_legacy_avx2(const uint8_t* w, float* out, int64_t n) {
    constexpr int kBlockBytes = TYPE == GGML_Q4_0 ? 18 : TYPE == GGML_Q4_1 ? 20 : 34;
    const __m128i low4 = _mm_set1_epi8(0x0F);
    for (int64_t i = 0; i < n / QK; i++, w += kBlockBytes, out += QK) {
        uint16_t dh;
        std::memcpy(&dh, w, 2);
        const __m256 d = _mm256_set1_ps(fp16_to_fp32_f16c(dh));
        __m128i q[2];  // elements 0-15 and 16-31 as bytes
        if (TYPE == GGML_Q8_0) {
            q[0] = _mm_loadu_si128(reinterpret_cast<const __m128i*>(w + 2));
            q[1] = _mm_loadu_si128(reinterpret_cast<const __m128i*>(w + 18));
        } else {
            const __m128i packed = _mm_loadu_si128(reinterpret_cast<const __m128i*>(w + (TYPE == GGML_Q4_1 ? 4 : 2)));
            q[0] = _mm_and_si128(packed, low4);
            q[1] = _mm_and_si128(_mm_srli_epi16(packed, 4), low4);
        }
        __m256 m = _mm256_setzero_ps();
        if (TYPE == GGML_Q4_1) {
            uint16_t mh;
            std::memcpy(&mh, w + 2, 2);
            m = _mm256_set1_ps(fp16_to_fp32_f16c(mh));
        }
        for (int h = 0; h < 2; h++)
            for (int e = 0; e < 2; e++) {  // 8 elements at a time
                const __m128i bytes = _mm_srli_si128(q[h], 8 * e);
                __m256i qi = TYPE == GGML_Q8_0 ? _mm256_cvtepi8_epi32(bytes) : _mm256_cvtepu8_epi32(bytes);
                if (TYPE == GGML_Q4_0) qi = _mm256_sub_epi32(qi, _mm256_set1_epi32(8));
                __m256 v = _mm256_mul_ps(d, _mm256_cvtepi32_ps(qi));
                if (TYPE == GGML_Q4_1) v = _mm256_add_ps(v, m);
                _mm256_storeu_ps(out + 16 * h + 8 * e, v);
            }
    }
}

LL_AVX2 static void dequant_row_f16_avx2(const uint8_t* w, float* out, int64_t n) {
    const uint16_t* h = reinterpret_cast<const uint16_t*>(w);
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) _mm256_storeu_ps(out + i, _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(h + i))));
    for (; i < n; i++) out[i] = fp16_to_fp32(h[i]);
}

DequantRowFn gemm_dequantizer_avx512(int ggml_type);  // matmul/gemm_dequant.cpp: Q5_0, Q5_1 and the k-quants
DequantRowFn gemm_dequantizer_avx2(int ggml_type);

static DequantRowFn fast_dequantize_row_avx2(const QuantType& t) {
    switch (t.ggml_type) {
        case GGML_Q4_0: return dequant_row_legacy_avx2<GGML_Q4_0>;
        case GGML_Q4_1: return dequant_row_legacy_avx2<GGML_Q4_1>;
        case GGML_Q8_0: return dequant_row_legacy_avx2<GGML_Q8_0>;
        case GGML_F16: return dequant_row_f16_avx2;
        default:  // Q5_0, Q5_1, Q2_K..Q6_K: matmul/gemm_dequant.cpp; anything else: the scalar lesson port
            if (const DequantRowFn f = gemm_dequantizer_avx2(t.ggml_type)) return f;
            return t.dequantize_row;
    }
}

static DequantRowFn fast_dequantize_row(const QuantType& t) {
    switch (t.ggml_type) {
        case GGML_Q4_0: return dequant_row_legacy_avx512<GGML_Q4_0>;
        case GGML_Q4_1: return dequant_row_legacy_avx512<GGML_Q4_1>;
        case GGML_Q8_0: return dequant_row_legacy_avx512<GGML_Q8_0>;
        case GGML_F16: return dequant_row_f16_avx512;
        case GGML_BF16: return dequant_row_bf16_avx512;
        default:  // Q5_0, Q5_1, Q2_K..Q6_K: matmul/gemm_dequant.cpp; anything else: the scalar lesson port
            if (const DequantRowFn f = gemm_dequantizer_avx512(t.ggml_type)) return f;
            return t.dequantize_row;
    }
}

// (writing y, token tiles and the 16 x 16 transpose: matmul/gemm_tiles.h, shared with v19)

LL_AVX512 static void pack_x_tile_avx512(const float* x, int64_t n_tok, int64_t K, TokenTile tile, float* dst) {
    for (int v = 0; v < tile.nv; v++) {
        const int64_t tv = tile.t0 + 16 * v;
        const int nt = int(std::max<int64_t>(0, std::min<int64_t>(16, n_tok - tv)));
        for (int64_t k0 = 0; k0 < K; k0 += 16) {
            const int kn = int(std::min<int64_t>(16, K - k0));
            const __mmask16 mask = __mmask16((1u << kn) - 1);
            __m512 r[16];  // row i: token tv + i, columns k0..k0+15 (zeros past the last token or column)
            for (int i = 0; i < 16; i++) r[i] = i < nt ? _mm512_maskz_loadu_ps(mask, x + (tv + i) * K + k0) : _mm512_setzero_ps();
            transpose_16x16(r);  // r[c]: column k0 + c, 16 tokens
            for (int c = 0; c < kn; c++) _mm512_storeu_ps(dst + (k0 + c) * 48 + 16 * v, r[c]);
        }
    }
}

// ---- the AVX-512 micro-kernel: 8 rows x 48 tokens ----
// --8<-- [start:gemm_micro]
// acc [R rows][48 tokens] (+)= panel rows [R][kc] (row stride ldw) . xp [kc][48]; only 16*NV tokens computed.
template <int NV>
LL_AVX512 static void gemm_micro_avx512(int64_t kc, int64_t ldw, const float* panel, const float* xp, float* acc_io, bool accumulate) {
    constexpr int R = 8, kTile = 48;
    __m512 acc[R][NV];  // 8 x 3 = 24 of the 32 zmm registers
    for (int r = 0; r < R; r++)
        for (int v = 0; v < NV; v++)
            acc[r][v] = accumulate ? _mm512_loadu_ps(acc_io + r * kTile + 16 * v) : _mm512_setzero_ps();
    const float* w[R];  // the R weight rows: each read one float per k (a broadcast)
    for (int r = 0; r < R; r++) w[r] = panel + r * ldw;
    for (int64_t k = 0; k < kc; k++) {
        __m512 xv[NV];  // x[t, k] for 16*NV tokens
        for (int v = 0; v < NV; v++) xv[v] = _mm512_loadu_ps(xp + k * kTile + 16 * v);
        for (int r = 0; r < R; r++) {
            const __m512 wk = _mm512_set1_ps(w[r][k]);
            for (int v = 0; v < NV; v++) acc[r][v] = _mm512_fmadd_ps(wk, xv[v], acc[r][v]);
        }
    }
    for (int r = 0; r < R; r++)
        for (int v = 0; v < NV; v++) _mm512_storeu_ps(acc_io + r * kTile + 16 * v, acc[r][v]);
}
// --8<-- [end:gemm_micro]

struct GemmAvx512 {
    static constexpr int kRows = 8;     // R: rows per micro-tile (one broadcast each per k)
    static constexpr int kLanes = 16;   // tokens per vector
    static constexpr int kTile = 48;    // 3 vectors: the packed x row stride
    template <int NV>
    LL_AVX512 static void micro(int64_t kc, int64_t ldw, const float* panel, const float* xp, float* acc_io, bool accumulate) {
        gemm_micro_avx512<NV>(kc, ldw, panel, xp, acc_io, accumulate);
    }

    // acc [8][48] -> y[tok, r] for nt tokens and nr rows (row stride ldy): whole blocks of 16 tokens of a
    // full tile transposed in registers, the rest one float at a time.
    LL_AVX512 static void store(const float* acc, int nr, int nt, float* y, int64_t ldy) {
        int tok = 0;
        if (nr == kRows)
            for (; tok + 16 <= nt; tok += 16) store_8x16_transposed(acc + tok, y + tok * ldy, ldy);
        for (; tok < nt; tok++)
            for (int r = 0; r < nr; r++) y[tok * ldy + r] = acc[r * kTile + tok];
    }
    static DequantRowFn dequantizer(const QuantType& t) { return fast_dequantize_row(t); }
    static void pack(const float* x, int64_t n_tok, int64_t K, TokenTile tile, float* dst) { pack_x_tile_avx512(x, n_tok, K, tile, dst); }
};

// The same with AVX2: 8 tokens x 8 columns at a time, an 8 x 8 transpose in registers (24 shuffles for
// 64 floats, instead of 64 scalar copies; in a prompt's profile the scalar packing took ~4% of the time).
LL_AVX2 static void transpose_8x8(__m256* r) {
    __m256 t[8], u[8];
    for (int i = 0; i < 8; i += 2)  // rows i, i+1 interleaved: columns 0,1 | 4,5 and 2,3 | 6,7
        t[i] = _mm256_unpacklo_ps(r[i], r[i + 1]), t[i + 1] = _mm256_unpackhi_ps(r[i], r[i + 1]);
    for (int h = 0; h < 8; h += 4) {  // rows h..h+3: u[h + c] holds column c | column c + 4
        u[h + 0] = _mm256_shuffle_ps(t[h], t[h + 2], _MM_SHUFFLE(1, 0, 1, 0));
        u[h + 1] = _mm256_shuffle_ps(t[h], t[h + 2], _MM_SHUFFLE(3, 2, 3, 2));
        u[h + 2] = _mm256_shuffle_ps(t[h + 1], t[h + 3], _MM_SHUFFLE(1, 0, 1, 0));
        u[h + 3] = _mm256_shuffle_ps(t[h + 1], t[h + 3], _MM_SHUFFLE(3, 2, 3, 2));
    }
    for (int c = 0; c < 4; c++) {  // rows 0-3 from u[c], rows 4-7 from u[c + 4]
        r[c] = _mm256_permute2f128_ps(u[c], u[c + 4], 0x20);
        r[c + 4] = _mm256_permute2f128_ps(u[c], u[c + 4], 0x31);
    }
}

LL_AVX2 static void pack_x_tile_avx2(const float* x, int64_t n_tok, int64_t K, TokenTile tile, int stride, float* dst) {
    for (int v = 0; v < tile.nv; v++) {
        const int64_t tv = tile.t0 + 8 * v;
        const int nt = int(std::max<int64_t>(0, std::min<int64_t>(8, n_tok - tv)));
        int64_t k0 = 0;
        for (; k0 + 8 <= K; k0 += 8) {
            __m256 r[8];  // row i: token tv + i, columns k0..k0+7 (zeros past the last token)
            for (int i = 0; i < 8; i++) r[i] = i < nt ? _mm256_loadu_ps(x + (tv + i) * K + k0) : _mm256_setzero_ps();
            transpose_8x8(r);
            for (int c = 0; c < 8; c++) _mm256_storeu_ps(dst + (k0 + c) * stride + 8 * v, r[c]);
        }
        for (; k0 < K; k0++)  // columns past the last 8
            for (int i = 0; i < 8; i++) dst[k0 * stride + 8 * v + i] = i < nt ? x[(tv + i) * K + k0] : 0.0f;
    }
}

// ---- the AVX2 micro-kernel: 6 rows x 16 tokens (15 of the 16 ymm registers: 12 sums, 2 x vectors, 1 weight) ----
// (no register transpose: y gets plain copies). It was 4 rows x 24 tokens, 12 sums as well, but 3 x vectors
// + 1 weight left no register spare, and GCC read x from memory in every FMA instead: 16 loads per 12 FMAs,
// at the load ports' limit. 6 x 16 needs 8 loads per 12 FMAs (BLIS's Haswell shape).
struct GemmAvx2 {
    static constexpr int kRows = 6;
    static constexpr int kLanes = 8;
    static constexpr int kTile = 16;

    template <int NV>
    LL_AVX2 static void micro(int64_t kc, int64_t ldw, const float* panel, const float* xp, float* acc_io, bool accumulate) {
        constexpr int R = kRows;
        __m256 acc[R][NV];
        for (int r = 0; r < R; r++)
            for (int v = 0; v < NV; v++)
                acc[r][v] = accumulate ? _mm256_loadu_ps(acc_io + r * kTile + 8 * v) : _mm256_setzero_ps();
        const float* w[R];
        for (int r = 0; r < R; r++) w[r] = panel + r * ldw;
        for (int64_t k = 0; k < kc; k++) {
            __m256 xv[NV];
            for (int v = 0; v < NV; v++) xv[v] = _mm256_loadu_ps(xp + k * kTile + 8 * v);
            for (int r = 0; r < R; r++) {
                const __m256 wk = _mm256_broadcast_ss(w[r] + k);
                for (int v = 0; v < NV; v++) acc[r][v] = _mm256_fmadd_ps(wk, xv[v], acc[r][v]);
            }
        }
        for (int r = 0; r < R; r++)
            for (int v = 0; v < NV; v++) _mm256_storeu_ps(acc_io + r * kTile + 8 * v, acc[r][v]);
    }
    static void store(const float* acc, int nr, int nt, float* y, int64_t ldy) {  // 4 floats per token: plain copies
        for (int tok = 0; tok < nt; tok++)
            for (int r = 0; r < nr; r++) y[tok * ldy + r] = acc[r * kTile + tok];
    }
    static DequantRowFn dequantizer(const QuantType& t) { return fast_dequantize_row_avx2(t); }
    static void pack(const float* x, int64_t n_tok, int64_t K, TokenTile tile, float* dst) { pack_x_tile_avx2(x, n_tok, K, tile, kTile, dst); }
};

// --8<-- [start:gemm_f32]
// y[t, r] = sum_k W[r, k] x[t, k] for any quant type. Each thread takes groups of up to 64 rows,
// dequantizes them once, and walks K in chunks of kGemmK so that a chunk of packed x (128 x 48 floats,
// 24 KB) stays in L1 while the group's micro-panels pass over it. Each (row, token) is still one
// float32 sum in k order (the partial sums wait in acc between chunks).
static constexpr int kGemmGroupRows = 64;  // rows dequantized together
static constexpr int64_t kGemmK = 128;     // K chunk

// A std::vector's floats start 16 bytes into a cache line (malloc's alignment), so every 64-byte load of
// packed x straddled two lines: the buffers are over-allocated by 16 floats and used from a line boundary.
static float* align64(float* p) { return reinterpret_cast<float*>((reinterpret_cast<uintptr_t>(p) + 63) & ~uintptr_t(63)); }

template <class G>
static void gemm_f32(const QuantType& t, const uint8_t* W, int64_t n_rows, int64_t K, const float* x, int64_t n_tok,
                     float* y, ThreadPool& pool) {
    constexpr int R = G::kRows, kTile = G::kTile, kGroup = kGemmGroupRows / R;
    const size_t rb = size_t(K / t.block_size) * t.block_bytes;
    // The caller's buffers, shared read-only with the workers through plain pointers (a thread_local
    // named inside the lambdas would be each worker's own).
    thread_local std::vector<TokenTile> tiles_buf;
    tiles_buf = token_tiles(n_tok, G::kLanes, G::kTile / G::kLanes);
    const TokenTile* tiles = tiles_buf.data();
    const int64_t n_tiles = int64_t(tiles_buf.size());
    thread_local std::vector<float> xp_buf;
    xp_buf.resize(size_t(n_tiles * K * kTile) + 16);
    float* xp = align64(xp_buf.data());  // the micro-kernel's x loads: whole cache lines, never split
    pool.parallel_for(n_tiles, [&](int64_t begin, int64_t end) {
        for (int64_t i = begin; i < end; i++) G::pack(x, n_tok, K, tiles[i], xp + i * K * kTile);
    });
    const DequantRowFn dequantize_row = G::dequantizer(t);
    const int64_t n_panels = (n_rows + R - 1) / R;
    pool.parallel_for(n_panels, [&](int64_t begin, int64_t end) {
        thread_local std::vector<float> panel_buf, acc_buf;  // each thread's own
        panel_buf.resize(size_t(kGroup * R * K));
        acc_buf.resize(size_t(kGroup * n_tiles * R * kTile) + 16);
        float* panel = panel_buf.data();
        const int64_t n_groups = (end - begin + kGroup - 1) / kGroup;
        const int64_t group = (end - begin + n_groups - 1) / n_groups;  // even groups: 9 panels -> 5 + 4, not 8 + 1
        for (int64_t p0 = begin; p0 < end; p0 += group) {
            const int np = int(std::min<int64_t>(group, end - p0));
            const int64_t r0 = p0 * R;
            const int nr_all = int(std::min<int64_t>(np * R, n_rows - r0));
            for (int r = 0; r < nr_all; r++) dequantize_row(W + (r0 + r) * rb, panel + r * K, K);  // [nr_all, K], once
            std::memset(panel + nr_all * K, 0, sizeof(float) * size_t((np * R - nr_all) * K));    // padding rows
            for (int64_t k0 = 0; k0 < K; k0 += kGemmK) {
                const int64_t kc = std::min(kGemmK, K - k0);
                for (int64_t tile = 0; tile < n_tiles; tile++) {  // every token streams past the group
                    const int nv = tiles[tile].nv;
                    const float* xt = xp + (tile * K + k0) * kTile;
                    for (int g = 0; g < np; g++) {
                        float* acc = align64(acc_buf.data()) + (g * n_tiles + tile) * R * kTile;
                        const float* wg = panel + g * R * K + k0;
                        if (nv == 1) G::template micro<1>(kc, K, wg, xt, acc, k0 > 0);
                        else if (nv == 2) G::template micro<2>(kc, K, wg, xt, acc, k0 > 0);
                        else if constexpr (kTile == 3 * G::kLanes) G::template micro<3>(kc, K, wg, xt, acc, k0 > 0);  // 3-vector tiles only
                        if (k0 + kc == K) {  // the last chunk: the tile is done, write it while it is in L1
                            const int64_t t0 = tiles[tile].t0, rg = r0 + g * R;
                            G::store(acc, int(std::min<int64_t>(R, n_rows - rg)), int(std::min<int64_t>(G::kLanes * nv, n_tok - t0)),
                                     y + t0 * n_rows + rg, n_rows);
                        }
                    }
                }
            }
        }
    });
}
// --8<-- [end:gemm_f32]

void gemm_f32_avx512(const QuantType& t, const uint8_t* W, int64_t n_rows, int64_t K, const float* x, int64_t n_tok,
                     float* y, ThreadPool& pool) {
    gemm_f32<GemmAvx512>(t, W, n_rows, K, x, n_tok, y, pool);
}
void gemm_f32_avx2(const QuantType& t, const uint8_t* W, int64_t n_rows, int64_t K, const float* x, int64_t n_tok,
                   float* y, ThreadPool& pool) {
    gemm_f32<GemmAvx2>(t, W, n_rows, K, x, n_tok, y, pool);
}

}  // namespace ll
#endif
