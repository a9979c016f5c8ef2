// Per-pixel window softmax attention in one pass, with a hand-written backward, as
// `vicinity::window_softmax_attention`: NATTEN's neighbourhood attention (Hassani et al.,
// "Neighborhood Attention Transformer", arXiv:2204.07143, Eq. 2–4; neighborhood-attention.ts):
//   s[n, p, t] = q[n, p] · (key[n, w(p, t)] + embed[n mod ne, t]) + bias[n mod nb, p, t]
//   out[n, p]  = Σ_t softmax_t(s[n, p, ·]) · value[n, w(p, t)]                  (q already scaled)
// for the in-map window elements t of query p (window_geometry.h; keys outside the key map are
// left out, i.e. masked), q (N, H, W, C), key and value (N, Hk, Wk, C); bias (nb, H, W, k²):
// NATTEN's rpb gathered per head (nb = heads, n = b·heads + h); key embedding (ne, k², C): SASA's
// relative embedding r_{a,b} per head (Ramachandran et al., "Stand-Alone Self-Attention in
// Vision Models", arXiv:1906.05909, Eq. 3: q·k + q·r); either may be absent, N a multiple of each.
// Why fused: the composite path (window_qk, + bias, softmax, window_av; window_attention.cc)
// materialises the (N, H·W, k²) logits several times over and autograd keeps the weights; here
// a query's k² logits live in registers/scratch, forward saves only a log-sum-exp per query, and
// backward recomputes the weights (as flash attention does).
// Backward per query: dP_t = dO·v_t, dS_t = P_t (dP_t − Σ_u P_u dP_u); dq = Σ_t dS_t k_t,
// dk_t += dS_t q, dv_t += P_t dO, dbias[t] += dS_t, dembed[t] += dS_t q (dq also takes dS_t e_t).
// The work is split over nb (or ne) tasks, N without either, task h visiting n = h, h + nb, …: it
// owns those n's key-map gradients and bias/embedding slice h, so nothing races and results do
// not depend on the thread count.
// Deviations: CPU only; no attention dropout (layers with active dropout take the composite
// path); no double backward.
#include <ATen/ATen.h>
#include <ATen/Dispatch.h>
#include <torch/csrc/autograd/custom_function.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

#include "kernels.h"
#include "window_geometry.h"

