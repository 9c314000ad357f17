// bindings/bind_kernels.cpp -- Python bindings of the kernels (cpp_core._core); the friendly wrappers are in cpp_core/kernels.py.
// Every entry point takes a version name ("" = the fast path's choice) so the tests can compare versions.
// Heavy calls release the GIL. Bad arguments throw std::invalid_argument, which pybind11 raises as ValueError.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <chrono>
#include <ctime>
#include <memory>
#include <stdexcept>
#include <string>

#include "cpu/features.h"
#include "kernels.h"
#include "matmul/blocks.h"

namespace py = pybind11;

namespace {

using FloatArray = py::array_t<float, py::array::c_style | py::array::forcecast>;
using ByteArray = py::array_t<uint8_t, py::array::c_style>;

// The last axis is the row; every leading axis is flattened into rows.
int64_t row_len(const py::array& a, const char* what) {
    if (a.ndim() < 1) throw std::invalid_argument(std::string(what) + " must have at least one axis");
    return int64_t(a.shape(a.ndim() - 1));
}

FloatArray empty_like_shape(const py::array& a) {
    std::vector<py::ssize_t> shape(a.shape(), a.shape() + a.ndim());
    return FloatArray(shape);
}

FloatArray py_rmsnorm(FloatArray x, FloatArray weight, float eps, const std::string& version) {
    const int64_t n = row_len(x, "x");
    if (weight.ndim() != 1 || weight.shape(0) != n)
        throw std::invalid_argument("rmsnorm: weight must have shape (" + std::to_string(n) + ",)");
    FloatArray out = empty_like_shape(x);
    const int64_t rows = n ? x.size() / n : 0;
    const float *xp = x.data(), *wp = weight.data();
    float* op = out.mutable_data();
    {
        py::gil_scoped_release nogil;
        for (int64_t r = 0; r < rows; r++) {
            if (version.empty()) ll::rmsnorm(xp + r * n, wp, op + r * n, n, eps);
            else ll::rmsnorm_v(version, xp + r * n, wp, op + r * n, n, eps);
        }
    }
    return out;
}

// rope_angles(positions [n_pos], n_rot, base) -> (cos, sin), each [n_pos, n_rot/2]: lesson 5's signature.
py::tuple py_rope_angles(py::array_t<int32_t, py::array::c_style | py::array::forcecast> positions, int n_rot, float base) {
    if (positions.ndim() != 1) throw std::invalid_argument("rope_angles: positions must be 1-D");
    if (n_rot <= 0 || n_rot % 2) throw std::invalid_argument("rope_angles: n_rot must be even and positive, got " + std::to_string(n_rot));
    const int64_t n_pos = positions.shape(0);
    FloatArray cos(std::vector<py::ssize_t>{py::ssize_t(n_pos), py::ssize_t(n_rot / 2)}), sin(cos.request().shape);
    ll::rope_angles(positions.data(), n_pos, n_rot, base, cos.mutable_data(), sin.mutable_data());
    return py::make_tuple(cos, sin);
}

// apply_rope(x [n, n_head, head_dim], cos [n, n_rot/2], sin, neox) -> a rotated copy: lesson 5's signature.
FloatArray py_apply_rope(FloatArray x, FloatArray cos, FloatArray sin, bool neox, const std::string& version) {
    if (x.ndim() != 3) throw std::invalid_argument("apply_rope: x must be [n_tok, n_head, head_dim]");
    if (cos.ndim() != 2 || sin.ndim() != 2 || cos.shape(0) != x.shape(0) || sin.shape(0) != x.shape(0) ||
        cos.shape(1) != sin.shape(1))
        throw std::invalid_argument("apply_rope: cos and sin must both be [n_tok, n_rot/2] for x's n_tok tokens");
    const int64_t n_tok = x.shape(0);
    const int n_head = int(x.shape(1)), head_dim = int(x.shape(2)), n_rot = int(2 * cos.shape(1));
    if (n_rot > head_dim) throw std::invalid_argument("apply_rope: n_rot (2 * cos.shape[1]) exceeds head_dim");
    FloatArray out = empty_like_shape(x);
    std::memcpy(out.mutable_data(), x.data(), size_t(x.size()) * sizeof(float));
    float* op = out.mutable_data();
    {
        py::gil_scoped_release nogil;
        if (version.empty()) ll::apply_rope(op, n_tok, n_head, head_dim, cos.data(), sin.data(), n_rot, neox);
        else ll::apply_rope_v(version, op, n_tok, n_head, head_dim, cos.data(), sin.data(), n_rot, neox);
    }
    return out;
}

FloatArray py_swiglu(FloatArray gate, FloatArray up, const std::string& version) {
    if (gate.ndim() != up.ndim() || !std::equal(gate.shape(), gate.shape() + gate.ndim(), up.shape()))
        throw std::invalid_argument("swiglu: gate and up must have the same shape");
    FloatArray out = empty_like_shape(gate);
    const int64_t n = gate.size();
    const float *gp = gate.data(), *up_ = up.data();
    float* op = out.mutable_data();
    {
        py::gil_scoped_release nogil;
        if (version.empty()) ll::swiglu(gp, up_, op, n);
        else ll::swiglu_v(version, gp, up_, op, n);
    }
    return out;
}

FloatArray py_softmax(FloatArray x, const std::string& version) {
    const int64_t n = row_len(x, "x");
    FloatArray out = empty_like_shape(x);
    std::memcpy(out.mutable_data(), x.data(), size_t(x.size()) * sizeof(float));
    const int64_t rows = n ? x.size() / n : 0;
    float* op = out.mutable_data();
    {
        py::gil_scoped_release nogil;
        for (int64_t r = 0; r < rows; r++) {
            if (version.empty()) ll::softmax(op + r * n, n);
            else ll::softmax_v(version, op + r * n, n);
        }
    }
    return out;
}

// W: raw rows, any dtype, C-contiguous, with n_rows * row_bytes bytes. x: [n_tok, n_cols] or [n_cols].
FloatArray py_quant_matmul(py::buffer W, int ggml_type, int64_t n_rows, int64_t n_cols, FloatArray x,
                           const std::string& version, ll::ThreadPool& pool) {
    const py::buffer_info wi = W.request();
    const size_t rb = ll::row_bytes(ggml_type, n_cols);
    if (n_rows < 0) throw std::invalid_argument("quant_matmul: n_rows < 0");
    const size_t w_bytes = size_t(wi.size) * size_t(wi.itemsize);
    if (w_bytes != rb * size_t(n_rows))
        throw std::invalid_argument("quant_matmul: W has " + std::to_string(w_bytes) + " bytes, expected " +
                                    std::to_string(n_rows) + " rows x " + std::to_string(rb));
    if (!py::array::ensure(W) || !(py::array::ensure(W).flags() & py::array::c_style))
        throw std::invalid_argument("quant_matmul: W must be a C-contiguous array");
    if (row_len(x, "x") != n_cols)
        throw std::invalid_argument("quant_matmul: x's last axis is " + std::to_string(row_len(x, "x")) + ", W has " +
                                    std::to_string(n_cols) + " columns");
    const int64_t n_tok = x.ndim() == 1 ? 1 : x.size() / n_cols;
    std::vector<py::ssize_t> shape(x.shape(), x.shape() + x.ndim() - 1);
    shape.push_back(py::ssize_t(n_rows));
    FloatArray y(shape);
    const uint8_t* wp = static_cast<const uint8_t*>(wi.ptr);
    const float* xp = x.data();
    float* yp = y.mutable_data();
    {
        py::gil_scoped_release nogil;
        if (version.empty()) ll::quant_matmul(ggml_type, wp, n_rows, n_cols, xp, n_tok, yp, pool);
        else ll::quant_matmul_v(version, ggml_type, wp, n_rows, n_cols, xp, n_tok, yp, pool);
    }
    return y;
}

// For tests: the C++ dequantizer of one type on raw rows [n_rows, row_bytes] -> [n_rows, n_cols].
FloatArray py_dequantize(ByteArray raw, int ggml_type, int64_t n_cols) {
    const size_t rb = ll::row_bytes(ggml_type, n_cols);
    if (raw.size() % rb != 0) throw std::invalid_argument("dequantize: byte count is not a whole number of rows");
    const int64_t n_rows = int64_t(raw.size() / rb);
    FloatArray out(std::vector<py::ssize_t>{py::ssize_t(n_rows), py::ssize_t(n_cols)});
    const ll::QuantType* t = ll::quant_type(ggml_type);
    for (int64_t r = 0; r < n_rows; r++) t->dequantize_row(raw.data() + r * rb, out.mutable_data() + r * n_cols, n_cols);
    return out;
}

// For tests: activation quantization, format "q8_0", "q8_1" or "q8_k"; returns the raw blocks of each row.
ByteArray py_quantize_activations(FloatArray x, const std::string& format) {
    ll::ActFormat f;
    int block;
    if (format == "q8_0") f = ll::ActFormat::Q8_0, block = 32;
    else if (format == "q8_1") f = ll::ActFormat::Q8_1, block = 32;
    else if (format == "q8_k") f = ll::ActFormat::Q8_K, block = 256;
    else throw std::invalid_argument("unknown activation format: " + format);
    const int64_t n = row_len(x, "x");
    if (n % block != 0) throw std::invalid_argument(format + " needs a multiple of " + std::to_string(block) + " columns");
    const int64_t rows = n ? x.size() / n : 0;
    const size_t rb = ll::act_row_bytes(f, n);
    ByteArray out(std::vector<py::ssize_t>{py::ssize_t(rows), py::ssize_t(rb)});
    for (int64_t r = 0; r < rows; r++) ll::quantize_act_row(f, x.data() + r * n, out.mutable_data() + r * rb, n);
    return out;
}

// ---- timing in C++, so Python's call overhead (~1-20 us) does not swamp kernels of ~0.1-100 us ----
// Returns (best wall seconds per call, CPU seconds of the whole process per call during that best round).
struct Timing {
    double wall, cpu;
};
template <class F>
Timing best_of(int rounds, int calls, F&& f) {
    Timing best{1e30, 0.0};
    for (int r = 0; r < rounds; r++) {
        timespec c0, c1;
        clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &c0);
        const auto t0 = std::chrono::steady_clock::now();
        for (int i = 0; i < calls; i++) f();
        const double wall = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count() / calls;
        clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &c1);
        const double cpu = ((c1.tv_sec - c0.tv_sec) + 1e-9 * (c1.tv_nsec - c0.tv_nsec)) / calls;
        if (wall < best.wall) best = {wall, cpu};
    }
    return best;
}

