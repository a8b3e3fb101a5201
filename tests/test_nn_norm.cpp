// nn::functional normalization and dropout on the CPU: batch_norm (training on [N, C] and
// [N, C, H, W], with and without affine parameters, running statistics after one and two
// steps; evaluation), layer_norm, and dropout. Forward values and gradients are compared with
// PyTorch (tests/data/nn_activation.txt from gen_nn_activation.py) in float64 and float32;
// every differentiable path has a float64 gradcheck; errors name the function and the shapes.
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

// f32 against a float64 PyTorch reference: inputs rounded to f32 (6e-8 relative), then the
// normalization divides by a standard deviation and its gradient subtracts two channel sums,
// which can lose a few more digits on O(1) values; 2e-5 absolute and relative covers both.
constexpr Tolerance kF32{2e-5, 2e-5};
// f64 against PyTorch's f64: a different summation order, nothing more.
constexpr Tolerance kF64{1e-10, 1e-12};

Tolerance tolerance_for(DType dtype) { return dtype == DType::Float32 ? kF32 : kF64; }

Tensor from_fixture(const std::string& name, DType dtype) {
  return fixture()[name].to(dtype).clone();
}

void expect_fixture_case(const std::string& name, const std::vector<std::string>& inputs,
                         const std::vector<std::string>& grad_of,
                         const std::function<Tensor(In)>& fn, DType dtype) {
  test::expect_fixture_case(fixture(), name, inputs, grad_of, fn, dtype, tolerance_for(dtype));
}

// ---- batch_norm in training ---------------------------------------------------------------------

// Two training steps of fixture `name` (rm0/rv0 the initial running statistics, s1/s2 the
// steps): outputs and gradients each step, running statistics after each.
void expect_batch_norm_training(const std::string& name, bool affine, double momentum) {
  for (DType dtype : {DType::Float64, DType::Float32}) {
    const Tolerance tol = tolerance_for(dtype);
    Tensor running_mean = from_fixture(name + "_rm0", dtype);
    Tensor running_var = from_fixture(name + "_rv0", dtype);
    for (int step : {1, 2}) {
      const std::string s = name + "_s" + std::to_string(step);
      const auto fn = [&](In in) {
        return F::batch_norm(in[0], running_mean, running_var, affine ? in[1] : Tensor(),
                             affine ? in[2] : Tensor(), /*training=*/true, momentum, 1e-5);
      };
      if (affine) {
        expect_fixture_case(s, {"x", "w", "b"}, {"x", "w", "b"}, fn, dtype);
      } else {
        expect_fixture_case(s, {"x"}, {"x"}, fn, dtype);
      }
      SCOPED_TRACE(s + " running statistics " + dtype_name(dtype));
      expect_close(running_mean, fixture()[name + "_rm" + std::to_string(step)], tol.rtol, tol.atol);
      expect_close(running_var, fixture()[name + "_rv" + std::to_string(step)], tol.rtol, tol.atol);
    }
  }
}

TEST(NnBatchNorm, Training1dMatchesPyTorch) {
  expect_batch_norm_training("bn1d", /*affine=*/true, 0.1);
  expect_batch_norm_training("bn1d_noaffine", /*affine=*/false, 0.1);
}

TEST(NnBatchNorm, Training2dMatchesPyTorch) {
  expect_batch_norm_training("bn2d", /*affine=*/true, 0.3);
  expect_batch_norm_training("bn2d_noaffine", /*affine=*/false, 0.1);
}

