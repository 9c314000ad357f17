// matmul/gemm_dequant.cpp -- v10's row dequantizers for the types that had none of their own: Q5_0, Q5_1 and
// the k-quants Q2_K..Q6_K, with AVX2 (bit unpacking) and AVX-512 or AVX2 (the floats).
//
// v10 (matmul/gemm_v10.cpp) dequantizes every weight row once per prompt and then runs an f32 GEMM. Q4_0, Q4_1,
// Q8_0, F16 and BF16 had SIMD row dequantizers; every other type went through the scalar lesson port
// (matmul/dequantize.cpp), one element at a time with its shifts and masks: on a 256-token prompt the profile
// put 20-40% of a Q6_K or Q3_K product there (docs/notes/matmul-diary.md). Here each type is two steps:
//
//   1. unpack: one block's quants -> int8 q[e], the type's offset already taken (Q6_K's -32, Q3_K's -4, Q5_0's
//      -16), 32 bytes at a time with AVX2 byte logic; and per group of 16 elements a float scale a and offset c;
//   2. w[e] = a * q[e] + c for 16 elements at a time (one conversion and one FMA per vector).
//
// Bit for bit the scalar port's floats (the v10 tests multiply by the identity to check it): a = d * sc is
// exact in float32 (an fp16 d has 11 significant bits, a sub-block scale at most 8), and so is a * q for every
// type with an offset (q has at most 5 bits: 11 + 6 + 5 < 24), so a * q + c rounds once whether or not it is an
// FMA, like the scalar d * sc * q - dmin * m. Q6_K's a * q can round (11 + 8 + 6 bits): it is one product,
// rounded once, as in the scalar (d * sc) * q. Q3_K's and Q5_0's products are exact.
#if defined(__x86_64__) || defined(__i386__)
#include <cstring>

#include "kernels.h"
#include "matmul/blocks.h"
#include "matmul/kquant_scales.h"
#include "cpu/simd_x86.h"

namespace ll {

// ---- step 1: one block -> int8 q, and a scale and an offset per 16 elements ----
// --8<-- [start:unpack_kquants]
LL_AVX2 static inline void store32(int8_t* q, __m256i v) { _mm256_storeu_si256(reinterpret_cast<__m256i*>(q), v); }

// Q6_K: per half of 128, element l + 32k = ql[l + 32(k%2)]'s low (k < 2) or high nibble | qh[l] bits 2k..2k+1 << 4.
struct UnpackQ6K {
    static constexpr int kElems = 256, kBytes = 210;
    static constexpr bool kOffset = false;
    LL_AVX2 static void unpack(const uint8_t* w, int8_t* q, float* a, float*) {
        const BlockQ6_K* b = reinterpret_cast<const BlockQ6_K*>(w);
        for (int h = 0; h < 2; h++) {
            __m256i q8[4];  // the half's 128 q's - 32 (cpu/simd_x86.h)
            q6k_half_to_bytes(b->ql + 64 * h, b->qh + 32 * h, q8);
            for (int k = 0; k < 4; k++) store32(q + 128 * h + 32 * k, q8[k]);
        }
        const float d = fp16_to_fp32_f16c(b->d);
        for (int j = 0; j < 16; j++) a[j] = d * b->scales[j];
    }
};

// Q4_K (and Q5_K with its 5th bit): sub-block s of 32 = the low (s even) or high nibbles of qs[32 (s/2) ..];
// a = d * scale, c = -dmin * min per sub-block (two groups of 16).
template <bool FIFTH_BIT>
struct UnpackQ4K5K {
    static constexpr int kElems = 256, kBytes = FIFTH_BIT ? 176 : 144;
    static constexpr bool kOffset = true;
    LL_AVX2 static void unpack(const uint8_t* w, int8_t* q, float* a, float* c) {
        const BlockQ4_K* b4 = reinterpret_cast<const BlockQ4_K*>(w);
        const BlockQ5_K* b5 = reinterpret_cast<const BlockQ5_K*>(w);
        const uint8_t* scales = FIFTH_BIT ? b5->scales : b4->scales;
        const uint8_t* qs = FIFTH_BIT ? b5->qs : b4->qs;
        const __m256i low4 = _mm256_set1_epi8(0x0F), one = _mm256_set1_epi8(1);
        const __m256i qh = FIFTH_BIT ? _mm256_loadu_si256(reinterpret_cast<const __m256i*>(b5->qh)) : _mm256_setzero_si256();
        for (int p = 0; p < 4; p++) {  // sub-blocks 2p and 2p + 1
            const __m256i v = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(qs + 32 * p));
            __m256i lo = _mm256_and_si256(v, low4), hi = _mm256_and_si256(srl16(v, 4), low4);
            if (FIFTH_BIT) {  // bit s of qh[l], times 16
                lo = _mm256_or_si256(lo, _mm256_slli_epi16(_mm256_and_si256(srl16(qh, 2 * p), one), 4));
                hi = _mm256_or_si256(hi, _mm256_slli_epi16(_mm256_and_si256(srl16(qh, 2 * p + 1), one), 4));
            }
            store32(q + 64 * p, lo);
            store32(q + 64 * p + 32, hi);
        }
        const float d = fp16_to_fp32_f16c(b4->d), dmin = fp16_to_fp32_f16c(b4->dmin);  // same place in both
        for (int s = 0; s < 8; s++) {
            uint8_t sc, m;
            kquant_scale_min(s, scales, &sc, &m);
            a[2 * s] = a[2 * s + 1] = d * sc;
            c[2 * s] = c[2 * s + 1] = -(dmin * m);
        }
    }
};

