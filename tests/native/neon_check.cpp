// neon_check.cpp -- every kernel version this (emulated) aarch64 CPU runs, checked against v0 on random input.
//
// Built for aarch64 and run under qemu-aarch64 by tests/test_neon_qemu.py (no aarch64 Python here, so the
// C++ functions are called directly, not through the pybind module). v0 of each op is the scalar port of
// the numpy lesson, itself tested against the lessons on x86 (tests/test_cpp_kernels*.py); here every
// other version must match it:
//   float versions    within float rounding: |y - y_v0| <= rel * scale + abs, rel = 1e-6..2e-6 (a few ulps),
//                     scale = sum |terms| for matmul, max |V| for attention, else |y_v0|
//   int8 versions     bit for bit against v2_int8 (the scalar int8 kernels): same integers, same float steps
//   16-bit versions   (v11, v13-v18 NEON: one token, the types each step takes) against v0 on x rounded as they
//                     promise (quantize_i16_reference: x86's rounding), within float rounding; the rounding
//                     itself bit for bit against that reference here, and against numpy's in the Python test
// and the fast path (the plain ll::rmsnorm, ...) must equal the version active_version() names.
// Sizes are odd on purpose (tails of 1-3 elements, 1-17 tokens). Prints a summary; exits 1 on any mismatch.
//
// usage: neon_check [--expect-dotprod=0|1]   (checks the HWCAP detection against what qemu's -cpu offers)
//        neon_check --model MANIFEST OUT        (the whole forward pass of a dumped tiny model: see run_model)
//        neon_check --quantize-i16 IN OUT       (float32 x from IN rounded by the NEON 16-bit path: q, d, s to OUT)
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <map>
#include <random>
#include <stdexcept>
#include <string>
#include <vector>

#include "cpu/features.h"
#include "kernels.h"
#include "kernels_neon.h"
#include "model/model.h"
#include "matmul/blocks.h"

using namespace ll;

// ---- bookkeeping: per (op, version), cases run and the worst error / tolerance ratio ----
struct Tally {
    int cases = 0, failures = 0;
    double worst = 0.0;  // max over cases of error / tolerance (<= 1 passes)
};
static std::map<std::string, Tally> g_tally;
static int g_failures = 0;

static void fail(const std::string& what) {
    std::printf("FAIL %s\n", what.c_str());
    g_failures++;
}

// Compare y against ref within rel * scale[i] + abs (scale defaults to |ref[i]|); record under key.
static void check_close(const std::string& key, const std::string& detail, const float* y, const float* ref, size_t n,
                        double rel, double abs, const std::vector<double>* scale = nullptr) {
    Tally& t = g_tally[key];
    t.cases++;
    double worst = 0.0;
    size_t worst_i = 0;
    for (size_t i = 0; i < n; i++) {
        const double s = scale ? (*scale)[i] : std::fabs(double(ref[i]));
        const double tol = rel * s + abs;
        double err;
        if (std::isinf(ref[i]) || std::isinf(y[i])) err = (y[i] == ref[i]) ? 0.0 : INFINITY;
        else if (std::isnan(y[i]) != std::isnan(ref[i])) err = INFINITY;
        else err = std::fabs(double(y[i]) - double(ref[i]));
        if (err / tol > worst) worst = err / tol, worst_i = i;
    }
    t.worst = std::max(t.worst, worst);
    if (worst > 1.0) {
        t.failures++;
        char buf[256];
        std::snprintf(buf, sizeof buf, " at %zu: %.9g vs v0 %.9g (%.2fx tolerance)", worst_i, y[worst_i], ref[worst_i], worst);
        fail(key + " " + detail + buf);
    }
}

static void check_equal(const std::string& key, const std::string& detail, const float* y, const float* ref, size_t n) {
    Tally& t = g_tally[key];
    t.cases++;
    if (std::memcmp(y, ref, n * sizeof(float)) != 0) {
        t.failures++;
        for (size_t i = 0; i < n; i++)
            if (std::memcmp(&y[i], &ref[i], 4) != 0) {
                char buf[160];
                std::snprintf(buf, sizeof buf, " at %zu: %.9g vs %.9g", i, y[i], ref[i]);
                fail(key + " " + detail + " not bit-identical" + buf);
                break;
            }
    }
}

static std::mt19937 g_rng(1234);
static std::vector<float> randn(size_t n, float sigma = 1.0f) {
    std::normal_distribution<float> d(0.0f, sigma);
    std::vector<float> v(n);
    for (auto& x : v) x = d(g_rng);
    return v;
}

static std::vector<std::string> runnable(const std::vector<VersionInfo>& versions) {
    std::vector<std::string> out;
    for (const auto& v : versions)
        if (v.available) out.push_back(v.name);
    return out;
}

static bool has_version(const std::vector<VersionInfo>& versions, const std::string& name) {
    for (const auto& v : versions)
        if (v.name == name) return true;
    return false;
}

