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

/** A 32-block's weight values in order, as integers (Q4_0's −8 and Q5_0's −16 offsets applied). */
template <int Kind>
inline void block_values(const uint8_t* wb, int32_t* v) {
  if (Kind == kQ8_0) {
    for (int j = 0; j < 32; j++) v[j] = static_cast<int8_t>(wb[2 + j]);
    return;
  }
  const bool five = Kind == kQ5_0 || Kind == kQ5_1;
  const int qhAt = Kind == kQ5_0 ? 2 : 4;
  const uint8_t* nib = wb + (Kind == kQ4_0 ? 2 : five ? qhAt + 4 : 4);
  const uint32_t qh = five ? wb[qhAt] | (wb[qhAt + 1] << 8) | (wb[qhAt + 2] << 16) | (static_cast<uint32_t>(wb[qhAt + 3]) << 24) : 0;
  const int offset = Kind == kQ4_0 ? 8 : Kind == kQ5_0 ? 16 : 0;
  for (int j = 0; j < 16; j++) {
    v[j] = (nib[j] & 15) + static_cast<int32_t>(((qh >> j) & 1) << 4) - offset;
    v[j + 16] = (nib[j] >> 4) + static_cast<int32_t>(((qh >> (j + 16)) & 1) << 4) - offset;
  }
}

constexpr int legacy_block_bytes(int kind) { return kind == kQ8_0 ? 34 : kind == kQ4_0 ? 18 : kind == kQ4_1 ? 20 : kind == kQ5_0 ? 22 : 24; }

inline float f16_at(const uint8_t* p) { return f16_to_f32(static_cast<uint16_t>(p[0] | (p[1] << 8))); }

template <int Kind>
void matmul_q(float* out, const QuantRows& x, const uint8_t* w, int M, int N, int K, int n0, int n1, uint8_t*) {
  constexpr int bb = legacy_block_bytes(Kind);
  constexpr bool hasMin = Kind == kQ4_1 || Kind == kQ5_1;
  const int nb = K / 32;
  const long rowBytes = static_cast<long>(nb) * bb;
  int32_t v[32];
  for (int m = 0; m < M; m++) {
    const long xb = static_cast<long>(m) * nb;
    for (int n = n0; n < n1; n++) {
      const uint8_t* wb = w + n * rowBytes;
      float acc = 0, mins = 0;
      for (int b = 0; b < nb; b++, wb += bb) {
        const int8_t* xq = x.q + (xb + b) * 32;
        block_values<Kind>(wb, v);
        int32_t isum = 0;
        for (int j = 0; j < 32; j++) isum += v[j] * xq[j];
        acc = acc + static_cast<float>(isum) * (f16_at(wb) * x.d[xb + b]);
        if (hasMin) mins = mins + f16_at(wb + 2) * x.s[xb + b];
      }
      out[static_cast<long>(m) * N + n] = hasMin ? acc + mins : acc;
    }
  }
}

/**
 * A K-quant super-block (Kind 4, 5, 6: Q4_K, Q5_K, Q6_K) in plain form: its 256 unsigned quants
 * in order, the scale of each 16 values and (Q4_K/Q5_K) the min of each 32.
 */
template <int Kind>
inline void kblock_values(const uint8_t* wb, int32_t* q, int32_t* sc16, int32_t* min32) {
  if (Kind == 6) {
    for (int half = 0; half < 2; half++) {
      const uint8_t* ql = wb + 64 * half;
      const uint8_t* qh = wb + 128 + 32 * half;
      int32_t* o = q + 128 * half;
      for (int l = 0; l < 32; l++) {
        o[l] = (ql[l] & 15) | ((qh[l] & 3) << 4);
        o[l + 32] = (ql[l + 32] & 15) | (((qh[l] >> 2) & 3) << 4);
        o[l + 64] = (ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4);
        o[l + 96] = (ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4);
      }
    }
    for (int g = 0; g < 16; g++) sc16[g] = static_cast<int8_t>(wb[192 + g]);
    return;
  }
  const uint8_t* s = wb + 4;
  for (int j = 0; j < 8; j++) {
    // six-bit scales and mins: j < 4 in bytes j and j + 4; j >= 4 split over byte j + 4 and the top bits of j − 4 and j
    const int sc = j < 4 ? s[j] & 63 : (s[j + 4] & 15) | ((s[j - 4] >> 6) << 4);
    const int mn = j < 4 ? s[j + 4] & 63 : (s[j + 4] >> 4) | ((s[j] >> 6) << 4);
    sc16[2 * j] = sc16[2 * j + 1] = sc;
    min32[j] = mn;
  }
  const uint8_t* qs = wb + (Kind == 5 ? 48 : 16);
  const uint8_t* qh = wb + 16;
  for (int c = 0; c < 4; c++) {
    for (int l = 0; l < 32; l++) {
      q[64 * c + l] = (qs[32 * c + l] & 15) | (Kind == 5 ? ((qh[l] >> (2 * c)) & 1) << 4 : 0);
      q[64 * c + 32 + l] = (qs[32 * c + l] >> 4) | (Kind == 5 ? ((qh[l] >> (2 * c + 1)) & 1) << 4 : 0);
    }
  }
}

template <int Kind>
void matmul_k(float* out, const Q8KRows& x, const uint8_t* w, int M, int N, int K, int n0, int n1, uint8_t*) {
  constexpr int bb = Kind == 4 ? 144 : Kind == 5 ? 176 : 210;
  constexpr int dOff = Kind == 6 ? 208 : 0;
  const int nb = K / 256;
  const long rowBytes = static_cast<long>(nb) * bb;
  int32_t q[256], sc16[16], min32[8];
  for (int m = 0; m < M; m++) {
    const long xb = static_cast<long>(m) * nb;
    for (int n = n0; n < n1; n++) {
      const uint8_t* wb = w + n * rowBytes;
      float acc = 0;
      for (int b = 0; b < nb; b++, wb += bb) {
        const int8_t* xq = x.q + (xb + b) * 256;
        const int16_t* xs = x.sums + (xb + b) * Q8K_SUMS;
        kblock_values<Kind>(wb, q, sc16, min32);
        int32_t isum = 0, msum = 0;
        for (int g = 0; g < 16; g++) {
          int32_t dot = 0;
          for (int l = 16 * g; l < 16 * g + 16; l++) dot += q[l] * xq[l];
          isum += sc16[g] * (Kind == 6 ? dot - 32 * xs[g] : dot);
        }
        if (Kind != 6)
          for (int j = 0; j < 8; j++) msum += min32[j] * xs[16 + j];
        const float dx = x.d[xb + b];
        float y = static_cast<float>(isum) * (f16_at(wb + dOff) * dx);
        if (Kind != 6) y = y - static_cast<float>(msum) * (f16_at(wb + 2) * dx);
        acc = acc + y;
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

const Kernels table = {"scalar",          quantize_q8,       matmul_float<float, widen>, matmul_float<uint16_t, f16_to_f32>, matmul_float<uint16_t, widen_bf16>,
                       matmul_q<kQ8_0>,   matmul_q<kQ4_0>,   attention,                  matmul_q<kQ4_1>,                    matmul_q<kQ5_0>,
                       matmul_q<kQ5_1>,   matmul_k<4>,       matmul_k<5>,                matmul_k<6>};

}  // namespace

const Kernels* kernels_scalar() { return &table; }

}  // namespace smallmind
