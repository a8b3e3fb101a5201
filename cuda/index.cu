// Indexing kernels of the CUDA backend: index_select, index_add, gather, scatter_add, scatter.
// Every tensor is contiguous and every index already range-checked (backend.h). scatter's
// plain stores race where indices repeat: one of the values lands, which one is not defined.
// index_select / index_add see their tensors as [outer, dim size, inner]; gather / scatter_add
// walk the index's shape and address the other tensor (whose sizes off `dim` may be larger)
// through its own contiguous strides. The adds use atomics, so with repeated indices the
// order of floating-point additions (and so the last bits) may vary from run to run — except
// index_add of floats under strata::deterministic() (the backward of embedding and
// index_select): it sorts the (index, position) pairs with CUB's stable radix sort and lets one
// thread per (outer, run of equal indices, inner) add its run in position order, starting from
// out's value: the CPU backend's order, so the sums are bitwise reproducible and equal to the
// CPU's. scatter_add still uses atomics.
#include <cub/device/device_radix_sort.cuh>

#include <cstdint>

#include "common.h"
#include "cuda_backend.h"
#include "strata/detail/float32_staging.h"
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

// positions[i] = i: the values sorted along with the indices.
__global__ void iota_kernel(int64_t* positions, int64_t n) {
  const int64_t step = static_cast<int64_t>(blockDim.x) * gridDim.x;
  for (int64_t q = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; q < n; q += step) {
    positions[q] = q;
  }
}

// The deterministic index_add: sorted_index[count] ascending with sorted_position[count] the
// original positions (stable: equal indices keep position order). The thread of (o, s, j) where
// s starts a run of equal indices adds src [outer, count, inner] at the run's positions, in
// order, onto out [outer, out_size, inner] — the only thread writing that element.
template <typename T>
__global__ void index_add_sorted_kernel(T* out, const T* src, const int64_t* sorted_index,
                                        const int64_t* sorted_position, int64_t n, int64_t count,
                                        int64_t out_size, int64_t inner) {
  const int64_t step = static_cast<int64_t>(blockDim.x) * gridDim.x;
  for (int64_t q = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; q < n; q += step) {
    const int64_t j = q % inner;
    const int64_t rest = q / inner;
    const int64_t s = rest % count, o = rest / count;
    const int64_t target = sorted_index[s];
    if (s > 0 && sorted_index[s - 1] == target) continue;  // not the first of its run
    T* dst = &out[(o * out_size + target) * inner + j];
    T acc = *dst;
    for (int64_t r = s; r < count && sorted_index[r] == target; ++r) {
      acc = static_cast<T>(acc + src[(o * count + sorted_position[r]) * inner + j]);
    }
    *dst = acc;
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

// out[coordinates of q with index[q] along dim] = src[q]; src and index share a shape.
template <typename E>
__global__ void scatter_kernel(E* out, const E* src, const int64_t* index, int64_t n,
                               IndexGeometry geometry) {
  const int64_t step = static_cast<int64_t>(blockDim.x) * gridDim.x;
  for (int64_t q = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; q < n; q += step) {
    out[geometry.target_offset(q, index[q])] = src[q];
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

// index_add's deterministic path (see the file's contract); out [outer, out_size, inner],
// index [count], src [outer, count, inner], floats.
void index_add_deterministic(CudaBackend& backend, const Tensor& out, const Tensor& index,
                             const Tensor& src, int64_t count, int64_t out_size, int64_t inner) {
  const int64_t n = src.numel();
  const cudaStream_t stream = backend.stream();
  const int64_t max_blocks = backend.max_blocks();
  const auto items = static_cast<size_t>(count);
  // Bits that tell the indices (all in [0, out_size)) apart: fewer radix passes.
  int end_bit = 1;
  while (end_bit < 63 && (int64_t{1} << end_bit) < out_size) ++end_bit;
  // NOTE: sorted as unsigned: the indices are non-negative, and CUB's signed-key handling flips
  // bit 63, which a narrowed bit range would leave out.
  const auto* keys_in = static_cast<const unsigned long long*>(index.raw_data());
  ScratchBuffer keys(backend, items * sizeof(int64_t));
  ScratchBuffer positions_in(backend, items * sizeof(int64_t));
  ScratchBuffer positions(backend, items * sizeof(int64_t));
  iota_kernel<<<grid_size(count, max_blocks), kBlockSize, 0, stream>>>(
      static_cast<int64_t*>(positions_in.get()), count);
  CUDA_KERNEL_CHECK();
  auto* keys_out = static_cast<unsigned long long*>(keys.get());
  const auto* values_in = static_cast<const int64_t*>(positions_in.get());
  auto* values_out = static_cast<int64_t*>(positions.get());
  size_t temp_bytes = 0;
  CUDA_CHECK(cub::DeviceRadixSort::SortPairs(nullptr, temp_bytes, keys_in, keys_out, values_in,
                                             values_out, count, 0, end_bit, stream));
  ScratchBuffer temp(backend, temp_bytes);
  CUDA_CHECK(cub::DeviceRadixSort::SortPairs(temp.get(), temp_bytes, keys_in, keys_out, values_in,
                                             values_out, count, 0, end_bit, stream));
  const auto* sorted_index = static_cast<const int64_t*>(keys.get());
  dispatch_addable(out.dtype(), "index_add", [&](auto zero) {
    using T = decltype(zero);
    index_add_sorted_kernel<T><<<grid_size(n, max_blocks), kBlockSize, 0, stream>>>(
        static_cast<T*>(out.raw_data()), static_cast<const T*>(src.raw_data()), sorted_index,
        values_out, n, count, out_size, inner);
    CUDA_KERNEL_CHECK();
  });
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
  if (detail::any_reduced_floating({&out, &src})) {
    detail::Float32Staging stage;
    index_add(stage.output(out), dim, index, stage.input(src));
    return stage.finish();
  }
  const int64_t n = src.numel();
  if (n == 0) return;
  DeviceGuard guard(device_index_);
  const size_t d = static_cast<size_t>(dim);
  const int64_t inner = product(out.shape(), d + 1, out.shape().size());
  const int64_t count = index.numel(), out_size = out.shape()[d];
  // Integer adds are associative, so only floats need the ordered path.
  if (deterministic() && is_floating(out.dtype())) {
    index_add_deterministic(*this, out, index, src, count, out_size, inner);
    return;
  }
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
  if (detail::any_reduced_floating({&out, &src})) {
    detail::Float32Staging stage;
    scatter_add(stage.output(out), dim, index, stage.input(src));
    return stage.finish();
  }
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

void CudaBackend::scatter(const Tensor& out, int64_t dim, const Tensor& index,
                          const Tensor& src) {
  const int64_t n = index.numel();
  if (n == 0) return;
  DeviceGuard guard(device_index_);
  const IndexGeometry geometry = make_index_geometry(index.shape(), out.shape(), dim);
  dispatch_element_size(out.element_size(), "scatter", [&](auto bits) {
    using E = decltype(bits);
    scatter_kernel<E><<<grid_size(n, max_blocks_), kBlockSize, 0, stream_>>>(
        static_cast<E*>(out.raw_data()), static_cast<const E*>(src.raw_data()),
        static_cast<const int64_t*>(index.raw_data()), n, geometry);
    CUDA_KERNEL_CHECK();
  });
}

}  // namespace strata::cuda
