// cuda/driver.h -- the CUDA driver API, found at run time: dlopen("libcuda.so.1"), never linked.
//
// Why the driver API and NVRTC (docs/24-gpu.md has the longer story): the normal CPU build must need no CUDA at all,
// and the GPU machine's driver is not known in advance. The kernels are compiled on the machine that runs them, by
// NVRTC (pip's nvidia-cuda-nvrtc-cu12) for the device found, and loaded here with cuModuleLoadData; a cubin from
// CUDA 12.x loads on any driver from the CUDA 12.0 generation on (R525+), while CUDA 13's nvcc output would need R580+.
// Only the ~25 entry points below are used; their types are declared here so no CUDA header is needed to build.
// NOTE: written and compiled without a GPU; tools/gpu_check.sh is the first place it runs on one.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace ll {
namespace cuda {

using CUdeviceptr = unsigned long long;
struct Module;  // opaque driver handles
struct Function;
struct Stream;
struct Event;
struct GraphExec;

struct DeviceInfo {
    std::string name;
    int cc_major = 0, cc_minor = 0;  // compute capability, e.g. 9.0 for an H100
    size_t total_mem = 0;
    int driver_version = 0;          // e.g. 12040 for a CUDA 12.4 driver
    int n_sm = 0;
};

// One argument of a kernel launch, in an 8-byte slot (the driver reads as many bytes as the parameter's type has).
struct KernelArg {
    unsigned char bytes[8] = {0};
    static KernelArg ptr(CUdeviceptr p) { return of(&p, sizeof p); }
    static KernelArg i32(int32_t v) { return of(&v, sizeof v); }
    static KernelArg i64(int64_t v) { return of(&v, sizeof v); }
    static KernelArg f32(float v) { return of(&v, sizeof v); }
    static KernelArg of(const void* p, size_t n) {
        KernelArg a;
        for (size_t i = 0; i < n; i++) a.bytes[i] = static_cast<const unsigned char*>(p)[i];
        return a;
    }
};

// The device (the first one), its primary context, and one stream. Device::get() throws std::runtime_error with a
// one-line reason when there is no driver or no device.
class Device {
public:
    static Device& get();
    const DeviceInfo& info() const { return info_; }

    CUdeviceptr alloc(size_t bytes);  // zero-filled
    void free(CUdeviceptr p);
    void upload(CUdeviceptr dst, const void* src, size_t bytes);      // on the stream, then waits
    void download(void* dst, CUdeviceptr src, size_t bytes);          // waits for the stream first
    void upload_async(CUdeviceptr dst, const void* src, size_t bytes);  // ordered on the stream
    void memset0(CUdeviceptr p, size_t bytes);
    void sync();

    Module* load_module(const std::string& image);  // a cubin or PTX; throws with the driver's message
    Function* function(Module* m, const char* name);
    void launch(Function* f, unsigned gx, unsigned gy, unsigned gz, unsigned bx, unsigned by, unsigned bz, unsigned shared,
                std::vector<KernelArg>& args);

    // Stream capture into a CUDA graph: begin_capture(); launches...; end_capture() -> an executable graph.
    void begin_capture();
    GraphExec* end_capture();
    void replay(GraphExec* g);
    void destroy(GraphExec* g);

    // Milliseconds of n device-to-device copies of `bytes` (events on the stream): the bandwidth test.
    float time_copies(CUdeviceptr dst, CUdeviceptr src, size_t bytes, int n);

private:
    Device();
    void bind();  // makes the device's context current on the calling thread (the driver's binding is per thread)
    DeviceInfo info_;
    void* ctx_ = nullptr;
    Stream* stream_ = nullptr;
};

// The driver's error for a failing call as one line ("CUDA: cuMemAlloc: out of memory").
[[noreturn]] void fail(const char* what, int code);

}  // namespace cuda
}  // namespace ll
