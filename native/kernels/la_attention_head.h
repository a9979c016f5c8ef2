// The per-head compute of `vicinity::la_attention` (la_attention.cc, whose header states the
// maths, conventions and deviations): geometry, per-thread scratch, bilinear corner location,
// key sampling, the forward aggregation and the hand-written backward of one (b, head).
// Included by la_attention.cc only (internal linkage); split out to keep each file readable.
#pragma once
#include <ATen/ATen.h>
#include <ATen/ops/softplus_backward_cpu_dispatch.h>
#include <ATen/ops/softplus_cpu_dispatch.h>

#include <cmath>
#include <cstdint>
#include <limits>
#include <vector>

#include "channel_dots.h"
#include "softmax_exp.h"
#include "vec8.h"

namespace vicinity {
namespace {

constexpr double kSoftplusThreshold = 20;  // ATen's softplus default (beta 1), as aten.softplus(x)
// Sampled key values per chunk: small enough to stay in L2 next to the maps, large enough that one
// vectorised softplus call per chunk costs little more than its arithmetic.
constexpr int64_t kChunkElements = 8192;
// Header functions are not inlined into the code compiled with other optimisation options below,
// so that code uses constants and plain loops instead of std::fill, std::min and numeric_limits.
template <typename T>
constexpr T kNaN = std::numeric_limits<T>::quiet_NaN();

/** Sizes and options shared by forward and backward; H·W == P (everything is on the output grid). */
struct Geometry {
  int64_t B, m, d, H, W, P, k, K;
  bool softmax;
  double eps;
  int64_t chunk;  // pixels per chunk
};

// The hot loops build with kernel_options.h's options (-O3, no-trapping-math: GCC turns the branches
// of locate_point into selects; it changes no value, only which floating-point exception flags
// could be raised, and nothing reads them) and an x86-64-v3 (AVX2 + FMA) clone of
// forward_head/backward_head that GCC's target_clones picks by the CPU at load time (the default
// clone runs on any x86-64). The helpers are always inlined so the clones carry them.
VICINITY_KERNEL_OPTIONS_BEGIN
#if defined(__GNUC__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wpsabi"  // vec8.h's by-value vectors never cross an ABI boundary: always inlined
#endif
#define VICINITY_INLINE VICINITY_KERNEL_INLINE
#define VICINITY_CLONES VICINITY_X86_64_V3_CLONES

/** (d, n) → (n, d): one head's map to channels-last, and back. */
template <typename scalar_t>
void to_channels_last(const scalar_t* src, int64_t d, int64_t n, scalar_t* dst) {
  for (int64_t c = 0; c < d; ++c) {
    for (int64_t s = 0; s < n; ++s) dst[s * d + c] = src[c * n + s];
  }
}

template <typename scalar_t>
void to_channels_first(const scalar_t* src, int64_t d, int64_t n, scalar_t* dst) {
  for (int64_t s = 0; s < n; ++s) {
    for (int64_t c = 0; c < d; ++c) dst[c * n + s] = src[s * d + c];
  }
}

/** Flat index of (i + ry, j + rx), kernel point (ky, kx), or P outside the map (the zero row: value reads 0). */
VICINITY_INLINE int64_t window_index(const Geometry& g, int64_t i, int64_t j, int64_t ky, int64_t kx) {
  const int64_t y = i + ky - g.k / 2, x = j + kx - g.k / 2;
  return (y >= 0) & (y < g.H) & (x >= 0) & (x < g.W) ? y * g.W + x : g.P;
}

/**
 * Channels per head: D when the kernel is instantiated for it (la_attention.cc dispatches by
 * kernel_options.h with_width), else g.d.
 */
template <int D>
VICINITY_INLINE int64_t channels(const Geometry& g) {
  return D > 0 ? D : g.d;
}

/** One head's slices of every input and output, (b, n) fixed. */
template <typename scalar_t>
struct HeadSlices {
  const scalar_t *q, *key, *value, *off;  // (d, P), (d, P), (d, P), (K, 2, P)
  scalar_t* weights;                      // (K, P): written by forward, read by backward
  scalar_t* y;                            // (d, P), forward only
  const scalar_t* grad_y;                 // (d, P), backward only
  scalar_t *grad_q, *grad_key, *grad_value, *grad_off;
};

constexpr int64_t rounded8(int64_t n) { return (n + 7) / 8 * 8; }

/**
 * A thread's working memory, reused by every head it runs. A chunk's sampling positions are kept
 * as structure-of-arrays over t = r·n + pp (point r of pixel p0 + pp), so locate_chunk vectorises;
 * its keys are rows pp·K + r of d values, so a pixel's K keys are contiguous.
 */
template <typename scalar_t>
struct Scratch {
  std::vector<scalar_t> maps, small, fractions;
  std::vector<int32_t> pixels, indices, invalid;
  std::vector<scalar_t> lanes;
  std::vector<const scalar_t*> pointers;
  // Channels-last maps and their gradients, (P + 1, d): row P of kt and vt stays zero and is the
  // row every corner outside the map reads; row P of gkt and gvt absorbs what is added there.
  scalar_t *kt, *vt, *gkt, *gvt;
  scalar_t *qv, *gyv, *acc;         // one pixel's q, ∂L/∂y, an accumulator (d)
  scalar_t *w, *gw, *factor;        // one pixel's w, ∂L/∂w and key-gradient factors (K)
  const scalar_t** rows;            // one pixel's K value (or key) rows
  int32_t *row_of, *col_of;         // (P): i and j of pixel p
  int32_t* corner[4];               // (chunk·K): flat index of (y0, x0), (y0, x0+1), (y0+1, x0), (y0+1, x0+1); P outside
  scalar_t *fy, *fx;                // (chunk·K): Y − floor(Y), X − floor(X)
  scalar_t* weight[4];              // (chunk·K): each corner's bilinear weight wy·wx
  int32_t* nonfinite;               // (chunk·K): 1 for a NaN or infinite position
  scalar_t *top, *total;            // (chunk): softmax_columns' per-pixel max and sum
  scalar_t *lane_rows, *sums;       // a pixel's 8-lane partial dots (≤ 2K rows of 8) and their sums (kLaneDots)
  at::Tensor buffers;               // keys, softplus(keys), ∂L/∂softplus, ∂L/∂key: 4 × (chunk·K·d)
  at::Tensor keys_t, soft_t, grad_t, grad_key_t;
  scalar_t *keys, *soft, *grad, *grad_key;

