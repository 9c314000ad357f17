// model/model.h -- the whole LLaMA forward pass in C++: the fast twin of lessons/l08_transformer.py.
//
// The model owns nothing big: every weight matrix is a pointer into the GGUF file's mmap (raw ggml
// blocks, read in place by quant_matmul; no copy, no dequantized duplicate). What it does own is the
// KV cache, one thread pool, and a few scratch buffers sized for one micro-batch of tokens.
//
// KV cache: [n_layer][n_head_kv][n_ctx][head_dim] for K and the same for V, float32 or float16 (kv_type).
// That is the numpy lesson's layout: one KV head's keys (or values) for all positions are one contiguous
// block, which attention reads from front to back. For SmolLM2-135M (30 layers, 3 KV heads of 64) the
// cache is small: 46 KB per position for K and V together in float32, 23.6 MB at n_ctx 512.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "kernels.h"
#include "matmul/blocks.h"  // fp16_to_fp32, for kv_value
#include "model/thread_pool.h"
#include "model/work_stretches.h"

namespace ll {

// ---- hyper-parameters (a copy of lessons.l08b_config.LlamaConfig's numbers) ----
struct LlamaHParams {
    int n_vocab = 0, n_embd = 0, n_layer = 0, n_head = 0, n_head_kv = 0, head_dim = 0, n_ff = 0;
    int n_rot = 0;  // channels RoPE rotates per head (0 = all of head_dim)
    float rope_base = 10000.0f, rms_eps = 1e-5f;
    bool rope_neox = false;
};

// A weight matrix read in place: n_rows rows of n_cols elements, each row row_bytes(type, n_cols) raw bytes.
struct WeightRef {
    int ggml_type = GGML_F32;
    const uint8_t* data = nullptr;
    int64_t n_rows = 0, n_cols = 0;
};

struct LayerWeightRefs {
    const float* attn_norm = nullptr;     // [n_embd]
    WeightRef wq, wk, wv, wo;             // [n_head*hd, n_embd], [n_head_kv*hd, n_embd] x2, [n_embd, n_head*hd]
    const float* ffn_norm = nullptr;      // [n_embd]
    WeightRef w_gate, w_up, w_down;       // [n_ff, n_embd] x2, [n_embd, n_ff]
};

struct ModelWeightRefs {
    WeightRef token_embd;                 // [n_vocab, n_embd]
    std::vector<LayerWeightRefs> layers;  // n_layer of them
    const float* output_norm = nullptr;   // [n_embd]
    WeightRef output;                     // [n_vocab, n_embd]; == token_embd when the embeddings are tied
};

// ---- attention (attention/attention.cpp): causal grouped-query attention against the KV cache ----
// q: [n_tok, n_head, head_dim] for positions pos..pos+n_tok-1 (RoPE applied).
// k_cache, v_cache: one layer's cache, [n_head_kv][n_ctx][head_dim]; positions 0..pos+n_tok-1 filled.
// out: [n_tok, n_head * head_dim]. Query head h reads KV head h / (n_head / n_head_kv).
// head_begin/head_end: only query heads [head_begin, head_end) are computed (0, 0 = all): a decoding
// team gives each thread its own heads.
struct AttentionShape {
    int n_tok, pos, n_head, n_head_kv, head_dim;
    int head_begin = 0, head_end = 0;
    int kv_type = GGML_F32;  // what the cache holds: GGML_F32, or GGML_F16 (float16 bits, widened on load)
    int n_ctx = 0;           // positions the cache has room for per KV head (0: exactly pos + n_tok)
    int first_head() const { return head_end > 0 ? head_begin : 0; }
    // values from one KV head's block to the next: KV head g, position j is at g * head_stride() + j * head_dim
    int64_t head_stride() const { return int64_t(n_ctx > 0 ? n_ctx : pos + n_tok) * head_dim; }
    int n_heads_computed() const { return head_end > 0 ? head_end - head_begin : n_head; }
};
// One cached value as a float: float32 as it is, float16 bits widened (exactly).
inline float kv_value(const float* p, int64_t i) { return p[i]; }
inline float kv_value(const uint16_t* p, int64_t i) { return fp16_to_fp32(p[i]); }
// Calls fn(k, v) with the caches typed as s.kv_type says: const float*, or const uint16_t* (float16 bits).
// Every attention version is a template over that type; this is the one place that picks it.
template <class Fn>
void with_kv_type(const AttentionShape& s, const void* k, const void* v, Fn&& fn) {
    if (s.kv_type == GGML_F16) return fn(static_cast<const uint16_t*>(k), static_cast<const uint16_t*>(v));
    fn(static_cast<const float*>(k), static_cast<const float*>(v));
}
// k_cache, v_cache: float32 or float16 values, as s.kv_type says.
void attention(const float* q, const void* k_cache, const void* v_cache, float* out, const AttentionShape& s,
               ThreadPool& pool);
void attention_v(const std::string& version, const float* q, const void* k_cache, const void* v_cache, float* out,
                 const AttentionShape& s, ThreadPool& pool);
std::vector<VersionInfo> attention_versions();
std::string attention_active();

// ---- the model ----
// What every backend's forward() refuses (one line each): no tokens, positions past n_ctx, ids outside the vocabulary.
void check_forward_args(const int32_t* tokens, int n, int pos, int n_ctx, int n_vocab);

class LlamaModel {
public:
    // Checks every shape and size (throws std::invalid_argument with a one-line message).
    // kv_type: what the KV cache stores, GGML_F32 or GGML_F16 (run.py's default, as llama.cpp's: half the
    // memory, and half the bytes attention reads per token, for a rounding of 2^-11 relative to each value).
    LlamaModel(const LlamaHParams& hp, ModelWeightRefs weights, int n_ctx, int n_threads, int kv_type = GGML_F32);

