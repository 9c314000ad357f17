// dev/matmul_i12_decode_avx2.cpp -- 12-bit activations, so that a 4-bit block needs no nibble mask (AVX2).
//
// Once quant_matmul v13, reachable only through LLAMA_LESSONS_MATMUL. The core's AVX2 decoder (v11,
// matmul/dot_avx2_v11.cpp) rounds x to 16 bits and splits each weight byte b_j = lo_j + 16 hi_j into its two
// nibbles: a mask for the low one, a shift for the high one. Keep the byte whole instead and let the high
// nibble take the surplus back out:
//
//     b_j p_j + hi_j (p_(j+16) - 16 p_j)  =  lo_j p_j + hi_j p_(j+16)
//
// e.g. b = 0x3A (lo 10, hi 3), p_j = 5, p_(j+16) = -2: 58 * 5 + 3 * (-2 - 80) = 44 = 10 * 5 + 3 * (-2).
// The second factor must fit int16 for vpmaddwd: |p| <= 1927 gives |p_(j+16) - 16 p_j| <= 17 * 1927 = 32759.
// So x is rounded to +-1927 steps per block instead of +-32767: one vector instruction of ~11 fewer per block
// and row, for a rounding 17x coarser (each product to ~3e-4 of its size instead of ~2e-5; still 16x finer
// than llama.cpp's 8 bits). Measured in the model on the AMD EPYC: decoding +4.6%, and the KL of the decode
// path from llama.cpp's F32 run 4.7e-5 to 7.1e-5 instead of 6e-7 to 1e-6: a trade the fast path does not
// make. docs/notes/matmul-diary.md has the rounds.
//
// This file times one thread over a Q4_1 1536 x 576 matrix, masked on 16-bit x against unmasked on 12-bit x,
// after checking both against float64 on the same rounded x.
//
//   g++ -std=c++17 -O3 -march=native -Icpp_core/src dev/matmul_i12_decode_avx2.cpp -o /tmp/i12 && /tmp/i12
#include "common.h"
#include "cpu/simd_x86.h"

namespace {

constexpr int kSteps16 = 32767, kSteps12 = 1927;

// x [n] -> p [n] int16 and d [n/32], per block d = max|x| / steps, p = round-half-even(x * steps / max|x|)
void round_blocks(const float* x, int n, int steps, int16_t* p, float* d) {
    for (int i = 0; i < n / 32; i++) {
        float top = 0.0f;
        for (int j = 0; j < 32; j++) top = std::max(top, std::fabs(x[32 * i + j]));
        const float inv = top > 0.0f ? float(steps) / top : 0.0f;
        for (int j = 0; j < 32; j++) p[32 * i + j] = int16_t(std::nearbyint(x[32 * i + j] * inv));
        d[i] = top / float(steps);
    }
}

// The unmasked kernel's x: per block [p_0..p_15] as they are, then p_(j+16) - 16 p_j.
void offset_high_half(const int16_t* p, int n, int16_t* out) {
    for (int i = 0; i < n; i += 32)
        for (int j = 0; j < 16; j++) out[i + j] = p[i + j], out[i + 16 + j] = int16_t(p[i + 16 + j] - 16 * p[i + j]);
}

// One Q4_1 row (w = d q + m) times x given as p, d_x and sum_x (the sum of each block's x, for m):
// MASKED splits the nibbles; otherwise the low half meets whole bytes and x must come offset_high_half.
template <bool MASKED>
LL_AVX2 float q4_1_row(int n, const uint8_t* row, const int16_t* p, const float* dx, const float* sum_x) {
    const ll::BlockQ4_1* b = reinterpret_cast<const ll::BlockQ4_1*>(row);
    __m256 acc = _mm256_setzero_ps();
    float offsets = 0.0f;
    for (int i = 0; i < n / 32; i++) {
        const __m256i bytes = _mm256_cvtepu8_epi16(_mm_loadu_si128(reinterpret_cast<const __m128i*>(b[i].qs)));
        const __m256i lo = MASKED ? _mm256_and_si256(bytes, _mm256_set1_epi16(0x0F)) : bytes;
        const __m256i hi = _mm256_srli_epi16(bytes, 4);
        const __m256i x_lo = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p + 32 * i));
        const __m256i x_hi = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p + 32 * i + 16));
        const __m256i dot = _mm256_add_epi32(_mm256_madd_epi16(lo, x_lo), _mm256_madd_epi16(hi, x_hi));
        acc = _mm256_fmadd_ps(_mm256_cvtepi32_ps(dot), _mm256_set1_ps(ll::fp16_to_fp32_f16c(b[i].d) * dx[i]), acc);
        offsets += ll::fp16_to_fp32_f16c(b[i].m) * sum_x[i];
    }
    return ll::hsum_f32x8(acc) + offsets;
}

}  // namespace

int main() {
    if (!__builtin_cpu_supports("avx2") || !__builtin_cpu_supports("fma") || !__builtin_cpu_supports("f16c")) {
        std::printf("skipped: needs AVX2, FMA and F16C (this CPU lacks them)\n");
        return 0;
    }
    const int n_rows = 1536, n = 576;
    std::mt19937 rng(3);
    std::normal_distribution<float> normal;
    std::vector<float> x(n);
    for (auto& v : x) v = normal(rng);
    const std::vector<uint8_t> w = dev::random_rows(dev::Q4_1, n_rows, n, 5);
    const size_t rb = size_t(n / 32) * 20;
    bool ok = true;
    for (int steps : {kSteps16, kSteps12}) {
        std::vector<int16_t> p(n), p_off(n);
        std::vector<float> dx(n / 32), sum_x(n / 32);
        round_blocks(x.data(), n, steps, p.data(), dx.data());
        for (int i = 0; i < n / 32; i++)
            for (int j = 0; j < 32; j++) sum_x[size_t(i)] += dx[size_t(i)] * float(p[size_t(32 * i + j)]);
        offset_high_half(p.data(), n, p_off.data());
        const bool masked = steps == kSteps16;  // the core's v11 pairs 16 bits with the mask; v13 12 bits without
        const int16_t* xq = masked ? p.data() : p_off.data();
        const auto row = masked ? q4_1_row<true> : q4_1_row<false>;
        dev::Worst worst;
        for (int r = 0; r < n_rows; r++) {
            const std::vector<double> wr = dev::dequantize(dev::Q4_1, &w[r * rb], n);
            double want = 0.0, scale = 0.0;
            for (int c = 0; c < n; c++) {
                const double xc = double(dx[size_t(c / 32)]) * p[size_t(c)];  // x as rounded
                want += wr[size_t(c)] * xc, scale += std::fabs(wr[size_t(c)] * xc);
            }
            worst.add(row(n, &w[r * rb], xq, dx.data(), sum_x.data()), want, scale);
        }
        std::printf("q4_1 x int%d, %s:\n", steps == kSteps16 ? 16 : 12, masked ? "nibbles masked (v11's way)" : "low nibbles unmasked");
        ok &= worst.ok("vs float64 on the same rounded x", 2e-6);
        std::vector<float> y(n_rows);
        const double us = dev::median_us([&] {
            for (int r = 0; r < n_rows; r++) y[size_t(r)] = row(n, &w[r * rb], xq, dx.data(), sum_x.data());
        });
        std::printf("  1 token, %d x %d, one thread: %.1f us (%.1f GB/s of weights)\n", n_rows, n, us, double(w.size()) / us / 1e3);
    }
    return ok ? 0 : 1;
}
