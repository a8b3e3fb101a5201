// Evaluation metrics, as Keras and torchmetrics define them: functions of a batch, and
// streaming Metric objects that a training loop feeds batch by batch.
// Rules kept:
//   - the work runs on the inputs' device; only final numbers go to the host (a streaming
//     metric keeps its running sums on the device and reads them in value());
//   - the per-class scores follow scikit-learn (rows of a confusion matrix are the true class,
//     columns the predicted one) with zero_division = 0: a ratio whose denominator is 0 (a class
//     never predicted, or never present) counts as 0;
//   - a metric that has seen no sample has the value NaN (as PyTorch's mean of nothing).
//
// What `output` and `target` may be, for the classification metrics:
//   output [N, C] floating scores (logits or probabilities), C >= 2: the class is the argmax;
//     target int64 [N] class indices, or floating [N, C] one-hot / probabilities (argmax);
//   output [N] or [N, 1] floating (binary): class 1 where output > threshold (0.5 for
//     probabilities; pass 0 for logits); target [N] or [N, 1] of 0/1 values, any dtype;
//   output int64 [N] predicted labels; target int64 [N].
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "strata/device.h"
#include "strata/tensor.h"

namespace strata::distributed {
class ProcessGroup;
}

namespace strata::train {

// ---- functions of one batch ---------------------------------------------------------------

// Fraction of samples whose predicted class equals the target.
double accuracy(const Tensor& output, const Tensor& target, double threshold = 0.5);

// Fraction of samples whose target class is among the k highest scores of output [N, C]
// (target int64 [N]). NOTE: a class that ties with the k-th highest score counts as in the top
// k (as tf.math.in_top_k), so the result never depends on how a sort orders equal scores.
double top_k_accuracy(const Tensor& output, const Tensor& target, int64_t k = 5);

// 1 - accuracy: the fraction misclassified.
double zero_one_error(const Tensor& output, const Tensor& target, double threshold = 0.5);

// int64 [C, C] on the inputs' device: entry [i, j] counts the samples of true class i
// predicted as class j (scikit-learn's orientation). Binary outputs need num_classes == 2.
Tensor confusion_matrix(const Tensor& output, const Tensor& target, int64_t num_classes,
                        double threshold = 0.5);

// Mean over all elements of (output - target)^2 and of |output - target|; the shapes must
// match (after dropping size-1 dims, so [N, 1] meets [N]).
double mean_squared_error(const Tensor& output, const Tensor& target);
double mean_absolute_error(const Tensor& output, const Tensor& target);
inline double mse(const Tensor& output, const Tensor& target) {
  return mean_squared_error(output, target);
}
inline double mae(const Tensor& output, const Tensor& target) {
  return mean_absolute_error(output, target);
}

// ---- scores from a confusion matrix -------------------------------------------------------

// How per-class scores become one number (scikit-learn's `average`):
//   Macro: the plain mean over classes; Micro: from the summed counts (for single-label data
//   micro precision = micro recall = micro F1 = accuracy); Weighted: the mean weighted by each
//   class's support (its number of true samples).
enum class Average { Macro, Micro, Weighted };

// Per-class precision tp / (tp + fp), recall tp / (tp + fn), F1 2 tp / (2 tp + fp + fn), and
// support tp + fn, from a square confusion matrix (any dtype and device; it is read to the
// host, C * C numbers). A zero denominator gives 0.
struct ClassScores {
  std::vector<double> precision;
  std::vector<double> recall;
  std::vector<double> f1;
  std::vector<int64_t> support;
};
ClassScores class_scores(const Tensor& confusion);

double precision(const Tensor& confusion, Average average = Average::Macro);
double recall(const Tensor& confusion, Average average = Average::Macro);
double f1_score(const Tensor& confusion, Average average = Average::Macro);

// ---- streaming metrics --------------------------------------------------------------------
//
//   train::Accuracy accuracy;
//   for (auto& batch : loader) accuracy.update(model(batch.input), batch.target);
//   std::cout << accuracy.name() << " " << accuracy.value() << "\n";
//
// update() takes the same inputs as the functions above, one batch at a time; value() is the
// metric over every sample since the last reset() (NaN before the first update).
class Metric {
 public:
  virtual ~Metric() = default;
  virtual void reset() = 0;
  virtual void update(const Tensor& output, const Tensor& target) = 0;
  virtual double value() const = 0;
  // The key in a training history and in logs: "accuracy", "mse", ...
  const std::string& name() const { return name_; }
  // A new metric of the same kind and settings, with nothing accumulated (a training loop
  // keeps one for the training batches and one for validation).
  virtual std::unique_ptr<Metric> clone() const = 0;
  // Data-parallel training: replaces the running sums with their sums over every rank of
  // `group`, so that value() is the metric of every rank's samples together. Every rank calls
  // it, at the same point; the sums travel as tensors on `device` (the training device). The
  // built-in metrics implement it; the default throws strata::Error naming the metric (a
  // custom metric used with FitOptions::process_group overrides it).
  virtual void all_reduce(distributed::ProcessGroup& group, Device device);

 protected:
  explicit Metric(std::string name) : name_(std::move(name)) {}
  Metric(const Metric&) = default;
  Metric& operator=(const Metric&) = default;

 private:
  std::string name_;
};

// Correct / seen, kept as a device counter.
class Accuracy : public Metric {
 public:
  explicit Accuracy(double threshold = 0.5, std::string name = "accuracy");
  void reset() override;
  void update(const Tensor& output, const Tensor& target) override;
  double value() const override;
  std::unique_ptr<Metric> clone() const override;
  void all_reduce(distributed::ProcessGroup& group, Device device) override;

