// The one interface every backend implements (CPU in cpu_fallback/, CUDA in cuda/).
// Rules every kernel keeps:
// - Inputs are already validated by the op in core/: kernels check nothing about shapes or
//   dtypes beyond what the contract below promises, and record nothing on the tape.
// - Outputs are allocated by the caller on this backend's device. Unless a kernel says
//   otherwise, `out` is contiguous and inputs are strided views already broadcast to the
//   output's shape (stride 0 on broadcast dimensions), with the dtype stated.
// - `out` may be the same tensor as an input of an elementwise kernel (in-place update).
// - Random kernels follow the rule in philox.h, so every backend draws the same numbers.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

#include "strata/device.h"
#include "strata/dtype.h"

namespace strata {

class Tensor;

enum class UnaryOp : uint8_t {
  Neg, Abs, Sign, Exp, Log, Sqrt, Reciprocal,
};

enum class BinaryOp : uint8_t {
  Add, Sub, Mul, Div, Pow, Maximum, Minimum,
  // Comparisons write bool.
  Eq, Ne, Lt, Le, Gt, Ge,
};

inline bool is_comparison(BinaryOp op) { return op >= BinaryOp::Eq; }

enum class ReduceOp : uint8_t { Sum, Max, Min, ArgMax, ArgMin };

class Backend {
 public:
  virtual ~Backend() = default;

  virtual Device device() const = 0;

  // ---- memory -----------------------------------------------------------------------------
  // Returns memory for at least `nbytes` bytes (nbytes may be 0), aligned to 64 bytes.
  virtual void* allocate(size_t nbytes) = 0;
  virtual void deallocate(void* ptr, size_t nbytes) = 0;
  // Plain byte copies between host memory and this device, and within this device.
  virtual void copy_from_host(void* dst, const void* src, size_t nbytes) = 0;
  virtual void copy_to_host(void* dst, const void* src, size_t nbytes) = 0;
  virtual void copy_on_device(void* dst, const void* src, size_t nbytes) = 0;
  // Waits until every kernel queued on this device has finished.
  virtual void synchronize() = 0;

  // ---- elementwise ------------------------------------------------------------------------
  // dst[i] = convert(src[i]). dst and src have the same shape and any strides; dtypes may differ.
  virtual void copy(const Tensor& dst, const Tensor& src) = 0;
  // Every element of contiguous `out` = value (converted to out's dtype).
  virtual void fill(const Tensor& out, double value) = 0;
  // out[i] = start + i * step, for contiguous 1-D out of any numeric dtype.
  virtual void arange(const Tensor& out, double start, double step) = 0;
  // out = op(in); in has out's dtype.
  virtual void unary(UnaryOp op, const Tensor& out, const Tensor& in) = 0;
  // out = op(a, b); a and b share one dtype; out has it too, or bool for comparisons.
  virtual void binary(BinaryOp op, const Tensor& out, const Tensor& a, const Tensor& b) = 0;
  // out = op(a, scalar), or op(scalar, a) when scalar_first; scalar is converted to a's dtype.
  virtual void binary_scalar(BinaryOp op, const Tensor& out, const Tensor& a, double scalar,
                             bool scalar_first) = 0;
  // out = cond ? a : b; cond is bool, a and b have out's dtype.
  virtual void where(const Tensor& out, const Tensor& cond, const Tensor& a,
                     const Tensor& b) = 0;

  // ---- reductions -------------------------------------------------------------------------
  // `in` is contiguous and read as [outer, size, inner]; `out` is contiguous [outer, inner].
  // Sum/Max/Min write in's dtype (Sum of bool/uint8 is never asked for: the op promotes
  // first); ArgMax/ArgMin write int64 indices in [0, size), the first one on ties.
  // size >= 1 always.
  virtual void reduce(ReduceOp op, const Tensor& out, const Tensor& in, int64_t outer,
                      int64_t size, int64_t inner) = 0;

  // ---- linear algebra ---------------------------------------------------------------------
  // out[b] = a[b] @ b[b] (+ out[b] if accumulate), float32 or float64. out is contiguous
  // [B, M, N]; a is [B, M, K] and b is [B, K, N], each with any strides (batch stride 0 when
  // broadcast). A backend copies an operand whose inner matrix is neither row- nor
  // column-major contiguous.
  virtual void matmul(const Tensor& out, const Tensor& a, const Tensor& b, bool accumulate) = 0;

  // ---- indexing (every tensor contiguous; index is int64 and already range-checked) --------
  // out = in.index_select(dim, index): out.shape[dim] = index.numel().
  virtual void index_select(const Tensor& out, const Tensor& in, int64_t dim,
                            const Tensor& index) = 0;
  // out.index_select(dim, index) += src, accumulating over repeated indices.
  virtual void index_add(const Tensor& out, int64_t dim, const Tensor& index,
                         const Tensor& src) = 0;
  // out[..i..] = in[..index[..i..] along dim..]; index and out share a shape.
  virtual void gather(const Tensor& out, const Tensor& in, int64_t dim, const Tensor& index) = 0;
  // out[..index[..i..] along dim..] += src[..i..]; index and src share a shape.
  virtual void scatter_add(const Tensor& out, int64_t dim, const Tensor& index,
                           const Tensor& src) = 0;

  // ---- random (contiguous out; element i uses Philox block offset + i, see philox.h) ------
  // Uniform in [low, high), float32/float64.
  virtual void random_uniform(const Tensor& out, double low, double high, uint64_t seed,
                              uint64_t offset) = 0;
  // Normal(mean, std), float32/float64.
  virtual void random_normal(const Tensor& out, double mean, double std, uint64_t seed,
                             uint64_t offset) = 0;
  // Integers in [low, high), any numeric dtype.
  virtual void random_int(const Tensor& out, int64_t low, int64_t high, uint64_t seed,
                          uint64_t offset) = 0;
};

// The backend for `device`. Throws strata::Error saying why when the device is not available
// (CUDA not compiled in, no device found, index out of range).
Backend& backend_for(Device device);

// The CPU backend, always present.
Backend& cpu_backend();

// True when the CUDA backend is compiled in and found at least one device.
bool cuda_is_available();
int cuda_device_count();

// Sets the number of threads CPU kernels (OpenMP and BLAS together) use.
void set_num_threads(int threads);
int get_num_threads();

// TF32 for float32 matrix products on CUDA: off by default, so results match the CPU.
void set_allow_tf32(bool allow);
bool allow_tf32();

}  // namespace strata
