// nn::functional activations on the CPU: relu, sigmoid, tanh, leaky_relu, elu, softplus, gelu,
// softmax, log_softmax and maxout. Each has a float64 gradcheck (inputs kept off kinks and
// ties), forward values and gradients compared with PyTorch (tests/data/nn_activation.txt from
// gen_nn_activation.py) in float64 and float32, a large float32 tensor that takes the
// multi-threaded path checked against values computed here on the host, and error tests.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "fixtures.h"
#include "strata/strata.h"
#include "test_util.h"

namespace strata {
namespace {

namespace F = nn::functional;
using test::expect_close;
using test::expect_error;
using test::expect_gradcheck;
using test::Fixture;
using test::Tolerance;
using In = const std::vector<Tensor>&;

const Fixture& fixture() {
  static const Fixture f("nn_activation.txt");
  return f;
}

// f32 against a float64 PyTorch reference: the inputs were rounded to f32 (relative 6e-8) and
// the op rounds a few times more; 1e-5 relative leaves room for both on O(1) values, and the
// gradients of softmax-like ops combine several terms, hence the same absolute floor 1e-5.
constexpr Tolerance kF32{1e-5, 1e-5};
// f64 against PyTorch's f64: a different summation order, nothing more.
constexpr Tolerance kF64{1e-10, 1e-12};

Tolerance tolerance_for(DType dtype) { return dtype == DType::Float32 ? kF32 : kF64; }

void expect_fixture_case(const std::string& name, const std::vector<std::string>& inputs,
                         const std::vector<std::string>& grad_of,
                         const std::function<Tensor(In)>& fn, DType dtype) {
  test::expect_fixture_case(fixture(), name, inputs, grad_of, fn, dtype, tolerance_for(dtype));
}

void expect_fixture_case_both(const std::string& name, const std::function<Tensor(In)>& fn) {
  for (DType dtype : {DType::Float64, DType::Float32}) {
    expect_fixture_case(name, {"x"}, {"x"}, fn, dtype);
  }
}

// A float64 leaf of values uniform in [lo, hi), each at least 0.05 from every point in avoid.
Tensor leaf_avoiding(const Shape& shape, double lo, double hi, const std::vector<double>& avoid,
                     uint32_t seed) {
  return test::f64(test::uniform_avoiding(static_cast<size_t>(numel_of(shape)), lo, hi, avoid,
                                          0.05, seed),
                   shape, true);
}

// ---- pointwise activations ---------------------------------------------------------------------

TEST(NnActivation, PointwiseMatchPyTorch) {
  expect_fixture_case_both("relu", [](In in) { return F::relu(in[0]); });
  expect_fixture_case_both("sigmoid", [](In in) { return F::sigmoid(in[0]); });
  expect_fixture_case_both("tanh", [](In in) { return F::tanh(in[0]); });
  expect_fixture_case_both("leaky_relu", [](In in) { return F::leaky_relu(in[0], 0.2); });
  expect_fixture_case_both("elu", [](In in) { return F::elu(in[0], 0.7); });
  expect_fixture_case_both("gelu", [](In in) { return F::gelu(in[0]); });
  // beta = 2 on [-3, 12]: some entries are past the threshold (beta * x > 20) and pass through.
  expect_fixture_case_both("softplus", [](In in) { return F::softplus(in[0], 2.0); });
}

TEST(NnActivation, PointwiseGradcheck) {
  const Shape shape = {3, 4};
  expect_gradcheck([](In in) { return F::relu(in[0]); }, {leaf_avoiding(shape, -2, 2, {0}, 1)});
  expect_gradcheck([](In in) { return F::sigmoid(in[0]); }, {leaf_avoiding(shape, -4, 4, {}, 2)});
  expect_gradcheck([](In in) { return F::tanh(in[0]); }, {leaf_avoiding(shape, -3, 3, {}, 3)});
  expect_gradcheck([](In in) { return F::leaky_relu(in[0], 0.1); },
                   {leaf_avoiding(shape, -2, 2, {0}, 4)});
  expect_gradcheck([](In in) { return F::elu(in[0], 1.3); }, {leaf_avoiding(shape, -3, 2, {0}, 5)});
  expect_gradcheck([](In in) { return F::gelu(in[0]); }, {leaf_avoiding(shape, -4, 4, {}, 6)});
  // beta = 3: the threshold beta * x = 20 sits at x = 6.67, a kink to keep away from.
  expect_gradcheck([](In in) { return F::softplus(in[0], 3.0); },
                   {leaf_avoiding(shape, -4, 9, {20.0 / 3.0}, 7)});
}

TEST(NnActivation, ReluGradientAtZeroIsZeroAndNaNPropagates) {
  Tensor x = test::f64({-1.0, 0.0, 2.0, NAN}, {4}, true);
  Tensor y = F::relu(x);
  const auto v = y.to_vector<double>();
  EXPECT_EQ(v[0], 0.0);
  EXPECT_EQ(v[1], 0.0);
  EXPECT_EQ(v[2], 2.0);
  EXPECT_TRUE(std::isnan(v[3]));  // as torch.relu
  y.backward(test::f64({1, 1, 1, 1}, {4}));
  const auto g = x.grad().to_vector<double>();
  EXPECT_EQ(g[0], 0.0);
  EXPECT_EQ(g[1], 0.0);  // NOTE: the subgradient PyTorch picks at 0
  EXPECT_EQ(g[2], 1.0);
}

// A float32 tensor large enough for the threaded path, against std:: math in double.
TEST(NnActivation, LargeFloat32MatchesHostMath) {
  const Shape shape = {300, 301};  // 90300 elements: above the threading threshold, odd size
  const Tensor x = test::random_f32(shape, -6, 6, 11);
  const Tensor g = test::random_f32(shape, -1, 1, 12);
  const auto xv = x.to_vector<double>(), gv = g.to_vector<double>();
  struct Case {
    const char* name;
    std::function<Tensor(const Tensor&)> fn;
    std::function<double(double)> f;
    std::function<double(double)> df;
  };
  const double pi = 3.14159265358979323846;
  const std::vector<Case> cases = {
      {"relu", [](const Tensor& t) { return F::relu(t); },
       [](double v) { return v > 0 ? v : 0.0; }, [](double v) { return v > 0 ? 1.0 : 0.0; }},
      {"sigmoid", [](const Tensor& t) { return F::sigmoid(t); },
       [](double v) { return 1 / (1 + std::exp(-v)); },
       [](double v) { const double s = 1 / (1 + std::exp(-v)); return s * (1 - s); }},
      {"tanh", [](const Tensor& t) { return F::tanh(t); }, [](double v) { return std::tanh(v); },
       [](double v) { return 1 - std::tanh(v) * std::tanh(v); }},
      {"leaky_relu", [](const Tensor& t) { return F::leaky_relu(t, 0.05); },
       [](double v) { return v > 0 ? v : 0.05 * v; }, [](double v) { return v > 0 ? 1.0 : 0.05; }},
      {"elu", [](const Tensor& t) { return F::elu(t, 1.0); },
       [](double v) { return v > 0 ? v : std::expm1(v); },
       [](double v) { return v > 0 ? 1.0 : std::exp(v); }},
      {"softplus", [](const Tensor& t) { return F::softplus(t, 4.0); },
       [](double v) { return 4 * v > 20 ? v : std::log1p(std::exp(4 * v)) / 4; },
       [](double v) { return 4 * v > 20 ? 1.0 : 1 / (1 + std::exp(-4 * v)); }},
      {"gelu", [](const Tensor& t) { return F::gelu(t); },
       [](double v) { return 0.5 * v * (1 + std::erf(v / std::sqrt(2.0))); },
       [pi](double v) {
         return 0.5 * (1 + std::erf(v / std::sqrt(2.0))) + v * std::exp(-v * v / 2) / std::sqrt(2 * pi);
       }},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.name);
    Tensor leaf = x.clone().set_requires_grad(true);
    Tensor y = c.fn(leaf);
    y.backward(g);
    std::vector<double> want_y(xv.size()), want_g(xv.size());
    for (size_t i = 0; i < xv.size(); ++i) {
      want_y[i] = c.f(xv[i]);
      want_g[i] = gv[i] * c.df(xv[i]);
    }
    // f32 libm on O(1) values: a few ulps relative; the absolute floor covers results near 0.
    test::expect_values(y, shape, want_y, 1e-5, 1e-6);
    test::expect_values(leaf.grad(), shape, want_g, 1e-5, 1e-6);
  }
}

TEST(NnActivation, NonContiguousInput) {
  const Tensor base = test::random_f64({4, 5}, -2, 2, 21);
  const Tensor xt = base.t();  // [5, 4], not contiguous
  ASSERT_FALSE(xt.is_contiguous());
  expect_close(F::gelu(xt), F::gelu(xt.contiguous()));
  expect_close(F::softmax(xt, 0), F::softmax(xt.contiguous(), 0));
  expect_close(F::log_softmax(xt, 1), F::log_softmax(xt.contiguous(), 1));
  expect_gradcheck([](In in) { return F::elu(in[0].t(), 0.5); },
                   {leaf_avoiding({4, 5}, -2, 2, {0}, 22)});
}

TEST(NnActivation, EmptyInput) {
  const Tensor x = zeros({0, 3}, kFloat32);
  EXPECT_EQ(F::relu(x).shape(), (Shape{0, 3}));
  EXPECT_EQ(F::softmax(x, 1).shape(), (Shape{0, 3}));
}

// ---- softmax and log_softmax -------------------------------------------------------------------

TEST(NnSoftmax, MatchesPyTorchOverEveryDim) {
  for (int64_t d : {0, 1, 2}) {
    expect_fixture_case_both("softmax_d" + std::to_string(d),
                             [d](In in) { return F::softmax(in[0], d); });
    expect_fixture_case_both("log_softmax_d" + std::to_string(d),
                             [d](In in) { return F::log_softmax(in[0], d); });
  }
  // Negative dims count from the end: -1 is dim 2, -2 the middle one.
  expect_fixture_case_both("softmax_d2", [](In in) { return F::softmax(in[0], -1); });
  expect_fixture_case_both("log_softmax_d1", [](In in) { return F::log_softmax(in[0], -2); });
  expect_fixture_case_both("softmax_d0", [](In in) { return F::softmax(in[0], -3); });
}

TEST(NnSoftmax, LargeLogitsStayFinite) {
  expect_fixture_case_both("softmax_large", [](In in) { return F::softmax(in[0], 1); });
  expect_fixture_case_both("log_softmax_large", [](In in) { return F::log_softmax(in[0], 1); });
  for (DType dtype : {DType::Float32, DType::Float64}) {
    const Tensor x = fixture()["softmax_large_x"].to(dtype);
    for (const Tensor& y : {F::softmax(x, 1), F::log_softmax(x, 1), F::softmax(x, 0)}) {
      for (double v : y.to_vector<double>()) EXPECT_TRUE(std::isfinite(v)) << v;
    }
  }
  // float32 log_softmax near 1000 keeps float32's relative accuracy (x - max is exact there;
  // only log(sum) and the final subtraction round): 1e-6 is about 8 ulps.
  const Tensor x32 = fixture()["log_softmax_large_x"].to(kFloat32);
  expect_close(F::log_softmax(x32, 1), fixture()["log_softmax_large_out"], 1e-6, 1e-6);
}

TEST(NnSoftmax, Gradcheck) {
  const Tensor x = test::random_f64({2, 3, 4}, -3, 3, 31, true);
  for (int64_t d : {0, 1, 2, -1}) {
    SCOPED_TRACE(d);
    expect_gradcheck([d](In in) { return F::softmax(in[0], d); }, {x});
    expect_gradcheck([d](In in) { return F::log_softmax(in[0], d); }, {x});
  }
  // A 0-d input: softmax is 1, log_softmax 0, both with zero gradient.
  Tensor s = scalar_tensor(0.7, kFloat64);
  s.set_requires_grad(true);
  ASSERT_EQ(s.dim(), 0);
  expect_gradcheck([](In in) { return F::softmax(in[0], 0); }, {s});
  test::expect_values(F::log_softmax(s, -1), {}, {0.0});
}

// Host reference: softmax along the middle axis of [outer, size, inner] in double.
std::vector<double> host_softmax(const std::vector<double>& x, int64_t outer, int64_t size,
                                 int64_t inner, bool log) {
  std::vector<double> y(x.size());
  for (int64_t o = 0; o < outer; ++o) {
    for (int64_t j = 0; j < inner; ++j) {
      auto at = [&](int64_t k) { return static_cast<size_t>((o * size + k) * inner + j); };
      double m = x[at(0)];
      for (int64_t k = 1; k < size; ++k) m = std::max(m, x[at(k)]);
      double s = 0;
      for (int64_t k = 0; k < size; ++k) s += std::exp(x[at(k)] - m);
      for (int64_t k = 0; k < size; ++k) {
        y[at(k)] = log ? x[at(k)] - m - std::log(s) : std::exp(x[at(k)] - m) / s;
      }
    }
  }
  return y;
}

// Shapes that take every path of the kernel: rows (inner 1), column blocks narrower and wider
// than one block (64), and the threaded split of each.
TEST(NnSoftmax, Float32PathsMatchHostMath) {
  struct Case {
    Shape shape;
    int64_t dim, outer, size, inner;
  };
  const std::vector<Case> cases = {
      {{7, 10}, 1, 7, 10, 1},           {{3, 5, 130}, 1, 3, 5, 130},
      {{2, 9, 3}, 1, 2, 9, 3},          {{400, 100}, 1, 400, 100, 1},
      {{4, 50, 200}, 1, 4, 50, 200},    {{50, 7, 7, 2}, 0, 1, 50, 98},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(shape_str(c.shape) + " dim " + std::to_string(c.dim));
    const Tensor x = test::random_f32(c.shape, -8, 8, 41);
    const auto xv = x.to_vector<double>();
    for (bool log : {false, true}) {
      const Tensor y = log ? F::log_softmax(x, c.dim) : F::softmax(x, c.dim);
      // f32 exp and a long sum: a few ulps relative; 1e-6 absolute for probabilities near 0.
      test::expect_values(y, c.shape, host_softmax(xv, c.outer, c.size, c.inner, log), 1e-5,
                          1e-6);
    }
  }
}

TEST(NnSoftmax, BackwardPathsMatchFloat64) {
  // The float64 backward is gradchecked above on small shapes; here the threaded and
  // column-block paths in f32 must agree with it.
  for (const Shape& shape : {Shape{300, 120}, Shape{4, 50, 200}}) {
    SCOPED_TRACE(shape_str(shape));
    const Tensor x = test::random_f64(shape, -4, 4, 51);
    const Tensor g = test::random_f64(shape, -1, 1, 52);
    for (bool log : {false, true}) {
      Tensor a = x.clone().set_requires_grad(true);
      Tensor b = x.to(kFloat32).set_requires_grad(true);
      (log ? F::log_softmax(a, 1) : F::softmax(a, 1)).backward(g);
      (log ? F::log_softmax(b, 1) : F::softmax(b, 1)).backward(g.to(kFloat32));
      // f32 rounding of inputs, outputs and a sum of 50-120 terms; values are O(1e-2..1).
      expect_close(b.grad(), a.grad(), 1e-4, 1e-6);
    }
  }
}

// ---- maxout -------------------------------------------------------------------------------------

TEST(NnMaxout, MatchesPyTorch) {
  expect_fixture_case_both("maxout_d1", [](In in) { return F::maxout(in[0], 3, 1); });
  expect_fixture_case_both("maxout_last", [](In in) { return F::maxout(in[0], 2); });
  expect_fixture_case_both("maxout_last", [](In in) { return F::maxout(in[0], 2, -1); });
}

TEST(NnMaxout, Gradcheck) {
  const Tensor x = test::f64(test::distinct_values(2 * 6 * 2, 0.3, 61), {2, 6, 2}, true);
  expect_gradcheck([](In in) { return F::maxout(in[0], 2, 1); }, {x});
  expect_gradcheck([](In in) { return F::maxout(in[0], 3, -2); }, {x});
  expect_gradcheck([](In in) { return F::maxout(in[0], 2, 2); }, {x});
  EXPECT_EQ(F::maxout(x, 3, 1).shape(), (Shape{2, 2, 2}));
  EXPECT_EQ(F::maxout(x, 1, 1).shape(), (Shape{2, 6, 2}));
}

// ---- errors -------------------------------------------------------------------------------------

TEST(NnActivation, Errors) {
  const Tensor ints = arange(6).reshape({2, 3});
  expect_error([&] { F::relu(ints); }, {"relu", "[2,3]", "i64"});
  expect_error([&] { F::gelu(ints); }, {"gelu", "[2,3]"});
  expect_error([&] { F::sigmoid(Tensor()); }, {"sigmoid"});
  expect_error([&] { F::softplus(ones({2}), 0.0); }, {"softplus", "beta"});
  expect_error([&] { F::softmax(ints, 1); }, {"softmax", "[2,3]", "i64"});
  const Tensor x = ones({2, 3});
  expect_error([&] { F::softmax(x, 2); }, {"softmax", "2", "rank 2"});
  expect_error([&] { F::log_softmax(x, -3); }, {"log_softmax", "-3", "rank 2"});
  expect_error([&] { F::maxout(ones({2, 5}), 2); }, {"maxout", "5", "pieces=2", "[2,5]"});
  expect_error([&] { F::maxout(x, 0); }, {"maxout", "pieces", "[2,3]"});
  expect_error([&] { F::maxout(x, 3, 2); }, {"maxout", "2", "rank 2"});
  expect_error([&] { F::maxout(ints, 3); }, {"maxout", "i64"});
}

}  // namespace
}  // namespace strata