// One op on random data of size n (apply_rope: n = n_head * 64), `calls` calls per round.
py::tuple py_bench_op(const std::string& op, const std::string& version, int64_t n, int rounds, int calls) {
    std::vector<float> a(static_cast<size_t>(n)), b(static_cast<size_t>(n)), out(static_cast<size_t>(n));
    for (int64_t i = 0; i < n; i++) a[size_t(i)] = float((i * 7919) % 1000) / 250.0f - 2.0f, b[size_t(i)] = 1.0f;
    Timing t;
    {
        py::gil_scoped_release nogil;
        if (op == "rmsnorm") t = best_of(rounds, calls, [&] { ll::rmsnorm_v(version, a.data(), b.data(), out.data(), n, 1e-5f); });
        else if (op == "swiglu") t = best_of(rounds, calls, [&] { ll::swiglu_v(version, a.data(), b.data(), out.data(), n); });
        else if (op == "softmax") t = best_of(rounds, calls, [&] { ll::softmax_v(version, a.data(), n); });
        else if (op == "apply_rope") {  // one token's q: n / 64 heads of 64, the angles of position 300
            std::vector<float> cos(32), sin(32);
            const int32_t pos = 300;
            ll::rope_angles(&pos, 1, 64, 1e5f, cos.data(), sin.data());
            t = best_of(rounds, calls, [&] { ll::apply_rope_v(version, a.data(), 1, int(n / 64), 64, cos.data(), sin.data(), 64, false); });
        }
        else throw std::invalid_argument("bench_op: unknown op " + op);
    }
    return py::make_tuple(t.wall, t.cpu);
}