TEST(NnBatchNorm, TrainingGradcheck) {
  const Tensor x1 = test::random_f64({5, 3}, -2, 2, 71, true);
  const Tensor x2 = test::random_f64({2, 3, 2, 3}, -2, 2, 72, true);
  const Tensor w = test::random_f64({3}, 0.5, 1.5, 73, true);
  const Tensor b = test::random_f64({3}, -1, 1, 74, true);
  for (const Tensor& x : {x1, x2}) {
    SCOPED_TRACE(shape_str(x.shape()));
    expect_gradcheck([](In in) {
      return F::batch_norm(in[0], Tensor(), Tensor(), in[1], in[2], true);
    }, {x, w, b});
    expect_gradcheck([](In in) {
      return F::batch_norm(in[0], Tensor(), Tensor(), Tensor(), Tensor(), true);
    }, {x});
    // With running statistics too (they change every call but do not enter the output).
    Tensor rm = zeros({3}, kFloat64), rv = ones({3}, kFloat64);
    expect_gradcheck([&](In in) {
      return F::batch_norm(in[0], rm, rv, in[1], Tensor(), true, 0.2);
    }, {x, w});
  }
}

// eps 0.5 next to a batch variance of about 1.3: an eps lost between forward and backward (a
// backward that assumed 1e-5) would be off by ~20%, far beyond any tolerance here.
TEST(NnBatchNorm, LargeEpsGradcheckAndComposite) {
  static constexpr double kEps = 0.5;
  const Tensor x = test::random_f64({4, 3, 2, 3}, -2, 2, 75, true);
  const Tensor w = test::random_f64({3}, 0.5, 1.5, 76, true);
  const Tensor b = test::random_f64({3}, -1, 1, 77, true);
  expect_gradcheck([](In in) {
    return F::batch_norm(in[0], Tensor(), Tensor(), in[1], in[2], true, 0.1, kEps);
  }, {x, w, b});
  // Against the same normalization written with recorded ops (the tape differentiates it).
  const auto composite = [](In in) {
    const Tensor mean = in[0].mean({0, 2, 3}, true);
    const Tensor var = sub(in[0], mean).pow(2.0).mean({0, 2, 3}, true);
    const Tensor xhat = div(sub(in[0], mean), sqrt(add(var, kEps)));
    return add(mul(xhat, in[1].reshape({1, 3, 1, 1})), in[2].reshape({1, 3, 1, 1}));
  };
  const Tensor upstream = test::random_f64({4, 3, 2, 3}, -1, 1, 78, false);
  auto run = [&](const std::function<Tensor(In)>& fn) {
    std::vector<Tensor> in = {x.detach().clone(), w.detach().clone(), b.detach().clone()};
    for (Tensor& t : in) t.set_requires_grad(true);
    const Tensor out = fn(in);
    sum(mul(out, upstream)).backward();
    return std::vector<Tensor>{out.detach(), in[0].grad(), in[1].grad(), in[2].grad()};
  };
  const std::vector<Tensor> got = run([](In in) {
    return F::batch_norm(in[0], Tensor(), Tensor(), in[1], in[2], true, 0.1, kEps);
  });
  const std::vector<Tensor> want = run(composite);
  for (size_t i = 0; i < got.size(); ++i) {
    SCOPED_TRACE("output/gradient " + std::to_string(i));
    expect_close(got[i], want[i], 1e-10, 1e-12);  // float64, summation order only
  }
}

TEST(NnBatchNorm, UndefinedAffineIsIdentity) {
  const Tensor x = test::random_f64({4, 2, 3}, -2, 2, 75, true);
  const Tensor plain = F::batch_norm(x, Tensor(), Tensor(), Tensor(), Tensor(), true);
  const Tensor explicit_ = F::batch_norm(x, Tensor(), Tensor(), ones({2}, kFloat64),
                                         zeros({2}, kFloat64), true);
  expect_close(plain, explicit_);
  // Each channel of the output has mean 0.
  const Tensor m = mean(plain, {0, 2});
  test::expect_values(m, {2}, {0.0, 0.0}, 0, 1e-12);
}

