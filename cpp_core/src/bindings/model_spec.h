// bindings/model_spec.h -- the model's hyper-parameters and weights, from the two dicts cpp_core/model.py's
// model_spec() builds, for every binding that makes a model (_core.LlamaModel, _core.Backend, forward_hidden).
//
// Weights cross the boundary as numpy views of the GGUF mmap: the structs hold their data pointers, and
// keep_alive holds a reference to every array, so the mmap cannot go away while a model reads it.
#pragma once

#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <stdexcept>
#include <string>
#include <vector>

#include "kernels.h"
#include "model/model.h"

namespace ll_bind {

namespace py = pybind11;

struct ModelSpec {
    ll::LlamaHParams hp;
    ll::ModelWeightRefs w;
    std::vector<py::object> keep_alive;  // the arrays whose memory the model reads
};

// A C-contiguous numpy array's bytes, checked against the size the model will read.
inline const uint8_t* array_bytes(const py::array& a, size_t expected, const std::string& what) {
    if (!(a.flags() & py::array::c_style)) throw std::invalid_argument(what + ": array is not C-contiguous");
    if (size_t(a.nbytes()) != expected)
        throw std::invalid_argument(what + ": " + std::to_string(a.nbytes()) + " bytes, expected " + std::to_string(expected));
    return static_cast<const uint8_t*>(a.data());
}

// hparams: n_vocab n_embd n_layer n_head n_head_kv head_dim n_ff n_rot rope_base rms_eps rope_neox.
// weights: GGUF tensor name -> (ggml_type, n_rows, n_cols, array) for a matrix, a float32 [n_embd] array for a norm.
inline ModelSpec parse_model_spec(const py::dict& hparams, const py::dict& weights) {
    ModelSpec s;
    ll::LlamaHParams& hp = s.hp;
    hp.n_vocab = hparams["n_vocab"].cast<int>();
    hp.n_embd = hparams["n_embd"].cast<int>();
    hp.n_layer = hparams["n_layer"].cast<int>();
    hp.n_head = hparams["n_head"].cast<int>();
    hp.n_head_kv = hparams["n_head_kv"].cast<int>();
    hp.head_dim = hparams["head_dim"].cast<int>();
    hp.n_ff = hparams["n_ff"].cast<int>();
    hp.n_rot = hparams["n_rot"].cast<int>();
    hp.rope_base = hparams["rope_base"].cast<float>();
    hp.rms_eps = hparams["rms_eps"].cast<float>();
    hp.rope_neox = hparams["rope_neox"].cast<bool>();
    if (hp.n_vocab < 1 || hp.n_embd < 1 || hp.n_layer < 1 || hp.n_layer > 4096) throw std::invalid_argument("bad model hyper-parameters");

    auto matrix = [&](const std::string& name) {
        if (!weights.contains(name)) throw std::invalid_argument("missing tensor " + name);
        auto spec = weights[py::str(name)].cast<py::tuple>();
        if (spec.size() != 4) throw std::invalid_argument(name + ": expected (ggml_type, n_rows, n_cols, array)");
        ll::WeightRef w;
        w.ggml_type = spec[0].cast<int>();
        w.n_rows = spec[1].cast<int64_t>();
        w.n_cols = spec[2].cast<int64_t>();
        py::array a = spec[3].cast<py::array>();
        if (w.n_rows < 1 || w.n_cols < 1) throw std::invalid_argument(name + ": empty matrix");
        w.data = array_bytes(a, size_t(w.n_rows) * ll::row_bytes(w.ggml_type, w.n_cols), name);
        s.keep_alive.push_back(a);
        return w;
    };
    auto vector = [&](const std::string& name) {
        if (!weights.contains(name)) throw std::invalid_argument("missing tensor " + name);
        py::array a = weights[py::str(name)].cast<py::array>();
        if (!py::isinstance<py::array_t<float>>(a)) throw std::invalid_argument(name + ": expected a float32 array");
        s.keep_alive.push_back(a);
        return reinterpret_cast<const float*>(array_bytes(a, sizeof(float) * size_t(hp.n_embd), name));
    };
    s.w.token_embd = matrix("token_embd.weight");
    s.w.output = weights.contains("output.weight") ? matrix("output.weight") : s.w.token_embd;  // tied embeddings
    s.w.output_norm = vector("output_norm.weight");
    for (int i = 0; i < hp.n_layer; i++) {
        const std::string b = "blk." + std::to_string(i) + ".";
        ll::LayerWeightRefs L;
        L.attn_norm = vector(b + "attn_norm.weight");
        L.wq = matrix(b + "attn_q.weight");
        L.wk = matrix(b + "attn_k.weight");
        L.wv = matrix(b + "attn_v.weight");
        L.wo = matrix(b + "attn_output.weight");
        L.ffn_norm = vector(b + "ffn_norm.weight");
        L.w_gate = matrix(b + "ffn_gate.weight");
        L.w_up = matrix(b + "ffn_up.weight");
        L.w_down = matrix(b + "ffn_down.weight");
        s.w.layers.push_back(L);
    }
    return s;
}

}  // namespace ll_bind
