// cuda/driver.cpp -- the driver API through dlopen (see driver.h). Written without a GPU: every call's result is
// checked and turned into a one-line std::runtime_error, so a mismatch shows up as a message, not a crash.
#include "cuda/driver.h"

#include <dlfcn.h>

#include <mutex>
#include <stdexcept>

namespace ll {
namespace cuda {

namespace {

using CUresult = int;
using CUdevice = int;
using CUcontext = void*;
using CUmodule = void*;
using CUfunction = void*;
using CUstream = void*;
using CUevent = void*;
using CUgraph = void*;
using CUgraphExec = void*;

// The entry points, by their exported names (the _v2 names are what the CUDA headers map the plain names to).
struct Api {
    CUresult (*cuInit)(unsigned);
    CUresult (*cuDriverGetVersion)(int*);
    CUresult (*cuDeviceGetCount)(int*);
    CUresult (*cuDeviceGet)(CUdevice*, int);
    CUresult (*cuDeviceGetName)(char*, int, CUdevice);
    CUresult (*cuDeviceGetAttribute)(int*, int, CUdevice);
    CUresult (*cuDeviceTotalMem)(size_t*, CUdevice);
    CUresult (*cuDevicePrimaryCtxRetain)(CUcontext*, CUdevice);
    CUresult (*cuCtxSetCurrent)(CUcontext);
    CUresult (*cuGetErrorString)(CUresult, const char**);
    CUresult (*cuMemAlloc)(CUdeviceptr*, size_t);
    CUresult (*cuMemFree)(CUdeviceptr);
    CUresult (*cuMemcpyHtoDAsync)(CUdeviceptr, const void*, size_t, CUstream);
    CUresult (*cuMemcpyDtoHAsync)(void*, CUdeviceptr, size_t, CUstream);
    CUresult (*cuMemcpyDtoDAsync)(CUdeviceptr, CUdeviceptr, size_t, CUstream);
    CUresult (*cuMemsetD8Async)(CUdeviceptr, unsigned char, size_t, CUstream);
    CUresult (*cuModuleLoadData)(CUmodule*, const void*);
    CUresult (*cuModuleGetFunction)(CUfunction*, CUmodule, const char*);
    CUresult (*cuLaunchKernel)(CUfunction, unsigned, unsigned, unsigned, unsigned, unsigned, unsigned, unsigned, CUstream, void**, void**);
    CUresult (*cuStreamCreate)(CUstream*, unsigned);
    CUresult (*cuStreamSynchronize)(CUstream);
    CUresult (*cuStreamBeginCapture)(CUstream, int);
    CUresult (*cuStreamEndCapture)(CUstream, CUgraph*);
    CUresult (*cuGraphInstantiateWithFlags)(CUgraphExec*, CUgraph, unsigned long long);
    CUresult (*cuGraphLaunch)(CUgraphExec, CUstream);
    CUresult (*cuGraphExecDestroy)(CUgraphExec);
    CUresult (*cuGraphDestroy)(CUgraph);
    CUresult (*cuEventCreate)(CUevent*, unsigned);
    CUresult (*cuEventRecord)(CUevent, CUstream);
    CUresult (*cuEventSynchronize)(CUevent);
    CUresult (*cuEventElapsedTime)(float*, CUevent, CUevent);
    CUresult (*cuEventDestroy)(CUevent);
};

Api api;

template <class F>
void sym(void* lib, F*& f, const char* name) {
    f = reinterpret_cast<F*>(dlsym(lib, name));
    if (!f) throw std::runtime_error(std::string("the CUDA driver (libcuda.so.1) has no ") + name + ": too old a driver");
}

void load_api() {
    void* lib = dlopen("libcuda.so.1", RTLD_NOW | RTLD_LOCAL);
    if (!lib) throw std::runtime_error("no CUDA driver: libcuda.so.1 not found (no NVIDIA GPU, or its driver is not installed)");
    sym(lib, api.cuInit, "cuInit");
    sym(lib, api.cuDriverGetVersion, "cuDriverGetVersion");
    sym(lib, api.cuDeviceGetCount, "cuDeviceGetCount");
    sym(lib, api.cuDeviceGet, "cuDeviceGet");
    sym(lib, api.cuDeviceGetName, "cuDeviceGetName");
    sym(lib, api.cuDeviceGetAttribute, "cuDeviceGetAttribute");
    sym(lib, api.cuDeviceTotalMem, "cuDeviceTotalMem_v2");
    sym(lib, api.cuDevicePrimaryCtxRetain, "cuDevicePrimaryCtxRetain");
    sym(lib, api.cuCtxSetCurrent, "cuCtxSetCurrent");
    sym(lib, api.cuGetErrorString, "cuGetErrorString");
    sym(lib, api.cuMemAlloc, "cuMemAlloc_v2");
    sym(lib, api.cuMemFree, "cuMemFree_v2");
    sym(lib, api.cuMemcpyHtoDAsync, "cuMemcpyHtoDAsync_v2");
    sym(lib, api.cuMemcpyDtoHAsync, "cuMemcpyDtoHAsync_v2");
    sym(lib, api.cuMemcpyDtoDAsync, "cuMemcpyDtoDAsync_v2");
    sym(lib, api.cuMemsetD8Async, "cuMemsetD8Async");
    sym(lib, api.cuModuleLoadData, "cuModuleLoadData");
    sym(lib, api.cuModuleGetFunction, "cuModuleGetFunction");
    sym(lib, api.cuLaunchKernel, "cuLaunchKernel");
    sym(lib, api.cuStreamCreate, "cuStreamCreate");
    sym(lib, api.cuStreamSynchronize, "cuStreamSynchronize");
    sym(lib, api.cuStreamBeginCapture, "cuStreamBeginCapture_v2");
    sym(lib, api.cuStreamEndCapture, "cuStreamEndCapture");
    sym(lib, api.cuGraphInstantiateWithFlags, "cuGraphInstantiateWithFlags");
    sym(lib, api.cuGraphLaunch, "cuGraphLaunch");
    sym(lib, api.cuGraphExecDestroy, "cuGraphExecDestroy");
    sym(lib, api.cuGraphDestroy, "cuGraphDestroy");
    sym(lib, api.cuEventCreate, "cuEventCreate");
    sym(lib, api.cuEventRecord, "cuEventRecord");
    sym(lib, api.cuEventSynchronize, "cuEventSynchronize");
    sym(lib, api.cuEventElapsedTime, "cuEventElapsedTime");
    sym(lib, api.cuEventDestroy, "cuEventDestroy_v2");
}

void check(CUresult r, const char* what) {
    if (r != 0) fail(what, r);
}

constexpr int ATTR_CC_MAJOR = 75, ATTR_CC_MINOR = 76, ATTR_SM_COUNT = 16;
constexpr unsigned STREAM_NON_BLOCKING = 1;
constexpr int CAPTURE_MODE_THREAD_LOCAL = 1;

}  // namespace

void fail(const char* what, int code) {
    const char* msg = nullptr;
    if (api.cuGetErrorString) api.cuGetErrorString(code, &msg);
    throw std::runtime_error(std::string("CUDA: ") + what + ": " + (msg ? msg : "error " + std::to_string(code)));
}

Device& Device::get() {
    static std::once_flag once;
    static Device* device = nullptr;
    static std::string error;
    std::call_once(once, [] {
        try {
            device = new Device();  // kept for the process's life: the primary context outlives every model
        } catch (const std::exception& e) {
            error = e.what();
        }
    });
    if (!device) throw std::runtime_error(error);
    return *device;
}

Device::Device() {
    load_api();
    const CUresult r = api.cuInit(0);
    if (r == 100) throw std::runtime_error("no CUDA device (the driver is installed but sees no GPU)");  // CUDA_ERROR_NO_DEVICE
    check(r, "cuInit");
    int count = 0;
    check(api.cuDeviceGetCount(&count), "cuDeviceGetCount");
    if (count < 1) throw std::runtime_error("no CUDA device (the driver is installed but sees no GPU)");
    CUdevice dev;
    check(api.cuDeviceGet(&dev, 0), "cuDeviceGet");
    char name[256] = {0};
    check(api.cuDeviceGetName(name, sizeof name - 1, dev), "cuDeviceGetName");
    info_.name = name;
    check(api.cuDeviceGetAttribute(&info_.cc_major, ATTR_CC_MAJOR, dev), "cuDeviceGetAttribute");
    check(api.cuDeviceGetAttribute(&info_.cc_minor, ATTR_CC_MINOR, dev), "cuDeviceGetAttribute");
    check(api.cuDeviceGetAttribute(&info_.n_sm, ATTR_SM_COUNT, dev), "cuDeviceGetAttribute");
    check(api.cuDeviceTotalMem(&info_.total_mem, dev), "cuDeviceTotalMem");
    check(api.cuDriverGetVersion(&info_.driver_version), "cuDriverGetVersion");
    CUcontext ctx;
    check(api.cuDevicePrimaryCtxRetain(&ctx, dev), "cuDevicePrimaryCtxRetain");
    ctx_ = ctx;
    bind();
    CUstream s;
    check(api.cuStreamCreate(&s, STREAM_NON_BLOCKING), "cuStreamCreate");
    stream_ = static_cast<Stream*>(s);
}

void Device::bind() {
    thread_local bool bound = false;  // one device per process: a flag per thread is enough
    if (!bound) check(api.cuCtxSetCurrent(ctx_), "cuCtxSetCurrent");
    bound = true;
}

CUdeviceptr Device::alloc(size_t bytes) {
    bind();
    CUdeviceptr p = 0;
    check(api.cuMemAlloc(&p, bytes ? bytes : 1), "cuMemAlloc");
    memset0(p, bytes);
    return p;
}
void Device::free(CUdeviceptr p) {
    if (!p) return;
    api.cuCtxSetCurrent(ctx_);  // no throw: destructors free
    api.cuMemFree(p);
}
void Device::upload(CUdeviceptr dst, const void* src, size_t bytes) {
    upload_async(dst, src, bytes);
    sync();
}
void Device::upload_async(CUdeviceptr dst, const void* src, size_t bytes) {
    bind();
    if (bytes) check(api.cuMemcpyHtoDAsync(dst, src, bytes, stream_), "cuMemcpyHtoDAsync");
}
void Device::download(void* dst, CUdeviceptr src, size_t bytes) {
    bind();
    if (bytes) check(api.cuMemcpyDtoHAsync(dst, src, bytes, stream_), "cuMemcpyDtoHAsync");
    sync();
}
void Device::memset0(CUdeviceptr p, size_t bytes) {
    bind();
    if (bytes) check(api.cuMemsetD8Async(p, 0, bytes, stream_), "cuMemsetD8Async");
    sync();
}
void Device::sync() {
    bind();
    check(api.cuStreamSynchronize(stream_), "cuStreamSynchronize");
}

Module* Device::load_module(const std::string& image) {
    bind();
    CUmodule m;
    check(api.cuModuleLoadData(&m, image.c_str()), "cuModuleLoadData");  // a PTX image must end in a 0: std::string's
    return static_cast<Module*>(m);
}
Function* Device::function(Module* m, const char* name) {
    bind();
    CUfunction f;
    const CUresult r = api.cuModuleGetFunction(&f, m, name);
    if (r != 0) fail((std::string("cuModuleGetFunction ") + name).c_str(), r);
    return static_cast<Function*>(f);
}
void Device::launch(Function* f, unsigned gx, unsigned gy, unsigned gz, unsigned bx, unsigned by, unsigned bz, unsigned shared,
                    std::vector<KernelArg>& args) {
    bind();
    std::vector<void*> params(args.size());
    for (size_t i = 0; i < args.size(); i++) params[i] = args[i].bytes;
    check(api.cuLaunchKernel(f, gx, gy, gz, bx, by, bz, shared, stream_, params.data(), nullptr), "cuLaunchKernel");
}

void Device::begin_capture() { bind(); check(api.cuStreamBeginCapture(stream_, CAPTURE_MODE_THREAD_LOCAL), "cuStreamBeginCapture"); }
GraphExec* Device::end_capture() {
    CUgraph g;
    check(api.cuStreamEndCapture(stream_, &g), "cuStreamEndCapture");
    CUgraphExec e;
    const CUresult r = api.cuGraphInstantiateWithFlags(&e, g, 0);
    api.cuGraphDestroy(g);
    check(r, "cuGraphInstantiateWithFlags");
    return static_cast<GraphExec*>(e);
}
void Device::replay(GraphExec* g) { bind(); check(api.cuGraphLaunch(g, stream_), "cuGraphLaunch"); }
void Device::destroy(GraphExec* g) {
    if (g) api.cuGraphExecDestroy(g);
}

float Device::time_copies(CUdeviceptr dst, CUdeviceptr src, size_t bytes, int n) {
    bind();
    CUevent a, b;
    check(api.cuEventCreate(&a, 0), "cuEventCreate");
    check(api.cuEventCreate(&b, 0), "cuEventCreate");
    check(api.cuEventRecord(a, stream_), "cuEventRecord");
    for (int i = 0; i < n; i++) check(api.cuMemcpyDtoDAsync(dst, src, bytes, stream_), "cuMemcpyDtoDAsync");
    check(api.cuEventRecord(b, stream_), "cuEventRecord");
    check(api.cuEventSynchronize(b), "cuEventSynchronize");
    float ms = 0.0f;
    check(api.cuEventElapsedTime(&ms, a, b), "cuEventElapsedTime");
    api.cuEventDestroy(a);
    api.cuEventDestroy(b);
    return ms;
}

}  // namespace cuda
}  // namespace ll
