// What the CPU can run: detected once with cpuid/xgetbv (x86-64) or the kernel's HWCAP bits (arm64
// Linux; NEON itself is part of every arm64 CPU), so the addon can pick the best kernel build at
// run time.
#pragma once

namespace smallmind {

struct CpuFeatures {
  bool avx2 = false, fma = false, f16c = false;
  bool avx512f = false, avx512bw = false, avx512vl = false, avx512dq = false, avx512_vnni = false;
  bool avx_vnni = false;
  bool amx_tile = false, amx_int8 = false, amx_bf16 = false;
  bool neon = false;
  bool asimddp = false;  // arm64 dotprod (SDOT/UDOT), Linux's name
  bool fphp = false;     // arm64 half-precision arithmetic (not needed by the kernels: reported only)
  char brand[49] = {0};
};

const CpuFeatures& cpu_features();

}  // namespace smallmind
