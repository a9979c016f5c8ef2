// Process-level runtime: versions and build facts for `vicinity doctor`, thread settings, RNG
// seeding and generators, memory counters.
#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>
#include <ATen/Parallel.h>
#include <dlfcn.h>

#include <array>
#include <cmath>

#include "build_config.h"  // per backend, in build/<backend>/ (scripts/build-addon.mjs)
#include "convert.h"
#include "dispatch.h"
#include "env_state.h"
#include "errors.h"
#include "tensor.h"


namespace vicinity {
namespace {

// Seeds are integers in [0, 2^53): NaN, fractions or negatives would silently alias other seeds.
uint64_t seed_argument(Napi::Env env, const Napi::Value& v) {
  double d = v.IsNumber() ? v.As<Napi::Number>().DoubleValue() : -1;
  if (!(d >= 0 && d <= 9007199254740991.0 && std::floor(d) == d)) {
    throw_type(env, "seed must be an integer in [0, 2^53), got " + (v.IsNumber() ? std::to_string(d) : std::string("a non-number")));
  }
  return static_cast<uint64_t>(d);
}

using BlasGetThreads = int (*)();
using BlasSetThreads = void (*)(int);

// The BLAS libtorch uses: Debian's libtorch links OpenBLAS, pip's wheel links MKL statically and
// exports its thread functions.
struct Blas {
  const char* name;
  BlasGetThreads get;
  BlasSetThreads set;
};

Blas blas() {
  for (const auto& [name, get, set] : {std::array<const char*, 3>{"OpenBLAS", "openblas_get_num_threads", "openblas_set_num_threads"},
                                       std::array<const char*, 3>{"MKL", "mkl_get_max_threads", "mkl_set_num_threads"}}) {
    if (void* g = dlsym(RTLD_DEFAULT, get)) {
      return {name, reinterpret_cast<BlasGetThreads>(g), reinterpret_cast<BlasSetThreads>(dlsym(RTLD_DEFAULT, set))};
    }
  }
  return {"unknown", nullptr, nullptr};
}

int blas_threads() {
  auto b = blas();
  return b.get ? b.get() : -1;
}

Napi::Value build_info(const Napi::CallbackInfo& info) {
  auto env = info.Env();
  auto out = Napi::Object::New(env);
  out.Set("torchVersion", VICINITY_TORCH_VERSION);
  out.Set("torchSource", VICINITY_TORCH_SOURCE);
  out.Set("torchLabel", VICINITY_TORCH_LABEL);
  out.Set("backend", VICINITY_BACKEND);
  out.Set("cxx11Abi", Napi::Boolean::New(env, _GLIBCXX_USE_CXX11_ABI == 1));
  out.Set("compiler", "g++ " __VERSION__);
  out.Set("napiVersion", Napi::Number::New(env, NAPI_VERSION));
  out.Set("parallelInfo", at::get_parallel_info());
  out.Set("cudaAvailable", Napi::Boolean::New(env, at::hasCUDA()));
  out.Set("cudaDevices", Napi::Number::New(env, at::hasCUDA() ? static_cast<double>(at::getNumGPUs()) : 0.0));
  out.Set("blasThreads", Napi::Number::New(env, blas_threads()));
  out.Set("blasLibrary", blas().name);
  return out;
}

Napi::Value set_num_threads(const Napi::CallbackInfo& info) {
  auto env = info.Env();
  int n = info[0].As<Napi::Number>().Int32Value();
  if (n < 1) throw_type(env, "setNumThreads: thread count must be >= 1, got " + std::to_string(n));
  guarded(env, [&] { at::set_num_threads(n); });
  return env.Undefined();
}

Napi::Value get_num_threads(const Napi::CallbackInfo& info) {
  return Napi::Number::New(info.Env(), at::get_num_threads());
}

Napi::Value set_blas_threads(const Napi::CallbackInfo& info) {
  auto fn = blas().set;
  if (fn) fn(info[0].As<Napi::Number>().Int32Value());
  return Napi::Boolean::New(info.Env(), fn != nullptr);
}

Napi::Value manual_seed(const Napi::CallbackInfo& info) {
  auto env = info.Env();
  guarded(env, [&] {
    at::manual_seed(seed_argument(env, info[0]));  // the CPU generator and every CUDA device's, as torch.manual_seed
  });
  return env.Undefined();
}

// The generator state (mt19937 and friends) lives outside V8's heap: tell the GC its size.
constexpr int64_t kGeneratorBytes = sizeof(at::CPUGeneratorImpl);

void finalize_generator(Napi::Env env, at::Generator* gen) {
  delete gen;
  Napi::MemoryManagement::AdjustExternalMemory(env, -kGeneratorBytes);
}

// A CPU generator of its own for per-call seeds; ops take it as their `generator` argument.
Napi::Value make_generator(const Napi::CallbackInfo& info) {
  auto env = info.Env();
  uint64_t seed = seed_argument(env, info[0]);
  auto* gen = new at::Generator(at::make_generator<at::CPUGeneratorImpl>(seed));
  Napi::MemoryManagement::AdjustExternalMemory(env, kGeneratorBytes);
  return Napi::External<at::Generator>::New(env, gen, finalize_generator);
}

// Re-seeds a generator in place: per-call seeds reuse one generator instead of making one per call.
Napi::Value seed_generator(const Napi::CallbackInfo& info) {
  auto env = info.Env();
  if (!info[0].IsExternal()) throw_type(env, "seedGenerator: expected a generator");
  at::Generator& gen = *info[0].As<Napi::External<at::Generator>>().Data();
  std::lock_guard<std::mutex> lock(gen.mutex());
  gen.set_current_seed(seed_argument(env, info[1]));
  return env.Undefined();
}

Napi::Value memory_counters(const Napi::CallbackInfo& info) {
  auto env = info.Env();
  auto& c = counters();
  auto out = Napi::Object::New(env);
  out.Set("liveTensors", Napi::Number::New(env, static_cast<double>(c.live_tensors.load())));
  out.Set("liveBytes", Napi::Number::New(env, static_cast<double>(c.live_bytes.load())));
  out.Set("createdTensors", Napi::Number::New(env, static_cast<double>(c.created_tensors.load())));
  return out;
}

Napi::Value from_typed_array(const Napi::CallbackInfo& info) {
  auto env = info.Env();
  if (!info[0].IsTypedArray()) throw_type(env, "fromTypedArray: data must be a TypedArray");
  auto shape = int_list(env, info[1], "shape");
  auto dtype = dtype_from_name(env, info[2].As<Napi::String>().Utf8Value());
  return guarded(env, [&]() -> Napi::Value {
    return TensorHandle::wrap(env, tensor_from_typed_array(env, info[0].As<Napi::TypedArray>(), shape, dtype));
  });
}

}  // namespace

void register_runtime(Napi::Env env, Napi::Object exports) {
  exports.Set("buildInfo", Napi::Function::New(env, build_info, "buildInfo"));
  exports.Set("setNumThreads", Napi::Function::New(env, set_num_threads, "setNumThreads"));
  exports.Set("getNumThreads", Napi::Function::New(env, get_num_threads, "getNumThreads"));
  exports.Set("setBlasThreads", Napi::Function::New(env, set_blas_threads, "setBlasThreads"));
  exports.Set("manualSeed", Napi::Function::New(env, manual_seed, "manualSeed"));
  exports.Set("makeGenerator", Napi::Function::New(env, make_generator, "makeGenerator"));
  exports.Set("seedGenerator", Napi::Function::New(env, seed_generator, "seedGenerator"));
  exports.Set("memoryCounters", Napi::Function::New(env, memory_counters, "memoryCounters"));
  exports.Set("fromTypedArray", Napi::Function::New(env, from_typed_array, "fromTypedArray"));
}

}  // namespace vicinity
