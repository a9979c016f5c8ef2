// Build options of the fused kernels' hot loops, in one place: -O3 and no-trapping-math (binding.gyp
// builds -O2; no-trapping-math lets GCC if-convert the softmax exponential's selects, which the
// vectoriser needs) between VICINITY_KERNEL_OPTIONS_BEGIN / _END, and an x86-64-v3 (AVX2 + FMA)
// clone of the per-head functions marked VICINITY_X86_64_V3_CLONES, which GCC's target_clones
// picks by the CPU at load time (the portable default clone elsewhere). Helpers called from the
// clones are VICINITY_KERNEL_INLINE (always inlined, so they compile for each clone's ISA).
#pragma once

#if defined(__GNUC__) && !defined(__clang__)
#define VICINITY_KERNEL_OPTIONS_BEGIN \
  _Pragma("GCC push_options") _Pragma("GCC optimize(\"O3\", \"no-trapping-math\")")
#define VICINITY_KERNEL_OPTIONS_END _Pragma("GCC pop_options")
#else
#define VICINITY_KERNEL_OPTIONS_BEGIN
#define VICINITY_KERNEL_OPTIONS_END
#endif

#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__)
#define VICINITY_X86_64_V3_CLONES __attribute__((target_clones("arch=x86-64-v3", "default")))
#define VICINITY_KERNEL_INLINE inline __attribute__((always_inline))
#else
#define VICINITY_X86_64_V3_CLONES
#define VICINITY_KERNEL_INLINE inline
#endif

#include <cstdint>
#include <type_traits>

namespace vicinity {

// Zeroes n elements of a floating-point buffer (all bits zero is +0). std::fill called from code
// between VICINITY_KERNEL_OPTIONS_BEGIN / _END is not inlined (different optimisation options)
// and its out-of-line copy stores one element at a time; the builtin memset always inlines.
template <typename T>
VICINITY_KERNEL_INLINE void zero_fill(T* p, int64_t n) {
  __builtin_memset(static_cast<void*>(p), 0, static_cast<size_t>(n) * sizeof(T));
}

// fn(std::integral_constant<int, W>()) with W = width for the per-head channel counts the kernels
// compile apart (4, 8, 16, 32, 64: the head widths of the papers' and the nano models), else W = 0
// (the kernel reads the width at run time). A compile-time width lets GCC unroll the per-channel
// loops of the always-inlined helpers; the arithmetic and its order are the same.
template <typename Fn>
void with_width(int64_t width, const Fn& fn) {
  switch (width) {
    case 4: return fn(std::integral_constant<int, 4>());
    case 8: return fn(std::integral_constant<int, 8>());
    case 16: return fn(std::integral_constant<int, 16>());
    case 32: return fn(std::integral_constant<int, 32>());
    case 64: return fn(std::integral_constant<int, 64>());
    default: return fn(std::integral_constant<int, 0>());
  }
}

}  // namespace vicinity
