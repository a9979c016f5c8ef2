// HaloNet blocked local self-attention (Vaswani et al. 2021, "Scaling Local Self-Attention for
// Parameter Efficient Visual Backbones", arXiv:2103.12731, §2.2 and Fig. 2; as timm HaloAttn
// computes it, docs/layers/halo-attention.md), fused with a hand-written backward, as
// `vicinity::halo_attention`. Every tensor is a map, as the 1×1 projections produce it and the
// next layer takes it; no block-layout copy exists on either side of the kernel:
//   q (B, nh·dqk, Hq, Wq): the query map, per head dqk contiguous channels [head 0 | head 1 | …];
//      Hq = nby·bds, Wq = nbx·bds, bds the query block side (block, or block/2 for HaloAttn's
//      strided queries); block (by, bx)'s queries are its bds×bds pixels, raster within the block;
//   kv (B, nh·(dqk + dv), Hb, Wb): the projected map, nby×nbx blocks of block×block; channels per
//      head [k (dqk) | v (dv)] (timm HaloAttn's kv conv), or with grouped_kv [k all heads | v all
//      heads] (timm BottleneckAttn's qkv conv after its q channels);
//      NOT padded: window positions outside the Hb×Wb map read k = v = 0 (timm pads after the
//      projection); with mask_h, mask_w > 0 (HaloAttention's padding 'mask') every key outside
//      [0, mask_h) × [0, mask_w) is masked (−inf) instead, halo padding included;
//   height_rel, width_rel (2·win − 1, dqk), win = block + 2·halo;
//   → out (B, nh·dv, Hq, Wq), per head dv contiguous channels (a contiguous map).
// Every map is read through its own strides (MapStrides), no contiguous() copy: q and kv may be
// channel slices of one conv output (BoTNet passes its qkv map's [q] and [k | v] slices, strided
// in the batch dim), ∂out an expanded or transposed map. The output, and backward's ∂q and ∂kv
// (in the inputs' channel layouts), are contiguous maps.
// For block (by, bx), query (qy, qx) and window element t = (ky, kx), key pixel
// (by·block + ky − halo, bx·block + kx − halo):
//   rel   = q·width_rel[kx − qx + win − 1] + q·height_rel[ky − qy + win − 1]     (Eq. 4, timm)
//   logit = scale·(q·k_t) + rel, or scale·(q·k_t + rel) with scale_pos_embed;
//   out   = Σ_t softmax_t(logit) · v_t.
// Why fused: the composite path materialises the unfolded k and v windows (win²/block² ≈ 3× the
// map) and the (N, nb, bq, win²) logits several times over (content, rel, their sum, softmax),
// and autograd keeps them. Here one block's window tile (win², dqk + dv) and a tile of its logits
// live in a per-thread scratch; forward saves nothing beyond its inputs and output, and backward
// recomputes each block's logits (as flash attention does; PyTorch's CPU flash attention,
// aten/src/ATen/native/cpu/FlashAttentionKernel.cpp, is the model for the tiling).
// How (halo_attention_head.h): at::parallel_for over N = B·nh; a task owns its head's channels of
// every map and gradient, so the k/v gradient scatter of overlapping halo windows needs no atomics.
// Per block the window is gathered channel-major (kᵀ, vᵀ: contiguous row copies, zeros outside the
// map) into 64-byte-aligned scratch, and so are the block's queries (Qᵀ (dqk, bq): bds-long row
// copies from the map); they are taken whole or, for large blocks (MHSA's geometry, block = map
// and halo 0, has win² = bq = 256), in tiles (HaloScratch::query_tile); per tile the products are
// BLAS GEMMs (tile_gemm.h): logits = scale·Q·Kᵀ, relative logits Q·[H; W]ᵀ (bq × 2·(2·win − 1))
// added per (query, key) by offset, a vectorised row softmax, outᵀ = Vᵀ·Pᵀ into the block's
// scratch, copied to the map; backward gathers Qᵀ, outᵀ, ∂outᵀ the same way, recomputes P, then
// dP = ∂out·Vᵀ, ∂V += Pᵀ·∂out, dS = P∘(dP − rowsum(∂out∘out)), ∂q = scale·dS·K + dR·[H; W],
// ∂K += scale·dSᵀ·Q, ∂[H; W] += dRᵀ·Q, where dR sums dS over the keys sharing an offset.
// Determinism: the tables' gradients are summed per task, then over tasks in task order; every
// GEMM sees the same operands at the same alignment whichever thread runs it, and the BLAS is
// held single-threaded inside a task (tile_gemm.h), so results do not depend on the thread count.
// `vicinity::halo_attention_projected` is the same attention with HaloAttention's kv projection
// (a 1×1 conv without padding: one GEMM per image, W·x_b) inside, taking the input map x instead of
// kv: forward projects the whole kv map (kept for backward, as the separate conv's output was);
// backward forms ∂kv for ~1 MiB of images (at least an eighth of the batch) at a time and takes
// each chunk straight on to ∂x_b = Wᵀ·∂kv_b, ∂W += ∂kv_b·x_bᵀ and ∂bias, so the whole ∂kv map never
// exists (with the conv's backward it was most of the layer's peak). Each image's products are
// one task's GEMMs, summed into ∂W in image order, so its bits do not depend on the thread count.
// Deviations: CPU only; no double backward (training never needs it). float32's exponential is a
// vectorisable polynomial (softmax_exp, ≤ ~1 ulp on the softmax's range) instead of libm's expf;
// float64 keeps std::exp.
#include <ATen/ATen.h>
#include <ATen/Dispatch.h>
#include <ATen/Parallel.h>
#include <torch/csrc/autograd/custom_function.h>

