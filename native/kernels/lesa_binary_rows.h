// The per-(batch, head) compute of `vicinity::lesa_binary` (lesa_binary.cc, whose header states
// the maths, conventions and deviations): geometry, per-thread scratch, the vectorised row
// helpers, and the forward and hand-written backward of one task over tiles of query rows, as
// BLAS GEMMs on aligned per-thread scratch (tile_gemm.h). Included by lesa_binary.cc only
// (internal linkage); split out to keep each file readable. The closed-form BatchNorm sums and
// corrections are in lesa_binary_stats.h.
//
// Layouts. q, k, v are channels-first (c, L); the relative tables are read at r[c, L − 1 − i + j]
// — r^k as given, r^q and r^v reversed along their last dim (r_rev[c, m] = r[c, 2L − 2 − m]), so
// that r^q[c, i − j + L − 1] = r^q_rev[c, L − 1 − i + j]. A tile of n query rows i0 … i0 + n − 1
// reads the table columns first … first + w − 1, first = L − i0 − n, w = L + n − 1, and keeps
// its logits in the *shifted* layout (rows × D, D = L + rows): row r's L keys start at column
// n − 1 − r, so that key j of row r sits in table column first + (n − 1 − r) + j, the column it
// multiplies. Shifted rows turn the diagonal products into GEMMs: z_qr is Q_tileᵀ times the table
// window (the rel_to_abs trick), sve the table window times the shifted weights, and the same
// for their gradients. The unshifted (n × L) matrix is the view at column n − 1 with row stride
// D − 1, so z_qk, sv and their gradients use the same buffer. The n − 1 columns of each row
// outside its keys (the gaps) are kept 0 where a GEMM reads the full width.
// z_kr[i, j] = Σ_c k[c, j]·r^k[c, j − i + L − 1] varies along the other diagonal; it is a
// per-row elementwise product (2 loads and 1 multiply-add per logit and channel, as cheap as a
// GEMM with qk inner products). Reductions keep fixed lane orders (bit-identical results whatever
// the thread count; tile_gemm.h on GEMMs).
#pragma once
#include <ATen/ATen.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <vector>

#include "softmax_exp.h"
#include "tile_gemm.h"

