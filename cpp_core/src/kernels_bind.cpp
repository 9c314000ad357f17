// kernels_bind.cpp -- Python bindings of the kernels (owned by the kernels work).
#include <pybind11/pybind11.h>
namespace py = pybind11;
void register_kernels(py::module_& m) { (void)m; }
