// The callbacks fit() ships with, as Keras has them: early stopping, checkpoints, learning-rate
// scheduler stepping, CSV and JSON-lines logs, and the HTML report.
//
//   auto stopper = std::make_shared<train::EarlyStopping>(
//       train::EarlyStoppingOptions{.patience = 3, .restore_best_weights = true});
//   train::fit(model, loss, optimizer, data, {.epochs = 50, .validation_fraction = 0.1,
//              .callbacks = {stopper, std::make_shared<train::CsvLogger>("out/log.csv")}});
//
// A callback that watches a value ("val_loss", "accuracy", ...) throws strata::Error naming
// the value and the ones the epoch has when it is missing (validation data not given, say),
// rather than silently doing nothing.
#pragma once

#include <cstdint>
#include <fstream>
#include <string>
#include <utility>
#include <vector>

#include "strata/nn/module.h"
#include "strata/optim/scheduler.h"
#include "strata/train/fit.h"
#include "strata/train/report.h"

namespace strata::train {

// Whether a watched value should fall or rise. Auto: rise for accuracies and scores (names
// containing "acc", "top", "precision", "recall", "f1", "auc"), fall for everything else.
enum class MonitorMode { Auto, Min, Max };

// ---- EarlyStopping ------------------------------------------------------------------------
struct EarlyStoppingOptions {
  std::string monitor = "val_loss";
  MonitorMode mode = MonitorMode::Auto;
  double min_delta = 0.0;  // a change smaller than this is not an improvement
  int64_t patience = 0;    // epochs without improvement tolerated before stopping
  // After training, load the weights of the best epoch back into the model (whether or not
  // training stopped early; Keras restores only when it stops early).
  bool restore_best_weights = false;
};

// Stops training when the monitored value has not improved for `patience` epochs.
class EarlyStopping : public Callback {
 public:
  explicit EarlyStopping(EarlyStoppingOptions options = {});
  void on_train_begin(TrainContext& context) override;
  void on_epoch_end(TrainContext& context) override;
  void on_train_end(TrainContext& context) override;

  // The epoch after which training was stopped (-1: it ran to the end).
  int64_t stopped_epoch() const { return stopped_epoch_; }
  // The best value seen and its epoch (-1 before any).
  double best() const { return best_; }
  int64_t best_epoch() const { return best_epoch_; }

 private:
  EarlyStoppingOptions options_;
  bool maximize_ = false;
  double best_ = 0.0;
  int64_t best_epoch_ = -1;
  int64_t wait_ = 0;
  int64_t stopped_epoch_ = -1;
  nn::StateDict best_weights_;  // copies, not views of the live parameters
};

// ---- ModelCheckpoint ----------------------------------------------------------------------
struct ModelCheckpointOptions {
  int64_t every_n_epochs = 1;  // write epoch-NNNN.safetensors every N epochs (0: never)
  bool save_best = false;      // write best.safetensors when the monitored value improves
  std::string monitor = "val_loss";
  MonitorMode mode = MonitorMode::Auto;
};

// Writes full checkpoints (model, optimizer, scheduler when given, epoch, RNG state) with
// io::save_checkpoint, atomically, into `directory` (created when missing):
//   epoch-0003.safetensors  after the 3rd epoch, every N epochs. The checkpoint's epoch is the
//                           number of epochs completed (3 here), which is the
//                           FitOptions::initial_epoch that resumes after it; its step is
//                           epochs completed * batches per epoch;
//   best.safetensors        the epoch with the best monitored value so far.
// A write cut short by a crash leaves only a temporary file beside them, which the next run's
// ModelCheckpoint removes when training begins.
// In data-parallel training only rank 0 writes (every rank holds the same state); so do
// CsvLogger, JsonLinesLogger and HtmlReport. The checkpoint of an nn::DistributedDataParallel
// holds its wrapped module's state (keys without "module."), so it loads into the plain model
// too; resume_from_latest restores a DistributedDataParallel's wrapped module.
// Metadata "fit.epochs_done" and "fit.logs.<name>" (the epoch's logs) go with each file.
// Resuming (what a --resume flag does):
//   train::Resumed resumed = train::resume_from_latest(dir, model, optimizer, &scheduler);
//   train::fit(model, loss, optimizer, data, {..., .initial_epoch = resumed.epoch});
// NOTE: an LRSchedulerStep must come before this callback in FitOptions::callbacks (fit()
// throws otherwise): the checkpoint must hold the scheduler already stepped for the next epoch.
class ModelCheckpoint : public Callback {
 public:
  explicit ModelCheckpoint(std::string directory, ModelCheckpointOptions options = {});
  // The scheduler (not owned; it must outlive training) is saved with every checkpoint.
  ModelCheckpoint(std::string directory, optim::LRScheduler& scheduler,
                  ModelCheckpointOptions options = {});
  ModelCheckpoint(std::string directory, optim::ReduceLROnPlateau& scheduler,
                  ModelCheckpointOptions options = {});

  void on_train_begin(TrainContext& context) override;
  void on_epoch_end(TrainContext& context) override;

  // The path of the checkpoint written after `epochs_done` epochs.
  std::string epoch_path(int64_t epochs_done) const;
  std::string best_path() const;
  // Paths written by this callback, in order.
  const std::vector<std::string>& written() const { return written_; }

 private:
  void save(TrainContext& context, const std::string& path) const;
  void remove_stale_temporaries() const;

