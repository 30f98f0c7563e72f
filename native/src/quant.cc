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

inline int16_t saturate_i16(int32_t v) { return static_cast<int16_t>(v > 32767 ? 32767 : v < -32768 ? -32768 : v); }

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

void q8_1_sum_block(const QuantRows& out, const float* x, long b) {
  const float* src = x + b * 32;
  float amax = 0;
  for (int j = 0; j < 32; j++) amax = max_nan(amax, std::fabs(src[j]));
  const float d = static_cast<float>(static_cast<double>(amax) / 127.0);
  out.s[b] = round_f16(d * static_cast<float>(out.sum[b]));
}

void quantize_q8(const QuantRows& out, const float* x, int K, int m0, int m1) {
  const long nb = K / 32;
  for (long b = m0 * nb, end = m1 * nb; b < end; b++) {
    quantize_q8_block(out, x, b);
    if (out.s) q8_1_sum_block(out, x, b);
  }
}

// Q8_K (assembly/matmul-k.ts quantize_q8_k, tensor/quant-k.ts quantizeQ8_K): per 256-block,
// max = the first value of largest magnitude, iscale = −127/max (f32), d = 1/iscale,
// q = min(127, round-half-even(f32(x · iscale))) through wasm's saturating conversions; the sums
// are taken over those (i16) values. An all-zero block is zeros everywhere.
void quantize_q8_k(const Q8KRows& out, const float* x, int K, int m0, int m1) {
  const long nb = K / 256;
  for (long b = m0 * nb, end = m1 * nb; b < end; b++) {
    const float* src = x + b * 256;
    int8_t* q = out.q + b * 256;
    int16_t* sums = out.sums + b * Q8K_SUMS;
    float amax = 0;
    for (int j = 0; j < 256; j++) amax = max_nan(amax, std::fabs(src[j]));
    if (amax == 0) {
      for (int j = 0; j < 256; j++) q[j] = 0;
      for (int j = 0; j < Q8K_SUMS; j++) sums[j] = 0;
      out.d[b] = 0;
      continue;
    }
    float max = amax;  // (kept when no value matches: NaN)
    for (int j = 0; j < 256; j++) {
      if (std::fabs(src[j]) == amax) {
        max = src[j];
        break;
      }
    }
    const float iscale = -127.0f / max;
    out.d[b] = 1.0f / iscale;
    int32_t sum16[16];
    for (int g = 0; g < 16; g++) {
      int32_t& sum = sum16[g];
      sum = 0;
      for (int j = g * 16; j < g * 16 + 16; j++) {
        int32_t v = trunc_sat(std::nearbyint(src[j] * iscale));
        v = saturate_i16(v);  // i16x8.narrow_i32x4_s
        v = v > 127 ? 127 : v;
        sum += v;
        q[j] = saturate_i8(v);
      }
      sums[g] = saturate_i16(sum);
    }
    for (int j = 0; j < 8; j++) sums[16 + j] = saturate_i16(sum16[2 * j] + sum16[2 * j + 1]);
  }
}

}  // namespace smallmind
