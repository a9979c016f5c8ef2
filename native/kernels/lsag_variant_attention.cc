// LSAG local attention over the shift variants (Sheynin et al., "Locally Shifted Attention With
// Early Global Integration", §3.2 Eq. (2)–(4)), the part that touches the T variant tokens, fused
// on CPU with a hand-written backward, as `vicinity::lsag_variant_attention`. LsagLocalAttention
// moves U_kv onto the query side (lsag-attention.ts deviation 5), so per token n, K/V head j and
// query head i of its g, with a = W_k,jᵀ·(scale·q) (D wide) and c = (scale·q)·b_k,j:
//   logit_t = a · z_t + c,  w = softmax_t(logit),  mixed = Σ_t w_t · z_t      (t over the T variants)
// and the layer finishes with W_v,j · mixed + b_v,j.
//   a (hk, M, g, D) contiguous, M = B·N tokens: the query-side products, head-major as the
//     layer's batched matmul writes them;
//   z (T, M, D) contiguous: the variants as the shifted embedding writes them (T outermost), read
//     in place (the composite's (M, T, D) view made matmul copy the whole tensor, in forward and
//     again for backward, and produced ∂z in that layout before a transposing copy);
//   bias (hk, M, g) or none: c;
//   → mixed (hk, M, g, D), the layout W_v's batched matmul takes.
// Backward, with go = ∂mixed: ∂w_t = go·z_t; ∂logit_t = w_t·(∂w_t − Σ_s w_s·∂w_s); ∂a = Σ_t ∂logit_t·z_t;
// ∂c = Σ_t ∂logit_t; ∂z_t = Σ_(j,i) (∂logit_t·a + w_t·go). Forward saves w (hk, M, g, T), T/D of
// mixed's size; nothing of size T·M·D is allocated but ∂z.
// How: at::parallel_for over tokens; a task owns its tokens' rows of every output, so results do
// not depend on the thread count. A token's T variant rows (T·D values, 14 KB at T 18, D 192) stay
// in L1 while all hk·g heads use them.
// Deviations: CPU only; no attention dropout (the layer takes the composite path when it drops);
// no double backward. float32's exponential is softmax_exp.h's polynomial (≤ 2 ulp) as in the
// other kernels; float64 keeps std::exp.
#include <ATen/ATen.h>
#include <ATen/Dispatch.h>
#include <ATen/Parallel.h>
#include <torch/csrc/autograd/custom_function.h>

#include <algorithm>
#include <cstdint>
#include <limits>
#include <vector>

#include "channel_dots.h"
#include "kernel_options.h"
#include "kernels.h"
#include "softmax_exp.h"