// ---- element-wise ops ----
static void check_rmsnorm() {
    for (int64_t n : {1, 3, 4, 7, 8, 17, 64, 576, 1537}) {
        const auto x = randn(size_t(n), 3.0f), w = randn(static_cast<size_t>(n));
        std::vector<float> ref(static_cast<size_t>(n)), y(static_cast<size_t>(n));
        rmsnorm_v("v0_scalar", x.data(), w.data(), ref.data(), n, 1e-5f);
        for (const auto& v : runnable(list_versions("rmsnorm"))) {
            rmsnorm_v(v, x.data(), w.data(), y.data(), n, 1e-5f);
            check_close("rmsnorm " + v, "n=" + std::to_string(n), y.data(), ref.data(), size_t(n), 2e-6, 1e-7);
        }
        rmsnorm(x.data(), w.data(), y.data(), n, 1e-5f);  // the fast path = the active version
        std::vector<float> act(static_cast<size_t>(n));
        rmsnorm_v(active_version("rmsnorm"), x.data(), w.data(), act.data(), n, 1e-5f);
        check_equal("rmsnorm fast path", "n=" + std::to_string(n), y.data(), act.data(), size_t(n));
    }
}

static void check_softmax() {
    for (int64_t n : {1, 2, 5, 8, 13, 64, 257, 1000}) {
        auto x = randn(size_t(n), 4.0f);
        for (int64_t i = 3; i < n; i += 5) x[size_t(i)] = -std::numeric_limits<float>::infinity();  // a mask
        if (n >= 13) x[7] = 80.0f, x[11] = -120.0f;  // exp's clamps
        std::vector<float> ref = x;
        softmax_v("v0_scalar", ref.data(), n);
        for (const auto& v : runnable(list_versions("softmax"))) {
            std::vector<float> y = x;
            softmax_v(v, y.data(), n);
            check_close("softmax " + v, "n=" + std::to_string(n), y.data(), ref.data(), size_t(n), 2e-6, 1e-8);
            for (int64_t i = 3; i < n; i += 5)
                if (y[size_t(i)] != 0.0f) fail("softmax " + v + ": a -inf score is not exactly 0");
        }
        std::vector<float> y = x, act = x;
        softmax(y.data(), n);
        softmax_v(active_version("softmax"), act.data(), n);
        check_equal("softmax fast path", "n=" + std::to_string(n), y.data(), act.data(), size_t(n));
    }
}

static void check_swiglu() {
    for (int64_t n : {1, 3, 4, 9, 31, 1536, 1537}) {
        auto g = randn(size_t(n), 4.0f);
        const auto u = randn(static_cast<size_t>(n));
        if (n >= 9) g[0] = -100.0f, g[1] = 100.0f, g[2] = -87.5f, g[3] = 0.0f;  // exp's clamps and 0
        std::vector<float> ref(static_cast<size_t>(n)), y(static_cast<size_t>(n));
        swiglu_v("v0_scalar", g.data(), u.data(), ref.data(), n);
        for (const auto& v : runnable(list_versions("swiglu"))) {
            swiglu_v(v, g.data(), u.data(), y.data(), n);
            check_close("swiglu " + v, "n=" + std::to_string(n), y.data(), ref.data(), size_t(n), 2e-6, 1e-30);
        }
        std::vector<float> act(static_cast<size_t>(n));
        swiglu(g.data(), u.data(), y.data(), n);
        swiglu_v(active_version("swiglu"), g.data(), u.data(), act.data(), n);
        check_equal("swiglu fast path", "n=" + std::to_string(n), y.data(), act.data(), size_t(n));
    }
}

static void check_rope() {
    // (tokens, heads, head_dim, n_rot, first position, neox): whole and partial rotations, odd pair counts
    struct Case { int n_tok, n_head, head_dim, n_rot, pos; bool neox; };
    const Case cases[] = {{1, 9, 64, 64, 0, false}, {3, 9, 64, 64, 17, false}, {2, 3, 64, 64, 17, true},
                          {1, 1, 2, 2, 5, false},   {2, 2, 6, 6, 5, false},    {2, 2, 6, 6, 5, true},
                          {1, 4, 10, 10, 5, true},  {2, 3, 128, 128, 5000, false}, {2, 3, 128, 128, 5000, true},
                          {1, 1, 12, 12, 1, false}, {2, 4, 64, 32, 9, false}, {2, 4, 64, 22, 9, true}};
    for (const Case& c : cases) {
        const size_t n = size_t(c.n_tok) * c.n_head * c.head_dim;
        const auto x = randn(n);
        std::vector<int32_t> positions(size_t(c.n_tok));
        for (int t = 0; t < c.n_tok; t++) positions[size_t(t)] = c.pos + t;
        std::vector<float> cos(size_t(c.n_tok) * (c.n_rot / 2)), sin(cos.size());
        rope_angles(positions.data(), c.n_tok, c.n_rot, 100000.0f, cos.data(), sin.data());
        std::vector<float> ref = x;
        apply_rope_v("v0_scalar", ref.data(), c.n_tok, c.n_head, c.head_dim, cos.data(), sin.data(), c.n_rot, c.neox);
        const std::string detail = "tok=" + std::to_string(c.n_tok) + " heads=" + std::to_string(c.n_head) + " hd=" +
                                   std::to_string(c.head_dim) + " n_rot=" + std::to_string(c.n_rot) + " pos=" +
                                   std::to_string(c.pos) + (c.neox ? " neox" : "");
        for (const auto& v : runnable(list_versions("apply_rope"))) {
            std::vector<float> y = x;
            apply_rope_v(v, y.data(), c.n_tok, c.n_head, c.head_dim, cos.data(), sin.data(), c.n_rot, c.neox);
            check_close("apply_rope " + v, detail, y.data(), ref.data(), n, 1e-6, 1e-6);
        }
        std::vector<float> y = x, act = x;
        apply_rope(y.data(), c.n_tok, c.n_head, c.head_dim, cos.data(), sin.data(), c.n_rot, c.neox);
        apply_rope_v(active_version("apply_rope"), act.data(), c.n_tok, c.n_head, c.head_dim, cos.data(), sin.data(), c.n_rot, c.neox);
        check_equal("apply_rope fast path", detail, y.data(), act.data(), n);
    }
}

