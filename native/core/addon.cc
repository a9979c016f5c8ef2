// Registrations only: each concern lives in its own file.
#include <napi.h>

#include "dispatch.h"
#include "env_state.h"
#include "tensor.h"

namespace vicinity {

EnvState& state(Napi::Env env) { return *env.GetInstanceData<EnvState>(); }

Counters& counters() {
  static Counters c;
  return c;
}

namespace {

Napi::Value set_tensor_class(const Napi::CallbackInfo& info) {
  state(info.Env()).tensor_class = Napi::Persistent(info[0].As<Napi::Function>());
  return info.Env().Undefined();
}

}  // namespace

Napi::Object init(Napi::Env env, Napi::Object exports) {
  auto* s = new EnvState();
  env.SetInstanceData<EnvState>(s);
  Napi::Function base = TensorHandle::define_class(env);
  s->tensor_base = Napi::Persistent(base);
  exports.Set("TensorBase", base);
  exports.Set("setTensorClass", Napi::Function::New(env, set_tensor_class, "setTensorClass"));
  register_dispatch(env, exports);
  register_runtime(env, exports);
  register_autograd(env, exports);
  register_distributed(env, exports);
  register_memory(env, exports);
  return exports;
}

}  // namespace vicinity

static Napi::Object InitVicinity(Napi::Env env, Napi::Object exports) { return vicinity::init(env, exports); }

NODE_API_MODULE(vicinity, InitVicinity)