// Gradients only where asked: weight without requires_grad gets none, bias gets sum(g) per
// channel and x its own (checked against host sums here, independent of the kernel).
TEST(NnBatchNorm, GradientsOnlyWhereRequired) {
  const Shape shape = {3, 2, 4};
  const Tensor x = test::random_f64(shape, -2, 2, 87);
  const Tensor w = test::random_f64({2}, 0.5, 1.5, 88);  // no grad
  Tensor b = test::random_f64({2}, -1, 1, 89, true);
  const Tensor g = test::random_f64(shape, -1, 1, 90);
  F::batch_norm(x, Tensor(), Tensor(), w, b, true).backward(g);
  EXPECT_FALSE(w.grad().defined());
  EXPECT_FALSE(x.grad().defined());
  const auto gv = g.to_vector<double>();
  std::vector<double> want(2, 0.0);
  for (size_t i = 0; i < gv.size(); ++i) want[(i / 4) % 2] += gv[i];
  test::expect_values(b.grad(), {2}, want);
}

// Sizes above the threading threshold, in float32, against the float64 path (which the
// fixtures check): [N, C] rows and [N, C, H, W] channels.
TEST(NnBatchNorm, LargeFloat32MatchesFloat64) {
  for (const Shape& shape : {Shape{512, 100}, Shape{64, 8, 9, 9}}) {
    SCOPED_TRACE(shape_str(shape));
    const int64_t c = shape[1];
    const Tensor x = test::random_f64(shape, -3, 5, 76);
    const Tensor g = test::random_f64(shape, -1, 1, 77);
    const Tensor w = test::random_f64({c}, 0.5, 1.5, 78);
    const Tensor b = test::random_f64({c}, -1, 1, 79);
    std::vector<Tensor> outs, grads, rms, rvs;
    for (DType dtype : {DType::Float64, DType::Float32}) {
      Tensor xl = x.to(dtype).clone().set_requires_grad(true);
      Tensor rm = zeros({c}, dtype), rv = ones({c}, dtype);
      Tensor y = F::batch_norm(xl, rm, rv, w.to(dtype), b.to(dtype), true, 0.1, 1e-5);
      y.backward(g.to(dtype));
      outs.push_back(y);
      grads.push_back(xl.grad());
      rms.push_back(rm);
      rvs.push_back(rv);
    }
    // f32 inputs and outputs of O(1); the gradient sums thousands of terms per channel (kept
    // in double inside the kernel), so f32 rounding of g and x dominates: 1e-5 absolute.
    expect_close(outs[1], outs[0], 1e-5, 1e-5);
    expect_close(grads[1], grads[0], 1e-4, 1e-5);
    expect_close(rms[1], rms[0], 1e-5, 1e-6);
    expect_close(rvs[1], rvs[0], 1e-5, 1e-6);
  }
}

TEST(NnBatchNorm, NonContiguousInput) {
  const Tensor base = test::random_f64({3, 6}, -2, 2, 80);
  const Tensor xt = base.t();  // [6, 3], not contiguous
  ASSERT_FALSE(xt.is_contiguous());
  Tensor rm1 = zeros({3}, kFloat64), rv1 = ones({3}, kFloat64);
  Tensor rm2 = zeros({3}, kFloat64), rv2 = ones({3}, kFloat64);
  expect_close(F::batch_norm(xt, rm1, rv1, Tensor(), Tensor(), true),
               F::batch_norm(xt.contiguous(), rm2, rv2, Tensor(), Tensor(), true));
  expect_close(rm1, rm2);
  expect_close(rv1, rv2);
  // A strided running_mean (every other element of a buffer) is updated in place too.
  Tensor buffer = zeros({6}, kFloat64);
  Tensor strided = buffer.slice(0, 0, 6, 2);
  Tensor rv3 = ones({3}, kFloat64);
  F::batch_norm(xt, strided, rv3, Tensor(), Tensor(), true);
  expect_close(strided, rm2);
  test::expect_values(buffer.slice(0, 1, 6, 2), {3}, {0, 0, 0});
}

// ---- batch_norm in evaluation -------------------------------------------------------------------

