// The portable build: plain C++ compiled without any instruction-set flags. It runs wherever the
// addon builds (old x86-64, arm64 without a NEON build) when the native backend is forced; `auto`
// prefers the wasm kernels on such CPUs. Same numerics as the vector builds (kernels.h), with a
// plain in-order sum for f32.
#include "expf.h"
#include "half.h"
#include "kernels.h"

namespace smallmind {
namespace {

inline int min_i(int a, int b) { return a < b ? a : b; }

inline float widen(float v) { return v; }
inline float widen_bf16(uint16_t v) { return bits_to_f32(static_cast<uint32_t>(v) << 16); }

/** Σ_k x[k]·w[k] in order, added to the running sum block by block (KC values). */
template <class T, float (*Widen)(T)>
float dot(const float* x, const T* w, int K) {
  float s = 0;
  for (int k0 = 0; k0 < K; k0 += KC) {
    float b = 0;
    for (int k = k0, end = min_i(K, k0 + KC); k < end; k++) b += x[k] * Widen(w[k]);
    s = k0 == 0 ? b : s + b;
  }
  return s;
}

template <class T, float (*Widen)(T)>
void matmul_float(float* out, const float* x, const T* w, int M, int N, int K, int n0, int n1, float*) {
  for (int m = 0; m < M; m++) {
    for (int n = n0; n < n1; n++) out[static_cast<long>(m) * N + n] = dot<T, Widen>(x + static_cast<long>(m) * K, w + static_cast<long>(n) * K, K);
  }
}

/** Exact integer dot product of one Q8_0 weight block's values with 32 activations. */
inline int32_t block_q8(const uint8_t* wb, const int8_t* xq) {
  const int8_t* wq = reinterpret_cast<const int8_t*>(wb + 2);
  int32_t s = 0;
  for (int j = 0; j < 32; j++) s += wq[j] * xq[j];
  return s;
}

/** The same for Q4_0: byte j holds values j (low nibble) and j + 16 (high), each offset by −8. */
inline int32_t block_q4(const uint8_t* wb, const int8_t* xq, int32_t xsum) {
  const uint8_t* nib = wb + 2;
  int32_t s = 0;
  for (int j = 0; j < 16; j++) s += (nib[j] & 15) * xq[j] + (nib[j] >> 4) * xq[j + 16];
  return s - 8 * xsum;
}

template <bool Q4>
void matmul_q(float* out, const QuantRows& x, const uint8_t* w, int M, int N, int K, int n0, int n1, uint8_t*) {
  const int nb = K / 32;
  const long rowBytes = static_cast<long>(nb) * (Q4 ? 18 : 34);
  for (int m = 0; m < M; m++) {
    const long xb = static_cast<long>(m) * nb;
    for (int n = n0; n < n1; n++) {
      const uint8_t* wb = w + n * rowBytes;
      float acc = 0;
      for (int b = 0; b < nb; b++, wb += Q4 ? 18 : 34) {
        const int8_t* xq = x.q + (xb + b) * 32;
        const int32_t isum = Q4 ? block_q4(wb, xq, x.sum[xb + b]) : block_q8(wb, xq);
        const float d = f16_to_f32(static_cast<uint16_t>(wb[0] | (wb[1] << 8))) * x.d[xb + b];
        acc = acc + static_cast<float>(isum) * d;
      }
      out[static_cast<long>(m) * N + n] = acc;
    }
  }
}

inline float load_kv(const void* base, long i, bool half) {
  return half ? f16_to_f32(static_cast<const uint16_t*>(base)[i]) : static_cast<const float*>(base)[i];
}

/**
 * One (row, head) at a time: the row's scores (kept in scratch), their max and the sum of
 * exp(s − max); then Σ e_j·v_j / sum (f32 cache) or Σ round_f16(e_j / sum)·v_j (f16 cache, as ggml).
 */
void attention(const AttentionArgs& a, int u0, int u1, float* scratch) {
  const int hd = a.headDim;
  const long kvStride = static_cast<long>(a.nKvHead) * hd;
  float* qv = scratch;
  float* acc = qv + hd;
  float* scores = acc + hd;
  for (int u = u0; u < u1; u++) {
    const int r = u / a.nHead;
    const int h = u % a.nHead;
    const long kvOff = static_cast<long>(h / (a.nHead / a.nKvHead)) * hd;
    const float* q = a.q + (static_cast<long>(r) * a.nHead + h) * hd;
    for (int i = 0; i < hd; i++) qv[i] = a.half ? round_f16(q[i]) : q[i];
    const int nKv = a.pos + r + 1;
    float max = -INFINITY;
    for (int j = 0; j < nKv; j++) {
      float s = 0;
      for (int i = 0; i < hd; i++) s += qv[i] * load_kv(a.k, j * kvStride + kvOff + i, a.half);
      s *= a.scale;
      scores[j] = s;
      max = s > max || s != s ? s : max;
    }
    float sum = 0;
    for (int j = 0; j < nKv; j++) {
      scores[j] = expf_poly(scores[j] - max);
      sum += scores[j];
    }
    for (int i = 0; i < hd; i++) acc[i] = 0;
    for (int j = 0; j < nKv; j++) {
      const float p = a.half ? round_f16(scores[j] / sum) : scores[j];
      for (int i = 0; i < hd; i++) acc[i] += p * load_kv(a.v, j * kvStride + kvOff + i, a.half);
    }
    float* o = a.out + (static_cast<long>(r) * a.nHead + h) * hd;
    for (int i = 0; i < hd; i++) o[i] = a.half ? acc[i] : acc[i] / sum;
  }
}

const Kernels table = {"scalar", quantize_q8, matmul_float<float, widen>, matmul_float<uint16_t, f16_to_f32>, matmul_float<uint16_t, widen_bf16>, matmul_q<false>, matmul_q<true>, attention};

}  // namespace

const Kernels* kernels_scalar() { return &table; }

}  // namespace smallmind
