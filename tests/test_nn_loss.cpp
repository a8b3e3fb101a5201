// The losses of nn::functional and the 0-1 error: values and input gradients against PyTorch
// (tests/data/nn_loss.txt from gen_nn_loss.py) in float64 and float32, for every reduction and
// cross_entropy's variants (weights, ignore_index, label smoothing, probability targets,
// [N, C, d...] logits); float64 gradchecks away from the kinks; and the validation errors.
#include <gtest/gtest.h>

#include <cmath>
#include <string>
#include <vector>

#include "fixtures.h"
#include "strata/strata.h"
#include "test_util.h"

namespace strata {
namespace {

namespace F = strata::nn::functional;
using F::Reduction;
using test::expect_close;
using test::expect_error;
using test::expect_gradcheck;
using test::f64;
using test::Fixture;
using test::i64;
using test::random_f64;

const Fixture& fixture() {
  static const Fixture f("nn_loss.txt");
  return f;
}

const std::vector<std::pair<std::string, Reduction>> kReductions = {
    {"mean", Reduction::Mean}, {"sum", Reduction::Sum}, {"none", Reduction::None}};

// One input of a fixture case: the fixture tensor `key`, and the suffix its gradient is stored
// under ("" when no gradient is checked). Floating inputs run in the case's dtype.
struct Input {
  std::string key;
  std::string grad;
};

using CaseFn = std::function<Tensor(const std::vector<Tensor>&)>;

// Runs fn on the fixture inputs in `dtype` and compares <name>.out and every <name>.grad_<g>
// with PyTorch's. For a non-scalar output, the gradient is that of sum(out * <name>.gout).
void check_case(const std::string& name, const std::vector<Input>& inputs, const CaseFn& fn,
                DType dtype) {
  SCOPED_TRACE(name + " in " + dtype_name(dtype));
  const Fixture& f = fixture();
  std::vector<Tensor> args;
  for (const Input& in : inputs) {
    // A fresh leaf: the fixture's own tensor is shared by every case.
    Tensor t = f[in.key].detach();
    if (is_floating(t.dtype())) t = t.to(dtype).detach();
    if (!in.grad.empty()) t.set_requires_grad(true);
    args.push_back(t);
  }
  const Tensor out = fn(args);
  EXPECT_EQ(out.dtype(), dtype);
  expect_close(out, f[name + ".out"]);
  Tensor total = out;
  if (f.has(name + ".gout")) total = sum(mul(out, f[name + ".gout"].to(dtype)));
  total.backward();
  for (size_t i = 0; i < inputs.size(); ++i) {
    if (inputs[i].grad.empty()) continue;
    SCOPED_TRACE("gradient of " + inputs[i].key);
    expect_close(args[i].grad(), f[name + ".grad_" + inputs[i].grad]);
  }
}

void check_both(const std::string& name, const std::vector<Input>& inputs, const CaseFn& fn) {
  check_case(name, inputs, fn, kFloat64);
  check_case(name, inputs, fn, kFloat32);
}

// ---- cross_entropy and nll_loss against PyTorch ---------------------------------------------

TEST(NNLoss, CrossEntropyClassIndicesMatchesPyTorch) {
  for (const auto& [r, reduction] : kReductions) {
    F::CrossEntropyOptions plain;
    plain.reduction = reduction;
    check_both("ce.plain." + r, {{"ce.logits", "logits"}, {"ce.target", ""}},
               [&](const std::vector<Tensor>& a) { return F::cross_entropy(a[0], a[1], plain); });
    check_both("ce.weighted." + r,
               {{"ce.logits", "logits"}, {"ce.target", ""}, {"ce.weight", ""}},
               [&](const std::vector<Tensor>& a) {
                 F::CrossEntropyOptions o;
                 o.weight = a[2];
                 o.reduction = reduction;
                 return F::cross_entropy(a[0], a[1], o);
               });
    check_both("ce.ignore." + r,
               {{"ce.logits", "logits"}, {"ce.target_ignore", ""}, {"ce.weight", ""}},
               [&](const std::vector<Tensor>& a) {
                 F::CrossEntropyOptions o;
                 o.weight = a[2];
                 o.reduction = reduction;
                 return F::cross_entropy(a[0], a[1], o);
               });
    check_both("ce.smooth." + r,
               {{"ce.logits", "logits"}, {"ce.target_ignore", ""}, {"ce.weight", ""}},
               [&](const std::vector<Tensor>& a) {
                 F::CrossEntropyOptions o;
                 o.weight = a[2];
                 o.label_smoothing = 0.2;
                 o.reduction = reduction;
                 return F::cross_entropy(a[0], a[1], o);
               });
  }
  check_both("ce.smooth_noweight.mean", {{"ce.logits", "logits"}, {"ce.target_ignore", ""}},
             [](const std::vector<Tensor>& a) {
               F::CrossEntropyOptions o;
               o.label_smoothing = 0.3;
               return F::cross_entropy(a[0], a[1], o);
             });
  check_both("ce.ignore1.mean", {{"ce.logits", "logits"}, {"ce.target", ""}},
             [](const std::vector<Tensor>& a) {
               F::CrossEntropyOptions o;
               o.ignore_index = 1;  // a real class: its targets count for nothing
               return F::cross_entropy(a[0], a[1], o);
             });
}

TEST(NNLoss, CrossEntropyProbabilityTargetsMatchPyTorch) {
  for (const auto& [r, reduction] : kReductions) {
    check_both("ce.soft." + r, {{"ce.logits", "logits"}, {"ce.soft", ""}, {"ce.weight", ""}},
               [&](const std::vector<Tensor>& a) {
                 F::CrossEntropyOptions o;
                 o.weight = a[2];
                 o.label_smoothing = 0.1;
                 o.reduction = reduction;
                 return F::cross_entropy(a[0], a[1], o);
               });
  }
  check_both("ce.soft_noweight.mean", {{"ce.logits", "logits"}, {"ce.soft", ""}},
             [](const std::vector<Tensor>& a) { return F::cross_entropy(a[0], a[1]); });
  check_both("ce.onehot.mean", {{"ce.logits", "logits"}, {"ce.onehot", ""}},
             [](const std::vector<Tensor>& a) { return F::cross_entropy(a[0], a[1]); });
}

TEST(NNLoss, CrossEntropySpatialMatchesPyTorch) {
  for (const auto& [r, reduction] : kReductions) {
    check_both("ce_nd." + r, {{"ce_nd.logits", "logits"}, {"ce_nd.target", ""}, {"ce.weight", ""}},
               [&](const std::vector<Tensor>& a) {
                 F::CrossEntropyOptions o;
                 o.weight = a[2];
                 o.label_smoothing = 0.15;
                 o.reduction = reduction;
                 return F::cross_entropy(a[0], a[1], o);
               });
    check_both("ce_nd_soft." + r,
               {{"ce_nd.logits", "logits"}, {"ce_nd.soft", ""}, {"ce.weight", ""}},
               [&](const std::vector<Tensor>& a) {
                 F::CrossEntropyOptions o;
                 o.weight = a[2];
                 o.reduction = reduction;
                 return F::cross_entropy(a[0], a[1], o);
               });
  }
}

TEST(NNLoss, NllLossMatchesPyTorch) {
  for (const auto& [r, reduction] : kReductions) {
    check_both("nll." + r, {{"nll.lp", "lp"}, {"ce.target_ignore", ""}, {"ce.weight", ""}},
               [&](const std::vector<Tensor>& a) {
                 return F::nll_loss(a[0], a[1], a[2], reduction);
               });
  }
  check_both("nll_nd.mean", {{"nll_nd.lp", "lp"}, {"ce_nd.target", ""}, {"ce.weight", ""}},
             [](const std::vector<Tensor>& a) { return F::nll_loss(a[0], a[1], a[2]); });
}

// ---- binary cross-entropy -------------------------------------------------------------------

TEST(NNLoss, BinaryCrossEntropyMatchesPyTorch) {
  for (const auto& [r, reduction] : kReductions) {
    check_both("bce." + r, {{"bce.probs", "p"}, {"bce.target", "y"}, {"bce.weight", ""}},
               [&](const std::vector<Tensor>& a) {
                 return F::binary_cross_entropy(a[0], a[1], a[2], reduction);
               });
    check_both("bcel." + r,
               {{"bce.logits", "x"}, {"bce.target", "y"}, {"bce.weight", ""},
                {"bce.pos_weight", ""}},
               [&](const std::vector<Tensor>& a) {
                 return F::binary_cross_entropy_with_logits(a[0], a[1], a[2], reduction, a[3]);
               });
  }
  check_both("bce_plain.mean", {{"bce.probs", "p"}, {"bce.target", ""}},
             [](const std::vector<Tensor>& a) { return F::binary_cross_entropy(a[0], a[1]); });
  check_both("bcel_plain.mean", {{"bce.logits", "x"}, {"bce.target", ""}},
             [](const std::vector<Tensor>& a) {
               return F::binary_cross_entropy_with_logits(a[0], a[1]);
             });
}

TEST(NNLoss, BinaryCrossEntropySaturatedInputsStayFinite) {
  // p exactly 0 and 1: logs clamped at -100, gradients bounded by PyTorch's epsilon.
  check_both("bce_edge.sum", {{"bce_edge.probs", "p"}, {"bce_edge.target", ""}},
             [](const std::vector<Tensor>& a) {
               return F::binary_cross_entropy(a[0], a[1], Tensor(), Reduction::Sum);
             });
  // Logits of +-200 neither overflow nor lose the loss of the wrong side.
  check_both("bcel_big.none", {{"bcel_big.logits", "x"}, {"bcel_big.target", ""}},
             [](const std::vector<Tensor>& a) {
               return F::binary_cross_entropy_with_logits(a[0], a[1], Tensor(), Reduction::None);
             });
}

TEST(NNLoss, BinaryCrossEntropyWithLogitsGradientAtZero) {
  // A zero-initialized output layer gives logits exactly 0: the gradient there must be the
  // true one, t * sigmoid(0) - pos_weight * y with t = 1 + (pos_weight - 1) y, not a one-sided
  // derivative of max(x, 0) or |x|.
  Tensor x = zeros({3}, kFloat64).set_requires_grad(true);
  const Tensor y = f64({1.0, 0.0, 0.25});
  const Tensor pos_weight = f64({2.0, 3.0, 0.5});
  F::binary_cross_entropy_with_logits(x, y, Tensor(), Reduction::Sum, pos_weight).backward();
  std::vector<double> expected;
  for (size_t i = 0; i < 3; ++i) {
    const double yi = y.to_vector<double>()[i], pw = pos_weight.to_vector<double>()[i];
    expected.push_back((1.0 + (pw - 1.0) * yi) * 0.5 - pw * yi);
  }
  test::expect_values(x.grad(), {3}, expected);
  // Without pos_weight: sigmoid(0) - y.
  Tensor x0 = zeros({3}, kFloat64).set_requires_grad(true);
  F::binary_cross_entropy_with_logits(x0, y, Tensor(), Reduction::Sum).backward();
  test::expect_values(x0.grad(), {3}, {-0.5, 0.5, 0.25});
}

// ---- regression and margin losses -----------------------------------------------------------

TEST(NNLoss, RegressionLossesMatchPyTorch) {
  for (const auto& [r, reduction] : kReductions) {
    const std::vector<Input> in = {{"reg.input", "x"}, {"reg.target", "y"}};
    check_both("mse." + r, in,
               [&](const std::vector<Tensor>& a) { return F::mse_loss(a[0], a[1], reduction); });
    check_both("l1." + r, in,
               [&](const std::vector<Tensor>& a) { return F::l1_loss(a[0], a[1], reduction); });
    check_both("huber." + r, in,
               [&](const std::vector<Tensor>& a) { return F::huber_loss(a[0], a[1], reduction); });
    check_both("smooth_l1." + r, in, [&](const std::vector<Tensor>& a) {
      return F::smooth_l1_loss(a[0], a[1], reduction);
    });
  }
  const std::vector<Input> in = {{"reg.input", "x"}, {"reg.target", "y"}};
  check_both("huber_d05.mean", in, [](const std::vector<Tensor>& a) {
    return F::huber_loss(a[0], a[1], Reduction::Mean, 0.5);
  });
  check_both("smooth_l1_b05.mean", in, [](const std::vector<Tensor>& a) {
    return F::smooth_l1_loss(a[0], a[1], Reduction::Mean, 0.5);
  });
}

TEST(NNLoss, SmoothL1WithZeroBetaIsL1) {
  const Fixture& f = fixture();
  expect_close(F::smooth_l1_loss(f["reg.input"], f["reg.target"], Reduction::Mean, 0.0),
               f["l1.mean.out"]);
}

TEST(NNLoss, MarginLossesMatchPyTorch) {
  for (const auto& [r, reduction] : kReductions) {
    const std::vector<Input> in = {{"margin.f", "f"}, {"margin.y", ""}};
    check_both("hinge." + r, in,
               [&](const std::vector<Tensor>& a) { return F::hinge_loss(a[0], a[1], reduction); });
    check_both("exp." + r, in, [&](const std::vector<Tensor>& a) {
      return F::exponential_loss(a[0], a[1], reduction);
    });
    check_both("perceptron." + r, in, [&](const std::vector<Tensor>& a) {
      return F::perceptron_loss(a[0], a[1], reduction);
    });
    check_both("mm." + r, {{"mm.scores", "s"}, {"ce.target", ""}},
               [&](const std::vector<Tensor>& a) {
                 return F::multi_margin_loss(a[0], a[1], reduction);
               });
    check_both("mm_w." + r, {{"mm.scores", "s"}, {"ce.target", ""}, {"ce.weight", ""}},
               [&](const std::vector<Tensor>& a) {
                 return F::multi_margin_loss(a[0], a[1], reduction, 0.7, a[2]);
               });
  }
  check_both("hinge_m05.sum", {{"margin.f", "f"}, {"margin.y", ""}},
             [](const std::vector<Tensor>& a) {
               return F::hinge_loss(a[0], a[1], Reduction::Sum, 0.5);
             });
}

TEST(NNLoss, MarginLossesTakeInt64Targets) {
  const Fixture& f = fixture();
  const Tensor y_int = f["margin.y"].to(kInt64);
  expect_close(F::hinge_loss(f["margin.f"], y_int), f["hinge.mean.out"]);
  expect_close(F::exponential_loss(f["margin.f"], y_int), f["exp.mean.out"]);
  expect_close(F::perceptron_loss(f["margin.f"], y_int), f["perceptron.mean.out"]);
}

TEST(NNLoss, PerceptronUpdatesAtZeroScore) {
  // The perceptron rule updates on y f <= 0: a score of exactly 0 gets the gradient -y.
  Tensor f = zeros({2}, kFloat64).set_requires_grad(true);
  F::perceptron_loss(f, f64({1.0, -1.0}), Reduction::Sum).backward();
  test::expect_values(f.grad(), {2}, {-1.0, 1.0});
}

// ---- zero-one error -------------------------------------------------------------------------

TEST(NNLoss, ZeroOneErrorMatchesPyTorch) {
  const Fixture& f = fixture();
  for (DType dtype : {kFloat64, kFloat32}) {
    const Tensor e = F::zero_one_error(f["zo.scores"].to(dtype), f["zo.target"]);
    EXPECT_EQ(e.dtype(), dtype);
    EXPECT_EQ(e.dim(), 0);
    expect_close(e, f["zo.out"]);
    // Binary scores with -1/+1 targets; a score of 0 counts as an error.
    const Tensor e1 = F::zero_one_error(f["zo1.scores"].to(dtype), f["zo1.target"]);
    expect_close(e1, f["zo1.out"]);
  }
}

TEST(NNLoss, ZeroOneErrorIsNotRecorded) {
  Tensor scores = random_f64({4, 3}, -1, 1, 7, /*requires_grad=*/true);
  const Tensor e = F::zero_one_error(scores, i64({0, 1, 2, 0}));
  EXPECT_FALSE(e.requires_grad());
}

// ---- gradchecks (float64, away from kinks) --------------------------------------------------

TEST(NNLoss, GradcheckCrossEntropy) {
  const Tensor logits = random_f64({4, 3}, -2, 2, 11, true);
  const Tensor target = i64({2, -100, 0, 1});
  const Tensor weight = f64({0.5, 2.0, 1.25});
  for (const auto& [r, reduction] : kReductions) {
    SCOPED_TRACE(r);
    F::CrossEntropyOptions o;
    o.weight = weight;
    o.label_smoothing = 0.1;
    o.reduction = reduction;
    expect_gradcheck(
        [&](const std::vector<Tensor>& a) { return F::cross_entropy(a[0], target, o); },
        {logits});
  }
  // Spatial logits [N, C, d] and probability targets.
  const Tensor logits_nd = random_f64({2, 3, 2}, -2, 2, 12, true);
  expect_gradcheck([&](const std::vector<Tensor>& a) {
    return F::cross_entropy(a[0], i64({0, 2, 1, 1}, {2, 2}));
  }, {logits_nd});
  const Tensor soft = F::softmax(random_f64({4, 3}, -1, 1, 13), 1);
  expect_gradcheck([&](const std::vector<Tensor>& a) {
    F::CrossEntropyOptions o;
    o.reduction = Reduction::None;
    return F::cross_entropy(a[0], soft, o);
  }, {logits});
}


TEST(NNLoss, GradcheckNllLoss) {
  const Tensor log_probs = random_f64({5, 3}, -3, -0.1, 21, true);
  const Tensor target = i64({2, 0, -100, 1, 1});
  const Tensor weight = f64({0.5, 2.0, 1.25});
  for (const auto& [r, reduction] : kReductions) {
    SCOPED_TRACE(r);
    expect_gradcheck([&](const std::vector<Tensor>& a) {
      return F::nll_loss(a[0], target, weight, reduction);
    }, {log_probs});
  }
}

TEST(NNLoss, GradcheckBinaryCrossEntropy) {
  const Tensor p = random_f64({3, 4}, 0.1, 0.9, 31, true);
  const Tensor y = random_f64({3, 4}, 0, 1, 32, true);
  const Tensor w = random_f64({4}, 0.5, 2, 33);
  for (const auto& [r, reduction] : kReductions) {
    SCOPED_TRACE(r);
    expect_gradcheck([&](const std::vector<Tensor>& a) {
      return F::binary_cross_entropy(a[0], a[1], w, reduction);
    }, {p, y});
  }
  // Logits away from 0 (the kink of |x| and max(x, 0) in the stable form).
  const Tensor x = test::f64(test::uniform_avoiding(12, -4, 4, {0.0}, 0.1, 34), {3, 4}, true);
  const Tensor pos_weight = random_f64({4}, 0.5, 3, 35);
  for (const auto& [r, reduction] : kReductions) {
    SCOPED_TRACE(r);
    expect_gradcheck([&](const std::vector<Tensor>& a) {
      return F::binary_cross_entropy_with_logits(a[0], a[1], w, reduction, pos_weight);
    }, {x, y});
  }
}

TEST(NNLoss, GradcheckRegressionLosses) {
  // d = x - y kept 0.1 away from 0 and from +-1 and +-0.5 (the kinks at delta and beta).
  const auto d = test::uniform_avoiding(12, -3, 3, {0.0, 1.0, -1.0, 0.5, -0.5}, 0.1, 41);
  const Tensor y = random_f64({3, 4}, -1, 1, 42, true);
  std::vector<double> xv(12);
  const auto yv = y.to_vector<double>();
  for (size_t i = 0; i < 12; ++i) xv[i] = yv[i] + d[i];
  const Tensor x = f64(xv, {3, 4}, true);
  for (const auto& [r, reduction] : kReductions) {
    SCOPED_TRACE(r);
    expect_gradcheck(
        [&](const std::vector<Tensor>& a) { return F::mse_loss(a[0], a[1], reduction); }, {x, y});
    expect_gradcheck(
        [&](const std::vector<Tensor>& a) { return F::l1_loss(a[0], a[1], reduction); }, {x, y});
    expect_gradcheck([&](const std::vector<Tensor>& a) {
      return F::huber_loss(a[0], a[1], reduction, 1.0);
    }, {x, y});
    expect_gradcheck([&](const std::vector<Tensor>& a) {
      return F::smooth_l1_loss(a[0], a[1], reduction, 0.5);
    }, {x, y});
  }
}

TEST(NNLoss, GradcheckMarginLosses) {
  // y f kept 0.1 away from 0 and 1 (the kinks of the perceptron and hinge losses).
  const Tensor y = f64({1, -1, -1, 1, 1, -1, 1, -1}, {2, 4});
  const auto yf = test::uniform_avoiding(8, -2, 2, {0.0, 1.0}, 0.1, 51);
  std::vector<double> fv(8);
  const auto yv = y.to_vector<double>();
  for (size_t i = 0; i < 8; ++i) fv[i] = yf[i] * yv[i];
  const Tensor f = f64(fv, {2, 4}, true);
  for (const auto& [r, reduction] : kReductions) {
    SCOPED_TRACE(r);
    expect_gradcheck(
        [&](const std::vector<Tensor>& a) { return F::hinge_loss(a[0], y, reduction); }, {f});
    expect_gradcheck([&](const std::vector<Tensor>& a) {
      return F::exponential_loss(a[0], y, reduction);
    }, {f});
    expect_gradcheck([&](const std::vector<Tensor>& a) {
      return F::perceptron_loss(a[0], y, reduction);
    }, {f});
  }
  // multi_margin_loss: scores on a 0.3 grid and margin 1.15, so no margin - f_y + f_j is near 0.
  const Tensor scores = f64(test::distinct_values(12, 0.3, 52), {3, 4}, true);
  const Tensor target = i64({1, 3, 0});
  const Tensor weight = f64({0.5, 1.0, 1.5, 2.0});
  for (const auto& [r, reduction] : kReductions) {
    SCOPED_TRACE(r);
    expect_gradcheck([&](const std::vector<Tensor>& a) {
      return F::multi_margin_loss(a[0], target, reduction, 1.15, weight);
    }, {scores});
  }
}

// ---- reductions and special cases -----------------------------------------------------------

TEST(NNLoss, MeanOverNoElementIsNaN) {
  const Tensor empty = zeros({0, 3}, kFloat64);
  EXPECT_TRUE(std::isnan(F::mse_loss(empty, empty).item<double>()));
  EXPECT_EQ(F::mse_loss(empty, empty, Reduction::Sum).item<double>(), 0.0);
  // Every target ignored: 0 / 0, as PyTorch.
  const Tensor logits = zeros({2, 3}, kFloat64);
  EXPECT_TRUE(std::isnan(F::cross_entropy(logits, i64({-100, -100})).item<double>()));
}

TEST(NNLoss, UnbatchedClassIndexInput) {
  // logits [C] with a 0-d target: the loss of a batch of one.
  const Fixture& f = fixture();
  const Tensor logits = f["ce.logits"];
  const Tensor row = logits.select(0, 1);  // target 3
  const Tensor batched = F::cross_entropy(row.unsqueeze(0), i64({3}));
  expect_close(F::cross_entropy(row, scalar_tensor(3, kInt64)), batched);
  F::CrossEntropyOptions none;
  none.reduction = Reduction::None;
  EXPECT_EQ(F::cross_entropy(row, scalar_tensor(3, kInt64), none).dim(), 0);
}

// ---- validation errors ----------------------------------------------------------------------

TEST(NNLoss, ClassIndexOutOfRange) {
  const Tensor logits = zeros({3, 4});
  expect_error([&] { F::cross_entropy(logits, i64({0, 4, 1})); },
               {"cross_entropy", "class index 4", "4 classes", "[3]"});
  expect_error([&] { F::cross_entropy(logits, i64({0, -1, 1})); },
               {"cross_entropy", "class index -1", "4 classes"});
  expect_error([&] { F::nll_loss(logits, i64({0, 7, 1})); }, {"nll_loss", "class index 7"});
  expect_error([&] { F::multi_margin_loss(logits, i64({0, 1, 9})); },
               {"multi_margin_loss", "class index 9", "4 classes"});
  expect_error([&] { F::zero_one_error(logits, i64({0, 1, 5})); },
               {"zero_one_error", "class index 5"});
  // ignore_index may take any value, in range or not; others are still checked.
  F::CrossEntropyOptions o;
  o.ignore_index = 9;
  EXPECT_NO_THROW(F::cross_entropy(logits, i64({0, 9, 1}), o));
  expect_error([&] { F::cross_entropy(logits, i64({0, -100, 1}), o); },
               {"cross_entropy", "class index -100"});
}

TEST(NNLoss, TargetShapeAndDtypeErrors) {
  const Tensor logits = zeros({3, 4});
  expect_error([&] { F::cross_entropy(logits, i64({0, 1})); },
               {"cross_entropy", "target shape [2]", "input shape [3,4]"});
  expect_error([&] { F::cross_entropy(zeros({2, 4, 5}), zeros({2, 4}, kInt64)); },
               {"cross_entropy", "[2,4]", "[2,4,5]", "expected target [2,5]"});
  // A float target of another shape is a probability target that does not match.
  expect_error([&] { F::cross_entropy(logits, zeros({3, 5})); },
               {"cross_entropy", "[3,5]", "[3,4]"});
  expect_error([&] { F::cross_entropy(logits, zeros({3}, kUInt8)); },
               {"cross_entropy", "int64", "u8"});
  expect_error([&] { F::cross_entropy(logits, zeros({3, 4}, kFloat64)); },
               {"cross_entropy", "f64", "f32"});
  expect_error([&] { F::nll_loss(logits, zeros({3}, kFloat32)); },
               {"nll_loss", "must be int64", "[3] f32"});
  expect_error([&] { F::mse_loss(zeros({3, 4}), zeros({4, 3})); },
               {"mse_loss", "[4,3]", "[3,4]"});
  expect_error([&] { F::l1_loss(zeros({3}), zeros({3}, kFloat64)); },
               {"l1_loss", "f64", "f32"});
  expect_error([&] { F::mse_loss(zeros({3}, kInt64), zeros({3}, kInt64)); },
               {"mse_loss", "floating", "i64"});
  expect_error([&] { F::binary_cross_entropy(zeros({2, 2}), zeros({4})); },
               {"binary_cross_entropy", "[4]", "[2,2]"});
  expect_error([&] { F::binary_cross_entropy_with_logits(zeros({2, 2}), zeros({2, 3})); },
               {"binary_cross_entropy_with_logits", "[2,3]", "[2,2]"});
  expect_error([&] { F::hinge_loss(zeros({4}), ones({3})); }, {"hinge_loss", "[3]", "[4]"});
  expect_error([&] { F::multi_margin_loss(zeros({3, 4}), zeros({3})); },
               {"multi_margin_loss", "int64"});
  expect_error([&] { F::multi_margin_loss(zeros({4}), scalar_tensor(1, kInt64)); },
               {"multi_margin_loss", "2-D", "[4]"});
  expect_error([&] { F::nll_loss(zeros({}), scalar_tensor(1, kInt64)); }, {"nll_loss", "[N, C]"});
}

TEST(NNLoss, WeightErrors) {
  const Tensor logits = zeros({3, 4});
  const Tensor target = i64({0, 1, 2});
  F::CrossEntropyOptions o;
  o.weight = ones({3});
  expect_error([&] { F::cross_entropy(logits, target, o); },
               {"cross_entropy", "weight must be [4]", "[3] f32"});
  o.weight = ones({4}, kFloat64);
  expect_error([&] { F::cross_entropy(logits, target, o); }, {"cross_entropy", "weight", "f64"});
  expect_error([&] { F::nll_loss(logits, target, ones({5})); }, {"nll_loss", "weight must be [4]"});
  expect_error([&] { F::multi_margin_loss(logits, target, Reduction::Mean, 1.0, ones({2})); },
               {"multi_margin_loss", "weight must be [4]"});
  expect_error([&] { F::binary_cross_entropy(full({3, 4}, 0.5), zeros({3, 4}), ones({3})); },
               {"binary_cross_entropy", "weight [3]", "[3,4]"});
  expect_error([&] {
    F::binary_cross_entropy_with_logits(logits, zeros({3, 4}), Tensor(), Reduction::Mean,
                                        ones({5}));
  }, {"binary_cross_entropy_with_logits", "pos_weight [5]", "[3,4]"});
}

TEST(NNLoss, ValueErrors) {
  expect_error([&] { F::binary_cross_entropy(f64({0.5, 1.5}), f64({0.0, 1.0})); },
               {"binary_cross_entropy", "[0, 1]", "1.5", "with_logits"});
  expect_error([&] { F::hinge_loss(zeros({3}), test::f32({1, 0, -1})); },
               {"hinge_loss", "-1 or +1", "1 of 3"});
  expect_error([&] { F::perceptron_loss(zeros({2}), i64({2, 1})); },
               {"perceptron_loss", "-1 or +1"});
  expect_error([&] { F::zero_one_error(zeros({2}), i64({0, 1})); },
               {"zero_one_error", "-1 or +1"});
  expect_error([&] { F::huber_loss(zeros({2}), zeros({2}), Reduction::Mean, 0.0); },
               {"huber_loss", "delta"});
  expect_error([&] { F::smooth_l1_loss(zeros({2}), zeros({2}), Reduction::Mean, -1.0); },
               {"smooth_l1_loss", "beta"});
  F::CrossEntropyOptions o;
  o.label_smoothing = 1.5;
  expect_error([&] { F::cross_entropy(zeros({2, 3}), i64({0, 1}), o); },
               {"cross_entropy", "label_smoothing", "1.5"});
}

TEST(NNLoss, ErrorsComeBeforeComputation) {
  // A failed check must leave no node behind and touch no gradient.
  Tensor logits = zeros({3, 4}).set_requires_grad(true);
  EXPECT_THROW(F::cross_entropy(logits, i64({0, 4, 1})), Error);
  EXPECT_FALSE(logits.grad().defined());
}

}  // namespace
}  // namespace strata
