// Activation quantization to Q8_0, shared by every build: it is a small part of a matmul's work
// and must give the same bits everywhere (the wasm quantize_q8, tensor/quant.ts quantizeQ8_0 with
// activation = true, and ggml): per block of 32, d = amax / 127 (f64, rounded to f32) stored as
// f16, and q = round-half-even(f32(x · (127 / amax))) with the product taken in f64.
#include <cmath>

#include "half.h"
#include "kernels.h"

namespace smallmind {

namespace {

/** max as wasm's f32.max: NaN if either is NaN. */
inline float max_nan(float a, float b) {
  if (a != a) return a;
  if (b != b) return b;
  return a > b ? a : b;
}

/** wasm's i32.trunc_sat_f32_s: NaN to 0, out-of-range values clamped. */
inline int32_t trunc_sat(float v) {
  if (v != v) return 0;
  if (v >= 2147483648.0f) return INT32_MAX;
  if (v < -2147483648.0f) return INT32_MIN;
  return static_cast<int32_t>(v);
}

inline int8_t saturate_i8(int32_t v) { return static_cast<int8_t>(v > 127 ? 127 : v < -128 ? -128 : v); }

}  // namespace

void quantize_q8_block(const QuantRows& out, const float* x, long b) {
  const float* src = x + b * 32;
  float amax = 0;
  for (int j = 0; j < 32; j++) amax = max_nan(amax, std::fabs(src[j]));
  const float dx = static_cast<float>(static_cast<double>(amax) / 127.0);
  out.d[b] = round_f16(dx);
  const double id = amax != 0 ? 127.0 / static_cast<double>(amax) : 0.0;
  int32_t sum = 0;
  for (int j = 0; j < 32; j++) {
    const int32_t q = trunc_sat(std::nearbyint(static_cast<float>(static_cast<double>(src[j]) * id)));
    sum += q;
    out.q[b * 32 + j] = saturate_i8(q);
  }
  out.sum[b] = sum;
}

void quantize_q8(const QuantRows& out, const float* x, int K, int m0, int m1) {
  const long nb = K / 32;
  for (long b = m0 * nb, end = m1 * nb; b < end; b++) quantize_q8_block(out, x, b);
}

}  // namespace smallmind