#include <algorithm>
#include <cstdint>
#include <tuple>
#include <utility>
#include <vector>

#include "halo_attention_head.h"
#include "kernels.h"
#include "tile_gemm.h"

namespace vicinity {
namespace {

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

HaloGeometry check_inputs(const at::Tensor& q, const at::Tensor& kv, const at::Tensor& hrel, const at::Tensor& wrel,
                          int64_t heads, int64_t block, int64_t halo, int64_t mask_h, int64_t mask_w, double scale,
                          bool scale_pos_embed, bool grouped_kv) {
  TORCH_CHECK(q.dim() == 4, "halo_attention: q must be the query map (B, heads·dqk, Hq, Wq), got shape ", q.sizes());
  TORCH_CHECK(kv.dim() == 4, "halo_attention: kv must be the projected map (B, heads·(dqk+dv), H, W), got shape ",
              kv.sizes());
  TORCH_CHECK(heads >= 1 && block >= 1 && halo >= 0, "halo_attention: heads and block must be ≥ 1 and halo ≥ 0, got ",
              heads, ", ", block, ", ", halo);
  const int64_t B = kv.size(0), Hb = kv.size(2), Wb = kv.size(3);
  TORCH_CHECK(Hb >= 1 && Wb >= 1 && Hb % block == 0 && Wb % block == 0, "halo_attention: the kv map ", Hb, "×", Wb,
              " is not a whole number of ", block, "×", block, " blocks; pad it first");
  TORCH_CHECK(q.size(1) >= heads && q.size(1) % heads == 0, "halo_attention: q has ", q.size(1),
              " channels, which is not heads·dqk for ", heads, " heads (dqk ≥ 1)");
  const int64_t dqk = q.size(1) / heads;
  TORCH_CHECK(kv.size(1) % heads == 0 && kv.size(1) / heads > dqk, "halo_attention: kv has ", kv.size(1),
              " channels, which is not heads·(dqk + dv) for ", heads, " heads and dqk ", dqk);
  const int64_t dv = kv.size(1) / heads - dqk, nby = Hb / block, nbx = Wb / block, win = block + 2 * halo;
  const int64_t bds = q.size(2) / nby;
  TORCH_CHECK(q.size(0) == B && bds >= 1 && q.size(2) == nby * bds && q.size(3) == nbx * bds && block % bds == 0,
              "halo_attention: q has shape ", q.sizes(), " but must be the query map (B = ", B, ", heads·dqk, Hq, Wq) of ",
              nby, "×", nbx, " blocks of bds×bds queries, bds dividing the block ", block, " (Hq = ", nby,
              "·bds, Wq = ", nbx, "·bds)");
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
  return HaloGeometry{B,   heads, dqk, dv, Hb, Wb, block, halo, win, bds, nby, nbx, mask_h, mask_w, scale,
                      scale_pos_embed, grouped_kv};
}

/** out = attention over every head of the maps (parallel over B·nh). */
at::Tensor attend(const HaloGeometry& g, const at::Tensor& q, const at::Tensor& kv, const at::Tensor& tables) {
  at::Tensor out = at::empty({g.B, g.nh * g.dv, g.Hq(), g.Wq()}, q.options());
  const MapStrides qm(q), kvm(kv), om(out);
  AT_DISPATCH_FLOATING_TYPES(q.scalar_type(), "halo_attention_forward", [&] {
    const scalar_t* qp = q.data_ptr<scalar_t>();
    const scalar_t* kvp = kv.data_ptr<scalar_t>();
    scalar_t* op = out.data_ptr<scalar_t>();
    at::parallel_for(0, g.B * g.nh, 1, [&](int64_t begin, int64_t end) {
      tile::SingleThreadedBlas single;
      HaloScratch<scalar_t> s(g, false);
      for (int64_t n = begin; n < end; ++n) {
        const auto kvo = kv_offsets(g, n, kvm);
        forward_head(g, qp + query_map_offset(g, n, g.dqk, qm), qm, kvp + kvo.first, kvp + kvo.second, kvm,
                     tables.data_ptr<scalar_t>(), op + query_map_offset(g, n, g.dv, om), s);
      }
    });
  });
  return out;
}

/**
 * Backward of heads [n0, n1) of the B·nh, n0 a multiple of nh (parallel over them): their channels
 * of ∂q (the whole map's tensor), of ∂kv (gkv holds only images n0/nh … (n1 − 1)/nh) and their
 * table-gradient partials.
 */
void attend_backward(const HaloGeometry& g, const at::Tensor& q, const at::Tensor& kv, const at::Tensor& out,
                     const at::Tensor& gout, const at::Tensor& tables, at::Tensor& gq, at::Tensor& gkv,
                     at::Tensor& partial, int64_t n0, int64_t n1) {
  const int64_t table = g.rows() * g.dqk;
  const MapStrides qm(q), kvm(kv), om(out), gom(gout), gqm(gq), gkvm(gkv);
  AT_DISPATCH_FLOATING_TYPES(q.scalar_type(), "halo_attention_backward", [&] {
    const scalar_t* kvp = kv.data_ptr<scalar_t>();
    scalar_t* gkvp = gkv.data_ptr<scalar_t>();
    at::parallel_for(n0, n1, 1, [&](int64_t begin, int64_t end) {
      tile::SingleThreadedBlas single;
      HaloScratch<scalar_t> scratch(g, true);
      for (int64_t n = begin; n < end; ++n) {
        const auto kvo = kv_offsets(g, n, kvm), gkvo = kv_offsets(g, n - n0, gkvm);
        backward_head(g, q.data_ptr<scalar_t>() + query_map_offset(g, n, g.dqk, qm), qm, kvp + kvo.first,
                      kvp + kvo.second, kvm, out.data_ptr<scalar_t>() + query_map_offset(g, n, g.dv, om), om,
                      gout.data_ptr<scalar_t>() + query_map_offset(g, n, g.dv, gom), gom, tables.data_ptr<scalar_t>(),
                      gq.data_ptr<scalar_t>() + query_map_offset(g, n, g.dqk, gqm), gkvp + gkvo.first,
                      gkvp + gkvo.second, partial.data_ptr<scalar_t>() + n * 2 * table, scratch);
      }
    });
  });
}

/** ∂height_rel, ∂width_rel: the per-head partials summed in head order (the same bits for any thread count). */
std::pair<at::Tensor, at::Tensor> table_grads(const HaloGeometry& g, const at::Tensor& partial) {
  at::Tensor sums = at::zeros({2, g.rows() * g.dqk}, partial.options());
  for (int64_t n = 0; n < partial.size(0); ++n) sums.add_(partial[n]);
  return {sums[0].reshape({g.rows(), g.dqk}), sums[1].reshape({g.rows(), g.dqk})};
}

class HaloAttentionFn : public torch::autograd::Function<HaloAttentionFn> {
 public:
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& q, const at::Tensor& kv, const at::Tensor& hrel,
                            const at::Tensor& wrel, int64_t heads, int64_t block, int64_t halo, int64_t mask_h,
                            int64_t mask_w, double scale, bool scale_pos_embed, bool grouped_kv) {
    const HaloGeometry g =
        check_inputs(q, kv, hrel, wrel, heads, block, halo, mask_h, mask_w, scale, scale_pos_embed, grouped_kv);
    tile::require_blas("halo_attention");
    at::Tensor hc = hrel.contiguous(), wc = wrel.contiguous();
    at::Tensor out = attend(g, q, kv, at::cat({hc, wc}));  // tables (2·rows, dqk): [height_rel; width_rel], one GEMM operand
    ctx->save_for_backward({q, kv, hc, wc, out});
    save_geometry(ctx, heads, block, halo, mask_h, mask_w, scale, scale_pos_embed, grouped_kv);
    return out;
  }

  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    auto s = ctx->get_saved_variables();
    const HaloGeometry g = saved_geometry(ctx, s[0], s[1], s[2], s[3]);
    variable_list result(12);
    if (!grads[0].defined()) return result;
    const at::Tensor &q = s[0], &kv = s[1], &out = s[4], &gout = grads[0];  // gout: any strides (e.g. expanded)
    // The gradients in the inputs' layouts, contiguous (a channel slice's gradient goes back through the slice).
    at::Tensor gq = at::empty(q.sizes(), q.options()), gkv = at::empty(kv.sizes(), kv.options());
    at::Tensor partial = at::zeros({g.B * g.nh, 2, g.rows() * g.dqk}, q.options());  // per head: ∂height_rel, ∂width_rel
    attend_backward(g, q, kv, out, gout, at::cat({s[2], s[3]}), gq, gkv, partial, 0, g.B * g.nh);
    result[0] = gq;
    result[1] = gkv;
    std::tie(result[2], result[3]) = table_grads(g, partial);
    return result;
  }

