// c10d's Reducer for DistributedDataParallel (src/distributed/ddp.ts): gradients are averaged in
// buckets while backward still runs. The Reducer hooks each parameter's gradient accumulator;
// when every gradient of a bucket is ready it launches that bucket's allreduce, and at the end of
// backward it waits for all buckets and writes the averages into .grad. Buckets follow PyTorch's
// DDP: a small first bucket (1 MiB) then 25 MiB ones, in reverse parameter order (roughly the
// order backward produces gradients), rebuilt once from the order seen in the first iteration.
#include <torch/csrc/distributed/c10d/reducer.hpp>
#include <torch/version.h>

#include "../core/env_state.h"
#include "../core/errors.h"
#include "../core/tensor.h"
#include "distributed.h"

namespace vicinity {
namespace {

constexpr int64_t kFirstBucketBytes = 1024 * 1024;  // torch.distributed's _DEFAULT_FIRST_BUCKET_BYTES

class ReducerHandle : public Napi::ObjectWrap<ReducerHandle> {
 public:
  static Napi::Function define_class(Napi::Env env) {
    return DefineClass(env, "Reducer", {
        InstanceMethod("prepareForForward", &ReducerHandle::prepare_for_forward),
        InstanceMethod("prepareForBackward", &ReducerHandle::prepare_for_backward),
        InstanceMethod("bucketCount", &ReducerHandle::bucket_count),
    });
  }

  // new Reducer(group, params, names, bucketCapBytes, findUnusedParameters)
  explicit ReducerHandle(const Napi::CallbackInfo& info) : Napi::ObjectWrap<ReducerHandle>(info) {
    auto env = info.Env();
    auto group = unwrap_process_group(env, info[0], "group");
    if (!info[1].IsArray() || !info[2].IsArray()) throw_type(env, "Reducer takes (group, params[], names[], bucketCapBytes, findUnused)");
    auto array = info[1].As<Napi::Array>();
    auto names = info[2].As<Napi::Array>();
    std::vector<at::Tensor> params;
    std::unordered_map<size_t, std::string> param_names;
    for (uint32_t i = 0; i < array.Length(); ++i) {
      params.push_back(TensorHandle::unwrap(env, array.Get(i), "params"));
      if (i < names.Length()) param_names[i] = names.Get(i).As<Napi::String>().Utf8Value();
    }
    if (params.empty()) throw_type(env, "DistributedDataParallel: the model has no parameters that require gradients");
    int64_t cap = info[3].As<Napi::Number>().Int64Value();
    bool find_unused = info[4].ToBoolean().Value();
    guarded(env, [&] {
      std::vector<bool> sparse(params.size(), false);
      std::vector<size_t> limits{static_cast<size_t>(kFirstBucketBytes), static_cast<size_t>(cap)};
      auto [buckets, per_bucket_limits] = c10d::compute_bucket_assignment_by_size(params, limits, sparse);
      std::reverse(buckets.begin(), buckets.end());
      std::reverse(per_bucket_limits.begin(), per_bucket_limits.end());
      bucket_count_ = buckets.size();
#if TORCH_VERSION_MAJOR >= 2
      std::vector<int64_t> rebuild_limits{kFirstBucketBytes, cap};
      reducer_ = std::make_shared<c10d::Reducer>(
          params, buckets, group, sparse, cap, find_unused, /*gradient_as_bucket_view=*/false, param_names,
          kFirstBucketBytes, /*skip_all_reduce_unused_params=*/false, /*use_python_reducer=*/false, rebuild_limits);
#else
      reducer_ = std::make_shared<c10d::Reducer>(
          params, buckets, per_bucket_limits, group, sparse, cap, find_unused, /*gradient_as_bucket_view=*/false,
          param_names, kFirstBucketBytes);
#endif
    });
  }

 private:
  // Before each forward whose backward synchronises: rebuilds the buckets once, in the order the
  // first backward produced the gradients (rank 0's order, broadcast, so all ranks agree).
  Napi::Value prepare_for_forward(const Napi::CallbackInfo& info) {
    auto env = info.Env();
    return guarded(env, [&] { return Napi::Boolean::New(env, reducer_->rebuild_buckets()); });
  }

  // After such a forward: the next backward's gradients are averaged. `outputs` lets the Reducer
  // find unused parameters (when enabled). Skipping this call is no_sync: gradients accumulate locally.
  Napi::Value prepare_for_backward(const Napi::CallbackInfo& info) {
    auto env = info.Env();
    std::vector<at::Tensor> outputs;
    if (info.Length() > 0 && info[0].IsArray()) {
      auto array = info[0].As<Napi::Array>();
      for (uint32_t i = 0; i < array.Length(); ++i) outputs.push_back(TensorHandle::unwrap(env, array.Get(i), "outputs"));
    }
    guarded(env, [&] { reducer_->prepare_for_backward(outputs); });
    return env.Undefined();
  }

  Napi::Value bucket_count(const Napi::CallbackInfo& info) {
    return Napi::Number::New(info.Env(), static_cast<double>(bucket_count_));
  }

  std::shared_ptr<c10d::Reducer> reducer_;
  size_t bucket_count_ = 0;
};

}  // namespace

void register_reducer(Napi::Env env, Napi::Object exports) {
  exports.Set("Reducer", ReducerHandle::define_class(env));
}

}  // namespace vicinity

namespace vicinity {
void register_distributed(Napi::Env env, Napi::Object exports) {
  register_process_group(env, exports);
  register_reducer(env, exports);
  register_sync_batch_norm(env, exports);
}
}  // namespace vicinity
