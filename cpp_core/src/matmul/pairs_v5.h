// matmul/pairs_v5.h -- the activation layout of quant_matmul v5: laid out for the weight unpacking, not for ggml.
//
// v4 reads ggml-style Q8 blocks and spends as many instructions on each block's scales (fp16 -> float,
// multiply, broadcast) as on its 32 products. v5 moves that work out of the inner loop:
//   - the activation's quants sit in one int8 array, ordered so that one 64-byte load lines up with two
//     unpacked weight blocks (see below), and its scales in float arrays;
//   - the weight's scales are fetched 16 blocks at a time with one gather and converted at once.
// For Q4_0/Q4_1, a pair of weight blocks (i, i+1) is unpacked as [lo(i) | lo(i+1) | hi(i) | hi(i+1)]
// (16 bytes each: elements 0-15 of block i, of block i+1, then 16-31 of each), because that takes one
// shift and one insert; so the activations are stored in that order too. Q8_0 needs no reordering.
#pragma once

#include <cstdint>
#include <vector>

#include "matmul/blocks.h"

namespace ll {

// Q4_1 and Q4_0 weights (nibble order), or Q8_0 weights (natural order)
enum class PairsKind { Q4_1, Q4_0, Q8_0 };

// One token's activations, n values in n/32 blocks:
//   qs[n]     int8 quants (same values and rounding as Q8_0/Q8_1: d = amax/127, round to nearest even)
//   init[n/4] int32: the starting value of each vpdpbusd lane, so that the integer sum comes out exact:
//             Q4_0: -8 * (sum of the lane's 4 quants) undoes the weight's +8 offset (q - 8 stored as 0..15);
//             Q8_0: -128 * (sum of 4) undoes the +128 that makes the signed weights unsigned; Q4_1: 0
//   d[n/32]   float scale per block (the fp16-rounded value, as ggml stores it)
//   s[n/32]   Q4_1 only: fp16(d * sum(q)), which multiplies the weight's offset m (Q8_1's s)
struct ActPairsView {
    const int8_t* qs;
    const int32_t* init;
    const float* d;
    const float* s;
};

size_t act_pairs_bytes(int64_t n);  // bytes for one token (n % 32 == 0)
void quantize_act_pairs(PairsKind kind, const float* x, uint8_t* out, int64_t n);
ActPairsView act_pairs_view(const uint8_t* buf, int64_t n);

// y[t] = dot(W row, token t) for 1 <= n_tok <= 8 tokens, AVX-512 VNNI (matmul/dot_avx512_v5.cpp);
// each unpacked weight block serves all n_tok tokens.
void dot_q4_1_pairs_avx512(int64_t n, const uint8_t* w, const ActPairsView* acts, int n_tok, float* y);
void dot_q4_0_pairs_avx512(int64_t n, const uint8_t* w, const ActPairsView* acts, int n_tok, float* y);
void dot_q8_0_pairs_avx512(int64_t n, const uint8_t* w, const ActPairsView* acts, int n_tok, float* y);

}  // namespace ll