namespace vicinity {
namespace {

/**
 * Query rows per tile: balanced tiles of at most 64 rows such that a (rows, D) logit tile stays
 * ≤ 128 KiB in float32 and no tile GEMM reaches 2¹⁸ multiply-adds (above that OpenBLAS, Debian's
 * libtorch's BLAS, starts its own threads inside our tasks; tile_gemm.h, halo_attention_head.h).
 */
constexpr int64_t kTileElements = 32768;

struct LesaGeometry {
  int64_t N, g, qk, vp, L;
  int64_t C() const { return 2 * qk + vp; }
  int64_t R() const { return 2 * L - 1; }
  int64_t tasks() const { return N * g; }
  int64_t rows() const {
    const int64_t widest = std::max(qk, vp) * R();
    const int64_t cap = std::max<int64_t>(1, std::min({int64_t{64}, kTileElements / (2 * L), ((int64_t{1} << 18) - 1) / widest}));
    const int64_t tiles = (L + cap - 1) / cap;
    return (L + tiles - 1) / tiles;
  }
  int64_t D() const { return L + rows(); }
};

/**
 * One head's bn_similarity folded into the logit sum: y = Σ_p s_p·z_p + shift; its backward
 * dz_p = s_p·dy − b_p·z_p − c_p (b = c = 0 with running statistics).
 */
template <typename T>
struct Coefficients {
  T s[3], b[3], c[3], shift;
};

/** A task's operands: q, k, v (qk | qk | vp, L); the tables r^q_rev, r^k, r^v_rev (qk | qk | vp, 2L − 1), r^k_rev and r^q. */
template <typename T>
struct Task {
  const T *q, *k, *v, *rq_rev, *rk, *rv_rev, *rk_rev, *rq;
};

template <typename T>
Task<T> task_operands(const LesaGeometry& g, const T* qkv, const T* rel, const T* rel_rev, int64_t task) {
  const T* base = qkv + task * g.C() * g.L;
  const int64_t R = g.R();
  return {base,          base + g.qk * g.L,           base + 2 * g.qk * g.L, rel_rev, rel + g.qk * R,
          rel_rev + 2 * g.qk * R, rel_rev + g.qk * R, rel};
}

/** A task's gradient slices: q, k, v (qk | qk | vp, L) and its table partial [r^q_rev | r^k | r^v_rev] (C, 2L − 1). */
template <typename T>
struct TaskGrads {
  T *q, *k, *v, *rel;
};

/** Per-thread working memory (64-byte aligned, so every tile GEMM sees the same alignment), reused by every task. */
template <typename T>
struct Scratch {
  tile::AlignedBuffer<T> y;         // (rows, D): the tile's logits, then P, shifted layout
  tile::AlignedBuffer<T> dy;        // (rows, D): backward: ∂P, then ∂y, shifted layout
  tile::AlignedBuffer<T> acc;       // (L): one row's z_kr
  tile::AlignedBuffer<T> aqk, aqr;  // (qk, rows): backward: Σ_j ∂y k, Σ_j ∂y r^q per query
  tile::AlignedBuffer<T> bkr;       // (qk, L): backward: Σ_i ∂y r^k per key
  tile::AlignedBuffer<T> tmp;       // (qk, D): lesa_binary_stats.h: a table window's gradient
  tile::AlignedBuffer<T> gq, gk;    // (qk, qk): Gram matrices Q Qᵀ, K Kᵀ
  std::vector<double> sq, sk;       // (qk): Σ_i q_i, Σ_j k_j
  Scratch(const LesaGeometry& g, bool backward)
      : y(g.rows() * g.D()), dy(backward ? g.rows() * g.D() : 0), acc(g.L), aqk(backward ? g.qk * g.rows() : 0),
        aqr(aqk.size()), bkr(backward ? g.qk * g.L : 0), tmp(g.qk * g.D()), gq(g.qk * g.qk), gk(g.qk * g.qk),
        sq(g.qk), sk(g.qk) {}
};

// The loops vectorise at -O3 (binding.gyp builds -O2), with AVX-512 or AVX2 in the clones of the
// task functions that GCC's target_clones picks by the CPU at load time; helpers are always
// inlined so the clones carry them (as la_attention_head.h and halo_attention_head.h).
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC push_options
#pragma GCC optimize("O3", "no-trapping-math")
#define LESA_INLINE inline __attribute__((always_inline))
#else
#define LESA_INLINE inline
#endif
#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__)
#define LESA_CLONES __attribute__((target_clones("avx512f", "avx2", "default")))
#else
#define LESA_CLONES
#endif


/** Σ_j x_j·y_j in 32 interleaved partial sums (independent accumulators), reduced as a tree. */
template <typename T>
LESA_INLINE T dot(int64_t n, const T* __restrict__ x, const T* __restrict__ y) {
  T lane[32];
  for (int l = 0; l < 32; ++l) lane[l] = 0;
  int64_t j = 0;
  for (; j + 32 <= n; j += 32) {
    for (int l = 0; l < 32; ++l) lane[l] += x[j + l] * y[j + l];
  }
  for (; j + 8 <= n; j += 8) {
    for (int l = 0; l < 8; ++l) lane[l] += x[j + l] * y[j + l];
  }
  T sum = 0;
  for (; j < n; ++j) sum += x[j] * y[j];
  for (int w = 16; w >= 1; w /= 2) {
    for (int l = 0; l < w; ++l) lane[l] += lane[l + w];
  }
  return sum + lane[0];
}

/** Σ_j x_j in 8 partial sums, accumulated in Acc. */
template <typename Acc, typename T>
LESA_INLINE Acc lane_sum(int64_t n, const T* __restrict__ x) {
  Acc lane[8] = {0, 0, 0, 0, 0, 0, 0, 0};
  int64_t j = 0;
  for (; j + 8 <= n; j += 8) {
    for (int l = 0; l < 8; ++l) lane[l] += static_cast<Acc>(x[j + l]);
  }
  Acc sum = 0;
  for (; j < n; ++j) sum += static_cast<Acc>(x[j]);
  for (int l = 0; l < 4; ++l) lane[l] += lane[l + 4];
  return sum + ((lane[0] + lane[2]) + (lane[1] + lane[3]));
}

template <typename T>
LESA_INLINE T row_max(int64_t n, const T* __restrict__ x) {
  T lane[8];
  for (int l = 0; l < 8; ++l) lane[l] = x[0];
  int64_t j = 0;
  for (; j + 8 <= n; j += 8) {
    for (int l = 0; l < 8; ++l) lane[l] = x[j + l] > lane[l] ? x[j + l] : lane[l];
  }
  T top = x[0];
  for (; j < n; ++j) top = x[j] > top ? x[j] : top;
  for (int l = 0; l < 8; ++l) top = lane[l] > top ? lane[l] : top;
  return top;
}

// Elementwise row updates as functions with restrict parameters: GCC vectorises a loop over
// several pointers only when it can prove that they do not overlap.

/** out_j = x_j·y_j (+ out_j when acc) */
template <typename T>
LESA_INLINE void mul(int64_t n, const T* __restrict__ x, const T* __restrict__ y, T* __restrict__ out) {
  for (int64_t j = 0; j < n; ++j) out[j] = x[j] * y[j];
}
template <typename T>
LESA_INLINE void mul_acc2(int64_t n, const T* __restrict__ x0, const T* __restrict__ y0, const T* __restrict__ x1,
                          const T* __restrict__ y1, T* __restrict__ out) {
  for (int64_t j = 0; j < n; ++j) out[j] += x0[j] * y0[j] + x1[j] * y1[j];
}
template <typename T>
LESA_INLINE void mul_acc(int64_t n, const T* __restrict__ x, const T* __restrict__ y, T* __restrict__ out) {
  for (int64_t j = 0; j < n; ++j) out[j] += x[j] * y[j];
}

/** out_j += s·x_j + shift */
template <typename T>
LESA_INLINE void add_scaled(int64_t n, T s, T shift, const T* __restrict__ x, T* __restrict__ out) {
  for (int64_t j = 0; j < n; ++j) out[j] += s * x[j] + shift;
}

/** p_j = e^(p_j − base) */
template <typename T>
LESA_INLINE void exp_shifted(int64_t n, T base, T* __restrict__ p) {
  for (int64_t j = 0; j < n; ++j) p[j] = softmax_exp(p[j] - base);
}

template <typename T>
LESA_INLINE void scale(int64_t n, T a, T* __restrict__ x) {
  for (int64_t j = 0; j < n; ++j) x[j] *= a;
}

/** dy_j = P_j·(dy_j − rho): the softmax backward */
template <typename T>
LESA_INLINE void softmax_backward(int64_t n, const T* __restrict__ p, T rho, T* __restrict__ dy) {
  for (int64_t j = 0; j < n; ++j) dy[j] = p[j] * (dy[j] - rho);
}

/** z_kr's backward for one channel: bkr_j += ∂y_j·r^k_j (Σ_i ∂y r^k, for ∂k); grk_j += s·∂y_j·k_j (∂r^k) */
template <typename T>
LESA_INLINE void kr_backward(int64_t n, T s, const T* __restrict__ dy, const T* __restrict__ rk, const T* __restrict__ k,
                             T* __restrict__ bkr, T* __restrict__ grk) {
  for (int64_t j = 0; j < n; ++j) {
    bkr[j] += dy[j] * rk[j];
    grk[j] += s * dy[j] * k[j];
  }
}

template <typename T>
LESA_INLINE void zero(int64_t n, T* x) {
  for (int64_t j = 0; j < n; ++j) x[j] = 0;
}

/**
 * The logits y = Σ_p s_p·z_p + shift of query rows i0 … i0 + n − 1 into s.y, shifted layout,
 * gaps 0. z_qr first over the full width (Eq. (1)'s qᵀr^q as Q_tileᵀ·r^q_rev window), then z_qk
 * added on the view (qᵀk), then z_kr (kᵀr^k) and the shift row by row.
 */
template <typename T>
LESA_INLINE void tile_logits(const LesaGeometry& g, const Task<T>& t, const Coefficients<T>& k, int64_t i0, int64_t n,
                             Scratch<T>& s) {
  const int64_t L = g.L, R = g.R(), D = g.D(), w = L + n - 1, first = L - i0 - n;
  T* y = s.y.data();
  tile::gemm<T>(true, false, n, w, g.qk, k.s[1], t.q + i0, L, t.rq_rev + first, R, T(0), y, D);  // s1·z_qr
  tile::gemm<T>(true, false, n, L, g.qk, k.s[0], t.q + i0, L, t.k, L, T(1), y + n - 1, D - 1);   // + s0·z_qk
  T* acc = s.acc.data();
  for (int64_t r = 0; r < n; ++r) {
    T* row = y + r * D;
    const int64_t lead = n - 1 - r;
    const T* rk = t.rk + (L - 1 - i0 - r);  // r^k[c, L − 1 − i + j] at rk[c·R + j]
    zero(lead, row);
    zero(r, row + lead + L);
    mul(L, t.k, rk, acc);
    int64_t c = 1;
    for (; c + 2 <= g.qk; c += 2) mul_acc2(L, t.k + c * L, rk + c * R, t.k + (c + 1) * L, rk + (c + 1) * R, acc);
    if (c < g.qk) mul_acc(L, t.k + c * L, rk + c * R, acc);
    add_scaled(L, k.s[2], k.shift, acc, row + lead);  // + s2·z_kr + shift
  }
}

/** Softmax (Eq. (3)), then sv (out[c, i]) and sve (out[c, L + i]); out is the task's (vp, 2L), lse its (L). */
template <typename T>
LESA_CLONES void forward_task(const LesaGeometry& g, const Task<T>& t, const Coefficients<T>& k, Scratch<T>& s, T* out,
                              T* lse) {
  const int64_t L = g.L, R = g.R(), rows = g.rows(), D = g.D();
  T* y = s.y.data();
  for (int64_t i0 = 0; i0 < L; i0 += rows) {
    const int64_t n = std::min(rows, L - i0), w = L + n - 1, first = L - i0 - n;
    tile_logits(g, t, k, i0, n, s);  // Eq. (1) logits, bn_similarity, Σ_p
    for (int64_t r = 0; r < n; ++r) {
      T* p = y + r * D + (n - 1 - r);
      const T top = row_max(L, p);
      exp_shifted(L, top, p);
      const T sum = lane_sum<T>(L, p);
      lse[i0 + r] = top + std::log(sum);
      scale(L, T(1) / sum, p);  // Eq. (3) S = softmax_j
    }
    tile::gemm<T>(false, true, g.vp, n, L, T(1), t.v, L, y + n - 1, D - 1, T(0), out + i0, 2 * L);  // Σ_j S·v_j
    tile::gemm<T>(false, true, g.vp, n, w, T(1), t.rv_rev + first, R, y, D, T(0), out + L + i0, 2 * L);  // Σ_j S·r^v[i − j]
  }
}

/**
 * Backward of one task with ∂z_p = s_p·∂y (the running-statistics form; with batch statistics
 * lesa_binary_stats.h's correction_task adds the −b_p·z_p − c_p part afterwards): ∂v, ∂r^v, ∂q,
 * ∂k, ∂r^q, ∂r^k, and BatchNorm's sums Σ∂y, Σ∂y·z_p (sums: 4 doubles; Σ∂y·z_p as Σ q·(Σ_j ∂y k)
 * etc., from the products ∂q and ∂k need anyway). P is recomputed per tile from the saved lse.
 */
template <typename T>
LESA_CLONES void backward_task(const LesaGeometry& g, const Task<T>& t, const Coefficients<T>& k, const T* gout,
                               const T* lse, Scratch<T>& s, const TaskGrads<T>& d, double* sum_out) {
  const int64_t L = g.L, R = g.R(), rows = g.rows(), D = g.D(), qk = g.qk, vp = g.vp;
  double acc[4] = {0, 0, 0, 0};
  T *y = s.y.data(), *dy = s.dy.data(), *aqk = s.aqk.data(), *aqr = s.aqr.data(), *bkr = s.bkr.data();
  zero(qk * L, bkr);
  for (int64_t i0 = 0; i0 < L; i0 += rows) {
    const int64_t n = std::min(rows, L - i0), w = L + n - 1, first = L - i0 - n;
    tile_logits(g, t, k, i0, n, s);
    for (int64_t r = 0; r < n; ++r) exp_shifted(L, lse[i0 + r], y + r * D + (n - 1 - r));  // P = exp(y − lse)
    const T* gsv = gout + i0;
    const T* gsve = gout + L + i0;
    // ∂P = Σ_c ∂sve_c r^v_c (full width) + ∂sv_c v_c (view)
    tile::gemm<T>(true, false, n, w, vp, T(1), gsve, 2 * L, t.rv_rev + first, R, T(0), dy, D);
    tile::gemm<T>(true, false, n, L, vp, T(1), gsv, 2 * L, t.v, L, T(1), dy + n - 1, D - 1);
    // ∂v_j += Σ_i ∂sv_i P_ij; ∂r^v[i − j] += ∂sve_i P_ij (P's gaps are 0)
    tile::gemm<T>(false, false, vp, L, n, T(1), gsv, 2 * L, y + n - 1, D - 1, T(1), d.v, L);
    tile::gemm<T>(false, false, vp, w, n, T(1), gsve, 2 * L, y, D, T(1), d.rel + 2 * qk * R + first, R);
    for (int64_t r = 0; r < n; ++r) {  // ∂y = P ∘ (∂P − Σ_j P ∂P) over the full width: 0 in the gaps
      const T* p = y + r * D;
      T* dr = dy + r * D;
      softmax_backward(w, p, dot(w, p, dr), dr);
      acc[0] += lane_sum<double>(w, dr);
    }
    // ∂q_i = s0·Σ_j ∂y k_j + s1·Σ_j ∂y r^q[i − j]; Σ∂y·z_qk = Σ q·(Σ_j ∂y k), Σ∂y·z_qr likewise
    tile::gemm<T>(false, true, qk, n, L, T(1), t.k, L, dy + n - 1, D - 1, T(0), aqk, n);
    tile::gemm<T>(false, true, qk, n, w, T(1), t.rq_rev + first, R, dy, D, T(0), aqr, n);
    for (int64_t c = 0; c < qk; ++c) {
      for (int64_t r = 0; r < n; ++r) {
        const T a = aqk[c * n + r], b = aqr[c * n + r], q = t.q[c * L + i0 + r];
        d.q[c * L + i0 + r] = k.s[0] * a + k.s[1] * b;
        acc[1] += static_cast<double>(q) * static_cast<double>(a);
        acc[2] += static_cast<double>(q) * static_cast<double>(b);
      }
    }
    // ∂k_j += s0·Σ_i ∂y q_i; ∂r^q[i − j] += s1·∂y q_i
    tile::gemm<T>(false, false, qk, L, n, k.s[0], t.q + i0, L, dy + n - 1, D - 1, T(1), d.k, L);
    tile::gemm<T>(false, false, qk, w, n, k.s[1], t.q + i0, L, dy, D, T(1), d.rel + first, R);
    for (int64_t r = 0; r < n; ++r) {  // z_kr: Σ_i ∂y r^k[j − i] per key, ∂r^k[j − i] += s2·∂y k_j
      const int64_t off = L - 1 - i0 - r;
      const T* dr = dy + r * D + (n - 1 - r);
      for (int64_t c = 0; c < qk; ++c) {
        kr_backward(L, k.s[2], dr, t.rk + c * R + off, t.k + c * L, bkr + c * L, d.rel + (qk + c) * R + off);
      }
    }
  }
  for (int64_t c = 0; c < qk; ++c) {  // ∂k_j += s2·Σ_i ∂y r^k[j − i]; Σ∂y·z_kr = Σ k·(Σ_i ∂y r^k)
    for (int64_t j = 0; j < L; ++j) {
      acc[3] += static_cast<double>(t.k[c * L + j]) * static_cast<double>(bkr[c * L + j]);
      d.k[c * L + j] += k.s[2] * bkr[c * L + j];
    }
  }
  for (int p = 0; p < 4; ++p) sum_out[p] = acc[p];
}

#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC pop_options
#endif

}  // namespace
}  // namespace vicinity
