// The parts of `vicinity::lesa_binary` (lesa_binary.cc) that bn_similarity's batch statistics
// add, without the softmax: the forward's per-task sums Σz_p and Σz_p² over the L×L logits, and
// the backward's BatchNorm correction, the −b_p·z_p − c_p part of ∂z_p = s_p·∂y − b_p·z_p − c_p
// pushed through to ∂q, ∂k, ∂r^q and ∂r^k. Each logit term is handled on its own:
//   z_qk = Qᵀ K: Σ z = (Σ_i q_i)·(Σ_j k_j), Σ z² = ⟨Q Qᵀ, K Kᵀ⟩ (qk×qk Gram matrices);
//     ∂Q −= b0·(K Kᵀ) Q + c0·(Σ_j k_j) 1ᵀ, ∂K −= b0·(Q Qᵀ) K + c0·(Σ_i q_i) 1ᵀ.
//   z_qr and z_kr: the band of X ᵀ R (x = q, r = r^q; or x = k with r^k, the key playing the
//     query's part: z_kr[i, j] = Σ_c k[c, j]·r^k_rev[c, L − 1 − j + i]), one tile of rows at a time
//     as a GEMM in lesa_binary_rows.h's shifted layout; its view is the band. Statistics: sums
//     over the view. Correction: B = b·M + c on the view, 0 in the gaps, then ∂X −= R_win Bᵀ and
//     ∂R_win −= X_tile B — two GEMMs.
// Large L against qk (use_windows) takes the same sums by sliding qk×qk Gram windows instead
// (below), O(L·qk²) per task: in qk-long loops they took half the op's time at L = 49, qk = 8,
// but are several times cheaper than the band at L = 784, qk = 4. Included by lesa_binary.cc only
// (internal linkage).
#pragma once
#include <algorithm>
#include <cstdint>
#include <vector>

#include "lesa_binary_rows.h"

