// bench_peak.c -- the arithmetic roof of prefill: how many multiply-adds one core can issue per second.
//
//     cc -O2 -march=native tools/bench_peak.c -o /tmp/bench_peak -lpthread && /tmp/bench_peak [threads] [Miters]
//
// A prompt is compute-bound: every weight is used by every token, so prefill's speed is capped by the
// multiply-add rate of the instruction the GEMM uses, not by memory. This times long runs of independent
// multiply-adds in registers (no loads, 12 chains, enough to hide each instruction's latency) for:
//
//   fma f32      vfmadd231ps: 16 (AVX-512) or 8 (AVX2) float MACs per instruction
//   dpwssd i16   vpdpwssd (AVX-512 VNNI): 32 int16 MACs, pairs summed into int32 lanes
//   dpbusd i8    vpdpbusd (AVX-512 VNNI): 64 uint8 x int8 MACs, quads summed into int32 lanes
//   dpbf16 bf16  vdpbf16ps (AVX-512 BF16): 32 bf16 MACs into float lanes
//
// and prints GMAC/s per instruction kind (a MAC = one multiply-add = 2 flops), on `threads` threads at once
// (default 1), each running Miters million iterations (default 20; best of 3). A GEMM cannot beat these;
// tools/benchmark.py compares each file's prefill with them. Only the kinds this build can issue are timed:
// -march=native on a CPU without VNNI or BF16 prints "not on this CPU or build" for them.
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#if defined(__x86_64__)
#include <immintrin.h>
#endif

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + 1e-9 * t.tv_nsec;
}

static long kIters = 20 * 1000 * 1000;  // x 12 instructions: ~0.1 s per kind at 2 instructions per cycle
static volatile float sink_f;
static volatile int sink_i;

// 12 independent accumulators, each updated once per iteration: the loop is throughput-bound.
#define TWELVE(X) X(0) X(1) X(2) X(3) X(4) X(5) X(6) X(7) X(8) X(9) X(10) X(11)

#if defined(__AVX512F__)
static double run_fma(void) {
    __m512 a = _mm512_set1_ps(1e-7f), b = _mm512_set1_ps(0.999f);
#define DECL(i) __m512 c##i = _mm512_set1_ps((float)i);
    TWELVE(DECL)
#undef DECL
    for (long n = 0; n < kIters; n++) {
#define STEP(i) c##i = _mm512_fmadd_ps(a, b, c##i);
        TWELVE(STEP)
#undef STEP
        __asm__ volatile("" : "+v"(a));  // a could otherwise be assumed constant and the chains folded
    }
    __m512 s = _mm512_setzero_ps();
#define SUM(i) s = _mm512_add_ps(s, c##i);
    TWELVE(SUM)
#undef SUM
    sink_f = _mm512_reduce_add_ps(s);
    return 16.0 * 12 * kIters;  // MACs done
}
#elif defined(__AVX2__) && defined(__FMA__)
static double run_fma(void) {
    __m256 a = _mm256_set1_ps(1e-7f), b = _mm256_set1_ps(0.999f);
#define DECL(i) __m256 c##i = _mm256_set1_ps((float)i);
    TWELVE(DECL)
#undef DECL
    for (long n = 0; n < kIters; n++) {
#define STEP(i) c##i = _mm256_fmadd_ps(a, b, c##i);
        TWELVE(STEP)
#undef STEP
        __asm__ volatile("" : "+x"(a));
    }
    float out[8];
    __m256 s = _mm256_setzero_ps();
#define SUM(i) s = _mm256_add_ps(s, c##i);
    TWELVE(SUM)
#undef SUM
    _mm256_storeu_ps(out, s);
    sink_f = out[0];
    return 8.0 * 12 * kIters;
}
#else  // anything else (aarch64, plain x86-64): 16-byte vectors, which the compiler fuses where it can (NEON fmla)
typedef float v4f __attribute__((vector_size(16)));
#if defined(__aarch64__)
#define VREG "+w"
#elif defined(__x86_64__)
#define VREG "+x"
#else
#define VREG "+m"
#endif
static double run_fma(void) {
    v4f a = {1e-7f, 1e-7f, 1e-7f, 1e-7f}, b = {0.999f, 0.999f, 0.999f, 0.999f};
#define DECL(i) v4f c##i = {(float)i, 0, 0, 0};
    TWELVE(DECL)
#undef DECL
    for (long n = 0; n < kIters; n++) {
#define STEP(i) c##i += a * b;
        TWELVE(STEP)
#undef STEP
        __asm__ volatile("" : VREG(a));
    }
    v4f s = {0, 0, 0, 0};
#define SUM(i) s += c##i;
    TWELVE(SUM)
#undef SUM
    sink_f = s[0];
    return 4.0 * 12 * kIters;
}
#endif

