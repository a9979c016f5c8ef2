// LA-layer sample → aggregate (la-layer.md, Computation steps 4–5; LA paper §3.1 Eq. 6–8 as read
// there), fused on CPU with a hand-written backward, as `vicinity::la_attention`:
//   q (B, m, d, P), key map and value map (B, m, d, H, W) with P = H·W (the output grid),
//   offsets Δp' (B, m, K, 2, P) (t = 0 dy, 1 dx; K = k² points in raster order, ky outer)
//   → y (B, m, d, P). q, key and value are read in place at any image (batch) stride as long as
//   each image's block is contiguous: LALayer passes channel slices of its one q/k/v projection.
// Per batch b, head n, pixel p = (i, j) and kernel point r = (ry, rx) (each in −⌊k/2⌋ … ⌊k/2⌋):
//   key_r   = bilinear(key map, i + ry + dy, j + rx + dx): floor() held constant (one-sided
//             coordinate gradient at integers), each of the 4 corners outside the map reads 0
//             (la-sampling.ts `sampleBilinear`: same corner order, weights and products);
//   value_r = value map at (i + ry, j + rx), 0 outside (la-sampling.ts `windowValues`);
//   'normalized': w_r = Σ_c softplus(key_rc)·q_c / (Σ_c softplus(key_rc) + eps);
//   'softmax':    w   = softmax_r(q·key_r / √d) over the K points, no masking;
//   y_c = Σ_r w_r · value_rc.
// Why fused: the composite path materialises the sampled keys and the window values (B, m, d, K, P)
// several times over (four corner gathers, their weights, softplus, einsum operands) and autograd
// keeps them all; here forward keeps only the weights w (B, m, K, P), so memory is O(B·C·P +
// B·m·K·P) instead of O(B·C·K·P), and backward recomputes the keys from the saved maps.
// How: each (b, n) is one task of at::parallel_for and owns every gradient element it writes (its
// head's slices of q, key, value and offsets), so there are no atomics and the result does not
// depend on the thread count. A task transposes its key and value maps to channels-last (H·W, d),
// so a bilinear corner is one contiguous d-vector, and walks the pixels in chunks: the corners of
// a chunk's points are computed branch-free as structure-of-arrays (vectorised) with their
// bilinear weights, a corner outside the map indexes a zero row appended to the channels-last
// maps (so sampling and the key-gradient scatter need no branch), its sampled keys (chunk·K, d)
// stay in cache, a pixel's K dot products finish eight at a time (vec8.h sum_lanes8), the
// softmax runs over the chunk's pixels as vector lanes (softmax_exp.h's polynomial, ≤ 2 ulp, for
// float32; exp for float64), and softplus and its backward run over the whole chunk through
// ATen's own vectorised CPU kernels (at::cpu::softplus_out, softplus_backward_out), which makes
// them bit-for-bit the composite path's (glibc's scalar log1pf alone took a third of the time).
// Measured (docs/benchmarks.md, "LA-layer fused kernel" and issue 9's run 5): forward + backward
// of a 128×32×28×28 LA-layer take 5.2× (normalized) and 6.6× (softmax) less CPU time than the
// composite path.
// Deviations: CPU only (LALayer keeps the composite path elsewhere); no double backward (the
// backward is not itself differentiable; training never needs it); a NaN or infinite sampling
// position gives a NaN key and NaN offset gradients (the composite also spreads NaN into the
// key-map gradient at the clamped corners).
// Files: la_attention_head.h holds the per-head compute (sampling, aggregation, backward); this
// file the input checks, the parallel loop over heads and the autograd Function.
#include <ATen/ATen.h>
#include <ATen/Dispatch.h>
#include <ATen/Parallel.h>
#include <torch/csrc/autograd/custom_function.h>

#include <algorithm>
#include <string>
#include <vector>

#include "kernel_options.h"
#include "kernels.h"
#include "la_attention_head.h"

