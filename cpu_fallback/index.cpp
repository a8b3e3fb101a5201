// Indexing kernels of the CPU backend: index_select, index_add, gather, scatter_add, scatter.
// Every tensor is contiguous and every index is int64 and already range-checked by the op.
// index_select / index_add view their data as [outer, dim_size, inner] and move whole inner
// runs; gather / scatter_add / scatter walk the index tensor in row-major order, keeping the
// offset of the addressed element apart from the indexed dim. Adds and scatter's writes go
// through one thread wherever two elements could hit the same destination, so scatter keeps
// the last of repeated indices.
#include <omp.h>

#include <cstdint>
#include <cstring>
#include <vector>

#include "cpu_backend.h"
#include "parallel.h"
#include "strata/detail/float32_staging.h"
#include "strata/error.h"
#include "strata/tensor.h"

namespace strata::cpu {
namespace {

// A contiguous shape seen as [outer, dim_size, inner] around `dim` (a 0-dim tensor is [1,1,1]).
struct DimView {
  int64_t outer = 1, size = 1, inner = 1;
};

DimView view_around(const Shape& shape, int64_t dim) {
  DimView view;
  if (shape.empty()) return view;
  for (int64_t d = 0; d < dim; ++d) view.outer *= shape[d];
  view.size = shape[dim];
  for (size_t d = static_cast<size_t>(dim) + 1; d < shape.size(); ++d) view.inner *= shape[d];
  return view;
}

// Calls fn(i, base) for every element of a tensor of `shape` in row-major order: i is its flat
// position and base is sum over d != dim of position[d] * strides[d], the offset of the element
// it addresses in the tensor with `strides`, except for the indexed dim.
template <typename Fn>
void for_each_position(const Shape& shape, const Strides& strides, int64_t dim, const Fn& fn) {
  const int64_t numel = numel_of(shape);
  if (numel == 0) return;
  if (shape.empty()) {
    fn(int64_t{0}, int64_t{0});
    return;
  }
  const int64_t last = static_cast<int64_t>(shape.size()) - 1;
  const int64_t inner = shape[last];
  const int64_t inner_stride = last == dim ? 0 : strides[last];
  std::vector<int64_t> position(shape.size(), 0);
  int64_t base = 0;
  for (int64_t row_start = 0; row_start < numel; row_start += inner) {
    for (int64_t j = 0; j < inner; ++j) fn(row_start + j, base + j * inner_stride);
    for (int64_t d = last - 1; d >= 0; --d) {
      const int64_t stride = d == dim ? 0 : strides[d];
      base += stride;
      if (++position[d] < shape[d]) break;
      base -= shape[d] * stride;
      position[d] = 0;
    }
  }
}

int64_t stride_along(const Tensor& tensor, int64_t dim) {
  return tensor.dim() == 0 ? 0 : tensor.strides()[dim];
}

template <typename T>
void index_select_typed(const Tensor& out, const Tensor& in, int64_t dim, const Tensor& index) {
  const DimView view = view_around(in.shape(), dim);
  const int64_t count = index.numel();
  const int64_t* idx = static_cast<const int64_t*>(index.raw_data());
  const T* x = static_cast<const T*>(in.raw_data());
  T* o = static_cast<T*>(out.raw_data());
  const int64_t rows = view.outer * count;
  parallel_for(rows, rows > 1 && worth_threads(rows * view.inner), [&](int64_t row) {
    const int64_t outer = row / count, i = row % count;
    const T* from = x + (outer * view.size + idx[i]) * view.inner;
    T* to = o + row * view.inner;
    if (view.inner == 1) *to = *from;
    else std::memcpy(to, from, static_cast<size_t>(view.inner) * sizeof(T));
  });
}

template <typename T>
void index_add_typed(const Tensor& out, int64_t dim, const Tensor& index, const Tensor& src) {
  const DimView view = view_around(out.shape(), dim);
  const int64_t count = index.numel();
  const int64_t* idx = static_cast<const int64_t*>(index.raw_data());
  const T* s = static_cast<const T*>(src.raw_data());
  T* o = static_cast<T*>(out.raw_data());
  // out[outer, idx[i], j0:j1] += src[outer, i, j0:j1] for every i, in order.
  auto add_rows = [&](int64_t outer, int64_t j0, int64_t j1) {
    for (int64_t i = 0; i < count; ++i) {
      const T* from = s + (outer * count + i) * view.inner;
      T* to = o + (outer * view.size + idx[i]) * view.inner;
      for (int64_t j = j0; j < j1; ++j) to[j] = static_cast<T>(to[j] + from[j]);
    }
  };
  const int threads = worth_threads(view.outer * count * view.inner) ? omp_get_max_threads() : 1;
  // Repeated indices add into one row, so threads split outer or inner, never the index list.
  if (threads == 1 || view.outer >= threads) {
    parallel_for(view.outer, threads > 1, [&](int64_t outer) { add_rows(outer, 0, view.inner); });
    return;
  }
  for (int64_t outer = 0; outer < view.outer; ++outer) {
#pragma omp parallel num_threads(threads)
    {
      const int64_t parts = omp_get_num_threads(), part = omp_get_thread_num();
      add_rows(outer, view.inner * part / parts, view.inner * (part + 1) / parts);
    }
  }
}

template <typename T>
void gather_typed(const Tensor& out, const Tensor& in, int64_t dim, const Tensor& index) {
  const int64_t* idx = static_cast<const int64_t*>(index.raw_data());
  const T* x = static_cast<const T*>(in.raw_data());
  T* o = static_cast<T*>(out.raw_data());
  const int64_t dim_stride = stride_along(in, dim);
  for_each_position(index.shape(), in.strides(), dim, [&](int64_t i, int64_t base) {
    o[i] = x[base + idx[i] * dim_stride];
  });
}

template <typename T>
void scatter_add_typed(const Tensor& out, int64_t dim, const Tensor& index, const Tensor& src) {
  const int64_t* idx = static_cast<const int64_t*>(index.raw_data());
  const T* s = static_cast<const T*>(src.raw_data());
  T* o = static_cast<T*>(out.raw_data());
  const int64_t dim_stride = stride_along(out, dim);
  for_each_position(index.shape(), out.strides(), dim, [&](int64_t i, int64_t base) {
    T& to = o[base + idx[i] * dim_stride];
    to = static_cast<T>(to + s[i]);
  });
}

template <typename T>
void scatter_typed(const Tensor& out, int64_t dim, const Tensor& index, const Tensor& src) {
  const int64_t* idx = static_cast<const int64_t*>(index.raw_data());
  const T* s = static_cast<const T*>(src.raw_data());
  T* o = static_cast<T*>(out.raw_data());
  const int64_t dim_stride = stride_along(out, dim);
  for_each_position(index.shape(), out.strides(), dim,
                    [&](int64_t i, int64_t base) { o[base + idx[i] * dim_stride] = s[i]; });
}

}  // namespace

void CpuBackend::index_select(const Tensor& out, const Tensor& in, int64_t dim,
                              const Tensor& index) {
  STRATA_DISPATCH_ALL_AND_HALF(in.dtype(), "index_select",
                               [&] { index_select_typed<scalar_t>(out, in, dim, index); });
}

void CpuBackend::index_add(const Tensor& out, int64_t dim, const Tensor& index,
                           const Tensor& src) {
  if (detail::any_reduced_floating({&out, &src})) {
    detail::Float32Staging stage;
    index_add(stage.output(out), dim, index, stage.input(src));
    return stage.finish();
  }
  STRATA_DISPATCH_NUMERIC(out.dtype(), "index_add",
                          [&] { index_add_typed<scalar_t>(out, dim, index, src); });
}

void CpuBackend::gather(const Tensor& out, const Tensor& in, int64_t dim, const Tensor& index) {
  STRATA_DISPATCH_ALL_AND_HALF(in.dtype(), "gather",
                               [&] { gather_typed<scalar_t>(out, in, dim, index); });
}

void CpuBackend::scatter_add(const Tensor& out, int64_t dim, const Tensor& index,
                             const Tensor& src) {
  if (detail::any_reduced_floating({&out, &src})) {
    detail::Float32Staging stage;
    scatter_add(stage.output(out), dim, index, stage.input(src));
    return stage.finish();
  }
  STRATA_DISPATCH_NUMERIC(out.dtype(), "scatter_add",
                          [&] { scatter_add_typed<scalar_t>(out, dim, index, src); });
}

void CpuBackend::scatter(const Tensor& out, int64_t dim, const Tensor& index, const Tensor& src) {
  STRATA_DISPATCH_ALL_AND_HALF(out.dtype(), "scatter",
                               [&] { scatter_typed<scalar_t>(out, dim, index, src); });
}

}  // namespace strata::cpu
