// f16 <-> f32 conversion in plain integer arithmetic, bit for bit as src/tensor/f16.ts and the
// wasm kernels (round to nearest even, overflow to inf, NaN to 0x7e00). Everything here is
// `static inline`: each translation unit keeps its own copy, compiled with its own flags.
#pragma once

#include <cstdint>
#include <cstring>

namespace smallmind {

static inline float bits_to_f32(uint32_t b) {
  float f;
  std::memcpy(&f, &b, 4);
  return f;
}

static inline uint32_t f32_to_bits(float f) {
  uint32_t b;
  std::memcpy(&b, &f, 4);
  return b;
}

static inline float f16_to_f32(uint16_t h) {
  const uint32_t sign = static_cast<uint32_t>(h & 0x8000) << 16;
  const uint32_t exp = (h >> 10) & 0x1f;
  const uint32_t man = h & 0x3ff;
  if (exp == 0x1f) return bits_to_f32(sign | 0x7f800000u | (man << 13));
  // exponent and mantissa moved to their f32 places, then re-biased by 2^112: exact for
  // normals and subnormals alike
  return bits_to_f32(sign | ((static_cast<uint32_t>(h & 0x7fff)) << 13)) * bits_to_f32(0x77800000u);
}

static inline uint16_t f32_to_f16(float x) {
  const uint32_t u = f32_to_bits(x);
  const uint32_t sign = (u >> 16) & 0x8000;
  const uint32_t a = u & 0x7fffffff;
  if (a > 0x7f800000u) return static_cast<uint16_t>(sign | 0x7e00);
  uint32_t h;
  if (a >= 0x38800000u) {
    // normal: re-bias and drop 13 mantissa bits, rounding half to even; a carry bumps the exponent
    h = (a + 0xfffu - 0x38000000u + ((a >> 13) & 1)) >> 13;
    if (h > 0x7c00) h = 0x7c00;
  } else {
    // subnormal (|x| < 2^-14): adding 0.5 makes the hardware round to a multiple of 2^-24
    h = f32_to_bits(bits_to_f32(a) + 0.5f) - 0x3f000000u;
  }
  return static_cast<uint16_t>(h | sign);
}

static inline float round_f16(float x) { return f16_to_f32(f32_to_f16(x)); }

}  // namespace smallmind
