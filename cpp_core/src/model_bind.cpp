// model_bind.cpp -- Python bindings of the C++ model (owned by the model work).
#include <pybind11/pybind11.h>
namespace py = pybind11;
void register_model(py::module_& m) { (void)m; }