// ---- attention ----
static void check_attention(ThreadPool& pool) {
    struct Case { int n_tok, pos, n_head, n_head_kv, head_dim; };
    const Case cases[] = {{1, 0, 9, 3, 64}, {1, 40, 9, 3, 64}, {3, 5, 9, 3, 64}, {7, 0, 4, 4, 12}, {2, 9, 2, 1, 5}, {5, 3, 6, 2, 18}};
    for (const Case& c : cases) {
        const AttentionShape s{c.n_tok, c.pos, c.n_head, c.n_head_kv, c.head_dim};
        const int n_ctx = c.pos + c.n_tok + 3;  // 3 cache slots past the last position, filled with NaN:
        const size_t n_used = size_t(c.pos + c.n_tok) * c.n_head_kv * c.head_dim;  // no version may read them
        const auto q = randn(size_t(c.n_tok) * c.n_head * c.head_dim);
        auto k = randn(size_t(n_ctx) * c.n_head_kv * c.head_dim), v = randn(size_t(n_ctx) * c.n_head_kv * c.head_dim);
        for (size_t i = n_used; i < k.size(); i++) k[i] = v[i] = std::numeric_limits<float>::quiet_NaN();
        const size_t n_out = size_t(c.n_tok) * c.n_head * c.head_dim;
        std::vector<float> ref(n_out), y(n_out);
        attention_v("v0_scalar", q.data(), k.data(), v.data(), ref.data(), s, pool);
        // out is a convex combination of V rows: its scale is max |V| (softmax's rounding moves it by ~1e-6 of that)
        double vmax = 0.0;
        for (size_t i = 0; i < n_used; i++) vmax = std::max(vmax, double(std::fabs(v[i])));
        const std::vector<double> scale(n_out, vmax);
        const std::string detail = "tok=" + std::to_string(c.n_tok) + " pos=" + std::to_string(c.pos) + " heads=" +
                                   std::to_string(c.n_head) + "/" + std::to_string(c.n_head_kv) + " hd=" + std::to_string(c.head_dim);
        for (const auto& ver : runnable(attention_versions())) {
            attention_v(ver, q.data(), k.data(), v.data(), y.data(), s, pool);
            check_close("attention " + ver, detail, y.data(), ref.data(), n_out, 1e-6, 0.0, &scale);
        }
        std::vector<float> act(n_out);
        attention(q.data(), k.data(), v.data(), y.data(), s, pool);
        attention_v(attention_active(), q.data(), k.data(), v.data(), act.data(), s, pool);
        check_equal("attention fast path", detail, y.data(), act.data(), n_out);
        // a float16 cache (run.py's default): every version against v0 on the float32 copy of the same rounded values
        std::vector<uint16_t> k16(k.size()), v16(v.size());
        std::vector<float> k_rounded(k.size()), v_rounded(v.size());
        for (size_t i = 0; i < k.size(); i++) {
            k16[i] = fp32_to_fp16(k[i]), v16[i] = fp32_to_fp16(v[i]);
            k_rounded[i] = fp16_to_fp32(k16[i]), v_rounded[i] = fp16_to_fp32(v16[i]);
        }
        AttentionShape s16 = s;
        s16.kv_type = GGML_F16;
        attention_v("v0_scalar", q.data(), k_rounded.data(), v_rounded.data(), ref.data(), s, pool);
        for (const auto& ver : runnable(attention_versions())) {
            attention_v(ver, q.data(), k16.data(), v16.data(), y.data(), s16, pool);
            check_close("attention f16 cache " + ver, detail, y.data(), ref.data(), n_out, 1e-6, 0.0, &scale);
        }
    }
}

