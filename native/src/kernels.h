// The native kernels' interface: one table of function pointers per instruction-set build
// (scalar; AVX2, AVX-512, AVX-512 + VNNI on x86-64; NEON, NEON + dotprod on arm64). Each build is
// its own translation unit compiled with its own flags; the addon picks a table at run time from
// what the CPU supports.
//
// Kernels see raw pointers into the shared WebAssembly.Memory; addon.cc has already checked every
// range. They compute the slice [n0, n1) of output columns (matmuls) or [u0, u1) of work items
// (attention), so the JS thread pool splits work exactly as it does for the wasm kernels.
//
// Numerics (see src/backend/backend.ts and assembly/matmul.ts):
// - f32 / f16 / bf16 matmul (x rounded to the weights' precision by the caller; weights widened
//   to f32 exactly): per output element, one vector accumulator over k in blocks of KC values, masked
//   for the tail, reduced by a fixed tree and added block by block. The sequence depends only on
//   the build (vector width), never on M, the tile or the thread split: a batch row equals the
//   same row alone, bit for bit.
// - q8_0 / q4_0 / q5_0 matmul: per 32-block the exact integer dot product, times (d_w · d_x) in f32,
//   added to a running f32 sum block by block (no fused multiply-add); q4_1 / q5_1 also add m_w · s_x
//   to a second running sum, and the result is the sum of both (ggml's Q8_1 form). Bit for bit what
//   the wasm kernels (assembly/matmul.ts, matmul-legacy.ts) compute, in every build.
// - q4_k / q5_k / q6_k matmul against Q8_K activations: per 256-block ggml's exact integer sums
//   (isum, and msum for the mins), then acc + (f32(isum)·(d·d_x) − f32(msum)·(dmin·d_x)) in f32:
//   bit for bit assembly/matmul-k.ts, in every build.
#pragma once

#include <cstddef>
#include <cstdint>

