// model/model.cpp -- the LLaMA forward pass, read top to bottom like lessons/l08_transformer.py.
//
//     x = token_embd[tokens]                                    [n, n_embd]   (only the rows we need, dequantized)
//     for each layer:
//         h = rmsnorm(x) * attn_norm
//         q, k, v = h W_q^T, h W_k^T, h W_v^T                   RoPE on q and k; k, v appended to the cache
//         x += attention(q, K cache, V cache) W_o^T
//         h = rmsnorm(x) * ffn_norm
//         x += (silu(h W_gate^T) * h W_up^T) W_down^T
//     logits = (rmsnorm(x) * output_norm) W_out^T               [n, n_vocab]  (or the last row only)
//
// Prefill and decode are the same code: a prompt goes through each layer as an [n, n_embd] matrix
// (quant_matmul with n_tok = n reads each weight block once for many tokens), a decoded token is n = 1.
// All parallelism lives in one thread pool (the -t flag), used by quant_matmul and attention.
#include "model/model.h"

#include <algorithm>
#include <cstring>
#include <stdexcept>
#include <string>

#include "cpu/features.h"
#include "matmul/blocks.h"  // quant_type(): the per-type row dequantizer, for the embedding lookup; fp32_to_fp16
#if defined(__x86_64__) || defined(_M_X64)
#include <immintrin.h>
#endif

