// train/metrics: the batch functions against hand-computed values, the per-class scores
// against scikit-learn's definitions (zero_division = 0) computed here on the host, the
// streaming metrics against the batch functions, and the errors.
#include <cmath>
#include <limits>
#include <string>
#include <vector>

#include "strata/train/metrics.h"
#include "test_util.h"

namespace strata {
namespace {

using test::f32;
using test::f64;
using test::i64;

// Four samples, three classes: predicted 0, 1, 0, 1 against true 0, 1, 2, 2.
Tensor small_logits() {
  return f32({2, 1, 0,  //
              0, 3, 1,  //
              1, 0, 0.5f,  //
              0, 0.2f, 0.1f},
             {4, 3});
}
Tensor small_targets() { return i64({0, 1, 2, 2}, {4}); }

TEST(TrainMetrics, AccuracyFromScoresLabelsAndOneHot) {
  EXPECT_DOUBLE_EQ(train::accuracy(small_logits(), small_targets()), 0.5);
  EXPECT_DOUBLE_EQ(train::zero_one_error(small_logits(), small_targets()), 0.5);
  // Predicted labels against labels.
  EXPECT_DOUBLE_EQ(train::accuracy(i64({0, 1, 0, 1}), small_targets()), 0.5);
  // One-hot targets (Keras's categorical accuracy).
  const Tensor one_hot_targets = f32({1, 0, 0, 0, 1, 0, 0, 0, 1, 0, 0, 1}, {4, 3});
  EXPECT_DOUBLE_EQ(train::accuracy(small_logits(), one_hot_targets), 0.5);
  // Gradients are not tracked: a leaf that requires grad is fine.
  Tensor scores = small_logits();
  scores.set_requires_grad(true);
  EXPECT_DOUBLE_EQ(train::accuracy(scores, small_targets()), 0.5);
}

TEST(TrainMetrics, BinaryAccuracyUsesTheThreshold) {
  const Tensor probabilities = f32({0.9f, 0.2f, 0.6f, 0.4f}, {4});
  const Tensor targets = f32({1, 0, 0, 1}, {4});
  EXPECT_DOUBLE_EQ(train::accuracy(probabilities, targets), 0.5);  // predicted 1 0 1 0
  EXPECT_DOUBLE_EQ(train::accuracy(probabilities, targets, 0.3), 0.75);  // 1 0 1 1
  // [N, 1] outputs and int64 targets.
  EXPECT_DOUBLE_EQ(train::accuracy(probabilities.reshape({4, 1}), i64({1, 0, 0, 1}, {4, 1})),
                   0.5);
  // Logits with threshold 0.
  EXPECT_DOUBLE_EQ(train::accuracy(f64({2.0, -1.0, -0.5}), f64({1, 0, 0}), 0.0), 1.0);
  EXPECT_THROW(train::accuracy(probabilities, f32({1, 0, 2, 1})), Error);
  const Tensor binary_confusion = train::confusion_matrix(probabilities, targets, 2);
  test::expect_tensor(binary_confusion, DType::Int64, {2, 2}, {1, 1, 1, 1});
}

TEST(TrainMetrics, TopKCountsTiesInFavour) {
  EXPECT_DOUBLE_EQ(train::top_k_accuracy(small_logits(), small_targets(), 1), 0.5);
  EXPECT_DOUBLE_EQ(train::top_k_accuracy(small_logits(), small_targets(), 2), 1.0);
  EXPECT_DOUBLE_EQ(train::top_k_accuracy(small_logits(), small_targets(), 10), 1.0);
  // Row 0: target 1 ties with class 0 for the highest score; row 1: target 2 is third.
  const Tensor tied = f32({1, 1, 0, 3, 2, 1}, {2, 3});
  EXPECT_DOUBLE_EQ(train::top_k_accuracy(tied, i64({1, 2}), 1), 0.5);
  EXPECT_DOUBLE_EQ(train::top_k_accuracy(tied, i64({1, 2}), 2), 0.5);
  EXPECT_DOUBLE_EQ(train::top_k_accuracy(tied, i64({1, 2}), 3), 1.0);
  EXPECT_THROW(train::top_k_accuracy(tied, i64({1, 2}), 0), Error);
}

TEST(TrainMetrics, ConfusionMatrixAndClassScores) {
  const Tensor confusion = train::confusion_matrix(small_logits(), small_targets(), 3);
  // Rows are the true class.
  test::expect_tensor(confusion, DType::Int64, {3, 3}, {1, 0, 0, 0, 1, 0, 1, 1, 0});
  const train::ClassScores scores = train::class_scores(confusion);
  // Class 2 is never predicted: its precision is 0/0, which counts as 0.
  EXPECT_EQ(scores.precision, (std::vector<double>{0.5, 0.5, 0.0}));
  EXPECT_EQ(scores.recall, (std::vector<double>{1.0, 1.0, 0.0}));
  EXPECT_DOUBLE_EQ(scores.f1[0], 2.0 / 3.0);
  EXPECT_DOUBLE_EQ(scores.f1[1], 2.0 / 3.0);
  EXPECT_DOUBLE_EQ(scores.f1[2], 0.0);
  EXPECT_EQ(scores.support, (std::vector<int64_t>{1, 1, 2}));
  using train::Average;
  EXPECT_DOUBLE_EQ(train::precision(confusion, Average::Macro), 1.0 / 3.0);
  EXPECT_DOUBLE_EQ(train::recall(confusion, Average::Macro), 2.0 / 3.0);
  EXPECT_DOUBLE_EQ(train::f1_score(confusion, Average::Macro), 4.0 / 9.0);
  EXPECT_DOUBLE_EQ(train::precision(confusion, Average::Weighted), 0.25);
  EXPECT_DOUBLE_EQ(train::recall(confusion, Average::Weighted), 0.5);
  EXPECT_DOUBLE_EQ(train::f1_score(confusion, Average::Weighted), 1.0 / 3.0);
  for (const auto score : {train::precision(confusion, Average::Micro),
                           train::recall(confusion, Average::Micro),
                           train::f1_score(confusion, Average::Micro)}) {
    EXPECT_DOUBLE_EQ(score, 0.5);  // micro = accuracy for single-label data
  }
  // An empty class (no sample, never predicted) scores 0 everywhere.
  const train::ClassScores empty = train::class_scores(i64({3, 1, 0, 0}, {2, 2}));
  EXPECT_EQ(empty.precision[1], 0.0);
  EXPECT_EQ(empty.recall[1], 0.0);
  EXPECT_EQ(empty.f1[1], 0.0);
  EXPECT_THROW(train::class_scores(i64({1, 2, 3}, {3})), Error);
}

// scikit-learn's definitions, on the host, for a random problem.
TEST(TrainMetrics, RandomProblemMatchesHostReference) {
  const int64_t n = 57, classes = 5;
  const Tensor logits = test::random_f32({n, classes}, -2, 2, 11);
  std::vector<int64_t> targets(static_cast<size_t>(n));
  const auto raw = test::uniform_values(static_cast<size_t>(n), 0, classes, 12);
  for (size_t i = 0; i < targets.size(); ++i) targets[i] = static_cast<int64_t>(raw[i]);
  const auto scores = logits.to_vector<double>();
  std::vector<std::vector<double>> counts(classes, std::vector<double>(classes, 0.0));
  for (int64_t i = 0; i < n; ++i) {
    int64_t best = 0;
    for (int64_t c = 1; c < classes; ++c) {
      const auto score = [&](int64_t k) { return scores[static_cast<size_t>(i * classes + k)]; };
      if (score(c) > score(best)) best = c;
    }
    counts[static_cast<size_t>(targets[static_cast<size_t>(i)])][static_cast<size_t>(best)] += 1;
  }
  const Tensor confusion = train::confusion_matrix(logits, i64(targets, {n}), classes);
  std::vector<double> expected_counts;
  for (const auto& row : counts) {
    expected_counts.insert(expected_counts.end(), row.begin(), row.end());
  }
  test::expect_tensor(confusion, DType::Int64, {classes, classes}, expected_counts);

  double correct = 0, macro_f1 = 0, weighted_recall = 0;
  for (int64_t c = 0; c < classes; ++c) {
    double predicted = 0, actual = 0;
    for (int64_t o = 0; o < classes; ++o) {
      predicted += counts[static_cast<size_t>(o)][static_cast<size_t>(c)];
      actual += counts[static_cast<size_t>(c)][static_cast<size_t>(o)];
    }
    const double tp = counts[static_cast<size_t>(c)][static_cast<size_t>(c)];
    correct += tp;
    const double p = predicted > 0 ? tp / predicted : 0, r = actual > 0 ? tp / actual : 0;
    macro_f1 += (p + r > 0 ? 2 * p * r / (p + r) : 0) / classes;
    weighted_recall += r * actual / n;
  }
  EXPECT_NEAR(train::accuracy(logits, i64(targets, {n})), correct / n, 1e-12);
  EXPECT_NEAR(train::f1_score(confusion), macro_f1, 1e-12);
  EXPECT_NEAR(train::recall(confusion, train::Average::Weighted), weighted_recall, 1e-12);
}

TEST(TrainMetrics, RegressionErrors) {
  const Tensor output = f32({1, 2, 3}, {3});
  const Tensor target = f32({1.5f, 2, 5}, {3});
  EXPECT_NEAR(train::mse(output, target), 4.25 / 3.0, 1e-12);
  EXPECT_NEAR(train::mae(output, target), 2.5 / 3.0, 1e-12);
  // A [N, 1] head against [N] targets.
  EXPECT_NEAR(train::mean_squared_error(output.reshape({3, 1}), target), 4.25 / 3.0, 1e-12);
  EXPECT_THROW(train::mse(output, f32({1, 2}, {2})), Error);
}

TEST(TrainMetrics, StreamingMatchesWholeBatch) {
  const Tensor logits = small_logits(), targets = small_targets();
  train::Accuracy accuracy;
  train::TopKAccuracy top2(2);
  train::ConfusionMatrix confusion(3);
  train::F1Score f1(3);
  train::ZeroOneError error;
  EXPECT_TRUE(std::isnan(accuracy.value()));
  EXPECT_TRUE(std::isnan(confusion.value()));
  for (int64_t start : {0, 1}) {  // batches of 1 and 3 samples
    const int64_t length = start == 0 ? 1 : 3;
    const Tensor batch = logits.narrow(0, start, length);
    const Tensor batch_targets = targets.narrow(0, start, length);
    for (train::Metric* metric :
         std::vector<train::Metric*>{&accuracy, &top2, &confusion, &f1, &error}) {
      metric->update(batch, batch_targets);
    }
  }
  EXPECT_DOUBLE_EQ(accuracy.value(), 0.5);
  EXPECT_DOUBLE_EQ(error.value(), 0.5);
  EXPECT_DOUBLE_EQ(top2.value(), 1.0);
  EXPECT_DOUBLE_EQ(confusion.value(), 0.5);
  EXPECT_DOUBLE_EQ(f1.value(), 4.0 / 9.0);
  test::expect_tensor(confusion.matrix(), DType::Int64, {3, 3}, {1, 0, 0, 0, 1, 0, 1, 1, 0});
  EXPECT_EQ(accuracy.name(), "accuracy");
  EXPECT_EQ(top2.name(), "top2_accuracy");
  EXPECT_EQ(f1.name(), "f1");

  // A clone has the settings and none of the counts.
  const auto fresh = top2.clone();
  EXPECT_EQ(fresh->name(), "top2_accuracy");
  EXPECT_TRUE(std::isnan(fresh->value()));
  fresh->update(logits, targets);
  EXPECT_DOUBLE_EQ(fresh->value(), 1.0);

  accuracy.reset();
  confusion.reset();
  EXPECT_TRUE(std::isnan(accuracy.value()));
  test::expect_tensor(confusion.matrix(), DType::Int64, {3, 3}, std::vector<double>(9, 0.0));

  train::MeanSquaredError mse;
  train::MeanAbsoluteError mae;
  mse.update(f32({1, 2}), f32({1.5f, 2}));
  mse.update(f32({3}), f32({5}));
  mae.update(f32({1, 2}), f32({1.5f, 2}));
  mae.update(f32({3}), f32({5}));
  EXPECT_NEAR(mse.value(), 4.25 / 3.0, 1e-12);
  EXPECT_NEAR(mae.value(), 2.5 / 3.0, 1e-12);
}

TEST(TrainMetrics, MakeMetricByName) {
  EXPECT_EQ(train::make_metric("accuracy")->name(), "accuracy");
  const auto top5 = train::make_metric("top5");
  EXPECT_EQ(top5->name(), "top5");
  EXPECT_EQ(dynamic_cast<train::TopKAccuracy&>(*top5).k(), 5);
  EXPECT_EQ(dynamic_cast<train::TopKAccuracy&>(*train::make_metric("top_3_accuracy")).k(), 3);
  EXPECT_NE(dynamic_cast<train::MeanSquaredError*>(train::make_metric("mse").get()), nullptr);
  EXPECT_NE(dynamic_cast<train::MeanAbsoluteError*>(train::make_metric("mae").get()), nullptr);
  EXPECT_NE(dynamic_cast<train::F1Score*>(train::make_metric("f1", 10).get()), nullptr);
  EXPECT_THROW(train::make_metric("f1"), Error);  // needs the number of classes
  try {
    train::make_metric("accuracyy");
    FAIL() << "expected an error";
  } catch (const Error& error) {
    EXPECT_NE(std::string(error.what()).find("unknown metric \"accuracyy\""), std::string::npos)
        << error.what();
  }
}

TEST(TrainMetrics, ErrorsNameTheFunctionAndValues) {
  try {
    train::accuracy(small_logits(), i64({0, 1, 3, 2}));
    FAIL() << "expected an error";
  } catch (const Error& error) {
    const std::string message = error.what();
    EXPECT_NE(message.find("accuracy"), std::string::npos) << message;
    EXPECT_NE(message.find("class index 3"), std::string::npos) << message;
  }
  EXPECT_THROW(train::accuracy(small_logits(), i64({0, 1, 2})), Error);       // wrong N
  EXPECT_THROW(train::confusion_matrix(small_logits(), small_targets(), 4), Error);  // C
  EXPECT_THROW(train::confusion_matrix(i64({0, 5}), i64({0, 1}), 3), Error);  // label range
  EXPECT_THROW(train::ConfusionMatrix(0), Error);
  EXPECT_TRUE(std::isnan(train::accuracy(f32({}, {0, 3}), i64({}, {0}))));
}

TEST(TrainMetrics, RunsOnCuda) {
  if (!cuda_is_available()) GTEST_SKIP() << "no CUDA device";
  const Tensor logits = small_logits().cuda(), targets = small_targets().cuda();
  EXPECT_DOUBLE_EQ(train::accuracy(logits, targets), 0.5);
  EXPECT_DOUBLE_EQ(train::top_k_accuracy(logits, targets, 2), 1.0);
  const Tensor confusion = train::confusion_matrix(logits, targets, 3);
  EXPECT_TRUE(confusion.device().is_cuda());
  test::expect_tensor(confusion.cpu(), DType::Int64, {3, 3}, {1, 0, 0, 0, 1, 0, 1, 1, 0});
  train::MeanSquaredError mse;
  mse.update(f32({1, 2, 3}).cuda(), f32({1.5f, 2, 5}).cuda());
  EXPECT_NEAR(mse.value(), 4.25 / 3.0, 1e-12);
}

}  // namespace
}  // namespace strata
