// LA-layer sample → aggregate (la-layer.md, Computation steps 4–5; LA paper §3.1 Eq. 6–8 as read
// there), fused on CPU with a hand-written backward, as `vicinity::la_attention`:
//   q (B, m, d, P), key map and value map (B, m, d, H, W) with P = H·W (the output grid),
//   offsets Δp' (B, m, K, 2, P) (t = 0 dy, 1 dx; K = k² points in raster order, ky outer)
//   → y (B, m, d, P).
// Per batch b, head n, pixel p = (i, j) and kernel point r = (ry, rx) (each in −⌊k/2⌋ … ⌊k/2⌋):
//   key_r   = bilinear(key map, i + ry + dy, j + rx + dx): floor() held constant (one-sided
//             coordinate gradient at integers), each of the 4 corners outside the map reads 0
//             (la-sampling.ts `sampleBilinear`: same corner order, weights and products);
//   value_r = value map at (i + ry, j + rx), 0 outside (la-sampling.ts `windowValues`);
//   'normalized': w_r = Σ_c softplus(key_rc)·q_c / (Σ_c softplus(key_rc) + eps);
//   'softmax':    w   = softmax_r(q·key_r / √d) over the K points, no masking;
//   y_c = Σ_r w_r · value_rc.
// Why fused: the composite path materialises the sampled keys and the window values (B, m, d, K, P)
// several times over (four corner gathers, their weights, softplus, einsum operands) and autograd
// keeps them all; here forward keeps only the weights w (B, m, K, P), so memory is O(B·C·P +
// B·m·K·P) instead of O(B·C·K·P), and backward recomputes the keys from the saved maps.
// How: each (b, n) is one task of at::parallel_for and owns every gradient element it writes (its
// head's slices of q, key, value and offsets), so there are no atomics and the result does not
// depend on the thread count. A task transposes its key and value maps to channels-last (H·W, d),
// so a bilinear corner is one contiguous d-vector, and walks the pixels in chunks: the corners of
// a chunk's points are computed branch-free as structure-of-arrays (vectorised), its sampled keys
// (chunk·K, d) stay in cache, and softplus and its backward run over the whole chunk through
// ATen's own vectorised CPU kernels (at::cpu::softplus_out, softplus_backward_out), which makes
// them bit-for-bit the composite path's (glibc's scalar log1pf alone took a third of the time).
// Measured (docs/benchmarks.md, "LA-layer fused kernel"): forward + backward of a 128×32×28×28
// LA-layer take 4.2× (normalized) and 7.5× (softmax) less CPU time than the composite path.
// Deviations: CPU only (LALayer keeps the composite path elsewhere); no double backward (the
// backward is not itself differentiable; training never needs it); a NaN or infinite sampling
// position gives a NaN key and NaN offset gradients (the composite also spreads NaN into the
// key-map gradient at the clamped corners).
#include <ATen/ATen.h>
#include <ATen/Dispatch.h>
#include <ATen/Parallel.h>
#include <ATen/ops/softplus_backward_cpu_dispatch.h>
#include <ATen/ops/softplus_cpu_dispatch.h>
#include <torch/csrc/autograd/custom_function.h>
#include <torch/library.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <string>
#include <vector>

