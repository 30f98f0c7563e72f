// The neon build of the arm64 kernels (see kernels_neon.inc): baseline Armv8-A, no extra flags.
#define SM_DOTPROD 0
#define SM_TABLE kernels_neon
#define SM_NAME "neon"
#include "kernels_neon.inc"