namespace vicinity {
namespace {

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

/** Checks every shape, dtype and device; returns the geometry. The messages name the shapes. */
Geometry check_inputs(const at::Tensor& q, const at::Tensor& key, const at::Tensor& value, const at::Tensor& offsets,
                      int64_t kernel_size, bool softmax, double eps) {
  TORCH_CHECK(key.dim() == 5, "la_attention: key must be a map (B, m, d, H, W), got shape ", key.sizes());
  TORCH_CHECK(value.sizes() == key.sizes(), "la_attention: value has shape ", value.sizes(), " but key has shape ",
              key.sizes(), "; both are (B, m, d, H, W) maps on the output grid");
  const int64_t B = key.size(0), m = key.size(1), d = key.size(2), H = key.size(3), W = key.size(4);
  TORCH_CHECK(q.dim() == 4 && q.size(0) == B && q.size(1) == m && q.size(2) == d && q.size(3) == H * W,
              "la_attention: q has shape ", q.sizes(), " but must be (B, m, d, H·W) = [", B, ", ", m, ", ", d, ", ",
              H * W, "] for a key map of shape ", key.sizes());
  TORCH_CHECK(kernel_size >= 1 && kernel_size % 2 == 1, "la_attention: kernel_size must be odd and ≥ 1, got ",
              kernel_size);
  const int64_t K = kernel_size * kernel_size;
  const std::vector<int64_t> expected{B, m, K, 2, H * W};
  TORCH_CHECK(offsets.sizes() == at::IntArrayRef(expected), "la_attention: offsets have shape ", offsets.sizes(),
              " but must be (B, m, K = k², 2, P) = ", at::IntArrayRef(expected), " for key ", key.sizes(),
              " and kernel_size ", kernel_size, "; expand per-pixel offsets over heads and points first");
  TORCH_CHECK(at::isFloatingType(q.scalar_type()), "la_attention: q must be floating point, got ", q.scalar_type());
  for (const at::Tensor* t : {&key, &value, &offsets}) {
    TORCH_CHECK(t->scalar_type() == q.scalar_type(), "la_attention: every input must have q's dtype ",
                q.scalar_type(), ", got ", t->scalar_type(), "; convert them with .to()");
  }
  for (const at::Tensor* t : {&q, &key, &value, &offsets}) {
    TORCH_CHECK(t->device().is_cpu(), "la_attention: a CPU kernel, got a tensor on ", t->device(),
                "; use the composite path (LALayer's implementation 'composite') on other devices");
  }
  TORCH_CHECK(softmax || eps > 0, "la_attention: eps must be > 0 for 'normalized', got ", eps);
  TORCH_CHECK((H + 2) * (W + 2) < (int64_t(1) << 31), "la_attention: a ", H, "×", W,
              " map is too large for the kernel's 32-bit pixel indices");
  const int64_t chunk = std::max<int64_t>(1, std::min<int64_t>(H * W, kChunkElements / std::max<int64_t>(1, K * d)));
  return Geometry{B, m, d, H, W, H * W, kernel_size, K, softmax, eps, chunk};
}

/**
 * `t` as the kernel reads it: each image's (m, d, …) block contiguous, images at any stride — q, k
 * and v may be channel slices of one (B, 3·C, Ho, Wo) projection (LALayer's fused q/k/v conv),
 * read in place — else a contiguous copy.
 */
at::Tensor images_dense(const at::Tensor& t) {
  return t.size(0) > 1 && t.select(0, 0).is_contiguous() ? t : t.contiguous();
}

/** The batch strides (elements) of q, key and value; the kernel's own tensors are contiguous. */
struct InputStrides {
  int64_t q, key, value;
};

/** Runs fn(head slices, scratch) for every (b, n) in parallel, one scratch per thread's range. */
template <typename scalar_t, typename Fn>
void for_each_head(const Geometry& g, const at::TensorOptions& options, const HeadSlices<scalar_t>& base,
                   const InputStrides& in, const Fn& fn) {
  const int64_t map = g.d * g.P, points = g.K * g.P;
  auto shift = [](auto* p, int64_t by) { return p == nullptr ? p : p + by; };
  at::parallel_for(0, g.B * g.m, 1, [&](int64_t begin, int64_t end) {
    Scratch<scalar_t> scratch(g, options);
    for (int64_t t = begin; t < end; ++t) {
      const int64_t b = t / g.m, n = t % g.m;
      const HeadSlices<scalar_t> h{
          shift(base.q, b * in.q + n * map), shift(base.key, b * in.key + n * map),
          shift(base.value, b * in.value + n * map), shift(base.off, t * 2 * points), shift(base.weights, t * points),
          shift(base.y, t * map), shift(base.grad_y, t * map), shift(base.grad_q, t * map),
          shift(base.grad_key, t * map), shift(base.grad_value, t * map), shift(base.grad_off, t * 2 * points)};
      fn(h, scratch);
    }
  });
}

class LaAttention : public torch::autograd::Function<LaAttention> {
 public:
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& q, const at::Tensor& key, const at::Tensor& value,
                            const at::Tensor& offsets, int64_t kernel_size, bool softmax, double eps) {
    const Geometry g = check_inputs(q, key, value, offsets, kernel_size, softmax, eps);
    at::Tensor qc = images_dense(q), kc = images_dense(key), vc = images_dense(value), oc = offsets.contiguous();
    const InputStrides in{qc.stride(0), kc.stride(0), vc.stride(0)};
    at::Tensor y = at::empty({g.B, g.m, g.d, g.P}, q.options());
    at::Tensor weights = at::empty({g.B, g.m, g.K, g.P}, q.options());
    AT_DISPATCH_FLOATING_TYPES(q.scalar_type(), "la_attention_forward", [&] {
      const HeadSlices<scalar_t> base{qc.data_ptr<scalar_t>(), kc.data_ptr<scalar_t>(), vc.data_ptr<scalar_t>(),
                                      oc.data_ptr<scalar_t>(), weights.data_ptr<scalar_t>(), y.data_ptr<scalar_t>(),
                                      nullptr, nullptr, nullptr, nullptr, nullptr};
      with_width(g.d, [&](auto width) {
        for_each_head(g, q.options(), base, in,
                      [&](const HeadSlices<scalar_t>& h, Scratch<scalar_t>& s) { forward_head<width()>(g, h, s); });
      });
    });
    ctx->save_for_backward({qc, kc, vc, oc, weights});
    ctx->saved_data["kernel_size"] = kernel_size;
    ctx->saved_data["softmax"] = softmax;
    ctx->saved_data["eps"] = eps;
    return y;
  }

  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    auto saved = ctx->get_saved_variables();
    const at::Tensor &q = saved[0], &key = saved[1], &value = saved[2], &offsets = saved[3], &weights = saved[4];
    const Geometry g = check_inputs(q, key, value, offsets, ctx->saved_data["kernel_size"].toInt(),
                                    ctx->saved_data["softmax"].toBool(), ctx->saved_data["eps"].toDouble());
    variable_list result(7);  // q, key, value, offsets; none for kernel_size, mode and eps
    if (!grads[0].defined()) return result;
    at::Tensor grad_y = grads[0].contiguous();
    const InputStrides in{q.stride(0), key.stride(0), value.stride(0)};
    at::Tensor grad_q = at::empty(q.sizes(), q.options()), grad_key = at::empty(key.sizes(), key.options());
    at::Tensor grad_value = at::empty(value.sizes(), value.options()), grad_off = at::empty_like(offsets);
    AT_DISPATCH_FLOATING_TYPES(q.scalar_type(), "la_attention_backward", [&] {
      const HeadSlices<scalar_t> base{q.data_ptr<scalar_t>(), key.data_ptr<scalar_t>(), value.data_ptr<scalar_t>(),
                                      offsets.data_ptr<scalar_t>(), weights.data_ptr<scalar_t>(), nullptr,
                                      grad_y.data_ptr<scalar_t>(), grad_q.data_ptr<scalar_t>(),
                                      grad_key.data_ptr<scalar_t>(), grad_value.data_ptr<scalar_t>(),
                                      grad_off.data_ptr<scalar_t>()};
      with_width(g.d, [&](auto width) {
        for_each_head(g, q.options(), base, in,
                      [&](const HeadSlices<scalar_t>& h, Scratch<scalar_t>& s) { backward_head<width()>(g, h, s); });
      });
    });
    result[0] = grad_q;
    result[1] = grad_key;
    result[2] = grad_value;
    result[3] = grad_off;
    return result;
  }
};

}  // namespace

at::Tensor la_attention(const at::Tensor& q, const at::Tensor& key, const at::Tensor& value, const at::Tensor& offsets,
                        int64_t kernel_size, c10::string_view mode, double eps) {
  const bool softmax = mode == "softmax";
  TORCH_CHECK(softmax || mode == "normalized", "la_attention: mode must be 'normalized' or 'softmax', got '",
              std::string(mode), "'");
  return LaAttention::apply(q, key, value, offsets, kernel_size, softmax, eps);
}

}  // namespace vicinity
