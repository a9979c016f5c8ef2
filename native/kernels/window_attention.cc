// Per-pixel k×k window products of SASA and NATTEN neighbourhood attention (sasa.ts,
// neighborhood-attention.ts, window-gather.ts), fused with hand-written backwards:
//   window_qk:  logits[n, i, j, t] = Σ_c q[n, i, j, c] · key[n, rows[i] + a·d, cols[j] + b·d, c]
//   window_av:  out[n, i, j, c]    = Σ_t attn[n, i, j, t] · value[n, rows[i] + a·d, cols[j] + b·d, c]
// with t = a·k + b (a-major, as NATTEN and the leaderj1001 unfold order), d the dilation and
// rows/cols the first key row/column of every query row/column (NATTEN's clamped starts, or
// i − ⌊k/2⌋·d for SASA's centred windows). Keys outside the key map contribute nothing (logit 0,
// no value), so the caller masks them (SASA) or never produces them (NATTEN's clamped windows).
// WHY: the composite (an index gather of K and V, or im2col) materialises a k²-fold copy of K and
// V (B·C·k²·H·W floats — 1.2 GB per layer at batch 128 on a 28×28 map) and spends the step in
// memory traffic and page faults; here the windows are read in place, from cache.
// Backward: grad_q / grad_attn are per-query dot products (no races); grad_key / grad_value
// scatter into the key map, so the work is split over n (batch·heads), which owns its key map.
// The window geometry (starts, in-map runs, the parallel visit) is window_geometry.h.
// MACs: each op does out.numel · (c or t) multiply-accumulates, exactly the einsums it replaces.
// Deviation: no double backward (not needed for training; gradcheck is first order).
#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <torch/csrc/autograd/custom_function.h>

#include "kernels.h"
#include "window_geometry.h"

