// LA-layer "normalized" aggregation weight (la-layer.md, Computation step 5; LA paper §3.1
// Eq. 8 as read there), fused with a hand-written backward:
//   w = Σ_c softplus(key_c) · q_c / (Σ_c softplus(key_c) + eps), reduced over `dim`.
// Saving only softplus(key), the denominator and w lets backward skip the autograd graph of the
// five elementwise ops (one pass instead of two, about half the saved activations).
//   ∂w/∂q_c   = softplus(key_c) / den
//   ∂w/∂key_c = sigmoid(key_c) · (q_c − w) / den
// It is also the project's proof of a C++ operator with its own backward (architecture.md,
// "Fused kernels"), registered by registration.cc so the generic op call reaches it as
// `vicinity::la_normalized_weight`. Deviation: no double backward (not needed for training).
#include <ATen/ATen.h>
#include <ATen/WrapDimUtils.h>
#include <torch/csrc/autograd/custom_function.h>
#include "kernels.h"

namespace vicinity {
namespace {

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

class LaNormalizedWeight : public torch::autograd::Function<LaNormalizedWeight> {
 public:
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& q, const at::Tensor& key, int64_t dim, double eps) {
    TORCH_CHECK(q.sizes() == key.sizes(), "la_normalized_weight: q has shape ", q.sizes(), " but key has shape ",
                key.sizes(), "; expand q to the key's shape first");
    TORCH_CHECK(eps > 0, "la_normalized_weight: eps must be > 0, got ", eps);
    dim = at::maybe_wrap_dim(dim, q.dim());
    at::Tensor sp = at::softplus(key);
    at::Tensor den = sp.sum(dim, /*keepdim=*/true) + eps;
    at::Tensor w = (sp * q).sum(dim, /*keepdim=*/true) / den;
    ctx->save_for_backward({q, key, w, den});
    ctx->saved_data["dim"] = dim;
    return w.squeeze(dim);
  }

  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    auto saved = ctx->get_saved_variables();
    const at::Tensor& q = saved[0];
    const at::Tensor& key = saved[1];
    const at::Tensor& w = saved[2];
    const at::Tensor& den = saved[3];
    int64_t dim = ctx->saved_data["dim"].toInt();
    at::Tensor g = grads[0].unsqueeze(dim) / den;
    at::Tensor grad_q = g * at::softplus(key);
    at::Tensor grad_key = g * at::sigmoid(key) * (q - w);
    return {grad_q, grad_key, at::Tensor(), at::Tensor()};
  }
};

}  // namespace

at::Tensor la_normalized_weight(const at::Tensor& q, const at::Tensor& key, int64_t dim, double eps) {
  return LaNormalizedWeight::apply(q, key, dim, eps);
}

}  // namespace vicinity
