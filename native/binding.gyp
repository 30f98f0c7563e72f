# The native kernels addon (built by scripts/build-native.mjs; see native/src/kernels.h).
# Each instruction-set build of the x86-64 and arm64 kernels is its own static library with its own
# flags; everything else is compiled for the baseline CPU, so the addon loads anywhere and picks a
# build at run time. No -march=native: the binary must run on other machines than the one that built it.
{
  'variables': {
    'sm_common_flags': ['-std=c++17', '-O3', '-ffp-contract=off', '-fno-math-errno', '-fPIC', '-fvisibility=hidden'],
  },
  'target_defaults': {
    'cflags_cc!': ['-fno-exceptions', '-std=gnu++17', '-std=gnu++20'],
    'cflags_cc': ['<@(sm_common_flags)'],
    'xcode_settings': {
      'CLANG_CXX_LANGUAGE_STANDARD': 'c++17',
      'OTHER_CPLUSPLUSFLAGS': ['-O3', '-ffp-contract=off', '-fno-math-errno'],
    },
    'msvs_settings': {'VCCLCompilerTool': {'AdditionalOptions': ['/std:c++17', '/fp:precise']}},
  },
  'targets': [
    {
      'target_name': 'smallmind',
      'sources': ['src/addon.cc', 'src/cpu.cc', 'src/quant.cc', 'src/kernels_scalar.cc'],
      'include_dirs': ["<!(node -p \"require('node-addon-api').include_dir\")"],
      'defines': ['NAPI_VERSION=8', 'NAPI_DISABLE_CPP_EXCEPTIONS', 'NODE_ADDON_API_DISABLE_DEPRECATED'],
      'conditions': [
        ['target_arch=="x64"', {'dependencies': ['kernels_avx2', 'kernels_avx512', 'kernels_avx512vnni']}],
        ['target_arch=="arm64" and OS!="win"', {'dependencies': ['kernels_neon', 'kernels_neondot']}],
      ],
    },
  ],
  'conditions': [
    ['target_arch=="x64"', {
      'targets': [
        {
          'target_name': 'kernels_avx2',
          'type': 'static_library',
          'sources': ['src/kernels_avx2.cc'],
          'cflags_cc': ['-mavx2', '-mfma', '-mf16c'],
          'xcode_settings': {'OTHER_CPLUSPLUSFLAGS': ['-mavx2', '-mfma', '-mf16c']},
          'msvs_settings': {'VCCLCompilerTool': {'AdditionalOptions': ['/arch:AVX2']}},
        },
        {
          'target_name': 'kernels_avx512',
          'type': 'static_library',
          'sources': ['src/kernels_avx512.cc'],
          'cflags_cc': ['-mavx2', '-mfma', '-mf16c', '-mavx512f', '-mavx512bw', '-mavx512vl', '-mavx512dq'],
          'xcode_settings': {'OTHER_CPLUSPLUSFLAGS': ['-mavx2', '-mfma', '-mf16c', '-mavx512f', '-mavx512bw', '-mavx512vl', '-mavx512dq']},
          'msvs_settings': {'VCCLCompilerTool': {'AdditionalOptions': ['/arch:AVX512']}},
        },
        {
          'target_name': 'kernels_avx512vnni',
          'type': 'static_library',
          'sources': ['src/kernels_avx512vnni.cc'],
          'cflags_cc': ['-mavx2', '-mfma', '-mf16c', '-mavx512f', '-mavx512bw', '-mavx512vl', '-mavx512dq', '-mavx512vnni'],
          'xcode_settings': {'OTHER_CPLUSPLUSFLAGS': ['-mavx2', '-mfma', '-mf16c', '-mavx512f', '-mavx512bw', '-mavx512vl', '-mavx512dq', '-mavx512vnni']},
          'msvs_settings': {'VCCLCompilerTool': {'AdditionalOptions': ['/arch:AVX512']}},
        },
      ],
    }],
    # (not on Windows: MSVC builds keep the scalar kernels there)
    ['target_arch=="arm64" and OS!="win"', {
      'targets': [
        {
          'target_name': 'kernels_neon',
          'type': 'static_library',
          'sources': ['src/kernels_neon.cc'],
        },
        {
          'target_name': 'kernels_neondot',
          'type': 'static_library',
          'sources': ['src/kernels_neondot.cc'],
          'cflags_cc': ['-march=armv8.2-a+dotprod'],
          'xcode_settings': {'OTHER_CPLUSPLUSFLAGS': ['-march=armv8.2-a+dotprod']},
        },
      ],
    }],
  ],
}