// A list of weight matrices [(W raw array, ggml_type, n_rows, n_cols)] multiplied by n_tok random tokens,
// as one forward pass does: seconds per pass through the list.
py::tuple py_bench_matmuls(py::list mats, int64_t n_tok, const std::string& version, ll::ThreadPool& pool, int rounds,
                           int calls) {
    struct Mat { const uint8_t* w; int type; int64_t rows, cols; };
    std::vector<Mat> ms;
    std::vector<py::buffer_info> keep;
    int64_t max_rows = 0, max_cols = 0;
    for (auto item : mats) {
        auto tup = item.cast<py::tuple>();
        keep.push_back(tup[0].cast<py::buffer>().request());
        Mat m{static_cast<const uint8_t*>(keep.back().ptr), tup[1].cast<int>(), tup[2].cast<int64_t>(), tup[3].cast<int64_t>()};
        if (size_t(keep.back().size * keep.back().itemsize) != ll::row_bytes(m.type, m.cols) * size_t(m.rows))
            throw std::invalid_argument("bench_matmuls: a matrix's byte count does not match its shape");
        max_rows = std::max(max_rows, m.rows), max_cols = std::max(max_cols, m.cols);
        ms.push_back(m);
    }
    std::vector<float> x(static_cast<size_t>(n_tok * max_cols)), y(static_cast<size_t>(n_tok * max_rows));
    for (size_t i = 0; i < x.size(); i++) x[i] = float((i * 7919) % 1000) / 250.0f - 2.0f;
    Timing t;
    {
        py::gil_scoped_release nogil;
        t = best_of(rounds, calls, [&] {
            for (const Mat& m : ms) ll::quant_matmul_v(version, m.type, m.w, m.rows, m.cols, x.data(), n_tok, y.data(), pool);
        });
    }
    return py::make_tuple(t.wall, t.cpu);
}

}  // namespace

