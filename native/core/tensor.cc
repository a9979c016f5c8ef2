#include "tensor.h"

#include <ATen/ATen.h>
#include <torch/csrc/autograd/autograd.h>
#include <torch/csrc/autograd/function.h>
#include <torch/csrc/autograd/variable.h>

#include <mutex>
#include <sstream>
#include <unordered_map>

#include "convert.h"
#include "env_state.h"
#include "errors.h"

namespace vicinity {
namespace {

// wrap() hands the tensor to the constructor through here: a JS `new Tensor()` finds nothing
// pending and is refused, so only the binding creates tensors.
thread_local at::Tensor* pending = nullptr;

// Bytes are counted once per storage, however many handles share it (views, .grad reads,
// detach(), aliases returned by in-place ops): memory() and the GC's pressure hint then reflect
// what is really held. A handle keeps its storage alive, so a key cannot be reused while counted.
class StorageLedger {
 public:
  // The bytes newly held: the storage's size for its first handle, else 0.
  int64_t acquire(const void* key, int64_t bytes) {
    if (key == nullptr) return 0;
    std::lock_guard<std::mutex> lock(mutex_);
    auto& entry = entries_[key];
    if (entry.handles++ > 0) return 0;
    entry.bytes = bytes;
    return bytes;
  }
  // The bytes no longer held: the storage's size when its last handle goes, else 0.
  int64_t release(const void* key) {
    if (key == nullptr) return 0;
    std::lock_guard<std::mutex> lock(mutex_);
    auto found = entries_.find(key);
    if (found == entries_.end() || --found->second.handles > 0) return 0;
    int64_t bytes = found->second.bytes;
    entries_.erase(found);
    return bytes;
  }

 private:
  struct Entry {
    int64_t handles = 0;
    int64_t bytes = 0;
  };
  std::mutex mutex_;
  std::unordered_map<const void*, Entry> entries_;
};

StorageLedger& ledger() {
  static StorageLedger instance;
  return instance;
}

const void* storage_key(const at::Tensor& t) {
  if (!t.defined() || !t.has_storage()) return nullptr;
  return t.storage().unsafeGetStorageImpl();
}

void account(int64_t delta) { counters().live_bytes += delta; }

class DataWorker : public Napi::AsyncWorker {
 public:
  DataWorker(Napi::Env env, at::Tensor t) : Napi::AsyncWorker(env), tensor_(std::move(t)), deferred_(env) {}
  Napi::Promise promise() { return deferred_.Promise(); }
  void Execute() override {
    try {
      host_ = tensor_.to(at::kCPU, readback_dtype(tensor_.scalar_type())).contiguous();
    } catch (const c10::Error& e) {
      SetError(clean_message(e));
    } catch (const std::exception& e) {
      SetError(e.what());
    }
  }
  void OnOK() override { deferred_.Resolve(typed_array_from(Env(), host_)); }
  void OnError(const Napi::Error& e) override { deferred_.Reject(e.Value()); }

