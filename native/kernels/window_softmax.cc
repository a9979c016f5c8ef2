// Per-pixel window softmax attention in one pass, with a hand-written backward, as
// `vicinity::window_softmax_attention`: NATTEN's neighbourhood attention (Hassani et al.,
// "Neighborhood Attention Transformer", arXiv:2204.07143, Eq. 2–4; neighborhood-attention.ts):
//   s[n, p, t] = scale · q[n, p] · (key[n, w(p, t)] + embed[n mod ne, t]) + bias[n mod nb, p, t]
//   out[n, p]  = Σ_t softmax_t(s[n, p, ·]) · value[n, w(p, t)]
// for the in-map window elements t of query p (window_geometry.h; keys outside the key map are
// left out, i.e. masked), q (N, H, W, C), key and value (N, Hk, Wk, C) — or (B, heads, ·, ·, C)
// views at any strides, n = b·heads + h, read in place; bias (nb, H, W, k²):
// NATTEN's rpb gathered per head (nb = heads, n = b·heads + h); key embedding (ne, k², C): SASA's
// relative embedding r_{a,b} per head (Ramachandran et al., "Stand-Alone Self-Attention in
// Vision Models", arXiv:1906.05909, Eq. 3: q·k + q·r); either may be absent, N a multiple of each.
// Why fused: the composite path (window_qk, + bias, softmax, window_av; window_attention.cc)
// materialises the (N, H·W, k²) logits several times over and autograd keeps the weights; here
// a query row's k² logits live in scratch (window_softmax_rows.h: the row's queries are the
// vector lanes), forward saves only a log-sum-exp per query, and backward recomputes the weights
// (as flash attention does).
// Backward per query: dP_t = dO·v_t, dS_t = P_t (dP_t − Σ_u P_u dP_u); dq = Σ_t dS_t k_t,
// dk_t += dS_t q, dv_t += P_t dO, dbias[t] += dS_t, dembed[t] += dS_t q (dq also takes dS_t e_t).
// The work is split over nb (or ne) tasks, N without either, task h visiting n = h, h + nb, …: it
// owns those n's key-map gradients and bias/embedding slice h, so nothing races and results do
// not depend on the thread count.
// `vicinity::window_softmax_attention_qkv` takes q, key and value packed as one (B, H, W, 3C)
// projection (NA's qkv) and returns their gradient packed the same way (no concatenation).
// Deviations: CPU only; no attention dropout (layers with active dropout take the composite
// path); no double backward.
#include <ATen/ATen.h>
#include <ATen/Dispatch.h>
#include <ATen/Parallel.h>
#include <torch/csrc/autograd/custom_function.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>
#include <tuple>
#include <vector>

#include "kernel_options.h"
#include "kernels.h"
#include "window_geometry.h"
#include "window_softmax_rows.h"

