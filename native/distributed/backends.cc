// The only translation unit that includes the backends' headers: Gloo's come from Debian's
// libgloo-dev (pip wheels do not ship them; only pointers to Gloo types cross this file), NCCL's
// are compiled in when binding.gyp finds a CUDA libtorch with nccl.h (VICINITY_WITH_NCCL).
#ifndef USE_C10D_GLOO
#define USE_C10D_GLOO
#endif
#include <torch/csrc/distributed/c10d/PrefixStore.hpp>
#include <torch/csrc/distributed/c10d/ProcessGroupGloo.hpp>
#include <torch/version.h>
#ifdef VICINITY_WITH_NCCL
#ifndef USE_C10D_NCCL
#define USE_C10D_NCCL
#endif
#include <torch/csrc/distributed/c10d/ProcessGroupNCCL.hpp>
#endif

#include <cstdlib>

#include "distributed.h"

namespace vicinity {

namespace {

bool is_loopback(const std::string& host) {
  return host == "localhost" || host.rfind("127.", 0) == 0 || host == "::1";
}

std::shared_ptr<::gloo::transport::Device> gloo_device(const std::string& host) {
  if (const char* ifname = std::getenv("GLOO_SOCKET_IFNAME"); ifname && *ifname) {
    return c10d::ProcessGroupGloo::createDeviceForInterface(ifname);
  }
  if (is_loopback(host)) return c10d::ProcessGroupGloo::createDeviceForHostname("127.0.0.1");
  return c10d::ProcessGroupGloo::createDefaultDevice();
}

}  // namespace

bool nccl_compiled_in() {
#ifdef VICINITY_WITH_NCCL
  return true;
#else
  return false;
#endif
}

c10::intrusive_ptr<c10d::ProcessGroup> make_process_group(
    const c10::intrusive_ptr<c10d::Store>& store, int rank, int size, std::chrono::milliseconds timeout,
    const std::string& host, const std::string& backend) {
#ifndef VICINITY_WITH_NCCL
  TORCH_CHECK(backend == "gloo", "the '", backend, "' backend is not compiled into this build of vicinity ",
              "(it needs a CUDA libtorch with NCCL); use backend 'gloo'");
#endif
  // Gloo's own timeout bounds every collective, so a dead or hung peer surfaces as an error.
  auto gloo_options = c10d::ProcessGroupGloo::Options::create(timeout);
  gloo_options->devices.push_back(gloo_device(host));
#if TORCH_VERSION_MAJOR >= 2
  // 2.x: a ProcessGroup dispatches to one Backend per device type.
  auto group = c10::make_intrusive<c10d::ProcessGroup>(store, rank, size);
  auto gloo = c10::make_intrusive<c10d::ProcessGroupGloo>(store, rank, size, gloo_options);
  group->setBackend(c10::DeviceType::CPU, c10d::ProcessGroup::BackendType::GLOO, gloo);
  group->setDefaultBackend(c10d::ProcessGroup::BackendType::GLOO);
#ifdef VICINITY_WITH_NCCL
  if (backend == "nccl") {
    auto nccl_options = c10d::ProcessGroupNCCL::Options::create();
    nccl_options->timeout = timeout;
    // Its own key space: Gloo already rendezvoused on this store under the same rank keys.
    auto nccl = c10::make_intrusive<c10d::ProcessGroupNCCL>(
        c10::make_intrusive<c10d::PrefixStore>("nccl/", store), rank, size, nccl_options);
    group->setBackend(c10::DeviceType::CUDA, c10d::ProcessGroup::BackendType::NCCL, nccl);
    group->setDefaultBackend(c10d::ProcessGroup::BackendType::NCCL);
  }
#endif
  return group;
#else
  // 1.13: each backend is itself a ProcessGroup.
#ifdef VICINITY_WITH_NCCL
  if (backend == "nccl") {
    auto nccl_options = c10d::ProcessGroupNCCL::Options::create();
    nccl_options->timeout = timeout;
    return c10::make_intrusive<c10d::ProcessGroupNCCL>(store, rank, size, nccl_options);
  }
#endif
  return c10::make_intrusive<c10d::ProcessGroupGloo>(store, rank, size, gloo_options);
#endif
}

}  // namespace vicinity
