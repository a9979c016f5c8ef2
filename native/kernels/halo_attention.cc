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
// and autograd keeps them. Here one block's window tile (win², dqk + dv) and a tile of its logits
// live in a per-thread scratch; forward saves nothing beyond its inputs and output, and backward
// recomputes each block's logits (as flash attention does; PyTorch's CPU flash attention,
// aten/src/ATen/native/cpu/FlashAttentionKernel.cpp, is the model for the tiling).
// How: at::parallel_for over N (batch·heads); a task owns its head's slice of every gradient, so
// the k/v gradient scatter of overlapping halo windows needs no atomics. Per block the window is
// gathered channel-major (kᵀ, vᵀ: contiguous row copies, zeros outside the map) into 64-byte-
// aligned scratch, and the block's queries are taken whole or, for large blocks (MHSA's geometry,
// block = map and halo 0, has win² = bq = 256), in tiles (HaloScratch::query_tile); per tile the
// products are BLAS GEMMs (tile_gemm.h): logits = scale·Q·Kᵀ, relative logits Q·[H; W]ᵀ
// (bq × 2·(2·win − 1)) added per (query, key) by offset, a vectorised row softmax, out = P·V;
// backward recomputes P, then
// dP = ∂out·Vᵀ, ∂V += Pᵀ·∂out, dS = P∘(dP − rowsum(∂out∘out)), ∂q = scale·dS·K + dR·[H; W],
// ∂K += scale·dSᵀ·Q, ∂[H; W] += dRᵀ·Q, where dR sums dS over the keys sharing an offset.
// Determinism: the tables' gradients are summed per task, then over tasks in task order; every
// GEMM sees the same operands at the same alignment whichever thread runs it, and the BLAS is
// held single-threaded inside a task (tile_gemm.h), so results do not depend on the thread count.
// Deviations: CPU only; no double backward (training never needs it). float32's exponential is a
// vectorisable polynomial (softmax_exp, ≤ ~1 ulp on the softmax's range) instead of libm's expf;
// float64 keeps std::exp.
#include <ATen/ATen.h>
#include <ATen/Dispatch.h>
#include <ATen/Parallel.h>
#include <torch/csrc/autograd/custom_function.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <vector>

#include "kernels.h"
#include "tile_gemm.h"

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

// The element-wise loops vectorise at -O3 (binding.gyp builds -O2; no-trapping-math lets GCC
// if-convert the exponential's selects), in an x86-64-v3 (AVX2 + FMA) clone of the two per-head
// functions that GCC's target_clones picks by the CPU at load time (as la_attention_head.h).
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC push_options
#pragma GCC optimize("O3", "no-trapping-math")
#endif
#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__)
#define HALO_CLONES __attribute__((target_clones("arch=x86-64-v3", "default")))
#define HALO_INLINE inline __attribute__((always_inline))
#else
#define HALO_CLONES
#define HALO_INLINE inline
#endif

template <typename T>
HALO_INLINE T dot(int64_t d, const T* __restrict__ x, const T* __restrict__ y) {
  T sum = 0;
  for (int64_t c = 0; c < d; ++c) sum += x[c] * y[c];
  return sum;
}

/**
 * e^x for the shifted logits x ≤ 0 of a softmax, in a form GCC vectorises (glibc's expf is a call
 * per element, a third of the forward's time): Cephes expf's range reduction x = n·ln2 + r,
 * |r| ≤ ln2/2, and its degree-7 polynomial (≤ 2 ulp), scaled by 2ⁿ built in the exponent bits.
 * x < −87 (e^x below float's normal range; masked logits are −inf) gives exactly 0.
 */
HALO_INLINE float softmax_exp(float x) {
  const float xc = x < -87.0f ? -87.0f : x;
  const float n = (xc * 1.44269504088896341f + 12582912.0f) - 12582912.0f;  // round(x·log2 e), 1.5·2²³ trick
  const float r = (xc - n * 0.693359375f) - n * -2.12194440e-4f;              // ln2 split in two: exact n·C1
  float p = 1.9875691500e-4f;
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  const float y = p * r * r + r + 1.0f;
  const uint32_t bits = static_cast<uint32_t>(static_cast<int32_t>(n) + 127) << 23;  // 2ⁿ, n ∈ [−126, 0]
  float two_n;
  std::memcpy(&two_n, &bits, sizeof two_n);
  return x < -87.0f ? 0.0f : y * two_n;
}
// Double is the gradcheck's dtype: exact to the last bit matters more than speed there.
HALO_INLINE double softmax_exp(double x) { return std::exp(x); }

