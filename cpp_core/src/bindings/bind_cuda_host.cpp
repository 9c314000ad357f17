// bindings/bind_cuda_host.cpp -- the CUDA kernels' per-thread code, compiled for the CPU and bound to Python.
//
// No GPU is needed to check most of what a kernel computes: which bytes it reads, how it unpacks them, which
// position or head a thread index stands for. Those live in the LL_HD functions of cuda/*.cu(h), written once and
// compiled both for the device (NVRTC, at run time) and here, for the host. tests/test_cuda_host.py drives them
// the way the kernels' thread grids would (every row, every lane of a warp, every (token, head)) and compares
// the results with the lessons. What this cannot check: the kernels' launch geometry, shuffles, shared memory
// and float rounding on the device; those wait for tests/test_cuda_kernels.py on a GPU.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <cmath>
#include <stdexcept>
#include <string>
#include <vector>

using std::cos;
using std::exp;
using std::pow;
using std::sin;
using std::sqrt;
#include "cuda/attention.cu"
#include "cuda/matmul.cu"
#include "cuda/ops.cu"

namespace py = pybind11;

namespace {

using FloatArray = py::array_t<float, py::array::c_style | py::array::forcecast>;
using ByteArray = py::array_t<uint8_t, py::array::c_style | py::array::forcecast>;
using HalfBits = py::array_t<uint16_t, py::array::c_style | py::array::forcecast>;

// rows [n_rows, row_bytes] of `type` holding n_cols weights each; checked so a wrong call cannot read past them.
int64_t check_rows(int type, const ByteArray& w, int64_t n_cols) {
    const int be = block_elems(type), bb = block_bytes(type);
    if (bb == 0) throw std::invalid_argument("cuda emulation: unsupported ggml type " + std::to_string(type));
    if (n_cols < 32 || n_cols % 32 || n_cols % be) throw std::invalid_argument("cuda emulation: n_cols must be a multiple of 32 and of the block");
    if (w.ndim() != 2 || w.shape(1) != n_cols / be * bb)
        throw std::invalid_argument("cuda emulation: w must be [n_rows, " + std::to_string(n_cols / be * bb) + "] bytes");
    return w.shape(0);
}

// every weight of every row, the v0 way (dequant_one) or the v1/v2 way (decode_unit's integers and affine maps)
FloatArray dequantize(int type, ByteArray w, int64_t n_cols, bool units) {
    const int64_t n_rows = check_rows(type, w, n_cols), rb = w.shape(1);
    FloatArray out(std::vector<py::ssize_t>{py::ssize_t(n_rows), py::ssize_t(n_cols)});
    float* o = out.mutable_data();
    for (int64_t r = 0; r < n_rows; r++) {
        const u8* row = w.data() + r * rb;
        if (!units || type == T_F32 || type == T_F16) {
            for (int64_t i = 0; i < n_cols; i++) o[r * n_cols + i] = dequant_one(type, row, i);
            continue;
        }
        Unit32 U;
        for (int64_t u = 0; u < n_cols / 32; u++) {
            decode_unit(type, row, u, &U);
            for (int k = 0; k < 32; k++) o[r * n_cols + 32 * u + k] = U.a[k / 16] * float(U.q[k]) + U.b[k / 16];
        }
    }
    return out;
}

// the matvec kernels' per-thread code, run as their grids would: y [n_tok, n_rows] for x [n_tok, n_cols]
// version "matvec_v0/v1/v2" (one token at a time) or "matmul_v0/v1" (all tokens).
FloatArray product(const std::string& version, int type, ByteArray w, FloatArray x) {
    if (x.ndim() != 2) throw std::invalid_argument("cuda emulation: x must be [n_tok, n_cols]");
    const int n_tok = int(x.shape(0)), n_cols = int(x.shape(1));
    const int64_t n_rows = check_rows(type, w, n_cols), rb = w.shape(1);
    FloatArray out(std::vector<py::ssize_t>{py::ssize_t(n_tok), py::ssize_t(n_rows)});
    float* y = out.mutable_data();
    const float* xp = x.data();
    if (version == "matvec_v0" || version == "matmul_v0") {
        for (int t = 0; t < n_tok; t++)
            for (int64_t r = 0; r < n_rows; r++) y[t * n_rows + r] = matvec_v0_row(type, w.data() + r * rb, xp + int64_t(t) * n_cols, n_cols);
    } else if (version == "matvec_v1") {
        for (int t = 0; t < n_tok; t++)
            for (int64_t r = 0; r < n_rows; r++) {
                float s = 0.0f;  // the warp's 32 lanes, then the shuffle sum
                for (int lane = 0; lane < 32; lane++) s += matvec_v1_lane(type, w.data() + r * rb, xp + int64_t(t) * n_cols, n_cols, lane);
                y[t * n_rows + r] = s;
            }
    } else if (version == "matvec_v2") {
        const int n_units = n_cols / 32;
        std::vector<i8> xq(size_t(n_units) * 32);
        std::vector<float> xd(static_cast<size_t>(n_units));
        std::vector<int> xs(size_t(n_units) * 2);
        for (int t = 0; t < n_tok; t++) {
            const float* xt = xp + int64_t(t) * n_cols;
            for (int u = 0; u < n_units; u++) quantize_unit_q8(xt + 32 * u, xq.data() + 32 * u, xd.data() + u, xs.data() + 2 * u);  // quantize_q8's threads
            for (int64_t r = 0; r < n_rows; r++) {
                const u8* row = w.data() + r * rb;
                float s = 0.0f;
                for (int lane = 0; lane < 32; lane++)
                    s += type == T_F32 || type == T_F16 ? matvec_v1_lane(type, row, xt, n_cols, lane)
                                                        : matvec_v2_lane(type, row, xq.data(), xd.data(), xs.data(), n_cols, lane);
                y[t * n_rows + r] = s;
            }
        }
    } else if (version == "matmul_v1") {
        float acc[MATMUL_V1_TOKENS];
        for (int t0 = 0; t0 < n_tok; t0 += MATMUL_V1_TOKENS) {  // grid rows of 8 tokens
            const int nt = std::min(MATMUL_V1_TOKENS, n_tok - t0);
            for (int64_t r = 0; r < n_rows; r++) {
                std::vector<float> s(size_t(nt), 0.0f);
                for (int lane = 0; lane < 32; lane++) {
                    matmul_v1_lane(type, w.data() + r * rb, xp, n_cols, t0, nt, lane, acc);
                    for (int j = 0; j < nt; j++) s[size_t(j)] += acc[j];
                }
                for (int j = 0; j < nt; j++) y[int64_t(t0 + j) * n_rows + r] = s[size_t(j)];
            }
        }
    } else if (version == "matmul_v2") {  // each block's 256 threads, phase by phase, as the barriers order them
        std::vector<MM2Tile> tile(1);
        std::vector<float> acc(size_t(MM2_THREADS) * 16);
        for (int r0 = 0; r0 < n_rows; r0 += MM2_ROWS)
            for (int t0 = 0; t0 < n_tok; t0 += MM2_TOKS) {
                std::fill(acc.begin(), acc.end(), 0.0f);
                auto a = [&](int tid) { return reinterpret_cast<float(*)[4]>(acc.data() + 16 * tid); };
                for (int k0 = 0; k0 < n_cols; k0 += MM2_K) {
                    for (int tid = 0; tid < MM2_THREADS; tid++)
                        matmul_v2_load(type, w.data(), rb, xp, int(n_rows), n_cols, n_tok, r0, t0, k0, tid, tile.data());
                    for (int tid = 0; tid < MM2_THREADS; tid++) matmul_v2_compute(tile.data(), tid, a(tid));
                }
                for (int tid = 0; tid < MM2_THREADS; tid++) matmul_v2_store(a(tid), y, int(n_rows), n_tok, r0, t0, tid);
            }
    } else {
        throw std::invalid_argument("cuda emulation: no product version " + version);
    }
    return out;
}

}  // namespace

