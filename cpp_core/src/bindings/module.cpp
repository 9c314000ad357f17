// bindings/module.cpp -- the pybind11 entry point of cpp_core._core.
// Each part of the core registers its own functions, so the files stay independent:
//   bindings/bind_kernels.cpp -> register_kernels (ops and quantized products, numbered versions)
//   bindings/bind_model.cpp   -> register_model   (the whole forward pass)
//   bindings/bind_backend.cpp -> register_backend (the CPU/CUDA seam, the CUDA device)
//   bindings/bind_cuda_host.cpp -> register_cuda_host (the CUDA kernels' thread code run on the CPU, for tests)
#include <pybind11/pybind11.h>
namespace py = pybind11;

void register_kernels(py::module_& m);
void register_model(py::module_& m);
void register_backend(py::module_& m);
void register_cuda_host(py::module_& m);

PYBIND11_MODULE(_core, m) {
    m.doc() = "llama-lessons C++ core: the fast twin of lessons/";
    register_kernels(m);
    register_model(m);
    register_backend(m);
    register_cuda_host(m);
}
