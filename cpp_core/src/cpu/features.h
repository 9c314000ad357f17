// cpu/features.h -- what this CPU can execute, asked at run time.
//
// The core is compiled with -march=native where possible, but a wheel built on one machine may run on
// another: every SIMD kernel is compiled with __attribute__((target(...))) so it exists regardless of
// -march, and is only called after these bits say the CPU (and the OS, for the wide registers) supports it.
#pragma once

namespace ll {

struct CpuFeatures {
    bool avx2 = false, fma = false, f16c = false;                       // the AVX2 level
    bool avx512f = false, avx512bw = false, avx512vl = false;           // the AVX-512 level
    bool avx512vnni = false, avx512bf16 = false, avxvnni = false;       // int8 / bf16 dot instructions
    bool neon = false, dotprod = false;                                 // aarch64

    bool has_avx2() const { return avx2 && fma && f16c; }
    bool has_avx512() const { return has_avx2() && avx512f && avx512bw && avx512vl; }
    bool has_avx512vnni() const { return has_avx512() && avx512vnni; }
    bool has_neon() const { return neon; }
    bool has_dotprod() const { return neon && dotprod; }  // ARMv8.2 SDOT/UDOT (vdotq_s32)
};

// Detected once (cpuid + xgetbv on x86, the kernel's HWCAP bits on aarch64 Linux), then cached.
const CpuFeatures& cpu_features();

}  // namespace ll