// Q2_K and Q3_K: element 32j + l takes bits 2(j%4)..+1 of qs[32 (j/4) + l]; Q3_K adds bit j of hmask[l]
// (q + 4 when set, then -4). Q2_K: a = d * (scale & 15), c = -dmin * (scale >> 4); Q3_K: a = d * (6-bit scale - 32).
template <bool Q3>
struct UnpackQ2K3K {
    static constexpr int kElems = 256, kBytes = Q3 ? 110 : 84;
    static constexpr bool kOffset = !Q3;
    LL_AVX2 static void unpack(const uint8_t* w, int8_t* q, float* a, float* c) {
        const BlockQ2_K* b2 = reinterpret_cast<const BlockQ2_K*>(w);
        const BlockQ3_K* b3 = reinterpret_cast<const BlockQ3_K*>(w);
        const uint8_t* qs = Q3 ? b3->qs : b2->qs;
        const __m256i three = _mm256_set1_epi8(3), one = _mm256_set1_epi8(1), four = _mm256_set1_epi8(4);
        const __m256i hm = Q3 ? _mm256_loadu_si256(reinterpret_cast<const __m256i*>(b3->hmask)) : _mm256_setzero_si256();
        for (int j = 0; j < 8; j++) {
            const __m256i v = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(qs + 32 * (j / 4)));
            __m256i low = _mm256_and_si256(srl16(v, 2 * (j % 4)), three);
            if (Q3) low = _mm256_sub_epi8(_mm256_or_si256(low, _mm256_slli_epi16(_mm256_and_si256(srl16(hm, j), one), 2)), four);
            store32(q + 32 * j, low);
        }
        if (Q3) {
            int8_t sc[16];
            q3k_scales(b3->scales, sc);
            const float d = fp16_to_fp32_f16c(b3->d);
            for (int g = 0; g < 16; g++) a[g] = d * sc[g];
        } else {
            const float d = fp16_to_fp32_f16c(b2->d), dmin = fp16_to_fp32_f16c(b2->dmin);
            for (int g = 0; g < 16; g++) a[g] = d * (b2->scales[g] & 0xF), c[g] = -(dmin * (b2->scales[g] >> 4));
        }
    }
};
// --8<-- [end:unpack_kquants]

// Q5_0 and Q5_1: blocks of 32; low nibbles are elements 0-15, high 16-31, the 5th bit of element j is bit j of qh.
template <bool Q51>
struct UnpackQ5 {
    static constexpr int kElems = 32, kBytes = Q51 ? 24 : 22;
    static constexpr bool kOffset = Q51;
    LL_AVX2 static void unpack(const uint8_t* w, int8_t* q, float* a, float* c) {
        const BlockQ5_0* b0 = reinterpret_cast<const BlockQ5_0*>(w);
        const BlockQ5_1* b1 = reinterpret_cast<const BlockQ5_1*>(w);
        const __m256i high = _mm256_and_si256(bits_to_bytes(Q51 ? b1->qh : b0->qh), _mm256_set1_epi8(16));
        __m256i v = _mm256_or_si256(nibbles_to_bytes(Q51 ? b1->qs : b0->qs), high);
        if (!Q51) v = _mm256_sub_epi8(v, _mm256_set1_epi8(16));
        store32(q, v);
        a[0] = a[1] = fp16_to_fp32_f16c(b0->d);
        if (Q51) c[0] = c[1] = fp16_to_fp32_f16c(b1->m);
    }
};

