// LA-layer offset rounding and locality constraint (Local Attention Layers for Vision
// Transformers, §3.1, Eq. 7; la-layer.md, Computation steps 2–3), fused on CPU with a hand-written
// backward, as `vicinity::la_offsets`:
//   raw (B, …) → Δp' (B, …), per sample b over all its other elements i:
//     r_i = round(raw_i)  (round half to even; `round` false: r_i = raw_i)
//     M = max_i r_i, N = min_i r_i, A = max(M, 0) + max(−N, 0), D = max(A, 1)
//     Δp'_i = (r_i · l) / D
//   backward (r's gradient is the identity, the straight-through estimator):
//     ∂raw_i = (g_i / D) · l + [r_i = M] · g_M / #M + [r_i = N] · g_N / #N, where
//     g_D = −Σ_i g_i · (Δp'_i / D), g_A = g_D · [A ≥ 1], g_M = g_A · [M ≥ 0], g_N = −g_A · [−N ≥ 0]
//   — the gradient autograd computes for the composite path it replaces (la-offsets.ts
//   roundOffsets + constrainOffsets: clamp passes the gradient at its boundary, amax/amin split
//   it evenly between tied extremes), in the same operation order, so forward is bit-identical
//   to it and backward differs only in the order of the Σ and where the x86-64-v3 clone fuses a
//   multiply and an add (C++'s default -ffp-contract=fast).
// Why fused: the composite runs ~13 elementwise ops and 2 reductions forward and as many backward
// over a (B, 2·m·k², H, W) field — at la_resnet_nano's first stage 7.2 M elements, ~130 ms of
// an ~800 ms training step; this is two passes each way, each sample's field in cache.
// How: one at::parallel_for task per sample, which owns its output and gradient elements, so the
// result does not depend on the thread count. Backward saves the input (the straight-through
// rounding is recomputed) and the per-sample M, N, D.
// Deviations: CPU only (LALayer takes the composite path elsewhere); no double backward; NaN
// inputs give NaN outputs for the whole sample, as the composite's amax/amin, but the NaN
// sample's gradient is NaN everywhere (the composite's tie masks leave some elements finite).
#include <ATen/ATen.h>
#include <ATen/Dispatch.h>
#include <ATen/Parallel.h>
#include <torch/csrc/autograd/custom_function.h>

#include <cmath>
#include <cstdint>
#include <type_traits>

#include "kernel_options.h"
#include "kernels.h"

