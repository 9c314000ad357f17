// cuda/cuda_model.cpp -- the LLaMA forward pass on an NVIDIA GPU, behind the seam (backend/backend.h).
//
// Same steps as model/model.cpp and lessons/l08_transformer.py, each one a kernel launch on one stream:
//
//     x = embed(tokens)                           embed_v0           (or: the CPU's first layers, then x uploaded)
//     for each GPU layer:
//         xn = rmsnorm(x) * attn_norm             rmsnorm_v0/v1
//         q, k, v = xn W_q^T, xn W_k^T, xn W_v^T  matvec_v0/v1/v2 (one token) or matmul_v0/v1/v2 (a prompt)
//         rope(q), rope(k); k, v -> f16 cache     rope_v0, store_kv_v0
//         att = attention(q, K, V)                attention_v0/v1
//         x += att W_o^T                          matvec/matmul, add_v0
//         xn = rmsnorm(x) * ffn_norm
//         x += (silu(xn W_gate^T) * xn W_up^T) W_down^T   matvec/matmul, swiglu_v0, add_v0
//     logits = (rmsnorm(x) * output_norm) W_out^T  (on the GPU when every layer is, else on the CPU: llama.cpp's -ngl)
//
// Everything lives in VRAM for the model's life: the weights as the GGUF's raw blocks (uploaded once, never
// dequantized), the float16 KV cache [gpu layer][n_head_kv][n_ctx][head_dim], and scratch for 512 tokens.
// The position and the tokens are read by the kernels from device memory, so decoding one token is always the
// same sequence of launches: it is captured once as a CUDA graph and replayed (one launch instead of ~15 per layer).
// NOTE: compiled, never run: no GPU was lent to the session that wrote it. tests/test_cuda_model.py and
// tools/gpu_check.sh are what will say whether it is right.
#include <algorithm>
#include <cstring>
#include <map>
#include <stdexcept>
#include <string>
#include <vector>

#include "backend/backend.h"
#include "cuda/driver.h"
#include "kernels.h"

namespace ll {

namespace {

using cuda::CUdeviceptr;
using cuda::Device;
using cuda::KernelArg;

constexpr int kBatch = 512;  // tokens per micro-batch on the GPU

unsigned blocks_for(int64_t n, int per_block) { return unsigned((n + per_block - 1) / per_block); }

struct DevWeight {
    int type = GGML_F32;
    CUdeviceptr p = 0;
    int64_t rows = 0, cols = 0, row_bytes = 0;
};

struct DevLayer {
    CUdeviceptr attn_norm = 0, ffn_norm = 0;
    DevWeight wq, wk, wv, wo, gate, up, down;
};

class CudaModel final : public Backend {
public:
    CudaModel(const LlamaHParams& hp, const ModelWeightRefs& w, int n_ctx, const BackendOptions& o)
        : hp_(hp), w_(w), n_ctx_(n_ctx), o_(o), dev_(Device::get()) {
        if (o.kv_type != GGML_F16) throw std::invalid_argument("the CUDA backend keeps its KV cache in float16: use -ctk f16 -ctv f16");
        if (o.kernel_image.empty()) throw std::invalid_argument("the CUDA backend needs its compiled kernels (cpp_core/cuda.py)");
        check_version("matvec", o.matvec, {"v0", "v1", "v2"});
        check_version("matmul", o.matmul, {"v0", "v1", "v2"});
        check_version("attention", o.attention, {"v0", "v1"});
        check_version("rmsnorm", o.rmsnorm, {"v0", "v1", "v2"});
        const int ngl = o.n_gpu_layers < 0 ? hp.n_layer : std::min(o.n_gpu_layers, hp.n_layer);
        first_gpu_ = hp.n_layer - ngl;
        output_on_gpu_ = o.n_gpu_layers < 0 || o.n_gpu_layers >= hp.n_layer;
        n_rot_ = hp.n_rot ? hp.n_rot : hp.head_dim;
        q_dim_ = int64_t(hp.n_head) * hp.head_dim;
        kv_dim_ = int64_t(hp.n_head_kv) * hp.head_dim;
        if (first_gpu_ > 0 || !output_on_gpu_) {  // the CPU part of a partial offload: checks the shapes too
            cpu_ = std::make_unique<LlamaModel>(hp, w, n_ctx, std::max(1, o.n_threads), GGML_F16);
            pool_ = std::make_unique<ThreadPool>(std::max(1, o.n_threads));
            hidden_.resize(size_t(kBatch) * hp.n_embd);
            xn_host_.resize(size_t(kBatch) * hp.n_embd);
        } else {
            LlamaModel check(hp, w, 1, 1, GGML_F16);  // the CPU model's shape checks, on a 1-position cache
        }
        load_kernels();
        upload_weights();
        allocate_state();
    }

