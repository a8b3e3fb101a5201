// Keras-style training: fit(), evaluate() and predict() over a data::Dataset, with metrics,
// validation, callbacks, a progress display and a per-epoch History.
//
//   train::History history = train::fit(model, nn::CrossEntropyLoss{}, optimizer, train_set,
//       {.epochs = 10, .batch_size = 64, .validation_fraction = 0.1,
//        .metrics = {"accuracy"},
//        .callbacks = {std::make_shared<train::EarlyStopping>()}});
//   std::vector<double> curve = history.series("val_loss");
//
// Rules kept:
//   - training batches run with the model in train() mode; validation, evaluate() and predict()
//     run in eval() mode under NoGradGuard (no tape), and fit() leaves the model in train();
//   - the epoch's shuffle order is a function of (seed, epoch number), so a run resumed with
//     initial_epoch = k from a checkpoint written after epoch k sees the same batches, and on
//     the CPU the same losses, as an uninterrupted run;
//   - the loss and the metrics accumulate on the training device; numbers are read to the host
//     at the end of an epoch (and when the progress bar redraws), not after every batch.
//
// Data-parallel training (FitOptions::process_group): every rank of the group calls fit()
// with the same arguments and an nn::DistributedDataParallel over the group as the model.
//   - each rank trains on its share of the training set (data::DistributedSampler with the
//     fit's seed, padded so every rank runs the same number of batches); batch_size is the
//     per-rank batch, so a step trains on batch_size * size() examples, as PyTorch's DDP;
//   - the validation set is split between the ranks without repeats, and the epoch's loss and
//     metrics (training and validation) are summed over the ranks before they are logged, so
//     every rank's History and callbacks see the same numbers (Metric::all_reduce);
//   - only rank 0 prints, and the callbacks that write files (ModelCheckpoint, CsvLogger,
//     JsonLinesLogger, HtmlReport) write on rank 0 only (TrainContext::is_main_process);
//   - a callback's stop_training on any rank stops every rank after that epoch;
//   - resuming: every rank restores the checkpoint rank 0 wrote (resume_from_latest) and
//     passes the same initial_epoch.
#pragma once

#include <concepts>
#include <cstdint>
#include <functional>
#include <iosfwd>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "strata/amp/grad_scaler.h"
#include "strata/data/dataset.h"
#include "strata/device.h"
#include "strata/generator.h"
#include "strata/nn/module.h"
#include "strata/optim/optimizer.h"
#include "strata/tensor.h"
#include "strata/train/metrics.h"

namespace strata::distributed {
class ProcessGroup;
}

namespace strata::train {

// A loss function: (model output, target) -> scalar tensor. Every loss object of nn/loss.h
// (nn::CrossEntropyLoss{}, nn::MSELoss{}) and every lambda of that shape converts to it.
using LossFn = std::function<Tensor(const Tensor& output, const Tensor& target)>;

// Numbers by name for one epoch (or one evaluation): "loss" (the mean of the batch losses
// weighted by batch size), the metrics ("accuracy", ...), their validation twins ("val_loss",
// "val_accuracy", ...), "lr" (the first parameter group's after the epoch's last batch: the
// epoch's lr under a per-epoch schedule, where it has reached under a per-batch one) and
// "seconds" (the epoch's wall time, validation included).
using Logs = std::map<std::string, double>;

// What fit() returns: one Logs per epoch run, in order.
class History {
 public:
  // Records the logs of epoch `epoch` (0-based, as counted across resumed runs).
  void append(int64_t epoch, Logs logs);

  // How many epochs were recorded.
  size_t size() const { return logs_.size(); }
  bool empty() const { return logs_.empty(); }
  // The epoch numbers recorded (initial_epoch, initial_epoch + 1, ...).
  const std::vector<int64_t>& epochs() const { return epochs_; }
  // Every epoch's logs, in order.
  const std::vector<Logs>& logs() const { return logs_; }
  const Logs& at(size_t index) const;
  const Logs& back() const;
  // Whether any epoch recorded `name`.
  bool contains(const std::string& name) const;
  // The names recorded by any epoch, sorted.
  std::vector<std::string> names() const;
  // The value of `name` for every epoch (NaN in an epoch that lacks it); throws strata::Error
  // listing the recorded names when no epoch has it.
  std::vector<double> series(const std::string& name) const;

