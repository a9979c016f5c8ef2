// The exponential of the fused softmax kernels (halo_attention_head.h, lesa_binary_rows.h): one
// definition, always inlined so each caller's target clone (AVX-512 / AVX2 / default) carries it
// compiled for its ISA. Built with the callers' options (O3, no-trapping-math), which GCC needs
// to if-convert its selects and to inline it into them.
#pragma once

#include <cmath>
#include <cstdint>
#include <cstring>

#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC push_options
#pragma GCC optimize("O3", "no-trapping-math")
#define VICINITY_EXP_INLINE inline __attribute__((always_inline))
#else
#define VICINITY_EXP_INLINE inline
#endif

namespace vicinity {

/**
 * e^x for the shifted logits x ≤ 0 of a softmax, in a form GCC vectorises (glibc's expf is a call
 * per element, a third of the forward's time): Cephes expf's range reduction x = n·ln2 + r,
 * |r| ≤ ln2/2, and its degree-7 polynomial (≤ 2 ulp), scaled by 2ⁿ built in the exponent bits.
 * x < −87 (e^x below float's normal range; masked logits are −inf) gives exactly 0.
 */
VICINITY_EXP_INLINE float softmax_exp(float x) {
  const float xc = x < -87.0f ? -87.0f : x;
  const float n = (xc * 1.44269504088896341f + 12582912.0f) - 12582912.0f;  // round(x·log2 e), 1.5·2²³ trick
  const float r = (xc - n * 0.693359375f) - n * -2.12194440e-4f;              // ln2 split in two: exact n·C1
  float p = 1.9875691500e-4f;
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  const float y = p * r * r + r + 1.0f;
  const uint32_t bits = static_cast<uint32_t>(static_cast<int32_t>(n) + 127) << 23;  // 2ⁿ, n ∈ [−126, 0]
  float two_n;
  std::memcpy(&two_n, &bits, sizeof two_n);
  return x < -87.0f ? 0.0f : y * two_n;
}
// Double is the gradcheck's dtype: exact to the last bit matters more than speed there.
VICINITY_EXP_INLINE double softmax_exp(double x) { return std::exp(x); }

}  // namespace vicinity

#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC pop_options
#endif
#undef VICINITY_EXP_INLINE