    ~CudaModel() override {
        dev_.destroy(graph_);
        for (CUdeviceptr p : owned_) dev_.free(p);
    }

    void forward(const int32_t* tokens, int n, int pos, float* logits, bool last_only) override {
        ll::check_forward_args(tokens, n, pos, n_ctx_, hp_.n_vocab);  // model/model.h: the CPU model's refusals
        for (int off = 0; off < n; off += kBatch) {
            const int nb = std::min(kBatch, n - off);
            const bool last_chunk = off + nb == n;
            float* out = !logits ? nullptr : last_only ? (last_chunk ? logits : nullptr) : logits + int64_t(off) * hp_.n_vocab;
            run_batch(tokens + off, nb, pos + off, out, last_only);
        }
    }

    void reset() override {
        dev_.memset0(k_cache_, cache_bytes_);
        dev_.memset0(v_cache_, cache_bytes_);
        if (cpu_) cpu_->reset();
    }
    int n_ctx() const override { return n_ctx_; }
    size_t kv_cache_bytes() const override { return 2 * cache_bytes_ + (cpu_ ? cpu_->kv_cache_bytes() : 0); }
    size_t device_bytes() const override { return device_bytes_; }
    std::string describe() const override {
        const auto& i = dev_.info();
        return "cuda: " + i.name + " (sm_" + std::to_string(i.cc_major) + std::to_string(i.cc_minor) + "), layers " +
               std::to_string(first_gpu_) + ".." + std::to_string(hp_.n_layer - 1) + " and " + (output_on_gpu_ ? "the output" : "not the output") +
               " on the GPU; matvec " + o_.matvec + ", matmul " + o_.matmul + ", attention " + o_.attention + ", rmsnorm " + o_.rmsnorm +
               (o_.graphs ? ", decode as a CUDA graph" : "");
    }

private:
    static void check_version(const char* what, const std::string& v, std::initializer_list<const char*> ok) {
        for (const char* k : ok)
            if (v == k) return;
        throw std::invalid_argument(std::string("no CUDA ") + what + " version '" + v + "'");
    }

    // ---- setup ----
    void load_kernels() {
        cuda::Module* m = dev_.load_module(o_.kernel_image);
        for (const char* name : {"matvec_v0", "matvec_v1", "matvec_v2", "quantize_q8", "matmul_v0", "matmul_v1", "matmul_v2", "embed_v0", "rmsnorm_v0",
                                 "rmsnorm_v1", "add_rmsnorm_v2", "rope_v0", "store_kv_v0", "swiglu_v0", "add_v0", "attention_v0", "attention_v1"})
            fn_[name] = dev_.function(m, name);
    }

