// e^x for the attention softmax, relative error about 1e-7: the wasm kernels' method
// (assembly/simd.ts expf4): x = n·ln2 + r with ln2 split in a short high part (n·hi is exact) and a
// low correction, e^r by its Taylor series to degree 7, 2^n applied as two factors so results
// down to the subnormals and up to overflow come out right. Scalar version; the x86 builds have a
// vector one with the same steps.
#pragma once

#include <cmath>
#include <cstdint>

#include "half.h"

namespace smallmind {

static inline float expf_poly(float x) {
  x = x < -104.0f ? -104.0f : x > 89.0f ? 89.0f : x;  // (NaN passes through both tests)
  const float n = std::nearbyint(x * 1.4426950408889634f);
  float r = x - n * 0.693145751953125f;
  r = r - n * 1.4286067653301870e-6f;
  float p = 1.0f / 5040.0f;
  p = p * r + 1.0f / 720.0f;
  p = p * r + 1.0f / 120.0f;
  p = p * r + 1.0f / 24.0f;
  p = p * r + 1.0f / 6.0f;
  p = p * r + 0.5f;
  p = p * r + 1.0f;
  p = p * r + 1.0f;
  if (n != n) return n;
  const int32_t ni = static_cast<int32_t>(n);
  const int32_t n1 = ni >> 1;
  const int32_t n2 = ni - n1;
  return p * bits_to_f32(static_cast<uint32_t>(n1 + 127) << 23) * bits_to_f32(static_cast<uint32_t>(n2 + 127) << 23);
}

}  // namespace smallmind
