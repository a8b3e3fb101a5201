// Elementwise kernels of the CUDA backend: copy (any strides, any dtype pair), fill, arange,
// unary, binary (tensor-tensor and tensor-scalar) and where. The values are exactly those of
// cpu_fallback/elementwise.cpp (the same conversion, wrapping, NaN and divide-by-zero rules).
// Every kernel is one grid-stride loop over the output's elements. The launcher drops size-1
// dims and merges dims contiguous in every operand (as the CPU does), so a contiguous tensor
// is one flat dim and runs the fast path with no index arithmetic; otherwise each element's
// offsets come from dividing its flat index by the merged sizes (in 32 bits when it fits).
// The op (Add, Exp, ...) is a runtime switch inside the kernel rather than a template
// parameter: it is uniform over the grid, costs nothing next to the memory traffic, and keeps
// one kernel per dtype instead of one per dtype and op.
#include <cuda/std/limits>

#include <array>
#include <cstdint>
#include <cstring>
#include <type_traits>

#include "common.h"
#include "cuda_backend.h"
#include "scalar_arith.h"
#include "strata/detail/float32_staging.h"
#include "strata/error.h"
#include "strata/tensor.h"

namespace strata::cuda {
namespace {

// ---- value conversions and scalar operations (as in cpu_fallback/elementwise.cpp) -----------

// float -> integer defined for every input: NaN gives 0, values beyond int64 saturate, uint8
// then wraps modulo 256 (-1.0 -> 255).
template <typename To, typename From>
__host__ __device__ To float_to_integer(From value) {
  int64_t whole;
  if (value != value) {
    whole = 0;
  } else if (value >= static_cast<From>(9223372036854775808.0)) {
    whole = ::cuda::std::numeric_limits<int64_t>::max();
  } else if (value < static_cast<From>(-9223372036854775808.0)) {
    whole = ::cuda::std::numeric_limits<int64_t>::min();
  } else {
    whole = static_cast<int64_t>(value);
  }
  return static_cast<To>(whole);
}

template <typename T>
constexpr bool kIsHalf = std::is_same_v<T, Half> || std::is_same_v<T, BFloat16>;

// As the CPU's convert: the 16-bit floats go through float32 (strata/half.h's exact bit
// conversions, the same on the host and the device).
template <typename To, typename From>
__host__ __device__ To convert(From value) {
  if constexpr (std::is_same_v<To, From>) {
    return value;
  } else if constexpr (kIsHalf<From>) {
    return convert<To>(static_cast<float>(value));
  } else if constexpr (kIsHalf<To>) {
    return To(convert<float>(value));
  } else if constexpr (std::is_same_v<To, bool>) {
    return value != From(0);
  } else if constexpr (std::is_floating_point_v<From> && std::is_integral_v<To>) {
    return float_to_integer<To>(value);
  } else {
    return static_cast<To>(value);
  }
}

// The arithmetic both backends share (core/src/scalar_arith.h).
using scalar::add_values;
using scalar::div_values;
using scalar::floor_divide_values;
using scalar::integer_pow;
using scalar::max_values;
using scalar::min_values;
using scalar::mul_values;
using scalar::negate;
using scalar::remainder_values;
using scalar::sub_values;

template <typename T>
__device__ T pow_values(T x, T y) {
  if constexpr (std::is_same_v<T, bool>) return x || !y;
  else if constexpr (std::is_integral_v<T>) return integer_pow(x, y);
  else if constexpr (std::is_same_v<T, float>) return powf(x, y);
  else return pow(x, y);
}

template <typename T>
__device__ T abs_value(T x) {
  if constexpr (std::is_same_v<T, float>) return fabsf(x);
  else if constexpr (std::is_same_v<T, double>) return fabs(x);
  else if constexpr (std::is_signed_v<T>) return x < 0 ? negate(x) : x;
  else return x;
}

// -1, 0 or 1; NaN gives 0.
template <typename T>
__device__ T sign_value(T x) {
  if constexpr (std::is_same_v<T, bool>) return x;
  else if constexpr (std::is_unsigned_v<T>) return static_cast<T>(x != 0);
  else return static_cast<T>(static_cast<int>(T(0) < x) - static_cast<int>(x < T(0)));
}

template <typename T>
__device__ T exp_value(T x) {
  if constexpr (std::is_same_v<T, float>) return expf(x);
  else if constexpr (std::is_same_v<T, double>) return exp(x);
  else return convert<T>(exp(static_cast<double>(x)));
}

template <typename T>
__device__ T log_value(T x) {
  if constexpr (std::is_same_v<T, float>) return logf(x);
  else if constexpr (std::is_same_v<T, double>) return log(x);
  else return convert<T>(log(static_cast<double>(x)));
}

template <typename T>
__device__ T sqrt_value(T x) {
  if constexpr (std::is_same_v<T, float>) return sqrtf(x);
  else if constexpr (std::is_same_v<T, double>) return sqrt(x);
  else return convert<T>(sqrt(static_cast<double>(x)));
}

template <typename T>
__device__ T reciprocal_value(T x) {
  if constexpr (std::is_floating_point_v<T>) return T(1) / x;
  else return div_values(T(1), x);
}

template <typename T>
__device__ T unary_apply(UnaryOp op, T x) {
  switch (op) {
    case UnaryOp::Neg: return negate(x);
    case UnaryOp::Abs: return abs_value(x);
    case UnaryOp::Sign: return sign_value(x);
    case UnaryOp::Exp: return exp_value(x);
    case UnaryOp::Log: return log_value(x);
    case UnaryOp::Sqrt: return sqrt_value(x);
    case UnaryOp::Reciprocal: return reciprocal_value(x);
  }
  return x;
}

template <typename T>
__device__ T arithmetic_apply(BinaryOp op, T x, T y) {
  switch (op) {
    case BinaryOp::Add: return add_values(x, y);
    case BinaryOp::Sub: return sub_values(x, y);
    case BinaryOp::Mul: return mul_values(x, y);
    case BinaryOp::Div: return div_values(x, y);
    case BinaryOp::Pow: return pow_values(x, y);
    case BinaryOp::Maximum: return max_values(x, y);
    case BinaryOp::Minimum: return min_values(x, y);
    case BinaryOp::FloorDivide: return floor_divide_values(x, y);
    case BinaryOp::Remainder: return remainder_values(x, y);
    default: return T(0);  // comparisons go to compare_apply
  }
}

template <typename T>
__device__ bool compare_apply(BinaryOp op, T x, T y) {
  switch (op) {
    case BinaryOp::Eq: return x == y;
    case BinaryOp::Ne: return x != y;
    case BinaryOp::Lt: return x < y;
    case BinaryOp::Le: return x <= y;
    case BinaryOp::Gt: return x > y;
    case BinaryOp::Ge: return x >= y;
    default: return false;
  }
}

// ---- iteration geometry --------------------------------------------------------------------

constexpr int kMaxDims = 16;

// Offsets (in elements) of N operands for a flat output index, over the merged dims.
template <int N>
struct StridedIndexer {
  int rank = 0;
  bool narrow = true;  // every flat index fits in 32 bits: divide in 32 bits
  int64_t sizes[kMaxDims] = {};
  int64_t strides[N][kMaxDims] = {};