#if defined(__AVX512VNNI__)
#define INT_KERNEL(name, intrin, macs)                                              \
    static double name(void) {                                                     \
        __m512i a = _mm512_set1_epi8(3), b = _mm512_set1_epi8(5);                  \
        TWELVE(IDECL)                                                              \
        for (long n = 0; n < kIters; n++) {                                        \
            TWELVE(ISTEP_##intrin)                                                 \
            __asm__ volatile("" : "+v"(a));                                        \
        }                                                                          \
        __m512i s = _mm512_setzero_si512();                                        \
        TWELVE(ISUM)                                                               \
        sink_i = _mm512_reduce_add_epi32(s);                                       \
        return (double)(macs) * 12 * kIters;                                       \
    }
#define IDECL(i) __m512i c##i = _mm512_set1_epi32(i);
#define ISUM(i) s = _mm512_add_epi32(s, c##i);
#define ISTEP_dpwssd(i) c##i = _mm512_dpwssd_epi32(c##i, a, b);
#define ISTEP_dpbusd(i) c##i = _mm512_dpbusd_epi32(c##i, a, b);
INT_KERNEL(run_dpwssd, dpwssd, 32)
INT_KERNEL(run_dpbusd, dpbusd, 64)
#else
static double run_dpwssd(void) { return 0; }
static double run_dpbusd(void) { return 0; }
#endif

#if defined(__AVX512BF16__)
static double run_dpbf16(void) {
    __m512bh a = (__m512bh)_mm512_set1_epi16(0x3f80), b = (__m512bh)_mm512_set1_epi16(0x3380);  // 1.0, ~6e-8
#define DECL(i) __m512 c##i = _mm512_set1_ps((float)i);
    TWELVE(DECL)
#undef DECL
    for (long n = 0; n < kIters; n++) {
#define STEP(i) c##i = _mm512_dpbf16_ps(c##i, a, b);
        TWELVE(STEP)
#undef STEP
        __asm__ volatile("" : "+v"(a));
    }
    __m512 s = _mm512_setzero_ps();
#define SUM(i) s = _mm512_add_ps(s, c##i);
    TWELVE(SUM)
#undef SUM
    sink_f = _mm512_reduce_add_ps(s);
    return 32.0 * 12 * kIters;
}
#else
static double run_dpbf16(void) { return 0; }
#endif

typedef double (*Kernel)(void);
static const struct { const char* name; Kernel fn; } kKinds[] = {
    {"fma f32", run_fma}, {"dpwssd i16", run_dpwssd}, {"dpbusd i8", run_dpbusd}, {"dpbf16 bf16", run_dpbf16},
};

struct Job { Kernel fn; double macs, seconds; };
static void* worker(void* p) {
    struct Job* j = p;
    const double t0 = now();
    j->macs = j->fn();
    j->seconds = now() - t0;
    return NULL;
}

int main(int argc, char** argv) {
    const int threads = argc > 1 ? atoi(argv[1]) : 1;
    const long miters = argc > 2 ? atol(argv[2]) : 20;
    if (threads < 1 || threads > 256 || miters < 1 || miters > 10000) {
        fprintf(stderr, "error: usage: bench_peak [threads 1-256] [million iterations 1-10000]\n");
        return 2;
    }
    kIters = miters * 1000 * 1000;
    struct Job jobs[256];
    pthread_t ids[256];
    for (size_t k = 0; k < sizeof kKinds / sizeof kKinds[0]; k++) {
        double best = 0;
        for (int round = 0; round < 3; round++) {  // best of 3: the figure is a roof, noise only lowers it
            for (int t = 0; t < threads; t++) jobs[t].fn = kKinds[k].fn, pthread_create(&ids[t], NULL, worker, &jobs[t]);
            double macs = 0, slowest = 0;
            for (int t = 0; t < threads; t++) {
                pthread_join(ids[t], NULL);
                macs += jobs[t].macs;
                if (jobs[t].seconds > slowest) slowest = jobs[t].seconds;
            }
            if (macs > 0 && macs / slowest > best) best = macs / slowest;
        }
        if (best > 0) printf("%-12s %8.1f GMAC/s\n", kKinds[k].name, best / 1e9);
        else printf("%-12s  (not on this CPU or build)\n", kKinds[k].name);
    }
    return 0;
}