namespace vicinity {
namespace {

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

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

// The loops below vectorise only at -O3 (binding.gyp builds -O2) with -fno-trapping-math (which
// lets GCC turn the branches of locate_point into selects; it changes no value, only which
// floating-point exception flags could be raised, and nothing reads them), and with AVX2 only in
// the clones of forward_head/backward_head that GCC's target_clones picks by the CPU at load time
// (the default clone runs on any x86-64). The helpers are always inlined so the clones carry them.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC push_options
#pragma GCC optimize("O3", "no-trapping-math")
#define VICINITY_INLINE inline __attribute__((always_inline))
#else
#define VICINITY_INLINE inline
#endif
#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__)
#define VICINITY_CLONES __attribute__((target_clones("avx2", "default")))
#else
#define VICINITY_CLONES
#endif

/** lane[0] + … + lane[7] as a tree (3 dependent adds instead of 8). */
template <typename T>
VICINITY_INLINE T reduce8(T* lane) {
  for (int l = 0; l < 4; ++l) lane[l] += lane[l + 4];
  return (lane[0] + lane[2]) + (lane[1] + lane[3]);
}

/** Σ_c x_c·y_c in 8 interleaved partial sums, which vectorise without -ffast-math. */
template <typename T>
VICINITY_INLINE T dot(int64_t d, const T* __restrict__ x, const T* __restrict__ y) {
  T lane[8] = {0, 0, 0, 0, 0, 0, 0, 0};
  int64_t c = 0;
  for (; c + 8 <= d; c += 8) {
    for (int l = 0; l < 8; ++l) lane[l] += x[c + l] * y[c + l];
  }
  T sum = 0;
  for (; c < d; ++c) sum += x[c] * y[c];
  return sum + reduce8(lane);
}

/** Σ_c x_c, as dot. */
template <typename T>
VICINITY_INLINE T total(int64_t d, const T* __restrict__ x) {
  T lane[8] = {0, 0, 0, 0, 0, 0, 0, 0};
  int64_t c = 0;
  for (; c + 8 <= d; c += 8) {
    for (int l = 0; l < 8; ++l) lane[l] += x[c + l];
  }
  T sum = 0;
  for (; c < d; ++c) sum += x[c];
  return sum + reduce8(lane);
}

/**
 * out[c] = Σ_r rows[r][c] · a[r] over K rows, r in order, each block of 8 channels summed in
 * registers (an axpy per row would store and reload `out` K times, one chain through memory).
 */
template <typename T>
VICINITY_INLINE void weighted_sum(int64_t d, int64_t K, const T* const* rows, const T* a, T* __restrict__ out) {
  int64_t c0 = 0;
  for (; c0 + 8 <= d; c0 += 8) {
    T lane[8] = {0, 0, 0, 0, 0, 0, 0, 0};
    for (int64_t r = 0; r < K; ++r) {
      const T* __restrict__ row = rows[r] + c0;
      for (int l = 0; l < 8; ++l) lane[l] += row[l] * a[r];
    }
    for (int l = 0; l < 8; ++l) out[c0 + l] = lane[l];
  }
  for (int64_t c = c0; c < d; ++c) {
    T sum = 0;
    for (int64_t r = 0; r < K; ++r) sum += rows[r][c] * a[r];
    out[c] = sum;
  }
}

/** Σ_c x_c·y_c (as dot) and, in the same pass, out += x·a. */
template <typename T>
VICINITY_INLINE T dot_axpy(int64_t d, const T* __restrict__ x, const T* __restrict__ y, T a, T* __restrict__ out) {
  T lane[8] = {0, 0, 0, 0, 0, 0, 0, 0};
  int64_t c = 0;
  for (; c + 8 <= d; c += 8) {
    for (int l = 0; l < 8; ++l) {
      lane[l] += x[c + l] * y[c + l];
      out[c + l] += x[c + l] * a;
    }
  }
  T sum = 0;
  for (; c < d; ++c) {
    sum += x[c] * y[c];
    out[c] += x[c] * a;
  }
  return sum + reduce8(lane);
}

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

/** Flat index of (i + ry, j + rx), kernel point (ky, kx), or −1 outside the map (value reads 0). */
VICINITY_INLINE int64_t window_index(const Geometry& g, int64_t i, int64_t j, int64_t ky, int64_t kx) {
  const int64_t y = i + ky - g.k / 2, x = j + kx - g.k / 2;
  return (y >= 0 && y < g.H && x >= 0 && x < g.W) ? y * g.W + x : -1;
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

/**
 * A thread's working memory, reused by every head it runs. A chunk's sampling positions are kept
 * as structure-of-arrays over t = r·n + pp (point r of pixel p0 + pp), so locate_chunk vectorises;
 * its keys are rows pp·K + r of d values, so a pixel's K keys are contiguous.
 */
template <typename scalar_t>
struct Scratch {
  std::vector<scalar_t> maps, small, fractions;
  std::vector<int32_t> pixels, indices, invalid;
  std::vector<const scalar_t*> pointers;
  scalar_t *kt, *vt, *gkt, *gvt;    // channels-last maps and their gradients (P, d)
  scalar_t *qv, *gyv, *acc, *zeros; // one pixel's q, ∂L/∂y, an accumulator; a zero row (d)
  scalar_t *w, *gw, *factor;        // one pixel's w, ∂L/∂w and key-gradient factors (K)
  const scalar_t** rows;            // one pixel's K value (or key) rows
  int32_t *row_of, *col_of;         // (P): i and j of pixel p
  int32_t* corner[4];               // (chunk·K): flat index of (y0, x0), (y0, x0+1), (y0+1, x0), (y0+1, x0+1); −1 outside
  scalar_t *fy, *fx;                // (chunk·K): Y − floor(Y), X − floor(X)
  int32_t* nonfinite;               // (chunk·K): 1 for a NaN or infinite position
  at::Tensor buffers;               // keys, softplus(keys), ∂L/∂softplus, ∂L/∂key: 4 × (chunk·K·d)
  at::Tensor keys_t, soft_t, grad_t, grad_key_t;
  scalar_t *keys, *soft, *grad, *grad_key;

  Scratch(const Geometry& g, const at::TensorOptions& options)
      : maps(4 * g.P * g.d), small(4 * g.d + 3 * g.K, 0), fractions(2 * g.chunk * g.K), pixels(2 * g.P),
        indices(4 * g.chunk * g.K), invalid(g.chunk * g.K),
        pointers(g.K) {
    const int64_t pd = g.P * g.d, points = g.chunk * g.K;
    kt = maps.data(), vt = kt + pd, gkt = vt + pd, gvt = gkt + pd;
    qv = small.data(), gyv = qv + g.d, acc = gyv + g.d, zeros = acc + g.d, w = zeros + g.d, gw = w + g.K, factor = gw + g.K;
    rows = pointers.data();
    row_of = pixels.data(), col_of = row_of + g.P;
    for (int64_t p = 0; p < g.P; ++p) row_of[p] = static_cast<int32_t>(p / g.W), col_of[p] = static_cast<int32_t>(p % g.W);
    for (int c = 0; c < 4; ++c) corner[c] = indices.data() + c * points;
    fy = fractions.data(), fx = fy + points, nonfinite = invalid.data();
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
                                  int32_t* __restrict__ bad) {
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
    fy[pp] = Yn - scalar_t(y0);
    fx[pp] = Xn - scalar_t(x0);
    const bool top = (y0 >= 0) & (y0 < H), bottom = (y0 + 1 >= 0) & (y0 + 1 < H);
    const bool left = (x0 >= 0) & (x0 < W), right = (x0 + 1 >= 0) & (x0 + 1 < W);
    const int32_t at = y0 * W + x0;
    c00[pp] = top & left ? at : -1;
    c01[pp] = top & right ? at + 1 : -1;
    c10[pp] = bottom & left ? at + W : -1;
    c11[pp] = bottom & right ? at + W + 1 : -1;
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
                   s.corner[1] + t, s.corner[2] + t, s.corner[3] + t, s.fy + t, s.fx + t, s.nonfinite + t);
    }
  }
}

/**
 * Keys of every point of pixels p0 … p0+n−1 into rows pp·K + r: key[c] = Σ_corners map[corner][c]
 * · wy·wx over the channels-last key map, in la-sampling.ts's order and roundings (wy = (−fy) + 1
 * or fy; a corner outside reads the zero row; a non-finite position gives NaN, as the composite).
 */
template <typename scalar_t>
VICINITY_INLINE void sample_chunk(const Geometry& g, const HeadSlices<scalar_t>& h, Scratch<scalar_t>& s, int64_t p0,
                                  int64_t n) {
  const int64_t d = g.d;
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
      for (int c = 0; c < 4; ++c) m[c] = s.corner[c][t] >= 0 ? s.kt + s.corner[c][t] * d : s.zeros;
      const scalar_t wy0 = -s.fy[t] + scalar_t(1), wy1 = s.fy[t], wx0 = -s.fx[t] + scalar_t(1), wx1 = s.fx[t];
      const scalar_t w00 = wy0 * wx0, w01 = wy0 * wx1, w10 = wy1 * wx0, w11 = wy1 * wx1;
      for (int64_t c = 0; c < d; ++c) key[c] = ((m[0][c] * w00 + m[1][c] * w01) + m[2][c] * w10) + m[3][c] * w11;
    }
  }
}

