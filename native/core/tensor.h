// TensorHandle: the JS object that owns one at::Tensor reference. TypeScript's Tensor class
// extends it, so every tensor is one JS object; counters feed memory().
#pragma once
#include <ATen/Tensor.h>
#include <napi.h>

namespace vicinity {

class TensorHandle : public Napi::ObjectWrap<TensorHandle> {
 public:
  static Napi::Function define_class(Napi::Env env);
  // Wraps t in a new instance of the registered Tensor class.
  static Napi::Object wrap(Napi::Env env, at::Tensor t);
  // The tensor behind a JS value; throws a TypeError naming `what` if it is not a live tensor.
  static const at::Tensor& unwrap(Napi::Env env, const Napi::Value& value, const char* what);
  static bool is_tensor(Napi::Env env, const Napi::Value& value);

  explicit TensorHandle(const Napi::CallbackInfo& info);
  ~TensorHandle() override;

  const at::Tensor& tensor() const { return tensor_; }

 private:
  void release();
  Napi::Value dispose(const Napi::CallbackInfo& info);
  Napi::Value get_disposed(const Napi::CallbackInfo& info);
  Napi::Value get_shape(const Napi::CallbackInfo& info);
  Napi::Value get_strides(const Napi::CallbackInfo& info);
  Napi::Value get_dtype(const Napi::CallbackInfo& info);
  Napi::Value get_device(const Napi::CallbackInfo& info);
  Napi::Value get_ndim(const Napi::CallbackInfo& info);
  Napi::Value get_numel(const Napi::CallbackInfo& info);
  Napi::Value get_requires_grad(const Napi::CallbackInfo& info);
  void set_requires_grad(const Napi::CallbackInfo& info, const Napi::Value& value);
  Napi::Value get_grad(const Napi::CallbackInfo& info);
  void set_grad(const Napi::CallbackInfo& info, const Napi::Value& value);
  Napi::Value get_is_leaf(const Napi::CallbackInfo& info);
  Napi::Value get_grad_fn(const Napi::CallbackInfo& info);
  Napi::Value get_is_contiguous(const Napi::CallbackInfo& info);
  Napi::Value get_version(const Napi::CallbackInfo& info);
  Napi::Value same_as(const Napi::CallbackInfo& info);
  Napi::Value item(const Napi::CallbackInfo& info);
  Napi::Value data_sync(const Napi::CallbackInfo& info);
  Napi::Value data_async(const Napi::CallbackInfo& info);
  Napi::Value backward(const Napi::CallbackInfo& info);
  Napi::Value to_string(const Napi::CallbackInfo& info);
  Napi::Value set_data(const Napi::CallbackInfo& info);
  Napi::Value track_gc(const Napi::CallbackInfo& info);

  const at::Tensor& live(Napi::Env env) const;

  at::Tensor tensor_;
  const void* storage_ = nullptr;  // the StorageImpl this handle is counted against
  int64_t gc_bytes_ = 0;           // bytes reported to V8 (GC-managed tensors only)
  bool released_ = false;
};

}  // namespace vicinity
