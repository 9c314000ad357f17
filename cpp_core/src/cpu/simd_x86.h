// cpu/simd_x86.h -- small x86 SIMD helpers shared by the kernel files: target attributes, fp16, software
// prefetch of rows ahead, horizontal sums, nibble unpacking.
#pragma once
#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>

#include <cstdint>
#include <cstring>

namespace ll {

#define LL_AVX2 __attribute__((target("avx2,fma,f16c")))
#define LL_AVX512 __attribute__((target("avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")))

LL_AVX2 static inline float fp16_to_fp32_f16c(uint16_t h) { return _cvtsh_ss(h); }

// Decoding's software prefetch (quant_matmul v9, v11): before rows r..r+3 of a row-major matrix (rb bytes a
// row) are read, ask for the bytes `ahead` bytes further on, one request per cache line, into L1 (v9-v12)
// or, TO_L2, into L2 (v11 AVX2). The requests do not stop at the last row of the call: in a decoding step
// the rows after a piece are most often the piece the same thread takes next (model/model.cpp: each thread works
// through a stretch of its own), and a prefetch is only a hint, never a fault, whatever the address.
// Stopping at the piece's end made decoding 8% slower (AMD EPYC, in-process A/B, 8 x 64 tokens each).
template <bool TO_L2 = false>
static inline void prefetch_rows_ahead(const uint8_t* W, int64_t r, int64_t rb, int64_t ahead) {
    const uintptr_t a = reinterpret_cast<uintptr_t>(W) + uintptr_t(r * rb + ahead);  // may lie past W's end
    for (int64_t k = 0; k < 4 * rb; k += 64) {
        if (TO_L2) _mm_prefetch(reinterpret_cast<const char*>(a + uintptr_t(k)), _MM_HINT_T1);
        else _mm_prefetch(reinterpret_cast<const char*>(a + uintptr_t(k)), _MM_HINT_T0);
    }
}

// The row loop of the one-token kernels: four(r) computes rows r..r+3 (after v9's prefetch), one(r) the
// 1-3 rows left over at the end. page_ahead > 0 adds one more request per four rows, that many bytes on:
// not for its bytes but for its address, so that the page table is walked for a page before the
// `ahead` requests reach it (v11 AVX2: matmul/dot_avx2_v11.cpp).
template <bool TO_L2 = false, class Four, class One>
static inline void rows_by_four(const uint8_t* w, int64_t rb, int64_t n_rows, int64_t prefetch_ahead, Four four, One one,
                                int64_t page_ahead = 0) {
    int64_t r = 0;
    for (; r + 4 <= n_rows; r += 4) {
        if (prefetch_ahead > 0) prefetch_rows_ahead<TO_L2>(w, r, rb, prefetch_ahead);
        if (page_ahead > 0)
            _mm_prefetch(reinterpret_cast<const char*>(reinterpret_cast<uintptr_t>(w) + uintptr_t(r * rb + page_ahead)), _MM_HINT_T1);
        four(r);
    }
    for (; r < n_rows; r++) one(r);
}

LL_AVX2 static inline float hsum_f32x8(__m256 v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

LL_AVX2 static inline int hsum_i32x8(__m256i v) {
    __m128i s = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
    s = _mm_add_epi32(s, _mm_unpackhi_epi64(s, s));
    s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 1));
    return _mm_cvtsi128_si32(s);
}

// 16 bytes of packed nibbles -> 32 bytes 0..15 in element order: low nibbles (elements 0-15), then high (16-31).
LL_AVX2 static inline __m256i nibbles_to_bytes(const uint8_t* qs) {
    const __m128i packed = _mm_loadu_si128(reinterpret_cast<const __m128i*>(qs));
    const __m256i both = _mm256_inserti128_si256(_mm256_castsi128_si256(packed), _mm_srli_epi16(packed, 4), 1);
    return _mm256_and_si256(both, _mm256_set1_epi8(0x0F));
}

// Each 16-bit lane shifted right by n bits (n not a compile-time constant).
LL_AVX2 static inline __m256i srl16(__m256i v, int n) { return _mm256_srl_epi16(v, _mm_cvtsi32_si128(n)); }

// One half (128 weights) of a Q6_K super-block -> its 6-bit q's minus 32, as 4 x 32 signed bytes in element
// order: element l + 32k is ql[l + 32 (k % 2)]'s low (k < 2) or high nibble | bits 2k, 2k+1 of qh[l] << 4.
// ql: the half's 64 bytes of low nibbles, qh: its 32 bytes of high bits.
LL_AVX2 static inline void q6k_half_to_bytes(const uint8_t* ql, const uint8_t* qh, __m256i out[4]) {
    const __m256i low4 = _mm256_set1_epi8(0x0F), three = _mm256_set1_epi8(3), m32 = _mm256_set1_epi8(32);
    const __m256i l0 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(ql));
    const __m256i l1 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(ql + 32));
    const __m256i hh = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(qh));
    const __m256i lows[4] = {_mm256_and_si256(l0, low4), _mm256_and_si256(l1, low4),
                             _mm256_and_si256(srl16(l0, 4), low4), _mm256_and_si256(srl16(l1, 4), low4)};
    for (int k = 0; k < 4; k++) {
        const __m256i high = _mm256_slli_epi16(_mm256_and_si256(srl16(hh, 2 * k), three), 4);  // <= 48: stays in its byte
        out[k] = _mm256_sub_epi8(_mm256_or_si256(lows[k], high), m32);
    }
}

// 32 bits -> 32 bytes, 0xFF where the bit is set: byte k gets a copy of the bit field's byte k/8,
// then every bit but bit (k % 8) is forced to 1, so the byte is all ones exactly when that bit was.
LL_AVX2 static inline __m256i bits_to_bytes(const uint8_t* bits4) {
    uint32_t x;
    std::memcpy(&x, bits4, 4);
    const __m256i shuffle = _mm256_set_epi64x(0x0303030303030303, 0x0202020202020202, 0x0101010101010101, 0);
    __m256i bytes = _mm256_shuffle_epi8(_mm256_set1_epi32(int(x)), shuffle);
    bytes = _mm256_or_si256(bytes, _mm256_set1_epi64x(0x7fbfdfeff7fbfdfe));
    return _mm256_cmpeq_epi8(bytes, _mm256_set1_epi64x(-1));
}

// sum of u8 x s8 products, 4 adjacent bytes per int32 lane (what one vpdpbusd does), with AVX2:
// vpmaddubsw multiplies pairs into int16, vpmaddwd with ones sums pairs of those into int32.
LL_AVX2 static inline __m256i dot_u8s8_x4(__m256i u, __m256i s) {
    return _mm256_madd_epi16(_mm256_maddubs_epi16(u, s), _mm256_set1_epi16(1));
}

// signed x signed: vpmaddubsw wants its first operand unsigned, so move the sign of x onto y.
LL_AVX2 static inline __m256i dot_s8s8_x4(__m256i x, __m256i y) {
    return dot_u8s8_x4(_mm256_sign_epi8(x, x), _mm256_sign_epi8(y, x));
}

}  // namespace ll
#endif
