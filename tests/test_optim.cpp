// The first-order optimizers (strata/optim/optimizer.h) on the CPU:
// - against PyTorch (tests/data/gen_optim.py): a Linear(4, 3) -> tanh -> Linear(3, 2) model
//   trained 20 full-batch steps under every configuration of the generator, the loss before
//   each step and the parameters after steps 1, 2, 5, 10 and 20, in float64 (and a five-step
//   float32 run compared loosely with the same references);
// - L1 (no PyTorch equivalent) against a scalar SGD / Adam reference written here;
// - convergence: Rosenbrock's valley from (-1.5, 2) and logistic regression on a linearly
//   separable set;
// - state_dict round trips that resume bit-identically, parameters without gradients, zero_grad,
//   and the errors at construction.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <functional>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "fixtures.h"
#include "strata/strata.h"
#include "test_util.h"

namespace strata::test {
namespace {

namespace F = nn::functional;
using optim::Optimizer;
using optim::ParamGroup;

const Fixture& fixture() {
  static const Fixture f("optim.txt");
  return f;
}

// gen_optim.py's parameter names, in the order the optimizers receive them.
const std::vector<std::string> kParamNames = {"w1", "b1", "w2", "b2"};
const std::vector<int> kRecordedSteps = {1, 2, 5, 10, 20};
constexpr int kSteps = 20;

// The fixture's initial parameters in `dtype`, as fresh leaves that require grad.
std::vector<Tensor> initial_params(DType dtype) {
  std::vector<Tensor> params;
  for (const auto& name : kParamNames) {
    Tensor p = fixture()["init_" + name].to(dtype).clone();
    p.set_requires_grad(true);
    params.push_back(p);
  }
  return params;
}

// mean((tanh(x w1^T + b1) w2^T + b2 - y)^2) on the fixture's batch; `frozen` parameters take
// part in the forward pass without receiving a gradient.
Tensor model_loss(const std::vector<Tensor>& p, bool first_layer_frozen = false) {
  const DType dtype = p[0].dtype();
  const Tensor x = fixture()["x"].to(dtype), y = fixture()["y"].to(dtype);
  const Tensor w1 = first_layer_frozen ? p[0].detach() : p[0];
  const Tensor b1 = first_layer_frozen ? p[1].detach() : p[1];
  const Tensor hidden = F::tanh(F::linear(x, w1, b1));
  return F::mse_loss(F::linear(hidden, p[2], p[3]), y);
}

// One full-batch step as a training loop makes it; returns the loss before the step.
double train_step(Optimizer& opt, const std::vector<Tensor>& params,
                  bool first_layer_frozen = false) {
  opt.zero_grad();
  Tensor loss = model_loss(params, first_layer_frozen);
  loss.backward();
  opt.step();
  return loss.item<double>();
}

// ---- the configurations -------------------------------------------------------------------
// Each mirrors the entry of the same name in gen_optim.py's CONFIGS (PyTorch's betas=(a, b)
// are beta1/beta2 here). `pytorch` is false for the configurations with no PyTorch reference
// (L1), which still take part in the round-trip and skipped-parameter tests.
using Factory = std::function<std::unique_ptr<Optimizer>(std::vector<Tensor>)>;

struct OptimConfig {
  const char* name;
  Factory make;
  bool pytorch = true;
};

template <typename Opt, typename Options>
Factory one_group(Options options) {
  return [options](std::vector<Tensor> params) -> std::unique_ptr<Optimizer> {
    return std::make_unique<Opt>(std::move(params), options);
  };
}

// Group 0 holds w1 and b1, group 1 holds w2 and b2 with `second` overriding the defaults.
template <typename Opt, typename Options>
Factory two_groups(Options options, optim::GroupOptions second) {
  return [options, second](std::vector<Tensor> params) -> std::unique_ptr<Optimizer> {
    std::vector<ParamGroup> groups;
    groups.emplace_back(std::vector<Tensor>{params[0], params[1]});
    groups.emplace_back(std::vector<Tensor>{params[2], params[3]}, second);
    return std::make_unique<Opt>(std::move(groups), options);
  };
}

const std::vector<OptimConfig>& configs() {
  using namespace optim;  // NOLINT(google-build-using-namespace): the option structs
  static const std::vector<OptimConfig> table = {
      {"sgd", one_group<SGD>(SGDOptions{.lr = 0.1})},
      {"sgd_momentum", one_group<SGD>(SGDOptions{.lr = 0.1, .momentum = 0.9})},
      {"sgd_dampening", one_group<SGD>(SGDOptions{.lr = 0.1, .momentum = 0.9, .dampening = 0.1})},
      {"sgd_nesterov", one_group<SGD>(SGDOptions{.lr = 0.1, .momentum = 0.9, .nesterov = true})},
      {"sgd_weight_decay",
       one_group<SGD>(SGDOptions{.lr = 0.1, .momentum = 0.9, .weight_decay = 1e-2})},
      {"sgd_maximize",
       one_group<SGD>(SGDOptions{.lr = 0.01, .momentum = 0.9, .maximize = true})},
      {"adagrad", one_group<Adagrad>(AdagradOptions{.lr = 0.1})},
      {"adagrad_options", one_group<Adagrad>(AdagradOptions{
                              .lr = 0.1, .lr_decay = 1e-2, .initial_accumulator_value = 0.1})},
      {"adagrad_weight_decay",
       one_group<Adagrad>(AdagradOptions{.lr = 0.1,
                                         .lr_decay = 1e-2,
                                         .weight_decay = 1e-2,
                                         .initial_accumulator_value = 0.1})},
      {"adagrad_maximize", one_group<Adagrad>(AdagradOptions{
                               .lr = 0.1, .weight_decay = 1e-2, .maximize = true})},
      {"adadelta", one_group<Adadelta>(AdadeltaOptions{.lr = 1.0})},
      {"adadelta_maximize", one_group<Adadelta>(AdadeltaOptions{.lr = 1.0, .maximize = true})},
      {"adadelta_weight_decay",
       one_group<Adadelta>(AdadeltaOptions{.lr = 1.0, .rho = 0.8, .weight_decay = 1e-2})},
      {"rmsprop", one_group<RMSprop>(RMSpropOptions{.lr = 0.01})},
      {"rmsprop_centered", one_group<RMSprop>(RMSpropOptions{.lr = 0.01, .centered = true})},
      {"rmsprop_momentum", one_group<RMSprop>(RMSpropOptions{.lr = 0.01, .momentum = 0.5})},
      {"rmsprop_centered_momentum",
       one_group<RMSprop>(RMSpropOptions{.lr = 0.01, .momentum = 0.5, .centered = true})},
      {"rmsprop_weight_decay",
       one_group<RMSprop>(RMSpropOptions{.lr = 0.01, .alpha = 0.9, .weight_decay = 1e-2})},
      {"rmsprop_maximize", one_group<RMSprop>(RMSpropOptions{
                               .lr = 0.01, .momentum = 0.5, .centered = true, .maximize = true})},
      {"adam", one_group<Adam>(AdamOptions{.lr = 0.01})},
      {"adam_amsgrad", one_group<Adam>(AdamOptions{.lr = 0.01, .amsgrad = true})},
      {"adam_weight_decay",
       one_group<Adam>(AdamOptions{.lr = 0.01, .betas = {0.8, 0.99}, .weight_decay = 1e-2})},
      {"adam_maximize",
       one_group<Adam>(AdamOptions{.lr = 0.01, .weight_decay = 0.1, .maximize = true})},
      {"adamw", one_group<AdamW>(AdamWOptions{.lr = 0.01, .weight_decay = 0.1})},
      {"adamw_amsgrad",
       one_group<AdamW>(AdamWOptions{.lr = 0.01, .weight_decay = 0.1, .amsgrad = true})},
      {"adamax", one_group<Adamax>(AdamaxOptions{.lr = 0.01})},
      {"adamax_weight_decay",
       one_group<Adamax>(AdamaxOptions{.lr = 0.01, .weight_decay = 1e-2})},
      {"adamax_maximize", one_group<Adamax>(AdamaxOptions{
                              .lr = 0.01, .weight_decay = 1e-2, .maximize = true})},
      {"nadam", one_group<NAdam>(NAdamOptions{.lr = 0.01})},
      {"nadam_weight_decay", one_group<NAdam>(NAdamOptions{
                                 .lr = 0.01, .weight_decay = 1e-2, .momentum_decay = 1e-2})},
      {"sgd_groups",
       two_groups<SGD>(SGDOptions{.lr = 0.1, .momentum = 0.9}, GroupOptions{{"lr", 0.01}})},
      {"adam_groups", two_groups<Adam>(AdamOptions{.lr = 0.01},
                                       GroupOptions{{"lr", 0.001}, {"weight_decay", 0.1}})},
      // No PyTorch reference: L1 per group and combined with the other penalties.
      {"sgd_l1",
       two_groups<SGD>(SGDOptions{.lr = 0.1, .momentum = 0.9, .weight_decay = 1e-2, .l1 = 1e-2},
                       GroupOptions{{"l1", 0.0}}),
       false},
      {"adam_l1", one_group<Adam>(AdamOptions{.lr = 0.01, .amsgrad = true, .l1 = 1e-2}), false},
      {"adamw_l1", one_group<AdamW>(AdamWOptions{.lr = 0.01, .l1 = 1e-2, .maximize = true}),
       false},
      {"rmsprop_l1",
       one_group<RMSprop>(
           RMSpropOptions{.lr = 0.01, .momentum = 0.5, .centered = true, .l1 = 1e-2}),
       false},
      {"nadam_l1", one_group<NAdam>(NAdamOptions{.lr = 0.01, .l1 = 1e-2}), false},
  };
  return table;
}

std::vector<const OptimConfig*> config_pointers(bool pytorch_only) {
  std::vector<const OptimConfig*> out;
  for (const auto& c : configs()) {
    if (!pytorch_only || c.pytorch) out.push_back(&c);
  }
  return out;
}

std::string config_name(const ::testing::TestParamInfo<const OptimConfig*>& info) {
  return info.param->name;
}

// The largest |actual - expected| / |expected| over the elements with |expected| >= 1e-3 (a
// relative error means little near zero), and the largest |actual - expected| overall.
struct ErrorSummary {
  double relative = 0.0;
  double absolute = 0.0;
  void add(const Tensor& actual, const Tensor& expected) {
    const auto a = actual.to_vector<double>(), e = expected.to_vector<double>();
    for (size_t i = 0; i < a.size() && i < e.size(); ++i) {
      const double diff = std::abs(a[i] - e[i]);
      absolute = std::max(absolute, diff);
      if (std::abs(e[i]) >= 1e-3) relative = std::max(relative, diff / std::abs(e[i]));
    }
  }
};

// ---- trajectories against PyTorch -----------------------------------------------------------
class OptimTrajectory : public ::testing::TestWithParam<const OptimConfig*> {};

// Float64: every configuration follows PyTorch's trajectory to 1e-10 relative (the issue asks
// for 1e-5). The few roundings per step differ in order from PyTorch's (fused terms), and
// 20 steps of a smooth map keep those differences near 1e-15 relative.
TEST_P(OptimTrajectory, MatchesPyTorchFloat64) {
  const OptimConfig& config = *GetParam();
  const std::string name = config.name;
  std::vector<Tensor> params = initial_params(kFloat64);
  auto opt = config.make(params);
  std::vector<double> losses;
  ErrorSummary error;
  for (int step = 1; step <= kSteps; ++step) {
    losses.push_back(train_step(*opt, params));
    if (std::find(kRecordedSteps.begin(), kRecordedSteps.end(), step) == kRecordedSteps.end()) {
      continue;
    }
    for (size_t i = 0; i < params.size(); ++i) {
      SCOPED_TRACE(name + " step " + std::to_string(step) + " " + kParamNames[i]);
      const Tensor& expected = fixture()[name + "_step" + std::to_string(step) + "_" +
                                         kParamNames[i]];
      expect_close(params[i], expected, 1e-10, 1e-12);
      error.add(params[i], expected);
    }
  }
  const Tensor actual_losses = from_vector<double>(losses);
  expect_close(actual_losses, fixture()[name + "_loss"], 1e-10, 1e-12);
  error.add(actual_losses, fixture()[name + "_loss"]);
  for (const Tensor& p : params) EXPECT_EQ(opt->state(p).step, kSteps);
  std::printf("[ trajectory ] %-26s f64: max relative error %.2e, max absolute error %.2e\n",
              name.c_str(), error.relative, error.absolute);
}

// Float32: five steps from the same (exactly representable) start, against the float64
// reference: 1e-4 relative + 1e-5 absolute (float32 rounding of the forward pass, ~1e-7,
// amplified where the adaptive methods divide a small first moment by its own root).
TEST_P(OptimTrajectory, Float32FollowsFloat64) {
  const OptimConfig& config = *GetParam();
  const std::string name = config.name;
  std::vector<Tensor> params = initial_params(kFloat32);
  auto opt = config.make(params);
  for (int step = 1; step <= 5; ++step) train_step(*opt, params);
  ErrorSummary error;
  for (size_t i = 0; i < params.size(); ++i) {
    SCOPED_TRACE(name + " float32 step 5 " + kParamNames[i]);
    EXPECT_EQ(params[i].dtype(), kFloat32);
    const Tensor& expected = fixture()[name + "_step5_" + kParamNames[i]];
    expect_close(params[i], expected, 1e-4, 1e-5);
    error.add(params[i], expected);
  }
  std::printf("[ trajectory ] %-26s f32: max relative error %.2e, max absolute error %.2e\n",
              name.c_str(), error.relative, error.absolute);
}

INSTANTIATE_TEST_SUITE_P(PyTorch, OptimTrajectory, ::testing::ValuesIn(config_pointers(true)),
                         config_name);

// ---- L1 against a scalar reference ----------------------------------------------------------
double sign_of(double v) { return v > 0 ? 1.0 : (v < 0 ? -1.0 : 0.0); }

// A parameter p and the constant gradient c that loss = sum(p * c) gives it.
struct LinearProblem {
  std::vector<double> p0 = {0.5, -0.25, 0.0, 2.0, -1.5};
  std::vector<double> c = {0.1, 0.2, -0.3, 0.4, -0.05};
  Tensor param() const { return f64(p0, {5}, true); }
  void backward(const Tensor& p) const { sum(mul(p, f64(c, {5}))).backward(); }
};

TEST(OptimL1, SgdStepMatchesHandComputed) {
  // p <- p - lr * (g + l1 * sign(p)); sign(0) = 0 leaves a zero parameter to the gradient.
  const LinearProblem problem;
  Tensor p = problem.param();
  optim::SGD opt(std::vector<Tensor>{p}, {.lr = 0.1, .l1 = 0.05});
  problem.backward(p);
  opt.step();
  expect_values(p, {5}, {0.5 - 0.1 * (0.1 + 0.05), -0.25 - 0.1 * (0.2 - 0.05), 0.03,
                         2.0 - 0.1 * (0.4 + 0.05), -1.5 - 0.1 * (-0.05 - 0.05)});
}

TEST(OptimL1, SgdMomentumWithWeightDecayAndMaximize) {
  // Three steps of SGD with momentum, dampening, L2, L1 and maximize, against the formulas
  // written out per element (PyTorch's order: negate, then add the penalties).
  const LinearProblem problem;
  const double lr = 0.1, momentum = 0.9, dampening = 0.2, weight_decay = 0.05, l1 = 0.02;
  for (const bool maximize : {false, true}) {
    SCOPED_TRACE(maximize ? "maximize" : "minimize");
    Tensor p = problem.param();
    optim::SGD opt(std::vector<Tensor>{p}, {.lr = lr,
                                            .momentum = momentum,
                                            .dampening = dampening,
                                            .weight_decay = weight_decay,
                                            .l1 = l1,
                                            .maximize = maximize});
    std::vector<double> ref = problem.p0, buffer(ref.size());
    for (int step = 1; step <= 3; ++step) {
      opt.zero_grad();
      problem.backward(p);
      opt.step();
      for (size_t i = 0; i < ref.size(); ++i) {
        const double g = (maximize ? -problem.c[i] : problem.c[i]) + weight_decay * ref[i] +
                         l1 * sign_of(ref[i]);
        buffer[i] = step == 1 ? g : momentum * buffer[i] + (1 - dampening) * g;
        ref[i] -= lr * buffer[i];
      }
      expect_values(p, {5}, ref);
    }
  }
}

TEST(OptimL1, AdamFirstStepMatchesHandComputed) {
  // Adam's first step is lr * g / (|g| + eps) with bias correction; L1 enters g.
  const LinearProblem problem;
  Tensor p = problem.param();
  const double lr = 0.01, l1 = 0.15, eps = 1e-8;
  optim::Adam opt(std::vector<Tensor>{p}, {.lr = lr, .eps = eps, .l1 = l1});
  problem.backward(p);
  opt.step();
  std::vector<double> expected;
  for (size_t i = 0; i < problem.p0.size(); ++i) {
    const double g = problem.c[i] + l1 * sign_of(problem.p0[i]);
    expected.push_back(problem.p0[i] - lr * g / (std::abs(g) + eps));
  }
  expect_values(p, {5}, expected);
}

TEST(OptimL1, PerGroup) {
  // l1 applies to the group that sets it only.
  const LinearProblem problem;
  Tensor a = problem.param(), b = problem.param();
  std::vector<ParamGroup> groups;
  groups.emplace_back(std::vector<Tensor>{a}, optim::GroupOptions{{"l1", 0.05}});
  groups.emplace_back(std::vector<Tensor>{b});
  optim::SGD opt(std::move(groups), {.lr = 0.1});
  EXPECT_EQ(opt.param_groups()[0].get("l1"), 0.05);
  EXPECT_EQ(opt.param_groups()[1].get("l1"), 0.0);
  problem.backward(a);
  problem.backward(b);
  opt.step();
  std::vector<double> with_l1, without;
  for (size_t i = 0; i < problem.p0.size(); ++i) {
    with_l1.push_back(problem.p0[i] - 0.1 * (problem.c[i] + 0.05 * sign_of(problem.p0[i])));
    without.push_back(problem.p0[i] - 0.1 * problem.c[i]);
  }
  expect_values(a, {5}, with_l1);
  expect_values(b, {5}, without);
}

// ---- convergence ----------------------------------------------------------------------------
// Rosenbrock's function (1 - x)^2 + 100 (y - x^2)^2 from (-1.5, 2): the minimum (1, 1) lies at
// the end of a long curved valley. Learning rates and step counts were chosen per optimizer
// (the same runs in PyTorch land within 0.02 of (1, 1)); each must end within 0.03 in both
// coordinates. Adadelta is not in the table: with its step sizes set by its own history it
// crawls along the valley (PyTorch: still 0.5 away after 20000 steps at any rho or eps tried),
// so it is only required to reduce the function tenfold.
struct RosenbrockCase {
  const char* name;
  std::function<std::unique_ptr<Optimizer>(Tensor)> make;
  int steps;
};

double rosenbrock_at(const Tensor& xy) {
  const auto v = xy.to_vector<double>();
  return (1 - v[0]) * (1 - v[0]) + 100 * (v[1] - v[0] * v[0]) * (v[1] - v[0] * v[0]);
}

// Runs `steps` steps on Rosenbrock's function; returns the final point.
std::vector<double> minimize_rosenbrock(Optimizer& opt, const Tensor& xy, int steps) {
  for (int i = 0; i < steps; ++i) {
    opt.zero_grad();
    const Tensor x = xy.select(0, 0), y = xy.select(0, 1);
    const Tensor f = add(pow(rsub(x, 1.0), 2.0), mul(pow(sub(y, mul(x, x)), 2.0), 100.0));
    f.backward();
    opt.step();
  }
  return xy.to_vector<double>();
}

template <typename Opt, typename Options>
std::function<std::unique_ptr<Optimizer>(Tensor)> over_point(Options options) {
  return [options](Tensor xy) -> std::unique_ptr<Optimizer> {
    return std::make_unique<Opt>(std::vector<Tensor>{std::move(xy)}, options);
  };
}

const std::vector<RosenbrockCase>& rosenbrock_cases() {
  using namespace optim;  // NOLINT(google-build-using-namespace): the option structs
  static const std::vector<RosenbrockCase> cases = {
      {"sgd_momentum", over_point<SGD>(SGDOptions{.lr = 2e-4, .momentum = 0.9}), 5000},
      {"sgd_nesterov",
       over_point<SGD>(SGDOptions{.lr = 2e-4, .momentum = 0.9, .nesterov = true}), 5000},
      {"adagrad", over_point<Adagrad>(AdagradOptions{.lr = 1.0}), 10000},
      {"rmsprop", over_point<RMSprop>(RMSpropOptions{.lr = 3e-3}), 5000},
      {"rmsprop_momentum", over_point<RMSprop>(RMSpropOptions{.lr = 1e-3, .momentum = 0.9}),
       2000},
      {"rmsprop_centered_momentum",
       over_point<RMSprop>(RMSpropOptions{.lr = 1e-3, .momentum = 0.9, .centered = true}), 3000},
      {"adam", over_point<Adam>(AdamOptions{.lr = 0.05}), 2000},
      {"amsgrad", over_point<Adam>(AdamOptions{.lr = 0.05, .amsgrad = true}), 2000},
      {"adamw", over_point<AdamW>(AdamWOptions{.lr = 0.05, .weight_decay = 0.0}), 2000},
      {"adamax", over_point<Adamax>(AdamaxOptions{.lr = 0.05}), 3000},
      {"nadam", over_point<NAdam>(NAdamOptions{.lr = 0.05, .momentum_decay = 0.04}), 3000},
  };
  return cases;
}

class OptimRosenbrock : public ::testing::TestWithParam<const RosenbrockCase*> {};

TEST_P(OptimRosenbrock, ReachesTheMinimum) {
  const RosenbrockCase& c = *GetParam();
  Tensor xy = f64({-1.5, 2.0}, {2}, true);
  auto opt = c.make(xy);
  const auto end = minimize_rosenbrock(*opt, xy, c.steps);
  EXPECT_NEAR(end[0], 1.0, 0.03);
  EXPECT_NEAR(end[1], 1.0, 0.03);
  std::printf("[ rosenbrock ] %-26s %5d steps: (%.6f, %.6f), f = %.3g\n", c.name, c.steps,
              end[0], end[1], rosenbrock_at(xy));
}

std::vector<const RosenbrockCase*> rosenbrock_pointers() {
  std::vector<const RosenbrockCase*> out;
  for (const auto& c : rosenbrock_cases()) out.push_back(&c);
  return out;
}

std::string rosenbrock_name(const ::testing::TestParamInfo<const RosenbrockCase*>& info) {
  return info.param->name;
}

INSTANTIATE_TEST_SUITE_P(Optimizers, OptimRosenbrock, ::testing::ValuesIn(rosenbrock_pointers()),
                         rosenbrock_name);

TEST(OptimConvergence, AdadeltaOnRosenbrockDescends) {
  Tensor xy = f64({-1.5, 2.0}, {2}, true);
  const double start = rosenbrock_at(xy);
  optim::Adadelta adadelta(std::vector<Tensor>{xy}, {.lr = 1.0});
  minimize_rosenbrock(adadelta, xy, 5000);
  EXPECT_LT(rosenbrock_at(xy), start / 10);
}

// Logistic regression on 200 points in 5 dimensions labelled by a fixed hyperplane (points
// within 0.1 of it dropped, so the set is separable with a margin), from zero weights, 300
// full-batch steps: every optimizer must classify at least 95% of the set correctly.
TEST(OptimConvergence, LogisticRegression) {
  constexpr int64_t kDim = 5, kPoints = 200;
  std::mt19937 engine(3);
  std::uniform_real_distribution<double> coordinate(-2.0, 2.0), weight(-1.0, 1.0);
  std::vector<double> plane(kDim);
  for (auto& w : plane) w = weight(engine);
  std::vector<double> xs, ys;
  while (static_cast<int64_t>(ys.size()) < kPoints) {
    std::vector<double> point(kDim);
    double score = 0.3;
    for (int64_t d = 0; d < kDim; ++d) {
      point[static_cast<size_t>(d)] = coordinate(engine);
      score += plane[static_cast<size_t>(d)] * point[static_cast<size_t>(d)];
    }
    if (std::abs(score) < 0.1) continue;
    xs.insert(xs.end(), point.begin(), point.end());
    ys.push_back(score > 0 ? 1.0 : 0.0);
  }
  const Tensor x = f64(xs, {kPoints, kDim}), y = f64(ys, {kPoints});

  using namespace optim;  // NOLINT(google-build-using-namespace): the option structs
  using Make = std::function<std::unique_ptr<Optimizer>(std::vector<Tensor>)>;
  const std::vector<std::pair<const char*, Make>> cases = {
      {"SGD", one_group<SGD>(SGDOptions{.lr = 0.5})},
      {"SGD momentum", one_group<SGD>(SGDOptions{.lr = 0.1, .momentum = 0.9})},
      {"SGD Nesterov", one_group<SGD>(SGDOptions{.lr = 0.1, .momentum = 0.9, .nesterov = true})},
      {"Adagrad", one_group<Adagrad>(AdagradOptions{.lr = 0.5})},
      {"Adadelta", one_group<Adadelta>(AdadeltaOptions{.lr = 1.0})},
      {"RMSprop", one_group<RMSprop>(RMSpropOptions{.lr = 0.01})},
      {"RMSprop centered momentum",
       one_group<RMSprop>(RMSpropOptions{.lr = 0.01, .momentum = 0.5, .centered = true})},
      {"Adam", one_group<Adam>(AdamOptions{.lr = 0.05})},
      {"AMSGrad", one_group<Adam>(AdamOptions{.lr = 0.05, .amsgrad = true})},
      {"AdamW", one_group<AdamW>(AdamWOptions{.lr = 0.05})},
      {"Adamax", one_group<Adamax>(AdamaxOptions{.lr = 0.05})},
      {"NAdam", one_group<NAdam>(NAdamOptions{.lr = 0.05})},
      {"SGD L1", one_group<SGD>(SGDOptions{.lr = 0.5, .l1 = 1e-3})},
  };
  for (const auto& [name, make] : cases) {
    SCOPED_TRACE(name);
    Tensor w = zeros({kDim}, kFloat64), b = zeros({1}, kFloat64);
    w.set_requires_grad(true);
    b.set_requires_grad(true);
    auto opt = make({w, b});
    double loss_value = 0.0;
    for (int step = 0; step < 300; ++step) {
      opt->zero_grad();
      Tensor loss = F::binary_cross_entropy_with_logits(add(matmul(x, w), b), y);
      loss.backward();
      opt->step();
      loss_value = loss.item<double>();
    }
    const Tensor predicted = gt(add(matmul(x, w), b), 0.0).to(kFloat64);
    const double accuracy = mean(eq(predicted, y).to(kFloat64)).item<double>();
    EXPECT_GE(accuracy, 0.95);
    std::printf("[ logistic   ] %-26s accuracy %.3f, loss %.4f\n", name, accuracy, loss_value);
  }
}

// ---- state dicts ----------------------------------------------------------------------------
class OptimStateDict : public ::testing::TestWithParam<const OptimConfig*> {};

// Five steps, a state dict, a fresh optimizer over copies of the parameters loading it: both
// then take five more steps and end bit-identical, parameters and state alike.
TEST_P(OptimStateDict, ResumesBitIdentically) {
  const OptimConfig& config = *GetParam();
  std::vector<Tensor> a = initial_params(kFloat64);
  auto opt_a = config.make(a);
  for (int step = 0; step < 5; ++step) train_step(*opt_a, a);
  const optim::OptimizerStateDict dict = opt_a->state_dict();
  EXPECT_EQ(dict.at("state.0.step").item<int64_t>(), 5);
  EXPECT_EQ(dict.at("param_groups.0.lr").item<double>(),
            opt_a->param_groups()[0].get("lr"));

  std::vector<Tensor> b;
  for (const Tensor& p : a) {
    Tensor copy = p.detach().clone();
    copy.set_requires_grad(true);
    b.push_back(copy);
  }
  auto opt_b = config.make(b);
  opt_b->load_state_dict(dict);
  for (int step = 0; step < 5; ++step) {
    const double loss_a = train_step(*opt_a, a), loss_b = train_step(*opt_b, b);
    EXPECT_EQ(loss_a, loss_b) << "step " << 6 + step;
  }
  for (size_t i = 0; i < a.size(); ++i) {
    SCOPED_TRACE(kParamNames[i]);
    EXPECT_EQ(a[i].to_vector<double>(), b[i].to_vector<double>());
    const optim::ParamState& sa = opt_a->state(a[i]);
    const optim::ParamState& sb = opt_b->state(b[i]);
    EXPECT_EQ(sa.step, 10);
    EXPECT_EQ(sb.step, 10);
    ASSERT_EQ(sa.buffers.size(), sb.buffers.size());
    for (const auto& [name, buffer] : sa.buffers) {
      ASSERT_TRUE(sb.buffers.count(name)) << name;
      EXPECT_EQ(buffer.to_vector<double>(), sb.buffers.at(name).to_vector<double>()) << name;
    }
    EXPECT_EQ(sa.scalars, sb.scalars);
  }
}

// The dict is a copy: steps taken after state_dict() leave it as it was.
TEST_P(OptimStateDict, IsASnapshot) {
  const OptimConfig& config = *GetParam();
  std::vector<Tensor> params = initial_params(kFloat64);
  auto opt = config.make(params);
  for (int step = 0; step < 3; ++step) train_step(*opt, params);
  const optim::OptimizerStateDict dict = opt->state_dict();
  std::map<std::string, std::vector<double>> before;
  for (const auto& [key, value] : dict) before[key] = value.to_vector<double>();
  for (int step = 0; step < 2; ++step) train_step(*opt, params);
  for (const auto& [key, value] : dict) EXPECT_EQ(before[key], value.to_vector<double>()) << key;
}

// A loaded state is used as loaded, whatever its step count: Adagrad's accumulator saved before
// any step (step 0, as PyTorch's eager state holds it) is not replaced by the initial value.
TEST(OptimStateDictLoad, StepZeroStateKeepsItsBuffers) {
  Tensor p = from_vector<double>({1.0, -2.0}, {2}).set_requires_grad(true);
  optim::Adagrad adagrad({p}, {.lr = 0.5, .initial_accumulator_value = 0.1, .eps = 0.0});
  optim::OptimizerStateDict dict = adagrad.state_dict();
  dict["state.0.step"] = full({}, 0.0, kInt64);
  dict["state.0.sum"] = from_vector<double>({4.0, 9.0}, {2});
  adagrad.load_state_dict(dict);
  EXPECT_EQ(adagrad.state_dict().at("state.0.sum").to_vector<double>(),
            (std::vector<double>{4.0, 9.0}));
  p.mutable_grad() = from_vector<double>({3.0, 4.0}, {2});
  adagrad.step();
  // sum = 4 + 3^2 = 13 and 9 + 4^2 = 25; p -= 0.5 * g / sqrt(sum).
  EXPECT_EQ(adagrad.state(p).buffers.at("sum").to_vector<double>(),
            (std::vector<double>{13.0, 25.0}));
  EXPECT_NEAR(p.to_vector<double>()[0], 1.0 - 0.5 * 3.0 / std::sqrt(13.0), 1e-15);
  EXPECT_NEAR(p.to_vector<double>()[1], -2.0 - 0.5 * 4.0 / 5.0, 1e-15);
  EXPECT_EQ(adagrad.state(p).step, 1);
}

// Parameters that get no gradient are left alone: unchanged, step count 0, absent from the
// state dict; the others advance.
TEST_P(OptimStateDict, SkipsParametersWithoutGradient) {
  const OptimConfig& config = *GetParam();
  std::vector<Tensor> params = initial_params(kFloat64);
  auto opt = config.make(params);
  for (int step = 0; step < 3; ++step) train_step(*opt, params, /*first_layer_frozen=*/true);
  for (size_t i = 0; i < params.size(); ++i) {
    SCOPED_TRACE(kParamNames[i]);
    const bool frozen = i < 2;
    EXPECT_FALSE(frozen && params[i].grad().defined());
    EXPECT_EQ(opt->state(params[i]).step, frozen ? 0 : 3);
    const auto initial = fixture()["init_" + kParamNames[i]].to_vector<double>();
    if (frozen) {
      EXPECT_EQ(params[i].to_vector<double>(), initial);
    } else {
      EXPECT_NE(params[i].to_vector<double>(), initial);
    }
  }
  const optim::OptimizerStateDict dict = opt->state_dict();
  EXPECT_EQ(dict.count("state.0.step"), 0u);
  EXPECT_EQ(dict.count("state.1.step"), 0u);
  ASSERT_EQ(dict.count("state.2.step"), 1u);
  EXPECT_EQ(dict.at("state.2.step").item<int64_t>(), 3);
}

INSTANTIATE_TEST_SUITE_P(AllOptimizers, OptimStateDict,
                         ::testing::ValuesIn(config_pointers(false)), config_name);

TEST(OptimLoadStateDict, RestoresGroupOptions) {
  // The loaded options win over those the fresh optimizer was built with (a scheduler may
  // have changed lr before the checkpoint).
  std::vector<Tensor> a = initial_params(kFloat64);
  optim::SGD opt_a(a, {.lr = 0.1, .momentum = 0.9});
  train_step(opt_a, a);
  opt_a.param_groups()[0].set("lr", 0.05);
  std::vector<Tensor> b = initial_params(kFloat64);
  optim::SGD opt_b(b, {.lr = 0.5, .momentum = 0.9});
  opt_b.load_state_dict(opt_a.state_dict());
  EXPECT_EQ(opt_b.param_groups()[0].lr(), 0.05);
  EXPECT_EQ(opt_b.state(b[0]).step, 1);
}

TEST(OptimLoadStateDict, RejectsAnotherStructure) {
  std::vector<Tensor> a = initial_params(kFloat64);
  optim::Adam opt_a(a, {.lr = 0.01});
  train_step(opt_a, a);
  std::vector<Tensor> b = initial_params(kFloat64);
  optim::Adam opt_b(std::vector<Tensor>{b[0], b[1]}, {.lr = 0.01});
  expect_error([&] { opt_b.load_state_dict(opt_a.state_dict()); },
               {"Adam", "load_state_dict", "4"});
  EXPECT_EQ(opt_b.state(b[0]).step, 0);
}

TEST(OptimLoadStateDict, RejectsAnotherOptimizersOptions) {
  std::vector<Tensor> a = initial_params(kFloat64);
  optim::Adam adam(a, {.lr = 0.01});
  train_step(adam, a);
  std::vector<Tensor> b = initial_params(kFloat64);
  optim::SGD sgd(b, {.lr = 0.1, .momentum = 0.9});
  expect_error([&] { sgd.load_state_dict(adam.state_dict()); },
               {"SGD", "load_state_dict", "amsgrad", "group 0"});
  EXPECT_EQ(sgd.param_groups()[0].lr(), 0.1);
  EXPECT_EQ(sgd.state(b[0]).step, 0);
}

// ---- zero_grad ------------------------------------------------------------------------------
TEST(OptimZeroGrad, SetToNoneAndToZeros) {
  std::vector<Tensor> params = initial_params(kFloat64);
  optim::SGD opt(params, {.lr = 0.1, .momentum = 0.9});
  model_loss(params, /*first_layer_frozen=*/true).backward();
  EXPECT_FALSE(params[0].grad().defined());
  ASSERT_TRUE(params[2].grad().defined());

  // To zeros: existing gradients become zeros of their shape; missing ones stay missing.
  opt.zero_grad(/*set_to_none=*/false);
  EXPECT_FALSE(params[0].grad().defined());
  ASSERT_TRUE(params[2].grad().defined());
  expect_values(params[2].grad(), params[2].shape(), std::vector<double>(6, 0.0));

  // The default (PyTorch 2's) drops them.
  model_loss(params).backward();
  opt.zero_grad();
  for (const Tensor& p : params) EXPECT_FALSE(p.grad().defined());
}

TEST(OptimZeroGrad, ZeroGradientStillStepsNoGradientDoesNot) {
  // With momentum, a zero gradient is an update (the buffer keeps moving the parameter and the
  // step count advances); a missing gradient is no update at all.
  for (const bool set_to_none : {false, true}) {
    SCOPED_TRACE(set_to_none ? "set_to_none" : "zeros");
    std::vector<Tensor> params = initial_params(kFloat64);
    optim::SGD opt(params, {.lr = 0.1, .momentum = 0.9});
    train_step(opt, params);
    const auto after_one = params[0].to_vector<double>();
    const auto buffer = opt.state(params[0]).buffers.at("momentum_buffer").to_vector<double>();
    opt.zero_grad(set_to_none);
    opt.step();
    if (set_to_none) {
      EXPECT_EQ(opt.state(params[0]).step, 1);
      EXPECT_EQ(params[0].to_vector<double>(), after_one);
    } else {
      EXPECT_EQ(opt.state(params[0]).step, 2);
      std::vector<double> expected;
      for (size_t i = 0; i < after_one.size(); ++i) {
        expected.push_back(after_one[i] - 0.1 * 0.9 * buffer[i]);
      }
      expect_values(params[0], params[0].shape(), expected);
    }
  }
}

// ---- errors at construction -----------------------------------------------------------------
TEST(OptimErrors, BadHyperparameters) {
  const std::vector<Tensor> params = initial_params(kFloat64);
  using namespace optim;  // NOLINT(google-build-using-namespace): the option structs
  expect_error([&] { SGD(params, {.lr = -0.1}); }, {"SGD", "lr", "-0.1"});
  expect_error([&] { Adam(params, {.lr = -1e-3}); }, {"Adam", "lr"});
  expect_error([&] { Adagrad(params, {.lr = -1.0}); }, {"Adagrad", "lr"});
  expect_error([&] { SGD(params, {.momentum = -0.5}); }, {"SGD", "momentum"});
  expect_error([&] { SGD(params, {.weight_decay = -1e-4}); }, {"SGD", "weight_decay"});
  expect_error([&] { SGD(params, {.l1 = -1e-4}); }, {"SGD", "l1"});
  // betas must lie in [0, 1).
  expect_error([&] { Adam(params, {.betas = {1.0, 0.999}}); }, {"Adam", "beta1", "[0, 1)"});
  expect_error([&] { Adam(params, {.betas = {-0.1, 0.999}}); }, {"Adam", "beta1"});
  expect_error([&] { Adam(params, {.betas = {0.9, 1.0}}); }, {"Adam", "beta2"});
  expect_error([&] { AdamW(params, {.betas = {0.9, 1.5}}); }, {"AdamW", "beta2"});
  expect_error([&] { Adamax(params, {.betas = {1.0, 0.999}}); }, {"Adamax", "beta1"});
  expect_error([&] { NAdam(params, {.betas = {0.9, -0.001}}); }, {"NAdam", "beta2"});
  // eps must be >= 0.
  expect_error([&] { Adam(params, {.eps = -1e-8}); }, {"Adam", "eps"});
  expect_error([&] { RMSprop(params, {.eps = -1e-8}); }, {"RMSprop", "eps"});
  expect_error([&] { Adagrad(params, {.eps = -1e-10}); }, {"Adagrad", "eps"});
  expect_error([&] { Adadelta(params, {.eps = -1e-6}); }, {"Adadelta", "eps"});
  // The rest of each optimizer's own options.
  expect_error([&] { Adagrad(params, {.lr_decay = -0.1}); }, {"Adagrad", "lr_decay"});
  expect_error([&] { Adagrad(params, {.initial_accumulator_value = -0.1}); },
               {"Adagrad", "initial_accumulator_value"});
  expect_error([&] { Adadelta(params, {.rho = 1.5}); }, {"Adadelta", "rho"});
  expect_error([&] { RMSprop(params, {.alpha = -0.5}); }, {"RMSprop", "alpha"});
  expect_error([&] { NAdam(params, {.momentum_decay = -4e-3}); }, {"NAdam", "momentum_decay"});
}

TEST(OptimErrors, NesterovNeedsMomentum) {
  const std::vector<Tensor> params = initial_params(kFloat64);
  expect_error([&] { optim::SGD(params, {.lr = 0.1, .nesterov = true}); },
               {"SGD", "nesterov", "momentum"});
  expect_error(
      [&] { optim::SGD(params, {.lr = 0.1, .momentum = 0.9, .dampening = 0.1, .nesterov = true}); },
      {"SGD", "nesterov", "dampening"});
}

TEST(OptimErrors, EmptyParameterList) {
  expect_error([] { optim::SGD(std::vector<Tensor>{}, {.lr = 0.1}); },
               {"SGD", "empty parameter list"});
  expect_error([] { optim::Adam(std::vector<ParamGroup>{}); }, {"Adam", "empty parameter list"});
  const std::vector<Tensor> params = initial_params(kFloat64);
  std::vector<ParamGroup> groups;
  groups.emplace_back(params);
  groups.emplace_back(std::vector<Tensor>{});
  expect_error([&] { optim::RMSprop rmsprop(groups); },
               {"RMSprop", "group 1", "empty parameter list"});
}

TEST(OptimErrors, GroupOptions) {
  const std::vector<Tensor> params = initial_params(kFloat64);
  auto split = [&](optim::GroupOptions second) {
    std::vector<ParamGroup> groups;
    groups.emplace_back(std::vector<Tensor>{params[0], params[1]});
    groups.emplace_back(std::vector<Tensor>{params[2], params[3]}, std::move(second));
    return groups;
  };
  // An option the optimizer does not have (a typo, or another optimizer's).
  expect_error([&] { optim::SGD(split({{"momentun", 0.9}})); }, {"SGD", "momentun", "group 1"});
  expect_error([&] { optim::Adam(split({{"momentum", 0.9}})); }, {"Adam", "momentum"});
  expect_error([&] { optim::SGD(split({{"betas", 0.9}})); }, {"SGD", "betas"});
  // A group's own bad value names its group.
  expect_error([&] { optim::SGD(split({{"lr", -0.01}})); }, {"SGD", "lr", "group 1"});
  expect_error([&] { optim::Adam(split({{"beta2", 1.0}})); }, {"Adam", "beta2", "group 1"});
  expect_error([&] { optim::SGD(split({{"nesterov", 1.0}})); }, {"SGD", "nesterov", "group 1"});
  // ParamGroup::get and set know only the group's options.
  optim::SGD opt(split({{"lr", 0.01}}), {.lr = 0.1});
  EXPECT_EQ(opt.param_groups()[0].lr(), 0.1);
  EXPECT_EQ(opt.param_groups()[1].lr(), 0.01);
  expect_error([&] { (void)opt.param_groups()[0].get("beta1"); }, {"beta1"});
  expect_error([&] { opt.param_groups()[0].set("lrr", 0.1); }, {"lrr"});
}

TEST(OptimGroups, TypedOverridesAreTheNamedOptions) {
  const std::vector<Tensor> params = initial_params(kFloat64);
  std::vector<ParamGroup> groups;
  groups.emplace_back(std::vector<Tensor>{params[0], params[1]});
  groups.emplace_back(std::vector<Tensor>{params[2], params[3]},
                      optim::Overrides{.lr = 0.01, .momentum = 0.5, .nesterov = true});
  optim::SGD opt(std::move(groups), {.lr = 0.1, .momentum = 0.9});
  EXPECT_EQ(opt.param_groups()[0].lr(), 0.1);
  EXPECT_EQ(opt.param_groups()[1].lr(), 0.01);
  EXPECT_EQ(opt.param_groups()[1].get("momentum"), 0.5);
  EXPECT_EQ(opt.param_groups()[1].get("nesterov"), 1.0);
  EXPECT_EQ(opt.param_groups()[1].get("dampening"), 0.0);  // not set: the default
  EXPECT_EQ((optim::Overrides{.beta2 = 0.99, .amsgrad = false}.to_options()),
            (optim::GroupOptions{{"beta2", 0.99}, {"amsgrad", 0.0}}));
  // A field the optimizer does not have is refused as the map's would be.
  expect_error(
      [&] {
        optim::Adam(std::vector<ParamGroup>{
            ParamGroup(std::vector<Tensor>{params[0]}, optim::Overrides{.momentum = 0.9})});
      },
      {"Adam", "momentum"});
}

TEST(OptimErrors, ParameterInTwoGroups) {
  const std::vector<Tensor> params = initial_params(kFloat64);
  std::vector<ParamGroup> groups;
  groups.emplace_back(std::vector<Tensor>{params[0], params[1]});
  groups.emplace_back(std::vector<Tensor>{params[2], params[0]});
  expect_error([&] { optim::Adam(std::move(groups)); }, {"Adam", "more than one group"});
  expect_error([&] { optim::SGD(std::vector<Tensor>{params[3], params[3]}, {.lr = 0.1}); },
               {"SGD", "more than one group"});
  // add_param_group checks against the groups already there.
  optim::SGD opt(std::vector<Tensor>{params[0]}, {.lr = 0.1});
  expect_error([&] { opt.add_param_group(ParamGroup(std::vector<Tensor>{params[0]})); },
               {"SGD", "more than one group"});
  opt.add_param_group(ParamGroup(std::vector<Tensor>{params[1]}, {{"lr", 0.2}}));
  EXPECT_EQ(opt.param_groups().size(), 2u);
  EXPECT_EQ(opt.param_groups()[1].get("momentum"), 0.0);  // filled from the defaults
}

TEST(OptimErrors, NonFloatingParameter) {
  const Tensor labels = i64({1, 2, 3}, {3});
  expect_error([&] { optim::SGD(std::vector<Tensor>{labels}, {.lr = 0.1}); },
               {"SGD", "i64", "floating"});
}

}  // namespace
}  // namespace strata::test