// ---- quant_matmul ----
// Random bytes for the integers, then sane half-float scales written over the scale fields (random bytes
// there would be inf/nan). Offsets of the fp16 fields in each block (matmul/blocks.h).
static std::vector<uint8_t> random_weights(int type, int64_t n_rows, int64_t n_cols) {
    const size_t n_bytes = row_bytes(type, n_cols) * size_t(n_rows);
    std::vector<uint8_t> w(n_bytes);
    std::uniform_int_distribution<int> byte(0, 255);
    for (auto& b : w) b = uint8_t(byte(g_rng));
    std::uniform_real_distribution<float> scale(-0.05f, 0.05f);
    auto put_half = [&](size_t at, float f) { const uint16_t h = fp32_to_fp16(f); std::memcpy(&w[at], &h, 2); };
    if (type == GGML_F32) {
        for (size_t i = 0; i < n_bytes; i += 4) { const float f = scale(g_rng); std::memcpy(&w[i], &f, 4); }
        return w;
    }
    if (type == GGML_F16) {
        for (size_t i = 0; i < n_bytes; i += 2) put_half(i, scale(g_rng));
        return w;
    }
    const QuantType* t = quant_type(type);
    std::vector<int> offsets;  // fp16 fields per block
    switch (type) {
        case GGML_Q4_0: case GGML_Q5_0: case GGML_Q8_0: offsets = {0}; break;
        case GGML_Q4_1: case GGML_Q5_1: case GGML_Q4_K: case GGML_Q5_K: offsets = {0, 2}; break;
        case GGML_Q2_K: offsets = {80, 82}; break;
        case GGML_Q3_K: offsets = {108}; break;
        case GGML_Q6_K: offsets = {208}; break;
        default: throw std::logic_error("random_weights: type not covered");
    }
    for (size_t b = 0; b < n_bytes; b += size_t(t->block_bytes))
        for (int off : offsets) put_half(b + size_t(off), scale(g_rng));
    return w;
}

// ---- the 16-bit decoding path (v11, v13-v18 NEON) ----
// The rounding the 16-bit versions promise, on every ISA (docs/20-kernels-matmul.md; the numpy quantize_i16 of
// tests/test_cpp_kernels_matmul.py, which the x86 kernels match bit for bit), in scalar float32: per block of
// 32, d = max|x| / 32767, q = round-half-even(x * (32767 / max|x|)) saturated to int16, s = d * sum(q).
static void quantize_i16_reference(const float* x, int64_t n, int16_t* q, float* d, float* s) {
    for (int64_t i = 0; i < n / 32; i++) {
        float amax = 0.0f;
        for (int j = 0; j < 32; j++) amax = std::max(amax, std::fabs(x[32 * i + j]));
        const float di = amax / 32767.0f, inv = amax > 0.0f ? 32767.0f / amax : 0.0f;
        int32_t sum = 0;
        for (int j = 0; j < 32; j++) {
            const int32_t v = int32_t(std::nearbyint(x[32 * i + j] * inv));  // the default rounding mode: ties to even
            sum += v;
            q[32 * i + j] = int16_t(std::min(32767, std::max(-32768, v)));
        }
        d[i] = di;
        s[i] = di * float(sum);
    }
}

// The types each NEON 16-bit step takes (its x86 namesake's): a bit per ggml type; 0 for other versions.
static uint32_t i16_types(const std::string& version) {
    const std::pair<const char*, uint32_t> steps[] = {
        {"v11_i16_decode_neon", 1u << GGML_Q4_0 | 1u << GGML_Q4_1 | 1u << GGML_Q8_0}, {"v13_i16_q5_neon", 1u << GGML_Q5_0 | 1u << GGML_Q5_1},
        {"v14_i16_q4_k_neon", 1u << GGML_Q4_K}, {"v15_i16_q6_k_neon", 1u << GGML_Q6_K}, {"v16_i16_q5_k_neon", 1u << GGML_Q5_K},
        {"v17_i16_q3_k_neon", 1u << GGML_Q3_K}, {"v18_i16_q2_k_neon", 1u << GGML_Q2_K}};
    uint32_t types = 0;
    for (const auto& [name, adds] : steps) {  // each step: the types of the steps before it, and its own
        types |= adds;
        if (version == name) return types;
    }
    return 0;
}

