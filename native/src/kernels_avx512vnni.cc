// The avx512vnni build of the x86-64 kernels (see kernels_x86.inc; binding.gyp gives this file its flags).
#define SM_AVX512 1
#define SM_VNNI 1
#define SM_TABLE kernels_avx512vnni
#define SM_NAME "avx512vnni"
#include "kernels_x86.inc"
