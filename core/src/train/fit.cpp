// fit(), evaluate() and predict(): the training loop over DataLoaders, with metrics, validation,
// callbacks and progress (see fit.h for the rules kept). The loss and the metrics accumulate
// on the training device; the host reads them at an epoch's end and when the bar redraws.
#include "strata/train/fit.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <iostream>
#include <limits>
#include <optional>
#include <set>
#include <sstream>
#include <utility>

#include "strata/amp/autocast.h"
#include "strata/autograd.h"
#include "strata/data/dataloader.h"
#include "strata/distributed.h"
#include "strata/error.h"
#include "strata/nn/distributed_data_parallel.h"
#include "strata/ops.h"
#include "train/progress.h"

namespace strata::train {

// ---- History ------------------------------------------------------------------------------

void History::append(int64_t epoch, Logs logs) {
  epochs_.push_back(epoch);
  logs_.push_back(std::move(logs));
}

const Logs& History::at(size_t index) const {
  STRATA_CHECK(index < logs_.size(), "History::at: index ", index, " out of range (",
               logs_.size(), " epochs recorded)");
  return logs_[index];
}

const Logs& History::back() const {
  STRATA_CHECK(!logs_.empty(), "History::back: no epoch recorded");
  return logs_.back();
}

bool History::contains(const std::string& name) const {
  for (const Logs& logs : logs_) {
    if (logs.contains(name)) return true;
  }
  return false;
}

std::vector<std::string> History::names() const {
  std::set<std::string> names;
  for (const Logs& logs : logs_) {
    for (const auto& [name, value] : logs) {
      (void)value;
      names.insert(name);
    }
  }
  return {names.begin(), names.end()};
}

std::vector<double> History::series(const std::string& name) const {
  if (!contains(name)) {
    std::ostringstream known;
    for (const std::string& n : names()) known << (known.tellp() > 0 ? ", " : "") << n;
    STRATA_CHECK(false, "History::series: no epoch recorded \"", name, "\" (recorded: ",
                 known.str().empty() ? "nothing" : known.str(), ")");
  }
  std::vector<double> values;
  values.reserve(logs_.size());
  for (const Logs& logs : logs_) {
    const auto entry = logs.find(name);
    values.push_back(entry != logs.end() ? entry->second
                                         : std::numeric_limits<double>::quiet_NaN());
  }
  return values;
}

// ---- MetricSpec ---------------------------------------------------------------------------

std::unique_ptr<Metric> MetricSpec::make(int64_t num_classes) const {
  if (factory_) {
    std::unique_ptr<Metric> metric = factory_();
    STRATA_CHECK(metric != nullptr, "MetricSpec: the metric factory returned null");
    return metric;
  }
  if (prototype_) return prototype_->clone();
  return make_metric(name_, num_classes);
}

namespace {

using Metrics = std::vector<std::unique_ptr<Metric>>;

double now_seconds() { return detail::Progress::steady_seconds(); }

// Where batches go when the options leave it open: the model's own device.
Device model_device(const nn::Module& model) {
  for (const Tensor& parameter : model.parameters()) return parameter.device();
  for (const Tensor& buffer : model.buffers()) return buffer.device();
  return Device(DeviceType::CPU);
}

// The device batches go to: the one asked for, which must hold the model, or the model's.
Device resolve_device(const char* caller, const nn::Module& model,
                      const std::optional<Device>& requested) {
  const Device own = model_device(model);
  if (!requested) return own;
  const bool has_tensors = !model.parameters().empty() || !model.buffers().empty();
  STRATA_CHECK(!has_tensors || own == *requested, caller, ": the model is on ", own.str(),
               " but device is ", requested->str(), "; move the model first (model.to(",
               requested->str(), ")) and build the optimizer after");
  return *requested;
}

// Builds the metrics and checks that their names are distinct and leave room for "val_".
Metrics make_metrics(const char* caller, const std::vector<MetricSpec>& specs,
                     int64_t num_classes) {
  Metrics metrics;
  std::set<std::string> names{"loss", "lr", "seconds"};
  for (const MetricSpec& spec : specs) {
    std::unique_ptr<Metric> metric = spec.make(num_classes);
    STRATA_CHECK(names.insert(metric->name()).second, caller, ": two metrics, or a metric and ",
                 "a built-in log, are both named \"", metric->name(), "\"");
    metrics.push_back(std::move(metric));
  }
  return metrics;
}

Metrics clone_metrics(const Metrics& metrics) {
  Metrics clones;
  for (const auto& metric : metrics) clones.push_back(metric->clone());
  return clones;
}

std::ostream& output_of(std::ostream* output) { return output != nullptr ? *output : std::cout; }

// This process's part in data-parallel work: the whole of it in one process (no group).
struct Ranks {
  distributed::ProcessGroup* group = nullptr;
  int rank = 0;
  int size = 1;

