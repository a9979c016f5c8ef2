// Per-Node-environment state (architecture.md: no globals, so worker_threads each get their own).
#pragma once
#include <ATen/core/dispatch/Dispatcher.h>
#include <napi.h>

#include <atomic>
#include <string>
#include <unordered_map>
#include <vector>

namespace vicinity {

struct OpEntry {
  c10::OperatorHandle handle;
  std::string name;  // "aten::add.Tensor"
  // For each return: the argument index it aliases as `Tensor(a!)`, or -1. Such results are
  // handed back as the caller's own JS object instead of a new wrapper.
  std::vector<int> return_alias;
};

struct EnvState {
  Napi::FunctionReference tensor_class;  // the TypeScript Tensor subclass, set by setTensorClass
  Napi::FunctionReference tensor_base;   // the native base class
  std::vector<OpEntry> ops;
  std::unordered_map<std::string, uint32_t> op_ids;
  Napi::FunctionReference process_group_class;  // native/distributed
  Napi::FunctionReference work_class;
};

// Tensor counters are process-wide: finalizers may run while an environment is torn down, after
// its EnvState is gone, so they must not touch it.
struct Counters {
  std::atomic<int64_t> live_tensors{0};
  std::atomic<int64_t> live_bytes{0};
  std::atomic<int64_t> created_tensors{0};
};
Counters& counters();

EnvState& state(Napi::Env env);

}  // namespace vicinity
