// Indexing kernels of the CUDA backend: index_select, index_add, gather, scatter_add. Every
// tensor is contiguous and every index already range-checked (backend.h).
// index_select / index_add see their tensors as [outer, dim size, inner]; gather / scatter_add
// walk the index's shape and address the other tensor (whose sizes off `dim` may be larger)
// through its own contiguous strides. The adds use atomics, so with repeated indices the
// order of floating-point additions (and so the last bits) may vary from run to run.
#include <cstdint>

#include "common.h"
#include "cuda_backend.h"
#include "strata/error.h"
#include "strata/tensor.h"

namespace strata::cuda {
namespace {

constexpr int kMaxDims = 16;

// ---- atomics -------------------------------------------------------------------------------

__device__ __forceinline__ void atomic_add(float* address, float value) { atomicAdd(address, value); }
__device__ __forceinline__ void atomic_add(double* address, double value) { atomicAdd(address, value); }
// Two's complement: adding as unsigned 64-bit is adding as int64 (wrapping).
__device__ __forceinline__ void atomic_add(int64_t* address, int64_t value) {
  atomicAdd(reinterpret_cast<unsigned long long*>(address), static_cast<unsigned long long>(value));
}
// No byte atomics: compare-and-swap on the aligned 32-bit word holding the byte (it lies inside
// the allocation: blocks are 512-byte multiples at 256-byte aligned addresses).
__device__ __forceinline__ void atomic_add(uint8_t* address, uint8_t value) {
  const uintptr_t bits = reinterpret_cast<uintptr_t>(address);
  unsigned int* word = reinterpret_cast<unsigned int*>(bits & ~uintptr_t{3});
  const unsigned int shift = static_cast<unsigned int>(bits & 3) * 8;
  unsigned int old = *word, assumed;
  do {
    assumed = old;
    const unsigned int byte = ((assumed >> shift) + value) & 0xFFu;
    old = atomicCAS(word, assumed, (assumed & ~(0xFFu << shift)) | (byte << shift));
  } while (assumed != old);
}

// ---- kernels -------------------------------------------------------------------------------

// out [outer, count, inner] = in [outer, in_size, inner] at index[count] along the middle.
template <typename E>
__global__ void index_select_kernel(E* out, const E* in, const int64_t* index, int64_t n,
                                    int64_t count, int64_t in_size, int64_t inner) {
  const int64_t step = static_cast<int64_t>(blockDim.x) * gridDim.x;
  for (int64_t q = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; q < n; q += step) {
    const int64_t j = q % inner;
    const int64_t rest = q / inner;
    const int64_t i = rest % count, o = rest / count;
    out[q] = in[(o * in_size + index[i]) * inner + j];
  }
}

// out [outer, out_size, inner] at index[count] along the middle += src [outer, count, inner].
template <typename T>
__global__ void index_add_kernel(T* out, const T* src, const int64_t* index, int64_t n,
                                 int64_t count, int64_t out_size, int64_t inner) {
  const int64_t step = static_cast<int64_t>(blockDim.x) * gridDim.x;
  for (int64_t q = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; q < n; q += step) {
    const int64_t j = q % inner;
    const int64_t rest = q / inner;
    const int64_t i = rest % count, o = rest / count;
    atomic_add(&out[(o * out_size + index[i]) * inner + j], src[q]);
  }
}

// The index's shape, and the contiguous strides of the tensor addressed through it.
struct IndexGeometry {
  int rank = 0;
  int dim = 0;
  int64_t sizes[kMaxDims] = {};
  int64_t target_strides[kMaxDims] = {};

