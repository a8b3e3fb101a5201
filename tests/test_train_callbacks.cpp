// The callbacks of train/callbacks.h driven by fit(): early stopping (patience, min_delta,
// restoring the best weights), checkpoints (every N, best, resume bit for bit), learning-rate
// scheduler stepping, the CSV and JSON-lines logs and the HTML report. Files go to a fresh
// temporary folder per test, removed after.
#include <gtest/gtest.h>

#include <atomic>
#include <filesystem>
#include <fstream>
#include <memory>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <unistd.h>
#include <vector>

#include "strata/data/dataset.h"
#include "strata/io/checkpoint.h"
#include "strata/train/callbacks.h"
#include "strata/train/fit.h"
#include "test_files.h"
#include "test_util.h"

namespace strata::train {
namespace {

namespace fs = std::filesystem;
using test::expect_error;
using test::TempDir;

// A noisy regression problem: y = x w + 0.1 noise, x [n, 4].
std::shared_ptr<data::Dataset> regression_dataset(int64_t n, uint32_t seed) {
  const std::vector<double> x = test::uniform_values(static_cast<size_t>(4 * n), -1.0, 1.0, seed);
  const std::vector<double> noise = test::uniform_values(static_cast<size_t>(n), -0.1, 0.1, seed + 1);
  const double w[4] = {0.5, -1.0, 2.0, 0.25};
  std::vector<float> inputs(x.begin(), x.end()), targets;
  for (int64_t i = 0; i < n; ++i) {
    double y = noise[static_cast<size_t>(i)];
    for (int64_t j = 0; j < 4; ++j) y += w[j] * x[static_cast<size_t>(4 * i + j)];
    targets.push_back(static_cast<float>(y));
  }
  return std::make_shared<data::TensorDataset>(test::f32(inputs, {n, 4}), test::f32(targets, {n, 1}));
}

nn::Sequential make_mlp(uint64_t seed) {
  manual_seed(seed);
  return nn::Sequential(nn::Linear(4, 16), nn::Tanh(), nn::Dropout(0.1), nn::Linear(16, 1));
}

std::vector<float> flat_parameters(const nn::Module& model) {
  std::vector<float> values;
  for (const Tensor& p : model.parameters()) {
    const std::vector<float> v = p.to_vector<float>();
    values.insert(values.end(), v.begin(), v.end());
  }
  return values;
}

// Replaces the epoch's "score" with a scripted value (set before the callbacks under test run)
// and records the parameters after every epoch.
class Script : public Callback {
 public:
  explicit Script(std::vector<double> scores) : scores_(std::move(scores)) {}
  void on_epoch_end(TrainContext& context) override {
    context.logs["score"] = scores_.at(static_cast<size_t>(context.epoch));
    parameters.push_back(flat_parameters(context.model));
  }
  std::vector<std::vector<float>> parameters;

