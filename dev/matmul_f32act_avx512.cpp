// dev/matmul_f32act_avx512.cpp -- float activations without tiles: x stays float32, each weight block is
// dequantized in registers and FMA'd with x ("dequantize-and-FMA"), one row and one token at a time.
//
// Once quant_matmul v4b, reachable only through LLAMA_LESSONS_MATMUL. No activation rounding at all, but 16
// int->float conversions per 16 weights where the int8 path (v4) does 64 products per instruction, and each
// block unpacked again for every token: slower than v4 on prompts. The core took the idea up as v6, with
// each unpacked block used for up to 8 tokens (matmul/dot_avx512_v6_v8.cpp). docs/notes/matmul-diary.md has
// the measurements.
//
//   g++ -std=c++17 -O3 -march=native -Icpp_core/src dev/matmul_f32act_avx512.cpp -o /tmp/f32act && /tmp/f32act
#include "common.h"
#include "cpu/simd_x86.h"

namespace ll {

// x: n floats; x_block_sums: sum of x over each block of 32 (for Q4_1's offset m).
LL_AVX512 float dot_q4_1_f32act_avx512(int64_t n, const uint8_t* w, const float* x, const float* x_block_sums) {
    const BlockQ4_1* b = reinterpret_cast<const BlockQ4_1*>(w);
    const __m128i low4 = _mm_set1_epi8(0x0F);
    __m512 acc = _mm512_setzero_ps();
    float offsets = 0.0f;
    for (int64_t i = 0; i < n / QK; i++, x += QK) {
        const __m128i packed = _mm_loadu_si128(reinterpret_cast<const __m128i*>(b[i].qs));
        const __m512 lo = _mm512_cvtepi32_ps(_mm512_cvtepu8_epi32(_mm_and_si128(packed, low4)));                     // q 0-15
        const __m512 hi = _mm512_cvtepi32_ps(_mm512_cvtepu8_epi32(_mm_and_si128(_mm_srli_epi16(packed, 4), low4))); // q 16-31
        const __m512 qx = _mm512_fmadd_ps(hi, _mm512_loadu_ps(x + 16), _mm512_mul_ps(lo, _mm512_loadu_ps(x)));
        acc = _mm512_fmadd_ps(_mm512_set1_ps(fp16_to_fp32_f16c(b[i].d)), qx, acc);   // d * sum q x
        offsets += fp16_to_fp32_f16c(b[i].m) * x_block_sums[i];                       // m * sum x
    }
    return _mm512_reduce_add_ps(acc) + offsets;
}

LL_AVX512 float dot_q8_0_f32act_avx512(int64_t n, const uint8_t* w, const float* x, const float*) {
    const BlockQ8_0* b = reinterpret_cast<const BlockQ8_0*>(w);
    __m512 acc = _mm512_setzero_ps();
    for (int64_t i = 0; i < n / QK; i++, x += QK) {
        const __m512 lo = _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(b[i].qs))));
        const __m512 hi = _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(b[i].qs + 16))));
        const __m512 qx = _mm512_fmadd_ps(hi, _mm512_loadu_ps(x + 16), _mm512_mul_ps(lo, _mm512_loadu_ps(x)));
        acc = _mm512_fmadd_ps(_mm512_set1_ps(fp16_to_fp32_f16c(b[i].d)), qx, acc);
    }
    return _mm512_reduce_add_ps(acc);
}

}  // namespace ll

// ---- check against float64, then time one token through the FFN's 1536 x 576 matrix ----
int main() {
    if (!__builtin_cpu_supports("avx512f") || !__builtin_cpu_supports("avx512vnni")) {
        std::printf("skipped: needs AVX-512 (this CPU lacks it)\n");
        return 0;
    }
    const int n_rows = 1536, n_cols = 576;
    std::vector<float> x(n_cols), sums(n_cols / 32);
    std::mt19937 rng(1);
    std::normal_distribution<float> normal;
    for (auto& v : x) v = normal(rng);
    for (int i = 0; i < n_cols / 32; i++)
        for (int j = 0; j < 32; j++) sums[size_t(i)] += x[size_t(32 * i + j)];
    bool ok = true;
    for (int t : {dev::Q4_1, dev::Q8_0}) {
        const auto dot = t == dev::Q4_1 ? ll::dot_q4_1_f32act_avx512 : ll::dot_q8_0_f32act_avx512;
        const std::vector<uint8_t> w = dev::random_rows(t, n_rows, n_cols, 7);
        const size_t rb = size_t(n_cols / 32) * dev::block_bytes(t);
        dev::Worst worst;
        for (int r = 0; r < n_rows; r++) {
            const std::vector<double> wr = dev::dequantize(t, &w[r * rb], n_cols);
            double want = 0.0, scale = 0.0;
            for (int c = 0; c < n_cols; c++) want += wr[size_t(c)] * x[size_t(c)], scale += std::fabs(wr[size_t(c)] * x[size_t(c)]);
            worst.add(dot(n_cols, &w[r * rb], x.data(), sums.data()), want, scale);
        }
        std::printf("%s x f32, dequantized in registers:\n", dev::type_name(t));
        ok &= worst.ok("vs float64 (x as it is)", 2e-6);
        std::vector<float> y(n_rows);
        const double us = dev::median_us([&] {
            for (int r = 0; r < n_rows; r++) y[size_t(r)] = dot(n_cols, &w[r * rb], x.data(), sums.data());
        });
        std::printf("  1 token, %d x %d, one thread: %.1f us (%.1f GB/s of weights)\n", n_rows, n_cols, us, double(w.size()) / us / 1e3);
    }
    return ok ? 0 : 1;
}