TEST(NnBatchNorm, EvalMatchesPyTorch) {
  for (DType dtype : {DType::Float64, DType::Float32}) {
    expect_fixture_case("bn_eval", {"x", "rm", "rv", "w", "b"}, {"x", "w", "b"}, [](In in) {
      return F::batch_norm(in[0], in[1], in[2], in[3], in[4], /*training=*/false, 0.1, 1e-3);
    }, dtype);
  }
  // Evaluation leaves the running statistics alone.
  Tensor rm = from_fixture("bn_eval_rm", kFloat64), rv = from_fixture("bn_eval_rv", kFloat64);
  F::batch_norm(from_fixture("bn_eval_x", kFloat64), rm, rv, Tensor(), Tensor(), false);
  expect_close(rm, fixture()["bn_eval_rm"], 0, 0);
  expect_close(rv, fixture()["bn_eval_rv"], 0, 0);
}

TEST(NnBatchNorm, EvalGradcheck) {
  const Tensor x = test::random_f64({3, 2, 2}, -2, 2, 81, true);
  const Tensor rm = test::random_f64({2}, -1, 1, 82);
  const Tensor rv = test::random_f64({2}, 0.5, 2, 83);
  const Tensor w = test::random_f64({2}, 0.5, 1.5, 84, true);
  const Tensor b = test::random_f64({2}, -1, 1, 85, true);
  expect_gradcheck([&](In in) { return F::batch_norm(in[0], rm, rv, in[1], in[2], false); },
                   {x, w, b});
  // One sample is fine in evaluation.
  expect_gradcheck([&](In in) { return F::batch_norm(in[0], rm, rv, Tensor(), Tensor(), false); },
                   {test::random_f64({1, 2}, -2, 2, 86, true)});
}

TEST(NnBatchNorm, Errors) {
  const Tensor x = ones({4, 3});
  const Tensor c3 = ones({3}), c2 = ones({2});
  expect_error([&] { F::batch_norm(ones({3}), c3, c3, Tensor(), Tensor(), true); },
               {"batch_norm", "rank >= 2", "[3]"});
  expect_error([&] { F::batch_norm(x, c2, c3, Tensor(), Tensor(), true); },
               {"batch_norm", "running_mean", "[3]", "[4,3]", "[2]"});
  expect_error([&] { F::batch_norm(x, c3, c2, Tensor(), Tensor(), false); },
               {"batch_norm", "running_var", "[4,3]", "[2]"});
  expect_error([&] { F::batch_norm(x, c3, c3, c2, Tensor(), true); },
               {"batch_norm", "weight", "[4,3]", "[2]"});
  expect_error([&] { F::batch_norm(x, c3, c3, c3, ones({3, 1}), true); },
               {"batch_norm", "bias", "[4,3]", "[3,1]"});
  expect_error([&] { F::batch_norm(x, c3, Tensor(), Tensor(), Tensor(), true); },
               {"batch_norm", "running_mean and running_var"});
  expect_error([&] { F::batch_norm(x, Tensor(), Tensor(), Tensor(), Tensor(), false); },
               {"batch_norm", "evaluation", "[4,3]"});
  expect_error([&] { F::batch_norm(ones({1, 3}), c3, c3, Tensor(), Tensor(), true); },
               {"batch_norm", "Expected more than 1 value per channel when training", "[1,3]"});
  expect_error([&] { F::batch_norm(ones({1, 3, 1, 1}), Tensor(), Tensor(), Tensor(), Tensor(), true); },
               {"Expected more than 1 value per channel when training", "[1,3,1,1]"});
  expect_error([&] { F::batch_norm(arange(12).reshape({4, 3}), Tensor(), Tensor(), Tensor(), Tensor(), true); },
               {"batch_norm", "i64", "[4,3]"});
  expect_error([&] { F::batch_norm(x, ones({3}, kFloat64), ones({3}, kFloat64), Tensor(), Tensor(), true); },
               {"batch_norm", "dtype", "f64", "[4,3] f32"});
  // Nothing ran: the running statistics of a refused call are untouched.
  Tensor rm = zeros({3}), rv = ones({3});
  expect_error([&] { F::batch_norm(x, rm, rv, c2, Tensor(), true); }, {"weight"});
  test::expect_values(rm, {3}, {0, 0, 0});
}

// ---- layer_norm ---------------------------------------------------------------------------------