namespace vicinity {
namespace {

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

using window::check_inputs;
using window::for_each_query;
using window::geometry;
using window::with_channels;
using WindowGeometry = window::Geometry;

// logits (N, H, W, k²) = window dot products of q (N, H, W, C) with key (N, Hk, Wk, C).
at::Tensor qk_forward(const at::Tensor& q, const at::Tensor& key, const at::Tensor& rows, const at::Tensor& cols,
                      const WindowGeometry& g) {
  const int64_t c_run = q.size(3), t_size = g.k * g.k;
  at::Tensor out = at::zeros({g.n, g.h, g.w, t_size}, q.options());
  AT_DISPATCH_FLOATING_TYPES(q.scalar_type(), "window_qk", [&] {
    const scalar_t* __restrict__ qp = q.data_ptr<scalar_t>();
    const scalar_t* __restrict__ kp = key.data_ptr<scalar_t>();
    scalar_t* __restrict__ op = out.data_ptr<scalar_t>();
    const int64_t hw = g.h * g.w, hwk = g.hk * g.wk;
    with_channels(c_run, [&](auto fixed) {
      constexpr int64_t kFixed = decltype(fixed)::value;
      const int64_t c = kFixed ? kFixed : c_run;
      for_each_query(g, rows.data_ptr<int64_t>(), cols.data_ptr<int64_t>(), g.n, [&](int64_t n, int64_t p, const int64_t* runs, int64_t count) {
        const scalar_t* __restrict__ qv = qp + (n * hw + p) * c;
        const scalar_t* __restrict__ kn = kp + n * hwk * c;
        scalar_t* __restrict__ ov = op + (n * hw + p) * t_size;
        for (int64_t r = 0; r < count; r++) {
          for (int64_t m = 0; m < runs[3 * r + 2]; m++) {
            const scalar_t* __restrict__ kv = kn + (runs[3 * r + 1] + m * g.d) * c;
            scalar_t acc = 0;
            for (int64_t e = 0; e < c; e++) acc += qv[e] * kv[e];
            ov[runs[3 * r] + m] = acc;
          }
        }
      });
    });
  });
  return out;
}

// out (N, H, W, C) = Σ_t attn (N, H, W, k²) · value (N, Hk, Wk, C) over each window.
at::Tensor av_forward(const at::Tensor& attn, const at::Tensor& value, const at::Tensor& rows, const at::Tensor& cols,
                      const WindowGeometry& g) {
  const int64_t c_run = value.size(3), t_size = g.k * g.k;
  at::Tensor out = at::zeros({g.n, g.h, g.w, c_run}, value.options());
  AT_DISPATCH_FLOATING_TYPES(value.scalar_type(), "window_av", [&] {
    const scalar_t* __restrict__ ap = attn.data_ptr<scalar_t>();
    const scalar_t* __restrict__ vp = value.data_ptr<scalar_t>();
    scalar_t* __restrict__ op = out.data_ptr<scalar_t>();
    const int64_t hw = g.h * g.w, hwk = g.hk * g.wk;
    with_channels(c_run, [&](auto fixed) {
      constexpr int64_t kFixed = decltype(fixed)::value;
      const int64_t c = kFixed ? kFixed : c_run;
      for_each_query(g, rows.data_ptr<int64_t>(), cols.data_ptr<int64_t>(), g.n, [&](int64_t n, int64_t p, const int64_t* runs, int64_t count) {
        const scalar_t* __restrict__ wv = ap + (n * hw + p) * t_size;
        const scalar_t* __restrict__ vn = vp + n * hwk * c;
        scalar_t* __restrict__ ov = op + (n * hw + p) * c;
        if (kFixed > 0) {  // accumulate in registers
          scalar_t acc[kFixed > 0 ? kFixed : 1] = {};
          for (int64_t r = 0; r < count; r++) {
            for (int64_t m = 0; m < runs[3 * r + 2]; m++) {
              const scalar_t wgt = wv[runs[3 * r] + m];
              const scalar_t* __restrict__ vv = vn + (runs[3 * r + 1] + m * g.d) * c;
              for (int64_t e = 0; e < c; e++) acc[e] += wgt * vv[e];
            }
          }
          for (int64_t e = 0; e < c; e++) ov[e] = acc[e];
        } else {
          for (int64_t r = 0; r < count; r++) {
            for (int64_t m = 0; m < runs[3 * r + 2]; m++) {
              const scalar_t wgt = wv[runs[3 * r] + m];
              const scalar_t* __restrict__ vv = vn + (runs[3 * r + 1] + m * g.d) * c;
              for (int64_t e = 0; e < c; e++) ov[e] += wgt * vv[e];
            }
          }
        }
      });
    });
  });
  return out;
}

// The scatter both backwards share: dst (N, Hk, Wk, C) += Σ over windows weights[t] · src[query].
at::Tensor scatter_to_keys(const at::Tensor& weights, const at::Tensor& src, const at::Tensor& rows,
                           const at::Tensor& cols, const WindowGeometry& g) {
  const int64_t c_run = src.size(3), t_size = g.k * g.k;
  at::Tensor dst = at::zeros({g.n, g.hk, g.wk, c_run}, src.options());
  AT_DISPATCH_FLOATING_TYPES(src.scalar_type(), "window_scatter", [&] {
    const scalar_t* __restrict__ wp = weights.data_ptr<scalar_t>();
    const scalar_t* __restrict__ sp = src.data_ptr<scalar_t>();
    scalar_t* __restrict__ dp = dst.data_ptr<scalar_t>();
    const int64_t hw = g.h * g.w, hwk = g.hk * g.wk;
    with_channels(c_run, [&](auto fixed) {
      constexpr int64_t kFixed = decltype(fixed)::value;
      const int64_t c = kFixed ? kFixed : c_run;
      for_each_query(g, rows.data_ptr<int64_t>(), cols.data_ptr<int64_t>(), g.n, [&](int64_t n, int64_t p, const int64_t* runs, int64_t count) {
        const scalar_t* __restrict__ wv = wp + (n * hw + p) * t_size;
        const scalar_t* __restrict__ sv = sp + (n * hw + p) * c;
        scalar_t* __restrict__ dn = dp + n * hwk * c;
        for (int64_t r = 0; r < count; r++) {
          for (int64_t m = 0; m < runs[3 * r + 2]; m++) {
            const scalar_t wgt = wv[runs[3 * r] + m];
            scalar_t* __restrict__ dv = dn + (runs[3 * r + 1] + m * g.d) * c;
            for (int64_t e = 0; e < c; e++) dv[e] += wgt * sv[e];
          }
        }
      });
    });
  });
  return dst;
}

class WindowQk : public torch::autograd::Function<WindowQk> {
 public:
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& q, const at::Tensor& key, const at::Tensor& rows,
                            const at::Tensor& cols, int64_t k, int64_t d) {
    check_inputs("window_qk", q, key, rows, cols, k, d);
    TORCH_CHECK(q.size(3) == key.size(3), "window_qk: q has ", q.size(3), " channels but key has ", key.size(3));
    at::Tensor qc = q.contiguous(), kc = key.contiguous(), rc = rows.contiguous(), cc = cols.contiguous();
    ctx->save_for_backward({qc, kc, rc, cc});
    ctx->saved_data["k"] = k;
    ctx->saved_data["d"] = d;
    return qk_forward(qc, kc, rc, cc, geometry(qc, kc, k, d));
  }

  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    auto s = ctx->get_saved_variables();
    const WindowGeometry g = geometry(s[0], s[1], ctx->saved_data["k"].toInt(), ctx->saved_data["d"].toInt());
    at::Tensor grad = grads[0].contiguous();
    at::Tensor grad_q = av_forward(grad, s[1], s[2], s[3], g);          // Σ_t g_t · key_t
    at::Tensor grad_key = scatter_to_keys(grad, s[0], s[2], s[3], g);   // key_t += g_t · q
    return {grad_q, grad_key, at::Tensor(), at::Tensor(), at::Tensor(), at::Tensor()};
  }
};