namespace vicinity {
namespace {

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

/** Sizes: hk K/V heads, M tokens, g query heads per K/V head, D token width, T variants. */
struct VariantGeometry {
  int64_t hk, M, g, D, T;
  int64_t heads() const { return hk * g; }
  /** Row of query head (j, i) of token n in an (hk, M, g, ·) tensor. */
  int64_t row(int64_t j, int64_t n, int64_t i) const { return (j * M + n) * g + i; }
};

VariantGeometry check_inputs(const at::Tensor& a, const at::Tensor& z, const at::Tensor& bias) {
  TORCH_CHECK(a.dim() == 4, "lsag_variant_attention: a must be (K/V heads, tokens, query heads per K/V head, D), got shape ",
              a.sizes());
  TORCH_CHECK(z.dim() == 3, "lsag_variant_attention: z must be the variants (T, tokens, D), got shape ", z.sizes());
  const VariantGeometry g{a.size(0), a.size(1), a.size(2), a.size(3), z.size(0)};
  TORCH_CHECK(z.size(1) == g.M && z.size(2) == g.D, "lsag_variant_attention: z has shape ", z.sizes(),
              " but a has ", g.M, " tokens of width ", g.D, "; pass z as (T, ", g.M, ", ", g.D, ")");
  TORCH_CHECK(g.T >= 1, "lsag_variant_attention: z has no variants (T = 0)");
  TORCH_CHECK(!bias.defined() || bias.sizes() == a.sizes().slice(0, 3), "lsag_variant_attention: bias must be ",
              a.sizes().slice(0, 3), " (a's shape without D), got ", bias.sizes());
  for (const at::Tensor* t : {&z, &bias}) {
    TORCH_CHECK(!t->defined() || t->scalar_type() == a.scalar_type(), "lsag_variant_attention: every input must have a's dtype ",
                a.scalar_type(), ", got ", t->scalar_type());
  }
  for (const at::Tensor* t : {&a, &z, &bias}) {
    TORCH_CHECK(!t->defined() || t->device().is_cpu(), "lsag_variant_attention: a CPU kernel, got a tensor on ",
                t->device(), "; use the composite path (setKernelMode('composite')) on other devices");
  }
  return g;
}

VICINITY_KERNEL_OPTIONS_BEGIN

/** Tokens [begin, end): w (hk, M, g, T) and mixed (hk, M, g, D). */
template <typename T>
VICINITY_X86_64_V3_CLONES void forward_tokens(const VariantGeometry& g, const T* a, const T* z, const T* bias, T* w,
                                              T* mixed, int64_t begin, int64_t end) {
  const int64_t D = g.D, nt = g.T, zt = g.M * g.D;
  for (int64_t n = begin; n < end; ++n) {
    const T* zn = z + n * D;  // variant t of token n: zn + t·zt
    for (int64_t j = 0; j < g.hk; ++j) {
      for (int64_t i = 0; i < g.g; ++i) {
        const int64_t r = g.row(j, n, i);
        const T* av = a + r * D;
        T* wr = w + r * nt;
        const T c = bias != nullptr ? bias[r] : T(0);
        T top = -std::numeric_limits<T>::infinity();
        for (int64_t t = 0; t < nt; ++t) {
          wr[t] = dot(D, av, zn + t * zt) + c;
          top = std::max(top, wr[t]);
        }
        T sum = 0;
        for (int64_t t = 0; t < nt; ++t) {
          wr[t] = softmax_exp(wr[t] - top);
          sum += wr[t];
        }
        const T inv = T(1) / sum;
        for (int64_t t = 0; t < nt; ++t) wr[t] *= inv;
        T* __restrict__ out = mixed + r * D;
        zero_fill(out, D);
        for (int64_t t = 0; t < nt; ++t) {
          const T* __restrict__ zv = zn + t * zt;
          const T wt = wr[t];
          for (int64_t k = 0; k < D; ++k) out[k] += wt * zv[k];
        }
      }
    }
  }
}

/** Tokens [begin, end): their rows of ∂a, ∂c (when gbias) and ∂z; dl is T scratch values. */
template <typename T>
VICINITY_X86_64_V3_CLONES void backward_tokens(const VariantGeometry& g, const T* a, const T* z, const T* w,
                                               const T* gmixed, T* ga, T* gbias, T* gz, T* dl, int64_t begin,
                                               int64_t end) {
  const int64_t D = g.D, nt = g.T, zt = g.M * g.D;
  for (int64_t n = begin; n < end; ++n) {
    const T* zn = z + n * D;
    T* gzn = gz + n * D;
    for (int64_t t = 0; t < nt; ++t) zero_fill(gzn + t * zt, D);
    for (int64_t j = 0; j < g.hk; ++j) {
      for (int64_t i = 0; i < g.g; ++i) {
        const int64_t r = g.row(j, n, i);
        const T* __restrict__ av = a + r * D;
        const T* __restrict__ go = gmixed + r * D;
        const T* wr = w + r * nt;
        T weighted = 0;  // Σ_s w_s·∂w_s
        for (int64_t t = 0; t < nt; ++t) {
          dl[t] = dot(D, go, zn + t * zt);  // ∂w_t
          weighted += wr[t] * dl[t];
        }
        T dc = 0;
        for (int64_t t = 0; t < nt; ++t) {
          dl[t] = wr[t] * (dl[t] - weighted);  // ∂logit_t
          dc += dl[t];
        }
        if (gbias != nullptr) gbias[r] = dc;
        T* __restrict__ gar = ga + r * D;
        zero_fill(gar, D);
        for (int64_t t = 0; t < nt; ++t) {
          const T* __restrict__ zv = zn + t * zt;
          T* __restrict__ gzv = gzn + t * zt;
          const T lt = dl[t], wt = wr[t];
          for (int64_t k = 0; k < D; ++k) {
            gar[k] += lt * zv[k];
            gzv[k] += lt * av[k] + wt * go[k];
          }
        }
      }
    }
  }
}

VICINITY_KERNEL_OPTIONS_END

/** Tokens per task: about 64 K/V-head rows of work, at least one token. */
int64_t grain(const VariantGeometry& g) { return std::max<int64_t>(1, 64 / g.heads()); }

class LsagVariantAttentionFn : public torch::autograd::Function<LsagVariantAttentionFn> {
 public:
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& a_in, const at::Tensor& z_in,
                            const c10::optional<at::Tensor>& bias_in) {
    const at::Tensor bias_arg = bias_in.has_value() ? *bias_in : at::Tensor();
    const VariantGeometry g = check_inputs(a_in, z_in, bias_arg);
    const at::Tensor a = a_in.contiguous(), z = z_in.contiguous();
    const at::Tensor bias = bias_arg.defined() ? bias_arg.contiguous() : bias_arg;
    at::Tensor w = at::empty({g.hk, g.M, g.g, g.T}, a.options());
    at::Tensor mixed = at::empty(a.sizes(), a.options());
    AT_DISPATCH_FLOATING_TYPES(a.scalar_type(), "lsag_variant_attention_forward", [&] {
      const scalar_t* bp = bias.defined() ? bias.data_ptr<scalar_t>() : nullptr;
      at::parallel_for(0, g.M, grain(g), [&](int64_t begin, int64_t end) {
        forward_tokens(g, a.data_ptr<scalar_t>(), z.data_ptr<scalar_t>(), bp, w.data_ptr<scalar_t>(),
                       mixed.data_ptr<scalar_t>(), begin, end);
      });
    });
    ctx->save_for_backward({a, z, w});
    ctx->saved_data["bias"] = bias.defined();
    return mixed;
  }

  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    const auto s = ctx->get_saved_variables();
    const at::Tensor &a = s[0], &z = s[1], &w = s[2];
    const bool has_bias = ctx->saved_data["bias"].toBool();
    variable_list result(3);
    if (!grads[0].defined()) return result;
    const VariantGeometry g = check_inputs(a, z, at::Tensor());
    const at::Tensor gmixed = grads[0].contiguous();
    at::Tensor ga = at::empty(a.sizes(), a.options()), gz = at::empty(z.sizes(), z.options());
    at::Tensor gbias = has_bias ? at::empty({g.hk, g.M, g.g}, a.options()) : at::Tensor();
    AT_DISPATCH_FLOATING_TYPES(a.scalar_type(), "lsag_variant_attention_backward", [&] {
      scalar_t* gbp = has_bias ? gbias.data_ptr<scalar_t>() : nullptr;
      at::parallel_for(0, g.M, grain(g), [&](int64_t begin, int64_t end) {
        std::vector<scalar_t> dl(g.T);
        backward_tokens(g, a.data_ptr<scalar_t>(), z.data_ptr<scalar_t>(), w.data_ptr<scalar_t>(),
                        gmixed.data_ptr<scalar_t>(), ga.data_ptr<scalar_t>(), gbp, gz.data_ptr<scalar_t>(), dl.data(),
                        begin, end);
      });
    });
    result[0] = ga;
    result[1] = gz;
    result[2] = gbias;
    return result;
  }
};

}  // namespace

at::Tensor lsag_variant_attention(const at::Tensor& a, const at::Tensor& z, const c10::optional<at::Tensor>& bias) {
  return LsagVariantAttentionFn::apply(a, z, bias);
}

}  // namespace vicinity