namespace vicinity {
namespace {

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

VICINITY_KERNEL_OPTIONS_BEGIN

/**
 * r_i: torch.round's value (nearest, ties to even, the sign of zero kept), computed as
 * (|x| + 2^p) − 2^p in the default rounding mode, which vectorises where std::nearbyint is a call;
 * |x| ≥ 2^p (p = 23 for float, 52 for double) is already an integer, and NaN passes through.
 */
template <bool Round, typename T>
VICINITY_KERNEL_INLINE T rounded(T x) {
  if constexpr (!Round) return x;
  // GCC builtins: std::fabs and std::copysign, compiled without these options, are not inlined here.
  if constexpr (sizeof(T) == 4) {
    const T a = __builtin_fabsf(x), r = __builtin_copysignf((a + T(8388608.0)) - T(8388608.0), x);  // 2^23
    return a < T(8388608.0) ? r : x;
  } else {
    const T a = __builtin_fabs(x), r = __builtin_copysign((a + T(4503599627370496.0)) - T(4503599627370496.0), x);
    return a < T(4503599627370496.0) ? r : x;  // 2^52
  }
}

/** max(x, lo) with clamp's NaN propagation (std::max would return lo for a NaN x). */
template <typename T>
VICINITY_KERNEL_INLINE T clamp_min(T x, T lo) {
  return x < lo ? lo : x;
}

VICINITY_KERNEL_OPTIONS_END

// The extremes below vectorise only where GCC may treat a < b ? a : b as a min instruction, which
// needs finite-math-only and no-signed-zeros; NaN is therefore detected from the bits (integer
// compares, which those options leave alone), and a −0 maximum for a 0 one changes no result (D
// and the tie tests compare −0 and 0 equal).
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC push_options
#pragma GCC optimize("O3", "no-trapping-math", "finite-math-only", "no-signed-zeros")
#endif

/** M = max r, N = min r over n ≥ 1 values; both NaN if any value is NaN. */
template <typename T>
VICINITY_X86_64_V3_CLONES void extremes(const T* r, int64_t n, T* M, T* N) {
  using Bits = std::conditional_t<sizeof(T) == 4, uint32_t, uint64_t>;
  constexpr Bits kAbs = ~Bits(0) >> 1;                                            // all but the sign bit
  constexpr Bits kInf = sizeof(T) == 4 ? Bits(0x7f800000u) : Bits(0x7ff0000000000000ull);
  T lo[8], hi[8];
  Bits nan[8];
  for (int lane = 0; lane < 8; ++lane) lo[lane] = hi[lane] = r[0], nan[lane] = 0;
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    for (int lane = 0; lane < 8; ++lane) {
      const T x = r[i + lane];
      Bits bits;
      __builtin_memcpy(&bits, &x, sizeof(T));
      lo[lane] = x < lo[lane] ? x : lo[lane];
      hi[lane] = x > hi[lane] ? x : hi[lane];
      nan[lane] |= Bits((bits & kAbs) > kInf);
    }
  }
  for (; i < n; ++i) {
    const T x = r[i];
    Bits bits;
    __builtin_memcpy(&bits, &x, sizeof(T));
    lo[0] = x < lo[0] ? x : lo[0];
    hi[0] = x > hi[0] ? x : hi[0];
    nan[0] |= Bits((bits & kAbs) > kInf);
  }
  T max = hi[0], min = lo[0];
  Bits any_nan = 0;
  for (int lane = 0; lane < 8; ++lane) {
    max = hi[lane] > max ? hi[lane] : max;
    min = lo[lane] < min ? lo[lane] : min;
    any_nan |= nan[lane];
  }
  *M = any_nan ? T(NAN) : max;
  *N = any_nan ? T(NAN) : min;
}

#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC pop_options
#endif

VICINITY_KERNEL_OPTIONS_BEGIN

/** Forward of one sample's n elements: writes out and stats = (M, N, D). */
template <bool Round, typename T>
VICINITY_X86_64_V3_CLONES void forward_sample(const T* raw, T* out, T* stats, int64_t n, T l) {
  for (int64_t i = 0; i < n; ++i) out[i] = rounded<Round>(raw[i]);
  T M, N;
  extremes(out, n, &M, &N);
  const T D = clamp_min(clamp_min(M, T(0)) + clamp_min(-N, T(0)), T(1));  // Eq. (7) denominator, floored
  for (int64_t j = 0; j < n; ++j) out[j] = (out[j] * l) / D;               // Eq. (7)
  stats[0] = M;
  stats[1] = N;
  stats[2] = D;
}

/** Backward of one sample: grad_raw from grad (g), the saved raw input and stats. */
template <bool Round, typename T>
VICINITY_X86_64_V3_CLONES void backward_sample(const T* raw, const T* g, const T* stats, T* grad_raw, int64_t n, T l) {
  const T M = stats[0], N = stats[1], D = stats[2];
  // Σ_i g_i·(Δp'_i / D) in eight interleaved partial sums (vectorises without -ffast-math; the
  // composite's sum differs in the order only) and the tie counts, per lane.
  T partial[8];
  int32_t count_max[8], count_min[8];
  for (int lane = 0; lane < 8; ++lane) partial[lane] = T(0), count_max[lane] = count_min[lane] = 0;
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    for (int lane = 0; lane < 8; ++lane) {
      const T r = rounded<Round>(raw[i + lane]);
      partial[lane] += g[i + lane] * (((r * l) / D) / D);
      count_max[lane] += r == M;
      count_min[lane] += r == N;
    }
  }
  for (; i < n; ++i) {
    const T r = rounded<Round>(raw[i]);
    partial[0] += g[i] * (((r * l) / D) / D);
    count_max[0] += r == M;
    count_min[0] += r == N;
  }
  int64_t ties_max = 0, ties_min = 0;
  for (int lane = 0; lane < 8; ++lane) ties_max += count_max[lane], ties_min += count_min[lane];
  const T dot = ((partial[0] + partial[4]) + (partial[2] + partial[6])) +
                ((partial[1] + partial[5]) + (partial[3] + partial[7]));
  const T gD = -dot;
  const T A = clamp_min(M, T(0)) + clamp_min(-N, T(0));
  const T gA = A >= T(1) ? gD : T(0);
  const T gM = M >= T(0) ? gA : T(0);
  const T gN = -(-N >= T(0) ? gA : T(0));
  // amax/amin backward: the gradient split evenly between the tied extremes (a NaN field has none:
  // its counts are 0 and the division makes every gradient NaN, as its forward is).
  const T per_max = gM / T(ties_max), per_min = gN / T(ties_min);
  for (int64_t j = 0; j < n; ++j) {
    const T r = rounded<Round>(raw[j]);
    grad_raw[j] = ((g[j] / D) * l + (r == M ? per_max : T(0))) + (r == N ? per_min : T(0));
  }
}

