// A test of the sanitized test run (tools/run_sanitized.sh): two deliberate bugs of the kind a SIMD kernel's
// tail loop makes, compiled with the same -fsanitize flags as the core and called through ctypes. The script
// checks that each one stops the process with a sanitizer report and a non-zero exit, and that the correct
// loop runs clean, so a sanitized run that reports nothing means the kernels are clean, not the net torn.
#include <climits>
#include <cstdint>

// A dot product whose tail loop runs one element too far: `i <= n` for `i < n`.
__attribute__((noinline)) static float dot_tail(const float* a, const float* b, int n, int extra) {
    float s = 0.0f;
    for (int i = 0; i < n + extra; ++i) s += a[i] * b[i];
    return s;
}

// An int32 accumulator that overflows (undefined behaviour in C++): the int8 kernels' sums must not.
__attribute__((noinline)) static int32_t sum_i32(const int32_t* x, int n) {
    int32_t s = 0;
    for (int i = 0; i < n; ++i) s += x[i];
    return s;
}

extern "C" {
// extra = 0: correct; extra = 1: reads a[n] and b[n], one float past each heap buffer.
float canary_dot(int n, int extra) {
    float* a = new float[n];
    float* b = new float[n];
    for (int i = 0; i < n; ++i) a[i] = b[i] = 1.0f;
    float s = dot_tail(a, b, n, extra);
    delete[] a;
    delete[] b;
    return s;
}

// big = 0: 3 small values; big = 1: INT_MAX + 1.
int canary_sum(int big) {
    int32_t x[3] = {1, big ? INT_MAX : 2, 3};
    return sum_i32(x, big ? 2 : 3);
}
}
