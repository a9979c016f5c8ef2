// HaloNet blocked local self-attention (Vaswani et al. 2021, "Scaling Local Self-Attention for
// Parameter Efficient Visual Backbones", arXiv:2103.12731, §2.2 and Fig. 2; as timm HaloAttn
// computes it, docs/layers/halo-attention.md), fused with a hand-written backward, as
// `vicinity::halo_attention`:
//   q (N = B·nh, nb, bq = bds², dqk): each block's queries, raster within the block;
//   kv (B, nh·(dqk + dv), Hb, Wb): the projected map, per head [k (dqk) | v (dv)] channels,
//      NOT padded: window positions outside the Hb×Wb map read k = v = 0 (timm pads after the
//      projection); with mask_h, mask_w > 0 (HaloAttention's padding 'mask') every key outside
//      [0, mask_h) × [0, mask_w) is masked (−inf) instead, halo padding included;
//   height_rel, width_rel (2·win − 1, dqk), win = block + 2·halo;
//   → out (N, nb, bq, dv).
// For block (by, bx), query (qy, qx) and window element t = (ky, kx), key pixel
// (by·block + ky − halo, bx·block + kx − halo):
//   rel   = q·width_rel[kx − qx + win − 1] + q·height_rel[ky − qy + win − 1]     (Eq. 4, timm)
//   logit = scale·(q·k_t) + rel, or scale·(q·k_t + rel) with scale_pos_embed;
//   out   = Σ_t softmax_t(logit) · v_t.
// Why fused: the composite path materialises the unfolded k and v windows (win²/block² ≈ 3× the
// map) and the (N, nb, bq, win²) logits several times over (content, rel, their sum, softmax),
// and autograd keeps them. Here one block's window tile (win², dqk + dv) and its logits
// (bq, win²) live in a per-thread scratch; forward saves nothing beyond its inputs and output,
// and backward recomputes each block's logits (as flash attention does).
// How: at::parallel_for over N (batch·heads); a task copies its head's k/v map to channels-last
// once, and owns its slice of every gradient, so the k/v gradient scatter of overlapping halo
// windows needs no atomics. The relative tables' gradients are summed per task, then over tasks
// in task order, so results do not depend on the thread count.
// Deviations: CPU only; no double backward (training never needs it).
#include <ATen/ATen.h>
#include <ATen/Dispatch.h>
#include <ATen/Parallel.h>
#include <torch/csrc/autograd/custom_function.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

#include "kernels.h"

