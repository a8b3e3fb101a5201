// Reductions of the CUDA backend: contiguous `in` read as [outer, size, inner] reduced over
// `size` into contiguous [outer, inner]: Sum, Max, Min (in's dtype), ArgMax, ArgMin (int64).
// The rules, shared with the CPU: Max/Min propagate NaN; ArgMax/ArgMin pick the first NaN if
// there is one, else the first index of the extreme value. float32 sums accumulate in double
// (one add per 4 bytes read keeps the kernel memory-bound even at low FP64 rates, and long
// sums then agree with the CPU to float rounding); integer sums wrap in 64 bits.
// Two kernel shapes, chosen by the launcher:
// - inner == 1 (rows): a group of 32..256 threads per row reads it coalesced, then reduces by
//   warp shuffles and shared memory.
// - inner > 1 (columns): one thread per output column walks `size` with stride `inner`, so
//   neighbouring threads read neighbouring addresses.
// When that leaves the device idle (few outputs, long reductions) `size` is split into chunks
// over blockIdx.y; each chunk writes a partial accumulator and reduce_partials_kernel combines
// them in chunk order. Everything is deterministic for a given device.
#include <cuda/std/limits>

#include <cstdint>
#include <type_traits>

#include "common.h"
#include "cuda_backend.h"
#include "strata/detail/float32_staging.h"
#include "strata/error.h"
#include "strata/tensor.h"

