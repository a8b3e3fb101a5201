// nn::init: gains and fans against PyTorch's formulas, the sample statistics of every random
// initializer on a large tensor (mean and standard deviation within 4 standard errors of the
// formula, bounds respected; fixed seeds, so a pass is reproducible and a wrong formula is far
// outside the band), orthogonality of orthogonal_ for wide, tall and square shapes, exact
// constants, in-place semantics (no tape, strided targets) and errors.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <vector>

#include "strata/nn/init.h"
#include "strata/strata.h"
#include "test_util.h"

namespace strata {
namespace {

namespace init = strata::nn::init;
using init::FanMode;
using init::Nonlinearity;
using test::expect_error;
using test::expect_values;

struct Stats {
  double mean = 0, std = 0, min = 0, max = 0;
  double n = 0;
};

Stats stats_of(const Tensor& t) {
  const std::vector<double> v = t.to_vector<double>();
  Stats s;
  s.n = static_cast<double>(v.size());
  for (double x : v) s.mean += x;
  s.mean /= s.n;
  for (double x : v) s.std += (x - s.mean) * (x - s.mean);
  s.std = std::sqrt(s.std / (s.n - 1));
  s.min = *std::min_element(v.begin(), v.end());
  s.max = *std::max_element(v.begin(), v.end());
  return s;
}

// Sample mean and std of n draws from a distribution with this mean, std and kurtosis lie
// within 4 standard errors: se(mean) = std / sqrt(n), se(std) ~ std sqrt((kurtosis - 1) / 4n).
void expect_moments(const Stats& s, double mean, double std, double kurtosis) {
  const double se_mean = std / std::sqrt(s.n);
  const double se_std = std * std::sqrt((kurtosis - 1.0) / (4.0 * s.n));
  EXPECT_NEAR(s.mean, mean, 4 * se_mean) << "sample mean off the formula";
  EXPECT_NEAR(s.std, std, 4 * se_std) << "sample std off the formula";
}

constexpr double kUniformKurtosis = 1.8;
constexpr double kNormalKurtosis = 3.0;

// U(-bound, bound): every value inside, the extremes close to the bound, moments as uniform.
void expect_uniform(const Tensor& t, double lo, double hi) {
  const Stats s = stats_of(t);
  EXPECT_GE(s.min, lo);
  EXPECT_LT(s.max, hi);
  // 200k draws: P(no draw in the top 0.1% of the range) = 0.999^200000, about e^-200.
  EXPECT_GT(s.max, hi - 1e-3 * (hi - lo));
  EXPECT_LT(s.min, lo + 1e-3 * (hi - lo));
  expect_moments(s, (lo + hi) / 2, (hi - lo) / std::sqrt(12.0), kUniformKurtosis);
}

void expect_normal(const Tensor& t, double mean, double std) {
  expect_moments(stats_of(t), mean, std, kNormalKurtosis);
}

// ---- gains and fans -------------------------------------------------------------------------

TEST(NNInit, CalculateGainMatchesPyTorch) {
  EXPECT_DOUBLE_EQ(init::calculate_gain(Nonlinearity::Linear), 1.0);
  EXPECT_DOUBLE_EQ(init::calculate_gain(Nonlinearity::Conv), 1.0);
  EXPECT_DOUBLE_EQ(init::calculate_gain(Nonlinearity::Sigmoid), 1.0);
  EXPECT_DOUBLE_EQ(init::calculate_gain(Nonlinearity::Tanh), 5.0 / 3.0);
  EXPECT_DOUBLE_EQ(init::calculate_gain(Nonlinearity::Relu), std::sqrt(2.0));
  EXPECT_DOUBLE_EQ(init::calculate_gain(Nonlinearity::Selu), 0.75);
  // torch.nn.init.calculate_gain('leaky_relu') = sqrt(2 / (1 + 0.01^2)) = 1.4141428569978354
  EXPECT_NEAR(init::calculate_gain(Nonlinearity::LeakyRelu), 1.4141428569978354, 1e-15);
  EXPECT_NEAR(init::calculate_gain(Nonlinearity::LeakyRelu, 0.2), std::sqrt(2.0 / 1.04), 1e-15);
  // a = sqrt(5), as nn.Linear's default init uses it: gain sqrt(1/3).
  EXPECT_NEAR(init::calculate_gain(Nonlinearity::LeakyRelu, std::sqrt(5.0)), std::sqrt(1.0 / 3.0),
              1e-15);
}

TEST(NNInit, FanInAndFanOut) {
  // Linear weight [out, in].
  EXPECT_EQ(init::calculate_fan_in_and_fan_out(zeros({20, 30})),
            (std::pair<int64_t, int64_t>{30, 20}));
  // Conv2d weight [K, C, R, S]: fan_in = C R S, fan_out = K R S.
  EXPECT_EQ(init::calculate_fan_in_and_fan_out(zeros({16, 3, 5, 5})),
            (std::pair<int64_t, int64_t>{75, 400}));
  // Conv1d weight [K, C, R].
  EXPECT_EQ(init::calculate_fan_in_and_fan_out(zeros({8, 4, 3})),
            (std::pair<int64_t, int64_t>{12, 24}));
  expect_error([] { init::calculate_fan_in_and_fan_out(zeros({5})); },
               {"calculate_fan_in_and_fan_out", "at least 2 dimensions", "[5]"});
}

// ---- statistics of the random initializers --------------------------------------------------

TEST(NNInit, UniformAndNormal) {
  Generator gen(42);
  Tensor t = empty({500, 400});
  init::uniform_(t, -0.5, 1.5, &gen);
  expect_uniform(t, -0.5, 1.5);
  init::normal_(t, 0.3, 2.0, &gen);
  expect_normal(t, 0.3, 2.0);
  Tensor d = empty({400, 500}, kFloat64);
  init::normal_(d, -1.0, 0.1, &gen);
  expect_normal(d, -1.0, 0.1);
}

TEST(NNInit, Xavier) {
  Generator gen(7);
  // Conv weight [K=64, C=32, 5, 5]: fan_in 800, fan_out 1600; 51200 elements.
  Tensor w = empty({64, 32, 5, 5});
  const double gain = 5.0 / 3.0;
  init::xavier_uniform_(w, gain, &gen);
  const double bound = gain * std::sqrt(6.0 / (800 + 1600));
  expect_uniform(w, -bound, bound);
  Tensor l = empty({500, 400});
  init::xavier_normal_(l, 1.0, &gen);
  expect_normal(l, 0.0, std::sqrt(2.0 / 900));
}

TEST(NNInit, Kaiming) {
  Generator gen(9);
  Tensor w = empty({500, 400});
  // Defaults (a = 0, fan_in, leaky_relu): U(-sqrt(6 / fan_in), sqrt(6 / fan_in)).
  init::kaiming_uniform_(w, 0.0, FanMode::FanIn, Nonlinearity::LeakyRelu, &gen);
  expect_uniform(w, -std::sqrt(6.0 / 400), std::sqrt(6.0 / 400));
  // nn.Linear's default, a = sqrt(5): U(-1 / sqrt(fan_in), 1 / sqrt(fan_in)).
  init::kaiming_uniform_(w, std::sqrt(5.0), FanMode::FanIn, Nonlinearity::LeakyRelu, &gen);
  expect_uniform(w, -1.0 / std::sqrt(400.0), 1.0 / std::sqrt(400.0));
  // fan_out with ReLU on a conv weight [64, 16, 3, 3]: fan_out 576, std sqrt(2 / 576).
  Tensor c = empty({64, 16, 3, 3}, kFloat64);
  init::kaiming_normal_(c, 0.0, FanMode::FanOut, Nonlinearity::Relu, &gen);
  expect_normal(c, 0.0, std::sqrt(2.0 / 576));
  init::kaiming_normal_(c, 0.0, FanMode::FanIn, Nonlinearity::Tanh, &gen);
  expect_normal(c, 0.0, (5.0 / 3.0) / std::sqrt(144.0));
}

TEST(NNInit, SameSeedSameValues) {
  Generator a(123), b(123), c(124);
  Tensor x = empty({50, 40}), y = empty({50, 40}), z = empty({50, 40});
  init::xavier_uniform_(x, 1.0, &a);
  init::xavier_uniform_(y, 1.0, &b);
  init::xavier_uniform_(z, 1.0, &c);
  EXPECT_EQ(x.to_vector<float>(), y.to_vector<float>());
  EXPECT_NE(x.to_vector<float>(), z.to_vector<float>());
  // Each draw advances the generator: a second fill differs from the first.
  init::xavier_uniform_(y, 1.0, &b);
  EXPECT_NE(x.to_vector<float>(), y.to_vector<float>());
}

// ---- orthogonal_ ----------------------------------------------------------------------------

// gain^-2 * m m^T (rows <= cols) or m^T m (rows > cols) is the identity.
void expect_orthonormal(const Tensor& t, double gain, double tol) {
  const Tensor m = t.reshape({t.size(0), -1}).to(kFloat64);
  const bool wide = m.size(0) <= m.size(1);
  const Tensor gram = div(wide ? matmul(m, m.t()) : matmul(m.t(), m), gain * gain);
  const int64_t n = gram.size(0);
  std::vector<double> identity(static_cast<size_t>(n * n), 0.0);
  for (int64_t i = 0; i < n; ++i) identity[static_cast<size_t>(i * n + i)] = 1.0;
  expect_values(gram, {n, n}, identity, 0.0, tol);
}

TEST(NNInit, OrthogonalWideTallSquare) {
  Generator gen(5);
  for (const Shape& shape : {Shape{3, 7}, Shape{7, 3}, Shape{6, 6}, Shape{4, 2, 3},
                             Shape{40, 25}}) {
    SCOPED_TRACE(shape_str(shape));
    Tensor d = empty(shape, kFloat64);
    init::orthogonal_(d, 1.0, &gen);
    expect_orthonormal(d, 1.0, 1e-12);  // QR in double: orthonormal to rounding
    Tensor f = empty(shape, kFloat32);
    init::orthogonal_(f, 2.0, &gen);
    expect_orthonormal(f, 2.0, 1e-6);  // f32 storage: entries rounded to ~6e-8 relative
  }
}

TEST(NNInit, OrthogonalIsRandomAndSeeded) {
  Generator a(1), b(1), c(2);
  Tensor x = empty({5, 5}, kFloat64), y = empty({5, 5}, kFloat64), z = empty({5, 5}, kFloat64);
  init::orthogonal_(x, 1.0, &a);
  init::orthogonal_(y, 1.0, &b);
  init::orthogonal_(z, 1.0, &c);
  EXPECT_EQ(x.to_vector<double>(), y.to_vector<double>());
  EXPECT_NE(x.to_vector<double>(), z.to_vector<double>());
  // Not the identity or a signed permutation: a Haar-like draw has entries of every size.
  const Stats s = stats_of(abs(x));
  EXPECT_GT(s.mean, 0.1);
  EXPECT_LT(s.max, 0.999);
}

// ---- constants and in-place semantics -------------------------------------------------------

TEST(NNInit, ConstantsAreExact) {
  Tensor t = empty({3, 4});
  init::constant_(t, 0.25);
  expect_values(t, {3, 4}, std::vector<double>(12, 0.25), 0.0, 0.0);
  init::zeros_(t);
  expect_values(t, {3, 4}, std::vector<double>(12, 0.0), 0.0, 0.0);
  init::ones_(t);
  expect_values(t, {3, 4}, std::vector<double>(12, 1.0), 0.0, 0.0);
}

TEST(NNInit, FillsParametersWithoutTheTape) {
  Tensor w = zeros({30, 20}).set_requires_grad(true);
  Tensor& same = init::kaiming_uniform_(w);
  EXPECT_EQ(&same, &w);
  EXPECT_TRUE(w.is_leaf());
  EXPECT_TRUE(w.requires_grad());
  EXPECT_EQ(w.grad_fn(), nullptr);
  EXPECT_GT(stats_of(w).max, 0.0);
  Tensor& o = init::orthogonal_(w);
  EXPECT_EQ(&o, &w);
  expect_orthonormal(w, 1.0, 1e-6);
  init::ones_(w);
  EXPECT_EQ(w.grad_fn(), nullptr);
}

TEST(NNInit, FillsStridedViews) {
  // A transposed view: values land in the base tensor; the other half stays untouched.
  Tensor base = zeros({400, 600}, kFloat64);
  Tensor left = base.narrow(1, 0, 300).t();  // [300, 400], strided
  ASSERT_FALSE(left.is_contiguous());
  Generator gen(3);
  init::uniform_(left, 1.0, 2.0, &gen);
  expect_uniform(base.narrow(1, 0, 300).contiguous(), 1.0, 2.0);
  const Stats untouched = stats_of(base.narrow(1, 300, 300).contiguous());
  EXPECT_EQ(untouched.min, 0.0);
  EXPECT_EQ(untouched.max, 0.0);
}

TEST(NNInit, EmptyTensorsAreANoOp) {
  Tensor t = empty({0, 3});
  EXPECT_NO_THROW(init::kaiming_uniform_(t));
  EXPECT_NO_THROW(init::xavier_normal_(t));
  EXPECT_NO_THROW(init::orthogonal_(t));
}

TEST(NNInit, Errors) {
  Tensor v = zeros({5});
  expect_error([&] { init::xavier_uniform_(v); }, {"calculate_fan_in_and_fan_out", "[5]"});
  expect_error([&] { init::kaiming_normal_(v); }, {"calculate_fan_in_and_fan_out", "[5]"});
  expect_error([&] { init::orthogonal_(v); }, {"orthogonal_", "2 or more dimensions", "[5]"});
  Tensor i = zeros({3, 3}, kInt64);
  expect_error([&] { init::normal_(i); }, {"normal_", "floating", "i64"});
  expect_error([&] { init::kaiming_uniform_(i); }, {"kaiming_uniform_", "i64"});
  Tensor f = zeros({3, 3});
  expect_error([&] { init::uniform_(f, 1.0, 0.0); }, {"uniform_", "a <= b"});
  expect_error([&] { init::normal_(f, 0.0, -1.0); }, {"normal_", "std"});
  Tensor undefined;
  expect_error([&] { init::constant_(undefined, 1.0); }, {"constant_"});
}

}  // namespace
}  // namespace strata
