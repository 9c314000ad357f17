// cuda/common.cuh -- what every CUDA kernel file shares: integer types, half floats, the host/device macro.
//
// These files are compiled three ways, and must stay plain enough for all of them:
//   1. by NVRTC at run time (cpp_core/cuda.py), as one source string: no system headers at all, so no
//      <cstdint>, no <cuda_fp16.h>: the integer types and the half conversions are written out here;
//   2. by nvcc (tests/test_cuda_compile.py, when nvcc is installed), the same string, to catch what NVRTC lets by;
//   3. by the host C++ compiler (bindings/bind_cuda_host.cpp), where LL_HD is plain `inline` and __CUDA_ARCH__ is
//      undefined: the block decoders and each kernel's per-thread body then run on the CPU, so the tests can
//      check their index arithmetic against the lessons on a machine without a GPU.
// NOTE: at the time of writing, none of these kernels has run on a GPU (no device was lent to the session that
// wrote them). They compile for sm_80 and sm_90; what they compute on the host is checked by the tests.
#pragma once

#if defined(__CUDACC__) || defined(__CUDACC_RTC__)
#define LL_HD __host__ __device__ __forceinline__
#define LL_DEVICE 1
#else
#define LL_HD inline
#define __global__
#endif

typedef unsigned char u8;
typedef signed char i8;
typedef unsigned short u16;
typedef short i16;
typedef unsigned int u32;
typedef int i32;
typedef long long i64;

// ggml type ids (lessons/l12_quants.py's table)
#define T_F32 0
#define T_F16 1
#define T_Q4_0 2
#define T_Q4_1 3
#define T_Q5_0 6
#define T_Q5_1 7
#define T_Q8_0 8
#define T_Q2_K 10
#define T_Q3_K 11
#define T_Q4_K 12
#define T_Q5_K 13
#define T_Q6_K 14

// ---- half floats ----
// On the device one PTX instruction each way; on the host the bit fields are moved by hand (the same
// conversion as matmul/blocks.h: normals, subnormals, inf and nan).
LL_HD float h2f(u16 h) {
#if defined(__CUDA_ARCH__)
    float f;
    asm("cvt.f32.f16 %0, %1;" : "=f"(f) : "h"(h));
    return f;
#else
    const u32 sign = u32(h & 0x8000) << 16;
    u32 exp = (h >> 10) & 0x1f, mant = h & 0x3ff, bits;
    if (exp == 0x1f) {
        bits = sign | 0x7f800000u | (mant << 13);
    } else if (exp != 0) {
        bits = sign | ((exp + 112) << 23) | (mant << 13);
    } else if (mant == 0) {
        bits = sign;
    } else {
        int e = -1;
        do { mant <<= 1; e++; } while (!(mant & 0x400));
        bits = sign | u32(112 - e) << 23 | ((mant & 0x3ff) << 13);
    }
    union { u32 u; float f; } v;
    v.u = bits;
    return v.f;
#endif
}

#if defined(__CUDA_ARCH__)
// float -> half, round to nearest even (numpy's astype(np.float16), and the CPU cache's rounding)
__device__ __forceinline__ u16 f2h(float f) {
    u16 h;
    asm("cvt.rn.f16.f32 %0, %1;" : "=h"(h) : "f"(f));
    return h;
}
#endif

// Little-endian loads of a block field at any byte offset. Blocks are 18, 20, 22 ... bytes long, so a
// 32-bit field (Q5_0's qh at byte 2) is only 2-byte aligned: read it as bytes, or as two 16-bit halves.
LL_HD u16 load_u16(const u8* p) { return u16(p[0] | (p[1] << 8)); }
LL_HD u32 load_u32(const u8* p) { return u32(p[0]) | (u32(p[1]) << 8) | (u32(p[2]) << 16) | (u32(p[3]) << 24); }