    CUdeviceptr alloc(size_t bytes) {
        owned_.push_back(dev_.alloc(bytes));
        device_bytes_ += bytes;
        return owned_.back();
    }
    // A host buffer uploaded once; the same host pointer (tied embeddings) is uploaded once.
    CUdeviceptr upload(const void* host, size_t bytes) {
        auto it = uploaded_.find(host);
        if (it != uploaded_.end()) return it->second;
        const CUdeviceptr p = alloc(bytes);
        dev_.upload(p, host, bytes);
        return uploaded_[host] = p;
    }
    DevWeight weight(const WeightRef& r) {
        DevWeight d;
        d.type = r.ggml_type, d.rows = r.n_rows, d.cols = r.n_cols, d.row_bytes = int64_t(row_bytes(r.ggml_type, r.n_cols));
        const bool known = d.type == GGML_F32 || d.type == GGML_F16 || (d.type >= 2 && d.type <= 14 && d.type != 4 && d.type != 5 && d.type != 9);
        if (!known) throw std::invalid_argument("the CUDA kernels do not read ggml type " + std::to_string(d.type));
        if (d.cols % 32) throw std::invalid_argument("the CUDA kernels need rows of a multiple of 32 weights");
        d.p = upload(r.data, size_t(d.rows * d.row_bytes));
        return d;
    }
    CUdeviceptr vec(const float* p) { return upload(p, sizeof(float) * size_t(hp_.n_embd)); }

    void upload_weights() {
        if (first_gpu_ == 0) token_embd_ = weight(w_.token_embd);
        if (output_on_gpu_) output_ = weight(w_.output), output_norm_ = vec(w_.output_norm);
        for (int l = first_gpu_; l < hp_.n_layer; l++) {
            const LayerWeightRefs& L = w_.layers[size_t(l)];
            DevLayer d;
            d.attn_norm = vec(L.attn_norm), d.ffn_norm = vec(L.ffn_norm);
            d.wq = weight(L.wq), d.wk = weight(L.wk), d.wv = weight(L.wv), d.wo = weight(L.wo);
            d.gate = weight(L.w_gate), d.up = weight(L.w_up), d.down = weight(L.w_down);
            layers_.push_back(d);
        }
    }

    void allocate_state() {
        const size_t B = kBatch, F = sizeof(float);
        cache_bytes_ = size_t(hp_.n_layer - first_gpu_) * size_t(n_ctx_) * size_t(kv_dim_) * 2;
        k_cache_ = alloc(cache_bytes_), v_cache_ = alloc(cache_bytes_);
        x_ = alloc(B * hp_.n_embd * F), xn_ = alloc(B * hp_.n_embd * F), tmp_ = alloc(B * hp_.n_embd * F);
        q_ = alloc(B * q_dim_ * F), k_ = alloc(B * kv_dim_ * F), v_ = alloc(B * kv_dim_ * F), att_ = alloc(B * q_dim_ * F);
        gate_ = alloc(B * hp_.n_ff * F), up_ = alloc(B * hp_.n_ff * F);
        logits_ = alloc(B * hp_.n_vocab * F);
        scores_ = alloc(B * hp_.n_head * size_t(n_ctx_) * F);
        tokens_ = alloc(B * sizeof(int32_t)), pos_ = alloc(sizeof(int32_t));
        const int64_t widest = std::max<int64_t>({hp_.n_embd, q_dim_, hp_.n_ff});  // an input row of any product
        xq_ = alloc(size_t(widest)), xd_ = alloc(size_t(widest / 32) * F), xs_ = alloc(size_t(widest / 32) * 2 * sizeof(int));
    }

    // ---- launches ----
    void launch(const char* name, unsigned gx, unsigned gy, unsigned bx, unsigned by, unsigned shared, std::vector<KernelArg> args) {
        dev_.launch(fn_.at(name), gx, gy, 1, bx, by, 1, shared, args);
    }
    static KernelArg P(CUdeviceptr p) { return KernelArg::ptr(p); }
    static KernelArg I(int64_t v) { return KernelArg::i32(int32_t(v)); }
    static KernelArg L(int64_t v) { return KernelArg::i64(v); }
    static KernelArg F(float v) { return KernelArg::f32(v); }