    // Decoding (one token) runs the whole token as one team of threads (ThreadPool::run_team) that split
    // every step by thread index and meet at barriers: same numbers, one wake-up per token instead of
    // five per layer. Off: the plain one-parallel-loop-per-product path, kept for tests and benchmarks.
    void set_fuse_decode(bool on) { fuse_decode_ = on; }
    bool fuse_decode() const { return fuse_decode_; }

    // Which quant_matmul does the products: "" = the kernels' fast path (float32 activations: the F32
    // model's arithmetic), or a named version, e.g. an int8 one ("v5_pairs": activations rounded to 8 bits
    // like llama.cpp). Throws std::invalid_argument for a version this build or CPU does not have.
    void set_matmul_version(const std::string& version);
    const std::string& matmul_version() const { return matmul_version_; }

    // Evaluates tokens[0..n) at positions pos..pos+n-1 and appends their K/V to the cache.
    // logits: [n, n_vocab], or [1, n_vocab] (the last token's only) when last_only.
    void forward(const int32_t* tokens, int n, int pos, float* logits, bool last_only);
    void reset();  // forget the cache

    // Partial offload's CPU half (-ngl, backend/backend.h): embed tokens[0..n) and run only the first n_layers
    // layers, appending their K/V to the cache, and hand back the residual stream hidden [n, n_embd] instead of
    // logits. A GPU backend runs the remaining layers and the output from there.
    void forward_hidden(const int32_t* tokens, int n, int pos, int n_layers, float* hidden);

    const LlamaHParams& hparams() const { return hp_; }
    int n_ctx() const { return n_ctx_; }
    int n_threads() const { return pool_.n_threads(); }
    size_t kv_cache_bytes() const { return k_cache_.size() + v_cache_.size(); }
    int kv_type() const { return kv_type_; }

    // The prompt is fed through in micro-batches of at most this many tokens (bounds the scratch memory).
    static constexpr int kMaxBatch = 256;

private:
    void forward_batch(const int32_t* tokens, int n, int pos, float* logits, bool last_only);
    void embed(const int32_t* tokens, int n, float* x);
    void matmul(const WeightRef& w, const float* x, int n_tok, float* y);
    void decode_one_token(int32_t token, int pos, float* logits);
    void decode_team_member(int32_t token, int pos, float* logits, int thread, int n_threads);
    // where KV head g's key (value) at position pos lives: layer, then head, then position
    uint8_t* k_at(int layer, int g = 0, int pos = 0) { return k_cache_.data() + kv_offset(layer, g, pos); }
    uint8_t* v_at(int layer, int g = 0, int pos = 0) { return v_cache_.data() + kv_offset(layer, g, pos); }
    size_t kv_offset(int layer, int g, int pos) const {
        return ((size_t(layer) * hp_.n_head_kv + g) * n_ctx_ + pos) * hp_.head_dim * kv_bytes_;
    }
    void store_kv(uint8_t* dst, const float* src, int64_t n) const;  // n values into the cache: copied, or rounded to float16

    LlamaHParams hp_;
    ModelWeightRefs w_;
    int n_run_layers_ = 0;          // forward_hidden: layers to run, and where the residual stream goes
    float* hidden_out_ = nullptr;   // (nullptr: a normal forward through every layer to the logits)
    int n_ctx_;
    bool fuse_decode_ = true;
    std::string matmul_version_;  // a quant_matmul version to call instead of the fast path ("" = none)
    int64_t q_dim_, kv_dim_;
    ThreadPool pool_;
    int kv_type_;
    size_t kv_bytes_;                         // bytes per cached value: 4 (float32) or 2 (float16)
    std::vector<uint8_t> k_cache_, v_cache_;  // [n_layer][n_head_kv][n_ctx][head_dim] values of kv_type_
    // scratch for one micro-batch of up to kMaxBatch tokens
    std::vector<float> x_, xn_, q_, k_, v_, att_, gate_, up_, ffn_out_, logits_tmp_;
    std::vector<float> team_x_, team_xn_;  // decoding: each thread's own copy of the residual stream and its norm
    std::vector<PreparedActivations> team_in_;       // decoding: each thread's rounded input of the current product
    struct DecodeStep { int64_t n, align; };  // decoding: a step's units (heads or rows), handed out in whole aligns
    std::vector<DecodeStep> decode_steps_;    // Q/K/V heads, W_o rows, gate/up rows, down rows per layer; the output rows
    std::vector<Stretch> stretches_;          // [step][thread]: who still has which of the step's units
    std::vector<float> rope_cos_, rope_sin_;  // decoding: the token's RoPE angles, [n_rot / 2] each
};

}  // namespace ll