TEST(NnLayerNorm, MatchesPyTorch) {
  for (DType dtype : {DType::Float64, DType::Float32}) {
    expect_fixture_case("ln_last", {"x", "w", "b"}, {"x", "w", "b"},
                        [](In in) { return F::layer_norm(in[0], {4}, in[1], in[2]); }, dtype);
    expect_fixture_case("ln_two", {"x", "w", "b"}, {"x", "w", "b"},
                        [](In in) { return F::layer_norm(in[0], {3, 4}, in[1], in[2]); }, dtype);
    expect_fixture_case("ln_noaffine", {"x"}, {"x"},
                        [](In in) { return F::layer_norm(in[0], {4}); }, dtype);
  }
}

TEST(NnLayerNorm, Gradcheck) {
  const Tensor x = test::random_f64({2, 3, 4}, -2, 2, 91, true);
  const Tensor w = test::random_f64({3, 4}, 0.5, 1.5, 92, true);
  const Tensor b = test::random_f64({3, 4}, -1, 1, 93, true);
  expect_gradcheck([](In in) { return F::layer_norm(in[0], {3, 4}, in[1], in[2]); }, {x, w, b});
  expect_gradcheck([](In in) { return F::layer_norm(in[0], {4}); }, {x});
  expect_gradcheck([](In in) { return F::layer_norm(in[0], {2, 3, 4}); }, {x});
}

TEST(NnLayerNorm, Errors) {
  const Tensor x = ones({2, 3, 4});
  expect_error([&] { F::layer_norm(x, {3}); }, {"layer_norm", "[3]", "[2,3,4]"});
  expect_error([&] { F::layer_norm(x, {5, 2, 3, 4}); }, {"layer_norm", "[5,2,3,4]", "[2,3,4]"});
  expect_error([&] { F::layer_norm(x, {}); }, {"layer_norm", "normalized_shape", "[2,3,4]"});
  expect_error([&] { F::layer_norm(x, {3, 4}, ones({4})); }, {"layer_norm", "weight", "[3,4]", "[4]"});
  expect_error([&] { F::layer_norm(x, {4}, ones({4}), ones({3})); }, {"layer_norm", "bias", "[4]", "[3]"});
  expect_error([&] { F::layer_norm(arange(4), {4}); }, {"layer_norm", "i64", "[4]"});
}

// ---- dropout ------------------------------------------------------------------------------------

// The keep mask dropout must use: element i kept when the i-th uniform draw of a generator
// seeded `seed` is below 1 - p (drawn here through strata::rand with a separate generator).
std::vector<bool> expected_keep(const Shape& shape, DType dtype, double p, uint64_t seed) {
  Generator gen(seed);
  const auto u = rand(shape, dtype, &gen).to_vector<double>();
  // The threshold as dropout compares it: rounded to the tensor's dtype.
  const double threshold =
      dtype == kFloat32 ? static_cast<double>(static_cast<float>(1.0 - p)) : 1.0 - p;
  std::vector<bool> keep(u.size());
  for (size_t i = 0; i < u.size(); ++i) keep[i] = u[i] < threshold;
  return keep;
}

TEST(NnDropout, KeepsAboutOneMinusPAndScalesKept) {
  const Shape shape = {400, 500};
  const Tensor x = ones(shape);
  for (double p : {0.1, 0.5, 0.8}) {
    SCOPED_TRACE(p);
    Generator gen(2024);
    const auto y = F::dropout(x, p, true, &gen).to_vector<double>();
    int64_t kept = 0;
    for (double v : y) {
      if (v != 0.0) {
        ++kept;
        ASSERT_NEAR(v, 1.0 / (1.0 - p), 1e-6);
      }
    }
    // 200000 Bernoulli draws: the fraction's standard deviation is at most 0.0012; 5 sigma.
    EXPECT_NEAR(static_cast<double>(kept) / static_cast<double>(y.size()), 1.0 - p, 0.006);
    // The mean is preserved in expectation (the point of the 1/(1-p) scaling).
    double sum = 0;
    for (double v : y) sum += v;
    EXPECT_NEAR(sum / static_cast<double>(y.size()), 1.0, 0.02);
  }
}