namespace vicinity {
namespace {

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;
using window::Geometry;

// q, key, value come as (N, H, W, C) maps or as (B, nh, H, W, C) ones (n = b·nh + h), at any
// strides: views of the projections, read and written in place.
Geometry geometry_of(const at::Tensor& q, const at::Tensor& key, int64_t k, int64_t d) {
  const int64_t o = q.dim() - 4;
  return {o ? q.size(0) * q.size(1) : q.size(0), q.size(1 + o), q.size(2 + o), key.size(1 + o), key.size(2 + o), k, d};
}

void check(const at::Tensor& q, const at::Tensor& key, const at::Tensor& value, const at::Tensor& rows,
           const at::Tensor& cols, const at::Tensor& bias, const at::Tensor& embed, int64_t k, int64_t d) {
  const char* op = "window_softmax_attention";
  TORCH_CHECK((q.dim() == 4 || q.dim() == 5) && key.dim() == q.dim(), op, ": expected (N, H, W, C) or (B, heads, H, ",
              "W, C) q and key of the same rank, got shapes ", q.sizes(), " and ", key.sizes());
  if (q.dim() == 5) {
    TORCH_CHECK(q.size(0) == key.size(0) && q.size(1) == key.size(1), op, ": q and key must have the same batch and ",
                "heads, got shapes ", q.sizes(), " and ", key.sizes());
  }
  // The per-head checks on one image's heads: (nh, H, W, C) views.
  window::check_inputs(op, q.dim() == 5 ? q.select(0, 0) : q, key.dim() == 5 ? key.select(0, 0) : key, rows, cols, k, d);
  TORCH_CHECK(value.sizes() == key.sizes(), op, ": value must have key's shape ", key.sizes(), ", got ", value.sizes());
  const Geometry g = geometry_of(q, key, k, d);
  const int64_t c = q.size(-1);
  TORCH_CHECK(c == key.size(-1), op, ": q has ", c, " channels but key has ", key.size(-1));
  TORCH_CHECK(q.scalar_type() == key.scalar_type() && q.scalar_type() == value.scalar_type(), op,
              ": q, key and value must share a dtype");
  if (bias.defined()) {
    TORCH_CHECK(bias.dim() == 4 && bias.size(1) == g.h && bias.size(2) == g.w && bias.size(3) == k * k &&
                    bias.size(0) >= 1 && g.n % bias.size(0) == 0,
                op, ": bias must be (nb, H, W, k²) = (nb, ", g.h, ", ", g.w, ", ", k * k,
                ") with nb dividing N = ", g.n, ", got ", bias.sizes());
    TORCH_CHECK(bias.scalar_type() == q.scalar_type(), op, ": bias must have q's dtype");
  }
  if (embed.defined()) {
    TORCH_CHECK(embed.dim() == 3 && embed.size(1) == k * k && embed.size(2) == c && embed.size(0) >= 1 &&
                    g.n % embed.size(0) == 0,
                op, ": key_embed must be (ne, k², C) = (ne, ", k * k, ", ", c, ") with ne dividing N = ",
                g.n, ", got ", embed.sizes());
    TORCH_CHECK(embed.scalar_type() == q.scalar_type(), op, ": key_embed must have q's dtype");
    TORCH_CHECK(!bias.defined() || bias.size(0) == embed.size(0), op, ": bias and key_embed must have as many ",
                "heads, got ", bias.size(0), " and ", embed.size(0));
  }
}

// The leading size of the bias / key embedding (the heads), or 1 without either.
int64_t head_groups(const at::Tensor& bias, const at::Tensor& embed) {
  return bias.defined() ? bias.size(0) : embed.defined() ? embed.size(0) : 1;
}

struct Saved {
  at::Tensor out, lse;
};

// The row geometry of window_softmax_rows.h, its column index and runs in `col_index` (k·lanes
// indices, then k (begin, end, offset) runs: per b the longest stretch of on-map lanes whose
// index is j + offset).
RowGeometry row_geometry(const Geometry& g, int64_t c, const at::Tensor& rows, const at::Tensor& cols,
                         std::vector<int64_t>& col_index) {
  const int64_t lanes = (g.w + kLanes - 1) / kLanes * kLanes;
  const int64_t* cp = cols.data_ptr<int64_t>();
  col_index.assign(g.k * lanes + 3 * g.k, g.wk);
  int64_t* runs = col_index.data() + g.k * lanes;
  for (int64_t b = 0; b < g.k; b++) {
    int64_t* index = col_index.data() + b * lanes;
    for (int64_t j = 0; j < g.w; j++) {
      const int64_t x = cp[j] + b * g.d;
      if (x >= 0 && x < g.wk) index[j] = x;
    }
    int64_t* run = runs + 3 * b;
    run[0] = run[1] = run[2] = 0;
    for (int64_t j = 0; j < g.w;) {
      int64_t end = j + 1;
      if (index[j] != g.wk) {
        while (end < g.w && index[end] != g.wk && index[end] - end == index[j] - j) end++;
        if (end - j > run[1] - run[0]) run[0] = j, run[1] = end, run[2] = index[j] - j;
      }
      j = end;
    }
  }
  return {g.h, g.w, g.hk, g.wk, g.k, g.d, c, lanes, rows.data_ptr<int64_t>(), col_index.data(), runs};
}

// (nb, H, W, k²) → (nb, H, k², lanes), zero-padded: a query row's bias of element t is one lane vector.
at::Tensor planar_bias(const at::Tensor& bias, const RowGeometry& r) {
  return bias.defined() ? at::constant_pad_nd(bias.transpose(2, 3), {0, r.lanes - r.w}).contiguous() : bias;
}

MapStrides strides_of(const at::Tensor& t) {
  return {t.stride(-3), t.stride(-2), t.stride(-1)};
}

// Head n's map of a (N, H, W, C) or (B, nh, H, W, C) tensor.
template <typename scalar_t>
scalar_t* head_map(const at::Tensor& t, int64_t n) {
  const int64_t offset = t.dim() == 5 ? (n / t.size(1)) * t.stride(0) + (n % t.size(1)) * t.stride(1) : n * t.stride(0);
  return t.data_ptr<scalar_t>() + offset;
}

// An uninitialised dense tensor of t's sizes whose dimensions lie in memory in the order of t's
// strides: the output and gradients follow their input's layout (e.g. the projection's), so the
// callers' views of them need no copies.
at::Tensor dense_like(const at::Tensor& t) {
  std::vector<int64_t> order(t.dim());
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(), [&](int64_t a, int64_t b) { return t.stride(a) > t.stride(b); });
  std::vector<int64_t> sizes, inverse(t.dim());
  for (size_t i = 0; i < order.size(); i++) {
    sizes.push_back(t.size(order[i]));
    inverse[order[i]] = static_cast<int64_t>(i);
  }
  return at::empty(sizes, t.options()).permute(inverse);
}

template <typename scalar_t>
HeadInputs<scalar_t> head_inputs(const RowGeometry& r, int64_t n, int64_t nb, const at::Tensor& q,
                                 const at::Tensor& key, const at::Tensor& value, const at::Tensor& bias,
                                 const at::Tensor& embed, double scale) {
  const int64_t tk = r.k * r.k;
  return {head_map<scalar_t>(q, n), head_map<scalar_t>(key, n), head_map<scalar_t>(value, n),
          bias.defined() ? bias.data_ptr<scalar_t>() + (n % nb) * r.h * tk * r.lanes : nullptr,
          embed.defined() ? embed.data_ptr<scalar_t>() + (n % nb) * tk * r.c : nullptr,
          strides_of(q), strides_of(key), strides_of(value), static_cast<scalar_t>(scale)};
}

Saved forward_impl(const at::Tensor& q, const at::Tensor& key, const at::Tensor& value, const at::Tensor& rows,
                   const at::Tensor& cols, const at::Tensor& bias, const at::Tensor& embed, int64_t k, int64_t d,
                   double scale) {
  const Geometry g = geometry_of(q, key, k, d);
  std::vector<int64_t> col_index;
  const RowGeometry r = row_geometry(g, q.size(-1), rows, cols, col_index);
  at::Tensor out = dense_like(value);  // the weighted sum of v, laid out as v
  at::Tensor lse = at::empty({g.n, g.h, g.w}, q.options());
  const int64_t nb = head_groups(bias, embed), hw = g.h * g.w;
  const MapStrides os = strides_of(out);
  const at::Tensor bias_rows = planar_bias(bias, r);
  AT_DISPATCH_FLOATING_TYPES(q.scalar_type(), "window_softmax_attention", [&] {
    at::parallel_for(0, g.n, 1, [&](int64_t begin, int64_t end) {
      RowScratch<scalar_t> s;
      s.size(r, false);
      for (int64_t n = begin; n < end; n++) {
        const HeadInputs<scalar_t> in = head_inputs<scalar_t>(r, n, nb, q, key, value, bias_rows, embed, scale);
        with_width(r.c, [&](auto width) {
          forward_head<width()>(r, in, s, head_map<scalar_t>(out, n), os, lse.data_ptr<scalar_t>() + n * hw);
        });
      }
    });
  });
  return {out, lse};
}

// into: ∂q, ∂key, ∂value tensors (views) to write instead of new ones (the packed op's slices).
variable_list backward_impl(const at::Tensor& grad, const at::Tensor& q, const at::Tensor& key,
                            const at::Tensor& value, const at::Tensor& rows, const at::Tensor& cols,
                            const at::Tensor& bias, const at::Tensor& embed, const at::Tensor& lse, int64_t k,
                            int64_t d, double scale, const variable_list& into = {}) {
  const Geometry g = geometry_of(q, key, k, d);
  std::vector<int64_t> col_index;
  const RowGeometry r = row_geometry(g, q.size(-1), rows, cols, col_index);
  const int64_t nb = head_groups(bias, embed), hw = g.h * g.w, tk = k * k;
  // backward_row writes every element of dq, scatter_columns every one of dk and dv.
  at::Tensor dq = into.empty() ? dense_like(q) : into[0];
  at::Tensor dk = into.empty() ? dense_like(key) : into[1];
  at::Tensor dv = into.empty() ? dense_like(value) : into[2];
  const MapStrides gs = strides_of(grad), dqs = strides_of(dq), dks = strides_of(dk), dvs = strides_of(dv);
  const at::Tensor bias_rows = planar_bias(bias, r);
  at::Tensor db_rows = bias.defined() ? at::zeros_like(bias_rows) : at::Tensor();  // (nb, H, k², lanes)
  at::Tensor de = embed.defined() ? at::zeros(embed.sizes(), embed.options()) : at::Tensor();
  // Task h owns every n ≡ h (mod groups): its key-map gradients and bias / embedding slice h.
  const int64_t groups = bias.defined() || embed.defined() ? nb : g.n;
  AT_DISPATCH_FLOATING_TYPES(q.scalar_type(), "window_softmax_attention_backward", [&] {
    at::parallel_for(0, groups, 1, [&](int64_t begin, int64_t end) {
      RowScratch<scalar_t> s;
      s.size(r, true);
      for (int64_t h = begin; h < end; h++) {
        if (embed.defined()) s.de.assign(tk * r.c * r.lanes, scalar_t(0));
        for (int64_t n = h; n < g.n; n += groups) {
          const HeadInputs<scalar_t> in = head_inputs<scalar_t>(r, n, nb, q, key, value, bias_rows, embed, scale);
          scalar_t* dbias = bias.defined() ? db_rows.data_ptr<scalar_t>() + h * g.h * tk * r.lanes : nullptr;
          with_width(r.c, [&](auto width) {
            backward_head<width()>(r, in, head_map<scalar_t>(grad, n), gs, lse.data_ptr<scalar_t>() + n * hw, s,
                                   head_map<scalar_t>(dq, n), dqs, dbias, head_map<scalar_t>(dk, n), dks,
                                   head_map<scalar_t>(dv, n), dvs);
          });
        }
        if (embed.defined()) {  // Σ over the lanes, once per task
          scalar_t* dst = de.data_ptr<scalar_t>() + h * tk * r.c;
          for (int64_t e = 0; e < tk * r.c; e++) {
            scalar_t acc = 0;
            for (int64_t j = 0; j < r.w; j++) acc += s.de[e * r.lanes + j];
            dst[e] += acc;
          }
        }
      }
    });
  });
  at::Tensor db = bias.defined() ? db_rows.narrow(3, 0, g.w).transpose(2, 3).contiguous() : at::Tensor();
  return {dq, dk, dv, db, de};
}

// An absent optional input travels as an empty 1-D tensor: autograd Functions take no undefined inputs.
at::Tensor given(const at::Tensor& t) { return t.dim() == 1 && t.numel() == 0 ? at::Tensor() : t; }

// The window options both autograd Functions keep for backward.
struct WindowOptions {
  int64_t k, d;
  double scale;
};

void save_options(AutogradContext* ctx, const WindowOptions& o) {
  ctx->saved_data["k"] = o.k;
  ctx->saved_data["d"] = o.d;
  ctx->saved_data["scale"] = o.scale;
}

WindowOptions saved_options(AutogradContext* ctx) {
  return {ctx->saved_data["k"].toInt(), ctx->saved_data["d"].toInt(), ctx->saved_data["scale"].toDouble()};
}

class WindowSoftmaxAttention : public torch::autograd::Function<WindowSoftmaxAttention> {
 public:
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& q, const at::Tensor& key, const at::Tensor& value,
                            const at::Tensor& rows, const at::Tensor& cols, const at::Tensor& bias,
                            const at::Tensor& embed, int64_t k, int64_t d, double scale) {
    const at::Tensor b = given(bias), e = given(embed);
    check(q, key, value, rows, cols, b, e, k, d);
    const at::Tensor& qc = q, &kc = key, &vc = value;  // read in place at their strides
    at::Tensor rc = rows.contiguous(), cc = cols.contiguous();
    at::Tensor bc = b.defined() ? b.contiguous() : bias, ec = e.defined() ? e.contiguous() : embed;
    Saved r = forward_impl(qc, kc, vc, rc, cc, given(bc), given(ec), k, d, scale);
    ctx->save_for_backward({qc, kc, vc, rc, cc, bc, ec, r.lse});
    save_options(ctx, {k, d, scale});
    return r.out;
  }

  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    auto s = ctx->get_saved_variables();
    const at::Tensor& grad = grads[0];  // read at its strides
    const WindowOptions o = saved_options(ctx);
    auto g = backward_impl(grad, s[0], s[1], s[2], s[3], s[4], given(s[5]), given(s[6]), s[7], o.k, o.d, o.scale);
    return {g[0], g[1], g[2], at::Tensor(), at::Tensor(), g[3], g[4], at::Tensor(), at::Tensor(), at::Tensor()};
  }
};

