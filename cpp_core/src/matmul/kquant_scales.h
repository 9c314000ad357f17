// matmul/kquant_scales.h -- unpacking the 6-bit scales of Q4_K/Q5_K and the packed scales of Q3_K.
#pragma once

#include <cstdint>
#include <cstring>

namespace ll {

// Q4_K / Q5_K: 8 sub-blocks of 32, each with a 6-bit scale and a 6-bit min, packed in 12 bytes:
// bytes 0-3 hold scales 0-3 (low 6 bits), bytes 4-7 mins 0-3 (low 6 bits), bytes 8-11 the low nibbles of
// scales 4-7 and high nibbles of mins 4-7, whose top 2 bits sit in the spare top bits of bytes 0-7.
static inline void kquant_scale_min(int j, const uint8_t* q, uint8_t* scale, uint8_t* min) {
    if (j < 4) {
        *scale = q[j] & 63;
        *min = q[j + 4] & 63;
    } else {
        *scale = (q[j + 4] & 0xF) | ((q[j - 4] >> 6) << 4);
        *min = (q[j + 4] >> 4) | ((q[j] >> 6) << 4);
    }
}

// Q3_K: 16 sub-blocks of 16, each a 6-bit scale stored with a +32 offset: low 4 bits in bytes 0-7
// (two per byte), high 2 bits in bytes 8-11 (four per byte). Returns the 16 scales minus 32.
static inline void q3k_scales(const uint8_t* packed, int8_t* out) {
    for (int j = 0; j < 16; j++) {
        const int low = j < 8 ? packed[j] & 0xF : packed[j - 8] >> 4;
        const int high = (packed[8 + (j % 4)] >> (2 * (j / 4))) & 3;
        out[j] = int8_t((low | (high << 4)) - 32);
    }
}

}  // namespace ll
