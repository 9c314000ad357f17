// dev/matmul_q5_bytes_avx512.cpp -- Q5 (and Q4) decoding with byte products (vpdpbusd), x split into two bytes.
//
// Tried for issue 18 as a quant_matmul v20, never in the core. v13 (matmul/dot_avx512_v11_v12.cpp) widens each
// 5-bit weight to int16 and multiplies with vpdpwssd: 32 products per instruction. vpdpbusd does 64 products of
// u8 x s8, so keep the weights as bytes and split the 16-bit x exactly into its two bytes:
//
//     x = 256 hi + lo,  hi = x >> 8 (the high byte, signed),  lo = x & 255 (the low byte, unsigned)
//     sum_j q_j x_j = 256 sum_j q_j hi_j + sum_j lo_j q_j
//
// q (0..31) fits a u8 and an s8, so q . hi and lo . q are both vpdpbusd with nothing to correct. By hand,
// x = -300 = 256 * (-2) + 212, q = 21: 256 * (21 * -2) + 212 * 21 = -10752 + 4452 = -6300 = 21 * -300.
// The weights are not even moved: one 64-byte load holds whole blocks of a row (two Q5 blocks, three Q4), and
// x's bytes are placed once per token under each block's qs bytes (zeros under d, m, qh). No 32-bit lane holds
// qs bytes of two blocks, so each lane takes its block's scale. The catch: the split doubles the products
// (64 byte products are 32 weight x activation products, what vpdpwssd already does), and part of each load
// is not qs, so it issues 4 vpdpbusd per load: 4 (Q5) or 2.7 (Q4) per 64 weights, where v12/v13 issue 2.
// Measured on the AMD EPYC (Zen 5), one thread, in L2: Q5 0.76-0.88x of v13's speed, Q4 0.88-0.92x of v12's
// (docs/notes/matmul-diary.md, "Issue 18: Q5 as bytes"). The lanes group the products differently from v12/v13,
// so the float sums differ in the last bits: it would have been a version of its own.
//
// This file checks both kernels against float64 on the same rounded x, then times their block loops on a
// 1536 x 576 matrix (four rows a call, the blocks' scales made beforehand for both, one thread, in L2).
//
//   g++ -std=c++17 -O3 -march=native -Icpp_core/src dev/matmul_q5_bytes_avx512.cpp -o /tmp/q5b && /tmp/q5b
#include "common.h"

#if defined(__AVX512F__) && defined(__AVX512BW__) && defined(__AVX512VNNI__) && defined(__AVX512VBMI__) && defined(__AVX512BITALG__)
#include <immintrin.h>
#define HAVE_KERNELS 1