  bool is_main() const { return rank == 0; }

  // The sampler of this rank's share; none in one process.
  std::optional<data::DistributedSampler> sampler(bool shuffle, uint64_t seed, bool pad) const {
    if (group == nullptr) return std::nullopt;
    return data::DistributedSampler{
        .num_replicas = size, .rank = rank, .shuffle = shuffle, .seed = seed, .pad = pad};
  }

  // Host numbers summed over the ranks (one all-reduce in float64 on `device`).
  std::vector<double> sum(std::vector<double> values, Device device) const {
    if (group == nullptr) return values;
    NoGradGuard no_grad;
    Tensor packed = from_vector(values).to(device);
    group->all_reduce(packed, distributed::ReduceOp::Sum).wait();
    return packed.to_vector<double>();
  }

  // Every metric's running sums, summed over the ranks.
  void all_reduce(std::vector<std::unique_ptr<Metric>>& metrics, Device device) const {
    if (group == nullptr) return;
    for (auto& metric : metrics) metric->all_reduce(*group, device);
  }

  // Printing is rank 0's.
  Verbosity verbosity(Verbosity requested, std::ostream* output) const {
    return is_main() ? detail::resolve_verbosity(requested, output) : Verbosity::Silent;
  }
};

// The ranks of `group` (one process when null). fit() needs the model to be the
// DistributedDataParallel that averages the gradients over that group.
Ranks ranks_of(const char* caller, nn::Module& model,
               const std::shared_ptr<distributed::ProcessGroup>& group, bool needs_ddp) {
  if (group == nullptr) return {};
  if (needs_ddp) {
    auto* ddp = dynamic_cast<nn::DistributedDataParallel*>(&model);
    STRATA_CHECK(ddp != nullptr, caller, ": with a process_group (", group->backend_name(), ", ",
                 group->size(),
                 " ranks) the model must be an nn::DistributedDataParallel "
                 "over that group, so that the ranks' gradients are averaged; wrap it: "
                 "auto ddp = std::make_shared<nn::DistributedDataParallel>(model, group)");
    STRATA_CHECK(&ddp->process_group() == group.get(), caller,
                 ": the model's DistributedDataParallel runs over another process group than "
                 "FitOptions::process_group");
  }
  return {.group = group.get(), .rank = group->rank(), .size = group->size()};
}

// The sum of batch_loss * batch_size, in float64 on the loss's device.
void accumulate_loss(Tensor& sum, const Tensor& batch_loss, int64_t batch_size) {
  const Tensor weighted = mul(batch_loss.to(kFloat64), static_cast<double>(batch_size));
  sum = sum.defined() ? add(sum, weighted) : weighted;
}

Tensor check_scalar_loss(const char* caller, const Tensor& loss_value, const Tensor& output) {
  STRATA_CHECK(loss_value.defined(), caller, ": the loss function returned an undefined tensor");
  STRATA_CHECK(loss_value.numel() == 1, caller, ": the loss function returned shape ",
               shape_str(loss_value.shape()), " for output ", shape_str(output.shape()),
               "; it must return a scalar (use a mean or sum reduction)");
  return loss_value;
}

// Stops training on a NaN or infinite loss before it reaches the weights.
void check_finite_loss(const Tensor& loss_value, const TrainContext& context) {
  const double value = loss_value.item<double>();
  if (std::isfinite(value)) return;
  throw Error(strata::detail::concat(
      "fit: the training loss is ", std::isnan(value) ? "nan" : value > 0 ? "inf" : "-inf",
      " at epoch ", context.epoch + 1, " of ",
      context.epochs, ", batch ", context.step + 1, " of ", context.steps, " (global step ",
      context.global_step + 1, "); training stopped before this batch's update, so the model "
      "holds the last finite step's weights. Common causes: a learning rate too high, NaN or "
      "inf in the data, log or division of zero in a custom loss. FitOptions::detect_anomaly "
      "names the op that made it"));
}

// Mean loss and metrics over `loader`, in eval mode without a tape; the caller restores the
// model's mode. `steps` counts the batches seen. With several ranks, each evaluates its share
// and the sums are taken over the ranks.
Logs run_evaluation(const char* caller, nn::Module& model, const LossFn& loss,
                    data::DataLoader& loader, Metrics& metrics, const Ranks& ranks, Device device,
                    int64_t* steps = nullptr) {
  NoGradGuard no_grad;
  model.eval();
  for (auto& metric : metrics) metric->reset();
  Tensor loss_sum;
  int64_t samples = 0, batches = 0;
  for (const data::Batch& batch : loader) {
    const Tensor output = model(batch.input);
    const int64_t batch_size = batch.input.size(0);
    if (loss) {
      accumulate_loss(loss_sum, check_scalar_loss(caller, loss(output, batch.target), output),
                      batch_size);
    }
    for (auto& metric : metrics) metric->update(output, batch.target);
    samples += batch_size;
    ++batches;
  }
  const std::vector<double> totals = ranks.sum(
      {loss_sum.defined() ? loss_sum.item<double>() : 0.0, static_cast<double>(samples)}, device);
  ranks.all_reduce(metrics, device);
  STRATA_CHECK(totals[1] > 0, caller, ": the evaluation data gives no batch");
  Logs logs;
  if (loss) logs["loss"] = totals[0] / totals[1];
  for (const auto& metric : metrics) logs[metric->name()] = metric->value();
  if (steps != nullptr) *steps = batches;
  return logs;
}

// Restores a module's training flag when leaving a scope (evaluate/predict leave the mode as
// they found it).
// The autocast of a mixed-precision run on `device`, for its scope (none for Float32).
class AutocastScope {
 public:
  AutocastScope(MixedPrecision precision, Device device) {
    if (precision == MixedPrecision::BFloat16) guard_.emplace(device.type, DType::BFloat16);
    if (precision == MixedPrecision::Float16) guard_.emplace(device.type, DType::Float16);
  }

