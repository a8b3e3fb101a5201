// The autograd tape on the CPU: requires_grad propagation, leaves, accumulation, retain_graph,
// NoGradGuard, detach, graphs with shared inputs, gradients through broadcasting, views and
// joins checked against hand-derived values, gradcheck itself (it must pass correct ops and
// fail a wrong backward), and then a float64 gradcheck of every differentiable op and view
// (STYLE rule 10), with inputs kept away from kinks and ties.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <thread>
#include <vector>

#include "strata/strata.h"
#include "test_util.h"

namespace strata {
namespace {

using test::distinct_values;
using test::expect_gradcheck;
using test::expect_tensor;
using test::expect_values;
using test::f64;
using test::i64;
using test::random_f64;
using test::uniform_avoiding;
using test::uniform_values;

// A float64 leaf requiring grad with values uniform in [lo, hi).
Tensor leaf(const Shape& shape, double lo, double hi, uint32_t seed) {
  return random_f64(shape, lo, hi, seed, /*requires_grad=*/true);
}

// A float64 leaf with distinct values at least 0.3 apart (no ties for max/min/maximum).
Tensor distinct_leaf(const Shape& shape, uint32_t seed) {
  return f64(distinct_values(static_cast<size_t>(numel_of(shape)), 0.3, seed), shape, true);
}

// A float64 leaf whose values are all at least `margin` from each point in `avoid`.
Tensor leaf_avoiding(const Shape& shape, double lo, double hi, const std::vector<double>& avoid,
                     double margin, uint32_t seed) {
  return f64(uniform_avoiding(static_cast<size_t>(numel_of(shape)), lo, hi, avoid, margin, seed),
             shape, true);
}

// ---- tape basics --------------------------------------------------------------------------
TEST(Autograd, RequiresGradPropagates) {
  Tensor x = f64({1, 2, 3}, {3}, true);
  Tensor c = f64({4, 5, 6});
  EXPECT_TRUE(x.requires_grad());
  EXPECT_TRUE(x.is_leaf());
  EXPECT_EQ(x.grad_fn(), nullptr);
  EXPECT_FALSE(c.requires_grad());

  Tensor y = x * c;
  EXPECT_TRUE(y.requires_grad());
  EXPECT_FALSE(y.is_leaf());
  EXPECT_NE(y.grad_fn(), nullptr);

  Tensor z = c * 2.0;  // no input requires grad: nothing recorded
  EXPECT_FALSE(z.requires_grad());
  EXPECT_TRUE(z.is_leaf());
  EXPECT_EQ(z.grad_fn(), nullptr);

  // Views of a leaf requiring grad are recorded too.
  Tensor v = x.view({3, 1});
  EXPECT_TRUE(v.requires_grad());
  EXPECT_FALSE(v.is_leaf());
}

TEST(Autograd, NodeNamesTheOp) {
  Tensor a = f64({1, 2, 3, 4}, {2, 2}, true);
  Tensor y = matmul(a, a);
  ASSERT_NE(y.grad_fn(), nullptr);
  EXPECT_EQ(y.grad_fn()->name, "matmul");
  EXPECT_EQ(y.grad_fn()->output_shape, (Shape{2, 2}));
  EXPECT_EQ(y.grad_fn()->output_dtype, kFloat64);
}

TEST(Autograd, SetRequiresGradOnLeaf) {
  Tensor x = zeros({2}, kFloat64);
  EXPECT_FALSE(x.requires_grad());
  x.set_requires_grad(true);
  EXPECT_TRUE(x.requires_grad());
  EXPECT_TRUE(x.is_leaf());
  x.set_requires_grad(false);
  EXPECT_FALSE(x.requires_grad());
  EXPECT_TRUE(zeros({2}, TensorOptions(kFloat32).requires_grad()).requires_grad());
}

TEST(Autograd, GradUndefinedBeforeBackwardAndZeroGrad) {
  Tensor x = f64({1, 2}, {2}, true);
  EXPECT_FALSE(x.grad().defined());
  (x * 3.0).sum().backward();
  expect_tensor(x.grad(), kFloat64, {2}, {3, 3});
  x.zero_grad();
  EXPECT_FALSE(x.grad().defined());
  (x * x).sum().backward();
  expect_values(x.grad(), {2}, {2, 4});
}

TEST(Autograd, GradAccumulatesAcrossBackwardCalls) {
  Tensor x = f64({1, 2, 3}, {3}, true);
  (x * x).sum().backward();
  expect_values(x.grad(), {3}, {2, 4, 6});
  (x * x).sum().backward();
  expect_values(x.grad(), {3}, {4, 8, 12});
  (x * 10.0).sum().backward();
  expect_values(x.grad(), {3}, {14, 18, 22});
}

TEST(Autograd, BackwardWithGradientArgument) {
  Tensor x = f64({1, 2, 3}, {3}, true);
  Tensor y = x * x;  // dy/dx = 2x, weighted by g
  y.backward(f64({1, 0.5, -1}));
  expect_values(x.grad(), {3}, {2, 2, -6});
  Tensor m = f64({1, 2, 3, 4}, {2, 2}, true);
  (m * 3.0).backward(f64({1, 2, 3, 4}, {2, 2}));
  expect_values(m.grad(), {2, 2}, {3, 6, 9, 12});
}

TEST(Autograd, OneElementRootNeedsNoGradient) {
  Tensor x = f64({1, 2}, {2}, true);
  Tensor y = (x * x).sum({0}, true);  // shape [1]
  EXPECT_EQ(y.shape(), (Shape{1}));
  y.backward();
  expect_values(x.grad(), {2}, {2, 4});
}

TEST(Autograd, SecondBackwardWithoutRetainGraphThrows) {
  Tensor x = f64({1, 2}, {2}, true);
  Tensor y = (x * x).sum();
  y.backward();
  EXPECT_THROW(y.backward(), Error);
}

TEST(Autograd, RetainGraphAllowsSecondBackward) {
  Tensor x = f64({1, 2}, {2}, true);
  Tensor y = (x * x).sum();
  y.backward(Tensor(), /*retain_graph=*/true);
  expect_values(x.grad(), {2}, {2, 4});
  y.backward(Tensor(), true);
  expect_values(x.grad(), {2}, {4, 8});
  y.backward();  // released now
  expect_values(x.grad(), {2}, {6, 12});
  EXPECT_THROW(y.backward(), Error);
}

TEST(Autograd, NoGradGuardRecordsNothing) {
  Tensor x = f64({1, 2}, {2}, true);
  EXPECT_TRUE(GradMode::is_enabled());
  {
    NoGradGuard guard;
    EXPECT_FALSE(GradMode::is_enabled());
    Tensor y = x * 2.0;
    EXPECT_FALSE(y.requires_grad());
    EXPECT_EQ(y.grad_fn(), nullptr);
    Tensor v = x.view({2, 1});
    EXPECT_FALSE(v.requires_grad());
  }
  EXPECT_TRUE(GradMode::is_enabled());
  EXPECT_TRUE((x * 2.0).requires_grad());
}

TEST(Autograd, NestedNoGradGuardsRestore) {
  {
    NoGradGuard outer;
    EXPECT_FALSE(GradMode::is_enabled());
    {
      NoGradGuard inner;
      EXPECT_FALSE(GradMode::is_enabled());
    }
    EXPECT_FALSE(GradMode::is_enabled());  // inner restores "off", not "on"
    GradMode::set_enabled(true);
    {
      NoGradGuard inner;
      EXPECT_FALSE(GradMode::is_enabled());
    }
    EXPECT_TRUE(GradMode::is_enabled());
  }
  EXPECT_TRUE(GradMode::is_enabled());
}

TEST(Autograd, InPlaceUpdateUnderNoGrad) {
  Tensor w = f64({1, 2}, {2}, true);
  (w * w).sum().backward();
  {
    NoGradGuard guard;
    w.add_(w.grad(), -0.1);  // an SGD step
  }
  expect_values(w, {2}, {0.8, 1.6});
  EXPECT_TRUE(w.requires_grad());
  EXPECT_TRUE(w.is_leaf());
}

TEST(Autograd, DetachSharesDataWithoutGrad) {
  Tensor x = f64({1, 2, 3}, {3}, true);
  Tensor y = x * 2.0;
  Tensor d = y.detach();
  EXPECT_EQ(d.storage().get(), y.storage().get());
  EXPECT_FALSE(d.requires_grad());
  EXPECT_TRUE(d.is_leaf());
  EXPECT_EQ(d.grad_fn(), nullptr);
  expect_values(d, {3}, {2, 4, 6});
  d.fill_(0);  // d does not require grad, so in-place is allowed; y sees it
  expect_values(y, {3}, {0, 0, 0});
  // Detaching cuts the gradient: only the non-detached path contributes.
  Tensor z = f64({1, 2, 3}, {3}, true);
  (z * z.detach()).sum().backward();
  expect_values(z.grad(), {3}, {1, 2, 3});
}

TEST(Autograd, DiamondSumsBothPaths) {
  Tensor x = f64({2, -1}, {2}, true);
  Tensor a = x * 3.0;
  Tensor b = x * x;
  (a + b).sum().backward();  // d/dx (3x + x^2) = 3 + 2x
  expect_values(x.grad(), {2}, {7, 1});
  Tensor u = f64({0.5, 2}, {2}, true);
  Tensor p = u + 1.0, q = u * 2.0;
  (p * q).sum().backward();  // d/du 2u(u+1) = 4u + 2
  expect_values(u.grad(), {2}, {4, 10});
}

TEST(Autograd, SameTensorTwiceInOneOp) {
  Tensor x = f64({1, 2, 3, 4}, {2, 2}, true);
  matmul(x, x).sum().backward();
  // d/dx sum(x x) = ones @ x^T + x^T @ ones: [i][k] = sum_j x[k][j] + sum_j x[j][i]
  // x = [[1,2],[3,4]]: row sums 3, 7; column sums 4, 6.
  expect_values(x.grad(), {2, 2}, {3 + 4, 7 + 4, 3 + 6, 7 + 6});
}

TEST(Autograd, BroadcastGradientsReduceToInputShape) {
  Tensor a = f64({1, 2, 3}, {3, 1}, true);
  Tensor b = f64({10, 20, 30, 40}, {4}, true);
  (a * b).sum().backward();
  expect_tensor(a.grad(), kFloat64, {3, 1}, {100, 100, 100});
  expect_tensor(b.grad(), kFloat64, {4}, {6, 6, 6, 6});
  Tensor s = f64({2}, {1, 1}, true);
  Tensor m = f64({1, 2, 3, 4, 5, 6}, {2, 3}, true);
  (s + m).sum().backward();
  expect_tensor(s.grad(), kFloat64, {1, 1}, {6});
  expect_tensor(m.grad(), kFloat64, {2, 3}, {1, 1, 1, 1, 1, 1});
  Tensor z = scalar_tensor(3, TensorOptions(kFloat64).requires_grad());
  (m * z).sum().backward();
  expect_tensor(z.grad(), kFloat64, {}, {21});
}

TEST(Autograd, SumToReversesBroadcast) {
  Tensor g = ones({2, 3, 4}, kFloat64);
  expect_tensor(autograd::sum_to(g, {3, 1}), kFloat64, {3, 1}, {8, 8, 8});
  expect_tensor(autograd::sum_to(g, {4}), kFloat64, {4}, {6, 6, 6, 6});
  expect_tensor(autograd::sum_to(g, {2, 3, 4}), kFloat64, {2, 3, 4}, std::vector<double>(24, 1));
  expect_tensor(autograd::sum_to(g, {}), kFloat64, {}, {24});
}

TEST(Autograd, GradHasTheInputDtype) {
  Tensor a = from_vector<float>({1, 2}, {2}, TensorOptions(kFloat32).requires_grad());
  Tensor b = f64({3, 4}, {2}, true);
  Tensor y = a * b;
  EXPECT_EQ(y.dtype(), kFloat64);
  y.sum().backward();
  expect_tensor(a.grad(), kFloat32, {2}, {3, 4});
  expect_tensor(b.grad(), kFloat64, {2}, {1, 2});
}

TEST(Autograd, IntegerOperandGetsNoGrad) {
  Tensor x = f64({0.5, 1.5}, {2}, true);
  Tensor n = i64({2, 3});
  (x * n).sum().backward();
  expect_values(x.grad(), {2}, {2, 3});
  EXPECT_FALSE(n.grad().defined());
}

TEST(Autograd, LeafGradsDoNotAlias) {
  // add's backward hands the same gradient to both inputs; accumulating into one must not
  // change the other.
  Tensor a = f64({1, 1}, {2}, true), b = f64({1, 1}, {2}, true);
  (a + b).sum().backward();
  (a * 2.0).sum().backward();
  expect_values(a.grad(), {2}, {3, 3});
  expect_values(b.grad(), {2}, {1, 1});
  // sum's backward may expand (stride 0); a later accumulation must still be elementwise.
  Tensor x = f64({1, 2, 3}, {3}, true);
  x.sum().backward();
  (x * x).sum().backward();
  expect_values(x.grad(), {3}, {3, 5, 7});
  // The gradient argument is not kept by reference.
  Tensor y = f64({1, 2}, {2}, true);
  Tensor g = f64({5, 6});
  (y + 0.0).backward(g);
  g.fill_(0);
  expect_values(y.grad(), {2}, {5, 6});
}

TEST(Autograd, MutableGradSetsTheGradient) {
  Tensor x = f64({1, 2}, {2}, true);
  x.mutable_grad() = f64({10, 20});
  (x * 1.0).sum().backward();
  expect_values(x.grad(), {2}, {11, 21});
}

TEST(Autograd, NonDifferentiableOutputsDoNotRequireGrad) {
  Tensor x = f64({1, -2, 3}, {3}, true);
  EXPECT_FALSE((x > 0.0).requires_grad());
  EXPECT_FALSE(eq(x, x).requires_grad());
  EXPECT_FALSE(argmax(x).requires_grad());
  EXPECT_FALSE(argmin(x, 0).requires_grad());
  EXPECT_FALSE(one_hot(i64({0, 1})).requires_grad());
}

TEST(Autograd, GradModeIsPerThread) {
  NoGradGuard guard;
  bool other_thread_enabled = false;
  std::thread worker([&] { other_thread_enabled = GradMode::is_enabled(); });
  worker.join();
  EXPECT_TRUE(other_thread_enabled);
  EXPECT_FALSE(GradMode::is_enabled());
}

TEST(Autograd, DeepChainBackward) {
  Tensor x = f64({1, 2}, {2}, true);
  Tensor y = x;
  for (int i = 0; i < 20000; ++i) y = y * 1.0 + 0.0;
  y.sum().backward();
  expect_values(x.grad(), {2}, {1, 1});
}

TEST(AutogradDeathTest, DeepGraphIsFreedWithoutStackOverflow) {
  // Freeing a long chain of nodes recursively overflows the stack (PyTorch frees its graph
  // iteratively). Run in a child process so a crash does not take the suite with it.
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  EXPECT_EXIT(
      {
        Tensor x = f64({1, 2}, {2}, true);
        Tensor y = x;
        for (int i = 0; i < 250000; ++i) y = y * 1.0;
        y = Tensor();
        std::exit(0);
      },
      ::testing::ExitedWithCode(0), "");
}

// ---- gradients through views and joins, by hand ------------------------------------------
Tensor iota_leaf(const Shape& shape) {
  std::vector<double> v(static_cast<size_t>(numel_of(shape)));
  for (size_t i = 0; i < v.size(); ++i) v[i] = static_cast<double>(i);
  return f64(v, shape, true);
}

TEST(AutogradViews, Slice) {
  Tensor x = iota_leaf({3, 4});
  Tensor w = f64({1, 2, 3, 4, 5, 6}, {3, 2});
  (x.slice(1, 1, 4, 2) * w).sum().backward();
  expect_values(x.grad(), {3, 4}, {0, 1, 0, 2, 0, 3, 0, 4, 0, 5, 0, 6});
}

TEST(AutogradViews, Transpose) {
  Tensor x = iota_leaf({3, 4});
  Tensor w = f64({1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12}, {4, 3});
  (x.t() * w).sum().backward();  // grad = w^T
  expect_values(x.grad(), {3, 4}, {1, 4, 7, 10, 2, 5, 8, 11, 3, 6, 9, 12});
  Tensor y = iota_leaf({2, 3});
  (y.transpose(0, 1) * f64({1, 2, 3, 4, 5, 6}, {3, 2})).sum().backward();
  expect_values(y.grad(), {2, 3}, {1, 3, 5, 2, 4, 6});
}

TEST(AutogradViews, Reshape) {
  Tensor x = iota_leaf({3, 4});
  Tensor w = f64({1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12}, {2, 6});
  (x.reshape({2, 6}) * w).sum().backward();
  expect_values(x.grad(), {3, 4}, {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12});
  // The copy path: reshape of a transposed view.
  Tensor y = iota_leaf({2, 3});
  (y.t().reshape({6}) * f64({1, 2, 3, 4, 5, 6})).sum().backward();
  // y.t() flattened reads y[0][0], y[1][0], y[0][1], y[1][1], y[0][2], y[1][2].
  expect_values(y.grad(), {2, 3}, {1, 3, 5, 2, 4, 6});
}

TEST(AutogradViews, Expand) {
  Tensor v = f64({1, 2, 3}, {3, 1}, true);
  Tensor w = f64({1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12}, {3, 4});
  (v.expand({3, 4}) * w).sum().backward();
  expect_values(v.grad(), {3, 1}, {10, 26, 42});
  Tensor r = f64({1, 2}, {2}, true);
  r.expand({3, 2}).sum().backward();
  expect_values(r.grad(), {2}, {3, 3});
}

TEST(AutogradViews, Select) {
  Tensor x = iota_leaf({3, 4});
  (x.select(1, 2) * f64({1, 2, 3})).sum().backward();
  expect_values(x.grad(), {3, 4}, {0, 0, 1, 0, 0, 0, 2, 0, 0, 0, 3, 0});
  Tensor y = iota_leaf({2, 2});
  (y.select(0, -1) * 5.0).sum().backward();
  expect_values(y.grad(), {2, 2}, {0, 0, 5, 5});
}

TEST(AutogradViews, ChainOfViewsAndOverlappingUses) {
  Tensor x = iota_leaf({4, 3});
  Tensor a = x.t().narrow(1, 1, 2);  // [3,2]: x[1..2][:] transposed
  Tensor b = x.select(0, 1);         // [3]: x[1][:], overlaps a
  (a.sum({1}) * b.unsqueeze(0).squeeze()).sum().backward();
  // L = sum_j (x[1][j] + x[2][j]) * x[1][j]
  // dL/dx[1][j] = 2 x[1][j] + x[2][j]; dL/dx[2][j] = x[1][j]; x[i][j] = 3 i + j.
  std::vector<double> expected(12, 0.0);
  for (int j = 0; j < 3; ++j) {
    expected[3 + j] = 2 * (3 + j) + (6 + j);
    expected[6 + j] = 3 + j;
  }
  expect_values(x.grad(), {4, 3}, expected);
}

TEST(AutogradJoin, Cat) {
  Tensor a = f64({1, 2}, {2}, true);
  Tensor b = f64({3, 4, 5}, {3}, true);
  (cat({a, b}) * f64({10, 20, 30, 40, 50})).sum().backward();
  expect_values(a.grad(), {2}, {10, 20});
  expect_values(b.grad(), {3}, {30, 40, 50});
  Tensor c = f64({1, 2, 3, 4}, {2, 2}, true);
  Tensor d = f64({5, 6}, {2, 1}, true);
  (cat({c, d}, 1) * f64({1, 2, 3, 4, 5, 6}, {2, 3})).sum().backward();
  expect_values(c.grad(), {2, 2}, {1, 2, 4, 5});
  expect_values(d.grad(), {2, 1}, {3, 6});
}

TEST(AutogradJoin, Stack) {
  Tensor a = f64({1, 2}, {2}, true);
  Tensor b = f64({3, 4}, {2}, true);
  (stack({a, b}, 1) * f64({1, 2, 3, 4}, {2, 2})).sum().backward();  // [i][s]
  expect_values(a.grad(), {2}, {1, 3});
  expect_values(b.grad(), {2}, {2, 4});
}

TEST(AutogradJoin, IndexSelectAccumulatesRepeats) {
  Tensor x = f64({1, 2, 3}, {3}, true);
  (index_select(x, 0, i64({2, 0, 2})) * f64({1, 2, 3})).sum().backward();
  expect_values(x.grad(), {3}, {2, 0, 4});
  Tensor m = f64({1, 2, 3, 4, 5, 6}, {2, 3}, true);
  index_select(m, 1, i64({1, 1, 0})).sum().backward();
  expect_values(m.grad(), {2, 3}, {1, 2, 0, 1, 2, 0});
}

TEST(AutogradJoin, GatherAccumulatesRepeats) {
  Tensor x = f64({1, 2, 3, 4, 5, 6}, {2, 3}, true);
  (gather(x, 1, i64({0, 0, 2, 1}, {2, 2})) * f64({1, 2, 3, 4}, {2, 2})).sum().backward();
  expect_values(x.grad(), {2, 3}, {3, 0, 0, 0, 4, 3});
}

TEST(AutogradOps, MaxTiesShareGradient) {
  Tensor x = f64({1, 3, 3}, {3}, true);
  strata::max(x).backward();
  expect_values(x.grad(), {3}, {0, 0.5, 0.5});
  Tensor m = f64({2, 2, 2, 1, 5, 0}, {2, 3}, true);
  strata::min(m, {1}).sum().backward();  // row 0 ties three ways, row 1 min at 2
  expect_values(m.grad(), {2, 3}, {1.0 / 3, 1.0 / 3, 1.0 / 3, 0, 0, 1});
}

TEST(AutogradOps, ClampGradientPassesAtBoundary) {
  Tensor x = f64({-1, 0, 0.5, 1, 2}, {5}, true);
  clamp(x, 0.0, 1.0).sum().backward();
  expect_values(x.grad(), {5}, {0, 1, 1, 1, 0});
}

TEST(AutogradOps, WhereRoutesGradient) {
  Tensor a = f64({1, 2, 3}, {3}, true);
  Tensor b = f64({4, 5, 6}, {3}, true);
  where(from_vector<bool>({true, false, true}), a, b).sum().backward();
  expect_values(a.grad(), {3}, {1, 0, 1});
  expect_values(b.grad(), {3}, {0, 1, 0});
}

TEST(AutogradOps, MeanDividesByCount) {
  Tensor x = f64({1, 2, 3, 4, 5, 6}, {2, 3}, true);
  mean(x, {1}).sum().backward();
  expect_values(x.grad(), {2, 3}, std::vector<double>(6, 1.0 / 3));
}

// An MLP-like graph: L = sum(relu(x W + b) @ v), relu as clamp(min = 0).
TEST(AutogradOps, MlpMatchesHandDerivation) {
  const std::vector<double> xv = {1.0, -2.0, 0.5, 0.3, 1.0, -1.0};                 // [2,3]
  const std::vector<double> wv = {0.2, -0.4, 0.6, 0.1, -0.3, 0.5, 0.2, -0.7,
                                  0.9, 0.1, -0.2, 0.4};                              // [3,4]
  const std::vector<double> bv = {0.05, -0.1, 0.2, 0.3};                             // [4]
  const std::vector<double> vv = {1.0, -2.0, 0.5, 3.0};                              // [4]
  Tensor x = f64(xv, {2, 3}, true), W = f64(wv, {3, 4}, true), b = f64(bv, {4}, true),
         v = f64(vv, {4}, true);
  Tensor h = clamp(matmul(x, W) + b, 0.0, std::nullopt);
  Tensor loss = matmul(h, v).sum();

  // By hand: pre = x W + b; mask = pre > 0; g[i][j] = v[j] mask[i][j].
  double pre[2][4], hv[2][4], g[2][4];
  double expected_loss = 0;
  for (int i = 0; i < 2; ++i)
    for (int j = 0; j < 4; ++j) {
      pre[i][j] = bv[j];
      for (int k = 0; k < 3; ++k) pre[i][j] += xv[i * 3 + k] * wv[k * 4 + j];
      ASSERT_GT(std::abs(pre[i][j]), 1e-3) << "keep the relu kink away";
      hv[i][j] = pre[i][j] > 0 ? pre[i][j] : 0;
      g[i][j] = pre[i][j] > 0 ? vv[j] : 0;
      expected_loss += hv[i][j] * vv[j];
    }
  expect_values(loss, {}, {expected_loss});
  loss.backward();
  std::vector<double> dx(6, 0), dW(12, 0), db(4, 0), dv(4, 0);
  for (int i = 0; i < 2; ++i)
    for (int j = 0; j < 4; ++j) {
      db[j] += g[i][j];
      dv[j] += hv[i][j];
      for (int k = 0; k < 3; ++k) {
        dW[k * 4 + j] += xv[i * 3 + k] * g[i][j];
        dx[i * 3 + k] += g[i][j] * wv[k * 4 + j];
      }
    }
  expect_values(x.grad(), {2, 3}, dx);
  expect_values(W.grad(), {3, 4}, dW);
  expect_values(b.grad(), {4}, db);
  expect_values(v.grad(), {4}, dv);
}

// ---- gradcheck itself ---------------------------------------------------------------------
TEST(Gradcheck, PassesForCorrectOps) {
  Tensor x = leaf({3}, 0.5, 1.5, 1);
  GradcheckResult r = gradcheck([](const std::vector<Tensor>& in) { return in[0] * in[0]; }, {x});
  EXPECT_TRUE(r.ok) << r.message;
  GradcheckResult r2 =
      gradcheck([](const std::vector<Tensor>& in) { return matmul(in[0], in[1]); },
                {leaf({3, 1}, -1, 1, 2), leaf({1, 4}, -1, 1, 3)});
  EXPECT_TRUE(r2.ok) << r2.message;
}

TEST(Gradcheck, FailsForWrongBackward) {
  // f(x) = x * detach(x): the tape sees derivative x, the true derivative is 2x.
  Tensor x = leaf({3}, 0.5, 1.5, 4);
  GradcheckResult r =
      gradcheck([](const std::vector<Tensor>& in) { return in[0] * in[0].detach(); }, {x});
  EXPECT_FALSE(r.ok);
  EXPECT_FALSE(static_cast<bool>(r));
  EXPECT_FALSE(r.message.empty());
  // A wrong gradient for only one of two inputs is caught too.
  Tensor a = leaf({2}, 0.5, 1.5, 5), b = leaf({2}, 0.5, 1.5, 6);
  GradcheckResult r2 = gradcheck(
      [](const std::vector<Tensor>& in) { return in[0] * in[1] + in[1].detach() * in[1]; },
      {a, b});
  EXPECT_FALSE(r2.ok);
}

TEST(Gradcheck, ChecksOnlyInputsRequiringGrad) {
  Tensor x = leaf({3}, 0.5, 1.5, 7);
  Tensor c = random_f64({3}, 0.5, 1.5, 8);  // a constant
  expect_gradcheck([](const std::vector<Tensor>& in) { return in[0] * in[1]; }, {x, c});
}

// ---- float64 gradcheck of every differentiable op -----------------------------------------
// Inputs: smooth ops get uniform values; kinks (abs at 0, clamp at its bounds, max/min and
// maximum/minimum at ties) are kept >= 0.05 away, far beyond the 1e-6 step; log, sqrt,
// reciprocal, division and pow with a tensor exponent get positive inputs.
using In = const std::vector<Tensor>&;

TEST(GradcheckOps, AddTensorTensorBroadcast) {
  expect_gradcheck([](In in) { return in[0] + in[1]; }, {leaf({3, 1}, -1, 1, 1), leaf({4}, -1, 1, 2)});
  expect_gradcheck([](In in) { return add(in[0], in[1]); }, {leaf({2, 3}, -1, 1, 3), leaf({2, 3}, -1, 1, 4)});
}

TEST(GradcheckOps, SubTensorTensorBroadcast) {
  expect_gradcheck([](In in) { return in[0] - in[1]; }, {leaf({2, 3}, -1, 1, 5), leaf({3}, -1, 1, 6)});
  expect_gradcheck([](In in) { return sub(in[0], in[1]); }, {leaf({1}, -1, 1, 7), leaf({2, 2}, -1, 1, 8)});
}

TEST(GradcheckOps, MulTensorTensorBroadcast) {
  expect_gradcheck([](In in) { return in[0] * in[1]; }, {leaf({2, 3, 1}, -1, 1, 9), leaf({4}, -1, 1, 10)});
}

TEST(GradcheckOps, DivTensorTensorBroadcast) {
  expect_gradcheck([](In in) { return in[0] / in[1]; }, {leaf({3, 4}, -1, 1, 11), leaf({4}, 0.5, 2, 12)});
  expect_gradcheck([](In in) { return div(in[0], in[1]); }, {leaf({3, 1}, -1, 1, 13), leaf({1, 2}, -2, -0.5, 14)});
}

TEST(GradcheckOps, ScalarForms) {
  Tensor x = leaf({2, 3}, -1, 1, 15);
  expect_gradcheck([](In in) { return in[0] + 1.5; }, {x});
  expect_gradcheck([](In in) { return in[0] - 2.0; }, {x});
  expect_gradcheck([](In in) { return in[0] * -3.0; }, {x});
  expect_gradcheck([](In in) { return in[0] / 4.0; }, {x});
  expect_gradcheck([](In in) { return add(in[0], 2.0); }, {x});
  expect_gradcheck([](In in) { return mul(in[0], 0.5); }, {x});
}

TEST(GradcheckOps, RsubRdiv) {
  Tensor x = leaf({2, 3}, -1, 1, 16);
  Tensor pos = leaf({2, 3}, 0.5, 2, 17);
  expect_gradcheck([](In in) { return rsub(in[0], 2.0); }, {x});
  expect_gradcheck([](In in) { return 2.0 - in[0]; }, {x});
  expect_gradcheck([](In in) { return rdiv(in[0], 2.0); }, {pos});
  expect_gradcheck([](In in) { return 2.0 / in[0]; }, {pos});
}

TEST(GradcheckOps, Neg) {
  expect_gradcheck([](In in) { return neg(in[0]); }, {leaf({2, 3}, -1, 1, 18)});
  expect_gradcheck([](In in) { return -in[0]; }, {leaf({3}, -1, 1, 19)});
}

TEST(GradcheckOps, Abs) {
  expect_gradcheck([](In in) { return strata::abs(in[0]); },
                   {leaf_avoiding({2, 3}, -1, 1, {0.0}, 0.05, 20)});
}

TEST(GradcheckOps, Exp) {
  expect_gradcheck([](In in) { return strata::exp(in[0]); }, {leaf({2, 3}, -1, 1, 21)});
}

TEST(GradcheckOps, Log) {
  expect_gradcheck([](In in) { return strata::log(in[0]); }, {leaf({2, 3}, 0.2, 3, 22)});
}

TEST(GradcheckOps, Sqrt) {
  expect_gradcheck([](In in) { return strata::sqrt(in[0]); }, {leaf({2, 3}, 0.2, 3, 23)});
}

TEST(GradcheckOps, Reciprocal) {
  expect_gradcheck([](In in) { return reciprocal(in[0]); },
                   {leaf_avoiding({2, 3}, -2, 2, {0.0}, 0.3, 24)});
}

TEST(GradcheckOps, PowScalar) {
  Tensor any = leaf({2, 3}, -2, 2, 25);
  Tensor pos = leaf({2, 3}, 0.3, 2, 26);
  expect_gradcheck([](In in) { return strata::pow(in[0], 2.0); }, {any});
  expect_gradcheck([](In in) { return strata::pow(in[0], 3.0); }, {any});
  expect_gradcheck([](In in) { return strata::pow(in[0], 0.5); }, {pos});
  expect_gradcheck([](In in) { return strata::pow(in[0], -1.5); }, {pos});
  expect_gradcheck([](In in) { return in[0].pow(1.0); }, {any});
}

TEST(GradcheckOps, PowTensor) {
  // Base positive: d/de b^e = b^e log b needs b > 0.
  expect_gradcheck([](In in) { return strata::pow(in[0], in[1]); },
                   {leaf({2, 3}, 0.3, 2, 27), leaf({3}, -1.5, 2.5, 28)});
  expect_gradcheck([](In in) { return strata::pow(in[0], in[1]); },
                   {leaf({2, 1}, 0.3, 2, 29), leaf({2, 3}, -1, 2, 30)});
}

TEST(GradcheckOps, ClampBothSides) {
  expect_gradcheck([](In in) { return clamp(in[0], -0.5, 0.5); },
                   {leaf_avoiding({3, 4}, -1, 1, {-0.5, 0.5}, 0.05, 31)});
}

TEST(GradcheckOps, ClampMinOnly) {
  expect_gradcheck([](In in) { return clamp(in[0], 0.0, std::nullopt); },
                   {leaf_avoiding({3, 4}, -1, 1, {0.0}, 0.05, 32)});
}

TEST(GradcheckOps, ClampMaxOnly) {
  expect_gradcheck([](In in) { return in[0].clamp(std::nullopt, 0.25); },
                   {leaf_avoiding({3, 4}, -1, 1, {0.25}, 0.05, 33)});
}

TEST(GradcheckOps, MaximumMinimum) {
  // a and b interleave without ties: a in distinct values, b = a shifted by +-0.1 per element.
  Tensor a = distinct_leaf({2, 3}, 34);
  std::vector<double> av = a.to_vector<double>(), bv(av.size());
  for (size_t i = 0; i < av.size(); ++i) bv[i] = av[i] + (i % 2 ? 0.1 : -0.1);
  Tensor b = f64(bv, {2, 3}, true);
  expect_gradcheck([](In in) { return maximum(in[0], in[1]); }, {a, b});
  expect_gradcheck([](In in) { return minimum(in[0], in[1]); }, {a, b});
  // Broadcast: b row against the rows of a.
  Tensor row = f64({0.05, -0.55, 1.15}, {3}, true);  // 0.05 off the 0.3 grid of `a`
  expect_gradcheck([](In in) { return maximum(in[0], in[1]); }, {a, row});
  expect_gradcheck([](In in) { return minimum(in[0], in[1]); }, {a, row});
}

TEST(GradcheckOps, WhereBothBranches) {
  Tensor cond = from_vector<bool>({true, false, false, true, true, false}, {2, 3});
  expect_gradcheck([cond](In in) { return where(cond, in[0], in[1]); },
                   {leaf({2, 3}, -1, 1, 35), leaf({3}, -1, 1, 36)});
  expect_gradcheck([cond](In in) { return where(cond, in[0], in[1]); },
                   {leaf({1}, -1, 1, 37), leaf({2, 1}, -1, 1, 38)});
}

TEST(GradcheckOps, Sum) {
  Tensor x = leaf({2, 3, 4}, -1, 1, 39);
  expect_gradcheck([](In in) { return sum(in[0]); }, {x});
  expect_gradcheck([](In in) { return sum(in[0], {1}); }, {x});
  expect_gradcheck([](In in) { return sum(in[0], {-1}, true); }, {x});
  expect_gradcheck([](In in) { return sum(in[0], {0, 2}); }, {x});
  expect_gradcheck([](In in) { return sum(in[0], {0, 2}, true); }, {x});
  expect_gradcheck([](In in) { return in[0].sum(); }, {x});
}

TEST(GradcheckOps, Mean) {
  Tensor x = leaf({2, 3, 4}, -1, 1, 40);
  expect_gradcheck([](In in) { return mean(in[0]); }, {x});
  expect_gradcheck([](In in) { return mean(in[0], {0}); }, {x});
  expect_gradcheck([](In in) { return mean(in[0], {-2}, true); }, {x});
  expect_gradcheck([](In in) { return mean(in[0], {0, 2}); }, {x});
  expect_gradcheck([](In in) { return in[0].mean({1, 2}, true); }, {x});
}

TEST(GradcheckOps, Max) {
  Tensor x = distinct_leaf({2, 3, 4}, 41);
  expect_gradcheck([](In in) { return strata::max(in[0]); }, {x});
  expect_gradcheck([](In in) { return strata::max(in[0], {1}); }, {x});
  expect_gradcheck([](In in) { return strata::max(in[0], {-1}, true); }, {x});
  expect_gradcheck([](In in) { return strata::max(in[0], {0, 2}); }, {x});
  expect_gradcheck([](In in) { return in[0].max(); }, {x});
}

TEST(GradcheckOps, Min) {
  Tensor x = distinct_leaf({2, 3, 4}, 42);
  expect_gradcheck([](In in) { return strata::min(in[0]); }, {x});
  expect_gradcheck([](In in) { return strata::min(in[0], {0}); }, {x});
  expect_gradcheck([](In in) { return strata::min(in[0], {2}, true); }, {x});
  expect_gradcheck([](In in) { return strata::min(in[0], {0, 2}, true); }, {x});
  expect_gradcheck([](In in) { return in[0].min({1}); }, {x});
}

TEST(GradcheckOps, MatmulShapes) {
  struct Case {
    Shape a, b;
  };
  const std::vector<Case> cases = {
      {{4}, {4}},          {{3, 4}, {4, 2}},       {{3, 4}, {4}},        {{4}, {4, 3}},
      {{2, 3, 4}, {2, 4, 2}}, {{2, 1, 3, 4}, {5, 4, 2}}, {{2, 3, 4}, {4, 2}}, {{3, 4}, {2, 4, 2}},
      {{4}, {2, 4, 3}},    {{2, 3, 4}, {4}},
  };
  uint32_t seed = 43;
  for (const auto& c : cases) {
    SCOPED_TRACE(shape_str(c.a) + " @ " + shape_str(c.b));
    expect_gradcheck([](In in) { return matmul(in[0], in[1]); },
                     {leaf(c.a, -1, 1, seed), leaf(c.b, -1, 1, seed + 1)});
    seed += 2;
  }
}

TEST(GradcheckOps, MatmulTransposedOperands) {
  expect_gradcheck([](In in) { return matmul(in[0].t(), in[1].t()); },
                   {leaf({4, 3}, -1, 1, 70), leaf({2, 4}, -1, 1, 71)});
  expect_gradcheck([](In in) { return matmul(in[0].transpose(1, 2), in[1]); },
                   {leaf({2, 4, 3}, -1, 1, 72), leaf({2, 4, 5}, -1, 1, 73)});
  expect_gradcheck([](In in) { return in[0].matmul(in[1].slice(1, 0, 6, 2)); },
                   {leaf({3, 4}, -1, 1, 74), leaf({4, 6}, -1, 1, 75)});
}

TEST(GradcheckOps, Cat) {
  Tensor a = leaf({2, 3}, -1, 1, 76), b = leaf({1, 3}, -1, 1, 77), c = leaf({2, 2}, -1, 1, 78);
  expect_gradcheck([](In in) { return cat({in[0], in[1], in[0]}, 0); }, {a, b});
  expect_gradcheck([](In in) { return cat({in[0], in[1]}, 1); }, {a, c});
  expect_gradcheck([](In in) { return cat({in[0], in[1]}, -1); }, {c, a});
}

TEST(GradcheckOps, Stack) {
  Tensor a = leaf({2, 3}, -1, 1, 79), b = leaf({2, 3}, -1, 1, 80);
  expect_gradcheck([](In in) { return stack({in[0], in[1]}, 0); }, {a, b});
  expect_gradcheck([](In in) { return stack({in[0], in[1], in[0]}, 1); }, {a, b});
  expect_gradcheck([](In in) { return stack({in[0], in[1]}, -1); }, {a, b});
}

TEST(GradcheckOps, IndexSelect) {
  Tensor x = leaf({4, 3}, -1, 1, 81);
  Tensor rows = i64({3, 0, 3, 1});
  Tensor cols = i64({2, 2});
  expect_gradcheck([rows](In in) { return index_select(in[0], 0, rows); }, {x});
  expect_gradcheck([cols](In in) { return index_select(in[0], 1, cols); }, {x});
  expect_gradcheck([cols](In in) { return index_select(in[0], -1, cols); }, {x});
}

TEST(GradcheckOps, Gather) {
  Tensor x = leaf({3, 4}, -1, 1, 82);
  Tensor idx1 = i64({0, 3, 3, 1, 2, 2, 0, 0, 1}, {3, 3});
  Tensor idx0 = i64({2, 0, 1, 2, 2, 2, 0, 1}, {2, 4});
  expect_gradcheck([idx1](In in) { return gather(in[0], 1, idx1); }, {x});
  expect_gradcheck([idx0](In in) { return gather(in[0], 0, idx0); }, {x});
}

TEST(GradcheckOps, SoftmaxComposite) {
  // exp(x - max) / sum(exp(x - max)) over the last dim: max, sub, exp, sum, div together.
  expect_gradcheck(
      [](In in) {
        Tensor shifted = in[0] - strata::max(in[0], {-1}, true);
        Tensor e = strata::exp(shifted);
        return e / sum(e, {-1}, true);
      },
      {distinct_leaf({3, 4}, 83)});
}

// ---- float64 gradcheck of every view ------------------------------------------------------
TEST(GradcheckViews, View) {
  Tensor x = leaf({2, 6}, -1, 1, 90);
  expect_gradcheck([](In in) { return in[0].view({3, 4}); }, {x});
  expect_gradcheck([](In in) { return in[0].view({-1}); }, {x});
}

TEST(GradcheckViews, Reshape) {
  Tensor x = leaf({2, 6}, -1, 1, 91);
  expect_gradcheck([](In in) { return in[0].reshape({4, -1}); }, {x});
  expect_gradcheck([](In in) { return in[0].t().reshape({12}); }, {x});  // the copy path
}

TEST(GradcheckViews, Flatten) {
  Tensor x = leaf({2, 3, 2}, -1, 1, 92);
  expect_gradcheck([](In in) { return in[0].flatten(); }, {x});
  expect_gradcheck([](In in) { return in[0].flatten(1); }, {x});
  expect_gradcheck([](In in) { return in[0].transpose(0, 2).flatten(0, 1); }, {x});
}

TEST(GradcheckViews, TransposePermuteT) {
  Tensor x = leaf({2, 3, 4}, -1, 1, 93);
  expect_gradcheck([](In in) { return in[0].transpose(0, 2); }, {x});
  expect_gradcheck([](In in) { return in[0].transpose(-1, 1); }, {x});
  expect_gradcheck([](In in) { return in[0].permute({1, 2, 0}); }, {x});
  expect_gradcheck([](In in) { return in[0].t(); }, {leaf({3, 5}, -1, 1, 94)});
}

TEST(GradcheckViews, SliceNarrowSelect) {
  Tensor x = leaf({4, 6}, -1, 1, 95);
  expect_gradcheck([](In in) { return in[0].slice(1, 1, 6, 2); }, {x});
  expect_gradcheck([](In in) { return in[0].slice(0, 1, 3); }, {x});
  expect_gradcheck([](In in) { return in[0].narrow(1, 2, 3); }, {x});
  expect_gradcheck([](In in) { return in[0].select(0, 2); }, {x});
  expect_gradcheck([](In in) { return in[0].select(1, -1); }, {x});
}

TEST(GradcheckViews, Expand) {
  expect_gradcheck([](In in) { return in[0].expand({3, 4}); }, {leaf({3, 1}, -1, 1, 96)});
  expect_gradcheck([](In in) { return in[0].expand({2, -1, 4}); }, {leaf({3, 1}, -1, 1, 97)});
  expect_gradcheck([](In in) { return in[0].expand({2, 3}); }, {leaf({3}, -1, 1, 98)});
}

TEST(GradcheckViews, SqueezeUnsqueeze) {
  Tensor x = leaf({1, 3, 1, 2}, -1, 1, 99);
  expect_gradcheck([](In in) { return in[0].squeeze(); }, {x});
  expect_gradcheck([](In in) { return in[0].squeeze(2); }, {x});
  expect_gradcheck([](In in) { return in[0].unsqueeze(1); }, {leaf({2, 3}, -1, 1, 100)});
  expect_gradcheck([](In in) { return in[0].unsqueeze(-1); }, {leaf({2, 3}, -1, 1, 101)});
}

TEST(GradcheckViews, ContiguousOfTransposed) {
  expect_gradcheck([](In in) { return in[0].t().contiguous(); }, {leaf({3, 4}, -1, 1, 102)});
}

TEST(GradcheckViews, ContiguousNoop) {
  // Already contiguous: contiguous() returns the input itself, whose Jacobian is the identity.
  expect_gradcheck([](In in) { return in[0].contiguous(); }, {leaf({3, 4}, -1, 1, 103)});
}

TEST(GradcheckViews, Clone) {
  expect_gradcheck([](In in) { return in[0].clone(); }, {leaf({3, 4}, -1, 1, 104)});
  expect_gradcheck([](In in) { return in[0].t().clone(); }, {leaf({3, 4}, -1, 1, 105)});
}

TEST(GradcheckViews, ToSameDtypeNoop) {
  expect_gradcheck([](In in) { return in[0].to(kFloat64); }, {leaf({3, 4}, -1, 1, 106)});
  expect_gradcheck([](In in) { return (in[0] * 2.0).to(kFloat64); }, {leaf({3}, -1, 1, 107)});
}

TEST(GradcheckViews, ChainedViews) {
  expect_gradcheck(
      [](In in) {
        return in[0].t().slice(0, 1, 4).unsqueeze(0).expand({2, -1, -1}).select(2, 1);
      },
      {leaf({3, 5}, -1, 1, 108)});
}

}  // namespace
}  // namespace strata