 private:
  std::vector<int64_t> epochs_;
  std::vector<Logs> logs_;
};

// A metric for fit()/evaluate(): a name that make_metric() knows ("accuracy", "top5", "mse",
// "mae", ...), a factory, or a prototype that is cloned (train::Accuracy(0.0) for logits of a
// binary classifier, say).
class MetricSpec {
 public:
  using Factory = std::function<std::unique_ptr<Metric>()>;
  MetricSpec(const char* name) : name_(name) {}             // NOLINT(google-explicit-constructor)
  MetricSpec(std::string name) : name_(std::move(name)) {}  // NOLINT(google-explicit-constructor)
  // Templates, so that a lambda or a shared_ptr<Accuracy> converts in one step (a braced list
  // of MetricSpec allows one user-defined conversion per element).
  template <class F>
    requires std::is_invocable_r_v<std::unique_ptr<Metric>, F&>
  MetricSpec(F factory) : factory_(std::move(factory)) {}  // NOLINT(google-explicit-constructor)
  template <class M>
    requires std::derived_from<M, Metric>
  MetricSpec(std::shared_ptr<M> prototype)  // NOLINT(google-explicit-constructor)
      : prototype_(std::move(prototype)) {}

  // A fresh metric; num_classes is passed to make_metric() for names that need it.
  std::unique_ptr<Metric> make(int64_t num_classes) const;

 private:
  std::string name_;
  Factory factory_;
  std::shared_ptr<const Metric> prototype_;
};

// What is printed while fitting or evaluating.
enum class Verbosity {
  Auto,    // a progress bar when the output is std::cout and stdout is a terminal, else Lines
  Silent,  // nothing
  Lines,   // one plain line per epoch (what a log file wants)
  Bar,     // the progress bar, redrawn in place with '\r', whatever the output is
};

struct FitOptions;
struct TrainContext;

// The arithmetic of a training run (FitOptions::precision, EvaluateOptions::precision):
// - Float32: every op in float32 (or the model's own dtype).
// - BFloat16: the forward pass and the loss under amp::AutocastGuard with bf16; no scaling
//   (bf16 has float32's range).
// - Float16: autocast with f16 and an amp::GradScaler: the loss is scaled before backward,
//   gradients are unscaled before the update, and a step whose gradients hold an inf or NaN
//   is skipped (the scale then backs off).
// Parameters and optimizer state stay float32 in all three.
enum class MixedPrecision { Float32, BFloat16, Float16 };

// "f32", "bf16", "f16".
const char* precision_name(MixedPrecision precision);
// The inverse, for command lines: "f32"/"fp32"/"float32", "bf16"/"bfloat16", "f16"/"fp16"/
// "float16"; throws strata::Error listing them otherwise.
MixedPrecision parse_precision(const std::string& text);

// A hook into fit(). Each method receives the running TrainContext; the default does nothing.
// Callbacks run in the order given in FitOptions::callbacks.
class Callback {
 public:
  virtual ~Callback() = default;
  virtual void on_train_begin(TrainContext& context) { (void)context; }
  virtual void on_epoch_begin(TrainContext& context) { (void)context; }
  virtual void on_batch_begin(TrainContext& context) { (void)context; }
  virtual void on_batch_end(TrainContext& context) { (void)context; }
  // The epoch's logs are complete (training and validation numbers, "lr", "seconds") and
  // already appended to the history.
  virtual void on_epoch_end(TrainContext& context) { (void)context; }
  virtual void on_train_end(TrainContext& context) { (void)context; }
};

struct FitOptions {
  int64_t epochs = 1;        // the last epoch number + 1: with initial_epoch = k, epochs - k run
  int64_t batch_size = 32;   // Keras's default
  bool shuffle = true;
  uint64_t seed = 0;         // shuffle order and the validation split
  bool drop_last = false;
  int64_t workers = 0;       // DataLoader background threads (0: load on the calling thread)
  // Applied to every training batch (not to validation ones) before it goes to the device:
  // augmentation such as data::RandomCrop and data::RandomHorizontalFlip (see
  // DataLoaderOptions::transform; the draws depend on (seed, epoch, batch), not on threads).
  std::function<void(data::Batch& batch, Generator& generator)> transform = nullptr;
  // Validation data: a dataset, or a fraction of the training set split off with `seed`
  // (not both). Empty / 0: no validation.
  std::shared_ptr<data::Dataset> validation = nullptr;
  double validation_fraction = 0.0;
  int64_t validation_batch_size = 0;  // 0: batch_size
  std::vector<MetricSpec> metrics = {};
  int64_t num_classes = 0;  // for metrics by name that need it ("precision", "recall", "f1")
  std::vector<std::shared_ptr<Callback>> callbacks = {};
  Verbosity verbose = Verbosity::Auto;
  std::ostream* output = nullptr;  // where progress goes; null: std::cout
  // Where batches go; unset: the device of the model's first parameter (CPU when it has none).
  // The model is not moved: it must already be there (an error says so otherwise). On CUDA
  // batches go to the device through page-locked host memory, copied by the loader's threads
  // when `workers` > 0 (DataLoaderOptions::pin_memory).
  std::optional<Device> device = std::nullopt;
  int64_t initial_epoch = 0;  // the epoch to start at (resume)
  // A NaN or infinite training loss stops fit() with a strata::Error naming the epoch and batch,
  // before that batch's backward and update: the model keeps the last finite step's weights.
  // Reading the loss each batch synchronizes with a CUDA device; false skips the check.
  bool stop_on_nonfinite_loss = true;
  // Runs the whole fit() in anomaly mode (DetectAnomalyGuard): the op whose forward or backward
  // first makes a NaN/inf is named in the error. Slow; for finding where a NaN comes from.
  bool detect_anomaly = false;
  // Mixed precision (see MixedPrecision); validation runs under the same autocast. The optimizer
  // must step without a closure for Float16 (L-BFGS cannot take scaled gradients).
  MixedPrecision precision = MixedPrecision::Float32;
  // Float16's scaler; null: fit() makes one with PyTorch's defaults. Pass one to keep its state
  // across fit() calls and to resume it from a checkpoint (io::Checkpoint::grad_scaler, which
  // ModelCheckpoint fills).
  std::shared_ptr<amp::GradScaler> grad_scaler = nullptr;
  // Data-parallel training on the ranks of this group (see the top of this file); `model`
  // must then be an nn::DistributedDataParallel over the same group. Null: one process.
  std::shared_ptr<distributed::ProcessGroup> process_group = nullptr;
};

// The state of a running fit(), handed to every callback.
struct TrainContext {
  TrainContext(nn::Module& model_, optim::Optimizer& optimizer_, const FitOptions& options_,
               History& history_, std::shared_ptr<data::Dataset> validation_, Device device_)
      : model(model_), optimizer(optimizer_), options(options_), history(history_),
        validation(std::move(validation_)), device(device_) {}

