// kernels.cpp -- the registry of every op's versions (kernels.h): by op name, for tests and benchmarks.
#include <stdexcept>
#include <string>
#include <vector>

#include "cpu/features.h"
#include "kernels.h"

namespace ll {

bool detail::cpu_any() { return true; }
bool detail::cpu_avx2() { return cpu_features().has_avx2(); }
bool detail::cpu_avx512() { return cpu_features().has_avx512(); }
bool detail::cpu_avx512vnni() { return cpu_features().has_avx512vnni(); }

// Every op with a version table: its name, its versions, and the one its fast path runs.
struct OpRegistry {
    const char* name;
    std::vector<VersionInfo> (*versions)();
    std::string (*active)();
};
static const OpRegistry kOps[] = {
    {"rmsnorm", detail::rmsnorm_versions, detail::rmsnorm_active},
    {"apply_rope", detail::apply_rope_versions, detail::apply_rope_active},
    {"swiglu", detail::swiglu_versions, detail::swiglu_active},
    {"softmax", detail::softmax_versions, detail::softmax_active},
    {"quant_matmul", detail::quant_matmul_versions, detail::quant_matmul_active},
};

static const OpRegistry& op_named(const std::string& op) {
    for (const auto& entry : kOps)
        if (op == entry.name) return entry;
    throw std::invalid_argument("unknown kernel op: " + op);
}

std::vector<std::string> kernel_ops() {
    std::vector<std::string> out;
    for (const auto& entry : kOps) out.push_back(entry.name);
    return out;
}
std::vector<VersionInfo> list_versions(const std::string& op) { return op_named(op).versions(); }
std::string active_version(const std::string& op) { return op_named(op).active(); }

}  // namespace ll
