// Closed forms, in double, of the parts of `vicinity::lesa_binary` (lesa_binary.cc) that
// bn_similarity's batch statistics add: the forward's per-task sums Σz_p and Σz_p² over the L×L
// logits, and the backward's BatchNorm correction, the −b_p·z_p − c_p part of
// ∂z_p = s_p·∂y − b_p·z_p − c_p pushed through to ∂q, ∂k, ∂r^q and ∂r^k. Both are linear or
// quadratic in z_p, which is bilinear in the operands, so they reduce to Gram matrices of qk×qk
// over windows of positions — O(L·qk²) per task instead of a pass over the L² logits:
//   z_qk[i,j] = q_i·k_j:      Σ z = (Σ_i q_i)·(Σ_j k_j),  Σ z² = ⟨Σ_i q_i q_iᵀ, Σ_j k_j k_jᵀ⟩;
//   z_qr[i,j] = q_i·r^q_m, m = i − j + L − 1: for a table column m the queries i ∈ A(m) =
//     [max(0, m − L + 1), min(m, L − 1)] meet it once each, so Σ z = Σ_m r^q_m·Σ_{A(m)} q_i and
//     Σ z² = Σ_m r^q_mᵀ (Σ_{A(m)} q_i q_iᵀ) r^q_m; for a query i the columns m ∈ B(i) = [i, i + L − 1];
//   z_kr[i,j] = k_j·r^k_m, m = j − i + L − 1: the same with keys j for queries i.
// Corrections (subtracted from the running-statistics gradients backward_task leaves):
//   ∂q_i −= b0·(Σ_j k_j k_jᵀ) q_i + c0·Σ_j k_j + b1·(Σ_{B(i)} r^q_m r^q_mᵀ) q_i + c1·Σ_{B(i)} r^q_m;
//   ∂k_j −= b0·(Σ_i q_i q_iᵀ) k_j + c0·Σ_i q_i + b2·(Σ_{B(j)} r^k_m r^k_mᵀ) k_j + c2·Σ_{B(j)} r^k_m;
//   ∂r^q_m −= b1·(Σ_{A(m)} q_i q_iᵀ) r^q_m + c1·Σ_{A(m)} q_i;  ∂r^k_m −= the same with k, b2, c2.
// The window sums slide (add the entering position, subtract the leaving one) in double; the
// rounding this adds is ~L·2⁻⁵³ relative, far below float32's and the tests' 1e-10 in float64.
// Included by lesa_binary.cc only (internal linkage).
#pragma once
#include <algorithm>
#include <cstdint>
#include <vector>

#include "lesa_binary_rows.h"

