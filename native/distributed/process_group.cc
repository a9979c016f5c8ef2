// ProcessGroup and Work handles for TypeScript (src/distributed/process-group.ts).
//
// Rendezvous: a c10d TCPStore at MASTER_ADDR:MASTER_PORT, hosted by rank 0 (or, under torchrun,
// by torchrun's agent, when every rank connects as a client), with our keys under "vicinity/".
// Everything that may block — the rendezvous, Gloo's connection mesh, waiting for a collective —
// can run on a libuv worker thread (the *Async forms), so the event loop keeps turning: timers,
// signals and child-process events still run while a peer is slow. Every wait is bounded by the
// group's timeout; c10d's errors come back through the error funnel as JS Errors.
#include <torch/csrc/distributed/c10d/PrefixStore.hpp>
#include <torch/csrc/distributed/c10d/TCPStore.hpp>

#include <functional>

#include "../core/env_state.h"
#include "../core/errors.h"
#include "../core/tensor.h"
#include "distributed.h"

namespace vicinity {
namespace {

std::string error_text(const std::exception& e) {
  if (auto* c = dynamic_cast<const c10::Error*>(&e)) return clean_message(*c);
  return e.what();
}

std::vector<at::Tensor> tensor_list(Napi::Env env, const Napi::Value& value, const char* what) {
  if (!value.IsArray()) throw_type(env, std::string(what) + " must be an array of tensors");
  auto array = value.As<Napi::Array>();
  std::vector<at::Tensor> out;
  for (uint32_t i = 0; i < array.Length(); ++i) out.push_back(TensorHandle::unwrap(env, array.Get(i), what));
  return out;
}

int64_t int_arg(Napi::Env env, const Napi::Value& value, const char* what) {
  if (!value.IsNumber()) throw_type(env, std::string(what) + " must be a number");
  return value.As<Napi::Number>().Int64Value();
}

// Runs `job` on a worker thread and settles a promise: `done` builds the value on the main thread.
class PromiseWorker : public Napi::AsyncWorker {
 public:
  PromiseWorker(Napi::Env env, std::function<void()> job, std::function<Napi::Value(Napi::Env)> done)
      : Napi::AsyncWorker(env), job_(std::move(job)), done_(std::move(done)), deferred_(env) {}
  Napi::Promise promise() { return deferred_.Promise(); }
  void Execute() override {
    try {
      job_();
    } catch (const std::exception& e) {
      SetError(error_text(e));
    }
  }
  void OnOK() override {
    try {
      deferred_.Resolve(done_(Env()));
    } catch (const Napi::Error& e) {
      deferred_.Reject(e.Value());
    }
  }
  void OnError(const Napi::Error& e) override { deferred_.Reject(e.Value()); }

 private:
  std::function<void()> job_;
  std::function<Napi::Value(Napi::Env)> done_;
  Napi::Promise::Deferred deferred_;
};

// One launched collective.
class WorkHandle : public Napi::ObjectWrap<WorkHandle> {
 public:
  struct Pending {
    WorkPtr work;
    std::string what;
    std::chrono::milliseconds timeout;
    std::vector<std::vector<at::Tensor>> outputs;  // allGather's results
  };
  static inline thread_local Pending* pending = nullptr;

  static Napi::Function define_class(Napi::Env env) {
    return DefineClass(env, "Work", {
        InstanceMethod("wait", &WorkHandle::wait),
        InstanceMethod("waitAsync", &WorkHandle::wait_async),
        InstanceMethod("isCompleted", &WorkHandle::is_completed),
    });
  }
  static Napi::Object wrap(Napi::Env env, Pending p) {
    pending = &p;
    Napi::Object object;
    try {
      object = state(env).work_class.New({});
    } catch (...) {
      pending = nullptr;
      throw;
    }
    pending = nullptr;
    return object;
  }