VICINITY_KERNEL_OPTIONS_END

void check_input(const at::Tensor& raw, double constraint) {
  TORCH_CHECK(raw.dim() >= 2 && raw.size(0) >= 1 && raw.numel() > 0,
              "la_offsets: raw offsets must be (B, …) with at least one element per sample, got shape ", raw.sizes());
  TORCH_CHECK(raw.numel() / raw.size(0) < (int64_t(1) << 31),
              "la_offsets: at most 2^31 − 1 elements per sample (32-bit tie counts), got shape ", raw.sizes());
  TORCH_CHECK(raw.scalar_type() == at::kFloat || raw.scalar_type() == at::kDouble,
              "la_offsets: raw offsets must be float32 or float64, got ", raw.scalar_type());
  TORCH_CHECK(raw.device().is_cpu(), "la_offsets: a CPU kernel, got a tensor on ", raw.device(),
              "; use the composite path (la-offsets.ts) on other devices");
  TORCH_CHECK(std::isfinite(constraint) && constraint > 0,
              "la_offsets: constraint (Eq. 7's l) must be a positive finite number, got ", constraint);
}

class LaOffsets : public torch::autograd::Function<LaOffsets> {
 public:
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& raw, double constraint, bool round) {
    check_input(raw, constraint);
    at::Tensor input = raw.contiguous();
    const int64_t B = input.size(0), n = input.numel() / B;
    at::Tensor out = at::empty_like(input);
    at::Tensor stats = at::empty({B, 3}, input.options());
    AT_DISPATCH_FLOATING_TYPES(input.scalar_type(), "la_offsets_forward", [&] {
      const scalar_t* x = input.data_ptr<scalar_t>();
      scalar_t *y = out.data_ptr<scalar_t>(), *s = stats.data_ptr<scalar_t>();
      const scalar_t l = static_cast<scalar_t>(constraint);
      at::parallel_for(0, B, 1, [&](int64_t begin, int64_t end) {
        for (int64_t b = begin; b < end; ++b) {
          if (round) {
            forward_sample<true>(x + b * n, y + b * n, s + b * 3, n, l);
          } else {
            forward_sample<false>(x + b * n, y + b * n, s + b * 3, n, l);
          }
        }
      });
    });
    ctx->save_for_backward({input, stats});
    ctx->saved_data["constraint"] = constraint;
    ctx->saved_data["round"] = round;
    return out;
  }

  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    auto saved = ctx->get_saved_variables();
    const at::Tensor &input = saved[0], &stats = saved[1];
    variable_list result(3);  // raw; none for constraint and round
    if (!grads[0].defined()) return result;
    const double constraint = ctx->saved_data["constraint"].toDouble();
    const bool round = ctx->saved_data["round"].toBool();
    at::Tensor grad = grads[0].contiguous();
    at::Tensor grad_raw = at::empty_like(input);
    const int64_t B = input.size(0), n = input.numel() / B;
    AT_DISPATCH_FLOATING_TYPES(input.scalar_type(), "la_offsets_backward", [&] {
      const scalar_t *x = input.data_ptr<scalar_t>(), *g = grad.data_ptr<scalar_t>(), *s = stats.data_ptr<scalar_t>();
      scalar_t* gx = grad_raw.data_ptr<scalar_t>();
      const scalar_t l = static_cast<scalar_t>(constraint);
      at::parallel_for(0, B, 1, [&](int64_t begin, int64_t end) {
        for (int64_t b = begin; b < end; ++b) {
          if (round) {
            backward_sample<true>(x + b * n, g + b * n, s + b * 3, gx + b * n, n, l);
          } else {
            backward_sample<false>(x + b * n, g + b * n, s + b * 3, gx + b * n, n, l);
          }
        }
      });
    });
    result[0] = grad_raw;
    return result;
  }
};

}  // namespace

at::Tensor la_offsets(const at::Tensor& raw, double constraint, bool round) {
  return LaOffsets::apply(raw, constraint, round);
}

}  // namespace vicinity
