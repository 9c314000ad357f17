// ops/neon_v1.cpp -- the aarch64 NEON versions of rmsnorm, softmax, swiglu and rope (4 float lanes).
//
// Each is the AVX2 version's idea with 128-bit registers: the same loops, the same Cephes exp
// polynomial, a scalar tail for the last n % 4 elements (NEON has no masked loads). Registered in the
// op files' tables under #if defined(__aarch64__); checked against v0 under qemu by tests/native/neon_check.cpp.
// Correctness only: no ARM machine was available to time them.
#if defined(__aarch64__)
#include <arm_neon.h>

#include <cmath>
#include <vector>
#include <limits>

#include "kernels_neon.h"

namespace ll {

// ---- exp of 4 floats: the polynomial of ops/simd_math.h's exp8_avx2, lane for lane ----
// exp(x) = 2^n exp(r), n = round(x / ln2), |r| <= ln2/2; below -87.3 exactly 0 (so a -inf mask stays 0),
// above 88.7 +inf. vfmaq_f32(a, b, c) = a + b*c; vfmsq_f32(a, b, c) = a - b*c.
static inline float32x4_t exp4_neon(float32x4_t x) {
    const float32x4_t xc = vminq_f32(vmaxq_f32(x, vdupq_n_f32(-87.3f)), vdupq_n_f32(88.7f));
    const float32x4_t n = vrndnq_f32(vmulq_f32(xc, vdupq_n_f32(1.44269504088896341f)));  // round(x / ln2)
    float32x4_t r = vfmsq_f32(xc, n, vdupq_n_f32(0.693359375f));                         // r = x - n ln2,
    r = vfmsq_f32(r, n, vdupq_n_f32(-2.12194440e-4f));                                   // in two parts
    float32x4_t p = vdupq_n_f32(1.9875691500e-4f);
    p = vfmaq_f32(vdupq_n_f32(1.3981999507e-3f), p, r);
    p = vfmaq_f32(vdupq_n_f32(8.3334519073e-3f), p, r);
    p = vfmaq_f32(vdupq_n_f32(4.1665795894e-2f), p, r);
    p = vfmaq_f32(vdupq_n_f32(1.6666665459e-1f), p, r);
    p = vfmaq_f32(vdupq_n_f32(5.0000001201e-1f), p, r);
    p = vfmaq_f32(vaddq_f32(r, vdupq_n_f32(1.0f)), p, vmulq_f32(r, r));                 // exp(r)
    const int32x4_t two_n = vshlq_n_s32(vaddq_s32(vcvtnq_s32_f32(n), vdupq_n_s32(127)), 23);
    float32x4_t y = vmulq_f32(p, vreinterpretq_f32_s32(two_n));                          // 2^n exp(r)
    y = vbslq_f32(vcltq_f32(x, vdupq_n_f32(-87.3f)), vdupq_n_f32(0.0f), y);
    y = vbslq_f32(vcgtq_f32(x, vdupq_n_f32(88.7f)), vdupq_n_f32(std::numeric_limits<float>::infinity()), y);
    return y;
}

// ---- rmsnorm: sum of squares in 2 x 4 lanes, then the scaling 4 lanes at a time ----
void rmsnorm_neon(const float* x, const float* weight, float* out, int64_t n, float eps) {
    float32x4_t acc0 = vdupq_n_f32(0.0f), acc1 = vdupq_n_f32(0.0f);  // two FMA chains
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) {
        const float32x4_t a = vld1q_f32(x + i), b = vld1q_f32(x + i + 4);
        acc0 = vfmaq_f32(acc0, a, a);
        acc1 = vfmaq_f32(acc1, b, b);
    }
    double sum_sq = vaddvq_f32(vaddq_f32(acc0, acc1));
    for (; i < n; i++) sum_sq += double(x[i]) * x[i];
    const float scale = float(1.0 / std::sqrt(sum_sq / double(n) + eps));
    const float32x4_t vscale = vdupq_n_f32(scale);
    for (i = 0; i + 4 <= n; i += 4)
        vst1q_f32(out + i, vmulq_f32(vmulq_f32(vld1q_f32(x + i), vscale), vld1q_f32(weight + i)));
    for (; i < n; i++) out[i] = x[i] * scale * weight[i];
}