namespace vicinity {
namespace {

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;
using window::Geometry;

void check(const at::Tensor& q, const at::Tensor& key, const at::Tensor& value, const at::Tensor& rows,
           const at::Tensor& cols, const at::Tensor& bias, const at::Tensor& embed, int64_t k, int64_t d) {
  const char* op = "window_softmax_attention";
  window::check_inputs(op, q, key, rows, cols, k, d);
  TORCH_CHECK(value.sizes() == key.sizes(), op, ": value must have key's shape ", key.sizes(), ", got ", value.sizes());
  TORCH_CHECK(q.size(3) == key.size(3), op, ": q has ", q.size(3), " channels but key has ", key.size(3));
  TORCH_CHECK(q.scalar_type() == key.scalar_type() && q.scalar_type() == value.scalar_type(), op,
              ": q, key and value must share a dtype");
  if (bias.defined()) {
    TORCH_CHECK(bias.dim() == 4 && bias.size(1) == q.size(1) && bias.size(2) == q.size(2) && bias.size(3) == k * k &&
                    bias.size(0) >= 1 && q.size(0) % bias.size(0) == 0,
                op, ": bias must be (nb, H, W, k²) = (nb, ", q.size(1), ", ", q.size(2), ", ", k * k,
                ") with nb dividing N = ", q.size(0), ", got ", bias.sizes());
    TORCH_CHECK(bias.scalar_type() == q.scalar_type(), op, ": bias must have q's dtype");
  }
  if (embed.defined()) {
    TORCH_CHECK(embed.dim() == 3 && embed.size(1) == k * k && embed.size(2) == q.size(3) && embed.size(0) >= 1 &&
                    q.size(0) % embed.size(0) == 0,
                op, ": key_embed must be (ne, k², C) = (ne, ", k * k, ", ", q.size(3), ") with ne dividing N = ",
                q.size(0), ", got ", embed.sizes());
    TORCH_CHECK(embed.scalar_type() == q.scalar_type(), op, ": key_embed must have q's dtype");
    TORCH_CHECK(!bias.defined() || bias.size(0) == embed.size(0), op, ": bias and key_embed must have as many ",
                "heads, got ", bias.size(0), " and ", embed.size(0));
  }
}

// The leading size of the bias / key embedding (the heads), or 1 without either.
int64_t head_groups(const at::Tensor& bias, const at::Tensor& embed) {
  return bias.defined() ? bias.size(0) : embed.defined() ? embed.size(0) : 1;
}

// The logits of one query's in-map window, in visit order; returns their count and max.
template <typename scalar_t, int64_t kFixed>
inline int64_t window_logits(int64_t c, const scalar_t* __restrict__ qv, const scalar_t* __restrict__ kn,
                             const scalar_t* __restrict__ bv, const scalar_t* __restrict__ ev,
                             const int64_t* runs, int64_t count, int64_t d,
                             scalar_t* __restrict__ s, int64_t* __restrict__ where, scalar_t& max) {
  int64_t e = 0;
  max = -std::numeric_limits<scalar_t>::infinity();
  for (int64_t r = 0; r < count; r++) {
    for (int64_t m = 0; m < runs[3 * r + 2]; m++, e++) {
      const int64_t key = runs[3 * r + 1] + m * d;
      const scalar_t* __restrict__ kv = kn + key * c;
      const int64_t t = runs[3 * r] + m;
      scalar_t acc = bv ? bv[t] : scalar_t(0);
      for (int64_t i = 0; i < (kFixed ? kFixed : c); i++) acc += qv[i] * kv[i];
      if (ev) {
        const scalar_t* __restrict__ et = ev + t * c;
        for (int64_t i = 0; i < (kFixed ? kFixed : c); i++) acc += qv[i] * et[i];
      }
      s[e] = acc;
      where[e] = (key << 16) | t;  // key index and window element, packed
      max = std::max(max, acc);
    }
  }
  return e;
}

struct Saved {
  at::Tensor out, lse;
};

Saved forward_impl(const at::Tensor& q, const at::Tensor& key, const at::Tensor& value, const at::Tensor& rows,
                   const at::Tensor& cols, const at::Tensor& bias, const at::Tensor& embed, int64_t k, int64_t d) {
  const Geometry g = window::geometry(q, key, k, d);
  const int64_t c_run = q.size(3), t_size = k * k, hw = g.h * g.w, hwk = g.hk * g.wk;
  at::Tensor out = at::empty(q.sizes(), q.options());
  at::Tensor lse = at::empty({g.n, g.h, g.w}, q.options());
  const int64_t nb = head_groups(bias, embed);
  AT_DISPATCH_FLOATING_TYPES(q.scalar_type(), "window_softmax_attention", [&] {
    const scalar_t* ep = embed.defined() ? embed.data_ptr<scalar_t>() : nullptr;
    const scalar_t* qp = q.data_ptr<scalar_t>();
    const scalar_t* kp = key.data_ptr<scalar_t>();
    const scalar_t* vp = value.data_ptr<scalar_t>();
    const scalar_t* bp = bias.defined() ? bias.data_ptr<scalar_t>() : nullptr;
    scalar_t* op = out.data_ptr<scalar_t>();
    scalar_t* lp = lse.data_ptr<scalar_t>();
    window::with_channels(c_run, [&](auto fixed) {
      constexpr int64_t kFixed = decltype(fixed)::value;
      const int64_t c = kFixed ? kFixed : c_run;
      window::for_each_query(g, rows.data_ptr<int64_t>(), cols.data_ptr<int64_t>(), g.n,
                             [&](int64_t n, int64_t p, const int64_t* runs, int64_t count) {
        thread_local std::vector<scalar_t> s;
        thread_local std::vector<int64_t> where;
        s.resize(t_size);
        where.resize(t_size);
        const scalar_t* bv = bp ? bp + ((n % nb) * hw + p) * t_size : nullptr;
        scalar_t max;
        const scalar_t* ev = ep ? ep + (n % nb) * t_size * c : nullptr;
        const int64_t e = window_logits<scalar_t, kFixed>(c, qp + (n * hw + p) * c, kp + n * hwk * c, bv, ev, runs,
                                                          count, g.d, s.data(), where.data(), max);
        scalar_t sum = 0;
        for (int64_t i = 0; i < e; i++) sum += (s[i] = std::exp(s[i] - max));
        const scalar_t inv = scalar_t(1) / sum;
        scalar_t acc[kFixed > 0 ? kFixed : 64];
        scalar_t* ov = op + (n * hw + p) * c;
        scalar_t* dst = kFixed ? acc : ov;
        std::fill(dst, dst + c, scalar_t(0));
        const scalar_t* vn = vp + n * hwk * c;
        for (int64_t i = 0; i < e; i++) {
          const scalar_t w = s[i] * inv;
          const scalar_t* vv = vn + (where[i] >> 16) * c;
          for (int64_t j = 0; j < c; j++) dst[j] += w * vv[j];
        }
        if (kFixed) std::copy(acc, acc + c, ov);
        lp[n * hw + p] = max + std::log(sum);
      });
    });
  });
  return {out, lse};
}

variable_list backward_impl(const at::Tensor& grad, const at::Tensor& q, const at::Tensor& key,
                            const at::Tensor& value, const at::Tensor& rows, const at::Tensor& cols,
                            const at::Tensor& bias, const at::Tensor& embed, const at::Tensor& lse, int64_t k,
                            int64_t d) {
  const Geometry g = window::geometry(q, key, k, d);
  const int64_t c_run = q.size(3), t_size = k * k, hw = g.h * g.w, hwk = g.hk * g.wk;
  const int64_t nb = head_groups(bias, embed);
  at::Tensor dq = at::empty(q.sizes(), q.options());
  at::Tensor dk = at::zeros(key.sizes(), key.options());
  at::Tensor dv = at::zeros(value.sizes(), value.options());
  at::Tensor db = bias.defined() ? at::zeros(bias.sizes(), bias.options()) : at::Tensor();
  at::Tensor de = embed.defined() ? at::zeros(embed.sizes(), embed.options()) : at::Tensor();
  AT_DISPATCH_FLOATING_TYPES(q.scalar_type(), "window_softmax_attention_backward", [&] {
    const scalar_t* qp = q.data_ptr<scalar_t>();
    const scalar_t* kp = key.data_ptr<scalar_t>();
    const scalar_t* vp = value.data_ptr<scalar_t>();
    const scalar_t* gp = grad.data_ptr<scalar_t>();
    const scalar_t* lp = lse.data_ptr<scalar_t>();
    const scalar_t* bp = bias.defined() ? bias.data_ptr<scalar_t>() : nullptr;
    scalar_t* dqp = dq.data_ptr<scalar_t>();
    scalar_t* dkp = dk.data_ptr<scalar_t>();
    scalar_t* dvp = dv.data_ptr<scalar_t>();
    scalar_t* dbp = bias.defined() ? db.data_ptr<scalar_t>() : nullptr;
    const scalar_t* ep = embed.defined() ? embed.data_ptr<scalar_t>() : nullptr;
    scalar_t* dep = embed.defined() ? de.data_ptr<scalar_t>() : nullptr;
    window::with_channels(c_run, [&](auto fixed) {
      constexpr int64_t kFixed = decltype(fixed)::value;
      const int64_t c = kFixed ? kFixed : c_run;
      // Task h owns every n ≡ h (mod nb): its key-map gradients and bias / embedding slice h.
      window::for_each_query(g, rows.data_ptr<int64_t>(), cols.data_ptr<int64_t>(),
                             bias.defined() || embed.defined() ? nb : g.n,
                             [&](int64_t n, int64_t p, const int64_t* runs, int64_t count) {
        thread_local std::vector<scalar_t> s, dp;
        thread_local std::vector<int64_t> where;
        s.resize(t_size);
        dp.resize(t_size);
        where.resize(t_size);
        const int64_t row = n * hw + p;
        const scalar_t* qv = qp + row * c;
        const scalar_t* go = gp + row * c;
        const scalar_t* kn = kp + n * hwk * c;
        const scalar_t* vn = vp + n * hwk * c;
        const scalar_t* bv = bp ? bp + ((n % nb) * hw + p) * t_size : nullptr;
        const scalar_t* ev = ep ? ep + (n % nb) * t_size * c : nullptr;
        scalar_t max;
        const int64_t e = window_logits<scalar_t, kFixed>(c, qv, kn, bv, ev, runs, count, g.d, s.data(), where.data(),
                                                          max);
        scalar_t total = 0;  // Σ_u P_u dP_u
        for (int64_t i = 0; i < e; i++) {
          s[i] = std::exp(s[i] - lp[row]);  // P
          const scalar_t* vv = vn + (where[i] >> 16) * c;
          scalar_t acc = 0;
          for (int64_t j = 0; j < c; j++) acc += go[j] * vv[j];
          dp[i] = acc;
          total += s[i] * acc;
        }
        scalar_t dqa[kFixed > 0 ? kFixed : 64];
        scalar_t* dqv = kFixed ? dqa : dqp + row * c;
        std::fill(dqv, dqv + c, scalar_t(0));
        scalar_t* dbv = dbp ? dbp + ((n % nb) * hw + p) * t_size : nullptr;
        for (int64_t i = 0; i < e; i++) {
          const int64_t keyi = where[i] >> 16;
          const scalar_t ds = s[i] * (dp[i] - total);
          const scalar_t* kv = kn + keyi * c;
          scalar_t* dkv = dkp + (n * hwk + keyi) * c;
          scalar_t* dvv = dvp + (n * hwk + keyi) * c;
          for (int64_t j = 0; j < c; j++) {
            dqv[j] += ds * kv[j];
            dkv[j] += ds * qv[j];
            dvv[j] += s[i] * go[j];
          }
          const int64_t t = where[i] & 0xffff;
          if (dbv) dbv[t] += ds;
          if (ev) {
            const scalar_t* et = ev + t * c;
            scalar_t* det = dep + ((n % nb) * t_size + t) * c;
            for (int64_t j = 0; j < c; j++) {
              dqv[j] += ds * et[j];
              det[j] += ds * qv[j];
            }
          }
        }
        if (kFixed) std::copy(dqa, dqa + c, dqp + row * c);
      });
    });
  });
  return {dq, dk, dv, db, de};
}

class WindowSoftmaxAttention : public torch::autograd::Function<WindowSoftmaxAttention> {
 public:
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& q, const at::Tensor& key, const at::Tensor& value,
                            const at::Tensor& rows, const at::Tensor& cols, const at::Tensor& bias,
                            const at::Tensor& embed, int64_t k, int64_t d) {
    const at::Tensor b = given(bias), e = given(embed);
    check(q, key, value, rows, cols, b, e, k, d);
    TORCH_CHECK(k * k < (1 << 16), "window_softmax_attention: kernel_size ", k, " is too large (k² must be < 65536)");
    at::Tensor qc = q.contiguous(), kc = key.contiguous(), vc = value.contiguous();
    at::Tensor rc = rows.contiguous(), cc = cols.contiguous();
    at::Tensor bc = b.defined() ? b.contiguous() : bias, ec = e.defined() ? e.contiguous() : embed;
    Saved r = forward_impl(qc, kc, vc, rc, cc, given(bc), given(ec), k, d);
    ctx->save_for_backward({qc, kc, vc, rc, cc, bc, ec, r.lse});
    ctx->saved_data["k"] = k;
    ctx->saved_data["d"] = d;
    return r.out;
  }

  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    auto s = ctx->get_saved_variables();
    at::Tensor grad = grads[0].contiguous();
    auto g = backward_impl(grad, s[0], s[1], s[2], s[3], s[4], given(s[5]), given(s[6]), s[7],
                           ctx->saved_data["k"].toInt(), ctx->saved_data["d"].toInt());
    return {g[0], g[1], g[2], at::Tensor(), at::Tensor(), g[3], g[4], at::Tensor(), at::Tensor()};
  }

 private:
  // An absent optional input travels as an empty 1-D tensor: autograd Functions take no undefined inputs.
  static at::Tensor given(const at::Tensor& t) { return t.dim() == 1 && t.numel() == 0 ? at::Tensor() : t; }
};

}  // namespace

at::Tensor window_softmax_attention(const at::Tensor& q, const at::Tensor& key, const at::Tensor& value,
                                    const at::Tensor& rows, const at::Tensor& cols,
                                    const c10::optional<at::Tensor>& bias, const c10::optional<at::Tensor>& key_embed,
                                    int64_t kernel_size, int64_t dilation) {
  const auto or_empty = [&](const c10::optional<at::Tensor>& t) {
    return t.has_value() && t->defined() ? *t : at::empty({0}, q.options());
  };
  return WindowSoftmaxAttention::apply(q, key, value, rows, cols, or_empty(bias), or_empty(key_embed), kernel_size,
                                       dilation);
}

}  // namespace vicinity
