// bench_memory.c -- why a decoded token does not run at memory speed: one core, one stream.
//
//     cc -O2 -march=native tools/bench_memory.c -o /tmp/bench_memory && /tmp/bench_memory [MiB] [rounds]
//
// Decoding reads every weight once per token, so it looks like a pure memory stream. But the kernels
// also compute on every line they read, and whether that arithmetic hides under the memory traffic
// depends on how far ahead of the arithmetic the loads are issued. Three loops over one buffer
// (default 96 MiB, about the default model; best of `rounds`) show it:
//
//   read        one 32-byte load per 64-byte line: what one core streams
//   work        one load per line plus arithmetic on it (about as much as the kernels do), no prefetch
//   work + pf   the same with a software prefetch 1 KB ahead (what quant_matmul v9-v12 do)
//
// and the arithmetic alone on a 256 KiB buffer that stays in L2 ("work in L2"). If the two overlapped,
// "work" would run at the slower of "read" and "work in L2"; if they took turns, at 1 / (1/read + 1/L2).
// docs/21-cpp-model.md quotes a run. GCC/Clang vector extensions: any 64-bit CPU, no intrinsics.
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

typedef int32_t v8i __attribute__((vector_size(32)));  // 8 lanes: one AVX2 register, two NEON ones

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + 1e-9 * t.tv_nsec;
}

static volatile int32_t sink;  // keeps the compiler from dropping the loops

// The loops: `kind` 0 read, 1 work, 2 work + prefetch; returns seconds.
static double pass(const char* buf, size_t n, int kind) {
    v8i acc = {0}, a0 = {0}, a1 = {0}, a2 = {0}, a3 = {0};
    const double t0 = now();
    for (size_t i = 0; i < n; i += 64) {
        if (kind == 2 && i + 1024 < n) __builtin_prefetch(buf + i + 1024);
        v8i x;
        memcpy(&x, buf + i, sizeof x);  // one 32-byte load
        acc ^= x;
        if (kind >= 1)  // 3 rounds of shifts and adds on the loaded value: 24 vector operations per line
            for (int k = 0; k < 3; k++) a0 += x >> k, a1 += x << k, a2 ^= x >> (k + 1), a3 ^= x << (k + 1);
    }
    const double dt = now() - t0;
    acc += a0 + a1 + a2 + a3;
    sink = acc[0] ^ acc[7];
    return dt;
}

int main(int argc, char** argv) {
    const size_t mib = argc > 1 ? strtoul(argv[1], NULL, 10) : 96;
    const int rounds = argc > 2 ? atoi(argv[2]) : 5;
    if (mib < 1 || mib > 4096 || rounds < 1 || rounds > 1000) {
        fprintf(stderr, "error: usage: bench_memory [MiB 1-4096] [rounds 1-1000]\n");
        return 2;
    }
    const size_t n = mib << 20, l2 = 256u << 10;
    char* buf = malloc(n + 64);
    if (!buf) {
        fprintf(stderr, "error: cannot allocate %zu MiB\n", mib);
        return 1;
    }
    memset(buf, 1, n + 64);  // touch every page before timing
    const char* names[] = {"read", "work", "work + pf"};
    double best[4] = {1e30, 1e30, 1e30, 1e30};
    for (int r = 0; r < rounds; r++) {  // the loops alternate, so a noisy moment hits all of them
        for (int k = 0; k < 3; k++) {
            const double t = pass(buf, n, k);
            if (t < best[k]) best[k] = t;
        }
        double t = 0;
        for (size_t done = 0; done < n; done += l2) t += pass(buf, l2, 1);  // as many bytes, from L2
        if (t < best[3]) best[3] = t;
    }
    printf("one core, %zu MiB, best of %d rounds\n", mib, rounds);
    for (int k = 0; k < 3; k++) printf("%-12s %6.1f GB/s\n", names[k], n / best[k] / 1e9);
    const double read = n / best[0] / 1e9, work_l2 = n / best[3] / 1e9;
    printf("%-12s %6.1f GB/s\n", "work in L2", work_l2);
    printf("if work overlapped the reads: %.1f GB/s; if they took turns: %.1f GB/s\n", read < work_l2 ? read : work_l2,
           1 / (1 / read + 1 / work_l2));
    free(buf);
    return 0;
}
