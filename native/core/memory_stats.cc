// Exact CPU allocator statistics: bytes held now and the peak since resetPeakMemory(), for
// memory() (src/tensor/memory.ts). At load the addon installs a counting allocator in front of
// libtorch's CPU allocator (c10::SetCPUAllocator with a priority above the default one's 0); it
// delegates every allocation to the previous allocator and keeps a record of its size (and the
// previous allocator's context and deleter) by data pointer, so the free knows what to subtract.
// Counted: every CPU storage libtorch allocates after load through c10::GetCPUAllocator() (all
// ATen CPU tensors, intermediate ones inside ops included); not counted: memory from before the
// addon loaded, libraries' private buffers (BLAS/oneDNN workspaces, glibc arenas) and RSS
// overheads — the same bytes torch.cuda.memory_allocated counts on a GPU, for the CPU.
// Cost: one hash-map insert and erase under a sharded lock, and two atomic updates, per allocation.
#include <c10/core/Allocator.h>
#include <c10/core/CPUAllocator.h>
#include <napi.h>

#include <atomic>
#include <cstring>
#include <cstdint>
#include <mutex>
#include <unordered_map>

#include "dispatch.h"

namespace vicinity {
namespace {

struct AllocatorStats {
  std::atomic<int64_t> current{0};
  std::atomic<int64_t> peak{0};
  std::atomic<int64_t> allocations{0};
};

// Leaked on purpose: storages freed during process exit still reach release().
AllocatorStats& stats() {
  static auto* s = new AllocatorStats();
  return *s;
}

/** The previous allocator's context and deleter, and the bytes requested. */
struct Allocation {
  void* context;
  c10::DeleterFnPtr deleter;
  int64_t bytes;
};

// The records of live allocations by data pointer. A DataPtr of this allocator has its data
// pointer as its context (libtorch's raw_allocate, which conv paths use, asserts exactly that),
// so the record cannot travel in the context: it is looked up here, in one of 16 shards so that
// threads allocating at once rarely share a lock.
struct Shard {
  std::mutex mutex;
  std::unordered_map<void*, Allocation> live;
};

Shard& shard_of(void* data) {
  static auto* shards = new Shard[16];  // leaked, as stats()
  return shards[(reinterpret_cast<uintptr_t>(data) >> 6) & 15];
}

void release(void* data) {
  Shard& shard = shard_of(data);
  Allocation a{};
  {
    std::lock_guard<std::mutex> lock(shard.mutex);
    auto it = shard.live.find(data);
    if (it == shard.live.end()) return;  // unreachable: every DataPtr with this deleter has a record
    a = it->second;
    shard.live.erase(it);
  }
  stats().current.fetch_sub(a.bytes, std::memory_order_relaxed);
  if (a.deleter != nullptr) a.deleter(a.context);
}

void account(int64_t bytes) {
  AllocatorStats& s = stats();
  const int64_t now = s.current.fetch_add(bytes, std::memory_order_relaxed) + bytes;
  s.allocations.fetch_add(1, std::memory_order_relaxed);
  int64_t peak = s.peak.load(std::memory_order_relaxed);
  while (now > peak && !s.peak.compare_exchange_weak(peak, now, std::memory_order_relaxed)) {
  }
}

class CountingAllocator final : public c10::Allocator {
 public:
  explicit CountingAllocator(c10::Allocator* inner) : inner_(inner) {}

  // libtorch 1.13 declares allocate() const and 2.x non-const: both are defined (without
  // `override`), so whichever the base class declares is the one overridden.
  c10::DataPtr allocate(size_t n) const { return counted(n); }
  c10::DataPtr allocate(size_t n) { return counted(n); }
  // 2.x only (pure virtual there; an unused extra member on 1.13): storages are host memory.
  void copy_data(void* dest, const void* src, std::size_t count) const { std::memcpy(dest, src, count); }
  c10::DeleterFnPtr raw_deleter() const override { return &release; }

 private:
  c10::DataPtr counted(size_t n) const {
    c10::DataPtr inner = inner_->allocate(n);
    if (n == 0 || inner.get() == nullptr) return inner;
    void* data = inner.get();
    const c10::Device device = inner.device();
    const Allocation record{inner.get_context(), inner.get_deleter(), static_cast<int64_t>(n)};
    Shard& shard = shard_of(data);
    {
      std::lock_guard<std::mutex> lock(shard.mutex);
      shard.live.emplace(data, record);
    }
    inner.release_context();  // ownership moves to the record
    account(record.bytes);
    return c10::DataPtr(data, data, &release, device);
  }

  c10::Allocator* inner_;
};

void install() {
  static std::once_flag once;
  std::call_once(once, [] {
    static auto* counting = new CountingAllocator(c10::GetCPUAllocator());
    c10::SetCPUAllocator(counting, /*priority=*/1);
  });
}

Napi::Value allocator_stats(const Napi::CallbackInfo& info) {
  auto env = info.Env();
  AllocatorStats& s = stats();
  auto out = Napi::Object::New(env);
  out.Set("allocatedBytes", Napi::Number::New(env, static_cast<double>(s.current.load())));
  out.Set("peakAllocatedBytes", Napi::Number::New(env, static_cast<double>(s.peak.load())));
  out.Set("allocations", Napi::Number::New(env, static_cast<double>(s.allocations.load())));
  return out;
}

Napi::Value reset_peak(const Napi::CallbackInfo& info) {
  AllocatorStats& s = stats();
  s.peak.store(s.current.load());
  return info.Env().Undefined();
}

}  // namespace

void register_memory(Napi::Env env, Napi::Object exports) {
  install();
  exports.Set("allocatorStats", Napi::Function::New(env, allocator_stats, "allocatorStats"));
  exports.Set("resetPeakMemory", Napi::Function::New(env, reset_peak, "resetPeakMemory"));
}

}  // namespace vicinity