namespace strata::cuda {
namespace {

constexpr int kReduceBlock = 256;
constexpr unsigned int kFullMask = 0xFFFFFFFFu;
constexpr int64_t kMaxSplits = 1024;

template <typename T>
__device__ __forceinline__ bool is_nan(T v) {
  if constexpr (std::is_floating_point_v<T>) return v != v;
  else return false;
}

template <typename T>
__device__ __forceinline__ T lowest_value() {
  if constexpr (std::is_floating_point_v<T>) return -::cuda::std::numeric_limits<T>::infinity();
  else return ::cuda::std::numeric_limits<T>::lowest();
}

template <typename T>
__device__ __forceinline__ T highest_value() {
  if constexpr (std::is_floating_point_v<T>) return ::cuda::std::numeric_limits<T>::infinity();
  else return ::cuda::std::numeric_limits<T>::max();
}

template <typename T>
__device__ __forceinline__ T shuffle_down(T v, int delta) {
  if constexpr (std::is_same_v<T, float> || std::is_same_v<T, double>) {
    return __shfl_down_sync(kFullMask, v, delta);
  } else if constexpr (sizeof(T) == 8) {
    return static_cast<T>(__shfl_down_sync(kFullMask, static_cast<long long>(v), delta));
  } else {
    return static_cast<T>(__shfl_down_sync(kFullMask, static_cast<int>(v), delta));
  }
}

// ---- reducers: identity, load (element s of the reduced dim), combine, project -------------

template <typename T>
struct SumReducer {
  using In = T;
  using Out = T;
  // As the CPU: floating sums in double, integer (and bool, uint8) sums in wrapping 64 bits.
  using Acc = std::conditional_t<std::is_floating_point_v<T>, double, uint64_t>;
  __device__ Acc identity() const { return Acc(0); }
  __device__ Acc load(T v, int64_t) const { return static_cast<Acc>(v); }
  __device__ Acc combine(Acc a, Acc b) const { return a + b; }
  __device__ Out project(Acc a) const {
    if constexpr (std::is_floating_point_v<T>) return static_cast<T>(a);
    else return static_cast<T>(static_cast<int64_t>(a));
  }
  __device__ Acc shuffle(Acc a, int delta) const { return shuffle_down(a, delta); }
};

// Max or Min, NaN propagating.
template <typename T>
struct ExtremeReducer {
  using In = T;
  using Out = T;
  using Acc = T;
  bool is_max;
  __device__ Acc identity() const { return is_max ? lowest_value<T>() : highest_value<T>(); }
  __device__ Acc load(T v, int64_t) const { return v; }
  __device__ Acc combine(Acc a, Acc b) const {
    if (is_nan(a)) return a;
    if (is_nan(b)) return b;
    return (is_max ? a > b : a < b) ? a : b;
  }
  __device__ Out project(Acc a) const { return a; }
  __device__ Acc shuffle(Acc a, int delta) const { return shuffle_down(a, delta); }
};

template <typename T>
struct ArgAcc {
  T value;
  int64_t index;
};

// ArgMax or ArgMin: a NaN beats every number (the first NaN wins), then the extreme value,
// then the smaller index. That is a total order, so the combine is associative and
// commutative and any tree gives the first index.
template <typename T>
struct ArgReducer {
  using In = T;
  using Out = int64_t;
  using Acc = ArgAcc<T>;
  bool is_max;
  __device__ Acc identity() const {
    return {is_max ? lowest_value<T>() : highest_value<T>(),
            ::cuda::std::numeric_limits<int64_t>::max()};
  }
  __device__ Acc load(T v, int64_t s) const { return {v, s}; }
  __device__ Acc combine(Acc a, Acc b) const {
    const bool a_nan = is_nan(a.value), b_nan = is_nan(b.value);
    if (a_nan || b_nan) {
      if (a_nan && b_nan) return a.index < b.index ? a : b;
      return a_nan ? a : b;
    }
    if (a.value == b.value) return a.index < b.index ? a : b;
    return (is_max ? a.value > b.value : a.value < b.value) ? a : b;
  }
  __device__ Out project(Acc a) const { return a.index; }
  __device__ Acc shuffle(Acc a, int delta) const {
    return {shuffle_down(a.value, delta), shuffle_down(a.index, delta)};
  }
};

// ---- kernels -------------------------------------------------------------------------------

// inner == 1. Block (tx, ty): ty rows per block, tx threads (a multiple of 32) per row; row
// groups over blockIdx.x (grid-stride), chunk `blockIdx.y` of each row covering
// [c * chunk, (c + 1) * chunk). With one chunk the result goes to out[row], else the
// accumulator to partial[row * splits + c].
template <typename R>
__global__ void reduce_rows_kernel(const typename R::In* in, typename R::Out* out,
                                   typename R::Acc* partial, int64_t outer, int64_t size,
                                   int64_t chunk, R reducer) {
  using Acc = typename R::Acc;
  __shared__ alignas(16) unsigned char shared_raw[(kReduceBlock / 32) * sizeof(Acc)];
  Acc* shared = reinterpret_cast<Acc*>(shared_raw);

  const int tx = static_cast<int>(blockDim.x), ty = static_cast<int>(blockDim.y);
  const int warps_per_row = tx / 32;
  const int lane = static_cast<int>(threadIdx.x) % 32;
  const int warp = static_cast<int>(threadIdx.x) / 32;
  const int64_t splits = gridDim.y;
  const int64_t c = blockIdx.y;
  const int64_t begin = c * chunk;
  const int64_t end = begin + chunk < size ? begin + chunk : size;
  const int64_t groups = (outer + ty - 1) / ty;

  for (int64_t g = blockIdx.x; g < groups; g += gridDim.x) {  // uniform over the block
    const int64_t row = g * ty + threadIdx.y;
    Acc acc = reducer.identity();
    if (row < outer) {
      const typename R::In* row_in = in + row * size;
      for (int64_t s = begin + threadIdx.x; s < end; s += tx) {
        acc = reducer.combine(acc, reducer.load(row_in[s], s));
      }
    }
    for (int delta = 16; delta > 0; delta /= 2) {
      acc = reducer.combine(acc, reducer.shuffle(acc, delta));
    }
    if (lane == 0) shared[threadIdx.y * warps_per_row + warp] = acc;
    __syncthreads();
    if (threadIdx.x == 0 && row < outer) {
      acc = shared[threadIdx.y * warps_per_row];
      for (int w = 1; w < warps_per_row; ++w) {
        acc = reducer.combine(acc, shared[threadIdx.y * warps_per_row + w]);
      }
      if (splits == 1) {
        out[row] = reducer.project(acc);
      } else {
        partial[row * splits + c] = acc;
      }
    }
    __syncthreads();  // `shared` is rewritten by the next group
  }
}

// inner > 1. One thread per output q = o * inner + j (grid-stride over blockIdx.x), chunk
// blockIdx.y of the reduced dim; results as in reduce_rows_kernel, partial laid out
// [outer, splits, inner].
template <typename R>
__global__ void reduce_columns_kernel(const typename R::In* in, typename R::Out* out,
                                      typename R::Acc* partial, int64_t outer, int64_t size,
                                      int64_t inner, int64_t chunk, R reducer) {
  using Acc = typename R::Acc;
  const int64_t splits = gridDim.y;
  const int64_t c = blockIdx.y;
  const int64_t begin = c * chunk;
  const int64_t end = begin + chunk < size ? begin + chunk : size;
  const int64_t n = outer * inner;
  const int64_t step = static_cast<int64_t>(blockDim.x) * gridDim.x;
  for (int64_t q = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; q < n; q += step) {
    const int64_t o = q / inner, j = q % inner;
    const typename R::In* column = in + o * size * inner + j;
    Acc acc = reducer.identity();
    for (int64_t s = begin; s < end; ++s) {
      acc = reducer.combine(acc, reducer.load(column[s * inner], s));
    }
    if (splits == 1) {
      out[q] = reducer.project(acc);
    } else {
      partial[(o * splits + c) * inner + j] = acc;
    }
  }
}

// partial [outer, splits, inner] -> out [outer, inner], combining the chunks in order.
template <typename R>
__global__ void reduce_partials_kernel(const typename R::Acc* partial, typename R::Out* out,
                                       int64_t outer, int64_t splits, int64_t inner, R reducer) {
  const int64_t n = outer * inner;
  const int64_t step = static_cast<int64_t>(blockDim.x) * gridDim.x;
  for (int64_t q = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; q < n; q += step) {
    const int64_t o = q / inner, j = q % inner;
    typename R::Acc acc = reducer.identity();
    for (int64_t c = 0; c < splits; ++c) {
      acc = reducer.combine(acc, partial[(o * splits + c) * inner + j]);
    }
    out[q] = reducer.project(acc);
  }
}

// ---- launcher ------------------------------------------------------------------------------

int64_t next_pow2(int64_t v) {
  int64_t p = 1;
  while (p < v) p *= 2;
  return p;
}

// How many chunks to split `size` into when `blocks` blocks alone would not fill the device:
// enough to fill it, while every thread keeps at least `min_per_thread * threads` elements.
int64_t choose_splits(int64_t blocks, int64_t size, int64_t threads, int64_t min_per_thread,
                      int64_t max_blocks) {
  if (blocks >= max_blocks) return 1;
  int64_t splits = ceil_div(max_blocks, blocks);
  const int64_t by_work = size / (threads * min_per_thread);
  if (splits > by_work) splits = by_work;
  if (splits > kMaxSplits) splits = kMaxSplits;
  return splits < 1 ? 1 : splits;
}

template <typename R>
void launch_reduce(CudaBackend& backend, const R& reducer, const Tensor& out, const Tensor& in,
                   int64_t outer, int64_t size, int64_t inner) {
  using Acc = typename R::Acc;
  const int64_t n_out = outer * inner;
  if (n_out == 0) return;
  const auto* in_data = static_cast<const typename R::In*>(in.raw_data());
  auto* out_data = static_cast<typename R::Out*>(out.raw_data());
  const int64_t max_blocks = backend.max_blocks();
  cudaStream_t stream = backend.stream();

  int64_t splits = 1, chunk = size;
  dim3 grid, block;
  if (inner == 1) {
    // About 8 elements per thread, a whole number of warps per row.
    int64_t tx = next_pow2(ceil_div(size, 8));
    tx = tx < 32 ? 32 : (tx > kReduceBlock ? kReduceBlock : tx);
    const int64_t ty = kReduceBlock / tx;
    const int64_t groups = ceil_div(outer, ty);
    splits = choose_splits(groups, size, tx, 16, max_blocks);
    block = dim3(static_cast<unsigned>(tx), static_cast<unsigned>(ty));
    grid.x = static_cast<unsigned>(groups < max_blocks ? groups : max_blocks);
  } else {
    const int64_t blocks = ceil_div(n_out, kReduceBlock);
    splits = choose_splits(blocks, size, 1, 64, max_blocks);
    block = dim3(kReduceBlock);
    grid.x = static_cast<unsigned>(blocks < max_blocks ? blocks : max_blocks);
  }
  chunk = ceil_div(size, splits);
  splits = ceil_div(size, chunk);  // no empty chunk
  grid.y = static_cast<unsigned>(splits);

  if (splits == 1) {
    if (inner == 1) {
      reduce_rows_kernel<R><<<grid, block, 0, stream>>>(in_data, out_data, nullptr, outer, size,
                                                       chunk, reducer);
    } else {
      reduce_columns_kernel<R><<<grid, block, 0, stream>>>(in_data, out_data, nullptr, outer,
                                                          size, inner, chunk, reducer);
    }
    CUDA_KERNEL_CHECK();
    return;
  }
  ScratchBuffer partial(backend, static_cast<size_t>(n_out * splits) * sizeof(Acc));
  Acc* partial_data = static_cast<Acc*>(partial.get());
  if (inner == 1) {
    reduce_rows_kernel<R><<<grid, block, 0, stream>>>(in_data, out_data, partial_data, outer,
                                                     size, chunk, reducer);
  } else {
    reduce_columns_kernel<R><<<grid, block, 0, stream>>>(in_data, out_data, partial_data, outer,
                                                        size, inner, chunk, reducer);
  }
  CUDA_KERNEL_CHECK();
  reduce_partials_kernel<R><<<grid_size(n_out, max_blocks, kReduceBlock), kReduceBlock, 0,
                              stream>>>(partial_data, out_data, outer, splits, inner, reducer);
  CUDA_KERNEL_CHECK();
}

}  // namespace

void CudaBackend::reduce(ReduceOp op, const Tensor& out, const Tensor& in, int64_t outer,
                         int64_t size, int64_t inner) {
  if (detail::any_reduced_floating({&out, &in})) {
    detail::Float32Staging stage;
    reduce(op, stage.output(out), stage.input(in), outer, size, inner);
    return stage.finish();
  }
  DeviceGuard guard(device_index_);
  switch (op) {
    case ReduceOp::Sum:
      return STRATA_DISPATCH_ALL(in.dtype(), "reduce", [&] {
        launch_reduce(*this, SumReducer<scalar_t>{}, out, in, outer, size, inner);
      });
    case ReduceOp::Max:
    case ReduceOp::Min:
      return STRATA_DISPATCH_ALL(in.dtype(), "reduce", [&] {
        launch_reduce(*this, ExtremeReducer<scalar_t>{op == ReduceOp::Max}, out, in, outer,
                      size, inner);
      });
    case ReduceOp::ArgMax:
    case ReduceOp::ArgMin:
      return STRATA_DISPATCH_ALL(in.dtype(), "reduce", [&] {
        launch_reduce(*this, ArgReducer<scalar_t>{op == ReduceOp::ArgMax}, out, in, outer, size,
                      inner);
      });
  }
  STRATA_ASSERT(false, "cuda reduce: unknown op ", static_cast<int>(op));
}

}  // namespace strata::cuda