/**
 * Row softmax in place. Max and sum run over 32-byte GCC vectors (the compiler will not vectorise
 * a float max reduction by itself without -ffast-math), reduced in a fixed lane order: the same
 * bits on every run and thread.
 */
template <typename T>
HALO_INLINE void softmax_row(int64_t n, T* __restrict__ row) {
  typedef T V __attribute__((vector_size(32)));
  constexpr int64_t L = 32 / sizeof(T);
  V lanes;
  for (int64_t l = 0; l < L; ++l) lanes[l] = -std::numeric_limits<T>::infinity();
  int64_t t = 0;
  for (; t + L <= n; t += L) {
    V x;
    std::memcpy(&x, row + t, sizeof x);
    lanes = x > lanes ? x : lanes;
  }
  T top = -std::numeric_limits<T>::infinity();
  for (int64_t l = 0; l < L; ++l) top = lanes[l] > top ? lanes[l] : top;
  for (; t < n; ++t) top = row[t] > top ? row[t] : top;
  for (t = 0; t < n; ++t) row[t] = softmax_exp(row[t] - top);
  for (int64_t l = 0; l < L; ++l) lanes[l] = 0;
  for (t = 0; t + L <= n; t += L) {
    V x;
    std::memcpy(&x, row + t, sizeof x);
    lanes += x;
  }
  T sum = 0;
  for (int64_t l = 0; l < L; ++l) sum += lanes[l];
  for (; t < n; ++t) sum += row[t];
  const T inv = T(1) / sum;
  for (t = 0; t < n; ++t) row[t] *= inv;
}

/** Per-thread working memory (64-byte aligned, so every tile GEMM sees the same alignment). */
template <typename T>
struct HaloScratch {
  int64_t qt;                     // query rows per tile: bounds the logit tiles for large blocks
  tile::AlignedBuffer<T> win;     // one window, channel-major: kᵀ (dqk, win²) then vᵀ (dv, win²); 0 outside the map
  tile::AlignedBuffer<T> gwin;    // its gradient (backward)
  tile::AlignedBuffer<T> p, dp;   // (qt, win²): weights; ∂logits (backward)
  tile::AlignedBuffer<T> rel;     // (qt, 2·rows): [height | width] relative logits, or their ∂
  std::vector<uint8_t> masked;    // (win²)
  HaloScratch(const HaloGeometry& g, bool backward)
      : qt(query_tile(g)),
        win(g.wsz() * (g.dqk + g.dv)), gwin(backward ? win.size() : 0), p(qt * g.wsz()), dp(backward ? p.size() : 0),
        rel(qt * 2 * g.rows()), masked(g.wsz()) {}
  T* kt() { return win.data(); }
  T* vt(const HaloGeometry& g) { return win.data() + g.dqk * g.wsz(); }
  /**
   * The whole block's queries when they fit, else a power of two ≥ 32 of them, such that a (qt, win²)
   * logit tile stays ≤ 128 KiB in float32 (in L2 with the window while the GEMMs run over it) and
   * no tile GEMM reaches 2¹⁸ multiply-adds: above that OpenBLAS (Debian's libtorch) starts its own
   * threads for a GEMM, which inside parallel_for's tasks oversubscribes the cores (measured: a
   * 16×16 global block, 256 queries, ran forward + backward ~1.7× slower in 128-row tiles than in 32).
   * An 8×8 block with halo 3 (64 queries × 196 keys, dqk 16) is one tile; 256 × 256 keys, 8 of 32.
   */
  static int64_t query_tile(const HaloGeometry& g) {
    const int64_t macs_per_row = std::max(g.wsz() * std::max(g.dqk, g.dv), 2 * g.rows() * g.dqk);
    const int64_t fits = std::min(int64_t{32768} / g.wsz(), ((int64_t{1} << 18) - 1) / macs_per_row);
    if (g.bq() <= fits) return g.bq();
    int64_t qt = 32;  // wide heads exceed the bound anyway; fewer rows would only slow the GEMMs
    while (qt * 2 <= fits) qt *= 2;
    return std::min(qt, g.bq());
  }
};