 private:
  at::Tensor tensor_;
  at::Tensor host_;
  Napi::Promise::Deferred deferred_;
};

}  // namespace

Napi::Function TensorHandle::define_class(Napi::Env env) {
  return DefineClass(
      env, "TensorBase",
      {
          InstanceMethod("dispose", &TensorHandle::dispose),
          InstanceAccessor("disposed", &TensorHandle::get_disposed, nullptr),
          InstanceAccessor("shape", &TensorHandle::get_shape, nullptr),
          InstanceAccessor("strides", &TensorHandle::get_strides, nullptr),
          InstanceAccessor("dtype", &TensorHandle::get_dtype, nullptr),
          InstanceAccessor("device", &TensorHandle::get_device, nullptr),
          InstanceAccessor("ndim", &TensorHandle::get_ndim, nullptr),
          InstanceAccessor("numel", &TensorHandle::get_numel, nullptr),
          InstanceAccessor("requiresGrad", &TensorHandle::get_requires_grad, &TensorHandle::set_requires_grad),
          InstanceAccessor("grad", &TensorHandle::get_grad, &TensorHandle::set_grad),
          InstanceAccessor("isLeaf", &TensorHandle::get_is_leaf, nullptr),
          InstanceAccessor("gradFn", &TensorHandle::get_grad_fn, nullptr),
          InstanceAccessor("isContiguous", &TensorHandle::get_is_contiguous, nullptr),
          InstanceAccessor("version", &TensorHandle::get_version, nullptr),
          InstanceMethod("sameAs", &TensorHandle::same_as),
          InstanceMethod("item", &TensorHandle::item),
          InstanceMethod("dataSync", &TensorHandle::data_sync),
          InstanceMethod("data", &TensorHandle::data_async),
          InstanceMethod("_backward", &TensorHandle::backward),
          InstanceMethod("toString", &TensorHandle::to_string),
          InstanceMethod("_setData", &TensorHandle::set_data),
          InstanceMethod("_trackGc", &TensorHandle::track_gc),
      });
}

Napi::Object TensorHandle::wrap(Napi::Env env, at::Tensor t) {
  auto& s = state(env);
  pending = &t;
  Napi::Object object;
  try {
    object = (s.tensor_class.IsEmpty() ? s.tensor_base : s.tensor_class).New({});
  } catch (...) {
    pending = nullptr;
    throw;
  }
  pending = nullptr;
  return object;
}

bool TensorHandle::is_tensor(Napi::Env env, const Napi::Value& value) {
  return value.IsObject() && value.As<Napi::Object>().InstanceOf(state(env).tensor_base.Value());
}

const at::Tensor& TensorHandle::unwrap(Napi::Env env, const Napi::Value& value, const char* what) {
  if (!is_tensor(env, value)) {
    throw_type(env, std::string("argument '") + what + "' must be a Tensor");
  }
  return Unwrap(value.As<Napi::Object>())->live(env);
}

TensorHandle::TensorHandle(const Napi::CallbackInfo& info) : Napi::ObjectWrap<TensorHandle>(info) {
  if (pending == nullptr) {
    throw Napi::TypeError::New(info.Env(), "Tensors are made by tensor(), zeros(), randn() and the ops, not by new Tensor()");
  }
  tensor_ = std::move(*pending);
  pending = nullptr;
  auto& c = counters();
  c.live_tensors += 1;
  c.created_tensors += 1;
  storage_ = storage_key(tensor_);
  account(ledger().acquire(storage_, storage_ ? static_cast<int64_t>(tensor_.storage().nbytes()) : 0));
}

TensorHandle::~TensorHandle() { release(); }

void TensorHandle::release() {
  if (released_) return;
  released_ = true;
  tensor_ = at::Tensor();
  counters().live_tensors -= 1;
  account(-ledger().release(storage_));
  storage_ = nullptr;
  if (gc_bytes_ > 0) Napi::MemoryManagement::AdjustExternalMemory(Env(), -gc_bytes_);
  gc_bytes_ = 0;
}

const at::Tensor& TensorHandle::live(Napi::Env env) const {
  if (released_) throw Napi::Error::New(env, "Tensor is disposed; keep() it or return it from its scope to use it later");
  return tensor_;
}

Napi::Value TensorHandle::dispose(const Napi::CallbackInfo& info) {
  release();
  return info.Env().Undefined();
}

Napi::Value TensorHandle::get_disposed(const Napi::CallbackInfo& info) { return Napi::Boolean::New(info.Env(), released_); }

Napi::Value TensorHandle::get_shape(const Napi::CallbackInfo& info) {
  const auto& t = live(info.Env());
  auto sizes = t.sizes();
  auto out = Napi::Array::New(info.Env(), sizes.size());
  for (size_t i = 0; i < sizes.size(); ++i) out.Set(static_cast<uint32_t>(i), static_cast<double>(sizes[i]));
  return out;
}

Napi::Value TensorHandle::get_strides(const Napi::CallbackInfo& info) {
  const auto& t = live(info.Env());
  auto strides = t.strides();
  auto out = Napi::Array::New(info.Env(), strides.size());
  for (size_t i = 0; i < strides.size(); ++i) out.Set(static_cast<uint32_t>(i), static_cast<double>(strides[i]));
  return out;
}

Napi::Value TensorHandle::get_dtype(const Napi::CallbackInfo& info) {
  return Napi::String::New(info.Env(), dtype_name(live(info.Env()).scalar_type()));
}

Napi::Value TensorHandle::get_device(const Napi::CallbackInfo& info) {
  return Napi::String::New(info.Env(), device_name(live(info.Env()).device()));
}

Napi::Value TensorHandle::get_ndim(const Napi::CallbackInfo& info) {
  return Napi::Number::New(info.Env(), static_cast<double>(live(info.Env()).dim()));
}

Napi::Value TensorHandle::get_numel(const Napi::CallbackInfo& info) {
  return Napi::Number::New(info.Env(), static_cast<double>(live(info.Env()).numel()));
}

Napi::Value TensorHandle::get_requires_grad(const Napi::CallbackInfo& info) {
  return Napi::Boolean::New(info.Env(), live(info.Env()).requires_grad());
}

void TensorHandle::set_requires_grad(const Napi::CallbackInfo& info, const Napi::Value& value) {
  auto env = info.Env();
  guarded(env, [&] {
    const auto& t = live(env);
    if (!t.is_leaf()) {
      throw Napi::Error::New(env, "requiresGrad can only be changed on leaf tensors; this one was computed by " +
                                      std::string(t.grad_fn() ? t.grad_fn()->name() : "an op") +
                                      ". Use detach() for a tensor without history");
    }
    t.set_requires_grad(value.ToBoolean().Value());
  });
}

Napi::Value TensorHandle::get_grad(const Napi::CallbackInfo& info) {
  auto env = info.Env();
  const at::Tensor& grad = live(env).grad();
  if (!grad.defined()) return env.Null();
  return wrap(env, grad);
}

void TensorHandle::set_grad(const Napi::CallbackInfo& info, const Napi::Value& value) {
  auto env = info.Env();
  guarded(env, [&] {
    if (value.IsNull() || value.IsUndefined()) {
      live(env).mutable_grad().reset();
    } else {
      const auto& t = live(env);
      const auto& grad = unwrap(env, value, "grad");
      if (!grad.sizes().equals(t.sizes()) || grad.scalar_type() != t.scalar_type() || grad.device() != t.device()) {
        throw Napi::Error::New(env, "assigned grad must match the tensor: got " + c10::str(grad.sizes()) + " " +
                                        dtype_name(grad.scalar_type()) + " on " + grad.device().str() + ", expected " +
                                        c10::str(t.sizes()) + " " + dtype_name(t.scalar_type()) + " on " + t.device().str());
      }
      t.mutable_grad() = grad;
    }
  });
}

Napi::Value TensorHandle::get_is_leaf(const Napi::CallbackInfo& info) {
  return Napi::Boolean::New(info.Env(), live(info.Env()).is_leaf());
}

Napi::Value TensorHandle::get_grad_fn(const Napi::CallbackInfo& info) {
  auto env = info.Env();
  const auto& fn = live(env).grad_fn();
  if (!fn) return env.Null();
  return Napi::String::New(env, fn->name());
}

Napi::Value TensorHandle::get_is_contiguous(const Napi::CallbackInfo& info) {
  return Napi::Boolean::New(info.Env(), live(info.Env()).is_contiguous());
}

Napi::Value TensorHandle::get_version(const Napi::CallbackInfo& info) {
  return Napi::Number::New(info.Env(), static_cast<double>(live(info.Env())._version()));
}

Napi::Value TensorHandle::same_as(const Napi::CallbackInfo& info) {
  auto env = info.Env();
  return Napi::Boolean::New(env, live(env).is_same(unwrap(env, info[0], "other")));
}

Napi::Value TensorHandle::item(const Napi::CallbackInfo& info) {
  auto env = info.Env();
  return guarded(env, [&]() -> Napi::Value {
    const auto& t = live(env);
    if (t.numel() != 1) {
      throw Napi::Error::New(env, "item() needs a tensor with one element, got shape " + c10::str(t.sizes()));
    }
    auto s = t.item();
    if (s.isBoolean()) return Napi::Boolean::New(env, s.toBool());
    if (s.isIntegral(false)) return Napi::Number::New(env, static_cast<double>(s.toLong()));
    return Napi::Number::New(env, s.toDouble());
  });
}

Napi::Value TensorHandle::data_sync(const Napi::CallbackInfo& info) {
  auto env = info.Env();
  return guarded(env, [&]() -> Napi::Value {
    const auto& t = live(env);
    at::Tensor host = t.to(at::kCPU, readback_dtype(t.scalar_type())).contiguous();
    return typed_array_from(env, host);
  });
}

Napi::Value TensorHandle::data_async(const Napi::CallbackInfo& info) {
  auto env = info.Env();
  // Snapshot now (on the stream, for CUDA): in-place writes after data() must not show.
  at::Tensor snapshot = guarded(env, [&] { return live(env).detach().clone(); });
  auto* worker = new DataWorker(env, std::move(snapshot));
  auto promise = worker->promise();
  worker->Queue();
  return promise;
}

Napi::Value TensorHandle::backward(const Napi::CallbackInfo& info) {
  auto env = info.Env();
  guarded(env, [&] {
    const auto& t = live(env);
    at::Tensor gradient;
    if (info.Length() > 0 && !info[0].IsNull() && !info[0].IsUndefined()) gradient = unwrap(env, info[0], "gradient");
    bool retain = info.Length() > 1 && info[1].ToBoolean().Value();
    if (!gradient.defined() && t.numel() != 1) {
      throw Napi::Error::New(env, "backward() without a gradient needs a scalar output, got shape " + c10::str(t.sizes()) +
                                      "; pass the gradient of the loss with respect to this tensor");
    }
    if (!t.requires_grad()) {
      throw Napi::Error::New(env, "backward(): this tensor does not require grad and has no grad_fn; "
                                  "did you compute it under noGrad() or from tensors without requiresGrad?");
    }
    torch::autograd::backward({t}, {gradient}, retain ? c10::optional<bool>(true) : c10::nullopt);
  });
  return env.Undefined();
}

// Tensors that only the garbage collector will free (made outside any scope, kept, or owned by a
// module) tell V8 their size, so it collects them in time. Scoped tensors do not: their scope
// frees them, and reporting their bytes made V8 run full collections during every training step
// (27–59 ms a ResNet-18 step, docs/benchmarks.md).
Napi::Value TensorHandle::track_gc(const Napi::CallbackInfo& info) {
  if (!released_ && gc_bytes_ == 0 && storage_ != nullptr) {
    gc_bytes_ = static_cast<int64_t>(tensor_.storage().nbytes());
    if (gc_bytes_ > 0) Napi::MemoryManagement::AdjustExternalMemory(info.Env(), gc_bytes_);
  }
  return info.Env().Undefined();
}

// Module.to() swaps a parameter's storage but keeps the object (and its autograd identity), like
// PyTorch's `param.data = fn(param.data)`.
Napi::Value TensorHandle::set_data(const Napi::CallbackInfo& info) {
  auto env = info.Env();
  guarded(env, [&] {
    live(env);
    const at::Tensor& source = unwrap(env, info[0], "data");
    tensor_.set_data(source);
    account(-ledger().release(storage_));
    storage_ = storage_key(tensor_);
    account(ledger().acquire(storage_, storage_ ? static_cast<int64_t>(tensor_.storage().nbytes()) : 0));
    if (gc_bytes_ > 0) {
      Napi::MemoryManagement::AdjustExternalMemory(env, -gc_bytes_);
      gc_bytes_ = 0;
      track_gc(info);
    }
  });
  return env.Undefined();
}

Napi::Value TensorHandle::to_string(const Napi::CallbackInfo& info) {
  auto env = info.Env();
  if (released_) return Napi::String::New(env, "Tensor(disposed)");
  std::ostringstream out;
  out << tensor_;
  return Napi::String::New(env, out.str());
}

}  // namespace vicinity
