// Sorting kernels of the CPU backend: a stable sort of every row of a contiguous
// [outer, size, inner] tensor along its middle axis (backend.h). Each row is copied into a
// buffer of (key, position) pairs and ordered by std::stable_sort, so equal values keep their
// order; NaN compares above every number and -0.0 equals 0.0 (plain `<` once NaN is set
// apart), as PyTorch's CPU sort. Halves compare as float32; the values written back are the
// input's own bits, picked by position. Rows are split over OpenMP threads, one buffer each.
#include <omp.h>

#include <algorithm>
#include <cstdint>
#include <type_traits>
#include <utility>
#include <vector>

#include "cpu_backend.h"
#include "parallel.h"
#include "strata/error.h"
#include "strata/tensor.h"

namespace strata::cpu {
namespace {

template <typename T>
constexpr bool kIsHalf = std::is_same_v<T, Half> || std::is_same_v<T, BFloat16>;

// The type a value is compared as: float for the 16-bit floats, the type itself otherwise.
template <typename T>
using KeyOf = std::conditional_t<kIsHalf<T>, float, T>;

// True when a comes before b in ascending order: a < b, with NaN above every number (and equal
// to NaN).
template <typename K>
bool ascending_before(K a, K b) {
  if constexpr (std::is_floating_point_v<K>) {
    if (b != b) return a == a;  // NaN b: every number comes first
  }
  return a < b;  // false for a NaN a
}

template <typename T>
void sort_typed(const Tensor& values, const Tensor& indices, const Tensor& in, int64_t outer,
                int64_t size, int64_t inner, bool descending) {
  using K = KeyOf<T>;
  using Entry = std::pair<K, int64_t>;
  const T* x = static_cast<const T*>(in.raw_data());
  T* v = static_cast<T*>(values.raw_data());
  int64_t* ix = static_cast<int64_t*>(indices.raw_data());
  const int64_t rows = outer * inner;
  const auto ascending = [](const Entry& a, const Entry& b) {
    return ascending_before(a.first, b.first);
  };
  const auto descending_order = [](const Entry& a, const Entry& b) {
    return ascending_before(b.first, a.first);
  };
  // Sorts rows [begin, end), row r being (outer r / inner, inner r % inner).
  const auto sort_rows = [&](int64_t begin, int64_t end) {
    std::vector<Entry> row(static_cast<size_t>(size));
    for (int64_t r = begin; r < end; ++r) {
      const int64_t base = (r / inner) * size * inner + r % inner;
      for (int64_t k = 0; k < size; ++k) row[k] = {static_cast<K>(x[base + k * inner]), k};
      if (descending) {
        std::stable_sort(row.begin(), row.end(), descending_order);
      } else {
        std::stable_sort(row.begin(), row.end(), ascending);
      }
      for (int64_t k = 0; k < size; ++k) {
        const int64_t from = row[k].second;
        v[base + k * inner] = x[base + from * inner];
        ix[base + k * inner] = from;
      }
    }
  };
  if (rows > 1 && worth_threads(rows * size)) {
#pragma omp parallel
    {
      const int64_t threads = omp_get_num_threads(), thread = omp_get_thread_num();
      sort_rows(rows * thread / threads, rows * (thread + 1) / threads);
    }
  } else {
    sort_rows(0, rows);
  }
}

}  // namespace

void CpuBackend::sort(const Tensor& values, const Tensor& indices, const Tensor& in, int64_t outer,
                      int64_t size, int64_t inner, bool descending) {
  STRATA_DISPATCH_ALL_AND_HALF(in.dtype(), "sort", [&] {
    sort_typed<scalar_t>(values, indices, in, outer, size, inner, descending);
  });
}

}  // namespace strata::cpu
