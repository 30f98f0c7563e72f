// CPU feature detection. A feature counts only when the CPU reports it AND the operating system
// saves its register state on context switches (xgetbv): a CPU with AVX-512 under an OS that does
// not enable it must not run AVX-512 code.
#include "cpu.h"

#include <cstring>

#if defined(__x86_64__) || defined(_M_X64)
#define SM_X86 1
#if defined(_MSC_VER)
#include <intrin.h>
#else
#include <cpuid.h>
#endif
#endif
#if defined(__aarch64__) && defined(__linux__)
#include <sys/auxv.h>
#elif defined(__aarch64__) && defined(__APPLE__)
#include <sys/sysctl.h>
#endif

namespace smallmind {

#if defined(__aarch64__) && defined(__APPLE__)
namespace {
/** A macOS hw.optional flag: 1 when the CPU has the feature, 0 or absent otherwise. */
bool sysctl_flag(const char* name) {
  int value = 0;
  size_t size = sizeof(value);
  return sysctlbyname(name, &value, &size, nullptr, 0) == 0 && value == 1;
}
}  // namespace
#endif

#if SM_X86
namespace {

struct Regs {
  unsigned a = 0, b = 0, c = 0, d = 0;
};

Regs cpuid(unsigned leaf, unsigned sub) {
  Regs r;
#if defined(_MSC_VER)
  int v[4];
  __cpuidex(v, static_cast<int>(leaf), static_cast<int>(sub));
  r.a = v[0], r.b = v[1], r.c = v[2], r.d = v[3];
#else
  __cpuid_count(leaf, sub, r.a, r.b, r.c, r.d);
#endif
  return r;
}

unsigned long long xgetbv0() {
#if defined(_MSC_VER)
  return _xgetbv(0);
#else
  unsigned lo, hi;
  __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
  return (static_cast<unsigned long long>(hi) << 32) | lo;
#endif
}

bool bit(unsigned reg, int n) { return (reg >> n) & 1u; }

CpuFeatures detect() {
  CpuFeatures f;
  const unsigned maxLeaf = cpuid(0, 0).a;
  const Regs l1 = cpuid(1, 0);
  const bool osxsave = bit(l1.c, 27);
  const unsigned long long xcr0 = osxsave ? xgetbv0() : 0;
  const bool osAvx = (xcr0 & 0x6) == 0x6;            // SSE and AVX state
  const bool osAvx512 = osAvx && (xcr0 & 0xe0) == 0xe0;  // opmask, ZMM0-15 upper halves, ZMM16-31
  const bool osAmx = (xcr0 & 0x60000) == 0x60000;    // TILECFG and TILEDATA
  const bool avx = osAvx && bit(l1.c, 28);
  f.fma = avx && bit(l1.c, 12);
  f.f16c = avx && bit(l1.c, 29);
  if (maxLeaf >= 7) {
    const Regs l7 = cpuid(7, 0);
    f.avx2 = avx && bit(l7.b, 5);
    f.avx512f = osAvx512 && bit(l7.b, 16);
    f.avx512dq = f.avx512f && bit(l7.b, 17);
    f.avx512bw = f.avx512f && bit(l7.b, 30);
    f.avx512vl = f.avx512f && bit(l7.b, 31);
    f.avx512_vnni = f.avx512f && bit(l7.c, 11);
    f.amx_bf16 = osAmx && bit(l7.d, 22);
    f.amx_tile = osAmx && bit(l7.d, 24);
    f.amx_int8 = osAmx && bit(l7.d, 25);
    if (l7.a >= 1) f.avx_vnni = avx && bit(cpuid(7, 1).a, 4);
  }
  if (cpuid(0x80000000u, 0).a >= 0x80000004u) {
    for (unsigned i = 0; i < 3; i++) {
      const Regs r = cpuid(0x80000002u + i, 0);
      std::memcpy(f.brand + 16 * i, &r, 16);
    }
    // trim the leading spaces some CPUs pad the brand with
    char* s = f.brand;
    while (*s == ' ') s++;
    std::memmove(f.brand, s, std::strlen(s) + 1);
  }
  return f;
}

}  // namespace
#else
namespace {
CpuFeatures detect() {
  CpuFeatures f;
#if defined(__aarch64__) || defined(_M_ARM64)
  f.neon = true;  // Advanced SIMD is mandatory on arm64
#if defined(__linux__)
  // the kernel's HWCAP bits (arch/arm64 uapi hwcap.h), which only report what it lets user space run
  const unsigned long hwcap = getauxval(AT_HWCAP);
  f.fphp = (hwcap >> 9) & 1;      // HWCAP_FPHP
  f.asimddp = (hwcap >> 20) & 1;  // HWCAP_ASIMDDP
#elif defined(__APPLE__)
  f.fphp = sysctl_flag("hw.optional.arm.FEAT_FP16");
  f.asimddp = sysctl_flag("hw.optional.arm.FEAT_DotProd");
#endif
#endif
  return f;
}
}  // namespace
#endif

const CpuFeatures& cpu_features() {
  static const CpuFeatures features = detect();
  return features;
}

}  // namespace smallmind