  nn::Module& model;
  optim::Optimizer& optimizer;
  const FitOptions& options;
  amp::GradScaler* grad_scaler = nullptr;  // a Float16 run's scaler; null otherwise
  History& history;
  // The validation data in use (FitOptions::validation, or the split-off part); may be null.
  std::shared_ptr<data::Dataset> validation;
  Device device;
  // Data-parallel training's group (null in one process), this process's rank and the number
  // of ranks; callbacks that write files or print do so only on the main process (rank 0).
  distributed::ProcessGroup* process_group = nullptr;
  int rank = 0;
  int world_size = 1;
  bool is_main_process() const { return rank == 0; }
  int64_t epoch = 0;        // the current epoch, 0-based, counted from 0 across resumes
  int64_t epochs = 0;       // FitOptions::epochs
  int64_t step = 0;         // the batch within the epoch, 0-based
  int64_t steps = 0;        // batches per epoch
  int64_t global_step = 0;  // batches trained by this fit() call so far
  int64_t batch_samples = 0;  // examples in the current batch
  // The current batch's loss (a detached scalar on the device), set before on_batch_end.
  // Reading it (item()) synchronizes with the device; callbacks that need it per batch pay that.
  Tensor batch_loss;
  // In on_epoch_end, the epoch's logs; in on_train_end, the last epoch's.
  Logs logs;
  // Set by a callback to end training after the current epoch.
  bool stop_training = false;
};

// Trains `model` on `train`. Throws strata::Error for invalid options (epochs < 1,
// batch_size < 1, validation_fraction outside [0, 1), both validation and
// validation_fraction, initial_epoch outside [0, epochs), an unknown metric name).
History fit(nn::Module& model, LossFn loss, optim::Optimizer& optimizer,
            std::shared_ptr<data::Dataset> train, const FitOptions& options = {});

struct EvaluateOptions {
  int64_t batch_size = 32;
  int64_t workers = 0;
  std::vector<MetricSpec> metrics = {};
  int64_t num_classes = 0;
  Verbosity verbose = Verbosity::Silent;  // Lines / Bar / Auto print one summary line
  std::ostream* output = nullptr;
  std::optional<Device> device = std::nullopt;
  MixedPrecision precision = MixedPrecision::Float32;  // BFloat16 / Float16: under autocast
  // Every rank of the group evaluates its share of `dataset` (no example twice) and the
  // numbers are summed over the ranks: each rank returns the whole data set's logs, and only
  // rank 0 prints. Every rank must call evaluate() with the same arguments.
  std::shared_ptr<distributed::ProcessGroup> process_group = nullptr;
};

// The mean loss ("loss", weighted by batch size; absent when `loss` is empty) and every
// metric over `dataset`, in eval() mode without a tape. The model's mode is restored after.
Logs evaluate(nn::Module& model, const LossFn& loss, std::shared_ptr<data::Dataset> dataset,
              const EvaluateOptions& options = {});

struct PredictOptions {
  int64_t batch_size = 32;
  int64_t workers = 0;
  std::optional<Device> device = std::nullopt;
};

// The model's outputs for every example of `dataset` (targets ignored) or every row of
// `inputs` (split along dim 0), concatenated along dim 0 on the device they were computed on;
// eval() mode, no tape, the model's mode restored after.
Tensor predict(nn::Module& model, std::shared_ptr<data::Dataset> dataset,
               const PredictOptions& options = {});
Tensor predict(nn::Module& model, const Tensor& inputs, const PredictOptions& options = {});

}  // namespace strata::train