namespace smallmind {

/** Values per k-block of the f32 matmul: its per-element partial sums are added block by block. */
constexpr int KC = 1024;
/** Packed weight rows per chunk (KC values each: 512 KiB, kept in L2) and packed x rows of the f32 matmul. */
constexpr int F32_CHUNK_ROWS = 128;
constexpr int F32_X_ROWS = 8;

/** Bytes of per-thread scratch the f32 matmul needs: the packed chunk and x rows. */
inline size_t f32_scratch_bytes() { return static_cast<size_t>(F32_CHUNK_ROWS + F32_X_ROWS) * KC * 4; }

/** Activations quantized to Q8_0 for quantized matmuls: per 32-value block its values, scale, sum. */
struct QuantRows {
  int8_t* q;     // [blocks][32]
  float* d;      // [blocks]: the f16 scale, as f32
  int32_t* sum;  // [blocks]: Σ q (for Q4_0's −8 and Q5_0's −16 offsets)
  float* s = nullptr;  // [blocks]: Q8_1's s = f16(d·Σq), d before its f16 rounding (Q4_1, Q5_1); or none
};

/** The 32-block weight types of matmul_q (kernels_x86.inc BlockDot). */
enum QKind : int { kQ8_0, kQ4_0, kQ4_1, kQ5_0, kQ5_1 };

/** Activations quantized to Q8_K for the K-quant matmuls: per 256-value block. */
struct Q8KRows {
  int8_t* q;      // [blocks][256]
  float* d;       // [blocks]
  int16_t* sums;  // [blocks][Q8K_SUMS]: Σ q over each 16 values, then over each 32
};
constexpr int Q8K_SUMS = 24;

struct AttentionArgs {
  float* out;
  const float* q;
  const void* k;  // [ctx, nKvHead·headDim], f32 or f16
  const void* v;
  int nHead, nKvHead, headDim, pos;
  float scale;
  bool half;  // f16 cache
  int M;
};

/**
 * Bytes of per-thread scratch the quantized matmuls need: one panel of up to sixteen weight rows
 * repacked (per 32-block each row's values and its scale as f32).
 */
inline size_t quant_scratch_bytes(int K) { return static_cast<size_t>(K / 32) * 16 * (32 + 8); }

/** The same for the K-quant matmuls: sixteen rows of 256 values, their 16 scales (i32), d and dmin per 256-block. */
inline size_t kquant_scratch_bytes(int K) { return static_cast<size_t>(K / 256) * 16 * (256 + 16 * 4 + 8 + 32); }

/** Floats of per-thread scratch attention needs (a row of scores plus the query and accumulator). */
inline size_t attention_scratch_floats(int headDim, int maxKeys) {
  return static_cast<size_t>(maxKeys) + 2 * static_cast<size_t>(headDim) + 64;  // (+ padding to 8 and 8 more)
}

struct Kernels {
  const char* name;
  /** quantize_q8 (below), vectorised where the build can: the same bits. */
  void (*quantize_q8)(const QuantRows& out, const float* x, int K, int m0, int m1);
  /** out[m, n] = Σ_k x[m, k] · w[n, k] for n in [n0, n1); scratch: f32_scratch_bytes(), 64-byte aligned. */
  void (*matmul_f32)(float* out, const float* x, const float* w, int M, int N, int K, int n0, int n1, float* scratch);
  /** The same for f16 and bf16 weights (x already rounded to their precision), widened to f32 exactly. */
  void (*matmul_f16)(float* out, const float* x, const uint16_t* w, int M, int N, int K, int n0, int n1, float* scratch);
  void (*matmul_bf16)(float* out, const float* x, const uint16_t* w, int M, int N, int K, int n0, int n1, float* scratch);
  /**
   * out[m, n] for Q8_0 (34-byte blocks) or Q4_0 (18-byte blocks) weights and quantized x rows;
   * scratch: quant_scratch_bytes(K), 32-byte aligned.
   */
  void (*matmul_q8_0)(float* out, const QuantRows& x, const uint8_t* w, int M, int N, int K, int n0, int n1, uint8_t* scratch);
  void (*matmul_q4_0)(float* out, const QuantRows& x, const uint8_t* w, int M, int N, int K, int n0, int n1, uint8_t* scratch);
  /** Work items u = row · nHead + head in [u0, u1); scratch: attention_scratch_floats. */
  void (*attention)(const AttentionArgs& a, int u0, int u1, float* scratch);
  /** Q4_1 (20-byte blocks), Q5_0 (22), Q5_1 (24) weights; x.s set for Q4_1 and Q5_1. */
  void (*matmul_q4_1)(float* out, const QuantRows& x, const uint8_t* w, int M, int N, int K, int n0, int n1, uint8_t* scratch);
  void (*matmul_q5_0)(float* out, const QuantRows& x, const uint8_t* w, int M, int N, int K, int n0, int n1, uint8_t* scratch);
  void (*matmul_q5_1)(float* out, const QuantRows& x, const uint8_t* w, int M, int N, int K, int n0, int n1, uint8_t* scratch);
  /** Q4_K (144-byte blocks), Q5_K (176), Q6_K (210) weights; scratch: kquant_scratch_bytes(K), 64-byte aligned. */
  void (*matmul_q4_k)(float* out, const Q8KRows& x, const uint8_t* w, int M, int N, int K, int n0, int n1, uint8_t* scratch);
  void (*matmul_q5_k)(float* out, const Q8KRows& x, const uint8_t* w, int M, int N, int K, int n0, int n1, uint8_t* scratch);
  void (*matmul_q6_k)(float* out, const Q8KRows& x, const uint8_t* w, int M, int N, int K, int n0, int n1, uint8_t* scratch);
};

/** Quantize rows [m0, m1) of x (K a multiple of 32) as the wasm quantize_q8 does (portable, exact). */
void quantize_q8(const QuantRows& out, const float* x, int K, int m0, int m1);
/** The same for block b (32 values from x + 32·b) alone. */
void quantize_q8_block(const QuantRows& out, const float* x, long b);
/** Q8_1's s of block b, from the block's values and its Σq (out.sum[b]): out.s[b]. */
void q8_1_sum_block(const QuantRows& out, const float* x, long b);
/**
 * Quantize rows [m0, m1) of x (K a multiple of 256) to Q8_K as the wasm quantize_q8_k does
 * (portable, exact; every build uses it: it is a sliver of a matmul's work).
 */
void quantize_q8_k(const Q8KRows& out, const float* x, int K, int m0, int m1);

const Kernels* kernels_scalar();
#if defined(__x86_64__) || defined(_M_X64)
const Kernels* kernels_avx2();
const Kernels* kernels_avx512();
const Kernels* kernels_avx512vnni();
#endif
#if defined(__aarch64__)
const Kernels* kernels_neon();
const Kernels* kernels_neondot();
#endif

}  // namespace smallmind
