// Autograd entry points beyond Tensor.backward: grad mode (thread-local in libtorch; Node runs
// ops on one thread) and torch.autograd.grad.
#include <ATen/ATen.h>
#include <c10/core/GradMode.h>
#include <torch/csrc/autograd/autograd.h>

#include "dispatch.h"
#include "errors.h"
#include "tensor.h"

namespace vicinity {
namespace {

Napi::Value is_grad_enabled(const Napi::CallbackInfo& info) {
  return Napi::Boolean::New(info.Env(), c10::GradMode::is_enabled());
}

Napi::Value set_grad_enabled(const Napi::CallbackInfo& info) {
  bool previous = c10::GradMode::is_enabled();
  c10::GradMode::set_enabled(info[0].ToBoolean().Value());
  return Napi::Boolean::New(info.Env(), previous);
}

std::vector<at::Tensor> tensors(Napi::Env env, const Napi::Value& value, const char* what, bool allow_null) {
  auto array = value.As<Napi::Array>();
  std::vector<at::Tensor> out;
  for (uint32_t i = 0; i < array.Length(); ++i) {
    auto e = array.Get(i);
    if (allow_null && (e.IsNull() || e.IsUndefined())) {
      out.emplace_back();
    } else {
      out.push_back(TensorHandle::unwrap(env, e, what));
    }
  }
  return out;
}

// grad(outputs, inputs, gradOutputs, retainGraph, createGraph, allowUnused) -> (Tensor|null)[]
Napi::Value grad(const Napi::CallbackInfo& info) {
  auto env = info.Env();
  auto outputs = tensors(env, info[0], "outputs", false);
  auto inputs = tensors(env, info[1], "inputs", false);
  auto grad_outputs = tensors(env, info[2], "gradOutputs", true);
  bool retain = info[3].ToBoolean().Value();
  bool create = info[4].ToBoolean().Value();
  bool allow_unused = info[5].ToBoolean().Value();
  return guarded(env, [&]() -> Napi::Value {
    auto grads = torch::autograd::grad(outputs, inputs, grad_outputs, retain || create, create, allow_unused);
    auto out = Napi::Array::New(env, grads.size());
    for (size_t i = 0; i < grads.size(); ++i) {
      out.Set(static_cast<uint32_t>(i), grads[i].defined() ? Napi::Value(TensorHandle::wrap(env, grads[i])) : env.Null());
    }
    return out;
  });
}

}  // namespace

void register_autograd(Napi::Env env, Napi::Object exports) {
  exports.Set("isGradEnabled", Napi::Function::New(env, is_grad_enabled, "isGradEnabled"));
  exports.Set("setGradEnabled", Napi::Function::New(env, set_grad_enabled, "setGradEnabled"));
  exports.Set("grad", Napi::Function::New(env, grad, "grad"));
}

}  // namespace vicinity
