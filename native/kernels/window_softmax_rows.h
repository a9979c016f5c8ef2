// The per-head work of `vicinity::window_softmax_attention` (window_softmax.cc), a query row at a
// time in a planar layout: the W queries of a row are the vector lanes. One head's key and value
// maps are first gathered into *window columns*, kb[y][b][c][j] = key[y, cols[j] + b·d, c] (0 off
// the map), so that for every window element t = (a, b) the row's W keys are one contiguous
// vector per channel, and the logits, the softmax (max / exp / sum per lane) and the products
// with v are element-wise over 8-lane vectors (GCC vector extensions), accumulating over the
// channels or the window in registers. Why: the models' heads are narrow (C = 4–32 channels at
// 28×28 down to 7×7), so a per-query loop over C spends its time on loop and index overhead and
// scalar exponentials; the lanes of a row give full vectors at any C. The gathered columns cost
// k·C·Hk·W elements per head (≤ k× the map) and one pass to build. Backward accumulates ∂k, ∂v in
// the same column layout and adds them back to the map per head; the key embedding's gradient
// stays per lane until the task's end. Every sum runs in a fixed order, so the results do not
// depend on the thread count.
#pragma once

#include <ATen/ATen.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <vector>

#include "kernel_options.h"
#include "softmax_exp.h"
#include "vec8.h"

namespace vicinity {
namespace {

// -O3, and an x86-64-v3 clone of the per-row functions (kernel_options.h).
VICINITY_KERNEL_OPTIONS_BEGIN
// The vector helpers below are always inlined: their by-value vectors never cross an ABI boundary.
#if defined(__GNUC__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wpsabi"
#endif

constexpr int64_t kLanes = 8;  // one vector: 8 queries of a row
constexpr int64_t kAccumulators = 16;  // channel sums a row's weighted sums keep in registers

// The window of every query: query (i, j) of the H×W map reads keys (rows[i] + a·d, cols[j] + b·d)
// of the Hk×Wk key map, t = a·k + b. `lanes` = W rounded up to kLanes: the padded lanes are
// off-map columns. col_index (k, lanes): cols[j] + b·d, or wk (a zero column) off the map.
// runs (k, 3): per b, the lanes [begin, end) whose col_index is j + offset (the window's interior,
// where a column copy is a contiguous, vectorisable one), and that offset.
struct RowGeometry {
  int64_t h, w, hk, wk, k, d, c, lanes;
  const int64_t* rows;
  const int64_t* col_index;
  const int64_t* runs;
};

// Element (y, x, c) of one head's map is at y·sy + x·sx + c·sc: the maps are views (e.g. of the
// q/k/v projection), read and written in place.
struct MapStrides {
  int64_t sy, sx, sc;
};

// One head's inputs: q (H, W, C) already scaled, key and value (Hk, Wk, C), at their strides;
// bias (H, k², lanes) (planar_bias) and embed (k², C) when given.
template <typename T>
struct HeadInputs {
  const T* q;
  const T* key;
  const T* value;
  const T* bias;
  const T* embed;
  MapStrides qs, ks, vs;
  T scale;  // of the logits' q·(k + embed) term; the kernel applies it to its copy of q's row
};

// A task's scratch, reused over its heads and rows.
template <typename T>
struct RowScratch {
  std::vector<T> plane;                // (Hk, C, Wk + 1) one map, channel-planar, with a zero column
  std::vector<T> kb, vb;               // (Hk, k, C, lanes) window columns of key and value
  std::vector<T> mask;                 // (k, lanes) 0, or −inf off the map
  std::vector<T> q, s, m, sum, o;      // (C, lanes) query row, (k², lanes) logits, (lanes) ×2, (C, lanes)
  std::vector<T> g, dp, dkb, dvb, de;  // backward: ∂out row, ∂logits, ∂ of the columns, (k², C, lanes) ∂embed
  std::vector<int64_t> tv, off;        // the row's in-map window elements t and their column offsets