    // y [n, rows] = x [n, cols] W^T
    void mm(const DevWeight& w, CUdeviceptr x, int n, CUdeviceptr y) {
        const bool quantized = w.type != GGML_F32 && w.type != GGML_F16;
        if (n == 1 && o_.matvec == "v0") {
            launch("matvec_v0", blocks_for(w.rows, 128), 1, 128, 1, 0, {I(w.type), P(w.p), L(w.row_bytes), P(x), P(y), I(w.rows), I(w.cols)});
        } else if (n == 1 && (o_.matvec == "v1" || !quantized)) {
            launch("matvec_v1", blocks_for(w.rows, 4), 1, 32, 4, 0, {I(w.type), P(w.p), L(w.row_bytes), P(x), P(y), I(w.rows), I(w.cols)});
        } else if (n == 1) {  // v2: the activations to int8 first
            const int64_t units = w.cols / 32;
            launch("quantize_q8", blocks_for(units, 128), 1, 128, 1, 0, {P(x), P(xq_), P(xd_), P(xs_), I(units)});
            launch("matvec_v2", blocks_for(w.rows, 4), 1, 32, 4, 0,
                   {I(w.type), P(w.p), L(w.row_bytes), P(x), P(xq_), P(xd_), P(xs_), P(y), I(w.rows), I(w.cols)});
        } else if (o_.matmul == "v0") {
            launch("matmul_v0", blocks_for(w.rows * n, 128), 1, 128, 1, 0,
                   {I(w.type), P(w.p), L(w.row_bytes), P(x), P(y), I(w.rows), I(w.cols), I(n)});
        } else if (o_.matmul == "v1") {
            launch("matmul_v1", blocks_for(w.rows, 4), blocks_for(n, 8), 32, 4, 0,
                   {I(w.type), P(w.p), L(w.row_bytes), P(x), P(y), I(w.rows), I(w.cols), I(n)});
        } else {
            launch("matmul_v2", blocks_for(w.rows, 64), blocks_for(n, 64), 256, 1, 0,
                   {I(w.type), P(w.p), L(w.row_bytes), P(x), P(y), I(w.rows), I(w.cols), I(n)});
        }
    }
    // x += y, then out = rmsnorm(x) * weight: fused (rmsnorm v2), or the add and the norm one after the other
    void add_rmsnorm(CUdeviceptr y, CUdeviceptr weight, CUdeviceptr out, int rows) {
        if (o_.rmsnorm == "v2")
            return launch("add_rmsnorm_v2", unsigned(rows), 1, 256, 1, 0,
                          {P(x_), P(y), P(weight), P(out), I(rows), I(hp_.n_embd), F(hp_.rms_eps)});
        elementwise("add_v0", x_, y, 0, int64_t(rows) * hp_.n_embd);
        rmsnorm(x_, weight, out, rows);
    }
    void rmsnorm(CUdeviceptr x, CUdeviceptr weight, CUdeviceptr out, int rows) {
        if (o_.rmsnorm == "v0")
            launch("rmsnorm_v0", blocks_for(rows, 128), 1, 128, 1, 0, {P(x), P(weight), P(out), I(rows), I(hp_.n_embd), F(hp_.rms_eps)});
        else
            launch("rmsnorm_v1", unsigned(rows), 1, 256, 1, 0, {P(x), P(weight), P(out), I(rows), I(hp_.n_embd), F(hp_.rms_eps)});
    }
    void elementwise(const char* name, CUdeviceptr a, CUdeviceptr b, CUdeviceptr out, int64_t n) {
        if (out) launch(name, blocks_for(n, 256), 1, 256, 1, 0, {P(a), P(b), P(out), L(n)});
        else launch(name, blocks_for(n, 256), 1, 256, 1, 0, {P(a), P(b), L(n)});
    }
    CUdeviceptr cache_at(CUdeviceptr cache, int gpu_layer) const {
        return cache + CUdeviceptr(size_t(gpu_layer) * size_t(n_ctx_) * size_t(kv_dim_) * 2);
    }