namespace {

constexpr int Q4_0 = 2, Q4_1 = 3, Q5_0 = 6, Q5_1 = 7;  // ggml's numbers
constexpr int block_bytes(int t) { return t == Q4_0 ? 18 : t == Q4_1 ? 20 : t == Q5_0 ? 22 : 24; }
constexpr int qs_offset(int t) { return t == Q4_0 ? 2 : t == Q4_1 ? 4 : t == Q5_0 ? 6 : 8; }
constexpr int qh_offset(int t) { return t == Q5_0 ? 2 : 4; }  // (Q5 only)
constexpr bool five_bits(int t) { return t == Q5_0 || t == Q5_1; }
constexpr bool has_m(int t) { return t == Q4_1 || t == Q5_1; }
constexpr int zero(int t) { return t == Q4_0 ? 8 : t == Q5_0 ? 16 : 0; }  // w = d (q - zero) (+ m)
constexpr int blocks_per_load(int t) { return 64 / block_bytes(t); }  // whole blocks in 64 bytes: Q4 3, Q5 2
inline const char* name(int t) { return t == Q4_0 ? "q4_0" : t == Q4_1 ? "q4_1" : t == Q5_0 ? "q5_0" : "q5_1"; }

// Random rows (d in (0, 0.02], m in [-0.1, 0.1]) and one row as float64: w = d (q - zero) or d q + m.
std::vector<uint8_t> random_q5(int t, int n_rows, int n_cols, uint32_t seed) {
    std::mt19937 rng(seed);
    std::vector<uint8_t> w(size_t(n_rows) * (n_cols / 32) * block_bytes(t) + 64);  // + 64: the last 64-byte load
    for (auto& b : w) b = uint8_t(rng());
    std::uniform_real_distribution<float> scale(0.001f, 0.02f), offset(-0.1f, 0.1f);
    for (size_t at = 0; at + block_bytes(t) <= w.size() - 64; at += block_bytes(t)) {
        const uint16_t d = ll::fp32_to_fp16(scale(rng)), m = ll::fp32_to_fp16(offset(rng));
        std::memcpy(&w[at], &d, 2);
        if (has_m(t)) std::memcpy(&w[at + 2], &m, 2);
    }
    return w;
}
std::vector<double> dequantize_q5(int t, const uint8_t* row, int n_cols) {
    std::vector<double> out(static_cast<size_t>(n_cols));
    for (int i = 0; i < n_cols / 32; i++) {
        const uint8_t* b = row + size_t(i) * block_bytes(t);
        uint16_t h[2];
        uint32_t qh = 0;
        std::memcpy(h, b, 4);
        if (five_bits(t)) std::memcpy(&qh, b + qh_offset(t), 4);
        const double d = ll::fp16_to_fp32(h[0]), m = has_m(t) ? ll::fp16_to_fp32(h[1]) : 0.0;
        for (int j = 0; j < 32; j++) {
            const int q = (j < 16 ? b[qs_offset(t) + j] & 15 : b[qs_offset(t) + j - 16] >> 4) | int((qh >> j) & 1) << 4;
            out[size_t(32 * i + j)] = d * (q - zero(t)) + m;
        }
    }
    return out;
}

// x -> int16 per block of 32 (d = max|x| / 32767, as the core's quantize_act_i16), and the constant term's d sum(xq)
void round_x(const std::vector<float>& x, std::vector<int16_t>& q, std::vector<float>& d, std::vector<float>& s) {
    const int nb = int(x.size()) / 32;
    q.assign(x.size(), 0), d.assign(size_t(nb), 0.0f), s.assign(size_t(nb), 0.0f);
    for (int i = 0; i < nb; i++) {
        float amax = 0.0f;
        for (int j = 0; j < 32; j++) amax = std::max(amax, std::fabs(x[size_t(32 * i + j)]));
        const float inv = amax > 0.0f ? 32767.0f / amax : 0.0f;
        int sum = 0;
        for (int j = 0; j < 32; j++) sum += q[size_t(32 * i + j)] = int16_t(std::nearbyint(x[size_t(32 * i + j)] * inv));
        d[size_t(i)] = amax / 32767.0f, s[size_t(i)] = d[size_t(i)] * float(sum);
    }
}

// Per block and row r of a call: scale = d_w d_x, offset = (-16 d_w or m_w) d_x sum(xq); rows r * nb + i.
void block_scales(int t, const uint8_t* w, int nb, const std::vector<float>& xd, const std::vector<float>& xs, float* scale, float* offset) {
    for (int r = 0; r < 4; r++)
        for (int i = 0; i < nb; i++) {
            uint16_t h[2];
            std::memcpy(h, w + size_t(r * nb + i) * block_bytes(t), 4);
            const float dw = ll::fp16_to_fp32(h[0]);
            scale[r * nb + i] = dw * xd[size_t(i)];
            offset[r * nb + i] = (has_m(t) ? ll::fp16_to_fp32(h[1]) : -float(zero(t)) * dw) * xs[size_t(i)];
        }
}

float hsum(__m512 v) { return _mm512_reduce_add_ps(v); }

// ---- v12/v13's block loop (the core's row pairs): int16 weights, two rows per register, qh as mask registers ----
template <int T>
void rows4_v13(int nb, const uint8_t* w, const int16_t* xq, const float* scale, const float* offset, float* y) {
    const int64_t rb = int64_t(nb) * block_bytes(T);
    const __m512i low4 = _mm512_set1_epi16(0x0F), sixteen = _mm512_set1_epi16(0x10);
    __m512 acc[2] = {_mm512_setzero_ps(), _mm512_setzero_ps()};
    for (int i = 0; i < nb; i++) {
        const __m512i x_lo = _mm512_broadcast_i64x4(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(xq + 32 * i)));
        const __m512i x_hi = _mm512_broadcast_i64x4(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(xq + 32 * i + 16)));
        for (int p = 0; p < 2; p++) {
            const uint8_t* a = w + 2 * p * rb + int64_t(i) * block_bytes(T);  // row A's block; row B's rb further
            const __m512i w16 = _mm512_cvtepu8_epi16(_mm256_loadu2_m128i(reinterpret_cast<const __m128i*>(a + rb + qs_offset(T)),
                                                                        reinterpret_cast<const __m128i*>(a + qs_offset(T))));
            __m512i lo = _mm512_and_si512(w16, low4), hi = _mm512_srli_epi16(w16, 4);
            if constexpr (five_bits(T)) {
                uint32_t ha, hb;
                std::memcpy(&ha, a + qh_offset(T), 4), std::memcpy(&hb, a + rb + qh_offset(T), 4);
                lo = _mm512_mask_add_epi16(lo, _cvtu32_mask32((ha & 0xFFFFu) | (hb << 16)), lo, sixteen);
                hi = _mm512_mask_add_epi16(hi, _cvtu32_mask32((ha >> 16) | (hb & 0xFFFF0000u)), hi, sixteen);
            }
            const __m512i dot = _mm512_dpwssd_epi32(_mm512_madd_epi16(lo, x_lo), hi, x_hi);
            const float* sa = scale + 2 * p * nb + i;
            const __m512 s = _mm512_mask_broadcastss_ps(_mm512_set1_ps(sa[0]), 0xFF00, _mm_load_ss(sa + nb));
            acc[p] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(dot), s, acc[p]);
        }
    }
    for (int r = 0; r < 4; r++) {
        float off = 0.0f;
        for (int i = 0; i < nb; i++) off += offset[r * nb + i];
        const __m512 a = acc[r / 2];
        y[r] = hsum(_mm512_maskz_mov_ps(r % 2 ? 0xFF00 : 0x00FF, a)) + off;
    }
}

