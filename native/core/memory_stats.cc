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
//
// Large blocks are cached: glibc serves allocations above its mmap threshold (at most 32 MiB)
// with fresh mappings and unmaps them on free, so each training step page-faulted every large
// activation and gradient in again (clear_page and fault handling were 10–15% of a step's CPU).
// A freed block of ≥ 1 MiB goes to a pool keyed by its size class (sizes rounded up to 1/8 of
// their power of two, so a block serves any request of its class) and the next request of that
// class takes it back, already mapped. The pool holds at most a quarter of the machine's memory
// (blocks beyond go back to the previous allocator), an allocation that fails empties it and
// tries again, and emptyCache() returns it all, as torch.cuda.empty_cache does for the CUDA
// caching allocator. The statistics count requested
// bytes of live storages, cached blocks not included; cachedBytes reports the pool.
#include <c10/core/Allocator.h>
#include <c10/core/CPUAllocator.h>
#include <c10/util/Exception.h>
#include <napi.h>

#include <atomic>
#include <cstring>
#include <cstdint>
#include <map>
#include <mutex>
#include <unordered_map>
#include <unistd.h>
#include <vector>

#include "dispatch.h"

namespace vicinity {
namespace {

struct AllocatorStats {
  std::atomic<int64_t> current{0};
  std::atomic<int64_t> peak{0};
  std::atomic<int64_t> allocations{0};
  std::atomic<int64_t> cached{0};
};

// Leaked on purpose: storages freed during process exit still reach release().
AllocatorStats& stats() {
  static auto* s = new AllocatorStats();
  return *s;
}

/** The previous allocator's context and deleter, the bytes requested and the block's size. */
struct Allocation {
  void* context;
  c10::DeleterFnPtr deleter;
  int64_t bytes;
  int64_t capacity;
};

constexpr int64_t kCachedFrom = int64_t(1) << 20;  // blocks of 1 MiB and more are cached

/** n rounded up to a multiple of 1/8 of its power of two (≤ 12.5% more); n ≥ kCachedFrom. */
int64_t size_class(int64_t n) {
  int64_t power = kCachedFrom;
  while (power * 2 <= n) power *= 2;
  const int64_t step = power / 8;
  return (n + step - 1) / step * step;
}

/** A freed large block: its data pointer and its record (bytes unused while cached). */
struct CachedBlock {
  void* data;
  Allocation record;
};

/** Freed large blocks by size class, mapped and ready for reuse. */
struct BlockCache {
  std::mutex mutex;
  std::map<int64_t, std::vector<CachedBlock>> free;  // capacity → blocks
  int64_t limit = 0;                                 // the most bytes the pool holds
};

BlockCache& cache() {
  static auto* c = [] {
    auto* made = new BlockCache();  // leaked, as stats()
    const long pages = sysconf(_SC_PHYS_PAGES), page = sysconf(_SC_PAGESIZE);
    made->limit = pages > 0 && page > 0 ? static_cast<int64_t>(pages) * page / 4 : int64_t(1) << 30;
    return made;
  }();
  return *c;
}

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
  if (a.capacity >= kCachedFrom) {
    BlockCache& c = cache();
    std::lock_guard<std::mutex> lock(c.mutex);
    if (stats().cached.load(std::memory_order_relaxed) + a.capacity <= c.limit) {
      c.free[a.capacity].push_back(CachedBlock{data, a});
      stats().cached.fetch_add(a.capacity, std::memory_order_relaxed);
      return;
    }
  }
  if (a.deleter != nullptr) a.deleter(a.context);
}

/** A cached block of exactly `capacity` bytes (its record and data), if there is one. */
bool take_cached(int64_t capacity, Allocation* record, void** data) {
  BlockCache& c = cache();
  std::lock_guard<std::mutex> lock(c.mutex);
  auto it = c.free.find(capacity);
  if (it == c.free.end() || it->second.empty()) return false;
  *record = it->second.back().record;
  *data = it->second.back().data;
  it->second.pop_back();
  stats().cached.fetch_sub(capacity, std::memory_order_relaxed);
  return true;
}

/** Returns every cached block to the previous allocator. */
void empty_cache() {
  std::vector<CachedBlock> blocks;
  {
    BlockCache& c = cache();
    std::lock_guard<std::mutex> lock(c.mutex);
    for (auto& entry : c.free) blocks.insert(blocks.end(), entry.second.begin(), entry.second.end());
    c.free.clear();
    stats().cached.store(0, std::memory_order_relaxed);
  }
  for (const CachedBlock& b : blocks) {
    if (b.record.deleter != nullptr) b.record.deleter(b.record.context);
  }
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
    const int64_t bytes = static_cast<int64_t>(n);
    const int64_t capacity = bytes >= kCachedFrom ? size_class(bytes) : bytes;
    Allocation record{};
    void* data = nullptr;
    if (capacity >= kCachedFrom && take_cached(capacity, &record, &data)) {
      record.bytes = bytes;
    } else {
      c10::DataPtr inner = allocate_or_empty_cache(static_cast<size_t>(capacity));
      if (n == 0 || inner.get() == nullptr) return inner;
      data = inner.get();
      record = Allocation{inner.get_context(), inner.get_deleter(), bytes, capacity};
      inner.release_context();  // ownership moves to the record
    }
    Shard& shard = shard_of(data);
    {
      std::lock_guard<std::mutex> lock(shard.mutex);
      shard.live.emplace(data, record);
    }
    account(record.bytes);
    return c10::DataPtr(data, data, &release, c10::Device(c10::DeviceType::CPU));
  }

  // The previous allocator's block; when that fails (out of memory), the cache is returned to
  // the system and the request tried once more, as PyTorch's CUDA caching allocator does.
  c10::DataPtr allocate_or_empty_cache(size_t n) const {
    try {
      return inner_->allocate(n);
    } catch (const c10::Error&) {
      if (stats().cached.load(std::memory_order_relaxed) == 0) throw;
    }
    empty_cache();
    return inner_->allocate(n);
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
  out.Set("cachedBytes", Napi::Number::New(env, static_cast<double>(s.cached.load())));
  return out;
}

Napi::Value empty_cache_js(const Napi::CallbackInfo& info) {
  empty_cache();
  return info.Env().Undefined();
}

// setCacheLimit(bytes): the most the pool holds from now on (0: cache nothing); empties it first.
Napi::Value set_cache_limit(const Napi::CallbackInfo& info) {
  auto env = info.Env();
  if (info.Length() != 1 || !info[0].IsNumber() || !(info[0].As<Napi::Number>().DoubleValue() >= 0)) {
    Napi::TypeError::New(env, "setCacheLimit: expected a number of bytes ≥ 0").ThrowAsJavaScriptException();
    return env.Undefined();
  }
  empty_cache();
  BlockCache& c = cache();
  std::lock_guard<std::mutex> lock(c.mutex);
  c.limit = static_cast<int64_t>(info[0].As<Napi::Number>().DoubleValue());
  return env.Undefined();
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
  exports.Set("emptyCache", Napi::Function::New(env, empty_cache_js, "emptyCache"));
  exports.Set("setCacheLimit", Napi::Function::New(env, set_cache_limit, "setCacheLimit"));
}

}  // namespace vicinity