// The packed form: q, key and value as the three C-channel thirds of one projection qkv
// (B, H, W, 3C), each (B, heads, H, W, C/heads), so backward writes their gradients straight into
// one (B, H, W, 3C) tensor — the unpacked op's three gradients would be concatenated into it by
// autograd (split's backward), one projection-sized buffer more at the peak.
class WindowSoftmaxAttentionQkv : public torch::autograd::Function<WindowSoftmaxAttentionQkv> {
 public:
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& qkv, int64_t heads, const at::Tensor& rows,
                            const at::Tensor& cols, const at::Tensor& bias, int64_t k, int64_t d, double scale) {
    const at::Tensor b = given(bias).defined() ? bias.contiguous() : at::Tensor();
    auto [q, key, value] = parts(qkv, heads);
    check(q, key, value, rows, cols, b, at::Tensor(), k, d);
    at::Tensor rc = rows.contiguous(), cc = cols.contiguous();
    Saved r = forward_impl(q, key, value, rc, cc, b, at::Tensor(), k, d, scale);
    ctx->save_for_backward({qkv, rc, cc, b.defined() ? b : bias, r.lse});
    ctx->saved_data["heads"] = heads;
    save_options(ctx, {k, d, scale});
    return r.out;
  }

  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    auto s = ctx->get_saved_variables();
    const at::Tensor& qkv = s[0];
    const int64_t heads = ctx->saved_data["heads"].toInt();
    const at::Tensor bias = given(s[3]);
    at::Tensor dqkv = at::empty(qkv.sizes(), qkv.options());
    auto [q, key, value] = parts(qkv, heads);
    auto [dq, dk, dv] = parts(dqkv, heads);
    const WindowOptions o = saved_options(ctx);
    auto g = backward_impl(grads[0], q, key, value, s[1], s[2], bias, at::Tensor(), s[4], o.k, o.d, o.scale, {dq, dk, dv});
    return {dqkv, at::Tensor(), at::Tensor(), at::Tensor(), g[3], at::Tensor(), at::Tensor(), at::Tensor()};
  }

 private:
  // (B, H, W, 3C) → q, key, value (B, heads, H, W, C/heads) views.
  static std::tuple<at::Tensor, at::Tensor, at::Tensor> parts(const at::Tensor& qkv, int64_t heads) {
    const char* op = "window_softmax_attention_qkv";
    TORCH_CHECK(qkv.dim() == 4, op, ": qkv must be (B, H, W, 3·C), got shape ", qkv.sizes());
    TORCH_CHECK(heads >= 1 && qkv.size(3) % (3 * heads) == 0, op, ": qkv's ", qkv.size(3),
                " channels must split into [q, k, v] × ", heads, " heads; pass a last dimension divisible by 3·heads");
    const int64_t B = qkv.size(0), H = qkv.size(1), W = qkv.size(2), dh = qkv.size(3) / (3 * heads);
    at::Tensor split = qkv.view({B, H, W, 3, heads, dh}).permute({3, 0, 4, 1, 2, 5});  // (3, B, heads, H, W, dh)
    return {split.select(0, 0), split.select(0, 1), split.select(0, 2)};
  }
};

}  // namespace

at::Tensor window_softmax_attention_qkv(const at::Tensor& qkv, int64_t heads, const at::Tensor& rows,
                                        const at::Tensor& cols, const c10::optional<at::Tensor>& bias,
                                        int64_t kernel_size, int64_t dilation, double scale) {
  const at::Tensor b = bias.has_value() && bias->defined() ? *bias : at::empty({0}, qkv.options());
  return WindowSoftmaxAttentionQkv::apply(qkv, heads, rows, cols, b, kernel_size, dilation, scale);
}

at::Tensor window_softmax_attention(const at::Tensor& q, const at::Tensor& key, const at::Tensor& value,
                                    const at::Tensor& rows, const at::Tensor& cols,
                                    const c10::optional<at::Tensor>& bias, const c10::optional<at::Tensor>& key_embed,
                                    int64_t kernel_size, int64_t dilation, double scale) {
  const auto or_empty = [&](const c10::optional<at::Tensor>& t) {
    return t.has_value() && t->defined() ? *t : at::empty({0}, q.options());
  };
  return WindowSoftmaxAttention::apply(q, key, value, rows, cols, or_empty(bias), or_empty(key_embed), kernel_size,
                                       dilation, scale);
}

}  // namespace vicinity