namespace vicinity {
namespace {

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

struct HaloGeometry {
  int64_t B, nh, dqk, dv, Hb, Wb, block, halo, win, bds, nby, nbx, mask_h, mask_w;
  double scale;
  bool scale_pos_embed;
  int64_t nb() const { return nby * nbx; }
  int64_t bq() const { return bds * bds; }
  int64_t wsz() const { return win * win; }
  int64_t rows() const { return 2 * win - 1; }
};

// The per-query loops vectorise at -O3 (binding.gyp builds -O2), in an AVX2 clone of the two
// per-head functions that GCC's target_clones picks by the CPU at load time (as la_attention_head.h).
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC push_options
#pragma GCC optimize("O3")
#endif
#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__)
#define HALO_CLONES __attribute__((target_clones("avx2", "default")))
#define HALO_INLINE inline __attribute__((always_inline))
#else
#define HALO_CLONES
#define HALO_INLINE inline
#endif

template <typename T>
HALO_INLINE T dot(int64_t d, const T* __restrict__ x, const T* __restrict__ y) {
  T lane[4] = {0, 0, 0, 0};
  int64_t c = 0;
  for (; c + 4 <= d; c += 4) {
    for (int l = 0; l < 4; ++l) lane[l] += x[c + l] * y[c + l];
  }
  T sum = (lane[0] + lane[2]) + (lane[1] + lane[3]);
  for (; c < d; ++c) sum += x[c] * y[c];
  return sum;
}

template <typename T>
HALO_INLINE void axpy(int64_t d, T a, const T* __restrict__ x, T* __restrict__ y) {
  for (int64_t c = 0; c < d; ++c) y[c] += a * x[c];
}

/** Per-thread working memory, reused by every head the thread runs. */
template <typename T>
struct HaloScratch {
  std::vector<T> map;     // (Hb·Wb, dqk + dv): the head's k/v map, channels-last
  std::vector<T> gmap;    // its gradient (backward)
  std::vector<T> kw, vw;  // one window: (win², dqk), (win², dv); zero outside the map
  std::vector<T> gk, gv;  // their gradients (backward)
  std::vector<T> attn;    // (win²): one query's weights
  std::vector<T> rh, rw;  // (win): one query's height and width relative logits
  std::vector<uint8_t> masked;  // (win²)
  explicit HaloScratch(const HaloGeometry& g, bool backward)
      : map(g.Hb * g.Wb * (g.dqk + g.dv)), gmap(backward ? map.size() : 0), kw(g.wsz() * g.dqk), vw(g.wsz() * g.dv),
        gk(backward ? kw.size() : 0), gv(backward ? vw.size() : 0), attn(g.wsz()), rh(g.win), rw(g.win),
        masked(g.wsz()) {}
};

/** Copies head n's k/v channels (dqk + dv, Hb·Wb) to channels-last. */
template <typename T>
HALO_INLINE void load_map(const HaloGeometry& g, const T* kv, int64_t n, HaloScratch<T>& s) {
  const int64_t c_all = g.dqk + g.dv, hw = g.Hb * g.Wb;
  const int64_t b = n / g.nh, h = n % g.nh;
  const T* src = kv + (b * g.nh * c_all + h * c_all) * hw;
  for (int64_t c = 0; c < c_all; ++c) {
    for (int64_t p = 0; p < hw; ++p) s.map[p * c_all + c] = src[c * hw + p];
  }
}

/** Map index of window element t of block (by, bx), or −1 outside the Hb×Wb map. */
HALO_INLINE int64_t window_pixel(const HaloGeometry& g, int64_t by, int64_t bx, int64_t t) {
  const int64_t y = by * g.block + t / g.win - g.halo, x = bx * g.block + t % g.win - g.halo;
  return (y >= 0 && y < g.Hb && x >= 0 && x < g.Wb) ? y * g.Wb + x : -1;
}

/** Gathers block (by, bx)'s window into kw/vw (zeros outside) and its mask. */
template <typename T>
HALO_INLINE void load_window(const HaloGeometry& g, int64_t by, int64_t bx, HaloScratch<T>& s) {
  const int64_t c_all = g.dqk + g.dv;
  for (int64_t t = 0; t < g.wsz(); ++t) {
    const int64_t y = by * g.block + t / g.win - g.halo, x = bx * g.block + t % g.win - g.halo;
    s.masked[t] = g.mask_h > 0 && (y < 0 || y >= g.mask_h || x < 0 || x >= g.mask_w);
    const int64_t p = window_pixel(g, by, bx, t);
    T* kt = s.kw.data() + t * g.dqk;
    T* vt = s.vw.data() + t * g.dv;
    if (p < 0) {
      for (int64_t c = 0; c < g.dqk; ++c) kt[c] = 0;
      for (int64_t c = 0; c < g.dv; ++c) vt[c] = 0;
    } else {
      const T* m = s.map.data() + p * c_all;
      for (int64_t c = 0; c < g.dqk; ++c) kt[c] = m[c];
      for (int64_t c = 0; c < g.dv; ++c) vt[c] = m[g.dqk + c];
    }
  }
}

/** One query's attention weights into s.attn (and its rel logits into s.rh, s.rw). */
template <typename T>
HALO_INLINE void query_weights(const HaloGeometry& g, const T* qv, int64_t qy, int64_t qx, const T* hrel, const T* wrel,
                   HaloScratch<T>& s) {
  const int64_t win = g.win, d = g.dqk;
  for (int64_t k = 0; k < win; ++k) {
    s.rh[k] = dot(d, qv, hrel + (k - qy + win - 1) * d);
    s.rw[k] = dot(d, qv, wrel + (k - qx + win - 1) * d);
  }
  const T scale = static_cast<T>(g.scale);
  T top = -std::numeric_limits<T>::infinity();
  for (int64_t t = 0; t < g.wsz(); ++t) {
    const T content = dot(d, qv, s.kw.data() + t * d);
    const T rel = s.rh[t / win] + s.rw[t % win];
    const T logit = s.masked[t] ? -std::numeric_limits<T>::infinity()
                                : (g.scale_pos_embed ? (content + rel) * scale : content * scale + rel);
    s.attn[t] = logit;
    top = logit > top ? logit : top;
  }
  T sum = 0;
  for (int64_t t = 0; t < g.wsz(); ++t) sum += (s.attn[t] = std::exp(s.attn[t] - top));
  const T inv = T(1) / sum;
  for (int64_t t = 0; t < g.wsz(); ++t) s.attn[t] *= inv;
}

template <typename T>
HALO_CLONES void forward_head(const HaloGeometry& g, int64_t n, const T* q, const T* kv, const T* hrel, const T* wrel, T* out,
                  HaloScratch<T>& s) {
  load_map(g, kv, n, s);
  for (int64_t by = 0; by < g.nby; ++by) {
    for (int64_t bx = 0; bx < g.nbx; ++bx) {
      load_window(g, by, bx, s);
      const int64_t blk = (n * g.nb() + by * g.nbx + bx) * g.bq();
      for (int64_t i = 0; i < g.bq(); ++i) {
        query_weights(g, q + (blk + i) * g.dqk, i / g.bds, i % g.bds, hrel, wrel, s);
        T* o = out + (blk + i) * g.dv;
        for (int64_t c = 0; c < g.dv; ++c) o[c] = 0;
        for (int64_t t = 0; t < g.wsz(); ++t) axpy(g.dv, s.attn[t], s.vw.data() + t * g.dv, o);
      }
    }
  }
}

/** Backward of head n: grad_q slice, the head's k/v gradient, its table-gradient partials. */
template <typename T>
HALO_CLONES void backward_head(const HaloGeometry& g, int64_t n, const T* q, const T* kv, const T* hrel, const T* wrel,
                   const T* out, const T* gout, T* gq, T* gkv, T* ghrel, T* gwrel, HaloScratch<T>& s) {
  const int64_t win = g.win, d = g.dqk, dv = g.dv, c_all = d + dv, hw = g.Hb * g.Wb;
  const T scale = static_cast<T>(g.scale);
  load_map(g, kv, n, s);
  std::fill(s.gmap.begin(), s.gmap.end(), T(0));
  std::vector<T> grh(win), grw(win);
  for (int64_t by = 0; by < g.nby; ++by) {
    for (int64_t bx = 0; bx < g.nbx; ++bx) {
      load_window(g, by, bx, s);
      std::fill(s.gk.begin(), s.gk.end(), T(0));
      std::fill(s.gv.begin(), s.gv.end(), T(0));
      const int64_t blk = (n * g.nb() + by * g.nbx + bx) * g.bq();
      for (int64_t i = 0; i < g.bq(); ++i) {
        const int64_t qy = i / g.bds, qx = i % g.bds;
        const T* qv = q + (blk + i) * d;
        const T* go = gout + (blk + i) * dv;
        query_weights(g, qv, qy, qx, hrel, wrel, s);
        const T di = dot(dv, go, out + (blk + i) * dv);  // Σ_c ∂L/∂out_c · out_c
        for (int64_t k = 0; k < win; ++k) grh[k] = grw[k] = 0;
        T* gqv = gq + (blk + i) * d;
        for (int64_t c = 0; c < d; ++c) gqv[c] = 0;
        for (int64_t t = 0; t < g.wsz(); ++t) {
          const T a = s.attn[t];
          axpy(dv, a, go, s.gv.data() + t * dv);                            // ∂v_t += a_t ∂out
          const T dl = a * (dot(dv, go, s.vw.data() + t * dv) - di);      // ∂logit_t (softmax)
          const T dcontent = dl * scale;
          const T drel = g.scale_pos_embed ? dl * scale : dl;
          grh[t / win] += drel;
          grw[t % win] += drel;
          axpy(d, dcontent, s.kw.data() + t * d, gqv);                      // ∂q += ∂c_t k_t
          axpy(d, dcontent, qv, s.gk.data() + t * d);                       // ∂k_t += ∂c_t q
        }
        for (int64_t k = 0; k < win; ++k) {
          const int64_t rh = k - qy + win - 1, rw = k - qx + win - 1;
          axpy(d, grh[k], hrel + rh * d, gqv);                              // ∂q += Σ ∂rh_k H[rh]
          axpy(d, grw[k], wrel + rw * d, gqv);
          axpy(d, grh[k], qv, ghrel + rh * d);                              // ∂H[rh] += ∂rh_k q
          axpy(d, grw[k], qv, gwrel + rw * d);
        }
      }
      for (int64_t t = 0; t < g.wsz(); ++t) {  // scatter the window's gradients into the head map
        const int64_t p = window_pixel(g, by, bx, t);
        if (p < 0) continue;
        T* m = s.gmap.data() + p * c_all;
        for (int64_t c = 0; c < d; ++c) m[c] += s.gk[t * d + c];
        for (int64_t c = 0; c < dv; ++c) m[d + c] += s.gv[t * dv + c];
      }
    }
  }
  const int64_t b = n / g.nh, h = n % g.nh;
  T* dst = gkv + (b * g.nh * c_all + h * c_all) * hw;
  for (int64_t c = 0; c < c_all; ++c) {
    for (int64_t p = 0; p < hw; ++p) dst[c * hw + p] = s.gmap[p * c_all + c];
  }
}

#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC pop_options
#endif

HaloGeometry check_inputs(const at::Tensor& q, const at::Tensor& kv, const at::Tensor& hrel, const at::Tensor& wrel,
                          int64_t heads, int64_t block, int64_t halo, int64_t mask_h, int64_t mask_w, double scale,
                          bool scale_pos_embed) {
  TORCH_CHECK(q.dim() == 4, "halo_attention: q must be (B·heads, blocks, queries per block, dqk), got shape ", q.sizes());
  TORCH_CHECK(kv.dim() == 4, "halo_attention: kv must be the projected map (B, heads·(dqk+dv), H, W), got shape ",
              kv.sizes());
  TORCH_CHECK(heads >= 1 && block >= 1 && halo >= 0, "halo_attention: heads and block must be ≥ 1 and halo ≥ 0, got ",
              heads, ", ", block, ", ", halo);
  const int64_t B = kv.size(0), Hb = kv.size(2), Wb = kv.size(3), dqk = q.size(3);
  TORCH_CHECK(Hb % block == 0 && Wb % block == 0, "halo_attention: the kv map ", Hb, "×", Wb,
              " is not a whole number of ", block, "×", block, " blocks; pad it first");
  TORCH_CHECK(kv.size(1) % heads == 0 && kv.size(1) / heads > dqk, "halo_attention: kv has ", kv.size(1),
              " channels, which is not heads·(dqk + dv) for ", heads, " heads and dqk ", dqk);
  const int64_t dv = kv.size(1) / heads - dqk, nby = Hb / block, nbx = Wb / block, win = block + 2 * halo;
  const int64_t bq = q.size(2), bds = static_cast<int64_t>(std::lround(std::sqrt(static_cast<double>(bq))));
  TORCH_CHECK(q.size(0) == B * heads && q.size(1) == nby * nbx && bds * bds == bq && (block % bds == 0),
              "halo_attention: q has shape ", q.sizes(), " but must be (B·heads = ", B * heads, ", blocks = ", nby * nbx,
              ", a square number of queries per block dividing the block, dqk)");
  const std::vector<int64_t> table{2 * win - 1, dqk};
  TORCH_CHECK(hrel.sizes() == at::IntArrayRef(table) && wrel.sizes() == at::IntArrayRef(table),
              "halo_attention: height_rel and width_rel must be (2·win − 1, dqk) = ", at::IntArrayRef(table), ", got ",
              hrel.sizes(), " and ", wrel.sizes());
  TORCH_CHECK((mask_h == 0 && mask_w == 0) || (mask_h >= 1 && mask_h <= Hb && mask_w >= 1 && mask_w <= Wb),
              "halo_attention: the mask size ", mask_h, "×", mask_w, " must lie within the ", Hb, "×", Wb,
              " map (or be 0×0: no mask)");
  for (const at::Tensor* t : {&kv, &hrel, &wrel}) {
    TORCH_CHECK(t->scalar_type() == q.scalar_type(), "halo_attention: every input must have q's dtype ",
                q.scalar_type(), ", got ", t->scalar_type());
  }
  for (const at::Tensor* t : {&q, &kv, &hrel, &wrel}) {
    TORCH_CHECK(t->device().is_cpu(), "halo_attention: a CPU kernel, got a tensor on ", t->device(),
                "; use the composite path (setKernelMode('composite')) on other devices");
  }
  return HaloGeometry{B, heads, dqk, dv, Hb, Wb, block, halo, win, bds, nby, nbx, mask_h, mask_w, scale,
                      scale_pos_embed};
}

class HaloAttentionFn : public torch::autograd::Function<HaloAttentionFn> {
 public:
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& q, const at::Tensor& kv, const at::Tensor& hrel,
                            const at::Tensor& wrel, int64_t heads, int64_t block, int64_t halo, int64_t mask_h,
                            int64_t mask_w, double scale, bool scale_pos_embed) {
    const HaloGeometry g = check_inputs(q, kv, hrel, wrel, heads, block, halo, mask_h, mask_w, scale, scale_pos_embed);
    at::Tensor qc = q.contiguous(), kc = kv.contiguous(), hc = hrel.contiguous(), wc = wrel.contiguous();
    at::Tensor out = at::empty({g.B * g.nh, g.nb(), g.bq(), g.dv}, q.options());
    AT_DISPATCH_FLOATING_TYPES(q.scalar_type(), "halo_attention_forward", [&] {
      at::parallel_for(0, g.B * g.nh, 1, [&](int64_t begin, int64_t end) {
        HaloScratch<scalar_t> s(g, false);
        for (int64_t n = begin; n < end; ++n) {
          forward_head(g, n, qc.data_ptr<scalar_t>(), kc.data_ptr<scalar_t>(), hc.data_ptr<scalar_t>(),
                       wc.data_ptr<scalar_t>(), out.data_ptr<scalar_t>(), s);
        }
      });
    });
    ctx->save_for_backward({qc, kc, hc, wc, out});
    ctx->saved_data["ints"] = std::vector<int64_t>{heads, block, halo, mask_h, mask_w};
    ctx->saved_data["scale"] = scale;
    ctx->saved_data["scale_pos_embed"] = scale_pos_embed;
    return out;
  }

  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    auto s = ctx->get_saved_variables();
    const std::vector<int64_t> v = ctx->saved_data["ints"].toIntVector();
    const HaloGeometry g = check_inputs(s[0], s[1], s[2], s[3], v[0], v[1], v[2], v[3], v[4],
                                        ctx->saved_data["scale"].toDouble(), ctx->saved_data["scale_pos_embed"].toBool());
    variable_list result(11);
    if (!grads[0].defined()) return result;
    at::Tensor gout = grads[0].contiguous();
    at::Tensor gq = at::empty_like(s[0]), gkv = at::empty_like(s[1]);
    const int64_t N = g.B * g.nh, table = g.rows() * g.dqk;
    at::Tensor partial = at::zeros({N, 2, table}, s[0].options());  // per head: ∂height_rel, ∂width_rel
    AT_DISPATCH_FLOATING_TYPES(s[0].scalar_type(), "halo_attention_backward", [&] {
      at::parallel_for(0, N, 1, [&](int64_t begin, int64_t end) {
        HaloScratch<scalar_t> scratch(g, true);
        for (int64_t n = begin; n < end; ++n) {
          scalar_t* p = partial.data_ptr<scalar_t>() + n * 2 * table;
          backward_head(g, n, s[0].data_ptr<scalar_t>(), s[1].data_ptr<scalar_t>(), s[2].data_ptr<scalar_t>(),
                        s[3].data_ptr<scalar_t>(), s[4].data_ptr<scalar_t>(), gout.data_ptr<scalar_t>(),
                        gq.data_ptr<scalar_t>(), gkv.data_ptr<scalar_t>(), p, p + table, scratch);
        }
      });
    });
    // Sum over heads in head order (a fixed order: the same bits for any thread count).
    at::Tensor tables = at::zeros({2, table}, s[0].options());
    for (int64_t n = 0; n < N; ++n) tables.add_(partial[n]);
    result[0] = gq;
    result[1] = gkv;
    result[2] = tables[0].reshape({g.rows(), g.dqk});
    result[3] = tables[1].reshape({g.rows(), g.dqk});
    return result;
  }
};

}  // namespace

at::Tensor halo_attention(const at::Tensor& q, const at::Tensor& kv, const at::Tensor& height_rel,
                          const at::Tensor& width_rel, int64_t heads, int64_t block, int64_t halo, int64_t mask_h,
                          int64_t mask_w, double scale, bool scale_pos_embed) {
  return HaloAttentionFn::apply(q, kv, height_rel, width_rel, heads, block, halo, mask_h, mask_w, scale,
                                scale_pos_embed);
}

}  // namespace vicinity