  static void save_geometry(AutogradContext* ctx, int64_t heads, int64_t block, int64_t halo, int64_t mask_h,
                            int64_t mask_w, double scale, bool scale_pos_embed, bool grouped_kv) {
    ctx->saved_data["ints"] = std::vector<int64_t>{heads, block, halo, mask_h, mask_w};
    ctx->saved_data["scale"] = scale;
    ctx->saved_data["scale_pos_embed"] = scale_pos_embed;
    ctx->saved_data["grouped_kv"] = grouped_kv;
  }

  static HaloGeometry saved_geometry(AutogradContext* ctx, const at::Tensor& q, const at::Tensor& kv,
                                     const at::Tensor& hrel, const at::Tensor& wrel) {
    const std::vector<int64_t> v = ctx->saved_data["ints"].toIntVector();
    return check_inputs(q, kv, hrel, wrel, v[0], v[1], v[2], v[3], v[4], ctx->saved_data["scale"].toDouble(),
                        ctx->saved_data["scale_pos_embed"].toBool(), ctx->saved_data["grouped_kv"].toBool());
  }
};

/** ∂kv is produced for this many bytes of images at a time (at least one image) in the projected op's backward. */
constexpr int64_t kGradChunkBytes = 1 << 20;
/**
 * … or in at most this many chunks: each chunk is two parallel regions, whose start and finish
 * cost ~0.5 ms here (a training batch of 128 in 64 chunks ran the backward 30% slower than whole).
 */
