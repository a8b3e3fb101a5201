// L-BFGS against torch.optim.LBFGS (tests/data/optim_lbfgs.txt, written by
// gen_optim_lbfgs.py): the parameters after every step(), the loss it returns and the
// closure-call and iteration counts, on Rosenbrock (2-D and 10-D) and logistic regression,
// with and without the strong-Wolfe line search; convergence; the state dict round trip; and
// the errors.
#include <gtest/gtest.h>

#include <cmath>
#include <map>
#include <string>
#include <vector>

#include "fixtures.h"
#include "strata/nn/functional.h"
#include "strata/optim/lbfgs.h"
#include "test_util.h"

namespace strata::test {
namespace {

using optim::LBFGS;
using optim::LBFGSOptions;
using optim::LineSearch;

const Fixture& fixture() {
  static const Fixture f("optim_lbfgs.txt");
  return f;
}

// sum_i 100 (x[i+1] - x[i]^2)^2 + (1 - x[i])^2, written as the generator writes it.
Tensor rosenbrock(const Tensor& x) {
  const int64_t n = x.numel();
  const Tensor head = x.slice(0, 0, n - 1), tail = x.slice(0, 1, n);
  const Tensor curve = tail - head * head, offset = 1.0 - head;
  return (100.0 * curve * curve + offset * offset).sum();
}

// Mean binary cross-entropy of sigmoid(X w + b) against Y, plus 0.005 |w|^2.
Tensor logistic(const Tensor& weight, const Tensor& bias) {
  const Fixture& f = fixture();
  const Tensor logits = matmul(f["logistic_x"], weight.unsqueeze(1)).squeeze(1) + bias;
  return nn::functional::binary_cross_entropy_with_logits(logits, f["logistic_y"]) +
         0.005 * (weight * weight).sum();
}

struct Problem {
  std::vector<std::string> names;  // the parameters, in the order the optimizer gets them
  std::vector<Tensor> params;
  std::function<Tensor()> loss;
};

// The fixture case's problem, from its initial parameters (fresh leaves each call).
Problem make_problem(const std::string& name) {
  const Fixture& f = fixture();
  Problem problem;
  const bool is_logistic = name.rfind("logistic", 0) == 0;
  problem.names = is_logistic ? std::vector<std::string>{"weight", "bias"}
                              : std::vector<std::string>{"x"};
  for (const auto& k : problem.names) {
    Tensor p = f[name + "_init_" + k].clone();
    p.set_requires_grad(true);
    problem.params.push_back(p);
  }
  std::vector<Tensor> params = problem.params;
  if (is_logistic) {
    problem.loss = [params] { return logistic(params[0], params[1]); };
  } else {
    problem.loss = [params] { return rosenbrock(params[0]); };
  }
  return problem;
}

// The closure L-BFGS calls: zero the gradients, compute the loss, backward, return it.
optim::Optimizer::Closure closure_for(optim::Optimizer& optimizer, const Problem& problem) {
  return [&optimizer, &problem] {
    optimizer.zero_grad();
    Tensor loss = problem.loss();
    loss.backward();
    return loss;
  };
}

struct FixtureCase {
  std::string name;
  LBFGSOptions options;
  int64_t steps;
};

// The options of gen_optim_lbfgs.py's CASES, case by case.
const std::vector<FixtureCase>& fixture_cases() {
  static const std::vector<FixtureCase> cases = {
      {"rosen2_wolfe", {.line_search = LineSearch::StrongWolfe}, 4},
      {"rosen2_plain", {.lr = 0.05, .max_iter = 10}, 4},
      {"rosen10_wolfe",
       {.max_iter = 10, .history_size = 3, .line_search = LineSearch::StrongWolfe}, 5},
      {"rosen10_plain", {.lr = 0.02, .max_iter = 8, .max_eval = 6, .history_size = 4}, 5},
      {"logistic_wolfe", {.max_iter = 5, .line_search = LineSearch::StrongWolfe}, 4},
      {"logistic_plain", {.max_iter = 7, .history_size = 3}, 4},
  };
  return cases;
}

// PyTorch computes the same float64 formulas; the gap is summation order (dot products,
// reductions) compounded over up to 46 iterations. The generator keeps only cases that move
// by < 1e-10 when their start moves by 1e-15, so 1e-8 is far above the rounding and far
// below what a wrong branch of the line search or a wrong history update produces.
constexpr double kRtol = 1e-8;
constexpr double kAtol = 1e-12;

TEST(OptimLBFGS, MatchesPyTorch) {
  const Fixture& f = fixture();
  for (const FixtureCase& c : fixture_cases()) {
    SCOPED_TRACE(c.name);
    Problem problem = make_problem(c.name);
    LBFGS optimizer(problem.params, c.options);
    const auto closure = closure_for(optimizer, problem);
    const std::vector<double> losses = f[c.name + "_loss"].to_vector<double>();
    const std::vector<int64_t> evals = f[c.name + "_func_evals"].to_vector<int64_t>();
    const std::vector<int64_t> iters = f[c.name + "_n_iter"].to_vector<int64_t>();
    for (int64_t step = 1; step <= c.steps; ++step) {
      SCOPED_TRACE("step " + std::to_string(step));
      const auto k = static_cast<size_t>(step - 1);
      const Tensor loss = optimizer.step(closure);
      expect_values(loss, {}, {losses[k]}, kRtol, kAtol);
      EXPECT_EQ(optimizer.func_evals(), evals[k]);
      EXPECT_EQ(optimizer.n_iter(), iters[k]);
      for (size_t i = 0; i < problem.names.size(); ++i) {
        SCOPED_TRACE(problem.names[i]);
        expect_close(problem.params[i],
                     f[c.name + "_step" + std::to_string(step) + "_" + problem.names[i]], kRtol,
                     kAtol);
      }
    }
  }
}

TEST(OptimLBFGS, ConvergesOnRosenbrock) {
  for (const LineSearch line_search : {LineSearch::StrongWolfe, LineSearch::None}) {
    SCOPED_TRACE(line_search == LineSearch::StrongWolfe ? "strong Wolfe" : "no line search");
    Tensor x = f64({-1.5, 2.0}, {2}, /*requires_grad=*/true);
    Problem problem{{"x"}, {x}, [x] { return rosenbrock(x); }};
    // Without a line search a unit step overshoots in the valley: a smaller fixed step.
    LBFGS optimizer({x}, {.lr = line_search == LineSearch::None ? 0.25 : 1.0,
                          .max_iter = 50,
                          .tolerance_grad = 1e-12,
                          .tolerance_change = 1e-14,
                          .line_search = line_search});
    const auto closure = closure_for(optimizer, problem);
    for (int call = 0; call < 40; ++call) optimizer.step(closure);
    expect_values(x, {2}, {1.0, 1.0}, 0.0, 1e-6);
  }
}

TEST(OptimLBFGS, ConvergesOnLogisticRegression) {
  Problem problem = make_problem("logistic_wolfe");
  // No test on the change of the loss: only the gradient's size stops it.
  LBFGS optimizer(problem.params, {.max_iter = 100,
                                   .tolerance_grad = 1e-10,
                                   .tolerance_change = 0.0,
                                   .line_search = LineSearch::StrongWolfe});
  optimizer.step(closure_for(optimizer, problem));
  // At the minimum the gradient vanishes (the loss is strictly convex: the L2 term).
  optimizer.zero_grad();
  problem.loss().backward();
  for (const Tensor& p : problem.params) {
    expect_values(p.grad(), p.shape(), std::vector<double>(static_cast<size_t>(p.numel()), 0.0),
                  0.0, 1e-8);
  }
}

// Two steps, a state dict, then a third step both in the original and in a fresh optimizer
// loaded from the dict over copies of the parameters: the same values, bit for bit.
TEST(OptimLBFGS, StateDictResumesExactly) {
  for (const LineSearch line_search : {LineSearch::StrongWolfe, LineSearch::None}) {
    SCOPED_TRACE(line_search == LineSearch::StrongWolfe ? "strong Wolfe" : "no line search");
    const LBFGSOptions options{.lr = line_search == LineSearch::None ? 0.5 : 1.0,
                               .max_iter = 4,
                               .history_size = 3,
                               .line_search = line_search};
    Problem problem = make_problem("logistic_wolfe");
    LBFGS optimizer(problem.params, options);
    const auto closure = closure_for(optimizer, problem);
    optimizer.step(closure);
    optimizer.step(closure);
    const optim::OptimizerStateDict dict = optimizer.state_dict();
    EXPECT_TRUE(dict.count("state.0.old_dirs.0"));
    EXPECT_TRUE(dict.count("state.0.prev_flat_grad"));
    EXPECT_FALSE(dict.count("state.1.step"));  // all of it under the first parameter

    Problem resumed = make_problem("logistic_wolfe");
    for (size_t i = 0; i < resumed.params.size(); ++i) {
      NoGradGuard no_grad;
      resumed.params[i].copy_(problem.params[i]);
    }
    LBFGS reloaded(resumed.params, options);
    reloaded.load_state_dict(dict);
    EXPECT_EQ(reloaded.n_iter(), optimizer.n_iter());
    EXPECT_EQ(reloaded.func_evals(), optimizer.func_evals());

    optimizer.step(closure);
    reloaded.step(closure_for(reloaded, resumed));
    for (size_t i = 0; i < problem.params.size(); ++i) {
      expect_close(resumed.params[i], problem.params[i], 0.0, 0.0);
    }
    EXPECT_EQ(reloaded.func_evals(), optimizer.func_evals());
  }
}

TEST(OptimLBFGS, StopsAtAnOptimumWithoutMoving) {
  Tensor x = f64({1.0, 1.0}, {2}, /*requires_grad=*/true);
  Problem problem{{"x"}, {x}, [x] { return rosenbrock(x); }};
  LBFGS optimizer({x});
  const Tensor loss = optimizer.step(closure_for(optimizer, problem));
  expect_values(loss, {}, {0.0});
  expect_values(x, {2}, {1.0, 1.0}, 0.0, 0.0);
  EXPECT_EQ(optimizer.func_evals(), 1);
  EXPECT_EQ(optimizer.n_iter(), 0);
}

TEST(OptimLBFGS, Errors) {
  Tensor x = f64({-1.5, 2.0}, {2}, /*requires_grad=*/true);
  Tensor y = f64({0.5}, {1}, /*requires_grad=*/true);
  {
    LBFGS optimizer({x});
    expect_error([&] { optimizer.step(); }, {"LBFGS", "closure"});
    expect_error([&] { optimizer.step([] { return f64({1.0, 2.0}, {2}); }); },
                 {"LBFGS", "one-element", "[2]"});
    expect_error([&] { optimizer.add_param_group(optim::ParamGroup({y})); },
                 {"LBFGS", "one parameter group", "group 1"});
  }
  expect_error([&] { LBFGS({optim::ParamGroup({x}), optim::ParamGroup({y})}); },
               {"LBFGS", "one parameter group"});
  expect_error([&] { LBFGS({x}, {.lr = -1.0}); }, {"LBFGS", "lr", "-1"});
  expect_error([&] { LBFGS({x}, {.max_iter = 0}); }, {"LBFGS", "max_iter", "0"});
  expect_error([&] { LBFGS({x}, {.max_eval = -2}); }, {"LBFGS", "max_eval", "-2"});
  expect_error([&] { LBFGS({x}, {.tolerance_grad = -1e-3}); }, {"LBFGS", "tolerance_grad"});
  expect_error([&] { LBFGS({x}, {.tolerance_change = -1e-3}); }, {"LBFGS", "tolerance_change"});
  expect_error([&] { LBFGS({x}, {.history_size = 0}); }, {"LBFGS", "history_size", "0"});
  expect_error([&] { LBFGS({optim::ParamGroup({x}, {{"line_search", 2.0}})}); },
               {"LBFGS", "line_search", "2"});
  expect_error([&] { LBFGS(std::vector<Tensor>{}); }, {"LBFGS", "empty parameter list"});
  Tensor z = zeros({3}, TensorOptions(kFloat32).requires_grad(true));
  expect_error([&] { LBFGS({x, z}); }, {"LBFGS", "one dtype and device", "f32"});
}

}  // namespace
}  // namespace strata::test
