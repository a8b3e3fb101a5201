// Numerical anomalies: isnan/isinf/isfinite, anomaly mode (the op whose forward or backward
// first makes a NaN or inf is named, with its tape position) and fit() stopping on a
// non-finite loss before the weights change.
#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <memory>
#include <vector>

#include "strata/data/dataset.h"
#include "strata/train/fit.h"
#include "test_util.h"

namespace strata {
namespace {

using test::expect_error;

constexpr double kInf = std::numeric_limits<double>::infinity();
constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

std::vector<bool> bools(const Tensor& t) {
  std::vector<bool> out;
  for (const int64_t value : t.to(kInt64).to_vector<int64_t>()) out.push_back(value != 0);
  return out;
}

TEST(NonFinite, ElementTestsOnFloatsAndIntegers) {
  for (DType dtype : {kFloat32, kFloat64}) {
    const Tensor x = test::f64({1.0, kNaN, kInf, -kInf, 0.0, -2.5}, {2, 3}).to(dtype);
    const Tensor nan = isnan(x), inf = isinf(x), finite = isfinite(x);
    EXPECT_EQ(nan.dtype(), kBool);
    EXPECT_EQ(nan.shape(), (Shape{2, 3}));
    EXPECT_EQ(bools(nan), (std::vector<bool>{false, true, false, false, false, false}));
    EXPECT_EQ(bools(inf), (std::vector<bool>{false, false, true, true, false, false}));
    EXPECT_EQ(bools(finite), (std::vector<bool>{true, false, false, false, true, true}));
  }
  const Tensor ints = test::i64({3, -1});
  EXPECT_EQ(bools(isnan(ints)), (std::vector<bool>{false, false}));
  EXPECT_EQ(bools(isinf(ints)), (std::vector<bool>{false, false}));
  EXPECT_EQ(bools(isfinite(ints)), (std::vector<bool>{true, true}));
  expect_error([] { (void)isnan(Tensor()); }, {"isnan"});
}

TEST(AnomalyMode, OffByDefaultAndScopedByTheGuard) {
  EXPECT_FALSE(AnomalyMode::is_enabled());
  {
    DetectAnomalyGuard anomaly;
    EXPECT_TRUE(AnomalyMode::is_enabled());
    {
      DetectAnomalyGuard nested;
      EXPECT_TRUE(AnomalyMode::is_enabled());
    }
    EXPECT_TRUE(AnomalyMode::is_enabled());
  }
  EXPECT_FALSE(AnomalyMode::is_enabled());
}

TEST(AnomalyMode, OffLetsNaNThrough) {
  const Tensor x = test::f64({1.0, -1.0}, {2}, /*requires_grad=*/true);
  const Tensor y = log(x);
  EXPECT_TRUE(std::isnan(y.to_vector<double>()[1]));
}

TEST(AnomalyMode, NamesTheForwardOpThatMadeTheFirstNaN) {
  const Tensor x = test::f64({1.0, 2.0, 3.0}, {3}, /*requires_grad=*/true);
  DetectAnomalyGuard anomaly;
  // op 1: mul (finite); op 2: sub makes a negative element; op 3: log of it is NaN.
  const Tensor scaled = mul(x, 2.0);
  const Tensor shifted = sub(scaled, 3.0);
  expect_error([&] { (void)log(shifted); },
               {"anomaly mode", "'log' (op 3 on the tape)", "1 NaN of its 3 elements",
                "[3] f64", "inputs were all finite"});
}

TEST(AnomalyMode, SaysWhenAnInputWasAlreadyNonFinite) {
  // A leaf holding NaN (bad data, or a parameter gone bad): the first op using it says so.
  const Tensor w = test::f64({1.0, kNaN, kInf}, {3}, /*requires_grad=*/true);
  DetectAnomalyGuard anomaly;
  expect_error([&] { (void)mul(w, 2.0); },
               {"'mul' (op 1 on the tape)", "1 NaN and 1 inf of its 3 elements",
                "input 0 [3] f64", "already held 1 NaN and 1 inf"});
}

TEST(AnomalyMode, NamesTheBackwardThatMadeTheFirstInf) {
  // sqrt(0) is finite, but its derivative 1 / (2 sqrt(0)) is infinite.
  const Tensor x = test::f64({0.0, 4.0}, {2}, /*requires_grad=*/true);
  DetectAnomalyGuard anomaly;
  const Tensor root = sqrt(x);       // op 1
  const Tensor total = sum(root);    // op 2
  expect_error([&] { total.backward(); },
               {"the backward of 'sqrt' (op 1 on the tape)", "1 inf of its 2 elements",
                "gradient for input 0", "the gradient it received was finite"});
}

TEST(AnomalyMode, WithoutItTheInfiniteGradientArrives) {
  const Tensor x = test::f64({0.0, 4.0}, {2}, /*requires_grad=*/true);
  sum(sqrt(x)).backward();
  const std::vector<double> grad = x.grad().to_vector<double>();
  EXPECT_EQ(grad[0], kInf);
  EXPECT_DOUBLE_EQ(grad[1], 0.25);
}

TEST(AnomalyMode, TapePositionsRestartAfterEachBackward) {
  const Tensor x = test::f64({1.0, 2.0}, {2}, /*requires_grad=*/true);
  sum(x).backward();  // whatever ran on this thread before, the next op is the first
  for (int pass = 0; pass < 2; ++pass) {
    const Tensor a = exp(x);
    const Tensor b = sum(a);
    EXPECT_EQ(a.grad_fn()->tape_position, 1);
    EXPECT_EQ(b.grad_fn()->tape_position, 2);
    b.backward();
  }
}

TEST(AnomalyMode, FiniteComputationsPassUntouched) {
  const Tensor x = test::f64({0.5, -1.5, 2.0}, {3}, /*requires_grad=*/true);
  DetectAnomalyGuard anomaly;
  sum(mul(nn::functional::tanh(x), x)).backward();
  const std::vector<double> values = x.to_vector<double>(), grad = x.grad().to_vector<double>();
  for (size_t i = 0; i < values.size(); ++i) {
    const double t = std::tanh(values[i]);
    EXPECT_NEAR(grad[i], t + values[i] * (1.0 - t * t), 1e-12);
  }
}

// ---- fit() on a non-finite loss ----------------------------------------------------------

// Four examples, one per batch; the third input holds NaN.
std::shared_ptr<data::Dataset> dataset_with_nan_at(int64_t bad_index) {
  std::vector<float> inputs = {0.5f, -1.0f, 1.5f, 0.25f, -0.5f, 2.0f, 1.0f, 1.0f};
  inputs[static_cast<size_t>(2 * bad_index)] = std::numeric_limits<float>::quiet_NaN();
  return std::make_shared<data::TensorDataset>(test::f32(inputs, {4, 2}),
                                               test::i64({0, 1, 1, 0}, {4}));
}

std::vector<Tensor> parameter_copies(nn::Module& model) {
  std::vector<Tensor> copies;
  for (const Tensor& p : model.parameters()) copies.push_back(p.detach().clone());
  return copies;
}

TEST(TrainFit, StopsOnANaNLossBeforeTheUpdate) {
  manual_seed(5);
  nn::Sequential model(nn::Linear(2, 4), nn::Tanh(), nn::Linear(4, 2));
  optim::SGD optimizer(model.parameters(), {.lr = 0.1});
  const train::FitOptions options{.epochs = 3, .batch_size = 1, .shuffle = false,
                                  .verbose = train::Verbosity::Silent};
  // The same model trained on the first two batches only: the weights fit() must leave.
  manual_seed(5);
  nn::Sequential reference(nn::Linear(2, 4), nn::Tanh(), nn::Linear(4, 2));
  optim::SGD reference_optimizer(reference.parameters(), {.lr = 0.1});
  const auto all = dataset_with_nan_at(2);
  (void)train::fit(reference, nn::CrossEntropyLoss{}, reference_optimizer,
                   std::make_shared<data::Subset>(all, std::vector<int64_t>{0, 1}),
                   {.epochs = 1, .batch_size = 1, .shuffle = false,
                    .verbose = train::Verbosity::Silent});

  expect_error([&] { (void)train::fit(model, nn::CrossEntropyLoss{}, optimizer, all, options); },
               {"fit: the training loss is nan", "epoch 1 of 3", "batch 3 of 4",
                "global step 3", "last finite step's weights", "detect_anomaly"});
  const std::vector<Tensor> got = parameter_copies(model), want = parameter_copies(reference);
  ASSERT_EQ(got.size(), want.size());
  for (size_t i = 0; i < got.size(); ++i) test::expect_close(got[i], want[i]);
}

TEST(TrainFit, DetectAnomalyNamesTheOpThatMetTheNaN) {
  manual_seed(5);
  nn::Sequential model(nn::Linear(2, 4), nn::Tanh(), nn::Linear(4, 2));
  optim::SGD optimizer(model.parameters(), {.lr = 0.1});
  expect_error(
      [&] {
        (void)train::fit(model, nn::CrossEntropyLoss{}, optimizer, dataset_with_nan_at(1),
                         {.epochs = 1, .batch_size = 1, .shuffle = false,
                          .verbose = train::Verbosity::Silent, .detect_anomaly = true});
      },
      {"anomaly mode", "'linear' (op 1 on the tape)", "input 0 [1,2] f32 cpu already held 1 NaN"});
  EXPECT_FALSE(AnomalyMode::is_enabled());  // fit() restores the mode it found
}

TEST(TrainFit, TheLossCheckCanBeTurnedOff) {
  manual_seed(5);
  nn::Sequential model(nn::Linear(2, 4), nn::Tanh(), nn::Linear(4, 2));
  optim::SGD optimizer(model.parameters(), {.lr = 0.1});
  const train::History history =
      train::fit(model, nn::CrossEntropyLoss{}, optimizer, dataset_with_nan_at(0),
                 {.epochs = 1, .batch_size = 1, .shuffle = false,
                  .verbose = train::Verbosity::Silent, .stop_on_nonfinite_loss = false});
  EXPECT_TRUE(std::isnan(history.back().at("loss")));
}

}  // namespace
}  // namespace strata
