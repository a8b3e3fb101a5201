// Views: new geometry over the same storage, no data copied (reshape copies only when the
// strides make a view impossible). Each records a node whose backward maps the gradient back
// to the input's geometry.
#include <algorithm>
#include <numeric>

#include "internal.h"

namespace strata {

namespace detail {

bool compute_view_strides(const Shape& shape, const Strides& strides, const Shape& new_shape,
                          Strides& new_strides) {
  new_strides.assign(new_shape.size(), 0);
  if (shape.empty()) {
    std::fill(new_strides.begin(), new_strides.end(), 1);
    return true;
  }
  if (numel_of(shape) == 0) {
    new_strides = contiguous_strides(new_shape);
    return true;
  }
  // Walk the old dims from the back in chunks that are contiguous among themselves, and match
  // each chunk with a run of new dims of the same element count.
  int64_t view_d = static_cast<int64_t>(new_shape.size()) - 1;
  int64_t chunk_base_stride = strides.back();
  int64_t tensor_numel = 1, view_numel = 1;
  for (int64_t tensor_d = static_cast<int64_t>(shape.size()) - 1; tensor_d >= 0; --tensor_d) {
    tensor_numel *= shape[tensor_d];
    const bool chunk_ends =
        tensor_d == 0 || (shape[tensor_d - 1] != 1 &&
                          strides[tensor_d - 1] != tensor_numel * chunk_base_stride);
    if (!chunk_ends) continue;
    while (view_d >= 0 && (view_numel < tensor_numel || new_shape[view_d] == 1)) {
      new_strides[view_d] = view_numel * chunk_base_stride;
      view_numel *= new_shape[view_d];
      --view_d;
    }
    if (view_numel != tensor_numel) return false;
    if (tensor_d > 0) {
      chunk_base_stride = strides[tensor_d - 1];
      tensor_numel = 1;
      view_numel = 1;
    }
  }
  return view_d == -1;
}

Shape infer_shape(const Shape& shape, int64_t numel, const char* op, const Tensor& input) {
  Shape out = shape;
  int64_t known = 1, infer_at = -1;
  for (size_t i = 0; i < out.size(); ++i) {
    if (out[i] == -1) {
      STRATA_CHECK(infer_at < 0, op, ": only one dimension can be -1, got ", shape_str(shape));
      infer_at = static_cast<int64_t>(i);
    } else {
      STRATA_CHECK(out[i] >= 0, op, ": invalid size ", out[i], " in shape ", shape_str(shape));
      known *= out[i];
    }
  }
  if (infer_at >= 0) {
    STRATA_CHECK(known != 0 && numel % known == 0, op, ": shape ", shape_str(shape),
                 " is invalid for input ", describe(input), " of ", numel, " elements");
    out[static_cast<size_t>(infer_at)] = numel / known;
  }
  STRATA_CHECK(numel_of(out) == numel, op, ": shape ", shape_str(shape),
               " is invalid for input ", describe(input), " of ", numel, " elements");
  return out;
}

}  // namespace detail

namespace {

using autograd::needs_grad;
using autograd::record;

// Records `out` as a view of `in` whose gradient is `back(grad)`.
template <typename Back>
Tensor recorded(const char* name, const Tensor& in, Tensor out, Back back) {
  if (needs_grad({&in})) {
    record(name, {in}, out, [back](const Tensor& g, const std::vector<bool>&) {
      return std::vector<Tensor>{back(g)};
    });
  }
  return out;
}

// The gradient of a view that picks part of `shape`: zeros with `g` written where `pick`
// selects. Linear in g, so its own gradient (double backward) is the pick itself.
template <typename Pick>
Tensor scatter_into_zeros(const Tensor& g, const Shape& shape, Pick pick) {
  Tensor grad = zeros(shape, g.options());
  {
    NoGradGuard no_grad;
    pick(grad).copy_(g);
  }
  return autograd::linear_in_grad("view_backward", g, grad, pick);
}

}  // namespace

namespace {

// Slicing and selecting need a dimension to act on; a 0-dim tensor has none (normalize_axis
// lets axis 0 through for it, as reductions over a scalar's "dimension 0" are allowed).
void check_has_dimensions(const Tensor& t, const char* op) {
  detail::check_defined(t, op, "the tensor");
  STRATA_CHECK(t.dim() > 0, op, ": cannot be applied to a 0-dim tensor (", detail::describe(t),
               ")");
}

}  // namespace

Tensor Tensor::view(const Shape& new_shape) const {
  detail::check_defined(*this, "view", "the tensor");
  const Shape target = detail::infer_shape(new_shape, numel(), "view", *this);
  Strides new_strides;
  STRATA_CHECK(detail::compute_view_strides(shape(), strides(), target, new_strides),
               "view: cannot view ", detail::describe(*this), " with strides ",
               shape_str(strides()), " as ", shape_str(target),
               " without copying; use reshape() (or contiguous() first)");
  const Shape in_shape = shape();
  return recorded("view", *this, detail::make_view(*this, target, new_strides, offset()),
                  [in_shape](const Tensor& g) { return g.reshape(in_shape); });
}

Tensor Tensor::reshape(const Shape& new_shape) const {
  detail::check_defined(*this, "reshape", "the tensor");
  const Shape target = detail::infer_shape(new_shape, numel(), "reshape", *this);
  Strides new_strides;
  if (detail::compute_view_strides(shape(), strides(), target, new_strides)) return view(target);
  return contiguous().view(target);
}

Tensor Tensor::flatten(int64_t start_dim, int64_t end_dim) const {
  detail::check_defined(*this, "flatten", "the tensor");
  if (dim() == 0) return reshape({1});
  const int64_t start = normalize_axis(start_dim, dim(), "flatten");
  const int64_t end = normalize_axis(end_dim, dim(), "flatten");
  STRATA_CHECK(start <= end, "flatten: start_dim ", start_dim, " comes after end_dim ", end_dim,
               " for ", detail::describe(*this));
  Shape target(shape().begin(), shape().begin() + start);
  int64_t folded = 1;
  for (int64_t d = start; d <= end; ++d) folded *= shape()[d];
  target.push_back(folded);
  target.insert(target.end(), shape().begin() + end + 1, shape().end());
  return reshape(target);
}

Tensor Tensor::permute(const std::vector<int64_t>& dims) const {
  detail::check_defined(*this, "permute", "the tensor");
  const int64_t rank = dim();
  STRATA_CHECK(static_cast<int64_t>(dims.size()) == rank, "permute: got ", dims.size(),
               " dims for ", detail::describe(*this));
  std::vector<int64_t> order(dims.size());
  std::vector<bool> used(dims.size(), false);
  Shape new_shape(dims.size());
  Strides new_strides(dims.size());
  for (size_t i = 0; i < dims.size(); ++i) {
    const int64_t d = normalize_axis(dims[i], rank, "permute");
    STRATA_CHECK(!used[d], "permute: dimension ", d, " repeats in the permutation for ",
                 detail::describe(*this));
    used[d] = true;
    order[i] = d;
    new_shape[i] = shape()[d];
    new_strides[i] = strides()[d];
  }
  std::vector<int64_t> inverse(order.size());
  for (size_t i = 0; i < order.size(); ++i) inverse[order[i]] = static_cast<int64_t>(i);
  return recorded("permute", *this, detail::make_view(*this, new_shape, new_strides, offset()),
                  [inverse](const Tensor& g) { return g.permute(inverse); });
}

Tensor Tensor::transpose(int64_t dim0, int64_t dim1) const {
  detail::check_defined(*this, "transpose", "the tensor");
  if (dim() == 0) return *this;
  const int64_t a = normalize_axis(dim0, dim(), "transpose");
  const int64_t b = normalize_axis(dim1, dim(), "transpose");
  std::vector<int64_t> order(static_cast<size_t>(dim()));
  std::iota(order.begin(), order.end(), 0);
  std::swap(order[a], order[b]);
  return permute(order);
}

Tensor Tensor::t() const {
  detail::check_defined(*this, "t", "the tensor");
  STRATA_CHECK(dim() <= 2, "t: expects a tensor of at most 2 dimensions, got ",
               detail::describe(*this), "; use transpose(dim0, dim1)");
  return dim() < 2 ? *this : transpose(0, 1);
}

Tensor Tensor::slice(int64_t d, int64_t start, int64_t end, int64_t step) const {
  check_has_dimensions(*this, "slice");
  const int64_t axis = normalize_axis(d, dim(), "slice");
  STRATA_CHECK(step > 0, "slice: step must be positive, got ", step);
  const int64_t size = shape()[axis];
  auto clamp_index = [size](int64_t i) {
    if (i < 0) i += size;
    return std::clamp<int64_t>(i, 0, size);
  };
  const int64_t lo = clamp_index(start), hi = std::max(lo, clamp_index(end));
  Shape new_shape = shape();
  Strides new_strides = strides();
  new_shape[axis] = (hi - lo + step - 1) / step;
  new_strides[axis] *= step;
  const Shape in_shape = shape();
  return recorded("slice", *this,
                  detail::make_view(*this, new_shape, new_strides, offset() + lo * strides()[axis]),
                  [=](const Tensor& g) {
                    return scatter_into_zeros(g, in_shape, [=](const Tensor& grad) {
                      return grad.slice(axis, lo, hi, step);
                    });
                  });
}

Tensor Tensor::narrow(int64_t d, int64_t start, int64_t length) const {
  check_has_dimensions(*this, "narrow");
  const int64_t axis = normalize_axis(d, dim(), "narrow");
  const int64_t size = shape()[axis];
  const int64_t begin = start < 0 ? start + size : start;
  STRATA_CHECK(begin >= 0 && length >= 0 && begin + length <= size, "narrow: start ", start,
               " and length ", length, " are out of range for dimension ", axis, " of size ",
               size, " in ", detail::describe(*this));
  return slice(axis, begin, begin + length);
}

Tensor Tensor::select(int64_t d, int64_t index) const {
  check_has_dimensions(*this, "select");
  const int64_t axis = normalize_axis(d, dim(), "select");
  const int64_t size = shape()[axis];
  STRATA_CHECK(index >= -size && index < size, "select: index ", index,
               " is out of range for dimension ", axis, " of size ", size, " in ",
               detail::describe(*this));
  const int64_t i = index < 0 ? index + size : index;
  Shape new_shape = shape();
  Strides new_strides = strides();
  new_shape.erase(new_shape.begin() + axis);
  new_strides.erase(new_strides.begin() + axis);
  const Shape in_shape = shape();
  return recorded("select", *this,
                  detail::make_view(*this, new_shape, new_strides, offset() + i * strides()[axis]),
                  [=](const Tensor& g) {
                    return scatter_into_zeros(
                        g, in_shape, [=](const Tensor& grad) { return grad.select(axis, i); });
                  });
}

Tensor Tensor::expand(const Shape& new_shape) const {
  detail::check_defined(*this, "expand", "the tensor");
  const size_t rank = new_shape.size(), old_rank = shape().size();
  STRATA_CHECK(rank >= old_rank, "expand: cannot expand ", detail::describe(*this), " to ",
               shape_str(new_shape), " (fewer dimensions)");
  const size_t lead = rank - old_rank;
  Shape target(rank);
  Strides new_strides(rank, 0);
  for (size_t i = 0; i < rank; ++i) {
    const int64_t want = new_shape[i];
    if (i < lead) {
      STRATA_CHECK(want >= 0, "expand: size -1 is not allowed for a new leading dimension (",
                   shape_str(new_shape), ")");
      target[i] = want;
      continue;
    }
    const int64_t have = shape()[i - lead];
    STRATA_CHECK(want == -1 || want == have || have == 1, "expand: cannot expand ",
                 detail::describe(*this), " to ", shape_str(new_shape), " (size ", have,
                 " vs ", want, " at dimension ", i, ")");
    target[i] = want == -1 ? have : want;
    new_strides[i] = target[i] == have ? strides()[i - lead] : 0;
  }
  const Shape in_shape = shape();
  return recorded("expand", *this, detail::make_view(*this, target, new_strides, offset()),
                  [in_shape](const Tensor& g) { return autograd::sum_to(g, in_shape); });
}

Tensor Tensor::squeeze() const {
  detail::check_defined(*this, "squeeze", "the tensor");
  Shape target;
  for (int64_t s : shape()) {
    if (s != 1) target.push_back(s);
  }
  return target.size() == shape().size() ? *this : view(target);
}

Tensor Tensor::squeeze(int64_t d) const {
  detail::check_defined(*this, "squeeze", "the tensor");
  if (dim() == 0) {
    normalize_axis(d, 0, "squeeze");
    return *this;
  }
  const int64_t axis = normalize_axis(d, dim(), "squeeze");
  if (shape()[axis] != 1) return *this;
  Shape target = shape();
  target.erase(target.begin() + axis);
  return view(target);
}

Tensor Tensor::unsqueeze(int64_t d) const {
  detail::check_defined(*this, "unsqueeze", "the tensor");
  const int64_t axis = normalize_axis(d, dim() + 1, "unsqueeze");
  Shape new_shape = shape();
  Strides new_strides = strides();
  const int64_t stride = axis < dim() ? strides()[axis] * shape()[axis] : 1;
  new_shape.insert(new_shape.begin() + axis, 1);
  new_strides.insert(new_strides.begin() + axis, stride);
  return recorded("unsqueeze", *this, detail::make_view(*this, new_shape, new_strides, offset()),
                  [axis](const Tensor& g) { return g.squeeze(axis); });
}

}  // namespace strata