/** Block (by, bx)'s window rows: key row ky is map row y0 + ky; columns [xa, xb) lie inside the map. */
struct WindowSpan {
  int64_t y0, x0, xa, xb;
  WindowSpan(const HaloGeometry& g, int64_t by, int64_t bx)
      : y0(by * g.block - g.halo), x0(bx * g.block - g.halo), xa(std::max<int64_t>(0, -x0)),
        xb(std::min<int64_t>(g.win, g.Wb - x0)) {}
  bool row_inside(const HaloGeometry& g, int64_t ky) const { return y0 + ky >= 0 && y0 + ky < g.Hb && xa < xb; }
};

/**
 * Gathers block (by, bx)'s window of the head's (dqk + dv, Hb, Wb) map into s.win, channel-major,
 * so that every copy is a contiguous row segment; zeros outside the map; and its mask.
 */
template <typename T>
HALO_INLINE void load_window(const HaloGeometry& g, const T* head, int64_t by, int64_t bx, HaloScratch<T>& s) {
  const int64_t win = g.win, wsz = g.wsz(), hw = g.Hb * g.Wb;
  const WindowSpan w(g, by, bx);
  for (int64_t c = 0; c < g.dqk + g.dv; ++c) {
    for (int64_t ky = 0; ky < win; ++ky) {
      T* __restrict__ row = s.win.data() + c * wsz + ky * win;
      if (!w.row_inside(g, ky)) {
        std::fill(row, row + win, T(0));
        continue;
      }
      const T* __restrict__ src = head + c * hw + (w.y0 + ky) * g.Wb + w.x0;
      std::fill(row, row + w.xa, T(0));
      for (int64_t kx = w.xa; kx < w.xb; ++kx) row[kx] = src[kx];
      std::fill(row + w.xb, row + win, T(0));
    }
  }
  for (int64_t t = 0; t < wsz; ++t) {
    const int64_t y = w.y0 + t / win, x = w.x0 + t % win;
    s.masked[t] = g.mask_h > 0 && (y < 0 || y >= g.mask_h || x < 0 || x >= g.mask_w);
  }
}

/** Adds the window gradient s.gwin into the head's (dqk + dv, Hb, Wb) gradient (positions inside the map). */
template <typename T>
HALO_INLINE void scatter_window(const HaloGeometry& g, T* ghead, int64_t by, int64_t bx, const HaloScratch<T>& s) {
  const int64_t win = g.win, wsz = g.wsz(), hw = g.Hb * g.Wb;
  const WindowSpan w(g, by, bx);
  for (int64_t c = 0; c < g.dqk + g.dv; ++c) {
    for (int64_t ky = 0; ky < win; ++ky) {
      if (!w.row_inside(g, ky)) continue;
      const T* __restrict__ row = s.gwin.data() + c * wsz + ky * win;
      T* __restrict__ dst = ghead + c * hw + (w.y0 + ky) * g.Wb + w.x0;
      for (int64_t kx = w.xa; kx < w.xb; ++kx) dst[kx] += row[kx];
    }
  }
}

/**
 * Attention weights of queries i0 … i0 + m − 1 of a block (qc: their rows of q) into s.p (m, win²).
 * Content logits Q·Kᵀ and relative logits Q·[H; W]ᵀ (tables: (2·rows, dqk)) are GEMMs; query
 * (qy, qx)'s relative logit for key (ky, kx) is H[ky − qy + win − 1] + W[kx − qx + win − 1].
 */
template <typename T>
HALO_INLINE void tile_weights(const HaloGeometry& g, const T* qc, int64_t i0, int64_t m, const T* tables,
                              HaloScratch<T>& s) {
  const int64_t win = g.win, wsz = g.wsz(), rows = g.rows(), d = g.dqk;
  const T scale = static_cast<T>(g.scale), rel_alpha = g.scale_pos_embed ? scale : T(1);
  tile::gemm<T>(false, false, m, wsz, d, scale, qc, d, s.kt(), wsz, T(0), s.p.data(), wsz);
  tile::gemm<T>(false, true, m, 2 * rows, d, rel_alpha, qc, d, tables, d, T(0), s.rel.data(), 2 * rows);
  for (int64_t r = 0; r < m; ++r) {
    const int64_t qy = (i0 + r) / g.bds, qx = (i0 + r) % g.bds;
    T* __restrict__ row = s.p.data() + r * wsz;
    const T* rh = s.rel.data() + r * 2 * rows + (win - 1 - qy);
    const T* __restrict__ rw = s.rel.data() + r * 2 * rows + rows + (win - 1 - qx);
    for (int64_t ky = 0; ky < win; ++ky) {
      const T h = rh[ky];
      T* __restrict__ seg = row + ky * win;
      for (int64_t kx = 0; kx < win; ++kx) seg[kx] += h + rw[kx];
    }
    if (g.mask_h > 0) {
      for (int64_t t = 0; t < wsz; ++t) row[t] = s.masked[t] ? -std::numeric_limits<T>::infinity() : row[t];
    }
    softmax_row(wsz, row);
  }
}

