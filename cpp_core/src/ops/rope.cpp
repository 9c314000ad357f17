// ops/rope.cpp -- rotary position embedding: the twins of lessons/l05_rope.py's rope_angles and apply_rope.
//
// rope_angles: cos and sin of pos * base^(-2i / n_rot) for each position and pair i < n_rot/2.
// apply_rope:  pair i of each head is rotated by its angle, in place:
//                  (a, b) -> (a cos - b sin, a sin + b cos)
//              "neox" pairs channel i with i + n_rot/2 (GPT-NeoX, Qwen, ...); otherwise the pairs are adjacent,
//              (2i, 2i+1) (the original LLaMA layout, which llama.cpp uses for arch "llama").
//              Channels past n_rot (partial rotation) are left alone, as in the lesson.
// The split is the lesson's, and it pays: the model computes the angles once per position and reuses
// them for q and k in all 30 layers (60 calls per token), so the trig is off the hot path entirely.
// Versions live on apply_rope (rope_angles runs once per token): v0 scalar, v1 AVX2, v2 AVX-512.
#include <cmath>
#include <string>
#include <vector>

#include "kernels.h"
#include "kernels_neon.h"  // aarch64 versions (empty elsewhere)

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#endif

namespace ll {

// ---- angles ----
// --8<-- [start:rope_angles]
// cos, sin: [n_pos, n_rot/2]. The angles in double: at pos 8000 a float angle would be off by ~5e-4 rad.
void rope_angles(const int32_t* positions, int64_t n_pos, int n_rot, float base, float* cos, float* sin) {
    if (n_rot <= 0 || n_rot % 2)
        throw std::invalid_argument("rope_angles: n_rot must be even and positive, got " + std::to_string(n_rot));
    const int half = n_rot / 2;
    for (int64_t p = 0; p < n_pos; p++)
        for (int i = 0; i < half; i++) {
            const double theta = std::pow(double(base), -2.0 * i / n_rot);  // [n_rot/2]
            const double angle = double(positions[p]) * theta;
            cos[p * half + i] = float(std::cos(angle));
            sin[p * half + i] = float(std::sin(angle));
        }
}
// --8<-- [end:rope_angles]

using ApplyRopeFn = void (*)(float*, int64_t, int, int, const float*, const float*, int, bool);

static inline void rotate_pair(float* a, float* b, float c, float s) {
    const float x0 = *a, x1 = *b;
    *a = x0 * c - x1 * s;
    *b = x0 * s + x1 * c;
}

// ---- v0: scalar, a line-by-line port of the lesson ----
// --8<-- [start:apply_rope_v0]
static void apply_rope_v0(float* x, int64_t n_tok, int n_head, int head_dim, const float* cos, const float* sin, int n_rot,
                          bool neox) {
    const int half = n_rot / 2;
    for (int64_t t = 0; t < n_tok; t++)
        for (int h = 0; h < n_head; h++) {
            float* head = x + (t * n_head + h) * head_dim;  // [head_dim]
            const float *c = cos + t * half, *s = sin + t * half;  // [n_rot/2]: the same angles for every head
            for (int i = 0; i < half; i++) {
                if (neox) rotate_pair(&head[i], &head[i + half], c[i], s[i]);
                else rotate_pair(&head[2 * i], &head[2 * i + 1], c[i], s[i]);
            }
        }
}
// --8<-- [end:apply_rope_v0]

#if defined(__x86_64__) || defined(__i386__)
// The SIMD versions rotate adjacent pairs as  out = x * (c0 c0 c1 c1 ..) + swap_pairs(x) * (-s0 s0 -s1 s1 ..),
// where swap_pairs = (x1 x0 x3 x2 ..) is one in-lane shuffle. The duplicated, signed angles are laid out once
// per token (n_rot floats each) and serve all its heads: building them per head made v1 slower than the
// compiler's auto-vectorized v0. NEOX needs no layout: the halves a = head[i..], b = head[half + i..] line up
// with cos[i..], sin[i..] as they are.
static inline void expand_adjacent(const float* c, const float* s, int half, float* cc, float* ss) {
    for (int i = 0; i < half; i++) cc[2 * i] = cc[2 * i + 1] = c[i], ss[2 * i] = -s[i], ss[2 * i + 1] = s[i];
}

static float* rope_scratch(int64_t n) {
    thread_local std::vector<float> buf;  // per thread: [2, n_rot]
    if (int64_t(buf.size()) < n) buf.resize(size_t(n));
    return buf.data();
}

// ---- v1: AVX2, 8 channels at a time (tails in scalar) ----
__attribute__((target("avx2,fma"))) static void apply_rope_v1_avx2(float* x, int64_t n_tok, int n_head, int head_dim,
                                                                    const float* cos, const float* sin, int n_rot, bool neox) {
    const int half = n_rot / 2;
    alignas(64) float stack[2 * 256];  // the usual head sizes fit on the stack
    float *cc = n_rot <= 256 ? stack : rope_scratch(2 * int64_t(n_rot)), *ss = cc + n_rot;
    for (int64_t t = 0; t < n_tok; t++) {
        const float *c = cos + t * half, *s = sin + t * half;
        if (!neox) expand_adjacent(c, s, half, cc, ss);
        for (int h = 0; h < n_head; h++) {
            float* head = x + (t * n_head + h) * head_dim;
            int i = 0;
            if (neox) {
                for (; i + 8 <= half; i += 8) {
                    const __m256 a = _mm256_loadu_ps(head + i), b = _mm256_loadu_ps(head + i + half);
                    const __m256 vc = _mm256_loadu_ps(c + i), vs = _mm256_loadu_ps(s + i);
                    _mm256_storeu_ps(head + i, _mm256_fmsub_ps(a, vc, _mm256_mul_ps(b, vs)));
                    _mm256_storeu_ps(head + i + half, _mm256_fmadd_ps(a, vs, _mm256_mul_ps(b, vc)));
                }
                for (; i < half; i++) rotate_pair(&head[i], &head[i + half], c[i], s[i]);
            } else {
                for (; i + 8 <= n_rot; i += 8) {  // 4 pairs
                    const __m256 v = _mm256_loadu_ps(head + i);
                    const __m256 swapped = _mm256_permute_ps(v, 0xB1);  // (1 0 3 2) in each 128-bit lane
                    _mm256_storeu_ps(head + i, _mm256_fmadd_ps(v, _mm256_loadu_ps(cc + i), _mm256_mul_ps(swapped, _mm256_loadu_ps(ss + i))));
                }
                for (i /= 2; i < half; i++) rotate_pair(&head[2 * i], &head[2 * i + 1], c[i], s[i]);
            }
        }
    }
}

// ---- v2: AVX-512, 16 channels at a time, tails under a mask ----
__attribute__((target("avx512f"))) static void apply_rope_v2_avx512(float* x, int64_t n_tok, int n_head, int head_dim,
                                                                     const float* cos, const float* sin, int n_rot, bool neox) {
    const int half = n_rot / 2;
    alignas(64) float stack[2 * 256];  // the usual head sizes fit on the stack
    float *cc = n_rot <= 256 ? stack : rope_scratch(2 * int64_t(n_rot)), *ss = cc + n_rot;
    auto lanes = [](int n) { return n >= 16 ? __mmask16(0xFFFF) : __mmask16((1u << n) - 1); };
    for (int64_t t = 0; t < n_tok; t++) {
        const float *c = cos + t * half, *s = sin + t * half;
        if (!neox) expand_adjacent(c, s, half, cc, ss);
        for (int h = 0; h < n_head; h++) {
            float* head = x + (t * n_head + h) * head_dim;
            if (neox) {
                for (int i = 0; i < half; i += 16) {
                    const __mmask16 m = lanes(half - i);
                    const __m512 a = _mm512_maskz_loadu_ps(m, head + i), b = _mm512_maskz_loadu_ps(m, head + i + half);
                    const __m512 vc = _mm512_maskz_loadu_ps(m, c + i), vs = _mm512_maskz_loadu_ps(m, s + i);
                    _mm512_mask_storeu_ps(head + i, m, _mm512_fmsub_ps(a, vc, _mm512_mul_ps(b, vs)));
                    _mm512_mask_storeu_ps(head + i + half, m, _mm512_fmadd_ps(a, vs, _mm512_mul_ps(b, vc)));
                }
            } else {
                for (int i = 0; i < n_rot; i += 16) {  // 8 pairs
                    const __mmask16 m = lanes(n_rot - i);
                    const __m512 v = _mm512_maskz_loadu_ps(m, head + i);
                    const __m512 swapped = _mm512_permute_ps(v, 0xB1);
                    _mm512_mask_storeu_ps(head + i, m, _mm512_fmadd_ps(v, _mm512_maskz_loadu_ps(m, cc + i),
                                                                       _mm512_mul_ps(swapped, _mm512_maskz_loadu_ps(m, ss + i))));
                }
            }
        }
    }
}
#endif

static const detail::OpVersion<ApplyRopeFn> kApplyRopeVersions[] = {
    {"v0_scalar", "line-by-line port of the lesson", apply_rope_v0, detail::cpu_any},
#if defined(__x86_64__) || defined(__i386__)
    {"v1_avx2", "8 channels at a time: halves (neox) or a pair swap (adjacent)", apply_rope_v1_avx2, detail::cpu_avx2},
    {"v2_avx512", "16 channels at a time, masked tails", apply_rope_v2_avx512, detail::cpu_avx512},
#endif
#if defined(__aarch64__)
    {"v1_neon", "4 channels at a time: halves (neox) or a pair swap (adjacent) (aarch64)", apply_rope_neon, detail::cpu_neon},  // ops/neon_v1.cpp
#endif
};

static void check_apply_rope(int64_t n_tok, int n_head, int head_dim, int n_rot) {
    if (n_tok < 0 || n_head < 0 || head_dim <= 0 || n_rot <= 0 || n_rot % 2 || n_rot > head_dim)
        throw std::invalid_argument("apply_rope: n_rot must be even, positive and at most head_dim (got n_rot " +
                                    std::to_string(n_rot) + ", head_dim " + std::to_string(head_dim) + ")");
}

void apply_rope(float* x, int64_t n_tok, int n_head, int head_dim, const float* cos, const float* sin, int n_rot, bool neox) {
    static const ApplyRopeFn best = detail::best_version(kApplyRopeVersions).fn;
    check_apply_rope(n_tok, n_head, head_dim, n_rot);
    best(x, n_tok, n_head, head_dim, cos, sin, n_rot, neox);
}
void apply_rope_v(const std::string& version, float* x, int64_t n_tok, int n_head, int head_dim, const float* cos,
                  const float* sin, int n_rot, bool neox) {
    const ApplyRopeFn fn = detail::find_version(kApplyRopeVersions, version, "apply_rope").fn;
    check_apply_rope(n_tok, n_head, head_dim, n_rot);
    fn(x, n_tok, n_head, head_dim, cos, sin, n_rot, neox);
}
std::vector<VersionInfo> detail::apply_rope_versions() { return describe(kApplyRopeVersions); }
std::string detail::apply_rope_active() { return best_version(kApplyRopeVersions).name; }

}  // namespace ll
