// nn::DistributedDataParallel (torch.nn.parallel.DistributedDataParallel): data-parallel
// training of one module replicated on every rank of a process group. Each rank runs forward
// and backward on its own share of the batch; the gradients are averaged across the ranks
// during backward, so after backward() every rank holds the gradient of the whole batch and
// the optimizers step identically.
// - Construction checks that every rank's module has the same parameters (names, shapes,
//   dtypes; an error names the parameter and the ranks), then copies rank 0's parameters and
//   buffers to every rank.
// - Gradients are grouped into buckets of about bucket_cap_mb, in reverse order of
//   registration (roughly the order backward produces them). A bucket's all-reduce starts as
//   soon as its last gradient has been accumulated (a post-accumulate hook), so communication
//   overlaps the rest of backward; the buckets start in one order on every rank, and the
//   averaged gradients are written back before backward() returns.
// - no_sync(): backward passes inside its scope only accumulate locally (gradient
//   accumulation); the first backward after it averages everything accumulated.
// - A parameter that gets no gradient in a backward pass is an error naming it, unless
//   find_unused_parameters, which treats its gradient as zero on that rank.
// - broadcast_buffers: each forward first copies rank 0's buffers (batch norm's running
//   statistics) to every rank, as PyTorch's default.
// Its state_dict keys are the module's prefixed with "module." (as PyTorch's).
//
// nn::SyncBatchNorm: batch normalization whose training statistics are those of the whole
// batch across the ranks (the mean and variance summed over the group, two differentiable
// all-reduces), so small per-rank batches normalize as one large batch would.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "strata/distributed.h"
#include "strata/nn/layers.h"
#include "strata/nn/module.h"

namespace strata::nn {

struct DistributedDataParallelOptions {
  double bucket_cap_mb = 25.0;
  bool find_unused_parameters = false;
  bool broadcast_buffers = true;
};

class DistributedDataParallel : public Module {
 public:
  DistributedDataParallel(std::shared_ptr<Module> module,
                          std::shared_ptr<distributed::ProcessGroup> group,
                          DistributedDataParallelOptions options = {});
  ~DistributedDataParallel() override;

  Tensor forward(const Tensor& input) override;

  Module& module() { return *module_; }
  distributed::ProcessGroup& process_group() { return *group_; }

  // Backward passes run while the returned guard lives only accumulate gradients locally.
  class NoSyncGuard {
   public:
    explicit NoSyncGuard(DistributedDataParallel& ddp) : ddp_(ddp), previous_(ddp.sync_) {
      ddp.sync_ = false;
    }
    ~NoSyncGuard() { ddp_.sync_ = previous_; }
    NoSyncGuard(const NoSyncGuard&) = delete;
    NoSyncGuard& operator=(const NoSyncGuard&) = delete;

   private:
    DistributedDataParallel& ddp_;
    bool previous_;
  };
  [[nodiscard]] NoSyncGuard no_sync() { return NoSyncGuard(*this); }

  // The parameters' names ("module.fc.weight") in each bucket, in the order buckets start.
  std::vector<std::vector<std::string>> bucket_names() const;

 private:
  struct Bucket {
    std::vector<size_t> params;    // indices into params_, in the bucket's layout order
    std::vector<int64_t> offsets;  // where each starts in flat
    Tensor flat;                   // the gradients, one after another
    size_t pending = 0;            // parameters not yet ready in this pass
    bool launched = false;
    distributed::Work work;
  };

  void check_same_parameters_everywhere();
  void broadcast_state();
  void build_buckets(double cap_mb);
  void on_gradient_ready(size_t index);
  void launch_ready_buckets();
  void launch(Bucket& bucket);
  void finish_backward();

  std::shared_ptr<Module> module_;
  std::shared_ptr<distributed::ProcessGroup> group_;
  DistributedDataParallelOptions options_;
  std::vector<std::string> names_;
  std::vector<Tensor> params_;
  std::vector<size_t> bucket_of_;
  std::vector<bool> ready_;
  std::vector<Bucket> buckets_;
  std::vector<int64_t> hook_ids_;
  size_t next_bucket_ = 0;
  bool expect_backward_ = false;  // a forward ran since the last synchronized backward
  bool pass_started_ = false;     // a hook of this backward pass has fired
  bool sync_ = true;
};

// BatchNorm over [N, C, ...] inputs (1-D to 3-D spatial) with statistics across the ranks of
// `group` in training; in evaluation it uses the running statistics, as BatchNorm. The running
// statistics take the whole batch's mean and unbiased variance, the same on every rank.
class SyncBatchNorm : public BatchNorm {
 public:
  SyncBatchNorm(int64_t features, std::shared_ptr<distributed::ProcessGroup> group,
                double epsilon = 1e-5, std::optional<double> running_momentum = 0.1,
                bool with_affine = true, bool track_running = true);
  Tensor forward(const Tensor& input) override;

 private:
  std::shared_ptr<distributed::ProcessGroup> group_;
};

}  // namespace strata::nn
