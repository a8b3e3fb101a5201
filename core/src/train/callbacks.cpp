// The callbacks of callbacks.h. Each watches the logs fit() hands it at an epoch's end; the ones
// that watch a named value throw when the epoch lacks it, naming what the epoch has.
#include "strata/train/callbacks.h"

#include <cerrno>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <limits>
#include <map>
#include <nlohmann/json.hpp>
#include <regex>
#include <sstream>

#include "strata/autograd.h"
#include "strata/data/dataloader.h"
#include "strata/data/readers.h"
#include "strata/error.h"
#include "strata/io/checkpoint.h"
#include "strata/nn/distributed_data_parallel.h"
#include "train/progress.h"

namespace strata::train {

namespace {

bool maximizes(const std::string& monitor, MonitorMode mode) {
  if (mode != MonitorMode::Auto) return mode == MonitorMode::Max;
  for (const char* rising : {"acc", "top", "precision", "recall", "f1", "auc"}) {
    if (monitor.find(rising) != std::string::npos) return true;
  }
  return false;
}

std::string names_of(const Logs& logs) {
  std::string names;
  for (const auto& [name, value] : logs) {
    (void)value;
    names += (names.empty() ? "" : ", ") + name;
  }
  return names.empty() ? "nothing" : names;
}

double monitored(const char* owner, const TrainContext& context, const std::string& monitor) {
  const auto entry = context.logs.find(monitor);
  STRATA_CHECK(entry != context.logs.end(), owner, ": the monitored value \"", monitor,
               "\" is not in epoch ", context.epoch + 1, "'s logs (",
               names_of(context.logs), ")",
               monitor.starts_with("val_") ? "; give fit() validation data or monitor a "
                                             "training value"
                                           : "");
  return entry->second;
}

// Whether `value` beats `best` by more than `min_delta` (NaN never does).
bool improves(double value, double best, bool maximize, double min_delta) {
  if (std::isnan(value)) return false;
  return maximize ? value > best + min_delta : value < best - min_delta;
}

double worst_value(bool maximize) {
  return maximize ? -std::numeric_limits<double>::infinity()
                  : std::numeric_limits<double>::infinity();
}

// The shortest text that reads back as the same double ("0.1", "2.5e-05", "nan").
std::string shortest(double value) {
  if (std::isnan(value)) return "nan";
  if (std::isinf(value)) return value > 0 ? "inf" : "-inf";
  char text[64];
  const auto result = std::to_chars(text, text + sizeof text, value);
  return std::string(text, result.ptr);
}

std::string system_reason() { return std::strerror(errno); }

void open_log(const char* owner, std::ofstream& file, const std::string& path, bool append) {
  const std::filesystem::path parent = std::filesystem::path(path).parent_path();
  if (!parent.empty()) {
    std::error_code error;
    std::filesystem::create_directories(parent, error);
    STRATA_CHECK(!error, owner, ": cannot create the folder ", parent.string(), " for ", path,
                 ": ", error.message());
  }
  if (file.is_open()) file.close();
  file.open(path, append ? std::ios::app : std::ios::trunc);
  STRATA_CHECK(file.is_open(), owner, ": cannot open ", path, " for writing: ", system_reason());
}

void check_written(const char* owner, std::ofstream& file, const std::string& path) {
  file.flush();
  STRATA_CHECK(file.good(), owner, ": writing ", path, " failed: ", system_reason());
}

}  // namespace

// ---- EarlyStopping ------------------------------------------------------------------------

EarlyStopping::EarlyStopping(EarlyStoppingOptions options) : options_(std::move(options)) {
  STRATA_CHECK(!options_.monitor.empty(), "EarlyStopping: monitor is empty");
  STRATA_CHECK(options_.patience >= 0, "EarlyStopping: patience must be at least 0 (got ",
               options_.patience, ")");
  STRATA_CHECK(options_.min_delta >= 0.0, "EarlyStopping: min_delta must be at least 0 (got ",
               options_.min_delta, ")");
  maximize_ = maximizes(options_.monitor, options_.mode);
}

void EarlyStopping::on_train_begin(TrainContext& context) {
  (void)context;
  best_ = worst_value(maximize_);
  best_epoch_ = -1;
  wait_ = 0;
  stopped_epoch_ = -1;
  best_weights_.clear();
}

void EarlyStopping::on_epoch_end(TrainContext& context) {
  const double value = monitored("EarlyStopping", context, options_.monitor);
  if (improves(value, best_, maximize_, options_.min_delta)) {
    best_ = value;
    best_epoch_ = context.epoch;
    wait_ = 0;
    if (options_.restore_best_weights) {
      // Copies: the state dict's tensors share data with the parameters trained on.
      NoGradGuard no_grad;
      best_weights_.clear();
      for (const auto& [name, tensor] : context.model.state_dict()) {
        best_weights_[name] = tensor.detach().clone();
      }
    }
    return;
  }
  ++wait_;
  if (wait_ >= options_.patience) {
    stopped_epoch_ = context.epoch;
    context.stop_training = true;
  }
}

void EarlyStopping::on_train_end(TrainContext& context) {
  const bool best_is_last = !context.history.empty() &&
                            context.history.epochs().back() == best_epoch_;
  if (options_.restore_best_weights && !best_weights_.empty() && !best_is_last) {
    context.model.load_state_dict(best_weights_);
  }
}

// ---- ModelCheckpoint ----------------------------------------------------------------------

ModelCheckpoint::ModelCheckpoint(std::string directory, ModelCheckpointOptions options)
    : directory_(std::move(directory)), options_(std::move(options)) {
  STRATA_CHECK(!directory_.empty(), "ModelCheckpoint: the directory is empty");
  STRATA_CHECK(options_.every_n_epochs >= 0,
               "ModelCheckpoint: every_n_epochs must be at least 0 (got ",
               options_.every_n_epochs, "; 0 writes no per-epoch file)");
  STRATA_CHECK(!options_.save_best || !options_.monitor.empty(),
               "ModelCheckpoint: save_best needs a monitor");
  maximize_ = maximizes(options_.monitor, options_.mode);
}

ModelCheckpoint::ModelCheckpoint(std::string directory, optim::LRScheduler& scheduler,
                                 ModelCheckpointOptions options)
    : ModelCheckpoint(std::move(directory), std::move(options)) {
  scheduler_ = &scheduler;
}

ModelCheckpoint::ModelCheckpoint(std::string directory, optim::ReduceLROnPlateau& scheduler,
                                 ModelCheckpointOptions options)
    : ModelCheckpoint(std::move(directory), std::move(options)) {
  plateau_ = &scheduler;
}

std::string ModelCheckpoint::epoch_path(int64_t epochs_done) const {
  char name[48];
  std::snprintf(name, sizeof name, "epoch-%04lld.safetensors", static_cast<long long>(epochs_done));
  return (std::filesystem::path(directory_) / name).string();
}

std::string ModelCheckpoint::best_path() const {
  return (std::filesystem::path(directory_) / "best.safetensors").string();
}

void ModelCheckpoint::on_train_begin(TrainContext& context) {
  // NOTE: a checkpoint must hold the scheduler as the next epoch will use it. A scheduler
  // stepped at the epoch's end by a callback that runs after this one would be saved
  // unstepped, and a resumed run would then repeat one lr: refuse that order.
  bool after_this = false;
  for (const auto& callback : context.options.callbacks) {
    if (callback.get() == this) after_this = true;
    STRATA_CHECK(!(after_this && dynamic_cast<LRSchedulerStep*>(callback.get()) != nullptr),
                 "ModelCheckpoint: an LRSchedulerStep comes after it in FitOptions::callbacks; "
                 "put LRSchedulerStep first, so that checkpoints hold the stepped scheduler");
  }
  best_ = worst_value(maximize_);
  has_best_ = false;
  writes_ = context.is_main_process();
  if (!writes_) return;
  std::error_code error;
  std::filesystem::create_directories(directory_, error);
  STRATA_CHECK(!error, "ModelCheckpoint: cannot create the directory ", directory_, ": ",
               error.message());
  remove_stale_temporaries();
}

// A run killed while writing a checkpoint leaves io::write_file_atomic's temporary file
// ("epoch-0003.safetensors.tmp-<pid>-<random>"): never a checkpoint, but as large as one.
// Removed when the next run starts (a run writing into the same folder at the same time would
// lose its write; two runs must not share a folder).
void ModelCheckpoint::remove_stale_temporaries() const {
  static const std::regex pattern(R"((epoch-\d+|best)\.safetensors\.tmp-.+)");
  std::error_code error;
  for (const auto& entry : std::filesystem::directory_iterator(directory_, error)) {
    if (entry.is_regular_file(error) &&
        std::regex_match(entry.path().filename().string(), pattern)) {
      std::filesystem::remove(entry.path(), error);
    }
  }
}

namespace {

// The model whose state a checkpoint holds: a DistributedDataParallel's wrapped module (keys
// without its "module." prefix, so that the file loads into the plain model as well), or the
// model itself.
nn::Module& checkpointed(nn::Module& model) {
  auto* ddp = dynamic_cast<nn::DistributedDataParallel*>(&model);
  return ddp != nullptr ? ddp->module() : model;
}

}  // namespace

void ModelCheckpoint::save(TrainContext& context, const std::string& path) const {
  const int64_t epochs_done = context.epoch + 1;
  const int64_t steps_done = epochs_done * context.steps;
  io::Checkpoint checkpoint = plateau_ != nullptr
                                  ? io::capture(checkpointed(context.model), context.optimizer,
                                                *plateau_, epochs_done, steps_done)
                                  : io::capture(checkpointed(context.model), context.optimizer,
                                                scheduler_, epochs_done, steps_done);
  checkpoint.metadata["fit.epochs_done"] = std::to_string(epochs_done);
  if (context.grad_scaler != nullptr) checkpoint.grad_scaler = context.grad_scaler->state_dict();
  for (const auto& [name, value] : context.logs) {
    checkpoint.metadata["fit.logs." + name] = shortest(value);
  }
  io::save_checkpoint(path, checkpoint);
}

void ModelCheckpoint::on_epoch_end(TrainContext& context) {
  if (!writes_) return;
  const int64_t epochs_done = context.epoch + 1;
  if (options_.every_n_epochs > 0 && epochs_done % options_.every_n_epochs == 0) {
    save(context, epoch_path(epochs_done));
    written_.push_back(epoch_path(epochs_done));
  }
  if (options_.save_best) {
    const double value = monitored("ModelCheckpoint", context, options_.monitor);
    if (!has_best_ ? !std::isnan(value) : improves(value, best_, maximize_, 0.0)) {
      best_ = value;
      has_best_ = true;
      save(context, best_path());
      written_.push_back(best_path());
    }
  }
}

std::string latest_checkpoint(const std::string& directory) {
  std::error_code error;
  if (!std::filesystem::is_directory(directory, error)) return "";
  static const std::regex pattern(R"(epoch-(\d+)\.safetensors)");
  std::string latest;
  int64_t latest_epoch = -1;
  for (const auto& entry : std::filesystem::directory_iterator(directory, error)) {
    const std::string name = entry.path().filename().string();
    std::smatch match;
    if (!entry.is_regular_file() || !std::regex_match(name, match, pattern)) continue;
    const int64_t epoch = std::stoll(match[1].str());
    if (epoch > latest_epoch) {
      latest_epoch = epoch;
      latest = entry.path().string();
    }
  }
  return latest;
}

Resumed resume_from_latest(const std::string& directory, nn::Module& model,
                           optim::Optimizer& optimizer, optim::LRScheduler* scheduler,
                           Device device, amp::GradScaler* grad_scaler) {
  Resumed resumed;
  resumed.path = latest_checkpoint(directory);
  if (resumed.path.empty()) return resumed;
  const io::Checkpoint checkpoint = io::load_checkpoint(resumed.path, device);
  io::restore(checkpoint, checkpointed(model), optimizer, scheduler);
  if (grad_scaler != nullptr && !checkpoint.grad_scaler.empty()) {
    grad_scaler->load_state_dict(checkpoint.grad_scaler);
  }
  resumed.epoch = checkpoint.epoch;
  return resumed;
}

// ---- LRSchedulerStep ----------------------------------------------------------------------

LRSchedulerStep::LRSchedulerStep(optim::LRScheduler& scheduler, LRSchedulerStepOptions options)
    : scheduler_(&scheduler), options_(std::move(options)) {}

LRSchedulerStep::LRSchedulerStep(optim::ReduceLROnPlateau& scheduler,
                                 LRSchedulerStepOptions options)
    : plateau_(&scheduler), options_(std::move(options)) {
  STRATA_CHECK(options_.interval == StepInterval::Epoch,
               "LRSchedulerStep: ReduceLROnPlateau steps once per epoch (with the monitored ",
               "value \"", options_.monitor, "\"), not per batch");
  STRATA_CHECK(!options_.monitor.empty(), "LRSchedulerStep: monitor is empty");
}

void LRSchedulerStep::on_batch_end(TrainContext& context) {
  (void)context;
  if (scheduler_ != nullptr && options_.interval == StepInterval::Batch) scheduler_->step();
}

void LRSchedulerStep::on_epoch_end(TrainContext& context) {
  if (plateau_ != nullptr) {
    plateau_->step(monitored("LRSchedulerStep", context, options_.monitor));
  } else if (options_.interval == StepInterval::Epoch) {
    scheduler_->step();
  }
}

// ---- CsvLogger ----------------------------------------------------------------------------

namespace {

std::string csv_field(const std::string& text, char separator) {
  if (text.find_first_of(std::string{separator, '"', '\n', '\r'}) == std::string::npos) {
    return text;
  }
  std::string quoted = "\"";
  for (char c : text) quoted += c == '"' ? std::string("\"\"") : std::string(1, c);
  return quoted + "\"";
}

// The column names of an existing CSV log's header (unquoted), or none when the file is empty
// or missing.
std::vector<std::string> existing_columns(const std::string& path, char separator) {
  std::ifstream file(path);
  std::string header;
  if (!file || !std::getline(file, header) || header.empty()) return {};
  std::vector<std::string> columns;
  std::string field;
  bool quoted = false;
  for (size_t i = 0; i < header.size(); ++i) {
    const char c = header[i];
    if (quoted) {
      if (c == '"' && i + 1 < header.size() && header[i + 1] == '"') {
        field += '"';
        ++i;
      } else if (c == '"') {
        quoted = false;
      } else {
        field += c;
      }
    } else if (c == '"') {
      quoted = true;
    } else if (c == separator) {
      columns.push_back(field);
      field.clear();
    } else if (c != '\r') {
      field += c;
    }
  }
  columns.push_back(field);
  // The first column is "epoch", written by the logger itself.
  if (!columns.empty() && columns.front() == "epoch") columns.erase(columns.begin());
  return columns;
}

}  // namespace

CsvLogger::CsvLogger(std::string path, bool append, char separator)
    : path_(std::move(path)), append_(append), separator_(separator) {
  STRATA_CHECK(!path_.empty(), "CsvLogger: the path is empty");
  STRATA_CHECK(separator_ != '"' && separator_ != '\n' && separator_ != '\r',
               "CsvLogger: the separator cannot be a quote or a line break");
}

void CsvLogger::on_train_begin(TrainContext& context) {
  writes_ = context.is_main_process();
  if (!writes_) return;
  columns_ = append_ ? existing_columns(path_, separator_) : std::vector<std::string>{};
  open_log("CsvLogger", file_, path_, append_);
}

void CsvLogger::on_epoch_end(TrainContext& context) {
  if (!writes_) return;
  if (columns_.empty()) {
    for (const auto& [name, value] : context.logs) {
      (void)value;
      columns_.push_back(name);
    }
    file_ << "epoch";
    for (const std::string& name : columns_) file_ << separator_ << csv_field(name, separator_);
    file_ << '\n';
  }
  file_ << context.epoch + 1;
  for (const std::string& name : columns_) {
    file_ << separator_;
    const auto entry = context.logs.find(name);
    if (entry != context.logs.end()) file_ << shortest(entry->second);
  }
  file_ << '\n';
  check_written("CsvLogger", file_, path_);
}

void CsvLogger::on_train_end(TrainContext& context) {
  (void)context;
  if (file_.is_open()) file_.close();
}

History load_csv_log(const std::string& path) {
  const data::CsvTable table = data::read_csv(path, {.missing_as_nan = true});
  const int64_t epoch_column = table.column_index("epoch");
  const std::vector<double> cells = table.values.to_vector<double>();
  const size_t columns = table.columns.size();
  std::map<int64_t, Logs> by_epoch;  // the last row of an epoch wins
  for (int64_t row = 0; row < table.rows(); ++row) {
    const double* values = cells.data() + static_cast<size_t>(row) * columns;
    const double epoch = values[epoch_column];
    STRATA_CHECK(epoch >= 1 && epoch == std::floor(epoch), "load_csv_log: ", path, ": row ",
                 row + 1, " has epoch ", epoch, "; epochs are numbered from 1");
    Logs logs;
    for (size_t c = 0; c < columns; ++c) {
      if (static_cast<int64_t>(c) != epoch_column && !std::isnan(values[c])) {
        logs[table.columns[c]] = values[c];
      }
    }
    by_epoch[static_cast<int64_t>(epoch) - 1] = std::move(logs);
  }
  History history;
  for (auto& [epoch, logs] : by_epoch) history.append(epoch, std::move(logs));
  return history;
}

// ---- JsonLinesLogger ----------------------------------------------------------------------

JsonLinesLogger::JsonLinesLogger(std::string path, bool append)
    : path_(std::move(path)), append_(append) {
  STRATA_CHECK(!path_.empty(), "JsonLinesLogger: the path is empty");
}

void JsonLinesLogger::on_train_begin(TrainContext& context) {
  writes_ = context.is_main_process();
  if (!writes_) return;
  open_log("JsonLinesLogger", file_, path_, append_);
}

void JsonLinesLogger::on_epoch_end(TrainContext& context) {
  if (!writes_) return;
  // ordered_json keeps "epoch" first, then the logs in their (sorted) order.
  nlohmann::ordered_json line;
  line["epoch"] = context.epoch + 1;
  for (const auto& [name, value] : context.logs) {
    if (std::isfinite(value)) {
      line[name] = value;
    } else {
      line[name] = nullptr;
    }
  }
  file_ << line.dump() << '\n';
  check_written("JsonLinesLogger", file_, path_);
}

void JsonLinesLogger::on_train_end(TrainContext& context) {
  (void)context;
  if (file_.is_open()) file_.close();
}

// ---- HtmlReport ---------------------------------------------------------------------------

HtmlReport::HtmlReport(std::string path, HtmlReportOptions options)
    : path_(std::move(path)), options_(std::move(options)) {
  STRATA_CHECK(!path_.empty(), "HtmlReport: the path is empty");
  STRATA_CHECK(options_.batch_size >= 1, "HtmlReport: batch_size must be at least 1 (got ",
               options_.batch_size, ")");
}

namespace {

// The confusion matrix of `model` on `dataset` (int64 [C, C] on the CPU), in eval mode without
// a tape; the model's mode is put back after.
Tensor validation_confusion(nn::Module& model, const std::shared_ptr<data::Dataset>& dataset,
                            int64_t classes, int64_t batch_size, Device device) {
  ConfusionMatrix confusion(classes);
  const bool training = model.is_training();
  {
    NoGradGuard no_grad;
    model.eval();
    data::DataLoader loader(dataset, {.batch_size = batch_size, .shuffle = false, .device = device});
    for (const data::Batch& batch : loader) confusion.update(model(batch.input), batch.target);
  }
  model.train(training);
  return confusion.matrix();
}

}  // namespace

void HtmlReport::on_train_begin(TrainContext& context) {
  writes_ = context.is_main_process();
  start_time_ = detail::Progress::steady_seconds();
}

void HtmlReport::on_train_end(TrainContext& context) {
  if (!writes_) return;
  const double training_seconds = detail::Progress::steady_seconds() - start_time_;
  ReportData data;
  data.title = options_.title;
  data.config = options_.config;
  data.class_names = options_.class_names;
  const History& history = context.history;
  // The whole run: the earlier epochs that lead without a gap up to this call's first one (the
  // report's series are indexed by epoch), then this call's.
  const History& earlier = options_.earlier;  // epochs ascending
  size_t end = earlier.size();
  if (!history.empty()) {
    while (end > 0 && earlier.epochs()[end - 1] >= history.epochs().front()) --end;
  }
  size_t first = end;
  int64_t expected = !history.empty() ? history.epochs().front() - 1
                     : end > 0        ? earlier.epochs()[end - 1]
                                      : 0;
  while (first > 0 && earlier.epochs()[first - 1] == expected) {
    --first;
    --expected;
  }
  History run;
  for (size_t i = first; i < end; ++i) run.append(earlier.epochs()[i], earlier.at(i));
  for (size_t i = 0; i < history.size(); ++i) run.append(history.epochs()[i], history.at(i));
  for (const std::string& name : run.names()) data.history[name] = run.series(name);
  data.first_epoch = run.empty() ? 1 : run.epochs().front() + 1;
  if (!history.empty()) {
    for (const auto& [name, value] : history.back()) {
      if (name.starts_with("val_")) data.test_metrics.emplace_back(name, value);
    }
  }
  data.timings.emplace_back("training", training_seconds);
  if (!history.empty()) {
    double total = 0.0;
    for (double seconds : history.series("seconds")) total += seconds;
    data.timings.emplace_back("mean epoch", total / static_cast<double>(history.size()));
  }
  const int64_t classes = static_cast<int64_t>(options_.class_names.size());
  if (options_.confusion_matrix && classes > 0 && context.validation != nullptr) {
    const double start = detail::Progress::steady_seconds();
    data.confusion_matrix = validation_confusion(context.model, context.validation, classes,
                                                 options_.batch_size, context.device);
    data.timings.emplace_back("confusion matrix", detail::Progress::steady_seconds() - start);
  }
  data_ = std::move(data);
  write();
}

void HtmlReport::add_final_metric(const std::string& name, double value) {
  for (auto& [existing, existing_value] : data_.test_metrics) {
    if (existing == name) {
      existing_value = value;
      return;
    }
  }
  data_.test_metrics.emplace_back(name, value);
}

void HtmlReport::write() const {
  if (writes_) write_html_report(path_, data_);
}

}  // namespace strata::train
