// The learning-rate schedulers (strata/optim/scheduler.h):
// - against PyTorch 1.13 (tests/data/gen_optim_scheduler.py): the lr of both groups of an SGD
//   optimizer after construction and after each of 30 steps, for every scheduler and the
//   option sets the generator covers; OneCycleLR's cycled momentum (SGD's momentum, Adam's
//   beta1); two chainable schedulers stepped together; ReduceLROnPlateau on fixed metric
//   sequences; CosineAnnealingWarmRestarts stepped to fractional epochs;
// - state_dict round trips: a fresh optimizer and scheduler, loaded mid-schedule (in either
//   order), go on with the same lrs;
// - bad arguments throw strata::Error naming the scheduler and the value.
#include <gtest/gtest.h>

#include <cmath>
#include <functional>
#include <memory>
#include <ostream>
#include <string>
#include <utility>
#include <vector>

#include "fixtures.h"
#include "strata/optim/scheduler.h"
#include "strata/strata.h"
#include "test_util.h"

namespace strata::test {
namespace {

using optim::LRScheduler;
using optim::Optimizer;

const Fixture& fixture() {
  static const Fixture f("optim_scheduler.txt");
  return f;
}

// gen_optim_scheduler.py's STEPS: every case steps this many times after construction.
constexpr int64_t kSteps = 30;

// rtol 1e-12 (the brief's): the formulas repeat PyTorch's operations in its order, so only an
// ulp here and there can differ, compounded over at most 30 chained steps. atol 1e-15: lrs
// that pass through 0 (a cosine's minimum) have no relative scale.
constexpr double kRtol = 1e-12, kAtol = 1e-15;

// SGD with two groups, lr 0.1 and 0.05, momentum 0.9 (the generator's sgd()).
std::unique_ptr<Optimizer> make_sgd() {
  std::vector<optim::ParamGroup> groups;
  groups.emplace_back(std::vector<Tensor>{zeros({2}, kFloat64)}, optim::GroupOptions{{"lr", 0.1}});
  groups.emplace_back(std::vector<Tensor>{zeros({3}, kFloat64)}, optim::GroupOptions{{"lr", 0.05}});
  return std::make_unique<optim::SGD>(std::move(groups),
                                      optim::SGDOptions{.lr = 0.1, .momentum = 0.9});
}

// Adam with two groups, lr 1e-3 and 5e-4 (the generator's adam()).
std::unique_ptr<Optimizer> make_adam() {
  std::vector<optim::ParamGroup> groups;
  groups.emplace_back(std::vector<Tensor>{zeros({2}, kFloat64)}, optim::GroupOptions{{"lr", 1e-3}});
  groups.emplace_back(std::vector<Tensor>{zeros({3}, kFloat64)}, optim::GroupOptions{{"lr", 5e-4}});
  return std::make_unique<optim::Adam>(std::move(groups), optim::AdamOptions{.lr = 1e-3});
}

std::vector<double> lrs_of(const Optimizer& optimizer) {
  std::vector<double> out;
  for (const auto& group : optimizer.param_groups()) out.push_back(group.get("lr"));
  return out;
}

// The option OneCycleLR cycles: beta1 for Adam, momentum for SGD.
std::vector<double> momenta_of(const Optimizer& optimizer) {
  std::vector<double> out;
  for (const auto& group : optimizer.param_groups()) {
    out.push_back(group.options.count("beta1") != 0 ? group.get("beta1") : group.get("momentum"));
  }
  return out;
}

// Rows of per-group values as a [rows, groups] tensor, to compare with a fixture.
Tensor as_tensor(const std::vector<std::vector<double>>& rows) {
  std::vector<double> flat;
  for (const auto& row : rows) flat.insert(flat.end(), row.begin(), row.end());
  return from_vector<double>(flat, {static_cast<int64_t>(rows.size()),
                                    static_cast<int64_t>(rows.front().size())});
}

// Rows first..last of a fixture's [rows, groups] tensor.
Tensor fixture_rows(const std::string& name, int64_t first, int64_t last) {
  const Tensor& all = fixture()[name];
  const int64_t groups = all.shape()[1];
  const std::vector<double> values = all.to_vector<double>();
  const std::vector<double> rows(values.begin() + first * groups,
                                 values.begin() + (last + 1) * groups);
  return from_vector<double>(rows, {last - first + 1, groups});
}

// ---- the epoch-driven schedulers against PyTorch ----------------------------------------------

using Schedulers = std::vector<std::unique_ptr<LRScheduler>>;

// One case of gen_optim_scheduler.py: the schedulers, stepped together in this order.
struct Case {
  std::string name;
  bool adam = false;      // Adam instead of SGD
  bool momentum = false;  // the fixture holds <name>_momentum
  std::function<Schedulers(Optimizer&)> make;
};

template <typename Scheduler, typename... Args>
std::function<Schedulers(Optimizer&)> one(Args... args) {
  return [=](Optimizer& optimizer) {
    Schedulers out;
    out.push_back(std::make_unique<Scheduler>(optimizer, args...));
    return out;
  };
}

std::vector<Case> cases() {
  using namespace optim;
  return {
      {"step", false, false, one<StepLR>(int64_t{4}, 0.5)},
      {"multistep", false, false, one<MultiStepLR>(std::vector<int64_t>{15, 3, 8, 8}, 0.3)},
      {"exponential", false, false, one<ExponentialLR>(0.9)},
      {"cosine", false, false, one<CosineAnnealingLR>(int64_t{10}, 0.001)},
      {"cosine_default", false, false, one<CosineAnnealingLR>(int64_t{7})},
      {"warm_restarts", false, false,
       one<CosineAnnealingWarmRestarts>(int64_t{5}, int64_t{1}, 0.001)},
      {"warm_restarts_mult", false, false,
       one<CosineAnnealingWarmRestarts>(int64_t{3}, int64_t{2})},
      {"linear", false, false, one<LinearLR>()},
      {"linear_decay", false, false,
       one<LinearLR>(LinearLROptions{.start_factor = 1.0, .end_factor = 0.25, .total_iters = 8})},
      {"onecycle", false, true, one<OneCycleLR>(std::vector<double>{1.0, 0.5}, kSteps)},
      {"onecycle_linear3", false, true,
       one<OneCycleLR>(0.8, kSteps,
                       OneCycleLROptions{.pct_start = 0.25,
                                         .anneal_strategy = AnnealStrategy::Linear,
                                         .div_factor = 10.0,
                                         .final_div_factor = 100.0,
                                         .three_phase = true})},
      {"onecycle_adam", true, true, one<OneCycleLR>(0.01, kSteps + 5)},
      {"onecycle_fixed_momentum", false, true,
       one<OneCycleLR>(0.4, kSteps, OneCycleLROptions{.cycle_momentum = false})},
      {"chained", false, false,
       [](Optimizer& optimizer) {
         Schedulers out;
         out.push_back(std::make_unique<LinearLR>(
             optimizer, LinearLROptions{.start_factor = 0.1, .total_iters = 5}));
         out.push_back(std::make_unique<ExponentialLR>(optimizer, 0.9));
         return out;
       }},
  };
}

// gtest prints a failing case's parameter: its name, not its bytes.
void PrintTo(const Case& c, std::ostream* out) { *out << c.name; }

class SchedulerCase : public ::testing::TestWithParam<Case> {};

TEST_P(SchedulerCase, MatchesPyTorch) {
  const Case& c = GetParam();
  auto optimizer = c.adam ? make_adam() : make_sgd();
  Schedulers schedulers = c.make(*optimizer);
  std::vector<std::vector<double>> lrs = {lrs_of(*optimizer)}, momenta = {momenta_of(*optimizer)};
  for (int64_t step = 1; step <= kSteps; ++step) {
    for (auto& scheduler : schedulers) scheduler->step();
    lrs.push_back(lrs_of(*optimizer));
    momenta.push_back(momenta_of(*optimizer));
    EXPECT_EQ(schedulers.back()->last_epoch(), step);
    EXPECT_EQ(schedulers.back()->get_last_lr(), lrs.back());
  }
  expect_close(as_tensor(lrs), fixture()[c.name + "_lr"], kRtol, kAtol);
  if (c.momentum) {
    SCOPED_TRACE("momentum");
    expect_close(as_tensor(momenta), fixture()[c.name + "_momentum"], kRtol, kAtol);
  }
}

// Saves the optimizer and the schedulers after `at` steps, loads them into fresh ones (the
// schedulers first or the optimizer first) and checks the lrs from there to the end.
void expect_resumes(const Case& c, int64_t at, bool schedulers_first) {
  SCOPED_TRACE("resume after " + std::to_string(at) + " steps, " +
               (schedulers_first ? "schedulers" : "optimizer") + " loaded first");
  auto optimizer = c.adam ? make_adam() : make_sgd();
  Schedulers schedulers = c.make(*optimizer);
  for (int64_t step = 1; step <= at; ++step) {
    for (auto& scheduler : schedulers) scheduler->step();
  }
  const optim::OptimizerStateDict saved_optimizer = optimizer->state_dict();
  std::vector<optim::SchedulerStateDict> saved;
  for (const auto& scheduler : schedulers) saved.push_back(scheduler->state_dict());

  auto resumed = c.adam ? make_adam() : make_sgd();
  Schedulers resumed_schedulers = c.make(*resumed);  // constructing them changes the lrs
  auto load_schedulers = [&] {
    for (size_t i = 0; i < saved.size(); ++i) resumed_schedulers[i]->load_state_dict(saved[i]);
  };
  if (schedulers_first) {
    load_schedulers();
    resumed->load_state_dict(saved_optimizer);
  } else {
    resumed->load_state_dict(saved_optimizer);
    load_schedulers();
  }
  EXPECT_EQ(resumed_schedulers.back()->last_epoch(), at);
  EXPECT_EQ(resumed_schedulers.back()->get_last_lr(), lrs_of(*resumed));
  std::vector<std::vector<double>> lrs = {lrs_of(*resumed)}, momenta = {momenta_of(*resumed)};
  for (int64_t step = at + 1; step <= kSteps; ++step) {
    for (auto& scheduler : resumed_schedulers) scheduler->step();
    lrs.push_back(lrs_of(*resumed));
    momenta.push_back(momenta_of(*resumed));
  }
  expect_close(as_tensor(lrs), fixture_rows(c.name + "_lr", at, kSteps), kRtol, kAtol);
  if (c.momentum) {
    SCOPED_TRACE("momentum");
    expect_close(as_tensor(momenta), fixture_rows(c.name + "_momentum", at, kSteps), kRtol,
                 kAtol);
  }
}

TEST_P(SchedulerCase, StateDictResumesMidSchedule) {
  expect_resumes(GetParam(), 1, true);
  expect_resumes(GetParam(), 13, false);
  expect_resumes(GetParam(), 22, true);
}

INSTANTIATE_TEST_SUITE_P(OptimScheduler, SchedulerCase, ::testing::ValuesIn(cases()),
                         [](const ::testing::TestParamInfo<Case>& param_info) { return param_info.param.name; });

// ---- the rest against PyTorch ------------------------------------------------------------------

TEST(OptimScheduler, WarmRestartsFractionalEpochsMatchPyTorch) {
  auto optimizer = make_sgd();
  optim::CosineAnnealingWarmRestarts scheduler(*optimizer, 3, 2, 0.002);
  std::vector<std::vector<double>> lrs = {lrs_of(*optimizer)};
  for (double epoch : fixture()["warm_fractional_epochs"].to_vector<double>()) {
    scheduler.step(epoch);
    lrs.push_back(lrs_of(*optimizer));
    EXPECT_EQ(scheduler.last_epoch(), static_cast<int64_t>(std::floor(epoch)));
  }
  for (int i = 0; i < 5; ++i) {
    scheduler.step();
    lrs.push_back(lrs_of(*optimizer));
  }
  expect_close(as_tensor(lrs), fixture()["warm_fractional_lr"], kRtol, kAtol);
}

struct PlateauCase {
  std::string name;
  optim::ReduceLROnPlateauOptions options;
};

std::vector<PlateauCase> plateau_cases() {
  using namespace optim;
  return {
      {"plateau_min", {.factor = 0.5, .patience = 2, .cooldown = 1, .min_lr = 0.004}},
      {"plateau_max_abs",
       {.mode = PlateauMode::Max,
        .factor = 0.3,
        .patience = 1,
        .threshold = 0.05,
        .threshold_mode = ThresholdMode::Abs,
        .min_lrs = {0.01, 0.001}}},
  };
}

TEST(OptimScheduler, ReduceLROnPlateauMatchesPyTorch) {
  for (const PlateauCase& c : plateau_cases()) {
    SCOPED_TRACE(c.name);
    const std::vector<double> metrics = fixture()[c.name + "_metrics"].to_vector<double>();
    auto optimizer = make_sgd();
    optim::ReduceLROnPlateau scheduler(*optimizer, c.options);
    std::vector<std::vector<double>> lrs = {lrs_of(*optimizer)};
    for (double metric : metrics) {
      scheduler.step(metric);
      lrs.push_back(lrs_of(*optimizer));
      EXPECT_EQ(scheduler.get_last_lr(), lrs.back());
    }
    EXPECT_EQ(scheduler.last_epoch(), kSteps);
    expect_close(as_tensor(lrs), fixture()[c.name + "_lr"], kRtol, kAtol);
  }
}

TEST(OptimScheduler, ReduceLROnPlateauStateDictResumesMidSchedule) {
  for (const PlateauCase& c : plateau_cases()) {
    const std::vector<double> metrics = fixture()[c.name + "_metrics"].to_vector<double>();
    for (int64_t at : {3, 8, 17}) {
      SCOPED_TRACE(c.name + " resumed after " + std::to_string(at) + " steps");
      auto optimizer = make_sgd();
      optim::ReduceLROnPlateau scheduler(*optimizer, c.options);
      for (int64_t i = 0; i < at; ++i) scheduler.step(metrics[static_cast<size_t>(i)]);
      const optim::SchedulerStateDict saved = scheduler.state_dict();

      // Default options: load_state_dict brings the saved ones too (as PyTorch's does).
      auto resumed = make_sgd();
      optim::ReduceLROnPlateau resumed_scheduler(*resumed);
      resumed_scheduler.load_state_dict(saved);
      EXPECT_EQ(resumed_scheduler.best(), scheduler.best());
      EXPECT_EQ(resumed_scheduler.num_bad_epochs(), scheduler.num_bad_epochs());
      std::vector<std::vector<double>> lrs = {lrs_of(*resumed)};
      for (int64_t i = at; i < kSteps; ++i) {
        resumed_scheduler.step(metrics[static_cast<size_t>(i)]);
        lrs.push_back(lrs_of(*resumed));
      }
      expect_close(as_tensor(lrs), fixture_rows(c.name + "_lr", at, kSteps), kRtol, kAtol);
    }
  }
}

// ---- behaviour ----------------------------------------------------------------------------------

TEST(OptimScheduler, BaseLrsComeFromInitialLr) {
  auto optimizer = make_sgd();
  optim::LinearLR warmup(*optimizer, {.start_factor = 0.5});
  EXPECT_EQ(lrs_of(*optimizer), (std::vector<double>{0.05, 0.025}));
  // The second scheduler starts from the groups' initial_lr, not from the warmed-up lr.
  optim::CosineAnnealingLR cosine(*optimizer, 10);
  EXPECT_EQ(cosine.base_lrs(), (std::vector<double>{0.1, 0.05}));
  EXPECT_EQ(optimizer->param_groups()[0].get("initial_lr"), 0.1);
  EXPECT_EQ(optimizer->param_groups()[1].get("initial_lr"), 0.05);
}

TEST(OptimScheduler, OneCycleStopsAfterTotalSteps) {
  auto optimizer = make_sgd();
  optim::OneCycleLR scheduler(*optimizer, 1.0, 4);
  for (int i = 0; i < 4; ++i) scheduler.step();  // step total_steps itself is allowed
  const std::vector<double> last = scheduler.get_last_lr();
  expect_error([&] { scheduler.step(); }, {"OneCycleLR", "tried to step 6 times", "total_steps is 4"});
  EXPECT_EQ(scheduler.last_epoch(), 4);  // the failed step changed nothing
  EXPECT_EQ(lrs_of(*optimizer), last);
}

TEST(OptimScheduler, StepAfterAddingAGroupThrows) {
  auto optimizer = make_sgd();
  optim::StepLR scheduler(*optimizer, 2);
  optimizer->add_param_group(optim::ParamGroup({zeros({1}, kFloat64)}));
  expect_error([&] { scheduler.step(); }, {"StepLR", "3 parameter groups", "had 2"});
}

TEST(OptimScheduler, LoadStateDictErrorsChangeNothing) {
  auto optimizer = make_sgd();
  optim::StepLR scheduler(*optimizer, 2, 0.5);
  scheduler.step();
  scheduler.step();  // lr 0.05, 0.025

  auto other = make_sgd();
  optim::ExponentialLR exponential(*other, 0.9);
  expect_error([&] { scheduler.load_state_dict(exponential.state_dict()); },
               {"StepLR.load_state_dict", "\"step_size\""});

  std::vector<optim::ParamGroup> one_group;
  one_group.emplace_back(std::vector<Tensor>{zeros({2}, kFloat64)});
  optim::SGD single(std::move(one_group), {.lr = 0.1});
  optim::StepLR single_scheduler(single, 2, 0.5);
  expect_error([&] { scheduler.load_state_dict(single_scheduler.state_dict()); },
               {"StepLR.load_state_dict", "base_lrs", "one value per parameter group (2)"});

  optim::SchedulerStateDict missing = scheduler.state_dict();
  missing.erase("last_epoch");
  expect_error([&] { scheduler.load_state_dict(missing); }, {"StepLR", "\"last_epoch\""});

  EXPECT_EQ(scheduler.last_epoch(), 2);
  EXPECT_EQ(lrs_of(*optimizer), (std::vector<double>{0.05, 0.025}));
  scheduler.step();
  scheduler.step();
  EXPECT_EQ(lrs_of(*optimizer), (std::vector<double>{0.025, 0.0125}));

  optim::ReduceLROnPlateau plateau(*optimizer);
  optim::SchedulerStateDict bad = plateau.state_dict();
  bad.erase("best");
  expect_error([&] { plateau.load_state_dict(bad); }, {"ReduceLROnPlateau", "\"best\""});
}

// ---- errors -------------------------------------------------------------------------------------

TEST(OptimScheduler, BadArgumentsThrow) {
  using namespace optim;
  auto sgd = make_sgd();
  Optimizer& o = *sgd;
  expect_error([&] { StepLR(o, 0); }, {"StepLR", "step_size", "0"});
  expect_error([&] { StepLR(o, 3, -0.5); }, {"StepLR", "gamma", "-0.5"});
  expect_error([&] { MultiStepLR(o, {2, -4}); }, {"MultiStepLR", "milestones", "-4"});
  expect_error([&] { MultiStepLR(o, {2}, 0.0); }, {"MultiStepLR", "gamma", "0"});
  expect_error([&] { ExponentialLR(o, 0.0); }, {"ExponentialLR", "gamma", "0"});
  expect_error([&] { CosineAnnealingLR(o, 0); }, {"CosineAnnealingLR", "T_max", "0"});
  expect_error([&] { CosineAnnealingLR(o, 5, -0.1); }, {"CosineAnnealingLR", "eta_min", "-0.1"});
  expect_error([&] { CosineAnnealingWarmRestarts(o, -2); },
               {"CosineAnnealingWarmRestarts", "T_0", "-2"});
  expect_error([&] { CosineAnnealingWarmRestarts(o, 2, 0); },
               {"CosineAnnealingWarmRestarts", "T_mult", "0"});
  expect_error([&] { CosineAnnealingWarmRestarts(o, 2).step(-1.5); },
               {"CosineAnnealingWarmRestarts", "epoch", "-1.5"});
  expect_error([&] { LinearLR(o, {.start_factor = 0.0}); }, {"LinearLR", "start_factor", "0"});
  expect_error([&] { LinearLR(o, {.end_factor = 1.5}); }, {"LinearLR", "end_factor", "1.5"});
  expect_error([&] { LinearLR(o, {.total_iters = 0}); }, {"LinearLR", "total_iters", "0"});
  expect_error([&] { OneCycleLR(o, 1.0, 0); }, {"OneCycleLR", "total_steps", "0"});
  expect_error([&] { OneCycleLR(o, -1.0, 10); }, {"OneCycleLR", "max_lr", "-1"});
  expect_error([&] { OneCycleLR(o, std::vector<double>{1.0}, 10); },
               {"OneCycleLR", "expected 2 max_lr", "got 1"});
  expect_error([&] { OneCycleLR(o, 1.0, 10, {.pct_start = 1.5}); },
               {"OneCycleLR", "pct_start", "1.5"});
  expect_error([&] { OneCycleLR(o, 1.0, 10, {.div_factor = 0.0}); },
               {"OneCycleLR", "div_factor", "0"});
  expect_error([&] { OneCycleLR(o, 1.0, 10, {.final_div_factor = -1.0}); },
               {"OneCycleLR", "final_div_factor", "-1"});
  // PyTorch's ZeroDivisionError: pct_start * total_steps = 1 leaves the warm-up no steps.
  expect_error([&] { OneCycleLR(o, 1.0, 10, {.pct_start = 0.1}); },
               {"OneCycleLR", "phase 1 has no steps"});
  optim::Adagrad adagrad(std::vector<Tensor>{zeros({2}, kFloat64)});
  expect_error([&] { OneCycleLR(adagrad, 1.0, 10); },
               {"OneCycleLR", "cycle_momentum", "Adagrad"});
  auto adam = make_adam();
  expect_error([&] { OneCycleLR(*adam, 1.0, 10, {.max_momentum = 1.0}); },
               {"OneCycleLR", "beta1", "1"});
  expect_error([&] { ReduceLROnPlateau(o, {.factor = 1.0}); },
               {"ReduceLROnPlateau", "factor", "1"});
  expect_error([&] { ReduceLROnPlateau(o, {.patience = -1}); },
               {"ReduceLROnPlateau", "patience", "-1"});
  expect_error([&] { ReduceLROnPlateau(o, {.threshold = -0.5}); },
               {"ReduceLROnPlateau", "threshold", "-0.5"});
  expect_error([&] { ReduceLROnPlateau(o, {.cooldown = -2}); },
               {"ReduceLROnPlateau", "cooldown", "-2"});
  expect_error([&] { ReduceLROnPlateau(o, {.min_lr = -1.0}); },
               {"ReduceLROnPlateau", "min_lr", "-1"});
  expect_error([&] { ReduceLROnPlateau(o, {.min_lrs = {0.1, 0.1, 0.1}}); },
               {"ReduceLROnPlateau", "expected 2 min_lrs", "got 3"});
  expect_error([&] { ReduceLROnPlateau(o, {.eps = -1e-3}); },
               {"ReduceLROnPlateau", "eps", "-0.001"});
}

}  // namespace
}  // namespace strata::test