// ---- the byte kernel: whole blocks a load (Q4 3, Q5 2), x's bytes under the qs bytes ----
// x's bytes per load's blocks, four rows of 64: hi under the low nibbles, hi under the high nibbles, lo, lo.
template <int T>
void place_x_bytes(const std::vector<int16_t>& q, std::vector<uint8_t>& out) {
    constexpr int L = blocks_per_load(T);
    const int nb = int(q.size()) / 32;
    out.assign(size_t(256) * ((nb + L - 1) / L), 0);
    for (int i = 0; i < nb; i++)
        for (int j = 0; j < 16; j++)
            for (int k = 0; k < 4; k++) {
                const int16_t v = q[size_t(32 * i + j + (k % 2 ? 16 : 0))];
                const uint8_t byte = k < 2 ? uint8_t(uint16_t(v) >> 8) : uint8_t(v & 255);
                out[size_t(256 * (i / L) + 64 * k + (i % L) * block_bytes(T) + qs_offset(T) + j)] = byte;
            }
}

template <int T>
struct Picks {  // per lane its block (0, 1); per qword the words holding its block's qh; per byte its element's bit
    int32_t lane_block[16] = {};
    int16_t qh_words[32] = {};
    int8_t bit[64] = {};
    Picks() {
        const int B = block_bytes(T), Q = qs_offset(T), L = blocks_per_load(T);
        for (int l = 0; l < 16; l++)  // no lane holds qs bytes of two blocks: 2-8 other bytes lie between them
            for (int p = 4 * l; p < 4 * l + 4; p++)
                if (p / B < L && p % B >= Q) lane_block[l] = p / B;
        for (int w = 0; w < 8 && five_bits(T); w++) {
            int blk = 0;
            for (int p = 8 * w; p < 8 * w + 8; p++)
                if (p / B < L && p % B >= Q) blk = p / B;
            const int16_t h = int16_t((blk * B + qh_offset(T)) / 2);
            qh_words[4 * w] = qh_words[4 * w + 2] = h, qh_words[4 * w + 1] = qh_words[4 * w + 3] = int16_t(h + 1);
        }
        for (int p = 0; p < 64; p++) bit[p] = int8_t(p % B >= Q ? p % B - Q : 63);
    }
};

