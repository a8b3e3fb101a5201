// distributed::new_nccl_group and nccl_available (see strata/distributed.h): the arguments are
// checked here, in core/, so every build gives the same errors; the group itself lives in the
// CUDA backend (cuda/nccl_process_group.cpp), reached through the CUDA hook table like every
// other CUDA entry point. A build without CUDA, or whose CUDA backend lacks NCCL, says so.
#include <memory>
#include <string>
#include <utility>

#include "strata/detail/cuda_hooks.h"
#include "strata/distributed.h"
#include "strata/error.h"

namespace strata::distributed {

bool nccl_available() {
  return detail::cuda_nccl_built(nullptr) && detail::cuda_device_count(nullptr) > 0;
}

std::shared_ptr<ProcessGroup> new_nccl_group(std::shared_ptr<ProcessGroup> bootstrap, Device device,
                                             ProcessGroupOptions options) {
  STRATA_CHECK(options.timeout.count() > 0, "new_nccl_group: the timeout must be positive, got ",
               options.timeout.count(), " ms");
  STRATA_CHECK(device.is_cuda(), "new_nccl_group: the NCCL group runs on a CUDA device, got ",
               device.str(), " (use new_mpi_group() for CPU tensors)");
  std::string why;
  STRATA_CHECK(detail::cuda_nccl_built(&why), "new_nccl_group: ", why);
  const int count = detail::cuda_device_count(&why);
  STRATA_CHECK(count > 0, "new_nccl_group: no usable CUDA device for ", device.str(), ": ", why);
  STRATA_CHECK(device.index >= 0 && device.index < count, "new_nccl_group: ", device.str(),
               " does not exist (this machine has ", count, " CUDA device", count == 1 ? "" : "s",
               ")");
  return detail::cuda_new_nccl_group(std::move(bootstrap), device, options);
}

}  // namespace strata::distributed
