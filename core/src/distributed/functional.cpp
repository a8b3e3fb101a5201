// distributed::differentiable_all_reduce: the sum over ranks, recorded on the tape.
#include "../internal.h"
#include "strata/autograd.h"
#include "strata/distributed.h"

namespace strata::distributed {

Tensor differentiable_all_reduce(const Tensor& t, ProcessGroup& group) {
  detail::check_defined(t, "differentiable_all_reduce", "the tensor");
  Tensor out = t.detach().contiguous().clone();
  group.all_reduce(out, ReduceOp::Sum).wait();
  if (autograd::needs_grad({&t})) {
    // The group outlives the step that records this (it outlives the model using it).
    autograd::record("all_reduce", {t}, out, [&group](const Tensor& g, const std::vector<bool>&) {
      Tensor summed = g.contiguous().clone();
      group.all_reduce(summed, ReduceOp::Sum).wait();
      return std::vector<Tensor>{summed};
    });
  }
  return out;
}

}  // namespace strata::distributed
