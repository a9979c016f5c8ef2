// SyncBatchNorm's training forward and backward (torch.nn.SyncBatchNorm), with the batch
// statistics of all ranks: a torch::autograd::Function whose forward all-reduces the per-channel
// sums (then the sums of squared deviations: two passes, no E[x²]−E[x]² cancellation) and whose
// backward all-reduces Σdy and Σdy·(x−μ). PyTorch's CPU builds before 2.x have no kernels for
// batch_norm_stats / batch_norm_gather_stats_with_counts, so this composes plain ATen ops with
// c10d's allreduce. grad of weight and bias stay local sums (DDP averages them, as in torch);
// grad of the input includes every rank's contribution through the shared statistics:
//   dx = w·σ⁻¹ · (dy − ΣΣdy/N − (x−μ)·σ⁻²·ΣΣdy(x−μ)/N),  N = the global count per channel.
#include <ATen/ATen.h>
#include <torch/csrc/autograd/custom_function.h>

#include "../core/errors.h"
#include "../core/tensor.h"
#include "distributed.h"

namespace vicinity {
namespace {

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

// The group outlives every step that uses it: the JS ProcessGroup holds it for the run.
c10d::ProcessGroup* group_of(int64_t handle) { return reinterpret_cast<c10d::ProcessGroup*>(handle); }

void all_reduce(int64_t group, at::Tensor& t, int64_t timeout_ms) {
  std::vector<at::Tensor> tensors{t};
  c10d::AllreduceOptions options;
  options.timeout = std::chrono::milliseconds(timeout_ms);
  group_of(group)->allreduce(tensors, options)->wait(options.timeout);
}

std::vector<int64_t> reduce_dims(const at::Tensor& x) {
  std::vector<int64_t> dims{0};
  for (int64_t d = 2; d < x.dim(); ++d) dims.push_back(d);
  return dims;
}

std::vector<int64_t> channel_shape(const at::Tensor& x) {
  std::vector<int64_t> shape(x.dim(), 1);
  shape[1] = x.size(1);
  return shape;
}

class SyncBatchNormFn : public torch::autograd::Function<SyncBatchNormFn> {
 public:
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& input, const at::Tensor& weight, const at::Tensor& bias,
                            at::Tensor running_mean, at::Tensor running_var, double eps, double momentum, int64_t group,
                            int64_t timeout_ms) {
    auto x = input.contiguous();
    int64_t channels = x.size(1);
    auto dims = reduce_dims(x);
    auto shape = channel_shape(x);
    auto sums = at::cat({x.sum(dims), at::full({1}, static_cast<double>(x.numel() / channels), x.options())});
    all_reduce(group, sums, timeout_ms);
    double count = sums[channels].item<double>();
    TORCH_CHECK(count > 1, "SyncBatchNorm: expected more than 1 value per channel over all ranks, got ", count);
    auto mean = sums.narrow(0, 0, channels) / count;
    auto xmu = x - mean.view(shape);
    auto squares = (xmu * xmu).sum(dims);
    all_reduce(group, squares, timeout_ms);
    auto var = squares / count;
    auto invstd = (var + eps).rsqrt();
    if (running_mean.defined() && running_var.defined()) {
      at::NoGradGuard no_grad;
      running_mean.mul_(1 - momentum).add_(mean, momentum);
      running_var.mul_(1 - momentum).add_(var * (count / (count - 1)), momentum);
    }
    auto out = xmu * invstd.view(shape);
    if (weight.defined()) out = out * weight.view(shape);
    if (bias.defined()) out = out + bias.view(shape);
    ctx->save_for_backward({xmu, invstd, weight});
    ctx->saved_data["count"] = count;
    ctx->saved_data["group"] = group;
    ctx->saved_data["timeout"] = timeout_ms;
    ctx->saved_data["has_bias"] = bias.defined();
    return out;
  }

  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    auto saved = ctx->get_saved_variables();
    const auto& xmu = saved[0];
    const auto& invstd = saved[1];
    const auto& weight = saved[2];
    double count = ctx->saved_data["count"].toDouble();
    auto dy = grads[0].contiguous();
    auto dims = reduce_dims(dy);
    auto shape = channel_shape(dy);
    int64_t channels = dy.size(1);
    auto sum_dy = dy.sum(dims);
    auto sum_dy_xmu = (dy * xmu).sum(dims);
    at::Tensor grad_weight = weight.defined() ? sum_dy_xmu * invstd : at::Tensor();
    at::Tensor grad_bias = ctx->saved_data["has_bias"].toBool() ? sum_dy.clone() : at::Tensor();
    auto combined = at::cat({sum_dy, sum_dy_xmu});
    all_reduce(ctx->saved_data["group"].toInt(), combined, ctx->saved_data["timeout"].toInt());
    auto mean_dy = combined.narrow(0, 0, channels) / count;
    auto mean_dy_xmu = combined.narrow(0, channels, channels) / count;
    auto scale = weight.defined() ? weight * invstd : invstd;
    auto grad_input = (dy - mean_dy.view(shape) - xmu * (invstd * invstd * mean_dy_xmu).view(shape)) * scale.view(shape);
    return {grad_input, grad_weight, grad_bias, at::Tensor(), at::Tensor(), at::Tensor(), at::Tensor(), at::Tensor(), at::Tensor()};
  }
};

at::Tensor optional_tensor(Napi::Env env, const Napi::Value& v, const char* what) {
  if (v.IsNull() || v.IsUndefined()) return at::Tensor();
  return TensorHandle::unwrap(env, v, what);
}

// syncBatchNorm(group, input, weight?, bias?, runningMean?, runningVar?, eps, momentum, timeoutMs) -> Tensor
Napi::Value sync_batch_norm(const Napi::CallbackInfo& info) {
  auto env = info.Env();
  auto group = unwrap_process_group(env, info[0], "group");
  const auto& input = TensorHandle::unwrap(env, info[1], "input");
  auto weight = optional_tensor(env, info[2], "weight");
  auto bias = optional_tensor(env, info[3], "bias");
  auto running_mean = optional_tensor(env, info[4], "runningMean");
  auto running_var = optional_tensor(env, info[5], "runningVar");
  double eps = info[6].As<Napi::Number>().DoubleValue();
  double momentum = info[7].As<Napi::Number>().DoubleValue();
  int64_t timeout_ms = info[8].As<Napi::Number>().Int64Value();
  return guarded(env, [&] {
    TORCH_CHECK(input.dim() >= 2, "SyncBatchNorm: expected an input of at least 2 dimensions (N, C, ...), got ", input.sizes());
    auto handle = reinterpret_cast<int64_t>(group.get());
    auto out = SyncBatchNormFn::apply(input, weight, bias, running_mean, running_var, eps, momentum, handle, timeout_ms);
    return TensorHandle::wrap(env, out);
  });
}

}  // namespace

void register_sync_batch_norm(Napi::Env env, Napi::Object exports) {
  exports.Set("syncBatchNorm", Napi::Function::New(env, sync_batch_norm, "syncBatchNorm"));
}

}  // namespace vicinity
