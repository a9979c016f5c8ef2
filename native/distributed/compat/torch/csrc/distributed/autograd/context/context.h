// Debian's libtorch-dev 1.13 omits the distributed-autograd (RPC) headers that
// c10d/reducer.hpp includes. The Reducer only names these two types (a callback type and a
// shared_ptr member it never touches for plain DDP), so this stand-in is enough to compile
// against it. binding.gyp puts this directory after libtorch's include directories: a libtorch
// that ships the real header (pip's 1.13 and 2.x) uses its own.
#pragma once
#include <ATen/Tensor.h>

#include <functional>
#include <memory>

namespace torch {
namespace distributed {
namespace autograd {

class DistAutogradContext {
 public:
  using GradCallback = std::function<bool(at::Tensor&)>;
};
using ContextPtr = std::shared_ptr<DistAutogradContext>;

}  // namespace autograd
}  // namespace distributed
}  // namespace torch