template <int T>
void rows4_bytes(int nb, const uint8_t* w, const uint8_t* xb, const float* scale, const float* offset, float* y) {
    static const Picks<T> picks;
    constexpr int B = block_bytes(T), L = blocks_per_load(T);
    const int64_t rb = int64_t(nb) * B;
    const __m512i low4 = _mm512_set1_epi8(0x0F), sixteen = _mm512_set1_epi8(0x10);
    const __m512i lane_block = _mm512_loadu_si512(picks.lane_block), qh_words = _mm512_loadu_si512(picks.qh_words);
    const __m512i bit_lo = _mm512_loadu_si512(picks.bit), bit_hi = _mm512_add_epi8(bit_lo, sixteen);
    __m512 acc[4] = {_mm512_setzero_ps(), _mm512_setzero_ps(), _mm512_setzero_ps(), _mm512_setzero_ps()};
    for (int i = 0; i < nb; i += L) {
        const uint8_t* xi = xb + 256 * (i / L);
        const __m512i hi_l = _mm512_loadu_si512(xi), hi_h = _mm512_loadu_si512(xi + 64);
        const __m512i lo_l = _mm512_loadu_si512(xi + 128), lo_h = _mm512_loadu_si512(xi + 192);
        for (int r = 0; r < 4; r++) {  // (random_q5 leaves 64 bytes after the last row for the last load)
            const __m512i wb = _mm512_loadu_si512(w + r * rb + int64_t(i) * B);
            __m512i lo = _mm512_and_si512(wb, low4), hi = _mm512_and_si512(_mm512_srli_epi16(wb, 4), low4);
            if constexpr (five_bits(T)) {
                const __m512i qh = _mm512_permutexvar_epi16(qh_words, wb);  // each qword: its block's qh
                lo = _mm512_mask_add_epi8(lo, _mm512_bitshuffle_epi64_mask(qh, bit_lo), lo, sixteen);
                hi = _mm512_mask_add_epi8(hi, _mm512_bitshuffle_epi64_mask(qh, bit_hi), hi, sixteen);
            }
            __m512i dot = _mm512_dpbusd_epi32(_mm512_dpbusd_epi32(_mm512_setzero_si512(), lo, hi_l), hi, hi_h);  // sum q hi
            dot = _mm512_dpbusd_epi32(_mm512_dpbusd_epi32(_mm512_slli_epi32(dot, 8), lo_l, lo), lo_h, hi);  // 256 . + sum lo q
            const __m512 s = _mm512_permutexvar_ps(lane_block, _mm512_maskz_loadu_ps(__mmask16((1u << std::min(L, nb - i)) - 1), scale + r * nb + i));
            acc[r] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(dot), s, acc[r]);
        }
    }
    for (int r = 0; r < 4; r++) {
        float off = 0.0f;
        for (int i = 0; i < nb; i++) off += offset[r * nb + i];
        y[r] = hsum(acc[r]) + off;
    }
}