    // Every launch of one micro-batch of n tokens (positions from pos_, tokens from tokens_ or x already filled),
    // ending with the logits of rows [first_row, n) in logits_ when the output is on the GPU.
    void enqueue(int n, int first_row) {
        const LlamaHParams& c = hp_;
        const int64_t d = c.n_embd;
        if (first_gpu_ == 0)
            launch("embed_v0", blocks_for(n * d, 256), 1, 256, 1, 0,
                   {I(token_embd_.type), P(token_embd_.p), L(token_embd_.row_bytes), P(tokens_), P(x_), I(n), I(d)});
        if (!layers_.empty()) rmsnorm(x_, layers_[0].attn_norm, xn_, n);  // later norms come with the add before them
        for (size_t gl = 0; gl < layers_.size(); gl++) {
            const DevLayer& Ly = layers_[gl];
            const CUdeviceptr kc = cache_at(k_cache_, int(gl)), vc = cache_at(v_cache_, int(gl));
            mm(Ly.wq, xn_, n, q_);
            mm(Ly.wk, xn_, n, k_);
            mm(Ly.wv, xn_, n, v_);
            launch("rope_v0", blocks_for(int64_t(n) * c.n_head * (n_rot_ / 2), 128), 1, 128, 1, 0,
                   {P(q_), I(n), I(c.n_head), I(c.head_dim), I(n_rot_), F(c.rope_base), I(c.rope_neox), P(pos_)});
            launch("rope_v0", blocks_for(int64_t(n) * c.n_head_kv * (n_rot_ / 2), 128), 1, 128, 1, 0,
                   {P(k_), I(n), I(c.n_head_kv), I(c.head_dim), I(n_rot_), F(c.rope_base), I(c.rope_neox), P(pos_)});
            for (const auto& kv : {std::make_pair(k_, kc), std::make_pair(v_, vc)})
                launch("store_kv_v0", blocks_for(n * kv_dim_, 256), 1, 256, 1, 0,
                       {P(kv.first), P(kv.second), I(n), I(c.n_head_kv), I(c.head_dim), I(n_ctx_), P(pos_)});
            const std::vector<KernelArg> att_args{P(q_), P(kc), P(vc), P(att_), P(scores_), I(n), I(c.n_head), I(c.n_head_kv),
                                                  I(c.head_dim), I(n_ctx_), P(pos_)};
            if (o_.attention == "v0")
                launch("attention_v0", blocks_for(int64_t(n) * c.n_head, 64), 1, 64, 1, 0, att_args);
            else
                launch("attention_v1", unsigned(n * c.n_head), 1, 128, 1, unsigned(sizeof(float) * c.head_dim), att_args);
            mm(Ly.wo, att_, n, tmp_);
            add_rmsnorm(tmp_, Ly.ffn_norm, xn_, n);  // x += attention out; xn = norm(x)
            mm(Ly.gate, xn_, n, gate_);
            mm(Ly.up, xn_, n, up_);
            elementwise("swiglu_v0", gate_, up_, gate_, int64_t(n) * c.n_ff);
            mm(Ly.down, gate_, n, tmp_);
            if (gl + 1 < layers_.size())
                add_rmsnorm(tmp_, layers_[gl + 1].attn_norm, xn_, n);  // x += ffn out; the next layer's norm
            else if (output_on_gpu_ && first_row < n)
                add_rmsnorm(tmp_, output_norm_, xn_, n);  // x += ffn out; the output norm (all rows: one launch)
            else
                elementwise("add_v0", x_, tmp_, 0, n * d);
        }
        if (output_on_gpu_ && first_row < n) {
            if (layers_.empty()) rmsnorm(x_, output_norm_, xn_, n);
            mm(output_, xn_ + CUdeviceptr(size_t(first_row) * d * sizeof(float)), n - first_row, logits_);
        }
    }

