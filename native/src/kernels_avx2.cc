// The avx2 build of the x86-64 kernels (see kernels_x86.inc; binding.gyp gives this file its flags).
#define SM_AVX512 0
#define SM_VNNI 0
#define SM_TABLE kernels_avx2
#define SM_NAME "avx2"
#include "kernels_x86.inc"
