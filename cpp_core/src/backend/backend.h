// backend/backend.h -- the seam: what a device backend implements, so run.py can put the model on a CPU or a GPU.
//
// A backend owns everything the forward pass needs on its device, and nothing of the file:
//
//     construct(hparams, weights, n_ctx, options)   upload the weights once, as the GGUF's raw ggml blocks
//                                                   (pointers into the mmap; a CPU backend reads them in place,
//                                                   a GPU backend copies them to its memory, never dequantized)
//     forward(tokens, n, pos, logits, last_only)    the prompt (n > 1) or one decoded token (n = 1): appends K/V
//                                                   to the backend's own cache and brings the logits back to the host
//     reset()                                       forget the cache
//
// Both implementations today:
//   "cpu"   backend/cpu_backend.cpp: a thin adapter over model/model.h's LlamaModel (no behaviour of its own)
//   "cuda"  cuda/cuda_model.cpp: kernels compiled at run time by NVRTC (cpp_core/cuda.py), launched through the
//           driver API, which is looked up in libcuda.so.1 when a CUDA backend is made (the build never links CUDA).
//           options.n_gpu_layers < n_layer runs the first layers on a CPU LlamaModel (forward_hidden) and the
//           rest on the GPU: llama.cpp's -ngl.
// A Metal backend would be a third: see docs/24-gpu.md for what it would implement (not written: it could not be
// compiled or run where this was written).
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

#include "model/model.h"

namespace ll {

// --8<-- [start:backend]
class Backend {
public:
    virtual ~Backend() = default;
    // tokens[0..n) at positions pos..pos+n-1; logits [n, n_vocab], or [1, n_vocab] for the last token when
    // last_only (nullptr: no logits wanted). Throws std::invalid_argument for bad tokens or positions.
    virtual void forward(const int32_t* tokens, int n, int pos, float* logits, bool last_only) = 0;
    virtual void reset() = 0;
    virtual int n_ctx() const = 0;
    virtual size_t kv_cache_bytes() const = 0;   // the cache's bytes, wherever it lives
    virtual size_t device_bytes() const = 0;     // weights + cache + scratch held in the device's own memory (0 on the CPU)
    virtual std::string describe() const = 0;    // one line: which device, what runs where
};
// --8<-- [end:backend]

struct BackendOptions {
    std::string kind = "cpu";   // "cpu" or "cuda"
    int n_threads = 1;          // CPU threads (the CPU backend, and the CPU layers of a partial offload)
    int kv_type = GGML_F16;     // GGML_F16 or GGML_F32 (the CUDA backend's cache is float16 only)
    int n_gpu_layers = -1;      // layers on the GPU, the last ones; >= n_layer (or -1): all, and the output too
    std::string kernel_image;   // CUDA: the cubin (or PTX) that cpp_core/cuda.py compiled for this device
    std::string matvec = "v2", matmul = "v2", attention = "v1", rmsnorm = "v2";  // CUDA kernel versions
    bool graphs = true;         // CUDA: replay the decode step as a captured CUDA graph
};

// Makes the backend options.kind names; throws std::invalid_argument (bad options) or std::runtime_error
// (no CUDA driver, no device, a kernel image that does not load).
std::unique_ptr<Backend> make_backend(const LlamaHParams& hp, const ModelWeightRefs& weights, int n_ctx,
                                      const BackendOptions& options);

std::unique_ptr<Backend> make_cpu_backend(const LlamaHParams& hp, const ModelWeightRefs& weights, int n_ctx,
                                          const BackendOptions& options);
std::unique_ptr<Backend> make_cuda_backend(const LlamaHParams& hp, const ModelWeightRefs& weights, int n_ctx,
                                           const BackendOptions& options);

}  // namespace ll