/**
 * Adds gkey·weight to the channels-last key-map gradient at each corner of point t inside the map
 * and writes the coordinate gradients ∂L/∂Y, ∂L/∂X (floor() held constant; NaN if non-finite).
 */
template <typename scalar_t>
VICINITY_INLINE void scatter_key_gradient(const Scratch<scalar_t>& s, int64_t t, int64_t d, const scalar_t* gkey,
                                          scalar_t* gy, scalar_t* gx) {
  scalar_t sy = s.nonfinite[t] ? kNaN<scalar_t> : scalar_t(0), sx = sy;
  const scalar_t wy[2] = {-s.fy[t] + scalar_t(1), s.fy[t]}, wx[2] = {-s.fx[t] + scalar_t(1), s.fx[t]};
  for (int c = 0; c < 4; ++c) {
    const int32_t at = s.corner[c][t];
    if (at < 0) continue;
    const scalar_t slope = dot_axpy(d, gkey, s.kt + at * d, wy[c / 2] * wx[c % 2], s.gkt + at * d);
    sy += (c < 2 ? -wx[c % 2] : wx[c % 2]) * slope;     // ∂(wy·wx)/∂Y
    sx += (c % 2 == 0 ? -wy[c / 2] : wy[c / 2]) * slope;
  }
  *gy = sy;
  *gx = sx;
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

/** Weights and output of pixel p from its K rows of keys (softmax) or softplus(keys) (normalized). */
template <typename scalar_t>
VICINITY_INLINE void aggregate_pixel(const Geometry& g, const HeadSlices<scalar_t>& h, Scratch<scalar_t>& s,
                                     int64_t p, const scalar_t* rows) {
  const int64_t d = g.d, K = g.K, P = g.P, i = p / g.W, j = p % g.W;
  const scalar_t scale = static_cast<scalar_t>(std::sqrt(static_cast<double>(d)));
  for (int64_t c = 0; c < d; ++c) s.qv[c] = h.q[c * P + p];
  for (int64_t r = 0; r < K; ++r) {
    const scalar_t* row = rows + r * d;
    s.w[r] = g.softmax ? dot(d, s.qv, row) / scale                                   // Eq. (6): q·key/√d
                       : dot(d, s.qv, row) / (total(d, row) + static_cast<scalar_t>(g.eps));  // Σ sp·q / (Σ sp + eps)
  }
  if (g.softmax) {
    scalar_t top = s.w[0], sum = 0;
    for (int64_t r = 1; r < K; ++r) top = s.w[r] > top ? s.w[r] : top;
    for (int64_t r = 0; r < K; ++r) sum += (s.w[r] = std::exp(s.w[r] - top));
    for (int64_t r = 0; r < K; ++r) s.w[r] /= sum;
  }
  for (int64_t ky = 0, r = 0; ky < g.k; ++ky) {
    for (int64_t kx = 0; kx < g.k; ++kx, ++r) {
      h.weights[r * P + p] = s.w[r];
      const int64_t at = window_index(g, i, j, ky, kx);
      s.rows[r] = at >= 0 ? s.vt + at * d : s.zeros;           // zero outside, as F.unfold pads
    }
  }
  weighted_sum(d, K, s.rows, s.w, s.acc);                     // y = Σ_r w_r v_r
  for (int64_t c = 0; c < d; ++c) h.y[c * P + p] = s.acc[c];
}

template <typename scalar_t>
VICINITY_CLONES void forward_head(const Geometry& g, const HeadSlices<scalar_t>& h, Scratch<scalar_t>& s) {
  to_channels_last(h.key, g.d, g.P, s.kt);
  to_channels_last(h.value, g.d, g.P, s.vt);
  for (int64_t p0 = 0; p0 < g.P; p0 += g.chunk) {
    const int64_t n = g.P - p0 < g.chunk ? g.P - p0 : g.chunk;
    sample_chunk(g, h, s, p0, n);
    if (!g.softmax) softplus_into(s.keys_t, s.soft_t, n * g.K * g.d);
    const scalar_t* rows = g.softmax ? s.keys : s.soft;
    for (int64_t pp = 0; pp < n; ++pp) aggregate_pixel(g, h, s, p0 + pp, rows + pp * g.K * g.d);
  }
}

/** ∂L/∂w_r = ∂L/∂y · v_r and ∂L/∂v_r += w_r ∂L/∂y (into gvt) for pixel p; returns Σ_r w_r ∂L/∂w_r. */
template <typename scalar_t>
VICINITY_INLINE scalar_t value_backward(const Geometry& g, const HeadSlices<scalar_t>& h, Scratch<scalar_t>& s,
                                        int64_t p) {
  const int64_t d = g.d, P = g.P, i = p / g.W, j = p % g.W;
  scalar_t weighted = 0;
  for (int64_t ky = 0, r = 0; ky < g.k; ++ky) {
    for (int64_t kx = 0; kx < g.k; ++kx, ++r) {
      const scalar_t w = h.weights[r * P + p];
      const int64_t at = window_index(g, i, j, ky, kx);
      s.gw[r] = at >= 0 ? dot_axpy(d, s.gyv, s.vt + at * d, w, s.gvt + at * d) : scalar_t(0);
      weighted += w * s.gw[r];
    }
  }
  return weighted;
}

/**
 * Pixel p's backward up to the keys: ∂L/∂value (into gvt), ∂L/∂q, and per point the key gradient
 * row in s.grad — final for 'softmax' (gl·q/√d), before the softplus slope for 'normalized'
 * (∂L/∂w·(q − w)/den, then softplus_backward_into). gl = ∂L/∂(q·key) = a(∂L/∂a − Σ a ∂L/∂a)/√d.
 */
template <typename scalar_t>
VICINITY_INLINE void pixel_backward(const Geometry& g, const HeadSlices<scalar_t>& h, Scratch<scalar_t>& s, int64_t p,
                                    int64_t row0) {
  const int64_t d = g.d, K = g.K, P = g.P;
  const scalar_t scale = static_cast<scalar_t>(std::sqrt(static_cast<double>(d)));
  for (int64_t c = 0; c < d; ++c) {
    s.qv[c] = h.q[c * P + p];
    s.gyv[c] = h.grad_y[c * P + p];
  }
  const scalar_t weighted = value_backward(g, h, s, p);
  const scalar_t* rows = (g.softmax ? s.keys : s.soft) + row0 * d;  // keys, or softplus(keys)
  for (int64_t r = 0; r < K; ++r) {
    const scalar_t w = h.weights[r * P + p];
    const scalar_t* row = rows + r * d;
    scalar_t* out = s.grad + (row0 + r) * d;
    const scalar_t factor = g.softmax ? w * (s.gw[r] - weighted) / scale
                                      : s.gw[r] / (total(d, row) + static_cast<scalar_t>(g.eps));
    const scalar_t shift = g.softmax ? scalar_t(0) : w;
    for (int64_t c = 0; c < d; ++c) out[c] = factor * (s.qv[c] - shift);
    s.factor[r] = factor;
    s.rows[r] = row;
  }
  weighted_sum(d, K, s.rows, s.factor, s.acc);                // ∂(q·key)/∂q, ∂(Σ sp·q/den)/∂q
  for (int64_t c = 0; c < d; ++c) h.grad_q[c * P + p] = s.acc[c];
}

template <typename scalar_t>
VICINITY_CLONES void backward_head(const Geometry& g, const HeadSlices<scalar_t>& h, Scratch<scalar_t>& s) {
  const int64_t d = g.d, K = g.K, P = g.P;
  to_channels_last(h.key, d, P, s.kt);
  to_channels_last(h.value, d, P, s.vt);
  for (int64_t e = 0; e < 2 * P * d; ++e) s.gkt[e] = 0;      // gkt and gvt
  for (int64_t p0 = 0; p0 < P; p0 += g.chunk) {
    const int64_t n = P - p0 < g.chunk ? P - p0 : g.chunk;
    sample_chunk(g, h, s, p0, n);
    if (!g.softmax) softplus_into(s.keys_t, s.soft_t, n * K * d);
    for (int64_t pp = 0; pp < n; ++pp) pixel_backward(g, h, s, p0 + pp, pp * K);
    if (!g.softmax) softplus_backward_into(s.grad_t, s.keys_t, s.grad_key_t, n * K * d);
    const scalar_t* gkey = g.softmax ? s.grad : s.grad_key;
    for (int64_t pp = 0; pp < n; ++pp) {
      for (int64_t r = 0; r < K; ++r) {
        scalar_t* goff = h.grad_off + 2 * r * P + p0 + pp;      // Y = i + ry + dy: ∂Y/∂dy = 1
        scatter_key_gradient(s, r * n + pp, d, gkey + (pp * K + r) * d, goff, goff + P);
      }
    }
  }
  to_channels_first(s.gkt, d, P, h.grad_key);
  to_channels_first(s.gvt, d, P, h.grad_value);
}

#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC pop_options
#endif

/** Checks every shape, dtype and device; returns the geometry. The messages name the shapes. */
Geometry check_inputs(const at::Tensor& q, const at::Tensor& key, const at::Tensor& value, const at::Tensor& offsets,
                      int64_t kernel_size, bool softmax, double eps) {
  TORCH_CHECK(key.dim() == 5, "la_attention: key must be a map (B, m, d, H, W), got shape ", key.sizes());
  TORCH_CHECK(value.sizes() == key.sizes(), "la_attention: value has shape ", value.sizes(), " but key has shape ",
              key.sizes(), "; both are (B, m, d, H, W) maps on the output grid");
  const int64_t B = key.size(0), m = key.size(1), d = key.size(2), H = key.size(3), W = key.size(4);
  TORCH_CHECK(q.dim() == 4 && q.size(0) == B && q.size(1) == m && q.size(2) == d && q.size(3) == H * W,
              "la_attention: q has shape ", q.sizes(), " but must be (B, m, d, H·W) = [", B, ", ", m, ", ", d, ", ",
              H * W, "] for a key map of shape ", key.sizes());
  TORCH_CHECK(kernel_size >= 1 && kernel_size % 2 == 1, "la_attention: kernel_size must be odd and ≥ 1, got ",
              kernel_size);
  const int64_t K = kernel_size * kernel_size;
  const std::vector<int64_t> expected{B, m, K, 2, H * W};
  TORCH_CHECK(offsets.sizes() == at::IntArrayRef(expected), "la_attention: offsets have shape ", offsets.sizes(),
              " but must be (B, m, K = k², 2, P) = ", at::IntArrayRef(expected), " for key ", key.sizes(),
              " and kernel_size ", kernel_size, "; expand per-pixel offsets over heads and points first");
  TORCH_CHECK(at::isFloatingType(q.scalar_type()), "la_attention: q must be floating point, got ", q.scalar_type());
  for (const at::Tensor* t : {&key, &value, &offsets}) {
    TORCH_CHECK(t->scalar_type() == q.scalar_type(), "la_attention: every input must have q's dtype ",
                q.scalar_type(), ", got ", t->scalar_type(), "; convert them with .to()");
  }
  for (const at::Tensor* t : {&q, &key, &value, &offsets}) {
    TORCH_CHECK(t->device().is_cpu(), "la_attention: a CPU kernel, got a tensor on ", t->device(),
                "; use the composite path (LALayer's implementation 'composite') on other devices");
  }
  TORCH_CHECK(softmax || eps > 0, "la_attention: eps must be > 0 for 'normalized', got ", eps);
  TORCH_CHECK((H + 2) * (W + 2) < (int64_t(1) << 31), "la_attention: a ", H, "×", W,
              " map is too large for the kernel's 32-bit pixel indices");
  const int64_t chunk = std::max<int64_t>(1, std::min<int64_t>(H * W, kChunkElements / std::max<int64_t>(1, K * d)));
  return Geometry{B, m, d, H, W, H * W, kernel_size, K, softmax, eps, chunk};
}

/** Runs fn(head slices, scratch) for every (b, n) in parallel, one scratch per thread's range. */
template <typename scalar_t, typename Fn>
void for_each_head(const Geometry& g, const at::TensorOptions& options, const HeadSlices<scalar_t>& base, const Fn& fn) {
  const int64_t map = g.d * g.P, points = g.K * g.P;
  auto shift = [](auto* p, int64_t by) { return p == nullptr ? p : p + by; };
  at::parallel_for(0, g.B * g.m, 1, [&](int64_t begin, int64_t end) {
    Scratch<scalar_t> scratch(g, options);
    for (int64_t t = begin; t < end; ++t) {
      const HeadSlices<scalar_t> h{
          shift(base.q, t * map), shift(base.key, t * map), shift(base.value, t * map),
          shift(base.off, t * 2 * points), shift(base.weights, t * points), shift(base.y, t * map),
          shift(base.grad_y, t * map), shift(base.grad_q, t * map), shift(base.grad_key, t * map),
          shift(base.grad_value, t * map), shift(base.grad_off, t * 2 * points)};
      fn(h, scratch);
    }
  });
}

class LaAttention : public torch::autograd::Function<LaAttention> {
 public:
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& q, const at::Tensor& key, const at::Tensor& value,
                            const at::Tensor& offsets, int64_t kernel_size, bool softmax, double eps) {
    const Geometry g = check_inputs(q, key, value, offsets, kernel_size, softmax, eps);
    at::Tensor qc = q.contiguous(), kc = key.contiguous(), vc = value.contiguous(), oc = offsets.contiguous();
    at::Tensor y = at::empty({g.B, g.m, g.d, g.P}, q.options());
    at::Tensor weights = at::empty({g.B, g.m, g.K, g.P}, q.options());
    AT_DISPATCH_FLOATING_TYPES(q.scalar_type(), "la_attention_forward", [&] {
      const HeadSlices<scalar_t> base{qc.data_ptr<scalar_t>(), kc.data_ptr<scalar_t>(), vc.data_ptr<scalar_t>(),
                                      oc.data_ptr<scalar_t>(), weights.data_ptr<scalar_t>(), y.data_ptr<scalar_t>(),
                                      nullptr, nullptr, nullptr, nullptr, nullptr};
      for_each_head(g, q.options(), base,
                    [&](const HeadSlices<scalar_t>& h, Scratch<scalar_t>& s) { forward_head(g, h, s); });
    });
    ctx->save_for_backward({qc, kc, vc, oc, weights});
    ctx->saved_data["kernel_size"] = kernel_size;
    ctx->saved_data["softmax"] = softmax;
    ctx->saved_data["eps"] = eps;
    return y;
  }

  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    auto saved = ctx->get_saved_variables();
    const at::Tensor &q = saved[0], &key = saved[1], &value = saved[2], &offsets = saved[3], &weights = saved[4];
    const Geometry g = check_inputs(q, key, value, offsets, ctx->saved_data["kernel_size"].toInt(),
                                    ctx->saved_data["softmax"].toBool(), ctx->saved_data["eps"].toDouble());
    variable_list result(7);  // q, key, value, offsets; none for kernel_size, mode and eps
    if (!grads[0].defined()) return result;
    at::Tensor grad_y = grads[0].contiguous();
    at::Tensor grad_q = at::empty_like(q), grad_key = at::empty_like(key), grad_value = at::empty_like(value);
    at::Tensor grad_off = at::empty_like(offsets);
    AT_DISPATCH_FLOATING_TYPES(q.scalar_type(), "la_attention_backward", [&] {
      const HeadSlices<scalar_t> base{q.data_ptr<scalar_t>(), key.data_ptr<scalar_t>(), value.data_ptr<scalar_t>(),
                                      offsets.data_ptr<scalar_t>(), weights.data_ptr<scalar_t>(), nullptr,
                                      grad_y.data_ptr<scalar_t>(), grad_q.data_ptr<scalar_t>(),
                                      grad_key.data_ptr<scalar_t>(), grad_value.data_ptr<scalar_t>(),
                                      grad_off.data_ptr<scalar_t>()};
      for_each_head(g, q.options(), base,
                    [&](const HeadSlices<scalar_t>& h, Scratch<scalar_t>& s) { backward_head(g, h, s); });
    });
    result[0] = grad_q;
    result[1] = grad_key;
    result[2] = grad_value;
    result[3] = grad_off;
    return result;
  }
};

at::Tensor la_attention(const at::Tensor& q, const at::Tensor& key, const at::Tensor& value, const at::Tensor& offsets,
                        int64_t kernel_size, c10::string_view mode, double eps) {
  const bool softmax = mode == "softmax";
  TORCH_CHECK(softmax || mode == "normalized", "la_attention: mode must be 'normalized' or 'softmax', got '",
              std::string(mode), "'");
  return LaAttention::apply(q, key, value, offsets, kernel_size, softmax, eps);
}

}  // namespace
}  // namespace vicinity

// A fragment: the namespace's one TORCH_LIBRARY(vicinity) block is in la_normalized_weight.cc.
TORCH_LIBRARY_FRAGMENT(vicinity, m) {
  m.def("la_attention(Tensor q, Tensor key, Tensor value, Tensor offsets, int kernel_size, str mode, "
        "float eps=1e-06) -> Tensor",
        &vicinity::la_attention);
}
