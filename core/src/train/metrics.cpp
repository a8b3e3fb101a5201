// Metrics (see train/metrics.h). Every classification metric first turns (output, target) into
// two int64 label vectors on the inputs' device (labels_of), then counts with device ops; the
// host sees the validation reads of index ranges and the final counts, nothing per sample.
// The confusion matrix is one_hot(target)^T · one_hot(predicted) in float64: exact while a
// cell stays below 2^53, and one GEMM on any backend instead of a scatter kernel.
#include "strata/train/metrics.h"

#include <cctype>
#include <cmath>
#include <limits>
#include <optional>
#include <string>

#include "internal.h"
#include "strata/distributed.h"

namespace strata::train {

namespace {

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

struct Labels {
  Tensor predicted;  // int64 [N]
  Tensor target;     // int64 [N]
  // The number of classes the output implies: C for scores [N, C], 2 for binary outputs, none
  // for predicted labels.
  std::optional<int64_t> classes;
};

// Throws unless every value of the int64 vector lies in [0, classes).
void check_label_range(const Tensor& labels, int64_t classes, const char* op, const char* what) {
  if (labels.numel() == 0) return;
  const int64_t lo = min(labels).item<int64_t>(), hi = max(labels).item<int64_t>();
  STRATA_CHECK(lo >= 0 && hi < classes, op, ": ", what, " class index ", lo < 0 ? lo : hi,
               " is out of range for ", classes, " classes (", what, " ",
               detail::describe(labels), ")");
}

bool is_binary_output(const Tensor& output) {
  return is_floating(output.dtype()) &&
         (output.dim() == 1 || (output.dim() == 2 && output.size(1) == 1));
}

Labels labels_of(const Tensor& output_in, const Tensor& target_in, double threshold,
                 const char* op) {
  detail::check_defined(output_in, op, "output");
  detail::check_defined(target_in, op, "target");
  detail::check_same_device(output_in, target_in, op);
  const Tensor output = output_in.detach(), target = target_in.detach();
  const int64_t n = output.dim() >= 1 ? output.size(0) : 0;
  Labels labels;

  if (is_floating(output.dtype()) && output.dim() == 2 && output.size(1) >= 2) {
    // output [N, C] scores
    const int64_t classes = output.size(1);
    labels.classes = classes;
    // argmax rejects an empty tensor; an empty batch simply has no labels.
    const auto argmax_rows = [&](const Tensor& scores) {
      return n == 0 ? zeros({0}, TensorOptions(DType::Int64).device(scores.device()))
                    : argmax(scores, 1);
    };
    labels.predicted = argmax_rows(output);
    if (target.dtype() == DType::Int64) {
      STRATA_CHECK(target.dim() == 1 && target.size(0) == n, op,
                   ": class-index target must be [", n, "] for output ",
                   detail::describe(output), ", got ", detail::describe(target));
      check_label_range(target, classes, op, "target");
      labels.target = target;
    } else {
      STRATA_CHECK(is_floating(target.dtype()) && target.shape() == output.shape(), op,
                   ": target must be int64 [", n, "] class indices or floating ",
                   shape_str(output.shape()), " one-hot rows for output ",
                   detail::describe(output), ", got ", detail::describe(target));
      labels.target = argmax_rows(target);
    }
  } else if (is_binary_output(output)) {
    // output [N] or [N, 1]: one probability (or logit) per sample
    labels.classes = 2;
    STRATA_CHECK(target.numel() == n && (target.dim() == 1 ||
                                         (target.dim() == 2 && target.size(1) == 1)),
                 op, ": a binary output ", detail::describe(output), " needs a target of [", n,
                 "] or [", n, ", 1] zeros and ones, got ", detail::describe(target));
    const Tensor values = detail::convert(target.reshape({n}), DType::Float64);
    if (n > 0) {
      // t * (t - 1) is 0 exactly for 0 and 1 (and not for NaN).
      const int64_t others = sum(ne(mul(values, sub(values, 1.0)), 0.0)).item<int64_t>();
      STRATA_CHECK(others == 0, op, ": a binary target must hold only 0 and 1, but ", others,
                   " of its ", n, " values are something else (target ",
                   detail::describe(target), ")");
    }
    labels.predicted = gt(output.reshape({n}), threshold).to(DType::Int64);
    labels.target = values.to(DType::Int64);
  } else {
    STRATA_CHECK(output.dtype() == DType::Int64 && output.dim() == 1, op,
                 ": output must be floating scores [N, C], a floating binary output [N] or "
                 "[N, 1], or int64 predicted labels [N], got ",
                 detail::describe(output));
    STRATA_CHECK(target.dtype() == DType::Int64 && target.shape() == output.shape(), op,
                 ": predicted labels ", detail::describe(output),
                 " need int64 target labels of the same shape, got ", detail::describe(target));
    labels.predicted = output;
    labels.target = target;
  }
  return labels;
}

// int64 scalar on the device: how many samples are classified correctly.
Tensor count_correct(const Labels& labels) { return sum(eq(labels.predicted, labels.target)); }

// int64 scalar: how many samples have their target among the k highest scores.
Tensor count_top_k(const Tensor& output_in, const Tensor& target_in, int64_t k, const char* op) {
  detail::check_defined(output_in, op, "output");
  detail::check_defined(target_in, op, "target");
  detail::check_same_device(output_in, target_in, op);
  STRATA_CHECK(k >= 1, op, ": k must be at least 1, got ", k);
  const Tensor output = output_in.detach(), target = target_in.detach();
  STRATA_CHECK(is_floating(output.dtype()) && output.dim() == 2, op,
               ": output must be floating scores [N, C], got ", detail::describe(output));
  STRATA_CHECK(target.dtype() == DType::Int64 && target.dim() == 1 &&
                   target.size(0) == output.size(0),
               op, ": target must be int64 class indices [", output.size(0), "] for output ",
               detail::describe(output), ", got ", detail::describe(target));
  check_label_range(target, output.size(1), op, "target");
  if (output.size(0) == 0) return zeros({}, TensorOptions(DType::Int64).device(output.device()));
  // The target is in the top k when fewer than k classes score strictly higher.
  const Tensor target_score = gather(output, 1, target.unsqueeze(1));  // [N, 1]
  const Tensor higher = sum(gt(output, target_score), {1});            // int64 [N]
  return sum(lt(higher, static_cast<double>(k)));
}

// int64 [C, C] on the labels' device.
Tensor count_confusion(const Labels& labels, int64_t num_classes, const char* op) {
  STRATA_CHECK(num_classes >= 1, op, ": num_classes must be at least 1, got ", num_classes);
  STRATA_CHECK(!labels.classes || *labels.classes == num_classes, op, ": the output implies ",
               labels.classes.value_or(0), " classes but num_classes is ", num_classes);
  const TensorOptions int64_on_device =
      TensorOptions(DType::Int64).device(labels.predicted.device());
  if (labels.predicted.numel() == 0) return zeros({num_classes, num_classes}, int64_on_device);
  if (!labels.classes) check_label_range(labels.predicted, num_classes, op, "predicted");
  check_label_range(labels.target, num_classes, op, "target");
  const Tensor truth = one_hot(labels.target, num_classes).to(DType::Float64);         // [N, C]
  const Tensor guess = one_hot(labels.predicted, num_classes).to(DType::Float64);      // [N, C]
  return matmul(truth.t(), guess).to(DType::Int64);
}

// float64 scalar on the device: the sum over all elements of (output - target)^2 or of
// |output - target|; `count` gets the number of elements.
Tensor sum_of_errors(const Tensor& output_in, const Tensor& target_in, bool squared,
                     const char* op, int64_t& count) {
  detail::check_defined(output_in, op, "output");
  detail::check_defined(target_in, op, "target");
  detail::check_same_device(output_in, target_in, op);
  Tensor output = output_in.detach(), target = target_in.detach();
  STRATA_CHECK(is_floating(output.dtype()), op, ": output must be floating, got ",
               detail::describe(output));
  if (output.shape() != target.shape()) {
    // [N, 1] against [N] (a regression head against a vector of targets) is common enough.
    STRATA_CHECK(output.squeeze().shape() == target.squeeze().shape(), op,
                 ": output and target shapes differ: ", detail::describe(output), " vs ",
                 detail::describe(target));
    output = output.squeeze();
    target = target.squeeze();
  }
  count = output.numel();
  const Tensor difference =
      sub(detail::convert(output, DType::Float64), detail::convert(target, DType::Float64));
  return sum(squared ? mul(difference, difference) : abs(difference));
}

// Adds a batch's device scalar to a running one (which may still be undefined).
void accumulate(Tensor& running, const Tensor& batch) {
  running = running.defined() ? add(running, batch.to(running.device())) : batch;
}

// A running device sum (undefined before any update: zero) and a host count, replaced by their
// sums over the ranks of `group`: one all-reduce of [sum, count] in `dtype` on `device`.
void all_reduce_running_sum(distributed::ProcessGroup& group, Device device, DType dtype,
                            Tensor& sum, int64_t& count) {
  NoGradGuard no_grad;
  const TensorOptions options = TensorOptions(dtype).device(device);
  const Tensor local = sum.defined() ? sum.to(device).to(dtype).reshape({1}) : zeros({1}, options);
  Tensor packed = cat({local, full({1}, static_cast<double>(count), options)}, 0).contiguous();
  group.all_reduce(packed, distributed::ReduceOp::Sum).wait();
  sum = packed.narrow(0, 0, 1).reshape({});
  count = static_cast<int64_t>(packed.narrow(0, 1, 1).item<double>());
}

double ratio(double numerator, double denominator) {
  return denominator == 0.0 ? 0.0 : numerator / denominator;
}

double average_of(const std::vector<double>& per_class, const std::vector<int64_t>& support,
                  Average average, double micro) {
  if (average == Average::Micro) return micro;
  double total = 0.0, weights = 0.0;
  for (size_t c = 0; c < per_class.size(); ++c) {
    const double weight = average == Average::Macro ? 1.0 : static_cast<double>(support[c]);
    total += weight * per_class[c];
    weights += weight;
  }
  return ratio(total, weights);
}

// For single-label data every misclassified sample is one false positive (of its predicted
// class) and one false negative (of its true class), so micro precision, recall and F1 all
// equal the trace over the total: the accuracy.
double micro_score(const Tensor& confusion) {
  const int64_t classes = confusion.size(0);
  const std::vector<double> counts = confusion.detach().to_vector<double>();
  double total = 0.0, correct = 0.0;
  for (int64_t row = 0; row < classes; ++row) {
    for (int64_t column = 0; column < classes; ++column) {
      total += counts[static_cast<size_t>(row * classes + column)];
      if (row == column) correct += counts[static_cast<size_t>(row * classes + column)];
    }
  }
  return ratio(correct, total);
}

}  // namespace

// ---- functions of one batch ---------------------------------------------------------------

double accuracy(const Tensor& output, const Tensor& target, double threshold) {
  NoGradGuard no_grad;
  const Labels labels = labels_of(output, target, threshold, "accuracy");
  const int64_t n = labels.predicted.numel();
  if (n == 0) return kNaN;
  return static_cast<double>(count_correct(labels).item<int64_t>()) / static_cast<double>(n);
}

double top_k_accuracy(const Tensor& output, const Tensor& target, int64_t k) {
  NoGradGuard no_grad;
  const Tensor correct = count_top_k(output, target, k, "top_k_accuracy");
  if (output.size(0) == 0) return kNaN;
  return static_cast<double>(correct.item<int64_t>()) / static_cast<double>(output.size(0));
}

double zero_one_error(const Tensor& output, const Tensor& target, double threshold) {
  NoGradGuard no_grad;
  const Labels labels = labels_of(output, target, threshold, "zero_one_error");
  const int64_t n = labels.predicted.numel();
  if (n == 0) return kNaN;
  return 1.0 - static_cast<double>(count_correct(labels).item<int64_t>()) / static_cast<double>(n);
}

Tensor confusion_matrix(const Tensor& output, const Tensor& target, int64_t num_classes,
                        double threshold) {
  NoGradGuard no_grad;
  return count_confusion(labels_of(output, target, threshold, "confusion_matrix"), num_classes,
                         "confusion_matrix");
}

double mean_squared_error(const Tensor& output, const Tensor& target) {
  NoGradGuard no_grad;
  int64_t count = 0;
  const Tensor total = sum_of_errors(output, target, true, "mean_squared_error", count);
  return count == 0 ? kNaN : total.item<double>() / static_cast<double>(count);
}

double mean_absolute_error(const Tensor& output, const Tensor& target) {
  NoGradGuard no_grad;
  int64_t count = 0;
  const Tensor total = sum_of_errors(output, target, false, "mean_absolute_error", count);
  return count == 0 ? kNaN : total.item<double>() / static_cast<double>(count);
}

// ---- scores from a confusion matrix -------------------------------------------------------

ClassScores class_scores(const Tensor& confusion) {
  detail::check_defined(confusion, "class_scores", "confusion");
  STRATA_CHECK(confusion.dim() == 2 && confusion.size(0) == confusion.size(1) &&
                   confusion.size(0) >= 1,
               "class_scores: the confusion matrix must be square [C, C] with C >= 1, got ",
               detail::describe(confusion));
  const int64_t classes = confusion.size(0);
  const std::vector<double> counts = confusion.detach().to_vector<double>();
  const auto at = [&](int64_t row, int64_t column) {
    return counts[static_cast<size_t>(row * classes + column)];
  };
  ClassScores scores;
  for (int64_t c = 0; c < classes; ++c) {
    double predicted = 0.0, actual = 0.0;  // column and row sums
    for (int64_t other = 0; other < classes; ++other) {
      predicted += at(other, c);
      actual += at(c, other);
    }
    const double tp = at(c, c);
    scores.precision.push_back(ratio(tp, predicted));
    scores.recall.push_back(ratio(tp, actual));
    // 2 tp / (2 tp + fp + fn), with fp = predicted - tp and fn = actual - tp.
    scores.f1.push_back(ratio(2.0 * tp, predicted + actual));
    scores.support.push_back(static_cast<int64_t>(std::llround(actual)));
  }
  return scores;
}

double precision(const Tensor& confusion, Average average) {
  const ClassScores scores = class_scores(confusion);
  return average_of(scores.precision, scores.support, average,
                    average == Average::Micro ? micro_score(confusion) : 0.0);
}

double recall(const Tensor& confusion, Average average) {
  const ClassScores scores = class_scores(confusion);
  return average_of(scores.recall, scores.support, average,
                    average == Average::Micro ? micro_score(confusion) : 0.0);
}

double f1_score(const Tensor& confusion, Average average) {
  const ClassScores scores = class_scores(confusion);
  return average_of(scores.f1, scores.support, average,
                    average == Average::Micro ? micro_score(confusion) : 0.0);
}

// ---- streaming metrics --------------------------------------------------------------------

void Metric::all_reduce(distributed::ProcessGroup& group, Device device) {
  (void)device;
  STRATA_CHECK(false, "Metric \"", name(), "\": summing it over the ", group.size(),
               " ranks of a process group is not implemented; a custom metric used in ",
               "data-parallel training overrides Metric::all_reduce");
}

Accuracy::Accuracy(double threshold, std::string name)
    : Metric(std::move(name)), threshold_(threshold) {}

void Accuracy::reset() {
  correct_ = Tensor();
  seen_ = 0;
}

void Accuracy::update(const Tensor& output, const Tensor& target) {
  NoGradGuard no_grad;
  const Labels labels = labels_of(output, target, threshold_, "Accuracy::update");
  accumulate(correct_, count_correct(labels));
  seen_ += labels.predicted.numel();
}

double Accuracy::value() const {
  if (seen_ == 0) return kNaN;
  return static_cast<double>(correct_.item<int64_t>()) / static_cast<double>(seen_);
}

void Accuracy::all_reduce(distributed::ProcessGroup& group, Device device) {
  all_reduce_running_sum(group, device, DType::Int64, correct_, seen_);
}

std::unique_ptr<Metric> Accuracy::clone() const {
  return std::make_unique<Accuracy>(threshold_, name());
}

TopKAccuracy::TopKAccuracy(int64_t k, std::string name)
    : Metric(name.empty() ? "top" + std::to_string(k) + "_accuracy" : std::move(name)), k_(k) {
  STRATA_CHECK(k >= 1, "TopKAccuracy: k must be at least 1, got ", k);
}

void TopKAccuracy::reset() {
  correct_ = Tensor();
  seen_ = 0;
}

void TopKAccuracy::update(const Tensor& output, const Tensor& target) {
  NoGradGuard no_grad;
  accumulate(correct_, count_top_k(output, target, k_, "TopKAccuracy::update"));
  seen_ += output.size(0);
}

double TopKAccuracy::value() const {
  if (seen_ == 0) return kNaN;
  return static_cast<double>(correct_.item<int64_t>()) / static_cast<double>(seen_);
}

void TopKAccuracy::all_reduce(distributed::ProcessGroup& group, Device device) {
  all_reduce_running_sum(group, device, DType::Int64, correct_, seen_);
}

std::unique_ptr<Metric> TopKAccuracy::clone() const {
  return std::make_unique<TopKAccuracy>(k_, name());
}

ZeroOneError::ZeroOneError(double threshold, std::string name)
    : Metric(std::move(name)), accuracy_(threshold) {}

void ZeroOneError::reset() { accuracy_.reset(); }

void ZeroOneError::update(const Tensor& output, const Tensor& target) {
  accuracy_.update(output, target);
}

double ZeroOneError::value() const { return 1.0 - accuracy_.value(); }

void ZeroOneError::all_reduce(distributed::ProcessGroup& group, Device device) {
  accuracy_.all_reduce(group, device);
}

std::unique_ptr<Metric> ZeroOneError::clone() const {
  auto copy = std::make_unique<ZeroOneError>(*this);
  copy->reset();
  return copy;
}

MeanSquaredError::MeanSquaredError(std::string name) : Metric(std::move(name)) {}

void MeanSquaredError::reset() {
  sum_ = Tensor();
  seen_ = 0;
}

void MeanSquaredError::update(const Tensor& output, const Tensor& target) {
  NoGradGuard no_grad;
  int64_t count = 0;
  accumulate(sum_, sum_of_errors(output, target, true, "MeanSquaredError::update", count));
  seen_ += count;
}

double MeanSquaredError::value() const {
  return seen_ == 0 ? kNaN : sum_.item<double>() / static_cast<double>(seen_);
}

void MeanSquaredError::all_reduce(distributed::ProcessGroup& group, Device device) {
  all_reduce_running_sum(group, device, DType::Float64, sum_, seen_);
}

std::unique_ptr<Metric> MeanSquaredError::clone() const {
  return std::make_unique<MeanSquaredError>(name());
}

MeanAbsoluteError::MeanAbsoluteError(std::string name) : Metric(std::move(name)) {}

void MeanAbsoluteError::reset() {
  sum_ = Tensor();
  seen_ = 0;
}

void MeanAbsoluteError::update(const Tensor& output, const Tensor& target) {
  NoGradGuard no_grad;
  int64_t count = 0;
  accumulate(sum_, sum_of_errors(output, target, false, "MeanAbsoluteError::update", count));
  seen_ += count;
}

double MeanAbsoluteError::value() const {
  return seen_ == 0 ? kNaN : sum_.item<double>() / static_cast<double>(seen_);
}

void MeanAbsoluteError::all_reduce(distributed::ProcessGroup& group, Device device) {
  all_reduce_running_sum(group, device, DType::Float64, sum_, seen_);
}

std::unique_ptr<Metric> MeanAbsoluteError::clone() const {
  return std::make_unique<MeanAbsoluteError>(name());
}

ConfusionMatrix::ConfusionMatrix(int64_t num_classes, double threshold, std::string name)
    : Metric(std::move(name)), num_classes_(num_classes), threshold_(threshold) {
  STRATA_CHECK(num_classes >= 1, "ConfusionMatrix: num_classes must be at least 1, got ",
               num_classes);
}

void ConfusionMatrix::reset() { counts_ = Tensor(); }

void ConfusionMatrix::update(const Tensor& output, const Tensor& target) {
  NoGradGuard no_grad;
  const char* op = "ConfusionMatrix::update";
  accumulate(counts_, count_confusion(labels_of(output, target, threshold_, op), num_classes_, op));
}

Tensor ConfusionMatrix::matrix() const {
  if (!counts_.defined()) return zeros({num_classes_, num_classes_}, DType::Int64);
  return counts_.cpu();
}

double ConfusionMatrix::value() const {
  if (!counts_.defined()) return kNaN;
  const std::vector<int64_t> counts = matrix().to_vector<int64_t>();
  int64_t total = 0, correct = 0;
  for (int64_t row = 0; row < num_classes_; ++row) {
    for (int64_t column = 0; column < num_classes_; ++column) {
      const int64_t count = counts[static_cast<size_t>(row * num_classes_ + column)];
      total += count;
      if (row == column) correct += count;
    }
  }
  return total == 0 ? kNaN : static_cast<double>(correct) / static_cast<double>(total);
}

void ConfusionMatrix::all_reduce(distributed::ProcessGroup& group, Device device) {
  NoGradGuard no_grad;
  Tensor counts = counts_.defined() ? counts_.to(device).contiguous().clone()
                                    : zeros({num_classes_, num_classes_},
                                            TensorOptions(DType::Int64).device(device));
  group.all_reduce(counts, distributed::ReduceOp::Sum).wait();
  counts_ = counts;
}

std::unique_ptr<Metric> ConfusionMatrix::clone() const {
  return std::make_unique<ConfusionMatrix>(num_classes_, threshold_, name());
}

void ConfusionScore::update(const Tensor& output, const Tensor& target) {
  confusion_.update(output, target);
}
double ConfusionScore::value() const {
  return std::isnan(confusion_.value()) ? kNaN : score(confusion_.matrix(), average_);
}

double Precision::score(const Tensor& matrix, Average average) const {
  return precision(matrix, average);
}
std::unique_ptr<Metric> Precision::clone() const {
  return std::make_unique<Precision>(num_classes(), average(), name());
}

double Recall::score(const Tensor& matrix, Average average) const {
  return recall(matrix, average);
}
std::unique_ptr<Metric> Recall::clone() const {
  return std::make_unique<Recall>(num_classes(), average(), name());
}

double F1Score::score(const Tensor& matrix, Average average) const {
  return f1_score(matrix, average);
}
std::unique_ptr<Metric> F1Score::clone() const {
  return std::make_unique<F1Score>(num_classes(), average(), name());
}

// ---- by name ------------------------------------------------------------------------------

namespace {

// k from "top5", "top5_accuracy", "top_5_accuracy"; none for other names.
std::optional<int64_t> top_k_of(const std::string& name) {
  if (name.rfind("top", 0) != 0) return std::nullopt;
  size_t at = 3;
  if (at < name.size() && name[at] == '_') ++at;
  const size_t digits_begin = at;
  while (at < name.size() && std::isdigit(static_cast<unsigned char>(name[at]))) ++at;
  if (at == digits_begin || at - digits_begin > 9) return std::nullopt;
  const std::string rest = name.substr(at);
  if (!rest.empty() && rest != "_accuracy") return std::nullopt;
  return std::stoll(name.substr(digits_begin, at - digits_begin));
}

}  // namespace

std::unique_ptr<Metric> make_metric(const std::string& name, int64_t num_classes) {
  if (name == "accuracy" || name == "acc") return std::make_unique<Accuracy>(0.5, name);
  if (const auto k = top_k_of(name); k && *k >= 1) return std::make_unique<TopKAccuracy>(*k, name);
  if (name == "zero_one_error") return std::make_unique<ZeroOneError>(0.5, name);
  if (name == "mse" || name == "mean_squared_error") {
    return std::make_unique<MeanSquaredError>(name);
  }
  if (name == "mae" || name == "mean_absolute_error") {
    return std::make_unique<MeanAbsoluteError>(name);
  }
  const bool per_class = name == "precision" || name == "recall" || name == "f1";
  STRATA_CHECK(!per_class || num_classes >= 1, "make_metric: \"", name,
               "\" needs the number of classes (num_classes >= 1), got ", num_classes);
  if (name == "precision") return std::make_unique<Precision>(num_classes, Average::Macro, name);
  if (name == "recall") return std::make_unique<Recall>(num_classes, Average::Macro, name);
  if (name == "f1") return std::make_unique<F1Score>(num_classes, Average::Macro, name);
  STRATA_CHECK(false, "make_metric: unknown metric \"", name,
               "\"; known: accuracy (acc), top<k> (top5, top_5_accuracy), zero_one_error, "
               "mse, mae, and with num_classes: precision, recall, f1");
  return nullptr;
}

}  // namespace strata::train
