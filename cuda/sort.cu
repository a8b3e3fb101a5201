// Sorting kernels of the CUDA backend: a stable sort of every row of a contiguous
// [outer, size, inner] tensor along its middle axis (backend.h), by CUB's segmented radix sort,
// which is stable. Each value becomes an unsigned key whose ascending order is the order
// wanted, so the radix sort needs no comparator:
// - floats: the sign bit set on numbers >= 0 and every bit flipped on negative ones; NaN maps
//   above +inf and -0.0 is taken as 0.0 (ties with it, as on the CPU); halves use float32 keys;
// - signed integers: the sign bit flipped; uint8 and bool as they are;
// - descending: every key bit inverted (equal keys stay equal, so stability is kept).
// The keys are laid out row by row (for inner > 1 that transposes on the way in), sorted with
// their positions, and the sorted positions pick the values (their bits untouched) back into
// the [outer, size, inner] layout. CUB counts items in int: rows go in batches of < 2^31.
#include <algorithm>
#include <climits>
#include <cstdint>
#include <cub/device/device_segmented_radix_sort.cuh>
#include <type_traits>

#include "common.h"
#include "cuda_backend.h"
#include "strata/error.h"
#include "strata/tensor.h"

namespace strata::cuda {
namespace {

// ---- keys ----------------------------------------------------------------------------------

__device__ __forceinline__ uint32_t sort_key(float v) {
  if (v != v) return 0xFFFFFFFFu;                               // NaN: above +inf's key 0xFF800000
  const uint32_t bits = __float_as_uint(v == 0.0f ? 0.0f : v);  // -0.0 -> 0.0
  return (bits & 0x80000000u) != 0 ? ~bits : (bits | 0x80000000u);
}
__device__ __forceinline__ uint64_t sort_key(double v) {
  if (v != v) return ~uint64_t{0};
  const auto bits = static_cast<uint64_t>(__double_as_longlong(v == 0.0 ? 0.0 : v));
  return (bits >> 63) != 0 ? ~bits : (bits | (uint64_t{1} << 63));
}
__device__ __forceinline__ uint32_t sort_key(Half v) { return sort_key(static_cast<float>(v)); }
__device__ __forceinline__ uint32_t sort_key(BFloat16 v) { return sort_key(static_cast<float>(v)); }
__device__ __forceinline__ uint64_t sort_key(int64_t v) {
  return static_cast<uint64_t>(v) ^ (uint64_t{1} << 63);
}
__device__ __forceinline__ uint32_t sort_key(int32_t v) {
  return static_cast<uint32_t>(v) ^ 0x80000000u;
}
__device__ __forceinline__ uint8_t sort_key(uint8_t v) { return v; }
__device__ __forceinline__ uint8_t sort_key(bool v) { return v ? 1 : 0; }

// What sort_key returns: 64 bits for f64 and int64, 8 for uint8 and bool, 32 for the others
// (float32, the halves, int32).
template <typename T>
using SortKey = std::conditional_t<sizeof(T) == 8, uint64_t,
                                   std::conditional_t<sizeof(T) == 1, uint8_t, uint32_t>>;

// ---- kernels -------------------------------------------------------------------------------

// offsets[s] = s * size for s in [0, segments]: where each row starts in the key buffers.
__global__ void sort_offsets_kernel(int* offsets, int64_t segments, int64_t size) {
  const int64_t step = static_cast<int64_t>(blockDim.x) * gridDim.x;
  for (int64_t s = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; s <= segments;
       s += step) {
    offsets[s] = static_cast<int>(s * size);
  }
}

// Item q = (row q / size, position k = q % size) of a batch starting at row first_row, where
// row r is (outer r / inner, inner r % inner) of in [outer, size, inner]: keys[q] is its key,
// positions[q] = k.
template <typename T, typename K>
__global__ void sort_keys_kernel(K* keys, int64_t* positions, const T* in, int64_t n,
                                 int64_t first_row, int64_t size, int64_t inner, bool descending) {
  const int64_t step = static_cast<int64_t>(blockDim.x) * gridDim.x;
  for (int64_t q = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; q < n; q += step) {
    const int64_t row = first_row + q / size, k = q % size;
    const int64_t o = row / inner, j = row % inner;
    const K key = sort_key(in[(o * size + k) * inner + j]);
    keys[q] = descending ? static_cast<K>(~key) : key;
    positions[q] = k;
  }
}

// Writes the sorted batch back: item q's sorted position `from` picks in's value into
// values [outer, size, inner] at (o, k, j), and indices there = from.
template <typename E>
__global__ void sort_gather_kernel(E* values, int64_t* indices, const E* in,
                                   const int64_t* sorted_positions, int64_t n, int64_t first_row,
                                   int64_t size, int64_t inner) {
  const int64_t step = static_cast<int64_t>(blockDim.x) * gridDim.x;
  for (int64_t q = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; q < n; q += step) {
    const int64_t row = first_row + q / size, k = q % size;
    const int64_t o = row / inner, j = row % inner;
    const int64_t from = sorted_positions[q];
    const int64_t at = (o * size + k) * inner + j;
    values[at] = in[(o * size + from) * inner + j];
    indices[at] = from;
  }
}

}  // namespace

void CudaBackend::sort(const Tensor& values, const Tensor& indices, const Tensor& in, int64_t outer,
                       int64_t size, int64_t inner, bool descending) {
  const int64_t rows = outer * inner;
  if (rows == 0 || size == 0) return;
  STRATA_CHECK(size <= INT_MAX, "sort: CUDA sorts rows of at most ", INT_MAX,
               " elements, got a row of ", size, " in ", shape_str(in.shape()));
  DeviceGuard guard(device_index_);
  const int64_t batch_rows = std::min(rows, std::max<int64_t>(1, INT_MAX / size));
  STRATA_DISPATCH_ALL_AND_HALF(in.dtype(), "sort", [&] {
    using T = scalar_t;
    using K = SortKey<T>;
    using E = typename BitsOf<sizeof(T)>::type;
    const auto batch_items = static_cast<size_t>(batch_rows * size);
    ScratchBuffer keys_in(*this, batch_items * sizeof(K));
    ScratchBuffer keys_out(*this, batch_items * sizeof(K));
    ScratchBuffer positions_in(*this, batch_items * sizeof(int64_t));
    ScratchBuffer positions_out(*this, batch_items * sizeof(int64_t));
    ScratchBuffer offsets(*this, static_cast<size_t>(batch_rows + 1) * sizeof(int));
    auto* keys = static_cast<K*>(keys_in.get());
    auto* sorted_keys = static_cast<K*>(keys_out.get());
    auto* positions = static_cast<int64_t*>(positions_in.get());
    auto* sorted_positions = static_cast<int64_t*>(positions_out.get());
    const int* begin_offsets = static_cast<const int*>(offsets.get());
    for (int64_t first_row = 0; first_row < rows; first_row += batch_rows) {
      const int64_t count = std::min(batch_rows, rows - first_row);
      const int64_t n = count * size;
      sort_offsets_kernel<<<grid_size(count + 1, max_blocks_), kBlockSize, 0, stream_>>>(
          static_cast<int*>(offsets.get()), count, size);
      CUDA_KERNEL_CHECK();
      sort_keys_kernel<T, K><<<grid_size(n, max_blocks_), kBlockSize, 0, stream_>>>(
          keys, positions, static_cast<const T*>(in.raw_data()), n, first_row, size, inner,
          descending);
      CUDA_KERNEL_CHECK();
      size_t temp_bytes = 0;
      CUDA_CHECK(cub::DeviceSegmentedRadixSort::SortPairs(
          nullptr, temp_bytes, keys, sorted_keys, positions, sorted_positions, static_cast<int>(n),
          static_cast<int>(count), begin_offsets, begin_offsets + 1, 0,
          static_cast<int>(sizeof(K) * 8), stream_));
      ScratchBuffer temp(*this, temp_bytes);
      CUDA_CHECK(cub::DeviceSegmentedRadixSort::SortPairs(
          temp.get(), temp_bytes, keys, sorted_keys, positions, sorted_positions,
          static_cast<int>(n), static_cast<int>(count), begin_offsets, begin_offsets + 1, 0,
          static_cast<int>(sizeof(K) * 8), stream_));
      sort_gather_kernel<E><<<grid_size(n, max_blocks_), kBlockSize, 0, stream_>>>(
          static_cast<E*>(values.raw_data()), static_cast<int64_t*>(indices.raw_data()),
          static_cast<const E*>(in.raw_data()), sorted_positions, n, first_row, size, inner);
      CUDA_KERNEL_CHECK();
    }
  });
}

}  // namespace strata::cuda