  // Offset in the target of index element q: its coordinates, with index[q] along `dim`.
  __device__ __forceinline__ int64_t target_offset(int64_t q, int64_t index_value) const {
    int64_t rest = q, offset = index_value * target_strides[dim];
    for (int d = rank - 1; d >= 0; --d) {
      const int64_t coordinate = rest % sizes[d];
      rest /= sizes[d];
      if (d != dim) offset += coordinate * target_strides[d];
    }
    return offset;
  }
};

// out[q] = in[coordinates of q with index[q] along dim]; out and index share a shape.
template <typename E>
__global__ void gather_kernel(E* out, const E* in, const int64_t* index, int64_t n,
                              IndexGeometry geometry) {
  const int64_t step = static_cast<int64_t>(blockDim.x) * gridDim.x;
  for (int64_t q = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; q < n; q += step) {
    out[q] = in[geometry.target_offset(q, index[q])];
  }
}

// out[coordinates of q with index[q] along dim] += src[q]; src and index share a shape.
template <typename T>
__global__ void scatter_add_kernel(T* out, const T* src, const int64_t* index, int64_t n,
                                   IndexGeometry geometry) {
  const int64_t step = static_cast<int64_t>(blockDim.x) * gridDim.x;
  for (int64_t q = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; q < n; q += step) {
    atomic_add(&out[geometry.target_offset(q, index[q])], src[q]);
  }
}

// ---- launchers -----------------------------------------------------------------------------

int64_t product(const Shape& shape, size_t begin, size_t end) {
  int64_t p = 1;
  for (size_t d = begin; d < end; ++d) p *= shape[d];
  return p;
}

IndexGeometry make_index_geometry(const Shape& index_shape, const Shape& target_shape, int64_t dim) {
  STRATA_CHECK(index_shape.size() <= static_cast<size_t>(kMaxDims), "cuda gather/scatter_add: rank ",
               index_shape.size(), " is above ", kMaxDims);
  STRATA_ASSERT(index_shape.size() == target_shape.size() && dim >= 0 &&
                    dim < static_cast<int64_t>(index_shape.size()),
                "cuda gather/scatter_add: index ", shape_str(index_shape), ", tensor ",
                shape_str(target_shape), ", dim ", dim);
  IndexGeometry g;
  g.rank = static_cast<int>(index_shape.size());
  g.dim = static_cast<int>(dim);
  int64_t stride = 1;
  for (int d = g.rank - 1; d >= 0; --d) {
    g.sizes[d] = index_shape[static_cast<size_t>(d)];
    g.target_strides[d] = stride;
    stride *= target_shape[static_cast<size_t>(d)];
  }
  return g;
}

// The dtypes with an atomic add: float32, float64, int64, uint8.
template <typename F>
void dispatch_addable(DType dtype, const char* kernel, const F& f) {
  switch (dtype) {
    case DType::Float32: return f(float{});
    case DType::Float64: return f(double{});
    case DType::Int64: return f(int64_t{});
    case DType::UInt8: return f(uint8_t{});
    default: break;
  }
  STRATA_CHECK(false, kernel, ": ", dtype_name(dtype), " is not supported on CUDA");
}

}  // namespace

void CudaBackend::index_select(const Tensor& out, const Tensor& in, int64_t dim,
                               const Tensor& index) {
  const int64_t n = out.numel();
  if (n == 0) return;
  DeviceGuard guard(device_index_);
  const size_t d = static_cast<size_t>(dim);
  const int64_t inner = product(in.shape(), d + 1, in.shape().size());
  const int64_t count = index.numel(), in_size = in.shape()[d];
  dispatch_element_size(in.element_size(), "index_select", [&](auto bits) {
    using E = decltype(bits);
    index_select_kernel<E><<<grid_size(n, max_blocks_), kBlockSize, 0, stream_>>>(
        static_cast<E*>(out.raw_data()), static_cast<const E*>(in.raw_data()),
        static_cast<const int64_t*>(index.raw_data()), n, count, in_size, inner);
    CUDA_KERNEL_CHECK();
  });
}

void CudaBackend::index_add(const Tensor& out, int64_t dim, const Tensor& index,
                            const Tensor& src) {
  const int64_t n = src.numel();
  if (n == 0) return;
  DeviceGuard guard(device_index_);
  const size_t d = static_cast<size_t>(dim);
  const int64_t inner = product(out.shape(), d + 1, out.shape().size());
  const int64_t count = index.numel(), out_size = out.shape()[d];
  dispatch_addable(out.dtype(), "index_add", [&](auto zero) {
    using T = decltype(zero);
    index_add_kernel<T><<<grid_size(n, max_blocks_), kBlockSize, 0, stream_>>>(
        static_cast<T*>(out.raw_data()), static_cast<const T*>(src.raw_data()),
        static_cast<const int64_t*>(index.raw_data()), n, count, out_size, inner);
    CUDA_KERNEL_CHECK();
  });
}

void CudaBackend::gather(const Tensor& out, const Tensor& in, int64_t dim, const Tensor& index) {
  const int64_t n = index.numel();
  if (n == 0) return;
  DeviceGuard guard(device_index_);
  const IndexGeometry geometry = make_index_geometry(index.shape(), in.shape(), dim);
  dispatch_element_size(in.element_size(), "gather", [&](auto bits) {
    using E = decltype(bits);
    gather_kernel<E><<<grid_size(n, max_blocks_), kBlockSize, 0, stream_>>>(
        static_cast<E*>(out.raw_data()), static_cast<const E*>(in.raw_data()),
        static_cast<const int64_t*>(index.raw_data()), n, geometry);
    CUDA_KERNEL_CHECK();
  });
}

void CudaBackend::scatter_add(const Tensor& out, int64_t dim, const Tensor& index,
                              const Tensor& src) {
  const int64_t n = index.numel();
  if (n == 0) return;
  DeviceGuard guard(device_index_);
  const IndexGeometry geometry = make_index_geometry(index.shape(), out.shape(), dim);
  dispatch_addable(out.dtype(), "scatter_add", [&](auto zero) {
    using T = decltype(zero);
    scatter_add_kernel<T><<<grid_size(n, max_blocks_), kBlockSize, 0, stream_>>>(
        static_cast<T*>(out.raw_data()), static_cast<const T*>(src.raw_data()),
        static_cast<const int64_t*>(index.raw_data()), n, geometry);
    CUDA_KERNEL_CHECK();
  });
}

}  // namespace strata::cuda