void register_kernels(py::module_& m) {
    py::class_<ll::ThreadPool>(m, "ThreadPool", "A persistent pool of worker threads (n_threads includes the caller).")
        .def(py::init<int>(), py::arg("n_threads"))
        .def_property_readonly("n_threads", &ll::ThreadPool::n_threads);

    m.def("cpu_features", [] {
        const ll::CpuFeatures& f = ll::cpu_features();
        return py::dict(py::arg("avx2") = f.avx2, py::arg("fma") = f.fma, py::arg("f16c") = f.f16c,
                        py::arg("avx512f") = f.avx512f, py::arg("avx512bw") = f.avx512bw, py::arg("avx512vl") = f.avx512vl,
                        py::arg("avx512vnni") = f.avx512vnni, py::arg("avx512bf16") = f.avx512bf16,
                        py::arg("avxvnni") = f.avxvnni, py::arg("neon") = f.neon);
    }, "What this CPU supports (cpuid + xgetbv), as the kernels see it.");
    m.def("kernel_ops", &ll::kernel_ops);
    m.def("list_versions", [](const std::string& op) {
        py::list out;
        for (const auto& v : ll::list_versions(op)) out.append(py::make_tuple(v.name, v.idea, v.available));
        return out;
    }, py::arg("op"), "[(name, idea, available_on_this_cpu), ...] from slowest to fastest");
    m.def("active_version", &ll::active_version, py::arg("op"));
    m.def("quant_matmul_kernel", &ll::quant_matmul_kernel, py::arg("version"), py::arg("ggml_type"), py::arg("n_tok") = 1,
          "the kernel a quant_matmul version runs for a type and a token count (its own, or its fallback's)");
    m.def("row_bytes", &ll::row_bytes, py::arg("ggml_type"), py::arg("n_cols"));

    m.def("rmsnorm", &py_rmsnorm, py::arg("x"), py::arg("weight"), py::arg("eps"), py::arg("version") = "");
    m.def("rope_angles", &py_rope_angles, py::arg("positions"), py::arg("n_rot"), py::arg("base"));
    m.def("apply_rope", &py_apply_rope, py::arg("x"), py::arg("cos"), py::arg("sin"), py::arg("neox") = false, py::arg("version") = "");
    m.def("swiglu", &py_swiglu, py::arg("gate"), py::arg("up"), py::arg("version") = "");
    m.def("softmax", &py_softmax, py::arg("x"), py::arg("version") = "");
    m.def("quant_matmul", &py_quant_matmul, py::arg("W"), py::arg("ggml_type"), py::arg("n_rows"), py::arg("n_cols"),
          py::arg("x"), py::arg("version"), py::arg("pool"));
    m.def("bench_op", &py_bench_op, py::arg("op"), py::arg("version"), py::arg("n"), py::arg("rounds"), py::arg("calls"),
          "(best wall seconds per call, process CPU seconds per call)");
    m.def("bench_matmuls", &py_bench_matmuls, py::arg("mats"), py::arg("n_tok"), py::arg("version"), py::arg("pool"),
          py::arg("rounds"), py::arg("calls"), "[(W, ggml_type, n_rows, n_cols)] -> (wall, cpu) seconds per pass");
    m.def("dequantize", &py_dequantize, py::arg("raw"), py::arg("ggml_type"), py::arg("n_cols"));
    m.def("quantize_activations", &py_quantize_activations, py::arg("x"), py::arg("format"));
}
