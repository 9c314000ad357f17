// bindings/bind_backend.cpp -- the seam (backend/backend.h) and the CUDA device, seen from Python.
//
//   _core.Backend(kind, hparams, weights, n_ctx, ...)  any backend ("cpu", "cuda"), NumpyLlama's forward protocol
//   _core.cuda_device_info()                           the GPU, or RuntimeError with a one-line reason
//   _core.cuda_dev.*                                   raw device memory and kernel launches, for the kernel tests
// The CUDA parts need no CUDA to build: cuda/driver.cpp finds the driver when first asked.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <memory>
#include <string>
#include <vector>

#include "backend/backend.h"
#include "bindings/model_spec.h"
#include "cuda/driver.h"
#include "kernels.h"

namespace py = pybind11;

namespace {

using ll_bind::ModelSpec;  // hparams/weights dicts -> the model's structs (bindings/model_spec.h)

struct PyBackend {
    ModelSpec spec;
    std::unique_ptr<ll::Backend> backend;
    int n_vocab = 0;

    PyBackend(const std::string& kind, const py::dict& hparams, const py::dict& weights, int n_ctx, int n_threads,
              const std::string& kv_type, int n_gpu_layers, const py::bytes& kernel_image, const py::dict& versions, bool graphs) {
        spec = ll_bind::parse_model_spec(hparams, weights);
        ll::BackendOptions o;
        o.kind = kind;
        o.n_threads = n_threads;
        if (kv_type != "f16" && kv_type != "f32") throw std::invalid_argument("KV cache type must be f32 or f16, not '" + kv_type + "'");
        o.kv_type = kv_type == "f16" ? ll::GGML_F16 : ll::GGML_F32;
        o.n_gpu_layers = n_gpu_layers;
        o.kernel_image = std::string(kernel_image);
        o.graphs = graphs;
        for (auto item : versions) {
            const std::string k = item.first.cast<std::string>(), v = item.second.cast<std::string>();
            if (k == "matvec") o.matvec = v;
            else if (k == "matmul") o.matmul = v;
            else if (k == "attention") o.attention = v;
            else if (k == "rmsnorm") o.rmsnorm = v;
            else throw std::invalid_argument("no kernel family '" + k + "' (matvec, matmul, attention, rmsnorm)");
        }
        if (n_ctx < 1) throw std::invalid_argument("n_ctx must be at least 1");
        n_vocab = spec.hp.n_vocab;
        backend = ll::make_backend(spec.hp, spec.w, n_ctx, o);
    }

    py::array_t<float> forward(py::array_t<int32_t, py::array::c_style | py::array::forcecast> tokens, int64_t pos, bool last_only) {
        if (tokens.ndim() != 1 || tokens.size() == 0) throw std::invalid_argument("tokens must be a non-empty 1-D array");
        if (pos < 0 || pos + tokens.size() > backend->n_ctx()) throw std::invalid_argument("positions past n_ctx");
        const int n = int(tokens.size());
        py::array_t<float> logits({int64_t(last_only ? 1 : n), int64_t(n_vocab)});
        const int32_t* tok = tokens.data();
        float* out = logits.mutable_data();
        {
            py::gil_scoped_release release;
            backend->forward(tok, n, int(pos), out, last_only);
        }
        return logits;
    }
};

using KernelArgs = std::vector<std::pair<std::string, py::object>>;

std::vector<ll::cuda::KernelArg> kernel_args(const KernelArgs& args) {
    std::vector<ll::cuda::KernelArg> out;
    for (const auto& a : args) {
        if (a.first == "p") out.push_back(ll::cuda::KernelArg::ptr(a.second.cast<unsigned long long>()));
        else if (a.first == "i") out.push_back(ll::cuda::KernelArg::i32(a.second.cast<int32_t>()));
        else if (a.first == "l") out.push_back(ll::cuda::KernelArg::i64(a.second.cast<int64_t>()));
        else if (a.first == "f") out.push_back(ll::cuda::KernelArg::f32(a.second.cast<float>()));
        else throw std::invalid_argument("kernel argument kind must be p, i, l or f, not '" + a.first + "'");
    }
    return out;
}

}  // namespace

