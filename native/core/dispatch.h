#pragma once
#include <napi.h>

namespace vicinity {
void register_dispatch(Napi::Env env, Napi::Object exports);
void register_runtime(Napi::Env env, Napi::Object exports);
void register_autograd(Napi::Env env, Napi::Object exports);
void register_distributed(Napi::Env env, Napi::Object exports);  // native/distributed
void register_memory(Napi::Env env, Napi::Object exports);
}  // namespace vicinity