namespace strata {
namespace {

// Post-accumulate hooks fire once per pass per leaf, after its .grad() holds the pass's
// gradient (a leaf used twice is summed first); end-of-pass callbacks run after every node, in
// the order queued, before backward() returns.
TEST(AutogradHooks, PostAccumulateHooksAndEndOfPassCallbacks) {
  Tensor w = full({2}, 3.0).set_requires_grad(true);
  Tensor b = full({2}, 1.0).set_requires_grad(true);
  std::vector<std::string> events;
  const int64_t id = autograd::add_post_accumulate_hook(w, [&](const Tensor& leaf) {
    events.push_back("w grad " + std::to_string(leaf.grad().data<float>()[0]));
    autograd::queue_backward_end_callback([&] { events.push_back("end 1"); });
  });
  autograd::add_post_accumulate_hook(b, [&](const Tensor&) {
    events.push_back("b");
    autograd::queue_backward_end_callback([&] { events.push_back("end 2"); });
  });
  sum(add(mul(w, w), b)).backward();  // w used twice: d/dw = 2w = 6
  // The engine picks which leaf comes first; the callbacks follow in the order queued.
  const std::vector<std::string> w_first = {"w grad 6.000000", "b", "end 1", "end 2"};
  const std::vector<std::string> b_first = {"b", "w grad 6.000000", "end 2", "end 1"};
  EXPECT_TRUE(events == w_first || events == b_first)
      << "one hook call for w after its two uses were summed, then the end callbacks: "
      << ::testing::PrintToString(events);
  events.clear();
  sum(mul(w, 2.0)).backward();  // accumulates: 6 + 2
  EXPECT_EQ(events.front(), "w grad 8.000000");
  autograd::remove_post_accumulate_hook(w, id);
  events.clear();
  sum(w).backward();
  EXPECT_TRUE(events.empty()) << "a removed hook stays quiet";
  test::expect_error([] { autograd::queue_backward_end_callback([] {}); },
                     {"queue_backward_end_callback", "no backward pass"});
  test::expect_error([&] { (void)autograd::add_post_accumulate_hook(mul(w, 1.0), {}); },
                     {"register_post_accumulate_grad_hook", "leaf", "mul"});
}

}  // namespace
}  // namespace strata
