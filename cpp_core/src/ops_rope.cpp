// ops_rope.cpp -- rotary position embedding, in place on one token's heads (the lesson: lessons/l05_rope.py).
//
// Pair i of each head is rotated by the angle pos * freq_base^(-2i / head_dim):
//   (a, b) -> (a cos - b sin, a sin + b cos)
// "neox" pairs element i with i + head_dim/2 (GPT-NeoX, Qwen, ...); otherwise the pairs are adjacent,
// (2i, 2i+1) (the original LLaMA layout, which llama.cpp uses for arch "llama").
#include <cmath>

#include "kernels.h"
#include "kernels_neon.h"  // aarch64 versions (empty elsewhere)
#include "ops_simd_math.h"

namespace ll {

using RopeFn = void (*)(float*, int, int, int, float, bool);

static inline void rotate_pair(float* a, float* b, float c, float s) {
    const float x0 = *a, x1 = *b;
    *a = x0 * c - x1 * s;
    *b = x0 * s + x1 * c;
}

// The angles in double: at pos 8000 a float angle would already be off by ~5e-4 rad.
static inline double rope_angle(int pos, int i, int head_dim, float freq_base) {
    return double(pos) * std::pow(double(freq_base), -2.0 * i / head_dim);
}

// ---- v0: scalar, the angle recomputed for every head (as the lesson reads) ----
// --8<-- [start:rope_v0]
static void rope_v0(float* x, int n_head, int head_dim, int pos, float freq_base, bool neox) {
    const int half = head_dim / 2;
    for (int h = 0; h < n_head; h++) {
        float* head = x + int64_t(h) * head_dim;
        for (int i = 0; i < half; i++) {
            const double theta = rope_angle(pos, i, head_dim, freq_base);
            const float c = float(std::cos(theta)), s = float(std::sin(theta));
            if (neox) rotate_pair(&head[i], &head[i + half], c, s);
            else rotate_pair(&head[2 * i], &head[2 * i + 1], c, s);
        }
    }
}
// --8<-- [end:rope_v0]

// ---- v1: one table of cos/sin per call, shared by every head (the trig was 95% of v0) ----
// --8<-- [start:rope_v1]
static void rope_v1(float* x, int n_head, int head_dim, int pos, float freq_base, bool neox) {
    const int half = head_dim / 2;
    float cos_t[512], sin_t[512];  // head_dim <= 1024 (checked by the callers' config)
    for (int i = 0; i < half; i++) {
        const double theta = rope_angle(pos, i, head_dim, freq_base);
        cos_t[i] = float(std::cos(theta));
        sin_t[i] = float(std::sin(theta));
    }
    for (int h = 0; h < n_head; h++) {
        float* head = x + int64_t(h) * head_dim;
        for (int i = 0; i < half; i++) {
            if (neox) rotate_pair(&head[i], &head[i + half], cos_t[i], sin_t[i]);
            else rotate_pair(&head[2 * i], &head[2 * i + 1], cos_t[i], sin_t[i]);
        }
    }
}
// --8<-- [end:rope_v1]

#if defined(__x86_64__) || defined(__i386__)
// The rotation with AVX2, given the table (cos duplicated per pair and sin as (-s, s) for adjacent pairs):
// neox: halves are contiguous, so a = x[i..i+8), b = x[i+half..]: two loads, four multiplies/FMAs.
// adjacent pairs: out = x * cos + swap_pairs(x) * sin, swap_pairs = (x1 x0 x3 x2 ...), one in-lane shuffle.
struct RopeTable {
    alignas(32) float cos_t[1024];
    alignas(32) float sin_t[1024];
};

static void fill_rope_table(RopeTable* tab, int head_dim, int pos, float freq_base, bool neox) {
    for (int i = 0; i < head_dim / 2; i++) {
        const double theta = rope_angle(pos, i, head_dim, freq_base);
        const float c = float(std::cos(theta)), s = float(std::sin(theta));
        if (neox) {
            tab->cos_t[i] = c, tab->sin_t[i] = s;
        } else {
            tab->cos_t[2 * i] = tab->cos_t[2 * i + 1] = c;
            tab->sin_t[2 * i] = -s, tab->sin_t[2 * i + 1] = s;
        }
    }
}

__attribute__((target("avx2,fma"))) static void rotate_heads_avx2(float* x, int n_head, int head_dim, bool neox,
                                                                   const RopeTable& tab) {
    const int half = head_dim / 2;
    for (int h = 0; h < n_head; h++) {
        float* head = x + int64_t(h) * head_dim;
        if (neox) {
            for (int i = 0; i < half; i += 8) {
                const __m256 a = _mm256_loadu_ps(head + i), b = _mm256_loadu_ps(head + i + half);
                const __m256 c = _mm256_load_ps(tab.cos_t + i), s = _mm256_load_ps(tab.sin_t + i);
                _mm256_storeu_ps(head + i, _mm256_fmsub_ps(a, c, _mm256_mul_ps(b, s)));
                _mm256_storeu_ps(head + i + half, _mm256_fmadd_ps(a, s, _mm256_mul_ps(b, c)));
            }
        } else {
            for (int i = 0; i < head_dim; i += 8) {
                const __m256 v = _mm256_loadu_ps(head + i);
                const __m256 swapped = _mm256_permute_ps(v, 0xB1);  // (1 0 3 2) in each 128-bit lane
                _mm256_storeu_ps(head + i, _mm256_fmadd_ps(v, _mm256_load_ps(tab.cos_t + i),
                                                            _mm256_mul_ps(swapped, _mm256_load_ps(tab.sin_t + i))));
            }
        }
    }
}

// ---- v2: the table, then the rotation 8 lanes at a time ----
static void rope_v2_avx2(float* x, int n_head, int head_dim, int pos, float freq_base, bool neox) {
    if (head_dim % 16 != 0) return rope_v1(x, n_head, head_dim, pos, freq_base, neox);
    RopeTable tab;
    fill_rope_table(&tab, head_dim, pos, freq_base, neox);
    rotate_heads_avx2(x, n_head, head_dim, neox, tab);
}

// ---- v3: v2, keeping the last table: q and k of a token, in all layers, share one position ----
// (60 calls per token for SmolLM2's 30 layers, one of which computes the trig.) One cache per thread.
// --8<-- [start:rope_v3]
static void rope_v3_cached(float* x, int n_head, int head_dim, int pos, float freq_base, bool neox) {
    if (head_dim % 16 != 0) return rope_v1(x, n_head, head_dim, pos, freq_base, neox);
    struct Cache {
        RopeTable tab;
        int pos = -1, head_dim = 0;
        float freq_base = 0.0f;
        bool neox = false;
    };
    thread_local Cache cache;
    if (cache.pos != pos || cache.head_dim != head_dim || cache.freq_base != freq_base || cache.neox != neox) {
        fill_rope_table(&cache.tab, head_dim, pos, freq_base, neox);
        cache.pos = pos, cache.head_dim = head_dim, cache.freq_base = freq_base, cache.neox = neox;
    }
    rotate_heads_avx2(x, n_head, head_dim, neox, cache.tab);
}
// --8<-- [end:rope_v3]
#endif

static const detail::OpVersion<RopeFn> kRopeVersions[] = {
    {"v0_scalar", "line-by-line port of the lesson", rope_v0, detail::cpu_any},
    {"v1_table", "cos/sin once per call, shared by the heads", rope_v1, detail::cpu_any},
#if defined(__x86_64__) || defined(__i386__)
    {"v2_avx2", "the rotation 8 lanes at a time", rope_v2_avx2, detail::cpu_avx2},
    {"v3_cached", "the last position's table kept: q, k and all layers share it", rope_v3_cached, detail::cpu_avx2},
#endif
#if defined(__aarch64__)
    {"v2_neon_cached", "the last table kept, rotation 4 lanes at a time (aarch64)", rope_neon_cached, detail::cpu_neon},  // ops_neon.cpp
#endif
};

static void check_rope(int head_dim) {
    if (head_dim <= 0 || head_dim % 2 != 0 || head_dim > 1024)
        throw std::invalid_argument("rope: head_dim must be even and at most 1024, got " + std::to_string(head_dim));
}

void rope(float* x, int n_head, int head_dim, int pos, float freq_base, bool neox) {
    static const RopeFn best = detail::best_version(kRopeVersions).fn;
    check_rope(head_dim);
    best(x, n_head, head_dim, pos, freq_base, neox);
}
void rope_v(const std::string& version, float* x, int n_head, int head_dim, int pos, float freq_base, bool neox) {
    const RopeFn fn = detail::find_version(kRopeVersions, version, "rope").fn;
    check_rope(head_dim);
    fn(x, n_head, head_dim, pos, freq_base, neox);
}
std::vector<VersionInfo> detail::rope_versions() { return describe(kRopeVersions); }
std::string detail::rope_active() { return best_version(kRopeVersions).name; }

}  // namespace ll