    void run_batch(const int32_t* tokens, int n, int pos, float* logits, bool last_only) {
        const int64_t d = hp_.n_embd;
        const int first_row = logits ? (last_only ? n - 1 : 0) : n;  // no logits wanted: no output rows
        if (first_gpu_ > 0) {  // the CPU's layers first; its residual stream crosses to the GPU
            cpu_->forward_hidden(tokens, n, pos, first_gpu_, hidden_.data());
            dev_.upload_async(x_, hidden_.data(), sizeof(float) * size_t(n) * size_t(d));
        } else {
            dev_.upload_async(tokens_, tokens, sizeof(int32_t) * size_t(n));
        }
        pos_host_ = pos;
        dev_.upload_async(pos_, &pos_host_, sizeof(int32_t));
        if (n == 1 && o_.graphs) {  // decoding: the same launches every token, replayed from one capture
            if (!graph_) {
                dev_.begin_capture();
                try {
                    enqueue(1, 0);
                } catch (...) {
                    dev_.end_capture();
                    throw;
                }
                graph_ = dev_.end_capture();
            }
            dev_.replay(graph_);
        } else {
            enqueue(n, first_row);
        }
        if (!logits || first_row >= n) return dev_.sync();
        const int rows = n - first_row;
        if (output_on_gpu_) return dev_.download(logits, logits_, sizeof(float) * size_t(rows) * size_t(hp_.n_vocab));
        // -ngl below the layer count: the output layer stays on the CPU, as llama.cpp does
        std::vector<float> x(size_t(rows) * size_t(d));
        dev_.download(x.data(), x_ + CUdeviceptr(size_t(first_row) * d * sizeof(float)), sizeof(float) * x.size());
        for (int r = 0; r < rows; r++) ll::rmsnorm(x.data() + r * d, w_.output_norm, xn_host_.data() + r * d, d, hp_.rms_eps);
        quant_matmul(w_.output.ggml_type, w_.output.data, w_.output.n_rows, w_.output.n_cols, xn_host_.data(), rows, logits, *pool_);
    }

    LlamaHParams hp_;
    ModelWeightRefs w_;
    int n_ctx_;
    BackendOptions o_;
    Device& dev_;
    int first_gpu_ = 0, n_rot_ = 0;
    bool output_on_gpu_ = true;
    int64_t q_dim_ = 0, kv_dim_ = 0;
    std::unique_ptr<LlamaModel> cpu_;  // layers [0, first_gpu_) when some stay on the CPU
    std::unique_ptr<ThreadPool> pool_;
    std::vector<float> hidden_, xn_host_;
    std::map<std::string, cuda::Function*> fn_;
    std::map<const void*, CUdeviceptr> uploaded_;
    std::vector<CUdeviceptr> owned_;
    size_t device_bytes_ = 0, cache_bytes_ = 0;
    DevWeight token_embd_, output_;
    CUdeviceptr output_norm_ = 0;
    std::vector<DevLayer> layers_;
    CUdeviceptr k_cache_ = 0, v_cache_ = 0;
    CUdeviceptr x_ = 0, xn_ = 0, tmp_ = 0, q_ = 0, k_ = 0, v_ = 0, att_ = 0, gate_ = 0, up_ = 0, logits_ = 0, scores_ = 0;
    CUdeviceptr tokens_ = 0, pos_ = 0, xq_ = 0, xd_ = 0, xs_ = 0;
    int32_t pos_host_ = 0;
    cuda::GraphExec* graph_ = nullptr;
};

}  // namespace

std::unique_ptr<Backend> make_cuda_backend(const LlamaHParams& hp, const ModelWeightRefs& weights, int n_ctx,
                                           const BackendOptions& options) {
    return std::make_unique<CudaModel>(hp, weights, n_ctx, options);
}

}  // namespace ll