TEST(NnDropout, MaskComesFromTheGenerator) {
  const Shape shape = {37, 29};
  const Tensor x = test::random_f32(shape, 0.5, 2, 101);
  const auto xv = x.to_vector<double>();
  Generator a(77), b(77), c(78);
  const Tensor ya = F::dropout(x, 0.3, true, &a);
  const Tensor yb = F::dropout(x, 0.3, true, &b);
  expect_close(ya, yb, 0, 0);  // same seed, same result
  EXPECT_FALSE(allclose(ya, F::dropout(x, 0.3, true, &c)));
  // The second call on one generator draws new numbers.
  EXPECT_FALSE(allclose(ya, F::dropout(x, 0.3, true, &a)));
  const auto keep = expected_keep(shape, kFloat32, 0.3, 77);
  const auto yv = ya.to_vector<double>();
  for (size_t i = 0; i < yv.size(); ++i) {
    const double want = keep[i] ? static_cast<double>(static_cast<float>(xv[i] / 0.7)) : 0.0;
    ASSERT_NEAR(yv[i], want, 1e-6 * std::abs(want)) << "element " << i;
  }
  // The default generator: manual_seed makes it repeatable.
  manual_seed(5);
  const Tensor d1 = F::dropout(x, 0.3);
  manual_seed(5);
  expect_close(F::dropout(x, 0.3), d1, 0, 0);
}

TEST(NnDropout, IdentityInEvalAndForZeroP) {
  Tensor x = test::random_f64({3, 4}, -1, 1, 111, true);
  Generator gen(1);
  expect_close(F::dropout(x, 0.5, false, &gen), x, 0, 0);
  expect_close(F::dropout(x, 0.0, true, &gen), x, 0, 0);
  EXPECT_EQ(gen.offset(), 0u);  // nothing drawn
  // p == 1 drops everything, with a zero gradient.
  Tensor y = F::dropout(x, 1.0, true, &gen);
  test::expect_values(y, {3, 4}, std::vector<double>(12, 0.0));
  y.backward(ones({3, 4}, kFloat64));
  test::expect_values(x.grad(), {3, 4}, std::vector<double>(12, 0.0));
}

TEST(NnDropout, GradientIsMaskOverKeep) {
  const Shape shape = {6, 7};
  const double p = 0.4;
  Tensor x = test::random_f64(shape, -1, 1, 121, true);
  const Tensor g = test::random_f64(shape, -1, 1, 122);
  Generator gen(9);
  F::dropout(x, p, true, &gen).backward(g);
  const auto keep = expected_keep(shape, kFloat64, p, 9);
  const auto gv = g.to_vector<double>();
  std::vector<double> want(gv.size());
  for (size_t i = 0; i < gv.size(); ++i) want[i] = keep[i] ? gv[i] / (1 - p) : 0.0;
  test::expect_values(x.grad(), shape, want);
  // And gradcheck, with the mask fixed by re-seeding each call.
  expect_gradcheck([](In in) {
    Generator fixed(3);
    return F::dropout(in[0], 0.25, true, &fixed);
  }, {test::random_f64({4, 5}, -1, 1, 123, true)});
}

TEST(NnDropout, Errors) {
  const Tensor x = ones({2, 3});
  expect_error([&] { F::dropout(x, -0.1); }, {"dropout", "-0.1", "[2,3]"});
  expect_error([&] { F::dropout(x, 1.5); }, {"dropout", "1.5", "[2,3]"});
  expect_error([&] { F::dropout(x, std::nan("")); }, {"dropout", "[0, 1]"});
  expect_error([&] { F::dropout(x, 1.5, false); }, {"dropout", "1.5"});  // checked in eval too
  expect_error([&] { F::dropout(arange(3), 0.5); }, {"dropout", "i64", "[3]"});
}

}  // namespace
}  // namespace strata
