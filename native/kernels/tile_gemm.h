// Row-major GEMM on small tiles for the fused kernels, through the BLAS that libtorch itself links
// (the Fortran symbols sgemm_/dgemm_: the pip wheel's libtorch_cpu exports MKL's, Debian's
// libtorch 1.13 loads libblas.so.3), plus 64-byte-aligned scratch for the tiles.
// Why not ATen's at::native::cpublas::gemm: its float overloads are not exported from the 2.x
// wheel's libtorch_cpu (only the naive gemm_stub is), and at::mm on tiles of a few kilobytes
// costs more in dispatch than in arithmetic.
// Reproducibility: a BLAS call's result depends on its inputs, their shapes and alignment; the
// kernels hand every tile the same inputs at the same alignment (aligned scratch, fixed tile
// boundaries) whichever thread runs it, so their results do not depend on the thread count.
#pragma once
#include <c10/util/Exception.h>

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <limits>
#include <memory>

// Weak, like MKL's below: a libtorch whose libraries export no Fortran BLAS (none of the two
// supported backends) leaves them null, and require_blas() turns that into an error, not a crash.
extern "C" {
__attribute__((weak))
void sgemm_(const char* transa, const char* transb, const int* m, const int* n, const int* k, const float* alpha,
            const float* a, const int* lda, const float* b, const int* ldb, const float* beta, float* c,
            const int* ldc);
__attribute__((weak))
void dgemm_(const char* transa, const char* transb, const int* m, const int* n, const int* k, const double* alpha,
            const double* a, const int* lda, const double* b, const int* ldb, const double* beta, double* c,
            const int* ldc);
// MKL only (the pip wheel's BLAS; mkl_service.h's C entry, by value); weak: null under other BLAS builds.
int MKL_Set_Num_Threads_Local(int n) __attribute__((weak));
}

namespace vicinity {
namespace tile {

/** Throws, naming the operator and the fallback, when no BLAS was found at load time. */
inline void require_blas(const char* op) {
  TORCH_CHECK(sgemm_ != nullptr && dgemm_ != nullptr, op,
              ": this libtorch's libraries export no BLAS sgemm_/dgemm_, which the CPU kernel needs; "
              "use the composite path (setKernelMode('composite'))");
}

inline int blas_int(int64_t v) {
  TORCH_CHECK(v >= 0 && v <= std::numeric_limits<int>::max(), "tile gemm: dimension ", v, " exceeds BLAS's int");
  return static_cast<int>(v);
}

inline void blas_gemm(char ta, char tb, int m, int n, int k, float alpha, const float* a, int lda, const float* b,
                      int ldb, float beta, float* c, int ldc) {
  sgemm_(&ta, &tb, &m, &n, &k, &alpha, a, &lda, b, &ldb, &beta, c, &ldc);
}
inline void blas_gemm(char ta, char tb, int m, int n, int k, double alpha, const double* a, int lda, const double* b,
                      int ldb, double beta, double* c, int ldc) {
  dgemm_(&ta, &tb, &m, &n, &k, &alpha, a, &lda, b, &ldb, &beta, c, &ldc);
}

/**
 * Row-major C (m×n, row stride ldc) = alpha·op(A)·op(B) + beta·C, where op(A) is m×k (A stored
 * k×m when trans_a) and op(B) is k×n (B stored n×k when trans_b). With beta = 0, C is only written.
 * Column-major BLAS sees each row-major matrix as its transpose: Cᵀ = op(B)ᵀ·op(A)ᵀ.
 */
template <typename T>
void gemm(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, T alpha, const T* a, int64_t lda, const T* b,
          int64_t ldb, T beta, T* c, int64_t ldc) {
  if (m == 0 || n == 0) return;
  if (k == 0) {  // BLAS would scale C by beta; the tiles never have k = 0, but keep the contract
    for (int64_t i = 0; i < m; ++i) {
      for (int64_t j = 0; j < n; ++j) c[i * ldc + j] = beta == T(0) ? T(0) : beta * c[i * ldc + j];
    }
    return;
  }
  blas_gemm(trans_b ? 'T' : 'N', trans_a ? 'T' : 'N', blas_int(n), blas_int(m), blas_int(k), alpha, b,
            blas_int(ldb), a, blas_int(lda), beta, c, blas_int(ldc));
}

/**
 * Keeps the BLAS single-threaded on this thread while alive. The kernels already run one tile per
 * thread; left to itself MKL picks its blocking by the thread count it could use, which differs
 * inside and outside at::parallel_for's region, and so would its rounding. A scope per task.
 */
class SingleThreadedBlas {
 public:
  SingleThreadedBlas() : previous_(MKL_Set_Num_Threads_Local ? MKL_Set_Num_Threads_Local(1) : 0) {}
  ~SingleThreadedBlas() {
    if (MKL_Set_Num_Threads_Local) MKL_Set_Num_Threads_Local(previous_);  // 0: back to the global setting
  }
  SingleThreadedBlas(const SingleThreadedBlas&) = delete;
  SingleThreadedBlas& operator=(const SingleThreadedBlas&) = delete;

 private:
  int previous_;
};

/** n elements of T, 64-byte aligned (a cache line; the widest SIMD load), uninitialised. */
template <typename T>
class AlignedBuffer {
 public:
  explicit AlignedBuffer(size_t n = 0) : size_(n) {
    if (n == 0) return;
    const size_t bytes = (n * sizeof(T) + 63) / 64 * 64;  // aligned_alloc needs a multiple of the alignment
    data_.reset(static_cast<T*>(std::aligned_alloc(64, bytes)));
    TORCH_CHECK(data_ != nullptr, "tile scratch: out of memory allocating ", bytes, " bytes");
  }
  T* data() { return data_.get(); }
  const T* data() const { return data_.get(); }
  size_t size() const { return size_; }

 private:
  struct Free {
    void operator()(T* p) const { std::free(p); }
  };
  std::unique_ptr<T, Free> data_;
  size_t size_;
};

}  // namespace tile
}  // namespace vicinity