/** Head n's slice (dqk + dv, Hb, Wb) of kv (B, nh·(dqk + dv), Hb, Wb), or of its gradient. */
inline int64_t head_offset(const HaloGeometry& g, int64_t n) { return n * (g.dqk + g.dv) * g.Hb * g.Wb; }

template <typename T>
HALO_CLONES void forward_head(const HaloGeometry& g, int64_t n, const T* q, const T* kv, const T* tables, T* out,
                              HaloScratch<T>& s) {
  for (int64_t by = 0; by < g.nby; ++by) {
    for (int64_t bx = 0; bx < g.nbx; ++bx) {
      load_window(g, kv + head_offset(g, n), by, bx, s);
      const int64_t blk = (n * g.nb() + by * g.nbx + bx) * g.bq();
      for (int64_t i0 = 0; i0 < g.bq(); i0 += s.qt) {
        const int64_t m = std::min(s.qt, g.bq() - i0);
        tile_weights(g, q + (blk + i0) * g.dqk, i0, m, tables, s);
        tile::gemm<T>(false, true, m, g.dv, g.wsz(), T(1), s.p.data(), g.wsz(), s.vt(g), g.wsz(), T(0),
                      out + (blk + i0) * g.dv, g.dv);  // out = P·V
      }
    }
  }
}

/**
 * Backward of one query tile (flash attention's): recompute P; dP = ∂out·Vᵀ; ∂V += Pᵀ·∂out;
 * ∂logits dS = P∘(dP − rowsum(∂out∘out)); ∂q = scale·dS·K + dR·[H; W]; ∂K += scale·dSᵀ·Q;
 * ∂[H; W] += dRᵀ·Q, where dR (m, 2·rows) sums dS over the keys sharing a relative offset.
 * The window and its gradient are stored transposed (kᵀ, vᵀ), so the GEMMs read them so.
 */
template <typename T>
HALO_INLINE void backward_tile(const HaloGeometry& g, const T* qc, const T* oc, const T* goc, T* gqc, int64_t i0,
                               int64_t m, const T* tables, T* gtables, HaloScratch<T>& s) {
  const int64_t win = g.win, wsz = g.wsz(), rows = g.rows(), d = g.dqk, dv = g.dv;
  const T scale = static_cast<T>(g.scale), rel_alpha = g.scale_pos_embed ? scale : T(1);
  T* gkt = s.gwin.data();
  T* gvt = s.gwin.data() + d * wsz;
  tile_weights(g, qc, i0, m, tables, s);
  tile::gemm<T>(false, false, m, wsz, dv, T(1), goc, dv, s.vt(g), wsz, T(0), s.dp.data(), wsz);  // dP = ∂out·Vᵀ
  tile::gemm<T>(true, false, dv, wsz, m, T(1), goc, dv, s.p.data(), wsz, T(1), gvt, wsz);        // ∂Vᵀ += ∂outᵀ·P
  std::fill(s.rel.data(), s.rel.data() + m * 2 * rows, T(0));
  for (int64_t r = 0; r < m; ++r) {
    const int64_t qy = (i0 + r) / g.bds, qx = (i0 + r) % g.bds;
    const T di = dot(dv, goc + r * dv, oc + r * dv);  // Σ_c ∂out_c · out_c
    const T* __restrict__ pr = s.p.data() + r * wsz;
    T* __restrict__ ds = s.dp.data() + r * wsz;
    for (int64_t t = 0; t < wsz; ++t) ds[t] = pr[t] * (ds[t] - di);  // softmax backward
    T* gh = s.rel.data() + r * 2 * rows + (win - 1 - qy);
    T* __restrict__ gw = s.rel.data() + r * 2 * rows + rows + (win - 1 - qx);
    for (int64_t ky = 0; ky < win; ++ky) {
      const T* __restrict__ seg = ds + ky * win;
      T sum = 0;
      for (int64_t kx = 0; kx < win; ++kx) {
        sum += seg[kx];
        gw[kx] += seg[kx];
      }
      gh[ky] += sum;
    }
  }
  tile::gemm<T>(false, true, m, d, wsz, scale, s.dp.data(), wsz, s.kt(), wsz, T(0), gqc, d);     // ∂q = scale·dS·K
  tile::gemm<T>(false, false, m, d, 2 * rows, rel_alpha, s.rel.data(), 2 * rows, tables, d, T(1), gqc, d);
  tile::gemm<T>(true, false, d, wsz, m, scale, qc, d, s.dp.data(), wsz, T(1), gkt, wsz);         // ∂Kᵀ += scale·Qᵀ·dS
  tile::gemm<T>(true, false, 2 * rows, d, m, rel_alpha, s.rel.data(), 2 * rows, qc, d, T(1), gtables, d);
}

