// kernels.h -- the C++ kernels of llama-lessons: the contract between the kernels and the model.
//
// Every op has numbered versions, llm.c style: v0 is a line-by-line scalar port of the numpy lesson, and
// each later version adds one idea (threads, AVX2, AVX-512/VNNI, int8 activations, tiling). All versions
// are kept, validated against the lessons by tests/test_cpp_kernels*.py and timed by tools/bench_kernels.py.
// The plain names below (rmsnorm, quant_matmul, ...) call the best version this CPU can run, chosen once
// at run time from the cpuid bits (cpu/features.h), never from the compiler flags.
#pragma once

#include <cstddef>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <vector>

#include "model/thread_pool.h"

namespace ll {

// ---- the fast path: best validated version for this CPU ----
void rmsnorm(const float* x, const float* weight, float* out, int64_t n, float eps);    // one row
// RoPE, as lesson 5 splits it: the angles once per position, then the rotation of every head with them.
// cos, sin: [n_pos, n_rot/2]; x: [n_tok, n_head, head_dim], rotated in place (channels past n_rot untouched)
// with the angles of its n_tok positions (cos, sin: [n_tok, n_rot/2]).
void rope_angles(const int32_t* positions, int64_t n_pos, int n_rot, float base, float* cos, float* sin);
void apply_rope(float* x, int64_t n_tok, int n_head, int head_dim, const float* cos, const float* sin, int n_rot, bool neox);
void swiglu(const float* gate, const float* up, float* out, int64_t n);                 // out = silu(gate) * up
void softmax(float* x, int64_t n);                                                      // in place, max-subtracted

// Bytes of one row of n_cols elements of a ggml type; throws std::invalid_argument for an unknown or
// unsupported type, or when n_cols is not a multiple of the type's block size.
size_t row_bytes(int ggml_type, int64_t n_cols);

// y[t, r] = sum_c W[r, c] * x[t, c]
// W: n_rows rows of raw ggml blocks, read in place (from the mmap: no copy, no dequantized duplicate).
// The fast path rounds x to 16 bits per block of 32 for quantized weights: one decoded token (x86: v11-v18
// with AVX2 or AVX-512 VNNI) and, with AVX-512 VNNI, prompts too (v19's integer GEMM; AVX2: float32, v10). aarch64 (v6 NEON) keeps x in float32 for
// Q4_0/Q4_1/Q8_0 and rounds it to 8 bits, like llama.cpp, for the other types (docs/20-kernels-matmul.md).
// The environment variable LLAMA_LESSONS_MATMUL=<version> overrides the choice (read once).
// x: [n_tok, n_cols] f32, y: [n_tok, n_rows] f32. Types: F32, F16, BF16, Q4_0, Q4_1, Q5_0, Q5_1, Q8_0,
// Q2_K..Q6_K (k-quants need n_cols % 256 == 0). Throws std::invalid_argument on a bad type or shape.
void quant_matmul(int ggml_type, const uint8_t* W, int64_t n_rows, int64_t n_cols, const float* x, int64_t n_tok,
                  float* y, ThreadPool& pool);

// ---- one token's activations, prepared once for many pieces of rows (the decoding team) ----
struct I16Path;  // a version's 16-bit decoding path: rounding, row kernel, prefetch (matmul/matmul.cpp)
// quant_matmul with n_tok = 1 rounds x to 16 bits (v11/v12) on every call. The decoding team hands a matrix's
// rows out in pieces (model/model.cpp), and for the 211 products of a token that would round x again for every
// piece: prepare rounds it once, then rows() computes any rows of any matrix of that many columns, inline
// on the calling thread. A type or version without a 16-bit kernel runs quant_matmul(_v) on the float x:
// rows() gives the very numbers quant_matmul gives, whichever pieces the rows come in.
class PreparedActivations {
public:
    // version: "" for the fast path, else a quant_matmul version (checked by the caller). x must outlive rows().
    void prepare(const std::string& version, const float* x, int64_t n);
    // y[0..n_rows) = W_rows x for n_rows rows of ggml_type starting at W_rows
    void rows(int ggml_type, const uint8_t* W_rows, int64_t n_rows, float* y, ThreadPool& pool) const;

private:
    std::string version_;
    const float* x_ = nullptr;
    int64_t n_ = 0;
    I16Path (*path_)(int ggml_type) = nullptr;  // the version's 16-bit path (matmul/matmul.cpp), or none
    std::vector<int16_t> q_;  // the 16-bit activations and their per-block (d, s), when there is a 16-bit path
    std::vector<float> d_, s_;
};

// ---- ggml type numbers (the GGUF file's tensor types) ----
enum GGMLTypeId : int {
    GGML_F32 = 0, GGML_F16 = 1, GGML_Q4_0 = 2, GGML_Q4_1 = 3, GGML_Q5_0 = 6, GGML_Q5_1 = 7, GGML_Q8_0 = 8,
    GGML_Q8_1 = 9, GGML_Q2_K = 10, GGML_Q3_K = 11, GGML_Q4_K = 12, GGML_Q5_K = 13, GGML_Q6_K = 14, GGML_Q8_K = 15,
    GGML_BF16 = 30,
};

// ---- every version, by name (for tests and benchmarks) ----
// Ops: "rmsnorm", "apply_rope", "swiglu", "softmax", "quant_matmul". A version is listed only if this build
// has it; `available` says whether this CPU can run it. Names look like "v0_scalar", "v1_avx2".
struct VersionInfo {
    std::string name;
    std::string idea;   // the one idea this version adds, in a few words
    bool available;
};
std::vector<std::string> kernel_ops();
std::vector<VersionInfo> list_versions(const std::string& op);
std::string active_version(const std::string& op);   // the version the fast path uses

// Versioned entry points: throw std::invalid_argument for an unknown version or one this CPU cannot run.
void rmsnorm_v(const std::string& version, const float* x, const float* weight, float* out, int64_t n, float eps);
void apply_rope_v(const std::string& version, float* x, int64_t n_tok, int n_head, int head_dim, const float* cos,
                  const float* sin, int n_rot, bool neox);
void swiglu_v(const std::string& version, const float* gate, const float* up, float* out, int64_t n);
void softmax_v(const std::string& version, float* x, int64_t n);
void quant_matmul_v(const std::string& version, int ggml_type, const uint8_t* W, int64_t n_rows, int64_t n_cols,
                    const float* x, int64_t n_tok, float* y, ThreadPool& pool);
// The kernel a quant_matmul version really runs for a type and a token count (a version hands the types and
// token counts it has no kernel for to an earlier one, as its table row says): e.g. "q4_1 x q8_1 avx2".
std::string quant_matmul_kernel(const std::string& version, int ggml_type, int64_t n_tok = 1);

// ---- internals shared by the kernel files (not needed by the model) ----
namespace detail {

// One numbered version of an op: its function and whether this CPU can run it.
template <class Fn>
struct OpVersion {
    const char* name;
    const char* idea;
    Fn fn;
    bool (*available)();
};

bool cpu_any();         // always true: scalar code
bool cpu_avx2();        // AVX2 + FMA + F16C
bool cpu_avx512();      // AVX-512 F/BW/VL
bool cpu_avx512vnni();  // AVX-512 F/BW/VL + VNNI

// The helpers below take any table whose rows have name, idea and available() (OpVersion, or a richer row
// like quant_matmul's MatmulVersion).
template <class V, size_t N>
const V& find_version(const V (&table)[N], const std::string& name, const char* op) {
    for (const auto& v : table)
        if (name == v.name) {
            if (!v.available()) throw std::invalid_argument(std::string(op) + " version " + name + " needs CPU features this machine lacks");
            return v;
        }
    throw std::invalid_argument(std::string("unknown ") + op + " version: " + name);
}

template <class V, size_t N>
const V& best_version(const V (&table)[N]) {
    const V* best = &table[0];
    for (const auto& v : table)
        if (v.available()) best = &v;  // tables are ordered slowest to fastest
    return *best;
}

template <class V, size_t N>
std::vector<VersionInfo> describe(const V (&table)[N]) {
    std::vector<VersionInfo> out;
    for (const auto& v : table) out.push_back({v.name, v.idea, v.available()});
    return out;
}

std::vector<VersionInfo> rmsnorm_versions();
std::vector<VersionInfo> apply_rope_versions();
std::vector<VersionInfo> swiglu_versions();
std::vector<VersionInfo> softmax_versions();
std::vector<VersionInfo> quant_matmul_versions();
std::string rmsnorm_active();
std::string apply_rope_active();
std::string swiglu_active();
std::string softmax_active();
std::string quant_matmul_active();

}  // namespace detail
}  // namespace ll
