// Scan kernels of the CUDA backend: the inclusive running sum or product of a contiguous
// [outer, size, inner] tensor along its middle axis (backend.h). The accumulators are the
// CPU's (float64 for float32 and float64, float32 for the 16-bit floats, wrapping 64-bit for
// int64), so both backends round the same running values; only the order of the additions
// differs, which the wide accumulator hides.
// - Contiguous rows (inner == 1) of at least a block: one block per row scans kScanBlock
//   elements at a time with cub::BlockScan and carries the running value to the next chunk.
// - Otherwise one thread per (outer, inner) column walks the middle axis; neighbouring threads
//   read neighbouring columns, so the loads coalesce when inner is large.
#include <cstdint>
#include <cub/block/block_scan.cuh>
#include <type_traits>

#include "common.h"
#include "cuda_backend.h"
#include "strata/error.h"
#include "strata/tensor.h"

namespace strata::cuda {
namespace {

constexpr int kScanBlock = 256;

template <typename T>
constexpr bool kIsHalf = std::is_same_v<T, Half> || std::is_same_v<T, BFloat16>;

template <typename T>
using AccOf = std::conditional_t<kIsHalf<T>, float,
                                 std::conditional_t<std::is_floating_point_v<T>, double, uint64_t>>;

template <typename Acc, typename T>
__device__ __forceinline__ Acc widen(T x) {
  if constexpr (kIsHalf<T>)
    return static_cast<float>(x);
  else
    return static_cast<Acc>(x);
}

template <typename T, typename Acc>
__device__ __forceinline__ T narrow(Acc acc) {
  if constexpr (kIsHalf<T>)
    return T(acc);
  else if constexpr (std::is_integral_v<T>)
    return static_cast<T>(static_cast<int64_t>(acc));
  else
    return static_cast<T>(acc);
}

template <ScanOp kOp>
struct Combine {
  template <typename Acc>
  __device__ __forceinline__ Acc operator()(Acc a, Acc b) const {
    if constexpr (kOp == ScanOp::Sum)
      return a + b;
    else
      return a * b;
  }
};

// ---- kernels -------------------------------------------------------------------------------

// One block per row of in [rows, size] (grid-stride over rows).
template <typename T, ScanOp kOp>
__global__ void scan_rows_block_kernel(T* out, const T* in, int64_t rows, int64_t size) {
  using Acc = AccOf<T>;
  using BlockScan = cub::BlockScan<Acc, kScanBlock>;
  __shared__ typename BlockScan::TempStorage temp;
  const Combine<kOp> combine;
  const Acc identity = kOp == ScanOp::Sum ? Acc(0) : Acc(1);
  for (int64_t row = blockIdx.x; row < rows; row += gridDim.x) {
    const T* x = in + row * size;
    T* y = out + row * size;
    Acc carry = identity;
    for (int64_t base = 0; base < size; base += kScanBlock) {
      const int64_t k = base + threadIdx.x;
      const Acc value = k < size ? widen<Acc>(x[k]) : identity;
      Acc inclusive, chunk_total;
      BlockScan(temp).InclusiveScan(value, inclusive, combine, chunk_total);
      if (k < size) y[k] = narrow<T>(combine(carry, inclusive));
      carry = combine(carry, chunk_total);
      __syncthreads();  // temp is reused by the next chunk
    }
  }
}

// One thread per column c = (o, j) of in [outer, size, inner]; columns = outer * inner.
template <typename T, ScanOp kOp>
__global__ void scan_columns_kernel(T* out, const T* in, int64_t columns, int64_t size,
                                    int64_t inner) {
  using Acc = AccOf<T>;
  const Combine<kOp> combine;
  const int64_t step = static_cast<int64_t>(blockDim.x) * gridDim.x;
  for (int64_t c = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; c < columns;
       c += step) {
    const int64_t base = (c / inner) * size * inner + c % inner;
    Acc running = kOp == ScanOp::Sum ? Acc(0) : Acc(1);
    for (int64_t k = 0; k < size; ++k) {
      running = combine(running, widen<Acc>(in[base + k * inner]));
      out[base + k * inner] = narrow<T>(running);
    }
  }
}

template <typename T, ScanOp kOp>
void launch_scan(CudaBackend& backend, const Tensor& out, const Tensor& in, int64_t outer,
                 int64_t size, int64_t inner) {
  T* y = static_cast<T*>(out.raw_data());
  const T* x = static_cast<const T*>(in.raw_data());
  if (inner == 1 && size >= kScanBlock) {
    const auto blocks =
        static_cast<unsigned int>(outer < backend.max_blocks() ? outer : backend.max_blocks());
    scan_rows_block_kernel<T, kOp><<<blocks, kScanBlock, 0, backend.stream()>>>(y, x, outer, size);
  } else {
    const int64_t columns = outer * inner;
    scan_columns_kernel<T, kOp>
        <<<grid_size(columns, backend.max_blocks()), kBlockSize, 0, backend.stream()>>>(
            y, x, columns, size, inner);
  }
  CUDA_KERNEL_CHECK();
}

}  // namespace

void CudaBackend::scan(ScanOp op, const Tensor& out, const Tensor& in, int64_t outer, int64_t size,
                       int64_t inner) {
  if (outer * size * inner == 0) return;
  DeviceGuard guard(device_index_);
  const auto run = [&](auto zero) {
    using T = decltype(zero);
    if (op == ScanOp::Sum)
      launch_scan<T, ScanOp::Sum>(*this, out, in, outer, size, inner);
    else
      launch_scan<T, ScanOp::Prod>(*this, out, in, outer, size, inner);
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
  STRATA_ASSERT(false, "cuda scan: unsupported dtype ", dtype_name(in.dtype()),
                " (the op promotes integers to int64)");
}

}  // namespace strata::cuda