class WindowAv : public torch::autograd::Function<WindowAv> {
 public:
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& attn, const at::Tensor& value,
                            const at::Tensor& rows, const at::Tensor& cols, int64_t k, int64_t d) {
    check_inputs("window_av", attn, value, rows, cols, k, d);
    TORCH_CHECK(attn.size(3) == k * k, "window_av: attn has ", attn.size(3), " window elements, expected k² = ", k * k);
    at::Tensor ac = attn.contiguous(), vc = value.contiguous(), rc = rows.contiguous(), cc = cols.contiguous();
    ctx->save_for_backward({ac, vc, rc, cc});
    ctx->saved_data["k"] = k;
    ctx->saved_data["d"] = d;
    return av_forward(ac, vc, rc, cc, geometry(ac, vc, k, d));
  }

  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    auto s = ctx->get_saved_variables();
    const WindowGeometry g = geometry(s[0], s[1], ctx->saved_data["k"].toInt(), ctx->saved_data["d"].toInt());
    at::Tensor grad = grads[0].contiguous();
    at::Tensor grad_attn = qk_forward(grad, s[1], s[2], s[3], g);       // g · value_t
    at::Tensor grad_value = scatter_to_keys(s[0], grad, s[2], s[3], g); // value_t += attn_t · g
    return {grad_attn, grad_value, at::Tensor(), at::Tensor(), at::Tensor(), at::Tensor()};
  }
};

}  // namespace

at::Tensor window_qk(const at::Tensor& q, const at::Tensor& key, const at::Tensor& rows, const at::Tensor& cols,
                     int64_t kernel_size, int64_t dilation) {
  return WindowQk::apply(q, key, rows, cols, kernel_size, dilation);
}

at::Tensor window_av(const at::Tensor& attn, const at::Tensor& value, const at::Tensor& rows, const at::Tensor& cols,
                     int64_t kernel_size, int64_t dilation) {
  return WindowAv::apply(attn, value, rows, cols, kernel_size, dilation);
}

}  // namespace vicinity