// quantize_act_i16_neon against the reference, bit for bit: random blocks over 12 decades, exact ties (a block
// whose max is 32767, so x * inv is x), zeros and -0, values far below the block's step, an all-zero block,
// blocks of one repeated value, and n = 32.
static void check_quantize_i16() {
    for (int64_t n : {32, 96, 576, 1536}) {
        std::vector<float> x = randn(size_t(n));
        for (int64_t i = 0; i < n; i++) x[size_t(i)] *= std::pow(10.0f, float(i % 13) - 6.0f);
        if (n >= 96) {
            const float ties[] = {32767.0f, 0.5f, -0.5f, 1.5f, 2.5f, -2.5f, 0.0f, -0.0f, 3.5f, 1e-30f, -32766.5f, 100.5f};
            for (int j = 0; j < 32; j++) x[size_t(32 + j)] = ties[j % 12] * (j >= 12 && j % 12 == 0 ? -1.0f : 1.0f);
            for (int j = 0; j < 32; j++) x[size_t(64 + j)] = 0.0f;  // d = 0
        }
        if (n >= 576) {
            for (int j = 0; j < 32; j++) x[size_t(96 + j)] = -0.3f;  // every q = -32767
            for (int j = 0; j < 32; j++) x[size_t(128 + j)] = 3e38f * (j % 2 ? 1.0f : -0.25f);
        }
        std::vector<int16_t> q(static_cast<size_t>(n)), q_ref(static_cast<size_t>(n));
        std::vector<float> d(size_t(n / 32)), s(size_t(n / 32)), d_ref(size_t(n / 32)), s_ref(size_t(n / 32));
        quantize_act_i16_neon(x.data(), n, q.data(), d.data(), s.data());
        quantize_i16_reference(x.data(), n, q_ref.data(), d_ref.data(), s_ref.data());
        Tally& t = g_tally["quantize_act_i16_neon (vs the reference, bits)"];
        t.cases++;
        if (std::memcmp(q.data(), q_ref.data(), q.size() * 2) || std::memcmp(d.data(), d_ref.data(), d.size() * 4) ||
            std::memcmp(s.data(), s_ref.data(), s.size() * 4)) {
            t.failures++;
            fail("quantize_act_i16_neon n=" + std::to_string(n) + ": not the reference's bits");
        }
    }
}

// --quantize-i16 IN OUT: IN holds n float32 (n a multiple of 32); OUT gets q [n] int16, d [n/32], s [n/32] float32.
static int run_quantize_i16(const char* in_path, const char* out_path) {
    std::FILE* f = std::fopen(in_path, "rb");
    if (!f) throw std::runtime_error(std::string("cannot open ") + in_path);
    std::vector<float> x;
    float chunk[1024];
    for (size_t got; (got = std::fread(chunk, 4, 1024, f)) > 0;) x.insert(x.end(), chunk, chunk + got);
    std::fclose(f);
    const int64_t n = int64_t(x.size());
    if (n == 0 || n % 32) throw std::runtime_error("--quantize-i16: need a multiple of 32 floats");
    std::vector<int16_t> q(static_cast<size_t>(n));
    std::vector<float> d(size_t(n / 32)), s(size_t(n / 32));
    quantize_act_i16_neon(x.data(), n, q.data(), d.data(), s.data());
    std::FILE* o = std::fopen(out_path, "wb");
    if (!o || std::fwrite(q.data(), 2, q.size(), o) != q.size() || std::fwrite(d.data(), 4, d.size(), o) != d.size() ||
        std::fwrite(s.data(), 4, s.size(), o) != s.size())
        throw std::runtime_error("cannot write the result");
    std::fclose(o);
    std::printf("QUANTIZE OK: %ld floats\n", long(n));
    return 0;
}

