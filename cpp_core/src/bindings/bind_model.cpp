// bindings/bind_model.cpp -- Python bindings of the C++ model (cpp_core/model.py wraps them).
//
// Weights cross the boundary as numpy views of the GGUF mmap: the binding takes their data pointers
// and keeps a reference to every array, so the mmap cannot go away while the model lives.
#include <chrono>
#include <ctime>
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <array>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "bindings/model_spec.h"
#include "model/model.h"
#include "matmul/blocks.h"  // fp32_to_fp16

namespace py = pybind11;

namespace {

// "f32" / "f16" -> the ggml type the KV cache stores
int kv_cache_type(const std::string& name) {
    if (name == "f32") return ll::GGML_F32;
    if (name == "f16") return ll::GGML_F16;
    throw std::invalid_argument("KV cache type must be f32 or f16, not '" + name + "'");
}

// A cache array for attention(): float16 stays float16 (its bits are read as they are), anything else as float32.
py::array cache_array(const py::array& a) {
    if (py::isinstance<py::array_t<uint16_t>>(a)) throw std::invalid_argument("attention: pass a float16 cache as float16, not uint16");
    if (a.dtype().is(py::dtype("float16"))) return py::array::ensure(a, py::array::c_style);
    return py::array_t<float, py::array::c_style | py::array::forcecast>::ensure(a);
}

struct PyLlamaModel {
    std::unique_ptr<ll::LlamaModel> model;
    std::vector<py::object> keep_alive;  // the arrays whose memory the model reads

    // weights: GGUF tensor name -> (ggml_type, n_rows, n_cols, array); norms are float32 [n_embd] arrays.
    // kv_type: "f32" or "f16" (llama.cpp's default), what the KV cache stores.
    PyLlamaModel(const py::dict& hparams, const py::dict& weights, int n_ctx, int n_threads, const std::string& kv_type) {
        const int kv = kv_cache_type(kv_type);
        ll_bind::ModelSpec spec = ll_bind::parse_model_spec(hparams, weights);
        keep_alive = std::move(spec.keep_alive);
        model = std::make_unique<ll::LlamaModel>(spec.hp, std::move(spec.w), n_ctx, n_threads, kv);
    }