constexpr int64_t kMaxGradChunks = 8;

/** kv_b = W·x_b (+ bias) for every image b: (B, Ckv, H, W) from x (B, C, H, W) contiguous and W (Ckv, C). */
at::Tensor project_kv(const at::Tensor& x, const at::Tensor& w, const at::Tensor& bias) {
  const int64_t B = x.size(0), C = x.size(1), hw = x.size(2) * x.size(3), ckv = w.size(0);
  at::Tensor kv = at::empty({B, ckv, x.size(2), x.size(3)}, x.options());
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "halo_attention_project", [&] {
    const scalar_t *xp = x.data_ptr<scalar_t>(), *wp = w.data_ptr<scalar_t>();
    const scalar_t* bp = bias.defined() ? bias.data_ptr<scalar_t>() : nullptr;
    scalar_t* kvp = kv.data_ptr<scalar_t>();
    at::parallel_for(0, B, 1, [&](int64_t begin, int64_t end) {
      tile::SingleThreadedBlas single;
      for (int64_t b = begin; b < end; ++b) {
        scalar_t* out = kvp + b * ckv * hw;
        tile::gemm<scalar_t>(false, false, ckv, hw, C, scalar_t(1), wp, C, xp + b * C * hw, hw, scalar_t(0), out, hw);
        for (int64_t r = 0; bp != nullptr && r < ckv; ++r) {
          for (int64_t i = 0; i < hw; ++i) out[r * hw + i] += bp[r];
        }
      }
    });
  });
  return kv;
}

