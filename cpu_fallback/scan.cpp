// Scan kernels of the CPU backend: the inclusive running sum or product of a contiguous
// [outer, size, inner] tensor along its middle axis (backend.h). Each running value is kept
// in a wider accumulator (float64 for float32 and float64, as PyTorch's CPU kernel; float32
// for the 16-bit floats; wrapping 64-bit for int64) and rounded once per output. For inner > 1
// a block of up to 256 running values walks the middle axis together, reading contiguous runs;
// (outer, block) items are split over OpenMP threads when the work is large.
#include <algorithm>
#include <cstdint>
#include <type_traits>

#include "cpu_backend.h"
#include "parallel.h"
#include "strata/error.h"
#include "strata/tensor.h"

namespace strata::cpu {
namespace {

constexpr int64_t kColumnBlock = 256;

template <typename T>
constexpr bool kIsHalf = std::is_same_v<T, Half> || std::is_same_v<T, BFloat16>;

// The accumulator of each element type.
template <typename T>
using AccOf = std::conditional_t<kIsHalf<T>, float,
                                 std::conditional_t<std::is_floating_point_v<T>, double, uint64_t>>;

template <typename Acc, typename T>
Acc widen(T x) {
  if constexpr (kIsHalf<T>)
    return static_cast<float>(x);
  else
    return static_cast<Acc>(x);
}

template <typename T, typename Acc>
T narrow(Acc acc) {
  if constexpr (kIsHalf<T>)
    return T(acc);
  else if constexpr (std::is_integral_v<T>)
    return static_cast<T>(static_cast<int64_t>(acc));
  else
    return static_cast<T>(acc);
}

template <typename T, ScanOp kOp>
void scan_typed(const Tensor& out, const Tensor& in, int64_t outer, int64_t size, int64_t inner) {
  using Acc = AccOf<T>;
  const Acc identity = kOp == ScanOp::Sum ? Acc(0) : Acc(1);
  const auto combine = [](Acc a, Acc b) { return kOp == ScanOp::Sum ? a + b : a * b; };
  const T* x = static_cast<const T*>(in.raw_data());
  T* y = static_cast<T*>(out.raw_data());
  const int64_t blocks = (inner + kColumnBlock - 1) / kColumnBlock;
  // Item (o, b): columns [b * kColumnBlock, ...) of slab o, all of the middle axis.
  parallel_for(outer * blocks, outer * blocks > 1 && worth_threads(outer * size * inner),
               [&](int64_t item) {
                 const int64_t o = item / blocks;
                 const int64_t j0 = item % blocks * kColumnBlock;
                 const int64_t width = std::min(kColumnBlock, inner - j0);
                 const T* from = x + o * size * inner + j0;
                 T* to = y + o * size * inner + j0;
                 Acc running[kColumnBlock];
                 std::fill(running, running + width, identity);
                 for (int64_t k = 0; k < size; ++k) {
                   for (int64_t j = 0; j < width; ++j) {
                     running[j] = combine(running[j], widen<Acc>(from[k * inner + j]));
                     to[k * inner + j] = narrow<T>(running[j]);
                   }
                 }
               });
}

}  // namespace

void CpuBackend::scan(ScanOp op, const Tensor& out, const Tensor& in, int64_t outer, int64_t size,
                      int64_t inner) {
  const auto run = [&](auto zero) {
    using T = decltype(zero);
    if (op == ScanOp::Sum)
      scan_typed<T, ScanOp::Sum>(out, in, outer, size, inner);
    else
      scan_typed<T, ScanOp::Prod>(out, in, outer, size, inner);
  };
  switch (in.dtype()) {
    case DType::Float32:
      return run(float{});
    case DType::Float64:
      return run(double{});
    case DType::Float16:
      return run(Half{});
    case DType::BFloat16:
      return run(BFloat16{});
    case DType::Int64:
      return run(int64_t{});
    default:
      break;
  }
  STRATA_ASSERT(false, "cpu scan: unsupported dtype ", dtype_name(in.dtype()),
                " (the op promotes integers to int64)");
}

}  // namespace strata::cpu
