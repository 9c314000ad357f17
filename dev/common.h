// dev/common.h -- what every experiment in dev/ shares: random weight rows, a float64 reference, a timer.
//
// The experiments are kernels that were measured and not kept in the core (docs/notes/matmul-diary.md says
// what each gave). Each .cpp here is one program: it checks its kernels against the reference below on
// random rows, then times them on the default model's FFN shape. Header-only on purpose, like the core
// headers it includes (matmul/blocks.h for the block layouts, cpu/simd_x86.h for the SIMD helpers), so a
// file builds alone:  g++ -std=c++17 -O3 -march=native -Icpp_core/src dev/<file>.cpp -o /tmp/<file>
#pragma once

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <random>
#include <vector>

#include "matmul/blocks.h"

namespace dev {

enum WeightType { Q4_0 = 2, Q4_1 = 3, Q8_0 = 8 };  // ggml's type numbers
inline const char* type_name(int t) { return t == Q4_0 ? "q4_0" : t == Q4_1 ? "q4_1" : "q8_0"; }
inline int block_bytes(int t) { return t == Q4_0 ? 18 : t == Q4_1 ? 20 : 34; }

// n_rows rows of n_cols weights: random quants, scales d in (0, 0.02] and Q4_1 offsets m in [-0.1, 0.1]
inline std::vector<uint8_t> random_rows(int t, int n_rows, int n_cols, uint32_t seed) {
    std::mt19937 rng(seed);
    std::vector<uint8_t> w(size_t(n_rows) * (n_cols / 32) * block_bytes(t));
    for (auto& b : w) b = uint8_t(rng());
    std::uniform_real_distribution<float> scale(0.001f, 0.02f), offset(-0.1f, 0.1f);
    for (size_t at = 0; at < w.size(); at += block_bytes(t)) {
        const uint16_t d = ll::fp32_to_fp16(scale(rng)), m = ll::fp32_to_fp16(offset(rng));
        std::memcpy(&w[at], &d, 2);
        if (t == Q4_1) std::memcpy(&w[at + 2], &m, 2);
    }
    return w;
}

// One row's weights as float64, straight from the block layout (lesson 12's dequantize, in C++).
inline std::vector<double> dequantize(int t, const uint8_t* row, int n_cols) {
    std::vector<double> out(static_cast<size_t>(n_cols));
    for (int i = 0; i < n_cols / 32; i++) {
        const uint8_t* b = row + size_t(i) * block_bytes(t);
        uint16_t h[2];
        std::memcpy(h, b, 4);
        const double d = ll::fp16_to_fp32(h[0]), m = t == Q4_1 ? ll::fp16_to_fp32(h[1]) : 0.0;
        const uint8_t* qs = b + (t == Q4_1 ? 4 : 2);
        for (int j = 0; j < 32; j++) {
            const int q = t == Q8_0 ? int(int8_t(qs[j])) : j < 16 ? (qs[j] & 15) : (qs[j - 16] >> 4);
            out[size_t(32 * i + j)] = t == Q4_0 ? d * (q - 8) : d * q + m;
        }
    }
    return out;
}

// Worst |got - want| / sum |w x| over the outputs: float rounding is ~1e-7, a wrong nibble or scale ~1e-2.
struct Worst {
    double ratio = 0.0;
    void add(double got, double want, double scale) { ratio = std::max(ratio, std::fabs(got - want) / (scale + 1e-30)); }
    bool ok(const char* what, double tol) const {
        std::printf("  %-44s worst error / sum|wx| %.1e (tolerance %.0e): %s\n", what, ratio, tol, ratio <= tol ? "ok" : "FAIL");
        return ratio <= tol;
    }
};

// The median of `reps` timed calls of fn (after one untimed call), in microseconds.
template <class Fn>
double median_us(Fn fn, int reps = 41) {
    fn();
    std::vector<double> us;
    for (int i = 0; i < reps; i++) {
        const auto t0 = std::chrono::steady_clock::now();
        fn();
        us.push_back(std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - t0).count());
    }
    std::nth_element(us.begin(), us.begin() + reps / 2, us.end());
    return us[size_t(reps / 2)];
}

}  // namespace dev
