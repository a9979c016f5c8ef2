// Data-parallel training on libtorch's own c10d (issue 13): process groups over a TCPStore
// (Gloo on CPU, NCCL on CUDA when the libtorch has it), asynchronous collectives whose waits run
// off Node's main thread, and c10d's bucketed gradient Reducer. No collective of our own.
#pragma once
#include <torch/csrc/distributed/c10d/ProcessGroup.hpp>
#include <torch/csrc/distributed/c10d/Store.hpp>
#include <napi.h>

#include <chrono>
#include <string>

namespace vicinity {

// c10d's Work handle (c10d::Work in 2.x, ProcessGroup::Work in older releases).
using WorkPtr = decltype(std::declval<c10d::ProcessGroup&>().barrier());

// The backends (backends.cc, the only translation unit that sees Gloo's and NCCL's headers).
// `host` picks Gloo's network device: GLOO_SOCKET_IFNAME wins, then loopback when the master
// address is a loopback one, else the host's default device.
c10::intrusive_ptr<c10d::ProcessGroup> make_process_group(
    const c10::intrusive_ptr<c10d::Store>& store, int rank, int size, std::chrono::milliseconds timeout,
    const std::string& host, const std::string& backend);
bool nccl_compiled_in();

// The process group behind a JS ProcessGroup handle (throws a TypeError naming `what` otherwise).
c10::intrusive_ptr<c10d::ProcessGroup> unwrap_process_group(Napi::Env env, const Napi::Value& value, const char* what);

void register_process_group(Napi::Env env, Napi::Object exports);
void register_reducer(Napi::Env env, Napi::Object exports);
void register_sync_batch_norm(Napi::Env env, Napi::Object exports);

}  // namespace vicinity