  explicit WorkHandle(const Napi::CallbackInfo& info) : Napi::ObjectWrap<WorkHandle>(info) {
    if (pending == nullptr) throw Napi::TypeError::New(info.Env(), "Work handles come from ProcessGroup collectives");
    p_ = std::make_shared<Pending>(std::move(*pending));
  }

 private:
  static void wait_on(Pending& p) {
    try {
      p.work->wait(p.timeout);
    } catch (const std::exception& e) {
      throw std::runtime_error(p.what + " failed: " + error_text(e));
    }
  }
  static Napi::Value results(Napi::Env env, const Pending& p) {
    if (p.outputs.empty()) return env.Undefined();
    auto out = Napi::Array::New(env, p.outputs[0].size());
    for (size_t i = 0; i < p.outputs[0].size(); ++i) out.Set(static_cast<uint32_t>(i), TensorHandle::wrap(env, p.outputs[0][i]));
    return out;
  }
  Napi::Value wait(const Napi::CallbackInfo& info) {
    auto env = info.Env();
    return guarded(env, [&] {
      wait_on(*p_);
      return results(env, *p_);
    });
  }
  Napi::Value wait_async(const Napi::CallbackInfo& info) {
    auto p = p_;  // shared: the worker outlives a JS handle that is collected meanwhile
    auto* worker = new PromiseWorker(info.Env(), [p] { wait_on(*p); }, [p](Napi::Env env) { return results(env, *p); });
    auto promise = worker->promise();
    worker->Queue();
    return promise;
  }
  Napi::Value is_completed(const Napi::CallbackInfo& info) { return Napi::Boolean::New(info.Env(), p_->work->isCompleted()); }

  std::shared_ptr<Pending> p_;
};

struct GroupParts {
  c10::intrusive_ptr<c10d::Store> store;  // our prefixed view of the rendezvous store
  c10::intrusive_ptr<c10d::ProcessGroup> group;
  int rank = 0;
  int size = 1;
  std::chrono::milliseconds timeout{0};
};

class ProcessGroupHandle : public Napi::ObjectWrap<ProcessGroupHandle> {
 public:
  static inline thread_local GroupParts* pending = nullptr;

  static Napi::Function define_class(Napi::Env env) {
    return DefineClass(env, "ProcessGroup", {
        InstanceAccessor("rank", &ProcessGroupHandle::get_rank, nullptr),
        InstanceAccessor("size", &ProcessGroupHandle::get_size, nullptr),
        InstanceMethod("allReduce", &ProcessGroupHandle::all_reduce),
        InstanceMethod("broadcast", &ProcessGroupHandle::broadcast),
        InstanceMethod("allGather", &ProcessGroupHandle::all_gather),
        InstanceMethod("barrier", &ProcessGroupHandle::barrier),
        InstanceMethod("storeSet", &ProcessGroupHandle::store_set),
        InstanceMethod("storeGet", &ProcessGroupHandle::store_get),
        InstanceMethod("storeAdd", &ProcessGroupHandle::store_add),
        InstanceMethod("destroy", &ProcessGroupHandle::destroy),
    });
  }
  static Napi::Object wrap(Napi::Env env, GroupParts parts) {
    pending = &parts;
    Napi::Object object;
    try {
      object = state(env).process_group_class.New({});
    } catch (...) {
      pending = nullptr;
      throw;
    }
    pending = nullptr;
    return object;
  }

  explicit ProcessGroupHandle(const Napi::CallbackInfo& info) : Napi::ObjectWrap<ProcessGroupHandle>(info) {
    if (pending == nullptr) throw Napi::TypeError::New(info.Env(), "process groups are made by initProcessGroup()");
    parts_ = std::move(*pending);
  }

  const c10::intrusive_ptr<c10d::ProcessGroup>& live(Napi::Env env) const {
    if (!parts_.group) throw Napi::Error::New(env, "this process group was destroyed");
    return parts_.group;
  }

