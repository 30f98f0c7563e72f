// The Node-API face of the native kernels (src/backend/native/ is the JS side).
//
// The kernels work on the wasm backend's shared WebAssembly.Memory: JS registers it once with
// attach(view) and gets a memory id; every kernel call then passes that id and byte offsets, just
// as the wasm kernels take addresses. The worker threads of the wasm backend's pool load this addon
// too (it is context-aware, as every Node-API addon is) and call the kernels for their slice, so
// one pool of threads, sleeping in Atomics.wait, serves both kinds of kernel.
//
// A shared wasm memory never moves when it grows (the engine reserves its maximum up front and
// other threads hold its address), so one base pointer per memory serves every thread; attach()
// with an existing id records the new length after growth and checks that the base is unchanged.
// Every call checks that the ranges it will touch lie inside the memory, so a bad offset throws
// instead of corrupting the process.
#include <napi.h>

#include <atomic>
#include <cmath>
#include <mutex>
#include <string>
#include <vector>

#include "cpu.h"
#include "kernels.h"

namespace smallmind {
namespace {

// ---- builds ---------------------------------------------------------------------------------------

struct Build {
  const char* name;
  const Kernels* (*table)();
  bool (*runs)(const CpuFeatures&);
};

bool always(const CpuFeatures&) { return true; }

#if defined(__x86_64__) || defined(_M_X64)
bool hasAvx2(const CpuFeatures& f) { return f.avx2 && f.fma && f.f16c; }
bool hasAvx512(const CpuFeatures& f) { return hasAvx2(f) && f.avx512f && f.avx512bw && f.avx512vl && f.avx512dq; }
bool hasAvx512Vnni(const CpuFeatures& f) { return hasAvx512(f) && f.avx512_vnni; }
#endif
#if defined(__aarch64__)
bool hasDotprod(const CpuFeatures& f) { return f.asimddp; }
#endif

/** Every build compiled in, worst to best; a JS `variant` is an index into this list. */
const Build kBuilds[] = {
    {"scalar", kernels_scalar, always},
#if defined(__x86_64__) || defined(_M_X64)
    {"avx2", kernels_avx2, hasAvx2},
    {"avx512", kernels_avx512, hasAvx512},
    {"avx512vnni", kernels_avx512vnni, hasAvx512Vnni},
#endif
#if defined(__aarch64__)
    {"neon", kernels_neon, always},
    {"neondot", kernels_neondot, hasDotprod},
#endif
};
constexpr int kBuildCount = sizeof(kBuilds) / sizeof(kBuilds[0]);

// ---- memories ----------------------------------------------------------------------------------

constexpr int kMaxMemories = 1024;
std::atomic<uint8_t*> g_base[kMaxMemories];
std::atomic<size_t> g_bytes[kMaxMemories];
std::mutex g_attachLock;

/** Throw a JS error and tell the caller to return. */
bool fail(const Napi::Env& env, const std::string& message) {
  Napi::Error::New(env, "native backend: " + message).ThrowAsJavaScriptException();
  return false;
}

/** The calls' number arguments, read and checked one by one. */
class Args {
 public:
  explicit Args(const Napi::CallbackInfo& info) : info_(info), env_(info.Env()) {}

  bool number(size_t i, double& out) {
    if (i >= info_.Length() || !info_[i].IsNumber()) return fail(env_, "argument " + std::to_string(i) + " must be a number");
    out = info_[i].As<Napi::Number>().DoubleValue();
    return true;
  }

  /** An integer in [lo, hi]. */
  bool integer(size_t i, double lo, double hi, long& out) {
    double v;
    if (!number(i, v)) return false;
    if (!(v >= lo && v <= hi) || v != std::floor(v)) {
      return fail(env_, "argument " + std::to_string(i) + " must be an integer in [" + std::to_string(static_cast<long>(lo)) + ", " +
                            std::to_string(static_cast<long>(hi)) + "], got " + std::to_string(v));
    }
    out = static_cast<long>(v);
    return true;
  }

  /** The memory (id at i) and the kernel build (index at i + 1). */
  bool memoryAndBuild(size_t i, uint8_t*& base, size_t& bytes, const Kernels*& kernels) {
    long id, build;
    if (!integer(i, 0, kMaxMemories - 1, id) || !integer(i + 1, 0, kBuildCount - 1, build)) return false;
    base = g_base[id].load(std::memory_order_acquire);
    bytes = g_bytes[id].load(std::memory_order_acquire);
    if (!base) return fail(env_, "memory " + std::to_string(id) + " is not attached");
    if (!kBuilds[build].runs(cpu_features())) return fail(env_, std::string("this CPU cannot run the ") + kBuilds[build].name + " kernels");
    kernels = kBuilds[build].table();
    return true;
  }