namespace ll {

// ---- construction: check everything once, so forward() can trust its inputs ----
static void check_weight(const WeightRef& w, int64_t n_rows, int64_t n_cols, const char* what) {
    if (!w.data) throw std::invalid_argument(std::string("missing weight ") + what);
    if (w.n_rows != n_rows || w.n_cols != n_cols)
        throw std::invalid_argument(std::string("weight ") + what + " has shape [" + std::to_string(w.n_rows) + ", " +
                                    std::to_string(w.n_cols) + "], expected [" + std::to_string(n_rows) + ", " +
                                    std::to_string(n_cols) + "]");
    row_bytes(w.ggml_type, n_cols);  // throws std::invalid_argument for a type or shape quant_matmul cannot do
}

LlamaModel::LlamaModel(const LlamaHParams& hp, ModelWeightRefs weights, int n_ctx, int n_threads, int kv_type)
    : hp_(hp), w_(std::move(weights)), n_ctx_(n_ctx), pool_(std::max(1, n_threads)), kv_type_(kv_type),
      kv_bytes_(kv_type == GGML_F16 ? 2 : 4) {
    if (kv_type != GGML_F32 && kv_type != GGML_F16) throw std::invalid_argument("the KV cache type must be f32 or f16");
    if (hp.n_vocab < 1 || hp.n_embd < 1 || hp.n_layer < 1 || hp.n_head < 1 || hp.n_head_kv < 1 || hp.head_dim < 1 ||
        hp.n_ff < 1 || hp.n_head % hp.n_head_kv)
        throw std::invalid_argument("bad model hyper-parameters");
    if (hp.n_rot < 0 || hp.n_rot > hp.head_dim || hp.n_rot % 2) throw std::invalid_argument("bad rope dimension count");
    if (n_ctx < 1) throw std::invalid_argument("n_ctx must be at least 1");
    if (n_threads < 1) throw std::invalid_argument("n_threads must be at least 1");
    if (int(w_.layers.size()) != hp.n_layer) throw std::invalid_argument("number of layers does not match n_layer");
    q_dim_ = int64_t(hp.n_head) * hp.head_dim;
    kv_dim_ = int64_t(hp.n_head_kv) * hp.head_dim;
    check_weight(w_.token_embd, hp.n_vocab, hp.n_embd, "token_embd");
    const QuantType* qt = quant_type(w_.token_embd.ggml_type);
    if (!qt || !qt->dequantize_row) throw std::invalid_argument("token_embd: unsupported ggml type");
    check_weight(w_.output, hp.n_vocab, hp.n_embd, "output");
    if (!w_.output_norm) throw std::invalid_argument("missing weight output_norm");
    for (const auto& L : w_.layers) {
        if (!L.attn_norm || !L.ffn_norm) throw std::invalid_argument("missing norm weight");
        check_weight(L.wq, q_dim_, hp.n_embd, "attn_q");
        check_weight(L.wk, kv_dim_, hp.n_embd, "attn_k");
        check_weight(L.wv, kv_dim_, hp.n_embd, "attn_v");
        check_weight(L.wo, hp.n_embd, q_dim_, "attn_output");
        check_weight(L.w_gate, hp.n_ff, hp.n_embd, "ffn_gate");
        check_weight(L.w_up, hp.n_ff, hp.n_embd, "ffn_up");
        check_weight(L.w_down, hp.n_embd, hp.n_ff, "ffn_down");
    }
    const size_t cache = size_t(hp.n_layer) * size_t(n_ctx) * size_t(kv_dim_);
    k_cache_.assign(cache * kv_bytes_, 0);  // float32 0 and float16 0 are both all-zero bytes
    v_cache_.assign(cache * kv_bytes_, 0);
    const size_t B = kMaxBatch;
    x_.resize(B * hp.n_embd);
    xn_.resize(B * hp.n_embd);
    q_.resize(B * q_dim_);
    k_.resize(B * kv_dim_);
    v_.resize(B * kv_dim_);
    att_.resize(B * q_dim_);
    gate_.resize(B * hp.n_ff);
    up_.resize(B * hp.n_ff);
    ffn_out_.resize(B * hp.n_embd);
    team_x_.resize(size_t(pool_.n_threads()) * hp.n_embd);
    team_xn_.resize(size_t(pool_.n_threads()) * hp.n_embd);
    team_in_.resize(size_t(pool_.n_threads()));
    for (int l = 0; l < hp.n_layer; l++) {  // the decoding steps that hand out pieces, in order
        decode_steps_.push_back({hp.n_head + 2 * hp.n_head_kv, 1});  // Q, K and V heads (a head's rows stay together)
        decode_steps_.push_back({hp.n_embd, 16});                    // W_o rows
        decode_steps_.push_back({hp.n_ff, 16});                      // gate and up rows
        decode_steps_.push_back({hp.n_embd, 16});                    // down rows
    }
    decode_steps_.push_back({hp.n_vocab, 64});  // output rows
    stretches_ = std::vector<Stretch>(decode_steps_.size() * size_t(pool_.n_threads()));
}

void LlamaModel::reset() {
    // Entries past the current position are never read (attention is causal), but a clean slate is cheap
    // and makes a reset model bit-identical to a fresh one.
    std::fill(k_cache_.begin(), k_cache_.end(), 0);
    std::fill(v_cache_.begin(), v_cache_.end(), 0);
}

// float32 -> float16, round to nearest even: 8 at a time with F16C (every AVX2 CPU has it), else one by one.
#if defined(__x86_64__) || defined(_M_X64)
__attribute__((target("avx2,f16c"))) static void fp32_to_fp16_row_f16c(const float* x, uint16_t* h, int64_t n) {
    int64_t i = 0;
    for (; i + 8 <= n; i += 8)
        _mm_storeu_si128(reinterpret_cast<__m128i*>(h + i), _mm256_cvtps_ph(_mm256_loadu_ps(x + i), _MM_FROUND_TO_NEAREST_INT));
    for (; i < n; i++) h[i] = fp32_to_fp16(x[i]);
}
#endif
static void fp32_to_fp16_row(const float* x, uint16_t* h, int64_t n) {
#if defined(__x86_64__) || defined(_M_X64)
    static const bool f16c = cpu_features().has_avx2();
    if (f16c) return fp32_to_fp16_row_f16c(x, h, n);
#endif
    for (int64_t i = 0; i < n; i++) h[i] = fp32_to_fp16(x[i]);
}

// --8<-- [start:store_kv]
// New keys and values into the cache: as they are, or rounded to the nearest float16 (the rounding numpy's
// astype(np.float16) does, so the lesson's float16 cache holds the very same values).
void LlamaModel::store_kv(uint8_t* dst, const float* src, int64_t n) const {
    if (kv_type_ == GGML_F32) return (void)std::memcpy(dst, src, sizeof(float) * size_t(n));
    fp32_to_fp16_row(src, reinterpret_cast<uint16_t*>(dst), n);
}
// --8<-- [end:store_kv]

// ---- the pieces ----
// --8<-- [start:embed]
// The embedding table stays quantized in the mmap: dequantize just the n rows these tokens select.
void LlamaModel::embed(const int32_t* tokens, int n, float* x) {
    const WeightRef& e = w_.token_embd;
    const size_t rb = row_bytes(e.ggml_type, e.n_cols);
    const DequantRowFn dequantize_row = quant_type(e.ggml_type)->dequantize_row;
    for (int t = 0; t < n; t++) dequantize_row(e.data + size_t(tokens[t]) * rb, x + int64_t(t) * hp_.n_embd, hp_.n_embd);
}
// --8<-- [end:embed]

// quant_matmul's fast path, or the version the model was asked to use.
static void matmul_any(const std::string& version, const WeightRef& w, int64_t r0, int64_t r1, const float* x, int n_tok,
                       float* y, ThreadPool& pool) {
    const uint8_t* rows = w.data + r0 * row_bytes(w.ggml_type, w.n_cols);
    if (version.empty())
        quant_matmul(w.ggml_type, rows, r1 - r0, w.n_cols, x, n_tok, y, pool);
    else
        quant_matmul_v(version, w.ggml_type, rows, r1 - r0, w.n_cols, x, n_tok, y, pool);
}

void LlamaModel::matmul(const WeightRef& w, const float* x, int n_tok, float* y) {
    matmul_any(matmul_version_, w, 0, w.n_rows, x, n_tok, y, pool_);  // [n_tok, n_cols] -> [n_tok, n_rows]
}

void LlamaModel::set_matmul_version(const std::string& version) {
    if (!version.empty()) {
        bool ok = false;
        for (const auto& v : list_versions("quant_matmul")) ok |= v.name == version && v.available;
        if (!ok) throw std::invalid_argument("quant_matmul version " + version + " is not available on this CPU or build");
    }
    matmul_version_ = version;
}

static void rmsnorm_rows(const float* x, const float* weight, float* out, int n, int64_t dim, float eps) {
    for (int t = 0; t < n; t++) rmsnorm(x + t * dim, weight, out + t * dim, dim, eps);
}

static void add_rows(float* x, const float* y, int64_t n) {
    for (int64_t i = 0; i < n; i++) x[i] += y[i];  // the residual stream (the compiler vectorizes this)
}

// A prompt's element-wise steps (norms, RoPE, SwiGLU, residual adds) with its tokens split over the pool;
// fn(t0, t1) does tokens [t0, t1). One thread used to do them all: splitting them made a 256-token prompt
// on the 2-core AMD EPYC 1.7% faster (16 alternating runs in one process). A few tokens are not worth
// waking the pool for.
static void per_token(ThreadPool& pool, int n, const std::function<void(int64_t, int64_t)>& fn) {
    if (n < 16) return fn(0, n);
    pool.parallel_for(n, fn);
}

// ---- decoding one token: one team of threads, barriers between the steps ----
// A token's matrix-vector products are short (tens of microseconds), so a parallel loop per product
// (five per layer) pays a wake-up and a wait five times per layer. Decoding instead runs the whole token
// as ONE team (ThreadPool::run_team): every thread walks all layers, does its part of each step and
// waits at a barrier only where the next step needs the others' results: 5 barriers per layer.
// Each thread keeps its own copy of the residual stream x and of its norm: adding and normalizing 576
// floats twice costs less than a barrier.
//
// Who does which rows is decided as the step runs, not fixed in advance: each thread owns a stretch of every
// step's rows (or heads), works through it from the front, and a thread done with its own takes the back half
// of another's (model/work_stretches.h). So a thread whose core runs slower (on a shared machine a busy neighbour
// can take a third of a core for seconds) ends up with fewer rows instead of keeping the others waiting at
// the barrier. Measured on a 2-vCPU AMD EPYC VM with rdtsc inside the team, a fixed half each: one
// thread's share of the feed-forward took 5.7 Mcycles per token and the other's 9.1.

void LlamaModel::decode_one_token(int32_t token, int pos, float* logits) {
    const int n_rot = hp_.n_rot ? hp_.n_rot : hp_.head_dim;
    rope_cos_.resize(size_t(n_rot / 2)), rope_sin_.resize(size_t(n_rot / 2));
    rope_angles(&pos, 1, n_rot, hp_.rope_base, rope_cos_.data(), rope_sin_.data());  // this position's angles, all layers
    const int nt = pool_.n_threads();
    for (size_t step = 0; step < decode_steps_.size(); step++)  // run_team publishes
        reset_stretches(&stretches_[step * nt], nt, decode_steps_[step].n, decode_steps_[step].align);
    pool_.run_team([&](int thread, int n_threads) { decode_team_member(token, pos, logits, thread, n_threads); });
}

// --8<-- [start:decode_team_member]
void LlamaModel::decode_team_member(int32_t token, int pos, float* logits, int t, int nt) {
    const LlamaHParams& c = hp_;
    const int64_t d = c.n_embd, hd = c.head_dim;
    const int n_rot = c.n_rot ? c.n_rot : c.head_dim;
    const float *cos = rope_cos_.data(), *sin = rope_sin_.data();
    float* x = team_x_.data() + t * d;    // this thread's residual stream  [d]
    float* xn = team_xn_.data() + t * d;  // and its normalized copy        [d]
    PreparedActivations& in = team_in_[size_t(t)];  // the input of this thread's current product, rounded once
    float *q = q_.data(), *k = k_.data(), *v = v_.data(), *att = att_.data(), *gate = gate_.data(), *up = up_.data();
    float* tmp = ffn_out_.data();
    Stretch* stretches = stretches_.data();          // the current step's, one per thread
    const DecodeStep* step = decode_steps_.data();   // the current step
    auto next = [&](int64_t* b, int64_t* e) { return next_piece(stretches, nt, t, step->align, b, e); };  // units [b, e)
    auto step_done = [&] { stretches += nt, step++; };
    // rows [b, e) of w times the prepared input, into y[b..e)
    auto rows = [&](const WeightRef& w, int64_t b, int64_t e, float* y) {
        in.rows(w.ggml_type, w.data + b * row_bytes(w.ggml_type, w.n_cols), e - b, y + b, pool_);
    };
    int64_t b, e;
    // attention's heads are not handed out in pieces: a piece that split a GQA group would read its K and V twice
    static_share(c.n_head, t, nt, 1, &b, &e);
    const AttentionShape shape{1, pos, c.n_head, c.n_head_kv, c.head_dim, int(b), int(e), kv_type_, n_ctx_};  // this thread's query heads
    embed(&token, 1, x);  // [d]
    const int n_run = hidden_out_ ? n_run_layers_ : c.n_layer;  // forward_hidden stops early
    for (int l = 0; l < n_run; l++) {
        const LayerWeightRefs& L = w_.layers[l];
        // ---- Q, K, V: pieces of the n_head + 2 n_head_kv output heads, RoPE'd, K and V cached ----
        rmsnorm(x, L.attn_norm, xn, d, c.rms_eps);
        in.prepare(matmul_version_, xn, d);
        const int64_t q_end = c.n_head, k_end = c.n_head + c.n_head_kv;
        while (next(&b, &e)) {  // heads [b, e) of the n_head + 2 n_head_kv
            if (b < q_end) {  // query heads [b, min(e, q_end))
                const int64_t h1 = std::min(e, q_end);
                rows(L.wq, b * hd, h1 * hd, q);
                apply_rope(q + b * hd, 1, int(h1 - b), c.head_dim, cos, sin, n_rot, c.rope_neox);
            }
            if (b < k_end && e > q_end) {  // key heads
                const int64_t h0 = std::max(b, q_end) - q_end, h1 = std::min(e, k_end) - q_end;
                rows(L.wk, h0 * hd, h1 * hd, k);
                apply_rope(k + h0 * hd, 1, int(h1 - h0), c.head_dim, cos, sin, n_rot, c.rope_neox);
                for (int64_t g = h0; g < h1; g++) store_kv(k_at(l, int(g), pos), k + g * hd, hd);
            }
            if (e > k_end) {  // value heads
                const int64_t h0 = std::max(b, k_end) - k_end, h1 = e - k_end;
                rows(L.wv, h0 * hd, h1 * hd, v);
                for (int64_t g = h0; g < h1; g++) store_kv(v_at(l, int(g), pos), v + g * hd, hd);
            }
        }
        step_done();
        pool_.barrier();
        // ---- attention: this thread's query heads ----
        if (shape.head_begin < shape.head_end) attention(q, k_at(l), v_at(l), att, shape, pool_);  // [n_head*hd]
        pool_.barrier();
        // ---- output projection, then each thread adds it to its own x ----
        in.prepare(matmul_version_, att, q_dim_);
        while (next(&b, &e)) rows(L.wo, b, e, tmp);  // [n_head*hd] -> [d]
        step_done();
        pool_.barrier();
        add_rows(x, tmp, d);
        // ---- feed-forward: pieces of gate and up, SwiGLU on them, then pieces of down ----
        rmsnorm(x, L.ffn_norm, xn, d, c.rms_eps);
        in.prepare(matmul_version_, xn, d);
        while (next(&b, &e)) {
            rows(L.w_gate, b, e, gate);  // [d] -> [n_ff], rows [b, e)
            rows(L.w_up, b, e, up);
            swiglu(gate + b, up + b, gate + b, e - b);
        }
        step_done();
        pool_.barrier();
        in.prepare(matmul_version_, gate, c.n_ff);
        while (next(&b, &e)) rows(L.w_down, b, e, tmp);  // [n_ff] -> [d]
        step_done();
        pool_.barrier();
        add_rows(x, tmp, d);
    }
    if (hidden_out_) {  // every thread holds the same x: one copies it
        if (t == 0) std::memcpy(hidden_out_, x, sizeof(float) * size_t(d));
        return;
    }
    if (!logits) return;
    rmsnorm(x, w_.output_norm, xn, d, c.rms_eps);
    in.prepare(matmul_version_, xn, d);
    while (next(&b, &e)) rows(w_.output, b, e, logits);  // [d] -> [n_vocab]
}
// --8<-- [end:decode_team_member]

// ---- one micro-batch through the whole model ----
// --8<-- [start:forward_batch]
void LlamaModel::forward_batch(const int32_t* tokens, int n, int pos, float* logits, bool last_only) {
    const LlamaHParams& c = hp_;
    const int64_t d = c.n_embd;
    float *x = x_.data(), *xn = xn_.data(), *q = q_.data(), *k = k_.data(), *v = v_.data();
    float *att = att_.data(), *gate = gate_.data(), *up = up_.data(), *tmp = ffn_out_.data();
    const AttentionShape shape{n, pos, c.n_head, c.n_head_kv, c.head_dim, 0, 0, kv_type_, n_ctx_};
    if (n == 1 && fuse_decode_) return decode_one_token(tokens[0], pos, logits);  // one token: the team path above

    // RoPE's angles depend on the position only: computed once here, used by q and k in every layer.
    // n_rot < head_dim rotates the first n_rot channels with frequencies over n_rot (llama.cpp's partial RoPE).
    const int n_rot = c.n_rot ? c.n_rot : c.head_dim;
    std::vector<int32_t> positions(n);
    for (int t = 0; t < n; t++) positions[t] = pos + t;
    std::vector<float> rope_cos(size_t(n) * (n_rot / 2)), rope_sin(rope_cos.size());  // [n, n_rot/2] each
    rope_angles(positions.data(), n, n_rot, c.rope_base, rope_cos.data(), rope_sin.data());

    embed(tokens, n, x);  // [n, d]
    const int n_run = hidden_out_ ? n_run_layers_ : c.n_layer;  // forward_hidden stops early
    for (int l = 0; l < n_run; l++) {
        const LayerWeightRefs& L = w_.layers[l];
        // ---- attention block ----
        per_token(pool_, n, [&](int64_t t0, int64_t t1) { rmsnorm_rows(x + t0 * d, L.attn_norm, xn + t0 * d, int(t1 - t0), d, c.rms_eps); });  // [n, d]
        matmul(L.wq, xn, n, q);  // [n, d] -> [n, n_head*hd]
        matmul(L.wk, xn, n, k);  // [n, d] -> [n, n_head_kv*hd]
        matmul(L.wv, xn, n, v);  // [n, d] -> [n, n_head_kv*hd]
        per_token(pool_, n, [&](int64_t t0, int64_t t1) {
            const float *cs = rope_cos.data() + t0 * (n_rot / 2), *sn = rope_sin.data() + t0 * (n_rot / 2);
            apply_rope(q + t0 * q_dim_, t1 - t0, c.n_head, c.head_dim, cs, sn, n_rot, c.rope_neox);      // [n, n_head, hd]
            apply_rope(k + t0 * kv_dim_, t1 - t0, c.n_head_kv, c.head_dim, cs, sn, n_rot, c.rope_neox);  // [n, n_head_kv, hd]
            for (int64_t t = t0; t < t1; t++)  // token t's KV head g: head_dim values, to (l, g, pos + t)
                for (int g = 0; g < c.n_head_kv; g++) {
                    store_kv(k_at(l, g, pos + int(t)), k + t * kv_dim_ + g * c.head_dim, c.head_dim);
                    store_kv(v_at(l, g, pos + int(t)), v + t * kv_dim_ + g * c.head_dim, c.head_dim);
                }
        });
        attention(q, k_at(l), v_at(l), att, shape, pool_);  // [n, n_head*hd]
        matmul(L.wo, att, n, tmp);                                // [n, n_head*hd] -> [n, d]
        // ---- feed-forward block ----
        per_token(pool_, n, [&](int64_t t0, int64_t t1) {
            add_rows(x + t0 * d, tmp + t0 * d, (t1 - t0) * d);                                       // x += attention out
            rmsnorm_rows(x + t0 * d, L.ffn_norm, xn + t0 * d, int(t1 - t0), d, c.rms_eps);  // [n, d]
        });
        matmul(L.w_gate, xn, n, gate);  // [n, d] -> [n, n_ff]
        matmul(L.w_up, xn, n, up);      // [n, d] -> [n, n_ff]
        per_token(pool_, n, [&](int64_t t0, int64_t t1) {  // silu(gate) * up, in place: [n, n_ff]
            swiglu(gate + t0 * c.n_ff, up + t0 * c.n_ff, gate + t0 * c.n_ff, (t1 - t0) * c.n_ff);
        });
        matmul(L.w_down, gate, n, tmp);  // [n, n_ff] -> [n, d]
        per_token(pool_, n, [&](int64_t t0, int64_t t1) { add_rows(x + t0 * d, tmp + t0 * d, (t1 - t0) * d); });
    }
    if (hidden_out_) return (void)std::memcpy(hidden_out_, x, sizeof(float) * size_t(n) * size_t(d));  // forward_hidden
    if (!logits) return;  // a prompt chunk before the last one, in last_only mode: nobody reads these logits
    // ---- output: only the rows the caller wants ----
    const int first = last_only ? n - 1 : 0, rows = n - first;
    rmsnorm_rows(x + first * d, w_.output_norm, xn, rows, d, c.rms_eps);  // [rows, d]
    matmul(w_.output, xn, rows, logits);                                  // [rows, d] -> [rows, n_vocab]
}
// --8<-- [end:forward_batch]

void LlamaModel::forward_hidden(const int32_t* tokens, int n, int pos, int n_layers, float* hidden) {
    if (n_layers < 0 || n_layers > hp_.n_layer) throw std::invalid_argument("forward_hidden: bad layer count");
    n_run_layers_ = n_layers;
    struct Restore { float*& h; ~Restore() { h = nullptr; } } restore{hidden_out_};  // back to normal, even on a throw
    for (int off = 0; off < n; off += kMaxBatch) {  // forward()'s checks and micro-batches, hidden rows out
        hidden_out_ = hidden + int64_t(off) * hp_.n_embd;
        forward(tokens + off, std::min(kMaxBatch, n - off), pos + off, nullptr, false);
    }
}

void check_forward_args(const int32_t* tokens, int n, int pos, int n_ctx, int n_vocab) {
    if (n < 1) throw std::invalid_argument("forward: no tokens");
    if (pos < 0 || int64_t(pos) + n > n_ctx)
        throw std::invalid_argument("context full: positions " + std::to_string(pos) + ".." + std::to_string(int64_t(pos) + n - 1) +
                                    " do not fit in n_ctx " + std::to_string(n_ctx));
    for (int t = 0; t < n; t++)
        if (tokens[t] < 0 || tokens[t] >= n_vocab)
            throw std::invalid_argument("token id " + std::to_string(tokens[t]) + " out of range [0, " + std::to_string(n_vocab) + ")");
}

void LlamaModel::forward(const int32_t* tokens, int n, int pos, float* logits, bool last_only) {
    check_forward_args(tokens, n, pos, n_ctx_, hp_.n_vocab);
    // Micro-batches keep the scratch buffers small whatever the prompt length; attention is causal, so
    // feeding a prompt in pieces gives the same result as feeding it at once.
    for (int off = 0; off < n; off += kMaxBatch) {
        const int nb = std::min(kMaxBatch, n - off);
        const bool last_chunk = off + nb == n;
        float* out = last_only ? (last_chunk ? logits : nullptr) : logits + int64_t(off) * hp_.n_vocab;
        forward_batch(tokens + off, nb, pos + off, out, last_only);
    }
}

}  // namespace ll