 private:
  std::chrono::milliseconds timeout_arg(const Napi::CallbackInfo& info, size_t i) const {
    if (info.Length() > i && info[i].IsNumber()) return std::chrono::milliseconds(info[i].As<Napi::Number>().Int64Value());
    return parts_.timeout;
  }
  Napi::Value launched(Napi::Env env, WorkPtr work, const char* what, std::chrono::milliseconds timeout,
                       std::vector<std::vector<at::Tensor>> outputs = {}) {
    return WorkHandle::wrap(env, {std::move(work), what, timeout, std::move(outputs)});
  }

  Napi::Value get_rank(const Napi::CallbackInfo& info) { return Napi::Number::New(info.Env(), parts_.rank); }
  Napi::Value get_size(const Napi::CallbackInfo& info) { return Napi::Number::New(info.Env(), parts_.size); }

  // allReduce(tensors, op: 'sum'|'product'|'min'|'max', timeoutMs?) -> Work; in place.
  Napi::Value all_reduce(const Napi::CallbackInfo& info) {
    auto env = info.Env();
    auto tensors = tensor_list(env, info[0], "tensors");
    std::string op = info[1].IsString() ? info[1].As<Napi::String>().Utf8Value() : "sum";
    c10d::AllreduceOptions options;
    if (op == "sum") options.reduceOp = c10d::ReduceOp::SUM;
    else if (op == "product") options.reduceOp = c10d::ReduceOp::PRODUCT;
    else if (op == "min") options.reduceOp = c10d::ReduceOp::MIN;
    else if (op == "max") options.reduceOp = c10d::ReduceOp::MAX;
    else throw_type(env, "allReduce: op must be 'sum', 'product', 'min' or 'max', got '" + op + "'");
    options.timeout = timeout_arg(info, 2);
    return guarded(env, [&] { return launched(env, live(env)->allreduce(tensors, options), "allReduce", options.timeout); });
  }

  // broadcast(tensors, root, timeoutMs?) -> Work; in place.
  Napi::Value broadcast(const Napi::CallbackInfo& info) {
    auto env = info.Env();
    auto tensors = tensor_list(env, info[0], "tensors");
    c10d::BroadcastOptions options;
    options.rootRank = int_arg(env, info[1], "root");
    options.timeout = timeout_arg(info, 2);
    return guarded(env, [&] { return launched(env, live(env)->broadcast(tensors, options), "broadcast", options.timeout); });
  }

  // allGather(tensor, timeoutMs?) -> Work whose wait() returns one tensor per rank.
  Napi::Value all_gather(const Napi::CallbackInfo& info) {
    auto env = info.Env();
    std::vector<at::Tensor> inputs{TensorHandle::unwrap(env, info[0], "tensor")};
    c10d::AllgatherOptions options;
    options.timeout = timeout_arg(info, 1);
    return guarded(env, [&] {
      std::vector<std::vector<at::Tensor>> outputs(1);
      for (int r = 0; r < parts_.size; ++r) outputs[0].push_back(at::empty_like(inputs[0]));
      auto work = live(env)->allgather(outputs, inputs, options);
      return launched(env, std::move(work), "allGather", options.timeout, std::move(outputs));
    });
  }

  Napi::Value barrier(const Napi::CallbackInfo& info) {
    auto env = info.Env();
    c10d::BarrierOptions options;
    options.timeout = timeout_arg(info, 0);
    return guarded(env, [&] { return launched(env, live(env)->barrier(options), "barrier", options.timeout); });
  }