void register_backend(py::module_& m) {
    py::class_<PyBackend>(m, "Backend", "A model on a device, behind the seam of backend/backend.h (\"cpu\" or \"cuda\").")
        .def(py::init<const std::string&, const py::dict&, const py::dict&, int, int, const std::string&, int, const py::bytes&,
                      const py::dict&, bool>(),
             py::arg("kind"), py::arg("hparams"), py::arg("weights"), py::arg("n_ctx"), py::arg("n_threads") = 1,
             py::arg("kv_type") = "f16", py::arg("n_gpu_layers") = -1, py::arg("kernel_image") = py::bytes(),
             py::arg("versions") = py::dict(), py::arg("graphs") = true)
        .def("forward", &PyBackend::forward, py::arg("tokens"), py::arg("pos"), py::arg("last_only") = false)
        .def("reset", [](PyBackend& self) { self.backend->reset(); })
        .def_property_readonly("n_ctx", [](const PyBackend& self) { return self.backend->n_ctx(); })
        .def_property_readonly("kv_cache_bytes", [](const PyBackend& self) { return self.backend->kv_cache_bytes(); })
        .def_property_readonly("device_bytes", [](const PyBackend& self) { return self.backend->device_bytes(); })
        .def("describe", [](const PyBackend& self) { return self.backend->describe(); });

    // The CPU half of a partial offload, on its own (for the tests): a CPU model fed `steps` [(tokens, pos)] in turn,
    // each run through the first n_layers layers only; returns each step's residual stream [n, n_embd].
    m.def("forward_hidden", [](const py::dict& hparams, const py::dict& weights, int n_ctx, int n_threads, const std::string& kv_type,
                               const std::vector<std::pair<py::array_t<int32_t, py::array::c_style | py::array::forcecast>, int>>& steps,
                               int n_layers) {
        ModelSpec spec = ll_bind::parse_model_spec(hparams, weights);
        if (kv_type != "f16" && kv_type != "f32") throw std::invalid_argument("KV cache type must be f32 or f16");
        ll::LlamaModel model(spec.hp, spec.w, n_ctx, n_threads, kv_type == "f16" ? ll::GGML_F16 : ll::GGML_F32);
        py::list out;
        for (const auto& st : steps) {
            const int n = int(st.first.size());
            if (st.first.ndim() != 1 || n < 1) throw std::invalid_argument("tokens must be a non-empty 1-D array");
            py::array_t<float> hidden({int64_t(n), int64_t(spec.hp.n_embd)});
            model.forward_hidden(st.first.data(), n, st.second, n_layers, hidden.mutable_data());
            out.append(hidden);
        }
        return out;
    }, py::arg("hparams"), py::arg("weights"), py::arg("n_ctx"), py::arg("n_threads"), py::arg("kv_type"), py::arg("steps"),
       py::arg("n_layers"));

    m.def("cuda_device_info", []() {
        const auto& i = ll::cuda::Device::get().info();
        py::dict d;
        d["name"] = i.name, d["cc"] = py::make_tuple(i.cc_major, i.cc_minor), d["total_mem"] = i.total_mem;
        d["driver_version"] = i.driver_version, d["n_sm"] = i.n_sm;
        return d;
    }, "The first GPU: name, compute capability, memory, driver version; RuntimeError (one line) without a driver or a device.");

    py::module_ c = m.def_submodule("cuda_dev", "Raw device memory and kernel launches (the kernel tests' tools).");
    using ll::cuda::Device;
    c.def("alloc", [](size_t n) { return Device::get().alloc(n); });
    c.def("free", [](unsigned long long p) { Device::get().free(p); });
    c.def("upload", [](unsigned long long p, py::buffer b) {
        py::buffer_info i = b.request();
        Device::get().upload(p, i.ptr, size_t(i.size * i.itemsize));
    });
    c.def("download", [](unsigned long long p, size_t n) {
        std::string out(n, '\0');
        Device::get().download(out.data(), p, n);
        return py::bytes(out);
    });
    c.def("load_module", [](const py::bytes& image) { return reinterpret_cast<uintptr_t>(Device::get().load_module(std::string(image))); });
    c.def("function", [](uintptr_t module, const std::string& name) {
        return reinterpret_cast<uintptr_t>(Device::get().function(reinterpret_cast<ll::cuda::Module*>(module), name.c_str()));
    });
    c.def("launch", [](uintptr_t f, std::vector<unsigned> grid, std::vector<unsigned> block, unsigned shared, const KernelArgs& args) {
        if (grid.size() != 3 || block.size() != 3) throw std::invalid_argument("grid and block are 3 numbers each");
        auto a = kernel_args(args);
        Device& d = Device::get();
        d.launch(reinterpret_cast<ll::cuda::Function*>(f), grid[0], grid[1], grid[2], block[0], block[1], block[2], shared, a);
        d.sync();
    }, py::arg("function"), py::arg("grid"), py::arg("block"), py::arg("shared"), py::arg("args"));
    c.def("time_copies", [](unsigned long long dst, unsigned long long src, size_t bytes, int n) {
        return Device::get().time_copies(dst, src, bytes, n);
    }, "milliseconds for n device-to-device copies of bytes");
}
