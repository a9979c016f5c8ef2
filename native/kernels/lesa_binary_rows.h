// The per-(batch, head) compute of `vicinity::lesa_binary` (lesa_binary.cc, whose header states
// the maths, conventions and deviations): geometry, per-thread scratch, the logit rows, the
// statistics pass, the forward and the hand-written backward of one task.
// Included by lesa_binary.cc only (internal linkage); split out to keep each file readable.
//
// Every row loop runs over the keys j, which are contiguous in all operands: q, k, v are
// channels-first (c, L), and the relative tables are read at r[c, L − 1 − i + j] — r^k as given,
// r^q and r^v reversed along their last dim (r_rev[c, m] = r[c, 2L − 2 − m]), so that
// r^q[c, i − j + L − 1] = r^q_rev[c, L − 1 − i + j]. Reductions over j keep 8 interleaved partial
// sums so that they vectorise without -ffast-math, always in the same order (bit-identical results
// whatever the thread count).
#pragma once
#include <ATen/ATen.h>
#include <ATen/ops/exp_cpu_dispatch.h>

#include <cmath>
#include <cstdint>
#include <vector>

namespace vicinity {
namespace {

// Softmax rows per exp call: one call of ATen's vectorised exp kernel per tile of this many
// elements, small enough that the tile's logits stay in L2.
constexpr int64_t kTileElements = 4096;

struct LesaGeometry {
  int64_t N, g, qk, vp, L;
  int64_t C() const { return 2 * qk + vp; }
  int64_t R() const { return 2 * L - 1; }
  int64_t tasks() const { return N * g; }
  int64_t rows() const { return L >= kTileElements ? 1 : (kTileElements / L < L ? kTileElements / L : L); }
};

/**
 * One head's bn_similarity folded into the logit sum: y = Σ_p s_p·z_p + shift; its backward
 * dz_p = s_p·dy − b_p·z_p − c_p (b = c = 0 with running statistics).
 */
template <typename T>
struct Coefficients {
  T s[3], b[3], c[3], shift;
};

/** A task's operands: q, k, v (qk | qk | vp, L) and the tables r^q_rev, r^k, r^v_rev (qk | qk | vp, 2L − 1). */
template <typename T>
struct Task {
  const T *q, *k, *v, *rq_rev, *rk, *rv_rev;
};

template <typename T>
Task<T> task_operands(const LesaGeometry& g, const T* qkv, const T* rel, const T* rel_rev, int64_t task) {
  const T* base = qkv + task * g.C() * g.L;
  const int64_t R = g.R();
  return {base, base + g.qk * g.L, base + 2 * g.qk * g.L, rel_rev, rel + g.qk * R, rel_rev + 2 * g.qk * R};
}

/** Per-thread working memory, reused by every task the thread runs. */
template <typename T>
struct Scratch {
  std::vector<T> z;  // (3, rows, L): the tile's logit parts (backward: their gradients)
  at::Tensor p_t;    // (rows·L): the tile's y − max (or − lse), then exp: a tensor for ATen's exp
  T* p;
  std::vector<T> dp, top;  // (L): one row's ∂P then ∂y; (rows): each row's max
  Scratch(const LesaGeometry& g, const at::TensorOptions& o)
      : z(3 * g.rows() * g.L), p_t(at::empty({g.rows() * g.L}, o)), p(p_t.data_ptr<T>()), dp(g.L), top(g.rows()) {}
  /** exp in place over the tile's first n elements, by ATen's vectorised kernel (the composite's softmax uses it too). */
  void exp_tile(int64_t n) {
    at::Tensor head = p_t.narrow(0, 0, n);
    at::cpu::exp_(head);
  }
};

// The loops vectorise at -O3 (binding.gyp builds -O2), with AVX-512 or AVX2 in the clones of the
// task functions that GCC's target_clones picks by the CPU at load time (the AVX-512 clone took
// 22% less CPU time than the AVX2 one on the project's Xeon); helpers are always inlined so the
// clones carry them (as la_attention_head.h and halo_attention.cc).
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

/** lane[0] + … + lane[31] as a tree. */
template <typename T>
LESA_INLINE T reduce32(T* lane) {
  for (int w = 16; w >= 1; w /= 2) {
    for (int l = 0; l < w; ++l) lane[l] += lane[l + w];
  }
  return lane[0];
}

/**
 * Σ_j x_j·y_j in 32 interleaved partial sums: four independent vector accumulators, so the adds
 * do not wait on each other (one accumulator left these dots latency-bound), then 8 for the rest.
 */
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
  return sum + reduce32(lane);
}

// Elementwise row updates as functions with restrict parameters: GCC vectorises a loop over
// several pointers only when it can prove (or check at run time, for few pointers) that they do
// not overlap; written inline in the task loops, the ∂k/∂r loop stayed scalar.

/** out_j += a·x_j */
template <typename T>
LESA_INLINE void axpy(int64_t n, T a, const T* __restrict__ x, T* __restrict__ out) {
  for (int64_t j = 0; j < n; ++j) out[j] += a * x[j];
}

/** out_j += a·x_j + b·y_j */
template <typename T>
LESA_INLINE void axpy2(int64_t n, T a, const T* __restrict__ x, T b, const T* __restrict__ y, T* __restrict__ out) {
  for (int64_t j = 0; j < n; ++j) out[j] += a * x[j] + b * y[j];
}

/** out_j += a·x_j + b·y_j + c·z_j + d·w_j */
template <typename T>
LESA_INLINE void axpy4(int64_t n, T a, const T* __restrict__ x, T b, const T* __restrict__ y, T c, const T* __restrict__ z,
                       T d, const T* __restrict__ w, T* __restrict__ out) {
  for (int64_t j = 0; j < n; ++j) out[j] += (a * x[j] + b * y[j]) + (c * z[j] + d * w[j]);
}

/** out_j += a·x_j + y_j·z_j */
template <typename T>
LESA_INLINE void axpy_mul_acc(int64_t n, T a, const T* __restrict__ x, const T* __restrict__ y, const T* __restrict__ z,
                              T* __restrict__ out) {
  for (int64_t j = 0; j < n; ++j) out[j] += a * x[j] + y[j] * z[j];
}

/** out_j += x_j·y_j */
template <typename T>
LESA_INLINE void mul_acc(int64_t n, const T* __restrict__ x, const T* __restrict__ y, T* __restrict__ out) {
  for (int64_t j = 0; j < n; ++j) out[j] += x[j] * y[j];
}

/** Σ_j x_j and Σ_j x_j·y_j, accumulated in double in 16 interleaved partial sums each. */
template <typename T>
LESA_INLINE void sums(int64_t n, const T* __restrict__ x, const T* __restrict__ y, double& sx, double& sxy) {
  double a[16], b[16];
  for (int l = 0; l < 16; ++l) a[l] = b[l] = 0;
  int64_t j = 0;
  for (; j + 16 <= n; j += 16) {
    for (int l = 0; l < 16; ++l) {
      const double xv = static_cast<double>(x[j + l]);
      a[l] += xv;
      b[l] += xv * static_cast<double>(y[j + l]);
    }
  }
  double ta = 0, tb = 0;
  for (; j < n; ++j) {
    ta += static_cast<double>(x[j]);
    tb += static_cast<double>(x[j]) * static_cast<double>(y[j]);
  }
  for (int w = 8; w >= 1; w /= 2) {
    for (int l = 0; l < w; ++l) {
      a[l] += a[l + w];
      b[l] += b[l + w];
    }
  }
  sx += ta + a[0];
  sxy += tb + b[0];
}

template <typename T>
LESA_INLINE T lane_sum(int64_t n, const T* __restrict__ x) {
  T lane[8] = {0, 0, 0, 0, 0, 0, 0, 0};
  int64_t j = 0;
  for (; j + 8 <= n; j += 8) {
    for (int l = 0; l < 8; ++l) lane[l] += x[j + l];
  }
  T sum = 0;
  for (; j < n; ++j) sum += x[j];
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

/** Two channels' terms of the three logit rows (see logit_row). */
template <typename T>
LESA_INLINE void logit_pair(int64_t n, T a0, T a1, const T* __restrict__ k0, const T* __restrict__ k1,
                            const T* __restrict__ rq0, const T* __restrict__ rq1, const T* __restrict__ rk0,
                            const T* __restrict__ rk1, T* __restrict__ zqk, T* __restrict__ zqr, T* __restrict__ zkr) {
  for (int64_t j = 0; j < n; ++j) {
    zqk[j] += a0 * k0[j] + a1 * k1[j];
    zqr[j] += a0 * rq0[j] + a1 * rq1[j];
    zkr[j] += k0[j] * rk0[j] + k1[j] * rk1[j];
  }
}

/** Query row i's three logit parts over all keys j: z_qk = q_i·k_j, z_qr = q_i·r^q[i − j], z_kr = k_j·r^k[j − i]. */
template <typename T>
LESA_INLINE void logit_row(const LesaGeometry& g, const Task<T>& t, int64_t i, T* __restrict__ zqk, T* __restrict__ zqr,
                           T* __restrict__ zkr) {
  const int64_t L = g.L, R = g.R(), off = L - 1 - i;
  for (int64_t j = 0; j < L; ++j) zqk[j] = zqr[j] = zkr[j] = 0;
  int64_t c = 0;
  for (; c + 2 <= g.qk; c += 2) {  // two channels per sweep: half the loads and stores of the rows
    const T* k0 = t.k + c * L;
    logit_pair(L, t.q[c * L + i], t.q[(c + 1) * L + i], k0, k0 + L, t.rq_rev + c * R + off, t.rq_rev + (c + 1) * R + off,
               t.rk + c * R + off, t.rk + (c + 1) * R + off, zqk, zqr, zkr);
  }
  if (c < g.qk) {
    const T a = t.q[c * L + i];
    const T* kc = t.k + c * L;
    axpy(L, a, kc, zqk);
    axpy(L, a, t.rq_rev + c * R + off, zqr);
    mul_acc(L, kc, t.rk + c * R + off, zkr);
  }
}

/** y_j = Σ_p s_p·z_p[j] + shift − base into out (base: the row's max or its log-sum-exp). */
template <typename T>
LESA_INLINE void combine(int64_t n, const Coefficients<T>& k, const T* __restrict__ z0, const T* __restrict__ z1,
                         const T* __restrict__ z2, T base, T* __restrict__ out) {
  const T shift = k.shift - base;
  for (int64_t j = 0; j < n; ++j) out[j] = k.s[0] * z0[j] + k.s[1] * z1[j] + k.s[2] * z2[j] + shift;
}

/** Training pass 1: Σz_p and Σz_p² over the task's L×L logits, per part (out: 6 doubles). */
template <typename T>
LESA_CLONES void stats_task(const LesaGeometry& g, const Task<T>& t, Scratch<T>& s, double* out) {
  const int64_t L = g.L;
  double acc[6] = {0, 0, 0, 0, 0, 0};
  T* z = s.z.data();
  for (int64_t i = 0; i < L; ++i) {
    logit_row(g, t, i, z, z + L, z + 2 * L);
    for (int p = 0; p < 3; ++p) sums(L, z + p * L, z + p * L, acc[p], acc[3 + p]);
  }
  for (int p = 0; p < 6; ++p) out[p] = acc[p];
}

/** Softmax, then sv (out[c, i]) and sve (out[c, L + i]); out is the task's (vp, 2L), lse its (L). */
template <typename T>
LESA_CLONES void forward_task(const LesaGeometry& g, const Task<T>& t, const Coefficients<T>& k, Scratch<T>& s, T* out,
                              T* lse) {
  const int64_t L = g.L, R = g.R(), rows = g.rows();
  T* z = s.z.data();
  for (int64_t i0 = 0; i0 < L; i0 += rows) {
    const int64_t n = i0 + rows <= L ? rows : L - i0;
    for (int64_t r = 0; r < n; ++r) {
      logit_row(g, t, i0 + r, z, z + L, z + 2 * L);
      T* y = s.p + r * L;
      combine(L, k, z, z + L, z + 2 * L, T(0), y);                     // Eq. (1) logits, bn_similarity, Σ_p
      s.top[r] = row_max(L, y);
      const T top = s.top[r];
      for (int64_t j = 0; j < L; ++j) y[j] -= top;
    }
    s.exp_tile(n * L);
    for (int64_t r = 0; r < n; ++r) {
      const int64_t i = i0 + r, off = L - 1 - i;
      T* pr = s.p + r * L;
      const T sum = lane_sum(L, pr);
      lse[i] = s.top[r] + std::log(sum);
      const T inv = T(1) / sum;
      for (int64_t j = 0; j < L; ++j) pr[j] *= inv;                   // Eq. (3) S = softmax_j
      for (int64_t c = 0; c < g.vp; ++c) {
        out[c * 2 * L + i] = dot(L, pr, t.v + c * L);                 // Eq. (1) Σ_j S·v_j
        out[c * 2 * L + L + i] = dot(L, pr, t.rv_rev + c * R + off);  // Σ_j S·r^v[i − j]
      }
    }
  }
}

/** dy_j = P_j·(dy_j − rho) */
template <typename T>
LESA_INLINE void softmax_backward(int64_t n, const T* __restrict__ p, T rho, T* __restrict__ dy) {
  for (int64_t j = 0; j < n; ++j) dy[j] = p[j] * (dy[j] - rho);
}

/** z_j ← s·dy_j − b·z_j − c: BatchNorm's backward with the logit z in place of x̂ (b = c = 0 in eval). */
template <typename T>
LESA_INLINE void bn_backward(int64_t n, T s, T b, T c, const T* __restrict__ dy, T* __restrict__ z) {
  for (int64_t j = 0; j < n; ++j) z[j] = s * dy[j] - b * z[j] - c;
}

enum BackwardParts { kValues = 1, kSums = 2, kQueriesKeys = 4 };

/** A task's gradient slices: q, k, v (qk | qk | vp, L) and its table partial [r^q_rev | r^k | r^v_rev] (C, 2L − 1). */
template <typename T>
struct TaskGrads {
  T *q, *k, *v, *rel;
};

/**
 * Backward of one task, the parts chosen by `parts`: kValues accumulates ∂v and ∂r^v; kSums
 * Σ∂y and Σ∂y·z_p (sums: 4 doubles); kQueriesKeys forms ∂z_p by `k` and accumulates ∂q, ∂k,
 * ∂r^q and ∂r^k. P is recomputed per tile from the saved log-sum-exp.
 */
template <typename T>
LESA_CLONES void backward_task(const LesaGeometry& g, const Task<T>& t, const Coefficients<T>& k, const T* gout,
                               const T* lse, int parts, Scratch<T>& s, const TaskGrads<T>& d, double* sum_out) {
  const int64_t L = g.L, R = g.R(), rows = g.rows(), qk = g.qk;
  double acc[4] = {0, 0, 0, 0};
  T* dy = s.dp.data();
  for (int64_t i0 = 0; i0 < L; i0 += rows) {
    const int64_t n = i0 + rows <= L ? rows : L - i0;
    for (int64_t r = 0; r < n; ++r) {
      T* z = s.z.data() + r * L;
      logit_row(g, t, i0 + r, z, z + rows * L, z + 2 * rows * L);
      combine(L, k, z, z + rows * L, z + 2 * rows * L, lse[i0 + r], s.p + r * L);
    }
    s.exp_tile(n * L);                                                  // P = exp(y − lse)
    for (int64_t r = 0; r < n; ++r) {
      const int64_t i = i0 + r, off = L - 1 - i;
      const T* __restrict__ pr = s.p + r * L;
      for (int64_t j = 0; j < L; ++j) dy[j] = 0;
      int64_t c = 0;
      for (; c + 2 <= g.vp; c += 2) {                                   // ∂P = Σ_c ∂sv_c v_c + ∂sve_c r^v_c
        const T* go = gout + c * 2 * L + i;
        axpy4(L, go[0], t.v + c * L, go[L], t.rv_rev + c * R + off, go[2 * L], t.v + (c + 1) * L, go[3 * L],
              t.rv_rev + (c + 1) * R + off, dy);
      }
      if (c < g.vp) axpy2(L, gout[c * 2 * L + i], t.v + c * L, gout[c * 2 * L + L + i], t.rv_rev + c * R + off, dy);
      for (c = 0; (parts & kValues) && c < g.vp; ++c) {
        axpy(L, gout[c * 2 * L + i], pr, d.v + c * L);                  // ∂v_j += P_ij ∂sv_i
        axpy(L, gout[c * 2 * L + L + i], pr, d.rel + (2 * qk + c) * R + off);  // ∂r^v[i − j] += P_ij ∂sve_i
      }
      const T rho = dot(L, pr, dy);
      softmax_backward(L, pr, rho, dy);                                 // ∂y = P ∘ (∂P − Σ_j P ∂P)
      T* z0 = s.z.data() + r * L;
      T* z1 = z0 + rows * L;
      T* z2 = z1 + rows * L;
      if (parts & kSums) {
        double unused = 0;
        sums(L, dy, z0, acc[0], acc[1]);
        sums(L, dy, z1, unused, acc[2]);
        sums(L, dy, z2, unused, acc[3]);
      }
      if (!(parts & kQueriesKeys)) continue;
      bn_backward(L, k.s[0], k.b[0], k.c[0], dy, z0);                  // bn_similarity backward: ∂z_p
      bn_backward(L, k.s[1], k.b[1], k.c[1], dy, z1);
      bn_backward(L, k.s[2], k.b[2], k.c[2], dy, z2);
      for (int64_t c = 0; c < qk; ++c) {
        const T* kc = t.k + c * L;
        const T* rq = t.rq_rev + c * R + off;
        const T* rk = t.rk + c * R + off;
        d.q[c * L + i] = dot(L, z0, kc) + dot(L, z1, rq);               // ∂q_i = Σ_j ∂z_qk k_j + ∂z_qr r^q[i − j]
        const T a = t.q[c * L + i];
        axpy_mul_acc(L, a, z0, z2, rk, d.k + c * L);                    // ∂k_j += ∂z_qk q_i + ∂z_kr r^k[j − i]
        axpy(L, a, z1, d.rel + c * R + off);                            // ∂r^q[i − j] += ∂z_qr q_i
        mul_acc(L, z2, kc, d.rel + (qk + c) * R + off);                 // ∂r^k[j − i] += ∂z_kr k_j
      }
    }
  }
  if (parts & kSums) {
    for (int p = 0; p < 4; ++p) sum_out[p] = acc[p];
  }
}

#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC pop_options
#endif

}  // namespace
}  // namespace vicinity