/** Backward of head n: grad_q slice, the head's k/v gradient, its table-gradient partial (2·rows, dqk). */
template <typename T>
HALO_CLONES void backward_head(const HaloGeometry& g, int64_t n, const T* q, const T* kv, const T* tables,
                               const T* out, const T* gout, T* gq, T* gkv, T* gtables, HaloScratch<T>& s) {
  const int64_t d = g.dqk, dv = g.dv;
  T* ghead = gkv + head_offset(g, n);
  std::fill(ghead, ghead + (d + dv) * g.Hb * g.Wb, T(0));
  for (int64_t by = 0; by < g.nby; ++by) {
    for (int64_t bx = 0; bx < g.nbx; ++bx) {
      load_window(g, kv + head_offset(g, n), by, bx, s);
      std::fill(s.gwin.data(), s.gwin.data() + s.gwin.size(), T(0));
      const int64_t blk = (n * g.nb() + by * g.nbx + bx) * g.bq();
      for (int64_t i0 = 0; i0 < g.bq(); i0 += s.qt) {
        const int64_t m = std::min(s.qt, g.bq() - i0), row = blk + i0;
        backward_tile(g, q + row * d, out + row * dv, gout + row * dv, gq + row * d, i0, m, tables, gtables, s);
      }
      scatter_window(g, ghead, by, bx, s);
    }
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
    tile::require_blas("halo_attention");
    at::Tensor qc = q.contiguous(), kc = kv.contiguous(), hc = hrel.contiguous(), wc = wrel.contiguous();
    at::Tensor out = at::empty({g.B * g.nh, g.nb(), g.bq(), g.dv}, q.options());
    at::Tensor tables = at::cat({hc, wc});  // (2·rows, dqk): [height_rel; width_rel], one GEMM operand
    AT_DISPATCH_FLOATING_TYPES(q.scalar_type(), "halo_attention_forward", [&] {
      at::parallel_for(0, g.B * g.nh, 1, [&](int64_t begin, int64_t end) {
        tile::SingleThreadedBlas single;
        HaloScratch<scalar_t> s(g, false);
        for (int64_t n = begin; n < end; ++n) {
          forward_head(g, n, qc.data_ptr<scalar_t>(), kc.data_ptr<scalar_t>(), tables.data_ptr<scalar_t>(),
                       out.data_ptr<scalar_t>(), s);
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
    at::Tensor tables = at::cat({s[2], s[3]});                         // (2·rows, dqk), as in forward
    AT_DISPATCH_FLOATING_TYPES(s[0].scalar_type(), "halo_attention_backward", [&] {
      at::parallel_for(0, N, 1, [&](int64_t begin, int64_t end) {
        tile::SingleThreadedBlas single;
        HaloScratch<scalar_t> scratch(g, true);
        for (int64_t n = begin; n < end; ++n) {
          backward_head(g, n, s[0].data_ptr<scalar_t>(), s[1].data_ptr<scalar_t>(), tables.data_ptr<scalar_t>(),
                        s[4].data_ptr<scalar_t>(), gout.data_ptr<scalar_t>(), gq.data_ptr<scalar_t>(),
                        gkv.data_ptr<scalar_t>(), partial.data_ptr<scalar_t>() + n * 2 * table, scratch);
        }
      });
    });
    // Sum over heads in head order (a fixed order: the same bits for any thread count).
    at::Tensor sums = at::zeros({2, table}, s[0].options());
    for (int64_t n = 0; n < N; ++n) sums.add_(partial[n]);
    result[0] = gq;
    result[1] = gkv;
    result[2] = sums[0].reshape({g.rows(), g.dqk});
    result[3] = sums[1].reshape({g.rows(), g.dqk});
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