 private:
  std::vector<double> scores_;
};

TEST(TrainCallbacks, EarlyStoppingStopsAfterPatienceAndRestoresTheBest) {
  nn::Sequential model = make_mlp(1);
  optim::SGD optimizer(model.parameters(), {.lr = 0.05});
  auto script = std::make_shared<Script>(std::vector<double>{1.0, 0.5, 0.6, 0.55, 0.4, 0.3});
  auto stopper = std::make_shared<EarlyStopping>(EarlyStoppingOptions{
      .monitor = "score", .mode = MonitorMode::Min, .patience = 2, .restore_best_weights = true});
  History history = fit(model, nn::MSELoss{}, optimizer, regression_dataset(64, 1),
                        {.epochs = 6, .batch_size = 16, .callbacks = {script, stopper},
                         .verbose = Verbosity::Silent});
  EXPECT_EQ(history.size(), 4u);  // best at epoch 1, then two epochs without improvement
  EXPECT_EQ(stopper->stopped_epoch(), 3);
  EXPECT_EQ(stopper->best_epoch(), 1);
  EXPECT_EQ(stopper->best(), 0.5);
  EXPECT_EQ(flat_parameters(model), script->parameters.at(1));
  EXPECT_NE(script->parameters.at(3), script->parameters.at(1));
}

TEST(TrainCallbacks, EarlyStoppingMinDeltaAndModes) {
  nn::Sequential model = make_mlp(2);
  optim::SGD optimizer(model.parameters(), {.lr = 0.05});
  auto dataset = regression_dataset(32, 2);
  // 0.95 is not better than 1.0 by min_delta 0.1: patience 0 stops at once.
  auto script = std::make_shared<Script>(std::vector<double>{1.0, 0.95, 0.5});
  auto stopper = std::make_shared<EarlyStopping>(
      EarlyStoppingOptions{.monitor = "score", .min_delta = 0.1});
  History history = fit(model, nn::MSELoss{}, optimizer, dataset,
                        {.epochs = 3, .callbacks = {script, stopper}, .verbose = Verbosity::Silent});
  EXPECT_EQ(history.size(), 2u);
  // Auto mode: a name with "acc" should rise, so falling scores stop it.
  auto rising = std::make_shared<Script>(std::vector<double>{0.5, 0.4, 0.3});
  auto accuracy_stopper = std::make_shared<EarlyStopping>(
      EarlyStoppingOptions{.monitor = "score_acc", .patience = 1});
  struct Renamer : Callback {
    void on_epoch_end(TrainContext& context) override {
      context.logs["score_acc"] = context.logs.at("score");
    }
  };
  History second = fit(model, nn::MSELoss{}, optimizer, dataset,
                       {.epochs = 3,
                        .callbacks = {rising, std::make_shared<Renamer>(), accuracy_stopper},
                        .verbose = Verbosity::Silent});
  EXPECT_EQ(second.size(), 2u);
  EXPECT_EQ(accuracy_stopper->best(), 0.5);
  // Watching validation numbers without validation data is an error, not a silent no-op.
  expect_error(
      [&] {
        fit(model, nn::MSELoss{}, optimizer, dataset,
            {.callbacks = {std::make_shared<EarlyStopping>()}, .verbose = Verbosity::Silent});
      },
      {"EarlyStopping", "\"val_loss\"", "validation"});
  expect_error([] { EarlyStopping invalid({.patience = -1}); }, {"EarlyStopping", "patience"});
}

TEST(TrainCallbacks, ModelCheckpointWritesEveryNAndTheBest) {
  TempDir dir;
  nn::Sequential model = make_mlp(3);
  optim::Adam optimizer(model.parameters(), {.lr = 0.01});
  auto script = std::make_shared<Script>(std::vector<double>{0.9, 0.7, 0.8, 0.75, 0.72});
  auto checkpoint = std::make_shared<ModelCheckpoint>(
      dir.file("ckpt"), ModelCheckpointOptions{.every_n_epochs = 2, .save_best = true,
                                               .monitor = "score"});
  fit(model, nn::MSELoss{}, optimizer, regression_dataset(48, 3),
      {.epochs = 5, .batch_size = 16, .callbacks = {script, checkpoint},
       .verbose = Verbosity::Silent});
  EXPECT_TRUE(fs::exists(dir.file("ckpt/epoch-0002.safetensors")));
  EXPECT_TRUE(fs::exists(dir.file("ckpt/epoch-0004.safetensors")));
  EXPECT_FALSE(fs::exists(dir.file("ckpt/epoch-0001.safetensors")));
  EXPECT_FALSE(fs::exists(dir.file("ckpt/epoch-0005.safetensors")));
  EXPECT_EQ(checkpoint->written().size(), 4u);  // best after epochs 1 and 2, every 2 twice
  EXPECT_EQ(latest_checkpoint(dir.file("ckpt")), dir.file("ckpt/epoch-0004.safetensors"));
  EXPECT_EQ(latest_checkpoint(dir.file("missing")), "");

  // best.safetensors holds epoch 2 (score 0.7): its epoch count, weights and optimizer state.
  const io::Checkpoint best = io::load_checkpoint(checkpoint->best_path());
  EXPECT_EQ(best.epoch, 2);
  EXPECT_EQ(best.step, 2 * 3);
  EXPECT_FALSE(best.optimizer.empty());
  EXPECT_EQ(best.metadata.at("fit.epochs_done"), "2");
  nn::Sequential restored = make_mlp(99);
  restored.load_state_dict(best.model);
  EXPECT_EQ(flat_parameters(restored), script->parameters.at(1));
  EXPECT_EQ(io::load_checkpoint(dir.file("ckpt/epoch-0004.safetensors")).epoch, 4);
}

TEST(TrainCallbacks, ModelCheckpointMustComeAfterTheSchedulerStep) {
  TempDir dir;
  nn::Sequential model = make_mlp(4);
  optim::SGD optimizer(model.parameters(), {.lr = 0.1});
  optim::StepLR scheduler(optimizer, 1, 0.5);
  auto checkpoint = std::make_shared<ModelCheckpoint>(dir.file("c"), scheduler);
  auto step = std::make_shared<LRSchedulerStep>(scheduler);
  expect_error(
      [&] {
        fit(model, nn::MSELoss{}, optimizer, regression_dataset(16, 4),
            {.callbacks = {checkpoint, step}, .verbose = Verbosity::Silent});
      },
      {"ModelCheckpoint", "LRSchedulerStep", "first"});
}

// The resume story end to end: 4 epochs in one go vs 2 epochs, a checkpoint, fresh objects
// restored from it, and 2 more: the same losses, lrs and weights, bit for bit (CPU). The model
// has dropout, so the generator's state must be restored too, and the data is shuffled, so the
// loader must continue the epoch sequence.
TEST(TrainCallbacks, ResumeFromCheckpointIsBitIdentical) {
  TempDir dir;
  auto dataset = regression_dataset(80, 5);
  auto options_for = [](std::vector<std::shared_ptr<Callback>> callbacks, int64_t initial_epoch) {
    return FitOptions{.epochs = 4, .batch_size = 16, .shuffle = true, .seed = 21,
                      .validation_fraction = 0.2, .metrics = {"mae"},
                      .callbacks = std::move(callbacks), .verbose = Verbosity::Silent,
                      .initial_epoch = initial_epoch};
  };

  nn::Sequential straight_model = make_mlp(5);
  optim::Adam straight_optimizer(straight_model.parameters(), {.lr = 0.02});
  optim::StepLR straight_scheduler(straight_optimizer, 1, 0.7);
  History straight = fit(straight_model, nn::MSELoss{}, straight_optimizer, dataset,
                         options_for({std::make_shared<LRSchedulerStep>(straight_scheduler)}, 0));

  // First half: stops after 2 epochs (as if killed), with a checkpoint every epoch.
  nn::Sequential first_model = make_mlp(5);
  optim::Adam first_optimizer(first_model.parameters(), {.lr = 0.02});
  optim::StepLR first_scheduler(first_optimizer, 1, 0.7);
  struct StopAfter : Callback {
    void on_epoch_end(TrainContext& context) override {
      if (context.epoch == 1) context.stop_training = true;
    }
  };
  History first = fit(first_model, nn::MSELoss{}, first_optimizer, dataset,
                      options_for({std::make_shared<LRSchedulerStep>(first_scheduler),
                                   std::make_shared<ModelCheckpoint>(dir.file("run"), first_scheduler),
                                   std::make_shared<StopAfter>()},
                                  0));
  ASSERT_EQ(first.size(), 2u);

  // Second half: fresh objects (a different initialization, and the generator moved on).
  nn::Sequential resumed_model = make_mlp(777);
  optim::Adam resumed_optimizer(resumed_model.parameters(), {.lr = 0.5});
  optim::StepLR resumed_scheduler(resumed_optimizer, 1, 0.7);
  const std::string latest = latest_checkpoint(dir.file("run"));
  ASSERT_EQ(latest, dir.file("run/epoch-0002.safetensors"));
  const io::Checkpoint checkpoint = io::load_checkpoint(latest);
  io::restore(checkpoint, resumed_model, resumed_optimizer, &resumed_scheduler);
  History second = fit(resumed_model, nn::MSELoss{}, resumed_optimizer, dataset,
                       options_for({std::make_shared<LRSchedulerStep>(resumed_scheduler)},
                                   checkpoint.epoch));
  ASSERT_EQ(second.size(), 2u);
  EXPECT_EQ(second.epochs(), (std::vector<int64_t>{2, 3}));

  for (const char* name : {"loss", "mae", "val_loss", "val_mae", "lr"}) {
    const std::vector<double> all = straight.series(name);
    EXPECT_EQ(first.series(name), std::vector<double>(all.begin(), all.begin() + 2)) << name;
    EXPECT_EQ(second.series(name), std::vector<double>(all.begin() + 2, all.end())) << name;
  }
  EXPECT_EQ(flat_parameters(resumed_model), flat_parameters(straight_model));
}

TEST(TrainCallbacks, LRSchedulerStepPerEpochPerBatchAndOnPlateau) {
  auto dataset = regression_dataset(64, 6);  // 4 batches of 16
  {
    nn::Sequential model = make_mlp(6);
    optim::SGD optimizer(model.parameters(), {.lr = 0.1});
    optim::StepLR scheduler(optimizer, 1, 0.5);
    History history = fit(model, nn::MSELoss{}, optimizer, dataset,
                          {.epochs = 3, .batch_size = 16,
                           .callbacks = {std::make_shared<LRSchedulerStep>(scheduler)},
                           .verbose = Verbosity::Silent});
    EXPECT_EQ(history.series("lr"), (std::vector<double>{0.1, 0.05, 0.025}));
    EXPECT_EQ(scheduler.last_epoch(), 3);
  }
  {
    nn::Sequential model = make_mlp(6);
    optim::SGD optimizer(model.parameters(), {.lr = 0.1});
    optim::StepLR scheduler(optimizer, 1, 0.5);
    History history = fit(model, nn::MSELoss{}, optimizer, dataset,
                          {.epochs = 2,
                           .batch_size = 16,
                           .callbacks = {std::make_shared<LRSchedulerStep>(
                               scheduler, LRSchedulerStepOptions{.interval = StepInterval::Batch})},
                           .verbose = Verbosity::Silent});
    EXPECT_EQ(scheduler.last_epoch(), 8);
    // The epoch line shows where the per-batch schedule got to: 4 and 8 halvings.
    EXPECT_EQ(history.series("lr"), (std::vector<double>{0.1 / 16, 0.1 / 256}));
  }
  {
    nn::Sequential model = make_mlp(6);
    optim::SGD optimizer(model.parameters(), {.lr = 0.1});
    optim::ReduceLROnPlateau plateau(optimizer, {.factor = 0.5, .patience = 0});
    auto script = std::make_shared<Script>(std::vector<double>{1.0, 2.0, 3.0, 0.5});
    History history = fit(
        model, nn::MSELoss{}, optimizer, dataset,
        {.epochs = 4, .batch_size = 16,
         .callbacks = {script, std::make_shared<LRSchedulerStep>(
                                   plateau, LRSchedulerStepOptions{.monitor = "score"})},
         .verbose = Verbosity::Silent});
    EXPECT_EQ(history.series("lr"), (std::vector<double>{0.1, 0.1, 0.05, 0.025}));
    expect_error(
        [&] {
          LRSchedulerStep bad(plateau, {.interval = StepInterval::Batch});
        },
        {"LRSchedulerStep", "ReduceLROnPlateau", "per epoch"});
  }
}

std::vector<std::string> read_lines(const std::string& path) {
  std::ifstream file(path);
  std::vector<std::string> lines;
  for (std::string line; std::getline(file, line);) lines.push_back(line);
  return lines;
}

std::string read_text(const std::string& path) {
  std::ifstream file(path, std::ios::binary);
  std::string text(static_cast<size_t>(fs::file_size(path)), '\0');
  file.read(text.data(), static_cast<std::streamsize>(text.size()));
  return text;
}

std::vector<std::string> split(const std::string& text, char separator) {
  std::vector<std::string> parts;
  std::stringstream stream(text);
  for (std::string part; std::getline(stream, part, separator);) parts.push_back(part);
  if (!text.empty() && text.back() == separator) parts.emplace_back();
  return parts;
}

TEST(TrainCallbacks, CsvLoggerWritesOneRowPerEpochAndAppends) {
  TempDir dir;
  const std::string path = dir.file("logs/log.csv");  // the folder is created
  nn::Sequential model = make_mlp(7);
  optim::SGD optimizer(model.parameters(), {.lr = 0.05});
  auto dataset = regression_dataset(32, 7);
  History history = fit(model, nn::MSELoss{}, optimizer, dataset,
                         {.epochs = 3, .batch_size = 8, .validation_fraction = 0.25,
                          .metrics = {"mae"}, .callbacks = {std::make_shared<CsvLogger>(path)},
                          .verbose = Verbosity::Silent});
  std::vector<std::string> lines = read_lines(path);
  ASSERT_EQ(lines.size(), 4u);
  const std::vector<std::string> header = split(lines[0], ',');
  EXPECT_EQ(header, (std::vector<std::string>{"epoch", "loss", "lr", "mae", "seconds",
                                              "val_loss", "val_mae"}));
  for (size_t row = 0; row < 3; ++row) {
    const std::vector<std::string> cells = split(lines[row + 1], ',');
    ASSERT_EQ(cells.size(), header.size());
    EXPECT_EQ(cells[0], std::to_string(row + 1));
    for (size_t column = 1; column < header.size(); ++column) {
      // Shortest round-trip text: reads back as exactly the logged value.
      EXPECT_EQ(std::stod(cells[column]), history.at(row).at(header[column])) << header[column];
    }
  }
  // A resumed run appends below the same header.
  fit(model, nn::MSELoss{}, optimizer, dataset,
      {.epochs = 5, .batch_size = 8, .validation_fraction = 0.25, .metrics = {"mae"},
       .callbacks = {std::make_shared<CsvLogger>(path, /*append=*/true)},
       .verbose = Verbosity::Silent, .initial_epoch = 3});
  lines = read_lines(path);
  ASSERT_EQ(lines.size(), 6u);
  EXPECT_EQ(lines[0].rfind("epoch,", 0), 0u);
  EXPECT_EQ(lines[4].rfind("4,", 0), 0u);
  EXPECT_EQ(lines[5].rfind("5,", 0), 0u);
  expect_error(
      [&] {
        fit(model, nn::MSELoss{}, optimizer, dataset,
            {.callbacks = {std::make_shared<CsvLogger>(dir.file("logs/log.csv/x.csv"))},
             .verbose = Verbosity::Silent});
      },
      {"CsvLogger"});
}

TEST(TrainCallbacks, JsonLinesLoggerWritesOneObjectPerEpoch) {
  TempDir dir;
  const std::string path = dir.file("log.jsonl");
  nn::Sequential model = make_mlp(8);
  optim::SGD optimizer(model.parameters(), {.lr = 0.05});
  auto script = std::make_shared<Script>(std::vector<double>{std::nan(""), 1.5});
  History history = fit(model, nn::MSELoss{}, optimizer, regression_dataset(32, 8),
                        {.epochs = 2, .batch_size = 8,
                         .callbacks = {script, std::make_shared<JsonLinesLogger>(path)},
                         .verbose = Verbosity::Silent});
  const std::vector<std::string> lines = read_lines(path);
  ASSERT_EQ(lines.size(), 2u);
  EXPECT_EQ(lines[0].rfind("{\"epoch\":1,", 0), 0u) << lines[0];
  for (size_t row = 0; row < 2; ++row) {
    const nlohmann::json object = nlohmann::json::parse(lines[row]);
    EXPECT_EQ(object.at("epoch").get<int64_t>(), static_cast<int64_t>(row + 1));
    EXPECT_EQ(object.at("loss").get<double>(), history.at(row).at("loss"));
    EXPECT_EQ(object.at("lr").get<double>(), 0.05);
  }
  EXPECT_TRUE(nlohmann::json::parse(lines[0]).at("score").is_null());  // NaN -> null
  EXPECT_EQ(nlohmann::json::parse(lines[1]).at("score").get<double>(), 1.5);
}

TEST(TrainCallbacks, HtmlReportWritesHistoryAndConfusionMatrix) {
  TempDir dir;
  const std::string path = dir.file("report.html");
  manual_seed(9);
  nn::Sequential model(nn::Linear(4, 3));
  optim::SGD optimizer(model.parameters(), {.lr = 0.1});
  const std::vector<double> x = test::uniform_values(4 * 30, -1.0, 1.0, 9);
  std::vector<int64_t> labels;
  for (int64_t i = 0; i < 30; ++i) labels.push_back(i % 3);
  auto dataset = std::make_shared<data::TensorDataset>(
      test::f32(std::vector<float>(x.begin(), x.end()), {30, 4}), test::i64(labels, {30}));
  auto report = std::make_shared<HtmlReport>(
      path, HtmlReportOptions{.title = "Blobs <test>",
                              .config = {{"optimizer", "SGD"}, {"lr", "0.1"}},
                              .class_names = {"zero", "one", "two"}});
  fit(model, nn::CrossEntropyLoss{}, optimizer, dataset,
      {.epochs = 2, .batch_size = 8, .validation = dataset, .metrics = {"accuracy"},
       .callbacks = {report}, .verbose = Verbosity::Silent});
  ASSERT_TRUE(fs::exists(path));
  const ReportData& data = report->data();
  EXPECT_EQ(data.history.at("val_accuracy").size(), 2u);
  EXPECT_EQ(data.first_epoch, 1);
  ASSERT_TRUE(data.confusion_matrix.defined());
  EXPECT_EQ(data.confusion_matrix.shape(), (Shape{3, 3}));
  EXPECT_EQ(data.confusion_matrix.sum().item<int64_t>(), 30);
  const std::string html = read_text(path);
  EXPECT_NE(html.find("Blobs &lt;test&gt;"), std::string::npos);
  EXPECT_NE(html.find("val_loss"), std::string::npos);
  EXPECT_NE(html.find("optimizer"), std::string::npos);
  report->add_final_metric("test_accuracy", 0.875);
  report->write();
  const std::string rewritten = read_text(path);
  EXPECT_NE(rewritten.find("test_accuracy"), std::string::npos);
}

// A resumed run: load_csv_log reads the log back (the last row of a repeated epoch wins), and
// the report of the second fit() covers the epochs of the first.
TEST(TrainCallbacks, ResumedRunsReportFromTheLog) {
  TempDir dir;
  const std::string log = dir.file("log.csv");
  nn::Sequential model = make_mlp(10);
  optim::SGD optimizer(model.parameters(), {.lr = 0.05});
  auto dataset = regression_dataset(32, 10);
  const FitOptions first{.epochs = 3, .batch_size = 8, .validation_fraction = 0.25,
                         .callbacks = {std::make_shared<CsvLogger>(log)},
                         .verbose = Verbosity::Silent};
  const History history = fit(model, nn::MSELoss{}, optimizer, dataset, first);
  {
    std::ofstream again(log, std::ios::app);  // epoch 3 logged twice, the second one wins
    again << "3," << 0.5 << "," << 0.05 << ",1,0.25\n";
  }
  const History read = load_csv_log(log);
  ASSERT_EQ(read.epochs(), (std::vector<int64_t>{0, 1, 2}));
  EXPECT_EQ(read.at(0).at("loss"), history.at(0).at("loss"));
  EXPECT_EQ(read.at(1).at("val_loss"), history.at(1).at("val_loss"));
  EXPECT_EQ(read.at(2).at("loss"), 0.5);
  EXPECT_EQ(read.at(2).at("val_loss"), 0.25);

  // The second call starts at epoch 2: the log's epochs 0 and 1 come first, its epoch 2 not.
  auto report = std::make_shared<HtmlReport>(dir.file("report.html"),
                                             HtmlReportOptions{.earlier = read});
  FitOptions second = first;
  second.epochs = 4;
  second.initial_epoch = 2;
  second.callbacks = {report};
  const History resumed = fit(model, nn::MSELoss{}, optimizer, dataset, second);
  const ReportData& data = report->data();
  EXPECT_EQ(data.first_epoch, 1);
  ASSERT_EQ(data.history.at("loss").size(), 4u);
  EXPECT_EQ(data.history.at("loss")[0], history.at(0).at("loss"));
  EXPECT_EQ(data.history.at("loss")[2], resumed.at(0).at("loss"));
  EXPECT_EQ(data.history.at("loss")[3], resumed.at(1).at("loss"));

  expect_error([&] { (void)load_csv_log(dir.file("missing.csv")); }, {"missing.csv"});
  {
    std::ofstream bad(dir.file("bad.csv"));
    bad << "loss\n0.5\n";
  }
  expect_error([&] { (void)load_csv_log(dir.file("bad.csv")); }, {"epoch"});
}

}  // namespace
}  // namespace strata::train
