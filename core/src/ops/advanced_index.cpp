// Data-dependent selection and PyTorch's advanced indexing: nonzero, masked_select, index,
// index_put and Tensor::index_put_. None needs a kernel of its own: the positions of a mask's
// true entries come from a cumsum (each true entry's rank) and a scatter (each rank's
// position), after one small read of the count (a device-to-host copy on CUDA); an index list
// becomes row positions into x seen as [indexed dims, the rest]; values then move with
// index_select, index_add and scatter, and the results are differentiable through them.
#include <vector>

#include "internal.h"

namespace strata {

namespace {

// The row-major positions of the true entries of the bool `mask` (any shape): int64 [count].
Tensor true_positions(const Tensor& mask) {
  NoGradGuard no_grad;
  const Tensor flat = mask.reshape({-1});
  const int64_t numel = flat.numel();
  const TensorOptions int64 = TensorOptions(kInt64).device(mask.device());
  if (numel == 0) return empty({0}, int64);
  // rank[i]: the true entries up to and including i, so a true entry i goes to rank[i] - 1.
  const Tensor rank = cumsum(flat, 0);
  const int64_t count = rank.narrow(0, numel - 1, 1).item<int64_t>();
  // The false entries all go to a spare slot past the end, dropped afterwards.
  const Tensor slot = where(flat, sub(rank, 1.0), scalar_tensor(static_cast<double>(count), int64));
  Tensor positions = empty({count + 1}, int64);
  detail::backend_of(positions).scatter(positions, 0, slot.contiguous(),
                                        arange(static_cast<double>(numel), int64));
  return positions.narrow(0, 0, count);
}

}  // namespace

Tensor nonzero(const Tensor& x) {
  detail::check_defined(x, "nonzero");
  NoGradGuard no_grad;
  const Tensor positions = true_positions(x.dtype() == DType::Bool ? x : ne(x, 0.0));
  const int64_t count = positions.numel();
  if (count == 0 || x.dim() == 0) {
    return empty({count, x.dim()}, TensorOptions(kInt64).device(x.device()));
  }
  // Coordinate d of the flat position p is (p / stride_d) % size_d (row-major strides).
  std::vector<Tensor> coordinates(static_cast<size_t>(x.dim()));
  int64_t stride = 1;
  for (int64_t d = x.dim() - 1; d >= 0; --d) {
    const auto size = static_cast<double>(x.size(d));
    coordinates[static_cast<size_t>(d)] =
        remainder(floor_divide(positions, static_cast<double>(stride)), size);
    stride *= x.size(d);
  }
  return stack(coordinates, 1);
}

Tensor masked_select(const Tensor& x, const Tensor& mask) {
  detail::check_defined(x, "masked_select");
  detail::check_defined(mask, "masked_select", "mask");
  STRATA_CHECK(mask.dtype() == DType::Bool, "masked_select: the mask must be bool, got ",
               detail::describe(mask));
  detail::check_same_device(x, mask, "masked_select");
  // x and the mask broadcast together, as in PyTorch.
  const Shape shape = broadcast_shapes(x.shape(), mask.shape(), "masked_select");
  const Tensor positions = true_positions(mask.expand(shape));
  return index_select(x.expand(shape).reshape({-1}), 0, positions);
}

Tensor Tensor::nonzero() const { return strata::nonzero(*this); }
Tensor Tensor::masked_select(const Tensor& mask) const {
  return strata::masked_select(*this, mask);
}

namespace {

using autograd::needs_grad;
using autograd::record;
using Grads = std::vector<Tensor>;
using Needs = std::vector<bool>;

// An index list resolved against x: x is seen as [leading, inner] where leading is the product
// of the m indexed (leading) dims and inner the product of the rest; `positions` (int64
// [count], in [0, leading), row-major over the indexed dims) picks rows of it, and the index
// tensors broadcast to `index_shape` (count elements).
struct ResolvedIndex {
  Tensor positions;
  Shape index_shape;
  Shape rest;  // x's dims after the indexed ones
  int64_t leading = 1;
  int64_t inner = 1;
};

ResolvedIndex resolve_indices(const char* op, const Tensor& x, const std::vector<Tensor>& indices) {
  STRATA_CHECK(!indices.empty(), op, ": expected at least one index tensor for ",
               detail::describe(x));
  NoGradGuard no_grad;
  // One int64 tensor per indexed dim: a k-dim mask stands for the k coordinate columns of its
  // true entries (PyTorch's x[mask] is x[mask.nonzero() columns...]).
  std::vector<Tensor> per_dim;
  for (size_t i = 0; i < indices.size(); ++i) {
    const Tensor& index = indices[i];
    detail::check_defined(index, op, "index");
    detail::check_same_device(x, index, op);
    const auto first = static_cast<int64_t>(per_dim.size());
    if (index.dtype() == DType::Bool) {
      bool matches = index.dim() >= 1 && first + index.dim() <= x.dim();
      for (int64_t j = 0; matches && j < index.dim(); ++j) {
        matches = index.size(j) == x.size(first + j);
      }
      STRATA_CHECK(matches, op, ": the mask ", detail::describe(index), " (index ", i,
                   ") does not match the shape of ", detail::describe(x), " from dimension ", first,
                   "; a mask covers as many dimensions as it has, with their sizes");
      const Tensor coordinates = nonzero(index);
      for (int64_t j = 0; j < index.dim(); ++j) per_dim.push_back(coordinates.select(1, j));
    } else {
      STRATA_CHECK(index.dtype() == DType::Int64, op, ": index ", i,
                   " must be int64 positions or a bool mask, got ", detail::describe(index));
      per_dim.push_back(index);
    }
  }
  const auto m = static_cast<int64_t>(per_dim.size());
  STRATA_CHECK(m <= x.dim(), op, ": too many indices (", m, " dimensions) for ",
               detail::describe(x));
  ResolvedIndex resolved;
  resolved.index_shape = per_dim[0].shape();
  for (const Tensor& index : per_dim) {
    resolved.index_shape = broadcast_shapes(resolved.index_shape, index.shape(), op);
  }
  // positions = sum over d of index_d * (product of the indexed sizes after d); negative
  // entries count from the end, as in PyTorch.
  const TensorOptions int64 = TensorOptions(kInt64).device(x.device());
  Tensor positions = zeros(resolved.index_shape, int64);
  for (int64_t d = m - 1; d >= 0; --d) {
    const Tensor& index = per_dim[static_cast<size_t>(d)];
    const int64_t size = x.size(d);
    if (index.numel() > 0) {
      const int64_t lo = min(index).item<int64_t>(), hi = max(index).item<int64_t>();
      STRATA_CHECK(lo >= -size && hi < size, op, ": index ", lo < -size ? lo : hi,
                   " is out of range for dimension ", d, " of size ", size, " in ",
                   detail::describe(x));
    }
    const Tensor wrapped = where(lt(index, 0.0), add(index, static_cast<double>(size)), index);
    positions = add(positions, mul(wrapped, static_cast<double>(resolved.leading)));
    resolved.leading *= size;
  }
  resolved.positions = positions.reshape({-1}).contiguous();
  resolved.rest.assign(x.shape().begin() + m, x.shape().end());
  resolved.inner = numel_of(resolved.rest);
  return resolved;
}

Shape concat(Shape a, const Shape& b) {
  a.insert(a.end(), b.begin(), b.end());
  return a;
}

// Writes (or, with accumulate, adds) values2d [count, inner] into the rows `positions` of the
// contiguous base2d [leading, inner]. Without accumulate, a repeated position keeps the value
// last in order on the CPU (scatter's rule).
void put_rows(const Tensor& base2d, const Tensor& positions, const Tensor& values2d,
              bool accumulate) {
  const int64_t count = positions.numel(), inner = base2d.size(1);
  if (count == 0 || inner == 0) return;
  Backend& backend = detail::backend_of(base2d);
  if (accumulate) {
    backend.index_add(base2d, 0, positions, values2d);
  } else {
    const Tensor rows = positions.reshape({count, 1}).expand({count, inner}).contiguous();
    backend.scatter(base2d, 0, rows, values2d);
  }
}

// The checks index_put and index_put_ share; values2d is values broadcast to the indexed
// shape, as [count, inner].
ResolvedIndex plan_put(const char* op, const Tensor& x, const std::vector<Tensor>& indices,
                       const Tensor& values, Tensor& values2d) {
  detail::check_defined(x, op);
  detail::check_defined(values, op, "values");
  detail::check_same_device(x, values, op);
  STRATA_CHECK(values.dtype() == x.dtype(), op, ": values ", detail::describe(values),
               " must have the input's dtype (", detail::describe(x), ")");
  ResolvedIndex resolved = resolve_indices(op, x, indices);
  const Shape target = concat(resolved.index_shape, resolved.rest);
  STRATA_CHECK(broadcast_shapes(values.shape(), target, op) == target, op, ": values ",
               detail::describe(values), " cannot be broadcast to the indexed shape ",
               shape_str(target), " of ", detail::describe(x));
  values2d = values.detach()
                 .expand(target)
                 .reshape({resolved.positions.numel(), resolved.inner})
                 .contiguous();
  return resolved;
}

}  // namespace

Tensor index(const Tensor& x, const std::vector<Tensor>& indices) {
  detail::check_defined(x, "index");
  const ResolvedIndex resolved = resolve_indices("index", x, indices);
  const Tensor rows = x.reshape({resolved.leading, resolved.inner});
  return index_select(rows, 0, resolved.positions)
      .reshape(concat(resolved.index_shape, resolved.rest));
}

Tensor index_put(const Tensor& x, const std::vector<Tensor>& indices, const Tensor& values,
                 bool accumulate) {
  Tensor values2d;
  const ResolvedIndex resolved = plan_put("index_put", x, indices, values, values2d);
  Tensor out = x.detach().contiguous().clone();
  put_rows(out.reshape({resolved.leading, resolved.inner}), resolved.positions, values2d,
           accumulate);
  if (needs_grad({&x, &values})) {
    record("index_put", {x, values}, out,
           [resolved, accumulate, x_shape = x.shape(), values_shape = values.shape()](
               const Tensor& g, const Needs& n) {
             const Tensor g2d = g.reshape({resolved.leading, resolved.inner});
             Tensor grad_x;
             if (n[0] && accumulate) grad_x = g;
             if (n[0] && !accumulate) {
               // The written rows were replaced: no gradient reaches x there.
               Tensor kept = g2d.contiguous().clone();
               put_rows(kept, resolved.positions,
                        zeros({resolved.positions.numel(), resolved.inner}, g.options()), false);
               grad_x = kept.reshape(x_shape);
             }
             Tensor grad_values;
             if (n[1]) {
               const Tensor picked = index_select(g2d, 0, resolved.positions)
                                         .reshape(concat(resolved.index_shape, resolved.rest));
               grad_values = autograd::sum_to(picked, values_shape);
             }
             return Grads{grad_x, grad_values};
           });
    autograd::mark_once_differentiable(out);
  }
  return out;
}

Tensor Tensor::index(const std::vector<Tensor>& indices) const {
  return strata::index(*this, indices);
}

Tensor& Tensor::index_put_(const std::vector<Tensor>& indices, const Tensor& values,
                           bool accumulate) {
  detail::check_defined(*this, "index_put_");
  STRATA_CHECK(!(requires_grad() && GradMode::is_enabled()),
               "index_put_: in-place update of a tensor that requires grad (",
               detail::describe(*this),
               "); wrap it in NoGradGuard or use index_put (out of place, differentiable)");
  STRATA_CHECK(!(values.defined() && values.requires_grad() && GradMode::is_enabled()),
               "index_put_: values ", detail::describe(values),
               " require grad, which an in-place update does not record; use index_put");
  Tensor values2d;
  const ResolvedIndex resolved = plan_put("index_put_", *this, indices, values, values2d);
  if (is_contiguous()) {
    put_rows(detach().reshape({resolved.leading, resolved.inner}), resolved.positions, values2d,
             accumulate);
    bump_version();
  } else {
    // Updates a contiguous copy, then writes it back through this view's strides.
    const Tensor work = detach().contiguous().clone();
    put_rows(work.reshape({resolved.leading, resolved.inner}), resolved.positions, values2d,
             accumulate);
    copy_(work);
  }
  return *this;
}

}  // namespace strata