  void size(const RowGeometry& r, bool backward) {
    const int64_t cols = r.hk * r.k * r.c * r.lanes, t = r.k * r.k;
    plane.resize(r.hk * r.c * (r.wk + 1));
    kb.resize(cols);
    vb.resize(cols);
    mask.resize(r.k * r.lanes);
    for (int64_t i = 0; i < r.k * r.lanes; i++) {
      mask[i] = r.col_index[i] == r.wk ? -std::numeric_limits<T>::infinity() : T(0);
    }
    q.resize(r.c * r.lanes);
    o.resize(r.c * r.lanes);
    s.resize(t * r.lanes);
    m.resize(r.lanes);
    sum.resize(r.lanes);
    tv.resize(t);
    off.resize(t);
    dp.resize(t * r.lanes);
    if (!backward) return;
    g.resize(r.c * r.lanes);
    dkb.resize(cols);
    dvb.resize(cols);
  }
};

// kb[((y·k + b)·C + c)·lanes + j] = map[y, cols[j] + b·d, c] (0 off the map), through a
// channel-planar copy of the map.
template <typename T>
VICINITY_KERNEL_INLINE void gather_columns(const RowGeometry& r, const T* __restrict__ map, const MapStrides& m,
                                           T* __restrict__ plane, T* __restrict__ kb) {
  const int64_t pw = r.wk + 1;
  for (int64_t y = 0; y < r.hk; y++) {
    T* pl = plane + y * r.c * pw;
    for (int64_t x = 0; x < r.wk; x++) {
      for (int64_t c = 0; c < r.c; c++) pl[c * pw + x] = map[y * m.sy + x * m.sx + c * m.sc];
    }
    for (int64_t c = 0; c < r.c; c++) pl[c * pw + r.wk] = T(0);
    for (int64_t b = 0; b < r.k; b++) {
      const int64_t* index = r.col_index + b * r.lanes;
      const int64_t begin = r.runs[3 * b], end = r.runs[3 * b + 1], offset = r.runs[3 * b + 2];
      for (int64_t c = 0; c < r.c; c++) {
        const T* __restrict__ src = pl + c * pw;
        T* __restrict__ dst = kb + ((y * r.k + b) * r.c + c) * r.lanes;
        for (int64_t j = 0; j < begin; j++) dst[j] = src[index[j]];
        for (int64_t j = begin; j < end; j++) dst[j] = src[j + offset];
        for (int64_t j = end; j < r.lanes; j++) dst[j] = src[index[j]];
      }
    }
  }
}

// The inverse for gradients: map[y, cols[j] + b·d, c] = Σ of its columns, in a fixed order.
template <typename T>
VICINITY_KERNEL_INLINE void scatter_columns(const RowGeometry& r, const T* __restrict__ kb, T* __restrict__ plane,
                                            T* __restrict__ map, const MapStrides& m) {
  const int64_t pw = r.wk + 1;
  for (int64_t y = 0; y < r.hk; y++) {
    T* pl = plane + y * r.c * pw;
    zero_fill(pl, r.c * pw);
    for (int64_t b = 0; b < r.k; b++) {  // each map element gets its terms in b order, as one loop would
      const int64_t* index = r.col_index + b * r.lanes;
      const int64_t begin = r.runs[3 * b], end = r.runs[3 * b + 1], offset = r.runs[3 * b + 2];
      for (int64_t c = 0; c < r.c; c++) {
        T* __restrict__ dst = pl + c * pw;  // off-map lanes add into the unused zero column
        const T* __restrict__ src = kb + ((y * r.k + b) * r.c + c) * r.lanes;
        for (int64_t j = 0; j < begin; j++) dst[index[j]] += src[j];
        for (int64_t j = begin; j < end; j++) dst[j + offset] += src[j];
        for (int64_t j = end; j < r.lanes; j++) dst[index[j]] += src[j];
      }
    }
    for (int64_t x = 0; x < r.wk; x++) {
      for (int64_t c = 0; c < r.c; c++) map[y * m.sy + x * m.sx + c * m.sc] = pl[c * pw + x];
    }
  }
}

// Row i of a (H, W, C) map, times factor → (C, lanes), padded lanes 0.
template <typename T>
VICINITY_KERNEL_INLINE void load_row(const RowGeometry& r, const T* __restrict__ map, const MapStrides& m, int64_t i,
                                     T factor, T* __restrict__ dst) {
  zero_fill(dst, r.c * r.lanes);
  for (int64_t j = 0; j < r.w; j++) {
    for (int64_t c = 0; c < r.c; c++) dst[c * r.lanes + j] = map[i * m.sy + j * m.sx + c * m.sc] * factor;
  }
}

// (C, lanes) → row i of a (H, W, C) map, each lane times factor·lane_factor[j] (without lane_factor, factor).
template <typename T>
VICINITY_KERNEL_INLINE void store_row(const RowGeometry& r, const T* __restrict__ src, const T* lane_factor, T factor,
                                      T* __restrict__ map, const MapStrides& m, int64_t i) {
  for (int64_t j = 0; j < r.w; j++) {
    const T f = lane_factor ? lane_factor[j] * factor : factor;
    for (int64_t c = 0; c < r.c; c++) map[i * m.sy + j * m.sx + c * m.sc] = src[c * r.lanes + j] * f;
  }
}

// The in-map window elements of query row i: s.tv (t), s.off (offset of their key columns); returns their count.
template <typename T>
VICINITY_KERNEL_INLINE int64_t row_elements(const RowGeometry& r, int64_t i, RowScratch<T>& s) {
  int64_t e = 0;
  for (int64_t a = 0; a < r.k; a++) {
    const int64_t y = r.rows[i] + a * r.d;
    if (y < 0 || y >= r.hk) continue;
    for (int64_t b = 0; b < r.k; b++, e++) {
      s.tv[e] = a * r.k + b;
      s.off[e] = (y * r.k + b) * r.c * r.lanes;
    }
  }
  return e;
}

// s[t][j] = bias[i, j, t] + q_j · (k[t, j] + embed[t]) (q_j: s.q, already times the scale), −inf
// for keys off the map, for the row's
// ne in-map elements; the per-lane max in m (0 where every logit is −inf).
template <int CC, typename T>
VICINITY_KERNEL_INLINE void row_logits(const RowGeometry& r, const HeadInputs<T>& in, int64_t i, int64_t ne, RowScratch<T>& s) {
  const int64_t L = r.lanes, C = CC ? CC : r.c, tk = r.k * r.k;
  constexpr T kNegInf = -std::numeric_limits<T>::infinity();
  const Vec8<T> neg_inf = Vec8<T>{} + kNegInf, zero = Vec8<T>{};
  for (int64_t jb = 0; jb < L; jb += kLanes) store8(s.m.data() + jb, neg_inf);
  for (int64_t e = 0; e < ne; e++) {
    const int64_t t = s.tv[e];
    T* st = s.s.data() + t * L;
    const T* kt = s.kb.data() + s.off[e];
    const T* mask = s.mask.data() + (t % r.k) * L;
    const T* embed = in.embed ? in.embed + t * C : nullptr;
    for (int64_t jb = 0; jb < L; jb += kLanes) {
      Vec8<T> acc = in.bias ? load8(in.bias + (i * tk + t) * L + jb) : zero;
      for (int64_t c = 0; c < C; c++) {
        const Vec8<T> key = embed ? load8(kt + c * L + jb) + embed[c] : load8(kt + c * L + jb);
        acc += load8(s.q.data() + c * L + jb) * key;
      }
      acc += load8(mask + jb);
      store8(st + jb, acc);
      const Vec8<T> m = load8(s.m.data() + jb);
      store8(s.m.data() + jb, acc > m ? acc : m);
    }
  }
  for (int64_t jb = 0; jb < L; jb += kLanes) {
    const Vec8<T> m = load8(s.m.data() + jb);
    store8(s.m.data() + jb, m == neg_inf ? zero : m);
  }
}

// s[t] ← e^{s[t] − shift} over the row's in-map elements (0 for −inf logits).
template <typename T>
VICINITY_KERNEL_INLINE void row_exp(const RowGeometry& r, int64_t ne, const T* __restrict__ shift, RowScratch<T>& s) {
  const int64_t L = r.lanes;
  for (int64_t e = 0; e < ne; e++) {
    T* __restrict__ st = s.s.data() + s.tv[e] * L;
    for (int64_t j = 0; j < L; j++) st[j] = softmax_exp(st[j] - shift[j]);
  }
}

// Row i of one head's output (its map at strides os) and lse[i] (W). CC: the channels r.c if
// compiled apart (with_width), else 0.
template <int CC, typename T>
VICINITY_KERNEL_INLINE void forward_row(const RowGeometry& r, const HeadInputs<T>& in, int64_t i, RowScratch<T>& s,
                                           T* out, const MapStrides& os, T* lse) {
  const int64_t L = r.lanes, C = CC ? CC : r.c;
  load_row(r, in.q, in.qs, i, in.scale, s.q.data());  // scale·q
  const int64_t ne = row_elements(r, i, s);
  row_logits<CC>(r, in, i, ne, s);
  row_exp(r, ne, s.m.data(), s);
  for (int64_t jb = 0; jb < L; jb += kLanes) {
    Vec8<T> sum{};
    for (int64_t e = 0; e < ne; e++) sum += load8(s.s.data() + s.tv[e] * L + jb);
    // Window elements outer, up to kAccumulators channels' sums in registers: each weight loaded
    // once per block of channels.
    for (int64_t c0 = 0; c0 < C; c0 += kAccumulators) {
      const int64_t nc = C - c0 < kAccumulators ? C - c0 : kAccumulators;
      Vec8<T> acc[kAccumulators] = {};
      for (int64_t e = 0; e < ne; e++) {
        const Vec8<T> pe = load8(s.s.data() + s.tv[e] * L + jb);
        const T* vb = s.vb.data() + s.off[e] + c0 * L + jb;
        for (int64_t c = 0; c < nc; c++) acc[c] += pe * load8(vb + c * L);
      }
      for (int64_t c = 0; c < nc; c++) store8(s.o.data() + (c0 + c) * L + jb, acc[c]);
    }
    store8(s.sum.data() + jb, sum);
  }
  T* inv = s.dp.data();  // 1 / sum per lane (dp is free in forward)
  for (int64_t j = 0; j < r.w; j++) {
    const T sum = s.sum[j];
    inv[j] = sum > T(0) ? T(1) / sum : T(0);
    lse[i * r.w + j] = s.m[j] + std::log(sum);  // −inf for a query with no key in the map
  }
  store_row(r, s.o.data(), inv, T(1), out, os, i);
}

// One head's query row i backward (∂out at strides gs): ∂q row into dq (strides dqs), ∂ of the key / value columns into s.dkb /
// s.dvb, ∂bias (H, k², lanes) into dbias, ∂embed per lane into s.de; lse as forward saved it.
template <int CC, typename T>
VICINITY_KERNEL_INLINE void backward_row(const RowGeometry& r, const HeadInputs<T>& in, int64_t i, const T* grad,
                                            const MapStrides& gs, const T* lse, RowScratch<T>& s, T* dq,
                                            const MapStrides& dqs, T* dbias) {
  const int64_t L = r.lanes, C = CC ? CC : r.c, tk = r.k * r.k;
  load_row(r, in.q, in.qs, i, in.scale, s.q.data());  // scale·q: ∂k and ∂embed take it as it is
  load_row(r, grad, gs, i, T(1), s.g.data());
  const int64_t ne = row_elements(r, i, s);
  row_logits<CC>(r, in, i, ne, s);
  T* shift = s.m.data();  // lse per lane (0 for a query without keys: its logits are all −inf)
  for (int64_t j = 0; j < L; j++) shift[j] = j < r.w && std::isfinite(lse[i * r.w + j]) ? lse[i * r.w + j] : T(0);
  row_exp(r, ne, shift, s);  // P
  const T* p = s.s.data();
  T* dp = s.dp.data();
  for (int64_t jb = 0; jb < L; jb += kLanes) {
    Vec8<T> total{};  // Σ_t P_t ∂P_t, then ∂S_t = P_t (∂P_t − total)
    for (int64_t e = 0; e < ne; e++) {
      Vec8<T> acc{};
      for (int64_t c = 0; c < C; c++) acc += load8(s.g.data() + c * L + jb) * load8(s.vb.data() + s.off[e] + c * L + jb);
      store8(dp + s.tv[e] * L + jb, acc);
      total += load8(p + s.tv[e] * L + jb) * acc;
    }
    for (int64_t e = 0; e < ne; e++) {
      const int64_t t = s.tv[e] * L + jb;
      store8(dp + t, load8(p + t) * (load8(dp + t) - total));
    }
    for (int64_t c0 = 0; c0 < C; c0 += kAccumulators) {  // as forward's output
      const int64_t nc = C - c0 < kAccumulators ? C - c0 : kAccumulators;
      Vec8<T> acc[kAccumulators] = {};
      for (int64_t e = 0; e < ne; e++) {
        const Vec8<T> ds = load8(dp + s.tv[e] * L + jb);
        const T* kb = s.kb.data() + s.off[e] + c0 * L + jb;
        const T* embed = in.embed ? in.embed + s.tv[e] * C + c0 : nullptr;
        for (int64_t c = 0; c < nc; c++) {
          const Vec8<T> key = load8(kb + c * L);
          acc[c] += ds * (embed ? key + embed[c] : key);
        }
      }
      for (int64_t c = 0; c < nc; c++) store8(s.o.data() + (c0 + c) * L + jb, acc[c]);
    }
  }
  for (int64_t e = 0; e < ne; e++) {
    const int64_t t = s.tv[e];
    for (int64_t c = 0; c < C; c++) {
      T* dk = s.dkb.data() + s.off[e] + c * L;
      T* dv = s.dvb.data() + s.off[e] + c * L;
      T* de = in.embed ? s.de.data() + (t * C + c) * L : nullptr;
      for (int64_t jb = 0; jb < L; jb += kLanes) {
        const Vec8<T> ds = load8(dp + t * L + jb), qc = load8(s.q.data() + c * L + jb);
        store8(dk + jb, load8(dk + jb) + ds * qc);
        store8(dv + jb, load8(dv + jb) + load8(p + t * L + jb) * load8(s.g.data() + c * L + jb));
        if (de) store8(de + jb, load8(de + jb) + ds * qc);
      }
    }
    if (dbias) {
      T* db = dbias + (i * tk + t) * L;
      for (int64_t jb = 0; jb < L; jb += kLanes) store8(db + jb, load8(db + jb) + load8(dp + t * L + jb));
    }
  }
  store_row(r, s.o.data(), static_cast<const T*>(nullptr), in.scale, dq, dqs, i);  // ∂q = scale · Σ_t ∂S_t (k_t + e_t)
}

// One head's forward: its key and value window columns gathered, then every query row (out and
// lse are the head's). The per-head functions carry the target clones, so the gathers, the rows
// and the scatters all compile at -O3 for the CPU's ISA.
template <int CC, typename T>
VICINITY_X86_64_V3_CLONES void forward_head(const RowGeometry& r, const HeadInputs<T>& in, RowScratch<T>& s, T* out,
                                            const MapStrides& os, T* lse) {
  gather_columns(r, in.key, in.ks, s.plane.data(), s.kb.data());
  gather_columns(r, in.value, in.vs, s.plane.data(), s.vb.data());
  for (int64_t i = 0; i < r.h; i++) forward_row<CC>(r, in, i, s, out, os, lse);
}

// One head's backward: ∂q rows into dq, its key and value gradients scattered into dk and dv
// (each head's maps at their strides), ∂bias into dbias, ∂embed per lane into s.de.
template <int CC, typename T>
VICINITY_X86_64_V3_CLONES void backward_head(const RowGeometry& r, const HeadInputs<T>& in, const T* grad,
                                             const MapStrides& gs, const T* lse, RowScratch<T>& s, T* dq,
                                             const MapStrides& dqs, T* dbias, T* dk, const MapStrides& dks, T* dv,
                                             const MapStrides& dvs) {
  gather_columns(r, in.key, in.ks, s.plane.data(), s.kb.data());
  gather_columns(r, in.value, in.vs, s.plane.data(), s.vb.data());
  zero_fill(s.dkb.data(), int64_t(s.dkb.size()));
  zero_fill(s.dvb.data(), int64_t(s.dvb.size()));
  for (int64_t i = 0; i < r.h; i++) backward_row<CC>(r, in, i, grad, gs, lse, s, dq, dqs, dbias);
  scatter_columns(r, s.dkb.data(), s.plane.data(), dk, dks);
  scatter_columns(r, s.dvb.data(), s.plane.data(), dv, dvs);
}

#if defined(__GNUC__)
#pragma GCC diagnostic pop
#endif
VICINITY_KERNEL_OPTIONS_END

}  // namespace
}  // namespace vicinity
