// backend/cpu_backend.cpp -- the CPU model behind the seam: every call goes straight to LlamaModel.
#include <stdexcept>

#include "backend/backend.h"

namespace ll {

namespace {

class CpuBackend final : public Backend {
public:
    CpuBackend(const LlamaHParams& hp, const ModelWeightRefs& w, int n_ctx, const BackendOptions& o)
        : model_(hp, w, n_ctx, o.n_threads, o.kv_type) {}
    void forward(const int32_t* tokens, int n, int pos, float* logits, bool last_only) override {
        model_.forward(tokens, n, pos, logits, last_only);
    }
    void reset() override { model_.reset(); }
    int n_ctx() const override { return model_.n_ctx(); }
    size_t kv_cache_bytes() const override { return model_.kv_cache_bytes(); }
    size_t device_bytes() const override { return 0; }
    std::string describe() const override {
        return "cpu: " + std::to_string(model_.n_threads()) + " threads, all " + std::to_string(model_.hparams().n_layer) + " layers";
    }

private:
    LlamaModel model_;
};

}  // namespace

std::unique_ptr<Backend> make_cpu_backend(const LlamaHParams& hp, const ModelWeightRefs& weights, int n_ctx,
                                          const BackendOptions& options) {
    return std::make_unique<CpuBackend>(hp, weights, n_ctx, options);
}

std::unique_ptr<Backend> make_backend(const LlamaHParams& hp, const ModelWeightRefs& weights, int n_ctx,
                                      const BackendOptions& options) {
    if (options.kind == "cpu") return make_cpu_backend(hp, weights, n_ctx, options);
    if (options.kind == "cuda") return make_cuda_backend(hp, weights, n_ctx, options);
    throw std::invalid_argument("unknown backend '" + options.kind + "' (cpu or cuda)");
}

}  // namespace ll
