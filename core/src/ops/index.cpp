// Joining and indexing: cat, stack, index_select, gather, scatter_add, scatter, one_hot. Index
// tensors are int64 and range-checked here, before any kernel runs (one small device-to-host
// read on CUDA).
#include <algorithm>
#include <string>

#include "internal.h"

namespace strata {

namespace {

using autograd::needs_grad;
using autograd::record;
using Grads = std::vector<Tensor>;
using Needs = std::vector<bool>;

void check_index(const Tensor& index, const char* op) {
  detail::check_defined(index, op, "index");
  STRATA_CHECK(index.dtype() == DType::Int64, op, ": index must be int64, got ",
               detail::describe(index));
}

// Throws unless every value of `index` lies in [0, size).
void check_index_range(const Tensor& index, int64_t size, const char* op, const Tensor& x,
                       int64_t dim) {
  if (index.numel() == 0) return;
  NoGradGuard no_grad;
  const int64_t lo = min(index).item<int64_t>(), hi = max(index).item<int64_t>();
  STRATA_CHECK(lo >= 0 && hi < size, op, ": index ", lo < 0 ? lo : hi,
               " is out of range for dimension ", dim, " of size ", size, " in ",
               detail::describe(x));
}

// The checks scatter_add and scatter share: index has x's rank (at least 1), is no larger than
// x off `dim` nor than src (when given) anywhere, and holds positions within x along `dim`.
// Returns the normalized dim.
int64_t check_scatter(const char* op, const Tensor& x, int64_t dim, const Tensor& index,
                      const Tensor* src) {
  detail::check_defined(x, op);
  check_index(index, op);
  detail::check_same_device(x, index, op);
  if (src != nullptr) {
    detail::check_defined(*src, op, "src");
    detail::check_same_device(x, *src, op);
    STRATA_CHECK(src->dtype() == x.dtype(), op, ": src ", detail::describe(*src),
                 " must have the input's dtype (", detail::describe(x), ")");
  }
  const Tensor& like = src != nullptr ? *src : x;
  STRATA_CHECK(x.dim() >= 1 && index.dim() == x.dim() && like.dim() == x.dim(), op, ": the input ",
               detail::describe(x), ", index ", detail::describe(index),
               src != nullptr ? " and src " + detail::describe(*src) : std::string(),
               " must have the same number of dimensions, at least 1");
  const int64_t axis = normalize_axis(dim, x.dim(), op);
  for (int64_t d = 0; d < x.dim(); ++d) {
    STRATA_CHECK(index.size(d) <= like.size(d) && (d == axis || index.size(d) <= x.size(d)), op,
                 ": index ", detail::describe(index), " is larger than ",
                 src != nullptr ? "src " + detail::describe(*src) + " or (off dimension " +
                                      std::to_string(axis) + ") than "
                                : std::string("(off dimension ") + std::to_string(axis) + ") ",
                 "the input ", detail::describe(x), " at dimension ", d);
  }
  check_index_range(index, x.size(axis), op, x, axis);
  return axis;
}

// The part of src that index covers (its leading index.size(d) entries on every d), contiguous.
Tensor covered_part(const Tensor& src, const Tensor& index) {
  Tensor covered = src.detach();
  for (int64_t d = 0; d < src.dim(); ++d) covered = covered.narrow(d, 0, index.size(d));
  return covered.contiguous();
}

// The gradient of src for scatter and scatter_add: each covered entry went to one place, so
// its gradient is read back from there; entries index does not reach get zero.
Tensor scattered_src_grad(const Tensor& g, int64_t axis, const Tensor& index,
                          const Shape& src_shape) {
  NoGradGuard no_grad;
  Tensor grad_src = zeros(src_shape, g.options());
  Tensor part = grad_src;
  for (int64_t d = 0; d < grad_src.dim(); ++d) part = part.narrow(d, 0, index.size(d));
  if (part.numel() > 0) part.copy_(gather(g, axis, index));
  return grad_src;
}

}  // namespace

Tensor cat(const std::vector<Tensor>& tensors, int64_t dim) {
  STRATA_CHECK(!tensors.empty(), "cat: expected a non-empty list of tensors");
  const Tensor& first = tensors[0];
  detail::check_defined(first, "cat", "tensor 0");
  STRATA_CHECK(first.dim() > 0, "cat: zero-dimensional tensor 0 cannot be concatenated; "
               "unsqueeze it or use stack");
  const int64_t axis = normalize_axis(dim, first.dim(), "cat");
  Shape out_shape = first.shape();
  out_shape[axis] = 0;
  DType dtype = first.dtype();  // mixed dtypes promote, as PyTorch's cat does
  for (size_t i = 0; i < tensors.size(); ++i) {
    const Tensor& t = tensors[i];
    detail::check_defined(t, "cat", "a tensor");
    dtype = promote_types(dtype, t.dtype());
    detail::check_same_device(first, t, "cat");
    bool compatible = t.dim() == first.dim();
    for (int64_t d = 0; compatible && d < t.dim(); ++d) {
      compatible = d == axis || t.shape()[d] == first.shape()[d];
    }
    STRATA_CHECK(compatible, "cat: tensor ", i, " ", detail::describe(t),
                 " does not match tensor 0 ", detail::describe(first),
                 " outside dimension ", axis);
    out_shape[axis] += t.shape()[axis];
  }
  Tensor out = Tensor::empty(out_shape, first.options().dtype(dtype));
  std::vector<int64_t> sizes;
  std::vector<DType> dtypes;
  int64_t start = 0;
  for (const Tensor& t : tensors) {
    const int64_t length = t.shape()[axis];
    if (t.numel() > 0) {  // the copy converts to the promoted dtype
      detail::backend_of(out).copy(out.detach().narrow(axis, start, length), t);
    }
    sizes.push_back(length);
    dtypes.push_back(t.dtype());
    start += length;
  }
  if (needs_grad(tensors)) {
    record("cat", tensors, out, [axis, sizes, dtypes](const Tensor& g, const Needs& n) {
      Grads grads(sizes.size());
      int64_t begin = 0;
      for (size_t i = 0; i < sizes.size(); ++i) {
        if (n[i]) grads[i] = g.narrow(axis, begin, sizes[i]).to(dtypes[i]);
        begin += sizes[i];
      }
      return grads;
    });
  }
  return out;
}

Tensor stack(const std::vector<Tensor>& tensors, int64_t dim) {
  STRATA_CHECK(!tensors.empty(), "stack: expected a non-empty list of tensors");
  detail::check_defined(tensors[0], "stack", "tensor 0");
  const int64_t axis = normalize_axis(dim, tensors[0].dim() + 1, "stack");
  std::vector<Tensor> expanded;
  expanded.reserve(tensors.size());
  for (size_t i = 0; i < tensors.size(); ++i) {
    detail::check_defined(tensors[i], "stack", "a tensor");
    STRATA_CHECK(tensors[i].shape() == tensors[0].shape(), "stack: tensor ", i, " ",
                 detail::describe(tensors[i]), " does not match tensor 0 ",
                 detail::describe(tensors[0]), "; stack needs equal shapes");
    STRATA_CHECK(tensors[i].device() == tensors[0].device(), "stack: tensor ", i, " ",
                 detail::describe(tensors[i]), " is on another device than tensor 0 ",
                 detail::describe(tensors[0]), "; move it with .to() first");
    expanded.push_back(tensors[i].unsqueeze(axis));
  }
  return cat(expanded, axis);
}

Tensor index_select(const Tensor& x, int64_t dim, const Tensor& index) {
  detail::check_defined(x, "index_select");
  check_index(index, "index_select");
  STRATA_CHECK(index.dim() <= 1, "index_select: index must be 0-D or 1-D, got ",
               detail::describe(index));
  detail::check_same_device(x, index, "index_select");
  STRATA_CHECK(x.dim() > 0, "index_select: input must have at least one dimension, got ",
               detail::describe(x));
  const int64_t axis = normalize_axis(dim, x.dim(), "index_select");
  check_index_range(index, x.shape()[axis], "index_select", x, axis);
  Shape out_shape = x.shape();
  out_shape[axis] = index.numel();
  Tensor out = Tensor::empty(out_shape, x.options());
  const Tensor flat_index = index.reshape({-1}).contiguous();
  if (out.numel() > 0) {
    detail::backend_of(out).index_select(out, x.contiguous().detach(), axis, flat_index);
  }
  if (needs_grad({&x})) {
    record("index_select", {x}, out, [shape = x.shape(), axis, flat_index](const Tensor& g,
                                                                           const Needs&) {
      Tensor grad = zeros(shape, g.options());
      if (g.numel() > 0) detail::backend_of(grad).index_add(grad, axis, flat_index, g.contiguous());
      // Linear in g: its own gradient selects the same rows.
      return Grads{autograd::linear_in_grad(
          "index_select_backward", g, grad,
          [axis, flat_index](const Tensor& h) { return index_select(h, axis, flat_index); })};
    });
  }
  return out;
}

Tensor gather(const Tensor& x, int64_t dim, const Tensor& index) {
  detail::check_defined(x, "gather");
  check_index(index, "gather");
  detail::check_same_device(x, index, "gather");
  STRATA_CHECK(index.dim() == x.dim(), "gather: index ", detail::describe(index),
               " must have the same number of dimensions as the input ", detail::describe(x));
  const int64_t axis = normalize_axis(dim, std::max<int64_t>(x.dim(), 1), "gather");
  for (int64_t d = 0; d < x.dim(); ++d) {
    STRATA_CHECK(d == axis || index.shape()[d] <= x.shape()[d], "gather: index ",
                 detail::describe(index), " is larger than the input ", detail::describe(x),
                 " at dimension ", d);
  }
  const Tensor input = x.dim() == 0 ? x.detach().reshape({1}) : x.detach();
  const Tensor idx = index.dim() == 0 ? index.reshape({1}) : index;
  check_index_range(idx, input.shape()[axis], "gather", x, axis);
  Tensor out = Tensor::empty(index.shape(), x.options());
  const Tensor contiguous_index = idx.contiguous();
  if (out.numel() > 0) {
    detail::backend_of(out).gather(out.detach().reshape(idx.shape()), input.contiguous(), axis,
                                   contiguous_index);
  }
  if (needs_grad({&x})) {
    record("gather", {x}, out, [shape = input.shape(), x_shape = x.shape(), axis,
                                contiguous_index](const Tensor& g, const Needs&) {
      Tensor grad = zeros(shape, g.options());
      if (g.numel() > 0) {
        detail::backend_of(grad).scatter_add(grad, axis, contiguous_index,
                                             g.reshape(contiguous_index.shape()).contiguous());
      }
      // Linear in g: its own gradient gathers at the same positions.
      return Grads{autograd::linear_in_grad(
          "gather_backward", g, grad.reshape(x_shape),
          [shape, axis, contiguous_index, g_shape = g.shape()](const Tensor& h) {
            return gather(h.reshape(shape), axis, contiguous_index).reshape(g_shape);
          })};
    });
  }
  return out;
}

Tensor scatter_add(const Tensor& x, int64_t dim, const Tensor& index, const Tensor& src) {
  const int64_t axis = check_scatter("scatter_add", x, dim, index, &src);
  const Tensor contiguous_index = index.contiguous();
  Tensor out = x.detach().contiguous().clone();
  if (index.numel() > 0) {
    detail::backend_of(out).scatter_add(out, axis, contiguous_index, covered_part(src, index));
  }
  if (needs_grad({&x, &src})) {
    record("scatter_add", {x, src}, out,
           [axis, contiguous_index, src_shape = src.shape()](const Tensor& g, const Needs& n) {
             return Grads{
                 n[0] ? g : Tensor(),
                 n[1] ? scattered_src_grad(g, axis, contiguous_index, src_shape) : Tensor()};
           });
    autograd::mark_once_differentiable(out);
  }
  return out;
}

namespace {
// x with the positions that index names along axis set to zero: the gradient of x through a
// scatter (the scattered values replaced what was there).
Tensor zero_scattered(const Tensor& g, int64_t axis, const Tensor& index) {
  Tensor grad = g.contiguous().clone();
  if (index.numel() > 0) {
    detail::backend_of(grad).scatter(grad, axis, index, zeros(index.shape(), g.options()));
  }
  return grad;
}
}  // namespace

Tensor scatter(const Tensor& x, int64_t dim, const Tensor& index, const Tensor& src) {
  const int64_t axis = check_scatter("scatter", x, dim, index, &src);
  const Tensor contiguous_index = index.contiguous();
  Tensor out = x.detach().contiguous().clone();
  if (index.numel() > 0) {
    detail::backend_of(out).scatter(out, axis, contiguous_index, covered_part(src, index));
  }
  if (needs_grad({&x, &src})) {
    record("scatter", {x, src}, out,
           [axis, contiguous_index, src_shape = src.shape()](const Tensor& g, const Needs& n) {
             return Grads{
                 n[0] ? zero_scattered(g, axis, contiguous_index) : Tensor(),
                 n[1] ? scattered_src_grad(g, axis, contiguous_index, src_shape) : Tensor()};
           });
    autograd::mark_once_differentiable(out);
  }
  return out;
}

Tensor scatter(const Tensor& x, int64_t dim, const Tensor& index, double value) {
  const int64_t axis = check_scatter("scatter", x, dim, index, nullptr);
  const Tensor contiguous_index = index.contiguous();
  Tensor out = x.detach().contiguous().clone();
  if (index.numel() > 0) {
    detail::backend_of(out).scatter(out, axis, contiguous_index,
                                    full(index.shape(), value, x.options()));
  }
  if (needs_grad({&x})) {
    record("scatter", {x}, out, [axis, contiguous_index](const Tensor& g, const Needs&) {
      return Grads{zero_scattered(g, axis, contiguous_index)};
    });
    autograd::mark_once_differentiable(out);
  }
  return out;
}

Tensor one_hot(const Tensor& index, int64_t num_classes) {
  check_index(index, "one_hot");
  NoGradGuard no_grad;
  if (index.numel() > 0) {
    const int64_t lo = min(index).item<int64_t>(), hi = max(index).item<int64_t>();
    STRATA_CHECK(lo >= 0, "one_hot: class index ", lo, " is negative (index ",
                 detail::describe(index), ")");
    if (num_classes < 0) num_classes = hi + 1;
    STRATA_CHECK(hi < num_classes, "one_hot: class index ", hi, " is out of range for ",
                 num_classes, " classes (index ", detail::describe(index), ")");
  }
  STRATA_CHECK(num_classes >= 0, "one_hot: cannot infer num_classes from an empty index");
  Shape out_shape = index.shape();
  out_shape.push_back(num_classes);
  Tensor out = zeros(out_shape, index.options());
  if (out.numel() > 0) {
    Shape column = index.shape();
    column.push_back(1);
    const Tensor idx = index.reshape(column).contiguous();
    detail::backend_of(out).scatter_add(out, out.dim() - 1, idx, ones(column, index.options()));
  }
  return out;
}

}  // namespace strata