  __device__ __forceinline__ void offsets(int64_t linear, int64_t* off) const {
#pragma unroll
    for (int k = 0; k < N; ++k) off[k] = 0;
    if (narrow) {
      uint32_t rest = static_cast<uint32_t>(linear);
      for (int d = rank - 1; d >= 0; --d) {
        const uint32_t size = static_cast<uint32_t>(sizes[d]);
        const uint32_t index = rest % size;
        rest /= size;
#pragma unroll
        for (int k = 0; k < N; ++k) off[k] += static_cast<int64_t>(index) * strides[k][d];
      }
    } else {
      int64_t rest = linear;
      for (int d = rank - 1; d >= 0; --d) {
        const int64_t index = rest % sizes[d];
        rest /= sizes[d];
#pragma unroll
        for (int k = 0; k < N; ++k) off[k] += index * strides[k][d];
      }
    }
  }
};

// ---- kernels -------------------------------------------------------------------------------

// f(off) for every flat index i in [0, n), off[k] = operand k's element offset. When every
// operand is contiguous (after merging) off[k] = i, with no division.
template <int N, typename F>
__global__ void elementwise_grid_stride_kernel(int64_t n, StridedIndexer<N> indexer,
                                               bool contiguous, F f) {
  const int64_t step = static_cast<int64_t>(blockDim.x) * gridDim.x;
  int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  int64_t off[N];
  if (contiguous) {
    for (; i < n; i += step) {
#pragma unroll
      for (int k = 0; k < N; ++k) off[k] = i;
      f(off);
    }
  } else {
    for (; i < n; i += step) {
      indexer.offsets(i, off);
      f(off);
    }
  }
}

// The per-element bodies (operand 0 is always the output).

template <typename Out, typename In>
struct CopyFunctor {
  Out* dst;
  const In* src;
  __device__ void operator()(const int64_t* off) const { dst[off[0]] = convert<Out>(src[off[1]]); }
};

template <typename E>  // E: an unsigned type of the element's size
struct FillFunctor {
  E* out;
  E value;
  __device__ void operator()(const int64_t* off) const { out[off[0]] = value; }
};

template <typename T>
struct ArangeFunctor {
  T* out;
  double start;
  double step;
  __device__ void operator()(const int64_t* off) const {
    // NOTE: explicit rounding, so nvcc does not fuse this into an fma the CPU does not use.
    out[off[0]] = convert<T>(__dadd_rn(start, __dmul_rn(static_cast<double>(off[0]), step)));
  }
};

template <typename T>
struct UnaryFunctor {
  UnaryOp op;
  T* out;
  const T* in;
  __device__ void operator()(const int64_t* off) const { out[off[0]] = unary_apply(op, in[off[1]]); }
};

// out = op(a, b); either operand may be the scalar instead (then its pointer is null).
template <typename T>
struct BinaryFunctor {
  BinaryOp op;
  bool compare;  // out is bool
  bool square;   // pow(x, 2) computed as x * x, exactly as the CPU does
  void* out;
  const T* a;
  const T* b;
  T scalar;
  __device__ void operator()(const int64_t* off) const {
    const T x = a != nullptr ? a[off[1]] : scalar;
    const T y = b != nullptr ? b[off[2]] : scalar;
    if (compare) {
      static_cast<bool*>(out)[off[0]] = compare_apply(op, x, y);
    } else if (square) {
      static_cast<T*>(out)[off[0]] = x * x;
    } else {
      static_cast<T*>(out)[off[0]] = arithmetic_apply(op, x, y);
    }
  }
};

template <typename E>
struct WhereFunctor {
  E* out;
  const bool* cond;
  const E* a;
  const E* b;
  __device__ void operator()(const int64_t* off) const {
    out[off[0]] = cond[off[1]] ? a[off[2]] : b[off[3]];
  }
};

// ---- launchers -----------------------------------------------------------------------------

template <int N>
struct Geometry {
  StridedIndexer<N> indexer;
  int64_t numel = 1;
  bool contiguous = true;
};

// Drops size-1 dims and merges a dim into the previous one when that is contiguous with it in
// every operand. strides[k] == nullptr: operand k is a scalar (stride 0, and it does not stop
// the contiguous fast path).
template <int N>
Geometry<N> make_geometry(const Shape& shape, const std::array<const int64_t*, N>& strides) {
  Geometry<N> g;
  StridedIndexer<N>& ix = g.indexer;
  for (size_t d = 0; d < shape.size(); ++d) {
    const int64_t size = shape[d];
    g.numel *= size;
    if (size == 1) continue;
    bool mergeable = ix.rank > 0;
    for (int k = 0; k < N && mergeable; ++k) {
      const int64_t stride = strides[k] != nullptr ? strides[k][d] : 0;
      mergeable = ix.strides[k][ix.rank - 1] == stride * size;
    }
    if (mergeable) {
      ix.sizes[ix.rank - 1] *= size;
      for (int k = 0; k < N; ++k) ix.strides[k][ix.rank - 1] = strides[k] != nullptr ? strides[k][d] : 0;
      continue;
    }
    STRATA_CHECK(ix.rank < kMaxDims, "cuda elementwise: more than ", kMaxDims,
                 " dims that cannot be merged in shape ", shape_str(shape));
    ix.sizes[ix.rank] = size;
    for (int k = 0; k < N; ++k) ix.strides[k][ix.rank] = strides[k] != nullptr ? strides[k][d] : 0;
    ++ix.rank;
  }
  ix.narrow = g.numel <= static_cast<int64_t>(UINT32_MAX);
  g.contiguous = ix.rank == 0;
  if (ix.rank == 1) {
    g.contiguous = true;
    for (int k = 0; k < N; ++k) {
      if (strides[k] != nullptr && ix.strides[k][0] != 1) g.contiguous = false;
    }
  }
  return g;
}

template <int N, typename F>
void launch_elementwise(CudaBackend& backend, const Geometry<N>& g, const F& f) {
  if (g.numel == 0) return;
  elementwise_grid_stride_kernel<N, F>
      <<<grid_size(g.numel, backend.max_blocks()), kBlockSize, 0, backend.stream()>>>(
          g.numel, g.indexer, g.contiguous, f);
  CUDA_KERNEL_CHECK();
}

template <typename Out>
void copy_convert_to(CudaBackend& backend, const View& dst, const View& src, const Geometry<2>& g) {
  STRATA_DISPATCH_ALL_AND_HALF(src.dtype, "copy", [&] {
    launch_elementwise(backend, g, CopyFunctor<Out, scalar_t>{static_cast<Out*>(dst.data),
                                                              static_cast<const scalar_t*>(src.data)});
  });
}

void check_same_rank(const char* kernel, const Tensor& out, const Tensor& in) {
  STRATA_ASSERT(in.shape().size() == out.shape().size(), "cuda ", kernel, ": operand of shape ",
                shape_str(in.shape()), " is not broadcast to the output shape ",
                shape_str(out.shape()));
}

}  // namespace

void CudaBackend::copy_view(const View& dst, const View& src) {
  STRATA_ASSERT(dst.shape.size() == src.shape.size(), "cuda copy: ranks differ (",
                shape_str(dst.shape), " and ", shape_str(src.shape), ")");
  DeviceGuard guard(device_index_);
  const Geometry<2> g = make_geometry<2>(dst.shape, {dst.strides.data(), src.strides.data()});
  if (g.numel == 0) return;
  if (dst.dtype == src.dtype) {
    const size_t bytes = element_size(dst.dtype);
    if (g.contiguous) {
      copy_on_device(dst.data, src.data, static_cast<size_t>(g.numel) * bytes);
      return;
    }
    dispatch_element_size(bytes, "copy", [&](auto bits) {
      using E = decltype(bits);
      launch_elementwise(*this, g, CopyFunctor<E, E>{static_cast<E*>(dst.data),
                                                     static_cast<const E*>(src.data)});
    });
    return;
  }
  STRATA_DISPATCH_ALL_AND_HALF(dst.dtype, "copy",
                               [&] { copy_convert_to<scalar_t>(*this, dst, src, g); });
}

void CudaBackend::copy(const Tensor& dst, const Tensor& src) {
  check_same_rank("copy", dst, src);
  copy_view(view_of(dst), view_of(src));
}

void CudaBackend::fill(const Tensor& out, double value) {
  const int64_t n = out.numel();
  if (n == 0) return;
  DeviceGuard guard(device_index_);
  STRATA_DISPATCH_ALL_AND_HALF(out.dtype(), "fill", [&] {
    const scalar_t typed = convert<scalar_t>(value);
    using E = typename BitsOf<sizeof(scalar_t)>::type;
    E bits;
    std::memcpy(&bits, &typed, sizeof(E));
    if (bits == 0 || sizeof(E) == 1) {
      CUDA_CHECK(cudaMemsetAsync(out.raw_data(), static_cast<int>(bits & 0xFF),
                                 static_cast<size_t>(n) * sizeof(E), stream_));
      return;
    }
    Geometry<1> g;
    g.numel = n;
    launch_elementwise(*this, g, FillFunctor<E>{static_cast<E*>(out.raw_data()), bits});
  });
}

void CudaBackend::arange(const Tensor& out, double start, double step) {
  if (detail::any_reduced_floating({&out})) {
    detail::Float32Staging stage;
    arange(stage.output(out), start, step);
    return stage.finish();
  }
  DeviceGuard guard(device_index_);
  STRATA_DISPATCH_NUMERIC(out.dtype(), "arange", [&] {
    Geometry<1> g;
    g.numel = out.numel();
    launch_elementwise(*this, g, ArangeFunctor<scalar_t>{static_cast<scalar_t*>(out.raw_data()),
                                                         start, step});
  });
}

// NOTE: f16 and bf16 arithmetic is staged through float32 for now (Float32Staging); native
// half-precision functors are the next step.
void CudaBackend::unary(UnaryOp op, const Tensor& out, const Tensor& in) {
  if (detail::any_reduced_floating({&out})) {
    detail::Float32Staging stage;
    unary(op, stage.output(out), stage.input(in));
    return stage.finish();
  }
  check_same_rank("unary", out, in);
  DeviceGuard guard(device_index_);
  const Geometry<2> g = make_geometry<2>(out.shape(), {out.strides().data(), in.strides().data()});
  STRATA_DISPATCH_ALL(out.dtype(), "unary", [&] {
    launch_elementwise(*this, g, UnaryFunctor<scalar_t>{op, static_cast<scalar_t*>(out.raw_data()),
                                                        static_cast<const scalar_t*>(in.raw_data())});
  });
}

void CudaBackend::binary(BinaryOp op, const Tensor& out, const Tensor& a, const Tensor& b) {
  if (detail::any_reduced_floating({&a})) {  // out is a's dtype, or bool
    detail::Float32Staging stage;
    binary(op, stage.output(out), stage.input(a), stage.input(b));
    return stage.finish();
  }
  check_same_rank("binary", out, a);
  check_same_rank("binary", out, b);
  DeviceGuard guard(device_index_);
  const Geometry<3> g = make_geometry<3>(
      out.shape(), {out.strides().data(), a.strides().data(), b.strides().data()});
  STRATA_DISPATCH_ALL(a.dtype(), "binary", [&] {
    using T = scalar_t;
    launch_elementwise(*this, g, BinaryFunctor<T>{op, is_comparison(op), false, out.raw_data(),
                                                  static_cast<const T*>(a.raw_data()),
                                                  static_cast<const T*>(b.raw_data()), T{}});
  });
}

void CudaBackend::binary_scalar(BinaryOp op, const Tensor& out, const Tensor& a, double scalar,
                                bool scalar_first) {
  if (detail::any_reduced_floating({&a})) {
    detail::Float32Staging stage;
    binary_scalar(op, stage.output(out), stage.input(a), scalar, scalar_first);
    return stage.finish();
  }
  check_same_rank("binary_scalar", out, a);
  DeviceGuard guard(device_index_);
  // The scalar operand has no strides (nullptr): it does not stop the contiguous fast path.
  const int64_t* a_strides = a.strides().data();
  const Geometry<3> g = make_geometry<3>(
      out.shape(), {out.strides().data(), scalar_first ? nullptr : a_strides,
                    scalar_first ? a_strides : nullptr});
  STRATA_DISPATCH_ALL(a.dtype(), "binary_scalar", [&] {
    using T = scalar_t;
    const T* data = static_cast<const T*>(a.raw_data());
    const bool square = std::is_floating_point_v<T> && op == BinaryOp::Pow && !scalar_first &&
                        scalar == 2.0;
    launch_elementwise(*this, g, BinaryFunctor<T>{op, is_comparison(op), square, out.raw_data(),
                                                  scalar_first ? nullptr : data,
                                                  scalar_first ? data : nullptr,
                                                  convert<T>(scalar)});
  });
}

void CudaBackend::where(const Tensor& out, const Tensor& cond, const Tensor& a, const Tensor& b) {
  check_same_rank("where", out, cond);
  check_same_rank("where", out, a);
  check_same_rank("where", out, b);
  DeviceGuard guard(device_index_);
  const Geometry<4> g = make_geometry<4>(out.shape(), {out.strides().data(), cond.strides().data(),
                                                       a.strides().data(), b.strides().data()});
  dispatch_element_size(out.element_size(), "where", [&](auto bits) {
    using E = decltype(bits);
    launch_elementwise(*this, g, WhereFunctor<E>{static_cast<E*>(out.raw_data()),
                                                 static_cast<const bool*>(cond.raw_data()),
                                                 static_cast<const E*>(a.raw_data()),
                                                 static_cast<const E*>(b.raw_data())});
  });
}

}  // namespace strata::cuda
