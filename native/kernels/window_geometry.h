// The per-pixel window geometry shared by the window kernels (window_attention.cc: the separate
// q·k and attn·v products; window_softmax.cc: the fused softmax attention): each query (i, j)
// of an H×W map reads the k×k keys (rows[i] + a·d, cols[j] + b·d), t = a·k + b, of an Hk×Wk key
// map; keys outside the key map are skipped (the callers mask them or never produce them).
#pragma once
#include <ATen/ATen.h>
#include <ATen/Parallel.h>

#include <cstdint>
#include <type_traits>
#include <vector>

namespace vicinity {
namespace window {

struct Geometry {
  int64_t n, h, w, hk, wk, k, d;
};

inline Geometry geometry(const at::Tensor& q, const at::Tensor& key, int64_t k, int64_t d) {
  return {q.size(0), q.size(1), q.size(2), key.size(1), key.size(2), k, d};
}

inline void check_inputs(const char* op, const at::Tensor& q, const at::Tensor& key, const at::Tensor& rows,
                         const at::Tensor& cols, int64_t k, int64_t d) {
  TORCH_CHECK(q.dim() == 4 && key.dim() == 4, op, ": expected (N, H, W, C) tensors, got shapes ", q.sizes(), " and ",
              key.sizes());
  TORCH_CHECK(q.size(0) == key.size(0), op, ": batch·heads differ: ", q.size(0), " vs ", key.size(0));
  TORCH_CHECK(rows.scalar_type() == at::kLong && cols.scalar_type() == at::kLong, op,
              ": rows and cols must be int64 window starts");
  TORCH_CHECK(rows.numel() == q.size(1) && cols.numel() == q.size(2), op, ": expected ", q.size(1), " row and ",
              q.size(2), " column starts, got ", rows.numel(), " and ", cols.numel());
  TORCH_CHECK(k >= 1 && d >= 1, op, ": kernel_size and dilation must be ≥ 1, got ", k, " and ", d);
  TORCH_CHECK(q.device().is_cpu(), op, ": only CPU tensors are supported, got ", q.device());
}

// A query's in-map window elements come as `count` runs along a window row, run r = (first t,
// first flat key index, length): element m of the run is t + m at key + m·d.
class QueryRuns {
 public:
  QueryRuns(const Geometry& g, const int64_t* rows, const int64_t* cols)
      : g_(g), rows_(rows), cols_(cols), b_lo_(g.w), b_hi_(g.w) {
    for (int64_t j = 0; j < g.w; j++) {  // the in-map column range of each query column, once
      int64_t lo = 0, hi = g.k;
      while (lo < hi && cols[j] + lo * g.d < 0) lo++;
      while (hi > lo && cols[j] + (hi - 1) * g.d >= g.wk) hi--;
      b_lo_[j] = lo;
      b_hi_[j] = hi;
    }
  }

  // Calls f(n, query flat index p, runs, count) for every query of batch·head n, in raster order.
  template <typename F>
  void visit(int64_t n, std::vector<int64_t>& runs, F& f) const {
    runs.resize(3 * g_.k);
    for (int64_t i = 0; i < g_.h; i++) {
      for (int64_t j = 0; j < g_.w; j++) {
        int64_t count = 0;
        for (int64_t a = 0; a < g_.k && b_hi_[j] > b_lo_[j]; a++) {
          const int64_t y = rows_[i] + a * g_.d;
          if (y < 0 || y >= g_.hk) continue;
          runs[3 * count] = a * g_.k + b_lo_[j];
          runs[3 * count + 1] = y * g_.wk + cols_[j] + b_lo_[j] * g_.d;
          runs[3 * count + 2] = b_hi_[j] - b_lo_[j];
          count++;
        }
        f(n, i * g_.w + j, runs.data(), count);
      }
    }
  }

 private:
  const Geometry& g_;
  const int64_t* rows_;
  const int64_t* cols_;
  std::vector<int64_t> b_lo_, b_hi_;
};

// Every query, parallel over `groups` tasks: task t visits n = t, t + groups, … in order, so a
// task owns every n ≡ t (mod groups) — its slice of the key-map gradients and, with groups = the
// bias's leading size, its slice of the bias gradient; no scatter races, a fixed order.
template <typename F>
void for_each_query(const Geometry& g, const int64_t* rows, const int64_t* cols, int64_t groups, F f) {
  const QueryRuns runs_of(g, rows, cols);
  at::parallel_for(0, groups, 1, [&](int64_t begin, int64_t end) {
    std::vector<int64_t> runs;
    for (int64_t t = begin; t < end; t++) {
      for (int64_t n = t; n < g.n; n += groups) runs_of.visit(n, runs, f);
    }
  });
}

// Runs body(std::integral_constant<C>) with the channel count as a compile-time constant for the
// head widths the models use (so the per-key loops unroll and vectorise), C = 0 (runtime) otherwise.
template <typename Body>
void with_channels(int64_t c, Body body) {
  switch (c) {
    case 4: body(std::integral_constant<int64_t, 4>()); break;
    case 8: body(std::integral_constant<int64_t, 8>()); break;
    case 16: body(std::integral_constant<int64_t, 16>()); break;
    case 32: body(std::integral_constant<int64_t, 32>()); break;
    case 64: body(std::integral_constant<int64_t, 64>()); break;
    default: body(std::integral_constant<int64_t, 0>()); break;
  }
}

}  // namespace window
}  // namespace vicinity