  Scratch(const Geometry& g, const at::TensorOptions& options)
      : maps(4 * (g.P + 1) * g.d, 0), small(3 * g.d + 3 * g.K, 0), fractions(6 * g.chunk * g.K), pixels(2 * g.P),
        indices(4 * g.chunk * g.K), invalid(g.chunk * g.K),
        lanes(9 * rounded8(2 * g.K) + 2 * g.chunk), pointers(g.K) {
    const int64_t pd = (g.P + 1) * g.d, points = g.chunk * g.K;
    kt = maps.data(), vt = kt + pd, gkt = vt + pd, gvt = gkt + pd;
    qv = small.data(), gyv = qv + g.d, acc = gyv + g.d, w = acc + g.d, gw = w + g.K, factor = gw + g.K;
    rows = pointers.data();
    row_of = pixels.data(), col_of = row_of + g.P;
    for (int64_t p = 0; p < g.P; ++p) row_of[p] = static_cast<int32_t>(p / g.W), col_of[p] = static_cast<int32_t>(p % g.W);
    for (int c = 0; c < 4; ++c) corner[c] = indices.data() + c * points;
    fy = fractions.data(), fx = fy + points, nonfinite = invalid.data();
    for (int c = 0; c < 4; ++c) weight[c] = fx + (c + 1) * points;
    lane_rows = lanes.data(), sums = lane_rows + 8 * rounded8(2 * g.K);
    top = sums + rounded8(2 * g.K), total = top + g.chunk;
    buffers = at::empty({4, points * g.d}, options);
    keys_t = buffers[0], soft_t = buffers[1], grad_t = buffers[2], grad_key_t = buffers[3];
    keys = keys_t.data_ptr<scalar_t>(), soft = soft_t.data_ptr<scalar_t>();
    grad = grad_t.data_ptr<scalar_t>(), grad_key = grad_key_t.data_ptr<scalar_t>();
  }
};

/**
 * For n pixels (rows[pp], cols[pp]) and one kernel point (ry, rx): Y = (i + ry) + dy (the integer
 * first, as la-sampling.ts's window.y.add(dy)), X likewise, y0 = floor(Y) held constant, and each
 * corner's flat index or −1 outside. Restrict parameters and no branches let it vectorise.
 */
template <typename scalar_t>
VICINITY_INLINE void locate_point(int64_t n, int32_t ry, int32_t rx, int32_t H, int32_t W,
                                  const int32_t* __restrict__ rows, const int32_t* __restrict__ cols,
                                  const scalar_t* __restrict__ dy, const scalar_t* __restrict__ dx,
                                  int32_t* __restrict__ c00, int32_t* __restrict__ c01, int32_t* __restrict__ c10,
                                  int32_t* __restrict__ c11, scalar_t* __restrict__ fy, scalar_t* __restrict__ fx,
                                  scalar_t* __restrict__ w00, scalar_t* __restrict__ w01, scalar_t* __restrict__ w10,
                                  scalar_t* __restrict__ w11, int32_t* __restrict__ bad) {
  // Positions beyond a pixel outside the map are clamped to it: every corner stays outside, and the
  // integer casts and flat indices stay exact and small.
  const scalar_t low = -2, high_y = scalar_t(H + 1), high_x = scalar_t(W + 1);
  for (int64_t pp = 0; pp < n; ++pp) {
    const scalar_t Y = scalar_t(rows[pp] + ry) + dy[pp];
    const scalar_t X = scalar_t(cols[pp] + rx) + dx[pp];
    const bool finite = (Y - Y == 0) & (X - X == 0);  // false for NaN and ±inf
    bad[pp] = finite ? 0 : 1;
    const scalar_t Yn = finite ? (Y < low ? low : Y > high_y ? high_y : Y) : low;
    const scalar_t Xn = finite ? (X < low ? low : X > high_x ? high_x : X) : low;
    const int32_t ty = static_cast<int32_t>(Yn), tx = static_cast<int32_t>(Xn);  // truncation
    const int32_t y0 = ty - int32_t(Yn < scalar_t(ty)), x0 = tx - int32_t(Xn < scalar_t(tx));  // floor
    const scalar_t ffy = Yn - scalar_t(y0), ffx = Xn - scalar_t(x0);
    fy[pp] = ffy;
    fx[pp] = ffx;
    const scalar_t wy0 = -ffy + scalar_t(1), wx0 = -ffx + scalar_t(1);  // la-sampling.ts: fy.neg().add(1)
    w00[pp] = wy0 * wx0;
    w01[pp] = wy0 * ffx;
    w10[pp] = ffy * wx0;
    w11[pp] = ffy * ffx;
    const bool top = (y0 >= 0) & (y0 < H), bottom = (y0 + 1 >= 0) & (y0 + 1 < H);
    const bool left = (x0 >= 0) & (x0 < W), right = (x0 + 1 >= 0) & (x0 + 1 < W);
    const int32_t at = y0 * W + x0;
    const int32_t outside = H * W;  // the zero row
    c00[pp] = top & left ? at : outside;
    c01[pp] = top & right ? at + 1 : outside;
    c10[pp] = bottom & left ? at + W : outside;
    c11[pp] = bottom & right ? at + W + 1 : outside;
  }
}

/** The corners of every point of pixels p0 … p0+n−1, at t = r·n + pp in the scratch's arrays. */
template <typename scalar_t>
VICINITY_INLINE void locate_chunk(const Geometry& g, const HeadSlices<scalar_t>& h, Scratch<scalar_t>& s, int64_t p0,
                                  int64_t n) {
  const int32_t half = static_cast<int32_t>(g.k / 2), H = static_cast<int32_t>(g.H), W = static_cast<int32_t>(g.W);
  for (int32_t ky = 0, r = 0; ky < g.k; ++ky) {
    for (int32_t kx = 0; kx < g.k; ++kx, ++r) {
      const scalar_t* dy = h.off + 2 * r * g.P + p0;
      const int64_t t = r * n;
      locate_point(n, ky - half, kx - half, H, W, s.row_of + p0, s.col_of + p0, dy, dy + g.P, s.corner[0] + t,
                   s.corner[1] + t, s.corner[2] + t, s.corner[3] + t, s.fy + t, s.fx + t, s.weight[0] + t,
                   s.weight[1] + t, s.weight[2] + t, s.weight[3] + t, s.nonfinite + t);
    }
  }
}

/**
 * Keys of every point of pixels p0 … p0+n−1 into rows pp·K + r: key[c] = Σ_corners map[corner][c]
 * · wy·wx over the channels-last key map, in la-sampling.ts's order and roundings (wy = (−fy) + 1
 * or fy; a corner outside reads the zero row; a non-finite position gives NaN, as the composite).
 */
template <int D, typename scalar_t>
VICINITY_INLINE void sample_chunk(const Geometry& g, const HeadSlices<scalar_t>& h, Scratch<scalar_t>& s, int64_t p0,
                                  int64_t n) {
  const int64_t d = channels<D>(g);
  locate_chunk(g, h, s, p0, n);
  for (int64_t pp = 0; pp < n; ++pp) {
    for (int64_t r = 0; r < g.K; ++r) {
      const int64_t t = r * n + pp;
      scalar_t* __restrict__ key = s.keys + (pp * g.K + r) * d;
      if (s.nonfinite[t]) {
        for (int64_t c = 0; c < d; ++c) key[c] = kNaN<scalar_t>;
        continue;
      }
      const scalar_t* __restrict__ m[4];
      for (int c = 0; c < 4; ++c) m[c] = s.kt + s.corner[c][t] * d;
      const scalar_t w00 = s.weight[0][t], w01 = s.weight[1][t], w10 = s.weight[2][t], w11 = s.weight[3][t];
      int64_t c = 0;
      for (; c + 8 <= d; c += 8) {
        store8(key + c, ((load8(m[0] + c) * w00 + load8(m[1] + c) * w01) + load8(m[2] + c) * w10) + load8(m[3] + c) * w11);
      }
      for (; c < d; ++c) key[c] = ((m[0][c] * w00 + m[1][c] * w01) + m[2][c] * w10) + m[3][c] * w11;
    }
  }
}

/**
 * Adds gkey·weight to the channels-last key-map gradient at each corner of point t (a corner
 * outside adds to the absorbing row P and contributes a zero slope, as it reads the zero row) and
 * writes the coordinate gradients ∂L/∂Y, ∂L/∂X (floor() held constant; NaN if non-finite).
 */
template <typename scalar_t>
VICINITY_INLINE void scatter_key_gradient(const Scratch<scalar_t>& s, int64_t t, int64_t d, const scalar_t* gkey,
                                          scalar_t* gy, scalar_t* gx) {
  scalar_t sy = s.nonfinite[t] ? kNaN<scalar_t> : scalar_t(0), sx = sy;
  const scalar_t wy[2] = {-s.fy[t] + scalar_t(1), s.fy[t]}, wx[2] = {-s.fx[t] + scalar_t(1), s.fx[t]};
  for (int c = 0; c < 4; ++c) {
    const int32_t at = s.corner[c][t];
    const scalar_t slope = dot_axpy(d, gkey, s.kt + at * d, s.weight[c][t], s.gkt + at * d);
    sy += (c < 2 ? -wx[c % 2] : wx[c % 2]) * slope;     // ∂(wy·wx)/∂Y
    sx += (c % 2 == 0 ? -wy[c / 2] : wy[c / 2]) * slope;
  }
  *gy = sy;
  *gx = sx;
}

/**
 * scatter_key_gradient for a compiled width D (kLaneDots): the corner products go to gkt as there,
 * and ∂L/∂Y, ∂L/∂X leave as two rows of 8 lane partial sums (gkey·Σ_corners ∂(wy·wx)/∂Y·key),
 * which the caller sums eight rows at a time.
 */
template <int D, typename scalar_t>
VICINITY_INLINE void scatter_key_gradient_lanes(const Scratch<scalar_t>& s, int64_t t, const scalar_t* gkey,
                                                scalar_t* lanes_y, scalar_t* lanes_x) {
  const scalar_t wy[2] = {-s.fy[t] + scalar_t(1), s.fy[t]}, wx[2] = {-s.fx[t] + scalar_t(1), s.fx[t]};
  Vec8<scalar_t> ay = {}, ax = {};
  for (int c = 0; c < 4; ++c) {
    const int32_t at = s.corner[c][t];
    const scalar_t weight = s.weight[c][t];
    const scalar_t dy = c < 2 ? -wx[c % 2] : wx[c % 2], dx = c % 2 == 0 ? -wy[c / 2] : wy[c / 2];
    const scalar_t* __restrict__ key = s.kt + at * D;
    scalar_t* __restrict__ gk = s.gkt + at * D;
    for (int ch = 0; ch < D; ch += 8) {
      const Vec8<scalar_t> g = load8(gkey + ch), slope = g * load8(key + ch);
      store8(gk + ch, load8(gk + ch) + g * weight);
      ay += slope * dy;
      ax += slope * dx;
    }
  }
  store8(lanes_y, ay);
  store8(lanes_x, ax);
}

/** out[0:n] = softplus(in[0:n]) by ATen's vectorised CPU kernel (the composite's aten.softplus). */
void softplus_into(const at::Tensor& in, at::Tensor& out, int64_t n) {
  at::Tensor head = out.narrow(0, 0, n);
  at::cpu::softplus_out(head, in.narrow(0, 0, n), 1, kSoftplusThreshold);
}

/** out[0:n] = grad · softplus'(in) by ATen's kernel (z/(z+1), z = exp(in); 1 above the threshold). */
void softplus_backward_into(const at::Tensor& grad, const at::Tensor& in, at::Tensor& out, int64_t n) {
  at::Tensor head = out.narrow(0, 0, n);
  at::cpu::softplus_backward_out(head, grad.narrow(0, 0, n), in.narrow(0, 0, n), 1, kSoftplusThreshold);
}

/**
 * Pixel p's K scores into the weights map (h.weights[r·P + p]) from its K rows of keys (softmax:
 * q·key/√d, the logits softmax_columns then normalises) or softplus(keys) (normalized: the final
 * weights Σ sp·q / (Σ sp + eps)).
 */
template <int D, typename scalar_t>
VICINITY_INLINE void score_pixel(const Geometry& g, const HeadSlices<scalar_t>& h, Scratch<scalar_t>& s, int64_t p,
                                 const scalar_t* rows) {
  const int64_t d = channels<D>(g), K = g.K, P = g.P;
  const scalar_t scale = static_cast<scalar_t>(std::sqrt(static_cast<double>(d)));
  for (int64_t c = 0; c < d; ++c) s.qv[c] = h.q[c * P + p];
  if constexpr (kLaneDots<D>) {
    for (int64_t r = 0; r < K; ++r) dot_lanes<D>(s.qv, rows + r * d, s.lane_rows + 8 * r);
    sum_rows8(K, s.lane_rows, s.sums);
  } else {
    for (int64_t r = 0; r < K; ++r) s.sums[r] = dot(d, s.qv, rows + r * d);
  }
  for (int64_t r = 0; r < K; ++r) {
    h.weights[r * P + p] = g.softmax ? s.sums[r] / scale                                      // Eq. (6): q·key/√d
                                     : s.sums[r] / (total(d, rows + r * d) + static_cast<scalar_t>(g.eps));
  }
}

/**
 * softmax over r of x[r·stride + pp] (K rows) for each of n pixels pp, in place: the pixels are
 * the vector lanes (the loops over pp vectorise, softmax_exp included); each pixel's max and sum
 * run over r in order, as a per-pixel loop would. top and sum are n-element scratch.
 */
template <typename scalar_t>
VICINITY_INLINE void softmax_columns(int64_t K, int64_t n, int64_t stride, scalar_t* __restrict__ x,
                                     scalar_t* __restrict__ top, scalar_t* __restrict__ sum) {
  for (int64_t pp = 0; pp < n; ++pp) top[pp] = x[pp], sum[pp] = 0;
  for (int64_t r = 1; r < K; ++r) {
    const scalar_t* __restrict__ row = x + r * stride;
    for (int64_t pp = 0; pp < n; ++pp) top[pp] = row[pp] > top[pp] ? row[pp] : top[pp];
  }
  for (int64_t r = 0; r < K; ++r) {
    scalar_t* __restrict__ row = x + r * stride;
    for (int64_t pp = 0; pp < n; ++pp) sum[pp] += (row[pp] = softmax_exp(row[pp] - top[pp]));
  }
  for (int64_t r = 0; r < K; ++r) {
    scalar_t* __restrict__ row = x + r * stride;
    for (int64_t pp = 0; pp < n; ++pp) row[pp] /= sum[pp];
  }
}

/** Pixel p's output y = Σ_r w_r v_r from its weights in h.weights. */
template <int D, typename scalar_t>
VICINITY_INLINE void output_pixel(const Geometry& g, const HeadSlices<scalar_t>& h, Scratch<scalar_t>& s, int64_t p) {
  const int64_t d = channels<D>(g), K = g.K, P = g.P, i = p / g.W, j = p % g.W;
  for (int64_t ky = 0, r = 0; ky < g.k; ++ky) {
    for (int64_t kx = 0; kx < g.k; ++kx, ++r) {
      s.w[r] = h.weights[r * P + p];
      const int64_t at = window_index(g, i, j, ky, kx);
      s.rows[r] = s.vt + at * d;                                // the zero row outside, as F.unfold pads
    }
  }
  weighted_sum(d, K, s.rows, s.w, s.acc);                     // y = Σ_r w_r v_r
  for (int64_t c = 0; c < d; ++c) h.y[c * P + p] = s.acc[c];
}

template <int D, typename scalar_t>
VICINITY_CLONES void forward_head(const Geometry& g, const HeadSlices<scalar_t>& h, Scratch<scalar_t>& s) {
  const int64_t d = channels<D>(g);
  to_channels_last(h.key, d, g.P, s.kt);
  to_channels_last(h.value, d, g.P, s.vt);
  for (int64_t p0 = 0; p0 < g.P; p0 += g.chunk) {
    const int64_t n = g.P - p0 < g.chunk ? g.P - p0 : g.chunk;
    sample_chunk<D>(g, h, s, p0, n);
    if (!g.softmax) softplus_into(s.keys_t, s.soft_t, n * g.K * d);
    const scalar_t* rows = g.softmax ? s.keys : s.soft;
    for (int64_t pp = 0; pp < n; ++pp) score_pixel<D>(g, h, s, p0 + pp, rows + pp * g.K * d);
    if (g.softmax) softmax_columns(g.K, n, g.P, h.weights + p0, s.top, s.total);
    for (int64_t pp = 0; pp < n; ++pp) output_pixel<D>(g, h, s, p0 + pp);
  }
}

/** ∂L/∂w_r = ∂L/∂y · v_r and ∂L/∂v_r += w_r ∂L/∂y (into gvt) for pixel p; returns Σ_r w_r ∂L/∂w_r. */
template <int D, typename scalar_t>
VICINITY_INLINE scalar_t value_backward(const Geometry& g, const HeadSlices<scalar_t>& h, Scratch<scalar_t>& s,
                                        int64_t p) {
  const int64_t d = channels<D>(g), P = g.P, i = p / g.W, j = p % g.W;
  for (int64_t ky = 0, r = 0; ky < g.k; ++ky) {
    for (int64_t kx = 0; kx < g.k; ++kx, ++r) {
      const scalar_t w = h.weights[r * P + p];
      const int64_t at = window_index(g, i, j, ky, kx);
      if constexpr (kLaneDots<D>) {  // outside: the zero row's dot, an axpy into the absorbing row
        dot_axpy_lanes<D>(s.gyv, s.vt + at * D, w, s.gvt + at * D, s.lane_rows + 8 * r);
      } else {
        s.gw[r] = dot_axpy(d, s.gyv, s.vt + at * d, w, s.gvt + at * d);
      }
    }
  }
  if constexpr (kLaneDots<D>) {
    sum_rows8(g.K, s.lane_rows, s.sums);
    for (int64_t r = 0; r < g.K; ++r) s.gw[r] = s.sums[r];
  }
  scalar_t weighted = 0;
  for (int64_t r = 0; r < g.K; ++r) weighted += h.weights[r * P + p] * s.gw[r];
  return weighted;
}

/**
 * Pixel p's backward up to the keys: ∂L/∂value (into gvt), ∂L/∂q, and per point the key gradient
 * row in s.grad — final for 'softmax' (gl·q/√d), before the softplus slope for 'normalized'
 * (∂L/∂w·(q − w)/den, then softplus_backward_into). gl = ∂L/∂(q·key) = a(∂L/∂a − Σ a ∂L/∂a)/√d.
 */
template <int D, typename scalar_t>
VICINITY_INLINE void pixel_backward(const Geometry& g, const HeadSlices<scalar_t>& h, Scratch<scalar_t>& s, int64_t p,
                                    int64_t row0) {
  const int64_t d = channels<D>(g), K = g.K, P = g.P;
  const scalar_t scale = static_cast<scalar_t>(std::sqrt(static_cast<double>(d)));
  for (int64_t c = 0; c < d; ++c) {
    s.qv[c] = h.q[c * P + p];
    s.gyv[c] = h.grad_y[c * P + p];
  }
  const scalar_t weighted = value_backward<D>(g, h, s, p);
  const scalar_t* rows = (g.softmax ? s.keys : s.soft) + row0 * d;  // keys, or softplus(keys)
  for (int64_t r = 0; r < K; ++r) {
    const scalar_t w = h.weights[r * P + p];
    const scalar_t* row = rows + r * d;
    scalar_t* out = s.grad + (row0 + r) * d;
    const scalar_t factor = g.softmax ? w * (s.gw[r] - weighted) / scale
                                      : s.gw[r] / (total(d, row) + static_cast<scalar_t>(g.eps));
    const scalar_t shift = g.softmax ? scalar_t(0) : w;
    int64_t c = 0;
    for (; c + 8 <= d; c += 8) store8(out + c, (load8(s.qv + c) - shift) * factor);
    for (; c < d; ++c) out[c] = factor * (s.qv[c] - shift);
    s.factor[r] = factor;
    s.rows[r] = row;
  }
  weighted_sum(d, K, s.rows, s.factor, s.acc);                // ∂(q·key)/∂q, ∂(Σ sp·q/den)/∂q
  for (int64_t c = 0; c < d; ++c) h.grad_q[c * P + p] = s.acc[c];
}

template <int D, typename scalar_t>
VICINITY_CLONES void backward_head(const Geometry& g, const HeadSlices<scalar_t>& h, Scratch<scalar_t>& s) {
  const int64_t d = channels<D>(g), K = g.K, P = g.P;
  to_channels_last(h.key, d, P, s.kt);
  to_channels_last(h.value, d, P, s.vt);
  zero_fill(s.gkt, 2 * (P + 1) * d);                          // gkt and gvt
  for (int64_t p0 = 0; p0 < P; p0 += g.chunk) {
    const int64_t n = P - p0 < g.chunk ? P - p0 : g.chunk;
    sample_chunk<D>(g, h, s, p0, n);
    if (!g.softmax) softplus_into(s.keys_t, s.soft_t, n * K * d);
    for (int64_t pp = 0; pp < n; ++pp) pixel_backward<D>(g, h, s, p0 + pp, pp * K);
    if (!g.softmax) softplus_backward_into(s.grad_t, s.keys_t, s.grad_key_t, n * K * d);
    const scalar_t* gkey = g.softmax ? s.grad : s.grad_key;
    for (int64_t pp = 0; pp < n; ++pp) {
      if constexpr (kLaneDots<D>) {
        for (int64_t r = 0; r < K; ++r) {
          scatter_key_gradient_lanes<D>(s, r * n + pp, gkey + (pp * K + r) * D, s.lane_rows + 16 * r,
                                        s.lane_rows + 16 * r + 8);
        }
        sum_rows8(2 * K, s.lane_rows, s.sums);
        for (int64_t r = 0; r < K; ++r) {
          scalar_t* goff = h.grad_off + 2 * r * P + p0 + pp;    // Y = i + ry + dy: ∂Y/∂dy = 1
          const bool bad = s.nonfinite[r * n + pp] != 0;
          goff[0] = bad ? kNaN<scalar_t> : s.sums[2 * r];
          goff[P] = bad ? kNaN<scalar_t> : s.sums[2 * r + 1];
        }
      } else {
        for (int64_t r = 0; r < K; ++r) {
          scalar_t* goff = h.grad_off + 2 * r * P + p0 + pp;    // Y = i + ry + dy: ∂Y/∂dy = 1
          scatter_key_gradient(s, r * n + pp, d, gkey + (pp * K + r) * d, goff, goff + P);
        }
      }
    }
  }
  to_channels_first(s.gkt, d, P, h.grad_key);
  to_channels_first(s.gvt, d, P, h.grad_value);
}

#if defined(__GNUC__)
#pragma GCC diagnostic pop
#endif
VICINITY_KERNEL_OPTIONS_END
#undef VICINITY_INLINE
#undef VICINITY_CLONES

}  // namespace
}  // namespace vicinity