/**
 * The projection's backward for images [b0, b1), whose ∂kv is gkv (b1 − b0, Ckv, H, W): ∂x_b = Wᵀ·∂kv_b
 * (written) and ∂W += ∂kv_b·x_bᵀ, ∂bias += Σ ∂kv_b over the pixels. Each image's products are one
 * task's; their sum runs in image order, so the bits do not depend on the thread count.
 */
void project_kv_backward(const at::Tensor& x, const at::Tensor& w, const at::Tensor& gkv, int64_t b0, int64_t b1,
                         at::Tensor& gx, at::Tensor& gw, at::Tensor& gbias) {
  const int64_t C = x.size(1), hw = x.size(2) * x.size(3), ckv = w.size(0);
  at::Tensor wpart = at::empty({b1 - b0, ckv, C}, w.options());  // per image: ∂kv_b·x_bᵀ
  at::Tensor bpart = gbias.defined() ? at::empty({b1 - b0, ckv}, w.options()) : at::Tensor();
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "halo_attention_project_backward", [&] {
    const scalar_t *xp = x.data_ptr<scalar_t>(), *wp = w.data_ptr<scalar_t>(), *gkvp = gkv.data_ptr<scalar_t>();
    scalar_t *gxp = gx.data_ptr<scalar_t>(), *wpp = wpart.data_ptr<scalar_t>();
    scalar_t* bpp = bpart.defined() ? bpart.data_ptr<scalar_t>() : nullptr;
    at::parallel_for(b0, b1, 1, [&](int64_t begin, int64_t end) {
      tile::SingleThreadedBlas single;
      for (int64_t b = begin; b < end; ++b) {
        const scalar_t* g = gkvp + (b - b0) * ckv * hw;
        tile::gemm<scalar_t>(true, false, C, hw, ckv, scalar_t(1), wp, C, g, hw, scalar_t(0), gxp + b * C * hw, hw);
        tile::gemm<scalar_t>(false, true, ckv, C, hw, scalar_t(1), g, hw, xp + b * C * hw, hw, scalar_t(0),
                             wpp + (b - b0) * ckv * C, C);
        for (int64_t r = 0; bpp != nullptr && r < ckv; ++r) {
          scalar_t sum = 0;
          for (int64_t i = 0; i < hw; ++i) sum += g[r * hw + i];
          bpp[(b - b0) * ckv + r] = sum;
        }
      }
    });
  });
  for (int64_t i = 0; i < b1 - b0; ++i) {
    gw.add_(wpart[i]);
    if (gbias.defined()) gbias.add_(bpart[i]);
  }
}

/**
 * HaloAttention's kv projection (a 1×1 conv, timm's `kv`) and the attention as one operator, so
 * that ∂kv never exists whole: backward produces it for a chunk of images at a time
 * (kGradChunkBytes, kMaxGradChunks) and takes each chunk straight on to ∂x, ∂W and ∂bias.
 * Forward keeps the kv map for backward, as the separate conv + halo_attention did (no
 * recomputation).
 */
