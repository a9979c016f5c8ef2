// LESA's binary (self-attention) term (Yang et al., "Locally Enhanced Self-Attention", §2.1
// Eq. (1) and (3); as the official LESA module computes it, reference-layers.md §3 "LESA" and
// docs/layers/lesa.md), fused with a hand-written backward, as `vicinity::lesa_binary`:
//   qkv (N, g, 2qk + vp, L): per head [q (qk) | k (qk) | v (vp)] channels over L = H·W positions
//     (bn_qkv's output);
//   relative (2qk + vp, 2L − 1): the table r, split along dim 0 into r^q, r^k, r^v;
//   weight, bias, running_mean, running_var (3g): bn_similarity, channels [qk heads | qr heads | kr heads];
//   → out (N, g, vp, 2L) = [sv | sve] along the last dim (the composite's cat([sv, sve], 3)),
//     mean, var (3g): the statistics it normalised with (batch: mean and biased variance).
// Per (n, h), with i the query and j the key:
//   z_qk[i,j] = Σ_c q[c,i] k[c,j];  z_qr[i,j] = Σ_c q[c,i] r^q[c, i−j+L−1];  z_kr[i,j] = Σ_c k[c,j] r^k[c, j−i+L−1]
//   y = Σ_p BN_p(z_p)   (Eq. (1): the three logit terms, each normalised by its bn_similarity channel)
//   P = softmax_j(y)    (Eq. (3));  sv[c,i] = Σ_j P[i,j] v[c,j];  sve[c,i] = Σ_j P[i,j] r^v[c, i−j+L−1].
// batch_stats: BatchNorm2d in training mode — per channel statistics over (N, L, L), normalising
// with the biased variance; the caller (BatchNorm.normalizeInside) folds the returned mean and
// biased variance into the running statistics as BatchNorm2d.forward does. Otherwise the given
// running statistics.
// Why fused: the composite path materialises (N, g, L, L) tensors several times over (three logit
// terms, their normalisation, sum, softmax) plus the (c, L, L) gathered embeddings, and autograd
// keeps them: ~2 GB at N = 8, g = 8, L = 784. Here one tile of query rows lives in a per-thread
// scratch; forward saves only its inputs, the statistics and each row's log-sum-exp, and backward
// recomputes P per tile (as flash attention does).
// How: at::parallel_for over the N·g (batch, head) tasks; per task, tiles of query rows whose
// products — z_qk, z_qr, sv, sve and all their gradients — are single-threaded BLAS GEMMs on
// aligned scratch, the diagonal (relative) ones over a shifted layout of the tile
// (lesa_binary_rows.h); z_kr and its gradients are elementwise rows. Training forward first takes
// bn_similarity's statistics Σz_p, Σz_p² without the softmax (lesa_binary_stats.h: Gram matrices
// for z_qk; band tiles or, at large L against qk, sliding Gram windows for z_qr and z_kr).
// Backward takes one pass with ∂z_p = s_p·∂y, which yields ∂v, ∂r^v, BatchNorm's Σ∂y, Σ∂y·z_p
// and the running-statistics ∂q, ∂k, ∂r^q, ∂r^k, then (batch statistics only) adds the
// −b_p·z_p − c_p part of ∂z_p per task the same way. Each task owns its slice of ∂qkv; the table
// gradients are kept per fixed block of tasks, every sum per task (in double), all reduced in
// order, and every tile is computed at the same scratch alignment whichever thread runs it, so
// results do not depend on the thread count.
// Deviations: CPU only; needs the BLAS libtorch links (tile_gemm.h); no double backward (training
// never needs it); the logits are normalised as s_p·z_p + shift with s_p = γ_p/√(var_p + eps)
// folded per head (the same value, other rounding); the batch variance is E[z²] − E[z]²
// accumulated in double (z_qk's from its Gram matrices); float32's exp is a polynomial (≤ 2 ulp,
// as HaloAttention's, softmax_exp.h).
// Files: lesa_binary_rows.h holds the per-task tiles, lesa_binary_stats.h the statistics and the
// BatchNorm correction; this file the checks, the passes over tasks, the reductions and the
// autograd Function.
#include <ATen/ATen.h>
#include <ATen/Dispatch.h>
#include <ATen/Parallel.h>
#include <torch/csrc/autograd/custom_function.h>