// ---- softmax: vector max, vector exp, vector sum ----
void softmax_neon(float* x, int64_t n) {
    float32x4_t vmax = vdupq_n_f32(-std::numeric_limits<float>::infinity());
    int64_t i = 0;
    for (; i + 4 <= n; i += 4) vmax = vmaxq_f32(vmax, vld1q_f32(x + i));
    float max_x = vmaxvq_f32(vmax);
    for (; i < n; i++) max_x = std::max(max_x, x[i]);

    const float32x4_t vmax_x = vdupq_n_f32(max_x);
    float32x4_t vsum = vdupq_n_f32(0.0f);
    for (i = 0; i + 4 <= n; i += 4) {
        const float32x4_t e = exp4_neon(vsubq_f32(vld1q_f32(x + i), vmax_x));
        vst1q_f32(x + i, e);
        vsum = vaddq_f32(vsum, e);
    }
    double sum = vaddvq_f32(vsum);
    for (; i < n; i++) {
        x[i] = std::exp(x[i] - max_x);
        sum += x[i];
    }
    const float inv_sum = float(1.0 / sum);
    const float32x4_t vinv = vdupq_n_f32(inv_sum);
    for (i = 0; i + 4 <= n; i += 4) vst1q_f32(x + i, vmulq_f32(vld1q_f32(x + i), vinv));
    for (; i < n; i++) x[i] *= inv_sum;
}

// --8<-- [start:swiglu_neon]
// ---- swiglu: silu(g) * up with the vector exp (libm's expf is the whole cost of v0) ----
void swiglu_neon(const float* gate, const float* up, float* out, int64_t n) {
    const float32x4_t one = vdupq_n_f32(1.0f);
    int64_t i = 0;
    for (; i + 4 <= n; i += 4) {
        const float32x4_t g = vld1q_f32(gate + i);
        const float32x4_t silu = vdivq_f32(g, vaddq_f32(one, exp4_neon(vnegq_f32(g))));  // g / (1 + exp(-g))
        vst1q_f32(out + i, vmulq_f32(silu, vld1q_f32(up + i)));
    }
    for (; i < n; i++) out[i] = gate[i] / (1.0f + std::exp(-gate[i])) * up[i];
}
// --8<-- [end:swiglu_neon]

// ---- apply_rope: 4 lanes at a time ----
// Adjacent pairs (2i, 2i+1): out = x * (c0 c0 c1 c1) + swap_pairs(x) * (-s0 s0 -s1 s1), swap_pairs = vrev64q_f32
// (x1 x0 x3 x2); the duplicated, signed angles are laid out once per token for all its heads.
// neox pairs (i, i + n_rot/2): the two halves line up with cos[i..], sin[i..] as they are.
void apply_rope_neon(float* x, int64_t n_tok, int n_head, int head_dim, const float* cos, const float* sin, int n_rot,
                     bool neox) {
    const int half = n_rot / 2;
    std::vector<float> expanded(neox ? 0 : 2 * size_t(n_rot));
    float *cc = expanded.data(), *ss = cc + n_rot;
    for (int64_t t = 0; t < n_tok; t++) {
        const float *c = cos + t * half, *s = sin + t * half;  // [n_rot/2]
        if (!neox)
            for (int i = 0; i < half; i++) cc[2 * i] = cc[2 * i + 1] = c[i], ss[2 * i] = -s[i], ss[2 * i + 1] = s[i];
        for (int h = 0; h < n_head; h++) {
            float* head = x + (t * n_head + h) * head_dim;  // [head_dim]
            int i = 0;
            if (neox) {
                for (; i + 4 <= half; i += 4) {
                    const float32x4_t a = vld1q_f32(head + i), b = vld1q_f32(head + i + half);
                    const float32x4_t vc = vld1q_f32(c + i), vs = vld1q_f32(s + i);
                    vst1q_f32(head + i, vfmsq_f32(vmulq_f32(a, vc), b, vs));         // a c - b s
                    vst1q_f32(head + i + half, vfmaq_f32(vmulq_f32(a, vs), b, vc));  // a s + b c
                }
                for (; i < half; i++) {  // half % 4 leftovers
                    const float a = head[i], b = head[i + half];
                    head[i] = a * c[i] - b * s[i];
                    head[i + half] = a * s[i] + b * c[i];
                }
            } else {
                // --8<-- [start:rope_neon_pairs]
                for (; i + 4 <= n_rot; i += 4) {  // two pairs per register: (x0 x1 x2 x3) -> x cos + (x1 x0 x3 x2) sin
                    const float32x4_t v = vld1q_f32(head + i);
                    vst1q_f32(head + i, vfmaq_f32(vmulq_f32(v, vld1q_f32(cc + i)), vrev64q_f32(v), vld1q_f32(ss + i)));
                }
                // --8<-- [end:rope_neon_pairs]
                for (; i < n_rot; i += 2) {  // one pair left when n_rot % 4 == 2
                    const float a = head[i], b = head[i + 1];
                    head[i] = a * cc[i] + b * ss[i];  // ss[i] = -s
                    head[i + 1] = b * cc[i + 1] + a * ss[i + 1];
                }
            }
        }
    }
}

}  // namespace ll
#endif
