// fit(), evaluate() and predict(): training on a separable synthetic problem, the validation
// split, the model's mode and grad mode in each phase, History, the progress output (plain
// lines, the bar, its redraw rate) and the option errors.
#include <gtest/gtest.h>

#include <cmath>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include "../core/src/train/progress.h"
#include "strata/data/dataset.h"
#include "strata/train/fit.h"
#include "strata/train/progress_bar.h"
#include "test_util.h"

namespace strata::train {
namespace {

using test::expect_error;

// Two Gaussian-ish blobs in 2-D, labelled by the side of the line x0 + x1 = 0 they fall on,
// with a margin so that a small MLP separates them perfectly.
struct Blobs {
  Tensor inputs;  // float32 [n, 2]
  Tensor labels;  // int64 [n]
};

Blobs make_blobs(int64_t n, uint32_t seed) {
  const std::vector<double> raw = test::uniform_values(static_cast<size_t>(2 * n), -1.0, 1.0, seed);
  std::vector<float> inputs;
  std::vector<int64_t> labels;
  for (int64_t i = 0; i < n; ++i) {
    double x0 = raw[static_cast<size_t>(2 * i)], x1 = raw[static_cast<size_t>(2 * i + 1)];
    const int64_t label = x0 + x1 > 0.0 ? 1 : 0;
    // Push each point 0.3 away from the boundary along its normal: a clear margin.
    const double shift = (label == 1 ? 0.3 : -0.3) / std::sqrt(2.0);
    inputs.push_back(static_cast<float>(x0 + shift));
    inputs.push_back(static_cast<float>(x1 + shift));
    labels.push_back(label);
  }
  return {test::f32(inputs, {n, 2}), test::i64(labels, {n})};
}

std::shared_ptr<data::Dataset> blob_dataset(int64_t n, uint32_t seed) {
  Blobs blobs = make_blobs(n, seed);
  return std::make_shared<data::TensorDataset>(blobs.inputs, blobs.labels);
}

nn::Sequential make_mlp(uint64_t seed, double dropout = 0.0) {
  manual_seed(seed);
  if (dropout > 0.0) {
    return nn::Sequential(nn::Linear(2, 16), nn::ReLU(), nn::Dropout(dropout), nn::Linear(16, 2));
  }
  return nn::Sequential(nn::Linear(2, 16), nn::ReLU(), nn::Linear(16, 2));
}

// Records the model's mode and grad mode at every forward call.
class ModeProbe : public nn::Module {
 public:
  ModeProbe() : Module("ModeProbe") { linear = register_module("linear", std::make_shared<nn::Linear>(2, 2)); }
  Tensor forward(const Tensor& input) override {
    calls.push_back({is_training(), GradMode::is_enabled()});
    return (*linear)(input);
  }
  struct Call {
    bool training;
    bool grad_enabled;
  };
  std::shared_ptr<nn::Linear> linear;
  std::vector<Call> calls;
};

// Counts the batches and examples fit() trains on, per epoch.
class BatchCounter : public Callback {
 public:
  void on_epoch_begin(TrainContext& context) override {
    batches.push_back(0);
    samples.push_back(0);
    steps = context.steps;
    validation_size = context.validation ? context.validation->size() : 0;
  }
  void on_batch_end(TrainContext& context) override {
    ++batches.back();
    samples.back() += context.batch_samples;
    EXPECT_TRUE(context.batch_loss.defined());
    EXPECT_FALSE(context.batch_loss.requires_grad());
  }
  std::vector<int64_t> batches, samples;
  int64_t steps = 0;
  int64_t validation_size = 0;
};

TEST(TrainFit, ReducesLossOnASeparableProblem) {
  nn::Sequential model = make_mlp(1);
  optim::Adam optimizer(model.parameters(), {.lr = 0.05});
  History history = fit(model, nn::CrossEntropyLoss{}, optimizer, blob_dataset(256, 11),
                        {.epochs = 15, .batch_size = 32, .seed = 3, .metrics = {"accuracy"},
                         .verbose = Verbosity::Silent});
  ASSERT_EQ(history.size(), 15u);
  const std::vector<double> loss = history.series("loss");
  EXPECT_LT(loss.back(), 0.25 * loss.front());
  EXPECT_GE(history.back().at("accuracy"), 0.97);
  EXPECT_TRUE(model.is_training());
  EXPECT_EQ(history.epochs().front(), 0);
  EXPECT_EQ(history.epochs().back(), 14);
  // What every epoch records without validation.
  EXPECT_EQ(history.names(), (std::vector<std::string>{"accuracy", "loss", "lr", "seconds"}));
  for (double lr : history.series("lr")) EXPECT_EQ(lr, 0.05);
  for (double seconds : history.series("seconds")) EXPECT_GE(seconds, 0.0);
  expect_error([&] { (void)history.series("val_loss"); },
               {"History::series", "val_loss", "accuracy, loss, lr, seconds"});
}

TEST(TrainFit, ValidationFractionSplitsOffTheTrainingSet) {
  nn::Sequential model = make_mlp(2);
  optim::SGD optimizer(model.parameters(), {.lr = 0.1});
  auto counter = std::make_shared<BatchCounter>();
  History history = fit(model, nn::CrossEntropyLoss{}, optimizer, blob_dataset(100, 12),
                        {.epochs = 2, .batch_size = 16, .validation_fraction = 0.25,
                         .metrics = {"accuracy"}, .callbacks = {counter},
                         .verbose = Verbosity::Silent});
  EXPECT_EQ(counter->validation_size, 25);
  EXPECT_EQ(counter->steps, 5);  // ceil(75 / 16)
  EXPECT_EQ(counter->batches, (std::vector<int64_t>{5, 5}));
  EXPECT_EQ(counter->samples, (std::vector<int64_t>{75, 75}));
  for (const char* name : {"val_loss", "val_accuracy", "loss", "accuracy"}) {
    EXPECT_TRUE(history.contains(name)) << name;
  }
}

TEST(TrainFit, ValidationNumbersMatchEvaluate) {
  nn::Sequential model = make_mlp(3);
  optim::Adam optimizer(model.parameters(), {.lr = 0.01});
  auto validation = blob_dataset(40, 13);
  History history = fit(model, nn::CrossEntropyLoss{}, optimizer, blob_dataset(120, 14),
                        {.epochs = 2, .batch_size = 16, .validation = validation,
                         .metrics = {"accuracy", "top1"}, .verbose = Verbosity::Silent});
  // The last epoch validated the weights fit() ends with, in the same batches.
  const Logs logs = evaluate(model, nn::CrossEntropyLoss{}, validation,
                             {.batch_size = 16, .metrics = {"accuracy", "top1"}});
  EXPECT_EQ(history.back().at("val_loss"), logs.at("loss"));
  EXPECT_EQ(history.back().at("val_accuracy"), logs.at("accuracy"));
  EXPECT_EQ(history.back().at("val_top1"), logs.at("top1"));
  EXPECT_EQ(logs.at("accuracy"), logs.at("top1"));  // top-1 of 2 classes is the accuracy
}

TEST(TrainFit, BackgroundWorkersGiveTheSameHistory) {
  auto run = [](int64_t workers) {
    nn::Sequential model = make_mlp(10);
    optim::Adam optimizer(model.parameters(), {.lr = 0.01});
    History history = fit(model, nn::CrossEntropyLoss{}, optimizer, blob_dataset(96, 22),
                          {.epochs = 3, .batch_size = 16, .seed = 5, .workers = workers,
                           .validation_fraction = 0.25, .metrics = {"accuracy"},
                           .verbose = Verbosity::Silent});
    return std::vector<std::vector<double>>{history.series("loss"), history.series("accuracy"),
                                            history.series("val_loss")};
  };
  EXPECT_EQ(run(0), run(2));
}

TEST(TrainFit, TrainsInTrainModeAndValidatesInEvalModeWithoutTape) {
  manual_seed(4);
  ModeProbe model;
  optim::SGD optimizer(model.parameters(), {.lr = 0.1});
  Blobs blobs = make_blobs(12, 15);
  auto dataset = std::make_shared<data::TensorDataset>(blobs.inputs, blobs.labels);
  fit(model, nn::CrossEntropyLoss{}, optimizer, dataset,
      {.epochs = 1, .batch_size = 4, .shuffle = false, .validation = dataset,
       .verbose = Verbosity::Silent});
  ASSERT_EQ(model.calls.size(), 6u);  // 3 training batches, then 3 validation batches
  for (size_t i = 0; i < 3; ++i) {
    EXPECT_TRUE(model.calls[i].training) << i;
    EXPECT_TRUE(model.calls[i].grad_enabled) << i;
  }
  for (size_t i = 3; i < 6; ++i) {
    EXPECT_FALSE(model.calls[i].training) << i;
    EXPECT_FALSE(model.calls[i].grad_enabled) << i;
  }
  EXPECT_TRUE(model.is_training());
  EXPECT_TRUE(GradMode::is_enabled());
}

TEST(TrainFit, MetricsByFactoryAndPrototype) {
  nn::Sequential model = make_mlp(5);
  optim::SGD optimizer(model.parameters(), {.lr = 0.1});
  History history = fit(
      model, nn::CrossEntropyLoss{}, optimizer, blob_dataset(32, 16),
      {.epochs = 1, .batch_size = 8,
       .metrics = {[] { return std::make_unique<Accuracy>(0.5, "my_accuracy"); },
                   std::make_shared<ZeroOneError>()},
       .verbose = Verbosity::Silent});
  const Logs& logs = history.back();
  EXPECT_DOUBLE_EQ(logs.at("my_accuracy") + logs.at("zero_one_error"), 1.0);
}

TEST(TrainFit, RejectsInvalidOptions) {
  nn::Sequential model = make_mlp(6);
  optim::SGD optimizer(model.parameters(), {.lr = 0.1});
  auto dataset = blob_dataset(16, 17);
  const nn::CrossEntropyLoss loss;
  auto run = [&](const FitOptions& options) {
    return [&, options] { fit(model, loss, optimizer, dataset, options); };
  };
  expect_error(run({.epochs = 0}), {"fit", "epochs", "at least 1", "got 0"});
  expect_error(run({.batch_size = 0}), {"fit", "batch_size", "got 0"});
  expect_error(run({.validation_fraction = 1.0}), {"fit", "validation_fraction", "[0, 1)", "got 1"});
  expect_error(run({.validation_fraction = -0.5}), {"fit", "validation_fraction", "-0.5"});
  expect_error(run({.validation = dataset, .validation_fraction = 0.2}),
               {"fit", "not both"});
  expect_error(run({.epochs = 3, .initial_epoch = 3}), {"fit", "initial_epoch", "[0, epochs)"});
  expect_error(run({.metrics = {"accurcy"}}), {"accurcy"});
  expect_error(run({.metrics = {"accuracy", "acc", "accuracy"}}), {"fit", "\"accuracy\""});
  expect_error(run({.validation_fraction = 0.99}), {"fit", "validation_fraction", "16 examples"});
  expect_error(run({.batch_size = 32, .drop_last = true}), {"fit", "no batch"});
  expect_error([&] { fit(model, loss, optimizer, nullptr, {}); }, {"fit", "null"});
  expect_error(run({.device = Device(DeviceType::CUDA)}),
               {"fit", "the model is on cpu but device is cuda:0", "model.to"});
  // A loss that is not a scalar.
  expect_error(
      [&] {
        fit(model, [](const Tensor& output, const Tensor&) { return output; }, optimizer,
            dataset, {.verbose = Verbosity::Silent});
      },
      {"fit", "loss function returned shape", "scalar"});
}

TEST(TrainFit, EvaluateAndPredictRunInEvalModeWithoutTape) {
  nn::Sequential model = make_mlp(7, /*dropout=*/0.5);
  Blobs blobs = make_blobs(40, 18);
  auto dataset = std::make_shared<data::TensorDataset>(blobs.inputs, blobs.labels);
  model.train(true);
  const Tensor first = predict(model, dataset, {.batch_size = 16});
  const Tensor second = predict(model, dataset, {.batch_size = 7});
  const Tensor from_tensor = predict(model, blobs.inputs, {.batch_size = 9});
  EXPECT_EQ(first.shape(), (Shape{40, 2}));
  EXPECT_FALSE(first.requires_grad());
  EXPECT_EQ(first.grad_fn(), nullptr);
  // Dropout is inactive in eval mode: every call gives the same outputs, in any batching.
  EXPECT_EQ(first.to_vector<float>(), second.to_vector<float>());
  EXPECT_EQ(first.to_vector<float>(), from_tensor.to_vector<float>());
  EXPECT_TRUE(model.is_training());  // the mode is restored

  model.eval();
  Tensor whole;
  {
    NoGradGuard no_grad;
    whole = model(blobs.inputs);
  }
  const Logs logs = evaluate(model, nn::CrossEntropyLoss{}, dataset,
                             {.batch_size = 10, .metrics = {"accuracy"}});
  EXPECT_FALSE(model.is_training());
  // Equal batches: the batch-size-weighted mean is the mean over all examples (f32 sums).
  EXPECT_NEAR(logs.at("loss"), nn::CrossEntropyLoss{}(whole, blobs.labels).item<double>(), 1e-6);
  EXPECT_DOUBLE_EQ(logs.at("accuracy"), accuracy(whole, blobs.labels));
  // Without a loss function only the metrics are reported.
  const Logs metrics_only = evaluate(model, nullptr, dataset, {.metrics = {"accuracy"}});
  EXPECT_FALSE(metrics_only.contains("loss"));
  EXPECT_TRUE(metrics_only.contains("accuracy"));

  expect_error([&] { (void)predict(model, dataset, {.batch_size = 0}); }, {"predict", "batch_size"});
  expect_error([&] { (void)evaluate(model, nullptr, dataset, {.metrics = {"nope"}}); }, {"nope"});
}

TEST(TrainFit, LinesModePrintsOneLinePerEpoch) {
  nn::Sequential model = make_mlp(8);
  optim::SGD optimizer(model.parameters(), {.lr = 0.1});
  std::ostringstream output;
  fit(model, nn::CrossEntropyLoss{}, optimizer, blob_dataset(48, 19),
      {.epochs = 3, .batch_size = 16, .validation_fraction = 0.25, .metrics = {"accuracy"},
       .verbose = Verbosity::Lines, .output = &output});
  const std::string text = output.str();
  EXPECT_EQ(text.find('\r'), std::string::npos);
  std::istringstream lines(text);
  std::string line;
  int count = 0;
  while (std::getline(lines, line)) {
    ++count;
    EXPECT_EQ(line.rfind("Epoch " + std::to_string(count) + "/3 - 3 steps - ", 0), 0u) << line;
    for (const char* part : {" - loss ", " - accuracy ", " - val_loss ", " - val_accuracy ",
                             " - lr 0.1", "samples/s"}) {
      EXPECT_NE(line.find(part), std::string::npos) << part << " in: " << line;
    }
    // Training numbers come before validation ones.
    EXPECT_LT(line.find(" - accuracy "), line.find(" - val_loss "));
  }
  EXPECT_EQ(count, 3);

  std::ostringstream silent;
  fit(model, nn::CrossEntropyLoss{}, optimizer, blob_dataset(16, 20),
      {.epochs = 1, .verbose = Verbosity::Silent, .output = &silent});
  EXPECT_TRUE(silent.str().empty());
  // Auto with a stream that is not std::cout is Lines.
  std::ostringstream automatic;
  fit(model, nn::CrossEntropyLoss{}, optimizer, blob_dataset(16, 20),
      {.epochs = 1, .output = &automatic});
  EXPECT_EQ(automatic.str().rfind("Epoch 1/1 - ", 0), 0u);
}

TEST(TrainFit, BarModeRedrawsInPlace) {
  nn::Sequential model = make_mlp(9);
  optim::SGD optimizer(model.parameters(), {.lr = 0.1});
  std::ostringstream output;
  fit(model, nn::CrossEntropyLoss{}, optimizer, blob_dataset(64, 21),
      {.epochs = 2, .batch_size = 8, .metrics = {"accuracy"}, .verbose = Verbosity::Bar,
       .output = &output});
  const std::string text = output.str();
  EXPECT_EQ(text.front(), '\r');
  EXPECT_EQ(text.back(), '\n');
  EXPECT_NE(text.find("Epoch 1/2 ["), std::string::npos);
  EXPECT_NE(text.find("] 8/8"), std::string::npos);
  EXPECT_NE(text.find("Epoch 2/2 [========================] 8/8"), std::string::npos);
  // Two epochs end two lines.
  EXPECT_EQ(std::count(text.begin(), text.end(), '\n'), 2);
}

TEST(TrainFit, ProgressBarRedrawsAtMostTenTimesASecond) {
  double now = 0.0;
  std::ostringstream output;
  detail::Progress progress(output, Verbosity::Bar, [&] { return now; });
  progress.epoch_begin(0, 1, 1000);
  int reads = 0;
  const auto logs = [&] {
    ++reads;
    return Logs{{"loss", 0.5}};
  };
  // 1000 batches over 2 seconds: 1 ms apart.
  for (int64_t step = 0; step < 1000; ++step) {
    now = 0.002 * static_cast<double>(step + 1);
    progress.batch_end(step, (step + 1) * 4, logs);
  }
  // The first batch, then one every 0.1 s of the 2 s; the last batch is left to epoch_end.
  EXPECT_LE(progress.draws(), 21);
  EXPECT_GE(progress.draws(), 19);
  EXPECT_EQ(reads, progress.draws());  // numbers are read only to draw
  progress.epoch_end({{"loss", 0.25}, {"seconds", 2.0}});
  const std::string text = output.str();
  EXPECT_NE(text.find("ETA "), std::string::npos);
  EXPECT_NE(text.find("2000 samples/s"), std::string::npos);  // 4000 samples in 2 s
  EXPECT_NE(text.find("] 1000/1000  2.0s  2000 samples/s  loss 0.2500"), std::string::npos);
}

TEST(TrainFit, PublicProgressBarForHandWrittenLoops) {
  std::ostringstream lines;
  ProgressBar log_bar(4, {.epochs = 2, .verbose = Verbosity::Lines, .output = &lines});
  for (int64_t epoch = 0; epoch < 2; ++epoch) {
    log_bar.epoch_begin(epoch);
    for (int64_t step = 0; step < 4; ++step) log_bar.update(step, 8);
    log_bar.epoch_end({{"loss", 0.5 / static_cast<double>(epoch + 1)}, {"seconds", 1.0}});
  }
  log_bar.message("done");
  EXPECT_EQ(lines.str(),
            "Epoch 1/2 - 4 steps - 1.0s - 32 samples/s - loss 0.5000\n"
            "Epoch 2/2 - 4 steps - 1.0s - 32 samples/s - loss 0.2500\ndone\n");
  std::ostringstream drawn;
  ProgressBar bar(3, {.verbose = Verbosity::Bar, .output = &drawn});
  bar.epoch_begin(0);
  bar.update(0, 2, [] { return Logs{{"loss", 1.5}}; });
  EXPECT_NE(drawn.str().find("\rEpoch 1/1 ["), std::string::npos);
  EXPECT_NE(drawn.str().find("] 1/3  loss 1.5000"), std::string::npos);
  bar.epoch_end({{"loss", 1.0}});
  EXPECT_EQ(drawn.str().back(), '\n');
  test::expect_error([] { ProgressBar bad(5, {.epochs = 0}); }, {"ProgressBar", "epochs"});
}

TEST(TrainFit, FormatsValuesAndDurations) {
  EXPECT_EQ(detail::format_value("loss", 0.123456), "0.1235");
  EXPECT_EQ(detail::format_value("loss", 2.5e-5), "2.500e-05");
  EXPECT_EQ(detail::format_value("lr", 0.001), "0.001");
  EXPECT_EQ(detail::format_value("loss", std::nan("")), "nan");
  EXPECT_EQ(detail::format_duration(65.0), "1:05");
  EXPECT_EQ(detail::format_duration(3725.0), "1:02:05");
}

}  // namespace
}  // namespace strata::train