// ---- step 2: w = a * q + c, 16 elements at a time ----
// --8<-- [start:scale_groups]
template <class U>
LL_AVX512 static void dequant_row_unpacked_avx512(const uint8_t* w, float* out, int64_t n) {
    alignas(32) int8_t q[U::kElems];
    float a[U::kElems / 16], c[U::kElems / 16] = {};
    for (int64_t i = 0; i < n / U::kElems; i++, w += U::kBytes, out += U::kElems) {
        U::unpack(w, q, a, c);
        for (int g = 0; g < U::kElems / 16; g++) {
            const __m512 qf = _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_load_si128(reinterpret_cast<const __m128i*>(q + 16 * g))));
            const __m512 ag = _mm512_set1_ps(a[g]);
            _mm512_storeu_ps(out + 16 * g, U::kOffset ? _mm512_fmadd_ps(ag, qf, _mm512_set1_ps(c[g])) : _mm512_mul_ps(ag, qf));
        }
    }
}
// --8<-- [end:scale_groups]

template <class U>
LL_AVX2 static void dequant_row_unpacked_avx2(const uint8_t* w, float* out, int64_t n) {
    alignas(32) int8_t q[U::kElems];
    float a[U::kElems / 16], c[U::kElems / 16] = {};
    for (int64_t i = 0; i < n / U::kElems; i++, w += U::kBytes, out += U::kElems) {
        U::unpack(w, q, a, c);
        for (int e = 0; e < U::kElems; e += 8) {
            const __m256 qf = _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(q + e))));
            const __m256 ag = _mm256_set1_ps(a[e / 16]);
            _mm256_storeu_ps(out + e, U::kOffset ? _mm256_fmadd_ps(ag, qf, _mm256_set1_ps(c[e / 16])) : _mm256_mul_ps(ag, qf));
        }
    }
}

// The row dequantizer v10 uses for a type, or nullptr where this file has none (gemm_v10.cpp has the rest).
DequantRowFn gemm_dequantizer_avx512(int ggml_type) {
    switch (ggml_type) {
        case GGML_Q5_0: return dequant_row_unpacked_avx512<UnpackQ5<false>>;
        case GGML_Q5_1: return dequant_row_unpacked_avx512<UnpackQ5<true>>;
        case GGML_Q2_K: return dequant_row_unpacked_avx512<UnpackQ2K3K<false>>;
        case GGML_Q3_K: return dequant_row_unpacked_avx512<UnpackQ2K3K<true>>;
        case GGML_Q4_K: return dequant_row_unpacked_avx512<UnpackQ4K5K<false>>;
        case GGML_Q5_K: return dequant_row_unpacked_avx512<UnpackQ4K5K<true>>;
        case GGML_Q6_K: return dequant_row_unpacked_avx512<UnpackQ6K>;
        default: return nullptr;
    }
}

DequantRowFn gemm_dequantizer_avx2(int ggml_type) {
    switch (ggml_type) {
        case GGML_Q5_0: return dequant_row_unpacked_avx2<UnpackQ5<false>>;
        case GGML_Q5_1: return dequant_row_unpacked_avx2<UnpackQ5<true>>;
        case GGML_Q2_K: return dequant_row_unpacked_avx2<UnpackQ2K3K<false>>;
        case GGML_Q3_K: return dequant_row_unpacked_avx2<UnpackQ2K3K<true>>;
        case GGML_Q4_K: return dequant_row_unpacked_avx2<UnpackQ4K5K<false>>;
        case GGML_Q5_K: return dequant_row_unpacked_avx2<UnpackQ4K5K<true>>;
        case GGML_Q6_K: return dequant_row_unpacked_avx2<UnpackQ6K>;
        default: return nullptr;
    }
}

}  // namespace ll
#endif