 private:
  double threshold_;
  Tensor correct_;  // int64 scalar on the inputs' device; undefined before the first update
  int64_t seen_ = 0;
};

// As top_k_accuracy, streamed. The default name is "top<k>_accuracy".
class TopKAccuracy : public Metric {
 public:
  explicit TopKAccuracy(int64_t k = 5, std::string name = "");
  void reset() override;
  void update(const Tensor& output, const Tensor& target) override;
  double value() const override;
  std::unique_ptr<Metric> clone() const override;
  void all_reduce(distributed::ProcessGroup& group, Device device) override;
  int64_t k() const { return k_; }

 private:
  int64_t k_;
  Tensor correct_;
  int64_t seen_ = 0;
};

// 1 - Accuracy.
class ZeroOneError : public Metric {
 public:
  explicit ZeroOneError(double threshold = 0.5, std::string name = "zero_one_error");
  void reset() override;
  void update(const Tensor& output, const Tensor& target) override;
  double value() const override;
  std::unique_ptr<Metric> clone() const override;
  void all_reduce(distributed::ProcessGroup& group, Device device) override;

 private:
  Accuracy accuracy_;
};

// Mean of (output - target)^2 over every element seen; sums kept in float64 on the device.
class MeanSquaredError : public Metric {
 public:
  explicit MeanSquaredError(std::string name = "mse");
  void reset() override;
  void update(const Tensor& output, const Tensor& target) override;
  double value() const override;
  std::unique_ptr<Metric> clone() const override;
  void all_reduce(distributed::ProcessGroup& group, Device device) override;

 private:
  Tensor sum_;
  int64_t seen_ = 0;
};

// Mean of |output - target| over every element seen.
class MeanAbsoluteError : public Metric {
 public:
  explicit MeanAbsoluteError(std::string name = "mae");
  void reset() override;
  void update(const Tensor& output, const Tensor& target) override;
  double value() const override;
  std::unique_ptr<Metric> clone() const override;
  void all_reduce(distributed::ProcessGroup& group, Device device) override;

 private:
  Tensor sum_;
  int64_t seen_ = 0;
};

// The confusion matrix over every sample seen; value() is the accuracy it implies, and the
// per-class scores come from matrix().
class ConfusionMatrix : public Metric {
 public:
  explicit ConfusionMatrix(int64_t num_classes, double threshold = 0.5,
                           std::string name = "confusion_accuracy");
  void reset() override;
  void update(const Tensor& output, const Tensor& target) override;
  double value() const override;
  std::unique_ptr<Metric> clone() const override;
  void all_reduce(distributed::ProcessGroup& group, Device device) override;

  int64_t num_classes() const { return num_classes_; }
  // int64 [C, C] on the CPU (zeros before the first update).
  Tensor matrix() const;
  ClassScores scores() const { return class_scores(matrix()); }

 private:
  int64_t num_classes_;
  double threshold_;
  Tensor counts_;  // int64 [C, C] on the inputs' device
};

// Precision, recall and F1 averaged over classes, each from its own confusion matrix.
// ConfusionScore keeps the matrix; each subclass says which score it reads from it.
class ConfusionScore : public Metric {
 public:
  void reset() override { confusion_.reset(); }
  void update(const Tensor& output, const Tensor& target) override;
  double value() const override;
  void all_reduce(distributed::ProcessGroup& group, Device device) override {
    confusion_.all_reduce(group, device);
  }

 protected:
  ConfusionScore(int64_t num_classes, Average average, std::string name)
      : Metric(std::move(name)), confusion_(num_classes), average_(average) {}
  // The score of a confusion matrix (int64 [C, C] on the CPU, not empty).
  virtual double score(const Tensor& matrix, Average average) const = 0;
  int64_t num_classes() const { return confusion_.num_classes(); }
  Average average() const { return average_; }

 private:
  ConfusionMatrix confusion_;
  Average average_;
};

class Precision : public ConfusionScore {
 public:
  explicit Precision(int64_t num_classes, Average average = Average::Macro,
                     std::string name = "precision")
      : ConfusionScore(num_classes, average, std::move(name)) {}
  std::unique_ptr<Metric> clone() const override;

 protected:
  double score(const Tensor& matrix, Average average) const override;
};

class Recall : public ConfusionScore {
 public:
  explicit Recall(int64_t num_classes, Average average = Average::Macro,
                  std::string name = "recall")
      : ConfusionScore(num_classes, average, std::move(name)) {}
  std::unique_ptr<Metric> clone() const override;

 protected:
  double score(const Tensor& matrix, Average average) const override;
};

class F1Score : public ConfusionScore {
 public:
  explicit F1Score(int64_t num_classes, Average average = Average::Macro,
                   std::string name = "f1")
      : ConfusionScore(num_classes, average, std::move(name)) {}
  std::unique_ptr<Metric> clone() const override;

 protected:
  double score(const Tensor& matrix, Average average) const override;
};

// A metric from its name, as Keras's metrics=["accuracy"]; the metric keeps `name` as its own.
// Known: "accuracy" / "acc", "top<k>" / "top<k>_accuracy" / "top_<k>_accuracy" (top5, ...),
// "zero_one_error", "mse" / "mean_squared_error", "mae" / "mean_absolute_error", and, with
// num_classes > 0, "precision", "recall", "f1" (macro averages). Throws strata::Error
// listing the known names otherwise.
std::unique_ptr<Metric> make_metric(const std::string& name, int64_t num_classes = 0);

}  // namespace strata::train
