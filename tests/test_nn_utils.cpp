// Gradient clipping (nn/utils.h): clip_grad_norm_ for the 2-, 1-, p- and inf-norm against
// norms computed here on the host from the same values, no scaling under the max, parameters
// without a gradient, non-finite norms; clip_grad_value_; and both against PyTorch
// (tests/data/gen_nn_utils.py).
#include <gtest/gtest.h>

#include <cmath>
#include <limits>

#include "fixtures.h"
#include "strata/strata.h"
#include "test_util.h"

namespace strata::test {
namespace {

constexpr double kInf = std::numeric_limits<double>::infinity();

// A parameter of `shape` whose gradient holds `grad` (of the parameter's dtype).
Tensor param_with_grad(const std::vector<double>& grad, const Shape& shape,
                       DType dtype = kFloat64) {
  Tensor p = zeros(shape, TensorOptions(dtype).requires_grad(true));
  p.mutable_grad() = f64(grad, shape).to(dtype);
  return p;
}

// The values of two gradients used below, and their norms computed independently.
const std::vector<double> kGradA = {3.0, -4.0, 1.0, 2.0};  // [2, 2]
const std::vector<double> kGradB = {-0.5, 6.0, -2.0};      // [3]

double host_norm(double p) {
  double acc = 0.0;
  for (const auto* values : {&kGradA, &kGradB}) {
    for (double v : *values) {
      acc = std::isinf(p) ? std::max(acc, std::abs(v)) : acc + std::pow(std::abs(v), p);
    }
  }
  return std::isinf(p) ? acc : std::pow(acc, 1.0 / p);
}

std::vector<double> scaled(const std::vector<double>& values, double factor) {
  std::vector<double> out = values;
  for (double& v : out) v *= factor;
  return out;
}

TEST(NnUtils, ClipGradNormScalesToMaxNorm) {
  // 2-norm: sqrt(9+16+1+4+0.25+36+4) = sqrt(70.25); 1-norm 18.5; inf-norm 6; 3-norm too.
  for (double p : {2.0, 1.0, 3.0, kInf}) {
    SCOPED_TRACE(p);
    Tensor a = param_with_grad(kGradA, {2, 2}), b = param_with_grad(kGradB, {3});
    const double expected_total = host_norm(p);
    const double max_norm = 2.5;
    const double total = nn::utils::clip_grad_norm_({a, b}, max_norm, p);
    EXPECT_NEAR(total, expected_total, 1e-12 * expected_total);
    const double factor = max_norm / (expected_total + 1e-6);
    expect_values(a.grad(), {2, 2}, scaled(kGradA, factor));
    expect_values(b.grad(), {3}, scaled(kGradB, factor));
  }
  EXPECT_NEAR(host_norm(2.0), std::sqrt(70.25), 1e-12);  // the reference itself
  EXPECT_NEAR(host_norm(kInf), 6.0, 0.0);
}

TEST(NnUtils, ClipGradNormLeavesSmallGradients) {
  Tensor a = param_with_grad(kGradA, {2, 2}), b = param_with_grad(kGradB, {3});
  // The total 2-norm is sqrt(70.25) = 8.38...; a max of 9 leaves the gradients as they are.
  EXPECT_NEAR(nn::utils::clip_grad_norm_({a, b}, 9.0), std::sqrt(70.25), 1e-12);
  expect_values(a.grad(), {2, 2}, kGradA, 0, 0);
  expect_values(b.grad(), {3}, kGradB, 0, 0);
}

TEST(NnUtils, ClipGradNormSkipsParametersWithoutGrad) {
  Tensor a = param_with_grad(kGradA, {2, 2});
  Tensor no_grad = zeros({4}, TensorOptions(kFloat64).requires_grad(true));
  const double total = nn::utils::clip_grad_norm_({no_grad, a}, 1.0);
  EXPECT_NEAR(total, std::sqrt(30.0), 1e-12);
  EXPECT_FALSE(no_grad.grad().defined());
  expect_values(a.grad(), {2, 2}, scaled(kGradA, 1.0 / (std::sqrt(30.0) + 1e-6)));
  EXPECT_EQ(nn::utils::clip_grad_norm_({no_grad}, 1.0), 0.0);
  EXPECT_EQ(nn::utils::clip_grad_norm_({}, 1.0), 0.0);
}

TEST(NnUtils, ClipGradNormFloat32AndMixedDtypes) {
  Tensor a = param_with_grad(kGradA, {2, 2}, kFloat32), b = param_with_grad(kGradB, {3});
  const double total = nn::utils::clip_grad_norm_({a, b}, 1.0);
  // f32 sums of a handful of exactly representable squares: far inside 1e-6 relative.
  EXPECT_NEAR(total, std::sqrt(70.25), 1e-6 * std::sqrt(70.25));
  EXPECT_EQ(a.grad().dtype(), kFloat32);
  expect_values(a.grad(), {2, 2}, scaled(kGradA, 1.0 / (std::sqrt(70.25) + 1e-6)));
  expect_values(b.grad(), {3}, scaled(kGradB, 1.0 / (std::sqrt(70.25) + 1e-6)), 1e-6, 1e-7);
}

TEST(NnUtils, ClipGradNormNonFinite) {
  const double nan = std::numeric_limits<double>::quiet_NaN();
  {
    Tensor a = param_with_grad({1.0, nan}, {2});
    expect_error([&] { nn::utils::clip_grad_norm_({a}, 1.0, 2.0, true); },
                 {"clip_grad_norm_", "2-norm", "nan", "error_if_nonfinite"});
    expect_values(a.grad(), {2}, {1.0, nan});  // untouched
  }
  {
    Tensor a = param_with_grad({1.0, kInf}, {2});
    expect_error([&] { nn::utils::clip_grad_norm_({a}, 1.0, kInf, true); },
                 {"clip_grad_norm_", "inf-norm", "inf"});
  }
  {
    // Without the flag the NaN norm scales the gradients, as PyTorch's does: all NaN.
    Tensor a = param_with_grad({1.0, nan}, {2});
    EXPECT_TRUE(std::isnan(nn::utils::clip_grad_norm_({a}, 1.0)));
    expect_values(a.grad(), {2}, {nan, nan});
  }
  expect_error([] { nn::utils::clip_grad_norm_({}, 1.0, 0.0); },
               {"clip_grad_norm_", "norm_type", "0"});
  expect_error([] { nn::utils::clip_grad_norm_({}, -1.0); }, {"clip_grad_norm_", "max_norm"});
}

TEST(NnUtils, ClipGradValue) {
  Tensor a = param_with_grad(kGradA, {2, 2}), b = param_with_grad(kGradB, {3});
  Tensor none = zeros({2}, TensorOptions(kFloat64).requires_grad(true));
  nn::utils::clip_grad_value_({a, none, b}, 2.0);
  expect_values(a.grad(), {2, 2}, {2.0, -2.0, 1.0, 2.0}, 0, 0);
  expect_values(b.grad(), {3}, {-0.5, 2.0, -2.0}, 0, 0);
  EXPECT_FALSE(none.grad().defined());
  expect_error([&] { nn::utils::clip_grad_value_({a}, -1.0); },
               {"clip_grad_value_", "clip_value", "-1"});
}

TEST(NnUtils, ClipGradAfterBackwardUsesTheTapesGradients) {
  // The gradients come from a backward pass: d/dw sum(w * c) = c.
  Tensor w = zeros({2, 2}, TensorOptions(kFloat64).requires_grad(true));
  (w * f64(kGradA, {2, 2})).sum().backward();
  EXPECT_NEAR(nn::utils::clip_grad_norm_({w}, 1.0), std::sqrt(30.0), 1e-12);
  expect_values(w.grad(), {2, 2}, scaled(kGradA, 1.0 / (std::sqrt(30.0) + 1e-6)));
}

TEST(NnUtils, ClipMatchesPyTorch) {
  const Fixture f("nn_utils.txt");
  auto params = [&] {
    std::vector<Tensor> ps;
    for (int i = 0; i < 3; ++i) {
      const Tensor& g = f["grad" + std::to_string(i)];
      Tensor p = zeros(g.shape(), TensorOptions(kFloat64).requires_grad(true));
      p.mutable_grad() = g.clone();
      ps.push_back(p);
    }
    return ps;
  };
  const struct {
    const char* name;
    double norm_type, max_norm;
  } cases[] = {{"l2", 2.0, 1.5}, {"l1", 1.0, 4.0}, {"l3", 3.0, 2.0}, {"linf", kInf, 1.0},
               {"l2_noclip", 2.0, 100.0}};
  for (const auto& c : cases) {
    SCOPED_TRACE(c.name);
    const std::vector<Tensor> ps = params();
    const double total = nn::utils::clip_grad_norm_(ps, c.max_norm, c.norm_type);
    const double expected = f[std::string(c.name) + "_total"].item<double>();
    EXPECT_NEAR(total, expected, 1e-12 * expected);
    for (int i = 0; i < 3; ++i) {
      expect_close(ps[static_cast<size_t>(i)].grad(),
                   f[std::string(c.name) + "_grad" + std::to_string(i)]);
    }
  }
  const std::vector<Tensor> ps = params();
  nn::utils::clip_grad_value_(ps, 1.25);
  for (int i = 0; i < 3; ++i) {
    expect_close(ps[static_cast<size_t>(i)].grad(), f["value_grad" + std::to_string(i)], 0, 0);
  }
}

}  // namespace
}  // namespace strata::test