    py::array_t<float> forward(py::array_t<int32_t, py::array::c_style | py::array::forcecast> tokens, int64_t pos, bool last_only) {
        if (tokens.ndim() != 1 || tokens.size() == 0) throw std::invalid_argument("tokens must be a non-empty 1-D array");
        if (pos < 0 || pos > model->n_ctx()) throw std::invalid_argument("pos out of range");
        const int n = int(std::min<int64_t>(tokens.size(), int64_t(model->n_ctx()) + 1));  // forward() rejects too many
        if (int64_t(n) != tokens.size()) throw std::invalid_argument("more tokens than n_ctx");
        const int64_t rows = last_only ? 1 : n, n_vocab = model->hparams().n_vocab;
        py::array_t<float> logits({rows, n_vocab});
        const int32_t* tok = tokens.data();
        float* out = logits.mutable_data();
        {
            py::gil_scoped_release release;  // the forward pass touches no Python object
            model->forward(tok, n, int(pos), out, last_only);
        }
        return logits;
    }
};

// attention(q [n, n_head, hd], k_cache [n_head_kv, n_ctx, hd], v_cache, pos, version, n_threads, heads) -> [n, n_head*hd]
// heads = (begin, end): compute only those query heads (a decoding team's share); the others stay 0.
// k and v: both float32, or both float16 (the model's float16 cache).
py::array_t<float> attention_py(py::array_t<float, py::array::c_style | py::array::forcecast> q, const py::array& k_in,
                                const py::array& v_in, int pos, const std::string& version, int n_threads,
                                std::pair<int, int> heads) {
    const py::array k = cache_array(k_in), v = cache_array(v_in);
    const bool f16 = k.dtype().is(py::dtype("float16"));
    if (f16 != v.dtype().is(py::dtype("float16"))) throw std::invalid_argument("attention: k and v must have the same dtype");
    if (q.ndim() != 3 || k.ndim() != 3 || v.ndim() != 3) throw std::invalid_argument("attention: q, k, v must be 3-D");
    const int n = int(q.shape(0)), n_head = int(q.shape(1)), hd = int(q.shape(2)), n_head_kv = int(k.shape(0));
    for (int i = 0; i < 3; i++)
        if (k.shape(i) != v.shape(i)) throw std::invalid_argument("attention: k and v shapes differ");
    if (k.shape(2) != hd) throw std::invalid_argument("attention: head_dim of q and k differ");
    if (pos < 0 || int64_t(pos) + n > k.shape(1)) throw std::invalid_argument("attention: the cache holds fewer than pos + n positions");
    py::array_t<float> out({int64_t(n), int64_t(n_head) * hd});
    std::fill(out.mutable_data(), out.mutable_data() + out.size(), 0.0f);
    ll::ThreadPool pool(n_threads);
    const ll::AttentionShape s{n, pos, n_head, n_head_kv, hd, heads.first, heads.second, f16 ? ll::GGML_F16 : ll::GGML_F32,
                               int(k.shape(1))};
    if (version.empty())
        ll::attention(q.data(), k.data(), v.data(), out.mutable_data(), s, pool);
    else
        ll::attention_v(version, q.data(), k.data(), v.data(), out.mutable_data(), s, pool);
    return out;
}

// Timing in C++ for tools/bench_kernels.py: one call = attention in each of n_layer layers, each layer with
// its own cache (so a long context does not sit in L2 as it would with one layer). Returns
// (best wall seconds per call, process CPU seconds per call during that round).
py::tuple bench_attention_py(const std::string& version, int n_tok, int pos, int n_head, int n_head_kv, int head_dim,
                             int n_layer, int n_threads, int rounds, int calls, const std::string& kv_type) {
    const int kv = kv_cache_type(kv_type);
    if (n_tok < 1 || pos < 0 || n_head < 1 || n_head_kv < 1 || head_dim < 1 || n_layer < 1 || rounds < 1 || calls < 1 ||
        int64_t(pos + n_tok) * n_head_kv * head_dim * n_layer > (int64_t(1) << 28))
        throw std::invalid_argument("bench_attention: bad sizes");
    const int64_t n_ctx = pos + n_tok, layer = n_ctx * n_head_kv * head_dim;
    std::vector<float> k(size_t(layer * n_layer)), v(k.size()), q(size_t(int64_t(n_tok) * n_head * head_dim)), out(q.size());
    for (size_t i = 0; i < k.size(); i++) k[i] = float((i * 7919) % 1000) / 500.0f - 1.0f, v[i] = float((i * 104729) % 1000) / 500.0f - 1.0f;
    for (size_t i = 0; i < q.size(); i++) q[i] = float((i * 31) % 100) / 50.0f - 1.0f;
    std::vector<uint16_t> k16(k.size()), v16(v.size());  // the same values rounded, for a float16 cache
    for (size_t i = 0; i < k.size(); i++) k16[i] = ll::fp32_to_fp16(k[i]), v16[i] = ll::fp32_to_fp16(v[i]);
    const size_t bytes = kv == ll::GGML_F16 ? 2 : 4;
    const uint8_t *kb = kv == ll::GGML_F16 ? reinterpret_cast<const uint8_t*>(k16.data()) : reinterpret_cast<const uint8_t*>(k.data());
    const uint8_t *vb = kv == ll::GGML_F16 ? reinterpret_cast<const uint8_t*>(v16.data()) : reinterpret_cast<const uint8_t*>(v.data());
    ll::ThreadPool pool(n_threads);
    const ll::AttentionShape s{n_tok, pos, n_head, n_head_kv, head_dim, 0, 0, kv, int(n_ctx)};
    double best_wall = 1e30, best_cpu = 0.0;
    {
    py::gil_scoped_release nogil;
    for (int r = 0; r < rounds; r++) {
        timespec c0, c1;
        clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &c0);
        const auto t0 = std::chrono::steady_clock::now();
        for (int i = 0; i < calls; i++)
            for (int l = 0; l < n_layer; l++)
                ll::attention_v(version, q.data(), kb + l * layer * bytes, vb + l * layer * bytes, out.data(), s, pool);
        const double wall = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count() / calls;
        clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &c1);
        if (wall < best_wall) best_wall = wall, best_cpu = ((c1.tv_sec - c0.tv_sec) + 1e-9 * (c1.tv_nsec - c0.tv_nsec)) / calls;
    }
    }
    return py::make_tuple(best_wall, best_cpu);
}