 private:
  std::optional<amp::AutocastGuard> guard_;
};

class ModeRestorer {
 public:
  explicit ModeRestorer(nn::Module& model) : model_(model), training_(model.is_training()) {}
  ~ModeRestorer() { model_.train(training_); }
  ModeRestorer(const ModeRestorer&) = delete;
  ModeRestorer& operator=(const ModeRestorer&) = delete;

 private:
  nn::Module& model_;
  bool training_;
};

void check_fit_options(const FitOptions& options, const std::shared_ptr<data::Dataset>& train) {
  STRATA_CHECK(train != nullptr, "fit: the training dataset is null");
  STRATA_CHECK(train->size() > 0, "fit: the training dataset is empty");
  STRATA_CHECK(options.epochs >= 1, "fit: epochs must be at least 1 (got ", options.epochs, ")");
  STRATA_CHECK(options.batch_size >= 1, "fit: batch_size must be at least 1 (got ",
               options.batch_size, ")");
  STRATA_CHECK(options.validation_batch_size >= 0,
               "fit: validation_batch_size must be at least 0 (got ",
               options.validation_batch_size, "; 0 means batch_size)");
  STRATA_CHECK(options.workers >= 0, "fit: workers must be at least 0 (got ", options.workers,
               ")");
  STRATA_CHECK(options.validation_fraction >= 0.0 && options.validation_fraction < 1.0,
               "fit: validation_fraction must be in [0, 1) (got ", options.validation_fraction,
               ")");
  STRATA_CHECK(options.validation == nullptr || options.validation_fraction == 0.0,
               "fit: give validation data or a validation_fraction, not both (validation has ",
               options.validation ? options.validation->size() : 0,
               " examples, validation_fraction ", options.validation_fraction, ")");
  STRATA_CHECK(options.initial_epoch >= 0 && options.initial_epoch < options.epochs,
               "fit: initial_epoch must be in [0, epochs) (got initial_epoch ",
               options.initial_epoch, ", epochs ", options.epochs, ")");
  for (const auto& callback : options.callbacks) {
    STRATA_CHECK(callback != nullptr, "fit: a callback is null");
  }
}

void check_batch_size(const char* caller, int64_t batch_size, int64_t workers) {
  STRATA_CHECK(batch_size >= 1, caller, ": batch_size must be at least 1 (got ", batch_size, ")");
  STRATA_CHECK(workers >= 0, caller, ": workers must be at least 0 (got ", workers, ")");
}

}  // namespace

// ---- fit ----------------------------------------------------------------------------------

History fit(nn::Module& model, LossFn loss, optim::Optimizer& optimizer,
            std::shared_ptr<data::Dataset> train, const FitOptions& options) {
  check_fit_options(options, train);
  STRATA_CHECK(static_cast<bool>(loss), "fit: the loss function is empty");
  const Device device = resolve_device("fit", model, options.device);
  const Ranks ranks = ranks_of("fit", model, options.process_group, /*needs_ddp=*/true);
  std::optional<DetectAnomalyGuard> anomaly;
  if (options.detect_anomaly) anomaly.emplace();

  // The validation data: given, or split off the training set (the same split for the same
  // seed, so a resumed run validates on the same examples).
  std::shared_ptr<data::Dataset> train_set = train;
  std::shared_ptr<data::Dataset> validation_set = options.validation;
  if (options.validation_fraction > 0.0) {
    auto [train_part, validation_part] =
        data::train_validation_split(train, options.validation_fraction, options.seed);
    STRATA_CHECK(train_part->size() > 0 && validation_part->size() > 0,
                 "fit: validation_fraction ", options.validation_fraction, " of ",
                 train->size(), " examples leaves ", train_part->size(), " for training and ",
                 validation_part->size(), " for validation; both need at least one");
    train_set = std::move(train_part);
    validation_set = std::move(validation_part);
  }
  if (validation_set != nullptr) {
    STRATA_CHECK(validation_set->size() > 0, "fit: the validation dataset is empty");
  }

  Metrics train_metrics = make_metrics("fit", options.metrics, options.num_classes);
  Metrics validation_metrics = clone_metrics(train_metrics);

  // With several ranks, each loads its share in the sampler's order (which does the shuffling).
  data::DataLoader train_loader(
      train_set, {.batch_size = options.batch_size,
                  .shuffle = options.shuffle && ranks.group == nullptr,
                  .seed = options.seed,
                  .drop_last = options.drop_last,
                  .workers = options.workers,
                  .pin_memory = device.is_cuda(),
                  .device = device,
                  .transform = options.transform,
                  .sampler = ranks.sampler(options.shuffle, options.seed, /*pad=*/true)});
  STRATA_CHECK(train_loader.size() > 0, "fit: the training data gives no batch (",
               train_set->size(), " examples, batch_size ", options.batch_size,
               ", drop_last on)");
  std::unique_ptr<data::DataLoader> validation_loader;
  if (validation_set != nullptr) {
    const int64_t batch_size = options.validation_batch_size > 0 ? options.validation_batch_size
                                                                 : options.batch_size;
    validation_loader = std::make_unique<data::DataLoader>(
        validation_set, data::DataLoaderOptions{.batch_size = batch_size,
                                                .shuffle = false,
                                                .workers = options.workers,
                                                .pin_memory = device.is_cuda(),
                                                .device = device,
                                                .sampler = ranks.sampler(false, 0, /*pad=*/false)});
  }

  std::shared_ptr<amp::GradScaler> scaler;
  if (options.precision == MixedPrecision::Float16) {
    scaler = options.grad_scaler != nullptr ? options.grad_scaler
                                            : std::make_shared<amp::GradScaler>();
  }

  History history;
  TrainContext context(model, optimizer, options, history, validation_set, device);
  context.grad_scaler = scaler.get();
  context.process_group = ranks.group;
  context.rank = ranks.rank;
  context.world_size = ranks.size;
  context.epochs = options.epochs;
  context.steps = static_cast<int64_t>(train_loader.size());

  detail::Progress progress(output_of(options.output),
                            ranks.verbosity(options.verbose, options.output));

  for (const auto& callback : options.callbacks) callback->on_train_begin(context);

  for (int64_t epoch = options.initial_epoch; epoch < options.epochs; ++epoch) {
    const double epoch_start = now_seconds();
    context.epoch = epoch;
    context.step = 0;
    context.logs.clear();
    model.train(true);
    for (auto& metric : train_metrics) metric->reset();
    for (const auto& callback : options.callbacks) callback->on_epoch_begin(context);
    progress.epoch_begin(epoch, options.epochs, context.steps);

    // The shuffle order is a function of (seed, epoch): set it rather than rely on the
    // loader's own count, so a resumed run continues the same sequence.
    train_loader.set_epoch(epoch);
    Tensor loss_sum;
    int64_t samples = 0;
    int64_t step = 0;
    for (const data::Batch& batch : train_loader) {
      const int64_t batch_size = batch.input.size(0);
      context.step = step;
      context.batch_samples = batch_size;
      for (const auto& callback : options.callbacks) callback->on_batch_begin(context);

      // The forward pass and the loss, under autocast for a mixed-precision run.
      Tensor output;
      const auto forward = [&]() {
        const AutocastScope autocast(options.precision, device);
        output = model(batch.input);
        Tensor value = check_scalar_loss("fit", loss(output, batch.target), output);
        if (options.stop_on_nonfinite_loss) check_finite_loss(value, context);
        return value;
      };
      Tensor batch_loss;
      if (scaler != nullptr) {  // f16: scaled backward, an update only with finite gradients
        optimizer.zero_grad();
        batch_loss = forward();
        scaler->scale(batch_loss).backward();
        scaler->step(optimizer);
        scaler->update();
      } else {
        // A closure, so that optimizers that re-evaluate the loss (L-BFGS) work too; the
        // others call it once.
        batch_loss = optimizer.step([&]() {
          optimizer.zero_grad();
          Tensor value = forward();
          value.backward();
          return value;
        });
      }
      {
        NoGradGuard no_grad;
        context.batch_loss = batch_loss.detach();
        accumulate_loss(loss_sum, context.batch_loss, batch_size);
        const Tensor detached_output = output.detach();
        for (auto& metric : train_metrics) metric->update(detached_output, batch.target);
      }
      samples += batch_size;
      ++context.global_step;
      for (const auto& callback : options.callbacks) callback->on_batch_end(context);
      // The rate shown is the job's: every rank trains on as many examples per step.
      progress.batch_end(step, samples * ranks.size, [&]() {
        Logs running{{"loss", loss_sum.item<double>() / static_cast<double>(samples)}};
        for (const auto& metric : train_metrics) running[metric->name()] = metric->value();
        return running;
      });
      ++step;
    }
    // The first group's lr at the end of the epoch's batches: the one they all used under a
    // per-epoch schedule (which steps after the logs), the last one reached under a per-batch
    // schedule.
    const double epoch_lr = optimizer.param_groups().front().lr();

    Logs logs;
    const std::vector<double> totals =
        ranks.sum({loss_sum.item<double>(), static_cast<double>(samples)}, device);
    ranks.all_reduce(train_metrics, device);
    logs["loss"] = totals[0] / totals[1];
    for (const auto& metric : train_metrics) logs[metric->name()] = metric->value();
    if (validation_loader != nullptr) {
      const AutocastScope autocast(options.precision, device);
      const Logs validation_logs = run_evaluation(
          "fit (validation)", model, loss, *validation_loader, validation_metrics, ranks, device);
      for (const auto& [name, value] : validation_logs) logs["val_" + name] = value;
      model.train(true);
    }
    logs["lr"] = epoch_lr;
    logs["seconds"] = now_seconds() - epoch_start;

    history.append(epoch, logs);
    context.logs = logs;
    progress.epoch_end(logs);
    for (const auto& callback : options.callbacks) callback->on_epoch_end(context);
    // A stop on any rank stops them all (they must run the same batches).
    if (ranks.group != nullptr) {
      context.stop_training = ranks.sum({context.stop_training ? 1.0 : 0.0}, device)[0] > 0.0;
    }
    if (context.stop_training) break;
  }

  for (const auto& callback : options.callbacks) callback->on_train_end(context);
  model.train(true);
  return history;
}

// ---- precision --------------------------------------------------------------------------------

const char* precision_name(MixedPrecision precision) {
  switch (precision) {
    case MixedPrecision::Float32: return "f32";
    case MixedPrecision::BFloat16: return "bf16";
    case MixedPrecision::Float16: return "f16";
  }
  return "?";
}

MixedPrecision parse_precision(const std::string& text) {
  if (text == "f32" || text == "fp32" || text == "float32") return MixedPrecision::Float32;
  if (text == "bf16" || text == "bfloat16") return MixedPrecision::BFloat16;
  if (text == "f16" || text == "fp16" || text == "float16") return MixedPrecision::Float16;
  STRATA_CHECK(false, "precision: \"", text, "\" is none of f32, bf16, f16 (or fp32, float32, "
               "bfloat16, fp16, float16)");
}

// ---- evaluate and predict -----------------------------------------------------------------

Logs evaluate(nn::Module& model, const LossFn& loss, std::shared_ptr<data::Dataset> dataset,
              const EvaluateOptions& options) {
  STRATA_CHECK(dataset != nullptr, "evaluate: the dataset is null");
  STRATA_CHECK(dataset->size() > 0, "evaluate: the dataset is empty");
  check_batch_size("evaluate", options.batch_size, options.workers);
  Metrics metrics = make_metrics("evaluate", options.metrics, options.num_classes);
  const Device device = resolve_device("evaluate", model, options.device);
  const Ranks ranks = ranks_of("evaluate", model, options.process_group, /*needs_ddp=*/false);
  data::DataLoader loader(dataset, {.batch_size = options.batch_size,
                                    .shuffle = false,
                                    .workers = options.workers,
                                    .pin_memory = device.is_cuda(),
                                    .device = device,
                                    .sampler = ranks.sampler(false, 0, /*pad=*/false)});
  const double start = now_seconds();
  int64_t steps = 0;
  Logs logs;
  {
    ModeRestorer restore_mode(model);
    const AutocastScope autocast(options.precision, device);
    logs = run_evaluation("evaluate", model, loss, loader, metrics, ranks, device, &steps);
  }
  const Verbosity verbose = ranks.verbosity(options.verbose, options.output);
  if (verbose != Verbosity::Silent) {
    std::ostringstream line;
    char time_text[32];
    std::snprintf(time_text, sizeof time_text, "%.1fs", now_seconds() - start);
    line << "evaluate - " << steps << " steps - " << time_text;
    for (const std::string& name : detail::display_order(logs)) {
      line << " - " << name << " " << detail::format_value(name, logs.at(name));
    }
    detail::Progress(output_of(options.output), verbose).message(line.str());
  }
  return logs;
}

Tensor predict(nn::Module& model, std::shared_ptr<data::Dataset> dataset,
               const PredictOptions& options) {
  STRATA_CHECK(dataset != nullptr, "predict: the dataset is null");
  STRATA_CHECK(dataset->size() > 0, "predict: the dataset is empty");
  check_batch_size("predict", options.batch_size, options.workers);
  const Device device = resolve_device("predict", model, options.device);
  data::DataLoader loader(dataset, {.batch_size = options.batch_size,
                                    .shuffle = false,
                                    .workers = options.workers,
                                    .pin_memory = device.is_cuda(),
                                    .device = device});
  ModeRestorer restore_mode(model);
  NoGradGuard no_grad;
  model.eval();
  std::vector<Tensor> outputs;
  for (const data::Batch& batch : loader) outputs.push_back(model(batch.input));
  return outputs.size() == 1 ? outputs.front() : cat(outputs, 0);
}

Tensor predict(nn::Module& model, const Tensor& inputs, const PredictOptions& options) {
  STRATA_CHECK(inputs.defined(), "predict: the inputs are undefined");
  STRATA_CHECK(inputs.dim() >= 1 && inputs.size(0) > 0, "predict: the inputs ",
               shape_str(inputs.shape()), " hold no example (dim 0 counts the examples)");
  check_batch_size("predict", options.batch_size, options.workers);
  const Device device = resolve_device("predict", model, options.device);
  ModeRestorer restore_mode(model);
  NoGradGuard no_grad;
  model.eval();
  std::vector<Tensor> outputs;
  const int64_t count = inputs.size(0);
  for (int64_t start = 0; start < count; start += options.batch_size) {
    const int64_t length = std::min(options.batch_size, count - start);
    outputs.push_back(model(inputs.narrow(0, start, length).to(device)));
  }
  return outputs.size() == 1 ? outputs.front() : cat(outputs, 0);
}

}  // namespace strata::train