class HaloAttentionProjectedFn : public torch::autograd::Function<HaloAttentionProjectedFn> {
 public:
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& q, const at::Tensor& x, const at::Tensor& kv_weight,
                            const c10::optional<at::Tensor>& kv_bias, const at::Tensor& hrel, const at::Tensor& wrel,
                            int64_t heads, int64_t block, int64_t halo, int64_t mask_h, int64_t mask_w, double scale,
                            bool scale_pos_embed) {
    TORCH_CHECK(x.dim() == 4, "halo_attention_projected: x must be the input map (B, C, H, W), got shape ", x.sizes());
    TORCH_CHECK(kv_weight.dim() == 4 && kv_weight.size(1) == x.size(1) && kv_weight.size(2) == 1 &&
                    kv_weight.size(3) == 1,
                "halo_attention_projected: kv_weight must be a 1×1 conv weight (heads·(dqk + dv), C = ", x.size(1),
                ", 1, 1), got shape ", kv_weight.sizes());
    const at::Tensor bias = kv_bias.has_value() ? *kv_bias : at::Tensor();
    TORCH_CHECK(!bias.defined() || (bias.dim() == 1 && bias.size(0) == kv_weight.size(0)),
                "halo_attention_projected: kv_bias must be (", kv_weight.size(0), "), got shape ", bias.sizes());
    for (const at::Tensor* t : {&x, &kv_weight, &bias}) {
      TORCH_CHECK(!t->defined() || (t->scalar_type() == q.scalar_type() && t->device().is_cpu()),
                  "halo_attention_projected: x, kv_weight and kv_bias must be CPU tensors of q's dtype ",
                  q.scalar_type(), ", got ", t->scalar_type(), " on ", t->device());
    }
    tile::require_blas("halo_attention_projected");
    const at::Tensor xc = x.contiguous(), w = kv_weight.reshape({kv_weight.size(0), x.size(1)}).contiguous();
    const at::Tensor bc = bias.defined() ? bias.contiguous() : bias;
    at::Tensor kv = project_kv(xc, w, bc);
    const HaloGeometry g =
        check_inputs(q, kv, hrel, wrel, heads, block, halo, mask_h, mask_w, scale, scale_pos_embed, false);
    at::Tensor hc = hrel.contiguous(), wc = wrel.contiguous();
    at::Tensor out = attend(g, q, kv, at::cat({hc, wc}));
    ctx->save_for_backward({q, kv, hc, wc, out, xc, w, bc});
    HaloAttentionFn::save_geometry(ctx, heads, block, halo, mask_h, mask_w, scale, scale_pos_embed, false);
    ctx->saved_data["weight_shape"] = kv_weight.sizes().vec();
    return out;
  }

  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    auto s = ctx->get_saved_variables();
    const HaloGeometry g = HaloAttentionFn::saved_geometry(ctx, s[0], s[1], s[2], s[3]);
    variable_list result(13);
    if (!grads[0].defined()) return result;
    const at::Tensor &q = s[0], &kv = s[1], &out = s[4], &x = s[5], &w = s[6], &bias = s[7], &gout = grads[0];
    at::Tensor gq = at::empty(q.sizes(), q.options()), gx = at::empty(x.sizes(), x.options());
    at::Tensor gw = at::zeros(w.sizes(), w.options()), gbias = bias.defined() ? at::zeros_like(bias) : at::Tensor();
    at::Tensor partial = at::zeros({g.B * g.nh, 2, g.rows() * g.dqk}, q.options());
    const at::Tensor tables = at::cat({s[2], s[3]});
    const int64_t image_bytes = kv.size(1) * g.Hb * g.Wb * static_cast<int64_t>(kv.element_size());
    const int64_t fewest = (g.B + kMaxGradChunks - 1) / kMaxGradChunks;  // images per chunk at kMaxGradChunks
    const int64_t chunk =
        std::clamp<int64_t>(std::max(kGradChunkBytes / image_bytes, fewest), 1, std::max<int64_t>(g.B, 1));
    at::Tensor gkv = at::empty({chunk, kv.size(1), kv.size(2), kv.size(3)}, kv.options());
    for (int64_t b0 = 0; b0 < g.B; b0 += chunk) {
      const int64_t b1 = std::min(g.B, b0 + chunk);
      attend_backward(g, q, kv, out, gout, tables, gq, gkv, partial, b0 * g.nh, b1 * g.nh);
      project_kv_backward(x, w, gkv, b0, b1, gx, gw, gbias);
    }
    result[0] = gq;
    result[1] = gx;
    result[2] = gw.reshape(ctx->saved_data["weight_shape"].toIntVector());
    result[3] = gbias;
    std::tie(result[4], result[5]) = table_grads(g, partial);
    return result;
  }
};

}  // namespace

at::Tensor halo_attention(const at::Tensor& q, const at::Tensor& kv, const at::Tensor& height_rel,
                          const at::Tensor& width_rel, int64_t heads, int64_t block, int64_t halo, int64_t mask_h,
                          int64_t mask_w, double scale, bool scale_pos_embed, bool grouped_kv) {
  return HaloAttentionFn::apply(q, kv, height_rel, width_rel, heads, block, halo, mask_h, mask_w, scale,
                                scale_pos_embed, grouped_kv);
}

at::Tensor halo_attention_projected(const at::Tensor& q, const at::Tensor& x, const at::Tensor& kv_weight,
                                    const c10::optional<at::Tensor>& kv_bias, const at::Tensor& height_rel,
                                    const at::Tensor& width_rel, int64_t heads, int64_t block, int64_t halo,
                                    int64_t mask_h, int64_t mask_w, double scale, bool scale_pos_embed) {
  return HaloAttentionProjectedFn::apply(q, x, kv_weight, kv_bias, height_rel, width_rel, heads, block, halo, mask_h,
                                         mask_w, scale, scale_pos_embed);
}

}  // namespace vicinity
