// The per-head compute of `vicinity::halo_attention` (halo_attention.cc, whose header states the
// maths, layouts, determinism and deviations): geometry, per-thread scratch, the vectorised
// softmax, the gathers between the maps and the aligned tiles, and the forward and hand-written
// backward of one (batch, head). Included by halo_attention.cc only (internal linkage); split out
// to keep each file readable.
#pragma once
#include <ATen/ATen.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <utility>
#include <vector>

#include "kernel_options.h"
#include "softmax_exp.h"
#include "tile_gemm.h"

namespace vicinity {
namespace {

struct HaloGeometry {
  int64_t B, nh, dqk, dv, Hb, Wb, block, halo, win, bds, nby, nbx, mask_h, mask_w;
  double scale;
  bool scale_pos_embed, grouped_kv;
  int64_t nb() const { return nby * nbx; }
  int64_t bq() const { return bds * bds; }
  int64_t wsz() const { return win * win; }
  int64_t rows() const { return 2 * win - 1; }
  int64_t Hq() const { return nby * bds; }
  int64_t Wq() const { return nbx * bds; }
};

/**
 * A map's element strides (batch, channel, row, column), as its tensor has them: the kernel reads
 * channel slices (batch-strided), transposed or expanded maps (an incoming gradient broadcast
 * from a sum) in place, and writes its own contiguous maps.
 */
struct MapStrides {
  int64_t b, c, y, x;
  explicit MapStrides(const at::Tensor& t) : b(t.stride(0)), c(t.stride(1)), y(t.stride(2)), x(t.stride(3)) {}
};

/** Offset of head n = b·nh + h's `width` channels in a query-grid map (B, nh·width, Hq, Wq): q, out, ∂q, ∂out. */
inline int64_t query_map_offset(const HaloGeometry& g, int64_t n, int64_t width, const MapStrides& m) {
  return (n / g.nh) * m.b + (n % g.nh) * width * m.c;
}

/**
 * Offsets of head n's k (dqk channels) and v (dv channels) in the kv map (B, nh·(dqk + dv), Hb, Wb)
 * or its gradient: per head [k_h | v_h] (timm HaloAttn), or grouped [k all heads | v all heads]
 * (timm BottleneckAttn's qkv after q).
 */
inline std::pair<int64_t, int64_t> kv_offsets(const HaloGeometry& g, int64_t n, const MapStrides& m) {
  const int64_t b = n / g.nh, h = n % g.nh;
  const int64_t k = g.grouped_kv ? h * g.dqk : h * (g.dqk + g.dv);
  const int64_t v = g.grouped_kv ? g.nh * g.dqk + h * g.dv : k + g.dqk;
  return {b * m.b + k * m.c, b * m.b + v * m.c};
}

// The element-wise loops vectorise at -O3, in an x86-64-v3 clone of the two per-head functions
// (kernel_options.h).
VICINITY_KERNEL_OPTIONS_BEGIN

/**
 * Row softmax in place. Max and sum run over 32-byte GCC vectors (the compiler will not vectorise
 * a float max reduction by itself without -ffast-math), reduced in a fixed lane order: the same
 * bits on every run and thread.
 */
template <typename T>
VICINITY_KERNEL_INLINE void softmax_row(int64_t n, T* __restrict__ row) {
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

/**
 * Per-thread working memory (64-byte aligned, so every tile GEMM sees the same alignment). A
 * block's queries, output and their gradients are held channel-major (Qᵀ: (dqk, bq)), as the
 * maps store them, so gathering a block is a copy of bds-long row segments.
 */
template <typename T>
struct HaloScratch {
  int64_t qt;                     // query rows per tile: bounds the logit tiles for large blocks
  tile::AlignedBuffer<T> win;     // one window, channel-major: kᵀ (dqk, win²) then vᵀ (dv, win²); 0 outside the map
  tile::AlignedBuffer<T> gwin;    // its gradient (backward)
  tile::AlignedBuffer<T> p, dp;   // (qt, win²): weights; ∂logits (backward)
  tile::AlignedBuffer<T> rel;     // (qt, 2·rows): [height | width] relative logits, or their ∂
  tile::AlignedBuffer<T> qb, ob;  // the block's Qᵀ (dqk, bq) and outᵀ (dv, bq)
  tile::AlignedBuffer<T> gqb, gob, di;  // backward: ∂Qᵀ (dqk, bq), ∂outᵀ (dv, bq), rowsum(∂out∘out) (bq)
  std::vector<uint8_t> masked;    // (win²)
  HaloScratch(const HaloGeometry& g, bool backward)
      : qt(query_tile(g)),
        win(g.wsz() * (g.dqk + g.dv)), gwin(backward ? win.size() : 0), p(qt * g.wsz()), dp(backward ? p.size() : 0),
        rel(qt * 2 * g.rows()), qb(g.dqk * g.bq()), ob(g.dv * g.bq()), gqb(backward ? qb.size() : 0),
        gob(backward ? ob.size() : 0), di(backward ? g.bq() : 0), masked(g.wsz()) {}
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

/**
 * Copies block (by, bx)'s bds×bds pixels of `channels` channels of a head's query-grid map to
 * `tile` (channels, bq), raster within the block.
 */
template <typename T>
VICINITY_KERNEL_INLINE void gather_block(const HaloGeometry& g, int64_t channels, int64_t by, int64_t bx, const T* map,
                              const MapStrides& m, T* tile) {
  const int64_t bds = g.bds, bq = g.bq(), corner = by * bds * m.y + bx * bds * m.x;
  for (int64_t c = 0; c < channels; ++c) {
    for (int64_t qy = 0; qy < bds; ++qy) {
      const T* __restrict__ src = map + c * m.c + corner + qy * m.y;
      T* __restrict__ dst = tile + c * bq + qy * bds;
      if (m.x == 1) {
        std::copy(src, src + bds, dst);
      } else {
        for (int64_t qx = 0; qx < bds; ++qx) dst[qx] = src[qx * m.x];
      }
    }
  }
}

/** The inverse of gather_block into a contiguous map (channel stride Hq·Wq): the output and ∂q. */
template <typename T>
VICINITY_KERNEL_INLINE void put_block(const HaloGeometry& g, int64_t channels, int64_t by, int64_t bx, const T* tile, T* map) {
  const int64_t bds = g.bds, bq = g.bq(), Wq = g.Wq(), plane = g.Hq() * Wq, corner = by * bds * Wq + bx * bds;
  for (int64_t c = 0; c < channels; ++c) {
    for (int64_t qy = 0; qy < bds; ++qy) {
      std::copy(tile + c * bq + qy * bds, tile + c * bq + (qy + 1) * bds, map + c * plane + corner + qy * Wq);
    }
  }
}

/** Block (by, bx)'s window rows: key row ky is map row y0 + ky; columns [xa, xb) lie inside the map. */
struct WindowSpan {
  int64_t y0, x0, xa, xb;
  WindowSpan(const HaloGeometry& g, int64_t by, int64_t bx)
      : y0(by * g.block - g.halo), x0(bx * g.block - g.halo), xa(std::max<int64_t>(0, -x0)),
        xb(std::min<int64_t>(g.win, g.Wb - x0)) {}
  bool row_inside(const HaloGeometry& g, int64_t ky) const { return y0 + ky >= 0 && y0 + ky < g.Hb && xa < xb; }
};

/**
 * Gathers block (by, bx)'s window of the head's k (dqk, Hb, Wb) and v (dv, Hb, Wb) channels (kv's
 * strides m) into s.win, channel-major, so that every copy is a row segment; zeros outside the map; and its mask.
 */
template <typename T>
VICINITY_KERNEL_INLINE void load_window(const HaloGeometry& g, const T* k, const T* v, const MapStrides& m, int64_t by, int64_t bx,
                             HaloScratch<T>& s) {
  const int64_t win = g.win, wsz = g.wsz();
  const WindowSpan w(g, by, bx);
  for (int64_t c = 0; c < g.dqk + g.dv; ++c) {
    const T* plane = c < g.dqk ? k + c * m.c : v + (c - g.dqk) * m.c;
    for (int64_t ky = 0; ky < win; ++ky) {
      T* __restrict__ row = s.win.data() + c * wsz + ky * win;
      if (!w.row_inside(g, ky)) {
        zero_fill(row, win);
        continue;
      }
      const T* __restrict__ src = plane + (w.y0 + ky) * m.y + w.x0 * m.x;
      zero_fill(row, w.xa);
      if (m.x == 1) {
        for (int64_t kx = w.xa; kx < w.xb; ++kx) row[kx] = src[kx];
      } else {
        for (int64_t kx = w.xa; kx < w.xb; ++kx) row[kx] = src[kx * m.x];
      }
      zero_fill(row + w.xb, win - w.xb);
    }
  }
  for (int64_t t = 0; t < wsz; ++t) {
    const int64_t y = w.y0 + t / win, x = w.x0 + t % win;
    s.masked[t] = g.mask_h > 0 && (y < 0 || y >= g.mask_h || x < 0 || x >= g.mask_w);
  }
}

/** Adds the window gradient s.gwin into the head's k and v gradients (contiguous maps; positions inside the map). */
template <typename T>
VICINITY_KERNEL_INLINE void scatter_window(const HaloGeometry& g, T* gk, T* gv, int64_t by, int64_t bx, const HaloScratch<T>& s) {
  const int64_t win = g.win, wsz = g.wsz(), hw = g.Hb * g.Wb;
  const WindowSpan w(g, by, bx);
  for (int64_t c = 0; c < g.dqk + g.dv; ++c) {
    T* plane = c < g.dqk ? gk + c * hw : gv + (c - g.dqk) * hw;
    for (int64_t ky = 0; ky < win; ++ky) {
      if (!w.row_inside(g, ky)) continue;
      const T* __restrict__ row = s.gwin.data() + c * wsz + ky * win;
      T* __restrict__ dst = plane + (w.y0 + ky) * g.Wb + w.x0;
      for (int64_t kx = w.xa; kx < w.xb; ++kx) dst[kx] += row[kx];
    }
  }
}

/**
 * Attention weights of queries i0 … i0 + m − 1 of a block (qc: their columns of the block's Qᵀ,
 * row stride bq) into s.p (m, win²). Content logits Q·Kᵀ and relative logits Q·[H; W]ᵀ (tables:
 * (2·rows, dqk)) are GEMMs; query (qy, qx)'s relative logit for key (ky, kx) is
 * H[ky − qy + win − 1] + W[kx − qx + win − 1].
 */
template <typename T>
VICINITY_KERNEL_INLINE void tile_weights(const HaloGeometry& g, const T* qc, int64_t i0, int64_t m, const T* tables,
                              HaloScratch<T>& s) {
  const int64_t win = g.win, wsz = g.wsz(), rows = g.rows(), d = g.dqk, bq = g.bq();
  const T scale = static_cast<T>(g.scale), rel_alpha = g.scale_pos_embed ? scale : T(1);
  tile::gemm<T>(true, false, m, wsz, d, scale, qc, bq, s.kt(), wsz, T(0), s.p.data(), wsz);
  tile::gemm<T>(true, true, m, 2 * rows, d, rel_alpha, qc, bq, tables, d, T(0), s.rel.data(), 2 * rows);
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

/** One head: q (dqk channels of the query map), k, v (its channels of the kv map) → out (dv channels, contiguous map). */
template <typename T>
VICINITY_X86_64_V3_CLONES void forward_head(const HaloGeometry& g, const T* q, const MapStrides& qm, const T* k, const T* v,
                              const MapStrides& kvm, const T* tables, T* out, HaloScratch<T>& s) {
  const int64_t bq = g.bq(), wsz = g.wsz();
  for (int64_t by = 0; by < g.nby; ++by) {
    for (int64_t bx = 0; bx < g.nbx; ++bx) {
      load_window(g, k, v, kvm, by, bx, s);
      gather_block(g, g.dqk, by, bx, q, qm, s.qb.data());
      for (int64_t i0 = 0; i0 < bq; i0 += s.qt) {
        const int64_t m = std::min(s.qt, bq - i0);
        tile_weights(g, s.qb.data() + i0, i0, m, tables, s);
        tile::gemm<T>(false, true, g.dv, m, wsz, T(1), s.vt(g), wsz, s.p.data(), wsz, T(0), s.ob.data() + i0,
                      bq);  // outᵀ = Vᵀ·Pᵀ
      }
      put_block(g, g.dv, by, bx, s.ob.data(), out);
    }
  }
}

/**
 * Backward of one query tile (flash attention's), over the block's Qᵀ, ∂outᵀ and rowsum(∂out∘out)
 * in the scratch: recompute P; dP = ∂out·Vᵀ; ∂V += Pᵀ·∂out; ∂logits dS = P∘(dP − rowsum(∂out∘out));
 * ∂q = scale·dS·K + dR·[H; W]; ∂K += scale·dSᵀ·Q; ∂[H; W] += dRᵀ·Q, where dR (m, 2·rows) sums dS
 * over the keys sharing a relative offset. Everything but P, dS and dR is stored transposed.
 */
template <typename T>
VICINITY_KERNEL_INLINE void backward_tile(const HaloGeometry& g, int64_t i0, int64_t m, const T* tables, T* gtables,
                               HaloScratch<T>& s) {
  const int64_t win = g.win, wsz = g.wsz(), rows = g.rows(), d = g.dqk, dv = g.dv, bq = g.bq();
  const T scale = static_cast<T>(g.scale), rel_alpha = g.scale_pos_embed ? scale : T(1);
  const T* qc = s.qb.data() + i0;
  const T* goc = s.gob.data() + i0;
  T* gqc = s.gqb.data() + i0;
  T* gkt = s.gwin.data();
  T* gvt = s.gwin.data() + d * wsz;
  tile_weights(g, qc, i0, m, tables, s);
  tile::gemm<T>(true, false, m, wsz, dv, T(1), goc, bq, s.vt(g), wsz, T(0), s.dp.data(), wsz);  // dP = ∂out·Vᵀ
  tile::gemm<T>(false, false, dv, wsz, m, T(1), goc, bq, s.p.data(), wsz, T(1), gvt, wsz);      // ∂Vᵀ += ∂outᵀ·P
  zero_fill(s.rel.data(), m * 2 * rows);
  for (int64_t r = 0; r < m; ++r) {
    const int64_t qy = (i0 + r) / g.bds, qx = (i0 + r) % g.bds;
    const T di = s.di.data()[i0 + r];
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
  tile::gemm<T>(false, true, d, m, wsz, scale, s.kt(), wsz, s.dp.data(), wsz, T(0), gqc, bq);  // ∂qᵀ = scale·Kᵀ·dSᵀ
  tile::gemm<T>(true, true, d, m, 2 * rows, rel_alpha, tables, d, s.rel.data(), 2 * rows, T(1), gqc, bq);
  tile::gemm<T>(false, false, d, wsz, m, scale, qc, bq, s.dp.data(), wsz, T(1), gkt, wsz);      // ∂Kᵀ += scale·Qᵀ·dS
  tile::gemm<T>(true, true, 2 * rows, d, m, rel_alpha, s.rel.data(), 2 * rows, qc, bq, T(1), gtables, d);
}

/**
 * Backward of one head: its ∂q channels (written; contiguous map), its ∂k and ∂v channels (of the
 * contiguous ∂kv map; zeroed, then every window's gradient added) and its table-gradient partial
 * (2·rows, dqk).
 */
template <typename T>
VICINITY_X86_64_V3_CLONES void backward_head(const HaloGeometry& g, const T* q, const MapStrides& qm, const T* k, const T* v,
                               const MapStrides& kvm, const T* out, const MapStrides& om, const T* gout,
                               const MapStrides& gom, const T* tables, T* gq, T* gk, T* gv, T* gtables,
                               HaloScratch<T>& s) {
  const int64_t bq = g.bq(), hw = g.Hb * g.Wb;
  zero_fill(gk, g.dqk * hw);
  zero_fill(gv, g.dv * hw);
  for (int64_t by = 0; by < g.nby; ++by) {
    for (int64_t bx = 0; bx < g.nbx; ++bx) {
      load_window(g, k, v, kvm, by, bx, s);
      zero_fill(s.gwin.data(), int64_t(s.gwin.size()));
      gather_block(g, g.dqk, by, bx, q, qm, s.qb.data());
      gather_block(g, g.dv, by, bx, out, om, s.ob.data());
      gather_block(g, g.dv, by, bx, gout, gom, s.gob.data());
      T* __restrict__ di = s.di.data();
      zero_fill(di, bq);
      for (int64_t c = 0; c < g.dv; ++c) {  // Σ_c ∂out_c · out_c per query, c ascending
        const T* __restrict__ go = s.gob.data() + c * bq;
        const T* __restrict__ o = s.ob.data() + c * bq;
        for (int64_t i = 0; i < bq; ++i) di[i] += go[i] * o[i];
      }
      for (int64_t i0 = 0; i0 < bq; i0 += s.qt) backward_tile(g, i0, std::min(s.qt, bq - i0), tables, gtables, s);
      put_block(g, g.dqk, by, bx, s.gqb.data(), gq);
      scatter_window(g, gk, gv, by, bx, s);
    }
  }
}

VICINITY_KERNEL_OPTIONS_END

}  // namespace
}  // namespace vicinity
