// Reductions over any set of axes. Every reduction is brought to the one form the backends
// implement: a contiguous [outer, size, inner] input reduced over its middle axis. When the
// reduced axes are adjacent that form is a plain view; otherwise the input is permuted (kept
// axes first) and copied once.
#include <algorithm>
#include <numeric>

#include "strata/amp/autocast.h"
#include "internal.h"

namespace strata {

namespace {

using autograd::needs_grad;
using autograd::record;
using Grads = std::vector<Tensor>;
using Needs = std::vector<bool>;

struct ReductionPlan {
  std::vector<int64_t> dims;   // sorted, unique, non-negative
  std::vector<bool> reduced;   // per input axis
  Shape out_shape;             // with keepdim
  Shape keep_shape;            // keepdim=true shape (for backward broadcasting)
  int64_t count = 1;           // elements folded into each output
};

ReductionPlan plan_reduction(const Tensor& x, const std::vector<int64_t>& dims, bool keepdim,
                             const char* op) {
  ReductionPlan plan;
  const int64_t rank = x.dim();
  plan.reduced.assign(static_cast<size_t>(rank), dims.empty());
  for (int64_t d : dims) {
    const int64_t axis = normalize_axis(d, rank, op);
    if (rank == 0) continue;
    STRATA_CHECK(!plan.reduced[axis], op, ": dimension ", d, " appears twice in the dims for ",
                 detail::describe(x));
    plan.reduced[axis] = true;
  }
  for (int64_t d = 0; d < rank; ++d) {
    const int64_t size = x.shape()[d];
    if (plan.reduced[d]) {
      plan.dims.push_back(d);
      plan.count *= size;
      plan.keep_shape.push_back(1);
      if (keepdim) plan.out_shape.push_back(1);
    } else {
      plan.keep_shape.push_back(size);
      plan.out_shape.push_back(size);
    }
  }
  return plan;
}

// Runs the backend reduction for a plan; `out` has the kept axes in order.
void run_reduction(ReduceOp op, const Tensor& out, const Tensor& x, const ReductionPlan& plan) {
  const int64_t rank = x.dim();
  Tensor input = x;
  int64_t outer = 1, size = plan.count, inner = 1;
  const bool adjacent =
      plan.dims.empty() || plan.dims.back() - plan.dims.front() + 1 ==
                               static_cast<int64_t>(plan.dims.size());
  if (rank > 0 && adjacent) {
    for (int64_t d = 0; d < plan.dims.front(); ++d) outer *= x.shape()[d];
    for (int64_t d = plan.dims.back() + 1; d < rank; ++d) inner *= x.shape()[d];
    input = x.contiguous();
  } else if (rank > 0) {
    std::vector<int64_t> order;
    for (int64_t d = 0; d < rank; ++d) {
      if (!plan.reduced[d]) {
        order.push_back(d);
        outer *= x.shape()[d];
      }
    }
    order.insert(order.end(), plan.dims.begin(), plan.dims.end());
    input = x.detach().permute(order).contiguous();
  }
  detail::backend_of(out).reduce(op, out, input.detach(), outer, size, inner);
}

// Sum and max/min share everything but the kernel and the backward.
Tensor reduce_values(ReduceOp op, const char* name, const Tensor& x,
                     const std::vector<int64_t>& dims, bool keepdim, ReductionPlan& plan) {
  detail::check_defined(x, name);
  plan = plan_reduction(x, dims, keepdim, name);
  DType dtype = x.dtype();
  if (op == ReduceOp::Sum && !is_floating(dtype)) dtype = DType::Int64;
  Tensor out = Tensor::empty(plan.out_shape, TensorOptions(dtype).device(x.device()));
  if (out.numel() == 0) return out;
  if (plan.count == 0) {
    STRATA_CHECK(op == ReduceOp::Sum, name, ": cannot reduce over an empty dimension of ",
                 detail::describe(x));
    out.fill_(0.0);
    return out;
  }
  run_reduction(op, out, detail::convert(x, dtype), plan);
  return out;
}

}  // namespace

Tensor sum(const Tensor& x, const std::vector<int64_t>& dims, bool keepdim) {
  if (amp::needs_float32({&x})) {
    return sum(amp::cast_to_float32(x), dims, keepdim);
  }
  ReductionPlan plan;
  Tensor out = reduce_values(ReduceOp::Sum, "sum", x, dims, keepdim, plan);
  if (needs_grad({&x})) {
    record("sum", {x}, out, [keep = plan.keep_shape, shape = x.shape()](const Tensor& g,
                                                                        const Needs&) {
      return Grads{g.reshape(keep).expand(shape)};
    });
  }
  return out;
}

Tensor mean(const Tensor& x, const std::vector<int64_t>& dims, bool keepdim) {
  detail::check_defined(x, "mean");
  STRATA_CHECK(is_floating(x.dtype()), "mean: expected a floating input, got ", detail::describe(x),
               "; convert with .to(kFloat32)");
  const ReductionPlan plan = plan_reduction(x, dims, keepdim, "mean");
  STRATA_CHECK(plan.count > 0, "mean: cannot average over an empty dimension of ",
               detail::describe(x));
  // NOTE: under autocast the sum runs in float32 (it is on the float32 list) while mean follows
  // its input, as PyTorch's lists have it: the quotient is cast back, rounding once.
  return div(sum(x, dims, keepdim), static_cast<double>(plan.count)).to(x.dtype());
}

namespace {

// max/min backward: the gradient goes to the elements equal to the result, shared evenly.
Tensor extremum(ReduceOp op, const char* name, const Tensor& x, const std::vector<int64_t>& dims,
                bool keepdim) {
  ReductionPlan plan;
  Tensor out = reduce_values(op, name, x, dims, keepdim, plan);
  if (needs_grad({&x})) {
    record(name, {x}, out, [x, out = out.detach(), keep = plan.keep_shape,
                            dims = plan.dims](const Tensor& g, const Needs&) {
      const Tensor winners = eq(x, out.reshape(keep)).to(g.dtype());
      const Tensor share = div(winners, sum(winners, dims, /*keepdim=*/true));
      return Grads{mul(share, g.reshape(keep))};
    });
  }
  return out;
}

Tensor arg_extremum(ReduceOp op, const char* name, const Tensor& x, std::optional<int64_t> dim,
                    bool keepdim) {
  detail::check_defined(x, name);
  STRATA_CHECK(x.numel() > 0, name, ": cannot take the index of an empty tensor ",
               detail::describe(x));
  if (!dim) {
    const Tensor flat = x.detach().reshape({-1});
    Tensor index = arg_extremum(op, name, flat, 0, false);
    if (!keepdim) return index;
    return index.reshape(Shape(static_cast<size_t>(x.dim()), 1));
  }
  const ReductionPlan plan = plan_reduction(x, {*dim}, keepdim, name);
  Tensor out = Tensor::empty(plan.out_shape, TensorOptions(DType::Int64).device(x.device()));
  if (x.dim() == 0) {
    out.fill_(0.0);
    return out;
  }
  run_reduction(op, out, x, plan);
  return out;
}

}  // namespace

Tensor max(const Tensor& x, const std::vector<int64_t>& dims, bool keepdim) {
  return extremum(ReduceOp::Max, "max", x, dims, keepdim);
}

Tensor min(const Tensor& x, const std::vector<int64_t>& dims, bool keepdim) {
  return extremum(ReduceOp::Min, "min", x, dims, keepdim);
}

Tensor argmax(const Tensor& x, std::optional<int64_t> dim, bool keepdim) {
  return arg_extremum(ReduceOp::ArgMax, "argmax", x, dim, keepdim);
}

Tensor argmin(const Tensor& x, std::optional<int64_t> dim, bool keepdim) {
  return arg_extremum(ReduceOp::ArgMin, "argmin", x, dim, keepdim);
}

}  // namespace strata
