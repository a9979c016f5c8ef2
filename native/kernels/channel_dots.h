// Dot products, sums and axpys over one pixel's channel vector (d values, contiguous), as the LA
// kernel (la_attention_head.h) runs them per pixel and kernel point: 8-lane partial sums that
// vectorise without -ffast-math, and for compiled widths (kLaneDots) partial sums finished eight
// rows at a time by vec8.h's sum_lanes8. Built with kernel_options.h's options, as their callers
// (always-inlined helpers must share their callers' options).
#pragma once
#include <cstdint>

#include "kernel_options.h"
#include "vec8.h"

namespace vicinity {

VICINITY_KERNEL_OPTIONS_BEGIN
#if defined(__GNUC__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wpsabi"  // vec8.h's by-value vectors never cross an ABI boundary: always inlined
#endif

/** lane[0] + … + lane[7] as a tree (3 dependent adds instead of 8). */
template <typename T>
VICINITY_KERNEL_INLINE T reduce8(T* lane) {
  for (int l = 0; l < 4; ++l) lane[l] += lane[l + 4];
  return (lane[0] + lane[2]) + (lane[1] + lane[3]);
}

/** Σ_c x_c·y_c in 8 interleaved partial sums, which vectorise without -ffast-math. */
template <typename T>
VICINITY_KERNEL_INLINE T dot(int64_t d, const T* __restrict__ x, const T* __restrict__ y) {
  Vec8<T> acc = {};
  int64_t c = 0;
  for (; c + 8 <= d; c += 8) acc += load8(x + c) * load8(y + c);
  T lane[8];
  store8(lane, acc);
  T sum = 0;
  for (; c < d; ++c) sum += x[c] * y[c];
  return sum + reduce8(lane);
}

/** Σ_c x_c, as dot. */
template <typename T>
VICINITY_KERNEL_INLINE T total(int64_t d, const T* __restrict__ x) {
  Vec8<T> acc = {};
  int64_t c = 0;
  for (; c + 8 <= d; c += 8) acc += load8(x + c);
  T lane[8];
  store8(lane, acc);
  T sum = 0;
  for (; c < d; ++c) sum += x[c];
  return sum + reduce8(lane);
}

/**
 * out[c] = Σ_r rows[r][c] · a[r] over K rows, r in order, each block of 8 channels summed in
 * registers (an axpy per row would store and reload `out` K times, one chain through memory).
 */
template <typename T>
VICINITY_KERNEL_INLINE void weighted_sum(int64_t d, int64_t K, const T* const* rows, const T* a, T* __restrict__ out) {
  int64_t c0 = 0;
  for (; c0 + 8 <= d; c0 += 8) {
    Vec8<T> acc = {};
    for (int64_t r = 0; r < K; ++r) acc += load8(rows[r] + c0) * a[r];
    store8(out + c0, acc);
  }
  for (int64_t c = c0; c < d; ++c) {
    T sum = 0;
    for (int64_t r = 0; r < K; ++r) sum += rows[r][c] * a[r];
    out[c] = sum;
  }
}

/** Σ_c x_c·y_c (as dot) and, in the same pass, out += x·a. */
template <typename T>
VICINITY_KERNEL_INLINE T dot_axpy(int64_t d, const T* __restrict__ x, const T* __restrict__ y, T a, T* __restrict__ out) {
  Vec8<T> acc = {};
  int64_t c = 0;
  for (; c + 8 <= d; c += 8) {
    const Vec8<T> xc = load8(x + c);
    acc += xc * load8(y + c);
    store8(out + c, load8(out + c) + xc * a);
  }
  T lane[8];
  store8(lane, acc);
  T sum = 0;
  for (; c < d; ++c) {
    sum += x[c] * y[c];
    out[c] += x[c] * a;
  }
  return sum + reduce8(lane);
}

/**
 * True where the per-pixel dot products run as 8-lane partial sums reduced eight at a time
 * (sum_rows8): the head width is compiled in and a multiple of 8.
 */
template <int D>
constexpr bool kLaneDots = D > 0 && D % 8 == 0;

/** x·y over D channels as 8 lane partial sums into lanes (D a multiple of 8); sum_rows8 finishes it. */
template <int D, typename T>
VICINITY_KERNEL_INLINE void dot_lanes(const T* __restrict__ x, const T* __restrict__ y, T* __restrict__ lanes) {
  Vec8<T> acc = load8(x) * load8(y);
  for (int c = 8; c < D; c += 8) acc += load8(x + c) * load8(y + c);
  store8(lanes, acc);
}

/** dot_lanes(x, y, lanes) and, in the same pass, out += x·a. */
template <int D, typename T>
VICINITY_KERNEL_INLINE void dot_axpy_lanes(const T* __restrict__ x, const T* __restrict__ y, T a, T* __restrict__ out,
                                    T* __restrict__ lanes) {
  Vec8<T> acc = {};
  for (int c = 0; c < D; c += 8) {
    const Vec8<T> xc = load8(x + c);
    acc += xc * load8(y + c);
    store8(out + c, load8(out + c) + xc * a);
  }
  store8(lanes, acc);
}

/**
 * out[i] = the sum of the 8 lanes of rows[8i … 8i+7] for i < n: eight rows per vector tree
 * (vec8.h sum_lanes8) instead of a scalar chain each. `rows` and `out` hold n rounded up to 8
 * rows; the rows past n are zeroed here.
 */
template <typename T>
VICINITY_KERNEL_INLINE void sum_rows8(int64_t n, T* rows, T* out) {
  for (int64_t i = n; i % 8 != 0; ++i) store8(rows + 8 * i, Vec8<T>{});
  for (int64_t i0 = 0; i0 < n; i0 += 8) {
    Vec8<T> v[8];
    for (int l = 0; l < 8; ++l) v[l] = load8(rows + 8 * (i0 + l));
    sum_lanes8<T>(v, out + i0);
  }
}

#if defined(__GNUC__)
#pragma GCC diagnostic pop
#endif
VICINITY_KERNEL_OPTIONS_END

}  // namespace vicinity