static void check_quant_matmul(ThreadPool& pool, int n_threads) {
    struct TypeCase { int type; std::vector<int64_t> cols; };
    const TypeCase types[] = {{GGML_Q4_0, {32, 96, 576}}, {GGML_Q4_1, {32, 96, 576}}, {GGML_Q8_0, {32, 160}},
                              {GGML_Q5_0, {64, 96}},      {GGML_Q5_1, {64, 96}},      {GGML_Q4_K, {256, 512}},
                              {GGML_Q6_K, {256, 512}},    {GGML_Q5_K, {256, 512}},    {GGML_Q3_K, {256, 512}},
                              {GGML_Q2_K, {256, 512}},    {GGML_F16, {7, 64}},        {GGML_F32, {5, 64}}};
    const std::vector<std::string> versions = runnable(list_versions("quant_matmul"));
    for (const TypeCase& tc : types) {
        const QuantType* t = quant_type(tc.type);
        const bool float_tiled = tc.type == GGML_Q4_0 || tc.type == GGML_Q4_1 || tc.type == GGML_Q8_0;
        for (int64_t n_cols : tc.cols)
            for (int64_t n_rows : {1, 7, 38})  // with 3 threads' tasks of 16 rows: groups of 4 and 1, 2, 3 rows left
                for (int64_t n_tok : {1, 2, 3, 8, 9, 17}) {
                    if (n_rows == 38 && n_tok > 3 && n_cols > 256) continue;  // keep the run short under qemu
                    const auto w = random_weights(tc.type, n_rows, n_cols);
                    const auto x = randn(size_t(n_tok * n_cols));
                    const size_t n_out = size_t(n_tok * n_rows);
                    std::vector<float> ref(n_out), ref_int8(n_out), y(n_out);
                    quant_matmul_v("v0_scalar_dequant", tc.type, w.data(), n_rows, n_cols, x.data(), n_tok, ref.data(), pool);
                    quant_matmul_v("v2_int8", tc.type, w.data(), n_rows, n_cols, x.data(), n_tok, ref_int8.data(), pool);
                    // scale of each output: sum_c |w_rc x_tc|, from the dequantized rows
                    std::vector<float> row(static_cast<size_t>(n_cols));
                    std::vector<double> scale(n_out);
                    const size_t rb = row_bytes(tc.type, n_cols);
                    for (int64_t r = 0; r < n_rows; r++) {
                        t->dequantize_row(w.data() + size_t(r) * rb, row.data(), n_cols);
                        for (int64_t k = 0; k < n_tok; k++) {
                            double s = 0.0;
                            for (int64_t c = 0; c < n_cols; c++) s += std::fabs(double(row[size_t(c)]) * x[size_t(k * n_cols + c)]);
                            scale[size_t(k * n_rows + r)] = s;
                        }
                    }
                    // one token on the 16-bit path: v0 on x as it is rounded, and the scale of each output from it
                    std::vector<float> ref_i16, x_i16;
                    std::vector<double> scale_i16;
                    if (n_tok == 1 && t->act != ActFormat::F32) {
                        std::vector<int16_t> q(static_cast<size_t>(n_cols));
                        std::vector<float> d(size_t(n_cols / 32)), s(size_t(n_cols / 32));
                        quantize_i16_reference(x.data(), n_cols, q.data(), d.data(), s.data());
                        for (int64_t c = 0; c < n_cols; c++) x_i16.push_back(d[size_t(c / 32)] * float(q[size_t(c)]));
                        ref_i16.resize(n_out), scale_i16.resize(n_out);
                        quant_matmul_v("v0_scalar_dequant", tc.type, w.data(), n_rows, n_cols, x_i16.data(), 1, ref_i16.data(), pool);
                        for (int64_t r = 0; r < n_rows; r++) {
                            t->dequantize_row(w.data() + size_t(r) * rb, row.data(), n_cols);
                            double s_r = 0.0;
                            for (int64_t c = 0; c < n_cols; c++) s_r += std::fabs(double(row[size_t(c)]) * x_i16[size_t(c)]);
                            scale_i16[size_t(r)] = s_r;
                        }
                    }
                    const std::string detail = std::string(t->name) + " rows=" + std::to_string(n_rows) + " cols=" + std::to_string(n_cols) +
                                               " tok=" + std::to_string(n_tok) + " threads=" + std::to_string(n_threads);
                    for (const auto& v : versions) {
                        quant_matmul_v(v, tc.type, w.data(), n_rows, n_cols, x.data(), n_tok, y.data(), pool);
                        const bool is_i16 = n_tok == 1 && (i16_types(v) >> tc.type & 1);
                        const bool runs_v6 = v.find("f32_tiled") != std::string::npos || (i16_types(v) && !is_i16);  // (the 16-bit steps' fallback)
                        const bool is_int8 = v.rfind("v2", 0) == 0 || v.find("dotprod") != std::string::npos || v.find("neon_int8") != std::string::npos ||
                                             (runs_v6 && !float_tiled && t->act != ActFormat::F32);
                        const std::string kernel = quant_matmul_kernel(v, tc.type, n_tok);  // the route the table reports
                        if ((kernel.find(" x int16 neon") != std::string::npos) != is_i16)
                            fail("quant_matmul_kernel(" + v + ", " + detail + ") = " + kernel);
                        if (is_i16)  // 16-bit activations: v0 on x rounded the same way, within float rounding
                            check_close("quant_matmul " + v + " (16-bit x)", detail, y.data(), ref_i16.data(), n_out, 2e-6, 1e-7, &scale_i16);
                        else if (v == "v2_int8" && t->act != ActFormat::F32)  // the int8 reference itself: int8 rounding from v0
                            check_close("quant_matmul " + v, detail, y.data(), ref.data(), n_out, 2e-2, 1e-6, &scale);
                        else if (v == "v0_scalar_dequant" || v == "v1_threads" || !is_int8 || t->act == ActFormat::F32)
                            check_close("quant_matmul " + v, detail, y.data(), ref.data(), n_out, 2e-6, 1e-7, &scale);
                        else  // int8 activations: exactly the scalar int8 kernels' result
                            check_equal("quant_matmul " + v + " (vs v2_int8)", detail, y.data(), ref_int8.data(), n_out);
                    }
                    std::vector<float> act(n_out);
                    quant_matmul(tc.type, w.data(), n_rows, n_cols, x.data(), n_tok, y.data(), pool);
                    quant_matmul_v(active_version("quant_matmul"), tc.type, w.data(), n_rows, n_cols, x.data(), n_tok, act.data(), pool);
                    check_equal("quant_matmul fast path", detail, y.data(), act.data(), n_out);
                    if (n_tok == 1 && n_cols % 32 == 0) {  // the model's decoding team: x prepared once, the fast path's rows
                        PreparedActivations prepared;
                        prepared.prepare("", x.data(), n_cols);
                        prepared.rows(tc.type, w.data(), n_rows, act.data(), pool);
                        check_equal("PreparedActivations (vs quant_matmul)", detail, act.data(), y.data(), n_out);
                    }
                }
    }
}