  // The rendezvous store, for small coordination values (fault reports, stop requests).
  Napi::Value store_set(const Napi::CallbackInfo& info) {
    auto env = info.Env();
    auto key = info[0].As<Napi::String>().Utf8Value();
    auto value = info[1].As<Napi::String>().Utf8Value();
    guarded(env, [&] { parts_.store->set(key, std::vector<uint8_t>(value.begin(), value.end())); });
    return env.Undefined();
  }
  // storeGet(key) -> string | null, without waiting for the key.
  Napi::Value store_get(const Napi::CallbackInfo& info) {
    auto env = info.Env();
    auto key = info[0].As<Napi::String>().Utf8Value();
    return guarded(env, [&]() -> Napi::Value {
      if (!parts_.store->check({key})) return env.Null();
      auto bytes = parts_.store->get(key);
      return Napi::String::New(env, std::string(bytes.begin(), bytes.end()));
    });
  }
  Napi::Value store_add(const Napi::CallbackInfo& info) {
    auto env = info.Env();
    auto key = info[0].As<Napi::String>().Utf8Value();
    auto by = int_arg(env, info[1], "by");
    return guarded(env, [&] { return Napi::Number::New(env, static_cast<double>(parts_.store->add(key, by))); });
  }
  Napi::Value destroy(const Napi::CallbackInfo& info) {
    parts_.group.reset();
    parts_.store.reset();
    return info.Env().Undefined();
  }

  GroupParts parts_;
};

// initProcessGroup({ host, port, rank, worldSize, timeoutMs, backend, hostStore }) -> Promise<ProcessGroup>
Napi::Value init_process_group(const Napi::CallbackInfo& info) {
  auto env = info.Env();
  if (!info[0].IsObject()) throw_type(env, "initProcessGroup takes an options object");
  auto o = info[0].As<Napi::Object>();
  auto host = o.Get("host").As<Napi::String>().Utf8Value();
  auto port = int_arg(env, o.Get("port"), "port");
  auto rank = static_cast<int>(int_arg(env, o.Get("rank"), "rank"));
  auto size = static_cast<int>(int_arg(env, o.Get("worldSize"), "worldSize"));
  auto timeout = std::chrono::milliseconds(int_arg(env, o.Get("timeoutMs"), "timeoutMs"));
  auto backend = o.Get("backend").As<Napi::String>().Utf8Value();
  bool host_store = o.Get("hostStore").ToBoolean().Value();
  auto parts = std::make_shared<GroupParts>();
  auto job = [=] {
    c10d::TCPStoreOptions options;
    options.port = static_cast<uint16_t>(port);
    options.isServer = host_store;
    options.numWorkers = static_cast<size_t>(size);
    options.waitWorkers = true;  // every rank counts itself in; rank 0 waits for all
    options.timeout = timeout;
    auto tcp = c10::make_intrusive<c10d::TCPStore>(host, options);
    parts->store = c10::make_intrusive<c10d::PrefixStore>("vicinity/", tcp);
    parts->group = make_process_group(parts->store, rank, size, timeout, host, backend);
    parts->rank = rank;
    parts->size = size;
    parts->timeout = timeout;
  };
  auto* worker = new PromiseWorker(env, job, [parts](Napi::Env e) -> Napi::Value { return ProcessGroupHandle::wrap(e, *parts); });
  auto promise = worker->promise();
  worker->Queue();
  return promise;
}

Napi::Value distributed_info(const Napi::CallbackInfo& info) {
  auto out = Napi::Object::New(info.Env());
  out.Set("gloo", true);
  out.Set("nccl", nccl_compiled_in());
  return out;
}

}  // namespace

c10::intrusive_ptr<c10d::ProcessGroup> unwrap_process_group(Napi::Env env, const Napi::Value& value, const char* what) {
  if (!value.IsObject() || !value.As<Napi::Object>().InstanceOf(state(env).process_group_class.Value())) {
    throw_type(env, std::string("argument '") + what + "' must be a ProcessGroup");
  }
  return ProcessGroupHandle::Unwrap(value.As<Napi::Object>())->live(env);
}

void register_process_group(Napi::Env env, Napi::Object exports) {
  auto& s = state(env);
  auto group = ProcessGroupHandle::define_class(env);
  s.process_group_class = Napi::Persistent(group);
  s.work_class = Napi::Persistent(WorkHandle::define_class(env));
  exports.Set("ProcessGroup", group);
  exports.Set("initProcessGroup", Napi::Function::New(env, init_process_group, "initProcessGroup"));
  exports.Set("distributedInfo", Napi::Function::New(env, distributed_info, "distributedInfo"));
}

}  // namespace vicinity
