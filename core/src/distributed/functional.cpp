// distributed::differentiable_all_reduce (the sum over ranks, recorded on the tape) and
// local_rank (from the launcher's environment).
#include <cstdlib>
#include <string>

#include "../internal.h"
#include "strata/autograd.h"
#include "strata/distributed.h"

namespace strata::distributed {

int local_rank() {
  for (const char* name :
       {"OMPI_COMM_WORLD_LOCAL_RANK", "MPI_LOCALRANKID", "SLURM_LOCALID", "LOCAL_RANK"}) {
    const char* value = std::getenv(name);
    if (value == nullptr || *value == '\0') continue;
    char* end = nullptr;
    const long rank = std::strtol(value, &end, 10);
    STRATA_CHECK(*end == '\0' && rank >= 0 && rank <= 1 << 20, "local_rank: ", name, "=\"",
                 value, "\" is not a rank");
    return static_cast<int>(rank);
  }
  return 0;
}

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