namespace vicinity {
namespace {

#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC push_options
#pragma GCC optimize("O3", "no-trapping-math")
#endif
#if defined(__GNUC__)
#define LESA_LAMBDA __attribute__((always_inline))  // so the task functions' clones carry the lambdas' loops
#else
#define LESA_LAMBDA
#endif

/** Σ_j x_j and Σ_j x_j² in double, 8 partial sums each. */
template <typename T>
LESA_INLINE void sum_squares(int64_t n, const T* __restrict__ x, double& sum, double& sum2) {
  double a[8] = {0, 0, 0, 0, 0, 0, 0, 0}, b[8] = {0, 0, 0, 0, 0, 0, 0, 0};
  int64_t j = 0;
  for (; j + 8 <= n; j += 8) {
    for (int l = 0; l < 8; ++l) {
      const double v = static_cast<double>(x[j + l]);
      a[l] += v;
      b[l] += v * v;
    }
  }
  double ta = 0, tb = 0;
  for (; j < n; ++j) {
    const double v = static_cast<double>(x[j]);
    ta += v;
    tb += v * v;
  }
  for (int w = 4; w >= 1; w /= 2) {
    for (int l = 0; l < w; ++l) {
      a[l] += a[l + w];
      b[l] += b[l + w];
    }
  }
  sum += ta + a[0];
  sum2 += tb + b[0];
}

/** out_j = b·x_j + c */
template <typename T>
LESA_INLINE void affine(int64_t n, T b, T c, T* __restrict__ x) {
  for (int64_t j = 0; j < n; ++j) x[j] = b * x[j] + c;
}

/** M[r, m'] = Σ_c x[c, a0 + r]·table_rev[c, first + m'] over the tile's full width into m (shifted layout). */
template <typename T>
LESA_INLINE void band_tile(const LesaGeometry& g, const T* x, const T* table_rev, int64_t a0, int64_t n, T* m) {
  const int64_t L = g.L, w = L + n - 1, first = L - a0 - n;
  tile::gemm<T>(true, false, n, w, g.qk, T(1), x + a0, L, table_rev + first, g.R(), T(0), m, g.D());
}

/** Σz and Σz² of the relative term z[a, ·] = x_a·table[…] over all L×L pairs. */
template <typename T>
LESA_INLINE void band_stats(const LesaGeometry& g, const T* x, const T* table_rev, Scratch<T>& s, double& sum,
                            double& sum2) {
  const int64_t L = g.L, rows = g.rows(), D = g.D();
  for (int64_t a0 = 0; a0 < L; a0 += rows) {
    const int64_t n = std::min(rows, L - a0);
    band_tile(g, x, table_rev, a0, n, s.y.data());
    for (int64_t r = 0; r < n; ++r) sum_squares(L, s.y.data() + r * D + (n - 1 - r), sum, sum2);
  }
}

/** Positions per Gram GEMM: qk²·chunk < 2¹⁸ multiply-adds, below OpenBLAS's threading threshold (lesa_binary_rows.h). */
inline int64_t gram_chunk(const LesaGeometry& g) {
  return std::max<int64_t>(1, ((int64_t{1} << 18) - 1) / (g.qk * g.qk));
}

/** The Gram matrix X Xᵀ (qk × qk) into G and the row sums Σ_a x_a into sum (double). */
template <typename T>
LESA_INLINE void gram(const LesaGeometry& g, const T* x, T* G, double* sum) {
  const int64_t chunk = gram_chunk(g);
  for (int64_t a0 = 0; a0 < g.L; a0 += chunk) {
    const int64_t n = std::min(chunk, g.L - a0);
    tile::gemm<T>(false, true, g.qk, g.qk, n, T(1), x + a0, g.L, x + a0, g.L, a0 == 0 ? T(0) : T(1), G, g.qk);
  }
  for (int64_t c = 0; c < g.qk; ++c) sum[c] = lane_sum<double>(g.L, x + c * g.L);
}

/** out (qk × L) += alpha·G x (G: qk × qk), by chunks of positions. */
template <typename T>
LESA_INLINE void gram_apply(const LesaGeometry& g, T alpha, const T* G, const T* x, T* out) {
  const int64_t chunk = gram_chunk(g);
  for (int64_t a0 = 0; a0 < g.L; a0 += chunk) {
    const int64_t n = std::min(chunk, g.L - a0);
    tile::gemm<T>(false, false, g.qk, n, g.qk, alpha, G, g.qk, x + a0, g.L, T(1), out + a0, g.L);
  }
}

// The relative terms by sliding windows instead (large L / qk): for a table column m the positions
// a ∈ A(m) = [max(0, m − L + 1), min(m, L − 1)] meet it once each, so for z = x_a·r_m
//   Σ z = Σ_m r_m·Σ_{A(m)} x_a,  Σ z² = Σ_m r_mᵀ (Σ_{A(m)} x_a x_aᵀ) r_m,
//   ∂r_m −= b·(Σ_{A(m)} x_a x_aᵀ) r_m + c·Σ_{A(m)} x_a,
// and for a position a the columns m ∈ B(a) = [a, a + L − 1]: ∂x_a −= b·(Σ_{B(a)} r_m r_mᵀ) x_a + c·Σ_{B(a)} r_m
// (x = q with r^q; x = k with r^k, m = j − i + L − 1). The qk×qk window sums slide (add the entering
// column, subtract the leaving one) in double: O(L·qk²) per task, against the band's O(L²·qk), but in
// qk-long loops; the rounding the sliding adds is ~L·2⁻⁵³ relative.

/**
 * The band GEMMs cost ∝ L²·qk, the windows ∝ L·qk²·(loop overhead): windows from L ≥ 24·qk²/(1 + qk/8)
 * (qk 4: L ≥ 256; qk 8: 768). Measured (qk 4): L = 784 forward 119 → 86 ms with the windows, L = 196
 * about even (the band kept). The tests' L = 81, qk = 2 case runs the windows, the others the band.
 */
inline bool use_windows(const LesaGeometry& g) { return g.L * (8 + g.qk) >= 192 * g.qk * g.qk; }

/** Per-task double scratch for the windows: G (qk × qk), s, a column, a result (qk). */
struct WindowScratch {
  std::vector<double> G, s, col, out, v;
  explicit WindowScratch(const LesaGeometry& g) : G(g.qk * g.qk), s(g.qk), col(g.qk), out(g.qk), v(g.qk) {}
};

/** Column a of the d-row matrix x (row stride ld) into col, in double. */
template <typename T>
LESA_INLINE void column(int64_t d, const T* x, int64_t ld, int64_t a, double* col) {
  for (int64_t c = 0; c < d; ++c) col[c] = static_cast<double>(x[c * ld + a]);
}

/** G += sign·x xᵀ and s += sign·x for column a of x. */
template <typename T>
LESA_INLINE void gram_update(int64_t d, const T* x, int64_t ld, int64_t a, double sign, WindowScratch& w) {
  column(d, x, ld, a, w.col.data());
  const double* __restrict__ col = w.col.data();
  double* __restrict__ G = w.G.data();
  double* __restrict__ s = w.s.data();
  for (int64_t c = 0; c < d; ++c) {
    const double xc = sign * col[c];
    s[c] += xc;
    for (int64_t e = 0; e < d; ++e) G[c * d + e] += xc * col[e];
  }
}

/** w.out = b·G v + c·s for the symmetric window Gram G, as axpys over its rows (they vectorise). */
LESA_INLINE void window_apply(int64_t d, WindowScratch& w, const double* __restrict__ v, double b, double c) {
  double* __restrict__ out = w.out.data();
  const double* __restrict__ G = w.G.data();
  for (int64_t e = 0; e < d; ++e) out[e] = c * w.s[e];
  for (int64_t f = 0; f < d; ++f) {
    const double a = b * v[f];
    for (int64_t e = 0; e < d; ++e) out[e] += a * G[f * d + e];
  }
}

/**
 * For t = 0 … steps − 1: the window [lo(t), hi(t)] of x's columns (A(t) when by_table, else
 * B(t) = [t, t + L − 1]), slid from the previous one, then visit(t).
 */
template <typename T, typename Visit>
LESA_INLINE void sliding(int64_t d, int64_t L, const T* x, int64_t ld, int64_t steps, bool by_table, WindowScratch& w,
                         Visit&& visit) {
  std::fill(w.G.begin(), w.G.end(), 0.0);
  std::fill(w.s.begin(), w.s.end(), 0.0);
  int64_t first = 0, last = -1;  // the current window [first, last]
  for (int64_t t = 0; t < steps; ++t) {
    const int64_t lo = by_table ? std::max<int64_t>(0, t - L + 1) : t, hi = by_table ? std::min(t, L - 1) : t + L - 1;
    while (last < hi) gram_update(d, x, ld, ++last, 1.0, w);
    while (first < lo) gram_update(d, x, ld, first++, -1.0, w);
    visit(t);
  }
}

/** Σz and Σz² of z = x_a·r_m over the L×L pairs (table as given, (qk, 2L − 1)). */
template <typename T>
LESA_INLINE void window_stats(const LesaGeometry& g, const T* x, const T* table, WindowScratch& w, double& sum,
                              double& sum2) {
  const int64_t d = g.qk, R = g.R();
  double* r = w.v.data();
  sliding(d, g.L, x, g.L, R, true, w, [&](int64_t m) LESA_LAMBDA {
    column(d, table, R, m, r);
    window_apply(d, w, r, 1.0, 0.0);
    for (int64_t c = 0; c < d; ++c) {
      sum += r[c] * w.s[c];
      sum2 += r[c] * w.out[c];
    }
  });
}

/** The relative term's correction of ∂x (by B windows of the table) and of ∂table (by A windows of x). */
template <typename T>
LESA_INLINE void window_correction(const LesaGeometry& g, const T* x, const T* table, double b, double c,
                                   bool reversed, WindowScratch& w, T* dx, T* dtable) {
  const int64_t d = g.qk, L = g.L, R = g.R();
  double* v = w.v.data();
  sliding(d, L, table, R, L, false, w, [&](int64_t a) LESA_LAMBDA {
    column(d, x, L, a, v);
    window_apply(d, w, v, b, c);
    for (int64_t e = 0; e < d; ++e) dx[e * L + a] -= static_cast<T>(w.out[e]);
  });
  sliding(d, L, x, L, R, true, w, [&](int64_t m) LESA_LAMBDA {
    column(d, table, R, m, v);
    window_apply(d, w, v, b, c);
    const int64_t col = reversed ? R - 1 - m : m;
    for (int64_t e = 0; e < d; ++e) dtable[e * R + col] -= static_cast<T>(w.out[e]);
  });
}

/** Training pass 1: Σz_p (out[p]) and Σz_p² (out[3 + p]) over the task's L×L logits, p = qk, qr, kr. */
template <typename T>
LESA_CLONES void stats_task(const LesaGeometry& g, const Task<T>& t, Scratch<T>& s, double* out) {
  const int64_t d = g.qk;
  T *gq = s.gq.data(), *gk = s.gk.data();
  double *sq = s.sq.data(), *sk = s.sk.data();
  gram(g, t.q, gq, sq);
  gram(g, t.k, gk, sk);
  for (int p = 0; p < 6; ++p) out[p] = 0;
  for (int64_t c = 0; c < d; ++c) out[0] += sq[c] * sk[c];
  for (int64_t e = 0; e < d * d; ++e) out[3] += static_cast<double>(gq[e]) * static_cast<double>(gk[e]);
  if (use_windows(g)) {
    WindowScratch w(g);
    window_stats(g, t.q, t.rq, w, out[1], out[4]);
    window_stats(g, t.k, t.rk, w, out[2], out[5]);
    return;
  }
  band_stats(g, t.q, t.rq_rev, s, out[1], out[4]);
  band_stats(g, t.k, t.rk_rev, s, out[2], out[5]);
}

/**
 * ∂x −= table_win·Bᵀ and ∂table −= x_tile·B for B = b·M + c on the band (0 elsewhere), tile by
 * tile. dtable is the partial's rows for this table; `reversed` when they hold it reversed (r^q),
 * else (r^k) as given, through s.tmp.
 */
template <typename T>
LESA_INLINE void band_correction(const LesaGeometry& g, const T* x, const T* table_rev, T b, T c, bool reversed,
                                 Scratch<T>& s, T* dx, T* dtable) {
  const int64_t L = g.L, R = g.R(), rows = g.rows(), D = g.D(), qk = g.qk;
  T* m = s.y.data();
  for (int64_t a0 = 0; a0 < L; a0 += rows) {
    const int64_t n = std::min(rows, L - a0), w = L + n - 1, first = L - a0 - n;
    band_tile(g, x, table_rev, a0, n, m);
    for (int64_t r = 0; r < n; ++r) {
      T* row = m + r * D;
      const int64_t lead = n - 1 - r;
      zero(lead, row);
      affine(L, b, c, row + lead);
      zero(r, row + lead + L);
    }
    tile::gemm<T>(false, true, qk, n, w, T(-1), table_rev + first, R, m, D, T(1), dx + a0, L);
    if (reversed) {
      tile::gemm<T>(false, false, qk, w, n, T(-1), x + a0, L, m, D, T(1), dtable + first, R);
      continue;
    }
    T* tmp = s.tmp.data();
    tile::gemm<T>(false, false, qk, w, n, T(1), x + a0, L, m, D, T(0), tmp, w);
    for (int64_t e = 0; e < qk; ++e) {
      T* out = dtable + e * R + (R - 1 - first);  // column R − 1 − (first + m') of the table as given
      for (int64_t col = 0; col < w; ++col) out[-col] -= tmp[e * w + col];
    }
  }
}

/** Training backward, after the batch-wide sums: the −b_p·z_p − c_p part of ∂z_p, into the task's gradients. */
template <typename T>
LESA_CLONES void correction_task(const LesaGeometry& g, const Task<T>& t, const Coefficients<T>& k, Scratch<T>& s,
                                 const TaskGrads<T>& d) {
  const int64_t L = g.L, qk = g.qk;
  T *gq = s.gq.data(), *gk = s.gk.data();
  double *sq = s.sq.data(), *sk = s.sk.data();
  gram(g, t.q, gq, sq);
  gram(g, t.k, gk, sk);
  // z_qk: ∂Q −= b0·(K Kᵀ) Q + c0·Σ_j k_j, ∂K −= b0·(Q Qᵀ) K + c0·Σ_i q_i
  gram_apply(g, T(-k.b[0]), gk, t.q, d.q);
  gram_apply(g, T(-k.b[0]), gq, t.k, d.k);
  for (int64_t c = 0; c < qk; ++c) {
    const T cq = k.c[0] * static_cast<T>(sk[c]), ck = k.c[0] * static_cast<T>(sq[c]);
    for (int64_t j = 0; j < L; ++j) {
      d.q[c * L + j] -= cq;
      d.k[c * L + j] -= ck;
    }
  }
  if (use_windows(g)) {
    WindowScratch w(g);
    window_correction(g, t.q, t.rq, k.b[1], k.c[1], true, w, d.q, d.rel);              // z_qr
    window_correction(g, t.k, t.rk, k.b[2], k.c[2], false, w, d.k, d.rel + qk * g.R());  // z_kr
    return;
  }
  band_correction(g, t.q, t.rq_rev, k.b[1], k.c[1], true, s, d.q, d.rel);            // z_qr
  band_correction(g, t.k, t.rk_rev, k.b[2], k.c[2], false, s, d.k, d.rel + qk * g.R());  // z_kr
}

#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC pop_options
#endif

}  // namespace
}  // namespace vicinity