  /** A pointer to [offset, offset + size) of the memory, after checking it lies inside. */
  template <class T>
  bool range(size_t i, uint8_t* base, size_t bytes, double size, T*& out) {
    long offset;
    if (!integer(i, 0, static_cast<double>(bytes), offset)) return false;
    if (static_cast<double>(offset) + size > static_cast<double>(bytes)) {
      return fail(env_, "argument " + std::to_string(i) + ": bytes [" + std::to_string(offset) + ", " + std::to_string(offset + static_cast<long>(size)) +
                            ") lie outside the " + std::to_string(bytes) + "-byte memory");
    }
    out = reinterpret_cast<T*>(base + offset);
    return true;
  }

  const Napi::Env& env() const { return env_; }

 private:
  const Napi::CallbackInfo& info_;
  Napi::Env env_;
};

/** Per-thread scratch (each pool thread has its own), 64-byte aligned. */
void* threadScratch(size_t bytes) {
  thread_local std::vector<uint64_t> scratch;
  const size_t words = (bytes + 64 + 7) / 8;
  if (scratch.size() < words) scratch.resize(words);
  const uintptr_t p = reinterpret_cast<uintptr_t>(scratch.data());
  return reinterpret_cast<void*>((p + 63) & ~uintptr_t{63});
}

// ---- JS functions -------------------------------------------------------------------------------

/** attach(view: Uint8Array over the memory's whole buffer, id?: number): number */
Napi::Value Attach(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 1 || !info[0].IsTypedArray() || info[0].As<Napi::TypedArray>().TypedArrayType() != napi_uint8_array) {
    fail(env, "attach() takes a Uint8Array over the wasm memory");
    return env.Undefined();
  }
  Napi::Uint8Array view = info[0].As<Napi::Uint8Array>();
  uint8_t* base = view.Data() - view.ByteOffset();
  const size_t bytes = view.ByteOffset() + view.ByteLength();
  std::lock_guard<std::mutex> lock(g_attachLock);
  if (info.Length() >= 2 && info[1].IsNumber()) {
    const int id = info[1].As<Napi::Number>().Int32Value();
    if (id < 0 || id >= kMaxMemories || !g_base[id].load()) {
      fail(env, "attach(): memory " + std::to_string(id) + " is not attached");
      return env.Undefined();
    }
    if (g_base[id].load() != base) {
      fail(env, "the wasm memory moved when it grew; native kernels cannot follow it");
      return env.Undefined();
    }
    g_bytes[id].store(bytes, std::memory_order_release);
    return Napi::Number::New(env, id);
  }
  for (int id = 0; id < kMaxMemories; id++) {
    if (!g_base[id].load()) {
      g_bytes[id].store(bytes, std::memory_order_release);
      g_base[id].store(base, std::memory_order_release);
      return Napi::Number::New(env, id);
    }
  }
  fail(env, "too many attached memories");
  return env.Undefined();
}

/** detach(id): the memory's kernels refuse to run afterwards. */
Napi::Value Detach(const Napi::CallbackInfo& info) {
  Args args(info);
  long id;
  if (args.integer(0, 0, kMaxMemories - 1, id)) {
    std::lock_guard<std::mutex> lock(g_attachLock);
    g_base[id].store(nullptr, std::memory_order_release);
    g_bytes[id].store(0, std::memory_order_release);
  }
  return info.Env().Undefined();
}

enum class FloatWeights { f32, f16, bf16 };

/** matmul_f32 / matmul_f16 / matmul_bf16(mem, build, out, x, w, M, N, K, n0, n1, tid) */
template <FloatWeights Kind>
Napi::Value MatmulFloat(const Napi::CallbackInfo& info) {
  Args a(info);
  uint8_t* base;
  size_t bytes;
  const Kernels* k;
  long M, N, K, n0, n1;
  float *out, *x;
  uint8_t* w;
  const double wordBytes = Kind == FloatWeights::f32 ? 4.0 : 2.0;
  if (a.memoryAndBuild(0, base, bytes, k) && a.integer(5, 0, 1e9, M) && a.integer(6, 0, 1e9, N) && a.integer(7, 0, 1e9, K) &&
      a.integer(8, 0, static_cast<double>(N), n0) && a.integer(9, static_cast<double>(n0), static_cast<double>(N), n1) &&
      a.range(2, base, bytes, 4.0 * M * N, out) && a.range(3, base, bytes, 4.0 * M * K, x) && a.range(4, base, bytes, wordBytes * N * K, w)) {
    float* scratch = M > 1 ? static_cast<float*>(threadScratch(f32_scratch_bytes())) : nullptr;
    if (Kind == FloatWeights::f32) k->matmul_f32(out, x, reinterpret_cast<const float*>(w), M, N, K, n0, n1, scratch);
    if (Kind == FloatWeights::f16) k->matmul_f16(out, x, reinterpret_cast<const uint16_t*>(w), M, N, K, n0, n1, scratch);
    if (Kind == FloatWeights::bf16) k->matmul_bf16(out, x, reinterpret_cast<const uint16_t*>(w), M, N, K, n0, n1, scratch);
  }
  return info.Env().Undefined();
}

/** The quantized activations' three arrays for `blocks` blocks, at argument i.. i + 2. */
bool quantRows(Args& a, size_t i, uint8_t* base, size_t bytes, double blocks, QuantRows& q) {
  return a.range(i, base, bytes, 32.0 * blocks, q.q) && a.range(i + 1, base, bytes, 4.0 * blocks, q.d) && a.range(i + 2, base, bytes, 4.0 * blocks, q.sum);
}

/**
 * quantize_q8(mem, build, q, d, sum, x, K, m0, m1, tid): rows [m0, m1); quantize_q8_1 (WithS) takes
 * the Q8_1 s array after sum: (mem, build, q, d, sum, s, x, K, m0, m1, tid).
 */
template <bool WithS>
Napi::Value QuantizeQ8(const Napi::CallbackInfo& info) {
  Args a(info);
  uint8_t* base;
  size_t bytes;
  const Kernels* k;
  long K, m0, m1;
  QuantRows q;
  float* x;
  const size_t i = WithS ? 1 : 0;  // the arguments after s move by one
  if (a.memoryAndBuild(0, base, bytes, k) && a.integer(6 + i, 0, 1e9, K) && a.integer(7 + i, 0, 1e9, m0) &&
      a.integer(8 + i, static_cast<double>(m0), 1e9, m1) && quantRows(a, 2, base, bytes, m1 * (K / 32.0), q) &&
      (!WithS || a.range(5, base, bytes, 4.0 * m1 * (K / 32.0), q.s)) && a.range(5 + i, base, bytes, 4.0 * m1 * K, x)) {
    if (K % 32) {
      fail(a.env(), "K must be a multiple of 32");
      return info.Env().Undefined();
    }
    k->quantize_q8(q, x, K, m0, m1);
  }
  return info.Env().Undefined();
}

/**
 * matmul_q8_0 / matmul_q4_0(mem, build, out, q, d, sum, w, M, N, K, n0, n1, tid); matmul_q4_1 /
 * matmul_q5_0 / matmul_q5_1 take the Q8_1 s array after sum (Q5_0 ignores it):
 * (mem, build, out, q, d, sum, s, w, M, N, K, n0, n1, tid).
 */
template <QKind Kind>
Napi::Value MatmulQ(const Napi::CallbackInfo& info) {
  constexpr bool withS = Kind != kQ8_0 && Kind != kQ4_0;
  constexpr double blockBytes = Kind == kQ8_0 ? 34 : Kind == kQ4_0 ? 18 : Kind == kQ4_1 ? 20 : Kind == kQ5_0 ? 22 : 24;
  const size_t i = withS ? 1 : 0;
  Args a(info);
  uint8_t* base;
  size_t bytes;
  const Kernels* k;
  long M, N, K, n0, n1;
  float* out;
  QuantRows q;
  uint8_t* w;
  if (a.memoryAndBuild(0, base, bytes, k) && a.integer(7 + i, 0, 1e9, M) && a.integer(8 + i, 0, 1e9, N) && a.integer(9 + i, 0, 1e9, K) &&
      a.integer(10 + i, 0, static_cast<double>(N), n0) && a.integer(11 + i, static_cast<double>(n0), static_cast<double>(N), n1) &&
      a.range(2, base, bytes, 4.0 * M * N, out) && quantRows(a, 3, base, bytes, M * (K / 32.0), q) &&
      (!withS || a.range(6, base, bytes, 4.0 * M * (K / 32.0), q.s)) && a.range(6 + i, base, bytes, N * (K / 32.0) * blockBytes, w)) {
    if (K % 32) {
      fail(a.env(), "K must be a multiple of 32");
      return info.Env().Undefined();
    }
    const auto kernel = Kind == kQ8_0 ? k->matmul_q8_0 : Kind == kQ4_0 ? k->matmul_q4_0 : Kind == kQ4_1 ? k->matmul_q4_1 : Kind == kQ5_0 ? k->matmul_q5_0 : k->matmul_q5_1;
    kernel(out, q, w, M, N, K, n0, n1, static_cast<uint8_t*>(threadScratch(quant_scratch_bytes(K))));
  }
  return info.Env().Undefined();
}

/** The Q8_K activations' three arrays for `blocks` blocks, at argument i.. i + 2. */
bool q8kRows(Args& a, size_t i, uint8_t* base, size_t bytes, double blocks, Q8KRows& q) {
  return a.range(i, base, bytes, 256.0 * blocks, q.q) && a.range(i + 1, base, bytes, 4.0 * blocks, q.d) &&
         a.range(i + 2, base, bytes, 2.0 * Q8K_SUMS * blocks, q.sums);
}

/** quantize_q8_k(mem, build, q, d, sums, x, K, m0, m1, tid): rows [m0, m1). */
Napi::Value QuantizeQ8K(const Napi::CallbackInfo& info) {
  Args a(info);
  uint8_t* base;
  size_t bytes;
  const Kernels* k;
  long K, m0, m1;
  Q8KRows q;
  float* x;
  if (a.memoryAndBuild(0, base, bytes, k) && a.integer(6, 0, 1e9, K) && a.integer(7, 0, 1e9, m0) && a.integer(8, static_cast<double>(m0), 1e9, m1) &&
      q8kRows(a, 2, base, bytes, m1 * (K / 256.0), q) && a.range(5, base, bytes, 4.0 * m1 * K, x)) {
    if (K % 256) {
      fail(a.env(), "K must be a multiple of 256");
      return info.Env().Undefined();
    }
    quantize_q8_k(q, x, K, m0, m1);
  }
  return info.Env().Undefined();
}

/** matmul_q4_k / matmul_q5_k / matmul_q6_k(mem, build, out, q, d, sums, w, M, N, K, n0, n1, tid) */
template <int Kind>
Napi::Value MatmulK(const Napi::CallbackInfo& info) {
  constexpr double blockBytes = Kind == 4 ? 144 : Kind == 5 ? 176 : 210;
  Args a(info);
  uint8_t* base;
  size_t bytes;
  const Kernels* k;
  long M, N, K, n0, n1;
  float* out;
  Q8KRows q;
  uint8_t* w;
  if (a.memoryAndBuild(0, base, bytes, k) && a.integer(7, 0, 1e9, M) && a.integer(8, 0, 1e9, N) && a.integer(9, 0, 1e9, K) &&
      a.integer(10, 0, static_cast<double>(N), n0) && a.integer(11, static_cast<double>(n0), static_cast<double>(N), n1) &&
      a.range(2, base, bytes, 4.0 * M * N, out) && q8kRows(a, 3, base, bytes, M * (K / 256.0), q) &&
      a.range(6, base, bytes, N * (K / 256.0) * blockBytes, w)) {
    if (K % 256) {
      fail(a.env(), "K must be a multiple of 256");
      return info.Env().Undefined();
    }
    const auto kernel = Kind == 4 ? k->matmul_q4_k : Kind == 5 ? k->matmul_q5_k : k->matmul_q6_k;
    kernel(out, q, w, M, N, K, n0, n1, static_cast<uint8_t*>(threadScratch(kquant_scratch_bytes(K))));
  }
  return info.Env().Undefined();
}

/** attention(mem, build, out, q, k, v, nHead, nKvHead, headDim, pos, scale, half, M, u0, u1, tid) */
Napi::Value Attention(const Napi::CallbackInfo& info) {
  Args a(info);
  uint8_t* base;
  size_t bytes;
  const Kernels* k;
  long nHead, nKvHead, headDim, pos, half, M, u0, u1;
  double scale;
  AttentionArgs p;
  if (!(a.memoryAndBuild(0, base, bytes, k) && a.integer(6, 1, 1e6, nHead) && a.integer(7, 1, static_cast<double>(nHead), nKvHead) &&
        a.integer(8, 1, 1e6, headDim) && a.integer(9, 0, 1e9, pos) && a.number(10, scale) && a.integer(11, 0, 1, half) && a.integer(12, 0, 1e9, M) &&
        a.integer(13, 0, static_cast<double>(M * nHead), u0) && a.integer(14, static_cast<double>(u0), static_cast<double>(M * nHead), u1))) {
    return info.Env().Undefined();
  }
  if (nHead % nKvHead) {
    fail(a.env(), "nHead must be a multiple of nKvHead");
    return info.Env().Undefined();
  }
  const double qBytes = 4.0 * M * nHead * headDim;
  const double kvBytes = (half ? 2.0 : 4.0) * (pos + M) * nKvHead * headDim;
  float *out, *q;
  const uint8_t *kc, *vc;
  if (a.range(2, base, bytes, qBytes, out) && a.range(3, base, bytes, qBytes, q) && a.range(4, base, bytes, kvBytes, kc) &&
      a.range(5, base, bytes, kvBytes, vc)) {
    p = {out, q, kc, vc, static_cast<int>(nHead), static_cast<int>(nKvHead), static_cast<int>(headDim), static_cast<int>(pos),
         static_cast<float>(scale), half != 0, static_cast<int>(M)};
    k->attention(p, u0, u1, static_cast<float*>(threadScratch(4 * attention_scratch_floats(headDim, pos + M))));
  }
  return info.Env().Undefined();
}

/** The CPU's features and brand string, as detected. */
Napi::Value CpuInfo(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const CpuFeatures& f = cpu_features();
  Napi::Object o = Napi::Object::New(env);
  o.Set("brand", f.brand);
  const std::pair<const char*, bool> flags[] = {
      {"avx2", f.avx2},         {"fma", f.fma},           {"f16c", f.f16c},           {"avx512f", f.avx512f},   {"avx512bw", f.avx512bw},
      {"avx512vl", f.avx512vl}, {"avx512dq", f.avx512dq}, {"avx512_vnni", f.avx512_vnni}, {"avx_vnni", f.avx_vnni}, {"amx_tile", f.amx_tile},
      {"amx_int8", f.amx_int8}, {"amx_bf16", f.amx_bf16}, {"neon", f.neon}, {"asimddp", f.asimddp}, {"fphp", f.fphp},
  };
  Napi::Object features = Napi::Object::New(env);
  for (const auto& [name, on] : flags) features.Set(name, on);
  o.Set("features", features);
  return o;
}

/** Names of the builds compiled in and whether this CPU runs each, worst to best. */
Napi::Value Builds(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Napi::Array list = Napi::Array::New(env, kBuildCount);
  for (int i = 0; i < kBuildCount; i++) {
    Napi::Object b = Napi::Object::New(env);
    b.Set("name", kBuilds[i].name);
    b.Set("runs", kBuilds[i].runs(cpu_features()));
    list.Set(i, b);
  }
  return list;
}

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  exports.Set("attach", Napi::Function::New(env, Attach, "attach"));
  exports.Set("detach", Napi::Function::New(env, Detach, "detach"));
  exports.Set("cpuInfo", Napi::Function::New(env, CpuInfo, "cpuInfo"));
  exports.Set("builds", Napi::Function::New(env, Builds, "builds"));
  exports.Set("matmul_f32", Napi::Function::New(env, MatmulFloat<FloatWeights::f32>, "matmul_f32"));
  exports.Set("matmul_f16", Napi::Function::New(env, MatmulFloat<FloatWeights::f16>, "matmul_f16"));
  exports.Set("matmul_bf16", Napi::Function::New(env, MatmulFloat<FloatWeights::bf16>, "matmul_bf16"));
  exports.Set("quantize_q8", Napi::Function::New(env, QuantizeQ8<false>, "quantize_q8"));
  exports.Set("matmul_q8_0", Napi::Function::New(env, MatmulQ<kQ8_0>, "matmul_q8_0"));
  exports.Set("matmul_q4_0", Napi::Function::New(env, MatmulQ<kQ4_0>, "matmul_q4_0"));
  exports.Set("attention", Napi::Function::New(env, Attention, "attention"));
  exports.Set("quantize_q8_1", Napi::Function::New(env, QuantizeQ8<true>, "quantize_q8_1"));
  exports.Set("matmul_q4_1", Napi::Function::New(env, MatmulQ<kQ4_1>, "matmul_q4_1"));
  exports.Set("matmul_q5_0", Napi::Function::New(env, MatmulQ<kQ5_0>, "matmul_q5_0"));
  exports.Set("matmul_q5_1", Napi::Function::New(env, MatmulQ<kQ5_1>, "matmul_q5_1"));
  exports.Set("quantize_q8_k", Napi::Function::New(env, QuantizeQ8K, "quantize_q8_k"));
  exports.Set("matmul_q4_k", Napi::Function::New(env, MatmulK<4>, "matmul_q4_k"));
  exports.Set("matmul_q5_k", Napi::Function::New(env, MatmulK<5>, "matmul_q5_k"));
  exports.Set("matmul_q6_k", Napi::Function::New(env, MatmulK<6>, "matmul_q6_k"));
  return exports;
}

}  // namespace
}  // namespace smallmind

static Napi::Object InitAddon(Napi::Env env, Napi::Object exports) { return smallmind::Init(env, exports); }

NODE_API_MODULE(smallmind, InitAddon)
