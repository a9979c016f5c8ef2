// The one generic op call (architecture.md, "Op calls"): an operator is resolved once by name
// through the dispatcher, then called boxed with arguments converted by its schema. Autograd,
// device dispatch and in-place semantics are libtorch's own, exactly as from Python.
#include "dispatch.h"

#include <ATen/core/dispatch/Dispatcher.h>
#include <ATen/core/stack.h>

#include "build_config.h"  // per backend (scripts/build-addon.mjs)
#include "convert.h"
#include "env_state.h"
#include "errors.h"
#include "tensor.h"

namespace vicinity {
namespace {

std::vector<int> return_aliases(const c10::FunctionSchema& schema) {
  std::vector<int> out;
  for (const auto& ret : schema.returns()) {
    int index = -1;
    const auto* info = ret.alias_info();
    if (info && info->isWrite()) {
      for (size_t i = 0; i < schema.arguments().size(); ++i) {
        const auto* arg_info = schema.arguments()[i].alias_info();
        if (arg_info && arg_info->isWrite() && arg_info->beforeSets() == info->beforeSets()) {
          index = static_cast<int>(i);
          break;
        }
      }
    }
    out.push_back(index);
  }
  return out;
}

const OpEntry& entry(Napi::Env env, const Napi::Value& id) {
  auto& ops = state(env).ops;
  uint32_t i = id.As<Napi::Number>().Uint32Value();
  if (i >= ops.size()) throw_type(env, "unknown op id " + std::to_string(i));
  return ops[i];
}

// opId(name, overload): resolves "aten::add" + "Tensor" once; later calls use the returned id.
Napi::Value op_id(const Napi::CallbackInfo& info) {
  auto env = info.Env();
  std::string name = info[0].As<Napi::String>().Utf8Value();
  std::string overload = info.Length() > 1 && info[1].IsString() ? info[1].As<Napi::String>().Utf8Value() : "";
  std::string key = overload.empty() ? name : name + "." + overload;
  auto& s = state(env);
  auto found = s.op_ids.find(key);
  if (found != s.op_ids.end()) return Napi::Number::New(env, found->second);
  auto handle = c10::Dispatcher::singleton().findSchema({name, overload});
  if (!handle) {
    // Ops are generated against the primary backend's libtorch (2.x); the 1.13 fallback lacks the
    // newer ones, which fail here, by name, only when called.
    throw Napi::Error::New(env, "operator " + key + " is not in libtorch " VICINITY_TORCH_VERSION
                                " (" VICINITY_TORCH_LABEL ", backend " VICINITY_BACKEND
                                "); it needs a newer libtorch: use the default backend, pip's torch 2.x "
                                "(`bash scripts/setup.sh`)");
  }
  uint32_t id = static_cast<uint32_t>(s.ops.size());
  s.ops.push_back(OpEntry{*handle, key, return_aliases(handle->schema())});
  s.op_ids.emplace(key, id);
  return Napi::Number::New(env, id);
}

Napi::Value op_schema(const Napi::CallbackInfo& info) {
  auto env = info.Env();
  std::ostringstream out;
  out << entry(env, info[0]).handle.schema();
  return Napi::String::New(env, out.str());
}

// call(id, args): positional arguments in schema order (keyword-only ones included); missing
// trailing arguments take the schema's defaults.
Napi::Value call(const Napi::CallbackInfo& info) {
  auto env = info.Env();
  const OpEntry& op = entry(env, info[0]);
  auto args = info[1].As<Napi::Array>();
  const auto& schema = op.handle.schema();
  const auto& params = schema.arguments();
  const uint32_t given = args.Length();
  if (given > params.size()) {
    throw_type(env, op.name + " takes " + std::to_string(params.size()) + " arguments, got " + std::to_string(given));
  }
  return guarded(env, [&]() -> Napi::Value {
    torch::jit::Stack stack;
    stack.reserve(std::max(params.size(), schema.returns().size()));
    for (size_t i = 0; i < params.size(); ++i) {
      Napi::Value v = i < given ? args.Get(static_cast<uint32_t>(i)) : env.Undefined();
      if (v.IsUndefined() && params[i].default_value()) {
        stack.push_back(*params[i].default_value());
      } else if (v.IsUndefined() && params[i].type()->kind() != c10::TypeKind::OptionalType) {
        throw_type(env, op.name + ": missing argument '" + params[i].name() + "'");
      } else {
        stack.push_back(to_ivalue(env, v, params[i]));
      }
    }
    op.handle.callBoxed(&stack);
    const size_t n = stack.size();
    auto result_at = [&](size_t r) -> Napi::Value {
      int alias = op.return_alias[r];
      if (alias >= 0 && static_cast<uint32_t>(alias) < given) return args.Get(static_cast<uint32_t>(alias));
      return from_ivalue(env, stack[r]);
    };
    if (n == 0) return env.Undefined();
    if (n == 1) return result_at(0);
    auto out = Napi::Array::New(env, n);
    for (size_t r = 0; r < n; ++r) out.Set(static_cast<uint32_t>(r), result_at(r));
    return out;
  });
}

Napi::Value all_op_names(const Napi::CallbackInfo& info) {
  auto env = info.Env();
  auto names = c10::Dispatcher::singleton().getAllOpNames();
  auto out = Napi::Array::New(env, names.size());
  for (size_t i = 0; i < names.size(); ++i) {
    std::string key = names[i].name;
    if (!names[i].overload_name.empty()) key += "." + names[i].overload_name;
    out.Set(static_cast<uint32_t>(i), key);
  }
  return out;
}

}  // namespace

void register_dispatch(Napi::Env env, Napi::Object exports) {
  exports.Set("opId", Napi::Function::New(env, op_id, "opId"));
  exports.Set("opSchema", Napi::Function::New(env, op_schema, "opSchema"));
  exports.Set("call", Napi::Function::New(env, call, "call"));
  exports.Set("allOpNames", Napi::Function::New(env, all_op_names, "allOpNames"));
}

}  // namespace vicinity