// The decoding team's way of sharing a step (model/work_stretches.h), on its own: n units over n_threads threads,
// thread slow_thread sleeping slow_us before each of its pieces. [(thread, begin, end)] in the order taken.
py::list share_step_py(int64_t n, int64_t align, int n_threads, int slow_thread, int slow_us) {
    if (n < 0 || n >= (int64_t(1) << 31) || align < 1 || n_threads < 1 || n_threads > 1024 || slow_us < 0 || slow_us > 1000000)
        throw std::invalid_argument("share_step: need 0 <= n < 2^31, align >= 1, 1 <= n_threads <= 1024, 0 <= slow_us <= 1e6");
    ll::ThreadPool pool(n_threads);
    std::vector<ll::Stretch> stretches(static_cast<size_t>(n_threads));
    ll::reset_stretches(stretches.data(), n_threads, n, align);
    std::vector<std::vector<std::array<int64_t, 2>>> pieces(static_cast<size_t>(n_threads));
    {
        py::gil_scoped_release release;
        pool.run_team([&](int t, int nt) {
            int64_t b, e;
            for (;;) {
                if (t == slow_thread) std::this_thread::sleep_for(std::chrono::microseconds(slow_us));
                if (!ll::next_piece(stretches.data(), nt, t, align, &b, &e)) break;
                pieces[size_t(t)].push_back({b, e});
            }
        });
    }
    py::list out;
    for (int t = 0; t < n_threads; t++)
        for (const auto& p : pieces[size_t(t)]) out.append(py::make_tuple(t, p[0], p[1]));
    return out;
}

}  // namespace

void register_model(py::module_& m) {
    py::class_<PyLlamaModel>(m, "LlamaModel", "The C++ forward pass; weights are read in place from the arrays given.")
        .def(py::init<const py::dict&, const py::dict&, int, int, const std::string&>(), py::arg("hparams"), py::arg("weights"),
             py::arg("n_ctx"), py::arg("n_threads"), py::arg("kv_type") = "f32")
        .def("forward", &PyLlamaModel::forward, py::arg("tokens"), py::arg("pos"), py::arg("last_only") = false)
        .def("reset", [](PyLlamaModel& self) { self.model->reset(); })
        .def_property("fuse_decode", [](const PyLlamaModel& self) { return self.model->fuse_decode(); },
                      [](PyLlamaModel& self, bool on) { self.model->set_fuse_decode(on); },
                      "decode a token as one team of threads with barriers between steps (default True)")
        .def_property("matmul_version", [](const PyLlamaModel& self) { return self.model->matmul_version(); },
                      [](PyLlamaModel& self, const std::string& v) { self.model->set_matmul_version(v); },
                      "the quant_matmul version for every product (\"\" = the kernels' fast path)")
        .def_property_readonly("n_ctx", [](const PyLlamaModel& self) { return self.model->n_ctx(); })
        .def_property_readonly("n_threads", [](const PyLlamaModel& self) { return self.model->n_threads(); })
        .def_property_readonly("kv_cache_bytes", [](const PyLlamaModel& self) { return self.model->kv_cache_bytes(); })
        .def_property_readonly("kv_type", [](const PyLlamaModel& self) { return std::string(self.model->kv_type() == ll::GGML_F16 ? "f16" : "f32"); })
        .def_property_readonly("arrays", [](const PyLlamaModel& self) { return self.keep_alive; },
                               "the arrays whose memory the model reads (views of the GGUF mmap)");
    m.def("attention", &attention_py, py::arg("q"), py::arg("k_cache"), py::arg("v_cache"), py::arg("pos"),
          py::arg("version") = "", py::arg("n_threads") = 1, py::arg("heads") = std::make_pair(0, 0),
          "Causal GQA attention of n new queries at positions pos.. against a [n_head_kv, n_ctx, head_dim] cache (float32 or float16).");
    m.def("attention_versions", []() {
        py::list out;
        for (const auto& v : ll::attention_versions()) out.append(py::make_tuple(v.name, v.idea, v.available));
        return out;
    });
    m.def("attention_active", &ll::attention_active);
    m.def("bench_attention", &bench_attention_py, py::arg("version"), py::arg("n_tok"), py::arg("pos"), py::arg("n_head"),
          py::arg("n_head_kv"), py::arg("head_dim"), py::arg("n_layer"), py::arg("n_threads"), py::arg("rounds"), py::arg("calls"),
          py::arg("kv_type") = "f32",
          "(best wall, process CPU) seconds per call of attention through n_layer layer caches");
    m.def("share_step", &share_step_py, py::arg("n"), py::arg("align"), py::arg("n_threads"), py::arg("slow_thread") = -1,
          py::arg("slow_us") = 0,
          "How a decoding team shares a step's n units: [(thread, begin, end)] per piece, thread slow_thread sleeping before each");
}
