// Elementwise kernels of the CPU backend: copy (any strides, any dtype pair), fill, arange,
// unary, binary (tensor-tensor and tensor-scalar) and where.
// Inputs are strided views already broadcast to the output's shape (stride 0 on broadcast
// dims). Every kernel runs through one StridedLoop: size-1 dims are dropped and adjacent dims
// that are contiguous for every operand are merged, so a contiguous tensor becomes one flat
// row; the innermost dim is a tight loop with fast cases for unit and zero strides. Small
// tensors run on the calling thread with no heap allocation; large ones split rows over OpenMP.
#include <omp.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <cstring>
#include <limits>
#include <type_traits>

#include "cpu_backend.h"
#include "half_convert.h"
#include "parallel.h"
#include "scalar_arith.h"
#include "strata/detail/float32_staging.h"
#include "strata/error.h"
#include "strata/tensor.h"
#include "vec_math.h"

namespace strata::cpu {
namespace {

// ---- value conversions ---------------------------------------------------------------------

// float -> integer conversion that is defined for every input: NaN gives 0, values beyond
// int64's range saturate (as CUDA's conversion does); uint8 then wraps modulo 256 like
// PyTorch's CPU path (-1.0 -> 255).
template <typename To, typename From>
To float_to_integer(From value) {
  int64_t whole;
  if (std::isnan(value)) {
    whole = 0;
  } else if (value >= static_cast<From>(9223372036854775808.0)) {
    whole = std::numeric_limits<int64_t>::max();
  } else if (value < static_cast<From>(-9223372036854775808.0)) {
    whole = std::numeric_limits<int64_t>::min();
  } else {
    whole = static_cast<int64_t>(value);
  }
  return static_cast<To>(whole);
}

template <typename T>
constexpr bool kIsHalf = std::is_same_v<T, Half> || std::is_same_v<T, BFloat16>;

// The value `value` of type From as a To; bool is `value != 0`. The 16-bit floats convert
// through float32, as PyTorch's do (so a double reaching f16 is rounded twice).
template <typename To, typename From>
To convert(From value) {
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

// ---- scalar operations ---------------------------------------------------------------------
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
T pow_values(T x, T y) {
  if constexpr (std::is_same_v<T, bool>) return x || !y;
  else if constexpr (std::is_integral_v<T>) return integer_pow(x, y);
  else return std::pow(x, y);
}

template <typename T>
T abs_value(T x) {
  if constexpr (std::is_floating_point_v<T>) return std::abs(x);
  else if constexpr (std::is_signed_v<T>) return x < 0 ? negate(x) : x;
  else return x;
}

// -1, 0 or 1; NaN gives 0.
template <typename T>
T sign_value(T x) {
  if constexpr (std::is_same_v<T, bool>) return x;
  else return static_cast<T>(static_cast<int>(T(0) < x) - static_cast<int>(x < T(0)));
}

// Exp, Log, Sqrt on integer dtypes are never asked for; they go through double so that they
// still give a defined value.
template <typename T, typename Fn>
T through_double(T x, Fn fn) {
  if constexpr (std::is_floating_point_v<T>) return fn(x);
  else return convert<T>(fn(static_cast<double>(x)));
}

// float32 Exp and Log are vec_math.h's branch-free versions, so the contiguous loop vectorizes.
template <typename T>
T exp_value(T x) {
  return through_double(x, [](auto v) { return vecmath::exp(v); });
}

template <typename T>
T log_value(T x) {
  return through_double(x, [](auto v) { return vecmath::log(v); });
}

template <typename T>
T sqrt_value(T x) {
  return through_double(x, [](auto v) { return std::sqrt(v); });
}

template <typename T>
T reciprocal_value(T x) {
  if constexpr (std::is_floating_point_v<T>) return T(1) / x;
  else return div_values(T(1), x);
}

// ---- the strided loop ----------------------------------------------------------------------

constexpr int kMaxDims = 16;

// One operand of a loop: element 0 of its view, and its strides (in elements) over the loop's
// shape; strides == nullptr means one value read everywhere (a scalar).
struct Operand {
  char* data;
  const int64_t* strides;
  int64_t element_size;
};

// NOTE: kernels read a tensor's fields through one TensorImpl reference, not through Tensor's
// accessors: each accessor is an out-of-line call with a check, and a dozen of them cost more
// than the whole 1-element add. data is element 0 of the view, as Tensor::raw_data().
Operand operand_of(const TensorImpl& tensor) {
  const auto element_bytes = static_cast<int64_t>(element_size(tensor.dtype));
  return {static_cast<char*>(tensor.storage->data()) + tensor.offset * element_bytes,
          tensor.strides.data(), element_bytes};
}

template <typename T>
T* typed(char* ptr) {
  return reinterpret_cast<T*>(ptr);
}

// The iteration space after dropping size-1 dims and merging dims that are contiguous with
// the next one in every operand. rank >= 1 always.
template <int N>
struct StridedLoop {
  int rank = 0;
  int64_t numel = 1;
  int64_t sizes[kMaxDims];
  int64_t strides[N][kMaxDims];  // in elements

  int64_t inner_stride(int operand) const { return strides[operand][rank - 1]; }
};

template <int N>
StridedLoop<N> make_loop(const Shape& shape, const std::array<Operand, N>& operands) {
  StridedLoop<N> loop;
  const int dims = static_cast<int>(shape.size());
  for (int d = 0; d < dims; ++d) {
    const int64_t size = shape[d];
    loop.numel *= size;
    if (size == 1) continue;
    bool mergeable = loop.rank > 0;
    for (int k = 0; k < N && mergeable; ++k) {
      const int64_t stride = operands[k].strides ? operands[k].strides[d] : 0;
      mergeable = loop.strides[k][loop.rank - 1] == stride * size;
    }
    if (mergeable) {
      loop.sizes[loop.rank - 1] *= size;
      for (int k = 0; k < N; ++k) {
        loop.strides[k][loop.rank - 1] = operands[k].strides ? operands[k].strides[d] : 0;
      }
      continue;
    }
    STRATA_ASSERT(loop.rank < kMaxDims, "cpu elementwise: more than ", kMaxDims,
                  " non-mergeable dims in shape ", shape_str(shape));
    loop.sizes[loop.rank] = size;
    for (int k = 0; k < N; ++k) {
      loop.strides[k][loop.rank] = operands[k].strides ? operands[k].strides[d] : 0;
    }
    ++loop.rank;
  }
  if (loop.rank == 0) {  // a single element
    loop.rank = 1;
    loop.sizes[0] = 1;
    for (int k = 0; k < N; ++k) loop.strides[k][0] = 0;
  }
  return loop;
}

// Calls row(ptrs, n) for the flat (row-major) element range [begin, end): ptrs[k] points at
// operand k's first element of a run of n elements along the innermost dim.
template <int N, typename RowFn>
void run_range(const StridedLoop<N>& loop, const std::array<Operand, N>& operands,
               int64_t begin, int64_t end, const RowFn& row) {
  const int last = loop.rank - 1;
  int64_t index[kMaxDims];
  char* ptrs[N];
  for (int k = 0; k < N; ++k) ptrs[k] = operands[k].data;
  if (begin == 0) {  // the common case, without the divisions
    for (int d = 0; d <= last; ++d) index[d] = 0;
  } else {
    int64_t rest = begin;
    for (int d = last; d >= 0; --d) {
      index[d] = rest % loop.sizes[d];
      rest /= loop.sizes[d];
      for (int k = 0; k < N; ++k) {
        ptrs[k] += index[d] * loop.strides[k][d] * operands[k].element_size;
      }
    }
  }
  const int64_t inner = loop.sizes[last];
  while (true) {
    const int64_t n = std::min(inner - index[last], end - begin);
    row(ptrs, n);
    begin += n;
    if (begin >= end) return;
    // The run reached the end of the innermost dim: rewind it and step the outer dims.
    for (int k = 0; k < N; ++k) {
      ptrs[k] -= index[last] * loop.strides[k][last] * operands[k].element_size;
    }
    index[last] = 0;
    for (int d = last - 1; d >= 0; --d) {
      for (int k = 0; k < N; ++k) ptrs[k] += loop.strides[k][d] * operands[k].element_size;
      if (++index[d] < loop.sizes[d]) break;
      for (int k = 0; k < N; ++k) {
        ptrs[k] -= loop.sizes[d] * loop.strides[k][d] * operands[k].element_size;
      }
      index[d] = 0;
    }
  }
}

// Runs `row` over every element of the loop, splitting the flat range over OpenMP threads when
// it is large.
template <int N, typename RowFn>
void for_each_row(const StridedLoop<N>& loop, const std::array<Operand, N>& operands,
                  const RowFn& row) {
  const int64_t numel = loop.numel;
  if (numel == 0) return;
  if (!worth_threads(numel)) {
    run_range<N>(loop, operands, 0, numel, row);
    return;
  }
#pragma omp parallel
  {
    const int64_t threads = omp_get_num_threads();
    const int64_t thread = omp_get_thread_num();
    // Chunk starts are multiples of 64 elements so threads do not share output cache lines.
    const auto chunk_start = [&](int64_t t) {
      return t == threads ? numel : (numel * t / threads) & ~int64_t{63};
    };
    const int64_t begin = chunk_start(thread), end = chunk_start(thread + 1);
    if (begin < end) run_range<N>(loop, operands, begin, end, row);
  }
}

// ---- kernels -------------------------------------------------------------------------------

// A copy where one side is contiguous along the last dim and the other along the dim before
// (a transpose): walked in 32x32 tiles, so the strided side stays in cache across a tile's
// rows instead of missing on every element. Threads split bands of tile rows.
template <typename Out, typename In>
void copy_transposing(const StridedLoop<2>& loop, const std::array<Operand, 2>& operands) {
  constexpr int64_t kTile = 32;
  const int r = loop.rank;
  const int64_t rows = loop.sizes[r - 2], cols = loop.sizes[r - 1];
  const int64_t o_rs = loop.strides[0][r - 2], o_cs = loop.strides[0][r - 1];
  const int64_t x_rs = loop.strides[1][r - 2], x_cs = loop.strides[1][r - 1];
  int64_t matrices = 1;
  for (int d = 0; d < r - 2; ++d) matrices *= loop.sizes[d];
  const int64_t bands = (rows + kTile - 1) / kTile;
  parallel_for(matrices * bands, worth_threads(loop.numel), [&](int64_t item) {
    Out* o = typed<Out>(operands[0].data);
    const In* x = typed<const In>(operands[1].data);
    int64_t rest = item / bands;
    for (int d = r - 3; d >= 0; --d) {
      const int64_t index = rest % loop.sizes[d];
      rest /= loop.sizes[d];
      o += index * loop.strides[0][d];
      x += index * loop.strides[1][d];
    }
    const int64_t i0 = item % bands * kTile, i1 = std::min(rows, i0 + kTile);
    for (int64_t j0 = 0; j0 < cols; j0 += kTile) {
      const int64_t j1 = std::min(cols, j0 + kTile);
      for (int64_t i = i0; i < i1; ++i) {
        for (int64_t j = j0; j < j1; ++j) {
          o[i * o_rs + j * o_cs] = convert<Out>(x[i * x_rs + j * x_cs]);
        }
      }
    }
  });
}

template <typename Out, typename In>
void copy_loop(const TensorImpl& dst, const TensorImpl& src) {
  const std::array<Operand, 2> operands = {operand_of(dst), operand_of(src)};
  const StridedLoop<2> loop = make_loop<2>(dst.shape, operands);
  const int64_t so = loop.inner_stride(0), si = loop.inner_stride(1);
  if (loop.rank >= 2 && loop.numel >= 1024) {
    const int64_t so_outer = loop.strides[0][loop.rank - 2];
    const int64_t si_outer = loop.strides[1][loop.rank - 2];
    if ((so == 1 && si != 1 && si_outer == 1) || (si == 1 && so != 1 && so_outer == 1)) {
      return copy_transposing<Out, In>(loop, operands);
    }
  }
  for_each_row<2>(loop, operands, [&](char* const* p, int64_t n) {
    Out* o = typed<Out>(p[0]);
    const In* x = typed<const In>(p[1]);
    if constexpr (std::is_same_v<Out, In>) {
      if (so == 1 && si == 1) {  // memmove: a copy within one storage may overlap
        std::memmove(o, x, static_cast<size_t>(n) * sizeof(Out));
        return;
      }
    }
    if constexpr ((kIsHalf<Out> && std::is_same_v<In, float>) ||
                  (kIsHalf<In> && std::is_same_v<Out, float>)) {
      if (so == 1 && si == 1) return convert_run(x, o, n);  // vectorized
    }
    if (so == 1 && si == 1) {
      for (int64_t i = 0; i < n; ++i) o[i] = convert<Out>(x[i]);
    } else {
      for (int64_t i = 0; i < n; ++i) o[i * so] = convert<Out>(x[i * si]);
    }
  });
}

// Second half of the dtype-pair dispatch (a separate function so the two scalar_t don't nest).
template <typename Out>
void copy_to(const TensorImpl& dst, const TensorImpl& src) {
  STRATA_DISPATCH_ALL_AND_HALF(src.dtype, "copy",
                               [&] { copy_loop<Out, scalar_t>(dst, src); });
}

// o[i] = op(x[i]) over a contiguous row, in AVX2 and baseline clones (vec_math.h): for the
// ops whose float32 loop calls vec_math.h.
template <typename T, typename Op>
STRATA_VECTOR_CLONES void unary_contiguous_cloned(T* o, const T* x, int64_t n, Op op) {
  for (int64_t i = 0; i < n; ++i) o[i] = op(x[i]);
}

// kVectorMath: the contiguous rows run unary_contiguous_cloned (Exp and Log).
template <typename T, bool kVectorMath = false, typename Op>
void unary_loop(const TensorImpl& out, const TensorImpl& in, Op op) {
  const std::array<Operand, 2> operands = {operand_of(out), operand_of(in)};
  const StridedLoop<2> loop = make_loop<2>(out.shape, operands);
  const int64_t so = loop.inner_stride(0), si = loop.inner_stride(1);
  for_each_row<2>(loop, operands, [&](char* const* p, int64_t n) {
    T* o = typed<T>(p[0]);
    const T* x = typed<const T>(p[1]);
    if (so == 1 && si == 1) {
      if constexpr (kVectorMath) {
        unary_contiguous_cloned(o, x, n, op);
      } else {
        for (int64_t i = 0; i < n; ++i) o[i] = op(x[i]);
      }
    } else {
      for (int64_t i = 0; i < n; ++i) o[i * so] = op(x[i * si]);
    }
  });
}

// out = op(a, b) over out's shape; Out is T, or bool for comparisons.
template <typename T, typename Out, typename Op>
void binary_loop(const Shape& shape, const std::array<Operand, 3>& operands, Op op) {
  const StridedLoop<3> loop = make_loop<3>(shape, operands);
  const int64_t so = loop.inner_stride(0), sa = loop.inner_stride(1), sb = loop.inner_stride(2);
  for_each_row<3>(loop, operands, [&](char* const* p, int64_t n) {
    Out* o = typed<Out>(p[0]);
    const T* a = typed<const T>(p[1]);
    const T* b = typed<const T>(p[2]);
    if (so == 1 && sa == 1 && sb == 1) {
      for (int64_t i = 0; i < n; ++i) o[i] = op(a[i], b[i]);
    } else if (so == 1 && sa == 1 && sb == 0) {
      const T bv = *b;
      for (int64_t i = 0; i < n; ++i) o[i] = op(a[i], bv);
    } else if (so == 1 && sa == 0 && sb == 1) {
      const T av = *a;
      for (int64_t i = 0; i < n; ++i) o[i] = op(av, b[i]);
    } else {
      for (int64_t i = 0; i < n; ++i) o[i * so] = op(a[i * sa], b[i * sb]);
    }
  });
}

template <typename T>
void binary_typed(BinaryOp op, const Shape& shape, const std::array<Operand, 3>& operands) {
  const auto arithmetic = [&](auto fn) { binary_loop<T, T>(shape, operands, fn); };
  const auto comparison = [&](auto fn) { binary_loop<T, bool>(shape, operands, fn); };
  switch (op) {
    case BinaryOp::Add: return arithmetic([](T x, T y) { return add_values(x, y); });
    case BinaryOp::Sub: return arithmetic([](T x, T y) { return sub_values(x, y); });
    case BinaryOp::Mul: return arithmetic([](T x, T y) { return mul_values(x, y); });
    case BinaryOp::Div: return arithmetic([](T x, T y) { return div_values(x, y); });
    case BinaryOp::Pow: return arithmetic([](T x, T y) { return pow_values(x, y); });
    case BinaryOp::Maximum: return arithmetic([](T x, T y) { return max_values(x, y); });
    case BinaryOp::Minimum: return arithmetic([](T x, T y) { return min_values(x, y); });
    case BinaryOp::FloorDivide:
      return arithmetic([](T x, T y) { return floor_divide_values(x, y); });
    case BinaryOp::Remainder:
      return arithmetic([](T x, T y) { return remainder_values(x, y); });
    case BinaryOp::Eq: return comparison([](T x, T y) { return x == y; });
    case BinaryOp::Ne: return comparison([](T x, T y) { return x != y; });
    case BinaryOp::Lt: return comparison([](T x, T y) { return x < y; });
    case BinaryOp::Le: return comparison([](T x, T y) { return x <= y; });
    case BinaryOp::Gt: return comparison([](T x, T y) { return x > y; });
    case BinaryOp::Ge: return comparison([](T x, T y) { return x >= y; });
  }
  STRATA_ASSERT(false, "cpu binary: unknown op ", static_cast<int>(op));
}

template <typename T>
void where_loop(const TensorImpl& out, const TensorImpl& cond, const TensorImpl& a,
                const TensorImpl& b) {
  const std::array<Operand, 4> operands = {operand_of(out), operand_of(cond), operand_of(a),
                                           operand_of(b)};
  const StridedLoop<4> loop = make_loop<4>(out.shape, operands);
  const int64_t so = loop.inner_stride(0), sc = loop.inner_stride(1);
  const int64_t sa = loop.inner_stride(2), sb = loop.inner_stride(3);
  for_each_row<4>(loop, operands, [&](char* const* p, int64_t n) {
    T* o = typed<T>(p[0]);
    const bool* c = typed<const bool>(p[1]);
    const T* x = typed<const T>(p[2]);
    const T* y = typed<const T>(p[3]);
    if (so == 1 && sc == 1 && sa == 1 && sb == 1) {
      for (int64_t i = 0; i < n; ++i) o[i] = c[i] ? x[i] : y[i];
    } else {
      for (int64_t i = 0; i < n; ++i) o[i * so] = c[i * sc] ? x[i * sa] : y[i * sb];
    }
  });
}

// Contiguous out of n elements: out[i] = value_at(i), in parallel chunks when large.
template <typename T, typename ValueFn>
void generate_contiguous(T* out, int64_t n, const ValueFn& value_at) {
  parallel_for(n, worth_threads(n), [&](int64_t i) { out[i] = value_at(i); });
}

void check_same_rank(const char* kernel, const TensorImpl& out, const TensorImpl& in) {
  STRATA_ASSERT(in.shape.size() == out.shape.size(), "cpu ", kernel, ": operand of shape ",
                shape_str(in.shape), " is not broadcast to the output shape ",
                shape_str(out.shape));
}

}  // namespace

void CpuBackend::copy(const Tensor& dst_tensor, const Tensor& src_tensor) {
  const TensorImpl& dst = *dst_tensor.impl();
  const TensorImpl& src = *src_tensor.impl();
  check_same_rank("copy", dst, src);
  STRATA_DISPATCH_ALL_AND_HALF(dst.dtype, "copy", [&] { copy_to<scalar_t>(dst, src); });
}

void CpuBackend::fill(const Tensor& out, double value) {
  STRATA_DISPATCH_ALL_AND_HALF(out.dtype(), "fill", [&] {
    const scalar_t v = convert<scalar_t>(value);
    generate_contiguous(static_cast<scalar_t*>(out.raw_data()), out.numel(),
                        [v](int64_t) { return v; });
  });
}

void CpuBackend::arange(const Tensor& out, double start, double step) {
  if (detail::any_reduced_floating({&out})) {
    detail::Float32Staging stage;
    arange(stage.output(out), start, step);
    return stage.finish();
  }
  STRATA_DISPATCH_NUMERIC(out.dtype(), "arange", [&] {
    generate_contiguous(static_cast<scalar_t*>(out.raw_data()), out.numel(), [=](int64_t i) {
      return convert<scalar_t>(start + static_cast<double>(i) * step);
    });
  });
}

void CpuBackend::unary(UnaryOp op, const Tensor& out_tensor, const Tensor& in_tensor) {
  if (detail::any_reduced_floating({&out_tensor})) {
    detail::Float32Staging stage;
    unary(op, stage.output(out_tensor), stage.input(in_tensor));
    return stage.finish();
  }
  const TensorImpl& out = *out_tensor.impl();
  const TensorImpl& in = *in_tensor.impl();
  check_same_rank("unary", out, in);
  STRATA_DISPATCH_ALL(out.dtype, "unary", [&] {
    using T = scalar_t;
    const auto run = [&](auto fn) { unary_loop<T>(out, in, fn); };
    const auto run_vector_math = [&](auto fn) { unary_loop<T, true>(out, in, fn); };
    switch (op) {
      case UnaryOp::Neg: return run([](T x) { return negate(x); });
      case UnaryOp::Abs: return run([](T x) { return abs_value(x); });
      case UnaryOp::Sign: return run([](T x) { return sign_value(x); });
      case UnaryOp::Exp: return run_vector_math([](T x) { return exp_value(x); });
      case UnaryOp::Log: return run_vector_math([](T x) { return log_value(x); });
      case UnaryOp::Sqrt: return run([](T x) { return sqrt_value(x); });
      case UnaryOp::Reciprocal: return run([](T x) { return reciprocal_value(x); });
    }
    STRATA_ASSERT(false, "cpu unary: unknown op ", static_cast<int>(op));
  });
}

void CpuBackend::binary(BinaryOp op, const Tensor& out_tensor, const Tensor& a_tensor,
                        const Tensor& b_tensor) {
  if (detail::any_reduced_floating({&a_tensor})) {  // out is a's dtype, or bool
    detail::Float32Staging stage;
    binary(op, stage.output(out_tensor), stage.input(a_tensor), stage.input(b_tensor));
    return stage.finish();
  }
  const TensorImpl& out = *out_tensor.impl();
  const TensorImpl& a = *a_tensor.impl();
  const TensorImpl& b = *b_tensor.impl();
  check_same_rank("binary", out, a);
  check_same_rank("binary", out, b);
  const std::array<Operand, 3> operands = {operand_of(out), operand_of(a), operand_of(b)};
  STRATA_DISPATCH_ALL(a.dtype, "binary", [&] { binary_typed<scalar_t>(op, out.shape, operands); });
}

void CpuBackend::binary_scalar(BinaryOp op, const Tensor& out_tensor, const Tensor& a_tensor,
                               double scalar, bool scalar_first) {
  if (detail::any_reduced_floating({&a_tensor})) {
    detail::Float32Staging stage;
    binary_scalar(op, stage.output(out_tensor), stage.input(a_tensor), scalar, scalar_first);
    return stage.finish();
  }
  const TensorImpl& out = *out_tensor.impl();
  const TensorImpl& a = *a_tensor.impl();
  check_same_rank("binary_scalar", out, a);
  STRATA_DISPATCH_ALL(a.dtype, "binary_scalar", [&] {
    using T = scalar_t;
    T value = convert<T>(scalar);
    // The scalar is an operand with stride 0 everywhere, so it takes the broadcast fast path.
    const Operand scalar_operand{reinterpret_cast<char*>(&value), nullptr, sizeof(T)};
    if constexpr (std::is_floating_point_v<T>) {
      if (op == BinaryOp::Pow && !scalar_first && scalar == 2.0) {  // x*x is pow(x, 2) exactly
        return unary_loop<T>(out, a, [](T x) { return x * x; });
      }
    }
    const std::array<Operand, 3> operands =
        scalar_first ? std::array<Operand, 3>{operand_of(out), scalar_operand, operand_of(a)}
                     : std::array<Operand, 3>{operand_of(out), operand_of(a), scalar_operand};
    binary_typed<T>(op, out.shape, operands);
  });
}

void CpuBackend::where(const Tensor& out_tensor, const Tensor& cond_tensor, const Tensor& a_tensor,
                       const Tensor& b_tensor) {
  const TensorImpl& out = *out_tensor.impl();
  const TensorImpl& cond = *cond_tensor.impl();
  const TensorImpl& a = *a_tensor.impl();
  const TensorImpl& b = *b_tensor.impl();
  check_same_rank("where", out, cond);
  check_same_rank("where", out, a);
  check_same_rank("where", out, b);
  STRATA_DISPATCH_ALL_AND_HALF(out.dtype, "where",
                               [&] { where_loop<scalar_t>(out, cond, a, b); });
}

}  // namespace strata::cpu