namespace vicinity {
namespace {

// -O3 so the d-long loops over Gram rows vectorise (binding.gyp builds -O2), as lesa_binary_rows.h.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC push_options
#pragma GCC optimize("O3", "no-trapping-math")
#endif

/** Per-thread double scratch for the windows: G (d×d), s (d), a column (d), two Grams and two sums. */
struct WindowScratch {
  std::vector<double> G, s, col, gq, gk, sq, sk, out;
  explicit WindowScratch(const LesaGeometry& g)
      : G(g.qk * g.qk), s(g.qk), col(g.qk), gq(g.qk * g.qk), gk(g.qk * g.qk), sq(g.qk), sk(g.qk), out(g.qk) {}
};

/** Column a of the d-row matrix x (row stride ld) into col, in double. */
template <typename T>
inline void column(int64_t d, const T* x, int64_t ld, int64_t a, double* col) {
  for (int64_t c = 0; c < d; ++c) col[c] = static_cast<double>(x[c * ld + a]);
}

/** G += sign·x xᵀ and s += sign·x for column a of x. */
template <typename T>
inline void gram_update(int64_t d, const T* x, int64_t ld, int64_t a, double sign, WindowScratch& w, double* __restrict__ G,
                        double* __restrict__ s) {
  column(d, x, ld, a, w.col.data());
  const double* __restrict__ col = w.col.data();
  for (int64_t c = 0; c < d; ++c) {
    const double xc = sign * col[c];
    s[c] += xc;
    for (int64_t e = 0; e < d; ++e) G[c * d + e] += xc * col[e];
  }
}

/**
 * For t = 0 … steps − 1, the window [lo(t), hi(t)] of x's columns (both ends nondecreasing):
 * visit(t) with w.G = Σ x_a x_aᵀ and w.s = Σ x_a over the window, slid from the previous one.
 */
template <typename T, typename Lo, typename Hi, typename Visit>
void sliding_gram(int64_t d, const T* x, int64_t ld, int64_t steps, Lo lo, Hi hi, WindowScratch& w, Visit visit) {
  std::fill(w.G.begin(), w.G.end(), 0.0);
  std::fill(w.s.begin(), w.s.end(), 0.0);
  int64_t first = lo(0), last = first - 1;  // the current window [first, last]
  for (int64_t t = 0; t < steps; ++t) {
    while (last < hi(t)) gram_update(d, x, ld, ++last, 1.0, w, w.G.data(), w.s.data());
    while (first < lo(t)) gram_update(d, x, ld, first++, -1.0, w, w.G.data(), w.s.data());
    visit(t);
  }
}

/** out = b·G v + c·s for a symmetric G (d × d), as axpys over G's rows (they vectorise; a dot would not). */
inline void sym_apply(int64_t d, const double* __restrict__ G, const double* __restrict__ s, const double* __restrict__ v,
                      double b, double c, double* __restrict__ out) {
  for (int64_t e = 0; e < d; ++e) out[e] = c * s[e];
  for (int64_t f = 0; f < d; ++f) {
    const double a = b * v[f];
    for (int64_t e = 0; e < d; ++e) out[e] += a * G[f * d + e];
  }
}

/** w.out = b·G v + c·s for the current window and a column v. */
inline void window_apply(int64_t d, WindowScratch& w, const double* v, double b, double c) {
  sym_apply(d, w.G.data(), w.s.data(), v, b, c, w.out.data());
}

/** The whole-task Gram Σ_a x_a x_aᵀ (G) and sum Σ_a x_a (s) of x (d × L). */
template <typename T>
void full_gram(int64_t d, int64_t L, const T* x, WindowScratch& w, std::vector<double>& G, std::vector<double>& s) {
  std::fill(G.begin(), G.end(), 0.0);
  std::fill(s.begin(), s.end(), 0.0);
  for (int64_t a = 0; a < L; ++a) gram_update(d, x, L, a, 1.0, w, G.data(), s.data());
}

/** Windows A(m) = [max(0, m − L + 1), min(m, L − 1)] of positions for the table's columns m. */
struct WindowA {
  int64_t L;
  int64_t lo(int64_t m) const { return std::max<int64_t>(0, m - L + 1); }
  int64_t hi(int64_t m) const { return std::min(m, L - 1); }
};

/** Σ_m r_m·Σ_{A(m)} x_a and Σ_m r_mᵀ (Σ_{A(m)} x_a x_aᵀ) r_m: Σz and Σz² of z_qr (x = q, r = r^q) or z_kr (x = k, r = r^k). */
template <typename T>
void window_stats(const LesaGeometry& g, const T* x, const T* table, WindowScratch& w, double& sum, double& sum2) {
  const int64_t d = g.qk, R = g.R();
  const WindowA a{g.L};
  std::vector<double> r(d);
  sliding_gram(d, x, g.L, R, [&](int64_t m) { return a.lo(m); }, [&](int64_t m) { return a.hi(m); }, w, [&](int64_t m) {
    column(d, table, R, m, r.data());
    window_apply(d, w, r.data(), 1.0, 0.0);  // G r
    for (int64_t c = 0; c < d; ++c) {
      sum += r[c] * w.s[c];
      sum2 += r[c] * w.out[c];
    }
  });
}

/** Training pass 1: Σz_p (out[p]) and Σz_p² (out[3 + p]) over the task's L×L logits, p = qk, qr, kr. */
template <typename T>
void stats_task(const LesaGeometry& g, const Task<T>& t, WindowScratch& w, double* out) {
  const int64_t d = g.qk;
  full_gram(d, g.L, t.q, w, w.gq, w.sq);
  full_gram(d, g.L, t.k, w, w.gk, w.sk);
  out[0] = out[3] = 0;
  for (int64_t c = 0; c < d; ++c) out[0] += w.sq[c] * w.sk[c];
  for (int64_t e = 0; e < d * d; ++e) out[3] += w.gq[e] * w.gk[e];
  out[1] = out[2] = out[4] = out[5] = 0;
  window_stats(g, t.q, t.rq, w, out[1], out[4]);
  window_stats(g, t.k, t.rk, w, out[2], out[5]);
}

/**
 * ∂x_a −= b_own·(G_other) x_a + c_own·s_other + b_rel·(Σ_{B(a)} r_m r_mᵀ) x_a + c_rel·Σ_{B(a)} r_m
 * for every position a: the query (x = q, other = k, table r^q) or key (x = k, other = q, r^k) correction.
 */
template <typename T>
void position_correction(const LesaGeometry& g, const T* x, const T* table, const std::vector<double>& G_other,
                         const std::vector<double>& s_other, double b_own, double c_own, double b_rel, double c_rel,
                         WindowScratch& w, T* dx) {
  const int64_t d = g.qk, L = g.L, R = g.R();
  std::vector<double> v(d), own(d);
  sliding_gram(d, table, R, L, [](int64_t a) { return a; }, [&](int64_t a) { return a + L - 1; }, w, [&](int64_t a) {
    column(d, x, L, a, v.data());
    window_apply(d, w, v.data(), b_rel, c_rel);
    sym_apply(d, G_other.data(), s_other.data(), v.data(), b_own, c_own, own.data());
    for (int64_t c = 0; c < d; ++c) dx[c * L + a] -= static_cast<T>(w.out[c] + own[c]);
  });
}

/** ∂r_m −= b·(Σ_{A(m)} x_a x_aᵀ) r_m + c·Σ_{A(m)} x_a into the partial at column m (or 2L − 2 − m when reversed). */
template <typename T>
void table_correction(const LesaGeometry& g, const T* x, const T* table, double b, double c, bool reversed,
                      WindowScratch& w, T* dtable) {
  const int64_t d = g.qk, R = g.R();
  const WindowA a{g.L};
  std::vector<double> r(d);
  sliding_gram(d, x, g.L, R, [&](int64_t m) { return a.lo(m); }, [&](int64_t m) { return a.hi(m); }, w, [&](int64_t m) {
    column(d, table, R, m, r.data());
    window_apply(d, w, r.data(), b, c);
    const int64_t col = reversed ? R - 1 - m : m;
    for (int64_t e = 0; e < d; ++e) dtable[e * R + col] -= static_cast<T>(w.out[e]);
  });
}

/** Training backward, after the batch-wide sums: the −b_p·z_p − c_p part of ∂z_p, into the task's gradients. */
template <typename T>
void correction_task(const LesaGeometry& g, const Task<T>& t, const Coefficients<T>& k, WindowScratch& w,
                     const TaskGrads<T>& d) {
  const double b0 = k.b[0], b1 = k.b[1], b2 = k.b[2], c0 = k.c[0], c1 = k.c[1], c2 = k.c[2];
  full_gram(g.qk, g.L, t.q, w, w.gq, w.sq);
  full_gram(g.qk, g.L, t.k, w, w.gk, w.sk);
  position_correction(g, t.q, t.rq, w.gk, w.sk, b0, c0, b1, c1, w, d.q);
  position_correction(g, t.k, t.rk, w.gq, w.sq, b0, c0, b2, c2, w, d.k);
  table_correction(g, t.q, t.rq, b1, c1, true, w, d.rel);
  table_correction(g, t.k, t.rk, b2, c2, false, w, d.rel + g.qk * g.R());
}

#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC pop_options
#endif

}  // namespace
}  // namespace vicinity