// ---- the registry: NEON versions present, dotprod detected as qemu's CPU offers it ----
static void check_registry(int expect_dotprod) {
    const CpuFeatures& f = cpu_features();
    std::printf("cpu: neon=%d dotprod=%d\n", int(f.neon), int(f.dotprod));
    if (!f.neon) fail("cpu_features: neon not detected on aarch64");
    if (expect_dotprod >= 0 && int(f.dotprod) != expect_dotprod)
        fail("cpu_features: dotprod=" + std::to_string(int(f.dotprod)) + ", expected " + std::to_string(expect_dotprod));
    const std::pair<const char*, const char*> expected[] = {
        {"rmsnorm", "v1_neon"}, {"softmax", "v1_neon"}, {"swiglu", "v1_neon"}, {"apply_rope", "v1_neon"},
        {"quant_matmul", "v6_f32_tiled_neon"}, {"quant_matmul", "v4_neon_dotprod"}, {"quant_matmul", "v3_neon_int8"},
        {"quant_matmul", "v11_i16_decode_neon"}, {"quant_matmul", "v13_i16_q5_neon"}, {"quant_matmul", "v14_i16_q4_k_neon"},
        {"quant_matmul", "v15_i16_q6_k_neon"}, {"quant_matmul", "v16_i16_q5_k_neon"}, {"quant_matmul", "v17_i16_q3_k_neon"},
        {"quant_matmul", "v18_i16_q2_k_neon"}};
    for (const auto& e : expected)
        if (!has_version(list_versions(e.first), e.second)) fail(std::string(e.first) + " has no version " + e.second);
    if (!has_version(attention_versions(), "v2_neon")) fail("attention has no version v2_neon");
    // the fast path: the NEON versions (for quant_matmul the last 16-bit step, whatever the dot products)
    const std::pair<std::string, std::string> active[] = {
        {active_version("rmsnorm"), "v1_neon"}, {active_version("softmax"), "v1_neon"}, {active_version("swiglu"), "v1_neon"},
        {active_version("apply_rope"), "v1_neon"}, {active_version("quant_matmul"), "v18_i16_q2_k_neon"}, {attention_active(), "v2_neon"}};
    for (const auto& a : active)
        if (a.first != a.second) fail("fast path is " + a.first + ", expected " + a.second);
    for (const auto& v : list_versions("quant_matmul"))
        if ((v.name == "v4_neon_dotprod" && v.available != f.dotprod) || (v.name == "v3_neon_int8" && !v.available))
            fail(v.name + ": wrong availability");
    if (!f.dotprod) {  // an unavailable version must refuse cleanly, not hit SIGILL
        bool threw = false;
        try {
            std::vector<uint8_t> w(row_bytes(GGML_Q4_0, 32));
            float x[32] = {0}, y[1];
            ThreadPool one(1);
            quant_matmul_v("v4_neon_dotprod", GGML_Q4_0, w.data(), 1, 32, x, 1, y, one);
        } catch (const std::invalid_argument&) {
            threw = true;
        }
        if (!threw) fail("v4_neon_dotprod ran on a CPU without dotprod");
    }
    const std::string fast = active_version("quant_matmul");
    std::printf("kernels, fast path, one token: q4_1 via %s; q2_k via %s; a prompt of q5_0 via %s\n",
                quant_matmul_kernel(fast, GGML_Q4_1, 1).c_str(), quant_matmul_kernel(fast, GGML_Q2_K, 1).c_str(),
                quant_matmul_kernel(fast, GGML_Q5_0, 9).c_str());
}