template <int T>
bool check_and_time(int n_rows, int n_cols) {
    const int nb = n_cols / 32;
    const std::vector<uint8_t> w = random_q5(T, n_rows, n_cols, 7);
    std::mt19937 rng(11);
    std::normal_distribution<float> normal;
    std::vector<float> x(static_cast<size_t>(n_cols));
    for (auto& v : x) v = normal(rng);
    std::vector<int16_t> xq;
    std::vector<float> xd, xs;
    round_x(x, xq, xd, xs);
    std::vector<uint8_t> xb;
    place_x_bytes<T>(xq, xb);
    std::vector<float> scale(static_cast<size_t>(n_rows * nb + 4)), offset(static_cast<size_t>(n_rows * nb));
    std::vector<float> y13(static_cast<size_t>(n_rows)), yb(static_cast<size_t>(n_rows));
    for (int r = 0; r + 4 <= n_rows; r += 4)  // made once, outside the timing: both kernels take the same
        block_scales(T, w.data() + size_t(r) * nb * block_bytes(T), nb, xd, xs, scale.data() + r * nb, offset.data() + r * nb);
    auto run = [&](bool bytes) {
        for (int r = 0; r + 4 <= n_rows; r += 4) {
            const uint8_t* wr = w.data() + size_t(r) * nb * block_bytes(T);
            if (bytes) rows4_bytes<T>(nb, wr, xb.data(), scale.data() + r * nb, offset.data() + r * nb, yb.data() + r);
            else rows4_v13<T>(nb, wr, xq.data(), scale.data() + r * nb, offset.data() + r * nb, y13.data() + r);
        }
    };
    run(false), run(true);
    dev::Worst worst13, worstb;
    for (int r = 0; r < n_rows; r++) {  // float64 on the rounded x: the kernels' own error only
        const std::vector<double> wr = dequantize_q5(T, w.data() + size_t(r) * nb * block_bytes(T), n_cols);
        double want = 0.0, scale_sum = 0.0;
        for (int j = 0; j < n_cols; j++) {
            const double xj = double(xd[size_t(j / 32)]) * xq[size_t(j)];
            want += wr[size_t(j)] * xj, scale_sum += std::fabs(wr[size_t(j)] * xj);
        }
        worst13.add(y13[size_t(r)], want, scale_sum), worstb.add(yb[size_t(r)], want, scale_sum);
    }
    std::printf("%s %d x %d\n", name(T), n_rows, n_cols);
    const bool ok = worst13.ok(five_bits(T) ? "v13 (int16 weights, vpdpwssd)" : "v12 (int16 weights, vpdpwssd)", 1e-5) & worstb.ok("bytes (vpdpbusd, x split in two bytes)", 1e-5);
    const double t13 = dev::median_us([&] { run(false); }, 21), tb = dev::median_us([&] { run(true); }, 21);
    std::printf("  median per matrix: %s %.1f us, bytes %.1f us (%.2fx of its speed)\n", five_bits(T) ? "v13" : "v12", t13, tb, t13 / tb);
    return ok;
}

}  // namespace
#endif

int main() {
#ifdef HAVE_KERNELS
    if (!__builtin_cpu_supports("avx512vnni") || !__builtin_cpu_supports("avx512vbmi") || !__builtin_cpu_supports("avx512bitalg")) {
        std::printf("skipped: this CPU lacks AVX-512 VNNI, VBMI or BITALG\n");
        return 0;
    }
    bool ok = check_and_time<Q5_0>(1536, 576) & check_and_time<Q5_1>(1536, 576);
    ok = check_and_time<Q4_0>(1536, 576) & check_and_time<Q4_1>(1536, 576) & ok;
    ok = check_and_time<Q5_0>(8, 544) & check_and_time<Q4_0>(8, 544) & ok;  // 17 blocks: the last load holds 1 or 2
    return ok ? 0 : 1;
#else
    std::printf("skipped: built without AVX-512 VNNI, VBMI and BITALG (-march=native on such a CPU)\n");
    return 0;
#endif
}
