// Eight-lane vectors (GCC's vector extension) for the fused kernels' hot loops: a Vec8<float> is
// one AVX register in the x86-64-v3 clones, two SSE registers in the default ones. Arithmetic on
// them is lane-wise and in the written order, as the scalar loops it replaces (GCC may contract
// a·b + c into one FMA in the x86-64-v3 clones, scalar or vector alike: C++'s default
// -ffp-contract=fast). load8/store8 go through memcpy: unaligned, and free of aliasing assumptions.
#pragma once
#include <cstdint>
#include <cstring>
#include <type_traits>

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

// By reference: a by-value 64-byte vector parameter (Vec8<double>) draws GCC's ABI note at the
// end of each translation unit, though the call is always inlined.
template <typename T>
VICINITY_KERNEL_INLINE void store8(T* p, const Vec8<T>& v) {
  std::memcpy(p, &v, sizeof v);
}

/** The integer vector __builtin_shuffle takes as Vec8<T>'s lane selector. */
template <typename T>
struct Lanes8Of {
  typedef std::conditional_t<sizeof(T) == 4, int32_t, int64_t> index;
  typedef index type __attribute__((vector_size(8 * sizeof(T))));
};

/**
 * out[i] = v[i][0] + … + v[i][7], each as ((0+1)+(2+3))+((4+5)+(6+7)): eight horizontal sums in
 * seven vector adds (a transposing tree of lane shuffles) instead of eight scalar reduction
 * chains. The kernels' per-pixel dot products end in this. (Results leave through a pointer: a
 * by-value vector return draws -Wpsabi at the end of the translation unit.)
 */
template <typename T>
VICINITY_KERNEL_INLINE void sum_lanes8(const Vec8<T>* v, T* out) {
  using M = typename Lanes8Of<T>::type;
  const M even = {0, 8, 2, 10, 4, 12, 6, 14}, odd = {1, 9, 3, 11, 5, 13, 7, 15};
  const M low2 = {0, 1, 8, 9, 4, 5, 12, 13}, high2 = {2, 3, 10, 11, 6, 7, 14, 15};
  const M low4 = {0, 1, 2, 3, 8, 9, 10, 11}, high4 = {4, 5, 6, 7, 12, 13, 14, 15};
  Vec8<T> pairs[4], quads[2];  // pairs[k][2i + j] = v[2k+j][2i] + v[2k+j][2i+1]
  for (int k = 0; k < 4; ++k) {
    pairs[k] = __builtin_shuffle(v[2 * k], v[2 * k + 1], even) + __builtin_shuffle(v[2 * k], v[2 * k + 1], odd);
  }
  for (int k = 0; k < 2; ++k) {
    quads[k] = __builtin_shuffle(pairs[2 * k], pairs[2 * k + 1], low2) +
               __builtin_shuffle(pairs[2 * k], pairs[2 * k + 1], high2);
  }
  store8(out, __builtin_shuffle(quads[0], quads[1], low4) + __builtin_shuffle(quads[0], quads[1], high4));
}

#if defined(__GNUC__)
#pragma GCC diagnostic pop
#endif

}  // namespace vicinity
