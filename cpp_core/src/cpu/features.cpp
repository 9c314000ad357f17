// cpu/features.cpp -- cpuid / xgetbv probing (x86), HWCAP bits (aarch64 Linux), a fixed answer elsewhere.
#include "cpu/features.h"

#include <cstdint>
#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>
#endif
#if defined(__aarch64__) && defined(__linux__)
#include <sys/auxv.h>
#elif defined(__aarch64__) && defined(__APPLE__)
#include <sys/sysctl.h>
#endif

namespace ll {

#if defined(__x86_64__) || defined(__i386__)
// XCR0 says which register files the OS saves on a context switch: a CPU may support AVX-512 while the
// OS does not, and then using zmm registers faults. Bits: 1 SSE, 2 AVX (ymm), 5-7 AVX-512 (k, zmm).
static uint64_t read_xcr0() {
    uint32_t eax, edx;
    __asm__ volatile("xgetbv" : "=a"(eax), "=d"(edx) : "c"(0));
    return (uint64_t(edx) << 32) | eax;
}

static CpuFeatures detect() {
    CpuFeatures f;
    unsigned a, b, c, d;
    if (!__get_cpuid(1, &a, &b, &c, &d)) return f;
    const bool osxsave = c & (1u << 27), avx = c & (1u << 28);
    if (!osxsave || !avx) return f;
    const uint64_t xcr0 = read_xcr0();
    const bool os_ymm = (xcr0 & 0x6) == 0x6, os_zmm = (xcr0 & 0xe6) == 0xe6;
    if (!os_ymm) return f;
    f.fma = c & (1u << 12);
    f.f16c = c & (1u << 29);
    if (!__get_cpuid_count(7, 0, &a, &b, &c, &d)) return f;
    f.avx2 = b & (1u << 5);
    if (os_zmm) {
        f.avx512f = b & (1u << 16);
        f.avx512bw = b & (1u << 30);
        f.avx512vl = b & (1u << 31);
        f.avx512vnni = c & (1u << 11);
    }
    unsigned a1, b1, c1, d1;
    if (__get_cpuid_count(7, 1, &a1, &b1, &c1, &d1)) {
        f.avxvnni = a1 & (1u << 4);
        if (os_zmm) f.avx512bf16 = a1 & (1u << 5);
    }
    return f;
}
#else
static CpuFeatures detect() {
    CpuFeatures f;
#if defined(__aarch64__)
    f.neon = true;  // NEON (ASIMD) is part of the aarch64 base ISA
#if defined(__linux__)
    // The dot-product instructions (ARMv8.2, optional before ARMv8.4) are announced by the kernel in
    // AT_HWCAP; user space cannot read the ID registers itself. Bit 20 = HWCAP_ASIMDDP.
    f.dotprod = (getauxval(AT_HWCAP) & (1ul << 20)) != 0;
#elif defined(__APPLE__)
    // macOS names the feature instead (compile-checked only: no Mac was at hand).
    int has = 0;
    size_t len = sizeof has;
    f.dotprod = sysctlbyname("hw.optional.arm.FEAT_DotProd", &has, &len, nullptr, 0) == 0 && has != 0;
#endif
#endif
    return f;
}
#endif

const CpuFeatures& cpu_features() {
    static const CpuFeatures features = detect();
    return features;
}

}  // namespace ll
