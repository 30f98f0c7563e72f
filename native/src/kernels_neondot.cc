// The neondot build of the arm64 kernels (see kernels_neon.inc): SDOT for the quantized dot
// products (binding.gyp compiles this file with -march=armv8.2-a+dotprod).
#define SM_DOTPROD 1
#define SM_TABLE kernels_neondot
#define SM_NAME "neondot"
#include "kernels_neon.inc"