void register_cuda_host(py::module_& m) {
    py::module_ e = m.def_submodule("cuda_host", "The CUDA kernels' per-thread code compiled for the CPU (checks without a GPU).");
    e.def("dequantize", &dequantize, py::arg("type"), py::arg("w"), py::arg("n_cols"), py::arg("units") = false,
          "every weight: dequant_one (v0), or decode_unit's a*q+b (v1, v2) with units=True");
    e.def("product", &product, py::arg("version"), py::arg("type"), py::arg("w"), py::arg("x"),
          "y [n_tok, n_rows]: a matvec/matmul kernel's threads run one after another on the CPU");
    e.def("rmsnorm", [](FloatArray x, FloatArray w, float eps) {
        if (x.ndim() != 2 || w.ndim() != 1 || w.shape(0) != x.shape(1)) throw std::invalid_argument("rmsnorm: x [n, dim], w [dim]");
        FloatArray out(std::vector<py::ssize_t>{x.shape(0), x.shape(1)});
        for (py::ssize_t r = 0; r < x.shape(0); r++) rmsnorm_v0_row(x.data() + r * x.shape(1), w.data(), out.mutable_data() + r * x.shape(1), int(x.shape(1)), eps);
        return out;
    });
    e.def("add_rmsnorm", [](FloatArray x, FloatArray y, FloatArray w, float eps) {  // -> (x + y, rmsnorm(x + y) * w)
        if (x.ndim() != 2 || y.ndim() != 2 || x.shape(0) != y.shape(0) || x.shape(1) != y.shape(1) || w.ndim() != 1 ||
            w.shape(0) != x.shape(1))
            throw std::invalid_argument("add_rmsnorm: x, y [n, dim], w [dim]");
        FloatArray sum(std::vector<py::ssize_t>{x.shape(0), x.shape(1)}), out(std::vector<py::ssize_t>{x.shape(0), x.shape(1)});
        std::copy(x.data(), x.data() + x.size(), sum.mutable_data());
        for (py::ssize_t r = 0; r < x.shape(0); r++)
            add_rmsnorm_row(sum.mutable_data() + r * x.shape(1), y.data() + r * x.shape(1), w.data(), out.mutable_data() + r * x.shape(1),
                            int(x.shape(1)), eps);
        return py::make_tuple(sum, out);
    });
    e.def("rope", [](FloatArray x, int pos, int n_rot, float base, bool neox) {  // x [n_tok, n_head, head_dim]
        if (x.ndim() != 3 || n_rot < 2 || n_rot % 2 || n_rot > x.shape(2)) throw std::invalid_argument("rope: x [n, n_head, head_dim], even n_rot <= head_dim");
        FloatArray out(std::vector<py::ssize_t>{x.shape(0), x.shape(1), x.shape(2)});
        std::copy(x.data(), x.data() + x.size(), out.mutable_data());
        for (int t = 0; t < int(x.shape(0)); t++)
            for (int h = 0; h < int(x.shape(1)); h++)
                for (int i = 0; i < n_rot / 2; i++)
                    rope_v0_pair(out.mutable_data(), t, h, i, int(x.shape(1)), int(x.shape(2)), n_rot, base, neox, pos + t);
        return out;
    });
    e.def("swiglu", [](FloatArray g, FloatArray u) {
        if (g.size() != u.size()) throw std::invalid_argument("swiglu: gate and up differ in size");
        FloatArray out(std::vector<py::ssize_t>{py::ssize_t(g.size())});
        for (py::ssize_t i = 0; i < g.size(); i++) out.mutable_data()[i] = swiglu_v0_one(g.data()[i], u.data()[i]);
        return out;
    });
    e.def("embed", [](int type, ByteArray table, int64_t n_embd, py::array_t<int, py::array::c_style | py::array::forcecast> tokens) {
        const int64_t n_vocab = check_rows(type, table, n_embd);
        const int n = int(tokens.size());
        for (int t = 0; t < n; t++)
            if (tokens.data()[t] < 0 || tokens.data()[t] >= n_vocab) throw std::invalid_argument("embed: token out of range");
        FloatArray out(std::vector<py::ssize_t>{py::ssize_t(n), py::ssize_t(n_embd)});
        for (int t = 0; t < n; t++)
            for (int i = 0; i < int(n_embd); i++) out.mutable_data()[t * n_embd + i] = embed_v0_thread(type, table.data(), table.shape(1), tokens.data(), t, i);
        return out;
    });
    // q [n_tok, n_head, hd]; k, v: float16 bits [n_head_kv, n_ctx, hd] with positions 0..pos+n_tok-1 filled
    e.def("attention", [](FloatArray q, HalfBits k, HalfBits v, int pos) {
        if (q.ndim() != 3 || k.ndim() != 3 || v.ndim() != 3 || k.shape(2) != q.shape(2) || v.shape(0) != k.shape(0) ||
            v.shape(1) != k.shape(1) || v.shape(2) != k.shape(2) || q.shape(1) % k.shape(0) || pos < 0 || pos + q.shape(0) > k.shape(1))
            throw std::invalid_argument("attention: q [n, n_head, hd], k and v [n_head_kv, n_ctx >= pos + n, hd]");
        const int n_tok = int(q.shape(0)), n_head = int(q.shape(1)), hd = int(q.shape(2)), n_kv = int(k.shape(0)), n_ctx = int(k.shape(1));
        FloatArray out(std::vector<py::ssize_t>{py::ssize_t(n_tok), py::ssize_t(n_head) * hd});
        std::vector<float> scores(static_cast<size_t>(n_ctx));
        for (int t = 0; t < n_tok; t++)
            for (int h = 0; h < n_head; h++)
                attention_v0_thread(q.data(), k.data(), v.data(), out.mutable_data(), scores.data(), t, h, pos, n_head, n_kv, hd, n_ctx);
        return out;
    });
}