// ---- the whole model: a tiny random model dumped by tests/test_neon_qemu.py, its logits written back ----
// Manifest (text): "hparams n_vocab n_embd n_layer n_head n_head_kv head_dim n_ff n_rot rope_base rms_eps neox",
// "tokens n_prefill n t0 .. t{n-1}", then "tensor name ggml_type n_rows n_cols offset n_bytes" per tensor,
// the bytes in MANIFEST.bin. Output: [n, n_vocab] float32 logits, prefill rows then one decoded token per row.
static int run_model(const char* manifest_path, const char* out_path) {
    std::FILE* f = std::fopen(manifest_path, "r");
    if (!f) throw std::runtime_error(std::string("cannot open ") + manifest_path);
    LlamaHParams hp;
    int neox = 0, n_prefill = 0, n = 0;
    if (std::fscanf(f, " hparams %d %d %d %d %d %d %d %d %f %f %d", &hp.n_vocab, &hp.n_embd, &hp.n_layer, &hp.n_head,
                    &hp.n_head_kv, &hp.head_dim, &hp.n_ff, &hp.n_rot, &hp.rope_base, &hp.rms_eps, &neox) != 11 ||
        std::fscanf(f, " tokens %d %d", &n_prefill, &n) != 2 || n < 1 || n > 4096 || n_prefill < 1 || n_prefill > n)
        throw std::runtime_error("bad manifest header");
    hp.rope_neox = neox != 0;
    std::vector<int32_t> tokens(static_cast<size_t>(n));
    for (auto& t : tokens)
        if (std::fscanf(f, " %d", &t) != 1) throw std::runtime_error("bad token list");
    struct Entry { int type; int64_t rows, cols; size_t offset, bytes; };
    std::map<std::string, Entry> entries;
    char name[256];
    Entry e;
    while (std::fscanf(f, " tensor %255s %d %ld %ld %zu %zu", name, &e.type, &e.rows, &e.cols, &e.offset, &e.bytes) == 6) entries[name] = e;
    std::fclose(f);

    std::FILE* b = std::fopen((std::string(manifest_path) + ".bin").c_str(), "rb");
    if (!b) throw std::runtime_error("cannot open the tensor bytes");
    std::vector<uint8_t> blob;
    uint8_t chunk[65536];
    for (size_t got; (got = std::fread(chunk, 1, sizeof chunk, b)) > 0;) blob.insert(blob.end(), chunk, chunk + got);
    std::fclose(b);
    auto find = [&](const std::string& key) -> const Entry& {
        auto it = entries.find(key);
        if (it == entries.end()) throw std::runtime_error("manifest lacks " + key);
        if (it->second.offset + it->second.bytes > blob.size()) throw std::runtime_error(key + " past the end of the bytes");
        return it->second;
    };
    auto matrix = [&](const std::string& key) {
        const Entry& m = find(key);
        WeightRef w;
        w.ggml_type = m.type, w.n_rows = m.rows, w.n_cols = m.cols, w.data = blob.data() + m.offset;
        return w;
    };
    auto vec = [&](const std::string& key) { return reinterpret_cast<const float*>(blob.data() + find(key).offset); };

    ModelWeightRefs w;
    w.token_embd = matrix("token_embd.weight");
    w.output = entries.count("output.weight") ? matrix("output.weight") : w.token_embd;
    w.output_norm = vec("output_norm.weight");
    for (int i = 0; i < hp.n_layer; i++) {
        const std::string p = "blk." + std::to_string(i) + ".";
        LayerWeightRefs L;
        L.attn_norm = vec(p + "attn_norm.weight"), L.ffn_norm = vec(p + "ffn_norm.weight");
        L.wq = matrix(p + "attn_q.weight"), L.wk = matrix(p + "attn_k.weight"), L.wv = matrix(p + "attn_v.weight");
        L.wo = matrix(p + "attn_output.weight");
        L.w_gate = matrix(p + "ffn_gate.weight"), L.w_up = matrix(p + "ffn_up.weight"), L.w_down = matrix(p + "ffn_down.weight");
        w.layers.push_back(L);
    }
    LlamaModel model(hp, w, n + 1, 2);  // the fast path (NEON), 2 threads
    std::vector<float> logits(static_cast<size_t>(n) * size_t(hp.n_vocab));
    model.forward(tokens.data(), n_prefill, 0, logits.data(), false);  // the prompt in one batch
    for (int pos = n_prefill; pos < n; pos++)                           // then decoding, one token at a time
        model.forward(&tokens[size_t(pos)], 1, pos, logits.data() + size_t(pos) * size_t(hp.n_vocab), false);
    std::FILE* o = std::fopen(out_path, "wb");
    if (!o || std::fwrite(logits.data(), sizeof(float), logits.size(), o) != logits.size()) throw std::runtime_error("cannot write the logits");
    std::fclose(o);
    std::printf("MODEL OK: %d tokens (%d prefill), matmul %s, attention %s\n", n, n_prefill,
                active_version("quant_matmul").c_str(), attention_active().c_str());
    return 0;
}

int main(int argc, char** argv) {
    if (argc == 4 && std::strcmp(argv[1], "--quantize-i16") == 0) {
        try {
            return run_quantize_i16(argv[2], argv[3]);
        } catch (const std::exception& e) {
            std::printf("QUANTIZE FAILED: %s\n", e.what());
            return 1;
        }
    }
    if (argc == 4 && std::strcmp(argv[1], "--model") == 0) {
        try {
            return run_model(argv[2], argv[3]);
        } catch (const std::exception& e) {
            std::printf("MODEL FAILED: %s\n", e.what());
            return 1;
        }
    }
    int expect_dotprod = -1;
    for (int i = 1; i < argc; i++)
        if (std::strncmp(argv[i], "--expect-dotprod=", 17) == 0) expect_dotprod = std::atoi(argv[i] + 17);
    try {
        check_registry(expect_dotprod);
        check_rmsnorm();
        check_softmax();
        check_swiglu();
        check_rope();
        check_quantize_i16();
        for (int n_threads : {1, 3}) {
            ThreadPool pool(n_threads);
            check_attention(pool);
            check_quant_matmul(pool, n_threads);
        }
    } catch (const std::exception& e) {
        fail(std::string("exception: ") + e.what());
    }
    std::printf("%-52s %6s %6s %10s\n", "op version", "cases", "fails", "worst/tol");
    for (const auto& [key, t] : g_tally) std::printf("%-52s %6d %6d %10.3g\n", key.c_str(), t.cases, t.failures, t.worst);
    std::printf("%s: %d failure(s)\n", g_failures ? "NEON CHECK FAILED" : "NEON CHECK OK", g_failures);
    return g_failures ? 1 : 0;
}
