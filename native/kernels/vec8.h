// Eight-lane vectors (GCC's vector extension) for the fused kernels' hot loops: a Vec8<float> is
// one AVX register in the x86-64-v3 clones, two SSE registers in the default ones. Arithmetic on
// them is lane-wise and in the written order, as the scalar loops it replaces (GCC may contract
// a·b + c into one FMA in the x86-64-v3 clones, scalar or vector alike: C++'s default
// -ffp-contract=fast). load8/store8 go through memcpy: unaligned, and free of aliasing assumptions.
#pragma once
#include <cstring>

#include "kernel_options.h"

namespace vicinity {

#if defined(__GNUC__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wpsabi"  // by-value vectors never cross an ABI boundary: always inlined
#endif

template <typename T>
struct Vec8Of {
  typedef T type __attribute__((vector_size(8 * sizeof(T))));
};
template <typename T>
using Vec8 = typename Vec8Of<T>::type;

template <typename T>
VICINITY_KERNEL_INLINE Vec8<T> load8(const T* p) {
  Vec8<T> v;
  std::memcpy(&v, p, sizeof v);
  return v;
}

template <typename T>
VICINITY_KERNEL_INLINE void store8(T* p, Vec8<T> v) {
  std::memcpy(p, &v, sizeof v);
}

#if defined(__GNUC__)
#pragma GCC diagnostic pop
#endif

}  // namespace vicinity