  std::string directory_;
  optim::LRScheduler* scheduler_ = nullptr;
  optim::ReduceLROnPlateau* plateau_ = nullptr;
  ModelCheckpointOptions options_;
  bool writes_ = true;  // false on the ranks other than 0 of data-parallel training
  bool maximize_ = false;
  double best_ = 0.0;
  bool has_best_ = false;
  std::vector<std::string> written_;
};

// The epoch-NNNN.safetensors with the highest epoch in `directory`, or "" when there is none
// (for --resume).
std::string latest_checkpoint(const std::string& directory);

// What a --resume did: the checkpoint restored ("" when `directory` held none) and the epoch to
// go on from (FitOptions::initial_epoch; 0 when starting afresh).
struct Resumed {
  std::string path;
  int64_t epoch = 0;
};

// The --resume of a training program: restores the newest epoch checkpoint of `directory`
// (latest_checkpoint) into objects built as the saved ones were: the model, the optimizer, the
// scheduler when given, the default generator, and a float16 run's GradScaler when given (and
// the checkpoint holds its state). Leaves everything as it is when there is no checkpoint.
// Tensors are loaded onto `device` (the model's).
Resumed resume_from_latest(const std::string& directory, nn::Module& model,
                           optim::Optimizer& optimizer, optim::LRScheduler* scheduler = nullptr,
                           Device device = Device(DeviceType::CPU),
                           amp::GradScaler* grad_scaler = nullptr);

// ---- LRSchedulerStep ----------------------------------------------------------------------
enum class StepInterval { Epoch, Batch };

struct LRSchedulerStepOptions {
  StepInterval interval = StepInterval::Epoch;
  // The value ReduceLROnPlateau is fed at each epoch's end.
  std::string monitor = "val_loss";
};

// Steps a learning-rate scheduler (not owned; it must outlive training) after every epoch
// (the default) or every batch; a ReduceLROnPlateau is stepped once per epoch with the
// monitored value. The "lr" in an epoch's logs is the lr its batches used (per batch: the
// lr after its last batch).
class LRSchedulerStep : public Callback {
 public:
  explicit LRSchedulerStep(optim::LRScheduler& scheduler, LRSchedulerStepOptions options = {});
  explicit LRSchedulerStep(optim::ReduceLROnPlateau& scheduler,
                           LRSchedulerStepOptions options = {});

  void on_batch_end(TrainContext& context) override;
  void on_epoch_end(TrainContext& context) override;

 private:
  optim::LRScheduler* scheduler_ = nullptr;
  optim::ReduceLROnPlateau* plateau_ = nullptr;
  LRSchedulerStepOptions options_;
};

// ---- logs ---------------------------------------------------------------------------------
// One row per epoch: "epoch" (1-based, as printed) and then the epoch's logs by name, the
// columns fixed by the first epoch written (a later missing value is left empty). Flushed
// every epoch. With append, an existing file keeps its rows and header (for resumed runs).
class CsvLogger : public Callback {
 public:
  explicit CsvLogger(std::string path, bool append = false, char separator = ',');
  void on_train_begin(TrainContext& context) override;
  void on_epoch_end(TrainContext& context) override;
  void on_train_end(TrainContext& context) override;

 private:
  std::string path_;
  bool append_;
  char separator_;
  bool writes_ = true;
  std::ofstream file_;
  std::vector<std::string> columns_;
};

// The epochs of a file CsvLogger wrote (comma-separated), as a History: epoch numbers back to
// 0-based, empty cells as NaN. When an epoch appears more than once (a run killed after logging
// an epoch but before its checkpoint, then resumed), the last row wins. Throws strata::Error
// naming the file when it cannot be read or has no "epoch" column.
History load_csv_log(const std::string& path);

// One JSON object per line per epoch: {"epoch": 1, "loss": 0.25, ...} (NaN and infinities as
// null). Flushed every epoch; append as for CsvLogger.
class JsonLinesLogger : public Callback {
 public:
  explicit JsonLinesLogger(std::string path, bool append = false);
  void on_train_begin(TrainContext& context) override;
  void on_epoch_end(TrainContext& context) override;
  void on_train_end(TrainContext& context) override;

 private:
  std::string path_;
  bool append_;
  bool writes_ = true;
  std::ofstream file_;
};

// ---- HtmlReport ---------------------------------------------------------------------------
struct HtmlReportOptions {
  std::string title = "Training report";
  // Shown as a table: hyperparameters, data, model.
  std::vector<std::pair<std::string, std::string>> config = {};
  // With class names (one per class), the report carries the confusion matrix of the model's
  // predictions on the validation data at the end of training.
  std::vector<std::string> class_names = {};
  bool confusion_matrix = true;
  int64_t batch_size = 256;  // for the confusion matrix's predictions
  // Epochs trained before this fit() call (a resumed run's, from load_csv_log): those before
  // the first epoch of this call are drawn with it, so the curves cover the whole run.
  History earlier = {};
};

// Writes a self-contained HTML report (train::write_html_report) at the end of training: loss
// and metric curves per epoch from the history, the configuration, the confusion matrix on
// the validation data, the final validation numbers and the timing. add_final_metric() and
// write() let a program add test-set numbers after fit() and write the report again.
class HtmlReport : public Callback {
 public:
  explicit HtmlReport(std::string path, HtmlReportOptions options = {});
  void on_train_begin(TrainContext& context) override;
  void on_train_end(TrainContext& context) override;

  // A final number shown with the validation ones (test accuracy, say); call write() after.
  void add_final_metric(const std::string& name, double value);
  // Writes the report from what the last fit() gathered and the final metrics added since.
  void write() const;
  // What write() writes.
  const ReportData& data() const { return data_; }

 private:
  std::string path_;
  HtmlReportOptions options_;
  bool writes_ = true;
  ReportData data_;
  double start_time_ = 0.0;
};

}  // namespace strata::train