#include <algorithm>
#include <cmath>
#include <tuple>
#include <utility>
#include <vector>

#include "kernels.h"
#include "lesa_binary_rows.h"
#include "lesa_binary_stats.h"

namespace vicinity {
namespace {

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

LesaGeometry check_inputs(const at::Tensor& qkv, const at::Tensor& relative, const at::Tensor& weight,
                          const at::Tensor& bias, const at::Tensor& running_mean, const at::Tensor& running_var,
                          int64_t qk, bool batch_stats, double eps) {
  TORCH_CHECK(qkv.dim() == 4, "lesa_binary: qkv must be (N, heads, 2·qk + vp, L), got shape ", qkv.sizes());
  const int64_t N = qkv.size(0), g = qkv.size(1), C = qkv.size(2), L = qkv.size(3);
  TORCH_CHECK(N >= 1 && g >= 1 && L >= 1, "lesa_binary: qkv must not be empty, got shape ", qkv.sizes());
  TORCH_CHECK(qk >= 1 && C > 2 * qk, "lesa_binary: qkv has ", C, " channels per head, which is not 2·qk + vp with qk = ",
              qk, " and vp ≥ 1");
  TORCH_CHECK(relative.dim() == 2 && relative.size(0) == C && relative.size(1) == 2 * L - 1,
              "lesa_binary: relative must be (2·qk + vp, 2L − 1) = (", C, ", ", 2 * L - 1, ") for L = ", L,
              " positions, got shape ", relative.sizes());
  const at::Tensor* stats[] = {&weight, &bias, &running_mean, &running_var};
  const char* names[] = {"weight", "bias", "running_mean", "running_var"};
  for (int p = 0; p < 4; ++p) {
    TORCH_CHECK(stats[p]->dim() == 1 && stats[p]->size(0) == 3 * g, "lesa_binary: bn_similarity's ", names[p],
                " must have 3·heads = ", 3 * g, " channels, got shape ", stats[p]->sizes());
  }
  for (const at::Tensor* t : {&relative, &weight, &bias, &running_mean, &running_var}) {
    TORCH_CHECK(t->scalar_type() == qkv.scalar_type(), "lesa_binary: every input must have qkv's dtype ",
                qkv.scalar_type(), ", got ", t->scalar_type());
  }
  for (const at::Tensor* t : {&qkv, &relative, &weight, &bias, &running_mean, &running_var}) {
    TORCH_CHECK(t->device().is_cpu(), "lesa_binary: a CPU kernel, got a tensor on ", t->device(),
                "; use the composite path (setKernelMode('composite')) on other devices");
  }
  TORCH_CHECK(eps >= 0, "lesa_binary: eps must be ≥ 0, got ", eps);
  TORCH_CHECK(!batch_stats || N * L * L > 1, "lesa_binary: batch statistics need more than 1 value per channel, got N = ",
              N, " and L = ", L, "; use a batch larger than 1 or eval mode");
  return LesaGeometry{N, g, qk, C - 2 * qk, L};
}

/** Head h's forward coefficients from the statistics (double) and bn_similarity's affine parameters. */
template <typename T>
std::vector<Coefficients<T>> coefficients(const LesaGeometry& g, const at::Tensor& mean, const at::Tensor& invstd,
                                          const at::Tensor& weight, const at::Tensor& bias) {
  const double* mu = mean.data_ptr<double>();
  const double* is = invstd.data_ptr<double>();
  at::Tensor w = weight.to(at::kDouble), b = bias.to(at::kDouble);
  const double* wp = w.data_ptr<double>();
  const double* bp = b.data_ptr<double>();
  std::vector<Coefficients<T>> out(g.g);
  for (int64_t h = 0; h < g.g; ++h) {
    double shift = 0;
    for (int p = 0; p < 3; ++p) {
      const int64_t ch = p * g.g + h;
      const double s = wp[ch] * is[ch];
      out[h].s[p] = static_cast<T>(s);
      out[h].b[p] = out[h].c[p] = 0;
      shift += bp[ch] - mu[ch] * s;
    }
    out[h].shift = static_cast<T>(shift);
  }
  return out;
}

/**
 * f(task, operands, scratch) for every task, parallel over blocks of `size` consecutive tasks (a
 * block's tasks run in order on one thread), with the thread's scratch and single-threaded BLAS.
 */
template <typename T, typename F>
void for_each_task(const LesaGeometry& g, int64_t size, bool backward, const at::Tensor& qkv, const at::Tensor& rel,
                   const at::Tensor& rel_rev, F f) {
  at::parallel_for(0, (g.tasks() + size - 1) / size, 1, [&](int64_t block_begin, int64_t block_end) {
    tile::SingleThreadedBlas single;
    Scratch<T> s(g, backward);
    const int64_t end = std::min(g.tasks(), block_end * size);
    for (int64_t task = block_begin * size; task < end; ++task) {
      f(task, task_operands(g, qkv.data_ptr<T>(), rel.data_ptr<T>(), rel_rev.data_ptr<T>(), task), s);
    }
  });
}

/** Training pass 1: per channel mean and biased variance over (N, L, L), in double, from each task's closed-form sums. */
template <typename T>
std::pair<at::Tensor, at::Tensor> batch_statistics(const LesaGeometry& g, const at::Tensor& qkv, const at::Tensor& rel,
                                                   const at::Tensor& rel_rev) {
  at::Tensor partial = at::zeros({g.tasks(), 6}, qkv.options().dtype(at::kDouble));
  for_each_task<T>(g, 1, false, qkv, rel, rel_rev, [&](int64_t task, const Task<T>& t, Scratch<T>& s) {
    stats_task(g, t, s, partial.data_ptr<double>() + task * 6);
  });
  at::Tensor mean = at::empty({3 * g.g}, partial.options()), var = at::empty({3 * g.g}, partial.options());
  const double* pp = partial.data_ptr<double>();
  const double count = static_cast<double>(g.N) * static_cast<double>(g.L) * static_cast<double>(g.L);
  for (int64_t h = 0; h < g.g; ++h) {
    for (int p = 0; p < 3; ++p) {
      double s1 = 0, s2 = 0;
      for (int64_t n = 0; n < g.N; ++n) {  // in task order
        s1 += pp[(n * g.g + h) * 6 + p];
        s2 += pp[(n * g.g + h) * 6 + 3 + p];
      }
      const double m = s1 / count;
      mean.data_ptr<double>()[p * g.g + h] = m;
      var.data_ptr<double>()[p * g.g + h] = std::max(s2 / count - m * m, 0.0);
    }
  }
  return {mean, var};
}

template <typename T>
void forward_pass(const LesaGeometry& g, const at::Tensor& qkv, const at::Tensor& rel, const at::Tensor& rel_rev,
                  const std::vector<Coefficients<T>>& k, at::Tensor& out, at::Tensor& lse) {
  for_each_task<T>(g, 1, false, qkv, rel, rel_rev, [&](int64_t task, const Task<T>& t, Scratch<T>& s) {
    forward_task(g, t, k[task % g.g], s, out.data_ptr<T>() + task * g.vp * 2 * g.L, lse.data_ptr<T>() + task * g.L);
  });
}

/**
 * Backward runs over blocks of consecutive tasks, one table partial (C, 2L − 1) per block, each
 * block's tasks in order: at most kBlocks blocks, a number that depends on the task count only (not
 * on the threads), so the sums stay thread-invariant; a partial per task cost page faults and
 * zeroing of tasks·C·(2L − 1) values (13 MB for lesa_resnet_nano's layer4, 1,024 tasks).
 */
constexpr int64_t kBlocks = 32;
inline int64_t block_size(const LesaGeometry& g) { return (g.tasks() + kBlocks - 1) / kBlocks; }
inline int64_t blocks(const LesaGeometry& g) { return (g.tasks() + block_size(g) - 1) / block_size(g); }

/** A task's slices of ∂qkv and its block's table partial. */
template <typename T>
TaskGrads<T> task_grads(const LesaGeometry& g, at::Tensor& gqkv, at::Tensor& grel_partial, int64_t task) {
  T* gq = gqkv.data_ptr<T>() + task * g.C() * g.L;
  const int64_t block = task / block_size(g);
  return {gq, gq + g.qk * g.L, gq + 2 * g.qk * g.L, grel_partial.data_ptr<T>() + block * g.C() * g.R()};
}

/** Backward with ∂z_p = s_p·∂y (all gradients; with running statistics, the whole backward) and BatchNorm's sums. */
template <typename T>
void backward_pass(const LesaGeometry& g, const at::Tensor& qkv, const at::Tensor& rel, const at::Tensor& rel_rev,
                   const std::vector<Coefficients<T>>& k, const at::Tensor& gout, const at::Tensor& lse, at::Tensor& gqkv,
                   at::Tensor& grel_partial, at::Tensor& sums) {
  const int64_t L = g.L;
  for_each_task<T>(g, block_size(g), true, qkv, rel, rel_rev, [&](int64_t task, const Task<T>& t, Scratch<T>& s) {
    backward_task(g, t, k[task % g.g], gout.data_ptr<T>() + task * g.vp * 2 * L, lse.data_ptr<T>() + task * L, s,
                  task_grads<T>(g, gqkv, grel_partial, task), sums.data_ptr<double>() + task * 4);
  });
}

/** Batch statistics only: the −b_p·z_p − c_p part of ∂z_p, per task (lesa_binary_stats.h). */
template <typename T>
void correction_pass(const LesaGeometry& g, const at::Tensor& qkv, const at::Tensor& rel, const at::Tensor& rel_rev,
                     const std::vector<Coefficients<T>>& k, at::Tensor& gqkv, at::Tensor& grel_partial) {
  for_each_task<T>(g, block_size(g), false, qkv, rel, rel_rev, [&](int64_t task, const Task<T>& t, Scratch<T>& s) {
    correction_task(g, t, k[task % g.g], s, task_grads<T>(g, gqkv, grel_partial, task));
  });
}

/** out[e] = Σ_block partial[block·n + e], in block order for every e. */
template <typename T>
void reduce_blocks(int64_t count, int64_t n, const T* partial, T* out) {
  at::parallel_for(0, n, 2048, [&](int64_t begin, int64_t end) {
    for (int64_t e = begin; e < end; ++e) out[e] = 0;
    for (int64_t block = 0; block < count; ++block) {
      const T* p = partial + block * n;
      for (int64_t e = begin; e < end; ++e) out[e] += p[e];
    }
  });
}

/** Per head (in task order): Σ∂y and Σ∂y·z_p into head[h·4 + …]. */
std::vector<double> head_sums(const LesaGeometry& g, const at::Tensor& sums) {
  std::vector<double> head(g.g * 4, 0.0);
  const double* sp = sums.data_ptr<double>();
  for (int64_t h = 0; h < g.g; ++h) {
    for (int64_t n = 0; n < g.N; ++n) {
      for (int p = 0; p < 4; ++p) head[h * 4 + p] += sp[(n * g.g + h) * 4 + p];
    }
  }
  return head;
}

class LesaBinaryFn : public torch::autograd::Function<LesaBinaryFn> {
 public:
  static variable_list forward(AutogradContext* ctx, const at::Tensor& qkv, const at::Tensor& relative,
                               const at::Tensor& weight, const at::Tensor& bias, const at::Tensor& running_mean,
                               const at::Tensor& running_var, int64_t qk, bool batch_stats, double eps) {
    const LesaGeometry g = check_inputs(qkv, relative, weight, bias, running_mean, running_var, qk, batch_stats, eps);
    tile::require_blas("lesa_binary");
    at::Tensor qc = qkv.contiguous(), rc = relative.contiguous(), rrev = relative.flip({1}).contiguous();
    at::Tensor out = at::empty({g.N, g.g, g.vp, 2 * g.L}, qkv.options()), lse = at::empty({g.N, g.g, g.L}, qkv.options());
    at::Tensor mean, var;
    AT_DISPATCH_FLOATING_TYPES(qkv.scalar_type(), "lesa_binary_forward", [&] {
      if (batch_stats) {
        std::tie(mean, var) = batch_statistics<scalar_t>(g, qc, rc, rrev);
      } else {
        mean = running_mean.to(at::kDouble).contiguous();
        var = running_var.to(at::kDouble).contiguous();
      }
      at::Tensor invstd = (var + eps).rsqrt();
      forward_pass<scalar_t>(g, qc, rc, rrev, coefficients<scalar_t>(g, mean, invstd, weight, bias), out, lse);
      ctx->save_for_backward({qc, rc, weight, bias, lse, mean, invstd});
    });
    ctx->saved_data["qk"] = qk;
    ctx->saved_data["batch_stats"] = batch_stats;
    at::Tensor mean_out = mean.to(qkv.scalar_type(), false, true), var_out = var.to(qkv.scalar_type(), false, true);
    ctx->mark_non_differentiable({mean_out, var_out});
    return {out, mean_out, var_out};
  }

  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    auto sv = ctx->get_saved_variables();
    const at::Tensor &qc = sv[0], &rc = sv[1], &weight = sv[2], &bias = sv[3], &lse = sv[4], &mean = sv[5],
                     &invstd = sv[6];
    const int64_t qk = ctx->saved_data["qk"].toInt();
    const bool batch_stats = ctx->saved_data["batch_stats"].toBool();
    const LesaGeometry g = check_inputs(qc, rc, weight, bias, weight, weight, qk, batch_stats, 0.0);
    variable_list result(9);
    if (!grads[0].defined()) return result;
    const int64_t C = g.C(), R = g.R();
    const double count = static_cast<double>(g.N) * static_cast<double>(g.L) * static_cast<double>(g.L);
    at::Tensor gout = grads[0].contiguous(), rrev = rc.flip({1}).contiguous();
    at::Tensor gqkv = at::zeros_like(qc), partial = at::zeros({blocks(g), C, R}, qc.options());
    at::Tensor sums = at::zeros({g.tasks(), 4}, qc.options().dtype(at::kDouble));
    at::Tensor gweight = at::empty({3 * g.g}, qc.options().dtype(at::kDouble)), gbias = at::empty_like(gweight);
    AT_DISPATCH_FLOATING_TYPES(qc.scalar_type(), "lesa_binary_backward", [&] {
      std::vector<Coefficients<scalar_t>> k = coefficients<scalar_t>(g, mean, invstd, weight, bias);
      backward_pass<scalar_t>(g, qc, rc, rrev, k, gout, lse, gqkv, partial, sums);
      const std::vector<double> head = head_sums(g, sums);
      const double* mu = mean.data_ptr<double>();
      const double* is = invstd.data_ptr<double>();
      for (int64_t h = 0; h < g.g; ++h) {
        const double sdy = head[h * 4];
        for (int p = 0; p < 3; ++p) {
          const int64_t ch = p * g.g + h;
          const double sdyx = (head[h * 4 + 1 + p] - mu[ch] * sdy) * is[ch];  // Σ ∂y·x̂_p
          gweight.data_ptr<double>()[ch] = sdyx;
          gbias.data_ptr<double>()[ch] = sdy;
          if (!batch_stats) continue;
          // BatchNorm's training backward: ∂z = s·(∂y − mean(∂y) − x̂·mean(∂y·x̂)) = s·∂y − b·z − c.
          const double s = static_cast<double>(k[h].s[p]), b = s * (sdyx / count) * is[ch];
          k[h].b[p] = static_cast<scalar_t>(b);
          k[h].c[p] = static_cast<scalar_t>(s * (sdy / count) - b * mu[ch]);
        }
      }
      if (batch_stats) correction_pass<scalar_t>(g, qc, rc, rrev, k, gqkv, partial);
    });
    // The table partials, summed over blocks in order, then r^q and r^v back from reversed order.
    at::Tensor grel = at::empty({C, R}, qc.options());
    AT_DISPATCH_FLOATING_TYPES(qc.scalar_type(), "lesa_binary_table_sum", [&] {
      reduce_blocks<scalar_t>(blocks(g), C * R, partial.data_ptr<scalar_t>(), grel.data_ptr<scalar_t>());
    });
    grel.narrow(0, 0, qk).copy_(grel.narrow(0, 0, qk).flip({1}));
    grel.narrow(0, 2 * qk, g.vp).copy_(grel.narrow(0, 2 * qk, g.vp).flip({1}));
    result[0] = gqkv;
    result[1] = grel;
    result[2] = gweight.to(qc.scalar_type());
    result[3] = gbias.to(qc.scalar_type());
    return result;
  }
};

}  // namespace

std::tuple<at::Tensor, at::Tensor, at::Tensor> lesa_binary(const at::Tensor& qkv, const at::Tensor& relative,
                                                           const at::Tensor& weight, const at::Tensor& bias,
                                                           const at::Tensor& running_mean,
                                                           const at::Tensor& running_var, int64_t qk_planes,
                                                           bool batch_stats, double eps) {
  variable_list out = LesaBinaryFn::apply(qkv, relative, weight, bias, running_mean, running_var, qk_planes,
                                          batch_stats, eps);
  return {out[0], out[1], out[2]};
}

}  // namespace vicinity
