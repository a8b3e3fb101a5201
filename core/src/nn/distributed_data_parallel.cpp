// nn::DistributedDataParallel (see the header): the parameter check and broadcast at
// construction, the buckets, and the hooks that average gradients during backward.
#include "strata/nn/distributed_data_parallel.h"

#include <algorithm>
#include <functional>
#include <sstream>

#include "../internal.h"
#include "strata/autograd.h"
#include "strata/error.h"

namespace strata::nn {

namespace {

// One parameter as a fixed row of integers, compared across ranks: a hash of its name, its
// dtype, rank and up to kMaxDims sizes.
constexpr int64_t kMaxDims = 8;
constexpr int64_t kRecordSize = 3 + kMaxDims;

std::vector<int64_t> record_of(const std::string& name, const Tensor& t) {
  std::vector<int64_t> row(kRecordSize, -1);
  row[0] = static_cast<int64_t>(std::hash<std::string>{}(name)&0x7fffffffffffffffULL);
  row[1] = static_cast<int64_t>(t.dtype());
  row[2] = t.dim();
  for (int64_t d = 0; d < std::min<int64_t>(t.dim(), kMaxDims); ++d) row[3 + d] = t.size(d);
  return row;
}

std::string describe_record(const int64_t* row) {
  std::ostringstream text;
  text << dtype_name(static_cast<DType>(row[1])) << " [";
  for (int64_t d = 0; d < std::min<int64_t>(row[2], kMaxDims); ++d) {
    text << (d ? ", " : "") << row[3 + d];
  }
  text << (row[2] > kMaxDims ? ", ...]" : "]");
  return text.str();
}

}  // namespace

DistributedDataParallel::DistributedDataParallel(std::shared_ptr<Module> module,
                                                 std::shared_ptr<distributed::ProcessGroup> group,
                                                 DistributedDataParallelOptions options)
    : Module("DistributedDataParallel"),
      module_(std::move(module)),
      group_(std::move(group)),
      options_(options) {
  STRATA_CHECK(module_ != nullptr, "DistributedDataParallel: no module given");
  STRATA_CHECK(group_ != nullptr, "DistributedDataParallel: no process group given");
  STRATA_CHECK(options_.bucket_cap_mb > 0,
               "DistributedDataParallel: bucket_cap_mb must be "
               "positive, got ",
               options_.bucket_cap_mb);
  register_module("module", module_);
  for (const auto& [name, p] : named_parameters()) {
    if (!p.requires_grad()) continue;
    names_.push_back(name);
    params_.push_back(p);
  }
  check_same_parameters_everywhere();
  broadcast_state();
  build_buckets(options_.bucket_cap_mb);
  ready_.assign(params_.size(), false);
  for (size_t i = 0; i < params_.size(); ++i) {
    hook_ids_.push_back(autograd::add_post_accumulate_hook(
        params_[i], [this, i](const Tensor&) { on_gradient_ready(i); }));
  }
}

DistributedDataParallel::~DistributedDataParallel() {
  for (size_t i = 0; i < params_.size(); ++i) {
    autograd::remove_post_accumulate_hook(params_[i], hook_ids_[i]);
  }
}

std::vector<std::vector<std::string>> DistributedDataParallel::bucket_names() const {
  std::vector<std::vector<std::string>> out;
  for (const Bucket& bucket : buckets_) {
    out.emplace_back();
    for (size_t i : bucket.params) out.back().push_back(names_[i]);
  }
  return out;
}

// ---- construction ------------------------------------------------------------------------

// NOTE: the records travel on the parameters' device, not the CPU: a group may move only
// device tensors (NCCL's takes CUDA tensors alone); they are read back on the host.
void DistributedDataParallel::check_same_parameters_everywhere() {
  const int size = group_->size(), rank = group_->rank();
  const auto count = static_cast<int64_t>(params_.size());
  const Device host(kCPU);
  const Device device = params_.empty() ? host : params_.front().device();
  const TensorOptions on_device = TensorOptions(DType::Int64).device(device);
  Tensor counts = zeros({size}, on_device);
  group_->all_gather(counts, full({1}, static_cast<double>(count), on_device)).wait();
  counts = counts.to(host);
  const int64_t* count_of = counts.data<int64_t>();
  for (int r = 0; r < size; ++r) {
    STRATA_CHECK(count_of[r] == count, "DistributedDataParallel: rank ", rank, " has ", count,
                 " parameters but rank ", r, " has ", count_of[r],
                 "; every rank must wrap the same model");
  }
  if (count == 0) return;
  std::vector<int64_t> rows;
  for (size_t i = 0; i < params_.size(); ++i) {
    const std::vector<int64_t> row = record_of(names_[i], params_[i]);
    rows.insert(rows.end(), row.begin(), row.end());
  }
  Tensor all = zeros({size * count, kRecordSize}, on_device);
  group_->all_gather(all, from_vector<int64_t>(rows, {count, kRecordSize}).to(device)).wait();
  all = all.to(host);
  const int64_t* table = all.data<int64_t>();
  for (int64_t i = 0; i < count; ++i) {
    const int64_t* mine = table + (rank * count + i) * kRecordSize;
    for (int r = 0; r < size; ++r) {
      const int64_t* theirs = table + (r * count + i) * kRecordSize;
      if (std::equal(mine, mine + kRecordSize, theirs)) continue;
      STRATA_CHECK(false, "DistributedDataParallel: parameter ", i,
                   " differs across ranks: "
                   "rank ",
                   rank, " has '", names_[static_cast<size_t>(i)], "' ", describe_record(mine),
                   ", rank ", r, " has ",
                   mine[0] == theirs[0] ? "the same name with " : "another name with ",
                   describe_record(theirs), "; every rank must wrap the same model");
    }
  }
}

void DistributedDataParallel::broadcast_state() {
  NoGradGuard no_grad;
  std::vector<distributed::Work> works;
  for (const Tensor& p : module_->parameters()) works.push_back(group_->broadcast(p, 0));
  for (const Tensor& b : module_->buffers()) works.push_back(group_->broadcast(b, 0));
  for (const distributed::Work& w : works) w.wait();
}

// Reverse registration order, a new bucket when the cap is reached or the dtype or device
// changes.
void DistributedDataParallel::build_buckets(double cap_mb) {
  const auto cap_bytes = static_cast<int64_t>(cap_mb * 1024 * 1024);
  bucket_of_.assign(params_.size(), 0);
  int64_t bytes = 0;
  for (size_t k = params_.size(); k-- > 0;) {
    const Tensor& p = params_[k];
    const bool fits = !buckets_.empty() && bytes < cap_bytes &&
                      params_[buckets_.back().params.front()].dtype() == p.dtype() &&
                      params_[buckets_.back().params.front()].device() == p.device();
    if (!fits) {
      buckets_.emplace_back();
      bytes = 0;
    }
    Bucket& bucket = buckets_.back();
    bucket.offsets.push_back(
        bucket.params.empty() ? 0 : bucket.offsets.back() + params_[bucket.params.back()].numel());
    bucket.params.push_back(k);
    bucket_of_[k] = buckets_.size() - 1;
    bytes += p.numel() * static_cast<int64_t>(element_size(p.dtype()));
  }
  for (Bucket& bucket : buckets_) {
    const Tensor& last = params_[bucket.params.back()];
    const int64_t total = bucket.offsets.back() + last.numel();
    bucket.flat = Tensor::empty({total}, last.options());
  }
}

// ---- a training step -----------------------------------------------------------------------

Tensor DistributedDataParallel::forward(const Tensor& input) {
  if (options_.broadcast_buffers && is_training()) {
    NoGradGuard no_grad;
    std::vector<distributed::Work> works;
    for (const Tensor& b : module_->buffers()) works.push_back(group_->broadcast(b, 0));
    for (const distributed::Work& w : works) w.wait();
  }
  expect_backward_ = GradMode::is_enabled();
  pass_started_ = false;
  return (*module_)(input);
}

void DistributedDataParallel::on_gradient_ready(size_t index) {
  if (!expect_backward_ || !sync_) return;
  if (!pass_started_) {
    pass_started_ = true;
    std::fill(ready_.begin(), ready_.end(), false);
    for (Bucket& bucket : buckets_) {
      bucket.pending = bucket.params.size();
      bucket.launched = false;
    }
    next_bucket_ = 0;
    autograd::queue_backward_end_callback([this] { finish_backward(); });
  }
  if (ready_[index]) return;
  ready_[index] = true;
  Bucket& bucket = buckets_[bucket_of_[index]];
  --bucket.pending;
  launch_ready_buckets();
}

// Starts the buckets whose gradients are all in, in bucket order (so every rank starts its
// collectives in one order).
void DistributedDataParallel::launch_ready_buckets() {
  while (next_bucket_ < buckets_.size() && buckets_[next_bucket_].pending == 0) {
    launch(buckets_[next_bucket_++]);
  }
}

// Copies the bucket's gradients into its flat buffer (zeros for a parameter without one) and
// starts averaging it.
void DistributedDataParallel::launch(Bucket& bucket) {
  for (size_t j = 0; j < bucket.params.size(); ++j) {
    const Tensor& p = params_[bucket.params[j]];
    Tensor slot = bucket.flat.narrow(0, bucket.offsets[j], p.numel());
    if (p.grad().defined()) {
      slot.copy_(p.grad().reshape({p.numel()}));
    } else {
      slot.fill_(0.0);
    }
  }
  bucket.launched = true;
  bucket.work = group_->all_reduce(bucket.flat, distributed::ReduceOp::Avg);
}

// The end of a synchronized backward: start what is left (parameters without a gradient count
// as zeros, so every rank runs every bucket), wait, and write the averages back.
void DistributedDataParallel::finish_backward() {
  expect_backward_ = false;
  std::vector<std::string> unused;
  for (size_t i = 0; i < params_.size(); ++i) {
    if (!ready_[i]) unused.push_back(names_[i]);
  }
  for (; next_bucket_ < buckets_.size(); ++next_bucket_) launch(buckets_[next_bucket_]);
  for (Bucket& bucket : buckets_) bucket.work.wait();
  for (const Bucket& bucket : buckets_) {
    for (size_t j = 0; j < bucket.params.size(); ++j) {
      const size_t i = bucket.params[j];
      Tensor p = params_[i];
      const Tensor average = bucket.flat.narrow(0, bucket.offsets[j], p.numel()).view(p.shape());
      Tensor& grad = p.mutable_grad();
      if (grad.defined()) {
        grad.copy_(average);
      } else if (ready_[i] || average.abs().max().item<double>() != 0.0) {
        grad = average.clone();  // unused here, but another rank's gradient reached it
      }
    }
  }
  if (!options_.find_unused_parameters && !unused.empty()) {
    std::string list;
    for (size_t k = 0; k < unused.size() && k < 10; ++k) list += (k ? ", " : "") + unused[k];
    if (unused.size() > 10) list += ", ...";
    STRATA_CHECK(false, "DistributedDataParallel: ", unused.size(),
                 " parameter(s) got no "
                 "gradient in this backward pass on rank ",
                 group_->rank(), ": ", list,
                 "; pass find_unused_parameters = true if the forward does not use every "
                 "parameter (their gradients then count as zero on this rank)");
  }
}

// ---- SyncBatchNorm ---------------------------------------------------------------------------

SyncBatchNorm::SyncBatchNorm(int64_t features, std::shared_ptr<distributed::ProcessGroup> group,
                             double epsilon, std::optional<double> running_momentum,
                             bool with_affine, bool track_running)
    : BatchNorm("SyncBatchNorm", 2, 5, features, epsilon, running_momentum, with_affine,
                track_running),
      group_(std::move(group)) {
  STRATA_CHECK(group_ != nullptr, "SyncBatchNorm: no process group given");
}

Tensor SyncBatchNorm::forward(const Tensor& input) {
  if (!is_training() && track_running_stats) return BatchNorm::forward(input);
  STRATA_CHECK(input.defined() && input.dim() >= 2 && input.dim() <= 5,
               "SyncBatchNorm: expected a 2-D to 5-D input [N, C, ...], got ",
               input.defined() ? detail::describe(input) : std::string("undefined"));
  STRATA_CHECK(input.size(1) == num_features, "SyncBatchNorm: expected ", num_features,
               " channels, got input ", detail::describe(input));
  std::vector<int64_t> dims = {0};
  Shape per_channel = {1, num_features};  // [1, C, 1, ...]
  for (int64_t d = 2; d < input.dim(); ++d) {
    dims.push_back(d);
    per_channel.push_back(1);
  }
  // The whole batch's element count per channel.
  Tensor count = full({1}, static_cast<double>(input.numel() / num_features),
                      TensorOptions(DType::Float64).device(input.device()));
  group_->all_reduce(count).wait();
  const double n = count.item<double>();
  STRATA_CHECK(n > 1,
               "SyncBatchNorm: training needs more than one value per channel across "
               "the ranks, got ",
               n, " (input ", detail::describe(input), ")");
  // Two passes (the mean, then the squared deviations from it): no cancellation.
  const Tensor mean = div(distributed::differentiable_all_reduce(sum(input, dims), *group_), n);
  const Tensor centered = sub(input, mean.reshape(per_channel));
  const Tensor var =
      div(distributed::differentiable_all_reduce(sum(mul(centered, centered), dims), *group_), n);
  Tensor out = div(centered, sqrt(add(var, eps)).reshape(per_channel));
  if (affine) out = add(mul(out, weight.reshape(per_channel)), bias.reshape(per_channel));
  if (track_running_stats) {
    NoGradGuard no_grad;
    num_batches_tracked.add_(ones({}, TensorOptions(kInt64).device(input.device())));
    const double factor = running_factor();
    running_mean.mul_(1.0 - factor).add_(mul(mean.detach(), factor));
    running_var.mul_(1.0 - factor).add_(mul(var.detach(), factor * n / (n - 1)));
  }
  return out;
}

}  // namespace strata::nn
